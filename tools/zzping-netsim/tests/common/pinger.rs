//! A prober for the tests, built like the daemon's: ICMP datagram ("ping") sockets with
//! `IP_RECVERR` / `IPV6_RECVERR`, so that failed sends show as `sendto` errors and ICMP
//! errors from routers arrive on the error queue with the router as the offender.
//! Every send and every answer carries its wall-clock time, for comparison with the
//! simulator's truth.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `SO_EE_ORIGIN_ICMP` / `SO_EE_ORIGIN_ICMP6` (linux/errqueue.h).
pub const ORIGIN_ICMP: u8 = 2;
/// See [`ORIGIN_ICMP`].
pub const ORIGIN_ICMP6: u8 = 3;

/// Wall clock, µs since the epoch (as the truth's times).
pub fn now_us() -> u64 {
    zzping_netsim::sys::realtime_us()
}

/// One `sendto`.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Destination.
    pub dst: IpAddr,
    /// ICMP sequence number.
    pub seq: u16,
    /// TTL / hop limit it was sent with.
    pub ttl: u8,
    /// Wall clock just before `sendto`.
    pub before_us: u64,
    /// Wall clock just after it returned.
    pub after_us: u64,
    /// `Err(errno)` when it failed.
    pub result: Result<(), i32>,
}

/// Something that came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An echo reply.
    Reply {
        /// Source of the reply.
        from: IpAddr,
        /// Its sequence number.
        seq: u16,
    },
    /// An ICMP error quoting one of our requests (from the error queue).
    Error {
        /// Destination of the request it quotes.
        dst: IpAddr,
        /// Sequence number of the request it quotes.
        seq: u16,
        /// The errno the kernel gives it.
        errno: i32,
        /// `ee_origin`.
        origin: u8,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        icmp_code: u8,
        /// The router that sent it (`SO_EE_OFFENDER`).
        offender: IpAddr,
    },
}

