//! Memory bounds and the global memory limiter.
//!
//! # Bounds
//!
//! Each component declares [`MemoryBounds`] on its settings: a *minimum* (what it holds as
//! soon as it starts: receive buffers, the interner's arena) and a *firm* bound
//! (the most it can hold once every configured limit is reached: full queues,
//! `aggregate_context_limit` contexts, a full retry queue). The sums are logged at
//! start. With `memory_mode: strict` a firm sum above the usable limit
//! (`memory_limit` less `memory_slop_factor`) refuses to start, naming the
//! largest component and its key; `permissive` only warns.
//!
//! # Limiter
//!
//! A task reads the resident set size from `/proc/self/statm` every 250 ms. When
//! it is above 95 % of the usable limit, each DogStatsD listener waits 1 ms (at
//! 95 %) up to 25 ms (at or above 100 %) before handing over each batch (the
//! source's [`Pacer`](adp_dogstatsd::Pacer)), so it reads its socket no faster
//! and the socket buffer absorbs or drops the excess — the kernel counts those
//! drops, and no memory is allocated for them. The aggregator keeps draining
//! the queue at full speed: waiting there instead would only move the excess
//! into up to `dogstatsd_queue_size` decoded batches, tens of MiB at the
//! default 1024. Every wait is counted
//! (`adp_memory_backpressure_events_total`,
//! `adp_memory_backpressure_delay_microseconds_total`).
//!
//! New contexts are what grows without bound under load (every new name and
//! tag set a client sends), so they are refused before the limit is reached:
//! the aggregator takes a reading before each batch, [`Admission`] projects
//! the RSS from it plus what the context store has grown since, and once
//! that reaches 90 % of the usable limit the aggregator admits a new context
//! only into memory it has already written (freed contexts' slots, strings
//! and lists; not spare capacity, whose pages are not resident), refusing and
//! counting the rest (`adp_aggregate_dropped_samples_total{reason="memory_limit"}`,
//! logged once per flush). Known contexts keep aggregating.
//!
//! All sizes are `u64` and the arithmetic is checked or done in `u128`, so
//! limits above 4 GiB behave on 32-bit targets as on 64-bit ones.
//!
//! # Missing
//!
//! - Bounds are computed from configuration with per-item size estimates, not
//!   measured allocations; no component is stopped or shed when over its bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adp_aggregate::Growth;
use adp_config::{key, parse, ConfigValue, MemoryBounds, Reader};
use adp_telemetry::{Counter, Gauge, Registry};
use tokio::sync::watch;

use crate::api::stopped;

/// The global memory limiter's keys.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryConfig {
    /// `memory_limit`: the process's memory budget (RSS) in bytes (units such as
    /// `256MiB` accepted); 0 turns the limiter off. Defaults to 0.
    pub memory_limit: u64,
    /// `memory_slop_factor`: the fraction of `memory_limit` held back for memory
    /// that no component accounts for (allocator overhead, stacks, code). The
    /// components' firm bounds must fit in the rest. 0 to 0.9. Defaults to 0.25.
    pub memory_slop_factor: f64,
    /// `memory_mode`: `disabled` (no checks, no limiter), `permissive` (bounds
    /// logged, limiter applies back pressure near the limit) or `strict` (as
    /// permissive, and refuse to start when the firm bounds exceed the limit).
    /// Defaults to `permissive`.
    pub memory_mode: MemoryMode,
}

impl MemoryConfig {
    /// The bytes left for components once the slop is held back (`None` when no limit is set).
    pub fn effective_limit(&self) -> Option<u64> {
        if self.memory_limit == 0 || self.memory_mode == MemoryMode::Disabled {
            return None;
        }
        // Integer math in per-mille so that 32-bit targets and huge limits are exact enough.
        let keep_per_mille = 1000 - (self.memory_slop_factor * 1000.0).round().clamp(0.0, 1000.0) as u64;
        Some(self.memory_limit / 1000 * keep_per_mille + self.memory_limit % 1000 * keep_per_mille / 1000)
    }
}

/// `memory_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// No bounds checks and no limiter.
    Disabled,
    /// Bounds logged; the limiter applies back pressure near the limit.
    Permissive,
    /// As permissive, and starting fails when the firm bounds exceed the limit.
    Strict,
}

impl MemoryConfig {
    /// Reads the limiter's keys (this binary owns them).
    pub fn read(r: &mut Reader) -> Self {
        Self {
            memory_limit: r.get(key!("memory_limit"), 0, parse::byte_size),
            memory_slop_factor: r.get(
                key!("memory_slop_factor"),
                0.25,
                parse::float("a fraction between 0 and 0.9", |v| (0.0..=0.9).contains(&v)),
            ),
            memory_mode: r.get(
                key!("memory_mode"),
                MemoryMode::Permissive,
                parse::choice(&[
                    ("disabled", MemoryMode::Disabled),
                    ("permissive", MemoryMode::Permissive),
                    ("strict", MemoryMode::Strict),
                ]),
            ),
        }
    }
}

