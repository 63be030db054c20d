//! The frame codec: one self-delimiting MessagePack array per frame.
//!
//! This is the encoding used on disk (after a segment header, see [`crate::file`]) and in
//! live-stream datagrams. It is a *chained* encoding: a frame is coded relative to the one
//! before it in the same segment or datagram, which is what makes it small (about 1.4
//! bytes per ping at 100 pings/s with 100 ms frames). [`FrameEncoder`] and [`FrameDecoder`]
//! hold that chain state; both start from a known base (a segment header, a datagram
//! header) via `reset`.
//!
//! ```text
//! frame = [dt, sent, codes, lost?, duplicates?, late?, errors?, flags?, error_kinds?, router?]
//! ```
//! - `dt` (int): `start_us - expected_start_us`, where the expected start is the previous
//!   frame's end (`start + period`), or the base time for the first frame after a reset.
//!   Aligned consecutive frames give `0` (one byte).
//! - `sent` (uint).
//! - `codes` (array of ints): the quantizer codes of the frame's RTTs, sorted ascending.
//!   The first element is the first code minus the first code of the previous frame that
//!   had any (0 after a reset) and may be negative; each later element is the difference
//!   to the code before it (>= 0). `received` is the length of this array.
//! - `lost`, `duplicates`, `late`, `errors`, `flags` (uints): trailing zeros are omitted,
//!   so a frame without incidents is a 3-element array.
//! - `error_kinds` (array of uints, format version 2): the errors by kind, as pairs
//!   `kind, count` with kinds ascending, each once, counts > 0, summing to at most
//!   `errors` ([`crate::frame::ErrorKind`] numbers the kinds). Omitted when empty and no
//!   router follows.
//! - `router` (str, format version 2): the address of the router that sent the frame's
//!   ICMP errors, as text (`198.18.0.1`, `2001:db8::1`). Omitted when none.
//!
//! Integers use the smallest MessagePack width (rmp's `write_uint`/`write_sint`), so any
//! MessagePack decoder can walk the stream.
//!
//! Encoding writes straight into a caller-owned `Vec<u8>` and allocates nothing once that
//! buffer and the encoder's code scratch have grown to their working size. Decoding reads
//! the bytes with the shared [`msgpack::Cursor`], so that a truncated value
//! ([`DecodeError::Truncated`]) is told apart from an invalid one, and never panics.

use crate::frame::Frame;
use crate::msgpack::{self, Cursor};
use crate::quantizer::Quantizer;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use thiserror::Error;

/// Most RTTs accepted in one frame (1000 pings/s for 60 s, with room for duplicates).
pub const MAX_REPLIES_PER_FRAME: u32 = 65_536;
/// Largest number of elements of a frame array.
const MAX_FRAME_FIELDS: usize = 10;

/// A quantized frame: a [`Frame`] whose RTTs are quantizer codes, sorted ascending.
///
/// This is what the codec reads and writes, and what summaries count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QFrame {
    /// Start of the period, µs since the Unix epoch.
    pub start_us: u64,
    /// Length of the period, µs.
    pub period_us: u32,
    /// Requests sent.
    pub sent: u32,
    /// Requests that timed out.
    pub lost: u32,
    /// Extra replies to answered requests.
    pub duplicates: u32,
    /// Replies after the timeout.
    pub late: u32,
    /// Send failures and ICMP errors.
    pub errors: u32,
    /// `frame::FLAG_*` bits.
    pub flags: u8,
    /// Quantizer codes of the received replies' RTTs, ascending.
    pub codes: Vec<u32>,
    /// The errors by kind.
    pub error_kinds: crate::frame::ErrorKinds,
    /// The router that sent the frame's ICMP errors.
    pub router: Option<std::net::IpAddr>,
}

impl QFrame {
    /// Replies received within the timeout.
    pub fn received(&self) -> u32 {
        self.codes.len() as u32
    }

    /// End of the period (exclusive).
    pub fn end_us(&self) -> u64 {
        self.start_us + u64::from(self.period_us)
    }

    /// Counters of this frame.
    pub fn counts(&self) -> crate::frame::Counts {
        crate::frame::Counts {
            sent: self.sent,
            received: self.received(),
            lost: self.lost,
            duplicates: self.duplicates,
            late: self.late,
            errors: self.errors,
        }
    }

