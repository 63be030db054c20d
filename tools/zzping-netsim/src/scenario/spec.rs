//! The tables of a scenario file, as parsed (see the parent module for the format).

use super::*;

/// `[simulation]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    /// Scenario name (default: file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Seed of all randomness.
    #[serde(default)]
    pub seed: u64,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[network]` table: the simulator's own addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// IPv4 address given to the TUN device (the prober's source).
    pub local_v4: Ipv4Addr,
    /// IPv6 address given to the TUN device.
    pub local_v6: Ipv6Addr,
    /// Source of IPv4 ICMP errors.
    pub router_v4: Ipv4Addr,
    /// Source of ICMPv6 errors.
    pub router_v6: Ipv6Addr,
    /// TUN device name.
    pub tun_name: String,
    /// Prefix length of `local_v4` on the TUN: its on-link (connected) route.
    pub prefix_v4_len: u8,
    /// Prefix length of `local_v6` on the TUN.
    pub prefix_v6_len: u8,
    /// Host whose addresses are the default gateways (a `default via` route
    /// per family it has an on-link address of); none by default.
    pub gateway: Option<String>,
    /// The router (or alternatives) requests to addresses no host has go
    /// through: they cross its path and it (TTL expiry, error windows), then
    /// are dropped. None: they are dropped at once.
    pub unknown_via: Option<Via>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            local_v4: Ipv4Addr::new(198, 18, 0, 1),
            local_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            router_v4: Ipv4Addr::new(198, 18, 0, 254),
            router_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe),
            tun_name: "zzsim0".to_string(),
            prefix_v4_len: PREFIX_V4_LEN,
            prefix_v6_len: PREFIX_V6_LEN,
            gateway: None,
            unknown_via: None,
        }
    }
}

/// `[[interface]]`: one more TUN device (a second uplink: Ethernet beside
/// Wi-Fi, a phone hotspot, a VPN), served like the first one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    /// TUN device name.
    pub name: String,
    /// Its IPv4 address, if any.
    #[serde(default)]
    pub local_v4: Option<Ipv4Addr>,
    /// Its IPv6 address, if any.
    #[serde(default)]
    pub local_v6: Option<Ipv6Addr>,
    /// Prefix length of `local_v4` (default 24).
    #[serde(default = "default_extra_v4_len")]
    pub prefix_v4_len: u8,
    /// Prefix length of `local_v6` (default 64).
    #[serde(default = "default_extra_v6_len")]
    pub prefix_v6_len: u8,
}

fn default_extra_v4_len() -> u8 {
    24
}
fn default_extra_v6_len() -> u8 {
    64
}

/// One TUN device with its addresses, as configured in the namespace
/// (`[network]` is the first, then each `[[interface]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Device name.
    pub name: String,
    /// IPv4 address and prefix length.
    pub v4: Option<(Ipv4Addr, u8)>,
    /// IPv6 address and prefix length.
    pub v6: Option<(Ipv6Addr, u8)>,
}

impl Iface {
    /// Whether `a` lies in one of this interface's on-link prefixes.
    pub fn on_link(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self
                .v4
                .is_some_and(|(l, n)| prefix_v4(l, n) == prefix_v4(a, n)),
            IpAddr::V6(a) => self
                .v6
                .is_some_and(|(l, n)| prefix_v6(l, n) == prefix_v6(a, n)),
        }
    }
}

/// `addr` with all but the first `len` bits cleared.
pub fn prefix_v4(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(addr) & mask)
}

/// `addr` with all but the first `len` bits cleared.
pub fn prefix_v6(addr: Ipv6Addr, len: u8) -> Ipv6Addr {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    Ipv6Addr::from(u128::from(addr) & mask)
}

/// Which routes a `[[route_loss]]` takes away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSet {
    /// Every route the simulator installed: the on-link prefix of every
    /// interface and the default route (nothing is reachable).
    #[default]
    All,
    /// The default route only (on-link hosts stay reachable).
    Default,
}

/// Address families a `[[route_loss]]` applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilySel {
    /// IPv4 and IPv6.
    #[default]
    Both,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

impl FamilySel {
    /// Whether IPv4 (`false`) or IPv6 (`true`) routes are concerned.
    pub fn has(self, v6: bool) -> bool {
        match self {
            FamilySel::Both => true,
            FamilySel::Ipv4 => !v6,
            FamilySel::Ipv6 => v6,
        }
    }
}

