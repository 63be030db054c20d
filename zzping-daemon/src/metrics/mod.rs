//! The Prometheus exporter: `GET /metrics` served from the main event loop.
//!
//! One non-blocking mio `TcpListener` (token [`crate::daemon::METRICS`]) and at most
//! [`MAX_CONNS`] connections, each with its own token (`CONN_BASE + slot`). No thread, no
//! runtime: the loop hands readiness events to [`Metrics::on_event`], calls
//! [`Metrics::tick`] every iteration and sleeps no later than [`Metrics::next_deadline`].
//!
//! # Bounds (a bad client never stalls pinging)
//! * **Request size**: the request head (request line + headers) must fit in
//!   [`MAX_REQUEST`] bytes (8 KiB, the per-connection buffer, allocated once per slot);
//!   otherwise `431` (also for more than 64 header lines). The head is parsed with
//!   `httparse` (no allocation); a malformed request line or header is `400` as soon as it
//!   is seen.
//!   Request bodies are never read.
//! * **Time**: a connection has [`CONN_TIMEOUT_NS`] (5 s) from being accepted to
//!   deliver its request and take the whole response; then it is closed, whatever its
//!   state (slowloris-style trickling does not extend it).
//! * **Connections**: at most [`MAX_CONNS`] (16). When all slots are taken, a new
//!   connection evicts the oldest one still waiting for its request (a scraper sends its
//!   request at once, so idle connections are the ones to drop); if every slot is busy
//!   sending a response, the new one is closed at once. At most [`ACCEPTS_PER_TICK`]
//!   connections are accepted per loop iteration (the rest on the next iterations).
//! * **Partial writes**: the response is written as far as the socket takes it; the rest
//!   is kept and written on the next `WRITABLE` event (connections are registered for
//!   both readable and writable readiness).
//! * **Work per event**: one read of at most the buffer's free space, one parse of at
//!   most 8 KiB, one render.
//!
//! # HTTP
//! `GET /metrics` (query string ignored; `HEAD` too) answers `200` with the text
//! exposition format 0.0.4 (`text/plain; version=0.0.4`), any other path `404`, any
//! other method on `/metrics` `405`. HTTP/1.0 and 1.1; every response carries
//! `Connection: close` and the connection is closed after it (no keep-alive: a scrape a
//! second is one accept, which is cheap, and it keeps the state machine trivial).
//!
//! # Values
//! Per-host counters are summed from **final frames**, the very frames handed to the
//! file writers, so they equal the sums of the files (and `sent == replies + lost +
//! errors` holds for every host at every scrape). A request shows up in the counters
//! when its frame becomes final (period end + timeout). RTTs come from the same frames
//! (exact µs: the loop quantizes each frame once, for the files and the live stream,
//! and hands the exporter the frame before quantization). Hosts appear (at zero) when they start and
//! disappear when removed (SIGHUP); a re-pointed host keeps its counters under its new
//! `address` label.
//!
//! The body is rendered into one reused `String` and copied into the connection's
//! reused output buffer: after the first scrapes have sized them, a scrape allocates
//! nothing. Nothing here runs per ping except [`Exporter::on_frame`] (per final frame,
//! allocation-free) and [`Exporter::note_replies`].

mod exporter;
mod http;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use tracing::{debug, warn};

pub use exporter::{
    Exporter, Health, HostCounters, HttpStats, RTT_BUCKETS_LE, RTT_BUCKETS_US, escape_label,
};
pub use http::{Request, parse_request, write_response};

use crate::listen::ListenAddr;

/// Largest request head (request line and headers), bytes.
pub const MAX_REQUEST: usize = 8192;
/// Most connections served at once.
pub const MAX_CONNS: usize = 16;
/// A connection's whole life (request and response) is bounded by this, ns.
pub const CONN_TIMEOUT_NS: u64 = 5_000_000_000;
/// Connections accepted per loop iteration at most.
pub const ACCEPTS_PER_TICK: usize = 64;
/// Token of the first connection slot; slots use `CONN_BASE..CONN_BASE + MAX_CONNS`.
pub const CONN_BASE: usize = 64;

struct Slot {
    stream: Option<TcpStream>,
    /// Accept order (eviction picks the smallest among idle ones).
    serial: u64,
    deadline_ns: u64,
    inbuf: Box<[u8]>,
    in_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    responding: bool,
}

/// The exporter with its listening socket and connections.
pub struct Metrics {
    /// The values.
    pub exporter: Exporter,
    listener: TcpListener,
    registry: Registry,
    token: Token,
    slots: Vec<Slot>,
    next_serial: u64,
    accept_pending: bool,
    body: String,
}

