//! Forwarder configuration, named after the Datadog Agent's keys.
//!
//! [`ForwarderConfig`] is plain data: `adp-config` fills it from `datadog.yaml`
//! and `DD_*` variables, tests fill it directly (durations are [`Duration`]s so
//! tests can use milliseconds). [`ForwarderConfig::validate`] rejects values the
//! forwarder cannot work with, naming the key to fix.
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

use http::Uri;

/// Proxy settings (the Agent's `proxy` section).
///
/// Values left unset are taken from the standard environment variables when
/// the forwarder starts (see [`ProxyConfig::with_env`]). Loopback destinations
/// (`localhost`, `127.0.0.0/8`, `::1`) never go through a proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `proxy.https`: `http://[user:pass@]host:port` of the proxy used for
    /// `https://` endpoints, reached with an HTTP `CONNECT` tunnel. Defaults to
    /// unset (direct connections), or `HTTPS_PROXY`/`https_proxy`.
    pub https: Option<String>,
    /// `proxy.http`: proxy used for plain `http://` endpoints, which receive
    /// requests in absolute form. Defaults to unset, or `HTTP_PROXY`/`http_proxy`.
    pub http: Option<String>,
    /// `proxy.no_proxy`: hosts reached directly. An entry matches the host
    /// itself and its subdomains (`example.com` matches `intake.example.com`;
    /// a leading dot, `.example.com`, matches only subdomains), an IP address
    /// matches exactly, `host:port` only on that port, and `*` disables the
    /// proxy. This is the Agent's `no_proxy_nonexact_match: true` behaviour.
    /// Defaults to empty, or `NO_PROXY`/`no_proxy` (comma-separated).
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// Fills unset fields from environment variables read through `lookup`
    /// (`std::env::var(..).ok()` in production): `HTTPS_PROXY` then
    /// `https_proxy`, `HTTP_PROXY` then `http_proxy`, `NO_PROXY` then
    /// `no_proxy`. Configured values win over the environment.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        if self.https.is_none() {
            self.https = first(["HTTPS_PROXY", "https_proxy"]);
        }
        if self.http.is_none() {
            self.http = first(["HTTP_PROXY", "http_proxy"]);
        }
        if self.no_proxy.is_empty() {
            if let Some(list) = first(["NO_PROXY", "no_proxy"]) {
                self.no_proxy = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        self
    }
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
    /// `forwarder_stop_timeout`: at shutdown, how long queued payloads may
    /// still be sent before the rest is persisted (disk storage) or dropped.
    /// Defaults to 2 s.
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
            forwarder_stop_timeout: Duration::from_secs(2),
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
        let positive = |key, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::OutOfRange {
                    key,
                    reason: "must be greater than zero",
                })
            } else {
                Ok(())
            }
        };
        positive("forwarder_timeout", self.forwarder_timeout)?;
        positive("forwarder_backoff_base", self.forwarder_backoff_base)?;
        if self.forwarder_backoff_max < self.forwarder_backoff_base {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_backoff_max",
                reason: "must be at least forwarder_backoff_base",
            });
        }
        // NaN fails this comparison too.
        if !(self.forwarder_backoff_factor >= 2.0 && self.forwarder_backoff_factor.is_finite()) {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_backoff_factor",
                reason: "must be a number >= 2",
            });
        }
        if self.forwarder_retry_queue_payloads_max_size == 0 {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_retry_queue_payloads_max_size",
                reason: "must be greater than zero",
            });
        }
        if self.forwarder_high_prio_buffer_size == 0 {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_high_prio_buffer_size",
                reason: "must be greater than zero",
            });
        }
        if self.forwarder_num_workers == 0 {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_num_workers",
                reason: "must be at least 1 (requests in flight per destination)",
            });
        }
        if self.forwarder_storage_max_size_in_bytes > 0 && self.forwarder_storage_path.as_os_str().is_empty() {
            return Err(ConfigError::OutOfRange {
                key: "forwarder_storage_path",
                reason: "must be set when forwarder_storage_max_size_in_bytes > 0",
            });
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

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        key,
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
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
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        key,
        url: redact_userinfo(url),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
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

/// The URL with any `user:password@` replaced, for logs and errors.
pub(crate) fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
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
        let err = ForwarderConfig {
            dd_url: Some("ftp://x".into()),
            ..valid()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`dd_url`"), "{err}");
        let err = ForwarderConfig {
            forwarder_timeout: Duration::ZERO,
            ..valid()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`forwarder_timeout`"), "{err}");
        let err = ForwarderConfig {
            forwarder_backoff_factor: 1.5,
            ..valid()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`forwarder_backoff_factor`"), "{err}");
        let err = ForwarderConfig {
            forwarder_num_workers: 0,
            ..valid()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`forwarder_num_workers`"), "{err}");
        let mut c = valid();
        c.additional_endpoints
            .insert("https://app.datadoghq.eu".into(), vec![" ".into()]);
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("`additional_endpoints`"), "{err}");
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

    #[test]
    fn proxy_env_fills_only_unset_values() {
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some("http://env:3128".to_owned()),
            "http_proxy" => Some("http://lower:3128".to_owned()),
            "NO_PROXY" => Some("a.example, .b.example ,,".to_owned()),
            _ => None,
        };
        let p = ProxyConfig::default().with_env(env);
        assert_eq!(p.https.as_deref(), Some("http://env:3128"));
        assert_eq!(p.http.as_deref(), Some("http://lower:3128"));
        assert_eq!(p.no_proxy, vec!["a.example".to_owned(), ".b.example".to_owned()]);
        let p = ProxyConfig {
            https: Some("http://conf:1".into()),
            ..Default::default()
        }
        .with_env(env);
        assert_eq!(p.https.as_deref(), Some("http://conf:1"));
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(redact_userinfo("http://u:p@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
    }
}
