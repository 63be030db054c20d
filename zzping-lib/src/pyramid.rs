//! The zoom pyramid: summaries of a day file at fixed widths, persisted beside it.
//!
//! Levels are aligned to the Unix epoch and grow ×10: [`LEVEL_WIDTHS_US`] = 1 s, 10 s,
//! 100 s, 1,000 s, 10,000 s. Only buckets holding at least one frame are stored. Because
//! summaries merge exactly, every level equals what merging the raw frames would give, so
//! a viewer can switch levels without the picture changing.
//!
//! The levels from 10 s up are persisted in a sidecar `YYYY-MM-DD.zzs` next to
//! `YYYY-MM-DD.zzp` ([`PERSISTED_WIDTHS_US`]); the 1 s level is cheap to compute from raw
//! frames on demand (a 1600-pixel screen at 1 s per pixel is 16,000 frames) and would
//! double the disk use. A sidecar records the length of the frame file it was built from;
//! when the file has grown (or the sidecar is missing, corrupt or of another version) it
//! is *stale* and [`load_or_build`] rebuilds it from the raw frames.
//!
//! # Sizes
//! One day at 100 pings/s with 100 ms frames: 8,640 summaries at 10 s, 864 at 100 s, 87 at
//! 1,000 s and 9 at 10,000 s. A summary costs about 72 bytes in memory plus 8 bytes per
//! distinct RTT code (typically 50-200 at 10 s on a home network: a few hundred bytes to
//! 1.6 KB). The 10 s level of one host-day therefore takes roughly 3-15 MB in memory and
//! 1-5 MB on disk; the 100 s level a tenth of that. Memory per level is bounded by the
//! number of buckets per day times the number of codes (1,885 at p = 0.01).
//!
//! # Sidecar format
//! MessagePack: a header map `{"schema": "zzping-pyramid", "version": 2, "source_len":
//! uint, "precision": float, "widths_us": [uint...], "outages": [uint...]}` followed by
//! one array per summary:
//! `[level, bucket, frames, sent, received, lost, duplicates, late, errors, flags,
//! [code, count, code_delta, count, ...]]` where `bucket = start_us / width_us`, ordered by
//! level then time.
//!
//! `outages` is the outage index ([`DayPyramid::outages`]) built in the same pass over the
//! frames, flat and delta-coded: `[start_0, len_0, start_1 - end_0, len_1, ...]` (µs).
//! A sidecar without it (written before it was kept) is *outdated* and rebuilt like a
//! stale one.
//!
//! Segments of one day written with different precisions are re-quantized to the first
//! segment's precision (within both precisions' bounds; documented, rare).

use crate::codec::{DecodeError, QFrame};
use crate::file::{FileError, FileReader, Issue};
use crate::frame::Counts;
use crate::msgpack::Cursor;
use crate::outage::HostRuns;
use crate::quantizer::Quantizer;
use crate::summary::{DenseHistogram, Histogram, Summary};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Widths of the pyramid's levels, µs (×10 per level).
pub const LEVEL_WIDTHS_US: [u64; 5] = [
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
];
/// Widths persisted in sidecars (all but the finest).
pub const PERSISTED_WIDTHS_US: [u64; 4] = [10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000];
/// Schema name of sidecars.
pub const SIDECAR_SCHEMA: &str = "zzping-pyramid";
/// Sidecar format version (2: the outage index counts errors as failures; a version 1
/// sidecar is rebuilt).
pub const SIDECAR_VERSION: u32 = 2;
/// A sidecar is at most this many bytes plus [`SIDECAR_MAX_BYTES_PER_SOURCE_BYTE`] per byte
/// of its frame file (see [`max_sidecar_len`]).
pub const SIDECAR_MAX_FIXED_BYTES: u64 = 1 << 20;
/// Sidecar bytes allowed per byte of the frame file. A summary record costs at most 8
/// bytes per distinct RTT code (delta and count) and about 20 bytes of counters, in each
/// of the 4 persisted levels, while its frames took at least 1 byte per code and 4 per
/// frame; real sidecars are 0.1 to 7 times their frame file (the upper end at one ping
/// per 60 s frame).
pub const SIDECAR_MAX_BYTES_PER_SOURCE_BYTE: u64 = 32;

