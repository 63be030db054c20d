//! `zzping dump`: frames as readable text.

use crate::common::{
    Progress, TimeFmt, paths_or_default, resolve_inputs, scan, time_range, write_text_row,
};
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zzping_lib::store::Event;

/// Print frames as readable text.
///
/// One line per frame on stdout:
/// `TIME HOST sent=N recv=N lost=N dup=N late=N err=N loss=P% kinds=K router=R flags=F
/// rtt_ms=[...]`: loss = (lost + err) / requests with an outcome (`-` without any); kinds
/// = the errors by kind (`no_route:3;host_unreachable:2`, `-` for none); router = the
/// router that sent the ICMP errors (`-` for none); RTTs in ms, ascending, as decoded
/// (within the file's quantizer precision).
/// Segment headers and any damage found (torn tail, garbage, with file and byte offset)
/// go to stderr; every good frame is still printed.
///
/// Context events files (`<data_dir>/@events/YYYY-MM-DD.zze`, or the `@events`
/// directory) given as paths print one line per event instead: `TIME event KIND key=value
/// ... : TEXT` (the keys of its kind; docs/format.md §10), in file order.
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
    /// Start of the range: RFC 3339, YYYY-MM-DD (UTC), now, today, yesterday (local), or a
    /// time ago (-2h, -30m, -1w, -2h30m, "3 days ago").
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range (exclusive), same forms as --from.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Print times in the local time zone instead of UTC.
    #[arg(long)]
    pub local: bool,
    /// Do not print segment headers on stderr.
    #[arg(long)]
    pub no_headers: bool,
}

/// Runs `zzping dump`.
pub fn run(a: Args) -> Result<ExitCode> {
    let (from, to) = time_range(a.from.as_deref(), a.to.as_deref())?;
    let tf = TimeFmt::new(a.local);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    // Events files and directories given as paths are dumped as events.
    let (events, frames): (Vec<PathBuf>, Vec<PathBuf>) =
        paths_or_default(&a.paths)?.into_iter().partition(|p| {
            p.extension()
                .is_some_and(|e| e == zzping_lib::events::EVENTS_FILE_EXT)
                || (p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n == zzping_lib::events::EVENTS_DIR))
        });
    if !events.is_empty() {
        dump_events(&events, from, to, &tf, &mut out)?;
        if frames.is_empty() {
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let hosts = resolve_inputs(&frames, &a.host)?;
    let mut line = Vec::with_capacity(4096);
    let progress = Progress::for_files(hosts.iter().flat_map(|h| h.files_in(from, to)), "dump");
    for h in &hosts {
        scan(h, from, to, &progress, |ev| {
            match ev {
                Event::Segment { path, header } => {
                    if !a.no_headers {
                        progress.println(&format!(
                            "# {}: segment host={} name={} label={} role={} period_us={} \
                             precision={} writer={:?} created={} base={}",
                            path.display(),
                            header.host,
                            header.name.as_deref().unwrap_or("-"),
                            header
                                .label
                                .as_ref()
                                .map_or_else(|| "-".to_owned(), |l| format!("{l:?}")),
                            header.role.as_deref().unwrap_or("-"),
                            header.period_us,
                            header.precision,
                            header.writer,
                            tf.string(header.created_us),
                            tf.string(header.base_us),
                        ));
                    }
                }
                Event::Frame {
                    frame: f,
                    quantizer: q,
                } => {
                    line.clear();
                    write_text_row(&mut line, &tf, &h.label, f, q);
                    out.write_all(&line)?;
                }
                Event::FileEnd {
                    path,
                    issues,
                    issue_count,
                    ..
                } => {
                    for i in issues {
                        progress.println(&format!("warning: {}: {i}", path.display()));
                    }
                    if issue_count > issues.len() as u64 {
                        progress.println(&format!(
                            "warning: {}: {} more issues not shown",
                            path.display(),
                            issue_count - issues.len() as u64
                        ));
                    }
                }
            }
            Ok(())
        })?;
    }
    out.flush()?;
    progress.finish();
    Ok(ExitCode::SUCCESS)
}

/// One line per context event of `sources` (events files or directories), in time
/// order; damage to stderr.
fn dump_events(
    sources: &[PathBuf],
    from: u64,
    to: u64,
    tf: &TimeFmt,
    out: &mut impl Write,
) -> Result<()> {
    let log = zzping_lib::events::read_range(sources, from, to);
    for (path, issue) in &log.issues {
        eprintln!("warning: {}: {issue}", path.display());
    }
    for e in &log.errors {
        eprintln!("warning: {e}");
    }
    for e in &log.events {
        let mut keys = Vec::new();
        let mut key = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                keys.push(format!("{k}={v}"));
            }
        };
        key("interface", e.interface.clone());
        key("family", e.family.map(|f| f.to_string()));
        key("gateway", e.gateway.map(|g| g.to_string()));
        key("address", e.address.map(|a| a.to_string()));
        key("prefix_len", e.prefix_len.map(|p| p.to_string()));
        key("removed", e.removed.then(|| "true".to_owned()));
        key("duration_us", e.duration_us.map(|d| d.to_string()));
        key("step_us", e.step_us.map(|d| d.to_string()));
        key("reason", e.reason.as_ref().map(|r| format!("{r:?}")));
        key("applied", e.applied.as_ref().map(|r| format!("{r:?}")));
        key("host", e.host.as_ref().map(|r| format!("{r:?}")));
        key("previous", e.previous.map(|p| p.to_string()));
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!(" {}", keys.join(" "))
        };
        writeln!(
            out,
            "{} event {}{keys}: {}",
            tf.string(e.t_us),
            e.kind.name(),
            e.describe()
        )?;
    }
    Ok(())
}
