//! Where final frames go: each is quantized once, then handed to the host's file writer
//! and the live server (both take the codes), and counted by the exporter (which takes
//! the exact µs RTTs: its histogram buckets need no codes); the alert rules see it too
//! (`crate::alert`).
//!
//! # When recording fails
//! A data directory that is not writable (at start or later), a full disk: each failed
//! write or flush counts in [`Outputs::write_errors`] (`zzping_write_errors_total`), the
//! first one of an outage is logged as an error, and the frames stay buffered in their
//! host's writer (at most [`zzping_lib::file::MAX_PENDING_BYTES`] per host; beyond that
//! the backlog is dropped and counted in [`Outputs::unrecorded_frames`]). The loop retries
//! with backoff (`mod.rs`); when a flush works again every buffered frame is written and
//! a line says so. Frames still buffered when the daemon exits are counted as unrecorded.
//!
//! Context events ([`zzping_lib::events`]: start, stop, reload, clock steps, suspends,
//! link and route changes) go to their own writer here, written with the frames and
//! recovering from write errors the same way, and to the live stream's viewers
//! ([`Outputs::record`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::{error, info, warn};
use zzping_lib::codec::QFrame;
use zzping_lib::events::{ContextEvent, EventWriter};
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::quantizer::Quantizer;

use crate::alert::{Alerts, HostDetails};
use crate::clock::Now;
use crate::engine::{FrameOutput, HostId};
use crate::live::Live;
use crate::metrics::Metrics;

/// The outputs of final frames: one file writer per host, the live stream and the
/// exporter when enabled.
pub struct Outputs {
    data_dir: PathBuf,
    writer_cfg: WriterConfig,
    writers: HashMap<HostId, HostWriter>,
    /// The context events' writer.
    events: EventWriter,
    /// Every host started and not retired (to declare them to a new live server).
    hosts: HashMap<HostId, HostInfo>,
    /// The live-stream server, when enabled: gets every final frame too.
    pub live: Option<Live>,
    /// The Prometheus exporter, when enabled: counts every final frame.
    pub metrics: Option<Metrics>,
    /// The alert rules (none configured: they see the frames and do nothing).
    pub alerts: Alerts,
    /// The files' quantizer (one precision for every host).
    quantizer: Quantizer,
    /// The frame being handed out, quantized (reused: no allocation in steady state).
    q: QFrame,
    /// The clocks of the loop's current wakeup (handed in by the loop).
    now: Now,
    write_errors: u64,
    /// The last write or flush failed (an outage is on).
    failing: bool,
    /// Frames dropped outside a writer's own count: of writers already retired, or
    /// refused by an append (a frame the writer's configuration cannot take).
    other_dropped: u64,
    /// Frames still buffered when the daemon exited with recording failing.
    lost_at_exit: u64,
    /// Frames handed over.
    pub frames: u64,
}

impl Outputs {
    /// Outputs writing under `data_dir` with `writer_cfg`, with the live stream and the
    /// exporter if enabled.
    pub(super) fn new(
        data_dir: &Path,
        writer_cfg: WriterConfig,
        live: Option<Live>,
        mut metrics: Option<Metrics>,
        alerts: Alerts,
    ) -> Result<Self> {
        let quantizer = Quantizer::new(writer_cfg.precision).context("the files' precision")?;
        if let Some(m) = &mut metrics {
            m.exporter.set_alert_stats(alerts.stats());
        }
        Ok(Outputs {
            data_dir: data_dir.to_path_buf(),
            events: EventWriter::new(data_dir, &writer_cfg.writer),
            writer_cfg,
            writers: HashMap::new(),
            hosts: HashMap::new(),
            live,
            metrics,
            alerts,
            quantizer,
            q: QFrame::default(),
            now: Now::default(),
            write_errors: 0,
            failing: false,
            other_dropped: 0,
            lost_at_exit: 0,
            frames: 0,
        })
    }

    /// The clocks of the loop's wakeup: frames handed over until the next call were made
    /// final then.
    pub(super) fn set_now(&mut self, now: Now) {
        self.now = now;
    }

    /// Write errors so far (every failed write or flush of a host's file or of the
    /// events file).
    pub(super) fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// Whether recording is failing now (the last write or flush failed).
    pub(super) fn failing(&self) -> bool {
        self.failing
    }

    /// Frames buffered, waiting to be written.
    pub(super) fn pending_frames(&self) -> u64 {
        self.writers.values().map(HostWriter::pending_frames).sum()
    }

