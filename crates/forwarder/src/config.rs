//! Forwarder configuration, named after the Datadog Agent's keys.
//!
//! [`ForwarderConfig`] is plain data. [`ForwarderConfig::read`] declares and
//! reads its keys through the shared `adp-config` reader (this crate owns
//! them); tests fill it directly (durations are [`Duration`]s so tests can use
//! milliseconds). [`ForwarderConfig::validate`] rejects values the forwarder
//! cannot work with, naming the key to fix.
//!
//! # Endpoints
//! The main endpoint is `dd_url` when set, otherwise `https://app.<site>`; it
//! receives every payload once with `api_key`. Each URL in
//! `additional_endpoints` receives one more copy per API key listed for it.
//! As in the Agent, a destination whose host is a Datadog `app.` host
//! (`app.<site>`, `app.mrf.<site>`) is sent to under its version-prefixed name,
//! `<maj>-<min>-<patch>-app.agent.<site>` from `agent_version`; other hosts
//! are used as configured (see `domain.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use adp_config::{key, parse, MemoryBounds, Raw, Reader};
use http::Uri;

/// Proxy settings (the Agent's `proxy` section).
///
/// Read by [`ForwarderConfig::read`]: `DD_PROXY_HTTPS` first, then the standard
/// variables (`HTTPS_PROXY`, `https_proxy`, ...), then the file, as the Agent's
/// `loadProxyFromEnv` does. Loopback
/// destinations (`localhost`, `127.0.0.0/8`, `::1`) never go through a proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `proxy.https`: `http://[user:pass@]host:port` of the proxy used for
    /// `https://` endpoints, reached with an HTTP `CONNECT` tunnel. Also read
    /// from `HTTPS_PROXY`/`https_proxy`. Defaults to unset (direct connections).
    pub https: Option<String>,
    /// `proxy.http`: proxy used for plain `http://` endpoints, which receive
    /// requests in absolute form. Also read from `HTTP_PROXY`/`http_proxy`.
    /// Defaults to unset.
    pub http: Option<String>,
    /// `proxy.no_proxy`: hosts reached directly. An entry matches the host
    /// itself and its subdomains (`example.com` matches `intake.example.com`;
    /// a leading dot, `.example.com`, matches only subdomains), an IP address
    /// matches exactly, `host:port` only on that port, and `*` disables the
    /// proxy. This is the Agent's `no_proxy_nonexact_match: true` behaviour.
    /// Also read from `NO_PROXY`/`no_proxy` (comma-separated). Defaults to empty.
    pub no_proxy: Vec<String>,
}

