//! `zzping export`: one row per frame as CSV (RFC 4180) or JSON Lines.

use crate::common::{
    Progress, paths_or_default, resolve_inputs, scan, time_range, write_error_kinds,
    write_rfc3339_utc,
};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zzping_lib::codec::QFrame;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::Event;
use zzping_lib::summary::nearest_rank;

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line, with the RTT list.
    Jsonl,
}

/// Export one row per frame as CSV (RFC 4180) or JSON Lines.
///
/// Columns (CSV header row; same keys in JSONL): time (RFC 3339 UTC, µs), host, start_us,
/// period_us, sent, received, lost, duplicates, late, errors, flags (the FLAG_* bits as a
/// number), min_us, p50_us, p95_us, p99_us, max_us, error_kinds, router. All RTTs are
/// integer microseconds (the quantizer's bucket representatives); percentiles are
/// nearest-rank over the frame's RTTs; they are empty (CSV) or null (JSONL) when the frame
/// has no reply. error_kinds are the frame's errors by kind: CSV
/// `no_route:3;host_unreachable:2` (empty for none), JSONL an object
/// `{"no_route":3,"host_unreachable":2}`; their sum is at most `errors` (files of format
/// version 1 carry no kinds). router is the address of the router that sent the frame's
/// ICMP errors (empty / null for none). JSONL rows also carry `rtts_us`, the frame's RTTs
/// ascending.
///
/// With --events, one row per context event of the data directory instead (what the
/// daemon recorded in `<data_dir>/@events`: link and carrier changes, default routes,
/// addresses, suspends, clock steps, daemon start, stop and reloads, hosts that moved;
/// docs/format.md §10), in time order. Columns: time, t_us, kind, interface, family,
/// gateway, address, prefix_len, removed, duration_us, step_us, reason, applied, host,
/// previous, text (the event in words);
/// keys a kind does not have are empty (CSV) or absent (JSONL).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data directories, host directories or .zzp files [default: the daemon's data
    /// directory: $ZZPING_DATA_DIR, /var/lib/zzping if readable, else
    /// ~/.local/share/zzping].
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Only this host (label or address); repeat for several.
    #[arg(long)]
    pub host: Vec<String>,
    /// Start of the range: RFC 3339, YYYY-MM-DD (UTC), now, today, yesterday (local), or a
    /// time ago (-2h, -30m, -1w, -2h30m, "3 days ago").
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range (exclusive), same forms as --from.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Export the context events instead of the frames (see above).
    #[arg(long, conflicts_with = "host")]
    pub events: bool,
}

/// CSV column names of `--events`.
pub const EVENT_COLUMNS: [&str; 16] = [
    "time",
    "t_us",
    "kind",
    "interface",
    "family",
    "gateway",
    "address",
    "prefix_len",
    "removed",
    "duration_us",
    "step_us",
    "reason",
    "applied",
    "host",
    "previous",
    "text",
];

