//! The canvas programs: one per lane, the context-event strip and the time axis.
//!
//! Drawing reads only the lane's precomputed columns (one entry per pixel), so a redraw
//! costs O(pixels) whatever the amount of data. A lane's picture ([`lane_picture`]) is a
//! dozen layers (grid, gaps, the three bands, the median, outage and loss marks), each
//! filled as one path on whole pixels ([`layer_path`]); it is kept in a [`Cache`] per lane
//! that the app clears when the columns or the Y scale change, so a hover or an exposure
//! draws only the hover line and the box-zoom rectangle.
//!
//! The canvases speak their own language, [`Gesture`]: what the user asked for (zoom,
//! pan, hover...), which the app turns into its messages. While a lane waits for data,
//! its previous picture is drawn where its view lies in the current one.

use crate::fold::{ColumnStats, TIMING_FLAGS};
use crate::marks::{MARK_PX, Mark};
use crate::model::Lane;
use crate::timeline::{TimeView, YScale, format_ms, time_ticks};
use iced::keyboard::{self, key};
use iced::mouse;
use iced::widget::canvas::{self, Cache, Event, Frame, Geometry, Path, Text};
use iced::widget::image;
use iced::{Color, Pixels, Point, Rectangle, Renderer, Size, Theme, Vector};
use std::cell::Cell;
use std::time::{Duration, Instant};
use zzping_lib::frame::FLAG_USER_STAMP;

/// Background of a lane.
pub const LANE_BG: Color = Color::from_rgb(0.075, 0.082, 0.10);
/// Columns without data.
pub const GAP: Color = Color::from_rgb(0.24, 0.25, 0.28);
/// Loss marks: requests that timed out.
pub const LOSS: Color = Color::from_rgb(0.93, 0.20, 0.22);
/// Loss marks: requests that failed with an error (the send failed, or an ICMP error such
/// as "unreachable" came back). A darker, bluer red than [`LOSS`]: still a loss.
pub const ERROR_LOSS: Color = Color::from_rgb(0.72, 0.08, 0.34);
/// Mark at the bottom of a column holding an RTT timed in user space at one end (an
/// upper bound, `FLAG_USER_STAMP`).
pub const USER_STAMP_MARK: Color = Color::from_rgb(0.96, 0.72, 0.20);
/// Mark just above it: a wall-clock step, a send more than a period late or a receive
/// queue overflow in the column (`FLAG_CLOCK_STEP`, `FLAG_SEND_LATE`,
/// `FLAG_RECV_OVERFLOW`).
pub const TIMING_MARK: Color = Color::from_rgb(0.68, 0.48, 0.98);
/// Height of each flag mark at the bottom of a lane, px.
pub const FLAG_MARK_PX: u32 = 3;
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

/// What the user asks for on a lane or the time axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Gesture {
    /// Zoom by `factor` (< 1 zooms in) around the fraction `anchor` of the width.
    Zoom {
        /// Fraction of the width kept in place.
        anchor: f64,
        /// Span multiplier.
        factor: f64,
    },
    /// Pan by a fraction of the span.
    Pan(f64),
    /// Zoom to a fraction range (box zoom).
    ZoomTo(f64, f64),
    /// Show all data.
    Reset,
    /// Go to the start of the data, keeping the span.
    Home,
    /// Go to the end of the data.
    End,
    /// The cursor is at this fraction of the width (or left).
    Hover(Option<f64>),
    /// The plot area's width changed.
    PlotWidth(f32),
    /// Multiply the Y range.
    YZoom(f64),
}

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
    /// The sub-pixel shift that put the cached lane on whole pixels (see `draw`).
    snap: Cell<Option<Vector>>,
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
    /// Whether this canvas reports its width (the first lane).
    pub primary: bool,
    /// The width the columns were computed for.
    pub plot_width: f32,
    /// Where the lane was last drawn, logical pixels in the window (set by `draw`; the
    /// viewer logs it with its "drawn" line for scripts that check the picture).
    pub drawn_at: &'a Cell<Option<Rectangle>>,
    /// The context-event marks; those that label a gap ([`Mark::labels_gap`]: a suspend)
    /// write their text across it ([`gap_labels`]).
    pub marks: &'a [Mark],
}

