//! Alerts: the `[[alert]]` rules evaluated on the final frames, and their command.
//!
//! The rules run in the event loop on every final frame ([`Alerts::on_frame`], through
//! [`zzping_lib::alert::Evaluator`]: allocation-free per frame). An event (a rule starts
//! or stops holding) is logged, counted (`zzping_alerts_total{rule,state}`) and, when the
//! rule has a `command`, put on a bounded queue ([`QUEUE_LEN`]) to one worker thread
//! that runs it: the loop never blocks on it. When the queue is full a firing event's
//! command is dropped and counted (`zzping_alert_commands_dropped_total`).
//!
//! # Pairs
//! The command sees firing/resolved pairs: a resolved event's command runs exactly when
//! its firing's command was queued. A firing that is not queued (rate limit, full queue)
//! leaves its resolved event unsent too. A resolved event whose firing was queued is
//! never dropped: if the queue is full it waits (in a list bounded by the number of
//! alerts) and is queued on a later frame, or at shutdown.
//!
//! # Rate limit
//! A firing event less than `min_interval_s` after the rule last queued its command (for
//! any host) is *suppressed*: logged, counted (`zzping_alert_commands_suppressed_total`),
//! its command not run; so is the resolved event of a suppressed firing (the command
//! never heard of it).
//!
//! # Shutdown
//! [`Alerts::stop`] lets the worker run what is queued, each command with its
//! [`COMMAND_TIMEOUT`], for at most [`SHUTDOWN_DRAIN`] in all (a user stopping the
//! daemon during an outage still gets its notifications); what is left then is dropped,
//! counted and logged.
//!
//! # The command
//! Run without a shell (`command[0]` is an absolute path), stdin from `/dev/null`,
//! stdout and stderr the daemon's, the event in its environment (added to the daemon's):
//! `ZZPING_ALERT_NAME`, `_STATE` (`firing`, `resolved`), `_WHEN` (`outage`, `loss`,
//! `p95`), `_HOST` (the label, or `all`), `_ADDRESS` (empty for `all`), `_ROLE` (empty
//! when none), `_VALUE` and `_THRESHOLD` (in the rule's unit: s, %, ms), `_SINCE`
//! (RFC 3339: when the condition began, or for resolved when it became clear), `_TEXT`
//! (one sentence), `_REASON` (`condition`: the frames decided it; a resolved event can
//! also come because nothing watches the alert any more: `host-removed` when its host
//! is removed, `stopped` when the daemon stops; its condition may still hold). One
//! command runs at a time; one that runs longer than [`COMMAND_TIMEOUT`] is killed. A failure (cannot start, non-zero exit, killed) is
//! logged the first time for its rule, then counted
//! (`zzping_alert_command_failures_total`) until the rule's command works again.

pub mod config;

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use zzping_lib::alert::{AlertEvent, AlertState, Evaluator, HostKey, Rule, Unwatched};
use zzping_lib::frame::Frame;

pub use config::AlertConfig;

/// Commands waiting to run at most; more are dropped (and counted).
pub const QUEUE_LEN: usize = 64;
/// A command running longer than this is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, the queued commands run for at most this long in all (a command still
/// running then is killed; the rest are dropped). Well within systemd's default stop
/// timeout (90 s).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);
/// `ZZPING_ALERT_REASON` of an event the frames decided (the condition started or
/// stopped holding); an alert that ends unwatched says why instead
/// ([`Unwatched::name`]: `host-removed`, `stopped`).
pub const REASON_CONDITION: &str = "condition";
/// How often the worker checks a child when the kernel has no pidfd (Linux < 5.3).
const CHILD_POLL: Duration = Duration::from_millis(20);

/// Counters of one rule (shared with the worker thread and the exporter).
#[derive(Debug, Default)]
pub struct RuleStats {
    /// The rule's name.
    pub name: String,
    /// Firing events.
    pub firing: AtomicU64,
    /// Resolved events.
    pub resolved: AtomicU64,
    /// Events whose command was not run because of `min_interval_s`.
    pub suppressed: AtomicU64,
    /// Commands that failed (could not start, exited non-zero, were killed).
    pub failures: AtomicU64,
}

/// Counters of every rule.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Per rule, in configuration order.
    pub rules: Vec<RuleStats>,
    /// Commands dropped because the queue was full, or still waiting when the shutdown's
    /// [`SHUTDOWN_DRAIN`] ran out.
    pub dropped: AtomicU64,
}

