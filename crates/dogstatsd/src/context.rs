//! Context resolution: a metric name plus a tag set become a shared
//! [`Context`], its strings interned under a fixed byte budget.
//!
//! # The key
//!
//! The cache is keyed by [`context_key`] (`adp-model`): order-independent,
//! duplicates ignored, computed without sorting or allocating. A known
//! context costs that hash and one lookup; only a new one sorts its tags and
//! interns its strings.
//!
//! # Budgets
//!
//! - Names and tags longer than [`MetaString::INLINE_CAPACITY`] are interned in
//!   a [`FixedSizeInterner`] of `dogstatsd_string_interner_size` bytes, shared by
//!   all listeners; shorter ones are stored inline and cost no budget.
//! - The cache holds at most `aggregate_context_limit` contexts across all
//!   resolvers sharing a [`ContextBudget`].
//!
//! When the interner is full, strings go to the heap instead
//! (`dogstatsd_allow_context_heap_allocs`, true by default, as in the Agent
//! Data Plane), counted by [`ContextBudget::heap_strings`]: nothing is lost to
//! the interner. With heap strings refused, or once the context limit is
//! reached, a *new* context is refused with a [`ContextDrop`] reason (the
//! caller counts it), while known contexts keep resolving from the cache.
//! Contexts not seen for `context_expiry` are evicted by
//! [`ContextResolver::tick`], which gives their interned strings back once
//! downstream stages drop their clones too.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adp_model::{context_key, Context};
use adp_telemetry::Counter;
use stringtheory::{FixedSizeInterner, MetaString};

/// Why a new context was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ContextDrop {
    /// The string interner has no room for the context's strings and heap
    /// strings are refused.
    #[error("string interner is full; raise `dogstatsd_string_interner_size` or set `dogstatsd_allow_context_heap_allocs: true`")]
    InternerFull,
    /// `aggregate_context_limit` contexts are already tracked.
    #[error("context limit reached; raise `aggregate_context_limit`")]
    ContextLimit,
}

impl ContextDrop {
    /// Every variant (for pre-registering counters).
    pub const ALL: [ContextDrop; 2] = [Self::InternerFull, Self::ContextLimit];

    /// A stable snake_case label for telemetry.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InternerFull => "interner_full",
            Self::ContextLimit => "context_limit",
        }
    }
}

/// The memory budget shared by every resolver of one source: the interner and
/// the count of cached contexts. Cloning shares it.
#[derive(Clone, Debug)]
pub struct ContextBudget {
    interner: FixedSizeInterner,
    contexts: Arc<AtomicUsize>,
    context_limit: usize,
    allow_heap: bool,
    heap_strings: Counter,
    heap_bytes: Counter,
}

impl ContextBudget {
    /// A budget of `interner_bytes` for strings and `context_limit` contexts;
    /// strings the interner cannot hold go to the heap.
    pub fn new(interner_bytes: NonZeroUsize, context_limit: usize) -> Self {
        Self {
            interner: FixedSizeInterner::new(interner_bytes),
            contexts: Arc::default(),
            context_limit,
            allow_heap: true,
            heap_strings: Counter::detached(),
            heap_bytes: Counter::detached(),
        }
    }

    /// Whether strings the interner cannot hold go to the heap (`true`) or
    /// refuse their context (`false`): `dogstatsd_allow_context_heap_allocs`.
    pub fn with_heap_strings(mut self, allow: bool) -> Self {
        self.allow_heap = allow;
        self
    }

    /// Counts heap strings (and their bytes) in these counters.
    pub fn with_heap_counters(mut self, strings: Counter, bytes: Counter) -> Self {
        self.heap_strings = strings;
        self.heap_bytes = bytes;
        self
    }

    /// Strings stored on the heap because the interner had no room.
    pub fn heap_strings(&self) -> u64 {
        self.heap_strings.get()
    }

    /// The number of contexts cached by all resolvers on this budget.
    pub fn contexts(&self) -> usize {
        self.contexts.load(Ordering::Relaxed)
    }

    /// The shared interner.
    pub fn interner(&self) -> &FixedSizeInterner {
        &self.interner
    }

