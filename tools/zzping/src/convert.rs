//! `zzping convert`: import original-zzping logs, or re-quantize / re-frame our files.

use crate::common::{Progress, WRITER, resolve_inputs, scan};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zzping_legacy::{
    DETECT_LEN, LegacyEnd, LegacyFormat, LegacyReader, detect, parse_framedata_name,
};
use zzping_lib::file::{HostInfo, HostWriter, SEGMENT_MAGIC, WriterConfig};
use zzping_lib::frame::{FLAG_APPROXIMATE, Frame, MAX_PERIOD_US, MIN_PERIOD_US, period_start};
use zzping_lib::quantizer::DEFAULT_PRECISION;
use zzping_lib::store::{Event, layout};

/// Convert legacy logs into frame files, or re-quantize / re-frame frame files.
///
/// Files are told apart by their content, whatever their names: a FrameDataQ file by its
/// header map (`.fdq`, or `.fdq.log` as the original tools named them), a FrameData log of
/// the original daemon by its leading timestamp, our own files by their segment headers.
/// A file that is none of these is read by its ending (`.log` FrameData, `.fdq`
/// FrameDataQ, so that the decoder says what is wrong and where), else as our own format;
/// directories are our own format. Output goes to `<data-dir>/<host>/YYYY-MM-DD.zzp`,
/// appended to what is there. An input that yields no frames is an error (exit status 1)
/// after the other inputs have been converted.
///
/// Legacy mapping (what is lossy): each legacy frame is placed in the period-aligned
/// frame of `--period-ms` containing its timestamp (frames falling in the same slot are
/// merged: counts summed, RTTs concatenated). `received` is the number of replies and
/// `sent = received`, `lost = 0`: the legacy `inflight` and `lost` values are rolling,
/// unreliable counters, not this frame's losses, so they are not mapped (their maxima are
/// printed in the conversion report). FrameData RTTs are exact (then quantized at
/// `--precision`). FrameDataQ frames keep only 7 percentiles: `n` RTTs are reconstructed
/// from them by rank and the frame is flagged `approximate`.
///
/// Our own files: `--precision` re-quantizes (decoded RTTs are re-encoded: the error of
/// both precisions adds up); `--period-ms` (a multiple of the input period) merges
/// consecutive frames exactly: counts summed, RTT lists concatenated, flags OR-ed.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Legacy .log / .fdq files, or data directories, host directories, .zzp files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address of the host of legacy inputs (default: parsed from the file name,
    /// `pingd-log-<address>-<YYYYMMDDTHH>.log` or any name with one `-`-separated address).
    #[arg(long)]
    pub host_address: Option<IpAddr>,
    /// Host label (directory name) in the output (default: the address for legacy inputs,
    /// the input label for our files).
    #[arg(long)]
    pub label: Option<String>,
    /// Quantizer precision of the output (default: 0.01 for legacy inputs, the input's
    /// for our files).
    #[arg(long)]
    pub precision: Option<f64>,
    /// Frame period of the output, ms (legacy default: 100; our files: the input's).
    #[arg(long)]
    pub period_ms: Option<u32>,
    /// Only this host of our-format inputs (label or address); repeat for several.
    #[arg(long)]
    pub host: Vec<String>,
}

/// Merges frames into period-aligned frames of a longer period.
struct Reframer {
    period_us: u32,
    cur: Option<Frame>,
    spare: Frame,
    out_of_order: u64,
}

impl Reframer {
    fn new(period_us: u32) -> Self {
        Self {
            period_us,
            cur: None,
            spare: Frame::default(),
            out_of_order: 0,
        }
    }

