//! The running simulator: a reader thread and a scheduler thread around a TUN.
//!
//! * The **reader** waits (`ppoll`) on the TUN, timestamps each datagram as
//!   soon as it is read (CLOCK_MONOTONIC for scheduling, CLOCK_REALTIME for
//!   the truth), decides its fate ([`crate::profile`]), builds the replies
//!   and pushes them onto a binary heap ordered by due time.
//! * The **scheduler** sleeps with `ppoll` and a nanosecond timeout (timer
//!   slack reduced to 1 ns) until [`SPIN_NS`] before the earliest due reply,
//!   then spins on the monotonic clock for the remaining µs and writes the
//!   reply to the TUN. The reader wakes it through an eventfd when it queues
//!   a reply due earlier than the current head. It records the write time
//!   and lateness of every reply in the truth.
//!
//! Both threads stop when [`Simulator::stop`] is called; the truth file then
//! gets its `end` event and is flushed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use thiserror::Error;

use crate::control::{self, NetState, Step, StepKind};
use crate::netcfg::{self, NetConfigError};
use crate::packet::{self, Family, IcmpErrorKind};
use crate::profile::{Network, Probe};
use crate::rtnl::Rtnl;
use crate::scenario::{LinkMode, Scenario};
use crate::sys::{self, EventFd, Tun};
use crate::truth::{
    EndEvent, Event, NetAction, NetEvent, ReplyEvent, ReplyKind, RequestEvent, StartEvent,
    TruthHost, TruthInterface, TruthSender, TruthWriter, UnsentEvent, UnsentReason,
};

/// The scheduler stops sleeping this long before a reply is due and spins
/// for the rest, so that replies leave within a few µs of their due time.
pub const SPIN_NS: u64 = 60_000;

/// Error starting or stopping the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// The truth file could not be created or written.
    #[error("truth file {path}: {source}")]
    Truth {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The TUN device could not be created.
    #[error(
        "cannot create TUN device {name} (needs root / CAP_NET_ADMIN and /dev/net/tun): {source}"
    )]
    Tun {
        /// Device name.
        name: String,
        /// The error.
        source: io::Error,
    },
    /// Configuring the namespace failed.
    #[error(transparent)]
    NetConfig(#[from] NetConfigError),
    /// A thread could not be started, or a system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was attempted.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Counters reported when the simulator stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Echo requests seen.
    pub requests: u64,
    /// Packets read that were not valid echo requests.
    pub ignored_packets: u64,
    /// Replies written.
    pub replies_sent: u64,
    /// Replies still pending at shutdown.
    pub replies_unsent: u64,
    /// Failed TUN writes.
    pub write_errors: u64,
    /// Largest lateness of a reply, µs.
    pub max_late_us: i64,
    /// Replies not written because their interface was down.
    pub replies_dropped: u64,
    /// Network timeline steps that failed.
    pub net_errors: u64,
    /// Requests the kernel dropped before the simulator could read them: the TUNs'
    /// queues were full.
    pub tun_tx_dropped: u64,
}

struct Pending {
    due_mono_ns: u64,
    order: u64,
    /// Index of the TUN the request came from (and the reply goes to).
    tun: usize,
    pkt: Vec<u8>,
    meta: ReplyEvent,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due_mono_ns, self.order) == (o.due_mono_ns, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due_mono_ns, self.order).cmp(&(o.due_mono_ns, o.order))
    }
}

type Heap = Mutex<BinaryHeap<Reverse<Pending>>>;

/// Publishes the default gateway of `state` to the reader: the current one, and the one
/// of each interface its routes go through.
fn note_gateway(sh: &Shared, state: &NetState) {
    let host = state.gateway_host.map_or(0, |g| g + 1);
    sh.gateway.store(host, Ordering::Relaxed);
    for k in [state.gateway.v4.map(|g| g.1), state.gateway.v6.map(|g| g.1)]
        .into_iter()
        .flatten()
    {
        if let Some(t) = sh.tun_gateway.get(k) {
            t.store(host, Ordering::Relaxed);
        }
    }
}

