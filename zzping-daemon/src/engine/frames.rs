//! A frame's life: opened for a period's sends, rotated at period boundaries, outcomes
//! attributed to the frame the request was sent in, emitted once final (closed, nothing
//! outstanding); requests expire into losses once the receive frontier passed their
//! deadline.

use zzping_lib::frame::{FLAG_CLOCK_STEP, Frame, period_start};

use super::seq::{SeqTable, State};
use super::{Engine, FrameOutput, HostId};
use crate::clock::Now;

/// A frame of a host that is not final yet.
#[derive(Debug)]
pub(super) struct OpenFrame {
    pub(super) serial: u64,
    pub(super) frame: Frame,
    /// Requests sent in it still without an outcome.
    pub(super) outstanding: u32,
    /// Closed for sends (its period ended, or the host is retiring).
    pub(super) closed: bool,
}

impl Engine {
    pub(super) fn new_frame(&mut self, start_us: u64) -> Frame {
        let mut f = match self.free_frames.pop() {
            Some(mut f) => {
                f.clear(start_us, self.cfg.period_us);
                f
            }
            None => Frame::new(start_us, self.cfg.period_us),
        };
        // Pre-size so late sends bunching into one period don't reallocate later.
        f.rtts_us.reserve(self.rtt_capacity);
        f
    }

    /// Open frames a host holds at most: the timeout's worth of periods plus the current
    /// one and some slack.
    pub(super) fn frames_per_host(&self) -> usize {
        let period_ns = u64::from(self.cfg.period_us.max(1)) * 1000;
        ((self.cfg.timeout_ns + self.cfg.grace_ns) / period_ns) as usize + 4
    }

    /// Returns the serial of the host's frame for a send at `real_us`, rotating the
    /// current frame if the send falls in another period.
    pub(super) fn frame_for_send(
        &mut self,
        id: HostId,
        real_us: u64,
        out: &mut dyn FrameOutput,
    ) -> u64 {
        let period = self.cfg.period_us;
        let start = period_start(real_us, period);
        let needs_rotation = match self.host(id).and_then(|h| h.frames.back()) {
            Some(f) => f.closed || f.frame.start_us != start || f.frame.period_us != period,
            None => true,
        };
        if needs_rotation {
            self.rotate(id, start, out);
        }
        self.host(id)
            .and_then(|h| h.frames.back())
            .map_or(0, |f| f.serial)
    }

    pub(super) fn rotate(&mut self, id: HostId, start_us: u64, out: &mut dyn FrameOutput) {
        let Some(h) = self.host(id) else { return };
        if h.retiring {
            return;
        }
        let frame = self.new_frame(start_us);
        let Some(h) = self.host_mut(id) else { return };
        let mut flags = 0;
        if let Some(cur) = h.frames.back_mut() {
            cur.closed = true;
            if start_us < cur.frame.start_us {
                // Wall clock went backwards.
                flags |= FLAG_CLOCK_STEP;
            }
        }
        let serial = h.next_serial;
        h.next_serial += 1;
        let mut of = OpenFrame {
            serial,
            frame,
            outstanding: 0,
            closed: false,
        };
        of.frame.flags |= flags;
        h.frames.push_back(of);
        self.try_finalize(id, out);
    }

    /// Emits the host's final frames (oldest first) and recycles them.
    pub(super) fn try_finalize(&mut self, id: HostId, out: &mut dyn FrameOutput) {
        let slot = id.slot as usize;
        loop {
            let Some(Some(h)) = self.hosts.get_mut(slot) else {
                return;
            };
            if h.generation != id.generation {
                return;
            }
            let final_ = matches!(h.frames.front(), Some(f) if f.closed && f.outstanding == 0);
            if !final_ {
                if h.retiring && h.frames.is_empty() {
                    out.host_retired(id, &h.label);
                    self.hosts[slot] = None;
                }
                return;
            }
            let Some(of) = h.frames.pop_front() else {
                return;
            };
            if !of.frame.is_empty() {
                h.status.add_frame(&of.frame);
                h.answered += u64::from(of.frame.received());
                out.frame(id, &h.label, &of.frame);
            }
            self.free_frames.push(of.frame);
        }
    }

    /// Deadline of the oldest request still in flight, monotonic ns.
    pub(super) fn first_in_flight_deadline(&self) -> Option<u64> {
        if self.unresolved == 0 {
            return None;
        }
        self.tables
            .iter()
            .filter_map(SeqTable::first_in_flight_deadline)
            .min()
    }

