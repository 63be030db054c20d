//! `zzping report` on failures: loss counts errors, errors by kind, hosts that were down,
//! outages with their cause, and `--fail-above` for scripts. The real binary on files
//! written here.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::{ErrorKind, Frame};

/// 2021-01-01T08:00:00Z.
const T0: u64 = 1_609_488_000_000_000;
const P: u32 = 100_000;
/// Frames per host (60 s).
const FRAMES: u64 = 600;
/// Requests per frame.
const PER_FRAME: u32 = 5;
const ROUTER: &str = "198.18.0.1";

fn zz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(args)
        .output()
        .expect("run zzping")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What one frame of a host holds.
#[derive(Clone, Copy)]
enum Slot {
    Answered,
    /// `n` timeouts, the rest answered.
    Lost(u32),
    /// Every request drew an error of this kind (from `ROUTER` when not local).
    Errors(ErrorKind),
}

fn write_host(dir: &Path, label: &str, addr: &str, slot: impl Fn(u64) -> Slot) {
    let mut w = HostWriter::open(
        dir,
        HostInfo {
            label: label.into(),
            address: addr.parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: P,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap();
    for i in 0..FRAMES {
        let mut f = Frame::new(T0 + i * u64::from(P), P);
        f.sent = PER_FRAME;
        match slot(i) {
            Slot::Answered => f.rtts_us = vec![2000; PER_FRAME as usize],
            Slot::Lost(n) => {
                f.lost = n;
                f.rtts_us = vec![2000; (PER_FRAME - n) as usize];
            }
            Slot::Errors(k) => {
                f.errors = PER_FRAME;
                f.error_kinds.add(k, PER_FRAME);
                if !k.is_local() {
                    f.router = Some(ROUTER.parse::<IpAddr>().unwrap());
                }
            }
        }
        w.append(&f).unwrap();
    }
    w.sync().unwrap();
}

/// Five hosts over 60 s: at 10.0-10.3 s every host that is up gets "no route" (this
/// machine lost its routes); at 20.0-21.0 s a router says "host unreachable" for `far`
/// only; `printer` never answers, `laptop` only draws "host unreachable"; `gw` loses
/// 2 requests at 30 s.
fn failure_data(dir: &Path) {
    let local = |i: u64| (100..103).contains(&i);
    write_host(dir, "gw", "192.168.1.1", |i| match i {
        _ if local(i) => Slot::Errors(ErrorKind::NoRoute),
        300 => Slot::Lost(2),
        _ => Slot::Answered,
    });
    write_host(dir, "near", "198.18.9.10", |i| {
        if local(i) {
            Slot::Errors(ErrorKind::NoRoute)
        } else {
            Slot::Answered
        }
    });
    write_host(dir, "far", "198.18.9.9", |i| match i {
        _ if local(i) => Slot::Errors(ErrorKind::NoRoute),
        200..210 => Slot::Errors(ErrorKind::HostUnreachable),
        _ => Slot::Answered,
    });
    write_host(dir, "printer", "198.18.0.30", |_| Slot::Lost(PER_FRAME));
    write_host(dir, "laptop", "198.18.0.31", |_| {
        Slot::Errors(ErrorKind::HostUnreachable)
    });
}

fn report_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["report", "--json", "--gateway", "gw", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = zz(&args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn loss_counts_errors_and_errors_are_shown_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    failure_data(dir.path());
    let v = report_json(dir.path(), &[]);
    let host = |l: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["label"] == l)
            .unwrap_or_else(|| panic!("{l} in {v:#}"))
            .clone()
    };
    let requests = FRAMES * u64::from(PER_FRAME);
    let laptop = host("laptop");
    assert_eq!(laptop["sent"], requests);
    assert_eq!(laptop["errors"], requests);
    assert_eq!(laptop["timeouts"], 0);
    assert_eq!(laptop["loss_pct"], 100.0);
    assert_eq!(
        laptop["error_kinds"],
        serde_json::json!({"host_unreachable": requests})
    );
    assert_eq!(laptop["routers"], serde_json::json!([ROUTER]));
    let printer = host("printer");
    assert_eq!(
        (&printer["timeouts"], &printer["lost"], &printer["errors"]),
        (&requests.into(), &requests.into(), &0.into())
    );
    assert_eq!(printer["loss_pct"], 100.0);
    // gw: 15 "no route" and 2 timeouts of 3000 requests.
    let gw = host("gw");
    assert_eq!((&gw["errors"], &gw["timeouts"]), (&15.into(), &2.into()));
    assert_eq!(gw["failed"], 17);
    let pct = gw["loss_pct"].as_f64().unwrap();
    assert!((pct - 100.0 * 17.0 / 3000.0).abs() < 1e-9, "{pct}");
    assert_eq!(gw["error_kinds"], serde_json::json!({"no_route": 15}));
    assert_eq!(gw["routers"], serde_json::json!([]));
    let far = host("far");
    assert_eq!(
        far["error_kinds"],
        serde_json::json!({"no_route": 15, "host_unreachable": 50})
    );

    let o = zz(&["report", "--gateway", "gw", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let row = |l: &str| {
        out.lines()
            .find(|x| x.starts_with(&format!("{l} ")))
            .unwrap_or_else(|| panic!("{l} in\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // host, sent, loss%, timeouts, errors, ...
    assert_eq!(
        row("laptop")[1..5],
        ["3000", "100.000", "0", "3000"],
        "{out}"
    );
    assert_eq!(row("gw")[1..5], ["3000", "0.567", "2", "15"], "{out}");
    assert!(out.contains("Errors by kind:"), "{out}");
    assert!(
        out.contains("  far: no_route 15, host_unreachable 50 (ICMP errors from 198.18.0.1)"),
        "{out}"
    );
}

#[test]
fn down_hosts_stand_apart_and_each_outage_names_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    failure_data(dir.path());
    let v = report_json(dir.path(), &[]);
    let outages = v["outages"].as_array().unwrap();
    let summary: Vec<(&str, Vec<&str>)> = outages
        .iter()
        .map(|o| {
            (
                o["verdict"].as_str().unwrap(),
                o["hosts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["label"].as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("down", vec!["laptop"]),
            ("down", vec!["printer"]),
            ("machine", vec!["far", "gw", "near"]),
            ("host", vec!["far"]),
        ],
        "{v:#}"
    );
    let (laptop, printer, local, far) = (&outages[0], &outages[1], &outages[2], &outages[3]);
    assert_eq!(printer["cause"], "timeout");
    assert_eq!(printer["down_pct"], 100.0);
    assert_eq!(printer["duration_us"], FRAMES * u64::from(P));
    assert_eq!(laptop["cause"], "host_unreachable");
    assert_eq!(laptop["cause_text"], "host unreachable, said 198.18.0.1");
    // This machine lost its routes: every host up fails at once, "no route".
    assert_eq!(local["start_us"], T0 + 100 * u64::from(P));
    assert_eq!(local["duration_us"], 3 * u64::from(P));
    assert_eq!(local["failed"], 3 * 3 * PER_FRAME);
    assert_eq!(local["cause"], "no_route");
    assert_eq!(local["cause_text"], "no route from this machine");
    assert_eq!(local["verdict_text"], "this machine");
    assert_eq!(local["unaffected"], serde_json::json!([]));
    // One host behind a router that says it is unreachable.
    assert_eq!(far["start_us"], T0 + 200 * u64::from(P));
    assert_eq!(far["duration_us"], 10 * u64::from(P));
    assert_eq!(far["errors"], 10 * PER_FRAME);
    assert_eq!(far["router"], ROUTER);
    assert_eq!(far["cause_text"], "host unreachable, said 198.18.0.1");
    assert_eq!(far["unaffected"], serde_json::json!(["gw", "near"]));

    let o = zz(&["report", "--gateway", "gw", dir.path().to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("Outages (4):"), "{out}");
    assert!(
        out.contains("  printer down the whole time: since 2021-01-01T08:00:00.000000Z, 60.0 s (100.0 % of its requests), 3000 failed; no reply (timeouts)"),
        "{out}"
    );
    assert!(
        out.contains("-> this machine; no route from this machine"),
        "{out}"
    );
    assert!(
        out.contains("far (50)  -> that host (far); host unreachable, said 198.18.0.1"),
        "{out}"
    );
}

#[test]
fn fail_above_exits_1_when_a_hosts_loss_is_above_it() {
    let dir = tempfile::tempdir().unwrap();
    failure_data(dir.path());
    let d = dir.path().to_str().unwrap();
    // gw's loss is 0.567 %; printer and laptop lost everything.
    let o = zz(&["report", d, "--fail-above", "99.5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!o.stdout.is_empty(), "the report is printed all the same");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("printer (100.000 %)"), "{err}");
    assert!(err.contains("laptop (100.000 %)"), "{err}");
    assert!(!err.contains("gw"), "{err}");
    let o = zz(&["report", d, "--host", "gw", "--fail-above", "0.5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = zz(&["report", d, "--host", "gw", "--json", "--fail-above", "0.6"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Exactly at the limit is not above it.
    let o = zz(&["report", d, "--host", "printer", "--fail-above", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Not a percentage: a usage error naming the flag.
    let o = zz(&["report", d, "--fail-above", "150"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--fail-above"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    failure_data(dir.path());
    for json in [true, false] {
        // The reading end is closed before the report is written: its write fails
        // (EPIPE) at once.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zzping"));
        cmd.arg("report").arg(dir.path());
        if json {
            cmd.arg("--json");
        }
        let o = cmd
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "json {json}: {}", text(&o));
        assert!(o.stderr.is_empty(), "json {json}: {}", text(&o));
    }
}

/// The context events beside the frames are listed, and a link lost during an outage
/// makes it this machine's, named (rule 1 of the verdicts, before the send errors').
#[test]
fn context_events_are_listed_and_a_link_down_names_this_machine() {
    use zzping_lib::events::{ContextEvent, EventKind, EventWriter};
    let dir = tempfile::tempdir().unwrap();
    failure_data(dir.path());
    let mut w = EventWriter::new(dir.path(), "test");
    let down = T0 + 100 * u64::from(P) + 50_000;
    for ev in [
        ContextEvent::new(T0, EventKind::DaemonStart),
        ContextEvent::link(down, EventKind::LinkDown, "wlan0"),
        ContextEvent::link(down + 3_200_000, EventKind::LinkUp, "wlan0"),
        // Outside the window asked for below: not listed.
        ContextEvent::daemon_stop(T0 + 59_000_000, "signal 15"),
    ] {
        w.append(&ev, T0);
    }
    w.flush().unwrap();
    let v = report_json(dir.path(), &["--to", "2021-01-01T08:00:50Z"]);
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["daemon_start", "link_down", "link_up"], "{v:#}");
    assert_eq!(v["events"][1]["interface"], "wlan0");
    assert_eq!(v["events"][1]["text"], "link wlan0 down");
    let local = v["outages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["start_us"] == T0 + 100 * u64::from(P))
        .unwrap();
    assert_eq!(local["verdict"], "machine", "{local:#}");
    assert_eq!(
        local["verdict_text"],
        "Wi-Fi link wlan0 down 3.2 s: this machine"
    );
    // The one host's outage later (no link event then) keeps its verdict.
    let far = v["outages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["start_us"] == T0 + 200 * u64::from(P))
        .unwrap();
    assert_eq!(far["verdict"], "host", "{far:#}");

    let o = zz(&[
        "report",
        "--gateway",
        "gw",
        "--to",
        "2021-01-01T08:00:50Z",
        dir.path().to_str().unwrap(),
    ]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("Context events (3):"), "{out}");
    assert!(
        out.contains("  2021-01-01T08:00:10.050000Z  link wlan0 down"),
        "{out}"
    );
    assert!(
        out.contains("-> Wi-Fi link wlan0 down 3.2 s: this machine; no route from this machine"),
        "{out}"
    );
}
