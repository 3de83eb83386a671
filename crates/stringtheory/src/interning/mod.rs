//! A string interner with a fixed byte budget.
//!
//! Metric names and tags repeat endlessly: a DogStatsD source sees the same few
//! thousand strings millions of times. [`FixedSizeInterner`] stores each distinct
//! string once, in one arena allocated up front, and hands out cheap
//! [`InternedString`] handles to it. The arena never grows: when it is full,
//! [`FixedSizeInterner::try_intern`] returns `None` and the caller falls back to an
//! owned string, so memory stays bounded no matter what clients send.
//!
//! # Layout
//!
//! The arena is tiled by *blocks*. Every block starts with an entry header
//! followed by `capacity` bytes:
//!
//! ```text
//! | refs | len+cap | bytes … (padded) | refs | len+cap | bytes … | free block … |
//! ```
//!
//! - `refs` is the entry's reference count; `0` marks a free block.
//! - `len` is the string's length and `capacity` the bytes reserved after the
//!   header (`len` rounded up to the header's alignment, plus any sliver too small
//!   to become a free block of its own). Walking the arena from offset 0 by
//!   `header + capacity` visits every block, live or free.
//!
//! On 64-bit targets `len` and `capacity` are packed into one `usize`, 32 bits
//! each. On 32-bit targets they are two `u32` fields. The seed system packed them
//! into one `usize` everywhere, which on 32-bit left 16 bits per field: any
//! string longer than 65,535 bytes overflowed into the other field and the entry
//! walk went astray, corrupting neighbouring entries. Here a value that does not
//! fit its field is rejected (`try_intern` returns `None`) before anything is
//! written, and the arena is clamped so every block's capacity fits.
//!
//! # Reclaiming
//!
//! Dropping the last [`InternedString`] for an entry frees its block, which is
//! merged with free neighbours, so the budget can be reused by later strings.
//! Free blocks are found best-fit (smallest that fits) and split when the
//! remainder can hold a header.
//!
//! # Concurrency
//!
//! The interner is a shared handle (`Clone`, `Send`, `Sync`). Lookups,
//! allocation and freeing take one mutex; reading an `InternedString` takes no
//! lock, and cloning or dropping a handle that is not the last one is a single
//! atomic operation. The last drop of an entry takes the lock, so that the
//! `1 → 0` transition (free) and the `0 → 1` transition (interned again) are
//! serialised with each other.
//!
//! # Missing
//!
//! - The deduplication index is a `std` `HashSet` (SipHash) of entry pointers
//!   outside the arena: about one and a half words per live entry on top of the
//!   byte budget. Free blocks are tracked in two `BTree` collections, also
//!   outside the arena.
//! - No sharding: every intern and every last drop contends on one mutex.
//!
//! # Modules
//!
//! This file holds the interner ([`FixedSizeInterner`]) and the core it
//! shares with its handles; `header.rs` the entry header (the only code that
//! differs between 32- and 64-bit targets), `arena.rs` the unsafe arena and
//! its free-block bookkeeping, `handle.rs` the [`InternedString`] handle.

mod arena;
mod handle;
mod header;

use std::fmt;
use std::num::NonZeroUsize;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arena::{entry_str, Arena, IndexKey, State};
pub use handle::InternedString;
use handle::{increment_refs, shared_ptr};
use header::{round_up_to_block, EntryHeader, LenCap, BLOCK_ALIGN, HEADER_SIZE, MAX_ARENA_BYTES};

