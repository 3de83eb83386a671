//! Strings for a metrics pipeline: [`StringStore`], every distinct string
//! once, named by a 4-byte [`StrId`], with [`IdLists`] to hold lists of those
//! ids (a context's name and tags) — the aggregator's context store;
//! and [`MetaString`], a three-word string that is empty, static, inline,
//! owned or shared behind one type.
//!
//! # Why this crate exists
//!
//! Saluki, the upstream Agent Data Plane, has a crate of the same name, but the
//! `stringtheory` published on crates.io refuses to compile for anything but
//! 64-bit targets (`compile_error!`), and this project must run on 32-bit ARMv7.
//! Lifting that guard is not enough: the seed system's port kept an interner entry
//! header that packed length and capacity into one `usize`, which on 32-bit ARM
//! leaves 16 bits each, so any string over 65,535 bytes corrupted its neighbour.
//! This crate is our own implementation for armv7 and x86_64. Every layout is
//! derived from `size_of::<usize>()`, and the store's ids and block headers
//! are `u32` and LEB128 lengths, the same on both (see [`store`]).
//!
//! # Performance notes
//!
//! - `MetaString` is three words (24 bytes on x86_64, 12 on armv7), the same as a
//!   `String`, and `Option<MetaString>` is no bigger. Strings of up to
//!   [`MetaString::INLINE_CAPACITY`] bytes (23 / 11) are stored inline: no
//!   allocation, and cloning is a copy.
//! - Cloning a static, inline or empty string copies three words. A shared
//!   (`Arc<str>`) string costs one atomic increment; an owned one allocates,
//!   so hot paths should convert to shared first.
//! - `as_str` is a branch on the tag byte.
#![deny(missing_docs)]

mod free;
pub mod lists;
pub mod store;

pub use lists::IdLists;
pub use store::{Refused, StoreStats, StrId, StringStore};

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::mem::{size_of, ManuallyDrop};
use std::num::NonZeroU8;
use std::ops::Deref;
use std::sync::Arc;
use std::{fmt, ptr, slice, str};

const WORD: usize = size_of::<usize>();

// The tag byte (the last byte of the three words). Zero is never a valid tag,
// which gives `Option<MetaString>` a niche.
const TAG_EMPTY: u8 = 1;
const TAG_STATIC: u8 = 2;
const TAG_OWNED: u8 = 3;
const TAG_SHARED: u8 = 4;
/// Inline strings store `TAG_INLINE | len` (len ≥ 1, at most 23 < 0x80).
const TAG_INLINE: u8 = 0x80;

const fn tag(value: u8) -> NonZeroU8 {
    match NonZeroU8::new(value) {
        Some(tag) => tag,
        None => panic!("tags are non-zero"),
    }
}

/// The first two words: a pointer-and-length pair, or the first inline bytes.
#[repr(C)]
union Head {
    inline: [u8; 2 * WORD],
    static_str: &'static str,
    owned: ManuallyDrop<Box<str>>,
    shared: ManuallyDrop<Arc<str>>,
}

