//! zzping-daemon: an accurate, frugal ICMP pinger that records per-host frames.
//!
//! The binary (`src/main.rs`) is a thin wrapper over [`daemon::run`]; the pieces are
//! public so integration tests can drive them in-process.
//!
//! - [`icmp`]: pure wire format (zero-copy views, never panics);
//! - [`engine`]: clock-injectable core (scheduling, sequence numbers, matching, frames);
//! - [`sock`]: datagram/raw ICMP sockets with kernel receive timestamps;
//! - [`recv`]: the receive thread and its bounded queue;
//! - [`daemon`]: the mio event loop on the main thread, a table of named steps (open,
//!   events, replies, sends, tick, chores, sleep, shutdown);
//! - [`config`]: CLI + TOML configuration;
//! - [`alert`]: the `[[alert]]` rules on the final frames, and their commands;
//! - [`listen`]: the listening addresses of the live stream and the exporter;
//! - [`live`]: the live-stream server (zzping-lib's sans-IO server on a UDP socket);
//! - [`lock`]: one daemon per data directory;
//! - [`metrics`]: the Prometheus exporter (`GET /metrics` on the event loop);
//! - [`notify`]: systemd's readiness and watchdog notifications.

pub mod alert;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod icmp;
pub mod listen;
pub mod live;
pub mod local;
pub mod lock;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod probe;
pub mod recv;
pub mod sock;
pub mod sys;
