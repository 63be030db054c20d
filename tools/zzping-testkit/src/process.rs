//! Child processes bounded in time: every wait has a limit, and a child that outlives it
//! is killed and the test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often bounded waits look at a child (a poll, not a guess at how long it takes).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Kills and reaps the child when dropped (also when the test panics).
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` at most `limit`; past it, kills it and panics naming `what`.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: killed");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Collects a child's output (its stdout and stderr must be piped), killing it and
/// panicking after `limit`.
pub fn output_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.expect("wait_with_output"),
        Err(_) => {
            // SAFETY: plain kill(2) of our own child's pid (not yet reaped: the waiting
            // thread is still blocked on it).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("command still running after {limit:?}: killed");
        }
    }
}

/// Reads a pipe to its end on a thread (so a chatty child never blocks on a full pipe);
/// join the handle after the child exited.
pub fn read_to_end(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// A child's log lines as they come (read on a thread), and everything seen so far.
pub struct LogLines {
    rx: mpsc::Receiver<String>,
    /// Every line received so far, each ending in `\n`.
    pub seen: String,
}

impl LogLines {
    /// Follows `pipe` (e.g. a child's piped stderr) line by line.
    pub fn follow(pipe: impl Read + Send + 'static) -> LogLines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        LogLines {
            rx,
            seen: String::new(),
        }
    }

    /// Waits (at most `limit`) for a line containing `needle`; panics with the log
    /// otherwise.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        if !self.wait_until(needle, limit) {
            panic!("no {needle:?} in the log within {limit:?}:\n{}", self.seen);
        }
    }

    /// Waits (at most `limit`) for a line containing `needle`: false when none came
    /// (the pipe ended or the time ran out).
    pub fn wait_until(&mut self, needle: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push_str(&l);
                    self.seen.push('\n');
                    if hit {
                        return true;
                    }
                }
                Err(_) => break,
            }
        }
        false
    }

    /// Every line until the pipe ends (the child exited and closed it), waiting at most
    /// `limit`; panics with the log otherwise.
    pub fn finish(mut self, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push_str(&l);
                    self.seen.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the log did not end within {limit:?}:\n{}", self.seen)
                }
            }
        }
    }

    /// Takes in the lines already received, without waiting.
    pub fn drain(&mut self) -> &str {
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push_str(&l);
            self.seen.push('\n');
        }
        &self.seen
    }
}

/// Sends signal `sig` (e.g. `libc::SIGTERM`) to our child `child`; panics when it
/// cannot (the child was already reaped).
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped (`Child` reaps only in
    // `wait`/`try_wait`, which the caller has not seen succeed), so it is still ours.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({}, {sig}): {}",
        child.id(),
        std::io::Error::last_os_error()
    );
}
