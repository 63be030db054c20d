//! Shared pieces: input resolution, time arguments and formatting, progress bars, and a
//! streaming scan over a host's files (all reading goes through `zzping_lib::store`).

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use zzping_lib::datadir::{Access, SYSTEM_DATA_DIR, default_data_dir};
use zzping_lib::store::{self, Event, Host};

/// Version string written into segment headers by this tool.
pub const WRITER: &str = concat!("zzping ", env!("CARGO_PKG_VERSION"));

/// Resolves positional paths (data directories, host directories, frame files, in any mix)
/// into hosts, filtered by `hosts` (labels, names or addresses; empty = all). The first
/// path that cannot be used is an error.
pub fn resolve_inputs(paths: &[PathBuf], hosts: &[String]) -> Result<Vec<Host>> {
    if paths.is_empty() {
        bail!("no input given: pass a data directory, host directories or .zzp files");
    }
    let r = store::resolve(paths);
    if let Some(e) = r.errors.into_iter().next() {
        return Err(e.into());
    }
    store::select(r.hosts, hosts).map_err(|e| anyhow::anyhow!("--host {e}"))
}

/// Parses a time argument with the lib's parser ([`zzping_lib::time::parse_time_arg`]:
/// RFC 3339, a date, `now`, `today`, `yesterday`, or a time ago such as `-2h30m` or
/// `-1w`; days in the local time zone); errors name the flag.
pub fn parse_time(s: &str, now_us: u64, flag: &str) -> Result<u64> {
    zzping_lib::time::parse_time_arg(s, now_us, &jiff::tz::TimeZone::system())
        .with_context(|| format!("{flag} {s}"))
}

/// The `[from, to)` range of `--from`/`--to` (defaults: everything).
pub fn time_range(from: Option<&str>, to: Option<&str>) -> Result<(u64, u64)> {
    let now = zzping_lib::file::wall_clock_us();
    let from = from.map(|s| parse_time(s, now, "--from")).transpose()?;
    let to = to.map(|s| parse_time(s, now, "--to")).transpose()?;
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX / 2));
    if from >= to {
        bail!("--from must be before --to");
    }
    Ok((from, to))
}

/// How times are printed.
#[derive(Debug, Clone)]
pub enum TimeFmt {
    /// RFC 3339 UTC with µs (`...Z`).
    Utc,
    /// RFC 3339 in the system's local time zone with its offset.
    Local(jiff::tz::TimeZone),
}

impl TimeFmt {
    /// UTC, or the local zone when `local`.
    pub fn new(local: bool) -> Self {
        if local {
            TimeFmt::Local(jiff::tz::TimeZone::system())
        } else {
            TimeFmt::Utc
        }
    }

    /// Appends the time `t_us` to `out`.
    pub fn write(&self, t_us: u64, out: &mut Vec<u8>) {
        match self {
            TimeFmt::Utc => write_rfc3339_utc(t_us, out),
            TimeFmt::Local(tz) => match jiff::Timestamp::from_microsecond(t_us as i64) {
                Ok(ts) => {
                    let z = ts.to_zoned(tz.clone());
                    out.extend_from_slice(
                        z.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
                            .to_string()
                            .as_bytes(),
                    );
                }
                Err(_) => write_rfc3339_utc(t_us, out),
            },
        }
    }

