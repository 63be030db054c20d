//! ICMP sockets: one per address family, shared by all hosts.
//!
//! Unprivileged datagram ICMP sockets (`SOCK_DGRAM`/`IPPROTO_ICMP[V6]`, allowed when the
//! process's group is in `net.ipv4.ping_group_range`) are preferred; raw sockets
//! (`CAP_NET_RAW`) are the fallback. Differences handled here:
//!
//! - datagram sockets: the kernel writes the socket's "port" as the echo identifier and
//!   only delivers replies carrying it; we bind to port 0 and read the assigned port back.
//!   No IP header is delivered.
//! - raw sockets: every ICMP message of the host reaches us (other processes' pings too):
//!   we pick an identifier and the engine drops replies without it; a kernel filter
//!   (`ICMP_FILTER` / `ICMP6_FILTER`) passes only echo replies and errors. Raw IPv4
//!   sockets deliver the IP header, which is stripped.
//!
//! Receive timestamps come from `SO_TIMESTAMPNS` control messages (`CLOCK_REALTIME`).
//! Transmit timestamps, where the kernel supports them for the socket, come from
//! `SO_TIMESTAMPING` (software stamps taken when the packet is handed to the device
//! driver, the point a capture on the interface sees it): with `OPT_ID` and `OPT_TSONLY`
//! each stamp arrives on the socket's error queue as a small message carrying a
//! per-socket counter of sends, which the engine maps back to its request
//! ([`Message::TxStamp`]).
//!
//! # Two sockets per family
//! A message on the error queue makes a socket readable for `poll` whatever it asks for
//! (`POLLERR` cannot be masked), so a transmit stamp on the socket the receive thread
//! waits on wakes it once per round of sends, before any reply. The daemon therefore
//! opens a pair per family ([`IcmpSocket::open_pair`]): requests go out on the *send*
//! socket, whose error queue (the stamps) the loop reads itself right after its sends,
//! and which never receives (a filter that drops every packet; on raw sockets also an
//! `ICMP_FILTER` that blocks every type, so the kernel does not even copy the replies to
//! it); the receive thread waits only on the *receive* socket (receive stamps, no
//! transmit stamps). Both carry the same echo identifier:
//! - raw: the identifier is ours (both sockets see every echo reply of the host; the
//!   send socket's filters drop them);
//! - datagram: the kernel hands a reply to *one* socket bound to its identifier, the one
//!   bound last (`ping_lookup` walks a hash chain that binds add to the head), so the
//!   send socket takes an identifier, the receive socket binds the same one after it
//!   (both `SO_REUSEADDR`, which the receive socket then clears, so no other socket can
//!   join), and ICMP errors about our requests go to the receive socket's error queue
//!   (`IP_RECVERR` is set there only).

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use crate::icmp::{self, Family, Message};

/// Which kind of ICMP socket to use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    /// Datagram if allowed, else raw.
    #[default]
    Auto,
    /// Datagram ICMP sockets only (`net.ipv4.ping_group_range`).
    Dgram,
    /// Raw sockets only (`CAP_NET_RAW`).
    Raw,
}

/// The kind of an open socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SOCK_DGRAM`.
    Dgram,
    /// `SOCK_RAW`.
    Raw,
}

/// Opening a socket failed.
#[derive(Debug, Error)]
pub enum SockError {
    /// Neither kind could be opened.
    #[error(
        "cannot open an ICMP socket for {family:?}: datagram: {dgram}; raw: {raw}.\n\
         Remedies (any one):\n  \
         - allow unprivileged ICMP for your group: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"\n  \
         - give the binary CAP_NET_RAW: sudo setcap cap_net_raw+ep /path/to/zzping-daemon\n  \
         - under systemd: AmbientCapabilities=CAP_NET_RAW (see dist/zzping-daemon.service)"
    )]
    Unavailable {
        /// Family.
        family: Family,
        /// Datagram error (or "not tried").
        dgram: String,
        /// Raw error (or "not tried").
        raw: String,
    },
    /// Configuring an opened socket failed.
    #[error("configuring the {family:?} ICMP socket: {source}")]
    Setup {
        /// Family.
        family: Family,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// An open ICMP socket.
#[derive(Debug)]
pub struct IcmpSocket {
    sock: Socket,
    family: Family,
    kind: Kind,
    ident: u16,
    tx_stamps: bool,
}

/// `SO_TIMESTAMPING` flags for software transmit stamps keyed by a per-socket counter,
/// without the packet (`OPT_TSONLY`), and no receive stamps through this option
/// (`OPT_RX_FILTER`, Linux 6.2; `SO_TIMESTAMPNS` provides them).
const TX_STAMP_FLAGS: libc::c_uint = libc::SOF_TIMESTAMPING_TX_SOFTWARE
    | libc::SOF_TIMESTAMPING_SOFTWARE
    | libc::SOF_TIMESTAMPING_OPT_ID
    | libc::SOF_TIMESTAMPING_OPT_TSONLY;
/// What a socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Sends and receives.
    Single,
    /// Sends, with transmit stamps; receives nothing.
    Send,
    /// Receives the replies to the requests sent with `ident`.
    Receive { ident: u16 },
}

