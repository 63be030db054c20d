//! End-to-end accuracy harness: runs the real daemon binary (and optionally `fping`) in a
//! fresh network namespace served by `zzping-netsim`, then holds the daemon's frame files
//! against the simulator's ground truth.
//!
//! # Scenario files
//! Every `tests/scenarios/*.toml` is a netsim scenario. Settings for this suite are TOML
//! lines prefixed with `# e2e:` (comments to netsim), e.g.
//!
//! ```text
//! # e2e: rate = 200
//! # e2e: timeout_ms = 150
//! # e2e: expect_counts = ["late", "duplicates"]
//! ```
//!
//! See [`Spec`] for the keys. Scenario files shared with other suites can instead get the
//! same text from the test's table (`e2e_accuracy.rs`).
//!
//! # Method (how the daemon's frames are compared with the truth)
//! * **Sends → frames.** The daemon stamps each request just before `sendto` and puts it
//!   in the frame of that wall-clock reading; the simulator's `time_us` is read a few µs
//!   later, so near a period boundary a naive `period_start(time_us)` can name the next
//!   frame. Instead, per target, the truth's requests (in the order the simulator read
//!   them, which is the order the daemon sent them) are cut into consecutive runs of the
//!   daemon's per-frame `sent` counts. The cut is then *validated*: every request of a
//!   frame must have `start <= time_us < end + SEND_EPS_US`; requests read after their
//!   frame's end (sent just before the boundary) are counted and reported as
//!   `boundary_shifted` (the only way the naive mapping differs).
//!   Requests that never reached the simulator are taken out of the cut first: a
//!   frame's send errors (its error kinds of this machine: no route, network down...),
//!   allowed only inside the truth's `net` windows of routes or links taken away; and,
//!   in frames overlapping a `carrier_off` window or a `link_down` step, the requests
//!   whose kernel transmit stamp is not in the capture (the kernel dropped them: they
//!   must be lost; see [`silent_drop_windows`]); and the requests the capture saw leave
//!   that the simulator never read (dropped on a full TUN queue: lost, and no more than
//!   the truth's `end.tun_tx_dropped`).
//! * **Outcomes** (received / lost / errors) go to the request's frame (frame.rs rules),
//!   so with the cut they are compared **exactly** per frame. A first answer that is an
//!   ICMP error (any `ReplyKind::is_error`) is an error of the kind its ICMP type and
//!   code say (RFC 792 / 4443); each frame's errors by kind must equal the truth's, and
//!   the router it names must be one that sent an error in it (none without one). A first echo reply whose
//!   holding time is within `TIMEOUT_AMB_US` of the timeout could fall on either side
//!   and is counted as ambiguous (none are expected: scenarios keep delays away from it).
//! * **Extras** (duplicates, late replies) go to the request's frame while it is open,
//!   else to the oldest open frame. The harness models when each frame is finalized
//!   (its period ended and every request resolved: by a reply — exact, replies are
//!   processed in the order the simulator wrote them — or by the timeout sweep, up to
//!   the loop's measured lateness late, [`loop_lateness_us`]; an extra received up to
//!   [`handover_lateness_us`] before a rotation or sweep may be handed to the main loop
//!   after it) and gives each extra a range of
//!   possible frames; extras outside every uncertainty window have exactly one. Per-frame counts must then be exactly
//!   achievable by one assignment (checked by an earliest-deadline greedy match), and
//!   the number of extras that had more than one candidate is reported. A copy that
//!   comes between a request's deadline and its sweep may be counted as a duplicate or
//!   as late: optional in each count, it must be in their sum, checked the same way.
//! * **Prometheus.** The daemon runs with its exporter on; once it logs that its counts
//!   are final, `/metrics` is scraped once and every host's counters (requests, replies,
//!   lost, failed, duplicates, late, errors by kind) must equal the sums of its frames,
//!   which the comparison above holds to the truth.
//! * **RTTs.** The reference is a packet capture on every TUN of the scenario
//!   ([`capture`]; a route change moves requests to another one), whose taps
//!   sit before the driver's transmit stamp and after the receive stamp: the wire RTT
//!   (reply tap − request tap) is an upper bound of a kernel-timed RTT. The simulator
//!   read the request after the daemon's transmit stamp, waited at least its intended
//!   delay, then wrote the reply, which the kernel stamped inside that write: the
//!   intended delay is a lower bound. Per frame, the daemon's decoded RTTs are paired in
//!   sorted order with each end (if every RTT lies in its own interval, the sorted ones
//!   lie in the sorted intervals), and every one must lie in `[delay, wire]` widened
//!   only by the quantizer's half bucket and 1 µs of rounding ([`rtt_interval_check`]):
//!   no outliers are allowed. RTTs the daemon could not time with kernel stamps at both
//!   ends sit in frames flagged `FLAG_USER_STAMP` and are checked as upper bounds (lower
//!   end only). Reported: the error against the wire RTT and against the simulator's
//!   holding time (`reply.sent_us - request.time_us`).

#![allow(dead_code)]

pub use zzping_netsim::capture;
pub mod loopback;
use crate::common::prometheus;

/// The daemon's exporter in the test's namespace: scraped once its counts are final.
const METRICS_ADDR: &str = "127.0.0.1:9464";

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use zzping_lib::frame::{ErrorKind, ErrorKinds, FLAG_USER_STAMP, period_start};
use zzping_lib::store::Host;
use zzping_netsim::profile::Fate;
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_netsim::truth::{NetAction, ReplyKind, RequestEvent, Truth, read_truth};
use zzping_testkit::process::{LogLines, read_to_end, signal, wait_bounded};

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_zzping-daemon");
/// Length of the daemon's echo payload (tells its requests from fping's).
pub const DAEMON_PAYLOAD: u64 = 16;
/// Largest lag allowed between the daemon's send stamp and the simulator's read.
pub const SEND_EPS_US: u64 = 5_000;
/// Holding times this close to the timeout are ambiguous (received or late).
pub const TIMEOUT_AMB_US: u64 = 2_000;
// The daemon's timing contract, restated from its documentation (not read from its
// constants, so that changing one of them fails `documented_timing_matches_the_daemon`
// instead of silently moving these tolerances with it).
/// When the receive thread batches: "once they come faster than one per 20 ms"
/// (docs/architecture.md, zzping-daemon/README.md).
pub const DOC_BATCH_US: u64 = 20_000;
/// The receive thread's longest window: "it wakes once per window of up to 50 ms"
/// (docs/architecture.md, zzping-daemon/README.md).
pub const DOC_WINDOW_US: u64 = 50_000;
/// The engine's grace after a timeout, which sizes its tables and a clean stop's wait
/// but decides no outcome: "the longest receive window plus 5 ms"
/// (docs/architecture.md).
pub const DOC_GRACE_US: u64 = DOC_WINDOW_US + 5_000;
/// How late an expiry may be processed: "the expiry of the oldest request still in
/// flight (served up to 250 ms late while sends are scheduled ...)"
/// (zzping-daemon/README.md).
pub const DOC_EXPIRY_SLACK_US: u64 = 250_000;
/// How late a period boundary may be served: "period boundaries (served up to 20 ms late
/// when a send comes sooner)" (zzping-daemon/README.md).
pub const DOC_BOUNDARY_SLACK_US: u64 = 20_000;

/// How long after its deadline a request without a reply is swept: the loop wakes up to
/// the expiry slack late, and declares it lost once the receive frontier has passed the
/// deadline, which a batching receive thread proves at the end of its window ("a request
/// is declared lost as soon as the receive thread has handed over everything the kernel
/// queued before its deadline", docs/architecture.md), plus a wake-up latency margin.
pub const SWEEP_SLACK_US: u64 = DOC_EXPIRY_SLACK_US + DOC_WINDOW_US + 3_000;
/// Margin after a period boundary for the rotating loop iteration to run (the engine may
/// wait up to the boundary slack for a wakeup it has anyway).
pub const ROTATE_AMB_US: u64 = DOC_BOUNDARY_SLACK_US + 3_000;
/// How long the daemon's receive thread may take to hand a reply over to the main loop
/// on a loaded machine (one batching window, plus scheduling): an extra the kernel
/// received shortly before a rotation or sweep may still be processed after it.
pub const HANDOVER_AMB_US: u64 = DOC_WINDOW_US + 20_000;

/// Suite settings of one scenario (`# e2e:` lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Pings per second per target.
    pub rate: f64,
    /// Seconds of pinging.
    pub duration_s: f64,
    /// Daemon reply timeout.
    pub timeout_ms: u32,
    /// Daemon frame period.
    pub period_ms: u32,
    /// Addresses to ping; default: every address of every host.
    pub targets: Option<Vec<IpAddr>>,
    /// Also run `fping -C N -p 10 -t 500 -q ADDR` concurrently and compare medians.
    pub fping: Option<IpAddr>,
    /// Fates that must occur in the truth (proves the scenario exercised them).
    pub expect_fates: Vec<Fate>,
    /// Daemon totals that must be non-zero: received, lost, errors, duplicates, late.
    pub expect_counts: Vec<String>,
    /// Pin the daemon's main thread to this CPU and its receive thread to another (the
    /// stress test stalls that CPU on purpose).
    pub pin_main_cpu: Option<usize>,
    /// Freeze the daemon's receive thread `[ms, every_ms]` ([`ThreadFreezer`]).
    pub freeze_receive_ms: Option<[u64; 2]>,
    /// Stop the whole daemon (`SIGSTOP`) `[ms, every_ms]` ([`ThreadFreezer::process`]).
    pub freeze_main_ms: Option<[u64; 2]>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            rate: 100.0,
            duration_s: 12.0,
            timeout_ms: 1000,
            period_ms: 100,
            targets: None,
            fping: None,
            expect_fates: Vec::new(),
            expect_counts: Vec::new(),
            pin_main_cpu: None,
            freeze_receive_ms: None,
            freeze_main_ms: None,
        }
    }
}

