//! Alert rules, evaluated frame by frame: the daemon's `[[alert]]` rules and the viewer's
//! desktop notifications share this evaluator.
//!
//! An [`Evaluator`] holds [`Rule`]s and the hosts they watch. Each final frame of a host is
//! handed to [`Evaluator::on_frame`] (frames of one host in time order); it updates the
//! rules that watch that host and pushes an [`AlertEvent`] when a rule starts or stops
//! holding. Time is the frames' own: nothing here reads a clock.
//!
//! # Rules
//! - **outage** ([`When::Outage`]): every request of the host failed (lost or errored, no
//!   reply) for at least `for` µs: a *streak* starts with the first frame that failed
//!   entirely after a frame with a reply, and its length is measured to the end of the
//!   latest frame. A frame with a reply ends it; a frame without any outcome (the daemon
//!   skips periods in which nothing happened) neither ends nor extends it, unless no frame
//!   came for more than [`crate::outage::MAX_SKIPPED_US`] (no data is not an outage).
//! - **loss** ([`When::Loss`]): over the last `window` µs, the failed requests (lost or
//!   errored, as [`crate::frame::Counts::loss_ratio`]) are more than `above_pct` % of the
//!   requests with an outcome.
//! - **p95** ([`When::P95`]): over the last `window` µs, the nearest-rank 95th percentile
//!   of the replies' RTTs is above `above_us` (more than 5 % of the replies are slower).
//!   A window without a reply has no p95: *unknown*, neither above nor clear (a firing
//!   p95 rule stays firing through a total outage, and does not fire on one: that is
//!   what outage and loss rules are for). So is a loss window without any outcome.
//!
//! A window rule holds only once its window has been observed whole (a host that just
//! appeared does not alert on its first lost request). Windows are kept in a ring of at
//! most [`MAX_SLOTS`] slots per rule and host, each covering a whole number of frame
//! periods (the window is rounded up to whole slots), allocated when the host appears.
//!
//! A rule's host is one label ([`HostMatch::Label`]), the hosts of one role
//! ([`HostMatch::Role`], e.g. `gateway`: one alert per host), every host separately
//! ([`HostMatch::Each`]: one alert per host), or every host at once ([`HostMatch::All`]:
//! the rule holds when it holds on every host that it watches; one alert).
//!
//! # Hysteresis
//! A rule fires once, when it starts to hold, and is then *firing* until it has been
//! clear for [`Rule::clear_us`] without interruption; then it resolves, once. *Clear*
//! means: for an outage, the host answers (no frame failed entirely); for loss and p95,
//! the window's value is at or below the threshold (an unknown value interrupts it). A host that comes back for a moment
//! in the middle of an outage, or a loss hovering around its threshold, therefore makes
//! one firing and one resolved event, not one per frame.
//!
//! An alert nothing will watch any more (its host removed, the watcher stopping) ends
//! with a resolved event marked [`AlertEvent::unwatched`] ([`Evaluator::unwatch_host`],
//! [`Evaluator::unwatch_all`]): whoever heard it fire hears it end, and why.
//!
//! # Values
//! [`AlertEvent::value`] is in the rule's unit ([`When::unit`]): seconds of outage,
//! percent of loss, milliseconds of p95. The p95 value is read from a histogram of
//! quarter-octave buckets whose edges fall on the threshold: it is within 9 % of the
//! window's p95, and on the right side of the threshold (only whether the rule holds is
//! decided exactly, on the counts of replies above the threshold).

use crate::codec::QFrame;
use crate::frame::{Counts, Frame};
use crate::outage::MAX_SKIPPED_US;
use crate::quantizer::Quantizer;

