//! Discovered targets end to end: the real daemon with its embedded default (no host
//! configured: discovery) against the simulator, in a namespace each test creates.
//!
//! `ttl-path`: the gateways come from netlink's default routes, the ISP's edge from
//! TTL-limited probes (the simulator plays 198.18.0.0/16 and 2001:db8::/33 as the home
//! network, given to the daemon as `home_prefixes`); a host with `ttl = 2` records "TTL
//! exceeded" from the router at hop 2. `route-change`: the default route moves to another
//! gateway and back; the discovered hosts are re-pointed (segments with the new
//! addresses), and back.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use zzping_lib::file::FileReader;
use zzping_lib::frame::ErrorKind;
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_netsim::truth::{Truth, read_truth};
use zzping_testkit::netns::{self, ip};
use zzping_testkit::{privileges, require};

/// The probe destinations the tests give the daemon: simulated public hosts.
const PROBE_V4: &str = "198.19.8.8";
const PROBE_V6: &str = "2001:db8:8008::8";
/// The daemon's bound on the requests of one discovery (`probe::MAX_TTL`).
const MAX_PROBES: usize = zzping_daemon::probe::MAX_TTL as usize;
/// The TTL of the daemon's ordinary requests.
const DEFAULT_TTL: u8 = zzping_daemon::config::DEFAULT_TTL;

/// The discovery settings of most tests: discovery may run every second; the simulator's
/// private halves are the home network.
const DISCOVERY: &str = "discover_interval_s = 1\n\
                         home_prefixes = [\"198.18.0.0/16\", \"2001:db8::/33\"]\n";

/// Runs the daemon for `secs` under `scenario` with the file configuration `extra`
/// (added to the probe destinations), with datagram ICMP sockets allowed or not (raw
/// then), expecting exit status `code`; returns the data directory, the truth and the
/// daemon's log.
fn run(
    scenario: &str,
    extra: &str,
    secs: u32,
    dgram: bool,
    code: i32,
) -> (tempfile::TempDir, Truth, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let truth_path = dir.path().join("truth.jsonl");
    let config = dir.path().join("zzping.toml");
    std::fs::write(
        &config,
        format!(
            "live = \"off\"\nrate = 20\ntimeout_ms = 500\n\
             discover_probe = [\"{PROBE_V4}\", \"{PROBE_V6}\"]\n{extra}"
        ),
    )
    .unwrap();
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/scenarios")
            .join(scenario),
    )
    .unwrap();
    let args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--duration".into(),
        secs.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--log".into(),
        "info".into(),
        "--log-target".into(),
        "stderr".into(),
    ];
    let tp = truth_path.clone();
    let log = std::thread::spawn(move || {
        netns::enter();
        let range = if dgram { "0 2147483647" } else { "1 0" };
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", range)
            .expect("set ping_group_range in the namespace");
        let sim = Simulator::start(&scenario, Some(&tp)).expect("start the simulator");
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&a);
        // The run, its last timeout, and a margin for a loaded machine.
        let limit = Duration::from_secs(u64::from(secs) + 30);
        log.wait_for("stopped: ", limit);
        let status = zzping_testkit::process::wait_bounded(&mut daemon.0, limit, "the daemon");
        sim.stop().expect("stop the simulator");
        if code != 0 {
            // The exit line comes last.
            log.wait_for("exit status", limit);
        }
        let text = log.drain().to_owned();
        assert_eq!(status.code(), Some(code), "daemon exit status\n{text}");
        text
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let truth = read_truth(&truth_path).unwrap();
    (dir, truth, log)
}

/// A host's segments in order: (address, role), consecutive repeats merged, with the
/// replies each got.
fn segments(data: &Path, label: &str) -> Vec<(String, Option<String>, u32)> {
    let dir = data.join(label);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out: Vec<(String, Option<String>, u32)> = Vec::new();
    for f in files {
        let mut r = FileReader::open(&f).unwrap();
        while let Some(fr) = r.next_frame().unwrap() {
            let received = fr.received();
            let h = r.header().unwrap();
            match out.last_mut() {
                Some(last) if last.0 == h.host => last.2 += received,
                _ => out.push((h.host.clone(), h.role.clone(), received)),
            }
        }
    }
    out
}