/// The workspace's `tests/scenarios` directory.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// Reads a scenario and its `# e2e:` settings (plus `extra` settings text).
pub fn load(file: &str, extra: &str) -> (Scenario, Spec, PathBuf) {
    let path = scenarios_dir().join(file);
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut spec_text: String = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("# e2e:"))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    spec_text.push_str(extra);
    let spec: Spec = toml::from_str(&spec_text)
        .unwrap_or_else(|e| panic!("{}: bad `# e2e:` settings: {e}", path.display()));
    (scenario, spec, path)
}

/// One frame as read back from the daemon's files.
#[derive(Debug, Clone, Default)]
pub struct Fr {
    pub start_us: u64,
    pub period_us: u32,
    pub sent: u32,
    pub received: u32,
    pub lost: u32,
    pub errors: u32,
    pub duplicates: u32,
    pub late: u32,
    pub flags: u8,
    /// Errors by kind.
    pub error_kinds: ErrorKinds,
    /// The router that sent the frame's ICMP errors.
    pub router: Option<IpAddr>,
    /// Decoded RTTs, µs, ascending.
    pub rtts_us: Vec<u32>,
}

impl Fr {
    /// Errors of this machine itself (send failures): their requests never reach the
    /// simulator.
    pub fn local_errors(&self) -> u32 {
        self.error_kinds
            .iter()
            .filter(|(k, _)| k.is_local())
            .map(|(_, n)| n)
            .sum()
    }
}

/// The kind a prober must record for an ICMP error of `icmp_type`/`icmp_code` answering
/// a request to `dst`, from the ICMP definitions (RFC 792, RFC 4443), not the daemon's
/// table.
pub fn icmp_error_kind(dst: IpAddr, icmp_type: u8, icmp_code: u8) -> ErrorKind {
    use ErrorKind::*;
    match (dst.is_ipv6(), icmp_type, icmp_code) {
        (false, 3, 0) | (true, 1, 0) => NetUnreachable,
        (false, 3, 1) | (true, 1, 3) => HostUnreachable,
        (false, 3, 3) | (true, 1, 4) => PortUnreachable,
        (false, 3, 13) | (true, 1, 1) => Prohibited,
        (false, 11, _) | (true, 3, _) => TtlExceeded,
        _ => IcmpOther,
    }
}

/// Frames of one host directory, via `zzping_lib::store::Host`.
pub fn read_frames(dir: &Path) -> Vec<Fr> {
    let hd = Host::open(dir).unwrap();
    let mut it = hd.frames(0, u64::MAX);
    let mut out = Vec::new();
    while let Some(f) = it.next_frame().unwrap() {
        let f = f.clone();
        let q = it.quantizer().expect("quantizer").clone();
        out.push(Fr {
            start_us: f.start_us,
            period_us: f.period_us,
            sent: f.sent,
            received: f.received(),
            lost: f.lost,
            errors: f.errors,
            duplicates: f.duplicates,
            late: f.late,
            flags: f.flags,
            error_kinds: f.error_kinds,
            router: f.router,
            rtts_us: f.codes.iter().map(|&c| q.decode_saturating(c)).collect(),
        });
    }
    assert!(
        it.issues().is_empty(),
        "{}: {:?}",
        dir.display(),
        it.issues()
    );
    out.sort_by_key(|f| f.start_us);
    out
}

/// What one run produced.
pub struct Run {
    pub name: String,
    pub spec: Spec,
    pub targets: Vec<IpAddr>,
    pub truth: Truth,
    pub frames: BTreeMap<IpAddr, Vec<Fr>>,
    pub daemon_stderr: String,
    /// `/metrics` scraped once every frame was final (`None`: the daemon never said so).
    pub metrics: Option<String>,
    pub fping_stderr: String,
    pub fping_count: usize,
    pub wall: Duration,
    /// Kernel-timestamped capture on the TUN.
    pub wire: capture::Wire,
    _dir: tempfile::TempDir,
}

fn link_names() -> HashSet<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output();
    let Ok(out) = out else {
        return HashSet::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Runs the scenario: simulator in a fresh namespace owned by a dedicated thread, the
/// daemon (and fping) inside it, bounded in time. `None` when skipped for missing
/// privileges (never in CI); any other failure panics.
pub fn run(test: &str, file: &str, extra: &str) -> Option<Run> {
    let (scenario, spec, _path) = load(file, extra);
    if let Err(why) = zzping_testkit::privileges::tun() {
        zzping_testkit::skip(&why);
        return None;
    }
    let fping_bin = spec.fping.map(|_| zzping_testkit::tool("fping", "fping"));
    let targets: Vec<IpAddr> = spec.targets.clone().unwrap_or_else(|| {
        scenario
            .host
            .iter()
            .flat_map(|h| h.addresses.iter().copied())
            .collect()
    });
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.jsonl");
    let data = dir.path().join("data");
    let links_before = link_names();
    let t0 = Instant::now();

    let mut args: Vec<String> = vec![
        "--config".into(),
        "none".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--rate".into(),
        spec.rate.to_string(),
        "--period-ms".into(),
        spec.period_ms.to_string(),
        "--timeout-ms".into(),
        spec.timeout_ms.to_string(),
        "--live".into(),
        "off".into(),
        "--duration".into(),
        spec.duration_s.to_string(),
        "--flush-interval-s".into(),
        "1".into(),
        "--metrics".into(),
        METRICS_ADDR.into(),
    ];
    for t in &targets {
        args.push("--target".into());
        args.push(t.to_string());
    }
    let fping_count = ((spec.duration_s - 3.0).max(1.0) * 100.0) as usize;
    let fping = spec.fping;
    let pin = spec.pin_main_cpu;
    let freeze = spec.freeze_receive_ms;
    let freeze_main = spec.freeze_main_ms;
    let limit = Duration::from_secs_f64(spec.duration_s + f64::from(spec.timeout_ms) / 1e3 + 30.0);
    // The exporter stays up with the final counts until the scrape below ends it.
    args.extend(["--metrics-linger-s".into(), limit.as_secs().to_string()]);
    let tp = truth_path.clone();
    let handle = std::thread::Builder::new()
        .name("e2e-netns".into())
        .spawn(move || {
            zzping_testkit::netns::enter();
            let ns = zzping_testkit::netns::of("thread-self").unwrap_or_default();
            if let Some(cpu) = pin {
                // The simulator's threads (created below) share the daemon's main CPU, so
                // a stall of the receive thread's CPU does not stall them too.
                pin_this_thread(cpu);
            }
            let sim = Simulator::start(&scenario, Some(&tp)).expect("start the simulator");
            // One capture per TUN (a route change moves requests to another one).
            let caps: Vec<capture::Capture> = std::iter::once(&scenario.network.tun_name)
                .chain(scenario.interface.iter().map(|i| &i.name))
                .map(|name| capture::Capture::start(name).expect("capture on a TUN"))
                .collect();
            let mut fp = fping.zip(fping_bin).map(|(addr, fping_bin)| {
                Command::new(fping_bin)
                    .args([
                        "-C",
                        &fping_count.to_string(),
                        "-p",
                        "10",
                        "-t",
                        "500",
                        "-q",
                    ])
                    .arg(addr.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn fping")
            });
            let mut daemon = Command::new(daemon_bin())
                .args(&args)
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn daemon");
            if let Some(cpu) = pin {
                pin_daemon_threads(daemon.id(), cpu);
            }
            let ms = Duration::from_millis;
            let freezers: Vec<ThreadFreezer> = [
                freeze.and_then(|[t, every]| {
                    let tid = find_thread(daemon.id(), "zzping-recv")?;
                    Some(ThreadFreezer::start(tid, ms(t), ms(every)))
                }),
                freeze_main.map(|[t, every]| ThreadFreezer::process(daemon.id(), ms(t), ms(every))),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mut log = LogLines::follow(daemon.stderr.take().expect("piped stderr"));
            // Pinging stopped and every frame final: one scrape, then a signal ends the
            // exporter's linger (a daemon that never gets there is stopped the same way
            // after the bound, and the check says the scrape is missing).
            let metrics = log.wait_until("counts final", limit).then(|| {
                let addr = METRICS_ADDR.parse().unwrap();
                match prometheus::get(addr, "/metrics") {
                    Ok((200, body)) => body,
                    other => panic!("{METRICS_ADDR}/metrics: {other:?}"),
                }
            });
            if daemon.try_wait().expect("try_wait").is_none() {
                signal(&daemon, libc::SIGTERM);
            }
            let status = wait_bounded(&mut daemon, Duration::from_secs(30), "daemon");
            for f in freezers {
                println!("  a daemon thread was frozen {} times", f.finish());
            }
            let daemon_stderr = log.finish(Duration::from_secs(30));
            let fping_stderr = match fp.as_mut() {
                Some(c) => {
                    let err = c.stderr.take();
                    let r = read_to_end(err);
                    wait_bounded(c, limit, "fping");
                    r.join().unwrap()
                }
                None => String::new(),
            };
            let mut wire = capture::Wire::default();
            for cap in caps {
                let w = cap.finish().expect("capture on a TUN");
                wire.requests.extend(w.requests);
                wire.requests_in.extend(w.requests_in);
                wire.replies_out.extend(w.replies_out);
                wire.replies.extend(w.replies);
                wire.drops += w.drops;
                wire.link_downs += w.link_downs;
            }
            let summary = sim.stop().expect("stop the simulator");
            (
                ns,
                status,
                daemon_stderr,
                metrics,
                fping_stderr,
                summary,
                wire,
            )
        })
        .unwrap();
    let (ns, status, daemon_stderr, metrics, fping_stderr, summary, wire) = handle
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let wall = t0.elapsed();
    assert!(
        status.code().is_some(),
        "{test}: daemon killed: {status}:\n{daemon_stderr}"
    );
    // Cleanup: the namespace died with its thread and children; no link leaked here.
    assert!(!ns.is_empty());
    // A joined thread is reported done when the kernel clears its tid, a moment before
    // its task leaves /proc: allow a bounded moment for that, nothing more.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = zzping_testkit::netns::tasks_in(&ns);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        left = zzping_testkit::netns::tasks_in(&ns);
    }
    assert!(left.is_empty(), "{test}: still in {ns}: {left:?}");
    let links_after = link_names();
    let new_links: Vec<_> = links_after.difference(&links_before).collect();
    let ours: Vec<_> = new_links.iter().filter(|n| n.starts_with("zz")).collect();
    assert!(
        ours.is_empty(),
        "{test}: links left in the host namespace: {ours:?}"
    );
    if !new_links.is_empty() {
        eprintln!("{test}: note: new links (not ours) appeared meanwhile: {new_links:?}");
    }
    assert_eq!(summary.write_errors, 0, "{test}: simulator write errors");

    let truth = read_truth(&truth_path).unwrap();
    assert!(truth.end().is_some(), "{test}: truth has no end event");
    let mut frames = BTreeMap::new();
    for t in &targets {
        let d = data.join(zzping_lib::store::layout::host_dir_name(&t.to_string()));
        frames.insert(*t, read_frames(&d));
    }
    // A finite run exits 1 when some target never answered (its frames hold no reply,
    // checked against the truth below), 0 when every one did.
    let silent: Vec<_> = frames
        .iter()
        .filter(|(_, f)| f.iter().all(|f: &Fr| f.received == 0))
        .map(|(t, _)| *t)
        .collect();
    let want = if silent.is_empty() { 0 } else { 1 };
    assert_eq!(
        status.code(),
        Some(want),
        "{test}: exit status with {silent:?} never answering:\n{daemon_stderr}"
    );
    Some(Run {
        name: test.to_string(),
        spec,
        targets,
        truth,
        frames,
        daemon_stderr,
        metrics,
        fping_stderr,
        fping_count,
        wall,
        wire,
        _dir: dir,
    })
}

/// The thread of process `pid` named `comm` (e.g. the daemon's `zzping-recv`), once it
/// exists (bounded wait: the daemon starts it right after opening its sockets and offers
/// no signal of that). `None` if the process exited first.
pub fn find_thread(pid: u32, comm: &str) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let found = tasks.flatten().find_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let c = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (c.trim() == comm).then_some(tid)
        });
        if found.is_some() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid}: no thread {comm} after 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stops one thread of another process (or the whole process) for `length` in every
