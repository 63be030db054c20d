use std::io::{Read, Write};
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use proptest::prelude::*;

use super::*;
use crate::engine::HostId;
use crate::icmp::Family;
use crate::sock::Kind;
use zzping_lib::frame::Frame;

fn id(slot: u32) -> HostId {
    HostId {
        slot,
        generation: 1,
    }
}

fn frame(sent: u32, rtts: &[u32], lost: u32, errors: u32) -> Frame {
    let mut f = Frame::new(1_767_225_600_000_000, 100_000);
    f.sent = sent;
    f.rtts_us.extend_from_slice(rtts);
    f.lost = lost;
    f.errors = errors;
    f
}

/// Value of the sample line `series` (exact text before the space).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn parser_routes_requests() {
    use Request::*;
    let p = |s: &str| parse_request(s.as_bytes());
    assert_eq!(
        p("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
        Metrics { head: false }
    );
    assert_eq!(p("GET /metrics?x=1 HTTP/1.0\n\n"), Metrics { head: false });
    assert_eq!(p("HEAD /metrics HTTP/1.1\r\n\r\n"), Metrics { head: true });
    assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), NotFound);
    assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), MethodNotAllowed);
    assert_eq!(p("DELETE /other HTTP/1.1\r\n\r\n"), NotFound);
    // Incomplete until the empty line.
    assert_eq!(p(""), Incomplete);
    assert_eq!(p("GET /metr"), Incomplete);
    assert_eq!(p("GET /metrics HTTP/1.1\r\nHost: x\r\n"), Incomplete);
    // Malformed.
    assert_eq!(p("GET /metrics\r\n\r\n"), BadRequest);
    assert_eq!(p("GET /metrics HTTP/2.0\r\n\r\n"), BadRequest);
    assert_eq!(p("GET metrics HTTP/1.1\r\n\r\n"), BadRequest);
    assert_eq!(p("GET  /metrics HTTP/1.1\r\n\r\n"), BadRequest);
    assert_eq!(p("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"), BadRequest);
    assert_eq!(p("GET /metrics HTTP/1.1\r\n: empty\r\n\r\n"), BadRequest);
    assert_eq!(p("\x16\x03\x01\x02\x00"), BadRequest, "TLS hello");
    // Too large: a head that does not end within the limit.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < MAX_REQUEST {
        big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(parse_request(&big), TooLarge);
    assert_eq!(parse_request(&[b'A'; MAX_REQUEST]), TooLarge);
    assert_eq!(parse_request(&[b'A'; 100]), Incomplete);
    // More header lines than the parser's table holds, within 8 KiB: 431 too.
    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..65 {
        many.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(many.len() < MAX_REQUEST);
    assert_eq!(parse_request(&many), TooLarge);
    // Only the origin form of a target.
    assert_eq!(p("GET http://x/metrics HTTP/1.1\r\n\r\n"), BadRequest);
    assert_eq!(p("OPTIONS * HTTP/1.1\r\n\r\n"), BadRequest);
    // A control character in a header value.
    assert_eq!(p("GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n"), BadRequest);
}

#[test]
fn responses_are_complete_http() {
    let mut out = Vec::new();
    write_response(&mut out, Request::Metrics { head: false }, "a 1\n");
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(text.contains("Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"));
    write_response(&mut out, Request::Metrics { head: true }, "a 1\n");
    assert!(
        String::from_utf8(out.clone())
            .unwrap()
            .ends_with("\r\n\r\n")
    );
    write_response(&mut out, Request::MethodNotAllowed, "");
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 405 ") && text.contains("Allow: GET, HEAD\r\n"));
    for (r, code) in [
        (Request::NotFound, "404"),
        (Request::TooLarge, "431"),
        (Request::BadRequest, "400"),
    ] {
        write_response(&mut out, r, "");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(&format!("HTTP/1.1 {code} ")), "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random bytes never panic, and a verdict only depends on the first 8 KiB.
    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..10_000)) {
        let r = parse_request(&bytes);
        if bytes.len() > MAX_REQUEST {
            prop_assert_eq!(r, parse_request(&bytes[..MAX_REQUEST]));
            prop_assert_ne!(r, Request::Incomplete);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Request-looking input: every prefix of a valid request is incomplete, the whole is
    /// routed, whatever the header values.
    #[test]
    fn valid_requests_parse_at_any_split(
        headers in prop::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,60}"), 0..20),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut req = format!("GET /metrics HTTP/1.1{nl}");
        for (k, v) in &headers {
            req.push_str(&format!("{k}: {v}{nl}"));
        }
        req.push_str(nl);
        let b = req.as_bytes();
        for cut in 0..b.len() {
            prop_assert_eq!(parse_request(&b[..cut]), Request::Incomplete, "cut {}", cut);
        }
        prop_assert_eq!(parse_request(b), Request::Metrics { head: false });
    }

    /// Garbage inserted anywhere into a valid request never panics, and the result is
    /// decided by the head alone (bytes after it change nothing). Garbage inside the
    /// method (after its first letter) is never served: `G<junk>ET` is no method we know
    /// unless the junk itself spells `ET ` and a whole valid request after it (about
    /// one chance in 2^160 for the shortest such junk).
    #[test]
    fn mutated_requests_never_panic(
        pos in 0usize..40,
        junk in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut b = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let pos = pos.min(b.len());
        b.splice(pos..pos, junk.iter().copied());
        let r = parse_request(&b);
        if r != Request::Incomplete {
            let mut longer = b.clone();
            longer.extend_from_slice(b"GET /metrics HTTP/1.1\r\n\r\n");
            prop_assert_eq!(parse_request(&longer), r, "bytes after the head changed it");
        }
        if (1..=2).contains(&pos) {
            prop_assert!(
                !matches!(r, Request::Metrics { .. }),
                "served {:?} with junk in its method: {:?}",
                r,
                String::from_utf8_lossy(&b)
            );
        }
    }
}

