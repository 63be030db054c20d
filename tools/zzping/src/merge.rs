//! `zzping merge`: combine sources of one host into one time-ordered, duplicate-free copy.

use crate::common::{Progress, WRITER, resolve_inputs};
use anyhow::{Context, Result, bail};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use zzping_lib::codec::QFrame;
use zzping_lib::file::{HostInfo, HostWriter, SegmentHeader, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::{Event, Host, HostFrames, layout};

/// Combine files or directories of one host, ordered by time, into a data directory.
///
/// Each positional path is one *source* (a host directory, a data directory filtered to
/// one host with --host, or a file). Sources are merged by frame start time. When several
/// sources have a frame with the same start time, one is kept: the one with the most
/// `sent`, then the most `received`, then the earliest source on the command line; the
/// others are counted as duplicates. All frames must have the same period (re-frame first
/// with `zzping convert --period-ms`); frames of another precision are re-quantized to
/// the output's (the first frame's unless --precision).
///
/// The output host directory must not hold frame files yet.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Sources: host directories, data directories (with --host) or .zzp files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The host to take from data directories (label or address).
    #[arg(long)]
    pub host: Option<String>,
    /// Host label (directory name) of the output (default: the first source's).
    #[arg(long)]
    pub label: Option<String>,
    /// Quantizer precision of the output (default: the first frame's).
    #[arg(long)]
    pub precision: Option<f64>,
}

/// One source: its frames in file order.
struct Source {
    idx: usize,
    frames: HostFrames,
    /// Header and file of the segment being read.
    segment: Option<(Arc<SegmentHeader>, PathBuf)>,
    head: Option<(QFrame, Arc<Quantizer>, Arc<SegmentHeader>, PathBuf)>,
}

impl Source {
    /// Loads the next frame into `head`.
    fn advance(&mut self, progress: &Progress) -> Result<()> {
        let mut slot = self.head.take().map(|(f, ..)| f).unwrap_or_default();
        while let Some(ev) = self.frames.next_event()? {
            match ev {
                Event::Segment { path, header } => {
                    self.segment = Some((header.clone(), path.to_path_buf()));
                }
                Event::Frame { frame, quantizer } => {
                    let Some((h, path)) = &self.segment else {
                        continue;
                    };
                    slot.clone_from(frame);
                    self.head = Some((slot, quantizer.clone(), h.clone(), path.clone()));
                    return Ok(());
                }
                Event::FileEnd {
                    path,
                    issues,
                    bytes,
                    ..
                } => {
                    for i in issues {
                        progress.println(&format!("warning: {}: {i}", path.display()));
                    }
                    progress.file_done(bytes);
                }
            }
        }
        Ok(())
    }
}

