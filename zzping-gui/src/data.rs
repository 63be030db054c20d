//! Finding hosts and day files on disk, and loading their pyramids.

use crate::model::{Day, DayState, HostLabel, Lane, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use zzping_lib::file::{FRAME_FILE_EXT, FileReader};
use zzping_lib::pyramid;
use zzping_lib::store::{HostDir, list_hosts};
use zzping_lib::time::parse_day_name;

/// Why a path given to the viewer could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The path does not exist or cannot be read.
    #[error("{0}: cannot open: {1}")]
    Io(PathBuf, String),
    /// The path holds no zzping data.
    #[error(
        "{0}: no zzping data here (expected a data directory, a host directory or a .zzp file)"
    )]
    NoData(PathBuf),
}

/// A host found on disk, not loaded yet.
#[derive(Debug, Clone)]
pub struct FoundHost {
    /// Legend identity.
    pub label: HostLabel,
    /// Its day files, oldest first.
    pub days: Vec<Day>,
}

impl FoundHost {
    /// An offline lane for this host (days pending).
    pub fn into_lane(self) -> Lane {
        Lane::new(self.label, Source::Files(self.days))
    }
}

/// Finds hosts under each path: a data directory (one sub-directory per host), a host
/// directory (day files) or single `.zzp` files (grouped by their directory).
pub fn scan(paths: &[PathBuf]) -> (Vec<FoundHost>, Vec<OpenError>) {
    let mut hosts: Vec<FoundHost> = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match scan_one(p) {
            Ok(found) => {
                for h in found {
                    // Merge files of the same host directory given twice.
                    if let Some(existing) =
                        hosts.iter_mut().find(|e| e.label.label == h.label.label)
                    {
                        for d in h.days {
                            if !existing.days.iter().any(|e| e.path == d.path) {
                                existing.days.push(d);
                            }
                        }
                        existing.days.sort_by_key(|d| d.day_start_us);
                    } else {
                        hosts.push(h);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (hosts, errors)
}

fn scan_one(p: &Path) -> Result<Vec<FoundHost>, OpenError> {
    let meta = std::fs::metadata(p).map_err(|e| OpenError::Io(p.to_path_buf(), e.to_string()))?;
    if meta.is_file() {
        let day = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_day_name)
            .unwrap_or(0);
        let dir = p.parent().unwrap_or(Path::new("."));
        let mut label = host_label(&HostDir::new(dir), Some(p));
        if label.label.is_empty() {
            label.label = p.display().to_string();
        }
        return Ok(vec![FoundHost {
            label,
            days: vec![Day {
                day_start_us: day,
                path: p.to_path_buf(),
                state: DayState::Pending,
                outages: None,
            }],
        }]);
    }
    let as_host = HostDir::new(p);
    let own_days = as_host
        .day_files()
        .map_err(|e| OpenError::Io(p.to_path_buf(), e.to_string()))?;
    if !own_days.is_empty() {
        return Ok(vec![found(&as_host, own_days)]);
    }
    let hosts = list_hosts(p).map_err(|e| OpenError::Io(p.to_path_buf(), e.to_string()))?;
    if hosts.is_empty() {
        return Err(OpenError::NoData(p.to_path_buf()));
    }
    let mut out = Vec::new();
    for h in hosts {
        let days = h
            .day_files()
            .map_err(|e| OpenError::Io(h.path.clone(), e.to_string()))?;
        out.push(found(&h, days));
    }
    Ok(out)
}

fn found(h: &HostDir, days: Vec<zzping_lib::store::DayFile>) -> FoundHost {
    let first = days.last().map(|d| d.path.clone());
    FoundHost {
        label: host_label(h, first.as_deref()),
        days: days
            .into_iter()
            .map(|d| Day {
                day_start_us: d.day_start_us,
                path: d.path,
                state: DayState::Pending,
                outages: None,
            })
            .collect(),
    }
}

/// The legend identity of a host: its directory name, plus address and name from the
/// first segment header of `file` (read lazily: one header, not the file).
fn host_label(h: &HostDir, file: Option<&Path>) -> HostLabel {
    let mut label = HostLabel {
        label: h.label.clone(),
        address: None,
        name: None,
    };
    if let Some(f) = file
        && f.extension().and_then(|e| e.to_str()) == Some(FRAME_FILE_EXT)
        && let Ok(mut r) = FileReader::open(f)
    {
        // The header is parsed with the first frame.
        let _ = r.next_frame();
        if let Some(hd) = r.header() {
            label.address = Some(hd.host.clone());
            label.name = hd.name.clone();
        }
    }
    label
}

/// Loads the persisted pyramid levels of a day file, building (and persisting) the
/// sidecar when it is missing or stale. A sidecar that cannot be written (read-only data)
/// is built in memory only.
pub fn load_day(path: &Path) -> DayState {
    let r = pyramid::load_or_build(path, true).or_else(|e| {
        tracing::warn!(
            "{}: cannot persist sidecar ({e}); building in memory",
            path.display()
        );
        pyramid::load_or_build(path, false)
    });
    match r {
        Ok((p, fresh)) => {
            if let pyramid::Freshness::Rebuilt(why) = fresh {
                tracing::info!("{}: sidecar rebuilt ({why})", path.display());
            }
            DayState::Loaded(Arc::new(p))
        }
        Err(e) => DayState::Failed(e.to_string()),
    }
}

/// Reads a day file's frames once and returns the runs `[start, end)` of frames whose
/// every request was lost. Summaries cannot tell a 300 ms outage from the same number of
/// pings lost here and there, so the viewer keeps this small index beside the pyramid
/// (tens of bytes per outage) to mark every outage at every zoom.
pub fn index_outages(path: &Path) -> Result<Vec<(u64, u64)>, String> {
    let mut r = FileReader::open(path).map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                if f.received() == 0 && f.lost > 0 {
                    crate::model::push_outage(&mut runs, f.start_us, f.end_us());
                }
            }
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(runs)
}

/// Opens `paths` and loads every day synchronously (for tests, benchmarks and small data).
pub fn open_blocking(paths: &[PathBuf]) -> (Vec<Lane>, Vec<String>) {
    open_blocking_with(paths, true)
}

/// [`open_blocking`], optionally without building the outage index (what the window shows
/// first: the index follows in the background).
pub fn open_blocking_with(paths: &[PathBuf], outages: bool) -> (Vec<Lane>, Vec<String>) {
    let (hosts, errors) = scan(paths);
    let mut lanes = Vec::new();
    for h in hosts {
        let days: Vec<PathBuf> = h.days.iter().map(|d| d.path.clone()).collect();
        let mut lane = h.into_lane();
        for (i, p) in days.iter().enumerate() {
            lane.set_day(i, load_day(p));
            if !outages {
                continue;
            }
            if let Ok(runs) = index_outages(p) {
                lane.set_outages(i, runs);
            }
        }
        lanes.push(lane);
    }
    (lanes, errors.into_iter().map(|e| e.to_string()).collect())
}
