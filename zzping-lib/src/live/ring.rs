//! A bounded ring of variable-length byte records with consecutive keys.
//!
//! Used for the per-host frame ring (key = host frame number) and the per-subscription
//! retransmit ring (key = sequence number). Both the byte arena and the record index are
//! allocated once, at construction; pushing evicts the oldest records as needed and never
//! allocates. A record is always stored contiguously (a record that does not fit at the
//! end of the arena starts again at offset 0).
//!
//! # Layout: a sparse index
//! A frame is only about 17 bytes, so a 16-byte index entry per record would double the
//! ring. Instead each record carries its own small header in the arena,
//!
//! ```text
//! [len: u16 LE] [meta delta: zigzag varint, vs the previous record] [data: len bytes]
//! ```
//!
//! and the index keeps one *mark* (key, offset, meta) every [`SPARSE`] records, plus one
//! for the oldest record. Finding a record walks at most `SPARSE - 1` headers from the
//! mark before it. A length of `0xFFFF` (or fewer than 2 bytes left at the end of the
//! arena) means "the next record is at offset 0". A 17-byte frame 100 ms after the
//! previous one then costs 22 bytes in all (2 length, 3 meta delta): an hour is 792 KB per
//! host, where a dense 16-byte index made it 1.2 MB.

use std::collections::VecDeque;

/// One mark every this many records.
pub(crate) const SPARSE: u64 = 32;
/// Length value that marks the end of the used arena: the next record is at offset 0.
const WRAP: u16 = u16::MAX;
/// Largest record header: 2 bytes of length and a 10-byte varint.
const MAX_HEADER: usize = 12;

#[derive(Debug, Clone, Copy)]
struct Mark {
    key: u64,
    off: u32,
    meta: u64,
}

