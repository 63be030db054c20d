//! `zzping report`: per-host statistics and an outage log with a verdict per outage.

use crate::common::{Progress, TimeFmt, paths_or_default, resolve_inputs, scan, time_range};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use zzping_lib::codec::QFrame;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::Event;
use zzping_lib::summary::{Summary, nearest_rank};

/// Per-host loss, RTT percentiles and jitter over a time range, and an outage log.
///
/// Definitions:
/// - loss % = lost / (received + lost) (errors are not losses);
/// - percentiles are nearest-rank over every RTT of the range (within the files'
///   quantizer precision);
/// - jitter = mean absolute difference between the median RTTs of consecutive frames
///   (adjacent in time, both with at least one reply);
/// - a *lossy frame* has lost > 0 and either no reply or lost >= received (loss >= 50 %);
///   a *burst* is a run of consecutive lossy frames of one host (a gap in the data ends
///   it), extended by the adjacent frame on either side when that frame lost some
///   requests (an outage rarely starts or ends on a frame boundary); bursts of different hosts that overlap or touch in time are merged into one
///   *outage*.
///
/// Verdicts, among the hosts that have data during the outage:
/// - the gateway and every other host lost → "local network (Wi-Fi, cable, powerline)";
/// - the gateway fine and every host beyond it lost (even one) → "upstream/ISP";
/// - one host only (of several beyond the gateway, or the gateway alone) → "that host";
/// - otherwise "partial" / "partial-upstream"; without a known gateway, "unknown".
///
/// The gateway is --gateway LABEL; by default the host whose address is a default gateway
/// of this machine (IPv4 or IPv6, /proc/net/route and /proc/net/ipv6_route), else the host with a private (RFC 1918), link-local or ULA
/// address and the lowest median RTT; `--gateway none` disables.
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
    /// Requests lost.
    pub lost: u64,
    /// Send failures and ICMP errors.
    pub errors: u64,
    /// Loss in percent, `None` without outcomes.
    pub loss_pct: Option<f64>,
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

    /// "3 with user-space timestamps (RTT upper bounds), 1 with a clock step", or `None`.
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
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// One host's part in an outage.
#[derive(Debug, Serialize, Clone)]
pub struct Affected {
    /// Host label.
    pub label: String,
    /// Requests it lost in the outage.
    pub lost: u64,
}

/// One outage.
#[derive(Debug, Serialize)]
pub struct Outage {
    /// Start (RFC 3339).
    pub start: String,
    /// Start, µs.
    pub start_us: u64,
    /// Duration, µs.
    pub duration_us: u64,
    /// Requests lost by every affected host.
    pub lost: u64,
    /// Affected hosts.
    pub hosts: Vec<Affected>,
    /// Hosts with data during the outage that were not affected.
    pub unaffected: Vec<String>,
    /// Machine-readable verdict: local, upstream, host, partial-upstream, partial, unknown.
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
    /// How the gateway was chosen.
    pub gateway_source: String,
    /// Per-host statistics.
    pub hosts: Vec<HostReport>,
    /// Outages, by start.
    pub outages: Vec<Outage>,
}

/// Accumulates one host.
struct HostAcc {
    summary: Summary,
    q: Option<Quantizer>,
    prev: Option<(u64, u32)>,
    jitter_sum: f64,
    jitter_n: u64,
    bursts: Vec<(u64, u64, u64)>,
    burst: Option<(u64, u64, u64)>,
    /// The previous frame, when it lost some but not most requests: the leading edge of
    /// a burst that may start next.
    edge: Option<(u64, u64, u64)>,
    coverage: Vec<(u64, u64)>,
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
            bursts: Vec::new(),
            burst: None,
            edge: None,
            coverage: Vec::new(),
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
        // Coverage: contiguous runs of frames.
        match self.coverage.last_mut() {
            Some((_, e)) if f.start_us <= *e && end >= *e => *e = end,
            Some((s, e)) if f.start_us >= *s && end <= *e => {}
            _ => self.coverage.push((f.start_us, end)),
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
        // Bursts: runs of lossy frames, plus the partly lost frame on either edge (an
        // outage rarely starts or ends on a frame boundary).
        let lossy = f.lost > 0 && (f.received() == 0 || f.lost >= f.received());
        let partial = f.lost > 0 && !lossy;
        let mut trailing_edge = false;
        match (&mut self.burst, lossy) {
            (Some((_, e, lost)), true) if *e == f.start_us => {
                *e = end;
                *lost += u64::from(f.lost);
            }
            (b, true) => {
                if let Some(done) = b.take() {
                    self.bursts.push(done);
                }
                let (mut start, mut lost) = (f.start_us, u64::from(f.lost));
                if let Some((es, ee, el)) = self.edge.take()
                    && ee == f.start_us
                {
                    start = es;
                    lost += el;
                }
                *b = Some((start, end, lost));
            }
            (b, false) => {
                if let Some(mut done) = b.take() {
                    if partial && done.1 == f.start_us {
                        done.1 = end;
                        done.2 += u64::from(f.lost);
                        trailing_edge = true;
                    }
                    self.bursts.push(done);
                }
            }
        }
        self.edge = (partial && !trailing_edge).then_some((f.start_us, end, u64::from(f.lost)));
    }

