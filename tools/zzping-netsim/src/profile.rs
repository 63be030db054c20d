//! Per-host decisions: what happens to each echo request.
//!
//! Decisions are made in this order, the first that applies wins:
//! 1. a scenario `[[outage]]` is active → `dropped_outage`;
//! 2. the host is `silent` → `silent`;
//! 3. a loss burst of the host is active → `dropped_burst`;
//! 4. random loss (`loss` probability) → `dropped_random` (lost on the way,
//!    so it costs no rate-limit token);
//! 5. the rate-limit token bucket is empty → `dropped_ratelimit`;
//! 6. the host is `unreachable` → the router answers with an ICMP error
//!    after `rtt_ms` + jitter;
//! 7. otherwise the host answers after `rtt_ms` + jitter (+ reorder extra
//!    delay, with its probability), possibly duplicated.
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

use crate::scenario::{
    Behavior, BurstSpec, HARD_MAX_DELAY_MS, HostSpec, Jitter, OutageSpec, RateLimitSpec, Scenario,
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
    /// The router answered with ICMP destination unreachable.
    Unreachable,
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
}

impl Decision {
    fn drop(fate: Fate) -> Self {
        Decision {
            fate,
            delays_us: Vec::new(),
            reordered: false,
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

    /// Decide the fate of a request read at `t_us`; `outage` tells whether a
    /// network-wide outage is active.
    pub fn decide(&mut self, t_us: u64, outage: bool) -> Decision {
        if outage {
            return Decision::drop(Fate::DroppedOutage);
        }
        if self.spec.behavior == Behavior::Silent {
            return Decision::drop(Fate::Silent);
        }
        if self.spec.burst.iter().any(|b| in_burst(b, t_us)) {
            return Decision::drop(Fate::DroppedBurst);
        }
        if self.spec.loss > 0.0 && self.rng.random::<f64>() < self.spec.loss {
            return Decision::drop(Fate::DroppedRandom);
        }
        if let Some(b) = &mut self.bucket {
            if !b.take(t_us) {
                return Decision::drop(Fate::DroppedRatelimit);
            }
        }
        let mut delay = self.delay_us();
        if self.spec.behavior == Behavior::Unreachable {
            return Decision {
                fate: Fate::Unreachable,
                delays_us: vec![delay],
                reordered: false,
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
        }
    }
}

/// All hosts of a scenario, looked up by address.
#[derive(Debug, Clone)]
pub struct Network {
    hosts: Vec<HostState>,
    by_addr: HashMap<IpAddr, usize>,
    outages: Vec<OutageSpec>,
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
        Network {
            hosts,
            by_addr,
            outages: s.outage.clone(),
        }
    }

    /// Whether a network-wide outage is active at `t_us`.
    pub fn outage_at(&self, t_us: u64) -> bool {
        self.outages.iter().any(|o| in_outage(o, t_us))
    }

    /// Decide for a request to `dst` read at `t_us`. Returns the host's name
    /// (None for an unknown address) and the decision.
    pub fn decide(&mut self, dst: IpAddr, t_us: u64) -> (Option<&str>, Decision) {
        let outage = self.outage_at(t_us);
        match self.by_addr.get(&dst) {
            Some(&i) => {
                let h = &mut self.hosts[i];
                let d = h.decide(t_us, outage);
                (Some(h.spec.name.as_str()), d)
            }
            None => (None, Decision::drop(Fate::UnknownHost)),
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
                reordered: false
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
