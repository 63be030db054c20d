//! The shared time axis, the Y scale and their tick marks.
//!
//! Times are µs since the Unix epoch held in `f64` (exact to well under a µs for any date
//! this program will see). Tick labels are in local time.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::sync::OnceLock;

/// Shortest visible span, µs (20 ms): below that a 100 ms frame covers the whole plot.
pub const MIN_SPAN_US: f64 = 20_000.0;
/// Longest visible span, µs (about two years).
pub const MAX_SPAN_US: f64 = 2.0 * 365.0 * 86_400e6;

/// The visible time range `[t0_us, t1_us)`, shared by every lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeView {
    /// Left edge, µs since the epoch.
    pub t0_us: f64,
    /// Right edge, µs since the epoch.
    pub t1_us: f64,
}

impl TimeView {
    /// A view of `[t0_us, t1_us)`, widened to [`MIN_SPAN_US`] if narrower.
    pub fn new(t0_us: f64, t1_us: f64) -> Self {
        let mut v = Self { t0_us, t1_us };
        v.normalize();
        v
    }

    /// Span, µs.
    pub fn span_us(&self) -> f64 {
        self.t1_us - self.t0_us
    }

    /// µs per pixel for a plot `width_px` wide.
    pub fn us_per_px(&self, width_px: f32) -> f64 {
        self.span_us() / f64::from(width_px.max(1.0))
    }

    /// The time at fraction `f` (0 = left edge, 1 = right edge).
    pub fn time_at(&self, f: f64) -> f64 {
        self.t0_us + f * self.span_us()
    }

    /// The fraction of the width where time `t_us` falls.
    pub fn frac_of(&self, t_us: f64) -> f64 {
        (t_us - self.t0_us) / self.span_us()
    }

    /// Zooms by `factor` (< 1 zooms in) keeping the time under fraction `anchor` in place.
    pub fn zoom(&mut self, anchor: f64, factor: f64) {
        if !factor.is_finite() || factor <= 0.0 || !anchor.is_finite() {
            return;
        }
        let anchor = anchor.clamp(0.0, 1.0);
        let t = self.time_at(anchor);
        let span = (self.span_us() * factor).clamp(MIN_SPAN_US, MAX_SPAN_US);
        self.t0_us = t - anchor * span;
        self.t1_us = self.t0_us + span;
        self.normalize();
    }

    /// Shifts by `frac` of the span (positive moves the view later in time).
    pub fn pan(&mut self, frac: f64) {
        if !frac.is_finite() {
            return;
        }
        let d = frac * self.span_us();
        self.t0_us += d;
        self.t1_us += d;
        self.normalize();
    }

    /// Zooms to the fractions `[a, b]` of the current view (a box zoom).
    pub fn zoom_to(&mut self, a: f64, b: f64) {
        if !a.is_finite() || !b.is_finite() {
            return;
        }
        let (a, b) = (a.min(b).clamp(0.0, 1.0), a.max(b).clamp(0.0, 1.0));
        let (t0, t1) = (self.time_at(a), self.time_at(b));
        *self = Self::new(t0, t1);
    }

    fn normalize(&mut self) {
        if !self.t0_us.is_finite() || !self.t1_us.is_finite() {
            self.t0_us = 0.0;
            self.t1_us = MIN_SPAN_US;
        }
        self.t0_us = self.t0_us.max(0.0);
        let span = (self.t1_us - self.t0_us).clamp(MIN_SPAN_US, MAX_SPAN_US);
        let mid = self.t0_us + (self.t1_us - self.t0_us) / 2.0;
        if (self.t1_us - self.t0_us) != span {
            self.t0_us = (mid - span / 2.0).max(0.0);
        }
        self.t1_us = self.t0_us + span;
    }
}

/// The viewer's time zone: the system's, as `jiff` finds it (`TZ`, else /etc/localtime;
/// UTC when neither is set).
fn local_tz() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(TimeZone::system)
}

/// The instant `t_us` (clamped to what `jiff` represents).
fn instant(t_us: f64) -> Timestamp {
    let us = if t_us.is_finite() { t_us.floor() } else { 0.0 };
    let us = us.clamp(
        Timestamp::MIN.as_microsecond() as f64,
        Timestamp::MAX.as_microsecond() as f64,
    ) as i64;
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Offset of local time from UTC at `t_us`, in µs.
pub fn local_offset_us(t_us: f64) -> f64 {
    f64::from(local_tz().to_offset(instant(t_us)).seconds()) * 1e6
}

/// Broken-down local time of `t_us`: (year, month 1-12, day, hour, minute, second, µs).
pub fn local_parts(t_us: f64) -> (i32, u32, u32, u32, u32, u32, u32) {
    let dt = local_tz().to_datetime(instant(t_us.max(0.0)));
    let u = |v: i8| u32::from(v.unsigned_abs());
    (
        i32::from(dt.year()),
        u(dt.month()),
        u(dt.day()),
        u(dt.hour()),
        u(dt.minute()),
        u(dt.second()),
        dt.subsec_nanosecond().unsigned_abs() / 1000,
    )
}

/// Formats a local time for read-outs: `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn format_local(t_us: f64) -> String {
    let (y, mo, d, h, mi, s, us) = local_parts(t_us);
    format!(
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
        us / 1000
    )
}

