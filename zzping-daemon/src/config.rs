//! Configuration: command line (clap) over a TOML file over built-in defaults.
//!
//! The file is `--config FILE`, else [`DEFAULT_CONFIG_PATH`] if it exists, else none
//! (`--config none` ignores the default file). Hosts come from `--target` (which then
//! replace the file's `[[host]]` list), else the file. With neither (the embedded
//! default), or with `discover = true`, the daemon discovers its targets: the default
//! gateway of each family and the ISP's edge (`daemon/discover.rs`). `internet = "ADDR"`
//! adds one host labelled `internet`; `self_check = true` adds 127.0.0.1 and ::1.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use zzping_lib::datadir::{Access, default_data_dir};

use crate::alert::AlertConfig;
use crate::listen::ListenAddr;
use crate::sock::SocketMode;

/// Config file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/zzping/zzping.toml";
/// Default pings per second per host.
pub const DEFAULT_RATE: f64 = 10.0;
/// Slowest per-host rate.
pub const MIN_RATE: f64 = 0.1;
/// Fastest per-host rate.
pub const MAX_RATE: f64 = 1000.0;
/// The TTL (hop limit) of echo requests when a host sets none.
pub const DEFAULT_TTL: u8 = 64;
/// Default seconds between two discoveries of the ISP's edge (per family).
pub const DEFAULT_DISCOVER_INTERVAL_S: f64 = 300.0;
/// Labels of discovered hosts (refused for configured hosts while discovery is on).
pub const DISCOVERED_LABELS: [&str; 4] = ["gateway", "gateway-v6", "isp-edge", "isp-edge-v6"];

/// The values of a host's `role`.
pub const ROLES: [&str; 4] = [
    zzping_lib::file::role::GATEWAY,
    zzping_lib::file::role::ISP_EDGE,
    zzping_lib::file::role::INTERNET,
    zzping_lib::file::role::SELF_CHECK,
];

