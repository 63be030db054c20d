//! The binary's start-up errors, run as a user would: no display, a bad secret file, a
//! bad time. Each must exit 1 with a message naming what is wrong, never panic.

use std::process::Command;

fn gui(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zzping-gui"))
        .args(["--config", "none"])
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("RUST_LOG", "error")
        .output()
        .expect("run zzping-gui")
}

#[test]
fn without_a_display_it_names_both_variables_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = gui(&[dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("DISPLAY") && err.contains("WAYLAND_DISPLAY"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_secret_file_or_time_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("live.secret");
    std::fs::write(&secret, "abc").unwrap();
    let out = gui(&[
        "--live",
        "127.0.0.1:7878",
        "--secret-file",
        secret.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--secret-file") && err.contains("live.secret"),
        "{err}"
    );
    let out = gui(&["--from", "the day before"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--from the day before: expected a time"),
        "{err}"
    );
}
