//! zzping-bench: every performance claim of zzping, measured side by side with a reference
//! in the same run, in one command.
//!
//! ```text
//! cargo run --release -p zzping-bench -- [--quick] [--json FILE] [SUITE...]
//! ```
//!
//! Suites: `daemon`, `accuracy`, `format`, `pyramid`, `gui`, `live`, `tools` (default: all).
//! Each figure is printed in a table and, with `--json`, written as one object
//! `{name, value, unit, reference, reference_value, ratio}`. Absolute times on a shared
//! machine are noise; ratios against a reference measured in the same run are the
//! figures to compare across runs.
//!
//! The daemon runs as a child process (this binary re-executed as `__daemon`, which calls
//! `zzping_daemon::daemon::run`, the same code as the `zzping-daemon` binary) inside a
//! network namespace owned by one thread of this process, so its CPU and memory come
//! straight from `wait4`, and its allocations from this binary's counting allocator. The
//! floor pinger (`floor.rs`, the least a pinger can do) runs the same way as `__floor`.

mod alloc;
mod child;
mod figure;
mod floor;
mod netns;
mod suites;

use anyhow::{Context, Result, bail};
use clap::Parser;
use figure::Figure;
use std::path::PathBuf;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measure every zzping performance figure, side by side with references"
)]
struct Cli {
    /// Short runs (under 3 minutes for all suites); figures are noisier.
    #[arg(long)]
    quick: bool,
    /// Also write the figures as a JSON array to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Rewrite the generated section of this Markdown file (between the
    /// `<!-- BEGIN zzping-bench -->` and `<!-- END zzping-bench -->` markers) with this
    /// run's date, machine, command and figures.
    #[arg(long, value_name = "FILE")]
    update_doc: Option<PathBuf>,
    /// Suites to run (default: all): daemon, accuracy, format, pyramid, gui, live, tools.
    #[arg(value_name = "SUITE")]
    suites: Vec<String>,
}

/// Every suite, in run order.
pub const SUITES: &[&str] = &[
    "format", "pyramid", "daemon", "accuracy", "live", "gui", "tools",
];

fn main() -> Result<()> {
    let mut args = std::env::args_os();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == child::DAEMON_ARG)
    {
        args.next();
        args.next();
        return child::daemon_main(args.collect());
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == floor::FLOOR_ARG)
    {
        args.next();
        args.next();
        return floor::floor_main(args.collect());
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let suites: Vec<String> = if cli.suites.is_empty() {
        SUITES.iter().map(|s| s.to_string()).collect()
    } else {
        cli.suites.clone()
    };
    for s in &suites {
        if !SUITES.contains(&s.as_str()) {
            bail!("unknown suite {s:?}; suites are: {}", SUITES.join(", "));
        }
    }
    let ctx = suites::Ctx {
        quick: cli.quick,
        workspace: workspace_root()?,
    };
    let mut figures: Vec<Figure> = Vec::new();
    for s in &suites {
        eprintln!("== suite {s}{}", if cli.quick { " (quick)" } else { "" });
        let start = std::time::Instant::now();
        let got = match s.as_str() {
            "format" => suites::format::run(&ctx),
            "pyramid" => suites::pyramid::run(&ctx),
            "daemon" => suites::daemon::run(&ctx),
            "accuracy" => suites::accuracy::run(&ctx),
            "live" => suites::live::run(&ctx),
            "gui" => suites::gui::run(&ctx),
            "tools" => suites::tools::run(&ctx),
            _ => unreachable!("checked above"),
        };
        match got {
            Ok(fs) => {
                for f in &fs {
                    eprintln!("   {}", f.row());
                }
                figures.extend(fs);
            }
            Err(e) => {
                eprintln!("   suite {s} failed: {e:#}");
                figures.push(Figure::failed(
                    &format!("{s}.suite_error"),
                    &format!("{e:#}"),
                ));
            }
        }
        eprintln!("   ({:.1} s)", start.elapsed().as_secs_f64());
    }
    println!("{}", figure::table(&figures));
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&figures)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.update_doc {
        let doc =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let command = format!("cargo run --release -p zzping-bench -- {}", args.join(" "));
        let section = figure::markdown(&figures, &command);
        let updated = figure::replace_section(&doc, &section)
            .with_context(|| format!("{}: no zzping-bench markers", path.display()))?;
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
    }
    if figures.iter().any(|f| f.unit == "error") {
        bail!("some suites failed (see the table)");
    }
    Ok(())
}

/// The workspace root (for scenario files): from the build-time manifest dir, else the
/// current directory.
fn workspace_root() -> Result<PathBuf> {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for cand in [built, std::env::current_dir()?] {
        if cand.join("tests/scenarios").is_dir() {
            return Ok(cand.canonicalize()?);
        }
    }
    bail!("cannot find the workspace (tests/scenarios); run from the repository root")
}
