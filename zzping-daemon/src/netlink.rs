//! The kernel's view of this machine's network, followed through netlink (rtnetlink).
//!
//! [`NetlinkMonitor`] owns a non-blocking `NETLINK_ROUTE` socket subscribed to the link,
//! IPv4/IPv6 route and IPv4/IPv6 address multicast groups; the daemon registers it in
//! its poll ([`crate::daemon`]'s `NETLINK` token) and calls [`NetlinkMonitor::read`] when
//! it is readable. Messages are parsed with `netlink-packet-route` into [`NetEvent`]s:
//!
//! - [`NetEvent::Link`]: an interface appeared or its administrative state (`up`) or
//!   carrier changed (only changes: the monitor remembers each link's state).
//! - [`NetEvent::DefaultRoute`]: a default route (`0.0.0.0/0` or `::/0`, unicast, main
//!   table) appeared or went away. Each notification is an event in the order the kernel
//!   sent it (a route that came and went before the daemon read its notifications is
//!   still told, and so are its interface's link changes around it). The messages alone
//!   do not tell everything (a replace of an IPv4 route says nothing of the route it
//!   replaced; a link taken down loses its IPv4 routes without a notification), so after
//!   a read that saw a route or link change the default routes are dumped again and
//!   compared with the known ones: every route that went away is reported `removed`.
//! - [`NetEvent::Address`]: an address was added to or removed from an interface (only
//!   changes: the kernel also sends a "new address" message for an address it already
//!   has when its flags or lifetimes change, e.g. at every IPv6 router advertisement
//!   refreshing a SLAAC address, or when its link comes back up; those are not events).
//!
//! At [`NetlinkMonitor::open`], default routes, links and addresses are dumped (on a
//! second, short-lived socket, so a dump's replies never mix with the multicast
//! stream): the first [`NetlinkMonitor::read`] reports the current default routes and
//! links as events (the addresses are only remembered). When the kernel could not queue
//! a notification (`ENOBUFS`: the socket's buffer overflowed), the monitor logs it and
//! dumps everything again; the differences come out as events.
//! Nothing here stops pinging: every error is logged and the monitor goes on.
//!
//! Events are rare (a link or route change), so parsing allocates; the ping path never
//! runs through here.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use tracing::{debug, warn};

use crate::icmp::Family;

/// The multicast groups the monitor listens to.
const GROUPS: u32 = (libc::RTMGRP_LINK
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV6_ROUTE) as u32;
/// Receive buffer asked of the kernel for the multicast socket, bytes: room for a burst
/// of notifications (an interface coming up brings a few dozen) between two wakeups.
const RCVBUF_BYTES: usize = 1 << 20;
/// Largest datagram read at once, bytes (the kernel sends at most a page, or 32 KiB
/// for dumps).
const DATAGRAM_BYTES: usize = 64 * 1024;
/// How long a dump may take before it is abandoned (the kernel answers at once; this
/// only bounds a dump that never completes).
const DUMP_TIMEOUT_MS: i64 = 1000;
/// Messages of one dump read at most (a machine with a full routing table has hundreds
/// of thousands of routes; the default ones come among them).
const DUMP_MAX_DATAGRAMS: usize = 100_000;
/// `RT_TABLE_MAIN`: the table a default route of the machine lives in.
const RT_TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// A change in the machine's network, as netlink reports it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// An interface appeared, or its state changed (`removed` links report `up: false,
    /// carrier: false`).
    Link {
        /// Interface index.
        ifindex: u32,
        /// Interface name (`wlan0`).
        name: String,
        /// Administratively up (`IFF_UP`).
        up: bool,
        /// Carrier present (`IFF_LOWER_UP`: cable in, Wi-Fi associated).
        carrier: bool,
    },
    /// A default route appeared or went away.
    DefaultRoute {
        /// IPv4 or IPv6.
        family: Family,
        /// The next hop (`None`: a point-to-point default route, `default dev ppp0`).
        gateway: Option<IpAddr>,
        /// Outgoing interface index (0 when the route names none).
        ifindex: u32,
        /// Route metric (priority; the kernel prefers the lowest).
        metric: u32,
        /// The route went away.
        removed: bool,
    },
    /// An address was added to or removed from an interface.
    Address {
        /// Interface index.
        ifindex: u32,
        /// The address.
        address: IpAddr,
        /// Prefix length.
        prefix_len: u8,
        /// The address went away.
        removed: bool,
    },
}

