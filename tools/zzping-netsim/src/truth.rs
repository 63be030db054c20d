//! Ground truth: what the simulator saw and did, as JSON Lines.
//!
//! With `--truth FILE`, the simulator writes one JSON object per line. Every
//! object has an `"event"` field naming its kind. Times are µs since the Unix
//! epoch (CLOCK_REALTIME) unless noted; addresses are strings.
//!
//! * `start` — first line: `time_us` (u64), `scenario` (string, name),
//!   `seed` (u64), `tun` (string), `hosts` (array of
//!   `{name, addresses: [string], summary, path: [string]}`; `path`: the
//!   routers before it, first hop first, with the initial gateway),
//!   `interfaces` (array of
//!   `{name, addresses: ["198.18.0.1/24", ...]}`, the `[network]` TUN first),
//!   `gateway_v4`, `gateway_v6` (default gateways installed, or null).
//! * `request` — one per ICMP echo request read from the TUN:
//!   `id` (u64, request number, from 0), `time_us` (u64, when it was read),
//!   `t_us` (u64, µs since the simulator started, the time profiles use),
//!   `family` (`"ipv4"`|`"ipv6"`), `src`, `dst` (strings),
//!   `host` (string or null when no host has `dst`), `icmp_id` (u16),
//!   `icmp_seq` (u16), `payload_len` (u64), `fate` (one of `answered`,
//!   `duplicated`, `dropped_random`, `dropped_burst`, `dropped_ratelimit`,
//!   `dropped_outage`, `silent`, `unreachable`, `ttl_exceeded`,
//!   `unknown_host`), `replies` (u32, packets scheduled: copies for
//!   `duplicated`, 1 for `answered`/`unreachable`/`ttl_exceeded`, else 0), `delay_us` (u64 or null: delay of
//!   the first reply after `time_us`), `reordered` (bool, reorder extra delay
//!   applied), `interface` (string, the TUN it was read from), `ttl` (u8, as
//!   sent), `error` (`host_unreachable`, `net_unreachable`,
//!   `admin_prohibited`, `ttl_exceeded` or null), `router` (string or null:
//!   the router on the path that decided), `hop` (u32 or null: its hop
//!   number, 1 for the first router).
//! * `reply` — one per packet written to the TUN: `request` (u64, the
//!   request's `id`), `host`, `dst` (the request's destination), `icmp_id`,
//!   `icmp_seq`, `kind` (`"echo_reply"`|`"unreachable"`|`"time_exceeded"`),
//!   `copy` (u32, 0 for the first), `delay_us` (u64, intended delay),
//!   `due_us` (u64, `time_us + delay_us`), `sent_us` (u64, when the write to
//!   the TUN returned), `late_us` (i64, actual minus due write time measured
//!   on the monotonic clock: the simulator's own overhead), `from` (the
//!   packet's source address), `icmp_type`, `icmp_code` (u8), `error` (kind
//!   of ICMP error or null), `router` (name of the router that sent it, or
//!   null), `ttl` (u8, the packet's TTL / hop limit).
//! * `net` — one per step of the network timeline ([`crate::control`]):
//!   `action` (`routes_lost`, `routes_restored`, `link_down`, `link_up`,
//!   `carrier_off`, `carrier_on`, `route_change`), `source` (the scenario
//!   table, `route_loss #1`), `planned_t_us` (u64, µs since start, as
//!   scheduled), `begin_us` (u64, just before the first change), `time_us`
//!   (u64, once the kernel acknowledged the last), `t_us` (u64, `time_us`
//!   since start), `interface` (string or null), `removed`, `added` (arrays
//!   of routes in `ip route` syntax), `gateway_v4`, `gateway_v6` (default
//!   gateways in effect afterwards, or null), `error` (null, or what failed).
//! * `unsent` — a reply that was due while its interface was down: `request`,
//!   `host`, `dst`, `icmp_id`, `icmp_seq`, `kind`, `copy`, `due_us`,
//!   `time_us` (when it was dropped), `reason` (`link_down`).
//! * `end` — last line, written on clean shutdown: `time_us`, `requests`
//!   (u64), `replies_sent` (u64), `replies_unsent` (u64, still pending at
//!   shutdown), `ignored_packets` (u64, non-echo or malformed packets),
//!   `max_late_us` (i64), `replies_dropped` (u64, `unsent` events),
//!   `net_errors` (u64, failed network changes).
//!
//! The writer keeps a bounded queue (the producing threads block when it is
//! full, they never drop events) and a 64 KiB buffer, flushed when idle for
//! 100 ms and on exit. Use [`read_truth`] to parse a file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::packet::{Family, IcmpErrorKind};
use crate::profile::Fate;

