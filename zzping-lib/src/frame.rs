//! The frame: what happened to one host during one period.
//!
//! # Attribution rules
//! A frame covers the requests *sent* to one host during `[start_us, start_us + period_us)`.
//! Every request has exactly one outcome, recorded in the frame in which it was sent:
//!
//! - **received**: its first echo reply arrived within the timeout; its RTT is in `rtts_us`;
//! - **lost**: no reply (and no ICMP error) arrived within the timeout;
//! - **error**: the send failed (`sendto` error such as `ENETUNREACH`) or an ICMP error
//!   (destination unreachable, time exceeded...) came back for it.
//!
//! so `sent == received + lost + errors` for every final frame, where `received` is
//! `rtts_us.len()`. A frame is final once every request it holds is answered, errored or
//! timed out, i.e. at `start_us + period_us + timeout`.
//!
//! Two kinds of extra replies are counted but are not outcomes:
//! - **duplicates**: further replies to a request that was already answered;
//! - **late**: replies to a request already counted lost (they arrived after the timeout).
//!
//! Extras are counted in their request's frame while it is still open; once it is final
//! they go to the oldest frame of the same host that is still open (and the daemon
//! records nothing twice: a request's first reply is the only RTT it ever contributes).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Default frame period: 100 ms.
pub const DEFAULT_PERIOD_US: u32 = 100_000;
/// Shortest period accepted: 10 ms.
pub const MIN_PERIOD_US: u32 = 10_000;
/// Longest period accepted: 60 s.
pub const MAX_PERIOD_US: u32 = 60_000_000;

/// Frame flag: the wall clock stepped during this frame; RTTs were measured on the
/// monotonic clock but the frame's start time may be off by the step.
pub const FLAG_CLOCK_STEP: u8 = 1 << 0;
/// Frame flag: at least one send went out more than one period late.
pub const FLAG_SEND_LATE: u8 = 1 << 1;
/// Frame flag: the receive queue overflowed; some replies may be missing.
pub const FLAG_RECV_OVERFLOW: u8 = 1 << 2;
/// Frame flag: the frame was reconstructed from a lossy source (e.g. legacy percentiles).
pub const FLAG_APPROXIMATE: u8 = 1 << 3;
/// Frame flag: at least one RTT of this frame was not timed by the kernel at both ends
/// (no kernel transmit stamp for its send, or no kernel arrival stamp for its reply).
/// Such an RTT is an upper bound: it may include time the request spent in `sendto`
/// or the reply spent waiting to be read.
pub const FLAG_USER_STAMP: u8 = 1 << 4;

/// Counters of a frame; everything except the RTT list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counts {
    /// Requests sent (including those whose send failed).
    pub sent: u32,
    /// Replies received within the timeout (first reply per request).
    pub received: u32,
    /// Requests that timed out.
    pub lost: u32,
    /// Extra replies to requests already answered.
    pub duplicates: u32,
    /// Replies to requests already counted lost.
    pub late: u32,
    /// Requests that failed to send or drew an ICMP error.
    pub errors: u32,
}

impl Counts {
    /// Adds `other` into `self`, saturating.
    pub fn merge(&mut self, other: &Counts) {
        self.sent = self.sent.saturating_add(other.sent);
        self.received = self.received.saturating_add(other.received);
        self.lost = self.lost.saturating_add(other.lost);
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
        self.late = self.late.saturating_add(other.late);
        self.errors = self.errors.saturating_add(other.errors);
    }

    /// Requests that failed: lost (no reply in time) or errored (a send failure or an
    /// ICMP error instead of an echo reply).
    pub fn failed(&self) -> u64 {
        u64::from(self.lost) + u64::from(self.errors)
    }

    /// Loss: failed requests over requests with an outcome,
    /// `(lost + errors) / (received + lost + errors)` (the same as over `sent` once every
    /// request has an outcome), or `None` when no request has one. A request that drew an
    /// error got no echo reply: it failed, like a timeout, and counts as loss.
    pub fn loss_ratio(&self) -> Option<f64> {
        let n = u64::from(self.received) + self.failed();
        (n > 0).then(|| self.failed() as f64 / n as f64)
    }
}