/// Everything the forwarder needs, with the Datadog Agent's key names.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwarderConfig {
    /// `api_key`: sent as `DD-Api-Key` to the main endpoint. Required; never logged.
    pub api_key: String,
    /// `site`: the main endpoint is `https://app.<site>` unless `dd_url` is set.
    /// Defaults to `datadoghq.com`.
    pub site: String,
    /// `dd_url`: the main endpoint's base URL (`http://` allowed, for test
    /// intakes), overriding `site`. Defaults to unset.
    pub dd_url: Option<String>,
    /// `additional_endpoints`: base URL → API keys; every payload is also sent
    /// once per (URL, key) pair. Defaults to empty.
    pub additional_endpoints: BTreeMap<String, Vec<String>>,
    /// `forwarder_timeout`: limit for one request, connection and TLS
    /// handshake included; a timed-out request is retried. Defaults to 20 s.
    pub forwarder_timeout: Duration,
    /// `forwarder_retry_queue_payloads_max_size`: bytes of payload bodies each
    /// endpoint may hold in memory while waiting to be (re)sent; beyond it the
    /// oldest are moved to disk storage when enabled, else dropped (counted as
    /// `evicted`). Defaults to 15 MiB.
    pub forwarder_retry_queue_payloads_max_size: u64,
    /// `forwarder_storage_max_size_in_bytes`: bytes of payloads kept on disk
    /// when memory is full or at shutdown; the oldest files are removed to make
    /// room. Defaults to 0, which disables disk storage.
    pub forwarder_storage_max_size_in_bytes: u64,
    /// `forwarder_storage_path`: directory for disk storage (one subdirectory
    /// per endpoint). Defaults to `/opt/datadog-agent/run/transactions_to_retry`.
    pub forwarder_storage_path: PathBuf,
    /// `forwarder_outdated_file_in_days`: stored payloads older than this are
    /// deleted at startup instead of replayed. Defaults to 10.
    pub forwarder_outdated_file_in_days: u32,
    /// `forwarder_backoff_base`: the first backoff after an error is drawn
    /// between `base` and `2 × base`. Defaults to 2 s.
    pub forwarder_backoff_base: Duration,
    /// `forwarder_backoff_factor`: the Agent's "minimum backoff factor": after
    /// `n` consecutive errors the wait is drawn uniformly from
    /// `[base × 2ⁿ / factor, base × 2ⁿ]` (jitter), capped at `forwarder_backoff_max`.
    /// Must be at least 2. Defaults to 2.
    pub forwarder_backoff_factor: f64,
    /// `forwarder_backoff_max`: upper bound of one backoff. Defaults to 64 s.
    pub forwarder_backoff_max: Duration,
    /// `forwarder_recovery_interval`: how many error steps one success removes.
    /// Defaults to 2.
    pub forwarder_recovery_interval: u32,
    /// `forwarder_recovery_reset`: one success clears all errors. Defaults to false.
    pub forwarder_recovery_reset: bool,
    /// `data_plane.shutdown_drain_timeout` (also the Agent's
    /// `forwarder_stop_timeout`): on SIGINT/SIGTERM, after the listeners stop
    /// and every open window is flushed, how long queued payloads may
    /// still be sent before the rest is persisted (disk storage) or dropped;
    /// 0 drops at once. Defaults to 10 s.
    pub forwarder_stop_timeout: Duration,
    /// `forwarder_high_prio_buffer_size`: payloads buffered between the
    /// pipeline and the forwarder; [`crate::ForwarderHandle::send`] waits when
    /// it is full. Defaults to 100.
    pub forwarder_high_prio_buffer_size: usize,
    /// `forwarder_num_workers`: requests in flight at once per destination
    /// (the Agent's workers per domain; it also caps the Agent's connections
    /// per host). At least 1. Defaults to 1.
    pub forwarder_num_workers: usize,
    /// `forwarder_apikey_validation_interval` (minutes in `datadog.yaml`): how
    /// often the API keys are checked against `/api/v1/validate` after the
    /// check at start. Zero is replaced by the default with the Agent's
    /// warning. Defaults to 60 min.
    pub forwarder_apikey_validation_interval: Duration,
    /// `proxy`: see [`ProxyConfig`].
    pub proxy: ProxyConfig,
    /// The version sent as `DD-Agent-Version` and in `User-Agent:
    /// datadog-agent/<version>`. Defaults to this crate's version.
    pub agent_version: String,
    /// The agent-payload protobuf version sent as `DD-Agent-Payload` with
    /// protobuf bodies, as the Agent's serializer does. Defaults to `v5.0.141`
    /// (what Agent 7.63 sends).
    pub agent_payload_version: String,
}

/// `forwarder_retry_queue_payloads_max_size`'s default: 15 MiB.
pub const DEFAULT_RETRY_QUEUE_MAX_SIZE: u64 = 15 * 1024 * 1024;

/// `forwarder_apikey_validation_interval`'s default: 60 minutes.
pub const DEFAULT_APIKEY_VALIDATION_INTERVAL: Duration = Duration::from_secs(60 * 60);

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            site: "datadoghq.com".to_owned(),
            dd_url: None,
            additional_endpoints: BTreeMap::new(),
            forwarder_timeout: Duration::from_secs(20),
            forwarder_retry_queue_payloads_max_size: DEFAULT_RETRY_QUEUE_MAX_SIZE,
            forwarder_storage_max_size_in_bytes: 0,
            forwarder_storage_path: PathBuf::from("/opt/datadog-agent/run/transactions_to_retry"),
            forwarder_outdated_file_in_days: 10,
            forwarder_backoff_base: Duration::from_secs(2),
            forwarder_backoff_factor: 2.0,
            forwarder_backoff_max: Duration::from_secs(64),
            forwarder_recovery_interval: 2,
            forwarder_recovery_reset: false,
            forwarder_stop_timeout: Duration::from_secs(10),
            forwarder_high_prio_buffer_size: 100,
            forwarder_num_workers: 1,
            forwarder_apikey_validation_interval: DEFAULT_APIKEY_VALIDATION_INTERVAL,
            proxy: ProxyConfig::default(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_payload_version: "v5.0.141".to_owned(),
        }
    }
}

