//! `zzping report` against the simulator's ground truth: the real daemon (its library,
//! `daemon::run`, run in-process) pings three simulated hosts through
//! `tests/scenarios/report-outages.toml` — a network-wide outage, an upstream outage and a
//! single-host outage — and the report must list exactly those three, with the right
//! hosts, verdicts, start times (within one frame) and lost-request counts (exact).
//!
//! Needs root (a network namespace and a TUN device). Without it the test says why and
//! passes, unless `CI=true`, where it fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use zzping_netsim::profile::Fate;
use zzping_netsim::truth::read_truth;
use zzping_netsim::{Scenario, Simulator, sys};

const GATEWAY: &str = "198.18.0.10";
const ISP: &str = "198.18.8.8";
const DNS: &str = "198.18.9.9";
const PERIOD_US: u64 = 100_000;

fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root for network namespaces, and CI=true requires it to run"
    );
    eprintln!("{test}: skipped: needs root for network namespaces and a TUN device");
    false
}

/// Runs the daemon for `secs` seconds inside a fresh namespace served by the simulator.
fn record(scenario: &Path, data: &Path, truth: &Path, secs: f64) {
    let scenario = Scenario::load(scenario).expect("scenario");
    let (data, truth) = (data.to_path_buf(), truth.to_path_buf());
    std::thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let sim = Simulator::start(&scenario, Some(&truth)).expect("simulator");
        use clap::Parser;
        let cli = zzping_daemon::config::Cli::try_parse_from([
            "zzping-daemon",
            "--config",
            "none",
            "--live",
            "off",
            "--data-dir",
            data.to_str().unwrap(),
            "--target",
            GATEWAY,
            "--target",
            ISP,
            "--target",
            DNS,
            "--rate",
            "100",
            "--timeout-ms",
            "500",
            "--duration",
            &secs.to_string(),
        ])
        .expect("daemon flags");
        let cfg = zzping_daemon::config::load(&cli).expect("daemon config");
        zzping_daemon::daemon::run(cli, cfg).expect("daemon run");
        sim.stop().expect("simulator stop");
    })
    .join()
    .expect("daemon thread");
}

/// Truth: per host, the send times (µs) of requests the simulator dropped on purpose.
fn dropped(truth: &Path) -> BTreeMap<String, Vec<u64>> {
    let t = read_truth(truth).expect("truth");
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in t.requests() {
        if matches!(r.fate, Fate::DroppedOutage | Fate::DroppedBurst) {
            out.entry(r.dst.to_string()).or_default().push(r.time_us);
        }
    }
    out
}

/// For a failure message: the recorded frames around an event (from `zzping export`)
/// and the truth's drops in it, per host.
fn around(data: &Path, truth: &BTreeMap<String, Vec<u64>>, drops: &[u64]) -> String {
    let (lo, hi) = (
        drops
            .iter()
            .min()
            .unwrap_or(&0)
            .saturating_sub(3 * PERIOD_US),
        drops.iter().max().unwrap_or(&0) + 3 * PERIOD_US,
    );
    let mut out = String::from("truth drops (µs):\n");
    for (host, times) in truth {
        let t: Vec<_> = times.iter().filter(|t| (lo..hi).contains(*t)).collect();
        out += &format!("  {host}: {} {t:?}\n", t.len());
    }
    let csv = Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(["export", "--format", "csv"])
        .arg(data)
        .output()
        .expect("zzping export");
    out += "frames (export csv, start_us in range):\n";
    for line in String::from_utf8_lossy(&csv.stdout).lines() {
        let start = line.split(',').nth(2).and_then(|f| f.parse::<u64>().ok());
        if start.is_none_or(|s| (lo..hi).contains(&s)) {
            out += "  ";
            out += line;
            out += "\n";
        }
    }
    out
}

#[test]
fn report_finds_the_scenarios_outages_with_the_right_verdicts() {
    if !privileged("report_finds_the_scenarios_outages_with_the_right_verdicts") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let truth = work.path().join("truth.jsonl");
    record(
        &root.join("tests/scenarios/report-outages.toml"),
        &data,
        &truth,
        8.0,
    );

    let out = Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(["report", "--json", "--gateway", GATEWAY])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outages = report["outages"].as_array().expect("outages");

    let truth = dropped(&truth);
    // The three events of the scenario, by which hosts lost requests.
    let expect = [
        (vec![GATEWAY, ISP, DNS], "local"),
        (vec![ISP, DNS], "upstream"),
        (vec![DNS], "host"),
    ];
    assert_eq!(
        outages.len(),
        expect.len(),
        "outages: {}",
        serde_json::to_string_pretty(outages).unwrap()
    );
    // Split the truth's drops into the three events: they are 2 s apart, each under
    // 0.5 s long, so an event starts wherever drops are more than 1 s apart. (Not by
    // the time since the first drop: each event's first drop falls up to one send
    // interval after its window opens, so the next event's may come less than 2 s later.)
    let mut all_drops: Vec<u64> = truth.values().flatten().copied().collect();
    all_drops.sort_unstable();
    let starts: Vec<u64> = all_drops
        .iter()
        .enumerate()
        .filter(|&(j, &t)| j == 0 || t - all_drops[j - 1] > 1_000_000)
        .map(|(_, &t)| t)
        .collect();
    assert_eq!(
        starts.len(),
        expect.len(),
        "truth: drop events start at {starts:?}"
    );
    let event_of = |t: u64| starts.partition_point(|&s| s <= t) - 1;
    for (i, (o, (hosts, verdict))) in outages.iter().zip(&expect).enumerate() {
        let mut got: Vec<&str> = o["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["label"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        let mut want = hosts.clone();
        want.sort_unstable();
        assert_eq!(got, want, "outage {i}: affected hosts");
        assert_eq!(o["verdict"], *verdict, "outage {i}: verdict");
        // Lost requests: exactly the truth's drops of this event.
        let drops: Vec<u64> = truth
            .values()
            .flatten()
            .copied()
            .filter(|&t| event_of(t) == i)
            .collect();
        assert_eq!(
            o["lost"].as_u64().unwrap(),
            drops.len() as u64,
            "outage {i}: lost requests\n{}",
            around(&data, &truth, &drops)
        );
        // Start within one frame of the first dropped request.
        let start = o["start_us"].as_u64().unwrap();
        let first = *drops.iter().min().unwrap();
        let last = *drops.iter().max().unwrap();
        assert!(
            start <= first && first - start < PERIOD_US,
            "outage {i}: starts at {start}, first drop at {first}"
        );
        // Duration covers the drops, rounded to frames.
        let end = start + o["duration_us"].as_u64().unwrap();
        assert!(
            end > last && end - last <= 2 * PERIOD_US,
            "outage {i}: ends at {end}, last drop at {last}"
        );
    }
}
