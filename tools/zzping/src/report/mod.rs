//! `zzping report`: per-host statistics and an outage log with a verdict per outage.

use crate::common::{Progress, TimeFmt, paths_or_default, resolve_inputs, scan, time_range};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use zzping_lib::codec::QFrame;
use zzping_lib::events::{ContextEvent, EventKind};
use zzping_lib::file::role;
use zzping_lib::outage::{Failures, HostOutages, HostRuns, MAX_START_UNCERTAINTY_US};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::Event;
use zzping_lib::summary::{Summary, nearest_rank};

mod text;

/// Per-host loss, RTT percentiles and jitter over a time range, and an outage log.
///
/// Definitions:
/// - a request *failed* when it got no echo reply: it timed out, or drew an error (a
///   send failure on this machine or an ICMP error from the network);
/// - loss % = failed / requests with an outcome = (timeouts + errors) / (received +
///   timeouts + errors); timeouts and errors are shown beside it, errors by kind below;
/// - percentiles are nearest-rank over every RTT of the range (within the files'
///   quantizer precision);
/// - jitter = mean absolute difference between the median RTTs of consecutive frames
///   (adjacent in time, both with at least one reply);
/// - a *run* is a host's frames in which every request failed, with the partly failed
///   frame on either side (an outage rarely starts or ends on a frame boundary); time
///   without frames ends it after 10 s;
/// - a host whose runs hold more than half of its requests was *down* (the whole window
///   or most of it), unless it limits ICMP: one line of its own in the outage log;
/// - the other hosts' runs that start within one frame of each other (plus each run's
///   start uncertainty: the host's RTT before it and its send interval, at most 1 s; a
///   far host's requests in flight fail before the others notice) are one *outage*,
///   lasting while at least two of them fail (a host failing longer gets an outage of
///   its own for the rest); a run that starts alone is an outage of that host. Each has
///   its cause when one reason holds most of its failures ("no reply", "no route from
///   this machine", "host unreachable, said 198.18.0.1").
///
/// Context events: what the daemon recorded of this machine in the window (link and
/// carrier changes, default routes, addresses, suspends, clock steps, starts, stops,
/// reloads; the data directory's `@events`) are listed, and used in the verdicts.
///
/// Verdicts, in this order, among the hosts that have data during the outage and were
/// not failing for a reason of their own (a host labelled "limits ICMP" counts only
/// when hosts beyond it fail too; self-check hosts, loopback, never count):
/// - the outage overlaps a suspend of this machine (its requests in flight then, sent
///   up to 1 s before, fail at the resume), or starts less than 10 s after the resume
///   (reconnecting) → "this machine": "suspended 12.0 s, then 3.2 s to reconnect: this
///   machine";
/// - a link of this machine down, or without carrier, during the outage → "this
///   machine", naming it: "Wi-Fi link wlan0 down 3.2 s: this machine";
/// - most failures are send errors of this machine (no route, network down...) →
///   "this machine";
/// - by role (the segment headers' `role`), when an isp-edge host has data: the
///   gateway and the isp-edge failed → "local network (Wi-Fi, cable, powerline)"; the
///   gateway fine and the isp-edge failed (and no internet host answered) →
///   "upstream/ISP";
/// - the gateway and every other host failed → "local network (Wi-Fi, cable, powerline)";
/// - the gateway fine and every host beyond it failed (even one) → "upstream/ISP";
/// - one host only (of several beyond the gateway, or the gateway alone) → "that host";
/// - otherwise "partial" / "partial-upstream"; without a known gateway, "unknown".
///
/// The gateway is --gateway LABEL; by default the hosts whose segment header gives them
/// the role `gateway`, else the host whose address is a default gateway
/// of this machine (IPv4 or IPv6, /proc/net/route and /proc/net/ipv6_route), else the host with a private (RFC 1918), link-local or ULA
/// address and the lowest median RTT; `--gateway none` disables.
///
/// Exit status: 0; 1 on an error, or with --fail-above when some host's loss is above it.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data directories, host directories or .zzp files [default: the daemon's data
    /// directory: $ZZPING_DATA_DIR, /var/lib/zzping if readable, else
    /// ~/.local/share/zzping].
    pub paths: Vec<PathBuf>,
    /// Only this host (label or address); repeat for several.
    #[arg(long)]
    pub host: Vec<String>,
    /// Start of the range: RFC 3339, YYYY-MM-DD (UTC), now, today, yesterday (local), or a
    /// time ago (-2h, -30m, -1w, -2h30m, "3 days ago").
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range (exclusive), same forms as --from.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// The gateway's host label (or address); `none` for no gateway; default: automatic.
    #[arg(long)]
    pub gateway: Option<String>,
    /// JSON output instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print times in the local time zone instead of UTC (text output).
    #[arg(long)]
    pub local: bool,
    /// Exit with status 1 when some host's loss is above PCT percent (0 to 100), after
    /// the report (for scripts and cron).
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_above: Option<f64>,
}

