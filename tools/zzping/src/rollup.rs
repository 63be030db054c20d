//! `zzping rollup`: build the zoom-pyramid sidecars that are missing or stale.

use crate::common::{Progress, paths_or_default, resolve_inputs};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use zzping_lib::pyramid::{Freshness, load_or_build};
use zzping_lib::store::layout::sidecar_path;

/// Build or rebuild the pyramid sidecars (`YYYY-MM-DD.zzs`) beside frame files.
///
/// Incremental: a sidecar that matches its frame file (same length) is kept; missing,
/// stale or unreadable ones are rebuilt from the raw frames. Prints each rebuilt sidecar
/// and why, then a summary line.
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
    /// Rebuild every sidecar, fresh or not.
    #[arg(long)]
    pub force: bool,
}

/// Runs `zzping rollup`.
pub fn run(a: Args) -> Result<ExitCode> {
    let hosts = resolve_inputs(&paths_or_default(&a.paths)?, &a.host)?;
    let progress = Progress::for_files(hosts.iter().flat_map(|h| &h.files), "rollup");
    let (mut fresh, mut rebuilt) = (0u64, 0u64);
    for h in &hosts {
        for f in h.files.iter().map(|f| &f.path) {
            let side = sidecar_path(f);
            if a.force && side.exists() {
                std::fs::remove_file(&side)
                    .with_context(|| format!("{}: remove", side.display()))?;
            }
            let (p, how) = load_or_build(f, true)?;
            match how {
                Freshness::Fresh => fresh += 1,
                Freshness::Rebuilt(why) => {
                    rebuilt += 1;
                    let why = if a.force { "forced".to_string() } else { why };
                    println!("rebuilt {} ({why})", side.display());
                }
            }
            for i in &p.issues {
                progress.println(&format!("warning: {}: {i}", f.display()));
            }
            progress.file_done(std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
        }
    }
    progress.finish();
    println!(
        "rollup: {} files, {rebuilt} rebuilt, {fresh} fresh",
        fresh + rebuilt
    );
    Ok(ExitCode::SUCCESS)
}
