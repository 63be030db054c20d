//! The sequenced datagrams: frames (header, host groups and frames) and context events,
//! as docs/live-protocol.md describes them.

use super::*;

pub(super) fn begin_frames(buf: &mut Vec<u8>, token: u64, seq: u64) {
    buf.clear();
    wire::w_head(buf, 5, wire::T_FRAMES);
    wire::w_uint(buf, token);
    wire::w_uint(buf, seq);
    buf.extend_from_slice(&[0xdc, 0, 0]);
}

/// Starts an `EVENTS` datagram: `[VERSION, T_EVENTS, token, seq, events]`, `events` an
/// array16 whose count [`finish_frames`] patches.
pub(super) fn begin_events(buf: &mut Vec<u8>, token: u64, seq: u64) {
    buf.clear();
    wire::w_head(buf, 5, wire::T_EVENTS);
    wire::w_uint(buf, token);
    wire::w_uint(buf, seq);
    buf.extend_from_slice(&[0xdc, 0, 0]);
}

/// Patches the group (or event) count (the array16 right after the header).
pub(super) fn finish_frames(buf: &mut [u8], groups: u16) {
    // The array16 marker is the last 0xdc written by begin_frames: find it after the
    // header (version, type, token, seq are positive ints).
    let mut r = Rd::new(buf);
    let ok = r.array_len().is_ok() && (0..4).all(|_| r.u64().is_ok());
    let at = r.pos();
    if ok && buf.get(at) == Some(&0xdc) && buf.len() >= at + 3 {
        buf[at + 1..at + 3].copy_from_slice(&groups.to_be_bytes());
    }
}

/// Starts a group; returns the offset of its bin16 header.
pub(super) fn begin_group(
    buf: &mut Vec<u8>,
    host: u32,
    first_no: Option<u64>,
    base_us: u64,
) -> usize {
    buf.push(0x94);
    wire::w_uint(buf, u64::from(host));
    match first_no {
        Some(n) => wire::w_uint(buf, n),
        None => wire::w_nil(buf),
    }
    wire::w_uint(buf, base_us);
    let at = buf.len();
    buf.extend_from_slice(&[0xc5, 0, 0]);
    at
}

pub(super) fn end_group(buf: &mut [u8], bin_at: usize) {
    let len = (buf.len() - bin_at - 3) as u16;
    buf[bin_at + 1..bin_at + 3].copy_from_slice(&len.to_be_bytes());
}

pub(super) enum Add {
    Added,
    Full,
    Skip,
}

/// Re-encodes one standalone-encoded frame into the current group's chain.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_frame(
    buf: &mut Vec<u8>,
    enc: &mut FrameEncoder,
    q: &mut QFrame,
    start_us: u64,
    standalone: &[u8],
    period_us: u32,
    first: bool,
    max_datagram: usize,
) -> Add {
    if FrameDecoder::new(start_us, period_us, u32::MAX)
        .decode(standalone, q)
        .is_err()
    {
        return Add::Skip;
    }
    let before = buf.len();
    let saved = enc.clone();
    enc.encode(q, buf);
    if buf.len() <= max_datagram || (first && buf.len() <= HARD_MAX_DATAGRAM) {
        return Add::Added;
    }
    buf.truncate(before);
    *enc = saved;
    if first { Add::Skip } else { Add::Full }
}

