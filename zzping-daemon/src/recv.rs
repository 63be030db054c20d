//! The receive thread and its hand-over queue.
//!
//! The thread blocks in `poll(2)` on both ICMP sockets (and an eventfd used to stop it),
//! drains every readable socket with non-blocking `recvmsg`, parses each message into a
//! small `Copy` [`Reply`] and pushes it into a [`ReplyQueue`]: a fixed ring allocated
//! once, behind a mutex (uncontended in practice: the main thread holds it only to copy
//! out a batch). When the ring is full replies are dropped and counted; the main loop
//! flags frames with `FLAG_RECV_OVERFLOW`.
//!
//! Dense traffic is received in batches: when replies arrive less than [`BATCH_NS`]
//! apart, the thread stops blocking in `poll` per reply and instead sleeps [`BATCH_NS`],
//! then drains everything that queued up in the sockets meanwhile (one wakeup per window
//! instead of one per reply: at 1,000 replies/s, 50 wakeups instead of 1,000). RTTs come
//! from the kernel's receive timestamps, so waiting does not change them; the engine's
//! grace period ([`crate::engine::EngineConfig::grace_ns`], at least [`BATCH_NS`] plus
//! the loop's own slack) keeps a reply that waited in the socket from being expired as
//! lost. Batching turns itself off for good if a reply comes without a kernel timestamp
//! (the user-space stamp would then carry the wait), and a window that brings nothing
//! returns the thread to blocking `poll`.
//!
//! Rounds are received in one window too: the loop sends every host of a rate in one
//! wakeup, and the first transmit stamp of the round wakes this thread (the error queue
//! makes the socket readable) before any reply. A wakeup by transmit stamps alone starts
//! a window at once, and a window that leaves the sockets empty and every stamped
//! request answered (a reply or an ICMP error read for each) returns the thread to
//! blocking `poll` instead of spending another window finding nothing: two wakeups per
//! round at low rates (the stamps, then the window) instead of three per request.
//!
//! # Receive stamps that are not arrival times
//! Linux stamps an incoming packet only while some socket asks for receive timestamps:
//! the first such socket switches network timestamping on through deferred work (a
//! kernel worker), and until that work has run, packets arrive unstamped and `recvmsg`
//! fills in *the time of the call* (`__sock_recv_timestamp`: "race occurred between
//! timestamp enabling and packet receiving"). On a busy machine the worker can run
//! milliseconds late; a reply that waited a batching window in the socket then looked
//! like a 20 ms RTT on loopback. So each `recvmsg` is bracketed by a wall-clock reading
//! taken just before it ([`crate::sock::Datagram::call_real_ns`]):
//! - a stamp *before* the call was taken on arrival: it proves timestamping is on, and it
//!   stays on as long as our sockets ask for it (the kernel counts them);
//! - until that proof, a stamp at or after the reading was taken inside the call: the
//!   reply is marked [`RxStamp::InCall`] (its RTT is an upper bound, and its frame is
//!   flagged `FLAG_USER_STAMP`), and batching stays off, so the error is only this
//!   thread's wake-up latency;
//! - after the proof, such a stamp is a genuine arrival during the call.
//!
//! Waking the main loop per reply would double its wakeups for nothing: it drains the
//! queue on every iteration anyway, and iterates at least at every send and every frame
//! boundary (the timerfd). RTTs come from kernel timestamps, so a reply's processing
//! delay does not affect it; the engine's grace period covers the expiry race. So the
//! thread wakes the main loop (mio [`Waker`], an eventfd write) only when the queue
//! reaches [`WAKE_THRESHOLD`] of its capacity, or with `wake_every_batch` (tests, and
//! configurations where the loop would otherwise sleep long).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::Waker;

use crate::clock;
use crate::engine::{Reply, RxStamp};
use crate::icmp::{self, Family, Message};
use crate::local::LocalAddrs;
use crate::sock::IcmpSocket;