/// Most slots of a window rule's ring, per host: longer windows get slots of several
/// frame periods.
pub const MAX_SLOTS: usize = 120;
/// Buckets of a p95 rule's histograms (per slot and per window).
const P95_BUCKETS: usize = 48;
/// Buckets per octave of RTT in a p95 rule's histograms.
const P95_BUCKETS_PER_OCTAVE: f64 = 4.0;
/// Buckets at or below the threshold: they cover down to threshold / 16 (4 octaves).
const P95_BUCKETS_BELOW: usize = 16;
/// The percentile of a p95 rule.
const P95_QUANTILE: f64 = 0.95;
/// Microseconds per second, as a float.
const US_PER_S_F64: f64 = 1e6;

/// What a host is called by the evaluator: any number unique among the hosts added.
pub type HostKey = u64;

/// A rule's condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Every request failed for at least `for_us`.
    Outage {
        /// Shortest outage that fires, µs.
        for_us: u64,
    },
    /// Loss above `above_pct` % over the last `window_us`.
    Loss {
        /// Threshold, percent of the requests with an outcome.
        above_pct: f64,
        /// Window, µs.
        window_us: u64,
    },
    /// RTT p95 above `above_us` over the last `window_us`.
    P95 {
        /// Threshold, µs.
        above_us: u32,
        /// Window, µs.
        window_us: u64,
    },
}

impl When {
    /// The rule kind's name in configuration files: `outage`, `loss`, `p95`.
    pub fn kind(&self) -> &'static str {
        match self {
            When::Outage { .. } => "outage",
            When::Loss { .. } => "loss",
            When::P95 { .. } => "p95",
        }
    }

    /// The unit of values and thresholds: `s`, `%`, `ms`.
    pub fn unit(&self) -> &'static str {
        match self {
            When::Outage { .. } => "s",
            When::Loss { .. } => "%",
            When::P95 { .. } => "ms",
        }
    }

    /// The threshold, in [`When::unit`].
    pub fn threshold(&self) -> f64 {
        match *self {
            When::Outage { for_us } => for_us as f64 / US_PER_S_F64,
            When::Loss { above_pct, .. } => above_pct,
            When::P95 { above_us, .. } => f64::from(above_us) / 1e3,
        }
    }

    /// The default of [`Rule::clear_us`]: an outage's `for`, a window rule's window.
    pub fn default_clear_us(&self) -> u64 {
        match *self {
            When::Outage { for_us } => for_us,
            When::Loss { window_us, .. } | When::P95 { window_us, .. } => window_us,
        }
    }
}

/// Which hosts a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host, separately: one alert per host.
    Each,
    /// The host with this label.
    Label(String),
    /// Every host with this role (`gateway`, `isp-edge`...), separately.
    Role(String),
    /// Every host at once: the rule holds when it holds on all of them.
    All,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name (unique in a configuration).
    pub name: String,
    /// Its condition.
    pub when: When,
    /// The hosts it watches.
    pub host: HostMatch,
    /// How long the condition must be clear before a firing rule resolves, µs.
    pub clear_us: u64,
}

impl Rule {
    /// A rule with the default [`Rule::clear_us`] ([`When::default_clear_us`]).
    pub fn new(name: impl Into<String>, when: When, host: HostMatch) -> Self {
        Rule {
            name: name.into(),
            clear_us: when.default_clear_us(),
            when,
            host,
        }
    }

