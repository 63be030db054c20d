//! Per-host decisions: what happens to each echo request.
//!
//! Decisions are made in this order, the first that applies wins:
//! 1. a scenario `[[outage]]` is active → `dropped_outage`;
//! 2. along the request's path (the routers of the host's `via` chain,
//!    first hop first), the first router that has an error window open for
//!    this destination, or at which the TTL expires (TTL ≤ its hop number),
//!    answers with that ICMP error (`unreachable` / `ttl_exceeded`) — as far
//!    as its own profile lets it: steps 3–6 of *the router's* profile apply
//!    to what it sends (a silent router sends nothing, a rate-limited one
//!    spends a token), and its delay is its own `rtt_ms` + jitter;
//!    a request to an address no host has then ends as `unknown_host`;
//! 3. the host is `silent` → `silent`;
//! 4. a loss burst of the host is active → `dropped_burst`;
//! 5. random loss (`loss` probability) → `dropped_random` (lost on the way,
//!    so it costs no rate-limit token);
//! 6. the rate-limit token bucket is empty → `dropped_ratelimit`;
//! 7. the host is `unreachable` → the router answers with an ICMP error
//!    after `rtt_ms` + jitter;
//! 8. otherwise the host answers after `rtt_ms` + jitter (+ reorder extra
//!    delay, with its probability), possibly duplicated.
//!
//! A router's profile shapes only what it sends itself (echo replies to its
//! own addresses, ICMP errors): requests it forwards to hosts behind it are
//! not affected by its loss, bursts or rate limit.
//!
//! Time `t` is measured in µs since the simulator started (monotonic clock).
//! Randomness comes from one ChaCha8 generator per host, seeded with the
//! scenario seed and the host's index, so the same sequence of requests gets
//! the same decisions on every run.

use std::collections::HashMap;
use std::net::IpAddr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::packet::IcmpErrorKind;
use crate::scenario::{
    Behavior, BurstSpec, ErrorWindowSpec, HARD_MAX_DELAY_MS, HostSpec, Jitter, OutageSpec,
    RateLimitSpec, Scenario,
};

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// One echo reply was sent.
    Answered,
    /// Several echo replies were sent (see `replies`).
    Duplicated,
    /// Lost at random.
    DroppedRandom,
    /// Lost in a periodic loss burst.
    DroppedBurst,
    /// Dropped by the rate limiter.
    DroppedRatelimit,
    /// Dropped during a network-wide outage.
    DroppedOutage,
    /// The host never answers.
    Silent,
    /// ICMP destination unreachable was sent (the host's `unreachable`
    /// behaviour, or a router's error window; `error` says which code).
    Unreachable,
    /// A router on the path answered ICMP time exceeded (the TTL expired
    /// there, or its `ttl_exceeded` error window is open).
    TtlExceeded,
    /// No simulated host has this address: dropped.
    UnknownHost,
}

impl Fate {
    /// Whether the prober receives an echo reply.
    pub fn is_answered(self) -> bool {
        matches!(self, Fate::Answered | Fate::Duplicated)
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Fate.
    pub fate: Fate,
    /// Delay of each reply to send, in µs after the request was read (empty
    /// when nothing is sent). Echo replies or one ICMP error.
    pub delays_us: Vec<u64>,
    /// Whether the reorder extra delay was applied.
    pub reordered: bool,
    /// The ICMP error answered (or that the router's profile kept it from
    /// sending), None for echo replies and plain drops.
    pub error: Option<IcmpErrorKind>,
    /// Index of the router on the path that decided (answered with an error,
    /// or dropped its own error); None when the destination decided.
    pub router: Option<usize>,
    /// Routers between the prober and whoever decided: the hop number of
    /// `router` minus one, else the path length.
    pub hops: u32,
}

impl Decision {
    fn drop(fate: Fate) -> Self {
        Decision {
            fate,
            delays_us: Vec::new(),
            reordered: false,
            error: None,
            router: None,
            hops: 0,
        }
    }
}

fn ms_to_us(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1000.0).round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// Whether the periodic burst `b` is active at `t_us`.
pub fn in_burst(b: &BurstSpec, t_us: u64) -> bool {
    let every = ms_to_us(b.every_ms);
    let offset = ms_to_us(b.offset_ms);
    let dur = ms_to_us(b.duration_ms);
    if every == 0 || t_us < offset {
        return false;
    }
    (t_us - offset) % every < dur
}

/// Whether the outage `o` is active at `t_us`.
pub fn in_outage(o: &OutageSpec, t_us: u64) -> bool {
    let start = ms_to_us(o.start_ms);
    let dur = ms_to_us(o.duration_ms);
    if t_us < start {
        return false;
    }
    match o.every_ms.map(ms_to_us) {
        Some(every) if every > 0 => (t_us - start) % every < dur,
        _ => t_us - start < dur,
    }
}

/// Token bucket: `capacity` tokens, refilled continuously at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_us: f64,
    last_us: u64,
}

