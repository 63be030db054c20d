//! `zzping-netsim` command line; see the library docs (`zzping_netsim`).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use zzping_netsim::scenario::Scenario;
use zzping_netsim::sim::Simulator;
use zzping_netsim::sys::{self, SigSet};

/// Simulated network on a TUN device inside a network namespace.
#[derive(Parser, Debug)]
#[command(name = "zzping-netsim", version)]
struct Cli {
    /// Log filter for stderr (tracing syntax), e.g. `info` or `debug`.
    #[arg(long, global = true, env = "ZZPING_NETSIM_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run COMMAND in a fresh network namespace served by the simulator.
    Exec {
        /// Scenario TOML file.
        #[arg(long)]
        scenario: PathBuf,
        /// Ground-truth JSON Lines output.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Serve in the current network namespace until SIGINT/SIGTERM.
    Run {
        /// Scenario TOML file.
        #[arg(long)]
        scenario: PathBuf,
        /// Ground-truth JSON Lines output.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// List the simulated addresses of a scenario.
    Hosts {
        /// Scenario TOML file.
        #[arg(long)]
        scenario: PathBuf,
    },
}

fn main() -> ExitCode {
    // Argument parsing starts no thread; the namespace switch for `exec`
    // must happen before any thread exists so that all of them inherit it.
    let cli = Cli::parse();
    let unshare_result = match cli.cmd {
        Cmd::Exec { .. } => Some(sys::unshare_net()),
        _ => None,
    };
    init_logging(&cli.log);
    let r = match cli.cmd {
        Cmd::Exec {
            scenario,
            truth,
            command,
        } => unshare_result
            .unwrap_or(Ok(()))
            .context("cannot create a network namespace (unshare(CLONE_NEWNET) needs root or CAP_SYS_ADMIN)")
            .and_then(|()| exec(&scenario, truth, &command)),
        Cmd::Run { scenario, truth } => run(&scenario, truth).map(|()| 0),
        Cmd::Hosts { scenario } => hosts(&scenario).map(|()| 0),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zzping-netsim: error: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load(path: &std::path::Path) -> Result<Scenario> {
    Ok(Scenario::load(path)?)
}

fn hosts(path: &std::path::Path) -> Result<()> {
    let s = load(path)?;
    for h in &s.host {
        for a in &h.addresses {
            println!("{a}\t{}\t{}", h.name, h.summary());
        }
    }
    Ok(())
}

fn run(path: &std::path::Path, truth: Option<PathBuf>) -> Result<()> {
    let s = load(path)?;
    let signals = SigSet::of(&[libc::SIGINT, libc::SIGTERM]);
    // Blocked before the simulator's threads exist, so only sigtimedwait
    // below receives them.
    signals.block().context("blocking signals")?;
    let sim = Simulator::start(&s, truth.as_deref()).context("starting the simulator")?;
    println!("ready {}", s.network.tun_name);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        if let Some(sig) = signals.wait(1000).context("waiting for signals")? {
            tracing::info!(sig, "signal received, stopping");
            break;
        }
    }
    sim.stop().context("stopping the simulator")?;
    Ok(())
}

fn exec(path: &std::path::Path, truth: Option<PathBuf>, command: &[String]) -> Result<u8> {
    let s = load(path)?;
    let Some((prog, args)) = command.split_first() else {
        bail!("no command given");
    };
    let signals = SigSet::of(&[libc::SIGINT, libc::SIGTERM, libc::SIGCHLD]);
    signals.block().context("blocking signals")?;
    let sim = Simulator::start(&s, truth.as_deref()).context("starting the simulator")?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // The child must not outlive us (and keep the namespace alive).
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = sim.stop();
            return Err(e).with_context(|| format!("cannot run {prog:?}"));
        }
    };
    let status = loop {
        match signals.wait_info(200) {
            Ok(Some((sig, true))) if sig == libc::SIGINT => {
                // Ctrl-C: the terminal already sent it to the command, which
                // is in our process group; forwarding would deliver it twice.
                tracing::info!(sig, "terminal interrupt, not forwarded");
            }
            Ok(Some((sig, _))) if sig == libc::SIGINT || sig == libc::SIGTERM => {
                tracing::info!(sig, "forwarding signal to the command");
                if let Err(e) = sys::kill(child.id(), sig) {
                    tracing::warn!(error = %e, "cannot forward signal");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sigtimedwait failed"),
        }
        if let Some(st) = child.try_wait().context("waiting for the command")? {
            break st;
        }
    };
    let summary = sim.stop().context("stopping the simulator")?;
    tracing::info!(?summary, %status, "command finished");
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    };
    Ok(u8::try_from(code & 0xff).unwrap_or(125))
}
