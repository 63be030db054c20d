//! One family's sequence space: the in-flight table, direct-mapped by `seq & mask` (see
//! the parent module's docs on sequence numbers).

use std::net::IpAddr;

use super::{HostId, MAX_LIVE, MIN_TABLE};

/// Where a request's slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Never used.
    Free,
    /// Sent, no outcome yet.
    InFlight,
    /// Outcome known (received or error) but the timeout has not passed: the seq is held.
    Resolved,
    /// Timeout passed; `lost` tells whether a reply would be late (else duplicate).
    Expired { lost: bool },
}

/// A request in its family's table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) state: State,
    /// The ICMP sequence number the slot was allocated for.
    pub(super) seq: u16,
    pub(super) host: HostId,
    pub(super) frame_serial: u64,
    pub(super) token: u64,
    pub(super) addr: IpAddr,
    pub(super) tx_mono_ns: u64,
    pub(super) deadline_ns: u64,
    /// Wall-clock reading taken with `tx_mono_ns`, ns.
    pub(super) tx_real_ns: u64,
    /// `sendto`'s duration: a kernel transmit stamp must fall in
    /// `[tx_real_ns, tx_real_ns + tx_span_ns]`.
    pub(super) tx_span_ns: u32,
    /// Our count of the socket's stamped sends for this request (see [`SeqTable::keys`]).
    pub(super) tx_key: Option<u32>,
    /// `tx_mono_ns` is the kernel's transmit stamp (else the user-space reading).
    pub(super) tx_kernel: bool,
    /// The kernel's transmit stamp (wall clock, ns) when `tx_kernel`.
    pub(super) tx_stamp_real_ns: u64,
}

impl Entry {
    /// A slot never used.
    pub(super) const FREE: Entry = Entry {
        state: State::Free,
        seq: 0,
        host: HostId {
            slot: 0,
            generation: 0,
        },
        frame_serial: 0,
        token: 0,
        addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        tx_mono_ns: 0,
        deadline_ns: 0,
        tx_real_ns: 0,
        tx_span_ns: 0,
        tx_key: None,
        tx_kernel: false,
        tx_stamp_real_ns: 0,
    };
}

/// One family's sequence space.
pub(super) struct SeqTable {
    /// Direct-mapped by `seq & mask`; the length is a power of two up to `SEQ_SPACE`.
    pub(super) entries: Box<[Entry]>,
    pub(super) mask: u16,
    /// Oldest live (InFlight/Resolved) seq.
    pub(super) oldest: u16,
    /// Every seq in `[oldest, scan)` has an outcome: the first request still in flight is
    /// at `scan` or later. Stale (behind `oldest`) after a sweep; see
    /// [`SeqTable::first_in_flight_from`].
    pub(super) scan: u16,
    /// Next seq to allocate.
    pub(super) next: u16,
    /// Next token (full 64-bit sequence number).
    pub(super) token: u64,
    /// Expected identifier in replies.
    pub(super) ident: u16,
    /// Successful sends on a socket with kernel transmit stamps: the key of the next one.
    pub(super) keys: u32,
    /// `key & mask` -> seq of the live request holding that key.
    pub(super) key_seq: Box<[u16]>,
    /// Our key minus the kernel's (0 unless the kernel counted a send we did not, e.g.
    /// one that failed after the packet was built; found again by matching times).
    pub(super) key_skew: u32,
}

impl SeqTable {
    pub(super) fn new() -> Self {
        SeqTable {
            entries: vec![Entry::FREE; MIN_TABLE].into_boxed_slice(),
            mask: (MIN_TABLE - 1) as u16,
            oldest: 0,
            scan: 0,
            next: 0,
            token: 0,
            ident: 0,
            keys: 0,
            key_seq: vec![0; MIN_TABLE].into_boxed_slice(),
            key_skew: 0,
        }
    }

    pub(super) fn live(&self) -> u16 {
        self.next.wrapping_sub(self.oldest)
    }

    /// Where to start looking for the first request in flight: `scan`, unless a sweep
    /// moved `oldest` past it.
    pub(super) fn first_in_flight_from(&self) -> u16 {
        if self.scan.wrapping_sub(self.oldest) > self.live() {
            self.oldest
        } else {
            self.scan
        }
    }

    /// Moves `scan` past requests that have an outcome (amortized O(1): a request
    /// never returns to flight). Answered requests stay in the table until their
    /// timeout (to classify duplicates and late replies), but only requests in flight
    /// need a wakeup at their deadline.
    pub(super) fn advance_scan(&mut self) {
        let mut s = self.first_in_flight_from();
        while s != self.next && self.entries[self.idx(s)].state != State::InFlight {
            s = s.wrapping_add(1);
        }
        self.scan = s;
    }

    /// Deadline of the oldest request still in flight, if any (never later than the
    /// true one: `scan` only lags).
    pub(super) fn first_in_flight_deadline(&self) -> Option<u64> {
        let s = self.first_in_flight_from();
        (s != self.next).then(|| self.entries[self.idx(s)].deadline_ns)
    }

    /// Slot of `seq`.
    pub(super) fn idx(&self, seq: u16) -> usize {
        usize::from(seq & self.mask)
    }

    /// True when no further request can be allocated without reusing a live slot.
    pub(super) fn full(&self) -> bool {
        usize::from(self.live()) >= self.entries.len().min(usize::from(MAX_LIVE))
    }

    /// Grows the table to `size` slots (a power of two), moving live entries.
    pub(super) fn grow(&mut self, size: usize) {
        if size <= self.entries.len() {
            return;
        }
        let mut entries = vec![Entry::FREE; size].into_boxed_slice();
        let mask = (size - 1) as u16;
        let mut seq = self.oldest;
        while seq != self.next {
            let e = self.entries[self.idx(seq)];
            entries[usize::from(seq & mask)] = e;
            seq = seq.wrapping_add(1);
        }
        self.entries = entries;
        self.mask = mask;
        let mut key_seq = vec![0u16; size].into_boxed_slice();
        let mut seq = self.oldest;
        while seq != self.next {
            if let Some(k) = self.entries[self.idx(seq)].tx_key {
                key_seq[k as usize & usize::from(mask)] = seq;
            }
            seq = seq.wrapping_add(1);
        }
        self.key_seq = key_seq;
    }

    /// The live request holding our key `ours`, if any.
    pub(super) fn by_key(&self, ours: u32) -> Option<usize> {
        let seq = self.key_seq[ours as usize & usize::from(self.mask)];
        let i = self.idx(seq);
        let live = seq.wrapping_sub(self.oldest) < self.live();
        (live && self.entries[i].tx_key == Some(ours)).then_some(i)
    }
}
