//! Integration tests: the real `zzping` binary on temporary directories.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zzping_legacy::{
    FdqHeader, FdqTime, FrameDataTime, encode_fdq_frame, encode_fdq_header, encode_framedata_frame,
};
use zzping_lib::codec::QFrame;
use zzping_lib::file::{FileReader, HostInfo, HostWriter, Issue, WriterConfig};
use zzping_lib::frame::{ErrorKind, FLAG_APPROXIMATE, Frame};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::layout::day_file;

/// 2021-01-01T08:00:00Z.
const T0: u64 = 1_609_488_000_000_000;
const P: u32 = 100_000;

fn zz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(args)
        .output()
        .expect("run zzping")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

fn writer(dir: &Path, label: &str, addr: &str) -> HostWriter {
    HostWriter::open(
        dir,
        HostInfo {
            label: label.into(),
            address: addr.parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: P,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap()
}

/// A frame at slot `i` with `n` replies around `base_us` and `lost` losses.
fn frame(i: u64, base_us: u32, n: u32, lost: u32) -> Frame {
    let mut f = Frame::new(T0 + i * u64::from(P), P);
    f.sent = n + lost;
    f.lost = lost;
    f.duplicates = (i % 7 == 0) as u32;
    f.errors = 0;
    for k in 0..n {
        f.rtts_us.push(base_us + (k * 37 + i as u32 * 11) % 900);
    }
    f
}

fn write_host(dir: &Path, label: &str, addr: &str, frames: &[Frame]) -> PathBuf {
    let mut w = writer(dir, label, addr);
    for f in frames {
        w.append(f).unwrap();
    }
    w.sync().unwrap();
    day_file(&dir.join(label), T0)
}

fn read_frames(path: &Path) -> (Vec<QFrame>, Quantizer, Vec<Issue>) {
    let mut r = FileReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        v.push(f.clone());
    }
    let q = r.quantizer().map(|q| (**q).clone()).unwrap_or_default();
    (v, q, r.issues().to_vec())
}

#[test]
fn usage_errors_exit_2_and_bad_flags_name_the_flag() {
    let o = zz(&["dump", "--from"]);
    assert_eq!(o.status.code(), Some(2));
    let o = zz(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    write_host(dir.path(), "gw", "192.168.1.1", &[frame(0, 1000, 3, 0)]);
    let o = zz(&["dump", s(dir.path()), "--from", "-2x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--from -2x"), "{}", stderr(&o));
    let o = zz(&["dump", s(dir.path()), "--host", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--host nope"), "{}", stderr(&o));
    let missing = dir.path().join("missing");
    let o = zz(&["dump", s(&missing)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(s(&missing)), "{}", stderr(&o));
}

#[test]
fn no_path_reads_the_daemons_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_host(dir.path(), "gw", "192.168.1.1", &[frame(0, 1000, 3, 0)]);
    let run = |data_dir: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_zzping"))
            .args(args)
            .env("ZZPING_DATA_DIR", data_dir)
            .output()
            .unwrap()
    };
    // Every subcommand that reads frame files defaults to the data directory.
    let with_path = ok(zz(&["dump", s(dir.path())]));
    let without = ok(run(dir.path(), &["dump"]));
    assert_eq!(stdout(&without), stdout(&with_path));
    assert!(stdout(&without).contains("gw"), "{}", stdout(&without));
    for cmd in [&["report"][..], &["export"], &["verify"], &["rollup"]] {
        ok(run(dir.path(), cmd));
    }
    // A default that does not exist is named, with what to do instead.
    let missing = dir.path().join("missing");
    let o = run(&missing, &["report"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(s(&missing)) && stderr(&o).contains("no path given"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn export_csv_and_jsonl_parse_back_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let a: Vec<Frame> = (0..50)
        .map(|i| {
            let mut f = frame(i, 1000, (i % 5) as u32, (i % 3) as u32);
            // Some frames with errors of two kinds, one from a router.
            if i % 4 == 1 {
                f.sent += 3;
                f.errors = 3;
                f.error_kinds.add(ErrorKind::NoRoute, 1);
                f.error_kinds.add(ErrorKind::HostUnreachable, 2);
                f.router = Some("198.18.0.1".parse().unwrap());
            }
            f
        })
        .collect();
    let b: Vec<Frame> = (0..20).map(|i| frame(i, 20_000, 4, 0)).collect();
    write_host(dir.path(), "gw", "192.168.1.1", &a);
    // A label needing CSV quoting.
    write_host(dir.path(), "x,\"y", "8.8.8.8", &b);
    let q = Quantizer::new(0.01).unwrap();
    let expect = |label: &str, frames: &[Frame]| -> Vec<(String, Frame)> {
        frames
            .iter()
            .map(|f| {
                let mut qf = QFrame::default();
                qf.set_from(f, &q);
                let mut g = Frame::default();
                qf.to_frame_into(&q, &mut g);
                (label.to_string(), g)
            })
            .collect()
    };
    // The label as configured (its directory is `x--y`): quoted by the CSV writer.
    let mut want = expect("gw", &a);
    want.extend(expect("x,\"y", &b));
    want.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.start_us.cmp(&y.1.start_us)));

    let o = ok(zz(&["export", "--format", "csv", s(dir.path())]));
    let mut rd = csv::Reader::from_reader(&o.stdout[..]);
    let headers = rd.headers().unwrap().clone();
    assert_eq!(headers.get(0), Some("time"));
    assert_eq!(headers.len(), 18);
    assert_eq!((&headers[16], &headers[17]), ("error_kinds", "router"));
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), want.len());
    for (row, (label, f)) in rows.iter().zip(&want) {
        assert_eq!(&row[1], label);
        assert_eq!(row[0], zzping_lib::time::rfc3339_us(f.start_us));
        assert_eq!(row[2].parse::<u64>().unwrap(), f.start_us);
        assert_eq!(row[4].parse::<u32>().unwrap(), f.sent);
        assert_eq!(row[5].parse::<u32>().unwrap(), f.received());
        assert_eq!(row[6].parse::<u32>().unwrap(), f.lost);
        assert_eq!(row[7].parse::<u32>().unwrap(), f.duplicates);
        assert_eq!(row[9].parse::<u32>().unwrap(), f.errors);
        if f.errors > 0 {
            assert_eq!(
                (&row[16], &row[17]),
                ("no_route:1;host_unreachable:2", "198.18.0.1")
            );
        } else {
            assert_eq!((&row[16], &row[17]), ("", ""));
        }
        let mut r = f.rtts_us.clone();
        r.sort_unstable();
        match r.first() {
            None => assert_eq!(&row[11], ""),
            Some(&m) => {
                assert_eq!(row[11].parse::<u32>().unwrap(), m);
                assert_eq!(row[15].parse::<u32>().unwrap(), *r.last().unwrap());
                let p50 = zzping_testkit::oracle::nearest_rank_by_definition(&r, 0.5).unwrap();
                assert_eq!(row[12].parse::<u32>().unwrap(), p50);
            }
        }
    }

    let o = ok(zz(&["export", "--format", "jsonl", s(dir.path())]));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), want.len());
    for (v, (label, f)) in lines.iter().zip(&want) {
        assert_eq!(v["host"], label.as_str());
        assert_eq!(v["start_us"], f.start_us);
        assert_eq!(v["lost"], f.lost);
        assert_eq!(v["errors"], f.errors);
        if f.errors > 0 {
            assert_eq!(
                v["error_kinds"],
                serde_json::json!({"no_route": 1, "host_unreachable": 2})
            );
            assert_eq!(v["router"], "198.18.0.1");
        } else {
            assert_eq!(v["error_kinds"], serde_json::json!({}));
            assert!(v["router"].is_null());
        }
        let mut r = f.rtts_us.clone();
        r.sort_unstable();
        let got: Vec<u32> = serde_json::from_value(v["rtts_us"].clone()).unwrap();
        assert_eq!(got, r);
        if r.is_empty() {
            assert!(v["p50_us"].is_null());
        }
    }

    // dump and tail's line: loss counts errors; the kinds and the router.
    let o = ok(zz(&["dump", "--no-headers", "--host", "gw", s(dir.path())]));
    let text = stdout(&o);
    let line = |i: usize| text.lines().nth(i).unwrap_or_default();
    assert!(
        line(1).contains(
            " gw sent=5 recv=1 lost=1 dup=0 late=0 err=3 loss=80.0% \
             kinds=no_route:1;host_unreachable:2 router=198.18.0.1 flags=- rtt_ms=["
        ),
        "{text}"
    );
    assert!(
        line(2).contains(" err=0 loss=50.0% kinds=- router=- flags=- "),
        "{text}"
    );

    // --output and a time range.
    let out = dir.path().join("out.csv");
    let from = zzping_lib::time::rfc3339_us(T0 + 10 * u64::from(P));
    let to = zzping_lib::time::rfc3339_us(T0 + 15 * u64::from(P));
    ok(zz(&[
        "export",
        s(dir.path()),
        "--host",
        "gw",
        "--from",
        &from,
        "--to",
        &to,
        "-o",
        s(&out),
    ]));
    let mut rd = csv::Reader::from_path(&out).unwrap();
    assert_eq!(rd.records().count(), 5);
}

