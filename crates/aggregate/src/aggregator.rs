//! The [`Aggregator`]: per-context, per-window state and the flush that turns
//! closed windows into [`Series`] and [`SketchSeries`].
//!
//! # State
//!
//! One hash map holds an entry per *context*: a metric name, its tags and its
//! type class (count, gauge, set, histogram/timer or distribution, so `x:1|c`
//! and `x:1|g` aggregate separately). The map is keyed by the context's
//! precomputed 64-bit key, hashed with an identity hasher, so a sample costs
//! one probe and no allocation unless it opens a new context or window.
//! Each entry holds its unflushed windows, oldest first (normally one, two
//! around a window boundary). A flush drains the closed windows and removes
//! entries with nothing left, so memory follows the live contexts, not
//! history. Counters stay after their last window while they still owe zeros.
//!
//! # Time
//!
//! The aggregator keeps no clock. [`Aggregator::insert_at`] takes the arrival
//! time and [`Aggregator::flush`] the current time, both in Unix seconds, so
//! tests drive time explicitly; [`Aggregator::insert`] reads the wall clock.
//! A sample whose window was already flushed (the clock stepped back) goes to
//! the oldest open window rather than producing a second point for a
//! timestamp the intake already has.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use adp_model::{Context, Flushed, Metric, MetricKind, MetricValue, Series, SeriesKind, SketchSeries};
use adp_telemetry::{Counter, Gauge, Registry};
use ddsketch::AgentSketch;
use stringtheory::MetaString;

use crate::config::{AggregateConfig, ConfigError, HistogramAggregate};

/// A `Hasher` for keys that already are good 64-bit hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `EntryKey`; fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdentityMap<K, V> = HashMap<K, V, BuildHasherDefault<IdentityHasher>>;

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
}

#[derive(Clone, PartialEq, Eq)]
struct EntryKey {
    context: Context,
    class: Class,
}

impl Hash for EntryKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The context key is an xxh3-based hash already; spread the class
        // with a Fibonacci multiplier so the classes of one context differ.
        let class = (self.class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        state.write_u64(self.context.key() ^ class);
    }
}

/// One window of a counter: the weighted sum and the arrival time of its
/// latest sample (which decides the zeros owed after it).
struct CounterWindow {
    sum: f64,
    last_update: i64,
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

/// The unflushed windows of one context, `(window start, state)`, ascending.
enum Windows {
    Count(Vec<(i64, CounterWindow)>),
    Gauge(Vec<(i64, f64)>),
    Set(Vec<(i64, HashSet<MetaString>)>),
    Histogram(Vec<(i64, Histogram)>),
    Distribution(Vec<(i64, AgentSketch)>),
}

impl Windows {
    fn new(class: Class) -> Self {
        match class {
            Class::Count => Self::Count(Vec::new()),
            Class::Gauge => Self::Gauge(Vec::new()),
            Class::Set => Self::Set(Vec::new()),
            Class::Histogram => Self::Histogram(Vec::new()),
            Class::Distribution => Self::Distribution(Vec::new()),
        }
    }
}

/// The state of window `start`, created with `init` if absent.
fn window_mut<T>(windows: &mut Vec<(i64, T)>, start: i64, init: impl FnOnce() -> T) -> &mut T {
    // The newest window is last and the most likely target.
    let at = match windows.iter().rposition(|(s, _)| *s <= start) {
        Some(i) if windows[i].0 == start => i,
        Some(i) => {
            windows.insert(i + 1, (start, init()));
            i + 1
        }
        None => {
            windows.insert(0, (start, init()));
            0
        }
    };
    &mut windows[at].1
}

/// The number of leading windows that start before `cutoff`.
fn closed<T>(windows: &[(i64, T)], cutoff: i64) -> usize {
    windows.partition_point(|(s, _)| *s < cutoff)
}

struct Entry {
    windows: Windows,
    /// Counters: arrival time of the latest sample in a flushed window.
    last_update: i64,
    /// Counters: the first window not yet flushed (as data or as a zero).
    next_window: i64,
}

/// A sample's value after validation.
enum Sample {
    Number(f64),
    Member(MetaString),
}

struct Telemetry {
    contexts: Gauge,
    dropped_context_limit: Counter,
    dropped_invalid: Counter,
    series_points: Counter,
    sketch_points: Counter,
}

impl Telemetry {
    fn new(registry: &Registry) -> Self {
        const DROPPED: &str = "adp_aggregate_dropped_samples";
        const DROPPED_HELP: &str = "Samples the aggregator dropped, by reason.";
        Self {
            contexts: registry.gauge(
                "adp_aggregate_contexts",
                "Contexts held by the aggregator: open windows and idle counters still sending zeros.",
                &[],
            ),
            dropped_context_limit: registry.counter(DROPPED, DROPPED_HELP, &[("reason", "context_limit")]),
            dropped_invalid: registry.counter(DROPPED, DROPPED_HELP, &[("reason", "invalid_value")]),
            series_points: registry.counter(
                "adp_aggregate_flushed_series_points",
                "Series points flushed (aggregated and timestamped).",
                &[],
            ),
            sketch_points: registry.counter("adp_aggregate_flushed_sketch_points", "Sketch points flushed.", &[]),
        }
    }
}

/// Aggregates DogStatsD metrics into fixed time windows with the Datadog
/// Agent's semantics (see the [crate documentation](crate)).
///
/// ```
/// use adp_aggregate::{AggregateConfig, Aggregator};
/// use adp_model::{context_key, Context, Metric, MetricKind, MetricValue, SeriesKind};
///
/// let mut agg = Aggregator::new(AggregateConfig::default(), &adp_telemetry::Registry::new()).unwrap();
/// let context = Context::from_parts(context_key("requests", []), "requests".into(), Box::new([]));
/// let hit = |v| Metric {
///     context: context.clone(),
///     kind: MetricKind::Count,
///     value: MetricValue::Number(v),
///     sample_rate: 1.0,
///     timestamp: None,
/// };
/// agg.insert_at(hit(3.0), 1_700_000_001);
/// agg.insert_at(hit(2.0), 1_700_000_009);
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
    entries: IdentityMap<EntryKey, Entry>,
    passthrough: IdentityMap<EntryKey, Vec<(i64, f64)>>,
    /// Every window starting before this has been flushed.
    flushed_until: i64,
    telemetry: Telemetry,
    /// Histogram series (by full name) not to send: see [`Aggregator::set_histogram_filter`].
    histogram_filter: Option<HistogramFilter>,
}

