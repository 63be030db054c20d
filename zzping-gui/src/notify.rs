//! Desktop notifications in live mode: the daemons' frames, as they arrive, go through
//! the same rule evaluator as the daemon's `[[alert]]` rules ([`zzping_lib::alert`]),
//! with two rules: a host failed every request for `--notify-after` seconds (default
//! [`DEFAULT_AFTER_S`]), and every host did at once. Each event runs the notification
//! command (default [`DEFAULT_COMMAND`], the freedesktop `notify-send`; `--notify-command`
//! names another, `--no-notify` turns it off) as `COMMAND SUMMARY BODY`, without a shell,
//! on a thread of its own, one at a time and in order (the window never waits; a
//! command still running after [`COMMAND_TIMEOUT`] is killed).
//!
//! Rate limit: a rule notifies a firing at most once per [`MIN_INTERVAL_US`] of frame
//! time; a suppressed firing's resolved event is suppressed too, so notifications come in
//! pairs. Events about frames more than [`MAX_AGE_US`] old (the history a daemon sends on
//! subscribing) are not notified: the timeline already shows them.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use zzping_lib::alert::{AlertEvent, AlertState, Evaluator, HostKey, HostMatch, Rule, When};
use zzping_lib::codec::QFrame;
use zzping_lib::frame::Counts;
use zzping_lib::live::HostMeta;

use crate::app::App;

/// The notification command by default (libnotify's, on every freedesktop desktop).
pub const DEFAULT_COMMAND: &str = "notify-send";
/// Seconds of failed requests before a host's outage is notified, by default.
pub const DEFAULT_AFTER_S: f64 = 5.0;
/// A rule's firings are notified at most once per this much frame time, µs.
pub const MIN_INTERVAL_US: u64 = 60_000_000;
/// Events about frames older than this (history) are not notified, µs.
pub const MAX_AGE_US: u64 = 60_000_000;
/// A notification command still running after this is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the notification thread checks its command.
const CHILD_POLL: Duration = Duration::from_millis(50);
/// Notifications waiting to run at most; more are dropped (and logged).
const QUEUE_LEN: usize = 16;
/// The rules' names.
const HOST_DOWN: &str = "host-down";
const ALL_DOWN: &str = "all-down";

/// How the viewer notifies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifySettings {
    /// The command (`None`: no notifications).
    pub command: Option<String>,
    /// Seconds of outage before a notification.
    pub after_s: f64,
}

impl NotifySettings {
    /// The settings of the command line: on with [`DEFAULT_COMMAND`] unless `off`.
    pub fn from_cli(off: bool, command: Option<String>, after_s: Option<f64>) -> Self {
        NotifySettings {
            command: (!off).then(|| command.unwrap_or_else(|| DEFAULT_COMMAND.to_owned())),
            after_s: after_s.unwrap_or(DEFAULT_AFTER_S),
        }
    }
}

/// The evaluator of live frames and the notifications it sends.
#[derive(Debug, Default)]
pub struct Notifier {
    settings: NotifySettings,
    evaluator: Evaluator,
    /// `(daemon, host)` to the evaluator's key.
    keys: HashMap<(usize, u32), HostKey>,
    /// Frame time of each rule's last notified firing.
    last_us: Vec<Option<u64>>,
    /// Alerts whose firing was notified: `(rule, host)`.
    notified: HashSet<(usize, Option<HostKey>)>,
    events: Vec<AlertEvent>,
    /// The notification thread's queue (started with the first notification).
    queue: Option<SyncSender<Job>>,
}

impl Notifier {
    /// A notifier with `settings`.
    pub fn new(settings: NotifySettings) -> Notifier {
        let for_us = (settings.after_s.max(0.0) * 1e6) as u64;
        let rules = vec![
            Rule::new(HOST_DOWN, When::Outage { for_us }, HostMatch::Each),
            Rule::new(ALL_DOWN, When::Outage { for_us }, HostMatch::All),
        ];
        Notifier {
            last_us: vec![None; rules.len()],
            evaluator: Evaluator::new(rules),
            settings,
            ..Notifier::default()
        }
    }

    /// A host of a daemon (again: its state starts over).
    pub fn add_host(&mut self, daemon: usize, host: u32, meta: &HostMeta) {
        if self.settings.command.is_none() {
            return;
        }
        let next = self.keys.len() as HostKey;
        let key = *self.keys.entry((daemon, host)).or_insert(next);
        self.evaluator.add_host(key, &meta.label, meta.period_us);
    }

    /// A host no longer streamed.
    pub fn remove_host(&mut self, daemon: usize, host: u32) {
        if let Some(k) = self.keys.get(&(daemon, host)) {
            self.evaluator.remove_host(*k);
        }
    }

