//! What the application tells scripts and tests about itself (the "drawn" and layout
//! lines, readiness) and the PNG a "Save PNG" writes.

use iced::window;

use std::path::PathBuf;

use super::{App, Mode};

impl App {
    /// The "drawn" log line: the view's time range and where each lane was drawn, so a
    /// script can check the picture against the data it wrote, e.g.
    /// `drawn: first picture with all data; view 1700000000000000..1700007200000000 us;
    /// lane router x 248..1590 y 62..312; lane wifi-ap x ...`.
    pub fn drawn_line(&self) -> String {
        format!("drawn: first picture with all data; {}", self.layout_line())
    }

    /// The view's time range and where each shown lane was last drawn, in logical pixels
    /// of the window: `view T0..T1 us; lane NAME x X0..X1 y Y0..Y1; ...`.
    pub fn layout_line(&self) -> String {
        let v = self.view_range();
        let mut line = format!("view {:.0}..{:.0} us", v.t0_us, v.t1_us);
        for s in self.shown() {
            if let Some(b) = s.drawn_at.get() {
                line.push_str(&format!(
                    "; lane {} x {:.0}..{:.0} y {:.0}..{:.0}",
                    s.lane.host.label,
                    b.x,
                    b.x + b.width,
                    b.y,
                    b.y + b.height
                ));
            }
        }
        line
    }

    /// What the user's last action left: mode, view, following, lanes shown (in order)
    /// and hidden (logged after each such action, for scripts that drive the window).
    pub fn state_line(&self) -> String {
        let v = self.view_range();
        let names = |hidden: bool| {
            self.ordered()
                .iter()
                .filter(|(_, s)| s.hidden == hidden)
                .map(|(_, s)| s.lane.host.label.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "state: mode {}; view {:.0}..{:.0} us; span {:.0} us; follow {}; level {} us; \
             lanes {}; hidden {}",
            match self.mode {
                Mode::Offline => "offline",
                Mode::Live => "live",
            },
            v.t0_us,
            v.t1_us,
            v.span_us(),
            self.mode == Mode::Live && self.follow,
            self.shown().first().map_or(0, |s| s.lane.level_us),
            names(false),
            names(true),
        )
    }

    /// True when data was opened and everything the offline lanes show is loaded: the
    /// directory scan, the day pyramids (with their outage indexes), which hosts limit
    /// ICMP on each day, and the raw frames the view needs.
    pub fn data_ready(&self) -> bool {
        self.generation > 0
            && !self.opening
            && self.loading.0 >= self.loading.1
            && !self.requests.iter().any(|(r, _)| r.mode == Mode::Offline)
            && !self.offline.iter().any(|s| s.lane.is_waiting())
    }

    /// True when the window shows the picture to share: a caption with the range and the
    /// hosts instead of the toolbar, no read-out (while "Save PNG" captures it, and
    /// always with `--screenshot`).
    pub fn share_layout(&self) -> bool {
        self.capturing.is_some() || self.screenshot.is_some()
    }

    /// Where "Save PNG" writes now: `zzping-<view start, local time>.png` in the save
    /// directory, with `-2`, `-3`... when that exists.
    pub fn save_path(&self) -> PathBuf {
        let t = self.view_range().t0_us.max(0.0) as u64;
        let stamp = zzping_lib::time::timestamp(t)
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y%m%d-%H%M%S")
            .to_string();
        let mut path = self.save_dir.join(format!("zzping-{stamp}.png"));
        let mut k = 2;
        while path.exists() {
            path = self.save_dir.join(format!("zzping-{stamp}-{k}.png"));
            k += 1;
        }
        path
    }

    /// Whether the window has drawn a picture with all the offline data loaded (see
    /// [`App::data_ready`]). The viewer logs `drawn: first picture with all
    /// data` once, then; with `--screenshot` it takes the screenshot right after.
    pub fn drawn(&self) -> bool {
        self.frames_since_loaded >= 2
    }
}

/// Writes a screenshot as PNG.
pub fn write_png(path: &std::path::Path, shot: &window::Screenshot) -> anyhow_free::Result {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        shot.size.width,
        shot.size.height,
    );
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(std::io::Error::other)?;
    w.write_image_data(&shot.rgba)
        .map_err(std::io::Error::other)?;
    w.finish().map_err(std::io::Error::other)?;
    Ok(())
}

mod anyhow_free {
    /// I/O result of the PNG writer.
    pub type Result = std::io::Result<()>;
}
