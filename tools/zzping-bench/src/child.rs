//! Child processes measured with `wait4`: the daemon (this binary re-executed) and fping.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// First argument that makes this binary act as the daemon.
pub const DAEMON_ARG: &str = "__daemon";
/// Environment variable `T1,T2` (seconds): the steady-state allocation window.
const WINDOW_ENV: &str = "ZZPING_BENCH_ALLOC_WINDOW";

/// What the kernel says a finished child cost.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// User CPU, seconds.
    pub user_s: f64,
    /// System CPU, seconds.
    pub sys_s: f64,
    /// Peak resident set of the child's image, MB (sampled every 100 ms from `VmHWM`).
    pub maxrss_mb: f64,
    /// Exit status as returned by `wait4`.
    pub status: i32,
    /// Context switches of every thread over the whole run, voluntary + involuntary
    /// (`ru_nvcsw + ru_nivcsw`): each one a wakeup or a preemption.
    pub switches: u64,
    /// Of those, the voluntary ones (`ru_nvcsw`).
    pub voluntary_switches: u64,
}

impl Usage {
    /// User + system CPU, seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// What the daemon child reports on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DaemonReport {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Frames written.
    pub frames: u64,
    /// Send lateness p99 upper bound, µs.
    pub late_p99_us: u64,
    /// Allocations during the window.
    pub allocs_window: u64,
    /// Window length, s.
    pub window_s: f64,
    /// Context switches (voluntary + involuntary) of the main thread during the window.
    #[serde(default)]
    pub switches_main: u64,
    /// Context switches of the receive thread during the window.
    #[serde(default)]
    pub switches_recv: u64,
    /// Context switches of any other daemon thread during the window.
    #[serde(default)]
    pub switches_other: u64,
    /// Of those context switches (every daemon thread), the voluntary ones: the thread
    /// blocked and was woken (the rest: preempted).
    #[serde(default)]
    pub switches_voluntary: u64,
    /// CPU time of the daemon's threads during the window (the measuring thread's own
    /// excluded), ns.
    #[serde(default)]
    pub cpu_window_ns: u64,
    /// Run time of the main thread during the window (`/proc/self/task/*/schedstat`), ns.
    #[serde(default)]
    pub cpu_main_ns: u64,
    /// Run time of the receive thread during the window, ns.
    #[serde(default)]
    pub cpu_recv_ns: u64,
}

/// Runs `cmd` to completion, returning its usage and stdout.
pub fn run_measured(cmd: &mut Command) -> Result<(Usage, String)> {
    let child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.context("child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    // ru_maxrss survives exec (it would report this process's size for a small child),
    // so sample the child's own high-water mark instead, until it exits.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut hwm_kb = 0u64;
        while !done2.load(Ordering::Relaxed) {
            if let Some(kb) = vm_hwm_kb(pid) {
                hwm_kb = hwm_kb.max(kb);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        hwm_kb
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child; pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    done.store(true, Ordering::Relaxed);
    let hwm_kb = sampler.join().unwrap_or(0);
    let out = reader.join().unwrap_or_default();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        Usage {
            user_s: tv(ru.ru_utime),
            sys_s: tv(ru.ru_stime),
            maxrss_mb: hwm_kb as f64 / 1024.0,
            status,
            switches: (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
            voluntary_switches: ru.ru_nvcsw as u64,
        },
        out,
    ))
}

/// `VmHWM` (peak RSS of the current image) of process `pid`, kB.
fn vm_hwm_kb(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The daemon's live stream in a run.
#[derive(Debug, Clone, Copy)]
pub enum Live<'a> {
    /// `--live off`.
    Off,
    /// No `--live` argument: the daemon's default (on, 127.0.0.1:7878).
    Default,
    /// `--live ADDR`.
    At(&'a str),
}

/// Runs the daemon for `duration_s` on `targets` at `rate` pings/s each (as a child of the
/// calling thread, so inside its namespace) and returns its usage and report.
pub fn run_daemon(
    data_dir: &std::path::Path,
    targets: &[String],
    rate: f64,
    duration_s: f64,
    live: Live<'_>,
) -> Result<(Usage, DaemonReport)> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg(DAEMON_ARG)
        .args(["--config", "none", "--log", "warn"])
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            &duration_s.to_string(),
        ]);
    for t in targets {
        cmd.args(["--target", t]);
    }
    match live {
        Live::Off => {
            cmd.args(["--live", "off"]);
        }
        Live::Default => {}
        Live::At(addr) => {
            cmd.args(["--live", addr]);
        }
    }
    // Steady state starts after the first flush (5 s after the loop starts), which opens
    // each host's file: a one-time cost.
    let t1 = (duration_s * 0.3).max(6.5).min(duration_s * 0.8);
    cmd.env(WINDOW_ENV, format!("{t1},{}", duration_s * 0.95));
    let (usage, out) = run_measured(&mut cmd)?;
    if usage.status != 0 {
        bail!("daemon exited with status {}: {out}", usage.status);
    }
    let report: DaemonReport = serde_json::from_str(out.lines().last().unwrap_or(""))
        .with_context(|| format!("daemon report: {out:?}"))?;
    Ok((usage, report))
}