/// A configuration value the forwarder cannot use; the message names the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No API key.
    #[error("no API key configured: set `api_key` (or DD_API_KEY)")]
    MissingApiKey,
    /// Neither `dd_url` nor `site`.
    #[error("no intake configured: set `site` (e.g. datadoghq.com) or `dd_url`")]
    MissingSite,
    /// A URL that is not `http(s)://host[:port][/path]`.
    #[error("invalid URL {url:?} in `{key}`: {reason}")]
    InvalidUrl {
        /// The key holding the URL.
        key: &'static str,
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An additional endpoint without usable API keys.
    #[error(
        "additional endpoint {url:?} has no API key: list at least one non-empty key for it in `additional_endpoints`"
    )]
    MissingAdditionalKey {
        /// The endpoint URL.
        url: String,
    },
    /// A value out of range.
    #[error("invalid `{key}`: {reason}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// What the value must be.
        reason: &'static str,
    },
}

/// One destination: a base URL and the API keys that each get a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Domain {
    /// Base URL without trailing slash, e.g. `https://app.datadoghq.com`.
    pub base: String,
    /// API keys, deduplicated, in configuration order.
    pub keys: Vec<String>,
}

impl ForwarderConfig {
    /// Checks every value; the error names the key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.api_key.trim().is_empty() {
            return Err(ConfigError::MissingApiKey);
        }
        match &self.dd_url {
            Some(url) => check_url("dd_url", url)?,
            None if self.site.trim().is_empty() => return Err(ConfigError::MissingSite),
            None => check_url("site", &format!("https://app.{}", self.site.trim()))?,
        }
        for (url, keys) in &self.additional_endpoints {
            check_url("additional_endpoints", url)?;
            if keys.iter().all(|k| k.trim().is_empty()) {
                return Err(ConfigError::MissingAdditionalKey { url: url.clone() });
            }
        }
        // Each range rule: whether the value breaks it, the key, what it must be.
        let out_of_range = [
            (
                self.forwarder_timeout.is_zero(),
                "forwarder_timeout",
                "must be greater than zero",
            ),
            (
                self.forwarder_backoff_base.is_zero(),
                "forwarder_backoff_base",
                "must be greater than zero",
            ),
            (
                self.forwarder_backoff_max < self.forwarder_backoff_base,
                "forwarder_backoff_max",
                "must be at least forwarder_backoff_base",
            ),
            (
                // NaN fails this comparison too.
                !(self.forwarder_backoff_factor >= 2.0 && self.forwarder_backoff_factor.is_finite()),
                "forwarder_backoff_factor",
                "must be a number >= 2",
            ),
            (
                self.forwarder_retry_queue_payloads_max_size == 0,
                "forwarder_retry_queue_payloads_max_size",
                "must be greater than zero",
            ),
            (
                self.forwarder_high_prio_buffer_size == 0,
                "forwarder_high_prio_buffer_size",
                "must be greater than zero",
            ),
            (
                self.forwarder_num_workers == 0,
                "forwarder_num_workers",
                "must be at least 1 (requests in flight per destination)",
            ),
            (
                self.forwarder_storage_max_size_in_bytes > 0 && self.forwarder_storage_path.as_os_str().is_empty(),
                "forwarder_storage_path",
                "must be set when forwarder_storage_max_size_in_bytes > 0",
            ),
        ];
        if let Some((_, key, reason)) = out_of_range.into_iter().find(|(broken, ..)| *broken) {
            return Err(ConfigError::OutOfRange { key, reason });
        }
        for (key, proxy) in [("proxy.https", &self.proxy.https), ("proxy.http", &self.proxy.http)] {
            if let Some(p) = proxy {
                check_proxy_url(key, p)?;
            }
        }
        Ok(())
    }

    /// The destinations, main endpoint first; an additional endpoint equal to
    /// the main one adds its keys to it. Call after [`Self::validate`].
    pub(crate) fn domains(&self) -> Vec<Domain> {
        let main = match &self.dd_url {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!("https://app.{}", self.site.trim()),
        };
        let mut domains = vec![Domain {
            base: main,
            keys: vec![self.api_key.trim().to_owned()],
        }];
        for (url, keys) in &self.additional_endpoints {
            let base = url.trim().trim_end_matches('/').to_owned();
            let index = match domains.iter().position(|d| d.base == base) {
                Some(i) => i,
                None => {
                    domains.push(Domain { base, keys: Vec::new() });
                    domains.len() - 1
                }
            };
            for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
                if !domains[index].keys.iter().any(|k| k == key) {
                    domains[index].keys.push(key.to_owned());
                }
            }
        }
        domains
    }
}

