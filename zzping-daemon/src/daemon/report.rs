//! What the daemon tells people: the `--status` table, the periodic and exit log lines,
//! and the run's totals ([`RunReport`]).

use std::io::Write;

use crate::engine::Engine;

/// What a run did (returned for tests and logged at exit).
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Requests sent.
    pub sent: u64,
    /// Replies received in time.
    pub received: u64,
    /// Frames written.
    pub frames: u64,
    /// Process CPU time, ns.
    pub cpu_ns: u64,
    /// Send lateness, 99th percentile upper bound, µs.
    pub late_p99_us: u64,
    /// Requests whose send time is the kernel's transmit stamp.
    pub tx_stamped: u64,
    /// The run ended because its `--duration` was reached, not by a signal.
    pub finite: bool,
    /// Hosts that never got a reply in time.
    pub never_answered: Vec<String>,
    /// Targets whose name never resolved.
    pub unresolved: Vec<String>,
    /// Targets configured.
    pub targets: usize,
}

impl RunReport {
    /// The exit status of a finite run, like fping's: 0 when every host answered at
    /// least once, 1 when some host never did (or its name never resolved), 2 when no
    /// target's name resolved. A run stopped by a signal (a service) exits 0.
    pub fn exit_code(&self) -> u8 {
        if !self.finite {
            0
        } else if self.targets > 0 && self.unresolved.len() == self.targets {
            2
        } else if !self.never_answered.is_empty() || !self.unresolved.is_empty() {
            1
        } else {
            0
        }
    }
}

/// How recording went, for the log lines and the status table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recording {
    /// Failed writes and flushes of frame files.
    pub write_errors: u64,
    /// Final frames that will never be in the files.
    pub unrecorded_frames: u64,
}

/// The status table's line about recording, once it has failed: whether it fails now and
/// how many frames wait, the errors and the frames lost since start. `None` while it has
/// never failed.
pub fn recording_line(r: Recording, failing: bool, waiting: u64) -> Option<String> {
    if r.write_errors == 0 && r.unrecorded_frames == 0 {
        return None;
    }
    let now = if failing {
        format!("FAILING, {waiting} frames waiting")
    } else {
        "ok".to_owned()
    };
    Some(format!(
        "recording: {now}; since start {} write errors, {} frames unrecorded",
        r.write_errors, r.unrecorded_frames
    ))
}

