//! The viewer's configuration: the command line over a TOML file over built-in defaults.
//!
//! The file is `--config FILE` (or `ZZPING_GUI_CONFIG`), else [`default_config_path`]
//! (`$XDG_CONFIG_HOME/zzping/gui.toml`, else `~/.config/zzping/gui.toml`) if it exists,
//! else none; `--config none` ignores the default file. A missing default file is fine; a
//! missing `--config` file, a file that is not valid TOML for this schema or a value out
//! of range is an error that names the file, the line and the key.
//!
//! ```toml
//! # daemons' live-stream addresses: IP or name, port 7878 when left out; a table for a
//! # daemon that requires the shared secret
//! live = ["127.0.0.1:7878", "nas.lan",
//!         { addr = "192.0.2.10:7878", secret_file = "/etc/zzping/live.secret" }]
//! paths = ["/var/lib/zzping"]                    # data directories, host dirs, .zzp files
//! prefill_s = 600                                # history asked for on subscribe, s
//! live_span_s = 300                              # live view's span once filled, s
//! width = 1920                                   # window size, px
//! height = 1080
//! ```
//!
//! Lists from the command line (`--live`, paths) extend the file's (duplicates dropped);
//! single values (`--prefill`, `--live-span`, `--width`, `--height`) replace the file's.
//! `--secret-file` is the secret of every daemon without a `secret_file` of its own.
//! Relative paths in the file are relative to the file's directory. Secret files are read
//! (with `zzping_lib::live::read_secret_file`, the daemon's and `zzping tail`'s parser)
//! when the settings are loaded, so a bad one stops the viewer with a message naming it.

use clap::Parser;
use serde::Deserialize;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;
use zzping_lib::datadir::{Access, default_data_dir};
use zzping_lib::live::{DEFAULT_PORT, SECRET_LEN, SecretError, read_secret_file};

/// Seconds of history asked for on subscribe when neither the file nor the command line
/// says.
pub const DEFAULT_PREFILL_S: u32 = 300;
/// Span of the live view once there is that much data, s (until then it fits the data).
pub const DEFAULT_LIVE_SPAN_S: u32 = 300;
/// Shortest live span accepted, s.
pub const MIN_LIVE_SPAN_S: u32 = 10;
/// Default window width, px.
pub const DEFAULT_WIDTH: u32 = 1600;
/// Default window height, px.
pub const DEFAULT_HEIGHT: u32 = 900;
/// Smallest window width or height accepted, px.
pub const MIN_WINDOW_PX: u32 = 100;
/// Largest window width or height accepted, px (the widest plot the lanes draw).
pub const MAX_WINDOW_PX: u32 = 16_384;
/// The file's name under the configuration directory.
pub const CONFIG_FILE_NAME: &str = "zzping/gui.toml";