/// The largest sidecar accepted for (and written beside) a frame file of `source_len`
/// bytes: anything larger is not read (not even into memory) and is rebuilt.
pub fn max_sidecar_len(source_len: u64) -> u64 {
    SIDECAR_MAX_FIXED_BYTES
        .saturating_add(source_len.saturating_mul(SIDECAR_MAX_BYTES_PER_SOURCE_BYTE))
}

/// Reads and decodes the sidecar `side` of a frame file of `source_len` bytes, after
/// checking its size against [`max_sidecar_len`] (a sparse or runaway file is refused
/// before a byte is read). The outer error is the file's (missing, unreadable); the inner
/// one says why its contents cannot be used.
pub fn read_sidecar(
    side: &Path,
    source_len: u64,
) -> std::io::Result<Result<DayPyramid, SidecarError>> {
    use std::io::Read;
    let f = std::fs::File::open(side)?;
    let len = f.metadata()?.len();
    let max = max_sidecar_len(source_len);
    if len > max {
        return Ok(Err(SidecarError::TooLarge { len, max }));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // `take`: a file growing while it is read is still read within the bound.
    f.take(max).read_to_end(&mut buf)?;
    Ok(decode_sidecar(&buf))
}

/// True when every request of the frame failed, timed out or errored (an outage,
/// however short): [`crate::outage::failed_entirely`].
pub fn is_outage(f: &QFrame) -> bool {
    crate::outage::failed_entirely(f)
}

/// The outage index of a host's frames: the cores of its runs ([`HostRuns::cores`]),
/// sorted, those that overlap or touch merged. What a sidecar keeps, and what the viewer
/// shows of a live stream: one definition for both.
pub fn outage_index(runs: &HostRuns) -> Vec<(u64, u64)> {
    let mut outages: Vec<(u64, u64)> = runs.cores().collect();
    normalize_outages(&mut outages);
    outages
}

/// Sorts outage runs and merges those that overlap or touch (frames out of order).
fn normalize_outages(runs: &mut Vec<(u64, u64)>) {
    if runs.is_sorted() {
        return;
    }
    runs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
    for &(a, b) in runs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *runs = out;
}

/// One level: non-empty summaries of width `width_us`, ascending by start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Level {
    /// Width of each summary, µs.
    pub width_us: u64,
    /// The summaries, ascending by start.
    pub summaries: Vec<Summary>,
}

impl Level {
    /// Summaries overlapping `[from_us, to_us)`.
    pub fn range(&self, from_us: u64, to_us: u64) -> &[Summary] {
        let a = self.summaries.partition_point(|s| s.end_us() <= from_us);
        let b = self.summaries.partition_point(|s| s.start_us < to_us);
        &self.summaries[a..b.max(a)]
    }
}

/// The pyramid of one day file.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPyramid {
    /// Quantizer all summaries' codes refer to.
    pub quantizer: Arc<Quantizer>,
    /// Length of the frame file it was built from, bytes.
    pub source_len: u64,
    /// Levels, finest first.
    pub levels: Vec<Level>,
    /// Runs `[start, end)` of frames whose every request failed, ascending: the cores of
    /// the runs of [`crate::outage`]. Summaries cannot tell a 300 ms outage from the same
    /// number of pings lost here and there, so this small index (tens of bytes per
    /// outage) is kept beside them to mark every outage at every zoom.
    pub outages: Vec<(u64, u64)>,
    /// Problems found in the frame file while building.
    pub issues: Vec<Issue>,
}

impl DayPyramid {
    /// The level of width `width_us`, if present.
    pub fn level(&self, width_us: u64) -> Option<&Level> {
        self.levels.iter().find(|l| l.width_us == width_us)
    }
}

/// Accumulator for one bucket of one level.
struct Acc {
    start_us: u64,
    active: bool,
    frames: u32,
    counts: Counts,
    flags: u8,
    hist: DenseHistogram,
}

impl Acc {
    fn new(codes: u32) -> Self {
        Self {
            start_us: 0,
            active: false,
            frames: 0,
            counts: Counts::default(),
            flags: 0,
            hist: DenseHistogram::with_codes(codes),
        }
    }