/// A configuration problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("parsing {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Command line. Every setting of the file can be given here too and wins.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "zzping-daemon",
    version,
    about = "Accurate, frugal ICMP pinger recording per-host frames",
    after_help = "Exit status: 0 after a signal, or a --duration run in which every target \
                  answered; 1 when some target of a --duration run never answered (or its \
                  name never resolved); 2 when no target's name resolved; 3 for an invalid \
                  command line or configuration; 4 when the daemon could not start or \
                  failed."
)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/zzping/zzping.toml if it exists; `none`: no file.
    #[arg(long, env = "ZZPING_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for frame files (one subdirectory per host). Default: $STATE_DIRECTORY,
    /// else /var/lib/zzping when writable (root), else $XDG_DATA_HOME/zzping or
    /// ~/.local/share/zzping.
    #[arg(long, env = "ZZPING_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Host to ping (IP or name); repeatable. Replaces the config file's hosts.
    #[arg(long = "target", value_name = "HOST")]
    pub targets: Vec<String>,
    /// Pings per second for --target hosts (and default for file hosts without `rate`).
    #[arg(long, value_name = "PINGS_PER_S")]
    pub rate: Option<f64>,
    /// Frame period in ms (10..=60000).
    #[arg(long, value_name = "N")]
    pub period_ms: Option<u32>,
    /// Reply timeout in ms (1..=60000).
    #[arg(long, value_name = "N")]
    pub timeout_ms: Option<u32>,
    /// Live-stream UDP address: IP:PORT, [IPv6]:PORT, localhost:PORT, :PORT (every
    /// interface; needs --live-secret-file), or `off`. Default 127.0.0.1:7878.
    #[arg(long, value_name = "ADDR|off")]
    pub live: Option<String>,
    /// File holding the live stream's shared secret (64 hex digits); required to listen
    /// on a non-loopback address.
    #[arg(long, value_name = "FILE")]
    pub live_secret_file: Option<PathBuf>,
    /// Prometheus exporter TCP address (`GET /metrics`): IP:PORT, [IPv6]:PORT,
    /// localhost:PORT, :PORT (every interface), or `off` (default). Conventional port: 9464.
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<String>,
    /// After pinging stops (`--duration` or a signal), keep serving /metrics with the
    /// final counts for this many seconds (default 0).
    #[arg(long, value_name = "SECONDS")]
    pub metrics_linger_s: Option<f64>,
    /// Stop cleanly after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Validate the configuration, print the effective one, exit.
    #[arg(long)]
    pub check_config: bool,
    /// Print a per-host status table every second.
    #[arg(long)]
    pub status: bool,
    /// Keep the newest day on disk and the N days before it (N >= 1); older day files are
    /// deleted (default: keep forever).
    #[arg(long, value_name = "N")]
    pub retention_days: Option<u32>,
    /// Seconds between disk flushes.
    #[arg(long, value_name = "SECONDS")]
    pub flush_interval_s: Option<f64>,
    /// Seconds between re-resolutions of host names.
    #[arg(long, value_name = "SECONDS")]
    pub resolve_interval_s: Option<f64>,
    /// ICMP socket kind: auto (datagram, else raw), dgram, raw.
    #[arg(long, value_enum)]
    pub socket: Option<SocketMode>,
    /// RTT quantizer relative precision for the files.
    #[arg(long)]
    pub precision: Option<f64>,
    /// Discover targets: the default gateways and the ISP's edge (default: true when no
    /// host is configured; with hosts, true adds discovery to them).
    #[arg(long, value_name = "true|false")]
    pub discover: Option<bool>,
    /// Destination of the discovery's TTL-limited probes (one per family; repeatable).
    /// Default: 1.1.1.1 and 2606:4700:4700::1111.
    #[arg(long = "discover-probe", value_name = "ADDR")]
    pub discover_probe: Vec<IpAddr>,
    /// Seconds between two discoveries of the ISP's edge, at least (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub discover_interval_s: Option<f64>,
    /// A prefix of the home network besides the private, link-local, ULA and loopback
    /// ones (repeatable), e.g. 203.0.113.0/24.
    #[arg(long = "home-prefix", value_name = "PREFIX")]
    pub home_prefixes: Vec<String>,
    /// Also ping this public host, labelled `internet` (default: none).
    #[arg(long, value_name = "ADDR")]
    pub internet: Option<String>,
    /// Also ping 127.0.0.1 and ::1 (the machine's own scheduling noise; default false).
    #[arg(long, value_name = "true|false")]
    pub self_check: Option<bool>,
    /// Log filter (tracing EnvFilter syntax), default `info` (or RUST_LOG).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Where logs go: stderr, journald (the systemd journal's native protocol: levels
    /// become priorities, fields stay structured), or auto (journald when stderr is
    /// connected to the journal, as under systemd; else stderr).
    #[arg(long, value_enum, default_value_t = LogTarget::Auto)]
    pub log_target: LogTarget,
}

/// Where logs go (see [`Cli::log_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogTarget {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, else stderr.
    #[default]
    Auto,
    /// Standard error.
    Stderr,
    /// The systemd journal (falls back to stderr, with a warning, if its socket is absent).
    Journald,
}

/// One `[[host]]` entry of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// IP address or host name.
    pub target: String,
    /// Label (directory name, status); default: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Pings per second (0.1..=1000); default: the global `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// What the host is on this machine's path to the internet: `gateway`, `isp-edge`,
    /// `internet` or `self-check` (recorded in its files; `zzping report`'s verdicts
    /// compare hosts by it). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// TTL (IPv4) or hop limit (IPv6) of the echo requests (1..=255); default
    /// [`DEFAULT_TTL`]. A TTL too small to reach the host records `ttl_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
}

impl HostConfig {
    /// The label (explicit, else the target).
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.target)
    }
}