    /// Records a context event (written with the next flush), hands it to the live
    /// stream's viewers (queued: sent by the loop's next pump, never blocking), and logs
    /// it.
    pub(super) fn record(&mut self, ev: ContextEvent) {
        info!("event: {}", ev.describe());
        let now_us = self.now.real_us();
        self.events.append(&ev, now_us);
        if let Some(l) = &mut self.live {
            l.on_event(&ev, now_us);
        }
    }

    /// Context events dropped because they could not be written.
    pub(super) fn unrecorded_events(&self) -> u64 {
        self.events.dropped_events()
    }

    /// Final frames that will never be in the files: dropped from a full backlog, or
    /// still buffered at exit.
    pub(super) fn unrecorded_frames(&self) -> u64 {
        self.other_dropped
            + self.lost_at_exit
            + self
                .writers
                .values()
                .map(HostWriter::dropped_frames)
                .sum::<u64>()
    }

    /// A host starts: opens its files, declares it to the live stream and the exporter.
    pub(super) fn add_host(&mut self, id: HostId, info: HostInfo) {
        let (label, addr, name) = (info.label.clone(), info.address, info.name.clone());
        self.alerts.add_host(
            alert_key(id),
            &label,
            info.role.as_deref(),
            self.writer_cfg.period_us,
        );
        self.hosts.insert(id, info.clone());
        // Touches no file: a directory not writable yet fails the flushes, which retry.
        match HostWriter::new(&self.data_dir, info, self.writer_cfg.clone()) {
            Ok(w) => {
                self.writers.insert(id, w);
            }
            Err(e) => error!("{label}: cannot record frames: {e}"),
        }
        self.declare(id, &label, addr, name);
    }

    /// Whether a host labelled `label` is recorded (possibly retiring: removed, its
    /// requests in flight not yet resolved). Two writers must never share a directory.
    pub(super) fn has_label(&self, label: &str) -> bool {
        self.hosts.values().any(|h| h.label == label)
    }

    /// A host's address changed: its files start a segment with it, the live stream and
    /// the exporter show it, and a `host_moved` context event says so.
    pub(super) fn re_point(&mut self, id: HostId, label: &str, addr: IpAddr, name: Option<String>) {
        let mut previous = None;
        if let Some(h) = self.hosts.get_mut(&id) {
            previous = Some(h.address);
            h.address = addr;
            h.name.clone_from(&name);
        }
        if previous != Some(addr) {
            let now = self.now.real_us();
            self.record(ContextEvent::host_moved(now, label, addr, previous));
        }
        if let Some(w) = self.writers.get_mut(&id)
            && let Err(e) = w.set_address(addr)
        {
            tracing::warn!("{label}: recording the new address failed: {e}");
        }
        self.declare(id, label, addr, name);
    }

    /// Replaces the live stream (SIGHUP: another address, another secret, or off) and
    /// declares every host to the new one.
    pub(super) fn replace_live(&mut self, live: Option<Live>) {
        let old = std::mem::replace(&mut self.live, live);
        // New viewers still get the recent context events in their prefill.
        if let (Some(old), Some(new)) = (&old, &mut self.live) {
            new.carry_events(old);
        }
        self.redeclare_live();
    }

    /// Declares every host to the live server again (after it was replaced or given a new
    /// secret).
    pub(super) fn redeclare_live(&mut self) {
        let Some(l) = &mut self.live else { return };
        for (id, h) in &self.hosts {
            l.set_host(
                *id,
                &h.label,
                h.address,
                h.name.clone(),
                self.writer_cfg.period_us,
                self.writer_cfg.precision,
            );
        }
    }

    /// Replaces the alert rules (SIGHUP); the exporter counts the new ones.
    pub(super) fn set_alert_rules(
        &mut self,
        configs: &[crate::alert::AlertConfig],
        rules: Vec<zzping_lib::alert::Rule>,
    ) {
        self.alerts.set_rules(configs, rules);
        if let Some(m) = &mut self.metrics {
            m.exporter.set_alert_stats(self.alerts.stats());
        }
    }

    fn declare(&mut self, id: HostId, label: &str, addr: IpAddr, name: Option<String>) {
        if let Some(l) = &mut self.live {
            l.set_host(
                id,
                label,
                addr,
                name,
                self.writer_cfg.period_us,
                self.writer_cfg.precision,
            );
        }
        if let Some(m) = &mut self.metrics {
            m.exporter.set_host(id, label, addr);
        }
    }

