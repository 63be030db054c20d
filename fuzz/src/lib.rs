//! Shared by every fuzz target: an allocator that makes memory bounds part of what the
//! fuzzers check, and a way to cut one input into several datagrams.
//!
//! A decoder must never believe a length it reads: a header claiming 4 GB of values must
//! be refused, not allocated. libFuzzer's own `-malloc_limit_mb` needs a sanitizer's
//! malloc hooks, which a stable toolchain does not build, so the bound is enforced here:
//! any single allocation above [`MAX_ALLOC_BYTES`], or more than [`MAX_LIVE_BYTES`] live
//! at once, aborts the process, which libFuzzer reports as a crash with the input that
//! caused it. (`-rss_limit_mb` still bounds the whole process.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest single allocation any target may make, bytes. The largest legitimate ones: a
/// legacy reader's buffer around its 8 MiB frame limit (16 MiB), a quantizer table at the
/// finest precision (1.1 MB), a live server's 1 MiB host ring.
pub const MAX_ALLOC_BYTES: usize = 32 << 20;
/// Most bytes live at once, whatever the input.
pub const MAX_LIVE_BYTES: usize = 128 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with the bounds above.
pub struct Bounded;

fn over(what: &[u8]) -> ! {
    // No formatting: that could allocate, inside the allocator.
    let _ = std::io::stderr().write_all(what);
    std::process::abort()
}

fn account(size: usize) {
    if size > MAX_ALLOC_BYTES {
        over(b"zzping-fuzz: one allocation above MAX_ALLOC_BYTES\n");
    }
    if LIVE.fetch_add(size, Ordering::Relaxed) + size > MAX_LIVE_BYTES {
        over(b"zzping-fuzz: live memory above MAX_LIVE_BYTES\n");
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only the bookkeeping is added.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        account(new_size);
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

/// Cuts `data` into pieces, each prefixed by a 16-bit big-endian length (a last, short
/// piece takes what is left): how one fuzz input becomes a sequence of datagrams.
pub fn pieces(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 2 {
            return None;
        }
        let n = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let (p, r) = rest.split_at(n.min(rest.len()));
        data = r;
        Some(p)
    })
}