/// `every`, until finished. A thread: ptrace stops only the thread it is attached to
/// (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`), so the rest of the process runs on; never a
/// child's main thread, whose ptrace stops the parent's `waitpid` would reap. A process:
/// `SIGSTOP` / `SIGCONT`. Deterministic, whatever the scheduler does (real-time spinners
/// are not: the kernel's fair-class server lends starved threads CPU time). Needs root
/// (or the same user and permissive ptrace rules).
pub struct ThreadFreezer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<u32>>,
}

impl ThreadFreezer {
    /// Starts stopping the whole process `pid` (first stop after `every - length`).
    pub fn process(pid: u32, length: Duration, every: Duration) -> ThreadFreezer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let pid = pid as libc::pid_t;
            let mut stops = 0;
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(every.saturating_sub(length));
                // SAFETY: plain kill(2) on our child.
                if s.load(Ordering::SeqCst) || unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
                    break;
                }
                std::thread::sleep(length);
                stops += 1;
                // SAFETY: as above; always resumes what it stopped.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
            stops
        });
        ThreadFreezer {
            stop,
            handle: Some(handle),
        }
    }

    /// Starts freezing thread `tid` (first freeze after `every - length`); never the main
    /// thread of a child of this process.
    pub fn start(tid: u32, length: Duration, every: Duration) -> ThreadFreezer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let tid = tid as libc::pid_t;
            let null = std::ptr::null_mut::<libc::c_void>();
            // SAFETY: ptrace on a thread id with null addr/data arguments.
            let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, null, null) } == 0;
            let _ = tx.send(
                seized
                    .then_some(())
                    .ok_or_else(std::io::Error::last_os_error),
            );
            if !seized {
                return 0;
            }
            // Stops the tracee; false if it is gone. A signal that stopped it instead of
            // our interrupt is handed back when it resumes.
            let halt = |pending: &mut libc::c_int| -> bool {
                // SAFETY: as above.
                if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, null, null) } != 0 {
                    return false;
                }
                let mut status = 0;
                // SAFETY: waiting for our tracee; status is a valid out pointer.
                if unsafe { libc::waitpid(tid, &mut status, libc::__WALL) } != tid
                    || !libc::WIFSTOPPED(status)
                {
                    return false;
                }
                *pending = if status >> 16 == libc::PTRACE_EVENT_STOP {
                    0
                } else {
                    libc::WSTOPSIG(status)
                };
                true
            };
            let mut freezes = 0;
            let mut pending = 0;
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(every.saturating_sub(length));
                if s.load(Ordering::SeqCst) || !halt(&mut pending) {
                    break;
                }
                std::thread::sleep(length);
                freezes += 1;
                // SAFETY: resuming our stopped tracee (with its pending signal, if any).
                let data = pending as usize as *mut libc::c_void;
                if unsafe { libc::ptrace(libc::PTRACE_CONT, tid, null, data) } != 0 {
                    return freezes;
                }
            }
            if halt(&mut pending) {
                let data = pending as usize as *mut libc::c_void;
                // SAFETY: detaching our stopped tracee, which then runs on.
                unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, null, data) };
            }
            freezes
        });
        rx.recv()
            .expect("freezer thread")
            .unwrap_or_else(|e| panic!("cannot ptrace thread {tid}: {e}"));
        ThreadFreezer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops freezing; returns how many freezes there were.
    pub fn finish(mut self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

impl Drop for ThreadFreezer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The daemon binary to run: this build's, or `ZZPING_TEST_DAEMON` (another build, to
/// check that the suites catch a known fault: docs/architecture.md).
pub fn daemon_bin() -> String {
    std::env::var("ZZPING_TEST_DAEMON").unwrap_or_else(|_| BIN.to_string())
}

/// Pins the calling thread (and the threads it creates from now on) to `cpu`.
pub fn pin_this_thread(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; tid 0 is this thread.
    let rc = unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpus, &mut mask);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &mask)
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Pins the main thread of daemon `pid` to `main_cpu` and its receive thread
/// (`zzping-recv`) to every other CPU, once that thread exists (bounded wait: the daemon
/// starts it right after opening its sockets; it offers no signal of that).
pub fn pin_daemon_threads(pid: u32, main_cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let set = |tid: u32, cpus: &mut dyn Iterator<Item = usize>| {
        // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for c in cpus {
            unsafe { libc::CPU_SET(c, &mut mask) };
        }
        // SAFETY: valid mask of the right size.
        let rc = unsafe {
            libc::sched_setaffinity(tid as libc::pid_t, size_of::<libc::cpu_set_t>(), &mask)
        };
        assert_eq!(
            rc,
            0,
            "sched_setaffinity({tid}): {}",
            std::io::Error::last_os_error()
        );
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return; // exited already: its exit status tells why
        };
        let recv = tasks.flatten().find_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim() == "zzping-recv").then_some(tid)
        });
        if let Some(tid) = recv {
            set(pid, &mut std::iter::once(main_cpu % cpus));
            let others: Vec<usize> = (0..cpus).filter(|&c| c != main_cpu % cpus).collect();
            if !others.is_empty() {
                set(tid, &mut others.into_iter());
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "daemon {pid}: no receive thread after 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How a request ended, from the truth.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// First echo reply within the timeout: holding time µs.
    Received(u64),
    /// ICMP error.
    Error,
    /// No reply in time (dropped, silent, or first reply after the timeout + sweep).
    Lost,
    /// First reply near the timeout: received or lost+late.
    Ambiguous,
}

/// Per-target comparison results.
#[derive(Debug, Default, Clone)]
pub struct HostReport {
    pub addr: Option<IpAddr>,
    pub requests: usize,
    pub frames: usize,
    /// Requests read by the simulator after their frame's end (sent just before it).
    pub boundary_shifted: usize,
    /// The daemon loop's worst lateness in the run, µs ([`loop_lateness_us`]).
    pub loop_lateness_us: u64,
    /// Sends that succeeded while the kernel dropped their packet ([`silent_drop_windows`]).
    pub silent_drops: usize,
    /// Requests that left (the capture saw them) and that the simulator never read: the
    /// kernel dropped them, a TUN's queue being full.
    pub unread: usize,
    pub max_shift_us: u64,
    /// Frames where a naive `period_start(time_us)` count would differ.
    pub naive_frame_mismatches: usize,
    /// Per-frame count mismatches (sent/received/lost/errors/dups/late) not explained.
    pub mismatches: Vec<String>,
    pub ambiguous_timeouts: usize,
    pub ambiguous_extras: usize,
    pub optional_extras: usize,
    pub totals: [u64; 6],
    /// RTT errors, daemon − wire (capture), µs.
    pub rtt_err_us: Vec<f64>,
    /// |RTT error| against the wire RTT beyond the quantization allowance, µs.
    pub rtt_excess_us: Vec<f64>,
    /// Distance of each RTT outside the interval the truth lies in, beyond the
    /// quantization allowance, µs ([`rtt_interval_check`]).
    pub rtt_outside_us: Vec<f64>,
    /// RTT errors, daemon − simulator holding time, µs.
    pub rtt_err_sim_us: Vec<f64>,
    /// Simulator read time − wire transmit time of requests, µs.
    pub sim_read_lag_us: Vec<f64>,
    /// Violations where the daemon's RTT was too *small* (reported; counted with the rest).
    pub rtt_under: usize,
    /// Received requests the capture missed.
    pub wire_missing: usize,
    /// RTTs outside their provable interval (see [`rtt_interval_check`]).
    pub rtt_violations: Vec<String>,
    /// RTTs in frames flagged `FLAG_USER_STAMP` (upper bounds).
    pub user_stamped_rtts: usize,
    /// Daemon RTTs (decoded), µs.
    pub rtts_us: Vec<u32>,
    /// Truth holding times of received requests, µs.
    pub truth_rtts_us: Vec<u64>,
    pub burst_frames_off: usize,
    pub late_us: Vec<i64>,
}

/// An extra reply (duplicate or late) and the frames it may be counted in.
#[derive(Debug, Clone, Copy)]
struct Extra {
    lo: usize,
    hi: usize,
}

/// Checks that per-frame counts `got` can be exactly achieved by assigning each extra to
/// a frame of its range (`hi == got.len()` means "may be uncounted"). Earliest-deadline
/// greedy, which is optimal for intervals.
fn feasible(got: &[u32], items: &[Extra]) -> Result<(), String> {
    let n = got.len();
    let mut by_lo: Vec<Extra> = items.to_vec();
    by_lo.sort_by_key(|e| e.lo);
    let mut next = 0;
    let mut heap: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    for (g, &want) in got.iter().enumerate() {
        while next < by_lo.len() && by_lo[next].lo <= g {
            heap.push(Reverse(by_lo[next].hi));
            next += 1;
        }
        for _ in 0..want {
            match heap.pop() {
                Some(Reverse(hi)) if hi >= g => {}
                Some(Reverse(hi)) => {
                    return Err(format!(
                        "frame {g}: an extra that had to be in frame ≤ {hi} was not"
                    ));
                }
                None => {
                    return Err(format!(
                        "frame {g}: daemon counts {want}, more than the truth allows"
                    ));
                }
            }
        }
        if let Some(Reverse(hi)) = heap.peek()
            && *hi <= g
        {
            return Err(format!(
                "frame {g}: truth has more extras due by this frame than the daemon counted"
            ));
        }
    }
    if next < by_lo.len() || heap.iter().any(|Reverse(hi)| *hi < n) {
        return Err("extras of the truth left uncounted".into());
    }
    Ok(())
}

/// The truth's daemon requests to `addr`, in read order.
fn daemon_requests(truth: &Truth, addr: IpAddr) -> Vec<&RequestEvent> {
    truth
        .requests_to(addr)
        .into_iter()
        .filter(|r| r.payload_len == DAEMON_PAYLOAD)
        .collect()
}

/// When a daemon request left, as bounds `(lo, hi)` in µs since the epoch. The capture's
/// out-tap is taken inside the daemon's `sendto`, right before the kernel's transmit
/// stamp that its RTT and its deadline count from: both bounds. Without it (the capture
/// missed the packet) only bounds from causality: the start of the frame the daemon put
/// it in (its clock reading chose that frame before `sendto`) and the simulator's read
/// time, which lags the send by however long the simulator took to read the TUN (tens of
/// ms on a loaded machine: never a bound on its own).
fn left_us(wire: &capture::Wire, r: &RequestEvent, frame_start_us: u64) -> (u64, u64) {
    match wire.requests.get(&(r.dst, r.icmp_id, r.icmp_seq)) {
        Some(ns) => (ns / 1000, ns.div_ceil(1000)),
        None => (frame_start_us.min(r.time_us), r.time_us),
    }
}

/// How late the daemon's loop ran at worst in this run, µs: the largest lateness of a
/// send (actual minus scheduled send time), as the daemon measured and logged it on
/// stopping (`send lateness ... max Nµs`), plus one send interval (a stall of the loop
/// delays the next send due, at most one interval later, by nearly as much). The loop
/// that sends also rotates frames and sweeps expired requests: on a loaded machine those
/// are late by as much (the finalization bounds are widened by it; on an idle machine
/// it is about one interval).
pub fn loop_lateness_us(run: &Run) -> u64 {
    stop_line_max_us(run, "send lateness ") + (1e6 / run.spec.rate).ceil() as u64
}

/// How late the daemon may have handed a reply the kernel received over to its loop, at
/// worst in this run, µs: at least [`HANDOVER_AMB_US`], or the longest a reply waited in
/// the socket before the receive thread read it, as the daemon measured and logged it on
/// stopping (`socket wait ... max Nµs`: its batching window and its scheduling), plus the
/// loop's lateness in taking it ([`loop_lateness_us`]). An extra received that long
/// before a rotation or a sweep may still be counted after it.
pub fn handover_lateness_us(run: &Run) -> u64 {
    HANDOVER_AMB_US.max(stop_line_max_us(run, "socket wait ") + loop_lateness_us(run))
}

/// The `max Nµs` of the field starting with `field` in the daemon's stop line.
fn stop_line_max_us(run: &Run, field: &str) -> u64 {
    run.daemon_stderr
        .lines()
        .filter(|l| l.contains("stopped: "))
        .find_map(|l| {
            let rest = &l[l.find(field)?..];
            let rest = &rest[rest.find(" max ")? + 5..];
            rest[..rest.find("µs")?].parse::<u64>().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: the daemon's stop line has no {field:?}... max:\n{}",
                run.name, run.daemon_stderr
            )
        })
}

