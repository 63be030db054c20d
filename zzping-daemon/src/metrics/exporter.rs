//! The values exported and their rendering in the text exposition format (no I/O).

use std::fmt::Write as _;
use std::net::IpAddr;

use zzping_lib::frame::{ErrorKind, Frame};

use crate::engine::{DelayHistogram, EngineStats, HostId, Reply};
use crate::icmp::Family;
use crate::sock::Kind;

/// Upper bounds of the RTT histogram's buckets, µs (plus `+Inf`).
pub const RTT_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// The same bounds as `le` label values, seconds.
pub const RTT_BUCKETS_LE: [&str; 16] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10",
];

/// Counters of one host, summed from its final frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Requests sent (including failed sends).
    pub sent: u64,
    /// First replies within the timeout.
    pub replies: u64,
    /// Requests lost.
    pub lost: u64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// Late replies.
    pub late: u64,
    /// Send failures and ICMP errors.
    pub errors: u64,
    /// Errors by kind (`ErrorKind` number).
    pub error_kinds: [u64; ErrorKind::COUNT],
    /// RTT histogram, non-cumulative; the last bucket is `+Inf`.
    pub rtt_buckets: [u64; RTT_BUCKETS_US.len() + 1],
    /// Sum of RTTs, µs.
    pub rtt_sum_us: u64,
}

impl HostCounters {
    /// Adds a final frame.
    pub fn add(&mut self, f: &Frame) {
        self.sent += u64::from(f.sent);
        self.replies += u64::from(f.received());
        self.lost += u64::from(f.lost);
        self.duplicates += u64::from(f.duplicates);
        self.late += u64::from(f.late);
        self.errors += u64::from(f.errors);
        for (k, n) in f.error_kinds.iter() {
            self.error_kinds[k as usize] += u64::from(n);
        }
        for &r in &f.rtts_us {
            let r = u64::from(r);
            let i = RTT_BUCKETS_US.partition_point(|&b| b < r);
            self.rtt_buckets[i] += 1;
            self.rtt_sum_us += r;
        }
    }
}

struct HostSeries {
    id: HostId,
    /// `host="..",address="..",family=".."`, escaped, rendered once.
    labels: String,
    counters: HostCounters,
}

/// Daemon-wide values sampled by the event loop when a scrape is answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    /// Engine counters.
    pub stats: EngineStats,
    /// Send lateness.
    pub lateness: DelayHistogram,
    /// How long kernel-stamped replies waited in the socket before they were read.
    pub rx_wait: DelayHistogram,
    /// Replies the receive queue dropped (full).
    pub queue_drops: u64,
    /// Frames handed to the outputs.
    pub frames: u64,
    /// Frame and events file write errors (failed writes and flushes).
    pub write_errors: u64,
    /// Final frames that will never be in the files (a full write backlog dropped).
    pub unrecorded_frames: u64,
    /// Recording fails now (the last write or flush failed).
    pub recording_failing: bool,
    /// Pinging has stopped and every frame is final: the counters will not change.
    pub stopped: bool,
    /// Process CPU time (user + system), ns.
    pub cpu_ns: u64,
}

/// The values exported, and their rendering (no I/O).
#[derive(Default)]
pub struct Exporter {
    hosts: Vec<Option<HostSeries>>,
    sockets: [Option<Kind>; 2],
    stamps_kernel: u64,
    stamps_user: u64,
    start_time_s: f64,
    /// HTTP counters: requests answered per status class.
    pub(super) http: HttpStats,
    /// The alert rules' counters.
    alerts: Option<std::sync::Arc<crate::alert::AlertStats>>,
}

