//! Discovered targets: the default gateways (from netlink) and the ISP's edge (from
//! TTL-limited probes, [`crate::probe`]).
//!
//! With `discover` on (the default when no host is configured), the default gateway of
//! each family (the kernel's default route of lowest metric) is pinged as `gateway` /
//! `gateway-v6`, and the first hop beyond the home network as `isp-edge` /
//! `isp-edge-v6`. Each is one host for the daemon's life: when the default route moves,
//! the host is re-pointed (its files start a segment with the new address), never
//! replaced. A default route that goes away leaves the host pinging its last address
//! (its errors then say what happened) until another one appears.
//!
//! The ISP's edge of a family is discovered when its gateway appears or changes, or
//! when a default route comes back after there was none (the link went down: the
//! machine may have joined another network behind a gateway of the same address), at
//! most once per `discover_interval_s` (a change sooner waits for the interval; a
//! discovery that found no edge is tried again after it). A discovery ended by a probe
//! that could not be sent (no route, link down) learned nothing and does not count: it
//! is tried again as soon as a default route is back, else after
//! [`UNSENT_RETRY_NS`]. A discovery of the family in progress is
//! abandoned when the gateway changes. An IPv6 default router with a link-local address
//! (the usual case with router advertisements) is pinged through the interface of its
//! route (the address alone names no interface); its files record the address.

use std::net::IpAddr;

use mio::Interest;
use mio::unix::SourceFd;
use tracing::{info, warn};

use crate::clock::Now;
use crate::config::HostConfig;
use crate::icmp::Family;
use crate::probe::{Outcome, Prefix, Prober};

use super::targets::{Discovered, Target};
use super::timers::Chore;
use super::{Daemon, PROBE, secs_ns};

/// The discovery's state.
#[derive(Debug, Default)]
pub(super) struct Discovery {
    pub(super) prober: Option<Prober>,
    /// `home_prefixes`, parsed.
    pub(super) home: Vec<Prefix>,
    /// Per family: a discovery of the ISP's edge is wanted.
    wanted: [bool; 2],
    /// Per family: the earliest start of the next discovery (monotonic ns).
    next_start_ns: [u64; 2],
    /// Per family: "no default route" was logged (and not yet followed by one).
    waiting_logged: [bool; 2],
    /// Per family: the last discovery ended on a probe that could not be sent.
    unsent: [bool; 2],
    /// Outcomes of the probes (reused).
    outcomes: Vec<Outcome>,
    /// Per family: the ISP edge last found.
    edges: [Option<IpAddr>; 2],
    /// A discovered host waits for its retiring predecessor (discovery was turned off
    /// and on again within a timeout): tried again at `retry_at_ns`.
    retry_at_ns: Option<u64>,
}

/// How soon a discovered host waiting for its retiring predecessor is tried again, ns.
const RETRY_NS: u64 = 100_000_000;
/// How soon a discovery ended by a probe that could not be sent is tried again when no
/// default route comes back first, ns: such a discovery sent nothing past the failing
/// hop, so trying every half minute floods nobody, and a route that exists but refuses
/// (a firewall rule) is not waited on for the whole interval.
pub(super) const UNSENT_RETRY_NS: u64 = 30_000_000_000;

/// Opens the probe sockets (at start before capabilities are dropped: raw sockets need
/// them).
pub(super) fn open_prober(mode: crate::sock::SocketMode) -> Option<Prober> {
    match Prober::open(mode) {
        Ok(p) => Some(p),
        Err(e) => {
            warn!("discovery: cannot open sockets for the ISP edge's probes: {e}");
            None
        }
    }
}

/// Registers the probe sockets in the poll.
pub(super) fn register_prober(p: Prober, registry: &mio::Registry) -> Option<Prober> {
    for s in p.sockets() {
        let fd = std::os::fd::AsRawFd::as_raw_fd(s);
        if let Err(e) = registry.register(&mut SourceFd(&fd), PROBE, Interest::READABLE) {
            warn!("discovery: cannot poll the probe sockets: {e}");
            return None;
        }
    }
    Some(p)
}

