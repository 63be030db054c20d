//! Scenario files: the simulated network described in TOML.
//!
//! A scenario is one TOML file (the repository keeps them under
//! `tests/scenarios/*.toml`). Every table and field is optional unless noted;
//! unknown fields are rejected so that typos do not silently change a test.
//!
//! ```toml
//! [simulation]
//! name = "wifi-bad"        # default: the file name without extension
//! seed = 42                # u64 seed of all randomness (default 0)
//! description = "..."      # free text
//!
//! [network]                # addresses of the simulator itself
//! local_v4 = "198.18.0.1"  # given to the TUN: the prober's source address
//! local_v6 = "2001:db8::1"
//! router_v4 = "198.18.0.254"  # source of ICMP unreachable errors
//! router_v6 = "2001:db8::fe"
//! tun_name = "zzsim0"      # TUN device name (max 15 bytes)
//! prefix_v4_len = 15       # on-link prefix of local_v4 (15..=32)
//! prefix_v6_len = 32       # on-link prefix of local_v6 (32..=128)
//! gateway = "home-gw"      # optional: default routes via this host
//! unknown_via = "core"     # optional: path of addresses no host has
//!
//! [[interface]]            # optional: more TUN devices
//! name = "zzsim1"
//! local_v4 = "198.18.1.1"  # at least one of local_v4 / local_v6
//! local_v6 = "2001:db8:0:1::1"
//! prefix_v4_len = 24       # default 24
//! prefix_v6_len = 64       # default 64
//!
//! [[outage]]               # the whole network goes away ...
//! start_ms = 4000          # ... this long after the simulator started
//! duration_ms = 2000       # ... and comes back after this long
//! every_ms = 60000         # optional: repeat with this period
//!
//! [[host]]                 # one table per simulated host (at least one)
//! name = "gateway"         # required, unique
//! addresses = ["198.18.0.10", "2001:db8::10"]  # required, in the prefixes
//! behavior = "echo"        # echo (default) | silent | unreachable
//! rtt_ms = 2.0             # base round-trip time (default 0)
//! jitter = { dist = "uniform", max_ms = 1.0 }
//! max_delay_ms = 10000     # cap on rtt + jitter + reorder (default 10000)
//! loss = 0.01              # probability a request is lost at random
//! burst = [{ every_ms = 30000, duration_ms = 300, offset_ms = 5000 }]
//! duplicate = { probability = 0.05, copies = 1, gap_ms = 0.5 }
//! reorder = { probability = 0.05, extra_delay_ms = 30.0 }
//! rate_limit = { per_second = 10.0, burst = 10 }
//! via = "isp-edge"         # reached through this router (or a list of
//!                          # alternatives, picked by the current gateway)
//! errors = [{ start_ms = 1000, duration_ms = 500, kind = "host_unreachable",
//!             only = ["far"] }]  # as a router: ICMP errors for what it forwards
//!
//! [[route_loss]]           # routes vanish from the namespace for a while
//! start_ms = 3000
//! duration_ms = 2000
//! routes = "all"           # all (on-link prefixes + default) | default
//! family = "both"          # both | ipv4 | ipv6
//! mode = "delete"          # delete (ENETUNREACH) | unreachable (EHOSTUNREACH)
//!                          # | prohibit (EACCES)
//!
//! [[link]]                 # an interface goes down and comes back
//! start_ms = 6000
//! duration_ms = 2000
//! interface = "zzsim0"     # default: [network] tun_name
//! mode = "down"            # down (routes removed) | carrier (NO-CARRIER)
//!
//! [[route_change]]         # the default route moves to another gateway
//! at_ms = 9000
//! gateway = "hotspot"      # a host on-link on some interface
//! ```
//!
//! Addresses must lie in 198.18.0.0/15 or 2001:db8::/32 (the simulated
//! prefixes) and may not be the local or router address. Each host address
//! must be on-link on some interface (by default the first TUN takes the
//! whole simulated space) or have a default route of its family
//! (`[network] gateway`). By convention 198.18.0.0/16 and 2001:db8::/33
//! play private (home) addresses and 198.19.0.0/16 and 2001:db8:8000::/33
//! public ones ([`plays_public`]).
//!
//! Routers: a host's path is its `via` router's path plus that router; at
//! each router a request may end with an ICMP error (an `errors` window of
//! that router, or TTL expiry) — see [`crate::profile`]. Paths have no
//! cycle, and every router on a host's paths has an address of each of the
//! host's families. Error `kind`s: `host_unreachable`, `net_unreachable`,
//! `admin_prohibited`, `ttl_exceeded` ([`IcmpErrorKind`]).
//!
//! The network timeline (`[[route_loss]]`, `[[link]]`, `[[route_change]]`)
//! is played by [`crate::control`]; its windows and instants must not
//! overlap (one may end when the next begins).
//!
//! Jitter distributions (`dist` selects one; the sample is added to `rtt_ms`):
//! * `none` — no jitter (the default);
//! * `uniform` — uniform in `[0, max_ms]`;
//! * `normal` — normal with mean 0 and `stddev_ms`; the total delay is
//!   clamped at 0;
//! * `exponential` — exponential with mean `mean_ms`;
//! * `pareto` — heavy tail: `scale_ms * (U^(-1/shape) - 1)` (Lomax), `shape > 0`.
//!
//! Loss bursts: the host drops everything while
//! `(t - offset_ms) mod every_ms < duration_ms` (with `t` the time since the
//! simulator started, `t >= offset_ms`). Outages drop every request to every
//! host in `[start_ms, start_ms + duration_ms)` (repeating every `every_ms`
//! when given).
//!
//! `duplicate`: with `probability`, the reply is followed by `copies` extra
//! copies (1..=16), the k-th one `k * gap_ms` after the first (default gap
//! 0.5 ms). `reorder`: with `probability`, the reply is held `extra_delay_ms`
//! longer, so later replies overtake it. `rate_limit`: a token bucket of
//! `burst` tokens (default: `ceil(per_second)`) refilled at `per_second`;
//! requests that find it empty are dropped.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::packet::IcmpErrorKind;

