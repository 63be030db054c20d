//! The receive thread and its hand-over queue.
//!
//! The thread blocks in `poll(2)` on both ICMP sockets (and an eventfd used to stop it),
//! drains every readable socket with non-blocking `recvmmsg` (up to
//! [`RecvBatch::CAPACITY`] messages a call), parses each message into a
//! small `Copy` [`Reply`] and pushes it into a [`ReplyQueue`]: a fixed ring allocated
//! once, behind a mutex (uncontended in practice: the main thread holds it only to copy
//! out a batch). When the ring is full replies are dropped and counted; the main loop
//! flags frames with `FLAG_RECV_OVERFLOW`.
//!
//! Dense traffic is received in batches: when rounds of replies arrive less than
//! [`BATCH_NS`] apart, the thread stops blocking in `poll` per reply and instead sleeps a
//! window ([`WINDOW_NS`], 50 ms, shorter when more than [`ROUNDS_READ_MAX_REPLIES`]
//! replies would wait), then drains everything that queued up in the sockets meanwhile
//! (one wakeup per window instead of one per reply: at 1,000 replies/s, 20 wakeups
//! instead of 1,000). RTTs come from the kernel's receive timestamps, so waiting does not
//! change them; a loss is declared only behind the receive frontier (see [`frontier`]),
//! so a reply that waited in the socket is never expired as lost. Batching turns itself off for good if a reply comes without a kernel timestamp
//! (the user-space stamp would then carry the wait), and a window that brings nothing
//! returns the thread to blocking `poll`.
//!
//! Rounds wake the thread once: the loop sends every host of a rate in one wakeup, and
//! counts its sends ([`ReplyQueue::note_sent`]). The sockets read here carry no
//! transmit stamps (the send sockets keep them, see `sock.rs`: a stamp on the error
//! queue would wake `poll` per round before any reply). The first reply of a round wakes
//! the thread, which then reads on while replies of the round are awaited (sent, and no
//! reply or ICMP error with our identifier read for them), and blocks again once they
//! are all in; a wakeup while some are still out (they arrive apart) does not count as
//! a round of its own. What a pass left unanswered when the next round begins is given
//! up on (lost, late, or answered twice: the count only decides when the thread sleeps,
//! never what it reads), and remembered: a later pass that leaves no larger share of its
//! rounds unanswered is done, so a host that stopped answering does not keep the thread
//! waiting in `poll` for the next round's first reply. Every pass ends with a look at
//! the sockets; found empty, it publishes the receive frontier (see [`frontier`]). Once a round was answered, the thread learns how long after
//! its first send the last reply arrived (kernel stamps), and sleeps without looking at
//! the sockets until the next round is due plus that time and a margin
//! ([`ReplyQueue::note_round_end`]), then reads the whole round in one wakeup; when the
//! replies are not all in by then it waits for them in `poll`. Rounds less than
//! [`ROUNDS_READ_NS`] apart are read several at a time (two at 10 rounds a second: the
//! sleep ends after the second one's replies; never more than leave
//! [`ROUNDS_READ_MAX_REPLIES`] replies waiting), since a wakeup, not a read, is what costs:
//! the loop learns of those replies up to [`ROUNDS_READ_NS`] later, which only delays
//! when their frames close. Rounds closer than [`BATCH_NS`] apart are received in
//! windows.
//!
//! # Receive stamps that are not arrival times
//! Linux stamps an incoming packet only while some socket asks for receive timestamps:
//! the first such socket switches network timestamping on through deferred work (a
//! kernel worker), and until that work has run, packets arrive unstamped and `recvmsg`
//! fills in *the time of the call* (`__sock_recv_timestamp`: "race occurred between
//! timestamp enabling and packet receiving"). On a busy machine the worker can run
//! milliseconds late; a reply that waited a batching window in the socket then looked
//! like a 20 ms RTT on loopback. So each read (`recvmmsg`) is bracketed by a wall-clock
//! reading taken just before it ([`crate::sock::Datagram::call_real_ns`]):
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
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::Waker;

