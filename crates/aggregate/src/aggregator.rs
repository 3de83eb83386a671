//! The [`Aggregator`]: the context store, per-context window state, and the
//! flush that writes closed windows into a [`FlushSink`] (an encoder, or
//! [`Flushed`] for owned copies).
//!
//! # Contexts
//!
//! A context (a metric name, its tags and its type class: count, gauge, set,
//! histogram/timer or distribution, so `x:1|c` and `x:1|g` aggregate
//! separately) is one [`Entry`] in a slab, found by its key in a
//! `hashbrown` table of `u32` slab indices. The entry holds the key, the
//! offset of its name-and-tags list and its window state inline: a sample
//! costs one hash probe (none for the further values of a multi-value
//! message) and no allocation unless it opens a new context. Strings live
//! once each in a [`StringStore`] (4-byte ids, reference-counted per
//! context, not per sample); a context's name and sorted, unique tags are
//! one [`IdLists`] list of those ids, `4 × (tags + 2)` bytes.
//!
//! The store's first `dogstatsd_string_interner_size` bytes are the
//! interner; strings past it go to the heap (counted) unless
//! `dogstatsd_allow_context_heap_allocs` is false. A new context is refused,
//! counted by reason in `adp_aggregate_dropped_samples` and logged once per
//! flush, only at `aggregate_context_limit`, when the memory limit forbids
//! growing ([`Growth::ReuseOnly`]), or, without heap strings, when the
//! interner is full.
//!
//! # Windows
//!
//! Each entry keeps its unflushed windows, oldest first: up to two inline
//! (the window being filled and the one before it, until the next flush),
//! more in a heap vector when flushes fall behind. A flush releases the
//! closed windows and removes entries with nothing left, so memory follows
//! the live contexts, not history. Counters stay after their last window
//! while they still owe zeros.
//!
//! # Flushing in steps
//!
//! [`Aggregator::start_flush`] fixes the cutoffs; [`Aggregator::flush_step`]
//! walks a bounded number of entries, writing each one's closed windows
//! straight into the sink with borrowed names and tags, then dropping them:
//! nothing of a flush is materialised, so a caller holding the aggregator
//! behind a lock can release it between steps while samples keep arriving
//! (they land in open windows, which this flush does not touch). An entry
//! emptied by the flush is removed in the same step, after the sink has
//! written its strings.
//!
//! # Time
//!
//! The aggregator keeps no clock. Inserts take the arrival time and flushes
//! the current time, both in Unix seconds, so tests drive time explicitly.
//! A sample whose window was already flushed (the clock stepped back) goes to
//! the oldest open window rather than producing a second point for a
//! timestamp the intake already has. Window starts and arrival times are
//! kept as `u32` seconds (until 2106).

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use adp_model::{
    context_key, Context, ContextRef, FlushSink, Flushed, MetricBatch, MetricKind, SeriesKind, SeriesView,
};
use adp_telemetry::{Counter, Gauge, Registry};
use ddsketch::AgentSketch;
use hashbrown::HashTable;
use stringtheory::{IdLists, MetaString, Refused, StrId, StringStore};

use crate::config::{AggregateConfig, ConfigError, HistogramAggregate};

/// The aggregation a DogStatsD type gets; timers are histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Count,
    Gauge,
    Set,
    Histogram,
    Distribution,
}

