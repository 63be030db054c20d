//! The network timeline: routes and links that change while the simulator
//! runs (`[[route_loss]]`, `[[link]]`, `[[route_change]]`).
//!
//! A dedicated thread sleeps until each step is due (µs after the simulator
//! started, on the monotonic clock, like everything else the profiles use),
//! applies it to the namespace — route messages over rtnetlink, link flags
//! with `SIOCSIFFLAGS`, carrier with `TUNSETCARRIER` — and writes a `net`
//! event to the truth with the wall-clock time just before the first change
//! (`begin_us`) and once the kernel acknowledged the last one (`time_us`):
//! a `sendto` before `begin_us` saw the old state, one after `time_us` the
//! new one.
//!
//! What each step does (the kernel's reactions were observed on Linux 6.x):
//! * route loss, `mode = "delete"`: the default route, then (`routes =
//!   "all"`) the on-link prefix route of every interface, are deleted;
//!   `sendto` fails with `ENETUNREACH`. `"unreachable"` / `"prohibit"`: routes
//!   of that type take their place instead (IPv4: replaced in place; IPv6:
//!   added with metric [`OVERRIDE_METRIC_V6`], which wins over the originals
//!   left in place): `EHOSTUNREACH` / `EACCES`. At the end everything is put
//!   back as it was (on-link prefixes first, then the default route).
//! * link, `mode = "down"`: `IFF_UP` is cleared; the kernel removes every
//!   route through the interface (on-link prefixes and the default route),
//!   `sendto` fails with `ENETUNREACH`. The addresses stay (IPv6 too: the
//!   simulator sets `keep_addr_on_down`). When it comes back up the kernel
//!   restores the on-link prefixes and the simulator re-adds the default
//!   route, as a network manager would. `mode = "carrier"`: the TUN's
//!   carrier goes off (NO-CARRIER, operstate DOWN); the routes stay,
//!   flagged `linkdown`, and `sendto` *succeeds*: the kernel drops the
//!   packets (the device's queue is deactivated). The kernel does that (and
//!   reactivates the queue when the carrier returns) from its link-watch
//!   work, up to a second later on an idle machine and later on a busy one:
//!   the step ends (`time_us`) only when the kernel announces the new
//!   operational state, which it does after switching the queue.
//! * route change: the default route of each family is replaced by one via
//!   the new gateway, on the interface that has it on-link.
//!
//! While an interface is down (either mode), replies due on it are not
//! written (a write to a down TUN fails with `EIO`); each is recorded as an
//! `unsent` event with reason `link_down`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rtnl::{self, Route, RouteType, Rtnl};
use crate::scenario::{
    Gateway, Iface, LinkMode, LossMode, RouteLossSpec, RouteSet, Scenario, prefix_v4, prefix_v6,
};
use crate::sys::Tun;

/// Metric of the `unreachable` / `prohibit` IPv6 routes a route loss adds:
/// lower than every route the simulator installs (256 for on-link prefixes,
/// 1024 for the default route), so it wins while it exists.
pub const OVERRIDE_METRIC_V6: u32 = 1;
/// Metric of IPv6 on-link prefix routes (the kernel's).
pub const PREFIX_METRIC_V6: u32 = 256;
/// Metric of IPv6 routes added without one (the kernel's default).
pub const DEFAULT_METRIC_V6: u32 = 1024;

/// What a step of the timeline does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// A `[[route_loss]]` begins.
    RoutesLost(RouteLossSpec),
    /// It ends.
    RoutesRestored(RouteLossSpec),
    /// A `[[link]]` begins (interface index).
    LinkDown(usize, LinkMode),
    /// It ends.
    LinkUp(usize, LinkMode),
    /// A `[[route_change]]`: the new gateway host and its addresses.
    RouteChange(usize, Gateway),
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When, µs after the simulator started.
    pub at_us: u64,
    /// What.
    pub kind: StepKind,
    /// The scenario table it comes from, e.g. `link #1`.
    pub source: String,
}

