//! Frame files: segment headers, the append-only writer and the recovering reader.
//!
//! A file is a sequence of *segments*. Each segment is a header (a MessagePack map, see
//! [`SegmentHeader`]) followed by frames in the chained encoding of [`crate::codec`]. A
//! writer that starts (daemon restart, day rollover, address change, recovery after a
//! write error) always begins a new segment, so every run of frames is preceded by a
//! header saying which host, period and precision it belongs to, and nothing is ever
//! truncated or overwritten.
//!
//! The header's first key is always `schema` with the value `zzping-frames`; the bytes
//! [`SEGMENT_MAGIC`] therefore mark every segment start and let a reader skip garbage in
//! the middle of a file to the next segment.
//!
//! Reading is streaming (a bounded buffer, whatever the file size) and recovering: every
//! complete frame before a torn tail is returned and the torn bytes are reported as an
//! [`Issue`]; invalid bytes are skipped to the next segment header and reported with their
//! file and byte offset. Nothing here panics on bad input.

use crate::codec::{DecodeError, FrameDecoder, FrameEncoder, QFrame};
use crate::frame::Frame;
use crate::quantizer::{MAX_PRECISION, MIN_PRECISION, Quantizer};
use crate::store::layout;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Schema name in every segment header.
pub const SCHEMA: &str = "zzping-frames";
/// Current format version. Readers refuse segments with a higher version. Version 2 added
/// the optional per-frame error kinds and router (see [`crate::codec`]); version 1
/// segments are read as before.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes that follow the map marker at the start of every segment header:
/// fixstr(6) `schema`, fixstr(13) `zzping-frames`.
pub const SEGMENT_MAGIC: &[u8] = b"\xa6schema\xadzzping-frames";
/// Read buffer size of [`FileReader`].
const READ_CHUNK: usize = 256 * 1024;
/// Largest value (header or frame) a reader accepts, bytes.
const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Most issues a reader keeps per file; further ones are only counted.
pub(crate) const MAX_ISSUES: usize = 256;
/// Most quantizers a [`FileReader`] keeps (least recently used first out). Segments of a
/// file normally share one precision; a file of many distinct precisions costs at most
/// this many tables (up to 1.1 MB each at [`MIN_PRECISION`]), whatever its size.
pub const QUANTIZER_CACHE: usize = 4;
/// A writer buffer that cannot be written grows to at most this many bytes; beyond it,
/// buffered frames are dropped (and counted) and a new segment starts.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// The header at the start of every segment.
///
/// Encoded as a MessagePack map with string keys, in this order; `name`, `label` and
/// `role` are omitted when absent. Readers ignore keys they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Format version, [`FORMAT_VERSION`] when written by this library.
    pub version: u32,
    /// The host's address (IPv4 or IPv6, textual).
    pub host: String,
    /// The host's name as configured, if it was given as a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Frame period of this segment, µs.
    pub period_us: u32,
    /// Quantizer precision of this segment's RTT codes.
    pub precision: f64,
    /// When the segment was written, µs since the epoch.
    pub created_us: u64,
    /// Expected start of the segment's first frame, µs since the epoch (the chain base).
    pub base_us: u64,
    /// Program and version that wrote the segment, e.g. `zzping-daemon 0.1.0`.
    pub writer: String,
    /// The host's label as configured, when it is neither the address nor the name (a
    /// label such as `living room` whose directory name is an escape of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the host is to this machine's path to the internet (see [`role`]), when the
    /// writer knows it: `gateway`, `isp-edge`, `internet` or `self-check`. Other values
    /// may come from newer writers and mean nothing known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The documented values of [`SegmentHeader::role`] and [`HostInfo::role`].
pub mod role {
    /// A default gateway of this machine (the home router).
    pub const GATEWAY: &str = "gateway";
    /// The first hop beyond the home network: the ISP's edge router.
    pub const ISP_EDGE: &str = "isp-edge";
    /// A host on the internet beyond the ISP (e.g. a public anycast address).
    pub const INTERNET: &str = "internet";
    /// This machine itself (loopback): measures its own scheduling noise.
    pub const SELF_CHECK: &str = "self-check";
}

