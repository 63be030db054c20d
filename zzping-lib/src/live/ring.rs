//! A bounded ring of variable-length byte records with consecutive keys.
//!
//! Used for the per-host frame ring (key = host frame number) and the per-subscription
//! retransmit ring (key = sequence number). Both the byte arena and the record index are
//! allocated once, at construction; pushing evicts the oldest records as needed and never
//! allocates. A record is always stored contiguously (a record that does not fit at the
//! end of the arena starts again at offset 0).

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Entry {
    off: u32,
    len: u32,
    meta: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ByteRing {
    buf: Vec<u8>,
    entries: VecDeque<Entry>,
    max_entries: usize,
    first_key: u64,
    /// Write offset of the next record.
    w: usize,
}

impl ByteRing {
    /// A ring of `bytes` bytes and at most `max_entries` records; the first key is 0.
    pub(crate) fn new(bytes: usize, max_entries: usize) -> Self {
        let bytes = bytes.clamp(1, u32::MAX as usize);
        let max_entries = max_entries.max(1);
        Self {
            buf: vec![0; bytes],
            entries: VecDeque::with_capacity(max_entries),
            max_entries,
            first_key: 0,
            w: 0,
        }
    }

    /// Key of the oldest record kept.
    pub(crate) fn first_key(&self) -> u64 {
        self.first_key
    }

    /// Key the next pushed record will get.
    pub(crate) fn next_key(&self) -> u64 {
        self.first_key + self.entries.len() as u64
    }

    fn pop_front(&mut self) {
        if self.entries.pop_front().is_some() {
            self.first_key += 1;
        }
    }

    /// Appends a record; returns its key, or `None` when it is larger than the arena.
    pub(crate) fn push(&mut self, meta: u64, data: &[u8]) -> Option<u64> {
        let len = data.len();
        if len > self.buf.len() {
            return None;
        }
        if self.entries.len() >= self.max_entries {
            self.pop_front();
        }
        if self.entries.is_empty() {
            self.w = 0;
        }
        if self.w + len > self.buf.len() {
            // Wrap to offset 0. Records lying after `w` are the oldest; they go first so
            // the arena stays in FIFO order.
            let old_w = self.w;
            while self
                .entries
                .front()
                .is_some_and(|f| f.off as usize >= old_w)
            {
                self.pop_front();
            }
            self.w = 0;
        }
        let (lo, hi) = (self.w, self.w + len);
        // Live records at or after `lo` are the oldest run; drop those the new one covers.
        while self
            .entries
            .front()
            .is_some_and(|f| (f.off as usize) >= lo && (f.off as usize) < hi)
        {
            self.pop_front();
        }
        self.buf[lo..hi].copy_from_slice(data);
        let key = self.next_key();
        self.entries.push_back(Entry {
            off: lo as u32,
            len: len as u32,
            meta,
        });
        self.w = hi;
        Some(key)
    }

    /// The record with `key`, with its meta value.
    pub(crate) fn get(&self, key: u64) -> Option<(u64, &[u8])> {
        let i = key.checked_sub(self.first_key)?;
        let e = self.entries.get(usize::try_from(i).ok()?)?;
        let s = self
            .buf
            .get(e.off as usize..e.off as usize + e.len as usize)?;
        Some((e.meta, s))
    }

    /// Key of the first record whose meta is `>= meta` (metas must be ascending), or
    /// `next_key()` when there is none.
    pub(crate) fn first_with_meta_at_least(&self, meta: u64) -> u64 {
        self.first_key + self.entries.partition_point(|e| e.meta < meta) as u64
    }

    /// Meta of the oldest record.
    pub(crate) fn first_meta(&self) -> Option<u64> {
        self.entries.front().map(|e| e.meta)
    }

    /// Drops every record; the next key is kept.
    pub(crate) fn clear(&mut self) {
        self.first_key = self.next_key();
        self.entries.clear();
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
            max in 1usize..20,
        ) {
            let mut r = ByteRing::new(cap, max);
            let mut all: Vec<Vec<u8>> = Vec::new();
            for (i, &l) in lens.iter().enumerate() {
                let data: Vec<u8> = (0..l).map(|j| (i * 7 + j) as u8).collect();
                let k = r.push(i as u64, &data);
                if l > cap {
                    prop_assert!(k.is_none());
                    continue;
                }
                prop_assert_eq!(k, Some(all.len() as u64));
                all.push(data);
                prop_assert!(r.next_key() - r.first_key() <= max as u64);
                for key in r.first_key()..r.next_key() {
                    let (_, got) = r.get(key).unwrap();
                    prop_assert_eq!(got, &all[key as usize][..]);
                }
                // the newest record is always kept
                prop_assert_eq!(r.next_key(), all.len() as u64);
            }
        }
    }
}
