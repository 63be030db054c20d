//! The floor pinger: the least a pinger can do at a given rate, written for the benchmark
//! only, to show how close the daemon comes to the kernel's own cost.
//!
//! One raw ICMPv4 socket that the kernel filters to echo replies (`ICMP_FILTER`) and
//! stamps on arrival (`SO_TIMESTAMPNS`). The main thread sends phase-aligned rounds (every
//! host of a round in one wakeup, `clock_nanosleep` to an absolute deadline, one `sendto`
//! per host); a second thread blocks in `recvmsg` and, per reply, reads the kernel's
//! arrival stamp and subtracts the send time carried in the payload. No sequence
//! bookkeeping, no timeouts per request, no files: it reports what it sent and received,
//! and the mean RTT (to show the stamps were read), as JSON on stdout.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// First argument that makes this binary act as the floor pinger.
pub const FLOOR_ARG: &str = "__floor";
/// How long after the last round the floor waits for replies (fping's `-t 500`).
const REPLY_WAIT_NS: u64 = 500_000_000;
/// ICMP echo request payload: the send time (CLOCK_REALTIME ns), like most pingers.
const PAYLOAD_LEN: usize = 8;
const ICMP_HEADER_LEN: usize = 8;
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// What the floor pinger reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloorReport {
    /// Echo requests sent.
    pub sent: u64,
    /// Echo replies with our identifier received.
    pub received: u64,
    /// Mean RTT from the kernel's receive stamps, µs.
    pub mean_rtt_us: f64,
}

/// `zzping-bench __floor RATE_PER_HOST DURATION_S ADDR...`.
pub fn floor_main(args: Vec<OsString>) -> Result<()> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?}"))
        })
        .collect::<Result<_>>()?;
    let [rate, duration, addrs @ ..] = args.as_slice() else {
        bail!("usage: __floor RATE_PER_HOST DURATION_S ADDR...");
    };
    let rate: f64 = rate.parse().with_context(|| format!("rate {rate:?}"))?;
    let duration: f64 = duration
        .parse()
        .with_context(|| format!("duration {duration:?}"))?;
    let addrs: Vec<Ipv4Addr> = addrs
        .iter()
        .map(|a| a.parse().with_context(|| format!("address {a:?}")))
        .collect::<Result<_>>()?;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if addrs.is_empty() || !positive(rate) || !positive(duration) {
        bail!("__floor needs a positive rate, a positive duration and an address");
    }
    let report = run(&addrs, rate, duration)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run(addrs: &[Ipv4Addr], rate: f64, duration_s: f64) -> Result<FloorReport> {
    let sock = open_socket()?;
    let id = (std::process::id() & 0xffff) as u16;
    let received = Arc::new(AtomicU64::new(0));
    let rtt_sum_ns = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (sock, received, rtt_sum_ns) = (sock.clone(), received.clone(), rtt_sum_ns.clone());
        std::thread::spawn(move || receive(&sock, id, &received, &rtt_sum_ns))
    };
    let period_ns = (1e9 / rate).round() as u64;
    let rounds = (rate * duration_s).round() as u64;
    let dests: Vec<libc::sockaddr_in> = addrs.iter().map(|a| sockaddr(*a)).collect();
    let mut packet = [0u8; ICMP_HEADER_LEN + PAYLOAD_LEN];
    let start = mono_ns() + period_ns;
    let mut sent = 0u64;
    for round in 0..rounds {
        sleep_until(start + round * period_ns);
        for (i, dest) in dests.iter().enumerate() {
            let seq = (round as usize * dests.len() + i) as u16;
            echo_request(&mut packet, id, seq, real_ns());
            // SAFETY: the buffer and the address are valid for the call.
            let r = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (dest as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                sent += 1;
            }
        }
    }
    // Wait for the last replies (bounded), then wake the receiver with a shutdown.
    let give_up = mono_ns() + REPLY_WAIT_NS;
    while received.load(Ordering::Relaxed) < sent && mono_ns() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: plain syscall on our socket.
    unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_RD) };
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receive thread panicked"))??;
    let received = received.load(Ordering::Relaxed);
    Ok(FloorReport {
        sent,
        received,
        mean_rtt_us: rtt_sum_ns.load(Ordering::Relaxed) as f64 / received.max(1) as f64 / 1e3,
    })
}

