//! zzping-daemon: an accurate, frugal ICMP pinger that records per-host frames.
//!
//! The binary (`src/main.rs`) is a thin wrapper over [`daemon::run`]; the pieces are
//! public so integration tests can drive them in-process.

pub mod clock;
pub mod engine;
pub mod icmp;
