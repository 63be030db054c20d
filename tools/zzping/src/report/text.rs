//! `zzping report`'s text output.

use super::Report;
use std::fmt::Write;

/// `writeln!` into a `String` (which cannot fail).
macro_rules! w {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($t:tt)*) => {{
        let _ = writeln!($o, $($t)*);
    }};
}
use crate::common::TimeFmt;
use zzping_lib::frame::ErrorKind;

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

/// The report as text (what `zzping report` prints).
pub(super) fn render(r: &Report, tf: &TimeFmt) -> String {
    let mut out = String::new();
    let first = r.hosts.iter().filter_map(|h| h.first_us).min();
    let last = r.hosts.iter().filter_map(|h| h.last_us).max();
    match (first, last) {
        (Some(f), Some(l)) => w!(out, "Report {} .. {}", tf.string(f), tf.string(l)),
        _ => w!(out, "Report: no frames in range"),
    }
    match &r.gateway {
        Some(g) => w!(out, "Gateway: {g} ({})", r.gateway_source),
        // The source says why: "none (--gateway none)", "unknown (...)".
        None => w!(out, "Gateway: {}", r.gateway_source),
    }
    w!(out);
    let w = r
        .hosts
        .iter()
        .map(|h| h.label.len())
        .max()
        .unwrap_or(4)
        .max(4);
    w!(
        out,
        "{:<w$}  {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "host",
        "sent",
        "loss%",
        "timeouts",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "jitter ms"
    );
    for h in &r.hosts {
        w!(
            out,
            "{:<w$}  {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            h.label,
            h.sent,
            h.loss_pct.map_or("-".into(), |p| format!("{p:.3}")),
            h.timeouts,
            h.errors,
            ms(h.p50_us),
            ms(h.p95_us),
            ms(h.p99_us),
            h.jitter_us
                .map_or("-".into(), |j| format!("{:.3}", j / 1000.0)),
        );
    }
    let errors: Vec<String> = r
        .hosts
        .iter()
        .filter(|h| h.errors > 0)
        .map(|h| {
            // By kind number: this machine's failures first, then the network's.
            let mut kinds: Vec<(&str, u64)> = h.error_kinds.iter().map(|(k, n)| (*k, *n)).collect();
            kinds.sort_by_key(|(k, _)| ErrorKind::from_name(k).map(|k| k as u8));
            let mut parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let known: u64 = h.error_kinds.values().sum();
            if h.errors > known {
                parts.push(format!("kind not recorded {}", h.errors - known));
            }
            let mut line = format!("  {}: {}", h.label, parts.join(", "));
            if !h.routers.is_empty() {
                line += &format!(" (ICMP errors from {})", h.routers.join(", "));
            }
            line
        })
        .collect();
    if !errors.is_empty() {
        w!(out);
        w!(out, "Errors by kind:");
        for e in errors {
            w!(out, "{e}");
        }
    }
    let mut notes: Vec<String> = r
        .hosts
        .iter()
        .filter_map(|h| Some(format!("  {}: {}", h.label, h.flagged_frames.describe()?)))
        .collect();
    notes.extend(r.hosts.iter().filter(|h| h.limits_icmp).map(|h| {
        format!(
            "  {}: limits ICMP (answers at a capped rate, as many replies in every {} \
             frames): its loss is the cap, not the path; {} frame runs of it alone are \
             not listed as outages",
            h.label, h.reply_window_frames, h.limited_runs
        )
    }));
    if !notes.is_empty() {
        w!(out);
        w!(out, "Measurement notes:");
        for n in notes {
            w!(out, "{n}");
        }
    }
    if !r.events.is_empty() {
        w!(out);
        w!(out, "Context events ({}):", r.events.len());
        for e in &r.events {
            w!(out, "  {}  {}", e.time, e.text);
        }
    }
    w!(out);
    if r.outages.is_empty() {
        w!(out, "Outages: none");
        return out;
    }
    w!(out, "Outages ({}):", r.outages.len());
    for o in &r.outages {
        let cause = o
            .cause_text
            .as_deref()
            .map_or(String::new(), |c| format!("; {c}"));
        if o.verdict == "down" {
            w!(
                out,
                "  {}: since {}, {} ({:.1} % of its requests), {} failed{cause}",
                o.verdict_text,
                o.start,
                duration(o.duration_us),
                o.down_pct.unwrap_or(0.0),
                o.failed,
            );
            continue;
        }
        let hosts: Vec<String> = o
            .hosts
            .iter()
            .map(|a| format!("{} ({})", a.label, a.failed))
            .collect();
        let also = if o.also_failing.is_empty() {
            String::new()
        } else {
            format!(" [also failing: {}]", o.also_failing.join(", "))
        };
        w!(
            out,
            "  {}  {:>9}  {:>6} failed  {}{also}  -> {}{cause}",
            o.start,
            duration(o.duration_us),
            o.failed,
            hosts.join(", "),
            o.verdict_text,
        );
    }
    out
}
