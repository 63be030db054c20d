//! The byte window under a recovering reader: what the frame file reader and the events
//! file reader share (`docs/format.md` §6): a buffer refilled from the source, file
//! offsets, the issues found, and the skip to the next segment start past damage. The
//! readers decode their own values on top of it.

use super::{FileError, Issue, MAX_ISSUES, is_fixmap};
use std::io::{self, Read};
use std::path::PathBuf;

/// A read window over one file whose segments each start with a small map followed by a
/// known magic (see [`super::SEGMENT_MAGIC`]).
pub(crate) struct SegmentScan<R> {
    /// The file being read (named in errors).
    pub(crate) path: PathBuf,
    src: R,
    /// Bytes read and not yet dropped; `buf[pos..]` is unread.
    pub(crate) buf: Vec<u8>,
    /// Position of the next unread byte in `buf`.
    pub(crate) pos: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    /// The source has no more bytes.
    pub(crate) eof: bool,
    /// The bytes after a segment's map marker.
    magic: &'static [u8],
    /// Bytes read at least per [`SegmentScan::fill`].
    chunk: usize,
    /// The first [`MAX_ISSUES`] problems found.
    pub(crate) issues: Vec<Issue>,
    /// Every problem found.
    pub(crate) issue_count: u64,
    /// Cached search for the next magic in `buf` ([`SegmentScan::next_magic_after`]):
    /// `None` when not searched since the buffer last changed, `Some(None)` when there is
    /// none.
    next_magic: Option<Option<usize>>,
}

impl<R: Read> SegmentScan<R> {
    /// A window over `src`, reading `chunk` bytes at a time, whose segments carry `magic`.
    pub(crate) fn new(path: PathBuf, src: R, magic: &'static [u8], chunk: usize) -> Self {
        Self {
            path,
            src,
            buf: Vec::with_capacity(chunk),
            pos: 0,
            buf_offset: 0,
            eof: false,
            magic,
            chunk,
            issues: Vec::new(),
            issue_count: 0,
            next_magic: None,
        }
    }

    /// File offset of the next unread byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// Records a problem (kept when fewer than [`MAX_ISSUES`] are, always counted).
    pub(crate) fn issue(&mut self, issue: Issue) {
        self.issue_count += 1;
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(issue);
        }
    }

    /// Where the magic occurs in `buf` at or after `from`.
    #[inline]
    pub(crate) fn find_magic(&self, buf: &[u8], from: usize) -> Option<usize> {
        memchr::memmem::find(buf.get(from..)?, self.magic).map(|i| i + from)
    }

    /// The first magic in the buffer strictly after the current position, searched once
    /// per buffer fill and reused while the position has not passed it.
    pub(crate) fn next_magic_after_pos(&mut self) -> Option<usize> {
        let pos = self.pos;
        match self.next_magic {
            Some(m) if m.is_none_or(|i| i > pos) => m,
            _ => {
                let m = self.find_magic(&self.buf, pos + 1);
                self.next_magic = Some(m);
                m
            }
        }
    }

    /// True when the unread bytes start a segment header (a map marker, then the magic).
    pub(crate) fn at_header(&self) -> bool {
        let rest = &self.buf[self.pos..];
        !rest.is_empty() && is_fixmap(rest[0]) && rest[1..].starts_with(self.magic)
    }

    /// Reads more bytes, dropping those already read; false at the end of the file. The
    /// window grows to twice what it holds when a value is longer than a chunk.
    pub(crate) fn fill(&mut self) -> Result<bool, FileError> {
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
        let want = self.chunk.max(old);
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
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Skips from the current position to the next segment start (or the end), reporting
    /// the skipped bytes as garbage with `reason`. The caller forgets its segment.
    pub(crate) fn skip_to_next_segment(&mut self, reason: String) -> Result<(), FileError> {
        let start = self.offset();
        loop {
            // A segment starts one byte before the magic, and strictly after `start`: the
            // bytes at `start` may be an invalid header whose own magic must not be found
            // again (that would loop forever).
            let min_magic = (start + 2).saturating_sub(self.buf_offset) as usize;
            let from = (self.pos + 1).max(min_magic);
            match self.find_magic(&self.buf, from) {
                Some(m) if m >= 1 && is_fixmap(self.buf[m - 1]) => {
                    self.pos = m - 1;
                    break;
                }
                // Magic without a map marker before it: not a header; look after it.
                Some(m) => {
                    self.pos = m;
                    continue;
                }
                None => {}
            }
            // Keep the last bytes in case the magic straddles the buffer end.
            self.pos = self
                .buf
                .len()
                .saturating_sub(self.magic.len())
                .max(self.pos);
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
}
