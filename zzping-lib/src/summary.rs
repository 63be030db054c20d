//! Mergeable summaries of spans of frames.
//!
//! A [`Summary`] holds the counters of a span of frames and a sparse histogram of their
//! RTT codes. Codes are the quantizer's buckets, so merging two histograms is exact: the
//! summary of summaries *is* the summary of the raw frames, bit for bit, and every
//! percentile of a merged summary is the percentile of the underlying pings (decoded to
//! its bucket's representative, i.e. within the quantizer's `p/2`).
//!
//! Percentiles use the nearest-rank definition: the `q`-quantile of `n` values is the
//! smallest value `x` such that at least `ceil(q * n)` values are `<= x` (`q = 0` gives
//! the minimum). Because quantization is monotonic, the `q`-quantile of the codes is the
//! code of the `q`-quantile of the raw RTTs.

use crate::codec::QFrame;
use crate::frame::Counts;
use crate::quantizer::Quantizer;

/// A sparse histogram of quantizer codes: `(code, count)` pairs, codes strictly ascending,
/// counts non-zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    entries: Vec<(u32, u32)>,
    total: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from `(code, count)` pairs that are strictly ascending by code with non-zero
    /// counts; returns `None` otherwise.
    pub fn from_entries(entries: Vec<(u32, u32)>) -> Option<Self> {
        let ok = entries.windows(2).all(|w| w[0].0 < w[1].0) && entries.iter().all(|e| e.1 > 0);
        ok.then(|| {
            let total = entries.iter().map(|e| u64::from(e.1)).sum();
            Self { entries, total }
        })
    }

    /// The `(code, count)` pairs, ascending.
    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True when nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Removes everything, keeping capacity.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.total = 0;
    }

    /// Adds sorted codes (as a [`QFrame`] holds them).
    pub fn add_sorted_codes(&mut self, codes: &[u32]) {
        debug_assert!(codes.is_sorted());
        let mut i = 0;
        let mut scratch = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(scratch.len() + codes.len());
        let mut k = 0;
        while k < codes.len() {
            let c = codes[k];
            let mut n = 0u32;
            while k < codes.len() && codes[k] == c {
                n += 1;
                k += 1;
            }
            while i < scratch.len() && scratch[i].0 < c {
                merged.push(scratch[i]);
                i += 1;
            }
            if i < scratch.len() && scratch[i].0 == c {
                merged.push((c, scratch[i].1.saturating_add(n)));
                i += 1;
            } else {
                merged.push((c, n));
            }
            self.total += u64::from(n);
        }
        merged.extend_from_slice(&scratch[i..]);
        scratch.clear();
        self.entries = merged;
    }

    /// Adds every count of `other` (exact).
    pub fn merge(&mut self, other: &Histogram) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries.extend_from_slice(&other.entries);
            self.total = other.total;
            return;
        }
        let a = std::mem::take(&mut self.entries);
        let b = &other.entries;
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push((a[i].0, a[i].1.saturating_add(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.entries = out;
        self.total += other.total;
    }

    /// Smallest code counted.
    pub fn min_code(&self) -> Option<u32> {
        self.entries.first().map(|e| e.0)
    }

    /// Largest code counted.
    pub fn max_code(&self) -> Option<u32> {
        self.entries.last().map(|e| e.0)
    }

    /// The nearest-rank `q`-quantile code (`q` clamped to `[0, 1]`).
    pub fn quantile_code(&self, q: f64) -> Option<u32> {
        if self.total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for &(code, n) in &self.entries {
            seen += u64::from(n);
            if seen >= rank {
                return Some(code);
            }
        }
        self.max_code()
    }

    /// Several quantile codes in one pass; `qs` must be ascending. Writes `None`s when empty.
    pub fn quantile_codes(&self, qs: &[f64], out: &mut [Option<u32>]) {
        let mut it = self.entries.iter();
        let mut seen = 0u64;
        let mut cur = None;
        for (q, o) in qs.iter().zip(out.iter_mut()) {
            if self.total == 0 {
                *o = None;
                continue;
            }
            let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
            while seen < rank {
                match it.next() {
                    Some(&(c, n)) => {
                        seen += u64::from(n);
                        cur = Some(c);
                    }
                    None => break,
                }
            }
            *o = cur;
        }
    }
}

/// The nearest rank (1-based) of quantile `q` among `total` values.
#[inline]
fn rank_of(q: f64, total: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total.max(1))
}

