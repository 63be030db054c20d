//! The run quoted at the top of issue 14, with the real binaries: inside a network
//! namespace with only loopback up (no route anywhere, what a laptop sees when its Wi-Fi
//! disconnects), `zzping-daemon` pings 127.0.0.1 and a 198.18.x address for 4 s, and
//! `zzping report` must show loss 100 % for the unroutable host, its errors by kind, and
//! one outage naming it with the cause. (Nothing is sent to the unroutable address: the
//! kernel refuses the send.)
//!
//! Needs root (a network namespace). Without it the test says why and skips, unless `CI`
//! is set, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use zzping_testkit::process::{output_bounded, wait_bounded};

/// The unroutable target (the 203.0.113.7, moved to the test range).
const UNROUTABLE: &str = "198.18.0.7";
/// The run: 20 pings/s per host for 4 s.
const RATE: &str = "20";
const SECS: &str = "4";
/// Building the daemon binary: linking at most, its library is built for this test
/// already; the limit is for a loaded 2-core machine.
const BUILD_LIMIT: Duration = Duration::from_secs(15 * 60);
/// The 4 s run, its last timeout (1 s) and its shutdown, with margin.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The `zzping-daemon` binary of this build, beside this test's `zzping` (same profile
/// and target directory). A workspace test run (the README's command) has built it
/// already, for the daemon's own tests; it is built here only when it is missing or older
/// than a file it is made of (this package's tests run alone). A test of another
/// package's binary has no `CARGO_BIN_EXE_` for it, and `cargo build -p zzping-daemon`
/// always compiles the daemon again (its units differ from the test build's): a minute
/// on a loaded 2-core machine, beside the timing-sensitive tests.
fn daemon_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_zzping"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let bin = dir.join("zzping-daemon");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources = ["zzping-daemon", "zzping-lib", "Cargo.toml", "Cargo.lock"];
    let newest = sources
        .iter()
        .filter_map(|s| newest_mtime(&root.join(s)))
        .max();
    if built.is_some_and(|b| newest.is_some_and(|n| n <= b)) {
        return bin;
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-q",
        "-p",
        "zzping-daemon",
        "--bin",
        "zzping-daemon",
    ]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
        None => panic!("{}: no profile directory", dir.display()),
    }
    let mut child = cmd.spawn().expect("run cargo build");
    let st = wait_bounded(&mut child, BUILD_LIMIT, "cargo build -p zzping-daemon");
    assert!(st.success(), "cargo build -p zzping-daemon: {st}");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// The latest modification time of `path` or of any file below it (`target` and hidden
/// directories skipped); `None` when nothing there can be read.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name != "target" && !name.starts_with('.')
        })
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

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