/// The TOML file (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::rate`].
    pub rate: Option<f64>,
    /// See [`Config::period_ms`].
    pub period_ms: Option<u32>,
    /// See [`Config::timeout_ms`].
    pub timeout_ms: Option<u32>,
    /// See [`Config::live`].
    pub live: Option<String>,
    /// See [`Config::live_secret_file`].
    pub live_secret_file: Option<PathBuf>,
    /// See [`Config::metrics`].
    pub metrics: Option<String>,
    /// See [`Config::metrics_linger_s`].
    pub metrics_linger_s: Option<f64>,
    /// See [`Config::retention_days`].
    pub retention_days: Option<u32>,
    /// See [`Config::flush_interval_s`].
    pub flush_interval_s: Option<f64>,
    /// See [`Config::resolve_interval_s`].
    pub resolve_interval_s: Option<f64>,
    /// See [`Config::socket`].
    pub socket: Option<SocketMode>,
    /// See [`Config::precision`].
    pub precision: Option<f64>,
    /// See [`Config::discover`].
    pub discover: Option<bool>,
    /// See [`Config::discover_probe`].
    pub discover_probe: Option<Vec<IpAddr>>,
    /// See [`Config::discover_interval_s`].
    pub discover_interval_s: Option<f64>,
    /// See [`Config::home_prefixes`].
    pub home_prefixes: Option<Vec<String>>,
    /// See [`Config::internet`].
    pub internet: Option<String>,
    /// See [`Config::self_check`].
    pub self_check: Option<bool>,
    /// Hosts.
    #[serde(default)]
    pub host: Vec<HostConfig>,
    /// Alert rules (see [`crate::alert`]).
    #[serde(default)]
    pub alert: Vec<AlertConfig>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Where frame files go.
    pub data_dir: PathBuf,
    /// Default pings per second per host.
    pub rate: f64,
    /// Frame period, ms.
    pub period_ms: u32,
    /// Reply timeout, ms.
    pub timeout_ms: u32,
    /// Live-stream address (`off` = none).
    pub live: String,
    /// Shared secret of the live stream (file with 64 hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_secret_file: Option<PathBuf>,
    /// Prometheus exporter address (`off` = none).
    pub metrics: String,
    /// Seconds /metrics stays up with the final counts after pinging stops.
    pub metrics_linger_s: f64,
    /// Delete files older than this many days (absent: keep forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Seconds between flushes.
    pub flush_interval_s: f64,
    /// Seconds between name re-resolutions.
    pub resolve_interval_s: f64,
    /// Socket kind.
    pub socket: SocketMode,
    /// Quantizer precision.
    pub precision: f64,
    /// Stop after this many seconds (CLI only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Print the status table (CLI only).
    #[serde(skip)]
    pub status: bool,
    /// The file the config came from (for SIGHUP reloads).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Discover the targets: the default gateways and the ISP's edge (default: when no
    /// host is configured).
    pub discover: bool,
    /// Where the discovery's TTL-limited probes are addressed (the first address of each
    /// family is used); they expire at the ISP's routers on the way.
    pub discover_probe: Vec<IpAddr>,
    /// Seconds between two discoveries of the ISP's edge, at least.
    pub discover_interval_s: f64,
    /// Prefixes of the home network besides the private, link-local, ULA and loopback
    /// ones (a hop in them is not the ISP's edge).
    pub home_prefixes: Vec<String>,
    /// One public host pinged as `internet` (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet: Option<String>,
    /// Ping 127.0.0.1 and ::1 too (the machine's own scheduling noise).
    pub self_check: bool,
    /// Hosts (with resolved defaults: label and rate always set).
    pub host: Vec<HostConfig>,
    /// Alert rules (validated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alert: Vec<AlertConfig>,
}

impl Config {
    /// Parsed live address, `None` when off (validated by [`merge`]).
    pub fn live_addr(&self) -> Option<ListenAddr> {
        ListenAddr::parse(&self.live).ok().flatten()
    }