/// The daemon's probes in the truth: requests to a probe destination with a TTL below
/// the default, by family (IPv4, IPv6).
fn probes(truth: &Truth) -> (Vec<u8>, Vec<u8>) {
    let (v4, v6): (IpAddr, IpAddr) = (PROBE_V4.parse().unwrap(), PROBE_V6.parse().unwrap());
    let mut out = (Vec::new(), Vec::new());
    for q in truth.requests().filter(|q| q.ttl < DEFAULT_TTL) {
        if q.dst == v4 {
            out.0.push(q.ttl);
        } else if q.dst == v6 {
            out.1.push(q.ttl);
        }
    }
    out
}

fn check_ttl_path(dgram: bool) {
    // A host two hops short: its requests expire at hop 2 (modem).
    let (dir, truth, log) = run(
        "ttl-path.toml",
        &format!(
            "{DISCOVERY}discover = true\n\
             [[host]]\ntarget = \"198.19.1.1\"\nlabel = \"core-ttl2\"\nttl = 2\n"
        ),
        4,
        dgram,
        // A finite run in which a host never answered (core-ttl2).
        1,
    );
    assert!(log.contains("no reply from core-ttl2"), "{log}");
    let kind = if dgram { "Dgram" } else { "Raw" };
    assert!(log.contains(&format!("V4: {kind} ICMP socket")), "{log}");
    let data = dir.path().join("data");
    for (label, addr, role) in [
        ("gateway", "198.18.0.254", "gateway"),
        ("gateway-v6", "2001:db8::fe", "gateway"),
        ("isp-edge", "198.19.0.1", "isp-edge"),
        ("isp-edge-v6", "2001:db8:8000::1", "isp-edge"),
    ] {
        let s = segments(&data, label);
        assert_eq!(s.len(), 1, "{label}: {s:?}\n{log}");
        assert_eq!(
            (s[0].0.as_str(), s[0].1.as_deref()),
            (addr, Some(role)),
            "{label}"
        );
        assert!(s[0].2 > 0, "{label}: no replies\n{log}");
    }
    // One discovery per family: TTL 1 (home-gw, home), 2 (modem, home), 3 (isp-edge,
    // public: found). Far below the bound of a discovery.
    let (v4, v6) = probes(&truth);
    assert_eq!(v4, [1, 2, 3], "IPv4 probes\n{log}");
    assert_eq!(v6, [1, 2, 3], "IPv6 probes\n{log}");
    assert!(v4.len() <= MAX_PROBES && v6.len() <= MAX_PROBES);
    // The TTL-2 host: every answer is "TTL exceeded" from hop 2.
    let frames = common::read_host(&data.join("core-ttl2"));
    let exceeded: u32 = frames
        .iter()
        .map(|f| f.error_kinds.get(ErrorKind::TtlExceeded))
        .sum();
    assert!(exceeded > 0, "no TTL exceeded\n{log}");
    assert_eq!(common::sum(&frames, |f| f.received), 0);
    for f in frames.iter().filter(|f| f.errors > 0) {
        assert_eq!(f.router, Some("198.18.100.1".parse().unwrap()), "{f:?}");
    }
    // Its requests went out with TTL 2, everyone else's with the default.
    let core: IpAddr = "198.19.1.1".parse().unwrap();
    assert!(
        truth
            .requests()
            .filter(|q| q.dst == core)
            .all(|q| q.ttl == 2)
    );
    assert!(
        truth
            .requests()
            .filter(|q| q.dst == "198.18.0.254".parse::<IpAddr>().unwrap())
            .all(|q| q.ttl == DEFAULT_TTL)
    );
}

#[test]
fn ttl_path_discovers_gateways_and_isp_edge_raw() {
    require!(privileges::tun());
    check_ttl_path(false);
}

#[test]
fn ttl_path_discovers_gateways_and_isp_edge_dgram() {
    require!(privileges::tun());
    check_ttl_path(true);
}

