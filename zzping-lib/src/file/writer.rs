//! The append-only writer of one host's frame files (see the parent module).

use super::*;

/// Identity of a host, as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Directory name and display label (the configured target: a name or an address).
    pub label: String,
    /// Current address.
    pub address: IpAddr,
    /// Configured name, when the target was given as a name.
    pub name: Option<String>,
    /// What the host is on this machine's path (a [`super::role`] value), when known.
    pub role: Option<String>,
}

/// Writer parameters shared by every segment it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// Frame period, µs.
    pub period_us: u32,
    /// Quantizer precision.
    pub precision: f64,
    /// Program and version, e.g. `zzping-daemon 0.1.0`.
    pub writer: String,
}

/// Append-only writer of one host's frame files: one file per UTC day in
/// `<data_dir>/<host_dir_name(label)>/YYYY-MM-DD.zzp` (see [`crate::store::layout`]).
///
/// [`HostWriter::append`] encodes into a memory buffer (no allocation in steady state);
/// [`HostWriter::flush`] writes it, [`HostWriter::sync`] also fsyncs. A failed write keeps
/// the unwritten bytes for the next flush (up to [`MAX_PENDING_BYTES`]; beyond that the
/// pending frames are dropped, counted ([`HostWriter::dropped_frames`]), and a fresh
/// segment starts so the file stays decodable).
pub struct HostWriter {
    dir: PathBuf,
    host: HostInfo,
    cfg: WriterConfig,
    quantizer: Quantizer,
    file: Option<(File, PathBuf, u64)>,
    /// Day start of the segment being written, when one is open.
    segment_day: Option<u64>,
    encoder: FrameEncoder,
    pending: Vec<u8>,
    qframe: QFrame,
    dropped_frames: u64,
    frames_written: u64,
    /// Frames in `pending` (whole or partly unwritten).
    pending_frames: u64,
    /// Bytes of days already ended that could not be written yet, oldest first.
    ended: std::collections::VecDeque<Ended>,
    /// The next frame starts a segment: a new address, or a backlog given up (whatever
    /// was partly written of it is a torn fragment readers resynchronize after).
    new_segment: bool,
}

/// A day's bytes that could not be written before the next day started.
struct Ended {
    day: u64,
    bytes: Vec<u8>,
    frames: u64,
}

impl HostWriter {
    /// Opens (creating directories as needed) the writer of `host` under `data_dir`.
    /// Existing files are appended to, never truncated.
    pub fn open(data_dir: &Path, host: HostInfo, cfg: WriterConfig) -> Result<Self, FileError> {
        let w = Self::new(data_dir, host, cfg)?;
        std::fs::create_dir_all(&w.dir).map_err(FileError::io(&w.dir, "create directory"))?;
        Ok(w)
    }

    /// The writer of `host` under `data_dir`, touching no file: the host's directory is
    /// created (if need be) when a file is first opened, so a data directory that is not
    /// writable yet fails the flushes (which keep the frames, see above), not this call.
    /// Only the configuration is checked.
    pub fn new(data_dir: &Path, host: HostInfo, cfg: WriterConfig) -> Result<Self, FileError> {
        if !(crate::frame::MIN_PERIOD_US..=crate::frame::MAX_PERIOD_US).contains(&cfg.period_us) {
            return Err(FileError::Config(format!(
                "period {} µs is outside 10 ms..60 s",
                cfg.period_us
            )));
        }
        let quantizer =
            Quantizer::new(cfg.precision).map_err(|e| FileError::Config(e.to_string()))?;
        let dir = layout::host_dir(data_dir, &host.label);
        Ok(Self {
            dir,
            host,
            cfg,
            quantizer,
            file: None,
            segment_day: None,
            encoder: FrameEncoder::default(),
            pending: Vec::with_capacity(64 * 1024),
            qframe: QFrame::default(),
            dropped_frames: 0,
            frames_written: 0,
            pending_frames: 0,
            ended: std::collections::VecDeque::new(),
            new_segment: false,
        })
    }

    /// The host's directory.
    pub fn host_dir(&self) -> &Path {
        &self.dir
    }

    /// The host this writer writes.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// Frames dropped because they could not be written: those buffered when a failing
    /// backlog passed [`MAX_PENDING_BYTES`] (a frame partly written then counts too).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Frames buffered and not yet fully written (0 after a flush that succeeded).
    pub fn pending_frames(&self) -> u64 {
        self.pending_frames + self.ended.iter().map(|e| e.frames).sum::<u64>()
    }

    /// Frames appended (buffered or written) so far.
    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// The quantizer frames are coded with.
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// Records a new address for the host: the next frame starts a new segment. Nothing is
    /// written here (a failing directory cannot lose the change).
    pub fn set_address(&mut self, address: IpAddr) -> Result<(), FileError> {
        if address != self.host.address {
            self.host.address = address;
            self.new_segment = true;
        }
        Ok(())
    }

    /// The header's `label`: the configured label when the address or name do not say it.
    fn header_label(&self) -> Option<String> {
        let h = &self.host;
        (h.label != h.address.to_string() && h.name.as_deref() != Some(h.label.as_str()))
            .then(|| h.label.clone())
    }

    fn start_segment(&mut self, first_start_us: u64, now_us: u64) {
        let header = SegmentHeader {
            schema: SCHEMA.into(),
            version: FORMAT_VERSION,
            host: self.host.address.to_string(),
            name: self.host.name.clone(),
            period_us: self.cfg.period_us,
            precision: self.cfg.precision,
            created_us: now_us,
            base_us: first_start_us,
            writer: self.cfg.writer.clone(),
            label: self.header_label(),
            role: self.host.role.clone(),
        };
        header.encode(&mut self.pending);
        self.encoder.reset(first_start_us);
        self.segment_day = Some(crate::time::day_start_us(first_start_us));
    }

