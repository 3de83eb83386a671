//! The privileged API (HTTPS, `Authorization: Bearer <auth token>`):
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /config` | the effective configuration as JSON, secrets redacted |
//! | `GET /logging/level` | `{"log_level": "info"}` |
//! | `POST /logging/level` | body `debug` or `{"level": "debug"}`: changes the level at once |
//! | `GET /dogstatsd/stats?collection_duration_secs=N` | waits N seconds (1 to 3600) while every metric sample reaching the aggregator is counted per context, then answers ADP's `{"stats": [{"name", "tags", "count", "last_seen"}]}`; 409 while another collection runs |
//! | `GET /dogstatsd/contexts` | the contexts the aggregator holds now, per metric name: `{"metrics": [{"name", "contexts", "tags": [[key, distinct values]]}]}`, most contexts first |
//!
//! The two DogStatsD routes serve `agent-data-plane dogstatsd stats` and
//! `dogstatsd top` (see `adp_dogstatsd::debug`).
//!
//! Every request is authenticated before it is routed, with the Datadog Agent's
//! answers (`pkg/api/util.Validate`), so a client cannot probe which routes exist:
//!
//! | `Authorization` | status | body `error` |
//! | --- | --- | --- |
//! | absent or empty | 401 | `no session token provided` |
//! | a scheme other than `Bearer` (case-sensitive, as the Agent) | 401 | `unsupported authorization scheme` |
//! | `Bearer` with a token that differs in any byte or in length | 403 | `invalid session token` |
//!
//! Both 401s carry `WWW-Authenticate: Bearer realm="Datadog Agent"`. Each
//! refusal is logged as the Agent logs it ("invalid auth token for GET request
//! to /config: ..."). Unlike the Agent, the unsupported scheme is not echoed:
//! a client that sends its token without a scheme would have it logged.

use std::sync::Arc;

use std::time::Duration;

use crate::logging::LogLevel;
use crate::settings::Settings;
use adp_dogstatsd::debug::{ContextReport, DebugError, DebugHandle};
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::tls::tokens_match;
use super::{error, json, Body};
use crate::logging::LogControl;

/// Request bodies are tiny (a level name); anything bigger is refused.
const MAX_BODY: usize = 4096;

/// What the privileged API reads and changes.
#[derive(Clone)]
pub struct Privileged {
    /// The expected bearer token.
    pub token: Arc<str>,
    /// The effective configuration.
    pub settings: Arc<Settings>,
    /// The log level control.
    pub logging: LogControl,
    /// The aggregator task's statistics and contexts.
    pub dogstatsd: DebugHandle,
}

/// The longest statistics collection a client may ask for.
pub const MAX_COLLECTION_SECS: u64 = 3600;

impl Privileged {
    /// Authenticates and routes one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        if let Err(refusal) = authorize(req.headers().get(header::AUTHORIZATION), &self.token) {
            tracing::warn!(
                "invalid auth token for {} request to {}: {}",
                req.method(),
                req.uri().path(),
                refusal.message
            );
            let mut response = error(refusal.status, refusal.message);
            if refusal.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(r#"Bearer realm="Datadog Agent""#),
                );
            }
            return response;
        }
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/config") => {
                let mut config = self.settings.effective.to_json();
                config["log_level"] = Value::from(self.logging.level().as_str());
                json(StatusCode::OK, &config)
            }
            (Method::GET, "/logging/level") => {
                json(StatusCode::OK, &json!({"log_level": self.logging.level().as_str()}))
            }
            (Method::POST, "/logging/level") => self.set_level(req).await,
            (Method::GET, "/dogstatsd/stats") => self.dogstatsd_stats(req.uri().query()).await,
            (Method::GET, "/dogstatsd/contexts") => self.dogstatsd_contexts().await,
            (_, "/config" | "/logging/level" | "/dogstatsd/stats" | "/dogstatsd/contexts") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
            }
            (_, other) => error(StatusCode::NOT_FOUND, format!("no such endpoint: {other}")),
        }
    }

    async fn set_level(&self, req: Request<Incoming>) -> Response<Body> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body must be under {MAX_BODY} bytes"),
                )
            }
        };
        let text = String::from_utf8_lossy(&body);
        let name = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map.get("level").and_then(Value::as_str).unwrap_or_default().to_owned(),
            Ok(Value::String(s)) => s,
            _ => text.trim().to_owned(),
        };
        let Some(level) = LogLevel::parse(&name) else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown log level {name:?}: expected trace, debug, info, warn, error or off"),
            );
        };
        let previous = self.logging.level();
        if let Err(e) = self.logging.set_level(level) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        // Logged at warn so the change is visible at every level but `error`/`off`.
        tracing::warn!(from = %previous, to = %level, "Log level changed through the privileged API.");
        json(StatusCode::OK, &json!({"log_level": level.as_str()}))
    }
}

/// Why a request was refused: the status and the message the Agent answers with.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401 (no or unusable credentials) or 403 (wrong token).
    pub status: StatusCode,
    /// The Agent's wording; never contains what the client sent.
    pub message: &'static str,
}

/// Checks an `Authorization` header against the expected token, as the Agent
/// does: the scheme is the text before the first space and must be `Bearer`
/// exactly; the token is everything after that space, compared in constant
/// time ([`tokens_match`]) with no trimming.
pub fn authorize(header: Option<&header::HeaderValue>, expected: &str) -> Result<(), Refusal> {
    let value = header.map(header::HeaderValue::as_bytes).unwrap_or_default();
    if value.is_empty() {
        return Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "no session token provided",
        });
    }
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if scheme != b"Bearer" {
        return Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "unsupported authorization scheme",
        });
    }
    if !tokens_match(token, expected.as_bytes()) {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: "invalid session token",
        });
    }
    Ok(())
}

/// `collection_duration_secs` from a query string: whole seconds, 1 to
/// [`MAX_COLLECTION_SECS`].
fn collection_duration(query: Option<&str>) -> Result<Duration, String> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("collection_duration_secs="))
        .ok_or_else(|| "collection_duration_secs is required (whole seconds to collect for)".to_owned())?;
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_COLLECTION_SECS).contains(n))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!("collection_duration_secs must be whole seconds from 1 to {MAX_COLLECTION_SECS} (got {value:?})")
        })
}

fn debug_error(e: DebugError) -> Response<Body> {
    let status = match e {
        DebugError::Busy => StatusCode::CONFLICT,
        DebugError::Gone => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

impl Privileged {
    async fn dogstatsd_stats(&self, query: Option<&str>) -> Response<Body> {
        let duration = match collection_duration(query) {
            Ok(d) => d,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        match self.dogstatsd.stats(duration).await {
            Ok(report) => json(StatusCode::OK, &serde_json::to_value(report).unwrap_or_default()),
            Err(e) => debug_error(e),
        }
    }

    async fn dogstatsd_contexts(&self) -> Response<Body> {
        let contexts = match self.dogstatsd.contexts().await {
            Ok(c) => c,
            Err(e) => return debug_error(e),
        };
        // Summarising 100,000 contexts takes a while: off the async workers.
        match tokio::task::spawn_blocking(move || ContextReport::from_contexts(&contexts)).await {
            Ok(report) => json(StatusCode::OK, &serde_json::to_value(report).unwrap_or_default()),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the context summary failed: {e}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn check(header: Option<&str>) -> Result<(), (u16, &'static str)> {
        let value = header.map(|h| HeaderValue::from_str(h).unwrap());
        authorize(value.as_ref(), TOKEN).map_err(|r| (r.status.as_u16(), r.message))
    }

    #[test]
    fn only_the_bearer_scheme_with_the_exact_token_is_authorized() {
        assert_eq!(check(Some(&format!("Bearer {TOKEN}"))), Ok(()));
        let missing = Err((401, "no session token provided"));
        assert_eq!(check(None), missing);
        assert_eq!(check(Some("")), missing);
        let scheme = Err((401, "unsupported authorization scheme"));
        assert_eq!(check(Some(&format!("Basic {TOKEN}"))), scheme);
        assert_eq!(
            check(Some(&format!("bearer {TOKEN}"))),
            scheme,
            "case-sensitive, as the Agent"
        );
        assert_eq!(check(Some(TOKEN)), scheme, "a bare token is not a scheme");
        let invalid = Err((403, "invalid session token"));
        assert_eq!(check(Some("Bearer")), invalid);
        assert_eq!(check(Some("Bearer ")), invalid);
        assert_eq!(check(Some(&format!("Bearer {}", "f".repeat(64)))), invalid);
        assert_eq!(check(Some(&format!("Bearer {}", &TOKEN[..63]))), invalid, "a prefix");
        assert_eq!(check(Some(&format!("Bearer {TOKEN}0"))), invalid, "an extension");
        assert_eq!(check(Some(&format!("Bearer  {TOKEN}"))), invalid, "no trimming");
        assert_eq!(check(Some(&format!("Bearer {TOKEN} extra"))), invalid);
    }

    #[test]
    fn the_collection_duration_is_whole_seconds_up_to_an_hour() {
        assert_eq!(
            collection_duration(Some("collection_duration_secs=5")),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            collection_duration(Some("x=1&collection_duration_secs=3600")),
            Ok(Duration::from_secs(3600))
        );
        for bad in [
            "collection_duration_secs=0",
            "collection_duration_secs=3601",
            "collection_duration_secs=1.5",
        ] {
            assert!(
                collection_duration(Some(bad)).unwrap_err().contains("from 1 to 3600"),
                "{bad}"
            );
        }
        assert!(collection_duration(None).unwrap_err().contains("is required"));
    }

    #[test]
    fn a_token_that_is_not_visible_ascii_is_compared_not_rejected_early() {
        let value = HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
        let refusal = authorize(Some(&value), TOKEN).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
    }
}
