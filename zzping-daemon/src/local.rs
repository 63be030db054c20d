//! Whether an address is one of this machine's own.
//!
//! When the next hop never answers ARP or neighbour discovery (the host is switched
//! off, out of Wi-Fi range, unplugged), this machine's own kernel sends the ICMP "host
//! unreachable" for the echo requests that waited for it, from one of its own
//! addresses. That is a failure on the local link, not a router's answer: the receive
//! thread records it as [`ErrorKind::NoNeighbour`] with no router.
//!
//! An address is this machine's when a UDP socket can be bound to it (port 0; no
//! privilege needed). Verdicts are cached in a small fixed table and expire, so an
//! address that moves (DHCP) is asked again; nothing is allocated.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use zzping_lib::frame::ErrorKind;

use crate::icmp::Message;

/// How long a verdict is trusted, ns.
const VERDICT_TTL_NS: u64 = 60_000_000_000;
/// Addresses remembered (distinct routers seen within [`VERDICT_TTL_NS`]).
const SLOTS: usize = 8;

/// A cache of "is this address ours?" verdicts.
#[derive(Debug, Default)]
pub struct LocalAddrs {
    slots: [Option<Verdict>; SLOTS],
    next: usize,
}

#[derive(Debug, Clone, Copy)]
struct Verdict {
    addr: IpAddr,
    local: bool,
    at_ns: u64,
}

impl LocalAddrs {
    /// Whether `addr` is one of this machine's addresses (asked of the kernel at most
    /// once per [`VERDICT_TTL_NS`] per address).
    pub fn is_local(&mut self, addr: IpAddr, now_ns: u64) -> bool {
        let fresh = |v: &Verdict| v.addr == addr && now_ns.saturating_sub(v.at_ns) < VERDICT_TTL_NS;
        if let Some(v) = self.slots.iter().flatten().find(|v| fresh(v)) {
            return v.local;
        }
        let local = UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok();
        let slot = self
            .slots
            .iter()
            .position(|s| s.is_none_or(|v| v.addr == addr))
            .unwrap_or_else(|| {
                self.next = (self.next + 1) % SLOTS;
                self.next
            });
        self.slots[slot] = Some(Verdict {
            addr,
            local,
            at_ns: now_ns,
        });
        local
    }

    /// `msg`, with a "host unreachable" sent by this machine itself recorded as what it
    /// is: no neighbour answered for the destination. Reads the monotonic clock only for
    /// such errors.
    pub fn classify(&mut self, msg: Message) -> Message {
        match msg {
            Message::Error {
                kind: ErrorKind::HostUnreachable,
                ident,
                seq,
                orig_dst,
                from: Some(from),
            } if self.is_local(from, crate::clock::mono_ns()) => Message::Error {
                kind: ErrorKind::NoNeighbour,
                ident,
                seq,
                orig_dst,
                from: None,
            },
            m => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_from(from: IpAddr) -> Message {
        Message::Error {
            kind: ErrorKind::HostUnreachable,
            ident: 1,
            seq: 2,
            orig_dst: "198.18.0.5".parse().unwrap(),
            from: Some(from),
        }
    }

    #[test]
    fn own_address_means_no_neighbour_and_routers_stay_routers() {
        let mut l = LocalAddrs::default();
        assert!(l.is_local("127.0.0.1".parse().unwrap(), 0));
        assert!(l.is_local("::1".parse().unwrap(), 0));
        // TEST-NET-1 is never configured on a test machine.
        let far: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(!l.is_local(far, 0));
        match l.classify(unreachable_from("127.0.0.1".parse().unwrap())) {
            Message::Error { kind, from, .. } => {
                assert_eq!(kind, ErrorKind::NoNeighbour);
                assert_eq!(from, None);
            }
            m => panic!("{m:?}"),
        }
        match l.classify(unreachable_from(far)) {
            Message::Error { kind, from, .. } => {
                assert_eq!(kind, ErrorKind::HostUnreachable);
                assert_eq!(from, Some(far));
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn the_table_is_bounded_and_verdicts_expire() {
        let mut l = LocalAddrs::default();
        for i in 0..3 * SLOTS as u8 {
            l.is_local(IpAddr::from([192, 0, 2, i]), 0);
        }
        assert_eq!(l.slots.iter().flatten().count(), SLOTS);
        // A cached verdict is reused within its lifetime, then asked again.
        l.slots[0] = Some(Verdict {
            addr: "127.0.0.1".parse().unwrap(),
            local: false,
            at_ns: 0,
        });
        assert!(!l.is_local("127.0.0.1".parse().unwrap(), VERDICT_TTL_NS - 1));
        assert!(l.is_local("127.0.0.1".parse().unwrap(), VERDICT_TTL_NS));
    }
}
