//! The viewer's configuration: the command line over a TOML file over built-in defaults.
//!
//! The file is `--config FILE` (or `ZZPING_GUI_CONFIG`), else [`default_config_path`]
//! (`$XDG_CONFIG_HOME/zzping/gui.toml`, else `~/.config/zzping/gui.toml`) if it exists,
//! else none; `--config none` ignores the default file. A missing default file is fine; a
//! missing `--config` file, a file that is not valid TOML for this schema or a value out
//! of range is an error that names the file, the line and the key.
//!
//! ```toml
//! live = ["127.0.0.1:7878", "192.0.2.10:7878"]   # daemons' live-stream addresses
//! paths = ["/var/lib/zzping"]                    # data directories, host dirs, .zzp files
//! prefill_s = 600                                # history asked for on subscribe, s
//! width = 1920                                   # window size, px
//! height = 1080
//! ```
//!
//! Lists from the command line (`--live`, paths) extend the file's (duplicates dropped);
//! single values (`--prefill`, `--width`, `--height`) replace the file's. Relative paths
//! in the file are relative to the file's directory.

use clap::Parser;
use serde::Deserialize;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;
use zzping_lib::datadir::{Access, default_data_dir};

/// Seconds of history asked for on subscribe when neither the file nor the command line
/// says.
pub const DEFAULT_PREFILL_S: u32 = 300;
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
    /// A daemon's live-stream address (repeatable; added to the file's `live`). Live mode
    /// when no path is given.
    #[arg(long = "live", value_name = "ADDR")]
    pub live: Vec<SocketAddr>,
    /// Seconds of history to ask daemons for when subscribing [default: 300].
    #[arg(long, value_name = "S")]
    pub prefill: Option<u32>,
    /// Capture the window to this PNG file, then exit: once the first picture with all
    /// the offline data is drawn (--exit-after-ms, default 2000, is then a deadline: past
    /// it, exit with status 2 and no file), or after --exit-after-ms with live data only.
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
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
    /// Window width, px [default: 1600].
    #[arg(long, value_name = "PX",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_WINDOW_PX)..=i64::from(MAX_WINDOW_PX)))]
    pub width: Option<u32>,
    /// Window height, px [default: 900].
    #[arg(long, value_name = "PX",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_WINDOW_PX)..=i64::from(MAX_WINDOW_PX)))]
    pub height: Option<u32>,
}

/// The file's contents (every key optional), validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    /// Daemons' live-stream addresses.
    pub live: Vec<SocketAddr>,
    /// Data directories, host directories or `.zzp` files (relative ones resolved against
    /// the file's directory).
    pub paths: Vec<PathBuf>,
    /// Seconds of history asked for on subscribe.
    pub prefill_s: Option<u32>,
    /// Window width, px.
    pub width: Option<u32>,
    /// Window height, px.
    pub height: Option<u32>,
}

/// The file as written, with the position of each value (for error messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    live: Vec<SocketAddr>,
    #[serde(default)]
    paths: Vec<PathBuf>,
    prefill_s: Option<Spanned<u32>>,
    width: Option<Spanned<u32>>,
    height: Option<Spanned<u32>>,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file they came from, if any.
    pub file: Option<PathBuf>,
    /// Paths to open: the file's, then the command line's.
    pub paths: Vec<PathBuf>,
    /// Daemons: the file's, then the command line's.
    pub live: Vec<SocketAddr>,
    /// Seconds of history asked for on subscribe.
    pub prefill_s: u32,
    /// Window width, px.
    pub width: u32,
    /// Window height, px.
    pub height: u32,
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
    let line_of = |v: &Spanned<u32>| {
        text.as_bytes()[..v.span().start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    };
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
    Ok(FileConfig {
        width: window("width", &raw.width)?,
        height: window("height", &raw.height)?,
        prefill_s: raw.prefill_s.map(Spanned::into_inner),
        live: raw.live,
        paths: raw
            .paths
            .into_iter()
            .map(|p| if p.is_relative() { dir.join(p) } else { p })
            .collect(),
    })
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
        if !live.contains(a) {
            live.push(*a);
        }
    }
    Settings {
        file: path,
        paths,
        live,
        prefill_s: cli.prefill.or(f.prefill_s).unwrap_or(DEFAULT_PREFILL_S),
        width: cli.width.or(f.width).unwrap_or(DEFAULT_WIDTH),
        height: cli.height.or(f.height).unwrap_or(DEFAULT_HEIGHT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("zzping-gui").chain(args.iter().copied()))
            .expect("valid command line")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
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
                width: Some(1920),
                height: Some(1080),
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
                width: DEFAULT_WIDTH,
                height: DEFAULT_HEIGHT,
            }
        );
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

        let e = error("\nlive = [\"localhost:7878\"]\n");
        assert!(e.contains("/cfg/gui.toml") && e.contains("line 2"), "{e}");
        assert!(e.contains("live = ") && e.contains("socket address"), "{e}");

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
    fn window_size_flags_are_checked_like_the_file() {
        assert!(Cli::try_parse_from(["zzping-gui", "--width", "0"]).is_err());
        assert!(Cli::try_parse_from(["zzping-gui", "--height", "99999"]).is_err());
        assert_eq!(cli(&["--width", "640"]).width, Some(640));
    }
}
