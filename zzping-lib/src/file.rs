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
const MAX_ISSUES: usize = 256;
/// Most quantizers a [`FileReader`] keeps (least recently used first out). Segments of a
/// file normally share one precision; a file of many distinct precisions costs at most
/// this many tables (up to 1.1 MB each at [`MIN_PRECISION`]), whatever its size.
pub const QUANTIZER_CACHE: usize = 4;
/// A writer buffer that cannot be written grows to at most this many bytes; beyond it,
/// buffered frames are dropped (and counted) and a new segment starts.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// The header at the start of every segment.
///
/// Encoded as a MessagePack map with string keys, in this order; `name` is omitted when
/// absent. Readers ignore keys they do not know.
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
fn is_fixmap(b: u8) -> bool {
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

/// A segment currently being read.
struct Segment {
    header: Arc<SegmentHeader>,
    quantizer: Arc<Quantizer>,
    decoder: FrameDecoder,
}

/// Streaming reader of one frame file. See the module docs.
///
/// ```no_run
/// # use zzping_lib::file::FileReader;
/// let mut r = FileReader::open("data/gateway/2026-11-22.zzp").unwrap();
/// while let Some(frame) = r.next_frame().unwrap() {
///     println!("{} sent {}", frame.start_us, frame.sent);
/// }
/// for issue in r.issues() { eprintln!("{}: {issue}", r.path().display()); }
/// ```
pub struct FileReader<R = File> {
    path: PathBuf,
    src: R,
    buf: Vec<u8>,
    /// Position of the next unread byte in `buf`.
    pos: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    eof: bool,
    segment: Option<Segment>,
    frame: QFrame,
    issues: Vec<Issue>,
    issue_count: u64,
    /// Quantizers of the segments read, most recently used last (at most
    /// [`QUANTIZER_CACHE`]).
    quantizers: Vec<Arc<Quantizer>>,
    segments_seen: u64,
    /// Cached result of the search for the next segment magic in `buf`: `None` when not
    /// searched since the buffer last changed, `Some(None)` when there is none.
    next_magic: Option<Option<usize>>,
}

impl FileReader<File> {
    /// Opens `path` for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let f = File::open(path).map_err(FileError::io(path, "open"))?;
        Ok(Self::new(path.to_path_buf(), f))
    }
}