/// A host as listed in the `start` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthHost {
    /// Host name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Profile summary.
    pub summary: String,
    /// The routers before it (`via`), first hop first, with the initial
    /// default gateway.
    #[serde(default)]
    pub path: Vec<String>,
}

/// `start` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartEvent {
    /// When the simulator started (µs since the epoch).
    pub time_us: u64,
    /// Scenario name.
    pub scenario: String,
    /// Scenario seed.
    pub seed: u64,
    /// TUN device name.
    pub tun: String,
    /// Simulated hosts.
    pub hosts: Vec<TruthHost>,
    /// The TUN devices and their addresses (`198.18.0.1/15`), first the
    /// `[network]` one.
    #[serde(default)]
    pub interfaces: Vec<TruthInterface>,
    /// Default IPv4 gateway installed at start (none: no default route).
    #[serde(default)]
    pub gateway_v4: Option<IpAddr>,
    /// Default IPv6 gateway installed at start.
    #[serde(default)]
    pub gateway_v6: Option<IpAddr>,
}

/// A TUN device as listed in the `start` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthInterface {
    /// Device name.
    pub name: String,
    /// Its addresses with their prefix length, e.g. `198.18.0.1/24`.
    pub addresses: Vec<String>,
}

/// `request` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// Request number.
    pub id: u64,
    /// Read time, µs since the epoch.
    pub time_us: u64,
    /// Read time, µs since the simulator started.
    pub t_us: u64,
    /// IP family.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Host name, None for an unknown address.
    pub host: Option<String>,
    /// ICMP identifier.
    pub icmp_id: u16,
    /// ICMP sequence.
    pub icmp_seq: u16,
    /// Payload bytes after the ICMP header.
    pub payload_len: u64,
    /// What happened.
    pub fate: Fate,
    /// Packets scheduled in answer.
    pub replies: u32,
    /// Delay of the first reply.
    pub delay_us: Option<u64>,
    /// Reorder extra delay applied.
    pub reordered: bool,
    /// The TUN device it was read from.
    #[serde(default)]
    pub interface: String,
    /// Its IPv4 TTL / IPv6 hop limit as the prober sent it.
    #[serde(default)]
    pub ttl: u8,
    /// The ICMP error it was answered with (or that the answering router's
    /// profile kept it from sending); null for echo replies and plain drops.
    #[serde(default)]
    pub error: Option<IcmpErrorKind>,
    /// The router on its path that decided its fate (sent that error or
    /// dropped it); null when the destination host decided.
    #[serde(default)]
    pub router: Option<String>,
    /// That router's hop number (1: the first router on the path).
    #[serde(default)]
    pub hop: Option<u32>,
}

/// Kind of packet sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// ICMP echo reply.
    EchoReply,
    /// ICMP destination unreachable (any code).
    Unreachable,
    /// ICMP time exceeded.
    TimeExceeded,
}

impl ReplyKind {
    /// Whether this is an ICMP error (the request failed) rather than an
    /// echo reply.
    pub fn is_error(self) -> bool {
        !matches!(self, ReplyKind::EchoReply)
    }
}

