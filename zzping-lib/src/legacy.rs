//! Decoders (and test encoders) of the original zzping's log formats.
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

use crate::msgpack::{self, Cursor};
use std::io::{self, Read};
use thiserror::Error;

/// Schema name of FrameDataQ headers.
pub const FDQ_SCHEMA: &str = "FDCodec";
/// Highest FrameDataQ version understood.
pub const FDQ_MAX_VERSION: u64 = 101;
/// Positions (quantiles) of the 7 FrameDataQ percentile values.
pub const FDQ_QUANTILES: [f64; 7] = [0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0];
/// Most RTTs accepted in one legacy frame.
pub const MAX_LEGACY_REPLIES: u64 = 1 << 20;
/// Largest legacy frame accepted, bytes (a longer value is treated as garbage).
const MAX_LEGACY_FRAME: usize = 8 << 20;
/// Read chunk of [`LegacyReader`].
const READ_CHUNK: usize = 256 * 1024;

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
const MAX_SKIP_DEPTH: u32 = 16;

fn invalid<T>(at: usize, reason: impl Into<String>) -> Result<T, LegacyError> {
    Err(LegacyError::Invalid {
        offset: at,
        reason: reason.into(),
    })
}

/// An integer in `0..=max`; `what` names it in the error.
fn uint(r: &mut Cursor<'_>, max: u64, what: &str) -> Result<u64, LegacyError> {
    let at = r.pos();
    let v = r.int()?;
    if v < 0 || v > i128::from(max) {
        return invalid(at, format!("{what} out of range: {v}"));
    }
    Ok(v as u64)
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) to µs since the
/// epoch. Fractions beyond µs are truncated. Returns `None` when invalid or before 1970.
pub fn parse_rfc3339_us(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        d.iter().try_fold(0i64, |a, &c| {
            a.checked_mul(10)?.checked_add(i64::from(c - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = crate::time::days_from_civil(y as i32, mo as u32, d as u32);
    if crate::time::civil_from_days(days) != (y as i32, mo as u32, d as u32) {
        return None;
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac_us = frac_us * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            frac_us *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let t = (days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1_000_000 + frac_us;
    u64::try_from(t).ok()
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

// ----------------------------------------------------------------------------------------
// FrameData

/// Time of a FrameData frame, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDataTime {
    /// A full RFC 3339 timestamp (µs since the epoch).
    Full(u64),
    /// µs since the last full timestamp.
    Delta(u64),
}

/// Decoder of FrameData frames; holds the last full timestamp.
#[derive(Debug, Clone, Default)]
pub struct FrameDataDecoder {
    last_full_us: Option<u64>,
}

impl FrameDataDecoder {
    /// A decoder at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame from the start of `buf` into `out`; returns the bytes used. On
    /// error the decoder state is unchanged.
    pub fn decode(&mut self, buf: &[u8], out: &mut LegacyFrame) -> Result<usize, LegacyError> {
        let mut r = Cursor::new(buf);
        let (time_us, full) = if r.is_str()? {
            let at = r.pos();
            let s = r.str()?;
            let Some(t) = parse_rfc3339_us(s) else {
                return invalid(at, format!("invalid RFC 3339 timestamp {s:?}"));
            };
            let at = r.pos();
            if r.int()? != 0 {
                return invalid(at, "a full timestamp must be followed by 0");
            }
            (t, Some(t))
        } else {
            let at = r.pos();
            let d = uint(&mut r, u64::MAX, "time delta")?;
            let Some(base) = self.last_full_us else {
                return invalid(at, "delta timestamp before any full timestamp");
            };
            let Some(t) = base.checked_add(d) else {
                return invalid(at, "time delta out of range");
            };
            (t, None)
        };
        let inflight = uint(&mut r, u64::from(u32::MAX), "inflight")? as u32;
        let lost = uint(&mut r, u64::from(u32::MAX), "lost")? as u32;
        let at = r.pos();
        let n = r.array_len()?;
        if n as u64 > MAX_LEGACY_REPLIES {
            return invalid(at, "too many RTTs in one frame");
        }
        out.rtts_us.clear();
        for _ in 0..n {
            let v = uint(&mut r, u64::from(u32::MAX), "RTT")? as u32;
            out.rtts_us.push(v);
        }
        out.rtts_us.sort_unstable();
        out.time_us = time_us;
        out.inflight = inflight;
        out.lost_rolling = lost;
        out.replies = n as u32;
        out.percentiles = None;
        out.approximate = false;
        if full.is_some() {
            self.last_full_us = full;
        }
        Ok(r.pos())
    }
}

/// RFC 3339 with µs and a `+00:00` offset, as the original daemon wrote it.
pub fn framedata_timestamp(t_us: u64) -> String {
    let s = crate::time::rfc3339_us(t_us);
    format!("{}+00:00", s.trim_end_matches('Z'))
}

/// Appends one FrameData frame to `out` (the test and benchmark encoder).
pub fn encode_framedata_frame(
    out: &mut Vec<u8>,
    time: FrameDataTime,
    inflight: u16,
    lost: u16,
    rtts_us: &[u32],
) {
    // Writing into a Vec cannot fail.
    match time {
        FrameDataTime::Full(t) => {
            let _ = rmp::encode::write_str(out, &framedata_timestamp(t));
            let _ = rmp::encode::write_uint(out, 0);
        }
        FrameDataTime::Delta(d) => {
            let _ = rmp::encode::write_uint(out, d);
        }
    }
    let _ = rmp::encode::write_u16(out, inflight);
    let _ = rmp::encode::write_u16(out, lost);
    let _ = rmp::encode::write_array_len(out, rtts_us.len() as u32);
    for &v in rtts_us {
        let _ = rmp::encode::write_u32(out, v);
    }
}

/// Parses a FrameData file name `pingd-log-<address>-<YYYYMMDDTHH>.log` into the address
/// and the start of the hour (µs).
pub fn parse_framedata_name(name: &str) -> Option<(std::net::IpAddr, u64)> {
    let rest = name.strip_prefix("pingd-log-")?.strip_suffix(".log")?;
    let (addr, hour) = rest.rsplit_once('-')?;
    let addr = addr.parse().ok()?;
    let hb = hour.as_bytes();
    if hb.len() != 11 || hb[8] != b'T' {
        return None;
    }
    let day =
        crate::time::parse_day_name(&format!("{}-{}-{}", &hour[0..4], &hour[4..6], &hour[6..8]))?;
    let h: u64 = hour[9..11].parse().ok()?;
    (h < 24).then_some((addr, day + h * 3_600_000_000))
}

// ----------------------------------------------------------------------------------------
// FrameDataQ

/// The header of a FrameDataQ file.
#[derive(Debug, Clone, PartialEq)]
pub struct FdqHeader {
    /// Format version (at most [`FDQ_MAX_VERSION`]).
    pub version: u64,
    /// Seconds between full timestamps.
    pub full_encode_secs: u64,
    /// Precision of the log-linear quantizer of the percentile values, if they are coded.
    pub recv_llq: Option<f64>,
    /// The buggy delta encoding (refused by the decoder).
    pub delta_enc: bool,
}

/// Decodes (and validates) a FrameDataQ header; returns it and its length.
pub fn decode_fdq_header(buf: &[u8]) -> Result<(FdqHeader, usize), LegacyError> {
    let mut r = Cursor::new(buf);
    let n = r.map_len()?;
    let mut schema = None;
    let mut h = FdqHeader {
        version: 0,
        full_encode_secs: 0,
        recv_llq: None,
        delta_enc: false,
    };
    let mut version = None;
    for _ in 0..n {
        if !r.is_str()? {
            r.skip(MAX_SKIP_DEPTH)?;
            r.skip(MAX_SKIP_DEPTH)?;
            continue;
        }
        let key = r.str()?;
        let vat = r.pos();
        match key {
            "schema" => schema = Some(r.str()?.to_string()),
            "version" => version = Some(uint(&mut r, u64::MAX, "version")?),
            "full_encode_secs" => {
                h.full_encode_secs = uint(&mut r, u64::MAX, "full_encode_secs")?;
            }
            "recv_llq" => {
                h.recv_llq = if r.nil()? {
                    None
                } else if matches!(r.peek()?, 0xca | 0xcb) {
                    Some(r.f64()?)
                } else {
                    Some(r.int()? as f64)
                };
                if let Some(p) = h.recv_llq
                    && !(p.is_finite() && p > 0.0 && p <= 1.0)
                {
                    return invalid(vat, format!("recv_llq {p} is not in (0, 1]"));
                }
            }
            "delta_enc" => {
                h.delta_enc = match r.bool() {
                    Err(msgpack::Error::Invalid { .. }) => {
                        return invalid(vat, "delta_enc must be a boolean");
                    }
                    b => b?,
                };
            }
            _ => r.skip(MAX_SKIP_DEPTH)?,
        }
    }
    match schema.as_deref() {
        Some(FDQ_SCHEMA) => {}
        Some(s) => {
            return Err(LegacyError::Unsupported(format!(
                "schema is {s:?}, expected {FDQ_SCHEMA:?}"
            )));
        }
        None => return Err(LegacyError::Unsupported("header has no schema".into())),
    }
    let Some(v) = version else {
        return Err(LegacyError::Unsupported("header has no version".into()));
    };
    if v > FDQ_MAX_VERSION {
        return Err(LegacyError::Unsupported(format!(
            "version {v} is newer than the supported {FDQ_MAX_VERSION}"
        )));
    }
    h.version = v;
    if h.delta_enc {
        return Err(LegacyError::Unsupported(
            "delta_enc is true: files written with the delta encoding are corrupt (a known \
             bug of the original encoder) and cannot be converted"
                .into(),
        ));
    }
    Ok((h, r.pos()))
}

/// Appends a FrameDataQ header (the test and benchmark encoder; writes what is given,
/// including a `delta_enc: true` the decoder refuses).
pub fn encode_fdq_header(out: &mut Vec<u8>, h: &FdqHeader) {
    let _ = rmp::encode::write_map_len(out, 5);
    let _ = rmp::encode::write_str(out, "schema");
    let _ = rmp::encode::write_str(out, FDQ_SCHEMA);
    let _ = rmp::encode::write_str(out, "version");
    let _ = rmp::encode::write_uint(out, h.version);
    let _ = rmp::encode::write_str(out, "full_encode_secs");
    let _ = rmp::encode::write_uint(out, h.full_encode_secs);
    let _ = rmp::encode::write_str(out, "recv_llq");
    match h.recv_llq {
        Some(p) => {
            let _ = rmp::encode::write_f64(out, p);
        }
        None => {
            let _ = rmp::encode::write_nil(out);
        }
    }
    let _ = rmp::encode::write_str(out, "delta_enc");
    let _ = rmp::encode::write_bool(out, h.delta_enc);
}

/// `L = ceil(1/p)` of the legacy quantizer.
fn llq_linear_limit(p: f64) -> i64 {
    (1.0 / p).ceil() as i64
}

/// The legacy log-linear quantizer's code of `v` at precision `p`.
pub fn llq_encode(v: i64, p: f64) -> i64 {
    let l = llq_linear_limit(p);
    if v.abs() <= l {
        return v;
    }
    let a = v.unsigned_abs() as f64;
    let z = ((a * p).ln() / (1.0 + p).ln() + l as f64).round() as i64;
    v.signum() * z
}

/// The legacy log-linear quantizer's value of code `z` at precision `p` (saturating).
pub fn llq_decode(z: i64, p: f64) -> i64 {
    let l = llq_linear_limit(p);
    if z.abs() <= l {
        return z;
    }
    let e = (z.unsigned_abs() - l as u64) as f64;
    let v = ((1.0 + p).powf(e) / p).round();
    let v = if v.is_finite() && v < i64::MAX as f64 {
        v as i64
    } else {
        i64::MAX
    };
    z.signum() * v
}

/// Time of a FrameDataQ frame, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdqTime {
    /// A full timestamp: Unix seconds and ms within that second.
    Full {
        /// Unix seconds.
        unix_s: u64,
        /// Milliseconds within the second (0-999).
        ms: u16,
    },
    /// Milliseconds since the previous frame.
    Delta {
        /// Milliseconds.
        ms: u64,
    },
}

/// Decoder of FrameDataQ frames (after the header).
#[derive(Debug, Clone)]
pub struct FdqDecoder {
    header: FdqHeader,
    prev_us: Option<u64>,
}

impl FdqDecoder {
    /// A decoder for frames following `header`.
    pub fn new(header: FdqHeader) -> Self {
        Self {
            header,
            prev_us: None,
        }
    }

    /// The file's header.
    pub fn header(&self) -> &FdqHeader {
        &self.header
    }

    /// Decodes one frame from the start of `buf` into `out` (RTTs reconstructed with
    /// [`reconstruct_rtts`]); returns the bytes used. On error the state is unchanged.
    pub fn decode(&mut self, buf: &[u8], out: &mut LegacyFrame) -> Result<usize, LegacyError> {
        let mut r = Cursor::new(buf);
        let at = r.pos();
        let time_us = if r.nil()? {
            let ms = uint(&mut r, u64::MAX / 1000, "delta ms")?;
            let Some(prev) = self.prev_us else {
                return invalid(at, "delta frame before any full timestamp");
            };
            prev.checked_add(ms * 1000)
                .map_or_else(|| invalid(at, "time out of range"), Ok)?
        } else {
            let s = uint(&mut r, u64::MAX / 1_000_000 - 1, "timestamp")?;
            let mat = r.pos();
            let ms = uint(&mut r, u64::MAX, "ms")?;
            if ms > 999 {
                return invalid(mat, format!("ms within the second is {ms} (> 999)"));
            }
            s * 1_000_000 + ms * 1000
        };
        // `-1` (normally a negative fixint, but any integer width is accepted) means both 0.
        let iat = r.pos();
        let first = r.int()?;
        let (inflight, lost) = match first {
            -1 => (0, 0),
            0..=0xffff_ffff => (
                first as u32,
                uint(&mut r, u64::from(u32::MAX), "lost")? as u32,
            ),
            _ => return invalid(iat, format!("inflight out of range: {first}")),
        };
        let n = uint(&mut r, MAX_LEGACY_REPLIES, "n")? as u32;
        let mut values = None;
        if n > 0 {
            let aat = r.pos();
            if r.array_len()? != 7 {
                return invalid(aat, "the percentile array must have 7 elements");
            }
            let mut v = [0i64; 7];
            let mut acc: i128 = 0;
            for x in v.iter_mut() {
                let vat = r.pos();
                acc += r.int()?;
                let Ok(a) = i64::try_from(acc) else {
                    return invalid(vat, "percentile out of range");
                };
                *x = a;
            }
            if let Some(p) = self.header.recv_llq {
                for x in v.iter_mut() {
                    *x = llq_decode(*x, p);
                }
            }
            values = Some(v);
        }
        out.time_us = time_us;
        out.inflight = inflight;
        out.lost_rolling = lost;
        out.replies = n;
        out.percentiles = values;
        out.approximate = true;
        out.rtts_us.clear();
        if let Some(v) = &values {
            reconstruct_rtts(v, n, &mut out.rtts_us);
        }
        self.prev_us = Some(time_us);
        Ok(r.pos())
    }
}

/// Appends one FrameDataQ frame (the test and benchmark encoder). `values` are the 7
/// percentiles in µs (`-1` = no data), written when `n > 0`, quantized when the header
/// has `recv_llq`.
pub fn encode_fdq_frame(
    out: &mut Vec<u8>,
    header: &FdqHeader,
    time: FdqTime,
    inflight: u16,
    lost: u16,
    n: u32,
    values: &[i64; 7],
) {
    match time {
        FdqTime::Full { unix_s, ms } => {
            let _ = rmp::encode::write_uint(out, unix_s);
            let _ = rmp::encode::write_uint(out, u64::from(ms));
        }
        FdqTime::Delta { ms } => {
            let _ = rmp::encode::write_nil(out);
            let _ = rmp::encode::write_uint(out, ms);
        }
    }
    if inflight == 0 && lost == 0 {
        let _ = rmp::encode::write_sint(out, -1);
    } else {
        let _ = rmp::encode::write_uint(out, u64::from(inflight));
        let _ = rmp::encode::write_uint(out, u64::from(lost));
    }
    let _ = rmp::encode::write_uint(out, u64::from(n));
    if n > 0 {
        let _ = rmp::encode::write_array_len(out, 7);
        let mut prev = 0i64;
        for &v in values {
            let c = header.recv_llq.map_or(v, |p| llq_encode(v, p));
            let _ = rmp::encode::write_sint(out, c - prev);
            prev = c;
        }
    }
}

/// Reconstructs `n` RTTs (ascending, into `out`) from the 7 FrameDataQ values: the RTT of
/// rank `i` (0-based) takes the value whose quantile in [`FDQ_QUANTILES`] is nearest to
/// `i / (n - 1)` (`0.5` when `n == 1`; ties go to the lower quantile). Values `< 0` (no
/// data) are skipped; when none is left, nothing is written and `false` returned.
pub fn reconstruct_rtts(values: &[i64; 7], n: u32, out: &mut Vec<u32>) -> bool {
    out.clear();
    let valid = values.iter().any(|&v| v >= 0);
    if !valid || n == 0 {
        return n == 0;
    }
    for i in 0..n {
        let pos = if n == 1 {
            0.5
        } else {
            f64::from(i) / f64::from(n - 1)
        };
        let mut best: Option<(f64, i64)> = None;
        for (q, &v) in FDQ_QUANTILES.iter().zip(values) {
            if v < 0 {
                continue;
            }
            let d = (q - pos).abs();
            if best.is_none_or(|(bd, _)| d < bd - 1e-12) {
                best = Some((d, v));
            }
        }
        if let Some((_, v)) = best {
            out.push(v.clamp(0, i64::from(u32::MAX)) as u32);
        }
    }
    out.sort_unstable();
    true
}

// ----------------------------------------------------------------------------------------
// Streaming reader

/// How a legacy file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyEnd {
    /// Not at the end yet, or ended cleanly after a complete frame.
    Clean,
    /// The file ends inside a frame: `len` bytes from `offset` were dropped.
    TornTail {
        /// File offset of the incomplete frame.
        offset: u64,
        /// Bytes dropped.
        len: u64,
    },
    /// Undecodable data at `offset`; everything from there was dropped (legacy formats
    /// have no resynchronisation marker).
    Invalid {
        /// File offset where decoding failed.
        offset: u64,
        /// Bytes dropped.
        len: u64,
        /// Why.
        reason: String,
    },
}

enum Dec {
    FrameData(FrameDataDecoder),
    Fdq(FdqDecoder),
}

/// Streaming reader of a legacy file (bounded memory whatever its size).
pub struct LegacyReader<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    buf_offset: u64,
    eof: bool,
    dec: Dec,
    frame: LegacyFrame,
    end: LegacyEnd,
    done: bool,
}

/// Errors of [`LegacyReader`].
#[derive(Debug, Error)]
pub enum LegacyReadError {
    /// Reading failed.
    #[error("read: {0}")]
    Io(#[from] io::Error),
    /// The header is invalid or refused; `offset` is a file offset.
    #[error("at byte {offset}: {source}")]
    Header {
        /// File offset.
        offset: u64,
        /// Why.
        source: LegacyError,
    },
}

impl<R: Read> LegacyReader<R> {
    fn with(src: R, dec: Dec) -> Self {
        Self {
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            buf_offset: 0,
            eof: false,
            dec,
            frame: LegacyFrame::default(),
            end: LegacyEnd::Clean,
            done: false,
        }
    }

    /// A reader of a FrameData stream.
    pub fn framedata(src: R) -> Self {
        Self::with(src, Dec::FrameData(FrameDataDecoder::new()))
    }

    /// A reader of a FrameDataQ stream: reads and validates the header first.
    pub fn fdq(src: R) -> Result<Self, LegacyReadError> {
        let mut r = Self::with(
            src,
            Dec::Fdq(FdqDecoder::new(FdqHeader {
                version: 0,
                full_encode_secs: 0,
                recv_llq: None,
                delta_enc: false,
            })),
        );
        loop {
            match decode_fdq_header(&r.buf[r.pos..]) {
                Ok((h, used)) => {
                    r.pos += used;
                    r.dec = Dec::Fdq(FdqDecoder::new(h));
                    return Ok(r);
                }
                Err(LegacyError::Truncated) if !r.eof && r.buf.len() < MAX_LEGACY_FRAME => {
                    r.fill()?;
                }
                Err(source) => return Err(LegacyReadError::Header { offset: 0, source }),
            }
        }
    }

    /// The FrameDataQ header, for a FrameDataQ reader.
    pub fn fdq_header(&self) -> Option<&FdqHeader> {
        match &self.dec {
            Dec::Fdq(d) => Some(d.header()),
            Dec::FrameData(_) => None,
        }
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// How the file ended (meaningful once [`LegacyReader::next_frame`] returned `None`).
    pub fn end(&self) -> &LegacyEnd {
        &self.end
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK.max(old), 0);
        let n = loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The next complete frame, or `None` at the end (see [`LegacyReader::end`]).
    pub fn next_frame(&mut self) -> io::Result<Option<&LegacyFrame>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if self.pos >= self.buf.len() && !self.fill()? {
                self.done = true;
                return Ok(None);
            }
            let rest = &self.buf[self.pos..];
            let r = match &mut self.dec {
                Dec::FrameData(d) => d.decode(rest, &mut self.frame),
                Dec::Fdq(d) => d.decode(rest, &mut self.frame),
            };
            match r {
                Ok(used) => {
                    self.pos += used;
                    return Ok(Some(&self.frame));
                }
                Err(LegacyError::Truncated) if !self.eof && rest.len() < MAX_LEGACY_FRAME => {
                    self.fill()?;
                }
                Err(LegacyError::Truncated) if self.eof => {
                    self.end = LegacyEnd::TornTail {
                        offset: self.offset(),
                        len: rest.len() as u64,
                    };
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => {
                    let offset = self.offset();
                    let (off_in, reason) = match e {
                        LegacyError::Invalid { offset, reason } => (offset as u64, reason),
                        LegacyError::Truncated => (0, "frame larger than 8 MiB".to_string()),
                        LegacyError::Unsupported(s) => (0, s),
                    };
                    // Count the bytes dropped to the end of the file.
                    let mut len = (self.buf.len() - self.pos) as u64;
                    self.pos = self.buf.len();
                    while self.fill()? {
                        len += self.buf.len() as u64;
                        self.pos = self.buf.len();
                    }
                    self.end = LegacyEnd::Invalid {
                        offset: offset + off_in,
                        len: len.saturating_sub(off_in),
                        reason,
                    };
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_609_488_000_123_456; // 2021-01-01T08:00:00.123456Z

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(
            parse_rfc3339_us("2021-01-01T08:00:00.123456+00:00"),
            Some(T0)
        );
        assert_eq!(parse_rfc3339_us("2021-01-01T08:00:00.123456Z"), Some(T0));
        assert_eq!(
            parse_rfc3339_us("2021-01-01T09:30:00.123456+01:30"),
            Some(T0)
        );
        assert_eq!(parse_rfc3339_us("2021-01-01T08:00:00Z"), Some(T0 - 123_456));
        assert_eq!(
            parse_rfc3339_us("2021-01-01T08:00:00.1Z"),
            Some(T0 - 23_456)
        );
        for bad in [
            "",
            "2021-01-01",
            "2021-02-30T00:00:00Z",
            "2021-01-01T08:00:00",
            "2021-01-01T08:00:00.Z",
            "2021-01-01T25:00:00Z",
            "1969-12-31T23:59:59Z",
            "2021-01-01T08:00:00+0100",
        ] {
            assert_eq!(parse_rfc3339_us(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339_us(&framedata_timestamp(T0)), Some(T0));
    }

    #[test]
    fn framedata_round_trip_with_torn_tail_and_gap() {
        let mut buf = Vec::new();
        encode_framedata_frame(&mut buf, FrameDataTime::Full(T0), 1, 2, &[900, 1000]);
        encode_framedata_frame(&mut buf, FrameDataTime::Delta(100_000), 0, 3, &[]);
        // 60 s gap, then a new full timestamp.
        encode_framedata_frame(
            &mut buf,
            FrameDataTime::Full(T0 + 60_200_000),
            0,
            0,
            &[70_000],
        );
        encode_framedata_frame(
            &mut buf,
            FrameDataTime::Delta(100_000),
            0,
            0,
            &[5, 4_000_000],
        );
        let good = buf.len();
        encode_framedata_frame(&mut buf, FrameDataTime::Delta(200_000), 0, 0, &[1, 2, 3]);
        for cut in good..buf.len() {
            let mut r = LegacyReader::framedata(&buf[..cut]);
            let mut got = Vec::new();
            while let Some(f) = r.next_frame().unwrap() {
                got.push((f.time_us, f.inflight, f.lost_rolling, f.rtts_us.clone()));
            }
            assert_eq!(
                got,
                vec![
                    (T0, 1, 2, vec![900, 1000]),
                    (T0 + 100_000, 0, 3, vec![]),
                    (T0 + 60_200_000, 0, 0, vec![70_000]),
                    (T0 + 60_300_000, 0, 0, vec![5, 4_000_000]),
                ]
            );
            if cut == good {
                assert_eq!(r.end(), &LegacyEnd::Clean);
            } else {
                assert_eq!(
                    r.end(),
                    &LegacyEnd::TornTail {
                        offset: good as u64,
                        len: (cut - good) as u64
                    }
                );
            }
        }
    }

    #[test]
    fn framedata_rejects_delta_first_and_reports_offset() {
        let mut buf = Vec::new();
        encode_framedata_frame(&mut buf, FrameDataTime::Full(T0), 0, 0, &[1]);
        let good = buf.len();
        buf.extend_from_slice(&[0x0a, 0x00, 0x00, 0xc1, 0x00]);
        let mut r = LegacyReader::framedata(&buf[..]);
        assert!(r.next_frame().unwrap().is_some());
        assert!(r.next_frame().unwrap().is_none());
        match r.end() {
            LegacyEnd::Invalid { offset, len, .. } => {
                assert_eq!(*offset, good as u64 + 3);
                assert_eq!(*len, 2);
            }
            e => panic!("{e:?}"),
        }
        let mut only_delta = Vec::new();
        encode_framedata_frame(&mut only_delta, FrameDataTime::Delta(5), 0, 0, &[]);
        assert!(matches!(
            FrameDataDecoder::new().decode(&only_delta, &mut LegacyFrame::default()),
            Err(LegacyError::Invalid { offset: 0, .. })
        ));
    }

    #[test]
    fn file_names() {
        let (a, t) = parse_framedata_name("pingd-log-192.168.1.1-20210101T08.log").unwrap();
        assert_eq!(a.to_string(), "192.168.1.1");
        assert_eq!(t, 1_609_488_000_000_000);
        let (a, _) = parse_framedata_name("pingd-log-2001:db8::1-20210101T23.log").unwrap();
        assert_eq!(a.to_string(), "2001:db8::1");
        for bad in [
            "pingd-log-192.168.1.1-20210101T24.log",
            "pingd-log-foo-20210101T08.log",
            "pingd-log-192.168.1.1-2021010108.log",
            "x.log",
        ] {
            assert!(parse_framedata_name(bad).is_none(), "{bad}");
        }
    }

    fn hdr(p: Option<f64>) -> FdqHeader {
        FdqHeader {
            version: 101,
            full_encode_secs: 15,
            recv_llq: p,
            delta_enc: false,
        }
    }

    #[test]
    fn fdq_header_validation() {
        let mut buf = Vec::new();
        encode_fdq_header(&mut buf, &hdr(Some(0.01)));
        assert_eq!(
            decode_fdq_header(&buf).unwrap(),
            (hdr(Some(0.01)), buf.len())
        );
        for cut in 0..buf.len() {
            assert_eq!(decode_fdq_header(&buf[..cut]), Err(LegacyError::Truncated));
        }
        let mut bad = Vec::new();
        encode_fdq_header(
            &mut bad,
            &FdqHeader {
                delta_enc: true,
                ..hdr(None)
            },
        );
        assert!(
            matches!(decode_fdq_header(&bad), Err(LegacyError::Unsupported(m)) if m.contains("delta_enc"))
        );
        let mut bad = Vec::new();
        encode_fdq_header(
            &mut bad,
            &FdqHeader {
                version: 102,
                ..hdr(None)
            },
        );
        assert!(
            matches!(decode_fdq_header(&bad), Err(LegacyError::Unsupported(m)) if m.contains("102"))
        );
        let mut other = Vec::new();
        rmp::encode::write_map_len(&mut other, 2).unwrap();
        rmp::encode::write_str(&mut other, "schema").unwrap();
        rmp::encode::write_str(&mut other, "Other").unwrap();
        rmp::encode::write_str(&mut other, "version").unwrap();
        rmp::encode::write_uint(&mut other, 1).unwrap();
        assert!(
            matches!(decode_fdq_header(&other), Err(LegacyError::Unsupported(m)) if m.contains("Other"))
        );
    }

    #[test]
    fn fdq_frames_decode_with_gaps_and_torn_tail() {
        let h = hdr(None);
        let mut buf = Vec::new();
        encode_fdq_header(&mut buf, &h);
        let v = [1000, 1100, 1200, 1300, 1400, 1500, 9000];
        let s0 = 1_609_488_000u64;
        encode_fdq_frame(
            &mut buf,
            &h,
            FdqTime::Full {
                unix_s: s0,
                ms: 250,
            },
            0,
            0,
            8,
            &v,
        );
        encode_fdq_frame(&mut buf, &h, FdqTime::Delta { ms: 100 }, 3, 7, 0, &[-1; 7]);
        encode_fdq_frame(&mut buf, &h, FdqTime::Delta { ms: 60_000 }, 0, 0, 1, &v);
        let good = buf.len();
        encode_fdq_frame(&mut buf, &h, FdqTime::Delta { ms: 100 }, 0, 0, 3, &v);
        let cut = buf.len() - 3;
        let mut r = LegacyReader::fdq(&buf[..cut]).unwrap();
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            got.push(f.clone());
        }
        assert_eq!(got.len(), 3);
        let t0 = s0 * 1_000_000 + 250_000;
        assert_eq!(got[0].time_us, t0);
        assert_eq!(got[0].replies, 8);
        assert_eq!(got[0].percentiles, Some(v));
        assert_eq!(
            got[0].rtts_us,
            vec![1000, 1100, 1200, 1300, 1300, 1400, 1500, 9000]
        );
        assert!(got[0].approximate);
        assert_eq!(
            (got[1].time_us, got[1].inflight, got[1].lost_rolling),
            (t0 + 100_000, 3, 7)
        );
        assert!(got[1].rtts_us.is_empty());
        assert_eq!(got[2].time_us, t0 + 60_100_000);
        assert_eq!(got[2].rtts_us, vec![1300]);
        assert_eq!(
            r.end(),
            &LegacyEnd::TornTail {
                offset: good as u64,
                len: (cut - good) as u64
            }
        );
    }

    #[test]
    fn fdq_minus_one_in_any_width() {
        let h = hdr(None);
        let mut buf = Vec::new();
        rmp::encode::write_uint(&mut buf, 1_600_000_000).unwrap();
        rmp::encode::write_uint(&mut buf, 5).unwrap();
        rmp::encode::write_i16(&mut buf, -1).unwrap();
        rmp::encode::write_uint(&mut buf, 0).unwrap();
        let mut f = LegacyFrame::default();
        let used = FdqDecoder::new(h.clone()).decode(&buf, &mut f).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!((f.inflight, f.lost_rolling, f.replies), (0, 0, 0));
        assert_eq!(f.time_us, 1_600_000_000_005_000);
        let mut bad = Vec::new();
        rmp::encode::write_uint(&mut bad, 1_600_000_000).unwrap();
        rmp::encode::write_uint(&mut bad, 5).unwrap();
        rmp::encode::write_sint(&mut bad, -2).unwrap();
        assert!(matches!(
            FdqDecoder::new(h).decode(&bad, &mut f),
            Err(LegacyError::Invalid { offset: 6, .. })
        ));
    }

    #[test]
    fn reconstruction_keeps_extremes_and_median() {
        let v = [10, 20, 30, 40, 50, 60, 70];
        let mut out = Vec::new();
        for n in 1..200u32 {
            assert!(reconstruct_rtts(&v, n, &mut out));
            assert_eq!(out.len(), n as usize);
            if n >= 2 {
                assert_eq!(out[0], 10);
                assert_eq!(out[n as usize - 1], 70);
            }
            if n >= 3 {
                let med = crate::summary::nearest_rank(&out, 0.5).unwrap();
                assert!((30..=50).contains(&med), "n {n} median {med}");
            }
        }
        assert!(!reconstruct_rtts(&[-1; 7], 3, &mut out));
        assert!(out.is_empty());
        assert!(reconstruct_rtts(&[-1, -1, -1, 5, -1, -1, -1], 3, &mut out));
        assert_eq!(out, vec![5, 5, 5]);
    }

    proptest! {
        #[test]
        fn llq_within_precision(v in -100_000_000i64..100_000_000, pi in 0usize..4) {
            let p = [0.001, 0.01, 0.05, 0.2][pi];
            let d = llq_decode(llq_encode(v, p), p);
            let err = (d - v).abs() as f64;
            prop_assert!(err <= v.abs() as f64 * p / 2.0 + 1.0, "p {} v {} decoded {}", p, v, d);
        }

        #[test]
        fn fdq_quantized_values_within_precision(
            mut vals in prop::array::uniform7(0i64..5_000_000),
            n in 1u32..50,
            pi in 0usize..3,
        ) {
            let p = [0.001, 0.01, 0.05][pi];
            vals.sort_unstable();
            let h = hdr(Some(p));
            let mut buf = Vec::new();
            encode_fdq_header(&mut buf, &h);
            encode_fdq_frame(&mut buf, &h, FdqTime::Full { unix_s: 1_600_000_000, ms: 1 }, 0, 0, n, &vals);
            let mut r = LegacyReader::fdq(&buf[..]).unwrap();
            let f = r.next_frame().unwrap().unwrap().clone();
            let got = f.percentiles.unwrap();
            for (g, v) in got.iter().zip(vals) {
                prop_assert!(((g - v).abs() as f64) <= v as f64 * p / 2.0 + 1.0, "{} vs {}", g, v);
            }
            prop_assert_eq!(f.rtts_us.len(), n as usize);
            prop_assert!(r.next_frame().unwrap().is_none());
            prop_assert_eq!(r.end(), &LegacyEnd::Clean);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut r = LegacyReader::framedata(&bytes[..]);
            while r.next_frame().unwrap().is_some() {}
            let _ = decode_fdq_header(&bytes);
            let mut d = FdqDecoder::new(hdr(Some(0.01)));
            let _ = d.decode(&bytes, &mut LegacyFrame::default());
        }
    }
}
