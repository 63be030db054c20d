//! `zzping-docgen OUT_DIR`: writes the man pages and the bash, zsh and fish completions of
//! zzping's three binaries, generated from their clap definitions (so they cannot drift
//! from `--help`), into one directory per binary (the packages pick theirs):
//!
//! ```text
//! OUT_DIR/zzping-daemon/man8/zzping-daemon.8
//! OUT_DIR/zzping/man1/zzping.1, zzping-dump.1, ... (one page per subcommand)
//! OUT_DIR/zzping-gui/man1/zzping-gui.1
//! OUT_DIR/BIN/bash/BIN, OUT_DIR/BIN/zsh/_BIN, OUT_DIR/BIN/fish/BIN.fish
//! ```
//!
//! The output depends only on the definitions and the version: running it twice gives
//! the same bytes. `.ci/package` runs it before building the Debian packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;

/// One binary: its command line and the manual section of its pages.
struct Binary {
    cmd: clap::Command,
    section: &'static str,
    /// Extra roff appended to the top page (FILES, SEE ALSO...).
    extra: &'static str,
}

const DAEMON_EXTRA: &str = r#".SH FILES
.TP
\fI/etc/zzping/zzping.toml\fR
The configuration file (every key commented, with its default).
.TP
\fI/var/lib/zzping\fR
The data directory of the service (one subdirectory per host), readable by group \fBzzping\fR.
.TP
\fI/usr/lib/systemd/system/zzping-daemon.service\fR
The systemd unit (\fBType=notify\fR, with a watchdog).
.SH SEE ALSO
\fBzzping\fR(1), \fBzzping-gui\fR(1), \fBsystemctl\fR(1), \fBjournalctl\fR(1); /usr/share/doc/zzping/
"#;

const TOOL_EXTRA: &str = r#".SH SEE ALSO
\fBzzping-daemon\fR(8), \fBzzping-gui\fR(1); /usr/share/doc/zzping/tools.md
"#;

const GUI_EXTRA: &str = r#".SH FILES
.TP
\fI~/.config/zzping/gui.toml\fR
The viewer's configuration file (\fB$XDG_CONFIG_HOME/zzping/gui.toml\fR).
.SH SEE ALSO
\fBzzping-daemon\fR(8), \fBzzping\fR(1)
"#;

fn binaries() -> Vec<Binary> {
    vec![
        Binary {
            cmd: zzping_daemon::config::Cli::command(),
            section: "8",
            extra: DAEMON_EXTRA,
        },
        Binary {
            cmd: zzping::Cli::command(),
            section: "1",
            extra: TOOL_EXTRA,
        },
        Binary {
            cmd: zzping_gui::config::Cli::command(),
            section: "1",
            extra: GUI_EXTRA,
        },
    ]
}

/// Writes every page and completion script under `out`; returns the files written.
pub fn generate(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for b in binaries() {
        let name = b.cmd.get_name().to_owned();
        let mut cmd = b.cmd.disable_help_subcommand(true);
        cmd.build();
        let bin_dir = out.join(&name);
        let dir = bin_dir.join(format!("man{}", b.section));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        man_pages(&cmd, b.section, b.extra, &dir, &mut written)?;
        for (shell, sub, file) in [
            (Shell::Bash, "bash", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let dir = bin_dir.join(sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
            let path = dir.join(file);
            write(&path, &script)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The page of `cmd` and, recursively, one per visible subcommand (`zzping-report.1`).
fn man_pages(
    cmd: &clap::Command,
    section: &str,
    extra: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, section, "", dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone()).section(section);
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.extend_from_slice(extra.as_bytes());
    let path = dir.join(man.get_filename());
    write(&path, &page)?;
    written.push(path);
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        bail!("usage: zzping-docgen OUT_DIR (man pages and shell completions go there)");
    };
    let files = generate(Path::new(out))?;
    println!("{} files in {out}", files.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_and_subcommand_gets_a_page_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        let mut want = vec![
            "zzping-daemon/man8/zzping-daemon.8".to_owned(),
            "zzping/man1/zzping.1".into(),
        ];
        let tool = zzping::Cli::command();
        let subs: Vec<&str> = tool.get_subcommands().map(|s| s.get_name()).collect();
        assert!(subs.contains(&"report") && subs.len() >= 8, "{subs:?}");
        want.extend(subs.iter().map(|s| format!("zzping/man1/zzping-{s}.1")));
        want.push("zzping-gui/man1/zzping-gui.1".into());
        for bin in ["zzping-daemon", "zzping", "zzping-gui"] {
            want.push(format!("{bin}/bash/{bin}"));
            want.push(format!("{bin}/zsh/_{bin}"));
            want.push(format!("{bin}/fish/{bin}.fish"));
        }
        for w in &want {
            assert!(names.contains(w), "{w} missing from {names:?}");
        }
        assert_eq!(names.len(), want.len(), "{names:?}");
        // Pages document the options and the subcommands; the extra sections are there.
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        let daemon = read("zzping-daemon/man8/zzping-daemon.8");
        assert!(daemon.starts_with(".ie \\n(.g .ds Aq"), "{daemon:.200}");
        assert!(daemon.contains(".TH zzping-daemon 8"), "{daemon:.400}");
        assert!(daemon.contains("check\\-config") && daemon.contains("/etc/zzping/zzping.toml"));
        let report = read("zzping/man1/zzping-report.1");
        assert!(report.contains(".TH zzping-report 1"), "{report:.400}");
        assert!(read("zzping/man1/zzping.1").contains("zzping\\-report(1)"));
        assert!(read("zzping/bash/zzping").contains("report"));
        assert!(read("zzping-daemon/fish/zzping-daemon.fish").contains("check-config"));
    }

    #[test]
    fn output_is_reproducible() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fa = generate(a.path()).unwrap();
        generate(b.path()).unwrap();
        for f in fa {
            let rel = f.strip_prefix(a.path()).unwrap();
            assert_eq!(
                std::fs::read(&f).unwrap(),
                std::fs::read(b.path().join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}