/// One default route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    /// IPv4 or IPv6.
    pub family: Family,
    /// The next hop, if the route has one.
    pub gateway: Option<IpAddr>,
    /// Outgoing interface index.
    pub ifindex: u32,
    /// Metric (lowest wins).
    pub metric: u32,
}

impl DefaultRoute {
    fn event(&self, removed: bool) -> NetEvent {
        NetEvent::DefaultRoute {
            family: self.family,
            gateway: self.gateway,
            ifindex: self.ifindex,
            metric: self.metric,
            removed,
        }
    }
}

/// The state of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkState {
    ifindex: u32,
    name: String,
    up: bool,
    carrier: bool,
}

impl LinkState {
    fn event(&self) -> NetEvent {
        NetEvent::Link {
            ifindex: self.ifindex,
            name: self.name.clone(),
            up: self.up,
            carrier: self.carrier,
        }
    }
}

/// One rtnetlink message, reduced to what the monitor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Link(LinkState, bool),
    Route(DefaultRoute, bool),
    Address(AddressKey, bool),
    /// The end of a dump.
    Done,
    /// An error answer (negative errno).
    Error(i32),
}

/// The netlink socket and the state the events are computed against.
#[derive(Debug)]
pub struct NetlinkMonitor {
    socket: Socket,
    buf: Vec<u8>,
    routes: Vec<DefaultRoute>,
    links: Vec<LinkState>,
    /// The addresses of every interface: (interface index, address, prefix length).
    addresses: Vec<AddressKey>,
    /// Events found outside a read (the initial dump), handed out by the next read.
    pending: Vec<NetEvent>,
    /// Times notifications were lost (`ENOBUFS`) and the state was dumped again.
    overflows: u64,
}

