//! `zzping verify`: check frame files and sidecars; optionally repair damaged files.

use crate::common::{Progress, paths_or_default, resolve_inputs};
use anyhow::{Context, Result, bail};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zzping_lib::file::{FileReader, Issue};
use zzping_lib::pyramid::{SidecarError, load_or_build, read_sidecar};
use zzping_lib::store::layout::{day_of_file, sidecar_path};
use zzping_lib::time::US_PER_DAY;

/// Check frame files and their sidecars; exit 1 when problems are found.
///
/// Checks segment headers (an invalid one, e.g. a precision that is not a number, makes
/// its segment undecodable bytes), torn tails, garbage, frames filed under the wrong UTC
/// day, and pyramid sidecars (stale, unreadable or larger than the frame file allows are
/// problems, and an oversized one is not read; a missing one is only noted). Without
/// --host, the context events files of the data directory too (`@events/*.zze`: torn
/// tails, garbage, events filed under the wrong UTC day; --repair leaves them as they
/// are: every reader skips their damage).
///
/// Exit status: 0 when everything is clean, 1 when problems were found (after --repair:
/// when some remain), 2 on a usage error.
///
/// --repair writes, for each file with torn tails, garbage or invalid segments, a copy
/// without the damaged bytes, checks that it reads clean with every good frame, then renames the original to
/// `<file>.bak` (never overwriting an existing backup) and puts the copy in its place; the
/// sidecar is rebuilt. Do not repair a file the daemon is still appending to (today's).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data directories, host directories or .zzp files [default: the daemon's data
    /// directory: $ZZPING_DATA_DIR, /var/lib/zzping if readable, else
    /// ~/.local/share/zzping].
    pub paths: Vec<PathBuf>,
    /// Only this host (label or address); repeat for several.
    #[arg(long)]
    pub host: Vec<String>,
    /// Repair damaged files (the original is kept as <file>.bak).
    #[arg(long)]
    pub repair: bool,
}

/// What was found in one file.
#[derive(Debug, Default)]
struct FileCheck {
    frames: u64,
    segments: u64,
    issues: Vec<Issue>,
    issue_count: u64,
    error: Option<String>,
    wrong_day: u64,
    first_wrong_day_offset: Option<u64>,
    sidecar: Option<String>,
    sidecar_missing: bool,
}

impl FileCheck {
    fn damaged(&self) -> bool {
        self.issue_count > 0
    }
    fn problems(&self) -> bool {
        self.damaged() || self.error.is_some() || self.wrong_day > 0 || self.sidecar.is_some()
    }
}

