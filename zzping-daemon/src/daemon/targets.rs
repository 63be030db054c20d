//! Targets: resolving names, starting hosts, re-pointing them when a name moves, and the
//! SIGHUP reload of the host list and rates.
//!
//! Name resolution runs on the loop's thread (the only other thread is the receiver): a
//! blocking `getaddrinfo` per named host every `resolve_interval_s` (default 5 min), and
//! every [`RETRY_UNRESOLVED_NS`] for names that never resolved. With a working resolver
//! that takes well under a millisecond for cached or `/etc/hosts` names; when DNS is down
//! it can stall sends for the resolver's timeout. Hosts given as IP addresses are never
//! resolved. Replies keep their kernel timestamps during such a stall, so RTTs stay exact;
//! only send times slip (and are recorded as lateness).

use std::collections::HashMap;
use std::net::IpAddr;

use tracing::{debug, error, info, warn};
use zzping_lib::file::HostInfo;

use crate::clock::Now;
use crate::config::{self, HostConfig};
use crate::engine::HostId;
use crate::icmp::Family;

use super::timers::Chore;
use super::{Daemon, SEC};

/// How often targets whose name did not resolve are retried, ns.
pub const RETRY_UNRESOLVED_NS: u64 = 10 * SEC;

/// A configured host and what became of it.
pub(super) struct Target {
    pub(super) cfg: HostConfig,
    /// The engine's host, once the target resolved.
    pub(super) id: Option<HostId>,
    pub(super) addr: Option<IpAddr>,
    resolve_warned: bool,
}

impl Target {
    pub(super) fn new(cfg: HostConfig) -> Self {
        Target {
            cfg,
            id: None,
            addr: None,
            resolve_warned: false,
        }
    }

    fn name(&self) -> Option<String> {
        config::is_name(&self.cfg.target).then(|| self.cfg.target.clone())
    }
}

impl Daemon {
    /// Resolves and starts target `i` (nothing if started). `index`/`count` stagger first
    /// sends over one interval. A name that does not resolve is retried by
    /// [`Chore::RetryUnresolved`].
    pub(super) fn start_target(&mut self, i: usize, now: Now, index: usize, count: usize) {
        let t = &self.targets[i];
        if t.id.is_some() {
            return;
        }
        let addr = match config::resolve(&t.cfg.target) {
            Ok(a) => a,
            Err(e) => {
                if t.resolve_warned {
                    debug!("{}: cannot resolve {:?}: {e}", t.cfg.label(), t.cfg.target);
                } else {
                    warn!(
                        "{}: cannot resolve {:?}: {e}; retrying every {} s",
                        t.cfg.label(),
                        t.cfg.target,
                        RETRY_UNRESOLVED_NS / SEC
                    );
                }
                self.targets[i].resolve_warned = true;
                if !self.timers.is_armed(Chore::RetryUnresolved) {
                    self.timers
                        .arm(Chore::RetryUnresolved, now.mono_ns + RETRY_UNRESOLVED_NS);
                }
                return;
            }
        };
        let rate = t.cfg.rate.unwrap_or(self.cfg.rate);
        let label = t.cfg.label().to_owned();
        let name = t.name();
        if self.sockets[Family::of(&addr).index()].is_none() {
            warn!(
                "{label}: no {:?} socket; its sends count as errors",
                Family::of(&addr)
            );
        }
        let interval = crate::engine::interval_ns(rate);
        let offset = (interval as u128 * index as u128 / count.max(1) as u128) as u64;
        let id = self
            .engine
            .add_host(&label, addr, rate, now.mono_ns + offset, now);
        self.outputs.add_host(
            id,
            HostInfo {
                label: label.clone(),
                address: addr,
                name,
            },
        );
        info!("{label}: pinging {addr} at {rate}/s");
        let t = &mut self.targets[i];
        t.id = Some(id);
        t.addr = Some(addr);
    }

