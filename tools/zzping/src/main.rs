//! `zzping`: the command-line tool to inspect, export, convert, merge, check and report on
//! zzping frame files. `zzping --help` and `zzping <command> --help` are the reference;
//! `docs/tools.md` has examples.
//!
//! Exit status: 0 on success, 1 on an error (or, for `verify`, when problems were found),
//! 2 on a usage error.

mod common;
mod convert;
mod dump;
mod export;
mod merge;
mod report;
mod rollup;
mod tail;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Inspect, export, convert, merge, check and report on zzping frame files.
///
/// Inputs are given as positional paths, in any mix: a data directory (one subdirectory
/// per host), host directories, or single `.zzp` files.
#[derive(Debug, Parser)]
#[command(name = "zzping", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print frames as readable text; segment headers and damage go to stderr.
    Dump(dump::Args),
    /// Export one row per frame as CSV or JSON Lines.
    Export(export::Args),
    /// Import original-zzping logs (.log, .fdq), or re-quantize / re-frame our files.
    Convert(convert::Args),
    /// Combine files or directories of one host, ordered by time, without duplicates.
    Merge(merge::Args),
    /// Build or rebuild the zoom-pyramid sidecars (.zzs) that are missing or stale.
    Rollup(rollup::Args),
    /// Check files (headers, torn tails, garbage, sidecars); exit 1 when problems.
    Verify(verify::Args),
    /// Per-host loss, percentiles and jitter, and an outage log with a verdict.
    Report(report::Args),
    /// Follow live frames from a running daemon.
    Tail(tail::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Command::Dump(a) => dump::run(a),
        Command::Export(a) => export::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Rollup(a) => rollup::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Report(a) => report::run(a),
        Command::Tail(a) => tail::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`zzping dump | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("zzping: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
