//! The memory bound every target runs under (`zzping_fuzz::Bounded`) really aborts: an
//! allocation a 4 GB length claim would make kills the process, with the reason, so
//! libFuzzer reports it as a crash with its input.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
// Linked for its global allocator, the thing under test.
use zzping_fuzz as _;

/// SIGABRT's number on Linux.
const SIGABRT: i32 = 6;

/// In the child: what to allocate.
const CHILD_ENV: &str = "ZZPING_FUZZ_BOUNDS_CHILD";

/// Runs this test binary's `child` test alone with `what`; returns its signal and stderr.
fn run_child(what: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, what)
        .output()
        .unwrap();
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn child() {
    let Ok(what) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut keep: Vec<Vec<u8>> = Vec::new();
    match what.as_str() {
        // What a decoder believing a 4 GB length field would do.
        "one_huge" => keep.push(Vec::with_capacity(4 << 30)),
        // Many allowed allocations that together exceed the live bound.
        "many" => {
            for _ in 0..16 {
                keep.push(vec![1u8; 16 << 20]);
            }
        }
        // Within every bound: must not abort.
        "fine" => keep.push(vec![1u8; 16 << 20]),
        other => panic!("unknown {other}"),
    }
    std::hint::black_box(&keep);
}

#[test]
fn allocations_beyond_the_bounds_abort_the_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (signal, err) = run_child("one_huge");
    assert_eq!(signal, Some(SIGABRT), "{err}");
    assert!(
        err.contains("one allocation above MAX_ALLOC_BYTES"),
        "{err}"
    );
    let (signal, err) = run_child("many");
    assert_eq!(signal, Some(SIGABRT), "{err}");
    assert!(err.contains("live memory above MAX_LIVE_BYTES"), "{err}");
    let (signal, err) = run_child("fine");
    assert_eq!(signal, None, "{err}");
}
