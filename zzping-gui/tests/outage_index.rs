//! Live and offline agree on outages: a day written with the real writer, read back
//! frame by frame as a daemon streams it into a live lane, marks the same outages as
//! the same day opened from disk (its sidecar's outage index), because both come from
//! `zzping_lib::outage`. The day holds what tells implementations apart: a run with
//! partly failed edges, errors, a host pinged below one request per frame (the daemon
//! writes no frame in between; the run goes on across them), and a silence longer than
//! `MAX_SKIPPED_US` (which ends a run).

mod common;

use common::{PERIOD, Slot, T0, write_host};
use std::sync::Arc;
use zzping_gui::load::DiskLoader;
use zzping_gui::model::{DayState, HostLabel, Lane, LiveData, Source};
use zzping_gui::timeline::TimeView;
use zzping_lib::outage::MAX_SKIPPED_US;
use zzping_lib::store::{DayFile, Event, HostFrames};

/// Frames written: 10 minutes at 100 ms.
const N: u64 = 6_000;
/// Frames of the skipped stretch: one request every 5 frames (the others not written).
const SPARSE: std::ops::Range<u64> = 2_000..2_100;
/// The silence after it, longer than `MAX_SKIPPED_US`.
const SILENCE: std::ops::Range<u64> = 2_100..2_250;
const _: () = assert!((SILENCE.end - SILENCE.start) * PERIOD > MAX_SKIPPED_US);

/// Frame `i` of the day.
fn slot(i: u64) -> Slot {
    let failed = |rtts: Vec<u32>, lost, errors| Slot::Failed {
        rtts,
        lost,
        errors,
        flags: 0,
    };
    match i {
        // A run with partly failed edges.
        1_000 | 1_006 => failed(vec![12_000; 4], 6, 0),
        1_001..=1_005 => Slot::Outage,
        // Errors only (sendto failed): a failure too.
        1_500..=1_502 => failed(Vec::new(), 0, 10),
        // One request every 5 frames, failing from 2,040 on: one run across the
        // frames that were never written.
        _ if SPARSE.contains(&i) && i % 5 != 0 => Slot::Gap,
        2_000..2_040 => failed(vec![15_000], 0, 0),
        2_040..2_100 => failed(Vec::new(), 1, 0),
        // Failing again after a silence longer than MAX_SKIPPED_US: a run of its own.
        _ if SILENCE.contains(&i) => Slot::Gap,
        2_250..=2_252 => Slot::Outage,
        // A lone failed frame.
        4_000 => Slot::Outage,
        _ => Slot::Normal,
    }
}

#[test]
fn live_and_offline_mark_the_same_outages_of_a_recorded_day() {
    let dir = tempfile::tempdir().unwrap();
    let host = write_host(dir.path(), "alpha", N, slot);
    let files: Vec<DayFile> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "zzp"))
        .map(DayFile::new)
        .collect();
    assert_eq!(files.len(), 1);

    // Offline: the day's sidecar.
    let (lanes, errors) = zzping_gui::data::open_blocking(std::slice::from_ref(&host));
    assert!(errors.is_empty(), "{errors:?}");
    let mut offline = lanes.into_iter().next().unwrap();
    let Source::Files(days) = &offline.source else {
        panic!("a lane of files")
    };
    let DayState::Loaded(p) = &days[0].state else {
        panic!("day not loaded")
    };
    let disk_index = p.outages.clone();

    // Live: the same frames, as the stream delivers them.
    let mut live = LiveData::default();
    let mut hf = HostFrames::new(files, 0, u64::MAX);
    let mut q = None;
    while let Some(ev) = hf.next_event().unwrap() {
        if let Event::Frame { frame, quantizer } = ev {
            live.push(frame, Some(quantizer));
            q = q.or_else(|| Some(Arc::clone(quantizer)));
        }
    }
    let live_index = live.outages();
    assert_eq!(live_index, disk_index);
    // What both must hold, from the slots above: cores only (the edges answered).
    let t = |i: u64| T0 + i * PERIOD;
    assert_eq!(
        disk_index,
        [
            (t(1_001), t(1_006)),
            (t(1_500), t(1_503)),
            (t(2_040), t(2_096)),
            (t(2_250), t(2_253)),
            (t(4_000), t(4_001)),
        ]
    );

    // And the lanes draw them alike, at a coarse zoom and a fine one.
    let mut live_lane = Lane::new(HostLabel::default(), Source::Live(live));
    live_lane.quantizer = q;
    for (from, to, width) in [(t(0), t(N), 600.0), (t(1_900), t(2_300), 400.0)] {
        let view = TimeView::new(from as f64, to as f64);
        offline.recompute_blocking(&view, width, &DiskLoader);
        live_lane.recompute_blocking(&view, width, &DiskLoader);
        let marks = |l: &Lane| -> Vec<usize> {
            (0..l.columns.len())
                .filter(|&i| l.columns[i].has_outage)
                .collect()
        };
        assert!(!marks(&offline).is_empty());
        assert_eq!(marks(&live_lane), marks(&offline), "view {from}..{to}");
        assert_eq!(live_lane.totals.outages, offline.totals.outages);
    }
}
