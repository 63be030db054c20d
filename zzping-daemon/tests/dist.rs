//! The shipped systemd unit: a notify service with a watchdog, hardened as documented,
//! valid for `systemd-analyze verify` and no more exposed for `systemd-analyze security`
//! than before it was packaged. `systemd-analyze` (Debian package `systemd`) is
//! installed by `.ci/install-deps`; missing, it fails these tests.

use std::collections::BTreeSet;
use std::process::Command;

use zzping_daemon::alert::AlertConfig;
use zzping_daemon::config::{Cli, FileConfig, HostConfig, merge};
use zzping_daemon::sock::SocketMode;
use zzping_lib::datadir::SYSTEM_DATA_DIR;

const UNIT: &str = include_str!("../dist/zzping-daemon.service");

#[test]
fn unit_is_hardened() {
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "ExecStart=/usr/bin/zzping-daemon",
        "User=zzping",
        "Group=zzping",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "StateDirectory=zzping",
        "StateDirectoryMode=0750",
        "UMask=0027",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(UNIT.lines().any(|l| l.trim() == line), "missing {line:?}");
    }
    // A private DynamicUser= directory (/var/lib/private, 0700) would hide the data
    // from group zzping.
    assert!(!UNIT.contains("DynamicUser"));
}

/// `systemd-analyze security` exposure, in tenths, the unit must not exceed: 1.9 with
/// `DynamicUser=` before the package (issue 18), 1.7 since (`UMask=0027`,
/// `PrivateMounts=`, `RemoveIPC=`).
const MAX_EXPOSURE_TENTHS: u32 = 17;

/// `systemd-analyze`: missing, the test fails (`.ci/install-deps` installs it).
fn systemd_analyze() -> std::path::PathBuf {
    zzping_testkit::tool("systemd-analyze", "systemd")
}

#[test]
fn unit_exposure_is_no_worse() {
    let analyze = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("zzping-daemon.service");
    std::fs::write(&unit, UNIT).unwrap();
    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE_TENTHS}"))
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above {MAX_EXPOSURE_TENTHS}/10: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Overall exposure level"), "{text}");
}

#[test]
fn unit_verifies() {
    let analyze = systemd_analyze();
    // Point ExecStart at the binary under test (verify checks that it exists).
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("zzping-daemon.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/bin/zzping-daemon",
            env!("CARGO_BIN_EXE_zzping-daemon"),
        ),
    )
    .unwrap();
    let out = Command::new(analyze)
        // The man page is checked where it is installed (.ci/test-install).
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Warnings (unknown keys, bad values) are printed even on success.
    assert!(
        !stderr.contains("zzping-daemon.service:"),
        "verify complained: {stderr}"
    );
}

/// The example configuration the package installs as /etc/zzping/zzping.toml.
const EXAMPLE: &str = include_str!("../dist/zzping.toml");

/// The example with its settings uncommented: `#key = ...` and `#[[host]]` lines lose
/// their `#`; prose comments (`# ...`) stay.
fn uncommented_example() -> String {
    EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[') || rest.starts_with(|c: char| c.is_ascii_lowercase()) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every key of the file format: a FileConfig with every field set (a field added to
/// the struct breaks this literal until it is added here, and then to the example).
fn every_key() -> BTreeSet<String> {
    let all = FileConfig {
        data_dir: Some("/d".into()),
        rate: Some(1.0),
        period_ms: Some(1),
        timeout_ms: Some(1),
        live: Some("off".into()),
        live_secret_file: Some("/s".into()),
        metrics: Some("off".into()),
        metrics_linger_s: Some(0.0),
        retention_days: Some(1),
        flush_interval_s: Some(1.0),
        resolve_interval_s: Some(1.0),
        socket: Some(SocketMode::Auto),
        precision: Some(0.01),
        discover: Some(true),
        discover_probe: Some(vec!["198.19.8.8".parse().unwrap()]),
        discover_interval_s: Some(1.0),
        home_prefixes: Some(vec!["198.18.0.0/16".into()]),
        internet: Some("198.19.8.8".into()),
        self_check: Some(true),
        host: vec![HostConfig {
            target: "t".into(),
            label: Some("l".into()),
            rate: Some(1.0),
            role: Some("gateway".into()),
            ttl: Some(64),
        }],
        alert: vec![AlertConfig {
            name: "a".into(),
            when: "outage".into(),
            host: Some("h".into()),
            role: Some("gateway".into()),
            for_s: Some(1.0),
            above_pct: Some(1.0),
            above_ms: Some(1.0),
            window_s: Some(1.0),
            clear_s: Some(1.0),
            command: Some(vec!["/c".into()]),
            min_interval_s: Some(1.0),
        }],
    };
    keys(&toml::Table::try_from(all).unwrap())
}

/// Top-level keys, `host.KEY` for the keys of the first `[[host]]`, and `alert.KEY` for
/// the keys of every `[[alert]]`.
fn keys(t: &toml::Table) -> BTreeSet<String> {
    let mut k: BTreeSet<String> = t.keys().cloned().collect();
    for a in t
        .get("alert")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        k.extend(a.as_table().unwrap().keys().map(|x| format!("alert.{x}")));
    }
    if let Some(h) = t
        .get("host")
        .and_then(|h| h.as_array())
        .and_then(|a| a.first())
    {
        k.extend(h.as_table().unwrap().keys().map(|x| format!("host.{x}")));
    }
    k
}

#[test]
fn example_config_has_every_key_commented_with_its_default() {
    // As shipped, everything is commented: the built-in defaults apply.
    let shipped: FileConfig = toml::from_str(EXAMPLE).unwrap();
    assert_eq!(shipped, FileConfig::default());
    // Uncommented, it parses (unknown keys are errors) and has every key.
    let text = uncommented_example();
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(keys(&table), every_key(), "example keys vs the config's");
    let mut example: FileConfig = toml::from_str(&text).unwrap();
    // Its values are the defaults, but for the keys without one (shown as examples) and
    // the data directory (which depends on the environment: shown as the service's).
    assert_eq!(
        example.data_dir.as_deref(),
        Some(std::path::Path::new(SYSTEM_DATA_DIR))
    );
    example.data_dir = None;
    example.live_secret_file = None;
    example.retention_days = None;
    example.internet = None;
    example.host.clear();
    // The example rules are examples (each valid on its own).
    for r in &example.alert {
        r.rule(0).unwrap();
    }
    example.alert.clear();
    let cli = Cli::default();
    assert_eq!(
        merge(&cli, example).unwrap(),
        merge(&cli, FileConfig::default()).unwrap()
    );
}