/// A command to run.
struct Job {
    rule: usize,
    argv: Arc<[String]>,
    env: Vec<(&'static str, String)>,
    stats: Arc<AlertStats>,
}

/// What a rule does besides logging.
struct Action {
    command: Option<Arc<[String]>>,
    min_interval_ns: u64,
    /// When its command was last queued (monotonic ns).
    last_run_ns: Option<u64>,
}

/// Where an event's host details come from.
pub struct HostDetails<'a> {
    /// Current address.
    pub address: IpAddr,
    /// Role (`gateway`, `isp-edge`...), if any.
    pub role: Option<&'a str>,
}

/// The rules, their actions, and the command worker.
pub struct Alerts {
    evaluator: Evaluator,
    configs: Vec<AlertConfig>,
    actions: Vec<Action>,
    /// Whether the firing of `(rule name, host)` queued its command (its resolved is
    /// queued too).
    notified: HashMap<(String, Option<HostKey>), bool>,
    /// Resolved events whose firing was queued, waiting for room in the queue.
    waiting: Vec<Job>,
    events: Vec<AlertEvent>,
    stats: Arc<AlertStats>,
    queue: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    /// Set at shutdown: the worker's deadline (drop what is left after it).
    drain_until: Arc<std::sync::Mutex<Option<Instant>>>,
    /// How long the shutdown runs queued commands ([`SHUTDOWN_DRAIN`]).
    drain: Duration,
}

impl Alerts {
    /// Alerts of validated rules (`configs` and their `rules`, in the same order).
    pub fn new(configs: &[AlertConfig], rules: Vec<Rule>) -> Alerts {
        let mut a = Alerts {
            evaluator: Evaluator::new(Vec::new()),
            configs: Vec::new(),
            actions: Vec::new(),
            notified: HashMap::new(),
            events: Vec::with_capacity(16),
            stats: Arc::new(AlertStats::default()),
            waiting: Vec::new(),
            queue: None,
            worker: None,
            drain_until: Arc::new(std::sync::Mutex::new(None)),
            drain: SHUTDOWN_DRAIN,
        };
        a.set_rules(configs, rules);
        a
    }

    /// The counters (for the exporter).
    pub fn stats(&self) -> Arc<AlertStats> {
        Arc::clone(&self.stats)
    }

    /// The configured rules.
    pub fn configs(&self) -> &[AlertConfig] {
        &self.configs
    }

    /// Replaces the rules (SIGHUP): unchanged rules keep their state (a firing alert does
    /// not fire again); counters and the rate limit follow a rule's name.
    pub fn set_rules(&mut self, configs: &[AlertConfig], rules: Vec<Rule>) {
        let old_stats = &self.stats.rules;
        let stats = AlertStats {
            rules: configs
                .iter()
                .map(|c| {
                    let s = RuleStats {
                        name: c.name.clone(),
                        ..RuleStats::default()
                    };
                    if let Some(o) = old_stats.iter().find(|o| o.name == c.name) {
                        for (n, o) in [
                            (&s.firing, &o.firing),
                            (&s.resolved, &o.resolved),
                            (&s.suppressed, &o.suppressed),
                            (&s.failures, &o.failures),
                        ] {
                            n.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
                        }
                    }
                    s
                })
                .collect(),
            dropped: AtomicU64::new(self.stats.dropped.load(Ordering::Relaxed)),
        };
        self.stats = Arc::new(stats);
        self.actions = configs
            .iter()
            .map(|c| Action {
                command: c.command.clone().map(Arc::from),
                min_interval_ns: (c.min_interval_s() * 1e9) as u64,
                last_run_ns: self
                    .configs
                    .iter()
                    .position(|o| o.name == c.name)
                    .and_then(|j| self.actions.get(j))
                    .and_then(|a| a.last_run_ns),
            })
            .collect();
        self.notified
            .retain(|(name, _), _| configs.iter().any(|c| &c.name == name));
        self.configs = configs.to_vec();
        self.evaluator.set_rules(rules);
        if self.queue.is_none() && self.actions.iter().any(|a| a.command.is_some()) {
            let (tx, rx) = sync_channel(QUEUE_LEN);
            let drain_until = Arc::clone(&self.drain_until);
            match std::thread::Builder::new()
                .name("zzping-alerts".into())
                .spawn(move || worker(rx, drain_until))
            {
                Ok(h) => {
                    self.queue = Some(tx);
                    self.worker = Some(h);
                }
                Err(e) => {
                    warn!("alerts: cannot start the command thread ({e}); commands will not run")
                }
            }
        }
    }

