//! The API key check: the Agent's forwarder health
//! (DataDog/datadog-agent `comp/forwarder/defaultforwarder/impl/forwarder_health.go`).
//!
//! At start, then every `forwarder_apikey_validation_interval`, every
//! configured key is checked with `GET <api domain>/api/v1/validate?api_key=<key>`
//! (the key in the query, as the Agent sends it, with `User-Agent:
//! datadog-agent/<version>`), where the API domain is `https://api.<site>` for
//! Datadog sites and the configured URL otherwise ([`crate::domain::api_domain`]);
//! destinations sharing an API domain are checked there together. The 10 s
//! budget is split evenly across the keys. 200 means valid, 403 invalid;
//! another status or no answer means "could not be validated", and then the
//! Agent assumes a valid key ("to avoid killing lots of agent on an
//! outage"). The key `00000000000000000000000000000000` is never checked.
//!
//! Log lines are the Agent's: debug `api_key '<key shown by its last
//! characters>' for domain <d> is valid` / `… could not be validated: <why>`,
//! warn `… is invalid`, and error `No valid api key found, reporting the
//! forwarder as unhealthy.` after any round without a valid key. The verdict
//! is published as an [`ApiKeyStatus`] (see [`crate::Forwarder::api_key_status`]);
//! the Agent marks its `forwarder` readiness check unhealthy on
//! [`ApiKeyStatus::Invalid`]. Sending is never held back by the check.

use std::time::Duration;

use http::header::USER_AGENT;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{HttpClient, RequestError};
use crate::domain::{api_domain, hide_key_except_last_chars};

/// The Agent's key that skips validation.
const FAKE_API_KEY: &str = "00000000000000000000000000000000";
/// The Agent's budget for one round, split across the keys.
const VALIDATION_BUDGET: Duration = Duration::from_secs(10);

/// What the last API key check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKeyStatus {
    /// The first check has not finished yet.
    Unchecked,
    /// A key was valid, or the check could not tell (assumed valid, as the Agent does).
    Valid,
    /// Every key was refused with 403: the forwarder is unhealthy.
    Invalid,
}

/// One round's outcome for one key.
enum Verdict {
    Valid,
    Invalid,
    Unknown(String),
}

pub(crate) struct Validator {
    client: HttpClient,
    /// API domain → keys, in destination order.
    targets: Vec<(String, Vec<String>)>,
    per_key_timeout: Duration,
    interval: Duration,
    user_agent: HeaderValue,
    status: watch::Sender<ApiKeyStatus>,
}

impl Validator {
    /// `destinations`: each configured base URL with its keys.
    pub(crate) fn new(
        client: HttpClient,
        destinations: &[(String, Vec<String>)],
        interval: Duration,
        user_agent: HeaderValue,
    ) -> Self {
        let mut targets: Vec<(String, Vec<String>)> = Vec::new();
        let mut key_count: u32 = 0;
        for (base, keys) in destinations {
            let domain = api_domain(base);
            let index = match targets.iter().position(|(d, _)| *d == domain) {
                Some(i) => i,
                None => {
                    targets.push((domain, Vec::new()));
                    targets.len() - 1
                }
            };
            for key in keys {
                key_count = key_count.saturating_add(1);
                if !targets[index].1.contains(key) {
                    targets[index].1.push(key.clone());
                }
            }
        }
        Self {
            client,
            targets,
            per_key_timeout: VALIDATION_BUDGET / key_count.max(1),
            interval,
            user_agent,
            status: watch::channel(ApiKeyStatus::Unchecked).0,
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ApiKeyStatus> {
        self.status.subscribe()
    }

    /// Checks now, then every interval, until dropped (the task is aborted).
    pub(crate) async fn run(self) {
        tracing::debug!("Starting forwarder health check");
        tracing::debug!("Waiting for APIkey validity to be confirmed.");
        let mut ticker = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let valid = self.check().await;
            self.status.send_replace(if valid {
                ApiKeyStatus::Valid
            } else {
                ApiKeyStatus::Invalid
            });
            if !valid {
                tracing::error!("No valid api key found, reporting the forwarder as unhealthy.");
            }
            ticker.tick().await;
        }
    }

    /// One round: whether a key was valid or any could not be validated.
    async fn check(&self) -> bool {
        let mut valid = false;
        let mut unknown = false;
        for (domain, keys) in &self.targets {
            for key in keys {
                let shown = hide_key_except_last_chars(key);
                match self.validate(domain, key).await {
                    Verdict::Valid => {
                        tracing::debug!("api_key '{shown}' for domain {domain} is valid");
                        valid = true;
                    }
                    Verdict::Invalid => tracing::warn!("api_key '{shown}' for domain {domain} is invalid"),
                    Verdict::Unknown(why) => {
                        tracing::debug!("api_key '{shown}' for domain {domain} could not be validated: {why}");
                        unknown = true;
                    }
                }
            }
        }
        valid || unknown
    }

    async fn validate(&self, domain: &str, key: &str) -> Verdict {
        if key == FAKE_API_KEY {
            return Verdict::Valid;
        }
        let url = format!("{domain}/api/v1/validate?api_key={}", query_escape(key));
        let uri: Uri = match url.parse() {
            Ok(uri) => uri,
            Err(_) => return Verdict::Unknown(format!("{domain}/api/v1/validate is not a valid URL")),
        };
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(USER_AGENT, self.user_agent.clone());
        match self.client.get(uri, headers, self.per_key_timeout).await {
            Ok(StatusCode::OK) => Verdict::Valid,
            Ok(StatusCode::FORBIDDEN) => Verdict::Invalid,
            Ok(status) => Verdict::Unknown(format!(
                "unexpected response code from the apikey validation endpoint: {}",
                status.as_u16()
            )),
            Err(RequestError::Timeout) => Verdict::Unknown(format!(
                "no answer from the apikey validation endpoint within {:?}",
                self.per_key_timeout
            )),
            // The request URL carries the key; make sure no error text repeats it.
            Err(RequestError::Transport(e)) => Verdict::Unknown(e.replace(key, &hide_key_except_last_chars(key))),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_query_escaped_and_the_budget_is_split_across_all_keys() {
        assert_eq!(query_escape("abc123"), "abc123");
        assert_eq!(query_escape("a b&c=d"), "a%20b%26c%3Dd");
        let client = HttpClient::new(&crate::ProxyConfig::default(), Duration::from_secs(1), 1).unwrap();
        let v = Validator::new(
            client,
            &[
                ("https://app.datadoghq.com".into(), vec!["k1".into()]),
                ("https://app.us3.datadoghq.com".into(), vec!["k2".into()]),
                ("https://app.datadoghq.com".into(), vec!["k1".into(), "k3".into()]),
                ("http://127.0.0.1:1".into(), vec!["k4".into()]),
            ],
            Duration::from_secs(60),
            HeaderValue::from_static("datadog-agent/7.0.0"),
        );
        assert_eq!(
            v.targets,
            vec![
                (
                    "https://api.datadoghq.com".to_owned(),
                    vec!["k1".to_owned(), "k3".to_owned()]
                ),
                ("https://api.us3.datadoghq.com".to_owned(), vec!["k2".to_owned()]),
                ("http://127.0.0.1:1".to_owned(), vec!["k4".to_owned()]),
            ]
        );
        assert_eq!(v.per_key_timeout, Duration::from_secs(2), "10 s over 5 configured keys");
    }
}
