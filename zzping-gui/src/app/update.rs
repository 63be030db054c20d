//! `update`: what each message does to the application, and the subscriptions it keeps.

use iced::{Subscription, Task, window};

use super::*;

impl App {
    /// Handles a message; the tasks returned include the background reads it caused.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        let user = matches!(
            message,
            Message::Range(_)
                | Message::GoTo
                | Message::ToggleLane(_)
                | Message::MoveLane(..)
                | Message::Reset
                | Message::Home
                | Message::End
                | Message::ZoomTo(..)
                | Message::SetMode(_)
        );
        let task = self.handle(message);
        if user {
            tracing::info!("{}", self.state_line());
        }
        if self.requests.is_empty() {
            task
        } else {
            Task::batch([task, self.start_reads()])
        }
    }

    fn handle(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Zoom { anchor, factor } => {
                self.view_mut().zoom(anchor, factor);
                self.recompute();
            }
            Message::Pan(f) => {
                self.view_mut().pan(f);
                self.recompute();
            }
            Message::ZoomTo(a, b) => {
                self.view_mut().zoom_to(a, b);
                self.recompute();
            }
            Message::Reset => {
                match self.mode {
                    Mode::Offline => {
                        self.offline_pristine = true;
                        self.reset_offline();
                    }
                    Mode::Live => {
                        self.follow = true;
                        self.live_fit = true;
                    }
                }
                self.y_zoom = 1.0;
                self.recompute();
            }
            Message::Home | Message::End => {
                let end = matches!(message, Message::End);
                if end && self.mode == Mode::Live {
                    self.follow = true;
                } else if let Some((a, b)) = self.extent() {
                    let v = self.view_mut();
                    let span = v.span_us();
                    *v = if end {
                        TimeView::new(b as f64 - span, b as f64)
                    } else {
                        TimeView::new(a as f64, a as f64 + span)
                    };
                }
                self.recompute();
            }
            Message::Hover(h) => {
                self.hover = h;
                self.log_hovered_events();
            }
            Message::PlotWidth(w) => {
                if w.is_finite() && w >= 1.0 {
                    self.plot_width = w;
                    self.recompute();
                }
            }
            Message::YZoom(f) => {
                if f.is_finite() && f > 0.0 {
                    self.y_zoom = (self.y_zoom * f).clamp(1e-3, 1e3);
                    self.rescale();
                }
            }
            Message::YAuto => {
                self.y_zoom = 1.0;
                self.rescale();
            }
            Message::ScaleFactor(sf) => {
                if sf.is_finite() {
                    self.sf = sf.clamp(0.0, 1000.0);
                    self.rescale();
                }
            }
            Message::PathChanged(p) => {
                self.path_input = p;
            }
            Message::OpenPath => {
                self.initial_range = None;
                let p = PathBuf::from(self.path_input.trim());
                return self.open(&[p]);
            }
            Message::DayLoaded {
                generation,
                lane,
                day,
                state,
            } => {
                if generation != self.generation {
                    return Task::none();
                }
                if let Some(s) = self.offline.get_mut(lane) {
                    s.lane.set_day(day, state);
                }
                self.sync_history(Some(lane));
                self.loading.0 += 1;
                self.collect_issues();
                if self.offline_pristine {
                    self.reset_offline();
                }
                self.recompute();
            }
            Message::LimitsJudged { generation, limits } => {
                if generation != self.generation {
                    return Task::none();
                }
                self.set_limits(limits);
                self.loading.0 += 1;
                if self.mode == Mode::Offline {
                    self.recompute();
                }
            }
            Message::Opened {
                generation,
                hosts,
                errors,
                events,
            } => {
                if generation != self.generation {
                    return Task::none();
                }
                self.opening = false;
                return self.opened(hosts, errors, events);
            }
            Message::FineLoaded { lane, key, data } => {
                let Some(s) = self.lane_mut(lane) else {
                    return Task::none();
                };
                let data = Arc::try_unwrap(data).unwrap_or_else(|d| (*d).clone());
                s.lane.set_fine(key, data);
                self.collect_issues();
                if lane.mode == self.mode {
                    self.recompute();
                }
            }
            Message::SetMode(m) => {
                self.mode = m;
                self.hover = None;
                self.recompute();
            }
            Message::Live(u) => self.live_update(u),
            Message::DismissErrors => self.errors.clear(),
            Message::Frame if self.capturing.is_some() => {
                let n = self.capturing.map_or(0, |n| n.saturating_add(1));
                self.capturing = Some(n);
                // As for the first picture (see `drawn`): the second frame event comes
                // after the picture to share was drawn.
                if n == 2 {
                    return window::latest()
                        .and_then(window::screenshot)
                        .map(Message::Screenshot);
                }
                // No picture came back (no window answered): back to the window.
                if n >= CAPTURE_GIVE_UP_FRAMES {
                    self.capturing = None;
                    self.errors
                        .push("Save PNG: the window gave no picture; nothing saved".into());
                }
            }
            Message::Frame => {
                if self.data_ready() {
                    self.frames_since_loaded = self.frames_since_loaded.saturating_add(1);
                    // The first frame event after loading is followed by the first draw
                    // of the loaded state; when the second comes, that draw is done.
                    if self.frames_since_loaded == 2 {
                        tracing::info!("{}", self.drawn_line());
                        if self.screenshot.is_some() {
                            return Task::done(Message::TakeScreenshot);
                        }
                    }
                }
            }
            Message::TakeScreenshot => {
                // If no window answers, quit anyway rather than hang a script.
                return Task::batch([
                    window::latest()
                        .and_then(window::screenshot)
                        .map(Message::Screenshot),
                    sleep(10_000).map(|()| Message::Exit),
                ]);
            }
            Message::Screenshot(shot) if self.capturing.is_some() => {
                self.capturing = None;
                let path = self.save_path();
                match write_png(&path, &shot) {
                    Ok(()) => {
                        tracing::info!(
                            "picture saved to {}; {}x{} px, scale {}; {}",
                            path.display(),
                            shot.size.width,
                            shot.size.height,
                            shot.scale_factor,
                            self.layout_line()
                        );
                        self.saved = Some(format!("saved {}", path.display()));
                    }
                    Err(e) => self.errors.push(format!("saving {}: {e}", path.display())),
                }
            }
            Message::Screenshot(shot) => {
                if let Some(path) = &self.screenshot {
                    match write_png(path, &shot) {
                        Ok(()) => tracing::info!("screenshot written to {}", path.display()),
                        Err(e) => tracing::error!("screenshot {}: {e}", path.display()),
                    }
                }
                return iced::exit();
            }
            Message::Range(span) => {
                let now = zzping_lib::file::wall_clock_us() as f64;
                match (self.mode, span) {
                    (Mode::Offline, None) => {
                        self.offline_pristine = true;
                        self.reset_offline();
                    }
                    (Mode::Offline, Some(span)) => {
                        if let Some((_, b)) = self.extent() {
                            self.offline_view = TimeView::new(b as f64 - span, b as f64);
                            self.offline_pristine = false;
                        }
                    }
                    (Mode::Live, span) => {
                        let span = span.unwrap_or_else(|| {
                            self.extent().map_or(self.live_span_us, |(a, _)| {
                                (now - a as f64).max(MIN_FIT_SPAN_US)
                            })
                        });
                        self.follow = true;
                        self.live_fit = false;
                        self.live_view = TimeView::new(now - span, now);
                    }
                }
                self.recompute();
            }
            Message::GoToChanged(t) => {
                self.goto_input = t;
            }
            Message::GoTo => {
                let text = self.goto_input.trim().to_string();
                let now = zzping_lib::file::wall_clock_us();
                match zzping_lib::time::parse_time_arg(&text, now, &jiff::tz::TimeZone::system()) {
                    Ok(t) => {
                        let v = self.view_mut();
                        let span = v.span_us();
                        *v = TimeView::new(t as f64, t as f64 + span);
                        self.recompute();
                    }
                    Err(e) => {
                        let msg = format!("go to {text:?}: {e}");
                        if !self.errors.contains(&msg) {
                            self.errors.push(msg);
                        }
                    }
                }
            }
            Message::ToggleLane(i) => {
                let lanes = match self.mode {
                    Mode::Offline => &mut self.offline,
                    Mode::Live => &mut self.live,
                };
                if let Some(s) = lanes.get_mut(i) {
                    s.hidden = !s.hidden;
                    self.hover = None;
                    self.recompute();
                }
            }
            Message::MoveLane(i, dir) => {
                let shown: Vec<usize> = self
                    .ordered()
                    .into_iter()
                    .filter(|(_, s)| !s.hidden)
                    .map(|(k, _)| k)
                    .collect();
                let lanes = match self.mode {
                    Mode::Offline => &mut self.offline,
                    Mode::Live => &mut self.live,
                };
                if let Some(p) = shown.iter().position(|&k| k == i)
                    && let Some(&other) = shown.get(p.wrapping_add_signed(dir as isize))
                {
                    let (a, b) = (lanes[i].rank, lanes[other].rank);
                    lanes[i].rank = b;
                    lanes[other].rank = a;
                }
            }
            Message::SavePng => {
                self.hover = None;
                self.capturing = Some(0);
            }
            Message::Exit => {
                if self.screenshot.is_some() && self.generation > 0 && !self.drawn() {
                    tracing::error!(
                        "--exit-after-ms {} passed before the data was loaded and drawn \
                         ({}/{} loading steps): no screenshot",
                        self.exit_after_ms.unwrap_or(2000),
                        self.loading.0,
                        self.loading.1
                    );
                    std::process::exit(2);
                }
                return iced::exit();
            }
        }
        Task::none()
    }

    /// Live subscriptions (one per daemon).
    pub fn subscription(&self) -> Subscription<Message> {
        let frames = if (self.data_ready() && !self.drawn()) || self.capturing.is_some() {
            window::frames().map(|_| Message::Frame)
        } else {
            Subscription::none()
        };
        let keys: Vec<DaemonKey> = self
            .daemons
            .iter()
            .enumerate()
            .map(|(index, d)| DaemonKey {
                index,
                target: d.target.clone(),
                prefill_s: self.prefill_s,
            })
            .collect();
        let typed = iced::event::listen_with(key_message);
        if keys.is_empty() {
            return Subscription::batch([frames, typed]);
        }
        Subscription::batch([
            frames,
            typed,
            crate::live::subscription(keys).map(Message::Live),
        ])
    }
}

/// The timeline's message for a key pressed in the window (see
/// [`crate::canvas::key_gesture`]), unless a widget captured it: keys typed into a text
/// field are the field's.
pub fn key_message(
    event: iced::Event,
    status: iced::event::Status,
    _window: window::Id,
) -> Option<Message> {
    match (event, status) {
        (
            iced::Event::Keyboard(iced::keyboard::Event::KeyPressed { key, .. }),
            iced::event::Status::Ignored,
        ) => crate::canvas::key_gesture(&key).map(Message::from),
        _ => None,
    }
}
