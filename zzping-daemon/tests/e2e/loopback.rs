//! Loopback runs of the real daemon, each in a fresh network namespace with a ring
//! capture on `lo` (`zzping_netsim::capture`): every reply the daemon traces
//! (`zzping_daemon::reply=trace`) is held to the interval `[T3 - T2, T4 - T1]` its RTT
//! provably lies in, and tied to the frame files. Optionally under deliberate CPU
//! contention (the stress test).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::{Capture, Wire};
use super::read_frames;

pub const LOOPBACK_SECONDS: f64 = 1.5;
/// 250/s to each of three targets: the receive thread batches (replies < 20 ms apart).
pub const LOOPBACK_RATE: u32 = 250;
/// The whole daemon is stopped for this long ...
const DAEMON_STOP: Duration = Duration::from_millis(15);
/// ... every this long.
const DAEMON_STOP_EVERY: Duration = Duration::from_millis(100);
/// The receive thread is frozen for this long (more than a batching window) ...
const RECEIVE_FREEZE: Duration = Duration::from_millis(30);
/// ... every this long.
const RECEIVE_FREEZE_EVERY: Duration = Duration::from_millis(170);
/// The CPU the daemon's main thread is pinned to.
pub const MAIN_CPU: usize = 0;
/// Starvation at start: real-time spinners at this priority on every CPU ...
const STARVE_PRIORITY: i32 = 10;
/// ... for this long, while the daemon runs at a higher real-time priority.
const STARVE: Duration = Duration::from_millis(300);
const DAEMON_PRIORITY: &str = "20";

