//! What daemons' news does to the live lanes: a host appears (a lane, matched with its
//! days on disk), frames and gaps arrive, the connection state changes; context events
//! become marks with those of the opened files ([`crate::marks::merge`]).

use crate::app::{App, LaneSlot, Mode};
use crate::live::LiveUpdate;
use crate::model::{HostLabel, Lane, LiveData, Source};
use std::sync::Arc;
use zzping_lib::live::LiveEvent;
use zzping_lib::quantizer::Quantizer;

impl App {
    /// Applies a daemon thread's update.
    pub(crate) fn live_update(&mut self, u: LiveUpdate) {
        match u {
            LiveUpdate::Status {
                daemon,
                connected,
                detail,
            } => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = connected;
                    d.detail = detail;
                }
            }
            LiveUpdate::Events { daemon, events } => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = true;
                    d.detail.clear();
                }
                let mut new_marks = false;
                for ev in events {
                    new_marks |= self.apply_live_event(daemon, ev);
                }
                if new_marks {
                    self.refresh_marks();
                }
                if self.mode == Mode::Live {
                    self.recompute();
                }
            }
        }
    }

    /// Applies one live event (public for tests of the live data model).
    pub fn live_event(&mut self, daemon: usize, ev: LiveEvent) {
        if self.apply_live_event(daemon, ev) {
            self.refresh_marks();
        }
    }

    /// Applies one live event; true when it is a new context event (the marks are to be
    /// made again: once per batch, not per event).
    fn apply_live_event(&mut self, daemon: usize, ev: LiveEvent) -> bool {
        match ev {
            LiveEvent::Host { host, meta } => {
                let label = HostLabel::live(
                    meta.label.clone(),
                    meta.address.to_string(),
                    meta.name.clone(),
                );
                self.notifier.add_host(daemon, host, &meta);
                let q = Quantizer::new(meta.precision).ok().map(Arc::new);
                match self.live_index.get(&(daemon, host)) {
                    Some(&i) => {
                        let s = &mut self.live[i];
                        s.lane.host = label;
                        if s.lane.quantizer != q {
                            s.lane.quantizer = q;
                            s.lane.source = Source::Live(LiveData::default());
                        }
                    }
                    None => {
                        tracing::info!(
                            "live host {} ({}) from {}",
                            label.label,
                            meta.address,
                            self.daemons
                                .get(daemon)
                                .map_or("?", |d| d.target.addr.as_str())
                        );
                        let mut lane = Lane::new(label, Source::Live(LiveData::default()));
                        lane.quantizer = q;
                        self.live_index.insert((daemon, host), self.live.len());
                        self.live.push(LaneSlot::new(lane));
                        crate::app::rank_new(&mut self.live);
                    }
                }
                self.sync_history(None);
            }
            LiveEvent::Frame { host, frame } => {
                self.notifier
                    .on_frame(daemon, host, &frame, zzping_lib::file::wall_clock_us());
                if let Some(&i) = self.live_index.get(&(daemon, host)) {
                    let lane = &mut self.live[i].lane;
                    if let Source::Live(l) = &mut lane.source {
                        l.push(&frame, lane.quantizer.as_deref());
                    }
                }
            }
            LiveEvent::Gap { host, frames, .. } => {
                if let Some(&i) = self.live_index.get(&(daemon, host))
                    && let Source::Live(l) = &mut self.live[i].lane.source
                {
                    l.gap_frames += frames;
                }
            }
            LiveEvent::Subscribed | LiveEvent::Reconnected => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = true;
                }
            }
            LiveEvent::Refused => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = false;
                    d.detail = "refused by the daemon; retrying".into();
                }
            }
            LiveEvent::HostRemoved { host } => self.notifier.remove_host(daemon, host),
            LiveEvent::Context { event } => {
                // The stream delivers each event once per connection; a reconnection
                // to a restarted daemon may repeat them, and the files may hold them.
                if self.live_events.contains(&event) {
                    return false;
                }
                if self.live_events.len() >= crate::marks::MAX_LIVE_EVENTS {
                    self.live_events.remove(0);
                }
                self.live_events.push(event);
                return true;
            }
        }
        false
    }
}