/// The interner's shared core. Every `FixedSizeInterner` holds an `Arc` to it, and
/// every live entry owns one more strong count (taken when the entry is created,
/// returned when it is freed), so that handles keep the arena alive without
/// touching the `Arc` count on every clone and drop.
struct Shared {
    arena: Arena,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock with the state half-updated
        // in a way later callers could not cope with; recover from poisoning.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops one reference that may be the last one and frees the entry if it
    /// was. Returns whether it did; the caller then owes the entry's strong count
    /// back to the `Arc<Shared>` (which it must return after this borrow ends).
    #[must_use]
    fn release_last(&self, header: NonNull<EntryHeader>) -> bool {
        let mut state = self.lock();
        // SAFETY: the caller owns one of the entry's references, so it is live.
        let refs = unsafe { &(*header.as_ptr()).refs };
        // Under the lock no other thread can revive the entry (0 → 1), so reaching
        // zero here means no handle remains.
        if refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        let offset = self.arena.offset_of(header);
        // SAFETY: the entry is still live in the index (we hold the lock), and no
        // handle remains to observe it being freed.
        let (text, cap) = unsafe { (entry_str(header), (*header.as_ptr()).lencap.cap()) };
        let removed = state.index.remove(text);
        debug_assert!(removed, "a live entry is indexed");
        let size = HEADER_SIZE + cap;
        state.used_bytes -= size;
        // SAFETY: the entry has no handles and left the index above.
        unsafe { state.release(&self.arena, offset, size) };
        true
    }
}

/// A string interner backed by one fixed-size arena.
///
/// Cloning gives another handle to the same interner. See the
/// [module documentation](self) for the layout and reclaiming.
#[derive(Clone)]
pub struct FixedSizeInterner {
    shared: Arc<Shared>,
}

impl FixedSizeInterner {
    /// Creates an interner and allocates its arena of `capacity_bytes` up front.
    ///
    /// The usable capacity is `capacity_bytes` rounded down to the header
    /// alignment and, on 64-bit targets, clamped to 4 GiB (the largest block the
    /// header can describe); [`capacity_bytes`](Self::capacity_bytes) reports it.
    /// Every entry costs a header (16 bytes on 64-bit targets, 12 on 32-bit)
    /// plus its length rounded up to a multiple of the word size.
    pub fn new(capacity_bytes: NonZeroUsize) -> Self {
        let requested = capacity_bytes.get().min(MAX_ARENA_BYTES);
        let size = requested - requested % BLOCK_ALIGN;
        let size = if size < HEADER_SIZE { 0 } else { size };
        let arena = Arena::new(size);
        let mut state = State::default();
        if size != 0 {
            // SAFETY: a new arena holds no entries, and nothing else can see it yet.
            unsafe { state.insert_free(&arena, 0, size) };
        }
        Self {
            shared: Arc::new(Shared {
                arena,
                state: Mutex::new(state),
            }),
        }
    }

    /// Interns `s`, returning a handle to the one stored copy of it.
    ///
    /// Interning an equal string again returns a handle to the same storage.
    /// Returns `None` when no free block is large enough for it (the arena is
    /// full or fragmented) or when its length does not fit the entry header;
    /// nothing is modified in that case.
    pub fn try_intern(&self, s: &str) -> Option<InternedString> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if let Some(key) = state.index.get(s) {
            let header = key.0;
            // SAFETY: entries in the index are live, so the header is initialised.
            let refs = unsafe { &(*header.as_ptr()).refs };
            // Entries leave the index in the same critical section in which their
            // count reaches zero, so it is at least one here.
            increment_refs(refs);
            return Some(InternedString {
                shared: shared_ptr(Arc::as_ptr(shared)),
                header,
            });
        }

