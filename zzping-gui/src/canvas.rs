//! The canvas programs: one per lane, and the time axis.
//!
//! Drawing reads only the lane's precomputed columns (one entry per pixel), so a redraw
//! costs O(pixels) whatever the amount of data; the static picture is kept in a
//! [`Cache`] per lane that the app clears when the columns change, and only the hover
//! line and the box-zoom rectangle are drawn per frame.

use crate::app::Message;
use crate::model::{ColumnStats, Lane};
use crate::timeline::{TimeView, YScale, format_ms, time_ticks};
use iced::keyboard::{self, key};
use iced::mouse;
use iced::widget::canvas::{self, Cache, Event, Frame, Geometry, Path, Stroke, Text};
use iced::{Color, Pixels, Point, Rectangle, Renderer, Size, Theme};
use std::time::{Duration, Instant};

/// Background of a lane.
pub const LANE_BG: Color = Color::from_rgb(0.075, 0.082, 0.10);
/// Columns without data.
pub const GAP: Color = Color::from_rgb(0.24, 0.25, 0.28);
/// Loss marks.
pub const LOSS: Color = Color::from_rgb(0.93, 0.20, 0.22);
/// min..max band.
pub const BAND_OUTER: Color = Color::from_rgba(0.35, 0.55, 0.90, 0.28);
/// p5..p95 band.
pub const BAND_MID: Color = Color::from_rgba(0.38, 0.62, 0.95, 0.50);
/// p25..p75 band.
pub const BAND_INNER: Color = Color::from_rgba(0.45, 0.72, 1.0, 0.85);
/// Median line.
pub const MEDIAN: Color = Color::from_rgb(0.80, 0.95, 1.0);
/// Grid lines.
pub const GRID: Color = Color::from_rgba(1.0, 1.0, 1.0, 0.07);
/// Axis labels.
pub const LABEL: Color = Color::from_rgba(0.80, 0.83, 0.88, 0.85);

/// Smallest height of a loss mark, px (any loss stays visible at every zoom).
pub const MIN_LOSS_PX: f32 = 3.0;
/// Vertical padding inside a lane, px.
const PAD: f32 = 3.0;

/// How a drag started.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DragKind {
    Pan,
    Box,
}

/// Per-canvas interaction state.
#[derive(Debug, Default)]
pub struct Interaction {
    drag: Option<(DragKind, f32, f32)>,
    last_click: Option<Instant>,
    modifiers: keyboard::Modifiers,
    hovering: bool,
}

/// A lane on the canvas.
pub struct LaneCanvas<'a> {
    /// The lane.
    pub lane: &'a Lane,
    /// Its geometry cache.
    pub cache: &'a Cache,
    /// The shared time view.
    pub view: TimeView,
    /// The lane's Y scale.
    pub y: YScale,
    /// Hovered fraction of the width.
    pub hover: Option<f64>,
    /// Whether this canvas handles the keyboard and reports its width (the first lane).
    pub primary: bool,
    /// The width the columns were computed for.
    pub plot_width: f32,
}