    fn finish(&mut self) {
        if let Some(b) = self.burst.take() {
            self.bursts.push(b);
        }
    }

    fn covers(&self, s: u64, e: u64) -> bool {
        let i = self.coverage.partition_point(|&(_, ce)| ce <= s);
        self.coverage.get(i).is_some_and(|&(cs, _)| cs < e)
    }
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

fn verdict(
    affected: &[String],
    observed: &[String],
    gateway: Option<&str>,
) -> (&'static str, String) {
    let all = affected.len() == observed.len();
    let gw_hit = gateway.is_some_and(|g| affected.iter().any(|a| a == g));
    let gw_seen = gateway.is_some_and(|g| observed.iter().any(|a| a == g));
    // Every host beyond a healthy gateway lost (even if that is one host): upstream.
    if gw_seen && !gw_hit && affected.len() == observed.len() - 1 {
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
    match (gw_seen, gw_hit, all) {
        (true, true, true) => ("local", "local network (Wi-Fi, cable, powerline)".into()),
        (true, true, false) => (
            "partial",
            "the gateway and some hosts beyond it (local network or gateway)".into(),
        ),
        (true, false, _) => {
            let beyond = observed.len() - 1;
            if affected.len() == beyond {
                ("upstream", "upstream/ISP".into())
            } else {
                (
                    "partial-upstream",
                    format!(
                        "upstream/ISP, some destinations ({} of {beyond} beyond the gateway)",
                        affected.len()
                    ),
                )
            }
        }
        (false, _, true) if observed.len() == 1 => (
            "unknown",
            format!("{} (the only host with data)", affected[0]),
        ),
        (false, _, true) => (
            "unknown",
            "every host (local network or upstream; no gateway known)".into(),
        ),
        (false, _, false) => (
            "partial",
            "several hosts (no gateway known to tell local from upstream)".into(),
        ),
    }
}

/// Runs `zzping report`.
pub fn run(a: Args) -> Result<ExitCode> {
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
        acc.finish();
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
        let outcomes = u64::from(c.received) + u64::from(c.lost);
        host_reports.push(HostReport {
            label: label.clone(),
            address: acc.address.clone(),
            frames: u64::from(acc.summary.frames),
            first_us: acc.first,
            last_us: acc.last,
            sent: u64::from(c.sent),
            received: u64::from(c.received),
            lost: u64::from(c.lost),
            errors: u64::from(c.errors),
            loss_pct: (outcomes > 0).then(|| 100.0 * f64::from(c.lost) / outcomes as f64),
            p50_us: pct(50.0),
            p95_us: pct(95.0),
            p99_us: pct(99.0),
            jitter_us: (acc.jitter_n > 0).then(|| acc.jitter_sum / acc.jitter_n as f64),
            flagged_frames: acc.flagged,
        });
    }

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
                    "default route (/proc/net/route, /proc/net/ipv6_route)".into(),
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
                    "unknown (no host is the default gateway or private)".into(),
                )
            }
        }
    };

    // Outages: merge bursts of every host by time.
    let mut all: Vec<(u64, u64, u64, usize)> = Vec::new();
    for (i, (_, acc)) in accs.iter().enumerate() {
        all.extend(acc.bursts.iter().map(|&(s, e, l)| (s, e, l, i)));
    }
    all.sort_unstable();
    let mut outages = Vec::new();
    let mut k = 0;
    while k < all.len() {
        let (s, mut e) = (all[k].0, all[k].1);
        let mut per: BTreeMap<usize, u64> = BTreeMap::new();
        while k < all.len() && all[k].0 <= e {
            e = e.max(all[k].1);
            *per.entry(all[k].3).or_default() += all[k].2;
            k += 1;
        }
        let affected: Vec<String> = per.keys().map(|&i| accs[i].0.clone()).collect();
        let observed: Vec<String> = accs
            .iter()
            .enumerate()
            .filter(|(i, (_, acc))| per.contains_key(i) || acc.covers(s, e))
            .map(|(_, (l, _))| l.clone())
            .collect();
        let (v, text) = verdict(&affected, &observed, gateway.as_deref());
        outages.push(Outage {
            start: tf.string(s),
            start_us: s,
            duration_us: e - s,
            lost: per.values().sum(),
            hosts: per
                .iter()
                .map(|(&i, &lost)| Affected {
                    label: accs[i].0.clone(),
                    lost,
                })
                .collect(),
            unaffected: observed
                .iter()
                .filter(|o| !affected.contains(o))
                .cloned()
                .collect(),
            verdict: v,
            verdict_text: text,
        });
    }

    let report = Report {
        from_us: a.from.as_ref().map(|_| from),
        to_us: a.to.as_ref().map(|_| to),
        gateway,
        gateway_source,
        hosts: host_reports,
        outages,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, &tf);
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(us: Option<u32>) -> String {
    us.map_or("-".into(), |v| format!("{:.3}", f64::from(v) / 1000.0))
}