impl<R: Read> FileReader<R> {
    /// A reader over any byte source; `path` is used in errors and issues.
    pub fn new(path: PathBuf, src: R) -> Self {
        Self {
            path,
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            buf_offset: 0,
            eof: false,
            segment: None,
            frame: QFrame::default(),
            issues: Vec::new(),
            issue_count: 0,
            quantizers: Vec::with_capacity(QUANTIZER_CACHE),
            segments_seen: 0,
            next_magic: None,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Header of the segment the last frame came from.
    pub fn header(&self) -> Option<&Arc<SegmentHeader>> {
        self.segment.as_ref().map(|s| &s.header)
    }

    /// Quantizer of the segment the last frame came from.
    pub fn quantizer(&self) -> Option<&Arc<Quantizer>> {
        self.segment.as_ref().map(|s| &s.quantizer)
    }

    /// Problems found so far (at most 256 kept; see [`FileReader::issue_count`]).
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Number of problems found so far.
    pub fn issue_count(&self) -> u64 {
        self.issue_count
    }

    /// Number of segment headers read so far.
    pub fn segments_seen(&self) -> u64 {
        self.segments_seen
    }

    /// The frame returned by the last successful [`FileReader::next_frame`].
    pub fn last_frame(&self) -> Option<&QFrame> {
        self.segment.as_ref().map(|_| &self.frame)
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    fn issue(&mut self, issue: Issue) {
        self.issue_count += 1;
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(issue);
        }
    }

    /// Reads more bytes, compacting the buffer; returns false at end of file.
    fn fill(&mut self) -> Result<bool, FileError> {
        if self.eof {
            return Ok(false);
        }
        self.next_magic = None;
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        let want = READ_CHUNK.max(old);
        self.buf.resize(old + want, 0);
        let n = loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(FileError::io(&self.path, "read")(e));
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// The quantizer of `precision` (valid: [`SegmentHeader::decode`] checked it), from
    /// the cache or built, evicting the least recently used one.
    fn quantizer_for(&mut self, precision: f64) -> Option<Arc<Quantizer>> {
        let bits = precision.to_bits();
        if let Some(i) = self
            .quantizers
            .iter()
            .position(|q| q.precision().to_bits() == bits)
        {
            let q = self.quantizers.remove(i);
            self.quantizers.push(q.clone());
            return Some(q);
        }
        let q = Arc::new(Quantizer::new(precision).ok()?);
        if self.quantizers.len() >= QUANTIZER_CACHE {
            self.quantizers.remove(0);
        }
        self.quantizers.push(q.clone());
        Some(q)
    }

    /// Skips from `self.pos` to the next segment start (or the end), reporting the skipped
    /// bytes as garbage.
    fn skip_to_next_segment(&mut self, reason: String) -> Result<(), FileError> {
        let start = self.offset();
        self.segment = None;
        loop {
            // A segment starts one byte before the magic, and strictly after `start`: the
            // bytes at `start` may be an invalid header whose own magic must not be found
            // again (that would loop forever).
            let min_magic = (start + 2).saturating_sub(self.buf_offset) as usize;
            let search_from = (self.pos + 1).max(min_magic);
            if let Some(m) = find_magic(&self.buf, search_from)
                && m >= 1
                && is_fixmap(self.buf[m - 1])
            {
                self.pos = m - 1;
                break;
            } else if let Some(m) = find_magic(&self.buf, search_from) {
                // Magic without a map marker before it: not a header; keep looking after it.
                self.pos = m;
                continue;
            }
            // Keep the last bytes in case the magic straddles the buffer end.
            let keep = SEGMENT_MAGIC.len();
            self.pos = self.buf.len().saturating_sub(keep).max(self.pos);
            if !self.fill()? {
                self.pos = self.buf.len();
                break;
            }
        }
        let len = self.offset() - start;
        if len > 0 {
            self.issue(Issue::Garbage {
                offset: start,
                len,
                reason,
            });
        }
        Ok(())
    }

    /// Returns the next frame, or `None` at the end of the file. Problems in the data
    /// (torn tails, garbage, invalid segment headers: their segment is skipped) are
    /// recovered from and recorded in [`FileReader::issues`]; only I/O errors are returned
    /// as errors.
    pub fn next_frame(&mut self) -> Result<Option<&QFrame>, FileError> {
        loop {
            if self.pos >= self.buf.len() && !self.fill()? {
                return Ok(None);
            }
            let rest = &self.buf[self.pos..];
            let at = self.offset();
            if is_fixmap(rest[0]) {
                // A segment header, or garbage. Like a frame, a header never spans the
                // next segment start (its own magic is at +1; look from +2).
                let limit = find_magic(rest, 2).map_or(rest.len(), |m| m - 1);
                match SegmentHeader::decode(&rest[..limit]) {
                    Ok((header, used)) => {
                        let Some(q) = self.quantizer_for(header.precision) else {
                            self.skip_to_next_segment(format!(
                                "invalid precision {}",
                                header.precision
                            ))?;
                            continue;
                        };
                        let decoder =
                            FrameDecoder::new(header.base_us, header.period_us, q.code_count());
                        self.segment = Some(Segment {
                            header: Arc::new(header),
                            quantizer: q,
                            decoder,
                        });
                        self.segments_seen += 1;
                        self.pos += used;
                        continue;
                    }
                    Err(HeaderError::Truncated) if limit < rest.len() => {
                        self.skip_to_next_segment(
                            "segment header cut short by the next segment".into(),
                        )?;
                        continue;
                    }
                    Err(HeaderError::Truncated) if !self.eof && rest.len() < MAX_VALUE_LEN => {
                        self.fill()?;
                        continue;
                    }
                    Err(HeaderError::Truncated) => {
                        let len = rest.len() as u64;
                        self.issue(Issue::TornTail { offset: at, len });
                        self.pos = self.buf.len();
                        continue;
                    }
                    Err(HeaderError::Invalid(reason)) => {
                        self.skip_to_next_segment(reason)?;
                        continue;
                    }
                }
            }
            let Some(seg) = self.segment.as_mut() else {
                self.skip_to_next_segment("data before any segment header".into())?;
                continue;
            };
            // A frame never spans a segment start.
            let pos = self.pos;
            let magic = match self.next_magic {
                Some(m) if m.is_none_or(|i| i > pos) => m,
                _ => {
                    let m = find_magic(&self.buf, pos + 1);
                    self.next_magic = Some(m);
                    m
                }
            };
            let limit = magic.map_or(rest.len(), |m| m - 1 - pos);
            let mut trial = seg.decoder.clone();
            match trial.decode(&rest[..limit], &mut self.frame) {
                Ok(used) => {
                    seg.decoder = trial;
                    self.pos += used;
                    return Ok(Some(&self.frame));
                }
                Err(DecodeError::Truncated) if limit == rest.len() && !self.eof => {
                    if rest.len() >= MAX_VALUE_LEN {
                        self.skip_to_next_segment("value larger than 1 MiB".into())?;
                    } else {
                        self.fill()?;
                    }
                }
                Err(DecodeError::Truncated) if limit == rest.len() => {
                    self.issue(Issue::TornTail {
                        offset: at,
                        len: rest.len() as u64,
                    });
                    self.pos = self.buf.len();
                }
                Err(DecodeError::Truncated) => {
                    // Torn frame followed by a new segment (a crash, then a restart).
                    self.issue(Issue::TornTail {
                        offset: at,
                        len: limit as u64,
                    });
                    self.segment = None;
                    self.pos += limit;
                }
                Err(e @ DecodeError::Invalid { .. }) => {
                    self.skip_to_next_segment(e.to_string())?;
                }
            }
        }
    }
}

/// Identity of a host, as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Directory name and display label (the configured target: a name or an address).
    pub label: String,
    /// Current address.
    pub address: IpAddr,
    /// Configured name, when the target was given as a name.
    pub name: Option<String>,
}

/// Writer parameters shared by every segment it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// Frame period, µs.
    pub period_us: u32,
    /// Quantizer precision.
    pub precision: f64,
    /// Program and version, e.g. `zzping-daemon 0.1.0`.
    pub writer: String,
}

/// Append-only writer of one host's frame files: one file per UTC day in
/// `<data_dir>/<host_dir_name(label)>/YYYY-MM-DD.zzp` (see [`crate::store::layout`]).
///
/// [`HostWriter::append`] encodes into a memory buffer (no allocation in steady state);
/// [`HostWriter::flush`] writes it, [`HostWriter::sync`] also fsyncs. A failed write keeps
/// the unwritten bytes for the next flush (up to [`MAX_PENDING_BYTES`]; beyond that the
/// pending frames are dropped, counted ([`HostWriter::dropped_frames`]), and a fresh
/// segment starts so the file stays decodable).
pub struct HostWriter {
    dir: PathBuf,
    host: HostInfo,
    cfg: WriterConfig,
    quantizer: Quantizer,
    file: Option<(File, PathBuf, u64)>,
    /// Day start of the segment being written, when one is open.
    segment_day: Option<u64>,
    encoder: FrameEncoder,
    pending: Vec<u8>,
    qframe: QFrame,
    dropped_frames: u64,
    frames_written: u64,
    /// Frames in `pending` (whole or partly unwritten).
    pending_frames: u64,
    /// Bytes of days already ended that could not be written yet, oldest first.
    ended: std::collections::VecDeque<Ended>,
    /// The next frame starts a segment: a new address, or a backlog given up (whatever
    /// was partly written of it is a torn fragment readers resynchronize after).
    new_segment: bool,
}

/// A day's bytes that could not be written before the next day started.
struct Ended {
    day: u64,
    bytes: Vec<u8>,
    frames: u64,
}

impl HostWriter {
    /// Opens (creating directories as needed) the writer of `host` under `data_dir`.
    /// Existing files are appended to, never truncated.
    pub fn open(data_dir: &Path, host: HostInfo, cfg: WriterConfig) -> Result<Self, FileError> {
        let w = Self::new(data_dir, host, cfg)?;
        std::fs::create_dir_all(&w.dir).map_err(FileError::io(&w.dir, "create directory"))?;
        Ok(w)
    }

