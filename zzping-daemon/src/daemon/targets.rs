//! Targets: resolving names, starting hosts, re-pointing them when a name moves.
//!
//! Names are resolved off the loop's thread ([`super::resolve`]): every named host at
//! start, every `resolve_interval_s` (default 5 min), and every [`RETRY_UNRESOLVED_NS`]
//! while it never resolved; the loop starts or re-points the host when the answer comes
//! ([`Daemon::take_resolved`]), so a resolver that does not answer (DNS down) delays
//! nothing but that host's start. Hosts given as IP addresses are started at once.

use std::net::IpAddr;

use tracing::{debug, info, warn};
use zzping_lib::file::HostInfo;

use crate::clock::Now;
use crate::config::{self, HostConfig};
use crate::engine::HostId;
use crate::icmp::Family;

use super::timers::Chore;
use super::{Daemon, SEC};

/// How often targets whose name did not resolve are retried, ns.
pub const RETRY_UNRESOLVED_NS: u64 = 10 * SEC;
/// How soon a target waiting for the retiring host of its label is tried again, ns.
const RETRY_RETIRING_NS: u64 = SEC / 10;

/// A host discovered rather than configured (`discover.rs`): one per role and family,
/// re-pointed when its address changes (one history per role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discovered {
    /// The default gateway of the family.
    Gateway(Family),
    /// The ISP's edge on the family's path.
    IspEdge(Family),
}

impl Discovered {
    /// Its label (also its directory).
    pub(super) fn label(self) -> &'static str {
        match self {
            Discovered::Gateway(Family::V4) => "gateway",
            Discovered::Gateway(Family::V6) => "gateway-v6",
            Discovered::IspEdge(Family::V4) => "isp-edge",
            Discovered::IspEdge(Family::V6) => "isp-edge-v6",
        }
    }

    /// Its role in the files' headers.
    pub(super) fn role(self) -> &'static str {
        match self {
            Discovered::Gateway(_) => zzping_lib::file::role::GATEWAY,
            Discovered::IspEdge(_) => zzping_lib::file::role::ISP_EDGE,
        }
    }
}

/// A configured or discovered host and what became of it.
pub(super) struct Target {
    pub(super) cfg: HostConfig,
    /// What it was discovered as (`None`: configured).
    pub(super) discovered: Option<Discovered>,
    /// The interface its address needs (an IPv6 link-local gateway; 0: none).
    pub(super) scope: u32,
    /// The engine's host, once the target resolved.
    pub(super) id: Option<HostId>,
    pub(super) addr: Option<IpAddr>,
    pub(super) resolve_warned: bool,
    /// Waiting for the retiring host of its label (its wait was logged).
    pub(super) waiting_retired: bool,
}

impl Target {
    pub(super) fn new(cfg: HostConfig) -> Self {
        Target {
            cfg,
            discovered: None,
            scope: 0,
            id: None,
            addr: None,
            resolve_warned: false,
            waiting_retired: false,
        }
    }

    fn name(&self) -> Option<String> {
        config::is_name(&self.cfg.target).then(|| self.cfg.target.clone())
    }
}

impl Daemon {
    /// Resolves and starts target `i` (nothing if started), its sends in the round of
    /// every host with the same rate ([`crate::engine::Engine::aligned_first_send_ns`]).
    /// A name that does not resolve is retried by [`Chore::RetryUnresolved`]. A label
    /// whose earlier host is still retiring (removed by a reload, its requests in flight
    /// not yet resolved, its files still open) waits for it: two writers must never share
    /// a host directory ([`Chore::StartWaiting`]).
    pub(super) fn start_target(&mut self, i: usize, now: Now) {
        let t = &self.targets[i];
        if t.id.is_some() {
            return;
        }
        if self.outputs.has_label(t.cfg.label()) {
            if !t.waiting_retired {
                info!(
                    "{}: waiting for the removed host of this label to finish its requests \
                     in flight",
                    t.cfg.label()
                );
            }
            self.targets[i].waiting_retired = true;
            if !self.timers.is_armed(Chore::StartWaiting) {
                self.timers
                    .arm(Chore::StartWaiting, now.mono_ns + RETRY_RETIRING_NS);
            }
            return;
        }
        self.targets[i].waiting_retired = false;
        if let Some(r) = self.address_now(i) {
            self.start_resolved(i, r, now);
        }
    }

