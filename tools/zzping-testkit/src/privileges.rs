//! Whether this process has the privileges the end-to-end tests need. Each check returns
//! `Err(reason)` when a privilege is missing, for [`crate::require!`]: the only reason a
//! test may skip (and never in CI).

use std::sync::OnceLock;

/// Whether a thread can move into a new network namespace (root, or user namespaces
/// with `CAP_NET_ADMIN` there). Tried on a scratch thread, so the caller's namespace is
/// untouched; the namespace dies with the thread.
pub fn netns() -> Result<(), String> {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    OK.get_or_init(|| {
        std::thread::spawn(|| {
            // SAFETY: plain syscall with a flag argument, on a thread we own.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
                Ok(())
            } else {
                Err(format!(
                    "cannot create a network namespace ({}): needs root",
                    std::io::Error::last_os_error()
                ))
            }
        })
        .join()
        .unwrap_or_else(|_| Err("the namespace probe thread panicked".into()))
    })
    .clone()
}

/// [`netns`], plus `/dev/net/tun` open for reading and writing (the simulator's TUN
/// device).
pub fn tun() -> Result<(), String> {
    netns()?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(|e| format!("cannot open /dev/net/tun ({e}): needs root and the tun device"))
}

/// Whether the effective user is root (tests that need root itself, not a namespace).
pub fn root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("needs root".into())
    }
}
