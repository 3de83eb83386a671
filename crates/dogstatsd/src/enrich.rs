//! What the Agent's DogStatsD server does to a parsed metric before it reaches
//! the aggregator: mapper, namespace, blocklist, `dogstatsd_tags`, histogram
//! copies (DataDog/datadog-agent `comp/dogstatsd/server/impl/{server.go,
//! enrich.go}`, `pkg/util/strings/matcher.go`, `comp/filterlist/impl/filterlist.go`).
//!
//! # Order, per metric sample (the Agent's)
//!
//! 1. parse;
//! 2. **mapper** ([`crate::mapper`]) on the received name: new name, mapper
//!    tags appended after the client's;
//! 3. the `host:` tag (client's or mapper's) sets the host — done at encoding
//!    in this agent, from all tags (see "Host" below);
//! 4. **namespace**: `statsd_metric_namespace` (a `.` appended when missing)
//!    is prepended unless the (mapped) name starts with an entry of
//!    `statsd_metric_namespace_blacklist` (a plain string-prefix test);
//! 5. **blocklist**, tested on the namespaced name: a blocked sample is
//!    dropped ([`MetricDecision::Drop`]);
//! 6. **`dogstatsd_tags`** appended (sorted and deduplicated at start);
//! 7. **histogram copy**: with `histogram_copy_to_distribution`, a histogram
//!    or timer (`h`, `ms`) sample is also sent as a distribution named
//!    `histogram_copy_to_distribution_prefix` + the namespaced name, with the
//!    same tags; the copy is not tested against the blocklist again.
//!
//! Events and service checks only get `dogstatsd_tags` ([`Enricher::dogstatsd_tags`]):
//! no mapper, namespace or blocklist.
//!
//! [`Enricher::metric`] does steps 2 and 4–7 for a name and says what to do;
//! it does not touch tags itself: the caller (the
//! [`Decoder`](crate::decoder::Decoder)) appends
//! [`EnrichedMetric::added_tags`] (mapper tags, then `dogstatsd_tags`) to the
//! client's tags when it resolves the context, and sends a second sample named
//! [`EnrichedMetric::distribution_name`] when there is one.
//!
//! # Blocklist
//!
//! `statsd_metric_blocklist` holds exact names, or prefixes when
//! `statsd_metric_blocklist_match_prefix` is true; when `metric_filterlist`
//! (the Agent's newer key) is not empty it replaces both, with
//! `metric_filterlist_match_prefix`. Matching is the Agent's: a sorted list
//! (prefixes covered by a shorter one removed) and a binary search, so a name
//! costs O(log n) whatever the list's length.
//!
//! # Host
//!
//! The Agent reads `host:` tags after the mapper but before appending
//! `dogstatsd_tags`, so a `host:x` entry *in `dogstatsd_tags`* stays an
//! ordinary tag there. This agent reads `host:` from all of a context's tags
//! when it encodes payloads, so such an entry would set the host instead.
//! Nothing else differs; configure the host with `hostname`, not with
//! `dogstatsd_tags`.
//!
//! # Configuration ([`EnrichConfig`])
//!
//! | key | env | type | default |
//! |---|---|---|---|
//! | `statsd_metric_namespace` | `DD_STATSD_METRIC_NAMESPACE` | string | `""` |
//! | `statsd_metric_namespace_blacklist` | `DD_STATSD_METRIC_NAMESPACE_BLACKLIST` | list of strings | [`STANDARD_STATSD_PREFIXES`] |
//! | `statsd_metric_blocklist` | `DD_STATSD_METRIC_BLOCKLIST` | list of strings | `[]` |
//! | `statsd_metric_blocklist_match_prefix` | `DD_STATSD_METRIC_BLOCKLIST_MATCH_PREFIX` | bool | false |
//! | `metric_filterlist` | `DD_METRIC_FILTERLIST` | list of strings | `[]` |
//! | `metric_filterlist_match_prefix` | `DD_METRIC_FILTERLIST_MATCH_PREFIX` | bool | false |
//! | `dogstatsd_tags` | `DD_DOGSTATSD_TAGS` | list of strings | `[]` |
//! | `histogram_copy_to_distribution` | `DD_HISTOGRAM_COPY_TO_DISTRIBUTION` | bool | false |
//! | `histogram_copy_to_distribution_prefix` | `DD_HISTOGRAM_COPY_TO_DISTRIBUTION_PREFIX` | string | `""` |
//! | `dogstatsd_mapper_profiles` | `DD_DOGSTATSD_MAPPER_PROFILES` (JSON) | list of profiles | `[]` |
//! | `dogstatsd_mapper_cache_size` | `DD_DOGSTATSD_MAPPER_CACHE_SIZE` | integer | 1000 |
//!
//! Lists in environment variables are space-separated, as the Agent reads them.
//!
//! A dropped sample is counted in `adp_dogstatsd_filtered_points{reason}`;
//! blocklist entries that end in a histogram suffix also drop that series of
//! every histogram at flush ([`Blocklist::histogram_aggregates`], set on the
//! aggregator by the binary).
//!
//! # The Agent differs
//!
//! A `dogstatsd_mapper_profiles` value that is not a list of profiles is an
//! invalid value ([`EnrichConfig::read`]): the agent does not start and names
//! the key, as for any other key of the wrong type, where the Agent logs
//! `Could not parse …` and runs without a mapper. A list with an invalid
//! profile is handled as the Agent does.
//!
//! # Saluki differs (the Agent is followed here)
//!
//! Saluki (DataDog/saluki) has no namespace, namespace blacklist or
//! `statsd_metric_blocklist` at DogStatsD ingestion (its filter list applies
//! in separate transforms), and its mapper tries every matching profile (see
//! [`crate::mapper`]).