/// Classic BPF `ret #k` (`BPF_RET | BPF_K`): with k = 0, drop the packet.
const BPF_RET_K: u16 = 0x06;
/// `SOF_TIMESTAMPING_OPT_RX_FILTER` (not in every libc release).
const OPT_RX_FILTER: libc::c_uint = 1 << 17;
/// `SO_EE_ORIGIN_TIMESTAMPING`.
const ORIGIN_TIMESTAMPING: u8 = 4;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes of the ICMP message in the caller's buffer (`buf[start..end]`).
    pub start: usize,
    /// End of the ICMP message.
    pub end: usize,
    /// Sender.
    pub src: IpAddr,
    /// `SO_TIMESTAMPNS`, realtime ns.
    pub kernel_real_ns: Option<u64>,
    /// `CLOCK_REALTIME` read just before the `recvmsg` call that returned it, ns. A
    /// kernel stamp at or after this reading was taken during the call itself.
    pub call_real_ns: u64,
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the given size for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl IcmpSocket {
    /// Opens the socket of `family` in `mode`.
    /// One socket that both sends and receives (the discovery's probes, read by the
    /// loop itself). The daemon's pingers use [`IcmpSocket::open_pair`].
    pub fn open(family: Family, mode: SocketMode) -> Result<IcmpSocket, SockError> {
        Self::open_role(family, mode, Role::Single)
    }

    /// Opens the two sockets of `family` in `mode`: `(send, receive)` (see the module
    /// docs). The send socket has the transmit stamps and receives nothing; the receive
    /// socket has the receive stamps (and, datagram, the ICMP errors); both carry the
    /// same identifier.
    pub fn open_pair(
        family: Family,
        mode: SocketMode,
    ) -> Result<(IcmpSocket, IcmpSocket), SockError> {
        let (domain, proto) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let send = Self::open_role(family, mode, Role::Send)?;
        let ty = match send.kind {
            Kind::Dgram => Type::DGRAM,
            Kind::Raw => Type::RAW,
        };
        let err = |source| SockError::Setup { family, source };
        let recv = Socket::new(domain, ty, Some(proto)).map_err(err)?;
        let recv = Self::setup(recv, family, send.kind, Role::Receive { ident: send.ident })?;
        Ok((send, recv))
    }

    fn open_role(family: Family, mode: SocketMode, role: Role) -> Result<IcmpSocket, SockError> {
        let (domain, proto) = match family {
            Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
            Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
        };
        let mut dgram_err = "not tried".to_owned();
        let mut raw_err = "not tried".to_owned();
        if mode != SocketMode::Raw {
            match Socket::new(domain, Type::DGRAM, Some(proto)) {
                Ok(s) => return Self::setup(s, family, Kind::Dgram, role),
                Err(e) => dgram_err = e.to_string(),
            }
        }
        if mode != SocketMode::Dgram {
            match Socket::new(domain, Type::RAW, Some(proto)) {
                Ok(s) => return Self::setup(s, family, Kind::Raw, role),
                Err(e) => raw_err = e.to_string(),
            }
        }
        Err(SockError::Unavailable {
            family,
            dgram: dgram_err,
            raw: raw_err,
        })
    }

    fn setup(
        sock: Socket,
        family: Family,
        kind: Kind,
        role: Role,
    ) -> Result<IcmpSocket, SockError> {
        let err = |source| SockError::Setup { family, source };
        sock.set_nonblocking(true).map_err(err)?;
        // Room for bursts while the receive thread is descheduled; on the send socket,
        // for a round's transmit stamps (they count against the receive buffer) until
        // the loop reads them.
        let _ = sock.set_recv_buffer_size(1 << 20);
        let fd = sock.as_raw_fd();
        let one: libc::c_int = 1;
        if role != Role::Send {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one).map_err(err)?;
        }
        // Kernel transmit stamps: optional (older kernels lack them for ICMP sockets or
        // the RX filter flag); without them the send time is read just before sendto.
        let tx_stamps = !matches!(role, Role::Receive { .. })
            && [TX_STAMP_FLAGS | OPT_RX_FILTER, TX_STAMP_FLAGS]
                .iter()
                .any(|flags| {
                    setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, flags).is_ok()
                });
        if role == Role::Send {
            // Every packet dropped before it is queued: the send socket never holds a
            // reply (its error queue, the stamps, is not filtered).
            sock.attach_filter(&[socket2::SockFilter::new(BPF_RET_K, 0, 0, 0)])
                .map_err(err)?;
        }
        let ident = match kind {
            Kind::Dgram => {
                let port = match role {
                    Role::Receive { ident } => ident,
                    _ => 0,
                };
                if role != Role::Single {
                    // The pair shares the identifier (see the module docs).
                    sock.set_reuse_address(true).map_err(err)?;
                }
                let any: SocketAddr = match family {
                    Family::V4 => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into(),
                    Family::V6 => SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into(),
                };
                sock.bind(&any.into()).map_err(err)?;
                if role != Role::Send {
                    // ICMP errors about our requests reach datagram sockets only through
                    // the error queue (read with MSG_ERRQUEUE, see `recv_error`).
                    match family {
                        Family::V4 => setsockopt(fd, libc::SOL_IP, libc::IP_RECVERR, &one),
                        Family::V6 => setsockopt(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, &one),
                    }
                    .map_err(err)?;
                }
                if matches!(role, Role::Receive { .. }) {
                    // No third socket may bind the identifier (and take our replies).
                    sock.set_reuse_address(false).map_err(err)?;
                }
                let local = sock.local_addr().map_err(err)?;
                let bound = local.as_socket().map_or(0, |a| a.port());
                if port != 0 && bound != port {
                    return Err(err(io::Error::other(format!(
                        "the receive socket got identifier {bound}, not the send socket's {port}"
                    ))));
                }
                bound
            }
            Kind::Raw => {
                let block_all = role == Role::Send;
                match family {
                    Family::V4 => {
                        // ICMP_FILTER (SOL_RAW, 1): a set bit blocks that type.
                        let pass = if block_all {
                            0
                        } else {
                            (1u32 << icmp::V4_ECHO_REPLY)
                                | (1u32 << icmp::V4_DEST_UNREACH)
                                | (1u32 << icmp::V4_TIME_EXCEEDED)
                        };
                        let _ = setsockopt(fd, libc::SOL_RAW, 1, &!pass);
                    }
                    Family::V6 => {
                        // ICMP6_FILTER: struct icmp6_filter { u32 data[8] }, set bit = block.
                        let mut filt = [u32::MAX; 8];
                        if !block_all {
                            for t in [
                                icmp::V6_ECHO_REPLY,
                                icmp::V6_DEST_UNREACH,
                                icmp::V6_PACKET_TOO_BIG,
                                icmp::V6_TIME_EXCEEDED,
                            ] {
                                filt[usize::from(t >> 5)] &= !(1u32 << (t & 31));
                            }
                        }
                        let _ = setsockopt(fd, libc::IPPROTO_ICMPV6, 1, &filt);
                    }
                }
                match role {
                    Role::Receive { ident } => ident,
                    _ => raw_ident(),
                }
            }
        };
        Ok(IcmpSocket {
            sock,
            family,
            kind,
            ident,
            tx_stamps,
        })
    }

    /// Family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Datagram or raw.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Identifier our replies carry.
    pub fn ident(&self) -> u16 {
        self.ident
    }

    /// Whether the kernel stamps our sends (see the module docs).
    pub fn tx_stamps(&self) -> bool {
        self.tx_stamps
    }

    /// Sets the TTL (IPv4) or hop limit (IPv6) of the next sends.
    pub fn set_ttl(&self, ttl: u8) -> io::Result<()> {
        let v = libc::c_int::from(ttl);
        match self.family {
            Family::V4 => setsockopt(self.sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TTL, &v),
            Family::V6 => setsockopt(
                self.sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_HOPS,
                &v,
            ),
        }
    }

    /// A raw socket passes only "time exceeded" messages on (the discovery's probes:
    /// it then does not see every echo reply of the machine).
    pub fn only_time_exceeded(&self) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        match self.family {
            Family::V4 => setsockopt(fd, libc::SOL_RAW, 1, &!(1u32 << icmp::V4_TIME_EXCEEDED)),
            Family::V6 => {
                let mut filt = [u32::MAX; 8];
                let t = icmp::V6_TIME_EXCEEDED;
                filt[usize::from(t >> 5)] &= !(1u32 << (t & 31));
                setsockopt(fd, libc::IPPROTO_ICMPV6, 1, &filt)
            }
        }
    }

    /// Sends a prepared ICMP message to `addr`.
    pub fn send_to(&self, packet: &[u8], addr: IpAddr) -> io::Result<()> {
        self.send_to_scoped(packet, addr, 0)
    }

    /// Sends a prepared ICMP message to `addr` through interface `scope` (an IPv6
    /// link-local address needs one; 0: none).
    pub fn send_to_scoped(&self, packet: &[u8], addr: IpAddr, scope: u32) -> io::Result<()> {
        let sa = match addr {
            IpAddr::V6(v6) if scope != 0 => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope)),
            _ => SocketAddr::new(addr, 0),
        };
        self.sock.send_to(packet, &SockAddr::from(sa)).map(|_| ())
    }

    /// Receives one datagram without blocking (`Ok(None)` when none is queued). `buf` gets
    /// the packet; the ICMP message is `buf[d.start..d.end]` (IPv4 header stripped on raw
    /// sockets). Datagrams whose IP header is malformed are returned with an empty range.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        // u64 array: correctly aligned for cmsghdr.
        let mut control = [0u64; 16];
        let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_mut_ptr().cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>() as _;
        let call_real_ns = crate::clock::real_ns();
        // SAFETY: msg points to valid buffers that outlive the call.
        let n = unsafe { libc::recvmsg(self.sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(self.parse_datagram(
            &msg,
            n as usize,
            buf,
            call_real_ns,
        )))
    }

    /// Receives up to `max` datagrams (at most [`RecvBatch::CAPACITY`]) in one
    /// `recvmmsg` without blocking and hands each to `f` with its buffer, as
    /// [`IcmpSocket::recv`] would return it; returns how many were read (0: none queued).
    pub fn recv_many(
        &self,
        batch: &mut RecvBatch,
        max: usize,
        mut f: impl FnMut(Datagram, &[u8]),
    ) -> io::Result<usize> {
        let call_real_ns = crate::clock::real_ns();
        let n = self.recv_batch(batch, max, libc::MSG_DONTWAIT)?;
        for i in 0..n {
            let len = batch.hdrs[i].msg_len as usize;
            let buf = &batch.bufs[i][..];
            let d = self.parse_datagram(&batch.hdrs[i].msg_hdr, len, buf, call_real_ns);
            f(d, buf);
        }
        Ok(n)
    }

    /// One `recvmmsg` of up to `max` messages (at least 1, at most
    /// [`RecvBatch::CAPACITY`]) into `batch`, with `flags` (which must not block);
    /// returns how many were read (0: none queued).
    fn recv_batch(
        &self,
        batch: &mut RecvBatch,
        max: usize,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let want = max.clamp(1, RecvBatch::CAPACITY);
        batch.prepare(want);
        // SAFETY: the first `want` headers point into `batch`'s own buffers, which
        // outlive the call; no timeout.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                want as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// One datagram the kernel wrote into `msg` (`n` bytes in `buf`), read by a call
    /// that began at `call_real_ns`.
    fn parse_datagram(
        &self,
        msg: &libc::msghdr,
        n: usize,
        buf: &[u8],
        call_real_ns: u64,
    ) -> Datagram {
        let n = n.min(buf.len());
        // SAFETY: the kernel filled msg_namelen bytes of a sockaddr_storage.
        let src = unsafe { sockaddr_ip(msg.msg_name.cast(), msg.msg_namelen) };
        let mut kernel_real_ns = None;
        // SAFETY: walking the control buffer the kernel filled, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    kernel_real_ns = Some(crate::clock::kernel_stamp_ns(&ts));
                }
                c = libc::CMSG_NXTHDR(msg, c);
            }
        }
        let Some(src) = src else {
            return Datagram {
                start: 0,
                end: 0,
                src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                kernel_real_ns,
                call_real_ns,
            };
        };
        let start = if self.kind == Kind::Raw && self.family == Family::V4 {
            match icmp::strip_ipv4_header(&buf[..n]) {
                Ok(rest) => n - rest.len(),
                Err(_) => n,
            }
        } else {
            0
        };
        Datagram {
            start,
            end: n,
            src,
            kernel_real_ns,
            call_real_ns,
        }
    }
}