/// Time spans `[begin, end)` (µs since the epoch) in which a send may fail on this
/// machine: from just before the simulator took routes or a link away (its `net` event's
/// `begin_us`) to when it had put them back (`time_us` of the restoring event, or the end
/// of the run).
pub fn local_failure_windows(truth: &Truth) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for ev in truth.net() {
        match ev.action {
            NetAction::RoutesLost | NetAction::LinkDown => {
                open.get_or_insert(ev.begin_us);
            }
            NetAction::RouteChange => out.push((ev.begin_us, ev.time_us)),
            NetAction::RoutesRestored | NetAction::LinkUp => {
                if let Some(a) = open.take() {
                    out.push((a, ev.time_us));
                }
            }
            NetAction::CarrierOff | NetAction::CarrierOn => {}
        }
    }
    if let Some(a) = open {
        out.push((a, u64::MAX / 2));
    }
    out
}

/// Time spans `[begin, end)` (µs since the epoch) in which a `sendto` could succeed
/// while the kernel dropped its packet before it left (no capture, no `request` in the
/// truth): the link had no carrier, or was being taken down. Taking a link down
/// deactivates its queue before the kernel removes the routes through it: a send in
/// between is dropped by the deactivated queue and still reported a success (observed:
/// on a loaded machine the step lasts long enough for the daemon to send into it).
pub fn silent_drop_windows(truth: &Truth) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for ev in truth.net() {
        match ev.action {
            NetAction::CarrierOff => {
                open.get_or_insert(ev.begin_us);
            }
            NetAction::CarrierOn => {
                if let Some(a) = open.take() {
                    out.push((a, ev.time_us));
                }
            }
            NetAction::LinkDown => out.push((ev.begin_us, ev.time_us)),
            _ => {}
        }
    }
    if let Some(a) = open {
        out.push((a, u64::MAX / 2));
    }
    out
}

