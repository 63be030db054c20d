//! Prefill: history older than the ring, read in bounded slices through a
//! [`super::HistorySource`] shared by every subscription.

use super::*;

impl LiveServer {
    /// Reads a bounded amount of history (for subscriptions that asked for more prefill
    /// than the ring holds) and queues it. Call it from the event loop whenever
    /// [`LiveServer::history_pending`] is true. One call costs at most
    /// [`LiveConfig::history_frames_per_pump`] frames (decoded or packaged), shared
    /// round-robin between the subscriptions at most
    /// [`LiveConfig::history_frames_per_turn`] at a time. Returns the datagrams made.
    pub fn pump_history(&mut self, now_us: u64, source: &mut dyn HistorySource) -> usize {
        self.clock.tick(now_us);
        let mut budget = self.cfg.history_frames_per_pump.max(1);
        // Every waiting subscription gets a turn in each call, an equal share: prefills
        // that started together stay together, within the history reader's window.
        let waiting = self
            .subs
            .iter()
            .filter(|s| {
                s.rtx.next_key() - s.sent_upto < HISTORY_LOW_WATER
                    && s.cursors.iter().any(|c| c.wanted && c.hist.is_some())
            })
            .count();
        let per_turn = (budget / (waiting + 1)).clamp(
            MIN_HISTORY_TURN,
            self.cfg.history_frames_per_turn.max(MIN_HISTORY_TURN),
        );
        let stage_limit = self.cfg.retransmit_bytes / 4;
        let n = self.subs.len();
        let first = self.hist_rr % n.max(1);
        self.hist_rr = self.hist_rr.wrapping_add(1);
        let mut made = 0;
        let mut progress = true;
        while budget > 0 && progress {
            progress = false;
            for k in 0..n {
                if budget == 0 {
                    break;
                }
                let s = &mut self.subs[(first + k) % n];
                if s.rtx.next_key() - s.sent_upto >= HISTORY_LOW_WATER {
                    continue;
                }
                let Some(slot) = s
                    .cursors
                    .iter()
                    .position(|c| c.wanted && !c.needs_meta && c.hist.is_some())
                else {
                    continue;
                };
                let Some(h) = self.hosts[slot].as_ref() else {
                    s.cursors[slot].hist = None;
                    continue;
                };
                let Some((from, to)) = s.cursors[slot].hist else {
                    continue;
                };
                let sc = &mut self.sc;
                sc.hist_bytes.clear();
                sc.hist_idx.clear();
                let mut last_end = from;
                let mut taken = 0usize;
                let code_limit = h.quant.code_count();
                let period = u64::from(h.meta.period_us.max(1));
                let before = budget;
                let read = source.read_frames(
                    h.index,
                    from,
                    to.min(u64::MAX / 2),
                    &mut budget,
                    &mut |q| {
                        if taken >= per_turn || sc.hist_bytes.len() > stage_limit {
                            return false;
                        }
                        if q.start_us < last_end {
                            return true;
                        }
                        taken += 1;
                        last_end = q.start_us + period;
                        if q.codes.is_sorted() && q.codes.last().is_none_or(|&c| c < code_limit) {
                            let off = sc.hist_bytes.len();
                            FrameEncoder::new(q.start_us).encode(q, &mut sc.hist_bytes);
                            sc.hist_idx
                                .push((q.start_us, off, sc.hist_bytes.len() - off));
                        } else {
                            self.stats.frames_dropped += 1;
                        }
                        true
                    },
                );
                budget = budget.saturating_sub(taken);
                progress |= budget < before || taken > 0;
                self.stats.history_frames += sc.hist_idx.len() as u64;
                let done = read == HistoryRead::Done || last_end >= to;
                s.cursors[slot].hist = if done {
                    progress = true;
                    s.backlog = true;
                    None
                } else {
                    Some((last_end, to))
                };
                // Package the staged frames.
                let mut i = 0;
                while i < sc.hist_idx.len() {
                    let seq = s.rtx.next_key();
                    begin_frames(&mut sc.buf, s.token, seq);
                    let (start, _, _) = sc.hist_idx[i];
                    let g = begin_group(&mut sc.buf, h.index, None, start);
                    sc.enc.reset(start);
                    let mut nframes = 0;
                    while i < sc.hist_idx.len() {
                        let (st, off, len) = sc.hist_idx[i];
                        let bytes = &sc.hist_bytes[off..off + len];
                        match add_frame(
                            &mut sc.buf,
                            &mut sc.enc,
                            &mut sc.q,
                            st,
                            bytes,
                            h.meta.period_us,
                            nframes == 0,
                            self.cfg.max_datagram,
                        ) {
                            Add::Added => {
                                nframes += 1;
                                i += 1;
                            }
                            Add::Full => break,
                            Add::Skip => {
                                self.stats.frames_dropped += 1;
                                i += 1;
                                break;
                            }
                        }
                    }
                    if nframes > 0 {
                        end_group(&mut sc.buf, g);
                        finish_frames(&mut sc.buf, 1);
                        s.rtx.push(0, &sc.buf);
                        made += 1;
                    }
                }
            }
        }
        made
    }

    /// True when some subscription still has history to read (call
    /// [`LiveServer::pump_history`]).
    pub fn history_pending(&self) -> bool {
        self.subs.iter().any(|s| {
            s.rtx.next_key() - s.sent_upto < HISTORY_LOW_WATER
                && s.cursors.iter().any(|c| c.wanted && c.hist.is_some())
        })
    }
}
