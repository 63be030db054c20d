//! Test data: hosts written with the real writer, with known RTTs, outages and gaps.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use zzping_gui::App;
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;

/// 2026-01-01 00:00:00 UTC + 10 h, µs.
pub const T0: u64 = 1_767_225_600_000_000 + 10 * 3_600_000_000;
/// Frame period, µs.
pub const PERIOD: u64 = 100_000;

/// What one frame of a test host holds.
pub enum Slot {
    /// Ten replies: 10, 11, ..., 19 ms.
    Normal,
    /// Ten requests, all lost.
    Outage,
    /// No frame at all.
    Gap,
    /// These replies (µs) and this many lost requests.
    Custom(Vec<u32>, u32),
    /// These replies (µs), timeouts, errors (send failures, ICMP errors) and `FLAG_*`
    /// bits.
    Failed {
        /// Replies, µs.
        rtts: Vec<u32>,
        /// Requests that timed out.
        lost: u32,
        /// Requests that errored.
        errors: u32,
        /// Frame flags.
        flags: u8,
    },
}

/// Writes `n` frames for host `label` from [`T0`], `slot(i)` deciding each.
pub fn write_host(dir: &Path, label: &str, n: u64, slot: impl Fn(u64) -> Slot) -> PathBuf {
    let mut w = HostWriter::open(
        dir,
        HostInfo {
            label: label.into(),
            address: "192.0.2.9".parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: PERIOD as u32,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap();
    for i in 0..n {
        let mut f = Frame::new(T0 + i * PERIOD, PERIOD as u32);
        match slot(i) {
            Slot::Gap => continue,
            Slot::Normal => {
                f.rtts_us = (10..20).map(|ms| ms * 1000).collect();
                f.sent = 10;
            }
            Slot::Outage => {
                f.sent = 10;
                f.lost = 10;
            }
            Slot::Custom(rtts, lost) => {
                f.sent = rtts.len() as u32 + lost;
                f.rtts_us = rtts;
                f.lost = lost;
            }
            Slot::Failed {
                rtts,
                lost,
                errors,
                flags,
            } => {
                f.sent = rtts.len() as u32 + lost + errors;
                f.rtts_us = rtts;
                f.lost = lost;
                f.errors = errors;
                f.flags = flags;
            }
        }
        w.append(&f).unwrap();
    }
    w.sync().unwrap();
    w.host_dir().to_path_buf()
}

/// 60 s of frames with a 300 ms outage at 30.0 s and (if `gap`) no data 45-50 s.
pub fn standard_host(dir: &Path, label: &str, gap: bool) -> PathBuf {
    write_host(dir, label, 600, |i| {
        if (300..303).contains(&i) {
            Slot::Outage
        } else if gap && (450..500).contains(&i) {
            Slot::Gap
        } else {
            Slot::Normal
        }
    })
}

/// An app showing `paths`, exactly 60 s from [`T0`] on a plot `plot_width` px wide.
pub fn app_with(paths: &[PathBuf], plot_width: f32) -> App {
    let mut app = App::empty(1024.0);
    app.plot_width = plot_width;
    app.open_blocking(paths);
    app.offline_view = zzping_gui::timeline::TimeView::new(T0 as f64, (T0 + 60_000_000) as f64);
    app.offline_pristine = false;
    app.recompute();
    app
}

/// A rendered picture, RGBA.
pub struct Image {
    /// Width, physical pixels.
    pub w: usize,
    /// Height, physical pixels.
    pub h: usize,
    /// RGBA bytes, row by row.
    pub rgba: Vec<u8>,
}

impl Image {
    /// The RGB of pixel `(x, y)`.
    pub fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 4;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2]]
    }
}

/// Renders `el` (the window, or a lane's canvas alone) headless (tiny-skia, iced_test) at
/// `size` logical pixels and returns the picture. Every check is on these pixels, against
/// what the test knows they must show.
pub fn render<M>(el: iced::Element<'_, M>, size: (f32, f32)) -> Image {
    let mut ui = iced_test::Simulator::with_size(iced::Settings::default(), size, el);
    let snap = ui.snapshot(&iced::Theme::Dark).expect("snapshot");
    // iced_test hands out a snapshot's pixels only through `matches_image`, which, when
    // its file does not exist (always so in this fresh directory), writes the picture
    // and returns true: its result compares nothing, so it is not a check. The PNG it
    // writes is read back below.
    let out = tempfile::tempdir().expect("tempdir");
    snap.matches_image(out.path().join("shot"))
        .expect("write the snapshot");
    let path = std::fs::read_dir(out.path())
        .expect("snapshot dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .expect("snapshot png");
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("open the snapshot"),
    ));
    let mut r = dec.read_info().expect("snapshot png header");
    let mut buf = vec![0; r.output_buffer_size().expect("snapshot size")];
    let info = r.next_frame(&mut buf).expect("snapshot png data");
    assert_eq!(info.color_type, png::ColorType::Rgba);
    buf.truncate(info.buffer_size());
    Image {
        w: info.width as usize,
        h: info.height as usize,
        rgba: buf,
    }
}
