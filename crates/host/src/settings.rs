//! The host keys of `datadog.yaml`, declared and read here (their one owner)
//! through the shared reader of `adp-config`, with the Agent's names,
//! defaults and parsing.
//!
//! `expected_tags_duration` is read as the Agent reads it (viper's
//! `GetDuration`): a Go duration (`10m`, `1h30m`, `90s`); a bare number is a
//! count of **nanoseconds**, so `expected_tags_duration: 600` lasts 600 ns in
//! the Agent too and adds no tag. That value is kept, and
//! [`HostSettings::warnings`] says how to write what was meant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use adp_config::{key, parse, Raw, Reader};
use serde_yaml::Value as Yaml;

use crate::hostname::{HostnameConfig, ResolvedHostname};
use crate::metadata::{HostMetadataConfig, InstallMethod, MetadataSchedule};
use crate::tags::{host_tags, HostTagsConfig};

/// The `agent-flavor` of the host payload: the name Saluki's Agent Data
/// Plane registers under with the core Agent.
pub const AGENT_FLAVOR: &str = "agent-data-plane";

/// One entry of `metadata_providers` (the Agent's `name`, `interval`,
/// `early_interval`, in seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataProvider {
    /// The provider (`host`, `inventories`, …); only `host` is sent here.
    pub name: String,
    /// Seconds between payloads once the early ones are sent (0 when unset).
    pub interval: u64,
    /// Seconds before the first payload after the one at start (0 when unset).
    pub early_interval: u64,
}

/// Every host key of `datadog.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    /// `hostname`, `hostname_file`, `hostname_fqdn`,
    /// `hostname_trust_uts_namespace`.
    pub hostname: HostnameConfig,
    /// `tags`, `extra_tags`, `env`, `tag_value_split_separator`.
    pub tags: HostTagsConfig,
    /// `host_aliases` (`DD_HOST_ALIASES`, space-separated): sent in the host
    /// payload's `meta.host_aliases`. Defaults to [].
    pub host_aliases: Vec<String>,
    /// `hostname_force_config_as_canonical`: with a configured hostname, also
    /// send it as `meta.agent-hostname`. Defaults to false.
    pub hostname_force_config_as_canonical: bool,
    /// `expected_tags_duration`: how long after start the host tags are added
    /// to every metric (a Go duration, `10m`; 0 = never). Defaults to 0.
    pub expected_tags_duration: Duration,
    /// `enable_metadata_collection`: send the host-metadata payload. Defaults
    /// to true.
    pub enable_metadata_collection: bool,
    /// `metadata_providers`: the `host` entry sets the payload's `interval`
    /// and `early_interval`. Defaults to [] (at start, then 5, 15 and every
    /// 30 minutes).
    pub metadata_providers: Vec<MetadataProvider>,
    /// The Agent's `install_info` file beside `datadog.yaml` (not a key).
    pub install_info: PathBuf,
    warnings: Vec<String>,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            hostname: HostnameConfig::default(),
            tags: HostTagsConfig::default(),
            host_aliases: Vec::new(),
            hostname_force_config_as_canonical: false,
            expected_tags_duration: Duration::ZERO,
            enable_metadata_collection: true,
            metadata_providers: Vec::new(),
            install_info: PathBuf::from("/etc/datadog-agent/install_info"),
            warnings: Vec::new(),
        }
    }
}

