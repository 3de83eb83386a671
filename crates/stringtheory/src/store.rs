//! [`StringStore`]: every distinct string once, named by a 4-byte [`StrId`],
//! for an owner that holds millions of references to a few hundred thousand
//! strings (a metrics pipeline's context names and tags).
//!
//! # Layout
//!
//! One byte arena (`Vec<u8>`) holds every string as a *block*:
//!
//! ```text
//! | refs: u32 LE | len: LEB128 (1–5 bytes) | bytes … |
//! ```
//!
//! A [`StrId`] is the block's offset in the arena (`u32`: the same 4 bytes on
//! 32- and 64-bit targets, an arena of up to 4 GiB). A block costs 5 bytes
//! besides its string for strings under 128 bytes, 6 under 16 KiB; there is no
//! padding (nothing in a block needs alignment). Deduplication is a
//! `hashbrown` table of ids hashed by their string's XXH3: one `u32` and one
//! control byte per bucket, about 7 bytes per string at its usual load.
//!
//! # Budget and heap
//!
//! The first `interner_bytes` of the arena are the *interner* (the Agent Data
//! Plane's `dogstatsd_string_interner_size`); a string stored past it is a
//! heap fallback, counted in [`StoreStats::fallback_strings`] (as ADP's
//! `intern_fallback_total`). Without heap fallback (`allow_heap: false`) a
//! string that does not fit the interner is refused instead.
//!
//! The arena is allocated at its first string with the interner's capacity
//! and grows by doubling past it. Pages of a large allocation are only made
//! resident when written, and glibc moves a large block with `mremap`, so
//! neither the reserved interner nor growth costs memory before it is used.
//!
//! # Reclaiming
//!
//! References are counted per id ([`StringStore::retain`],
//! [`StringStore::release`]); the block of a string whose last reference goes
//! is freed. Freed blocks are kept in lists by exact size (a bitmap finds the
//! smallest non-empty list at least as large for sizes up to 256 bytes, a
//! `BTreeMap` past that) and reused first, split when larger than needed, so
//! a steady stream of new and expiring strings reuses the same bytes. Free
//! blocks are not merged with their neighbours; [`StoreStats::free_bytes`]
//! says how much is waiting for reuse.
//!
//! Not thread-safe by design: one owner (the aggregator) resolves, reads and
//! releases, so reading a string is an offset computation, and no
//! reference count is touched per sample.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use crate::free::FreeLists;

/// A stored string: its block's offset in the arena. Copy, 4 bytes on every
/// target; valid until the reference it stands for is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StrId(u32);

impl StrId {
    /// The raw id (the block's arena offset).
    pub fn get(self) -> u32 {
        self.0
    }

    /// An id from [`StrId::get`] (only meaningful for the store that made it).
    pub fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// Why a string was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The interner is full and heap strings are not allowed.
    #[error("the string interner is full and heap strings are not allowed")]
    InternerFull,
    /// Storing it needs more memory and growth was not allowed (the caller's
    /// memory limit).
    #[error("storing the string needs more memory than the memory limit allows")]
    NoGrowth,
    /// The arena would exceed 4 GiB.
    #[error("the string arena would exceed 4 GiB")]
    ArenaFull,
}

/// Bytes of a block header before the length: the reference count.
const REFS: usize = 4;
/// The smallest remainder worth keeping when a larger free block is split:
/// the block of a one-byte string.
const MIN_BLOCK: usize = REFS + 1 + 1;

/// Counters and sizes of a [`StringStore`] (for telemetry and memory accounting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Distinct strings stored.
    pub strings: usize,
    /// Bytes of blocks in use (headers and strings).
    pub used_bytes: usize,
    /// Of those, bytes of blocks past the interner (heap fallbacks).
    pub heap_bytes: usize,
    /// Bytes of freed blocks waiting for reuse.
    pub free_bytes: usize,
    /// The arena's length: every byte ever handed out, used or free.
    pub arena_bytes: usize,
    /// Heap memory the store holds: the arena's capacity, the index and the
    /// free lists. The arena's unwritten capacity is not resident.
    pub allocated_bytes: usize,
    /// Strings stored past the interner since the store was made.
    pub fallback_strings: u64,
    /// Their bytes.
    pub fallback_bytes: u64,
}

/// Distinct strings, each stored once and named by a 4-byte [`StrId`]; see
/// the [module documentation](self).
pub struct StringStore {
    arena: Vec<u8>,
    index: HashTable<u32>,
    free: FreeLists,
    interner_bytes: usize,
    allow_heap: bool,
    strings: usize,
    used_bytes: usize,
    heap_bytes: usize,
    fallback_strings: u64,
    fallback_bytes: u64,
}