impl IcmpSocket {
    /// Reads one message of the error queue (`MSG_ERRQUEUE`) without blocking: a queued
    /// ICMP error (datagram sockets) or a transmit timestamp ([`Message::TxStamp`]).
    /// `Ok(None)` when the queue is empty; `Ok(Some(Message::Other))` for errors that are
    /// not about one of our echo requests (e.g. local errors).
    pub fn recv_error(&self, buf: &mut [u8]) -> io::Result<Option<(Message, Option<u64>)>> {
        let mut control = [0u64; 32];
        let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_mut_ptr().cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 32]>() as _;
        // SAFETY: msg points to valid buffers that outlive the call.
        let n = unsafe {
            libc::recvmsg(
                self.sock.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        Ok(Some(self.parse_error(&msg, n, buf)))
    }

    /// Reads up to [`RecvBatch::CAPACITY`] messages of the error queue in one
    /// `recvmmsg` (`MSG_ERRQUEUE`, never blocking) and hands each to `f` as
    /// [`IcmpSocket::recv_error`] would return it; returns how many were read (0: the
    /// queue is empty). `max` bounds the count (at least 1).
    pub fn recv_errors(
        &self,
        batch: &mut RecvBatch,
        max: usize,
        mut f: impl FnMut(Message, Option<u64>),
    ) -> io::Result<usize> {
        let n = self.recv_batch(batch, max, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)?;
        for i in 0..n {
            let len = batch.hdrs[i].msg_len as usize;
            let (m, stamp) = self.parse_error(&batch.hdrs[i].msg_hdr, len, &batch.bufs[i]);
            f(m, stamp);
        }
        Ok(n)
    }

    /// One error-queue message the kernel wrote into `msg` (`n` bytes of payload in
    /// `buf`).
    fn parse_error(&self, msg: &libc::msghdr, n: usize, buf: &[u8]) -> (Message, Option<u64>) {
        let n = n.min(buf.len());
        // SAFETY: the kernel filled msg_namelen bytes of a sockaddr_storage.
        let dst = unsafe { sockaddr_ip(msg.msg_name.cast(), msg.msg_namelen) };
        let mut kind = None;
        let mut offender = None;
        let mut kernel_real_ns = None;
        let mut tx_key = None;
        let mut tx_real_ns = None;
        // SAFETY: walking the control buffer the kernel filled, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(msg);
            while !c.is_null() {
                let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
                if (level == libc::SOL_IP && ty == libc::IP_RECVERR)
                    || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR)
                {
                    let data = libc::CMSG_DATA(c);
                    let ee: libc::sock_extended_err = std::ptr::read_unaligned(data.cast());
                    if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP
                        || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6
                    {
                        kind = icmp::error_kind(self.family, ee.ee_type, ee.ee_code);
                        // SO_EE_OFFENDER: the sender of the ICMP error, right after the
                        // extended error in the same control message.
                        let off = data.add(size_of::<libc::sock_extended_err>());
                        let room = ((*c).cmsg_len as usize)
                            .saturating_sub(data as usize - c as usize)
                            .saturating_sub(size_of::<libc::sock_extended_err>());
                        offender = sockaddr_ip(
                            off.cast(),
                            room.min(size_of::<libc::sockaddr_storage>()) as libc::socklen_t,
                        );
                    } else if ee.ee_origin == libc::SO_EE_ORIGIN_LOCAL {
                        kind = Some(icmp::local_error_kind(ee.ee_errno as i32, true));
                    } else if ee.ee_origin == ORIGIN_TIMESTAMPING
                        && ee.ee_errno == libc::ENOMSG as u32
                    {
                        tx_key = Some(ee.ee_data);
                    }
                } else if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPING {
                    // struct scm_timestamping { struct timespec ts[3]; }: [0] is software.
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    if ts.tv_sec != 0 || ts.tv_nsec != 0 {
                        tx_real_ns = Some(crate::clock::kernel_stamp_ns(&ts));
                    }
                } else if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    kernel_real_ns = Some(crate::clock::kernel_stamp_ns(&ts));
                }
                c = libc::CMSG_NXTHDR(msg, c);
            }
        }
        if let Some(key) = tx_key {
            return (Message::TxStamp { key }, tx_real_ns);
        }
        let (Some(kind), Some(dst)) = (kind, dst) else {
            return (Message::Other, kernel_real_ns);
        };
        let m = icmp::queued_error(self.family, kind, &buf[..n], dst, offender)
            .unwrap_or(Message::Other);
        (m, kernel_real_ns)
    }
}