/// Blocking `recvmsg` until the socket is shut down; counts our echo replies and sums
/// their RTTs from the kernel's arrival stamps.
fn receive(sock: &OwnedFd, id: u16, received: &AtomicU64, rtt_sum_ns: &AtomicU64) -> Result<()> {
    let mut buf = [0u8; 256];
    let mut cbuf = [0u64; 16];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: every pointer in msg is valid for the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
        if n == 0 {
            return Ok(()); // shut down
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                // The receive timeout: only a backstop, in case a shutdown did not wake us.
                std::io::ErrorKind::WouldBlock => return Ok(()),
                _ => return Err(e).context("recvmsg"),
            }
        }
        let pkt = &buf[..n as usize];
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let Some(icmp) = pkt.get(ihl..) else { continue };
        if icmp.len() < ICMP_HEADER_LEN + PAYLOAD_LEN
            || icmp[0] != ICMP_ECHO_REPLY
            || u16::from_be_bytes([icmp[4], icmp[5]]) != id
        {
            continue;
        }
        let sent_ns = u64::from_ne_bytes(icmp[8..16].try_into().expect("8 bytes"));
        if let Some(stamp) = rx_stamp_ns(&msg) {
            rtt_sum_ns.fetch_add(stamp.saturating_sub(sent_ns), Ordering::Relaxed);
        }
        received.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, ns since the epoch.
fn rx_stamp_ns(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: msg was filled by recvmsg; the CMSG macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// A raw ICMPv4 socket that receives only echo replies, stamped by the kernel.
fn open_socket() -> Result<Arc<OwnedFd>> {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("raw ICMP socket (needs root)");
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let only_replies: u32 = !(1u32 << ICMP_ECHO_REPLY);
    setsockopt(&sock, SOL_RAW, ICMP_FILTER, &only_replies).context("ICMP_FILTER")?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32).context("SO_TIMESTAMPNS")?;
    let backstop = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &backstop).context("SO_RCVTIMEO")?;
    Ok(Arc::new(sock))
}

fn setsockopt<T>(sock: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> Result<()> {
    // SAFETY: v points to a T of the given size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Writes an echo request (checksummed) carrying `sent_ns` into `p`.
fn echo_request(p: &mut [u8; ICMP_HEADER_LEN + PAYLOAD_LEN], id: u16, seq: u16, sent_ns: u64) {
    p[0] = ICMP_ECHO_REQUEST;
    p[1] = 0;
    p[2..4].fill(0);
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&sent_ns.to_ne_bytes());
    let mut sum = 0u32;
    for w in p.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: timespec is plain data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn real_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Sleeps until monotonic `t_ns` (absolute, so the schedule does not drift).
fn sleep_until(t_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (t_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (t_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid pointer; EINTR just retries.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// CPU time of one timed wakeup, µs: this thread sleeps `count` times for `period_ns`
/// each (`clock_nanosleep` to absolute deadlines, as the floor's sender does) and does
/// nothing else; its own CPU (`CLOCK_THREAD_CPUTIME_ID`: the scheduler's run time, in
/// which the kernel's work of putting the thread to sleep, arming the timer and
/// switching back to it is counted) divided by the wakeups. The unit every pinger pays
/// per wakeup whatever else it does: how many wakeups a rate takes decides most of its
/// cost on a virtual machine (see docs/benchmarks.md, issue 17).
pub fn wakeup_cpu_us(period_ns: u64, count: u32) -> f64 {
    let cpu0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let start = mono_ns();
    for i in 1..=u64::from(count) {
        sleep_until(start + i * period_ns);
    }
    let cpu = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).saturating_sub(cpu0);
    cpu as f64 / 1e3 / f64::from(count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wakeups really sleep (the wall time is the schedule's) and the CPU counted is
    /// the thread's own: some, and far less than the time asleep.
    #[test]
    fn wakeup_cost_is_the_sleeping_threads_own_cpu() {
        let t0 = std::time::Instant::now();
        let us = wakeup_cpu_us(2_000_000, 25);
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
        assert!(us > 0.0 && us < 1_000.0, "{us} µs per wakeup");
    }

    #[test]
    fn echo_request_checksum_verifies() {
        let mut p = [0u8; ICMP_HEADER_LEN + PAYLOAD_LEN];
        echo_request(&mut p, 0xbeef, 7, 0x0123_4567_89ab_cdef);
        // The one's-complement sum of a packet with its checksum is 0xffff.
        let mut sum = 0u32;
        for w in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(&p[4..8], &[0xbe, 0xef, 0, 7]);
    }
}