impl AsRawFd for NetlinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl NetlinkMonitor {
    /// Opens the subscribed socket and dumps the current default routes and links (they
    /// come out of the first [`NetlinkMonitor::read`]).
    pub fn open() -> io::Result<NetlinkMonitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, GROUPS))?;
        socket.set_non_blocking(true)?;
        if let Err(e) = socket.set_rx_buf_sz(RCVBUF_BYTES) {
            debug!("netlink: SO_RCVBUF {RCVBUF_BYTES}: {e}");
        }
        let mut m = NetlinkMonitor {
            socket,
            buf: vec![0; DATAGRAM_BYTES],
            routes: Vec::new(),
            links: Vec::new(),
            addresses: Vec::new(),
            pending: Vec::new(),
            overflows: 0,
        };
        let mut out = Vec::new();
        m.resync(&mut out)?;
        m.pending = out;
        if let Err(e) = m.resync_addresses(&mut Vec::new()) {
            warn!("netlink: dumping the addresses: {e}");
        }
        Ok(m)
    }

    /// The default route of `family` the kernel uses (lowest metric) that has a gateway.
    pub fn default_route(&self, family: Family) -> Option<DefaultRoute> {
        self.routes
            .iter()
            .filter(|r| r.family == family && r.gateway.is_some())
            .min_by_key(|r| r.metric)
            .copied()
    }

    /// How many times notifications were lost (the socket's buffer overflowed) and the
    /// state was dumped again.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// The name of interface `ifindex`, if known.
    pub fn link_name(&self, ifindex: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.ifindex == ifindex)
            .map(|l| l.name.as_str())
    }

    /// Reads every queued notification (until the socket would block) and appends the
    /// resulting events to `out`. Errors are logged, never returned: an overflow
    /// (`ENOBUFS`) dumps the state again.
    pub fn read(&mut self, out: &mut Vec<NetEvent>) {
        out.append(&mut self.pending);
        let mut routes_changed = false;
        let mut overflowed = false;
        let mut parsed = Vec::new();
        loop {
            match self.socket.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT) {
                Ok(n) => {
                    let n = n.min(self.buf.len());
                    parse_datagram(&self.buf[..n], &mut parsed);
                    for p in parsed.drain(..) {
                        match p {
                            Parsed::Route(r, removed) => {
                                routes_changed = true;
                                on_route(&mut self.routes, r, removed, out);
                            }
                            Parsed::Link(l, removed) => {
                                // A link taken down loses its IPv4 routes without a
                                // word from the kernel: the dump below finds them gone.
                                let before = out.len();
                                on_link(&mut self.links, l, removed, out);
                                routes_changed |= out.len() > before;
                            }
                            Parsed::Address(a, removed) => {
                                on_address(&mut self.addresses, a, removed, out)
                            }
                            Parsed::Done | Parsed::Error(_) => {}
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Notifications were lost; the state is dumped again below.
                    overflowed = true;
                }
                Err(e) => {
                    warn!("netlink: reading notifications: {e}");
                    break;
                }
            }
        }
        if overflowed {
            self.overflows += 1;
            warn!("netlink: notifications lost (socket buffer full); reading the state again");
        }
        if overflowed || routes_changed {
            if let Err(e) = self.resync_routes(out, overflowed) {
                warn!("netlink: dumping the routes and links: {e}");
            }
        }
        if overflowed && let Err(e) = self.resync_addresses(out) {
            warn!("netlink: dumping the addresses: {e}");
        }
    }

    /// Dumps default routes and links, and emits the differences with the known state.
    fn resync(&mut self, out: &mut Vec<NetEvent>) -> io::Result<()> {
        self.resync_routes(out, true)
    }

    /// Dumps the default routes (and the links too, when `links`) and emits every
    /// difference with the known state.
    fn resync_routes(&mut self, out: &mut Vec<NetEvent>, links: bool) -> io::Result<()> {
        let dumped = dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))?;
        let now: Vec<DefaultRoute> = dumped
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Route(r, false) => Some(r),
                _ => None,
            })
            .collect();
        for r in &self.routes {
            if !now.contains(r) {
                out.push(r.event(true));
            }
        }
        for r in &now {
            if !self.routes.contains(r) {
                out.push(r.event(false));
            }
        }
        self.routes = now;
        if links {
            let dumped = dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
            let now: Vec<LinkState> = dumped
                .into_iter()
                .filter_map(|p| match p {
                    Parsed::Link(l, false) => Some(l),
                    _ => None,
                })
                .collect();
            apply_dump(
                &mut self.links,
                now,
                |a, b| a.ifindex == b.ifindex,
                on_link,
                out,
            );
        }
        Ok(())
    }
}

impl NetlinkMonitor {
    /// Dumps the addresses and emits every difference with the known ones.
    fn resync_addresses(&mut self, out: &mut Vec<NetEvent>) -> io::Result<()> {
        let dumped = dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        let now: Vec<AddressKey> = dumped
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Address(a, false) => Some(a),
                _ => None,
            })
            .collect();
        apply_dump(&mut self.addresses, now, |a, b| a == b, on_address, out);
        Ok(())
    }
}

/// A fresh dump of a kind of state (`now`) against what is `known`: what the dump no
/// longer holds is removed, then every dumped item is applied, through `on` (which
/// updates `known` and emits the events of a change).
fn apply_dump<T: Clone>(
    known: &mut Vec<T>,
    now: Vec<T>,
    same: impl Fn(&T, &T) -> bool,
    on: fn(&mut Vec<T>, T, bool, &mut Vec<NetEvent>),
    out: &mut Vec<NetEvent>,
) {
    let gone: Vec<T> = known
        .iter()
        .filter(|k| !now.iter().any(|n| same(k, n)))
        .cloned()
        .collect();
    for g in gone {
        on(known, g, true, out);
    }
    for n in now {
        on(known, n, false, out);
    }
}

/// A default route in `routes`, from its notification: an event when it was not known
/// (added) or known (removed). Taken in the order the kernel sent it, so a route that
/// came and went before the notifications were read is still told (the dump after the
/// read then finds it gone), and the events of its interface around it are judged with
/// it known.
fn on_route(
    routes: &mut Vec<DefaultRoute>,
    r: DefaultRoute,
    removed: bool,
    out: &mut Vec<NetEvent>,
) {
    match (routes.iter().position(|k| *k == r), removed) {
        (Some(i), true) => {
            routes.swap_remove(i);
            out.push(r.event(true));
        }
        (None, false) => {
            routes.push(r);
            out.push(r.event(false));
        }
        // A known route again (its flags changed), or one never seen going away.
        _ => {}
    }
}

