//! Reading `fping -C N` results, with the resolution each value was printed at.

use std::collections::HashMap;

/// One RTT as fping printed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FpingRtt {
    /// The printed value, µs.
    pub us: f64,
    /// Half of the printed value's last digit, µs: the true RTT was within this of `us`
    /// (fping prints fewer decimals for larger RTTs: `0.123`, `1.23`, `12.3`, `123`).
    pub half_step_us: f64,
}

impl FpingRtt {
    /// The largest RTT that fping could have measured and printed as this value.
    pub fn max_us(&self) -> f64 {
        self.us + self.half_step_us
    }
}

/// Parses fping's `-C` summary (its stderr): address → one entry per ping, `None` for a
/// lost one (`-`). Lines that are not a summary are ignored.
pub fn parse_summary(stderr: &str) -> HashMap<String, Vec<Option<FpingRtt>>> {
    let mut m = HashMap::new();
    for line in stderr.lines() {
        let Some((addr, rest)) = line.split_once(" : ") else {
            continue;
        };
        let vals: Option<Vec<Option<FpingRtt>>> = rest
            .split_whitespace()
            .map(|t| {
                if t == "-" {
                    Some(None)
                } else {
                    parse_ms(t).map(Some)
                }
            })
            .collect();
        if let Some(v) = vals
            && !v.is_empty()
        {
            m.insert(addr.trim().to_string(), v);
        }
    }
    m
}

fn parse_ms(t: &str) -> Option<FpingRtt> {
    let ms: f64 = t.parse().ok()?;
    let decimals = t.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    Some(FpingRtt {
        us: ms * 1e3,
        half_step_us: 0.5 * 10f64.powi(3 - decimals),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_with_their_resolution() {
        let m = parse_summary(
            "198.18.0.10 : 0.123 1.23 - 12.3 123\n\
             junk line\n\
             2001:db8::10 : - -\n",
        );
        let v = &m["198.18.0.10"];
        let got: Vec<Option<(f64, f64)>> = v
            .iter()
            .map(|r| r.map(|r| ((r.us * 1e3).round() / 1e3, r.half_step_us)))
            .collect();
        assert_eq!(
            got,
            [
                Some((123.0, 0.5)),
                Some((1230.0, 5.0)),
                None,
                Some((12300.0, 50.0)),
                Some((123000.0, 500.0)),
            ]
        );
        assert_eq!(m["2001:db8::10"], [None, None]);
        assert_eq!(m.len(), 2);
    }
}
