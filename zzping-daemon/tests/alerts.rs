//! `[[alert]]` rules end to end: the daemon binary pings zzping-netsim's
//! `tests/scenarios/alerts.toml` (the network goes away three times for 1 s) in a network
//! namespace created for the test's thread, with rules whose command appends its
//! `ZZPING_ALERT_*` environment to a file.
//!
//! * `each_event_runs_its_command_once_and_rate_limits_hold`: the events the daemon should
//!   have had are computed from its own frame files, by zzping-lib's evaluator with the
//!   same rules: the command ran exactly once per event, in order, with the right
//!   variables (outage rules on one host and on all hosts, a loss and a p95 rule, their
//!   values as the files give them; the alert still firing when the daemon stops ends
//!   with a resolved event whose reason is `stopped`); a rule whose `min_interval_s`
//!   spans the run ran its command for the first outage only (its firing and that
//!   firing's resolved), the other events suppressed and said so in the log.
//! * `a_slow_command_does_not_delay_pings`: a command that would run 30 s runs from the
//!   first outage on, while the daemon keeps pinging: the files hold every send the
//!   schedule allows, no frame is flagged late, and the command is killed at its bound
//!   (`COMMAND_TIMEOUT`); on stopping, the daemon runs the commands still queued for at
//!   most `SHUTDOWN_DRAIN`, kills the one running then and drops the rest.
//!
//! Without the privileges for a network namespace and a TUN device the tests say why and
//! skip, unless `CI` is set (then they fail).
//!
//! ```text
//! cargo nextest run -p zzping-daemon -E 'binary(alerts)' --no-capture
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zzping_daemon::alert::{COMMAND_TIMEOUT, REASON_CONDITION, SHUTDOWN_DRAIN};
use zzping_daemon::config::FileConfig;
use zzping_lib::alert::{AlertEvent, Evaluator, Unwatched};
use zzping_lib::frame::Frame;
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_testkit::process::wait_bounded;
use zzping_testkit::{netns, privileges, require};

/// Pings per second per host.
const RATE: f64 = 50.0;
/// The frame period of the daemon's default, µs.
const PERIOD_US: u32 = 100_000;
/// The hosts of the scenario: (label, address); each label is also the host's role.
const HOSTS: [(&str, &str); 2] = [("gateway", "198.18.0.10"), ("internet", "198.18.8.8")];
/// A bound on the daemon's run beyond its `--duration` (the wait for the replies in
/// flight, and the queued commands' `SHUTDOWN_DRAIN` at exit): a bound on the test only.
const EXIT_SLACK: Duration = Duration::from_secs(SHUTDOWN_DRAIN.as_secs() + 15);

fn scenario() -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/alerts.toml");
    Scenario::load(&p).unwrap()
}