impl TokenBucket {
    /// A full bucket at time 0.
    pub fn new(spec: &RateLimitSpec) -> Self {
        let capacity =
            f64::from(spec.burst.unwrap_or(spec.per_second.ceil().max(1.0) as u32)).max(1.0);
        TokenBucket {
            capacity,
            tokens: capacity,
            per_us: spec.per_second / 1e6,
            last_us: 0,
        }
    }

    /// Take one token at `now_us`; false when the bucket is empty.
    pub fn take(&mut self, now_us: u64) -> bool {
        if now_us > self.last_us {
            let dt = (now_us - self.last_us) as f64;
            self.tokens = (self.tokens + dt * self.per_us).min(self.capacity);
            self.last_us = now_us;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sample the jitter distribution in ms (may be negative for `normal`).
pub fn sample_jitter_ms<R: Rng>(j: &Jitter, rng: &mut R) -> f64 {
    match *j {
        Jitter::None => 0.0,
        Jitter::Uniform { max_ms } => rng.random::<f64>() * max_ms,
        Jitter::Normal { stddev_ms } => {
            // Box-Muller.
            let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
            let u2 = rng.random::<f64>();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * stddev_ms
        }
        Jitter::Exponential { mean_ms } => {
            let u = 1.0 - rng.random::<f64>();
            -mean_ms * u.ln()
        }
        Jitter::Pareto { scale_ms, shape } => {
            let u = 1.0 - rng.random::<f64>();
            scale_ms * (u.powf(-1.0 / shape) - 1.0)
        }
    }
}

/// Decision state of one simulated host.
#[derive(Debug, Clone)]
pub struct HostState {
    /// The profile.
    pub spec: HostSpec,
    rng: ChaCha8Rng,
    bucket: Option<TokenBucket>,
}

impl HostState {
    /// State for host number `index` of a scenario with `seed`.
    pub fn new(spec: HostSpec, seed: u64, index: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        let bucket = spec.rate_limit.as_ref().map(TokenBucket::new);
        HostState { spec, rng, bucket }
    }

    fn delay_us(&mut self) -> u64 {
        let j = sample_jitter_ms(&self.spec.jitter, &mut self.rng);
        let cap = self.spec.max_delay_ms.min(HARD_MAX_DELAY_MS);
        ms_to_us((self.spec.rtt_ms + j).clamp(0.0, cap))
    }

    /// Whether this host sends anything at `t_us`: None if so, else why not
    /// (steps 3–6 of the decision order).
    fn gate(&mut self, t_us: u64) -> Option<Fate> {
        if self.spec.behavior == Behavior::Silent {
            return Some(Fate::Silent);
        }
        if self.spec.burst.iter().any(|b| in_burst(b, t_us)) {
            return Some(Fate::DroppedBurst);
        }
        if self.spec.loss > 0.0 && self.rng.random::<f64>() < self.spec.loss {
            return Some(Fate::DroppedRandom);
        }
        if let Some(b) = &mut self.bucket {
            if !b.take(t_us) {
                return Some(Fate::DroppedRatelimit);
            }
        }
        None
    }

    /// As a router: answer a request it would forward with ICMP error
    /// `kind` at `t_us`, as far as its profile lets it.
    pub fn answer_error(&mut self, t_us: u64, kind: IcmpErrorKind) -> Decision {
        if let Some(f) = self.gate(t_us) {
            return Decision {
                error: Some(kind),
                ..Decision::drop(f)
            };
        }
        Decision {
            fate: if kind == IcmpErrorKind::TtlExceeded {
                Fate::TtlExceeded
            } else {
                Fate::Unreachable
            },
            delays_us: vec![self.delay_us()],
            reordered: false,
            error: Some(kind),
            router: None,
            hops: 0,
        }
    }

    /// Decide the fate of a request read at `t_us`; `outage` tells whether a
    /// network-wide outage is active.
    pub fn decide(&mut self, t_us: u64, outage: bool) -> Decision {
        if outage {
            return Decision::drop(Fate::DroppedOutage);
        }
        if let Some(f) = self.gate(t_us) {
            return Decision::drop(f);
        }
        let mut delay = self.delay_us();
        if self.spec.behavior == Behavior::Unreachable {
            return Decision {
                fate: Fate::Unreachable,
                delays_us: vec![delay],
                reordered: false,
                error: Some(IcmpErrorKind::HostUnreachable),
                router: None,
                hops: 0,
            };
        }
        let mut reordered = false;
        if let Some(r) = self.spec.reorder {
            if r.probability > 0.0 && self.rng.random::<f64>() < r.probability {
                reordered = true;
                delay = delay
                    .saturating_add(ms_to_us(r.extra_delay_ms))
                    .min(ms_to_us(HARD_MAX_DELAY_MS));
            }
        }
        let mut delays_us = vec![delay];
        if let Some(d) = self.spec.duplicate {
            if d.probability > 0.0 && self.rng.random::<f64>() < d.probability {
                let gap = ms_to_us(d.gap_ms);
                for k in 1..=u64::from(d.copies) {
                    delays_us.push(delay.saturating_add(gap.saturating_mul(k)));
                }
            }
        }
        let fate = if delays_us.len() > 1 {
            Fate::Duplicated
        } else {
            Fate::Answered
        };
        Decision {
            fate,
            delays_us,
            reordered,
            error: None,
            router: None,
            hops: 0,
        }
    }
}

/// Whether a (possibly repeating) window is open at `t_us`.
pub fn in_error_window(w: &ErrorWindowSpec, t_us: u64) -> bool {
    in_outage(
        &OutageSpec {
            start_ms: w.start_ms,
            duration_ms: w.duration_ms,
            every_ms: w.every_ms,
        },
        t_us,
    )
}

/// Routers before each host (by host index), and before addresses no host has.
type Paths = (Vec<Vec<usize>>, Vec<usize>);

/// What a request looks like to the decision engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Destination.
    pub dst: IpAddr,
    /// Read time, µs since the simulator started.
    pub t_us: u64,
    /// TTL / hop limit as sent.
    pub ttl: u8,
    /// Host index of the current default gateway (picks `via` alternatives).
    pub gateway: Option<usize>,
}

/// All hosts of a scenario, looked up by address.
#[derive(Debug, Clone)]
pub struct Network {
    hosts: Vec<HostState>,
    by_addr: HashMap<IpAddr, usize>,
    outages: Vec<OutageSpec>,
    /// Paths per default gateway (every gateway the scenario names, and
    /// none): per host, then for addresses no host has.
    paths: HashMap<Option<usize>, Paths>,
    /// Error windows per host, with the destinations they are limited to.
    windows: Vec<Vec<(ErrorWindowSpec, Vec<usize>)>>,
    /// Families (IPv4, IPv6) every router on the unknown path can answer in.
    unknown_families: [bool; 2],
    initial_gateway: Option<usize>,
}

impl Network {
    /// Decision state for a (validated) scenario.
    pub fn new(s: &Scenario) -> Self {
        let mut by_addr = HashMap::new();
        let hosts = s
            .host
            .iter()
            .enumerate()
            .map(|(i, h)| {
                for a in &h.addresses {
                    by_addr.insert(*a, i);
                }
                HostState::new(h.clone(), s.simulation.seed, i)
            })
            .collect();
        let initial_gateway = s.initial_gateway_host();
        let mut gateways: Vec<Option<usize>> = vec![None, initial_gateway];
        gateways.extend(s.route_change.iter().map(|c| s.host_index(&c.gateway)));
        let paths = gateways
            .into_iter()
            .map(|g| {
                let per_host = (0..s.host.len()).map(|i| s.path_of(i, g)).collect();
                (g, (per_host, s.unknown_path(g)))
            })
            .collect();
        let windows = s
            .host
            .iter()
            .map(|h| {
                h.errors
                    .iter()
                    .map(|w| {
                        let only = w.only.iter().filter_map(|n| s.host_index(n)).collect();
                        (w.clone(), only)
                    })
                    .collect()
            })
            .collect();
        let unknown = s.unknown_path(initial_gateway);
        let fam = |v6: bool| {
            unknown
                .iter()
                .all(|&r| s.host[r].addresses.iter().any(|a| a.is_ipv6() == v6))
        };
        Network {
            hosts,
            by_addr,
            outages: s.outage.clone(),
            paths,
            windows,
            unknown_families: [fam(false), fam(true)],
            initial_gateway,
        }
    }

    /// Whether a network-wide outage is active at `t_us`.
    pub fn outage_at(&self, t_us: u64) -> bool {
        self.outages.iter().any(|o| in_outage(o, t_us))
    }

    /// The scenario's initial default gateway (host index).
    pub fn initial_gateway(&self) -> Option<usize> {
        self.initial_gateway
    }

    /// Name of host `i`.
    pub fn name(&self, i: usize) -> &str {
        self.hosts.get(i).map_or("", |h| h.spec.name.as_str())
    }

    /// The first address of host `i` in the family of `like`.
    pub fn address_like(&self, i: usize, like: IpAddr) -> Option<IpAddr> {
        self.hosts
            .get(i)?
            .spec
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv6() == like.is_ipv6())
    }

    /// Decide for a request to `dst` read at `t_us` with TTL 64 and the
    /// initial gateway. Returns the host's name (None for an unknown
    /// address) and the decision.
    pub fn decide(&mut self, dst: IpAddr, t_us: u64) -> (Option<&str>, Decision) {
        let gateway = self.initial_gateway;
        self.decide_probe(Probe {
            dst,
            t_us,
            ttl: 64,
            gateway,
        })
    }

    /// Decide for request `p` (see the module docs for the order). Returns
    /// the destination host's name (None for an unknown address) and the
    /// decision.
    pub fn decide_probe(&mut self, p: Probe) -> (Option<&str>, Decision) {
        let dst_host = self.by_addr.get(&p.dst).copied();
        let d = self.decide_inner(p, dst_host);
        (dst_host.map(|i| self.hosts[i].spec.name.as_str()), d)
    }

    fn decide_inner(&mut self, p: Probe, dst_host: Option<usize>) -> Decision {
        if self.outage_at(p.t_us) {
            return Decision::drop(Fate::DroppedOutage);
        }
        let empty = (Vec::new(), Vec::new());
        let (per_host, unknown) = self
            .paths
            .get(&p.gateway)
            .or_else(|| self.paths.get(&self.initial_gateway))
            .unwrap_or(&empty);
        let path: &[usize] = match dst_host {
            Some(i) => per_host.get(i).map_or(&[], Vec::as_slice),
            None if self.unknown_families[usize::from(p.dst.is_ipv6())] => unknown,
            None => &[],
        };
        for (k, &r) in path.iter().enumerate() {
            let hop = k + 1;
            let window = self.windows[r]
                .iter()
                .find(|(w, only)| {
                    in_error_window(w, p.t_us)
                        && (only.is_empty() || dst_host.is_some_and(|d| only.contains(&d)))
                })
                .map(|(w, _)| w.kind);
            let kind = window.or((usize::from(p.ttl) <= hop).then_some(IcmpErrorKind::TtlExceeded));
            if let Some(kind) = kind {
                let mut d = self.hosts[r].answer_error(p.t_us, kind);
                d.router = Some(r);
                d.hops = k as u32;
                return d;
            }
        }
        let hops = path.len() as u32;
        match dst_host {
            Some(i) => {
                let mut d = self.hosts[i].decide(p.t_us, false);
                d.hops = hops;
                d
            }
            None => Decision::drop(Fate::UnknownHost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn host(extra: &str) -> HostSpec {
        let t = format!("[[host]]\nname = \"h\"\naddresses = [\"198.18.0.10\"]\n{extra}");
        Scenario::parse(&t, Path::new("t.toml"))
            .unwrap()
            .host
            .remove(0)
    }

    #[test]
    fn burst_timing() {
        let b = BurstSpec {
            every_ms: 30_000.0,
            duration_ms: 300.0,
            offset_ms: 5_000.0,
        };
        assert!(!in_burst(&b, 0));
        assert!(!in_burst(&b, 4_999_999));
        assert!(in_burst(&b, 5_000_000));
        assert!(in_burst(&b, 5_299_999));
        assert!(!in_burst(&b, 5_300_000));
        assert!(!in_burst(&b, 34_999_999));
        assert!(in_burst(&b, 35_000_000));
        assert!(in_burst(&b, 35_150_000));
        assert!(!in_burst(&b, 35_300_000));
    }

    #[test]
    fn outage_windows() {
        let o = OutageSpec {
            start_ms: 1000.0,
            duration_ms: 500.0,
            every_ms: None,
        };
        assert!(!in_outage(&o, 999_999));
        assert!(in_outage(&o, 1_000_000));
        assert!(in_outage(&o, 1_499_999));
        assert!(!in_outage(&o, 1_500_000));
        assert!(!in_outage(&o, 11_000_000));
        let r = OutageSpec {
            every_ms: Some(10_000.0),
            ..o
        };
        assert!(in_outage(&r, 11_000_000));
        assert!(!in_outage(&r, 11_600_000));
    }

    #[test]
    fn token_bucket_limits_rate() {
        let mut b = TokenBucket::new(&RateLimitSpec {
            per_second: 10.0,
            burst: Some(3),
        });
        // Burst of 3 passes at t=0, then empty.
        assert!(b.take(0) && b.take(0) && b.take(0));
        assert!(!b.take(0));
        // 100 ms later one token is back, not two.
        assert!(b.take(100_000));
        assert!(!b.take(100_000));
        // Over 10 s at 1000 requests/s, about 10/s pass (+ the burst).
        let mut passed = 0;
        for i in 0..10_000u64 {
            if b.take(1_000_000 + i * 1000) {
                passed += 1;
            }
        }
        assert!((100..=104).contains(&passed), "passed {passed}");
        // Refill never exceeds the capacity.
        let mut n = 0;
        while b.take(1_000_000_000) {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn seeded_decisions_reproducible() {
        let spec = host(
            "rtt_ms = 10\njitter = { dist = \"normal\", stddev_ms = 3 }\nloss = 0.2\nduplicate = { probability = 0.2, copies = 2 }\nreorder = { probability = 0.1, extra_delay_ms = 50 }",
        );
        let run = |seed| {
            let mut h = HostState::new(spec.clone(), seed, 0);
            (0..500)
                .map(|i| h.decide(i * 10_000, false))
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        // Different hosts of one scenario get different streams.
        let mut h0 = HostState::new(spec.clone(), 1, 0);
        let mut h1 = HostState::new(spec.clone(), 1, 1);
        let d0: Vec<_> = (0..50).map(|i| h0.decide(i, false)).collect();
        let d1: Vec<_> = (0..50).map(|i| h1.decide(i, false)).collect();
        assert_ne!(d0, d1);
        // Rates roughly as configured.
        let lost = a.iter().filter(|d| d.fate == Fate::DroppedRandom).count();
        assert!((60..=140).contains(&lost), "lost {lost}");
        let dup = a.iter().filter(|d| d.fate == Fate::Duplicated).count();
        assert!(dup > 40 && dup < 130, "dup {dup}");
        assert!(
            a.iter()
                .filter(|d| d.fate == Fate::Duplicated)
                .all(|d| d.delays_us.len() == 3)
        );
        assert!(a.iter().any(|d| d.reordered && d.delays_us[0] >= 50_000));
    }

    #[test]
    fn jitter_distributions_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let mean = |j: Jitter, rng: &mut ChaCha8Rng| {
            (0..n).map(|_| sample_jitter_ms(&j, rng)).sum::<f64>() / f64::from(n)
        };
        for _ in 0..1000 {
            let u = sample_jitter_ms(&Jitter::Uniform { max_ms: 2.0 }, &mut rng);
            assert!((0.0..=2.0).contains(&u));
            let p = sample_jitter_ms(
                &Jitter::Pareto {
                    scale_ms: 1.0,
                    shape: 1.5,
                },
                &mut rng,
            );
            assert!(p >= 0.0 && p.is_finite());
        }
        assert!((mean(Jitter::Uniform { max_ms: 2.0 }, &mut rng) - 1.0).abs() < 0.05);
        assert!(mean(Jitter::Normal { stddev_ms: 1.0 }, &mut rng).abs() < 0.05);
        assert!((mean(Jitter::Exponential { mean_ms: 4.0 }, &mut rng) - 4.0).abs() < 0.2);
        // Lomax mean = scale / (shape - 1) for shape > 1.
        assert!(
            (mean(
                Jitter::Pareto {
                    scale_ms: 1.0,
                    shape: 3.0
                },
                &mut rng
            ) - 0.5)
                .abs()
                < 0.1
        );
        assert_eq!(sample_jitter_ms(&Jitter::None, &mut rng), 0.0);
    }

    #[test]
    fn delay_clamped_and_capped() {
        let mut h = HostState::new(
            host("rtt_ms = 1\njitter = { dist = \"normal\", stddev_ms = 50 }\nmax_delay_ms = 20"),
            0,
            0,
        );
        for i in 0..1000 {
            let d = h.decide(i, false);
            assert!(d.delays_us[0] <= 20_000);
        }
    }

    #[test]
    fn order_of_decisions() {
        let mut h = HostState::new(host("behavior = \"silent\""), 0, 0);
        assert_eq!(h.decide(0, false).fate, Fate::Silent);
        assert_eq!(h.decide(0, true).fate, Fate::DroppedOutage);
        let mut h = HostState::new(host("behavior = \"unreachable\"\nrtt_ms = 3"), 0, 0);
        assert_eq!(
            h.decide(0, false),
            Decision {
                fate: Fate::Unreachable,
                delays_us: vec![3000],
                reordered: false,
                error: Some(IcmpErrorKind::HostUnreachable),
                router: None,
                hops: 0,
            }
        );
        let mut h = HostState::new(
            host("loss = 1.0\nrate_limit = { per_second = 1, burst = 1 }"),
            0,
            0,
        );
        assert_eq!(h.decide(0, false).fate, Fate::DroppedRandom);
        let mut h = HostState::new(
            host(
                "burst = [{ every_ms = 1000, duration_ms = 100 }]\nrate_limit = { per_second = 1, burst = 1 }",
            ),
            0,
            0,
        );
        assert_eq!(h.decide(50_000, false).fate, Fate::DroppedBurst);
        assert_eq!(h.decide(150_000, false).fate, Fate::Answered);
        assert_eq!(h.decide(160_000, false).fate, Fate::DroppedRatelimit);
    }

    const PATH: &str = r#"
        [network]
        prefix_v4_len = 24
        prefix_v6_len = 64
        router_v4 = "198.18.0.253"
        router_v6 = "2001:db8::fd"
        gateway = "gw"
        unknown_via = "core"
        [[host]]
        name = "gw"
        addresses = ["198.18.0.254", "2001:db8::fe"]
        rtt_ms = 1
        [[host]]
        name = "gw2"
        addresses = ["198.18.0.250", "2001:db8::fa"]
        [[host]]
        name = "edge"
        addresses = ["198.19.0.1", "2001:db8:8000::1"]
        via = "gw"
        rtt_ms = 5
        rate_limit = { per_second = 1, burst = 1 }
        errors = [
            { start_ms = 1000, duration_ms = 1000, kind = "admin_prohibited" },
            { start_ms = 3000, duration_ms = 1000, kind = "host_unreachable", only = ["far"] },
        ]
        [[host]]
        name = "edge2"
        addresses = ["198.19.64.1", "2001:db8:8040::1"]
        via = "gw2"
        [[host]]
        name = "core"
        addresses = ["198.19.1.1", "2001:db8:8001::1"]
        via = ["edge", "edge2"]
        behavior = "silent"
        [[host]]
        name = "far"
        addresses = ["198.19.8.8", "2001:db8:8000::8"]
        via = "core"
        rtt_ms = 10
        [[host]]
        name = "far2"
        addresses = ["198.19.8.9"]
        via = "core"
        [[route_change]]
        at_ms = 100000
        gateway = "gw2"
    "#;

    fn probe(dst: &str, t_ms: u64, ttl: u8, gateway: Option<usize>) -> Probe {
        Probe {
            dst: dst.parse().unwrap(),
            t_us: t_ms * 1000,
            ttl,
            gateway,
        }
    }

    #[test]
    fn ttl_expires_at_each_router_of_the_path() {
        let s = Scenario::parse(PATH, Path::new("t.toml")).unwrap();
        let mut n = Network::new(&s);
        let (gw, edge, core) = (Some(0), 2, 4);
        for v6 in [false, true] {
            let far = if v6 { "2001:db8:8000::8" } else { "198.19.8.8" };
            // TTL 1 expires at gw (hop 1), 2 at edge (whose rate limit has a token),
            // 3 at core (silent: no error), 4 reaches far.
            let (name, d) = n.decide_probe(probe(far, 0, 1, gw));
            assert_eq!(name, Some("far"));
            assert_eq!(
                (d.fate, d.error, d.router, d.hops, d.delays_us.clone()),
                (
                    Fate::TtlExceeded,
                    Some(IcmpErrorKind::TtlExceeded),
                    Some(0),
                    0,
                    vec![1000]
                )
            );
            let (_, d) = n.decide_probe(probe(far, 10_000 * u64::from(v6), 2, gw));
            assert_eq!(
                (d.fate, d.router, d.hops),
                (Fate::TtlExceeded, Some(edge), 1)
            );
            assert_eq!(d.delays_us, vec![5000]);
            let (_, d) = n.decide_probe(probe(far, 0, 3, gw));
            assert_eq!(
                (d.fate, d.error, d.router, d.hops),
                (
                    Fate::Silent,
                    Some(IcmpErrorKind::TtlExceeded),
                    Some(core),
                    2
                )
            );
            let (_, d) = n.decide_probe(probe(far, 0, 4, gw));
            assert_eq!(
                (d.fate, d.error, d.router, d.hops),
                (Fate::Answered, None, None, 3)
            );
            assert_eq!(d.delays_us, vec![10_000]);
        }
        // The routers themselves are reached through the routers before them.
        let (_, d) = n.decide_probe(probe("198.19.0.1", 20_000, 1, gw));
        assert_eq!((d.fate, d.router), (Fate::TtlExceeded, Some(0)));
        let (_, d) = n.decide_probe(probe("198.19.0.1", 20_000, 2, gw));
        assert_eq!((d.fate, d.router, d.hops), (Fate::Answered, None, 1));
        // An address no host has crosses unknown_via's path and it, then is dropped.
        let (name, d) = n.decide_probe(probe("198.19.99.99", 40_000, 2, gw));
        assert_eq!(
            (name, d.fate, d.router),
            (None, Fate::TtlExceeded, Some(edge))
        );
        let (_, d) = n.decide_probe(probe("198.19.99.99", 40_000, 64, gw));
        assert_eq!((d.fate, d.router), (Fate::UnknownHost, None));
    }

    #[test]
    fn a_routers_profile_shapes_only_what_it_sends() {
        let s = Scenario::parse(PATH, Path::new("t.toml")).unwrap();
        let mut n = Network::new(&s);
        // edge allows 1 answer per second (burst 1): its own echo replies and its
        // errors share the bucket; what it forwards to far does not touch it.
        let fates: Vec<Fate> = (0..50)
            .map(|i| {
                n.decide_probe(probe("198.19.8.8", 30_000 + i, 64, Some(0)))
                    .1
                    .fate
            })
            .collect();
        assert!(fates.iter().all(|&f| f == Fate::Answered), "{fates:?}");
        let own: Vec<Fate> = (0..5)
            .map(|i| {
                n.decide_probe(probe("198.19.0.1", 30_000 + i, 64, Some(0)))
                    .1
                    .fate
            })
            .collect();
        assert_eq!(own[0], Fate::Answered);
        assert!(
            own[1..].iter().all(|&f| f == Fate::DroppedRatelimit),
            "{own:?}"
        );
        let (_, d) = n.decide_probe(probe("198.19.8.8", 30_010, 2, Some(0)));
        assert_eq!(
            (d.fate, d.error),
            (Fate::DroppedRatelimit, Some(IcmpErrorKind::TtlExceeded))
        );
    }

    #[test]
    fn error_windows_answer_for_the_hosts_behind() {
        let s = Scenario::parse(PATH, Path::new("t.toml")).unwrap();
        let mut n = Network::new(&s);
        let gw = Some(0);
        // 1000..2000 ms: edge prohibits everything behind it (its token refills at 1/s).
        let (_, d) = n.decide_probe(probe("198.19.8.8", 1000, 64, gw));
        assert_eq!(
            (d.fate, d.error, d.router, d.hops),
            (
                Fate::Unreachable,
                Some(IcmpErrorKind::AdminProhibited),
                Some(2),
                1
            )
        );
        let (_, d) = n.decide_probe(probe("198.19.99.99", 1999, 64, gw));
        assert_eq!(d.error, Some(IcmpErrorKind::AdminProhibited));
        // Not for itself, and not before or after.
        let (_, d) = n.decide_probe(probe("198.19.0.1", 1500, 64, gw));
        assert_eq!((d.fate, d.error), (Fate::DroppedRatelimit, None));
        assert_eq!(
            n.decide_probe(probe("198.19.8.8", 999, 64, gw)).1.fate,
            Fate::Answered
        );
        assert_eq!(
            n.decide_probe(probe("198.19.8.8", 2000, 64, gw)).1.fate,
            Fate::Answered
        );
        // 3000..4000 ms: host unreachable for far only.
        let (_, d) = n.decide_probe(probe("198.19.8.8", 3000, 64, gw));
        assert_eq!(
            (d.fate, d.error),
            (Fate::Unreachable, Some(IcmpErrorKind::HostUnreachable))
        );
        assert_eq!(
            n.decide_probe(probe("198.19.8.9", 3500, 64, gw)).1.fate,
            Fate::Answered
        );
    }

    #[test]
    fn via_alternatives_follow_the_default_gateway() {
        let s = Scenario::parse(PATH, Path::new("t.toml")).unwrap();
        let mut n = Network::new(&s);
        // With gw2 as the default gateway, core is reached through edge2.
        let (_, d) = n.decide_probe(probe("198.19.8.9", 0, 2, Some(1)));
        assert_eq!((d.fate, d.router), (Fate::TtlExceeded, Some(3)));
        let (_, d) = n.decide_probe(probe("198.19.8.9", 0, 1, Some(1)));
        assert_eq!(d.router, Some(1));
        let (_, d) = n.decide_probe(probe("198.19.8.9", 0, 2, Some(0)));
        assert_eq!(d.router, Some(2));
        assert_eq!(s.path_of(6, Some(1)), vec![1, 3, 4]);
        assert_eq!(s.path_of(6, Some(0)), vec![0, 2, 4]);
        assert_eq!(s.path_of(6, None), vec![0, 2, 4]);
    }

    #[test]
    fn network_lookup() {
        let s = Scenario::parse(
            "[[outage]]\nstart_ms = 100\nduration_ms = 100\n[[host]]\nname = \"a\"\naddresses = [\"198.18.0.10\", \"2001:db8::10\"]\nrtt_ms = 1",
            Path::new("t.toml"),
        )
        .unwrap();
        let mut n = Network::new(&s);
        let (name, d) = n.decide("2001:db8::10".parse().unwrap(), 0);
        assert_eq!(
            (name, d.fate, d.delays_us),
            (Some("a"), Fate::Answered, vec![1000])
        );
        let (name, d) = n.decide("198.18.0.99".parse().unwrap(), 0);
        assert_eq!((name, d.fate), (None, Fate::UnknownHost));
        assert_eq!(
            n.decide("198.18.0.10".parse().unwrap(), 150_000).1.fate,
            Fate::DroppedOutage
        );
        assert_eq!(
            n.decide("198.18.0.10".parse().unwrap(), 200_000).1.fate,
            Fate::Answered
        );
    }
}
