//! Test support shared by zzping's test suites (a dev-dependency only).
//!
//! The rules it encodes, one place for every suite:
//!
//! * **A skip in CI is a failure.** [`ci`] reads the `CI` variable the way CI systems set
//!   it (`1`, `true`, `True`, `yes`, ...); [`skip`] panics there.
//! * **Only missing privileges may skip**, and only outside CI: [`privileges`] says
//!   whether this process may create network namespaces and TUN devices; a test that
//!   cannot gets [`require!`]d out with the reason printed.
//! * **A missing tool is a failure everywhere**: `.ci/install-deps` installs every tool a
//!   test runs, and [`tool`] panics naming the Debian package when one is missing.
//! * **A failure of the behaviour under test fails everywhere**: tests check privileges
//!   first and treat every later error as a failure, never as a reason to skip.
//!
//! Also here: entering a fresh network namespace ([`netns`]), bounded waits on child
//! processes ([`process`]), a counting global allocator ([`alloc`]), fping's `-C`
//! output ([`fping`]) and reference computations written from the documentation's
//! definitions ([`oracle`]), for tests that must not share the code under test.

pub mod alloc;
pub mod fping;
pub mod netns;
pub mod oracle;
pub mod privileges;
pub mod process;

use std::path::PathBuf;

/// Whether this run is CI: the `CI` variable set to a true value, as CI systems spell it
/// (`1`, `true`, `True`, `TRUE`, `yes`, `on`). Unset, empty, `0` or `false` is not CI.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| ci_value_is_true(&v))
}

fn ci_value_is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The running test's name (libtest and nextest name the test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test thread>")
        .to_string()
}

/// Skips the running test because a privilege is missing (`why` says which): prints the
/// reason, or panics when [`ci`] is set, since a skip in CI is a failure. The caller
/// returns right after (see [`require!`]).
pub fn skip(why: &str) {
    let test = test_name();
    assert!(
        !ci(),
        "{test}: {why}: CI is set, where a skipped test is a failure"
    );
    eprintln!("{test}: SKIPPED: {why}");
}

/// Returns from the calling test unless `$check` (a `Result<_, String>`, e.g.
/// [`privileges::netns`]) is `Ok`, after [`skip`] printed why (or panicked in CI).
/// Evaluates to the `Ok` value.
#[macro_export]
macro_rules! require {
    ($check:expr) => {
        match $check {
            Ok(v) => v,
            Err(why) => {
                $crate::skip(&why);
                return;
            }
        }
    };
}

/// The path of the tool `name`, searched on `PATH` and in `/usr/sbin`, `/usr/bin`.
/// Panics when it is missing, naming the Debian `package` that `.ci/install-deps`
/// installs: a missing tool is a failure, never a skip.
pub fn tool(name: &str, package: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "{}: `{name}` is not installed; run .ci/install-deps (Debian package `{package}`)",
            test_name()
        )
    })
}

/// The path of the tool `name` on `PATH` (or in `/usr/sbin`, `/usr/bin`), if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values_as_ci_systems_set_them() {
        for v in ["1", "true", "True", "TRUE", "yes", "on", " true\n"] {
            assert!(ci_value_is_true(v), "{v:?}");
        }
        for v in ["", "0", "false", "False", "no", "off", "maybe"] {
            assert!(!ci_value_is_true(v), "{v:?}");
        }
    }

    #[test]
    fn test_name_is_the_tests() {
        assert!(
            test_name().ends_with("test_name_is_the_tests"),
            "{}",
            test_name()
        );
    }

    #[test]
    fn tool_finds_sh_and_names_the_package_of_a_missing_one() {
        assert!(find_tool("sh").is_some());
        let err = std::panic::catch_unwind(|| tool("zzping-no-such-tool", "zzping-pkg"))
            .expect_err("a missing tool panics");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("zzping-pkg") && msg.contains("install-deps"),
            "{msg}"
        );
    }
}
