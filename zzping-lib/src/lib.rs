//! zzping-lib: the shared core of zzping.
//!
//! The data flows one way, and the modules follow it:
//! [`quantizer`] (RTT -> code) -> [`frame`] (one host x one period) -> [`codec`] (a frame as
//! MessagePack) -> [`file`] (segments, writer, recovering reader) -> [`store`] (a host's
//! files over a time range) -> [`summary`] (mergeable histograms) -> [`pyramid`] (zoom
//! levels persisted beside the files).
//!
//! Everything here is pure computation or plain file I/O: no sockets, no threads, no
//! clocks except where a writer stamps a header.
pub mod codec;
pub mod datadir;
pub mod file;
pub mod frame;
pub mod gateway;
pub mod live;
pub mod msgpack;
pub mod pyramid;
pub mod quantizer;
pub mod store;
pub mod summary;
pub mod synth;
pub mod time;