#[test]
fn route_change_re_points_the_gateway_and_the_isp_edge() {
    require!(privileges::tun());
    // The route moves at 4 s and back at 8 s; discovery may run every second.
    let (dir, truth, log) = run("route-change.toml", DISCOVERY, 11, true, 0);
    let data = dir.path().join("data");
    for (label, addrs) in [
        ("gateway", ["198.18.0.254", "198.18.1.254", "198.18.0.254"]),
        (
            "gateway-v6",
            ["2001:db8::fe", "2001:db8:0:1::fe", "2001:db8::fe"],
        ),
        ("isp-edge", ["198.19.0.1", "198.19.64.1", "198.19.0.1"]),
        (
            "isp-edge-v6",
            ["2001:db8:8000::1", "2001:db8:8040::1", "2001:db8:8000::1"],
        ),
    ] {
        let s = segments(&data, label);
        let got: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(got, addrs, "{label}: {s:?}\n{log}");
        assert!(
            s.iter().all(|x| x.2 > 0),
            "{label}: a segment without replies {s:?}"
        );
    }
    // Each move is a context event, in order.
    let events =
        zzping_lib::events::read_range(&[zzping_lib::events::events_dir(&data)], 0, u64::MAX);
    let moved: Vec<String> = events
        .events
        .iter()
        .filter(|e| {
            e.kind == zzping_lib::events::EventKind::HostMoved
                && e.host.as_deref() == Some("gateway")
        })
        .map(|e| e.describe())
        .collect();
    assert_eq!(
        moved,
        [
            "host gateway now at 198.18.1.254 (was 198.18.0.254)",
            "host gateway now at 198.18.0.254 (was 198.18.1.254)"
        ],
        "{log}"
    );
    // Three discoveries per family (start, each route change), two probes each.
    let (v4, v6) = probes(&truth);
    assert_eq!(v4, [1, 2, 1, 2, 1, 2], "IPv4 probes\n{log}");
    assert_eq!(v6, [1, 2, 1, 2, 1, 2], "IPv6 probes\n{log}");
}

