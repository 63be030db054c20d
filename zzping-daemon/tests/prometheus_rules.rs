//! The shipped Prometheus rules (`dist/prometheus/zzping.rules.yml`) and Grafana
//! dashboard (`dist/grafana/zzping.json`):
//!
//! * `rules_pass_promtool`: `promtool check rules` accepts the rules and
//!   `promtool test rules` passes their unit tests (`zzping.rules.test.yml`), which test
//!   every alert firing and not firing and every recording rule.
//! * `dashboard_is_well_formed`: every panel queries the `$datasource` variable, and
//!   every variable a query uses is one the dashboard defines (or Grafana's own).
//! * `dashboard_and_rules_on_a_real_daemon`: zzping-netsim simulates
//!   `tests/scenarios/prometheus-rules.toml` (a lossy host, a clean one, one answered by
//!   "host unreachable", one silent), the daemon pings it with `--metrics`, and a **real
//!   Prometheus** (`/usr/bin/prometheus`, 1 s scrapes and rule evaluations) loaded with
//!   the shipped rules scrapes it. Through Prometheus's API: every rule evaluates without
//!   error; every query of the dashboard (its variables too) and every recording rule
//!   returns data, and the values the scenario determines are right (loss 1 for the two
//!   dead hosts, 0 for the clean one; errors only of kind `host_unreachable`, only from
//!   the unreachable host; no RTT quantile for hosts without replies); each alert's
//!   expression selects exactly the hosts the scenario says, where the scenario
//!   determines it (send lateness and RTT depend on the machine's load: evaluated,
//!   reported, not asserted).
//!
//!   All queries are evaluated at the timestamp of a scrape of the final counts (the
//!   daemon lingers with them until the test's signal); the dashboard's
//!   `$__rate_interval` becomes [`RUN_WINDOW`], which holds every scrape of the run.
//!
//! Without the privileges for a network namespace and a TUN device the e2e test says why
//! and skips, unless `CI` is set (then it fails). A missing `prometheus` or `promtool`
//! (`.ci/install-deps` installs them) is a failure.
//!
//! ```text
//! cargo nextest run -p zzping-daemon -E 'binary(prometheus_rules)' --no-capture
//! ```

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{PROMETHEUS_LIMIT, Prometheus, Sample, api, percent_encode};
use zzping_testkit::process::{output_bounded, signal, wait_bounded};
use zzping_testkit::{netns, privileges, require, tool};

use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;

const METRICS_ADDR: &str = "127.0.0.1:9464";
/// The daemon's linger after pinging: far longer than the test, which ends it with a
/// signal once it has queried everything.
const LINGER_S: u32 = 120;
/// How long the daemon pings.
const DURATION_S: u32 = 12;
/// Requests per second per host: with 10 % random loss, a few hundred requests put the
/// lossy host's loss far (over 4 standard deviations) above the 5 % alert threshold.
const RATE: u32 = 100;
/// What the dashboard's `$__rate_interval` becomes: longer than the whole run (Prometheus
/// starts just before the daemon, which pings for `DURATION_S`, and the queries are
/// evaluated at the final scrape, within `PROMETHEUS_LIMIT`s), so every range holds
/// every scrape of the run.
const RUN_WINDOW: &str = "2m";
/// Bound on promtool's runs (a few hundred ms of work).
const PROMTOOL_LIMIT: Duration = Duration::from_secs(60);

const LOSSY: &str = "lossy";
const CLEAN: &str = "clean6";
const UNREACHABLE: &str = "gone";
const SILENT: &str = "blackhole";

/// The scenario's hosts: (label, address).
const HOSTS: [(&str, &str); 4] = [
    (LOSSY, "198.18.0.50"),
    (CLEAN, "2001:db8::51"),
    (UNREACHABLE, "198.18.0.60"),
    (SILENT, "198.18.0.61"),
];

fn dist(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(path)
}

/// The rules file's rules, in order: (`record` or `alert`, name).
fn rules_in_file() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dist("prometheus/zzping.rules.yml")).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().strip_prefix("- ")?;
            let (kind, name) = l.split_once(": ")?;
            matches!(kind, "record" | "alert").then(|| (kind.to_owned(), name.trim().to_owned()))
        })
        .collect()
}

