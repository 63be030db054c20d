//! The window: toolbar, error banners, status line, the lanes with their legends, the
//! time axis and the hover read-out (`App::view` and the text it shows).

use crate::app::{App, LANE_HEIGHT, LEGEND_WIDTH, LaneSlot, MAX_FILL_LANES, Message, Mode};
use crate::canvas::{AxisCanvas, EventsCanvas, LaneCanvas, Y_AXIS_WIDTH, YAxisCanvas};
use crate::limits::LIMITS_ICMP_TAG;
use crate::marks::{EVENTS_STRIP_H, MARK_PX};
use crate::model::Lane;
use crate::timeline::{format_duration, format_local, format_ms};
use iced::widget::{
    Column, button, canvas, container, row, scrollable, slider, space, text, text_input,
};
use iced::{Color, Element, Font, Length, Theme};

/// The range buttons: label and span, µs (`None`: all the data).
pub const RANGES: [(&str, Option<f64>); 5] = [
    ("5 min", Some(300e6)),
    ("1 h", Some(3600e6)),
    ("24 h", Some(86_400e6)),
    ("7 d", Some(604_800e6)),
    ("all", None),
];

/// Between a context event's text and its time in the hover read-out.
pub const EVENT_TIME_SEP: &str = " · at ";

/// What the colours mean (under the lanes when nothing is hovered, and in saved pictures).
pub const LEGEND_HELP: &str = "Bands: min–max, p5–p95, p25–p75 and the median line · red from the \
     top: loss (failed / sent): bright red timeouts over crimson errors (send failed, ICMP \
     unreachable...) · red over the whole height: every request failed; a red cap: an \
     outage (a frame lost entirely; not for a host tagged \"limits ICMP\" failing alone) · grey: no data · amber at the bottom: RTTs that are \
     upper bounds (user-space stamps) · violet: clock step, late send or receive overflow \
     · wheel: zoom · drag: pan · shift/right-drag: box zoom · double-click: reset";

impl App {
    /// The window title.
    pub fn title(&self) -> String {
        match self.mode {
            Mode::Offline => format!("zzping — {}", self.path_input),
            Mode::Live => "zzping — live".to_string(),
        }
    }

    /// The theme (dark).
    pub fn theme(&self) -> Theme {
        Theme::Dark
    }

