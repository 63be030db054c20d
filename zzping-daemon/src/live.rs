//! The live stream: zzping-lib's sans-IO [`LiveServer`] driven by the event loop.
//!
//! One non-blocking UDP socket registered with token [`crate::daemon::LIVE`]. After every
//! loop iteration incoming datagrams are handed to the server (once the socket was
//! readable, until it is drained) and the server's queued datagrams are sent (a full socket buffer is reported
//! back with `on_send_would_block`; the viewer asks for a resend), and history (prefill
//! older than the in-memory ring) is read from the frame files. Context events the daemon
//! records (`Outputs::record`) are handed over too ([`Live::on_event`]) and reach every
//! viewer in sequenced `EVENTS` datagrams. Host indexes are the engine's host slots. Time is the wall clock in µs, as the protocol's timestamps are.
//!
//! # Pinging first
//! Everything here runs on the pinger's thread (the daemon has exactly one other thread,
//! the receive thread, and history reading stays off it), so its work per loop wakeup is
//! bounded and placed where no send is due: at most [`LIVE_RECEIVES_PER_WAKEUP`]
//! datagrams are read and [`LIVE_DATAGRAMS_PER_WAKEUP`] sent per wakeup (more wait for
//! the next one, which comes at once, after the engine's due sends), and a
//! history slice ([`LiveConfig::history_frames_per_pump`] frames, decoded or packaged,
//! shared by every viewer: a fraction of a millisecond) runs only when the engine's next
//! deadline is at least [`HISTORY_IDLE_NS`] away, or when history has waited
//! [`HISTORY_MAX_DEFER_NS`] for such a gap (a pinger busy all the time still serves
//! prefill, one slice per interval). Viewers prefilling the same hours share one reader
//! per host (`zzping_lib::live::StoreHistory`), so any number of them cost the pinger a
//! bounded slice per wakeup.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use mio::Registry;
use mio::net::UdpSocket;
use thiserror::Error;
use tracing::{debug, warn};
use zzping_lib::codec::QFrame;
use zzping_lib::events::ContextEvent;
use zzping_lib::live::{
    HostMeta, LiveConfig, LiveError, LiveServer, RECV_BUFFER, SecretError, StoreHistory,
    check_listen_addr, read_secret_file,
};

use crate::engine::HostId;
use crate::listen::ListenAddr;