    /// Adds `f` (its start is mapped to its slot); completed frames go to `emit`.
    fn push(&mut self, f: &Frame, emit: &mut impl FnMut(&Frame) -> Result<()>) -> Result<()> {
        let slot = period_start(f.start_us, self.period_us);
        if let Some(c) = &mut self.cur {
            if c.start_us == slot {
                c.add_counts(&f.counts());
                c.flags |= f.flags;
                c.rtts_us.extend_from_slice(&f.rtts_us);
                return Ok(());
            }
            if slot < c.start_us {
                self.out_of_order += 1;
            }
            emit(c)?;
        }
        let mut n = self
            .cur
            .take()
            .unwrap_or_else(|| std::mem::take(&mut self.spare));
        n.clear(slot, self.period_us);
        n.set_counts(&f.counts());
        n.flags = f.flags;
        n.rtts_us.extend_from_slice(&f.rtts_us);
        self.cur = Some(n);
        Ok(())
    }

    fn finish(&mut self, emit: &mut impl FnMut(&Frame) -> Result<()>) -> Result<()> {
        if let Some(c) = self.cur.take() {
            emit(&c)?;
            self.spare = c;
        }
        Ok(())
    }
}

/// Legacy frames at or after 10000-01-01 are skipped (a corrupt timestamp).
const MAX_LEGACY_TIME_US: u64 = 253_402_300_800_000_000;

fn period_us_of(ms: u32) -> Result<u32> {
    let us = ms
        .checked_mul(1000)
        .filter(|us| (MIN_PERIOD_US..=MAX_PERIOD_US).contains(us));
    us.with_context(|| format!("--period-ms {ms}: must be between 10 and 60000"))
}

/// The legacy format of the file `p`, told by its content (else by its ending), or `None`
/// for our own format (directories, frame files, anything else: our reader reports it).
fn legacy_format(p: &Path) -> Result<Option<LegacyFormat>> {
    if std::fs::metadata(p)
        .with_context(|| format!("{}", p.display()))?
        .is_dir()
    {
        return Ok(None);
    }
    let mut prefix = Vec::with_capacity(DETECT_LEN);
    std::fs::File::open(p)
        .and_then(|f| f.take(DETECT_LEN as u64).read_to_end(&mut prefix))
        .with_context(|| format!("{}: read", p.display()))?;
    if let Some(f) = detect(&prefix) {
        return Ok(Some(f));
    }
    if prefix
        .windows(SEGMENT_MAGIC.len())
        .any(|w| w == SEGMENT_MAGIC)
    {
        return Ok(None);
    }
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Ok(if name.ends_with(".log") {
        Some(LegacyFormat::FrameData)
    } else if name.ends_with(".fdq") {
        Some(LegacyFormat::FrameDataQ)
    } else {
        None
    })
}

/// Address from a legacy file name: `pingd-log-<address>-<YYYYMMDDTHH>` with any ending,
/// else the one `-`-separated part of the name (endings removed) that is an address.
fn address_from_name(p: &Path) -> Option<IpAddr> {
    let name = p.file_name()?.to_str()?;
    let mut stem = name;
    while let Some(s) = [".log", ".fdq"].iter().find_map(|e| stem.strip_suffix(e)) {
        stem = s;
    }
    if let Some((a, _)) = parse_framedata_name(&format!("{stem}.log")) {
        return Some(a);
    }
    let mut found = stem
        .split('-')
        .filter_map(|part| part.parse::<IpAddr>().ok());
    let a = found.next()?;
    found.next().is_none().then_some(a)
}

