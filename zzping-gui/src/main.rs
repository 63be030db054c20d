//! zzping-gui: open data directories or live daemons in a timeline window.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use zzping_gui::config::{self, Cli};
use zzping_gui::{App, Config};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu=warn,iced=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut settings = config::load(&cli)?;
    if let Some(f) = &settings.file {
        tracing::info!("configuration from {}", f.display());
    }
    let live = config::read_secrets(&settings, &cli)?;
    let range_us = config::view_range(
        &cli,
        zzping_lib::file::wall_clock_us(),
        &jiff::tz::TimeZone::system(),
    )?;
    // Checked before anything is written or opened: without a display the window cannot
    // open, and winit would panic.
    if let Some(msg) = config::missing_display(
        std::env::var_os("DISPLAY"),
        std::env::var_os("WAYLAND_DISPLAY"),
    ) {
        eprintln!("zzping-gui: {msg}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(dir) = &cli.demo_data {
        let dur = (cli.demo_hours.max(0.001) * 3600e6) as u64;
        let end = zzping_lib::file::wall_clock_us();
        let n = zzping_gui::demo::write_demo(dir, end - dur, dur, 3)
            .with_context(|| format!("writing demo data to {}", dir.display()))?;
        tracing::info!("wrote {n} demo frames to {}", dir.display());
        settings.paths.push(dir.clone());
    }
    let cfg = Config {
        paths: settings.paths,
        live,
        prefill_s: settings.prefill_s,
        live_span_s: settings.live_span_s,
        range_us,
        screenshot: cli.screenshot,
        save_dir: cli.save_dir,
        exit_after_ms: cli.exit_after_ms,
        notify: settings.notify.clone(),
    };
    let size = iced::Size::new(settings.width as f32, settings.height as f32);
    iced::application(move || App::boot(cfg.clone()), App::update, App::view)
        .title(App::title)
        .theme(App::theme)
        .subscription(App::subscription)
        .window_size(size)
        .antialiasing(false)
        .run()
        .context("running the window")?;
    Ok(ExitCode::SUCCESS)
}
