//! Free blocks of an arena by exact size, for [`crate::store`]: freed blocks
//! are reused before the arena grows, split when larger than needed, never
//! merged.

use std::collections::BTreeMap;

/// Free lists by exact size up to this many units, found through a bitmap.
const SMALL: usize = 256;

/// Size-class free lists of blocks (their offsets), sizes in the arena's
/// units (bytes, or `u32` words).
pub(crate) struct FreeLists {
    /// `small[s]`: free blocks of exactly `s` units, `s < SMALL`.
    small: Vec<Vec<u32>>,
    /// Bit `s` set when `small[s]` is not empty.
    nonempty: [u64; SMALL / 64],
    large: BTreeMap<u32, Vec<u32>>,
    /// The smallest block worth keeping when a larger one is split.
    min_block: usize,
    units: usize,
    blocks: usize,
}

impl FreeLists {
    pub(crate) fn new(min_block: usize) -> Self {
        Self {
            small: Vec::new(),
            nonempty: [0; SMALL / 64],
            large: BTreeMap::new(),
            min_block,
            units: 0,
            blocks: 0,
        }
    }

    /// Units in free blocks.
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    pub(crate) fn push(&mut self, offset: u32, size: usize) {
        self.units += size;
        self.blocks += 1;
        if size < SMALL {
            if self.small.is_empty() {
                self.small.resize_with(SMALL, Vec::new);
            }
            self.small[size].push(offset);
            self.nonempty[size / 64] |= 1 << (size % 64);
        } else {
            // Sizes fit u32: blocks live in a u32-addressed arena.
            self.large.entry(size as u32).or_default().push(offset);
        }
    }

    /// The offset of a free block of exactly `size` units, or of the smallest
    /// one that leaves a usable remainder (which goes back to the lists).
    pub(crate) fn take(&mut self, size: usize) -> Option<u32> {
        if self.blocks == 0 {
            return None;
        }
        let (offset, found) = self.take_at_least(size)?;
        self.units -= found;
        self.blocks -= 1;
        if found > size {
            // `take_at_least` only returns larger blocks with room for a remainder.
            self.push(offset + size as u32, found - size);
        }
        Some(offset)
    }

    fn take_at_least(&mut self, size: usize) -> Option<(u32, usize)> {
        if size < SMALL {
            if let Some(offset) = self.pop_small(size) {
                return Some((offset, size));
            }
            if let Some(found) = self.next_small(size + self.min_block) {
                return self.pop_small(found).map(|o| (o, found));
            }
        }
        let wanted = size.max(SMALL);
        let fits = |s: usize| s == size || s >= size + self.min_block;
        let s = self
            .large
            .range(wanted as u32..)
            .map(|(&s, _)| s as usize)
            .find(|&s| fits(s))?;
        let list = self.large.get_mut(&(s as u32))?;
        let offset = list.pop()?;
        if list.is_empty() {
            self.large.remove(&(s as u32));
        }
        Some((offset, s))
    }

    fn pop_small(&mut self, size: usize) -> Option<u32> {
        let list = self.small.get_mut(size)?;
        let offset = list.pop()?;
        if list.is_empty() {
            self.nonempty[size / 64] &= !(1 << (size % 64));
        }
        Some(offset)
    }

    /// The smallest size `>= from` with a free block, below `SMALL`.
    fn next_small(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        if word >= self.nonempty.len() {
            return None;
        }
        let mut bits = self.nonempty[word] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            bits = *self.nonempty.get(word)?;
        }
    }

    /// Memory held by the lists themselves, in bytes (about: each free block's
    /// offset, the small lists' headers, a B-tree entry per large size).
    pub(crate) fn overhead_bytes(&self) -> usize {
        self.blocks * 4 + self.small.capacity() * std::mem::size_of::<Vec<u32>>() + self.large.len() * 48
    }
}
