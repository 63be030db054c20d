//! SIGHUP: the configuration read again, every change applied or refused by name.
//!
//! Applied at once: the host list (added, removed, re-pointed; a host added with the
//! label of one still retiring starts once that one is gone), rates, `retention_days`
//! (a retention pass runs right away), `flush_interval_s`, `resolve_interval_s`,
//! `metrics_linger_s`, the `[[alert]]` rules (unchanged rules keep their state: a firing
//! alert does not fire again), and the live stream: another address (the new socket is bound
//! before the old one closes; if it cannot be, the old one stays), `off`, or another
//! shared secret (file or contents: a new server on the same socket, so subscriptions end
//! and viewers subscribe again with the new secret). Refused, each named with its old and
//! new value, because they need a restart: `period_ms`, `timeout_ms`, `data_dir`,
//! `socket`, `precision`, `metrics`. The closing log line lists what was applied and,
//! as a warning, what was not; it never says "reloaded" for a change it ignored. A
//! `reload` context event records what was applied.

use std::collections::HashMap;
use std::fmt::Debug;

use tracing::{error, info, warn};

use crate::clock::Now;
use crate::config::{self, Config, HostConfig};
use crate::live::Live;

use super::targets::Target;
use super::timers::Chore;
use super::{Daemon, LIVE, secs_ns};

/// `"name old -> new"` when the value changed.
fn changed<T: PartialEq + Debug>(name: &str, old: &T, new: &T) -> Option<String> {
    (old != new).then(|| format!("{name} {old:?} -> {new:?}"))
}