impl HostSettings {
    /// Reads the host keys.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        let hostname = HostnameConfig {
            hostname: r.get(key!("hostname"), d.hostname.hostname, trimmed),
            hostname_file: r.get(key!("hostname_file"), d.hostname.hostname_file, trimmed),
            hostname_fqdn: r.get(key!("hostname_fqdn"), d.hostname.hostname_fqdn, parse::boolean),
            hostname_trust_uts_namespace: r.get(
                key!("hostname_trust_uts_namespace"),
                d.hostname.hostname_trust_uts_namespace,
                parse::boolean,
            ),
        };
        let tags = HostTagsConfig {
            tags: r.get(key!("tags"), d.tags.tags, parse::list),
            extra_tags: r.get(key!("extra_tags"), d.tags.extra_tags, parse::list),
            env: r.get(key!("env"), d.tags.env, trimmed),
            tag_value_split_separator: r.get(
                key!("tag_value_split_separator"),
                d.tags.tag_value_split_separator,
                string_map,
            ),
        };
        let host_aliases = r.get(key!("host_aliases"), d.host_aliases, parse::list);
        let hostname_force_config_as_canonical = r.get(
            key!("hostname_force_config_as_canonical"),
            d.hostname_force_config_as_canonical,
            parse::boolean,
        );
        let mut bare_number = None;
        let expected_tags_duration = r.get(key!("expected_tags_duration"), d.expected_tags_duration, |raw| {
            let (duration, bare) = go_duration(raw)?;
            if bare && !duration.is_zero() {
                bare_number = Some(duration.as_nanos());
            }
            Ok(duration)
        });
        let enable_metadata_collection = r.get(
            key!("enable_metadata_collection"),
            d.enable_metadata_collection,
            parse::boolean,
        );
        let metadata_providers = r.get_with(
            key!("metadata_providers"),
            d.metadata_providers,
            metadata_providers,
            |providers| {
                serde_json::Value::Array(
                    providers
                        .iter()
                        .map(|p| {
                            serde_json::json!({"name": p.name, "interval": p.interval, "early_interval": p.early_interval})
                        })
                        .collect(),
                )
            },
        );
        let mut warnings = Vec::new();
        if let Some(ns) = bare_number {
            warnings.push(format!(
                "expected_tags_duration is {ns} without a unit, which the Datadog Agent reads as {ns} nanoseconds: \
                 host tags are effectively not added to metrics. Write it with a unit, e.g. `{ns}s` or `10m`."
            ));
        }
        HostSettings {
            hostname,
            tags,
            host_aliases,
            hostname_force_config_as_canonical,
            expected_tags_duration,
            enable_metadata_collection,
            metadata_providers,
            install_info: r.config_dir().join("install_info"),
            warnings,
        }
    }

    /// What the settings mean that the user may not expect, for the binary to
    /// log once logging runs (values are read before it does).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The Agent's `system` host tags.
    pub fn host_tags(&self) -> Vec<String> {
        host_tags(&self.tags)
    }

    /// The host payload's schedule from the `host` entry of
    /// `metadata_providers`, validated (and errors logged) as the Agent does.
    pub fn metadata_schedule(&self) -> MetadataSchedule {
        match self.metadata_providers.iter().find(|p| p.name == "host") {
            Some(p) => MetadataSchedule::from_config(Some(p.interval), Some(p.early_interval)),
            None => MetadataSchedule::default(),
        }
    }

    /// What the host payload says, for `hostname` as resolved at start.
    pub fn metadata_config(
        &self,
        hostname: ResolvedHostname,
        api_key: &str,
        agent_version: &str,
    ) -> HostMetadataConfig {
        HostMetadataConfig {
            api_key: api_key.to_owned(),
            agent_version: agent_version.to_owned(),
            agent_flavor: AGENT_FLAVOR.to_owned(),
            hostname,
            host_aliases: self.host_aliases.clone(),
            hostname_force_config_as_canonical: self.hostname_force_config_as_canonical,
            host_tags: self.host_tags(),
            install_method: InstallMethod::read(&self.install_info),
            no_proxy_nonexact_match: None,
        }
    }
}

fn trimmed(raw: Raw<'_>) -> Result<String, String> {
    parse::string(raw).map(|s| s.trim().to_owned())
}

/// A map of string to string: a YAML mapping, or a JSON object in the
/// environment (`DD_TAG_VALUE_SPLIT_SEPARATOR='{"role": ","}'`).
fn string_map(raw: Raw<'_>) -> Result<BTreeMap<String, String>, String> {
    const EXPECTED: &str = "a map of tag name to separator, e.g. {\"role\": \",\"}";
    let owned;
    let map = match raw {
        Raw::Yaml(Yaml::Mapping(m)) => m,
        _ => {
            let text = raw.text().ok_or_else(|| EXPECTED.to_owned())?;
            owned = serde_yaml::from_str::<Yaml>(text).map_err(|_| EXPECTED.to_owned())?;
            owned.as_mapping().ok_or_else(|| EXPECTED.to_owned())?
        }
    };
    map.iter()
        .map(|(k, v)| {
            let k = Raw::Yaml(k).scalar().ok_or_else(|| EXPECTED.to_owned())?;
            let v = Raw::Yaml(v).scalar().ok_or_else(|| EXPECTED.to_owned())?;
            Ok((k, v))
        })
        .collect()
}

