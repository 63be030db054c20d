//! Reference computations written from the documentation's definitions, independently
//! of the code under test (so a test that uses them does not share that code's bugs).

/// The `q`-quantile of `values` (any order) by the nearest-rank definition of
/// docs/format.md, computed literally: "the smallest value x with at least
/// `ceil(q * n)` values `<= x`". `None` when empty. Counts rather than indexes, so it
/// does not share the index arithmetic of `zzping_lib::summary::nearest_rank` or of the
/// histograms; O(n log n).
pub fn nearest_rank_by_definition(values: &[u32], q: f64) -> Option<u32> {
    let n = values.len();
    let need = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    let mut distinct: Vec<u32> = values.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    // For each candidate x, ascending: how many values are <= x.
    distinct.into_iter().find(|&x| {
        let at_most_x = values.iter().filter(|&&v| v <= x).count();
        at_most_x >= need
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        // n = 4: ceil(0.5 * 4) = 2 values <= x: x = 2; ceil(0.75 * 4) = 3: x = 3;
        // ceil(0.76 * 4) = 4: x = 4; q = 0 needs none: the smallest value.
        let v = [4, 1, 3, 2];
        assert_eq!(nearest_rank_by_definition(&v, 0.0), Some(1));
        assert_eq!(nearest_rank_by_definition(&v, 0.25), Some(1));
        assert_eq!(nearest_rank_by_definition(&v, 0.5), Some(2));
        assert_eq!(nearest_rank_by_definition(&v, 0.75), Some(3));
        assert_eq!(nearest_rank_by_definition(&v, 0.76), Some(4));
        assert_eq!(nearest_rank_by_definition(&v, 1.0), Some(4));
        // Ties: [5, 5, 9]: the median needs 2 values <= x: 5.
        assert_eq!(nearest_rank_by_definition(&[9, 5, 5], 0.5), Some(5));
        assert_eq!(nearest_rank_by_definition(&[], 0.5), None);
    }
}