const _: () = assert!(size_of::<Head>() == 2 * WORD);
const _: () = assert!(size_of::<&'static str>() == 2 * WORD);
const _: () = assert!(size_of::<Box<str>>() == 2 * WORD);
const _: () = assert!(size_of::<Arc<str>>() == 2 * WORD);
const _: () = assert!(size_of::<MetaString>() == 3 * WORD);
const _: () = assert!(MetaString::INLINE_CAPACITY < TAG_INLINE as usize);

/// A string in three machine words that is one of: empty, a `&'static str`, up to
/// [`INLINE_CAPACITY`](Self::INLINE_CAPACITY) bytes stored inline, an owned
/// `Box<str>` or a shared `Arc<str>`.
///
/// It compares, orders and hashes as its string content, whatever the variant,
/// and hashes exactly like a `str`, so a `HashMap<MetaString, _>` can be queried
/// with a `&str`.
///
/// ```
/// use stringtheory::MetaString;
///
/// const NAME: MetaString = MetaString::from_static("dogstatsd.packets");
/// let tag = MetaString::from("env:prod"); // short: stored inline
/// assert_eq!(NAME, "dogstatsd.packets");
/// assert_eq!(tag.as_str(), "env:prod");
/// ```
#[repr(C)]
pub struct MetaString {
    head: Head,
    /// Inline bytes after the first two words.
    tail: [u8; WORD - 1],
    tag: NonZeroU8,
}

impl MetaString {
    /// The longest string stored inline: three words minus the tag byte
    /// (23 bytes on 64-bit targets, 11 on 32-bit targets).
    pub const INLINE_CAPACITY: usize = size_of::<Self>() - 1;

    /// A string held in `head` alone (every variant but inline), tagged `t`.
    const fn in_head(head: Head, t: u8) -> Self {
        Self {
            head,
            tail: [0; WORD - 1],
            tag: tag(t),
        }
    }

    /// The empty string.
    pub const fn empty() -> Self {
        Self::in_head(Head { inline: [0; 2 * WORD] }, TAG_EMPTY)
    }

    /// Wraps a static string without copying it.
    pub const fn from_static(s: &'static str) -> Self {
        if s.is_empty() {
            return Self::empty();
        }
        Self::in_head(Head { static_str: s }, TAG_STATIC)
    }

    /// Stores `s` inline if it is at most [`INLINE_CAPACITY`](Self::INLINE_CAPACITY)
    /// bytes long; `None` otherwise.
    #[inline]
    pub fn try_inline(s: &str) -> Option<Self> {
        let len = s.len();
        if len == 0 {
            return Some(Self::empty());
        }
        if len > Self::INLINE_CAPACITY {
            return None;
        }
        let inline_tag = TAG_INLINE | u8::try_from(len).ok()?;
        let mut inline = Self {
            head: Head { inline: [0; 2 * WORD] },
            tail: [0; WORD - 1],
            tag: NonZeroU8::new(inline_tag)?,
        };
        // One copy across `head` and `tail` (half the cost of copying into each
        // array separately, measured).
        // SAFETY: `repr(C)` lays out `head` (2 words) and `tail` (1 word − 1) back
        // to back from offset 0, both plain byte arrays in this variant, and
        // `len <= INLINE_CAPACITY` is their combined size, so the copy stays
        // before `tag`; the source is a distinct `&str`.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), (&raw mut inline).cast::<u8>(), len) };
        Some(inline)
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self.tag.get() {
            TAG_EMPTY => "",
            // SAFETY: the tag says which union field was written.
            TAG_STATIC => unsafe { self.head.static_str },
            // SAFETY: as above.
            TAG_OWNED => unsafe { &self.head.owned },
            // SAFETY: as above.
            TAG_SHARED => unsafe { &self.head.shared },
            inline => {
                let len = usize::from(inline & !TAG_INLINE);
                let start = (self as *const Self).cast::<u8>();
                // SAFETY: `repr(C)` lays out `head` (2 words) and `tail` (1 word − 1)
                // back to back from offset 0; an inline string initialised both
                // arrays with the first `len <= INLINE_CAPACITY` bytes copied from
                // a `&str`, so they are in bounds, initialised and valid UTF-8.
                unsafe { str::from_utf8_unchecked(slice::from_raw_parts(start, len)) }
            }
        }
    }

    /// The length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the string is stored inline (not empty, static or on the heap).
    pub fn is_inline(&self) -> bool {
        self.tag.get() & TAG_INLINE != 0
    }

    fn from_owned(s: Box<str>) -> Self {
        Self::in_head(
            Head {
                owned: ManuallyDrop::new(s),
            },
            TAG_OWNED,
        )
    }
}

impl Drop for MetaString {
    #[inline]
    fn drop(&mut self) {
        match self.tag.get() {
            // SAFETY: the tag says which field was written; it is dropped once.
            TAG_OWNED => unsafe { ManuallyDrop::drop(&mut self.head.owned) },
            // SAFETY: as above.
            TAG_SHARED => unsafe { ManuallyDrop::drop(&mut self.head.shared) },
            _ => {}
        }
    }
}

impl Clone for MetaString {
    #[inline]
    fn clone(&self) -> Self {
        let head = match self.tag.get() {
            // SAFETY: the tag says which field was written.
            TAG_OWNED => Head {
                owned: unsafe { ManuallyDrop::new(Box::<str>::clone(&self.head.owned)) },
            },
            // SAFETY: as above.
            TAG_SHARED => Head {
                shared: unsafe { ManuallyDrop::new(Arc::clone(&self.head.shared)) },
            },
            // SAFETY: as above.
            TAG_STATIC => Head {
                static_str: unsafe { self.head.static_str },
            },
            // SAFETY: empty and inline strings always initialise `inline`.
            _ => Head {
                inline: unsafe { self.head.inline },
            },
        };
        Self {
            head,
            tail: self.tail,
            tag: self.tag,
        }
    }
}

impl Default for MetaString {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<&str> for MetaString {
    /// Inline if it fits, otherwise an owned copy.
    #[inline]
    fn from(s: &str) -> Self {
        Self::try_inline(s).unwrap_or_else(|| Self::from_owned(s.into()))
    }
}

impl From<&String> for MetaString {
    /// Inline if it fits, otherwise an owned copy.
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<String> for MetaString {
    /// Inline if it fits (freeing the `String`), otherwise takes its buffer.
    fn from(s: String) -> Self {
        Self::try_inline(&s).unwrap_or_else(|| Self::from_owned(s.into_boxed_str()))
    }
}

impl From<Box<str>> for MetaString {
    /// Inline if it fits, otherwise takes the box.
    fn from(s: Box<str>) -> Self {
        Self::try_inline(&s).unwrap_or_else(|| Self::from_owned(s))
    }
}

impl From<Arc<str>> for MetaString {
    /// Shares the `Arc` (cloning the result is an atomic increment).
    fn from(s: Arc<str>) -> Self {
        Self::in_head(
            Head {
                shared: ManuallyDrop::new(s),
            },
            TAG_SHARED,
        )
    }
}

impl Deref for MetaString {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MetaString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MetaString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for MetaString {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MetaString {}

impl PartialEq<str> for MetaString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MetaString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for MetaString {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<MetaString> for str {
    fn eq(&self, other: &MetaString) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<MetaString> for &str {
    fn eq(&self, other: &MetaString) -> bool {
        *self == other.as_str()
    }
}

impl PartialOrd for MetaString {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MetaString {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for MetaString {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for MetaString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MetaString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::collections::{HashMap, HashSet};
    use std::hash::BuildHasher;

    use proptest::prelude::*;

    use super::*;

    /// Property-test settings: 64 cases (quick under qemu-arm) unless
    /// `PROPTEST_CASES` asks for more.
    pub(crate) fn proptest_config() -> ProptestConfig {
        if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default()
        } else {
            ProptestConfig::with_cases(64)
        }
    }

    /// Longer than the inline capacity on every target.
    const LONG: &str = "dogstatsd.client.packets_dropped_total";

    /// The same text in every variant that can hold it.
    fn all_variants(text: &str) -> Vec<MetaString> {
        let mut variants = vec![
            MetaString::from(text),
            MetaString::from(text.to_owned()),
            MetaString::from(Box::<str>::from(text)),
            MetaString::from(Arc::<str>::from(text)),
            MetaString::from(MetaString::from_owned(text.into()).clone().as_str()),
        ];
        variants.extend(MetaString::try_inline(text));
        variants
    }

    #[test]
    fn meta_string_is_three_words_and_option_adds_nothing() {
        let word = size_of::<usize>();
        assert_eq!(size_of::<MetaString>(), 3 * word);
        assert_eq!(size_of::<Option<MetaString>>(), 3 * word);
        assert_eq!(std::mem::align_of::<MetaString>(), std::mem::align_of::<usize>());
    }

    #[test]
    fn inline_capacity_is_three_words_minus_the_tag_byte() {
        assert_eq!(MetaString::INLINE_CAPACITY, 3 * size_of::<usize>() - 1);
        assert!(LONG.len() > MetaString::INLINE_CAPACITY);
    }

    #[test]
    fn meta_string_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MetaString>();
    }

    #[test]
    fn strings_up_to_the_inline_capacity_are_stored_inline() {
        for len in 0..=MetaString::INLINE_CAPACITY + 2 {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + u8::try_from(i % 26).expect("small")))
                .collect();
            let inline = MetaString::try_inline(&text);
            assert_eq!(inline.is_some(), len <= MetaString::INLINE_CAPACITY, "len {len}");
            if let Some(inline) = inline {
                assert_eq!(inline.as_str(), text);
                assert_eq!(inline.len(), len);
            }
            let converted = MetaString::from(text.as_str());
            assert_eq!(converted.as_str(), text);
            assert_eq!(
                converted.is_inline(),
                (1..=MetaString::INLINE_CAPACITY).contains(&len),
                "len {len}"
            );
            assert_eq!(converted.is_empty(), len == 0);
        }
    }

    #[test]
    fn multibyte_utf8_fills_the_inline_capacity() {
        // Two-byte characters up to the capacity, padded with one ASCII byte if odd.
        let mut text = "é".repeat(MetaString::INLINE_CAPACITY / 2);
        if text.len() < MetaString::INLINE_CAPACITY {
            text.push('a');
        }
        assert_eq!(text.len(), MetaString::INLINE_CAPACITY);
        let inline = MetaString::try_inline(&text).expect("fits exactly");
        assert_eq!(inline.as_str(), text);
        text.push('é');
        assert!(MetaString::try_inline(&text).is_none());
        let owned = MetaString::from(text.as_str());
        assert!(!owned.is_inline());
        assert_eq!(owned, text);
    }

    #[test]
    fn every_variant_compares_hashes_and_orders_by_content() {
        let hasher = RandomState::new();
        for text in ["", "env:prod", LONG] {
            let variants = all_variants(text);
            for v in &variants {
                assert_eq!(v.as_str(), text);
                assert_eq!(v, &variants[0]);
                assert_eq!(v.cmp(&variants[0]), std::cmp::Ordering::Equal);
                assert_eq!(hasher.hash_one(v), hasher.hash_one(text));
                assert_eq!(format!("{v}"), text);
                assert_eq!(format!("{v:?}"), format!("{text:?}"));
            }
        }
        let statics = [
            MetaString::from_static(""),
            MetaString::from_static("env:prod"),
            MetaString::from_static(LONG),
        ];
        assert_eq!(statics[1], "env:prod");
        assert_eq!(statics[2], LONG);
        assert!(statics[0] < statics[1] && statics[2] < statics[1], "orders like str");
    }

    #[test]
    fn constructors_pick_the_documented_variant() {
        assert_eq!(MetaString::empty().tag.get(), TAG_EMPTY);
        assert_eq!(MetaString::default().tag.get(), TAG_EMPTY);
        assert_eq!(MetaString::from_static("").tag.get(), TAG_EMPTY);
        assert_eq!(MetaString::from("").tag.get(), TAG_EMPTY);
        assert_eq!(MetaString::from_static("env:prod").tag.get(), TAG_STATIC);
        assert!(MetaString::from("env:prod").is_inline());
        assert!(MetaString::from(String::from("env:prod")).is_inline());
        assert_eq!(MetaString::from(LONG).tag.get(), TAG_OWNED);
        assert_eq!(MetaString::from(LONG.to_owned()).tag.get(), TAG_OWNED);
        assert_eq!(MetaString::from(Arc::<str>::from("env:prod")).tag.get(), TAG_SHARED);
    }

    #[test]
    fn from_static_is_usable_in_constants() {
        const NAME: MetaString = MetaString::from_static(LONG);
        const EMPTY: MetaString = MetaString::empty();
        assert_eq!(NAME.as_str(), LONG);
        assert_eq!(NAME.as_str().as_ptr(), LONG.as_ptr(), "no copy");
        assert!(EMPTY.is_empty());
    }

    #[test]
    fn clones_outlive_the_original_for_every_variant() {
        for text in ["", "env:prod", LONG] {
            for original in all_variants(text) {
                let clone = original.clone();
                drop(original);
                assert_eq!(clone.as_str(), text);
                assert_eq!(clone.clone(), clone);
            }
        }
    }

    #[test]
    fn shared_clones_share_the_allocation() {
        let shared = MetaString::from(Arc::<str>::from(LONG));
        assert_eq!(shared.clone().as_ptr(), shared.as_ptr());
        let owned = MetaString::from(LONG);
        assert_ne!(owned.clone().as_ptr(), owned.as_ptr(), "owned strings are deep-copied");
    }

    #[test]
    fn a_hash_map_of_meta_strings_is_queryable_by_str() {
        let mut map = HashMap::new();
        map.insert(MetaString::from(LONG), 1);
        map.insert(MetaString::from("env:prod"), 2);
        map.insert(MetaString::from(Arc::<str>::from("host:a")), 3);
        assert_eq!(map.get(LONG), Some(&1));
        assert_eq!(map.get("env:prod"), Some(&2));
        assert_eq!(map.get("host:a"), Some(&3));
        assert_eq!(map.get("host:b"), None);
        let set: HashSet<MetaString> = all_variants("env:prod").into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn meta_strings_of_every_variant_are_cloned_and_dropped_across_threads() {
        let texts = ["", "env:prod", LONG];
        let originals: Vec<MetaString> = texts.iter().flat_map(|t| all_variants(t)).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let mine = originals.clone();
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    for round in 0..200 {
                        let copies = mine.clone();
                        for (copy, original) in copies.iter().zip(&mine) {
                            assert_eq!(copy, original);
                        }
                        // Keep some rounds' copies a while, so that drops interleave
                        // with other threads' clones instead of following them.
                        if round % 3 == 0 {
                            kept.push(copies);
                        }
                        if kept.len() > 4 {
                            kept.remove(0);
                        }
                    }
                });
            }
        });
        let expected: Vec<MetaString> = texts.iter().flat_map(|t| all_variants(t)).collect();
        assert_eq!(originals, expected, "the originals outlive every thread's clones");
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn property_test_every_constructor_round_trips_and_orders_like_str(a in "\\PC{0,40}", b in "\\PC{0,40}") {
                let hasher = RandomState::new();
            let va = all_variants(&a);
            let vb = all_variants(&b);
            prop_assert_eq!(MetaString::try_inline(&a).is_some(), a.len() <= MetaString::INLINE_CAPACITY);
            for x in &va {
                prop_assert_eq!(x.as_str(), a.as_str());
                prop_assert_eq!(x.len(), a.len());
                prop_assert_eq!(hasher.hash_one(x), hasher.hash_one(a.as_str()));
                for y in &vb {
                    prop_assert_eq!(x.cmp(y), a.cmp(&b));
                    prop_assert_eq!(x == y, a == b);
                }
            }
        }
    }
}
