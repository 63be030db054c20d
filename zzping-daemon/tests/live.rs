//! The live stream end to end: the daemon binary runs in a network namespace created for
//! this test's thread (children inherit it), and zzping-lib's viewer subscribes to it.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use zzping_lib::events::{ContextEvent, EventKind};
use zzping_lib::live::{ClientConfig, LiveEvent, UdpLiveClient};
use zzping_testkit::netns::ip;

#[test]
fn viewers_get_hosts_frames_and_prefill() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .args([
            "--config",
            "none",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--target",
            "::1",
            "--rate",
            "100",
            "--live",
            "127.0.0.1:7878",
            "--duration",
            "30",
        ])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
        if l.contains("::1: pinging") {
            break;
        }
    }
    assert!(log.contains("live stream on 127.0.0.1:7878"), "{log}");
    let server = "127.0.0.1:7878".parse().unwrap();

    // A first viewer: host metadata, then frames of both hosts, all answered.
    let mut viewer = UdpLiveClient::connect(ClientConfig::new(server)).unwrap();
    let mut labels = HashMap::new();
    let mut frames: HashMap<u32, Vec<(u64, u32, u32)>> = HashMap::new();
    let mut subscribed = false;
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && frames.values().filter(|f| f.len() >= 5).count() < 2 {
        match viewer.next_event(Duration::from_millis(200)).unwrap() {
            Some(LiveEvent::Subscribed) => subscribed = true,
            Some(LiveEvent::Host { host, meta }) => {
                assert_eq!(meta.period_us, 100_000);
                labels.insert(host, meta.label);
            }
            Some(LiveEvent::Frame { host, frame }) => {
                frames.entry(host).or_default().push((
                    frame.start_us,
                    frame.sent,
                    frame.received(),
                ));
            }
            _ => {}
        }
    }
    let subscribed_at = zzping_lib::file::wall_clock_us();
    assert!(subscribed, "{log}");
    let mut names: Vec<&str> = labels.values().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["127.0.0.1", "::1"]);
    for (host, f) in &frames {
        assert!(f.len() >= 5, "host {host}: {f:?}");
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
        assert!(
            f.iter().all(|&(_, sent, recv)| sent > 0 && recv == sent),
            "{f:?}"
        );
    }
    drop(viewer);

    // A second viewer asking for a minute of prefill gets frames from before it came.
    let mut cfg = ClientConfig::new(server);
    cfg.prefill_s = 60;
    cfg.filter = Some(vec!["::1".into()]);
    let mut late = UdpLiveClient::connect(cfg).unwrap();
    let mut earliest = u64::MAX;
    let mut other_hosts = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && earliest >= subscribed_at {
        if let Some(LiveEvent::Frame { host, frame }) =
            late.next_event(Duration::from_millis(200)).unwrap()
        {
            earliest = earliest.min(frame.start_us);
            if labels.get(&host).map(String::as_str) != Some("::1") {
                other_hosts += 1;
            }
        }
    }
    assert!(
        earliest < subscribed_at,
        "no prefill: {earliest} >= {subscribed_at}"
    );
    assert_eq!(other_hosts, 0, "filter ignored");
    drop(late);

    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{log}");
}

/// Reads `viewer`'s events for at most `limit`, keeping the context events, until `done`
/// holds for those kept.
fn context_until(
    viewer: &mut UdpLiveClient,
    limit: Duration,
    done: impl Fn(&[ContextEvent]) -> bool,
) -> Vec<ContextEvent> {
    let mut got = Vec::new();
    let end = Instant::now() + limit;
    while Instant::now() < end && !done(&got) {
        if let Some(LiveEvent::Context { event }) =
            viewer.next_event(Duration::from_millis(200)).unwrap()
        {
            got.push(event);
        }
    }
    got
}

fn has(evs: &[ContextEvent], kind: EventKind, iface: &str) -> bool {
    evs.iter()
        .any(|e| e.kind == kind && e.interface.as_deref() == Some(iface))
}

