//! The recovering, streaming reader of frame files (see the parent module).

use super::scan::SegmentScan;
use super::*;

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
    scan: SegmentScan<R>,
    segment: Option<Segment>,
    frame: QFrame,
    /// Quantizers of the segments read, most recently used last (at most
    /// [`QUANTIZER_CACHE`]).
    // (The tests read it.)
    pub(super) quantizers: Vec<Arc<Quantizer>>,
    segments_seen: u64,
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
            scan: SegmentScan::new(path, src, SEGMENT_MAGIC, READ_CHUNK),
            segment: None,
            frame: QFrame::default(),
            quantizers: Vec::with_capacity(QUANTIZER_CACHE),
            segments_seen: 0,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.scan.path
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
        &self.scan.issues
    }

    /// Number of problems found so far.
    pub fn issue_count(&self) -> u64 {
        self.scan.issue_count
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
        self.scan.offset()
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

    /// Skips to the next segment start past damage, forgetting the current segment.
    fn skip_to_next_segment(&mut self, reason: String) -> Result<(), FileError> {
        self.segment = None;
        self.scan.skip_to_next_segment(reason)
    }

    /// Returns the next frame, or `None` at the end of the file. Problems in the data
    /// (torn tails, garbage, invalid segment headers: their segment is skipped) are
    /// recovered from and recorded in [`FileReader::issues`]; only I/O errors are returned
    /// as errors.
    pub fn next_frame(&mut self) -> Result<Option<&QFrame>, FileError> {
        loop {
            if self.scan.pos >= self.scan.buf.len() && !self.scan.fill()? {
                return Ok(None);
            }
            let rest = &self.scan.buf[self.scan.pos..];
            let at = self.scan.offset();
            if is_fixmap(rest[0]) {
                // A segment header, or garbage. Like a frame, a header never spans the
                // next segment start (its own magic is at +1; look from +2).
                let limit = self.scan.find_magic(rest, 2).map_or(rest.len(), |m| m - 1);
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
                        self.scan.pos += used;
                        continue;
                    }
                    Err(HeaderError::Truncated) if limit < rest.len() => {
                        self.skip_to_next_segment(
                            "segment header cut short by the next segment".into(),
                        )?;
                        continue;
                    }
                    Err(HeaderError::Truncated) if !self.scan.eof && rest.len() < MAX_VALUE_LEN => {
                        self.scan.fill()?;
                        continue;
                    }
                    Err(HeaderError::Truncated) => {
                        let len = rest.len() as u64;
                        self.scan.issue(Issue::TornTail { offset: at, len });
                        self.scan.pos = self.scan.buf.len();
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
            let pos = self.scan.pos;
            let magic = self.scan.next_magic_after_pos();
            let rest = &self.scan.buf[pos..];
            let limit = magic.map_or(rest.len(), |m| m - 1 - pos);
            let mut trial = seg.decoder.clone();
            match trial.decode(&rest[..limit], &mut self.frame) {
                Ok(used) => {
                    seg.decoder = trial;
                    self.scan.pos += used;
                    return Ok(Some(&self.frame));
                }
                Err(DecodeError::Truncated) if limit == rest.len() && !self.scan.eof => {
                    if rest.len() >= MAX_VALUE_LEN {
                        self.skip_to_next_segment("value larger than 1 MiB".into())?;
                    } else {
                        self.scan.fill()?;
                    }
                }
                Err(DecodeError::Truncated) if limit == rest.len() => {
                    self.scan.issue(Issue::TornTail {
                        offset: at,
                        len: rest.len() as u64,
                    });
                    self.scan.pos = self.scan.buf.len();
                }
                Err(DecodeError::Truncated) => {
                    // Torn frame followed by a new segment (a crash, then a restart).
                    self.scan.issue(Issue::TornTail {
                        offset: at,
                        len: limit as u64,
                    });
                    self.segment = None;
                    self.scan.pos += limit;
                }
                Err(e @ DecodeError::Invalid { .. }) => {
                    self.skip_to_next_segment(e.to_string())?;
                }
            }
        }
    }
}