    /// Legend lines of a lane: title, the "limits ICMP" tag when its host rations its
    /// replies in the view ([`crate::limits`]), loss (failed over sent, with timeouts and
    /// errors beside it), median, p99, outages, then a line per kind of flagged frame in
    /// range.
    pub fn legend_lines(lane: &Lane) -> Vec<String> {
        let t = &lane.totals;
        let mut lines = vec![lane.host.title()];
        if let Some(v) = lane.columns_view
            && lane.limits_icmp_in(v.t0_us.max(0.0) as u64, v.t1_us.max(0.0) as u64)
        {
            lines.push(LIMITS_ICMP_TAG.to_string());
        }
        lines.extend([
            loss_text(t.loss_ratio(), t.lost, t.errors),
            format!(
                "median {}",
                t.median_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!(
                "p99 {}",
                t.p99_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!("outages {}", t.outages),
        ]);
        let unit = |n: u64| {
            if t.flag_unit_us == 0 {
                format!("{n} frame{}", if n == 1 { "" } else { "s" })
            } else {
                format!("{n} × {}", format_duration(t.flag_unit_us as f64))
            }
        };
        if t.flagged[0] > 0 {
            lines.push(format!("RTT upper bounds: {}", unit(t.flagged[0])));
        }
        let timing: Vec<String> = ["clock steps", "late sends", "rx overflows"]
            .iter()
            .zip(&t.flagged[1..])
            .filter(|(_, n)| **n > 0)
            .map(|(what, &n)| format!("{what}: {}", unit(n)))
            .collect();
        if !timing.is_empty() {
            lines.push(timing.join(" · "));
        }
        lines
    }

    /// The read-out of the hovered column, one line per lane plus the time span.
    pub fn hover_lines(&self) -> Vec<String> {
        let Some(h) = self.hover else {
            return Vec::new();
        };
        let view = self.view_range();
        let mut out = Vec::new();
        let lanes = self.shown();
        let n = lanes.first().map_or(0, |s| s.lane.columns.len());
        if n == 0 || !(0.0..1.0).contains(&h) {
            return out;
        }
        let i = ((h * n as f64).floor() as usize).min(n - 1);
        let upp = view.span_us() / n as f64;
        let t = view.t0_us + i as f64 * upp;
        out.push(format!("{} + {}", format_local(t), format_duration(upp)));
        // The context events under the cursor (within a mark's width).
        let at = view.time_at(h);
        for m in crate::marks::near(&self.marks, at, f64::from(MARK_PX) * upp) {
            out.push(format!(
                "{}{EVENT_TIME_SEP}{}",
                m.text,
                format_local(m.t_us as f64)
            ));
        }
        for s in lanes {
            // A lane waiting for data shows its previous columns, of another view.
            let col = match s.lane.columns_view {
                Some(cv) if cv != view => {
                    let f = cv.frac_of(view.time_at(h));
                    let k = s.lane.columns.len() as f64;
                    if !(0.0..1.0).contains(&f) {
                        continue;
                    }
                    (f * k).floor() as usize
                }
                _ => i,
            };
            let Some(c) = s.lane.columns.get(col) else {
                continue;
            };
            let name = s
                .lane
                .host
                .name
                .clone()
                .unwrap_or_else(|| s.lane.host.label.clone());
            if c.is_gap() {
                out.push(format!("{name}: no data"));
                continue;
            }
            let loss = loss_text(c.loss_ratio(), c.lost, c.errors);
            let mut line = format!(
                "{name}: {} pings, {loss}",
                c.sent.max(c.received + c.failed())
            );
            if c.has_outage {
                line.push_str(" (outage: a frame lost entirely)");
            }
            if c.received > 0 {
                let q = c.q_us.map(|v| format_ms(f64::from(v)));
                line.push_str(&format!(
                    ", min {} p5 {} p25 {} median {} p75 {} p95 {} max {}",
                    q[0], q[1], q[2], q[3], q[4], q[5], q[6]
                ));
            }
            out.push(line);
            if let Some(f) = flag_text(c.flags) {
                out.push(format!("{name}: {f}"));
            }
        }
        out
    }

    /// The caption of the picture to share: the range, its length, the level and the
    /// hosts shown.
    pub fn caption(&self) -> String {
        let v = self.view_range();
        let hosts: Vec<String> = self.shown().iter().map(|s| s.lane.host.title()).collect();
        format!(
            "zzping · {} — {} ({}) · {}",
            format_local(v.t0_us),
            format_local(v.t1_us),
            format_duration(v.span_us()),
            hosts.join(", ")
        )
    }

    /// Renders the window.
    pub fn view(&self) -> Element<'_, Message> {
        let share = self.share_layout();
        let mut body = Column::new().spacing(6).padding(10);
        if share {
            body = body.push(
                text(self.caption())
                    .size(15)
                    .font(Font {
                        weight: iced::font::Weight::Bold,
                        ..Font::default()
                    })
                    .width(Length::Fill),
            );
        } else {
            body = body.push(self.toolbar()).push(self.range_bar());
            if !self.errors.is_empty() {
                body = body.push(self.banner());
            }
            body = body.push(text(self.status_line()).size(13));
        }

        let view = self.view_range();
        let mut lanes = Column::new().spacing(4);
        let slots = self.shown();
        // A few lanes share the window's height; many scroll at a fixed height (in the
        // picture to share, all of them share it).
        let fill = share || slots.len() <= MAX_FILL_LANES;
        let lane_h = if fill {
            Length::Fill
        } else {
            Length::Fixed(LANE_HEIGHT)
        };
        if slots.is_empty() {
            let msg = match self.mode {
                _ if !self.lanes().is_empty() => {
                    "Every lane is hidden: show one below.".to_string()
                }
                Mode::Offline if self.loading.1 > 0 => "loading…".to_string(),
                Mode::Offline => {
                    "No data open: type a data directory above and press Open.".to_string()
                }
                Mode::Live if self.daemons.is_empty() => {
                    "No daemon configured: start with --live ADDR.".to_string()
                }
                Mode::Live => "Waiting for hosts…".to_string(),
            };
            lanes = lanes.push(text(msg).size(16));
        }
        let index_of = |slot: &LaneSlot| {
            self.lanes()
                .iter()
                .position(|s| std::ptr::eq(s, slot))
                .unwrap_or(0)
        };
        for (i, s) in slots.iter().enumerate() {
            let lines = Self::legend_lines(&s.lane);
            let mut legend = Column::new().spacing(2).width(Length::Fixed(LEGEND_WIDTH));
            for (k, l) in lines.into_iter().enumerate() {
                legend = legend.push(if k == 0 {
                    text(l).size(15).font(Font {
                        weight: iced::font::Weight::Bold,
                        ..Font::default()
                    })
                } else if l == LIMITS_ICMP_TAG {
                    // Amber: a property of the host, not of the network.
                    text(l).size(13).color(Color::from_rgb(0.95, 0.7, 0.25))
                } else {
                    text(l).size(13)
                });
                // The lane's buttons under its title, where they stay whatever follows.
                if k == 0 && !share {
                    let k = index_of(s);
                    let small = |label: &'static str, m: Message| {
                        button(text(label).size(11))
                            .padding([1, 6])
                            .style(button::secondary)
                            .on_press(m)
                    };
                    legend = legend.push(
                        row![
                            small("↑", Message::MoveLane(k, -1)),
                            small("↓", Message::MoveLane(k, 1)),
                            small("hide", Message::ToggleLane(k)),
                        ]
                        .spacing(4),
                    );
                }
            }
            let c = canvas(LaneCanvas {
                lane: &s.lane,
                cache: &s.cache,
                view,
                y: s.y,
                hover: if share { None } else { self.hover },
                primary: i == 0,
                plot_width: self.plot_width,
                drawn_at: &s.drawn_at,
                marks: &self.marks,
            })
            .width(Length::Fill)
            .height(lane_h);
            let c = Element::from(c).map(Message::from);
            let y_axis = canvas(YAxisCanvas {
                y: s.y,
                cache: &s.y_cache,
            })
            .width(Length::Fixed(Y_AXIS_WIDTH))
            .height(lane_h);
            let y_axis = Element::from(y_axis).map(Message::from);
            lanes = lanes.push(row![legend, y_axis, c].height(lane_h).spacing(0));
        }
        let axis = canvas(AxisCanvas {
            cache: &self.axis_cache,
            view,
            hover: if share { None } else { self.hover },
        })
        .width(Length::Fill)
        .height(Length::Fixed(26.0));
        let axis = Element::from(axis).map(Message::from);
        // The axis stays under the lanes, outside the scrolling area, with the strip of
        // context events above it when there are any.
        let mut axis_row = Column::new();
        if !self.marks.is_empty() {
            let strip = canvas(EventsCanvas {
                marks: &self.marks,
                cache: &self.marks_cache,
                view,
                hover: if share { None } else { self.hover },
            })
            .width(Length::Fill)
            .height(Length::Fixed(EVENTS_STRIP_H));
            axis_row = axis_row.push(row![
                // As wide as a lane's legend and Y axis: the strip starts where the
                // lanes' plots do.
                container(text("events").size(11))
                    .width(Length::Fixed(LEGEND_WIDTH + Y_AXIS_WIDTH))
                    .padding(iced::Padding {
                        right: 6.0,
                        ..iced::Padding::ZERO
                    })
                    .align_x(iced::alignment::Horizontal::Right),
                Element::from(strip).map(Message::from)
            ]);
        }
        let axis_row = axis_row.push(row![
            space().width(Length::Fixed(LEGEND_WIDTH + Y_AXIS_WIDTH)),
            axis
        ]);
        body = if fill {
            body.push(lanes.height(Length::Fill)).push(axis_row)
        } else {
            body.push(scrollable(lanes).height(Length::Fill))
                .push(axis_row)
        };

        let hidden: Vec<(usize, &LaneSlot)> = self
            .ordered()
            .into_iter()
            .filter(|(_, s)| s.hidden)
            .collect();
        if !hidden.is_empty() && !share {
            let mut r = row![text("hidden:").size(13)]
                .spacing(6)
                .align_y(iced::Alignment::Center);
            for (k, s) in hidden {
                r = r.push(
                    button(text(format!("show {}", s.lane.host.title())).size(12))
                        .padding([1, 6])
                        .style(button::secondary)
                        .on_press(Message::ToggleLane(k)),
                );
            }
            body = body.push(r);
        }

        let mut hover = Column::new().spacing(1);
        let lines = if share {
            Vec::new()
        } else {
            self.hover_lines()
        };
        if lines.is_empty() && !slots.is_empty() {
            hover = hover.push(
                text(LEGEND_HELP)
                    .size(13)
                    .color(Color::from_rgb(0.6, 0.63, 0.68)),
            );
        }
        let extra = lines.len().saturating_sub(2 * MAX_FILL_LANES + 1);
        for l in lines.into_iter().take(2 * MAX_FILL_LANES + 1) {
            hover = hover.push(text(l).size(13));
        }
        if extra > 0 {
            hover = hover.push(text(format!("(and {extra} more lines)")).size(13));
        }
        body = body.push(container(hover).height(Length::Shrink));
        container(body)
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }

