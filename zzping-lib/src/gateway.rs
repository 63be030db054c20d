//! The machine's default gateways, from the kernel's routing tables in `/proc/net/route`
//! (IPv4) and `/proc/net/ipv6_route` (IPv6).
//!
//! The lookup of `zzping report`'s verdicts (the daemon follows routes through netlink). A
//! default route is one to `0.0.0.0/0` or `::/0` that is up (`RTF_UP`) and goes through a
//! gateway (`RTF_GATEWAY`, a non-zero next hop); split routes such as a VPN's `0.0.0.0/1`
//! are not default routes. Among several, the kernel uses the lowest metric, so they are
//! returned in that order. Unreadable files and lines are skipped: a machine without a
//! default route has no gateway, which is not an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x0001;
/// `RTF_GATEWAY`: the destination is reached through a gateway.
const RTF_GATEWAY: u32 = 0x0002;

/// The default gateways of this machine: IPv4 first, each family by ascending metric.
pub fn default_gateways() -> Vec<IpAddr> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    parse_default_gateways(&read("/proc/net/route"), &read("/proc/net/ipv6_route"))
}

/// The default gateways in the texts of `/proc/net/route` and `/proc/net/ipv6_route`:
/// IPv4 first, each family by ascending metric (the kernel's choice first), without
/// duplicates.
pub fn parse_default_gateways(ipv4_route: &str, ipv6_route: &str) -> Vec<IpAddr> {
    let mut v4: Vec<(u32, IpAddr)> = ipv4_route
        .lines()
        .skip(1)
        .filter_map(ipv4_default)
        .collect();
    let mut v6: Vec<(u32, IpAddr)> = ipv6_route.lines().filter_map(ipv6_default).collect();
    v4.sort_by_key(|&(metric, _)| metric);
    v6.sort_by_key(|&(metric, _)| metric);
    let mut out: Vec<IpAddr> = Vec::new();
    for (_, a) in v4.into_iter().chain(v6) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

fn hex32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

/// `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`: addresses are the
/// network-order bytes printed as a host-order (little-endian) hex number.
fn ipv4_default(line: &str) -> Option<(u32, IpAddr)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (dest, gw, flags, metric, mask) = (
        hex32(f.get(1)?)?,
        hex32(f.get(2)?)?,
        hex32(f.get(3)?)?,
        hex32(f.get(6)?)?,
        hex32(f.get(7)?)?,
    );
    let up_via_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
    (dest == 0 && mask == 0 && gw != 0 && up_via_gateway)
        .then(|| (metric, IpAddr::V4(Ipv4Addr::from(gw.to_le_bytes()))))
}

/// `dest dest_len src src_len next_hop metric refcnt use flags iface`, all hex.
fn ipv6_default(line: &str) -> Option<(u32, IpAddr)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let addr = |s: &str| -> Option<Ipv6Addr> {
        (s.len() == 32).then_some(())?;
        u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
    };
    let (dest, dest_len, next_hop, metric, flags) = (
        addr(f.first()?)?,
        hex32(f.get(1)?)?,
        addr(f.get(4)?)?,
        hex32(f.get(5)?)?,
        hex32(f.get(8)?)?,
    );
    let up_via_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
    (dest.is_unspecified() && dest_len == 0 && !next_hop.is_unspecified() && up_via_gateway)
        .then_some((metric, IpAddr::V6(next_hop)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on the test VM: one default route each, the IPv6 one to a ULA router, and
    /// the kernel's unreachable `::/0` on `lo`.
    const VM_ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
    const VM_IPV6_ROUTE: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    /// A laptop on Wi-Fi (metric 600) and Ethernet (metric 100) with a WireGuard tunnel
    /// that routes everything through `0.0.0.0/1` and `128.0.0.0/1`, a stale default route
    /// that is down, and router advertisements giving link-local IPv6 routers.
    const LAPTOP_ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0
wg0\t00000080\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0
wg0\t00000000\t0100000A\t0003\t0\t0\t0\t00000080\t0\t0\t0
eth0\t00000000\tFE01A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth1\t00000000\t0102A8C0\t0002\t0\t0\t50\t00000000\t0\t0\t0
wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
garbage line
";
    const LAPTOP_IPV6_ROUTE: &str = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000258 00000001 00000000 00450003    wlan0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000001 00000000 00450003     eth0
20010db8000000000000000000000000 20 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000001 00000000 00000003     eth0
not hex at all
";

    #[test]
    fn captured_vm_tables() {
        assert_eq!(
            parse_default_gateways(VM_ROUTE, VM_IPV6_ROUTE),
            vec![
                IpAddr::from([192, 0, 2, 1]),
                "fd00::1".parse::<IpAddr>().unwrap()
            ]
        );
    }

    #[test]
    fn lowest_metric_first_and_only_true_default_routes() {
        // Ethernet (100) before Wi-Fi (600); eth1's route is down; the tunnel's halves and
        // a /1 with a gateway are not default routes.
        assert_eq!(
            parse_default_gateways(LAPTOP_ROUTE, LAPTOP_IPV6_ROUTE),
            vec![
                IpAddr::from([192, 168, 1, 254]),
                IpAddr::from([192, 168, 1, 1]),
                "fe80::1".parse::<IpAddr>().unwrap(),
                "fe80::2".parse::<IpAddr>().unwrap(),
            ]
        );
    }

    #[test]
    fn empty_missing_or_headless_tables() {
        assert!(parse_default_gateways("", "").is_empty());
        assert!(parse_default_gateways("header only\n", "").is_empty());
        // The header line is never read as a route, whatever it holds.
        let headless = VM_ROUTE.lines().nth(1).unwrap();
        assert!(parse_default_gateways(headless, "").is_empty());
        // IPv6 only.
        assert_eq!(
            parse_default_gateways("", VM_IPV6_ROUTE),
            vec!["fd00::1".parse::<IpAddr>().unwrap()]
        );
    }
}