#[test]
fn label_values_are_escaped() {
    let mut s = String::new();
    escape_label(&mut s, "a\\b\"c\nd é");
    assert_eq!(s, "a\\\\b\\\"c\\nd é");
    let mut e = Exporter::new(0.0);
    e.set_host(id(0), "we\"ird\\\nlabel", "198.18.0.1".parse().unwrap());
    let mut body = String::new();
    e.render(&mut body, &Health::default(), 0.0, None);
    assert!(
        body.contains(
            "zzping_requests_sent_total{host=\"we\\\"ird\\\\\\nlabel\",address=\"198.18.0.1\",family=\"ipv4\"} 0\n"
        ),
        "{body}"
    );
}

#[test]
fn counters_and_cumulative_rtt_buckets() {
    let mut e = Exporter::new(1.5);
    e.set_host(id(0), "gw", "198.18.0.1".parse().unwrap());
    e.set_host(id(2), "v6", "2001:db8::1".parse().unwrap());
    // 100 µs is in le=0.0001 (bounds are inclusive), 101 in the next; 20 s in +Inf.
    let mut first = frame(6, &[100, 101, 2_000, 2_500], 1, 1);
    first
        .error_kinds
        .add(zzping_lib::frame::ErrorKind::NoRoute, 1);
    e.on_frame(id(0), &first);
    e.on_frame(id(0), &frame(2, &[20_000_000], 1, 0));
    let mut f = frame(1, &[], 0, 1);
    f.duplicates = 3;
    f.late = 2;
    e.on_frame(id(2), &f);
    // Unknown or stale ids count nothing.
    e.on_frame(id(1), &frame(5, &[], 5, 0));
    e.on_frame(
        HostId {
            slot: 0,
            generation: 9,
        },
        &frame(5, &[], 5, 0),
    );
    let mut body = String::new();
    e.render(&mut body, &Health::default(), 0.25, Some(4096));
    let gw = "host=\"gw\",address=\"198.18.0.1\",family=\"ipv4\"";
    let v6 = "host=\"v6\",address=\"2001:db8::1\",family=\"ipv6\"";
    let v = |s: String| value(&body, &s).unwrap_or_else(|| panic!("no {s} in\n{body}"));
    assert_eq!(v(format!("zzping_requests_sent_total{{{gw}}}")), 8.0);
    assert_eq!(v(format!("zzping_replies_total{{{gw}}}")), 5.0);
    assert_eq!(v(format!("zzping_lost_total{{{gw}}}")), 2.0);
    // Errors by kind, zeros included; the v6 host's error has no kind.
    assert_eq!(
        v(format!("zzping_errors_total{{{gw},kind=\"no_route\"}}")),
        1.0
    );
    assert_eq!(
        v(format!(
            "zzping_errors_total{{{gw},kind=\"host_unreachable\"}}"
        )),
        0.0
    );
    assert_eq!(
        v(format!("zzping_errors_total{{{v6},kind=\"unknown\"}}")),
        1.0
    );
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with(&format!("zzping_errors_total{{{gw},")))
            .count(),
        zzping_lib::frame::ErrorKind::COUNT
    );
    assert_eq!(v(format!("zzping_duplicates_total{{{v6}}}")), 3.0);
    assert_eq!(v(format!("zzping_late_replies_total{{{v6}}}")), 2.0);
    let expect = [
        ("0.0001", 1),
        ("0.00025", 2),
        ("0.0005", 2),
        ("0.001", 2),
        ("0.0025", 4),
        ("10", 4),
        ("+Inf", 5),
    ];
    for (le, n) in expect {
        assert_eq!(
            v(format!("zzping_rtt_seconds_bucket{{{gw},le=\"{le}\"}}")),
            f64::from(n),
            "le={le}"
        );
    }
    // Buckets never decrease, for every series.
    let mut prev: Option<(String, f64)> = None;
    for l in body
        .lines()
        .filter(|l| l.starts_with("zzping_rtt_seconds_bucket"))
    {
        let (series, val) = l.rsplit_once(' ').unwrap();
        let key = series.split(",le=").next().unwrap().to_owned();
        let val: f64 = val.parse().unwrap();
        if let Some((k, p)) = &prev
            && *k == key
        {
            assert!(val >= *p, "{l}");
        }
        prev = Some((key, val));
    }
    assert_eq!(v(format!("zzping_rtt_seconds_count{{{gw}}}")), 5.0);
    let sum = v(format!("zzping_rtt_seconds_sum{{{gw}}}"));
    assert!((sum - 20.004701).abs() < 1e-9, "{sum}");
    assert_eq!(v(format!("zzping_rtt_seconds_count{{{v6}}}")), 0.0);
    assert_eq!(v("process_cpu_seconds_total".into()), 0.25);
    assert_eq!(v("process_resident_memory_bytes".into()), 4096.0);
    assert_eq!(v("process_start_time_seconds".into()), 1.5);
    assert_eq!(v("zzping_hosts".into()), 2.0);
    assert_eq!(v("zzping_build_info{version=\"0.1.0\"}".into()), 1.0);
    // Every family has HELP and TYPE once, before its samples.
    for l in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = l.split(' ').nth(2).unwrap();
        assert_eq!(
            body.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{name}"
        );
        assert!(body.contains(&format!("# HELP {name} ")), "{name}");
    }
    // Removal drops the series.
    e.remove_host(id(2));
    e.render(&mut body, &Health::default(), 0.0, None);
    assert!(!body.contains("host=\"v6\""));
    assert!(!body.contains("process_resident_memory_bytes"));
}