/// Builds the next sequenced datagram of `s` (if any is due) into its retransmit ring.
pub(super) fn produce(
    s: &mut Sub,
    hosts: &[Option<HostSlot>],
    events: &ByteRing,
    sc: &mut Scratch,
    cfg: &LiveConfig,
    now: u64,
    stats: &mut LiveStats,
) {
    let seq = s.rtx.next_key();
    // Host removals first, then metadata, then frames.
    if let Some(index) = s.gone.pop_front() {
        sc.buf.clear();
        wire::w_head(&mut sc.buf, 5, wire::T_HOST_GONE);
        wire::w_uint(&mut sc.buf, s.token);
        wire::w_uint(&mut sc.buf, seq);
        wire::w_uint(&mut sc.buf, u64::from(index));
        s.rtx.push(now, &sc.buf);
        return;
    }
    if let Some(slot) = s.cursors.iter().position(|c| c.needs_meta) {
        s.cursors[slot].needs_meta = false;
        if let Some(Some(h)) = hosts.get(slot) {
            let m = &h.meta;
            sc.buf.clear();
            wire::w_head(&mut sc.buf, 10, wire::T_HOST);
            wire::w_uint(&mut sc.buf, s.token);
            wire::w_uint(&mut sc.buf, seq);
            wire::w_uint(&mut sc.buf, u64::from(h.index));
            wire::w_str(&mut sc.buf, &m.label[..m.label.len().min(1024)]);
            let mut addr = [0u8; 64];
            let a = fmt_addr(&m.address, &mut addr);
            wire::w_str(&mut sc.buf, a);
            match &m.name {
                Some(n) => wire::w_str(&mut sc.buf, &n[..n.len().min(1024)]),
                None => wire::w_nil(&mut sc.buf),
            }
            wire::w_uint(&mut sc.buf, u64::from(m.period_us));
            wire::w_f64(&mut sc.buf, m.precision);
            s.rtx.push(now, &sc.buf);
        }
        return;
    }
    // Context events (rare, and what a viewer most needs to explain what it sees) go
    // before frames, without batching: as many as fit in one datagram.
    if s.ev_next < events.next_key() {
        s.ev_next = s.ev_next.max(events.first_key());
        begin_events(&mut sc.buf, s.token, seq);
        let mut n = 0u16;
        while s.ev_next < events.next_key() && n < u16::MAX {
            let Some((_, map)) = events.get(s.ev_next) else {
                break;
            };
            if n > 0 && sc.buf.len() + map.len() > cfg.max_datagram {
                break;
            }
            sc.buf.extend_from_slice(map);
            n += 1;
            s.ev_next += 1;
        }
        if n > 0 {
            finish_frames(&mut sc.buf, n);
            s.rtx.push(now, &sc.buf);
            return;
        }
    }
    let due = s.backlog
        || s.pending_bytes >= cfg.max_datagram * 3 / 4
        || s.pending_since.is_some_and(|p| p + cfg.batch_us <= now);
    if !due {
        return;
    }
    begin_frames(&mut sc.buf, s.token, seq);
    let nh = hosts.len();
    let mut groups = 0u16;
    'hosts: for k in 0..nh {
        let slot = (s.rr + k) % nh;
        let Some(h) = &hosts[slot] else { continue };
        let c = &mut s.cursors[slot];
        if !c.wanted || c.needs_meta || c.hist.is_some() {
            continue;
        }
        if c.next_no < h.ring.first_key() {
            c.next_no = h.ring.first_key();
        }
        if c.next_no >= h.ring.next_key() {
            continue;
        }
        if groups > 0 && sc.buf.len() + 40 > cfg.max_datagram {
            break;
        }
        let Some((base, _)) = h.ring.get(c.next_no) else {
            continue;
        };
        let g_at = sc.buf.len();
        let bin_at = begin_group(&mut sc.buf, h.index, Some(c.next_no), base);
        sc.enc.reset(base);
        let mut nframes = 0;
        let mut full = false;
        while c.next_no < h.ring.next_key() {
            let Some((st, bytes)) = h.ring.get(c.next_no) else {
                break;
            };
            match add_frame(
                &mut sc.buf,
                &mut sc.enc,
                &mut sc.q,
                st,
                bytes,
                h.meta.period_us,
                groups == 0 && nframes == 0,
                cfg.max_datagram,
            ) {
                Add::Added => {
                    nframes += 1;
                    c.next_no += 1;
                }
                Add::Full => {
                    full = true;
                    break;
                }
                Add::Skip => {
                    stats.frames_dropped += 1;
                    c.next_no += 1;
                    sc.buf.truncate(g_at);
                    continue 'hosts;
                }
            }
        }
        if nframes == 0 {
            sc.buf.truncate(g_at);
        } else {
            end_group(&mut sc.buf, bin_at);
            groups += 1;
        }
        if full {
            break;
        }
    }
    s.rr = (s.rr + 1) % nh.max(1);
    if groups == 0 {
        s.backlog = false;
        s.pending_since = None;
        s.pending_bytes = 0;
        return;
    }
    finish_frames(&mut sc.buf, groups);
    s.rtx.push(now, &sc.buf);
    // Still behind? Keep sending without waiting for the batch timer.
    let behind = s.cursors.iter().zip(hosts).any(|(c, h)| {
        h.as_ref()
            .is_some_and(|h| c.wanted && c.hist.is_none() && c.next_no < h.ring.next_key())
    });
    if behind {
        s.backlog = true;
    } else {
        s.backlog = false;
        s.pending_since = None;
        s.pending_bytes = 0;
    }
}

/// Formats an address without allocating.
pub(super) fn fmt_addr<'a>(a: &std::net::IpAddr, buf: &'a mut [u8; 64]) -> &'a str {
    use std::io::Write;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(c, "{a}");
    let n = c.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}
