//! The open step: everything the loop needs, in the order that keeps privileges short and
//! failures loud.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};
use tracing::{info, warn};
use zzping_lib::file::WriterConfig;

use crate::clock::{self, Now};
use crate::config::{Cli, Config};
use crate::engine::{Engine, EngineConfig};
use crate::icmp::{self, Family};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::recv::{Receiver, ReplyQueue};
use crate::sock::IcmpSocket;
use crate::sys::{self, SignalFd};

use super::outputs::Outputs;
use super::retention::Retention;
use super::targets::Target;
use super::timers::{Chore, Timers};
use super::{
    Daemon, GRACE_NS, LIVE, METRICS, QUEUE_CAPACITY, SEC, SIGNALS, STATS_EVERY_NS, Stop, WAKER,
    secs_ns,
};

fn engine_config(cfg: &Config) -> EngineConfig {
    EngineConfig {
        period_us: cfg.period_ms * 1000,
        timeout_ns: u64::from(cfg.timeout_ms) * 1_000_000,
        grace_ns: GRACE_NS,
    }
}

/// The ICMP sockets of both families: each family's send socket (by family index) and
/// the receive sockets (see `sock.rs`, "Two sockets per family").
type Sockets = ([Option<Arc<IcmpSocket>>; 2], Vec<Arc<IcmpSocket>>);

/// Opens the sockets of both families. Fails only when neither opens.
fn open_sockets(cfg: &Config) -> Result<Sockets> {
    let mut socks = [None, None];
    let mut recv = Vec::new();
    let mut errors = Vec::new();
    for fam in [Family::V4, Family::V6] {
        match IcmpSocket::open_pair(fam, cfg.socket) {
            Ok((s, r)) => {
                info!(
                    "{fam:?}: {:?} ICMP socket, identifier {}",
                    s.kind(),
                    s.ident()
                );
                socks[fam.index()] = Some(Arc::new(s));
                recv.push(Arc::new(r));
            }
            Err(e) => errors.push(e),
        }
    }
    if socks.iter().all(Option::is_none) {
        let msg = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        bail!("{msg}");
    }
    for e in errors {
        warn!("{e}");
    }
    // Requests go out with the default TTL whatever the system's (hosts with their own
    // set it around their sends).
    for s in socks.iter().flatten() {
        if let Err(e) = s.set_ttl(crate::config::DEFAULT_TTL) {
            warn!(
                "{:?}: setting TTL {}: {e}",
                s.family(),
                crate::config::DEFAULT_TTL
            );
        }
    }
    Ok((socks, recv))
}

/// Opens the live-stream socket, if `live` is not `off`.
fn open_live(cfg: &Config, registry: &mio::Registry) -> Result<Option<Live>> {
    let Some(addr) = cfg.live_addr() else {
        return Ok(None);
    };
    let secret = match &cfg.live_secret_file {
        Some(p) => Some(crate::live::read_secret(p).context("live stream")?),
        None => None,
    };
    let mut l = Live::open(addr, secret, &cfg.data_dir, registry, LIVE).with_context(|| {
        format!(
            "cannot serve the live stream on {addr} (live = {:?}; `off` disables it)",
            cfg.live
        )
    })?;
    // What happened before a restart is in the prefill of viewers too.
    l.preload_events(&cfg.data_dir, clock::now().real_us());
    info!(
        "live stream on {}",
        l.local_addr().map_or(addr.to_string(), |a| a.to_string())
    );
    Ok(Some(l))
}

/// Opens the Prometheus exporter's listener, if `metrics` is not `off`.
fn open_metrics(
    cfg: &Config,
    registry: &mio::Registry,
    sockets: &[Option<Arc<IcmpSocket>>; 2],
    now: Now,
) -> Result<Option<Metrics>> {
    let Some(addr) = cfg.metrics_addr() else {
        return Ok(None);
    };
    let start_s = now.real_ns as f64 / 1e9;
    let mut m = Metrics::open(addr, registry, METRICS, start_s).with_context(|| {
        format!(
            "cannot serve /metrics on {addr} (metrics = {:?}; `off` disables it)",
            cfg.metrics
        )
    })?;
    let bound = m.local_addr().map_or(addr.to_string(), |a| a.to_string());
    info!("metrics on http://{bound}/metrics");
    for (f, s) in [Family::V4, Family::V6].iter().zip(sockets) {
        m.exporter.set_socket(*f, s.as_ref().map(|s| s.kind()));
    }
    Ok(Some(m))
}

