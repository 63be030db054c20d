//! zzping-daemon binary: parses the configuration, sets up logging, runs the event loop.

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use zzping_daemon::config::{self, LogTarget};
use zzping_daemon::daemon;

fn main() -> Result<()> {
    let cli = config::Cli::parse();
    let filter = match &cli.log {
        Some(f) => EnvFilter::try_new(f).context("parsing --log")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    init_logging(cli.log_target, filter);
    let cfg = config::load(&cli).context("loading the configuration")?;
    if cli.check_config {
        match &cfg.source {
            Some(p) => println!("# configuration file: {}", p.display()),
            None => println!("# no configuration file; built-in defaults"),
        }
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    daemon::run(cli, cfg)?;
    Ok(())
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
    if let Some(e) = journal_error {
        tracing::warn!("cannot log to journald ({e}); logging to stderr");
    }
}