    fn take(&mut self, width_us: u64) -> Summary {
        let s = Summary {
            start_us: self.start_us,
            width_us,
            frames: self.frames,
            counts: self.counts,
            flags: self.flags,
            hist: self.hist.take(),
        };
        self.active = false;
        self.frames = 0;
        self.counts = Counts::default();
        self.flags = 0;
        s
    }
}

/// Builds summaries at every level of `widths_us` (ascending, each a multiple of the
/// previous) from frames in time order. Frames out of order are tolerated: a frame that
/// falls before the current bucket starts a new summary for its own bucket, and summaries
/// are sorted and merged at the end.
pub struct PyramidBuilder {
    quantizer: Arc<Quantizer>,
    widths: Vec<u64>,
    accs: Vec<Acc>,
    levels: Vec<Vec<Summary>>,
    requant: Vec<u32>,
}

impl PyramidBuilder {
    /// A builder for `widths_us` with codes of `quantizer`.
    pub fn new(quantizer: Arc<Quantizer>, widths_us: &[u64]) -> Self {
        let n = quantizer.code_count();
        Self {
            accs: widths_us.iter().map(|_| Acc::new(n)).collect(),
            levels: widths_us.iter().map(|_| Vec::new()).collect(),
            widths: widths_us.to_vec(),
            quantizer,
            requant: Vec::new(),
        }
    }

    /// Adds a frame whose codes refer to `q` (re-quantized if `q` differs).
    pub fn add(&mut self, f: &QFrame, q: &Quantizer) {
        let bucket = f.start_us - f.start_us % self.widths[0];
        if self.accs[0].active && self.accs[0].start_us != bucket {
            self.close(0);
        }
        let same = *q == *self.quantizer;
        if !same {
            self.requant.clear();
            self.requant.extend(
                f.codes
                    .iter()
                    .map(|&c| self.quantizer.encode(q.decode_saturating(c))),
            );
        }
        let codes: &[u32] = if same { &f.codes } else { &self.requant };
        let limit = self.quantizer.code_count() - 1;
        let acc = &mut self.accs[0];
        if !acc.active {
            acc.active = true;
            acc.start_us = bucket;
        }
        acc.frames += 1;
        acc.counts.merge(&f.counts());
        acc.flags |= f.flags;
        for &c in codes {
            // Codes come from a decoder that checked them against the table.
            acc.hist.add(c.min(limit), 1);
        }
    }

    /// Closes level `i`'s current bucket and feeds it to level `i + 1`.
    fn close(&mut self, i: usize) {
        let s = self.accs[i].take(self.widths[i]);
        if let Some(w) = self.widths.get(i + 1).copied() {
            let bucket = s.start_us - s.start_us % w;
            if self.accs[i + 1].active && self.accs[i + 1].start_us != bucket {
                self.close(i + 1);
            }
            let up = &mut self.accs[i + 1];
            if !up.active {
                up.active = true;
                up.start_us = bucket;
            }
            up.frames += s.frames;
            up.counts.merge(&s.counts);
            up.flags |= s.flags;
            up.hist.add_histogram(&s.hist);
        }
        self.levels[i].push(s);
    }

    /// Finishes every level.
    pub fn finish(mut self) -> (Arc<Quantizer>, Vec<Level>) {
        for i in 0..self.widths.len() {
            if self.accs[i].active {
                self.close(i);
            }
        }
        let levels = self
            .levels
            .into_iter()
            .zip(&self.widths)
            .map(|(mut v, &w)| {
                // Merge duplicates from out-of-order input.
                v.sort_by_key(|s| s.start_us);
                let mut out: Vec<Summary> = Vec::with_capacity(v.len());
                for s in v {
                    match out.last_mut() {
                        Some(last) if last.start_us == s.start_us => last.merge(&s),
                        _ => out.push(s),
                    }
                }
                Level {
                    width_us: w,
                    summaries: out,
                }
            })
            .collect();
        (self.quantizer, levels)
    }
}