/// An address in `addresses`: an event when it was not known (added) or known (removed).
fn on_address(
    addresses: &mut Vec<AddressKey>,
    a: AddressKey,
    removed: bool,
    out: &mut Vec<NetEvent>,
) {
    let known = addresses.iter().position(|k| *k == a);
    let changed = match (known, removed) {
        (Some(i), true) => {
            addresses.swap_remove(i);
            true
        }
        (None, false) => {
            addresses.push(a);
            true
        }
        // An update of a known address, or the removal of one never seen.
        _ => false,
    };
    if changed {
        out.push(NetEvent::Address {
            ifindex: a.ifindex,
            address: a.address,
            prefix_len: a.prefix_len,
            removed,
        });
    }
}

/// A link's new state in `links`: an event when it changed (a removed link reports
/// `up: false, carrier: false`).
fn on_link(links: &mut Vec<LinkState>, mut l: LinkState, removed: bool, out: &mut Vec<NetEvent>) {
    let known = links.iter().position(|k| k.ifindex == l.ifindex);
    if removed {
        if let Some(i) = known {
            links.swap_remove(i);
        }
        l.up = false;
        l.carrier = false;
        out.push(l.event());
        return;
    }
    match known {
        Some(i) if links[i] == l => {}
        Some(i) => {
            out.push(l.event());
            links[i] = l;
        }
        None => {
            out.push(l.event());
            links.push(l);
        }
    }
}

/// Sends one dump request on a fresh socket and reads its answer to the end (bounded in
/// time and count).
fn dump(request: RouteNetlinkMessage) -> io::Result<Vec<Parsed>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    set_recv_timeout(&socket, DUMP_TIMEOUT_MS)?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(request));
    msg.finalize();
    let mut req = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut req);
    socket.send(&req, 0)?;
    let mut buf = vec![0u8; DATAGRAM_BYTES];
    let mut out = Vec::new();
    let mut parsed = Vec::new();
    for _ in 0..DUMP_MAX_DATAGRAMS {
        let n = socket.recv(&mut &mut buf[..], 0)?.min(buf.len());
        parse_datagram(&buf[..n], &mut parsed);
        for p in parsed.drain(..) {
            match p {
                Parsed::Done => return Ok(out),
                Parsed::Error(code) => return Err(io::Error::from_raw_os_error(-code)),
                p => out.push(p),
            }
        }
    }
    Err(io::Error::other("dump did not end"))
}

fn set_recv_timeout(socket: &Socket, ms: i64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: ms / 1000,
        tv_usec: (ms % 1000) * 1000,
    };
    // SAFETY: a valid fd and a `timeval` of the size given, read by the kernel only.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses every message of one datagram into `out` (messages of no interest, and ones
/// that do not parse, are skipped; the latter logged at debug).
fn parse_datagram(mut buf: &[u8], out: &mut Vec<Parsed>) {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            debug!(
                "netlink: message length {len} in a datagram of {}",
                buf.len()
            );
            return;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            Ok(m) => {
                if let Some(p) = reduce(m.payload) {
                    out.push(p);
                }
            }
            Err(e) => debug!("netlink: skipping a message: {e}"),
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or_default();
    }
}

