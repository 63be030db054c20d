//! zzping-lib: the shared core of zzping.
//!
//! The data flows one way, and the modules follow it:
//! [`quantizer`] (RTT -> code) -> [`frame`] (one host x one period) -> [`codec`] (a frame as
//! MessagePack) -> [`file`] (segments, writer, recovering reader) -> [`store`] (a host's
//! files over a time range) -> [`summary`] (mergeable histograms) -> [`pyramid`] (zoom
//! levels persisted beside the files); [`outage`] finds the runs of failed requests and the
//! events in which hosts fail together; [`alert`] evaluates alert rules frame by frame;
//! [`events`] records the context events (link, route, suspend, clock, daemon) beside
//! the frames.
//!
//! Everything here is pure computation or plain file I/O with time handed in: no threads,
//! one socket (the blocking [`live::UdpLiveClient`] for the CLI and tests), and the wall
//! clock read only by [`file::HostWriter::append`] (a new segment's creation time;
//! [`file::HostWriter::append_quantized`] takes it handed in) and by `UdpLiveClient`.
pub mod alert;
pub mod codec;
pub mod datadir;
pub mod events;
pub mod file;
pub mod frame;
pub mod gateway;
pub mod live;
pub mod msgpack;
pub mod outage;
pub mod pyramid;
pub mod quantizer;
pub mod store;
pub mod summary;
pub mod synth;
pub mod time;