        let len = s.len();
        let needed = HEADER_SIZE.checked_add(round_up_to_block(len)?)?;
        // Reject a length the header cannot describe before touching the arena.
        LenCap::new(len, needed - HEADER_SIZE)?;
        let (offset, size) = state.allocate(&shared.arena, needed)?;
        let Some(lencap) = LenCap::new(len, size - HEADER_SIZE) else {
            // SAFETY: the block was just taken from the free set and not published.
            unsafe { state.release(&shared.arena, offset, size) };
            return None;
        };
        // SAFETY: we hold the mutex, and the block was free until `allocate` above.
        unsafe { shared.arena.write_header(offset, 1, lencap) };
        let header = shared.arena.header_ptr(offset);
        // SAFETY: the block spans `size >= HEADER_SIZE + len` bytes inside the
        // arena; it was free, so nothing else reads or writes these bytes.
        unsafe {
            let dst = header.cast::<u8>().add(HEADER_SIZE);
            ptr::copy_nonoverlapping(s.as_ptr(), dst.as_ptr(), len);
        }
        state.index.insert(IndexKey(header));
        state.used_bytes += size;
        // The new entry owns a strong count until it is freed (see `Shared`).
        let shared = shared_ptr(Arc::into_raw(Arc::clone(shared)));
        Some(InternedString { shared, header })
    }

    /// The number of live (distinct) interned strings.
    pub fn len(&self) -> usize {
        self.shared.lock().index.len()
    }

    /// Whether no string is interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arena size in bytes: the budget for headers and string bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.shared.arena.size
    }

    /// Bytes of the arena held by live entries, headers and padding included.
    pub fn used_bytes(&self) -> usize {
        self.shared.lock().used_bytes
    }

    /// Walks the arena block by block and checks it against the bookkeeping.
    #[cfg(test)]
    fn walk(&self) -> Result<WalkSummary, String> {
        let shared = &self.shared;
        let state = shared.lock();
        let mut summary = WalkSummary::default();
        let mut offset = 0;
        let mut previous_free = false;
        while offset < shared.arena.size {
            if shared.arena.size - offset < HEADER_SIZE {
                return Err(format!("block at {offset} overruns the arena"));
            }
            let header = shared.arena.header_ptr(offset);
            // SAFETY: `offset` is a block boundary (we walk from 0 by block sizes).
            let (refs, lencap) = unsafe {
                (
                    (*header.as_ptr()).refs.load(Ordering::Acquire),
                    (*header.as_ptr()).lencap,
                )
            };
            let size = HEADER_SIZE + lencap.cap();
            if size > shared.arena.size - offset || lencap.len() > lencap.cap() {
                return Err(format!(
                    "block at {offset} has len {} cap {}",
                    lencap.len(),
                    lencap.cap()
                ));
            }
            if refs == 0 {
                if previous_free {
                    return Err(format!("free block at {offset} was not merged with its predecessor"));
                }
                if state.free_by_offset.get(&offset) != Some(&size) || !state.free_by_size.contains(&(size, offset)) {
                    return Err(format!(
                        "free block at {offset} of {size} bytes is not in the free lists"
                    ));
                }
                summary.free_blocks += 1;
                summary.largest_free_block = summary.largest_free_block.max(size);
                previous_free = true;
            } else {
                // SAFETY: the entry is live (refs > 0) and we hold the lock.
                let text = unsafe { entry_str(header) };
                if state.index.get(text).map(|key| key.0) != Some(header) {
                    return Err(format!("live entry at {offset} is not indexed"));
                }
                summary.live_entries += 1;
                summary.live_bytes += size;
                previous_free = false;
            }
            offset += size;
        }
        if offset != shared.arena.size {
            return Err(format!("walk ended at {offset}, arena is {} bytes", shared.arena.size));
        }
        if summary.live_entries != state.index.len()
            || summary.free_blocks != state.free_by_offset.len()
            || summary.free_blocks != state.free_by_size.len()
            || summary.live_bytes != state.used_bytes
        {
            return Err(format!(
                "walk found {summary:?}, bookkeeping has {} entries, {} free blocks, {} used bytes",
                state.index.len(),
                state.free_by_offset.len(),
                state.used_bytes
            ));
        }
        Ok(summary)
    }
}

impl fmt::Debug for FixedSizeInterner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("FixedSizeInterner")
            .field("entries", &state.index.len())
            .field("used_bytes", &state.used_bytes)
            .field("capacity_bytes", &self.shared.arena.size)
            .finish()
    }
}

/// What [`FixedSizeInterner::walk`] found.
#[cfg(test)]
#[derive(Debug, Default, PartialEq, Eq)]
struct WalkSummary {
    live_entries: usize,
    live_bytes: usize,
    free_blocks: usize,
    largest_free_block: usize,
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Barrier;
    use std::thread;

