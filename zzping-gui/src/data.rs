//! Finding hosts and day files on disk (through [`zzping_lib::store`]); opening them in
//! one go (tests, benchmarks). The window loads them in the background ([`crate::load`]).

pub use crate::load::load_day;
use crate::model::{Day, HostLabel, Lane, Source};
use std::path::PathBuf;
use zzping_lib::store::{self, Host, StoreError};

/// A host found on disk, not loaded yet.
#[derive(Debug, Clone)]
pub struct FoundHost {
    /// Legend identity.
    pub label: HostLabel,
    /// Its day files, oldest first.
    pub days: Vec<Day>,
}

impl FoundHost {
    /// The host `h` (days pending).
    pub fn new(h: Host) -> Self {
        Self {
            label: HostLabel {
                key: h.dir_name.clone(),
                address: h.address().map(str::to_owned),
                name: h.name().map(str::to_owned),
                label: h.label,
            },
            days: h.files.into_iter().map(Day::new).collect(),
        }
    }

    /// An offline lane for this host (days pending).
    pub fn into_lane(self) -> Lane {
        Lane::new(self.label, Source::Files(self.days))
    }
}

/// Finds hosts under each path: a data directory (one sub-directory per host), a host
/// directory (day files) or single `.zzp` files (grouped by their directory); see
/// [`store::resolve`]. A path that cannot be used gives an error; the others their hosts.
pub fn scan(paths: &[PathBuf]) -> (Vec<FoundHost>, Vec<StoreError>) {
    let r = store::resolve(paths);
    (r.hosts.into_iter().map(FoundHost::new).collect(), r.errors)
}

/// Opens `paths` and loads every day synchronously (for tests, benchmarks and small data).
pub fn open_blocking(paths: &[PathBuf]) -> (Vec<Lane>, Vec<String>) {
    let (hosts, errors) = scan(paths);
    let mut lanes = Vec::new();
    for h in hosts {
        let days: Vec<PathBuf> = h.days.iter().map(|d| d.file.path.clone()).collect();
        let mut lane = h.into_lane();
        for (i, p) in days.iter().enumerate() {
            lane.set_day(i, load_day(p));
        }
        lanes.push(lane);
    }
    (lanes, errors.into_iter().map(|e| e.to_string()).collect())
}