/// How a `[[route_loss]]` takes the routes away, and so what `sendto` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossMode {
    /// The routes are deleted (a network manager dropping a lost
    /// connection): `sendto` fails with `ENETUNREACH`.
    #[default]
    Delete,
    /// `unreachable` routes take their place: `EHOSTUNREACH`.
    Unreachable,
    /// `prohibit` routes take their place (a firewall or VPN kill switch):
    /// `EACCES`.
    Prohibit,
}

/// `[[route_loss]]`: routes vanish from the namespace for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLossSpec {
    /// Start, in ms after the simulator started.
    pub start_ms: f64,
    /// Length in ms; then the routes come back as they were.
    pub duration_ms: f64,
    /// Which routes (default `all`).
    #[serde(default)]
    pub routes: RouteSet,
    /// Which families (default `both`).
    #[serde(default)]
    pub family: FamilySel,
    /// How (default `delete`).
    #[serde(default)]
    pub mode: LossMode,
}

/// How a `[[link]]` takes an interface down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// Administratively down (`ip link set DEV down`): the kernel removes
    /// every route through it, `sendto` fails with `ENETUNREACH`.
    #[default]
    Down,
    /// Carrier lost (`TUNSETCARRIER` off: NO-CARRIER, operstate DOWN, what
    /// a pulled cable or a lost Wi-Fi association looks like before any
    /// network manager reacts): the routes stay (flagged `linkdown`),
    /// `sendto` succeeds and the kernel drops the packets.
    Carrier,
}

/// `[[link]]`: an interface goes down and comes back up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Start, in ms after the simulator started.
    pub start_ms: f64,
    /// Length in ms.
    pub duration_ms: f64,
    /// Interface name (default: `[network] tun_name`).
    #[serde(default)]
    pub interface: Option<String>,
    /// How (default `down`).
    #[serde(default)]
    pub mode: LinkMode,
}

/// `[[route_change]]`: the default route moves to another gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteChangeSpec {
    /// When, in ms after the simulator started.
    pub at_ms: f64,
    /// The new gateway host: the default route of each family goes via its
    /// on-link address (on whichever interface has it on-link).
    pub gateway: String,
}

/// `[[outage]]`: every host is unreachable (requests dropped) for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageSpec {
    /// Start, in ms after the simulator started.
    pub start_ms: f64,
    /// Length in ms.
    pub duration_ms: f64,
    /// Optional repetition period in ms.
    #[serde(default)]
    pub every_ms: Option<f64>,
}

/// How a host answers echo requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behavior {
    /// Answers with echo replies (subject to the profile).
    #[default]
    Echo,
    /// Never answers.
    Silent,
    /// The router answers with ICMP destination unreachable.
    Unreachable,
}

/// Jitter distribution added to the base RTT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum Jitter {
    /// No jitter.
    #[default]
    None,
    /// Uniform in `[0, max_ms]`.
    Uniform {
        /// Upper bound in ms.
        max_ms: f64,
    },
    /// Normal, mean 0; total delay clamped at 0.
    Normal {
        /// Standard deviation in ms.
        stddev_ms: f64,
    },
    /// Exponential with the given mean.
    Exponential {
        /// Mean in ms.
        mean_ms: f64,
    },
    /// Lomax (Pareto II): `scale_ms * (U^(-1/shape) - 1)`.
    Pareto {
        /// Scale in ms.
        scale_ms: f64,
        /// Tail index (> 0; smaller = heavier tail).
        shape: f64,
    },
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jitter::None => write!(f, "none"),
            Jitter::Uniform { max_ms } => write!(f, "uniform(0..{max_ms}ms)"),
            Jitter::Normal { stddev_ms } => write!(f, "normal(sd {stddev_ms}ms)"),
            Jitter::Exponential { mean_ms } => write!(f, "exponential(mean {mean_ms}ms)"),
            Jitter::Pareto { scale_ms, shape } => {
                write!(f, "pareto(scale {scale_ms}ms, shape {shape})")
            }
        }
    }
}

/// A periodic loss burst.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// Period in ms.
    pub every_ms: f64,
    /// Length of each burst in ms.
    pub duration_ms: f64,
    /// Start of the first burst, in ms after the simulator started.
    #[serde(default)]
    pub offset_ms: f64,
}

