//! The streaming reader of legacy files (bounded memory whatever their size).

use crate::fdq::{FdqDecoder, FdqHeader, decode_fdq_header};
use crate::framedata::FrameDataDecoder;
use crate::{LegacyError, LegacyFrame, MAX_LEGACY_FRAME, READ_CHUNK};
use std::io::{self, Read};
use thiserror::Error;

/// How a legacy file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyEnd {
    /// Not at the end yet, or ended cleanly after a complete frame.
    Clean,
    /// The file ends inside a frame: `len` bytes from `offset` were dropped.
    TornTail {
        /// File offset of the incomplete frame.
        offset: u64,
        /// Bytes dropped.
        len: u64,
    },
    /// Undecodable data at `offset`; everything from there was dropped (legacy formats
    /// have no resynchronisation marker).
    Invalid {
        /// File offset where decoding failed.
        offset: u64,
        /// Bytes dropped.
        len: u64,
        /// Why.
        reason: String,
    },
}

enum Dec {
    FrameData(FrameDataDecoder),
    Fdq(FdqDecoder),
}

/// Streaming reader of a legacy file (bounded memory whatever its size).
pub struct LegacyReader<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    buf_offset: u64,
    eof: bool,
    dec: Dec,
    frame: LegacyFrame,
    end: LegacyEnd,
    done: bool,
}

/// Errors of [`LegacyReader`].
#[derive(Debug, Error)]
pub enum LegacyReadError {
    /// Reading failed.
    #[error("read: {0}")]
    Io(#[from] io::Error),
    /// The header is invalid or refused; `offset` is a file offset.
    #[error("at byte {offset}: {source}")]
    Header {
        /// File offset.
        offset: u64,
        /// Why.
        source: LegacyError,
    },
}

impl<R: Read> LegacyReader<R> {
    fn with(src: R, dec: Dec) -> Self {
        Self {
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            buf_offset: 0,
            eof: false,
            dec,
            frame: LegacyFrame::default(),
            end: LegacyEnd::Clean,
            done: false,
        }
    }

    /// A reader of a FrameData stream.
    pub fn framedata(src: R) -> Self {
        Self::with(src, Dec::FrameData(FrameDataDecoder::new()))
    }

    /// A reader of a FrameDataQ stream: reads and validates the header first.
    pub fn fdq(src: R) -> Result<Self, LegacyReadError> {
        let mut r = Self::with(
            src,
            Dec::Fdq(FdqDecoder::new(FdqHeader {
                version: 0,
                full_encode_secs: 0,
                recv_llq: None,
                delta_enc: false,
            })),
        );
        loop {
            match decode_fdq_header(&r.buf[r.pos..]) {
                Ok((h, used)) => {
                    r.pos += used;
                    r.dec = Dec::Fdq(FdqDecoder::new(h));
                    return Ok(r);
                }
                Err(LegacyError::Truncated) if !r.eof && r.buf.len() < MAX_LEGACY_FRAME => {
                    r.fill()?;
                }
                Err(source) => return Err(LegacyReadError::Header { offset: 0, source }),
            }
        }
    }

    /// The FrameDataQ header, for a FrameDataQ reader.
    pub fn fdq_header(&self) -> Option<&FdqHeader> {
        match &self.dec {
            Dec::Fdq(d) => Some(d.header()),
            Dec::FrameData(_) => None,
        }
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// How the file ended (meaningful once [`LegacyReader::next_frame`] returned `None`).
    pub fn end(&self) -> &LegacyEnd {
        &self.end
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK.max(old), 0);
        let n = loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The next complete frame, or `None` at the end (see [`LegacyReader::end`]).
    pub fn next_frame(&mut self) -> io::Result<Option<&LegacyFrame>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if self.pos >= self.buf.len() && !self.fill()? {
                self.done = true;
                return Ok(None);
            }
            let rest = &self.buf[self.pos..];
            let r = match &mut self.dec {
                Dec::FrameData(d) => d.decode(rest, &mut self.frame),
                Dec::Fdq(d) => d.decode(rest, &mut self.frame),
            };
            match r {
                Ok(used) => {
                    self.pos += used;
                    return Ok(Some(&self.frame));
                }
                Err(LegacyError::Truncated) if !self.eof && rest.len() < MAX_LEGACY_FRAME => {
                    self.fill()?;
                }
                Err(LegacyError::Truncated) if self.eof => {
                    self.end = LegacyEnd::TornTail {
                        offset: self.offset(),
                        len: rest.len() as u64,
                    };
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => {
                    let offset = self.offset();
                    let (off_in, reason) = match e {
                        LegacyError::Invalid { offset, reason } => (offset as u64, reason),
                        LegacyError::Truncated => (0, "frame larger than 8 MiB".to_string()),
                        LegacyError::Unsupported(s) => (0, s),
                    };
                    // Count the bytes dropped to the end of the file.
                    let mut len = (self.buf.len() - self.pos) as u64;
                    self.pos = self.buf.len();
                    while self.fill()? {
                        len += self.buf.len() as u64;
                        self.pos = self.buf.len();
                    }
                    self.end = LegacyEnd::Invalid {
                        offset: offset + off_in,
                        len: len.saturating_sub(off_in),
                        reason,
                    };
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut r = LegacyReader::framedata(&bytes[..]);
            while r.next_frame().unwrap().is_some() {}
            let _ = decode_fdq_header(&bytes);
            let mut d = FdqDecoder::new(FdqHeader {
                version: 101,
                full_encode_secs: 15,
                recv_llq: Some(0.01),
                delta_enc: false,
            });
            let _ = d.decode(&bytes, &mut LegacyFrame::default());
        }
    }
}