fn lock(h: &Heap) -> MutexGuard<'_, BinaryHeap<Reverse<Pending>>> {
    // A poisoned heap still holds valid data.
    h.lock().unwrap_or_else(|e| e.into_inner())
}

struct Shared {
    /// The TUN devices: `[network]` first, then each `[[interface]]`.
    tuns: Vec<Tun>,
    /// Whether each device is up, as far as replies are concerned.
    link_up: Vec<AtomicBool>,
    heap: Heap,
    stop: AtomicBool,
    wake_reader: EventFd,
    wake_sched: EventFd,
    wake_control: EventFd,
    /// The current default gateway (host index + 1; 0: none), which picks
    /// among `via` alternatives.
    gateway: AtomicUsize,
    /// Per TUN device: the last default gateway routed through it (host index + 1; 0:
    /// none yet). A request takes the path of the interface it arrived on: one sent
    /// just before a route change but read after it went out through the old gateway.
    tun_gateway: Vec<AtomicUsize>,
    start_mono_ns: u64,
    truth: TruthSender,
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<ReaderStats>>,
    sched: Option<JoinHandle<SchedStats>>,
    control: Option<JoinHandle<u64>>,
    writer: Option<TruthWriter>,
    truth_path: Option<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tuns", &self.tuns)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct ReaderStats {
    requests: u64,
    ignored: u64,
    /// The TUNs' transmit drops when the reader stopped ([`tun_tx_dropped`]).
    tun_tx_dropped: u64,
}

#[derive(Debug, Default)]
struct SchedStats {
    sent: u64,
    dropped: u64,
    write_errors: u64,
    max_late_us: i64,
}