use crate::clock;
use crate::engine::{Reply, RxStamp};
use crate::icmp::{self, Message};
use crate::local::LocalAddrs;
use crate::sock::{IcmpSocket, RecvBatch};

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
    /// Requests sent on the sockets the thread reads (counted by the loop).
    sent: AtomicU64,
    /// The last round of sends: when it began (wall clock ns), when the next one is due
    /// (monotonic ns; 0: unknown) and how far apart they are (ns).
    round_real_ns: AtomicU64,
    next_round_ns: AtomicU64,
    round_period_ns: AtomicU64,
    /// Requests sent before the last round began, and in it.
    round_start_sent: AtomicU64,
    round_requests: AtomicU64,
}

/// The ring: `len` replies from `head` on (wrapping) are written; the other slots may
/// never have been. The buffer is allocated once and left untouched until used, so
/// its memory becomes resident only as far as traffic has reached (a 16,384-reply ring
/// is about 1.6 MB, which a few hosts at 10/s take minutes to go round).
struct Ring {
    buf: Box<[MaybeUninit<Reply>]>,
    head: usize,
    len: usize,
}

impl ReplyQueue {
    /// A queue holding up to `capacity` replies.
    pub fn new(capacity: usize) -> Self {
        ReplyQueue {
            ring: Mutex::new(Ring {
                buf: Box::new_uninit_slice(capacity.max(1)),
                head: 0,
                len: 0,
            }),
            dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            passes: AtomicU64::new(0),
            drained_ns: AtomicU64::new(0),
            wake_after_pass: AtomicBool::new(false),
            alive: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            round_real_ns: AtomicU64::new(0),
            next_round_ns: AtomicU64::new(0),
            round_period_ns: AtomicU64::new(0),
            round_start_sent: AtomicU64::new(0),
            round_requests: AtomicU64::new(0),
        }
    }

    /// A round of sends begins (`at`: a clock reading before its first send). The
    /// receive thread learns from it how long replies take to be all in.
    pub fn note_round_start(&self, at: clock::Now) {
        self.round_real_ns.store(at.real_ns, Ordering::Relaxed);
        self.round_start_sent.store(self.sent(), Ordering::Relaxed);
    }

    /// The round's sends are done; the next round is due at `next_ns` (monotonic; 0:
    /// none), `period_ns` after this one. The receive thread times its sleep by it (see
    /// the module docs).
    pub fn note_round_end(&self, next_ns: u64, period_ns: u64) {
        let start = self.round_start_sent.load(Ordering::Relaxed);
        self.round_requests
            .store(self.sent().saturating_sub(start), Ordering::Relaxed);
        self.next_round_ns.store(next_ns, Ordering::Relaxed);
        self.round_period_ns.store(period_ns, Ordering::Relaxed);
    }