/// A percentage from 0 to 100.
fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

/// Statistics of one host.
#[derive(Debug, Serialize)]
pub struct HostReport {
    /// Host label.
    pub label: String,
    /// Address from the segment headers.
    pub address: Option<String>,
    /// Frames in range.
    pub frames: u64,
    /// First frame start (µs).
    pub first_us: Option<u64>,
    /// Last frame end (µs).
    pub last_us: Option<u64>,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests that timed out (the files' `lost`).
    pub lost: u64,
    /// Requests that timed out (= `lost`).
    pub timeouts: u64,
    /// Requests that drew an error: a send failure or an ICMP error.
    pub errors: u64,
    /// Requests that failed: timeouts and errors.
    pub failed: u64,
    /// Loss in percent, failed / requests with an outcome; `None` without outcomes.
    pub loss_pct: Option<f64>,
    /// Errors by kind (`no_route`, `host_unreachable`...; errors of files without kinds
    /// are in `errors` only).
    pub error_kinds: BTreeMap<&'static str, u64>,
    /// Routers that sent ICMP errors, most errors first.
    pub routers: Vec<String>,
    /// Median RTT, µs.
    pub p50_us: Option<u32>,
    /// 95th percentile RTT, µs.
    pub p95_us: Option<u32>,
    /// 99th percentile RTT, µs.
    pub p99_us: Option<u32>,
    /// Jitter (mean |Δ median| of consecutive frames), µs.
    pub jitter_us: Option<f64>,
    /// Frames whose measurement is qualified, by flag.
    pub flagged_frames: FlaggedFrames,
    /// The host answers at a capped rate (a router limiting the echo replies it sends
    /// itself): its loss is shown, but its frames without a reply are no outage unless
    /// other hosts fail with it (`zzping_lib::outage::HostOutages::limits_icmp`).
    pub limits_icmp: bool,
    /// Outages of this host alone left out because it limits ICMP.
    pub limited_runs: u64,
    /// Its role from the segment headers (`gateway`, `isp-edge`, `internet`,
    /// `self-check`), if any.
    pub role: Option<String>,
    /// How evenly its replies spread over windows of its frames (but those in outages
    /// of several hosts), against random loss (`zzping_lib::outage::ReplyDispersion`:
    /// about 1 for random loss, more for bursts, near 0 for a capped reply rate); `None`
    /// without both replies and failures.
    pub reply_dispersion: Option<f64>,
    /// Frames per window of `reply_dispersion` (sized from the host's own rates so
    /// that a window expects a few replies and a few failures).
    pub reply_window_frames: u32,
}
/// Frames carrying each measurement-quality flag (a frame may carry several).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlaggedFrames {
    /// Some RTT was not timed by the kernel at both ends: an upper bound
    /// (`FLAG_USER_STAMP`).
    pub user_stamp: u64,
    /// The wall clock stepped: the frame's time may be off (`FLAG_CLOCK_STEP`).
    pub clock_step: u64,
    /// A send went out more than a period late (`FLAG_SEND_LATE`).
    pub send_late: u64,
    /// The daemon's receive queue overflowed: replies may be missing
    /// (`FLAG_RECV_OVERFLOW`).
    pub recv_overflow: u64,
    /// Reconstructed from a lossy source such as legacy percentiles (`FLAG_APPROXIMATE`).
    pub approximate: u64,
}

impl FlaggedFrames {
    fn add(&mut self, flags: u8) {
        use zzping_lib::frame::*;
        self.user_stamp += u64::from(flags & FLAG_USER_STAMP != 0);
        self.clock_step += u64::from(flags & FLAG_CLOCK_STEP != 0);
        self.send_late += u64::from(flags & FLAG_SEND_LATE != 0);
        self.recv_overflow += u64::from(flags & FLAG_RECV_OVERFLOW != 0);
        self.approximate += u64::from(flags & FLAG_APPROXIMATE != 0);
    }

