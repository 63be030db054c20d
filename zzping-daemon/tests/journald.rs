//! `--log-target journald`: the daemon speaks the journal's native protocol. The test
//! plays journald: it binds a datagram socket in a temporary directory, and the daemon
//! runs in fresh mount and network namespaces where that directory is mounted at
//! `/run/systemd/journal`, pinging loopback for half a second.

mod common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs the daemon with `log_args` in namespaces where `dir` is the journal's directory;
/// returns its exit status, stderr and the datagrams the "journal" received.
fn run_with_journal(
    dir: &std::path::Path,
    log_args: &[&str],
    journal_stream: bool,
) -> (bool, String, Vec<BTreeMap<String, String>>) {
    let journal = UnixDatagram::bind(dir.join("socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         mount --bind {} /run/systemd/journal && ip link set lo up && exec \"$0\" \"$@\"",
        dir.display()
    );
    let mut cmd = Command::new("timeout");
    cmd.args([
        "30", "unshare", "--mount", "--net", "sh", "-c", &script, BIN,
    ])
    .args(["--config", "none", "--data-dir"])
    .arg(data.path())
    .args(["--target", "127.0.0.1", "--rate", "20", "--duration", "0.5"])
    .args(log_args)
    .env_remove("RUST_LOG")
    .env_remove("JOURNAL_STREAM");
    if journal_stream {
        // What systemd sets when stderr is connected to the journal (device:inode).
        cmd.env("JOURNAL_STREAM", "8:12345");
    }
    let out = cmd.output().unwrap();
    let mut msgs = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Everything was sent before the daemon exited: read until the socket is empty.
    while let Ok(n) = journal.recv(&mut buf) {
        msgs.push(parse_native(&buf[..n]));
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        msgs,
    )
}

/// Parses one record of the journal's native protocol: `KEY=value\n`, or for values
/// that may hold newlines `KEY\n` + little-endian u64 length + value + `\n`.
fn parse_native(mut b: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("field ends in a newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            b = &b[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(b[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = &b[nl + 9..nl + 9 + len];
            assert_eq!(
                b[nl + 9 + len],
                b'\n',
                "{key}: value not newline-terminated"
            );
            fields.insert(key, String::from_utf8_lossy(value).into_owned());
            b = &b[nl + 10 + len..];
        }
    }
    fields
}

#[test]
fn journald_gets_structured_records_with_priorities() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr, msgs) = run_with_journal(dir.path(), &["--log-target", "journald"], false);
    assert!(ok, "daemon failed: {stderr}");
    // Nothing on stderr: the records went to the journal.
    assert!(
        !stderr.contains("pinging 127.0.0.1"),
        "log lines on stderr: {stderr}"
    );
    let msg = |m: &BTreeMap<String, String>| m.get("MESSAGE").cloned().unwrap_or_default();
    let pinging = msgs
        .iter()
        .find(|m| msg(m).contains("pinging 127.0.0.1"))
        .unwrap_or_else(|| {
            panic!(
                "no 'pinging' record among {} datagrams: {msgs:?}",
                msgs.len()
            )
        });
    // INFO is journald's "notice" (5); every record names the program and its source.
    assert_eq!(pinging["PRIORITY"], "5", "{pinging:?}");
    assert_eq!(pinging["SYSLOG_IDENTIFIER"], "zzping-daemon");
    assert_eq!(pinging["TARGET"], "zzping_daemon::daemon::targets");
    assert!(
        pinging["CODE_FILE"].ends_with("daemon/targets.rs"),
        "{pinging:?}"
    );
    assert!(
        msgs.iter().any(|m| msg(m).starts_with("stopped: ")),
        "{msgs:?}"
    );
}

#[test]
fn auto_and_stderr_targets_stay_on_stderr_without_journal_stream() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    for args in [&[][..], &["--log-target", "stderr"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let (ok, stderr, msgs) = run_with_journal(dir.path(), args, false);
        assert!(ok, "daemon failed: {stderr}");
        assert!(stderr.contains("pinging 127.0.0.1"), "{args:?}: {stderr}");
        assert!(msgs.is_empty(), "{args:?}: journal got {msgs:?}");
    }
}

#[test]
fn auto_target_follows_journal_stream() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr, msgs) = run_with_journal(dir.path(), &[], true);
    assert!(ok, "daemon failed: {stderr}");
    assert!(!stderr.contains("pinging 127.0.0.1"), "{stderr}");
    assert!(
        msgs.iter().any(|m| m
            .get("MESSAGE")
            .is_some_and(|v| v.contains("pinging 127.0.0.1"))),
        "{msgs:?}"
    );
}

#[test]
fn missing_journal_falls_back_to_stderr_with_a_warning() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // An empty /run: no journal socket.
    let out = Command::new("timeout")
        .args(["30", "unshare", "--mount", "--net", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run && ip link set lo up && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(["--config", "none", "--data-dir"])
        .arg(data.path())
        .args(["--target", "127.0.0.1", "--duration", "0.3"])
        .args(["--log-target", "journald"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    drop(dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot log to journald") && stderr.contains("logging to stderr"),
        "{stderr}"
    );
    assert!(stderr.contains("pinging 127.0.0.1"), "{stderr}");
}
