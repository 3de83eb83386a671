//! The forwarder's internal telemetry (`adp_forwarder_*`).

use adp_telemetry::{Counter, Gauge, Registry};
use adp_wire::Endpoint;

use crate::transaction::endpoint_index;

/// Reasons a payload copy is dropped, registered up front so that they render
/// as 0 before anything happens.
pub(crate) const DROP_REASONS: [&str; 11] = [
    "status_400",
    "status_403",
    "status_413",
    "evicted",
    "too_large",
    "disk_evicted",
    "disk_error",
    "corrupted",
    "outdated",
    "unknown_api_key",
    "shutdown",
];

/// Per-endpoint counters.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub received: Counter,
    pub sent: Counter,
    pub bytes_sent: Counter,
    pub retries: Counter,
}

/// Every counter and gauge the forwarder updates.
#[derive(Debug)]
pub(crate) struct Metrics {
    endpoints: Vec<EndpointMetrics>,
    dropped: Vec<(&'static str, Counter)>,
    pub queue_bytes: Gauge,
    pub disk_bytes: Gauge,
    pub persisted: Counter,
    pub replayed: Counter,
}

impl Metrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        let endpoints = Endpoint::ALL
            .iter()
            .map(|e| {
                let labels = [("endpoint", e.as_str())];
                EndpointMetrics {
                    received: registry.counter(
                        "adp_forwarder_payloads_received",
                        "Payloads handed to the forwarder.",
                        &labels,
                    ),
                    sent: registry.counter(
                        "adp_forwarder_payloads_sent",
                        "Payload copies accepted by an intake (one per endpoint and API key).",
                        &labels,
                    ),
                    bytes_sent: registry.counter(
                        "adp_forwarder_bytes_sent",
                        "Body bytes of accepted payload copies.",
                        &labels,
                    ),
                    retries: registry.counter(
                        "adp_forwarder_retries",
                        "Failed attempts that were queued for retry.",
                        &labels,
                    ),
                }
            })
            .collect();
        debug_assert!(Endpoint::ALL.iter().enumerate().all(|(i, e)| endpoint_index(*e) == i));
        let dropped = DROP_REASONS
            .iter()
            .map(|r| {
                (
                    *r,
                    registry.counter(
                        "adp_forwarder_payloads_dropped",
                        "Payload copies given up, by reason.",
                        &[("reason", r)],
                    ),
                )
            })
            .collect();
        Self {
            endpoints,
            dropped,
            queue_bytes: registry.gauge(
                "adp_forwarder_retry_queue_bytes",
                "Payload bytes waiting in memory.",
                &[],
            ),
            disk_bytes: registry.gauge("adp_forwarder_disk_bytes", "Bytes of payloads in disk storage.", &[]),
            persisted: registry.counter(
                "adp_forwarder_payloads_persisted",
                "Payload copies written to disk storage.",
                &[],
            ),
            replayed: registry.counter(
                "adp_forwarder_payloads_replayed",
                "Payload copies read back from disk storage.",
                &[],
            ),
        }
    }

    pub(crate) fn endpoint(&self, e: Endpoint) -> &EndpointMetrics {
        &self.endpoints[endpoint_index(e)]
    }

    /// Counts `n` dropped copies; `reason` must be one of [`DROP_REASONS`].
    pub(crate) fn dropped(&self, reason: &'static str, n: u64) {
        if let Some((_, c)) = self.dropped.iter().find(|(r, _)| *r == reason) {
            c.add(n);
        } else {
            debug_assert!(false, "unregistered drop reason {reason}");
        }
    }
}
