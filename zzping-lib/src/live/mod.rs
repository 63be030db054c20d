//! The live stream: per-host frames pushed over UDP to any number of viewers.
//!
//! The protocol is specified byte for byte in `docs/live-protocol.md`. In short:
//!
//! - a viewer sends a padded `SUBSCRIBE` (host filter, prefill seconds, nonce, timestamp,
//!   MAC when a shared secret is configured); the server answers with a small stateless
//!   `COOKIE`; the viewer repeats the subscribe with it and gets `WELCOME` and a token;
//! - the server then streams *sequenced* datagrams: `HOST` metadata, `HOST_GONE` and
//!   `FRAMES` (frames in the [`crate::codec`] chained encoding, each group restarting the
//!   chain from an explicit base) and `EVENTS` (context events, [`crate::events`], as
//!   the maps of the events files), at most about [`MAX_DATAGRAM`] bytes each;
//! - the viewer heartbeats every [`HEARTBEAT_INTERVAL_US`]; [`SUBSCRIPTION_TIMEOUT_US`]
//!   of silence ends the subscription; missing sequence numbers are asked for with
//!   `RESEND` and served from a per-subscription retransmit ring, or reported
//!   `UNAVAILABLE`, which the viewer turns into explicit [`LiveEvent::Gap`]s.
//!
//! Both ends are sans-IO state machines: [`LiveServer`] is driven by the daemon's event
//! loop (no threads, no blocking, no allocation per frame in steady state) and
//! [`LiveClient`] by a viewer; [`UdpLiveClient`] is a thin blocking wrapper over
//! `std::net::UdpSocket` for the CLI and tests.

mod client;
mod history;
mod ring;
mod secret;
mod server;
pub mod wire;

pub use client::{
    ClientConfig, ClientStats, EVENT_MEMORY, LiveClient, LiveEvent, REORDER_LIMIT, RESEND_ATTEMPTS,
    RESEND_TIMEOUT_US, UdpLiveClient,
};
pub use history::{READERS_PER_HOST, StoreHistory, WINDOW_FRAMES};
pub use secret::{MAX_SECRET_FILE_BYTES, SECRET_LEN, SecretError, parse_secret, read_secret_file};
pub use server::{
    EVENT_RING_BYTES, EVENT_RING_EVENTS, HistoryRead, HistorySource, LiveConfig, LiveServer,
    LiveStats, NoHistory, REPLAY_CACHE, REPLAY_HORIZON_US, REPLAY_QUOTA_PER_SOURCE,
    check_listen_addr,
};

use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Default listening address of the live stream.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// Default UDP port.
pub const DEFAULT_PORT: u16 = 7878;
/// A subscription with no valid message from its viewer for this long ends (15 s).
pub const SUBSCRIPTION_TIMEOUT_US: u64 = 15_000_000;
/// Interval between a viewer's heartbeats (5 s).
pub const HEARTBEAT_INTERVAL_US: u64 = 5_000_000;
/// Smallest accepted `SUBSCRIBE` (bytes): every reply to an unverified subscribe is
/// smaller than this.
pub const MIN_SUBSCRIBE_LEN: usize = 256;
/// A subscribe's timestamp must be within this of the server's clock (30 s).
pub const TIMESTAMP_WINDOW_US: u64 = 30_000_000;
/// Cookies are valid for the time bucket they were made in and the next one (10 s each).
pub const COOKIE_BUCKET_US: u64 = 10_000_000;
/// Target size of a data datagram (bytes).
pub const MAX_DATAGRAM: usize = 1200;
/// Largest datagram ever sent (a single frame too large for [`MAX_DATAGRAM`] goes alone in
/// a datagram of up to this size; larger frames are skipped and counted). Receive
/// buffers should be at least [`RECV_BUFFER`] bytes.
pub const HARD_MAX_DATAGRAM: usize = 65_000;
/// Receive buffer size that holds any datagram of the protocol.
pub const RECV_BUFFER: usize = 65_536;
/// Most sequence numbers one `RESEND` may ask for.
pub const MAX_RESEND_RANGE: u64 = 1024;

/// Identity and parameters of a streamed host, sent in `HOST` messages.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMeta {
    /// Display label (the configured target); filters match it exactly.
    pub label: String,
    /// Current address.
    pub address: IpAddr,
    /// Configured name, when the target was given as a name.
    pub name: Option<String>,
    /// Frame period, µs.
    pub period_us: u32,
    /// Quantizer precision of the RTT codes.
    pub precision: f64,
}

/// The timer clock of the live stream's server and client: µs that advance with the wall clock it is given but never go
/// back. A backward wall-clock step pauses the timers (batching, pacing, expiry, cookies)
/// instead of stalling them for the length of the step; a forward one moves them on
/// (silent viewers expire; they subscribe again).
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerClock {
    /// The last wall-clock reading.
    wall: Option<u64>,
    now: u64,
}

impl TimerClock {
    pub(crate) fn tick(&mut self, wall_us: u64) -> u64 {
        match self.wall {
            None => self.now = wall_us,
            Some(w) => self.now += wall_us.saturating_sub(w),
        }
        self.wall = Some(wall_us);
        self.now
    }

    /// The last wall-clock reading.
    pub(crate) fn wall(&self) -> u64 {
        self.wall.unwrap_or(0)
    }

    /// `t` on the timer clock as wall-clock µs (by the last reading).
    pub(crate) fn to_wall(&self, t: u64) -> u64 {
        let w = self.wall.unwrap_or(0);
        if t >= self.now {
            w.saturating_add(t - self.now)
        } else {
            w.saturating_sub(self.now - t)
        }
    }
}

/// Errors of the live-stream API (never of incoming data: bad datagrams are counted).
#[derive(Debug, Error)]
pub enum LiveError {
    /// A configuration value is out of range.
    #[error("live stream configuration: {0}")]
    Config(String),
    /// The OS random number generator failed.
    #[error("cannot get random bytes from the OS: {0}")]
    Random(String),
    /// Socket error (blocking client only).
    #[error("live stream socket: {0}")]
    Io(#[from] std::io::Error),
}