fn duration(us: u64) -> String {
    if us < 10_000_000 {
        format!("{} ms", us / 1000)
    } else if us < 3_600_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{:.2} h", us as f64 / 3.6e9)
    }
}

fn print_text(r: &Report, tf: &TimeFmt) {
    let first = r.hosts.iter().filter_map(|h| h.first_us).min();
    let last = r.hosts.iter().filter_map(|h| h.last_us).max();
    match (first, last) {
        (Some(f), Some(l)) => println!("Report {} .. {}", tf.string(f), tf.string(l)),
        _ => println!("Report: no frames in range"),
    }
    println!(
        "Gateway: {} ({})",
        r.gateway.as_deref().unwrap_or("-"),
        r.gateway_source
    );
    println!();
    let w = r
        .hosts
        .iter()
        .map(|h| h.label.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<w$}  {:>10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>10}",
        "host", "sent", "lost", "loss%", "p50 ms", "p95 ms", "p99 ms", "jitter ms"
    );
    for h in &r.hosts {
        println!(
            "{:<w$}  {:>10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>10}",
            h.label,
            h.sent,
            h.lost,
            h.loss_pct.map_or("-".into(), |p| format!("{p:.3}")),
            ms(h.p50_us),
            ms(h.p95_us),
            ms(h.p99_us),
            h.jitter_us
                .map_or("-".into(), |j| format!("{:.3}", j / 1000.0)),
        );
    }
    let notes: Vec<String> = r
        .hosts
        .iter()
        .filter_map(|h| {
            Some(format!(
                "  {}: frames {}",
                h.label,
                h.flagged_frames.describe()?
            ))
        })
        .collect();
    if !notes.is_empty() {
        println!();
        println!("Measurement notes:");
        for n in notes {
            println!("{n}");
        }
    }
    println!();
    if r.outages.is_empty() {
        println!("Outages: none");
        return;
    }
    println!("Outages ({}):", r.outages.len());
    for o in &r.outages {
        let hosts: Vec<String> = o
            .hosts
            .iter()
            .map(|a| format!("{} ({} lost)", a.label, a.lost))
            .collect();
        println!(
            "  {}  {:>9}  {:>6} lost  {}  -> {}",
            o.start,
            duration(o.duration_us),
            o.lost,
            hosts.join(", "),
            o.verdict_text
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn verdicts() {
        let obs = s(&["gw", "a", "b"]);
        assert_eq!(verdict(&obs, &obs, Some("gw")).0, "local");
        assert_eq!(verdict(&s(&["a", "b"]), &obs, Some("gw")).0, "upstream");
        assert_eq!(verdict(&s(&["a"]), &obs, Some("gw")).0, "host");
        assert_eq!(verdict(&s(&["gw"]), &obs, Some("gw")).0, "host");
        assert_eq!(verdict(&s(&["gw", "a"]), &obs, Some("gw")).0, "partial");
        assert_eq!(
            verdict(&s(&["a"]), &s(&["gw", "a"]), Some("gw")).0,
            "upstream"
        );
        assert_eq!(verdict(&obs, &obs, None).0, "unknown");
        let four = s(&["gw", "a", "b", "c"]);
        assert_eq!(
            verdict(&s(&["a", "b"]), &four, Some("gw")).0,
            "partial-upstream"
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
