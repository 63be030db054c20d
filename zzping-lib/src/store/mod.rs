//! A data directory: one directory per host, one frame file per UTC day; and the one way
//! to read it.
//!
//! ```text
//! <data_dir>/<host>/YYYY-MM-DD.zzp     frames (see crate::file)
//! <data_dir>/<host>/YYYY-MM-DD.zzs     zoom pyramid sidecar (see crate::pyramid)
//! <data_dir>/@events/YYYY-MM-DD.zze    context events (see crate::events; no host)
//! ```
//!
//! One file per UTC *day* (not per hour): at 100 pings/s a day is about 12 MB, so a year
//! is 365 files per host — few enough to list instantly, large enough that per-file costs
//! (headers, sidecars, open calls) vanish, and small enough that rebuilding a stale
//! sidecar takes well under a second. Days are UTC so that files never overlap across DST
//! changes.
//!
//! - [`layout`]: every directory and file name (host directories and their escaping, day
//!   files, sidecars) and how a host is shown ([`layout::display_label`]: `::1`, not its
//!   directory `__1`);
//! - [`resolve`]: what the tools and the viewer accept (data directories, host
//!   directories, single `.zzp` files, in any mix) into [`Host`]s, and [`select`] by
//!   label, name or address; see [`Host`] for which header names a host;
//! - [`HostFrames`]: a host's frames over a time range across its files, in order, in
//!   constant memory, with segment and file boundaries ([`Event`]); damage is recovered
//!   from and reported with its file and byte offset, and everything good is kept;
//! - retention: [`newest_day`] (what the files say is the newest day) and
//!   [`remove_days_before`] (bounded per call); the daemon decides the cutoff.

pub mod layout;

mod frames;
mod hosts;

pub use frames::{Event, HostFrames};
pub use hosts::{DayFile, Host, Resolved, StoreError, day_files, list_hosts, resolve, select};

use crate::file::FileError;
use std::path::{Path, PathBuf};

/// The newest UTC day under `data_dir` holding frames: the start (µs) of the latest day
/// named by a non-empty day file of any host, and that file. `None` when there is none.
/// Only names and sizes are read: what the files say, not a clock.
pub fn newest_day(data_dir: &Path) -> Result<Option<(u64, PathBuf)>, FileError> {
    let mut newest: Option<(u64, PathBuf)> = None;
    for (_, days) in hosts::host_dirs(data_dir)? {
        // Oldest first: the first non-empty file from the end is this host's newest.
        for d in days.into_iter().rev() {
            let (Some(day), Ok(m)) = (d.day_start_us, std::fs::metadata(&d.path)) else {
                continue;
            };
            if m.len() == 0 {
                continue;
            }
            if newest.as_ref().is_none_or(|(n, _)| day > *n) {
                newest = Some((day, d.path));
            }
            break;
        }
    }
    Ok(newest)
}

/// What a retention pass did ([`remove_days_before`]).
#[derive(Debug, Default)]
pub struct Removal {
    /// Deleted day files and sidecars.
    pub removed: Vec<PathBuf>,
    /// More day files are due: the pass stopped at its bound.
    pub more: bool,
    /// What could not be listed or deleted (the pass went on with the rest).
    pub errors: Vec<FileError>,
}