/// `reply` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEvent {
    /// The request's `id`.
    pub request: u64,
    /// Host name.
    pub host: Option<String>,
    /// The request's destination.
    pub dst: IpAddr,
    /// ICMP identifier.
    pub icmp_id: u16,
    /// ICMP sequence.
    pub icmp_seq: u16,
    /// Packet kind.
    pub kind: ReplyKind,
    /// Copy number, 0 for the first.
    pub copy: u32,
    /// Intended delay after the request's `time_us`.
    pub delay_us: u64,
    /// Due time, µs since the epoch.
    pub due_us: u64,
    /// Actual write time, µs since the epoch.
    pub sent_us: u64,
    /// Actual minus due (monotonic clock), µs.
    pub late_us: i64,
    /// Source address of the packet: the host for echo replies, the router
    /// for ICMP errors.
    pub from: IpAddr,
    /// ICMP type of the packet.
    pub icmp_type: u8,
    /// ICMP code of the packet.
    pub icmp_code: u8,
    /// Which ICMP error, for errors.
    #[serde(default)]
    pub error: Option<IcmpErrorKind>,
    /// Name of the router that sent it, for errors from a router on the
    /// path (null for echo replies and for `unreachable` hosts, whose
    /// errors come from `[network] router_v4` / `router_v6`).
    #[serde(default)]
    pub router: Option<String>,
    /// Its IPv4 TTL / IPv6 hop limit (64 minus the routers it crossed back).
    #[serde(default)]
    pub ttl: u8,
}

/// `end` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndEvent {
    /// Shutdown time.
    pub time_us: u64,
    /// Requests seen.
    pub requests: u64,
    /// Packets written to the TUN.
    pub replies_sent: u64,
    /// Packets still pending at shutdown.
    pub replies_unsent: u64,
    /// Packets read that were not valid echo requests.
    pub ignored_packets: u64,
    /// Largest `late_us` of any reply.
    pub max_late_us: i64,
    /// Replies not written because their interface was down (`unsent` events).
    #[serde(default)]
    pub replies_dropped: u64,
    /// Network timeline steps that failed (`net` events with an `error`).
    #[serde(default)]
    pub net_errors: u64,
    /// Packets the kernel dropped on their way to the simulator because a TUN's queue was
    /// full (the simulator read too slowly): they left (a capture saw them) and were
    /// never read.
    #[serde(default)]
    pub tun_tx_dropped: u64,
}

/// What a `net` event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetAction {
    /// A `[[route_loss]]` took routes away.
    RoutesLost,
    /// It put them back.
    RoutesRestored,
    /// A `[[link]]` (`mode = "down"`) took an interface down.
    LinkDown,
    /// It brought it back up (and the default route through it).
    LinkUp,
    /// A `[[link]]` (`mode = "carrier"`) turned the carrier off.
    CarrierOff,
    /// It turned it back on.
    CarrierOn,
    /// A `[[route_change]]` moved the default route.
    RouteChange,
}

/// `net` event: the simulator changed the namespace's routes or links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetEvent {
    /// What.
    pub action: NetAction,
    /// The scenario table, e.g. `route_loss #1`.
    pub source: String,
    /// When the scenario scheduled it, µs since the simulator started.
    pub planned_t_us: u64,
    /// Wall clock (µs since the epoch) just before the first change: a
    /// `sendto` that returned before this saw the old state.
    pub begin_us: u64,
    /// Wall clock once the kernel acknowledged the last change: a `sendto`
    /// called after this sees the new state.
    pub time_us: u64,
    /// `time_us` as µs since the simulator started (monotonic clock).
    pub t_us: u64,
    /// The interface, for link events.
    pub interface: Option<String>,
    /// Routes no longer in effect, `ip route` syntax
    /// (`default via 198.18.0.254 dev zzsim0`, `198.18.0.0/24 dev zzsim0`).
    pub removed: Vec<String>,
    /// Routes now in effect that were not (`unreachable default`, ...).
    pub added: Vec<String>,
    /// IPv4 default gateway in effect afterwards (none: no default route).
    pub gateway_v4: Option<IpAddr>,
    /// IPv6 default gateway in effect afterwards.
    pub gateway_v6: Option<IpAddr>,
    /// Set when the change failed (the simulator's own error).
    pub error: Option<String>,
}

/// Why a reply was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsentReason {
    /// Its interface was down (either `[[link]]` mode) when it was due.
    LinkDown,
}

/// `unsent` event: a reply that was due but not written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsentEvent {
    /// The request's `id`.
    pub request: u64,
    /// Host name.
    pub host: Option<String>,
    /// The request's destination.
    pub dst: IpAddr,
    /// ICMP identifier.
    pub icmp_id: u16,
    /// ICMP sequence.
    pub icmp_seq: u16,
    /// Packet kind.
    pub kind: ReplyKind,
    /// Copy number.
    pub copy: u32,
    /// Due time, µs since the epoch.
    pub due_us: u64,
    /// When it was dropped, µs since the epoch.
    pub time_us: u64,
    /// Why.
    pub reason: UnsentReason,
}