/// The gesture of a key of the timeline: `+`/`-` zoom, ←/→ pan, ↑/↓ Y zoom, Home/End.
/// The app takes keys from the window's events that no widget captured (a focused text
/// field captures what is typed into it), not from the canvases.
pub fn key_gesture(key: &keyboard::Key) -> Option<Gesture> {
    Some(match key.as_ref() {
        keyboard::Key::Character("+") | keyboard::Key::Character("=") => Gesture::Zoom {
            anchor: 0.5,
            factor: 0.5,
        },
        keyboard::Key::Character("-") => Gesture::Zoom {
            anchor: 0.5,
            factor: 2.0,
        },
        keyboard::Key::Named(key::Named::ArrowLeft) => Gesture::Pan(-0.1),
        keyboard::Key::Named(key::Named::ArrowRight) => Gesture::Pan(0.1),
        keyboard::Key::Named(key::Named::ArrowUp) => Gesture::YZoom(0.8),
        keyboard::Key::Named(key::Named::ArrowDown) => Gesture::YZoom(1.25),
        keyboard::Key::Named(key::Named::Home) => Gesture::Home,
        keyboard::Key::Named(key::Named::End) => Gesture::End,
        _ => return None,
    })
}

/// Maps a canvas event to a message (shared by lanes and the axis).
fn interact(
    st: &mut Interaction,
    event: &Event,
    bounds: Rectangle,
    cursor: mouse::Cursor,
    primary: bool,
    plot_width: f32,
) -> Option<canvas::Action<Gesture>> {
    let w = f64::from(bounds.width.max(1.0));
    let pos = cursor.position_in(bounds);
    if primary && (bounds.width - plot_width).abs() > 0.5 && bounds.width > 1.0 {
        return Some(canvas::Action::publish(Gesture::PlotWidth(bounds.width)));
    }
    match event {
        Event::Keyboard(keyboard::Event::ModifiersChanged(m)) => {
            st.modifiers = *m;
            None
        }
        Event::Keyboard(keyboard::Event::KeyPressed { modifiers, .. }) => {
            st.modifiers = *modifiers;
            None
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
                canvas::Action::publish(Gesture::Zoom {
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
                    return Some(canvas::Action::publish(Gesture::Reset).and_capture());
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
                    Some(canvas::Action::publish(Gesture::Pan(-dx / w)).and_capture())
                }
                (Some((DragKind::Box, start, _)), Some(x)) => {
                    st.drag = Some((DragKind::Box, start, x));
                    Some(canvas::Action::publish(Gesture::Hover(Some(
                        f64::from(x) / w,
                    ))))
                }
                _ => match pos {
                    Some(p) => {
                        st.hovering = true;
                        Some(canvas::Action::publish(Gesture::Hover(Some(
                            f64::from(p.x) / w,
                        ))))
                    }
                    None if st.hovering => {
                        st.hovering = false;
                        Some(canvas::Action::publish(Gesture::Hover(None)))
                    }
                    None => None,
                },
            }
        }
        Event::Mouse(mouse::Event::ButtonReleased(_)) => {
            let d = st.drag.take()?;
            match d {
                (DragKind::Box, a, b) if (a - b).abs() > 3.0 => Some(
                    canvas::Action::publish(Gesture::ZoomTo(f64::from(a) / w, f64::from(b) / w))
                        .and_capture(),
                ),
                _ => Some(canvas::Action::request_redraw()),
            }
        }
        _ => None,
    }
}