impl Daemon {
    /// Opens the sockets (then drops every capability), the data directory (locked: one
    /// daemon per data directory), the signalfd and the poll, the live stream and the
    /// exporter (fatal when asked for and impossible: a service running without them
    /// looks healthy while its dashboards stay empty), the receive thread and the engine;
    /// applies retention, starts every target, arms the chores and tells systemd it is
    /// ready.
    pub(super) fn open(cli: Cli, cfg: Config) -> Result<Daemon> {
        let cpu0 = sys::process_cpu_ns();
        // Wake for sends on time: the default timer slack lets the kernel add 50 µs. Set
        // before the receive thread is spawned, which inherits it.
        sys::set_timer_slack_ns(1);
        // Block the signals before any thread exists, so only the signalfd sees them.
        let signals = SignalFd::new().context("creating the signalfd")?;
        let (sockets, recv_sockets) = open_sockets(&cfg)?;
        // The discovery's probe sockets: while raw sockets can still be opened.
        let prober = if cfg.discover {
            super::discover::open_prober(cfg.socket)
        } else {
            None
        };
        match sys::drop_all_capabilities() {
            Ok(true) => info!("sockets open; all capabilities dropped"),
            Ok(false) => {}
            Err(e) => warn!("could not drop capabilities: {e}"),
        }
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
        // One daemon per data directory: a second one stops here.
        let data_dir_lock = crate::lock::lock(&cfg.data_dir)?;

        let poll = Poll::new().context("creating the event loop")?;
        poll.registry().register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let resolver = super::resolve::Resolver::start(Arc::clone(&waker));
        let now = clock::now();
        let netlink = super::net::open_netlink(poll.registry());
        let live = open_live(&cfg, poll.registry())?;
        let metrics = open_metrics(&cfg, poll.registry(), &sockets, now)?;
        let queue = Arc::new(ReplyQueue::new(QUEUE_CAPACITY));
        let receiver = Receiver::spawn(recv_sockets.clone(), queue.clone(), waker.clone(), false)
            .context("starting the receive thread")?;

        let mut engine = Engine::new(engine_config(&cfg));
        for s in sockets.iter().flatten() {
            engine.set_ident(s.family(), s.ident());
        }
        engine.set_token_base(now.real_ns ^ (u64::from(std::process::id()) << 40));

        let writer_cfg = WriterConfig {
            period_us: cfg.period_ms * 1000,
            precision: cfg.precision,
            writer: format!("zzping-daemon {}", env!("CARGO_PKG_VERSION")),
        };
        let alerts = crate::alert::Alerts::new(&cfg.alert, cfg.alert_rules());
        let outputs = Outputs::new(&cfg.data_dir, writer_cfg, live, metrics, alerts)?;
        let retention = Retention::new(&cfg.data_dir, now);
        for var in [clock::WALL_CLOCK_STEP_ENV, clock::SUSPEND_ENV] {
            if let Ok(v) = std::env::var(var) {
                warn!("{var}={v:?}: a test hook shifts clock readings (see clock.rs)");
            }
        }
        let mut d = Daemon {
            targets: cfg.host.iter().cloned().map(Target::new).collect(),
            _data_dir_lock: data_dir_lock,
            cfg,
            cli,
            engine,
            outputs,
            sockets,
            poll,
            signals,
            _waker: waker,
            replies: Vec::with_capacity(queue.capacity()),
            queue,
            recv_sockets,
            received_through: 0,
            due_ns: 0,
            receiver: Some(receiver),
            notifier: Notifier::from_env(),
            timers: Timers::default(),
            retention,
            stop: Stop::Running,
            stop_reason: None,
            suspend: clock::SuspendWatch::new(),
            duration_reached: false,
            packet: [0u8; icmp::PACKET_LEN],
            stamp_batch: crate::sock::RecvBatch::new(),
            stamps_due: [0; 2],
            stamps_unread: 0,
            queue_drops_seen: 0,
            status_lines: 0,
            flush_retry_ns: 0,
            tty: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            cpu0,
            netlink,
            net_events: Vec::new(),
            net_context: Default::default(),
            discovery: super::discover::Discovery::default(),
            resolver,
            resolved: Vec::new(),
            host_ttl: std::collections::HashMap::new(),
            sock_ttl: [crate::config::DEFAULT_TTL; 2],
            host_scope: std::collections::HashMap::new(),
        };
        d.discovery.prober =
            prober.and_then(|p| super::discover::register_prober(p, d.poll.registry()));
        let now = clock::now();
        d.outputs.set_now(now);
        d.outputs.record(zzping_lib::events::ContextEvent::new(
            now.real_us(),
            zzping_lib::events::EventKind::DaemonStart,
        ));
        d.apply_retention(now);
        // The default routes and links as they are now (the gateways, when discovering).
        d.discovery.home = d.cfg.home_prefixes();
        d.read_netlink(now);
        let count = d.targets.len();
        for i in 0..count {
            d.start_target(i, now);
        }
        if d.cfg.discover {
            d.warn_without_netlink();
            d.follow_gateways(now);
        }
        let count = d.targets.len();
        // Every socket is open and every target started: tell systemd (Type=notify).
        d.notifier.ready(&format!("pinging {count} hosts"));

        let start = now.mono_ns;
        let t = &mut d.timers;
        t.arm(Chore::Flush, start + secs_ns(d.cfg.flush_interval_s));
        if d.cfg.status {
            t.arm(Chore::Status, start + SEC);
        }
        t.arm(Chore::Resolve, start + secs_ns(d.cfg.resolve_interval_s));
        t.arm(Chore::Stats, start + STATS_EVERY_NS);
        if d.notifier.watchdog_interval_ns().is_some() {
            t.arm(Chore::Watchdog, start);
        }
        if let Some(s) = d.cfg.duration_s {
            t.arm(Chore::End, start + secs_ns(s));
        }
        Ok(d)
    }
}