    use proptest::prelude::*;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn interner(capacity_bytes: usize) -> FixedSizeInterner {
        FixedSizeInterner::new(NonZeroUsize::new(capacity_bytes).expect("test capacities are non-zero"))
    }

    /// The arena bytes an entry of `len` bytes occupies when no sliver is absorbed.
    fn block_size(len: usize) -> usize {
        HEADER_SIZE + round_up_to_block(len).expect("test lengths do not overflow")
    }

    /// The longest string that fits a block of `size` bytes.
    fn len_for_block(size: usize) -> usize {
        size - HEADER_SIZE
    }

    /// A `len`-byte ASCII string whose content depends on `seed`, so that two
    /// large strings differ throughout and a misplaced byte is detected.
    fn big_string(len: usize, seed: u8) -> String {
        let pattern: Vec<u8> = (0..=250u8)
            .map(|i| b'!' + (i.wrapping_mul(7).wrapping_add(seed) % 94))
            .collect();
        let bytes: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
        String::from_utf8(bytes).expect("printable ASCII")
    }

    fn walk_ok(interner: &FixedSizeInterner) -> WalkSummary {
        interner.walk().unwrap_or_else(|e| panic!("arena walk failed: {e}"))
    }

    fn header_addr(s: &InternedString) -> usize {
        s.header.as_ptr().addr()
    }