/// Says whether a histogram series, by its full name, is dropped at flush.
type HistogramFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("window_secs", &self.window_secs)
            .field("contexts", &self.entries.len())
            .field("passthrough_contexts", &self.passthrough.len())
            .field("flushed_until", &self.flushed_until)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Validates `config` and builds an aggregator that registers its
    /// `adp_aggregate_*` counters in `registry`.
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
            entries: IdentityMap::default(),
            passthrough: IdentityMap::default(),
            flushed_until: i64::MIN,
            telemetry: Telemetry::new(registry),
            histogram_filter: None,
        })
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

    /// Every context held: those with open windows or idle counters, then
    /// those with timestamped samples waiting for the next flush. A context
    /// with samples of two types is listed twice.
    pub fn contexts(&self) -> impl Iterator<Item = &Context> {
        self.entries
            .keys()
            .chain(self.passthrough.keys())
            .map(|key| &key.context)
    }

    /// The number of contexts held (open windows and idle counters).
    pub fn context_count(&self) -> usize {
        self.entries.len()
    }

    /// The start of the window holding `t`.
    fn window_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.window)
    }

    /// [`insert_at`](Self::insert_at) with the wall clock as arrival time.
    pub fn insert(&mut self, metric: Metric) -> bool {
        self.insert_at(metric, unix_now())
    }

    /// Adds one sample that arrived at `now_unix_secs`. Returns `false` if it
    /// was dropped: a non-finite number, a value of the wrong shape (a set
    /// member for a number type or the reverse), or a new context beyond
    /// `aggregate_context_limit`. Drops are counted in
    /// `adp_aggregate_dropped_samples`.
    ///
    /// Counts and gauges with a timestamp bypass the windows and are
    /// released as they are at the next flush; the timestamp of other types
    /// is ignored, as the Agent does.
    pub fn insert_at(&mut self, metric: Metric, now_unix_secs: i64) -> bool {
        let Metric {
            context,
            kind,
            value,
            sample_rate,
            timestamp,
        } = metric;
        let class = Class::of(kind);
        let sample = match (value, class) {
            (MetricValue::Number(v), c) if c != Class::Set && v.is_finite() => Sample::Number(v),
            (MetricValue::SetMember(m), Class::Set) => Sample::Member(m),
            _ => {
                self.telemetry.dropped_invalid.inc();
                return false;
            }
        };
        let key = EntryKey { context, class };

        if let (Some(ts), Sample::Number(v), Class::Count | Class::Gauge) = (timestamp, &sample, class) {
            // Timestamped counts ignore the sample rate (DogStatsD v1.3).
            self.passthrough.entry(key).or_default().push((ts, *v));
            return true;
        }

        let start = self.window_start(now_unix_secs).max(self.flushed_until);
        let held = self.entries.len();
        let entry = match self.entries.entry(key) {
            MapEntry::Occupied(o) => o.into_mut(),
            MapEntry::Vacant(v) => {
                if held >= self.context_limit {
                    self.telemetry.dropped_context_limit.inc();
                    return false;
                }
                self.telemetry.contexts.set(i64::try_from(held + 1).unwrap_or(i64::MAX));
                v.insert(Entry {
                    windows: Windows::new(class),
                    last_update: i64::MIN,
                    next_window: start,
                })
            }
        };
        let weight = inverse_rate(sample_rate);
        match (&mut entry.windows, sample) {
            (Windows::Count(w), Sample::Number(v)) => {
                let init = || CounterWindow {
                    sum: 0.0,
                    last_update: now_unix_secs,
                };
                let counter = window_mut(w, start, init);
                counter.sum += v * weight;
                counter.last_update = counter.last_update.max(now_unix_secs);
            }
            (Windows::Gauge(w), Sample::Number(v)) => *window_mut(w, start, || 0.0) = v,
            (Windows::Set(w), Sample::Member(m)) => {
                window_mut(w, start, HashSet::new).insert(m);
            }
            (Windows::Histogram(w), Sample::Number(v)) => {
                window_mut(w, start, Histogram::default).push(v, weight);
            }
            (Windows::Distribution(w), Sample::Number(v)) => {
                window_mut(w, start, AgentSketch::new).insert_sampled(v, sample_rate);
            }
            // The class, and so the window type, follows from the kind that
            // was checked against the value above.
            _ => unreachable!("window type and sample shape both follow from the metric kind"),
        }
        true
    }

    /// Releases every closed window: those ending at or before the start of
    /// the window holding `now_unix_secs`, plus, with `force` (shutdown), the
    /// open ones. Timestamped metrics received since the last flush are
    /// released too. Idle counters get a 0 point for each newly closed window
    /// until `counter_expiry_seconds` after their last update.
    pub fn flush(&mut self, now_unix_secs: i64, force: bool) -> Flushed {
        let current = self.window_start(now_unix_secs);
        // Windows starting before `data_cutoff` are released; counters owe
        // zeros for windows starting before `zero_cutoff`.
        let (data_cutoff, zero_cutoff) = if force {
            (i64::MAX, current.saturating_add(self.window))
        } else {
            (current, current)
        };
        let mut out = Flushed::default();
        let Self {
            window,
            window_secs,
            expiry,
            aggregates,
            percents,
            histogram_series,
            entries,
            passthrough,
            histogram_filter,
            ..
        } = self;
        let (window, window_secs, expiry) = (*window, *window_secs, *expiry);
        let window_f = window_secs as f64;

        entries.retain(|key, entry| {
            let context = &key.context;
            let series = |kind, points| Series {
                name: context.name().clone(),
                context: context.clone(),
                kind,
                interval_secs: window_secs,
                points,
            };
            match &mut entry.windows {
                Windows::Count(windows) => {
                    let n = closed(windows, data_cutoff);
                    let mut points = Vec::new();
                    let mut next = entry.next_window;
                    // A window gets a zero if it starts less than `expiry`
                    // after the last sample *before* it, so each gap between
                    // data windows is judged by the update that preceded it.
                    let mut last = entry.last_update;
                    for (start, counter) in windows.drain(..n) {
                        let zeros_end = start.min(zero_cutoff).min(last.saturating_add(expiry));
                        push_zeros(&mut points, &mut next, zeros_end, window);
                        points.push((start, counter.sum / window_f));
                        next = next.max(start.saturating_add(window));
                        last = last.max(counter.last_update);
                    }
                    push_zeros(
                        &mut points,
                        &mut next,
                        zero_cutoff.min(last.saturating_add(expiry)),
                        window,
                    );
                    entry.last_update = last;
                    entry.next_window = next.max(zero_cutoff);
                    if !points.is_empty() {
                        out.series.push(series(SeriesKind::Rate, points));
                    }
                    !windows.is_empty() || last.saturating_add(expiry) > entry.next_window
                }
                Windows::Gauge(windows) => {
                    let n = closed(windows, data_cutoff);
                    if n > 0 {
                        out.series.push(series(SeriesKind::Gauge, windows.drain(..n).collect()));
                    }
                    !windows.is_empty()
                }
                Windows::Set(windows) => {
                    let n = closed(windows, data_cutoff);
                    if n > 0 {
                        let points = windows.drain(..n).map(|(s, m)| (s, m.len() as f64)).collect();
                        out.series.push(series(SeriesKind::Gauge, points));
                    }
                    !windows.is_empty()
                }
                Windows::Histogram(windows) => {
                    let n = closed(windows, data_cutoff);
                    if n > 0 {
                        let mut per_series: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(n); histogram_series.len()];
                        for (start, mut h) in windows.drain(..n) {
                            let values = summarize(&mut h, aggregates, percents, window_f);
                            for (points, value) in per_series.iter_mut().zip(values) {
                                points.push((start, value));
                            }
                        }
                        for ((suffix, kind), points) in histogram_series.iter().zip(per_series) {
                            let name = format!("{}{suffix}", context.name());
                            if histogram_filter.as_ref().is_some_and(|drop| drop(&name)) {
                                continue;
                            }
                            out.series.push(Series {
                                name: MetaString::from(name),
                                context: context.clone(),
                                kind: *kind,
                                interval_secs: window_secs,
                                points,
                            });
                        }
                    }
                    !windows.is_empty()
                }
                Windows::Distribution(windows) => {
                    let n = closed(windows, data_cutoff);
                    if n > 0 {
                        out.sketches.push(SketchSeries {
                            context: context.clone(),
                            interval_secs: window_secs,
                            points: windows.drain(..n).collect(),
                        });
                    }
                    !windows.is_empty()
                }
            }
        });

        for (key, mut points) in passthrough.drain() {
            points.sort_by_key(|&(ts, _)| ts);
            out.series.push(Series {
                name: key.context.name().clone(),
                kind: if key.class == Class::Count {
                    SeriesKind::Count
                } else {
                    SeriesKind::Gauge
                },
                context: key.context,
                interval_secs: 0,
                points,
            });
        }

        self.flushed_until = self.flushed_until.max(zero_cutoff);
        let series_points: usize = out.series.iter().map(|s| s.points.len()).sum();
        let sketch_points: usize = out.sketches.iter().map(|s| s.points.len()).sum();
        self.telemetry.series_points.add(series_points as u64);
        self.telemetry.sketch_points.add(sketch_points as u64);
        self.telemetry
            .contexts
            .set(i64::try_from(self.entries.len()).unwrap_or(i64::MAX));
        out
    }

    /// Whether nothing is held: no open window, idle counter or timestamped
    /// metric.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.passthrough.is_empty()
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