use std::borrow::Cow;
use std::sync::Arc;

use adp_config::{key, parse, Raw, Reader};
use serde::Deserialize;

use crate::mapper::{MapResult, Mapper, MapperError, MappingProfileConfig, DEFAULT_MAPPER_CACHE_SIZE};

/// The Agent's `StandardStatsdPrefixes` (`pkg/config/setup/standard_names.go`):
/// the default `statsd_metric_namespace_blacklist`, names the Agent and its
/// integrations send that a namespace must not rename.
pub const STANDARD_STATSD_PREFIXES: [&str; 21] = [
    "datadog.agent",
    "datadog.dogstatsd",
    "datadog.process",
    "datadog.trace_agent",
    "datadog.tracer",
    "activemq",
    "activemq_58",
    "airflow",
    "cassandra",
    "confluent",
    "hazelcast",
    "hive",
    "ignite",
    "jboss",
    "jvm",
    "kafka",
    "presto",
    "sidekiq",
    "solr",
    "tomcat",
    "runtime",
];

fn standard_statsd_prefixes() -> Vec<String> {
    STANDARD_STATSD_PREFIXES.iter().map(|s| s.to_string()).collect()
}

const fn default_mapper_cache_size() -> i64 {
    DEFAULT_MAPPER_CACHE_SIZE
}

/// The enrichment keys, with the Agent's names and defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct EnrichConfig {
    /// Prefix for every metric name (a `.` is appended when missing). Defaults to `""`.
    pub statsd_metric_namespace: String,
    /// Names starting with one of these are not namespaced.
    /// Defaults to [`STANDARD_STATSD_PREFIXES`].
    #[serde(default = "standard_statsd_prefixes")]
    pub statsd_metric_namespace_blacklist: Vec<String>,
    /// Metric names (after the namespace) to drop. Defaults to `[]`.
    pub statsd_metric_blocklist: Vec<String>,
    /// Treat `statsd_metric_blocklist` entries as prefixes. Defaults to false.
    pub statsd_metric_blocklist_match_prefix: bool,
    /// Replaces `statsd_metric_blocklist` when not empty. Defaults to `[]`.
    pub metric_filterlist: Vec<String>,
    /// Treat `metric_filterlist` entries as prefixes. Defaults to false.
    pub metric_filterlist_match_prefix: bool,
    /// Tags added to every metric, event and service check. Defaults to `[]`.
    pub dogstatsd_tags: Vec<String>,
    /// Also send histograms and timers as distributions. Defaults to false.
    pub histogram_copy_to_distribution: bool,
    /// Prefix of the distribution copies' names. Defaults to `""`.
    pub histogram_copy_to_distribution_prefix: String,
    /// Mapper profiles ([`crate::mapper`]). Defaults to `[]` (no mapper).
    pub dogstatsd_mapper_profiles: Vec<MappingProfileConfig>,
    /// Mapper cache entries. Defaults to 1000.
    #[serde(default = "default_mapper_cache_size")]
    pub dogstatsd_mapper_cache_size: i64,
}

