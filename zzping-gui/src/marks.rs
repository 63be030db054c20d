//! Context-event marks on the time axis: what happened on the pinging machine (a link or
//! its carrier lost, a default route moved, an address changed, a pinged host moved to
//! another address, a suspend, a clock step, the daemon started, stopped or reloaded),
//! read from the data directory's event files ([`zzping_lib::events`]) and received from
//! live daemons ([`zzping_lib::live::LiveEvent::Context`]), merged ([`merge`]: an event
//! both opened and streamed is one mark), drawn under the lanes
//! ([`crate::canvas::EventsCanvas`]) with a hover text ("wlan0 down 3.2 s", "default
//! route via 198.18.1.254 on zzsim1", "suspended 41 min").

use iced::Color;
use std::path::PathBuf;
use zzping_lib::events::{ContextEvent, EventKind};

/// A link or carrier loss (down, carrier off).
pub const LINK_MARK: Color = Color::from_rgb(0.98, 0.55, 0.20);
/// A link or carrier back without a loss before it in the data.
pub const LINK_BACK_MARK: Color = Color::from_rgb(0.40, 0.85, 0.45);
/// A default route or address change, or a pinged host at another address.
pub const ROUTE_MARK: Color = Color::from_rgb(0.35, 0.75, 0.95);
/// A suspend.
pub const SUSPEND_MARK: Color = Color::from_rgb(0.68, 0.48, 0.98);
/// A wall-clock step.
pub const CLOCK_MARK: Color = Color::from_rgb(0.95, 0.85, 0.30);
/// The daemon's own events (start, stop, reload) and kinds this viewer does not know.
pub const DAEMON_MARK: Color = Color::from_rgb(0.65, 0.67, 0.72);
/// Height of the events strip under the lanes, px (shown when there are events).
pub const EVENTS_STRIP_H: f32 = 14.0;
/// Width of a mark's tick, px; the cursor within this many px of a mark hovers it.
pub const MARK_PX: f32 = 3.0;

/// One mark: an instant or a span of time, its colour and its hover text.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// When it began, wall clock µs.
    pub t_us: u64,
    /// When it ended, µs (`t_us` for an instant; a link down until it came back up, a
    /// suspend until the resume).
    pub end_us: u64,
    /// Its colour.
    pub color: Color,
    /// What a person reads on hover.
    pub text: String,
    /// Its text is also written across the lanes, in the gap it leaves in their data (a
    /// suspend: "suspended 41 min", so the grey of no data is not read as an outage).
    pub labels_gap: bool,
}

/// A duration in a few words: "3.2 s", "41 min", "41 min 12 s", "2 h 5 min".
pub fn short_duration(us: u64) -> String {
    let s = us as f64 / 1e6;
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let secs = us / 1_000_000;
    let (h, m, r) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, r) {
        (0, 0) => format!("{m} min"),
        (0, r) => format!("{m} min {r} s"),
        (h, _) if m == 0 => format!("{h} h"),
        (h, _) => format!("{h} h {m} min"),
    }
}

/// The marks of `events` (in time order): a link down or carrier loss is one mark up to
/// its interface's next up (or carrier back), "wlan0 down 3.2 s"; a suspend spans its
/// length; every other event is an instant.
pub fn marks(events: &[ContextEvent]) -> Vec<Mark> {
    let mut out = Vec::new();
    // Per open loss: (interface, carrier rather than link, index in `out`).
    let mut open: Vec<(String, bool, usize)> = Vec::new();
    for ev in events {
        let iface = ev.interface.clone().unwrap_or_else(|| "?".into());
        let instant = |color: Color, text: String| Mark {
            t_us: ev.t_us,
            end_us: ev.t_us,
            color,
            text,
            labels_gap: false,
        };
        match &ev.kind {
            EventKind::LinkDown | EventKind::CarrierOff => {
                let carrier = ev.kind == EventKind::CarrierOff;
                if open.iter().any(|(i, c, _)| *i == iface && *c == carrier) {
                    continue;
                }
                let what = if carrier { "carrier lost" } else { "down" };
                open.push((iface.clone(), carrier, out.len()));
                out.push(instant(
                    LINK_MARK,
                    format!("{iface} {what} (not back in the data)"),
                ));
            }
            EventKind::LinkUp | EventKind::CarrierOn => {
                let carrier = ev.kind == EventKind::CarrierOn;
                match open
                    .iter()
                    .position(|(i, c, _)| *i == iface && *c == carrier)
                {
                    Some(k) => {
                        let (_, _, idx) = open.remove(k);
                        let m = &mut out[idx];
                        m.end_us = ev.t_us.max(m.t_us);
                        let what = if carrier { "carrier lost" } else { "down" };
                        m.text = format!("{iface} {what} {}", short_duration(m.end_us - m.t_us));
                    }
                    None => {
                        let what = if carrier { "carrier back" } else { "up" };
                        out.push(instant(LINK_BACK_MARK, format!("{iface} {what}")));
                    }
                }
            }
            EventKind::RouteChange => {
                let fam = if ev.family == Some(6) { " (IPv6)" } else { "" };
                let via = ev.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                let on = ev
                    .interface
                    .as_deref()
                    .map(|i| format!(" on {i}"))
                    .unwrap_or_default();
                let removed = if ev.removed { " removed" } else { "" };
                out.push(instant(
                    ROUTE_MARK,
                    format!("default route{fam}{via}{on}{removed}"),
                ));
            }
            EventKind::AddressAdded | EventKind::AddressRemoved | EventKind::HostMoved => {
                out.push(instant(ROUTE_MARK, ev.describe()));
            }
            EventKind::Suspend => {
                let d = ev.duration_us.unwrap_or(0);
                out.push(Mark {
                    t_us: ev.t_us,
                    end_us: ev.end_us(),
                    color: SUSPEND_MARK,
                    text: format!("suspended {}", short_duration(d)),
                    labels_gap: true,
                });
            }
            // The daemon did not run: the gap it leaves is labelled, like a suspend's.
            EventKind::Stall => out.push(Mark {
                t_us: ev.t_us,
                end_us: ev.end_us(),
                color: DAEMON_MARK,
                // Short: it is written across the gap when the gap is wider.
                text: format!(
                    "zzping stalled {}",
                    short_duration(ev.duration_us.unwrap_or(0))
                ),
                labels_gap: true,
            }),
            EventKind::ClockStep => out.push(instant(CLOCK_MARK, ev.describe())),
            EventKind::DaemonStart
            | EventKind::DaemonStop
            | EventKind::Reload
            | EventKind::Other(_) => out.push(instant(DAEMON_MARK, ev.describe())),
        }
    }
    out
}