    /// Sets every counter but `received` (which is the code list's length) from `c`.
    pub fn set_counts(&mut self, c: &crate::frame::Counts) {
        self.sent = c.sent;
        self.lost = c.lost;
        self.duplicates = c.duplicates;
        self.late = c.late;
        self.errors = c.errors;
    }

    /// Quantizes `frame` into `self`, reusing `self.codes`.
    pub fn set_from(&mut self, frame: &Frame, q: &Quantizer) {
        self.start_us = frame.start_us;
        self.period_us = frame.period_us;
        self.set_counts(&frame.counts());
        self.flags = frame.flags;
        self.error_kinds = frame.error_kinds;
        self.router = frame.router;
        self.codes.clear();
        // Grow to the source's capacity at once, not to each new record length: a
        // producer that pre-sizes its frames (the daemon does) then never makes this
        // scratch reallocate in steady state.
        self.codes.reserve(frame.rtts_us.capacity());
        self.codes
            .extend(frame.rtts_us.iter().map(|&r| q.encode(r)));
        self.codes.sort_unstable();
    }

    /// Decodes into `frame` (RTTs become bucket representatives, ascending), reusing its
    /// buffer.
    pub fn to_frame_into(&self, q: &Quantizer, frame: &mut Frame) {
        frame.clear(self.start_us, self.period_us);
        frame.set_counts(&self.counts());
        frame.flags = self.flags;
        frame.error_kinds = self.error_kinds;
        frame.router = self.router;
        frame
            .rtts_us
            .extend(self.codes.iter().map(|&c| q.decode_saturating(c)));
    }

    /// Decoded RTTs in µs, ascending.
    pub fn rtts_us<'a>(&'a self, q: &'a Quantizer) -> impl Iterator<Item = u32> + 'a {
        self.codes.iter().map(move |&c| q.decode_saturating(c))
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end in the middle of a value (a torn tail, or a short buffer).
    #[error("truncated: the data ends inside a frame")]
    Truncated,
    /// The bytes are not a valid frame; `offset` is relative to the start of the value.
    #[error("invalid frame at byte {offset} of the value: {reason}")]
    Invalid {
        /// Byte offset within the value where decoding failed.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A borrowed view of a frame's wire form; serialized with rmp-serde.
struct Wire<'a> {
    dt: i64,
    sent: u32,
    first_delta: i64,
    codes: &'a [u32],
    tail: [u32; 5],
    tail_len: usize,
    error_kinds: &'a crate::frame::ErrorKinds,
    router: Option<std::net::IpAddr>,
}

/// `error_kinds` as pairs `kind, count`.
struct KindPairs<'a>(&'a crate::frame::ErrorKinds);

impl Serialize for KindPairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0.iter().count() * 2;
        let mut seq = s.serialize_seq(Some(n))?;
        for (k, c) in self.0.iter() {
            seq.serialize_element(&(k as u8))?;
            seq.serialize_element(&c)?;
        }
        seq.end()
    }
}

/// A router address as MessagePack str, formatted without allocating.
struct RouterText(std::net::IpAddr);

impl Serialize for RouterText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::io::Write;
        // The longest IPv6 text is 45 bytes (with an embedded IPv4 address).
        let mut buf = [0u8; 48];
        let mut w = &mut buf[..];
        let _ = write!(w, "{}", self.0);
        let len = 48 - w.len();
        s.serialize_str(std::str::from_utf8(&buf[..len]).unwrap_or(""))
    }
}

struct CodeDeltas<'a> {
    first_delta: i64,
    codes: &'a [u32],
}

impl Serialize for CodeDeltas<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.codes.len()))?;
        if !self.codes.is_empty() {
            seq.serialize_element(&self.first_delta)?;
            for w in self.codes.windows(2) {
                seq.serialize_element(&(w[1] - w[0]))?;
            }
        }
        seq.end()
    }
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extra = match (self.error_kinds.is_empty(), self.router) {
            (_, Some(_)) => 2,
            (false, None) => 1,
            (true, None) => 0,
        };
        // The kinds and the router come after the whole tail.
        let tail_len = if extra > 0 { 5 } else { self.tail_len };
        let mut seq = s.serialize_seq(Some(3 + tail_len + extra))?;
        seq.serialize_element(&self.dt)?;
        seq.serialize_element(&self.sent)?;
        seq.serialize_element(&CodeDeltas {
            first_delta: self.first_delta,
            codes: self.codes,
        })?;
        for v in &self.tail[..tail_len] {
            seq.serialize_element(v)?;
        }
        if extra > 0 {
            seq.serialize_element(&KindPairs(self.error_kinds))?;
        }
        if let Some(r) = self.router {
            seq.serialize_element(&RouterText(r))?;
        }
        seq.end()
    }
}