fn ms_to_us(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1000.0).round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// The steps of a (validated) scenario, in time order.
pub fn plan(s: &Scenario) -> Vec<Step> {
    let ifaces = s.interfaces();
    let mut v = Vec::new();
    for (i, r) in s.route_loss.iter().enumerate() {
        let source = format!("route_loss #{}", i + 1);
        v.push(Step {
            at_us: ms_to_us(r.start_ms),
            kind: StepKind::RoutesLost(r.clone()),
            source: source.clone(),
        });
        v.push(Step {
            at_us: ms_to_us(r.start_ms + r.duration_ms),
            kind: StepKind::RoutesRestored(r.clone()),
            source,
        });
    }
    for (i, l) in s.link.iter().enumerate() {
        let source = format!("link #{}", i + 1);
        let k = l
            .interface
            .as_ref()
            .and_then(|n| ifaces.iter().position(|f| &f.name == n))
            .unwrap_or(0);
        v.push(Step {
            at_us: ms_to_us(l.start_ms),
            kind: StepKind::LinkDown(k, l.mode),
            source: source.clone(),
        });
        v.push(Step {
            at_us: ms_to_us(l.start_ms + l.duration_ms),
            kind: StepKind::LinkUp(k, l.mode),
            source,
        });
    }
    for (i, c) in s.route_change.iter().enumerate() {
        let Some(h) = s.host_index(&c.gateway) else {
            continue;
        };
        v.push(Step {
            at_us: ms_to_us(c.at_ms),
            kind: StepKind::RouteChange(h, s.gateway_of(h)),
            source: format!("route_change #{}", i + 1),
        });
    }
    // Stable: an end and a start at the same instant keep end first when the
    // end was listed first; validation keeps windows from overlapping.
    v.sort_by_key(|s| {
        (
            s.at_us,
            !matches!(s.kind, StepKind::RoutesRestored(_) | StepKind::LinkUp(..)),
        )
    });
    v
}

/// What one applied step changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Routes no longer in effect.
    pub removed: Vec<Route>,
    /// Routes added (by the simulator or restored by the kernel).
    pub added: Vec<Route>,
    /// Interface concerned, for link steps.
    pub interface: Option<String>,
}

/// The routes the simulator installed and their current state.
#[derive(Debug)]
pub struct NetState {
    ifaces: Vec<(Iface, u32)>,
    /// Default gateways currently configured.
    pub gateway: Gateway,
    /// The host they belong to.
    pub gateway_host: Option<usize>,
    /// Whether the default route of IPv4 / IPv6 is taken away by a route loss.
    default_lost: [bool; 2],
}

impl NetState {
    /// State after [`crate::netcfg::configure`]: every interface up, the
    /// scenario's initial gateways. Looks the interfaces up by name in the
    /// calling thread's namespace.
    pub fn new(s: &Scenario) -> std::io::Result<NetState> {
        let ifaces = s
            .interfaces()
            .into_iter()
            .map(|f| rtnl::ifindex(&f.name).map(|i| (f, i)))
            .collect::<std::io::Result<_>>()?;
        Ok(NetState {
            ifaces,
            gateway: s.initial_gateway(),
            gateway_host: s.initial_gateway_host(),
            default_lost: [false; 2],
        })
    }

    /// Default gateways in effect (none while a route loss took them away).
    pub fn effective_gateway(&self) -> (Option<IpAddr>, Option<IpAddr>) {
        (
            self.gateway
                .v4
                .filter(|_| !self.default_lost[0])
                .map(|(a, _)| a.into()),
            self.gateway
                .v6
                .filter(|_| !self.default_lost[1])
                .map(|(a, _)| a.into()),
        )
    }

    fn dev(&self, k: usize) -> Option<(u32, String)> {
        self.ifaces.get(k).map(|(f, i)| (*i, f.name.clone()))
    }

    /// On-link prefix route of interface `k`, if it has an address of that family.
    pub fn connected(&self, k: usize, v6: bool) -> Option<Route> {
        let (f, _) = self.ifaces.get(k)?;
        let (dst, len, src) = if v6 {
            let (a, n) = f.v6?;
            (IpAddr::V6(prefix_v6(a, n)), n, IpAddr::V6(a))
        } else {
            let (a, n) = f.v4?;
            (IpAddr::V4(prefix_v4(a, n)), n, IpAddr::V4(a))
        };
        Some(Route {
            kind: RouteType::Unicast,
            dst,
            prefix_len: len,
            gateway: None,
            dev: self.dev(k),
            // The kernel's own route for an address has no preferred source in
            // IPv6 and its address as one in IPv4.
            prefsrc: (!v6).then_some(src),
            protocol: libc::RTPROT_KERNEL,
            scope: if v6 {
                libc::RT_SCOPE_UNIVERSE
            } else {
                libc::RT_SCOPE_LINK
            },
            metric: if v6 { PREFIX_METRIC_V6 } else { 0 },
        })
    }