/// One line of the truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Simulator started.
    Start(StartEvent),
    /// Echo request seen.
    Request(RequestEvent),
    /// Packet sent.
    Reply(ReplyEvent),
    /// Routes or links changed.
    Net(NetEvent),
    /// Reply not sent.
    Unsent(UnsentEvent),
    /// Simulator stopped.
    End(EndEvent),
}

/// Error reading a truth file.
#[derive(Debug, Error)]
pub enum TruthError {
    /// I/O error.
    #[error("cannot read truth file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A line is not a valid event.
    #[error("truth file {path} line {line}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The error.
        source: serde_json::Error,
    },
}

/// A parsed truth file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// All events in file order.
    pub events: Vec<Event>,
}

impl Truth {
    /// The `start` event, if present.
    pub fn start(&self) -> Option<&StartEvent> {
        self.events.iter().find_map(|e| match e {
            Event::Start(s) => Some(s),
            _ => None,
        })
    }
    /// The `end` event, if present (absent when the simulator was killed).
    pub fn end(&self) -> Option<&EndEvent> {
        self.events.iter().find_map(|e| match e {
            Event::End(s) => Some(s),
            _ => None,
        })
    }
    /// All requests, in the order they were read.
    pub fn requests(&self) -> impl Iterator<Item = &RequestEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Request(r) => Some(r),
            _ => None,
        })
    }
    /// All replies, in the order they were written.
    pub fn replies(&self) -> impl Iterator<Item = &ReplyEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Reply(r) => Some(r),
            _ => None,
        })
    }
    /// Network changes, in the order they happened.
    pub fn net(&self) -> impl Iterator<Item = &NetEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Net(n) => Some(n),
            _ => None,
        })
    }
    /// Replies that were due but not written.
    pub fn unsent(&self) -> impl Iterator<Item = &UnsentEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Unsent(u) => Some(u),
            _ => None,
        })
    }
    /// Requests addressed to `dst`, in read order.
    pub fn requests_to(&self, dst: IpAddr) -> Vec<&RequestEvent> {
        self.requests().filter(|r| r.dst == dst).collect()
    }
    /// Replies to request `id`, in write order.
    pub fn replies_for(&self, id: u64) -> Vec<&ReplyEvent> {
        self.replies().filter(|r| r.request == id).collect()
    }
}

/// Parse truth events from a reader; `path` is only used in errors. Blank
/// lines are skipped; a truncated last line (simulator killed mid-write) is
/// an error.
pub fn parse_truth<R: BufRead>(r: R, path: &Path) -> Result<Truth, TruthError> {
    let mut events = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| TruthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str(&line).map_err(|source| TruthError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        events.push(ev);
    }
    Ok(Truth { events })
}

