//! Helpers shared by the integration tests (which run the real binary).
//!
//! Tests that need root (network namespaces, TUN) or `fping` skip with a
//! printed reason when those are missing, unless `CI=true`, where they fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// Report a missing prerequisite: fail under CI=true, else print and skip.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prerequisite missing under CI=true: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Skip (return) from the test unless the prerequisite holds.
#[macro_export]
macro_rules! require {
    ($e:expr) => {
        if let Err(reason) = $e {
            common::skip(&reason);
            return;
        }
    };
}

/// Whether the binary can create a namespace and a TUN here.
pub fn netns() -> Result<(), String> {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    OK.get_or_init(|| {
        let out = Command::new(bin())
            .args(["exec", "--scenario"])
            .arg(scenario("clean"))
            .args(["--", "true"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot create a network namespace with a TUN device (needs root, /dev/net/tun and iproute2): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    })
    .clone()
}

fn find_on_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Namespaces and `fping` both available.
pub fn netns_and_fping() -> Result<PathBuf, String> {
    netns()?;
    find_on_path("fping")
        .ok_or_else(|| "fping is not installed (apt-get install fping)".to_string())
}

/// `unshare` from util-linux.
pub fn unshare_cmd() -> Result<PathBuf, String> {
    find_on_path("unshare").ok_or_else(|| "unshare (util-linux) is not installed".to_string())
}

/// Wait for `child` at most `limit`, killing it when it takes longer.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// Collect a child's output, killing it after `limit`.
pub fn output_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.expect("wait_with_output"),
        Err(_) => {
            // SAFETY: plain kill of our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("command still running after {limit:?}: killed");
        }
    }
}

/// Parse fping's `-C` summary (stderr): address → per-ping RTT in ms (None
/// for a lost ping).
pub fn parse_fping(stderr: &str) -> HashMap<String, Vec<Option<f64>>> {
    let mut m = HashMap::new();
    for line in stderr.lines() {
        let Some((addr, rest)) = line.split_once(" : ") else {
            continue;
        };
        let vals: Option<Vec<Option<f64>>> = rest
            .split_whitespace()
            .map(|t| {
                if t == "-" {
                    Some(None)
                } else {
                    t.parse().ok().map(Some)
                }
            })
            .collect();
        if let Some(v) = vals {
            if !v.is_empty() {
                m.insert(addr.trim().to_string(), v);
            }
        }
    }
    m
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
