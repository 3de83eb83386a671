//! The DogStatsD metric mapper (`dogstatsd_mapper_profiles`): turns dotted
//! plain-StatsD names into a name plus tags, as the Datadog Agent does
//! (DataDog/datadog-agent `comp/dogstatsd/mapper/mapper.go`).
//!
//! ```yaml
//! dogstatsd_mapper_profiles:
//!   - name: airflow            # required
//!     prefix: "airflow."       # required; "*" = every name
//!     mappings:
//!       - match: "airflow.job.duration_sec.*.*"   # required
//!         match_type: wildcard                      # or regex; "" = wildcard
//!         name: "airflow.job.duration"              # required; may use $1, ${1}, ${name}
//!         tags:
//!           job_type: "$1"
//!           job_name: "$2"
//! ```
//!
//! # Semantics (the Agent's)
//!
//! - Only the **first** profile whose `prefix` starts the name (or is `*`) is
//!   tried; its mappings are tried in order and the first match wins. A name
//!   no mapping of that profile matches stays unmapped, even if a later
//!   profile would match it.
//! - `wildcard`: the pattern may only hold `[a-zA-Z0-9\-_*.]` and no `**`;
//!   each `*` matches a possibly empty run without `.` (`([^.]*)`), the rest
//!   literally; the whole name must match.
//! - `regex`: the pattern is compiled as `^<match>$`. As in the Agent, an
//!   alternation is not grouped by that: `a|b` becomes `^a|b$`, which matches
//!   any name starting with `a`.
//! - The new name and each tag value are expanded as Go's
//!   `Regexp.ExpandString` (see `expand.rs`): `$1`, `${1}`, `${name}`, `$$`;
//!   `$1x` means the group named `1x` (empty) — write `${1}x`. Tags become
//!   `key:value`; the Agent emits them in Go map order (random), here they
//!   are sorted by key.
//! - Mapper tags are appended after the client's tags, before the `host:` tag
//!   is read, so a mapper tag `host:$1` sets the host.
//! - Results, hits and misses alike, are kept in an LRU keyed by the original
//!   name (`dogstatsd_mapper_cache_size`, default 1000 entries); names outside
//!   every profile's prefix are not cached.
//! - Any invalid profile or mapping, or a cache size below 1, refuses the
//!   whole mapper with the Agent's message ([`MapperError`]); the Agent then
//!   logs `Could not create metric mapper: <error>` at warning level and runs
//!   without a mapper.
//!
//! # Configuration
//!
//! | key | env | type | default |
//! |---|---|---|---|
//! | `dogstatsd_mapper_profiles` | `DD_DOGSTATSD_MAPPER_PROFILES` (JSON of the same list) | list of [`MappingProfileConfig`] | `[]` (no mapper) |
//! | `dogstatsd_mapper_cache_size` | `DD_DOGSTATSD_MAPPER_CACHE_SIZE` | integer | 1000 |
//!
//! # Regular expressions
//!
//! The Agent uses Go's RE2. Here `match_type: regex` uses `regex-lite` (about
//! 76 KiB of stripped armv7 code, against 340+ KiB for the `regex` crate
//! without its Unicode tables). They agree on the syntax mapper profiles use
//! (literals, classes, `\d \w \s \b` which are ASCII-only in both, groups,
//! `(?P<name>…)`, repetitions, flags `i m s U`) and both pick submatches by
//! the leftmost-first rule. Differences: regex-lite has no Unicode classes
//! (`\pL`, `\p{Greek}`: refused at start, with the error) and folds case only
//! for ASCII under `(?i)`; `\s` also matches `\v`; Go's `\Q…\E` is refused;
//! compile error texts differ from Go's. `wildcard` patterns, the common case,
//! do not use a regex engine at all (`wildcard.rs`).
//!
//! # Saluki differs (the Agent is followed here)
//!
//! DataDog/saluki `lib/saluki-components/src/transforms/dogstatsd_mapper/mod.rs`
//! tries every profile whose prefix matches, not only the first; has no LRU
//! (it re-runs the regexes for each context it has not resolved); words some
//! errors differently (`missing profile name` without the index; `invalid
//! match type `x`, expected …`; the profile's index where the Agent gives
//! the mapping's); and uses the Rust `regex` crate's expansion, whose `$name`
//! takes ASCII word characters only and reads `$01` as group 1.

mod expand;
mod lru;
mod wildcard;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use self::expand::{expand, Groups};
use self::lru::Lru;
use self::wildcard::{Wildcard, WildcardError, ALLOWED_WILDCARD_PATTERN};