impl ConfigValue for MemoryMode {
    fn show(&self) -> serde_json::Value {
        serde_json::Value::from(match self {
            Self::Disabled => "disabled",
            Self::Permissive => "permissive",
            Self::Strict => "strict",
        })
    }
}

/// How often RSS is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
const MIN_DELAY_US: u64 = 1_000;
const MAX_DELAY_US: u64 = 25_000;

/// The sums of every component's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundsSummary {
    /// Sum of the minimums.
    pub minimum: u64,
    /// Sum of the firm bounds.
    pub firm: u64,
}

/// Sums and logs the bounds; in strict mode, fails when the firm sum does not fit.
pub fn verify_bounds(config: &MemoryConfig, bounds: &[MemoryBounds]) -> anyhow::Result<BoundsSummary> {
    let summary = BoundsSummary {
        minimum: bounds.iter().fold(0u64, |acc, b| acc.saturating_add(b.minimum)),
        firm: bounds.iter().fold(0u64, |acc, b| acc.saturating_add(b.firm)),
    };
    if config.memory_mode == MemoryMode::Disabled {
        return Ok(summary);
    }
    for b in bounds {
        tracing::debug!(
            component = b.component,
            minimum_bytes = b.minimum,
            firm_bytes = b.firm,
            "Component memory bounds."
        );
    }
    let limit = config.effective_limit();
    tracing::info!(
        minimum_bytes = summary.minimum,
        firm_bytes = summary.firm,
        usable_limit_bytes = limit.unwrap_or(0),
        memory_mode = ?config.memory_mode,
        "Memory bounds computed."
    );
    if let Some(limit) = limit.filter(|l| summary.firm > *l) {
        let largest = bounds.iter().max_by_key(|b| b.firm);
        let detail: Vec<String> = bounds.iter().map(|b| format!("{} {}", b.component, b.firm)).collect();
        let hint = largest
            .map(|b| format!("lower `{}` ({} is the largest), ", b.key, b.component))
            .unwrap_or_default();
        let message = format!(
            "the components' firm memory bounds ({} bytes: {}) exceed the usable memory limit ({limit} bytes = \
             `memory_limit` {} less `memory_slop_factor` {}); {hint}raise `memory_limit`, or set `memory_mode: permissive`",
            summary.firm,
            detail.join(", "),
            config.memory_limit,
            config.memory_slop_factor,
        );
        if config.memory_mode == MemoryMode::Strict {
            anyhow::bail!(message);
        }
        tracing::warn!("{message}");
    }
    Ok(summary)
}

/// The back-pressure delay for `rss` bytes against `limit`: none below 95 %,
/// 1 ms at 95 % rising linearly to 25 ms at 100 % and above.
pub fn backpressure_delay(rss: u64, limit: u64) -> Option<Duration> {
    if limit == 0 {
        return None;
    }
    let (rss, limit) = (u128::from(rss), u128::from(limit));
    let threshold = limit * 95 / 100;
    if rss < threshold {
        return None;
    }
    let span = (limit - threshold).max(1);
    let over = (rss - threshold).min(span);
    let extra = u128::from(MAX_DELAY_US - MIN_DELAY_US) * over / span;
    // `extra` <= MAX - MIN by construction, so the conversion cannot fail.
    Some(Duration::from_micros(
        MIN_DELAY_US + u64::try_from(extra).unwrap_or(MAX_DELAY_US - MIN_DELAY_US),
    ))
}

/// New contexts may grow memory below this share of the usable limit (per mille).
const CONTEXT_MARK_PER_MILLE: u64 = 900;

struct Shared {
    limit: u64,
    rss: AtomicU64,
    /// Counts RSS readings, so that a reader can tell a new one.
    readings: AtomicU64,
    rss_gauge: Gauge,
    events: Counter,
    delay_us: Counter,
}

/// The global limiter. Cloning shares it.
#[derive(Clone)]
pub struct MemoryLimiter {
    shared: Arc<Shared>,
}