#[test]
fn lateness_histogram_is_cumulative_in_seconds() {
    let mut h = Health::default();
    for ns in [500, 1_500, 3_000, 3_000, 2_000_000_000_000] {
        h.lateness.record(ns);
    }
    let mut e = Exporter::new(0.0);
    let mut body = String::new();
    e.set_socket(Family::V4, Some(Kind::Raw));
    e.render(&mut body, &h, 0.0, None);
    let v = |s: &str| value(&body, s).unwrap_or_else(|| panic!("no {s} in\n{body}"));
    assert_eq!(
        v("zzping_send_lateness_seconds_bucket{le=\"0.000001\"}"),
        1.0
    );
    assert_eq!(
        v("zzping_send_lateness_seconds_bucket{le=\"0.000002\"}"),
        2.0
    );
    assert_eq!(
        v("zzping_send_lateness_seconds_bucket{le=\"0.000004\"}"),
        4.0
    );
    assert_eq!(
        v("zzping_send_lateness_seconds_bucket{le=\"16.777216\"}"),
        4.0
    );
    assert_eq!(v("zzping_send_lateness_seconds_bucket{le=\"+Inf\"}"), 5.0);
    assert_eq!(v("zzping_send_lateness_seconds_count"), 5.0);
    assert!((v("zzping_send_lateness_seconds_sum") - 2000.000008).abs() < 1e-6);
    assert_eq!(v("zzping_socket_info{family=\"ipv4\",kind=\"raw\"}"), 1.0);
    assert_eq!(v("zzping_socket_info{family=\"ipv6\",kind=\"none\"}"), 1.0);
    assert_eq!(v("zzping_timestamp_source_info{source=\"kernel\"}"), 1.0);
}

#[test]
fn rendering_reuses_its_buffer() {
    let mut e = Exporter::new(0.0);
    for i in 0..4 {
        e.set_host(id(i), &format!("h{i}"), "198.18.0.1".parse().unwrap());
    }
    let mut body = String::new();
    e.render(&mut body, &Health::default(), 0.0, None);
    let (ptr, cap) = (body.as_ptr(), body.capacity());
    for _ in 0..10 {
        e.on_frame(id(1), &frame(3, &[1, 2, 3], 0, 0));
        e.render(&mut body, &Health::default(), 0.0, None);
    }
    assert_eq!((body.as_ptr(), body.capacity()), (ptr, cap));
}

