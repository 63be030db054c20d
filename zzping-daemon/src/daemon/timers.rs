//! The loop's chores on a small timer set: one deadline per chore, no allocation.
//!
//! Per-ping work has deadlines of its own (the engine's sends, expiries and rotations,
//! the live server's and the exporter's): the loop asks those parts. Everything else the
//! loop does at a time of its own is a [`Chore`] here; the loop sleeps no later than the
//! earliest armed one ([`Timers::next`]) and, on every wakeup, runs each one that is due
//! ([`Timers::take_due`]), which re-arms itself if it repeats.

/// Something the loop does at a time of its own, not per ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chore {
    /// Write the files' buffered frames (`flush_interval_s`).
    Flush,
    /// Print the status table (`--status`, every second).
    Status,
    /// Resolve host names again (`resolve_interval_s`).
    Resolve,
    /// Retry targets whose name did not resolve yet (armed only while there are some).
    RetryUnresolved,
    /// Start the targets waiting for the retiring host of their label (armed only while
    /// there are some).
    StartWaiting,
    /// Log the running totals.
    Stats,
    /// Apply `retention_days`.
    Retention,
    /// Tell systemd's watchdog we are alive (armed only when it watches us).
    Watchdog,
    /// The end of `--duration`: start stopping.
    End,
    /// Stopping: stop waiting for replies still in flight.
    GiveUpWaiting,
    /// The end of serving `/metrics` after pinging stopped.
    LingerEnd,
    /// Start a wanted discovery of the ISP's edge, or pass over a probe that timed out.
    Discover,
}

impl Chore {
    const ALL: [Chore; 12] = [
        Chore::Flush,
        Chore::Status,
        Chore::Resolve,
        Chore::RetryUnresolved,
        Chore::StartWaiting,
        Chore::Stats,
        Chore::Retention,
        Chore::Watchdog,
        Chore::End,
        Chore::GiveUpWaiting,
        Chore::LingerEnd,
        Chore::Discover,
    ];
}

/// One deadline (monotonic ns) per [`Chore`], or none when disarmed.
#[derive(Debug, Default)]
pub(super) struct Timers {
    at: [Option<u64>; Chore::ALL.len()],
}

impl Timers {
    /// Arms `chore` for monotonic time `at_ns` (replacing any earlier arming).
    pub(super) fn arm(&mut self, chore: Chore, at_ns: u64) {
        self.at[chore as usize] = Some(at_ns);
    }

    /// Disarms `chore`.
    pub(super) fn disarm(&mut self, chore: Chore) {
        self.at[chore as usize] = None;
    }

    /// Disarms every chore.
    pub(super) fn disarm_all(&mut self) {
        self.at = Default::default();
    }

    /// Whether `chore` is armed.
    pub(super) fn is_armed(&self, chore: Chore) -> bool {
        self.at[chore as usize].is_some()
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<u64> {
        self.at.iter().flatten().copied().min()
    }

    /// The due chore with the earliest deadline (at or before `now_ns`), disarmed.
    pub(super) fn take_due(&mut self, now_ns: u64) -> Option<Chore> {
        let (i, _) = self
            .at
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.filter(|&t| t <= now_ns).map(|t| (i, t)))
            .min_by_key(|&(_, t)| t)?;
        self.at[i] = None;
        Some(Chore::ALL[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_chores_come_out_earliest_first_once_each() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        assert_eq!(t.take_due(u64::MAX), None);
        t.arm(Chore::Stats, 30);
        t.arm(Chore::Flush, 20);
        t.arm(Chore::End, 10);
        t.arm(Chore::Retention, 100);
        assert_eq!(t.next(), Some(10));
        assert_eq!(t.take_due(9), None);
        assert_eq!(t.take_due(25), Some(Chore::End));
        assert_eq!(t.take_due(25), Some(Chore::Flush));
        assert_eq!(t.take_due(25), None);
        assert_eq!(t.next(), Some(30));
        // Re-arming replaces the deadline; disarming removes it.
        t.arm(Chore::Stats, 50);
        assert_eq!(t.take_due(40), None);
        t.disarm(Chore::Stats);
        assert!(!t.is_armed(Chore::Stats) && t.is_armed(Chore::Retention));
        assert_eq!(t.next(), Some(100));
        t.disarm_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn every_chore_has_its_own_slot() {
        let mut t = Timers::default();
        for (i, c) in Chore::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            t.arm(*c, i as u64);
        }
        for c in Chore::ALL {
            assert_eq!(t.take_due(u64::MAX), Some(c));
        }
    }
}
