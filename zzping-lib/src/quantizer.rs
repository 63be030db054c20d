//! Log-linear quantization of RTTs (and any other `u32` magnitude).
//!
//! A [`Quantizer`] of relative precision `p` maps every `u32` value `v` to a bucket index,
//! its *code*, and back to a representative value that is within `p/2` of `v`, relatively:
//! `|decode(encode(v)) - v| <= p/2 * v`. Small values (up to about `2/p`) get a bucket of
//! their own and are stored exactly; larger ones share geometric buckets whose width ratio
//! is about `1 + p`.
//!
//! Codes are the unit of everything downstream: frames store codes, summaries count codes,
//! and because two summaries built with the same quantizer count the same buckets, merging
//! them is exact.
//!
//! # The bucket table
//! Buckets are built greedily from 0 upwards using only IEEE-754 double multiplication,
//! division and `floor`, which every language computes identically, so a decoder written
//! elsewhere reproduces the table bit for bit (see `docs/format.md`):
//!
//! ```text
//! h = p / 2
//! code 0: lo = 0, rep = 0, hi = 0
//! next:   lo = previous hi + 1
//!         rep = max(lo, floor(lo * (1 + h)))
//!         hi  = max(rep, floor(rep / (1 - h)))      (capped at u32::MAX)
//! ```
//!
//! Every value in `[lo, rep]` is at most `h` below `rep` relatively, and every value in
//! `[rep, hi]` at most `h` above it, which gives the bound. Encoding is a binary search
//! over the bucket upper bounds (about 11 steps at `p = 0.01`); decoding is one lookup.
//! The table costs 8 bytes per bucket: 1,885 buckets (15 KB) at `p = 0.01`, exact up to
//! 198; 16,544 buckets (132 KB) at `p = 0.001`, exact up to 1,998; 409 at `p = 0.05`.

use thiserror::Error;

/// Default relative precision: decoded values are within 0.5 % of the original.
pub const DEFAULT_PRECISION: f64 = 0.01;
/// Finest precision accepted (142,408 buckets, a 1.1 MB table).
pub const MIN_PRECISION: f64 = 0.0001;
/// Coarsest precision accepted.
pub const MAX_PRECISION: f64 = 0.5;

/// A quantizer parameter was out of range.
#[derive(Debug, Error, PartialEq)]
pub enum QuantizerError {
    /// The precision was not a finite number in `[MIN_PRECISION, MAX_PRECISION]`.
    #[error("quantizer precision {0} is out of range (expected {MIN_PRECISION}..={MAX_PRECISION})")]
    Precision(f64),
}

/// Log-linear quantizer with relative precision `p`. See the module docs.
#[derive(Debug, Clone)]
pub struct Quantizer {
    precision: f64,
    /// Inclusive upper bound of each bucket, ascending; the last is `u32::MAX`.
    hi: Vec<u32>,
    /// Representative (decoded) value of each bucket.
    rep: Vec<u32>,
    /// Values `<= exact_max` have code == value.
    exact_max: u32,
}

impl PartialEq for Quantizer {
    fn eq(&self, other: &Self) -> bool {
        self.precision.to_bits() == other.precision.to_bits()
    }
}

impl Default for Quantizer {
    fn default() -> Self {
        Self::new(DEFAULT_PRECISION).expect("default precision is valid")
    }
}

