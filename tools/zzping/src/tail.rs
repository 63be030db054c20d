//! `zzping tail`: follow live frames from a running daemon.

use crate::common::{TimeFmt, write_text_row};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use zzping_lib::live::{ClientConfig, DEFAULT_ADDR, HostMeta, LiveEvent, UdpLiveClient};
use zzping_lib::quantizer::Quantizer;

/// Output format of `tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The `dump` line format.
    Text,
    /// One JSON object per frame (the `export --format jsonl` keys), and per gap.
    Jsonl,
}

/// Follow live frames from a daemon's live stream.
///
/// Frames are printed as they arrive (text like `dump`, with the frame's loss counting
/// errors and its errors by kind, or JSON Lines like `export`);
/// frames the stream lost for good are reported as gaps (stderr in text mode, a
/// `{"gap": ...}` line in JSONL), and the daemon's context events (a link down, a route
/// change, a suspend...) as `event: TIME TEXT` (stderr in text mode) or an
/// `{"event": ...}` line (the `export --events --format jsonl` keys). Runs until interrupted, or for --duration seconds.
/// Exits 1 if the daemon never answered.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The daemon's live-stream address (host:port).
    #[arg(long, default_value_t = DEFAULT_ADDR.to_string())]
    pub daemon: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Seconds of history to replay first.
    #[arg(long, default_value_t = 0)]
    pub prefill: u32,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Only this host label; repeat for several.
    #[arg(long)]
    pub host: Vec<String>,
    /// File holding the shared secret: 64 hex digits (whitespace ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Print times in the local time zone instead of UTC (text output).
    #[arg(long)]
    pub local: bool,
}

/// Runs `zzping tail`.
pub fn run(a: Args) -> Result<ExitCode> {
    let server: SocketAddr = a
        .daemon
        .to_socket_addrs()
        .with_context(|| format!("--daemon {}", a.daemon))?
        .next()
        .with_context(|| format!("--daemon {}: no address", a.daemon))?;
    if let Some(d) = a.duration
        && !(d.is_finite() && d > 0.0)
    {
        bail!("--duration {d}: must be a positive number of seconds");
    }
    let mut cfg = ClientConfig::new(server);
    cfg.prefill_s = a.prefill;
    if !a.host.is_empty() {
        cfg.filter = Some(a.host.clone());
    }
    if let Some(p) = &a.secret_file {
        cfg.secret = Some(zzping_lib::live::read_secret_file(p).context("--secret-file")?);
    }
    let mut client = UdpLiveClient::connect(cfg).context("live stream")?;
    let tf = TimeFmt::new(a.local);
    let end = a
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let started = Instant::now();
    let mut warned = false;
    let mut subscribed = false;
    let mut hosts: HashMap<u32, HostMeta> = HashMap::new();
    let mut quantizers: Vec<Quantizer> = Vec::new();
    let stdout = std::io::stdout();
    let mut out = std::io::LineWriter::new(stdout.lock());
    let mut line = Vec::with_capacity(4096);
    let mut ib = itoa::Buffer::new();
    loop {
        let now = Instant::now();
        let wait = match end {
            Some(e) if now >= e => break,
            Some(e) => (e - now).min(Duration::from_millis(500)),
            None => Duration::from_millis(500),
        };
        if !subscribed && !warned && started.elapsed() > Duration::from_secs(5) {
            eprintln!("zzping tail: no answer from {server} yet (is the daemon's live stream on?)");
            warned = true;
        }
        let Some(ev) = client.next_event(wait).context("live stream")? else {
            continue;
        };
        match ev {
            LiveEvent::Subscribed => {
                subscribed = true;
                eprintln!("zzping tail: subscribed to {server}");
            }
            LiveEvent::Reconnected => eprintln!("zzping tail: reconnected to {server}"),
            LiveEvent::Refused => {
                subscribed = true;
                eprintln!("zzping tail: {server} refused the subscription; retrying");
            }
            LiveEvent::Host { host, meta } => {
                if Quantizer::new(meta.precision).is_ok()
                    && !quantizers
                        .iter()
                        .any(|q| q.precision().to_bits() == meta.precision.to_bits())
                {
                    quantizers.push(Quantizer::new(meta.precision)?);
                }
                hosts.insert(host, meta);
            }
            LiveEvent::HostRemoved { host } => {
                if let Some(m) = hosts.remove(&host) {
                    eprintln!("zzping tail: host {} removed", m.label);
                }
            }
            LiveEvent::Gap {
                host,
                from_us,
                to_us,
                frames,
            } => {
                let label = hosts.get(&host).map_or("?", |m| m.label.as_str());
                match a.format {
                    Format::Text => eprintln!(
                        "gap: {label}: {frames} frames lost from {} to {}",
                        tf.string(from_us),
                        tf.string(to_us)
                    ),
                    Format::Jsonl => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"gap": {"host": label, "from_us": from_us,
                            "to_us": to_us, "frames": frames}})
                    )?,
                }
            }
            LiveEvent::Context { event } => match a.format {
                Format::Text => {
                    eprintln!("event: {} {}", tf.string(event.t_us), event.describe())
                }
                Format::Jsonl => {
                    let mut t = Vec::with_capacity(32);
                    crate::common::write_rfc3339_utc(event.t_us, &mut t);
                    let row = crate::report::EventLine {
                        time: String::from_utf8_lossy(&t).into_owned(),
                        text: event.describe(),
                        event,
                    };
                    writeln!(out, "{}", serde_json::json!({ "event": row }))?;
                }
            },
            LiveEvent::Frame { host, frame: f } => {
                let Some(meta) = hosts.get(&host) else {
                    continue;
                };
                let Some(q) = quantizers
                    .iter()
                    .find(|q| q.precision().to_bits() == meta.precision.to_bits())
                else {
                    continue;
                };
                line.clear();
                match a.format {
                    Format::Text => write_text_row(&mut line, &tf, &meta.label, &f, q),
                    Format::Jsonl => {
                        let host_json = serde_json::to_string(&meta.label)?;
                        crate::export::jsonl_row(&mut line, &host_json, &f, q, &mut ib);
                    }
                }
                out.write_all(&line)?;
            }
        }
    }
    out.flush()?;
    let _ = client.close();
    if !subscribed {
        bail!(
            "no answer from the daemon at {server} within {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