/// The embedded default on a machine without a default route: the daemon starts with no
/// host, says once per family that it waits for a route, and stops cleanly.
#[test]
fn no_default_route_waits_with_no_host() {
    require!(privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = common::daemon_in_netns(
        false,
        &[
            "--live",
            "off",
            "--duration",
            "1.5",
            "--data-dir",
            data.to_str().unwrap(),
            "--log-target",
            "stderr",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for f in ["V4", "V6"] {
        let line = format!("discovery: no {f} default route; waiting for one");
        assert_eq!(stderr.matches(&line).count(), 1, "{line}\n{stderr}");
    }
    assert!(stderr.contains("0 sent"), "{stderr}");
    // Loopback is no longer pinged unless asked (`self_check`).
    assert!(!stderr.contains("127.0.0.1: pinging"), "{stderr}");
}

/// SIGHUP turns discovery off (the discovered hosts go, a configured one comes) and on
/// again (they come back, with their history: the same directories).
#[test]
fn sighup_turns_discovery_off_and_on() {
    require!(privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("zzping.toml");
    let base = format!(
        "live = \"off\"\nrate = 20\ndiscover_probe = [\"{PROBE_V4}\", \"{PROBE_V6}\"]\n\
         discover_interval_s = 1\nhome_prefixes = [\"198.18.0.0/16\", \"2001:db8::/33\"]\n"
    );
    std::fs::write(&config, &base).unwrap();
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/ttl-path.toml"),
    )
    .unwrap();
    let args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--log-target".into(),
        "stderr".into(),
    ];
    let limit = Duration::from_secs(20);
    std::thread::spawn(move || {
        netns::enter();
        let sim = Simulator::start(&scenario, None).expect("start the simulator");
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&a);
        // The two families' discoveries end in either order.
        let v4_edge = "isp-edge: pinging 198.19.0.1";
        log.wait_for("isp-edge-v6: pinging 2001:db8:8000::1", limit);
        if !log.seen.contains(v4_edge) {
            log.wait_for(v4_edge, limit);
        }
        std::fs::write(
            &config,
            format!("{base}[[host]]\ntarget = \"198.18.0.20\"\nlabel = \"nas\"\n"),
        )
        .unwrap();
        zzping_testkit::process::signal(&daemon.0, libc::SIGHUP);
        log.wait_for("SIGHUP: configuration reloaded", limit);
        for label in ["gateway", "gateway-v6", "isp-edge", "isp-edge-v6"] {
            assert!(
                log.seen
                    .contains(&format!("{label}: removing (discovery off)")),
                "{label}\n{}",
                log.seen
            );
        }
        assert!(
            log.seen.contains("nas: pinging 198.18.0.20"),
            "{}",
            log.seen
        );
        std::fs::write(&config, format!("{base}discover = true\n")).unwrap();
        zzping_testkit::process::signal(&daemon.0, libc::SIGHUP);
        log.wait_for("SIGHUP: configuration reloaded", limit);
        // Not before: the reload removed it.
        log.wait_for(v4_edge, limit);
        assert!(log.seen.contains("nas: removing"), "{}", log.seen);
        // Two writers never share a directory: the gateway comes back only once the one
        // discovery turned off is removed (its requests in flight resolved).
        let removed = log.seen.find("gateway: removed").expect("gateway removed");
        let back = log.seen.rfind("gateway: pinging 198.18.0.254").unwrap();
        assert!(removed < back, "{}", log.seen);
        zzping_testkit::process::signal(&daemon.0, libc::SIGTERM);
        log.wait_for("stopped: ", limit);
        let st = zzping_testkit::process::wait_bounded(&mut daemon.0, limit, "the daemon");
        assert!(st.success(), "{}", log.seen);
        sim.stop().expect("stop the simulator");
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    // The gateway's history across the reloads, in its one directory (the hosts that
    // lived a moment only may have no final frame).
    let s = segments(&data, "gateway");
    assert!(!s.is_empty() && s.iter().all(|x| x.2 > 0), "{s:?}");
}

/// An IPv6 default router with a link-local address (what router advertisements give)
/// is pinged through its route's interface, not whichever interface the kernel picks for
/// the bare address (two links here, both with fe80::/64: the bare address would go out
/// of the first); its files name the address.
#[test]
fn a_link_local_gateway_is_pinged_through_its_interface() {
    require!(privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args: Vec<String> = vec![
        "--config".into(),
        "none".into(),
        "--live".into(),
        "off".into(),
        "--duration".into(),
        "1".into(),
        "--timeout-ms".into(),
        "200".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--log-target".into(),
        "stderr".into(),
    ];
    let (log, neigh) = std::thread::spawn(move || {
        netns::enter();
        // Bridges without ports: links with a carrier whose router never answers
        // (neighbour discovery gives up after about 3 s, longer than the run).
        for cmd in [
            "link add zz0 type bridge",
            "link set zz0 up",
            "link add zz1 type bridge",
            "link set zz1 up",
            "-6 addr add 2001:db8::1/64 dev zz1 nodad",
            "-6 route add default via fe80::fe dev zz1",
        ] {
            let st = std::process::Command::new(zzping_testkit::tool("ip", "iproute2"))
                .args(cmd.split_whitespace())
                .status()
                .unwrap();
            assert!(st.success(), "ip {cmd}");
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&a);
        let limit = Duration::from_secs(30);
        log.wait_for("stopped: ", limit);
        let st = zzping_testkit::process::wait_bounded(&mut daemon.0, limit, "the daemon");
        log.drain();
        // Where the kernel looked for the router: the interface the requests went out of.
        let neigh = std::process::Command::new(zzping_testkit::tool("ip", "iproute2"))
            .args(["-6", "neigh", "show", "fe80::fe"])
            .output()
            .unwrap();
        assert!(st.code().is_some(), "{}", log.seen);
        (
            log.seen,
            String::from_utf8_lossy(&neigh.stdout).into_owned(),
        )
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert!(log.contains("gateway-v6: pinging fe80::fe"), "{log}");
    assert!(
        neigh.contains("dev zz1") && !neigh.contains("dev zz0"),
        "{neigh}\n{log}"
    );
    let s = segments(&data, "gateway-v6");
    assert_eq!(
        s.iter()
            .map(|x| (x.0.as_str(), x.1.as_deref()))
            .collect::<Vec<_>>(),
        [("fe80::fe", Some("gateway"))]
    );
    let frames = common::read_host(&data.join("gateway-v6"));
    let sent = common::sum(&frames, |f| f.sent);
    assert!(sent > 0, "{log}");
    // Every request left and went unanswered: none failed to send.
    assert_eq!(common::sum(&frames, |f| f.errors), 0, "{frames:?}\n{log}");
    assert_eq!(common::sum(&frames, |f| f.lost), sent, "{log}");
}

/// With every hop home (the whole simulated space in `home_prefixes`), a discovery
/// passes over the silent hop 5 after its timeout and ends at the destination's echo
/// reply (TTL 6) without an edge; it is tried again once per `discover_interval_s`, never
/// more: the probes stay within their bound.
#[test]
fn no_public_hop_no_edge_and_rediscovery_is_bounded() {
    require!(privileges::tun());
    let secs = 5;
    let interval_s = 2;
    let (dir, truth, log) = run(
        "ttl-path.toml",
        &format!(
            "discover_interval_s = {interval_s}\n\
             home_prefixes = [\"198.18.0.0/15\", \"2001:db8::/32\"]\n"
        ),
        secs,
        true,
        0,
    );
    let data = dir.path().join("data");
    assert!(!data.join("isp-edge").exists() && !data.join("isp-edge-v6").exists());
    assert!(
        log.contains("no V4 ISP edge found (the probe destination answered before any public hop)"),
        "{log}"
    );
    // Discoveries start at most once per interval: at 0, 2 and 4 s of a 5 s run.
    let most = (secs / interval_s + 1) as usize;
    let (v4, v6) = probes(&truth);
    for (family, ttls) in [("IPv4", v4), ("IPv6", v6)] {
        let runs: Vec<&[u8]> = ttls.chunk_by(|a, b| b == &(a + 1)).collect();
        assert!(
            !runs.is_empty() && runs.len() <= most,
            "{family}: {ttls:?}\n{log}"
        );
        // Every finished discovery tried TTL 1 to 6; the last may have been cut by the end.
        for r in &runs[..runs.len() - 1] {
            assert_eq!(*r, [1, 2, 3, 4, 5, 6], "{family}: {ttls:?}");
        }
        assert!(ttls.len() <= most * MAX_PROBES, "{family}: {ttls:?}");
    }
}

/// The link goes down while a discovery is under way, so its next probe cannot be sent.
/// That discovery learned nothing of the path: it is tried again as soon as the default
/// route is back, not after `discover_interval_s` (300 s here), nor after the daemon's
/// retry of unsent discoveries (30 s).
///
/// The probe destination has no host: its path (`unknown_via`) goes through four hops
/// the test calls home, then the silent `transit`, after which it is dropped; so the
/// discovery waits a probe timeout (1 s) for each TTL from 5 to 8. The test takes the
/// link down once the daemon says it started, well inside those 4 s.
#[test]
fn a_discovery_cut_by_a_link_down_is_tried_again_when_the_route_is_back() {
    require!(privileges::tun());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zzping.toml");
    std::fs::write(
        &config,
        "live = \"off\"\nrate = 20\ndiscover_probe = [\"198.19.99.99\"]\n\
         discover_interval_s = 300\nhome_prefixes = [\"198.18.0.0/15\", \"2001:db8::/32\"]\n",
    )
    .unwrap();
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/ttl-path.toml"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--log-target".into(),
        "stderr".into(),
    ];
    // Each wait is for an event the daemon logs at once (a netlink message, a failed
    // `sendto`); 20 s stays below the 30 s retry that would also start a discovery.
    let limit = Duration::from_secs(20);
    std::thread::spawn(move || {
        netns::enter();
        let sim = Simulator::start(&scenario, None).expect("start the simulator");
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut daemon, mut log) = common::spawn_daemon_logged(&a);
        let start = "discovery: looking for the V4 ISP edge";
        log.wait_for(start, limit);
        ip(&["link", "set", "zzsim0", "down"]);
        log.wait_for("discovery: no V4 ISP edge found (sending failed)", limit);
        assert_eq!(log.seen.matches(start).count(), 1, "{}", log.seen);
        ip(&["link", "set", "zzsim0", "up"]);
        ip(&[
            "route",
            "replace",
            "default",
            "via",
            "198.18.0.254",
            "dev",
            "zzsim0",
        ]);
        let back = log.seen.len();
        log.wait_for(start, limit);
        assert!(
            log.seen[back..].contains(start),
            "no discovery after the route came back\n{}",
            log.seen
        );
        zzping_testkit::process::signal(&daemon.0, libc::SIGTERM);
        log.wait_for("stopped: ", limit);
        let st = zzping_testkit::process::wait_bounded(&mut daemon.0, limit, "the daemon");
        assert!(st.success(), "{}", log.seen);
        sim.stop().expect("stop the simulator");
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
}
