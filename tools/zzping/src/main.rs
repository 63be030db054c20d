//! `zzping` binary: the tool lives in the library (see its docs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    zzping::run(zzping::Cli::parse())
}