/// `dogstatsd_mapper_cache_size`'s default.
pub const DEFAULT_MAPPER_CACHE_SIZE: i64 = 1000;

/// One entry of `dogstatsd_mapper_profiles`.
///
/// Missing fields read as empty so that validation, not parsing, reports them
/// with the Agent's messages.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct MappingProfileConfig {
    /// `name`: required, used in error messages.
    pub name: String,
    /// `prefix`: required; only names starting with it are tried, `*` = all.
    pub prefix: String,
    /// `mappings`: tried in order.
    pub mappings: Vec<MetricMappingConfig>,
}

/// One entry of a profile's `mappings`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct MetricMappingConfig {
    /// `match`: the wildcard pattern or regex; required.
    #[serde(rename = "match")]
    pub match_pattern: String,
    /// `match_type`: `wildcard` (also when empty) or `regex`.
    pub match_type: String,
    /// `name`: the new metric name (a template); required.
    pub name: String,
    /// `tags`: tag key → value template.
    pub tags: BTreeMap<String, String>,
}

/// Why the mapper could not be built. The texts are the Agent's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapperError {
    /// A profile without `name`.
    #[error("missing profile name {index}")]
    MissingProfileName {
        /// The profile's position in the list (0-based).
        index: usize,
    },
    /// A profile without `prefix`.
    #[error("missing prefix for profile: {profile}")]
    MissingPrefix {
        /// The profile's name.
        profile: String,
    },
    /// `match_type` is neither `wildcard`, `regex` nor empty.
    #[error("profile: {profile}, mapping num {index}: invalid match type, must be `wildcard` or `regex`")]
    InvalidMatchType {
        /// The profile's name.
        profile: String,
        /// The mapping's position in the profile (0-based).
        index: usize,
        /// The value given.
        match_type: String,
    },
    /// A mapping without `name`.
    #[error("profile: {profile}, mapping num {index}: name is required")]
    MissingName {
        /// The profile's name.
        profile: String,
        /// The mapping's position in the profile (0-based).
        index: usize,
    },
    /// A mapping without `match`.
    #[error("profile: {profile}, mapping num {index}: match is required")]
    MissingMatch {
        /// The profile's name.
        profile: String,
        /// The mapping's position in the profile (0-based).
        index: usize,
    },
    /// A wildcard pattern with a character outside `[a-zA-Z0-9\-_*.]`.
    #[error("invalid wildcard match pattern `{pattern}`, it does not match allowed match regex `{ALLOWED_WILDCARD_PATTERN}`")]
    WildcardCharacters {
        /// The pattern.
        pattern: String,
    },
    /// A wildcard pattern with `**`.
    #[error("invalid wildcard match pattern `{pattern}`, it should not contain consecutive `*`")]
    WildcardConsecutiveStars {
        /// The pattern.
        pattern: String,
    },
    /// A regex that does not compile.
    #[error("invalid match `{pattern}`. cannot compile regex: {reason}")]
    Regex {
        /// The pattern as written.
        pattern: String,
        /// The regex engine's explanation.
        reason: String,
    },
    /// `dogstatsd_mapper_cache_size` below 1 (the Go LRU's own message).
    #[error("must provide a positive size")]
    CacheSize {
        /// The value given.
        size: i64,
    },
}

/// A mapped name and the tags to append (`key:value`, sorted by key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapResult {
    /// The new metric name.
    pub name: String,
    /// Tags to append to the client's.
    pub tags: Vec<String>,
}

#[derive(Debug)]
enum Matcher {
    Wildcard(Wildcard),
    Regex(regex_lite::Regex),
}

#[derive(Debug)]
struct Mapping {
    name: String,
    tags: Vec<(String, String)>,
    matcher: Matcher,
}

#[derive(Debug)]
struct Profile {
    prefix: String,
    mappings: Vec<Mapping>,
}

/// The groups of a wildcard match: group 0 is the whole name.
struct WildcardGroups<'a> {
    name: &'a str,
    spans: Vec<(usize, usize)>,
}

impl Groups for WildcardGroups<'_> {
    fn group(&self, index: usize) -> Option<&str> {
        match index {
            0 => Some(self.name),
            i => self.spans.get(i - 1).and_then(|&(a, b)| self.name.get(a..b)),
        }
    }
    fn named(&self, _: &str) -> Option<&str> {
        None
    }
}

impl Groups for regex_lite::Captures<'_> {
    fn group(&self, index: usize) -> Option<&str> {
        self.get(index).map(|m| m.as_str())
    }
    fn named(&self, name: &str) -> Option<&str> {
        self.name(name).map(|m| m.as_str())
    }
}

