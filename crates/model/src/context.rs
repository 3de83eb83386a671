//! A metric's identity: its [`context_key`], and [`Context`], an owned name
//! and tags with their key (what a flush into [`Flushed`](crate::Flushed)
//! and sources that build series themselves carry; the aggregator's own
//! contexts live in its store).
//!
//! # The key
//!
//! Every tag is hashed on its own (XXH3-64). Duplicate tags are dropped by
//! hash, the remaining tag hashes are *summed* (wrapping), and the sum is mixed
//! with the name's hash and the number of distinct tags. Addition commutes, so
//! the key does not depend on tag order; dropping duplicates first makes
//! `#a,a` and `#a` the same context. No sort and no allocation happen here,
//! which is what every DogStatsD message with a known context pays.
//!
//! The key is trusted as the identity, as the Datadog Agent trusts its context
//! keys: two different contexts colliding needs about 2^32 live contexts for
//! an even chance, far above `aggregate_context_limit`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use stringtheory::MetaString;
use xxhash_rust::xxh3::xxh3_64;

/// A metric's identity: its name and its tag set.
///
/// Tags are sorted and deduplicated when the context is resolved, so two
/// packets with the same tags in a different order, or with a repeated tag,
/// resolve to the same context. Cloning is an `Arc` clone.
#[derive(Clone)]
pub struct Context(Arc<ContextInner>);

struct ContextInner {
    key: u64,
    name: MetaString,
    tags: Box<[MetaString]>,
}

impl Context {
    /// Builds a context from a name and tags that are already sorted and
    /// deduplicated, with `key` their [`context_key`].
    pub fn from_parts(key: u64, name: MetaString, tags: Box<[MetaString]>) -> Self {
        debug_assert!(
            tags.windows(2).all(|w| w[0] < w[1]),
            "context tags must be sorted and unique"
        );
        Self(Arc::new(ContextInner { key, name, tags }))
    }

    /// The order-independent 64-bit key (not `usize`: identical on armv7 and x86_64).
    pub fn key(&self) -> u64 {
        self.0.key
    }

    /// The metric name.
    pub fn name(&self) -> &MetaString {
        &self.0.name
    }

    /// The tags, sorted and unique.
    pub fn tags(&self) -> &[MetaString] {
        &self.0.tags
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.key == other.0.key && self.0.name == other.0.name && self.0.tags == other.0.tags)
    }
}
impl Eq for Context {}

impl Hash for Context {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.key);
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &&*self.0.name)
            .field("tags", &self.0.tags)
            .finish()
    }
}

/// The context key of `name` and `tags` (order-independent, duplicates ignored).
///
/// The DogStatsD decoder computes it once per message
/// ([`MetricBatch::add_context`](crate::MetricBatch::add_context)) and the
/// aggregator finds the context's state by it; every [`Context`] carries it.
pub fn context_key<'a>(name: &str, tags: impl IntoIterator<Item = &'a str>) -> u64 {
    let (sum, count) = tag_hash_sum(tags);
    mix_key(xxh3_64(name.as_bytes()), sum, count)
}

/// The wrapping sum of the hashes of the distinct tags, and their number.
#[inline]
fn tag_hash_sum<'a>(tags: impl IntoIterator<Item = &'a str>) -> (u64, u64) {
    // Duplicate detection without sorting or allocating for up to 64 distinct
    // tags: a 1024-bit filter says "certainly new" for most tags; only on a
    // filter hit are the earlier hashes scanned. Past 64 the quadratic scan
    // would let one message of a few thousand tags cost milliseconds (a 8 KiB
    // datagram holds 2,000 short tags), so the rest goes through a sort.
    let mut filter = [0u64; 16];
    let mut seen: [u64; 64] = [0; 64];
    let mut n: usize = 0;
    let mut sum = 0u64;
    let mut tags = tags.into_iter();
    for tag in tags.by_ref() {
        let h = xxh3_64(tag.as_bytes());
        let bit = h >> 54; // top 10 bits: 0..1024
        let (word, mask) = ((bit >> 6) as usize, 1u64 << (bit & 63));
        let slot = &mut filter[word & 15];
        if *slot & mask != 0 && seen[..n].contains(&h) {
            continue;
        }
        if n == seen.len() {
            return many_tags_hash_sum(&seen, h, tags);
        }
        *slot |= mask;
        seen[n] = h;
        n += 1;
        sum = sum.wrapping_add(h);
    }
    (sum, n as u64)
}

