//! The live-stream client of an established subscription fed arbitrary datagrams from
//! the server's address: never panics, and what it delivers is consistent (frames only
//! of hosts announced earlier in the event stream and not removed since, codes within
//! their quantizer, context events that survive a round trip through their encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use zzping_fuzz::live::{Session, server_addr};
use zzping_fuzz::pieces;
use zzping_lib::events::ContextEvent;
use zzping_lib::live::LiveEvent;
use zzping_lib::quantizer::Quantizer;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::connect(30);
    s.exchange();
    // The hosts as the events tell them, in their order: host -> code count.
    let mut known: HashMap<u32, u32> = HashMap::new();
    let code_count = |precision: f64| {
        Quantizer::new(precision)
            .expect("announced precisions are valid")
            .code_count()
    };
    for h in 0..=u8::MAX as u32 {
        if let Some(m) = s.client.host(h) {
            known.insert(h, code_count(m.precision));
        }
    }
    let mut tx = Vec::new();
    for p in pieces(data) {
        let d = s.patch(p);
        s.client.handle_datagram(server_addr(), &d, s.now);
        while let Some(e) = s.client.poll_event() {
            match e {
                LiveEvent::Host { host, meta } => {
                    known.insert(host, code_count(meta.precision));
                }
                LiveEvent::HostRemoved { host } => {
                    known.remove(&host);
                }
                LiveEvent::Frame { host, frame } => {
                    let limit = known.get(&host).expect("frames only of announced hosts");
                    assert!(frame.codes.is_sorted());
                    assert!(frame.codes.last().is_none_or(|c| c < limit));
                }
                LiveEvent::Context { event } => {
                    let mut b = Vec::new();
                    event.encode(&mut b);
                    let back = ContextEvent::decode(&b).expect("a delivered event re-encodes");
                    assert_eq!(back, (event, b.len()));
                }
                _ => {}
            }
        }
        while s.client.poll_transmit(s.now, &mut tx) {
            assert!(tx.len() <= 65_535);
        }
        s.now += 50_000;
    }
});