/// A histogram of codes as one count per code: adding is O(1) per code, so it is the
/// accumulator for merging many histograms (a pyramid level's bucket, a viewer's pixel
/// column) before reading quantiles or taking the sparse [`Histogram`]. It keeps the
/// range of codes counted: reading and clearing cost that range, not the whole table.
#[derive(Debug, Clone, Default)]
pub struct DenseHistogram {
    counts: Vec<u64>,
    /// Smallest and largest code counted (meaningful when `total > 0`).
    lo: u32,
    hi: u32,
    total: u64,
}

impl DenseHistogram {
    /// An empty histogram with room for codes below `codes` (it grows as needed).
    pub fn with_codes(codes: u32) -> Self {
        Self {
            counts: vec![0; codes as usize],
            ..Self::default()
        }
    }

    /// Values counted.
    #[inline]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True when nothing is counted.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Makes room for codes up to `hi` and widens the range counted to include `lo..=hi`.
    #[inline]
    fn widen(&mut self, lo: u32, hi: u32) {
        if hi as usize >= self.counts.len() {
            self.counts.resize(hi as usize + 1, 0);
        }
        if self.total == 0 {
            (self.lo, self.hi) = (lo, hi);
        } else {
            self.lo = self.lo.min(lo);
            self.hi = self.hi.max(hi);
        }
    }

    /// Counts `n` values of `code`.
    #[inline]
    pub fn add(&mut self, code: u32, n: u64) {
        if n == 0 {
            return;
        }
        self.widen(code, code);
        self.counts[code as usize] += n;
        self.total += n;
    }

    /// Adds every count of `h`.
    #[inline]
    pub fn add_histogram(&mut self, h: &Histogram) {
        let (Some(&(first, _)), Some(&(last, _))) = (h.entries.first(), h.entries.last()) else {
            return;
        };
        // Entries ascend by code: the range and the room needed are known up front.
        self.widen(first, last);
        for &(code, n) in &h.entries {
            self.counts[code as usize] += u64::from(n);
        }
        self.total += h.total;
    }

    /// Several nearest-rank quantile codes in one walk up from the smallest code; `qs`
    /// must be ascending. The same definition as [`Histogram::quantile_codes`]; writes
    /// `None`s when empty.
    #[inline]
    pub fn quantile_codes(&self, qs: &[f64], out: &mut [Option<u32>]) {
        let total = self.total;
        let mut seen = 0u64;
        let mut next = self.lo as usize;
        let mut code = self.lo;
        for (q, o) in qs.iter().zip(out.iter_mut()) {
            if total == 0 {
                *o = None;
                continue;
            }
            let rank = rank_of(*q, total);
            if rank == total {
                // The last rank is the largest code, known already: no walk to it.
                code = self.hi;
            } else {
                while seen < rank && next <= self.hi as usize {
                    let n = self.counts[next];
                    if n > 0 {
                        seen += n;
                        code = next as u32;
                    }
                    next += 1;
                }
            }
            *o = Some(code);
        }
    }

    /// The sparse histogram of the counts (saturated to `u32`), leaving this one empty.
    pub fn take(&mut self) -> Histogram {
        let mut entries = Vec::new();
        if self.total > 0 {
            for code in self.lo..=self.hi {
                let n = std::mem::take(&mut self.counts[code as usize]);
                if n > 0 {
                    entries.push((code, u32::try_from(n).unwrap_or(u32::MAX)));
                }
            }
        }
        self.total = 0;
        Histogram::from_entries(entries).expect("ascending, non-zero")
    }

    /// Removes every count, keeping capacity.
    #[inline]
    pub fn clear(&mut self) {
        if self.total > 0 {
            self.counts[self.lo as usize..=self.hi as usize].fill(0);
            self.total = 0;
        }
    }
}

/// Counters and RTT histogram of a span of frames `[start_us, start_us + width_us)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Start of the span, µs since the epoch.
    pub start_us: u64,
    /// Length of the span, µs.
    pub width_us: u64,
    /// Number of frames merged in.
    pub frames: u32,
    /// Summed counters.
    pub counts: Counts,
    /// OR of the frames' flags.
    pub flags: u8,
    /// RTT codes of every received reply.
    pub hist: Histogram,
}