/// Builds the pyramid of a frame file at `widths_us` from its raw frames.
pub fn build(frame_file: &Path, widths_us: &[u64]) -> Result<DayPyramid, FileError> {
    let source_len = std::fs::metadata(frame_file)
        .map_err(FileError::io(frame_file, "stat"))?
        .len();
    let mut r = FileReader::open(frame_file)?;
    let mut builder: Option<PyramidBuilder> = None;
    let mut runs = HostRuns::cores_only();
    while r.next_frame()?.is_some() {
        let (Some(f), Some(q)) = (r.last_frame(), r.quantizer()) else {
            continue;
        };
        runs.add(f);
        builder
            .get_or_insert_with(|| PyramidBuilder::new(q.clone(), widths_us))
            .add(f, q);
    }
    let issues = r.issues().to_vec();
    let (quantizer, levels) = match builder {
        Some(b) => b.finish(),
        None => (
            Arc::new(Quantizer::default()),
            widths_us
                .iter()
                .map(|&w| Level {
                    width_us: w,
                    summaries: Vec::new(),
                })
                .collect(),
        ),
    };
    let outages = outage_index(&runs);
    Ok(DayPyramid {
        quantizer,
        source_len,
        levels,
        outages,
        issues,
    })
}

#[derive(Serialize, Deserialize)]
struct SidecarHeader {
    schema: String,
    version: u32,
    source_len: u64,
    precision: f64,
    widths_us: Vec<u64>,
    /// The outage runs, flat: `[start_0, len_0, start_1 - end_0, len_1, ...]` (µs).
    /// Absent in sidecars of versions before the index was kept: those are outdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outages: Option<Vec<u64>>,
}

/// Encodes the persisted levels of `p` as a sidecar.
pub fn encode_sidecar(p: &DayPyramid) -> Vec<u8> {
    let levels: Vec<&Level> = p
        .levels
        .iter()
        .filter(|l| PERSISTED_WIDTHS_US.contains(&l.width_us))
        .collect();
    let header = SidecarHeader {
        schema: SIDECAR_SCHEMA.into(),
        version: SIDECAR_VERSION,
        source_len: p.source_len,
        precision: p.quantizer.precision(),
        widths_us: levels.iter().map(|l| l.width_us).collect(),
        outages: Some(encode_outages(&p.outages)),
    };
    let mut out = Vec::new();
    let _ = header.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map());
    for (li, l) in levels.iter().enumerate() {
        for s in &l.summaries {
            let c = &s.counts;
            let _ = rmp::encode::write_array_len(&mut out, 11);
            for v in [
                li as u64,
                s.start_us / l.width_us,
                u64::from(s.frames),
                u64::from(c.sent),
                u64::from(c.received),
                u64::from(c.lost),
                u64::from(c.duplicates),
                u64::from(c.late),
                u64::from(c.errors),
                u64::from(s.flags),
            ] {
                let _ = rmp::encode::write_uint(&mut out, v);
            }
            let e = s.hist.entries();
            let _ = rmp::encode::write_array_len(&mut out, 2 * e.len() as u32);
            let mut prev = 0;
            for (i, &(code, n)) in e.iter().enumerate() {
                let d = if i == 0 { code } else { code - prev };
                let _ = rmp::encode::write_uint(&mut out, u64::from(d));
                let _ = rmp::encode::write_uint(&mut out, u64::from(n));
                prev = code;
            }
        }
    }
    out
}

/// The flat, delta-coded form of outage runs (see [`SidecarHeader::outages`]).
fn encode_outages(runs: &[(u64, u64)]) -> Vec<u64> {
    let mut out = Vec::with_capacity(2 * runs.len());
    let mut prev_end = 0;
    for &(a, b) in runs {
        out.push(a.saturating_sub(prev_end));
        out.push(b.saturating_sub(a));
        prev_end = b;
    }
    out
}

/// Inverse of [`encode_outages`]; `None` when the list is malformed.
fn decode_outages(flat: &[u64]) -> Option<Vec<(u64, u64)>> {
    if flat.len() % 2 != 0 {
        return None;
    }
    let mut runs = Vec::with_capacity(flat.len() / 2);
    let mut prev_end = 0u64;
    for pair in flat.chunks_exact(2) {
        let a = prev_end.checked_add(pair[0])?;
        let b = a.checked_add(pair[1])?;
        runs.push((a, b));
        prev_end = b;
    }
    Some(runs)
}

