//! Import of the original zzping's log formats: decoders, a streaming reader, format
//! detection by content, and the encoders the tests and benchmarks use.
//!
//! Only `zzping convert` (and the benchmarks' size comparison) need this crate; the core
//! (`zzping-lib`) does not depend on it.
//!
//! Both formats are MessagePack written as a stream of bare values: one frame is several
//! consecutive top-level values, not one array. Everything here is a pure function over
//! bytes, plus [`LegacyReader`], a streaming (constant-memory) wrapper over any
//! [`std::io::Read`].
//!
//! # FrameData (`pingd-log-<address>-<YYYYMMDDTHH>.log`)
//! Each frame is:
//! 1. the time: either *full*, a `str` RFC 3339 timestamp followed by the uint `0`, or
//!    *delta*, a single uint: µs since the last full timestamp;
//! 2. `inflight` (uint): requests outstanding longer than one frame;
//! 3. `lost` (uint): size of a rolling lost-packet queue (unreliable);
//! 4. an array of uints: RTTs in µs of the replies seen in the frame.
//!
//! # FrameDataQ (`.fdq`)
//! A header map `{"schema": "FDCodec", "version": <=101, "full_encode_secs", "recv_llq",
//! "delta_enc"}` then, per frame: `timestamp` (uint Unix seconds, or nil for a delta
//! frame), `ms` (ms within that second, or ms since the previous frame), either two uints
//! `inflight, lost` or the single int `-1` (both 0), `n` (replies) and, when `n > 0`, an
//! array of 7 ints: successive differences of (min, p12.5, p25, p50, p75, p87.5, max),
//! quantizer codes of [`llq_encode`] when `recv_llq` is a number. `-1` means no data.
//! Files with `delta_enc: true` were corrupted by a known encoder bug and are refused.
//!
//! # What is lossy
//! FrameData RTTs are exact. FrameDataQ keeps only 7 percentiles per frame;
//! [`reconstruct_rtts`] spreads `n` RTTs over them by rank (a step distribution, so the
//! minimum and maximum are exact and every other percentile is one of the 7 values), and
//! with `recv_llq` the values themselves are within about `recv_llq / 2` relative. The
//! `inflight` and `lost` values of both formats are rolling, unreliable counters: they are
//! returned as-is and are not losses of the frame.

mod fdq;
mod framedata;
mod reader;

pub use fdq::{
    FDQ_MAX_VERSION, FDQ_QUANTILES, FDQ_SCHEMA, FdqDecoder, FdqHeader, FdqTime, decode_fdq_header,
    encode_fdq_frame, encode_fdq_header, llq_decode, llq_encode, reconstruct_rtts,
};
pub use framedata::{
    FrameDataDecoder, FrameDataTime, encode_framedata_frame, framedata_timestamp,
    parse_framedata_name, parse_rfc3339_us,
};
pub use reader::{LegacyEnd, LegacyReadError, LegacyReader};

use thiserror::Error;
use zzping_lib::msgpack::{self, Cursor};

/// Most RTTs accepted in one legacy frame.
pub const MAX_LEGACY_REPLIES: u64 = 1 << 20;
/// Largest legacy frame accepted, bytes (a longer value is treated as garbage).
pub(crate) const MAX_LEGACY_FRAME: usize = 8 << 20;
/// Read chunk of [`LegacyReader`].
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// Why legacy bytes could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LegacyError {
    /// The bytes end inside a frame (a torn tail, or a short buffer).
    #[error("truncated: the data ends inside a frame")]
    Truncated,
    /// The bytes are not valid; `offset` is relative to the start of the buffer given.
    #[error("invalid data at byte {offset}: {reason}")]
    Invalid {
        /// Byte offset (relative to the decoded buffer) where decoding failed.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The file is valid but of a kind this decoder refuses (schema, version, known bug).
    #[error("unsupported file: {0}")]
    Unsupported(String),
}

impl From<msgpack::Error> for LegacyError {
    fn from(e: msgpack::Error) -> Self {
        match e {
            msgpack::Error::Truncated { .. } => LegacyError::Truncated,
            msgpack::Error::Invalid { offset, what } => LegacyError::Invalid {
                offset,
                reason: what.to_string(),
            },
        }
    }
}

/// Most nesting of unknown header values skipped.
pub(crate) const MAX_SKIP_DEPTH: u32 = 16;

