//! [`IdLists`]: short lists of `u32` ids (a context's name and tags as
//! [`StrId`](crate::StrId)s) in one arena, each named by its 4-byte offset.
//!
//! A list is stored as its length followed by its ids, so a list of `n` ids
//! costs `4 × (n + 1)` bytes. Removed lists' blocks are reused as
//! [`StringStore`](crate::StringStore)'s are: by exact size first, split
//! when larger, never merged.

use crate::free::FreeLists;

/// Lists of `u32` in one arena; see the [module documentation](self).
pub struct IdLists {
    words: Vec<u32>,
    free: FreeLists,
    used_words: usize,
    lists: usize,
}

impl Default for IdLists {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for IdLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdLists")
            .field("lists", &self.lists)
            .field("used_words", &self.used_words)
            .field("free_words", &self.free.units())
            .finish()
    }
}

impl IdLists {
    /// An empty arena.
    pub fn new() -> Self {
        Self {
            words: Vec::new(),
            free: FreeLists::new(1),
            used_words: 0,
            lists: 0,
        }
    }

    /// Stores `ids` and returns the list's offset; `None` when `grow` is
    /// false and no freed block can hold it (the arena is not extended, not
    /// even into spare capacity, which is not resident until written), or
    /// when the arena would pass 2^32 words.
    pub fn push(&mut self, ids: &[u32], grow: bool) -> Option<u32> {
        let size = ids.len().checked_add(1)?;
        let len = u32::try_from(ids.len()).ok()?;
        let offset = match self.free.take(size) {
            Some(offset) => offset as usize,
            None => {
                let offset = self.words.len();
                let end = offset.checked_add(size).filter(|&e| e <= u32::MAX as usize)?;
                // Spare capacity is not resident until written: growth too.
                if !grow {
                    return None;
                }
                self.words.resize(end, 0);
                offset
            }
        };
        self.words[offset] = len;
        self.words[offset + 1..offset + size].copy_from_slice(ids);
        self.used_words += size;
        self.lists += 1;
        u32::try_from(offset).ok()
    }

    /// The list at `offset`.
    #[inline]
    pub fn get(&self, offset: u32) -> &[u32] {
        let at = offset as usize;
        let len = self.words[at] as usize;
        &self.words[at + 1..at + 1 + len]
    }

    /// Removes the list at `offset`; its block is reused by later lists.
    pub fn remove(&mut self, offset: u32) {
        let size = self.words[offset as usize] as usize + 1;
        self.used_words -= size;
        self.lists -= 1;
        self.free.push(offset, size);
    }

    /// The number of lists stored.
    pub fn len(&self) -> usize {
        self.lists
    }

    /// Whether no list is stored.
    pub fn is_empty(&self) -> bool {
        self.lists == 0
    }

    /// Bytes of lists in use (lengths and ids).
    pub fn used_bytes(&self) -> usize {
        self.used_words * 4
    }

    /// Bytes of the arena written so far, lists and free blocks: what is
    /// resident of it.
    pub fn arena_bytes(&self) -> usize {
        self.words.len() * 4
    }

    /// Heap memory held: the arena's capacity and the free lists.
    pub fn allocated_bytes(&self) -> usize {
        self.words.capacity() * 4 + self.free.overhead_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lists_read_back_and_freed_blocks_are_reused() {
        let mut lists = IdLists::new();
        let a = lists.push(&[7, 8, 9], true).unwrap();
        let b = lists.push(&[], true).unwrap();
        assert_eq!((lists.get(a), lists.get(b)), (&[7, 8, 9][..], &[][..]));
        assert_eq!((lists.len(), lists.used_bytes()), (2, 4 * 5));
        lists.remove(a);
        let c = lists.push(&[1, 2, 3], false).unwrap();
        assert_eq!(c, a, "the freed block");
        assert_eq!(lists.get(c), [1, 2, 3]);
        assert_eq!(lists.push(&[4], false), None, "no growth, not even into spare capacity");
        assert_eq!(lists.arena_bytes(), 4 * 5);
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]

        #[test]
        fn property_test_lists_survive_any_push_and_remove_order(
            ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u32>(), 0..40)), 1..200),
        ) {
            let mut lists = IdLists::new();
            let mut model: HashMap<u32, Vec<u32>> = HashMap::new();
            let mut order: Vec<u32> = Vec::new();
            for (remove, ids) in ops {
                if remove && !order.is_empty() {
                    let at = order.remove(ids.len() % order.len());
                    lists.remove(at);
                    model.remove(&at);
                } else {
                    let at = lists.push(&ids, true).unwrap();
                    prop_assert!(model.insert(at, ids).is_none(), "offset {} handed out twice", at);
                    order.push(at);
                }
                for (at, ids) in &model {
                    prop_assert_eq!(lists.get(*at), ids.as_slice());
                }
            }
            prop_assert_eq!(lists.len(), model.len());
            prop_assert_eq!(lists.used_bytes(), model.values().map(|v| 4 * (v.len() + 1)).sum::<usize>());
        }
    }
}
