//! A [`HistorySource`] over a data directory of frame files, for the daemon.

use super::server::{HistoryRead, HistorySource};
use crate::codec::QFrame;
use crate::store::{HostFrames, day_files, layout};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

/// Readers kept per host. Viewers that subscribed at about the same time read history at
/// about the same pace and share one (see [`WINDOW_FRAMES`]); this many groups of them
/// far apart in time each keep theirs.
pub const READERS_PER_HOST: usize = 4;
/// Frames a reader keeps after decoding them (about 100 KB), so every viewer whose
/// position is within them is served without decoding anything again.
pub const WINDOW_FRAMES: usize = 1024;

/// One forward pass over a host's files, with the frames it decoded last.
struct Reader {
    frames: HostFrames,
    /// The earliest start this reader can still serve: frames before it were skipped or
    /// have left the window.
    floor: u64,
    /// Decoded frames at or after `floor`, in file order.
    window: VecDeque<QFrame>,
    /// Every file is read.
    done: bool,
    last_used: u64,
}

/// Reads history from the host directories of a data directory (the layout
/// [`crate::file::HostWriter`] writes, see [`crate::store::layout`]) through
/// [`crate::store::HostFrames`].
///
/// Readers are shared, not per request: a request is served by a reader of its host
/// whose window holds its position, or that has not yet reached it (it reads on), and
/// only otherwise by a new reader (at most [`READERS_PER_HOST`] per host, the least
/// recently used one replaced). So any number of viewers prefilling the same hours at
/// once decode each file about once, and each call decodes at most the budget it is
/// given. A file that cannot be read is skipped (the viewer then simply gets less
/// prefill); nothing panics.
pub struct StoreHistory {
    data_dir: PathBuf,
    labels: HashMap<u32, String>,
    readers: HashMap<u32, Vec<Reader>>,
    /// Recycled frames (their code buffers are reused).
    spare: Vec<QFrame>,
    calls: u64,
    frames_decoded: u64,
}

impl StoreHistory {
    /// History under `data_dir`; hosts are declared with [`StoreHistory::set_host`].
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            labels: HashMap::new(),
            readers: HashMap::new(),
            spare: Vec::new(),
            calls: 0,
            frames_decoded: 0,
        }
    }

    /// Declares (or renames) the label of host `host_index`, as given to
    /// [`crate::file::HostInfo::label`].
    pub fn set_host(&mut self, host_index: u32, label: &str) {
        self.labels.insert(host_index, label.to_owned());
        self.readers.remove(&host_index);
    }

    /// Forgets host `host_index`.
    pub fn remove_host(&mut self, host_index: u32) {
        self.labels.remove(&host_index);
        self.readers.remove(&host_index);
    }

    /// Closes every reader and frees their windows (call it when no prefill is pending).
    pub fn close_all(&mut self) {
        self.readers.clear();
        self.spare = Vec::new();
    }

    /// Open readers, all hosts together.
    pub fn open_readers(&self) -> usize {
        self.readers.values().map(Vec::len).sum()
    }

    /// Frames decoded from disk so far (skipped ones included).
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }
}

impl HistorySource for StoreHistory {
    fn read_frames(
        &mut self,
        host_index: u32,
        from_us: u64,
        to_us: u64,
        budget: &mut usize,
        sink: &mut dyn FnMut(&QFrame) -> bool,
    ) -> HistoryRead {
        let Some(label) = self.labels.get(&host_index) else {
            return HistoryRead::Done;
        };
        self.calls += 1;
        let readers = self.readers.entry(host_index).or_default();
        // The reader closest below `from_us`.
        let pick = readers
            .iter()
            .enumerate()
            .filter(|(_, r)| r.floor <= from_us)
            .max_by_key(|(_, r)| r.floor)
            .map(|(i, _)| i);
        let i = match pick {
            Some(i) => i,
            None => {
                let Ok(days) = day_files(&layout::host_dir(&self.data_dir, label)) else {
                    return HistoryRead::Done;
                };
                // Every frame from the day of `from_us` on, decoded one by one (skipping
                // to `from_us` is paid from the budget too).
                let days: Vec<_> = days
                    .into_iter()
                    .filter(|d| d.may_hold(from_us, u64::MAX))
                    .collect();
                let r = Reader {
                    frames: HostFrames::new(days, 0, u64::MAX),
                    floor: from_us,
                    window: VecDeque::with_capacity(WINDOW_FRAMES),
                    done: false,
                    last_used: 0,
                };
                if readers.len() >= READERS_PER_HOST
                    && let Some(lru) = (0..readers.len()).min_by_key(|&i| readers[i].last_used)
                {
                    let old = readers.swap_remove(lru);
                    self.spare.extend(old.window);
                }
                readers.push(r);
                readers.len() - 1
            }
        };
        let r = &mut readers[i];
        r.last_used = self.calls;
        // 1. What the window holds.
        let at = r.window.partition_point(|q| q.start_us < from_us);
        for q in r.window.range(at..) {
            if q.start_us >= to_us {
                return HistoryRead::Done;
            }
            if q.start_us >= from_us && !sink(q) {
                return HistoryRead::More;
            }
        }
        // 2. Read on.
        loop {
            if r.done {
                return HistoryRead::Done;
            }
            if *budget == 0 {
                return HistoryRead::More;
            }
            *budget -= 1;
            self.frames_decoded += 1;
            let q = match r.frames.next_frame() {
                Ok(Some(q)) => q,
                Ok(None) => {
                    r.done = true;
                    return HistoryRead::Done;
                }
                // The next call goes on with the next file.
                Err(_) => continue,
            };
            if q.start_us < r.floor {
                continue;
            }
            if r.window.len() >= WINDOW_FRAMES
                && let Some(old) = r.window.pop_front()
            {
                r.floor = r.floor.max(old.end_us());
                self.spare.push(old);
            }
            let mut slot = self.spare.pop().unwrap_or_default();
            slot.clone_from(q);
            r.window.push_back(slot);
            let q = r.window.back().expect("just pushed");
            if q.start_us >= from_us {
                if q.start_us >= to_us {
                    return HistoryRead::Done;
                }
                if !sink(q) {
                    return HistoryRead::More;
                }
            }
        }
    }
}
