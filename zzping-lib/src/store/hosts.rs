//! Finding hosts: data directories, host directories and single frame files.

use super::frames::HostFrames;
use super::layout;
use crate::file::{FileError, SegmentHeader, first_header};
use crate::time::US_PER_DAY;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a path could not be resolved into hosts, or a host could not be selected.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file or directory could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The path holds no frame files.
    #[error(
        "{0}: no zzping data here (expected a data directory, a host directory or a .zzp file)"
    )]
    NoData(PathBuf),
    /// A data directory whose daemon recorded context events but no frames yet (it has
    /// just started, or every host was removed or aged out by retention).
    #[error(
        "{0}: a zzping data directory with context events ({events}) but no host's frames yet",
        events = crate::events::EVENTS_DIR
    )]
    NoHostData(PathBuf),
    /// No host of the inputs has this label, directory name, name or address.
    #[error("{want}: no such host among the inputs (available: {available})")]
    UnknownHost {
        /// What was asked for.
        want: String,
        /// The hosts there are, comma-separated.
        available: String,
    },
}

/// A frame file of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    /// The frame file.
    pub path: PathBuf,
    /// Start of its UTC day (µs since the epoch) when it is named `YYYY-MM-DD.zzp`;
    /// `None` for a file of another name, which is read for any time range.
    pub day_start_us: Option<u64>,
}

impl DayFile {
    /// The frame file at `path` (its day from its name, see [`layout::day_of_file`]).
    pub fn new(path: PathBuf) -> Self {
        Self {
            day_start_us: layout::day_of_file(&path),
            path,
        }
    }

    /// False when the file's day cannot hold frames starting in `[from_us, to_us)`.
    pub fn may_hold(&self, from_us: u64, to_us: u64) -> bool {
        self.day_start_us
            .is_none_or(|d| d < to_us && d.saturating_add(US_PER_DAY) > from_us)
    }
}

impl AsRef<Path> for DayFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// One host's data: its directory's name, how it is shown, and its frame files.
///
/// # Which header names a host
/// A host is its directory: every segment in it belongs to the host, whatever its
/// header says (an address can change over time: a name that resolves elsewhere starts
/// a new segment). The host's *naming header* is the first segment header of its newest
/// file that has one: it gives the address and name the daemon uses now (what a live
/// stream of the same host reports), at the cost of one small read. Tools that care about
/// every segment (dump, convert) get each header from [`HostFrames::next_event`];
/// [`Host::first_header`] gives the oldest.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The host directory's name: the on-disk identity (see [`layout::host_dir_name`]).
    pub dir_name: String,
    /// The host as people know it (see [`layout::display_label`]).
    pub label: String,
    /// The naming header (see above), if any file has a readable one.
    pub header: Option<SegmentHeader>,
    /// Its frame files, in time order.
    pub files: Vec<DayFile>,
}

impl Host {
    /// The host whose directory is named `dir_name` with `files`; reads its naming
    /// header. Files are put in time order (by name), duplicates dropped.
    pub fn new(dir_name: String, mut files: Vec<DayFile>) -> Self {
        files.sort_by(|a, b| (a.path.file_name(), &a.path).cmp(&(b.path.file_name(), &b.path)));
        files.dedup_by(|a, b| a.path == b.path);
        let header = files
            .iter()
            .rev()
            .find_map(|f| first_header(&f.path).ok().flatten());
        Self {
            label: layout::display_label(&dir_name, header.as_ref()),
            dir_name,
            header,
            files,
        }
    }

    /// The host directory at `dir` (its day files, see [`day_files`]).
    pub fn open(dir: &Path) -> Result<Self, FileError> {
        Ok(Self::new(dir_name_of(dir), day_files(dir)?))
    }

    /// The address in the naming header.
    pub fn address(&self) -> Option<&str> {
        self.header.as_ref().map(|h| h.host.as_str())
    }

    /// The configured name in the naming header.
    pub fn name(&self) -> Option<&str> {
        self.header.as_ref().and_then(|h| h.name.as_deref())
    }

    /// The first segment header of the oldest file that has one.
    pub fn first_header(&self) -> Option<SegmentHeader> {
        self.files
            .iter()
            .find_map(|f| first_header(&f.path).ok().flatten())
    }

    /// True when `want` names this host: its label, directory name (or a label that
    /// escapes to it), configured name, or address (IPv6 in any notation).
    pub fn matches(&self, want: &str) -> bool {
        if self.label == want
            || self.dir_name == want
            || self.dir_name == layout::host_dir_name(want)
        {
            return true;
        }
        if self.name() == Some(want) {
            return true;
        }
        match (self.address(), want.parse::<IpAddr>()) {
            (Some(a), Ok(w)) => a.parse::<IpAddr>().is_ok_and(|a| a == w),
            (Some(a), Err(_)) => a == want,
            (None, _) => false,
        }
    }

    /// The files whose day can hold frames starting in `[from_us, to_us)`.
    pub fn files_in(&self, from_us: u64, to_us: u64) -> impl Iterator<Item = &DayFile> {
        self.files
            .iter()
            .filter(move |f| f.may_hold(from_us, to_us))
    }