static WINDOW_ALLOCS: AtomicU64 = AtomicU64::new(0);
static WINDOW_CPU_NS: AtomicU64 = AtomicU64::new(0);
static WINDOW_VOLUNTARY: AtomicU64 = AtomicU64::new(0);
static WINDOW_SWITCHES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static WINDOW_RUN_NS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The receive thread's name (`zzping_daemon::recv`).
const RECV_THREAD: &str = "zzping-recv";

/// One thread's context switches and run time.
struct TaskSwitches {
    tid: u64,
    /// The receive thread.
    recv: bool,
    voluntary: u64,
    involuntary: u64,
    /// Time on a CPU, ns (the scheduler's own count: `schedstat`'s first field).
    run_ns: u64,
}

/// Context switches and run time of every thread of this process but the calling one,
/// from `/proc/self/task/*/status` and `schedstat`.
fn task_switches() -> Vec<TaskSwitches> {
    // SAFETY: plain syscall.
    let me = unsafe { libc::gettid() } as u64;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let recv = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .is_some_and(|n| n.trim() == RECV_THREAD);
        let run_ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.push(TaskSwitches {
            tid,
            recv,
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
            run_ns,
        });
    }
    out
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: timespec is plain data; valid pointer.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `zzping-bench __daemon ARGS...`: the daemon's own code path (`daemon::run`), plus an
/// allocation count over a steady-state window, reported as JSON on stdout.
pub fn daemon_main(args: Vec<OsString>) -> Result<()> {
    use clap::Parser;
    use zzping_daemon::{config, daemon};
    let mut argv = vec![OsString::from("zzping-daemon")];
    argv.extend(args);
    let cli = config::Cli::parse_from(argv);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            cli.log.clone().unwrap_or_else(|| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let cfg = config::load(&cli).context("loading the configuration")?;
    let (t1, t2) = std::env::var(WINDOW_ENV)
        .ok()
        .and_then(|w| {
            let (a, b) = w.split_once(',')?;
            Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?))
        })
        .unwrap_or((1.0, 2.0));
    // The measuring thread only sleeps between two readings of the counters (its own
    // reads of /proc allocate, so the allocation count is taken innermost, and its own
    // CPU is subtracted).
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(t1));
        let switches0 = task_switches();
        let cpu0 = cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
        let own0 = cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let a = crate::alloc::count();
        std::thread::sleep(Duration::from_secs_f64(t2 - t1));
        let allocs = crate::alloc::count() - a;
        let own = cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - own0;
        let cpu = cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        let switches1 = task_switches();
        WINDOW_ALLOCS.store(allocs, Ordering::Relaxed);
        WINDOW_CPU_NS.store(cpu.saturating_sub(own), Ordering::Relaxed);
        for t1 in switches1 {
            let (v0, i0, r0) = switches0
                .iter()
                .find(|t0| t0.tid == t1.tid)
                .map_or((0, 0, 0), |t0| (t0.voluntary, t0.involuntary, t0.run_ns));
            let voluntary = t1.voluntary.saturating_sub(v0);
            let n = voluntary + t1.involuntary.saturating_sub(i0);
            // 0: main, 1: receive, 2: any other thread.
            let slot = if t1.recv {
                1
            } else if t1.tid == u64::from(std::process::id()) {
                0
            } else {
                2
            };
            WINDOW_SWITCHES[slot].fetch_add(n, Ordering::Relaxed);
            WINDOW_RUN_NS[slot].fetch_add(t1.run_ns.saturating_sub(r0), Ordering::Relaxed);
            WINDOW_VOLUNTARY.fetch_add(voluntary, Ordering::Relaxed);
        }
    });
    let r = daemon::run(cli, cfg)?;
    let report = DaemonReport {
        sent: r.sent,
        received: r.received,
        frames: r.frames,
        late_p99_us: r.late_p99_us,
        allocs_window: WINDOW_ALLOCS.load(Ordering::Relaxed),
        window_s: t2 - t1,
        switches_main: WINDOW_SWITCHES[0].load(Ordering::Relaxed),
        switches_recv: WINDOW_SWITCHES[1].load(Ordering::Relaxed),
        switches_other: WINDOW_SWITCHES[2].load(Ordering::Relaxed),
        switches_voluntary: WINDOW_VOLUNTARY.load(Ordering::Relaxed),
        cpu_window_ns: WINDOW_CPU_NS.load(Ordering::Relaxed),
        cpu_main_ns: WINDOW_RUN_NS[0].load(Ordering::Relaxed),
        cpu_recv_ns: WINDOW_RUN_NS[1].load(Ordering::Relaxed),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