/// Runs `zzping convert`.
pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(p) = a.precision {
        zzping_lib::quantizer::Quantizer::new(p).with_context(|| format!("--precision {p}"))?;
    }
    let out_period = a.period_ms.map(period_us_of).transpose()?;
    let mut legacy = Vec::new();
    let mut ours = Vec::new();
    for p in &a.paths {
        match legacy_format(p)? {
            Some(f) => legacy.push((p.clone(), f)),
            None => ours.push(p.clone()),
        }
    }
    let mut empty = 0;
    if !legacy.is_empty() {
        empty += convert_legacy(&a, &legacy, out_period.unwrap_or(100_000))?;
    }
    if !ours.is_empty() {
        empty += convert_ours(&a, &ours, out_period)?;
    }
    if empty > 0 {
        eprintln!("zzping: error: {empty} input(s) yielded no frames (see above)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Converts legacy files; returns how many yielded no frames (each reported).
fn convert_legacy(a: &Args, files: &[(PathBuf, LegacyFormat)], period_us: u32) -> Result<u32> {
    // Group by host address, files in name (= time) order.
    let mut by_host: BTreeMap<IpAddr, Vec<(PathBuf, LegacyFormat)>> = BTreeMap::new();
    let mut empty = 0;
    for (f, format) in files {
        let addr = match a.host_address {
            Some(x) => x,
            None => address_from_name(f).with_context(|| {
                format!(
                    "{}: cannot tell the host from the file name (expected \
                     pingd-log-<address>-<YYYYMMDDTHH>.log); give --host-address",
                    f.display()
                )
            })?,
        };
        by_host.entry(addr).or_default().push((f.clone(), *format));
    }
    if a.label.is_some() && by_host.len() > 1 {
        bail!(
            "--label: the inputs hold {} hosts; convert them one at a time",
            by_host.len()
        );
    }
    let precision = a.precision.unwrap_or(DEFAULT_PRECISION);
    let progress = Progress::for_files(files.iter().map(|(f, _)| f), "convert");
    for (addr, mut files) in by_host {
        files.sort_by(|x, y| x.0.file_name().cmp(&y.0.file_name()));
        let label = a.label.clone().unwrap_or_else(|| addr.to_string());
        // The writer opens with the first frame: a refused input creates nothing.
        let mut w: Option<HostWriter> = None;
        let mut rf = Reframer::new(period_us);
        let mut emit = |f: &Frame| -> Result<()> {
            let w = match &mut w {
                Some(w) => w,
                None => w.insert(
                    HostWriter::open(
                        &a.data_dir,
                        HostInfo {
                            label: label.clone(),
                            address: addr,
                            name: None,
                            role: None,
                        },
                        WriterConfig {
                            period_us,
                            precision,
                            writer: format!("{WRITER} convert (legacy)"),
                        },
                    )
                    .with_context(|| {
                        format!("{}: open output for {label}", a.data_dir.display())
                    })?,
                ),
            };
            w.append(f)
                .with_context(|| format!("{}: write", a.data_dir.display()))
        };
        let mut frame = Frame::default();
        for (path, format) in &files {
            let file =
                std::fs::File::open(path).with_context(|| format!("{}: open", path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let src = std::io::BufReader::with_capacity(64 * 1024, file);
            let mut r = match format {
                LegacyFormat::FrameDataQ => match LegacyReader::fdq(src) {
                    Ok(r) => r,
                    Err(e) => {
                        progress.println(&format!(
                            "error: {}: FrameDataQ: {e}; no frames converted",
                            path.display()
                        ));
                        empty += 1;
                        progress.file_done(len);
                        continue;
                    }
                },
                LegacyFormat::FrameData => LegacyReader::framedata(src),
            };
            let format_name = match format {
                LegacyFormat::FrameDataQ => "FrameDataQ",
                LegacyFormat::FrameData => "FrameData",
            };
            let mut taken = 0u64;
            let (mut n_in, mut replies, mut max_inflight, mut max_lost, mut no_rtt, mut bad_time) =
                (0u64, 0u64, 0u32, 0u32, 0u64, 0u64);
            while let Some(lf) = r
                .next_frame()
                .with_context(|| format!("{}: read", path.display()))?
            {
                n_in += 1;
                max_inflight = max_inflight.max(lf.inflight);
                max_lost = max_lost.max(lf.lost_rolling);
                if lf.time_us >= MAX_LEGACY_TIME_US {
                    bad_time += 1;
                    continue;
                }
                if lf.replies as usize != lf.rtts_us.len() {
                    // FrameDataQ replies without any RTT value: nothing trustworthy.
                    no_rtt += 1;
                    continue;
                }
                replies += u64::from(lf.replies);
                frame.clear(lf.time_us, period_us);
                frame.sent = lf.replies;
                frame.rtts_us.extend_from_slice(&lf.rtts_us);
                if lf.approximate {
                    frame.flags |= FLAG_APPROXIMATE;
                }
                rf.push(&frame, &mut emit)?;
                taken += 1;
            }
            let mut line = format!(
                "{}: {format_name}: {n_in} legacy frames, {replies} replies -> host {label} \
                 ({addr}); legacy inflight max {max_inflight}, rolling lost max {max_lost} \
                 (not mapped)",
                path.display()
            );
            if no_rtt > 0 {
                line += &format!("; {no_rtt} frames skipped (replies without RTT data)");
            }
            if bad_time > 0 {
                line += &format!("; {bad_time} frames skipped (time after year 9999)");
            }
            progress.println(&line);
            match r.end() {
                LegacyEnd::Clean => {}
                LegacyEnd::TornTail { offset, len } => progress.println(&format!(
                    "warning: {}: torn tail: {len} bytes at byte {offset} dropped \
                     (incomplete last frame)",
                    path.display()
                )),
                LegacyEnd::Invalid {
                    offset,
                    len,
                    reason,
                } => progress.println(&format!(
                    "warning: {}: undecodable data at byte {offset} ({reason}); the last \
                     {len} bytes were dropped",
                    path.display()
                )),
            }
            if taken == 0 {
                progress.println(&format!(
                    "error: {}: no {format_name} frames to convert",
                    path.display()
                ));
                empty += 1;
            }
            progress.file_done(len);
        }
        rf.finish(&mut emit)?;
        if rf.out_of_order > 0 {
            progress.println(&format!(
                "warning: {label}: {} frames were older than the frame before them \
                 (written in input order; run zzping merge to reorder)",
                rf.out_of_order
            ));
        }
        match &mut w {
            Some(w) => {
                w.sync()
                    .with_context(|| format!("{}: write", a.data_dir.display()))?;
                progress.println(&format!(
                    "wrote {} frames to {}",
                    w.frames_written(),
                    w.host_dir().display()
                ));
            }
            None => progress.println(&format!("{label}: no frames to write")),
        }
    }
    progress.finish();
    Ok(empty)
}

/// Converts our own files; returns how many hosts yielded no frames (each reported).
fn convert_ours(a: &Args, paths: &[PathBuf], out_period: Option<u32>) -> Result<u32> {
    let hosts = resolve_inputs(paths, &a.host)?;
    if a.label.is_some() && hosts.len() > 1 {
        bail!(
            "--label: the inputs hold {} hosts; convert them one at a time",
            hosts.len()
        );
    }
    let progress = Progress::for_files(hosts.iter().flat_map(|h| &h.files), "convert");
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("{}: create", a.data_dir.display()))?;
    let out_root = a.data_dir.canonicalize()?;
    let mut empty = 0;
    for h in &hosts {
        let label = a.label.clone().unwrap_or_else(|| h.label.clone());
        let dest = layout::host_dir(&out_root, &label);
        for f in h.files.iter().map(|f| &f.path) {
            if f.parent().and_then(|p| p.canonicalize().ok()).as_deref() == Some(&dest) {
                bail!(
                    "{}: the output directory {} is the input's own directory; choose \
                     another --data-dir",
                    f.display(),
                    dest.display()
                );
            }
        }
        let Some(first) = h.first_header() else {
            progress.println(&format!(
                "error: {}: no segment header found; no frames converted",
                h.label
            ));
            empty += 1;
            continue;
        };
        let address: IpAddr = first.host.parse().with_context(|| {
            format!(
                "{}: segment header host {:?} is not an address",
                h.label, first.host
            )
        })?;
        let period_us = out_period.unwrap_or(first.period_us);
        let precision = a.precision.unwrap_or(first.precision);
        let mut w = HostWriter::open(
            &a.data_dir,
            HostInfo {
                label: label.clone(),
                address,
                name: first.name.clone(),
                role: None,
            },
            WriterConfig {
                period_us,
                precision,
                writer: format!("{WRITER} convert"),
            },
        )
        .with_context(|| format!("{}: open output for {label}", a.data_dir.display()))?;
        let mut rf = Reframer::new(period_us);
        let mut frame = Frame::default();
        let mut n_in = 0u64;
        let w_ref = &mut w;
        scan(h, 0, u64::MAX, &progress, |ev| {
            match ev {
                Event::Segment { path, header } => {
                    if period_us % header.period_us != 0 {
                        bail!(
                            "{}: a segment has period {} ms, which does not divide the \
                             output period {} ms (--period-ms must be a multiple of the \
                             input period)",
                            path.display(),
                            f64::from(header.period_us) / 1000.0,
                            f64::from(period_us) / 1000.0
                        );
                    }
                    if let Ok(addr) = header.host.parse::<IpAddr>()
                        && addr != w_ref.host().address
                    {
                        // Flush the frame in progress under the old address.
                        rf.finish(&mut |f: &Frame| w_ref.append(f).map_err(anyhow::Error::from))?;
                        w_ref.set_address(addr)?;
                    }
                }
                Event::Frame {
                    frame: qf,
                    quantizer: q,
                } => {
                    n_in += 1;
                    qf.to_frame_into(q, &mut frame);
                    rf.push(&frame, &mut |f: &Frame| {
                        w_ref.append(f).map_err(anyhow::Error::from)
                    })?;
                }
                Event::FileEnd { path, issues, .. } => {
                    for i in issues {
                        progress.println(&format!("warning: {}: {i}", path.display()));
                    }
                }
            }
            Ok(())
        })
        .with_context(|| format!("converting {}", h.label))?;
        rf.finish(&mut |f: &Frame| w.append(f).map_err(anyhow::Error::from))?;
        w.sync()
            .with_context(|| format!("{}: write", a.data_dir.display()))?;
        progress.println(&format!(
            "{}: {n_in} frames -> {} frames in {} (period {} ms, precision {precision})",
            h.label,
            w.frames_written(),
            w.host_dir().display(),
            f64::from(period_us) / 1000.0
        ));
        if n_in == 0 {
            progress.println(&format!("error: {}: no frames to convert", h.label));
            empty += 1;
        }
    }
    progress.finish();
    Ok(empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reframer_merges_exactly() {
        let mut rf = Reframer::new(300_000);
        let mut out = Vec::new();
        let mut emit = |f: &Frame| -> Result<()> {
            out.push(f.clone());
            Ok(())
        };
        for i in 0..7u64 {
            let mut f = Frame::new(i * 100_000, 100_000);
            f.sent = 2;
            f.lost = 1;
            f.flags = if i == 4 { FLAG_APPROXIMATE } else { 0 };
            f.rtts_us.push(1000 + i as u32);
            rf.push(&f, &mut emit).unwrap();
        }
        rf.finish(&mut emit).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].start_us, 0);
        assert_eq!(out[0].period_us, 300_000);
        assert_eq!(out[0].sent, 6);
        assert_eq!(out[0].lost, 3);
        assert_eq!(out[0].rtts_us, vec![1000, 1001, 1002]);
        assert_eq!(out[1].flags, FLAG_APPROXIMATE);
        assert_eq!(out[2].start_us, 600_000);
        assert_eq!(out[2].sent, 2);
    }

    #[test]
    fn names() {
        assert_eq!(
            address_from_name(Path::new("/x/pingd-log-10.0.0.1-20210101T08.fdq")),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            address_from_name(Path::new("pingd-log-2001:db8::1-20210101T08.fdq.log")),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            address_from_name(Path::new("fdq-192.168.0.1-q001.fdq")),
            Some("192.168.0.1".parse().unwrap())
        );
        assert_eq!(address_from_name(Path::new("foo.log")), None);
        // Two addresses: which one is the host's cannot be told.
        assert_eq!(address_from_name(Path::new("10.0.0.1-10.0.0.2.log")), None);
    }
}
