//! The window never reads a file on the UI thread. A pan to where the lanes have no raw
//! frames hands the reads to a loader on background threads; while they block, the lanes
//! keep their previous picture and every message is handled at once; when they finish,
//! the new picture is the one an inline read gives.
//!
//! The loader here blocks each read until the test releases it, so "the UI thread did not
//! wait for the disk" is not a matter of timing: a read on the test's (the UI) thread
//! fails at once, and `update` returning while every read is still blocked shows it
//! waited for none.

mod common;

use common::{T0, app_with, standard_host};
use iced_test::runtime::Action;
use iced_test::runtime::task::into_stream;
use iced_test::simulator;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;
use zzping_gui::load::{DiskLoader, FineData, FineRequest, Loader};
use zzping_gui::{App, Message};

/// How long a wait on the other side of the gate may last. Starting a thread takes
/// microseconds and the test releases the gate right after its checks; this bound only
/// turns a broken hand-over into a failure instead of a hang.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Gate {
    /// Threads that entered `read_fine`, in order.
    readers: Vec<ThreadId>,
    released: bool,
}

/// Reads from disk, but only once released; records which threads read, and refuses to
/// read on the UI thread.
#[derive(Debug)]
struct GatedLoader {
    ui: ThreadId,
    gate: Mutex<Gate>,
    changed: Condvar,
}

impl GatedLoader {
    /// A closed gate; the calling thread is the UI thread.
    fn new() -> Self {
        Self {
            ui: std::thread::current().id(),
            gate: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    /// Waits until `n` reads have started; returns their threads.
    fn wait_for_readers(&self, n: usize) -> Vec<ThreadId> {
        let g = self.gate.lock().unwrap();
        let (g, timeout) = self
            .changed
            .wait_timeout_while(g, HAND_OVER_TIMEOUT, |g| g.readers.len() < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} reads started",
            g.readers.len()
        );
        g.readers.clone()
    }

    fn release(&self) {
        self.gate.lock().unwrap().released = true;
        self.changed.notify_all();
    }
}

impl Loader for GatedLoader {
    fn read_fine(&self, req: &FineRequest) -> FineData {
        let me = std::thread::current().id();
        assert_ne!(me, self.ui, "a read on the UI thread");
        let mut g = self.gate.lock().unwrap();
        g.readers.push(me);
        self.changed.notify_all();
        let (_g, timeout) = self
            .changed
            .wait_timeout_while(g, HAND_OVER_TIMEOUT, |g| !g.released)
            .unwrap();
        assert!(!timeout.timed_out(), "never released");
        DiskLoader.read_fine(req)
    }
}

/// Runs a task to its end (its background threads must be able to finish) and returns
/// the messages it produced.
fn run_task(task: iced::Task<Message>) -> Vec<Message> {
    use iced::futures::StreamExt;
    let Some(stream) = into_stream(task) else {
        return Vec::new();
    };
    iced::futures::executor::block_on(stream.collect::<Vec<_>>())
        .into_iter()
        .filter_map(|a| match a {
            Action::Output(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pan_over_a_slow_disk_keeps_the_picture_and_the_window_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let a = standard_host(dir.path(), "alpha", true);
    let b = standard_host(dir.path(), "beta", false);
    // 60 s over 700 px: raw frames, read (inline) for the view ±50 %.
    let mut app = app_with(&[a.clone(), b.clone()], 700.0);
    assert_eq!(app.offline[0].lane.level_us, 0);
    let before_view = app.view_range();
    let before: Vec<_> = app.offline.iter().map(|s| s.lane.columns.clone()).collect();

    let loader = Arc::new(GatedLoader::new());
    app.set_loader(loader.clone(), true);
    // Within the frames read: no read at all.
    let task = app.update(Message::Pan(0.2));
    assert_eq!(task.units(), 0, "a pan inside what was read needs no read");
    assert!(app.offline.iter().all(|s| !s.lane.is_waiting()));
    // Past them (the reads covered 30 s after the view; this pans 45 s): a read per lane.
    let _ = app.update(Message::Pan(-0.2));
    let task = app.update(Message::Pan(0.75));
    let after_view = app.view_range();
    assert!(after_view.t0_us > before_view.t0_us + 40e6);
    let readers = loader.wait_for_readers(2);
    assert!(readers.iter().all(|&t| t != loader.ui));

    // While the reads block: the previous picture, where it was folded.
    for (s, cols) in app.offline.iter().zip(&before) {
        assert!(s.lane.is_waiting());
        assert_eq!(&s.lane.columns, cols);
        assert_eq!(s.lane.columns_view, Some(before_view));
    }
    assert!(
        app.status_line().contains("reading frames"),
        "{}",
        app.status_line()
    );
    // Responsive: hovering, more pans and the view are handled at once, and a lane
    // waiting for its read asks for nothing more.
    let _ = app.update(Message::Hover(Some(0.1)));
    assert_eq!(app.hover_lines().len(), 3, "{:?}", app.hover_lines());
    let more = app.update(Message::Pan(0.01));
    assert_eq!(more.units(), 0, "a second read while one is in flight");
    {
        let mut ui = simulator(app.view());
        ui.find("beta (192.0.2.9)").expect("the lanes are drawn");
    }
    assert_eq!(loader.gate.lock().unwrap().readers.len(), 2);

    // Released: the reads finish and their results arrive as messages.
    loader.release();
    let msgs = run_task(task);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    for m in msgs {
        assert!(matches!(m, Message::FineLoaded { .. }), "{m:?}");
        let _ = app.update(m);
    }
    let view = app.view_range();
    assert!(app.offline.iter().all(|s| !s.lane.is_waiting()));
    assert!(!app.status_line().contains("reading frames"));
    // The new picture is the one an inline read of the same view gives.
    let mut inline = app_with(&[a, b], 700.0);
    inline.offline_view = view;
    inline.recompute();
    for (s, t) in app.offline.iter().zip(&inline.offline) {
        assert_eq!(s.lane.columns_view, Some(view));
        assert_eq!(s.lane.level_us, 0);
        assert_eq!(s.lane.columns, t.lane.columns);
        assert_eq!(s.lane.totals, t.lane.totals);
    }
    // 15 s of the 60 s of data are in view (the gap of alpha is not): columns with data.
    assert!(app.offline[1].lane.columns.iter().any(|c| !c.is_gap()));
    assert!(view.t0_us < (T0 + 60_000_000) as f64);
}

#[test]
fn opening_reads_in_the_background_too() {
    let dir = tempfile::tempdir().unwrap();
    let a = standard_host(dir.path(), "alpha", false);
    let mut app = App::empty(1024.0);
    app.set_loader(Arc::new(DiskLoader), true);
    let task = app.open(&[a]);
    // Nothing found yet: the directory is listed by the task.
    assert!(app.offline.is_empty());
    let mut pending = vec![task];
    let mut rounds = 0;
    // Opened → the day pyramids and the day's ICMP limits → (at this zoom) no fine
    // read: a bounded chain.
    while let Some(t) = pending.pop() {
        rounds += 1;
        assert!(rounds < 10, "the loading chain does not end");
        for m in run_task(t) {
            pending.push(app.update(m));
        }
    }
    assert_eq!(app.offline.len(), 1);
    // One day pyramid, one day judged.
    assert_eq!(app.loading, (2, 2));
    let t = &app.offline[0].lane.totals;
    assert_eq!(t.received, 5970);
    assert_eq!(t.outages, 1);
}