/// `export --events`: the context events of `paths` in `[from, to)` to `out`.
fn export_events(
    a: &Args,
    paths: &[PathBuf],
    from: u64,
    to: u64,
    out: impl Write,
    out_name: &str,
) -> Result<()> {
    let sources = zzping_lib::events::locate(paths);
    if sources.is_empty() {
        anyhow::bail!(
            "{}: no context events here (the daemon records them in <data_dir>/{})",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            zzping_lib::events::EVENTS_DIR
        );
    }
    let log = zzping_lib::events::read_range(&sources, from, to);
    for (path, issue) in &log.issues {
        eprintln!("warning: {}: {issue}", path.display());
    }
    for e in &log.errors {
        eprintln!("warning: {e}");
    }
    let opt = |v: Option<String>| v.unwrap_or_default();
    match a.format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            w.write_record(EVENT_COLUMNS)?;
            for e in &log.events {
                let mut t = Vec::with_capacity(32);
                write_rfc3339_utc(e.t_us, &mut t);
                w.write_record([
                    String::from_utf8_lossy(&t).into_owned(),
                    e.t_us.to_string(),
                    e.kind.name().to_owned(),
                    opt(e.interface.clone()),
                    opt(e.family.map(|f| f.to_string())),
                    opt(e.gateway.map(|g| g.to_string())),
                    opt(e.address.map(|g| g.to_string())),
                    opt(e.prefix_len.map(|p| p.to_string())),
                    if e.removed { "true" } else { "" }.to_owned(),
                    opt(e.duration_us.map(|d| d.to_string())),
                    opt(e.step_us.map(|d| d.to_string())),
                    opt(e.reason.clone()),
                    opt(e.applied.clone()),
                    opt(e.host.clone()),
                    opt(e.previous.map(|p| p.to_string())),
                    e.describe(),
                ])?;
            }
            w.flush().with_context(|| format!("{out_name}: write"))?;
        }
        Format::Jsonl => {
            let mut out = out;
            for event in log.events {
                let mut t = Vec::with_capacity(32);
                write_rfc3339_utc(event.t_us, &mut t);
                let row = crate::report::EventLine {
                    time: String::from_utf8_lossy(&t).into_owned(),
                    text: event.describe(),
                    event,
                };
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            }
            out.flush().with_context(|| format!("{out_name}: write"))?;
        }
    }
    Ok(())
}

/// CSV column names.
pub const COLUMNS: [&str; 18] = [
    "time",
    "host",
    "start_us",
    "period_us",
    "sent",
    "received",
    "lost",
    "duplicates",
    "late",
    "errors",
    "flags",
    "min_us",
    "p50_us",
    "p95_us",
    "p99_us",
    "max_us",
    "error_kinds",
    "router",
];

/// The RTT statistics columns of a frame: min, p50, p95, p99, max (µs).
fn stats(f: &QFrame, q: &Quantizer) -> [Option<u32>; 5] {
    let c = &f.codes;
    let d = |x: Option<u32>| x.map(|code| q.decode_saturating(code));
    [
        d(c.first().copied()),
        d(nearest_rank(c, 0.50)),
        d(nearest_rank(c, 0.95)),
        d(nearest_rank(c, 0.99)),
        d(c.last().copied()),
    ]
}

/// Appends the JSONL row of `f` (with its newline) to `line`, cleared first; `host_json` is
/// the host label already JSON-encoded. Allocates nothing once `line` has grown.
pub fn jsonl_row(
    line: &mut Vec<u8>,
    host_json: &str,
    f: &QFrame,
    q: &Quantizer,
    ib: &mut itoa::Buffer,
) {
    line.clear();
    line.extend_from_slice(b"{\"time\":\"");
    write_rfc3339_utc(f.start_us, line);
    line.extend_from_slice(b"\",\"host\":");
    line.extend_from_slice(host_json.as_bytes());
    line.extend_from_slice(b",\"start_us\":");
    line.extend_from_slice(ib.format(f.start_us).as_bytes());
    for (k, v) in [
        ("period_us", f.period_us),
        ("sent", f.sent),
        ("received", f.received()),
        ("lost", f.lost),
        ("duplicates", f.duplicates),
        ("late", f.late),
        ("errors", f.errors),
        ("flags", u32::from(f.flags)),
    ] {
        line.extend_from_slice(b",\"");
        line.extend_from_slice(k.as_bytes());
        line.extend_from_slice(b"\":");
        line.extend_from_slice(ib.format(v).as_bytes());
    }
    for (k, s) in ["min_us", "p50_us", "p95_us", "p99_us", "max_us"]
        .iter()
        .zip(stats(f, q))
    {
        line.extend_from_slice(b",\"");
        line.extend_from_slice(k.as_bytes());
        line.extend_from_slice(b"\":");
        match s {
            Some(v) => line.extend_from_slice(ib.format(v).as_bytes()),
            None => line.extend_from_slice(b"null"),
        }
    }
    line.extend_from_slice(b",\"error_kinds\":{");
    for (i, (k, n)) in f.error_kinds.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.push(b'"');
        line.extend_from_slice(k.name().as_bytes());
        line.extend_from_slice(b"\":");
        line.extend_from_slice(ib.format(n).as_bytes());
    }
    line.extend_from_slice(b"},\"router\":");
    match f.router {
        Some(r) => {
            let _ = write!(line, "\"{r}\"");
        }
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"rtts_us\":[");
    for (i, v) in f.rtts_us(q).enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(ib.format(v).as_bytes());
    }
    line.extend_from_slice(b"]}\n");
}