/// A record header read from the arena.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// Where the record starts (after resolving a wrap).
    off: usize,
    /// Where its data starts.
    data: usize,
    /// Data length.
    len: usize,
    /// Meta minus the previous record's meta.
    delta: i64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ByteRing {
    buf: Vec<u8>,
    marks: VecDeque<Mark>,
    max_entries: usize,
    /// Largest data length accepted.
    max_len: usize,
    first_key: u64,
    next_key: u64,
    /// Offset and meta of the oldest record (when there is one).
    front: usize,
    front_meta: u64,
    /// Meta of the newest record.
    last_meta: u64,
    /// Write offset of the next record.
    w: usize,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Initial content of the arena (never read: records are located by their marks).
const ARENA_FILL: u8 = 0xA5;

impl ByteRing {
    /// A ring for records of up to `bytes` bytes of data (and about `bytes` in total) and
    /// at most `max_entries` records; the first key is 0.
    pub(crate) fn new(bytes: usize, max_entries: usize) -> Self {
        let max_len = bytes.clamp(1, usize::from(WRAP) - 1);
        let max_entries = max_entries.max(1);
        Self {
            // Room for one record of the largest size with its header. Filled (not
            // zeroed: zeroed memory is mapped lazily) so the whole arena is resident from
            // the start: a daemon's memory on its first minute is its memory after a year.
            buf: vec![ARENA_FILL; bytes.max(max_len) + MAX_HEADER],
            marks: VecDeque::with_capacity(max_entries / SPARSE as usize + 2),
            max_entries,
            max_len,
            first_key: 0,
            next_key: 0,
            front: 0,
            front_meta: 0,
            last_meta: 0,
            w: 0,
        }
    }

    /// Like [`ByteRing::new`], but the arena is zeroed, so the OS maps its pages only as
    /// records are written (for pooled rings that may never be used).
    pub(crate) fn new_lazy(bytes: usize, max_entries: usize) -> Self {
        let mut r = Self::new(1, max_entries);
        let max_len = bytes.clamp(1, usize::from(WRAP) - 1);
        r.max_len = max_len;
        r.buf = vec![0; bytes.max(max_len) + MAX_HEADER];
        r
    }

    /// Drops every record and starts the keys again from 0.
    pub(crate) fn reset(&mut self) {
        self.first_key = 0;
        self.next_key = 0;
        self.marks.clear();
        self.front = 0;
        self.front_meta = 0;
        self.last_meta = 0;
        self.w = 0;
    }

    /// Key of the oldest record kept.
    pub(crate) fn first_key(&self) -> u64 {
        self.first_key
    }

    /// Key the next pushed record will get.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key
    }

    fn count(&self) -> u64 {
        self.next_key - self.first_key
    }

    /// Reads the header of the record at `off` (following a wrap to offset 0).
    fn header(&self, off: usize) -> Header {
        let mut off = off;
        if off + 2 > self.buf.len()
            || u16::from_le_bytes([self.buf[off], self.buf[off + 1]]) == WRAP
        {
            off = 0;
        }
        let len = usize::from(u16::from_le_bytes([self.buf[off], self.buf[off + 1]]));
        let mut p = off + 2;
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.buf[p];
            p += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 || shift >= 64 {
                break;
            }
        }
        Header {
            off,
            data: p,
            len,
            delta: unzigzag(v),
        }
    }

    fn pop_front(&mut self) {
        if self.count() == 0 {
            return;
        }
        let h = self.header(self.front);
        self.first_key += 1;
        if self.count() == 0 {
            self.marks.clear();
            return;
        }
        let next = self.header(h.data + h.len);
        self.front = next.off;
        self.front_meta = self.front_meta.wrapping_add_signed(next.delta);
        // Keep a mark on the oldest record.
        if self.marks.front().is_some_and(|m| m.key < self.first_key) {
            if self.marks.get(1).is_some_and(|n| n.key == self.first_key) {
                self.marks.pop_front();
            } else {
                self.marks[0] = Mark {
                    key: self.first_key,
                    off: self.front as u32,
                    meta: self.front_meta,
                };
            }
        }
    }

    /// Appends a record; returns its key, or `None` when it is larger than the ring
    /// accepts.
    pub(crate) fn push(&mut self, meta: u64, data: &[u8]) -> Option<u64> {
        let len = data.len();
        if len > self.max_len {
            return None;
        }
        if self.count() >= self.max_entries as u64 {
            self.pop_front();
        }
        let empty = self.count() == 0;
        if empty {
            self.w = 0;
            self.marks.clear();
        }
        let delta = if empty {
            0
        } else {
            meta.wrapping_sub(self.last_meta) as i64
        };
        let z = zigzag(delta);
        let total = 2 + varint_len(z) + len;
        if self.w + total > self.buf.len() {
            // Wrap to offset 0. Records lying at or after `w` are the oldest; they go first
            // so the arena stays in FIFO order.
            while self.count() > 0 && self.front >= self.w {
                self.pop_front();
            }
            if self.w + 2 <= self.buf.len() {
                self.buf[self.w..self.w + 2].copy_from_slice(&WRAP.to_le_bytes());
            }
            self.w = 0;
        }
        let (lo, hi) = (self.w, self.w + total);
        // Live records starting in the space the new one takes are the oldest run.
        while self.count() > 0 && self.front >= lo && self.front < hi {
            self.pop_front();
        }
        let empty = self.count() == 0;
        let delta = if empty { 0 } else { delta };
        let z = zigzag(delta);
        // Write the header and data (the header may be shorter now: never longer).
        self.buf[lo..lo + 2].copy_from_slice(&(len as u16).to_le_bytes());
        let mut p = lo + 2;
        let mut v = z;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf[p] = b;
                p += 1;
                break;
            }
            self.buf[p] = b | 0x80;
            p += 1;
        }
        self.buf[p..p + len].copy_from_slice(data);
        let key = self.next_key;
        if empty {
            self.first_key = key;
            self.front = lo;
            self.front_meta = meta;
            self.marks.clear();
        }
        if empty || key % SPARSE == 0 {
            self.marks.push_back(Mark {
                key,
                off: lo as u32,
                meta,
            });
        }
        self.next_key += 1;
        self.last_meta = meta;
        self.w = p + len;
        debug_assert!(self.w <= hi);
        Some(key)
    }

    /// Index of the last mark with `key <= key`.
    fn mark_for(&self, key: u64) -> Option<usize> {
        self.marks.partition_point(|m| m.key <= key).checked_sub(1)
    }

    /// The record with `key`, with its meta value.
    pub(crate) fn get(&self, key: u64) -> Option<(u64, &[u8])> {
        if key < self.first_key || key >= self.next_key {
            return None;
        }
        let m = self.marks[self.mark_for(key)?];
        let mut h = self.header(m.off as usize);
        let mut meta = m.meta;
        for _ in m.key..key {
            h = self.header(h.data + h.len);
            meta = meta.wrapping_add_signed(h.delta);
        }
        Some((meta, self.buf.get(h.data..h.data + h.len)?))
    }

    /// Key of the first record whose meta is `>= meta` (metas must be ascending), or
    /// `next_key()` when there is none.
    pub(crate) fn first_with_meta_at_least(&self, meta: u64) -> u64 {
        // The last mark whose meta is below the target; the answer is after it and no
        // later than the next mark.
        let i = self.marks.partition_point(|m| m.meta < meta);
        if i == 0 {
            return self.first_key;
        }
        let m = self.marks[i - 1];
        let end = self.marks.get(i).map_or(self.next_key, |n| n.key);
        let mut h = self.header(m.off as usize);
        let mut cur = m.meta;
        let mut key = m.key;
        while key + 1 < end {
            h = self.header(h.data + h.len);
            cur = cur.wrapping_add_signed(h.delta);
            key += 1;
            if cur >= meta {
                return key;
            }
        }
        end
    }

    /// Meta of the oldest record.
    pub(crate) fn first_meta(&self) -> Option<u64> {
        (self.count() > 0).then_some(self.front_meta)
    }

    /// Drops every record; the next key is kept.
    pub(crate) fn clear(&mut self) {
        self.first_key = self.next_key;
        self.marks.clear();
        self.w = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ring_keeps_latest_records_intact(
            lens in prop::collection::vec(0usize..40, 1..300),
            cap in 1usize..100,
            max in 1usize..80,
            metas in prop::collection::vec(0u64..5_000, 300),
        ) {
            let mut r = ByteRing::new(cap, max);
            let mut all: Vec<Vec<u8>> = Vec::new();
            let mut meta_of: Vec<u64> = Vec::new();
            let mut meta = 0u64;
            for (i, &l) in lens.iter().enumerate() {
                let data: Vec<u8> = (0..l).map(|j| (i * 7 + j) as u8).collect();
                meta += metas[i];
                let k = r.push(meta, &data);
                if l > cap {
                    prop_assert!(k.is_none());
                    continue;
                }
                prop_assert_eq!(k, Some(all.len() as u64));
                all.push(data);
                meta_of.push(meta);
                prop_assert!(r.next_key() - r.first_key() <= max as u64);
                for key in r.first_key()..r.next_key() {
                    let (m, got) = r.get(key).unwrap();
                    prop_assert_eq!(got, &all[key as usize][..]);
                    prop_assert_eq!(m, meta_of[key as usize]);
                }
                prop_assert!(r.get(r.next_key()).is_none());
                prop_assert_eq!(r.first_meta(), Some(meta_of[r.first_key() as usize]));
                // the newest record is always kept
                prop_assert_eq!(r.next_key(), all.len() as u64);
                // meta search agrees with a linear scan over the kept records
                for probe in [0, meta / 2, meta, meta + 1] {
                    let want = (r.first_key()..r.next_key())
                        .find(|&k| meta_of[k as usize] >= probe)
                        .unwrap_or(r.next_key());
                    prop_assert_eq!(r.first_with_meta_at_least(probe), want, "probe {}", probe);
                }
            }
        }
    }

    #[test]
    fn an_hour_of_frames_fits_in_22_bytes_per_frame() {
        // 36,000 frames of 17 bytes, 100 ms apart, in 36,000 x 22 bytes.
        let mut r = ByteRing::new(36_000 * 22 + 64, 36_000);
        let frame = [7u8; 17];
        for i in 0..40_000u64 {
            r.push(1_700_000_000_000_000 + i * 100_000, &frame).unwrap();
        }
        assert_eq!(r.next_key() - r.first_key(), 36_000);
        assert!(r.marks.len() <= 36_000 / SPARSE as usize + 2);
        let (m, d) = r.get(r.first_key()).unwrap();
        assert_eq!(d, &frame[..]);
        assert_eq!(m, 1_700_000_000_000_000 + 4_000 * 100_000);
    }

    #[test]
    fn a_lazy_ring_reset_starts_again_from_key_zero() {
        let mut r = ByteRing::new_lazy(100, 10);
        for i in 0..30u64 {
            r.push(i, &[i as u8; 7]).unwrap();
        }
        assert_eq!(r.next_key(), 30);
        r.reset();
        assert_eq!((r.first_key(), r.next_key(), r.first_meta()), (0, 0, None));
        assert_eq!(r.push(5, b"abc"), Some(0));
        assert_eq!(r.get(0), Some((5, &b"abc"[..])));
        assert_eq!(r.push(3, b"de"), Some(1));
        assert_eq!(r.get(1), Some((3, &b"de"[..])));
    }

    #[test]
    fn clear_keeps_the_next_key() {
        let mut r = ByteRing::new(100, 10);
        r.push(5, b"abc").unwrap();
        r.push(6, b"de").unwrap();
        r.clear();
        assert_eq!(r.first_key(), 2);
        assert_eq!(r.next_key(), 2);
        assert!(r.get(1).is_none());
        assert_eq!(r.first_meta(), None);
        assert_eq!(r.push(9, b"x"), Some(2));
        assert_eq!(r.get(2), Some((9, &b"x"[..])));
        assert_eq!(r.first_with_meta_at_least(0), 2);
        assert_eq!(r.first_with_meta_at_least(10), 3);
    }
}