    /// Buffers `frame`, quantized with the writer's precision. Opens the next day's file
    /// (flushing the current one; bytes that cannot be written then wait for the next
    /// flush, which writes them to their own file first) when the frame starts a new UTC
    /// day; a new segment's
    /// creation time is the wall clock read here. The frame's period must be the
    /// writer's.
    pub fn append(&mut self, frame: &Frame) -> Result<(), FileError> {
        let mut q = std::mem::take(&mut self.qframe);
        q.set_from(frame, &self.quantizer);
        q.period_us = self.cfg.period_us;
        let r = self.append_quantized(&q, wall_clock_us());
        self.qframe = q;
        r
    }

    /// Like [`HostWriter::append`] for a frame already quantized with a quantizer of the
    /// writer's precision (so a producer with several consumers quantizes once), with the
    /// wall clock handed in (`now_us`: a new segment's creation time). The frame's period
    /// must be the writer's and its codes ascending and below [`Quantizer::code_count`];
    /// anything else is refused with [`FileError::Config`] and nothing is buffered. Only
    /// a refused frame is an error: write errors are kept for [`HostWriter::flush`].
    pub fn append_quantized(&mut self, frame: &QFrame, now_us: u64) -> Result<(), FileError> {
        if frame.period_us != self.cfg.period_us {
            return Err(FileError::Config(format!(
                "frame at {} µs: period {} µs, the writer's is {} µs",
                frame.start_us, frame.period_us, self.cfg.period_us
            )));
        }
        if !frame.codes.is_sorted()
            || frame
                .codes
                .last()
                .is_some_and(|&c| c >= self.quantizer.code_count())
        {
            return Err(FileError::Config(format!(
                "frame at {} µs: codes not ascending below {} (quantized with another precision?)",
                frame.start_us,
                self.quantizer.code_count()
            )));
        }
        let day = crate::time::day_start_us(frame.start_us);
        if self.segment_day != Some(day) || self.new_segment {
            if let Some(old) = self.segment_day.filter(|&d| d != day) {
                // A new day, a new file. Bytes of the old day that cannot be written now
                // wait for the next flush, which writes them to their own file first.
                if self.flush().is_err() && !self.pending.is_empty() {
                    self.ended.push_back(Ended {
                        day: old,
                        bytes: std::mem::take(&mut self.pending),
                        frames: self.pending_frames,
                    });
                    self.pending_frames = 0;
                }
                self.file = None;
            }
            self.new_segment = false;
            self.start_segment(frame.start_us, now_us);
        }
        self.encoder.encode(frame, &mut self.pending);
        self.frames_written += 1;
        self.pending_frames += 1;
        Ok(())
    }

    /// The day file of `day`, opened for append (its directory created if need be).
    fn open_day(dir: &Path, day: u64) -> Result<(File, PathBuf, u64), FileError> {
        let path = layout::day_file(dir, day);
        std::fs::create_dir_all(dir).map_err(FileError::io(dir, "create directory"))?;
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(FileError::io(&path, "open for append"))?;
        let len = f.metadata().map_err(FileError::io(&path, "stat"))?.len();
        Ok((f, path, len))
    }

    /// Writes as much of `bytes` as the file takes, removing what was written.
    fn write_some(
        f: &mut File,
        path: &Path,
        len: &mut u64,
        bytes: &mut Vec<u8>,
    ) -> Result<(), FileError> {
        let mut written = 0;
        let r = loop {
            if written == bytes.len() {
                break Ok(());
            }
            match f.write(&bytes[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        *len += written as u64;
        bytes.drain(..written);
        r.map_err(FileError::io(path, "write"))
    }

    /// Writes the bytes of ended days (oldest first), then the current day's.
    fn write_backlog(&mut self) -> Result<(), FileError> {
        while let Some(e) = self.ended.front_mut() {
            let (mut f, path, mut len) = Self::open_day(&self.dir, e.day)?;
            Self::write_some(&mut f, &path, &mut len, &mut e.bytes)?;
            // A day written late is synced at once: no later sync sees this file.
            f.sync_data().map_err(FileError::io(&path, "fsync"))?;
            self.ended.pop_front();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(Self::open_day(&self.dir, self.segment_day.unwrap_or(0))?);
        }
        let (f, path, len) = self.file.as_mut().expect("opened");
        let r = Self::write_some(f, path, len, &mut self.pending);
        if self.pending.is_empty() {
            self.pending_frames = 0;
        }
        if r.is_err() {
            // Opened again next time: the path may lead elsewhere by then (a remount).
            self.file = None;
        }
        r
    }

    /// Writes buffered bytes to their files.
    pub fn flush(&mut self) -> Result<(), FileError> {
        let result = self.write_backlog();
        let backlog = self.pending.len() + self.ended.iter().map(|e| e.bytes.len()).sum::<usize>();
        if result.is_err() && backlog > MAX_PENDING_BYTES {
            // Give up the backlog; whatever was partly written is a torn fragment, so the
            // next frame must start a new segment for readers to resynchronize.
            self.dropped_frames += self.pending_frames();
            self.pending.clear();
            self.pending_frames = 0;
            self.ended.clear();
            self.new_segment = true;
        }
        result
    }

    /// Flushes and fsyncs.
    pub fn sync(&mut self) -> Result<(), FileError> {
        self.flush()?;
        if let Some((f, path, _)) = &self.file {
            f.sync_data().map_err(FileError::io(path, "fsync"))?;
        }
        Ok(())
    }
}

impl Drop for HostWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Current wall-clock time, µs since the epoch.
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