impl MemoryLimiter {
    /// A limiter for `limit` bytes (`None`: only RSS is reported), counting into `registry`.
    pub fn new(limit: Option<u64>, registry: &Registry) -> Self {
        registry
            .gauge("adp_memory_limit_bytes", "The usable memory limit (0: no limit).", &[])
            .set(i64::try_from(limit.unwrap_or(0)).unwrap_or(i64::MAX));
        Self {
            shared: Arc::new(Shared {
                limit: limit.unwrap_or(0),
                rss: AtomicU64::new(0),
                readings: AtomicU64::new(0),
                rss_gauge: registry.gauge("adp_memory_rss_bytes", "Resident set size of the process.", &[]),
                events: registry.counter(
                    "adp_memory_backpressure_events",
                    "Times the pipeline waited because memory use was near the limit.",
                    &[],
                ),
                delay_us: registry.counter(
                    "adp_memory_backpressure_delay_microseconds",
                    "Time the pipeline spent waiting because memory use was near the limit.",
                    &[],
                ),
            }),
        }
    }

    /// Records a new RSS reading.
    pub fn observe(&self, rss: u64) {
        self.shared.rss.store(rss, Ordering::Relaxed);
        self.shared.readings.fetch_add(1, Ordering::Release);
        self.shared.rss_gauge.set(i64::try_from(rss).unwrap_or(i64::MAX));
    }

    /// Takes a reading now, when a limit is set: the aggregator does before
    /// each batch, as a flood of new contexts outgrows a reading 250 ms old
    /// (reading `/proc/self/statm` costs microseconds; a batch holds up to 32
    /// datagrams).
    pub fn refresh(&self) {
        if self.shared.limit > 0 {
            if let Ok(rss) = read_rss() {
                self.observe(rss);
            }
        }
    }

    /// The RSS above which new contexts may not grow memory (`None`: no limit).
    fn context_mark(&self) -> Option<u64> {
        let limit = u128::from(self.shared.limit);
        (limit > 0).then(|| u64::try_from(limit * u128::from(CONTEXT_MARK_PER_MILLE) / 1000).unwrap_or(u64::MAX))
    }

    /// The last RSS reading and its sequence number.
    fn reading(&self) -> (u64, u64) {
        let seq = self.shared.readings.load(Ordering::Acquire);
        (seq, self.shared.rss.load(Ordering::Relaxed))
    }

    /// The wait the current memory use asks of the next batch (usually none),
    /// counted as waited: the DogStatsD listeners' [`Pacer`](adp_dogstatsd::Pacer).
    pub fn delay(&self) -> Option<Duration> {
        let delay = backpressure_delay(self.shared.rss.load(Ordering::Relaxed), self.shared.limit)?;
        self.shared.events.inc();
        self.shared
            .delay_us
            .add(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX));
        Some(delay)
    }

    /// Polls RSS every [`POLL_INTERVAL`] until `shutdown` turns true.
    pub async fn poll(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => match read_rss() {
                    Ok(rss) => self.observe(rss),
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!(error = %e, "Cannot read the resident set size from /proc/self/statm; the memory limiter is blind.");
                    }
                    Err(_) => {}
                },
                () = stopped(&mut shutdown) => return,
            }
        }
    }
}

/// Decides, batch by batch, whether new contexts may grow the aggregator's
/// memory: the RSS of the last reading (every [`POLL_INTERVAL`]) plus what the
/// context store has grown since, against 90 % of the usable limit. The
/// projection closes the gap between readings, when a flood of new contexts
/// could otherwise outgrow the limit before the next one.
#[derive(Debug, Default)]
pub struct Admission {
    seq: u64,
    /// The store's resident bytes when the reading `seq` was seen.
    base: u64,
}

impl Admission {
    /// The growth allowed for the next batch, the context store holding
    /// `store_resident` bytes now.
    pub fn growth(&mut self, limiter: &MemoryLimiter, store_resident: u64) -> Growth {
        let Some(mark) = limiter.context_mark() else {
            return Growth::Allowed;
        };
        let (seq, rss) = limiter.reading();
        if seq != self.seq {
            self.seq = seq;
            self.base = store_resident;
        }
        let projected = rss.saturating_add(store_resident.saturating_sub(self.base));
        if projected < mark {
            Growth::Allowed
        } else {
            Growth::ReuseOnly
        }
    }
}

/// The resident set size in bytes: `/proc/self/statm`'s second field (pages) × the page size.
pub fn read_rss() -> std::io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    parse_statm_rss(&statm, page_size())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected statm: {statm:?}")))
}

