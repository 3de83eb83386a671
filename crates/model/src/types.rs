//! The owned values that leave the DogStatsD source: metrics with resolved
//! contexts, events and service checks.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use stringtheory::MetaString;

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
    /// deduplicated, with `key` their [`context_key`](crate::context_key)
    /// (DogStatsD's context resolver is the normal way to get one).
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

/// The DogStatsD metric types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `c`: summed per window, sent as a rate.
    Count,
    /// `g`: last value per window.
    Gauge,
    /// `s`: distinct members per window.
    Set,
    /// `ms`: a histogram of milliseconds.
    Timer,
    /// `h`: client-side histogram aggregates.
    Histogram,
    /// `d`: a server-side sketch (DDSketch).
    Distribution,
}

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A finite number (every kind but sets).
    Number(f64),
    /// A set member: the whole value field of an `s` message.
    SetMember(MetaString),
}

/// One decoded sample. A multi-value message (`name:1:2:3|d`) yields one
/// `Metric` per value, sharing the same [`Context`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Name and tags.
    pub context: Context,
    /// The metric type.
    pub kind: MetricKind,
    /// The value.
    pub value: MetricValue,
    /// Client-side sample rate in (0, 1], already clamped to the minimum. The
    /// aggregator weights the sample by `1 / sample_rate`. Timestamped counts
    /// carry 1.0 (the protocol says they ignore the sample rate).
    pub sample_rate: f64,
    /// `|T<unix seconds>`: a timestamped metric, passed through unaggregated.
    pub timestamp: Option<i64>,
}

/// Event priority (`|p:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventPriority {
    /// `normal` (the default).
    #[default]
    Normal,
    /// `low`.
    Low,
}

impl EventPriority {
    /// The intake's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

/// Event alert type (`|t:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventAlertType {
    /// `info` (the default).
    #[default]
    Info,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `success`.
    Success,
}

impl EventAlertType {
    /// The intake's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Success => "success",
        }
    }
}

/// A decoded `_e{..}` event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Title (non-empty).
    pub title: String,
    /// Text (non-empty; `\\n` already turned into newlines).
    pub text: String,
    /// `|d:` unix seconds; `None` means "now" at encoding time.
    pub timestamp: Option<i64>,
    /// `|h:` hostname override.
    pub hostname: Option<String>,
    /// `|k:` aggregation key.
    pub aggregation_key: Option<String>,
    /// `|p:` priority.
    pub priority: EventPriority,
    /// `|s:` source type name.
    pub source_type_name: Option<String>,
    /// `|t:` alert type.
    pub alert_type: EventAlertType,
    /// `|#` tags, sorted and deduplicated.
    pub tags: Vec<String>,
}

/// Service check status (`0`..=`3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ServiceCheckStatus {
    /// 0
    Ok = 0,
    /// 1
    Warning = 1,
    /// 2
    Critical = 2,
    /// 3
    Unknown = 3,
}

/// A decoded `_sc|..` service check.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCheck {
    /// Check name.
    pub name: String,
    /// Status.
    pub status: ServiceCheckStatus,
    /// `|d:` unix seconds; `None` means "now" at encoding time.
    pub timestamp: Option<i64>,
    /// `|h:` hostname override.
    pub hostname: Option<String>,
    /// `|m:` message.
    pub message: Option<String>,
    /// `|#` tags, sorted and deduplicated.
    pub tags: Vec<String>,
}