    fn try_reserve(&self) -> bool {
        self.contexts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.context_limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.contexts.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A `Hasher` for keys that already are good hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashMap<u64, _>`; fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct CachedContext {
    context: Context,
    /// Seconds since the resolver's epoch when last resolved.
    last_seen: u32,
}

/// Resolves name + tags to cached [`Context`]s. One per listener task; the
/// [`ContextBudget`] is shared.
pub struct ContextResolver {
    budget: ContextBudget,
    cache: HashMap<u64, CachedContext, BuildHasherDefault<IdentityHasher>>,
    epoch: Instant,
    now_secs: u32,
    expiry: Duration,
    last_sweep: u32,
}

impl std::fmt::Debug for ContextResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextResolver")
            .field("cached", &self.cache.len())
            .field("budget", &self.budget)
            .finish()
    }
}

impl ContextResolver {
    /// A resolver on `budget` evicting contexts idle for `expiry`.
    pub fn new(budget: ContextBudget, expiry: Duration) -> Self {
        Self {
            budget,
            cache: HashMap::default(),
            epoch: Instant::now(),
            now_secs: 0,
            expiry,
            last_sweep: 0,
        }
    }

    /// The number of contexts in this resolver's cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The shared budget.
    pub fn budget(&self) -> &ContextBudget {
        &self.budget
    }

    /// Resolves `name` and `tags` (in any order, duplicates allowed) to a context.
    ///
    /// A known context is a hash computation and a cache lookup. A new one
    /// interns its strings and takes a slot of the context limit, or is refused.
    #[inline]
    pub fn resolve<'a, I>(&mut self, name: &str, tags: I) -> Result<Context, ContextDrop>
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        let key = context_key(name, tags.clone());
        if let Some(cached) = self.cache.get_mut(&key) {
            cached.last_seen = self.now_secs;
            return Ok(cached.context.clone());
        }
        self.insert(key, name, tags)
    }

    #[cold]
    fn insert<'a, I>(&mut self, key: u64, name: &str, tags: I) -> Result<Context, ContextDrop>
    where
        I: IntoIterator<Item = &'a str>,
    {
        if !self.budget.try_reserve() {
            return Err(ContextDrop::ContextLimit);
        }
        let built = self.build(key, name, tags);
        match built {
            Some(context) => {
                self.cache.insert(
                    key,
                    CachedContext {
                        context: context.clone(),
                        last_seen: self.now_secs,
                    },
                );
                Ok(context)
            }
            None => {
                self.budget.release(1);
                Err(ContextDrop::InternerFull)
            }
        }
    }

    fn build<'a>(&self, key: u64, name: &str, tags: impl IntoIterator<Item = &'a str>) -> Option<Context> {
        let mut sorted: Vec<&str> = tags.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let name = self.intern(name)?;
        // On failure the strings interned so far drop here and free their blocks.
        let tags = sorted
            .into_iter()
            .map(|t| self.intern(t))
            .collect::<Option<Box<[MetaString]>>>()?;
        Some(Context::from_parts(key, name, tags))
    }

    fn intern(&self, s: &str) -> Option<MetaString> {
        MetaString::try_inline(s)
            .or_else(|| self.budget.interner.try_intern(s).map(MetaString::from))
            .or_else(|| {
                self.budget.allow_heap.then(|| {
                    self.budget.heap_strings.inc();
                    self.budget.heap_bytes.add(s.len() as u64);
                    MetaString::from(s)
                })
            })
    }

    /// Advances the resolver's clock to `now` and, at most every half expiry,
    /// evicts contexts idle for longer than the expiry. Returns how many were
    /// evicted. Call it once per packet or batch (it is cheap when not sweeping).
    pub fn tick(&mut self, now: Instant) -> usize {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        self.now_secs = u32::try_from(secs).unwrap_or(u32::MAX);
        let expiry = u32::try_from(self.expiry.as_secs().max(1)).unwrap_or(u32::MAX);
        if self.now_secs.saturating_sub(self.last_sweep) < expiry.div_ceil(2) {
            return 0;
        }
        self.last_sweep = self.now_secs;
        self.expire_idle(expiry)
    }

    fn expire_idle(&mut self, expiry_secs: u32) -> usize {
        let now = self.now_secs;
        let before = self.cache.len();
        self.cache.retain(|_, c| now.saturating_sub(c.last_seen) < expiry_secs);
        let evicted = before - self.cache.len();
        self.budget.release(evicted);
        evicted
    }
}

impl Drop for ContextResolver {
    fn drop(&mut self) {
        self.budget.release(self.cache.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: usize, limit: usize) -> ContextBudget {
        ContextBudget::new(NonZeroUsize::new(bytes).unwrap(), limit)
    }

    fn resolver() -> ContextResolver {
        ContextResolver::new(budget(1 << 20, 1000), Duration::from_secs(20))
    }

    #[test]
    fn tag_order_does_not_change_the_context() {
        let mut r = resolver();
        let a = r.resolve("m", ["env:prod", "service:web", "zone:a"]).unwrap();
        let b = r.resolve("m", ["zone:a", "env:prod", "service:web"]).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a, b);
        assert_eq!(r.cached(), 1);
        assert_eq!(
            a.tags().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["env:prod", "service:web", "zone:a"]
        );
    }

    #[test]
    fn duplicate_tags_are_removed() {
        let mut r = resolver();
        let a = r.resolve("m", ["b", "a", "b", "a"]).unwrap();
        let b = r.resolve("m", ["a", "b"]).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.tags().len(), 2);
        assert_eq!(r.cached(), 1);
    }

    #[test]
    fn ten_thousand_tags_resolve_with_duplicates_removed() {
        let tags: Vec<String> = (0..10_000).map(|i| format!("t{i:05}")).collect();
        let distinct: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut doubled: Vec<&str> = distinct.iter().rev().copied().collect();
        doubled.extend(distinct.iter().step_by(3).copied());
        let mut r = ContextResolver::new(budget(1 << 20, 10), Duration::from_secs(20));
        let a = r.resolve("m", distinct.iter().copied()).unwrap();
        let b = r.resolve("m", doubled.iter().copied()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.tags().len(), 10_000);
        assert_eq!(r.cached(), 1);
    }

    #[test]
    fn names_and_tag_sets_distinguish_contexts() {
        let mut r = resolver();
        let base = r.resolve("m", ["a"]).unwrap().key();
        assert_ne!(base, r.resolve("n", ["a"]).unwrap().key());
        assert_ne!(base, r.resolve("m", ["b"]).unwrap().key());
        assert_ne!(base, r.resolve("m", ["a", "b"]).unwrap().key());
        assert_ne!(base, r.resolve("m", []).unwrap().key());
        assert_eq!(r.cached(), 5);
    }

    #[test]
    fn long_strings_are_interned_and_short_ones_inline() {
        let mut r = resolver();
        let long_name = "a.very.long.metric.name.that.does.not.fit.inline";
        let c = r.resolve(long_name, ["x:1"]).unwrap();
        assert!(c.name().is_interned());
        assert!(c.tags()[0].is_inline());
        assert_eq!(r.budget().interner().len(), 1);
    }

    #[test]
    fn a_full_interner_puts_strings_on_the_heap_and_counts_them() {
        // Room for roughly two long strings.
        let mut r = ContextResolver::new(budget(160, 1000), Duration::from_secs(20));
        let long = |i: usize| format!("{i}-{}", "x".repeat(40));
        let contexts: Vec<Context> = (0..10).map(|i| r.resolve(&long(i), ["t:1"]).unwrap()).collect();
        for (i, c) in contexts.iter().enumerate() {
            assert_eq!(c.name(), long(i).as_str());
        }
        assert_eq!(r.cached(), 10);
        let interned = contexts.iter().filter(|c| c.name().is_interned()).count();
        assert!((1..=3).contains(&interned), "{interned} interned");
        assert_eq!(r.budget().heap_strings(), 10 - interned as u64);
        // A known context resolves from the cache, without another heap string.
        assert_eq!(r.resolve(&long(9), ["t:1"]).unwrap(), contexts[9]);
        assert_eq!(r.budget().heap_strings(), 10 - interned as u64);
    }

    #[test]
    fn a_full_interner_drops_new_contexts_when_heap_strings_are_refused() {
        // Room for roughly two long strings.
        let budget = budget(160, 1000).with_heap_strings(false);
        let mut r = ContextResolver::new(budget, Duration::from_secs(20));
        let long = |i: usize| format!("{i}-{}", "x".repeat(40));
        let first = r.resolve(&long(0), []).unwrap();
        let mut dropped = 0;
        for i in 1..10 {
            if r.resolve(&long(i), []) == Err(ContextDrop::InternerFull) {
                dropped += 1;
            }
        }
        assert!(dropped >= 7, "dropped {dropped}");
        assert_eq!(r.resolve(&long(0), []).unwrap(), first);
        // Refused contexts gave back their reservation.
        assert_eq!(r.budget().contexts(), r.cached());
    }

    #[test]
    fn the_context_limit_drops_new_contexts_but_known_ones_resolve() {
        let shared = budget(1 << 16, 3);
        let mut r1 = ContextResolver::new(shared.clone(), Duration::from_secs(20));
        let mut r2 = ContextResolver::new(shared.clone(), Duration::from_secs(20));
        r1.resolve("a", []).unwrap();
        r1.resolve("b", []).unwrap();
        r2.resolve("c", []).unwrap();
        assert_eq!(r2.resolve("d", []), Err(ContextDrop::ContextLimit));
        assert_eq!(r1.resolve("e", ["x"]), Err(ContextDrop::ContextLimit));
        assert!(r1.resolve("a", []).is_ok());
        assert!(r2.resolve("c", []).is_ok());
        assert_eq!(shared.contexts(), 3);
        drop(r2);
        assert_eq!(shared.contexts(), 2);
        assert!(r1.resolve("d", []).is_ok());
    }

    #[test]
    fn idle_contexts_expire_and_free_their_budget() {
        let shared = budget(1 << 16, 10);
        let mut r = ContextResolver::new(shared.clone(), Duration::from_secs(20));
        let start = Instant::now();
        r.tick(start);
        r.resolve("old.metric.with.a.long.name.xxxxxxxx", []).unwrap();
        r.tick(start + Duration::from_secs(15));
        r.resolve("fresh", []).unwrap();
        assert_eq!(r.tick(start + Duration::from_secs(25)), 1);
        assert_eq!(r.cached(), 1);
        assert_eq!(shared.contexts(), 1);
        // The evicted context held the only handle on its interned name.
        assert_eq!(shared.interner().len(), 0);
    }
}
