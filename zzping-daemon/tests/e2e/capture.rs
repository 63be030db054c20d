//! Kernel-timestamped packet capture on the simulator's TUN (an `AF_PACKET` socket, like
//! tcpdump): the wire time of every echo request leaving and every echo reply arriving.
//! This is the RTT reference independent of both the daemon and the simulator's own
//! scheduling: the simulator's `time_us` is when its reader thread got round to reading
//! the request, which on a loaded machine can be milliseconds after the packet was
//! queued to the TUN — time the prober rightly counts as RTT.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// `(peer address, ICMP identifier, ICMP sequence)`.
pub type Key = (IpAddr, u16, u16);

/// What the capture saw.
#[derive(Debug, Default)]
pub struct Wire {
    /// Echo requests out: first transmit time, realtime ns.
    pub requests: HashMap<Key, u64>,
    /// Echo replies in: first receive time, realtime ns.
    pub replies: HashMap<Key, u64>,
    /// Packets the kernel dropped from the capture buffer.
    pub drops: u32,
    /// Packets without a kernel timestamp.
    pub unstamped: u64,
}

impl Wire {
    /// Wire RTT of a request, ns.
    pub fn rtt_ns(&self, k: &Key) -> Option<u64> {
        let tx = self.requests.get(k)?;
        let rx = self.replies.get(k)?;
        rx.checked_sub(*tx)
    }
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Wire>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the given size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl Capture {
    /// Starts capturing on interface `ifname` of the calling thread's namespace.
    pub fn start(ifname: &str) -> io::Result<Capture> {
        let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        })?;
        // SAFETY: fd is a fresh socket we own.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(32i32 << 20))?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)?;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll.
        cvt(unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("e2e-capture".into())
            .spawn(move || capture_loop(owned, &s2))?;
        Ok(Capture { stop, handle })
    }

    /// Stops and returns what was seen.
    pub fn finish(self) -> Wire {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("capture thread")
    }
}

fn capture_loop(fd: std::os::fd::OwnedFd, stop: &AtomicBool) -> Wire {
    use std::os::fd::AsRawFd;
    let fd = fd.as_raw_fd();
    let mut w = Wire::default();
    let mut buf = [0u8; 2048];
    let mut cmsg = [0u64; 16];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr/sockaddr_ll are valid; pointers set to live buffers.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&cmsg);
        // SAFETY: msg describes live buffers.
        let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                continue;
            }
            panic!("capture recvmsg: {e}");
        }
        let mut ts = None;
        // SAFETY: walking the control messages the kernel wrote into `cmsg`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let Some(ts) = ts else {
            w.unstamped += 1;
            continue;
        };
        if let Some((req, key)) = parse(&buf[..n as usize]) {
            let map = if req { &mut w.requests } else { &mut w.replies };
            map.entry(key).or_insert(ts);
        }
    }
    let mut st = [0u32; 2];
    let mut len = size_of_val(&st) as libc::socklen_t;
    // SAFETY: PACKET_STATISTICS fills a tpacket_stats (two u32).
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            st.as_mut_ptr().cast(),
            &mut len,
        )
    };
    w.drops = st[1];
    w
}

/// Echo request (true, keyed by destination) or echo reply (false, keyed by source).
fn parse(p: &[u8]) -> Option<(bool, Key)> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if p.len() < ihl + 8 || p[9] != 1 {
                return None;
            }
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let icmp = &p[ihl..];
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            match icmp[0] {
                8 => Some((true, (IpAddr::V4(dst), id, seq))),
                0 => Some((false, (IpAddr::V4(src), id, seq))),
                _ => None,
            }
        }
        6 => {
            if p.len() < 48 || p[6] != 58 {
                return None;
            }
            let a = |o: usize| -> IpAddr {
                let b: [u8; 16] = p[o..o + 16].try_into().unwrap();
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let icmp = &p[40..];
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            match icmp[0] {
                128 => Some((true, (a(24), id, seq))),
                129 => Some((false, (a(8), id, seq))),
                _ => None,
            }
        }
        _ => None,
    }
}