/// Most context events kept from live daemons (the oldest go first): days of a link
/// flapping every minute.
pub const MAX_LIVE_EVENTS: usize = 20_000;

/// The events of `a` and `b` in time order, each once: an event in both (the same
/// event opened from a data directory and streamed by its daemon, or streamed again
/// after a reconnection) is kept once. Events at the same time keep their order.
pub fn merge(a: &[ContextEvent], b: &[ContextEvent]) -> Vec<ContextEvent> {
    let mut all: Vec<&ContextEvent> = a.iter().chain(b).collect();
    all.sort_by_key(|e| e.t_us);
    let mut out: Vec<ContextEvent> = Vec::with_capacity(all.len());
    for e in all {
        let seen = out
            .iter()
            .rev()
            .take_while(|o| o.t_us == e.t_us)
            .any(|o| o == e);
        if !seen {
            out.push(e.clone());
        }
    }
    out
}

/// The context events of the data under `paths` (their data directories' event files,
/// [`zzping_lib::events::locate`]), in time order, and what went wrong reading them.
pub fn load(paths: &[PathBuf]) -> (Vec<ContextEvent>, Vec<String>) {
    let sources = zzping_lib::events::locate(paths);
    if sources.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let log = zzping_lib::events::read_range(&sources, 0, u64::MAX);
    let mut issues: Vec<String> = log
        .issues
        .iter()
        .map(|(p, i)| format!("{}: {i}", p.display()))
        .collect();
    issues.extend(log.errors.iter().map(|e| e.to_string()));
    (log.events, issues)
}

/// The marks whose span is within `tolerance_us` of `t_us`.
pub fn near(marks: &[Mark], t_us: f64, tolerance_us: f64) -> impl Iterator<Item = &Mark> {
    marks.iter().filter(move |m| {
        m.t_us as f64 - tolerance_us <= t_us && t_us <= m.end_us as f64 + tolerance_us
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_pair_with_their_return_and_texts_read_well() {
        let s = 1_000_000;
        let evs = [
            ContextEvent::link(10 * s, EventKind::LinkDown, "wlan0"),
            ContextEvent::link(11 * s, EventKind::CarrierOff, "eth0"),
            ContextEvent::link(10 * s + 3_200_000, EventKind::LinkUp, "wlan0"),
            ContextEvent::route(
                20 * s,
                4,
                Some("198.18.1.254".parse().unwrap()),
                Some("zzsim1"),
                false,
            ),
            ContextEvent::suspend(30 * s, 41 * 60 * s),
            ContextEvent::link(99 * s, EventKind::LinkUp, "wlan1"),
            ContextEvent::stall(120 * s, 3_000_000),
        ];
        let m = marks(&evs);
        let texts: Vec<&str> = m.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "wlan0 down 3.2 s",
                "eth0 carrier lost (not back in the data)",
                "default route via 198.18.1.254 on zzsim1",
                "suspended 41 min",
                "wlan1 up",
                "zzping stalled 3.0 s",
            ]
        );
        assert_eq!((m[0].t_us, m[0].end_us), (10 * s, 10 * s + 3_200_000));
        assert_eq!(m[3].end_us, 30 * s + 41 * 60 * s);
        // A stall spans the gap it left, and labels it.
        assert_eq!((m[5].t_us, m[5].end_us), (120 * s, 123 * s));
        assert!(m[5].labels_gap && m[3].labels_gap);
        assert_eq!(near(&m, 12e6, 0.0).count(), 1);
        assert_eq!(short_duration(2 * 3600 * s + 5 * 60 * s), "2 h 5 min");
        assert_eq!(short_duration(41 * 60 * s + 12 * s), "41 min 12 s");
    }

    #[test]
    fn merged_events_are_in_time_order_and_each_once() {
        let s = 1_000_000;
        let down = ContextEvent::link(10 * s, EventKind::LinkDown, "wlan0");
        let route = ContextEvent::route(10 * s, 4, None, Some("wlan0"), true);
        let up = ContextEvent::link(13 * s, EventKind::LinkUp, "wlan0");
        let suspend = ContextEvent::suspend(5 * s, 2 * s);
        // The files hold the link's flap; the stream repeats it (out of order: a
        // suspend's start is older than what was recorded before it) and adds more.
        let files = [down.clone(), route.clone(), up.clone()];
        let live = [
            up.clone(),
            suspend.clone(),
            down.clone(),
            route.clone(),
            up.clone(),
        ];
        let m = merge(&files, &live);
        assert_eq!(m, [suspend, down, route, up]);
        let texts: Vec<String> = marks(&m).into_iter().map(|m| m.text).collect();
        assert_eq!(
            texts,
            [
                "suspended 2.0 s",
                "wlan0 down 3.0 s",
                "default route on wlan0 removed"
            ]
        );
    }
}
