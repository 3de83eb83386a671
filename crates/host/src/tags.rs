//! Host tags: the `system` list of the host-metadata payload, and the
//! `expected_tags_duration` window during which they are added to metrics.
//!
//! As in the Agent (`comp/metadata/host/hostimpl/hosttags`), the `system`
//! tags are `tags` then `extra_tags` (never `dogstatsd_tags`), then
//! `env:<env>` when `env` is set, each split by `tag_value_split_separator`,
//! then sorted with duplicates removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host-tag settings of `datadog.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTagsConfig {
    /// `tags` (`DD_TAGS`, space-separated in the environment). Defaults to [].
    pub tags: Vec<String>,
    /// `extra_tags` (`DD_EXTRA_TAGS`). Defaults to [].
    pub extra_tags: Vec<String>,
    /// `env` (`DD_ENV`): adds `env:<env>` when not empty. Defaults to "".
    pub env: String,
    /// `tag_value_split_separator`: for a tag name, the separator that splits
    /// its value into several tags (`{"role": ","}` makes `role:a,b` into
    /// `role:a` and `role:b`). Defaults to {}.
    pub tag_value_split_separator: BTreeMap<String, String>,
}

/// The Agent's `system` host tags: configured tags, `env:<env>`, split,
/// sorted and deduplicated.
pub fn host_tags(config: &HostTagsConfig) -> Vec<String> {
    let env_tag = (!config.env.is_empty()).then(|| format!("env:{}", config.env));
    let mut out = Vec::with_capacity(config.tags.len() + config.extra_tags.len() + 1);
    for tag in config.tags.iter().chain(&config.extra_tags).chain(env_tag.as_ref()) {
        append_split(&mut out, tag, &config.tag_value_split_separator);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn append_split(out: &mut Vec<String>, tag: &str, splits: &BTreeMap<String, String>) {
    let split = tag
        .split_once(':')
        .and_then(|(name, value)| Some((name, value, splits.get(name)?)));
    match split {
        Some((name, value, sep)) if !sep.is_empty() => {
            out.extend(value.split(sep.as_str()).map(|v| format!("{name}:{v}")));
        }
        _ => out.push(tag.to_owned()),
    }
}

/// Whether host tags are still added to metrics: `expected_tags_duration` is
/// not zero and `now` is before `start + duration` (the Agent counts from its
/// start time, not from the first metric).
pub fn expected_tags_active(start: Instant, duration: Duration, now: Instant) -> bool {
    !duration.is_zero() && now.saturating_duration_since(start) < duration
}

/// The host tags to add to every metric until `expected_tags_duration` has
/// passed since start (`pkg/aggregator` host tag provider).
#[derive(Debug, Clone)]
pub struct ExpectedHostTags {
    tags: Arc<[String]>,
    start: Instant,
    duration: Duration,
}

impl ExpectedHostTags {
    /// Host tags for `duration` after `start`; a zero duration never adds any.
    pub fn new(tags: Vec<String>, start: Instant, duration: Duration) -> Self {
        ExpectedHostTags {
            tags: tags.into(),
            start,
            duration,
        }
    }

    /// The tags to add at `now`: all of them inside the window, none after.
    pub fn tags_at(&self, now: Instant) -> &[String] {
        if expected_tags_active(self.start, self.duration, now) {
            &self.tags
        } else {
            &[]
        }
    }

    /// When the window ends (`None` when it never opens).
    pub fn deadline(&self) -> Option<Instant> {
        (!self.duration.is_zero()).then(|| self.start + self.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn system_tags_are_tags_extra_tags_and_env_sorted_and_deduplicated() {
        let config = HostTagsConfig {
            tags: strings(&["team:iot", "site:lyon", "team:iot"]),
            extra_tags: strings(&["board:pi4", "site:lyon"]),
            env: "prod".into(),
            tag_value_split_separator: BTreeMap::new(),
        };
        assert_eq!(
            host_tags(&config),
            strings(&["board:pi4", "env:prod", "site:lyon", "team:iot"])
        );
        assert!(host_tags(&HostTagsConfig::default()).is_empty());
    }

    #[test]
    fn tag_values_split_on_the_configured_separator() {
        let config = HostTagsConfig {
            tags: strings(&["role:db,cache", "plain", "other:a,b"]),
            tag_value_split_separator: [("role".to_owned(), ",".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            host_tags(&config),
            strings(&["other:a,b", "plain", "role:cache", "role:db"])
        );
    }

    #[test]
    fn expected_tags_last_for_the_duration_after_start() {
        let start = Instant::now();
        let tags = ExpectedHostTags::new(strings(&["env:prod"]), start, Duration::from_secs(60));
        assert_eq!(tags.tags_at(start), strings(&["env:prod"]).as_slice());
        assert_eq!(tags.tags_at(start + Duration::from_secs(59)).len(), 1);
        assert!(tags.tags_at(start + Duration::from_secs(60)).is_empty());
        assert_eq!(tags.deadline(), Some(start + Duration::from_secs(60)));

        let off = ExpectedHostTags::new(strings(&["env:prod"]), start, Duration::ZERO);
        assert!(off.tags_at(start).is_empty());
        assert_eq!(off.deadline(), None);
        assert!(!expected_tags_active(start, Duration::ZERO, start));
    }
}
