//! Deterministic synthetic ping traffic, for tests, benchmarks and demos.
//!
//! [`Synth`] produces frames shaped like a real home network: a base RTT, a jitter with a
//! heavy tail (log-normal body plus rare spikes), a small random loss and, optionally,
//! periodic loss bursts (the 300 ms micro-outages zzping exists to catch). The same seed
//! always gives the same frames, so sizes measured on it are reproducible.

use crate::frame::Frame;

/// Profile of a synthetic host.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthProfile {
    /// Pings per second.
    pub rate_per_s: u32,
    /// Frame period, µs.
    pub period_us: u32,
    /// Base RTT, µs.
    pub base_rtt_us: u32,
    /// Median jitter added to the base, µs (log-normal).
    pub jitter_us: u32,
    /// Probability that a reply is a spike (×5-×50 the jitter).
    pub spike_prob: f64,
    /// Random loss probability per request.
    pub loss_prob: f64,
    /// Every `burst_every_us`, all requests during `burst_len_us` are lost (0 = never).
    pub burst_every_us: u64,
    /// Length of a loss burst, µs.
    pub burst_len_us: u64,
}

impl SynthProfile {
    /// A Wi-Fi-like host: 100 pings/s, 100 ms frames, 3 ms base, 1.5 ms jitter, 0.2 %
    /// loss, a 300 ms burst every 30 s.
    pub fn wifi() -> Self {
        Self {
            rate_per_s: 100,
            period_us: 100_000,
            base_rtt_us: 3_000,
            jitter_us: 1_500,
            spike_prob: 0.01,
            loss_prob: 0.002,
            burst_every_us: 30_000_000,
            burst_len_us: 300_000,
        }
    }

    /// A wired LAN host: 100 pings/s, 100 ms frames, 400 µs base, 60 µs jitter.
    pub fn wired() -> Self {
        Self {
            rate_per_s: 100,
            period_us: 100_000,
            base_rtt_us: 400,
            jitter_us: 60,
            spike_prob: 0.001,
            loss_prob: 0.0002,
            burst_every_us: 0,
            burst_len_us: 0,
        }
    }

    /// An internet host: 100 pings/s, 100 ms frames, 14 ms base, 2 ms jitter.
    pub fn internet() -> Self {
        Self {
            rate_per_s: 100,
            period_us: 100_000,
            base_rtt_us: 14_000,
            jitter_us: 2_000,
            spike_prob: 0.005,
            loss_prob: 0.001,
            burst_every_us: 0,
            burst_len_us: 0,
        }
    }
}

/// Generator of frames for one host. See the module docs.
#[derive(Debug, Clone)]
pub struct Synth {
    profile: SynthProfile,
    state: u64,
    next_start_us: u64,
    /// Fractional pings carried to the next frame (rate × period may not be whole).
    carry: f64,
}

impl Synth {
    /// A generator whose first frame starts at `start_us` (aligned down to the period).
    pub fn new(profile: SynthProfile, seed: u64, start_us: u64) -> Self {
        let p = u64::from(profile.period_us.max(1));
        Self {
            profile,
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            next_start_us: start_us - start_us % p,
            carry: 0.0,
        }
    }

    /// The profile.
    pub fn profile(&self) -> &SynthProfile {
        &self.profile
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        // Box-Muller.
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fills `frame` (reusing its buffer) with the next period's traffic.
    pub fn next_frame(&mut self, frame: &mut Frame) {
        let p = self.profile.clone();
        frame.clear(self.next_start_us, p.period_us);
        let exact = f64::from(p.rate_per_s) * f64::from(p.period_us) / 1e6 + self.carry;
        let n = exact.floor() as u32;
        self.carry = exact - f64::from(n);
        for i in 0..n {
            let t =
                self.next_start_us + u64::from(p.period_us) * u64::from(i) / u64::from(n.max(1));
            frame.sent += 1;
            let in_burst = p.burst_every_us > 0 && t % p.burst_every_us < p.burst_len_us;
            if in_burst || self.uniform() < p.loss_prob {
                frame.lost += 1;
                continue;
            }
            let mut jitter = f64::from(p.jitter_us) * (0.6 * self.normal()).exp();
            if self.uniform() < p.spike_prob {
                jitter *= 5.0 + 45.0 * self.uniform();
            }
            let rtt = (f64::from(p.base_rtt_us) + jitter).min(f64::from(u32::MAX));
            frame.rtts_us.push(rtt as u32);
        }
        self.next_start_us += u64::from(p.period_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let mut a = Synth::new(SynthProfile::wifi(), 7, 1_000_000_000);
        let mut b = Synth::new(SynthProfile::wifi(), 7, 1_000_000_000);
        let (mut fa, mut fb) = (Frame::default(), Frame::default());
        let mut lost = 0;
        let mut sent = 0;
        for _ in 0..600 {
            a.next_frame(&mut fa);
            b.next_frame(&mut fb);
            assert_eq!(fa, fb);
            assert_eq!(fa.sent, fa.received() + fa.lost);
            sent += fa.sent;
            lost += fa.lost;
        }
        assert_eq!(sent, 6000);
        // 60 s contains two 300 ms bursts (30 pings each) plus ~0.2 % random loss.
        assert!((60..90).contains(&lost), "{lost}");
    }
}
