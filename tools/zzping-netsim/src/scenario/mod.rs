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

mod spec;
mod validate;

pub use spec::*;

#[cfg(test)]
mod tests;