    /// A host starts (`role`: its role, if any; `period_us`: its frames' period).
    pub fn add_host(&mut self, key: HostKey, label: &str, role: Option<&str>, period_us: u32) {
        self.evaluator
            .add_host_with_role(key, label, role, period_us);
    }

    /// A host is removed at `at_us` (wall clock; `now_ns`: the loop's monotonic time):
    /// its firing alerts end with a resolved event whose reason is `host-removed` (the
    /// command that heard the firing hears the end), then the host is forgotten.
    pub fn remove_host<'a>(
        &mut self,
        key: HostKey,
        now_ns: u64,
        at_us: u64,
        details: impl Fn(HostKey) -> Option<HostDetails<'a>>,
    ) {
        self.handle(now_ns, &details, |ev, out| {
            ev.unwatch_host(key, Unwatched::HostRemoved, at_us, out)
        });
        self.evaluator.remove_host(key);
        self.notified.retain(|(_, h), _| *h != Some(key));
    }

    /// The daemon stops watching, at `at_us`: every firing alert ends with a resolved
    /// event whose reason is `stopped` (before [`Alerts::stop`], which runs the queued
    /// commands).
    pub fn unwatch_all<'a>(
        &mut self,
        now_ns: u64,
        at_us: u64,
        details: impl Fn(HostKey) -> Option<HostDetails<'a>>,
    ) {
        self.handle(now_ns, &details, |ev, out| {
            ev.unwatch_all(Unwatched::Stopped, at_us, out)
        });
    }

    /// A final frame of `host`; `now_ns` is the loop's monotonic time, `details` finds a
    /// host's address and role for the command's environment. Allocates only when an
    /// event happens.
    pub fn on_frame<'a>(
        &mut self,
        host: HostKey,
        frame: &Frame,
        now_ns: u64,
        details: impl Fn(HostKey) -> Option<HostDetails<'a>>,
    ) {
        if !self.waiting.is_empty() {
            self.queue_waiting();
        }
        self.handle(now_ns, &details, |ev, out| ev.on_frame(host, frame, out));
    }

    /// Lets `find` push the evaluator's events into the reused buffer, then logs,
    /// counts and queues each (allocates only when an event happens).
    fn handle<'a>(
        &mut self,
        now_ns: u64,
        details: &impl Fn(HostKey) -> Option<HostDetails<'a>>,
        find: impl FnOnce(&mut Evaluator, &mut Vec<AlertEvent>),
    ) {
        let mut events = std::mem::take(&mut self.events);
        find(&mut self.evaluator, &mut events);
        for e in &events {
            self.on_event(e, now_ns, details);
        }
        events.clear();
        self.events = events;
    }

    fn on_event<'a>(
        &mut self,
        e: &AlertEvent,
        now_ns: u64,
        details: &impl Fn(HostKey) -> Option<HostDetails<'a>>,
    ) {
        let text = self.evaluator.describe(e);
        let Some(cfg) = self.configs.get(e.rule) else {
            return;
        };
        if let Some(s) = self.stats.rules.get(e.rule) {
            match e.state {
                AlertState::Firing => s.firing.fetch_add(1, Ordering::Relaxed),
                AlertState::Resolved => s.resolved.fetch_add(1, Ordering::Relaxed),
            };
        }
        match e.state {
            AlertState::Firing => warn!("{text}"),
            AlertState::Resolved => info!("{text}"),
        }
        let action = &mut self.actions[e.rule];
        let Some(argv) = action.command.clone() else {
            return;
        };
        let key = (cfg.name.clone(), e.host);
        let run = match e.state {
            AlertState::Firing => {
                let recent = action
                    .last_run_ns
                    .filter(|&t| now_ns.saturating_sub(t) < action.min_interval_ns);
                // Until it is queued (below), its resolved is not to be sent.
                self.notified.insert(key.clone(), false);
                if let Some(t) = recent {
                    let n = self.stats.rules[e.rule]
                        .suppressed
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    info!(
                        "alert {}: command not run: it ran {:.1} s ago (min_interval_s {}); {n} \
                         events of this rule suppressed so far",
                        cfg.name,
                        now_ns.saturating_sub(t) as f64 / 1e9,
                        cfg.min_interval_s()
                    );
                }
                recent.is_none()
            }
            AlertState::Resolved => {
                let ran = self.notified.remove(&key).unwrap_or(false);
                if !ran {
                    self.stats.rules[e.rule]
                        .suppressed
                        .fetch_add(1, Ordering::Relaxed);
                    info!(
                        "alert {}: command not run for the resolved event: its firing was \
                         suppressed",
                        cfg.name
                    );
                }
                ran
            }
        };
        if !run {
            return;
        }
        let (host, address, role) = match e.host {
            None => (config::ALL_HOSTS.to_owned(), String::new(), String::new()),
            Some(k) => {
                let d = details(k);
                (
                    self.evaluator.label(k).unwrap_or_default().to_owned(),
                    d.as_ref()
                        .map(|d| d.address.to_string())
                        .unwrap_or_default(),
                    d.and_then(|d| d.role.map(str::to_owned))
                        .unwrap_or_default(),
                )
            }
        };
        let when = self.evaluator.rules()[e.rule].when;
        let env = vec![
            ("ZZPING_ALERT_NAME", cfg.name.clone()),
            ("ZZPING_ALERT_STATE", e.state.name().to_owned()),
            ("ZZPING_ALERT_WHEN", when.kind().to_owned()),
            ("ZZPING_ALERT_HOST", host),
            ("ZZPING_ALERT_ADDRESS", address),
            ("ZZPING_ALERT_ROLE", role),
            ("ZZPING_ALERT_VALUE", format_value(e.value)),
            ("ZZPING_ALERT_THRESHOLD", format_value(e.threshold)),
            (
                "ZZPING_ALERT_SINCE",
                zzping_lib::time::rfc3339_us(e.since_us),
            ),
            ("ZZPING_ALERT_TEXT", text),
            (
                "ZZPING_ALERT_REASON",
                e.unwatched
                    .map_or(REASON_CONDITION, Unwatched::name)
                    .to_owned(),
            ),
        ];
        let job = Job {
            rule: e.rule,
            argv,
            env,
            stats: Arc::clone(&self.stats),
        };
        let Some(q) = &self.queue else {
            self.note_dropped(&cfg.name.clone(), "the command thread is not running");
            return;
        };
        match (q.try_send(job), e.state) {
            (Ok(()), AlertState::Firing) => {
                self.actions[e.rule].last_run_ns = Some(now_ns);
                self.notified.insert(key, true);
            }
            (Ok(()), AlertState::Resolved) => {}
            // Its firing was queued: it waits for room.
            (Err(TrySendError::Full(job)), AlertState::Resolved) => self.waiting.push(job),
            (Err(_), _) => {
                self.note_dropped(
                    &cfg.name.clone(),
                    &format!("{QUEUE_LEN} commands already waiting"),
                );
            }
        }
    }

    fn note_dropped(&self, rule: &str, why: &str) {
        let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        warn!("alert {rule}: command dropped: {why} ({n} dropped so far)");
    }

    /// Queues the waiting resolved events, oldest first, as far as there is room.
    fn queue_waiting(&mut self) {
        let Some(q) = &self.queue else { return };
        let mut left = Vec::new();
        for job in self.waiting.drain(..) {
            if !left.is_empty() {
                left.push(job);
                continue;
            }
            match q.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => left.push(job),
            }
        }
        self.waiting = left;
    }

    /// Stops the worker once it has run what is queued (the waiting resolved events
    /// included), for at most [`SHUTDOWN_DRAIN`]: a command still running then is killed,
    /// the rest are dropped (counted and logged). Returns at once without commands.
    pub fn stop(&mut self) {
        let Some(h) = self.worker.take() else {
            self.queue = None;
            return;
        };
        if let Ok(mut d) = self.drain_until.lock() {
            *d = Some(Instant::now() + self.drain);
        }
        if let Some(q) = self.queue.take() {
            for job in self.waiting.drain(..) {
                // Blocks while the worker makes room; it drops what it takes after the
                // deadline, so this ends too.
                if q.send(job).is_err() {
                    break;
                }
            }
        }
        let dropped0 = self.stats.dropped.load(Ordering::Relaxed);
        if h.join().is_err() {
            warn!("alerts: the command thread panicked");
        }
        let left = self.stats.dropped.load(Ordering::Relaxed) - dropped0;
        if left > 0 {
            warn!(
                "alerts: {left} commands not run: still waiting at the end of stopping ({} s at \
                 most)",
                format_value(self.drain.as_secs_f64())
            );
        }
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A value for the environment: at most 3 decimals, no trailing zeros.
fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// The command thread: runs each job, one at a time; once the shutdown's deadline is
/// set, each command only until it, and none after it.
fn worker(rx: Receiver<Job>, drain_until: Arc<std::sync::Mutex<Option<Instant>>>) {
    // Per rule name: the command is failing (its failure was logged).
    let mut failing: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Ok(job) = rx.recv() {
        let Some(stats) = job.stats.rules.get(job.rule) else {
            continue;
        };
        let deadline = drain_until.lock().ok().and_then(|d| *d);
        let limit = match deadline {
            None => COMMAND_TIMEOUT,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(COMMAND_TIMEOUT),
                _ => {
                    job.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let name = stats.name.clone();
        match run(&job, limit) {
            Ok(()) => {
                if failing.remove(&name) {
                    info!("alert {name}: command works again");
                }
            }
            Err(why) => {
                let n = stats.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if !failing.contains(&name) {
                    warn!(
                        "alert {name}: command {:?} failed: {why} (further failures are \
                         counted, not logged, until it works again; {n} so far)",
                        job.argv[0]
                    );
                    failing.insert(name);
                }
            }
        }
    }
}

/// Runs one command to its end (or kills it after `limit`, [`COMMAND_TIMEOUT`] but at
/// shutdown).
fn run(job: &Job, limit: Duration) -> Result<(), String> {
    let mut cmd = Command::new(&job.argv[0]);
    cmd.args(&job.argv[1..]).stdin(Stdio::null());
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    match wait_bounded(&mut child, limit) {
        Ok(Some(st)) if st.success() => Ok(()),
        Ok(Some(st)) => Err(format!("exited with {st}")),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "still running after {} s: killed",
                format_value(limit.as_secs_f64())
            ))
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("waiting for it: {e}"))
        }
    }
}