/// A configuration problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (for `--config FILE`: also when it does not exist).
    #[error("reading {path}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema (the message gives line, column and key).
    #[error("parsing {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A secret file could not be used (the message names it; never its content).
    #[error("{what}: {source}")]
    Secret {
        /// Which setting named it (`--secret-file`, or the daemon in the file).
        what: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// A command-line value is wrong.
    #[error("{flag} {value}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A value of the file is out of range.
    #[error("{path}, line {line}: `{key}` {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Line of the value (1-based).
        line: usize,
        /// Key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The command line. Every setting of the file can be given here too.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "zzping-gui",
    version,
    about = "zzping viewer: latency distributions, loss and gaps of many hosts on one timeline"
)]
pub struct Cli {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/zzping/gui.toml (else
    /// ~/.config/zzping/gui.toml) if it exists; `none`: no file.
    #[arg(long, env = "ZZPING_GUI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directories, host directories or .zzp day files to open (added to the file's
    /// `paths`). With neither paths nor daemons (here or in the file): the daemon's data
    /// directory ($ZZPING_DATA_DIR, /var/lib/zzping if readable, else
    /// ~/.local/share/zzping) when it exists.
    pub paths: Vec<PathBuf>,
    /// A daemon's live-stream address: IP or name, with `:PORT` (default 7878)
    /// (repeatable; added to the file's `live`). Live mode when no path is given.
    #[arg(long = "live", value_name = "ADDR", value_parser = parse_live_spec)]
    pub live: Vec<String>,
    /// File holding the live stream's shared secret (64 hex digits, whitespace ignored):
    /// for every daemon without a `secret_file` of its own in the configuration file.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Seconds of history to ask daemons for when subscribing [default: 300].
    #[arg(long, value_name = "S")]
    pub prefill: Option<u32>,
    /// Span of the live view once that much data has arrived, s (until then the view
    /// fits the data) [default: 300].
    #[arg(long, value_name = "S",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_LIVE_SPAN_S)..))]
    pub live_span: Option<u32>,
    /// Start of the offline view: RFC 3339, a date (UTC), now, today, yesterday, or a
    /// time ago (-2h, -1w, "3 days ago"), as `zzping --from`.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the offline view (same forms as --from) [default: the end of the data, or
    /// now when --from is given].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Capture the window to this PNG file, then exit: once the first picture with all
    /// the offline data is drawn (--exit-after-ms, default 2000, is then a deadline: past
    /// it, exit with status 2 and no file), or after --exit-after-ms with live data only.
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
    /// Where "Save PNG" writes its pictures [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<PathBuf>,
    /// Exit this many milliseconds after start.
    #[arg(long, value_name = "MS")]
    pub exit_after_ms: Option<u64>,
    /// Write a synthetic data set (three hosts, with a 300 ms outage and a gap) into DIR,
    /// ending now, then open it.
    #[arg(long, value_name = "DIR")]
    pub demo_data: Option<PathBuf>,
    /// Length of the synthetic data set, hours.
    #[arg(long, default_value_t = 2.0)]
    pub demo_hours: f64,
    /// No desktop notifications of live outages.
    #[arg(long)]
    pub no_notify: bool,
    /// The desktop notification command, run as `COMMAND SUMMARY BODY` (no shell)
    /// [default: notify-send].
    #[arg(long, value_name = "COMMAND")]
    pub notify_command: Option<String>,
    /// Notify when a live host (or every host) has failed every request for this many
    /// seconds [default: 5].
    #[arg(long, value_name = "S", value_parser = parse_notify_after)]
    pub notify_after: Option<f64>,
    /// Window width, px [default: 1600].
    #[arg(long, value_name = "PX",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_WINDOW_PX)..=i64::from(MAX_WINDOW_PX)))]
    pub width: Option<u32>,
    /// Window height, px [default: 900].
    #[arg(long, value_name = "PX",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_WINDOW_PX)..=i64::from(MAX_WINDOW_PX)))]
    pub height: Option<u32>,
}

/// Longest `--notify-after` (`notify_after_s`): a day.
pub const MAX_NOTIFY_AFTER_S: f64 = 86_400.0;

/// `--notify-after`: seconds, more than 0 and at most [`MAX_NOTIFY_AFTER_S`].
fn parse_notify_after(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_NOTIFY_AFTER_S => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds in 0 (excluded)..={MAX_NOTIFY_AFTER_S}"
        )),
    }
}

/// A daemon to watch, as configured: its address and, when it requires one, the file
/// of its shared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// `host[:port]`: an IP address or a name (see [`resolve_live`]).
    pub addr: String,
    /// Its secret file (relative paths resolved against the configuration file's
    /// directory).
    pub secret_file: Option<PathBuf>,
}

/// A daemon to watch, ready: its address as given and its secret, read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveTarget {
    /// `host[:port]`, resolved on every connection attempt ([`resolve_live`]).
    pub addr: String,
    /// The shared secret, when the daemon requires one.
    pub secret: Option<[u8; SECRET_LEN]>,
}

/// Checks the form of a live address (`host[:port]`, `[v6]:port`, an IP address): a
/// non-empty host and a valid port. Names are resolved later ([`resolve_live`]).
pub fn parse_live_spec(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    if s.parse::<SocketAddr>().is_ok() || s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            if host.is_empty() {
                return Err(format!("{s}: no host before the port"));
            }
            port.parse::<u16>()
                .map_err(|_| format!("{s}: port {port:?} is not a number from 0 to 65535"))?;
        }
        Some(_) => {
            return Err(format!(
                "{s}: write an IPv6 address with a port as [ADDR]:PORT"
            ));
        }
        None => {}
    }
    Ok(s.to_string())
}