impl Mapping {
    fn apply(&self, metric: &str) -> Option<MapResult> {
        match &self.matcher {
            Matcher::Wildcard(w) => {
                let spans = w.captures(metric)?;
                Some(self.render(&WildcardGroups { name: metric, spans }))
            }
            Matcher::Regex(re) => re.captures(metric).map(|caps| self.render(&caps)),
        }
    }

    fn render(&self, groups: &dyn Groups) -> MapResult {
        let mut name = String::new();
        expand(&self.name, groups, &mut name);
        let tags = self
            .tags
            .iter()
            .map(|(key, template)| {
                let mut tag = String::with_capacity(key.len() + 1 + template.len());
                tag.push_str(key);
                tag.push(':');
                expand(template, groups, &mut tag);
                tag
            })
            .collect();
        MapResult { name, tags }
    }
}

/// A validated mapper with its cache; share it behind an `Arc` across decoders.
#[derive(Debug)]
pub struct Mapper {
    profiles: Vec<Profile>,
    cache: Mutex<Lru<Option<Arc<MapResult>>>>,
}

impl Mapper {
    /// Validates `profiles` in the Agent's order and builds the mapper; the
    /// first problem refuses the whole mapper.
    pub fn new(profiles: &[MappingProfileConfig], cache_size: i64) -> Result<Self, MapperError> {
        let mut built = Vec::with_capacity(profiles.len());
        for (profile_index, config) in profiles.iter().enumerate() {
            if config.name.is_empty() {
                return Err(MapperError::MissingProfileName { index: profile_index });
            }
            if config.prefix.is_empty() {
                return Err(MapperError::MissingPrefix {
                    profile: config.name.clone(),
                });
            }
            let mut mappings = Vec::with_capacity(config.mappings.len());
            for (index, mapping) in config.mappings.iter().enumerate() {
                mappings.push(build_mapping(&config.name, index, mapping)?);
            }
            built.push(Profile {
                prefix: config.prefix.clone(),
                mappings,
            });
        }
        if cache_size < 1 {
            return Err(MapperError::CacheSize { size: cache_size });
        }
        // A size beyond the address space is the same as "unbounded" here:
        // the cache only grows with distinct names.
        let capacity = usize::try_from(cache_size).unwrap_or(usize::MAX);
        Ok(Self {
            profiles: built,
            cache: Mutex::new(Lru::new(capacity)),
        })
    }

    /// Maps `name`: `None` when no mapping applies (the metric keeps its name
    /// and tags).
    pub fn map(&self, name: &str) -> Option<Arc<MapResult>> {
        let profile = self
            .profiles
            .iter()
            .find(|p| name.starts_with(p.prefix.as_str()) || p.prefix == "*")?;
        if let Some(cached) = self.lock().get(name) {
            return cached;
        }
        let result = profile.mappings.iter().find_map(|m| m.apply(name)).map(Arc::new);
        self.lock().insert(name, result.clone());
        result
    }

    /// Entries in the cache (hits and misses).
    pub fn cache_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<Option<Arc<MapResult>>>> {
        // The cache holds no invariant a panicking holder could break half-way
        // that matters more than mapping on; keep going.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn build_mapping(profile: &str, index: usize, config: &MetricMappingConfig) -> Result<Mapping, MapperError> {
    let regex = match config.match_type.as_str() {
        "" | "wildcard" => false,
        "regex" => true,
        other => {
            return Err(MapperError::InvalidMatchType {
                profile: profile.to_owned(),
                index,
                match_type: other.to_owned(),
            })
        }
    };
    if config.name.is_empty() {
        return Err(MapperError::MissingName {
            profile: profile.to_owned(),
            index,
        });
    }
    if config.match_pattern.is_empty() {
        return Err(MapperError::MissingMatch {
            profile: profile.to_owned(),
            index,
        });
    }
    let pattern = &config.match_pattern;
    let matcher = if regex {
        let re = regex_lite::Regex::new(&format!("^{pattern}$")).map_err(|e| MapperError::Regex {
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        Matcher::Regex(re)
    } else {
        let w = Wildcard::new(pattern).map_err(|e| match e {
            WildcardError::Characters => MapperError::WildcardCharacters {
                pattern: pattern.clone(),
            },
            WildcardError::ConsecutiveStars => MapperError::WildcardConsecutiveStars {
                pattern: pattern.clone(),
            },
        })?;
        Matcher::Wildcard(w)
    };
    Ok(Mapping {
        name: config.name.clone(),
        tags: config.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        matcher,
    })
}

#[cfg(test)]
mod tests;