impl EnrichConfig {
    /// Reads the enrichment keys (this crate owns them) with the Agent's
    /// names and defaults. `dogstatsd_mapper_profiles` must be a list of
    /// profiles (JSON in `DD_DOGSTATSD_MAPPER_PROFILES`): a value of another
    /// shape is an invalid value naming the key, reported at start with the
    /// others; a well-formed list with an invalid profile (a missing name, a
    /// bad match type or regex) is left to [`Enricher::new`], which runs
    /// without a mapper and says why, as the Agent does.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        Self {
            statsd_metric_namespace: r.get(
                key!("statsd_metric_namespace"),
                d.statsd_metric_namespace,
                parse::string,
            ),
            // The Agent's name, and ADP's spelling of it.
            statsd_metric_namespace_blacklist: r.get(
                key!("statsd_metric_namespace_blacklist").aliases(&["statsd_metric_namespace_blocklist"]),
                d.statsd_metric_namespace_blacklist,
                parse::list,
            ),
            statsd_metric_blocklist: r.get(key!("statsd_metric_blocklist"), d.statsd_metric_blocklist, parse::list),
            statsd_metric_blocklist_match_prefix: r.get(
                key!("statsd_metric_blocklist_match_prefix"),
                d.statsd_metric_blocklist_match_prefix,
                parse::boolean,
            ),
            metric_filterlist: r.get(key!("metric_filterlist"), d.metric_filterlist, parse::list),
            metric_filterlist_match_prefix: r.get(
                key!("metric_filterlist_match_prefix"),
                d.metric_filterlist_match_prefix,
                parse::boolean,
            ),
            dogstatsd_tags: r.get(key!("dogstatsd_tags"), d.dogstatsd_tags, parse::list),
            histogram_copy_to_distribution: r.get(
                key!("histogram_copy_to_distribution"),
                d.histogram_copy_to_distribution,
                parse::boolean,
            ),
            histogram_copy_to_distribution_prefix: r.get(
                key!("histogram_copy_to_distribution_prefix"),
                d.histogram_copy_to_distribution_prefix,
                parse::string,
            ),
            dogstatsd_mapper_profiles: r.get_with(
                key!("dogstatsd_mapper_profiles"),
                d.dogstatsd_mapper_profiles,
                mapper_profiles,
                |profiles| serde_json::to_value(profiles).unwrap_or(serde_json::Value::Null),
            ),
            // Below 1 is read, then refused by the mapper with the Agent's message.
            dogstatsd_mapper_cache_size: r.get(
                key!("dogstatsd_mapper_cache_size"),
                d.dogstatsd_mapper_cache_size,
                parse::integer(0, i32::MAX as u64),
            ),
        }
    }

    /// The blocklist in effect: `metric_filterlist` when it is not empty,
    /// else `statsd_metric_blocklist`, each with its `_match_prefix`.
    pub fn blocklist(&self) -> Blocklist {
        if self.metric_filterlist.is_empty() {
            Blocklist::new(
                self.statsd_metric_blocklist.iter().cloned(),
                self.statsd_metric_blocklist_match_prefix,
            )
        } else {
            Blocklist::new(
                self.metric_filterlist.iter().cloned(),
                self.metric_filterlist_match_prefix,
            )
        }
    }
}

/// `dogstatsd_mapper_profiles`: a YAML list, or that list as JSON (the
/// environment variable, or a YAML string).
fn mapper_profiles(raw: Raw<'_>) -> Result<Vec<MappingProfileConfig>, String> {
    const EXPECTED: &str =
        "a list of mapper profiles, each {name, prefix, mappings: [{match, match_type, name, tags}]} \
         (as JSON in DD_DOGSTATSD_MAPPER_PROFILES)";
    let json = match raw.text() {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("{EXPECTED}; not JSON: {e}"))?,
        None => match raw {
            Raw::Yaml(yaml) => serde_json::to_value(yaml).map_err(|e| format!("{EXPECTED}: {e}"))?,
            Raw::Env(_) => return Err(EXPECTED.to_owned()),
        },
    };
    serde_json::from_value(json).map_err(|e| format!("{EXPECTED}: {e}"))
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            statsd_metric_namespace: String::new(),
            statsd_metric_namespace_blacklist: standard_statsd_prefixes(),
            statsd_metric_blocklist: Vec::new(),
            statsd_metric_blocklist_match_prefix: false,
            metric_filterlist: Vec::new(),
            metric_filterlist_match_prefix: false,
            dogstatsd_tags: Vec::new(),
            histogram_copy_to_distribution: false,
            histogram_copy_to_distribution_prefix: String::new(),
            dogstatsd_mapper_profiles: Vec::new(),
            dogstatsd_mapper_cache_size: DEFAULT_MAPPER_CACHE_SIZE,
        }
    }
}