/// Resolves a live address: an IP address with or without port, or a name with or
/// without `:port` (port [`DEFAULT_PORT`] when left out); the first address found.
pub fn resolve_live(spec: &str) -> std::io::Result<SocketAddr> {
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let has_port = spec
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok());
    let found = if has_port {
        spec.to_socket_addrs()
    } else {
        (spec, DEFAULT_PORT).to_socket_addrs()
    };
    found?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{spec}: no address"))
    })
}

/// One entry of the file's `live` list: an address, or a table with its secret file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLive {
    Addr(String),
    Table {
        addr: String,
        secret_file: Option<PathBuf>,
    },
}

/// The file's contents (every key optional), validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    /// Daemons to watch.
    pub live: Vec<LiveEntry>,
    /// Data directories, host directories or `.zzp` files (relative ones resolved against
    /// the file's directory).
    pub paths: Vec<PathBuf>,
    /// Seconds of history asked for on subscribe.
    pub prefill_s: Option<u32>,
    /// Span of the live view once filled, s.
    pub live_span_s: Option<u32>,
    /// Window width, px.
    pub width: Option<u32>,
    /// Window height, px.
    pub height: Option<u32>,
    /// Desktop notifications of live outages (`false`: none).
    pub notify: Option<bool>,
    /// The notification command.
    pub notify_command: Option<String>,
    /// Seconds of outage before a notification.
    pub notify_after_s: Option<f64>,
}

/// The file as written, with the position of each value (for error messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    live: Vec<Spanned<RawLive>>,
    #[serde(default)]
    paths: Vec<PathBuf>,
    prefill_s: Option<Spanned<u32>>,
    live_span_s: Option<Spanned<u32>>,
    width: Option<Spanned<u32>>,
    height: Option<Spanned<u32>>,
    notify: Option<bool>,
    notify_command: Option<String>,
    notify_after_s: Option<Spanned<f64>>,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file they came from, if any.
    pub file: Option<PathBuf>,
    /// Paths to open: the file's, then the command line's.
    pub paths: Vec<PathBuf>,
    /// Daemons: the file's, then the command line's (secret files not read yet; see
    /// [`read_secrets`]).
    pub live: Vec<LiveEntry>,
    /// Seconds of history asked for on subscribe.
    pub prefill_s: u32,
    /// Span of the live view once filled, s.
    pub live_span_s: u32,
    /// Window width, px.
    pub width: u32,
    /// Window height, px.
    pub height: u32,
    /// Desktop notifications.
    pub notify: crate::notify::NotifySettings,
}

/// The default file for the environment `xdg_config_home` and `home` (the values of
/// `XDG_CONFIG_HOME` and `HOME`): `$XDG_CONFIG_HOME/zzping/gui.toml` when that variable
/// holds an absolute path, else `$HOME/.config/zzping/gui.toml`; `None` without either.
pub fn default_config_path_in(
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = absolute(xdg_config_home) {
        return Some(dir.join(CONFIG_FILE_NAME));
    }
    absolute(home).map(|h| h.join(".config").join(CONFIG_FILE_NAME))
}

