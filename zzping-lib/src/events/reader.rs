//! The recovering reader of events files, and events over a time range (see the parent
//! module).

use super::{
    ContextEvent, EVENTS_DIR, EventsHeader, MAX_VALUE_LEN, SEGMENT_MAGIC, day_of_file, events_dir,
};
use crate::file::scan::SegmentScan;
use crate::file::{FileError, Issue};
use crate::msgpack;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Read buffer size.
const READ_CHUNK: usize = 64 * 1024;

/// Streaming reader of one events file: every event in file order, recovering from
/// damage like the frame file reader (`docs/format.md` §6 and §10): a torn tail is
/// reported and every event before it kept; bytes that do not decode (or come before any
/// header) are skipped to the next segment header and reported with their offset.
pub struct EventReader<R = File> {
    scan: SegmentScan<R>,
    header: Option<EventsHeader>,
}

impl EventReader<File> {
    /// Opens `path` for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let f = File::open(path).map_err(FileError::io(path, "open"))?;
        Ok(Self::new(path.to_path_buf(), f))
    }
}

impl<R: Read> EventReader<R> {
    /// A reader over any byte source; `path` is used in errors.
    pub fn new(path: PathBuf, src: R) -> Self {
        Self {
            scan: SegmentScan::new(path, src, SEGMENT_MAGIC, READ_CHUNK),
            header: None,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.scan.path
    }

    /// The header of the segment of the last event.
    pub fn header(&self) -> Option<&EventsHeader> {
        self.header.as_ref()
    }

    /// Problems found so far (at most 256 kept; see [`EventReader::issue_count`]).
    pub fn issues(&self) -> &[Issue] {
        &self.scan.issues
    }

    /// Number of problems found so far.
    pub fn issue_count(&self) -> u64 {
        self.scan.issue_count
    }

    /// Skips to the next segment start past damage, forgetting the current header.
    fn skip_to_next_segment(&mut self, reason: String) -> Result<(), FileError> {
        self.header = None;
        self.scan.skip_to_next_segment(reason)
    }

    /// The next event, or `None` at the end of the file. Damage is recovered from and
    /// recorded in [`EventReader::issues`]; only I/O errors are errors.
    pub fn next_event(&mut self) -> Result<Option<ContextEvent>, FileError> {
        loop {
            // Enough bytes to tell a header (marker and magic) from an event.
            let scan = &mut self.scan;
            if scan.buf.len() - scan.pos <= SEGMENT_MAGIC.len() && !scan.eof {
                scan.fill()?;
                continue;
            }
            if scan.pos >= scan.buf.len() {
                return Ok(None);
            }
            let is_header = scan.at_header();
            let rest = &scan.buf[scan.pos..];
            let at = scan.offset();
            // A value never spans the next segment start.
            let limit = scan.find_magic(rest, 2).map_or(rest.len(), |m| m - 1);
            if !is_header && self.header.is_none() {
                self.skip_to_next_segment("data before any segment header".into())?;
                continue;
            }
            let decoded = if is_header {
                EventsHeader::decode(&rest[..limit]).map(|(h, n)| (Err(h), n))
            } else {
                ContextEvent::decode(&rest[..limit]).map(|(e, n)| (Ok(e), n))
            };
            match decoded {
                Ok((value, used)) => {
                    scan.pos += used;
                    match value {
                        Ok(ev) => return Ok(Some(ev)),
                        Err(h) => self.header = Some(h),
                    }
                }
                Err(msgpack::Error::Truncated { .. }) if limit == rest.len() && !scan.eof => {
                    if rest.len() >= MAX_VALUE_LEN {
                        self.skip_to_next_segment("value larger than 64 KiB".into())?;
                    } else {
                        scan.fill()?;
                    }
                }
                Err(msgpack::Error::Truncated { .. }) => {
                    // At the end of the file, or cut short by a new segment (a crash, then
                    // a restart).
                    scan.issue(Issue::TornTail {
                        offset: at,
                        len: limit as u64,
                    });
                    scan.pos += limit;
                    self.header = None;
                }
                Err(e @ msgpack::Error::Invalid { .. }) => {
                    self.skip_to_next_segment(e.to_string())?;
                }
            }
        }
    }
}

/// The events of a time range, in time order, with what went wrong reading them.
#[derive(Debug, Default)]
pub struct EventLog {
    /// Events with `from_us <= t_us < to_us` (a suspend also when its span reaches into
    /// the range), by `t_us` (file order among equal times).
    pub events: Vec<ContextEvent>,
    /// Damage found, with its file: torn tails and garbage (their events are lost, every
    /// other one is kept).
    pub issues: Vec<(PathBuf, Issue)>,
    /// Files or directories that could not be read (the others still were).
    pub errors: Vec<FileError>,
}

/// The events files of an events directory (`YYYY-MM-DD.zze`), oldest first, with their
/// day starts; a missing directory has none.
pub fn event_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, FileError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::io(dir, "list directory")(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let path = entry.map_err(FileError::io(dir, "list directory"))?.path();
        if let Some(day) = day_of_file(&path) {
            out.push((day, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Longest suspend a reader looks for in the day files before a range: a suspend
/// recorded on an earlier day may reach into it.
const SUSPEND_LOOKBACK_US: u64 = 7 * crate::time::US_PER_DAY;

/// Every event of `sources` (events directories or single `.zze` files, see [`locate`])
/// with `from_us <= t_us < to_us`, or whose span ([`ContextEvent::end_us`]) reaches into
/// the range; recovering, in time order.
pub fn read_range(sources: &[PathBuf], from_us: u64, to_us: u64) -> EventLog {
    let mut log = EventLog::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for s in sources {
        if s.is_file() {
            files.push(s.clone());
            continue;
        }
        match event_files(s) {
            Ok(days) => files.extend(
                days.into_iter()
                    .filter(|(day, _)| {
                        *day < to_us
                            && day.saturating_add(crate::time::US_PER_DAY)
                                > from_us.saturating_sub(SUSPEND_LOOKBACK_US)
                    })
                    .map(|(_, p)| p),
            ),
            Err(e) => log.errors.push(e),
        }
    }
    files.dedup();
    for f in files {
        let mut r = match EventReader::open(&f) {
            Ok(r) => r,
            Err(e) => {
                log.errors.push(e);
                continue;
            }
        };
        loop {
            match r.next_event() {
                Ok(Some(ev)) => {
                    if ev.t_us < to_us && ev.end_us() >= from_us {
                        log.events.push(ev);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log.errors.push(e);
                    break;
                }
            }
        }
        log.issues
            .extend(r.issues().iter().map(|i| (f.clone(), i.clone())));
    }
    log.events.sort_by_key(|e| e.t_us);
    log
}

/// Where the events of the inputs the tools accept are: for a data directory, its
/// `@events`; for a host directory or a frame file, the `@events` beside it (of the data
/// directory holding it); an events directory or `.zze` file itself. Each once, only
/// those that exist.
pub fn locate(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let candidates: Vec<PathBuf> = if p.is_file() {
            if day_of_file(p).is_some() || p.extension().is_some_and(|e| e == "zze") {
                vec![p.clone()]
            } else {
                // A frame file: <data>/<host>/<day>.zzp.
                p.parent()
                    .and_then(Path::parent)
                    .map(|d| vec![events_dir(d)])
                    .unwrap_or_default()
            }
        } else if p.file_name().is_some_and(|n| n == EVENTS_DIR) {
            vec![p.clone()]
        } else {
            // A data directory, or a host directory in one.
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let mut v = vec![events_dir(p)];
            if let Some(parent) = abs.parent() {
                v.push(events_dir(parent));
            }
            v
        };
        for c in candidates {
            let c = std::path::absolute(&c).unwrap_or(c);
            if c.exists() && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}