fn parse_statm_rss(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(firm: &[(&'static str, u64)]) -> Vec<MemoryBounds> {
        firm.iter()
            .map(|(name, firm)| MemoryBounds {
                component: name,
                minimum: firm / 2,
                firm: *firm,
                key: "some_key",
            })
            .collect()
    }

    fn memory(limit: u64, mode: MemoryMode) -> MemoryConfig {
        MemoryConfig {
            memory_limit: limit,
            memory_slop_factor: 0.25,
            memory_mode: mode,
        }
    }

    #[test]
    fn backpressure_starts_at_95_percent_and_caps_at_25_ms() {
        let limit = 1_000_000;
        assert_eq!(backpressure_delay(949_999, limit), None);
        assert_eq!(backpressure_delay(950_000, limit), Some(Duration::from_millis(1)));
        assert_eq!(backpressure_delay(975_000, limit), Some(Duration::from_millis(13)));
        assert_eq!(backpressure_delay(1_000_000, limit), Some(Duration::from_millis(25)));
        assert_eq!(backpressure_delay(u64::MAX, limit), Some(Duration::from_millis(25)));
        assert_eq!(backpressure_delay(u64::MAX, 0), None, "no limit, no delay");
    }

    #[test]
    fn limits_above_four_gibibytes_do_not_overflow() {
        let limit = 16u64 << 30;
        assert_eq!(backpressure_delay(limit / 2, limit), None);
        assert_eq!(backpressure_delay(limit, limit), Some(Duration::from_millis(25)));
        assert_eq!(backpressure_delay(u64::MAX, u64::MAX), Some(Duration::from_millis(25)));
    }

    #[test]
    fn statm_resident_pages_times_the_page_size_is_the_rss() {
        assert_eq!(parse_statm_rss("2613 1024 512 1 0 300 0\n", 4096), Some(4 << 20));
        assert_eq!(parse_statm_rss("2613", 4096), None);
        assert_eq!(
            parse_statm_rss("1 2000000 0", 1 << 12),
            Some(2_000_000u64 << 12),
            "beyond 4 GiB stays exact"
        );
        assert!(read_rss().unwrap() > 0);
    }

    #[test]
    fn strict_mode_refuses_firm_bounds_over_the_usable_limit_and_names_the_largest() {
        let b = bounds(&[("dogstatsd", 100), ("aggregator", 700)]);
        let err = verify_bounds(&memory(1000, MemoryMode::Strict), &b)
            .unwrap_err()
            .to_string();
        assert!(err.contains("800 bytes: dogstatsd 100, aggregator 700"), "{err}");
        assert!(err.contains("usable memory limit (750 bytes"), "{err}");
        assert!(err.contains("aggregator is the largest"), "{err}");
        let summary = verify_bounds(&memory(1000, MemoryMode::Permissive), &b).unwrap();
        assert_eq!(
            summary,
            BoundsSummary {
                minimum: 400,
                firm: 800
            }
        );
        verify_bounds(&memory(2000, MemoryMode::Strict), &b).unwrap();
        verify_bounds(&memory(0, MemoryMode::Strict), &b).unwrap();
    }

    #[test]
    fn new_contexts_may_grow_memory_until_the_projected_rss_reaches_90_percent() {
        let registry = Registry::new();
        let mut admission = Admission::default();
        let unlimited = MemoryLimiter::new(None, &registry);
        unlimited.observe(u64::MAX / 2);
        assert_eq!(admission.growth(&unlimited, u64::MAX / 2), Growth::Allowed);

        let limiter = MemoryLimiter::new(Some(1_000_000), &Registry::new());
        let mut admission = Admission::default();
        limiter.observe(800_000);
        assert_eq!(admission.growth(&limiter, 5_000_000), Growth::Allowed);
        // The store grew by 100,000 bytes since that reading: 900,000 projected.
        assert_eq!(admission.growth(&limiter, 5_099_999), Growth::Allowed);
        assert_eq!(admission.growth(&limiter, 5_100_000), Growth::ReuseOnly);
        // A new reading says where the RSS really is.
        limiter.observe(850_000);
        assert_eq!(admission.growth(&limiter, 5_100_000), Growth::Allowed);
        limiter.observe(950_000);
        assert_eq!(admission.growth(&limiter, 5_100_000), Growth::ReuseOnly);
    }

    #[test]
    fn waiting_near_the_limit_is_counted() {
        let registry = Registry::new();
        let limiter = MemoryLimiter::new(Some(1000), &registry);
        limiter.observe(100);
        assert_eq!(limiter.delay(), None);
        assert_eq!(registry.value("adp_memory_backpressure_events", &[]), Some(0));
        limiter.observe(2000);
        assert_eq!(limiter.delay(), Some(Duration::from_millis(25)));
        assert_eq!(registry.value("adp_memory_backpressure_events", &[]), Some(1));
        assert_eq!(
            registry.value("adp_memory_backpressure_delay_microseconds", &[]),
            Some(25_000)
        );
        assert_eq!(registry.value("adp_memory_rss_bytes", &[]), Some(2000));
    }
}
