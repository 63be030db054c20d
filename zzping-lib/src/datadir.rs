//! The default data directory: one rule for the daemon, which writes it, and for the
//! readers (`zzping` subcommands, the viewer), so that `zzping report` with no path reads
//! what the daemon writes.
//!
//! In order, the first that applies:
//! 1. `$ZZPING_DATA_DIR` ([`DATA_DIR_ENV`]);
//! 2. `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`; its first entry);
//! 3. [`SYSTEM_DATA_DIR`] (`/var/lib/zzping`, the packaged service's) when this process
//!    can use it: a reader when it can list it (root, or a member of group `zzping`), the
//!    daemon when it can write it (or create it: root);
//! 4. `$XDG_DATA_HOME/zzping`, else `~/.local/share/zzping`;
//! 5. [`SYSTEM_DATA_DIR`] when there is no home either.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The system data directory: the packaged service's `StateDirectory=`.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/zzping";
/// Environment variable that names the data directory for every zzping binary.
pub const DATA_DIR_ENV: &str = "ZZPING_DATA_DIR";

/// What the caller will do with the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read frame files (`zzping` subcommands, the viewer).
    Read,
    /// Write frame files (the daemon).
    Write,
}

/// The environment variables the rule looks at (empty values count as unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDirEnv {
    /// `ZZPING_DATA_DIR`.
    pub zzping_data_dir: Option<OsString>,
    /// `STATE_DIRECTORY` (a colon-separated list).
    pub state_directory: Option<OsString>,
    /// `XDG_DATA_HOME` (ignored unless absolute, as the XDG spec says).
    pub xdg_data_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
}

impl DataDirEnv {
    /// The variables of this process.
    pub fn from_process() -> Self {
        DataDirEnv {
            zzping_data_dir: std::env::var_os(DATA_DIR_ENV),
            state_directory: std::env::var_os("STATE_DIRECTORY"),
            xdg_data_home: std::env::var_os("XDG_DATA_HOME"),
            home: std::env::var_os("HOME"),
        }
    }
}

/// The default data directory of this process for `access` (see the module docs).
pub fn default_data_dir(access: Access) -> PathBuf {
    choose_data_dir(&DataDirEnv::from_process(), || {
        system_dir_usable(Path::new(SYSTEM_DATA_DIR), access)
    })
}

/// The rule itself, for an environment `env`; `system_usable` says whether this process
/// can use [`SYSTEM_DATA_DIR`] (asked only when the variables do not decide).
pub fn choose_data_dir(env: &DataDirEnv, system_usable: impl FnOnce() -> bool) -> PathBuf {
    let set = |v: &Option<OsString>| v.clone().filter(|v| !v.is_empty());
    if let Some(d) = set(&env.zzping_data_dir) {
        return PathBuf::from(d);
    }
    if let Some(s) = set(&env.state_directory) {
        let first = s
            .as_bytes()
            .split(|&b| b == b':')
            .next()
            .unwrap_or_default();
        if !first.is_empty() {
            return PathBuf::from(std::ffi::OsStr::from_bytes(first));
        }
    }
    if system_usable() {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    if let Some(x) = set(&env.xdg_data_home).map(PathBuf::from)
        && x.is_absolute()
    {
        return x.join("zzping");
    }
    match set(&env.home) {
        Some(h) => PathBuf::from(h).join(".local/share/zzping"),
        None => PathBuf::from(SYSTEM_DATA_DIR),
    }
}

/// Whether this process can use `dir` for `access`: list it (read), or write in it, or
/// create it when it does not exist yet (write).
pub fn system_dir_usable(dir: &Path, access: Access) -> bool {
    match access {
        Access::Read => std::fs::read_dir(dir).is_ok(),
        Access::Write if dir.exists() => can_access(dir, libc::W_OK | libc::X_OK),
        Access::Write => dir
            .parent()
            .is_some_and(|p| can_access(p, libc::W_OK | libc::X_OK)),
    }
}

/// `access(2)` with the real user and group (the daemon is not setuid, so they are the
/// effective ones).
fn can_access(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(z: Option<&str>, s: Option<&str>, x: Option<&str>, h: Option<&str>) -> DataDirEnv {
        let o = |v: Option<&str>| v.map(OsString::from);
        DataDirEnv {
            zzping_data_dir: o(z),
            state_directory: o(s),
            xdg_data_home: o(x),
            home: o(h),
        }
    }

    #[test]
    fn variables_then_system_then_xdg_then_home() {
        let p = PathBuf::from;
        let all = env(Some("/d"), Some("/s:/t"), Some("/x"), Some("/h"));
        assert_eq!(choose_data_dir(&all, || true), p("/d"));
        let no_z = env(None, Some("/s:/t"), Some("/x"), Some("/h"));
        assert_eq!(choose_data_dir(&no_z, || true), p("/s"));
        let user = env(Some(""), Some(""), Some("/x"), Some("/h"));
        assert_eq!(choose_data_dir(&user, || true), p(SYSTEM_DATA_DIR));
        assert_eq!(choose_data_dir(&user, || false), p("/x/zzping"));
        // A relative XDG_DATA_HOME is ignored (XDG spec).
        let rel = env(None, None, Some("rel"), Some("/h"));
        assert_eq!(choose_data_dir(&rel, || false), p("/h/.local/share/zzping"));
        assert_eq!(
            choose_data_dir(&env(None, None, None, None), || false),
            p(SYSTEM_DATA_DIR)
        );
    }

    #[test]
    fn the_system_dir_is_asked_about_only_when_the_variables_do_not_decide() {
        let e = env(Some("/d"), None, None, None);
        assert_eq!(choose_data_dir(&e, || panic!("asked")), PathBuf::from("/d"));
    }

    #[test]
    fn usability_follows_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("zzping");
        assert!(
            !system_dir_usable(&d, Access::Read),
            "missing dir is unreadable"
        );
        // Its parent is ours, so it can be created.
        assert!(system_dir_usable(&d, Access::Write));
        std::fs::create_dir(&d).unwrap();
        assert!(system_dir_usable(&d, Access::Read));
        assert!(system_dir_usable(&d, Access::Write));
        assert!(!system_dir_usable(
            Path::new("/nonexistent-zzping-parent/zzping"),
            Access::Write
        ));
    }
}