/// Why a request failed with an error instead of an echo reply. The numbers are written
/// in frame files (docs/format.md) and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ErrorKind {
    /// `sendto` failed: no route to the destination from this machine (`ENETUNREACH`,
    /// `EHOSTUNREACH`).
    NoRoute = 0,
    /// `sendto` failed: the network or interface is down (`ENETDOWN`, `ENODEV`,
    /// `EADDRNOTAVAIL`).
    NetDown = 1,
    /// `sendto` failed: no buffer space (`ENOBUFS`, `ENOMEM`, `EAGAIN`).
    NoBuffer = 2,
    /// `sendto` failed: not permitted (`EPERM`, `EACCES`: a local firewall).
    Denied = 3,
    /// This machine's kernel got no answer to ARP or neighbour discovery for the next
    /// hop, and reported the request's host unreachable.
    NoNeighbour = 4,
    /// Another local failure (the send or the machine's own stack).
    SendOther = 5,
    /// ICMP destination unreachable: network (no route, on a router of the path).
    NetUnreachable = 6,
    /// ICMP destination unreachable: host.
    HostUnreachable = 7,
    /// ICMP destination unreachable: administratively prohibited (a filter on the path).
    Prohibited = 8,
    /// ICMP time exceeded: the TTL (hop limit) ran out on the path.
    TtlExceeded = 9,
    /// ICMP destination unreachable: port or protocol (the host itself refused).
    PortUnreachable = 10,
    /// Another ICMP error (fragmentation needed, packet too big, parameter problem).
    IcmpOther = 11,
}

impl ErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = 12;
    /// Every kind, by number.
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::NoRoute,
        ErrorKind::NetDown,
        ErrorKind::NoBuffer,
        ErrorKind::Denied,
        ErrorKind::NoNeighbour,
        ErrorKind::SendOther,
        ErrorKind::NetUnreachable,
        ErrorKind::HostUnreachable,
        ErrorKind::Prohibited,
        ErrorKind::TtlExceeded,
        ErrorKind::PortUnreachable,
        ErrorKind::IcmpOther,
    ];

    /// The kind numbered `n` in files.
    pub fn from_u8(n: u8) -> Option<ErrorKind> {
        ErrorKind::ALL.get(usize::from(n)).copied()
    }

    /// Stable machine name (CSV/JSON, Prometheus labels): `no_route`, `host_unreachable`...
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NetDown => "net_down",
            ErrorKind::NoBuffer => "no_buffer",
            ErrorKind::Denied => "denied",
            ErrorKind::NoNeighbour => "no_neighbour",
            ErrorKind::SendOther => "send_other",
            ErrorKind::NetUnreachable => "net_unreachable",
            ErrorKind::HostUnreachable => "host_unreachable",
            ErrorKind::Prohibited => "prohibited",
            ErrorKind::TtlExceeded => "ttl_exceeded",
            ErrorKind::PortUnreachable => "port_unreachable",
            ErrorKind::IcmpOther => "icmp_other",
        }
    }

    /// The kind whose [`ErrorKind::name`] is `s`.
    pub fn from_name(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// What a person reads: "no route from this machine", "host unreachable"...
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::NoRoute => "no route from this machine",
            ErrorKind::NetDown => "network down on this machine",
            ErrorKind::NoBuffer => "no buffer space on this machine",
            ErrorKind::Denied => "sending not permitted on this machine (firewall)",
            ErrorKind::NoNeighbour => "next hop not answering ARP/ND",
            ErrorKind::SendOther => "send failed on this machine",
            ErrorKind::NetUnreachable => "network unreachable",
            ErrorKind::HostUnreachable => "host unreachable",
            ErrorKind::Prohibited => "administratively prohibited",
            ErrorKind::TtlExceeded => "TTL exceeded",
            ErrorKind::PortUnreachable => "port unreachable",
            ErrorKind::IcmpOther => "ICMP error",
        }
    }

    /// True for failures of this machine itself (a send error, or its own kernel
    /// reporting the next hop unreachable): a strong "this machine / your LAN" signal.
    pub fn is_local(self) -> bool {
        (self as u8) <= ErrorKind::SendOther as u8
    }
}

