//! zzping-daemon binary: parses the configuration, sets up logging, runs the event loop.

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use zzping_daemon::{config, daemon};

fn main() -> Result<()> {
    let cli = config::Cli::parse();
    let filter = match &cli.log {
        Some(f) => EnvFilter::try_new(f).context("parsing --log")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Plain stderr: under systemd it lands in the journal as is.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
