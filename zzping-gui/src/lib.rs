//! zzping-gui: the iced viewer of zzping's latency timelines.
//!
//! The same timeline shows offline data (day files and their pyramid sidecars) and live
//! streams from daemons. Hosts are stacked in lanes on one time axis; each pixel column
//! shows the exact latency distribution of its pings as bands (min, p5, p25, median, p75,
//! p95, max), loss as red marks and missing data as grey.
//!
//! The stages, each in its module:
//! - [`timeline`]: the shared time view, ticks and the Y scale;
//! - [`model`]: lane data and level choice (which summaries a view reads; a lane asks for
//!   data it lacks and keeps its previous picture meanwhile);
//! - [`fold`]: folding summaries into per-pixel columns, totals and outage marks;
//! - [`limits`]: hosts that limit ICMP (judged as `zzping report` does);
//! - [`load`]: loading off the UI thread (day pyramids, raw frames of the fine levels);
//! - [`data`]: finding hosts on disk (through `zzping_lib::store`);
//! - [`marks`]: context-event marks on the time axis (link, route, suspend...);
//! - [`live`]: daemon connections; [`live_lanes`]: what their events do to the lanes;
//!   [`notify`]: desktop notifications of their outages;
//! - [`canvas`]: drawing and mouse/keyboard interaction, with its own message type;
//! - [`app`]: state, messages and `update`; [`window`]: the widgets of `view`;
//! - [`config`]: the command line and the configuration file.

pub mod app;
pub mod canvas;
pub mod config;
pub mod data;
pub mod demo;
pub mod fold;
pub mod limits;
pub mod live;
pub mod live_lanes;
pub mod load;
pub mod marks;
pub mod model;
pub mod notify;
pub mod timeline;
pub mod window;

pub use app::{App, Config, Message, Mode};