/// Compares one target's frames with the truth. See the module docs for the method.
pub fn compare_host(run: &Run, addr: IpAddr) -> HostReport {
    let mut rep = HostReport {
        addr: Some(addr),
        ..Default::default()
    };
    let truth = &run.truth;
    let timeout_us = u64::from(run.spec.timeout_ms) * 1000;
    let period_us = u64::from(run.spec.period_ms) * 1000;
    let daemon_frames = &run.frames[&addr];
    let reqs = daemon_requests(truth, addr);
    rep.requests = reqs.len();
    // Replies with their position in the file (the order they were written).
    let mut replies_of: BTreeMap<u64, Vec<(u64, usize, &zzping_netsim::truth::ReplyEvent)>> =
        BTreeMap::new();
    let ids: HashSet<u64> = reqs.iter().map(|r| r.id).collect();
    for (i, r) in truth.replies().enumerate() {
        if ids.contains(&r.request) {
            replies_of
                .entry(r.request)
                .or_default()
                .push((r.sent_us, i, r));
        }
    }
    // Last daemon send anywhere (when it left: its capture tap, else the read time):
    // after it the daemon is stopping; extras after it may go uncounted.
    let last_send_us = truth
        .requests()
        .filter(|r| r.payload_len == DAEMON_PAYLOAD)
        .map(|r| {
            run.wire
                .requests
                .get(&(r.dst, r.icmp_id, r.icmp_seq))
                .map_or(r.time_us, |ns| ns / 1000)
        })
        .max()
        .unwrap_or(0);

    // Model frames: every period from the first daemon frame to the last.
    let Some(first) = daemon_frames.first() else {
        rep.mismatches.push("no frames".into());
        return rep;
    };
    let last = daemon_frames.last().unwrap();
    let mut model: Vec<Fr> = Vec::new();
    let mut s = first.start_us;
    while s <= last.start_us {
        model.push(Fr {
            start_us: s,
            period_us: period_us as u32,
            ..Default::default()
        });
        s += period_us;
    }
    let index_of = |start: u64| ((start - first.start_us) / period_us) as usize;
    let mut got = model.clone();
    for f in daemon_frames {
        assert_eq!(u64::from(f.period_us), period_us, "period");
        got[index_of(f.start_us)] = f.clone();
    }
    rep.frames = daemon_frames.len();

    // 1. Partition requests by the daemon's per-frame sent counts. Send failures (the
    // frames' local error kinds) never reach the simulator; they may only happen while
    // the simulator had routes or a link away (its `net` windows).
    let windows = local_failure_windows(truth);
    for (k, f) in got.iter().enumerate() {
        let end = f.start_us + period_us;
        if f.local_errors() > 0
            && !windows
                .iter()
                .any(|&(a, b)| f.start_us < b + SEND_EPS_US && end > a)
        {
            rep.mismatches.push(format!(
                "frame {k} (start {}): {} send errors ({:?}) outside the truth's route and link windows {windows:?}",
                f.start_us,
                f.local_errors(),
                f.error_kinds
            ));
        }
    }
    // Requests the capture saw leave that the simulator never read: the kernel dropped
    // them on their way to it, a TUN's queue being full (the simulator read too slowly).
    // The truth's `end` counts those drops (`tun_tx_dropped`); `check` holds the run's
    // total to it. Each must be lost.
    let read_keys: HashSet<capture::Key> = reqs
        .iter()
        .map(|r| (r.dst, r.icmp_id, r.icmp_seq))
        .collect();
    let ids: HashSet<u16> = reqs.iter().map(|r| r.icmp_id).collect();
    let mut unread: Vec<u64> = run
        .wire
        .requests
        .iter()
        .filter(|(k, _)| k.0 == addr && ids.contains(&k.1) && !read_keys.contains(k))
        .map(|(_, ns)| ns / 1000)
        .collect();
    unread.sort_unstable();
    rep.unread = unread.len();
    // Every request that left, in send order (the order of their taps: one thread sends,
    // and the tap is in its `sendto`): the ones read, and the ones dropped unread.
    #[derive(Clone, Copy)]
    enum Left {
        Read(usize),
        Unread(u64),
    }
    let mut left: Vec<Left> = Vec::with_capacity(reqs.len() + unread.len());
    let mut u = unread.iter().copied().peekable();
    for (i, r) in reqs.iter().enumerate() {
        let tap_us = run
            .wire
            .requests
            .get(&(r.dst, r.icmp_id, r.icmp_seq))
            .map_or(r.time_us, |ns| ns / 1000);
        while let Some(t) = u.next_if(|&t| t < tap_us) {
            left.push(Left::Unread(t));
        }
        left.push(Left::Read(i));
    }
    left.extend(u.map(Left::Unread));
    // While the link had no carrier, and while a link was being taken down, sends could
    // succeed while the kernel dropped the packets (no `request` in the truth): a frame
    // overlapping such a window reached the simulator with the requests that left (kernel
    // transmit stamp) within it; the others were dropped, and must be lost.
    let silent = silent_drop_windows(truth);
    let mut reached_of = Vec::with_capacity(got.len());
    let mut dropped = vec![0u32; got.len()];
    let mut at = 0;
    for (k, f) in got.iter().enumerate() {
        let end = f.start_us + period_us;
        // Sends that did not fail: each left (read, or dropped unread), or the kernel
        // dropped it in a silent-drop window.
        let sent_ok = (f.sent - f.local_errors()) as usize;
        let rest = &left[at.min(left.len())..];
        let taken = if silent
            .iter()
            .any(|&(a, b)| f.start_us < b + SEND_EPS_US && end > a)
        {
            let n = rest
                .iter()
                .take(sent_ok)
                .take_while(|l| match **l {
                    // The kernel's transmit stamp is taken in `sendto`, right after the
                    // daemon's clock read that chose the frame; the simulator's read
                    // time may lag by up to SEND_EPS_US.
                    Left::Read(i) => {
                        let r = reqs[i];
                        match run.wire.requests.get(&(r.dst, r.icmp_id, r.icmp_seq)) {
                            Some(ns) => ns / 1000 < end,
                            None => r.time_us < end + SEND_EPS_US,
                        }
                    }
                    Left::Unread(tap) => tap < end,
                })
                .count();
            dropped[k] = (sent_ok - n) as u32;
            rep.silent_drops += dropped[k] as usize;
            n
        } else {
            sent_ok
        };
        let unread_here = rest
            .iter()
            .take(taken)
            .filter(|l| matches!(l, Left::Unread(_)))
            .count();
        dropped[k] += unread_here as u32;
        reached_of.push(taken.min(rest.len()) - unread_here);
        at += taken;
    }
    if at != left.len() {
        rep.mismatches.push(format!(
            "daemon sent {at} (send errors and silent drops excluded), simulator read {} \
             requests (and {} more left unread)",
            reqs.len(),
            unread.len()
        ));
        return rep;
    }
    let mut frame_of_req = vec![0usize; reqs.len()];
    let mut pos = 0;
    let mut naive_count = vec![0u32; model.len() + 1];
    for (k, f) in got.iter().enumerate() {
        let end = f.start_us + period_us;
        let reached = reached_of[k];
        for i in pos..pos + reached {
            let r = reqs[i];
            frame_of_req[i] = k;
            // When the request left: the capture's kernel transmit stamp (taken inside
            // the daemon's `sendto`), else the simulator's read time (later, by up to
            // the simulator's scheduling delay).
            let key = (r.dst, r.icmp_id, r.icmp_seq);
            let sent_us = run
                .wire
                .requests
                .get(&key)
                .map_or(r.time_us, |ns| ns / 1000);
            if sent_us < f.start_us || sent_us >= end + SEND_EPS_US {
                rep.mismatches.push(format!(
                    "frame {k} (start {}): request id {} sent at {sent_us} (read at {}) is outside it",
                    f.start_us, r.id, r.time_us
                ));
            } else if r.time_us >= end {
                rep.boundary_shifted += 1;
                rep.max_shift_us = rep.max_shift_us.max(r.time_us - end);
            }
            let nk = if r.time_us >= first.start_us {
                index_of(period_start(r.time_us, period_us as u32)).min(model.len())
            } else {
                0
            };
            naive_count[nk] += 1;
        }
        pos += reached;
    }
    rep.naive_frame_mismatches = got
        .iter()
        .enumerate()
        .filter(|(k, _)| naive_count[*k] as usize != reached_of[*k])
        .count();

    // 2. Outcomes, exact per frame.
    let mut outcome = Vec::with_capacity(reqs.len());
    for r in &reqs {
        let reps = replies_of.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
        let o = match reps.first() {
            None => Outcome::Lost,
            Some((_, _, ev)) if ev.kind.is_error() => Outcome::Error,
            Some((sent, _, ev)) => {
                // The daemon's RTT lies in [intended delay, wire RTT] (see
                // `rtt_interval_check`); it counts as received when that RTT is below the
                // timeout. The simulator's holding time is not the RTT: the simulator may
                // read a request late (its read lag is not in it).
                let h = sent - r.time_us;
                let wire_us = run
                    .wire
                    .rtt_ns(&(r.dst, r.icmp_id, r.icmp_seq))
                    .map(|ns| ns.div_ceil(1000));
                let hi = wire_us.unwrap_or(h + SEND_EPS_US);
                if hi + TIMEOUT_AMB_US < timeout_us {
                    Outcome::Received(h)
                } else if ev.delay_us > timeout_us + TIMEOUT_AMB_US {
                    Outcome::Lost
                } else {
                    Outcome::Ambiguous
                }
            }
        };
        if matches!(o, Outcome::Ambiguous) {
            rep.ambiguous_timeouts += 1;
        }
        outcome.push(o);
    }
    let mut exp = model.clone();
    // (holding time µs, wire RTT µs, intended reply delay µs) of the received requests,
    // per frame: a kernel-timed RTT lies in [delay, wire] (see `rtt_interval_check`).
    type Truth = (u64, Option<f64>, Option<f64>);
    let mut truth_rtts: Vec<Vec<Truth>> = vec![Vec::new(); model.len()];
    let mut amb_in: Vec<u32> = vec![0; model.len()];
    let mut routers_in: Vec<HashSet<IpAddr>> = vec![HashSet::new(); model.len()];
    // The send errors, as the frames say (checked against the windows above), and the
    // requests the kernel dropped without a carrier.
    for (k, g) in got.iter().enumerate() {
        exp[k].sent += dropped[k];
        exp[k].lost += dropped[k];
        for (kind, n) in g.error_kinds.iter().filter(|(k, _)| k.is_local()) {
            exp[k].sent += n;
            exp[k].errors += n;
            exp[k].error_kinds.add(kind, n);
        }
    }
    for (i, o) in outcome.iter().enumerate() {
        let k = frame_of_req[i];
        exp[k].sent += 1;
        match o {
            Outcome::Received(h) => {
                exp[k].received += 1;
                let r = reqs[i];
                let key = (r.dst, r.icmp_id, r.icmp_seq);
                let wire = run.wire.rtt_ns(&key).map(|ns| ns as f64 / 1000.0);
                if let Some(tx) = run.wire.requests.get(&key) {
                    rep.sim_read_lag_us
                        .push(r.time_us as f64 - *tx as f64 / 1000.0);
                }
                let delay = replies_of
                    .get(&r.id)
                    .and_then(|v| v.first())
                    .map(|(_, _, ev)| ev.delay_us as f64);
                truth_rtts[k].push((*h, wire, delay));
            }
            Outcome::Error => {
                // The first answer is an ICMP error: its kind, and its router.
                let (_, _, ev) = replies_of[&reqs[i].id][0];
                exp[k].errors += 1;
                exp[k]
                    .error_kinds
                    .add(icmp_error_kind(reqs[i].dst, ev.icmp_type, ev.icmp_code), 1);
                routers_in[k].insert(ev.from);
            }
            Outcome::Lost => exp[k].lost += 1,
            Outcome::Ambiguous => amb_in[k] += 1,
        }
    }
    for (k, (e, g)) in exp.iter().zip(&got).enumerate() {
        // Errors by kind exactly; the router named is one that sent an error in the
        // frame (a frame keeps the last), none without one.
        if e.error_kinds != g.error_kinds {
            rep.mismatches.push(format!(
                "frame {k} (start {}): error kinds {:?}, truth {:?}",
                g.start_us, g.error_kinds, e.error_kinds
            ));
        }
        let router_ok = match g.router {
            Some(r) => routers_in[k].contains(&r),
            None => routers_in[k].is_empty(),
        };
        if !router_ok {
            rep.mismatches.push(format!(
                "frame {k} (start {}): router {:?}, truth's errors came from {:?}",
                g.start_us, g.router, routers_in[k]
            ));
        }
        let ok = e.sent == g.sent
            && e.errors == g.errors
            && g.received >= e.received
            && g.lost >= e.lost
            && g.received + g.lost == e.received + e.lost + amb_in[k];
        if !ok {
            rep.mismatches.push(format!(
                "frame {k} (start {}): daemon sent/recv/lost/err {}/{}/{}/{}, truth {}/{}/{}/{} (+{} ambiguous)",
                g.start_us, g.sent, g.received, g.lost, g.errors, e.sent, e.received, e.lost, e.errors, amb_in[k]
            ));
        }
    }

    // 3. Extras. Finalization window of each frame: [lo, hi] keys (µs, reply order). The
    // rotation and the sweep that finalize a frame come up to the loop's lateness
    // (measured) after they are due; an extra may reach the loop up to the handover's
    // lateness (measured) after the kernel received it.
    let lateness_us = loop_lateness_us(run);
    rep.loop_lateness_us = lateness_us;
    let handover_us = handover_lateness_us(run);
    type Key = (u64, usize);
    let mut fin: Vec<(Key, Key)> = model
        .iter()
        .map(|f| {
            let end = f.start_us + period_us;
            (
                (end.saturating_sub(handover_us), 0),
                (end + ROTATE_AMB_US + lateness_us, usize::MAX),
            )
        })
        .collect();
    for (i, r) in reqs.iter().enumerate() {
        let k = frame_of_req[i];
        let reps = replies_of.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
        let (lo, hi): (Key, Key) = match (outcome[i], reps.first()) {
            (Outcome::Received(_) | Outcome::Error, Some(&(t, idx, _))) => ((t, idx), (t, idx)),
            _ => {
                // The daemon's deadline counts from its clock reading before `sendto`
                // (up to SEND_EPS_US before the packet left), moved to the kernel's
                // transmit stamp once it has it.
                let (sent_lo, sent_hi) = left_us(&run.wire, r, got[k].start_us);
                (
                    (
                        (sent_lo + timeout_us).saturating_sub(SEND_EPS_US + handover_us),
                        0,
                    ),
                    (
                        sent_hi + timeout_us + SWEEP_SLACK_US + lateness_us,
                        usize::MAX,
                    ),
                )
            }
        };
        fin[k].0 = fin[k].0.max(lo);
        fin[k].1 = fin[k].1.max(hi);
    }
    // Frames are emitted oldest first: a frame is final only once all older ones are.
    for k in 1..fin.len() {
        fin[k].0 = fin[k].0.max(fin[k - 1].0);
        fin[k].1 = fin[k].1.max(fin[k - 1].1);
    }
    // The last frame stays open until the daemon stops.
    if let Some(l) = fin.last_mut() {
        *l = ((u64::MAX, 0), (u64::MAX, usize::MAX));
    }
    let n = model.len();
    let target = |from: usize, key: Key, use_hi: bool| -> usize {
        (from..n)
            .find(|&g| key < if use_hi { fin[g].1 } else { fin[g].0 })
            .unwrap_or(n - 1)
    };
    let mut dups = Vec::new();
    let mut lates = Vec::new();
    // Every extra once, duplicate or late: a copy that may be counted as either is
    // optional in each list above but must be counted as one of them (unless the
    // daemon stopped first), which only the sum of the two counts can check.
    let mut extras = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let reps = replies_of.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
        let k = frame_of_req[i];
        let (skip, late) = match outcome[i] {
            Outcome::Received(_) | Outcome::Error => (1, false),
            Outcome::Lost => (0, true),
            Outcome::Ambiguous => {
                // Received (no extra), or lost and its first reply late (in its frame, or
                // a later one after the sweep); its copies duplicates or late: each may be
                // counted, in its frame or after, or not at all.
                for (c, &(_, _, ev)) in reps.iter().enumerate() {
                    if ev.kind != ReplyKind::EchoReply {
                        continue;
                    }
                    rep.ambiguous_extras += 1;
                    lates.push(Extra { lo: k, hi: n });
                    extras.push(Extra { lo: k, hi: n });
                    if c > 0 {
                        dups.push(Extra { lo: k, hi: n });
                    }
                }
                continue;
            }
        };
        // A first reply between the timeout and the sweep: lost + late in its frame,
        // then its copies are duplicates — or all late after the sweep.
        for (c, &(t, idx, ev)) in reps.iter().enumerate().skip(skip) {
            if ev.kind != ReplyKind::EchoReply {
                continue;
            }
            rep.late_us.push(ev.late_us);
            // The sweep may come up to SWEEP_SLACK_US after the deadline, which is at
            // most the timeout after the packet left.
            let (_, sent_hi) = left_us(&run.wire, r, got[k].start_us);
            let late_here =
                late && t <= sent_hi + timeout_us + SWEEP_SLACK_US + lateness_us + SEND_EPS_US;
            let lo = target(k, (t, idx), true);
            let mut hi = target(k, (t, idx), false);
            if t >= last_send_us {
                hi = n; // the daemon may have stopped first
                rep.optional_extras += 1;
            }
            if late_here && c > 0 {
                // Duplicate or late depending on the sweep: counted as one of the two,
                // in a frame from the one open when it came on (by the one open when it
                // was handed over).
                rep.ambiguous_extras += 1;
                dups.push(Extra { lo, hi: n });
                lates.push(Extra { lo, hi: n });
                extras.push(Extra { lo, hi });
                continue;
            }
            if lo != hi {
                rep.ambiguous_extras += 1;
            }
            let e = Extra { lo, hi };
            extras.push(e);
            if late { lates.push(e) } else { dups.push(e) }
        }
    }
    let got_d: Vec<u32> = got.iter().map(|f| f.duplicates).collect();
    let got_l: Vec<u32> = got.iter().map(|f| f.late).collect();
    if let Err(e) = feasible(&got_d, &dups) {
        rep.mismatches.push(format!("duplicates: {e}"));
    }
    if let Err(e) = feasible(&got_l, &lates) {
        rep.mismatches.push(format!("late: {e}"));
    }
    let got_extras: Vec<u32> = got.iter().map(|f| f.duplicates + f.late).collect();
    if let Err(e) = feasible(&got_extras, &extras) {
        rep.mismatches.push(format!("duplicates + late: {e}"));
    }

    // 4. RTTs, per frame, sorted pairing (if every RTT lies in its own interval, the
    // sorted RTTs lie in the sorted intervals). The error is reported against the wire
    // RTT and against the simulator's holding time.
    for (k, g) in got.iter().enumerate() {
        rep.rtts_us.extend(&g.rtts_us);
        if amb_in[k] > 0 || g.rtts_us.len() != truth_rtts[k].len() {
            continue;
        }
        let mut hold: Vec<u64> = truth_rtts[k].iter().map(|x| x.0).collect();
        hold.sort_unstable();
        rep.truth_rtts_us.extend(&hold);
        for (&d, &h) in g.rtts_us.iter().zip(&hold) {
            rep.rtt_err_sim_us.push(f64::from(d) - h as f64);
        }
        let (Some(mut wire), Some(mut delay)) = (
            truth_rtts[k]
                .iter()
                .map(|x| x.1)
                .collect::<Option<Vec<f64>>>(),
            truth_rtts[k]
                .iter()
                .map(|x| x.2)
                .collect::<Option<Vec<f64>>>(),
        ) else {
            rep.wire_missing += truth_rtts[k]
                .iter()
                .filter(|x| x.1.is_none() || x.2.is_none())
                .count();
            continue;
        };
        wire.sort_by(f64::total_cmp);
        delay.sort_by(f64::total_cmp);
        let user_stamped = g.flags & FLAG_USER_STAMP != 0;
        rep.user_stamped_rtts += if user_stamped { g.rtts_us.len() } else { 0 };
        for ((&d, &w), &lo) in g.rtts_us.iter().zip(&wire).zip(&delay) {
            let d_f = f64::from(d);
            rep.rtt_err_us.push(d_f - w);
            rep.rtt_excess_us
                .push(((d_f - w).abs() - rtt_allowance_us(w)).max(0.0));
            let outside = rtt_interval_check(d_f, lo, w, user_stamped);
            rep.rtt_outside_us.push(outside);
            if outside > 0.0 {
                if d_f < lo {
                    rep.rtt_under += 1;
                }
                rep.rtt_violations.push(format!(
                    "frame {k} (start {}{}): daemon {d} µs vs truth in [{lo:.1}, {w:.1}] µs (outside by {outside:.1} µs beyond the allowance)",
                    g.start_us,
                    if user_stamped { ", user-stamped: upper bound" } else { "" },
                ));
            }
        }
    }

    // 5. Loss bursts land in the right frames: within one frame of when the request
    // left (the capture's out-tap, taken in the daemon's `sendto`), or of when the
    // simulator read it if the capture missed it. (The read time alone is no bound: on a
    // loaded machine the simulator reads requests hundreds of ms late.)
    for (i, r) in reqs.iter().enumerate() {
        if r.fate == Fate::DroppedBurst {
            let left_us = run
                .wire
                .requests
                .get(&(r.dst, r.icmp_id, r.icmp_seq))
                .map_or(r.time_us, |ns| ns / 1000);
            let naive = index_of(period_start(left_us, period_us as u32));
            if naive.abs_diff(frame_of_req[i]) > 1 || got[frame_of_req[i]].lost == 0 {
                rep.burst_frames_off += 1;
            }
        }
    }

    for g in &got {
        rep.totals[0] += u64::from(g.sent);
        rep.totals[1] += u64::from(g.received);
        rep.totals[2] += u64::from(g.lost);
        rep.totals[3] += u64::from(g.errors);
        rep.totals[4] += u64::from(g.duplicates);
        rep.totals[5] += u64::from(g.late);
    }
    rep
}

