//! Finding the ISP's edge: TTL-limited echo requests toward a public destination.
//!
//! A discovery of one family sends an echo request to the probe destination
//! (`discover_probe`) with TTL 1, then 2, ... up to [`MAX_TTL`], each once: the router
//! at hop k answers the request with TTL k "time exceeded", from its own address. The
//! first hop whose address is not in the home network ([`is_home`]) is the ISP's edge and
//! the discovery stops there. A hop that does not answer within [`PROBE_TIMEOUT_NS`] is
//! passed over; an echo reply (the destination itself was reached), another ICMP error,
//! or no public hop within [`MAX_TTL`] ends the discovery without an edge. So a discovery
//! sends at most [`MAX_TTL`] requests, and only the expired ones reach past this machine's
//! ISP: none reaches the destination unless it is less than [`MAX_TTL`] hops away.
//!
//! The probes go out on sockets of their own (one per family, the same kind as the
//! pinger's), read by the main loop: the pinger's schedule, sequence numbers and counts
//! never see them. With datagram sockets the kernel hands each socket only its own
//! replies and errors. Raw sockets see every ICMP message of the machine, so the probe
//! socket of that kind filters for "time exceeded" only (rare outside traceroutes and
//! TTL-limited hosts), and the pinger's raw sockets count the probes' answers as
//! `unmatched` (a handful per discovery).

use std::io;
use std::net::IpAddr;
use std::str::FromStr;

use crate::icmp::{self, Family, Message};
use crate::sock::{IcmpSocket, Kind, SocketMode};

/// The highest TTL a discovery tries.
pub const MAX_TTL: u8 = 8;
/// How long a probe waits for its answer before the next TTL is tried, ns.
pub const PROBE_TIMEOUT_NS: u64 = 1_000_000_000;
/// Default probe destinations (Cloudflare's anycast resolver): only TTL-limited echo
/// requests go there, which expire at the ISP's routers on the way.
pub const DEFAULT_PROBE: [&str; 2] = ["1.1.1.1", "2606:4700:4700::1111"];

/// An address prefix (`198.18.0.0/16`, `2001:db8::/33`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Whether `a` is in the prefix.
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/LENGTH"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = l
            .parse()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("{s:?}: prefix length {l:?} is not in 0..={max}"))?;
        Ok(Prefix { addr, len })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Whether `a` belongs to the home network: private (RFC 1918), link-local, unique
/// local (ULA), loopback, unspecified, or in one of `extra` (`home_prefixes`). Carrier
/// grade NAT (100.64.0.0/10) is the ISP's: not home.
pub fn is_home(a: IpAddr, extra: &[Prefix]) -> bool {
    let builtin = match a {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || (seg0 & 0xfe00) == 0xfc00 // fc00::/7, unique local
                || (seg0 & 0xffc0) == 0xfe80 // fe80::/10, link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_home(IpAddr::V4(v4), &[]))
        }
    };
    builtin || a.is_unspecified() || extra.iter().any(|p| p.contains(a))
}

/// How a discovery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The first hop beyond the home network answered from `addr`, `hop` hops away.
    Edge {
        /// IPv4 or IPv6.
        family: Family,
        /// The edge's address.
        addr: IpAddr,
        /// Its hop count (the probe's TTL).
        hop: u8,
    },
    /// No hop beyond the home network answered (why, for the log).
    NotFound {
        /// IPv4 or IPv6.
        family: Family,
        /// What ended the discovery.
        why: &'static str,
        /// A probe could not be sent (no route, link down): the discovery learned
        /// nothing of the path, and is worth trying again as soon as a route is back.
        unsent: bool,
    },
}

/// One family's discovery in progress.
#[derive(Debug, Clone, Copy)]
struct Run {
    dst: IpAddr,
    ttl: u8,
    seq: u16,
    deadline_ns: u64,
}

/// The probe sockets and the discoveries in progress.
#[derive(Debug)]
pub struct Prober {
    sockets: [Option<IcmpSocket>; 2],
    runs: [Option<Run>; 2],
    /// Counts discoveries, to tell one's answers from an earlier one's.
    generation: u16,
    buf: Vec<u8>,
    packet: [u8; icmp::PACKET_LEN],
    /// Echo requests sent since start.
    sent: u64,
}