/// A set of metric names or name prefixes, matched as the Agent's
/// `strings.Matcher`: sorted, prefixes already covered by a shorter entry
/// removed, one binary search per test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// Sorted; with `match_prefix`, no entry is a prefix of another.
    entries: Vec<String>,
    match_prefix: bool,
}

impl Blocklist {
    /// A blocklist of exact `names`, or of prefixes when `match_prefix`.
    pub fn new<I, S>(names: I, match_prefix: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut entries: Vec<String> = names.into_iter().map(Into::into).collect();
        entries.sort_unstable();
        if match_prefix {
            // Sorted, so every entry a kept prefix covers follows it directly.
            let mut kept: Vec<String> = Vec::with_capacity(entries.len());
            for entry in entries {
                if !kept.last().is_some_and(|prefix| entry.starts_with(prefix.as_str())) {
                    kept.push(entry);
                }
            }
            entries = kept;
        } else {
            entries.dedup();
        }
        Self { entries, match_prefix }
    }

    /// Whether `name` is blocked.
    pub fn contains(&self, name: &str) -> bool {
        // The first entry >= name. A prefix of `name` sorts before it, and,
        // with covered prefixes removed, only the entry just before can be one.
        let i = self.entries.partition_point(|e| e.as_str() < name);
        if self.match_prefix && i > 0 && name.starts_with(self.entries[i - 1].as_str()) {
            return true;
        }
        self.entries.get(i).is_some_and(|e| e == name)
    }

    /// The entries ending with one of `suffixes` (`.max`, `.95percentile`:
    /// the histogram aggregates the aggregator sends), as the Agent's
    /// `createHistogramsFilterList` picks them: those histogram series are
    /// dropped at flush, while the histogram itself is kept.
    pub fn histogram_aggregates<'s>(&self, suffixes: impl IntoIterator<Item = &'s str> + Clone) -> Blocklist {
        Blocklist::new(
            self.entries
                .iter()
                .filter(|e| suffixes.clone().into_iter().any(|s| e.ends_with(s)))
                .cloned(),
            self.match_prefix,
        )
    }

    /// Whether nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries kept (after removing duplicates and covered prefixes).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether entries are prefixes.
    pub fn match_prefix(&self) -> bool {
        self.match_prefix
    }
}

/// Why a metric sample was dropped (the telemetry label is [`reason`](Self::reason)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its namespaced name is in the blocklist.
    Blocklist,
}

impl DropReason {
    /// Every reason, to register counters up front.
    pub const ALL: [DropReason; 1] = [DropReason::Blocklist];

    /// The label value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Blocklist => "blocklist",
        }
    }
}

/// What to do with one metric sample.
#[derive(Debug)]
pub enum MetricDecision<'a> {
    /// Keep it, renamed and with tags added as described.
    Keep(EnrichedMetric<'a>),
    /// Drop it and count the reason.
    Drop(DropReason),
}

#[derive(Debug)]
enum Name<'a> {
    /// The received name, unchanged.
    Received(&'a str),
    /// The mapper's name, not namespaced.
    Mapped,
    /// Namespaced.
    Owned(String),
}

/// A kept metric sample: its final name, the tags to append, its
/// distribution copy.
#[derive(Debug)]
pub struct EnrichedMetric<'a> {
    name: Name<'a>,
    mapped: Option<Arc<MapResult>>,
    dogstatsd_tags: &'a [String],
    distribution_prefix: Option<&'a str>,
}

impl<'a> EnrichedMetric<'a> {
    /// The final name (mapped, then namespaced).
    pub fn name(&self) -> &str {
        match &self.name {
            Name::Received(s) => s,
            Name::Mapped => self.mapped.as_deref().map_or("", |m| m.name.as_str()),
            Name::Owned(s) => s,
        }
    }

    /// Whether the mapper or the namespace gave the sample its name (the
    /// mapper may give back the same text).
    pub fn is_renamed(&self) -> bool {
        !matches!(self.name, Name::Received(_))
    }

    /// The mapper's tags (to append after the client's).
    pub fn mapper_tags(&self) -> &[String] {
        self.mapped.as_deref().map_or(&[], |m| m.tags.as_slice())
    }