/// Writes frames, garbage, more frames in a new segment, and a torn tail.
fn damaged_file(dir: &Path) -> (PathBuf, u64, u64) {
    let path = write_host(
        dir,
        "gw",
        "192.168.1.1",
        &(0..5).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let garbage_at = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0xc1, 0xff, 0x00, 0x13, 0x37])
        .unwrap();
    write_host(
        dir,
        "gw",
        "192.168.1.1",
        &(10..13).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    // The torn frame is the last one: it starts where the previous frame ended.
    let (frames, _, issues) = read_frames(&path);
    assert_eq!(frames.len(), 7);
    let torn_at = match issues.last() {
        Some(Issue::TornTail { offset, .. }) => *offset,
        other => panic!("{other:?}"),
    };
    (path, garbage_at, torn_at)
}

#[test]
fn dump_reports_damage_with_offsets_and_keeps_good_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (path, garbage_at, torn_at) = damaged_file(dir.path());
    let o = ok(zz(&["dump", s(dir.path())]));
    let out = stdout(&o);
    let err = stderr(&o);
    assert_eq!(out.lines().count(), 7, "{out}");
    assert!(
        out.starts_with("2021-01-01T08:00:00.000000Z gw sent=2 recv=2 lost=0"),
        "{out}"
    );
    assert!(
        err.contains(&format!(
            "{}: skipped 5 undecodable bytes at byte {garbage_at}",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: torn tail", path.display())),
        "{err}"
    );
    assert!(err.contains(&format!("at byte {torn_at}")), "{err}");
    assert!(err.contains("segment host=192.168.1.1"), "{err}");
    // --local prints an offset instead of Z.
    let o = ok(zz(&["dump", "--local", "--no-headers", s(&path)]));
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(!first.split(' ').next().unwrap().ends_with('Z'), "{first}");
}

#[test]
fn hosts_are_shown_by_address_not_by_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    // `::1` is stored as `__1` (an on-disk detail); the header holds the address.
    let frames: Vec<Frame> = (0..5).map(|i| frame(i, 1000, 2, 0)).collect();
    write_host(dir.path(), "::1", "::1", &frames);
    assert!(dir.path().join("__1").is_dir());
    let o = ok(zz(&["dump", "--no-headers", s(dir.path())]));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.lines().all(|l| l.contains(" ::1 sent=")), "{out}");
    let o = ok(zz(&["export", "--format", "csv", s(dir.path())]));
    let mut rd = csv::Reader::from_reader(&o.stdout[..]);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| &r[1] == "::1"), "{rows:?}");
    let o = ok(zz(&["export", "--format", "jsonl", s(dir.path())]));
    assert!(stdout(&o).lines().all(|l| l.contains(r#""host":"::1""#)));
    let o = ok(zz(&[
        "report",
        "--json",
        "--gateway",
        "none",
        s(dir.path()),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hosts"][0]["label"], "::1", "{v:#}");
    let o = ok(zz(&["report", "--gateway", "none", s(dir.path())]));
    assert!(!stdout(&o).contains("__1"), "{}", stdout(&o));
    // Selected by the address in any notation, or by the directory's name.
    for want in ["::1", "0::1", "__1"] {
        let o = ok(zz(&["dump", "--no-headers", "--host", want, s(dir.path())]));
        assert_eq!(stdout(&o).lines().count(), 5, "--host {want}");
    }
}

#[test]
fn verify_and_repair_keep_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let clean = write_host(
        dir.path(),
        "ok",
        "192.168.1.2",
        &(0..5).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let o = ok(zz(&["verify", s(&clean)]));
    assert!(stdout(&o).contains("OK"), "{}", stdout(&o));

    let (path, garbage_at, _) = damaged_file(dir.path());
    let original = std::fs::read(&path).unwrap();
    let o = zz(&["verify", s(dir.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("PROBLEM {}", path.display())),
        "{out}"
    );
    assert!(out.contains(&format!("at byte {garbage_at}")), "{out}");
    assert!(out.contains("verify: 2 files, 1 with problems"), "{out}");
    // Verify did not touch anything.
    assert_eq!(std::fs::read(&path).unwrap(), original);

    let o = ok(zz(&["verify", "--repair", s(dir.path())]));
    assert!(stdout(&o).contains("repaired"), "{}", stdout(&o));
    let bak = PathBuf::from(format!("{}.bak", path.display()));
    assert_eq!(
        std::fs::read(&bak).unwrap(),
        original,
        "the backup is the original"
    );
    let (frames, _, issues) = read_frames(&path);
    assert_eq!(frames.len(), 7);
    assert!(issues.is_empty(), "{issues:?}");
    ok(zz(&["verify", s(&path)]));
    // A second repair would need to overwrite the backup: the file is clean, so nothing.
    let o = ok(zz(&["verify", "--repair", s(dir.path())]));
    assert!(stdout(&o).contains("0 with problems"));
}

/// A segment header of precision NaN between two good segments, as a bit flip leaves it.
fn nan_precision_file(dir: &Path) -> (PathBuf, u64, u64) {
    let path = write_host(
        dir,
        "gw",
        "192.168.1.1",
        &(0..5).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let bad_at = std::fs::metadata(&path).unwrap().len();
    write_host(
        dir,
        "gw",
        "192.168.1.1",
        &(5..8).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let good_again = std::fs::metadata(&path).unwrap().len();
    write_host(
        dir,
        "gw",
        "192.168.1.1",
        &(10..14).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    // The precision is the only float in a header: 0xcb and 8 bytes of 0.01.
    let mut bytes = std::fs::read(&path).unwrap();
    let mut f64_of = vec![0xcb];
    f64_of.extend_from_slice(&0.01f64.to_be_bytes());
    let at = bad_at as usize
        + bytes[bad_at as usize..]
            .windows(9)
            .position(|w| w == f64_of)
            .unwrap();
    bytes[at + 1..at + 9].copy_from_slice(&f64::NAN.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    (path, bad_at, good_again - bad_at)
}

#[test]
fn a_nan_precision_skips_one_segment_in_every_command_and_repair_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bad_at, bad_len) = nan_precision_file(dir.path());
    let o = ok(zz(&["export", "--format", "jsonl", s(dir.path())]));
    // Frames 0..5 and 10..14: the bad segment's 3 frames are lost, the later ones kept.
    assert_eq!(stdout(&o).lines().count(), 9, "{}", stdout(&o));
    let warning = format!(
        "{}: skipped {bad_len} undecodable bytes at byte {bad_at}: precision NaN is out of range",
        path.display()
    );
    assert!(stderr(&o).contains(&warning), "{}", stderr(&o));
    let o = ok(zz(&[
        "report",
        "--json",
        "--gateway",
        "none",
        s(dir.path()),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hosts"][0]["sent"], 18, "{v:#}");
    ok(zz(&["rollup", s(dir.path())]));
    let o = zz(&["verify", s(dir.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("at byte {bad_at}")),
        "{}",
        stdout(&o)
    );
    let o = ok(zz(&["verify", "--repair", s(dir.path())]));
    assert!(stdout(&o).contains("1 repaired"), "{}", stdout(&o));
    let (frames, _, issues) = read_frames(&path);
    assert_eq!(frames.len(), 9);
    assert!(issues.is_empty(), "{issues:?}");
    ok(zz(&["verify", s(dir.path())]));
}

/// Runs `zzping args` with its output in files; returns the exit status and the child's
/// peak resident memory (bytes), from `wait4`.
// The child is reaped by `wait4`, which std does not know about.
#[allow(clippy::zombie_processes)]
fn zz_max_rss(args: &[&str], out: &Path) -> (std::process::ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(args)
        .stdout(std::fs::File::create(out.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 writes it and the status.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child, not yet waited for; both pointers are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid);
    (
        std::process::ExitStatus::from_raw(status),
        ru.ru_maxrss as u64 * 1024,
    )
}

#[test]
fn many_distinct_precisions_cost_a_few_quantizers_not_one_each() {
    let dir = tempfile::tempdir().unwrap();
    // 300 one-frame segments, each of its own fine precision (a 1.1 MB table each): one
    // table per precision was 330 MB here (2.2 GB for the issue's 2,000).
    const SEGMENTS: u64 = 300;
    for i in 0..SEGMENTS {
        let mut w = HostWriter::open(
            dir.path(),
            HostInfo {
                label: "gw".into(),
                address: "192.168.1.1".parse().unwrap(),
                name: None,
                role: None,
            },
            WriterConfig {
                period_us: P,
                precision: 0.0001 + i as f64 * 1e-9,
                writer: "test".into(),
            },
        )
        .unwrap();
        w.append(&frame(i, 1000, 2, 0)).unwrap();
        w.sync().unwrap();
    }
    let out = dir.path().join("export");
    let (status, rss) = zz_max_rss(&["export", "--format", "jsonl", s(dir.path())], &out);
    assert!(status.success(), "{status:?}");
    let rows = std::fs::read_to_string(out.with_extension("out")).unwrap();
    assert_eq!(rows.lines().count() as u64, SEGMENTS);
    // At most 4 tables of 1.1 MB plus the program and its 256 KiB buffers.
    assert!(rss < 64 << 20, "export peaked at {} MB", rss >> 20);
}

#[test]
fn a_huge_sparse_sidecar_is_not_read_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_host(
        dir.path(),
        "gw",
        "192.168.1.1",
        &(0..5).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let side = zzping_lib::store::layout::sidecar_path(&path);
    std::fs::File::create(&side)
        .unwrap()
        .set_len(1_500_000_000)
        .unwrap();
    let out = dir.path().join("verify");
    let (status, rss) = zz_max_rss(&["verify", s(dir.path())], &out);
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(out.with_extension("out")).unwrap();
    assert!(
        text.contains("sidecar of 1500000000 bytes is larger than"),
        "{text}"
    );
    // Reading it would have cost 1.5 GB.
    assert!(rss < 64 << 20, "verify peaked at {} MB", rss >> 20);
    let o = ok(zz(&["verify", "--repair", s(dir.path())]));
    assert!(stdout(&o).contains("rebuilt the sidecar"), "{}", stdout(&o));
    assert!(std::fs::metadata(&side).unwrap().len() < 10_000);
    ok(zz(&["verify", s(dir.path())]));
}

#[test]
fn merge_dedups_overlaps_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let b_dir = dir.path().join("b");
    // Source a: slots 0..20; source b: slots 10..30 with more sent in slots 10..15.
    write_host(
        &a_dir,
        "gw",
        "192.168.1.1",
        &(0..20).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    let b: Vec<Frame> = (10..30)
        .map(|i| {
            if i < 15 {
                frame(i, 1000, 3, 0)
            } else {
                frame(i, 1000, 2, 0)
            }
        })
        .collect();
    write_host(&b_dir, "gw", "192.168.1.1", &b);
    let out = dir.path().join("out");
    let o = ok(zz(&[
        "merge",
        s(&a_dir.join("gw")),
        s(&b_dir),
        "--host",
        "gw",
        "--data-dir",
        s(&out),
    ]));
    assert!(
        stdout(&o).contains("30 frames written, 10 duplicates dropped"),
        "{}",
        stdout(&o)
    );
    let (frames, _, issues) = read_frames(&day_file(&out.join("gw"), T0));
    assert!(issues.is_empty());
    let starts: Vec<u64> = frames.iter().map(|f| f.start_us).collect();
    let want: Vec<u64> = (0..30).map(|i| T0 + i * u64::from(P)).collect();
    assert_eq!(starts, want);
    // The documented choice: the frame with more `sent` wins, else the first source.
    assert_eq!(frames[12].sent, 3);
    assert_eq!(frames[17].sent, 2);
    // Different periods are refused before anything is written.
    let c_dir = dir.path().join("c");
    ok(zz(&[
        "convert",
        s(&b_dir),
        "--data-dir",
        s(&c_dir),
        "--period-ms",
        "200",
    ]));
    let out2 = dir.path().join("out2");
    let o = zz(&["merge", s(&a_dir), s(&c_dir), "--data-dir", s(&out2)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("frame period 200 ms differs from 100 ms"),
        "{}",
        stderr(&o)
    );
    assert!(!out2.join("gw").exists());
    // Refuses to merge into a directory that already has frames.
    let o = zz(&["merge", s(&a_dir), "--data-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already holds frame files"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rollup_is_incremental() {
    let dir = tempfile::tempdir().unwrap();
    write_host(
        dir.path(),
        "gw",
        "192.168.1.1",
        &(0..50).map(|i| frame(i, 1000, 2, 0)).collect::<Vec<_>>(),
    );
    write_host(
        dir.path(),
        "b",
        "8.8.8.8",
        &(0..50).map(|i| frame(i, 9000, 2, 0)).collect::<Vec<_>>(),
    );
    let o = ok(zz(&["rollup", s(dir.path())]));
    assert!(
        stdout(&o).contains("rollup: 2 files, 2 rebuilt, 0 fresh"),
        "{}",
        stdout(&o)
    );
    let o = ok(zz(&["rollup", s(dir.path())]));
    assert!(
        stdout(&o).contains("rollup: 2 files, 0 rebuilt, 2 fresh"),
        "{}",
        stdout(&o)
    );
    // Growing one file makes only its sidecar stale.
    write_host(dir.path(), "b", "8.8.8.8", &[frame(60, 9000, 2, 0)]);
    let o = ok(zz(&["rollup", s(dir.path())]));
    let out = stdout(&o);
    assert!(out.contains("rollup: 2 files, 1 rebuilt, 1 fresh"), "{out}");
    assert!(out.contains("b/2021-01-01.zzs (stale"), "{out}");
    ok(zz(&["verify", s(dir.path())]));
}

/// Three hosts over 60 s: gw (private, 1 ms), a and b (beyond, 20 ms). Bursts: 300 ms on
/// all at 10 s; 500 ms on a and b at 30 s; 200 ms on b only at 45 s; a frame with a
/// minority loss on a at 50 s (not a burst).
fn outage_data(dir: &Path) {
    let burst = |label: &str, i: u64| -> bool {
        (100..103).contains(&i)
            || (label != "gw" && (300..305).contains(&i))
            || (label == "b" && (450..452).contains(&i))
    };
    for (label, addr, base) in [
        ("gw", "192.168.1.1", 1000),
        ("a", "9.9.9.9", 20_000),
        ("b", "1.1.1.1", 20_000),
    ] {
        let frames: Vec<Frame> = (0..600u64)
            .map(|i| {
                if burst(label, i) {
                    frame(i, base, 0, 10)
                } else if label == "a" && i == 500 {
                    frame(i, base, 9, 1)
                } else {
                    frame(i, base, 10, 0)
                }
            })
            .collect();
        write_host(dir, label, addr, &frames);
    }
}

#[test]
fn report_counts_frames_by_measurement_flag() {
    use zzping_lib::frame::{FLAG_CLOCK_STEP, FLAG_USER_STAMP};
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Frame> = (0..50u64)
        .map(|i| {
            let mut f = frame(i, 1000, 10, 0);
            if i % 10 == 3 {
                f.flags |= FLAG_USER_STAMP;
            }
            if i == 7 || i == 13 {
                f.flags |= FLAG_CLOCK_STEP;
            }
            f
        })
        .collect();
    write_host(dir.path(), "gw", "192.168.1.1", &frames);
    write_host(dir.path(), "a", "9.9.9.9", &frames[..5]);
    let o = ok(zz(&["report", s(dir.path()), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let host = |l: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["label"] == l)
            .unwrap()
            .clone()
    };
    let gw = host("gw");
    // Frames 3, 13, 23, 33, 43 user-stamped; 7 and 13 with a clock step (13 has both).
    assert_eq!(gw["flagged_frames"]["user_stamp"], 5, "{gw:#}");
    assert_eq!(gw["flagged_frames"]["clock_step"], 2, "{gw:#}");
    assert_eq!(gw["flagged_frames"]["send_late"], 0, "{gw:#}");
    assert_eq!(host("a")["flagged_frames"]["user_stamp"], 1);
    let text = stdout(&ok(zz(&["report", s(dir.path())])));
    assert!(
        text.contains(
            "gw: 5 frames with user-space timestamps (RTTs are upper bounds), 2 frames with a \
             wall-clock step"
        ),
        "{text}"
    );
    assert!(
        text.contains("a: 1 frame with user-space timestamps"),
        "{text}"
    );
    // Export names the flag.
    let csv = stdout(&ok(zz(&["dump", s(dir.path()), "--host", "a"])));
    assert!(csv.contains("user_stamp"), "{csv}");
}

#[test]
fn report_finds_outages_and_gives_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    outage_data(dir.path());
    let o = ok(zz(&["report", s(dir.path()), "--gateway", "gw", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["gateway"], "gw");
    let outages = v["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 3, "{v:#}");
    assert_eq!(outages[0]["start_us"], T0 + 100 * u64::from(P));
    assert_eq!(outages[0]["duration_us"], 300_000);
    assert_eq!(outages[0]["failed"], 90);
    assert_eq!(outages[0]["timeouts"], 90);
    assert_eq!(outages[0]["errors"], 0);
    assert_eq!(outages[0]["cause"], "timeout");
    assert_eq!(outages[0]["verdict"], "local");
    assert_eq!(outages[0]["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(outages[1]["duration_us"], 500_000);
    assert_eq!(outages[1]["verdict"], "upstream");
    assert_eq!(outages[1]["unaffected"], serde_json::json!(["gw"]));
    assert_eq!(outages[2]["verdict"], "host");
    assert_eq!(outages[2]["hosts"][0]["label"], "b");
    let hosts = v["hosts"].as_array().unwrap();
    let a = hosts.iter().find(|h| h["label"] == "a").unwrap();
    assert_eq!(a["lost"], 3 * 10 + 5 * 10 + 1);
    assert_eq!(a["sent"], 600 * 10);
    let gw = hosts.iter().find(|h| h["label"] == "gw").unwrap();
    let p50 = gw["p50_us"].as_u64().unwrap();
    assert!((1000..1900).contains(&p50), "{p50}");
    assert!(gw["jitter_us"].as_f64().unwrap() > 0.0);

    let o = ok(zz(&["report", s(dir.path()), "--gateway", "gw"]));
    let text = stdout(&o);
    assert!(text.contains("Outages (3):"), "{text}");
    assert!(
        text.contains("2021-01-01T08:00:10.000000Z     300 ms      90 failed"),
        "{text}"
    );
    assert!(
        text.contains("-> local network (Wi-Fi, cable, powerline)"),
        "{text}"
    );
    assert!(text.contains("-> upstream/ISP"), "{text}");
    assert!(text.contains("-> that host (b)"), "{text}");

    // Automatic gateway: the private host with the lowest RTT.
    let o = ok(zz(&["report", s(dir.path()), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["gateway"], "gw", "{v:#}");
    // A time range that only holds the second outage; two hosts only.
    let from = zzping_lib::time::rfc3339_us(T0 + 20_000_000);
    let o = ok(zz(&[
        "report",
        s(dir.path()),
        "--gateway",
        "gw",
        "--json",
        "--from",
        &from,
        "--to",
        &zzping_lib::time::rfc3339_us(T0 + 40_000_000),
        "--host",
        "gw",
        "--host",
        "a",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outages = v["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{v:#}");
    assert_eq!(outages[0]["verdict"], "upstream");
}

fn fdq_header(p: Option<f64>) -> FdqHeader {
    FdqHeader {
        version: 101,
        full_encode_secs: 15,
        recv_llq: p,
        delta_enc: false,
    }
}

#[test]
fn convert_framedata_with_torn_tail_and_gap() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pingd-log-192.168.1.1-20210101T08.log");
    let mut buf = Vec::new();
    // 20 frames of 100 ms, then a 60 s gap, then 5 frames; full timestamps every 15 s
    // (here: at the start and after the gap). The times are not period-aligned.
    let t = T0 + 12_345;
    for i in 0..20u64 {
        let time = if i == 0 {
            FrameDataTime::Full(t)
        } else {
            FrameDataTime::Delta(i * 100_000)
        };
        encode_framedata_frame(&mut buf, time, 3, 7, &[1000 + i as u32, 2000]);
    }
    let t2 = t + 62_000_000;
    for i in 0..5u64 {
        let time = if i == 0 {
            FrameDataTime::Full(t2)
        } else {
            FrameDataTime::Delta(i * 100_000)
        };
        encode_framedata_frame(&mut buf, time, 0, 0, &[500]);
    }
    let good = buf.len();
    encode_framedata_frame(&mut buf, FrameDataTime::Delta(600_000), 0, 0, &[1, 2, 3]);
    buf.truncate(buf.len() - 2);
    std::fs::write(&log, &buf).unwrap();
    let out = dir.path().join("data");
    let o = ok(zz(&["convert", s(&log), "--data-dir", s(&out)]));
    let err = stderr(&o);
    assert!(err.contains("25 legacy frames, 45 replies"), "{err}");
    assert!(err.contains("inflight max 3, rolling lost max 7"), "{err}");
    assert!(
        err.contains(&format!(
            "torn tail: {} bytes at byte {good}",
            buf.len() - good
        )),
        "{err}"
    );
    let (frames, q, issues) = read_frames(&day_file(&out.join("192.168.1.1"), T0));
    assert!(issues.is_empty());
    assert_eq!(frames.len(), 25);
    assert_eq!(frames[0].start_us, T0);
    assert_eq!(frames[19].start_us, T0 + 1_900_000);
    assert_eq!(frames[20].start_us, T0 + 62_000_000);
    assert_eq!(frames[0].sent, 2);
    assert_eq!(
        frames[0].lost, 0,
        "legacy rolling lost is not mapped to lost"
    );
    assert_eq!(frames[0].flags, 0);
    assert_eq!(
        frames[5].rtts_us(&q).collect::<Vec<_>>(),
        vec![q.round_trip(1005), q.round_trip(2000)]
    );
    assert_eq!(frames[24].rtts_us(&q).collect::<Vec<_>>(), vec![500]);

    // Re-frame to 1 s and re-quantize to 0.001: counts are summed exactly.
    let out2 = dir.path().join("data2");
    ok(zz(&[
        "convert",
        s(&out),
        "--data-dir",
        s(&out2),
        "--period-ms",
        "1000",
        "--precision",
        "0.001",
    ]));
    let (frames2, q2, _) = read_frames(&day_file(&out2.join("192.168.1.1"), T0));
    assert_eq!(q2.precision(), 0.001);
    assert_eq!(frames2.len(), 2 + 1);
    assert_eq!(frames2[0].period_us, 1_000_000);
    assert_eq!(frames2[0].sent, 20);
    assert_eq!(frames2[1].sent, 20);
    assert_eq!(frames2[2].sent, 5);
    assert_eq!(frames2[2].start_us, T0 + 62_000_000);
    // A period that is not a multiple of the input's is refused, naming the file.
    let o = zz(&[
        "convert",
        s(&out),
        "--data-dir",
        s(&dir.path().join("x")),
        "--period-ms",
        "150",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("2021-01-01.zzp") && stderr(&o).contains("multiple"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn convert_fdq_reconstructs_and_flags_approximate() {
    let dir = tempfile::tempdir().unwrap();
    let p = 0.01;
    let h = fdq_header(Some(p));
    let mut buf = Vec::new();
    encode_fdq_header(&mut buf, &h);
    let v = [1000i64, 1100, 1200, 1300, 1400, 1500, 9000];
    let s0 = T0 / 1_000_000;
    encode_fdq_frame(
        &mut buf,
        &h,
        FdqTime::Full { unix_s: s0, ms: 0 },
        0,
        0,
        8,
        &v,
    );
    encode_fdq_frame(&mut buf, &h, FdqTime::Delta { ms: 100 }, 2, 5, 0, &[-1; 7]);
    encode_fdq_frame(&mut buf, &h, FdqTime::Delta { ms: 60_000 }, 0, 0, 3, &v);
    let f = dir.path().join("old.fdq");
    std::fs::write(&f, &buf).unwrap();
    let out = dir.path().join("data");
    let o = ok(zz(&[
        "convert",
        s(&f),
        "--host-address",
        "10.0.0.1",
        "--data-dir",
        s(&out),
    ]));
    assert!(
        stderr(&o).contains("3 legacy frames, 11 replies"),
        "{}",
        stderr(&o)
    );
    let (frames, q, _) = read_frames(&day_file(&out.join("10.0.0.1"), T0));
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].flags & FLAG_APPROXIMATE, FLAG_APPROXIMATE);
    let r: Vec<u32> = frames[0].rtts_us(&q).collect();
    assert_eq!(r.len(), 8);
    // min and max survive within both quantizers' precision.
    assert!((f64::from(r[0]) - 1000.0).abs() <= 1000.0 * 0.011, "{r:?}");
    assert!((f64::from(r[7]) - 9000.0).abs() <= 9000.0 * 0.011, "{r:?}");
    assert_eq!(frames[1].received(), 0);
    assert_eq!(frames[2].start_us, T0 + 60_100_000);
    assert_eq!(frames[2].received(), 3);

    // delta_enc files are refused with the file's name.
    let mut bad = Vec::new();
    encode_fdq_header(
        &mut bad,
        &FdqHeader {
            delta_enc: true,
            ..fdq_header(None)
        },
    );
    let fb = dir.path().join("bad.fdq");
    std::fs::write(&fb, &bad).unwrap();
    let o = zz(&[
        "convert",
        s(&fb),
        "--host-address",
        "10.0.0.2",
        "--data-dir",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.fdq") && stderr(&o).contains("delta_enc"),
        "{}",
        stderr(&o)
    );
    assert!(
        !out.join("10.0.0.2").exists(),
        "a refused input creates nothing"
    );
    // No host address: the name does not tell it.
    let o = zz(&["convert", s(&f), "--data-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--host-address"), "{}", stderr(&o));
}

#[test]
fn tail_without_a_daemon_fails_clearly() {
    // A port nobody listens on.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    let o = zz(&["tail", "--daemon", &addr, "--duration", "0.5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no answer from the daemon"),
        "{}",
        stderr(&o)
    );
}

/// Writes a large data set for manual performance runs:
/// `ZZPING_PERF_DIR=/tmp/perf cargo nextest run -p zzping --run-ignored only perf_data`.
#[test]
#[ignore = "writes a large data set for manual performance measurements"]
fn perf_data() {
    let Some(dir) = std::env::var_os("ZZPING_PERF_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut w = writer(&dir, "gw", "192.168.1.1");
    // 2 million 100 ms frames of 10 replies (about 2.3 days).
    let mut f = Frame::new(T0, P);
    for i in 0..2_000_000u64 {
        f.clear(T0 + i * u64::from(P), P);
        f.sent = 10;
        f.lost = (i % 50 == 0) as u32;
        for k in 0..(10 - f.lost) {
            f.rtts_us
                .push(1000 + ((i as u32).wrapping_mul(2654435761) >> 22) + k * 13);
        }
        w.append(&f).unwrap();
        if i % 10_000 == 0 {
            w.flush().unwrap();
        }
    }
    w.sync().unwrap();
}

/// Writes the example data of docs/tools.md:
/// `ZZPING_DEMO_DIR=/tmp/demo cargo nextest run -p zzping --run-ignored only demo_data`.
#[test]
#[ignore = "writes the documentation's example data"]
fn demo_data() {
    let Some(dir) = std::env::var_os("ZZPING_DEMO_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    outage_data(&dir.join("data"));
    let mut buf = Vec::new();
    for i in 0..600u64 {
        let time = if i % 150 == 0 {
            FrameDataTime::Full(T0 + i * 100_000 + 1234)
        } else {
            FrameDataTime::Delta((i % 150) * 100_000)
        };
        encode_framedata_frame(
            &mut buf,
            time,
            0,
            (i / 100) as u16,
            &[1500 + i as u32 % 50, 1600],
        );
    }
    buf.truncate(buf.len() - 3);
    std::fs::write(dir.join("pingd-log-192.168.1.1-20210101T08.log"), &buf).unwrap();
}

type Stop = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// A live-stream server in a thread, streaming one host "gw" with a frame every 100 ms
/// (3 sent, 1 lost, RTTs 1.5 and 2.5 ms) until told to stop.
fn spawn_live_server(bind: &str) -> (std::net::SocketAddr, Stop, std::thread::JoinHandle<()>) {
    use zzping_lib::live::{HostMeta, LiveConfig, LiveServer, RECV_BUFFER};
    let sock = std::net::UdpSocket::bind(bind).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(10)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop: Stop = Default::default();
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut srv = LiveServer::new(LiveConfig::default()).unwrap();
        srv.add_host(
            0,
            HostMeta {
                label: "gw".into(),
                address: "192.168.1.1".parse().unwrap(),
                name: None,
                period_us: P,
                precision: 0.01,
            },
        )
        .unwrap();
        let mut rx = vec![0u8; RECV_BUFFER];
        let mut tx = vec![0u8; RECV_BUFFER];
        let now = zzping_lib::file::wall_clock_us;
        let mut next_frame = zzping_lib::frame::period_start(now(), P) + u64::from(P);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, src)) = sock.recv_from(&mut rx) {
                srv.on_datagram(src, &rx[..n], now());
            }
            while now() >= next_frame + u64::from(P) {
                let mut f = Frame::new(next_frame, P);
                f.sent = 3;
                f.lost = 1;
                f.rtts_us.extend([1500, 2500]);
                srv.on_frame(0, &f, now());
                next_frame += u64::from(P);
            }
            while let Some((dst, len)) = srv.poll_transmit(now(), &mut tx) {
                let _ = sock.send_to(&tx[..len], dst);
            }
        }
    });
    (addr, stop, server)
}

/// Runs a live server on 127.0.0.1:17879 for 20 s, for the documentation's example:
/// `cargo nextest run -p zzping --run-ignored only demo_live_server`.
#[test]
#[ignore = "serves the documentation's live example"]
fn demo_live_server() {
    let (_, stop, server) = spawn_live_server("127.0.0.1:17879");
    std::thread::sleep(std::time::Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
}

#[test]
fn tail_prints_live_frames_from_a_server() {
    let (addr, stop, server) = spawn_live_server("127.0.0.1:0");
    let o = zz(&[
        "tail",
        "--daemon",
        &addr.to_string(),
        "--duration",
        "2",
        "--format",
        "jsonl",
    ]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    let o = ok(o);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 5, "{} frames\n{}", lines.len(), stderr(&o));
    for v in &lines {
        assert_eq!(v["host"], "gw");
        assert_eq!(v["sent"], 3);
        assert_eq!(v["lost"], 1);
        let q = Quantizer::new(0.01).unwrap();
        assert_eq!(
            v["rtts_us"],
            serde_json::json!([q.round_trip(1500), q.round_trip(2500)])
        );
    }
    let starts: Vec<u64> = lines
        .iter()
        .map(|v| v["start_us"].as_u64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] == w[0] + u64::from(P)),
        "{starts:?}"
    );
}

/// Damaged and random inputs never make any command panic (exit status 101) and every
/// command exits 0 or 1: 400 damaged copies each of a 40-frame day file, an original
/// daemon log and an original quantized log. Every command runs once over all of them
/// (one data directory, all logs in one `convert`, all files in one `merge`), and once
/// per case for the first 20 cases (so no case hides behind an earlier one's error).
#[test]
fn damaged_inputs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_host(
        dir.path(),
        "gw",
        "192.168.1.1",
        &(0..40)
            .map(|i| frame(i, 1000 + i as u32 * 100, (i % 6) as u32, (i % 4) as u32))
            .collect::<Vec<_>>(),
    );
    let bytes = std::fs::read(&good).unwrap();
    let mut legacy = Vec::new();
    encode_framedata_frame(&mut legacy, FrameDataTime::Full(T0), 1, 2, &[1, 2, 3]);
    encode_framedata_frame(&mut legacy, FrameDataTime::Delta(100_000), 1, 2, &[4]);
    let mut fdq = Vec::new();
    let h = fdq_header(Some(0.01));
    encode_fdq_header(&mut fdq, &h);
    let v = [1000, 1100, 1200, 1300, 1400, 1500, 9000];
    encode_fdq_frame(
        &mut fdq,
        &h,
        FdqTime::Full {
            unix_s: T0 / 1_000_000,
            ms: 5,
        },
        0,
        0,
        4,
        &v,
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const CASES: usize = 400;
    const ALONE: usize = 20;
    let all = dir.path().join("all");
    let (mut logs, mut zzps) = (Vec::new(), Vec::new());
    for case in 0..CASES {
        let case_dir = dir.path().join(format!("case{case}"));
        let host = case_dir.join("gw");
        std::fs::create_dir_all(&host).unwrap();
        let mutate = |src: &[u8], rnd: &mut dyn FnMut() -> u64| -> Vec<u8> {
            let mut b = src.to_vec();
            match case % 3 {
                0 => {
                    for _ in 0..4 {
                        let i = (rnd() as usize) % b.len();
                        b[i] ^= 1 << (rnd() % 8);
                    }
                }
                1 => b.truncate((rnd() as usize) % b.len()),
                _ => {
                    let i = (rnd() as usize) % b.len();
                    let junk: Vec<u8> = (0..(rnd() % 40)).map(|_| rnd() as u8).collect();
                    b.splice(i..i, junk);
                }
            }
            b
        };
        let zzp = host.join("2021-01-01.zzp");
        let damaged = mutate(&bytes, &mut rnd);
        std::fs::write(&zzp, &damaged).unwrap();
        // The same file, as host `gw<case>` of the shared data directory.
        let shared = all.join(format!("gw{case}"));
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(shared.join("2021-01-01.zzp"), &damaged).unwrap();
        zzps.push(zzp);
        let log = case_dir.join(format!(
            "pingd-log-10.0.{}.{}-20210101T08.log",
            case / 250,
            case % 250 + 1
        ));
        std::fs::write(&log, mutate(&legacy, &mut rnd)).unwrap();
        let fdqf = case_dir.join(format!(
            "pingd-log-10.1.{}.{}-20210101T08.fdq",
            case / 250,
            case % 250 + 1
        ));
        std::fs::write(&fdqf, mutate(&fdq, &mut rnd)).unwrap();
        logs.push(log.clone());
        logs.push(fdqf.clone());
        if case < ALONE {
            let (out, merged) = (case_dir.join("out"), case_dir.join("merged"));
            let logs = [s(&log), s(&fdqf)];
            for args in every_command(s(&case_dir), &logs, &[s(&host)], s(&out), s(&merged)) {
                exits_cleanly(&format!("case {case}"), &args);
            }
        }
    }
    let (out, merged) = (dir.path().join("all-out"), dir.path().join("all-merged"));
    let logs: Vec<&str> = logs.iter().map(|p| s(p)).collect();
    let zzps: Vec<&str> = zzps.iter().map(|p| s(p)).collect();
    for args in every_command(s(&all), &logs, &zzps, s(&out), s(&merged)) {
        exits_cleanly(&format!("all {CASES} cases"), &args);
    }
}

/// Every command over data directory `data`, plus converting `logs` into `out` and
/// merging `sources` into `merged`.
fn every_command<'a>(
    data: &'a str,
    logs: &[&'a str],
    sources: &[&'a str],
    out: &'a str,
    merged: &'a str,
) -> Vec<Vec<&'a str>> {
    let mut convert = vec!["convert"];
    convert.extend(logs);
    convert.extend(["--data-dir", out]);
    let mut merge = vec!["merge"];
    merge.extend(sources);
    merge.extend(["--data-dir", merged]);
    vec![
        vec!["dump", data],
        vec!["export", "--format", "jsonl", data],
        vec!["export", data],
        vec!["report", data, "--json"],
        vec!["rollup", data],
        vec!["verify", data],
        vec!["verify", "--repair", data],
        convert,
        merge,
    ]
}

/// Runs `zzping args`: it must exit 0 or 1, without a panic.
fn exits_cleanly(what: &str, args: &[&str]) {
    let o = zz(args);
    let shown: Vec<&str> = args.iter().take(4).copied().collect();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{what} {shown:?}: {:?}\n{}",
        o.status,
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("panicked"),
        "{what} {shown:?}: {}",
        stderr(&o)
    );
}

/// A label the configuration gave (here with a space, so its directory is an escape of
/// it) and the host's role are shown as written, not as the directory's name.
#[test]
fn dump_and_report_show_the_configured_label_and_role() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = HostWriter::open(
        tmp.path(),
        HostInfo {
            label: "living room".into(),
            address: "198.18.0.7".parse().unwrap(),
            name: None,
            role: Some("gateway".into()),
        },
        WriterConfig {
            period_us: P,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap();
    for i in 0..10 {
        w.append(&frame(i, 2000, 5, 0)).unwrap();
    }
    w.sync().unwrap();
    assert!(tmp.path().join("living-room").is_dir());
    let o = ok(zz(&["dump", s(tmp.path())]));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        err.contains("segment host=198.18.0.7 name=- label=\"living room\" role=gateway"),
        "{err}"
    );
    assert!(out.lines().all(|l| l.contains(" living room ")), "{out}");
    let o = ok(zz(&["report", "--json", s(tmp.path())]));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["hosts"][0]["label"], "living room", "{report:#}");
}

/// `export --events` writes the context events as CSV and JSONL, in time order, within
/// the range; `dump` prints an events file; damage is reported with file and offset and
/// the good events kept; a directory without events is an error naming it.
#[test]
fn export_and_dump_the_context_events() {
    use zzping_lib::events::{ContextEvent, EventKind, EventWriter, day_file, events_dir};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let e = zz(&["export", "--events", s(dir.path())]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("no context events here"),
        "{}",
        stderr(&e)
    );
    let mut w = EventWriter::new(&data, "test");
    let gw = "198.18.0.1".parse().unwrap();
    for ev in [
        ContextEvent::new(T0, EventKind::DaemonStart),
        ContextEvent::route(T0 + 1_000_000, 4, Some(gw), Some("wlan0"), false),
        // Recorded at resume, it began earlier.
        ContextEvent::suspend(T0 + 500_000, 2_000_000),
        ContextEvent::reload(T0 + 3_000_000, "rate 10 -> 20"),
        ContextEvent::host_moved(
            T0 + 4_000_000,
            "cdn",
            "198.18.0.9".parse().unwrap(),
            Some(gw),
        ),
        ContextEvent::daemon_stop(T0 + 9_000_000, "signal 15"),
    ] {
        w.append(&ev, T0);
    }
    w.flush().unwrap();
    drop(w);
    let file = day_file(&events_dir(&data), T0);
    // A torn write at the end.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(&[0x83, 0xa4])
        .unwrap();
    let csv = ok(zz(&[
        "export",
        "--events",
        "--to",
        "2021-01-01T08:00:05Z",
        s(&data),
    ]));
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert!(stderr(&csv).contains("torn tail"), "{}", stderr(&csv));
    let text = stdout(&csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "time,t_us,kind,interface,family,gateway,address,prefix_len,removed,duration_us,step_us,reason,applied,host,previous,text",
            "2021-01-01T08:00:00.000000Z,1609488000000000,daemon_start,,,,,,,,,,,,,daemon started",
            "2021-01-01T08:00:00.500000Z,1609488000500000,suspend,,,,,,,2000000,,,,,,suspended 2.000 s",
            "2021-01-01T08:00:01.000000Z,1609488001000000,route_change,wlan0,4,198.18.0.1,,,,,,,,,,default route (IPv4) via 198.18.0.1 on wlan0",
            "2021-01-01T08:00:03.000000Z,1609488003000000,reload,,,,,,,,,,rate 10 -> 20,,,configuration reloaded (rate 10 -> 20)",
            "2021-01-01T08:00:04.000000Z,1609488004000000,host_moved,,,,198.18.0.9,,,,,,,cdn,198.18.0.1,host cdn now at 198.18.0.9 (was 198.18.0.1)",
        ]
    );
    let jsonl = ok(zz(&["export", "--events", "--format", "jsonl", s(&data)]));
    let rows: Vec<serde_json::Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[2]["kind"], "route_change");
    assert_eq!(rows[2]["gateway"], "198.18.0.1");
    assert_eq!(rows[2]["family"], 4);
    assert_eq!(rows[4]["host"], "cdn");
    assert_eq!(rows[4]["previous"], "198.18.0.1");
    assert_eq!(rows[5]["reason"], "signal 15");
    assert_eq!(rows[5]["time"], "2021-01-01T08:00:09.000000Z");
    assert!(rows[0].get("interface").is_none(), "{}", rows[0]);
    // --host has no meaning for machine-wide events.
    assert!(
        !zz(&["export", "--events", "--host", "gw", s(&data)])
            .status
            .success()
    );

    let d = ok(zz(&["dump", s(&file)]));
    assert!(d.status.success(), "{}", stderr(&d));
    assert!(stderr(&d).contains("torn tail"), "{}", stderr(&d));
    let out = stdout(&d);
    assert!(
        out.contains("2021-01-01T08:00:01.000000Z event route_change interface=wlan0 family=4 gateway=198.18.0.1: default route (IPv4) via 198.18.0.1 on wlan0"),
        "{out}"
    );
    assert!(
        out.contains("event daemon_stop reason=\"signal 15\": daemon stopped (signal 15)"),
        "{out}"
    );
    assert!(
        out.contains("event host_moved address=198.18.0.9 host=\"cdn\" previous=198.18.0.1: host cdn now at 198.18.0.9 (was 198.18.0.1)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 6, "{out}");

    // verify checks it too, beside the hosts: the torn tail is a problem, named with its
    // offset.
    write_host(&data, "gw", "198.18.0.1", &[frame(0, 1000, 5, 0)]);
    let v = zz(&["verify", s(&data)]);
    assert_eq!(v.status.code(), Some(1), "{}", stdout(&v));
    let out = stdout(&v);
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(
        out.contains(&format!("PROBLEM {}: 6 events", file.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("torn tail: 2 bytes at byte {}", len - 2)),
        "{out}"
    );
}