/// The values of one window's histogram series, in `histogram_series` order
/// (the Agent's `Histogram.flush`).
fn summarize(h: &mut Histogram, aggregates: &[HistogramAggregate], percents: &[u8], window_f: f64) -> Vec<f64> {
    h.sort();
    // Windows are created by their first sample, so these exist.
    let first = h.ascending().next().map_or(0.0, |s| s.0);
    let last = h.ascending().last().map_or(0.0, |s| s.0);
    let count = h.count;
    let mut values = Vec::with_capacity(aggregates.len() + percents.len());
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
    values
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use adp_model::context_key;
    use proptest::prelude::*;

    use super::*;

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
        let config = AggregateConfig {
            counter_expiry_seconds: 30,
            ..AggregateConfig::default()
        };
        let (mut agg, registry) = aggregator(config);
        let c = ctx("jobs", &[]);
        agg.insert_at(metric(&c, MetricKind::Count, 5.0), T0 + 1);
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

    #[test]
    fn zeros_fill_the_gaps_between_counter_updates_in_one_flush() {
        let config = AggregateConfig {
            counter_expiry_seconds: 25,
            ..AggregateConfig::default()
        };
        let (mut agg, _) = aggregator(config);
        let c = ctx("jobs", &[]);
        agg.insert_at(metric(&c, MetricKind::Count, 10.0), T0 + 5);
        agg.insert_at(metric(&c, MetricKind::Count, 20.0), T0 + 32);
        // One late flush: data, zeros between, data, zeros until T0+32+25.
        let out = agg.flush(T0 + 1000, false);
        assert_eq!(
            series(&out, "jobs").points,
            [
                (T0, 1.0),
                (T0 + 10, 0.0),
                (T0 + 20, 0.0),
                (T0 + 30, 2.0),
                (T0 + 40, 0.0),
                (T0 + 50, 0.0)
            ]
        );
        assert!(agg.flush(T0 + 2000, false).is_empty());
    }

    #[test]
    fn a_gap_longer_than_the_expiry_gets_zeros_only_until_the_expiry() {
        let config = AggregateConfig {
            counter_expiry_seconds: 30,
            ..AggregateConfig::default()
        };
        let (mut agg, _) = aggregator(config);
        let c = ctx("jobs", &[]);
        agg.insert_at(metric(&c, MetricKind::Count, 1.0), T0 + 1);
        agg.insert_at(metric(&c, MetricKind::Count, 3.0), T0 + 100);
        // No flush in between: the counter expired at T0+31 and came back.
        let out = agg.flush(T0 + 110, false);
        assert_eq!(
            series(&out, "jobs").points,
            [
                (T0, 0.1),
                (T0 + 10, 0.0),
                (T0 + 20, 0.0),
                (T0 + 30, 0.0),
                (T0 + 100, 0.3)
            ]
        );
    }

    #[test]
    fn a_zero_expiry_sends_no_zeros() {
        let config = AggregateConfig {
            counter_expiry_seconds: 0,
            ..AggregateConfig::default()
        };
        let (mut agg, _) = aggregator(config);
        let c = ctx("jobs", &[]);
        agg.insert_at(metric(&c, MetricKind::Count, 1.0), T0);
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
        assert!(!agg.insert_at(metric(&x, MetricKind::Set, 1.0), T0));
        let mut wrong = member(&x, "m");
        wrong.kind = MetricKind::Count;
        assert!(!agg.insert_at(wrong, T0));
        assert_eq!(
            registry.value("adp_aggregate_dropped_samples", &[("reason", "invalid_value")]),
            Some(4)
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

        #[test]
        fn property_test_histogram_ranks_match_the_sorted_samples(
            values in prop::collection::vec(-1e6f64..1e6, 1..300),
        ) {
            let config = AggregateConfig {
                histogram_aggregates: HistogramAggregate::ALL.to_vec(),
                histogram_percentiles: vec![0.5, 0.95, 0.99],
                ..AggregateConfig::default()
            };
            let (mut agg, _) = aggregator(config);
            let h = ctx("h", &[]);
            for &v in &values {
                agg.insert_at(metric(&h, MetricKind::Histogram, v), T0);
            }
            let out = agg.flush(T0 + 10, false);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            let v = |name: &str| series(&out, name).points[0].1;
            prop_assert_eq!(v("h.max"), sorted[n - 1]);
            prop_assert_eq!(v("h.min"), sorted[0]);
            prop_assert_eq!(v("h.median"), sorted[(n - 1) / 2]);
            prop_assert_eq!(v("h.50percentile"), sorted[(50 * n - 1) / 100]);
            prop_assert_eq!(v("h.95percentile"), sorted[(95 * n - 1) / 100]);
            prop_assert_eq!(v("h.99percentile"), sorted[(99 * n - 1) / 100]);
            prop_assert_eq!(v("h.count"), n as f64 / 10.0);
        }

        /// Sampled and unsampled values mixed: every rank is that of the list
        /// in which each value appears as many times as its weight.
        #[test]
        fn property_test_weighted_histogram_ranks_match_the_expanded_samples(
            samples in prop::collection::vec((-1e3f64..1e3, prop::sample::select(vec![1.0, 1.0, 0.5, 0.25, 0.3])), 1..200),
        ) {
            let config = AggregateConfig {
                histogram_aggregates: HistogramAggregate::ALL.to_vec(),
                histogram_percentiles: vec![0.5, 0.95, 0.99],
                ..AggregateConfig::default()
            };
            let (mut agg, _) = aggregator(config);
            let h = ctx("h", &[]);
            let mut expanded = Vec::new();
            for &(v, rate) in &samples {
                agg.insert_at(sampled(&h, MetricKind::Histogram, v, rate), T0);
                expanded.extend(std::iter::repeat_n(v, (1.0 / rate) as usize));
            }
            let out = agg.flush(T0 + 10, false);
            expanded.sort_by(f64::total_cmp);
            let n = expanded.len();
            let v = |name: &str| series(&out, name).points[0].1;
            prop_assert_eq!(v("h.max"), expanded[n - 1]);
            prop_assert_eq!(v("h.min"), expanded[0]);
            prop_assert_eq!(v("h.median"), expanded[(n - 1) / 2]);
            prop_assert_eq!(v("h.50percentile"), expanded[(50 * n - 1) / 100]);
            prop_assert_eq!(v("h.95percentile"), expanded[(95 * n - 1) / 100]);
            prop_assert_eq!(v("h.99percentile"), expanded[(99 * n - 1) / 100]);
            prop_assert_eq!(v("h.count"), n as f64 / 10.0);
        }
    }
}
