//! The live-stream client of an established subscription fed arbitrary datagrams from
//! the server's address: never panics, and what it delivers is consistent (frames of
//! known hosts, codes within their quantizer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_fuzz::live::{Session, server_addr};
use zzping_fuzz::pieces;
use zzping_lib::live::LiveEvent;
use zzping_lib::quantizer::Quantizer;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::connect(30);
    s.exchange();
    let mut tx = Vec::new();
    for p in pieces(data) {
        let d = s.patch(p);
        s.client.handle_datagram(server_addr(), &d, s.now);
        while let Some(e) = s.client.poll_event() {
            if let LiveEvent::Frame { host, frame } = e {
                let m = s.client.host(host).expect("frames only of announced hosts");
                let q = Quantizer::new(m.precision).expect("announced precisions are valid");
                assert!(frame.codes.is_sorted());
                assert!(frame.codes.last().is_none_or(|&c| c < q.code_count()));
            }
        }
        while s.client.poll_transmit(s.now, &mut tx) {
            assert!(tx.len() <= 65_535);
        }
        s.now += 50_000;
    }
});
