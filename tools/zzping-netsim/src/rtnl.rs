//! Route changes over rtnetlink, and link state changes, in the calling
//! thread's network namespace.
//!
//! The simulator changes routes mid-run (`[[route_loss]]`, `[[link]]`,
//! `[[route_change]]`): one netlink message per route, acknowledged by the
//! kernel before the call returns, so the truth can bound each change to a
//! few µs (spawning `ip` would take milliseconds). Links go down and up with
//! `SIOCSIFFLAGS`, carrier with `TUNSETCARRIER` on the TUN itself.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys::Tun;

/// What a route does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// Forwarded through an interface (`RTN_UNICAST`).
    Unicast,
    /// Refused with `EHOSTUNREACH` (`RTN_UNREACHABLE`).
    Unreachable,
    /// Refused with `EACCES` (`RTN_PROHIBIT`).
    Prohibit,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Kind.
    pub kind: RouteType,
    /// Destination prefix (`0.0.0.0` / `::` with length 0: the default route).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Next hop, for routes via a gateway.
    pub gateway: Option<IpAddr>,
    /// Output interface: index and name (the name is only for display).
    pub dev: Option<(u32, String)>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// `RTPROT_*` (kernel for on-link prefixes, boot for routes added by hand).
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// Metric (`RTA_PRIORITY`); IPv4 routes default to 0, IPv6 to 1024
    /// (256 for on-link prefixes).
    pub metric: u32,
}

impl Route {
    /// Whether this is an IPv6 route.
    pub fn is_v6(&self) -> bool {
        self.dst.is_ipv6()
    }
}

impl fmt::Display for Route {
    /// `ip route` syntax: `default via 198.18.0.254 dev zzsim0`,
    /// `198.18.0.0/24 dev zzsim0`, `unreachable default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RouteType::Unicast => {}
            RouteType::Unreachable => f.write_str("unreachable ")?,
            RouteType::Prohibit => f.write_str("prohibit ")?,
        }
        if self.prefix_len == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dst, self.prefix_len)?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some((_, name)) = &self.dev {
            write!(f, " dev {name}")?;
        }
        Ok(())
    }
}

const NLMSG_HDR_LEN: usize = 16;
const RTMSG_LEN: usize = 12;

fn push_attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A NETLINK_ROUTE socket of the namespace it was opened in.
#[derive(Debug)]
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

/// How a route message is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Delete,
}

impl Rtnl {
    /// Opens a NETLINK_ROUTE socket in the calling thread's namespace.
    pub fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Rtnl { fd, seq: 0 })
    }

    /// Adds `r` (fails with `EEXIST` when it is there already).
    pub fn add(&mut self, r: &Route) -> io::Result<()> {
        self.route(Op::Add, r)
    }

    /// Adds `r` or replaces the route with the same destination and metric.
    pub fn replace(&mut self, r: &Route) -> io::Result<()> {
        self.route(Op::Replace, r)
    }

    /// Deletes `r` (`ESRCH` when no such route exists).
    pub fn delete(&mut self, r: &Route) -> io::Result<()> {
        self.route(Op::Delete, r)
    }

    fn route(&mut self, op: Op, r: &Route) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let (ty, flags) = match op {
            Op::Add => (libc::RTM_NEWROUTE, libc::NLM_F_CREATE | libc::NLM_F_EXCL),
            Op::Replace => (libc::RTM_NEWROUTE, libc::NLM_F_CREATE | libc::NLM_F_REPLACE),
            Op::Delete => (libc::RTM_DELROUTE, 0),
        };
        let flags = (flags | libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        let mut m = vec![0u8; NLMSG_HDR_LEN];
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m[6..8].copy_from_slice(&flags.to_ne_bytes());
        m[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        let family = if r.is_v6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        let rtn = match r.kind {
            RouteType::Unicast => libc::RTN_UNICAST,
            RouteType::Unreachable => libc::RTN_UNREACHABLE,
            RouteType::Prohibit => libc::RTN_PROHIBIT,
        };
        // struct rtmsg. A delete matches any scope and protocol (as `ip route
        // del` does); its destination, interface, gateway and metric select it.
        let (scope, protocol) = match op {
            Op::Delete => (libc::RT_SCOPE_NOWHERE, 0),
            _ => (r.scope, r.protocol),
        };
        m.extend_from_slice(&[
            family as u8,
            r.prefix_len,
            0,
            0,
            libc::RT_TABLE_MAIN,
            protocol,
            scope,
            rtn,
        ]);
        m.extend_from_slice(&0u32.to_ne_bytes());
        debug_assert_eq!(m.len(), NLMSG_HDR_LEN + RTMSG_LEN);
        if r.prefix_len > 0 {
            push_attr(&mut m, libc::RTA_DST, &addr_bytes(r.dst));
        }
        if let Some(g) = r.gateway {
            push_attr(&mut m, libc::RTA_GATEWAY, &addr_bytes(g));
        }
        if let Some((index, _)) = &r.dev {
            push_attr(&mut m, libc::RTA_OIF, &index.to_ne_bytes());
        }
        if let Some(s) = r.prefsrc {
            push_attr(&mut m, libc::RTA_PREFSRC, &addr_bytes(s));
        }
        push_attr(&mut m, libc::RTA_PRIORITY, &r.metric.to_ne_bytes());
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        self.request(&m)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, m: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl is valid (pid 0: the kernel).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: m and `to` are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: buf is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= NLMSG_HDR_LEN {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < NLMSG_HDR_LEN || len > rest.len() {
                    return Err(io::Error::other("malformed netlink answer"));
                }
                if seq == self.seq && ty == libc::NLMSG_ERROR as u16 && len >= NLMSG_HDR_LEN + 4 {
                    let p = &rest[NLMSG_HDR_LEN..];
                    let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-err))
                    };
                }
                rest = &rest[(len + 3) & !3..];
            }
        }
    }
}

