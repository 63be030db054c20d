//! Which netlink changes become context events ([`zzping_lib::events`]): every default
//! route added, changed or removed; every address added or removed; and the link and
//! carrier changes of the interfaces that carry a default route (or did since the daemon
//! started: when a Wi-Fi link comes back, its carrier returns before the network manager
//! restores the route, and the `link_up` must not be lost).
//!
//! The first state netlink reports of an interface (the dump at start, a new interface)
//! is a state, not a change: it is remembered, not recorded.

use zzping_lib::events::{ContextEvent, EventKind};

use crate::icmp::Family;
use crate::netlink::NetEvent;

/// The link states and default-route interfaces the events are judged against.
#[derive(Debug, Default)]
pub struct NetContext {
    /// (ifindex, up, carrier) of every interface seen.
    links: Vec<(u32, bool, bool)>,
    /// Interfaces that carried a default route since start.
    route_ifaces: Vec<u32>,
}

impl NetContext {
    /// The context events of `ev` at `t_us` (none or one); `name_of` names an
    /// interface by index.
    pub fn on(
        &mut self,
        ev: &NetEvent,
        t_us: u64,
        name_of: impl Fn(u32) -> Option<String>,
    ) -> Vec<ContextEvent> {
        match ev {
            NetEvent::DefaultRoute {
                family,
                gateway,
                ifindex,
                removed,
                ..
            } => {
                if *ifindex != 0 && !self.route_ifaces.contains(ifindex) {
                    self.route_ifaces.push(*ifindex);
                }
                let fam = match family {
                    Family::V4 => 4,
                    Family::V6 => 6,
                };
                let name = (*ifindex != 0).then(|| name_of(*ifindex)).flatten();
                vec![ContextEvent::route(
                    t_us,
                    fam,
                    *gateway,
                    name.as_deref(),
                    *removed,
                )]
            }
            NetEvent::Address {
                ifindex,
                address,
                prefix_len,
                removed,
            } => vec![ContextEvent::address(
                t_us,
                *address,
                *prefix_len,
                name_of(*ifindex).as_deref(),
                *removed,
            )],
            NetEvent::Link {
                ifindex,
                name,
                up,
                carrier,
            } => {
                let state = (*ifindex, *up, *carrier);
                let Some(i) = self.links.iter().position(|l| l.0 == *ifindex) else {
                    self.links.push(state);
                    return Vec::new();
                };
                let (_, was_up, had_carrier) = std::mem::replace(&mut self.links[i], state);
                if !self.route_ifaces.contains(ifindex) {
                    return Vec::new();
                }
                // A link taken down loses its carrier with it (and gets it back with it):
                // one event says it. A carrier change of a link that stays up is its own.
                let kind = if was_up != *up {
                    if *up {
                        EventKind::LinkUp
                    } else {
                        EventKind::LinkDown
                    }
                } else if *up && had_carrier != *carrier {
                    if *carrier {
                        EventKind::CarrierOn
                    } else {
                        EventKind::CarrierOff
                    }
                } else {
                    return Vec::new();
                };
                vec![ContextEvent::link(t_us, kind, name)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, up: bool, carrier: bool) -> NetEvent {
        NetEvent::Link {
            ifindex,
            name: format!("eth{ifindex}"),
            up,
            carrier,
        }
    }

    fn kinds(v: &[ContextEvent]) -> Vec<&str> {
        v.iter().map(|e| e.kind.name()).collect()
    }

    #[test]
    fn links_of_default_route_interfaces_only_and_changes_only() {
        let mut c = NetContext::default();
        let name = |i: u32| Some(format!("eth{i}"));
        // The state at start: remembered, not recorded.
        assert!(c.on(&link(2, true, true), 1, name).is_empty());
        assert!(c.on(&link(3, true, true), 1, name).is_empty());
        let route = NetEvent::DefaultRoute {
            family: Family::V4,
            gateway: Some("198.18.0.1".parse().unwrap()),
            ifindex: 2,
            metric: 100,
            removed: false,
        };
        let r = c.on(&route, 2, name);
        assert_eq!(kinds(&r), ["route_change"]);
        assert_eq!(r[0].interface.as_deref(), Some("eth2"));
        assert_eq!((r[0].family, r[0].removed), (Some(4), false));
        assert_eq!(r[0].gateway, Some("198.18.0.1".parse().unwrap()));
        // An interface without a default route: nothing.
        assert!(c.on(&link(3, false, false), 3, name).is_empty());
        // The route's interface: carrier lost, then the link down.
        assert_eq!(
            kinds(&c.on(&link(2, true, false), 4, name)),
            ["carrier_off"]
        );
        assert_eq!(kinds(&c.on(&link(2, false, false), 5, name)), ["link_down"]);
        // The route goes; the link comes back without it, and is still recorded.
        let gone = NetEvent::DefaultRoute {
            family: Family::V4,
            gateway: Some("198.18.0.1".parse().unwrap()),
            ifindex: 2,
            metric: 100,
            removed: true,
        };
        assert!(c.on(&gone, 6, name)[0].removed);
        let back = c.on(&link(2, true, true), 7, name);
        assert_eq!(kinds(&back), ["link_up"]);
        assert_eq!(back[0].interface.as_deref(), Some("eth2"));
        assert_eq!(back[0].t_us, 7);
        // No change: nothing.
        assert!(c.on(&link(2, true, true), 8, name).is_empty());
        // Taken down, the carrier goes with the link: one event each way.
        assert_eq!(kinds(&c.on(&link(2, false, false), 8, name)), ["link_down"]);
        assert_eq!(kinds(&c.on(&link(2, true, true), 8, name)), ["link_up"]);
        // Up without a carrier (cable out meanwhile), then the carrier.
        assert_eq!(kinds(&c.on(&link(2, false, false), 8, name)), ["link_down"]);
        assert_eq!(kinds(&c.on(&link(2, true, false), 8, name)), ["link_up"]);
        assert_eq!(kinds(&c.on(&link(2, true, true), 8, name)), ["carrier_on"]);
        // Addresses, on any interface.
        let a = c.on(
            &NetEvent::Address {
                ifindex: 3,
                address: "2001:db8::5".parse().unwrap(),
                prefix_len: 64,
                removed: true,
            },
            9,
            name,
        );
        assert_eq!(kinds(&a), ["address_removed"]);
        assert_eq!(a[0].interface.as_deref(), Some("eth3"));
    }
}