impl Summary {
    /// An empty summary of the span `[start_us, start_us + width_us)`.
    pub fn new(start_us: u64, width_us: u64) -> Self {
        Self {
            start_us,
            width_us,
            ..Self::default()
        }
    }

    /// Adds one frame.
    pub fn add_frame(&mut self, f: &QFrame) {
        self.frames += 1;
        self.counts.merge(&f.counts());
        self.flags |= f.flags;
        self.hist.add_sorted_codes(&f.codes);
    }

    /// Merges another summary (exact). The span grows to cover both.
    pub fn merge(&mut self, other: &Summary) {
        if self.frames == 0 && self.width_us == 0 {
            self.start_us = other.start_us;
            self.width_us = other.width_us;
        } else if other.width_us > 0 {
            let end = self.end_us().max(other.end_us());
            self.start_us = self.start_us.min(other.start_us);
            self.width_us = end - self.start_us;
        }
        self.frames = self.frames.saturating_add(other.frames);
        self.counts.merge(&other.counts);
        self.flags |= other.flags;
        self.hist.merge(&other.hist);
    }

    /// End of the span (exclusive).
    pub fn end_us(&self) -> u64 {
        self.start_us + self.width_us
    }

    /// Loss ratio (lost over received + lost).
    pub fn loss_ratio(&self) -> Option<f64> {
        self.counts.loss_ratio()
    }

    /// Smallest RTT, µs (bucket representative).
    pub fn min_us(&self, q: &Quantizer) -> Option<u32> {
        self.hist.min_code().map(|c| q.decode_saturating(c))
    }

    /// Largest RTT, µs.
    pub fn max_us(&self, q: &Quantizer) -> Option<u32> {
        self.hist.max_code().map(|c| q.decode_saturating(c))
    }

    /// Nearest-rank percentile (`pct` in 0..=100) of RTTs, µs.
    pub fn percentile_us(&self, q: &Quantizer, pct: f64) -> Option<u32> {
        self.hist
            .quantile_code(pct / 100.0)
            .map(|c| q.decode_saturating(c))
    }
}