impl canvas::Program<Gesture> for LaneCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Option<canvas::Action<Gesture>> {
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
        // The layout may put the lane at a fractional position: shift the picture onto
        // whole pixels (at integer scale factors), or every edge would be blurred. The
        // cached picture holds the shift, so it is redrawn when the shift changes.
        let snap = Vector::new(bounds.x.round() - bounds.x, bounds.y.round() - bounds.y);
        if state.snap.get() != Some(snap) {
            self.cache.clear();
            state.snap.set(Some(snap));
        }
        self.drawn_at.set(Some(bounds));
        let shown = self.lane.columns_view.unwrap_or(self.view);
        let lane = if shown == self.view {
            self.cache.draw(renderer, bounds.size(), |frame| {
                frame.translate(snap);
                draw_lane(frame, &self.lane.columns, &self.view, &self.y);
            })
        } else {
            // Waiting for data: the previous picture, moved and stretched to where its
            // view lies in the current one (not cached: it moves with every pan).
            let mut frame = Frame::new(renderer, bounds.size());
            frame.fill_rectangle(Point::ORIGIN, bounds.size(), LANE_BG);
            let scale = (shown.span_us() / self.view.span_us()) as f32;
            let dx = (self.view.frac_of(shown.t0_us) * f64::from(bounds.width)) as f32;
            frame.with_clip(Rectangle::with_size(bounds.size()), |f| {
                f.translate(snap + Vector::new(dx, 0.0));
                f.scale_nonuniform(Vector::new(scale, 1.0));
                draw_lane(f, &self.lane.columns, &shown, &self.y);
            });
            frame.into_geometry()
        };
        let mut overlay = Frame::new(renderer, bounds.size());
        for (x, content) in gap_labels(self.marks, &self.view, bounds.width) {
            overlay.fill_text(Text {
                content,
                position: Point::new(x, bounds.height / 2.0),
                color: GAP_LABEL,
                size: Pixels(GAP_LABEL_PX),
                align_x: iced::widget::text::Alignment::Center,
                align_y: iced::alignment::Vertical::Center,
                ..Text::default()
            });
        }
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

/// Colour of the text written across a gap ([`gap_labels`]).
pub const GAP_LABEL: Color = Color::from_rgb(0.80, 0.72, 0.98);
/// Its size, px.
pub const GAP_LABEL_PX: f32 = 12.0;
/// Width of a character of [`GAP_LABEL_PX`] text, at most, px: a label is written only
/// where the gap it names is wider than its text.
const GAP_LABEL_CHAR_PX: f32 = 7.5;

/// The texts written across the lanes on a plot `width_px` wide for `view`: the marks
/// that label a gap ([`Mark::labels_gap`]), each centred on the visible part of its span
/// when that part is wider than the text. (x, text).
pub fn gap_labels(marks: &[Mark], view: &TimeView, width_px: f32) -> Vec<(f32, String)> {
    let w = f64::from(width_px);
    marks
        .iter()
        .filter(|m| m.labels_gap && m.end_us > m.t_us)
        .filter_map(|m| {
            let a = (view.frac_of(m.t_us as f64) * w).max(0.0);
            let b = (view.frac_of(m.end_us as f64) * w).min(w);
            let text_px = f64::from(GAP_LABEL_CHAR_PX) * m.text.chars().count() as f64;
            (b - a > text_px + 8.0).then(|| (((a + b) / 2.0) as f32, m.text.clone()))
        })
        .collect()
}

/// Draws a translucent rectangle as an image of its own size, so that it sits above the
/// lane's fills (a renderer draws a layer's images after its paths; and tiny-skia places
/// scaled images on a grid of their scale, so the image is never scaled).
fn overlay_rect(frame: &mut Frame, rgba: [u8; 4], r: Rectangle) {
    let (w, h) = (
        r.width.round().max(1.0) as u32,
        r.height.round().max(1.0) as u32,
    );
    let px: Vec<u8> = std::iter::repeat_n(rgba, (w * h) as usize)
        .flatten()
        .collect();
    frame.draw_image(
        Rectangle::new(r.position(), Size::new(w as f32, h as f32)),
        canvas::Image::new(image::Handle::from_rgba(w, h, px))
            .filter_method(image::FilterMethod::Nearest),
    );
}

fn draw_overlay(frame: &mut Frame, state: &Interaction, hover: Option<f64>, size: Size) {
    if let Some((DragKind::Box, a, b)) = state.drag {
        let (l, r) = (a.min(b), a.max(b));
        overlay_rect(
            frame,
            [255, 255, 255, 36],
            Rectangle::new(Point::new(l, 0.0), Size::new(r - l, size.height)),
        );
    }
    if let Some(h) = hover
        && (0.0..=1.0).contains(&h)
    {
        let x = (h as f32 * size.width).floor();
        overlay_rect(
            frame,
            [255, 255, 255, 130],
            Rectangle::new(Point::new(x, 0.0), Size::new(1.0, size.height)),
        );
    }
}

/// Height of a column's loss mark (from the top of the lane), px: the loss ratio (failed
/// over sent, errors included), at least [`MIN_LOSS_PX`] for any failure, so that a
/// single lost ping stays visible at every zoom. Columns containing a frame whose every request was lost are marked over the whole
/// height instead (see [`lane_picture`]).
pub fn loss_mark_height(c: &ColumnStats, plot_h: f32) -> f32 {
    let r = c.loss_ratio().unwrap_or(0.0) as f32;
    (r * plot_h).max(MIN_LOSS_PX).min(plot_h)
}

/// Outage marks over columns that still have replies: translucent, so the bands show.
pub const OUTAGE_MARK: Color = Color::from_rgba(0.93, 0.20, 0.22, 0.55);

/// Draws a lane: the background, then each layer of its [`LanePicture`] as one path
/// (see [`layer_path`]). Its Y labels are beside it ([`YAxisCanvas`]), not over the data.
///
/// A band of a whole lane is a single fill, not one rectangle per column, and every edge
/// lies on whole pixels, so the picture is as crisp as the software reference
/// [`lane_pixels`] (anti-aliasing or not) and costs a few fills per lane whatever the zoom.
pub fn draw_lane(frame: &mut Frame, cols: &[ColumnStats], view: &TimeView, y: &YScale) {
    let size = frame.size();
    let (w, h) = (
        size.width.ceil().max(1.0) as u32,
        size.height.ceil().max(1.0) as u32,
    );
    let pic = lane_picture(cols, view, y, w, h);
    frame.fill_rectangle(Point::ORIGIN, Size::new(w as f32, h as f32), LANE_BG);
    for layer in &pic.layers {
        if let Some(path) = layer_path(&layer.spans) {
            frame.fill(&path, layer.color);
        }
    }
}

/// Width of the Y axis left of each lane, where its labels are (never over the data), px.
pub const Y_AXIS_WIDTH: f32 = 56.0;

/// The Y axis of a lane: its tick labels, right-aligned at the rows of the lane's grid
/// lines (the same ticks, [`YScale::ticks`], on the same height).
pub struct YAxisCanvas<'a> {
    /// The lane's Y scale.
    pub y: YScale,
    /// Its geometry cache (cleared with the lane's).
    pub cache: &'a Cache,
}