/// First address of the simulated IPv4 prefix 198.18.0.0/15.
pub const PREFIX_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Length of the simulated IPv4 prefix.
pub const PREFIX_V4_LEN: u8 = 15;
/// First address of the simulated IPv6 prefix 2001:db8::/32.
pub const PREFIX_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0);
/// Length of the simulated IPv6 prefix.
pub const PREFIX_V6_LEN: u8 = 32;

/// Largest delay the simulator applies to any reply, whatever the profile.
pub const HARD_MAX_DELAY_MS: f64 = 60_000.0;

/// Whether `addr` lies inside the simulated prefixes.
pub fn in_simulated_prefix(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18,
        IpAddr::V6(a) => a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8,
    }
}

/// Whether `addr` plays a public (internet) address in the simulation:
/// 198.19.0.0/16 and 2001:db8:8000::/33, the upper halves of the simulated
/// prefixes. The lower halves (198.18.0.0/16, 2001:db8::/33) play private
/// home-network addresses. Both are benchmark / documentation space in
/// reality; the mapping only exists so that tests can tell "the ISP's edge"
/// from "the home router" without a real public address.
pub fn plays_public(addr: IpAddr) -> bool {
    in_simulated_prefix(addr)
        && match addr {
            IpAddr::V4(a) => a.octets()[1] == 19,
            IpAddr::V6(a) => a.segments()[2] & 0x8000 != 0,
        }
}

/// An error loading a scenario file. Its message names the file and, for
/// invalid values, the host (or table) and the field.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("scenario file {path}: {context}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where: `host "name" (#n)`, `[network]`, ...
        context: String,
        /// The parser's message (names the field).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("scenario file {path}: {context}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where: `host "name" (#n)`, `[network]`, `outage #n`, ...
        context: String,
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

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

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `[simulation]`.
    #[serde(default)]
    pub simulation: SimulationSpec,
    /// `[network]`.
    #[serde(default)]
    pub network: NetworkSpec,
    /// `[[outage]]`.
    #[serde(default)]
    pub outage: Vec<OutageSpec>,
    /// `[[host]]`.
    #[serde(default)]
    pub host: Vec<HostSpec>,
    /// `[[interface]]`.
    #[serde(default)]
    pub interface: Vec<InterfaceSpec>,
    /// `[[route_loss]]`.
    #[serde(default)]
    pub route_loss: Vec<RouteLossSpec>,
    /// `[[link]]`.
    #[serde(default)]
    pub link: Vec<LinkSpec>,
    /// `[[route_change]]`.
    #[serde(default)]
    pub route_change: Vec<RouteChangeSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    simulation: Option<toml::Value>,
    #[serde(default)]
    network: Option<toml::Value>,
    #[serde(default)]
    outage: Vec<toml::Value>,
    #[serde(default)]
    host: Vec<toml::Value>,
    #[serde(default)]
    interface: Vec<toml::Value>,
    #[serde(default)]
    route_loss: Vec<toml::Value>,
    #[serde(default)]
    link: Vec<toml::Value>,
    #[serde(default)]
    route_change: Vec<toml::Value>,
}

/// Deserializes each table of an array on its own, so that errors say which.
fn tables<T: serde::de::DeserializeOwned>(
    values: Vec<toml::Value>,
    what: &str,
    perr: &dyn Fn(String, &dyn fmt::Display) -> ScenarioError,
) -> Result<Vec<T>, ScenarioError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| T::deserialize(v).map_err(|e| perr(format!("{what} #{}", i + 1), &e)))
        .collect()
}