/// Runs `zzping export`.
pub fn run(a: Args) -> Result<ExitCode> {
    let (from, to) = time_range(a.from.as_deref(), a.to.as_deref())?;
    let paths = paths_or_default(&a.paths)?;
    let hosts = if a.events {
        Vec::new()
    } else {
        resolve_inputs(&paths, &a.host)?
    };
    let sink: Box<dyn Write> = match &a.output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("{}: create", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let out = std::io::BufWriter::with_capacity(256 * 1024, sink);
    if a.events {
        let out_name = a
            .output
            .as_ref()
            .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
        export_events(&a, &paths, from, to, out, &out_name)?;
        return Ok(ExitCode::SUCCESS);
    }
    let progress = Progress::for_files(hosts.iter().flat_map(|h| h.files_in(from, to)), "export");
    let report_issue = |ev: &Event<'_>| {
        if let Event::FileEnd { path, issues, .. } = ev {
            for i in *issues {
                progress.println(&format!("warning: {}: {i}", path.display()));
            }
        }
    };
    let out_name = a
        .output
        .as_ref()
        .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    match a.format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            w.write_record(COLUMNS)?;
            let mut tbuf = Vec::with_capacity(32);
            let mut kbuf = Vec::with_capacity(64);
            let mut ib = itoa::Buffer::new();
            for h in &hosts {
                scan(h, from, to, &progress, |ev| {
                    report_issue(&ev);
                    let Event::Frame {
                        frame: f,
                        quantizer: q,
                    } = ev
                    else {
                        return Ok(());
                    };
                    tbuf.clear();
                    write_rfc3339_utc(f.start_us, &mut tbuf);
                    w.write_field(&tbuf)?;
                    w.write_field(&h.label)?;
                    w.write_field(ib.format(f.start_us))?;
                    for v in [
                        f.period_us,
                        f.sent,
                        f.received(),
                        f.lost,
                        f.duplicates,
                        f.late,
                        f.errors,
                        u32::from(f.flags),
                    ] {
                        w.write_field(ib.format(v))?;
                    }
                    for s in stats(f, q) {
                        match s {
                            Some(v) => w.write_field(ib.format(v))?,
                            None => w.write_field(b"")?,
                        }
                    }
                    kbuf.clear();
                    write_error_kinds(&f.error_kinds, &mut kbuf);
                    w.write_field(&kbuf)?;
                    kbuf.clear();
                    if let Some(r) = f.router {
                        let _ = write!(kbuf, "{r}");
                    }
                    w.write_field(&kbuf)?;
                    w.write_record(std::iter::empty::<&[u8]>())?;
                    Ok(())
                })?;
            }
            w.flush().with_context(|| format!("{out_name}: write"))?;
        }
        Format::Jsonl => {
            let mut out = out;
            let mut line: Vec<u8> = Vec::with_capacity(64 * 1024);
            let mut ib = itoa::Buffer::new();
            for h in &hosts {
                let host_json = serde_json::to_string(&h.label)?;
                scan(h, from, to, &progress, |ev| {
                    report_issue(&ev);
                    let Event::Frame {
                        frame: f,
                        quantizer: q,
                    } = ev
                    else {
                        return Ok(());
                    };
                    jsonl_row(&mut line, &host_json, f, q, &mut ib);
                    out.write_all(&line)?;
                    Ok(())
                })?;
            }
            out.flush().with_context(|| format!("{out_name}: write"))?;
        }
    }
    progress.finish();
    Ok(ExitCode::SUCCESS)
}