/// Chained frame encoder. See the module docs for the layout.
#[derive(Debug, Clone, Default)]
pub struct FrameEncoder {
    expected_start_us: u64,
    prev_first_code: u32,
}

impl FrameEncoder {
    /// An encoder whose first frame is expected to start at `base_us`.
    pub fn new(base_us: u64) -> Self {
        Self {
            expected_start_us: base_us,
            prev_first_code: 0,
        }
    }

    /// Restarts the chain (after writing a segment or datagram header with `base_us`).
    pub fn reset(&mut self, base_us: u64) {
        *self = Self::new(base_us);
    }

    /// Appends the encoding of `frame` to `out`.
    ///
    /// `frame.codes` must be sorted ascending (as [`QFrame::set_from`] leaves them).
    pub fn encode(&mut self, frame: &QFrame, out: &mut Vec<u8>) {
        debug_assert!(frame.codes.is_sorted());
        let dt = frame.start_us as i64 - self.expected_start_us as i64;
        let first = frame.codes.first().copied();
        let first_delta = first.map_or(0, |c| i64::from(c) - i64::from(self.prev_first_code));
        let tail = [
            frame.lost,
            frame.duplicates,
            frame.late,
            frame.errors,
            u32::from(frame.flags),
        ];
        let tail_len = tail.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
        let wire = Wire {
            dt,
            sent: frame.sent,
            first_delta,
            codes: &frame.codes,
            tail,
            tail_len,
            error_kinds: &frame.error_kinds,
            router: frame.router,
        };
        // Writing into a Vec cannot fail, and every value is representable.
        let _ = wire.serialize(&mut rmp_serde::Serializer::new(&mut *out));
        self.expected_start_us = frame.end_us();
        if let Some(c) = first {
            self.prev_first_code = c;
        }
    }
}

/// Chained frame decoder, the mirror of [`FrameEncoder`].
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    expected_start_us: u64,
    prev_first_code: u32,
    period_us: u32,
    code_limit: u32,
}

impl FrameDecoder {
    /// A decoder for frames of `period_us`, the first expected at `base_us`; codes at or
    /// above `code_limit` (the quantizer's code count) are rejected as invalid.
    pub fn new(base_us: u64, period_us: u32, code_limit: u32) -> Self {
        Self {
            expected_start_us: base_us,
            prev_first_code: 0,
            period_us,
            code_limit,
        }
    }

