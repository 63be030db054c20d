//! `zzping-netsim`: a simulated network on a TUN device inside a network
//! namespace, writing ground truth of everything it did.
//!
//! The simulator answers ICMP echo requests (IPv4 and IPv6) for simulated
//! hosts in 198.18.0.0/15 and 2001:db8::/32, each with its own profile —
//! base RTT, jitter, random loss, periodic loss bursts, duplicates,
//! reordering, ICMP destination unreachable, rate limiting, silence — plus
//! routers on a path (TTL exceeded from each hop, windows of ICMP errors,
//! hops that limit ICMP to themselves), network-wide outages, and a
//! timeline of faults on this machine's side
//! ([`control`]): routes that vanish, links that go down or lose their
//! carrier, default routes that move to another gateway or interface. Every
//! request, reply and network change is recorded as JSON Lines with µs
//! timestamps, so end-to-end tests can compare what a prober measured with
//! what really happened.
//!
//! # Command line
//!
//! ```text
//! zzping-netsim exec  --scenario FILE [--truth FILE] -- COMMAND [ARGS...]
//! zzping-netsim run   --scenario FILE [--truth FILE]
//! zzping-netsim hosts --scenario FILE
//! ```
//!
//! * `exec` creates a fresh network namespace (`unshare(CLONE_NEWNET)` first
//!   thing in `main`, before any thread exists), starts the simulator in it,
//!   runs COMMAND there, forwards SIGINT/SIGTERM to it (except a terminal
//!   Ctrl-C, which already reached it), stops the simulator
//!   when it exits (flushing the truth) and exits with its status (128+N
//!   when it was killed by signal N). The namespace and the TUN disappear
//!   with the process. Replies still pending when COMMAND exits are dropped
//!   (`replies_unsent` in the truth's `end` event).
//! * Errors of the simulator itself (bad scenario, no privileges, COMMAND
//!   not found) exit with status 125 and a message on stderr.
//! * `run` serves in the *current* namespace until SIGINT/SIGTERM, then
//!   flushes the truth and exits 0. It prints `ready TUN` on stdout once the
//!   device and routes are up.
//! * `hosts` prints one line per simulated address: `ADDRESS\tNAME\tSUMMARY`.
//!
//! `--log LEVEL` (or env `ZZPING_NETSIM_LOG`) sets the stderr log filter
//! (default `warn`).
//!
//! # Scenario files
//!
//! TOML, one file per scenario (`tests/scenarios/*.toml`); the full schema
//! is in [`scenario`]. In short:
//!
//! ```toml
//! [simulation]
//! seed = 42
//! [[outage]]
//! start_ms = 4000
//! duration_ms = 2000
//! [[host]]
//! name = "gateway"
//! addresses = ["198.18.0.10", "2001:db8::10"]
//! rtt_ms = 2.0
//! jitter = { dist = "uniform", max_ms = 1.0 }
//! loss = 0.01
//! burst = [{ every_ms = 30000, duration_ms = 300, offset_ms = 5000 }]
//! ```
//!
//! # Ground truth
//!
//! JSON Lines, one object per event with an `"event"` tag: `start`,
//! `request` (per echo request: `id`, `time_us`, `t_us`, `family`, `src`,
//! `dst`, `host`, `icmp_id`, `icmp_seq`, `payload_len`, `fate`, `replies`,
//! `delay_us`, `reordered`, `interface`), `reply` (per packet written:
//! `request`, `host`, `dst`, `icmp_id`, `icmp_seq`, `kind`, `copy`,
//! `delay_us`, `due_us`, `sent_us`, `late_us`), `net` (per network change:
//! `action`, `begin_us`, `time_us`, `removed`, `added`, ...), `unsent` (a
//! reply due on a link that was down) and `end`. Times are µs since the Unix epoch
//! (CLOCK_REALTIME). The full schema is in [`truth`]; parse it with
//! [`truth::read_truth`].
//!
//! # Using the library from tests in other crates
//!
//! Network namespaces belong to threads, so a test can move one thread into
//! a fresh namespace and start the simulator there; threads and processes
//! it starts afterwards inherit the namespace, the rest of the process is
//! unaffected:
//!
//! ```no_run
//! use std::path::Path;
//! use zzping_netsim::{Scenario, Simulator, sys, truth};
//!
//! let scenario = Scenario::load(Path::new("tests/scenarios/clean.toml")).unwrap();
//! let out = Path::new("/tmp/truth.jsonl");
//! std::thread::spawn(move || {
//!     sys::unshare_net().expect("needs root");
//!     let sim = Simulator::start(&scenario, Some(out)).unwrap();
//!     // ... open sockets / run the code under test in this thread ...
//!     sim.stop().unwrap();
//! })
//! .join()
//! .unwrap();
//! let t = truth::read_truth(out).unwrap();
//! # let _ = t;
//! ```
//!
//! Otherwise run the binary with `exec` around the program under test.
//!
//! # Timing
//!
//! Replies are kept in a binary heap served by a dedicated thread that
//! sleeps with `ppoll` (ns timeout, 1 ns timer slack) and spins only for the
//! last [`sim::SPIN_NS`]; each reply's lateness is in the truth (`late_us`).
//! Network changes are applied by a third thread when the scenario has any.

pub mod capture;
pub mod control;
pub mod netcfg;
pub mod packet;
pub mod profile;
pub mod rtnl;
pub mod scenario;
pub mod sim;
pub mod sys;
pub mod truth;

pub use scenario::Scenario;
pub use sim::Simulator;
