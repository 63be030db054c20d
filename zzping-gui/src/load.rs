//! Loading data off the UI thread: the day pyramids (sidecars with the outage index) at
//! open, and the raw frames of the fine levels when a view needs them.
//!
//! Lanes never read files: when a view needs frames they do not have, a lane asks for
//! them with a [`FineRequest`] and keeps its previous picture; the app hands the request
//! to a [`Loader`] on a background thread ([`background`]) and gives the lane the
//! [`FineData`] when it arrives. Tests and benchmarks may run the loader inline instead
//! (see [`crate::App::set_loader`]).

use iced::Task;
use std::path::Path;
use std::sync::Arc;
use zzping_lib::pyramid::{self, DayPyramid};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::{DayFile, HostFrames};
use zzping_lib::summary::Summary;

/// Loading state of one day file.
#[derive(Debug, Clone)]
pub enum DayState {
    /// Not loaded yet.
    Pending,
    /// Sidecar levels (and the outage index) loaded.
    Loaded(Arc<DayPyramid>),
    /// Could not be loaded (the reason).
    Failed(String),
}

/// Loads the persisted pyramid levels (and the outage index) of a day file, building
/// (and persisting) the sidecar when it is missing, stale or outdated. A sidecar that
/// cannot be written (read-only data) is built in memory only.
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

/// Which fine data a lane asked for: summaries of `width_us` (0: one per frame) of the
/// frames starting in `[from_us, to_us)`, for the lane's files as of `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineKey {
    /// The lane's file epoch (a result for an older set of files is dropped).
    pub epoch: u64,
    /// Summary width, µs (0: one summary per frame).
    pub width_us: u64,
    /// Start of the range, µs.
    pub from_us: u64,
    /// End of the range (exclusive), µs.
    pub to_us: u64,
}

/// A lane's request for fine data: the key and the files to read.
#[derive(Debug, Clone, PartialEq)]
pub struct FineRequest {
    /// What is asked for.
    pub key: FineKey,
    /// The day files that may hold it.
    pub files: Vec<DayFile>,
}

/// The answer to a [`FineRequest`].
#[derive(Debug, Clone, Default)]
pub struct FineData {
    /// Summaries, ascending by start.
    pub items: Vec<Summary>,
    /// The quantizer of their codes (of the first segment read).
    pub quantizer: Option<Arc<Quantizer>>,
    /// Problems found (a file that could not be read is one; the others are read).
    pub issues: Vec<String>,
}

/// Reads what lanes ask for. Called on a background thread (or inline in tests and
/// benchmarks): it may block.
pub trait Loader: Send + Sync + std::fmt::Debug {
    /// Reads the frames of `req`.
    fn read_fine(&self, req: &FineRequest) -> FineData;
}

/// The loader of the window: reads the day files through [`zzping_lib::store`].
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskLoader;

impl Loader for DiskLoader {
    fn read_fine(&self, req: &FineRequest) -> FineData {
        read_fine(req)
    }
}

/// Reads the frames of `req` into summaries of its width (0: one per frame).
pub fn read_fine(req: &FineRequest) -> FineData {
    let FineKey {
        width_us,
        from_us,
        to_us,
        ..
    } = req.key;
    let mut out = FineData::default();
    let mut hf = HostFrames::new(req.files.iter().cloned(), from_us, to_us);
    loop {
        match hf.next_frame() {
            Ok(Some(f)) => match f.start_us.checked_div(width_us) {
                None => {
                    let mut s = Summary::new(f.start_us, u64::from(f.period_us));
                    s.add_frame(f);
                    out.items.push(s);
                }
                Some(k) => {
                    let b = k * width_us;
                    match out.items.last_mut() {
                        Some(s) if s.start_us == b => s.add_frame(f),
                        _ => {
                            let mut s = Summary::new(b, width_us);
                            s.add_frame(f);
                            out.items.push(s);
                        }
                    }
                }
            },
            Ok(None) => break,
            // The next call goes on with the next file.
            Err(e) => {
                out.issues.push(e.to_string());
                continue;
            }
        }
        if out.quantizer.is_none() {
            out.quantizer = hf.quantizer().cloned();
        }
    }
    if !out.items.is_sorted_by_key(|s| s.start_us) {
        out.items.sort_by_key(|s| s.start_us);
    }
    out.issues.extend(
        hf.issues()
            .into_iter()
            .map(|(p, i)| format!("{}: {i}", p.display())),
    );
    out
}

/// A task whose output is `f()` computed on a thread of its own (started now), so the
/// UI thread never waits for it.
pub fn background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
    let (tx, rx) = iced::futures::channel::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("zzping-loader".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a loader thread: {e}");
        return Task::none();
    }
    Task::future(async move { rx.await.ok() }).and_then(Task::done)
}

/// Loads day files' pyramids on one background thread, in the given order, reporting
/// each as `(job, state)`.
pub fn days_in_background<J: Clone + Send + 'static>(
    jobs: Vec<(J, std::path::PathBuf)>,
) -> Task<(J, DayState)> {
    if jobs.is_empty() {
        return Task::none();
    }
    let (tx, rx) = iced::futures::channel::mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("zzping-days".into())
        .spawn(move || {
            for (job, path) in jobs {
                if tx.unbounded_send((job, load_day(&path))).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the loader thread: {e}");
        return Task::none();
    }
    Task::run(rx, |m| m)
}

/// Judges which hosts limit ICMP ([`crate::limits`]) on one background thread, day by
/// day, newest first (reading every lane's file of the day), reporting each day as
/// `(day start, limits)`.
pub fn limits_in_background(
    lanes: Vec<Vec<DayFile>>,
) -> Task<(Option<u64>, crate::limits::DayLimits)> {
    let days = crate::limits::days(&lanes);
    if days.is_empty() {
        return Task::none();
    }
    let (tx, rx) = iced::futures::channel::mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("zzping-limits".into())
        .spawn(move || {
            for (day, files) in days {
                let judged = crate::limits::judge_day(day, &files);
                if tx.unbounded_send((day, judged)).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread judging ICMP limits: {e}");
        return Task::none();
    }
    Task::run(rx, |m| m)
}
