//! Network namespaces for end-to-end tests: every test that sends packets does it inside
//! a namespace it created, with only loopback or simulated addresses.

use std::process::Command;

/// Moves the calling thread into a new network namespace and brings `lo` up there.
/// Threads and children it starts afterwards inherit the namespace; it dies with the
/// last of them. Call [`crate::privileges::netns`] first: here, a failure is a failure.
pub fn enter() {
    // SAFETY: plain syscall with a flag argument; it affects the calling thread only.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert!(
        rc == 0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    let ip = crate::tool("ip", "iproute2");
    let st = Command::new(ip)
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run `ip link set lo up`");
    assert!(
        st.success(),
        "`ip link set lo up` failed in the new namespace"
    );
}

/// The network namespace of a task (`"self"`, `"thread-self"`, a pid or `pid/task/tid`),
/// as the kernel names it (`net:[4026532...]`).
pub fn of(task: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{task}/ns/net"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Tasks (pids, or `pid/task/tid` for threads) currently in namespace `ns` (as returned
/// by [`of`]): after a test, none should be left.
pub fn tasks_in(ns: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if of(&name).as_deref() == Some(ns) {
            v.push(name);
            continue;
        }
        // Threads of this process (a namespace can belong to one thread).
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{name}/task")) {
            for t in tasks.flatten() {
                let task = format!("{name}/task/{}", t.file_name().to_string_lossy());
                if of(&task).as_deref() == Some(ns) {
                    v.push(task);
                }
            }
        }
    }
    v
}

/// Runs `ip ARGS` (iproute2) in the calling thread's namespace, bounded to 10 s, and fails
/// the test with its error output if it fails.
pub fn ip(args: &[&str]) {
    let child = Command::new(crate::tool("ip", "iproute2"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ip (iproute2)");
    let out = crate::process::output_bounded(child, std::time::Duration::from_secs(10));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