/// Errors of a frame by kind. Their sum is at most the frame's `errors`: frames of
/// format version 1, and frames converted from legacy formats, carry no kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ErrorKinds([u32; ErrorKind::COUNT]);

impl ErrorKinds {
    /// Counts `n` errors of `kind` (saturating).
    pub fn add(&mut self, kind: ErrorKind, n: u32) {
        let c = &mut self.0[kind as usize];
        *c = c.saturating_add(n);
    }

    /// Errors of `kind`.
    pub fn get(&self, kind: ErrorKind) -> u32 {
        self.0[kind as usize]
    }

    /// Errors of any kind.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&c| u64::from(c)).sum()
    }

    /// True when no error has a kind.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&c| c == 0)
    }

    /// Adds `other` into `self` (saturating).
    pub fn merge(&mut self, other: &ErrorKinds) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    /// The kinds with errors, by number, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, u32)> + '_ {
        ErrorKind::ALL
            .into_iter()
            .zip(self.0)
            .filter(|&(_, n)| n > 0)
    }

    /// The kind with the most errors (the lowest number on a tie), if any.
    pub fn dominant(&self) -> Option<(ErrorKind, u32)> {
        self.iter().fold(None, |best, (k, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((k, n)),
        })
    }
}

/// One host during one period. See the module docs for attribution rules.
///
/// The RTT list is reused across frames by its owner; [`Frame::clear`] keeps its capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Start of the period, µs since the Unix epoch (UTC).
    pub start_us: u64,
    /// Length of the period, µs.
    pub period_us: u32,
    /// Requests sent during the period.
    pub sent: u32,
    /// Requests that timed out.
    pub lost: u32,
    /// Extra replies to already answered requests.
    pub duplicates: u32,
    /// Replies that arrived after their request's timeout.
    pub late: u32,
    /// Send failures and ICMP errors.
    pub errors: u32,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// RTT of every received reply, µs; `received` is its length. Any order.
    pub rtts_us: Vec<u32>,
    /// The errors by kind (see [`ErrorKinds`]).
    pub error_kinds: ErrorKinds,
    /// The router that sent this frame's ICMP errors (the last one, if several did).
    pub router: Option<IpAddr>,
}

impl Frame {
    /// An empty frame for the period starting at `start_us`.
    pub fn new(start_us: u64, period_us: u32) -> Self {
        Self {
            start_us,
            period_us,
            ..Self::default()
        }
    }

    /// Replies received within the timeout.
    pub fn received(&self) -> u32 {
        self.rtts_us.len() as u32
    }

    /// End of the period (exclusive), µs since the epoch.
    pub fn end_us(&self) -> u64 {
        self.start_us + u64::from(self.period_us)
    }

    /// All counters.
    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.sent,
            received: self.received(),
            lost: self.lost,
            duplicates: self.duplicates,
            late: self.late,
            errors: self.errors,
        }
    }

    /// Sets every counter but `received` (which is the RTT list's length) from `c`.
    pub fn set_counts(&mut self, c: &Counts) {
        self.sent = c.sent;
        self.lost = c.lost;
        self.duplicates = c.duplicates;
        self.late = c.late;
        self.errors = c.errors;
    }

    /// Adds every counter but `received` from `c`, saturating.
    pub fn add_counts(&mut self, c: &Counts) {
        let mut sum = self.counts();
        sum.merge(c);
        self.set_counts(&sum);
    }

    /// Resets to an empty frame for a new period, keeping the RTT buffer's capacity.
    pub fn clear(&mut self, start_us: u64, period_us: u32) {
        self.start_us = start_us;
        self.period_us = period_us;
        self.sent = 0;
        self.lost = 0;
        self.duplicates = 0;
        self.late = 0;
        self.errors = 0;
        self.flags = 0;
        self.rtts_us.clear();
        self.error_kinds = ErrorKinds::default();
        self.router = None;
    }

    /// True when nothing happened in this frame.
    pub fn is_empty(&self) -> bool {
        self.sent == 0
            && self.lost == 0
            && self.duplicates == 0
            && self.late == 0
            && self.errors == 0
            && self.flags == 0
            && self.rtts_us.is_empty()
            && self.error_kinds.is_empty()
            && self.router.is_none()
    }
}