/// Resident set size of this process, bytes (`/proc/self/statm`; no allocation).
pub fn resident_bytes() -> Option<u64> {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path, a buffer we own, and the fd closed once.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

impl Metrics {
    /// Binds `addr` (see [`ListenAddr::bind_with`]) and registers the listener with
    /// `token`; connections get tokens
    /// `CONN_BASE..CONN_BASE + MAX_CONNS`.
    pub fn open(
        addr: impl Into<ListenAddr>,
        registry: &Registry,
        token: Token,
        start_time_s: f64,
    ) -> io::Result<Metrics> {
        let (listener, _) = addr.into().bind_with(crate::listen::bind_tcp)?;
        let mut listener = TcpListener::from_std(listener);
        registry.register(&mut listener, token, Interest::READABLE)?;
        let slots = (0..MAX_CONNS)
            .map(|_| Slot {
                stream: None,
                serial: 0,
                deadline_ns: 0,
                inbuf: vec![0u8; MAX_REQUEST].into_boxed_slice(),
                in_len: 0,
                out: Vec::new(),
                out_pos: 0,
                responding: false,
            })
            .collect();
        Ok(Metrics {
            exporter: Exporter::new(start_time_s),
            listener,
            registry: registry.try_clone()?,
            token,
            slots,
            next_serial: 0,
            accept_pending: false,
            body: String::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `t` is the listener's or one of the connections' token.
    pub fn owns(&self, t: Token) -> bool {
        t == self.token || (CONN_BASE..CONN_BASE + MAX_CONNS).contains(&t.0)
    }

    /// HTTP counters.
    pub fn http_stats(&self) -> HttpStats {
        self.exporter.http
    }

    /// Handles a readiness event of one of our tokens.
    pub fn on_event(&mut self, t: Token, now_ns: u64, health: &Health) {
        if t == self.token {
            self.accept(now_ns);
            return;
        }
        let Some(i) = t.0.checked_sub(CONN_BASE).filter(|&i| i < MAX_CONNS) else {
            return;
        };
        if self.slots[i].stream.is_none() {
            return;
        }
        if !self.slots[i].responding {
            self.read(i, health);
        }
        if self.slots[i].responding {
            self.write(i);
        }
    }

    /// Every loop iteration: closes connections past their deadline, accepts what a
    /// previous iteration left in the backlog.
    pub fn tick(&mut self, now_ns: u64) {
        if self.accept_pending {
            self.accept(now_ns);
        }
        for i in 0..self.slots.len() {
            if self.slots[i].stream.is_some() && now_ns >= self.slots[i].deadline_ns {
                self.exporter.http.timeouts += 1;
                debug!("metrics: connection timed out");
                self.close(i);
            }
        }
    }

    /// Monotonic ns of the next thing to do (a connection deadline; `0`: now).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.accept_pending {
            return Some(0);
        }
        self.slots
            .iter()
            .filter(|s| s.stream.is_some())
            .map(|s| s.deadline_ns)
            .min()
    }

    fn accept(&mut self, now_ns: u64) {
        self.accept_pending = false;
        for _ in 0..ACCEPTS_PER_TICK {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: retry on the next iteration.
                    warn!("metrics: accept: {e}");
                    return;
                }
            };
            let free = match self.slots.iter().position(|s| s.stream.is_none()) {
                Some(i) => Some(i),
                None => {
                    // Evict the oldest connection still waiting for its request.
                    let victim = self
                        .slots
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| !s.responding)
                        .min_by_key(|(_, s)| s.serial)
                        .map(|(i, _)| i);
                    self.exporter.http.evicted += 1;
                    if let Some(v) = victim {
                        self.close(v);
                    }
                    victim
                }
            };
            let Some(i) = free else {
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            };
            let token = Token(CONN_BASE + i);
            if let Err(e) =
                self.registry
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                warn!("metrics: register: {e}");
                continue;
            }
            let s = &mut self.slots[i];
            s.stream = Some(stream);
            s.serial = self.next_serial;
            self.next_serial += 1;
            s.deadline_ns = now_ns.saturating_add(CONN_TIMEOUT_NS);
            s.in_len = 0;
            s.out.clear();
            s.out_pos = 0;
            s.responding = false;
        }
        self.accept_pending = true;
    }

    fn read(&mut self, i: usize, health: &Health) {
        let s = &mut self.slots[i];
        let Some(stream) = s.stream.as_mut() else {
            return;
        };
        loop {
            if s.in_len >= s.inbuf.len() {
                break;
            }
            match stream.read(&mut s.inbuf[s.in_len..]) {
                Ok(0) => {
                    // The client went away before finishing its request.
                    self.close(i);
                    return;
                }
                Ok(n) => {
                    s.in_len = (s.in_len + n).min(s.inbuf.len());
                    if parse_request(&s.inbuf[..s.in_len]) != Request::Incomplete {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(i);
                    return;
                }
            }
        }
        let req = parse_request(&s.inbuf[..s.in_len]);
        if req == Request::Incomplete {
            return;
        }
        if let Request::Metrics { .. } = req {
            self.exporter.http.ok += 1;
            let cpu_s = health.cpu_ns as f64 / 1e9;
            self.exporter
                .render(&mut self.body, health, cpu_s, resident_bytes());
        } else {
            self.exporter.http.client_errors += 1;
        }
        let s = &mut self.slots[i];
        write_response(&mut s.out, req, &self.body);
        s.out_pos = 0;
        s.responding = true;
    }

    fn write(&mut self, i: usize) {
        let s = &mut self.slots[i];
        let Some(stream) = s.stream.as_mut() else {
            return;
        };
        while s.out_pos < s.out.len() {
            match stream.write(&s.out[s.out_pos..]) {
                Ok(0) => break,
                Ok(n) => s.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.exporter.http.write_waits += 1;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
        self.close(i);
    }

    fn close(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if let Some(mut stream) = s.stream.take() {
            let _ = self.registry.deregister(&mut stream);
        }
        s.responding = false;
        s.in_len = 0;
        s.out_pos = 0;
    }
}

#[cfg(test)]
mod tests;