impl canvas::Program<Gesture> for YAxisCanvas<'_> {
    type State = ();

    fn draw(
        &self,
        _state: &(),
        renderer: &Renderer,
        _theme: &Theme,
        bounds: Rectangle,
        _cursor: mouse::Cursor,
    ) -> Vec<Geometry> {
        let labels = self.cache.draw(renderer, bounds.size(), |frame| {
            let h = bounds.height.ceil().max(1.0);
            let bottom = h - PAD;
            let plot_h = (bottom - PAD).max(1.0);
            for v in self.y.ticks(h, 22.0) {
                let py = bottom - self.y.frac(v).clamp(0.0, 1.0) as f32 * plot_h;
                if !(6.0..=h - 6.0).contains(&py) {
                    continue;
                }
                frame.fill_text(Text {
                    content: y_label(v),
                    position: Point::new(bounds.width - 5.0, py.floor() + 0.5),
                    color: LABEL,
                    size: Pixels(11.0),
                    align_x: iced::widget::text::Alignment::Right,
                    align_y: iced::alignment::Vertical::Center,
                    ..Text::default()
                });
            }
        });
        vec![labels]
    }
}

/// The label of a Y tick: `12.5ms`. No space: the tiny-skia renderer caches only glyphs
/// with pixels, so a space would be rasterized again (running the font's hinting program)
/// at every redraw of every label.
pub fn y_label(v_us: f64) -> String {
    format_ms(v_us).replace(' ', "")
}

/// The outline of `spans` (ascending columns, at most one span each) as one path: for
/// every run of adjacent columns whose spans overlap, a polygon whose top and bottom step
/// along the spans. Its inside is exactly the union of the spans' pixels, and every vertex
/// is on a whole pixel. `None` when there is nothing to fill.
pub fn layer_path(spans: &[Span]) -> Option<Path> {
    if spans.is_empty() {
        return None;
    }
    let pt = |x: u32, y: u32| Point::new(x as f32, y as f32);
    Some(Path::new(|b| {
        let mut i = 0;
        while i < spans.len() {
            let mut j = i + 1;
            while j < spans.len() {
                let (p, s) = (spans[j - 1], spans[j]);
                if s.x != p.x + 1 || s.y0 >= p.y1 || s.y1 <= p.y0 {
                    break;
                }
                j += 1;
            }
            let run = &spans[i..j];
            let (first, last) = (run[0], run[run.len() - 1]);
            b.move_to(pt(first.x, first.y0));
            let mut top = first.y0;
            for s in &run[1..] {
                if s.y0 != top {
                    b.line_to(pt(s.x, top));
                    b.line_to(pt(s.x, s.y0));
                    top = s.y0;
                }
            }
            b.line_to(pt(last.x + 1, top));
            let mut bot = last.y1;
            b.line_to(pt(last.x + 1, bot));
            for s in run[..run.len() - 1].iter().rev() {
                if s.y1 != bot {
                    b.line_to(pt(s.x + 1, bot));
                    b.line_to(pt(s.x + 1, s.y1));
                    bot = s.y1;
                }
            }
            b.line_to(pt(first.x, bot));
            b.close();
            i = j;
        }
    }))
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

impl canvas::Program<Gesture> for AxisCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Option<canvas::Action<Gesture>> {
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

/// The strip of context-event marks under the lanes ([`crate::marks`]): a tick at each
/// event, a bar over a span (a link down until it came back, a suspend); hovering it
/// reads the marks out like the lanes' columns.
#[derive(Debug)]
pub struct EventsCanvas<'a> {
    /// The marks, in time order.
    pub marks: &'a [Mark],
    /// Its geometry cache (cleared with the axis's).
    pub cache: &'a Cache,
    /// The shared time view.
    pub view: TimeView,
    /// Hovered fraction of the width.
    pub hover: Option<f64>,
}

/// The pixel columns `[x0, x1)` a mark covers on a strip `width` px wide showing `view`:
/// its tick ([`MARK_PX`] wide, centred on its start) and its span; `None` when it is out
/// of view.
pub fn mark_columns(m: &Mark, view: &TimeView, width: f32) -> Option<(f32, f32)> {
    let x = |t: u64| view.frac_of(t as f64) as f32 * width;
    let x0 = (x(m.t_us) - MARK_PX / 2.0).floor();
    let x1 = (x(m.end_us) + MARK_PX / 2.0).ceil().max(x0 + MARK_PX);
    let (x0, x1) = (x0.max(0.0), x1.min(width));
    (x1 > x0).then_some((x0, x1))
}

impl canvas::Program<Gesture> for EventsCanvas<'_> {
    type State = Interaction;

    fn update(
        &self,
        state: &mut Interaction,
        event: &Event,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Option<canvas::Action<Gesture>> {
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
            frame.fill_rectangle(Point::ORIGIN, size, LANE_BG);
            for m in self.marks {
                let Some((x0, x1)) = mark_columns(m, &self.view, size.width) else {
                    continue;
                };
                // The span as a bar across the middle, the start as a full-height tick.
                let mid = (size.height / 2.0).floor();
                frame.fill_rectangle(Point::new(x0, mid - 2.0), Size::new(x1 - x0, 4.0), m.color);
                let t0 = (x0 + MARK_PX).min(x1);
                frame.fill_rectangle(
                    Point::new(x0, 0.0),
                    Size::new(t0 - x0, size.height),
                    m.color,
                );
            }
        });
        let mut overlay = Frame::new(renderer, bounds.size());
        draw_overlay(&mut overlay, state, self.hover, bounds.size());
        vec![g, overlay.into_geometry()]
    }
}