impl SegmentHeader {
    /// Appends the header's MessagePack encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // A map with string keys; writing into a Vec cannot fail.
        let _ = self.serialize(&mut rmp_serde::Serializer::new(&mut *out).with_struct_map());
    }

    /// Decodes a header from the start of `buf`; returns it and its length in bytes.
    pub fn decode(buf: &[u8]) -> Result<(SegmentHeader, usize), HeaderError> {
        let mut rd = buf;
        let header = SegmentHeader::deserialize(&mut rmp_serde::Deserializer::new(&mut rd))
            .map_err(|e| {
                let eof = match &e {
                    rmp_serde::decode::Error::InvalidMarkerRead(io)
                    | rmp_serde::decode::Error::InvalidDataRead(io) => {
                        io.kind() == io::ErrorKind::UnexpectedEof
                    }
                    _ => false,
                };
                if eof {
                    HeaderError::Truncated
                } else {
                    HeaderError::Invalid(e.to_string())
                }
            })?;
        let used = buf.len() - rd.len();
        if header.schema != SCHEMA {
            return Err(HeaderError::Invalid(format!(
                "schema is {:?}, expected {SCHEMA:?}",
                header.schema
            )));
        }
        if header.version > FORMAT_VERSION || header.version == 0 {
            return Err(HeaderError::Invalid(format!(
                "format version {} is not supported (this reader knows 1..={FORMAT_VERSION})",
                header.version
            )));
        }
        if !(crate::frame::MIN_PERIOD_US..=crate::frame::MAX_PERIOD_US).contains(&header.period_us)
        {
            return Err(HeaderError::Invalid(format!(
                "period_us {} is out of range",
                header.period_us
            )));
        }
        // NaN fails both comparisons, so it is refused too.
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&header.precision) {
            return Err(HeaderError::Invalid(format!(
                "precision {} is out of range ({MIN_PRECISION}..={MAX_PRECISION})",
                header.precision
            )));
        }
        Ok((header, used))
    }
}

/// A segment header could not be decoded.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum HeaderError {
    /// The bytes end inside the header.
    #[error("truncated segment header")]
    Truncated,
    /// The header is not valid.
    #[error("invalid segment header: {0}")]
    Invalid(String),
}

/// Errors of the file layer. Each names the file (and offset where one applies).
#[derive(Debug, Error)]
pub enum FileError {
    /// An I/O operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration given to a writer is invalid.
    #[error("invalid writer configuration: {0}")]
    Config(String),
}

impl FileError {
    /// An error constructor for `map_err` that copies `path` only if an error happens.
    pub(crate) fn io<'a>(
        path: &'a Path,
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> FileError + 'a {
        move |source| FileError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// Something wrong that a reader found and recovered from.
#[derive(Debug, Clone, PartialEq)]
pub enum Issue {
    /// The file ends inside a value: `len` torn bytes from `offset` (a crash mid-write).
    TornTail {
        /// Offset of the first torn byte.
        offset: u64,
        /// Number of torn bytes.
        len: u64,
    },
    /// `len` bytes from `offset` could not be decoded and were skipped to the next segment
    /// header (or the end of the file).
    Garbage {
        /// Offset of the first skipped byte.
        offset: u64,
        /// Number of skipped bytes.
        len: u64,
        /// Why decoding failed there.
        reason: String,
    },
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issue::TornTail { offset, len } => {
                write!(
                    f,
                    "torn tail: {len} bytes at byte {offset} (incomplete last frame)"
                )
            }
            Issue::Garbage {
                offset,
                len,
                reason,
            } => write!(
                f,
                "skipped {len} undecodable bytes at byte {offset}: {reason}"
            ),
        }
    }
}

/// Where a value starts relative to the next segment magic.
fn find_magic(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(buf.get(from..)?, SEGMENT_MAGIC).map(|i| i + from)
}

/// True when `b` is the MessagePack marker of a small map (a header's first byte).
pub(crate) fn is_fixmap(b: u8) -> bool {
    (0x80..=0x8f).contains(&b)
}

/// Bytes [`first_header`] looks at: a header is a few hundred bytes, and anything a
/// writer left before the first one (a torn fragment, garbage) is rarely longer.
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// The first valid segment header in the first 64 KiB of `path`, without reading the rest
/// of the file: `Ok(None)` when there is none there (an empty or damaged file).
pub fn first_header(path: &Path) -> Result<Option<SegmentHeader>, FileError> {
    let mut buf = Vec::with_capacity(4096);
    File::open(path)
        .and_then(|f| f.take(HEADER_PROBE_BYTES).read_to_end(&mut buf))
        .map_err(FileError::io(path, "read"))?;
    let mut from = 1;
    while let Some(m) = find_magic(&buf, from) {
        if is_fixmap(buf[m - 1])
            && let Ok((h, _)) = SegmentHeader::decode(&buf[m - 1..])
        {
            return Ok(Some(h));
        }
        from = m + 1;
    }
    Ok(None)
}

mod reader;
pub(crate) mod scan;
mod writer;

pub use reader::FileReader;
pub use writer::{HostInfo, HostWriter, WriterConfig, wall_clock_us};

#[cfg(test)]
mod tests;
