//! Helpers shared by the integration tests (which run the real binary).
//!
//! Tests that need root (network namespaces, TUN) skip with a printed reason without
//! it, unless `CI` is set, where they fail (`zzping_testkit::require!`); a missing
//! `fping` is a failure everywhere.
#![allow(dead_code)]

pub mod pinger;

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use zzping_testkit::process::output_bounded;

use socket2::{Domain, Protocol, Socket, Type};
use zzping_netsim::packet;
use zzping_netsim::truth::{Truth, read_truth};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_zzping-netsim")
}

/// Path of a scenario shipped in `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .join(format!("{name}.toml"))
}

/// Result of `zzping-netsim exec`.
pub struct ExecResult {
    /// Exit status of zzping-netsim.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Parsed truth.
    pub truth: Truth,
}

/// The privileges the simulator needs (a namespace and a TUN device), and `fping`.
pub fn netns_and_fping() -> Result<(), String> {
    zzping_testkit::privileges::tun()?;
    zzping_testkit::tool("fping", "fping");
    Ok(())
}

/// Run `zzping-netsim exec --scenario NAME --truth T -- cmd...` (bounded to 20 s).
pub fn exec(scenario_name: &str, cmd: &[&str]) -> ExecResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.jsonl");
    let child = Command::new(bin())
        .args(["exec", "--scenario"])
        .arg(scenario(scenario_name))
        .arg("--truth")
        .arg(&truth)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zzping-netsim");
    let out = output_bounded(child, Duration::from_secs(20));
    let truth = read_truth(&truth).expect("truth file");
    ExecResult {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        truth,
    }
}

/// Send an echo request from a raw socket and return the first ICMP message
/// (as a full IP datagram for IPv4, ICMPv6 message for IPv6) that quotes or
/// answers our identifier.
pub fn probe(dst: IpAddr, ident: u16, seq: u16) -> Option<(Vec<u8>, IpAddr)> {
    let (dom, proto) = match dst {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let s = Socket::new(dom, Type::RAW, Some(proto)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut icmp = vec![if dst.is_ipv4() { 8 } else { 128 }, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"zzping-netsim probe");
    if dst.is_ipv4() {
        let c = packet::checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
    } // The kernel fills in the ICMPv6 checksum.
    s.send_to(&icmp, &SocketAddr::new(dst, 0).into()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    while Instant::now() < deadline {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        // SAFETY: recv_from initialised the first n bytes.
        let data: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let from = from.as_socket().unwrap().ip();
        let body = if dst.is_ipv4() {
            &data[((data[0] & 15) as usize) * 4..]
        } else {
            &data[..]
        };
        let ours = body.windows(2).any(|w| w == ident.to_be_bytes())
            && (body[0] == 0 || body[0] == 129 || body[0] == 3 || body[0] == 1);
        if ours {
            return Some((data, from));
        }
    }
    None
}

/// What [`probe_scenario`] saw.
pub struct Probed {
    /// Every send, in order.
    pub sent: Vec<pinger::Sent>,
    /// Every answer, with the wall-clock time it was read.
    pub answers: Vec<(u64, pinger::Answer)>,
    /// The truth.
    pub truth: Truth,
    /// The simulator's counters.
    pub summary: zzping_netsim::sim::Summary,
    /// A capture on the first TUN, when asked for.
    pub wire: Option<zzping_netsim::capture::Wire>,
}

/// Runs shipped scenario `name` in the library, in a thread moved into a fresh
/// namespace, and pings every `(address, TTL)` in `targets` from a
/// [`pinger::Pinger`] every `every` until `run_for` has passed (then collects answers
/// for 500 ms); `capture` runs a capture on the first TUN. Sequence numbers count
/// the sends from 1, so (address, sequence) names a send.
pub fn probe_scenario(
    name: &str,
    targets: &[(IpAddr, u8)],
    every: Duration,
    run_for: Duration,
    capture: bool,
) -> Probed {
    let scenario = zzping_netsim::Scenario::load(&scenario(name)).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.jsonl");
    let tp = truth_path.clone();
    let targets = targets.to_vec();
    let h = std::thread::spawn(move || {
        zzping_testkit::netns::enter();
        let sim =
            zzping_netsim::Simulator::start(&scenario, Some(&tp)).expect("start the simulator");
        let cap = capture.then(|| {
            zzping_netsim::capture::Capture::start(&scenario.network.tun_name)
                .expect("capture on the TUN")
        });
        let p = pinger::Pinger::new();
        let mut sent = Vec::new();
        let mut answers = Vec::new();
        let t0 = Instant::now();
        let mut tick = 0u32;
        let mut seq = 0u16;
        while t0.elapsed() < run_for {
            tick += 1;
            for &(dst, ttl) in &targets {
                seq = seq.checked_add(1).expect("fewer than 65536 sends");
                p.set_ttl(dst.is_ipv6(), ttl);
                sent.push(p.send(dst, seq, &mut answers));
            }
            // Pacing only: what is compared is what the clocks say happened.
            let next = t0 + every * tick;
            while Instant::now() < next {
                p.collect_for(
                    Duration::from_millis(1).min(next - Instant::now()),
                    &mut answers,
                );
            }
        }
        p.collect_for(Duration::from_millis(500), &mut answers);
        let wire = cap.map(|c| c.finish().expect("capture on the TUN"));
        let summary = sim.stop().expect("stop the simulator");
        (sent, answers, summary, wire)
    });
    let (sent, answers, summary, wire) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let truth = read_truth(&truth_path).expect("truth file");
    Probed {
        sent,
        answers,
        truth,
        summary,
        wire,
    }
}
