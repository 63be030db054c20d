//! End-to-end tests: the real binary, inside a fresh network namespace, pinging loopback
//! (and an unroutable 198.18.0.0/15 address), frames read back with zzping-lib's reader.

mod common;
mod e2e;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::*;
use e2e::loopback::{LOOPBACK_RATE, LOOPBACK_SECONDS, Stress, check_loopback, loopback_run};
use zzping_lib::frame::ErrorKind;

/// How long a main loop that does not run takes to let the receive queue overflow at
/// 5,000 replies/s: the queue's 16,384 replies (daemon/mod.rs `QUEUE_CAPACITY`), less a
/// margin for the replies the receive thread holds in its batch.
const QUEUE_FILL_S: f64 = 16_384.0 / 5_000.0 - 0.1;

fn check_loopback_run(dgram: bool) {
    // Three loopback targets at 250/s each for 1.5 s, with a ring capture on `lo`:
    // every RTT is held to the interval the capture proves (e2e/loopback.rs).
    let (stderr, wire, dir) = loopback_run(dgram, Stress::Quiet);
    let kind = if dgram { "Dgram" } else { "Raw" };
    assert!(
        stderr.contains(&format!("V4: {kind} ICMP socket")),
        "expected {kind} sockets: {stderr}"
    );
    let (rate, duration) = (f64::from(LOOPBACK_RATE), LOOPBACK_SECONDS);
    // No busy loop. (Frugality, the CPU per ping, is measured by the benchmark:
    // `daemon.cpu_ms_per_1k_pings_loopback_at_1000`.) The mechanism: the loop sleeps in
    // `ppoll` between deadlines, so it is charged CPU for its work only, a few syscalls
    // per ping (tens of µs: far below a millisecond even in a debug build on a loaded
    // machine); a loop that spun instead would be charged for all the time it got a core
    // during the run. Half of the run cannot be reached by the work of these pings, only
    // by spinning (which a machine loaded enough to give the daemon less than half a core
    // would hide, never fake).
    let cpu = reported_cpu_ms(&stderr);
    assert!(
        cpu < duration * 1e3 / 2.0,
        "CPU {cpu} ms in {duration} s for {} pings: a busy loop?\n{stderr}",
        3.0 * rate * duration
    );
    // Every send is timed by the kernel's transmit stamp (this kernel supports them on
    // both socket kinds and families; the counter mapping loses none, see
    // check_loopback, which also holds every RTT to its interval).
    if let Err(f) = check_loopback(&stderr, &wire, dir.path()) {
        panic!("{}\n--- daemon stderr:\n{stderr}", f.join("\n"));
    }
    for host in ["127.0.0.1", "__1", "127.0.0.2"] {
        let frames = read_host(&dir.path().join(host));
        assert!(!frames.is_empty(), "{host}: no frames");
        let sent = u64::from(sum(&frames, |f| f.sent));
        let schedule = scheduled_sends(rate, duration, &stderr);
        assert!(
            schedule.contains(&sent),
            "{host}: sent {sent}, the schedule allows {schedule:?}\n{stderr}"
        );
        for f in &frames {
            assert_eq!(f.sent, f.received + f.lost + f.errors, "{host}: {f:?}");
            assert_eq!(f.start_us % 100_000, 0, "frames aligned to the period");
        }
        assert_eq!(sum(&frames, |f| f.lost), 0, "{host}: losses on loopback");
        assert_eq!(sum(&frames, |f| f.errors), 0, "{host}: errors on loopback");
        assert_eq!(u64::from(sum(&frames, |f| f.received)), sent);
    }
}

#[test]
fn loopback_raw_sockets() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    check_loopback_run(false);
}

#[test]
fn loopback_datagram_sockets() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    check_loopback_run(true);
}

