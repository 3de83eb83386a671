//! A least-recently-used map from metric name to mapping outcome, the
//! counterpart of the `hashicorp/golang-lru` cache the Agent's mapper keeps:
//! a lookup refreshes an entry, an insert beyond the capacity evicts the
//! entry used longest ago, inserting an existing key replaces its value.
//!
//! Entries live in a slab linked by indices (no per-node allocation beyond
//! the key), so it has no `unsafe` and the same layout on 32- and 64-bit.
//! Keys are hashed with XXH3 (already in the build for context keys) rather
//! than SipHash: every metric message of a mapped source looks its name (up
//! to 200 bytes) up here; on `bench_codec` with every name cached that was
//! about 5 % faster, within the shared machine's noise.

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Entry<V> {
    key: Arc<str>,
    value: V,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

/// A bounded LRU map with string keys.
#[derive(Debug)]
pub(crate) struct Lru<V> {
    index: HashMap<Arc<str>, usize, Xxh3DefaultBuilder>,
    entries: Vec<Entry<V>>,
    /// Most recently used.
    head: usize,
    /// Least recently used (evicted first).
    tail: usize,
    capacity: usize,
}

impl<V: Clone> Lru<V> {
    /// An empty cache holding at most `capacity` (≥ 1) entries; memory grows
    /// with use, not up front.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            index: HashMap::default(),
            entries: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        let i = *self.index.get(key)?;
        self.touch(i);
        Some(self.entries[i].value.clone())
    }

    /// Inserts or replaces `key`, evicting the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: &str, value: V) {
        if let Some(&i) = self.index.get(key) {
            self.entries[i].value = value;
            self.touch(i);
            return;
        }
        let key: Arc<str> = Arc::from(key);
        let i = if self.entries.len() < self.capacity {
            self.entries.push(Entry {
                key: key.clone(),
                value,
                prev: NIL,
                next: NIL,
            });
            self.entries.len() - 1
        } else {
            // Reuse the least recently used slot.
            let i = self.tail;
            self.unlink(i);
            let old = std::mem::replace(&mut self.entries[i].key, key.clone());
            self.index.remove(&old);
            self.entries[i].value = value;
            i
        };
        self.index.insert(key, i);
        self.push_front(i);
    }

    fn touch(&mut self, i: usize) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.entries[i].prev, self.entries[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next].prev = prev;
        }
        self.entries[i].prev = NIL;
        self.entries[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.entries[i].prev = NIL;
        self.entries[i].next = self.head;
        if self.head != NIL {
            self.entries[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Keys from most to least recently used (tests).
    #[cfg(test)]
    fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = self.head;
        while i != NIL {
            out.push(self.entries[i].key.to_string());
            i = self.entries[i].next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An LRU of `capacity` entries after inserting a = 1, then b = 2.
    fn a_then_b(capacity: usize) -> Lru<u32> {
        let mut lru = Lru::new(capacity);
        lru.insert("a", 1);
        lru.insert("b", 2);
        lru
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut lru = a_then_b(2);
        assert_eq!(lru.get("a"), Some(1)); // a is now the most recent
        lru.insert("c", 3); // evicts b
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("c"), Some(3));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn inserting_an_existing_key_replaces_and_refreshes_it() {
        let mut lru = a_then_b(2);
        lru.insert("a", 10);
        lru.insert("c", 3); // evicts b, not the refreshed a
        assert_eq!(lru.get("a"), Some(10));
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn a_capacity_of_one_keeps_the_last_key() {
        let mut lru = a_then_b(1);
        assert_eq!(lru.get("a"), None);
        assert_eq!(lru.get("b"), Some(2));
        assert_eq!(lru.keys(), vec!["b"]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Get(u8),
        Insert(u8, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12).prop_map(Op::Get),
            (0u8..12, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        ]
    }

    proptest! {
        #[test]
        fn property_test_lru_matches_a_naive_model(capacity in 1usize..6, ops in proptest::collection::vec(op(), 0..200)) {
            // The model: a vector ordered from most to least recently used.
            let mut model: Vec<(String, u32)> = Vec::new();
            let mut lru = Lru::new(capacity);
            for op in ops {
                match op {
                    Op::Get(k) => {
                        let key = k.to_string();
                        let expected = model.iter().position(|(mk, _)| *mk == key).map(|pos| {
                            let entry = model.remove(pos);
                            let v = entry.1;
                            model.insert(0, entry);
                            v
                        });
                        prop_assert_eq!(lru.get(&key), expected);
                    }
                    Op::Insert(k, v) => {
                        let key = k.to_string();
                        if let Some(pos) = model.iter().position(|(mk, _)| *mk == key) {
                            model.remove(pos);
                        } else if model.len() == capacity {
                            model.pop();
                        }
                        model.insert(0, (key.clone(), v));
                        lru.insert(&key, v);
                    }
                }
                let keys: Vec<String> = model.iter().map(|(k, _)| k.clone()).collect();
                prop_assert_eq!(lru.keys(), keys);
                prop_assert_eq!(lru.len(), model.len());
                prop_assert_eq!(lru.index.len(), model.len());
            }
        }
    }
}
