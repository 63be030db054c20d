//! Network configuration of the namespace the simulator serves in.
//!
//! Uses the `ip` command (iproute2): brings up `lo` and each TUN device, gives
//! it the scenario's local addresses inside the simulated prefixes (by
//! default 198.18.0.1/15 and 2001:db8::1/32, which route the whole simulated
//! space into it), and enables IPv6 in the namespace
//! (`net.ipv6.conf.all.disable_ipv6 = 0`). Default routes are added by
//! [`crate::control::NetState::install_defaults`].

use std::process::Command;

use thiserror::Error;

use crate::scenario::Iface;

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

/// Configure the current namespace for the TUN device of `iface`: `lo` and
/// the device up, IPv6 enabled, the device's addresses (which add its
/// on-link prefix routes). IPv6 addresses are kept while the device is down
/// (`keep_addr_on_down`), as IPv4 addresses always are, so that a `[[link]]`
/// flap takes the routes away but not the addresses.
pub fn configure(iface: &Iface) -> Result<(), NetConfigError> {
    ip(&["link", "set", "dev", "lo", "up"])?;
    for f in [
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
    ] {
        if let Err(e) = std::fs::write(f, "0") {
            tracing::warn!(file = f, error = %e, "cannot enable IPv6; IPv6 hosts may not work");
        }
    }
    let tun = iface.name.as_str();
    let keep = format!("/proc/sys/net/ipv6/conf/{tun}/keep_addr_on_down");
    if let Err(e) = std::fs::write(&keep, "1") {
        tracing::warn!(file = keep, error = %e, "cannot keep IPv6 addresses on link down");
    }
    ip(&["link", "set", "dev", tun, "up"])?;
    if let Some((a, n)) = iface.v4 {
        ip(&["addr", "add", &format!("{a}/{n}"), "dev", tun])?;
    }
    if let Some((a, n)) = iface.v6 {
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{a}/{n}"),
            "dev",
            tun,
            "nodad",
        ])?;
    }
    Ok(())
}
