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
//! frame = [dt, sent, codes, lost?, duplicates?, late?, errors?, flags?]
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
const MAX_FRAME_FIELDS: usize = 8;

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
        let mut seq = s.serialize_seq(Some(3 + self.tail_len))?;
        seq.serialize_element(&self.dt)?;
        seq.serialize_element(&self.sent)?;
        seq.serialize_element(&CodeDeltas {
            first_delta: self.first_delta,
            codes: self.codes,
        })?;
        for v in &self.tail[..self.tail_len] {
            seq.serialize_element(v)?;
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
            return Err(invalid(&r, "a frame is an array of 3 to 8 elements"));
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
            (0u64..5, 0u32..2000, prop::collection::vec(0u32..1900, 0..40), prop::array::uniform5(0u32..3), any::<u8>()),
            0..30)) -> Vec<QFrame> {
            let mut t = 1_600_000_000_000_000u64;
            raw.into_iter().map(|(skip, sent, mut codes, tail, flags)| {
                t += skip * 100_000;
                codes.sort_unstable();
                let f = QFrame { start_us: t, period_us: 100_000, sent, lost: tail[0], duplicates: tail[1],
                    late: tail[2], errors: tail[3], flags, codes };
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