    /// The time `t_us` as a string.
    pub fn string(&self, t_us: u64) -> String {
        let mut v = Vec::with_capacity(32);
        self.write(t_us, &mut v);
        String::from_utf8(v).unwrap_or_default()
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` without allocating.
///
/// The calendar is `jiff`'s; the digits are written by hand because export writes one
/// time per row. Measured on 2 million frames (the `perf_data` set of tests/cli.rs, user
/// CPU, best of 5): `zzping export` CSV 0.63 s with this and 0.68 s with `jiff`'s
/// `Display` (`{:.6}`), JSONL 0.49 s and 0.58 s: 8 % and 18 % of the command.
pub fn write_rfc3339_utc(t_us: u64, out: &mut Vec<u8>) {
    let dt = jiff::tz::Offset::UTC.to_datetime(zzping_lib::time::timestamp(t_us));
    let mut b = [0u8; 27];
    let put = |b: &mut [u8], mut v: u64| {
        for c in b.iter_mut().rev() {
            *c = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    let field = |v: i8| u64::from(v.unsigned_abs());
    put(&mut b[0..4], u64::from(dt.year().unsigned_abs()));
    b[4] = b'-';
    put(&mut b[5..7], field(dt.month()));
    b[7] = b'-';
    put(&mut b[8..10], field(dt.day()));
    b[10] = b'T';
    put(&mut b[11..13], field(dt.hour()));
    b[13] = b':';
    put(&mut b[14..16], field(dt.minute()));
    b[16] = b':';
    put(&mut b[17..19], field(dt.second()));
    b[19] = b'.';
    put(&mut b[20..26], t_us % 1_000_000);
    b[26] = b'Z';
    out.extend_from_slice(&b);
}

/// A progress bar over bytes, drawn only when stderr is a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    done: std::cell::Cell<u64>,
}

impl Progress {
    /// A bar for `files` (their total size).
    pub fn for_files(files: impl IntoIterator<Item = impl AsRef<Path>>, what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                done: Default::default(),
            };
        }
        let total: u64 = files
            .into_iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Self {
            bar: Some(bar),
            done: Default::default(),
        }
    }

    /// Marks `pos` bytes of the current file as done.
    pub fn at(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(self.done.get() + pos);
        }
    }

    /// Marks a file of `len` bytes as finished.
    pub fn file_done(&self, len: u64) {
        self.done.set(self.done.get() + len);
        self.at(0);
    }

    /// Prints a line without garbling the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Streams the events of `host`'s frames starting in `[from, to)` (see
/// [`zzping_lib::store::HostFrames`]) to `f`, advancing `progress`.
pub fn scan(
    host: &Host,
    from: u64,
    to: u64,
    progress: &Progress,
    mut f: impl FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    let mut frames = host.frames(from, to);
    let mut n = 0u64;
    while let Some(ev) = frames.next_event()? {
        let (is_frame, file_bytes) = match &ev {
            Event::Frame { .. } => (true, None),
            Event::FileEnd { bytes, .. } => (false, Some(*bytes)),
            Event::Segment { .. } => (false, None),
        };
        f(ev)?;
        if is_frame {
            n += 1;
            if n % 65_536 == 0 {
                progress.at(frames.offset());
            }
        }
        if let Some(len) = file_bytes {
            progress.file_done(len);
        }
    }
    Ok(())
}

/// Names of the `FLAG_*` bits set in `flags`, comma-separated, or `-`.
pub fn flag_names(flags: u8) -> String {
    use zzping_lib::frame::*;
    let names: Vec<&str> = [
        (FLAG_CLOCK_STEP, "clock_step"),
        (FLAG_SEND_LATE, "send_late"),
        (FLAG_RECV_OVERFLOW, "recv_overflow"),
        (FLAG_APPROXIMATE, "approximate"),
        (FLAG_USER_STAMP, "user_stamp"),
    ]
    .iter()
    .filter(|(b, _)| flags & b != 0)
    .map(|&(_, n)| n)
    .collect();
    let unknown = flags & !0x1f;
    match (names.is_empty(), unknown) {
        (true, 0) => "-".into(),
        (_, 0) => names.join(","),
        _ => {
            let mut s = names.join(",");
            if !s.is_empty() {
                s.push(',');
            }
            s + &format!("0x{unknown:02x}")
        }
    }
}

/// The paths to read: `paths` when given, else the daemon's data directory
/// ([`zzping_lib::datadir`]: `$ZZPING_DATA_DIR`, `/var/lib/zzping` when readable, else
/// `$XDG_DATA_HOME/zzping` or `~/.local/share/zzping`), which must then exist.
pub fn paths_or_default(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    let dir = default_data_dir(Access::Read);
    if !dir.is_dir() {
        bail!(
            "no path given and the default data directory {} does not exist (or is not \
             readable: the service's is {SYSTEM_DATA_DIR}, readable by group zzping); \
             pass a data directory, host directories or .zzp files",
            dir.display()
        );
    }
    Ok(vec![dir])
}

/// Appends a frame's errors by kind as `no_route:3;host_unreachable:2` (kind names of
/// [`zzping_lib::frame::ErrorKind::name`], by kind number); nothing when it has none.
pub fn write_error_kinds(kinds: &zzping_lib::frame::ErrorKinds, out: &mut Vec<u8>) {
    let mut ib = itoa::Buffer::new();
    for (i, (k, n)) in kinds.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(k.name().as_bytes());
        out.push(b':');
        out.extend_from_slice(ib.format(n).as_bytes());
    }
}

/// Appends the line `dump` and `tail` print for frame `f` of host `label` (newline
/// included): `TIME HOST sent=N recv=N lost=N dup=N late=N err=N loss=P% kinds=K
/// router=R flags=F rtt_ms=[...]`. `loss` counts timeouts and errors of the requests with
/// an outcome (`-` without any); `kinds` are the errors by kind
/// ([`write_error_kinds`]), `router` the router that sent the ICMP errors (`-` for none).
pub fn write_text_row(
    out: &mut Vec<u8>,
    tf: &TimeFmt,
    label: &str,
    f: &zzping_lib::codec::QFrame,
    q: &zzping_lib::quantizer::Quantizer,
) {
    use std::io::Write;
    tf.write(f.start_us, out);
    let _ = write!(
        out,
        " {label} sent={} recv={} lost={} dup={} late={} err={} loss=",
        f.sent,
        f.received(),
        f.lost,
        f.duplicates,
        f.late,
        f.errors,
    );
    let failed = u64::from(f.lost) + u64::from(f.errors);
    let outcomes = failed + u64::from(f.received());
    if outcomes == 0 {
        out.push(b'-');
    } else {
        let _ = write!(out, "{:.1}%", 100.0 * failed as f64 / outcomes as f64);
    }
    out.extend_from_slice(b" kinds=");
    if f.error_kinds.is_empty() {
        out.push(b'-');
    } else {
        write_error_kinds(&f.error_kinds, out);
    }
    out.extend_from_slice(b" router=");
    match f.router {
        Some(r) => {
            let _ = write!(out, "{r}");
        }
        None => out.push(b'-'),
    }
    let _ = write!(out, " flags={} rtt_ms=[", flag_names(f.flags));
    for (i, us) in f.rtts_us(q).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{}.{:03}", us / 1000, us % 1000);
    }
    out.extend_from_slice(b"]\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use zzping_lib::time::US_PER_DAY;

    #[test]
    fn times() {
        let now = 1_700_000_000_000_000;
        assert_eq!(
            parse_time("-2h", now, "--from").unwrap(),
            now - 7_200_000_000
        );
        assert_eq!(
            parse_time("-2h30m", now, "--from").unwrap(),
            now - 9_000_000_000
        );
        assert_eq!(parse_time("now", now, "--to").unwrap(), now);
        // A day in the local zone, whatever it is: within a day (and a DST hour) of now.
        let y = parse_time("yesterday", now, "--from").unwrap();
        assert!(y < now && now - y <= 2 * US_PER_DAY + 3_600_000_000, "{y}");
        assert_eq!(
            parse_time("2021-01-01T09:00:00.5+01:00", now, "--from").unwrap(),
            1_609_488_000_500_000
        );
        assert_eq!(
            parse_time("2021-01-01", now, "--from").unwrap(),
            1_609_459_200_000_000
        );
        for bad in ["-2x", "-h", "-2é", "-", "2h", "2021-13-01T00:00:00Z"] {
            let e = parse_time(bad, now, "--from").unwrap_err().to_string();
            assert!(e.contains("--from"), "{e}");
        }
        let mut v = Vec::new();
        write_rfc3339_utc(1_609_488_000_123_456, &mut v);
        assert_eq!(v, b"2021-01-01T08:00:00.123456Z");
        assert_eq!(
            zzping_lib::time::rfc3339_us(1_609_488_000_123_456).as_bytes(),
            &v[..]
        );
    }

    #[test]
    fn flags() {
        use zzping_lib::frame::*;
        assert_eq!(flag_names(0), "-");
        assert_eq!(
            flag_names(FLAG_CLOCK_STEP | FLAG_APPROXIMATE),
            "clock_step,approximate"
        );
        assert_eq!(flag_names(0x80), "0x80");
    }
}
