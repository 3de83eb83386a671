//! The privileged API (HTTPS, `Authorization: Bearer <auth token>`):
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /config` | the effective configuration as JSON, secrets redacted |
//! | `GET /logging/level` | `{"log_level": "info"}` |
//! | `POST /logging/level` | body `debug` or `{"level": "debug"}`: changes the level at once |
//! | `GET /dogstatsd/stats` | every `adp_dogstatsd_*` counter with its labels |
//!
//! A request without a token gets 401, a wrong token 403.

use std::sync::Arc;

use adp_config::{Config, LogLevel};
use adp_telemetry::Registry;
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
    pub config: Arc<Config>,
    /// The log level control.
    pub logging: LogControl,
    /// The pipeline's telemetry.
    pub registry: Registry,
}

impl Privileged {
    /// Authenticates and routes one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            None => {
                let mut response = error(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <auth token>`");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                return response;
            }
            Some(token) if !tokens_match(token.as_bytes(), self.token.as_bytes()) => {
                return error(StatusCode::FORBIDDEN, "invalid auth token");
            }
            Some(_) => {}
        }
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, "/config") => {
                let mut config = self.config.to_redacted_json();
                config["log_level"] = Value::from(self.logging.level().as_str());
                json(StatusCode::OK, &config)
            }
            (Method::GET, "/logging/level") => {
                json(StatusCode::OK, &json!({"log_level": self.logging.level().as_str()}))
            }
            (Method::POST, "/logging/level") => self.set_level(req).await,
            (Method::GET, "/dogstatsd/stats") => json(StatusCode::OK, &dogstatsd_stats(&self.registry)),
            (_, "/config" | "/logging/level" | "/dogstatsd/stats") => {
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

/// `{"metrics": [{"name", "labels": {..}, "value"}]}` for every DogStatsD counter.
fn dogstatsd_stats(registry: &Registry) -> Value {
    let metrics: Vec<Value> = registry
        .snapshot()
        .into_iter()
        .filter(|(name, _, _)| name.starts_with("adp_dogstatsd_"))
        .map(|(name, labels, value)| {
            let labels: serde_json::Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            json!({"name": name, "labels": labels, "value": value})
        })
        .collect();
    json!({ "metrics": metrics })
}