/// Index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::other("NUL in interface name"))?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// Sets or clears `IFF_UP` on interface `name` (`ip link set NAME up|down`).
pub fn set_link_up(name: &str, up: bool) -> io::Result<()> {
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::other("interface name too long"));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of our ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    let mut flags = unsafe { req.ifr_ifru.ifru_flags };
    if up {
        flags |= libc::IFF_UP as libc::c_short;
    } else {
        flags &= !(libc::IFF_UP as libc::c_short);
    }
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: SIOCSIFFLAGS reads our ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Longest [`set_carrier`] waits for the kernel to apply a carrier change. The kernel
/// applies it from its link-watch work, which it may delay by up to a second for a
/// carrier loss (a "non-urgent" event) and which a loaded machine runs late.
const CARRIER_APPLY_LIMIT_MS: i32 = 10_000;
/// `RTMGRP_LINK`: link notifications.
const RTMGRP_LINK: u32 = 1;
/// `IFLA_OPERSTATE` attribute of an `RTM_NEWLINK`.
const IFLA_OPERSTATE: u16 = 16;
/// `IF_OPER_DOWN` and `IF_OPER_UP` (RFC 2863 operational states).
const IF_OPER_DOWN: u8 = 2;
const IF_OPER_UP: u8 = 6;
/// Size of `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;

/// Turns the carrier of TUN device `tun` (interface `name`) on or off (`TUNSETCARRIER`)
/// and returns once the kernel has applied it.
///
/// `TUNSETCARRIER` only marks the carrier; the kernel's link-watch work later switches
/// the device's queueing (packets sent meanwhile still reach the TUN after a carrier
/// loss) and then announces the new operational state with an `RTM_NEWLINK`. Waiting
/// for that announcement makes the truth's event time a bound on when the change took
/// effect, however late the kernel ran its work.
pub fn set_carrier(tun: &Tun, name: &str, on: bool) -> io::Result<()> {
    let index = ifindex(name)?;
    let watch = link_watch()?;
    let v: libc::c_int = on.into();
    // SAFETY: TUNSETCARRIER reads one int.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETCARRIER, &v) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let want = if on { IF_OPER_UP } else { IF_OPER_DOWN };
    wait_operstate(&watch, index, want).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{name}: waiting for the kernel to apply carrier {on}: {e}"),
        )
    })
}

/// A NETLINK_ROUTE socket subscribed to link notifications.
fn link_watch() -> io::Result<OwnedFd> {
    // SAFETY: plain socket call.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_nl is valid.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = RTMGRP_LINK;
    // SAFETY: addr is a valid sockaddr_nl of the given length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Reads link notifications from `watch` until one says interface `index` is in
/// operational state `want` (bounded by [`CARRIER_APPLY_LIMIT_MS`]).
fn wait_operstate(watch: &OwnedFd, index: u32, want: u8) -> io::Result<()> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(CARRIER_APPLY_LIMIT_MS as u64);
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd {
            fd: watch.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no notification within {CARRIER_APPLY_LIMIT_MS} ms"),
            ));
        }
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(watch.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if link_operstate(&buf[..n as usize], index) == Some(want) {
            return Ok(());
        }
    }
}

/// The operational state an `RTM_NEWLINK` in `msgs` gives interface `index`, if any.
fn link_operstate(mut msgs: &[u8], index: u32) -> Option<u8> {
    let mut found = None;
    while msgs.len() >= NLMSG_HDR_LEN {
        let len = u32::from_ne_bytes(msgs[0..4].try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(msgs[4..6].try_into().ok()?);
        if len < NLMSG_HDR_LEN || len > msgs.len() {
            return found;
        }
        let body = &msgs[NLMSG_HDR_LEN..len];
        if ty == libc::RTM_NEWLINK
            && body.len() >= IFINFOMSG_LEN
            && u32::from_ne_bytes(body[4..8].try_into().ok()?) == index
        {
            let mut attrs = &body[IFINFOMSG_LEN..];
            while attrs.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                let aty = u16::from_ne_bytes([attrs[2], attrs[3]]);
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if aty == IFLA_OPERSTATE && alen >= 5 {
                    found = Some(attrs[4]);
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
        }
        msgs = &msgs[((len + 3) & !3).min(msgs.len())..];
    }
    found
}
