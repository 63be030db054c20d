//! zzping-gui: the iced viewer of zzping's latency timelines.
//!
//! The same timeline shows offline data (day files and their pyramid sidecars) and live
//! streams from daemons. Hosts are stacked in lanes on one time axis; each pixel column
//! shows the exact latency distribution of its pings as bands (min, p5, p25, median, p75,
//! p95, max), loss as red marks and missing data as grey.
//!
//! - [`timeline`]: the shared time view, ticks and the Y scale;
//! - [`model`]: per-lane data and the per-column fold (level choice);
//! - [`data`]: finding and loading files;
//! - [`live`]: daemon connections;
//! - [`canvas`]: drawing and mouse/keyboard interaction;
//! - [`app`]: state, messages, `update` and `view`;
//! - [`config`]: the command line and the configuration file.

pub mod app;
pub mod canvas;
pub mod config;
pub mod data;
pub mod demo;
pub mod live;
pub mod model;
pub mod timeline;

pub use app::{App, Config, Message, Mode};
