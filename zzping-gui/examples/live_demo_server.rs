//! A live-stream server with synthetic hosts, for trying the viewer's live mode without a
//! daemon (and without raw sockets):
//!
//! ```text
//! cargo run -p zzping-gui --example live_demo_server -- 127.0.0.1:7879 [SECONDS [HOSTS]]
//! zzping-gui --live 127.0.0.1:7879
//! ```
//!
//! Serves HOSTS hosts (default 3, at most 30; profiles cycle through wired, Wi-Fi with a
//! 300 ms loss burst every 30 s, and internet) at 100 ms frames, with an hour of history for prefill, for SECONDS
//! (default 600) seconds. Listens on loopback only unless told otherwise.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use zzping_lib::codec::QFrame;
use zzping_lib::file::wall_clock_us;
use zzping_lib::frame::Frame;
use zzping_lib::live::{
    HistoryRead, HistorySource, HostMeta, LiveConfig, LiveServer, RECV_BUFFER, check_listen_addr,
};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::synth::{Synth, SynthProfile};

/// Prefill from an in-memory history of quantized frames.
struct Memory(HashMap<u32, Vec<QFrame>>);

impl HistorySource for Memory {
    fn read_frames(
        &mut self,
        host_index: u32,
        from_us: u64,
        to_us: u64,
        budget: &mut usize,
        sink: &mut dyn FnMut(&QFrame) -> bool,
    ) -> HistoryRead {
        let Some(v) = self.0.get(&host_index) else {
            return HistoryRead::Done;
        };
        let a = v.partition_point(|f| f.start_us < from_us);
        let b = v.partition_point(|f| f.start_us < to_us).max(a);
        for f in &v[a..b] {
            if *budget == 0 {
                return HistoryRead::More;
            }
            *budget -= 1;
            if !sink(f) {
                return HistoryRead::More;
            }
        }
        HistoryRead::Done
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:7879", String::as_str)
        .parse()?;
    let secs: u64 = args.get(2).map_or(Ok(600), |s| s.parse())?;
    let n_hosts: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let cfg = LiveConfig::default();
    check_listen_addr(addr, &cfg)?;
    let sock = UdpSocket::bind(addr)?;
    sock.set_nonblocking(true)?;
    let mut server = LiveServer::new(cfg)?;
    let q = Quantizer::new(0.01)?;
    let hosts: Vec<(String, String, SynthProfile)> = (0..n_hosts.clamp(1, 30))
        .map(|i| {
            let (name, profile) = match i % 3 {
                0 => ("router", SynthProfile::wired()),
                1 => ("wifi-ap", SynthProfile::wifi()),
                _ => ("internet", SynthProfile::internet()),
            };
            let label = if i < 3 {
                name.to_string()
            } else {
                format!("{name}-{}", i / 3 + 1)
            };
            (label, format!("192.0.2.{}", i + 1), profile)
        })
        .collect();
    let now = wall_clock_us() / 100_000 * 100_000;
    let history_us = 3_600_000_000;
    let mut synths = Vec::new();
    let mut memory = Memory(HashMap::new());
    let mut f = Frame::new(now, 100_000);
    for (i, (label, address, profile)) in hosts.into_iter().enumerate() {
        let h = i as u32 + 1;
        server.add_host(
            h,
            HostMeta {
                label: label.clone(),
                address: address.parse()?,
                name: None,
                period_us: profile.period_us,
                precision: 0.01,
            },
        )?;
        let mut s = Synth::new(profile, 7 + u64::from(h), now - history_us);
        let v = memory.0.entry(h).or_default();
        for _ in 0..history_us / 100_000 {
            s.next_frame(&mut f);
            let mut qf = QFrame::default();
            qf.set_from(&f, &q);
            v.push(qf);
        }
        synths.push(s);
    }
    println!(
        "serving {} synthetic hosts on {addr} for {secs} s",
        synths.len()
    );
    let (mut rx, mut tx) = (vec![0u8; RECV_BUFFER], vec![0u8; RECV_BUFFER]);
    let t0 = Instant::now();
    let mut next = now;
    while t0.elapsed() < Duration::from_secs(secs) {
        while let Ok((n, src)) = sock.recv_from(&mut rx) {
            server.on_datagram(src, &rx[..n], wall_clock_us());
        }
        while wall_clock_us() >= next + 100_000 {
            for (i, s) in synths.iter_mut().enumerate() {
                s.next_frame(&mut f);
                server.on_frame(i as u32 + 1, &f, wall_clock_us());
                let mut qf = QFrame::default();
                qf.set_from(&f, &q);
                memory.0.entry(i as u32 + 1).or_default().push(qf);
            }
            next += 100_000;
        }
        server.pump_history(wall_clock_us(), &mut memory);
        while let Some((dst, n)) = server.poll_transmit(wall_clock_us(), &mut tx) {
            if sock.send_to(&tx[..n], dst).is_err() {
                server.on_send_would_block(dst, wall_clock_us());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}