    /// The writer of `host` under `data_dir`, touching no file: the host's directory is
    /// created (if need be) when a file is first opened, so a data directory that is not
    /// writable yet fails the flushes (which keep the frames, see above), not this call.
    /// Only the configuration is checked.
    pub fn new(data_dir: &Path, host: HostInfo, cfg: WriterConfig) -> Result<Self, FileError> {
        if !(crate::frame::MIN_PERIOD_US..=crate::frame::MAX_PERIOD_US).contains(&cfg.period_us) {
            return Err(FileError::Config(format!(
                "period {} µs is outside 10 ms..60 s",
                cfg.period_us
            )));
        }
        let quantizer =
            Quantizer::new(cfg.precision).map_err(|e| FileError::Config(e.to_string()))?;
        let dir = layout::host_dir(data_dir, &host.label);
        Ok(Self {
            dir,
            host,
            cfg,
            quantizer,
            file: None,
            segment_day: None,
            encoder: FrameEncoder::default(),
            pending: Vec::with_capacity(64 * 1024),
            qframe: QFrame::default(),
            dropped_frames: 0,
            frames_written: 0,
            pending_frames: 0,
            ended: std::collections::VecDeque::new(),
            new_segment: false,
        })
    }

    /// The host's directory.
    pub fn host_dir(&self) -> &Path {
        &self.dir
    }