impl std::fmt::Debug for StringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringStore").field("stats", &self.stats()).finish()
    }
}

/// The LEB128 length prefix of `len`: its bytes and their count.
fn encode_len(len: usize) -> ([u8; 5], usize) {
    let mut out = [0u8; 5];
    let mut v = len as u64;
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[n] = byte;
            return (out, n + 1);
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

fn hash(s: &[u8]) -> u64 {
    xxh3_64(s)
}

impl StringStore {
    /// A store whose first `interner_bytes` are the interner; past it, strings
    /// go to the heap when `allow_heap`, and are refused otherwise.
    pub fn new(interner_bytes: usize, allow_heap: bool) -> Self {
        Self {
            arena: Vec::new(),
            index: HashTable::new(),
            free: FreeLists::new(MIN_BLOCK),
            interner_bytes: interner_bytes.min(u32::MAX as usize),
            allow_heap,
            strings: 0,
            used_bytes: 0,
            heap_bytes: 0,
            fallback_strings: 0,
            fallback_bytes: 0,
        }
    }

    /// The block at `offset`: `(string start, string length)`.
    #[inline]
    fn block(&self, offset: u32) -> (usize, usize) {
        let mut at = offset as usize + REFS;
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let byte = self.arena[at];
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return (at, len);
            }
            shift += 7;
        }
    }

    #[inline]
    fn bytes(&self, offset: u32) -> &[u8] {
        let (start, len) = self.block(offset);
        &self.arena[start..start + len]
    }

    fn block_size(&self, offset: u32) -> usize {
        let (start, len) = self.block(offset);
        start + len - offset as usize
    }

    #[inline]
    fn refs(&self, offset: u32) -> u32 {
        let at = offset as usize;
        u32::from_le_bytes([
            self.arena[at],
            self.arena[at + 1],
            self.arena[at + 2],
            self.arena[at + 3],
        ])
    }

    #[inline]
    fn set_refs(&mut self, offset: u32, refs: u32) {
        let at = offset as usize;
        self.arena[at..at + REFS].copy_from_slice(&refs.to_le_bytes());
    }

    /// The string of `id`.
    #[inline]
    pub fn get(&self, id: StrId) -> &str {
        let bytes = self.bytes(id.0);
        // SAFETY: blocks are only written by `insert`, which copies the bytes
        // of a `&str`; ids name blocks (offsets at a block start).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The id of `s` if it is stored (no reference is taken).
    pub fn find(&self, s: &str) -> Option<StrId> {
        let h = hash(s.as_bytes());
        self.index
            .find(h, |&o| self.bytes(o) == s.as_bytes())
            .map(|&o| StrId(o))
    }

    /// Takes a reference to `s`, storing it if it is new. `grow: false`
    /// refuses a new string that no freed block holds: the arena is not
    /// extended, not even into its spare capacity, whose pages are not
    /// resident until written (the index may still grow, by a few bytes per
    /// string).
    pub fn intern(&mut self, s: &str, grow: bool) -> Result<StrId, Refused> {
        let h = hash(s.as_bytes());
        if let Some(&offset) = self.index.find(h, |&o| self.bytes(o) == s.as_bytes()) {
            self.retain(StrId(offset));
            return Ok(StrId(offset));
        }
        let offset = self.insert(s, grow)?;
        let Self { index, arena, .. } = self;
        index.insert_unique(h, offset, |&o| {
            // Rehashing reads each string back from the arena.
            let mut at = o as usize + REFS;
            let mut len = 0usize;
            let mut shift = 0;
            loop {
                let byte = arena[at];
                at += 1;
                len |= usize::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            hash(&arena[at..at + len])
        });
        Ok(StrId(offset))
    }

    /// Writes a new block for `s` (reference count 1) and returns its offset.
    fn insert(&mut self, s: &str, grow: bool) -> Result<u32, Refused> {
        let (prefix, prefix_len) = encode_len(s.len());
        let size = REFS + prefix_len + s.len();
        let offset = match self.free.take(size) {
            Some(offset) => offset,
            None => {
                let offset = self.arena.len();
                let end = offset.checked_add(size).filter(|&e| e <= u32::MAX as usize);
                let Some(end) = end else {
                    return Err(Refused::ArenaFull);
                };
                if end > self.interner_bytes && !self.allow_heap {
                    return Err(Refused::InternerFull);
                }
                // Spare capacity is not resident until written: using it
                // grows the process as much as an allocation would.
                if !grow {
                    return Err(Refused::NoGrowth);
                }
                if end > self.arena.capacity() {
                    // The interner in one allocation first, then doubling.
                    let target = if self.arena.capacity() == 0 {
                        self.interner_bytes.max(end)
                    } else {
                        self.arena.capacity().saturating_mul(2).max(end).min(u32::MAX as usize)
                    };
                    self.arena.reserve_exact(target - self.arena.len());
                }
                self.arena.resize(end, 0);
                offset as u32
            }
        };
        let at = offset as usize;
        self.arena[at..at + REFS].copy_from_slice(&1u32.to_le_bytes());
        self.arena[at + REFS..at + REFS + prefix_len].copy_from_slice(&prefix[..prefix_len]);
        self.arena[at + REFS + prefix_len..at + size].copy_from_slice(s.as_bytes());
        self.strings += 1;
        self.used_bytes += size;
        if at + size > self.interner_bytes {
            self.heap_bytes += size;
            self.fallback_strings += 1;
            self.fallback_bytes += s.len() as u64;
        }
        Ok(offset)
    }

    /// Takes one more reference to `id`.
    #[inline]
    pub fn retain(&mut self, id: StrId) {
        let refs = self.refs(id.0);
        // Saturating: a string referenced 4 billion times is never freed.
        self.set_refs(id.0, refs.saturating_add(1));
    }

    /// Gives back one reference to `id`; the last frees the string.
    pub fn release(&mut self, id: StrId) {
        let refs = self.refs(id.0);
        debug_assert!(refs > 0, "released a free string");
        if refs == u32::MAX {
            return;
        }
        if refs > 1 {
            self.set_refs(id.0, refs - 1);
            return;
        }
        self.set_refs(id.0, 0);
        let h = hash(self.bytes(id.0));
        if let Ok(entry) = self.index.find_entry(h, |&o| o == id.0) {
            entry.remove();
        }
        let size = self.block_size(id.0);
        self.strings -= 1;
        self.used_bytes -= size;
        if id.0 as usize + size > self.interner_bytes {
            self.heap_bytes -= size;
        }
        self.free.push(id.0, size);
    }

    /// The references held on `id` (for tests and assertions).
    pub fn ref_count(&self, id: StrId) -> u32 {
        self.refs(id.0)
    }

    /// The arena's capacity in bytes (written or not).
    pub fn arena_capacity(&self) -> usize {
        self.arena.capacity()
    }

    /// Distinct strings stored.
    pub fn len(&self) -> usize {
        self.strings
    }

    /// Whether no string is stored.
    pub fn is_empty(&self) -> bool {
        self.strings == 0
    }

    /// Sizes and counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            strings: self.strings,
            used_bytes: self.used_bytes,
            heap_bytes: self.heap_bytes,
            free_bytes: self.free.units(),
            arena_bytes: self.arena.len(),
            allocated_bytes: self.arena.capacity()
                + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
                + self.free.overhead_bytes(),
            fallback_strings: self.fallback_strings,
            fallback_bytes: self.fallback_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_id_is_four_bytes_on_every_target() {
        assert_eq!(std::mem::size_of::<StrId>(), 4);
    }

    #[test]
    fn equal_strings_share_one_block_and_count_references() {
        let mut store = StringStore::new(1 << 20, true);
        let a = store.intern("env:prod", true).unwrap();
        let b = store.intern(&String::from("env:prod"), true).unwrap();
        let c = store.intern("env:dev", true).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((store.get(a), store.get(c)), ("env:prod", "env:dev"));
        assert_eq!((store.len(), store.ref_count(a)), (2, 2));
        assert_eq!(store.find("env:dev"), Some(c));
        assert_eq!(store.find("env:test"), None);
        // 4 bytes of count, 1 of length, then the string.
        assert_eq!(store.stats().used_bytes, 5 + 8 + 5 + 7);
    }

    #[test]
    fn the_last_release_frees_the_block_for_reuse() {
        let mut store = StringStore::new(1 << 20, true);
        let a = store.intern("service:web", true).unwrap();
        store.retain(a);
        store.release(a);
        assert_eq!(store.get(a), "service:web");
        store.release(a);
        assert_eq!((store.len(), store.find("service:web")), (0, None));
        assert_eq!(store.stats().free_bytes, 16);
        // A string of the same size takes the freed block; the arena does not grow.
        let arena = store.stats().arena_bytes;
        let b = store.intern("service:api", true).unwrap();
        assert_eq!(b, a);
        assert_eq!(store.get(b), "service:api");
        assert_eq!((store.stats().arena_bytes, store.stats().free_bytes), (arena, 0));
    }

    #[test]
    fn a_larger_free_block_is_split_and_its_remainder_reused() {
        let mut store = StringStore::new(1 << 20, true);
        let long = store.intern(&"x".repeat(100), true).unwrap();
        store.release(long);
        let arena = store.stats().arena_bytes;
        let short = store.intern("abc", true).unwrap();
        assert_eq!(short, long, "the freed block's start");
        let rest = store.intern(&"y".repeat(80), true).unwrap();
        assert_eq!(store.stats().arena_bytes, arena, "both fit the freed block");
        assert_eq!(store.get(rest), "y".repeat(80));
        assert_eq!(store.get(short), "abc");
    }

    #[test]
    fn strings_past_the_interner_are_heap_fallbacks_or_refused() {
        let mut heap = StringStore::new(64, true);
        let ids: Vec<StrId> = (0..10)
            .map(|i| heap.intern(&format!("tag-{i:02}:{}", "v".repeat(20)), true).unwrap())
            .collect();
        let stats = heap.stats();
        // Blocks of 5 + 27 bytes: two fit in 64.
        assert_eq!((stats.strings, stats.fallback_strings), (10, 8));
        assert_eq!(stats.heap_bytes, 8 * 32);
        assert_eq!(stats.fallback_bytes, 8 * 27);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(heap.get(*id), format!("tag-{i:02}:{}", "v".repeat(20)));
        }
        let mut strict = StringStore::new(64, false);
        for i in 0..2 {
            strict.intern(&format!("tag-{i:02}:{}", "v".repeat(20)), true).unwrap();
        }
        assert_eq!(
            strict.intern("one-more-string-that-does-not-fit", true),
            Err(Refused::InternerFull)
        );
        // A known string still resolves.
        assert!(strict.intern(&format!("tag-00:{}", "v".repeat(20)), true).is_ok());
    }

    #[test]
    fn without_growth_only_freed_blocks_are_used() {
        let mut store = StringStore::new(32, true);
        let a = store.intern("0123456789", true).unwrap();
        assert!(store.stats().allocated_bytes >= 32);
        // The interner's spare capacity is not resident: writing it is growth.
        assert_eq!(store.intern("klmnopqrst", false), Err(Refused::NoGrowth));
        assert_eq!(store.stats().arena_bytes, 15);
        store.release(a);
        assert!(store.intern("klmnopqrst", false).is_ok(), "the freed block");
        assert_eq!(store.stats().arena_bytes, 15);
    }

    #[test]
    fn long_strings_and_multibyte_text_round_trip() {
        let mut store = StringStore::new(1024, true);
        let texts = ["", "é", &"ü".repeat(100), &"z".repeat(20_000), &"k".repeat(70_000)];
        let ids: Vec<StrId> = texts.iter().map(|t| store.intern(t, true).unwrap()).collect();
        for (id, text) in ids.iter().zip(texts) {
            assert_eq!(store.get(*id), text);
        }
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]

        /// Any sequence of interns and releases leaves the store agreeing with
        /// a map of reference counts: every live id reads back its string,
        /// released strings are gone, and the byte counts add up.
        #[test]
        fn property_test_the_store_agrees_with_a_reference_count_map(
            ops in proptest::collection::vec((0u8..3, 0usize..40, 0usize..300), 1..400),
        ) {
            let mut store = StringStore::new(2_000, true);
            let mut model: HashMap<String, (StrId, u32)> = HashMap::new();
            for (op, pick, len) in ops {
                let text = format!("{pick}:{}", "s".repeat(len % 300));
                match op {
                    0 | 1 => {
                        let id = store.intern(&text, true).unwrap();
                        let entry = model.entry(text.clone()).or_insert((id, 0));
                        prop_assert_eq!(entry.0, id);
                        entry.1 += 1;
                    }
                    _ => {
                        if let Some((id, refs)) = model.get_mut(&text) {
                            store.release(*id);
                            *refs -= 1;
                            if *refs == 0 {
                                model.remove(&text);
                            }
                        }
                    }
                }
            }
            prop_assert_eq!(store.len(), model.len());
            let mut used = 0;
            for (text, (id, refs)) in &model {
                prop_assert_eq!(store.get(*id), text.as_str());
                prop_assert_eq!(store.ref_count(*id), *refs);
                prop_assert_eq!(store.find(text), Some(*id));
                used += 4 + encode_len(text.len()).1 + text.len();
            }
            let stats = store.stats();
            prop_assert_eq!(stats.used_bytes, used);
            prop_assert_eq!(stats.used_bytes + stats.free_bytes, stats.arena_bytes);
        }
    }
}
