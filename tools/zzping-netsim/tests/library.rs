//! Using the simulator as a library from a test, as other crates' tests can:
//! a thread moves itself into a fresh network namespace, starts the
//! simulator there and probes it; nothing else in the process is affected.

mod common;

use std::net::IpAddr;
use std::path::Path;

use zzping_netsim::profile::Fate;
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_netsim::sys;
use zzping_netsim::truth::read_truth;

#[test]
fn in_process_simulator_in_a_thread_namespace() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.jsonl");
    let scenario = Scenario::parse(
        r#"
        [simulation]
        seed = 9
        [[host]]
        name = "a"
        addresses = ["198.18.3.3", "2001:db8:3::3"]
        rtt_ms = 4.0
        [[host]]
        name = "q"
        addresses = ["198.18.3.4"]
        behavior = "silent"
        "#,
        Path::new("inline.toml"),
    )
    .unwrap();
    let t2 = truth.clone();
    let h = std::thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let sim = Simulator::start(&scenario, Some(&t2)).expect("start the simulator");
        let t0 = std::time::Instant::now();
        let v4 = common::probe("198.18.3.3".parse().unwrap(), 0x1111, 1);
        let rtt = t0.elapsed();
        let v6 = common::probe("2001:db8:3::3".parse().unwrap(), 0x2222, 2);
        let silent = common::probe("198.18.3.4".parse().unwrap(), 0x3333, 3);
        let summary = sim.stop().expect("stop the simulator");
        (v4, rtt, v6, silent, summary)
    });
    let (v4, rtt, v6, silent, summary) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    // This thread never left the original namespace: no simulated route here.
    let out = std::process::Command::new("ip")
        .args(["route", "get", "198.18.3.3"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("zzsim0"));

    let (_, from) = v4.expect("IPv4 reply");
    assert_eq!(from, "198.18.3.3".parse::<IpAddr>().unwrap());
    assert!(
        rtt.as_micros() >= 4000,
        "reply faster than the profile: {rtt:?}"
    );
    assert_eq!(v6.expect("IPv6 reply").0[0], 129);
    assert!(silent.is_none());
    assert_eq!(
        (
            summary.requests,
            summary.replies_sent,
            summary.replies_unsent
        ),
        (3, 2, 0)
    );
    let t = read_truth(&truth).unwrap();
    let fates: Vec<Fate> = t.requests().map(|q| q.fate).collect();
    assert_eq!(fates, vec![Fate::Answered, Fate::Answered, Fate::Silent]);
    assert!(
        t.replies()
            .all(|r| r.delay_us == 4000 && r.sent_us >= r.due_us)
    );
}