impl Simulator {
    /// Create the TUN, configure the current namespace and start serving.
    pub fn start(scenario: &Scenario, truth: Option<&Path>) -> Result<Simulator, SimError> {
        let writer = match truth {
            Some(p) => Some(TruthWriter::create(p).map_err(|source| SimError::Truth {
                path: p.display().to_string(),
                source,
            })?),
            None => None,
        };
        let sender = writer
            .as_ref()
            .map_or_else(TruthSender::disabled, |w| w.sender());
        let name = scenario.network.tun_name.clone();
        let ifaces = scenario.interfaces();
        let mut tuns = Vec::with_capacity(ifaces.len());
        for f in &ifaces {
            tuns.push(Tun::create(&f.name).map_err(|source| SimError::Tun {
                name: f.name.clone(),
                source,
            })?);
            netcfg::configure(f)?;
        }
        let sys_err = |what| move |source| SimError::Sys { what, source };
        let net_state = NetState::new(scenario).map_err(sys_err("looking up the TUN devices"))?;
        let mut nl = Rtnl::open().map_err(sys_err("opening a netlink socket"))?;
        net_state
            .install_defaults(&mut nl)
            .map_err(sys_err("installing the default routes"))?;
        let (gateway_v4, gateway_v6) = net_state.effective_gateway();
        let n_tuns = tuns.len();
        let shared = Arc::new(Shared {
            link_up: tuns.iter().map(|_| AtomicBool::new(true)).collect(),
            tuns,
            heap: Mutex::new(BinaryHeap::new()),
            stop: AtomicBool::new(false),
            wake_reader: EventFd::new().map_err(sys_err("eventfd"))?,
            wake_sched: EventFd::new().map_err(sys_err("eventfd"))?,
            wake_control: EventFd::new().map_err(sys_err("eventfd"))?,
            gateway: AtomicUsize::new(scenario.initial_gateway_host().map_or(0, |g| g + 1)),
            tun_gateway: (0..n_tuns).map(|_| AtomicUsize::new(0)).collect(),
            start_mono_ns: sys::mono_ns(),
            truth: sender,
        });
        note_gateway(&shared, &net_state);
        shared.truth.send(Event::Start(StartEvent {
            time_us: sys::realtime_us(),
            scenario: scenario.name().to_string(),
            seed: scenario.simulation.seed,
            tun: name.clone(),
            hosts: scenario
                .host
                .iter()
                .enumerate()
                .map(|(i, h)| TruthHost {
                    name: h.name.clone(),
                    addresses: h.addresses.clone(),
                    summary: h.summary(),
                    path: scenario
                        .path_of(i, scenario.initial_gateway_host())
                        .into_iter()
                        .map(|r| scenario.host[r].name.clone())
                        .collect(),
                })
                .collect(),
            interfaces: ifaces
                .iter()
                .map(|f| TruthInterface {
                    name: f.name.clone(),
                    addresses: f
                        .v4
                        .map(|(a, n)| format!("{a}/{n}"))
                        .into_iter()
                        .chain(f.v6.map(|(a, n)| format!("{a}/{n}")))
                        .collect(),
                })
                .collect(),
            gateway_v4,
            gateway_v6,
        }));
        let network = Network::new(scenario);
        let routers = (
            IpAddr::V4(scenario.network.router_v4),
            IpAddr::V6(scenario.network.router_v6),
        );
        let s2 = Arc::clone(&shared);
        let sched = std::thread::Builder::new()
            .name("netsim-sched".into())
            .spawn(move || scheduler(&s2))
            .map_err(sys_err("spawn scheduler"))?;
        let s3 = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("netsim-reader".into())
            .spawn(move || reader(&s3, network, routers))
            .map_err(sys_err("spawn reader"))?;
        let steps = control::plan(scenario);
        let control = if steps.is_empty() {
            None
        } else {
            let s4 = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("netsim-control".into())
                    .spawn(move || control_loop(&s4, steps, net_state, nl))
                    .map_err(sys_err("spawn control"))?,
            )
        };
        tracing::info!(tun = %name, scenario = scenario.name(), "simulator running");
        Ok(Simulator {
            shared,
            reader: Some(reader),
            sched: Some(sched),
            control,
            writer,
            truth_path: truth.map(|p| p.display().to_string()),
        })
    }

    /// Stop both threads, write the `end` event and flush the truth file.
    pub fn stop(mut self) -> Result<Summary, SimError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Summary, SimError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake_reader.notify();
        self.shared.wake_sched.notify();
        self.shared.wake_control.notify();
        let net_errors = self
            .control
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let r = self
            .reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let s = self
            .sched
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let unsent = lock(&self.shared.heap).len() as u64;
        let summary = Summary {
            requests: r.requests,
            ignored_packets: r.ignored,
            replies_sent: s.sent,
            replies_unsent: unsent,
            write_errors: s.write_errors,
            max_late_us: s.max_late_us,
            replies_dropped: s.dropped,
            net_errors,
            tun_tx_dropped: r.tun_tx_dropped,
        };
        self.shared.truth.send(Event::End(EndEvent {
            time_us: sys::realtime_us(),
            requests: summary.requests,
            replies_sent: summary.replies_sent,
            replies_unsent: summary.replies_unsent,
            ignored_packets: summary.ignored_packets,
            max_late_us: summary.max_late_us,
            replies_dropped: summary.replies_dropped,
            net_errors: summary.net_errors,
            tun_tx_dropped: summary.tun_tx_dropped,
        }));
        // Drop our sender so the writer sees the end of the queue.
        if let Some(sh) = Arc::get_mut(&mut self.shared) {
            sh.truth = TruthSender::disabled();
        }
        if let Some(w) = self.writer.take() {
            w.finish().map_err(|source| SimError::Truth {
                path: self.truth_path.clone().unwrap_or_default(),
                source,
            })?;
        }
        tracing::info!(?summary, "simulator stopped");
        Ok(summary)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if self.reader.is_some() || self.sched.is_some() {
            if let Err(e) = self.shutdown() {
                tracing::error!(error = %e, "simulator shutdown failed");
            }
        }
    }
}