/// The default file of this process's environment (see [`default_config_path_in`]).
pub fn default_config_path() -> Option<PathBuf> {
    default_config_path_in(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The file to read for `cli`, and whether it was asked for explicitly (then it must
/// exist); `default` is the default file.
pub fn config_file(cli: &Cli, default: Option<PathBuf>) -> Option<(PathBuf, bool)> {
    match &cli.config {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some((p.clone(), true)),
        None => default.map(|p| (p, false)),
    }
}

/// Parses the text of the file `path` (named in errors; relative paths in it are resolved
/// against its directory).
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // 1-based line of a value: the newlines before it, plus one.
    let line_at = |start: usize| {
        text.as_bytes()[..start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    };
    let line_of = |v: &Spanned<u32>| line_at(v.span().start);
    let window =
        |key: &'static str, v: &Option<Spanned<u32>>| -> Result<Option<u32>, ConfigError> {
            match v {
                Some(s) if !(MIN_WINDOW_PX..=MAX_WINDOW_PX).contains(s.get_ref()) => {
                    Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        line: line_of(s),
                        key,
                        message: format!(
                            "is {}, not in {MIN_WINDOW_PX}..={MAX_WINDOW_PX} px",
                            s.get_ref()
                        ),
                    })
                }
                _ => Ok(v.as_ref().map(|s| *s.get_ref())),
            }
        };
    let dir = path.parent().unwrap_or(Path::new(""));
    let resolve = |p: PathBuf| if p.is_relative() { dir.join(p) } else { p };
    let mut live = Vec::new();
    for v in raw.live {
        let line = line_at(v.span().start);
        let (addr, secret_file) = match v.into_inner() {
            RawLive::Addr(a) => (a, None),
            RawLive::Table { addr, secret_file } => (addr, secret_file.map(resolve)),
        };
        let addr = parse_live_spec(&addr).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key: "live",
            message,
        })?;
        live.push(LiveEntry { addr, secret_file });
    }
    let live_span_s = match raw.live_span_s {
        Some(s) if *s.get_ref() < MIN_LIVE_SPAN_S => {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line_of(&s),
                key: "live_span_s",
                message: format!("is {}, less than {MIN_LIVE_SPAN_S} s", s.get_ref()),
            });
        }
        v => v.map(Spanned::into_inner),
    };
    let notify_after_s = match raw.notify_after_s {
        Some(v) => {
            let x = *v.get_ref();
            if !(x.is_finite() && x > 0.0 && x <= MAX_NOTIFY_AFTER_S) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: line_at(v.span().start),
                    key: "notify_after_s",
                    message: format!(
                        "is {x}, not a number of seconds in 0 (excluded)..={MAX_NOTIFY_AFTER_S}"
                    ),
                });
            }
            Some(x)
        }
        None => None,
    };
    Ok(FileConfig {
        notify: raw.notify,
        notify_command: raw.notify_command,
        notify_after_s,
        width: window("width", &raw.width)?,
        height: window("height", &raw.height)?,
        prefill_s: raw.prefill_s.map(Spanned::into_inner),
        live_span_s,
        live,
        paths: raw.paths.into_iter().map(resolve).collect(),
    })
}

/// Why no window can open, given the values of `DISPLAY` and `WAYLAND_DISPLAY`: `None`
/// when either is set to something.
pub fn missing_display(display: Option<OsString>, wayland: Option<OsString>) -> Option<String> {
    let set = |v: &Option<OsString>| v.as_ref().is_some_and(|v| !v.is_empty());
    (!set(&display) && !set(&wayland)).then(|| {
        "no display: neither DISPLAY (X11) nor WAYLAND_DISPLAY (Wayland) is set. Run it in \
         a graphical session, with `ssh -X`, or under Xvfb (`xvfb-run zzping-gui ...`)"
            .to_string()
    })
}

/// Reads the secret file of every daemon of `s` (its own, else `--secret-file`); an
/// unreadable or malformed file is an error naming it and the daemon.
pub fn read_secrets(s: &Settings, cli: &Cli) -> Result<Vec<LiveTarget>, ConfigError> {
    s.live
        .iter()
        .map(|e| {
            let (file, what) = match (&e.secret_file, &cli.secret_file) {
                (Some(f), _) => (Some(f), format!("secret_file of daemon {}", e.addr)),
                (None, Some(f)) => (Some(f), "--secret-file".to_string()),
                (None, None) => (None, String::new()),
            };
            let secret = file
                .map(|f| read_secret_file(f).map_err(|source| ConfigError::Secret { what, source }))
                .transpose()?;
            Ok(LiveTarget {
                addr: e.addr.clone(),
                secret,
            })
        })
        .collect()
}

/// The `[from, to)` of `--from`/`--to` for a view at `now_us` in `tz`: `None` when
/// neither is given; a missing `--to` is now, a missing `--from` a day before `--to`.
pub fn view_range(
    cli: &Cli,
    now_us: u64,
    tz: &jiff::tz::TimeZone,
) -> Result<Option<(u64, u64)>, ConfigError> {
    let parse = |flag: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                zzping_lib::time::parse_time_arg(t, now_us, tz).map_err(|e| ConfigError::Flag {
                    flag,
                    value: t.to_string(),
                    message: e.to_string(),
                })
            })
            .transpose()
    };
    let (from, to) = (parse("--from", &cli.from)?, parse("--to", &cli.to)?);
    let (from, to) = match (from, to) {
        (None, None) => return Ok(None),
        (Some(a), None) => (a, now_us.max(a + 1)),
        (None, Some(b)) => (b.saturating_sub(zzping_lib::time::US_PER_DAY), b),
        (Some(a), Some(b)) => (a, b),
    };
    if from >= to {
        return Err(ConfigError::Flag {
            flag: "--from",
            value: cli.from.clone().unwrap_or_default(),
            message: "must be before --to".into(),
        });
    }
    Ok(Some((from, to)))
}