    /// A frame of a daemon's host, at wall-clock `now_us`.
    pub fn on_frame(&mut self, daemon: usize, host: u32, frame: &QFrame, now_us: u64) {
        let Some(&key) = self.keys.get(&(daemon, host)) else {
            return;
        };
        let counts = Counts {
            sent: frame.sent,
            received: frame.received(),
            lost: frame.lost,
            duplicates: frame.duplicates,
            late: frame.late,
            errors: frame.errors,
        };
        // Outage rules only: no RTT needed.
        self.evaluator.on_counts(
            key,
            frame.start_us,
            frame.period_us,
            &counts,
            std::iter::empty(),
            &mut self.events,
        );
        for e in std::mem::take(&mut self.events) {
            self.on_event(&e, now_us);
        }
    }

    fn on_event(&mut self, e: &AlertEvent, now_us: u64) {
        let text = self.evaluator.describe(e);
        tracing::info!("{text}");
        let id = (e.rule, e.host);
        let notify = match e.state {
            AlertState::Firing => {
                let old = e.at_us.saturating_add(MAX_AGE_US) < now_us;
                let recent = self.last_us[e.rule]
                    .is_some_and(|t| e.at_us.saturating_sub(t) < MIN_INTERVAL_US);
                let go = !old && !recent;
                if go {
                    self.last_us[e.rule] = Some(e.at_us);
                    self.notified.insert(id);
                }
                go
            }
            AlertState::Resolved => self.notified.remove(&id),
        };
        if !notify {
            return;
        }
        let who = match e.host {
            Some(k) => self.evaluator.label(k).unwrap_or("?").to_owned(),
            None => "all hosts".to_owned(),
        };
        let summary = match e.state {
            AlertState::Firing => format!("zzping: {who} down"),
            AlertState::Resolved => format!("zzping: {who} back"),
        };
        self.send(summary, text);
    }

    fn send(&mut self, summary: String, body: String) {
        let Some(cmd) = self.settings.command.clone() else {
            return;
        };
        if self.queue.is_none() {
            let (tx, rx) = sync_channel(QUEUE_LEN);
            let command = cmd.clone();
            match std::thread::Builder::new()
                .name("notify".into())
                .spawn(move || worker(&command, rx))
            {
                Ok(_) => self.queue = Some(tx),
                Err(e) => {
                    tracing::warn!("desktop notification: no thread to run {cmd:?}: {e}");
                    return;
                }
            }
        }
        let Some(q) = &self.queue else { return };
        if let Err(TrySendError::Full(_)) = q.try_send(Job::Notify(summary, body)) {
            tracing::warn!("desktop notification dropped: {QUEUE_LEN} already waiting");
        }
    }

    /// Waits until every notification command queued so far has ended (or was killed).
    pub fn wait_sent(&mut self) {
        let Some(q) = &self.queue else { return };
        let (tx, rx) = sync_channel(1);
        if q.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// What the notification thread is asked.
enum Job {
    /// Run the command with this summary and body.
    Notify(String, String),
    /// Say when every job before this one is done.
    Flush(SyncSender<()>),
}

/// The notification thread: runs the command for each job, one at a time and in order
/// (a "back" never overtakes its "down"); logs the first failure to start.
fn worker(cmd: &str, rx: Receiver<Job>) {
    let mut failed = false;
    for job in rx {
        let (summary, body) = match job {
            Job::Notify(s, b) => (s, b),
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let child = Command::new(cmd)
            .arg(&summary)
            .arg(&body)
            .stdin(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => {
                failed = false;
                c
            }
            Err(e) => {
                if !failed {
                    tracing::warn!(
                        "desktop notification: cannot run {cmd:?}: {e} (install libnotify-bin \
                         for notify-send, or see --notify-command / --no-notify)"
                    );
                    failed = true;
                }
                continue;
            }
        };
        let end = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    if !st.success() {
                        tracing::warn!("desktop notification: {cmd:?} exited with {st}");
                    }
                    break;
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(CHILD_POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    tracing::warn!(
                        "desktop notification: {cmd:?} killed after {COMMAND_TIMEOUT:?}"
                    );
                    break;
                }
            }
        }
    }
}

impl App {
    /// Waits until every desktop notification sent so far has ended (tests).
    pub fn wait_notifications(&mut self) {
        self.notifier.wait_sent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_turns_notifications_on_by_default() {
        let s = NotifySettings::from_cli(false, None, None);
        assert_eq!(s.command.as_deref(), Some(DEFAULT_COMMAND));
        assert_eq!(s.after_s, DEFAULT_AFTER_S);
        assert_eq!(
            NotifySettings::from_cli(true, Some("x".into()), None).command,
            None
        );
        let s = NotifySettings::from_cli(false, Some("/bin/x".into()), Some(2.0));
        assert_eq!((s.command.as_deref(), s.after_s), (Some("/bin/x"), 2.0));
        // Off by default for embedders (tests, benchmarks).
        assert_eq!(NotifySettings::default().command, None);
    }
}