    /// Parsed Prometheus exporter address, `None` when off (validated by [`merge`]).
    pub fn metrics_addr(&self) -> Option<ListenAddr> {
        ListenAddr::parse(&self.metrics).ok().flatten()
    }

    /// The alert rules, in the order of [`Config::alert`] (validated by [`merge`]).
    pub fn alert_rules(&self) -> Vec<zzping_lib::alert::Rule> {
        crate::alert::config::rules(&self.alert).unwrap_or_default()
    }

    /// The parsed `home_prefixes` (validated by [`merge`]).
    pub fn home_prefixes(&self) -> Vec<crate::probe::Prefix> {
        self.home_prefixes
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The probe destination of `family`, if any.
    pub fn discover_probe(&self, family: crate::icmp::Family) -> Option<IpAddr> {
        self.discover_probe
            .iter()
            .copied()
            .find(|a| crate::icmp::Family::of(a) == family)
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Which config file to read for `cli`, if any.
pub fn config_path(cli: &Cli) -> Option<PathBuf> {
    match &cli.config {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => {
            let p = Path::new(DEFAULT_CONFIG_PATH);
            p.exists().then(|| p.to_path_buf())
        }
    }
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Loads the file (if any) and merges it with the command line.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let path = config_path(cli);
    let file = match &path {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let mut cfg = merge(cli, file)?;
    cfg.source = path;
    Ok(cfg)
}

/// Merges CLI over file over defaults and validates.
pub fn merge(cli: &Cli, file: FileConfig) -> Result<Config, ConfigError> {
    let rate = cli.rate.or(file.rate).unwrap_or(DEFAULT_RATE);
    let mut hosts: Vec<HostConfig> = if !cli.targets.is_empty() {
        cli.targets
            .iter()
            .map(|t| HostConfig {
                target: t.clone(),
                label: None,
                rate: cli.rate,
                role: None,
                ttl: None,
            })
            .collect()
    } else {
        file.host
    };
    let discover = cli.discover.or(file.discover).unwrap_or(hosts.is_empty());
    let self_check = cli.self_check.or(file.self_check).unwrap_or(false);
    let internet = cli.internet.clone().or(file.internet);
    if self_check {
        for t in ["127.0.0.1", "::1"] {
            hosts.push(HostConfig {
                target: t.to_owned(),
                label: None,
                rate: None,
                role: Some(zzping_lib::file::role::SELF_CHECK.to_owned()),
                ttl: None,
            });
        }
    }
    if let Some(i) = &internet {
        hosts.push(HostConfig {
            target: i.clone(),
            label: Some("internet".to_owned()),
            rate: None,
            role: Some(zzping_lib::file::role::INTERNET.to_owned()),
            ttl: None,
        });
    }
    let host: Vec<HostConfig> = hosts
        .into_iter()
        .map(|h| HostConfig {
            label: Some(h.label().to_owned()),
            rate: Some(h.rate.unwrap_or(rate)),
            target: h.target,
            role: h.role,
            ttl: h.ttl,
        })
        .collect();
    let cfg = Config {
        data_dir: cli
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| default_data_dir(Access::Write)),
        rate,
        period_ms: cli.period_ms.or(file.period_ms).unwrap_or(100),
        timeout_ms: cli.timeout_ms.or(file.timeout_ms).unwrap_or(1000),
        live: cli
            .live
            .clone()
            .or(file.live)
            .unwrap_or_else(|| "127.0.0.1:7878".to_owned()),
        live_secret_file: cli.live_secret_file.clone().or(file.live_secret_file),
        metrics: cli
            .metrics
            .clone()
            .or(file.metrics)
            .unwrap_or_else(|| "off".to_owned()),
        metrics_linger_s: cli
            .metrics_linger_s
            .or(file.metrics_linger_s)
            .unwrap_or(0.0),
        retention_days: cli.retention_days.or(file.retention_days),
        flush_interval_s: cli
            .flush_interval_s
            .or(file.flush_interval_s)
            .unwrap_or(5.0),
        resolve_interval_s: cli
            .resolve_interval_s
            .or(file.resolve_interval_s)
            .unwrap_or(300.0),
        socket: cli.socket.or(file.socket).unwrap_or_default(),
        precision: cli
            .precision
            .or(file.precision)
            .unwrap_or(zzping_lib::quantizer::DEFAULT_PRECISION),
        duration_s: cli.duration,
        status: cli.status,
        source: None,
        discover,
        discover_probe: (!cli.discover_probe.is_empty())
            .then(|| cli.discover_probe.clone())
            .or(file.discover_probe)
            .unwrap_or_else(|| {
                crate::probe::DEFAULT_PROBE
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            }),
        discover_interval_s: cli
            .discover_interval_s
            .or(file.discover_interval_s)
            .unwrap_or(DEFAULT_DISCOVER_INTERVAL_S),
        home_prefixes: (!cli.home_prefixes.is_empty())
            .then(|| cli.home_prefixes.clone())
            .or(file.home_prefixes)
            .unwrap_or_default(),
        internet,
        self_check,
        host,
        alert: file.alert,
    };
    validate(&cfg)?;
    Ok(cfg)
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    if !(10..=60_000).contains(&c.period_ms) {
        return bad(format!("period_ms {} not in 10..=60000", c.period_ms));
    }
    if !(1..=60_000).contains(&c.timeout_ms) {
        return bad(format!("timeout_ms {} not in 1..=60000", c.timeout_ms));
    }
    if !(c.flush_interval_s.is_finite() && (0.1..=3600.0).contains(&c.flush_interval_s)) {
        return bad(format!(
            "flush_interval_s {} not in 0.1..=3600",
            c.flush_interval_s
        ));
    }
    if !(c.resolve_interval_s.is_finite() && c.resolve_interval_s >= 1.0) {
        return bad(format!("resolve_interval_s {} < 1", c.resolve_interval_s));
    }
    if let Some(d) = c.duration_s
        && !(d.is_finite() && d >= 0.0)
    {
        return bad(format!("duration {d} is not a positive number of seconds"));
    }
    if let Err(e) = ListenAddr::parse(&c.live) {
        return bad(format!("live: {e}"));
    }
    if let Err(e) = ListenAddr::parse(&c.metrics) {
        return bad(format!("metrics: {e}"));
    }
    if !(c.metrics_linger_s.is_finite() && (0.0..=3600.0).contains(&c.metrics_linger_s)) {
        return bad(format!(
            "metrics_linger_s {} not in 0..=3600",
            c.metrics_linger_s
        ));
    }
    if c.retention_days == Some(0) {
        return bad(
            "retention_days = 0 would delete every day but the newest; it must be at \
             least 1 (to keep everything forever, leave retention_days out)"
                .into(),
        );
    }
    if zzping_lib::quantizer::Quantizer::new(c.precision).is_err() {
        return bad(format!("precision {} out of range", c.precision));
    }
    if !(c.rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&c.rate)) {
        return bad(format!("rate {} not in 0.1..=1000", c.rate));
    }
    if c.host.is_empty() && !c.discover {
        return bad(
            "no hosts: configure [[host]] entries, or set discover = true to ping the \
             gateways and the ISP's edge"
                .into(),
        );
    }
    if !(c.discover_interval_s.is_finite() && c.discover_interval_s >= 1.0) {
        return bad(format!("discover_interval_s {} < 1", c.discover_interval_s));
    }
    for p in &c.home_prefixes {
        if let Err(e) = p.parse::<crate::probe::Prefix>() {
            return bad(format!("home_prefixes: {e}"));
        }
    }
    if c.internet.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return bad("internet: empty address".into());
    }
    let mut labels = std::collections::HashSet::new();
    for h in &c.host {
        let r = h.rate.unwrap_or(c.rate);
        if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
            return bad(format!("rate {r} of {} not in 0.1..=1000", h.target));
        }
        if h.target.trim().is_empty() {
            return bad("empty target".into());
        }
        if !labels.insert(h.label().to_owned()) {
            return bad(format!("duplicate host label {:?}", h.label()));
        }
        if let Some(role) = &h.role
            && !ROLES.contains(&role.as_str())
        {
            return bad(format!(
                "role {role:?} of {} is not one of {}",
                h.label(),
                ROLES.join(", ")
            ));
        }
        if c.discover && DISCOVERED_LABELS.contains(&h.label()) {
            return bad(format!(
                "host label {:?} is a discovered host's (discovery is on)",
                h.label()
            ));
        }
        if h.ttl == Some(0) {
            return bad(format!("ttl 0 of {} not in 1..=255", h.label()));
        }
    }
    crate::alert::config::rules(&c.alert).map_err(ConfigError::Invalid)?;
    Ok(())
}