    /// Resolves target `i` again and, if its address changed, re-points the host
    /// (engine, files, live stream, exporter).
    fn re_point(&mut self, i: usize) {
        let t = &self.targets[i];
        let Some(id) = t.id else { return };
        match config::resolve(&t.cfg.target) {
            Ok(a) if Some(a) != t.addr => {
                info!(
                    "{}: {} now resolves to {a} (was {:?})",
                    t.cfg.label(),
                    t.cfg.target,
                    t.addr
                );
                let (label, name) = (t.cfg.label().to_owned(), t.name());
                self.engine.set_address(id, a);
                self.outputs.re_point(id, &label, a, name);
                self.targets[i].addr = Some(a);
            }
            Ok(_) => {}
            Err(e) => debug!("{}: re-resolution failed: {e}", t.cfg.label()),
        }
    }

    /// [`Chore::Resolve`]: every named target is resolved again (started if it never
    /// resolved, re-pointed if it moved).
    pub(super) fn re_resolve(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            let t = &self.targets[i];
            if !config::is_name(&t.cfg.target) {
                continue;
            }
            if t.id.is_none() {
                self.start_target(i, now, 0, 1);
            } else {
                self.re_point(i);
            }
        }
    }

    /// [`Chore::RetryUnresolved`]: tries the targets that never resolved again.
    pub(super) fn retry_unresolved(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            if self.targets[i].id.is_none() {
                self.start_target(i, now, 0, 1);
            }
        }
    }

    /// SIGHUP: reads the configuration again and applies the host list and rates; says
    /// which changes need a restart.
    pub(super) fn reload(&mut self, now: Now) {
        let new = match config::load(&self.cli) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: keeping the current configuration: {e}");
                return;
            }
        };
        if new.period_ms != self.cfg.period_ms
            || new.timeout_ms != self.cfg.timeout_ms
            || new.data_dir != self.cfg.data_dir
            || new.socket != self.cfg.socket
            || new.precision != self.cfg.precision
            || new.metrics != self.cfg.metrics
        {
            warn!(
                "SIGHUP: period, timeout, data_dir, socket, precision and metrics changes need a restart"
            );
        }
        let new_labels: HashMap<&str, &HostConfig> =
            new.host.iter().map(|h| (h.label(), h)).collect();
        // Remove hosts gone. A label whose target changed keeps its host (and files): it
        // is re-pointed below, like a re-resolution (two writers must never share a
        // host directory).
        let mut keep = Vec::new();
        for t in std::mem::take(&mut self.targets) {
            if new_labels.contains_key(t.cfg.label()) {
                keep.push(t);
            } else {
                if let Some(id) = t.id {
                    self.engine.remove_host(id, &mut self.outputs);
                }
                info!("{}: removing", t.cfg.label());
            }
        }
        self.targets = keep;
        for i in 0..self.targets.len() {
            let label = self.targets[i].cfg.label().to_owned();
            let Some(h) = new_labels.get(label.as_str()) else {
                continue;
            };
            if h.target == self.targets[i].cfg.target {
                continue;
            }
            info!("{label}: target now {:?}", h.target);
            self.targets[i].cfg.target = h.target.clone();
            match self.targets[i].id {
                // Resolved and re-pointed by the periodic path (names) or here (IPs).
                Some(_) => self.re_point(i),
                None => self.start_target(i, now, 0, 1),
            }
        }
        // Update rates, add new ones.
        let mut added = Vec::new();
        for h in &new.host {
            match self.targets.iter_mut().find(|t| t.cfg.label() == h.label()) {
                Some(t) => {
                    if t.cfg.rate != h.rate {
                        if let (Some(id), Some(r)) = (t.id, h.rate) {
                            self.engine.set_rate(id, r);
                            info!("{}: rate now {r}/s", h.label());
                        }
                        t.cfg.rate = h.rate;
                    }
                }
                None => {
                    self.targets.push(Target::new(h.clone()));
                    added.push(self.targets.len() - 1);
                }
            }
        }
        let count = added.len();
        for (k, i) in added.into_iter().enumerate() {
            self.start_target(i, now, k, count);
        }
        self.cfg.host = new.host;
        self.cfg.rate = new.rate;
        self.cfg.retention_days = new.retention_days;
        // Retention runs now: with new settings, and as the way to ask for a pass.
        self.timers.arm(Chore::Retention, now.mono_ns);
        info!(
            "SIGHUP: configuration reloaded, {} hosts",
            self.targets.len()
        );
    }
}
