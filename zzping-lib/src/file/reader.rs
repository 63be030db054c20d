//! The recovering, streaming reader of frame files (see the parent module).

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
    // (The tests read it.)
    pub(super) quantizers: Vec<Arc<Quantizer>>,
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