/// [`tag_hash_sum`] past 64 distinct tags: `seen` (distinct), the 65th
/// distinct hash `next`, and the remaining tags, deduplicated by sorting
/// (O(n log n) whatever the input).
#[cold]
fn many_tags_hash_sum<'a>(seen: &[u64], next: u64, rest: impl Iterator<Item = &'a str>) -> (u64, u64) {
    let mut hashes: Vec<u64> = seen.to_vec();
    hashes.push(next);
    hashes.extend(rest.map(|t| xxh3_64(t.as_bytes())));
    hashes.sort_unstable();
    hashes.dedup();
    let sum = hashes.iter().fold(0u64, |acc, h| acc.wrapping_add(*h));
    (sum, hashes.len() as u64)
}

#[inline]
fn mix_key(name_hash: u64, tag_sum: u64, count: u64) -> u64 {
    // murmur3's fmix64 over the tag sum, so that sums differing in few bits
    // still spread over the whole key before meeting the name hash.
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    fmix(name_hash ^ fmix(tag_sum.wrapping_add(count.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn duplicates_beyond_the_inline_hash_buffer_are_removed() {
        let tags: Vec<String> = (0..100).map(|i| format!("tag{i}")).collect();
        let mut doubled: Vec<&str> = tags.iter().map(String::as_str).collect();
        doubled.extend(tags.iter().rev().map(String::as_str));
        assert_eq!(
            context_key("m", doubled.iter().copied()),
            context_key("m", tags.iter().map(String::as_str))
        );
    }

    /// The sum over distinct hashes, the obvious way.
    fn reference_tag_hash_sum(tags: &[&str]) -> (u64, u64) {
        let distinct: std::collections::BTreeSet<u64> = tags.iter().map(|t| xxh3_64(t.as_bytes())).collect();
        (
            distinct.iter().fold(0, |a, h| a.wrapping_add(*h)),
            distinct.len() as u64,
        )
    }

    #[test]
    fn ten_thousand_tags_hash_with_duplicates_removed() {
        // Past 64 distinct tags the duplicates are found by sorting rather
        // than by a quadratic scan (40 ms per key for 10,000 tags before, in
        // release on x86_64; 0.2 ms after); the key must not change.
        let tags: Vec<String> = (0..10_000).map(|i| format!("t{i:05}")).collect();
        let distinct: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut doubled: Vec<&str> = distinct.iter().rev().copied().collect();
        doubled.extend(distinct.iter().step_by(3).copied());
        assert_eq!(
            tag_hash_sum(distinct.iter().copied()),
            reference_tag_hash_sum(&distinct)
        );
        assert_eq!(tag_hash_sum(doubled.iter().copied()), reference_tag_hash_sum(&distinct));
        assert_eq!(
            context_key("m", distinct.iter().copied()),
            context_key("m", doubled.iter().copied())
        );
    }

    #[test]
    fn names_and_tag_sets_distinguish_keys() {
        let base = context_key("m", ["a"]);
        assert_ne!(base, context_key("n", ["a"]));
        assert_ne!(base, context_key("m", ["b"]));
        assert_ne!(base, context_key("m", ["a", "b"]));
        assert_ne!(base, context_key("m", []));
        // A tag may not migrate into the name.
        assert_ne!(context_key("ma", []), context_key("m", ["a"]));
    }

    #[test]
    fn keys_are_fixed_across_platforms() {
        // XXH3 is specified bit for bit; this pins the key so armv7 and x86_64
        // agree (the test runs on both).
        let k = context_key("my.metric", ["env:prod", "service:web"]);
        assert_eq!(k, context_key("my.metric", ["service:web", "env:prod"]));
        assert_eq!(k, 0x7191_d860_8879_ba69, "pinned key: {k:#018x}");
        assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    }

    proptest! {
        #[test]
        fn property_test_tag_hash_sum_matches_the_reference(
            tags in proptest::collection::vec("[a-d]{1,3}", 0..300),
        ) {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            prop_assert_eq!(tag_hash_sum(tags.iter().copied()), reference_tag_hash_sum(&tags));
        }

        #[test]
        fn property_test_key_ignores_order_and_duplicates(
            name in "[a-z.]{1,20}",
            tags in proptest::collection::vec("[a-z0-9:]{1,10}", 0..80),
            seed in any::<u64>(),
        ) {
            let mut shuffled: Vec<&str> = tags.iter().map(String::as_str).collect();
            // Deterministic shuffle plus duplicates.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let extra: Vec<&str> = shuffled.iter().step_by(3).copied().collect();
            shuffled.extend(extra);
            let mut unique: Vec<&str> = tags.iter().map(String::as_str).collect();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(context_key(&name, shuffled.iter().copied()), context_key(&name, unique.iter().copied()));
        }
    }
}