/// One ping socket per family.
pub struct Pinger {
    v4: OwnedFd,
    v6: OwnedFd,
    /// TTL / hop limit last set per family (IPv4, IPv6).
    ttl: std::cell::Cell<[u8; 2]>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) {
    // SAFETY: v is a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

fn sockaddr(a: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let s = socket2::SockAddr::from(SocketAddr::new(a, 0));
    // SAFETY: SockAddr holds a valid sockaddr_storage.
    let st = unsafe { std::ptr::read(s.as_ptr().cast::<libc::sockaddr_storage>()) };
    (st, s.len())
}

fn from_storage(st: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(st.ss_family) {
        libc::AF_INET => {
            // SAFETY: family says sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((st as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: family says sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((st as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

impl Pinger {
    /// Ping sockets in the calling thread's namespace (first allowing every group to
    /// open them there: `net.ipv4.ping_group_range` belongs to the namespace).
    pub fn new() -> Pinger {
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
            .expect("allow ping sockets in the namespace");
        let open = |dom, proto| {
            // SAFETY: plain socket call.
            let fd = cvt(unsafe {
                libc::socket(
                    dom,
                    libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    proto,
                )
            })
            .expect("ping socket");
            // SAFETY: fresh fd.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let v4 = open(libc::AF_INET, libc::IPPROTO_ICMP);
        let v6 = open(libc::AF_INET6, libc::IPPROTO_ICMPV6);
        setsockopt(&v4, libc::SOL_IP, libc::IP_RECVERR, 1);
        setsockopt(&v6, libc::SOL_IPV6, libc::IPV6_RECVERR, 1);
        Pinger {
            v4,
            v6,
            ttl: std::cell::Cell::new([64; 2]),
        }
    }

    fn fd(&self, v6: bool) -> &OwnedFd {
        if v6 { &self.v6 } else { &self.v4 }
    }

    /// Sets the TTL / hop limit of the family's socket (64 at first).
    pub fn set_ttl(&self, v6: bool, ttl: u8) {
        let mut t = self.ttl.get();
        if t[usize::from(v6)] == ttl {
            return;
        }
        t[usize::from(v6)] = ttl;
        self.ttl.set(t);
        if v6 {
            setsockopt(
                &self.v6,
                libc::SOL_IPV6,
                libc::IPV6_UNICAST_HOPS,
                ttl.into(),
            );
        } else {
            setsockopt(&self.v4, libc::SOL_IP, libc::IP_TTL, ttl.into());
        }
    }

    /// Sends one echo request. Answers waiting on the socket are taken first into
    /// `answers`: a queued ICMP error would otherwise fail this `sendto` itself (the
    /// kernel reports a socket's pending error on its next send).
    pub fn send(&self, dst: IpAddr, seq: u16, answers: &mut Vec<(u64, Answer)>) -> Sent {
        self.drain(dst.is_ipv6(), answers);
        let mut msg = vec![if dst.is_ipv6() { 128 } else { 8 }, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(b"zzping-netsim fault test");
        let (sa, len) = sockaddr(dst);
        let before_us = now_us();
        // SAFETY: msg and sa are valid for the given lengths.
        let rc = unsafe {
            libc::sendto(
                self.fd(dst.is_ipv6()).as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const sa).cast(),
                len,
            )
        };
        let after_us = now_us();
        let result = if rc < 0 {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        };
        Sent {
            dst,
            seq,
            ttl: self.ttl.get()[usize::from(dst.is_ipv6())],
            before_us,
            after_us,
            result,
        }
    }

    /// Reads everything waiting (replies and the error queue) on both sockets.
    pub fn drain_all(&self, answers: &mut Vec<(u64, Answer)>) {
        self.drain(false, answers);
        self.drain(true, answers);
    }

    /// Reads answers until `limit` passes.
    pub fn collect_for(&self, limit: Duration, answers: &mut Vec<(u64, Answer)>) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let mut p = [
                libc::pollfd {
                    fd: self.v4.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.v6.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            unsafe { libc::poll(p.as_mut_ptr(), 2, 10) };
            self.drain_all(answers);
        }
    }

    fn drain(&self, v6: bool, answers: &mut Vec<(u64, Answer)>) {
        let fd = self.fd(v6).as_raw_fd();
        loop {
            let mut buf = [0u8; 2048];
            // SAFETY: zeroed storage is valid.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut flen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: buffers valid for their lengths.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut flen,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                // A pending error (sk_err) is reported here once; the error queue
                // below holds the details.
                if e.raw_os_error().is_some_and(|c| {
                    [libc::EHOSTUNREACH, libc::ENETUNREACH, libc::EACCES].contains(&c)
                }) {
                    continue;
                }
                panic!("recvfrom: {e}");
            }
            if n >= 8 && (buf[0] == 0 || buf[0] == 129) {
                let seq = u16::from_be_bytes([buf[6], buf[7]]);
                answers.push((
                    now_us(),
                    Answer::Reply {
                        from: from_storage(&from).expect("reply source"),
                        seq,
                    },
                ));
            }
        }
        while let Some(a) = recv_error(fd, v6) {
            answers.push((now_us(), a));
        }
    }
}

/// One message of the error queue, decoded.
fn recv_error(fd: libc::c_int, v6: bool) -> Option<Answer> {
    let mut data = [0u8; 2048];
    let mut ctl = [MaybeUninit::<u64>::uninit(); 64];
    // SAFETY: zeroed storage is valid.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the fields are set below.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_name = (&raw mut name).cast();
    mh.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    mh.msg_controllen = size_of_val(&ctl);
    // SAFETY: every pointer in mh is valid for its length.
    let n = unsafe { libc::recvmsg(fd, &mut mh, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let seq = if n >= 8 {
        u16::from_be_bytes([data[6], data[7]])
    } else {
        0
    };
    let dst = from_storage(&name).expect("error queue message names the destination");
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            let ours = if v6 {
                level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR
            } else {
                level == libc::SOL_IP && ty == libc::IP_RECVERR
            };
            if ours {
                let p = libc::CMSG_DATA(c);
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(p.cast());
                let off = p.add(size_of::<libc::sock_extended_err>());
                let st: libc::sockaddr_storage = if v6 {
                    let mut st: libc::sockaddr_storage = std::mem::zeroed();
                    std::ptr::copy_nonoverlapping(
                        off,
                        (&raw mut st).cast::<u8>(),
                        size_of::<libc::sockaddr_in6>(),
                    );
                    st
                } else {
                    let mut st: libc::sockaddr_storage = std::mem::zeroed();
                    std::ptr::copy_nonoverlapping(
                        off,
                        (&raw mut st).cast::<u8>(),
                        size_of::<libc::sockaddr_in>(),
                    );
                    st
                };
                return Some(Answer::Error {
                    dst,
                    seq,
                    errno: ee.ee_errno as i32,
                    origin: ee.ee_origin,
                    icmp_type: ee.ee_type,
                    icmp_code: ee.ee_code,
                    offender: from_storage(&st).expect("offender address"),
                });
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    panic!("error queue message without IP_RECVERR data");
}