impl Daemon {
    /// The gateway of `family` from netlink's default routes: started, re-pointed, or
    /// waited for (see the module docs). Nothing when discovery is off.
    pub(super) fn follow_gateway(&mut self, family: Family, now: Now) {
        if !self.cfg.discover {
            return;
        }
        let route = self.netlink.as_ref().and_then(|m| m.default_route(family));
        let fi = family.index();
        let Some((gw, ifindex)) = route.and_then(|r| Some((r.gateway?, r.ifindex))) else {
            if !self.discovery.waiting_logged[fi] {
                info!("discovery: no {family:?} default route; waiting for one");
                self.discovery.waiting_logged[fi] = true;
            }
            return;
        };
        let route_was_gone = std::mem::replace(&mut self.discovery.waiting_logged[fi], false);
        if route_was_gone && std::mem::take(&mut self.discovery.unsent[fi]) {
            // What ended the last discovery is gone: try at once.
            self.discovery.next_start_ns[fi] = now.mono_ns;
        }
        // A link-local router is reached through its route's interface.
        let scope = match gw {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => ifindex,
            _ => 0,
        };
        let changed = self.set_discovered(Discovered::Gateway(family), gw, scope, now);
        if changed || route_was_gone {
            self.want_discovery(family, now);
        }
    }

    /// Starts or re-points the discovered host `what` at `addr` (through interface
    /// `scope`, 0: any); returns whether it is new or moved.
    pub(super) fn set_discovered(
        &mut self,
        what: Discovered,
        addr: IpAddr,
        scope: u32,
        now: Now,
    ) -> bool {
        let target = addr.to_string();
        match self.targets.iter().position(|t| t.discovered == Some(what)) {
            Some(i) if self.targets[i].addr == Some(addr) && self.targets[i].scope == scope => {
                false
            }
            Some(i) => {
                let t = &mut self.targets[i];
                t.scope = scope;
                if let Some(id) = t.id {
                    match scope {
                        0 => self.host_scope.remove(&id),
                        s => self.host_scope.insert(id, s),
                    };
                }
                if self.targets[i].addr == Some(addr) {
                    // The same link-local address on another interface.
                    info!("{}: {addr} now through interface {scope}", what.label());
                    return true;
                }
                info!(
                    "{}: now {addr} (was {:?})",
                    what.label(),
                    self.targets[i].addr
                );
                self.targets[i].cfg.target = target;
                if self.targets[i].id.is_some() {
                    self.re_point(i);
                } else {
                    self.start_target(i, now);
                }
                true
            }
            None if self.outputs.has_label(what.label()) => {
                // The host of an earlier discovery is still retiring (its requests in
                // flight): its directory is not free yet.
                self.discovery.retry_at_ns = Some(now.mono_ns + RETRY_NS);
                self.arm_discovery(now);
                false
            }
            None => {
                let mut t = Target::new(HostConfig {
                    target,
                    label: Some(what.label().to_owned()),
                    rate: Some(self.cfg.rate),
                    role: Some(what.role().to_owned()),
                    ttl: None,
                });
                t.discovered = Some(what);
                t.scope = scope;
                self.targets.push(t);
                self.start_target(self.targets.len() - 1, now);
                true
            }
        }
    }

    /// Asks for a discovery of the ISP's edge of `family`: now, or once the interval since
    /// the last one has passed. One in progress is abandoned (the path changed).
    pub(super) fn want_discovery(&mut self, family: Family, now: Now) {
        let d = &mut self.discovery;
        if let Some(p) = &mut d.prober {
            p.cancel(family);
        }
        d.wanted[family.index()] = true;
        self.arm_discovery(now);
    }