fn reader(sh: &Shared, mut network: Network, routers: (IpAddr, IpAddr)) -> ReaderStats {
    let mut stats = ReaderStats::default();
    let mut buf = vec![0u8; 65_536];
    let mut ip_id: u16 = 0;
    let mut order: u64 = 0;
    let mut fds: Vec<_> = sh.tuns.iter().map(AsRawFd::as_raw_fd).collect();
    fds.push(sh.wake_reader.as_raw_fd());
    for t in &sh.tuns {
        if let Err(e) = t.set_nonblocking() {
            tracing::error!(tun = t.name(), error = %e, "cannot make the TUN non-blocking");
            return stats;
        }
    }
    while !sh.stop.load(Ordering::SeqCst) {
        let ready = match sys::ppoll_readable(&fds, None) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "ppoll on TUN failed");
                break;
            }
        };
        if ready.last() == Some(&true) {
            sh.wake_reader.drain();
        }
        for (tun_index, tun) in sh.tuns.iter().enumerate() {
            if !ready[tun_index] {
                continue;
            }
            loop {
                let n = match tun.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!(tun = tun.name(), error = %e, "TUN read failed");
                        return stats;
                    }
                };
                let mono = sys::mono_ns();
                let rt = sys::realtime_us();
                let pkt = &buf[..n];
                let req = match packet::parse_echo_request(pkt) {
                    Ok(r) => r,
                    Err(e) => {
                        stats.ignored += 1;
                        tracing::debug!(error = %e, len = n, "ignoring packet");
                        continue;
                    }
                };
                let id = stats.requests;
                stats.requests += 1;
                let t_us = mono.saturating_sub(sh.start_mono_ns) / 1000;
                let gateway = match sh.tun_gateway[tun_index].load(Ordering::Relaxed) {
                    0 => sh.gateway.load(Ordering::Relaxed),
                    g => g,
                }
                .checked_sub(1);
                let (host, d) = network.decide_probe(Probe {
                    dst: req.dst,
                    t_us,
                    ttl: req.ttl,
                    gateway,
                });
                let host = host.map(str::to_string);
                let v6 = req.family == Family::Ipv6;
                // Who answers, with what: the destination (echo reply), a router
                // on the path, or the network's router (an `unreachable` host).
                let (kind, from, (icmp_type, icmp_code)) = match d.error {
                    None => (ReplyKind::EchoReply, req.dst, (if v6 { 129 } else { 0 }, 0)),
                    Some(e) => {
                        let fallback = if v6 { routers.1 } else { routers.0 };
                        let from = d
                            .router
                            .and_then(|r| network.address_like(r, req.dst))
                            .unwrap_or(fallback);
                        let kind = if e == IcmpErrorKind::TtlExceeded {
                            ReplyKind::TimeExceeded
                        } else {
                            ReplyKind::Unreachable
                        };
                        (kind, from, e.type_code(v6))
                    }
                };
                let hops = u8::try_from(d.hops).unwrap_or(u8::MAX);
                let reply_ttl = packet::EMIT_TTL.saturating_sub(hops).max(1);
                let router_name = d.router.map(|r| network.name(r).to_string());
                let mut pending = Vec::with_capacity(d.delays_us.len());
                for (copy, &delay_us) in d.delays_us.iter().enumerate() {
                    ip_id = ip_id.wrapping_add(1);
                    let built = match d.error {
                        None => packet::echo_reply_ttl(pkt, ip_id, reply_ttl),
                        Some(e) => packet::icmp_error(
                            pkt,
                            from,
                            e,
                            ip_id,
                            reply_ttl,
                            d.router.map(|_| req.ttl.saturating_sub(hops)),
                        ),
                    };
                    let Ok(reply) = built else { continue };
                    order += 1;
                    pending.push(Pending {
                        due_mono_ns: mono.saturating_add(delay_us.saturating_mul(1000)),
                        order,
                        tun: tun_index,
                        pkt: reply,
                        meta: ReplyEvent {
                            request: id,
                            host: host.clone(),
                            dst: req.dst,
                            icmp_id: req.ident,
                            icmp_seq: req.seq,
                            kind,
                            copy: copy as u32,
                            delay_us,
                            due_us: rt.saturating_add(delay_us),
                            sent_us: 0,
                            late_us: 0,
                            from,
                            icmp_type,
                            icmp_code,
                            error: d.error,
                            router: router_name.clone(),
                            ttl: reply_ttl,
                        },
                    });
                }
                tracing::trace!(dst = %req.dst, seq = req.seq, fate = ?d.fate, "request");
                sh.truth.send(Event::Request(RequestEvent {
                    id,
                    time_us: rt,
                    t_us,
                    family: req.family,
                    src: req.src,
                    dst: req.dst,
                    host,
                    icmp_id: req.ident,
                    icmp_seq: req.seq,
                    payload_len: req.payload_len as u64,
                    fate: d.fate,
                    replies: pending.len() as u32,
                    delay_us: d.delays_us.first().copied(),
                    reordered: d.reordered,
                    interface: tun.name().to_string(),
                    ttl: req.ttl,
                    error: d.error,
                    router: router_name,
                    hop: d.router.map(|_| d.hops + 1),
                }));
                if !pending.is_empty() {
                    let mut heap = lock(&sh.heap);
                    let head = heap.peek().map(|p| p.0.due_mono_ns);
                    let earliest = pending
                        .iter()
                        .map(|p| p.due_mono_ns)
                        .min()
                        .unwrap_or(u64::MAX);
                    for p in pending {
                        heap.push(Reverse(p));
                    }
                    drop(heap);
                    if head.is_none_or(|h| earliest < h) {
                        sh.wake_sched.notify();
                    }
                }
            }
        }
    }
    let names: Vec<&str> = sh.tuns.iter().map(|t| t.name()).collect();
    stats.tun_tx_dropped = tun_tx_dropped(&names);
    stats
}