    /// The default route via gateway `g` of one family.
    pub fn default_via(&self, g: &Gateway, v6: bool) -> Option<Route> {
        let (gw, k) = if v6 {
            g.v6.map(|(a, k)| (IpAddr::V6(a), k))?
        } else {
            g.v4.map(|(a, k)| (IpAddr::V4(a), k))?
        };
        Some(Route {
            kind: RouteType::Unicast,
            dst: unspecified(v6),
            prefix_len: 0,
            gateway: Some(gw),
            dev: self.dev(k),
            prefsrc: None,
            protocol: libc::RTPROT_BOOT,
            scope: libc::RT_SCOPE_UNIVERSE,
            metric: if v6 { DEFAULT_METRIC_V6 } else { 0 },
        })
    }

    /// The current default route of one family.
    pub fn default_route(&self, v6: bool) -> Option<Route> {
        self.default_via(&self.gateway, v6)
    }

    /// Installs the initial default routes.
    pub fn install_defaults(&self, nl: &mut Rtnl) -> std::io::Result<Vec<Route>> {
        let mut added = Vec::new();
        for v6 in [false, true] {
            if let Some(r) = self.default_route(v6) {
                nl.add(&r)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("adding route {r}: {e}")))?;
                added.push(r);
            }
        }
        Ok(added)
    }

    /// The routes a route loss concerns, in the order they are taken away.
    fn loss_routes(&self, r: &RouteLossSpec) -> Vec<Route> {
        let mut v = Vec::new();
        for v6 in [false, true] {
            if !r.family.has(v6) {
                continue;
            }
            v.extend(self.default_route(v6));
            if r.routes == RouteSet::All {
                v.extend((0..self.ifaces.len()).filter_map(|k| self.connected(k, v6)));
            }
        }
        v
    }

    /// Applies one step. `tuns` are the devices, `set_link_flag` records the
    /// simulator's own idea of which links are up (for its reply writer).
    pub fn apply(
        &mut self,
        kind: &StepKind,
        nl: &mut Rtnl,
        tuns: &[Tun],
        set_link_flag: &dyn Fn(usize, bool),
    ) -> Result<Change, (Change, std::io::Error)> {
        let mut ch = Change::default();
        macro_rules! tryc {
            ($e:expr, $what:expr) => {
                if let Err(e) = $e {
                    let e = std::io::Error::new(e.kind(), format!("{}: {e}", $what));
                    return Err((ch, e));
                }
            };
        }
        match kind {
            StepKind::RoutesLost(r) => {
                for route in self.loss_routes(r) {
                    match r.mode {
                        LossMode::Delete => {
                            tryc!(nl.delete(&route), format!("deleting {route}"));
                        }
                        LossMode::Unreachable | LossMode::Prohibit => {
                            let o = override_of(&route, r.mode);
                            if route.is_v6() {
                                tryc!(nl.add(&o), format!("adding {o}"));
                            } else {
                                tryc!(nl.replace(&o), format!("replacing {route} by {o}"));
                            }
                            ch.added.push(o);
                        }
                    }
                    ch.removed.push(route);
                }
                for v6 in [false, true] {
                    if r.family.has(v6) {
                        self.default_lost[usize::from(v6)] = true;
                    }
                }
            }
            StepKind::RoutesRestored(r) => {
                let mut routes = self.loss_routes(r);
                // On-link prefixes first: a gateway must be on-link again
                // before a route via it can be added.
                routes.reverse();
                for route in routes {
                    match r.mode {
                        LossMode::Delete => {
                            tryc!(nl.add(&route), format!("restoring {route}"));
                        }
                        LossMode::Unreachable | LossMode::Prohibit => {
                            let o = override_of(&route, r.mode);
                            if route.is_v6() {
                                tryc!(nl.delete(&o), format!("deleting {o}"));
                            } else {
                                tryc!(nl.replace(&route), format!("restoring {route}"));
                            }
                            ch.removed.push(o);
                        }
                    }
                    ch.added.push(route);
                }
                self.default_lost = [false; 2];
            }
            StepKind::LinkDown(k, mode) => {
                let name = self.ifaces[*k].0.name.clone();
                ch.interface = Some(name.clone());
                set_link_flag(*k, false);
                match mode {
                    LinkMode::Down => {
                        tryc!(rtnl::set_link_up(&name, false), format!("{name} down"));
                        ch.removed = self.routes_through(*k);
                    }
                    LinkMode::Carrier => {
                        tryc!(
                            rtnl::set_carrier(&tuns[*k], &name, false),
                            format!("{name} carrier off")
                        );
                    }
                }
            }
            StepKind::LinkUp(k, mode) => {
                let name = self.ifaces[*k].0.name.clone();
                ch.interface = Some(name.clone());
                match mode {
                    LinkMode::Down => {
                        tryc!(rtnl::set_link_up(&name, true), format!("{name} up"));
                        // The kernel restored the on-link prefixes; the
                        // default routes through this interface are ours.
                        for v6 in [false, true] {
                            ch.added.extend(self.connected(*k, v6));
                        }
                        for v6 in [false, true] {
                            if let Some(r) = self.default_route(v6)
                                && r.dev.as_ref().is_some_and(|(i, _)| *i == self.ifaces[*k].1)
                            {
                                tryc!(nl.add(&r), format!("adding {r}"));
                                ch.added.push(r);
                            }
                        }
                    }
                    LinkMode::Carrier => {
                        tryc!(
                            rtnl::set_carrier(&tuns[*k], &name, true),
                            format!("{name} carrier on")
                        );
                    }
                }
                set_link_flag(*k, true);
            }
            StepKind::RouteChange(host, g) => {
                for v6 in [false, true] {
                    let old = self.default_route(v6);
                    let new = self.default_via(g, v6);
                    match (&old, &new) {
                        (_, Some(n)) => {
                            tryc!(nl.replace(n), format!("replacing the default route by {n}"));
                            ch.added.push(n.clone());
                        }
                        (Some(o), None) => {
                            tryc!(nl.delete(o), format!("deleting {o}"));
                        }
                        (None, None) => {}
                    }
                    if let Some(o) = old
                        && new.as_ref() != Some(&o)
                    {
                        ch.removed.push(o);
                    }
                }
                self.gateway = *g;
                self.gateway_host = Some(*host);
            }
        }
        Ok(ch)
    }

    /// Routes through interface `k` (what the kernel removes when it goes down).
    fn routes_through(&self, k: usize) -> Vec<Route> {
        let index = self.ifaces[k].1;
        let mut v = Vec::new();
        for v6 in [false, true] {
            if let Some(r) = self.default_route(v6)
                && r.dev.as_ref().is_some_and(|(i, _)| *i == index)
            {
                v.push(r);
            }
            v.extend(self.connected(k, v6));
        }
        v
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The `unreachable` / `prohibit` route standing in for `r` during a route loss.
fn override_of(r: &Route, mode: LossMode) -> Route {
    Route {
        kind: if mode == LossMode::Prohibit {
            RouteType::Prohibit
        } else {
            RouteType::Unreachable
        },
        dst: r.dst,
        prefix_len: r.prefix_len,
        gateway: None,
        dev: None,
        prefsrc: None,
        protocol: libc::RTPROT_BOOT,
        scope: libc::RT_SCOPE_UNIVERSE,
        metric: if r.is_v6() {
            OVERRIDE_METRIC_V6
        } else {
            r.metric
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn plan_orders_steps_and_names_their_source() {
        let s = Scenario::parse(
            r#"
            [network]
            prefix_v4_len = 24
            prefix_v6_len = 64
            gateway = "gw"
            router_v4 = "198.18.0.253"
            [[interface]]
            name = "zzsim1"
            local_v4 = "198.18.1.1"
            [[host]]
            name = "gw"
            addresses = ["198.18.0.254", "2001:db8::fe:1"]
            [[host]]
            name = "gw2"
            addresses = ["198.18.1.254"]
            [[link]]
            start_ms = 5000
            duration_ms = 1000
            interface = "zzsim1"
            mode = "carrier"
            [[route_loss]]
            start_ms = 1000
            duration_ms = 500
            routes = "default"
            [[route_change]]
            at_ms = 1500
            gateway = "gw2"
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        let p = plan(&s);
        let got: Vec<(u64, &str)> = p.iter().map(|s| (s.at_us, s.source.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (1_000_000, "route_loss #1"),
                (1_500_000, "route_loss #1"),
                (1_500_000, "route_change #1"),
                (5_000_000, "link #1"),
                (6_000_000, "link #1"),
            ]
        );
        assert!(matches!(p[1].kind, StepKind::RoutesRestored(_)));
        assert_eq!(
            p[2].kind,
            StepKind::RouteChange(
                1,
                Gateway {
                    v4: Some(("198.18.1.254".parse().unwrap(), 1)),
                    v6: None,
                }
            )
        );
        assert_eq!(p[3].kind, StepKind::LinkDown(1, LinkMode::Carrier));
    }
}
