//! Live mode's connection to daemons: one background thread per daemon drives a
//! [`UdpLiveClient`] and forwards its events in batches (twice a second, so a busy stream
//! costs one redraw per batch, not one per frame). What the events do to the live lanes
//! is [`crate::live_lanes`]'.

use crate::config::{LiveTarget, resolve_live};
use iced::Subscription;
use iced::futures::channel::mpsc;
use iced::futures::{SinkExt, Stream};
use std::time::{Duration, Instant};
use zzping_lib::live::{ClientConfig, LiveEvent, UdpLiveClient};

/// Batching interval of live events (the live view scrolls at this rate).
pub const BATCH: Duration = Duration::from_millis(500);
/// With no event for this long, a daemon is shown as "waiting".
pub const SILENCE: Duration = Duration::from_secs(3);

/// What a daemon's thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveUpdate {
    /// Connection state changed.
    Status {
        /// Index of the daemon in the configuration.
        daemon: usize,
        /// True while data or subscription acknowledgements arrive.
        connected: bool,
        /// Human-readable detail (errors).
        detail: String,
    },
    /// Events received.
    Events {
        /// Index of the daemon.
        daemon: usize,
        /// The events, in order.
        events: Vec<LiveEvent>,
    },
}

/// What identifies a daemon subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DaemonKey {
    /// Index in the configuration.
    pub index: usize,
    /// The daemon: its address (resolved at each connection attempt) and secret.
    pub target: LiveTarget,
    /// Seconds of history asked for on subscribe.
    pub prefill_s: u32,
}

/// Subscriptions to every daemon.
pub fn subscription(keys: Vec<DaemonKey>) -> Subscription<LiveUpdate> {
    Subscription::batch(keys.into_iter().map(|k| Subscription::run_with(k, stream)))
}

fn stream(key: &DaemonKey) -> impl Stream<Item = LiveUpdate> + use<> {
    spawn(key)
}

/// Starts the thread of one daemon; its updates arrive on the returned channel. The
/// thread ends when the receiver is dropped.
pub fn spawn(key: &DaemonKey) -> mpsc::Receiver<LiveUpdate> {
    let (tx, rx) = mpsc::channel(16);
    let key = key.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("live-{}", key.target.addr))
        .spawn(move || run(key, tx));
    if let Err(e) = spawned {
        tracing::error!("cannot start live thread: {e}");
    }
    rx
}

fn send(tx: &mut mpsc::Sender<LiveUpdate>, u: LiveUpdate) -> bool {
    iced::futures::executor::block_on(tx.send(u)).is_ok()
}

fn run(key: DaemonKey, mut tx: mpsc::Sender<LiveUpdate>) {
    let daemon = key.index;
    loop {
        let connected = resolve_live(&key.target.addr)
            .map_err(|e| format!("cannot resolve {}: {e}", key.target.addr))
            .and_then(|server| {
                let mut cfg = ClientConfig::new(server);
                cfg.prefill_s = key.prefill_s;
                cfg.secret = key.target.secret;
                UdpLiveClient::connect(cfg).map_err(|e| e.to_string())
            });
        let mut client = match connected {
            Ok(c) => c,
            Err(e) => {
                let u = LiveUpdate::Status {
                    daemon,
                    connected: false,
                    detail: e,
                };
                if !send(&mut tx, u) {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut connected = false;
        let mut last_event = Instant::now();
        loop {
            if tx.is_closed() {
                return;
            }
            let end = Instant::now() + BATCH;
            let mut events = Vec::new();
            let mut failed = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                match client.next_event(end - now) {
                    Ok(Some(ev)) => events.push(ev),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            if !events.is_empty() {
                last_event = Instant::now();
            }
            let now_connected = client.client().is_subscribed() && last_event.elapsed() < SILENCE;
            if now_connected != connected || failed.is_some() {
                connected = now_connected;
                let u = LiveUpdate::Status {
                    daemon,
                    connected,
                    detail: failed.clone().unwrap_or_default(),
                };
                if !send(&mut tx, u) {
                    return;
                }
            }
            if !events.is_empty() && !send(&mut tx, LiveUpdate::Events { daemon, events }) {
                return;
            }
            if failed.is_some() {
                std::thread::sleep(Duration::from_secs(1));
                break;
            }
        }
    }
}
