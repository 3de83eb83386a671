//! [`InternedString`], the handle to an interned string: two words, a
//! lock-free clone and read, and a last drop that frees the entry's block.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::arena::entry_str;
use super::header::EntryHeader;
use super::Shared;

/// The pointer a handle keeps, from `Arc::as_ptr` or `Arc::into_raw` (so that it
/// can be given back with `Arc::decrement_strong_count`).
pub(super) fn shared_ptr(ptr: *const Shared) -> NonNull<Shared> {
    NonNull::new(ptr.cast_mut()).expect("Arc pointers are never null")
}

pub(super) fn increment_refs(refs: &AtomicUsize) {
    // Relaxed is enough for an increment from a live count (as in `Arc::clone`).
    let old = refs.fetch_add(1, Ordering::Relaxed);
    // Like `Arc`, abort rather than let a leaked-handle loop wrap the count.
    if old > isize::MAX.unsigned_abs() {
        std::process::abort();
    }
}

/// A handle to a string stored in a [`FixedSizeInterner`](super::FixedSizeInterner).
///
/// Two words: the interner and the entry. Cloning bumps the entry's reference
/// count (one atomic increment); dropping the last handle frees the entry's block
/// for reuse. A handle keeps the interner's arena alive, even after every
/// `FixedSizeInterner` is dropped.
pub struct InternedString {
    /// Kept alive by the strong count that the live entry owns. A raw pointer
    /// rather than an `Arc`: clones need not touch the `Arc` count, and the type
    /// shows no interior mutability, so it is a clean `HashMap` key (clippy's
    /// `mutable_key_type` looks through `Arc` but not through pointers).
    pub(super) shared: NonNull<Shared>,
    pub(super) header: NonNull<EntryHeader>,
}

// SAFETY: the entry behind `header` is immutable while this handle keeps it
// live (its count is atomic), and `Shared` is `Send + Sync` (a mutex and an
// arena disciplined by it); a handle can be used and dropped from any thread,
// like an `Arc<str>`.
unsafe impl Send for InternedString {}
// SAFETY: see `Send` above; `&InternedString` only reads immutable bytes.
unsafe impl Sync for InternedString {}

impl InternedString {
    /// The interned string.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: this handle holds a reference to the entry, and the entry's
        // strong count keeps the arena alive for at least the borrow of `self`.
        unsafe { entry_str(self.header) }
    }

    /// Whether two handles refer to the same stored copy.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.header == other.header
    }
}

impl Clone for InternedString {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: `self` keeps the entry live.
        increment_refs(unsafe { &(*self.header.as_ptr()).refs });
        Self {
            shared: self.shared,
            header: self.header,
        }
    }
}

impl Drop for InternedString {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` keeps the entry live until the decrement below.
        let refs = unsafe { &(*self.header.as_ptr()).refs };
        let mut current = refs.load(Ordering::Relaxed);
        // Fast path: not the last handle, so the count cannot reach zero here.
        // Release orders our reads of the bytes before a later free.
        while current > 1 {
            match refs.compare_exchange_weak(current, current - 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
        // SAFETY: the entry is live until `release_last` frees it, and it owns a
        // strong count of `Shared`, so the pointer is valid for this call.
        let freed = unsafe { self.shared.as_ref() }.release_last(self.header);
        if freed {
            // SAFETY: the freed entry's strong count (taken with `Arc::into_raw` in
            // `try_intern`) is returned exactly once, after the borrow above ended;
            // this may deallocate `Shared` if no interner or entry remains.
            unsafe { Arc::decrement_strong_count(self.shared.as_ptr()) };
        }
    }
}

impl Deref for InternedString {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for InternedString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for InternedString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for InternedString {
    fn eq(&self, other: &Self) -> bool {
        Self::ptr_eq(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for InternedString {}

impl Hash for InternedString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for InternedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InternedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}