/// `metadata_providers`: a YAML list of `{name, interval, early_interval}`,
/// or the same as a JSON array in the environment.
fn metadata_providers(raw: Raw<'_>) -> Result<Vec<MetadataProvider>, String> {
    const EXPECTED: &str =
        "a list of {name, interval, early_interval} (seconds), e.g. [{\"name\": \"host\", \"interval\": 3600}]";
    let owned;
    let items = match raw {
        Raw::Yaml(Yaml::Sequence(items)) => items,
        _ => {
            let text = raw.text().ok_or_else(|| EXPECTED.to_owned())?;
            owned = serde_yaml::from_str::<Yaml>(text).map_err(|_| EXPECTED.to_owned())?;
            owned.as_sequence().ok_or_else(|| EXPECTED.to_owned())?
        }
    };
    let seconds = |v: Option<&Yaml>| -> Result<u64, String> {
        match v {
            None | Some(Yaml::Null) => Ok(0),
            Some(v) => Raw::Yaml(v)
                .scalar()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| EXPECTED.to_owned()),
        }
    };
    items
        .iter()
        .map(|item| {
            let map = item.as_mapping().ok_or_else(|| EXPECTED.to_owned())?;
            let name = map
                .get("name")
                .and_then(|n| Raw::Yaml(n).scalar())
                .ok_or_else(|| EXPECTED.to_owned())?;
            Ok(MetadataProvider {
                name,
                interval: seconds(map.get("interval"))?,
                early_interval: seconds(map.get("early_interval"))?,
            })
        })
        .collect()
}