/// What a recorded RTT may differ from the true one by, µs, at `rtt_us`: the quantizer's
/// half bucket (0.5 % at the default precision 0.01) plus 1 µs (RTTs are rounded up to
/// whole µs, and the simulator's delays are whole µs).
pub fn rtt_allowance_us(rtt_us: f64) -> f64 {
    0.005 * rtt_us + 1.0
}

/// How far (µs, beyond [`rtt_allowance_us`]) a recorded RTT `d` lies outside the
/// interval its truth provably lies in; 0 when inside.
///
/// - Lower end: the simulator's intended delay. It read the request (at or after the
///   daemon's transmit stamp, taken before the packet reached it), waited at least the
///   delay, and only then wrote the reply (before the daemon's receive stamp, taken in
///   that write). Holds for every RTT, user-timed ones included (those only overstate).
/// - Upper end: the wire RTT. The capture's taps see the request before the driver
///   stamps it and the reply after the kernel stamped it (`zzping_netsim::capture`). Holds only for
///   RTTs timed by the kernel at both ends: a user-stamped frame (`FLAG_USER_STAMP`) may
///   hold an RTT that includes time in `sendto` or in the socket.
pub fn rtt_interval_check(d: f64, lo: f64, wire: f64, user_stamped: bool) -> f64 {
    let below = lo - rtt_allowance_us(lo) - d;
    let above = if user_stamped {
        0.0
    } else {
        d - wire - rtt_allowance_us(wire)
    };
    below.max(above).max(0.0)
}