#[test]
fn unroutable_host_counts_errors_and_keeps_running() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let out = daemon_in_netns(
        false,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "198.18.0.5",
            "--target",
            "2001:db8::5",
            "--target",
            "127.0.0.1",
            "--target",
            "name-that-does-not-resolve.invalid",
            "--rate",
            "100",
            "--duration",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A finite run in which some host never answered exits 1, like fping, and says why.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exit status 1: no reply from 198.18.0.5, 2001:db8::5; unresolved: name-that-does-not-resolve.invalid"),
        "{stderr}"
    );
    // An unresolvable name is reported once and retried; the others carry on.
    assert_eq!(
        stderr
            .matches("name-that-does-not-resolve.invalid: cannot resolve")
            .count(),
        1,
        "{stderr}"
    );
    // Logged once per burst, not once per send.
    assert_eq!(
        stderr
            .matches("198.18.0.5: sending to 198.18.0.5 failed")
            .count(),
        1,
        "{stderr}"
    );
    let schedule = scheduled_sends(100.0, 1.0, &stderr);
    for host in ["198.18.0.5", "2001_db8__5"] {
        let frames = read_host(&dir.path().join(host));
        let sent = sum(&frames, |f| f.sent);
        assert!(
            schedule.contains(&u64::from(sent)),
            "{host}: sent {sent}, the schedule allows {schedule:?}"
        );
        assert_eq!(sum(&frames, |f| f.errors), sent, "{host}");
        assert_eq!(sum(&frames, |f| f.received), 0);
        // Every failure is this machine's: no route (sendto said ENETUNREACH).
        assert_eq!(
            sum(&frames, |f| f.error_kinds.get(ErrorKind::NoRoute)),
            sent,
            "{host}: {frames:?}"
        );
        assert!(frames.iter().all(|f| f.router.is_none()), "{host}");
    }
    // The exit line counts the errors by kind and the loss with them.
    assert!(stderr.contains("errors (no_route "), "{stderr}");
    let lo = read_host(&dir.path().join("127.0.0.1"));
    let lo_sent = sum(&lo, |f| f.sent);
    assert!(
        schedule.contains(&u64::from(lo_sent)),
        "127.0.0.1: sent {lo_sent}, the schedule allows {schedule:?}"
    );
    assert_eq!(sum(&lo, |f| f.lost), 0);
    assert_eq!(sum(&lo, |f| f.received), lo_sent);
}

#[test]
fn no_resolvable_target_exits_2() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let out = daemon_in_netns(
        false,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "first-name.invalid",
            "--target",
            "second-name.invalid",
            "--duration",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("exit status 2: unresolved: first-name.invalid, second-name.invalid"),
        "{stderr}"
    );
}

/// A veth pair whose peer answers nothing: neighbour resolution for 198.18.0.5 fails and
/// the kernel sends ICMP host-unreachable errors back for the queued echo requests.
fn check_icmp_errors(dgram: bool) {
    let dir = tempfile::tempdir().unwrap();
    // The 40 errors counted below are sent by this namespace's kernel at once, when
    // neighbour resolution gives up, through its global ICMP rate limit (shared by both
    // families: a burst of `icmp_msgs_burst` = 50 credits, each error costing 0 to 2 at
    // random, Linux 6.x). 40 errors overrun it now and then: the last requests then get
    // no error and time out (seen: "the last two sends time out"; `nstat` counts them
    // as IcmpOutRateLimitGlobal). The limit is the kernel's, not the daemon's business:
    // this namespace's is lifted.
    let setup = "sysctl -qw net.ipv4.icmp_msgs_burst=10000 net.ipv4.icmp_msgs_per_sec=100000 && \
                 ip link add v0 type veth peer name v1 && ip link set v0 up && \
                 ip link set v1 up && ip addr add 198.18.0.1/24 dev v0 && \
                 ip -6 addr add 2001:db8::1/64 dev v0 nodad && ";
    let out = daemon_in_netns_with(
        setup,
        dgram,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--socket",
            if dgram { "dgram" } else { "raw" },
            "--target",
            "198.18.0.5",
            "--target",
            "2001:db8::5",
            "--rate",
            "10",
            "--timeout-ms",
            "6000",
            "--duration",
            "2",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The errors came back as ICMP, not from sendto.
    assert!(!stderr.contains("sending to"), "{stderr}");
    // Waiting for the errors at shutdown must not spin (a past deadline once made the
    // loop busy-wait: hundreds of ms of CPU for 40 pings). The mechanism: a sleeping
    // loop is charged CPU for its work only (startup and 40 pings: a few ms, and
    // waiting is not charged however loaded the machine is), while a spinning one is
    // charged for all the time it gets a core during the wait for the errors, which
    // lasts the kernel's neighbour resolution (3 probes 1 s apart); so 200 ms is out
    // of reach of the work and within reach of spinning for more than a fraction of it.
    let cpu = reported_cpu_ms(&stderr);
    assert!(cpu < 200.0, "CPU {cpu} ms\n{stderr}");
    // ICMP host unreachable (v4) and address unreachable (v6, neighbour discovery).
    for host in ["198.18.0.5", "2001_db8__5"] {
        let frames = read_host(&dir.path().join(host));
        let sent = sum(&frames, |f| f.sent);
        let schedule = scheduled_sends(10.0, 2.0, &stderr);
        assert!(
            schedule.contains(&u64::from(sent)),
            "{host}: sent {sent}, the schedule allows {schedule:?}"
        );
        assert_eq!(
            sum(&frames, |f| f.errors),
            sent,
            "{host}: {frames:?}\n{stderr}"
        );
        // Sent by this machine's own kernel (from 198.18.0.1 / 2001:db8::1): nobody
        // answered ARP / neighbour discovery on the link, a local failure, no router.
        assert_eq!(
            sum(&frames, |f| f.error_kinds.get(ErrorKind::NoNeighbour)),
            sent,
            "{host}: {frames:?}"
        );
        assert!(frames.iter().all(|f| f.router.is_none()), "{host}");
    }
}

#[test]
fn icmp_unreachable_counts_as_error_datagram() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    check_icmp_errors(true);
}