/// Counters of the HTTP side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// `200` responses.
    pub ok: u64,
    /// `4xx` responses.
    pub client_errors: u64,
    /// Connections closed by the 5 s limit.
    pub timeouts: u64,
    /// Connections evicted or refused because all slots were taken.
    pub evicted: u64,
    /// Responses whose write had to wait for the socket (partial writes; not exported).
    pub write_waits: u64,
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl Exporter {
    /// An exporter with no hosts; `start_time_s` is the process start (epoch seconds).
    pub fn new(start_time_s: f64) -> Self {
        Exporter {
            start_time_s,
            ..Default::default()
        }
    }

    /// The alert rules' counters to export (replaced when the rules are).
    pub fn set_alert_stats(&mut self, stats: std::sync::Arc<crate::alert::AlertStats>) {
        self.alerts = Some(stats);
    }

    /// Declares a host, or updates its address (counters kept).
    pub fn set_host(&mut self, id: HostId, label: &str, address: IpAddr) {
        let slot = id.slot as usize;
        if self.hosts.len() <= slot {
            self.hosts.resize_with(slot + 1, || None);
        }
        let mut labels = String::with_capacity(label.len() + 64);
        labels.push_str("host=\"");
        escape_label(&mut labels, label);
        let _ = write!(
            labels,
            "\",address=\"{address}\",family=\"{}\"",
            family_name(Family::of(&address))
        );
        match &mut self.hosts[slot] {
            Some(h) if h.id == id => h.labels = labels,
            s => {
                *s = Some(HostSeries {
                    id,
                    labels,
                    counters: HostCounters::default(),
                })
            }
        }
    }

    /// A host is gone: its series disappear.
    pub fn remove_host(&mut self, id: HostId) {
        if let Some(s) = self.hosts.get_mut(id.slot as usize)
            && s.as_ref().is_some_and(|h| h.id == id)
        {
            *s = None;
        }
    }

    /// A final frame of `id` (the same frame the files get).
    pub fn on_frame(&mut self, id: HostId, frame: &Frame) {
        if let Some(Some(h)) = self.hosts.get_mut(id.slot as usize)
            && h.id == id
        {
            h.counters.add(frame);
        }
    }

    /// Counters of a host.
    pub fn counters(&self, id: HostId) -> Option<&HostCounters> {
        match self.hosts.get(id.slot as usize) {
            Some(Some(h)) if h.id == id => Some(&h.counters),
            _ => None,
        }
    }

    /// The ICMP socket kind of a family (`None`: no socket).
    pub fn set_socket(&mut self, family: Family, kind: Option<Kind>) {
        self.sockets[family.index()] = kind;
    }

    /// Counts the timestamp source of received messages.
    pub fn note_replies(&mut self, batch: &[Reply]) {
        for r in batch {
            if matches!(r.msg, crate::icmp::Message::TxStamp { .. }) {
                continue;
            }
            if r.kernel_real_ns.is_some() {
                self.stamps_kernel += 1;
            } else {
                self.stamps_user += 1;
            }
        }
    }

    /// Renders every metric (text exposition format 0.0.4) into `out` (cleared first).
    /// `cpu_s` and `rss_bytes` are the process's (`None`: unknown).
    pub fn render(&self, out: &mut String, h: &Health, cpu_s: f64, rss_bytes: Option<u64>) {
        out.clear();
        let hosts = || self.hosts.iter().flatten();
        type Pick = fn(&HostCounters) -> u64;
        let counters: [(&str, &str, Pick); 6] = [
            (
                "zzping_requests_sent_total",
                "Echo requests sent (including failed sends), from final frames.",
                |c| c.sent,
            ),
            (
                "zzping_replies_total",
                "Requests answered within the timeout (first reply), from final frames.",
                |c| c.replies,
            ),
            (
                "zzping_lost_total",
                "Requests without reply or error within the timeout, from final frames.",
                |c| c.lost,
            ),
            (
                "zzping_failed_total",
                "Requests that got no echo reply: lost or answered by an error (loss = \
                 failed / sent), from final frames.",
                |c| c.lost + c.errors,
            ),
            (
                "zzping_duplicates_total",
                "Extra replies to requests already answered.",
                |c| c.duplicates,
            ),
            (
                "zzping_late_replies_total",
                "Replies to requests already counted lost.",
                |c| c.late,
            ),
        ];
        for (name, help, pick) in counters {
            header(out, name, help, "counter");
            for s in hosts() {
                let _ = writeln!(out, "{name}{{{}}} {}", s.labels, pick(&s.counters));
            }
        }
        // Every kind of every host, zeros included, so rate() sees a series from the
        // start; they sum to the host's errors.
        header(
            out,
            "zzping_errors_total",
            "Requests whose send failed or that drew an ICMP error, by kind (docs/format.md \
             lists the kinds): they failed like lost requests, and count as loss.",
            "counter",
        );
        for s in hosts() {
            for k in ErrorKind::ALL {
                let _ = writeln!(
                    out,
                    "zzping_errors_total{{{},kind=\"{}\"}} {}",
                    s.labels,
                    k.name(),
                    s.counters.error_kinds[k as usize]
                );
            }
            // Errors of frames that carry no kind (none the daemon makes itself).
            let unknown = s
                .counters
                .errors
                .saturating_sub(s.counters.error_kinds.iter().sum::<u64>());
            if unknown > 0 {
                let _ = writeln!(
                    out,
                    "zzping_errors_total{{{},kind=\"unknown\"}} {unknown}",
                    s.labels
                );
            }
        }
        header(
            out,
            "zzping_rtt_seconds",
            "Round-trip times of replies received within the timeout.",
            "histogram",
        );
        for s in hosts() {
            let c = &s.counters;
            let mut acc = 0;
            for (i, le) in RTT_BUCKETS_LE.iter().enumerate() {
                acc += c.rtt_buckets[i];
                let _ = writeln!(
                    out,
                    "zzping_rtt_seconds_bucket{{{},le=\"{le}\"}} {acc}",
                    s.labels
                );
            }
            acc += c.rtt_buckets[RTT_BUCKETS_US.len()];
            let _ = writeln!(
                out,
                "zzping_rtt_seconds_bucket{{{},le=\"+Inf\"}} {acc}",
                s.labels
            );
            let _ = writeln!(
                out,
                "zzping_rtt_seconds_sum{{{}}} {}",
                s.labels,
                c.rtt_sum_us as f64 / 1e6
            );
            let _ = writeln!(out, "zzping_rtt_seconds_count{{{}}} {acc}", s.labels);
        }

        // Daemon health.
        delay_histogram(
            out,
            "zzping_send_lateness_seconds",
            "Actual minus scheduled send time of every request.",
            &h.lateness,
        );
        delay_histogram(
            out,
            "zzping_reply_socket_wait_seconds",
            "How long kernel-stamped replies waited in the socket before the receive thread \
             read them (batching and scheduling; not part of their RTT).",
            &h.rx_wait,
        );
        let st = &h.stats;
        header(
            out,
            "zzping_rtt_kernel_timed_total",
            "Received replies whose RTT runs from a kernel transmit stamp to a kernel \
             receive stamp.",
            "counter",
        );
        let _ = writeln!(out, "zzping_rtt_kernel_timed_total {}", st.rtt_kernel);
        header(
            out,
            "zzping_rtt_user_timed_total",
            "Received replies with a user-space time at one side (an upper bound; their \
             frames carry the user_stamp flag), by side.",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_rtt_user_timed_total{{side=\"send\"}} {}",
            st.rtt_user_send
        );
        let _ = writeln!(
            out,
            "zzping_rtt_user_timed_total{{side=\"receive\"}} {}",
            st.rtt_user_receive
        );
        let plain: [(&str, &str, &str, f64); 17] = [
            (
                "zzping_receive_stamps_in_call_total",
                "Replies the kernel stamped inside recvmsg because network timestamping was \
                 not on yet (their receive time is not an arrival time).",
                "counter",
                st.rx_in_call as f64,
            ),
            (
                "zzping_replies_batched_total",
                "Received replies read by a batch drain of the receive thread.",
                "counter",
                st.rtt_batched as f64,
            ),
            (
                "zzping_send_kernel_timestamps_total",
                "Requests whose send time is the kernel's transmit stamp (the others use the \
                 clock read just before sendto).",
                "counter",
                st.tx_stamped as f64,
            ),
            (
                "zzping_receive_queue_drops_total",
                "Replies dropped because the receive queue was full.",
                "counter",
                h.queue_drops as f64,
            ),
            (
                "zzping_clock_steps_total",
                "Wall-clock steps detected.",
                "counter",
                st.clock_steps as f64,
            ),
            (
                "zzping_stalls_total",
                "Times the daemon's loop ran a second or more late (not scheduled: a paused \
                 VM, a stopped process, a starved CPU; or blocked): no pings were sent \
                 meanwhile.",
                "counter",
                st.stalls as f64,
            ),
            (
                "zzping_stalled_seconds_total",
                "Seconds the daemon's loop ran late, in those stalls.",
                "counter",
                st.stalled_ns as f64 / 1e9,
            ),
            (
                "zzping_sends_skipped_total",
                "Sends skipped because the loop was far behind schedule.",
                "counter",
                st.skipped_sends as f64,
            ),
            (
                "zzping_unmatched_messages_total",
                "Received ICMP messages that matched no request of ours.",
                "counter",
                st.unmatched as f64,
            ),
            (
                "zzping_frames_total",
                "Final frames handed to the writers.",
                "counter",
                h.frames as f64,
            ),
            (
                "zzping_write_errors_total",
                "Frame and events file write errors (failed writes and flushes; retried with backoff).",
                "counter",
                h.write_errors as f64,
            ),
            (
                "zzping_unrecorded_frames_total",
                "Final frames that will never be in the files (the write backlog overflowed).",
                "counter",
                h.unrecorded_frames as f64,
            ),
            (
                "zzping_recording_failing",
                "1 while frame files cannot be written (frames wait in memory).",
                "gauge",
                if h.recording_failing { 1.0 } else { 0.0 },
            ),
            (
                "zzping_stopped",
                "1 once pinging has stopped and every frame is final (counters are final).",
                "gauge",
                if h.stopped { 1.0 } else { 0.0 },
            ),
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                cpu_s,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                self.start_time_s,
            ),
            (
                "zzping_hosts",
                "Hosts being pinged.",
                "gauge",
                hosts().count() as f64,
            ),
        ];
        for (name, help, kind, v) in plain {
            header(out, name, help, kind);
            let _ = writeln!(out, "{name} {v}");
        }
        if let Some(rss) = rss_bytes {
            header(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        header(
            out,
            "zzping_reply_timestamps_total",
            "Received messages by timestamp source (kernel SO_TIMESTAMPNS, or user space).",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_reply_timestamps_total{{source=\"kernel\"}} {}",
            self.stamps_kernel
        );
        let _ = writeln!(
            out,
            "zzping_reply_timestamps_total{{source=\"user\"}} {}",
            self.stamps_user
        );
        header(
            out,
            "zzping_timestamp_source_info",
            "Receive timestamp source: kernel (all so far), user, or mixed.",
            "gauge",
        );
        let source = match (self.stamps_kernel, self.stamps_user) {
            (_, 0) => "kernel",
            (0, _) => "user",
            _ => "mixed",
        };
        let _ = writeln!(out, "zzping_timestamp_source_info{{source=\"{source}\"}} 1");
        header(
            out,
            "zzping_socket_info",
            "ICMP socket kind per address family.",
            "gauge",
        );
        for f in [Family::V4, Family::V6] {
            let kind = match self.sockets[f.index()] {
                Some(Kind::Dgram) => "dgram",
                Some(Kind::Raw) => "raw",
                None => "none",
            };
            let _ = writeln!(
                out,
                "zzping_socket_info{{family=\"{}\",kind=\"{kind}\"}} 1",
                family_name(f)
            );
        }
        header(out, "zzping_build_info", "Build information.", "gauge");
        let _ = writeln!(
            out,
            "zzping_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let hs = &self.http;
        header(
            out,
            "zzping_metrics_http_responses_total",
            "Responses of this endpoint by status class.",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_responses_total{{class=\"2xx\"}} {}",
            hs.ok
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_responses_total{{class=\"4xx\"}} {}",
            hs.client_errors
        );
        header(
            out,
            "zzping_metrics_http_connections_dropped_total",
            "Connections closed without a response: timed out (5 s) or evicted (16 at most).",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_connections_dropped_total{{reason=\"timeout\"}} {}",
            hs.timeouts
        );
        let _ = writeln!(
            out,
            "zzping_metrics_http_connections_dropped_total{{reason=\"evicted\"}} {}",
            hs.evicted
        );
        self.render_alerts(out);
        keep_slack(out);
    }

    /// The alert rules' counters (see `crate::alert`).
    fn render_alerts(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(a) = &self.alerts else { return };
        header(
            out,
            "zzping_alerts_total",
            "Alert events of the [[alert]] rules, by rule and state (firing, resolved).",
            "counter",
        );
        for r in &a.rules {
            for (state, v) in [("firing", &r.firing), ("resolved", &r.resolved)] {
                out.push_str("zzping_alerts_total{rule=\"");
                escape_label(out, &r.name);
                let _ = writeln!(out, "\",state=\"{state}\"}} {}", v.load(Relaxed));
            }
        }
        type Pick = fn(&crate::alert::RuleStats) -> &std::sync::atomic::AtomicU64;
        let per_rule: [(&str, &str, Pick); 2] = [
            (
                "zzping_alert_commands_suppressed_total",
                "Alert events whose command was not run because of the rule's min_interval_s.",
                |r| &r.suppressed,
            ),
            (
                "zzping_alert_command_failures_total",
                "Alert commands that could not start, exited non-zero or were killed.",
                |r| &r.failures,
            ),
        ];
        for (name, help, pick) in per_rule {
            header(out, name, help, "counter");
            for r in &a.rules {
                let _ = write!(out, "{name}{{rule=\"");
                escape_label(out, &r.name);
                let _ = writeln!(out, "\"}} {}", pick(r).load(Relaxed));
            }
        }
        header(
            out,
            "zzping_alert_commands_dropped_total",
            "Alert commands dropped because the command queue was full.",
            "counter",
        );
        let _ = writeln!(
            out,
            "zzping_alert_commands_dropped_total {}",
            a.dropped.load(Relaxed)
        );
    }
}

/// Leaves at least 1/8 of spare capacity (and 1 KiB), so counters gaining digits do not
/// make the next render reallocate: the buffer grows in rare steps, not per scrape.
fn keep_slack(out: &mut String) {
    let want = out.len() / 8 + 1024;
    if out.capacity() - out.len() < want {
        out.reserve(want * 2);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A [`DelayHistogram`] as a Prometheus histogram in seconds (cumulative buckets).
fn delay_histogram(out: &mut String, name: &str, help: &str, h: &DelayHistogram) {
    header(out, name, help, "histogram");
    let mut acc = 0;
    // buckets[i] holds delays < 2^i µs; the last one is open-ended.
    let last = h.buckets.len() - 1;
    for (i, b) in h.buckets[..last].iter().enumerate() {
        acc += b;
        let le = (1u64 << i) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {acc}");
    }
    acc += h.buckets[last];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {acc}");
}