/// Rows `[y0, y1)` of pixel column `x` of a lane (`y0 < y1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Pixel column.
    pub x: u32,
    /// First row (0 = top).
    pub y0: u32,
    /// Row after the last.
    pub y1: u32,
}

/// One colour of a lane's picture and the pixels it covers: at most one span per column,
/// by ascending column.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The colour, alpha-blended over the layers below.
    pub color: Color,
    /// The pixels.
    pub spans: Vec<Span>,
}

/// What a lane shows, `w`×`h` pixels: [`LANE_BG`], then `layers` in order (grid, gaps,
/// bands, median, outage and loss marks, flag marks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LanePicture {
    /// Width, px.
    pub w: u32,
    /// Height, px.
    pub h: u32,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Y tick values, µs (labelled by [`YAxisCanvas`] beside the lane).
    pub y_ticks: Vec<f64>,
}

/// The picture of a lane of `w`×`h` pixels, one pixel column per column: per column its
/// gap, outage, bands, median, loss mark (timeouts in [`LOSS`] over errors in
/// [`ERROR_LOSS`]) and flag marks at the bottom. O(pixel columns) whatever the data.
///
/// Layers are painted whole, one after the other; within a column they come in the order
/// a column is composited (bands, then the marks over them), so the result is the same as
/// compositing column by column. Loss marks and outage columns are opaque layers painted
/// over the bands (errors, then timeouts and outage caps over them), then the flag marks
/// at the bottom, which is what compositing them in turn gives.
pub fn lane_picture(
    cols: &[ColumnStats],
    view: &TimeView,
    y: &YScale,
    w: u32,
    h: u32,
) -> LanePicture {
    let hf = h as f32;
    let bottom = hf - PAD;
    let plot_h = (bottom - PAD).max(1.0);
    let ypx = |v: f32| -> f32 {
        let f = y.frac(f64::from(v)).clamp(0.0, 1.0) as f32;
        bottom - f * plot_h
    };
    // The rows between y0 and y1 (either order), clipped to the lane.
    let rows = |y0: f32, y1: f32| -> (u32, u32) {
        let a = y0.min(y1).floor().max(0.0) as u32;
        let b = y0.max(y1).ceil().min(hf) as u32;
        (a, b)
    };
    let mut layers = Vec::new();
    let push = |v: &mut Vec<Span>, x: u32, (y0, y1): (u32, u32)| {
        if y1 > y0 {
            v.push(Span { x, y0, y1 });
        }
    };
    // Grid: the time ticks, then the Y ticks.
    let mut grid_x: Vec<u32> = time_ticks(view, w as f32, 110.0)
        .iter()
        .map(|t| (view.frac_of(t.t_us) * f64::from(w)).floor())
        .filter(|&x| x >= 0.0 && x < f64::from(w))
        .map(|x| x as u32)
        .collect();
    grid_x.sort_unstable();
    grid_x.dedup();
    layers.push(Layer {
        color: GRID,
        spans: grid_x.iter().map(|&x| Span { x, y0: 0, y1: h }).collect(),
    });
    let y_ticks = y.ticks(hf, 22.0);
    for &v in &y_ticks {
        let row = ypx(v as f32).floor();
        if row >= 0.0 && row < hf {
            let row = row as u32;
            layers.push(Layer {
                color: GRID,
                spans: (0..w)
                    .map(|x| Span {
                        x,
                        y0: row,
                        y1: row + 1,
                    })
                    .collect(),
            });
        }
    }
    let n = cols.len();
    let (mut gap, mut outer, mut mid, mut inner, mut median, mut outage) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    // Loss marks hang from the top: per column, the rows of timeouts (0 = none), then
    // those of errors below them.
    let mut loss = vec![0u32; if n == 0 { 0 } else { w as usize }];
    let (mut errors, mut user_stamp, mut timing) = (Vec::new(), Vec::new(), Vec::new());
    let col = |x: u32| &cols[(x as usize * n / w as usize).min(n - 1)];
    if n > 0 {
        for x in 0..w {
            let c = col(x);
            if c.is_gap() {
                push(&mut gap, x, (0, h));
                continue;
            }
            if c.flags & FLAG_USER_STAMP != 0 {
                push(&mut user_stamp, x, (h.saturating_sub(FLAG_MARK_PX), h));
            }
            if c.flags & TIMING_FLAGS != 0 {
                let top = h.saturating_sub(2 * FLAG_MARK_PX);
                push(&mut timing, x, (top, top + FLAG_MARK_PX));
            }
            if c.is_outage() {
                let t = split_failures(c, h);
                loss[x as usize] = t;
                push(&mut errors, x, (t, h));
                continue;
            }
            if c.received > 0 {
                let q = c.q_us;
                let band = |lo: f32, hi: f32| {
                    let (a, b) = (ypx(hi), ypx(lo));
                    if b - a < 1.0 {
                        rows(a.floor(), a.floor() + 1.0)
                    } else {
                        rows(a, b)
                    }
                };
                push(&mut outer, x, band(q[0], q[6]));
                push(&mut mid, x, band(q[1], q[5]));
                push(&mut inner, x, band(q[2], q[4]));
                let m = ypx(q[3]).round();
                push(&mut median, x, rows(m - 1.0, m + 1.0));
            }
            if c.has_outage {
                push(&mut outage, x, (0, h));
            } else if c.failed() > 0 {
                let end = rows(0.0, loss_mark_height(c, plot_h)).1;
                let t = split_failures(c, end);
                loss[x as usize] = t;
                push(&mut errors, x, (t, end));
            }
        }
        // A solid cap, three pixels wide, over every column holding an outage: a lone
        // 300 ms outage in a week of data must not be a faint one-pixel line.
        let cap = rows(0.0, (0.08 * hf).clamp(4.0, 12.0)).1;
        for x in 0..w {
            if col(x).has_outage {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let l = &mut loss[xx as usize];
                    *l = (*l).max(cap);
                }
            }
        }
    }
    let loss: Vec<Span> = (0..w)
        .zip(&loss)
        .filter(|&(_, &y1)| y1 > 0)
        .map(|(x, &y1)| Span { x, y0: 0, y1 })
        .collect();
    for (color, spans) in [
        (GAP, gap),
        (BAND_OUTER, outer),
        (BAND_MID, mid),
        (BAND_INNER, inner),
        (MEDIAN, median),
        (OUTAGE_MARK, outage),
        (ERROR_LOSS, errors),
        (LOSS, loss),
        (TIMING_MARK, timing),
        (USER_STAMP_MARK, user_stamp),
    ] {
        layers.push(Layer { color, spans });
    }
    layers.retain(|l| !l.spans.is_empty());
    LanePicture {
        w,
        h,
        layers,
        y_ticks,
    }
}