    /// The host this writer writes.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// Frames dropped because they could not be written: those buffered when a failing
    /// backlog passed [`MAX_PENDING_BYTES`] (a frame partly written then counts too).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Frames buffered and not yet fully written (0 after a flush that succeeded).
    pub fn pending_frames(&self) -> u64 {
        self.pending_frames + self.ended.iter().map(|e| e.frames).sum::<u64>()
    }

    /// Frames appended (buffered or written) so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// The quantizer frames are coded with.
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// Records a new address for the host: the next frame starts a new segment. Nothing is
    /// written here (a failing directory cannot lose the change).
    pub fn set_address(&mut self, address: IpAddr) -> Result<(), FileError> {
        if address != self.host.address {
            self.host.address = address;
            self.new_segment = true;
        }
        Ok(())
    }

    fn start_segment(&mut self, first_start_us: u64, now_us: u64) {
        let header = SegmentHeader {
            schema: SCHEMA.into(),
            version: FORMAT_VERSION,
            host: self.host.address.to_string(),
            name: self.host.name.clone(),
            period_us: self.cfg.period_us,
            precision: self.cfg.precision,
            created_us: now_us,
            base_us: first_start_us,
            writer: self.cfg.writer.clone(),
        };
        header.encode(&mut self.pending);
        self.encoder.reset(first_start_us);
        self.segment_day = Some(crate::time::day_start_us(first_start_us));
    }

    /// Buffers `frame`, quantized with the writer's precision. Opens the next day's file
    /// (flushing the current one; bytes that cannot be written then wait for the next
    /// flush, which writes them to their own file first) when the frame starts a new UTC
    /// day; a new segment's
    /// creation time is the wall clock read here. The frame's period must be the
    /// writer's.
    pub fn append(&mut self, frame: &Frame) -> Result<(), FileError> {
        let mut q = std::mem::take(&mut self.qframe);
        q.set_from(frame, &self.quantizer);
        q.period_us = self.cfg.period_us;
        let r = self.append_quantized(&q, wall_clock_us());
        self.qframe = q;
        r
    }

    /// Like [`HostWriter::append`] for a frame already quantized with a quantizer of the
    /// writer's precision (so a producer with several consumers quantizes once), with the
    /// wall clock handed in (`now_us`: a new segment's creation time). The frame's period
    /// must be the writer's and its codes ascending and below [`Quantizer::code_count`];
    /// anything else is refused with [`FileError::Config`] and nothing is buffered. Only
    /// a refused frame is an error: write errors are kept for [`HostWriter::flush`].
    pub fn append_quantized(&mut self, frame: &QFrame, now_us: u64) -> Result<(), FileError> {
        if frame.period_us != self.cfg.period_us {
            return Err(FileError::Config(format!(
                "frame at {} µs: period {} µs, the writer's is {} µs",
                frame.start_us, frame.period_us, self.cfg.period_us
            )));
        }
        if !frame.codes.is_sorted()
            || frame
                .codes
                .last()
                .is_some_and(|&c| c >= self.quantizer.code_count())
        {
            return Err(FileError::Config(format!(
                "frame at {} µs: codes not ascending below {} (quantized with another precision?)",
                frame.start_us,
                self.quantizer.code_count()
            )));
        }
        let day = crate::time::day_start_us(frame.start_us);
        if self.segment_day != Some(day) || self.new_segment {
            if let Some(old) = self.segment_day.filter(|&d| d != day) {
                // A new day, a new file. Bytes of the old day that cannot be written now
                // wait for the next flush, which writes them to their own file first.
                if self.flush().is_err() && !self.pending.is_empty() {
                    self.ended.push_back(Ended {
                        day: old,
                        bytes: std::mem::take(&mut self.pending),
                        frames: self.pending_frames,
                    });
                    self.pending_frames = 0;
                }
                self.file = None;
            }
            self.new_segment = false;
            self.start_segment(frame.start_us, now_us);
        }
        self.encoder.encode(frame, &mut self.pending);
        self.frames_written += 1;
        self.pending_frames += 1;
        Ok(())
    }

    /// The day file of `day`, opened for append (its directory created if need be).
    fn open_day(dir: &Path, day: u64) -> Result<(File, PathBuf, u64), FileError> {
        let path = layout::day_file(dir, day);
        std::fs::create_dir_all(dir).map_err(FileError::io(dir, "create directory"))?;
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(FileError::io(&path, "open for append"))?;
        let len = f.metadata().map_err(FileError::io(&path, "stat"))?.len();
        Ok((f, path, len))
    }