/// Writes the status table (one line per host, totals since the previous call), then
/// `footer` if any. On a TTY it first moves the cursor up over the previous table
/// (`prev_lines` lines) and clears each line, so the table refreshes in place. Returns
/// the lines written.
pub fn write_status(
    engine: &mut Engine,
    out: &mut impl Write,
    tty: bool,
    prev_lines: usize,
    footer: Option<&str>,
) -> usize {
    if tty && prev_lines > 0 {
        let _ = write!(out, "\x1b[{prev_lines}A");
    }
    let clear = if tty { "\x1b[2K" } else { "" };
    let h = *engine.lateness();
    let _ = writeln!(
        out,
        "{clear}{:<24} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}  {:<16}   send late p50<{}µs p99<{}µs max {}µs",
        "host",
        "sent",
        "recv",
        "loss%",
        "lost",
        "errors",
        "rtt min",
        "avg",
        "max",
        "why",
        h.quantile_us(0.5),
        h.quantile_us(0.99),
        h.max_ns / 1000
    );
    let mut lines = 1;
    engine.drain_status(|label, _addr, s| {
        // Loss: every failed request, timeouts and errors alike.
        let outcome = s.received + s.lost + s.errors;
        let loss = if outcome > 0 {
            100.0 * (s.lost + s.errors) as f64 / outcome as f64
        } else {
            0.0
        };
        let why = s.error_kinds.dominant().map_or("", |(k, _)| k.name());
        let (min, avg, max) = if s.received > 0 {
            (
                f64::from(s.rtt_min_us) / 1000.0,
                s.rtt_sum_us as f64 / s.received as f64 / 1000.0,
                f64::from(s.rtt_max_us) / 1000.0,
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        let _ = writeln!(
            out,
            "{clear}{label:<24} {:>7} {:>7} {loss:>6.2} {:>6} {:>6} {min:>7.3}ms {avg:>7.3}ms {max:>7.3}ms  {why:<16}",
            s.sent, s.received, s.lost, s.errors
        );
        lines += 1;
    });
    if let Some(f) = footer {
        let _ = writeln!(out, "{clear}{f}");
        lines += 1;
    }
    if tty && lines < prev_lines {
        // Hosts were removed: blank the leftover lines of the previous table.
        for _ in lines..prev_lines {
            let _ = writeln!(out, "{clear}");
        }
        lines = prev_lines;
    }
    let _ = out.flush();
    lines
}

/// One-line totals since start (for the periodic and the exit log lines).
pub(super) fn summary(
    engine: &Engine,
    frames: u64,
    rec: Recording,
    cpu_ns: u64,
    queue_drops: u64,
) -> String {
    let st = engine.stats();
    let h = engine.lateness();
    let w = engine.rx_wait();
    let failed = st.lost + st.errors;
    let outcomes = st.received + failed;
    let mut kinds = String::new();
    for (k, n) in st.errors_by_kind.iter() {
        use std::fmt::Write as _;
        let _ = write!(
            kinds,
            "{}{} {n}",
            if kinds.is_empty() { " (" } else { ", " },
            k.name()
        );
    }
    if !kinds.is_empty() {
        kinds.push(')');
    }
    format!(
        "{} sent, {} received, {} lost, {} errors{kinds}, loss {:.2} %, {} unmatched, {} frames, \
         {} write errors, {} frames unrecorded; \
         CPU {:.1} ms ({:.2} ms per 1000 pings); send lateness p50<{}µs p99<{}µs max {}µs; \
         clock steps {}, stalls {} ({:.1} s), RTTs clamped {} low / {} high, sends skipped {}, \
         queue drops {}; \
         kernel send stamps {} ({} unmatched); RTTs timed by the kernel {}, in user space {} \
         (send {}, receive {}; receive stamps inside recvmsg {}); batched {}, socket wait \
         p50<{}µs p99<{}µs max {}µs",
        st.sent,
        st.received,
        st.lost,
        st.errors,
        if outcomes > 0 {
            100.0 * failed as f64 / outcomes as f64
        } else {
            0.0
        },
        st.unmatched,
        frames,
        rec.write_errors,
        rec.unrecorded_frames,
        cpu_ns as f64 / 1e6,
        if st.sent > 0 {
            cpu_ns as f64 / 1e6 / st.sent as f64 * 1000.0
        } else {
            0.0
        },
        h.quantile_us(0.5),
        h.quantile_us(0.99),
        h.max_ns / 1000,
        st.clock_steps,
        st.stalls,
        st.stalled_ns as f64 / 1e9,
        st.rtt_clamped_low,
        st.rtt_clamped_high,
        st.skipped_sends,
        queue_drops,
        st.tx_stamped,
        st.tx_unmatched,
        st.rtt_kernel,
        st.received.saturating_sub(st.rtt_kernel),
        st.rtt_user_send,
        st.rtt_user_receive,
        st.rx_in_call,
        st.rtt_batched,
        w.quantile_us(0.5),
        w.quantile_us(0.99),
        w.max_ns / 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Now;
    use crate::engine::{EngineConfig, FrameOutput, HostId, Probe, Reply, RxStamp};
    use crate::icmp::{Family, Message};
    use zzping_lib::frame::Frame;

    struct Nothing;
    impl FrameOutput for Nothing {
        fn frame(&mut self, _: HostId, _: &str, _: &Frame) {}
    }

    #[test]
    fn status_table_lists_hosts_and_refreshes_in_place_on_a_tty() {
        let mut e = Engine::new(EngineConfig::default());
        e.set_ident(Family::V4, 9);
        let t0 = Now {
            mono_ns: 1_000_000_000,
            real_ns: 1_767_225_600_000_000_000,
        };
        let later = |ms: u64| Now {
            mono_ns: t0.mono_ns + ms * 1_000_000,
            real_ns: t0.real_ns + ms * 1_000_000,
        };
        e.add_host("gw", "198.18.0.1".parse().unwrap(), 10.0, t0.mono_ns, t0);
        e.add_host("dead", "198.18.0.2".parse().unwrap(), 10.0, t0.mono_ns, t0);
        let mut out = Nothing;
        for ms in 0..1500 {
            let now = later(ms);
            while let Some(p) = e.poll_send(now) {
                let p: Probe = p;
                e.commit_send(&p, now, true, &mut out);
                if p.addr.to_string() == "198.18.0.1" {
                    let r = Reply {
                        family: Family::V4,
                        src: p.addr,
                        msg: Message::EchoReply {
                            ident: 9,
                            seq: p.seq,
                            token: Some(p.token),
                        },
                        kernel_real_ns: Some(later(ms + 2).real_ns),
                        rx_stamp: RxStamp::Kernel,
                        batched: false,
                        user: later(ms + 2),
                    };
                    e.on_reply(&r, &mut out);
                }
            }
            e.tick(now, now.mono_ns, &mut out);
        }
        let mut plain = Vec::new();
        let n = write_status(&mut e, &mut plain, false, 0, None);
        let text = String::from_utf8(plain).unwrap();
        assert_eq!(n, 3);
        assert!(!text.contains('\x1b'));
        let gw = text.lines().find(|l| l.starts_with("gw ")).unwrap();
        let dead = text.lines().find(|l| l.starts_with("dead ")).unwrap();
        assert!(gw.contains("0.00") && gw.contains("2.000ms"), "{gw}");
        assert!(dead.contains("100.00"), "{dead}");
        assert!(text.lines().next().unwrap().contains("why"), "{text}");
        // Totals were reset; on a TTY the table moves the cursor up over the old one.
        let mut tty = Vec::new();
        assert_eq!(write_status(&mut e, &mut tty, true, 5, None), 5);
        let text = String::from_utf8(tty).unwrap();
        assert!(text.starts_with("\x1b[5A\x1b[2K"), "{text:?}");
    }

    #[test]
    fn the_recording_line_appears_once_recording_failed_and_says_how_it_is_now() {
        let none = Recording::default();
        assert_eq!(recording_line(none, false, 0), None);
        let r = Recording {
            write_errors: 3,
            unrecorded_frames: 0,
        };
        assert_eq!(
            recording_line(r, true, 42).unwrap(),
            "recording: FAILING, 42 frames waiting; since start 3 write errors, 0 frames unrecorded"
        );
        assert_eq!(
            recording_line(r, false, 0).unwrap(),
            "recording: ok; since start 3 write errors, 0 frames unrecorded"
        );
    }
}