    /// Streams the frames starting in `[from_us, to_us)`, across files, in file order.
    pub fn frames(&self, from_us: u64, to_us: u64) -> HostFrames {
        HostFrames::new(self.files.iter().cloned(), from_us, to_us)
    }
}

/// The name of a directory (the last component of its path, or of the current directory
/// for `""` and `.`).
fn dir_name_of(dir: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    name(dir)
        .or_else(|| std::path::absolute(dir).ok().and_then(|a| name(&a)))
        .unwrap_or_default()
}

/// The frame files of a host directory named `YYYY-MM-DD.zzp`, oldest first (other files
/// are ignored).
pub fn day_files(host_dir: &Path) -> Result<Vec<DayFile>, FileError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(host_dir).map_err(FileError::io(host_dir, "list directory"))?;
    for entry in rd {
        let entry = entry.map_err(FileError::io(host_dir, "list directory"))?;
        let path = entry.path();
        if let Some(day) = layout::day_of_file(&path) {
            out.push(DayFile {
                path,
                day_start_us: Some(day),
            });
        }
    }
    out.sort_by_key(|d| d.day_start_us);
    Ok(out)
}

/// The host directories under `data_dir` (those holding at least one day file, never the
/// events directory) with their day files, by directory name; no file is read.
pub(crate) fn host_dirs(data_dir: &Path) -> Result<Vec<(PathBuf, Vec<DayFile>)>, FileError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(data_dir).map_err(FileError::io(data_dir, "list directory"))?;
    for entry in rd {
        let entry = entry.map_err(FileError::io(data_dir, "list directory"))?;
        let path = entry.path();
        // The events directory is no host (its name is none a host can have).
        if !path.is_dir() || entry.file_name() == crate::events::EVENTS_DIR {
            continue;
        }
        let days = day_files(&path)?;
        if !days.is_empty() {
            out.push((path, days));
        }
    }
    out.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
    Ok(out)
}

/// The hosts under `data_dir` (host directories holding at least one day file), by
/// directory name.
pub fn list_hosts(data_dir: &Path) -> Result<Vec<Host>, FileError> {
    Ok(host_dirs(data_dir)?
        .into_iter()
        .map(|(dir, days)| Host::new(dir_name_of(&dir), days))
        .collect())
}

/// Hosts found under some paths, and the paths that could not be used.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The hosts, in the order the paths name them (a data directory's by directory name).
    pub hosts: Vec<Host>,
    /// One error per path that could not be used (the others still give their hosts).
    pub errors: Vec<StoreError>,
}

/// Resolves paths as the tools and the viewer accept them, in any mix: data directories
/// (one sub-directory per host), host directories (day files) and single frame files (of
/// the host named by their directory). Files of one host given several ways are merged.
pub fn resolve(paths: &[PathBuf]) -> Resolved {
    let mut groups: Vec<(String, Vec<DayFile>)> = Vec::new();
    let mut add =
        |dir_name: String, files: Vec<DayFile>| match groups.iter_mut().find(|g| g.0 == dir_name) {
            Some(g) => g.1.extend(files),
            None => groups.push((dir_name, files)),
        };
    let mut errors = Vec::new();
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                errors.push(FileError::io(p, "open")(e).into());
                continue;
            }
        };
        if meta.is_file() {
            let name = match p.parent() {
                Some(dir) if !dir_name_of(dir).is_empty() => dir_name_of(dir),
                _ => p
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            };
            add(name, vec![DayFile::new(p.clone())]);
            continue;
        }
        match day_files(p) {
            Ok(days) if !days.is_empty() => {
                add(dir_name_of(p), days);
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                errors.push(e.into());
                continue;
            }
        }
        match host_dirs(p) {
            Ok(hosts) if hosts.is_empty() => {
                errors.push(if p.join(crate::events::EVENTS_DIR).is_dir() {
                    StoreError::NoHostData(p.clone())
                } else {
                    StoreError::NoData(p.clone())
                })
            }
            Ok(hosts) => {
                for (dir, days) in hosts {
                    add(dir_name_of(&dir), days);
                }
            }
            Err(e) => errors.push(e.into()),
        }
    }
    Resolved {
        hosts: groups
            .into_iter()
            .map(|(name, files)| Host::new(name, files))
            .collect(),
        errors,
    }
}

/// The hosts named by `wants` (see [`Host::matches`]; empty: all of them), in their
/// order; an error names the first `want` that matches none.
pub fn select(hosts: Vec<Host>, wants: &[String]) -> Result<Vec<Host>, StoreError> {
    if wants.is_empty() {
        return Ok(hosts);
    }
    if let Some(want) = wants.iter().find(|w| !hosts.iter().any(|h| h.matches(w))) {
        return Err(StoreError::UnknownHost {
            want: want.clone(),
            available: hosts
                .iter()
                .map(|h| h.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(hosts
        .into_iter()
        .filter(|h| wants.iter().any(|w| h.matches(w)))
        .collect())
}