    /// Decodes one frame from the start of `buf` into `out` (reusing its buffer) and
    /// returns the number of bytes it took. On error the decoder's chain state is
    /// unchanged and `out` is unspecified.
    pub fn decode(&mut self, buf: &[u8], out: &mut QFrame) -> Result<usize, DecodeError> {
        let mut r = Cursor::new(buf);
        let n = r.array_len()?;
        if !(3..=MAX_FRAME_FIELDS).contains(&n) {
            return Err(invalid(&r, "a frame is an array of 3 to 10 elements"));
        }
        let dt = r.i64()?;
        let start = i128::from(self.expected_start_us) + i128::from(dt);
        if !(0..=i128::from(u64::MAX / 2)).contains(&start) {
            return Err(invalid(&r, "frame start time out of range"));
        }
        let sent = r.u32()?;
        let ncodes = r.array_len()?;
        if ncodes > MAX_REPLIES_PER_FRAME as usize {
            return Err(invalid(&r, "too many replies in one frame"));
        }
        out.codes.clear();
        let mut prev = 0i64;
        for i in 0..ncodes {
            let d = r.i64()?;
            let code = if i == 0 {
                i64::from(self.prev_first_code) + d
            } else if d < 0 {
                return Err(invalid(&r, "RTT codes must be ascending"));
            } else {
                prev + d
            };
            if code < 0 || code >= i64::from(self.code_limit) {
                return Err(invalid(&r, "RTT code outside the quantizer's table"));
            }
            out.codes.push(code as u32);
            prev = code;
        }
        let mut tail = [0u32; 5];
        for t in tail.iter_mut().take(n - 3) {
            *t = r.u32()?;
        }
        if tail[4] > u32::from(u8::MAX) {
            return Err(invalid(&r, "flags do not fit in 8 bits"));
        }
        out.error_kinds = crate::frame::ErrorKinds::default();
        out.router = None;
        if n > 8 {
            let len = r.array_len()?;
            if len % 2 != 0 || len > 2 * crate::frame::ErrorKind::COUNT {
                return Err(invalid(&r, "error kinds are pairs of kind and count"));
            }
            let mut last = None;
            let mut sum = 0u64;
            for _ in 0..len / 2 {
                let kind = r.u32()?;
                let count = r.u32()?;
                let kind = u8::try_from(kind)
                    .ok()
                    .and_then(crate::frame::ErrorKind::from_u8)
                    .ok_or_else(|| invalid(&r, "unknown error kind"))?;
                if last.is_some_and(|l| l >= kind) || count == 0 {
                    return Err(invalid(
                        &r,
                        "error kinds must be ascending, once, with counts",
                    ));
                }
                last = Some(kind);
                sum += u64::from(count);
                out.error_kinds.add(kind, count);
            }
            if sum > u64::from(tail[3]) {
                return Err(invalid(&r, "more errors by kind than errors"));
            }
        }
        if n > 9 {
            let text = r.str()?;
            out.router = Some(
                text.parse()
                    .map_err(|_| invalid(&r, "a router is an IP address"))?,
            );
        }
        out.start_us = start as u64;
        out.period_us = self.period_us;
        out.sent = sent;
        [out.lost, out.duplicates, out.late, out.errors] = [tail[0], tail[1], tail[2], tail[3]];
        out.flags = tail[4] as u8;
        self.expected_start_us = out.end_us();
        if let Some(&c) = out.codes.first() {
            self.prev_first_code = c;
        }
        Ok(r.pos())
    }
}

impl From<msgpack::Error> for DecodeError {
    #[inline]
    fn from(e: msgpack::Error) -> Self {
        match e {
            msgpack::Error::Truncated { .. } => DecodeError::Truncated,
            msgpack::Error::Invalid { offset, what } => DecodeError::Invalid {
                offset,
                reason: what,
            },
        }
    }
}