/// `url` (of `key`) parsed, and how to say what is wrong with it: its errors
/// show the URL as `shown`.
fn parse_url(key: &'static str, url: &str, shown: String) -> Result<(Uri, impl Fn(&str) -> ConfigError), ConfigError> {
    let invalid = move |reason: &str| ConfigError::InvalidUrl {
        key,
        url: shown.clone(),
        reason: reason.to_owned(),
    };
    match url.trim().parse::<Uri>() {
        Ok(uri) => Ok((uri, invalid)),
        Err(e) => Err(invalid(&e.to_string())),
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let (uri, invalid) = parse_url(key, url, url.to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("the scheme must be http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("a base URL cannot have a query"));
    }
    Ok(())
}

fn check_proxy_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let (uri, invalid) = parse_url(key, url, redact_userinfo(url))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return Err(invalid(
                "only http:// proxies are supported (https:// destinations are tunnelled with CONNECT)",
            ))
        }
        None => return Err(invalid("the proxy needs a scheme, e.g. http://proxy:3128")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}

/// The URL with its password (or a bare user part, often a token) hidden, for
/// logs and errors: the one redaction rule of `adp-config`.
pub(crate) fn redact_userinfo(url: &str) -> String {
    adp_config::redact_url(url)
}

impl ForwarderConfig {
    /// Reads the forwarder's keys (their one owner): the intake (`api_key`,
    /// `site`, `dd_url`, `additional_endpoints`), `forwarder_*`, `proxy.*` with
    /// the standard proxy variables, `run_path` (where disk storage defaults
    /// to) and the shutdown drain. `agent_version` and `agent_payload_version`
    /// are left at their defaults for the caller to set. Out-of-range values
    /// are reported by `r`, as is a `forwarder_backoff_max` below the base.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        let api_key = r.get(key!("api_key").secret(), d.api_key, |raw| {
            parse::string(raw).map(|s| s.trim().to_owned())
        });
        let site = r.get(key!("site"), d.site, |raw| match parse::string(raw) {
            Ok(s) if !s.trim().is_empty() && !s.contains('/') => Ok(s.trim().to_owned()),
            _ => Err("a Datadog site domain such as datadoghq.com or datadoghq.eu".to_owned()),
        });
        let dd_url = r.get(
            key!("dd_url").extra_env(&["DD_URL"]),
            d.dd_url,
            |raw| match parse::optional_string(raw)? {
                None => Ok(None),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Ok(Some(u.trim().trim_end_matches('/').to_owned()))
                }
                Some(_) => Err("an http:// or https:// URL".to_owned()),
            },
        );
        let additional_endpoints = r.get(
            key!("additional_endpoints").secret_map_values(),
            d.additional_endpoints,
            endpoint_map,
        );
        let run_path = r.get(key!("run_path"), PathBuf::from(DEFAULT_RUN_PATH), parse::path);
        let retry_queue = |raw: Raw<'_>| {
            parse::byte_size(raw).and_then(|n| {
                if n == 0 {
                    Err("a size in bytes > 0".to_owned())
                } else {
                    Ok(n)
                }
            })
        };
        let config = Self {
            api_key,
            site,
            dd_url,
            additional_endpoints,
            forwarder_timeout: r.get(
                key!("forwarder_timeout"),
                d.forwarder_timeout,
                parse::duration(Duration::from_millis(1)),
            ),
            forwarder_retry_queue_payloads_max_size: r.get(
                key!("forwarder_retry_queue_payloads_max_size"),
                d.forwarder_retry_queue_payloads_max_size,
                retry_queue,
            ),
            forwarder_storage_max_size_in_bytes: r.get(
                key!("forwarder_storage_max_size_in_bytes"),
                d.forwarder_storage_max_size_in_bytes,
                parse::byte_size,
            ),
            forwarder_storage_path: r.get(
                key!("forwarder_storage_path"),
                run_path.join("transactions_to_retry"),
                parse::path,
            ),
            forwarder_outdated_file_in_days: r.get(
                key!("forwarder_outdated_file_in_days"),
                d.forwarder_outdated_file_in_days,
                parse::integer(1, 3650),
            ),
            forwarder_backoff_base: r.get(
                key!("forwarder_backoff_base"),
                d.forwarder_backoff_base,
                parse::duration(Duration::from_millis(1)),
            ),
            forwarder_backoff_factor: r.get(
                key!("forwarder_backoff_factor"),
                d.forwarder_backoff_factor,
                parse::float("a number >= 2", |v| v >= 2.0),
            ),
            forwarder_backoff_max: r.get(
                key!("forwarder_backoff_max"),
                d.forwarder_backoff_max,
                parse::duration(Duration::from_millis(1)),
            ),
            forwarder_recovery_interval: r.get(
                key!("forwarder_recovery_interval"),
                d.forwarder_recovery_interval,
                parse::integer(1, 1000),
            ),
            forwarder_recovery_reset: r.get(
                key!("forwarder_recovery_reset"),
                d.forwarder_recovery_reset,
                parse::boolean,
            ),
            // The agent's drain on SIGTERM; the Agent's own name is read too.
            forwarder_stop_timeout: r.get(
                key!("data_plane.shutdown_drain_timeout").aliases(&["forwarder_stop_timeout"]),
                Duration::from_secs(10),
                parse::duration(Duration::ZERO),
            ),
            forwarder_high_prio_buffer_size: r.get(
                key!("forwarder_high_prio_buffer_size"),
                d.forwarder_high_prio_buffer_size,
                parse::integer(1, 1 << 20),
            ),
            forwarder_num_workers: r.get(
                key!("forwarder_num_workers"),
                d.forwarder_num_workers,
                parse::integer(1, 64),
            ),
            // Minutes, as the Agent reads it; 0 is replaced by the default with the Agent's warning.
            forwarder_apikey_validation_interval: r.get_with(
                key!("forwarder_apikey_validation_interval"),
                d.forwarder_apikey_validation_interval,
                |raw| parse::integer::<u64>(0, 525_600)(raw).map(|m| Duration::from_secs(m * 60)),
                |d| serde_json::Value::from(d.as_secs() / 60),
            ),
            proxy: ProxyConfig {
                https: r.get(
                    key!("proxy.https").extra_env(&["HTTPS_PROXY", "https_proxy"]),
                    None,
                    parse::optional_string,
                ),
                http: r.get(
                    key!("proxy.http").extra_env(&["HTTP_PROXY", "http_proxy"]),
                    None,
                    parse::optional_string,
                ),
                no_proxy: r.get(
                    key!("proxy.no_proxy").extra_env(&["NO_PROXY", "no_proxy"]),
                    Vec::new(),
                    |raw| {
                        // NO_PROXY is comma-separated by convention; the Agent's list is space-separated.
                        parse::list(raw).map(|items| {
                            items
                                .iter()
                                .flat_map(|i| i.split(','))
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                    },
                ),
            },
            ..d
        };
        if config.forwarder_backoff_max < config.forwarder_backoff_base {
            r.reject(
                key!("forwarder_backoff_max"),
                format!(
                    "a duration >= forwarder_backoff_base ({})",
                    adp_config::format_duration(config.forwarder_backoff_base)
                ),
            );
        }
        config
    }

    /// The retry queue of every destination, full, and a full input buffer of
    /// the largest payloads.
    pub fn memory_bounds(&self, max_payload_size: u64) -> MemoryBounds {
        let destinations = 1 + u64::try_from(self.additional_endpoints.len()).unwrap_or(u64::MAX);
        let buffer = u64::try_from(self.forwarder_high_prio_buffer_size).unwrap_or(u64::MAX);
        MemoryBounds {
            component: "forwarder",
            minimum: 0,
            firm: self
                .forwarder_retry_queue_payloads_max_size
                .saturating_mul(destinations)
                .saturating_add(buffer.saturating_mul(max_payload_size)),
            key: "forwarder_retry_queue_payloads_max_size",
        }
    }
}