/// A busy loop on every core, until dropped.
pub struct Contention {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Contention {
    /// Starts the busy loops.
    pub fn start() -> Contention {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..cpus)
            .map(|cpu| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    super::pin_this_thread(cpu);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Contention { stop, threads }
    }
}

/// Real-time spinners on every CPU for `dur` (each bounded by its own clock): ordinary
/// threads, the kernel's workers among them, get no CPU meanwhile. Joined on drop.
struct Starvation(Vec<JoinHandle<()>>);

impl Starvation {
    fn start(dur: Duration) -> Starvation {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let until = Instant::now() + dur;
        let (tx, rx) = std::sync::mpsc::channel();
        let threads = (0..cpus)
            .map(|cpu| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    super::pin_this_thread(cpu);
                    let param = libc::sched_param {
                        sched_priority: STARVE_PRIORITY,
                    };
                    // SAFETY: plain syscall on this thread.
                    let ok = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                    let _ = tx.send(ok == 0);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for _ in 0..cpus {
            assert!(rx.recv().unwrap(), "cannot run a real-time spinner");
        }
        Starvation(threads)
    }
}

impl Drop for Starvation {
    fn drop(&mut self) {
        for t in self.0.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One traced reply (the daemon's `zzping_daemon::reply` trace line).
#[derive(Debug, Clone)]
struct Traced {
    host: String,
    frame_us: u64,
    addr: IpAddr,
    ident: u16,
    seq: u16,
    rtt_ns: u64,
    kernel: bool,
    send_kernel: bool,
    receive: String,
}

fn parse_trace(stderr: &str) -> Vec<Traced> {
    stderr
        .lines()
        .filter(|l| l.contains("zzping_daemon::reply:"))
        .map(|l| {
            let kv: HashMap<&str, &str> = l
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            let get = |k: &str| *kv.get(k).unwrap_or_else(|| panic!("no {k} in {l}"));
            Traced {
                host: get("host").to_string(),
                frame_us: get("frame_us").parse().unwrap(),
                addr: get("addr").parse().unwrap(),
                ident: get("ident").parse().unwrap(),
                seq: get("seq").parse().unwrap(),
                rtt_ns: get("rtt_ns").parse().unwrap(),
                kernel: get("send") == "kernel" && get("receive") == "kernel",
                send_kernel: get("send") == "kernel",
                receive: get("receive").to_string(),
            }
        })
        .collect()
}

/// How a loopback run stresses the daemon.
#[derive(Debug, Clone, Copy)]
pub enum Stress {
    /// No contention.
    Quiet,
    /// Its receive thread frozen 30 ms in every 170 ms ([`super::ThreadFreezer`]): the
    /// main loop runs on, sends, and must prove every loss.
    FrozenReceiveThread,
    /// The whole daemon stopped (`SIGSTOP`) 15 ms in every 100 ms: sends go out late,
    /// replies wait in the sockets.
    StoppedDaemon,
    /// Every CPU taken by real-time spinners for its first 300 ms, the daemon running
    /// above them: the kernel's workers (which switch network timestamping on) wait.
    StarvedKernelWorkers,
}

/// One loopback run in a fresh network namespace: (daemon stderr, capture, data dir).
pub fn loopback_run(dgram: bool, stress: Stress) -> (String, Wire, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let h = std::thread::spawn(move || {
        zzping_netsim::sys::unshare_net().expect("unshare the network namespace");
        let mut setup = String::from("ip link set lo up");
        if dgram {
            setup.push_str(" && sysctl -qw net.ipv4.ping_group_range='0 2147483647'");
        }
        let st = Command::new("sh").args(["-c", &setup]).status().unwrap();
        assert!(st.success(), "{setup}");
        let cap = Capture::start("lo").expect("capture on lo");
        let bin = super::daemon_bin();
        let (mut cmd, starve) = match stress {
            Stress::Quiet | Stress::FrozenReceiveThread | Stress::StoppedDaemon => {
                (Command::new(&bin), None)
            }
            Stress::StarvedKernelWorkers => {
                let mut c = Command::new("chrt");
                c.args(["-f", DAEMON_PRIORITY, &bin]);
                (c, Some(Starvation::start(STARVE)))
            }
        };
        let mut daemon = cmd
            .args(["--config", "none", "--live", "off", "--socket", "auto"])
            .args(["--data-dir", data.to_str().unwrap()])
            .args([
                "--target",
                "127.0.0.1",
                "--target",
                "::1",
                "--target",
                "127.0.0.2",
            ])
            .args(["--rate", &LOOPBACK_RATE.to_string()])
            .args(["--timeout-ms", "500"])
            .args(["--duration", &LOOPBACK_SECONDS.to_string()])
            .args(["--log", "info,zzping_daemon::reply=trace"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the daemon");
        let freezers = match stress {
            Stress::FrozenReceiveThread => {
                let recv = super::find_thread(daemon.id(), "zzping-recv");
                vec![super::ThreadFreezer::start(
                    recv.expect("the daemon's receive thread"),
                    RECEIVE_FREEZE,
                    RECEIVE_FREEZE_EVERY,
                )]
            }
            Stress::StoppedDaemon => vec![super::ThreadFreezer::process(
                daemon.id(),
                DAEMON_STOP,
                DAEMON_STOP_EVERY,
            )],
            _ => Vec::new(),
        };
        drop(starve);
        let mut err = daemon.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut err, &mut s).unwrap();
            s
        });
        let status =
            zzping_testkit::process::wait_bounded(&mut daemon, Duration::from_secs(30), "daemon");
        for f in freezers {
            f.finish();
        }
        let stderr = reader.join().unwrap();
        assert!(status.success(), "daemon failed: {status}\n{stderr}");
        (stderr, cap.finish().expect("capture on lo"))
    });
    let (stderr, wire) = h.join().unwrap();
    (stderr, wire, dir)
}

#[derive(Default)]
pub struct Tally {
    /// Replies traced.
    pub replies: usize,
    /// Replies not timed by the kernel at both ends.
    pub user_timed: usize,
    /// Replies whose receive stamp was taken inside recvmsg.
    pub in_call: usize,
}

/// Checks one loopback run; returns what it saw, or the failures.
pub fn check_loopback(stderr: &str, wire: &Wire, dir: &Path) -> Result<Tally, Vec<String>> {
    let mut failures = Vec::new();
    let traced = parse_trace(stderr);
    let exit = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no exit line: {stderr}"));
    // "stopped: N sent, M received, L lost, E errors, ..."
    let count = |what: &str| -> u64 {
        exit.split(", ")
            .chain(exit.split(": "))
            .find_map(|p| {
                p.trim()
                    .strip_suffix(what)?
                    .split(' ')
                    .next_back()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no '{what}' in {exit}"))
    };
    let (sent, received) = (count(" sent"), count(" received"));
    // Loopback loses nothing: every request is answered inside its own sendto.
    if received != sent || count(" lost") != 0 || count(" errors") != 0 {
        failures.push(format!("not every request answered: {exit}"));
    }
    if traced.len() as u64 != received {
        failures.push(format!(
            "{} traced replies, {received} received",
            traced.len()
        ));
    }
    if wire.drops > 0 {
        failures.push(format!("capture dropped {} packets", wire.drops));
    }
    // Every send is timed by the kernel's transmit stamp (this kernel has them on both
    // socket kinds and families, and a batch drain hands each stamp over before its
    // reply).
    let user_sends = traced.iter().filter(|r| !r.send_kernel).count();
    if user_sends > 0 {
        failures.push(format!(
            "{user_sends} replies timed from a user-space send time"
        ));
    }
    let mut t = Tally::default();
    for r in &traced {
        t.replies += 1;
        t.user_timed += usize::from(!r.kernel);
        t.in_call += usize::from(r.receive == "in_call");
        let key = (r.addr, r.ident, r.seq);
        let Some((lo, hi)) = wire.loopback_interval_ns(&key) else {
            failures.push(format!("{key:?}: not captured at all four taps"));
            continue;
        };
        // Kernel-timed: inside [T3 - T2, T4 - T1] exactly (one clock, no allowance).
        // User-timed: an upper bound, so never below the lower end.
        if r.rtt_ns < lo || (r.kernel && r.rtt_ns > hi) {
            failures.push(format!(
                "{} seq {}: RTT {} ns ({}, receive {}) outside [{lo}, {hi}] ns",
                r.host,
                r.seq,
                r.rtt_ns,
                if r.kernel {
                    "kernel-timed"
                } else {
                    "user-timed"
                },
                r.receive
            ));
        }
    }
    // The frames hold exactly the traced RTTs (within the quantizer's half bucket and the
    // rounding up to whole µs), flagged where a reply was user-timed.
    let mut by_frame: BTreeMap<(String, u64), (Vec<u64>, bool)> = BTreeMap::new();
    for r in &traced {
        let e = by_frame.entry((r.host.clone(), r.frame_us)).or_default();
        e.0.push(r.rtt_ns.div_ceil(1000));
        e.1 |= !r.kernel;
    }
    for (host, dirname) in [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "__1"),
        ("127.0.0.2", "127.0.0.2"),
    ] {
        for f in read_frames(&dir.join(dirname)) {
            let (mut want, user) = by_frame
                .remove(&(host.to_string(), f.start_us))
                .unwrap_or_default();
            want.sort_unstable();
            let ok = want.len() == f.rtts_us.len()
                && want
                    .iter()
                    .zip(&f.rtts_us)
                    .all(|(&w, &g)| (g as f64 - w as f64).abs() <= 0.005 * w as f64 + 1.0);
            if !ok {
                failures.push(format!(
                    "{host} frame {}: RTTs {:?} µs, traced {want:?}",
                    f.start_us, f.rtts_us
                ));
            }
            let flagged = f.flags & zzping_lib::frame::FLAG_USER_STAMP != 0;
            if flagged != user {
                failures.push(format!(
                    "{host} frame {}: FLAG_USER_STAMP {flagged}, user-timed replies {user}",
                    f.start_us
                ));
            }
        }
    }
    if let Some(((h, f), _)) = by_frame.iter().find(|(_, v)| !v.0.is_empty()) {
        failures.push(format!(
            "{h}: traced replies of frame {f} missing from the files"
        ));
    }
    if failures.is_empty() {
        Ok(t)
    } else {
        Err(failures)
    }
}
