//! The unprivileged API: `GET /health/live`, `GET /health/ready` and
//! `GET /metrics` (OpenMetrics text of every internal counter and gauge).

use adp_telemetry::Registry;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{error, json, respond, Body};
use crate::health::Health;

/// What the unprivileged API reads.
#[derive(Clone)]
pub struct Unprivileged {
    /// Component health.
    pub health: Health,
    /// The pipeline's telemetry.
    pub registry: Registry,
}

impl Unprivileged {
    /// Routes one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported");
        }
        match req.uri().path() {
            "/health/live" => self.health_report(self.health.is_live()),
            "/health/ready" => self.health_report(self.health.is_ready()),
            "/metrics" => respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.registry.render_openmetrics(),
            ),
            other => error(StatusCode::NOT_FOUND, format!("no such endpoint: {other}")),
        }
    }

    /// The health report, answered 503 when the probe (live or ready) fails.
    fn health_report(&self, ok: bool) -> Response<Body> {
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(status, &self.health.report())
    }
}
