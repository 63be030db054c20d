//! Link, route and address changes from netlink ([`crate::netlink`]): read when its
//! socket is readable, each one handed to [`Daemon::on_net_event`].

use mio::Interest;
use mio::unix::SourceFd;
use tracing::{debug, info, warn};

use crate::clock::Now;
use crate::netlink::{NetEvent, NetlinkMonitor};

use super::{Daemon, NETLINK};

/// Opens the netlink monitor and registers it in `poll`; without it (an unusual kernel
/// or sandbox) the daemon pings on, without following changes.
pub(super) fn open_netlink(registry: &mio::Registry) -> Option<NetlinkMonitor> {
    let m = match NetlinkMonitor::open() {
        Ok(m) => m,
        Err(e) => {
            warn!("netlink: cannot follow link and route changes: {e}");
            return None;
        }
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&m);
    if let Err(e) = registry.register(&mut SourceFd(&fd), NETLINK, Interest::READABLE) {
        warn!("netlink: cannot follow link and route changes: {e}");
        return None;
    }
    Some(m)
}

impl Daemon {
    /// Reads the netlink monitor's events (the initial state at start, changes after)
    /// and hands each to [`Daemon::on_net_event`].
    pub(super) fn read_netlink(&mut self, now: Now) {
        let Some(m) = &mut self.netlink else { return };
        let mut events = std::mem::take(&mut self.net_events);
        m.read(&mut events);
        for ev in &events {
            self.on_net_event(ev, now);
        }
        events.clear();
        self.net_events = events;
    }

    /// One change of the machine's network (see [`NetEvent`]).
    pub(super) fn on_net_event(&mut self, ev: &NetEvent, now: Now) {
        // Recorded as context events (`net_context.rs` says which).
        let netlink = &self.netlink;
        for e in self.net_context.on(ev, now.real_us(), |i| {
            netlink.as_ref()?.link_name(i).map(str::to_owned)
        }) {
            self.outputs.record(e);
        }
        match ev {
            NetEvent::DefaultRoute {
                family,
                gateway,
                ifindex,
                metric,
                removed,
            } => {
                let dev = self.link_name(*ifindex);
                let what = if *removed { "removed" } else { "added" };
                match gateway {
                    Some(g) => {
                        info!("{family:?} default route via {g} dev {dev} metric {metric} {what}")
                    }
                    None => info!("{family:?} default route dev {dev} metric {metric} {what}"),
                }
                self.follow_gateway(*family, now);
            }
            NetEvent::Link {
                name, up, carrier, ..
            } => debug!("link {name}: up {up}, carrier {carrier}"),
            NetEvent::Address {
                ifindex,
                address,
                prefix_len,
                removed,
            } => debug!(
                "address {address}/{prefix_len} on {} {}",
                self.link_name(*ifindex),
                if *removed { "removed" } else { "added" }
            ),
        }
    }

    /// The name of interface `ifindex` (its index when unknown).
    fn link_name(&self, ifindex: u32) -> String {
        self.netlink
            .as_ref()
            .and_then(|m| m.link_name(ifindex))
            .map_or_else(|| format!("#{ifindex}"), str::to_owned)
    }
}
