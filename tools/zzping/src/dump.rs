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
    let hosts = resolve_inputs(&paths_or_default(&a.paths)?, &a.host)?;
    let tf = TimeFmt::new(a.local);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
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
