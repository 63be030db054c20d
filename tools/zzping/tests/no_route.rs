//! The run quoted at the top of issue 14, with the real binaries: inside a network
//! namespace with only loopback up (no route anywhere, what a laptop sees when its Wi-Fi
//! disconnects), `zzping-daemon` pings 127.0.0.1 and a 198.18.x address for 4 s, and
//! `zzping report` must show loss 100 % for the unroutable host, its errors by kind, and
//! one outage naming it with the cause. (Nothing is sent to the unroutable address: the
//! kernel refuses the send.)
//!
//! Needs root (a network namespace). Without it the test says why and skips, unless `CI`
//! is set, where it fails.

mod common;

use common::daemon_binary;
use std::process::{Command, Stdio};
use std::time::Duration;
use zzping_testkit::process::output_bounded;

/// The unroutable target (the 203.0.113.7, moved to the test range).
const UNROUTABLE: &str = "198.18.0.7";
/// The run: 20 pings/s per host for 4 s.
const RATE: &str = "20";
const SECS: &str = "4";
/// The 4 s run, its last timeout (1 s) and its shutdown, with margin.
const RUN_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_host_without_a_route_is_100_percent_loss_and_one_outage_naming_it() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let daemon = daemon_binary();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d2");
    let d = data.clone();
    let run = std::thread::spawn(move || {
        zzping_testkit::netns::enter();
        let child = Command::new(daemon)
            .args(["--config", "none", "--live", "off", "--data-dir"])
            .arg(&d)
            .args(["--target", "127.0.0.1", "--target", UNROUTABLE])
            .args(["--rate", RATE, "--duration", SECS])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run zzping-daemon");
        output_bounded(child, RUN_LIMIT)
    });
    let out = run.join().expect("daemon thread");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    // fping's convention: 1 when some target never answered.
    assert_eq!(out.status.code(), Some(1), "daemon:\n{log}");

    let o = Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(["report", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let host = |a: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["label"] == a)
            .unwrap_or_else(|| panic!("{a} in {v:#}"))
            .clone()
    };
    let lo = host("127.0.0.1");
    assert_eq!(lo["loss_pct"], 0.0, "{v:#}\ndaemon:\n{log}");
    let far = host(UNROUTABLE);
    let sent = far["sent"].as_u64().unwrap();
    assert!(sent > 0, "{v:#}");
    assert_eq!(far["loss_pct"], 100.0, "{v:#}");
    assert_eq!(
        (&far["errors"], &far["timeouts"]),
        (&sent.into(), &0.into()),
        "{v:#}"
    );
    assert_eq!(
        far["error_kinds"],
        serde_json::json!({ "no_route": sent }),
        "{v:#}"
    );

    let outages = v["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{v:#}");
    let o = &outages[0];
    assert_eq!(o["hosts"][0]["label"], UNROUTABLE, "{v:#}");
    assert_eq!(o["verdict"], "down", "{v:#}");
    assert_eq!(o["cause"], "no_route", "{v:#}");
    assert_eq!(o["cause_text"], "no route from this machine", "{v:#}");

    // The text a user reads.
    let o = Command::new(env!("CARGO_BIN_EXE_zzping"))
        .arg("report")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    // Neither address is a default gateway or private: no gateway, and why.
    assert_eq!(
        text.lines().nth(1),
        Some("Gateway: unknown (no host is a default gateway or has a private address)"),
        "{text}"
    );
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with(UNROUTABLE))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    let sent_s = sent.to_string();
    assert_eq!(row[1..5], [&sent_s, "100.000", "0", &sent_s], "{text}");
    assert!(text.contains("Outages (1):"), "{text}");
    assert!(
        text.contains(&format!("  {UNROUTABLE} down the whole time: since "))
            && text.contains("; no route from this machine"),
        "{text}"
    );
}