    /// Writes as much of `bytes` as the file takes, removing what was written.
    fn write_some(
        f: &mut File,
        path: &Path,
        len: &mut u64,
        bytes: &mut Vec<u8>,
    ) -> Result<(), FileError> {
        let mut written = 0;
        let r = loop {
            if written == bytes.len() {
                break Ok(());
            }
            match f.write(&bytes[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        *len += written as u64;
        bytes.drain(..written);
        r.map_err(FileError::io(path, "write"))
    }

    /// Writes the bytes of ended days (oldest first), then the current day's.
    fn write_backlog(&mut self) -> Result<(), FileError> {
        while let Some(e) = self.ended.front_mut() {
            let (mut f, path, mut len) = Self::open_day(&self.dir, e.day)?;
            Self::write_some(&mut f, &path, &mut len, &mut e.bytes)?;
            // A day written late is synced at once: no later sync sees this file.
            f.sync_data().map_err(FileError::io(&path, "fsync"))?;
            self.ended.pop_front();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(Self::open_day(&self.dir, self.segment_day.unwrap_or(0))?);
        }
        let (f, path, len) = self.file.as_mut().expect("opened");
        let r = Self::write_some(f, path, len, &mut self.pending);
        if self.pending.is_empty() {
            self.pending_frames = 0;
        }
        if r.is_err() {
            // Opened again next time: the path may lead elsewhere by then (a remount).
            self.file = None;
        }
        r
    }

    /// Writes buffered bytes to their files.
    pub fn flush(&mut self) -> Result<(), FileError> {
        let result = self.write_backlog();
        let backlog = self.pending.len() + self.ended.iter().map(|e| e.bytes.len()).sum::<usize>();
        if result.is_err() && backlog > MAX_PENDING_BYTES {
            // Give up the backlog; whatever was partly written is a torn fragment, so the
            // next frame must start a new segment for readers to resynchronize.
            self.dropped_frames += self.pending_frames();
            self.pending.clear();
            self.pending_frames = 0;
            self.ended.clear();
            self.new_segment = true;
        }
        result
    }

    /// Flushes and fsyncs.
    pub fn sync(&mut self) -> Result<(), FileError> {
        self.flush()?;
        if let Some((f, path, _)) = &self.file {
            f.sync_data().map_err(FileError::io(path, "fsync"))?;
        }
        Ok(())
    }
}

impl Drop for HostWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Current wall-clock time, µs since the epoch.
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::day_file;

    fn host() -> HostInfo {
        HostInfo {
            label: "gw".into(),
            address: "198.18.0.1".parse().unwrap(),
            name: None,
        }
    }

    fn cfg() -> WriterConfig {
        WriterConfig {
            period_us: 100_000,
            precision: 0.01,
            writer: "test".into(),
        }
    }

    fn frame(start_us: u64, rtts: &[u32]) -> Frame {
        let mut f = Frame::new(start_us, 100_000);
        f.sent = rtts.len() as u32 + 1;
        f.lost = 1;
        f.rtts_us.extend_from_slice(rtts);
        f
    }

    fn read_all(path: &Path) -> (Vec<QFrame>, Vec<Issue>) {
        let mut r = FileReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(f.clone());
        }
        (out, r.issues().to_vec())
    }

    const T0: u64 = 1_700_000_000_000_000;

    #[test]
    fn header_round_trip_and_magic() {
        let h = SegmentHeader {
            schema: SCHEMA.into(),
            version: 1,
            host: "2001:db8::1".into(),
            name: Some("router".into()),
            period_us: 100_000,
            precision: 0.01,
            created_us: 5,
            base_us: 7,
            writer: "w".into(),
        };
        let mut buf = Vec::new();
        h.encode(&mut buf);
        assert!(is_fixmap(buf[0]));
        assert_eq!(&buf[1..1 + SEGMENT_MAGIC.len()], SEGMENT_MAGIC);
        assert_eq!(SegmentHeader::decode(&buf), Ok((h.clone(), buf.len())));
        for cut in 0..buf.len() {
            assert_eq!(
                SegmentHeader::decode(&buf[..cut]),
                Err(HeaderError::Truncated)
            );
        }
        let mut bad = h;
        bad.version = FORMAT_VERSION + 1;
        let mut buf = Vec::new();
        bad.encode(&mut buf);
        assert!(matches!(
            SegmentHeader::decode(&buf),
            Err(HeaderError::Invalid(_))
        ));
    }

    #[test]
    fn a_frame_quantized_once_is_written_as_append_writes_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut plain = HostWriter::open(a.path(), host(), cfg()).unwrap();
        let mut once = HostWriter::open(b.path(), host(), cfg()).unwrap();
        let quantizer = Quantizer::new(cfg().precision).unwrap();
        let mut q = QFrame::default();
        let now_us = T0 + 42;
        for i in 0..20u64 {
            let f = frame(T0 + i * 100_000, &[900 + i as u32, 15_000, 250]);
            plain.append(&f).unwrap();
            q.set_from(&f, &quantizer);
            once.append_quantized(&q, now_us).unwrap();
        }
        // Codes of another precision, or another period, are refused and nothing is
        // buffered.
        let mut foreign = q.clone();
        foreign.start_us += 100_000;
        foreign.codes = vec![quantizer.code_count()];
        assert!(matches!(
            once.append_quantized(&foreign, now_us),
            Err(FileError::Config(_))
        ));
        foreign.codes = vec![3, 1];
        assert!(once.append_quantized(&foreign, now_us).is_err());
        foreign.codes.clear();
        foreign.period_us = 50_000;
        assert!(once.append_quantized(&foreign, now_us).is_err());
        assert_eq!(once.frames_written(), 20);
        plain.sync().unwrap();
        once.sync().unwrap();
        let (pa, pb) = (
            day_file(plain.host_dir(), crate::time::day_start_us(T0)),
            day_file(once.host_dir(), crate::time::day_start_us(T0)),
        );
        assert_eq!(read_all(&pa), read_all(&pb));
        // The segment's creation time is the one handed in.
        let mut r = FileReader::open(&pb).unwrap();
        r.next_frame().unwrap();
        assert_eq!(r.header().unwrap().created_us, now_us);
    }

