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
//! (µs, before the files' quantization). Hosts appear (at zero) when they start and
//! disappear when removed (SIGHUP); a re-pointed host keeps its counters under its new
//! `address` label.
//!
//! The body is rendered into one reused `String` and copied into the connection's
//! reused output buffer: after the first scrapes have sized them, a scrape allocates
//! nothing. Nothing here runs per ping except [`Metrics::on_frame`] (per final frame,
//! allocation-free) and [`Metrics::note_replies`].

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use tracing::{debug, warn};
use zzping_lib::frame::Frame;

use crate::engine::{DelayHistogram, EngineStats, HostId, Reply};
use crate::icmp::Family;
use crate::listen::ListenAddr;
use crate::sock::Kind;

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

/// Upper bounds of the RTT histogram's buckets, µs (plus `+Inf`).
pub const RTT_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// The same bounds as `le` label values, seconds.
pub const RTT_BUCKETS_LE: [&str; 16] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10",
];

/// Counters of one host, summed from its final frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Requests sent (including failed sends).
    pub sent: u64,
    /// First replies within the timeout.
    pub replies: u64,
    /// Requests lost.
    pub lost: u64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// Late replies.
    pub late: u64,
    /// Send failures and ICMP errors.
    pub errors: u64,
    /// RTT histogram, non-cumulative; the last bucket is `+Inf`.
    pub rtt_buckets: [u64; RTT_BUCKETS_US.len() + 1],
    /// Sum of RTTs, µs.
    pub rtt_sum_us: u64,
}

impl HostCounters {
    /// Adds a final frame.
    pub fn add(&mut self, f: &Frame) {
        self.sent += u64::from(f.sent);
        self.replies += u64::from(f.received());
        self.lost += u64::from(f.lost);
        self.duplicates += u64::from(f.duplicates);
        self.late += u64::from(f.late);
        self.errors += u64::from(f.errors);
        for &r in &f.rtts_us {
            let r = u64::from(r);
            let i = RTT_BUCKETS_US.partition_point(|&b| b < r);
            self.rtt_buckets[i] += 1;
            self.rtt_sum_us += r;
        }
    }
}

struct HostSeries {
    id: HostId,
    /// `host="..",address="..",family=".."`, escaped, rendered once.
    labels: String,
    counters: HostCounters,
}

/// Daemon-wide values sampled by the event loop when a scrape is answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    /// Engine counters.
    pub stats: EngineStats,
    /// Send lateness.
    pub lateness: DelayHistogram,
    /// How long kernel-stamped replies waited in the socket before they were read.
    pub rx_wait: DelayHistogram,
    /// Replies the receive queue dropped (full).
    pub queue_drops: u64,
    /// Frames handed to the outputs.
    pub frames: u64,
    /// Frame file write errors.
    pub write_errors: u64,
    /// Pinging has stopped and every frame is final: the counters will not change.
    pub stopped: bool,
}

/// The values exported, and their rendering (no I/O).
#[derive(Default)]
pub struct Exporter {
    hosts: Vec<Option<HostSeries>>,
    sockets: [Option<Kind>; 2],
    stamps_kernel: u64,
    stamps_user: u64,
    start_time_s: f64,
    /// HTTP counters: requests answered per status class.
    http: HttpStats,
}