    /// Counts `n` requests sent on the sockets the receive thread reads: their replies
    /// are awaited (the thread sleeps once per round of them, see the module docs).
    pub fn note_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests sent so far ([`ReplyQueue::note_sent`]).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
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
        ring.buf[i].write(r);
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
            // SAFETY: the `len` slots from `head` on were written by `push`.
            out.push(unsafe { ring.buf[i].assume_init() });
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

/// The receive frontier, monotonic ns: every message (reply, ICMP error) the kernel
/// queued on `sockets` (the receive sockets: the loop reads the transmit stamps itself,
/// before it drains the queue) before it has been pushed to `queue`, so the loop may
/// declare lost any request whose deadline is behind it once it has drained the queue
/// (call this *before* draining).
///
/// Proven either by the receive thread (a batch drain that ended with every socket
/// empty publishes its start), or here: between two reads of the thread's pass counter
/// that show no pass running or begun, the sockets had nothing to read at the time read
/// before looking, so nothing queued before then can be in the thread's hands or in a
/// socket. When neither holds (the thread is reading, or a socket has something), the
/// last published frontier is returned, and with `ask_wake` the thread is asked to wake
/// the loop at the end of its next pass (at the latest when its window or its sleep for
/// the next round ends, [`ROUND_SLEEP_MAX_NS`] at most); without it the loop relies on a
/// later wakeup of its own (the thread publishes a frontier at the end of every pass
/// that leaves the sockets empty). If the receive thread has stopped, the clock less
/// `grace_ns` stands in (the old rule).
pub fn frontier(
    queue: &ReplyQueue,
    sockets: &[Arc<IcmpSocket>],
    grace_ns: u64,
    ask_wake: bool,
) -> u64 {
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
    if !ask_wake {
        return published;
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

/// Rounds of replies closer together than this are received in windows (see the module
/// docs), ns; the shortest window.
pub const BATCH_NS: u64 = 20_000_000;

/// The longest receive window, ns: rounds 10 ms apart (100/s) are read five at a time.
/// A window is shortened so that no more than [`ROUNDS_READ_MAX_REPLIES`] replies wait
/// in the sockets (250 at 5,000/s), never below [`BATCH_NS`]. Replies wait at most this
/// long before the loop has them (their frames close up to that much later); their
/// kernel stamps keep the RTTs exact. 20 ms windows cost the receive thread 12.7 µs per
/// ping at 3 hosts x 100/s on loopback, 50 ms ones 5.3 (docs/benchmarks.md).
pub const WINDOW_NS: u64 = 50_000_000;

/// The receive window for rounds `period_ns` apart of `size` requests each (see
/// [`WINDOW_NS`]).
fn window_ns(period_ns: u64, size: u64) -> u64 {
    let by_size = ROUNDS_READ_MAX_REPLIES.saturating_mul(period_ns) / size.max(1);
    WINDOW_NS.min(by_size).max(BATCH_NS)
}

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
        // The send sockets keep the transmit stamps (see `sock.rs`): nothing here must
        // wake this thread per send.
        debug_assert!(!s.tx_stamps(), "a receive socket with transmit stamps");
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
    let mut rbatch = RecvBatch::new();
    let mut local = LocalAddrs::default();
    let mut error_logged = false;
    let mut in_call_logged = false;
    // Batching: off for good once a reply has no kernel timestamp, and off until a kernel
    // stamp proves that network timestamping is on (see the module docs).
    let mut batching = true;
    let mut stamps_live = false;
    let mut dense = false;
    // The rounds (see the module docs): requests sent (counted by the loop) against
    // outcomes read here (replies and ICMP errors carrying our identifier); what the
    // last pass left unanswered; when the current round's first reply woke the thread.
    let mut round = Round::default();
    loop {
        let rc = if dense {
            // Let replies queue in the sockets for a window (waking early only to stop),
            // then look at all of them at once.
            let sent_before = queue.sent();
            let window = window_ns(
                queue.round_period_ns.load(Ordering::Relaxed),
                queue.round_requests.load(Ordering::Relaxed),
            );
            let until = clock::mono_ns().saturating_add(window);
            let Some((rc, polled_mono_ns)) = sleep_then_look(stop, until, &mut fds) else {
                return;
            };
            if rc == 0 {
                // A whole window without a reply: everything queued before the look has
                // been handed over, and what was sent before the window and is still
                // unanswered is lost or late. Block again.
                queue.publish_drained(polled_mono_ns);
                round.settled = round.settled.max(sent_before);
                round.first_wake_ns = polled_mono_ns;
                dense = false;
                continue;
            }
            rc
        } else {
            // Rounds: with the last one answered and its replies' spread known, sleep
            // until the next one's replies are in and read them in one wakeup; rounds
            // closer than a window apart are received in windows.
            let mut rc = 0;
            let now = clock::mono_ns();
            let mut next = queue.next_round_ns.load(Ordering::Relaxed);
            let period = queue.round_period_ns.load(Ordering::Relaxed);
            if next <= now {
                // That round is under way (its replies may be read before the loop is
                // done sending it): wait for the one after.
                next = next.saturating_add(period);
            }
            // Rounds less than ROUNDS_READ_NS apart are read a few at a time.
            let size = queue.round_requests.load(Ordering::Relaxed);
            next = next.saturating_add(period.saturating_mul(rounds_per_read(period, size) - 1));
            if batching && stamps_live && round.left == 0 && next > now && period > 0 {
                if period < BATCH_NS {
                    dense = true;
                    round.first_wake_ns = now;
                    continue;
                }
                let until = next
                    .saturating_add(round.settle_ns)
                    .min(now.saturating_add(ROUND_SLEEP_MAX_NS));
                if round.settle_ns > 0 {
                    let Some((looked, _)) = sleep_then_look(stop, until, &mut fds) else {
                        return;
                    };
                    rc = looked;
                }
            }
            if rc == 0 {
                // SAFETY: fds is a valid array of 3 pollfd (fd -1 entries are ignored).
                rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
            }
            let now = clock::mono_ns();
            let since = now.saturating_sub(round.first_wake_ns);
            // More replies of the round whose first reply woke the thread: read them.
            let within_round = round.left > 0 && since < BATCH_NS;
            if !within_round {
                // A new round. What the last pass left unanswered is lost or late (or
                // answered twice): count from here.
                round.begin();
                // Rounds following each other closer than a window (the last one fully
                // answered): receive in windows.
                dense = batching && stamps_live && round.left == 0 && since < BATCH_NS;
                round.first_wake_ns = now;
            }
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
        // The latest arrival (kernel stamp) of an outcome read in this pass.
        let mut last_arrival_real_ns = 0u64;
        for (i, s) in sockets.iter().take(2).enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            if fds[i].revents & libc::POLLERR != 0 {
                // The error queue: ICMP errors (datagram sockets with IP_RECVERR).
                // Draining it also clears the socket error, so poll stops reporting it.
                let d = drain_error_queue(s, &mut buf, queue, dense, &mut local);
                batch += d.messages;
                round.settled += u64::from(d.outcomes);
                // Nothing queued: a pending socket error; the plain recv below consumes it.
                if d.read_any && fds[i].revents & libc::POLLIN == 0 {
                    continue;
                }
            }
            // Up to `RecvBatch::CAPACITY` replies per `recvmmsg`. Batch mode drains the
            // socket (bounded by the queue). Blocking mode reads while the round's
            // replies are awaited, then stops: when more are queued poll returns at once.
            // A call that returns fewer than it asked for found the socket empty, so no
            // call is spent finding nothing.
            let mut budget = queue.capacity();
            while budget > 0 {
                let want = budget.min(RecvBatch::CAPACITY);
                // One user-space reading for the whole call's replies (it is when they
                // were read; their RTTs come from the kernel's stamps).
                let mut user = None;
                let read = s.recv_many(&mut rbatch, want, |d, buf| {
                    let user = *user.get_or_insert_with(clock::now);
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
                    let Some(icmp_bytes) = buf.get(d.start..d.end) else {
                        return;
                    };
                    let Ok(msg) = icmp::parse(s.family(), icmp_bytes) else {
                        return;
                    };
                    if msg == Message::Other {
                        return;
                    }
                    // An ICMP error read from the socket itself (raw sockets) came from
                    // the datagram's source: the router that sent it.
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
                    if is_outcome(s, &msg) {
                        round.settled += 1;
                        last_arrival_real_ns =
                            last_arrival_real_ns.max(d.kernel_real_ns.unwrap_or(0));
                    }
                    if len == Some(wake_at) {
                        let _ = waker.wake();
                    }
                });
                match read {
                    // Fewer than asked: the socket is empty. Blocking mode stops once the
                    // round's replies are in (when more are queued poll returns at once).
                    Ok(n) if n == want && (dense || round.awaited(queue) > 0) => budget -= n,
                    Ok(_) => break,
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
        // If the pass left every socket empty (a batch drain reads them empty; a round
        // read usually does), everything queued before this look has been handed over:
        // the loop declares losses behind it at its next wakeup (see `frontier`).
        let drained = {
            let t = clock::mono_ns();
            let mut look = [fds[0], fds[1]];
            for f in &mut look {
                f.revents = 0;
            }
            // SAFETY: look is a valid array of 2 pollfd (fd -1 entries are ignored).
            let rc = unsafe { libc::poll(look.as_mut_ptr(), 2, 0) };
            (rc == 0).then_some(t)
        };
        if round.end_pass(queue.sent()) && last_arrival_real_ns != 0 {
            // This pass answered the round, but for as many requests as went unanswered
            // in the last round (a host that stopped answering): learn how long after its
            // sends the replies were all in, and give up on the rest now rather than wait
            // for them in `poll` until the next round's first reply.
            let sent_real_ns = queue.round_real_ns.load(Ordering::Relaxed);
            let period = queue.round_period_ns.load(Ordering::Relaxed);
            round.learn(last_arrival_real_ns.saturating_sub(sent_real_ns), period);
            round.give_up();
        }
        if let Some(t) = drained {
            queue.publish_drained(t);
            // The round is answered: block until the next one rather than spend a
            // window finding nothing (a reply within a window of this look starts
            // windows again at once).
            if dense && round.left == 0 {
                dense = false;
                round.first_wake_ns = t;
            }
        }
        queue.pass_end(waker);
        if batch > 0 && wake_every_batch {
            let _ = waker.wake();
        }
    }
}

/// Where the receive thread is in the loop's rounds of requests (see the module docs).
/// Only when the thread sleeps depends on it, never what it reads.
#[derive(Debug, Default)]
struct Round {
    /// Requests answered (a reply or an ICMP error with our identifier read), or given
    /// up on (unanswered when a new round began).
    settled: u64,
    /// Requests sent, as counted at the end of the last pass.
    sent_at_pass: u64,
    /// Of those, not settled at the end of the last pass.
    left: u64,
    /// When the first reply of the current round woke the thread (monotonic ns).
    first_wake_ns: u64,
    /// How long after a round is due its replies are all in, with a margin (0: not
    /// known yet): the thread sleeps that long past the next round's due time.
    settle_ns: u64,
    /// Requests sent before the rounds now awaited (when the count was last settled).
    base_sent: u64,
    /// The rounds last given up on: how many of their requests were left unanswered,
    /// of how many. A pass that leaves no larger share unanswered answered its rounds (the others are hosts that are not answering at all), so a switched-off
    /// device beside live ones does not keep the thread waking per reply and per round.
    chronic_left: u64,
    chronic_sent: u64,
}

/// The longest the thread sleeps without looking at its sockets while it waits for a
/// round: what arrived outside rounds (another pinger's replies on a raw socket, a reply
/// after its round was given up on) waits at most this long, and so does a loss the
/// loop cannot prove before the thread has read it (see [`frontier`]).
const ROUND_SLEEP_MAX_NS: u64 = 1_000_000_000;

/// The receive thread reads rounds at most about this often: rounds closer together
/// (but at least [`BATCH_NS`] apart) are read several in one wakeup (see the module
/// docs). Replies wait for it in the socket, their kernel stamps keeping the RTTs exact.
pub const ROUNDS_READ_NS: u64 = 200_000_000;

/// At most this many replies are left waiting in the sockets for one read of several
/// rounds: well within the receive buffer the sockets ask for (1 MiB; a reply takes
/// about 1 KiB of it), as a batching window's replies are.
pub const ROUNDS_READ_MAX_REPLIES: u64 = 256;

/// How many rounds `period_ns` apart, of `size` requests each, one wakeup of the receive
/// thread reads.
fn rounds_per_read(period_ns: u64, size: u64) -> u64 {
    let by_time = ROUNDS_READ_NS / period_ns.max(1);
    let by_size = ROUNDS_READ_MAX_REPLIES / size.max(1);
    by_time.min(by_size).max(1)
}

/// Added to the time a round's replies took to be all in (the loop may send a round
/// late by about this much on a loaded machine, and replies jitter).
const SETTLE_MARGIN_NS: u64 = 2_000_000;

impl Round {
    /// A round answered `took_ns` after its sends; rounds are `period_ns` apart. The
    /// settle time follows a slower round at once and a faster one gradually; replies
    /// that take more than half the period are waited for in `poll` (settle 0).
    fn learn(&mut self, took_ns: u64, period_ns: u64) {
        let want = took_ns.saturating_add(SETTLE_MARGIN_NS);
        self.settle_ns = if want > period_ns / 2 {
            0
        } else if want >= self.settle_ns {
            want
        } else {
            self.settle_ns - (self.settle_ns - want) / 8
        };
    }

    /// A new round: what the last pass left unanswered is given up on (lost, late, or
    /// answered twice), and remembered as what rounds leave unanswered.
    fn begin(&mut self) {
        if self.left > 0 {
            self.note_chronic();
        }
        self.settled = self.sent_at_pass;
        self.base_sent = self.sent_at_pass;
    }

    /// A pass ended with `sent` requests sent so far; returns whether it answered the
    /// awaited rounds but for the share that went unanswered last time (then the caller
    /// learns the settle time and gives up on the rest).
    fn end_pass(&mut self, sent: u64) -> bool {
        self.sent_at_pass = sent;
        self.left = sent.saturating_sub(self.settled);
        self.answered_but_chronic()
    }

    /// Gives up on the requests the last pass left unanswered (lost, late, or answered
    /// twice): they are what the next round is expected to leave unanswered too.
    fn give_up(&mut self) {
        self.note_chronic();
        self.settled = self.sent_at_pass;
        self.base_sent = self.sent_at_pass;
        self.left = 0;
    }

    /// Remembers what the last pass left unanswered as what rounds leave unanswered.
    fn note_chronic(&mut self) {
        self.chronic_left = self.left;
        self.chronic_sent = self.sent_at_pass.saturating_sub(self.base_sent);
    }

    /// Whether the last pass left no larger share of the awaited rounds' requests
    /// unanswered than the rounds last given up on did (none, at first).
    fn answered_but_chronic(&self) -> bool {
        let awaited = self.sent_at_pass.saturating_sub(self.base_sent);
        self.left == 0
            || (self.chronic_sent > 0
                && self.left.saturating_mul(self.chronic_sent)
                    <= self.chronic_left.saturating_mul(awaited))
    }

    /// Requests sent and not settled, now.
    fn awaited(&self, queue: &ReplyQueue) -> u64 {
        queue.sent().saturating_sub(self.settled)
    }
}

/// Sleeps until `until` (monotonic ns) or until `stop` is signalled, then looks at the
/// sockets without waiting: `Some((poll's result, the monotonic time just before the
/// look))`, or `None` when the thread must end (stopped, or the sleep failed: logged).
/// Everything that arrived before the returned time is seen by the look.
fn sleep_then_look(stop: i32, until: u64, fds: &mut [libc::pollfd; 3]) -> Option<(i32, u64)> {
    match crate::sys::wait_readable_until(stop, until) {
        Ok(true) => return None,
        Ok(false) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => {
            tracing::error!("receive thread: ppoll failed: {e}");
            return None;
        }
    }
    let looked_mono_ns = clock::mono_ns();
    // SAFETY: fds is a valid array of 3 pollfd (fd -1 entries are ignored).
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    Some((rc, looked_mono_ns))
}

/// Whether `msg`, read from `s`, is the outcome of one of our requests.
fn is_outcome(s: &IcmpSocket, msg: &Message) -> bool {
    match *msg {
        Message::EchoReply { ident, .. } | Message::Error { ident, .. } => ident == s.ident(),
        _ => false,
    }
}

/// Result of [`drain_error_queue`].
struct ErrorDrain {
    /// Messages handed over.
    messages: u32,
    /// Of those, outcomes of our requests (ICMP errors about them).
    outcomes: u32,
    /// Whether the queue held anything at all (some messages are not handed over).
    read_any: bool,
}

/// Hands every message of `s`'s error queue (ICMP errors) to the engine's queue.
fn drain_error_queue(
    s: &IcmpSocket,
    buf: &mut [u8],
    queue: &ReplyQueue,
    batched: bool,
    local: &mut LocalAddrs,
) -> ErrorDrain {
    let (mut messages, mut outcomes) = (0, 0);
    let mut read_any = false;
    loop {
        let Ok(Some((msg, kernel_real_ns))) = s.recv_error(buf) else {
            return ErrorDrain {
                messages,
                outcomes,
                read_any,
            };
        };
        read_any = true;
        let msg = local.classify(msg);
        let src = match msg {
            Message::Error { orig_dst, .. } => orig_dst,
            Message::TxStamp { .. } => s.family().unspecified(),
            _ => continue,
        };
        outcomes += u32::from(is_outcome(s, &msg));
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
    use crate::icmp::Family;

    fn r(seq: u16) -> Reply {
        Reply {
            family: Family::V4,
            src: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            msg: Message::EchoReply {
                ident: 1,
                seq,
                token: None,
            },
            kernel_real_ns: None,
            rx_stamp: RxStamp::Missing,
            batched: false,
            user: clock::Now {
                mono_ns: 0,
                real_ns: 0,
            },
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
    fn rounds_closer_than_the_read_interval_are_read_together() {
        const MS: u64 = 1_000_000;
        assert_eq!(rounds_per_read(100 * MS, 3), 2, "10 rounds a second");
        assert_eq!(rounds_per_read(50 * MS, 3), 4);
        let closest = rounds_per_read(BATCH_NS, 3);
        assert_eq!(closest, 10, "the closest rounds still read in rounds");
        assert_eq!(rounds_per_read(ROUNDS_READ_NS, 3), 1);
        assert_eq!(rounds_per_read(1_000 * MS, 3), 1, "one round a second");
        // Large rounds: the replies left in the sockets stay bounded.
        assert_eq!(rounds_per_read(BATCH_NS, 100), 2);
        assert_eq!(rounds_per_read(BATCH_NS, 200), 1);
        assert_eq!(rounds_per_read(100 * MS, 1_000), 1);
        let degenerate = rounds_per_read(0, 0);
        assert_eq!(degenerate, ROUNDS_READ_MAX_REPLIES, "no division by zero");
    }

    #[test]
    fn windows_last_50_ms_unless_too_many_replies_would_wait() {
        const MS: u64 = 1_000_000;
        assert_eq!(window_ns(10 * MS, 3), WINDOW_NS, "3 hosts at 100/s");
        assert_eq!(window_ns(10 * MS, 50), WINDOW_NS, "50 hosts: 250 replies");
        assert_eq!(
            window_ns(10 * MS, 100),
            25_600_000,
            "100 hosts: 256 replies"
        );
        assert_eq!(window_ns(MS, 1000), BATCH_NS, "never below the shortest");
        assert_eq!(window_ns(0, 0), BATCH_NS, "nothing known yet");
    }

    #[test]
    fn the_round_sleep_follows_slower_replies_at_once_and_faster_ones_gradually() {
        const MS: u64 = 1_000_000;
        let mut r = Round::default();
        // 10 rounds/s: replies all in 0.5 ms after the round began.
        r.learn(MS / 2, 100 * MS);
        assert_eq!(r.settle_ns, MS / 2 + SETTLE_MARGIN_NS);
        // A slower round: followed at once.
        r.learn(10 * MS, 100 * MS);
        assert_eq!(r.settle_ns, 10 * MS + SETTLE_MARGIN_NS);
        // A faster one: an eighth of the way there.
        r.learn(2 * MS, 100 * MS);
        assert_eq!(r.settle_ns, 12 * MS - (12 * MS - 4 * MS) / 8);
        // Replies that take half the period or more: waited for in poll instead.
        r.learn(49 * MS, 100 * MS);
        assert_eq!(r.settle_ns, 0);
    }

    #[test]
    fn a_host_that_never_answers_does_not_hold_the_rounds_open() {
        let mut r = Round::default();
        // Three hosts, one switched off. The first round: two answers, one missing.
        r.begin();
        r.settled += 2;
        assert!(
            !r.end_pass(3),
            "nothing known yet: the third answer is awaited"
        );
        assert_eq!(r.left, 1);
        // The next round's first reply: the missing one is given up on, and remembered.
        r.begin();
        assert_eq!((r.chronic_left, r.chronic_sent), (1, 3));
        // Two rounds read at once, two answers each: answered but for the usual share,
        // so nothing is left awaited (the thread sleeps until the next read).
        r.settled += 4;
        assert!(r.end_pass(9));
        r.give_up();
        assert_eq!((r.left, r.chronic_left, r.chronic_sent), (0, 2, 6));
        // A second host answers slower than the read: more than the usual share is
        // missing, so the thread waits for it...
        r.settled += 3;
        assert!(!r.end_pass(15));
        // ...and a late answer within the round brings the share back.
        r.settled += 1;
        assert!(r.end_pass(15));
        r.give_up();
        // The host answers again: no share missing, and the remembered one goes to zero.
        r.settled += 6;
        assert!(r.end_pass(21));
        r.give_up();
        assert_eq!(r.chronic_left, 0);
        r.settled += 5;
        assert!(
            !r.end_pass(27),
            "all answered last time: every answer is awaited"
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