    /// "3 frames with user-space timestamps (RTTs are upper bounds), 1 frame with a
    /// wall-clock step", or `None`.
    fn describe(&self) -> Option<String> {
        let parts: Vec<String> = [
            (
                self.user_stamp,
                "with user-space timestamps (RTTs are upper bounds)",
            ),
            (self.clock_step, "with a wall-clock step"),
            (self.send_late, "with sends more than a period late"),
            (
                self.recv_overflow,
                "with receive queue overflow (replies may be missing)",
            ),
            (
                self.approximate,
                "approximate (converted from a lossy format)",
            ),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {} {what}", if *n == 1 { "frame" } else { "frames" }))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// One host's part in an outage.
#[derive(Debug, Serialize, Clone)]
pub struct Affected {
    /// Host label.
    pub label: String,
    /// Its requests that failed in the outage.
    pub failed: u64,
    /// Of which timed out.
    pub timeouts: u64,
    /// Of which drew an error.
    pub errors: u64,
}

/// One line of the outage log: a host that was down, or an outage.
#[derive(Debug, Serialize)]
pub struct Outage {
    /// Start (RFC 3339).
    pub start: String,
    /// Start, µs: the first frame with a failure of the outage.
    pub start_us: u64,
    /// Duration, µs: to the end of its last frame.
    pub duration_us: u64,
    /// Failed requests of every affected host.
    pub failed: u64,
    /// Of which timed out.
    pub timeouts: u64,
    /// Of which drew an error.
    pub errors: u64,
    /// Errors by kind.
    pub error_kinds: BTreeMap<&'static str, u64>,
    /// The router that sent most of the ICMP errors, if any.
    pub router: Option<String>,
    /// The reason of most failures, if one dominates: `timeout`, an error kind
    /// (`no_route`, `host_unreachable`...) or `error` (kind not recorded).
    pub cause: Option<&'static str>,
    /// The cause in words, with the router for ICMP errors.
    pub cause_text: Option<String>,
    /// Affected hosts.
    pub hosts: Vec<Affected>,
    /// Hosts failing during the outage for a reason of their own (already failing
    /// before it, or from later on).
    pub also_failing: Vec<String>,
    /// Hosts with data during the outage that did not fail.
    pub unaffected: Vec<String>,
    /// For a host that was down: the share of its requests that failed in its outages,
    /// percent.
    pub down_pct: Option<f64>,
    /// Machine-readable verdict: down, machine (this machine: a suspend, a link lost, or
    /// its own send errors), local, upstream, host, partial-upstream, partial, unknown.
    pub verdict: &'static str,
    /// Human-readable verdict.
    pub verdict_text: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Range start asked for (µs), if any.
    pub from_us: Option<u64>,
    /// Range end asked for (µs), if any.
    pub to_us: Option<u64>,
    /// Gateway label, if known.
    pub gateway: Option<String>,
    /// How the gateway was chosen (without one: why there is none).
    pub gateway_source: String,
    /// Per-host statistics.
    pub hosts: Vec<HostReport>,
    /// The context events of the window, by time.
    pub events: Vec<EventLine>,
    /// The outage log: hosts that were down first, then outages by start.
    pub outages: Vec<Outage>,
}

/// A context event of the window.
#[derive(Debug, Serialize)]
pub struct EventLine {
    /// When (RFC 3339).
    pub time: String,
    /// The event in words.
    pub text: String,
    /// The event as recorded (`t_us`, `kind` and the keys of its kind).
    #[serde(flatten)]
    pub event: ContextEvent,
}

/// Accumulates one host.
struct HostAcc {
    summary: Summary,
    q: Option<Quantizer>,
    prev: Option<(u64, u32)>,
    jitter_sum: f64,
    jitter_n: u64,
    runs: HostRuns,
    failures: Failures,
    address: Option<String>,
    first: Option<u64>,
    last: Option<u64>,
    flagged: FlaggedFrames,
}

impl HostAcc {
    fn new() -> Self {
        Self {
            summary: Summary::new(0, 0),
            q: None,
            prev: None,
            jitter_sum: 0.0,
            jitter_n: 0,
            runs: HostRuns::new(),
            failures: Failures::default(),
            address: None,
            first: None,
            last: None,
            flagged: FlaggedFrames::default(),
        }
    }

    fn add(&mut self, f: &QFrame, q: &Quantizer) {
        let q0 = self.q.get_or_insert_with(|| q.clone());
        let end = f.end_us();
        self.flagged.add(f.flags);
        self.first.get_or_insert(f.start_us);
        self.last = Some(self.last.map_or(end, |l| l.max(end)));
        // Summaries count codes of one quantizer: re-quantize the rare other segments.
        if q.precision().to_bits() == q0.precision().to_bits() {
            self.summary.add_frame(f);
        } else {
            let mut g = f.clone();
            g.codes.clear();
            g.codes
                .extend(f.codes.iter().map(|&c| q0.encode(q.decode_saturating(c))));
            g.codes.sort_unstable();
            self.summary.add_frame(&g);
        }
        // Jitter over consecutive frames' medians.
        let med = nearest_rank(&f.codes, 0.5).map(|c| q.decode_saturating(c));
        match (self.prev, med) {
            (Some((pend, pmed)), Some(m)) if pend == f.start_us => {
                self.jitter_sum += (f64::from(m) - f64::from(pmed)).abs();
                self.jitter_n += 1;
            }
            _ => {}
        }
        self.prev = med.map(|m| (end, m));
        if f.lost > 0 || f.errors > 0 {
            self.failures.add_frame(f);
        }
        self.runs.add_timed(f, q);
    }
}

/// Errors by kind name.
fn kinds_map(f: &Failures) -> BTreeMap<&'static str, u64> {
    f.kinds().map(|(k, n)| (k.name(), n)).collect()
}

/// True for RFC 1918, link-local and IPv6 ULA / link-local addresses.
fn is_private(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            let s = v.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

/// The hosts of each role a verdict compares (labels).
#[derive(Debug, Default)]
struct Roles {
    gateways: Vec<String>,
    edges: Vec<String>,
    internet: Vec<String>,
}

/// How long after a resume an outage that starts is still the resume's, µs. A laptop
/// that wakes up has to associate with its access point again (a second or two,
/// more with WPA's handshake) and renew its DHCP lease (a few seconds) before anything
/// answers; its first requests fail at once, so such an outage starts within a second
/// or two of the resume. 10 s leaves room for a slow network manager; an outage that
/// starts later had a cause of its own.
const RESUME_RECONNECT_US: u64 = 10_000_000;

/// The suspend an outage `[start_us, end_us)` belongs to: one it overlaps, counting
/// the requests in flight when the machine went to sleep (sent up to a timeout before,
/// `MAX_START_UNCERTAINTY_US`: they fail at the resume), or one it starts less than
/// [`RESUME_RECONNECT_US`] after (reconnecting after the resume).
fn suspended_before(events: &[ContextEvent], start_us: u64, end_us: u64) -> Option<&ContextEvent> {
    events.iter().rev().find(|ev| {
        ev.kind == EventKind::Suspend
            && ev.t_us < end_us.saturating_add(MAX_START_UNCERTAINTY_US)
            && start_us < ev.end_us().saturating_add(RESUME_RECONNECT_US)
    })
}

/// "suspended 12.0 s, then 3.2 s to reconnect: this machine" for an outage ending at
/// `end_us` after the suspend `ev`; without the part after the resume when it ended by
/// then.
fn suspend_verdict(ev: &ContextEvent, end_us: u64) -> String {
    let slept = format!(
        "suspended {:.1} s",
        ev.duration_us.unwrap_or(0) as f64 / 1e6
    );
    let resume = ev.end_us();
    if end_us > resume {
        format!(
            "{slept}, then {:.1} s to reconnect: this machine",
            (end_us - resume) as f64 / 1e6
        )
    } else {
        format!("{slept}: this machine")
    }
}

/// A link of this machine lost during `[start_us, end_us)`: the loss event (a
/// `link_down` or `carrier_off`) and its end (the next `link_up` / `carrier_on` of that
/// interface), `None` when the link was not back in the window.
fn link_lost_during(
    events: &[ContextEvent],
    start_us: u64,
    end_us: u64,
) -> Option<(&ContextEvent, Option<u64>)> {
    events.iter().enumerate().find_map(|(i, ev)| {
        if !ev.kind.is_link_loss() || ev.t_us >= end_us {
            return None;
        }
        let back = events[i + 1..]
            .iter()
            .find(|b| b.kind.is_link_back() && b.interface == ev.interface)
            .map(|b| b.t_us);
        back.is_none_or(|b| b >= start_us).then_some((ev, back))
    })
}

/// "Wi-Fi link wlan0 down 3.2 s: this machine" for a link loss found by
/// [`link_lost_during`]. Interfaces named `wl*` are Wi-Fi (the kernel's and systemd's
/// names).
fn link_verdict(ev: &ContextEvent, back_us: Option<u64>) -> String {
    let iface = ev.interface.as_deref().unwrap_or("?");
    let wifi = if iface.starts_with("wl") {
        "Wi-Fi "
    } else {
        ""
    };
    let what = if ev.kind == EventKind::CarrierOff {
        "without carrier"
    } else {
        "down"
    };
    let how_long = match back_us {
        Some(b) => format!(" {:.1} s", b.saturating_sub(ev.t_us) as f64 / 1e6),
        None => ", not back in the window".into(),
    };
    format!("{wifi}link {iface} {what}{how_long}: this machine")
}

fn verdict(affected: &[String], observed: &[String], roles: &Roles) -> (&'static str, String) {
    let any = |set: &[String], of: &[String]| set.iter().any(|g| of.contains(g));
    let gw_hit = any(&roles.gateways, affected);
    let gw_seen = any(&roles.gateways, observed);
    // By role: the gateway against the ISP's edge.
    if any(&roles.edges, observed) && any(&roles.edges, affected) {
        if gw_hit {
            return ("local", "local network (Wi-Fi, cable, powerline)".into());
        }
        let internet_answered = roles
            .internet
            .iter()
            .any(|h| observed.contains(h) && !affected.contains(h));
        if gw_seen && !internet_answered {
            return ("upstream", "upstream/ISP".into());
        }
    }
    let all = affected.len() == observed.len();
    let gateways_seen = observed
        .iter()
        .filter(|o| roles.gateways.contains(o))
        .count();
    let beyond = observed.len() - gateways_seen;
    // Every host beyond a healthy gateway lost (even if that is one host): upstream.
    if gw_seen && !gw_hit && affected.len() == beyond && beyond > 0 {
        return ("upstream", "upstream/ISP".into());
    }
    if affected.len() == 1 && observed.len() > 1 {
        let h = &affected[0];
        return (
            "host",
            if gw_hit {
                format!("that host ({h}, the gateway itself)")
            } else {
                format!("that host ({h})")
            },
        );
    }
    let known = !roles.gateways.is_empty();
    match (gw_seen, gw_hit, all) {
        (true, true, true) => ("local", "local network (Wi-Fi, cable, powerline)".into()),
        (true, true, false) => (
            "partial",
            "the gateway and some hosts beyond it (local network or gateway)".into(),
        ),
        (true, false, _) => (
            "partial-upstream",
            format!(
                "upstream/ISP, some destinations ({} of {beyond} beyond the gateway)",
                affected.len()
            ),
        ),
        (false, _, true) if observed.len() == 1 => (
            "unknown",
            format!("{} (the only host with data)", affected[0]),
        ),
        (false, _, true) => (
            "unknown",
            if known {
                "every host (local network or upstream; the gateway was not up to compare)"
            } else {
                "every host (local network or upstream; no gateway known)"
            }
            .into(),
        ),
        (false, _, false) => (
            "partial",
            if known {
                "several hosts (the gateway was not up to tell local from upstream)"
            } else {
                "several hosts (no gateway known to tell local from upstream)"
            }
            .into(),
        ),
    }
}

/// Reads the inputs of `a` and computes the report.
pub fn build(a: &Args) -> Result<Report> {
    let (from, to) = time_range(a.from.as_deref(), a.to.as_deref())?;
    let hosts = resolve_inputs(&paths_or_default(&a.paths)?, &a.host)?;
    let tf = TimeFmt::new(a.local);
    let progress = Progress::for_files(hosts.iter().flat_map(|h| h.files_in(from, to)), "report");
    let mut accs: Vec<(String, HostAcc)> = Vec::new();
    for h in &hosts {
        let mut acc = HostAcc::new();
        scan(h, from, to, &progress, |ev| {
            match ev {
                Event::Segment { header, .. } => {
                    acc.address.get_or_insert_with(|| header.host.clone());
                }
                Event::Frame { frame, quantizer } => {
                    acc.add(frame, quantizer);
                }
                Event::FileEnd { path, issues, .. } => {
                    for i in issues {
                        progress.println(&format!("warning: {}: {i}", path.display()));
                    }
                }
            }
            Ok(())
        })?;
        if acc.address.is_none() {
            acc.address = h.address().map(str::to_owned);
        }
        accs.push((h.label.clone(), acc));
    }
    progress.finish();

    // Per-host statistics.
    let mut host_reports = Vec::new();
    for (label, acc) in &accs {
        let c = acc.summary.counts;
        let q = acc.q.as_ref();
        let pct = |p: f64| q.and_then(|q| acc.summary.percentile_us(q, p));
        host_reports.push(HostReport {
            label: label.clone(),
            address: acc.address.clone(),
            frames: u64::from(acc.summary.frames),
            first_us: acc.first,
            last_us: acc.last,
            sent: u64::from(c.sent),
            received: u64::from(c.received),
            lost: u64::from(c.lost),
            timeouts: u64::from(c.lost),
            errors: u64::from(c.errors),
            failed: c.failed(),
            loss_pct: c.loss_ratio().map(|r| 100.0 * r),
            error_kinds: kinds_map(&acc.failures),
            routers: acc
                .failures
                .routers()
                .iter()
                .map(|(r, _)| r.to_string())
                .collect(),
            p50_us: pct(50.0),
            p95_us: pct(95.0),
            p99_us: pct(99.0),
            jitter_us: (acc.jitter_n > 0).then(|| acc.jitter_sum / acc.jitter_n as f64),
            flagged_frames: acc.flagged,
            limits_icmp: false,
            limited_runs: 0,
            reply_dispersion: None,
            reply_window_frames: 0,
            role: None,
        });
    }
    for (r, h) in host_reports.iter_mut().zip(&hosts) {
        r.role = h.header.as_ref().and_then(|h| h.role.clone());
    }
    let with_role = |want: &str| -> Vec<String> {
        host_reports
            .iter()
            .filter(|h| h.role.as_deref() == Some(want))
            .map(|h| h.label.clone())
            .collect()
    };
    let role_gateways = with_role(role::GATEWAY);

    // The gateway.
    let (gateway, gateway_source): (Option<String>, String) = match a.gateway.as_deref() {
        Some("none") => (None, "none (--gateway none)".into()),
        Some(g) => {
            let found = host_reports
                .iter()
                .zip(&hosts)
                .find(|(r, h)| h.matches(g) || r.address.as_deref() == Some(g))
                .map(|(r, _)| r);
            match found {
                Some(h) => (Some(h.label.clone()), "--gateway".into()),
                None => bail!(
                    "--gateway {g}: no such host in the report (hosts: {})",
                    host_reports
                        .iter()
                        .map(|h| h.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        None if !role_gateways.is_empty() => (
            Some(role_gateways[0].clone()),
            "role gateway in the segment headers".into(),
        ),
        None => {
            let addr_of =
                |h: &HostReport| h.address.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
            let gws = zzping_lib::gateway::default_gateways();
            if let Some(h) = host_reports
                .iter()
                .find(|h| addr_of(h).is_some_and(|a| gws.contains(&a)))
            {
                (
                    Some(h.label.clone()),
                    "a default gateway of this machine: /proc/net/route, /proc/net/ipv6_route"
                        .into(),
                )
            } else if let Some(h) = host_reports
                .iter()
                .filter(|h| addr_of(h).is_some_and(|a| is_private(&a)) && h.p50_us.is_some())
                .min_by_key(|h| h.p50_us)
            {
                (
                    Some(h.label.clone()),
                    "auto: private address with the lowest median RTT".into(),
                )
            } else {
                (
                    None,
                    "unknown (no host is a default gateway or has a private address)".into(),
                )
            }
        }
    };

    let roles = Roles {
        gateways: match (&a.gateway, &gateway) {
            (None, Some(_)) if !role_gateways.is_empty() => role_gateways,
            (_, g) => g.iter().cloned().collect(),
        },
        edges: with_role(role::ISP_EDGE),
        internet: with_role(role::INTERNET),
    };
    let self_checks = with_role(role::SELF_CHECK);
    // The context events of the window (those of a suspend that reaches into it too).
    let event_log = zzping_lib::events::read_range(
        &zzping_lib::events::locate(&paths_or_default(&a.paths)?),
        from,
        to,
    );
    for (path, issue) in &event_log.issues {
        eprintln!("warning: {}: {issue}", path.display());
    }
    for e in &event_log.errors {
        eprintln!("warning: {e}");
    }
    let context = event_log.events;

    // The outage log: down hosts, then the events of the others.
    let timelines: Vec<HostOutages> = accs.into_iter().map(|(_, acc)| acc.runs.finish()).collect();
    let analysis = zzping_lib::outage::analyse(&timelines);
    for ((h, t), shared) in host_reports
        .iter_mut()
        .zip(&timelines)
        .zip(&analysis.shared)
    {
        let spread = t.dispersion.judge(shared);
        h.reply_dispersion = spread.index;
        h.reply_window_frames = spread.window_frames;
    }
    for &i in &analysis.limits_icmp {
        host_reports[i].limits_icmp = true;
        host_reports[i].limited_runs = analysis.limited_runs[i];
    }
    let label = |i: usize| host_reports[i].label.clone();
    let mut outages = Vec::new();
    for &i in &analysis.down {
        let t = &timelines[i];
        let f = t.failures();
        let (start, end) = (
            t.runs.first().map_or(0, |r| r.start_us),
            t.runs.last().map_or(0, |r| r.end_us),
        );
        let share = t.down_share().unwrap_or(0.0);
        outages.push(Outage {
            start: tf.string(start),
            start_us: start,
            duration_us: end - start,
            failed: f.failed(),
            timeouts: f.timeouts,
            errors: f.errors,
            error_kinds: kinds_map(&f),
            router: f.router().map(|r| r.to_string()),
            cause: f.cause().map(|(c, _)| c.name()),
            cause_text: f.cause_text(),
            hosts: vec![Affected {
                label: label(i),
                failed: f.failed(),
                timeouts: f.timeouts,
                errors: f.errors,
            }],
            also_failing: Vec::new(),
            unaffected: Vec::new(),
            down_pct: Some(100.0 * share),
            verdict: "down",
            verdict_text: if share >= DOWN_WHOLE_TIME_SHARE {
                format!("{} down the whole time", label(i))
            } else {
                format!("{} down most of the time", label(i))
            },
        });
    }
    for ev in &analysis.events {
        let (s, e) = (ev.start_us, ev.end_us);
        let affected: Vec<String> = ev.hosts.iter().map(|h| label(h.host)).collect();
        let also: Vec<String> = ev.also_failing.iter().map(|&h| label(h)).collect();
        let observed: Vec<String> = (0..timelines.len())
            .filter(|&h| {
                ev.hosts.iter().any(|x| x.host == h)
                    || (timelines[h].covers(s, e)
                        && !analysis.down.contains(&h)
                        && !ev.also_failing.contains(&h))
            })
            .map(label)
            .collect();
        let f = &ev.failures;
        // Loopback answers whatever the network does: no evidence either way.
        let compared = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter(|l| !self_checks.contains(l))
                .cloned()
                .collect()
        };
        let (v, text) = if let Some(sleep) = suspended_before(&context, s, e) {
            ("machine", suspend_verdict(sleep, e))
        } else {
            match (link_lost_during(&context, s, e), f.cause()) {
                (Some((ev, back)), _) => ("machine", link_verdict(ev, back)),
                (None, Some((c, _))) if c.is_local() => ("machine", "this machine".to_string()),
                _ => verdict(&compared(&affected), &compared(&observed), &roles),
            }
        };
        outages.push(Outage {
            start: tf.string(s),
            start_us: s,
            duration_us: e - s,
            failed: f.failed(),
            timeouts: f.timeouts,
            errors: f.errors,
            error_kinds: kinds_map(f),
            router: f.router().map(|r| r.to_string()),
            cause: f.cause().map(|(c, _)| c.name()),
            cause_text: f.cause_text(),
            hosts: ev
                .hosts
                .iter()
                .map(|h| Affected {
                    label: label(h.host),
                    failed: h.failures.failed(),
                    timeouts: h.failures.timeouts,
                    errors: h.failures.errors,
                })
                .collect(),
            unaffected: observed
                .iter()
                .filter(|o| !affected.contains(o))
                .cloned()
                .collect(),
            also_failing: also,
            down_pct: None,
            verdict: v,
            verdict_text: text,
        });
    }

    Ok(Report {
        from_us: a.from.as_ref().map(|_| from),
        to_us: a.to.as_ref().map(|_| to),
        gateway,
        gateway_source,
        hosts: host_reports,
        events: context
            .into_iter()
            .map(|event| EventLine {
                time: tf.string(event.t_us),
                text: event.describe(),
                event,
            })
            .collect(),
        outages,
    })
}

/// A down host whose runs hold at least this share of its requests was down "the whole
/// time" (a frame or two at either end may have been answered).
const DOWN_WHOLE_TIME_SHARE: f64 = 0.99;

/// Runs `zzping report`.
pub fn run(a: Args) -> Result<ExitCode> {
    let report = build(&a)?;
    let mut text = if a.json {
        serde_json::to_string_pretty(&report)?
    } else {
        text::render(&report, &TimeFmt::new(a.local))
    };
    if a.json {
        text.push('\n');
    }
    // An I/O error, not a panic: a closed pipe (`zzping report | head`) is no error.
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if let Some(limit) = a.fail_above {
        let above: Vec<String> = report
            .hosts
            .iter()
            .filter_map(|h| {
                let p = h.loss_pct?;
                (p > limit).then(|| format!("{} ({p:.3} %)", h.label))
            })
            .collect();
        if !above.is_empty() {
            eprintln!("zzping report: loss above {limit} %: {}", above.join(", "));
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn roles(gateways: &[&str], edges: &[&str], internet: &[&str]) -> Roles {
        Roles {
            gateways: s(gateways),
            edges: s(edges),
            internet: s(internet),
        }
    }

    #[test]
    fn verdicts_by_the_gateway() {
        let gw = roles(&["gw"], &[], &[]);
        let obs = s(&["gw", "a", "b"]);
        assert_eq!(verdict(&obs, &obs, &gw).0, "local");
        assert_eq!(verdict(&s(&["a", "b"]), &obs, &gw).0, "upstream");
        assert_eq!(verdict(&s(&["a"]), &obs, &gw).0, "host");
        assert_eq!(verdict(&s(&["gw"]), &obs, &gw).0, "host");
        assert_eq!(verdict(&s(&["gw", "a"]), &obs, &gw).0, "partial");
        assert_eq!(verdict(&s(&["a"]), &s(&["gw", "a"]), &gw).0, "upstream");
        assert_eq!(verdict(&obs, &obs, &Roles::default()).0, "unknown");
        let four = s(&["gw", "a", "b", "c"]);
        assert_eq!(verdict(&s(&["a", "b"]), &four, &gw).0, "partial-upstream");
        // Two gateways (IPv4 and IPv6): both fine, every host beyond them failed.
        let two = roles(&["gw", "gw6"], &[], &[]);
        let obs = s(&["gw", "gw6", "a", "b"]);
        assert_eq!(verdict(&s(&["a", "b"]), &obs, &two).0, "upstream");
        assert_eq!(verdict(&obs, &obs, &two).0, "local");
    }

    #[test]
    fn verdicts_by_role() {
        let r = roles(&["gw"], &["edge"], &["one"]);
        let obs = s(&["gw", "edge", "one", "nas"]);
        // Gateway and isp-edge fail (the NAS answered: not every host) → LAN.
        let (v, text) = verdict(&s(&["gw", "edge", "one"]), &obs, &r);
        assert_eq!(
            (v, text.as_str()),
            ("local", "local network (Wi-Fi, cable, powerline)")
        );
        // Gateway fine, isp-edge fails (and the internet host with it) → ISP, though the
        // NAS on the LAN answered.
        assert_eq!(verdict(&s(&["edge", "one"]), &obs, &r).0, "upstream");
        // Gateway fine, isp-edge fails, no internet host pinged → ISP.
        let r2 = roles(&["gw"], &["edge"], &[]);
        let obs2 = s(&["gw", "edge", "nas"]);
        assert_eq!(verdict(&s(&["edge"]), &obs2, &r2).0, "upstream");
        // The internet host beyond it answered: the edge alone, not the ISP.
        assert_eq!(verdict(&s(&["edge"]), &obs, &r).0, "host");
        // No isp-edge with data: the gateway rules.
        assert_eq!(verdict(&s(&["one"]), &s(&["gw", "one"]), &r).0, "upstream");
    }

    fn link(t_us: u64, kind: EventKind, iface: &str) -> ContextEvent {
        ContextEvent::link(t_us, kind, iface)
    }

    #[test]
    fn an_outage_at_a_resume_names_the_suspend() {
        // Asleep from 100 s for 12 s; Wi-Fi down at the resume for 3 s.
        let events = [
            ContextEvent::new(0, EventKind::DaemonStart),
            ContextEvent::suspend(100_000_000, 12_000_000),
            link(112_100_000, EventKind::LinkDown, "wlan0"),
            link(115_000_000, EventKind::LinkUp, "wlan0"),
        ];
        // Failing from the resume to 115.2 s: the suspend, not the link it took down.
        let ev = suspended_before(&events, 112_000_000, 115_200_000).unwrap();
        assert_eq!(
            suspend_verdict(ev, 115_200_000),
            "suspended 12.0 s, then 3.2 s to reconnect: this machine"
        );
        // Requests in flight when it slept, failed at the resume (the frame before it).
        let ev = suspended_before(&events, 99_900_000, 100_000_000).unwrap();
        assert_eq!(
            suspend_verdict(ev, 100_000_000),
            "suspended 12.0 s: this machine"
        );
        // Starting within RESUME_RECONNECT_US of the resume: still the suspend's.
        let late = 112_000_000 + RESUME_RECONNECT_US - 100_000;
        assert!(suspended_before(&events, late, late + 500_000).is_some());
        // Later, or over before the suspend (a timeout before it): a cause of its own.
        let later = 112_000_000 + RESUME_RECONNECT_US;
        assert!(suspended_before(&events, later, later + 500_000).is_none());
        assert!(suspended_before(&events, 50_000_000, 51_000_000).is_none());
        let before = 100_000_000 - MAX_START_UNCERTAINTY_US;
        assert!(suspended_before(&events, before - 300_000, before).is_none());
        // Of two suspends, the one the outage follows.
        let two = [
            ContextEvent::suspend(100_000_000, 12_000_000),
            ContextEvent::suspend(113_000_000, 60_000_000),
        ];
        let ev = suspended_before(&two, 173_500_000, 174_000_000).unwrap();
        assert_eq!(
            suspend_verdict(ev, 174_000_000),
            "suspended 60.0 s, then 1.0 s to reconnect: this machine"
        );
    }

    #[test]
    fn a_link_lost_during_an_outage_names_this_machine() {
        let events = [
            ContextEvent::new(0, EventKind::DaemonStart),
            link(10_000_000, EventKind::LinkDown, "wlan0"),
            link(13_200_000, EventKind::LinkUp, "wlan0"),
            link(20_000_000, EventKind::CarrierOff, "eth0"),
        ];
        // Overlapping the link's loss (even starting a frame before it): found.
        let (ev, back) = link_lost_during(&events, 9_900_000, 11_000_000).unwrap();
        assert_eq!(
            link_verdict(ev, back),
            "Wi-Fi link wlan0 down 3.2 s: this machine"
        );
        assert!(link_lost_during(&events, 13_000_000, 14_000_000).is_some());
        // Before or after it: not.
        assert!(link_lost_during(&events, 1_000_000, 9_000_000).is_none());
        assert!(link_lost_during(&events, 13_300_000, 19_000_000).is_none());
        // A carrier that did not come back in the window.
        let (ev, back) = link_lost_during(&events, 21_000_000, 22_000_000).unwrap();
        assert_eq!(
            link_verdict(ev, back),
            "link eth0 without carrier, not back in the window: this machine"
        );
    }

    #[test]
    fn private_ranges() {
        for p in [
            "192.168.1.1",
            "10.0.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(&p.parse().unwrap()), "{p}");
        }
        for p in ["8.8.8.8", "2001:db8::1", "198.18.0.1"] {
            assert!(!is_private(&p.parse().unwrap()), "{p}");
        }
    }
}