/// Read and parse a truth file.
pub fn read_truth(path: &Path) -> Result<Truth, TruthError> {
    let f = File::open(path).map_err(|source| TruthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_truth(BufReader::new(f), path)
}

/// Capacity of the queue between the simulator threads and the writer.
pub const QUEUE_EVENTS: usize = 16 * 1024;
const BUF_BYTES: usize = 64 * 1024;

/// Asynchronous JSON Lines writer (a thread owning the file).
#[derive(Debug)]
pub struct TruthWriter {
    tx: Option<SyncSender<Event>>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

/// Cheap handle for sending events to a [`TruthWriter`].
#[derive(Debug, Clone)]
pub struct TruthSender {
    tx: Option<SyncSender<Event>>,
}

impl TruthSender {
    /// A sender that discards everything (no `--truth`).
    pub fn disabled() -> Self {
        TruthSender { tx: None }
    }
    /// Whether events are recorded at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
    /// Queue an event (blocks while the queue is full).
    pub fn send(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            // The writer only goes away on an I/O error, reported by finish().
            let _ = tx.send(ev);
        }
    }
}

fn writer_loop(rx: Receiver<Event>, file: File) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(BUF_BYTES, file);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                serde_json::to_writer(&mut w, &ev).map_err(io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Err(RecvTimeoutError::Timeout) => w.flush()?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    w.flush()?;
    w.get_ref().sync_data()
}

impl TruthWriter {
    /// Create (truncate) `path` and start the writer thread.
    pub fn create(path: &Path) -> io::Result<TruthWriter> {
        let file = File::create(path)?;
        let (tx, rx) = sync_channel(QUEUE_EVENTS);
        let handle = std::thread::Builder::new()
            .name("netsim-truth".into())
            .spawn(move || writer_loop(rx, file))?;
        Ok(TruthWriter {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// A handle for producers.
    pub fn sender(&self) -> TruthSender {
        TruthSender {
            tx: self.tx.clone(),
        }
    }

    /// Close the queue, wait for the writer and flush the file. All senders
    /// must have been dropped first, or this waits for them.
    pub fn finish(mut self) -> io::Result<()> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| io::Error::other("truth writer thread panicked"))?,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_through_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let w = TruthWriter::create(&p).unwrap();
        let s = w.sender();
        s.send(Event::Start(StartEvent {
            time_us: 1,
            scenario: "x".into(),
            seed: 2,
            tun: "zzsim0".into(),
            hosts: vec![TruthHost {
                name: "gw".into(),
                addresses: vec!["198.18.0.10".parse().unwrap()],
                summary: "echo".into(),
                path: vec![],
            }],
            interfaces: vec![TruthInterface {
                name: "zzsim0".into(),
                addresses: vec!["198.18.0.1/15".into()],
            }],
            gateway_v4: None,
            gateway_v6: None,
        }));
        for i in 0..1000 {
            s.send(Event::Request(RequestEvent {
                id: i,
                time_us: 10 + i,
                t_us: i,
                family: Family::Ipv4,
                src: "198.18.0.1".parse().unwrap(),
                dst: "198.18.0.10".parse().unwrap(),
                host: Some("gw".into()),
                icmp_id: 5,
                icmp_seq: i as u16,
                payload_len: 56,
                fate: Fate::Answered,
                replies: 1,
                delay_us: Some(1500),
                reordered: false,
                interface: "zzsim0".into(),
                ttl: 64,
                error: None,
                router: None,
                hop: None,
            }));
            s.send(Event::Reply(ReplyEvent {
                request: i,
                host: Some("gw".into()),
                dst: "198.18.0.10".parse().unwrap(),
                icmp_id: 5,
                icmp_seq: i as u16,
                kind: ReplyKind::EchoReply,
                copy: 0,
                delay_us: 1500,
                due_us: 1510 + i,
                sent_us: 1512 + i,
                late_us: 2,
                from: "198.18.0.10".parse().unwrap(),
                icmp_type: 0,
                icmp_code: 0,
                error: None,
                router: None,
                ttl: 64,
            }));
        }
        drop(s);
        w.finish().unwrap();
        let t = read_truth(&p).unwrap();
        assert_eq!(t.start().unwrap().seed, 2);
        assert_eq!(t.requests().count(), 1000);
        assert_eq!(t.replies_for(999)[0].sent_us, 2511);
        assert!(t.end().is_none());
        // Field names are part of the documented schema.
        let text = std::fs::read_to_string(&p).unwrap();
        let line2: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(line2["event"], "request");
        assert_eq!(line2["fate"], "answered");
        assert_eq!(line2["family"], "ipv4");
        assert_eq!(line2["dst"], "198.18.0.10");
        let line3: serde_json::Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
        assert_eq!(line3["kind"], "echo_reply");
        assert_eq!(line3["late_us"], 2);
    }

    #[test]
    fn bad_line_reported_with_number() {
        let data = b"{\"event\":\"end\",\"time_us\":1,\"requests\":0,\"replies_sent\":0,\"replies_unsent\":0,\"ignored_packets\":0,\"max_late_us\":0}\n\n{\"event\":\"nope\"}\n";
        let e = parse_truth(&data[..], Path::new("t.jsonl")).unwrap_err();
        assert!(matches!(e, TruthError::Json { line: 3, .. }), "{e}");
        let ok = parse_truth(&data[..data.len() - 17], Path::new("t.jsonl")).unwrap();
        assert_eq!(ok.end().unwrap().requests, 0);
    }
}