impl Prober {
    /// Opens the probe socket of each family with `mode` (the pinger's kind: raw only
    /// while privileged). Fails only when neither opens.
    pub fn open(mode: SocketMode) -> io::Result<Prober> {
        let mut sockets = [None, None];
        let mut last = None;
        for f in [Family::V4, Family::V6] {
            match IcmpSocket::open(f, mode) {
                Ok(s) => {
                    if s.kind() == Kind::Raw {
                        s.only_time_exceeded()?;
                    }
                    sockets[f.index()] = Some(s);
                }
                Err(e) => last = Some(e),
            }
        }
        if sockets.iter().all(Option::is_none) {
            return Err(io::Error::other(
                last.map_or_else(|| "no socket".to_owned(), |e| e.to_string()),
            ));
        }
        Ok(Prober {
            sockets,
            runs: [None, None],
            generation: 0,
            buf: vec![0; 2048],
            packet: [0; icmp::PACKET_LEN],
            sent: 0,
        })
    }

    /// The sockets (to register in the poll).
    pub fn sockets(&self) -> impl Iterator<Item = &IcmpSocket> {
        self.sockets.iter().flatten()
    }

    /// Echo requests sent since start.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether a discovery of `family` is in progress.
    pub fn running(&self, family: Family) -> bool {
        self.runs[family.index()].is_some()
    }

    /// Starts a discovery of the family of `dst` toward `dst` (abandoning one in
    /// progress); `Some` when it ended at once (no socket, the first send failed).
    pub fn start(&mut self, dst: IpAddr, now_ns: u64) -> Option<Outcome> {
        let family = Family::of(&dst);
        self.generation = self.generation.wrapping_add(1);
        self.runs[family.index()] = None;
        self.send(family, dst, 1, now_ns)
    }

    /// Abandons the discovery of `family`, if any.
    pub fn cancel(&mut self, family: Family) {
        self.runs[family.index()] = None;
    }

    /// Sends the probe with `ttl` (the run then waits for it).
    fn send(&mut self, family: Family, dst: IpAddr, ttl: u8, now_ns: u64) -> Option<Outcome> {
        let ended = |why, unsent| {
            Some(Outcome::NotFound {
                family,
                why,
                unsent,
            })
        };
        if ttl > MAX_TTL {
            self.runs[family.index()] = None;
            return ended("no public hop within the TTL limit", false);
        }
        let Some(s) = &self.sockets[family.index()] else {
            return ended("no socket of this family", false);
        };
        // The sequence number tells the discovery (its low 12 bits) and the TTL apart.
        let seq = (self.generation << 4) | u16::from(ttl);
        let token = u64::from(seq) << 32 | u64::from(ttl);
        let _ = icmp::emit_echo_request(family, &mut self.packet, s.ident(), seq, token);
        // A failed send is tried once more: an error the kernel queued for an earlier
        // request can be returned by the next send instead of sending (see
        // `daemon/send.rs`).
        let sent = s.set_ttl(ttl).and_then(|()| {
            s.send_to(&self.packet, dst)
                .or_else(|_| s.send_to(&self.packet, dst))
        });
        self.sent += 1;
        if let Err(e) = sent {
            tracing::debug!("probe to {dst} with TTL {ttl}: {e}");
            self.runs[family.index()] = None;
            return ended("sending failed", true);
        }
        self.runs[family.index()] = Some(Run {
            dst,
            ttl,
            seq,
            deadline_ns: now_ns + PROBE_TIMEOUT_NS,
        });
        None
    }

    /// The earliest probe deadline (monotonic ns).
    pub fn next_deadline(&self) -> Option<u64> {
        self.runs.iter().flatten().map(|r| r.deadline_ns).min()
    }

