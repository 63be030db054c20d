//! A bounds-checked MessagePack cursor over a byte slice: the one reader behind the frame
//! codec, the pyramid sidecars, the live wire and the legacy importers.
//!
//! Zero-copy (strings and binaries borrow from the slice), allocation-free, and it never
//! panics on any input: every read either returns a value and advances, or returns an
//! [`Error`] naming the byte offset (relative to the start of the slice) of the value that
//! could not be read and what was expected there. A value that runs past the end of the
//! slice is [`Error::Truncated`], so a streaming caller can tell "read more" from
//! "garbage".

use thiserror::Error;

/// Why a value could not be read. `offset` is where the value starts, relative to the
/// start of the cursor's slice.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The slice ends inside the value.
    #[error("truncated at byte {offset}: the data ends inside the value ({what})")]
    Truncated {
        /// Where the value starts.
        offset: usize,
        /// What was expected there, e.g. "expected an integer".
        what: &'static str,
    },
    /// The bytes at `offset` are not what was expected.
    #[error("invalid at byte {offset}: {what}")]
    Invalid {
        /// Where the value starts.
        offset: usize,
        /// What was wrong, e.g. "expected an integer".
        what: &'static str,
    },
}

/// Result of a cursor read.
pub type Result<T> = std::result::Result<T, Error>;