/// Drives a real server on loopback: a scrape, a 404, a partial request that times
/// out is not needed here (integration tests cover the limits).
#[test]
fn serves_over_loopback() {
    let mut poll = Poll::new().unwrap();
    let Ok(mut m) = Metrics::open(
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
        poll.registry(),
        Token(4),
        0.0,
    ) else {
        eprintln!("serves_over_loopback: cannot bind 127.0.0.1; skipping");
        return;
    };
    m.exporter
        .set_host(id(0), "gw", "198.18.0.1".parse().unwrap());
    let addr = m.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let get = |req: &[u8]| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // Byte by byte: the server must reassemble.
            for b in req {
                s.write_all(&[*b]).unwrap();
            }
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        (
            get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            get(b"GET /nope HTTP/1.1\r\n\r\n"),
        )
    });
    let mut events = Events::with_capacity(16);
    let end = Instant::now() + Duration::from_secs(10);
    while !client.is_finished() && Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        let now = crate::clock::mono_ns();
        for ev in events.iter() {
            m.on_event(ev.token(), now, &Health::default());
        }
        m.tick(now);
    }
    let (ok, nf) = client.join().unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("zzping_requests_sent_total{host=\"gw\""),
        "{ok}"
    );
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    let len: usize = ok
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
    assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
    assert_eq!(m.http_stats().ok, 1);
    assert_eq!(m.http_stats().client_errors, 1);
    assert_eq!(m.next_deadline(), None, "connections closed");
}

/// A big body (200 hosts) to a client with a tiny receive window that reads slowly: the
/// server writes what the socket takes, keeps the rest, finishes on WRITABLE events,
/// and meanwhile keeps serving another client.
#[test]
fn partial_writes_complete_for_slow_readers() {
    let mut poll = Poll::new().unwrap();
    let Ok(mut m) = Metrics::open(
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
        poll.registry(),
        Token(4),
        0.0,
    ) else {
        eprintln!("partial_writes_complete_for_slow_readers: cannot bind 127.0.0.1; skipping");
        return;
    };
    // Accepted sockets inherit a small, fixed send buffer (no autotuning).
    socket2::SockRef::from(&m.listener)
        .set_send_buffer_size(4096)
        .unwrap();
    for i in 0..200 {
        m.exporter
            .set_host(id(i), &format!("host-{i}"), "198.18.0.1".parse().unwrap());
    }
    let addr = m.local_addr().unwrap();
    let slow = std::thread::spawn(move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(2048).unwrap();
        s.connect(&addr.into()).unwrap();
        let mut s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            std::thread::sleep(Duration::from_millis(2));
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        (Instant::now(), String::from_utf8(out).unwrap())
    });
    let quick = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (Instant::now(), out)
    });
    let mut events = Events::with_capacity(16);
    let end = Instant::now() + Duration::from_secs(10);
    while !(slow.is_finished() && quick.is_finished()) && Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        let now = crate::clock::mono_ns();
        for ev in events.iter() {
            m.on_event(ev.token(), now, &Health::default());
        }
        m.tick(now);
    }
    let (quick_done, nf) = quick.join().unwrap();
    let (slow_done, ok) = slow.join().unwrap();
    assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(len > 100_000, "body of {len} bytes is not big enough");
    assert_eq!(body.len(), len);
    assert!(body.contains("zzping_requests_sent_total{host=\"host-199\""));
    assert!(body.ends_with("{reason=\"evicted\"} 0\n"));
    assert!(
        quick_done < slow_done,
        "the slow reader held up the other client"
    );
    assert!(
        m.http_stats().write_waits > 0,
        "the write never had to wait"
    );
}

#[test]
fn alert_counters_are_exported_per_rule() {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = crate::alert::AlertStats {
        rules: vec![
            crate::alert::RuleStats {
                name: "gw \"down\"".into(),
                ..Default::default()
            },
            crate::alert::RuleStats {
                name: "lossy".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    stats.rules[0].firing.store(3, Relaxed);
    stats.rules[0].resolved.store(2, Relaxed);
    stats.rules[1].suppressed.store(4, Relaxed);
    stats.rules[1].failures.store(1, Relaxed);
    stats.dropped.store(5, Relaxed);
    let mut e = Exporter::new(0.0);
    let mut body = String::new();
    e.render(&mut body, &Health::default(), 0.0, None);
    assert!(!body.contains("zzping_alert"), "no rules, no series");
    e.set_alert_stats(std::sync::Arc::new(stats));
    e.render(&mut body, &Health::default(), 0.0, None);
    for line in [
        "# TYPE zzping_alerts_total counter",
        "zzping_alerts_total{rule=\"gw \\\"down\\\"\",state=\"firing\"} 3",
        "zzping_alerts_total{rule=\"gw \\\"down\\\"\",state=\"resolved\"} 2",
        "zzping_alerts_total{rule=\"lossy\",state=\"firing\"} 0",
        "zzping_alert_commands_suppressed_total{rule=\"lossy\"} 4",
        "zzping_alert_command_failures_total{rule=\"lossy\"} 1",
        "zzping_alert_commands_dropped_total 5",
    ] {
        assert!(body.lines().any(|l| l == line), "{line}\n{body}");
    }
}
