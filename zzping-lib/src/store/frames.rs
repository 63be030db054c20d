//! Streaming a host's frames across its files, with segment and file boundaries.

use super::DayFile;
use crate::codec::QFrame;
use crate::file::{FileError, FileReader, Issue, SegmentHeader};
use crate::quantizer::Quantizer;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`HostFrames::next_event`] reports, in file order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A segment starts: its header, reported before its first frame in range (a segment
    /// without frames in range is not reported).
    Segment {
        /// The file.
        path: &'a Path,
        /// The segment's header.
        header: &'a Arc<SegmentHeader>,
    },
    /// A frame starting in range.
    Frame {
        /// The frame.
        frame: &'a QFrame,
        /// Its segment's quantizer (the frame's codes refer to it).
        quantizer: &'a Arc<Quantizer>,
    },
    /// A file is finished (read to its end, or given up after an error returned by the
    /// previous call); `issues` is what the reader recovered from.
    FileEnd {
        /// The file.
        path: &'a Path,
        /// The issues (at most 256 kept).
        issues: &'a [Issue],
        /// The number of issues.
        issue_count: u64,
        /// Bytes read.
        bytes: u64,
    },
}

/// What the next event is, decided without holding a borrow of the reader.
#[derive(Clone, Copy)]
enum Next {
    Segment,
    Frame,
    FileEnd,
}

/// The file being read.
struct Current {
    reader: FileReader,
    /// Segments reported so far (compared with the reader's count).
    segments_reported: u64,
    /// A segment was reported: its first frame is the next event.
    frame_pending: bool,
    /// Read to the end, or failed: the next event is the file's end.
    done: bool,
    /// The file's end was reported: close it on the next call.
    ended: bool,
}

/// Streams the frames starting in `[from_us, to_us)` of a host's files, in file order, in
/// constant memory (see [`super::Host::frames`]).
///
/// Files whose day cannot hold frames in the range are not opened. Damage inside a file
/// is recovered from and reported (as [`Event::FileEnd`] issues, and by
/// [`HostFrames::issues`]); a file that cannot be opened or read further returns its
/// error once, and the next call goes on with the next file, so a caller may give up or
/// skip it and keep everything that is good.
pub struct HostFrames {
    files: VecDeque<DayFile>,
    current: Option<Current>,
    from_us: u64,
    to_us: u64,
    issues: Vec<(PathBuf, Issue)>,
}

impl HostFrames {
    /// Frames starting in `[from_us, to_us)` of `files`, read in the given order.
    pub fn new(files: impl IntoIterator<Item = DayFile>, from_us: u64, to_us: u64) -> Self {
        Self {
            files: files
                .into_iter()
                .filter(|f| f.may_hold(from_us, to_us))
                .collect(),
            current: None,
            from_us,
            to_us,
            issues: Vec::new(),
        }
    }

    fn close_current(&mut self) {
        if let Some(c) = self.current.take() {
            let path = c.reader.path().to_path_buf();
            self.issues
                .extend(c.reader.issues().iter().map(|i| (path.clone(), i.clone())));
        }
    }

    /// Moves to the next event; returns its kind, or `None` when every file is read.
    fn advance(&mut self) -> Result<Option<Next>, FileError> {
        loop {
            if self.current.as_ref().is_some_and(|c| c.ended) {
                self.close_current();
            }
            let Some(c) = self.current.as_mut() else {
                let Some(f) = self.files.pop_front() else {
                    return Ok(None);
                };
                self.current = Some(Current {
                    reader: FileReader::open(&f.path)?,
                    segments_reported: 0,
                    frame_pending: false,
                    done: false,
                    ended: false,
                });
                continue;
            };
            if c.frame_pending {
                c.frame_pending = false;
                return Ok(Some(Next::Frame));
            }
            if c.done {
                c.ended = true;
                return Ok(Some(Next::FileEnd));
            }
            let start = match c.reader.next_frame() {
                Ok(Some(f)) => f.start_us,
                Ok(None) => {
                    c.done = true;
                    continue;
                }
                Err(e) => {
                    c.done = true;
                    return Err(e);
                }
            };
            if start < self.from_us || start >= self.to_us {
                continue;
            }
            if c.reader.segments_seen() != c.segments_reported {
                c.segments_reported = c.reader.segments_seen();
                c.frame_pending = true;
                return Ok(Some(Next::Segment));
            }
            return Ok(Some(Next::Frame));
        }
    }

    /// The next event, or `None` when every file is read.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, FileError> {
        let Some(next) = self.advance()? else {
            return Ok(None);
        };
        let r = &self
            .current
            .as_ref()
            .expect("advance keeps the file")
            .reader;
        Ok(Some(match next {
            Next::Segment => Event::Segment {
                path: r.path(),
                header: r.header().expect("a frame was read"),
            },
            Next::Frame => Event::Frame {
                frame: r.last_frame().expect("a frame was read"),
                quantizer: r.quantizer().expect("a frame was read"),
            },
            Next::FileEnd => Event::FileEnd {
                path: r.path(),
                issues: r.issues(),
                issue_count: r.issue_count(),
                bytes: r.offset(),
            },
        }))
    }

    /// The next frame in range (skipping the other events), or `None` when every file is
    /// read. [`HostFrames::header`] and [`HostFrames::quantizer`] describe its segment.
    pub fn next_frame(&mut self) -> Result<Option<&QFrame>, FileError> {
        loop {
            match self.advance()? {
                None => return Ok(None),
                Some(Next::Frame) => break,
                Some(_) => {}
            }
        }
        Ok(self.current.as_ref().and_then(|c| c.reader.last_frame()))
    }

    /// Header of the segment of the last frame returned.
    pub fn header(&self) -> Option<&Arc<SegmentHeader>> {
        self.current.as_ref().and_then(|c| c.reader.header())
    }

    /// Quantizer of the segment of the last frame returned.
    pub fn quantizer(&self) -> Option<&Arc<Quantizer>> {
        self.current.as_ref().and_then(|c| c.reader.quantizer())
    }

    /// Byte offset reached in the file being read (0 between files).
    pub fn offset(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.reader.offset())
    }

    /// Problems found in files already finished, and in the current one.
    pub fn issues(&self) -> Vec<(PathBuf, Issue)> {
        let mut v = self.issues.clone();
        if let Some(c) = &self.current {
            let r = &c.reader;
            v.extend(
                r.issues()
                    .iter()
                    .map(|i| (r.path().to_path_buf(), i.clone())),
            );
        }
        v
    }
}
