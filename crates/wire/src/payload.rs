//! Intake endpoints and the encoded payloads bound for them.

use std::fmt;

/// The intake endpoint a payload is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/v2/series`.
    Series,
    /// `POST /api/beta/sketches`.
    Sketches,
    /// `POST /api/v1/check_run`.
    CheckRun,
    /// `POST /api/v1/events_batch`.
    Events,
    /// `POST /intake/`: the v5 host-metadata JSON, which carries the API key
    /// in its body and so is never stored on disk.
    Intake,
}

impl Endpoint {
    /// Every endpoint, for registering per-endpoint telemetry.
    pub const ALL: [Self; 5] = [Self::Series, Self::Sketches, Self::CheckRun, Self::Events, Self::Intake];

    /// The request path, relative to the site's base URL.
    pub fn path(&self) -> &'static str {
        match self {
            Self::Series => "/api/v2/series",
            Self::Sketches => "/api/beta/sketches",
            Self::CheckRun => "/api/v1/check_run",
            Self::Events => "/api/v1/events_batch",
            Self::Intake => "/intake/",
        }
    }

    /// A short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Series => "series",
            Self::Sketches => "sketches",
            Self::CheckRun => "check_run",
            Self::Events => "events",
            Self::Intake => "intake",
        }
    }

    /// The endpoint a request path is for.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The `Content-Type` of this endpoint's bodies.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::CheckRun | Self::Intake => CONTENT_TYPE_JSON,
            Self::Series | Self::Sketches | Self::Events => CONTENT_TYPE_PROTOBUF,
        }
    }
}

impl Endpoint {
    /// Whether a payload for this endpoint may be written to disk storage:
    /// not the host metadata, whose body holds the API key (the Agent's
    /// `storableOnDisk = false` for `/intake/` host metadata).
    pub fn storable_on_disk(&self) -> bool {
        !matches!(self, Self::Intake)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Content-Type` of protobuf bodies.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// `Content-Type` of JSON bodies.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// One request body, ready for the forwarder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPayload {
    /// Where it goes.
    pub endpoint: Endpoint,
    /// The (compressed) body.
    pub body: bytes::Bytes,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The `Content-Encoding` header value: `zstd`, `deflate` or `identity`.
    pub content_encoding: &'static str,
    /// Series, sketch contexts, service checks or events in it.
    pub items: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_have_the_intake_paths() {
        let paths: Vec<_> = Endpoint::ALL.iter().map(|e| (e.as_str(), e.path())).collect();
        assert_eq!(
            paths,
            [
                ("series", "/api/v2/series"),
                ("sketches", "/api/beta/sketches"),
                ("check_run", "/api/v1/check_run"),
                ("events", "/api/v1/events_batch"),
                ("intake", "/intake/"),
            ]
        );
        assert_eq!(Endpoint::from_path("/api/beta/sketches"), Some(Endpoint::Sketches));
        assert_eq!(Endpoint::from_path("/intake/"), Some(Endpoint::Intake));
        assert_eq!(Endpoint::from_path("/intake"), None);
        assert_eq!(Endpoint::Intake.content_type(), CONTENT_TYPE_JSON);
        let storable: Vec<bool> = Endpoint::ALL.iter().map(Endpoint::storable_on_disk).collect();
        assert_eq!(storable, [true, true, true, true, false]);
    }
}
