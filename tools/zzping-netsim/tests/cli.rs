//! Command-line behaviour: exit statuses, signals, cleanup, errors, `run`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, scenario};
use zzping_netsim::packet;
use zzping_netsim::profile::Fate;
use zzping_netsim::truth::read_truth;
use zzping_testkit::process::wait_bounded;

#[test]
fn hosts_lists_every_address() {
    let out = Command::new(bin())
        .args(["hosts", "--scenario"])
        .arg(scenario("unreachable-silent"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines.contains(&"198.18.0.30\tgone\tunreachable rtt=1ms"),
        "{text}"
    );
    assert!(lines.contains(&"2001:db8::31\tblackhole\tsilent"), "{text}");
    assert!(
        lines[0].starts_with("198.18.0.10\talive\techo rtt=1ms"),
        "{text}"
    );
}

#[test]
fn bad_scenario_names_file_host_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.toml");
    std::fs::write(
        &p,
        "[[host]]\nname = \"ok\"\naddresses = [\"198.18.0.10\"]\n[[host]]\nname = \"wifi\"\naddresses = [\"198.18.0.11\"]\nloss = 2.0\n",
    )
    .unwrap();
    for sub in ["hosts", "run"] {
        let out = Command::new(bin())
            .args([sub, "--scenario"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("broken.toml"), "{sub}: {err}");
        assert!(err.contains("host \"wifi\""), "{sub}: {err}");
        assert!(err.contains("`loss`"), "{sub}: {err}");
    }
    let out = Command::new(bin())
        .args(["hosts", "--scenario", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

fn exec_status(cmd: &[&str]) -> std::process::Output {
    let child = Command::new(bin())
        .args(["exec", "--scenario"])
        .arg(scenario("clean"))
        .arg("--")
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    zzping_testkit::process::output_bounded(child, Duration::from_secs(10))
}

#[test]
fn exec_passes_exit_status_through() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    assert_eq!(exec_status(&["sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(exec_status(&["true"]).status.code(), Some(0));
    assert_eq!(
        exec_status(&["sh", "-c", "kill -KILL $$"]).status.code(),
        Some(128 + 9)
    );
    let out = exec_status(&["/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/program"));
}

fn link_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .collect()
}

#[test]
fn exec_namespace_is_private_and_cleaned_up() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let before = link_names();
    assert!(!before.iter().any(|n| n == "zzsim0"), "{before:?}");
    let out = exec_status(&[
        "sh",
        "-c",
        "ip -o link show; ip -o addr show dev zzsim0; ip route; ip -6 route",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inside = String::from_utf8_lossy(&out.stdout);
    // Inside: only lo and the TUN, with the local addresses and routes.
    assert_eq!(
        inside.lines().filter(|l| l.contains("link/")).count(),
        2,
        "{inside}"
    );
    assert!(
        inside.contains("zzsim0") && inside.contains("UP"),
        "{inside}"
    );
    assert!(inside.contains("inet 198.18.0.1/15"), "{inside}");
    assert!(inside.contains("inet6 2001:db8::1/32"), "{inside}");
    assert!(inside.contains("198.18.0.0/15 dev zzsim0"), "{inside}");
    assert!(inside.contains("2001:db8::/32 dev zzsim0"), "{inside}");
    // Outside: no device appeared and none was left behind.
    let after = link_names();
    assert!(!after.iter().any(|n| n == "zzsim0"), "{after:?}");
    assert!(
        after
            .iter()
            .all(|n| before.contains(n) || !n.starts_with("zzsim"))
    );
}

fn signal_forwarded(sig: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.jsonl");
    let mut child = Command::new(bin())
        .args(["exec", "--scenario"])
        .arg(scenario("clean"))
        .arg("--truth")
        .arg(&truth)
        .args(["--", "sh", "-c", "echo started; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");
    // SAFETY: signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    // (The limit only bounds the test: without forwarding, `sleep` would run its 30 s
    // and end with status 0, which the status check below tells apart without a clock.)
    let st = wait_bounded(&mut child, Duration::from_secs(60), "zzping-netsim");
    // sleep died of the forwarded signal: 128 + N.
    assert_eq!(st.code(), Some(128 + sig));
    let t = read_truth(&truth).unwrap();
    assert!(
        t.start().is_some() && t.end().is_some(),
        "truth not flushed: {t:?}"
    );
}

#[test]
fn exec_forwards_sigterm_and_sigint() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    signal_forwarded(libc::SIGTERM);
    signal_forwarded(libc::SIGINT);
}

#[test]
fn run_mode_serves_current_namespace_until_sigint() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("t.jsonl");
    let truth2 = truth.clone();
    // A thread of this test moves into a fresh namespace; the simulator
    // started from it serves there, and the thread probes with raw sockets.
    let h = std::thread::spawn(move || {
        zzping_testkit::netns::enter();
        let mut child = Command::new(bin())
            .args(["run", "--scenario"])
            .arg(scenario("unreachable-silent"))
            .arg("--truth")
            .arg(&truth2)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let results = (
            line,
            common::probe("198.18.0.10".parse().unwrap(), 0x5a5a, 1),
            common::probe("2001:db8::10".parse().unwrap(), 0x5a5b, 2),
            common::probe("2001:db8::30".parse().unwrap(), 0x5a5c, 3),
            common::probe("198.18.0.30".parse().unwrap(), 0x5a5d, 4),
        );
        // SAFETY: signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let st = wait_bounded(&mut child, Duration::from_secs(10), "zzping-netsim");
        (results, st)
    });
    let ((ready, v4, v6, v6u, v4u), st) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(ready.trim(), "ready zzsim0");
    assert_eq!(st.code(), Some(0), "run must exit 0 on SIGINT");

    let (pkt, from) = v4.expect("no IPv4 echo reply");
    assert_eq!(from, "198.18.0.10".parse::<IpAddr>().unwrap());
    let p = packet::parse_icmp(&pkt).expect("valid IPv4 reply with checksums");
    assert_eq!((p.icmp_type, p.ident(), p.seq()), (0, 0x5a5a, 1));
    assert_eq!(p.body(), b"zzping-netsim probe");

    let (icmp, from) = v6.expect("no IPv6 echo reply");
    assert_eq!(from, "2001:db8::10".parse::<IpAddr>().unwrap());
    assert_eq!(icmp[0], 129);
    assert_eq!(&icmp[4..8], &[0x5a, 0x5b, 0, 2]);

    // ICMPv6 address unreachable from the router, quoting our request.
    let (icmp, from) = v6u.expect("no ICMPv6 unreachable");
    assert_eq!(from, "2001:db8::fe".parse::<IpAddr>().unwrap());
    assert_eq!((icmp[0], icmp[1]), (1, 3));
    let quoted = packet::parse_echo_request(&icmp[8..]).expect("quoted request");
    assert_eq!((quoted.ident, quoted.seq), (0x5a5c, 3));
    assert_eq!(quoted.dst, "2001:db8::30".parse::<IpAddr>().unwrap());

    let (pkt, from) = v4u.expect("no ICMP unreachable");
    assert_eq!(from, "198.18.0.254".parse::<IpAddr>().unwrap());
    let p = packet::parse_icmp(&pkt).unwrap();
    assert_eq!((p.icmp_type, p.icmp_code), (3, 1));
    let quoted = packet::parse_echo_request(p.body()).expect("quoted request");
    assert_eq!((quoted.ident, quoted.seq), (0x5a5d, 4));

    let t = read_truth(&truth).unwrap();
    let fates: Vec<Fate> = t.requests().map(|q| q.fate).collect();
    assert_eq!(
        fates,
        vec![
            Fate::Answered,
            Fate::Answered,
            Fate::Unreachable,
            Fate::Unreachable
        ]
    );
    let end = t.end().expect("end event after SIGINT");
    assert_eq!((end.requests, end.replies_sent), (4, 4));
}