/// Context events reach viewers: one subscribed before a default route appears and its
/// link goes down gets both as they happen; one subscribing after gets them (and the
/// daemon's start) in its prefill; each is the event the daemon wrote to its files.
#[test]
fn viewers_get_context_events_live_and_in_their_prefill() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .args([
            "--config",
            "none",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--rate",
            "10",
            "--live",
            "127.0.0.1:7878",
            "--duration",
            "40",
        ])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
        if l.contains("127.0.0.1: pinging") {
            break;
        }
    }
    assert!(log.contains("live stream on 127.0.0.1:7878"), "{log}");
    let server = "127.0.0.1:7878".parse().unwrap();

    // Subscribed first (no prefill: the daemon's start is not sent to it).
    let mut early = UdpLiveClient::connect(ClientConfig::new(server)).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut ready = false;
    while Instant::now() < end && !ready {
        ready = matches!(
            early.next_event(Duration::from_millis(200)).unwrap(),
            Some(LiveEvent::Frame { .. })
        );
    }
    assert!(ready, "no frame on the live stream\n{log}");
    // A link (a tun device without its process: up, no carrier) carries a default
    // route, then goes down.
    const IFACE: &str = "zzlev0";
    ip(&["tuntap", "add", IFACE, "mode", "tun"]);
    ip(&["link", "set", IFACE, "up"]);
    ip(&["addr", "add", "198.18.7.1/24", "dev", IFACE]);
    ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.7.254",
        "dev",
        IFACE,
    ]);
    ip(&["link", "set", IFACE, "down"]);
    // Bounded by the daemon's netlink read (at once) and the live send (paced, well under
    // a second); 10 s is a generous bound for a loaded machine.
    let live = context_until(&mut early, Duration::from_secs(10), |e| {
        has(e, EventKind::LinkDown, IFACE)
    });
    let route = live
        .iter()
        .find(|e| e.kind == EventKind::RouteChange && !e.removed)
        .unwrap_or_else(|| panic!("no route change in {live:?}"));
    assert_eq!(route.gateway, Some("198.18.7.254".parse().unwrap()));
    assert_eq!(route.interface.as_deref(), Some(IFACE));
    assert!(has(&live, EventKind::LinkDown, IFACE), "{live:?}\n{log}");
    assert!(
        live.iter().all(|e| e.kind != EventKind::DaemonStart),
        "no prefill asked for: {live:?}"
    );
    assert_eq!(early.client().stats().bad_events, 0);

    // Subscribing after: all of it, from the start, in the prefill.
    let mut cfg = ClientConfig::new(server);
    cfg.prefill_s = 60;
    let mut late = UdpLiveClient::connect(cfg).unwrap();
    let history = context_until(&mut late, Duration::from_secs(10), |e| {
        has(e, EventKind::LinkDown, IFACE)
    });
    assert_eq!(
        history.first().map(|e| &e.kind),
        Some(&EventKind::DaemonStart),
        "{history:?}"
    );
    assert_eq!(
        &history[1..],
        &live[..],
        "the same events, in the same order"
    );
    drop((early, late));

    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{log}");
    // What the viewers got is what the daemon recorded.
    let recorded = common::read_events(dir.path());
    assert_eq!(&recorded[..history.len()], &history[..], "{recorded:?}");
    assert_eq!(
        recorded.last().map(|e| &e.kind),
        Some(&EventKind::DaemonStop)
    );

    // A restarted daemon hands its viewers what happened before the restart (read from
    // its events files), then its new start.
    let mut child = std::process::Command::new(common::BIN)
        .args([
            "--config",
            "none",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--live",
            "127.0.0.1:7878",
            "--duration",
            "40",
        ])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut log = String::new();
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
        if l.contains("127.0.0.1: pinging") {
            break;
        }
    }
    let mut cfg = ClientConfig::new(server);
    cfg.prefill_s = 60;
    let mut after = UdpLiveClient::connect(cfg).unwrap();
    let starts = |e: &[ContextEvent]| {
        e.iter()
            .filter(|e| e.kind == EventKind::DaemonStart)
            .count()
    };
    let got = context_until(&mut after, Duration::from_secs(10), |e| starts(e) == 2);
    drop(after);
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(child.wait().unwrap().success(), "{log}");
    assert_eq!(got.len(), recorded.len() + 1, "{got:?}\n{log}");
    assert_eq!(&got[..recorded.len()], &recorded[..]);
    assert_eq!(got[recorded.len()].kind, EventKind::DaemonStart);
}