fn reduce(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<Parsed> {
    use RouteNetlinkMessage as M;
    match payload {
        NetlinkPayload::Done(_) => Some(Parsed::Done),
        NetlinkPayload::Error(e) => e.code.map(|c| Parsed::Error(c.get())),
        NetlinkPayload::InnerMessage(m) => match m {
            M::NewLink(l) => link(&l).map(|l| Parsed::Link(l, false)),
            M::DelLink(l) => link(&l).map(|l| Parsed::Link(l, true)),
            M::NewRoute(r) => default_route(&r).map(|r| Parsed::Route(r, false)),
            M::DelRoute(r) => default_route(&r).map(|r| Parsed::Route(r, true)),
            M::NewAddress(a) => address(&a).map(|a| Parsed::Address(a, false)),
            M::DelAddress(a) => address(&a).map(|a| Parsed::Address(a, true)),
            _ => None,
        },
        _ => None,
    }
}

fn link(m: &LinkMessage) -> Option<LinkState> {
    let name = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    Some(LinkState {
        ifindex: m.header.index,
        name,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp),
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The default route a route message describes, if it is one (`0/0`, unicast, main
/// table).
fn default_route(m: &RouteMessage) -> Option<DefaultRoute> {
    let h = &m.header;
    let family = match h.address_family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    if h.destination_prefix_length != 0 || h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(h.table);
    let (mut gateway, mut ifindex, mut metric) = (None, 0, 0);
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::Oif(i) => ifindex = *i,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) if gateway.is_none() => {
                // An ECMP default route: its first next hop stands for it.
                if let Some(hop) = hops.first() {
                    ifindex = hop.interface_index;
                    gateway = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_ip(g),
                        _ => None,
                    });
                }
            }
            _ => {}
        }
    }
    (table == RT_TABLE_MAIN).then_some(DefaultRoute {
        family,
        gateway,
        ifindex,
        metric,
    })
}

/// One address of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddressKey {
    ifindex: u32,
    address: IpAddr,
    prefix_len: u8,
}

