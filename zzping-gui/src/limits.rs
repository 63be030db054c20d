//! Hosts that limit ICMP: routers commonly ration the echo replies they send themselves,
//! which shows as steady partial loss on that host while the hosts beyond it answer.
//! The viewer judges it as `zzping report` does ([`zzping_lib::outage::analyse`] over
//! every host together): per UTC day of the files (what `zzping report --from DAY --to
//! DAY+1` reads), and over the data received in live mode. Such a host's lane gets a
//! "limits ICMP" tag; its loss is still drawn, but its runs of failed frames are not
//! marked as outages unless other hosts failed with it (an event the report keeps).

use std::collections::BTreeMap;
use zzping_lib::outage::{HostOutages, HostRuns, analyse};
use zzping_lib::store::{DayFile, Event, HostFrames};

/// The tag a lane's header shows while its host limits ICMP in the view.
pub const LIMITS_ICMP_TAG: &str = "limits ICMP";

/// A span over which a host was judged to limit ICMP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IcmpLimit {
    /// Start of the span judged, µs (a UTC day of files; live, the data received).
    pub from_us: u64,
    /// End of the span judged, µs.
    pub to_us: u64,
    /// Its failures that stay outages: its parts `[start, end)` in events of several
    /// hosts, µs.
    pub kept: Vec<(u64, u64)>,
}

impl IcmpLimit {
    /// True when the outage run `[a, b)` is the host's own rationed loss: it starts in
    /// the span judged and is in no event of several hosts.
    pub fn hides(&self, (a, b): (u64, u64)) -> bool {
        (self.from_us..self.to_us).contains(&a) && !self.kept.iter().any(|&(s, e)| s < b && a < e)
    }

    /// True when the span judged overlaps `[from_us, to_us)`.
    pub fn overlaps(&self, from_us: u64, to_us: u64) -> bool {
        self.from_us < to_us && from_us < self.to_us
    }
}

/// Judges `hosts` (one host each, the same span `[from_us, to_us)`) together: per host,
/// its limit when it limits ICMP.
pub fn judge(hosts: &[HostOutages], from_us: u64, to_us: u64) -> Vec<Option<IcmpLimit>> {
    let a = analyse(hosts);
    (0..hosts.len())
        .map(|h| {
            a.limits_icmp.contains(&h).then(|| IcmpLimit {
                from_us,
                to_us,
                kept: a
                    .events
                    .iter()
                    .flat_map(|ev| ev.hosts.iter())
                    .filter(|e| e.host == h)
                    .map(|e| (e.start_us, e.end_us))
                    .collect(),
            })
        })
        .collect()
}

/// What [`judge_day`] found for one day of files.
#[derive(Debug, Clone, Default)]
pub struct DayLimits {
    /// Per lane (in the order given): its limit that day, if it limits ICMP.
    pub lanes: Vec<Option<IcmpLimit>>,
    /// Files that could not be read (entirely); the others were judged.
    pub issues: Vec<String>,
}

/// The days of the lanes' files: per UTC day (`None`: files not named after a day), the
/// files of each lane, newest day first.
pub fn days(lanes: &[Vec<DayFile>]) -> Vec<(Option<u64>, Vec<Vec<DayFile>>)> {
    let mut by_day: BTreeMap<Option<u64>, Vec<Vec<DayFile>>> = BTreeMap::new();
    for (i, files) in lanes.iter().enumerate() {
        for f in files {
            by_day
                .entry(f.day_start_us)
                .or_insert_with(|| vec![Vec::new(); lanes.len()])[i]
                .push(f.clone());
        }
    }
    by_day.into_iter().rev().collect()
}

/// Reads one day's files of every lane (`files[lane]`) and judges them together.
pub fn judge_day(day_start_us: Option<u64>, files: &[Vec<DayFile>]) -> DayLimits {
    let mut issues = Vec::new();
    let mut hosts = Vec::with_capacity(files.len());
    let (mut lo, mut hi) = (u64::MAX, 0);
    for lane in files {
        let mut runs = HostRuns::new();
        let mut hf = HostFrames::new(lane.iter().cloned(), 0, u64::MAX);
        loop {
            match hf.next_event() {
                Ok(Some(Event::Frame { frame, quantizer })) => {
                    lo = lo.min(frame.start_us);
                    hi = hi.max(frame.end_us());
                    // With the frame's RTTs, as `zzping report` reads them: a far host's
                    // run starts as uncertain as its replies are slow.
                    runs.add_timed(frame, quantizer);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                // The next call goes on with the next file.
                Err(e) => issues.push(e.to_string()),
            }
        }
        hosts.push(runs.finish());
    }
    let (from, to) = match day_start_us {
        Some(d) => (d, d + zzping_lib::time::US_PER_DAY),
        None => (lo, hi.max(lo)),
    };
    DayLimits {
        lanes: judge(&hosts, from, to),
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_hides_its_lone_runs_in_its_span_only() {
        let l = IcmpLimit {
            from_us: 100,
            to_us: 200,
            kept: vec![(150, 160)],
        };
        assert!(l.hides((110, 120)));
        // In an event of several hosts: kept.
        assert!(!l.hides((155, 158)));
        assert!(!l.hides((140, 151)));
        // Outside the span judged.
        assert!(!l.hides((90, 120)));
        assert!(!l.hides((200, 210)));
        assert!(l.overlaps(199, 300) && !l.overlaps(200, 300));
    }
}