#[test]
fn icmp_unreachable_counts_as_error_raw() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    check_icmp_errors(false);
}

#[test]
fn no_icmp_socket_explains_the_remedies() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    // Datagram sockets only, in a namespace where ping_group_range forbids them.
    let dir = tempfile::tempdir().unwrap();
    let out = daemon_in_netns(
        false,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--socket",
            "dgram",
            "--target",
            "127.0.0.1",
            "--duration",
            "1",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "setcap cap_net_raw+ep",
        "net.ipv4.ping_group_range",
        "AmbientCapabilities=CAP_NET_RAW",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in: {stderr}");
    }
}

#[test]
fn sighup_adds_and_removes_hosts_and_sigterm_stops_cleanly() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = dir.path().join("zzping.toml");
    let write_conf = |hosts: &[(&str, Option<&str>)], alerts: &str| {
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(
            f,
            "data_dir = {:?}\nrate = 100\nflush_interval_s = 0.2\n{alerts}",
            data
        )
        .unwrap();
        for (target, label) in hosts {
            writeln!(f, "[[host]]\ntarget = {target:?}").unwrap();
            if let Some(l) = label {
                writeln!(f, "label = {l:?}").unwrap();
            }
        }
    };
    write_conf(&[("127.0.0.1", None), ("127.0.0.2", Some("x"))], "");
    let mut cmd = daemon_in_netns(false, &["--duration", "30", "--socket", "raw", "--status"]);
    // Point the helper's `--config none` at our file.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a == "none" {
                conf.to_string_lossy().into_owned()
            } else {
                a.clone()
            }
        })
        .collect();
    cmd = std::process::Command::new("timeout");
    cmd.args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    // The status table (plain lines: stdout is not a TTY) tells when hosts got replies.
    let mut table = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    wait_for(&mut lines, "127.0.0.1: pinging", &mut log);
    // `timeout` is the child; the daemon is its descendant: signal the daemon by name
    // within our own process tree.
    let daemon_pid = find_daemon_pid(child.id());
    // Started as root with raw sockets: every capability is gone once sockets are open.
    let status = std::fs::read_to_string(format!("/proc/{daemon_pid}/status")).unwrap();
    for key in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(
            line.split_whitespace()
                .nth(1)
                .is_some_and(|v| v.chars().all(|c| c == '0')),
            "{line}"
        );
    }
    wait_for(&mut lines, "x: pinging 127.0.0.2", &mut log);
    wait_for_replies(&mut table, &["127.0.0.1", "x"]);
    // 127.0.0.1 goes, ::1 comes, label x moves to another address (same files); an
    // alert rule appears.
    write_conf(
        &[("::1", None), ("127.0.0.3", Some("x"))],
        "[[alert]]\nname = \"down\"\nwhen = \"outage\"\nfor_s = 1",
    );
    kill(daemon_pid, libc::SIGHUP);
    // Removal (once its requests are resolved) and addition may log in either order.
    wait_for_all(
        &mut lines,
        &[
            "::1: pinging",
            "127.0.0.1: removed",
            "x: 127.0.0.3 now resolves to 127.0.0.3",
            "SIGHUP: configuration reloaded (hosts, [[alert]] rules (1)); 2 hosts",
        ],
        &mut log,
    );
    wait_for_replies(&mut table, &["::1", "x"]);
    kill(daemon_pid, libc::SIGTERM);
    wait_for(&mut lines, "stopped:", &mut log);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{log}");
    let a = read_host(&data.join("127.0.0.1"));
    let b = read_host(&data.join("__1"));
    let x = read_host(&data.join("x"));
    assert!(sum(&x, |f| f.received) > 0, "{log}");
    assert_eq!(sum(&x, |f| f.lost), 0, "{log}");
    assert!(sum(&a, |f| f.received) > 0, "{log}");
    assert!(sum(&b, |f| f.received) > 0, "{log}");
    for f in a.iter().chain(&b) {
        assert_eq!(f.sent, f.received + f.lost + f.errors);
    }
    assert_eq!(sum(&a, |f| f.lost) + sum(&b, |f| f.lost), 0, "{log}");
    // Start, x moved by the reload, the reload and what it applied, and the stop with
    // its reason, on the timeline; the events directory is no host.
    let events = read_events(&data);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["daemon_start", "host_moved", "reload", "daemon_stop"],
        "{events:?}"
    );
    assert_eq!(
        (
            events[1].host.as_deref(),
            events[1].previous,
            events[1].address
        ),
        (
            Some("x"),
            Some("127.0.0.2".parse().unwrap()),
            Some("127.0.0.3".parse().unwrap())
        ),
        "{events:?}"
    );
    assert_eq!(
        events[2].applied.as_deref(),
        Some("hosts, [[alert]] rules (1)"),
        "{events:?}"
    );
    assert_eq!(events[3].reason.as_deref(), Some("signal 15"), "{events:?}");
    let hosts = zzping_lib::store::list_hosts(&data).unwrap();
    let labels: Vec<&str> = hosts.iter().map(|h| h.label.as_str()).collect();
    // (By directory name: `__1` sorts before `x`.)
    assert_eq!(labels, ["127.0.0.1", "::1", "x"]);
}