/// Waits for `child` at most `limit`: `None` when it is still running. Sleeps on a pidfd
/// (readable when the child exits); without one, checks every [`CHILD_POLL`].
fn wait_bounded(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).unwrap_or(-1);
    loop {
        if let Some(st) = child.try_wait()? {
            if fd >= 0 {
                // SAFETY: our own fd, closed once.
                unsafe { libc::close(fd) };
            }
            return Ok(Some(st));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if fd >= 0 {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
            return Ok(None);
        }
        if fd >= 0 {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one pollfd we own; EINTR just loops.
            unsafe { libc::poll(&mut p, 1, ms) };
        } else {
            std::thread::sleep(CHILD_POLL.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zzping_lib::alert::{HostMatch, When};

    #[test]
    fn values_are_short() {
        assert_eq!(format_value(2.5), "2.5");
        assert_eq!(format_value(10.0), "10");
        assert_eq!(format_value(0.12345), "0.123");
        assert_eq!(format_value(f64::NAN), "");
    }

    #[test]
    fn a_slow_command_is_killed_at_its_bound() {
        let job = Job {
            rule: 0,
            argv: Arc::from(vec!["/bin/sleep".to_owned(), "30".to_owned()]),
            env: Vec::new(),
            stats: Arc::new(AlertStats::default()),
        };
        let mut child = Command::new(&job.argv[0])
            .args(&job.argv[1..])
            .spawn()
            .unwrap();
        // The bound is the pidfd's poll timeout: the sleep cannot have ended by then.
        assert!(
            wait_bounded(&mut child, Duration::from_millis(200))
                .unwrap()
                .is_none()
        );
        child.kill().unwrap();
        assert!(
            wait_bounded(&mut child, Duration::from_secs(30))
                .unwrap()
                .is_some()
        );
        let mut ok = Command::new("/bin/true").spawn().unwrap();
        assert!(
            wait_bounded(&mut ok, Duration::from_secs(30))
                .unwrap()
                .unwrap()
                .success()
        );
        let bad = Job {
            argv: Arc::from(vec!["/bin/false".to_owned()]),
            ..job
        };
        assert!(run(&bad, COMMAND_TIMEOUT).unwrap_err().contains("exited"));
        let missing = Job {
            argv: Arc::from(vec!["/nonexistent/zzping-alert".to_owned()]),
            ..bad
        };
        assert!(
            run(&missing, COMMAND_TIMEOUT)
                .unwrap_err()
                .starts_with("cannot start")
        );
    }

    /// Feeds host 1 one 100 ms frame of one request at a time, answered (`ok`) or
    /// lost, at the monotonic time `now_ns`.
    fn feeder() -> impl FnMut(&mut Alerts, bool, u64) {
        let mut feed = host_feeder(1);
        move |a: &mut Alerts, ok: bool, now_ns: u64| feed(a, ok, now_ns)
    }

    /// [`feeder`] for host `key`.
    fn host_feeder(key: HostKey) -> impl FnMut(&mut Alerts, bool, u64) {
        let mut t = 1_700_000_000_000_000u64;
        move |a: &mut Alerts, ok: bool, now_ns: u64| {
            let mut f = Frame::new(t, 100_000);
            f.sent = 1;
            if ok {
                f.rtts_us.push(1000);
            } else {
                f.lost = 1;
            }
            t += 100_000;
            a.on_frame(key, &f, now_ns, |_| None);
        }
    }

    /// An outage rule of 0.2 s on each host running `command`, without a rate limit.
    fn down_rule(command: &[&str]) -> (AlertConfig, Rule) {
        let cfg = outage_cfg("down", 0.2, command, 0.0);
        let rule = cfg.rule(0).unwrap();
        (cfg, rule)
    }

    /// An `outage` rule of `for_s` on each host, running `command`.
    fn outage_cfg(name: &str, for_s: f64, command: &[&str], min_interval_s: f64) -> AlertConfig {
        AlertConfig {
            name: name.into(),
            when: "outage".into(),
            host: None,
            role: None,
            for_s: Some(for_s),
            above_pct: None,
            above_ms: None,
            window_s: None,
            clear_s: None,
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            min_interval_s: Some(min_interval_s),
        }
    }

    fn state_and_host(job: &Job) -> (String, String) {
        (
            env_of(job, "ZZPING_ALERT_STATE"),
            env_of(job, "ZZPING_ALERT_HOST"),
        )
    }

    /// Alerts of rule `cfg` whose commands go to a queue of `len` the test reads (the
    /// returned receiver) instead of the worker.
    fn queued(cfg: &AlertConfig, len: usize) -> (Alerts, Receiver<Job>) {
        let rule = cfg.rule(0).unwrap();
        let mut a = Alerts::new(std::slice::from_ref(cfg), vec![rule]);
        a.stop();
        let (tx, rx) = sync_channel(len);
        a.queue = Some(tx);
        (a, rx)
    }

    #[test]
    fn a_resolved_is_queued_exactly_when_its_firing_was() {
        // Our own queue of one, read by the test instead of the worker.
        let (mut a, rx) = queued(&down_rule(&["/bin/true"]).0, 1);
        a.add_host(1, "a", None, 100_000);
        a.add_host(2, "b", None, 100_000);
        let (mut fa, mut fb) = (host_feeder(1), host_feeder(2));
        // a fires (queued), then b fires with the queue full: dropped.
        for i in 0..3 {
            fa(&mut a, false, i);
        }
        for i in 0..3 {
            fb(&mut a, false, i);
        }
        assert_eq!(a.stats.dropped.load(Ordering::Relaxed), 1);
        // Both clear; the queue is still full: a's resolved waits (its firing was
        // queued), b's is not sent (its firing was not).
        for i in 3..6 {
            fa(&mut a, true, i);
            fb(&mut a, true, i);
        }
        let s = &a.stats.rules[0];
        assert_eq!(s.resolved.load(Ordering::Relaxed), 2);
        assert_eq!(s.suppressed.load(Ordering::Relaxed), 1);
        assert_eq!(a.waiting.len(), 1);
        assert_eq!(a.stats.dropped.load(Ordering::Relaxed), 1);
        // Room again: the next frame queues it.
        let first = rx.try_recv().unwrap();
        assert_eq!(state_and_host(&first), ("firing".into(), "a".into()));
        fa(&mut a, true, 6);
        let second = rx.try_recv().unwrap();
        assert_eq!(state_and_host(&second), ("resolved".into(), "a".into()));
        assert!(rx.try_recv().is_err());
        assert!(a.waiting.is_empty());
        a.queue = None;
    }

    /// `name`'s value in the job's environment.
    fn env_of(job: &Job, name: &str) -> String {
        job.env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not set"))
    }

    #[test]
    fn a_firing_alert_ends_when_its_host_is_removed_or_the_daemon_stops() {
        let (mut a, rx) = queued(&down_rule(&["/bin/true"]).0, 8);
        for (k, label) in [(1, "a"), (2, "b"), (3, "c")] {
            a.add_host(k, label, None, 100_000);
        }
        let (mut fa, mut fb, mut fc) = (host_feeder(1), host_feeder(2), host_feeder(3));
        // a and b down (both fire); c answers.
        for i in 0..3 {
            fa(&mut a, false, i);
            fb(&mut a, false, i);
            fc(&mut a, true, i);
        }
        for host in ["a", "b"] {
            let job = rx.try_recv().unwrap();
            assert_eq!(state_and_host(&job), ("firing".into(), host.into()));
            assert_eq!(env_of(&job, "ZZPING_ALERT_REASON"), REASON_CONDITION);
        }
        // a is removed while down: its command hears the end, and why.
        let at_us = 1_700_000_000_300_000;
        a.remove_host(1, 3, at_us, |_| None);
        let job = rx.try_recv().unwrap();
        assert_eq!(state_and_host(&job), ("resolved".into(), "a".into()));
        assert_eq!(env_of(&job, "ZZPING_ALERT_REASON"), "host-removed");
        assert_eq!(
            env_of(&job, "ZZPING_ALERT_SINCE"),
            zzping_lib::time::rfc3339_us(at_us)
        );
        assert!(
            env_of(&job, "ZZPING_ALERT_TEXT").contains("no longer watched"),
            "{:?}",
            job.env
        );
        // c, not firing, is removed without a word.
        a.remove_host(3, 3, at_us, |_| None);
        assert!(rx.try_recv().is_err());
        // The daemon stops with b still down: b's alert ends too, once.
        a.unwatch_all(4, at_us, |_| None);
        let job = rx.try_recv().unwrap();
        assert_eq!(state_and_host(&job), ("resolved".into(), "b".into()));
        assert_eq!(env_of(&job, "ZZPING_ALERT_REASON"), "stopped");
        a.unwatch_all(5, at_us, |_| None);
        assert!(rx.try_recv().is_err());
        assert_eq!(a.stats.rules[0].resolved.load(Ordering::Relaxed), 2);
        a.queue = None;
    }

    #[test]
    fn an_unwatched_end_is_not_sent_when_its_firing_was_suppressed() {
        // A rate limit of an hour: b's firing is suppressed after a's.
        let (mut a, rx) = queued(&outage_cfg("down", 0.2, &["/bin/true"], 3600.0), 8);
        a.add_host(1, "a", None, 100_000);
        a.add_host(2, "b", None, 100_000);
        let (mut fa, mut fb) = (host_feeder(1), host_feeder(2));
        for i in 0..3 {
            fa(&mut a, false, i);
            fb(&mut a, false, i);
        }
        assert_eq!(state_and_host(&rx.try_recv().unwrap()).1, "a");
        assert!(rx.try_recv().is_err());
        a.unwatch_all(4, 1_700_000_000_300_000, |_| None);
        // a's end is sent (its firing was), b's is not (its firing never was).
        let job = rx.try_recv().unwrap();
        assert_eq!(state_and_host(&job), ("resolved".into(), "a".into()));
        assert!(rx.try_recv().is_err());
        a.queue = None;
    }

    #[test]
    fn stopping_runs_the_queued_commands_within_the_drain_bound() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events");
        // Each event appends its state to a file (a shell: the daemon runs none, the
        // test names one).
        let script = format!("echo \"$ZZPING_ALERT_STATE\" >> {}", log.display());
        let (cfg, rule) = down_rule(&["/bin/sh", "-c", &script]);
        let mut a = Alerts::new(std::slice::from_ref(&cfg), vec![rule]);
        a.add_host(1, "a", None, 100_000);
        let mut feed = feeder();
        // Firing and resolved, then firing again: three commands queued, and the daemon
        // stops at once.
        for (i, ok) in [false, false, false, true, true, true, false, false, false]
            .into_iter()
            .enumerate()
        {
            feed(&mut a, ok, i as u64);
        }
        a.stop();
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got, "firing\nresolved\nfiring\n");
        assert_eq!(a.stats.dropped.load(Ordering::Relaxed), 0);

        // Commands that would outlast the bound: the running one is killed at it, the
        // rest dropped, and stopping does not wait for them.
        let (cfg, rule) = down_rule(&["/bin/sleep", "30"]);
        let mut a = Alerts::new(std::slice::from_ref(&cfg), vec![rule]);
        a.drain = Duration::from_millis(300);
        a.add_host(1, "a", None, 100_000);
        let mut feed = feeder();
        for (i, ok) in [false, false, false, true, true, true, false, false, false]
            .into_iter()
            .enumerate()
        {
            feed(&mut a, ok, i as u64);
        }
        let t0 = Instant::now();
        a.stop();
        // Had any sleep run to its end, stopping would have taken 30 s.
        assert!(t0.elapsed() < Duration::from_secs(30));
        let s = &a.stats.rules[0];
        let (dropped, killed) = (
            a.stats.dropped.load(Ordering::Relaxed),
            s.failures.load(Ordering::Relaxed),
        );
        // The first may have been started (and killed at the deadline) or, if the
        // worker ran late, dropped like the others.
        assert!(killed <= 1 && dropped + killed == 3, "{dropped} {killed}");
    }

    #[test]
    fn firing_within_min_interval_is_suppressed_with_its_resolved() {
        // /bin/true: the worker runs it; this test counts events, not runs.
        let cfg = outage_cfg("down", 0.2, &["/bin/true"], 60.0);
        let rule = Rule::new("down", When::Outage { for_us: 200_000 }, HostMatch::Each);
        let mut a = Alerts::new(std::slice::from_ref(&cfg), vec![rule]);
        a.add_host(1, "gw", None, 100_000);
        let mut feed = feeder();
        // Two outages 1 s apart (monotonic), within min_interval_s.
        for (i, ok) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            feed(&mut a, ok, i as u64 * 100_000_000);
        }
        for (i, ok) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            feed(&mut a, ok, 1_000_000_000 + i as u64 * 100_000_000);
        }
        let count = |a: &Alerts, pick: fn(&RuleStats) -> &AtomicU64| {
            pick(&a.stats.rules[0]).load(Ordering::Relaxed)
        };
        assert_eq!(count(&a, |s| &s.firing), 2);
        assert_eq!(count(&a, |s| &s.resolved), 2);
        // The second firing and its resolved.
        assert_eq!(count(&a, |s| &s.suppressed), 2);
        // After min_interval_s it runs again.
        for (i, ok) in [false, false, false].into_iter().enumerate() {
            feed(&mut a, ok, 70_000_000_000 + i as u64 * 100_000_000);
        }
        assert_eq!(count(&a, |s| &s.firing), 3);
        assert_eq!(count(&a, |s| &s.suppressed), 2);
        assert!(a.notified[&("down".to_owned(), Some(1))]);
        a.stop();
    }

    #[test]
    fn new_rules_keep_the_state_counters_and_rate_limit_of_unchanged_ones() {
        let cfg = |name: &str, for_s: f64| outage_cfg(name, for_s, &["/bin/true"], 60.0);
        let set = |a: &mut Alerts, cs: &[AlertConfig]| {
            a.set_rules(cs, config::rules(cs).unwrap());
        };
        let mut a = Alerts::new(&[], Vec::new());
        set(&mut a, &[cfg("down", 0.2)]);
        a.add_host(1, "gw", None, 100_000);
        let mut feed = feeder();
        let get = |a: &Alerts, name: &str, pick: fn(&RuleStats) -> &AtomicU64| {
            let r = a.stats.rules.iter().find(|r| r.name == name).unwrap();
            pick(r).load(Ordering::Relaxed)
        };
        for i in 0..3 {
            feed(&mut a, false, i * 100_000_000);
        }
        assert_eq!(get(&a, "down", |r| &r.firing), 1);
        // A reload adds a rule and keeps "down" as it is (moved to the second place).
        set(&mut a, &[cfg("slow", 0.5), cfg("down", 0.2)]);
        for i in 3..8 {
            feed(&mut a, false, i * 100_000_000);
        }
        // "down" did not fire again; "slow" started over and fired.
        assert_eq!(get(&a, "down", |r| &r.firing), 1);
        assert_eq!(get(&a, "slow", |r| &r.firing), 1);
        // "down"'s firing ran: its resolved runs; then its next firing, within
        // min_interval_s of the first run (kept across the reload), is suppressed.
        for i in 8..11 {
            feed(&mut a, true, i * 100_000_000);
        }
        assert_eq!(get(&a, "down", |r| &r.resolved), 1);
        assert_eq!(get(&a, "down", |r| &r.suppressed), 0);
        for i in 11..14 {
            feed(&mut a, false, i * 100_000_000);
        }
        assert_eq!(get(&a, "down", |r| &r.firing), 2);
        assert_eq!(get(&a, "down", |r| &r.suppressed), 1);
        // A changed rule's state starts over; its counters follow its name.
        set(&mut a, &[cfg("down", 0.3)]);
        assert_eq!(get(&a, "down", |r| &r.firing), 2);
        assert_eq!(a.stats.rules.len(), 1);
        a.stop();
    }
}
