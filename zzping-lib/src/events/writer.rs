//! The append-only writer of the events files (see the parent module).

use super::{ContextEvent, EventsHeader, MAX_PENDING_BYTES, day_file, events_dir};
use crate::file::FileError;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes of one day waiting to be written.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    events: u64,
}

/// Append-only writer of `<data_dir>/@events/YYYY-MM-DD.zze`.
///
/// [`EventWriter::append`] encodes into memory (an event goes to the file of the UTC day
/// of its `t_us`); [`EventWriter::flush`] writes, [`EventWriter::sync`] also fsyncs. The
/// first event of each day file in a writer's life is preceded by a segment header. A
/// failed write keeps the unwritten bytes for the next flush (which goes on where the
/// last one stopped, so the file stays one stream); beyond [`MAX_PENDING_BYTES`] the
/// buffered events are dropped and counted ([`EventWriter::dropped_events`]) and the
/// next event starts a fresh segment (whatever was partly written is a torn fragment
/// readers skip). Nothing here blocks longer than a write of the buffer.
pub struct EventWriter {
    dir: PathBuf,
    writer: String,
    /// Unwritten bytes per day start (µs).
    pending: BTreeMap<u64, Pending>,
    /// Days whose file already got this writer's current segment header (written or
    /// pending).
    headed: Vec<u64>,
    dropped: u64,
    appended: u64,
}

impl EventWriter {
    /// The writer of the events of `data_dir`, touching no file (the directory is created
    /// by the first flush). `writer`: program and version, for the segment headers.
    pub fn new(data_dir: &Path, writer: &str) -> Self {
        Self {
            dir: events_dir(data_dir),
            writer: writer.to_owned(),
            pending: BTreeMap::new(),
            headed: Vec::new(),
            dropped: 0,
            appended: 0,
        }
    }

    /// The events directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Events dropped because they could not be written (a backlog beyond
    /// [`MAX_PENDING_BYTES`]).
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Events appended so far (buffered or written).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Events buffered, not yet (fully) written.
    pub fn pending_events(&self) -> u64 {
        self.pending.values().map(|p| p.events).sum()
    }

    fn pending_bytes(&self) -> usize {
        self.pending.values().map(|p| p.bytes.len()).sum()
    }

    /// Buffers `ev` for the file of its day; `now_us` is the wall clock, a new segment's
    /// creation time. While the buffer holds twice [`MAX_PENDING_BYTES`] (flushes fail
    /// and none gave up yet), the event is dropped and counted.
    pub fn append(&mut self, ev: &ContextEvent, now_us: u64) {
        if self.pending_bytes() >= 2 * MAX_PENDING_BYTES {
            self.dropped += 1;
            return;
        }
        let day = crate::time::day_start_us(ev.t_us);
        let p = self.pending.entry(day).or_default();
        if !self.headed.contains(&day) {
            EventsHeader::new(now_us, &self.writer).encode(&mut p.bytes);
            self.headed.push(day);
        }
        ev.encode(&mut p.bytes);
        p.events += 1;
        self.appended += 1;
    }

    /// Writes the buffered events to their files (`fsync`: and syncs the files written).
    fn write(&mut self, fsync: bool) -> Result<(), FileError> {
        while let Some(mut entry) = self.pending.first_entry() {
            let day = *entry.key();
            let path = day_file(&self.dir, day);
            let p = entry.get_mut();
            let r = write_day(&self.dir, &path, &mut p.bytes, fsync);
            if p.bytes.is_empty() {
                entry.remove();
            }
            r?;
        }
        Ok(())
    }

    /// Writes buffered events; on failure they wait for the next call (see the type's
    /// docs for the bound).
    pub fn flush(&mut self) -> Result<(), FileError> {
        self.finish_write(false)
    }

    /// Flushes and fsyncs the files written.
    pub fn sync(&mut self) -> Result<(), FileError> {
        self.finish_write(true)
    }

    fn finish_write(&mut self, fsync: bool) -> Result<(), FileError> {
        let r = self.write(fsync);
        if r.is_err() && self.pending_bytes() > MAX_PENDING_BYTES {
            self.dropped += self.pending_events();
            self.pending.clear();
            // Partly written bytes are a torn fragment: start again with a header.
            self.headed.clear();
        }
        r
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Appends as much of `bytes` to `path` as it takes (removing what was written).
fn write_day(dir: &Path, path: &Path, bytes: &mut Vec<u8>, fsync: bool) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(FileError::io(dir, "create directory"))?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(FileError::io(path, "open for append"))?;
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
    bytes.drain(..written);
    r.map_err(FileError::io(path, "write"))?;
    if fsync {
        f.sync_data().map_err(FileError::io(path, "fsync"))?;
    }
    Ok(())
}