/// Nearest-rank `q`-quantile of already sorted values (the definition summaries use).
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
    Some(sorted[(rank - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use proptest::prelude::*;

    fn qframes(q: &Quantizer, raw: &[Vec<u32>]) -> Vec<QFrame> {
        raw.iter()
            .enumerate()
            .map(|(i, rtts)| {
                let mut f = Frame::new(i as u64 * 100_000, 100_000);
                f.sent = rtts.len() as u32 + (i % 3) as u32;
                f.lost = (i % 3) as u32;
                f.rtts_us = rtts.clone();
                let mut qf = QFrame::default();
                qf.set_from(&f, q);
                qf
            })
            .collect()
    }

    #[test]
    fn nearest_rank_follows_the_documented_definition() {
        // docs/format.md: the smallest value x with at least ceil(q * n) values <= x.
        // Worked by hand for [1, 2, 3, 4]: q 0.5 needs 2 values (x = 2), 0.75 needs 3
        // (x = 3), 0.76 needs 4 (x = 4), 0 needs none (the smallest).
        let v = [1, 2, 3, 4];
        let got: Vec<_> = [0.0, 0.25, 0.5, 0.75, 0.76, 1.0]
            .iter()
            .map(|&q| nearest_rank(&v, q))
            .collect();
        assert_eq!(got, [Some(1), Some(1), Some(2), Some(3), Some(4), Some(4)]);
        assert_eq!(nearest_rank::<u32>(&[], 0.5), None);
        for n in 1..=50u32 {
            let v: Vec<u32> = (0..n).map(|i| i * 7 % 13 + i).collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            for k in 0..=100 {
                let q = f64::from(k) / 100.0;
                assert_eq!(
                    nearest_rank(&sorted, q),
                    zzping_testkit::oracle::nearest_rank_by_definition(&v, q),
                    "n {n} q {q}"
                );
            }
        }
    }

    #[test]
    fn quantiles_nearest_rank() {
        let h = Histogram::from_entries(vec![(1, 1), (2, 2), (5, 1)]).unwrap();
        assert_eq!(h.quantile_code(0.0), Some(1));
        assert_eq!(h.quantile_code(0.25), Some(1));
        assert_eq!(h.quantile_code(0.5), Some(2));
        assert_eq!(h.quantile_code(0.75), Some(2));
        assert_eq!(h.quantile_code(0.76), Some(5));
        assert_eq!(h.quantile_code(1.0), Some(5));
        let mut out = [None; 3];
        h.quantile_codes(&[0.0, 0.5, 1.0], &mut out);
        assert_eq!(out, [Some(1), Some(2), Some(5)]);
        assert_eq!(Histogram::new().quantile_code(0.5), None);
        assert!(Histogram::from_entries(vec![(2, 1), (1, 1)]).is_none());
        assert!(Histogram::from_entries(vec![(2, 0)]).is_none());
    }

    proptest! {
        #[test]
        fn merge_of_summaries_equals_summary_of_raw(
            raw in prop::collection::vec(prop::collection::vec(0u32..2_000_000, 0..30), 1..40),
            split in 0usize..40,
            pct in 0.0f64..=100.0,
        ) {
            let q = Quantizer::default();
            let frames = qframes(&q, &raw);
            let split = split.min(frames.len());
            let mut whole = Summary::new(0, 0);
            frames.iter().for_each(|f| whole.add_frame(f));
            let mut a = Summary::new(0, 0);
            let mut b = Summary::new(0, 0);
            frames[..split].iter().for_each(|f| a.add_frame(f));
            frames[split..].iter().for_each(|f| b.add_frame(f));
            let mut merged = Summary::new(0, 0);
            merged.merge(&a);
            merged.merge(&b);
            prop_assert_eq!(&merged.hist, &whole.hist);
            prop_assert_eq!(merged.counts, whole.counts);
            prop_assert_eq!(merged.frames, whole.frames);

            // Percentiles agree with the raw RTTs within the quantizer's precision.
            let mut all: Vec<u32> = raw.iter().flatten().copied().collect();
            all.sort_unstable();
            // The reference: the documented definition, computed literally (not this
            // module's `nearest_rank` or the histogram's rank arithmetic).
            let exact = zzping_testkit::oracle::nearest_rank_by_definition(&all, pct / 100.0);
            let got = merged.percentile_us(&q, pct);
            match (exact, got) {
                (None, None) => {}
                (Some(e), Some(g)) => {
                    prop_assert!((f64::from(g) - f64::from(e)).abs() <= 0.005 * f64::from(e) * (1.0 + 1e-12),
                        "pct {} exact {} got {}", pct, e, g);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn dense_accumulation_equals_the_sparse_merge(
            parts in prop::collection::vec(
                prop::collection::vec((0u32..3_000, 1u32..50), 0..40), 0..12),
            codes in prop::collection::vec((0u32..3_000, 1u64..5), 0..20),
            qs in prop::collection::vec(0.0f64..=1.0, 1..9),
        ) {
            let mut qs = qs;
            qs.sort_by(f64::total_cmp);
            qs.push(1.0);
            let mut sparse = Histogram::new();
            let mut dense = DenseHistogram::with_codes(16);
            for p in &parts {
                let mut e = p.clone();
                e.sort_unstable();
                e.dedup_by_key(|x| x.0);
                let h = Histogram::from_entries(e).unwrap();
                sparse.merge(&h);
                dense.add_histogram(&h);
            }
            for &(c, n) in &codes {
                let h = Histogram::from_entries(vec![(c, n as u32)]).unwrap();
                sparse.merge(&h);
                dense.add(c, n);
            }
            prop_assert_eq!(dense.total(), sparse.total());
            let mut want = vec![None; qs.len()];
            let mut got = vec![None; qs.len()];
            sparse.quantile_codes(&qs, &mut want);
            dense.quantile_codes(&qs, &mut got);
            prop_assert_eq!(&got, &want);
            // Taken, it is the sparse histogram, and the accumulator is empty again.
            prop_assert_eq!(dense.take(), sparse.clone());
            prop_assert!(dense.is_empty());
            dense.quantile_codes(&qs, &mut got);
            prop_assert!(got.iter().all(Option::is_none));
            // Cleared after reuse, too.
            dense.add(7, 1);
            dense.clear();
            prop_assert_eq!(dense.take(), Histogram::new());
        }
    }
}
