//! The shipped systemd unit: hardened as documented, and valid for `systemd-analyze
//! verify` when that tool is installed.

use std::process::Command;

const UNIT: &str = include_str!("../dist/zzping-daemon.service");

#[test]
fn unit_is_hardened() {
    for line in [
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "DynamicUser=yes",
        "StateDirectory=zzping",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(UNIT.lines().any(|l| l.trim() == line), "missing {line:?}");
    }
}

#[test]
fn unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed; skipping");
        return;
    };
    assert!(out.status.success());
    // Point ExecStart at the binary under test (verify checks that it exists).
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("zzping-daemon.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/bin/zzping-daemon",
            env!("CARGO_BIN_EXE_zzping-daemon"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
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