/// Formats a duration in µs compactly (`350 ms`, `12.5 s`, `3 h 20 min`, `2 d 4 h`).
pub fn format_duration(us: f64) -> String {
    let us = us.max(0.0);
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.0} ms", us / 1e3)
    } else if us < 60e6 {
        format!("{:.1} s", us / 1e6)
    } else if us < 3600e6 {
        format!("{:.0} min {:.0} s", (us / 60e6).floor(), (us % 60e6) / 1e6)
    } else if us < 86_400e6 {
        format!(
            "{:.0} h {:.0} min",
            (us / 3600e6).floor(),
            (us % 3600e6) / 60e6
        )
    } else {
        format!(
            "{:.0} d {:.0} h",
            (us / 86_400e6).floor(),
            (us % 86_400e6) / 3600e6
        )
    }
}

/// Formats an RTT in µs as milliseconds with sensible precision.
pub fn format_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Candidate tick steps, µs (months and years are approximated by 30 and 365 days).
const STEPS_US: &[f64] = &[
    1e3,
    2e3,
    5e3,
    10e3,
    20e3,
    50e3,
    100e3,
    200e3,
    500e3,
    1e6,
    2e6,
    5e6,
    10e6,
    15e6,
    30e6,
    60e6,
    120e6,
    300e6,
    600e6,
    900e6,
    1800e6,
    3600e6,
    7200e6,
    10_800e6,
    21_600e6,
    43_200e6,
    86_400e6,
    172_800e6,
    604_800e6,
    1_209_600e6,
    2_592_000e6,
    7_776_000e6,
    31_536_000e6,
];

/// One tick of the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTick {
    /// Where, µs since the epoch.
    pub t_us: f64,
    /// Its label (local time).
    pub label: String,
}

/// Ticks for `view` on a plot `width_px` wide, at least `min_px` apart, aligned to local
/// time (midnights, whole hours, ...).
pub fn time_ticks(view: &TimeView, width_px: f32, min_px: f32) -> Vec<TimeTick> {
    let want = view.us_per_px(width_px) * f64::from(min_px.max(1.0));
    let step = STEPS_US
        .iter()
        .copied()
        .find(|&s| s >= want)
        .unwrap_or(*STEPS_US.last().unwrap_or(&31_536_000e6));
    if step >= 2_592_000e6 {
        return month_ticks(view, step);
    }
    let off = local_offset_us(view.t0_us);
    let first = ((view.t0_us + off) / step).ceil() * step - off;
    let mut out = Vec::new();
    let mut t = first;
    let mut guard = 0;
    while t < view.t1_us && guard < 1000 {
        out.push(TimeTick {
            t_us: t,
            label: tick_label(t, step),
        });
        t += step;
        guard += 1;
    }
    out
}

/// Ticks on the first day of every 1, 3 or 12 months, at local midnight.
fn month_ticks(view: &TimeView, step: f64) -> Vec<TimeTick> {
    let months: i64 = if step <= 2_592_000e6 {
        1
    } else if step <= 7_776_000e6 {
        3
    } else {
        12
    };
    let (y, m, ..) = local_parts(view.t0_us);
    let mut idx = i64::from(y) * 12 + i64::from(m) - 1;
    idx = idx.div_euclid(months) * months;
    let mut out = Vec::new();
    for _ in 0..1000 {
        let (yy, mm) = (idx.div_euclid(12), idx.rem_euclid(12) + 1);
        // Local midnight of the first day (the first instant of that day across a DST
        // change).
        let Some(t) = i16::try_from(yy)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, mm as i8, 1).ok())
            .and_then(|d| d.to_zoned(local_tz().clone()).ok())
            .map(|z| z.timestamp().as_microsecond() as f64)
        else {
            break;
        };
        if t >= view.t1_us {
            break;
        }
        if t >= view.t0_us {
            out.push(TimeTick {
                t_us: t,
                label: format!("{yy:04}-{mm:02}"),
            });
        }
        idx += months;
    }
    out
}

fn tick_label(t_us: f64, step: f64) -> String {
    let (y, mo, d, h, mi, s, us) = local_parts(t_us);
    if step < 1e6 {
        format!("{h:02}:{mi:02}:{s:02}.{:03}", us / 1000)
    } else if step < 60e6 {
        format!("{h:02}:{mi:02}:{s:02}")
    } else if step < 86_400e6 {
        if h == 0 && mi == 0 {
            format!("{mo:02}-{d:02}")
        } else {
            format!("{h:02}:{mi:02}")
        }
    } else if step < 2_592_000e6 {
        format!("{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}")
    }
}

