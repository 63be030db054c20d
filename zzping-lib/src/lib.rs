//! zzping-lib: the shared core of zzping.
pub mod frame;
pub mod quantizer;