/// A Go duration as viper's `GetDuration` reads it, and whether it was a bare
/// number: `1h30m`, `1.5h`, `300ms`, `-5m` (negative: off) with the units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; a number without a unit (a YAML
/// number, or text without any unit letter) is nanoseconds.
fn go_duration(raw: Raw<'_>) -> Result<(Duration, bool), String> {
    const EXPECTED: &str =
        "a duration with a unit, e.g. 10m, 1h30m, 90s (a bare number is nanoseconds, as in the Agent)";
    let (text, bare) = match raw {
        Raw::Yaml(Yaml::Number(n)) => (n.to_string(), true),
        _ => {
            let text = raw.text().ok_or_else(|| EXPECTED.to_owned())?.trim().to_owned();
            let bare = !text.contains(|c: char| "nsuµμmh".contains(c));
            (text, bare)
        }
    };
    let nanos = if bare {
        text.parse::<f64>().ok().filter(|n| n.is_finite())
    } else {
        parse_go_duration(&text)
    };
    let nanos = nanos.ok_or_else(|| EXPECTED.to_owned())?;
    // Go's Duration holds about 292 years of nanoseconds.
    if nanos.abs() > i64::MAX as f64 {
        return Err(EXPECTED.to_owned());
    }
    let nanos = nanos.max(0.0).trunc() as u64;
    Ok((Duration::from_nanos(nanos), bare))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(s: &str) -> Option<f64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use adp_config::Environment;

    use super::*;

    fn read(yaml: &str, env: &[(&str, &str)]) -> Result<HostSettings, String> {
        let mut r = Reader::from_yaml(
            yaml,
            Path::new("/etc/datadog-agent/datadog.yaml"),
            Environment::from_pairs(env.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        r.resolve_secrets().map_err(|e| e.to_string())?;
        let settings = HostSettings::read(&mut r);
        r.finish().map_err(|e| e.to_string())?;
        Ok(settings)
    }

    #[test]
    fn defaults_are_the_agents() {
        let s = read("{}", &[]).unwrap();
        assert_eq!(
            HostSettings {
                install_info: PathBuf::from("/etc/datadog-agent/install_info"),
                ..HostSettings::default()
            },
            s
        );
        assert!(s.enable_metadata_collection);
        assert_eq!(s.metadata_schedule(), MetadataSchedule::default());
    }

    #[test]
    fn dd_tags_are_space_separated_and_env_is_a_host_tag() {
        let s = read(
            "tags: [team:iot]\nextra_tags: [board:pi4]\n",
            &[
                ("DD_TAGS", "site:lyon  rack:3"),
                ("DD_ENV", "prod"),
                ("DD_HOSTNAME", " pi-7 "),
            ],
        )
        .unwrap();
        assert_eq!(s.tags.tags, ["site:lyon", "rack:3"]);
        assert_eq!(s.host_tags(), ["board:pi4", "env:prod", "rack:3", "site:lyon"]);
        assert_eq!(s.hostname.hostname, "pi-7");
    }

    #[test]
    fn expected_tags_duration_is_a_go_duration_and_a_bare_number_is_nanoseconds() {
        for (value, expected) in [
            ("10m", Duration::from_secs(600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("90s", Duration::from_secs(90)),
            ("300ms", Duration::from_millis(300)),
            ("2us", Duration::from_micros(2)),
            ("0", Duration::ZERO),
            ("-5m", Duration::ZERO),
        ] {
            let s = read("{}", &[("DD_EXPECTED_TAGS_DURATION", value)]).unwrap();
            assert_eq!(s.expected_tags_duration, expected, "{value}");
            assert!(s.warnings().is_empty(), "{value}");
        }
        let s = read("expected_tags_duration: 600\n", &[]).unwrap();
        assert_eq!(s.expected_tags_duration, Duration::from_nanos(600));
        assert_eq!(s.warnings().len(), 1);
        assert!(s.warnings()[0].contains("600 nanoseconds") && s.warnings()[0].contains("`600s`"));
        let s = read("expected_tags_duration: \"600\"\n", &[]).unwrap();
        assert_eq!(s.expected_tags_duration, Duration::from_nanos(600));
        for bad in ["10 minutes", "5x", "m", "1.2.3s"] {
            let err = read("{}", &[("DD_EXPECTED_TAGS_DURATION", bad)]).unwrap_err();
            assert!(err.contains("expected_tags_duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_host_provider_of_metadata_providers_sets_the_schedule() {
        let s = read(
            "metadata_providers:\n  - name: inventories\n    interval: 60\n  - name: host\n    interval: 600\n    early_interval: 100\n",
            &[],
        )
        .unwrap();
        let mut schedule = s.metadata_schedule();
        assert_eq!(
            [
                schedule.next_interval(),
                schedule.next_interval(),
                schedule.next_interval()
            ]
            .map(|d| d.as_secs()),
            [100, 300, 600]
        );
        let s = read(
            "{}",
            &[("DD_METADATA_PROVIDERS", r#"[{"name": "host", "interval": "3600"}]"#)],
        )
        .unwrap();
        assert_eq!(
            s.metadata_providers,
            [MetadataProvider {
                name: "host".into(),
                interval: 3600,
                early_interval: 0
            }]
        );
        let err = read("metadata_providers: [{interval: 5}]\n", &[]).unwrap_err();
        assert!(err.contains("metadata_providers"), "{err}");
    }

    #[test]
    fn tag_value_split_separator_is_a_map_from_yaml_or_json() {
        let s = read(
            "tags: [\"role:db,cache\"]\ntag_value_split_separator: {role: \",\"}\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.host_tags(), ["role:cache", "role:db"]);
        let s = read("{}", &[("DD_TAG_VALUE_SPLIT_SEPARATOR", r#"{"role": ";"}"#)]).unwrap();
        assert_eq!(s.tags.tag_value_split_separator["role"], ";");
    }

    #[test]
    fn the_payload_config_carries_the_resolved_name_and_the_host_tags() {
        let s = read("env: dev\nhost_aliases: [alias-1]\n", &[]).unwrap();
        let resolved = ResolvedHostname {
            hostname: "board-3".into(),
            provider: crate::Provider::Os,
        };
        let c = s.metadata_config(resolved.clone(), "key", "0.1.0");
        assert_eq!(c.hostname, resolved);
        assert_eq!(c.host_tags, ["env:dev"]);
        assert_eq!(c.host_aliases, ["alias-1"]);
        assert_eq!(c.agent_flavor, AGENT_FLAVOR);
        assert_eq!(c.install_method, None);
    }
}