/// The row where a failure mark of `rows` rows switches from timeouts (above) to errors
/// (below): the timeouts' share of the column's failures, rounded, with at least one row
/// for each kind present when the mark has room.
fn split_failures(c: &ColumnStats, rows: u32) -> u32 {
    let share = 1.0 - c.error_share();
    let t = (f64::from(rows) * share).round() as u32;
    match (c.lost > 0, c.errors > 0) {
        (true, true) if rows >= 2 => t.clamp(1, rows - 1),
        _ => t,
    }
}

/// Composites a picture in software into RGBA pixels (the reference the renderer's fills
/// must match; tests compare the two).
pub fn rasterize(pic: &LanePicture) -> Vec<u8> {
    let wu = pic.w as usize;
    let mut px = vec![0u8; wu * pic.h as usize * 4];
    let bg = LANE_BG.into_rgba8();
    for p in px.chunks_exact_mut(4) {
        p.copy_from_slice(&bg);
    }
    for layer in &pic.layers {
        let c = layer.color;
        let src = [c.r * 255.0, c.g * 255.0, c.b * 255.0];
        for s in &layer.spans {
            for row in s.y0..s.y1.min(pic.h) {
                let i = (row as usize * wu + s.x as usize) * 4;
                for k in 0..3 {
                    let d = f32::from(px[i + k]);
                    px[i + k] = (src[k] * c.a + d * (1.0 - c.a)).round() as u8;
                }
                px[i + 3] = 255;
            }
        }
    }
    px
}

