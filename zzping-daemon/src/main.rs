//! zzping-daemon binary: parses the configuration, sets up logging, runs the event loop.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use zzping_daemon::config::{self, LogTarget};
use zzping_daemon::daemon;

/// Set once logging writes to stderr (see [`init_logging`]).
static LOGS_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Exit status when the command line or the configuration is invalid (fping's 3).
const EXIT_INVALID: u8 = 3;
/// Exit status when the daemon could not start or failed while running (fping's 4).
const EXIT_FAILED: u8 = 4;

fn main() -> ExitCode {
    let cli = match config::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err((code, e)) => {
            // Once on stderr: the log line when logs go there, else (logs in the journal,
            // or no logging yet) the error with its causes.
            tracing::error!("{e:#}");
            if !LOGS_ON_STDERR.load(Ordering::Relaxed) {
                eprintln!("Error: {e:?}");
            }
            ExitCode::from(code)
        }
    }
}

/// Sets up logging, loads the configuration and runs the daemon; an error carries its
/// exit status.
fn run(cli: config::Cli) -> Result<ExitCode, (u8, anyhow::Error)> {
    let invalid = |e: anyhow::Error| (EXIT_INVALID, e);
    let filter = match &cli.log {
        Some(f) => EnvFilter::try_new(f)
            .context("parsing --log")
            .map_err(invalid)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    init_logging(cli.log_target, filter);
    let cfg = config::load(&cli)
        .context("loading the configuration")
        .map_err(invalid)?;
    if cli.check_config {
        match &cfg.source {
            Some(p) => println!("# configuration file: {}", p.display()),
            None => println!("# no configuration file; built-in defaults"),
        }
        print!("{}", cfg.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let report = daemon::run(cli, cfg).map_err(|e| (EXIT_FAILED, e))?;
    // A finite run (--duration) exits like fping: 1 when some host never answered (or
    // its name never resolved), 2 when no target's name resolved.
    let code = report.exit_code();
    if code != 0 {
        let mut why = Vec::new();
        if !report.never_answered.is_empty() {
            why.push(format!(
                "no reply from {}",
                report.never_answered.join(", ")
            ));
        }
        if !report.unresolved.is_empty() {
            why.push(format!("unresolved: {}", report.unresolved.join(", ")));
        }
        tracing::warn!("exit status {code}: {}", why.join("; "));
    }
    Ok(ExitCode::from(code))
}

/// Logs to the journal (native protocol) or to stderr. `auto` picks the journal when
/// systemd connected stderr to it (`JOURNAL_STREAM`), so a unit gets priorities and
/// structured fields without configuration.
fn init_logging(target: LogTarget, filter: EnvFilter) {
    let journald = match target {
        LogTarget::Stderr => false,
        LogTarget::Journald => true,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    let journal_error = if journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.with_syslog_identifier("zzping-daemon".into()))
                    .init();
                return;
            }
            Err(e) => Some(e),
        }
    } else {
        None
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    LOGS_ON_STDERR.store(true, Ordering::Relaxed);
    if let Some(e) = journal_error {
        tracing::warn!("cannot log to journald ({e}); logging to stderr");
    }
}