/// The Agent's `run_path` default.
pub const DEFAULT_RUN_PATH: &str = "/opt/datadog-agent/run";

/// A map of endpoint URL to API keys (`additional_endpoints`): a YAML mapping,
/// or a JSON object in the environment, as the Agent reads it.
fn endpoint_map(raw: Raw<'_>) -> Result<BTreeMap<String, Vec<String>>, String> {
    const EXPECTED: &str =
        "a map of intake URL to a list of API keys, e.g. {\"https://app.datadoghq.eu\": [\"<api key>\"]}";
    let text_map;
    let map = match raw {
        Raw::Yaml(serde_yaml::Value::Mapping(m)) => m,
        _ => {
            let s = raw.text().ok_or_else(|| EXPECTED.to_owned())?;
            let json: serde_json::Value = serde_json::from_str(s).map_err(|_| EXPECTED.to_owned())?;
            text_map = match serde_yaml::to_value(json) {
                Ok(serde_yaml::Value::Mapping(m)) => m,
                _ => return Err(EXPECTED.to_owned()),
            };
            &text_map
        }
    };
    let mut out = BTreeMap::new();
    for (url, keys) in map {
        let url = url
            .as_str()
            .filter(|u| u.contains("://"))
            .ok_or_else(|| EXPECTED.to_owned())?;
        let keys = match keys {
            serde_yaml::Value::String(k) => vec![k.clone()],
            serde_yaml::Value::Sequence(ks) => ks
                .iter()
                .map(|k| k.as_str().map(str::to_owned).ok_or_else(|| EXPECTED.to_owned()))
                .collect::<Result<_, _>>()?,
            _ => return Err(EXPECTED.to_owned()),
        };
        out.insert(url.trim_end_matches('/').to_owned(), keys);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ForwarderConfig {
        ForwarderConfig {
            api_key: "abc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_match_the_agent() {
        let c = ForwarderConfig::default();
        assert_eq!(c.forwarder_timeout, Duration::from_secs(20));
        assert_eq!(c.forwarder_retry_queue_payloads_max_size, 15_728_640);
        assert_eq!(c.forwarder_storage_max_size_in_bytes, 0);
        assert_eq!(c.forwarder_outdated_file_in_days, 10);
        assert_eq!(c.forwarder_backoff_base, Duration::from_secs(2));
        assert_eq!(c.forwarder_backoff_max, Duration::from_secs(64));
        assert_eq!(c.forwarder_recovery_interval, 2);
        assert_eq!(c.forwarder_num_workers, 1);
        assert_eq!(c.forwarder_apikey_validation_interval, Duration::from_secs(3600));
    }

    #[test]
    fn validation_names_the_key_to_fix() {
        let err = ForwarderConfig::default().validate().unwrap_err();
        assert!(err.to_string().contains("`api_key`"), "{err}");
        // The key the message must name, and how to make the configuration invalid there.
        type Breakage = (&'static str, fn(&mut ForwarderConfig));
        let breakages: [Breakage; 5] = [
            ("`dd_url`", |c| c.dd_url = Some("ftp://x".into())),
            ("`forwarder_timeout`", |c| c.forwarder_timeout = Duration::ZERO),
            ("`forwarder_backoff_factor`", |c| c.forwarder_backoff_factor = 1.5),
            ("`forwarder_num_workers`", |c| c.forwarder_num_workers = 0),
            ("`additional_endpoints`", |c| {
                c.additional_endpoints
                    .insert("https://app.datadoghq.eu".into(), vec![" ".into()]);
            }),
        ];
        for (key, break_it) in breakages {
            let mut c = valid();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let mut c = valid();
        c.proxy.https = Some("socks5://u:secret@proxy:1080".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`proxy.https`") && !err.contains("secret"), "{err}");
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn domains_merge_the_main_endpoint_and_additional_ones() {
        let mut c = valid();
        c.site = "datadoghq.eu".into();
        c.additional_endpoints
            .insert("https://app.datadoghq.eu/".into(), vec!["abc".into(), "second".into()]);
        c.additional_endpoints
            .insert("http://127.0.0.1:9".into(), vec!["k1".into(), "k2".into(), "k1".into()]);
        let d = c.domains();
        assert_eq!(
            d,
            vec![
                Domain {
                    base: "https://app.datadoghq.eu".into(),
                    keys: vec!["abc".into(), "second".into()]
                },
                Domain {
                    base: "http://127.0.0.1:9".into(),
                    keys: vec!["k1".into(), "k2".into()]
                },
            ]
        );
        let c = ForwarderConfig {
            dd_url: Some("http://localhost:8080/".into()),
            ..valid()
        };
        assert_eq!(c.domains()[0].base, "http://localhost:8080");
    }

    adp_config::test_read!(ForwarderConfig);

    #[test]
    fn the_standard_proxy_variables_are_read_after_the_dd_ones() {
        let env = [
            ("HTTPS_PROXY", "http://env:3128"),
            ("http_proxy", "http://lower:3128"),
            ("NO_PROXY", "a.example, .b.example ,,"),
        ];
        let p = read("", &env).unwrap().proxy;
        assert_eq!(p.https.as_deref(), Some("http://env:3128"));
        assert_eq!(p.http.as_deref(), Some("http://lower:3128"));
        assert_eq!(p.no_proxy, vec!["a.example".to_owned(), ".b.example".to_owned()]);
        // As the Agent's loadProxyFromEnv: a proxy variable overrides the file.
        let p = read("proxy:\n  https: http://conf:1\n", &env).unwrap().proxy;
        assert_eq!(p.https.as_deref(), Some("http://env:3128"));
        let p = read("proxy:\n  https: http://conf:1\n", &[]).unwrap().proxy;
        assert_eq!(p.https.as_deref(), Some("http://conf:1"));
        let p = read(
            "",
            &[("DD_PROXY_HTTPS", "http://dd:1"), ("HTTPS_PROXY", "http://env:3128")],
        )
        .unwrap()
        .proxy;
        assert_eq!(
            p.https.as_deref(),
            Some("http://dd:1"),
            "DD_ wins over the standard variable"
        );
    }

    #[test]
    fn keys_are_read_with_the_agents_names_defaults_and_aliases() {
        let c = read("", &[]).unwrap();
        assert_eq!(c, ForwarderConfig::default());
        let c = read(
            "run_path: /var/run/adp\nforwarder_stop_timeout: 4\nforwarder_apikey_validation_interval: 5\n",
            &[
                ("DD_URL", "http://127.0.0.1:9/"),
                ("DD_ADDITIONAL_ENDPOINTS", r#"{"https://x.example/": "k2"}"#),
            ],
        )
        .unwrap();
        assert_eq!(
            c.forwarder_storage_path,
            PathBuf::from("/var/run/adp/transactions_to_retry")
        );
        assert_eq!(
            c.forwarder_stop_timeout,
            Duration::from_secs(4),
            "the Agent's name for the drain"
        );
        assert_eq!(
            c.forwarder_apikey_validation_interval,
            Duration::from_secs(300),
            "minutes"
        );
        assert_eq!(c.dd_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.additional_endpoints["https://x.example"], ["k2"]);
        let c = read(
            "forwarder_stop_timeout: 4\n",
            &[("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "250ms")],
        )
        .unwrap();
        assert_eq!(c.forwarder_stop_timeout, Duration::from_millis(250));
    }

    #[test]
    fn a_backoff_max_below_the_base_is_rejected_naming_both() {
        let errors = invalid(
            "",
            &[("DD_FORWARDER_BACKOFF_BASE", "10"), ("DD_FORWARDER_BACKOFF_MAX", "5s")],
        );
        assert_eq!(
            errors[0].to_string(),
            "invalid value for `forwarder_backoff_max` (from DD_FORWARDER_BACKOFF_MAX): \"5s\": expected a duration \
             >= forwarder_backoff_base (10s)"
        );
    }

    #[test]
    fn memory_bounds_count_each_destination_and_the_input_buffer() {
        let c = ForwarderConfig {
            additional_endpoints: [("https://x".to_owned(), vec!["k".to_owned()])].into(),
            ..ForwarderConfig::default()
        };
        assert_eq!(
            c.memory_bounds(2_621_440).firm,
            2 * DEFAULT_RETRY_QUEUE_MAX_SIZE + 100 * 2_621_440
        );
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(redact_userinfo("http://u:p@proxy:3128"), "http://u:********@proxy:3128");
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
    }
}
