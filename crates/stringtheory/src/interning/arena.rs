//! The unsafe core: one allocation tiled by blocks ([`Arena`]), the
//! bookkeeping of its free blocks and live entries ([`State`], kept under the
//! interner's mutex), and reading an entry's string ([`entry_str`]).
//!
//! Every `unsafe` block here states the invariant it relies on; the
//! interner's `walk` test helper checks the arena against the bookkeeping
//! after every operation of the property test.

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::{slice, str};

use super::header::{EntryHeader, LenCap, BLOCK_ALIGN, HEADER_SIZE};

/// The arena's memory: one allocation, aligned for headers, freed on drop.
pub(super) struct Arena {
    base: NonNull<u8>,
    /// The allocation's size in bytes (0: no allocation).
    pub(super) size: usize,
}

// SAFETY: `Arena` uniquely owns its allocation, like a `Box<[u8]>`. Shared
// access from several threads is disciplined by `Shared`: block headers and
// free space are only written under the state mutex, a live entry's length and
// bytes are written once before the entry is published (under the mutex) and
// never again while a handle exists, and reference counts are atomics.
unsafe impl Send for Arena {}
// SAFETY: see `Send` above.
unsafe impl Sync for Arena {}

impl Arena {
    pub(super) fn new(size: usize) -> Self {
        if size == 0 {
            return Self {
                base: NonNull::<EntryHeader>::dangling().cast(),
                size,
            };
        }
        let layout = Self::layout(size);
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { alloc::alloc(layout) };
        let Some(base) = NonNull::new(base) else {
            alloc::handle_alloc_error(layout)
        };
        Self { base, size }
    }

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, BLOCK_ALIGN).expect("arena size is clamped to MAX_ARENA_BYTES")
    }

    /// A pointer to the header of a block starting at `offset`. Dereferencing it
    /// is only valid at a block boundary whose header has been written.
    pub(super) fn header_ptr(&self, offset: usize) -> NonNull<EntryHeader> {
        // A compare per call; it keeps this function sound on its own.
        assert!(
            offset % BLOCK_ALIGN == 0 && offset <= self.size.saturating_sub(HEADER_SIZE),
            "block offset {offset} is outside the arena"
        );
        // SAFETY: `offset + HEADER_SIZE <= size` (checked above), so the result is
        // in bounds of the allocation; it is aligned because `base` and `offset` are.
        unsafe { self.base.add(offset).cast() }
    }

    pub(super) fn offset_of(&self, header: NonNull<EntryHeader>) -> usize {
        header.as_ptr().addr() - self.base.as_ptr().addr()
    }

    /// Writes a block header at `offset`.
    ///
    /// # Safety
    ///
    /// The caller holds the state mutex, and the bytes at `offset` are not part of
    /// a live entry (no handle or index key refers to them).
    pub(super) unsafe fn write_header(&self, offset: usize, refs: usize, lencap: LenCap) {
        let header = self.header_ptr(offset);
        // SAFETY: in bounds and aligned (see `header_ptr`); per the contract no
        // other thread reads these bytes and no reference to them exists.
        unsafe {
            header.as_ptr().write(EntryHeader {
                refs: AtomicUsize::new(refs),
                lencap,
            })
        };
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.size != 0 {
            // SAFETY: allocated in `new` with exactly this layout.
            unsafe { alloc::dealloc(self.base.as_ptr(), Self::layout(self.size)) };
        }
    }
}

/// Reads the string of a live entry.
///
/// # Safety
///
/// `header` must point to the header of a live entry (reference count above
/// zero, held by the caller for the lifetime `'a`) in an arena that outlives `'a`.
pub(super) unsafe fn entry_str<'a>(header: NonNull<EntryHeader>) -> &'a str {
    // SAFETY: per the contract the header is initialised and immutable while
    // the entry is live, and the `len` bytes after it were copied from a `&str`.
    unsafe {
        let len = (*header.as_ptr()).lencap.len();
        let bytes = header.cast::<u8>().add(HEADER_SIZE);
        str::from_utf8_unchecked(slice::from_raw_parts(bytes.as_ptr(), len))
    }
}

/// A key in the deduplication index: the string of a live entry, hashed and
/// compared by content so that lookups can use a plain `&str`.
pub(super) struct IndexKey(pub(super) NonNull<EntryHeader>);

// SAFETY: the pointer refers into the arena owned by the same `Shared`; it is
// only dereferenced under the state mutex, while the entry is live.
unsafe impl Send for IndexKey {}

impl IndexKey {
    fn as_str(&self) -> &str {
        // SAFETY: an entry is in the index exactly while it is live, the index is
        // only used under the state mutex, and the arena outlives the index.
        unsafe { entry_str(self.0) }
    }
}

impl Borrow<str> for IndexKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for IndexKey {}

/// Everything that changes under the mutex.
#[derive(Default)]
pub(super) struct State {
    /// Live entries, found by content.
    pub(super) index: HashSet<IndexKey>,
    /// Free blocks: offset → size (header included).
    pub(super) free_by_offset: BTreeMap<usize, usize>,
    /// Free blocks: (size, offset), for best-fit allocation.
    pub(super) free_by_size: BTreeSet<(usize, usize)>,
    /// Bytes in live blocks, headers included.
    pub(super) used_bytes: usize,
}

impl State {
    /// Records `offset..offset + size` as one free block and writes its header.
    ///
    /// # Safety
    ///
    /// The range lies in `arena` and holds no live entry, and `self` is the
    /// arena's state (so its mutex is held).
    pub(super) unsafe fn insert_free(&mut self, arena: &Arena, offset: usize, size: usize) {
        let cap = size - HEADER_SIZE;
        let lencap = LenCap::new(0, cap).expect("arena size is clamped so every block capacity fits");
        // SAFETY: per this function's contract.
        unsafe { arena.write_header(offset, 0, lencap) };
        self.free_by_offset.insert(offset, size);
        self.free_by_size.insert((size, offset));
    }

    fn remove_free(&mut self, offset: usize, size: usize) {
        self.free_by_offset.remove(&offset);
        self.free_by_size.remove(&(size, offset));
    }

    /// Takes a free block of at least `size` bytes, splitting off the rest when it
    /// can hold a header. Returns the block's offset and actual size.
    pub(super) fn allocate(&mut self, arena: &Arena, size: usize) -> Option<(usize, usize)> {
        let &(block_size, offset) = self.free_by_size.range((size, 0)..).next()?;
        self.remove_free(offset, block_size);
        let rest = block_size - size;
        if rest >= HEADER_SIZE {
            // SAFETY: the remainder is the tail of a block that was free.
            unsafe { self.insert_free(arena, offset + size, rest) };
            Some((offset, size))
        } else {
            Some((offset, block_size))
        }
    }

    /// Returns a block to the free set, merging it with free neighbours.
    ///
    /// # Safety
    ///
    /// As for [`State::insert_free`]: the block holds no live entry (any entry in
    /// it has been removed from the index and has no handles).
    pub(super) unsafe fn release(&mut self, arena: &Arena, mut offset: usize, mut size: usize) {
        if let Some(&next_size) = self.free_by_offset.get(&(offset + size)) {
            self.remove_free(offset + size, next_size);
            size += next_size;
        }
        if let Some((&prev, &prev_size)) = self.free_by_offset.range(..offset).next_back() {
            if prev + prev_size == offset {
                self.remove_free(prev, prev_size);
                offset = prev;
                size += prev_size;
            }
        }
        // SAFETY: the block and its merged neighbours are all free (contract, and
        // the free lists only hold free blocks).
        unsafe { self.insert_free(arena, offset, size) };
    }
}