/// The vertical scale of a lane: RTT (µs) to a fraction of the lane height (0 = bottom).
///
/// `sf` bends the axis from linear (`sf = 0`) toward logarithmic: `f(v) = ln(1 + sf·v/max)
/// / ln(1 + sf)`, like the original zzping's scale factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YScale {
    /// RTT at the top of the lane, µs.
    pub max_us: f64,
    /// Scale factor (0 = linear).
    pub sf: f64,
}

impl YScale {
    /// Fraction of the height (0 bottom, 1 top; may exceed 1 for values above `max_us`).
    pub fn frac(&self, v_us: f64) -> f64 {
        let max = self.max_us.max(1.0);
        let x = (v_us / max).max(0.0);
        if self.sf <= 1e-6 {
            x
        } else {
            (1.0 + self.sf * x).ln() / (1.0 + self.sf).ln()
        }
    }

    /// Inverse of [`YScale::frac`].
    pub fn value_at(&self, frac: f64) -> f64 {
        let max = self.max_us.max(1.0);
        if self.sf <= 1e-6 {
            frac * max
        } else {
            ((frac * (1.0 + self.sf).ln()).exp() - 1.0) / self.sf * max
        }
    }

    /// Tick values (µs) on a lane `height_px` tall, at least `min_px` apart.
    pub fn ticks(&self, height_px: f32, min_px: f32) -> Vec<f64> {
        let max = self.max_us.max(1.0);
        let n = (f64::from(height_px) / f64::from(min_px.max(1.0))).clamp(1.0, 20.0);
        let mut out = Vec::new();
        if self.sf <= 1e-6 {
            let step = nice_step(max / n);
            let mut v = step;
            while v <= max * 1.0001 && out.len() < 40 {
                out.push(v);
                v += step;
            }
        } else {
            // Place candidates from a 1-2-5 ladder, keeping those far enough apart.
            let mut last_frac = 0.0;
            let min_frac = f64::from(min_px) / f64::from(height_px.max(1.0));
            let mut base = 1.0; // 1 µs
            while base <= max && out.len() < 40 {
                for m in [1.0, 2.0, 5.0] {
                    let v = base * m;
                    if v > max {
                        break;
                    }
                    let f = self.frac(v);
                    if f - last_frac >= min_frac {
                        out.push(v);
                        last_frac = f;
                    }
                }
                base *= 10.0;
            }
        }
        out
    }
}

/// A 1-2-5 step at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if p * m >= raw {
            return p * m;
        }
    }
    p * 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_anchor() {
        let mut v = TimeView::new(1e12, 1e12 + 1e9);
        let t = v.time_at(0.25);
        v.zoom(0.25, 0.5);
        assert!((v.time_at(0.25) - t).abs() < 1.0);
        assert!((v.span_us() - 0.5e9).abs() < 1.0);
    }

    #[test]
    fn zoom_is_clamped_and_ignores_nan() {
        let mut v = TimeView::new(1e12, 1e12 + 1e6);
        v.zoom(0.5, 1e-9);
        assert_eq!(v.span_us(), MIN_SPAN_US);
        v.zoom(f64::NAN, 2.0);
        v.pan(f64::INFINITY);
        assert_eq!(v.span_us(), MIN_SPAN_US);
    }

    #[test]
    fn ticks_are_ordered_and_spaced() {
        for span in [5e4, 1e6, 6e7, 3.6e9, 8.64e10, 6.048e11, 3e13] {
            let v = TimeView::new(1.7e15, 1.7e15 + span);
            let t = time_ticks(&v, 1600.0, 90.0);
            assert!(!t.is_empty(), "span {span}");
            assert!(t.windows(2).all(|w| w[1].t_us > w[0].t_us));
            let px = (t.len() as f64) * 90.0;
            assert!(px <= 1600.0 + 180.0, "span {span}: {} ticks", t.len());
        }
    }

    #[test]
    fn month_ticks_fall_on_local_first_days() {
        for span_days in [400.0, 700.0, 3000.0] {
            let v = TimeView::new(1.7e15, 1.7e15 + span_days * 86_400e6);
            let t = time_ticks(&v, 1600.0, 90.0);
            assert!(t.len() >= 2, "{span_days} d");
            for tick in &t {
                let (y, m, d, h, mi, ..) = local_parts(tick.t_us);
                assert_eq!((d, h, mi), (1, 0, 0), "{}", tick.label);
                assert_eq!(tick.label, format!("{y:04}-{m:02}"));
            }
        }
    }

    #[test]
    fn yscale_round_trips_and_is_monotonic() {
        for sf in [0.0, 1.0, 10.0, 100.0] {
            let y = YScale {
                max_us: 50_000.0,
                sf,
            };
            assert!((y.frac(50_000.0) - 1.0).abs() < 1e-9);
            let mut last = -1.0;
            for v in [0.0, 100.0, 1000.0, 10_000.0, 50_000.0] {
                let f = y.frac(v);
                assert!(f > last);
                last = f;
                assert!((y.value_at(f) - v).abs() < 1e-6 * v.max(1.0));
            }
            assert!(!y.ticks(120.0, 20.0).is_empty());
        }
    }
}
