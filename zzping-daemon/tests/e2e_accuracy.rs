//! End-to-end accuracy: the real daemon binary in a simulated network (zzping-netsim in a
//! fresh network namespace), its frame files held against the simulator's ground truth.
//! The method is documented in `e2e/mod.rs`. One test per scenario file (run one at a
//! time: `.config/nextest.toml` puts this binary in the single-threaded `timing` group);
//! `every_scenario_file_has_a_test` makes sure no `e2e-*.toml` (the scenarios written for
//! this suite) is forgotten.
//!
//! ```text
//! cargo nextest run -p zzping-daemon -E 'binary(e2e_accuracy)' --no-capture
//! ```

mod common;
mod e2e;

use std::net::IpAddr;

use e2e::{Run, check, run};

/// `(test name, scenario file, extra "# e2e:" settings)`. Settings of scenarios shared
/// with other suites live here; files written for this suite carry their own.
const SCENARIOS: &[(&str, &str, &str)] = &[
    (
        "clean",
        "clean.toml",
        "rate = 200\nfping = \"198.18.0.10\"\nexpect_counts = [\"received\"]",
    ),
    (
        "wifi_bad",
        "wifi-bad.toml",
        "timeout_ms = 1500\nexpect_fates = [\"dropped_burst\", \"dropped_random\"]\nexpect_counts = [\"lost\"]",
    ),
    (
        "dupes_reorder",
        "dupes-reorder.toml",
        "expect_fates = [\"duplicated\"]\nexpect_counts = [\"duplicates\"]",
    ),
    (
        "unreachable_silent",
        "unreachable-silent.toml",
        "expect_fates = [\"unreachable\", \"silent\"]\nexpect_counts = [\"errors\", \"lost\"]",
    ),
    (
        "ratelimit",
        "ratelimit.toml",
        "rate = 50\nexpect_fates = [\"dropped_ratelimit\"]\nexpect_counts = [\"lost\"]",
    ),
    (
        "outage",
        "outage.toml",
        "duration_s = 8\nexpect_fates = [\"dropped_outage\"]\nexpect_counts = [\"lost\"]",
    ),
    (
        "ipv6",
        "ipv6.toml",
        "fping = \"2001:db8::10\"\nexpect_counts = [\"errors\", \"lost\"]",
    ),
    ("demo", "demo.toml", "rate = 50\nduration_s = 10"),
    (
        "router_errors",
        "router-errors.toml",
        "rate = 50\nduration_s = 13\nexpect_fates = [\"unreachable\", \"ttl_exceeded\"]\nexpect_counts = [\"errors\", \"received\"]",
    ),
    (
        "route_loss",
        "route-loss.toml",
        "rate = 50\nduration_s = 14\nexpect_counts = [\"errors\", \"received\"]",
    ),
    (
        "link_flap",
        "link-flap.toml",
        "rate = 50\nduration_s = 11\nexpect_counts = [\"errors\", \"lost\", \"received\"]",
    ),
    (
        "ttl_path",
        "ttl-path.toml",
        "rate = 50\nduration_s = 6\nexpect_counts = [\"received\"]",
    ),
    (
        "isp_ratelimit",
        "isp-ratelimit.toml",
        "rate = 50\nduration_s = 8\nexpect_fates = [\"dropped_ratelimit\"]\nexpect_counts = [\"lost\", \"received\"]",
    ),
    (
        "route_change",
        "route-change.toml",
        "rate = 50\nduration_s = 11\nexpect_counts = [\"received\"]",
    ),
    ("late_replies", "e2e-late.toml", ""),
    ("high_rate", "e2e-high-rate.toml", ""),
    ("near_timeout", "e2e-near-timeout.toml", ""),
];

fn scenario(test: &str) -> Option<Run> {
    let (_, file, extra) = SCENARIOS
        .iter()
        .find(|(n, _, _)| *n == test)
        .unwrap_or_else(|| panic!("no scenario {test}"));
    let r = run(test, file, extra)?;
    check(&r);
    Some(r)
}

#[test]
fn every_scenario_file_has_a_test() {
    let mut missing = Vec::new();
    for e in std::fs::read_dir(e2e::scenarios_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("e2e-") && name.ends_with(".toml");
        if ours && !SCENARIOS.iter().any(|(_, f, _)| *f == name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "scenario files without an e2e test (add a line to SCENARIOS and a #[test]): {missing:?}"
    );
    // Every settings text parses.
    for (_, file, extra) in SCENARIOS {
        e2e::load(file, extra);
    }
}

#[test]
fn clean() {
    scenario("clean");
}

#[test]
fn wifi_bad() {
    scenario("wifi_bad");
}

#[test]
fn dupes_reorder() {
    scenario("dupes_reorder");
}

#[test]
fn unreachable_silent() {
    let Some(r) = scenario("unreachable_silent") else {
        return;
    };
    // The healthy host is unaffected by its dead neighbours: everything answered.
    for a in ["198.18.0.10", "2001:db8::10"] {
        let f = &r.frames[&a.parse::<IpAddr>().unwrap()];
        let (sent, recv): (u32, u32) = (
            f.iter().map(|f| f.sent).sum(),
            f.iter().map(|f| f.received).sum(),
        );
        assert!(sent > 0 && recv == sent, "{a}: {recv} of {sent} answered");
    }
}

#[test]
fn ratelimit() {
    scenario("ratelimit");
}

#[test]
fn outage() {
    let Some(r) = scenario("outage") else {
        return;
    };
    // The network went away (1 s .. 2.5 s after the simulator started) and came back:
    // every target lost pings in it and received again after it.
    let start = r.truth.start().unwrap().time_us;
    let (from, to) = (start + 1_000_000, start + 2_500_000);
    for (a, frames) in &r.frames {
        let during: u32 = frames
            .iter()
            .filter(|f| f.start_us >= from && f.start_us + 100_000 <= to)
            .map(|f| f.lost)
            .sum();
        let after: u32 = frames
            .iter()
            .filter(|f| f.start_us >= to + 100_000)
            .map(|f| f.received)
            .sum();
        assert!(during > 0, "{a}: no loss during the outage");
        assert!(after > 0, "{a}: nothing received after the outage");
    }
}

/// Errors of each kind over every target's frames.
fn kinds(r: &Run) -> std::collections::BTreeMap<&'static str, u64> {
    let mut m = std::collections::BTreeMap::new();
    for f in r.frames.values().flatten() {
        for (k, n) in f.error_kinds.iter() {
            *m.entry(k.name()).or_default() += u64::from(n);
        }
    }
    m
}

