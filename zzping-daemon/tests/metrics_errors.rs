//! `zzping_errors_total{host, kind}` against the simulator's truth: the daemon pings the
//! hosts of `tests/scenarios/router-errors.toml` (routers on the path answer "network
//! unreachable", "host unreachable", "administratively prohibited" and "time exceeded"
//! for a while) and `tests/scenarios/route-loss.toml` (this machine's routes vanish:
//! sends fail with "no route") with `--metrics`; once its counts are final (it lingers,
//! exporting `zzping_stopped 1`), one scrape of `/metrics` must hold, per host and kind,
//! exactly the errors of the truth (each request answered first by an ICMP error, of the
//! kind its type and code say) or, for send errors, of the frame files (those requests
//! never reached the simulator; the e2e suite places each inside the truth's windows).
//!
//! Needs root (a network namespace and a TUN device): without it the test says why and
//! skips, unless `CI` is set (then it fails).

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::prometheus::get;
use zzping_lib::frame::ErrorKind;
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_netsim::truth::read_truth;
use zzping_testkit::process::{signal, wait_bounded};
use zzping_testkit::{netns, privileges, require};

const METRICS_ADDR: &str = "127.0.0.1:9465";
/// Longer than the test needs to scrape: the daemon serves the final counts until told.
const LINGER_S: u32 = 120;
/// The daemon's echo payload length (its requests, not another prober's).
const DAEMON_PAYLOAD: u64 = 16;

/// The kind an ICMP error of `icmp_type`/`icmp_code` to `dst` is (RFC 792, RFC 4443).
fn icmp_kind(dst: IpAddr, icmp_type: u8, icmp_code: u8) -> &'static str {
    match (dst.is_ipv6(), icmp_type, icmp_code) {
        (false, 3, 0) | (true, 1, 0) => "net_unreachable",
        (false, 3, 1) | (true, 1, 3) => "host_unreachable",
        (false, 3, 13) | (true, 1, 1) => "prohibited",
        (false, 11, _) | (true, 3, _) => "ttl_exceeded",
        other => panic!("the scenario sent {other:?}"),
    }
}

/// Errors by (host, kind).
type ByHostKind = BTreeMap<(String, String), u64>;

/// `(host, kind) -> n` of every `zzping_errors_total` sample.
fn errors_total(body: &str) -> ByHostKind {
    let label = |l: &str, name: &str| {
        let at = l.find(&format!("{name}=\""))? + name.len() + 2;
        Some(l[at..at + l[at..].find('"')?].to_string())
    };
    body.lines()
        .filter(|l| l.starts_with("zzping_errors_total{"))
        .map(|l| {
            let n: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
            (
                (label(l, "host").unwrap(), label(l, "kind").unwrap()),
                n as u64,
            )
        })
        .collect()
}