/// Why a sidecar could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarError {
    /// Header missing or of another schema/version.
    #[error("sidecar header: {0}")]
    Header(String),
    /// Valid, but written before the outage index was kept in sidecars.
    #[error("sidecar written by an older version (no outage index)")]
    Outdated,
    /// The sidecar is larger than any sidecar of its frame file can be
    /// ([`max_sidecar_len`]); it was not read.
    #[error("sidecar of {len} bytes is larger than the {max} bytes its frame file allows")]
    TooLarge {
        /// The sidecar's size.
        len: u64,
        /// The most its frame file allows.
        max: u64,
    },
    /// A summary record is invalid.
    #[error("sidecar record at byte {offset}: {reason}")]
    Record {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
}

/// Decodes a sidecar.
pub fn decode_sidecar(buf: &[u8]) -> Result<DayPyramid, SidecarError> {
    let mut rd = buf;
    let h = SidecarHeader::deserialize(&mut rmp_serde::Deserializer::new(&mut rd))
        .map_err(|e| SidecarError::Header(e.to_string()))?;
    if h.schema != SIDECAR_SCHEMA || h.version != SIDECAR_VERSION {
        return Err(SidecarError::Header(format!(
            "schema {:?} version {} (expected {SIDECAR_SCHEMA:?} {SIDECAR_VERSION})",
            h.schema, h.version
        )));
    }
    if h.widths_us.contains(&0) {
        return Err(SidecarError::Header("zero level width".into()));
    }
    let outages = decode_outages(h.outages.as_deref().ok_or(SidecarError::Outdated)?)
        .ok_or_else(|| SidecarError::Header("malformed outage index".into()))?;
    let q = Quantizer::new(h.precision).map_err(|e| SidecarError::Header(e.to_string()))?;
    let mut levels: Vec<Level> = h
        .widths_us
        .iter()
        .map(|&w| Level {
            width_us: w,
            summaries: Vec::new(),
        })
        .collect();
    let mut cur = Cursor::at(buf, buf.len() - rd.len());
    let bad = |offset: usize, e: DecodeError| SidecarError::Record {
        offset,
        reason: e.to_string(),
    };
    while !cur.at_end() {
        let at = cur.pos();
        let n = cur.array_len().map_err(|e| bad(at, e.into()))?;
        if n != 11 {
            return Err(bad(
                at,
                DecodeError::Invalid {
                    offset: 0,
                    reason: "expected 11 fields",
                },
            ));
        }
        let mut f = [0u64; 10];
        for v in f.iter_mut() {
            let x = cur.i64().map_err(|e| bad(at, e.into()))?;
            *v = u64::try_from(x).map_err(|_| {
                bad(
                    at,
                    DecodeError::Invalid {
                        offset: 0,
                        reason: "negative field",
                    },
                )
            })?;
        }
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let li = f[0] as usize;
        let Some(level) = levels.get_mut(li) else {
            return Err(bad(
                at,
                DecodeError::Invalid {
                    offset: 0,
                    reason: "unknown level",
                },
            ));
        };
        let m = cur.array_len().map_err(|e| bad(at, e.into()))?;
        if m % 2 != 0 || m / 2 > q.code_count() as usize {
            return Err(bad(
                at,
                DecodeError::Invalid {
                    offset: 0,
                    reason: "bad histogram length",
                },
            ));
        }
        let mut entries = Vec::with_capacity(m / 2);
        let mut prev = 0u64;
        for i in 0..m / 2 {
            let d = cur.u32().map_err(|e| bad(at, e.into()))?;
            let n = cur.u32().map_err(|e| bad(at, e.into()))?;
            let code = if i == 0 {
                u64::from(d)
            } else {
                prev + u64::from(d)
            };
            if code >= u64::from(q.code_count()) || (i > 0 && d == 0) || n == 0 {
                return Err(bad(
                    at,
                    DecodeError::Invalid {
                        offset: 0,
                        reason: "bad histogram entry",
                    },
                ));
            }
            entries.push((code as u32, n));
            prev = code;
        }
        let start_us = f[1].checked_mul(level.width_us).ok_or_else(|| {
            bad(
                at,
                DecodeError::Invalid {
                    offset: 0,
                    reason: "bucket out of range",
                },
            )
        })?;
        level.summaries.push(Summary {
            start_us,
            width_us: level.width_us,
            frames: small(f[2]),
            counts: Counts {
                sent: small(f[3]),
                received: small(f[4]),
                lost: small(f[5]),
                duplicates: small(f[6]),
                late: small(f[7]),
                errors: small(f[8]),
            },
            flags: f[9] as u8,
            hist: Histogram::from_entries(entries).expect("checked ascending and non-zero"),
        });
    }
    for l in &levels {
        if !l
            .summaries
            .windows(2)
            .all(|w| w[0].start_us < w[1].start_us)
        {
            return Err(SidecarError::Header("summaries out of order".into()));
        }
    }
    Ok(DayPyramid {
        quantizer: Arc::new(q),
        source_len: h.source_len,
        levels,
        outages,
        issues: Vec::new(),
    })
}