fn check(path: &Path) -> FileCheck {
    let mut c = FileCheck::default();
    let day = day_of_file(path);
    match FileReader::open(path) {
        Err(e) => c.error = Some(e.to_string()),
        Ok(mut r) => {
            loop {
                let before = r.offset();
                match r.next_frame() {
                    Ok(Some(f)) => {
                        c.frames += 1;
                        if let Some(d) = day
                            && (f.start_us < d || f.start_us >= d + US_PER_DAY)
                        {
                            c.wrong_day += 1;
                            c.first_wrong_day_offset.get_or_insert(before);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        c.error = Some(e.to_string());
                        break;
                    }
                }
            }
            c.segments = r.segments_seen();
            c.issues = r.issues().to_vec();
            c.issue_count = r.issue_count();
        }
    }
    let side = sidecar_path(path);
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    match read_sidecar(&side, len) {
        Ok(r) => match r {
            Ok(p) if p.source_len == len => {}
            Ok(p) => {
                c.sidecar = Some(format!(
                    "stale sidecar {} (built from {} bytes, the file has {len}; run zzping rollup)",
                    side.display(),
                    p.source_len
                ))
            }
            Err(SidecarError::Outdated) => {
                c.sidecar = Some(format!(
                    "outdated sidecar {}: {} (run zzping rollup)",
                    side.display(),
                    SidecarError::Outdated
                ))
            }
            Err(e) => {
                c.sidecar = Some(format!(
                    "unreadable sidecar {}: {e} (run zzping rollup)",
                    side.display()
                ))
            }
        },
        Err(_) => c.sidecar_missing = true,
    }
    c
}

/// Byte ranges `[offset, offset + len)` of the damage, sorted.
fn damaged_ranges(issues: &[Issue]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = issues
        .iter()
        .map(|i| match i {
            Issue::TornTail { offset, len } | Issue::Garbage { offset, len, .. } => {
                (*offset, offset + len)
            }
        })
        .collect();
    v.sort_unstable();
    v
}

/// Writes `path` minus the damaged ranges to `out`, streaming.
fn copy_without(path: &Path, ranges: &[(u64, u64)], out: &Path) -> Result<()> {
    let mut src = std::fs::File::open(path).with_context(|| format!("{}: open", path.display()))?;
    let len = src.metadata()?.len();
    let mut dst = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("{}: create", out.display()))?,
    );
    let mut keep = Vec::new();
    let mut pos = 0u64;
    for &(a, b) in ranges {
        if a > pos {
            keep.push((pos, a));
        }
        pos = pos.max(b);
    }
    if pos < len {
        keep.push((pos, len));
    }
    let mut buf = vec![0u8; 256 * 1024];
    for (a, b) in keep {
        src.seek(SeekFrom::Start(a))?;
        let mut left = b - a;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            src.read_exact(&mut buf[..n])
                .with_context(|| format!("{}: read", path.display()))?;
            dst.write_all(&buf[..n])
                .with_context(|| format!("{}: write", out.display()))?;
            left -= n as u64;
        }
    }
    let f = dst
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("{}: write", out.display()))?;
    f.sync_all()
        .with_context(|| format!("{}: fsync", out.display()))?;
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Repairs `path`; returns a description of what was done.
fn repair(path: &Path, c: &FileCheck) -> Result<String> {
    if c.issue_count as usize > c.issues.len() {
        bail!(
            "{}: {} issues, too many to repair safely (at most {} are tracked)",
            path.display(),
            c.issue_count,
            c.issues.len()
        );
    }
    let bak = with_suffix(path, ".bak");
    if bak.exists() {
        bail!(
            "{}: backup {} already exists; move it away first",
            path.display(),
            bak.display()
        );
    }
    let tmp = with_suffix(path, ".repair.tmp");
    let ranges = damaged_ranges(&c.issues);
    let removed: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    copy_without(path, &ranges, &tmp)?;
    let again = check(&tmp);
    if again.damaged() || again.error.is_some() || again.frames != c.frames {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "{}: the repaired copy does not read clean ({} frames instead of {}, {} issues); \
             the original is untouched",
            path.display(),
            again.frames,
            c.frames,
            again.issue_count
        );
    }
    std::fs::rename(path, &bak).with_context(|| format!("{}: rename to backup", path.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: put the repaired copy in place", tmp.display()))?;
    if sidecar_path(path).exists() {
        load_or_build(path, true)?;
    }
    Ok(format!(
        "repaired {}: removed {removed} damaged bytes, kept {} frames; original saved as {}",
        path.display(),
        c.frames,
        bak.display()
    ))
}

/// Runs `zzping verify`.
pub fn run(a: Args) -> Result<ExitCode> {
    let hosts = resolve_inputs(&paths_or_default(&a.paths)?, &a.host)?;
    let progress = Progress::for_files(hosts.iter().flat_map(|h| &h.files), "verify");
    let (mut files, mut bad, mut repaired) = (0u64, 0u64, 0u64);
    let mut out = std::io::stdout().lock();
    for h in &hosts {
        for path in h.files.iter().map(|f| &f.path) {
            files += 1;
            let c = check(path);
            let mut lines = Vec::new();
            if let Some(e) = &c.error {
                lines.push(format!("error: {e}"));
            }
            for i in &c.issues {
                lines.push(i.to_string());
            }
            if c.issue_count > c.issues.len() as u64 {
                lines.push(format!(
                    "{} more issues not shown",
                    c.issue_count - c.issues.len() as u64
                ));
            }
            if c.wrong_day > 0 {
                lines.push(format!(
                    "{} frames outside the file's UTC day (first before byte {})",
                    c.wrong_day,
                    c.first_wrong_day_offset.unwrap_or(0)
                ));
            }
            if let Some(s) = &c.sidecar {
                lines.push(s.clone());
            }
            let note = if c.sidecar_missing {
                ", no sidecar"
            } else {
                ""
            };
            progress.file_done(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
            if !c.problems() {
                writeln!(
                    out,
                    "OK      {}: {} frames in {} segments{note}",
                    path.display(),
                    c.frames,
                    c.segments
                )?;
                continue;
            }
            writeln!(
                out,
                "PROBLEM {}: {} frames in {} segments{note}",
                path.display(),
                c.frames,
                c.segments
            )?;
            for l in &lines {
                writeln!(out, "        {}: {l}", path.display())?;
            }
            let mut still_bad = true;
            if a.repair && c.damaged() && c.error.is_none() {
                match repair(path, &c) {
                    Ok(msg) => {
                        writeln!(out, "        {msg}")?;
                        let after = check(path);
                        still_bad = after.problems();
                        if !still_bad {
                            repaired += 1;
                        }
                    }
                    Err(e) => writeln!(out, "        repair failed: {e:#}")?,
                }
            } else if a.repair && c.sidecar.is_some() && !c.damaged() && c.error.is_none() {
                load_or_build(path, true)?;
                writeln!(out, "        rebuilt the sidecar")?;
                still_bad = check(path).problems();
                if !still_bad {
                    repaired += 1;
                }
            }
            if still_bad {
                bad += 1;
            }
        }
    }
    progress.finish();
    if a.host.is_empty() {
        let (f, b) = verify_events(&paths_or_default(&a.paths)?, &mut out)?;
        files += f;
        bad += b;
    }
    let rep = if a.repair {
        format!(", {repaired} repaired")
    } else {
        String::new()
    };
    writeln!(out, "verify: {files} files, {bad} with problems{rep}")?;
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Checks the context events files of `paths` (see [`Args`]): returns how many files
/// were checked and how many have problems.
fn verify_events(paths: &[PathBuf], out: &mut impl Write) -> Result<(u64, u64)> {
    use zzping_lib::events::{EventReader, day_of_file, event_files, locate};
    let mut files = Vec::new();
    for source in locate(paths) {
        if source.is_file() {
            files.push(source);
        } else {
            files.extend(event_files(&source)?.into_iter().map(|(_, p)| p));
        }
    }
    let (mut checked, mut bad) = (0, 0);
    for path in files {
        checked += 1;
        let day = day_of_file(&path);
        let mut lines = Vec::new();
        let mut events = 0u64;
        match EventReader::open(&path) {
            Err(e) => lines.push(format!("error: {e}")),
            Ok(mut r) => {
                let mut wrong_day = 0u64;
                loop {
                    match r.next_event() {
                        Ok(Some(ev)) => {
                            events += 1;
                            if day.is_some_and(|d| ev.t_us < d || ev.t_us >= d + US_PER_DAY) {
                                wrong_day += 1;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            lines.push(format!("error: {e}"));
                            break;
                        }
                    }
                }
                lines.extend(r.issues().iter().map(|i| i.to_string()));
                if r.issue_count() > r.issues().len() as u64 {
                    lines.push(format!(
                        "{} more issues not shown",
                        r.issue_count() - r.issues().len() as u64
                    ));
                }
                if wrong_day > 0 {
                    lines.push(format!("{wrong_day} events outside the file's UTC day"));
                }
            }
        }
        if lines.is_empty() {
            writeln!(out, "OK      {}: {events} events", path.display())?;
            continue;
        }
        bad += 1;
        writeln!(out, "PROBLEM {}: {events} events", path.display())?;
        for l in lines {
            writeln!(out, "        {}: {l}", path.display())?;
        }
    }
    Ok((checked, bad))
}
