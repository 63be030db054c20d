//! Thin Linux wrappers: signalfd, capability dropping, rusage, the loop's `ppoll` sleep.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A signalfd for SIGINT, SIGTERM and SIGHUP. Creating it blocks those signals in the
/// calling thread (do it before spawning threads, which inherit the mask).
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks the signals and opens the fd.
    pub fn new() -> io::Result<SignalFd> {
        // SAFETY: sigset manipulation on a local, zeroed set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let fd = cvt(libc::signalfd(
                -1,
                &set,
                libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
            ))?;
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Next pending signal number, if any.
    pub fn read(&self) -> Option<i32> {
        // SAFETY: zeroed signalfd_siginfo is valid; read fills at most its size.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size_of::<libc::signalfd_siginfo>(),
            );
            (n == size_of::<libc::signalfd_siginfo>() as isize).then_some(info.ssi_signo as i32)
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops every capability of the calling thread (effective, permitted, inheritable,
/// ambient). Call once the sockets are open and before spawning threads. Returns whether
/// the thread had any capability.
pub fn drop_all_capabilities() -> io::Result<bool> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a 2-element data array as capget(2) v3 requires.
    cvt(unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) as libc::c_int })?;
    let had = data.iter().any(|d| d.permitted != 0 || d.effective != 0);
    // SAFETY: plain prctl; failure (old kernels) is harmless.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if had {
        let zero = [CapData::default(); 2];
        hdr.version = LINUX_CAPABILITY_VERSION_3;
        hdr.pid = 0;
        // SAFETY: as above, setting all-zero sets.
        cvt(unsafe { libc::syscall(libc::SYS_capset, &mut hdr, zero.as_ptr()) as libc::c_int })?;
    }
    Ok(had)
}

/// CPU time (user + system) of the whole process, ns.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0;
        }
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

/// Sleeps until `fd` is readable or the monotonic clock reaches `deadline_ns`, with ns
/// precision (`ppoll`); returns whether `fd` is readable. On an epoll fd this reports
/// pending events without consuming them, so the caller can skip `epoll_wait` (and the
/// timerfd round trip) when only a deadline woke it: two syscalls fewer per ping.
pub fn wait_readable_until(fd: RawFd, deadline_ns: u64) -> io::Result<bool> {
    let now = crate::clock::mono_ns();
    let wait = deadline_ns.saturating_sub(now);
    let ts = libc::timespec {
        tv_sec: (wait / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
        tv_nsec: (wait % 1_000_000_000) as libc::c_long,
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask change.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0)
}

/// Sets the calling thread's timer slack (the kernel's allowance for waking it late from
/// timed sleeps; 50 µs by default) to `ns`.
pub fn set_timer_slack_ns(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument; failure leaves the default.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0);
    }
}
