//! FrameDataQ (`.fdq`): the original tools' quantized format, 7 percentiles per frame.

use crate::{LegacyError, LegacyFrame, MAX_LEGACY_REPLIES, MAX_SKIP_DEPTH, invalid, uint};
use zzping_lib::msgpack::{self, Cursor};

/// Schema name of FrameDataQ headers.
pub const FDQ_SCHEMA: &str = "FDCodec";
/// Highest FrameDataQ version understood.
pub const FDQ_MAX_VERSION: u64 = 101;
/// Positions (quantiles) of the 7 FrameDataQ percentile values.
pub const FDQ_QUANTILES: [f64; 7] = [0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LegacyEnd, LegacyReader};
    use proptest::prelude::*;

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
                let med = zzping_lib::summary::nearest_rank(&out, 0.5).unwrap();
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
    }
}