/// A read position in a MessagePack byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A cursor at `pos` in `buf` (offsets stay relative to the start of `buf`).
    #[inline]
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    /// Offset of the next byte to read.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Moves past `n` bytes (a value decoded from [`Cursor::rest`] elsewhere).
    pub fn advance(&mut self, n: usize) -> Result<()> {
        self.take(n, self.pos, "bytes").map(|_| ())
    }

    /// True when every byte has been read.
    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&self) -> Result<u8> {
        self.buf.get(self.pos).copied().ok_or(Error::Truncated {
            offset: self.pos,
            what: "expected a value",
        })
    }

    #[inline]
    fn truncated<T>(at: usize, what: &'static str) -> Result<T> {
        Err(Error::Truncated { offset: at, what })
    }

    #[inline]
    fn invalid<T>(at: usize, what: &'static str) -> Result<T> {
        Err(Error::Invalid { offset: at, what })
    }

    /// `n` bytes of the value starting at `at`, from the current position.
    #[inline]
    fn take(&mut self, n: usize, at: usize, what: &'static str) -> Result<&'a [u8]> {
        let Some(b) = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
        else {
            return Self::truncated(at, what);
        };
        self.pos += n;
        Ok(b)
    }

    /// The `N` bytes after the marker at `at`; on success the cursor moves past them, on
    /// error it does not move.
    #[inline]
    fn body<const N: usize>(&mut self, at: usize, what: &'static str) -> Result<[u8; N]> {
        match self.buf.get(at + 1..).and_then(|r| r.first_chunk::<N>()) {
            Some(b) => {
                self.pos = at + 1 + N;
                Ok(*b)
            }
            None => Self::truncated(at, what),
        }
    }

    /// The marker byte at the current position.
    #[inline]
    fn marker(&self, what: &'static str) -> Result<(usize, u8)> {
        let at = self.pos;
        match self.buf.get(at) {
            Some(&m) => Ok((at, m)),
            None => Self::truncated(at, what),
        }
    }

    /// A value whose marker at `at` is followed by a 1, 2 or 4-byte big-endian length
    /// (`width`, 0 when `len` is in the marker) and `len` bytes; returns those bytes.
    #[inline]
    fn sized(&mut self, at: usize, width: u8, len: usize, what: &'static str) -> Result<&'a [u8]> {
        let n = match width {
            0 => {
                self.pos = at + 1;
                len
            }
            1 => usize::from(self.body::<1>(at, what)?[0]),
            2 => usize::from(u16::from_be_bytes(self.body(at, what)?)),
            _ => u32::from_be_bytes(self.body(at, what)?) as usize,
        };
        self.take(n, at, what).inspect_err(|_| self.pos = at)
    }

    /// A container length after the marker at `at` (`width` 0: `len` is in the marker).
    #[inline]
    fn count(&mut self, at: usize, width: u8, len: usize, what: &'static str) -> Result<usize> {
        Ok(match width {
            0 => {
                self.pos = at + 1;
                len
            }
            2 => usize::from(u16::from_be_bytes(self.body(at, what)?)),
            _ => u32::from_be_bytes(self.body(at, what)?) as usize,
        })
    }

    /// Any integer, u64 or i64 on the wire, widened to `i128`.
    #[inline]
    pub fn int(&mut self) -> Result<i128> {
        const WHAT: &str = "expected an integer";
        let (at, m) = self.marker(WHAT)?;
        Ok(match m {
            0x00..=0x7f => {
                self.pos = at + 1;
                i128::from(m)
            }
            0xe0..=0xff => {
                self.pos = at + 1;
                i128::from(m as i8)
            }
            0xcc => i128::from(self.body::<1>(at, WHAT)?[0]),
            0xcd => i128::from(u16::from_be_bytes(self.body(at, WHAT)?)),
            0xce => i128::from(u32::from_be_bytes(self.body(at, WHAT)?)),
            0xcf => i128::from(u64::from_be_bytes(self.body(at, WHAT)?)),
            0xd0 => i128::from(self.body::<1>(at, WHAT)?[0] as i8),
            0xd1 => i128::from(i16::from_be_bytes(self.body(at, WHAT)?)),
            0xd2 => i128::from(i32::from_be_bytes(self.body(at, WHAT)?)),
            0xd3 => i128::from(i64::from_be_bytes(self.body(at, WHAT)?)),
            _ => return Self::invalid(at, WHAT),
        })
    }

    /// An integer that fits in an `i64`. Read without widening: this is the frame codec's
    /// hot path (a positive fixint, one byte, is the common case).
    #[inline]
    pub fn i64(&mut self) -> Result<i64> {
        const WHAT: &str = "expected an integer";
        let at = self.pos;
        let Some(&m) = self.buf.get(at) else {
            return Self::truncated(at, WHAT);
        };
        if m < 0x80 {
            self.pos = at + 1;
            return Ok(i64::from(m));
        }
        Ok(match m {
            0xe0..=0xff => {
                self.pos = at + 1;
                i64::from(m as i8)
            }
            0xcc => i64::from(self.body::<1>(at, WHAT)?[0]),
            0xcd => i64::from(u16::from_be_bytes(self.body(at, WHAT)?)),
            0xce => i64::from(u32::from_be_bytes(self.body(at, WHAT)?)),
            0xcf => {
                let v = u64::from_be_bytes(self.body(at, WHAT)?);
                i64::try_from(v).or_else(|_| {
                    self.pos = at;
                    Self::invalid(at, "expected a signed 64-bit integer")
                })?
            }
            0xd0 => i64::from(self.body::<1>(at, WHAT)?[0] as i8),
            0xd1 => i64::from(i16::from_be_bytes(self.body(at, WHAT)?)),
            0xd2 => i64::from(i32::from_be_bytes(self.body(at, WHAT)?)),
            0xd3 => i64::from_be_bytes(self.body(at, WHAT)?),
            _ => return Self::invalid(at, WHAT),
        })
    }

    /// An integer in `0..=u64::MAX`.
    #[inline]
    pub fn u64(&mut self) -> Result<u64> {
        let at = self.pos;
        let v = self.int()?;
        u64::try_from(v).or_else(|_| {
            self.pos = at;
            Self::invalid(at, "expected an unsigned 64-bit integer")
        })
    }

    /// An integer in `0..=u32::MAX`.
    #[inline]
    pub fn u32(&mut self) -> Result<u32> {
        let at = self.pos;
        let v = match self.i64() {
            Err(Error::Invalid { what, .. }) if what != "expected an integer" => -1,
            v => v?,
        };
        u32::try_from(v).or_else(|_| {
            self.pos = at;
            Self::invalid(at, "expected an unsigned 32-bit integer")
        })
    }

    /// A float (32 or 64 bits), as `f64`.
    pub fn f64(&mut self) -> Result<f64> {
        const WHAT: &str = "expected a float";
        let (at, m) = self.marker(WHAT)?;
        match m {
            0xca => Ok(f64::from(f32::from_be_bytes(self.body(at, WHAT)?))),
            0xcb => Ok(f64::from_be_bytes(self.body(at, WHAT)?)),
            _ => Self::invalid(at, WHAT),
        }
    }

    /// A boolean.
    pub fn bool(&mut self) -> Result<bool> {
        let (at, m) = self.marker("expected a boolean")?;
        match m {
            0xc2 | 0xc3 => {
                self.pos = at + 1;
                Ok(m == 0xc3)
            }
            _ => Self::invalid(at, "expected a boolean"),
        }
    }

    /// Consumes a nil and returns true, or returns false and consumes nothing.
    #[inline]
    pub fn nil(&mut self) -> Result<bool> {
        let (at, m) = self.marker("expected a value")?;
        if m == 0xc0 {
            self.pos = at + 1;
        }
        Ok(m == 0xc0)
    }

    /// True when the next value is a string (nothing consumed).
    pub fn is_str(&self) -> Result<bool> {
        Ok(matches!(self.peek()?, 0xa0..=0xbf | 0xd9..=0xdb))
    }

    /// A UTF-8 string, borrowed.
    pub fn str(&mut self) -> Result<&'a str> {
        const WHAT: &str = "expected a string";
        let (at, m) = self.marker(WHAT)?;
        let b = match m {
            0xa0..=0xbf => self.sized(at, 0, usize::from(m & 0x1f), WHAT)?,
            0xd9 => self.sized(at, 1, 0, WHAT)?,
            0xda => self.sized(at, 2, 0, WHAT)?,
            0xdb => self.sized(at, 4, 0, WHAT)?,
            _ => return Self::invalid(at, WHAT),
        };
        std::str::from_utf8(b).or_else(|_| {
            self.pos = at;
            Self::invalid(at, "expected a UTF-8 string")
        })
    }

    /// A binary value, borrowed.
    pub fn bin(&mut self) -> Result<&'a [u8]> {
        const WHAT: &str = "expected a binary";
        let (at, m) = self.marker(WHAT)?;
        match m {
            0xc4 => self.sized(at, 1, 0, WHAT),
            0xc5 => self.sized(at, 2, 0, WHAT),
            0xc6 => self.sized(at, 4, 0, WHAT),
            _ => Self::invalid(at, WHAT),
        }
    }

    /// The element count of an array.
    #[inline]
    pub fn array_len(&mut self) -> Result<usize> {
        const WHAT: &str = "expected an array";
        let (at, m) = self.marker(WHAT)?;
        match m {
            0x90..=0x9f => self.count(at, 0, usize::from(m & 0x0f), WHAT),
            0xdc => self.count(at, 2, 0, WHAT),
            0xdd => self.count(at, 4, 0, WHAT),
            _ => Self::invalid(at, WHAT),
        }
    }

    /// The pair count of a map.
    pub fn map_len(&mut self) -> Result<usize> {
        const WHAT: &str = "expected a map";
        let (at, m) = self.marker(WHAT)?;
        match m {
            0x80..=0x8f => self.count(at, 0, usize::from(m & 0x0f), WHAT),
            0xde => self.count(at, 2, 0, WHAT),
            0xdf => self.count(at, 4, 0, WHAT),
            _ => Self::invalid(at, WHAT),
        }
    }

    /// Skips one value of any type; arrays and maps may nest at most `max_depth` deep.
    /// On error the position is unspecified.
    pub fn skip(&mut self, max_depth: u32) -> Result<()> {
        const WHAT: &str = "expected a value";
        let at = self.pos;
        let m = self.peek()?;
        match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => self.pos += 1,
            0xcc..=0xd3 => {
                self.int()?;
            }
            0xca | 0xcb => {
                self.f64()?;
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                let (width, len) = match m {
                    0xd9 => (1, 0),
                    0xda => (2, 0),
                    0xdb => (4, 0),
                    _ => (0, usize::from(m & 0x1f)),
                };
                self.sized(at, width, len, WHAT)?;
            }
            0xc4..=0xc6 => {
                self.bin()?;
            }
            0x90..=0x9f | 0xdc | 0xdd | 0x80..=0x8f | 0xde | 0xdf => {
                let Some(depth) = max_depth.checked_sub(1) else {
                    return Self::invalid(at, "value nested too deeply");
                };
                let (n, per) = if matches!(m, 0x90..=0x9f | 0xdc | 0xdd) {
                    (self.array_len()?, 1)
                } else {
                    (self.map_len()?, 2)
                };
                for _ in 0..n {
                    for _ in 0..per {
                        self.skip(depth)?;
                    }
                }
            }
            // fixext 1, 2, 4, 8, 16: marker, type, data.
            0xd4..=0xd8 => {
                self.pos += 1;
                self.take(1 + (1 << (m - 0xd4)), at, WHAT)?;
            }
            // ext 8, 16, 32: marker, length, type, data.
            0xc7..=0xc9 => {
                // Marker, length, type byte, data: one byte more than the length says.
                self.sized(at, 1 << (m - 0xc7), 0, WHAT)?;
                self.take(1, at, WHAT)?;
            }
            0xc1 => return Self::invalid(at, "marker 0xc1 is never used"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn integers_in_every_width() {
        let vals: [i128; 12] = [
            0,
            127,
            -1,
            -32,
            -33,
            255,
            65_535,
            -32_768,
            u32::MAX as i128,
            i32::MIN as i128,
            u64::MAX as i128,
            i64::MIN as i128,
        ];
        for v in vals {
            let b = enc(|o| {
                if v >= 0 {
                    rmp::encode::write_uint(o, v as u64).unwrap();
                } else {
                    rmp::encode::write_sint(o, v as i64).unwrap();
                }
            });
            let mut c = Cursor::new(&b);
            assert_eq!(c.int(), Ok(v), "{b:02x?}");
            assert!(c.at_end());
            // Every shorter slice is truncated at offset 0, never misread.
            for cut in 0..b.len() {
                assert_eq!(
                    Cursor::new(&b[..cut]).int(),
                    Err(Error::Truncated {
                        offset: 0,
                        what: "expected an integer"
                    })
                );
            }
        }
        // Signed widths of non-negative values (rmp writes them for i8..i64).
        let b = enc(|o| rmp::encode::write_i32(o, 5).unwrap());
        assert_eq!(Cursor::new(&b).u32(), Ok(5));
    }

    #[test]
    fn range_errors_name_the_offset() {
        let mut b = vec![0x01];
        rmp::encode::write_sint(&mut b, -2).unwrap();
        rmp::encode::write_uint(&mut b, u64::from(u32::MAX) + 1).unwrap();
        let mut c = Cursor::new(&b);
        assert_eq!(c.u32(), Ok(1));
        assert_eq!(
            c.u64(),
            Err(Error::Invalid {
                offset: 1,
                what: "expected an unsigned 64-bit integer"
            })
        );
        c.int().unwrap();
        let at = c.pos();
        assert_eq!(
            c.u32(),
            Err(Error::Invalid {
                offset: at,
                what: "expected an unsigned 32-bit integer"
            })
        );
        let e = Cursor::new(&[0xc3]).array_len().unwrap_err();
        assert_eq!(e.to_string(), "invalid at byte 0: expected an array");
    }

    #[test]
    fn strings_binaries_and_containers() {
        let long = "x".repeat(300);
        let b = enc(|o| {
            rmp::encode::write_map_len(o, 1).unwrap();
            rmp::encode::write_str(o, "k").unwrap();
            rmp::encode::write_str(o, &long).unwrap();
            rmp::encode::write_array_len(o, 20).unwrap();
            rmp::encode::write_bin(o, &[1, 2, 3]).unwrap();
            rmp::encode::write_nil(o).unwrap();
            rmp::encode::write_bool(o, true).unwrap();
            rmp::encode::write_f32(o, 0.5).unwrap();
            rmp::encode::write_f64(o, 0.01).unwrap();
        });
        let mut c = Cursor::new(&b);
        assert_eq!(c.map_len(), Ok(1));
        assert!(c.is_str().unwrap());
        assert_eq!(c.str(), Ok("k"));
        assert_eq!(c.str(), Ok(long.as_str()));
        assert_eq!(c.array_len(), Ok(20));
        assert_eq!(c.bin(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(c.nil(), Ok(true));
        assert_eq!(c.nil(), Ok(false));
        assert_eq!(c.bool(), Ok(true));
        assert_eq!(c.f64(), Ok(0.5));
        assert_eq!(c.f64(), Ok(0.01));
        assert!(c.at_end());
        // A string whose length runs past the end is truncated at its marker, and the
        // cursor stays there.
        let mut c = Cursor::new(&b[..b.len() - 40]);
        c.map_len().unwrap();
        c.str().unwrap();
        assert!(matches!(c.str(), Err(Error::Truncated { .. })));
        assert_eq!(c.pos(), 3);
        // Invalid UTF-8 is invalid, not truncated.
        assert_eq!(
            Cursor::new(&[0xa1, 0xff]).str(),
            Err(Error::Invalid {
                offset: 0,
                what: "expected a UTF-8 string"
            })
        );
    }

    #[test]
    fn skip_walks_every_type_and_bounds_nesting() {
        let b = enc(|o| {
            rmp::encode::write_array_len(o, 3).unwrap();
            rmp::encode::write_ext_meta(o, 3, 7).unwrap();
            o.extend_from_slice(&[1, 2, 3]);
            rmp::encode::write_ext_meta(o, 4, 7).unwrap();
            o.extend_from_slice(&[1, 2, 3, 4]);
            rmp::encode::write_map_len(o, 1).unwrap();
            rmp::encode::write_f64(o, 1.0).unwrap();
            rmp::encode::write_bin(o, &[9; 40]).unwrap();
            rmp::encode::write_uint(o, 42).unwrap();
        });
        let mut c = Cursor::new(&b);
        c.skip(2).unwrap();
        assert_eq!(c.int(), Ok(42));
        // 20 nested arrays: refused below depth 20, read at 20.
        let nested = [0x91u8; 20]
            .iter()
            .copied()
            .chain([0x00])
            .collect::<Vec<_>>();
        assert!(matches!(
            Cursor::new(&nested).skip(19),
            Err(Error::Invalid { .. })
        ));
        assert_eq!(Cursor::new(&nested).skip(20), Ok(()));
        assert!(matches!(
            Cursor::new(&[0xc1]).skip(8),
            Err(Error::Invalid { offset: 0, .. })
        ));
        // A 4 GiB length claim is truncated, not allocated or misread.
        assert!(matches!(
            Cursor::new(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0]).skip(8),
            Err(Error::Truncated { offset: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut c = Cursor::new(&bytes);
            while !c.at_end() {
                let before = c.pos();
                if c.clone().skip(8).is_err() {
                    break;
                }
                c.skip(8).unwrap();
                prop_assert!(c.pos() > before && c.pos() <= bytes.len());
            }
            for f in [
                |c: &mut Cursor<'_>| c.int().map(drop),
                |c: &mut Cursor<'_>| c.str().map(drop),
                |c: &mut Cursor<'_>| c.bin().map(drop),
                |c: &mut Cursor<'_>| c.f64().map(drop),
                |c: &mut Cursor<'_>| c.array_len().map(drop),
                |c: &mut Cursor<'_>| c.map_len().map(drop),
            ] {
                let mut c = Cursor::new(&bytes);
                if let Err(Error::Truncated { offset, .. } | Error::Invalid { offset, .. }) = f(&mut c) {
                    prop_assert_eq!(offset, 0);
                    prop_assert_eq!(c.pos(), 0);
                }
            }
        }
    }
}
