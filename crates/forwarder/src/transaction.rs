//! A transaction: one payload for one (endpoint, API key) pair.

use std::time::{SystemTime, UNIX_EPOCH};

use adp_wire::{EncodedPayload, Endpoint};
use bytes::Bytes;
use http::HeaderValue;

/// One payload on its way to one destination with one API key. Bodies are
/// reference-counted, so the copies for additional endpoints share memory.
#[derive(Clone, Debug)]
pub(crate) struct Transaction {
    pub endpoint: Endpoint,
    /// Index into the destination's configured API keys (keys are never stored).
    pub key_index: u16,
    pub body: Bytes,
    pub content_type: HeaderValue,
    pub content_encoding: HeaderValue,
    pub items: u64,
    pub created_unix_ms: u64,
    /// Failed attempts so far (not persisted).
    pub attempts: u32,
}

impl Transaction {
    pub(crate) fn new(p: &EncodedPayload, key_index: u16) -> Self {
        let header = |v: &'static str, fallback: &'static str| {
            HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(fallback))
        };
        Self {
            endpoint: p.endpoint,
            key_index,
            body: p.body.clone(),
            content_type: header(p.content_type, "application/octet-stream"),
            content_encoding: header(p.content_encoding, "identity"),
            items: p.items,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            attempts: 0,
        }
    }

    /// Bytes accounted against the retry queue and disk bounds: the body.
    pub(crate) fn size(&self) -> u64 {
        self.body.len() as u64
    }
}

/// A dense index per endpoint, for per-endpoint arrays.
pub(crate) fn endpoint_index(e: Endpoint) -> usize {
    match e {
        Endpoint::Series => 0,
        Endpoint::Sketches => 1,
        Endpoint::CheckRun => 2,
        Endpoint::Events => 3,
        Endpoint::Intake => 4,
    }
}