/// Counters of the HTTP side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// `200` responses.
    pub ok: u64,
    /// `4xx` responses.
    pub client_errors: u64,
    /// Connections closed by the 5 s limit.
    pub timeouts: u64,
    /// Connections evicted or refused because all slots were taken.
    pub evicted: u64,
    /// Responses whose write had to wait for the socket (partial writes; not exported).
    pub write_waits: u64,
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl Exporter {
    /// An exporter with no hosts; `start_time_s` is the process start (epoch seconds).
    pub fn new(start_time_s: f64) -> Self {
        Exporter {
            start_time_s,
            ..Default::default()
        }
    }

    /// Declares a host, or updates its address (counters kept).
    pub fn set_host(&mut self, id: HostId, label: &str, address: IpAddr) {
        let slot = id.slot as usize;
        if self.hosts.len() <= slot {
            self.hosts.resize_with(slot + 1, || None);
        }
        let mut labels = String::with_capacity(label.len() + 64);
        labels.push_str("host=\"");
        escape_label(&mut labels, label);
        let _ = write!(
            labels,
            "\",address=\"{address}\",family=\"{}\"",
            family_name(Family::of(&address))
        );
        match &mut self.hosts[slot] {
            Some(h) if h.id == id => h.labels = labels,
            s => {
                *s = Some(HostSeries {
                    id,
                    labels,
                    counters: HostCounters::default(),
                })
            }
        }
    }

    /// A host is gone: its series disappear.
    pub fn remove_host(&mut self, id: HostId) {
        if let Some(s) = self.hosts.get_mut(id.slot as usize)
            && s.as_ref().is_some_and(|h| h.id == id)
        {
            *s = None;
        }
    }

    /// A final frame of `id` (the same frame the files get).
    pub fn on_frame(&mut self, id: HostId, frame: &Frame) {
        if let Some(Some(h)) = self.hosts.get_mut(id.slot as usize)
            && h.id == id
        {
            h.counters.add(frame);
        }
    }

    /// Counters of a host.
    pub fn counters(&self, id: HostId) -> Option<&HostCounters> {
        match self.hosts.get(id.slot as usize) {
            Some(Some(h)) if h.id == id => Some(&h.counters),
            _ => None,
        }
    }

    /// The ICMP socket kind of a family (`None`: no socket).
    pub fn set_socket(&mut self, family: Family, kind: Option<Kind>) {
        self.sockets[family.index()] = kind;
    }

    /// Counts the timestamp source of received messages.
    pub fn note_replies(&mut self, batch: &[Reply]) {
        for r in batch {
            if matches!(r.msg, crate::icmp::Message::TxStamp { .. }) {
                continue;
            }
            if r.kernel_real_ns.is_some() {
                self.stamps_kernel += 1;
            } else {
                self.stamps_user += 1;
            }
        }
    }

    /// Renders every metric (text exposition format 0.0.4) into `out` (cleared first).
    /// `cpu_s` and `rss_bytes` are the process's (`None`: unknown).
    pub fn render(&self, out: &mut String, h: &Health, cpu_s: f64, rss_bytes: Option<u64>) {
        out.clear();
        let hosts = || self.hosts.iter().flatten();
        type Pick = fn(&HostCounters) -> u64;
        let counters: [(&str, &str, Pick); 6] = [
            (
                "zzping_requests_sent_total",
                "Echo requests sent (including failed sends), from final frames.",
                |c| c.sent,
            ),
            (
                "zzping_replies_total",
                "Requests answered within the timeout (first reply), from final frames.",
                |c| c.replies,
            ),
            (
                "zzping_lost_total",
                "Requests without reply or error within the timeout, from final frames.",
                |c| c.lost,
            ),
            (
                "zzping_duplicates_total",
                "Extra replies to requests already answered.",
                |c| c.duplicates,
            ),
            (
                "zzping_late_replies_total",
                "Replies to requests already counted lost.",
                |c| c.late,
            ),
            (
                "zzping_errors_total",
                "Requests whose send failed or that drew an ICMP error.",
                |c| c.errors,
            ),
        ];
        for (name, help, pick) in counters {
            header(out, name, help, "counter");
            for s in hosts() {
                let _ = writeln!(out, "{name}{{{}}} {}", s.labels, pick(&s.counters));
            }
        }
        header(
            out,
            "zzping_rtt_seconds",
            "Round-trip times of replies received within the timeout.",
            "histogram",
        );
        for s in hosts() {
            let c = &s.counters;
            let mut acc = 0;
            for (i, le) in RTT_BUCKETS_LE.iter().enumerate() {
                acc += c.rtt_buckets[i];
                let _ = writeln!(
                    out,
                    "zzping_rtt_seconds_bucket{{{},le=\"{le}\"}} {acc}",
                    s.labels
                );
            }
            acc += c.rtt_buckets[RTT_BUCKETS_US.len()];
            let _ = writeln!(
                out,
                "zzping_rtt_seconds_bucket{{{},le=\"+Inf\"}} {acc}",
                s.labels
            );
            let _ = writeln!(
                out,
                "zzping_rtt_seconds_sum{{{}}} {}",
                s.labels,
                c.rtt_sum_us as f64 / 1e6
            );
            let _ = writeln!(out, "zzping_rtt_seconds_count{{{}}} {acc}", s.labels);
        }

        // Daemon health.
        delay_histogram(
            out,
            "zzping_send_lateness_seconds",
            "Actual minus scheduled send time of every request.",
            &h.lateness,
        );
        delay_histogram(
            out,
            "zzping_reply_socket_wait_seconds",
            "How long kernel-stamped replies waited in the socket before the receive thread \
             read them (batching and scheduling; not part of their RTT).",
            &h.rx_wait,
        );
        let st = &h.stats;
        header(
            out,
            "zzping_rtt_kernel_timed_total",
            "Received replies whose RTT runs from a kernel transmit stamp to a kernel \
             receive stamp.",
            "counter",
        );
        let _ = writeln!(out, "zzping_rtt_kernel_timed_total {}", st.rtt_kernel);
        header(
            out,
            "zzping_rtt_user_timed_total",
            "Received replies with a user-space time at one side (an upper bound; their \
             frames carry the user_stamp flag), by side.",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_rtt_user_timed_total{{side=\"send\"}} {}",
            st.rtt_user_send
        );
        let _ = writeln!(
            out,
            "zzping_rtt_user_timed_total{{side=\"receive\"}} {}",
            st.rtt_user_receive
        );
        let plain: [(&str, &str, &str, f64); 13] = [
            (
                "zzping_receive_stamps_in_call_total",
                "Replies the kernel stamped inside recvmsg because network timestamping was \
                 not on yet (their receive time is not an arrival time).",
                "counter",
                st.rx_in_call as f64,
            ),
            (
                "zzping_replies_batched_total",
                "Received replies read by a batch drain of the receive thread.",
                "counter",
                st.rtt_batched as f64,
            ),
            (
                "zzping_send_kernel_timestamps_total",
                "Requests whose send time is the kernel's transmit stamp (the others use the \
                 clock read just before sendto).",
                "counter",
                st.tx_stamped as f64,
            ),
            (
                "zzping_receive_queue_drops_total",
                "Replies dropped because the receive queue was full.",
                "counter",
                h.queue_drops as f64,
            ),
            (
                "zzping_clock_steps_total",
                "Wall-clock steps detected.",
                "counter",
                st.clock_steps as f64,
            ),
            (
                "zzping_sends_skipped_total",
                "Sends skipped because the loop was far behind schedule.",
                "counter",
                st.skipped_sends as f64,
            ),
            (
                "zzping_unmatched_messages_total",
                "Received ICMP messages that matched no request of ours.",
                "counter",
                st.unmatched as f64,
            ),
            (
                "zzping_frames_total",
                "Final frames handed to the writers.",
                "counter",
                h.frames as f64,
            ),
            (
                "zzping_write_errors_total",
                "Frame file write errors.",
                "counter",
                h.write_errors as f64,
            ),
            (
                "zzping_stopped",
                "1 once pinging has stopped and every frame is final (counters are final).",
                "gauge",
                if h.stopped { 1.0 } else { 0.0 },
            ),
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                cpu_s,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                self.start_time_s,
            ),
            (
                "zzping_hosts",
                "Hosts being pinged.",
                "gauge",
                hosts().count() as f64,
            ),
        ];
        for (name, help, kind, v) in plain {
            header(out, name, help, kind);
            let _ = writeln!(out, "{name} {v}");
        }
        if let Some(rss) = rss_bytes {
            header(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        header(
            out,
            "zzping_reply_timestamps_total",
            "Received messages by timestamp source (kernel SO_TIMESTAMPNS, or user space).",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_reply_timestamps_total{{source=\"kernel\"}} {}",
            self.stamps_kernel
        );
        let _ = writeln!(
            out,
            "zzping_reply_timestamps_total{{source=\"user\"}} {}",
            self.stamps_user
        );
        header(
            out,
            "zzping_timestamp_source_info",
            "Receive timestamp source: kernel (all so far), user, or mixed.",
            "gauge",
        );
        let source = match (self.stamps_kernel, self.stamps_user) {
            (_, 0) => "kernel",
            (0, _) => "user",
            _ => "mixed",
        };
        let _ = writeln!(out, "zzping_timestamp_source_info{{source=\"{source}\"}} 1");
        header(
            out,
            "zzping_socket_info",
            "ICMP socket kind per address family.",
            "gauge",
        );
        for f in [Family::V4, Family::V6] {
            let kind = match self.sockets[f.index()] {
                Some(Kind::Dgram) => "dgram",
                Some(Kind::Raw) => "raw",
                None => "none",
            };
            let _ = writeln!(
                out,
                "zzping_socket_info{{family=\"{}\",kind=\"{kind}\"}} 1",
                family_name(f)
            );
        }
        header(out, "zzping_build_info", "Build information.", "gauge");
        let _ = writeln!(
            out,
            "zzping_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let hs = &self.http;
        header(
            out,
            "zzping_metrics_http_responses_total",
            "Responses of this endpoint by status class.",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_responses_total{{class=\"2xx\"}} {}",
            hs.ok
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_responses_total{{class=\"4xx\"}} {}",
            hs.client_errors
        );
        header(
            out,
            "zzping_metrics_http_connections_dropped_total",
            "Connections closed without a response: timed out (5 s) or evicted (16 at most).",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_connections_dropped_total{{reason=\"timeout\"}} {}",
            hs.timeouts
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_connections_dropped_total{{reason=\"evicted\"}} {}",
            hs.evicted
        );
        keep_slack(out);
    }
}

/// Leaves at least 1/8 of spare capacity (and 1 KiB), so counters gaining digits do not
/// make the next render reallocate: the buffer grows in rare steps, not per scrape.
fn keep_slack(out: &mut String) {
    let want = out.len() / 8 + 1024;
    if out.capacity() - out.len() < want {
        out.reserve(want * 2);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A [`DelayHistogram`] as a Prometheus histogram in seconds (cumulative buckets).
fn delay_histogram(out: &mut String, name: &str, help: &str, h: &DelayHistogram) {
    header(out, name, help, "histogram");
    let mut acc = 0;
    // buckets[i] holds delays < 2^i µs; the last one is open-ended.
    let last = h.buckets.len() - 1;
    for (i, b) in h.buckets[..last].iter().enumerate() {
        acc += b;
        let le = (1u64 << i) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {acc}");
    }
    acc += h.buckets[last];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {acc}");
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Not complete yet: read more.
    Incomplete,
    /// `GET /metrics` (`head`: `HEAD /metrics`).
    Metrics {
        /// HEAD: headers only.
        head: bool,
    },
    /// Another path: 404.
    NotFound,
    /// Another method on /metrics: 405.
    MethodNotAllowed,
    /// Malformed: 400.
    BadRequest,
    /// The head does not fit in [`MAX_REQUEST`] bytes: 431.
    TooLarge,
}

/// Most header lines a request may carry (more: 431). The parser's header table lives on
/// the stack: parsing allocates nothing.
const MAX_HEADERS: usize = 64;

/// Parses an HTTP/1.x request head from the bytes received so far (only the first
/// [`MAX_REQUEST`] are looked at) with `httparse`. Never panics; linear in the input.
pub fn parse_request(buf: &[u8]) -> Request {
    let buf = &buf[..buf.len().min(MAX_REQUEST)];
    let full = buf.len() >= MAX_REQUEST;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if full => return Request::TooLarge,
        Ok(httparse::Status::Partial) => return Request::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Request::TooLarge,
        Err(_) => return Request::BadRequest,
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Request::BadRequest;
    };
    // Origin form only (`/path?query`): no absolute URIs, no `*`.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Request::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Request::NotFound;
    }
    match method {
        "GET" => Request::Metrics { head: false },
        "HEAD" => Request::Metrics { head: true },
        _ => Request::MethodNotAllowed,
    }
}

/// Writes a complete response (status line, headers, body) into `out` (cleared first).
pub fn write_response(out: &mut Vec<u8>, req: Request, body: &str) {
    out.clear();
    let (status, ctype, body, allow) = match req {
        Request::Metrics { .. } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            body,
            false,
        ),
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n",
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
            true,
        ),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n",
            false,
        ),
        Request::BadRequest | Request::Incomplete => {
            ("400 Bad Request", "text/plain", "bad request\n", false)
        }
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if allow {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !matches!(req, Request::Metrics { head: true }) {
        out.extend_from_slice(body.as_bytes());
    }
    // Spare room, as for the body (see `keep_slack`).
    let want = out.len() / 8 + 1024;
    if out.capacity() - out.len() < want {
        out.reserve(want * 2);
    }
}

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
            let cpu_s = crate::sys::process_cpu_ns() as f64 / 1e9;
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