/// The inverse of [`pieces`], for seeds.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub mod live {
    //! A live-stream server and client already past the cookie round trip, so fuzzed
    //! datagrams reach the subscribed paths. The token and client id are random; seeds
    //! carry placeholders ([`TOKEN`], [`CLIENT_ID`]) that [`Session::patch`] replaces.

    use std::net::{IpAddr, SocketAddr};
    use zzping_lib::events::{ContextEvent, EventKind};
    use zzping_lib::frame::{ErrorKind, Frame};
    use zzping_lib::live::{
        ClientConfig, HostMeta, LiveClient, LiveConfig, LiveServer, NoHistory, RECV_BUFFER,
    };
    use zzping_lib::msgpack::Cursor;

    /// A uint64 in a seed that stands for the subscription's token.
    pub const TOKEN: [u8; 9] = *b"\xcfTOKENTOK";
    /// A uint64 in a seed that stands for the client's id.
    pub const CLIENT_ID: [u8; 9] = *b"\xcfCLIENTID";
    /// 2026-01-01T00:00:00Z, µs.
    pub const T0: u64 = 1_767_225_600_000_000;

    /// The server's address.
    pub fn server_addr() -> SocketAddr {
        "127.0.0.1:7878".parse().expect("address")
    }

    /// The viewer's address.
    pub fn client_addr() -> SocketAddr {
        "127.0.0.1:40000".parse().expect("address")
    }

    /// Metadata of test host `label`.
    pub fn meta(label: &str) -> HostMeta {
        HostMeta {
            label: label.into(),
            address: "198.18.0.1".parse().expect("address"),
            name: None,
            period_us: 100_000,
            precision: 0.01,
        }
    }

    /// The `k`-th of a few context events of every shape, at `t_us`.
    pub fn context_event(k: u64, t_us: u64) -> ContextEvent {
        match k % 4 {
            0 => ContextEvent::link(t_us, EventKind::LinkDown, "wlan0"),
            1 => ContextEvent::route(
                t_us,
                6,
                Some(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])),
                Some("wlan0"),
                false,
            ),
            2 => ContextEvent::suspend(t_us, 12_300_000),
            _ => ContextEvent::reload(t_us, "hosts"),
        }
    }

    /// A frame of host `h` at `start` with a few replies.
    pub fn frame(h: u32, start: u64) -> Frame {
        let mut f = Frame::new(start, 100_000);
        f.sent = 5;
        f.lost = (start / 100_000 % 3) as u32;
        for k in 0..(5 - f.lost) {
            f.rtts_us.push(800 + h * 100 + k * 37);
        }
        if f.lost == 2 {
            // One of the failures an error, by kind, from a router (format version 2).
            f.lost = 1;
            f.errors = 1;
            f.error_kinds.add(ErrorKind::HostUnreachable, 1);
            f.router = Some(IpAddr::from([198, 18, 0, 254]));
        }
        f
    }

    /// A server with two hosts and one subscribed client.
    pub struct Session {
        /// The server.
        pub server: LiveServer,
        /// The client.
        pub client: LiveClient,
        /// The subscription's token.
        pub token: u64,
        /// The client's id.
        pub client_id: u64,
        /// The clock, µs.
        pub now: u64,
        out: Vec<u8>,
        tx: Vec<u8>,
    }

    impl Session {
        /// Subscribes a client (with `prefill_s` of prefill) to a fresh server.
        pub fn connect(prefill_s: u32) -> Session {
            let cfg = LiveConfig {
                max_subscribers: 4,
                retransmit_bytes: 32 << 10,
                ring_bytes_per_host: 64 << 10,
                ring_seconds: 60,
                ..LiveConfig::default()
            };
            let mut server = LiveServer::new(cfg).expect("config");
            server.add_host(1, meta("a")).expect("host");
            server.add_host(2, meta("b")).expect("host");
            let mut s = Session {
                server,
                client: LiveClient::new(
                    ClientConfig {
                        prefill_s,
                        ..ClientConfig::new(server_addr())
                    },
                    T0,
                )
                .expect("client"),
                token: 0,
                client_id: 0,
                now: T0,
                out: vec![0; RECV_BUFFER],
                tx: Vec::with_capacity(2048),
            };
            for k in 0..5 {
                let f = frame(1, T0 - 1_000_000 + k * 100_000);
                s.server.on_frame(1, &f, s.now);
            }
            // A context event for the prefill (when one is asked for).
            s.server.on_event(&context_event(0, T0 - 500_000), s.now);
            for _ in 0..4 {
                while s.client.poll_transmit(s.now, &mut s.tx) {
                    s.server.on_datagram(client_addr(), &s.tx, s.now);
                }
                for _ in 0..64 {
                    if !s.server.history_pending() {
                        break;
                    }
                    s.server.pump_history(s.now, &mut NoHistory);
                }
                while let Some((_, n)) = s.server.poll_transmit(s.now, &mut s.out) {
                    let d = &s.out[..n];
                    let mut c = Cursor::new(d);
                    let welcome = c.array_len().is_ok()
                        && c.u64().is_ok()
                        && c.u64().ok() == Some(zzping_lib::live::wire::T_WELCOME);
                    if welcome && let (Ok(id), Ok(token)) = (c.u64(), c.u64()) {
                        s.client_id = id;
                        s.token = token;
                    }
                    s.client.handle_datagram(server_addr(), d, s.now);
                }
                s.now += 10_000;
            }
            assert!(s.client.is_subscribed() && s.token != 0);
            s
        }

        /// `d` with the placeholders replaced by this session's token and client id.
        pub fn patch(&self, d: &[u8]) -> Vec<u8> {
            let mut v = d.to_vec();
            for (from, to) in [(TOKEN, self.token), (CLIENT_ID, self.client_id)] {
                let mut i = 0;
                while i + 9 <= v.len() {
                    if v[i..i + 9] == from {
                        v[i + 1..i + 9].copy_from_slice(&to.to_be_bytes());
                        i += 9;
                    } else {
                        i += 1;
                    }
                }
            }
            v
        }

        /// The inverse of [`Session::patch`], for seeds.
        pub fn unpatch(&self, d: &[u8]) -> Vec<u8> {
            let mut v = d.to_vec();
            for (to, from) in [(TOKEN, self.token), (CLIENT_ID, self.client_id)] {
                let mut pat = [0xcf; 9];
                pat[1..].copy_from_slice(&from.to_be_bytes());
                let mut i = 0;
                while i + 9 <= v.len() {
                    if v[i..i + 9] == pat {
                        v[i..i + 9].copy_from_slice(&to);
                        i += 9;
                    } else {
                        i += 1;
                    }
                }
            }
            v
        }

        /// Every datagram the server has due now, handed to the client too; returns them.
        pub fn exchange(&mut self) -> Vec<Vec<u8>> {
            let mut got = Vec::new();
            while self.client.poll_transmit(self.now, &mut self.tx) {
                self.server.on_datagram(client_addr(), &self.tx, self.now);
            }
            // Prefill (from the ring: no files here) is served by history slices.
            for _ in 0..64 {
                if !self.server.history_pending() {
                    break;
                }
                self.server.pump_history(self.now, &mut NoHistory);
            }
            while let Some((_, n)) = self.server.poll_transmit(self.now, &mut self.out) {
                got.push(self.out[..n].to_vec());
                self.client
                    .handle_datagram(server_addr(), &self.out[..n], self.now);
            }
            while self.client.poll_event().is_some() {}
            got
        }
    }
}
