//! Desktop notifications of live outages: frames are fed to the viewer's live path
//! (`App::live_event`, as the daemon threads deliver them) and the notification command is
//! a fake that records its arguments. The viewer waits for each command it ran
//! (`App::wait_notifications`) before the record is read.

use std::path::{Path, PathBuf};

use zzping_gui::notify::NotifySettings;
use zzping_gui::{App, Config};
use zzping_lib::codec::QFrame;
use zzping_lib::file::wall_clock_us;
use zzping_lib::live::{HostMeta, LiveEvent};

const PERIOD_US: u32 = 100_000;

/// A command that appends `SUMMARY|BODY` lines to `out`.
fn recorder(dir: &Path, out: &Path) -> PathBuf {
    let script = dir.join("notify-send");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"$2\" >> '{}'\n",
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn app(command: Option<String>) -> App {
    let (mut app, _task) = App::boot(Config {
        notify: NotifySettings {
            command,
            after_s: 1.0,
        },
        ..Config::default()
    });
    for (host, label) in [(1, "alpha"), (2, "beta")] {
        app.live_event(
            0,
            LiveEvent::Host {
                host,
                meta: HostMeta {
                    label: label.into(),
                    address: "192.0.2.50".parse().unwrap(),
                    name: None,
                    period_us: PERIOD_US,
                    precision: 0.01,
                },
            },
        );
    }
    app
}

/// Frames `from..to` after `base_us` of both hosts, alpha's then beta's for each period:
/// 5 requests each, all answered unless the host is `down`.
fn feed(app: &mut App, base_us: u64, range: std::ops::Range<u64>, down: [bool; 2]) {
    for i in range {
        for (host, down) in [(1u32, down[0]), (2, down[1])] {
            let frame = QFrame {
                start_us: base_us + i * u64::from(PERIOD_US),
                period_us: PERIOD_US,
                sent: 5,
                lost: if down { 5 } else { 0 },
                codes: if down { vec![] } else { vec![100; 5] },
                ..QFrame::default()
            };
            app.live_event(0, LiveEvent::Frame { host, frame });
        }
    }
}

fn lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn live_outages_are_notified_in_pairs_rate_limited_and_history_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notified.txt");
    let cmd = recorder(dir.path(), &out);
    let mut app = app(Some(cmd.to_str().unwrap().to_owned()));
    let now = wall_clock_us() / u64::from(PERIOD_US) * u64::from(PERIOD_US);
    // History sent on subscribing: alpha down for 2 s five minutes ago. Not news.
    let old = now - 300_000_000;
    feed(&mut app, old, 0..20, [true, false]);
    feed(&mut app, old, 20..40, [false, false]);
    app.wait_notifications();
    assert_eq!(lines(&out), Vec::<String>::new());
    // Now: alpha down for 2 s, then back.
    let base = now - 20_000_000;
    feed(&mut app, base, 0..20, [true, false]);
    app.wait_notifications();
    assert_eq!(
        lines(&out),
        [
            "zzping: alpha down|alert host-down firing: alpha: every request failed for 1 s (rule: 1 s)"
        ]
    );
    feed(&mut app, base, 20..40, [false, false]);
    app.wait_notifications();
    assert_eq!(
        lines(&out)[1..],
        ["zzping: alpha back|alert host-down resolved: alpha: answering again"]
    );
    // Everything down: the all-hosts rule notifies; the host rule fired 3 s ago, its
    // firings (and so their resolved events) are rate-limited.
    feed(&mut app, base, 40..60, [true, true]);
    feed(&mut app, base, 60..80, [false, false]);
    app.wait_notifications();
    assert_eq!(
        lines(&out)[2..],
        [
            "zzping: all hosts down|alert all-down firing: all hosts: every request failed for 1 s (rule: 1 s)",
            "zzping: all hosts back|alert all-down resolved: all hosts: answering again",
        ]
    );
    // A minute of frame time later, the host rule notifies again.
    feed(&mut app, base, 80..700, [false, false]);
    feed(&mut app, base, 700..715, [false, true]);
    app.wait_notifications();
    assert_eq!(
        lines(&out)[4..],
        [
            "zzping: beta down|alert host-down firing: beta: every request failed for 1 s (rule: 1 s)"
        ]
    );
}

#[test]
fn no_notify_runs_nothing_and_a_missing_command_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notified.txt");
    recorder(dir.path(), &out);
    let now = wall_clock_us() / u64::from(PERIOD_US) * u64::from(PERIOD_US);
    for command in [None, Some("/nonexistent/notify-send".to_owned())] {
        let mut app = app(command);
        feed(&mut app, now - 10_000_000, 0..30, [true, true]);
        app.wait_notifications();
    }
    assert!(!out.exists());
    // The command line's default is notify-send, found on PATH.
    assert_eq!(
        NotifySettings::from_cli(false, None, None)
            .command
            .as_deref(),
        Some("notify-send")
    );
}