/// Quantile (nearest rank) of a sorted slice.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Sorted copy.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Median of unsorted values.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Full check of a run: every target compared, summary printed (`--no-capture`), and
/// the suite's assertions. Returns the reports.
pub fn check(run: &Run) -> Vec<HostReport> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    println!(
        "== {} ({} targets, {}/s, {} s, timeout {} ms; wall {:.1} s)",
        run.name,
        run.targets.len(),
        run.spec.rate,
        run.spec.duration_s,
        run.spec.timeout_ms,
        run.wall.as_secs_f64()
    );
    let mut all_err = Vec::new();
    let mut totals = [0u64; 6];
    for &addr in &run.targets {
        let r = compare_host(run, addr);
        let mut e = r.rtt_err_us.clone();
        e.sort_by(f64::total_cmp);
        let abs: Vec<f64> = {
            let mut a: Vec<f64> = e.iter().map(|x| x.abs()).collect();
            a.sort_by(f64::total_cmp);
            a
        };
        let sim_err = sorted(&r.rtt_err_sim_us);
        let lag = sorted(&r.sim_read_lag_us);
        println!(
            "  {addr}: {} req in {} frames ({} more dropped silently by the kernel, {} on a full TUN queue); sent/recv/lost/err/dup/late {:?}; boundary-shifted {} (max {} µs), naive-mapping frame mismatches {}; ambiguous: timeouts {}, extras {} (+{} at shutdown); daemon loop up to {} µs late; mismatches {}",
            r.requests,
            r.frames,
            r.silent_drops,
            r.unread,
            r.totals,
            r.boundary_shifted,
            r.max_shift_us,
            r.naive_frame_mismatches,
            r.ambiguous_timeouts,
            r.ambiguous_extras,
            r.optional_extras,
            r.loop_lateness_us,
            r.mismatches.len(),
        );
        println!(
            "    RTT − wire µs: p50 {:+.1} p99 {:+.1} max|.| {:.1} (n={}, {} not captured); RTT − sim holding time µs: p50 {:+.1} p99 {:+.1}; sim read lag µs: p50 {:.0} p99 {:.0} max {:.0}",
            quantile(&e, 0.5),
            quantile(&e, 0.99),
            abs.last().copied().unwrap_or(f64::NAN),
            e.len(),
            r.wire_missing,
            quantile(&sim_err, 0.5),
            quantile(&sim_err, 0.99),
            quantile(&lag, 0.5),
            quantile(&lag, 0.99),
            lag.last().copied().unwrap_or(f64::NAN),
        );
        for m in r.mismatches.iter().take(10) {
            failures.push(format!("{addr}: {m}"));
        }
        // Every RTT inside the interval its truth provably lies in (rtt_interval_check):
        // no outliers allowed. RTTs the daemon could not time with kernel stamps are in
        // frames flagged FLAG_USER_STAMP and are checked as upper bounds.
        for v in r.rtt_violations.iter().take(10) {
            failures.push(format!("{addr}: RTT {v}"));
        }
        if r.rtt_violations.len() > 10 {
            failures.push(format!(
                "{addr}: {} RTTs outside their interval ({} too small)",
                r.rtt_violations.len(),
                r.rtt_under
            ));
        }
        if r.user_stamped_rtts > 0 {
            println!(
                "  {addr}: note: {} RTTs in user-stamped frames (checked as upper bounds)",
                r.user_stamped_rtts
            );
        }
        // Tightness: the typical error against the wire RTT. The capture's taps and the
        // daemon's kernel stamps sit on the same call paths (the request's tap and its
        // transmit stamp in one `sendto`, the reply's receive stamp and its tap in the
        // simulator's one `write`, whose softirq runs as it returns), so a typical
        // exchange differs by a few µs; 50 µs leaves room for a slow VM and still fails a
        // systematic bias such as a user-space stamp.
        let excess = sorted(&r.rtt_excess_us);
        if !excess.is_empty() && quantile(&excess, 0.5) > 50.0 {
            failures.push(format!(
                "{addr}: RTT error beyond quantization too wide: p50 {:.1} µs vs wire (≤ 50)",
                quantile(&excess, 0.5),
            ));
        }
        if r.wire_missing > r.requests / 100 {
            failures.push(format!(
                "{addr}: capture missed {} requests",
                r.wire_missing
            ));
        }
        if r.burst_frames_off > 0 {
            failures.push(format!(
                "{addr}: {} burst drops not lost in their frame",
                r.burst_frames_off
            ));
        }
        if r.ambiguous_timeouts > 0 {
            println!(
                "  {addr}: note: {} holding times within {TIMEOUT_AMB_US} µs of the timeout",
                r.ambiguous_timeouts
            );
        }
        all_err.extend(&r.rtt_err_us);
        for (t, x) in totals.iter_mut().zip(r.totals) {
            *t += x;
        }
        reports.push(r);
    }
    all_err.sort_by(f64::total_cmp);
    let mut abs: Vec<f64> = all_err.iter().map(|x| x.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let excess_all = sorted(
        &reports
            .iter()
            .flat_map(|r| r.rtt_excess_us.clone())
            .collect::<Vec<_>>(),
    );
    let sim_all = sorted(
        &reports
            .iter()
            .flat_map(|r| r.rtt_err_sim_us.clone())
            .collect::<Vec<_>>(),
    );
    println!(
        "  ALL: sent/recv/lost/err/dup/late {totals:?}; count mismatches {}; boundary-shifted sends {} (naive per-frame sent mismatches {}); extras with >1 candidate frame {}; RTT error vs wire µs: p50 {:+.1} p99 {:+.1}, |err| p50 {:.1} p99 {:.1} max {:.1} (n={}); beyond quantization: p50 {:.1} p99 {:.1}; vs sim holding time: p50 {:+.1} p99 {:+.1}; capture drops {}",
        reports.iter().map(|r| r.mismatches.len()).sum::<usize>(),
        reports.iter().map(|r| r.boundary_shifted).sum::<usize>(),
        reports
            .iter()
            .map(|r| r.naive_frame_mismatches)
            .sum::<usize>(),
        reports.iter().map(|r| r.ambiguous_extras).sum::<usize>(),
        quantile(&all_err, 0.5),
        quantile(&all_err, 0.99),
        quantile(&abs, 0.5),
        quantile(&abs, 0.99),
        abs.last().copied().unwrap_or(f64::NAN),
        abs.len(),
        quantile(&excess_all, 0.5),
        quantile(&excess_all, 0.99),
        quantile(&sim_all, 0.5),
        quantile(&sim_all, 0.99),
        run.wire.drops,
    );
    // Requests dropped on a full TUN queue: as many as the kernel counted, at most.
    let unread: usize = reports.iter().map(|r| r.unread).sum();
    let tun_drops = run.truth.end().map_or(0, |e| e.tun_tx_dropped);
    println!("  left unread: {unread} daemon requests; the TUNs' queues dropped {tun_drops}");
    if unread as u64 > tun_drops {
        failures.push(format!(
            "{unread} requests left and were never read, the TUNs dropped {tun_drops}"
        ));
    }
    for ev in run.truth.net() {
        println!(
            "  net {:?} ({}): the step took {} µs",
            ev.action,
            ev.source,
            ev.time_us.saturating_sub(ev.begin_us)
        );
    }
    // Coverage: the scenario did what it is for.
    for f in &run.spec.expect_fates {
        if !run
            .truth
            .requests()
            .any(|r| r.fate == *f && r.payload_len == DAEMON_PAYLOAD)
        {
            failures.push(format!(
                "truth has no {f:?} request: scenario did not exercise it"
            ));
        }
    }
    let names = ["sent", "received", "lost", "errors", "duplicates", "late"];
    for c in &run.spec.expect_counts {
        let i = names
            .iter()
            .position(|n| n == c)
            .unwrap_or_else(|| panic!("unknown count {c:?} in expect_counts"));
        if totals[i] == 0 {
            failures.push(format!("daemon counted no {c}"));
        }
    }
    if let Some(addr) = run.spec.fping {
        check_fping(run, addr, &reports, &mut failures);
    }
    check_metrics(run, &mut failures);
    assert!(
        failures.is_empty(),
        "{}: {} failures:\n{}\n--- daemon stderr:\n{}",
        run.name,
        failures.len(),
        failures.join("\n"),
        run.daemon_stderr
    );
    reports
}