impl Class {
    fn of(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Count => Self::Count,
            MetricKind::Gauge => Self::Gauge,
            MetricKind::Set => Self::Set,
            MetricKind::Timer | MetricKind::Histogram => Self::Histogram,
            MetricKind::Distribution => Self::Distribution,
        }
    }

    /// The entry key of a context key and this class: the context key is an
    /// XXH3-based hash already; a Fibonacci multiple spreads the class so the
    /// classes of one context differ.
    fn key(self, context_key: u64) -> u64 {
        context_key ^ (self as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Whether a new context may make the aggregator's memory grow (the memory
/// limiter's verdict for this batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Allocate as needed.
    Allowed,
    /// Near the memory limit: a new context is admitted only into memory the
    /// aggregator has already written (freed slots, strings and lists; not
    /// spare capacity, which is not resident until written); otherwise it is
    /// refused and counted (`reason="memory_limit"`).
    ReuseOnly,
}

/// Unix seconds as kept in window state (`u32`: until 2106).
fn secs32(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

/// One window's state, carrying its start.
trait Window: Default {
    fn start(&self) -> u32;
}

/// One window of a counter: the weighted sum and the arrival time of its
/// latest sample (which decides the zeros owed after it).
#[derive(Clone, Copy, Default)]
struct CounterWindow {
    sum: f64,
    start: u32,
    last_update: u32,
}

impl Window for CounterWindow {
    fn start(&self) -> u32 {
        self.start
    }
}

#[derive(Clone, Copy, Default)]
struct GaugeWindow {
    value: f64,
    start: u32,
}

impl Window for GaugeWindow {
    fn start(&self) -> u32 {
        self.start
    }
}

/// A window whose state lives on the heap (sets, histograms, sketches).
struct BoxWindow<T> {
    data: Option<Box<T>>,
    start: u32,
}

impl<T> Default for BoxWindow<T> {
    fn default() -> Self {
        Self { data: None, start: 0 }
    }
}

impl<T> Window for BoxWindow<T> {
    fn start(&self) -> u32 {
        self.start
    }
}

impl<T: Default> BoxWindow<T> {
    fn new(start: u32) -> Self {
        Self {
            data: Some(Box::default()),
            start,
        }
    }

    fn get(&mut self) -> &mut T {
        self.data.get_or_insert_with(Box::default)
    }
}

/// The unflushed windows of one context, ascending by start: two inline,
/// more on the heap (only when flushes fall behind the windows).
enum Windows<W> {
    Inline { n: u8, w: [W; 2] },
    Spilled(Vec<W>),
}

impl<W: Window> Windows<W> {
    fn new() -> Self {
        Self::Inline {
            n: 0,
            w: [W::default(), W::default()],
        }
    }

    fn as_slice(&self) -> &[W] {
        match self {
            Self::Inline { n, w } => &w[..usize::from(*n)],
            Self::Spilled(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [W] {
        match self {
            Self::Inline { n, w } => &mut w[..usize::from(*n)],
            Self::Spilled(v) => v,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The number of leading windows that start before `cutoff`.
    fn closed(&self, cutoff: i64) -> usize {
        self.as_slice().partition_point(|w| i64::from(w.start()) < cutoff)
    }

    /// The window starting at `start`, created with `init` if absent.
    fn get_or_insert(&mut self, start: u32, init: impl FnOnce(u32) -> W) -> &mut W {
        // The newest window is last and the most likely target.
        let at = {
            let slice = self.as_slice();
            match slice.iter().rposition(|w| w.start() <= start) {
                Some(i) if slice[i].start() == start => None,
                Some(i) => Some(i + 1),
                None => Some(0),
            }
        };
        let i = match at {
            None => self.as_slice().iter().rposition(|w| w.start() == start).unwrap_or(0),
            Some(at) => {
                self.insert(at, init(start));
                at
            }
        };
        &mut self.as_mut_slice()[i]
    }

    fn insert(&mut self, at: usize, window: W) {
        match self {
            Self::Inline { n, w } if *n < 2 => {
                if at == 0 && *n == 1 {
                    w.swap(0, 1);
                }
                w[at] = window;
                *n += 1;
            }
            Self::Inline { w, .. } => {
                let mut v: Vec<W> = Vec::with_capacity(4);
                v.extend(w.iter_mut().map(std::mem::take));
                v.insert(at, window);
                *self = Self::Spilled(v);
            }
            Self::Spilled(v) => v.insert(at, window),
        }
    }

    /// Removes the first `k` windows, oldest first, giving each to `f`.
    fn take_front(&mut self, k: usize, mut f: impl FnMut(W)) {
        if k == 0 {
            return;
        }
        match self {
            Self::Inline { n, w } => {
                for window in w.iter_mut().take(k) {
                    f(std::mem::take(window));
                }
                if k == 1 && *n == 2 {
                    w.swap(0, 1);
                }
                *n -= k as u8;
            }
            Self::Spilled(v) => {
                for window in v.drain(..k) {
                    f(window);
                }
                if v.len() <= 2 {
                    let mut w = [W::default(), W::default()];
                    let n = v.len();
                    for (slot, window) in w.iter_mut().zip(v.drain(..)) {
                        *slot = window;
                    }
                    *self = Self::Inline { n: n as u8, w };
                }
            }
        }
    }
}

/// One window's histogram samples, kept exactly as the Agent keeps them
/// (every value with its weight, the truncated inverse sample rate) but
/// split by weight: most samples are sent without a sample rate, and storing
/// their weight of 1 would double their memory (8 → 16 bytes each), which
/// dominates at high timer rates.
#[derive(Default)]
struct Histogram {
    unweighted: Vec<f64>,
    weighted: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Adds `value` sent with inverse sample rate `inverse_rate`: the sum
    /// takes the exact inverse, the count and the ranks the Agent's
    /// truncated weight, `int64(1 / rate)`.
    fn push(&mut self, value: f64, inverse_rate: f64) {
        let weight = inverse_rate as u64;
        if weight == 1 {
            self.unweighted.push(value);
        } else {
            self.weighted.push((value, weight));
        }
        self.sum += value * inverse_rate;
        self.count += weight;
    }

    fn sort(&mut self) {
        self.unweighted.sort_unstable_by(f64::total_cmp);
        self.weighted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// Every sample with its weight, ascending (after [`Self::sort`]).
    fn ascending(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut unweighted = self.unweighted.iter().copied().peekable();
        let mut weighted = self.weighted.iter().copied().peekable();
        std::iter::from_fn(move || match (unweighted.peek(), weighted.peek()) {
            (Some(&u), Some(&(w, _))) if u.total_cmp(&w).is_le() => unweighted.next().map(|u| (u, 1)),
            (_, Some(_)) => weighted.next(),
            (Some(_), None) => unweighted.next().map(|u| (u, 1)),
            (None, None) => None,
        })
    }
}

/// A context's windows, by class.
enum State {
    Count {
        windows: Windows<CounterWindow>,
        /// Arrival time of the latest sample in a flushed window (0: none).
        last_update: u32,
        /// The first window not yet flushed (as data or as a zero).
        next_window: u32,
    },
    Gauge(Windows<GaugeWindow>),
    Set(Windows<BoxWindow<HashSet<MetaString>>>),
    Histogram(Windows<BoxWindow<Histogram>>),
    Distribution(Windows<BoxWindow<AgentSketch>>),
    /// A free slot.
    Free,
}

impl State {
    fn new(class: Class, start: u32) -> Self {
        match class {
            Class::Count => Self::Count {
                windows: Windows::new(),
                last_update: 0,
                next_window: start,
            },
            Class::Gauge => Self::Gauge(Windows::new()),
            Class::Set => Self::Set(Windows::new()),
            Class::Histogram => Self::Histogram(Windows::new()),
            Class::Distribution => Self::Distribution(Windows::new()),
        }
    }
}

/// A slab slot: a context and its windows, or a free slot.
struct Entry {
    /// [`Class::key`] of the context's key.
    key: u64,
    /// The offset of `[name, tags...]` in the id lists; [`FREE`] for a free slot.
    list: u32,
    class: Class,
    /// Timestamped samples wait in the aggregator's passthrough map.
    passthrough: bool,
    state: State,
}

const FREE: u32 = u32::MAX;

/// Why a sample was dropped (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    ContextLimit,
    MemoryLimit,
    InternerFull,
    InvalidValue,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Self::ContextLimit,
        Self::MemoryLimit,
        Self::InternerFull,
        Self::InvalidValue,
    ];

    fn reason(self) -> &'static str {
        match self {
            Self::ContextLimit => "context_limit",
            Self::MemoryLimit => "memory_limit",
            Self::InternerFull => "interner_full",
            Self::InvalidValue => "invalid_value",
        }
    }

    fn of(refused: Refused) -> Self {
        match refused {
            Refused::InternerFull => Self::InternerFull,
            Refused::NoGrowth | Refused::ArenaFull => Self::MemoryLimit,
        }
    }
}

struct Telemetry {
    contexts: Gauge,
    dropped: [Counter; 4],
    series_points: Counter,
    sketch_points: Counter,
    strings: Gauge,
    interner_bytes: Gauge,
    heap_bytes: Gauge,
    memory_bytes: Gauge,
    resident_bytes: [Gauge; 5],
    value_bytes: Gauge,
    fallback_strings: Counter,
    fallback_bytes: Counter,
}

impl Telemetry {
    fn new(registry: &Registry) -> Self {
        const DROPPED: &str = "adp_aggregate_dropped_samples";
        const DROPPED_HELP: &str = "Samples the aggregator dropped, by reason.";
        const STRING_BYTES: &str = "adp_context_string_bytes";
        const STRING_BYTES_HELP: &str =
            "Bytes of the context store's strings in use (headers included), in the interner and past it on the heap.";
        Self {
            contexts: registry.gauge(
                "adp_aggregate_contexts",
                "Contexts held by the aggregator: open windows and idle counters still sending zeros.",
                &[],
            ),
            dropped: Refusal::ALL.map(|r| registry.counter(DROPPED, DROPPED_HELP, &[("reason", r.reason())])),
            series_points: registry.counter(
                "adp_aggregate_flushed_series_points",
                "Series points flushed (aggregated and timestamped).",
                &[],
            ),
            sketch_points: registry.counter("adp_aggregate_flushed_sketch_points", "Sketch points flushed.", &[]),
            strings: registry.gauge("adp_context_strings", "Distinct context names and tags stored.", &[]),
            interner_bytes: registry.gauge(STRING_BYTES, STRING_BYTES_HELP, &[("storage", "interner")]),
            heap_bytes: registry.gauge(STRING_BYTES, STRING_BYTES_HELP, &[("storage", "heap")]),
            memory_bytes: registry.gauge(
                "adp_context_memory_bytes",
                "Heap memory of the context store: strings, tag lists, context slots and the index.",
                &[],
            ),
            resident_bytes: ResidentParts::default().labelled().map(|(part, _)| {
                registry.gauge(
                    "adp_context_resident_bytes",
                    "Written memory of the context store by part: strings (arena), string_index, tag_lists, slots (windows inline), index.",
                    &[("part", part)],
                )
            }),
            value_bytes: registry.gauge(
                "adp_context_value_bytes",
                "Heap bytes of window values outside the context slots (sketches, histogram samples, set members), at the start of the latest flush.",
                &[],
            ),
            fallback_strings: registry.counter(
                "adp_context_interner_fallback_strings",
                "Context strings stored on the heap because the string interner was full.",
                &[],
            ),
            fallback_bytes: registry.counter(
                "adp_context_interner_fallback_bytes",
                "Bytes of context strings stored on the heap because the string interner was full.",
                &[],
            ),
        }
    }

    fn dropped(&self, r: Refusal) -> &Counter {
        &self.dropped[r as usize]
    }
}

/// The context store's memory, for accounting and telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextMemory {
    /// Contexts held.
    pub contexts: usize,
    /// Distinct strings stored.
    pub strings: usize,
    /// Bytes of strings in use in the interner (headers included).
    pub interner_bytes: usize,
    /// Bytes of strings in use past the interner, on the heap.
    pub heap_bytes: usize,
    /// Heap memory held by the store: strings' arena, tag lists, context
    /// slots (with their inline windows) and the index. Sketches, histogram
    /// samples and set members are not included.
    pub allocated_bytes: usize,
    /// Of that, what has been written: the arenas and slots up to their
    /// lengths (a large allocation's pages become resident when written).
    /// It grows with new contexts and stays when they are freed (their
    /// memory is reused). The sum of [`Self::parts`].
    pub resident_bytes: usize,
    /// `resident_bytes` by part, to show where a context's bytes go.
    pub parts: ResidentParts,
}

/// The context store's written memory by part (see [`ContextMemory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResidentParts {
    /// The string arena up to its length: every distinct name and tag with
    /// its 5–6 byte header, and freed blocks waiting for reuse.
    pub strings: usize,
    /// The strings' deduplication index.
    pub string_index: usize,
    /// The id lists (`[len, name, tags…]` per context) up to their length.
    pub tag_lists: usize,
    /// Context slots up to the slab's length, windows inline, and the list
    /// of free slots.
    pub slots: usize,
    /// The contexts' hash index.
    pub index: usize,
}

impl ResidentParts {
    /// Each part with its `part` label value, in a fixed order.
    pub fn labelled(&self) -> [(&'static str, usize); 5] {
        [
            ("strings", self.strings),
            ("string_index", self.string_index),
            ("tag_lists", self.tag_lists),
            ("slots", self.slots),
            ("index", self.index),
        ]
    }

    fn total(&self) -> usize {
        self.labelled().iter().map(|(_, b)| b).sum()
    }
}

/// The state of a flush in progress; see [`Aggregator::start_flush`].
#[derive(Debug)]
pub struct FlushJob {
    data_cutoff: i64,
    zero_cutoff: i64,
    next: usize,
    end: usize,
    points: u64,
}

impl FlushJob {
    /// Series and sketch points written so far.
    pub fn points(&self) -> u64 {
        self.points
    }
}

/// Aggregates DogStatsD metrics into fixed time windows with the Datadog
/// Agent's semantics (see the [crate documentation](crate)).
///
/// ```
/// use adp_aggregate::{AggregateConfig, Aggregator, Growth};
/// use adp_model::{MetricBatch, MetricKind, SeriesKind};
///
/// let mut agg = Aggregator::new(AggregateConfig::default(), &adp_telemetry::Registry::new()).unwrap();
/// let mut batch = MetricBatch::new();
/// let requests = batch.add_context("requests", "env:prod", std::iter::empty());
/// batch.push_number(requests, MetricKind::Count, 3.0, 1.0, None);
/// batch.push_number(requests, MetricKind::Count, 2.0, 1.0, None);
/// agg.insert_batch(&batch, 1_700_000_001, Growth::Allowed);
/// assert!(agg.flush(1_700_000_009, false).is_empty()); // window still open
/// let out = agg.flush(1_700_000_010, false);
/// assert_eq!(out.series[0].kind, SeriesKind::Rate);
/// assert_eq!(out.series[0].points, [(1_700_000_000, 0.5)]); // 5 per 10 s
/// ```
pub struct Aggregator {
    window: i64,
    window_secs: u64,
    expiry: i64,
    context_limit: usize,
    aggregates: Vec<HistogramAggregate>,
    percents: Vec<u8>,
    /// Suffix and type of each histogram series, aggregates then percentiles.
    histogram_series: Vec<(String, SeriesKind)>,
    strings: StringStore,
    lists: IdLists,
    entries: Vec<Entry>,
    free_entries: Vec<u32>,
    index: HashTable<u32>,
    live: usize,
    passthrough: HashMap<u32, Vec<(i64, f64)>>,
    /// Every window starting before this has been flushed.
    flushed_until: i64,
    telemetry: Telemetry,
    /// Refusals since the last flush, by reason, for the log line.
    refused: [u64; 4],
    /// Fallback counts already added to the telemetry counters.
    reported_fallbacks: (u64, u64),
    /// Scratch: a new context's ids, and a flush's points and values.
    ids: Vec<u32>,
    points: Vec<(i64, f64)>,
    values: Vec<f64>,
    /// Histogram series (by full name) not to send: see [`Aggregator::set_histogram_filter`].
    histogram_filter: Option<HistogramFilter>,
}

/// Says whether a histogram series, by its full name, is dropped at flush.
type HistogramFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("window_secs", &self.window_secs)
            .field("contexts", &self.live)
            .field("strings", &self.strings)
            .field("flushed_until", &self.flushed_until)
            .finish_non_exhaustive()
    }
}

/// The default interner: `dogstatsd_string_interner_size`'s default.
const DEFAULT_INTERNER_BYTES: usize = 2 << 20;

impl Aggregator {
    /// Validates `config` and builds an aggregator that registers its
    /// `adp_aggregate_*` and `adp_context_*` telemetry in `registry`. Its
    /// interner is 2 MiB with heap strings past it (see [`Self::with_interner`]).
    pub fn new(config: AggregateConfig, registry: &Registry) -> Result<Self, ConfigError> {
        config.validate()?;
        let aggregates = config.aggregates();
        let percents = config.percents();
        let histogram_series = aggregates
            .iter()
            .map(|a| {
                let kind = if *a == HistogramAggregate::Count {
                    SeriesKind::Rate
                } else {
                    SeriesKind::Gauge
                };
                (format!(".{a}"), kind)
            })
            .chain(percents.iter().map(|p| (format!(".{p}percentile"), SeriesKind::Gauge)))
            .collect();
        Ok(Self {
            window: i64::try_from(config.aggregate_window_duration_seconds).unwrap_or(i64::MAX),
            window_secs: config.aggregate_window_duration_seconds,
            expiry: i64::try_from(config.counter_expiry_seconds).unwrap_or(i64::MAX),
            context_limit: usize::try_from(config.aggregate_context_limit).unwrap_or(usize::MAX),
            aggregates,
            percents,
            histogram_series,
            strings: StringStore::new(DEFAULT_INTERNER_BYTES, true),
            lists: IdLists::new(),
            entries: Vec::new(),
            free_entries: Vec::new(),
            index: HashTable::new(),
            live: 0,
            passthrough: HashMap::new(),
            flushed_until: i64::MIN,
            telemetry: Telemetry::new(registry),
            refused: [0; 4],
            reported_fallbacks: (0, 0),
            ids: Vec::new(),
            points: Vec::new(),
            values: Vec::new(),
            histogram_filter: None,
        })
    }

    /// Sets the string interner to `interner_bytes`
    /// (`dogstatsd_string_interner_size`) and whether strings past it go to
    /// the heap (`dogstatsd_allow_context_heap_allocs`). Call before inserting.
    pub fn with_interner(mut self, interner_bytes: usize, allow_heap: bool) -> Self {
        debug_assert!(self.strings.is_empty(), "the interner is set before any string");
        self.strings = StringStore::new(interner_bytes, allow_heap);
        self
    }

    /// The suffixes of the series a histogram is sent as, in order:
    /// `histogram_aggregates` (`.max`, `.count`, ...), then
    /// `histogram_percentiles` (`.95percentile`).
    pub fn histogram_suffixes(&self) -> impl Iterator<Item = &str> + Clone {
        self.histogram_series.iter().map(|(suffix, _)| suffix.as_str())
    }

    /// Drops, at flush, every histogram series whose full name
    /// (`<name><suffix>`) `drop` accepts, as the Agent's time sampler does
    /// with the blocklist entries that end in a histogram suffix (its
    /// `histoFilterList`); the histogram's other series are sent.
    pub fn set_histogram_filter(&mut self, drop: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.histogram_filter = Some(Box::new(drop));
    }

    /// Every context held, copied (for `dogstatsd top`): those with open
    /// windows, idle counters or timestamped samples waiting for the next
    /// flush. A context with samples of two types is listed twice.
    pub fn contexts(&self) -> impl Iterator<Item = Context> + '_ {
        self.entries.iter().filter(|e| e.list != FREE).map(|e| {
            let ids = self.lists.get(e.list);
            let name = self.strings.get(StrId::from_raw(ids[0]));
            let tags: Vec<&str> = ids[1..]
                .iter()
                .map(|&id| self.strings.get(StrId::from_raw(id)))
                .collect();
            Context::from_parts(
                context_key(name, tags.iter().copied()),
                MetaString::from(name),
                tags.into_iter().map(MetaString::from).collect(),
            )
        })
    }

    /// The number of contexts held (open windows, idle counters and
    /// timestamped samples waiting for the next flush).
    pub fn context_count(&self) -> usize {
        self.live
    }

    /// The context store's memory.
    pub fn memory(&self) -> ContextMemory {
        let strings = self.strings.stats();
        // hashbrown keeps at most 7/8 of its buckets full: a u32 and a
        // control byte per bucket.
        let index = self.index.capacity() * 8 / 7 * (std::mem::size_of::<u32>() + 1);
        let string_index = strings.allocated_bytes.saturating_sub(self.strings_arena_capacity());
        let parts = ResidentParts {
            strings: strings.arena_bytes,
            string_index,
            tag_lists: self.lists.arena_bytes(),
            slots: self.entries.len() * std::mem::size_of::<Entry>() + self.free_entries.len() * 4,
            index,
        };
        ContextMemory {
            contexts: self.live,
            strings: strings.strings,
            interner_bytes: strings.used_bytes - strings.heap_bytes,
            heap_bytes: strings.heap_bytes,
            allocated_bytes: strings.allocated_bytes
                + self.lists.allocated_bytes()
                + self.entries.capacity() * std::mem::size_of::<Entry>()
                + self.free_entries.capacity() * 4
                + index,
            resident_bytes: parts.total(),
            parts,
        }
    }

    /// Heap bytes of the windows' values that live outside the slots
    /// (distribution sketches, histogram samples, set members), walking
    /// every context: for telemetry once per flush, not per batch.
    pub fn value_heap_bytes(&self) -> usize {
        fn spilled<W>(windows: &Windows<W>) -> usize {
            match windows {
                Windows::Spilled(v) => v.capacity() * std::mem::size_of::<W>(),
                Windows::Inline { .. } => 0,
            }
        }
        fn boxed<T>(windows: &Windows<BoxWindow<T>>, inner: impl Fn(&T) -> usize) -> usize {
            spilled(windows)
                + windows
                    .as_slice()
                    .iter()
                    .filter_map(|w| w.data.as_deref())
                    .map(|t| std::mem::size_of::<T>() + inner(t))
                    .sum::<usize>()
        }
        self.entries
            .iter()
            .map(|e| match &e.state {
                State::Distribution(w) => boxed(w, AgentSketch::heap_bytes),
                State::Histogram(w) => boxed(w, |h| {
                    h.unweighted.capacity() * std::mem::size_of::<f64>()
                        + h.weighted.capacity() * std::mem::size_of::<(f64, u64)>()
                }),
                State::Set(w) => boxed(w, |s| s.capacity() * std::mem::size_of::<MetaString>()),
                State::Count { windows, .. } => spilled(windows),
                State::Gauge(windows) => spilled(windows),
                State::Free => 0,
            })
            .sum()
    }

    fn strings_arena_capacity(&self) -> usize {
        self.strings.arena_capacity()
    }

    /// The start of the window holding `t`.
    fn window_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.window)
    }

    /// Adds every sample of `batch`, which arrived at `now_unix_secs`.
    /// Returns how many were kept; the others (a non-finite number, a value
    /// of the wrong shape, a new context refused) are counted in
    /// `adp_aggregate_dropped_samples` by reason.
    ///
    /// Counts and gauges with a timestamp bypass the windows and are
    /// released as they are at the next flush; the timestamp of other types
    /// is ignored, as the Agent does.
    pub fn insert_batch(&mut self, batch: &MetricBatch, now_unix_secs: i64, growth: Growth) -> usize {
        let start = secs32(self.window_start(now_unix_secs).max(self.flushed_until));
        let now = secs32(now_unix_secs);
        let mut kept = 0;
        // The entry of the previous sample's context and class: the values of
        // one message share it, without another probe.
        let mut last: Option<(u32, Class, u32)> = None;
        for sample in batch.samples() {
            let class = Class::of(sample.kind);
            let number = sample.number();
            let valid = if class == Class::Set {
                sample.is_member()
            } else {
                !sample.is_member() && number.is_finite()
            };
            if !valid {
                self.refuse(Refusal::InvalidValue);
                continue;
            }
            let slot = match last {
                Some((context, c, slot)) if context == sample.context && c == class => slot,
                _ => {
                    let context = batch.context_of(sample);
                    match self.find_or_create(batch, context, class, start, growth) {
                        Ok(slot) => {
                            last = Some((sample.context, class, slot));
                            slot
                        }
                        Err(r) => {
                            self.refuse(r);
                            last = None;
                            continue;
                        }
                    }
                }
            };
            kept += 1;
            if let (Some(ts), Class::Count | Class::Gauge) = (sample.timestamp(), class) {
                // Timestamped counts ignore the sample rate (DogStatsD v1.3).
                self.passthrough.entry(slot).or_default().push((ts, number));
                self.entries[slot as usize].passthrough = true;
                continue;
            }
            let weight = inverse_rate(sample.sample_rate);
            let entry = &mut self.entries[slot as usize];
            match &mut entry.state {
                State::Count { windows, .. } => {
                    let counter = windows.get_or_insert(start, |start| CounterWindow {
                        sum: 0.0,
                        start,
                        last_update: now,
                    });
                    counter.sum += number * weight;
                    counter.last_update = counter.last_update.max(now);
                }
                State::Gauge(windows) => {
                    windows
                        .get_or_insert(start, |start| GaugeWindow { value: 0.0, start })
                        .value = number;
                }
                State::Set(windows) => {
                    windows
                        .get_or_insert(start, BoxWindow::new)
                        .get()
                        .insert(MetaString::from(batch.member(sample)));
                }
                State::Histogram(windows) => {
                    windows.get_or_insert(start, BoxWindow::new).get().push(number, weight);
                }
                State::Distribution(windows) => {
                    windows
                        .get_or_insert(start, BoxWindow::new)
                        .get()
                        .insert_sampled(number, sample.sample_rate);
                }
                State::Free => unreachable!("a context found or created is live"),
            }
        }
        self.update_gauges();
        kept
    }

    fn refuse(&mut self, r: Refusal) {
        self.telemetry.dropped(r).inc();
        self.refused[r as usize] += 1;
    }

    /// The slot of `context` in `class`, created if new.
    fn find_or_create(
        &mut self,
        batch: &MetricBatch,
        context: &ContextRef,
        class: Class,
        start: u32,
        growth: Growth,
    ) -> Result<u32, Refusal> {
        let key = class.key(context.key);
        let Self { index, entries, .. } = self;
        if let Some(&slot) = index.find(key, |&s| entries[s as usize].key == key) {
            return Ok(slot);
        }
        self.create(batch, context, key, class, start, growth)
    }

    #[cold]
    fn create(
        &mut self,
        batch: &MetricBatch,
        context: &ContextRef,
        key: u64,
        class: Class,
        start: u32,
        growth: Growth,
    ) -> Result<u32, Refusal> {
        if self.live >= self.context_limit {
            return Err(Refusal::ContextLimit);
        }
        let grow = growth == Growth::Allowed;
        // The index may still grow: hashbrown resizes a table whose room is
        // held by tombstones once it is over half full, a few bytes per context.
        if !grow && self.free_entries.is_empty() {
            return Err(Refusal::MemoryLimit);
        }
        // One allocation, sized by a first pass (rather than 4–5 doublings).
        let mut tags: Vec<&str> = Vec::with_capacity(batch.tags_of(context).count());
        tags.extend(batch.tags_of(context));
        tags.sort_unstable();
        tags.dedup();
        self.ids.clear();
        for s in std::iter::once(batch.name(context)).chain(tags.iter().copied()) {
            match self.strings.intern(s, grow) {
                Ok(id) => self.ids.push(id.get()),
                Err(refused) => {
                    for &id in &self.ids {
                        self.strings.release(StrId::from_raw(id));
                    }
                    return Err(Refusal::of(refused));
                }
            }
        }
        let Some(list) = self.lists.push(&self.ids, grow) else {
            for &id in &self.ids {
                self.strings.release(StrId::from_raw(id));
            }
            return Err(Refusal::MemoryLimit);
        };
        let entry = Entry {
            key,
            list,
            class,
            passthrough: false,
            state: State::new(class, start),
        };
        let slot = match self.free_entries.pop() {
            Some(slot) => {
                self.entries[slot as usize] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Self { index, entries, .. } = self;
        index.insert_unique(key, slot, |&s| entries[s as usize].key);
        self.live += 1;
        Ok(slot)
    }

    /// Removes the context in `slot`: its strings, list, index entry.
    fn remove(&mut self, slot: u32) {
        let entry = &mut self.entries[slot as usize];
        let (key, list) = (entry.key, entry.list);
        entry.list = FREE;
        entry.state = State::Free;
        entry.passthrough = false;
        for &id in self.lists.get(list) {
            self.strings.release(StrId::from_raw(id));
        }
        self.lists.remove(list);
        if let Ok(found) = self.index.find_entry(key, |&s| s == slot) {
            found.remove();
        }
        self.free_entries.push(slot);
        self.live -= 1;
    }

    fn update_gauges(&mut self) {
        let t = &self.telemetry;
        let stats = self.strings.stats();
        t.contexts.set(i64::try_from(self.live).unwrap_or(i64::MAX));
        t.strings.set(i64::try_from(stats.strings).unwrap_or(i64::MAX));
        t.interner_bytes
            .set(i64::try_from(stats.used_bytes - stats.heap_bytes).unwrap_or(i64::MAX));
        t.heap_bytes.set(i64::try_from(stats.heap_bytes).unwrap_or(i64::MAX));
        let (strings, bytes) = self.reported_fallbacks;
        t.fallback_strings.add(stats.fallback_strings - strings);
        t.fallback_bytes.add(stats.fallback_bytes - bytes);
        self.reported_fallbacks = (stats.fallback_strings, stats.fallback_bytes);
        let memory = self.memory();
        let t = &self.telemetry;
        t.memory_bytes
            .set(i64::try_from(memory.allocated_bytes).unwrap_or(i64::MAX));
        for (gauge, (_, bytes)) in t.resident_bytes.iter().zip(memory.parts.labelled()) {
            gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// Starts a flush of every closed window: those ending at or before the
    /// start of the window holding `now_unix_secs`, plus, with `force`
    /// (shutdown), the open ones. Timestamped metrics received so far are
    /// released too. Idle counters get a 0 point for each newly closed window
    /// until `counter_expiry_seconds` after their last update. Run the job
    /// with [`Self::flush_step`]; samples inserted meanwhile go to open
    /// windows, which it leaves alone.
    ///
    /// New contexts refused since the last flush are logged here, once per
    /// flush interval, with their counts by reason.
    pub fn start_flush(&mut self, now_unix_secs: i64, force: bool) -> FlushJob {
        let current = self.window_start(now_unix_secs);
        // Windows starting before `data_cutoff` are released; counters owe
        // zeros for windows starting before `zero_cutoff`.
        let (data_cutoff, zero_cutoff) = if force {
            (i64::MAX, current.saturating_add(self.window))
        } else {
            (current, current)
        };
        self.flushed_until = self.flushed_until.max(zero_cutoff);
        self.log_refusals();
        // Before the closed windows go: the most the values hold.
        let values = self.value_heap_bytes();
        self.telemetry
            .value_bytes
            .set(i64::try_from(values).unwrap_or(i64::MAX));
        FlushJob {
            data_cutoff,
            zero_cutoff,
            next: 0,
            end: self.entries.len(),
            points: 0,
        }
    }

    fn log_refusals(&mut self) {
        let refused = std::mem::take(&mut self.refused);
        let [limit, memory, interner, _invalid] = refused;
        if limit + memory + interner == 0 {
            return;
        }
        tracing::warn!(
            context_limit = limit,
            memory_limit = memory,
            interner_full = interner,
            contexts = self.live,
            aggregate_context_limit = self.context_limit,
            "Refused samples of new contexts since the last flush (counted in adp_aggregate_dropped_samples_total): \
             raise `aggregate_context_limit` or `memory_limit`, or send fewer distinct contexts."
        );
    }

    /// Writes the closed windows of up to `max_entries` more contexts into
    /// `sink` and removes the contexts left with nothing; returns whether the
    /// flush is done. A sink error stops the step (the windows not written
    /// yet stay for the next flush).
    pub fn flush_step<S: FlushSink>(
        &mut self,
        job: &mut FlushJob,
        sink: &mut S,
        max_entries: usize,
    ) -> Result<bool, S::Error> {
        let stop = job.next.saturating_add(max_entries).min(job.end);
        while job.next < stop {
            let slot = job.next;
            job.next += 1;
            self.flush_entry(slot, job, sink)?;
        }
        let done = job.next >= job.end;
        if done {
            self.update_gauges();
        }
        Ok(done)
    }

    /// [`Self::start_flush`] and every step, into owned series and sketches.
    pub fn flush(&mut self, now_unix_secs: i64, force: bool) -> Flushed {
        let mut out = Flushed::default();
        let mut job = self.start_flush(now_unix_secs, force);
        while !self.flush_step(&mut job, &mut out, usize::MAX).unwrap_or(true) {}
        out
    }

    fn flush_entry<S: FlushSink>(&mut self, slot: usize, job: &mut FlushJob, sink: &mut S) -> Result<(), S::Error> {
        let Self {
            window,
            window_secs,
            expiry,
            aggregates,
            percents,
            histogram_series,
            strings,
            lists,
            entries,
            passthrough,
            telemetry,
            points,
            values,
            histogram_filter,
            ..
        } = self;
        let entry = &mut entries[slot];
        if entry.list == FREE {
            return Ok(());
        }
        let (window, window_secs, expiry) = (*window, *window_secs, *expiry);
        let window_f = window_secs as f64;
        let (data_cutoff, zero_cutoff) = (job.data_cutoff, job.zero_cutoff);
        let ids = lists.get(entry.list);
        let strings = &*strings;
        let name = strings.get(StrId::from_raw(ids[0]));
        let tags = ids[1..].iter().map(|&id| strings.get(StrId::from_raw(id)));
        let mut series_points = 0u64;
        let mut sketch_points = 0u64;
        // One series of this context.
        macro_rules! series {
            ($suffix:expr, $kind:expr, $interval:expr, $points:expr) => {{
                let points: &[(i64, f64)] = $points;
                series_points += points.len() as u64;
                sink.series(SeriesView {
                    name,
                    suffix: $suffix,
                    tags: tags.clone(),
                    kind: $kind,
                    interval_secs: $interval,
                    points,
                })?;
            }};
        }

        // One gauge series of the closed windows, a point of `$value` each.
        macro_rules! gauges {
            ($windows:expr, $value:expr) => {{
                let n = $windows.closed(data_cutoff);
                if n > 0 {
                    points.clear();
                    points.extend(
                        $windows.as_slice()[..n]
                            .iter()
                            .map(|w| (i64::from(w.start), $value(w))),
                    );
                    series!("", SeriesKind::Gauge, window_secs, points);
                    $windows.take_front(n, drop);
                }
                !$windows.is_empty()
            }};
        }

        let keep = match &mut entry.state {
            State::Count {
                windows,
                last_update,
                next_window,
            } => {
                let n = windows.closed(data_cutoff);
                points.clear();
                let mut next = i64::from(*next_window);
                // A window gets a zero if it starts less than `expiry` after
                // the last sample *before* it, so each gap between data
                // windows is judged by the update that preceded it.
                let mut last = if *last_update == 0 {
                    i64::MIN
                } else {
                    i64::from(*last_update)
                };
                for w in &windows.as_slice()[..n] {
                    let start = i64::from(w.start);
                    let zeros_end = start.min(zero_cutoff).min(last.saturating_add(expiry));
                    push_zeros(points, &mut next, zeros_end, window);
                    points.push((start, w.sum / window_f));
                    next = next.max(start.saturating_add(window));
                    last = last.max(i64::from(w.last_update));
                }
                push_zeros(points, &mut next, zero_cutoff.min(last.saturating_add(expiry)), window);
                if !points.is_empty() {
                    series!("", SeriesKind::Rate, window_secs, points);
                }
                windows.take_front(n, drop);
                *last_update = if last == i64::MIN { 0 } else { secs32(last) };
                let next = next.max(zero_cutoff);
                *next_window = secs32(next);
                !windows.is_empty() || last.saturating_add(expiry) > next
            }
            State::Gauge(windows) => gauges!(windows, |w: &GaugeWindow| w.value),
            State::Set(windows) => gauges!(windows, |w: &BoxWindow<HashSet<MetaString>>| {
                w.data.as_ref().map_or(0, |m| m.len()) as f64
            }),
            State::Histogram(windows) => {
                let n = windows.closed(data_cutoff);
                if n > 0 {
                    let per = histogram_series.len();
                    values.clear();
                    for w in &mut windows.as_mut_slice()[..n] {
                        summarize(w.get(), aggregates, percents, window_f, values);
                    }
                    for (i, (suffix, kind)) in histogram_series.iter().enumerate() {
                        if let Some(drop) = histogram_filter {
                            if drop(&format!("{name}{suffix}")) {
                                continue;
                            }
                        }
                        points.clear();
                        points.extend(
                            windows.as_slice()[..n]
                                .iter()
                                .enumerate()
                                .map(|(w, win)| (i64::from(win.start), values[w * per + i])),
                        );
                        series!(suffix, *kind, window_secs, points);
                    }
                    windows.take_front(n, drop);
                }
                !windows.is_empty()
            }
            State::Distribution(windows) => {
                let n = windows.closed(data_cutoff);
                if n > 0 {
                    let closed = windows.as_slice()[..n]
                        .iter()
                        .filter_map(|w| w.data.as_deref().map(|s| (i64::from(w.start), s)));
                    sketch_points += n as u64;
                    sink.sketches(name, tags.clone(), window_secs, closed)?;
                    windows.take_front(n, drop);
                }
                !windows.is_empty()
            }
            State::Free => unreachable!("free slots are skipped"),
        };

        if entry.passthrough {
            if let Some(mut pts) = passthrough.remove(&(slot as u32)) {
                pts.sort_by_key(|&(ts, _)| ts);
                let kind = if entry.class == Class::Count {
                    SeriesKind::Count
                } else {
                    SeriesKind::Gauge
                };
                series!("", kind, 0, &pts);
            }
            entry.passthrough = false;
        }
        telemetry.series_points.add(series_points);
        telemetry.sketch_points.add(sketch_points);
        job.points += series_points + sketch_points;
        if !keep {
            self.remove(slot as u32);
        }
        Ok(())
    }

    /// Whether nothing is held: no open window, idle counter or timestamped
    /// metric.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

/// Pushes a 0 point for each window from `*next` up to (not including) `end`.
fn push_zeros(points: &mut Vec<(i64, f64)>, next: &mut i64, end: i64, window: i64) {
    while *next < end {
        points.push((*next, 0.0));
        *next = next.saturating_add(window);
    }
}

/// The weight of a sample sent with client-side `rate`: `1 / rate` for a rate
/// in `(0, 1]`, else 1 (the codec already clamps rates; this guards NaN).
fn inverse_rate(rate: f64) -> f64 {
    if rate > 0.0 && rate <= 1.0 {
        1.0 / rate
    } else {
        1.0
    }
}

/// Appends the values of one window's histogram series to `values`, in
/// `histogram_series` order (the Agent's `Histogram.flush`).
fn summarize(
    h: &mut Histogram,
    aggregates: &[HistogramAggregate],
    percents: &[u8],
    window_f: f64,
    values: &mut Vec<f64>,
) {
    h.sort();
    // Windows are created by their first sample, so these exist.
    let first = h.ascending().next().map_or(0.0, |s| s.0);
    let last = h.ascending().last().map_or(0.0, |s| s.0);
    let count = h.count;
    for a in aggregates {
        values.push(match a {
            HistogramAggregate::Max => last,
            HistogramAggregate::Min => first,
            HistogramAggregate::Median => weighted_rank(h, count.saturating_sub(1) / 2),
            HistogramAggregate::Avg => h.sum / count as f64,
            HistogramAggregate::Sum => h.sum,
            HistogramAggregate::Count => count as f64 / window_f,
        });
    }
    for &p in percents {
        // (p·count − 1) / 100 in integers, as the Agent computes it; u128
        // keeps p·count from overflowing.
        let target = (u128::from(p) * u128::from(count)).saturating_sub(1) / 100;
        values.push(weighted_rank(h, u64::try_from(target).unwrap_or(u64::MAX)));
    }
}

/// The first sample (ascending) whose cumulative weight exceeds `target`.
fn weighted_rank(h: &Histogram, target: u64) -> f64 {
    let mut cumulative = 0u64;
    let mut last = 0.0;
    for (v, w) in h.ascending() {
        cumulative += w;
        if cumulative > target {
            return v;
        }
        last = v;
    }
    last
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use adp_model::{context_key, Context, Series};
    use proptest::prelude::*;

    use super::*;

    /// One sample as the tests write it: a context, a type and a value.
    #[derive(Clone)]
    struct Metric {
        context: Context,
        kind: MetricKind,
        value: MetricValue,
        sample_rate: f64,
        timestamp: Option<i64>,
    }

    #[derive(Clone)]
    enum MetricValue {
        Number(f64),
        SetMember(MetaString),
    }

    impl Aggregator {
        /// Inserts one sample, as a batch of one; whether it was kept.
        fn insert_at(&mut self, m: Metric, now: i64) -> bool {
            let mut batch = MetricBatch::new();
            let tags: Vec<&str> = m.context.tags().iter().map(|t| t.as_str()).collect();
            let c = batch.add_context(m.context.name(), &tags.join(","), std::iter::empty());
            match m.value {
                MetricValue::Number(v) => batch.push_number(c, m.kind, v, m.sample_rate, m.timestamp),
                MetricValue::SetMember(s) => batch.push_member(c, &s, m.sample_rate, m.timestamp),
            }
            self.insert_batch(&batch, now, Growth::Allowed) == 1
        }
    }

    const T0: i64 = 1_700_000_000; // a window start for 10 s windows

    fn ctx(name: &str, tags: &[&str]) -> Context {
        let mut sorted: Vec<&str> = tags.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let tags: Box<[MetaString]> = sorted.iter().map(|t| MetaString::from(*t)).collect();
        Context::from_parts(context_key(name, sorted.iter().copied()), MetaString::from(name), tags)
    }

    fn metric(context: &Context, kind: MetricKind, v: f64) -> Metric {
        Metric {
            context: context.clone(),
            kind,
            value: MetricValue::Number(v),
            sample_rate: 1.0,
            timestamp: None,
        }
    }

    fn sampled(context: &Context, kind: MetricKind, v: f64, rate: f64) -> Metric {
        Metric {
            sample_rate: rate,
            ..metric(context, kind, v)
        }
    }

    fn member(context: &Context, m: &str) -> Metric {
        Metric {
            value: MetricValue::SetMember(MetaString::from(m)),
            ..metric(context, MetricKind::Set, 0.0)
        }
    }

    fn aggregator(config: AggregateConfig) -> (Aggregator, Registry) {
        let registry = Registry::new();
        (Aggregator::new(config, &registry).unwrap(), registry)
    }

    fn default_aggregator() -> Aggregator {
        aggregator(AggregateConfig::default()).0
    }

    /// An aggregator whose counters expire after `expiry` seconds, holding
    /// the counter `jobs` with `(value, at)` samples.
    fn jobs_counter(expiry: u64, samples: &[(f64, i64)]) -> (Aggregator, Registry) {
        let config = AggregateConfig {
            counter_expiry_seconds: expiry,
            ..AggregateConfig::default()
        };
        let (mut agg, registry) = aggregator(config);
        let c = ctx("jobs", &[]);
        for &(v, at) in samples {
            agg.insert_at(metric(&c, MetricKind::Count, v), at);
        }
        (agg, registry)
    }

    /// The only series named `name`.
    fn series<'a>(out: &'a Flushed, name: &str) -> &'a Series {
        let mut found = out.series.iter().filter(|s| s.name == name);
        let s = found
            .next()
            .unwrap_or_else(|| panic!("no series {name} in {:?}", names(out)));
        assert!(found.next().is_none(), "two series named {name}");
        s
    }

    fn names(out: &Flushed) -> Vec<String> {
        let mut n: Vec<String> = out.series.iter().map(|s| s.name.to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn counts_are_summed_weighted_by_sample_rate_and_sent_as_rates() {
        let mut agg = default_aggregator();
        let c = ctx("hits", &["env:prod"]);
        agg.insert_at(metric(&c, MetricKind::Count, 1.0), T0 + 1);
        agg.insert_at(sampled(&c, MetricKind::Count, 2.0, 0.5), T0 + 5);
        agg.insert_at(sampled(&c, MetricKind::Count, 3.0, 0.25), T0 + 9);
        let out = agg.flush(T0 + 10, false);
        assert_eq!(out.series.len(), 1);
        let s = &out.series[0];
        assert_eq!(s.name, "hits");
        assert_eq!(s.context, c);
        assert_eq!(s.context.tags(), ["env:prod"]);
        assert_eq!(s.kind, SeriesKind::Rate);
        assert_eq!(s.interval_secs, 10);
        // 1 + 2/0.5 + 3/0.25 = 17 over 10 s.
        assert_eq!(s.points, [(T0, 17.0 / 10.0)]);
        assert!(out.sketches.is_empty());
    }

    #[test]
    fn gauges_keep_the_last_value_of_the_window() {
        let mut agg = default_aggregator();
        let g = ctx("temp", &[]);
        for (t, v) in [(1, 3.0), (2, -7.5), (8, 42.25)] {
            agg.insert_at(sampled(&g, MetricKind::Gauge, v, 0.5), T0 + t);
        }
        let out = agg.flush(T0 + 10, false);
        let s = series(&out, "temp");
        assert_eq!((s.kind, s.interval_secs), (SeriesKind::Gauge, 10));
        assert_eq!(s.points, [(T0, 42.25)]);
    }

    #[test]
    fn sets_count_distinct_members() {
        let mut agg = default_aggregator();
        let s = ctx("users", &[]);
        for m in ["alice", "bob", "alice", "carol", "bob"] {
            agg.insert_at(member(&s, m), T0 + 3);
        }
        agg.insert_at(member(&s, "dave"), T0 + 12);
        let out = agg.flush(T0 + 20, false);
        let series = series(&out, "users");
        assert_eq!(series.kind, SeriesKind::Gauge);
        assert_eq!(series.points, [(T0, 3.0), (T0 + 10, 1.0)]);
    }

    #[test]
    fn histograms_send_the_configured_aggregates_and_percentiles() {
        let mut agg = default_aggregator();
        let h = ctx("latency", &["svc:api"]);
        // 1..=100 in shuffled order.
        for i in 0..100u32 {
            agg.insert_at(metric(&h, MetricKind::Histogram, f64::from((i * 37) % 100 + 1)), T0 + 4);
        }
        let out = agg.flush(T0 + 10, false);
        assert_eq!(
            names(&out),
            [
                "latency.95percentile",
                "latency.avg",
                "latency.count",
                "latency.max",
                "latency.median"
            ]
        );
        let value = |name: &str| {
            let s = series(&out, name);
            assert_eq!(s.context, h);
            assert_eq!(s.interval_secs, 10);
            assert_eq!(s.points.len(), 1);
            assert_eq!(s.points[0].0, T0);
            (s.kind, s.points[0].1)
        };
        assert_eq!(value("latency.max"), (SeriesKind::Gauge, 100.0));
        // Weighted rank (100 − 1) / 2 = 49: the 50th sample.
        assert_eq!(value("latency.median"), (SeriesKind::Gauge, 50.0));
        assert_eq!(value("latency.avg"), (SeriesKind::Gauge, 50.5));
        assert_eq!(value("latency.count"), (SeriesKind::Rate, 10.0));
        // Rank (95·100 − 1) / 100 = 94: the 95th sample.
        assert_eq!(value("latency.95percentile"), (SeriesKind::Gauge, 95.0));
    }

    #[test]
    fn histogram_names_follow_the_agent_for_every_aggregate_and_percentile() {
        let config = AggregateConfig {
            histogram_aggregates: HistogramAggregate::ALL.to_vec(),
            histogram_percentiles: vec![0.99, 0.5, 0.29, 0.95],
            ..AggregateConfig::default()
        };
        let (mut agg, _) = aggregator(config);
        let t = ctx("db.query", &[]);
        for v in [4.0, 1.0, 2.0, 8.0] {
            agg.insert_at(metric(&t, MetricKind::Timer, v), T0);
        }
        let out = agg.flush(T0 + 10, false);
        let got: Vec<(String, f64)> = out.series.iter().map(|s| (s.name.to_string(), s.points[0].1)).collect();
        // Configured order, then ascending percentiles.
        let expected = [
            ("db.query.max", 8.0),
            ("db.query.min", 1.0),
            ("db.query.median", 2.0),
            ("db.query.avg", 3.75),
            ("db.query.sum", 15.0),
            ("db.query.count", 0.4),
            // Rank (29·4 − 1) / 100 = 1: the second sample.
            ("db.query.29percentile", 2.0),
            ("db.query.50percentile", 2.0),
            ("db.query.95percentile", 8.0),
            ("db.query.99percentile", 8.0),
        ];
        assert_eq!(got, expected.map(|(n, v)| (n.to_owned(), v)));
    }

    #[test]
    fn histogram_sample_rates_weight_count_and_ranks_by_the_truncated_inverse() {
        let mut agg = default_aggregator();
        let h = ctx("size", &[]);
        agg.insert_at(sampled(&h, MetricKind::Histogram, 10.0, 0.5), T0); // weight 2
        agg.insert_at(sampled(&h, MetricKind::Histogram, 30.0, 0.3), T0); // weight 3 (3.33)
        agg.insert_at(metric(&h, MetricKind::Histogram, 20.0), T0); // weight 1
        let out = agg.flush(T0 + 10, false);
        let v = |name| series(&out, name).points[0].1;
        // count 2 + 3 + 1 = 6; sum 20 + 30/0.3 + 20.
        assert_eq!(v("size.count"), 0.6);
        let sum = 20.0 + 30.0 * (1.0 / 0.3) + 20.0;
        assert_eq!(v("size.avg"), sum / 6.0);
        // Sorted 10 (w2), 20 (w1), 30 (w3): rank (6−1)/2 = 2 falls on 20.
        assert_eq!(v("size.median"), 20.0);
        // Rank (95·6 − 1)/100 = 5 falls on 30.
        assert_eq!(v("size.95percentile"), 30.0);
        assert_eq!(v("size.max"), 30.0);
    }

    #[test]
    fn distributions_become_one_weighted_sketch_per_window() {
        let mut agg = default_aggregator();
        let d = ctx("payload", &["a:b"]);
        let mut expected = AgentSketch::new();
        for i in 1..=50 {
            let v = f64::from(i) * 1.5;
            let rate = if i % 2 == 0 { 0.25 } else { 1.0 };
            agg.insert_at(sampled(&d, MetricKind::Distribution, v, rate), T0 + 2);
            expected.insert_sampled(v, rate);
        }
        agg.insert_at(metric(&d, MetricKind::Distribution, 7.0), T0 + 11);
        let out = agg.flush(T0 + 20, false);
        assert!(out.series.is_empty());
        assert_eq!(out.sketches.len(), 1);
        let s = &out.sketches[0];
        assert_eq!((&s.context, s.interval_secs), (&d, 10));
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[0], (T0, expected));
        assert_eq!(s.points[0].1.count(), 25 + 25 * 4);
        assert_eq!(s.points[1].0, T0 + 10);
        assert_eq!(s.points[1].1.count(), 1);
    }

    #[test]
    fn only_closed_windows_are_flushed_and_each_only_once() {
        let mut agg = default_aggregator();
        let g = ctx("g", &[]);
        agg.insert_at(metric(&g, MetricKind::Gauge, 1.0), T0 + 9);
        agg.insert_at(metric(&g, MetricKind::Gauge, 2.0), T0 + 10);
        assert!(agg.flush(T0 + 9, false).is_empty());
        let out = agg.flush(T0 + 15, false);
        assert_eq!(series(&out, "g").points, [(T0, 1.0)]);
        assert!(agg.flush(T0 + 19, false).is_empty());
        agg.insert_at(metric(&g, MetricKind::Gauge, 3.0), T0 + 21);
        // Two windows close at once: one series, points ascending.
        let out = agg.flush(T0 + 35, false);
        assert_eq!(series(&out, "g").points, [(T0 + 10, 2.0), (T0 + 20, 3.0)]);
        assert!(agg.flush(T0 + 100, false).is_empty());
        assert_eq!(agg.context_count(), 0);
        assert!(agg.is_empty());
    }

    #[test]
    fn idle_counters_send_zeros_until_expiry_then_stop() {
        let (mut agg, registry) = jobs_counter(30, &[(5.0, T0 + 1)]);
        assert_eq!(series(&agg.flush(T0 + 10, false), "jobs").points, [(T0, 0.5)]);
        // Last update T0+1, expiry 30: zeros for windows starting before T0+31.
        for w in 1..=3 {
            let out = agg.flush(T0 + 10 * w + 10, false);
            assert_eq!(series(&out, "jobs").points, [(T0 + 10 * w, 0.0)], "window {w}");
            assert_eq!(series(&out, "jobs").kind, SeriesKind::Rate);
        }
        assert_eq!(agg.context_count(), 0, "expired counters are forgotten");
        assert!(agg.flush(T0 + 50, false).is_empty());
        assert!(agg.flush(T0 + 500, false).is_empty());
        assert_eq!(registry.value("adp_aggregate_contexts", &[]), Some(0));
    }

    /// One late flush of a counter updated twice, then one much later:
    /// `(expiry, samples, flush time, the points sent, the windows of the
    /// zeros still owed after it)`, every time in seconds after T0.
    #[test]
    fn gaps_between_counter_updates_get_zeros_only_until_the_expiry() {
        type Case = (u64, [(f64, i64); 2], i64, &'static [(i64, f64)], &'static [i64]);
        let cases: [Case; 2] = [
            // Data, zeros between, data, zeros until 32+25.
            (
                25,
                [(10.0, 5), (20.0, 32)],
                1000,
                &[(0, 1.0), (10, 0.0), (20, 0.0), (30, 2.0), (40, 0.0), (50, 0.0)],
                &[],
            ),
            // A gap longer than the expiry: the counter expired at 31 and came back.
            (
                30,
                [(1.0, 1), (3.0, 100)],
                110,
                &[(0, 0.1), (10, 0.0), (20, 0.0), (30, 0.0), (100, 0.3)],
                &[110, 120],
            ),
        ];
        let after_t0 =
            |points: &[(i64, f64)]| -> Vec<(i64, f64)> { points.iter().map(|&(t, v)| (T0 + t, v)).collect() };
        for (expiry, samples, at, sent, owed) in cases {
            let (mut agg, _) = jobs_counter(expiry, &samples.map(|(v, t)| (v, T0 + t)));
            assert_eq!(
                series(&agg.flush(T0 + at, false), "jobs").points,
                after_t0(sent),
                "expiry {expiry}"
            );
            let later = agg.flush(T0 + 5000, false);
            if owed.is_empty() {
                assert!(later.is_empty(), "expiry {expiry}: {later:?}");
            } else {
                let zeros: Vec<(i64, f64)> = owed.iter().map(|&w| (w, 0.0)).collect();
                assert_eq!(series(&later, "jobs").points, after_t0(&zeros), "expiry {expiry}");
            }
            assert_eq!(agg.context_count(), 0, "expiry {expiry}");
        }
    }

    #[test]
    fn a_zero_expiry_sends_no_zeros() {
        let (mut agg, _) = jobs_counter(0, &[(1.0, T0)]);
        assert_eq!(series(&agg.flush(T0 + 10, false), "jobs").points, [(T0, 0.1)]);
        assert_eq!(agg.context_count(), 0);
        assert!(agg.flush(T0 + 20, false).is_empty());
    }

    #[test]
    fn a_forced_flush_releases_the_open_window_at_shutdown() {
        let mut agg = default_aggregator();
        let (c, g, d) = (ctx("c", &[]), ctx("g", &[]), ctx("d", &[]));
        agg.insert_at(metric(&c, MetricKind::Count, 4.0), T0 + 3);
        agg.insert_at(metric(&g, MetricKind::Gauge, 9.0), T0 + 13);
        agg.insert_at(metric(&d, MetricKind::Distribution, 1.0), T0 + 14);
        let out = agg.flush(T0 + 14, true);
        // The counter also owes a zero for the window closed by the shutdown.
        assert_eq!(series(&out, "c").points, [(T0, 0.4), (T0 + 10, 0.0)]);
        assert_eq!(series(&out, "g").points, [(T0 + 10, 9.0)]);
        assert_eq!(out.sketches.len(), 1);
        assert_eq!(out.sketches[0].points[0].0, T0 + 10);
        // Nothing is released twice.
        let again = agg.flush(T0 + 14, true);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn timestamped_counts_and_gauges_pass_through_unaggregated() {
        let mut agg = default_aggregator();
        let (c, g, h) = (ctx("batch", &[]), ctx("level", &[]), ctx("lat", &[]));
        let stamped = |m: Metric, ts| Metric {
            timestamp: Some(ts),
            ..m
        };
        agg.insert_at(stamped(sampled(&c, MetricKind::Count, 3.0, 0.5), T0 - 100), T0 + 1);
        agg.insert_at(stamped(metric(&c, MetricKind::Count, 4.0), T0 - 200), T0 + 1);
        agg.insert_at(stamped(metric(&g, MetricKind::Gauge, 1.5), T0 - 50), T0 + 1);
        // Other types ignore the timestamp and aggregate in the arrival window.
        agg.insert_at(stamped(metric(&h, MetricKind::Histogram, 2.0), T0 - 50), T0 + 1);
        // Timestamped metrics leave at the next flush, even before windows close.
        let out = agg.flush(T0 + 2, false);
        assert_eq!(names(&out), ["batch", "level"]);
        let batch = series(&out, "batch");
        assert_eq!((batch.kind, batch.interval_secs), (SeriesKind::Count, 0));
        assert_eq!(batch.points, [(T0 - 200, 4.0), (T0 - 100, 3.0)]);
        let level = series(&out, "level");
        assert_eq!((level.kind, level.interval_secs), (SeriesKind::Gauge, 0));
        assert_eq!(level.points, [(T0 - 50, 1.5)]);
        let out = agg.flush(T0 + 10, false);
        assert_eq!(series(&out, "lat.max").points, [(T0, 2.0)]);
    }

    #[test]
    fn new_contexts_beyond_the_limit_are_dropped_and_counted() {
        let config = AggregateConfig {
            aggregate_context_limit: 2,
            ..AggregateConfig::default()
        };
        let (mut agg, registry) = aggregator(config);
        let (a, b, c) = (ctx("a", &[]), ctx("b", &[]), ctx("c", &[]));
        assert!(agg.insert_at(metric(&a, MetricKind::Gauge, 1.0), T0));
        assert!(agg.insert_at(metric(&b, MetricKind::Gauge, 1.0), T0));
        assert!(!agg.insert_at(metric(&c, MetricKind::Gauge, 1.0), T0));
        assert!(!agg.insert_at(metric(&c, MetricKind::Gauge, 2.0), T0));
        // Known contexts keep aggregating; the same name as another type is a
        // new context.
        assert!(agg.insert_at(metric(&a, MetricKind::Gauge, 5.0), T0));
        assert!(!agg.insert_at(metric(&a, MetricKind::Count, 5.0), T0));
        let dropped = [("reason", "context_limit")];
        assert_eq!(registry.value("adp_aggregate_dropped_samples", &dropped), Some(3));
        assert_eq!(registry.value("adp_aggregate_contexts", &[]), Some(2));
        let out = agg.flush(T0 + 10, false);
        assert_eq!(names(&out), ["a", "b"]);
        assert_eq!(series(&out, "a").points, [(T0, 5.0)]);
        // Flushing freed the slots.
        assert!(agg.insert_at(metric(&c, MetricKind::Gauge, 3.0), T0 + 10));
        assert_eq!(registry.value("adp_aggregate_flushed_series_points", &[]), Some(2));
    }

    #[test]
    fn types_sharing_a_name_aggregate_separately() {
        let mut agg = default_aggregator();
        let x = ctx("x", &[]);
        agg.insert_at(metric(&x, MetricKind::Count, 10.0), T0);
        agg.insert_at(metric(&x, MetricKind::Gauge, 3.0), T0);
        agg.insert_at(metric(&x, MetricKind::Distribution, 3.0), T0);
        assert_eq!(agg.context_count(), 3);
        let out = agg.flush(T0 + 10, false);
        let mut kinds: Vec<(SeriesKind, f64)> = out.series.iter().map(|s| (s.kind, s.points[0].1)).collect();
        kinds.sort_by_key(|(k, _)| *k as u8);
        assert_eq!(kinds, [(SeriesKind::Rate, 1.0), (SeriesKind::Gauge, 3.0)]);
        assert_eq!(out.sketches.len(), 1);
    }

    #[test]
    fn invalid_values_are_dropped_and_counted() {
        let (mut agg, registry) = aggregator(AggregateConfig::default());
        let x = ctx("x", &[]);
        assert!(!agg.insert_at(metric(&x, MetricKind::Gauge, f64::NAN), T0));
        assert!(!agg.insert_at(metric(&x, MetricKind::Distribution, f64::INFINITY), T0));
        // A set sample without a member (a number): the batch API cannot
        // build a member of another type.
        assert!(!agg.insert_at(metric(&x, MetricKind::Set, 1.0), T0));
        assert_eq!(
            registry.value("adp_aggregate_dropped_samples", &[("reason", "invalid_value")]),
            Some(3)
        );
        assert!(agg.is_empty());
    }

    #[test]
    fn samples_for_an_already_flushed_window_go_to_the_oldest_open_one() {
        let mut agg = default_aggregator();
        let c = ctx("c", &[]);
        agg.insert_at(metric(&c, MetricKind::Count, 1.0), T0 + 5);
        assert_eq!(series(&agg.flush(T0 + 10, false), "c").points, [(T0, 0.1)]);
        // The clock stepped back into the flushed window.
        agg.insert_at(metric(&c, MetricKind::Count, 2.0), T0 + 7);
        assert_eq!(series(&agg.flush(T0 + 20, false), "c").points, [(T0 + 10, 0.2)]);
    }

    #[test]
    fn flushed_points_are_counted_in_telemetry() {
        let (mut agg, registry) = aggregator(AggregateConfig::default());
        let (h, d) = (ctx("h", &[]), ctx("d", &[]));
        agg.insert_at(metric(&h, MetricKind::Histogram, 1.0), T0);
        agg.insert_at(metric(&d, MetricKind::Distribution, 1.0), T0);
        agg.insert_at(metric(&d, MetricKind::Distribution, 1.0), T0 + 10);
        let out = agg.flush(T0 + 20, false);
        assert_eq!(out.point_count(), 5 + 2);
        assert_eq!(registry.value("adp_aggregate_flushed_series_points", &[]), Some(5));
        assert_eq!(registry.value("adp_aggregate_flushed_sketch_points", &[]), Some(2));
    }

    #[test]
    fn an_invalid_config_is_refused() {
        let config = AggregateConfig {
            aggregate_window_duration_seconds: 0,
            ..AggregateConfig::default()
        };
        assert_eq!(
            Aggregator::new(config, &Registry::new()).unwrap_err(),
            ConfigError::ZeroWindow
        );
    }

    /// A batch of one sample per `(name, wire tags, kind, value)`.
    fn batch(samples: &[(&str, &str, MetricKind, f64)]) -> MetricBatch {
        let mut b = MetricBatch::new();
        for &(name, tags, kind, v) in samples {
            let c = b.add_context(name, tags, std::iter::empty());
            b.push_number(c, kind, v, 1.0, None);
        }
        b
    }

    #[test]
    fn one_context_per_name_tag_set_and_type_whatever_the_tag_order() {
        let mut agg = default_aggregator();
        let b = batch(&[
            ("m", "b:2,a:1", MetricKind::Count, 1.0),
            ("m", "a:1,b:2,a:1", MetricKind::Count, 2.0),
            ("m", "a:1,b:2", MetricKind::Gauge, 3.0),
        ]);
        assert_eq!(agg.insert_batch(&b, T0, Growth::Allowed), 3);
        assert_eq!(agg.context_count(), 2);
        // "m", "a:1", "b:2": each stored once.
        assert_eq!(agg.memory().strings, 3);
        let out = agg.flush(T0 + 10, false);
        let rate = out.series.iter().find(|s| s.kind == SeriesKind::Rate).unwrap();
        assert_eq!(rate.context.tags(), ["a:1", "b:2"]);
        assert_eq!(rate.points, [(T0, 0.3)]);
    }

    /// One sample of each `(kind, value)` for every name, all with `tags`.
    fn each_name<'a>(
        names: &'a [String],
        tags: &'a str,
        kinds: &[(MetricKind, f64)],
    ) -> Vec<(&'a str, &'a str, MetricKind, f64)> {
        names
            .iter()
            .flat_map(|n| kinds.iter().map(move |&(kind, v)| (n.as_str(), tags, kind, v)))
            .collect()
    }

    #[test]
    fn the_resident_parts_add_up_and_values_are_counted_until_their_window_flushes() {
        let mut agg = default_aggregator();
        let names: Vec<String> = (0..50).map(|i| format!("latency.{i}")).collect();
        let kinds = [
            (MetricKind::Distribution, 1.5),
            (MetricKind::Histogram, 2.5),
            (MetricKind::Gauge, 3.5),
        ];
        agg.insert_batch(
            &batch(&each_name(&names, "env:prod,zone:a", &kinds)),
            T0,
            Growth::Allowed,
        );
        let memory = agg.memory();
        let parts = memory.parts;
        assert_eq!(
            parts.labelled().iter().map(|(_, b)| b).sum::<usize>(),
            memory.resident_bytes
        );
        assert!(parts.labelled().iter().all(|&(_, b)| b > 0), "{parts:?}");
        // 52 strings ("latency.N", "env:prod", "zone:a"), each with a 5-byte header.
        let string_bytes: usize = names.iter().map(String::len).sum::<usize>() + "env:prod".len() + "zone:a".len();
        assert_eq!(parts.strings, string_bytes + 52 * 5);
        // 150 contexts, each `[len, name, tag, tag]`.
        assert_eq!(parts.tag_lists, 150 * 4 * 4);
        // 50 sketches and 50 histograms on the heap, gauges inline.
        let values = agg.value_heap_bytes();
        let least = 50 * (std::mem::size_of::<AgentSketch>() + std::mem::size_of::<Histogram>() + 8);
        assert!(values >= least, "{values} < {least}");
        agg.flush(T0 + 10, false);
        assert_eq!(agg.value_heap_bytes(), 0);
    }

    #[test]
    fn flushed_contexts_give_back_their_strings_and_slots() {
        let mut agg = default_aggregator();
        let names: Vec<String> = (0..100).map(|i| format!("metric.with.a.long.name.{i}")).collect();
        let gauge = [(MetricKind::Gauge, 1.0)];
        agg.insert_batch(
            &batch(&each_name(&names, "env:prod,service:web", &gauge)),
            T0,
            Growth::Allowed,
        );
        assert_eq!((agg.context_count(), agg.memory().strings), (100, 102));
        assert_eq!(agg.flush(T0 + 10, false).series.len(), 100);
        assert_eq!((agg.context_count(), agg.memory().strings), (0, 0));
        let held = agg.memory().allocated_bytes;
        assert!(agg.is_empty());
        // The same number of new contexts fits the memory already held.
        let renamed: Vec<String> = names.iter().map(|n| n.replace("metric", "gauges")).collect();
        let samples = each_name(&renamed, "env:prod,service:api", &gauge);
        assert_eq!(agg.insert_batch(&batch(&samples), T0 + 10, Growth::ReuseOnly), 100);
        // Only the index may have grown (hashbrown resizes over tombstones).
        assert!(
            agg.memory().allocated_bytes < held + 4096,
            "{} > {held}",
            agg.memory().allocated_bytes
        );
    }

    #[test]
    fn strings_past_the_interner_go_to_the_heap_or_refuse_their_context() {
        let long = |i: usize| format!("{i:03}-{}", "x".repeat(60));
        let names: Vec<String> = (0..50).map(long).collect();
        let samples: Vec<(&str, &str, MetricKind, f64)> =
            names.iter().map(|n| (n.as_str(), "", MetricKind::Count, 1.0)).collect();
        let registry = Registry::new();
        let mut heap = Aggregator::new(AggregateConfig::default(), &registry)
            .unwrap()
            .with_interner(1024, true);
        assert_eq!(heap.insert_batch(&batch(&samples), T0, Growth::Allowed), 50);
        let memory = heap.memory();
        assert_eq!(memory.strings, 50);
        assert!(memory.heap_bytes > 0 && memory.interner_bytes <= 1024, "{memory:?}");
        let fallbacks = registry.value("adp_context_interner_fallback_strings", &[]).unwrap();
        assert!((34..50).contains(&fallbacks), "{fallbacks} heap strings");
        assert_eq!(heap.flush(T0 + 10, false).series.len(), 50);

        let registry = Registry::new();
        let mut strict = Aggregator::new(AggregateConfig::default(), &registry)
            .unwrap()
            .with_interner(1024, false);
        let kept = strict.insert_batch(&batch(&samples), T0, Growth::Allowed);
        assert!((1..50).contains(&kept), "{kept}");
        assert_eq!(
            registry.value("adp_aggregate_dropped_samples", &[("reason", "interner_full")]),
            Some(50 - kept as i64)
        );
        // Refused contexts took no string with them.
        assert_eq!(strict.memory().strings, kept);
    }

    #[test]
    fn without_growth_new_contexts_are_refused_and_known_ones_aggregate() {
        let (mut agg, registry) = aggregator(AggregateConfig::default());
        agg.insert_batch(&batch(&[("known", "", MetricKind::Count, 1.0)]), T0, Growth::Allowed);
        let names: Vec<String> = (0..10_000).map(|i| format!("new.{i}")).collect();
        let samples = each_name(&names, "", &[(MetricKind::Count, 1.0)]);
        // Nothing was freed: not one new context fits.
        let kept = agg.insert_batch(&batch(&samples), T0, Growth::ReuseOnly);
        assert_eq!(kept, 0);
        let refused = registry
            .value("adp_aggregate_dropped_samples", &[("reason", "memory_limit")])
            .unwrap();
        assert_eq!(refused, 10_000 - kept as i64);
        assert_eq!(
            agg.insert_batch(&batch(&[("known", "", MetricKind::Count, 2.0)]), T0, Growth::ReuseOnly),
            1
        );
        let out = agg.flush(T0 + 10, false);
        assert_eq!(series(&out, "known").points, [(T0, 0.3)]);
    }

    #[test]
    fn a_histogram_filter_drops_the_series_it_names_and_sends_the_rest() {
        let mut agg = default_aggregator();
        let suffixes: Vec<String> = agg.histogram_suffixes().map(str::to_owned).collect();
        assert_eq!(suffixes, [".max", ".median", ".avg", ".count", ".95percentile"]);
        agg.set_histogram_filter(|name| name == "lat.max" || name == "lat.95percentile");
        let (lat, other) = (ctx("lat", &[]), ctx("other", &[]));
        agg.insert_at(metric(&lat, MetricKind::Histogram, 3.0), T0);
        agg.insert_at(metric(&other, MetricKind::Histogram, 3.0), T0);
        agg.insert_at(metric(&ctx("lat.max", &[]), MetricKind::Gauge, 1.0), T0);
        let out = agg.flush(T0 + 10, false);
        let mut names: Vec<&str> = out.series.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "lat.avg",
                "lat.count",
                "lat.max",
                "lat.median",
                "other.95percentile",
                "other.avg",
                "other.count",
                "other.max",
                "other.median"
            ]
        );
        assert_eq!(
            series(&out, "lat.max").kind,
            SeriesKind::Gauge,
            "only histogram series are filtered"
        );
    }

    #[test]
    fn contexts_lists_every_context_held_until_it_is_flushed_away() {
        let mut agg = default_aggregator();
        let (a, b) = (ctx("a", &["t:1"]), ctx("b", &[]));
        agg.insert_at(metric(&a, MetricKind::Gauge, 1.0), T0);
        agg.insert_at(metric(&a, MetricKind::Distribution, 1.0), T0);
        agg.insert_at(
            Metric {
                timestamp: Some(T0),
                ..metric(&b, MetricKind::Gauge, 1.0)
            },
            T0,
        );
        let mut names: Vec<String> = agg.contexts().map(|c| c.name().to_string()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "a", "b"], "one entry per type, and timestamped ones");
        agg.flush(T0 + 10, false);
        assert_eq!(agg.contexts().count(), 0);
    }

    /// An aggregator sending every histogram aggregate and the 50th, 95th and
    /// 99th percentiles, and the context `h`.
    fn every_histogram_aggregate() -> (Aggregator, Context) {
        let config = AggregateConfig {
            histogram_aggregates: HistogramAggregate::ALL.to_vec(),
            histogram_percentiles: vec![0.5, 0.95, 0.99],
            ..AggregateConfig::default()
        };
        (aggregator(config).0, ctx("h", &[]))
    }

    /// Every rank `h`'s series in `out` sent is that of `sorted`, the window's
    /// samples (each as many times as its weight) in ascending order.
    fn assert_ranks(out: &Flushed, sorted: &[f64]) -> Result<(), TestCaseError> {
        let n = sorted.len();
        let v = |name: &str| series(out, name).points[0].1;
        prop_assert_eq!(v("h.max"), sorted[n - 1]);
        prop_assert_eq!(v("h.min"), sorted[0]);
        prop_assert_eq!(v("h.median"), sorted[(n - 1) / 2]);
        prop_assert_eq!(v("h.50percentile"), sorted[(50 * n - 1) / 100]);
        prop_assert_eq!(v("h.95percentile"), sorted[(95 * n - 1) / 100]);
        prop_assert_eq!(v("h.99percentile"), sorted[(99 * n - 1) / 100]);
        prop_assert_eq!(v("h.count"), n as f64 / 10.0);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn property_test_counts_are_conserved_across_windows_and_flushes(
            samples in prop::collection::vec((0i64..120, -1000i32..1000, 0usize..3), 1..200),
            flushes in prop::collection::vec(0i64..130, 0..10),
        ) {
            let (mut agg, _) = aggregator(AggregateConfig { counter_expiry_seconds: 20, ..AggregateConfig::default() });
            let contexts = [ctx("a", &[]), ctx("b", &["t:1"]), ctx("c", &["t:2"])];
            let mut samples = samples;
            samples.sort_by_key(|s| s.0);
            let mut flushes = flushes;
            flushes.sort_unstable();
            let mut flush_at = flushes.into_iter().peekable();
            let mut outputs = Vec::new();
            let mut expected = [0i64; 3];
            for (t, v, c) in samples {
                while let Some(f) = flush_at.next_if(|f| *f <= t) {
                    outputs.push(agg.flush(T0 + f, false));
                }
                agg.insert_at(metric(&contexts[c], MetricKind::Count, f64::from(v)), T0 + t);
                expected[c] += i64::from(v);
            }
            outputs.push(agg.flush(T0 + 130, true));
            let mut got = [0i64; 3];
            let mut seen: Vec<(usize, i64)> = Vec::new();
            for s in outputs.iter().flat_map(|o| &o.series) {
                let c = contexts.iter().position(|x| *x == s.context).unwrap();
                prop_assert_eq!(s.kind, SeriesKind::Rate);
                for &(ts, rate) in &s.points {
                    prop_assert_eq!(ts.rem_euclid(10), 0);
                    // Each window of a context is sent once.
                    prop_assert!(!seen.contains(&(c, ts)), "window {} of context {} sent twice", ts, c);
                    seen.push((c, ts));
                    let count = rate * 10.0;
                    prop_assert!((count - count.round()).abs() < 1e-9);
                    got[c] += count.round() as i64;
                }
            }
            prop_assert_eq!(got, expected);
        }

        /// A flush run in steps of a few contexts, with samples for the open
        /// window arriving between the steps, sends what one flush sends.
        #[test]
        fn property_test_a_flush_in_steps_with_inserts_between_sends_the_same(
            samples in prop::collection::vec((0usize..40, 0u8..4, -100i32..100), 1..300),
            late in prop::collection::vec((0usize..40, -100i32..100), 0..50),
            step in 1usize..7,
        ) {
            let kinds = [MetricKind::Count, MetricKind::Gauge, MetricKind::Distribution, MetricKind::Histogram];
            let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
            let b = {
                let mut b = MetricBatch::new();
                for &(n, k, v) in &samples {
                    let c = b.add_context(&names[n], "t:1", std::iter::empty());
                    b.push_number(c, kinds[usize::from(k)], f64::from(v), 1.0, None);
                }
                b
            };
            let (mut whole, _) = aggregator(AggregateConfig::default());
            let (mut stepped, _) = aggregator(AggregateConfig::default());
            whole.insert_batch(&b, T0, Growth::Allowed);
            stepped.insert_batch(&b, T0, Growth::Allowed);
            let expected = whole.flush(T0 + 10, false);
            let mut got = Flushed::default();
            let mut job = stepped.start_flush(T0 + 10, false);
            let mut late = late.into_iter();
            while !stepped.flush_step(&mut job, &mut got, step).unwrap() {
                if let Some((n, v)) = late.next() {
                    let mut b = MetricBatch::new();
                    let c = b.add_context(&names[n], "t:1", std::iter::empty());
                    b.push_number(c, MetricKind::Gauge, f64::from(v), 1.0, None);
                    stepped.insert_batch(&b, T0 + 11, Growth::Allowed);
                }
            }
            let key = |s: &Series| (s.name.to_string(), s.kind as u8);
            let mut a = expected.series.clone();
            let mut g = got.series.clone();
            a.sort_by_key(key);
            g.sort_by_key(key);
            prop_assert_eq!(a, g);
            prop_assert_eq!(expected.sketches.len(), got.sketches.len());
        }

        #[test]
        fn property_test_histogram_ranks_match_the_sorted_samples(
            values in prop::collection::vec(-1e6f64..1e6, 1..300),
        ) {
            let (mut agg, h) = every_histogram_aggregate();
            for &v in &values {
                agg.insert_at(metric(&h, MetricKind::Histogram, v), T0);
            }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            assert_ranks(&agg.flush(T0 + 10, false), &sorted)?;
        }

        /// Sampled and unsampled values mixed: every rank is that of the list
        /// in which each value appears as many times as its weight.
        #[test]
        fn property_test_weighted_histogram_ranks_match_the_expanded_samples(
            samples in prop::collection::vec((-1e3f64..1e3, prop::sample::select(vec![1.0, 1.0, 0.5, 0.25, 0.3])), 1..200),
        ) {
            let (mut agg, h) = every_histogram_aggregate();
            let mut expanded = Vec::new();
            for &(v, rate) in &samples {
                agg.insert_at(sampled(&h, MetricKind::Histogram, v, rate), T0);
                expanded.extend(std::iter::repeat_n(v, (1.0 / rate) as usize));
            }
            expanded.sort_by(f64::total_cmp);
            assert_ranks(&agg.flush(T0 + 10, false), &expanded)?;
        }
    }
}