/// Setting up the live stream failed.
#[derive(Debug, Error)]
pub enum LiveSetupError {
    /// The secret file could not be read or is not 64 hex digits.
    #[error("live secret file {0}")]
    Secret(#[from] SecretError),
    /// The server refused the configuration (e.g. non-loopback without a secret).
    #[error(transparent)]
    Live(#[from] LiveError),
    /// Binding or registering the socket failed.
    #[error("live socket {addr}: {source}")]
    Socket {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// Reads the live stream's shared secret (the lib's one parser: 64 hex digits, whitespace
/// ignored).
pub fn read_secret(path: &Path) -> Result<[u8; 32], LiveSetupError> {
    Ok(read_secret_file(path)?)
}

/// The live-stream server with its socket.
pub struct Live {
    sock: UdpSocket,
    server: LiveServer,
    history: StoreHistory,
    data_dir: std::path::PathBuf,
    secret: Option<[u8; 32]>,
    buf: Box<[u8]>,
    send_error_logged: bool,
    /// Monotonic ns of the last history slice.
    history_at_ns: u64,
    /// The socket may hold datagrams not read yet (readable, and not yet drained to
    /// `WouldBlock`: the poll is edge-triggered, so they are read without a new event).
    rx_pending: bool,
    /// Authentication failures already logged, and when the last log line was (µs).
    auth_failures_logged: u64,
    auth_logged_at_us: u64,
    /// The same for datagrams of another protocol version.
    bad_versions_logged: u64,
    bad_version_logged_at_us: u64,
}

/// Authentication failures (and datagrams of another protocol version) are logged at
/// most this often (µs): a misconfigured viewer retries several times a second.
pub const AUTH_LOG_EVERY_US: u64 = 10_000_000;

/// The server's settings for a secret (none: loopback only).
fn server_config(secret: Option<[u8; 32]>) -> LiveConfig {
    LiveConfig {
        secret,
        ring_seconds: LIVE_RING_SECONDS,
        ring_bytes_per_host: LIVE_RING_BYTES_PER_HOST,
        ..LiveConfig::default()
    }
}

/// Seconds of frames each host keeps in memory for prefill and resends: the last hour.
/// Older prefill is read from the frame files (paced, see `zzping_lib::live::StoreHistory`).
pub const LIVE_RING_SECONDS: u32 = 3600;
/// Ring arena per host, bytes: an hour of 100 ms frames of 10 pings is 36,000 records of
/// about 22 bytes (frame, length, time delta; the ring's index is sparse), 792 KB. With
/// 10 such hosts the rings take 8 MB and the daemon stays within its 16 MB budget; hosts
/// pinged faster keep proportionally less time in memory (the rest comes from disk).
pub const LIVE_RING_BYTES_PER_HOST: usize = 800 * 1024;
/// Most live datagrams sent per loop wakeup (about 5 µs each).
pub const LIVE_DATAGRAMS_PER_WAKEUP: usize = 16;
/// Most datagrams read from the live socket per loop wakeup (a few µs each): a flood of
/// them waits in the socket for the next wakeups, which come at once, with the engine's
/// due sends between them.
pub const LIVE_RECEIVES_PER_WAKEUP: usize = 64;
/// A history slice runs only when the engine has nothing due for this long (1 ms; a slice
/// takes a fraction of that).
pub const HISTORY_IDLE_NS: u64 = 1_000_000;
/// ... or when history has waited this long for such a gap (250 ms).
pub const HISTORY_MAX_DEFER_NS: u64 = 250_000_000;

impl Live {
    /// Binds `addr` (see [`ListenAddr::bind_with`]) and registers it with `token`.
    pub fn open(
        addr: impl Into<ListenAddr>,
        secret: Option<[u8; 32]>,
        data_dir: &Path,
        registry: &Registry,
        token: mio::Token,
    ) -> Result<Live, LiveSetupError> {
        let cfg = server_config(secret);
        let addr = addr.into();
        let first = addr.candidates()[0];
        check_listen_addr(first, &cfg)?;
        let server = LiveServer::new(cfg)?;
        let sock_err = |source| LiveSetupError::Socket {
            addr: first,
            source,
        };
        let (sock, _) = addr.bind_with(crate::listen::bind_udp).map_err(sock_err)?;
        let mut sock = UdpSocket::from_std(sock);
        registry
            .register(&mut sock, token, mio::Interest::READABLE)
            .map_err(sock_err)?;
        Ok(Live {
            sock,
            server,
            history: StoreHistory::new(data_dir),
            data_dir: data_dir.to_path_buf(),
            secret,
            buf: vec![0u8; RECV_BUFFER].into_boxed_slice(),
            send_error_logged: false,
            history_at_ns: 0,
            rx_pending: false,
            auth_failures_logged: 0,
            auth_logged_at_us: 0,
            bad_versions_logged: 0,
            bad_version_logged_at_us: 0,
        })
    }

    /// The shared secret the server checks (none: loopback only, no MAC).
    pub fn secret(&self) -> Option<[u8; 32]> {
        self.secret
    }

    /// Changes the shared secret (SIGHUP): a new server on the same socket, so every
    /// subscription ends (viewers subscribe again, with the new secret) and the hosts
    /// must be declared again ([`Live::set_host`]); the recent context events are kept.
    /// Refused, with the server unchanged, when the address needs a secret and `secret`
    /// is none.
    pub fn set_secret(&mut self, secret: Option<[u8; 32]>) -> Result<(), LiveSetupError> {
        let cfg = server_config(secret);
        let addr = self.local_addr().map_err(|source| LiveSetupError::Socket {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        check_listen_addr(addr, &cfg)?;
        let mut server = LiveServer::new(cfg)?;
        server.carry_events(&self.server);
        self.server = server;
        self.history = StoreHistory::new(&self.data_dir);
        self.secret = secret;
        self.auth_failures_logged = 0;
        self.bad_versions_logged = 0;
        Ok(())
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Declares (or updates: new address) a host.
    #[allow(clippy::too_many_arguments)]
    pub fn set_host(
        &mut self,
        id: HostId,
        label: &str,
        address: IpAddr,
        name: Option<String>,
        period_us: u32,
        precision: f64,
    ) {
        let meta = HostMeta {
            label: label.to_owned(),
            address,
            name,
            period_us,
            precision,
        };
        if let Err(e) = self.server.add_host(id.slot, meta) {
            warn!("{label}: not streamed live: {e}");
            return;
        }
        self.history.set_host(id.slot, label);
    }

    /// A host is gone.
    pub fn remove_host(&mut self, id: HostId) {
        self.server.remove_host(id.slot);
        self.history.remove_host(id.slot);
    }

    /// A final frame, already quantized with the precision given to [`Live::set_host`]
    /// (the daemon quantizes each frame once for the files and the live stream).
    pub fn on_qframe(&mut self, id: HostId, frame: &QFrame, now_us: u64) {
        self.server.on_qframe(id.slot, frame, now_us);
    }

    /// A context event was recorded: queued for every viewer (sent by the next
    /// [`Live::pump`]; allocates nothing).
    pub fn on_event(&mut self, ev: &ContextEvent, now_us: u64) {
        self.server.on_event(ev, now_us);
    }

    /// Hands the server the context events of the last [`LIVE_RING_SECONDS`] in the
    /// events files of `data_dir` (at most the server's ring of them, the newest), so
    /// viewers of a restarted daemon get in their prefill what happened before the
    /// restart; `now_us` is the wall clock. Events that cannot be read are left out (the
    /// files' readers report them). Returns how many were handed over.
    pub fn preload_events(&mut self, data_dir: &Path, now_us: u64) -> usize {
        let from = now_us.saturating_sub(u64::from(LIVE_RING_SECONDS) * 1_000_000);
        let log = zzping_lib::events::read_range(
            &[zzping_lib::events::events_dir(data_dir)],
            from,
            now_us.saturating_add(1),
        );
        if !log.issues.is_empty() || !log.errors.is_empty() {
            debug!(
                "live: {} issue(s) reading the recent events",
                log.issues.len() + log.errors.len()
            );
        }
        let keep = log.events.len().min(zzping_lib::live::EVENT_RING_EVENTS);
        for ev in &log.events[log.events.len() - keep..] {
            self.server.preload_event(ev, ev.t_us);
        }
        keep
    }

    /// Takes over the recent context events of `old` (a live stream replaced on reload).
    pub fn carry_events(&mut self, old: &Live) {
        self.server.carry_events(&old.server);
    }

    /// The socket is readable: its datagrams are read by [`Live::pump`], at most
    /// [`LIVE_RECEIVES_PER_WAKEUP`] per wakeup, so a flood cannot hold the pinger.
    pub fn on_readable(&mut self) {
        self.rx_pending = true;
    }

    /// Hands queued datagrams to the server, at most [`LIVE_RECEIVES_PER_WAKEUP`].
    fn receive(&mut self, now_us: u64) {
        for _ in 0..LIVE_RECEIVES_PER_WAKEUP {
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    let bytes = &self.buf[..n.min(self.buf.len())];
                    self.server.on_datagram(src, bytes, now_us);
                    self.note_auth_failures(src, now_us);
                    self.note_bad_versions(src, now_us);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rx_pending = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from viewers that went away, etc.: not ours to act on (the
                // next wakeup reads on).
                Err(e) => {
                    debug!("live: receive: {e}");
                    return;
                }
            }
        }
    }

    /// Logs messages that failed authentication (a viewer without the secret, or with
    /// another one), at most once per [`AUTH_LOG_EVERY_US`].
    fn note_auth_failures(&mut self, src: SocketAddr, now_us: u64) {
        let n = self.server.stats().auth_failures;
        if n > self.auth_failures_logged
            && now_us.saturating_sub(self.auth_logged_at_us) >= AUTH_LOG_EVERY_US
        {
            warn!(
                "live: {} message(s) failed authentication (wrong or missing shared \
                 secret), dropped; the last from {src}",
                n - self.auth_failures_logged
            );
            self.auth_failures_logged = n;
            self.auth_logged_at_us = now_us;
        }
    }

    /// Logs datagrams of another protocol version (a viewer of another zzping version:
    /// they get no answer), at most once per [`AUTH_LOG_EVERY_US`].
    fn note_bad_versions(&mut self, src: SocketAddr, now_us: u64) {
        let n = self.server.stats().bad_version;
        if n > self.bad_versions_logged
            && now_us.saturating_sub(self.bad_version_logged_at_us) >= AUTH_LOG_EVERY_US
        {
            warn!(
                "live: {} datagram(s) of another protocol version than {} ignored (a \
                 viewer of another zzping version?); the last from {src}",
                n - self.bad_versions_logged,
                zzping_lib::live::wire::VERSION
            );
            self.bad_versions_logged = n;
            self.bad_version_logged_at_us = now_us;
        }
    }

    /// Reads datagrams the socket holds (at most [`LIVE_RECEIVES_PER_WAKEUP`]), sends
    /// what the server has queued (at most [`LIVE_DATAGRAMS_PER_WAKEUP`]) and reads
    /// a slice of history if the engine's next deadline is `idle_ns` away (see the module
    /// docs); `mono_ns` is the monotonic clock.
    pub fn pump(&mut self, now_us: u64, mono_ns: u64, idle_ns: u64) {
        if self.rx_pending {
            self.receive(now_us);
        }
        if self.server.history_pending() {
            let starved = mono_ns.saturating_sub(self.history_at_ns) >= HISTORY_MAX_DEFER_NS;
            if idle_ns >= HISTORY_IDLE_NS || starved {
                self.server.pump_history(now_us, &mut self.history);
                self.history_at_ns = mono_ns;
            }
        } else {
            self.history_at_ns = mono_ns;
            if self.history.open_readers() > 0 {
                self.history.close_all();
            }
        }
        for _ in 0..LIVE_DATAGRAMS_PER_WAKEUP {
            let Some((dst, len)) = self.server.poll_transmit(now_us, &mut self.buf) else {
                break;
            };
            let Some(bytes) = self.buf.get(..len) else {
                continue;
            };
            match self.sock.send_to(bytes, dst) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.server.on_send_would_block(dst, now_us);
                    break;
                }
                Err(e) => {
                    if !self.send_error_logged {
                        warn!("live: sending to {dst}: {e} (further errors not logged)");
                        self.send_error_logged = true;
                    }
                }
            }
        }
    }

    /// Sends everything queued (at exit: nothing is pinged any more).
    pub fn flush(&mut self, now_us: u64) {
        for _ in 0..1024 {
            if self.server.next_deadline().is_none_or(|d| d > now_us) {
                break;
            }
            self.pump(now_us, 0, 0);
        }
    }

    /// Wall-clock µs at which [`Live::pump`] has work next (history reading is paced
    /// at 1 ms), or `None` when idle.
    pub fn next_deadline_us(&self, now_us: u64) -> Option<u64> {
        if self.rx_pending {
            return Some(now_us);
        }
        let d = self.server.next_deadline();
        if self.server.history_pending() {
            let h = now_us + 1_000;
            return Some(d.map_or(h, |d| d.min(h)));
        }
        d
    }

    /// Subscribers and counters, for logs.
    pub fn stats(&self) -> zzping_lib::live::LiveStats {
        self.server.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_read_a_bounded_batch_per_wakeup() {
        let poll = mio::Poll::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut live = Live::open(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            None,
            dir.path(),
            poll.registry(),
            mio::Token(0),
        )
        .unwrap();
        let to = live.local_addr().unwrap();
        let flooder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Two full batches and a bit (few enough to fit the default receive buffer).
        const FLOOD: u64 = 2 * LIVE_RECEIVES_PER_WAKEUP as u64 + 2;
        for _ in 0..FLOOD {
            flooder.send_to(&[0xc1, 1], to).unwrap();
        }
        let now = 1_700_000_000_000_000;
        live.on_readable();
        assert_eq!(live.stats().malformed, 0, "read by the pump, not the event");
        assert_eq!(live.next_deadline_us(now), Some(now));
        let mut read = Vec::new();
        for _ in 0..4 {
            live.pump(now, 0, 0);
            read.push(live.stats().malformed);
        }
        let batch = LIVE_RECEIVES_PER_WAKEUP as u64;
        assert_eq!(read, [batch, 2 * batch, FLOOD, FLOOD]);
        // Drained: the loop may sleep again.
        assert_ne!(live.next_deadline_us(now), Some(now));
    }
}