/// How [`load_or_build`] got its pyramid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// The sidecar was present and matched the frame file.
    Fresh,
    /// The sidecar was missing, stale or unreadable (the reason) and was rebuilt.
    Rebuilt(String),
}

/// Loads the sidecar of `frame_file` if it is fresh; otherwise rebuilds the persisted
/// levels from raw frames and, when `persist`, rewrites the sidecar (atomically, via a
/// temporary file and a rename; a sidecar is derived data, so replacing it is safe).
pub fn load_or_build(
    frame_file: &Path,
    persist: bool,
) -> Result<(DayPyramid, Freshness), FileError> {
    let side = crate::store::layout::sidecar_path(frame_file);
    let len = std::fs::metadata(frame_file)
        .map_err(FileError::io(frame_file, "stat"))?
        .len();
    let reason = match read_sidecar(&side, len) {
        Ok(r) => match r {
            Ok(p) if p.source_len == len => return Ok((p, Freshness::Fresh)),
            Ok(p) => format!("stale: built from {} bytes, file has {len}", p.source_len),
            Err(SidecarError::Outdated) => format!("outdated: {}", SidecarError::Outdated),
            Err(e) => format!("unreadable: {e}"),
        },
        Err(e) => format!("missing: {e}"),
    };
    let p = build(frame_file, &PERSISTED_WIDTHS_US)?;
    let bytes = encode_sidecar(&p);
    if persist && (bytes.len() as u64) > max_sidecar_len(len) {
        // Never read back: not worth writing, and the old one must not stay either.
        let _ = std::fs::remove_file(&side);
    } else if persist {
        let tmp = side.with_extension(format!("{}.tmp", crate::store::layout::SIDECAR_EXT));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &side)
        };
        write().map_err(FileError::io(&side, "write sidecar"))?;
    }
    Ok((p, Freshness::Rebuilt(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{HostInfo, HostWriter, WriterConfig};
    use crate::frame::Frame;
    use crate::store::layout::{day_file, sidecar_path};
    use proptest::prelude::*;
    use std::path::PathBuf;

    const T0: u64 = 20_000 * crate::time::US_PER_DAY + 3_600_000_000;

    fn write(dir: &Path, frames: &[Frame]) -> PathBuf {
        let mut w = HostWriter::open(
            dir,
            HostInfo {
                label: "h".into(),
                address: "198.18.0.2".parse().unwrap(),
                name: None,
                role: None,
            },
            WriterConfig {
                period_us: 100_000,
                precision: 0.01,
                writer: "t".into(),
            },
        )
        .unwrap();
        for f in frames {
            w.append(f).unwrap();
        }
        w.sync().unwrap();
        day_file(&dir.join("h"), T0)
    }

    fn frames(raw: &[(u64, Vec<u32>, u32)]) -> Vec<Frame> {
        raw.iter()
            .map(|(slot, rtts, lost)| {
                let mut f = Frame::new(T0 + slot * 100_000, 100_000);
                f.rtts_us = rtts.clone();
                f.lost = *lost;
                f.sent = rtts.len() as u32 + lost;
                f
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_level_matches_raw(
            raw in prop::collection::vec((0u64..3_000, prop::collection::vec(100u32..500_000, 0..12), 0u32..3), 1..200),
            pct in 0.0f64..=100.0,
        ) {
            let mut raw = raw;
            raw.sort_by_key(|r| r.0);
            raw.dedup_by_key(|r| r.0);
            let dir = tempfile::tempdir().unwrap();
            let fr = frames(&raw);
            let path = write(dir.path(), &fr);
            let p = build(&path, &LEVEL_WIDTHS_US).unwrap();
            let q = p.quantizer.clone();
            for level in &p.levels {
                // Each summary equals the raw frames of its span.
                for s in &level.summaries {
                    let mut rtts: Vec<u32> = fr.iter()
                        .filter(|f| f.start_us >= s.start_us && f.start_us < s.end_us())
                        .flat_map(|f| f.rtts_us.iter().copied()).collect();
                    rtts.sort_unstable();
                    let lost: u32 = fr.iter()
                        .filter(|f| f.start_us >= s.start_us && f.start_us < s.end_us())
                        .map(|f| f.lost).sum();
                    prop_assert_eq!(s.counts.lost, lost);
                    prop_assert_eq!(s.counts.received as usize, rtts.len());
                    let exact = zzping_testkit::oracle::nearest_rank_by_definition(&rtts, pct / 100.0);
                    if let (Some(e), Some(g)) = (exact, s.percentile_us(&q, pct)) {
                        prop_assert!((f64::from(g) - f64::from(e)).abs() <= 0.005 * f64::from(e) * (1.0 + 1e-12));
                    } else {
                        prop_assert!(rtts.is_empty());
                    }
                }
                let total: u32 = level.summaries.iter().map(|s| s.counts.sent).sum();
                prop_assert_eq!(total, fr.iter().map(|f| f.sent).sum::<u32>());
            }
            // Persisted levels survive the sidecar round trip.
            let (loaded, fresh) = load_or_build(&path, true).unwrap();
            prop_assert!(matches!(fresh, Freshness::Rebuilt(_)));
            let (again, fresh) = load_or_build(&path, true).unwrap();
            prop_assert_eq!(fresh, Freshness::Fresh);
            let side_len = std::fs::metadata(sidecar_path(&path)).unwrap().len();
            let file_len = std::fs::metadata(&path).unwrap().len();
            prop_assert!(side_len <= max_sidecar_len(file_len));
            // The per-byte allowance alone covers it (the fixed part is a margin).
            prop_assert!(side_len <= 500 + file_len * SIDECAR_MAX_BYTES_PER_SOURCE_BYTE);
            prop_assert_eq!(&again.levels, &loaded.levels);
            for l in &again.levels {
                prop_assert_eq!(Some(l), p.level(l.width_us));
            }
            // The outage index: runs of frames with every request lost, ended by a frame
            // with a reply or by more than MAX_SKIPPED_US without a frame (frames without
            // a request are no frames).
            let mut want: Vec<(u64, u64)> = Vec::new();
            let (mut prev_end, mut prev_whole) = (None::<u64>, false);
            for f in fr.iter().filter(|f| !f.rtts_us.is_empty() || f.lost > 0) {
                let end = f.start_us + 100_000;
                let continues = prev_end
                    .is_some_and(|e| f.start_us - e <= crate::outage::MAX_SKIPPED_US);
                let whole = f.rtts_us.is_empty();
                if whole {
                    match want.last_mut() {
                        Some(last) if continues && prev_whole => last.1 = end,
                        _ => want.push((f.start_us, end)),
                    }
                }
                (prev_end, prev_whole) = (Some(end), whole);
            }
            prop_assert_eq!(&p.outages, &want);
            prop_assert_eq!(&again.outages, &want);
        }

        #[test]
        fn corrupt_sidecars_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_sidecar(&bytes);
        }
    }

    #[test]
    fn stale_sidecar_is_rebuilt_after_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &frames(&[(0, vec![1000], 0), (1, vec![2000], 1)]),
        );
        let (a, _) = load_or_build(&path, true).unwrap();
        assert_eq!(a.levels[0].summaries[0].counts.sent, 3);
        write(dir.path(), &frames(&[(2, vec![3000], 0)]));
        let (b, fresh) = load_or_build(&path, true).unwrap();
        assert!(
            matches!(fresh, Freshness::Rebuilt(ref r) if r.starts_with("stale")),
            "{fresh:?}"
        );
        assert_eq!(b.levels[0].summaries[0].counts.sent, 4);
        std::fs::write(sidecar_path(&path), b"garbage").unwrap();
        let (_, fresh) = load_or_build(&path, false).unwrap();
        assert!(matches!(fresh, Freshness::Rebuilt(ref r) if r.starts_with("unreadable")));
    }

    #[test]
    fn a_huge_sparse_sidecar_is_refused_unread_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &frames(&[(0, vec![1000], 0)]));
        let len = std::fs::metadata(&path).unwrap().len();
        let side = sidecar_path(&path);
        // 1.5 GB of holes: reading it would cost 1.5 GB of memory.
        let huge = 1_500_000_000;
        std::fs::File::create(&side).unwrap().set_len(huge).unwrap();
        match read_sidecar(&side, len).unwrap() {
            Err(SidecarError::TooLarge { len: l, max }) => {
                assert_eq!((l, max), (huge, max_sidecar_len(len)));
            }
            other => panic!("{other:?}"),
        }
        let (p, fresh) = load_or_build(&path, true).unwrap();
        assert!(
            matches!(fresh, Freshness::Rebuilt(ref r) if r.contains("larger than")),
            "{fresh:?}"
        );
        assert_eq!(p.levels[0].summaries.len(), 1);
        assert!(std::fs::metadata(&side).unwrap().len() < 1000);
        assert_eq!(load_or_build(&path, false).unwrap().1, Freshness::Fresh);
    }

    #[test]
    fn a_sidecar_without_the_outage_index_is_outdated_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &frames(&[(0, vec![1000], 0), (1, vec![], 4), (2, vec![], 2)]),
        );
        let (p, _) = load_or_build(&path, true).unwrap();
        assert_eq!(p.outages, vec![(T0 + 100_000, T0 + 300_000)]);
        // What an older version wrote: the same sidecar without the `outages` key.
        let header = SidecarHeader {
            schema: SIDECAR_SCHEMA.into(),
            version: SIDECAR_VERSION,
            source_len: p.source_len,
            precision: p.quantizer.precision(),
            widths_us: PERSISTED_WIDTHS_US.to_vec(),
            outages: None,
        };
        let mut old = Vec::new();
        header
            .serialize(&mut rmp_serde::Serializer::new(&mut old).with_struct_map())
            .unwrap();
        let new = encode_sidecar(&p);
        let mut rd = &new[..];
        SidecarHeader::deserialize(&mut rmp_serde::Deserializer::new(&mut rd)).unwrap();
        old.extend_from_slice(rd);
        assert_eq!(decode_sidecar(&old), Err(SidecarError::Outdated));
        std::fs::write(sidecar_path(&path), &old).unwrap();
        let (again, fresh) = load_or_build(&path, true).unwrap();
        assert!(
            matches!(fresh, Freshness::Rebuilt(ref r) if r.starts_with("outdated")),
            "{fresh:?}"
        );
        assert_eq!(again.outages, p.outages);
        assert_eq!(load_or_build(&path, true).unwrap().1, Freshness::Fresh);
        // A malformed index is refused, not misread.
        assert_eq!(decode_outages(&[1, 2, 3]), None);
        assert_eq!(decode_outages(&[u64::MAX, 2]), None);
        assert_eq!(
            decode_outages(&encode_outages(&[(5, 9), (9, 12), (20, 21)])),
            Some(vec![(5, 9), (9, 12), (20, 21)])
        );
    }

    #[test]
    fn errors_are_failures_in_the_outage_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut fr = frames(&[
            (0, vec![1000], 0),
            (1, vec![], 0),
            (2, vec![], 1),
            (3, vec![900], 0),
        ]);
        // Slot 1: two requests, both drew "host unreachable"; slot 2 one timeout.
        fr[1].sent = 2;
        fr[1].errors = 2;
        fr[1]
            .error_kinds
            .add(crate::frame::ErrorKind::HostUnreachable, 2);
        let path = write(dir.path(), &fr);
        let p = build(&path, &PERSISTED_WIDTHS_US).unwrap();
        assert_eq!(p.outages, vec![(T0 + 100_000, T0 + 300_000)]);
    }

    #[test]
    fn level_range_selects_overlaps() {
        let l = Level {
            width_us: 10,
            summaries: (0..5).map(|i| Summary::new(i * 10, 10)).collect(),
        };
        assert_eq!(l.range(15, 31).len(), 3);
        assert_eq!(l.range(50, 60).len(), 0);
        assert_eq!(l.range(0, 1).len(), 1);
    }
}