    fn watches(&self, label: &str, role: Option<&str>) -> bool {
        match &self.host {
            HostMatch::Each | HostMatch::All => true,
            HostMatch::Label(l) => l == label,
            HostMatch::Role(r) => role == Some(r.as_str()),
        }
    }
}

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The rule started to hold.
    Firing,
    /// The rule stopped holding (it has been clear for its `clear_us`).
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved`.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Why a firing alert ended without its condition clearing: nothing watches it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unwatched {
    /// Its host was removed (from the configuration, or by discovery).
    HostRemoved,
    /// The watcher stopped (the daemon, or the viewer's live stream).
    Stopped,
}

impl Unwatched {
    /// `host-removed` or `stopped`.
    pub fn name(self) -> &'static str {
        match self {
            Unwatched::HostRemoved => "host-removed",
            Unwatched::Stopped => "stopped",
        }
    }
}

/// A rule started or stopped holding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertEvent {
    /// The rule's index in the evaluator's rules.
    pub rule: usize,
    /// The host, or `None` for a rule on all hosts.
    pub host: Option<HostKey>,
    /// Firing or resolved.
    pub state: AlertState,
    /// The rule's value then, in [`When::unit`] (for a rule on all hosts: the least of
    /// the hosts' values).
    pub value: f64,
    /// The rule's threshold, in [`When::unit`].
    pub threshold: f64,
    /// Firing: when the condition began (the outage's first failed frame, or the first
    /// frame the window's value was above the threshold). Resolved: when it became
    /// clear. µs since the epoch.
    pub since_us: u64,
    /// The end of the frame that decided it, µs since the epoch (for an unwatched end:
    /// when it ended).
    pub at_us: u64,
    /// `Some` for a resolved event sent because nothing watches the alert any more (its
    /// condition may still hold): see [`Evaluator::unwatch_host`].
    pub unwatched: Option<Unwatched>,
}

/// The frame's facts the rules use.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_us: u64,
    end_us: u64,
    received: u32,
    failed: u32,
}

/// A rule's reading on one host after a frame.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// The rule holds (it fires now if not firing).
    holds: bool,
    /// The condition is not clear (a firing rule stays firing): above the threshold, or
    /// unknown (a window without the data to tell).
    bad: bool,
    value: f64,
    /// When the condition became not clear.
    bad_since_us: u64,
}

/// A failing streak (outage rule).
#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    start_us: Option<u64>,
    last_end_us: Option<u64>,
}

impl Streak {
    fn on(&mut self, s: &Sample, for_us: u64) -> Reading {
        if self
            .last_end_us
            .is_some_and(|e| s.start_us > e.saturating_add(MAX_SKIPPED_US))
        {
            self.start_us = None;
        }
        if s.received > 0 {
            self.start_us = None;
        } else if s.failed > 0 {
            self.start_us.get_or_insert(s.start_us);
        }
        self.last_end_us = Some(self.last_end_us.map_or(s.end_us, |e| e.max(s.end_us)));
        match self.start_us {
            Some(start) => {
                let len_us = s.end_us.saturating_sub(start);
                Reading {
                    holds: len_us >= for_us,
                    bad: true,
                    value: len_us as f64 / US_PER_S_F64,
                    bad_since_us: start,
                }
            }
            None => Reading::default(),
        }
    }
}

/// One slot of a window ring.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    received: u32,
    failed: u32,
    /// Replies above the p95 threshold.
    above: u32,
}

/// The sums of a window's slots (exact: a slot's counts are `u32`).
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    received: u64,
    failed: u64,
    above: u64,
}

/// The last window of one host for one window rule: a ring of slots with running totals.
#[derive(Debug, Clone)]
struct Ring {
    slot_us: u64,
    slots: Vec<Slot>,
    /// Per slot, [`P95_BUCKETS`] counts (p95 rules only).
    slot_hist: Vec<u32>,
    /// The window's totals.
    total: Totals,
    hist: Vec<u64>,
    /// The newest slot number (`start_us / slot_us`) and the first one ever seen.
    head: Option<u64>,
    first: u64,
    /// The p95 threshold (0 for loss rules).
    above_us: u32,
    /// When the value last went above the threshold.
    bad_since_us: Option<u64>,
}

impl Ring {
    fn new(window_us: u64, period_us: u32, p95_above_us: Option<u32>) -> Ring {
        let period_us = u64::from(period_us.max(1));
        let window_us = window_us.max(period_us);
        let min_slot_us = window_us.div_ceil(MAX_SLOTS as u64);
        let slot_us = min_slot_us.div_ceil(period_us).max(1) * period_us;
        let n = window_us.div_ceil(slot_us) as usize;
        let buckets = if p95_above_us.is_some() {
            P95_BUCKETS
        } else {
            0
        };
        Ring {
            slot_us,
            slots: vec![Slot::default(); n],
            slot_hist: vec![0; n * buckets],
            total: Totals::default(),
            hist: vec![0; buckets],
            head: None,
            first: 0,
            above_us: p95_above_us.unwrap_or(0),
            bad_since_us: None,
        }
    }

    fn n(&self) -> u64 {
        self.slots.len() as u64
    }

    fn clear_slot(&mut self, i: usize) {
        let s = std::mem::take(&mut self.slots[i]);
        self.total.received -= u64::from(s.received);
        self.total.failed -= u64::from(s.failed);
        self.total.above -= u64::from(s.above);
        let b = self.hist.len();
        for (w, c) in self
            .hist
            .iter_mut()
            .zip(&mut self.slot_hist[i * b..(i + 1) * b])
        {
            *w -= u64::from(std::mem::take(c));
        }
    }

    /// Adds a frame; returns false when it is older than the window.
    fn add(&mut self, s: &Sample, rtts_us: impl Iterator<Item = u32>) -> bool {
        let k = s.start_us / self.slot_us;
        let n = self.n();
        match self.head {
            None => {
                self.head = Some(k);
                self.first = k;
            }
            Some(h) if k > h => {
                for j in (h + 1)..=(h + (k - h).min(n)) {
                    self.clear_slot((j % n) as usize);
                }
                self.head = Some(k);
            }
            Some(h) if k + n <= h => return false,
            Some(_) => {}
        }
        let i = (k % n) as usize;
        // A slot saturates (frames from the network may claim anything); the totals are
        // the sums of the slots as stored, so evicting a slot subtracts exactly.
        let slot = &mut self.slots[i];
        let (r0, f0) = (slot.received, slot.failed);
        slot.received = slot.received.saturating_add(s.received);
        slot.failed = slot.failed.saturating_add(s.failed);
        self.total.received += u64::from(slot.received - r0);
        self.total.failed += u64::from(slot.failed - f0);
        if !self.hist.is_empty() {
            let t = f64::from(self.above_us.max(1));
            let b = self.hist.len();
            let mut above = 0u32;
            for r in rtts_us {
                above = above.saturating_add(u32::from(r > self.above_us));
                let x = (f64::from(r) / t).log2() * P95_BUCKETS_PER_OCTAVE;
                let idx = (x.ceil() + P95_BUCKETS_BELOW as f64 - 1.0).clamp(0.0, (b - 1) as f64);
                let idx = idx as usize;
                // A reply exactly at the threshold is not above it.
                let idx = if r > self.above_us {
                    idx.max(P95_BUCKETS_BELOW)
                } else {
                    idx.min(P95_BUCKETS_BELOW - 1)
                };
                let c = &mut self.slot_hist[i * b + idx];
                if *c < u32::MAX {
                    *c += 1;
                    self.hist[idx] += 1;
                }
            }
            let a0 = self.slots[i].above;
            self.slots[i].above = a0.saturating_add(above);
            self.total.above += u64::from(self.slots[i].above - a0);
        }
        true
    }

    /// The window has been observed whole.
    fn full(&self) -> bool {
        self.head.is_some_and(|h| h - self.first + 1 >= self.n())
    }

    /// The p95 of the window, ms, from the histogram (see the module docs).
    fn p95_ms(&self) -> f64 {
        let n = self.hist.iter().sum::<u64>();
        if n == 0 {
            return 0.0;
        }
        let rank = ((P95_QUANTILE * n as f64).ceil() as u64).clamp(1, n.max(1));
        let mut seen = 0u64;
        let mut idx = self.hist.len() - 1;
        for (i, &c) in self.hist.iter().enumerate() {
            seen += c;
            if seen >= rank {
                idx = i;
                break;
            }
        }
        let t_ms = f64::from(self.above_us) / 1e3;
        let hi = (idx as f64 + 1.0 - P95_BUCKETS_BELOW as f64) / P95_BUCKETS_PER_OCTAVE;
        if idx == self.hist.len() - 1 {
            // The last bucket is open: its lower edge.
            t_ms * (hi - 1.0 / P95_BUCKETS_PER_OCTAVE).exp2()
        } else {
            t_ms * (hi - 0.5 / P95_BUCKETS_PER_OCTAVE).exp2()
        }
    }

    fn on(&mut self, s: &Sample, when: &When, rtts_us: impl Iterator<Item = u32>) -> Reading {
        self.add(s, rtts_us);
        let t = self.total;
        let outcomes = t.received + t.failed;
        // `None`: the window cannot tell (no outcome; for p95, no reply).
        let (above, value) = match *when {
            When::Loss { above_pct, .. } => {
                let pct = if outcomes > 0 {
                    100.0 * t.failed as f64 / outcomes as f64
                } else {
                    0.0
                };
                ((outcomes > 0).then_some(pct > above_pct), pct)
            }
            When::P95 { .. } => {
                let n = t.received;
                // p95 > T exactly when fewer than ceil(0.95 n) replies are at or below T.
                let at_or_below = n.saturating_sub(t.above);
                let rank = (P95_QUANTILE * n as f64).ceil() as u64;
                (
                    (n > 0).then_some(at_or_below < rank),
                    if n > 0 { self.p95_ms() } else { 0.0 },
                )
            }
            When::Outage { .. } => unreachable!("an outage rule has no ring"),
        };
        match above {
            Some(false) => self.bad_since_us = None,
            Some(true) if self.bad_since_us.is_none() => self.bad_since_us = Some(s.start_us),
            _ => {}
        }
        Reading {
            holds: above == Some(true) && self.full(),
            // Unknown is not clear: a firing rule holds its state.
            bad: above != Some(false),
            value,
            bad_since_us: self.bad_since_us.unwrap_or(s.start_us),
        }
    }
}

#[derive(Debug, Clone)]
enum Condition {
    Outage(Streak),
    Window(Box<Ring>),
}

/// Firing state of one alert (a rule on one host, or on all hosts).
#[derive(Debug, Clone, Copy, Default)]
struct Episode {
    firing: bool,
    /// Since when the condition has been clear while firing.
    clear_since_us: Option<u64>,
}

impl Episode {
    /// The transition a reading makes, as `(state, since_us)`.
    fn step(&mut self, r: &Reading, s: &Sample, clear_us: u64) -> Option<(AlertState, u64)> {
        if !self.firing {
            if r.holds {
                self.firing = true;
                self.clear_since_us = None;
                return Some((AlertState::Firing, r.bad_since_us));
            }
            return None;
        }
        if r.bad {
            self.clear_since_us = None;
            return None;
        }
        let since = *self.clear_since_us.get_or_insert(s.start_us);
        if s.end_us.saturating_sub(since) >= clear_us {
            *self = Episode::default();
            return Some((AlertState::Resolved, since));
        }
        None
    }
}

/// One rule watching one host.
#[derive(Debug, Clone)]
struct Watch {
    rule: usize,
    cond: Condition,
    last: Reading,
    /// This host's alert (unused for a rule on all hosts).
    episode: Episode,
}

#[derive(Debug, Clone)]
struct Host {
    key: HostKey,
    label: String,
    role: Option<String>,
    period_us: u32,
    watches: Vec<Watch>,
}

/// Evaluates [`Rule`]s on the frames of hosts (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    hosts: Vec<Host>,
    /// Per rule, the alert of a rule on all hosts.
    all: Vec<Episode>,
}

impl Evaluator {
    /// An evaluator of `rules`, watching no host yet.
    pub fn new(rules: Vec<Rule>) -> Evaluator {
        Evaluator {
            all: vec![Episode::default(); rules.len()],
            rules,
            hosts: Vec::new(),
        }
    }

    /// The rules, by index ([`AlertEvent::rule`]).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The label of a host added and not removed.
    pub fn label(&self, host: HostKey) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.key == host)
            .map(|h| h.label.as_str())
    }

    /// True when some rule is firing.
    pub fn any_firing(&self) -> bool {
        self.all.iter().any(|e| e.firing)
            || self
                .hosts
                .iter()
                .any(|h| h.watches.iter().any(|w| w.episode.firing))
    }

    fn watch(rule: usize, r: &Rule, period_us: u32) -> Watch {
        let cond = match r.when {
            When::Outage { .. } => Condition::Outage(Streak::default()),
            When::Loss { window_us, .. } => {
                Condition::Window(Box::new(Ring::new(window_us, period_us, None)))
            }
            When::P95 {
                above_us,
                window_us,
            } => Condition::Window(Box::new(Ring::new(window_us, period_us, Some(above_us)))),
        };
        Watch {
            rule,
            cond,
            last: Reading::default(),
            episode: Episode::default(),
        }
    }

    /// Starts watching a host (again, if `key` was added: its state starts over) whose
    /// frames last `period_us`. Allocates its rings.
    pub fn add_host(&mut self, key: HostKey, label: &str, period_us: u32) {
        self.add_host_with_role(key, label, None, period_us);
    }

    /// [`Evaluator::add_host`] for a host with a role (`gateway`, `isp-edge`...), which
    /// [`HostMatch::Role`] rules match.
    pub fn add_host_with_role(
        &mut self,
        key: HostKey,
        label: &str,
        role: Option<&str>,
        period_us: u32,
    ) {
        self.hosts.retain(|h| h.key != key);
        let watches = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.watches(label, role))
            .map(|(i, r)| Self::watch(i, r, period_us))
            .collect();
        self.hosts.push(Host {
            key,
            label: label.to_owned(),
            role: role.map(str::to_owned),
            period_us,
            watches,
        });
    }

    /// Stops watching a host; its alerts end without a resolved event (see
    /// [`Evaluator::unwatch_host`] for one).
    pub fn remove_host(&mut self, key: HostKey) {
        self.hosts.retain(|h| h.key != key);
    }

    /// Ends the host's firing alerts, at `at_us`, because nothing will watch them any
    /// more (`why`): pushes a resolved event for each, marked [`AlertEvent::unwatched`],
    /// so whoever heard the firing hears the end. The host stays (its label still
    /// describes the events) until [`Evaluator::remove_host`]. A rule on all hosts is
    /// left to the hosts that remain.
    pub fn unwatch_host(
        &mut self,
        key: HostKey,
        why: Unwatched,
        at_us: u64,
        out: &mut Vec<AlertEvent>,
    ) {
        let rules = &self.rules;
        for h in self.hosts.iter_mut().filter(|h| h.key == key) {
            for w in &mut h.watches {
                if rules[w.rule].host == HostMatch::All || !w.episode.firing {
                    continue;
                }
                w.episode = Episode::default();
                out.push(AlertEvent {
                    rule: w.rule,
                    host: Some(key),
                    state: AlertState::Resolved,
                    value: w.last.value,
                    threshold: rules[w.rule].when.threshold(),
                    since_us: at_us,
                    at_us,
                    unwatched: Some(why),
                });
            }
        }
    }

    /// Ends every firing alert (see [`Evaluator::unwatch_host`]), those of rules on all
    /// hosts included: the watcher stops.
    pub fn unwatch_all(&mut self, why: Unwatched, at_us: u64, out: &mut Vec<AlertEvent>) {
        let keys: Vec<HostKey> = self.hosts.iter().map(|h| h.key).collect();
        for k in keys {
            self.unwatch_host(k, why, at_us, out);
        }
        for (ri, episode) in self.all.iter_mut().enumerate() {
            if !episode.firing {
                continue;
            }
            *episode = Episode::default();
            let rule = &self.rules[ri];
            let value = self
                .hosts
                .iter()
                .flat_map(|h| h.watches.iter().filter(|w| w.rule == ri))
                .map(|w| w.last.value)
                .fold(f64::INFINITY, f64::min);
            out.push(AlertEvent {
                rule: ri,
                host: None,
                state: AlertState::Resolved,
                value: if value.is_finite() { value } else { 0.0 },
                threshold: rule.when.threshold(),
                since_us: at_us,
                at_us,
                unwatched: Some(why),
            });
        }
    }

    /// Replaces the rules. A new rule equal to an old one keeps its state (a firing alert
    /// stays firing and does not fire again); the others start over.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        let old = std::mem::take(&mut self.rules);
        let old_all = std::mem::take(&mut self.all);
        let same = |r: &Rule| old.iter().position(|o| o == r);
        self.all = rules
            .iter()
            .map(|r| same(r).map_or_else(Episode::default, |j| old_all[j]))
            .collect();
        for h in &mut self.hosts {
            let mut kept = std::mem::take(&mut h.watches);
            h.watches = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.watches(&h.label, h.role.as_deref()))
                .map(|(i, r)| {
                    let reuse = same(r).and_then(|j| kept.iter().position(|w| w.rule == j));
                    match reuse {
                        Some(p) => Watch {
                            rule: i,
                            ..kept.swap_remove(p)
                        },
                        None => Self::watch(i, r, h.period_us),
                    }
                })
                .collect();
        }
        self.rules = rules;
    }

    /// A final frame of `host` (in time order per host), its RTTs in µs: pushes the alerts
    /// that start or end onto `out`. Allocates nothing (but `out`'s growth).
    pub fn on_frame(&mut self, host: HostKey, frame: &Frame, out: &mut Vec<AlertEvent>) {
        let c = frame.counts();
        self.on_counts(
            host,
            frame.start_us,
            frame.period_us,
            &c,
            frame.rtts_us.iter().copied(),
            out,
        );
    }

    /// [`Evaluator::on_frame`] for a quantized frame (RTTs decoded by `quantizer`).
    pub fn on_qframe(
        &mut self,
        host: HostKey,
        frame: &QFrame,
        quantizer: &Quantizer,
        out: &mut Vec<AlertEvent>,
    ) {
        let c = Counts {
            sent: frame.sent,
            received: frame.received(),
            lost: frame.lost,
            duplicates: frame.duplicates,
            late: frame.late,
            errors: frame.errors,
        };
        let rtts = frame.codes.iter().map(|&k| quantizer.decode_saturating(k));
        self.on_counts(host, frame.start_us, frame.period_us, &c, rtts, out);
    }

    /// [`Evaluator::on_frame`] from a frame's start, period, counts and RTTs (µs).
    pub fn on_counts(
        &mut self,
        host: HostKey,
        start_us: u64,
        period_us: u32,
        counts: &Counts,
        rtts_us: impl Iterator<Item = u32> + Clone,
        out: &mut Vec<AlertEvent>,
    ) {
        let Some(hi) = self.hosts.iter().position(|h| h.key == host) else {
            return;
        };
        let s = Sample {
            start_us,
            end_us: start_us + u64::from(period_us),
            received: counts.received,
            failed: u32::try_from(counts.failed()).unwrap_or(u32::MAX),
        };
        for wi in 0..self.hosts[hi].watches.len() {
            let w = &mut self.hosts[hi].watches[wi];
            let rule = &self.rules[w.rule];
            w.last = match (&mut w.cond, &rule.when) {
                (Condition::Outage(st), When::Outage { for_us }) => st.on(&s, *for_us),
                (Condition::Window(ring), when) => ring.on(&s, when, rtts_us.clone()),
                (Condition::Outage(_), _) => unreachable!("watches follow their rule's kind"),
            };
            let threshold = rule.when.threshold();
            if rule.host == HostMatch::All {
                let ri = w.rule;
                self.step_all(ri, &s, out);
                continue;
            }
            let w = &mut self.hosts[hi].watches[wi];
            if let Some((state, since_us)) = w.episode.step(&w.last, &s, rule.clear_us) {
                out.push(AlertEvent {
                    rule: w.rule,
                    host: Some(host),
                    state,
                    value: w.last.value,
                    threshold,
                    since_us,
                    at_us: s.end_us,
                    unwatched: None,
                });
            }
        }
    }

    /// Re-evaluates rule `ri` on all hosts after one of them changed.
    fn step_all(&mut self, ri: usize, s: &Sample, out: &mut Vec<AlertEvent>) {
        let mut agg = Reading {
            holds: true,
            bad: true,
            value: f64::INFINITY,
            bad_since_us: 0,
        };
        let mut n = 0usize;
        for w in self
            .hosts
            .iter()
            .flat_map(|h| h.watches.iter().filter(|w| w.rule == ri))
        {
            n += 1;
            agg.holds &= w.last.holds;
            agg.bad &= w.last.bad;
            agg.value = agg.value.min(w.last.value);
            agg.bad_since_us = agg.bad_since_us.max(w.last.bad_since_us);
        }
        if n == 0 {
            return;
        }
        let rule = &self.rules[ri];
        if let Some((state, since_us)) = self.all[ri].step(&agg, s, rule.clear_us) {
            out.push(AlertEvent {
                rule: ri,
                host: None,
                state,
                value: agg.value,
                threshold: rule.when.threshold(),
                since_us,
                at_us: s.end_us,
                unwatched: None,
            });
        }
    }

    /// One sentence saying what `e` means, e.g. "zzping alert wan-down: gw has failed
    /// every request for 12.3 s (threshold 10 s)".
    pub fn describe(&self, e: &AlertEvent) -> String {
        let Some(rule) = self.rules.get(e.rule) else {
            return String::new();
        };
        let who = match e.host {
            Some(k) => self.label(k).unwrap_or("a removed host").to_owned(),
            None => "all hosts".to_owned(),
        };
        let th = fmt_num(e.threshold);
        let v = fmt_num(e.value);
        if let Some(why) = e.unwatched {
            let why = match why {
                Unwatched::HostRemoved => "the host was removed",
                Unwatched::Stopped => "zzping stopped watching",
            };
            return format!(
                "alert {} {}: {who}: no longer watched ({why}); its condition may still hold",
                rule.name,
                e.state.name()
            );
        }
        let what = match (rule.when, e.state) {
            (When::Outage { .. }, AlertState::Firing) => {
                format!("{who}: every request failed for {v} s (rule: {th} s)")
            }
            (When::Outage { .. }, AlertState::Resolved) => format!("{who}: answering again"),
            (When::Loss { window_us, .. }, st) => format!(
                "{who}: loss {v} % over the last {} s ({} {th} %)",
                fmt_num(window_us as f64 / US_PER_S_F64),
                if st == AlertState::Firing {
                    "above"
                } else {
                    "back to at most"
                }
            ),
            (When::P95 { window_us, .. }, st) => format!(
                "{who}: RTT p95 about {v} ms over the last {} s ({} {th} ms)",
                fmt_num(window_us as f64 / US_PER_S_F64),
                if st == AlertState::Firing {
                    "above"
                } else {
                    "back to at most"
                }
            ),
        };
        format!("alert {} {}: {what}", rule.name, e.state.name())
    }
}

/// A number for a sentence: one decimal at most from 1 up, three below (0.05 ms), no
/// trailing zeros.
fn fmt_num(x: f64) -> String {
    let decimals = if x.abs() >= 1.0 { 1 } else { 3 };
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    s.to_owned()
}

#[cfg(test)]
mod tests;
