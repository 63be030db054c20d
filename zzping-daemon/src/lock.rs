//! One daemon per data directory: an exclusive `flock` on the directory itself, held for
//! the life of the process (the kernel releases it however the process ends).
//!
//! The directory, not a file in it: a lock file could not be created while the directory
//! is not writable, and the daemon must run (and retry recording) then too. A second
//! daemon finds the lock taken and exits, naming the directory and the holder's PID,
//! which the kernel lists in `/proc/locks`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The data directory could not be locked.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "data directory {} is in use by another zzping-daemon ({}); one daemon per data directory",
        dir.display(),
        holder.map_or("PID unknown".to_owned(), |p| format!("PID {p}"))
    )]
    Held {
        /// The directory.
        dir: PathBuf,
        /// The process holding the lock, when `/proc/locks` names it.
        holder: Option<u32>,
    },
    /// The directory could not be opened or locked.
    #[error("locking the data directory {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _dir: File,
}

/// Takes the exclusive lock of `dir` without waiting.
pub fn lock(dir: &Path) -> Result<DataDirLock, LockError> {
    let io_err = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let f = File::open(dir).map_err(io_err)?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(DataDirLock { _dir: f });
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(io_err(e));
    }
    let holder = f.metadata().ok().and_then(|m| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        flock_holder(&locks, m.dev(), m.ino())
    });
    Err(LockError::Held {
        dir: dir.to_path_buf(),
        holder,
    })
}

/// The PID holding a `FLOCK` on the file `(dev, ino)` in `/proc/locks` text, whose lines
/// read `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF` (device numbers in hex;
/// waiters are marked `->` and skipped).
pub fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "FLOCK", _, _, pid, file, ..] if *file == want => pid.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_this_process_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        // flock is per open file description: a second open in the same process conflicts.
        match lock(dir.path()) {
            Err(LockError::Held { dir: d, holder }) => {
                assert_eq!(d, dir.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        let again = lock(dir.path()).unwrap();
        drop(again);
        let missing = dir.path().join("missing");
        assert!(matches!(lock(&missing), Err(LockError::Io { .. })));
    }

    #[test]
    fn the_holder_is_read_from_proc_locks_lines() {
        let locks = "1: FLOCK  ADVISORY  WRITE 26893 fe:00:5701735 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 999 fe:00:42 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 77 fe:00:42 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 1234 fe:00:42 0 EOF\n";
        let dev = libc::makedev(0xfe, 0);
        assert_eq!(flock_holder(locks, dev, 42), Some(1234));
        assert_eq!(flock_holder(locks, dev, 5_701_735), Some(26_893));
        assert_eq!(flock_holder(locks, dev, 7), None);
        assert_eq!(flock_holder(locks, libc::makedev(8, 1), 42), None);
    }
}