impl Scenario {
    /// Read and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut s = Scenario::parse(&text, path)?;
        if s.simulation.name.is_none() {
            s.simulation.name = path.file_stem().map(|n| n.to_string_lossy().into_owned());
        }
        Ok(s)
    }

    /// Parse and validate scenario text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let perr = |context: String, e: &dyn fmt::Display| ScenarioError::Parse {
            path: path.to_path_buf(),
            context,
            message: e.to_string().trim().replace('\n', " "),
        };
        // Two stages: the document structure first (syntax errors with their
        // line), then each table on its own so that errors name the host.
        let raw: RawScenario = toml::from_str(text).map_err(|e| perr("syntax".into(), &e))?;
        let simulation = match raw.simulation {
            Some(v) => {
                SimulationSpec::deserialize(v).map_err(|e| perr("[simulation]".into(), &e))?
            }
            None => SimulationSpec::default(),
        };
        let network = match raw.network {
            Some(v) => NetworkSpec::deserialize(v).map_err(|e| perr("[network]".into(), &e))?,
            None => NetworkSpec::default(),
        };
        let mut outage = Vec::new();
        for (i, v) in raw.outage.into_iter().enumerate() {
            outage.push(
                OutageSpec::deserialize(v).map_err(|e| perr(format!("outage #{}", i + 1), &e))?,
            );
        }
        let mut host = Vec::new();
        for (i, v) in raw.host.into_iter().enumerate() {
            let ctx = host_context(&v, i);
            host.push(HostSpec::deserialize(v).map_err(|e| perr(ctx, &e))?);
        }
        let s = Scenario {
            simulation,
            network,
            outage,
            host,
            interface: tables(raw.interface, "interface", &perr)?,
            route_loss: tables(raw.route_loss, "route_loss", &perr)?,
            link: tables(raw.link, "link", &perr)?,
            route_change: tables(raw.route_change, "route_change", &perr)?,
        };
        s.validate(path)?;
        Ok(s)
    }

    /// Check ranges and consistency.
    pub fn validate(&self, path: &Path) -> Result<(), ScenarioError> {
        let bad = |context: &str, field: &str, message: String| ScenarioError::Invalid {
            path: path.to_path_buf(),
            context: context.to_string(),
            field: field.to_string(),
            message,
        };
        let n = &self.network;
        let net = "[network]";
        if !valid_ifname(&n.tun_name) {
            return Err(bad(
                net,
                "tun_name",
                format!(
                    "{:?} is not a valid interface name (1-15 of [A-Za-z0-9_-])",
                    n.tun_name
                ),
            ));
        }
        let mut reserved: HashMap<IpAddr, &str> = HashMap::new();
        for (field, a) in [
            ("local_v4", IpAddr::V4(n.local_v4)),
            ("local_v6", IpAddr::V6(n.local_v6)),
            ("router_v4", IpAddr::V4(n.router_v4)),
            ("router_v6", IpAddr::V6(n.router_v6)),
        ] {
            if !in_simulated_prefix(a) {
                return Err(bad(
                    net,
                    field,
                    format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                ));
            }
            if let Some(other) = reserved.insert(a, field) {
                return Err(bad(net, field, format!("{a} is already used by `{other}`")));
            }
        }
        if !(PREFIX_V4_LEN..=32).contains(&n.prefix_v4_len) {
            return Err(bad(
                net,
                "prefix_v4_len",
                format!("must be in 15..=32, got {}", n.prefix_v4_len),
            ));
        }
        if !(PREFIX_V6_LEN..=128).contains(&n.prefix_v6_len) {
            return Err(bad(
                net,
                "prefix_v6_len",
                format!("must be in 32..=128, got {}", n.prefix_v6_len),
            ));
        }
        let mut if_names: HashSet<&str> = HashSet::from([n.tun_name.as_str()]);
        for (i, f) in self.interface.iter().enumerate() {
            let ctx = format!("interface {:?} (#{})", f.name, i + 1);
            if !valid_ifname(&f.name) {
                return Err(bad(
                    &ctx,
                    "name",
                    format!(
                        "{:?} is not a valid interface name (1-15 of [A-Za-z0-9_-])",
                        f.name
                    ),
                ));
            }
            if !if_names.insert(f.name.as_str()) {
                return Err(bad(&ctx, "name", format!("{:?} is used twice", f.name)));
            }
            if f.local_v4.is_none() && f.local_v6.is_none() {
                return Err(bad(
                    &ctx,
                    "local_v4",
                    "needs local_v4 or local_v6 (or both)".into(),
                ));
            }
            if !(PREFIX_V4_LEN..=32).contains(&f.prefix_v4_len) {
                return Err(bad(
                    &ctx,
                    "prefix_v4_len",
                    format!("must be in 15..=32, got {}", f.prefix_v4_len),
                ));
            }
            if !(PREFIX_V6_LEN..=128).contains(&f.prefix_v6_len) {
                return Err(bad(
                    &ctx,
                    "prefix_v6_len",
                    format!("must be in 32..=128, got {}", f.prefix_v6_len),
                ));
            }
            for (field, a) in [
                ("local_v4", f.local_v4.map(IpAddr::V4)),
                ("local_v6", f.local_v6.map(IpAddr::V6)),
            ] {
                let Some(a) = a else { continue };
                if !in_simulated_prefix(a) {
                    return Err(bad(
                        &ctx,
                        field,
                        format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                    ));
                }
                if let Some(other) = reserved.insert(a, field) {
                    return Err(bad(
                        &ctx,
                        field,
                        format!("{a} is already used by `{other}`"),
                    ));
                }
            }
        }
        let ifaces = self.interfaces();
        for (i, a) in ifaces.iter().enumerate() {
            for b in &ifaces[..i] {
                let v4 = a.v4.zip(b.v4).is_some_and(|((x, m), (y, n))| {
                    prefix_v4(x, m.min(n)) == prefix_v4(y, m.min(n))
                });
                let v6 = a.v6.zip(b.v6).is_some_and(|((x, m), (y, n))| {
                    prefix_v6(x, m.min(n)) == prefix_v6(y, m.min(n))
                });
                if v4 || v6 {
                    return Err(bad(
                        &format!("interface {:?}", a.name),
                        if v4 { "local_v4" } else { "local_v6" },
                        format!(
                            "its on-link prefix overlaps that of interface {:?} (narrow [network] prefix_v4_len / prefix_v6_len)",
                            b.name
                        ),
                    ));
                }
            }
        }
        for (i, o) in self.outage.iter().enumerate() {
            let ctx = format!("outage #{}", i + 1);
            check_range(o.start_ms, 0.0, f64::MAX, "start_ms")
                .map_err(|m| bad(&ctx, "start_ms", m))?;
            check_range(o.duration_ms, 0.0, f64::MAX, "duration_ms")
                .map_err(|m| bad(&ctx, "duration_ms", m))?;
            if let Some(e) = o.every_ms {
                check_range(e, 1.0, f64::MAX, "every_ms").map_err(|m| bad(&ctx, "every_ms", m))?;
                if o.duration_ms > e {
                    return Err(bad(
                        &ctx,
                        "duration_ms",
                        format!("{} is longer than every_ms {e}", o.duration_ms),
                    ));
                }
            }
        }
        if self.host.is_empty() {
            return Err(bad("scenario", "host", "no [[host]] defined".to_string()));
        }
        let mut names = HashSet::new();
        let mut addrs: HashMap<IpAddr, String> = HashMap::new();
        for (i, h) in self.host.iter().enumerate() {
            let ctx = format!("host {:?} (#{})", h.name, i + 1);
            if h.name.trim().is_empty() {
                return Err(bad(&ctx, "name", "must not be empty".into()));
            }
            if !names.insert(h.name.as_str()) {
                return Err(bad(
                    &ctx,
                    "name",
                    format!("duplicate host name {:?}", h.name),
                ));
            }
            if h.addresses.is_empty() {
                return Err(bad(&ctx, "addresses", "needs at least one address".into()));
            }
            for a in &h.addresses {
                if !in_simulated_prefix(*a) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                    ));
                }
                if let Some(f) = reserved.get(a) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is the simulator's own `{f}`"),
                    ));
                }
                if let Some(other) = addrs.insert(*a, h.name.clone()) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is also used by host {other:?}"),
                    ));
                }
            }
            let max = HARD_MAX_DELAY_MS;
            check_range(h.rtt_ms, 0.0, max, "rtt_ms").map_err(|m| bad(&ctx, "rtt_ms", m))?;
            check_range(h.max_delay_ms, 0.0, max, "max_delay_ms")
                .map_err(|m| bad(&ctx, "max_delay_ms", m))?;
            check_range(h.loss, 0.0, 1.0, "loss").map_err(|m| bad(&ctx, "loss", m))?;
            let j = |f: &str, v: f64| {
                check_range(v, 0.0, max, f).map_err(|m| bad(&ctx, &format!("jitter.{f}"), m))
            };
            match h.jitter {
                Jitter::None => {}
                Jitter::Uniform { max_ms } => j("max_ms", max_ms)?,
                Jitter::Normal { stddev_ms } => j("stddev_ms", stddev_ms)?,
                Jitter::Exponential { mean_ms } => j("mean_ms", mean_ms)?,
                Jitter::Pareto { scale_ms, shape } => {
                    j("scale_ms", scale_ms)?;
                    if !(shape.is_finite() && shape > 0.0) {
                        return Err(bad(
                            &ctx,
                            "jitter.shape",
                            format!("must be > 0, got {shape}"),
                        ));
                    }
                }
            }
            for (k, b) in h.burst.iter().enumerate() {
                let f = |name: &str| format!("burst[{k}].{name}");
                check_range(b.every_ms, 1.0, f64::MAX, "every_ms")
                    .map_err(|m| bad(&ctx, &f("every_ms"), m))?;
                check_range(b.duration_ms, 0.0, b.every_ms, "duration_ms").map_err(|m| {
                    bad(
                        &ctx,
                        &f("duration_ms"),
                        format!("{m} (must not exceed every_ms)"),
                    )
                })?;
                check_range(b.offset_ms, 0.0, f64::MAX, "offset_ms")
                    .map_err(|m| bad(&ctx, &f("offset_ms"), m))?;
            }
            if let Some(d) = &h.duplicate {
                check_range(d.probability, 0.0, 1.0, "")
                    .map_err(|m| bad(&ctx, "duplicate.probability", m))?;
                if !(1..=16).contains(&d.copies) {
                    return Err(bad(
                        &ctx,
                        "duplicate.copies",
                        format!("must be in 1..=16, got {}", d.copies),
                    ));
                }
                check_range(d.gap_ms, 0.0, 10_000.0, "")
                    .map_err(|m| bad(&ctx, "duplicate.gap_ms", m))?;
            }
            if let Some(r) = &h.reorder {
                check_range(r.probability, 0.0, 1.0, "")
                    .map_err(|m| bad(&ctx, "reorder.probability", m))?;
                check_range(r.extra_delay_ms, 0.0, max, "")
                    .map_err(|m| bad(&ctx, "reorder.extra_delay_ms", m))?;
            }
            if let Some(r) = &h.rate_limit {
                if !(r.per_second.is_finite() && r.per_second > 0.0 && r.per_second <= 1e9) {
                    return Err(bad(
                        &ctx,
                        "rate_limit.per_second",
                        format!("must be > 0, got {}", r.per_second),
                    ));
                }
                if r.burst == Some(0) {
                    return Err(bad(&ctx, "rate_limit.burst", "must be at least 1".into()));
                }
            }
        }
        self.validate_routing(&bad)?;
        self.validate_timeline(&bad)?;
        self.validate_paths(&bad)?;
        Ok(())
    }

    /// Routers exist, paths have no cycle, routers can answer in each
    /// family of the hosts behind them, error windows are valid.
    fn validate_paths(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let ctx_of = |i: usize| format!("host {:?} (#{})", self.host[i].name, i + 1);
        let resolve = |ctx: &str, field: &str, via: &Via| -> Result<Vec<usize>, ScenarioError> {
            if via.names().is_empty() {
                return Err(bad(ctx, field, "names no router".into()));
            }
            via.names()
                .iter()
                .map(|n| {
                    self.host_index(n)
                        .ok_or_else(|| bad(ctx, field, format!("no host is named {n:?}")))
                })
                .collect()
        };
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(self.host.len());
        for (i, h) in self.host.iter().enumerate() {
            let e = match &h.via {
                Some(v) => resolve(&ctx_of(i), "via", v)?,
                None => Vec::new(),
            };
            if e.contains(&i) {
                return Err(bad(
                    &ctx_of(i),
                    "via",
                    "a host cannot be its own router".into(),
                ));
            }
            edges.push(e);
        }
        // Cycles: depth-first, colouring hosts on the current stack.
        fn visit(
            i: usize,
            edges: &[Vec<usize>],
            state: &mut [u8],
            stack: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            match state[i] {
                1 => {
                    let at = stack.iter().position(|&x| x == i).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(i);
                    return Some(c);
                }
                2 => return None,
                _ => {}
            }
            state[i] = 1;
            stack.push(i);
            for &j in &edges[i] {
                if let Some(c) = visit(j, edges, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state[i] = 2;
            None
        }
        let mut state = vec![0u8; self.host.len()];
        for i in 0..self.host.len() {
            if let Some(c) = visit(i, &edges, &mut state, &mut Vec::new()) {
                let names: Vec<&str> = c.iter().map(|&k| self.host[k].name.as_str()).collect();
                return Err(bad(
                    &ctx_of(c[0]),
                    "via",
                    format!("routers form a cycle: {}", names.join(" -> ")),
                ));
            }
        }
        let closure = |start: &[usize]| -> Vec<usize> {
            let mut seen = vec![false; self.host.len()];
            let mut todo = start.to_vec();
            while let Some(k) = todo.pop() {
                if !std::mem::replace(&mut seen[k], true) {
                    todo.extend(&edges[k]);
                }
            }
            (0..self.host.len()).filter(|&k| seen[k]).collect()
        };
        let has_family =
            |k: usize, v6: bool| self.host[k].addresses.iter().any(|a| a.is_ipv6() == v6);
        // Every router a host may be reached through, per host.
        let behind: Vec<Vec<usize>> = edges.iter().map(|e| closure(e)).collect();
        for (i, h) in self.host.iter().enumerate() {
            for a in &h.addresses {
                if let Some(&r) = behind[i].iter().find(|&&r| !has_family(r, a.is_ipv6())) {
                    return Err(bad(
                        &ctx_of(i),
                        "via",
                        format!(
                            "router {:?} has no {} address to answer for {a} with",
                            self.host[r].name,
                            if a.is_ipv6() { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
            }
        }
        let unknown = match &self.network.unknown_via {
            Some(v) => closure(&resolve("[network]", "unknown_via", v)?),
            None => Vec::new(),
        };
        for (i, h) in self.host.iter().enumerate() {
            for (k, w) in h.errors.iter().enumerate() {
                let ctx = ctx_of(i);
                let f = |name: &str| format!("errors[{k}].{name}");
                check_range(w.start_ms, 0.0, f64::MAX, "")
                    .map_err(|m| bad(&ctx, &f("start_ms"), m))?;
                check_range(w.duration_ms, 0.0, f64::MAX, "")
                    .map_err(|m| bad(&ctx, &f("duration_ms"), m))?;
                if let Some(e) = w.every_ms {
                    check_range(e, 1.0, f64::MAX, "").map_err(|m| bad(&ctx, &f("every_ms"), m))?;
                    if w.duration_ms > e {
                        return Err(bad(
                            &ctx,
                            &f("duration_ms"),
                            format!("{} is longer than every_ms {e}", w.duration_ms),
                        ));
                    }
                }
                let served: Vec<usize> = (0..self.host.len())
                    .filter(|&d| behind[d].contains(&i))
                    .collect();
                if served.is_empty() && !unknown.contains(&i) {
                    return Err(bad(
                        &ctx,
                        &f("kind"),
                        "no host is reached through this one (see `via`), so it never forwards"
                            .into(),
                    ));
                }
                for n in &w.only {
                    match self.host_index(n) {
                        Some(d) if served.contains(&d) => {}
                        Some(_) => {
                            return Err(bad(
                                &ctx,
                                &f("only"),
                                format!("host {n:?} is not reached through this one"),
                            ));
                        }
                        None => {
                            return Err(bad(&ctx, &f("only"), format!("no host is named {n:?}")));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The routers before host `i`, first hop first, when the default
    /// gateway is host `gateway` (it picks among `via` alternatives).
    pub fn path_of(&self, i: usize, gateway: Option<usize>) -> Vec<usize> {
        match self.host.get(i).and_then(|h| h.via.as_ref()) {
            Some(v) => self.path_via(v, gateway, self.host.len()),
            None => Vec::new(),
        }
    }

    /// The routers a request to an address no host has crosses (empty when
    /// `[network] unknown_via` is not set).
    pub fn unknown_path(&self, gateway: Option<usize>) -> Vec<usize> {
        match &self.network.unknown_via {
            Some(v) => self.path_via(v, gateway, self.host.len()),
            None => Vec::new(),
        }
    }

    /// The path through router `via` (its path, then itself). `depth` bounds
    /// the recursion should a scenario that failed validation get here.
    fn path_via(&self, via: &Via, gateway: Option<usize>, depth: usize) -> Vec<usize> {
        let mut first = None;
        for n in via.names() {
            let Some(r) = self.host_index(n) else {
                continue;
            };
            let mut p = match (&self.host[r].via, depth) {
                (_, 0) | (None, _) => Vec::new(),
                (Some(v), _) => self.path_via(v, gateway, depth - 1),
            };
            p.push(r);
            if gateway.is_some() && p.first().copied() == gateway {
                return p;
            }
            first.get_or_insert(p);
        }
        first.unwrap_or_default()
    }

    /// Host index of `[network] gateway`.
    pub fn initial_gateway_host(&self) -> Option<usize> {
        self.network
            .gateway
            .as_deref()
            .and_then(|n| self.host_index(n))
    }

    /// Gateways exist and are on-link; every host address can be routed.
    fn validate_routing(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let gateway_ok = |ctx: &str, field: &str, name: &str| -> Result<Gateway, ScenarioError> {
            let Some(i) = self.host_index(name) else {
                return Err(bad(ctx, field, format!("no host is named {name:?}")));
            };
            let g = self.gateway_of(i);
            if g.v4.is_none() && g.v6.is_none() {
                return Err(bad(
                    ctx,
                    field,
                    format!("host {name:?} has no address on-link on any interface"),
                ));
            }
            Ok(g)
        };
        let gw = match &self.network.gateway {
            Some(name) => gateway_ok("[network]", "gateway", name)?,
            None => Gateway::default(),
        };
        let ifaces = self.interfaces();
        for (i, h) in self.host.iter().enumerate() {
            let ctx = format!("host {:?} (#{})", h.name, i + 1);
            for a in &h.addresses {
                let routed = ifaces.iter().any(|f| f.on_link(*a))
                    || match a {
                        IpAddr::V4(_) => gw.v4.is_some(),
                        IpAddr::V6(_) => gw.v6.is_some(),
                    };
                if !routed {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!(
                            "{a} is on no interface's on-link prefix and [network] gateway gives no default route of its family"
                        ),
                    ));
                }
            }
        }
        for (i, c) in self.route_change.iter().enumerate() {
            let ctx = format!("route_change #{}", i + 1);
            gateway_ok(&ctx, "gateway", &c.gateway)?;
        }
        Ok(())
    }

    /// Windows and instants of the network timeline are valid and apart.
    fn validate_timeline(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        // (start, end, context) of every window; an instant is an empty window.
        let mut spans: Vec<(f64, f64, String)> = Vec::new();
        let window = |ctx: &str, start: f64, dur: f64| -> Result<(f64, f64), ScenarioError> {
            check_range(start, 0.0, f64::MAX, "").map_err(|m| bad(ctx, "start_ms", m))?;
            check_range(dur, 0.0, f64::MAX, "").map_err(|m| bad(ctx, "duration_ms", m))?;
            Ok((start, start + dur))
        };
        for (i, r) in self.route_loss.iter().enumerate() {
            let ctx = format!("route_loss #{}", i + 1);
            let (a, b) = window(&ctx, r.start_ms, r.duration_ms)?;
            if r.routes == RouteSet::Default && self.network.gateway.is_none() {
                return Err(bad(
                    &ctx,
                    "routes",
                    "\"default\": there is no default route ([network] gateway is not set)".into(),
                ));
            }
            spans.push((a, b, ctx));
        }
        for (i, l) in self.link.iter().enumerate() {
            let ctx = format!("link #{}", i + 1);
            let (a, b) = window(&ctx, l.start_ms, l.duration_ms)?;
            if let Some(name) = &l.interface
                && !self.interfaces().iter().any(|f| &f.name == name)
            {
                return Err(bad(
                    &ctx,
                    "interface",
                    format!("no interface is named {name:?}"),
                ));
            }
            spans.push((a, b, ctx));
        }
        for (i, c) in self.route_change.iter().enumerate() {
            let ctx = format!("route_change #{}", i + 1);
            check_range(c.at_ms, 0.0, f64::MAX, "").map_err(|m| bad(&ctx, "at_ms", m))?;
            spans.push((c.at_ms, c.at_ms, ctx));
        }
        spans.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        for w in spans.windows(2) {
            let ((a0, a1, actx), (b0, _, bctx)) = (&w[0], &w[1]);
            // Touching is fine (one ends, then the next begins); an instant
            // inside a window, or two windows that overlap, are not.
            if b0 < a1 || (b0 == a0 && a0 == a1) {
                return Err(bad(
                    bctx,
                    if bctx.starts_with("route_change") {
                        "at_ms"
                    } else {
                        "start_ms"
                    },
                    format!(
                        "{b0} ms falls within {actx} ({a0}..{a1} ms): network changes must not overlap"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every TUN device: `[network]` first, then each `[[interface]]`.
    pub fn interfaces(&self) -> Vec<Iface> {
        let n = &self.network;
        let mut v = vec![Iface {
            name: n.tun_name.clone(),
            v4: Some((n.local_v4, n.prefix_v4_len)),
            v6: Some((n.local_v6, n.prefix_v6_len)),
        }];
        v.extend(self.interface.iter().map(|f| Iface {
            name: f.name.clone(),
            v4: f.local_v4.map(|a| (a, f.prefix_v4_len)),
            v6: f.local_v6.map(|a| (a, f.prefix_v6_len)),
        }));
        v
    }

    /// Index of the host named `name`.
    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.host.iter().position(|h| h.name == name)
    }

    /// The default gateways host `i` gives: its first on-link address of
    /// each family, with the interface (index into [`Scenario::interfaces`])
    /// that has it on-link.
    pub fn gateway_of(&self, i: usize) -> Gateway {
        let ifaces = self.interfaces();
        let mut g = Gateway::default();
        for a in self.host.get(i).map_or(&[][..], |h| &h.addresses[..]) {
            let Some(k) = ifaces.iter().position(|f| f.on_link(*a)) else {
                continue;
            };
            match a {
                IpAddr::V4(v) if g.v4.is_none() => g.v4 = Some((*v, k)),
                IpAddr::V6(v) if g.v6.is_none() => g.v6 = Some((*v, k)),
                _ => {}
            }
        }
        g
    }

    /// The default gateways of `[network] gateway` (none when unset).
    pub fn initial_gateway(&self) -> Gateway {
        self.network
            .gateway
            .as_deref()
            .and_then(|n| self.host_index(n))
            .map(|i| self.gateway_of(i))
            .unwrap_or_default()
    }

    /// Scenario name (file stem when not given).
    pub fn name(&self) -> &str {
        self.simulation.name.as_deref().unwrap_or("unnamed")
    }
}

/// Default gateways of both families: address and interface index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gateway {
    /// IPv4 gateway.
    pub v4: Option<(Ipv4Addr, usize)>,
    /// IPv6 gateway.
    pub v6: Option<(Ipv6Addr, usize)>,
}

fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn host_context(v: &toml::Value, i: usize) -> String {
    match v.get("name").and_then(|n| n.as_str()) {
        Some(n) => format!("host {n:?} (#{})", i + 1),
        None => format!("host #{}", i + 1),
    }
}

fn check_range(v: f64, lo: f64, hi: f64, _field: &str) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("must be a finite number, got {v}"));
    }
    if v < lo || v > hi {
        if hi == f64::MAX {
            return Err(format!("must be at least {lo}, got {v}"));
        }
        return Err(format!("must be between {lo} and {hi}, got {v}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(t, Path::new("x.toml"))
    }

    const OK: &str = r#"
        [simulation]
        seed = 7
        [[host]]
        name = "gw"
        addresses = ["198.18.0.10", "2001:db8::10"]
        rtt_ms = 1.5
        jitter = { dist = "pareto", scale_ms = 1, shape = 2.5 }
        burst = [{ every_ms = 30000, duration_ms = 300, offset_ms = 1000 }]
        [[host]]
        name = "quiet"
        addresses = ["198.19.255.1"]
        behavior = "silent"
    "#;

    #[test]
    fn parses_full_example() {
        let s = parse(OK).unwrap();
        assert_eq!(s.simulation.seed, 7);
        assert_eq!(s.host.len(), 2);
        assert_eq!(
            s.host[0].jitter,
            Jitter::Pareto {
                scale_ms: 1.0,
                shape: 2.5
            }
        );
        assert_eq!(s.host[1].behavior, Behavior::Silent);
        assert_eq!(s.network, NetworkSpec::default());
        assert!(s.host[0].summary().contains("burst=300ms/30000ms@1000ms"));
    }

    fn err(t: &str) -> String {
        let e = parse(t).unwrap_err().to_string();
        assert!(e.contains("x.toml"), "error does not name the file: {e}");
        e
    }

    #[test]
    fn errors_name_host_and_field() {
        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            loss = 1.5"#);
        assert!(
            e.contains("host \"gw\"") && e.contains("`loss`") && e.contains("1.5"),
            "{e}"
        );

        let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "wifi"
            addresses = ["198.18.0.11"]
            rtt_ms = "fast""#);
        assert!(
            e.contains("host \"wifi\" (#2)") && e.contains("rtt_ms"),
            "{e}"
        );

        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            jiter = { dist = "none" }"#);
        assert!(e.contains("host \"gw\"") && e.contains("jiter"), "{e}");

        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["10.0.0.1"]"#);
        assert!(e.contains("`addresses`") && e.contains("10.0.0.1"), "{e}");

        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.1"]"#);
        assert!(e.contains("local_v4"), "{e}");

        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            burst = [{ every_ms = 100, duration_ms = 300 }]"#);
        assert!(e.contains("burst[0].duration_ms"), "{e}");

        let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            jitter = { dist = "gauss", stddev_ms = 1 }"#);
        assert!(e.contains("host \"gw\"") && e.contains("gauss"), "{e}");

        let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "a"
            addresses = ["198.18.0.11"]"#);
        assert!(e.contains("duplicate host name"), "{e}");

        let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "b"
            addresses = ["198.18.0.10"]"#);
        assert!(e.contains("also used by host \"a\""), "{e}");

        let e = err("[[host]\nname=");
        assert!(e.contains("syntax"), "{e}");
        let e = err("");
        assert!(e.contains("no [[host]]"), "{e}");
        let e = err(r#"[network]
            tun_name = "this-name-is-way-too-long"
            [[host]]
            name = "a"
            addresses = ["198.18.0.10"]"#);
        assert!(e.contains("[network]") && e.contains("tun_name"), "{e}");
        let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            rate_limit = { per_second = 0 }"#);
        assert!(e.contains("rate_limit.per_second"), "{e}");
    }

    #[test]
    fn network_timeline_errors_name_table_and_field() {
        const LAN: &str = r#"
            [network]
            prefix_v4_len = 24
            prefix_v6_len = 64
            router_v4 = "198.18.0.253"
            router_v6 = "2001:db8::fd"
            gateway = "gw"
            [[host]]
            name = "gw"
            addresses = ["198.18.0.254", "2001:db8::fe"]
            [[host]]
            name = "far"
            addresses = ["198.19.8.8"]
        "#;
        let s = parse(LAN).unwrap();
        assert_eq!(
            s.initial_gateway(),
            Gateway {
                v4: Some(("198.18.0.254".parse().unwrap(), 0)),
                v6: Some(("2001:db8::fe".parse().unwrap(), 0)),
            }
        );
        let with = |extra: &str| err(&format!("{LAN}\n{extra}"));

        let e = err(&LAN.replace("gateway = \"gw\"", "gateway = \"nope\""));
        assert!(
            e.contains("[network]") && e.contains("`gateway`") && e.contains("nope"),
            "{e}"
        );
        let e = err(&LAN.replace("gateway = \"gw\"", ""));
        assert!(
            e.contains("host \"far\"") && e.contains("`addresses`") && e.contains("198.19.8.8"),
            "{e}"
        );
        let e = err(&LAN.replace("gateway = \"gw\"", "gateway = \"far\""));
        assert!(e.contains("`gateway`") && e.contains("on-link"), "{e}");
        let e = with(
            "[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[link]]\nstart_ms = 1200\nduration_ms = 10",
        );
        assert!(
            e.contains("link #1") && e.contains("route_loss #1") && e.contains("overlap"),
            "{e}"
        );
        let e = with(
            "[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[route_change]]\nat_ms = 1499\ngateway = \"gw\"",
        );
        assert!(
            e.contains("route_change #1") && e.contains("`at_ms`"),
            "{e}"
        );
        // Touching windows are fine.
        parse(&format!("{LAN}\n[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[link]]\nstart_ms = 1500\nduration_ms = 10")).unwrap();
        let e = with("[[link]]\nstart_ms = 1\nduration_ms = 1\ninterface = \"eth9\"");
        assert!(
            e.contains("link #1") && e.contains("`interface`") && e.contains("eth9"),
            "{e}"
        );
        let e = with("[[link]]\nstart_ms = 1\nduration_ms = 1\nmode = \"unplugged\"");
        assert!(e.contains("link #1") && e.contains("unplugged"), "{e}");
        let e = with("[[route_loss]]\nstart_ms = -1\nduration_ms = 1");
        assert!(
            e.contains("route_loss #1") && e.contains("`start_ms`"),
            "{e}"
        );
        let e = with("[[route_loss]]\nstart_ms = 1\nduration_ms = 1\nroute = \"all\"");
        assert!(e.contains("route_loss #1") && e.contains("route"), "{e}");
        let e = err(&format!(
            "{}\n[[route_loss]]\nstart_ms = 1\nduration_ms = 1\nroutes = \"default\"",
            LAN.replace("gateway = \"gw\"", "")
                .replace("\"198.19.8.8\"", "\"198.18.0.8\"")
        ));
        assert!(e.contains("route_loss #1") && e.contains("`routes`"), "{e}");
        let e = with("[[interface]]\nname = \"zzsim1\"\nlocal_v4 = \"198.18.0.77\"");
        assert!(
            e.contains("interface \"zzsim1\"") && e.contains("overlaps"),
            "{e}"
        );
        let e = with("[[interface]]\nname = \"zzsim0\"\nlocal_v4 = \"198.18.1.1\"");
        assert!(e.contains("`name`") && e.contains("twice"), "{e}");
        let e = with("[[interface]]\nname = \"zzsim1\"");
        assert!(
            e.contains("interface \"zzsim1\"") && e.contains("local_v4"),
            "{e}"
        );
        let e = with("[[route_change]]\nat_ms = 5\ngateway = \"far\"");
        assert!(
            e.contains("route_change #1") && e.contains("on-link"),
            "{e}"
        );
        let e = err(&LAN.replace("prefix_v4_len = 24", "prefix_v4_len = 8"));
        assert!(e.contains("prefix_v4_len") && e.contains("15..=32"), "{e}");
    }

    #[test]
    fn path_errors_name_host_and_field() {
        const BASE: &str = r#"
            [network]
            prefix_v4_len = 24
            router_v4 = "198.18.0.253"
            router_v6 = "2001:db8::fd"
            gateway = "gw"
            [[host]]
            name = "gw"
            addresses = ["198.18.0.254"]
            [[host]]
            name = "edge"
            addresses = ["198.19.0.1"]
            via = "gw"
        "#;
        parse(BASE).unwrap();
        let with = |extra: &str| err(&format!("{BASE}\n{extra}"));
        let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = \"nope\"");
        assert!(
            e.contains("host \"far\"") && e.contains("`via`") && e.contains("nope"),
            "{e}"
        );
        let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = \"far\"");
        assert!(e.contains("own router"), "{e}");
        let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = []");
        assert!(e.contains("`via`") && e.contains("no router"), "{e}");
        let e = err(&BASE.replace("via = \"gw\"", "via = \"loop\"").replace(
            "[[host]]\n            name = \"edge\"",
            "[[host]]\nname = \"loop\"\naddresses = [\"198.19.0.2\"]\nvia = \"edge\"\n[[host]]\n            name = \"edge\"",
        ));
        assert!(
            e.contains("cycle")
                && (e.contains("edge -> loop -> edge") || e.contains("loop -> edge -> loop")),
            "{e}"
        );
        // A router must be able to answer in the family of the hosts behind it.
        let e = err(&format!(
            "{}\n[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\", \"2001:db8:8000::8\"]\nvia = \"edge\"",
            BASE.replace("gateway = \"gw\"", "gateway = \"gw\"\nprefix_v6_len = 64")
                .replace(
                    "addresses = [\"198.18.0.254\"]",
                    "addresses = [\"198.18.0.254\", \"2001:db8::fe\"]"
                )
        ));
        assert!(
            e.contains("host \"far\"") && e.contains("router \"edge\" has no IPv6 address"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "via = \"gw\"",
            "via = \"gw\"\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"host_unreachable\" }]",
        ));
        assert!(
            e.contains("host \"edge\"") && e.contains("errors[0]") && e.contains("never forwards"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]",
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"host_unreachable\", only = [\"gw\"] }]",
        ));
        assert!(
            e.contains("errors[0].only") && e.contains("not reached through"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]",
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"teapot\" }]",
        ));
        assert!(e.contains("host \"gw\"") && e.contains("teapot"), "{e}");
        let e = err(&BASE.replace(
            "gateway = \"gw\"",
            "gateway = \"gw\"\nunknown_via = \"nope\"",
        ));
        assert!(e.contains("`unknown_via`") && e.contains("nope"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(t in "[\\[\\]a-z_=\"0-9.,{} \n-]{0,200}") {
            let _ = parse(&t);
        }

        #[test]
        fn arbitrary_host_values_never_panic(
            rtt in proptest::num::f64::ANY,
            loss in proptest::num::f64::ANY,
            every in proptest::num::f64::ANY,
            dur in proptest::num::f64::ANY,
            rate in proptest::num::f64::ANY,
        ) {
            let t = format!(
                "[[host]]\nname = \"h\"\naddresses = [\"198.18.0.10\"]\nrtt_ms = {rtt:?}\nloss = {loss:?}\nburst = [{{ every_ms = {every:?}, duration_ms = {dur:?} }}]\nrate_limit = {{ per_second = {rate:?} }}\n"
            );
            if let Ok(s) = parse(&t) {
                // Whatever validates is usable by the decision engine.
                let mut n = crate::profile::Network::new(&s);
                for i in 0..20u64 {
                    let _ = n.decide("198.18.0.10".parse().unwrap(), i * 1_000_003);
                }
            }
        }
    }

    #[test]
    fn public_mapping() {
        for (a, public) in [
            ("198.18.0.254", false),
            ("198.18.255.1", false),
            ("198.19.0.1", true),
            ("198.19.8.8", true),
            ("2001:db8::fe", false),
            ("2001:db8:7fff::1", false),
            ("2001:db8:8000::1", true),
            ("2001:db8:ffff::1", true),
            ("203.0.113.7", false),
        ] {
            assert_eq!(plays_public(a.parse().unwrap()), public, "{a}");
        }
    }

    #[test]
    fn prefix_membership() {
        assert!(in_simulated_prefix("198.18.0.0".parse().unwrap()));
        assert!(in_simulated_prefix("198.19.255.255".parse().unwrap()));
        assert!(!in_simulated_prefix("198.20.0.1".parse().unwrap()));
        assert!(!in_simulated_prefix("198.17.255.255".parse().unwrap()));
        assert!(in_simulated_prefix("2001:db8:ffff::1".parse().unwrap()));
        assert!(!in_simulated_prefix("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn repo_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(
            n >= 8,
            "expected at least 8 scenarios in {}, found {n}",
            dir.display()
        );
    }
}
