//! A [`HistorySource`] over a data directory of frame files, for the daemon.

use super::server::HistorySource;
use crate::codec::QFrame;
use crate::store::{HostFrames, day_files, layout};
use std::collections::HashMap;
use std::path::PathBuf;

/// Most readers kept open between calls (one per host and range being streamed).
const MAX_OPEN: usize = 64;

struct Open {
    frames: HostFrames,
    /// Where the next call is expected to resume.
    next_from: u64,
}

/// Reads history from the host directories of a data directory (the layout
/// [`crate::file::HostWriter`] writes, see [`crate::store::layout`]) through
/// [`crate::store::HostFrames`].
///
/// A reader stays open between the server's paced calls, so streaming a long prefill
/// reads each file once. A file that cannot be read is skipped (the viewer then simply
/// gets less prefill); nothing panics.
pub struct StoreHistory {
    data_dir: PathBuf,
    labels: HashMap<u32, String>,
    open: HashMap<(u32, u64), Open>,
}

impl StoreHistory {
    /// History under `data_dir`; hosts are declared with [`StoreHistory::set_host`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            labels: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// Declares (or renames) the label of host `host_index`, as given to
    /// [`crate::file::HostInfo::label`].
    pub fn set_host(&mut self, host_index: u32, label: &str) {
        self.labels.insert(host_index, label.to_owned());
        self.open.retain(|(h, _), _| *h != host_index);
    }

    /// Forgets host `host_index`.
    pub fn remove_host(&mut self, host_index: u32) {
        self.labels.remove(&host_index);
        self.open.retain(|(h, _), _| *h != host_index);
    }
}

impl HistorySource for StoreHistory {
    fn read_frames(
        &mut self,
        host_index: u32,
        from_us: u64,
        to_us: u64,
        max_frames: usize,
        sink: &mut dyn FnMut(&QFrame),
    ) -> usize {
        let Some(label) = self.labels.get(&host_index) else {
            return 0;
        };
        let key = (host_index, to_us);
        let resumable = self.open.get(&key).is_some_and(|o| o.next_from == from_us);
        if !resumable {
            self.open.remove(&key);
            if self.open.len() >= MAX_OPEN {
                self.open.clear();
            }
            let Ok(days) = day_files(&layout::host_dir(&self.data_dir, label)) else {
                return 0;
            };
            self.open.insert(
                key,
                Open {
                    frames: HostFrames::new(days, from_us, to_us),
                    next_from: from_us,
                },
            );
        }
        let Some(o) = self.open.get_mut(&key) else {
            return 0;
        };
        let mut n = 0;
        while n < max_frames {
            match o.frames.next_frame() {
                Ok(Some(q)) => {
                    if q.start_us < o.next_from {
                        continue;
                    }
                    o.next_from = q.end_us();
                    sink(q);
                    n += 1;
                }
                // The next call goes on with the next file.
                Err(_) => {}
                Ok(None) => {
                    self.open.remove(&key);
                    return n;
                }
            }
        }
        n
    }
}
