//! A data directory: one directory per host, one frame file per UTC day.
//!
//! ```text
//! <data_dir>/<host>/YYYY-MM-DD.zzp     frames (see crate::file)
//! <data_dir>/<host>/YYYY-MM-DD.zzs     zoom pyramid sidecar (see crate::pyramid)
//! ```
//!
//! One file per UTC *day* (not per hour): at 100 pings/s a day is about 12 MB, so a year
//! is 365 files per host — few enough to list instantly, large enough that per-file costs
//! (headers, sidecars, open calls) vanish, and small enough that rebuilding a stale
//! sidecar takes well under a second. Days are UTC so that files never overlap across DST
//! changes.
//!
//! [`HostFrames`] streams a host's frames over a time range across its files, in order,
//! in constant memory.

use crate::codec::QFrame;
use crate::file::{FRAME_FILE_EXT, FileError, FileReader, Issue, SegmentHeader};
use crate::quantizer::Quantizer;
use crate::time::{US_PER_DAY, parse_day_name};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One host's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDir {
    /// The directory.
    pub path: PathBuf,
    /// Directory name (the host's label, made safe).
    pub label: String,
}

/// A day file of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    /// Start of the UTC day, µs since the epoch.
    pub day_start_us: u64,
    /// The frame file.
    pub path: PathBuf,
}

/// Host directories under `data_dir` (those holding at least one frame file), by label.
pub fn list_hosts(data_dir: &Path) -> Result<Vec<HostDir>, FileError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(data_dir).map_err(FileError::io(data_dir, "list directory"))?;
    for entry in rd {
        let entry = entry.map_err(FileError::io(data_dir, "list directory"))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let host = HostDir::new(&path);
        if !host.day_files()?.is_empty() {
            out.push(host);
        }
    }
    out.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(out)
}

impl HostDir {
    /// The host directory at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            label: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The frame files, oldest first. Files whose names are not `YYYY-MM-DD.zzp` are
    /// ignored.
    pub fn day_files(&self) -> Result<Vec<DayFile>, FileError> {
        let mut out = Vec::new();
        let rd =
            std::fs::read_dir(&self.path).map_err(FileError::io(&self.path, "list directory"))?;
        for entry in rd {
            let entry = entry.map_err(FileError::io(&self.path, "list directory"))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(FRAME_FILE_EXT) {
                continue;
            }
            if let Some(day) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(parse_day_name)
            {
                out.push(DayFile {
                    day_start_us: day,
                    path,
                });
            }
        }
        out.sort_by_key(|d| d.day_start_us);
        Ok(out)
    }

    /// Streams frames starting in `[from_us, to_us)`, across day files, in file order.
    pub fn frames(&self, from_us: u64, to_us: u64) -> Result<HostFrames, FileError> {
        let files = self
            .day_files()?
            .into_iter()
            .filter(|d| d.day_start_us < to_us && d.day_start_us + US_PER_DAY > from_us)
            .map(|d| d.path)
            .collect();
        Ok(HostFrames::new(files, from_us, to_us))
    }
}

/// Streaming iterator over frames of several files (see [`HostDir::frames`]).
pub struct HostFrames {
    files: VecDeque<PathBuf>,
    current: Option<FileReader>,
    from_us: u64,
    to_us: u64,
    issues: Vec<(PathBuf, Issue)>,
}

impl HostFrames {
    /// Frames starting in `[from_us, to_us)` from `files`, read in the given order.
    pub fn new(files: Vec<PathBuf>, from_us: u64, to_us: u64) -> Self {
        Self {
            files: files.into(),
            current: None,
            from_us,
            to_us,
            issues: Vec::new(),
        }
    }

    fn close_current(&mut self) {
        if let Some(r) = self.current.take() {
            let path = r.path().to_path_buf();
            self.issues
                .extend(r.issues().iter().map(|i| (path.clone(), i.clone())));
        }
    }