/// Runs `zzping merge`.
pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(p) = a.precision {
        Quantizer::new(p).with_context(|| format!("--precision {p}"))?;
    }
    let filter: Vec<String> = a.host.iter().cloned().collect();
    let mut inputs: Vec<Host> = Vec::new();
    for p in &a.paths {
        let hosts = resolve_inputs(std::slice::from_ref(p), &filter)?;
        match hosts.len() {
            1 => inputs.extend(hosts),
            _ => bail!(
                "{}: holds several hosts ({}); choose one with --host",
                p.display(),
                hosts
                    .iter()
                    .map(|h| h.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    // Check the periods up front, so that a mismatch writes nothing.
    let mut period: Option<(u32, PathBuf)> = None;
    for f in inputs.iter().flat_map(|h| &h.files) {
        let f = &f.path;
        let Ok(Some(h)) = zzping_lib::file::first_header(f) else {
            continue;
        };
        match &period {
            None => period = Some((h.period_us, f.clone())),
            Some((p, first)) if *p != h.period_us => bail!(
                "{}: frame period {} ms differs from {} ms in {}; re-frame with zzping \
                 convert --period-ms first",
                f.display(),
                f64::from(h.period_us) / 1000.0,
                f64::from(*p) / 1000.0,
                first.display()
            ),
            Some(_) => {}
        }
    }
    let label = a.label.clone().unwrap_or_else(|| inputs[0].label.clone());
    let dest = layout::host_dir(&a.data_dir, &label);
    if zzping_lib::store::day_files(&dest).is_ok_and(|d| !d.is_empty()) {
        bail!(
            "{}: already holds frame files; merge into an empty directory",
            dest.display()
        );
    }
    let progress = Progress::for_files(inputs.iter().flat_map(|h| &h.files), "merge");
    let mut sources: Vec<Source> = inputs
        .iter()
        .enumerate()
        .map(|(idx, h)| Source {
            idx,
            frames: h.frames(0, u64::MAX),
            segment: None,
            head: None,
        })
        .collect();
    for s in &mut sources {
        s.advance(&progress)?;
    }
    let mut writer: Option<HostWriter> = None;
    let mut out_period = 0u32;
    let mut frame = Frame::default();
    let (mut written, mut dups, mut out_of_order, mut requantized) = (0u64, 0u64, 0u64, 0u64);
    let mut last_start: Option<u64> = None;
    loop {
        // The earliest head; among equal starts the best one.
        let mut best: Option<usize> = None;
        for (i, s) in sources.iter().enumerate() {
            let Some((f, ..)) = &s.head else { continue };
            let better = match best {
                None => true,
                Some(b) => {
                    let bf = &sources[b].head.as_ref().expect("has head").0;
                    (
                        f.start_us,
                        std::cmp::Reverse(f.sent),
                        std::cmp::Reverse(f.received()),
                        s.idx,
                    ) < (
                        bf.start_us,
                        std::cmp::Reverse(bf.sent),
                        std::cmp::Reverse(bf.received()),
                        sources[b].idx,
                    )
                }
            };
            if better {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        let (f, q, h, path) = sources[b].head.as_ref().expect("has head");
        let start = f.start_us;
        if last_start == Some(start) {
            // Same start as the frame just written (a duplicate within a source).
            dups += 1;
        } else {
            if last_start.is_some_and(|l| start < l) {
                out_of_order += 1;
            }
            let w = match &mut writer {
                Some(w) => w,
                None => {
                    out_period = h.period_us;
                    let address: IpAddr = h.host.parse().with_context(|| {
                        format!(
                            "{}: segment header host {:?} is not an address",
                            path.display(),
                            h.host
                        )
                    })?;
                    writer.insert(
                        HostWriter::open(
                            &a.data_dir,
                            HostInfo {
                                label: label.clone(),
                                address,
                                name: h.name.clone(),
                                role: h.role.clone(),
                            },
                            WriterConfig {
                                period_us: h.period_us,
                                precision: a.precision.unwrap_or(h.precision),
                                writer: format!("{WRITER} merge"),
                            },
                        )
                        .with_context(|| format!("{}: open output", a.data_dir.display()))?,
                    )
                }
            };
            if f.period_us != out_period {
                bail!(
                    "{} (before byte {}): frame period {} ms differs from the output's {} ms; \
                     re-frame with zzping convert --period-ms first",
                    path.display(),
                    sources[b].frames.offset(),
                    f64::from(f.period_us) / 1000.0,
                    f64::from(out_period) / 1000.0
                );
            }
            if let Ok(addr) = h.host.parse::<IpAddr>() {
                w.set_address(addr)?;
            }
            if q.precision().to_bits() != w.quantizer().precision().to_bits() {
                requantized += 1;
            }
            f.to_frame_into(q, &mut frame);
            w.append(&frame)
                .with_context(|| format!("{}: write", a.data_dir.display()))?;
            written += 1;
            last_start = Some(start);
        }
        // Drop the same start from every other source.
        for (i, s) in sources.iter_mut().enumerate() {
            if i != b && s.head.as_ref().is_some_and(|(f, ..)| f.start_us == start) {
                dups += 1;
                s.advance(&progress)?;
            }
        }
        sources[b].advance(&progress)?;
    }
    if let Some(w) = &mut writer {
        w.sync()
            .with_context(|| format!("{}: write", a.data_dir.display()))?;
    }
    progress.finish();
    println!(
        "merged {} sources into {}: {written} frames written, {dups} duplicates dropped, \
         {out_of_order} out of order, {requantized} re-quantized",
        inputs.len(),
        dest.display()
    );
    Ok(ExitCode::SUCCESS)
}