/// Bounded, pre-allocated multi-producer queue of replies, and how far the receive
/// thread has handed everything over (the receive frontier, see [`frontier`]).
pub struct ReplyQueue {
    ring: Mutex<Ring>,
    dropped: AtomicU64,
    received: AtomicU64,
    /// Receive passes begun and ended: odd while the thread may hold a message it has
    /// read but not pushed yet.
    passes: AtomicU64,
    /// Monotonic ns: every message the kernel queued before it has been pushed (set by
    /// batch drains, which end with the sockets empty).
    drained_ns: AtomicU64,
    /// The loop waits for a frontier: wake it at the end of the next pass.
    wake_after_pass: AtomicBool,
    /// The receive thread is running.
    alive: AtomicBool,
}

struct Ring {
    buf: Box<[Reply]>,
    head: usize,
    len: usize,
}

const EMPTY: Reply = Reply {
    family: Family::V4,
    src: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    msg: Message::Other,
    kernel_real_ns: None,
    rx_stamp: RxStamp::Missing,
    batched: false,
    user: clock::Now {
        mono_ns: 0,
        real_ns: 0,
    },
};

impl ReplyQueue {
    /// A queue holding up to `capacity` replies.
    pub fn new(capacity: usize) -> Self {
        ReplyQueue {
            ring: Mutex::new(Ring {
                buf: vec![EMPTY; capacity.max(1)].into_boxed_slice(),
                head: 0,
                len: 0,
            }),
            dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            passes: AtomicU64::new(0),
            drained_ns: AtomicU64::new(0),
            wake_after_pass: AtomicBool::new(false),
            alive: AtomicBool::new(false),
        }
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.lock().buf.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A poisoned lock only means a panic elsewhere; the ring is always consistent.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a reply; returns the queue length after the push, or `None` (and counts
    /// the drop) when the queue was full.
    pub fn push(&self, r: Reply) -> Option<usize> {
        let mut ring = self.lock();
        let cap = ring.buf.len();
        if ring.len == cap {
            drop(ring);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let i = (ring.head + ring.len) % cap;
        ring.buf[i] = r;
        ring.len += 1;
        let len = ring.len;
        drop(ring);
        self.received.fetch_add(1, Ordering::Relaxed);
        Some(len)
    }

    /// Moves every queued reply into `out` (which should have the queue's capacity, so
    /// this never allocates). Returns how many were moved.
    pub fn drain_into(&self, out: &mut Vec<Reply>) -> usize {
        let mut ring = self.lock();
        let cap = ring.buf.len();
        let n = ring.len;
        for k in 0..n {
            let i = (ring.head + k) % cap;
            out.push(ring.buf[i]);
        }
        ring.head = (ring.head + n) % cap;
        ring.len = 0;
        n
    }

    /// Replies dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Replies queued so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Publishes a receive frontier proven by the thread itself (see [`frontier`]).
    fn publish_drained(&self, mono_ns: u64) {
        self.drained_ns.fetch_max(mono_ns, Ordering::SeqCst);
    }

    fn pass_begin(&self) {
        self.passes.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a pass; wakes the loop if it is waiting for a frontier.
    fn pass_end(&self, waker: &Waker) {
        self.passes.fetch_add(1, Ordering::SeqCst);
        if self.wake_after_pass.swap(false, Ordering::SeqCst) {
            let _ = waker.wake();
        }
    }
}

/// The receive frontier, monotonic ns: every message (reply, ICMP error, transmit stamp)
/// the kernel queued on `sockets` before it has been pushed to `queue`, so the loop may
/// declare lost any request whose deadline is behind it once it has drained the queue
/// (call this *before* draining).
///
/// Proven either by the receive thread (a batch drain that ended with every socket
/// empty publishes its start), or here: between two reads of the thread's pass counter
/// that show no pass running or begun, the sockets had nothing to read at the time read
/// before looking, so nothing queued before then can be in the thread's hands or in a
/// socket. When neither holds (the thread is reading, or a socket has something), the
/// thread is asked to wake the loop at the end of its next pass, and the last published
/// frontier is returned. If the receive thread has stopped, the clock less `grace_ns`
/// stands in (the old rule).
pub fn frontier(queue: &ReplyQueue, sockets: &[Arc<IcmpSocket>], grace_ns: u64) -> u64 {
    let published = queue.drained_ns.load(Ordering::SeqCst);
    if !queue.alive.load(Ordering::SeqCst) {
        return clock::mono_ns().saturating_sub(grace_ns).max(published);
    }
    let proven = || {
        let before = queue.passes.load(Ordering::SeqCst);
        if before % 2 == 1 {
            return None;
        }
        let t = clock::mono_ns();
        let idle = !any_readable(sockets);
        (idle && queue.passes.load(Ordering::SeqCst) == before).then_some(t)
    };
    if let Some(t) = proven() {
        return t.max(published);
    }
    queue.wake_after_pass.store(true, Ordering::SeqCst);
    // A pass may have ended between the attempt and the request: then no wake would
    // come. Look again now that the request is visible to the thread.
    match proven() {
        Some(t) => {
            queue.wake_after_pass.store(false, Ordering::SeqCst);
            t.max(published)
        }
        None => published,
    }
}

/// Whether any of `sockets` has a message or an error queued (one `poll`, no waiting).
fn any_readable(sockets: &[Arc<IcmpSocket>]) -> bool {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 2];
    for (f, s) in fds.iter_mut().zip(sockets) {
        *f = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
    }
    // SAFETY: fds is a valid array of 2 pollfd (fd -1 entries are ignored).
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) };
    // An error of poll itself proves nothing: count it as "something to read".
    rc != 0
}

/// Fraction of the queue (1/n) at which the receive thread wakes the main loop.
pub const WAKE_THRESHOLD: usize = 4;

/// Receive batching window, ns (see the module docs). 20 ms of replies at 5,000/s is 100
/// datagrams: well within a socket's default receive buffer.
pub const BATCH_NS: u64 = 20_000_000;

/// Handle to the running receive thread.
pub struct Receiver {
    stop: OwnedFd,
    handle: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts the thread on the given sockets.
    pub fn spawn(
        sockets: Vec<Arc<IcmpSocket>>,
        queue: Arc<ReplyQueue>,
        waker: Arc<Waker>,
        wake_every_batch: bool,
    ) -> io::Result<Receiver> {
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let stop = unsafe { OwnedFd::from_raw_fd(fd) };
        let stop_raw = stop.as_raw_fd();
        queue.alive.store(true, Ordering::SeqCst);
        let handle = std::thread::Builder::new()
            .name("zzping-recv".into())
            .spawn(move || {
                receive_loop(&sockets, &queue, &waker, stop_raw, wake_every_batch);
                // Whatever made it return: the loop must not wait on a frontier any more.
                queue.alive.store(false, Ordering::SeqCst);
                let _ = waker.wake();
            })?;
        Ok(Receiver {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our eventfd.
        unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                (&one as *const u64).cast(),
                size_of::<u64>(),
            )
        };
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn receive_loop(
    sockets: &[Arc<IcmpSocket>],
    queue: &ReplyQueue,
    waker: &Waker,
    stop: i32,
    wake_every_batch: bool,
) {
    let wake_at = (queue.capacity() / WAKE_THRESHOLD).max(1);
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 3];
    for (i, s) in sockets.iter().take(2).enumerate() {
        fds[i] = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
    }
    fds[2] = libc::pollfd {
        fd: stop,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut buf = [0u8; 2048];
    let mut errbuf = [0u8; 512];
    let mut local = LocalAddrs::default();
    let mut error_logged = false;
    let mut in_call_logged = false;
    // Batching: off for good once a reply has no kernel timestamp, and off until a kernel
    // stamp proves that network timestamping is on (see the module docs).
    let mut batching = true;
    let mut stamps_live = false;
    let mut dense = false;
    let mut last_wake_ns = 0u64;
    // Requests whose transmit stamp was read and whose outcome (reply or ICMP error) was
    // not yet: the round in flight. Any echo reply counts (a raw socket also sees other
    // pingers'), so this may reach 0 early: that costs a wakeup, never a reply.
    let mut awaited = 0u64;
    loop {
        // A lower bound of the instant poll looked at the sockets (batch mode only).
        let mut polled_real_ns = 0;
        let rc = if dense {
            // Let replies queue in the sockets for a window (waking early only to stop),
            // then look at all of them at once.
            let until = clock::mono_ns().saturating_add(BATCH_NS);
            match crate::sys::wait_readable_until(stop, until) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("receive thread: ppoll failed: {e}");
                    return;
                }
            }
            polled_real_ns = clock::real_ns();
            let polled_mono_ns = clock::mono_ns();
            // SAFETY: fds is a valid array of 3 pollfd (fd -1 entries are ignored).
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
            if rc == 0 {
                // A whole window without a reply: everything queued before the look has
                // been handed over. Block again.
                queue.publish_drained(polled_mono_ns);
                dense = false;
                continue;
            }
            rc
        } else {
            // SAFETY: fds is a valid array of 3 pollfd (fd -1 entries are ignored).
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
            let now = clock::mono_ns();
            // Woken by transmit stamps alone: a round of sends just went out, and its
            // replies follow; one window collects them all.
            let round_out = fds[..2].iter().any(|f| f.revents & libc::POLLERR != 0)
                && fds[..2].iter().all(|f| f.revents & libc::POLLIN == 0);
            dense = batching
                && stamps_live
                && (round_out || now.saturating_sub(last_wake_ns) < BATCH_NS);
            last_wake_ns = now;
            rc
        };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(
                "receive thread: poll failed: {}",
                io::Error::last_os_error()
            );
            return;
        }
        if fds[2].revents != 0 {
            return;
        }
        queue.pass_begin();
        let mut batch = 0u32;
        for (i, s) in sockets.iter().take(2).enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            // When the error queue was last seen empty: every transmit stamp queued
            // before then has been handed over (poll saw no POLLERR at its instant).
            let mut errq_empty_at = polled_real_ns;
            if fds[i].revents & libc::POLLERR != 0 {
                // The error queue: ICMP errors (datagram sockets with IP_RECVERR) and
                // kernel transmit stamps. Read before the data, so a send's stamp reaches
                // the engine before its reply. Draining the queue also clears the socket
                // error, so poll stops reporting it.
                let d = drain_error_queue(s, &mut buf, queue, dense, &mut local);
                batch += d.messages;
                awaited = (awaited + u64::from(d.stamps)).saturating_sub(u64::from(d.errors));
                errq_empty_at = d.empty_at_real_ns;
                // Nothing queued: a pending socket error; the plain recv below consumes it.
                if d.read_any && fds[i].revents & libc::POLLIN == 0 {
                    continue;
                }
            }
            // Blocking mode reads one datagram per socket per poll: when more are queued
            // poll returns at once, and at ordinary rates this saves the recvmsg that
            // would return EAGAIN. Batch mode drains the socket (bounded by the queue).
            let mut budget = if dense { queue.capacity() } else { 1 };
            while budget > 0 {
                budget -= 1;
                match s.recv(&mut buf) {
                    Ok(Some(d)) => {
                        let user = clock::now();
                        let rx_stamp = classify_rx_stamp(&d, &mut stamps_live);
                        if rx_stamp == RxStamp::InCall && !in_call_logged {
                            in_call_logged = true;
                            tracing::debug!(
                                "receive: kernel stamps not on yet (stamp taken inside recvmsg); \
                                 those replies count as user-stamped"
                            );
                        }
                        if d.kernel_real_ns.is_none() && batching {
                            batching = false;
                            dense = false;
                            tracing::debug!("receive: no kernel timestamps; batching off");
                        }
                        // A send's transmit stamp is queued before its reply arrives. In
                        // blocking mode the one datagram read was queued when poll looked,
                        // and the error queue was empty or drained after that; a batch drain
                        // also reads replies that arrived after poll: if this one arrived
                        // after the error queue was last seen empty, its request's stamp
                        // may still be there, and must reach the engine first.
                        if dense
                            && s.tx_stamps()
                            && d.kernel_real_ns.is_none_or(|k| k >= errq_empty_at)
                        {
                            let e = drain_error_queue(s, &mut errbuf, queue, dense, &mut local);
                            batch += e.messages;
                            awaited =
                                (awaited + u64::from(e.stamps)).saturating_sub(u64::from(e.errors));
                            errq_empty_at = e.empty_at_real_ns;
                        }
                        let Some(icmp_bytes) = buf.get(d.start..d.end) else {
                            continue;
                        };
                        let Ok(msg) = icmp::parse(s.family(), icmp_bytes) else {
                            continue;
                        };
                        if msg == Message::Other {
                            continue;
                        }
                        // An ICMP error read from the socket itself (raw sockets) came
                        // from the datagram's source: the router that sent it.
                        let msg = match msg {
                            Message::Error {
                                kind,
                                ident,
                                seq,
                                orig_dst,
                                from: None,
                            } => Message::Error {
                                kind,
                                ident,
                                seq,
                                orig_dst,
                                from: Some(d.src),
                            },
                            m => m,
                        };
                        let msg = local.classify(msg);
                        let src = match msg {
                            Message::Error { orig_dst, .. } => orig_dst,
                            _ => d.src,
                        };
                        let len = queue.push(Reply {
                            family: s.family(),
                            src,
                            msg,
                            kernel_real_ns: d.kernel_real_ns,
                            rx_stamp,
                            batched: dense,
                            user,
                        });
                        batch += 1;
                        if matches!(msg, Message::EchoReply { .. } | Message::Error { .. }) {
                            awaited = awaited.saturating_sub(1);
                        }
                        if len == Some(wake_at) {
                            let _ = waker.wake();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Errors surfacing on recv (e.g. ICMP errors reported to datagram
                        // sockets) are not fatal.
                        if !error_logged {
                            tracing::debug!("receive: {e}");
                            error_logged = true;
                        }
                        break;
                    }
                }
            }
        }
        // A batch drain reads every socket empty: if nothing came meanwhile, everything
        // queued before this look has been handed over.
        let drained = dense.then(|| {
            let t = clock::mono_ns();
            let mut look = [fds[0], fds[1]];
            for f in &mut look {
                f.revents = 0;
            }
            // SAFETY: look is a valid array of 2 pollfd (fd -1 entries are ignored).
            let rc = unsafe { libc::poll(look.as_mut_ptr(), 2, 0) };
            (rc == 0).then_some(t)
        });
        if let Some(Some(t)) = drained {
            queue.publish_drained(t);
            // The round is answered: block until the next one rather than spend a
            // window finding nothing.
            if awaited == 0 {
                dense = false;
            }
        }
        queue.pass_end(waker);
        if batch > 0 && wake_every_batch {
            let _ = waker.wake();
        }
    }
}

/// Result of [`drain_error_queue`].
struct ErrorDrain {
    /// Messages handed over.
    messages: u32,
    /// Of those, transmit stamps (each a request sent), and ICMP errors (each an outcome).
    stamps: u32,
    errors: u32,
    /// Whether the queue held anything at all (some messages are not handed over).
    read_any: bool,
    /// Wall clock read just before the `recvmsg` that found the queue empty, ns.
    empty_at_real_ns: u64,
}

/// Hands every message of `s`'s error queue (ICMP errors, kernel transmit stamps) to the
/// engine's queue.
fn drain_error_queue(
    s: &IcmpSocket,
    buf: &mut [u8],
    queue: &ReplyQueue,
    batched: bool,
    local: &mut LocalAddrs,
) -> ErrorDrain {
    let (mut messages, mut stamps, mut errors) = (0, 0, 0);
    let mut read_any = false;
    loop {
        let before = clock::real_ns();
        let Ok(Some((msg, kernel_real_ns))) = s.recv_error(buf) else {
            return ErrorDrain {
                messages,
                stamps,
                errors,
                read_any,
                empty_at_real_ns: before,
            };
        };
        read_any = true;
        let msg = local.classify(msg);
        let src = match msg {
            Message::Error { orig_dst, .. } => {
                errors += 1;
                orig_dst
            }
            Message::TxStamp { .. } => {
                stamps += 1;
                s.family().unspecified()
            }
            _ => continue,
        };
        queue.push(Reply {
            family: s.family(),
            src,
            msg,
            kernel_real_ns,
            rx_stamp: RxStamp::Kernel,
            batched,
            user: clock::now(),
        });
        messages += 1;
    }
}

/// What a datagram's kernel receive stamp is worth (see the module docs); a stamp taken
/// before the call sets `stamps_live`.
fn classify_rx_stamp(d: &crate::sock::Datagram, stamps_live: &mut bool) -> RxStamp {
    match d.kernel_real_ns {
        None => RxStamp::Missing,
        Some(k) if k < d.call_real_ns => {
            *stamps_live = true;
            RxStamp::Kernel
        }
        Some(_) if *stamps_live => RxStamp::Kernel,
        Some(_) => RxStamp::InCall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u16) -> Reply {
        Reply {
            msg: Message::EchoReply {
                ident: 1,
                seq,
                token: None,
            },
            ..EMPTY
        }
    }

    fn datagram(kernel_real_ns: Option<u64>, call_real_ns: u64) -> crate::sock::Datagram {
        crate::sock::Datagram {
            start: 0,
            end: 0,
            src: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            kernel_real_ns,
            call_real_ns,
        }
    }

    #[test]
    fn stamps_inside_the_call_are_not_arrival_times_until_one_before_it_proves_them() {
        let mut live = false;
        // Timestamping not on yet: the kernel filled in the time of the call.
        assert_eq!(
            classify_rx_stamp(&datagram(Some(1_000), 1_000), &mut live),
            RxStamp::InCall
        );
        assert_eq!(
            classify_rx_stamp(&datagram(Some(1_500), 1_000), &mut live),
            RxStamp::InCall
        );
        assert!(!live);
        assert_eq!(
            classify_rx_stamp(&datagram(None, 2_000), &mut live),
            RxStamp::Missing
        );
        assert!(!live);
        // A stamp before the call: taken on arrival; timestamping is on from now on.
        assert_eq!(
            classify_rx_stamp(&datagram(Some(2_999), 3_000), &mut live),
            RxStamp::Kernel
        );
        assert!(live);
        // A packet that arrived during the call is then a genuine arrival stamp.
        assert_eq!(
            classify_rx_stamp(&datagram(Some(4_001), 4_000), &mut live),
            RxStamp::Kernel
        );
        assert_eq!(
            classify_rx_stamp(&datagram(None, 5_000), &mut live),
            RxStamp::Missing
        );
    }

    #[test]
    fn ring_keeps_order_counts_overflow_and_wraps() {
        let q = ReplyQueue::new(4);
        let mut out = Vec::with_capacity(4);
        for round in 0..3u16 {
            for i in 0..6 {
                q.push(r(round * 10 + i));
            }
            out.clear();
            assert_eq!(q.drain_into(&mut out), 4);
            let seqs: Vec<u16> = out
                .iter()
                .map(|x| match x.msg {
                    Message::EchoReply { seq, .. } => seq,
                    _ => 0,
                })
                .collect();
            assert_eq!(seqs, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
            // Partial drain leaves head in the middle: next round wraps.
            q.push(r(999));
            out.clear();
            assert_eq!(q.drain_into(&mut out), 1);
        }
        assert_eq!(q.dropped(), 6);
        assert_eq!(q.received(), 15);
        assert_eq!(out.capacity(), 4);
    }
}