/// Reads and parses the file `path`.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Reads the file chosen for `cli` (see [`config_file`]; `default` is the default file),
/// if any, and merges it with the command line.
pub fn load_with(cli: &Cli, default: Option<PathBuf>) -> Result<Settings, ConfigError> {
    let file = match config_file(cli, default) {
        Some((p, explicit)) if explicit || p.exists() => {
            let f = read_file(&p)?;
            Some((p, f))
        }
        _ => None,
    };
    Ok(merge(cli, file))
}

/// [`load_with`] the default file of this process's environment, then
/// [`default_to_data_dir`] with the default data directory of this process
/// ([`zzping_lib::datadir`], the daemon's rule).
pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let mut s = load_with(cli, default_config_path())?;
    default_to_data_dir(&mut s, cli, &default_data_dir(Access::Read));
    Ok(s)
}

/// Opens `dir` when nothing else was asked for (no path, no daemon, no demo data) and it
/// is a directory: `zzping-gui` alone shows what the local daemon recorded.
pub fn default_to_data_dir(s: &mut Settings, cli: &Cli, dir: &Path) {
    if s.paths.is_empty() && s.live.is_empty() && cli.demo_data.is_none() && dir.is_dir() {
        s.paths.push(dir.to_path_buf());
    }
}

/// Merges the command line over the file (`None`: no file) over the defaults.
pub fn merge(cli: &Cli, file: Option<(PathBuf, FileConfig)>) -> Settings {
    let (path, f) = match file {
        Some((p, f)) => (Some(p), f),
        None => (None, FileConfig::default()),
    };
    let mut paths = f.paths;
    for p in &cli.paths {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    let mut live = f.live;
    for a in &cli.live {
        if !live.iter().any(|e| e.addr == *a) {
            live.push(LiveEntry {
                addr: a.clone(),
                secret_file: None,
            });
        }
    }
    Settings {
        file: path,
        paths,
        live,
        prefill_s: cli.prefill.or(f.prefill_s).unwrap_or(DEFAULT_PREFILL_S),
        live_span_s: cli
            .live_span
            .or(f.live_span_s)
            .unwrap_or(DEFAULT_LIVE_SPAN_S),
        width: cli.width.or(f.width).unwrap_or(DEFAULT_WIDTH),
        height: cli.height.or(f.height).unwrap_or(DEFAULT_HEIGHT),
        notify: crate::notify::NotifySettings::from_cli(
            cli.no_notify || f.notify == Some(false),
            cli.notify_command.clone().or(f.notify_command),
            cli.notify_after.or(f.notify_after_s),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cli_err(args: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("zzping-gui").chain(args.iter().copied()))
            .expect_err("an invalid command line")
            .to_string()
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("zzping-gui").chain(args.iter().copied()))
            .expect("valid command line")
    }

    fn addr(s: &str) -> LiveEntry {
        LiveEntry {
            addr: s.into(),
            secret_file: None,
        }
    }

    const FULL: &str = "\
# viewer settings
live = [\"127.0.0.1:7878\", \"[2001:db8::10]:7878\"]
paths = [\"/var/lib/zzping\", \"relative/host\"]
prefill_s = 600
width = 1920
height = 1080
";

    #[test]
    fn a_full_file_parses_and_relative_paths_follow_the_file() {
        let f = parse(Path::new("/etc/xdg/zzping/gui.toml"), FULL).unwrap();
        assert_eq!(
            f,
            FileConfig {
                live: vec![addr("127.0.0.1:7878"), addr("[2001:db8::10]:7878")],
                paths: vec![
                    PathBuf::from("/var/lib/zzping"),
                    PathBuf::from("/etc/xdg/zzping/relative/host")
                ],
                prefill_s: Some(600),
                live_span_s: None,
                width: Some(1920),
                height: Some(1080),
                notify: None,
                notify_command: None,
                notify_after_s: None,
            }
        );
        // Every key is optional.
        assert_eq!(
            parse(Path::new("e.toml"), "").unwrap(),
            FileConfig::default()
        );
    }

    #[test]
    fn nothing_asked_for_opens_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let open = |args: &[&str], data: &Path| {
            let c = cli(args);
            let mut s = merge(&c, None);
            default_to_data_dir(&mut s, &c, data);
            s.paths
        };
        assert_eq!(open(&[], dir.path()), [dir.path()]);
        // Not when it does not exist, nor when anything else was asked for.
        assert!(open(&[], &missing).is_empty());
        assert_eq!(open(&["/x"], dir.path()), [Path::new("/x")]);
        assert!(open(&["--live", "127.0.0.1:7878"], dir.path()).is_empty());
        assert!(open(&["--demo-data", "/d"], dir.path()).is_empty());
    }

    #[test]
    fn the_command_line_extends_lists_and_replaces_values() {
        let file = parse(Path::new("/c/gui.toml"), FULL).unwrap();
        let s = merge(
            &cli(&[
                "/data/extra",
                "/var/lib/zzping",
                "--live",
                "127.0.0.1:7878",
                "--live",
                "192.0.2.10:7878",
                "--prefill",
                "30",
                "--height",
                "700",
            ]),
            Some((PathBuf::from("/c/gui.toml"), file)),
        );
        assert_eq!(s.file, Some(PathBuf::from("/c/gui.toml")));
        // File entries first, then the command line's, without duplicates.
        assert_eq!(
            s.paths,
            ["/var/lib/zzping", "/c/relative/host", "/data/extra"].map(PathBuf::from)
        );
        assert_eq!(
            s.live,
            vec![
                addr("127.0.0.1:7878"),
                addr("[2001:db8::10]:7878"),
                addr("192.0.2.10:7878")
            ]
        );
        assert_eq!((s.prefill_s, s.width, s.height), (30, 1920, 700));
        // Without a file or flags: the defaults.
        let d = merge(&cli(&[]), None);
        assert_eq!(
            d,
            Settings {
                file: None,
                paths: vec![],
                live: vec![],
                prefill_s: DEFAULT_PREFILL_S,
                live_span_s: DEFAULT_LIVE_SPAN_S,
                width: DEFAULT_WIDTH,
                height: DEFAULT_HEIGHT,
                notify: crate::notify::NotifySettings::from_cli(false, None, None),
            }
        );
    }

    #[test]
    fn notifications_are_set_by_the_file_and_the_command_line() {
        let text = "notify_command = \"/usr/local/bin/pager\"\nnotify_after_s = 2.5\n";
        let file = parse(Path::new("/c/gui.toml"), text).unwrap();
        let s = merge(
            &cli(&[]),
            Some((PathBuf::from("/c/gui.toml"), file.clone())),
        );
        assert_eq!(s.notify.command.as_deref(), Some("/usr/local/bin/pager"));
        assert_eq!(s.notify.after_s, 2.5);
        let s = merge(
            &cli(&["--notify-after", "9"]),
            Some((PathBuf::from("/c/gui.toml"), file.clone())),
        );
        assert_eq!(s.notify.after_s, 9.0);
        let s = merge(
            &cli(&["--no-notify"]),
            Some((PathBuf::from("/c/gui.toml"), file)),
        );
        assert_eq!(s.notify.command, None);
        let off = parse(Path::new("/c/gui.toml"), "notify = false").unwrap();
        let s = merge(&cli(&[]), Some((PathBuf::from("/c/gui.toml"), off)));
        assert_eq!(s.notify.command, None);
        assert_eq!(
            error("width = 800\nnotify_after_s = 0.0"),
            "/cfg/gui.toml, line 2: `notify_after_s` is 0, not a number of seconds in 0 \
             (excluded)..=86400"
        );
        assert!(cli_err(&["--notify-after=0"]).contains("is not a number of seconds"));
    }

    /// The error of `text` as the file `/cfg/gui.toml`, as the user reads it.
    fn error(text: &str) -> String {
        parse(Path::new("/cfg/gui.toml"), text)
            .expect_err("an invalid file")
            .to_string()
    }

    #[test]
    fn bad_files_name_the_file_the_line_and_the_key() {
        let e = error("prefill_s = 10\nlive = [\"127.0.0.1:7878\"]\nwdith = 3\n");
        assert!(e.starts_with("parsing /cfg/gui.toml: "), "{e}");
        assert!(e.contains("line 3") && e.contains("wdith"), "{e}");

        // The parser quotes the offending line, key included.
        let e = error("width = \"wide\"\n");
        assert!(e.contains("/cfg/gui.toml") && e.contains("line 1"), "{e}");
        assert!(
            e.contains("width = \"wide\"") && e.contains("expected u32"),
            "{e}"
        );

        let e = error("\nlive = [\"localhost:78x78\"]\n");
        assert_eq!(
            e,
            "/cfg/gui.toml, line 2: `live` localhost:78x78: port \"78x78\" is not a number \
             from 0 to 65535"
        );
        let e = error("live = [\"127.0.0.1:1\",\n  { addr = \"2001:db8::zz:7878\" }]\n");
        assert!(e.contains("line 2") && e.contains("[ADDR]:PORT"), "{e}");
        let e = error("live_span_s = 2\n");
        assert_eq!(
            e,
            "/cfg/gui.toml, line 1: `live_span_s` is 2, less than 10 s"
        );

        let e = error("prefill_s = -5\n");
        assert!(e.contains("/cfg/gui.toml") && e.contains("line 1"), "{e}");

        let e = error("width = 1600\n\nheight = 20\n");
        assert_eq!(
            e,
            "/cfg/gui.toml, line 3: `height` is 20, not in 100..=16384 px"
        );

        let e = error("live = \n");
        assert!(e.contains("/cfg/gui.toml") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn the_default_file_is_under_xdg_config_home_else_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_config_path_in(os("/x/conf"), os("/home/u")),
            Some(PathBuf::from("/x/conf/zzping/gui.toml"))
        );
        // A relative XDG_CONFIG_HOME is ignored (XDG base directory specification).
        assert_eq!(
            default_config_path_in(os("conf"), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/zzping/gui.toml"))
        );
        assert_eq!(
            default_config_path_in(None, os("/home/u")),
            Some(PathBuf::from("/home/u/.config/zzping/gui.toml"))
        );
        assert_eq!(default_config_path_in(None, None), None);
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_missing_explicit_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("zzping/gui.toml");
        let s = load_with(&cli(&["--live", "127.0.0.1:1"]), Some(absent.clone())).unwrap();
        assert_eq!((s.file, s.live), (None, vec![addr("127.0.0.1:1")]));

        let flag = absent.display().to_string();
        let e = load_with(&cli(&["--config", &flag]), None)
            .expect_err("missing --config file")
            .to_string();
        assert_eq!(e, format!("reading {flag}"));

        // The default file is read when it exists, and `--config none` skips it.
        std::fs::create_dir_all(absent.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&absent).unwrap();
        f.write_all(b"prefill_s = 42\nwidth = 800\n").unwrap();
        let s = load_with(&cli(&[]), Some(absent.clone())).unwrap();
        assert_eq!(
            (s.file.as_deref(), s.prefill_s, s.width),
            (Some(absent.as_path()), 42, 800)
        );
        let s = load_with(&cli(&["--config", "none"]), Some(absent.clone())).unwrap();
        assert_eq!(
            (s.file, s.prefill_s, s.width),
            (None, DEFAULT_PREFILL_S, DEFAULT_WIDTH)
        );

        // A bad default file is an error too (it exists: the user meant it).
        std::fs::write(&absent, "width = 0\n").unwrap();
        let e = load_with(&cli(&[]), Some(absent.clone()))
            .expect_err("bad default file")
            .to_string();
        assert!(
            e.contains(&absent.display().to_string()) && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn live_addresses_take_names_default_ports_and_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gui.toml");
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        std::fs::write(dir.path().join("nas.secret"), format!("{key}\n")).unwrap();
        std::fs::write(dir.path().join("cli.secret"), key.replace('0', "f")).unwrap();
        std::fs::write(
            &cfg,
            "live = [\"localhost\", { addr = \"127.0.0.1:7879\", secret_file = \"nas.secret\" }]\n",
        )
        .unwrap();
        let f = read_file(&cfg).unwrap();
        assert_eq!(
            f.live,
            vec![
                addr("localhost"),
                LiveEntry {
                    addr: "127.0.0.1:7879".into(),
                    secret_file: Some(dir.path().join("nas.secret")),
                }
            ]
        );
        let cli_secret = dir.path().join("cli.secret").display().to_string();
        let c = cli(&["--live", "[::1]:9", "--secret-file", &cli_secret]);
        let s = merge(&c, Some((cfg.clone(), f)));
        let t = read_secrets(&s, &c).unwrap();
        let mut own = [0u8; 32];
        for (i, b) in own.iter_mut().enumerate() {
            *b = u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap();
        }
        assert_eq!(t.len(), 3);
        // The file's own secret for its daemon; --secret-file for the others.
        assert_eq!(t[1].secret, Some(own));
        assert!(t[0].secret.is_some() && t[0].secret != Some(own));
        assert_eq!(t[0].secret, t[2].secret);
        // Without --secret-file, only the daemon with its own file has a secret.
        let c = cli(&[]);
        let t = read_secrets(
            &merge(&c, Some((cfg.clone(), read_file(&cfg).unwrap()))),
            &c,
        )
        .unwrap();
        assert_eq!((t[0].secret, t[1].secret), (None, Some(own)));
        // A bad secret file names the setting and the file.
        std::fs::write(dir.path().join("nas.secret"), "not hex").unwrap();
        let e = read_secrets(
            &merge(&c, Some((cfg.clone(), read_file(&cfg).unwrap()))),
            &c,
        )
        .expect_err("bad secret")
        .to_string();
        assert!(
            e.contains("daemon 127.0.0.1:7879") && e.contains("nas.secret"),
            "{e}"
        );
        // Names resolve, with the default port when none is given.
        assert_eq!(
            resolve_live("127.0.0.1").unwrap(),
            "127.0.0.1:7878".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(resolve_live("localhost:99").unwrap().port(), 99);
        assert!(resolve_live("localhost").unwrap().ip().is_loopback());
        assert_eq!(resolve_live("::1").unwrap().port(), DEFAULT_PORT);
        assert!(Cli::try_parse_from(["zzping-gui", "--live", "host:notaport"]).is_err());
        assert!(Cli::try_parse_from(["zzping-gui", "--live", ":7878"]).is_err());
    }

    #[test]
    fn from_and_to_take_the_tools_time_forms() {
        let tz = jiff::tz::TimeZone::UTC;
        let now = 1_609_488_000_000_000; // 2021-01-01T08:00:00Z
        let h = 3_600_000_000;
        let r = |args: &[&str]| view_range(&cli(args), now, &tz);
        assert_eq!(r(&[]).unwrap(), None);
        assert_eq!(r(&["--from", "-2h"]).unwrap(), Some((now - 2 * h, now)));
        assert_eq!(
            r(&["--from", "2021-01-01", "--to", "2021-01-01T06:00:00Z"]).unwrap(),
            Some((now - 8 * h, now - 2 * h))
        );
        assert_eq!(r(&["--to", "-1h"]).unwrap(), Some((now - 25 * h, now - h)));
        let e = r(&["--from", "soon"]).unwrap_err().to_string();
        assert!(e.starts_with("--from soon: expected a time"), "{e}");
        let e = r(&["--from", "-1h", "--to", "-2h"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be before --to"), "{e}");
    }

    #[test]
    fn no_display_is_said_by_name() {
        let os = |s: &str| Some(OsString::from(s));
        let m = missing_display(None, None).expect("no display");
        assert!(
            m.contains("DISPLAY") && m.contains("WAYLAND_DISPLAY"),
            "{m}"
        );
        assert!(missing_display(os(""), os("")).is_some());
        assert_eq!(missing_display(os(":0"), None), None);
        assert_eq!(missing_display(None, os("wayland-0")), None);
    }

    #[test]
    fn window_size_flags_are_checked_like_the_file() {
        assert!(Cli::try_parse_from(["zzping-gui", "--width", "0"]).is_err());
        assert!(Cli::try_parse_from(["zzping-gui", "--height", "99999"]).is_err());
        assert_eq!(cli(&["--width", "640"]).width, Some(640));
    }
}
