//! The live stream end to end: the daemon binary runs in a network namespace created for
//! this test's thread (children inherit it), and zzping-lib's viewer subscribes to it.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use zzping_lib::live::{ClientConfig, LiveEvent, UdpLiveClient};

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