fn promtool(args: &[&str]) -> String {
    let child = Command::new(tool("promtool", "prometheus"))
        .args(args)
        .current_dir(dist("prometheus"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_bounded(child, PROMTOOL_LIMIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn rules_pass_promtool() {
    let rules = rules_in_file();
    let out = promtool(&["check", "rules", "zzping.rules.yml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{out}"
    );
    let out = promtool(&["test", "rules", "zzping.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");

    // The unit tests cover every alert both ways and every recording rule.
    let tests = std::fs::read_to_string(dist("prometheus/zzping.rules.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for w in lines.windows(2) {
        if let Some(name) = w[0].strip_prefix("alertname: ") {
            match w[1] {
                "exp_alerts: []" => quiet.insert(name),
                "exp_alerts:" => firing.insert(name),
                other => panic!("{name}: unexpected {other:?}"),
            };
        }
    }
    for (kind, name) in &rules {
        match kind.as_str() {
            "alert" => {
                assert!(
                    firing.contains(name.as_str()),
                    "{name}: no test that it fires"
                );
                assert!(
                    quiet.contains(name.as_str()),
                    "{name}: no test that it stays quiet"
                );
            }
            _ => assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("- expr:") && l.contains(name.as_str())),
                "{name}: no promql_expr_test"
            ),
        }
    }
}

fn dashboard() -> serde_json::Value {
    let path = dist("grafana/zzping.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every query target of the dashboard (rows' nested panels too): (panel title, expr).
fn dashboard_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            for t in p["targets"].as_array().into_iter().flatten() {
                let title = p["title"].as_str().unwrap_or_default().to_owned();
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title}: a target without expr"));
                out.push((title, expr.to_owned()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The dashboard's query variables: (name, `label_values(...)` query).
fn dashboard_variables(d: &serde_json::Value) -> Vec<(String, String)> {
    d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["definition"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A dashboard query as Grafana sends it with every variable at "All" (its `allValue`,
/// `.*`) and `$__rate_interval` at [`RUN_WINDOW`]. Panics on any other variable.
fn substitute(expr: &str) -> String {
    let q = expr
        .replace("$__rate_interval", RUN_WINDOW)
        .replace("$instance", ".*")
        .replace("$host", ".*");
    assert!(!q.contains('$'), "a variable this test does not know: {q}");
    q
}

#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "zzping");
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let defined: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let uses_datasource =
        |v: &serde_json::Value| v["type"] == "prometheus" && v["uid"] == "${datasource}";
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert!(uses_datasource(&v["datasource"]), "variable {}", v["name"]);
        let allowed = v["allValue"] == ".*" && v["includeAll"] == true;
        assert!(allowed, "variable {}: All must be .*", v["name"]);
    }
    let mut panels = 0;
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        panels += 1;
        let title = p["title"].as_str().unwrap();
        assert!(
            uses_datasource(&p["datasource"]),
            "{title}: panel datasource"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert!(
                uses_datasource(&t["datasource"]),
                "{title}: target datasource"
            );
        }
    }
    assert!(panels >= 8, "{panels} panels");
    let queries = dashboard_queries(&d)
        .into_iter()
        .map(|(_, q)| q)
        .chain(dashboard_variables(&d).into_iter().map(|(_, q)| q));
    for q in queries {
        for var in q.split('$').skip(1) {
            let name: String = var
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                name == "__rate_interval" || defined.contains(name.as_str()),
                "${name} in {q} is not defined"
            );
        }
    }
}

/// Per host label: the value (several samples of a host: panics).
fn by_host(q: &str, r: &[Sample]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for s in r {
        let host = s.labels.get("host").unwrap_or_else(|| panic!("{q}: {s:?}"));
        assert!(
            m.insert(host.clone(), s.value).is_none(),
            "{q}: two of {host}"
        );
    }
    m
}

fn hosts_of(r: &[Sample]) -> BTreeSet<&str> {
    r.iter()
        .filter_map(|s| s.labels.get("host").map(String::as_str))
        .collect()
}

/// The values the scenario determines for a per-host loss ratio.
fn check_loss(q: &str, r: &[Sample]) {
    let m = by_host(q, r);
    let all: BTreeSet<&str> = HOSTS.iter().map(|h| h.0).collect();
    assert_eq!(
        m.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        all,
        "{q}"
    );
    // Every request of the dead hosts failed, none of the clean one's: exact, since
    // failed and sent grow from the same frames in the same scrapes.
    assert_eq!(m[UNREACHABLE], 1.0, "{q}");
    assert_eq!(m[SILENT], 1.0, "{q}");
    assert_eq!(m[CLEAN], 0.0, "{q}");
    assert!((0.02..0.25).contains(&m[LOSSY]), "{q}: {m:?}");
}

#[test]
fn dashboard_and_rules_on_a_real_daemon() {
    const TEST: &str = "dashboard_and_rules_on_a_real_daemon";
    require!(privileges::tun());
    tool("prometheus", "prometheus");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let scenario = Scenario::load(&scenarios.join("prometheus-rules.toml")).unwrap();
    let cfg = dir.path().join("zzping.toml");
    let mut toml = format!(
        "data_dir = \"{}\"\nrate = {RATE}\ntimeout_ms = 500\nlive = \"off\"\n\
         metrics = \"{METRICS_ADDR}\"\nmetrics_linger_s = {LINGER_S}\nflush_interval_s = 1\n",
        data.display()
    );
    for (label, addr) in HOSTS {
        toml.push_str(&format!(
            "[[host]]\ntarget = \"{addr}\"\nlabel = \"{label}\"\n"
        ));
    }
    std::fs::write(&cfg, toml).unwrap();
    let rules_file = dist("prometheus/zzping.rules.yml");
    let prom_dir = dir.path().to_path_buf();
    let d = dashboard();
    let rules = rules_in_file();

    let handle = std::thread::spawn(move || {
        netns::enter();
        let sim = Simulator::start(&scenario, None).expect("start the simulator");
        // Prometheus first: its service discovery delays the first scrape by ~5 s.
        let prometheus = Prometheus::start(&prom_dir, METRICS_ADDR, &[rules_file.as_path()]);
        let prom = prometheus.addr;
        let duration = DURATION_S.to_string();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&[
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            &duration,
        ]);
        log.wait_for("metrics on", Duration::from_secs(10));
        prometheus.wait_scrapes(2.0);
        // The final counts, served until the signal below.
        log.wait_for(
            "counts final",
            Duration::from_secs(u64::from(DURATION_S) + 15),
        );
        let at = prometheus.wait_final_scrape();
        let q = |expr: &str| common::prometheus::query_samples(prom, expr, Some(&at));

        // Every rule loaded and evaluated without error (bounded poll: each is
        // evaluated every second from Prometheus's start).
        let end = Instant::now() + PROMETHEUS_LIMIT;
        let loaded = loop {
            let groups = api(prom, "/api/v1/rules");
            let loaded: Vec<serde_json::Value> = groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().clone())
                .collect();
            for r in &loaded {
                assert!(
                    r["health"] != "err",
                    "rule {} failed: {}",
                    r["name"],
                    r["lastError"]
                );
            }
            if loaded.iter().all(|r| r["health"] == "ok") {
                break loaded;
            }
            assert!(
                Instant::now() < end,
                "rules not all evaluated: {loaded:?}\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        // (Prometheus lists the groups by name: compared sorted.)
        let mut loaded_names: Vec<(String, String)> = loaded
            .iter()
            .map(|r| {
                let kind = if r["type"] == "recording" {
                    "record"
                } else {
                    "alert"
                };
                (kind.to_owned(), r["name"].as_str().unwrap().to_owned())
            })
            .collect();
        loaded_names.sort();
        let mut want_names = rules.clone();
        want_names.sort();
        assert_eq!(
            loaded_names, want_names,
            "Prometheus loaded other rules than the file's"
        );

        // The dashboard's variables, as Grafana asks for them.
        let mut report = Vec::new();
        for (name, def) in dashboard_variables(&d) {
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: {def}"));
            let (matcher, label) = inner.rsplit_once(", ").unwrap();
            let path = format!(
                "/api/v1/label/{label}/values?match[]={}",
                percent_encode(&substitute(matcher))
            );
            let values: BTreeSet<String> = api(prom, &path)
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let want: BTreeSet<String> = match label {
                "instance" => [METRICS_ADDR.to_owned()].into(),
                "host" => HOSTS.iter().map(|h| h.0.to_owned()).collect(),
                other => panic!("variable {name}: label {other} unknown to this test"),
            };
            assert_eq!(values, want, "variable {name}: {def}");
        }

        // Every dashboard query returns data, for the scenario's hosts only.
        let all: BTreeSet<&str> = HOSTS.iter().map(|h| h.0).collect();
        for (title, expr) in dashboard_queries(&d) {
            let expr = substitute(&expr);
            let r = q(&expr);
            assert!(!r.is_empty(), "{title}: no data for {expr}");
            assert!(
                r.iter().any(|s| s.value.is_finite()),
                "{title}: no finite value for {expr}: {r:?}"
            );
            assert!(hosts_of(&r).is_subset(&all), "{title}: {expr}: {r:?}");
            match title.as_str() {
                "Loss" | "Loss since the daemon started" => check_loss(&expr, &r),
                "Errors by kind" => {
                    let kinds: Vec<_> = r
                        .iter()
                        .map(|s| (s.labels["host"].as_str(), s.labels["kind"].as_str()))
                        .collect();
                    assert_eq!(kinds, [(UNREACHABLE, "host_unreachable")], "{expr}");
                }
                _ => {}
            }
            report.push(format!("{title}: {} series", r.len()));
        }

        // Every recording rule returns data, right where the scenario says.
        let mut recorded = BTreeSet::new();
        for (kind, name) in &rules {
            if kind != "record" || !recorded.insert(name.clone()) {
                continue;
            }
            let r = q(name);
            assert!(!r.is_empty(), "recording rule {name}: no data");
            match name.as_str() {
                "host:zzping_loss:ratio_rate1m" | "host:zzping_loss:ratio_rate5m" => {
                    check_loss(name, &r)
                }
                "host_quantile:zzping_rtt_seconds:histogram_quantile_rate5m" => {
                    // Three quantiles per host; a quantile only where replies came.
                    assert_eq!(r.len(), 3 * HOSTS.len(), "{name}: {r:?}");
                    for s in &r {
                        let host = s.labels["host"].as_str();
                        let answers = host == LOSSY || host == CLEAN;
                        assert_eq!(s.value.is_finite(), answers, "{name}: {s:?}");
                    }
                }
                "host_kind:zzping_errors:rate5m" => {
                    // Every kind of every host (zeros included); only one is not zero.
                    assert_eq!(r.len(), 12 * HOSTS.len(), "{name}: {r:?}");
                    for s in &r {
                        let hit = s.labels["host"] == UNREACHABLE
                            && s.labels["kind"] == "host_unreachable";
                        assert_eq!(s.value > 0.0, hit, "{name}: {s:?}");
                    }
                }
                "instance_quantile:zzping_send_lateness_seconds:histogram_quantile_rate5m" => {
                    assert!(r.len() == 1 && r[0].value >= 0.0, "{name}: {r:?}");
                }
                other => panic!("recording rule {other}: unknown to this test"),
            }
            report.push(format!("{name}: {} series", r.len()));
        }

        // Each alert's expression, where the scenario decides it: the hosts it selects.
        // (None: depends on the machine's load; reported.)
        let dead: BTreeSet<&str> = [UNREACHABLE, SILENT].into();
        let lossy: BTreeSet<&str> = [UNREACHABLE, SILENT, LOSSY].into();
        let none = BTreeSet::new();
        for r in loaded.iter().filter(|r| r["type"] == "alerting") {
            let name = r["name"].as_str().unwrap();
            let got = q(r["query"].as_str().unwrap());
            let hosts = hosts_of(&got);
            let want = match name {
                "ZzpingHostDown" => Some(&dead),
                "ZzpingHighLoss" => Some(&lossy),
                // Both dead hosts answer nothing, and the others do.
                "ZzpingAllHostsDown"
                | "ZzpingWriteErrors"
                | "ZzpingRecordingFailing"
                | "ZzpingFramesUnrecorded"
                | "ZzpingTargetDown"
                | "ZzpingAbsent" => Some(&none),
                // Only hosts with replies have an RTT, how long depends on the machine.
                "ZzpingHighRtt" => {
                    assert!(hosts.is_subset(&[LOSSY, CLEAN].into()), "{name}: {got:?}");
                    None
                }
                "ZzpingSendsLate" | "ZzpingSendsSkipped" | "ZzpingReceiveQueueDrops" => None,
                other => panic!("alert {other}: unknown to this test"),
            };
            if let Some(want) = want {
                assert_eq!(&hosts, want, "{name}: {got:?}");
                assert_eq!(got.is_empty(), want.is_empty(), "{name}: {got:?}");
            }
            report.push(format!("{name}: {} selected {hosts:?}", got.len()));
        }
        // Prometheus's own evaluation of the host-down alert: pending (or firing) for
        // exactly the dead hosts, with the rule's labels.
        let alerts = q("ALERTS{alertname=\"ZzpingHostDown\"}");
        assert_eq!(hosts_of(&alerts), dead, "{alerts:?}");
        assert!(alerts.iter().all(|a| a.labels["severity"] == "critical"));

        signal(&daemon.0, libc::SIGTERM);
        let status = wait_bounded(&mut daemon.0, Duration::from_secs(15), "the daemon");
        // A finite run exits 1 when a host never answered (as fping does): both dead ones.
        // The daemon has exited: its log ends at once (read to its end: lines written
        // just before the exit may not have been taken in yet).
        let seen = log.finish(Duration::from_secs(15));
        assert_eq!(status.code(), Some(1), "daemon:\n{seen}");
        assert!(
            seen.contains(&format!("no reply from {UNREACHABLE}, {SILENT}")),
            "{}",
            seen
        );
        sim.stop().expect("stop the simulator");
        report
    });
    let report = handle
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!("{TEST}: {:?}\n  {}", t0.elapsed(), report.join("\n  "));
}
