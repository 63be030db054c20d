//! Helpers of the tests that run the real `zzping-daemon` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zzping_testkit::process::wait_bounded;

/// Building the daemon binary: linking at most, its library is built for this test
/// already; the limit is for a loaded 2-core machine.
const BUILD_LIMIT: Duration = Duration::from_secs(15 * 60);
/// The `zzping-daemon` binary of this build, beside this test's `zzping` (same profile
/// and target directory). A workspace test run (the README's command) has built it
/// already, for the daemon's own tests; it is built here only when it is missing or older
/// than a file it is made of (this package's tests run alone). A test of another
/// package's binary has no `CARGO_BIN_EXE_` for it, and `cargo build -p zzping-daemon`
/// always compiles the daemon again (its units differ from the test build's): a minute
/// on a loaded 2-core machine, beside the timing-sensitive tests.
pub fn daemon_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_zzping"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let bin = dir.join("zzping-daemon");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources = ["zzping-daemon", "zzping-lib", "Cargo.toml", "Cargo.lock"];
    let newest = sources
        .iter()
        .filter_map(|s| newest_mtime(&root.join(s)))
        .max();
    if built.is_some_and(|b| newest.is_some_and(|n| n <= b)) {
        return bin;
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-q",
        "-p",
        "zzping-daemon",
        "--bin",
        "zzping-daemon",
    ]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
        None => panic!("{}: no profile directory", dir.display()),
    }
    let mut child = cmd.spawn().expect("run cargo build");
    let st = wait_bounded(&mut child, BUILD_LIMIT, "cargo build -p zzping-daemon");
    assert!(st.success(), "cargo build -p zzping-daemon: {st}");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// The latest modification time of `path` or of any file below it (`target` and hidden
/// directories skipped); `None` when nothing there can be read.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name != "target" && !name.starts_with('.')
        })
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}