/// Duplicated replies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateSpec {
    /// Probability that a reply is duplicated.
    pub probability: f64,
    /// Number of extra copies (1..=16).
    #[serde(default = "one")]
    pub copies: u32,
    /// Gap between copies in ms.
    #[serde(default = "half")]
    pub gap_ms: f64,
}

fn one() -> u32 {
    1
}
fn half() -> f64 {
    0.5
}

/// Reordering by extra delay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderSpec {
    /// Probability that a reply is held back.
    pub probability: f64,
    /// Extra delay in ms.
    pub extra_delay_ms: f64,
}

/// Token-bucket rate limit on answered requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Refill rate, tokens per second.
    pub per_second: f64,
    /// Bucket size (default: `ceil(per_second)`).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// One `[[host]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Unique name.
    pub name: String,
    /// Addresses answered by this host.
    pub addresses: Vec<IpAddr>,
    /// How it answers.
    #[serde(default)]
    pub behavior: Behavior,
    /// Base RTT in ms.
    #[serde(default)]
    pub rtt_ms: f64,
    /// Jitter distribution.
    #[serde(default)]
    pub jitter: Jitter,
    /// Cap on the total delay in ms.
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: f64,
    /// Random loss probability.
    #[serde(default)]
    pub loss: f64,
    /// Periodic loss bursts.
    #[serde(default)]
    pub burst: Vec<BurstSpec>,
    /// Duplicated replies.
    #[serde(default)]
    pub duplicate: Option<DuplicateSpec>,
    /// Reordering.
    #[serde(default)]
    pub reorder: Option<ReorderSpec>,
    /// Rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// The router this host is reached through (a host name): its path is
    /// that router's path plus that router. A list gives alternatives: the
    /// one whose path starts at the current default gateway is taken (else
    /// the first), so that a `[[route_change]]` can move the path.
    #[serde(default)]
    pub via: Option<Via>,
    /// Windows in which this host, as a router, answers requests it would
    /// forward (to the hosts reached through it) with an ICMP error.
    #[serde(default)]
    pub errors: Vec<ErrorWindowSpec>,
}

/// `via`: one router, or alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Via {
    /// One router.
    One(String),
    /// Alternatives, chosen by the current default gateway.
    Any(Vec<String>),
}

impl Via {
    /// The router names.
    pub fn names(&self) -> &[String] {
        match self {
            Via::One(n) => std::slice::from_ref(n),
            Via::Any(v) => v,
        }
    }
}

/// A window in which a router answers forwarded requests with an ICMP error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorWindowSpec {
    /// Start, in ms after the simulator started.
    pub start_ms: f64,
    /// Length in ms.
    pub duration_ms: f64,
    /// Optional repetition period in ms.
    #[serde(default)]
    pub every_ms: Option<f64>,
    /// Which error.
    pub kind: IcmpErrorKind,
    /// Only for requests to these hosts (default: every destination reached
    /// through this router, addresses no host has included).
    #[serde(default)]
    pub only: Vec<String>,
}

fn default_max_delay() -> f64 {
    10_000.0
}

impl HostSpec {
    /// One-line human summary of the profile.
    pub fn summary(&self) -> String {
        let mut s = match self.behavior {
            Behavior::Echo => format!("echo rtt={}ms jitter={}", self.rtt_ms, self.jitter),
            Behavior::Silent => "silent".to_string(),
            Behavior::Unreachable => format!("unreachable rtt={}ms", self.rtt_ms),
        };
        if self.behavior == Behavior::Echo {
            if self.loss > 0.0 {
                s += &format!(" loss={}%", self.loss * 100.0);
            }
            for b in &self.burst {
                s += &format!(
                    " burst={}ms/{}ms@{}ms",
                    b.duration_ms, b.every_ms, b.offset_ms
                );
            }
            if let Some(d) = &self.duplicate {
                s += &format!(" dup={}%x{}", d.probability * 100.0, d.copies);
            }
            if let Some(r) = &self.reorder {
                s += &format!(" reorder={}%+{}ms", r.probability * 100.0, r.extra_delay_ms);
            }
            if let Some(r) = &self.rate_limit {
                s += &format!(" ratelimit={}/s", r.per_second);
            }
        }
        if let Some(v) = &self.via {
            s += &format!(" via={}", v.names().join("|"));
        }
        if !self.errors.is_empty() {
            s += &format!(" error-windows={}", self.errors.len());
        }
        s
    }
}