    /// `dogstatsd_tags` (to append after the mapper's).
    pub fn dogstatsd_tags(&self) -> &'a [String] {
        self.dogstatsd_tags
    }

    /// Every tag to append to the client's, in the Agent's order: the
    /// mapper's, then `dogstatsd_tags`. Cloneable, as the decoder walks the
    /// tags twice (the context key, then the batch's copy of them).
    pub fn added_tags(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        self.mapper_tags().iter().chain(self.dogstatsd_tags).map(String::as_str)
    }

    /// The name of the distribution copy to send as well, when the sample is
    /// a histogram or timer and `histogram_copy_to_distribution` is on.
    pub fn distribution_name(&self) -> Option<Cow<'_, str>> {
        let prefix = self.distribution_prefix?;
        Some(if prefix.is_empty() {
            Cow::Borrowed(self.name())
        } else {
            Cow::Owned(format!("{prefix}{}", self.name()))
        })
    }
}

/// The configured enrichment. Cheap to clone (the mapper and its cache are
/// shared), so each decoder can own one.
#[derive(Clone, Debug)]
pub struct Enricher {
    mapper: Option<Arc<Mapper>>,
    /// Empty, or ending with `.`.
    namespace: String,
    namespace_blacklist: Vec<String>,
    blocklist: Blocklist,
    /// Sorted, deduplicated.
    dogstatsd_tags: Vec<String>,
    distribution_prefix: Option<String>,
}

impl Enricher {
    /// Builds the enrichment. An invalid mapper configuration does not stop
    /// the rest: the mapper is left out and its error returned, for the
    /// caller to log as the Agent does (`Could not create metric mapper: {error}`,
    /// warning).
    pub fn new(config: &EnrichConfig) -> (Self, Option<MapperError>) {
        let (mapper, mapper_error) = if config.dogstatsd_mapper_profiles.is_empty() {
            (None, None)
        } else {
            match Mapper::new(&config.dogstatsd_mapper_profiles, config.dogstatsd_mapper_cache_size) {
                Ok(m) => (Some(Arc::new(m)), None),
                Err(e) => (None, Some(e)),
            }
        };
        let mut namespace = config.statsd_metric_namespace.clone();
        if !namespace.is_empty() && !namespace.ends_with('.') {
            namespace.push('.');
        }
        let blocklist = config.blocklist();
        let mut dogstatsd_tags = config.dogstatsd_tags.clone();
        dogstatsd_tags.sort_unstable();
        dogstatsd_tags.dedup();
        let enricher = Self {
            mapper,
            namespace,
            namespace_blacklist: config.statsd_metric_namespace_blacklist.clone(),
            blocklist,
            dogstatsd_tags,
            distribution_prefix: config
                .histogram_copy_to_distribution
                .then(|| config.histogram_copy_to_distribution_prefix.clone()),
        };
        (enricher, mapper_error)
    }

    /// Decides the fate of one metric sample named `name`; `is_histogram` is
    /// true for histograms (`h`) and timers (`ms`).
    pub fn metric<'a>(&'a self, name: &'a str, is_histogram: bool) -> MetricDecision<'a> {
        let mapped = self.mapper.as_ref().and_then(|m| m.map(name));
        let base = mapped.as_deref().map_or(name, |m| m.name.as_str());
        let namespaced = !self.namespace.is_empty()
            && !self
                .namespace_blacklist
                .iter()
                .any(|prefix| base.starts_with(prefix.as_str()));
        let final_name = if namespaced {
            Name::Owned(format!("{}{base}", self.namespace))
        } else if mapped.is_some() {
            Name::Mapped
        } else {
            Name::Received(name)
        };
        let decision = EnrichedMetric {
            name: final_name,
            mapped,
            dogstatsd_tags: &self.dogstatsd_tags,
            distribution_prefix: self.distribution_prefix.as_deref().filter(|_| is_histogram),
        };
        if !self.blocklist.is_empty() && self.blocklist.contains(decision.name()) {
            return MetricDecision::Drop(DropReason::Blocklist);
        }
        MetricDecision::Keep(decision)
    }

    /// `dogstatsd_tags`, sorted and deduplicated: append them to every event
    /// and service check (and [`Enricher::metric`] hands them out for metrics).
    pub fn dogstatsd_tags(&self) -> &[String] {
        &self.dogstatsd_tags
    }

    /// The mapper, when configured and valid.
    pub fn mapper(&self) -> Option<&Arc<Mapper>> {
        self.mapper.as_ref()
    }

    /// The namespace as applied (empty, or ending with `.`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The blocklist in effect.
    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist
    }

    /// Whether every metric passes unchanged (nothing configured), so a
    /// caller may skip [`Enricher::metric`] altogether.
    pub fn is_passthrough(&self) -> bool {
        self.mapper.is_none()
            && self.namespace.is_empty()
            && self.blocklist.is_empty()
            && self.dogstatsd_tags.is_empty()
            && self.distribution_prefix.is_none()
    }
}

#[cfg(test)]
mod tests;