    /// Passes over every hop whose probe timed out at `now_ns` (the next TTL is tried).
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Outcome>) {
        for f in [Family::V4, Family::V6] {
            if let Some(r) = self.runs[f.index()]
                && r.deadline_ns <= now_ns
                && let Some(o) = self.send(f, r.dst, r.ttl + 1, now_ns)
            {
                out.push(o);
            }
        }
    }

    /// Reads every queued message of the probe sockets and advances the discoveries
    /// they answer.
    pub fn on_readable(&mut self, now_ns: u64, home: &[Prefix], out: &mut Vec<Outcome>) {
        for f in [Family::V4, Family::V6] {
            while let Some((msg, from)) = self.read_one(f) {
                if let Some(o) = self.on_message(f, msg, from, now_ns, home) {
                    out.push(o);
                }
            }
        }
    }

    /// One message of the socket of `family` and who sent it (`None`: nothing queued).
    fn read_one(&mut self, family: Family) -> Option<(Message, Option<IpAddr>)> {
        let s = self.sockets[family.index()].as_ref()?;
        // The error queue first (datagram sockets: "time exceeded" arrives there).
        match s.recv_error(&mut self.buf) {
            Ok(Some((m, _))) => return Some((m, None)),
            Ok(None) => {}
            Err(e) => tracing::debug!("probe socket: {e}"),
        }
        match s.recv(&mut self.buf) {
            Ok(Some(d)) => {
                let m = icmp::parse(family, &self.buf[d.start..d.end]).unwrap_or(Message::Other);
                Some((m, Some(d.src)))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("probe socket: {e}");
                None
            }
        }
    }

    /// Advances the discovery of `family` with one received message.
    fn on_message(
        &mut self,
        family: Family,
        msg: Message,
        src: Option<IpAddr>,
        now_ns: u64,
        home: &[Prefix],
    ) -> Option<Outcome> {
        let ident = self.sockets[family.index()].as_ref()?.ident();
        let run = self.runs[family.index()]?;
        match msg {
            Message::Error {
                kind,
                ident: i,
                seq,
                from,
                ..
            } if i == ident && seq == run.seq => {
                let hop = from.or(src)?;
                if kind != zzping_lib::frame::ErrorKind::TtlExceeded {
                    self.runs[family.index()] = None;
                    return Some(Outcome::NotFound {
                        family,
                        why: "an ICMP error other than time exceeded",
                        unsent: false,
                    });
                }
                if is_home(hop, home) {
                    self.send(family, run.dst, run.ttl + 1, now_ns)
                } else {
                    self.runs[family.index()] = None;
                    Some(Outcome::Edge {
                        family,
                        addr: hop,
                        hop: run.ttl,
                    })
                }
            }
            Message::EchoReply { ident: i, seq, .. } if i == ident && seq == run.seq => {
                self.runs[family.index()] = None;
                Some(Outcome::NotFound {
                    family,
                    why: "the probe destination answered before any public hop",
                    unsent: false,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn home_addresses_are_told_from_the_isps() {
        let extra: Vec<Prefix> = ["198.18.0.0/16", "2001:db8::/33"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.0.1",
            "127.0.0.1",
            "::1",
            "fd00::1",
            "fc12::1",
            "fe80::1",
            "::ffff:192.168.0.1",
            "198.18.100.1",
            "2001:db8:100::1",
            "2001:db8:7fff::1",
        ] {
            assert!(is_home(ip(a), &extra), "{a} is home");
        }
        for a in [
            "100.64.0.1",
            "100.127.255.1",
            "172.32.0.1",
            "198.19.0.1",
            "1.1.1.1",
            "2001:db8:8000::1",
            "2606:4700:4700::1111",
            "fec0::1",
        ] {
            assert!(!is_home(ip(a), &extra), "{a} is the ISP's");
        }
        // Without the test prefixes, the simulated "private" half is public.
        assert!(!is_home(ip("198.18.100.1"), &[]));
    }

    #[test]
    fn prefixes_parse_and_match() {
        let p: Prefix = "2001:db8::/33".parse().unwrap();
        assert!(p.contains(ip("2001:db8:7fff:ffff::1")));
        assert!(!p.contains(ip("2001:db8:8000::")));
        assert!(!p.contains(ip("198.18.0.1")));
        assert_eq!(p.to_string(), "2001:db8::/33");
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let one: Prefix = "198.19.0.1/32".parse().unwrap();
        assert!(one.contains(ip("198.19.0.1")) && !one.contains(ip("198.19.0.2")));
        for bad in [
            "198.18.0.0",
            "198.18.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
        ] {
            let e = bad.parse::<Prefix>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