/// The value of the sample `name{host="label",...}` in a `/metrics` text.
fn sample(body: &str, name: &str, label: &str, extra: &str) -> Option<u64> {
    let host = format!("host=\"{label}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains(&host) && l.contains(extra))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Prometheus against the truth: every host's counters on `/metrics`, scraped once the
/// counts were final, equal the sums of its frames, which `compare_host` has just held
/// to the truth frame by frame.
fn check_metrics(run: &Run, failures: &mut Vec<String>) {
    let Some(body) = &run.metrics else {
        failures.push("no /metrics scrape: the daemon never said its counts were final".into());
        return;
    };
    type Pick = fn(&Fr) -> u64;
    let counters: [(&str, Pick); 6] = [
        ("zzping_requests_sent_total", |f| f.sent.into()),
        ("zzping_replies_total", |f| f.received.into()),
        ("zzping_lost_total", |f| f.lost.into()),
        ("zzping_failed_total", |f| u64::from(f.lost + f.errors)),
        ("zzping_duplicates_total", |f| f.duplicates.into()),
        ("zzping_late_replies_total", |f| f.late.into()),
    ];
    for (addr, frames) in &run.frames {
        let label = addr.to_string();
        for (name, pick) in counters {
            let want: u64 = frames.iter().map(pick).sum();
            let got = sample(body, name, &label, "");
            if got != Some(want) {
                failures.push(format!("{addr}: {name} {got:?} on /metrics, frames {want}"));
            }
        }
        for k in ErrorKind::ALL {
            let want: u64 = frames.iter().map(|f| u64::from(f.error_kinds.get(k))).sum();
            let kind = format!("kind=\"{}\"", k.name());
            let got = sample(body, "zzping_errors_total", &label, &kind);
            if got != Some(want) {
                failures.push(format!(
                    "{addr}: zzping_errors_total{{{kind}}} {got:?} on /metrics, frames {want}"
                ));
            }
        }
    }
}

/// The kernel slews a clock by at most 500 ppm (`adjtimex`): fping's interval and the
/// capture's may be read on different clocks.
const CLOCK_SLEW: f64 = 500e-6;

/// fping beside the daemon, as a cross-check a user would make. Asserted, from causality
/// alone (so machine load cannot break it): fping's run produced a result per ping, and
/// every RTT it measured spans its request's wire RTT, since fping reads its send time
/// before `sendto` (before the capture tap) and its receive time from the same kernel
/// receive stamp or later (shorter only by its printing resolution and the clock slew).
/// Reported only: the medians, ours against fping's. Their difference is set by where
/// each prober reads its clocks and by scheduling, so it is a measurement, not a bound:
/// the benchmark's `accuracy.median_diff_vs_fping_us` tracks it. (Each prober's requests
/// also see different simulated delays: compare each with its own truth, as printed.)
fn check_fping(run: &Run, addr: IpAddr, reports: &[HostReport], failures: &mut Vec<String>) {
    let fp = zzping_testkit::fping::parse_summary(&run.fping_stderr);
    let Some(vals) = fp.get(&addr.to_string()) else {
        failures.push(format!("no fping result for {addr}:\n{}", run.fping_stderr));
        return;
    };
    if vals.len() != run.fping_count {
        failures.push(format!(
            "fping printed {} results for {addr}, ran {}",
            vals.len(),
            run.fping_count
        ));
    }
    let fping_us: Vec<f64> = vals.iter().flatten().map(|r| r.us).collect();
    // fping's own requests in the truth, in order: its error against the truth.
    let freqs: Vec<_> = run
        .truth
        .requests_to(addr)
        .into_iter()
        .filter(|r| r.payload_len != DAEMON_PAYLOAD)
        .collect();
    if freqs.len() != vals.len() {
        failures.push(format!(
            "fping printed {} results for {addr}, the simulator read {} of its requests",
            vals.len(),
            freqs.len()
        ));
    }
    let mut fping_err = Vec::new();
    let mut fping_wire_err = Vec::new();
    for (r, v) in freqs.iter().zip(vals) {
        let Some(v) = v else { continue };
        if let Some(rep) = run.truth.replies_for(r.id).first() {
            fping_err.push(v.us - (rep.sent_us - r.time_us) as f64);
        }
        if let Some(w) = run.wire.rtt_ns(&(r.dst, r.icmp_id, r.icmp_seq)) {
            let wire_us = w as f64 / 1000.0;
            fping_wire_err.push(v.us - wire_us);
            if v.max_us() * (1.0 + CLOCK_SLEW) < wire_us {
                failures.push(format!(
                    "fping seq {}: {} µs (±{}) is shorter than its wire RTT {wire_us} µs",
                    r.icmp_seq, v.us, v.half_step_us
                ));
            }
        }
    }
    let Some(ours) = reports.iter().find(|r| r.addr == Some(addr)) else {
        return;
    };
    let ours_us: Vec<f64> = ours.rtts_us.iter().map(|&x| f64::from(x)).collect();
    let truth_us: Vec<f64> = ours.truth_rtts_us.iter().map(|&x| x as f64).collect();
    let (m_ours, m_fping) = (median(&ours_us), median(&fping_us));
    println!(
        "  fping reference {addr}: {} of {} answered; median fping {m_fping:.0} µs, ours {m_ours:.0} µs, ours − fping {:+.0} µs; median error vs wire: fping {:+.1} µs, ours {:+.1} µs; vs sim holding time: fping {:+.0} µs (n={}), ours {:+.0} µs; truth medians: fping's requests {:.0} µs, ours {:.0} µs",
        fping_us.len(),
        vals.len(),
        m_ours - m_fping,
        median(&fping_wire_err),
        median(&ours.rtt_err_us),
        median(&fping_err),
        fping_err.len(),
        median(&ours.rtt_err_sim_us),
        median(
            &freqs
                .iter()
                .filter_map(|r| run
                    .truth
                    .replies_for(r.id)
                    .first()
                    .map(|p| (p.sent_us - r.time_us) as f64))
                .collect::<Vec<_>>()
        ),
        median(&truth_us),
    );
}