    /// The next frame in range, or `None` when every file is read.
    pub fn next_frame(&mut self) -> Result<Option<&QFrame>, FileError> {
        loop {
            if self.current.is_none() {
                match self.files.pop_front() {
                    Some(p) => self.current = Some(FileReader::open(&p)?),
                    None => return Ok(None),
                }
            }
            let r = self.current.as_mut().expect("set above");
            // Borrow dance: decide on a copy of the start time, then re-borrow to return.
            let start = match r.next_frame()? {
                Some(f) => f.start_us,
                None => {
                    self.close_current();
                    continue;
                }
            };
            if start >= self.from_us && start < self.to_us {
                return Ok(self.current.as_mut().and_then(|r| r.last_frame()));
            }
        }
    }

    /// Header of the segment of the last frame returned.
    pub fn header(&self) -> Option<&Arc<SegmentHeader>> {
        self.current.as_ref().and_then(|r| r.header())
    }

    /// Quantizer of the segment of the last frame returned.
    pub fn quantizer(&self) -> Option<&Arc<Quantizer>> {
        self.current.as_ref().and_then(|r| r.quantizer())
    }

    /// Problems found in files already finished, and in the current one.
    pub fn issues(&self) -> Vec<(PathBuf, Issue)> {
        let mut v = self.issues.clone();
        if let Some(r) = &self.current {
            v.extend(
                r.issues()
                    .iter()
                    .map(|i| (r.path().to_path_buf(), i.clone())),
            );
        }
        v
    }
}

/// Deletes frame files (and their sidecars) of every host whose whole day ended more than
/// `days` days before `now_us`. Returns the deleted paths.
pub fn remove_older_than(
    data_dir: &Path,
    days: u32,
    now_us: u64,
) -> Result<Vec<PathBuf>, FileError> {
    let cutoff = now_us.saturating_sub(u64::from(days) * US_PER_DAY);
    let mut removed = Vec::new();
    for host in list_hosts(data_dir)? {
        for d in host.day_files()? {
            if d.day_start_us + US_PER_DAY <= cutoff {
                let sidecar = crate::pyramid::sidecar_path(&d.path);
                std::fs::remove_file(&d.path).map_err(FileError::io(&d.path, "remove"))?;
                removed.push(d.path);
                if sidecar.exists() {
                    std::fs::remove_file(&sidecar).map_err(FileError::io(&sidecar, "remove"))?;
                    removed.push(sidecar);
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{HostInfo, HostWriter, WriterConfig};
    use crate::frame::Frame;

    #[test]
    fn frames_across_days_in_range_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let day0 = 19_000 * US_PER_DAY;
        let mut w = HostWriter::open(
            dir.path(),
            HostInfo {
                label: "::1".into(),
                address: "::1".parse().unwrap(),
                name: None,
            },
            WriterConfig {
                period_us: 1_000_000,
                precision: 0.01,
                writer: "t".into(),
            },
        )
        .unwrap();
        // Three days, 10 frames each straddling midnight.
        let mut starts = Vec::new();
        for d in 0..3u64 {
            for i in 0..10u64 {
                let t = day0 + d * US_PER_DAY + i * 1_000_000;
                let mut f = Frame::new(t, 1_000_000);
                f.sent = 1;
                f.rtts_us.push(300 + i as u32);
                w.append(&f).unwrap();
                starts.push(t);
            }
        }
        w.sync().unwrap();
        drop(w);
        let hosts = list_hosts(dir.path()).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].label, "__1");
        assert_eq!(hosts[0].day_files().unwrap().len(), 3);
        let from = day0 + 5 * 1_000_000;
        let to = day0 + 2 * US_PER_DAY + 3 * 1_000_000;
        let mut it = hosts[0].frames(from, to).unwrap();
        let mut got = Vec::new();
        while let Some(f) = it.next_frame().unwrap() {
            got.push(f.start_us);
        }
        let want: Vec<u64> = starts
            .into_iter()
            .filter(|&t| t >= from && t < to)
            .collect();
        assert_eq!(got, want);
        assert!(it.issues().is_empty());

        let removed = remove_older_than(dir.path(), 1, day0 + 2 * US_PER_DAY + 5).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(hosts[0].day_files().unwrap().len(), 2);
    }
}