/// Maps a canvas event to a message (shared by lanes and the axis).
fn interact(
    st: &mut Interaction,
    event: &Event,
    bounds: Rectangle,
    cursor: mouse::Cursor,
    primary: bool,
    plot_width: f32,
) -> Option<canvas::Action<Message>> {
    let w = f64::from(bounds.width.max(1.0));
    let pos = cursor.position_in(bounds);
    if primary && (bounds.width - plot_width).abs() > 0.5 && bounds.width > 1.0 {
        return Some(canvas::Action::publish(Message::PlotWidth(bounds.width)));
    }
    match event {
        Event::Keyboard(keyboard::Event::ModifiersChanged(m)) => {
            st.modifiers = *m;
            None
        }
        Event::Keyboard(keyboard::Event::KeyPressed { key, modifiers, .. }) if primary => {
            st.modifiers = *modifiers;
            let msg = match key.as_ref() {
                keyboard::Key::Character("+") | keyboard::Key::Character("=") => Message::Zoom {
                    anchor: 0.5,
                    factor: 0.5,
                },
                keyboard::Key::Character("-") => Message::Zoom {
                    anchor: 0.5,
                    factor: 2.0,
                },
                keyboard::Key::Named(key::Named::ArrowLeft) => Message::Pan(-0.1),
                keyboard::Key::Named(key::Named::ArrowRight) => Message::Pan(0.1),
                keyboard::Key::Named(key::Named::ArrowUp) => Message::YZoom(0.8),
                keyboard::Key::Named(key::Named::ArrowDown) => Message::YZoom(1.25),
                keyboard::Key::Named(key::Named::Home) => Message::Home,
                keyboard::Key::Named(key::Named::End) => Message::End,
                _ => return None,
            };
            Some(canvas::Action::publish(msg))
        }
        Event::Mouse(mouse::Event::WheelScrolled { delta }) => {
            let p = pos?;
            let y = match delta {
                mouse::ScrollDelta::Lines { y, .. } => *y,
                mouse::ScrollDelta::Pixels { y, .. } => *y / 40.0,
            };
            if y == 0.0 {
                return None;
            }
            let factor = 0.8f64.powf(f64::from(y));
            Some(
                canvas::Action::publish(Message::Zoom {
                    anchor: f64::from(p.x) / w,
                    factor,
                })
                .and_capture(),
            )
        }
        Event::Mouse(mouse::Event::ButtonPressed(b)) => {
            let p = pos?;
            let now = Instant::now();
            if *b == mouse::Button::Left {
                if let Some(t) = st.last_click
                    && now.duration_since(t) < Duration::from_millis(400)
                {
                    st.last_click = None;
                    st.drag = None;
                    return Some(canvas::Action::publish(Message::Reset).and_capture());
                }
                st.last_click = Some(now);
                let kind = if st.modifiers.shift() {
                    DragKind::Box
                } else {
                    DragKind::Pan
                };
                st.drag = Some((kind, p.x, p.x));
            } else if *b == mouse::Button::Right {
                st.drag = Some((DragKind::Box, p.x, p.x));
            } else {
                return None;
            }
            Some(canvas::Action::request_redraw().and_capture())
        }
        Event::Mouse(mouse::Event::CursorMoved { position }) => {
            let x = Some(position.x - bounds.x);
            let pos = bounds
                .contains(*position)
                .then(|| Point::new(position.x - bounds.x, position.y - bounds.y));
            match (st.drag, x) {
                (Some((DragKind::Pan, _, last)), Some(x)) => {
                    st.drag = Some((DragKind::Pan, last, x));
                    let dx = f64::from(x - last);
                    Some(canvas::Action::publish(Message::Pan(-dx / w)).and_capture())
                }
                (Some((DragKind::Box, start, _)), Some(x)) => {
                    st.drag = Some((DragKind::Box, start, x));
                    Some(canvas::Action::publish(Message::Hover(Some(
                        f64::from(x) / w,
                    ))))
                }
                _ => match pos {
                    Some(p) => {
                        st.hovering = true;
                        Some(canvas::Action::publish(Message::Hover(Some(
                            f64::from(p.x) / w,
                        ))))
                    }
                    None if st.hovering => {
                        st.hovering = false;
                        Some(canvas::Action::publish(Message::Hover(None)))
                    }
                    None => None,
                },
            }
        }
        Event::Mouse(mouse::Event::ButtonReleased(_)) => {
            let d = st.drag.take()?;
            match d {
                (DragKind::Box, a, b) if (a - b).abs() > 3.0 => Some(
                    canvas::Action::publish(Message::ZoomTo(f64::from(a) / w, f64::from(b) / w))
                        .and_capture(),
                ),
                _ => Some(canvas::Action::request_redraw()),
            }
        }
        _ => None,
    }
}