/// Deletes the day files (and their sidecars) of every host under `data_dir` whose day
/// starts before `cutoff_us`, and the events files of those days
/// ([`crate::events`]), at most `max_files` day files per call (oldest days first
/// within each host); [`Removal::more`] says whether some are left. Errors are collected,
/// never fatal: one bad directory does not stop the others.
pub fn remove_days_before(data_dir: &Path, cutoff_us: u64, max_files: usize) -> Removal {
    let mut r = Removal::default();
    let mut files = 0;
    let events = crate::events::events_dir(data_dir);
    match crate::events::event_files(&events) {
        Ok(days) => {
            for (_, path) in days.into_iter().filter(|(d, _)| *d < cutoff_us) {
                if files == max_files {
                    r.more = true;
                    return r;
                }
                files += 1;
                match std::fs::remove_file(&path) {
                    Ok(()) => r.removed.push(path),
                    Err(e) => r.errors.push(FileError::io(&path, "remove")(e)),
                }
            }
        }
        Err(e) => r.errors.push(e),
    }
    let dirs = match hosts::host_dirs(data_dir) {
        Ok(d) => d,
        Err(e) => {
            r.errors.push(e);
            return r;
        }
    };
    for (_, days) in dirs {
        for d in days {
            if d.day_start_us.is_none_or(|day| day >= cutoff_us) {
                continue;
            }
            if files == max_files {
                r.more = true;
                return r;
            }
            files += 1;
            match std::fs::remove_file(&d.path) {
                Ok(()) => r.removed.push(d.path.clone()),
                Err(e) => {
                    r.errors.push(FileError::io(&d.path, "remove")(e));
                    continue;
                }
            }
            let sidecar = layout::sidecar_path(&d.path);
            match std::fs::remove_file(&sidecar) {
                Ok(()) => r.removed.push(sidecar),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => r.errors.push(FileError::io(&sidecar, "remove")(e)),
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{HostInfo, HostWriter, Issue, WriterConfig};
    use crate::frame::Frame;
    use crate::time::US_PER_DAY;
    use std::io::Write;

    const DAY0: u64 = 19_000 * US_PER_DAY;

    fn writer(data: &Path, label: &str, address: &str, name: Option<&str>) -> HostWriter {
        HostWriter::open(
            data,
            HostInfo {
                label: label.into(),
                address: address.parse().unwrap(),
                name: name.map(Into::into),
                role: None,
            },
            WriterConfig {
                period_us: 1_000_000,
                precision: 0.01,
                writer: "t".into(),
            },
        )
        .unwrap()
    }

    fn frame(t: u64) -> Frame {
        let mut f = Frame::new(t, 1_000_000);
        f.sent = 1;
        f.rtts_us.push(300 + (t / 1_000_000 % 100) as u32);
        f
    }

    /// Three days of ten frames for `label`; returns the frame starts.
    fn three_days(data: &Path, label: &str, address: &str) -> Vec<u64> {
        let mut w = writer(data, label, address, None);
        let mut starts = Vec::new();
        for d in 0..3u64 {
            for i in 0..10u64 {
                let t = DAY0 + d * US_PER_DAY + i * 1_000_000;
                w.append(&frame(t)).unwrap();
                starts.push(t);
            }
        }
        w.sync().unwrap();
        starts
    }

    #[test]
    fn retention_reads_the_newest_day_from_the_files_and_deletes_in_bounded_passes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_day(dir.path()).unwrap(), None);
        three_days(dir.path(), "a", "198.18.0.1");
        three_days(dir.path(), "b", "198.18.0.2");
        // An empty file of a later day (a crash before the first write) holds no frame.
        let empty = layout::day_file(&dir.path().join("b"), DAY0 + 9 * US_PER_DAY);
        std::fs::write(&empty, b"").unwrap();
        let newest = layout::day_file(&dir.path().join("a"), DAY0 + 2 * US_PER_DAY);
        assert_eq!(
            newest_day(dir.path()).unwrap(),
            Some((DAY0 + 2 * US_PER_DAY, newest))
        );
        // A sidecar goes with its day file.
        let day0_a = layout::day_file(&dir.path().join("a"), DAY0);
        std::fs::write(layout::sidecar_path(&day0_a), b"x").unwrap();
        // Four day files are due (days 0 and 1 of both hosts): two per pass.
        let r = remove_days_before(dir.path(), DAY0 + 2 * US_PER_DAY, 2);
        assert!(r.more && r.errors.is_empty());
        assert_eq!(r.removed.len(), 3, "{:?}", r.removed);
        assert!(!day0_a.exists() && !layout::sidecar_path(&day0_a).exists());
        // The bound reached with nothing else due: nothing more.
        let r = remove_days_before(dir.path(), DAY0 + 2 * US_PER_DAY, 2);
        assert!(!r.more);
        assert_eq!(r.removed.len(), 2);
        let r = remove_days_before(dir.path(), DAY0 + 2 * US_PER_DAY, 2);
        assert!(!r.more && r.removed.is_empty());
        for h in ["a", "b"] {
            let left: Vec<_> = day_files(&dir.path().join(h))
                .unwrap()
                .into_iter()
                .filter_map(|d| d.day_start_us)
                .collect();
            assert!(left.contains(&(DAY0 + 2 * US_PER_DAY)), "{h}: {left:?}");
            assert!(
                left.iter().all(|&d| d >= DAY0 + 2 * US_PER_DAY),
                "{h}: {left:?}"
            );
        }
    }

    #[test]
    fn the_events_directory_is_no_host_and_retention_removes_its_old_days() {
        use crate::events::{ContextEvent, EventKind, EventWriter, event_files, events_dir};
        let dir = tempfile::tempdir().unwrap();
        three_days(dir.path(), "gw", "198.18.0.1");
        let mut w = EventWriter::new(dir.path(), "t");
        for d in 0..3 {
            w.append(
                &ContextEvent::new(DAY0 + d * US_PER_DAY, EventKind::DaemonStart),
                DAY0,
            );
        }
        w.flush().unwrap();
        // Even a frame file in it would not make it a host.
        std::fs::write(events_dir(dir.path()).join("2022-01-01.zzp"), b"").unwrap();
        let hosts = list_hosts(dir.path()).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].label, "gw");
        assert_eq!(resolve(&[dir.path().to_path_buf()]).hosts.len(), 1);
        // Events files count in the bound, like day files.
        let r = remove_days_before(dir.path(), DAY0 + 2 * US_PER_DAY, 1);
        assert!(r.more && r.errors.is_empty());
        assert_eq!(r.removed.len(), 1);
        let r = remove_days_before(dir.path(), DAY0 + 2 * US_PER_DAY, 10);
        assert!(!r.more && r.errors.is_empty(), "{:?}", r.errors);
        let left: Vec<u64> = event_files(&events_dir(dir.path()))
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(left, [DAY0 + 2 * US_PER_DAY]);
        assert_eq!(day_files(&dir.path().join("gw")).unwrap().len(), 1);
    }

    #[test]
    fn frames_across_days_in_range_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let starts = three_days(dir.path(), "::1", "::1");
        let hosts = list_hosts(dir.path()).unwrap();
        assert_eq!(hosts.len(), 1);
        // Stored as `__1`, shown as `::1`.
        assert_eq!(hosts[0].dir_name, "__1");
        assert_eq!(hosts[0].label, "::1");
        assert_eq!(hosts[0].address(), Some("::1"));
        assert_eq!(hosts[0].files.len(), 3);
        let from = DAY0 + 5 * 1_000_000;
        let to = DAY0 + 2 * US_PER_DAY + 3 * 1_000_000;
        assert_eq!(hosts[0].files_in(from, to).count(), 3);
        assert_eq!(hosts[0].files_in(from, DAY0 + US_PER_DAY).count(), 1);
        let mut it = hosts[0].frames(from, to);
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

        assert_eq!(
            newest_day(dir.path()).unwrap(),
            Some((
                DAY0 + 2 * US_PER_DAY,
                layout::day_file(&dir.path().join("__1"), DAY0 + 2 * US_PER_DAY)
            ))
        );
        let r = remove_days_before(dir.path(), DAY0 + US_PER_DAY, 10);
        assert_eq!(r.removed.len(), 1);
        assert!(!r.more && r.errors.is_empty());
        assert_eq!(day_files(&dir.path().join("__1")).unwrap().len(), 2);
    }

    #[test]
    fn events_mark_segments_and_files_and_keep_good_frames_after_damage() {
        let dir = tempfile::tempdir().unwrap();
        // Day 0: two segments (a restart), the second of another address; garbage
        // between them. Day 1: one segment.
        let mut w = writer(dir.path(), "gw", "198.18.0.1", None);
        w.append(&frame(DAY0)).unwrap();
        w.append(&frame(DAY0 + 1_000_000)).unwrap();
        w.sync().unwrap();
        drop(w);
        let day0 = layout::day_file(&dir.path().join("gw"), DAY0);
        let garbage_at = std::fs::metadata(&day0).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&day0)
            .unwrap()
            .write_all(&[0xc1, 0xc1, 0xc1])
            .unwrap();
        let mut w = writer(dir.path(), "gw", "198.18.0.9", None);
        w.append(&frame(DAY0 + 5_000_000)).unwrap();
        w.append(&frame(DAY0 + US_PER_DAY)).unwrap();
        w.sync().unwrap();
        drop(w);

        let host = Host::open(&dir.path().join("gw")).unwrap();
        // The newest file's header names the host; the oldest is there too.
        assert_eq!(host.address(), Some("198.18.0.9"));
        assert_eq!(host.first_header().unwrap().host, "198.18.0.1");
        let mut it = host.frames(0, u64::MAX);
        let mut log = Vec::new();
        while let Some(ev) = it.next_event().unwrap() {
            log.push(match ev {
                Event::Segment { header, .. } => format!("segment {}", header.host),
                Event::Frame { frame, quantizer } => {
                    assert_eq!(quantizer.precision(), 0.01);
                    format!("frame {}", (frame.start_us - DAY0) / 1_000_000)
                }
                Event::FileEnd {
                    path,
                    issues,
                    issue_count,
                    bytes,
                } => {
                    assert_eq!(bytes, std::fs::metadata(path).unwrap().len());
                    assert_eq!(issue_count, issues.len() as u64);
                    match issues {
                        [Issue::Garbage { offset, len, .. }] => {
                            assert_eq!((*offset, *len), (garbage_at, 3));
                        }
                        [] => {}
                        other => panic!("{other:?}"),
                    }
                    format!("end {}", path.file_name().unwrap().to_string_lossy())
                }
            });
        }
        let day1 = layout::day_file(&dir.path().join("gw"), DAY0 + US_PER_DAY);
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            log,
            [
                "segment 198.18.0.1".to_string(),
                "frame 0".into(),
                "frame 1".into(),
                "segment 198.18.0.9".into(),
                "frame 5".into(),
                format!("end {}", name(&day0)),
                "segment 198.18.0.9".into(),
                "frame 86400".into(),
                format!("end {}", name(&day1)),
            ]
        );
        assert_eq!(it.issues().len(), 1);

        // A segment without frames in range is not reported; a file out of range is not
        // opened at all.
        let mut it = host.frames(DAY0 + 2_000_000, DAY0 + 10_000_000);
        let mut n = (0, 0, 0);
        while let Some(ev) = it.next_event().unwrap() {
            match ev {
                Event::Segment { header, .. } => {
                    assert_eq!(header.host, "198.18.0.9");
                    n.0 += 1;
                }
                Event::Frame { .. } => n.1 += 1,
                Event::FileEnd { .. } => n.2 += 1,
            }
        }
        assert_eq!(n, (1, 1, 1));
    }

    #[test]
    fn an_unreadable_file_is_an_error_once_and_the_next_file_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        three_days(dir.path(), "h", "198.18.0.2");
        let hdir = dir.path().join("h");
        let mut files = day_files(&hdir).unwrap();
        // A "day file" that cannot be read (a directory) between two good ones.
        let bad = hdir.join("1900-01-01.zzp");
        std::fs::create_dir(&bad).unwrap();
        files.insert(1, DayFile::new(bad.clone()));
        let missing = DayFile::new(hdir.join("missing.zzp"));
        files.insert(0, missing);
        let mut it = HostFrames::new(files, 0, u64::MAX);
        let (mut frames, mut errors) = (0, Vec::new());
        loop {
            match it.next_frame() {
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(e) => errors.push(e.to_string()),
            }
        }
        assert_eq!(frames, 30);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("missing.zzp"), "{errors:?}");
        assert!(errors[1].contains("1900-01-01.zzp"), "{errors:?}");
    }

    #[test]
    fn paths_resolve_in_any_mix_and_hosts_are_selected_by_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        three_days(&data, "::1", "::1");
        three_days(&data, "gw", "192.168.1.1");
        let mut w = writer(&data, "router.lan", "192.168.1.254", Some("router.lan"));
        w.append(&frame(DAY0)).unwrap();
        w.sync().unwrap();
        drop(w);
        let lone = layout::day_file(&data.join("gw"), DAY0);
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let missing = dir.path().join("missing");

        let r = resolve(&[
            data.join("gw"),
            lone.clone(),
            data.clone(),
            empty.clone(),
            missing.clone(),
        ]);
        let labels: Vec<&str> = r.hosts.iter().map(|h| h.label.as_str()).collect();
        // The order the paths name them; a data directory's hosts by directory name.
        assert_eq!(labels, ["gw", "::1", "router.lan"]);
        // The host given three ways has each file once.
        assert_eq!(r.hosts[0].files.len(), 3);
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
        assert!(matches!(&r.errors[0], StoreError::NoData(p) if *p == empty));
        assert!(
            r.errors[1].to_string().contains("missing"),
            "{}",
            r.errors[1]
        );

        // A data directory with context events only is named as such.
        let events_only = dir.path().join("events-only");
        std::fs::create_dir_all(events_only.join(crate::events::EVENTS_DIR)).unwrap();
        let r = resolve(std::slice::from_ref(&events_only));
        assert!(r.hosts.is_empty());
        assert!(
            matches!(&r.errors[..], [StoreError::NoHostData(p)] if *p == events_only),
            "{:?}",
            r.errors
        );
        let msg = r.errors[0].to_string();
        assert!(
            msg.contains("context events") && msg.contains("no host's frames yet"),
            "{msg}"
        );

        // A lone file is its directory's host, with the file's day.
        let r = resolve(std::slice::from_ref(&lone));
        assert_eq!(r.hosts[0].label, "gw");
        assert_eq!(r.hosts[0].files[0].day_start_us, Some(DAY0));

        let all = resolve(&[data]).hosts;
        for (want, label) in [
            ("::1", "::1"),
            ("__1", "::1"),
            ("0:0::1", "::1"),
            ("gw", "gw"),
            ("192.168.1.1", "gw"),
            ("router.lan", "router.lan"),
            ("192.168.1.254", "router.lan"),
        ] {
            let got = select(all.clone(), &[want.to_string()]).unwrap();
            assert_eq!(got.len(), 1, "{want}");
            assert_eq!(got[0].label, label, "{want}");
        }
        assert_eq!(select(all.clone(), &[]).unwrap().len(), 3);
        let e = select(all, &["gw".into(), "nope".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nope: no such host among the inputs (available: ::1, gw, router.lan)"
        );
    }
}