/// Resolves a target: an IP literal, else the first address the system resolver gives.
/// Blocks for as long as the resolver does.
pub fn resolve(target: &str) -> std::io::Result<IpAddr> {
    if let Ok(ip) = target.parse::<IpAddr>() {
        return Ok(ip);
    }
    (target, 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// True when the target is a name (needs periodic re-resolution).
pub fn is_name(target: &str) -> bool {
    target.parse::<IpAddr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["zzping-daemon"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn embedded_default_discovers_and_pings_no_loopback() {
        let c = merge(&cli(&[]), FileConfig::default()).unwrap();
        assert!(c.host.is_empty() && c.discover && !c.self_check);
        assert_eq!(c.internet, None);
        assert_eq!(
            c.discover_probe,
            [
                "1.1.1.1".parse::<IpAddr>().unwrap(),
                "2606:4700:4700::1111".parse().unwrap()
            ]
        );
        assert_eq!(c.discover_interval_s, DEFAULT_DISCOVER_INTERVAL_S);
        assert_eq!(c.period_ms, 100);
        assert_eq!(c.timeout_ms, 1000);
        assert_eq!(
            c.live_addr(),
            Some(ListenAddr::Ip("127.0.0.1:7878".parse().unwrap()))
        );
        assert_eq!(c.metrics_addr(), None);
    }

    #[test]
    fn configured_hosts_replace_discovery_unless_asked() {
        let hosts = "[[host]]\ntarget = \"198.18.0.9\"\nttl = 2\n";
        let file: FileConfig = toml::from_str(hosts).unwrap();
        let c = merge(&cli(&[]), file).unwrap();
        assert!(!c.discover);
        assert_eq!(c.host[0].ttl, Some(2));
        assert!(
            !merge(&cli(&["--target", "::1"]), FileConfig::default())
                .unwrap()
                .discover
        );
        let file: FileConfig = toml::from_str(&format!(
            "discover = true\nself_check = true\ninternet = \"198.19.8.8\"\n\
             discover_interval_s = 2\nhome_prefixes = [\"198.18.0.0/16\"]\n{hosts}"
        ))
        .unwrap();
        let c = merge(&cli(&[]), file).unwrap();
        assert!(c.discover && c.self_check);
        let t: Vec<(&str, &str)> = c
            .host
            .iter()
            .map(|h| (h.label(), h.target.as_str()))
            .collect();
        assert_eq!(
            t,
            [
                ("198.18.0.9", "198.18.0.9"),
                ("127.0.0.1", "127.0.0.1"),
                ("::1", "::1"),
                ("internet", "198.19.8.8")
            ]
        );
        assert_eq!(c.home_prefixes()[0].to_string(), "198.18.0.0/16");
        assert_eq!(c.discover_interval_s, 2.0);
        // Nothing to ping and nothing to discover; bad discovery settings; a configured
        // host named like a discovered one while discovery is on.
        for bad in [
            "discover = false",
            "discover_interval_s = 0.5",
            "home_prefixes = [\"198.18.0.0\"]",
            "internet = \"\"",
            "[[host]]\ntarget = \"198.18.0.9\"\nttl = 0",
            "discover = true\n[[host]]\ntarget = \"198.18.0.9\"\nlabel = \"gateway\"",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(merge(&cli(&[]), file).is_err(), "{bad:?} accepted");
        }
        assert!(toml::from_str::<FileConfig>("[[host]]\ntarget = \"a\"\nttl = 256").is_err());
        // The command line: every discovery setting, over the file's.
        let c = merge(
            &cli(&[
                "--target",
                "198.18.0.9",
                "--discover",
                "true",
                "--discover-probe",
                "198.19.8.8",
                "--discover-interval-s",
                "7",
                "--home-prefix",
                "198.18.0.0/16",
                "--internet",
                "198.19.1.1",
                "--self-check",
                "true",
            ]),
            toml::from_str("discover = false\ninternet = \"198.19.2.2\"").unwrap(),
        )
        .unwrap();
        assert!(c.discover && c.self_check);
        assert_eq!(c.discover_probe, ["198.19.8.8".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.discover_interval_s, 7.0);
        assert_eq!(c.home_prefixes, ["198.18.0.0/16"]);
        assert_eq!(c.internet.as_deref(), Some("198.19.1.1"));
        let internet = c.host.iter().find(|h| h.label() == "internet").unwrap();
        assert_eq!(internet.role.as_deref(), Some("internet"));
        assert_eq!(c.host.len(), 4);
    }

    #[test]
    fn cli_overrides_file() {
        let file: FileConfig = toml::from_str(
            r#"
            data_dir = "/tmp/x"
            rate = 20
            period_ms = 50
            live = "off"
            [[host]]
            target = "10.0.0.1"
            label = "router"
            rate = 100
            [[host]]
            target = "example.invalid"
            "#,
        )
        .unwrap();
        let c = merge(&cli(&[]), file.clone()).unwrap();
        assert_eq!(c.host[0].label(), "router");
        assert_eq!(c.host[0].rate, Some(100.0));
        assert_eq!(c.host[1].rate, Some(20.0));
        assert_eq!(c.live_addr(), None);
        assert_eq!(c.period_ms, 50);
        let c = merge(
            &cli(&[
                "--target",
                "127.0.0.1",
                "--target",
                "::1",
                "--rate",
                "500",
                "--period-ms",
                "10",
                "--data-dir",
                "/d",
                "--live",
                "[::1]:9",
            ]),
            file,
        )
        .unwrap();
        assert_eq!(c.host.len(), 2);
        assert!(c.host.iter().all(|h| h.rate == Some(500.0)));
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.period_ms, 10);
        assert_eq!(
            c.live_addr(),
            Some(ListenAddr::Ip("[::1]:9".parse().unwrap()))
        );
        // Round trip through --check-config output.
        let back: FileConfig = toml::from_str(
            &c.to_toml()
                .lines()
                .filter(|l| !l.starts_with("duration"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        assert_eq!(back.host.len(), 2);
    }

    #[test]
    fn invalid_values_are_rejected() {
        for args in [
            &["--period-ms", "5"][..],
            &["--timeout-ms", "0"],
            &["--rate", "2000"],
            &["--rate", "0.01"],
            &["--live", "nonsense"],
            &["--metrics", "9100"],
            &["--metrics-linger-s=-1"],
            &["--target", "a", "--target", "a"],
            &["--precision", "2"],
            &["--retention-days", "0"],
        ] {
            assert!(
                merge(&cli(args), FileConfig::default()).is_err(),
                "{args:?} accepted"
            );
        }
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        let file = |role: &str| {
            toml::from_str::<FileConfig>(&format!(
                "[[host]]\ntarget = \"198.18.0.1\"\nrole = \"{role}\"\n"
            ))
            .unwrap()
        };
        let e = merge(&cli(&[]), file("router")).unwrap_err();
        assert!(
            e.to_string().contains("role \"router\" of 198.18.0.1"),
            "{e}"
        );
        let c = merge(&cli(&[]), file("isp-edge")).unwrap();
        assert_eq!(c.host[0].role.as_deref(), Some("isp-edge"));
    }

    #[test]
    fn metrics_is_a_flag_and_a_file_key() {
        let file: FileConfig =
            toml::from_str("metrics = \"127.0.0.1:9464\"\nmetrics_linger_s = 2.5").unwrap();
        let c = merge(&cli(&[]), file.clone()).unwrap();
        assert_eq!(
            c.metrics_addr(),
            Some(ListenAddr::Ip("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(c.metrics_linger_s, 2.5);
        let c = merge(&cli(&["--metrics", "off"]), file.clone()).unwrap();
        assert_eq!(c.metrics_addr(), None);
        let c = merge(&cli(&["--metrics", "[::1]:9"]), file).unwrap();
        assert_eq!(
            c.metrics_addr(),
            Some(ListenAddr::Ip("[::1]:9".parse().unwrap()))
        );
        assert!(c.to_toml().contains("metrics = \"[::1]:9\""));
    }

    #[test]
    fn listen_addresses_take_every_documented_form() {
        for (written, want) in [
            (":9464", Some(ListenAddr::AllInterfaces(9464))),
            (
                "localhost:9464",
                Some(ListenAddr::Ip("127.0.0.1:9464".parse().unwrap())),
            ),
            (
                "[::1]:9464",
                Some(ListenAddr::Ip("[::1]:9464".parse().unwrap())),
            ),
            (
                "192.0.2.1:9464",
                Some(ListenAddr::Ip("192.0.2.1:9464".parse().unwrap())),
            ),
            ("off", None),
        ] {
            let c = merge(
                &cli(&["--metrics", written, "--live", written]),
                FileConfig::default(),
            )
            .unwrap();
            assert_eq!(c.metrics_addr(), want, "{written}");
            assert_eq!(c.live_addr(), want, "{written}");
            let file: FileConfig =
                toml::from_str(&format!("metrics = {written:?}\nlive = {written:?}")).unwrap();
            let c = merge(&cli(&[]), file).unwrap();
            assert_eq!(c.metrics_addr(), want, "{written}");
            assert_eq!(c.live_addr(), want, "{written}");
        }
        let e = merge(&cli(&["--metrics", "9464"]), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("metrics: \"9464\" is not"), "{e}");
    }

    #[test]
    fn resolve_literals_without_dns() {
        assert_eq!(resolve("::1").unwrap(), "::1".parse::<IpAddr>().unwrap());
        assert!(!is_name("127.0.0.1"));
        assert!(is_name("gateway.lan"));
    }

    #[test]
    fn alert_tables_are_validated_and_printed() {
        let text = "[[alert]]\nname = \"down\"\nwhen = \"outage\"\nhost = \"all\"\nfor_s = 3\n\
                    command = [\"/usr/bin/logger\", \"zzping\"]\n";
        let file: FileConfig = toml::from_str(text).unwrap();
        let c = merge(&cli(&[]), file).unwrap();
        assert_eq!(c.alert_rules().len(), 1);
        let printed = c.to_toml();
        assert!(printed.contains("[[alert]]\nname = \"down\""), "{printed}");
        let back: FileConfig = toml::from_str(&printed).unwrap();
        assert_eq!(back.alert, c.alert);
        let bad: FileConfig =
            toml::from_str("[[alert]]\nname = \"down\"\nwhen = \"loss\"\nwindow_s = 3").unwrap();
        let e = merge(&cli(&[]), bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid configuration: [[alert]] #1 (\"down\"): above_pct: required for when = \"loss\""
        );
    }
}