/// Buffers for reading several messages in one `recvmmsg` ([`IcmpSocket::recv_many`],
/// [`IcmpSocket::recv_errors`]): allocated once, reused for every read. A message longer
/// than a buffer (another program's large ping on a raw socket) is cut short: only its
/// headers are read.
pub struct RecvBatch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    bufs: Box<[[u8; 1024]]>,
    controls: Box<[[u64; 32]]>,
    addrs: Box<[libc::sockaddr_storage]>,
}

impl RecvBatch {
    /// Messages one call reads at most.
    pub const CAPACITY: usize = 32;

    /// Empty buffers for [`RecvBatch::CAPACITY`] messages.
    pub fn new() -> RecvBatch {
        let n = RecvBatch::CAPACITY;
        // SAFETY (each): all-zero is a valid mmsghdr, iovec and sockaddr_storage.
        RecvBatch {
            hdrs: unsafe { zeroed_slice(n) },
            iovs: unsafe { zeroed_slice(n) },
            bufs: vec![[0u8; 1024]; n].into_boxed_slice(),
            controls: vec![[0u64; 32]; n].into_boxed_slice(),
            addrs: unsafe { zeroed_slice(n) },
        }
    }

    /// Points the first `want` headers at their buffers (the buffers never move, but
    /// the kernel rewrites the lengths on every call).
    fn prepare(&mut self, want: usize) {
        for i in 0..want {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.bufs[i].len(),
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = size_of::<[u64; 32]>() as _;
            h.msg_hdr.msg_flags = 0;
        }
    }
}

/// `n` all-zero values.
///
/// # Safety
/// All-zero bytes must be a valid `T`.
unsafe fn zeroed_slice<T>(n: usize) -> Box<[T]> {
    // SAFETY: guaranteed by the caller.
    (0..n).map(|_| unsafe { std::mem::zeroed() }).collect()
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").finish_non_exhaustive()
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// # Safety
/// `sa` must point to a sockaddr_storage holding `len` initialized bytes.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr_storage, len: libc::socklen_t) -> Option<IpAddr> {
    // SAFETY: guaranteed by the caller; fields read only when the length covers them.
    unsafe {
        match i32::from((*sa).ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let sin = &*(sa.cast::<libc::sockaddr_in>());
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(sa.cast::<libc::sockaddr_in6>());
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// An identifier for raw sockets: pid mixed with the clock, so two daemons in the same
/// network namespace rarely collide (a collision only costs `unmatched` counts: the token
/// in the payload still rejects the other's replies).
fn raw_ident() -> u16 {
    let pid = std::process::id();
    let t = crate::clock::mono_ns();
    let x = (u64::from(pid) << 16) ^ t ^ (t >> 17);
    ((x ^ (x >> 16) ^ (x >> 32)) & 0xffff) as u16
}
