//! Thin safe wrappers over the Linux system calls the simulator needs:
//! network namespaces, TUN devices, clocks, eventfd, ppoll and signals.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Move the calling thread (and so, if it is the only thread, the process)
/// into a new network namespace. Threads and children created afterwards
/// inherit it. Call before any other thread exists.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: plain syscall with a flag argument.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map(|_| ())
}

/// Reduce the calling thread's timer slack so that timed waits wake up
/// within a few µs of their deadline instead of the default 50 µs.
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long value.
    cvt(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) }).map(|_| ())
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// CLOCK_MONOTONIC in ns.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in µs since the Unix epoch.
pub fn realtime_us() -> u64 {
    clock_ns(libc::CLOCK_REALTIME) / 1000
}

/// An open TUN device (IFF_TUN | IFF_NO_PI). Closing it removes the device.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

impl Tun {
    /// Create TUN device `name` in the current network namespace.
    pub fn create(name: &str) -> io::Result<Tun> {
        let cname = CString::new(name).map_err(|_| io::Error::other("NUL in interface name"))?;
        if cname.as_bytes().len() >= libc::IFNAMSIZ {
            return Err(io::Error::other("interface name too long"));
        }
        // SAFETY: path is a valid C string.
        let fd =
            cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
        // SAFETY: fd was just returned by open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(cname.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a struct ifreq we own.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
        Ok(Tun {
            fd,
            name: name.to_string(),
        })
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Make reads and writes non-blocking.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on an fd we own.
        let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(|_| ())
    }

    /// Read one datagram.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Write one datagram.
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: pkt is valid for reads of its length.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A non-blocking eventfd used to wake threads.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// New eventfd with counter 0.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fresh fd owned by us.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
    /// Increment the counter (wakes pollers).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. EAGAIN (counter saturated)
        // still leaves the fd readable, which is all we need.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }
    /// Reset the counter.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN when already 0.
        unsafe { libc::read(self.0.as_raw_fd(), (&raw mut v).cast(), 8) };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Wait until one of `fds` is readable or `timeout_ns` passes (None: forever).
/// Returns the readiness of each fd. EINTR counts as a timeout.
pub fn ppoll_readable(fds: &[RawFd], timeout_ns: Option<u64>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: pfds and ts outlive the call; null sigmask keeps the current one.
    let r = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
        .collect())
}

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigSet")
    }
}

impl SigSet {
    /// The set holding `sigs`.
    pub fn of(sigs: &[libc::c_int]) -> SigSet {
        // SAFETY: sigemptyset initialises the set; sigaddset with valid numbers.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            for &sig in sigs {
                libc::sigaddset(&mut s, sig);
            }
            SigSet(s)
        }
    }

    /// Block these signals in the calling thread (threads spawned later
    /// inherit the mask), so they can be taken with [`SigSet::wait`].
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: valid set pointer, null old-set pointer.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }

    /// Wait up to `timeout_ms` for one of these (blocked) signals; returns it,
    /// or None on timeout.
    pub fn wait(&self, timeout_ms: u64) -> io::Result<Option<libc::c_int>> {
        Ok(self.wait_info(timeout_ms)?.map(|(sig, _)| sig))
    }

    /// Like [`SigSet::wait`], also returning whether the kernel generated
    /// the signal (`si_code == SI_KERNEL`, e.g. Ctrl-C on the terminal,
    /// which reaches the whole foreground process group) rather than
    /// `kill()` from a process.
    pub fn wait_info(&self, timeout_ms: u64) -> io::Result<Option<(libc::c_int, bool)>> {
        let ts = libc::timespec {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: siginfo_t is plain data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set, info and timespec pointers.
        let r = unsafe { libc::sigtimedwait(&self.0, &mut info, &ts) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some((r, info.si_code == libc::SI_KERNEL)))
    }
}

/// Send signal `sig` to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
        // Realtime is after 2020-01-01.
        assert!(realtime_us() > 1_577_836_800_000_000);
    }

    #[test]
    fn eventfd_wakes_ppoll() {
        let e = EventFd::new().unwrap();
        let t0 = mono_ns();
        let r = ppoll_readable(&[e.as_raw_fd()], Some(2_000_000)).unwrap();
        assert_eq!(r, vec![false]);
        assert!(mono_ns() - t0 >= 2_000_000);
        e.notify();
        let r = ppoll_readable(&[e.as_raw_fd()], Some(5_000_000_000)).unwrap();
        assert_eq!(r, vec![true]);
        e.drain();
        let r = ppoll_readable(&[e.as_raw_fd()], Some(0)).unwrap();
        assert_eq!(r, vec![false]);
    }
}