fn address(m: &AddressMessage) -> Option<AddressKey> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on a
    // point-to-point link); IPv6 sends only IFA_ADDRESS.
    let pick = |local: bool| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    let address = pick(true).or_else(|| pick(false))?;
    Some(AddressKey {
        ifindex: m.header.index,
        address,
        prefix_len: m.header.prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use netlink_packet_route::route::RouteProtocol;

    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            msg.finalize();
            let mut b = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut b);
            out.extend_from_slice(&b);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out
    }

    fn route(family: AddressFamily, dst_len: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = family;
        r.header.destination_prefix_length = dst_len;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.kind = RouteType::Unicast;
        r.header.protocol = RouteProtocol::Boot;
        r.attributes = attrs;
        r
    }

    fn parse(buf: &[u8]) -> Vec<Parsed> {
        let mut v = Vec::new();
        parse_datagram(buf, &mut v);
        v
    }

    #[test]
    fn default_routes_are_told_from_other_routes() {
        let gw4 = RouteAttribute::Gateway(RouteAddress::Inet("198.18.0.254".parse().unwrap()));
        let gw6 = RouteAttribute::Gateway(RouteAddress::Inet6("2001:db8::fe".parse().unwrap()));
        let mut other_table = route(AddressFamily::Inet, 0, vec![gw4.clone()]);
        other_table.attributes.push(RouteAttribute::Table(52));
        let mut blackhole = route(AddressFamily::Inet, 0, vec![]);
        blackhole.header.kind = RouteType::BlackHole;
        let buf = datagram(vec![
            RouteNetlinkMessage::NewRoute(route(
                AddressFamily::Inet,
                0,
                vec![
                    gw4.clone(),
                    RouteAttribute::Oif(3),
                    RouteAttribute::Priority(600),
                ],
            )),
            // A subnet route, a policy table's default, a blackhole: not default routes.
            RouteNetlinkMessage::NewRoute(route(AddressFamily::Inet, 24, vec![gw4.clone()])),
            RouteNetlinkMessage::NewRoute(other_table),
            RouteNetlinkMessage::NewRoute(blackhole),
            RouteNetlinkMessage::DelRoute(route(
                AddressFamily::Inet6,
                0,
                vec![gw6, RouteAttribute::Oif(4)],
            )),
        ]);
        assert_eq!(
            parse(&buf),
            vec![
                Parsed::Route(
                    DefaultRoute {
                        family: Family::V4,
                        gateway: Some("198.18.0.254".parse().unwrap()),
                        ifindex: 3,
                        metric: 600
                    },
                    false
                ),
                Parsed::Route(
                    DefaultRoute {
                        family: Family::V6,
                        gateway: Some("2001:db8::fe".parse().unwrap()),
                        ifindex: 4,
                        metric: 0
                    },
                    true
                ),
            ]
        );
    }

    #[test]
    fn links_and_addresses_parse() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        l.attributes.push(LinkAttribute::IfName("wlan0".into()));
        let mut down = l.clone();
        down.header.flags = LinkFlags::Up;
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.index = 7;
        a.header.prefix_len = 24;
        a.attributes
            .push(AddressAttribute::Address("198.18.0.9".parse().unwrap()));
        a.attributes
            .push(AddressAttribute::Local("198.18.0.1".parse().unwrap()));
        let buf = datagram(vec![
            RouteNetlinkMessage::NewLink(l),
            RouteNetlinkMessage::NewLink(down),
            RouteNetlinkMessage::DelAddress(a),
        ]);
        let state = |up, carrier| LinkState {
            ifindex: 7,
            name: "wlan0".into(),
            up,
            carrier,
        };
        assert_eq!(
            parse(&buf),
            vec![
                Parsed::Link(state(true, true), false),
                Parsed::Link(state(true, false), false),
                Parsed::Address(
                    AddressKey {
                        ifindex: 7,
                        address: "198.18.0.1".parse().unwrap(),
                        prefix_len: 24,
                    },
                    true
                ),
            ]
        );
    }

    /// Only changes of the set of addresses are events: a "new address" message for one
    /// already known (new lifetimes, the link back up) and the removal of one never seen
    /// are not.
    #[test]
    fn address_messages_become_events_only_when_the_set_changes() {
        let a = AddressKey {
            ifindex: 3,
            address: "2001:db8::1".parse().unwrap(),
            prefix_len: 64,
        };
        let b = AddressKey {
            address: "2001:db8::2".parse().unwrap(),
            ..a
        };
        let mut known = vec![a];
        let mut out = Vec::new();
        on_address(&mut known, a, false, &mut out);
        on_address(&mut known, b, true, &mut out);
        assert!(out.is_empty(), "{out:?}");
        on_address(&mut known, b, false, &mut out);
        on_address(&mut known, b, false, &mut out);
        on_address(&mut known, a, true, &mut out);
        on_address(&mut known, a, true, &mut out);
        let ev = |k: AddressKey, removed| NetEvent::Address {
            ifindex: k.ifindex,
            address: k.address,
            prefix_len: k.prefix_len,
            removed,
        };
        assert_eq!(out, [ev(b, false), ev(a, true)]);
        assert_eq!(known, [b]);
    }

    #[test]
    fn garbage_is_skipped_without_panic() {
        let good = datagram(vec![RouteNetlinkMessage::NewRoute(route(
            AddressFamily::Inet,
            0,
            vec![],
        ))]);
        assert_eq!(parse(&good).len(), 1);
        // A length past the end, a length below the header, truncations of a good one.
        let mut bad = good.clone();
        bad[0] = 0xff;
        assert!(parse(&bad).is_empty());
        assert!(parse(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_empty());
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
    }

    #[test]
    fn link_changes_are_reported_once() {
        // The monitor's state machine, without a socket: the same state twice is one event.
        let mut links: Vec<LinkState> = Vec::new();
        let mut out = Vec::new();
        let s = |up, carrier| LinkState {
            ifindex: 2,
            name: "eth0".into(),
            up,
            carrier,
        };
        on_link(&mut links, s(true, true), false, &mut out);
        on_link(&mut links, s(true, true), false, &mut out);
        on_link(&mut links, s(true, false), false, &mut out);
        on_link(&mut links, s(true, false), true, &mut out);
        assert!(links.is_empty());
        assert_eq!(
            out,
            vec![
                s(true, true).event(),
                s(true, false).event(),
                s(false, false).event()
            ]
        );
    }

    /// Reads events until `want` holds for the ones read so far, or `limit` passed.
    fn read_until(
        m: &mut NetlinkMonitor,
        seen: &mut Vec<NetEvent>,
        limit: std::time::Duration,
        want: impl Fn(&[NetEvent]) -> bool,
    ) -> bool {
        let end = std::time::Instant::now() + limit;
        loop {
            m.read(seen);
            if want(seen) {
                return true;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: m.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&raw mut pfd, 1, left.as_millis().min(1000) as i32) };
        }
    }

    fn ip_batch(lines: &str) {
        use std::io::Write;
        let mut c = std::process::Command::new(zzping_testkit::tool("ip", "iproute2"))
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run ip -batch");
        c.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        let st = zzping_testkit::process::wait_bounded(
            &mut c,
            std::time::Duration::from_secs(30),
            "ip -batch",
        );
        assert!(st.success(), "ip -batch failed");
    }

    /// Notifications read late (a busy machine, a stalled loop) tell the same story as
    /// notifications read at once: a default route that came and went before the read is
    /// told, added then removed, with its link's change between.
    #[test]
    fn a_route_that_came_and_went_before_the_read_is_told() {
        zzping_testkit::require!(zzping_testkit::privileges::netns());
        std::thread::spawn(|| {
            zzping_testkit::netns::enter();
            let mut m = NetlinkMonitor::open().unwrap();
            let mut seen = Vec::new();
            m.read(&mut seen);
            // All of it before the next read. A bridge without ports has a carrier
            // once up; taking it down flushes its IPv4 routes without a notification.
            ip_batch(
                "link add zz0 type bridge\n\
                 addr add 198.18.7.1/24 dev zz0\n\
                 link set zz0 up\n\
                 route add default via 198.18.7.254 dev zz0\n\
                 link set zz0 down\n",
            );
            seen.clear();
            let gw: IpAddr = "198.18.7.254".parse().unwrap();
            let is_route = |e: &NetEvent, rm: bool| {
                matches!(e, NetEvent::DefaultRoute { gateway: Some(g), removed, .. }
                    if *g == gw && *removed == rm)
            };
            let down =
                |e: &NetEvent| matches!(e, NetEvent::Link { name, up: false, .. } if name == "zz0");
            assert!(
                read_until(&mut m, &mut seen, std::time::Duration::from_secs(5), |s| s
                    .iter()
                    .any(|e| is_route(e, true))),
                "{seen:?}"
            );
            // In this order: the route added, the link down, the route gone.
            let added = seen.iter().position(|e| is_route(e, false));
            let after = |i: Option<usize>, f: &dyn Fn(&NetEvent) -> bool| {
                let i = i? + 1;
                seen[i..].iter().position(f).map(|j| i + j)
            };
            let linkdown = after(added, &down);
            let removed = after(linkdown, &|e| is_route(e, true));
            assert!(removed.is_some(), "{seen:?}");
            assert_eq!(m.default_route(Family::V4), None);
        })
        .join()
        .unwrap();
    }

    /// Notifications the kernel could not queue (a receive buffer far too small for a
    /// burst of address changes) are noticed, and the default route added meanwhile
    /// still comes out (from the dump that follows).
    #[test]
    fn an_overflow_dumps_the_state_again() {
        zzping_testkit::require!(zzping_testkit::privileges::netns());
        std::thread::spawn(|| {
            zzping_testkit::netns::enter();
            ip("link add zz0 type bridge");
            ip("addr add 198.18.0.1/24 dev zz0");
            ip("link set zz0 up");
            let mut m = NetlinkMonitor::open().unwrap();
            // The smallest buffer the kernel allows holds a couple of notifications.
            m.socket.set_rx_buf_sz(0).unwrap();
            let mut seen = Vec::new();
            m.read(&mut seen);
            let batch: String = (1..=200)
                .map(|i| {
                    format!(
                        "addr add 198.18.{}.{}/32 dev zz0\n",
                        10 + i / 250,
                        i % 250 + 1
                    )
                })
                .collect();
            ip_batch(&batch);
            ip("route add default via 198.18.0.254");
            seen.clear();
            let route = |e: &NetEvent| {
                matches!(e, NetEvent::DefaultRoute { gateway: Some(g), removed: false, .. }
                    if *g == "198.18.0.254".parse::<IpAddr>().unwrap())
            };
            assert!(
                read_until(&mut m, &mut seen, std::time::Duration::from_secs(5), |s| s
                    .iter()
                    .any(route)),
                "{seen:?}"
            );
            assert!(
                m.overflows() >= 1,
                "no overflow seen: {} events",
                seen.len()
            );
        })
        .join()
        .unwrap();
    }

    fn ip(args: &str) {
        zzping_testkit::netns::ip(&args.split_whitespace().collect::<Vec<_>>());
    }

    /// In a namespace of its own: a default route added and removed (both families) and
    /// a link set down and up come out as the events that say so.
    #[test]
    fn kernel_changes_come_out_as_events() {
        zzping_testkit::require!(zzping_testkit::privileges::netns());
        // The namespace belongs to this thread (and the `ip` children it starts).
        std::thread::spawn(|| {
            zzping_testkit::netns::enter();
            // A bridge without ports: a link with a carrier, from a kernel without modules.
            ip("link add zz0 type bridge");
            ip("addr add 198.18.0.1/24 dev zz0");
            ip("-6 addr add 2001:db8::1/64 dev zz0 nodad");
            ip("link set zz0 up");
            ip("route add default via 198.18.0.254 metric 5");
            let mut m = NetlinkMonitor::open().unwrap();
            // The initial dump: the default route and the links as they are.
            let gw4: IpAddr = "198.18.0.254".parse().unwrap();
            let mut seen = Vec::new();
            m.read(&mut seen);
            let ifindex = seen
                .iter()
                .find_map(|e| match e {
                    NetEvent::Link {
                        ifindex,
                        name,
                        up: true,
                        ..
                    } if name == "zz0" => Some(*ifindex),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no link zz0 in the dump: {seen:?}"));
            let route4 = |removed| NetEvent::DefaultRoute {
                family: Family::V4,
                gateway: Some(gw4),
                ifindex,
                metric: 5,
                removed,
            };
            assert!(seen.contains(&route4(false)), "{seen:?}");
            assert_eq!(
                m.default_route(Family::V4).map(|r| r.gateway),
                Some(Some(gw4))
            );
            assert_eq!(m.link_name(ifindex), Some("zz0"));
            let limit = std::time::Duration::from_secs(5);

            seen.clear();
            ip("-6 route add default via 2001:db8::fe dev zz0");
            let route6 = |removed| NetEvent::DefaultRoute {
                family: Family::V6,
                gateway: Some("2001:db8::fe".parse().unwrap()),
                ifindex,
                metric: 1024,
                removed,
            };
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(&route6(false))),
                "{seen:?}"
            );
            seen.clear();
            ip("route del default via 198.18.0.254");
            ip("-6 route del default via 2001:db8::fe");
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(&route4(true))
                    && s.contains(&route6(true))),
                "{seen:?}"
            );
            assert_eq!(m.default_route(Family::V4), None);

            // New lifetimes for a known address (what a router advertisement does to a
            // SLAAC address) are no event; a new address is. The kernel queues the two
            // notifications in this order.
            seen.clear();
            ip("-6 addr change 2001:db8::1/64 dev zz0 valid_lft 3000 preferred_lft 2000");
            ip("addr add 198.18.0.2/24 dev zz0");
            let added = NetEvent::Address {
                ifindex,
                address: "198.18.0.2".parse().unwrap(),
                prefix_len: 24,
                removed: false,
            };
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(&added)),
                "{seen:?}"
            );
            assert!(
                !seen
                    .iter()
                    .any(|e| matches!(e, NetEvent::Address { address, .. }
                    if *address == "2001:db8::1".parse::<IpAddr>().unwrap())),
                "{seen:?}"
            );
            seen.clear();
            ip("link set zz0 down");
            let link = |up| NetEvent::Link {
                ifindex,
                name: "zz0".into(),
                up,
                carrier: up,
            };
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(&link(false))),
                "{seen:?}"
            );
            ip("link set zz0 up");
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(&link(true))),
                "{seen:?}"
            );
            // Taking the link down removed its addresses' routes, not its addresses; a
            // removed address is an event too.
            seen.clear();
            ip("addr del 198.18.0.1/24 dev zz0");
            assert!(
                read_until(&mut m, &mut seen, limit, |s| s.contains(
                    &NetEvent::Address {
                        ifindex,
                        address: "198.18.0.1".parse().unwrap(),
                        prefix_len: 24,
                        removed: true
                    }
                )),
                "{seen:?}"
            );
        })
        .join()
        .unwrap();
    }
}