#[test]
fn router_errors() {
    let Some(r) = scenario("router_errors") else {
        return;
    };
    // Per frame, `check` held every error's kind and router against the truth; here:
    // each window of the scenario was seen, by its kind, with the router named.
    let k = kinds(&r);
    for kind in [
        "net_unreachable",
        "host_unreachable",
        "prohibited",
        "ttl_exceeded",
    ] {
        assert!(k.get(kind).copied().unwrap_or(0) > 0, "{kind}: {k:?}");
    }
    let routers: std::collections::BTreeSet<IpAddr> = r
        .frames
        .values()
        .flatten()
        .filter_map(|f| f.router)
        .collect();
    for gw in ["198.18.0.254", "198.19.0.1", "198.19.1.1"] {
        assert!(routers.contains(&gw.parse().unwrap()), "{gw}: {routers:?}");
    }
}

#[test]
fn route_loss() {
    let Some(r) = scenario("route_loss") else {
        return;
    };
    // Sends failed on this machine while routes were away (`check` placed each failure
    // inside the truth's windows and counted every request that reached the simulator);
    // none came back from the network.
    let k = kinds(&r);
    assert!(k.get("no_route").copied().unwrap_or(0) > 0, "{k:?}");
    assert!(
        k.keys()
            .all(|n| zzping_lib::frame::ErrorKind::from_name(n).is_some_and(|k| k.is_local())),
        "{k:?}"
    );
}

#[test]
fn link_flap() {
    let Some(r) = scenario("link_flap") else {
        return;
    };
    // Link down: sends failed on this machine; carrier off: sends succeeded and the
    // requests were lost (`check` held both against the truth's windows, frame by
    // frame).
    let k = kinds(&r);
    assert!(
        k.keys().any(|n| *n == "no_route" || *n == "net_down"),
        "{k:?}"
    );
    assert!(
        k.keys()
            .all(|n| zzping_lib::frame::ErrorKind::from_name(n).is_some_and(|k| k.is_local())),
        "{k:?}"
    );
}

#[test]
fn route_change() {
    let Some(r) = scenario("route_change") else {
        return;
    };
    // The far host's requests left through the hotspot while the default route named
    // it (the truth's `interface`), and were held to the truth like the others.
    let far: IpAddr = "198.19.8.8".parse().unwrap();
    let via: std::collections::BTreeSet<&str> = r
        .truth
        .requests_to(far)
        .iter()
        .map(|q| q.interface.as_str())
        .collect();
    assert!(via.contains("zzsim0") && via.contains("zzsim1"), "{via:?}");
}

#[test]
fn ttl_path() {
    scenario("ttl_path");
}

#[test]
fn isp_ratelimit() {
    scenario("isp_ratelimit");
}

#[test]
fn ipv6() {
    scenario("ipv6");
}

#[test]
fn demo() {
    scenario("demo");
}

#[test]
fn late_replies() {
    scenario("late_replies");
}

#[test]
fn high_rate() {
    scenario("high_rate");
}

#[test]
fn near_timeout() {
    scenario("near_timeout");
}

#[test]
fn documented_timing_matches_the_daemon() {
    // The harness's tolerances use the documented numbers (e2e/mod.rs `DOC_*`); the
    // daemon must still work to them. A change of either side fails here, where it is
    // seen, instead of moving the tolerances silently.
    assert_eq!(zzping_daemon::recv::BATCH_NS / 1000, e2e::DOC_BATCH_US);
    assert_eq!(zzping_daemon::recv::WINDOW_NS / 1000, e2e::DOC_WINDOW_US);
    assert_eq!(zzping_daemon::daemon::GRACE_NS / 1000, e2e::DOC_GRACE_US);
    assert_eq!(
        zzping_daemon::engine::EXPIRY_SLACK_NS / 1000,
        e2e::DOC_EXPIRY_SLACK_US
    );
    assert_eq!(
        zzping_daemon::engine::BOUNDARY_SLACK_NS / 1000,
        e2e::DOC_BOUNDARY_SLACK_US
    );
}