/// Runs `scenario` for `secs` s against `targets` with the exporter on; returns the
/// scrape of the final counts, the truth and the data directory's frames' send errors
/// by (host, kind).
fn run(
    scenario: &str,
    targets: &[&str],
    secs: u32,
) -> (ByHostKind, zzping_netsim::truth::Truth, ByHostKind) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let truth_path = dir.path().join("truth.jsonl");
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/scenarios")
            .join(scenario),
    )
    .unwrap();
    let mut args: Vec<String> = [
        "--config",
        "none",
        "--live",
        "off",
        "--rate",
        "50",
        "--timeout-ms",
        "500",
        "--metrics",
        METRICS_ADDR,
    ]
    .map(String::from)
    .into();
    args.extend(["--metrics-linger-s".into(), LINGER_S.to_string()]);
    args.extend(["--duration".into(), secs.to_string()]);
    args.extend(["--data-dir".into(), data.display().to_string()]);
    for t in targets {
        args.extend(["--target".into(), t.to_string()]);
    }
    let tp = truth_path.clone();
    let body = std::thread::spawn(move || {
        netns::enter();
        let sim = Simulator::start(&scenario, Some(&tp)).expect("start the simulator");
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&a);
        // Pinging for `secs`, then every frame final: bounded by the run, its last
        // timeout and a margin for a loaded machine.
        log.wait_for("counts final", Duration::from_secs(u64::from(secs) + 30));
        let addr: SocketAddr = METRICS_ADDR.parse().unwrap();
        let (status, body) = get(addr, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\nzzping_stopped 1\n"), "{body}");
        signal(&daemon.0, libc::SIGTERM);
        wait_bounded(&mut daemon.0, Duration::from_secs(15), "the daemon");
        sim.stop().expect("stop the simulator");
        body
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let truth = read_truth(&truth_path).unwrap();
    let mut local = BTreeMap::new();
    for t in targets {
        let frames = common::read_host(&data.join(zzping_lib::store::layout::host_dir_name(t)));
        for f in &frames {
            for (k, n) in f.error_kinds.iter().filter(|(k, _)| k.is_local()) {
                *local
                    .entry((t.to_string(), k.name().to_string()))
                    .or_default() += u64::from(n);
            }
        }
    }
    (errors_total(&body), truth, local)
}

/// The truth's ICMP errors by (host, kind): requests whose first answer was an error.
fn truth_errors(truth: &zzping_netsim::truth::Truth) -> ByHostKind {
    let mut first: BTreeMap<u64, (IpAddr, u8, u8, bool)> = BTreeMap::new();
    for r in truth.replies() {
        first
            .entry(r.request)
            .or_insert((r.dst, r.icmp_type, r.icmp_code, r.kind.is_error()));
    }
    let mut out = BTreeMap::new();
    for q in truth.requests().filter(|q| q.payload_len == DAEMON_PAYLOAD) {
        if let Some(&(dst, t, c, true)) = first.get(&q.id) {
            *out.entry((dst.to_string(), icmp_kind(dst, t, c).to_string()))
                .or_default() += 1;
        }
    }
    out
}

/// Every (host, kind) of `want`, and zero for every other kind of those hosts.
fn assert_counts(got: &ByHostKind, want: &ByHostKind, hosts: &[&str]) {
    for h in hosts {
        for k in ErrorKind::ALL {
            let key = (h.to_string(), k.name().to_string());
            assert_eq!(
                got.get(&key).copied(),
                Some(want.get(&key).copied().unwrap_or(0)),
                "{key:?}: scrape vs truth\nscrape {got:#?}\nwant {want:#?}"
            );
        }
    }
}

#[test]
fn icmp_errors_are_counted_by_kind_as_the_truth_says() {
    require!(privileges::tun());
    let targets = [
        "198.18.0.254",
        "198.18.0.20",
        "198.19.0.1",
        "198.19.1.1",
        "198.19.8.8",
        "198.19.8.9",
    ];
    let (got, truth, local) = run("router-errors.toml", &targets, 13);
    assert!(local.is_empty(), "no send errors here: {local:?}");
    let want = truth_errors(&truth);
    for k in [
        "net_unreachable",
        "host_unreachable",
        "prohibited",
        "ttl_exceeded",
    ] {
        assert!(
            want.keys().any(|(_, n)| n == k),
            "the truth has no {k}: {want:?}"
        );
    }
    assert_counts(&got, &want, &targets);
}

#[test]
fn send_errors_are_counted_by_kind() {
    require!(privileges::tun());
    let targets = ["198.18.0.254", "198.18.0.20", "198.19.8.8"];
    let (got, truth, local) = run("route-loss.toml", &targets, 14);
    // No ICMP error came back; every error was a send that failed here.
    assert!(truth_errors(&truth).is_empty());
    assert!(
        local.get(&("198.19.8.8".to_string(), "no_route".to_string())) > Some(&0),
        "{local:?}"
    );
    assert_counts(&got, &local, &targets);
}