pub(crate) fn invalid<T>(at: usize, reason: impl Into<String>) -> Result<T, LegacyError> {
    Err(LegacyError::Invalid {
        offset: at,
        reason: reason.into(),
    })
}

/// An integer in `0..=max`; `what` names it in the error.
pub(crate) fn uint(r: &mut Cursor<'_>, max: u64, what: &str) -> Result<u64, LegacyError> {
    let at = r.pos();
    let v = r.int()?;
    if v < 0 || v > i128::from(max) {
        return invalid(at, format!("{what} out of range: {v}"));
    }
    Ok(v as u64)
}

/// A legacy frame, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyFrame {
    /// Frame time, µs since the epoch.
    pub time_us: u64,
    /// The `inflight` counter (unreliable rolling value).
    pub inflight: u32,
    /// The `lost` counter (size of a rolling queue; unreliable, *not* this frame's losses).
    pub lost_rolling: u32,
    /// Replies in this frame.
    pub replies: u32,
    /// RTTs in µs, ascending: exact for FrameData, reconstructed for FrameDataQ.
    pub rtts_us: Vec<u32>,
    /// FrameDataQ only: the 7 stored values (min, p12.5, p25, p50, p75, p87.5, max) in
    /// µs, `-1` = no data.
    pub percentiles: Option<[i64; 7]>,
    /// True when `rtts_us` was reconstructed from percentiles (FrameDataQ).
    pub approximate: bool,
}

/// The two formats of the original zzping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFormat {
    /// The daemon's log.
    FrameData,
    /// The quantized format with a header map.
    FrameDataQ,
}

/// Bytes of a file's start that [`detect`] needs (a FrameDataQ header or a FrameData
/// timestamp is far shorter).
pub const DETECT_LEN: usize = 4096;

/// Tells a legacy file's format from its first bytes, whatever its name: a FrameDataQ
/// file starts with a header map whose `schema` is `FDCodec`, a FrameData file with an
/// RFC 3339 timestamp string. `None` for anything else. `prefix` is the first
/// [`DETECT_LEN`] bytes of the file (or all of a shorter file).
pub fn detect(prefix: &[u8]) -> Option<LegacyFormat> {
    let mut r = Cursor::new(prefix);
    if let Ok(n) = r.map_len() {
        for _ in 0..n {
            let key = r.str().ok()?;
            if key == "schema" {
                return (r.str().ok()? == FDQ_SCHEMA).then_some(LegacyFormat::FrameDataQ);
            }
            r.skip(MAX_SKIP_DEPTH).ok()?;
        }
        return None;
    }
    let t = r.str().ok()?;
    parse_rfc3339_us(t).map(|_| LegacyFormat::FrameData)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content() {
        let mut fd = Vec::new();
        encode_framedata_frame(
            &mut fd,
            FrameDataTime::Full(1_609_488_000_000_000),
            0,
            0,
            &[1],
        );
        assert_eq!(detect(&fd), Some(LegacyFormat::FrameData));
        let mut fdq = Vec::new();
        encode_fdq_header(
            &mut fdq,
            &FdqHeader {
                version: 101,
                full_encode_secs: 60,
                recv_llq: Some(0.01),
                delta_enc: false,
            },
        );
        assert_eq!(detect(&fdq), Some(LegacyFormat::FrameDataQ));
        // A refused header (a newer version) is still told apart as FrameDataQ, so the
        // reader says why it is refused.
        let mut newer = Vec::new();
        rmp::encode::write_map_len(&mut newer, 2).unwrap();
        rmp::encode::write_str(&mut newer, "version").unwrap();
        rmp::encode::write_uint(&mut newer, 999).unwrap();
        rmp::encode::write_str(&mut newer, "schema").unwrap();
        rmp::encode::write_str(&mut newer, FDQ_SCHEMA).unwrap();
        assert_eq!(detect(&newer), Some(LegacyFormat::FrameDataQ));
        // Neither: another schema, a string that is no timestamp, our own files, nothing.
        let mut other = Vec::new();
        rmp::encode::write_map_len(&mut other, 1).unwrap();
        rmp::encode::write_str(&mut other, "schema").unwrap();
        rmp::encode::write_str(&mut other, "zzping-frames").unwrap();
        for bytes in [&other[..], &[0xa3, b'a', b'b', b'c'], &[], &fdq[..5]] {
            assert_eq!(detect(bytes), None, "{bytes:02x?}");
        }
    }
}
