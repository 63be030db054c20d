//! Shared helpers of the live-stream tests: a sans-IO network that connects a
//! [`LiveServer`] and several [`LiveClient`]s with an explicit clock.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use zzping_lib::codec::QFrame;
use zzping_lib::file::FileReader;
use zzping_lib::frame::Frame;
use zzping_lib::live::*;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::layout::host_dir_name;

pub const T0: u64 = 1_795_000_000_000_000; // 2026-11-18, mid-day UTC
pub const PERIOD: u32 = 100_000;

pub fn server_addr() -> SocketAddr {
    "127.0.0.1:7878".parse().unwrap()
}

pub fn viewer_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 2]), 40_000 + i as u16)
}

pub fn meta(label: &str) -> HostMeta {
    HostMeta {
        label: label.into(),
        address: "198.18.0.1".parse().unwrap(),
        name: Some(format!("{label}.example")),
        period_us: PERIOD,
        precision: 0.01,
    }
}

/// A deterministic frame of host `h` starting at `start`.
pub fn frame(h: u32, start: u64, codes: usize) -> Frame {
    let mut f = Frame::new(start, PERIOD);
    let k = (start / u64::from(PERIOD) % 1_000_003) as u32;
    f.sent = codes as u32 + (k % 3);
    f.lost = k % 3;
    f.late = u32::from(k % 7 == 0);
    f.flags = (k % 5 == 0) as u8;
    for i in 0..codes as u32 {
        f.rtts_us
            .push(500 + (h * 997 + k * 131 + i * 7919) % 40_000);
    }
    f
}

pub fn quantize(f: &Frame) -> QFrame {
    let mut q = QFrame::default();
    q.set_from(f, &Quantizer::new(0.01).unwrap());
    q
}

pub struct Viewer {
    pub addr: SocketAddr,
    pub c: LiveClient,
    pub events: Vec<LiveEvent>,
    /// When false the viewer neither sends nor receives (vanished).
    pub alive: bool,
    pub received: u64,
}

impl Viewer {
    pub fn frames(&self, host: u32) -> Vec<QFrame> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LiveEvent::Frame { host: h, frame } if *h == host => Some(frame.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn hosts_seen(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .events
            .iter()
            .filter_map(|e| match e {
                LiveEvent::Frame { host, .. } => Some(*host),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn gaps(&self, host: u32) -> Vec<(u64, u64, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LiveEvent::Gap {
                    host: h,
                    from_us,
                    to_us,
                    frames,
                } if *h == host => Some((*from_us, *to_us, *frames)),
                _ => None,
            })
            .collect()
    }

    pub fn subscribed(&self) -> bool {
        self.events.contains(&LiveEvent::Subscribed)
    }
}

/// Decides whether datagram number `n` (counted over all server output) to viewer `v`
/// is dropped.
pub type DropFn = Box<dyn FnMut(usize, u64, &[u8]) -> bool>;

pub struct Net {
    pub s: LiveServer,
    pub v: Vec<Viewer>,
    pub now: u64,
    pub hist: Box<dyn HistorySource>,
    pub drop: DropFn,
    pub n_out: u64,
    out: Vec<u8>,
    tx: Vec<u8>,
    /// Every datagram the server sent, with destination.
    pub log: Vec<(SocketAddr, Vec<u8>)>,
    /// Every datagram the viewers sent.
    pub log_in: Vec<Vec<u8>>,
    pub keep_log: bool,
}

impl Net {
    pub fn new(cfg: LiveConfig, now: u64) -> Self {
        Self {
            s: LiveServer::new(cfg).unwrap(),
            v: Vec::new(),
            now,
            hist: Box::new(NoHistory),
            drop: Box::new(|_, _, _| false),
            n_out: 0,
            out: vec![0; RECV_BUFFER],
            tx: Vec::new(),
            log: Vec::new(),
            log_in: Vec::new(),
            keep_log: false,
        }
    }

    pub fn add_viewer(&mut self, cfg: ClientConfig) -> usize {
        let i = self.v.len();
        self.v.push(Viewer {
            addr: viewer_addr(i),
            c: LiveClient::new(cfg, self.now).unwrap(),
            events: Vec::new(),
            alive: true,
            received: 0,
        });
        i
    }

    pub fn client_cfg(&self, filter: Option<&[&str]>, prefill_s: u32) -> ClientConfig {
        ClientConfig {
            server: server_addr(),
            secret: self.s.config().secret,
            filter: filter.map(|f| f.iter().map(|s| s.to_string()).collect()),
            prefill_s,
        }
    }

    /// Exchanges datagrams until nothing more is due at the current time.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut any = false;
            for v in self.v.iter_mut().filter(|v| v.alive) {
                while v.c.poll_transmit(self.now, &mut self.tx) {
                    if self.keep_log {
                        self.log_in.push(self.tx.clone());
                    }
                    self.s.on_datagram(v.addr, &self.tx, self.now);
                    any = true;
                }
            }
            if self.s.history_pending() {
                any |= self.s.pump_history(self.now, &mut *self.hist) > 0;
            }
            while let Some((dst, n)) = self.s.poll_transmit(self.now, &mut self.out) {
                any = true;
                self.n_out += 1;
                if self.keep_log {
                    self.log.push((dst, self.out[..n].to_vec()));
                }
                let Some(i) = self.v.iter().position(|v| v.addr == dst) else {
                    continue;
                };
                if !self.v[i].alive || (self.drop)(i, self.n_out, &self.out[..n]) {
                    continue;
                }
                let v = &mut self.v[i];
                v.received += 1;
                v.c.handle_datagram(server_addr(), &self.out[..n], self.now);
                while let Some(e) = v.c.poll_event() {
                    v.events.push(e);
                }
            }
            if !any {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances the clock by `dt` in 10 ms steps, pumping at each.
    pub fn advance(&mut self, dt: u64) {
        let end = self.now + dt;
        while self.now < end {
            self.now = (self.now + 10_000).min(end);
            self.pump();
        }
    }
}

/// A [`HistorySource`] over the frame files of a data directory (what the daemon does).
pub struct FileHistory {
    pub dir: PathBuf,
    pub labels: HashMap<u32, String>,
    pub calls: u64,
}

impl HistorySource for FileHistory {
    /// Naive: reads every file from its start on every call (so only for data smaller
    /// than one call's budget).
    fn read_frames(
        &mut self,
        host: u32,
        from_us: u64,
        to_us: u64,
        budget: &mut usize,
        sink: &mut dyn FnMut(&QFrame) -> bool,
    ) -> HistoryRead {
        self.calls += 1;
        let Some(label) = self.labels.get(&host) else {
            return HistoryRead::Done;
        };
        let dir = self.dir.join(host_dir_name(label));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return HistoryRead::Done;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let Ok(mut r) = FileReader::open(&f) else {
                continue;
            };
            while let Ok(Some(q)) = r.next_frame() {
                if *budget == 0 {
                    return HistoryRead::More;
                }
                *budget -= 1;
                if q.start_us >= from_us && q.start_us < to_us && !sink(q) {
                    return HistoryRead::More;
                }
            }
        }
        HistoryRead::Done
    }
}