impl canvas::Program<Message> for LaneCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Option<canvas::Action<Message>> {
        interact(state, event, bounds, cursor, self.primary, self.plot_width)
    }

    fn draw(
        &self,
        state: &Interaction,
        renderer: &Renderer,
        _theme: &Theme,
        bounds: Rectangle,
        _cursor: mouse::Cursor,
    ) -> Vec<Geometry> {
        let lane = self.cache.draw(renderer, bounds.size(), |frame| {
            draw_lane(frame, &self.lane.columns, &self.view, &self.y);
        });
        let mut overlay = Frame::new(renderer, bounds.size());
        draw_overlay(&mut overlay, state, self.hover, bounds.size());
        vec![lane, overlay.into_geometry()]
    }

    fn mouse_interaction(
        &self,
        state: &Interaction,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> mouse::Interaction {
        match state.drag {
            Some((DragKind::Pan, ..)) => mouse::Interaction::Grabbing,
            Some((DragKind::Box, ..)) => mouse::Interaction::Crosshair,
            None if cursor.is_over(bounds) => mouse::Interaction::Crosshair,
            None => mouse::Interaction::default(),
        }
    }
}

fn draw_overlay(frame: &mut Frame, state: &Interaction, hover: Option<f64>, size: Size) {
    if let Some((DragKind::Box, a, b)) = state.drag {
        let (l, r) = (a.min(b), a.max(b));
        frame.fill_rectangle(
            Point::new(l, 0.0),
            Size::new(r - l, size.height),
            Color::from_rgba(1.0, 1.0, 1.0, 0.12),
        );
    }
    if let Some(h) = hover
        && (0.0..=1.0).contains(&h)
    {
        let x = (h as f32 * size.width).floor() + 0.5;
        frame.stroke(
            &Path::line(Point::new(x, 0.0), Point::new(x, size.height)),
            Stroke::default()
                .with_color(Color::from_rgba(1.0, 1.0, 1.0, 0.45))
                .with_width(1.0),
        );
    }
}

/// Height of a column's loss mark (from the top of the lane), px: the loss ratio, at
/// least [`MIN_LOSS_PX`] for any loss, and at least half the lane when the column lost a
/// whole frame's worth of pings or more (a short outage: never averaged away by zooming
/// out), the full lane when everything was lost.
pub fn loss_mark_height(c: &ColumnStats, plot_h: f32) -> f32 {
    let r = c.loss_ratio().unwrap_or(0.0) as f32;
    let mut h = (r * plot_h).max(MIN_LOSS_PX);
    if c.lost_whole_frame() {
        h = h.max(plot_h * 0.5);
    }
    h.min(plot_h)
}