#[test]
fn a_label_added_back_while_its_old_host_retires_waits_for_it() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = dir.path().join("zzping.toml");
    // x pings an address on a veth link with a permanent neighbour entry (no ARP, so no
    // error either) that nobody has: every request of x leaves and stays in flight for
    // the whole timeout, TIMEOUT_MS.
    const TIMEOUT_MS: u32 = 8000;
    let write_conf = |with_x: bool| {
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(
            f,
            "data_dir = {data:?}\nrate = 10\ntimeout_ms = {TIMEOUT_MS}\nflush_interval_s = 0.2\n\
             [[host]]\ntarget = \"127.0.0.1\"\nlabel = \"lo\""
        )
        .unwrap();
        if with_x {
            writeln!(f, "[[host]]\ntarget = \"198.18.0.5\"\nlabel = \"x\"").unwrap();
        }
    };
    write_conf(true);
    let setup = "ip link add v0 type veth peer name v1 && ip link set v0 up && \
                 ip link set v1 up && ip addr add 198.18.0.1/24 dev v0 && \
                 ip neigh add 198.18.0.5 lladdr 02:00:00:00:00:05 dev v0 nud permanent && ";
    let cmd = daemon_in_netns_with(
        setup,
        false,
        &["--duration", "40", "--socket", "raw", "--status"],
    );
    // Point the helper's `--config none` at our file.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| {
            if a == "none" {
                conf.to_string_lossy().into_owned()
            } else {
                a
            }
        })
        .collect();
    let mut child = std::process::Command::new("timeout")
        .args(&args)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut table = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    wait_for_all(
        &mut lines,
        &["lo: pinging", "x: pinging 198.18.0.5"],
        &mut log,
    );
    let daemon_pid = find_daemon_pid(child.id());
    // lo answered: a round of sends went out, x's request of it is now in flight.
    wait_for_replies(&mut table, &["lo"]);
    // x goes, and comes back at once: its old host retires only when its requests in
    // flight time out (TIMEOUT_MS after they left, far longer than this takes), and
    // until then its writer holds x's directory.
    write_conf(false);
    kill(daemon_pid, libc::SIGHUP);
    wait_for(&mut lines, "x: removing", &mut log);
    write_conf(true);
    kill(daemon_pid, libc::SIGHUP);
    wait_for_all(
        &mut lines,
        &[
            "x: waiting for the removed host of this label",
            "x: removed",
            "x: pinging 198.18.0.5",
        ],
        &mut log,
    );
    // One writer at a time: the new x started only once the old one was gone.
    let removed = log.find("x: removed").unwrap();
    let restarted = log.rfind("x: pinging 198.18.0.5").unwrap();
    assert!(removed < restarted, "{log}");
    kill(daemon_pid, libc::SIGTERM);
    wait_for(&mut lines, "stopped:", &mut log);
    assert!(child.wait().unwrap().success(), "{log}");
    // Its files read back whole, every frame with its outcomes, in time order.
    let x = read_host(&data.join("x"));
    assert!(sum(&x, |f| f.sent) > 0, "{log}");
    for f in &x {
        assert_eq!(f.sent, f.received + f.lost + f.errors, "{f:?}");
    }
    assert!(x.windows(2).all(|w| w[0].start_us < w[1].start_us), "{x:?}");
}

