//! A real Prometheus for the exporter's tests (`/usr/bin/prometheus`, installed by
//! `.ci/install-deps`; missing, the test fails), and plain HTTP to it and to the
//! daemon's `/metrics`. Everything waits with a bound.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zzping_testkit::process::Kill;
use zzping_testkit::tool;

/// Where the tests' Prometheus listens (inside the test's network namespace).
pub const PROM_ADDR: &str = "127.0.0.1:9090";
/// How long a test waits for Prometheus (an external process starting up on a shared
/// machine) to reach each state: a bound on the test only.
pub const PROMETHEUS_LIMIT: Duration = Duration::from_secs(30);

/// One HTTP exchange: sends `req` raw, returns (status, body) of the response.
pub fn http(addr: SocketAddr, req: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("\r\ntransfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` response (Prometheus's large answers).
fn dechunk(mut body: &str) -> std::io::Result<String> {
    let bad = |what: &str| std::io::Error::other(format!("chunked body: {what}"));
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or_else(|| bad("no size line"))?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad(size))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or_else(|| bad("truncated"))?;
        out.push_str(chunk);
        body = rest[size..]
            .strip_prefix("\r\n")
            .ok_or_else(|| bad("no chunk end"))?;
    }
}

/// `GET path`: (status, body).
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Percent-encodes a query parameter.
pub fn percent_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `GET path` on Prometheus's API: the response's `data`, after checking its status.
pub fn api(prom: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(prom, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    assert!(
        status == 200 && v["status"] == "success",
        "GET {path}: {status} {body}"
    );
    v["data"].clone()
}

/// One sample of an instant query's result.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Its labels (`__name__` included when the result keeps it).
    pub labels: BTreeMap<String, String>,
    /// Its timestamp as Prometheus wrote it (usable as a query's `time`).
    pub time: String,
    /// Its value (`NaN` and `±Inf` included).
    pub value: f64,
}

/// Instant query `q` (at `time`, else now) through Prometheus's HTTP API: every sample.
pub fn query_samples(prom: SocketAddr, q: &str, time: Option<&str>) -> Vec<Sample> {
    let mut path = format!("/api/v1/query?query={}", percent_encode(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t}"));
    }
    let data = api(prom, &path);
    let result = match data["resultType"].as_str() {
        Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
        // A scalar is one unlabelled sample.
        Some("scalar") => vec![serde_json::json!({ "metric": {}, "value": data["result"] })],
        other => panic!("query {q}: result type {other:?}"),
    };
    result
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap_or_else(|| panic!("query {q}: {r}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let time = r["value"][0].to_string();
            let value = match r["value"][1].as_str() {
                Some("NaN") => f64::NAN,
                Some("+Inf") => f64::INFINITY,
                Some("-Inf") => f64::NEG_INFINITY,
                Some(v) => v.parse().unwrap_or_else(|e| panic!("query {q}: {v}: {e}")),
                None => panic!("query {q}: {r}"),
            };
            Sample {
                labels,
                time,
                value,
            }
        })
        .collect()
}

/// Instant query: every result's `(timestamp, value)`.
pub fn query(prom: SocketAddr, q: &str, time: Option<&str>) -> Vec<(String, f64)> {
    query_samples(prom, q, time)
        .into_iter()
        .map(|s| (s.time, s.value))
        .collect()
}

/// The single value of `q` at `time`.
pub fn query1(prom: SocketAddr, q: &str, time: &str) -> f64 {
    let r = query(prom, q, Some(time));
    assert_eq!(r.len(), 1, "{q} at {time}: {r:?}");
    r[0].1
}

/// A Prometheus process scraping one target every second (job `zzping`), evaluating
/// `rule_files` every second; killed when dropped.
pub struct Prometheus {
    /// Its HTTP address.
    pub addr: SocketAddr,
    log: PathBuf,
    _child: Kill,
}

impl Prometheus {
    /// Starts Prometheus with its configuration, data and log under `dir`, scraping
    /// `target` (`IP:PORT`) as job `zzping`.
    pub fn start(dir: &Path, target: &str, rule_files: &[&Path]) -> Prometheus {
        let prometheus = tool("prometheus", "prometheus");
        let cfg = dir.join("prometheus.yml");
        let mut text = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: zzping\n    static_configs:\n      - targets: ['{target}']\n"
        );
        if !rule_files.is_empty() {
            text.push_str("rule_files:\n");
            for f in rule_files {
                text.push_str(&format!("  - '{}'\n", f.display()));
            }
        }
        std::fs::write(&cfg, text).unwrap();
        let log = dir.join("prometheus.log");
        let plog = std::fs::File::create(&log).unwrap();
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={PROM_ADDR}"))
            .arg("--log.level=warn")
            .stdout(plog.try_clone().unwrap())
            .stderr(plog)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            addr: PROM_ADDR.parse().unwrap(),
            log,
            _child: Kill(child),
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most [`PROMETHEUS_LIMIT`]) until Prometheus is ready and has scraped
    /// its target successfully `n` times (bounded poll: Prometheus is an external
    /// process starting up).
    pub fn wait_scrapes(&self, n: f64) {
        let end = Instant::now() + PROMETHEUS_LIMIT;
        let mut scrapes = 0.0;
        while Instant::now() < end {
            if let Ok((200, _)) = get(self.addr, "/-/ready") {
                let r = query(self.addr, "sum_over_time(up{job=\"zzping\"}[1m])", None);
                scrapes = r.first().map_or(0.0, |v| v.1);
                if scrapes >= n {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "only {scrapes} successful scrapes; prometheus log:\n{}",
            self.log()
        );
    }

    /// Waits (at most [`PROMETHEUS_LIMIT`]) for a scrape that saw `zzping_stopped 1`
    /// (the daemon's final counts): its timestamp.
    pub fn wait_final_scrape(&self) -> String {
        let end = Instant::now() + PROMETHEUS_LIMIT;
        while Instant::now() < end {
            if let Some(s) = query(self.addr, "zzping_stopped == 1", None).first() {
                return s.0.clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no scrape saw zzping_stopped 1; prometheus log:\n{}",
            self.log()
        );
    }
}