impl Quantizer {
    /// Builds the bucket table for relative precision `precision`.
    pub fn new(precision: f64) -> Result<Self, QuantizerError> {
        if !precision.is_finite() || !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
            return Err(QuantizerError::Precision(precision));
        }
        let h = precision / 2.0;
        let up = 1.0 + h;
        let down = 1.0 - h;
        let mut hi = vec![0u32];
        let mut rep = vec![0u32];
        let mut exact_max = 0u32;
        let mut last_hi: u64 = 0;
        while last_hi < u64::from(u32::MAX) {
            let lo = last_hi + 1;
            let r = ((lo as f64 * up).floor() as u64).max(lo);
            let h_ = ((r as f64 / down).floor() as u64)
                .max(r)
                .min(u64::from(u32::MAX));
            if h_ == lo && exact_max as u64 + 1 == lo {
                exact_max = lo as u32;
            }
            // Every value is in range: r, h_ <= u32::MAX because lo <= u32::MAX and the
            // representative never exceeds the capped upper bound.
            let r = r.min(h_);
            hi.push(h_ as u32);
            rep.push(r as u32);
            last_hi = h_;
        }
        hi.shrink_to_fit();
        rep.shrink_to_fit();
        Ok(Self {
            precision,
            hi,
            rep,
            exact_max,
        })
    }

    /// The relative precision `p` this quantizer was built with.
    pub fn precision(&self) -> f64 {
        self.precision
    }

    /// Largest value stored exactly (every value up to it has its own code).
    pub fn exact_max(&self) -> u32 {
        self.exact_max
    }

    /// Number of codes: valid codes are `0..code_count()`.
    pub fn code_count(&self) -> u32 {
        self.hi.len() as u32
    }

    /// The code (bucket index) of `value`.
    #[inline]
    pub fn encode(&self, value: u32) -> u32 {
        if value <= self.exact_max {
            return value;
        }
        // First bucket whose inclusive upper bound is >= value.
        self.hi.partition_point(|&h| h < value) as u32
    }

    /// The representative value of `code`, or `None` for a code outside the table.
    #[inline]
    pub fn decode(&self, code: u32) -> Option<u32> {
        self.rep.get(code as usize).copied()
    }

    /// The representative value of `code`, saturating codes beyond the table to the last.
    #[inline]
    pub fn decode_saturating(&self, code: u32) -> u32 {
        let i = (code as usize).min(self.rep.len() - 1);
        self.rep[i]
    }

    /// Inclusive value range `[lo, hi]` covered by `code`.
    pub fn bucket(&self, code: u32) -> Option<(u32, u32)> {
        let i = code as usize;
        let hi = *self.hi.get(i)?;
        let lo = if i == 0 { 0 } else { self.hi[i - 1] + 1 };
        Some((lo, hi))
    }

    /// Quantizes a value: `decode(encode(value))` (for tests: they compare what a reader
    /// gets back).
    #[doc(hidden)]
    #[inline]
    pub fn round_trip(&self, value: u32) -> u32 {
        self.rep[self.encode(value) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn within_bound(q: &Quantizer, v: u32) -> bool {
        let d = q.round_trip(v) as f64;
        let v = v as f64;
        (d - v).abs() <= q.precision() / 2.0 * v * (1.0 + 1e-12)
    }

    #[test]
    fn rejects_bad_precision() {
        for p in [0.0, -0.1, 0.6, f64::NAN, f64::INFINITY, 0.00001] {
            assert!(Quantizer::new(p).is_err(), "{p}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let q = Quantizer::default();
        assert!(q.exact_max() >= 100, "exact up to {}", q.exact_max());
        for v in 0..=q.exact_max() {
            assert_eq!(q.encode(v), v);
            assert_eq!(q.decode(v), Some(v));
        }
    }

    #[test]
    fn table_is_contiguous_and_monotonic() {
        for p in [0.001, 0.01, 0.05, 0.5] {
            let q = Quantizer::new(p).unwrap();
            let mut prev_hi = None::<u32>;
            for c in 0..q.code_count() {
                let (lo, hi) = q.bucket(c).unwrap();
                assert!(lo <= hi);
                if let Some(ph) = prev_hi {
                    assert_eq!(lo, ph + 1);
                }
                let r = q.decode(c).unwrap();
                assert!(lo <= r && r <= hi);
                assert_eq!(q.encode(lo), c);
                assert_eq!(q.encode(hi), c);
                assert_eq!(q.encode(r), c);
                assert!(
                    within_bound(&q, lo) && within_bound(&q, hi),
                    "p={p} code {c}"
                );
                prev_hi = Some(hi);
            }
            assert_eq!(prev_hi, Some(u32::MAX));
            assert_eq!(q.decode(q.code_count()), None);
        }
    }

    #[test]
    fn code_count_matches_docs() {
        let q = Quantizer::new(0.01).unwrap();
        assert!((1880..1890).contains(&q.code_count()), "{}", q.code_count());
        let q = Quantizer::new(0.001).unwrap();
        assert!(
            (16500..16600).contains(&q.code_count()),
            "{}",
            q.code_count()
        );
    }

    #[test]
    fn extremes() {
        let q = Quantizer::default();
        assert!(within_bound(&q, u32::MAX));
        assert_eq!(q.encode(u32::MAX), q.code_count() - 1);
        assert_eq!(
            q.decode_saturating(u32::MAX),
            q.decode(q.code_count() - 1).unwrap()
        );
    }

    fn quantizers() -> &'static [Quantizer] {
        static QS: std::sync::OnceLock<Vec<Quantizer>> = std::sync::OnceLock::new();
        QS.get_or_init(|| {
            [0.0001, 0.001, 0.005, 0.01, 0.05, 0.5]
                .into_iter()
                .map(|p| Quantizer::new(p).unwrap())
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn bound_holds_over_u32(v in any::<u32>(), pi in 0usize..6) {
            let q = &quantizers()[pi];
            let p = q.precision();
            prop_assert!(within_bound(q, v), "p={} v={} decoded={}", p, v, q.round_trip(v));
        }

        #[test]
        fn bound_holds_default(v in any::<u32>()) {
            let q = Quantizer::default();
            prop_assert!(within_bound(&q, v));
            // encoding is monotonic
            if v > 0 {
                prop_assert!(q.encode(v - 1) <= q.encode(v));
            }
        }
    }
}

#[cfg(test)]
mod conformance {
    use super::Quantizer;

    /// Values computed by the Python reference in docs/format.md:
    /// `len(reps)` and `sum(reps) % 1000003` for each precision.
    #[test]
    fn table_matches_the_documented_python_reference() {
        for (p, count, checksum) in [
            (0.01, 1885, 535_705),
            (0.001, 16_544, 475_901),
            (0.05, 409, 261_954),
        ] {
            let q = Quantizer::new(p).unwrap();
            assert_eq!(q.code_count(), count);
            let sum: u64 = (0..q.code_count())
                .map(|c| u64::from(q.decode(c).unwrap()))
                .sum();
            assert_eq!(sum % 1_000_003, checksum, "p = {p}");
        }
    }
}