/// Packets the kernel dropped on their way to the simulator, summed over the TUNs
/// `names`: a TUN whose queue is full (the reader fell behind, e.g. starved on a loaded
/// machine) drops what is sent to it, after a capture saw it leave. Read from
/// `/proc/thread-self/net/dev` (the calling thread's namespace, the TUNs'), its transmit
/// `drop` column; 0 when it cannot be read.
fn tun_tx_dropped(names: &[&str]) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/net/dev") else {
        return 0;
    };
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| names.contains(&name.trim()))
        // Receive: bytes packets errs drop fifo frame compressed multicast; transmit:
        // bytes packets errs drop ...
        .filter_map(|(_, cols)| cols.split_whitespace().nth(11)?.parse::<u64>().ok())
        .sum()
}

fn scheduler(sh: &Shared) -> SchedStats {
    let mut stats = SchedStats::default();
    if let Err(e) = sys::set_timer_slack_ns(1) {
        tracing::warn!(error = %e, "cannot reduce timer slack; replies may be late");
    }
    let efd = [sh.wake_sched.as_raw_fd()];
    let mut due_now: Vec<Pending> = Vec::new();
    while !sh.stop.load(Ordering::SeqCst) {
        let head = lock(&sh.heap).peek().map(|p| p.0.due_mono_ns);
        let now = sys::mono_ns();
        let wait = match head {
            None => Some(None),
            Some(due) if due > now + SPIN_NS => Some(Some(due - now - SPIN_NS)),
            Some(_) => None,
        };
        if let Some(timeout) = wait {
            match sys::ppoll_readable(&efd, timeout) {
                Ok(r) if r[0] => sh.wake_sched.drain(),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "scheduler ppoll failed");
                    break;
                }
            }
            continue;
        }
        // Within SPIN_NS of the head: spin until it is due, then send all due.
        let due = head.unwrap_or(now);
        while sys::mono_ns() < due {
            if sh.stop.load(Ordering::Relaxed) {
                return stats;
            }
            std::hint::spin_loop();
        }
        let now = sys::mono_ns();
        {
            let mut heap = lock(&sh.heap);
            while heap.peek().is_some_and(|p| p.0.due_mono_ns <= now) {
                if let Some(Reverse(p)) = heap.pop() {
                    due_now.push(p);
                }
            }
        }
        for mut p in due_now.drain(..) {
            if !sh.link_up[p.tun].load(Ordering::SeqCst) {
                drop_unsent(sh, &p, &mut stats);
                continue;
            }
            match sh.tuns[p.tun].write(&p.pkt) {
                Ok(_) => {
                    let sent_mono = sys::mono_ns();
                    p.meta.sent_us = sys::realtime_us();
                    p.meta.late_us = (sent_mono as i64 - p.due_mono_ns as i64) / 1000;
                    stats.sent += 1;
                    stats.max_late_us = stats.max_late_us.max(p.meta.late_us);
                    sh.truth.send(Event::Reply(p.meta));
                }
                // The link went down between the check and the write.
                Err(e)
                    if e.raw_os_error() == Some(libc::EIO)
                        && !sh.link_up[p.tun].load(Ordering::SeqCst) =>
                {
                    drop_unsent(sh, &p, &mut stats);
                }
                Err(e) => {
                    stats.write_errors += 1;
                    tracing::warn!(error = %e, "TUN write failed");
                }
            }
        }
    }
    stats
}

