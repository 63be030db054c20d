//! Name resolution off the pinging thread.
//!
//! `getaddrinfo` blocks for as long as the resolver takes: microseconds for `/etc/hosts`
//! or a cached name, the resolver's timeout (5 s per attempt by default) when DNS does
//! not answer, which is exactly what happens during an ISP outage. The loop must not
//! wait for it: every host's pings would stop meanwhile (a `stall`). So names go to one
//! thread ([`Resolver`]) that resolves them in turn; the loop picks the answers up on its
//! next wakeup (the thread wakes it through the loop's mio waker) and starts or re-points
//! the hosts. IP literals never come here.
//!
//! A test hook delays every resolution: [`RESOLVE_DELAY_ENV`] (ms; a warning says it is
//! set), standing in for a resolver that does not answer.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::Waker;
use tracing::warn;

use crate::config;

/// Test hook: every resolution waits this many ms first.
pub const RESOLVE_DELAY_ENV: &str = "ZZPING_TEST_RESOLVE_DELAY_MS";
/// A resolution this slow is said in the log (it would have held every ping back, were it
/// on the pinging thread).
const SLOW_NS: u64 = 500_000_000;
/// Names waiting for the thread at most (a configuration has a few; more wait for the
/// next try).
const QUEUE_LEN: usize = 256;

/// An answer: the name, and its first address or why there is none.
pub type Answer = (String, io::Result<IpAddr>);

/// The answers the thread found, for the loop to take.
#[derive(Default)]
struct Done {
    answers: Mutex<Vec<Answer>>,
    any: AtomicBool,
}

/// The resolver thread, and the names asked of it and not answered yet.
pub struct Resolver {
    tx: Option<SyncSender<String>>,
    done: Arc<Done>,
    pending: HashSet<String>,
}

impl Resolver {
    /// Starts the thread; it wakes the loop through `waker` after each answer. Without a
    /// thread (it could not start) names are resolved on the caller's thread.
    pub fn start(waker: Arc<Waker>) -> Resolver {
        let (tx, rx) = sync_channel::<String>(QUEUE_LEN);
        let done = Arc::new(Done::default());
        let d = Arc::clone(&done);
        let delay = std::env::var(RESOLVE_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        if let Some(ms) = delay {
            warn!("{RESOLVE_DELAY_ENV}={ms:?}: a test hook delays every name resolution");
        }
        let tx = match std::thread::Builder::new()
            .name("zzping-resolve".into())
            .spawn(move || run(&rx, &d, &waker, delay))
        {
            // Detached: at exit it may be inside getaddrinfo for seconds; nothing waits.
            Ok(_) => Some(tx),
            Err(e) => {
                warn!("names: cannot start the resolver thread ({e}); resolving on the loop");
                None
            }
        };
        Resolver {
            tx,
            done,
            pending: HashSet::new(),
        }
    }

    /// Asks for `name` (nothing if it is being resolved already). Without the thread,
    /// resolves it now; the answer is taken like the thread's.
    pub fn ask(&mut self, name: &str) {
        if self.pending.contains(name) {
            return;
        }
        let Some(tx) = &self.tx else {
            let r = resolve_timed(name, None);
            self.done.push((name.to_owned(), r));
            return;
        };
        match tx.try_send(name.to_owned()) {
            Ok(()) => {
                self.pending.insert(name.to_owned());
            }
            // Asked again at the next retry or re-resolution.
            Err(TrySendError::Full(_)) => warn!("names: {QUEUE_LEN} names waiting; {name} later"),
            Err(TrySendError::Disconnected(_)) => {
                warn!("names: the resolver thread is gone; resolving on the loop");
                self.tx = None;
                self.ask(name);
            }
        }
    }

    /// Moves the answers found since the last call into `out` (one relaxed load when
    /// there are none).
    pub fn take(&mut self, out: &mut Vec<Answer>) {
        if !self.done.any.swap(false, Ordering::Acquire) {
            return;
        }
        let mut a = self.done.answers.lock().unwrap_or_else(|e| e.into_inner());
        for (name, _) in a.iter() {
            self.pending.remove(name);
        }
        out.append(&mut a);
    }
}

impl Done {
    fn push(&self, answer: Answer) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(answer);
        self.any.store(true, Ordering::Release);
    }
}

/// The thread: one name at a time, until the loop drops its sender.
fn run(rx: &Receiver<String>, done: &Done, waker: &Waker, delay: Option<Duration>) {
    for name in rx {
        let r = resolve_timed(&name, delay);
        done.push((name, r));
        // A failed wake only delays the answer to the loop's next wakeup.
        let _ = waker.wake();
    }
}

/// [`config::resolve`], saying in the log when it was slow (a resolver that does not
/// answer: DNS down, or unreachable).
fn resolve_timed(name: &str, delay: Option<Duration>) -> io::Result<IpAddr> {
    let t0 = crate::clock::mono_ns();
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    let r = config::resolve(name);
    let took = crate::clock::mono_ns().saturating_sub(t0);
    if took >= SLOW_NS {
        warn!(
            "resolving {name:?} took {:.1} s (is DNS down?); the pings went on meanwhile",
            took as f64 / 1e9
        );
    }
    r
}