    /// The first row of controls: mode, path, Y scale, reset.
    fn toolbar(&self) -> Element<'_, Message> {
        let mode_btn = |label: &'static str, m: Mode| {
            let b = button(text(label).size(14));
            if self.mode == m {
                b.style(button::primary)
            } else {
                b.style(button::secondary).on_press(Message::SetMode(m))
            }
        };
        row![
            mode_btn("Offline", Mode::Offline),
            mode_btn("Live", Mode::Live),
            text_input(
                "data directory, host directory or .zzp file",
                &self.path_input
            )
            .on_input(Message::PathChanged)
            .on_submit(Message::OpenPath)
            .size(14)
            .width(Length::FillPortion(3)),
            button(text("Open").size(14)).on_press(Message::OpenPath),
            text("Y").size(14),
            button(text("−").size(14)).on_press(Message::YZoom(1.25)),
            button(text("+").size(14)).on_press(Message::YZoom(0.8)),
            button(text("auto").size(14)).on_press(Message::YAuto),
            text(format!("log {:.0}", self.sf)).size(14),
            slider(0.0..=100.0, self.sf, Message::ScaleFactor)
                .step(1.0)
                .width(Length::Fixed(120.0)),
            button(text("Reset").size(14)).on_press(Message::Reset),
        ]
        .spacing(8)
        .align_y(iced::Alignment::Center)
        .into()
    }

    /// The second row: ranges, "go to", "Save PNG".
    fn range_bar(&self) -> Element<'_, Message> {
        let mut r = row![text("Show").size(14)]
            .spacing(6)
            .align_y(iced::Alignment::Center);
        for (label, span) in RANGES {
            r = r.push(
                button(text(label).size(13))
                    .style(button::secondary)
                    .on_press(Message::Range(span)),
            );
        }
        r = r
            .push(space().width(Length::Fixed(12.0)))
            .push(text("go to").size(14))
            .push(
                text_input(
                    "-2h, yesterday, 2026-11-22T20:00:00+01:00",
                    &self.goto_input,
                )
                .on_input(Message::GoToChanged)
                .on_submit(Message::GoTo)
                .size(14)
                .width(Length::Fixed(300.0)),
            )
            .push(button(text("Go").size(13)).on_press(Message::GoTo))
            .push(space().width(Length::Fixed(12.0)))
            .push(button(text("Save PNG").size(13)).on_press(Message::SavePng));
        if let Some(m) = &self.saved {
            r = r.push(text(m.clone()).size(13));
        }
        r.into()
    }

    /// The red banner of errors (the first five, with a count of the rest).
    fn banner(&self) -> Element<'_, Message> {
        let mut banner = Column::new().spacing(2);
        for e in self.errors.iter().take(5) {
            banner = banner.push(text(format!("⚠ {e}")).size(13));
        }
        if self.errors.len() > 5 {
            banner = banner.push(text(format!("… and {} more", self.errors.len() - 5)).size(13));
        }
        let banner = row![
            banner.width(Length::Fill),
            button(text("dismiss").size(13)).on_press(Message::DismissErrors)
        ];
        container(banner)
            .padding(8)
            .width(Length::Fill)
            .style(|_: &Theme| container::Style {
                background: Some(Color::from_rgb(0.45, 0.10, 0.12).into()),
                text_color: Some(Color::WHITE),
                ..container::Style::default()
            })
            .into()
    }

    /// The status line: span, level, loading progress, live connection state.
    pub fn status_line(&self) -> String {
        let v = self.view_range();
        let level = self
            .shown()
            .first()
            .map(|s| s.lane.level_us)
            .map_or(String::new(), |w| {
                if w == 0 {
                    ", from raw frames".to_string()
                } else {
                    format!(", from {} summaries", format_duration(w as f64))
                }
            });
        let mut s = format!(
            "{} — {} ({}{level})",
            format_local(v.t0_us),
            format_local(v.t1_us),
            format_duration(v.span_us())
        );
        if self.lanes().iter().any(|s| s.lane.is_waiting()) {
            s.push_str(" · reading frames");
        }
        if self.loading.1 > 0 && self.loading.0 < self.loading.1 {
            s.push_str(&format!(
                " · loading {}/{} (day pyramids, ICMP limits per day)",
                self.loading.0, self.loading.1
            ));
        }
        if self.mode == Mode::Live {
            for d in &self.daemons {
                if d.connected {
                    s.push_str(&format!(" · live from {}", d.target.addr));
                } else {
                    s.push_str(&format!(" · waiting for daemon at {}", d.target.addr));
                    if !d.detail.is_empty() {
                        s.push_str(&format!(" ({})", d.detail));
                    }
                }
            }
            if self.follow {
                s.push_str(" · following");
            }
        }
        s
    }
}

