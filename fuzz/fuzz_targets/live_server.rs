//! The live-stream server fed arbitrary datagrams from a subscribed viewer's address and
//! from strangers, with frames and context events flowing and prefill served: never panics, and never
//! answers a stranger with more bytes than it sent (no amplification).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use zzping_fuzz::live::{Session, client_addr, context_event, frame};
use zzping_fuzz::pieces;
use zzping_lib::live::{NoHistory, RECV_BUFFER};

fuzz_target!(|data: &[u8]| {
    let mut s = Session::connect(0);
    let stranger: SocketAddr = "127.0.0.1:50000".parse().expect("address");
    let mut out = vec![0u8; RECV_BUFFER];
    for (i, p) in pieces(data).enumerate() {
        let d = s.patch(p);
        let from_stranger = i % 3 == 2;
        let src = if from_stranger {
            stranger
        } else {
            client_addr()
        };
        s.server.on_datagram(src, &d, s.now);
        let f = frame(1 + (i % 2) as u32, s.now - 200_000);
        s.server.on_frame(1 + (i % 2) as u32, &f, s.now);
        if i % 8 == 5 {
            let e = context_event(i as u64 / 8, s.now - 100_000);
            s.server.on_event(&e, s.now);
        }
        // Prefill asked for by any datagram is served in history slices.
        for _ in 0..4 {
            if !s.server.history_pending() {
                break;
            }
            s.server.pump_history(s.now, &mut NoHistory);
        }
        let mut to_stranger = 0;
        while let Some((dst, n)) = s.server.poll_transmit(s.now, &mut out) {
            assert!(n <= out.len());
            if dst == stranger {
                to_stranger += n;
            }
        }
        if from_stranger && s.server.stats().subscribers <= 1 {
            assert!(
                to_stranger <= d.len(),
                "{to_stranger} bytes for {}",
                d.len()
            );
        }
        s.now += 7_000 + (i as u64 % 5) * 1_000_000;
    }
});