    fn note_error(&mut self, what: &str, label: &str, e: &dyn std::fmt::Display) {
        self.write_errors += 1;
        if !self.failing {
            error!(
                "{label}: recording failed ({what}: {e}); frames are kept in memory (up to \
                 {} MiB per host) and written when it works again, retrying with backoff \
                 (further errors are counted, not logged)",
                zzping_lib::file::MAX_PENDING_BYTES >> 20
            );
            self.failing = true;
        }
    }

    /// Writes every writer's buffered frames (`fsync`: and syncs them); returns whether
    /// every write succeeded.
    pub(super) fn flush(&mut self, fsync: bool) -> bool {
        let waiting = self.pending_frames();
        let mut errs = Vec::new();
        for w in self.writers.values_mut() {
            let r = if fsync { w.sync() } else { w.flush() };
            if let Err(e) = r {
                errs.push((w.host().label.clone(), e));
            }
        }
        let r = if fsync {
            self.events.sync()
        } else {
            self.events.flush()
        };
        if let Err(e) = r {
            errs.push(("events".to_owned(), e));
        }
        if errs.is_empty() {
            if self.failing {
                info!(
                    "recording works again: {waiting} frames that had waited written; {} write \
                     errors, {} frames unrecorded so far",
                    self.write_errors,
                    self.unrecorded_frames()
                );
            }
            self.failing = false;
            return true;
        }
        for (l, e) in errs {
            self.note_error("flush", &l, &e);
        }
        false
    }

    /// The last flush before exit (with fsync); frames it could not write are counted as
    /// unrecorded and said so.
    /// The daemon stops watching: every firing alert ends (reason `stopped`) and its
    /// command is queued; then the command worker runs what is queued and stops.
    pub(super) fn stop_alerts(&mut self) {
        let hosts = &self.hosts;
        self.alerts
            .unwatch_all(self.now.mono_ns, self.now.real_us(), |k| {
                host_details(hosts, k)
            });
        self.alerts.stop();
    }

    pub(super) fn flush_at_exit(&mut self) {
        if !self.flush(true) {
            self.lost_at_exit = self.pending_frames();
            error!(
                "recording still failing at exit: {} buffered frames and {} events are lost",
                self.lost_at_exit,
                self.events.pending_events()
            );
        }
    }
}

impl FrameOutput for Outputs {
    fn frame(&mut self, host: HostId, label: &str, frame: &Frame) {
        self.frames += 1;
        self.q.set_from(frame, &self.quantizer);
        let now_us = self.now.real_us();
        if let Some(w) = self.writers.get_mut(&host)
            && let Err(e) = w.append_quantized(&self.q, now_us)
        {
            self.other_dropped += 1;
            self.note_error("append", label, &e);
        }
        if let Some(l) = &mut self.live {
            l.on_qframe(host, &self.q, now_us);
        }
        if let Some(m) = &mut self.metrics {
            m.exporter.on_frame(host, frame);
        }
        let hosts = &self.hosts;
        self.alerts
            .on_frame(alert_key(host), frame, self.now.mono_ns, |k| {
                host_details(hosts, k)
            });
    }

    fn host_retired(&mut self, host: HostId, label: &str) {
        let hosts = &self.hosts;
        self.alerts
            .remove_host(alert_key(host), self.now.mono_ns, self.now.real_us(), |k| {
                host_details(hosts, k)
            });
        self.hosts.remove(&host);
        if let Some(mut w) = self.writers.remove(&host) {
            if let Err(e) = w.sync() {
                self.note_error("sync", label, &e);
                warn!(
                    "{label}: {} buffered frames of this removed host are lost",
                    w.pending_frames()
                );
                self.other_dropped += w.pending_frames();
            }
            self.other_dropped += w.dropped_frames();
        }
        if let Some(l) = &mut self.live {
            l.remove_host(host);
        }
        if let Some(m) = &mut self.metrics {
            m.exporter.remove_host(host);
        }
        info!("{label}: removed");
    }
}

/// The alert evaluator's name of a host.
fn alert_key(id: HostId) -> zzping_lib::alert::HostKey {
    (u64::from(id.slot) << 32) | u64::from(id.generation)
}

/// The address and role of the host an alert evaluator's key names.
fn host_details(
    hosts: &HashMap<HostId, HostInfo>,
    k: zzping_lib::alert::HostKey,
) -> Option<HostDetails<'_>> {
    hosts.get(&host_id(k)).map(|h| HostDetails {
        address: h.address,
        role: h.role.as_deref(),
    })
}

/// The host of an alert evaluator's key.
fn host_id(k: zzping_lib::alert::HostKey) -> HostId {
    HostId {
        slot: (k >> 32) as u32,
        generation: k as u32,
    }
}