    /// Arms [`Chore::Discover`] for the earliest wanted start or probe deadline.
    fn arm_discovery(&mut self, now: Now) {
        let d = &self.discovery;
        let mut next = d.prober.as_ref().and_then(Prober::next_deadline);
        if let Some(at) = d.retry_at_ns {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        for f in [Family::V4, Family::V6] {
            if d.wanted[f.index()] {
                let at = d.next_start_ns[f.index()].max(now.mono_ns);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        match next {
            Some(at) => self.timers.arm(Chore::Discover, at),
            None => self.timers.disarm(Chore::Discover),
        }
    }

    /// [`Chore::Discover`]: starts the wanted discoveries that are due, passes over the
    /// hops whose probe timed out.
    pub(super) fn discover_due(&mut self, now: Now) {
        if self
            .discovery
            .retry_at_ns
            .is_some_and(|at| at <= now.mono_ns)
        {
            self.discovery.retry_at_ns = None;
            self.follow_gateways(now);
            for f in [Family::V4, Family::V6] {
                if let Some(edge) = self.discovery.edges[f.index()] {
                    self.set_discovered(Discovered::IspEdge(f), edge, 0, now);
                }
            }
        }
        let interval_ns = secs_ns(self.cfg.discover_interval_s);
        for f in [Family::V4, Family::V6] {
            let fi = f.index();
            let d = &mut self.discovery;
            if !d.wanted[fi] || d.next_start_ns[fi] > now.mono_ns {
                continue;
            }
            d.wanted[fi] = false;
            let Some(dst) = self.cfg.discover_probe(f) else {
                continue;
            };
            let Some(p) = &mut d.prober else { continue };
            d.next_start_ns[fi] = now.mono_ns + interval_ns;
            info!("discovery: looking for the {f:?} ISP edge (TTL-limited probes toward {dst})");
            if let Some(o) = p.start(dst, now.mono_ns) {
                d.outcomes.push(o);
            }
        }
        if let Some(p) = &mut self.discovery.prober {
            p.tick(now.mono_ns, &mut self.discovery.outcomes);
        }
        self.apply_outcomes(now);
    }

    /// The probe sockets are readable.
    pub(super) fn read_probes(&mut self, now: Now) {
        let d = &mut self.discovery;
        if let Some(p) = &mut d.prober {
            p.on_readable(now.mono_ns, &d.home, &mut d.outcomes);
        }
        self.apply_outcomes(now);
    }

    /// Acts on the discoveries that ended, then re-arms the chore.
    fn apply_outcomes(&mut self, now: Now) {
        let outcomes = std::mem::take(&mut self.discovery.outcomes);
        for o in &outcomes {
            match *o {
                Outcome::Edge { family, addr, hop } => {
                    info!("discovery: the {family:?} ISP edge is {addr}, {hop} hops away");
                    self.discovery.edges[family.index()] = Some(addr);
                    self.discovery.unsent[family.index()] = false;
                    if self.cfg.discover {
                        self.set_discovered(Discovered::IspEdge(family), addr, 0, now);
                    }
                }
                Outcome::NotFound {
                    family,
                    why,
                    unsent,
                } => {
                    let fi = family.index();
                    let again_ns = if unsent {
                        // Not counted against the interval (see the module docs).
                        self.discovery.next_start_ns[fi] = now.mono_ns + UNSENT_RETRY_NS;
                        UNSENT_RETRY_NS
                    } else {
                        secs_ns(self.cfg.discover_interval_s)
                    };
                    self.discovery.unsent[fi] = unsent;
                    info!(
                        "discovery: no {family:?} ISP edge found ({why}); trying again in {} s{}",
                        again_ns as f64 / 1e9,
                        if unsent {
                            " or when a default route is back"
                        } else {
                            ""
                        }
                    );
                    self.discovery.wanted[fi] = self.cfg.discover;
                }
            }
        }
        self.discovery.outcomes = outcomes;
        self.discovery.outcomes.clear();
        self.arm_discovery(now);
    }

    /// Discovery turned off (SIGHUP): every discovered host removed, probes stopped.
    pub(super) fn stop_discovery(&mut self) {
        let d = &mut self.discovery;
        d.wanted = [false; 2];
        d.retry_at_ns = None;
        d.edges = [None; 2];
        if let Some(p) = &mut d.prober {
            p.cancel(Family::V4);
            p.cancel(Family::V6);
        }
        self.timers.disarm(Chore::Discover);
        for t in std::mem::take(&mut self.targets) {
            if t.discovered.is_some() {
                if let Some(id) = t.id {
                    self.engine.remove_host(id, &mut self.outputs);
                    self.host_ttl.remove(&id);
                    self.host_scope.remove(&id);
                }
                info!("{}: removing (discovery off)", t.cfg.label());
            } else {
                self.targets.push(t);
            }
        }
    }

    /// Discovery turned on or its settings changed (SIGHUP, or at start): the gateways
    /// followed from netlink's current routes, the probe sockets opened if they were not.
    pub(super) fn start_discovery(&mut self, now: Now) {
        if self.discovery.prober.is_none() {
            self.discovery.prober =
                open_prober(self.cfg.socket).and_then(|p| register_prober(p, self.poll.registry()));
        }
        self.discovery.home = self.cfg.home_prefixes();
        self.warn_without_netlink();
        self.follow_gateways(now);
    }

    /// Says so when discovery is on and netlink could not be opened.
    pub(super) fn warn_without_netlink(&self) {
        if self.netlink.is_none() {
            warn!("discovery: netlink is not available: no gateway can be followed");
        }
    }

    /// Both families' gateways followed from netlink's current routes.
    pub(super) fn follow_gateways(&mut self, now: Now) {
        for f in [Family::V4, Family::V6] {
            self.follow_gateway(f, now);
        }
    }
}