/// Draws a lane's columns: gaps, bands, median, loss, grid and Y labels.
pub fn draw_lane(frame: &mut Frame, cols: &[ColumnStats], view: &TimeView, y: &YScale) {
    let size = frame.size();
    frame.fill_rectangle(Point::ORIGIN, size, LANE_BG);
    let top = PAD;
    let bottom = size.height - PAD;
    let plot_h = (bottom - top).max(1.0);
    let ypx = |v: f32| -> f32 {
        let f = y.frac(f64::from(v)).clamp(0.0, 1.0) as f32;
        bottom - f * plot_h
    };
    // Time grid.
    for t in time_ticks(view, size.width, 110.0) {
        let x = (view.frac_of(t.t_us) as f32 * size.width).floor() + 0.5;
        frame.fill_rectangle(Point::new(x, 0.0), Size::new(1.0, size.height), GRID);
    }
    // Y grid.
    let yt = y.ticks(size.height, 22.0);
    for &v in &yt {
        let py = ypx(v as f32).floor() + 0.5;
        frame.fill_rectangle(Point::new(0.0, py), Size::new(size.width, 1.0), GRID);
    }
    let n = cols.len().max(1);
    let cw = size.width / n as f32;
    let mut gaps = canvas::path::Builder::new();
    let mut outer = canvas::path::Builder::new();
    let mut mid = canvas::path::Builder::new();
    let mut inner = canvas::path::Builder::new();
    let mut median = canvas::path::Builder::new();
    let mut loss = canvas::path::Builder::new();
    let mut outage = canvas::path::Builder::new();
    let mut used = [false; 7];
    let mut rect =
        |k: usize, b: &mut canvas::path::Builder, x: f32, y0: f32, y1: f32, min_h: f32| {
            let (a, c) = (y0.min(y1), y0.max(y1));
            let h = (c - a).max(min_h);
            b.rectangle(Point::new(x, c - h), Size::new(cw, h));
            used[k] = true;
        };
    for (i, c) in cols.iter().enumerate() {
        let x = i as f32 * cw;
        if c.is_gap() {
            rect(0, &mut gaps, x, 0.0, size.height, 0.0);
            continue;
        }
        if c.is_outage() {
            rect(6, &mut outage, x, 0.0, size.height, 0.0);
            continue;
        }
        if c.received > 0 {
            let q = c.q_us;
            rect(1, &mut outer, x, ypx(q[0]), ypx(q[6]), 1.0);
            rect(2, &mut mid, x, ypx(q[1]), ypx(q[5]), 1.0);
            rect(3, &mut inner, x, ypx(q[2]), ypx(q[4]), 1.0);
            let m = ypx(q[3]);
            rect(4, &mut median, x, m - 1.0, m + 1.0, 2.0);
        }
        if c.lost > 0 {
            let h = loss_mark_height(c, plot_h);
            rect(5, &mut loss, x, 0.0, h, 0.0);
        }
    }
    let fills = [
        (gaps, GAP),
        (outer, BAND_OUTER),
        (mid, BAND_MID),
        (inner, BAND_INNER),
        (median, MEDIAN),
        (loss, LOSS),
        (outage, LOSS),
    ];
    for (k, (b, color)) in fills.into_iter().enumerate() {
        if used[k] {
            frame.fill(&b.build(), color);
        }
    }
    // Y labels last, over the data.
    for &v in &yt {
        let py = ypx(v as f32);
        if py < 14.0 {
            continue;
        }
        let label = format_ms(v);
        frame.fill_rectangle(
            Point::new(2.0, py - 14.0),
            Size::new(label.chars().count() as f32 * 6.2 + 4.0, 13.0),
            Color::from_rgba(0.075, 0.082, 0.10, 0.75),
        );
        frame.fill_text(Text {
            content: label,
            position: Point::new(4.0, py - 1.0),
            color: LABEL,
            size: Pixels(11.0),
            align_y: iced::alignment::Vertical::Bottom,
            ..Text::default()
        });
    }
}

/// The time axis under the lanes.
pub struct AxisCanvas<'a> {
    /// Its geometry cache.
    pub cache: &'a Cache,
    /// The shared time view.
    pub view: TimeView,
    /// Hovered fraction of the width.
    pub hover: Option<f64>,
}

impl canvas::Program<Message> for AxisCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Option<canvas::Action<Message>> {
        interact(state, event, bounds, cursor, false, bounds.width)
    }

    fn draw(
        &self,
        state: &Interaction,
        renderer: &Renderer,
        _theme: &Theme,
        bounds: Rectangle,
        _cursor: mouse::Cursor,
    ) -> Vec<Geometry> {
        let g = self.cache.draw(renderer, bounds.size(), |frame| {
            let size = frame.size();
            for t in time_ticks(&self.view, size.width, 110.0) {
                let x = (self.view.frac_of(t.t_us) as f32 * size.width).floor() + 0.5;
                frame.fill_rectangle(Point::new(x, 0.0), Size::new(1.0, 6.0), LABEL);
                frame.fill_text(Text {
                    content: t.label,
                    position: Point::new(x, 8.0),
                    color: LABEL,
                    size: Pixels(12.0),
                    align_x: iced::widget::text::Alignment::Center,
                    ..Text::default()
                });
            }
        });
        let mut overlay = Frame::new(renderer, bounds.size());
        draw_overlay(&mut overlay, state, self.hover, bounds.size());
        vec![g, overlay.into_geometry()]
    }
}