    #[test]
    fn restart_appends_a_segment_never_truncates() {
        let dir = tempfile::tempdir().unwrap();
        for run in 0..3u64 {
            let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
            for i in 0..10 {
                w.append(&frame(
                    T0 + (run * 10 + i) * 100_000,
                    &[1000, 2000 + i as u32],
                ))
                .unwrap();
            }
            w.sync().unwrap();
        }
        let path = day_file(&dir.path().join("gw"), T0);
        let mut r = FileReader::open(&path).unwrap();
        let mut n = 0;
        while let Some(f) = r.next_frame().unwrap() {
            assert_eq!(f.start_us, T0 + n * 100_000);
            assert_eq!(f.lost, 1);
            n += 1;
        }
        assert_eq!(n, 30);
        assert_eq!(r.segments_seen(), 3);
        assert!(r.issues().is_empty());
        assert_eq!(r.header().unwrap().host, "198.18.0.1");
    }

    #[test]
    fn day_rollover_opens_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let day = crate::time::US_PER_DAY;
        let midnight = (T0 / day + 1) * day;
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        for i in 0..4u64 {
            w.append(&frame(midnight - 200_000 + i * 100_000, &[500]))
                .unwrap();
        }
        w.sync().unwrap();
        let hd = dir.path().join("gw");
        let (a, _) = read_all(&day_file(&hd, midnight - 1));
        let (b, _) = read_all(&day_file(&hd, midnight));
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].start_us, midnight);
    }

    #[test]
    fn a_directory_that_cannot_be_created_yet_keeps_the_frames_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the data directory should be: creating it fails, even for root.
        let data = dir.path().join("data");
        std::fs::write(&data, b"").unwrap();
        assert!(HostWriter::open(&data, host(), cfg()).is_err());
        let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
        for i in 0..5 {
            w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
        }
        assert!(w.flush().is_err());
        assert_eq!((w.pending_frames(), w.dropped_frames()), (5, 0));
        w.append(&frame(T0 + 500_000, &[700])).unwrap();
        assert!(w.sync().is_err());
        // The directory becomes possible: every frame is written, once.
        std::fs::remove_file(&data).unwrap();
        std::fs::create_dir(&data).unwrap();
        w.sync().unwrap();
        assert_eq!((w.pending_frames(), w.dropped_frames()), (0, 0));
        let (frames, issues) = read_all(&day_file(&data.join("gw"), T0));
        assert!(issues.is_empty(), "{issues:?}");
        let starts: Vec<u64> = frames.iter().map(|f| f.start_us).collect();
        assert_eq!(starts, (0..6).map(|i| T0 + i * 100_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_backlog_past_its_bound_is_dropped_counted_and_the_file_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, b"").unwrap();
        let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
        let rtts: Vec<u32> = (0..2000).map(|i| 1000 + i * 37).collect();
        let mut n = 0u64;
        // Each frame is a few KiB: the 8 MiB bound is passed within a few thousand.
        while w.dropped_frames() == 0 {
            assert!(n < 100_000, "never dropped");
            w.append(&frame(T0 + n * 100_000, &rtts)).unwrap();
            n += 1;
            if n % 100 == 0 {
                assert!(w.flush().is_err());
            }
        }
        assert_eq!((w.dropped_frames(), w.pending_frames()), (n, 0));
        std::fs::remove_file(&data).unwrap();
        std::fs::create_dir(&data).unwrap();
        w.append(&frame(T0 + n * 100_000, &[700])).unwrap();
        w.sync().unwrap();
        let (frames, issues) = read_all(&day_file(&data.join("gw"), T0));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].start_us, T0 + n * 100_000);
    }

    #[test]
    fn a_failing_directory_across_midnight_keeps_both_days_and_a_new_address() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, b"").unwrap();
        let day = crate::time::US_PER_DAY;
        let midnight = (T0 / day + 1) * day;
        let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
        let starts: Vec<u64> = (0..6).map(|i| midnight - 300_000 + i * 100_000).collect();
        for (i, &t) in starts.iter().enumerate() {
            if i == 4 {
                w.set_address("198.18.0.7".parse().unwrap()).unwrap();
            }
            w.append(&frame(t, &[500])).unwrap();
        }
        assert!(w.flush().is_err());
        assert_eq!((w.pending_frames(), w.dropped_frames()), (6, 0));
        std::fs::remove_file(&data).unwrap();
        std::fs::create_dir(&data).unwrap();
        w.sync().unwrap();
        assert_eq!(w.pending_frames(), 0);
        let hd = data.join("gw");
        let (a, ia) = read_all(&day_file(&hd, midnight - 1));
        let (b, ib) = read_all(&day_file(&hd, midnight));
        assert!(ia.is_empty() && ib.is_empty(), "{ia:?} {ib:?}");
        let got: Vec<u64> = a.iter().chain(&b).map(|f| f.start_us).collect();
        assert_eq!(got, starts);
        assert_eq!(a.len(), 3);
        // The address changed before the fifth frame: its own segment says so.
        let mut r = FileReader::open(day_file(&hd, midnight)).unwrap();
        let mut hosts = Vec::new();
        while r.next_frame().unwrap().is_some() {
            hosts.push(r.header().unwrap().host.clone());
        }
        assert_eq!(hosts, ["198.18.0.1", "198.18.0.7", "198.18.0.7"]);
    }

    #[test]
    fn torn_tail_then_restart_keeps_every_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        for i in 0..5 {
            w.append(&frame(T0 + i * 100_000, &[700, 800, 900]))
                .unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let path = day_file(&dir.path().join("gw"), T0);
        let full = std::fs::metadata(&path).unwrap().len();
        // Tear the last frame: cut 2 bytes (simulating a crash mid-write).
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 2).unwrap();
        let (frames, issues) = read_all(&path);
        assert_eq!(frames.len(), 4);
        assert!(matches!(issues[..], [Issue::TornTail { .. }]));
        // Restart: appends a new segment after the torn bytes.
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        w.append(&frame(T0 + 10 * 100_000, &[600])).unwrap();
        w.sync().unwrap();
        let (frames, issues) = read_all(&path);
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[4].start_us, T0 + 10 * 100_000);
        assert!(matches!(issues[..], [Issue::TornTail { .. }]), "{issues:?}");
    }

    #[test]
    fn garbage_in_the_middle_skips_to_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = day_file(&dir.path().join("gw"), T0);
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        for i in 0..5 {
            w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xc1, 0xff, 0x00, 0x13, 0x37]).unwrap();
        drop(f);
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        for i in 10..13 {
            w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
        }
        w.sync().unwrap();
        let (frames, issues) = read_all(&path);
        assert_eq!(frames.len(), 8);
        match &issues[..] {
            [Issue::Garbage { offset, len, .. }] => {
                assert_eq!(*offset, good_len);
                assert_eq!(*len, 5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_header_is_skipped_not_looped_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = day_file(&dir.path().join("gw"), T0);
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        w.append(&frame(T0, &[700])).unwrap();
        w.sync().unwrap();
        drop(w);
        let bad_at = std::fs::metadata(&path).unwrap().len();
        // A well-formed header of an unsupported version: invalid, skipped as garbage.
        let mut bad = SegmentHeader {
            schema: SCHEMA.into(),
            version: FORMAT_VERSION + 1,
            host: "198.18.0.1".into(),
            name: None,
            period_us: 100_000,
            precision: 0.01,
            created_us: 0,
            base_us: T0,
            writer: "future".into(),
        };
        let mut buf = Vec::new();
        bad.encode(&mut buf);
        buf.extend_from_slice(&[0x93, 0x00, 0x01, 0x90]);
        let bad_len = buf.len() as u64;
        bad.version = FORMAT_VERSION;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&buf)
            .unwrap();
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        w.append(&frame(T0 + 100_000, &[800])).unwrap();
        w.sync().unwrap();
        let (frames, issues) = read_all(&path);
        assert_eq!(frames.len(), 2);
        match &issues[..] {
            [Issue::Garbage { offset, len, .. }] => assert_eq!((*offset, *len), (bad_at, bad_len)),
            other => panic!("{other:?}"),
        }
    }

    /// A segment of `n` frames at `precision` starting at `t`, as raw bytes.
    fn segment_bytes(precision: f64, t: u64, n: u64) -> Vec<u8> {
        let h = SegmentHeader {
            schema: SCHEMA.into(),
            version: FORMAT_VERSION,
            host: "198.18.0.1".into(),
            name: None,
            period_us: 100_000,
            precision,
            created_us: 0,
            base_us: t,
            writer: "test".into(),
        };
        let mut buf = Vec::new();
        h.encode(&mut buf);
        let mut enc = FrameEncoder::new(t);
        let mut q = QFrame::default();
        for i in 0..n {
            q.set_from(
                &frame(t + i * 100_000, &[700, 900]),
                &Quantizer::new(0.01).unwrap(),
            );
            q.period_us = 100_000;
            enc.encode(&q, &mut buf);
        }
        buf
    }

    #[test]
    fn a_nan_precision_skips_its_segment_and_later_segments_are_read() {
        // 0.01 with an exponent of all ones: NaN (bit flips in a header do such things).
        let nan = f64::from_bits(0.01f64.to_bits() | (0x7ff << 52));
        assert!(nan.is_nan());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.zzp");
        let a = segment_bytes(0.01, T0, 3);
        let bad = segment_bytes(nan, T0 + 1_000_000, 4);
        let c = segment_bytes(0.01, T0 + 2_000_000, 5);
        std::fs::write(&path, [a.clone(), bad.clone(), c].concat()).unwrap();
        let (frames, issues) = read_all(&path);
        assert_eq!(frames.len(), 8);
        assert_eq!(frames[3].start_us, T0 + 2_000_000);
        match &issues[..] {
            [
                Issue::Garbage {
                    offset,
                    len,
                    reason,
                },
            ] => {
                assert_eq!((*offset, *len), (a.len() as u64, bad.len() as u64));
                assert!(reason.contains("precision NaN"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        for p in [0.0, -0.01, 0.6, f64::INFINITY, 1e-5] {
            let mut buf = Vec::new();
            SegmentHeader {
                precision: p,
                ..SegmentHeader::decode(&a).unwrap().0
            }
            .encode(&mut buf);
            assert!(
                matches!(SegmentHeader::decode(&buf), Err(HeaderError::Invalid(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn distinct_precisions_keep_at_most_a_few_quantizers() {
        let mut bytes = Vec::new();
        let n = 40u64;
        for i in 0..n {
            // Fine precisions: the largest tables (hundreds of KB each).
            let p = MIN_PRECISION * (1.0 + i as f64 / 100.0);
            bytes.extend(segment_bytes(p, T0 + i * 1_000_000, 1));
        }
        let mut r = FileReader::new("mem".into(), &bytes[..]);
        let mut frames = 0;
        while let Some(f) = r.next_frame().unwrap() {
            let codes = f.codes.clone();
            frames += 1;
            assert!(r.quantizers.len() <= QUANTIZER_CACHE);
            let q = r.quantizer().unwrap();
            assert_eq!(r.header().unwrap().precision, q.precision());
            assert!(codes.iter().all(|&c| c < q.code_count()));
        }
        assert_eq!(frames, n);
        assert_eq!(r.segments_seen(), n);
        assert!(r.issues().is_empty());
        // A precision seen again after eviction is rebuilt, equal to the first.
        let again = [segment_bytes(0.01, T0, 1), segment_bytes(0.02, T0 + 1, 0)].concat();
        let mut r = FileReader::new("mem".into(), &again[..]);
        while r.next_frame().unwrap().is_some() {}
        assert_eq!(r.quantizers.len(), 2);
    }
}
