//! The data directory's layout: the one place that knows directory and file names.
//!
//! ```text
//! <data_dir>/<host_dir_name(label)>/YYYY-MM-DD.zzp     frames of one UTC day
//! <data_dir>/<host_dir_name(label)>/YYYY-MM-DD.zzs     its pyramid sidecar
//! <data_dir>/@events/YYYY-MM-DD.zze                    context events (crate::events)
//! ```
//!
//! No host directory is named like the events directory ([`crate::events::EVENTS_DIR`]):
//! `@` is outside the characters [`host_dir_name`] keeps.
//!
//! The directory name is an on-disk detail: a label is escaped to be a safe file name
//! ([`host_dir_name`]), which loses characters (`::1` is stored as `__1`). What people
//! see is [`display_label`]: the configured name or the address from the segment header
//! when its escape is the directory's name, else the directory's name.

use crate::file::SegmentHeader;
use std::path::{Path, PathBuf};

/// Extension of frame files.
pub const FRAME_FILE_EXT: &str = "zzp";
/// Extension of pyramid sidecar files.
pub const SIDECAR_EXT: &str = "zzs";

/// Turns a host label into a safe directory name: `[A-Za-z0-9._-]` kept, `:` (IPv6)
/// becomes `_`, everything else `-`.
pub fn host_dir_name(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            ':' => '_',
            _ => '-',
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => format!("host-{s}"),
        _ => s,
    }
}

/// The directory of the host labelled `label` under `data_dir`.
pub fn host_dir(data_dir: &Path, label: &str) -> PathBuf {
    data_dir.join(host_dir_name(label))
}

/// Path of the frame file of `host_dir` for the UTC day containing `t_us`.
pub fn day_file(host_dir: &Path, t_us: u64) -> PathBuf {
    host_dir.join(format!("{}.{FRAME_FILE_EXT}", crate::time::day_name(t_us)))
}

/// True when `path` has the frame file extension.
pub fn is_frame_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(FRAME_FILE_EXT)
}

/// Start of the UTC day of a frame file named `YYYY-MM-DD.zzp` (µs since the epoch), or
/// `None` for any other name.
pub fn day_of_file(path: &Path) -> Option<u64> {
    if !is_frame_file(path) {
        return None;
    }
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(crate::time::parse_day_name)
}

/// The sidecar path of a frame file.
pub fn sidecar_path(frame_file: &Path) -> PathBuf {
    frame_file.with_extension(SIDECAR_EXT)
}

/// The name of a host as shown to people (dump, export, report, the viewer), from its
/// directory's name and a segment header of its files: the configured label, else the
/// configured name, else the address, whichever escapes to the directory's name (the
/// daemon names the directory after the label, which defaults to the target); else the
/// directory's name (files written before headers carried the label).
pub fn display_label(dir_name: &str, header: Option<&SegmentHeader>) -> String {
    if let Some(h) = header {
        if let Some(l) = &h.label
            && host_dir_name(l) == dir_name
        {
            return l.clone();
        }
        if let Some(n) = &h.name
            && host_dir_name(n) == dir_name
        {
            return n.clone();
        }
        if host_dir_name(&h.host) == dir_name {
            return h.host.clone();
        }
    }
    dir_name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(host: &str, name: Option<&str>) -> SegmentHeader {
        SegmentHeader {
            schema: crate::file::SCHEMA.into(),
            version: crate::file::FORMAT_VERSION,
            host: host.into(),
            name: name.map(Into::into),
            period_us: 100_000,
            precision: 0.01,
            created_us: 0,
            base_us: 0,
            writer: "t".into(),
            label: None,
            role: None,
        }
    }

    #[test]
    fn host_dir_names_are_safe() {
        assert_eq!(host_dir_name("2001:db8::1"), "2001_db8__1");
        assert_eq!(host_dir_name("../etc"), "..-etc");
        assert_eq!(host_dir_name(".."), "host-..");
        assert_eq!(host_dir_name(""), "host-");
        assert_eq!(host_dir_name("router.lan"), "router.lan");
        assert_eq!(host_dir(Path::new("/d"), "::1"), Path::new("/d/__1"));
        // No label is stored in the events directory.
        for label in ["@events", "@events/", " @events", "@", "events"] {
            assert_ne!(host_dir_name(label), crate::events::EVENTS_DIR, "{label:?}");
        }
    }

    #[test]
    fn day_files_and_sidecars() {
        let t = 1_609_459_200_000_000 + 3_600_000_000;
        let f = day_file(Path::new("/d/h"), t);
        assert_eq!(f, Path::new("/d/h/2021-01-01.zzp"));
        assert_eq!(day_of_file(&f), Some(1_609_459_200_000_000));
        assert_eq!(sidecar_path(&f), Path::new("/d/h/2021-01-01.zzs"));
        assert_eq!(day_of_file(Path::new("/d/h/2021-01-01.zzs")), None);
        assert_eq!(day_of_file(Path::new("/d/h/copy.zzp")), None);
        assert!(is_frame_file(Path::new("copy.zzp")));
    }

    #[test]
    fn display_labels_undo_the_escape_where_the_header_allows() {
        // An address target: the address.
        assert_eq!(display_label("__1", Some(&header("::1", None))), "::1");
        assert_eq!(
            display_label("2001_db8__1", Some(&header("2001:db8::1", None))),
            "2001:db8::1"
        );
        // A name target: the name, whatever it resolved to.
        assert_eq!(
            display_label("router.lan", Some(&header("192.0.2.1", Some("router.lan")))),
            "router.lan"
        );
        // A label of the configuration, in the header: the label.
        let labelled = SegmentHeader {
            label: Some("living room".into()),
            ..header("192.0.2.1", None)
        };
        assert_eq!(display_label("living-room", Some(&labelled)), "living room");
        // A label that does not escape to the directory's name is not this directory's.
        assert_eq!(display_label("kitchen", Some(&labelled)), "kitchen");
        // Files written before headers carried the label: the directory's name.
        assert_eq!(
            display_label("living-room", Some(&header("192.0.2.1", None))),
            "living-room"
        );
        assert_eq!(display_label("__1", None), "__1");
    }
}