/// An RGBA image of a lane, `w`×`h` pixels: its [`lane_picture`] composited in software.
pub fn lane_pixels(cols: &[ColumnStats], view: &TimeView, y: &YScale, w: u32, h: u32) -> Vec<u8> {
    rasterize(&lane_picture(cols, view, y, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suspend's text goes across its gap, centred on the part in view, when the gap is
    /// wider than the text; instants and other marks write nothing in the lanes.
    #[test]
    fn a_suspend_is_written_across_its_gap_when_it_fits() {
        let suspend = |t0: u64, t1: u64| Mark {
            t_us: t0,
            end_us: t1,
            color: crate::marks::SUSPEND_MARK,
            text: "suspended 20.0 s".into(),
            labels_gap: true,
        };
        let view = TimeView::new(0.0, 1_000_000.0);
        // 300-700 of 1000 px: centred at 500.
        assert_eq!(
            gap_labels(&[suspend(300_000, 700_000)], &view, 1000.0),
            [(500.0, "suspended 20.0 s".to_owned())]
        );
        // Reaching out of the view: centred on what is seen (800-1000).
        assert_eq!(
            gap_labels(&[suspend(800_000, 3_000_000)], &view, 1000.0),
            [(900.0, "suspended 20.0 s".to_owned())]
        );
        // Narrower than its text (16 characters): nothing.
        assert!(gap_labels(&[suspend(300_000, 400_000)], &view, 1000.0).is_empty());
        // Out of view, or not a gap's mark: nothing.
        assert!(gap_labels(&[suspend(2_000_000, 3_000_000)], &view, 1000.0).is_empty());
        let mut route = suspend(300_000, 700_000);
        route.labels_gap = false;
        assert!(gap_labels(&[route], &view, 1000.0).is_empty());
    }

    fn col(received: u64, lost: u64, q: [f32; 7]) -> ColumnStats {
        ColumnStats {
            frames: 10,
            sent: received + lost,
            received,
            lost,
            errors: 0,
            flags: 0,
            q_us: q,
            has_outage: false,
        }
    }

    fn px(img: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * w + x) * 4) as usize;
        [img[i], img[i + 1], img[i + 2]]
    }

    fn red(p: [u8; 3]) -> bool {
        p[0] > 200 && p[1] < 90 && p[2] < 90
    }

    #[test]
    fn any_loss_is_visible_and_an_outage_spans_the_lane() {
        let q = [1000.0, 1100.0, 1200.0, 1300.0, 1400.0, 1500.0, 1600.0];
        // Column 0: one ping lost of 10,000; column 1: the same loss, but it contains a
        // frame whose every request was lost (a short outage); column 2: no loss.
        let mut with_outage = col(9_999, 1, q);
        with_outage.has_outage = true;
        let cols = [col(9_999, 1, q), with_outage, col(1000, 0, q)];
        let view = TimeView::new(0.0, 3e6);
        for sf in [0.0, 30.0] {
            let y = YScale { max_us: 2000.0, sf };
            // Three pixels per column: the outage's cap reaches one pixel into each neighbour.
            let img = lane_pixels(&cols, &view, &y, 9, 100);
            let reddish = |p: [u8; 3]| {
                i32::from(p[0]) > i32::from(p[1]) + 60 && i32::from(p[0]) > i32::from(p[2]) + 60
            };
            let reds = |x: u32| (0..100).filter(|&yy| reddish(px(&img, 9, x, yy))).count() as f32;
            assert!(reds(0) >= MIN_LOSS_PX, "{}", reds(0));
            assert!(reds(0) < 10.0);
            // Every row outside the bands (which show through the translucent mark).
            assert!(reds(4) >= 40.0, "{}", reds(4));
            assert!(red(px(&img, 9, 4, 0)) && reddish(px(&img, 9, 4, 99)));
            assert_eq!(reds(8), 0.0);
        }
    }

    #[test]
    fn errors_are_loss_in_their_own_red_and_never_grey() {
        let q = [1000.0; 7];
        // Column 0: every request errored (ICMP unreachable): no reply, no timeout.
        // Column 1: half the requests failed, a third of those with errors.
        // Column 2: replies timed in user space at one end, and a late send.
        let mut unreachable = col(0, 0, [0.0; 7]);
        unreachable.errors = 10;
        unreachable.sent = 10;
        let mut mixed = col(60, 40, q);
        mixed.errors = 20;
        mixed.sent = 120;
        let mut flagged = col(10, 0, q);
        flagged.flags = FLAG_USER_STAMP | zzping_lib::frame::FLAG_SEND_LATE;
        assert!(!unreachable.is_gap() && unreachable.is_outage());
        assert_eq!(unreachable.loss_ratio(), Some(1.0));
        assert_eq!(mixed.loss_ratio(), Some(0.5));
        let cols = [unreachable, mixed, flagged];
        let y = YScale {
            max_us: 2000.0,
            sf: 0.0,
        };
        let h = 100;
        let img = lane_pixels(&cols, &TimeView::new(0.0, 3e6), &y, 3, h);
        let rgb = |c: Color| {
            let c = c.into_rgba8();
            [c[0], c[1], c[2]]
        };
        // Every row of the unreachable column is the errors' red.
        for r in 0..h {
            assert_eq!(px(&img, 3, 0, r), rgb(ERROR_LOSS), "row {r}");
        }
        // The mixed column: the mark is half the plot (failed / sent), timeouts on top
        // (2/3 of it), errors below, then the bands.
        let plot_h = h as f32 - 2.0 * PAD;
        let mark = rows_of(&img, 3, 1, h, rgb(LOSS)) + rows_of(&img, 3, 1, h, rgb(ERROR_LOSS));
        assert!((mark as f32 - plot_h * 0.5).abs() <= 1.0, "{mark}");
        let lost_rows = rows_of(&img, 3, 1, h, rgb(LOSS)) as f32;
        assert!(
            (lost_rows - mark as f32 * 2.0 / 3.0).abs() <= 1.0,
            "{lost_rows}"
        );
        assert_eq!(px(&img, 3, 1, 0), rgb(LOSS));
        // The flagged column: the two marks at the bottom, nothing red.
        assert_eq!(px(&img, 3, 2, h - 1), rgb(USER_STAMP_MARK));
        assert_eq!(px(&img, 3, 2, h - FLAG_MARK_PX - 1), rgb(TIMING_MARK));
        assert_eq!(rows_of(&img, 3, 2, h, rgb(LOSS)), 0);
    }

    fn rows_of(img: &[u8], w: u32, x: u32, h: u32, c: [u8; 3]) -> u32 {
        (0..h).filter(|&r| px(img, w, x, r) == c).count() as u32
    }

    #[test]
    fn bands_keep_their_order_with_a_log_axis() {
        let q = [500.0, 900.0, 1200.0, 2000.0, 3000.0, 8000.0, 40_000.0];
        let cols = [col(100, 0, q)];
        let view = TimeView::new(0.0, 1e6);
        for sf in [0.0, 1.0, 10.0, 100.0] {
            let y = YScale {
                max_us: 50_000.0,
                sf,
            };
            let img = lane_pixels(&cols, &view, &y, 1, 300);
            let med: Vec<u32> = (0..300).filter(|&r| px(&img, 1, 0, r)[1] > 230).collect();
            let band: Vec<u32> = (0..300)
                .filter(|&r| {
                    let p = px(&img, 1, 0, r);
                    i32::from(p[2]) > i32::from(p[0]) + 40
                })
                .collect();
            let (top, bottom) = (band[0], *band.last().unwrap());
            let m = med[med.len() / 2];
            assert!(top < m && m < bottom, "sf {sf}: {top} {m} {bottom}");
        }
    }

    #[test]
    fn gaps_and_outages_fill_the_column() {
        let gap = ColumnStats::default();
        let out = col(0, 10, [0.0; 7]);
        let img = lane_pixels(
            &[gap, out],
            &TimeView::new(0.0, 2e6),
            &YScale {
                max_us: 1e4,
                sf: 0.0,
            },
            2,
            50,
        );
        for r in [0, 25, 49] {
            assert_eq!(px(&img, 2, 0, r), {
                let c = GAP.into_rgba8();
                [c[0], c[1], c[2]]
            });
            assert!(red(px(&img, 2, 1, r)));
        }
    }
}
