//! Packet capture on an interface (an `AF_PACKET` socket with a `TPACKET_V2` ring, like
//! tcpdump): the tap time of every echo request and echo reply crossing it, in each
//! direction. This is the RTT reference independent of both the daemon and the
//! simulator's scheduling.
//!
//! Why a ring and not `recvmsg` with `SO_TIMESTAMPNS`: a socket asking for receive
//! timestamps switches the kernel's network timestamping on for every socket, which
//! would hide the very race the daemon must survive (packets stamped inside `recvmsg`
//! while timestamping is being switched on, see zzping-daemon/src/recv.rs). A ring
//! frame carries the packet's stamp when the kernel took one and otherwise the time the
//! kernel copied it into the ring, in the tap itself: either way the tap's time, never
//! the reader's.
//!
//! Where the taps sit (Linux): a packet leaving an interface is copied to captures in
//! `dev_queue_xmit_nit`, *before* the driver's transmit stamp (`skb_tx_timestamp`); a
//! packet arriving is stamped in `netif_rx` and copied to captures later, when the
//! stack processes it. So for one echo exchange:
//! - on a TUN (the simulator): request out-tap ≤ daemon's send stamp, and daemon's
//!   receive stamp ≤ reply in-tap: the daemon's RTT ≤ `replies - requests`;
//! - on loopback, where both packets leave and arrive on `lo`: request out-tap (T1) ≤
//!   send stamp ≤ request in-tap (T2) ≤ reply out-tap (T3) ≤ receive stamp ≤ reply
//!   in-tap (T4): the daemon's RTT lies in `[T3 - T2, T4 - T1]`.
//!
//! A capture survives its interface going down and up (`[[link]]`): it sees nothing
//! meanwhile and resumes afterwards. Each TUN needs its own capture.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;

/// `(peer address, ICMP identifier, ICMP sequence)`.
pub type Key = (IpAddr, u16, u16);

/// What the capture saw (times: realtime ns, first sighting of each packet).
#[derive(Debug, Default)]
pub struct Wire {
    /// Echo requests leaving the interface (keyed by destination).
    pub requests: HashMap<Key, u64>,
    /// Echo requests arriving on the interface (loopback only).
    pub requests_in: HashMap<Key, u64>,
    /// Echo replies leaving the interface (loopback only; keyed by source).
    pub replies_out: HashMap<Key, u64>,
    /// Echo replies arriving on the interface (keyed by source).
    pub replies: HashMap<Key, u64>,
    /// Packets the kernel dropped because the ring was full.
    pub drops: u32,
    /// Times the interface went down under the capture (`ENETDOWN` reported).
    pub link_downs: u32,
}

impl Wire {
    /// Wire RTT of a request (reply in-tap minus request out-tap), ns: an upper bound of
    /// any prober's kernel-timed RTT.
    pub fn rtt_ns(&self, k: &Key) -> Option<u64> {
        let tx = self.requests.get(k)?;
        let rx = self.replies.get(k)?;
        rx.checked_sub(*tx)
    }

    /// On loopback, the interval a kernel-timed RTT must lie in, ns: `[T3 - T2, T4 - T1]`
    /// (module docs).
    pub fn loopback_interval_ns(&self, k: &Key) -> Option<(u64, u64)> {
        let hi = self.rtt_ns(k)?;
        let t2 = self.requests_in.get(k)?;
        let t3 = self.replies_out.get(k)?;
        Some((t3.checked_sub(*t2)?, hi))
    }
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<Wire>>,
}

/// `PACKET_VERSION` / `PACKET_RX_RING` / `PACKET_STATISTICS` (linux/if_packet.h).
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const PACKET_OUTGOING: u8 = 4;
/// Ring geometry: 256 blocks of 64 KiB, 2 KiB frames: 8,192 packets.
const BLOCK_SIZE: u32 = 1 << 16;
const BLOCK_NR: u32 = 256;
const FRAME_SIZE: u32 = 1 << 11;

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
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

/// The mapped ring; unmapped on drop.
struct Ring {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by one thread at a time (moved into the capture thread).
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len describe a mapping we own.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl Capture {
    /// Starts capturing on interface `ifname` of the calling thread's namespace. Returns
    /// once the ring is bound: every packet after that is seen.
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
        setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        let req = TpacketReq {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
        };
        setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        let len = (BLOCK_SIZE * BLOCK_NR) as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Ring {
            base: base.cast(),
            len,
        };
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
            .spawn(move || capture_loop(owned, ring, &s2))?;
        Ok(Capture { stop, handle })
    }

    /// Stops and returns what was seen (after reading what is left in the ring).
    pub fn finish(self) -> io::Result<Wire> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .map_err(|_| io::Error::other("the capture thread panicked"))?
    }
}

fn capture_loop(fd: std::os::fd::OwnedFd, ring: Ring, stop: &AtomicBool) -> io::Result<Wire> {
    use std::os::fd::AsRawFd;
    let fd = fd.as_raw_fd();
    let mut w = Wire::default();
    let frames = (BLOCK_SIZE / FRAME_SIZE * BLOCK_NR) as usize;
    let mut i = 0usize;
    loop {
        // SAFETY: frame i lies inside the mapping; its header is 4-byte aligned.
        let frame = unsafe { ring.base.add(i * FRAME_SIZE as usize) };
        // The status word is shared with the kernel: read and written atomically.
        // SAFETY: tp_status is the first u32 of the frame header.
        let status = unsafe { AtomicU32::from_ptr(frame.cast::<u32>()) };
        if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io::Error::last_os_error());
            }
            if rc > 0 && pfd.revents & libc::POLLERR != 0 {
                // The interface went down (`ENETDOWN`): reading the error clears it,
                // and the kernel resumes capturing when it comes back up.
                let mut err: libc::c_int = 0;
                let mut len = size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: SO_ERROR writes one int.
                cvt(unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        (&raw mut err).cast(),
                        &mut len,
                    )
                })?;
                match err {
                    0 => {}
                    libc::ENETDOWN => w.link_downs += 1,
                    e => return Err(io::Error::from_raw_os_error(e)),
                }
            }
            continue;
        }
        // SAFETY: the kernel handed this frame to us (TP_STATUS_USER); the header, the
        // sockaddr_ll after it and the packet at tp_net all lie within the frame.
        unsafe {
            let h: Tpacket2Hdr = std::ptr::read(frame.cast());
            let sll_off = (size_of::<Tpacket2Hdr>() + 15) & !15;
            let sll: libc::sockaddr_ll = std::ptr::read_unaligned(frame.add(sll_off).cast());
            let start = usize::from(h.tp_net);
            let end = (start + h.tp_snaplen as usize).min(FRAME_SIZE as usize);
            let pkt = std::slice::from_raw_parts(frame.add(start), end.saturating_sub(start));
            let ts = u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec);
            let outgoing = sll.sll_pkttype == PACKET_OUTGOING;
            if let Some((req, key)) = parse(pkt) {
                let map = match (req, outgoing) {
                    (true, true) => &mut w.requests,
                    (true, false) => &mut w.requests_in,
                    (false, true) => &mut w.replies_out,
                    (false, false) => &mut w.replies,
                };
                map.entry(key).or_insert(ts);
            }
        }
        status.store(TP_STATUS_KERNEL, Ordering::Release);
        i = (i + 1) % frames;
    }
    let mut st = [0u32; 2];
    let mut len = size_of_val(&st) as libc::socklen_t;
    // SAFETY: PACKET_STATISTICS fills a tpacket_stats (two u32).
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            st.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    w.drops = st[1];
    drop(ring);
    Ok(w)
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
