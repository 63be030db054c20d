//! Daemon CPU, send-rate precision, lateness, allocations and memory, next to fping
//! pinging the same simulated (or loopback) hosts at the same rate in the same run.

use crate::child::{Usage, run_daemon, run_measured};
use crate::figure::Figure;
use crate::netns::run_in_netns;
use crate::suites::Ctx;
use anyhow::{Context, Result};
use std::process::Command;

/// One measured configuration.
struct Point {
    total_rate: u32,
    hosts: u32,
    loopback: bool,
}

/// Addresses of `n` bench hosts (see tests/scenarios/bench.toml) or loopback addresses.
fn targets(n: u32, loopback: bool) -> Vec<String> {
    (0..n)
        .map(|i| {
            if loopback {
                format!("127.0.0.{}", i + 1)
            } else {
                format!("198.18.0.{}", 20 + i)
            }
        })
        .collect()
}

/// Runs fping with the same targets and rate; returns its usage and the pings it sent.
pub fn run_fping(targets: &[String], per_host_rate: f64, duration_s: f64) -> Result<(Usage, u64)> {
    let count = (per_host_rate * duration_s).round() as u64;
    let period_ms = 1000.0 / per_host_rate;
    let interval_ms = period_ms / targets.len() as f64;
    let mut cmd = Command::new("fping");
    cmd.args(["-q", "-c", &count.to_string()])
        .args([
            "-p",
            &format!("{period_ms}"),
            "-i",
            &format!("{interval_ms}"),
        ])
        .args(["-t", "500"])
        .args(targets)
        .stderr(std::process::Stdio::null());
    let (usage, _) = run_measured(&mut cmd).context("running fping (Debian package fping)")?;
    // fping exits 1 when some target lost a ping; 2+ is a real error.
    let code = (usage.status >> 8) & 0xff;
    anyhow::ensure!(code <= 1, "fping failed with exit code {code}");
    Ok((usage, count * targets.len() as u64))
}

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    if which("fping").is_none() {
        return Ok(vec![Figure::skipped(
            "daemon.cpu_ms_per_1k_pings",
            "fping not installed (apt-get install fping)",
        )]);
    }
    let duration = if ctx.quick { 10.0 } else { 30.0 };
    let points: Vec<Point> = if ctx.quick {
        vec![Point {
            total_rate: 1000,
            hosts: 10,
            loopback: false,
        }]
    } else {
        vec![
            Point {
                total_rate: 1000,
                hosts: 10,
                loopback: false,
            },
            Point {
                total_rate: 100,
                hosts: 10,
                loopback: false,
            },
            Point {
                total_rate: 5000,
                hosts: 50,
                loopback: false,
            },
            Point {
                total_rate: 1000,
                hosts: 10,
                loopback: true,
            },
        ]
    };
    let scenario = ctx.scenario("bench.toml");
    let mut figs = Vec::new();
    for p in points {
        let per_host = f64::from(p.total_rate) / f64::from(p.hosts);
        let t = targets(p.hosts, p.loopback);
        let data = tempfile::tempdir()?;
        let dir = data.path().to_path_buf();
        let t2 = t.clone();
        let (ours, report, fping, fping_sent) = run_in_netns(
            (!p.loopback).then_some(scenario.as_path()),
            None,
            move || {
                let (u, r) = run_daemon(&dir, &t2, per_host, duration, &[])?;
                let (fu, fs) = run_fping(&t2, per_host, duration)?;
                Ok((u, r, fu, fs))
            },
        )?;
        let ms_per_1k = ours.cpu_s() * 1e3 / (report.sent as f64 / 1e3);
        let fping_ms_per_1k = fping.cpu_s() * 1e3 / (fping_sent as f64 / 1e3);
        let suffix = match (p.total_rate, p.loopback) {
            (1000, false) => String::new(),
            (r, false) => format!("_at_{r}"),
            (r, true) => format!("_loopback_at_{r}"),
        };
        let cond = format!(
            "{} {} hosts x {per_host}/s for {duration} s",
            if p.loopback { "loopback" } else { "simulated" },
            p.hosts
        );
        figs.push(
            Figure::vs(
                &format!("daemon.cpu_ms_per_1k_pings{suffix}"),
                ms_per_1k,
                "ms",
                "fping 5.1",
                fping_ms_per_1k,
            )
            .note(format!(
                "{cond}; user {:.3} s sys {:.3} s vs fping user {:.3} s sys {:.3} s",
                ours.user_s, ours.sys_s, fping.user_s, fping.sys_s
            )),
        );
        if suffix.is_empty() {
            figs.push(
                Figure::new(
                    "daemon.cpu_ratio_vs_fping",
                    ms_per_1k / fping_ms_per_1k,
                    "ratio",
                )
                .note(cond.clone()),
            );
            let expected = f64::from(p.total_rate) * duration;
            figs.push(
                Figure::new(
                    "daemon.rate_error_pct",
                    (report.sent as f64 - expected) / expected * 100.0,
                    "%",
                )
                .note(format!("sent {} of {expected}", report.sent)),
            );
            figs.push(Figure::new(
                "daemon.send_late_p99_us",
                report.late_p99_us as f64,
                "µs",
            ));
            let pings = f64::from(p.total_rate) * report.window_s;
            figs.push(
                Figure::new(
                    "daemon.allocs_per_ping",
                    report.allocs_window as f64 / pings,
                    "allocs",
                )
                .note(format!(
                    "{} allocations over {pings} pings in steady state",
                    report.allocs_window
                )),
            );
            figs.push(Figure::vs(
                "daemon.rss_mb_10_hosts",
                ours.maxrss_mb,
                "MB",
                "fping 5.1",
                fping.maxrss_mb,
            ));
            figs.push(Figure::new(
                "daemon.reply_ratio",
                report.received as f64 / report.sent as f64,
                "ratio",
            ));
        }
    }
    Ok(figs)
}

/// Full path of `prog` on PATH.
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}