/// Records a reply that was due on a link that is down.
fn drop_unsent(sh: &Shared, p: &Pending, stats: &mut SchedStats) {
    stats.dropped += 1;
    sh.truth.send(Event::Unsent(UnsentEvent {
        request: p.meta.request,
        host: p.meta.host.clone(),
        dst: p.meta.dst,
        icmp_id: p.meta.icmp_id,
        icmp_seq: p.meta.icmp_seq,
        kind: p.meta.kind,
        copy: p.meta.copy,
        due_us: p.meta.due_us,
        time_us: sys::realtime_us(),
        reason: UnsentReason::LinkDown,
    }));
}

/// Runs the network timeline (see [`crate::control`]); returns the number of
/// steps that failed.
fn control_loop(sh: &Shared, steps: Vec<Step>, mut state: NetState, mut nl: Rtnl) -> u64 {
    let mut errors = 0;
    if let Err(e) = sys::set_timer_slack_ns(1) {
        tracing::warn!(error = %e, "cannot reduce timer slack; network changes may be late");
    }
    let efd = [sh.wake_control.as_raw_fd()];
    for step in steps {
        let due = sh
            .start_mono_ns
            .saturating_add(step.at_us.saturating_mul(1000));
        loop {
            if sh.stop.load(Ordering::SeqCst) {
                return errors;
            }
            let now = sys::mono_ns();
            if now >= due {
                break;
            }
            if let Err(e) = sys::ppoll_readable(&efd, Some(due - now)) {
                tracing::error!(error = %e, "control ppoll failed");
                return errors + 1;
            }
        }
        let begin_us = sys::realtime_us();
        let set_flag = |k: usize, up: bool| {
            if let Some(f) = sh.link_up.get(k) {
                f.store(up, Ordering::SeqCst);
            }
        };
        let result = state.apply(&step.kind, &mut nl, &sh.tuns, &set_flag);
        let time_us = sys::realtime_us();
        let t_us = sys::mono_ns().saturating_sub(sh.start_mono_ns) / 1000;
        let (change, error) = match result {
            Ok(c) => (c, None),
            Err((c, e)) => {
                errors += 1;
                tracing::error!(source = %step.source, error = %e, "network change failed");
                (c, Some(e.to_string()))
            }
        };
        let action = match &step.kind {
            StepKind::RoutesLost(_) => NetAction::RoutesLost,
            StepKind::RoutesRestored(_) => NetAction::RoutesRestored,
            StepKind::LinkDown(_, LinkMode::Down) => NetAction::LinkDown,
            StepKind::LinkUp(_, LinkMode::Down) => NetAction::LinkUp,
            StepKind::LinkDown(_, LinkMode::Carrier) => NetAction::CarrierOff,
            StepKind::LinkUp(_, LinkMode::Carrier) => NetAction::CarrierOn,
            StepKind::RouteChange(..) => NetAction::RouteChange,
        };
        let (gateway_v4, gateway_v6) = state.effective_gateway();
        note_gateway(sh, &state);
        tracing::info!(source = %step.source, ?action, "network changed");
        sh.truth.send(Event::Net(NetEvent {
            action,
            source: step.source,
            planned_t_us: step.at_us,
            begin_us,
            time_us,
            t_us,
            interface: change.interface,
            removed: change.removed.iter().map(ToString::to_string).collect(),
            added: change.added.iter().map(ToString::to_string).collect(),
            gateway_v4,
            gateway_v6,
            error,
        }));
    }
    errors
}
