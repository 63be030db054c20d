//! Listening addresses of the live stream (`live`) and the Prometheus exporter
//! (`metrics`), as written in the config or on the command line:
//!
//! | written | binds |
//! |---|---|
//! | `off` | nothing |
//! | `IP:PORT`, `[IPv6]:PORT` | that address |
//! | `localhost:PORT` | `127.0.0.1:PORT` (always there, unlike `::1`) |
//! | `:PORT` | every interface: `[::]:PORT` for IPv6 and IPv4, or `0.0.0.0:PORT` on a machine without IPv6 |
//!
//! Binding sockets here (with socket2) lets `[::]` always be dual-stack, whatever
//! `net.ipv6.bindv6only` says.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

/// Where a listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// One address (`IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`).
    Ip(SocketAddr),
    /// Every interface, IPv6 and IPv4 (`:PORT`).
    AllInterfaces(u16),
}

/// Backlog of the TCP listener (connections the kernel queues before they are accepted).
const LISTEN_BACKLOG: i32 = 128;

impl ListenAddr {
    /// Parses `off` (`Ok(None)`), `:PORT`, `localhost:PORT`, `IP:PORT` or `[IPv6]:PORT`.
    /// The error says what is accepted.
    pub fn parse(s: &str) -> Result<Option<ListenAddr>, String> {
        let s = s.trim();
        if s == "off" {
            return Ok(None);
        }
        let port = |p: &str| p.parse::<u16>().ok();
        if let Some(p) = s.strip_prefix(':').and_then(port) {
            return Ok(Some(ListenAddr::AllInterfaces(p)));
        }
        if let Some((host, p)) = s.rsplit_once(':')
            && host.eq_ignore_ascii_case("localhost")
            && let Some(p) = port(p)
        {
            return Ok(Some(ListenAddr::Ip(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                p,
            ))));
        }
        s.parse::<SocketAddr>()
            .map(|a| Some(ListenAddr::Ip(a)))
            .map_err(|_| {
                format!(
                    "{s:?} is not `off`, `:PORT` (every interface), `localhost:PORT`, \
                     `IP:PORT` or `[IPv6]:PORT`"
                )
            })
    }

    /// True for a loopback address (the live stream needs a secret everywhere else).
    pub fn is_loopback(&self) -> bool {
        matches!(self, ListenAddr::Ip(a) if a.ip().is_loopback())
    }

    /// The addresses to try, in order: the address itself, or for every interface
    /// `[::]` and then (only if this machine has no IPv6) `0.0.0.0`.
    pub fn candidates(&self) -> Vec<SocketAddr> {
        match *self {
            ListenAddr::Ip(a) => vec![a],
            ListenAddr::AllInterfaces(p) => vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p),
            ],
        }
    }

    /// Binds with `bind` the first candidate that this machine supports: an error other
    /// than "no such address family" is final, so `:PORT` falls back to `0.0.0.0` only
    /// when IPv6 is off, never to hide a port in use.
    pub fn bind_with<T>(
        &self,
        mut bind: impl FnMut(SocketAddr) -> io::Result<T>,
    ) -> io::Result<(T, SocketAddr)> {
        let mut last = None;
        for a in self.candidates() {
            match bind(a) {
                Ok(t) => return Ok((t, a)),
                Err(e) if is_family_missing(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address to bind")))
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        ListenAddr::Ip(a)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Ip(a) => write!(f, "{a}"),
            ListenAddr::AllInterfaces(p) => write!(f, ":{p} (every interface)"),
        }
    }
}

/// An error of a machine without that address family (IPv6 disabled).
fn is_family_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
    )
}

fn socket_for(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `[::]` takes IPv4 too, whatever net.ipv6.bindv6only says.
        s.set_only_v6(false)?;
    }
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    Ok(s)
}

/// A non-blocking TCP listener on `addr` (`SO_REUSEADDR`, as std's).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket_for(addr, Type::STREAM)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    Ok(s.into())
}

/// A non-blocking UDP socket bound to `addr`.
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = socket_for(addr, Type::DGRAM)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<ListenAddr> {
        Some(ListenAddr::Ip(s.parse().unwrap()))
    }

    #[test]
    fn every_written_form_parses() {
        assert_eq!(ListenAddr::parse("off"), Ok(None));
        assert_eq!(
            ListenAddr::parse(":9464"),
            Ok(Some(ListenAddr::AllInterfaces(9464)))
        );
        assert_eq!(
            ListenAddr::parse("localhost:9464"),
            Ok(ip("127.0.0.1:9464"))
        );
        assert_eq!(ListenAddr::parse("LocalHost:1"), Ok(ip("127.0.0.1:1")));
        assert_eq!(
            ListenAddr::parse("127.0.0.1:7878"),
            Ok(ip("127.0.0.1:7878"))
        );
        assert_eq!(ListenAddr::parse("[::1]:7878"), Ok(ip("[::1]:7878")));
        assert_eq!(
            ListenAddr::parse("[2001:db8::1]:9"),
            Ok(ip("[2001:db8::1]:9"))
        );
        assert_eq!(ListenAddr::parse("0.0.0.0:9464"), Ok(ip("0.0.0.0:9464")));
    }

    #[test]
    fn bad_forms_are_refused_with_the_accepted_ones_named() {
        for bad in [
            "",
            "9464",
            ":",
            ":99999",
            ":x",
            "localhost",
            "localhost:",
            "example.org:80",
            "::1:80",
            "127.0.0.1",
            "[::1]",
            "on",
        ] {
            let e = ListenAddr::parse(bad).expect_err(bad);
            assert!(e.contains(":PORT") && e.contains("localhost:PORT"), "{e}");
        }
    }

    #[test]
    fn only_loopback_addresses_are_loopback() {
        let p = |s| ListenAddr::parse(s).unwrap().unwrap();
        assert!(p("localhost:1").is_loopback());
        assert!(p("[::1]:1").is_loopback());
        assert!(!p(":1").is_loopback());
        assert!(!p("0.0.0.0:1").is_loopback());
    }

    #[test]
    fn all_interfaces_falls_back_to_ipv4_only_when_ipv6_is_missing() {
        let any = ListenAddr::AllInterfaces(7);
        let mut tried = Vec::new();
        let (_, a) = any
            .bind_with(|a| {
                tried.push(a);
                if a.is_ipv6() {
                    Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
                } else {
                    Ok(())
                }
            })
            .unwrap();
        assert_eq!(a, "0.0.0.0:7".parse().unwrap());
        assert_eq!(tried.len(), 2);
        // A port in use is final: no silent fallback to IPv4 only.
        let e = any
            .bind_with(|_| Err::<(), _>(io::Error::from_raw_os_error(libc::EADDRINUSE)))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    }

    #[test]
    fn a_port_in_use_fails_to_bind() {
        let a = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken = a.local_addr().unwrap();
        let e = bind_tcp(taken).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let u = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = bind_udp(u.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