    /// Target `i`'s address, when it is an IP literal; a name is asked of the resolver
    /// (its answer comes through [`Daemon::take_resolved`]) and gives `None`.
    fn address_now(&mut self, i: usize) -> Option<std::io::Result<IpAddr>> {
        let target = &self.targets[i].cfg.target;
        if config::is_name(target) {
            self.resolver.ask(target);
            return None;
        }
        Some(config::resolve(target))
    }

    /// Starts target `i` at the address its target resolved to (or says it did not, and
    /// arms the retry).
    fn start_resolved(&mut self, i: usize, resolved: std::io::Result<IpAddr>, now: Now) {
        let t = &self.targets[i];
        let addr = match resolved {
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
        let first_ns = self
            .engine
            .aligned_first_send_ns(crate::engine::interval_ns(rate), now);
        let id = self.engine.add_host(&label, addr, rate, first_ns, now);
        self.outputs.add_host(
            id,
            HostInfo {
                label: label.clone(),
                address: addr,
                name,
                role: t.cfg.role.clone(),
            },
        );
        let ttl = t.cfg.ttl.unwrap_or(config::DEFAULT_TTL);
        if ttl == config::DEFAULT_TTL {
            info!("{label}: pinging {addr} at {rate}/s");
        } else {
            info!("{label}: pinging {addr} at {rate}/s with TTL {ttl}");
        }
        self.host_ttl.insert(id, ttl);
        if t.scope != 0 {
            self.host_scope.insert(id, t.scope);
        }
        let t = &mut self.targets[i];
        t.id = Some(id);
        t.addr = Some(addr);
    }

    /// Resolves target `i` again (a name: when its answer comes) and, if its address
    /// changed, re-points the host (engine, files, live stream, exporter).
    pub(super) fn re_point(&mut self, i: usize) {
        if let Some(r) = self.address_now(i) {
            self.re_point_resolved(i, r);
        }
    }

    /// Re-points started target `i` at `resolved` if it moved there.
    fn re_point_resolved(&mut self, i: usize, resolved: std::io::Result<IpAddr>) {
        let t = &self.targets[i];
        let Some(id) = t.id else { return };
        match resolved {
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
                self.start_target(i, now);
            } else {
                self.re_point(i);
            }
        }
    }

    /// [`Chore::StartWaiting`]: starts the targets that were waiting for the retiring
    /// host of their label, if it is gone (else re-armed).
    pub(super) fn start_waiting(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            if self.targets[i].id.is_none() && self.targets[i].waiting_retired {
                self.start_target(i, now);
            }
        }
    }

    /// Applies the resolver's answers: each named target of that name is started (at
    /// its first answer) or re-pointed (if it moved). An answer for a name no target has
    /// any more (a reload changed it) is dropped.
    pub(super) fn take_resolved(&mut self, now: Now) {
        let mut answers = std::mem::take(&mut self.resolved);
        self.resolver.take(&mut answers);
        for (name, r) in answers.drain(..) {
            for i in 0..self.targets.len() {
                let t = &self.targets[i];
                if t.cfg.target != name {
                    continue;
                }
                let r = match &r {
                    Ok(a) => Ok(*a),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                if t.id.is_some() {
                    self.re_point_resolved(i, r);
                } else if self.outputs.has_label(t.cfg.label()) {
                    // Its label's earlier host is still retiring: it waits (and asks again).
                    self.start_target(i, now);
                } else {
                    self.start_resolved(i, r, now);
                }
            }
        }
        self.resolved = answers;
    }

    /// [`Chore::RetryUnresolved`]: tries the targets that never resolved again.
    pub(super) fn retry_unresolved(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            if self.targets[i].id.is_none() {
                self.start_target(i, now);
            }
        }
    }
}