impl Daemon {
    /// SIGHUP: reads the configuration again, applies what can be applied and names what
    /// needs a restart (see the module docs).
    pub(super) fn reload(&mut self, now: Now) {
        let new = match config::load(&self.cli) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: keeping the current configuration: {e}");
                return;
            }
        };
        let c = &self.cfg;
        let restart: Vec<String> = [
            changed("period_ms", &c.period_ms, &new.period_ms),
            changed("timeout_ms", &c.timeout_ms, &new.timeout_ms),
            changed("data_dir", &c.data_dir, &new.data_dir),
            changed("socket", &c.socket, &new.socket),
            changed("precision", &c.precision, &new.precision),
            changed("metrics", &c.metrics, &new.metrics),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut applied = Vec::new();
        let mut refused = Vec::new();
        if self.reload_hosts(&new, now) {
            applied.push("hosts".to_owned());
        }
        if let Some(what) = self.reload_discovery(&new, now) {
            applied.push(what);
        }
        if new.rate != self.cfg.rate {
            applied.push(format!("rate {} -> {}", self.cfg.rate, new.rate));
            self.cfg.rate = new.rate;
            // Discovered hosts ping at the default rate.
            for t in self.targets.iter_mut().filter(|t| t.discovered.is_some()) {
                t.cfg.rate = Some(new.rate);
                if let Some(id) = t.id {
                    self.engine.set_rate(id, new.rate);
                }
            }
        }
        if let Some(s) = changed(
            "retention_days",
            &self.cfg.retention_days,
            &new.retention_days,
        ) {
            applied.push(s);
            self.cfg.retention_days = new.retention_days;
        }
        if let Some(s) = changed(
            "flush_interval_s",
            &self.cfg.flush_interval_s,
            &new.flush_interval_s,
        ) {
            applied.push(s);
            self.cfg.flush_interval_s = new.flush_interval_s;
            self.timers.arm(
                Chore::Flush,
                now.mono_ns + secs_ns(self.cfg.flush_interval_s),
            );
        }
        if let Some(s) = changed(
            "resolve_interval_s",
            &self.cfg.resolve_interval_s,
            &new.resolve_interval_s,
        ) {
            applied.push(s);
            self.cfg.resolve_interval_s = new.resolve_interval_s;
            self.timers.arm(
                Chore::Resolve,
                now.mono_ns + secs_ns(self.cfg.resolve_interval_s),
            );
        }
        if let Some(s) = changed(
            "metrics_linger_s",
            &self.cfg.metrics_linger_s,
            &new.metrics_linger_s,
        ) {
            applied.push(s);
            self.cfg.metrics_linger_s = new.metrics_linger_s;
        }
        if new.alert != self.cfg.alert {
            applied.push(format!("[[alert]] rules ({})", new.alert.len()));
            self.outputs.set_alert_rules(&new.alert, new.alert_rules());
            self.cfg.alert = new.alert.clone();
        }
        match self.reload_live(&new) {
            Ok(Some(what)) => applied.push(what),
            Ok(None) => {}
            Err(e) => refused.push(e),
        }
        // Retention runs now: with new settings, and as the way to ask for a pass.
        self.timers.arm(Chore::Retention, now.mono_ns);
        let n = self.targets.len();
        let applied = if applied.is_empty() {
            "no change".to_owned()
        } else {
            applied.join(", ")
        };
        self.outputs
            .record(zzping_lib::events::ContextEvent::reload(
                now.real_us(),
                &applied,
            ));
        if restart.is_empty() && refused.is_empty() {
            info!("SIGHUP: configuration reloaded ({applied}); {n} hosts");
        } else {
            let mut not = refused;
            if !restart.is_empty() {
                not.push(format!("needs a restart: {}", restart.join(", ")));
            }
            warn!(
                "SIGHUP: configuration partly reloaded: applied {applied}; NOT applied: {}; {n} hosts",
                not.join("; ")
            );
        }
    }

    /// The host list and per-host rates of `new`; returns whether anything changed.
    fn reload_hosts(&mut self, new: &Config, now: Now) -> bool {
        let mut any = false;
        let new_labels: HashMap<&str, &HostConfig> =
            new.host.iter().map(|h| (h.label(), h)).collect();
        // Remove hosts gone. A label whose target changed keeps its host (and files): it
        // is re-pointed below, like a re-resolution (two writers must never share a
        // host directory).
        let mut keep = Vec::new();
        for t in std::mem::take(&mut self.targets) {
            // Discovered hosts stay while discovery is on (`reload_discovery`).
            if t.discovered.is_some() || new_labels.contains_key(t.cfg.label()) {
                keep.push(t);
            } else {
                if let Some(id) = t.id {
                    self.engine.remove_host(id, &mut self.outputs);
                    self.host_ttl.remove(&id);
                }
                info!("{}: removing", t.cfg.label());
                any = true;
            }
        }
        self.targets = keep;
        for i in 0..self.targets.len() {
            let label = self.targets[i].cfg.label().to_owned();
            let Some(h) = new_labels
                .get(label.as_str())
                .filter(|_| self.targets[i].discovered.is_none())
            else {
                continue;
            };
            if h.target == self.targets[i].cfg.target {
                continue;
            }
            info!("{label}: target now {:?}", h.target);
            any = true;
            self.targets[i].cfg.target = h.target.clone();
            match self.targets[i].id {
                // Resolved and re-pointed by the periodic path (names) or here (IPs).
                Some(_) => self.re_point(i),
                None => self.start_target(i, now),
            }
        }
        // Update rates (a host's own, else the default: either may have changed), add new
        // hosts.
        let mut added = Vec::new();
        for h in &new.host {
            match self
                .targets
                .iter_mut()
                .find(|t| t.discovered.is_none() && t.cfg.label() == h.label())
            {
                Some(t) => {
                    if t.cfg.ttl != h.ttl {
                        let ttl = h.ttl.unwrap_or(config::DEFAULT_TTL);
                        if let Some(id) = t.id {
                            self.host_ttl.insert(id, ttl);
                        }
                        info!("{}: TTL now {ttl}", h.label());
                        t.cfg.ttl = h.ttl;
                        any = true;
                    }
                    let was = t.cfg.rate.unwrap_or(self.cfg.rate);
                    let now_rate = h.rate.unwrap_or(new.rate);
                    if was != now_rate {
                        if let Some(id) = t.id {
                            self.engine.set_rate(id, now_rate);
                        }
                        info!("{}: rate now {now_rate}/s", h.label());
                        any = true;
                    }
                    t.cfg.rate = h.rate;
                }
                None => {
                    self.targets.push(Target::new(h.clone()));
                    added.push(self.targets.len() - 1);
                }
            }
        }
        any |= !added.is_empty();
        for i in added {
            self.start_target(i, now);
        }
        self.cfg.host.clone_from(&new.host);
        any
    }

    /// Discovery's settings of `new` (on, off, probe destinations, interval, home
    /// prefixes); what was applied, if anything.
    fn reload_discovery(&mut self, new: &Config, now: Now) -> Option<String> {
        let c = &self.cfg;
        let changes: Vec<String> = [
            changed("discover", &c.discover, &new.discover),
            changed("discover_probe", &c.discover_probe, &new.discover_probe),
            changed(
                "discover_interval_s",
                &c.discover_interval_s,
                &new.discover_interval_s,
            ),
            changed("home_prefixes", &c.home_prefixes, &new.home_prefixes),
        ]
        .into_iter()
        .flatten()
        .collect();
        if changes.is_empty() {
            return None;
        }
        let was_on = self.cfg.discover;
        self.cfg.discover = new.discover;
        self.cfg.discover_probe.clone_from(&new.discover_probe);
        self.cfg.discover_interval_s = new.discover_interval_s;
        self.cfg.home_prefixes.clone_from(&new.home_prefixes);
        match (was_on, new.discover) {
            (true, false) => self.stop_discovery(),
            (false, true) => self.start_discovery(now),
            // Other probes, prefixes or interval: the edge is looked for again.
            _ if new.discover => {
                self.discovery.home = self.cfg.home_prefixes();
                for f in [crate::icmp::Family::V4, crate::icmp::Family::V6] {
                    self.want_discovery(f, now);
                }
            }
            _ => {}
        }
        Some(changes.join(", "))
    }

    /// The live stream of `new`: what was applied (`None`: nothing changed), or why it
    /// was refused (the stream then stays as it was).
    fn reload_live(&mut self, new: &Config) -> Result<Option<String>, String> {
        let secret = match &new.live_secret_file {
            Some(p) => Some(
                crate::live::read_secret(p).map_err(|e| format!("live stream unchanged ({e})"))?,
            ),
            None => None,
        };
        let addr = new.live_addr();
        let moved = addr != self.cfg.live_addr();
        let unchanged = match &self.outputs.live {
            Some(l) => !moved && l.secret() == secret,
            None => addr.is_none(),
        };
        if unchanged {
            self.cfg.live.clone_from(&new.live);
            self.cfg.live_secret_file.clone_from(&new.live_secret_file);
            return Ok(None);
        }
        let what = match (&addr, moved) {
            (None, _) => {
                self.outputs.replace_live(None);
                "live off".to_owned()
            }
            (Some(a), true) => {
                // Bound before the old socket closes: if it cannot be, the old one stays.
                let l = Live::open(*a, secret, &self.cfg.data_dir, self.poll.registry(), LIVE)
                    .map_err(|e| {
                        format!(
                            "live stream stays on {:?} (cannot serve on {a}: {e})",
                            self.cfg.live
                        )
                    })?;
                let bound = l.local_addr().map_or(a.to_string(), |b| b.to_string());
                self.outputs.replace_live(Some(l));
                format!("live stream on {bound}")
            }
            (Some(_), false) => {
                let Some(l) = &mut self.outputs.live else {
                    return Err("live stream unchanged".to_owned());
                };
                l.set_secret(secret)
                    .map_err(|e| format!("live stream keeps its secret ({e})"))?;
                self.outputs.redeclare_live();
                if secret.is_some() {
                    "live secret (subscriptions start again)".to_owned()
                } else {
                    "live secret removed (subscriptions start again)".to_owned()
                }
            }
        };
        self.cfg.live.clone_from(&new.live);
        self.cfg.live_secret_file.clone_from(&new.live_secret_file);
        Ok(Some(what))
    }
}
