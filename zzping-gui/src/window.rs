//! The window: toolbar, error banners, status line, the lanes with their legends, the
//! time axis and the hover read-out (`App::view` and the text it shows).

use crate::app::{App, LANE_HEIGHT, LEGEND_WIDTH, MAX_FILL_LANES, Message, Mode};
use crate::canvas::{AxisCanvas, LaneCanvas};
use crate::model::Lane;
use crate::timeline::{format_duration, format_local, format_ms};
use iced::widget::{
    Column, button, canvas, column, container, row, scrollable, slider, space, text, text_input,
};
use iced::{Color, Element, Font, Length, Theme};

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

    /// Legend lines of a lane: title, loss, median, p99, outages.
    pub fn legend_lines(lane: &Lane) -> [String; 5] {
        let t = &lane.totals;
        [
            lane.host.title(),
            match t.loss_ratio() {
                Some(r) => format!("loss {}", format_pct(r)),
                None => "loss –".into(),
            },
            format!(
                "median {}",
                t.median_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!(
                "p99 {}",
                t.p99_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!("outages {}", t.outages),
        ]
    }

    /// The read-out of the hovered column, one line per lane plus the time span.
    pub fn hover_lines(&self) -> Vec<String> {
        let Some(h) = self.hover else {
            return Vec::new();
        };
        let view = self.view_range();
        let mut out = Vec::new();
        let lanes = self.lanes();
        let n = lanes.first().map_or(0, |s| s.lane.columns.len());
        if n == 0 || !(0.0..1.0).contains(&h) {
            return out;
        }
        let i = ((h * n as f64).floor() as usize).min(n - 1);
        let upp = view.span_us() / n as f64;
        let t = view.t0_us + i as f64 * upp;
        out.push(format!("{} + {}", format_local(t), format_duration(upp)));
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
            let loss = c.loss_ratio().map_or("–".into(), format_pct);
            let mut line = format!("{name}: {} pings, loss {loss}", c.received + c.lost);
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
        }
        out
    }

    /// Renders the window.
    pub fn view(&self) -> Element<'_, Message> {
        let mode_btn = |label: &'static str, m: Mode| {
            let b = button(text(label).size(14));
            if self.mode == m {
                b.style(button::primary)
            } else {
                b.style(button::secondary).on_press(Message::SetMode(m))
            }
        };
        let toolbar = row![
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
        .align_y(iced::Alignment::Center);

        let mut body = Column::new().spacing(6).padding(10).push(toolbar);

        if !self.errors.is_empty() {
            let mut banner = Column::new().spacing(2);
            for e in self.errors.iter().take(5) {
                banner = banner.push(text(format!("⚠ {e}")).size(13));
            }
            if self.errors.len() > 5 {
                banner =
                    banner.push(text(format!("… and {} more", self.errors.len() - 5)).size(13));
            }
            let banner = row![
                banner.width(Length::Fill),
                button(text("dismiss").size(13)).on_press(Message::DismissErrors)
            ];
            body = body.push(container(banner).padding(8).width(Length::Fill).style(
                |_: &Theme| container::Style {
                    background: Some(Color::from_rgb(0.45, 0.10, 0.12).into()),
                    text_color: Some(Color::WHITE),
                    ..container::Style::default()
                },
            ));
        }

        body = body.push(text(self.status_line()).size(13));

        let view = self.view_range();
        let mut lanes = Column::new().spacing(4);
        let slots = self.lanes();
        // A few lanes share the window's height; many scroll at a fixed height.
        let fill = slots.len() <= MAX_FILL_LANES;
        let lane_h = if fill {
            Length::Fill
        } else {
            Length::Fixed(LANE_HEIGHT)
        };
        if slots.is_empty() {
            let msg = match self.mode {
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
        for (i, s) in slots.iter().enumerate() {
            let lines = Self::legend_lines(&s.lane);
            let legend = column![
                text(lines[0].clone()).size(15).font(Font {
                    weight: iced::font::Weight::Bold,
                    ..Font::default()
                }),
                text(lines[1].clone()).size(13),
                text(lines[2].clone()).size(13),
                text(lines[3].clone()).size(13),
                text(lines[4].clone()).size(13),
            ]
            .spacing(2)
            .width(Length::Fixed(LEGEND_WIDTH));
            let c = canvas(LaneCanvas {
                lane: &s.lane,
                cache: &s.cache,
                view,
                y: s.y,
                hover: self.hover,
                primary: i == 0,
                keys: !self.editing_path,
                plot_width: self.plot_width,
                drawn_at: &s.drawn_at,
            })
            .width(Length::Fill)
            .height(lane_h);
            let c = Element::from(c).map(Message::from);
            lanes = lanes.push(row![legend, c].spacing(8).height(lane_h));
        }
        let axis = canvas(AxisCanvas {
            cache: &self.axis_cache,
            view,
            hover: self.hover,
        })
        .width(Length::Fill)
        .height(Length::Fixed(26.0));
        let axis = Element::from(axis).map(Message::from);
        // The axis stays under the lanes, outside the scrolling area.
        let axis_row = row![space().width(Length::Fixed(LEGEND_WIDTH)), axis].spacing(8);
        body = if fill {
            body.push(lanes.height(Length::Fill)).push(axis_row)
        } else {
            body.push(scrollable(lanes).height(Length::Fill))
                .push(axis_row)
        };

        let mut hover = Column::new().spacing(1);
        let lines = self.hover_lines();
        if lines.is_empty() && !slots.is_empty() {
            hover = hover.push(
                text(
                    "Bands: min–max, p5–p95, p25–p75 and the median line · red from the \
                     top: loss ratio · red cap over the whole height: an outage (a frame \
                     lost entirely) · grey: no data · wheel: zoom · drag: pan · \
                     shift/right-drag: box zoom · double-click: reset",
                )
                .size(13)
                .color(Color::from_rgb(0.6, 0.63, 0.68)),
            );
        }
        let extra = lines.len().saturating_sub(MAX_FILL_LANES + 1);
        for l in lines.into_iter().take(MAX_FILL_LANES + 1) {
            hover = hover.push(text(l).size(13));
        }
        if extra > 0 {
            hover = hover.push(text(format!("(and {extra} more hosts)")).size(13));
        }
        body = body.push(container(hover).height(Length::Shrink));
        container(body)
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }

    /// The status line: span, level, loading progress, live connection state.
    pub fn status_line(&self) -> String {
        let v = self.view_range();
        let level = self
            .lanes()
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
                " · loading {}/{} day pyramids",
                self.loading.0, self.loading.1
            ));
        }
        if self.mode == Mode::Live {
            for d in &self.daemons {
                if d.connected {
                    s.push_str(&format!(" · live from {}", d.addr));
                } else {
                    s.push_str(&format!(" · waiting for daemon at {}", d.addr));
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

/// Formats a ratio as a percentage that never rounds a loss to zero.
pub fn format_pct(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.01 {
        "<0.01 %".into()
    } else if p < 10.0 {
        format!("{p:.2} %")
    } else {
        format!("{p:.1} %")
    }
}