/// A shell script that appends its `ZZPING_ALERT_*` variables (sorted), `ARGV=` its
/// argument count and first argument, and a `--` line to `out`; with `sleep_s`, it then
/// sleeps that long.
fn recorder(dir: &Path, name: &str, out: &Path, sleep_s: u32) -> PathBuf {
    let script = dir.join(name);
    let tail = if sleep_s > 0 {
        format!("exec /bin/sleep {sleep_s}\n")
    } else {
        String::new()
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ env | grep '^ZZPING_ALERT_' | sort; echo \"ARGV=$#:$1\"; echo --; }} >> '{}'\n{tail}",
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// The records a recorder wrote: one map of variables per run.
fn records(out: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut v = Vec::new();
    let mut cur = BTreeMap::new();
    for l in text.lines() {
        if l == "--" {
            v.push(std::mem::take(&mut cur));
        } else if let Some((k, val)) = l.split_once('=') {
            cur.insert(
                k.trim_start_matches("ZZPING_ALERT_").to_owned(),
                val.to_owned(),
            );
        }
    }
    v
}

/// Runs the daemon with `config` (TOML, without data_dir) for `duration_s` in the
/// simulated network; returns its data directory and its log.
fn run_daemon(dir: &Path, config: &str, duration_s: u32) -> (PathBuf, String) {
    let data = dir.join("data");
    let mut toml = format!(
        "data_dir = \"{}\"\nrate = {RATE}\ntimeout_ms = 500\nlive = \"off\"\nflush_interval_s = 1\n",
        data.display()
    );
    for (label, addr) in HOSTS {
        toml.push_str(&format!(
            "[[host]]\ntarget = \"{addr}\"\nlabel = \"{label}\"\nrole = \"{label}\"\n"
        ));
    }
    toml.push_str(config);
    let cfg = dir.join("zzping.toml");
    std::fs::write(&cfg, toml).unwrap();
    let sc = scenario();
    let log = std::thread::spawn(move || {
        netns::enter();
        let sim = Simulator::start(&sc, None).expect("start the simulator");
        let (mut daemon, mut log) = common::spawn_daemon_logged(&[
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            &duration_s.to_string(),
        ]);
        let st = wait_bounded(
            &mut daemon.0,
            Duration::from_secs(u64::from(duration_s)) + EXIT_SLACK,
            "the daemon",
        );
        let log = log.drain().to_owned();
        assert!(st.success(), "daemon failed ({st}):\n{log}");
        sim.stop().expect("stop the simulator");
        log
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    (data, log)
}

/// The frames of every host in the files, as the daemon made them final.
fn frames(data: &Path) -> Vec<(&'static str, Vec<Frame>)> {
    HOSTS
        .iter()
        .map(|(label, _)| {
            let fs = common::read_host(&data.join(label))
                .into_iter()
                .map(|f| {
                    let mut g = Frame::new(f.start_us, PERIOD_US);
                    (g.sent, g.lost, g.errors, g.flags) = (f.sent, f.lost, f.errors, f.flags);
                    g.rtts_us = f.rtts_us;
                    g
                })
                .collect();
            (*label, fs)
        })
        .collect()
}

/// The events of `alerts` (TOML `[[alert]]` tables) on the frames: the hosts' frames
/// in the order they became final (by start; hosts in configuration order), then the
/// end of the alerts still firing when the daemon stops (`since` 0: the daemon's clock
/// at its stop). Each: (rule, state, host, since, value, reason).
fn expected_events(
    alerts: &str,
    hosts: &[(&str, Vec<Frame>)],
) -> Vec<(String, String, String, u64, f64, String)> {
    let file: FileConfig = toml::from_str(alerts).unwrap();
    let rules = zzping_daemon::alert::config::rules(&file.alert).unwrap();
    let mut ev = Evaluator::new(rules);
    for (i, (label, _)) in hosts.iter().enumerate() {
        ev.add_host(i as u64, label, PERIOD_US);
    }
    let mut all: Vec<(u64, usize, &Frame)> = hosts
        .iter()
        .enumerate()
        .flat_map(|(i, (_, fs))| fs.iter().map(move |f| (f.start_us, i, f)))
        .collect();
    all.sort_by_key(|&(t, i, _)| (t, i));
    let mut out = Vec::new();
    let mut got = Vec::new();
    let mut take = |ev: &Evaluator, out: &mut Vec<AlertEvent>| {
        for e in out.drain(..) {
            got.push((
                ev.rules()[e.rule].name.clone(),
                e.state.name().to_owned(),
                e.host
                    .map_or("all".to_owned(), |h| hosts[h as usize].0.to_owned()),
                if e.unwatched.is_some() { 0 } else { e.since_us },
                e.value,
                e.unwatched
                    .map_or(REASON_CONDITION, Unwatched::name)
                    .to_owned(),
            ));
        }
    };
    for (_, i, f) in all {
        ev.on_frame(i as u64, f, &mut out);
        take(&ev, &mut out);
    }
    ev.unwatch_all(Unwatched::Stopped, 0, &mut out);
    take(&ev, &mut out);
    got
}

#[test]
fn each_event_runs_its_command_once_and_rate_limits_hold() {
    require!(privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(format!("{name}.txt"));
    let (down_out, all_out, flap_out, lossy_out, slow_out) = (
        out("down"),
        out("all"),
        out("flap"),
        out("lossy"),
        out("slow"),
    );
    let cmd = |name: &str, out: &Path| {
        format!(
            "[\"{}\", \"one arg\"]",
            recorder(dir.path(), name, out, 0).display()
        )
    };
    let alerts = format!(
        "[[alert]]\nname = \"down\"\nwhen = \"outage\"\nhost = \"gateway\"\nfor_s = 0.3\n\
         clear_s = 0.3\nmin_interval_s = 0\ncommand = {}\n\
         [[alert]]\nname = \"all-down\"\nwhen = \"outage\"\nhost = \"all\"\nfor_s = 0.3\n\
         clear_s = 0.3\nmin_interval_s = 0\ncommand = {}\n\
         [[alert]]\nname = \"flap\"\nwhen = \"outage\"\nhost = \"gateway\"\nfor_s = 0.3\n\
         clear_s = 0.3\nmin_interval_s = 3600\ncommand = {}\n\
         [[alert]]\nname = \"lossy\"\nwhen = \"loss\"\nhost = \"gateway\"\nabove_pct = 20\n\
         window_s = 1\nmin_interval_s = 0\ncommand = {}\n\
         [[alert]]\nname = \"slow\"\nwhen = \"p95\"\nhost = \"internet\"\nabove_ms = 3\n\
         window_s = 1\nmin_interval_s = 0\ncommand = {}\n",
        cmd("down.sh", &down_out),
        cmd("all.sh", &all_out),
        cmd("flap.sh", &flap_out),
        cmd("lossy.sh", &lossy_out),
        cmd("slow.sh", &slow_out),
    );
    // The last outage ends 7 s in; its resolved events come 0.3 s + the 0.5 s timeout
    // later, far from the end.
    let (data, log) = run_daemon(dir.path(), &alerts, 10);
    let hosts = frames(&data);
    let want = expected_events(&alerts, &hosts);
    let of = |rule: &str| -> Vec<_> { want.iter().filter(|e| e.0 == rule).cloned().collect() };
    // The scenario's three outages, each long enough for the rules.
    let down = of("down");
    let states: Vec<&str> = down.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        states,
        [
            "firing", "resolved", "firing", "resolved", "firing", "resolved"
        ],
        "{log}"
    );
    // Loss: the gateway's outages, over 1 s windows. p95: the internet host answers in
    // 5 ms, above 3 ms once its first window is whole (and its windows never empty for
    // its clear_s of 1 s: it stays firing).
    let states = |rule: &str| -> Vec<String> { of(rule).into_iter().map(|e| e.1).collect() };
    let lossy = states("lossy");
    assert!(
        lossy.len() >= 2 && lossy[..2] == ["firing", "resolved"],
        "{lossy:?}\n{log}"
    );
    let slow = states("slow");
    assert_eq!(slow.first().map(String::as_str), Some("firing"), "{log}");
    // Still firing at the stop: its command hears the end, and why.
    assert_eq!(
        of("slow").last().map(|e| (e.1.as_str(), e.5.as_str())),
        Some(("resolved", "stopped")),
        "{log}"
    );
    let last_start = hosts
        .iter()
        .flat_map(|(_, fs)| fs.last())
        .map(|f| f.start_us)
        .max()
        .unwrap();
    for (out, rule, when, addr, role, threshold) in [
        (&down_out, "down", "outage", "198.18.0.10", "gateway", "0.3"),
        (&all_out, "all-down", "outage", "", "", "0.3"),
        (&lossy_out, "lossy", "loss", "198.18.0.10", "gateway", "20"),
        (&slow_out, "slow", "p95", "198.18.8.8", "internet", "3"),
    ] {
        let got = records(out);
        let want = of(rule);
        assert_eq!(got.len(), want.len(), "{rule}: {got:?} vs {want:?}\n{log}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["NAME"], rule);
            // The arguments as configured, no shell in between.
            assert_eq!(g["ARGV"], "1:one arg");
            assert_eq!(g["STATE"], w.1, "{g:?}");
            assert_eq!(g["WHEN"], when);
            assert_eq!(g["HOST"], w.2);
            assert_eq!(g["ADDRESS"], addr);
            assert_eq!(g["ROLE"], role);
            assert_eq!(g["THRESHOLD"], threshold);
            assert_eq!(g["REASON"], w.5, "{g:?} vs {w:?}");
            let since = zzping_lib::time::parse_rfc3339_us(&g["SINCE"]);
            if w.5 == "stopped" {
                // Ended when the daemon stopped: after the last frame began.
                assert!(since.is_some_and(|t| t >= last_start), "{g:?}");
            } else {
                assert_eq!(since, Some(w.3), "{g:?} vs {w:?}");
            }
            // The value, as the files say; p95 from buckets within 9 % (the files'
            // RTTs are quantized to 1 %: the bucket may differ at an edge).
            let value: f64 = g["VALUE"].parse().unwrap();
            let tolerance = if when == "p95" { 0.2 * w.4 } else { 0.001 };
            assert!((value - w.4).abs() <= tolerance, "{g:?} vs {w:?}");
            let th: f64 = threshold.parse().unwrap();
            if g["STATE"] == "firing" {
                assert!(value >= th, "{g:?}");
            }
            match (when, g["STATE"].as_str()) {
                _ if w.5 == "stopped" => {
                    assert!(
                        g["TEXT"].contains("no longer watched (zzping stopped"),
                        "{g:?}"
                    )
                }
                ("outage", "firing") => {
                    assert!(g["TEXT"].contains("every request failed"), "{g:?}")
                }
                ("outage", _) => assert!(g["TEXT"].contains("answering again"), "{g:?}"),
                _ => assert!(g["TEXT"].contains("over the last 1 s"), "{g:?}"),
            }
            assert!(g["TEXT"].starts_with(&format!("alert {rule} {}: ", w.1)));
        }
    }
    // Rate limited: the first outage's pair only; the two later firings and their
    // resolved events suppressed, and logged.
    let flap = records(&flap_out);
    let first = &of("flap")[..2];
    assert_eq!(flap.len(), 2, "{flap:?}\n{log}");
    for (g, w) in flap.iter().zip(first) {
        assert_eq!(
            (
                g["STATE"].as_str(),
                zzping_lib::time::parse_rfc3339_us(&g["SINCE"])
            ),
            (w.1.as_str(), Some(w.3))
        );
    }
    let suppressed = log
        .lines()
        .filter(|l| l.contains("alert flap: command not run"))
        .count();
    assert_eq!(suppressed, 4, "{log}");
    // Every event logged.
    let logged = log
        .lines()
        .filter(|l| l.contains(" firing: ") || l.contains(" resolved: "))
        .count();
    assert_eq!(logged, want.len(), "{log}");
}

#[test]
fn a_slow_command_does_not_delay_pings() {
    require!(privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("slow.txt");
    // Sleeps far longer than the daemon's bound on a command.
    let sleep_s = 3 * COMMAND_TIMEOUT.as_secs() as u32;
    let script = recorder(dir.path(), "slow.sh", &out, sleep_s);
    let alerts = format!(
        "[[alert]]\nname = \"slow\"\nwhen = \"outage\"\nhost = \"gateway\"\nfor_s = 0.3\n\
         min_interval_s = 0\ncommand = [\"{}\"]\n",
        script.display()
    );
    let duration_s = 8;
    let (data, log) = run_daemon(dir.path(), &alerts, duration_s);
    // The command started at the first outage (2.8 s in) and was killed at its bound:
    // at exit the daemon waits for it, so the line is there.
    let ran = records(&out);
    assert_eq!(
        ran.first().map(|r| r["STATE"].as_str()),
        Some("firing"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "still running after {} s: killed",
            COMMAND_TIMEOUT.as_secs()
        )),
        "{log}"
    );
    // Meanwhile the loop kept its schedule: had it waited for the command, it would have
    // stalled for COMMAND_TIMEOUT (10 s), and sends would have been skipped (the loop
    // skips sends more than 1 s overdue) or gone out that late.
    let exit_line = log
        .lines()
        .rfind(|l| l.contains("stopped: "))
        .unwrap_or_else(|| panic!("no exit line:\n{log}"));
    assert_eq!(
        common::exit_field(exit_line, "sends skipped "),
        0.0,
        "{exit_line}"
    );
    let max_late_us = common::exit_field(exit_line, "µs max ");
    assert!(max_late_us < 1e6, "{exit_line}");
    // Every send the schedule allows is in the files, each frame with its outcomes.
    let want = common::scheduled_sends(RATE, f64::from(duration_s), exit_line);
    for (label, fs) in frames(&data) {
        let sent = fs.iter().map(|f| u64::from(f.sent)).sum::<u64>();
        assert!(
            want.contains(&sent),
            "{label}: {sent} sends, want {want:?}\n{log}"
        );
        for f in &fs {
            assert_eq!(f.sent, f.received() + f.lost + f.errors, "{label}: {f:?}");
        }
    }
    // The later events' commands were still queued at exit: they ran on stopping, each
    // until the drain's deadline (every one would run 30 s), the one running then was
    // killed and the rest dropped, with their count in the log. The first ran to its
    // 10 s (from 2.8 s in) and the drain lasts 20 s from the stop (8 s in): at least
    // one queued command started in it.
    assert!(ran.len() >= 2, "{ran:?}\n{log}");
    assert!(ran.iter().all(|r| r["ARGV"] == "0:"), "{ran:?}");
    let events = log
        .lines()
        .filter(|l| l.contains("alert slow firing: ") || l.contains("alert slow resolved: "))
        .count();
    let dropped: usize = log
        .lines()
        .find_map(|l| {
            let n = l
                .split("alerts: ")
                .nth(1)?
                .split(" commands not run")
                .next()?;
            n.parse().ok()
        })
        .unwrap_or(0);
    assert_eq!(ran.len() + dropped, events, "{ran:?}\n{log}");
    assert!(
        log.contains(&format!(
            "at the end of stopping ({} s at most)",
            SHUTDOWN_DRAIN.as_secs()
        )) == (dropped > 0),
        "{log}"
    );
}
