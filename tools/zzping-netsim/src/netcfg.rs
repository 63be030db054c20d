//! Network configuration of the namespace the simulator serves in.
//!
//! Uses the `ip` command (iproute2): brings up `lo` and the TUN device, gives
//! the TUN the scenario's local addresses inside the simulated prefixes
//! (which routes 198.18.0.0/15 and 2001:db8::/32 into it), and enables IPv6
//! in the namespace (`net.ipv6.conf.all.disable_ipv6 = 0`).

use std::process::Command;

use thiserror::Error;

use crate::scenario::{NetworkSpec, PREFIX_V4_LEN, PREFIX_V6_LEN};

/// A configuration step failed.
#[derive(Debug, Error)]
pub enum NetConfigError {
    /// `ip` could not be started.
    #[error("cannot run `{cmd}` (is iproute2 installed?): {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error.
        source: std::io::Error,
    },
    /// `ip` failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// Its error output.
        stderr: String,
    },
}

fn ip(args: &[&str]) -> Result<(), NetConfigError> {
    let cmd = format!("ip {}", args.join(" "));
    tracing::debug!(%cmd, "configuring");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetConfigError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetConfigError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Configure the current namespace for TUN device `tun`.
pub fn configure(tun: &str, net: &NetworkSpec) -> Result<(), NetConfigError> {
    ip(&["link", "set", "dev", "lo", "up"])?;
    for f in [
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
    ] {
        if let Err(e) = std::fs::write(f, "0") {
            tracing::warn!(file = f, error = %e, "cannot enable IPv6; IPv6 hosts may not work");
        }
    }
    ip(&["link", "set", "dev", tun, "up"])?;
    let v4 = format!("{}/{}", net.local_v4, PREFIX_V4_LEN);
    ip(&["addr", "add", &v4, "dev", tun])?;
    let v6 = format!("{}/{}", net.local_v6, PREFIX_V6_LEN);
    ip(&["-6", "addr", "add", &v6, "dev", tun, "nodad"])?;
    Ok(())
}