/// An invalid-frame error at the cursor's position.
fn invalid(r: &Cursor<'_>, reason: &'static str) -> DecodeError {
    DecodeError::Invalid {
        offset: r.pos(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_from_grows_once_to_the_source_capacity() {
        let q = Quantizer::new(0.01).unwrap();
        let mut f = Frame::new(0, 100_000);
        f.rtts_us.reserve_exact(130);
        f.rtts_us.push(1_000);
        let mut qf = QFrame::default();
        qf.set_from(&f, &q);
        assert!(qf.codes.capacity() >= f.rtts_us.capacity());
        let buf = qf.codes.as_ptr();
        // A later frame with more replies (up to the producer's bound) reuses the buffer.
        f.rtts_us.extend((0..129).map(|i| 500 + i * 37));
        qf.set_from(&f, &q);
        assert_eq!(qf.codes.len(), 130);
        assert_eq!(
            qf.codes.as_ptr(),
            buf,
            "set_from reallocated below the bound"
        );
    }

    fn qframe(start_us: u64, sent: u32, codes: &[u32]) -> QFrame {
        QFrame {
            start_us,
            period_us: 100_000,
            sent,
            codes: codes.to_vec(),
            ..QFrame::default()
        }
    }

    #[test]
    fn quiet_frame_is_small() {
        let mut enc = FrameEncoder::new(1_000_000);
        let mut out = Vec::new();
        enc.encode(
            &qframe(
                1_000_000,
                10,
                &[300, 301, 301, 305, 310, 312, 320, 330, 335, 340],
            ),
            &mut out,
        );
        // fixarray(3), dt=0, sent=10, fixarray(10), first code 300 (3 bytes), 9 deltas
        assert_eq!(out.len(), 1 + 1 + 1 + 1 + 3 + 9);
        let first_len = out.len();
        enc.encode(
            &qframe(
                1_100_000,
                10,
                &[302, 303, 304, 305, 306, 307, 308, 309, 310, 311],
            ),
            &mut out,
        );
        assert_eq!(out.len() - first_len, 1 + 1 + 1 + 1 + 1 + 9);
    }

    #[test]
    fn round_trip_with_tail_and_gap() {
        let frames = vec![
            qframe(5_000_000, 3, &[10, 20, 30]),
            QFrame {
                lost: 2,
                errors: 1,
                flags: 3,
                ..qframe(5_100_000, 4, &[5])
            },
            qframe(9_900_000, 0, &[]),
            QFrame {
                late: 7,
                ..qframe(10_000_000, 1, &[1000])
            },
        ];
        let mut enc = FrameEncoder::new(5_000_000);
        let mut buf = Vec::new();
        for f in &frames {
            enc.encode(f, &mut buf);
        }
        let mut dec = FrameDecoder::new(5_000_000, 100_000, 2000);
        let mut pos = 0;
        let mut got = QFrame::default();
        for f in &frames {
            pos += dec.decode(&buf[pos..], &mut got).unwrap();
            assert_eq!(&got, f);
        }
        assert_eq!(pos, buf.len());
    }

    #[test]
    fn error_kinds_and_router_cost_nothing_until_used() {
        use crate::frame::{ErrorKind, ErrorKinds};
        use std::net::IpAddr;
        let mut kinds = ErrorKinds::default();
        kinds.add(ErrorKind::HostUnreachable, 3);
        kinds.add(ErrorKind::NoRoute, 1);
        let router: IpAddr = "198.18.0.1".parse().unwrap();
        let frames = [
            // Errors without kinds (format version 1 or a converted file): as before.
            QFrame {
                errors: 2,
                ..qframe(0, 2, &[])
            },
            QFrame {
                errors: 4,
                error_kinds: kinds,
                router: Some(router),
                ..qframe(100_000, 4, &[])
            },
            QFrame {
                errors: 1,
                error_kinds: {
                    let mut k = ErrorKinds::default();
                    k.add(ErrorKind::NoRoute, 1);
                    k
                },
                ..qframe(200_000, 1, &[])
            },
            QFrame {
                router: Some("2001:db8::1".parse().unwrap()),
                ..qframe(300_000, 1, &[7])
            },
        ];
        let mut enc = FrameEncoder::new(0);
        let mut lens = Vec::new();
        let mut buf = Vec::new();
        for f in &frames {
            let before = buf.len();
            enc.encode(f, &mut buf);
            lens.push(buf.len() - before);
        }
        // [0, 2, [], 0, 0, 0, 2]: 8 bytes, as in version 1.
        assert_eq!(lens[0], 8);
        // The tail complete (flags 0), then [0, 1, 7, 3] (5 bytes) and "198.18.0.1" (11).
        assert_eq!(lens[1], 1 + 1 + 1 + 1 + 5 + 5 + 11);
        let mut dec = FrameDecoder::new(0, 100_000, 2000);
        let mut pos = 0;
        let mut got = QFrame::default();
        for f in &frames {
            pos += dec.decode(&buf[pos..], &mut got).unwrap();
            assert_eq!(&got, f);
        }
        assert_eq!(pos, buf.len());
    }

    #[test]
    fn malformed_error_kinds_are_invalid() {
        // [dt, sent, codes, lost, dup, late, errors, flags, kinds, router?]
        let cases: &[(&[u8], &str)] = &[
            // Kind 12 does not exist.
            (
                &[0x99, 0, 1, 0x90, 0, 0, 0, 1, 0, 0x92, 12, 1],
                "unknown error kind",
            ),
            // Not ascending.
            (
                &[0x99, 0, 2, 0x90, 0, 0, 0, 2, 0, 0x94, 7, 1, 0, 1],
                "ascending",
            ),
            // A zero count.
            (&[0x99, 0, 1, 0x90, 0, 0, 0, 1, 0, 0x92, 7, 0], "ascending"),
            // More errors by kind than errors.
            (
                &[0x99, 0, 3, 0x90, 0, 0, 0, 1, 0, 0x92, 7, 2],
                "more errors",
            ),
            // An odd array.
            (&[0x99, 0, 1, 0x90, 0, 0, 0, 1, 0, 0x91, 7], "pairs"),
            // A router that is not an address.
            (
                &[
                    0x9a, 0, 1, 0x90, 0, 0, 0, 1, 0, 0x92, 7, 1, 0xa3, b'a', b'b', b'c',
                ],
                "IP address",
            ),
        ];
        for (bytes, want) in cases {
            let mut dec = FrameDecoder::new(0, 100_000, 2000);
            match dec.decode(bytes, &mut QFrame::default()) {
                Err(DecodeError::Invalid { reason, .. }) => {
                    assert!(reason.contains(want), "{bytes:?}: {reason}")
                }
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncation_is_reported_not_misread() {
        let mut enc = FrameEncoder::new(0);
        let mut buf = Vec::new();
        enc.encode(
            &QFrame {
                lost: 300,
                ..qframe(0, 1000, &[700, 800, 900])
            },
            &mut buf,
        );
        for cut in 0..buf.len() {
            let mut dec = FrameDecoder::new(0, 100_000, 2000);
            assert_eq!(
                dec.decode(&buf[..cut], &mut QFrame::default()),
                Err(DecodeError::Truncated),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn rejects_bad_codes() {
        let mut enc = FrameEncoder::new(0);
        let mut buf = Vec::new();
        enc.encode(&qframe(0, 1, &[1999]), &mut buf);
        let mut dec = FrameDecoder::new(0, 100_000, 1999);
        assert!(matches!(
            dec.decode(&buf, &mut QFrame::default()),
            Err(DecodeError::Invalid { .. })
        ));
    }

    prop_compose! {
        fn arb_frames()(raw in prop::collection::vec(
            (0u64..5, 0u32..2000, prop::collection::vec(0u32..1900, 0..40), prop::array::uniform5(0u32..3), any::<u8>(),
             prop::collection::vec((0u8..12, 1u32..4), 0..3),
             prop::option::of(prop_oneof![
                 any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
                 any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
             ])),
            0..30)) -> Vec<QFrame> {
            let mut t = 1_600_000_000_000_000u64;
            raw.into_iter().map(|(skip, sent, mut codes, tail, flags, kinds, router)| {
                t += skip * 100_000;
                codes.sort_unstable();
                let mut error_kinds = crate::frame::ErrorKinds::default();
                for (k, n) in kinds {
                    error_kinds.add(crate::frame::ErrorKind::from_u8(k).unwrap(), n);
                }
                // Kinds never add up to more than the errors.
                let errors = tail[3].max(error_kinds.total() as u32);
                let f = QFrame { start_us: t, period_us: 100_000, sent, lost: tail[0], duplicates: tail[1],
                    late: tail[2], errors, flags, codes, error_kinds, router };
                t += 100_000;
                f
            }).collect()
        }
    }

    proptest! {
        #[test]
        fn frames_round_trip(frames in arb_frames()) {
            let base = frames.first().map_or(0, |f| f.start_us);
            let mut enc = FrameEncoder::new(base);
            let mut buf = Vec::new();
            for f in &frames { enc.encode(f, &mut buf); }
            let mut dec = FrameDecoder::new(base, 100_000, 1900);
            let mut pos = 0;
            let mut got = QFrame::default();
            for f in &frames {
                pos += dec.decode(&buf[pos..], &mut got).unwrap();
                prop_assert_eq!(&got, f);
            }
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut dec = FrameDecoder::new(0, 100_000, 1900);
            let mut out = QFrame::default();
            if let Ok(n) = dec.decode(&bytes, &mut out) {
                prop_assert!(n <= bytes.len());
            }
        }

        #[test]
        fn standard_msgpack_reads_frames(frames in arb_frames()) {
            // Any MessagePack decoder can walk the stream: rmpv reads each value whole.
            let base = frames.first().map_or(0, |f| f.start_us);
            let mut enc = FrameEncoder::new(base);
            let mut buf = Vec::new();
            for f in &frames { enc.encode(f, &mut buf); }
            let mut rd = &buf[..];
            let mut n = 0;
            while !rd.is_empty() {
                let v: serde_json::Value = rmp_serde::from_read(&mut rd).unwrap();
                prop_assert!(v.is_array());
                n += 1;
            }
            prop_assert_eq!(n, frames.len());
        }
    }
}
