//! `zzping`: the command-line tool to inspect, export, convert, merge, check and report on
//! zzping frame files. `zzping --help` and `zzping <command> --help` are the reference;
//! `docs/tools.md` has examples.
//!
//! Exit status: 0 on success, 1 on an error (or, for `verify`, when problems were found),
//! 2 on a usage error.
//!
//! The library holds the whole tool; the binary (`src/main.rs`) parses [`Cli`] and calls
//! [`run`]. [`Cli`] is public so the man pages and shell completions are generated from
//! it (`tools/zzping-docgen`).

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
pub struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
/// The subcommands; each one's help is its `Args` doc comment.
enum Command {
    Dump(dump::Args),
    Export(export::Args),
    Convert(convert::Args),
    Merge(merge::Args),
    Rollup(rollup::Args),
    Verify(verify::Args),
    Report(report::Args),
    Tail(tail::Args),
}

/// Runs the command `cli` and returns the process's exit status (errors are printed).
pub fn run(cli: Cli) -> ExitCode {
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
            let broken = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(broken)
                    || c.downcast_ref::<csv::Error>()
                        .is_some_and(|ce| matches!(ce.kind(), csv::ErrorKind::Io(io) if broken(io)))
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("zzping: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