    #[test]
    fn interner_and_handles_are_send_sync_and_clone() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<FixedSizeInterner>();
        assert_send_sync_clone::<InternedString>();
        assert_eq!(size_of::<InternedString>(), 2 * size_of::<usize>());
    }

    #[test]
    fn interning_an_equal_string_twice_shares_one_entry() {
        let interner = interner(4096);
        let a = interner.try_intern("dogstatsd.packets").expect("fits");
        let b = interner.try_intern(&String::from("dogstatsd.packets")).expect("fits");
        assert!(InternedString::ptr_eq(&a, &b));
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(&*a, "dogstatsd.packets");
        assert_eq!(interner.len(), 1);
        assert_eq!(interner.used_bytes(), block_size("dogstatsd.packets".len()));
        let c = interner.try_intern("dogstatsd.bytes").expect("fits");
        assert!(!InternedString::ptr_eq(&a, &c));
        assert_eq!(interner.len(), 2);
        walk_ok(&interner);
    }

    #[test]
    fn dropping_the_last_handle_frees_the_entry() {
        let interner = interner(4096);
        let a = interner.try_intern("env:prod").expect("fits");
        let b = a.clone();
        let c = interner.try_intern("env:prod").expect("fits");
        drop(a);
        drop(c);
        assert_eq!(interner.len(), 1);
        assert_eq!(&*b, "env:prod");
        drop(b);
        assert_eq!(interner.len(), 0);
        assert!(interner.is_empty());
        assert_eq!(interner.used_bytes(), 0);
        let summary = walk_ok(&interner);
        assert_eq!(summary.free_blocks, 1);
        assert_eq!(summary.largest_free_block, interner.capacity_bytes());
    }

    #[test]
    fn returns_none_when_full_and_leaves_the_arena_unchanged() {
        let interner = interner(3 * block_size(8));
        let held: Vec<_> = ["aaaaaaaa", "bbbbbbbb", "cccccccc"]
            .iter()
            .map(|s| interner.try_intern(s).expect("fits"))
            .collect();
        assert_eq!(interner.used_bytes(), interner.capacity_bytes());
        assert!(interner.try_intern("dddddddd").is_none());
        assert!(interner.try_intern("").is_none(), "even an empty string needs a header");
        // An already interned string is still found when the arena is full.
        let again = interner.try_intern("bbbbbbbb").expect("deduplicated");
        assert!(InternedString::ptr_eq(&again, &held[1]));
        assert_eq!(interner.len(), 3);
        let contents: Vec<&str> = held.iter().map(|h| h.as_str()).collect();
        assert_eq!(contents, ["aaaaaaaa", "bbbbbbbb", "cccccccc"]);
        walk_ok(&interner);
        // Freeing one makes room for another of the same size.
        drop(again);
        drop(held.into_iter().nth(1));
        assert_eq!(&*interner.try_intern("dddddddd").expect("reclaimed"), "dddddddd");
    }

    #[test]
    fn a_string_larger_than_the_arena_is_rejected() {
        let interner = interner(1024);
        assert!(interner.try_intern(&big_string(1024, 1)).is_none());
        assert!(interner.try_intern(&big_string(len_for_block(1024) + 1, 1)).is_none());
        assert_eq!(interner.used_bytes(), 0);
        let exact = interner
            .try_intern(&big_string(len_for_block(1024), 1))
            .expect("fills the arena exactly");
        assert_eq!(exact.len(), len_for_block(1024));
        assert_eq!(interner.used_bytes(), 1024);
        walk_ok(&interner);
    }

    #[test]
    fn the_empty_string_is_interned_as_a_header_only_entry() {
        let interner = interner(1024);
        let empty = interner.try_intern("").expect("fits");
        assert_eq!(&*empty, "");
        assert_eq!(interner.used_bytes(), HEADER_SIZE);
        assert!(InternedString::ptr_eq(&empty, &interner.try_intern("").expect("fits")));
        walk_ok(&interner);
    }

    #[test]
    fn capacity_is_rounded_down_to_the_header_alignment() {
        assert_eq!(interner(4 * HEADER_SIZE + 1).capacity_bytes(), 4 * HEADER_SIZE);
        assert_eq!(
            interner(4 * HEADER_SIZE + BLOCK_ALIGN - 1).capacity_bytes(),
            4 * HEADER_SIZE
        );
        let tiny = interner(HEADER_SIZE - 1);
        assert_eq!(tiny.capacity_bytes(), 0);
        assert!(tiny.try_intern("").is_none());
        assert_eq!(walk_ok(&tiny), WalkSummary::default());
    }

    #[test]
    fn freed_neighbours_are_coalesced_so_a_larger_string_fits_again() {
        let block = block_size(32);
        let interner = interner(4 * block);
        let strings: Vec<String> = (0..4).map(|i| big_string(32, i)).collect();
        let mut held: Vec<Option<InternedString>> = strings
            .iter()
            .map(|s| Some(interner.try_intern(s).expect("fits")))
            .collect();
        assert!(interner.try_intern("x").is_none());

        // Free the two middle blocks: merged, they hold one string of two blocks.
        held[1] = None;
        held[2] = None;
        let summary = walk_ok(&interner);
        assert_eq!((summary.free_blocks, summary.largest_free_block), (1, 2 * block));
        let double = interner
            .try_intern(&big_string(len_for_block(2 * block), 9))
            .expect("coalesced");
        assert_eq!(
            header_addr(&double) - header_addr(held[0].as_ref().expect("held")),
            block
        );
        assert_eq!(held[3].as_deref(), Some(strings[3].as_str()));

        // Free everything: one free block spanning the arena.
        drop(double);
        held.clear();
        let summary = walk_ok(&interner);
        assert_eq!((summary.free_blocks, summary.largest_free_block), (1, 4 * block));
        let whole = interner
            .try_intern(&big_string(len_for_block(4 * block), 3))
            .expect("whole arena");
        assert_eq!(interner.used_bytes(), interner.capacity_bytes());
        drop(whole);
        assert_eq!(interner.used_bytes(), 0);
    }

    #[test]
    fn a_remainder_too_small_for_a_header_stays_with_the_entry() {
        let len = 40;
        // One alignment unit more than the entry needs: too small to be a free block.
        const { assert!(BLOCK_ALIGN < HEADER_SIZE) };
        let interner = interner(block_size(len) + BLOCK_ALIGN);
        let entry = interner.try_intern(&big_string(len, 0)).expect("fits");
        assert_eq!(interner.used_bytes(), interner.capacity_bytes());
        assert_eq!(walk_ok(&interner).free_blocks, 0);
        drop(entry);
        assert_eq!(interner.used_bytes(), 0);
        assert_eq!(walk_ok(&interner).largest_free_block, interner.capacity_bytes());
    }

    #[test]
    fn allocation_is_best_fit() {
        let small = block_size(16);
        let large = block_size(64);
        let interner = interner(small + large + 2 * block_size(8));
        let a = interner.try_intern(&big_string(64, 1)).expect("fits");
        let sep1 = interner.try_intern("sep1").expect("fits");
        let b = interner.try_intern(&big_string(16, 2)).expect("fits");
        let sep2 = interner.try_intern("sep2").expect("fits");
        let b_addr = header_addr(&b);
        drop(a);
        drop(b);
        // The 16-byte hole is the smallest that fits a 10-byte string.
        let c = interner.try_intern("0123456789").expect("fits");
        assert_eq!(header_addr(&c), b_addr);
        assert_eq!((&*sep1, &*sep2), ("sep1", "sep2"));
        walk_ok(&interner);
    }

    #[test]
    fn handles_outlive_the_interner() {
        let handle = {
            let interner = interner(1024);
            let handle = interner.try_intern("host:a").expect("fits");
            let clone = interner.clone();
            drop(interner);
            assert_eq!(clone.len(), 1);
            handle
        };
        assert_eq!(&*handle, "host:a");
        assert_eq!(handle.clone(), handle);
    }

    // Regression tests for the seed system's 32-bit interner bug: the entry header
    // packed length and capacity into one usize, 16 bits each on 32-bit targets,
    // so any string over 65,535 bytes corrupted the header and the entry walk.

    #[test]
    fn regression_32bit_header_overflow_this_targets_header_holds_multi_mib_entries() {
        for len in [usize::from(u16::MAX) + 1, 3 * MIB, 5 * MIB, 16 * MIB] {
            let cap = round_up_to_block(len).expect("small");
            let lencap = LenCap::new(len, cap).expect("the target's header holds multi-MiB values");
            assert_eq!((lencap.len(), lencap.cap()), (len, cap));
        }
        if cfg!(target_pointer_width = "64") {
            let over = usize::try_from(u64::from(u32::MAX) + 1).expect("64-bit");
            assert!(LenCap::new(over, over).is_none());
        }
    }

    #[test]
    fn regression_32bit_header_overflow_multi_mib_strings_keep_their_neighbours_intact() {
        let interner = interner(16 * MIB);
        let before = interner.try_intern("before").expect("fits");
        let three = big_string(3 * MIB, 3);
        let five = big_string(5 * MIB, 5);
        let three_mib = interner.try_intern(&three).expect("fits");
        let five_mib = interner.try_intern(&five).expect("fits");
        let after = interner.try_intern("after").expect("fits");

        assert_eq!(&*before, "before");
        assert_eq!(three_mib.as_str(), three);
        assert_eq!(five_mib.as_str(), five);
        assert_eq!(&*after, "after");
        let expected_used = block_size(6) + block_size(3 * MIB) + block_size(5 * MIB) + block_size(5);
        assert_eq!(interner.used_bytes(), expected_used);
        let summary = walk_ok(&interner);
        assert_eq!((summary.live_entries, summary.live_bytes), (4, expected_used));
        assert!(InternedString::ptr_eq(
            &interner.try_intern(&five).expect("dedup"),
            &five_mib
        ));

        // Free the 3 MiB entry and reuse its hole for 2 MiB and 512 KiB strings.
        let hole = header_addr(&three_mib);
        drop(three_mib);
        walk_ok(&interner);
        let two = big_string(2 * MIB, 2);
        let two_mib = interner.try_intern(&two).expect("fits");
        assert_eq!(header_addr(&two_mib), hole, "best fit reuses the freed 3 MiB block");
        // What is left of the hole (1 MiB) holds a 512 KiB string.
        let half = big_string(MIB / 2, 1);
        let half_mib = interner.try_intern(&half).expect("fits");
        assert_eq!(header_addr(&half_mib), hole + block_size(2 * MIB));
        assert!(header_addr(&half_mib) < header_addr(&five_mib));
        walk_ok(&interner);
        assert_eq!((&*before, &*after), ("before", "after"));
        assert_eq!(five_mib.as_str(), five);
        assert_eq!(two_mib.as_str(), two);
        assert_eq!(half_mib.as_str(), half);

        // Everything freed: the walk sees one block, and it is usable whole.
        drop((before, after, five_mib, two_mib, half_mib));
        assert_eq!(interner.used_bytes(), 0);
        let summary = walk_ok(&interner);
        assert_eq!((summary.free_blocks, summary.largest_free_block), (1, 16 * MIB));
        let whole = big_string(len_for_block(16 * MIB), 7);
        assert_eq!(interner.try_intern(&whole).expect("whole arena").as_str(), whole);
    }

    #[test]
    fn concurrent_interning_and_dropping_of_overlapping_sets_keeps_the_arena_consistent() {
        const THREADS: usize = 4;
        const ITERATIONS: usize = 400;
        let words: Vec<String> = (0..48)
            .map(|i| format!("tag{i}:{}", big_string(i % 40, i as u8)))
            .collect();
        let interner = interner(64 * 1024);
        let barrier = Barrier::new(THREADS);
        let survivors: Vec<Vec<(InternedString, String)>> = thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (interner, words, barrier) = (interner.clone(), &words, &barrier);
                    scope.spawn(move || {
                        let mut window: VecDeque<(InternedString, String)> = VecDeque::new();
                        barrier.wait();
                        for i in 0..ITERATIONS {
                            // Threads walk the shared words at different strides, so
                            // they intern, clone and free the same entries concurrently.
                            let word = &words[(i * (t + 1) + t) % words.len()];
                            let handle = interner.try_intern(word).expect("the arena holds every word");
                            assert_eq!(handle.as_str(), word);
                            if i % 3 == 0 {
                                window.push_back((handle.clone(), word.clone()));
                            }
                            window.push_back((handle, word.clone()));
                            while window.len() > 8 {
                                let (old, text) = window.pop_front().expect("non-empty");
                                assert_eq!(old.as_str(), text);
                            }
                        }
                        window.into_iter().collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker panicked"))
                .collect()
        });
        for (handle, text) in survivors.iter().flatten() {
            assert_eq!(handle.as_str(), text);
        }
        let live: std::collections::HashSet<&str> = survivors.iter().flatten().map(|(_, t)| t.as_str()).collect();
        assert_eq!(interner.len(), live.len());
        assert_eq!(walk_ok(&interner).live_entries, live.len());
        drop(survivors);
        assert_eq!((interner.len(), interner.used_bytes()), (0, 0));
        assert_eq!(walk_ok(&interner).free_blocks, 1);
    }

    #[test]
    fn concurrent_last_drops_and_reinterning_of_one_entry_race_safely() {
        const THREADS: usize = 4;
        let interner = interner(1024);
        let barrier = Barrier::new(THREADS);
        thread::scope(|scope| {
            for t in 0..THREADS {
                let (interner, barrier) = (interner.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..500 {
                        // Every iteration may free the entry (1 → 0) while another
                        // thread interns it again (0 → 1).
                        let word = if (i + t) % 2 == 0 { "service:web" } else { "service:db" };
                        let handle = interner.try_intern(word).expect("fits");
                        assert_eq!(&*handle, word);
                        let clone = handle.clone();
                        drop(handle);
                        assert_eq!(&*clone, word);
                    }
                });
            }
        });
        assert_eq!((interner.len(), interner.used_bytes()), (0, 0));
        walk_ok(&interner);
    }

    #[test]
    fn a_full_interner_under_contention_never_exceeds_its_budget() {
        const THREADS: usize = 4;
        let interner = interner(16 * block_size(24));
        let barrier = Barrier::new(THREADS);
        thread::scope(|scope| {
            for t in 0..THREADS {
                let (interner, barrier) = (interner.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let mut held = Vec::new();
                    for i in 0..300usize {
                        let word = big_string(8 + (i * 7 + t) % 17, u8::try_from((i + t) % 61).expect("small"));
                        if let Some(handle) = interner.try_intern(&word) {
                            assert_eq!(handle.as_str(), word);
                            held.push(handle);
                        }
                        assert!(interner.used_bytes() <= interner.capacity_bytes());
                        if held.len() > 5 {
                            held.swap_remove(i % held.len());
                        }
                    }
                    // Hand the remaining handles to another thread to drop.
                    thread::spawn(move || drop(held)).join().expect("dropper panicked");
                });
            }
        });
        assert_eq!((interner.len(), interner.used_bytes()), (0, 0));
        assert_eq!(walk_ok(&interner).largest_free_block, interner.capacity_bytes());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Intern(usize),
        Clone(usize),
        Drop(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<usize>().prop_map(Op::Intern),
            1 => any::<usize>().prop_map(Op::Clone),
            2 => any::<usize>().prop_map(Op::Drop),
        ]
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]

        #[test]
        fn property_test_interner_matches_a_refcount_model(
            capacity in 1usize..2048,
            pool in prop::collection::vec("[a-z0-9:._é]{0,48}", 1..16),
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let interner = interner(capacity);
            let mut model: HashMap<String, usize> = HashMap::new();
            let mut handles: Vec<(InternedString, String)> = Vec::new();
            for op in ops {
                match op {
                    Op::Intern(i) => {
                        let text = &pool[i % pool.len()];
                        let before = walk_ok(&interner);
                        let needed = block_size(text.len());
                        match interner.try_intern(text) {
                            Some(handle) => {
                                prop_assert_eq!(handle.as_str(), text.as_str());
                                if let Some((existing, _)) = handles.iter().find(|(_, t)| t == text) {
                                    prop_assert!(InternedString::ptr_eq(existing, &handle));
                                    prop_assert_eq!(interner.used_bytes(), before.live_bytes);
                                } else {
                                    prop_assert!(!model.contains_key(text));
                                    let grown = interner.used_bytes() - before.live_bytes;
                                    prop_assert!(grown >= needed && grown < needed + HEADER_SIZE);
                                }
                                *model.entry(text.clone()).or_default() += 1;
                                handles.push((handle, text.clone()));
                            }
                            None => {
                                // Only a new string can fail, and only if no free block fits it.
                                prop_assert!(!model.contains_key(text));
                                prop_assert!(before.largest_free_block < needed);
                            }
                        }
                    }
                    Op::Clone(i) if !handles.is_empty() => {
                        let (handle, text) = &handles[i % handles.len()];
                        let pair = (handle.clone(), text.clone());
                        *model.get_mut(text).expect("modelled") += 1;
                        handles.push(pair);
                    }
                    Op::Drop(i) if !handles.is_empty() => {
                        let (handle, text) = handles.swap_remove(i % handles.len());
                        drop(handle);
                        let count = model.get_mut(&text).expect("modelled");
                        *count -= 1;
                        if *count == 0 {
                            model.remove(&text);
                        }
                    }
                    Op::Clone(_) | Op::Drop(_) => {}
                }
                for (handle, text) in &handles {
                    prop_assert_eq!(handle.as_str(), text.as_str());
                }
                prop_assert_eq!(interner.len(), model.len());
                prop_assert!(interner.used_bytes() <= interner.capacity_bytes());
                let minimum: usize = model.keys().map(|t| block_size(t.len())).sum();
                prop_assert!(interner.used_bytes() >= minimum);
                let summary = interner.walk().map_err(TestCaseError::fail)?;
                prop_assert_eq!(summary.live_entries, model.len());
            }
            handles.clear();
            prop_assert_eq!((interner.len(), interner.used_bytes()), (0, 0));
            let summary = walk_ok(&interner);
            prop_assert_eq!(summary.largest_free_block, interner.capacity_bytes());
        }
    }
}
