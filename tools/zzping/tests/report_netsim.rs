//! `zzping report` against the simulator's ground truth: the real daemon (its library,
//! `daemon::run`, run in-process) pings three simulated hosts through
//! `tests/scenarios/report-outages.toml` — a network-wide outage, an upstream outage and a
//! single-host outage — and the report must list exactly those three, with the right
//! hosts, verdicts, spans (exactly the frames holding the dropped requests) and
//! lost-request counts (exact).
//!
//! Needs root (a network namespace and a TUN device). Without it the test says why and
//! skips, unless `CI` is set, where it fails.

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

/// A request the simulator dropped on purpose: when it read it (µs) and the start of
/// the daemon's frame that holds it.
#[derive(Debug, Clone, Copy)]
struct Drop {
    read_us: u64,
    frame_us: u64,
}

/// Truth: per host, the requests the simulator dropped on purpose, each placed in the
/// daemon's frame that holds it. The frame is found by order, not by time: the truth
/// lists a host's requests in the order the simulator read them, which is the order the
/// daemon sent them, so cutting that list into runs of the frames' `sent` counts gives
/// each request its frame exactly. (The simulator's read time can fall in the next
/// frame when the daemon sent just before a boundary and the read came after it.)
fn dropped(truth: &Path, data: &Path) -> BTreeMap<String, Vec<Drop>> {
    let t = read_truth(truth).expect("truth");
    let mut out: BTreeMap<String, Vec<Drop>> = BTreeMap::new();
    for host in [GATEWAY, ISP, DNS] {
        let dir = data.join(zzping_lib::store::layout::host_dir_name(host));
        let hd = zzping_lib::store::Host::open(&dir).expect("host directory");
        let mut frames = hd.frames(0, u64::MAX);
        let mut sent = Vec::new();
        while let Some(f) = frames.next_frame().expect("frame") {
            sent.push((f.start_us, f.sent as usize));
        }
        assert!(frames.issues().is_empty(), "{host}: {:?}", frames.issues());
        sent.sort_unstable();
        let frame_of: Vec<u64> = sent
            .iter()
            .flat_map(|&(start, n)| std::iter::repeat_n(start, n))
            .collect();
        let reqs = t.requests_to(host.parse().unwrap());
        assert_eq!(
            frame_of.len(),
            reqs.len(),
            "{host}: the frames' sends vs the requests the simulator read"
        );
        let drops = out.entry(host.to_string()).or_default();
        for (r, &frame_us) in reqs.iter().zip(&frame_of) {
            if matches!(r.fate, Fate::DroppedOutage | Fate::DroppedBurst) {
                drops.push(Drop {
                    read_us: r.time_us,
                    frame_us,
                });
            }
        }
    }
    out
}

/// For a failure message: the recorded frames around an event (from `zzping export`)
/// and the truth's drops in it, per host.
fn around(data: &Path, truth: &BTreeMap<String, Vec<Drop>>, drops: &[u64]) -> String {
    let (lo, hi) = (
        drops
            .iter()
            .min()
            .unwrap_or(&0)
            .saturating_sub(3 * PERIOD_US),
        drops.iter().max().unwrap_or(&0) + 3 * PERIOD_US,
    );
    let mut out = String::from("truth drops (read µs, frame µs):\n");
    for (host, times) in truth {
        let t: Vec<_> = times
            .iter()
            .filter(|t| (lo..hi).contains(&t.read_us))
            .map(|t| (t.read_us, t.frame_us))
            .collect();
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
    zzping_testkit::require!(zzping_testkit::privileges::tun());
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

    let truth = dropped(&truth, &data);
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
    let mut all_drops: Vec<u64> = truth.values().flatten().map(|d| d.read_us).collect();
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
        let event: Vec<Drop> = truth
            .values()
            .flatten()
            .copied()
            .filter(|d| event_of(d.read_us) == i)
            .collect();
        let drops: Vec<u64> = event.iter().map(|d| d.read_us).collect();
        assert_eq!(
            o["failed"].as_u64().unwrap(),
            drops.len() as u64,
            "outage {i}: lost requests\n{}",
            around(&data, &truth, &drops)
        );
        // The outage spans exactly the frames that hold its drops (lost requests count
        // in the frame they were sent in): it starts with the first and ends with the
        // end of the last.
        let start = o["start_us"].as_u64().unwrap();
        let end = start + o["duration_us"].as_u64().unwrap();
        let first = event.iter().map(|d| d.frame_us).min().unwrap();
        let last = event.iter().map(|d| d.frame_us).max().unwrap() + PERIOD_US;
        assert_eq!(
            (start, end),
            (first, last),
            "outage {i}: [start, end) vs the frames holding its drops\n{}",
            around(&data, &truth, &drops)
        );
    }
}
