//! zzping-gui: open data directories or live daemons in a timeline window.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use zzping_gui::{App, Config};

/// zzping viewer: latency distributions, loss and gaps of many hosts on one timeline.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Data directories, host directories or .zzp day files to open (offline mode).
    paths: Vec<PathBuf>,
    /// A daemon's live-stream address (repeatable); live mode when no path is given.
    #[arg(long = "live", value_name = "ADDR")]
    live: Vec<SocketAddr>,
    /// Seconds of history to ask daemons for when subscribing.
    #[arg(long, default_value_t = 300)]
    prefill: u32,
    /// Capture the window to this PNG file after --exit-after-ms (default 2000), then exit.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// Exit this many milliseconds after start.
    #[arg(long, value_name = "MS")]
    exit_after_ms: Option<u64>,
    /// Write a synthetic data set (three hosts, with a 300 ms outage and a gap) into DIR,
    /// ending now, then open it.
    #[arg(long, value_name = "DIR")]
    demo_data: Option<PathBuf>,
    /// Length of the synthetic data set, hours.
    #[arg(long, default_value_t = 2.0)]
    demo_hours: f64,
    /// Window width, px.
    #[arg(long, default_value_t = 1600)]
    width: u32,
    /// Window height, px.
    #[arg(long, default_value_t = 900)]
    height: u32,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu=warn,iced=warn".into()),
        )
        .init();
    let mut cli = Cli::parse();
    if let Some(dir) = &cli.demo_data {
        let dur = (cli.demo_hours.max(0.001) * 3600e6) as u64;
        let end = zzping_lib::file::wall_clock_us();
        let n = zzping_gui::demo::write_demo(dir, end - dur, dur, 3)
            .with_context(|| format!("writing demo data to {}", dir.display()))?;
        tracing::info!("wrote {n} demo frames to {}", dir.display());
        cli.paths.push(dir.clone());
    }
    let cfg = Config {
        paths: cli.paths,
        live: cli.live,
        prefill_s: cli.prefill,
        screenshot: cli.screenshot,
        exit_after_ms: cli.exit_after_ms,
    };
    let size = iced::Size::new(cli.width as f32, cli.height as f32);
    iced::application(move || App::boot(cfg.clone()), App::update, App::view)
        .title(App::title)
        .theme(App::theme)
        .subscription(App::subscription)
        .window_size(size)
        .antialiasing(false)
        .run()
        .context("running the window")
}
