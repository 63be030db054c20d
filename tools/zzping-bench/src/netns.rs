//! Running work inside a network namespace owned by one thread.
//!
//! Network namespaces belong to threads on Linux: the thread calls `unshare(CLONE_NEWNET)`,
//! brings up loopback and (optionally) starts the simulator; processes it spawns inherit
//! the namespace. The rest of this process, and the machine, are unaffected, and the
//! namespace disappears when the thread and its children are gone.

use anyhow::{Context, Result, anyhow};
use std::path::Path;
use zzping_netsim::{Scenario, Simulator, sys};

/// Runs `f` on a new thread inside a fresh network namespace with loopback up and, when
/// `scenario` is given, the simulator serving it (truth written to `truth` if given).
pub fn run_in_netns<T: Send + 'static>(
    scenario: Option<&Path>,
    truth: Option<&Path>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let scenario = scenario
        .map(|p| Scenario::load(p).with_context(|| format!("loading scenario {}", p.display())))
        .transpose()?;
    let truth = truth.map(Path::to_path_buf);
    std::thread::spawn(move || -> Result<T> {
        sys::unshare_net().context("unshare(CLONE_NEWNET): the benchmark needs root")?;
        let st = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .context("running ip link set lo up (iproute2)")?;
        if !st.success() {
            return Err(anyhow!("ip link set lo up failed: {st}"));
        }
        let sim = match &scenario {
            Some(s) => {
                Some(Simulator::start(s, truth.as_deref()).context("starting the simulator")?)
            }
            None => None,
        };
        let out = f();
        if let Some(sim) = sim {
            sim.stop().context("stopping the simulator")?;
        }
        out
    })
    .join()
    .map_err(|_| anyhow!("benchmark thread panicked"))?
}