/// The loss of `ratio` (failed over sent) with its breakdown beside it when anything
/// failed: `loss 2.50 % (3 timeouts, 2 errors)`, `loss 100 % (80 errors)`.
pub fn loss_text(ratio: Option<f64>, timeouts: u64, errors: u64) -> String {
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (ratio, timeouts, errors) {
        (None, ..) => "loss –".into(),
        (Some(r), 0, 0) => format!("loss {}", format_pct(r)),
        (Some(r), t, 0) => format!("loss {} ({})", format_pct(r), plural(t, "timeout")),
        (Some(r), 0, e) => format!("loss {} ({})", format_pct(r), plural(e, "error")),
        (Some(r), t, e) => format!(
            "loss {} ({}, {})",
            format_pct(r),
            plural(t, "timeout"),
            plural(e, "error")
        ),
    }
}

/// What the measurement flags of a column say, if any: RTTs that are upper bounds
/// (timed in user space at one end), clock steps, late sends, receive overflows.
pub fn flag_text(flags: u8) -> Option<String> {
    use zzping_lib::frame::{FLAG_CLOCK_STEP, FLAG_RECV_OVERFLOW, FLAG_SEND_LATE, FLAG_USER_STAMP};
    let said: Vec<&str> = [
        (
            FLAG_USER_STAMP,
            "some RTTs are upper bounds (timed in user space at one end)",
        ),
        (FLAG_CLOCK_STEP, "the wall clock stepped"),
        (FLAG_SEND_LATE, "a send went out more than a period late"),
        (
            FLAG_RECV_OVERFLOW,
            "the receive queue overflowed (replies may be missing)",
        ),
    ]
    .iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, t)| *t)
    .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// Formats a ratio as a percentage that never rounds a loss to zero, nor a partial loss to
/// 100 %.
pub fn format_pct(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if r >= 1.0 {
        "100 %".into()
    } else if p < 0.01 {
        "<0.01 %".into()
    } else if p < 10.0 {
        format!("{p:.2} %")
    } else if p > 99.0 {
        // Rounded down: only a total loss reads 100 %.
        format!("{:.2} %", (p * 100.0).floor() / 100.0)
    } else {
        format!("{p:.1} %")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_round_to_none_or_all() {
        assert_eq!(format_pct(0.0), "0 %");
        assert_eq!(format_pct(1e-6), "<0.01 %");
        assert_eq!(format_pct(0.0123), "1.23 %");
        assert_eq!(format_pct(0.5714), "57.1 %");
        assert_eq!(format_pct(0.99996), "99.99 %");
        assert_eq!(format_pct(1.0), "100 %");
        assert_eq!(loss_text(None, 0, 0), "loss –");
        assert_eq!(loss_text(Some(0.0), 0, 0), "loss 0 %");
        assert_eq!(loss_text(Some(1.0), 0, 1), "loss 100 % (1 error)");
        assert_eq!(
            loss_text(Some(0.5), 1, 2),
            "loss 50.0 % (1 timeout, 2 errors)"
        );
    }
}