/// Reads status tables until each label has had a line with replies (column 3 > 0).
fn wait_for_replies(status: &mut impl Iterator<Item = String>, labels: &[&str]) {
    let mut missing: Vec<&str> = labels.to_vec();
    let mut seen = String::new();
    for l in status.by_ref() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() > 2 && cols[2].parse::<u64>().is_ok_and(|r| r > 0) {
            missing.retain(|m| *m != cols[0]);
        }
        seen.push_str(&l);
        seen.push('\n');
        if missing.is_empty() {
            return;
        }
    }
    panic!("status never showed replies for {missing:?}:\n{seen}");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            "none",
            "--check-config",
            "--target",
            "198.18.0.1",
            "--rate",
            "42",
            "--period-ms",
            "250",
            "--live",
            "off",
            "--data-dir",
            "/nonexistent/zz",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "period_ms = 250",
        "live = \"off\"",
        "target = \"198.18.0.1\"",
        "rate = 42.0",
        "data_dir = \"/nonexistent/zz\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let bad = std::process::Command::new(BIN)
        .args(["--config", "none", "--check-config", "--period-ms", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn retention_deletes_old_day_files_only() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("198.18.0.9");
    std::fs::create_dir_all(&host).unwrap();
    let old = host.join("2020-01-01.zzp");
    std::fs::write(&old, b"old frames").unwrap();
    // Retention counts from the newest day the files hold: today's, written here.
    let today = write_frames_now(dir.path(), "198.18.0.10");
    let out = daemon_in_netns(
        false,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--retention-days",
            "30",
            "--duration",
            "0.3",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!old.exists(), "old file kept: {stderr}");
    assert!(today.exists(), "today's file deleted: {stderr}");
    assert!(stderr.contains("retention: removed"), "{stderr}");
    // Today's file of the pinged host is kept.
    assert!(!read_host(&dir.path().join("127.0.0.1")).is_empty());
}

#[test]
fn names_are_resolved_and_re_resolved() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    // A private /etc/hosts (mount namespace + bind mount) the test rewrites mid-run.
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.5 zz-test-host\n").unwrap();
    let data = dir.path().join("data");
    let script = format!(
        "ip link set lo up && mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        hosts.display()
    );
    let mut child = std::process::Command::new("timeout")
        .args([
            "60", "unshare", "--net", "--mount", "sh", "-c", &script, BIN,
        ])
        .args([
            "--config",
            "none",
            "--data-dir",
            data.to_str().unwrap(),
            "--target",
            "zz-test-host",
            "--rate",
            "20",
            "--resolve-interval-s",
            "1",
            "--duration",
            "20",
            "--status",
        ])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut table = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    wait_for(&mut lines, "zz-test-host: pinging 127.0.0.5", &mut log);
    // Same inode (the bind mount follows it), new content.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&hosts)
        .unwrap()
        .write_all(b"127.0.0.6 zz-test-host\n")
        .unwrap();
    wait_for(&mut lines, "now resolves to 127.0.0.6", &mut log);
    // Frames finalized from now on are written under the new address. The first status
    // table (at 1 s) may predate the change (also at 1 s); the second one cannot.
    wait_for_replies(&mut table, &["zz-test-host"]);
    wait_for_replies(&mut table, &["zz-test-host"]);
    let pid = find_daemon_pid(child.id());
    kill(pid, libc::SIGTERM);
    wait_for(&mut lines, "stopped:", &mut log);
    assert!(child.wait().unwrap().success(), "{log}");
    let frames = read_host(&data.join("zz-test-host"));
    assert!(sum(&frames, |f| f.received) > 0, "{log}");
    assert_eq!(sum(&frames, |f| f.lost), 0, "{log}");
    // Both addresses are recorded in segment headers.
    let files: Vec<_> = std::fs::read_dir(data.join("zz-test-host"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut addrs = std::collections::BTreeSet::new();
    for f in files {
        let mut r = zzping_lib::file::FileReader::open(&f).unwrap();
        while r.next_frame().unwrap().is_some() {
            addrs.insert(r.header().unwrap().host.clone());
        }
    }
    assert_eq!(
        addrs.into_iter().collect::<Vec<_>>(),
        ["127.0.0.5", "127.0.0.6"],
        "{log}"
    );
    // The move is a context event: the host, where it went, where it was.
    let events =
        zzping_lib::events::read_range(&[zzping_lib::events::events_dir(&data)], 0, u64::MAX);
    let moved: Vec<_> = events
        .events
        .iter()
        .filter(|e| e.kind == zzping_lib::events::EventKind::HostMoved)
        .map(|e| e.describe())
        .collect();
    assert_eq!(
        moved,
        ["host zz-test-host now at 127.0.0.6 (was 127.0.0.5)"],
        "{log}"
    );
}

#[test]
fn five_thousand_pings_per_second() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"];
    let mut args = vec![
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--rate",
        "1000",
        "--duration",
        "2",
    ];
    for t in &targets {
        args.extend(["--target", t]);
    }
    let out = daemon_in_netns(false, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Every send the schedule allows (see `scheduled_sends`), every reply received.
    let schedule = scheduled_sends(1000.0, 2.0, &stderr);
    for t in targets {
        let frames = read_host(&dir.path().join(t.replace(':', "_")));
        let sent = u64::from(sum(&frames, |f| f.sent));
        assert!(
            schedule.contains(&sent),
            "{t}: sent {sent}, the schedule allows {schedule:?}\n{stderr}"
        );
        assert_eq!(
            u64::from(sum(&frames, |f| f.received)),
            sent,
            "{t}: {stderr}"
        );
    }
    // No reply was dropped on the way from the receive thread. The mechanism: the
    // receive thread drops only when the queue to the main loop is full, and the main
    // loop drains all of it on every wakeup; it wakes for each send (5,000/s), so
    // filling the 16,384 replies of the queue at 5,000 replies/s takes a main loop that
    // did not run for 3.3 s, which would show as a send that late.
    let drops = exit_field(&stderr, "queue drops ");
    let max_late_s = exit_field(&stderr, "µs max ") / 1e6;
    assert!(
        drops == 0.0 || max_late_s >= QUEUE_FILL_S,
        "{drops} replies dropped while the main loop was never more than {max_late_s} s \
         late\n{stderr}"
    );
}

/// The daemon's socket pair (zzping-daemon/src/sock.rs, "Two sockets per family"): a
/// request sent on the send socket is answered on the receive socket only, the send
/// socket holds no reply and has the request's transmit stamp on its error queue, and
/// the receive socket has none (its `poll` is not woken by sends); several stamps are read
/// in one `recvmmsg`, in send order, never more than asked, and so are replies. Both
/// kinds, both families, on loopback in a fresh namespace; each wait bounded.
#[test]
fn a_socket_pair_receives_on_one_and_stamps_on_the_other() {
    use std::net::IpAddr;
    use std::os::fd::AsRawFd;
    use zzping_daemon::icmp::{self, Family, Message};
    use zzping_daemon::sock::{IcmpSocket, Kind, RecvBatch, SocketMode};

    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    // Datagram ICMP for our group, in this namespace only.
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
        .expect("allow datagram ICMP in the test's namespace");
    let readable = |fd: i32, ms: i32| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    };
    for mode in [SocketMode::Raw, SocketMode::Dgram] {
        for (family, dst) in [
            (Family::V4, IpAddr::from([127, 0, 0, 1])),
            (Family::V6, IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ] {
            let what = format!("{mode:?} {family:?}");
            let (send, recv) = IcmpSocket::open_pair(family, mode).expect(&what);
            let kind = if mode == SocketMode::Raw {
                Kind::Raw
            } else {
                Kind::Dgram
            };
            assert_eq!((send.kind(), recv.kind()), (kind, kind), "{what}");
            assert_eq!(send.ident(), recv.ident(), "{what}: one identifier");
            assert!(send.tx_stamps(), "{what}: this kernel stamps sends");
            assert!(!recv.tx_stamps(), "{what}: no stamps on the receive socket");
            let mut packet = [0u8; icmp::PACKET_LEN];
            icmp::emit_echo_request(family, &mut packet, send.ident(), 7, 0xfeed).unwrap();
            send.send_to(&packet, dst).expect(&what);
            assert!(
                readable(recv.as_raw_fd(), 2_000),
                "{what}: no reply on the receive socket within 2 s"
            );
            let mut buf = [0u8; 2048];
            let d = recv.recv(&mut buf).expect(&what).expect("a datagram");
            assert_eq!(d.src, dst, "{what}");
            let msg = icmp::parse(family, &buf[d.start..d.end]).expect(&what);
            assert!(
                matches!(msg, Message::EchoReply { ident, seq: 7, .. } if ident == send.ident()),
                "{what}: {msg:?}"
            );
            assert!(d.kernel_real_ns.is_some(), "{what}: receive stamp");
            // The reply reached the receive socket, so it was delivered to every socket
            // that takes it by now: none on the send socket.
            assert_eq!(
                send.recv(&mut buf).expect(&what),
                None,
                "{what}: send socket"
            );
            let stamp = send.recv_error(&mut buf).expect(&what);
            assert!(
                matches!(stamp, Some((Message::TxStamp { key: 0 }, Some(_)))),
                "{what}: transmit stamp {stamp:?}"
            );
            assert_eq!(recv.recv_error(&mut buf).expect(&what), None, "{what}");
            assert!(
                !readable(recv.as_raw_fd(), 0),
                "{what}: receive socket idle"
            );
            // Several stamps read in one call, in send order, never more than asked.
            for seq in 8..13 {
                icmp::emit_echo_request(family, &mut packet, send.ident(), seq, 0xfeed).unwrap();
                send.send_to(&packet, dst).expect(&what);
            }
            let mut batch = RecvBatch::new();
            let mut keys = Vec::new();
            let mut read = |max| {
                send.recv_errors(&mut batch, max, |m, stamp| {
                    assert!(stamp.is_some(), "{what}: {m:?} without its stamp");
                    keys.push(m);
                })
                .expect(&what)
            };
            assert_eq!(read(3), 3, "{what}: the first three");
            assert_eq!(read(RecvBatch::CAPACITY), 2, "{what}: the other two");
            assert_eq!(read(RecvBatch::CAPACITY), 0, "{what}: the queue is empty");
            let want: Vec<_> = (1..6).map(|key| Message::TxStamp { key }).collect();
            assert_eq!(keys, want, "{what}");
            // And their replies, several per call on the receive socket.
            assert!(
                readable(recv.as_raw_fd(), 2_000),
                "{what}: no reply on the receive socket within 2 s"
            );
            let mut seqs = Vec::new();
            let mut got = 0;
            for _ in 0..100 {
                got += recv
                    .recv_many(&mut batch, 5 - got, |d, buf| {
                        assert_eq!(d.src, dst, "{what}");
                        assert!(d.kernel_real_ns.is_some(), "{what}: receive stamp");
                        match icmp::parse(family, &buf[d.start..d.end]) {
                            Ok(Message::EchoReply { ident, seq, .. }) if ident == send.ident() => {
                                seqs.push(seq)
                            }
                            m => panic!("{what}: {m:?}"),
                        }
                    })
                    .expect(&what);
                if got == 5 || !readable(recv.as_raw_fd(), 2_000) {
                    break;
                }
            }
            assert_eq!(
                seqs,
                (8..13).collect::<Vec<u16>>(),
                "{what}: every reply, in order"
            );
            assert_eq!(
                recv.recv_many(&mut batch, RecvBatch::CAPACITY, |d, _| panic!("{d:?}"))
                    .expect(&what),
                0,
                "{what}: nothing more"
            );
        }
    }
}