    /// Whether a request still in flight has passed its deadline at `now_mono_ns`: then
    /// the loop establishes the receive frontier before [`Engine::tick`] (which only
    /// declares a request lost once the frontier has passed its deadline).
    pub fn expiry_due(&self, now_mono_ns: u64) -> bool {
        self.first_in_flight_deadline()
            .is_some_and(|d| d <= now_mono_ns)
    }

    /// Rotates current frames at period boundaries and expires timed-out requests.
    /// Call every loop iteration (after draining replies).
    ///
    /// `received_through_ns` is the receive frontier (monotonic): every reply the kernel
    /// stamped before it has been handed to [`Engine::on_reply`] already. A request still
    /// in flight is declared lost only when its deadline is behind the frontier: a reply
    /// stamped in time can no longer come, however late the receive thread ran. Requests
    /// already answered are swept by the clock alone.
    pub fn tick(&mut self, now: Now, received_through_ns: u64, out: &mut dyn FrameOutput) {
        // Expire.
        for fi in 0..2 {
            loop {
                let t = &mut self.tables[fi];
                if t.live() == 0 {
                    break;
                }
                let slot = t.idx(t.oldest);
                let e = t.entries[slot];
                let limit = if e.state == State::InFlight {
                    received_through_ns.min(now.mono_ns)
                } else {
                    now.mono_ns
                };
                if e.deadline_ns > limit {
                    break;
                }
                t.oldest = t.oldest.wrapping_add(1);
                let lost = e.state == State::InFlight;
                t.entries[slot].state = State::Expired { lost };
                if lost {
                    self.unresolved = self.unresolved.saturating_sub(1);
                    self.stats.lost += 1;
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.lost = of.frame.lost.saturating_add(1);
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                    self.try_finalize(e.host, out);
                }
            }
            self.tables[fi].advance_scan();
        }
        // Rotate, by the latest wall clock seen: a send of this wakeup may have read a
        // later one than `now` (and rotated its host's frame by it already).
        let now_us = now.real_us().max(std::mem::take(&mut self.sent_real_us));
        if self.next_boundary_us != 0 && now_us >= self.next_boundary_us {
            let period = self.cfg.period_us;
            let start = period_start(now_us, period);
            for slot in 0..self.hosts.len() {
                let Some(h) = &self.hosts[slot] else { continue };
                let id = HostId {
                    slot: slot as u32,
                    generation: h.generation,
                };
                let needs = match h.frames.back() {
                    Some(f) => !h.retiring && (f.frame.start_us != start || f.closed),
                    None => false,
                };
                if needs {
                    self.rotate(id, start, out);
                }
            }
            self.next_boundary_us = start + u64::from(period);
        }
    }

    /// Runs `f` on the host's frame with `serial` if open, else on its oldest open frame.
    /// Returns false when the host has no open frame.
    pub(super) fn with_frame(
        &mut self,
        id: HostId,
        serial: u64,
        f: impl FnOnce(&mut OpenFrame),
    ) -> bool {
        let Some(h) = self.host_mut(id) else {
            return false;
        };
        let Some(front) = h.frames.front() else {
            return false;
        };
        let idx = serial.wrapping_sub(front.serial);
        let idx = if idx < h.frames.len() as u64 {
            idx as usize
        } else {
            0
        };
        match h.frames.get_mut(idx) {
            Some(of) => {
                f(of);
                true
            }
            None => false,
        }
    }

    /// Closes every frame and declares every request in flight lost, emitting all frames
    /// (clean shutdown after the timeout could not be waited for).
    pub fn finish(&mut self, out: &mut dyn FrameOutput) {
        for fi in 0..2 {
            while self.tables[fi].live() > 0 {
                let t = &mut self.tables[fi];
                let seq = t.idx(t.oldest);
                t.oldest = t.oldest.wrapping_add(1);
                let e = t.entries[seq];
                if e.state == State::InFlight {
                    t.entries[seq].state = State::Expired { lost: true };
                    self.unresolved = self.unresolved.saturating_sub(1);
                    self.stats.lost += 1;
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.lost = of.frame.lost.saturating_add(1);
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                } else {
                    t.entries[seq].state = State::Expired { lost: false };
                }
            }
        }
        for slot in 0..self.hosts.len() {
            let Some(h) = &mut self.hosts[slot] else {
                continue;
            };
            for f in h.frames.iter_mut() {
                f.closed = true;
                f.outstanding = 0;
            }
            let id = HostId {
                slot: slot as u32,
                generation: h.generation,
            };
            self.try_finalize(id, out);
        }
    }
}