/// The start of the period of length `period_us` containing `t_us` (periods are aligned
/// to the Unix epoch).
pub fn period_start(t_us: u64, period_us: u32) -> u64 {
    let p = u64::from(period_us.max(1));
    t_us - t_us % p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_numbered_named_and_summed() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(ErrorKind::from_u8(i as u8), Some(*k));
            assert_eq!(ErrorKind::from_name(k.name()), Some(*k));
        }
        assert_eq!(ErrorKind::from_u8(ErrorKind::COUNT as u8), None);
        assert!(ErrorKind::NoRoute.is_local() && ErrorKind::NoNeighbour.is_local());
        assert!(!ErrorKind::HostUnreachable.is_local() && !ErrorKind::TtlExceeded.is_local());
        let mut e = ErrorKinds::default();
        assert_eq!(e.dominant(), None);
        e.add(ErrorKind::Prohibited, 2);
        e.add(ErrorKind::NoRoute, 2);
        e.add(ErrorKind::TtlExceeded, 1);
        // A tie goes to the lower number.
        assert_eq!(e.dominant(), Some((ErrorKind::NoRoute, 2)));
        assert_eq!(e.total(), 5);
        let mut m = e;
        m.merge(&e);
        assert_eq!(m.get(ErrorKind::Prohibited), 4);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [
                (ErrorKind::NoRoute, 4),
                (ErrorKind::Prohibited, 4),
                (ErrorKind::TtlExceeded, 2)
            ]
        );
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut f = Frame::new(0, DEFAULT_PERIOD_US);
        f.rtts_us.extend([1, 2, 3]);
        f.sent = 3;
        let cap = f.rtts_us.capacity();
        f.clear(100_000, DEFAULT_PERIOD_US);
        assert!(f.is_empty());
        assert_eq!(f.rtts_us.capacity(), cap);
        assert_eq!(f.start_us, 100_000);
    }

    #[test]
    fn counts_and_loss_ratio() {
        let mut f = Frame::new(0, 100_000);
        f.sent = 10;
        f.lost = 2;
        f.errors = 1;
        f.rtts_us.extend([500; 7]);
        let c = f.counts();
        assert_eq!(c.sent, c.received + c.lost + c.errors);
        // Loss counts every failed request, the error included: 3 of 10.
        assert!((c.loss_ratio().unwrap() - 0.3).abs() < 1e-12);
        // A host answered only by errors has lost everything.
        let refused = Counts {
            sent: 5,
            errors: 5,
            ..Counts::default()
        };
        assert_eq!(refused.loss_ratio(), Some(1.0));
        assert_eq!(Counts::default().loss_ratio(), None);
        let mut m = c;
        m.merge(&c);
        assert_eq!(m.sent, 20);
        assert_eq!(m.received, 14);
        // Counters move as one value; `received` stays the RTT list's length.
        let mut g = Frame::new(0, 100_000);
        g.set_counts(&m);
        assert_eq!(g.counts(), Counts { received: 0, ..m });
        g.add_counts(&c);
        assert_eq!((g.sent, g.lost, g.errors, g.received()), (30, 6, 3, 0));
        g.add_counts(&Counts {
            sent: u32::MAX,
            ..Counts::default()
        });
        assert_eq!(g.sent, u32::MAX);
    }

    #[test]
    fn aligned_periods() {
        assert_eq!(period_start(1_234_567, 100_000), 1_200_000);
        assert_eq!(period_start(1_200_000, 100_000), 1_200_000);
    }
}
