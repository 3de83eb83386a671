//! The source's counters, registered in an [`adp_telemetry::Registry`] under
//! names prefixed `adp_dogstatsd_`.
//!
//! | name | labels | counts |
//! |---|---|---|
//! | `adp_dogstatsd_packets` | `listener` | datagrams / stream frames received |
//! | `adp_dogstatsd_bytes` | `listener` | bytes received |
//! | `adp_dogstatsd_truncated_packets` | `listener` | payloads over `dogstatsd_buffer_size`, dropped |
//! | `adp_dogstatsd_metrics` | | metric samples decoded (one per value) |
//! | `adp_dogstatsd_events` | | events decoded |
//! | `adp_dogstatsd_service_checks` | | service checks decoded |
//! | `adp_dogstatsd_decode_errors` | `reason` | messages rejected (or values dropped), by [`DecodeError::reason`] |
//! | `adp_dogstatsd_filtered_points` | `reason` | metric samples dropped by enrichment (the blocklist), by [`DropReason::reason`] |
//! | `adp_dogstatsd_utf8_repaired` | | messages kept after their tags' invalid UTF-8 was replaced (see [`crate::utf8`]) |
//!
//! Contexts are resolved by the aggregator, which counts what it refuses
//! (`adp_aggregate_dropped_samples`) and the context store's strings
//! (`adp_context_*`).
//!
//! Every reason is registered up front, so the endpoint shows zeros rather
//! than omitting a failure mode that has not happened yet.

use adp_telemetry::{Counter, Registry};

use crate::codec::DecodeError;
use crate::enrich::DropReason;

/// Which listener a packet came from (the `listener` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// UDP (`dogstatsd_port`).
    Udp,
    /// Unix datagram socket (`dogstatsd_socket`).
    UnixDatagram,
    /// Unix stream socket (`dogstatsd_stream_socket`).
    UnixStream,
}

impl ListenerKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::UnixDatagram => "unix_datagram",
            Self::UnixStream => "unix_stream",
        }
    }
}

/// Per-listener counters.
#[derive(Clone, Debug)]
pub struct ListenerTelemetry {
    /// Packets (datagrams or stream frames) received.
    pub packets: Counter,
    /// Bytes received.
    pub bytes: Counter,
    /// Payloads over the buffer size, dropped.
    pub truncated: Counter,
}

impl ListenerTelemetry {
    /// Registers (or finds) the counters of `kind`.
    pub fn new(registry: &Registry, kind: ListenerKind) -> Self {
        let labels = [("listener", kind.label())];
        Self {
            packets: registry.counter("adp_dogstatsd_packets", "DogStatsD packets received.", &labels),
            bytes: registry.counter("adp_dogstatsd_bytes", "DogStatsD bytes received.", &labels),
            truncated: registry.counter(
                "adp_dogstatsd_truncated_packets",
                "DogStatsD payloads larger than dogstatsd_buffer_size, dropped.",
                &labels,
            ),
        }
    }
}

/// Decoder counters (shared by all listeners of a source).
#[derive(Clone, Debug)]
pub struct DecoderTelemetry {
    /// Metric samples decoded.
    pub metrics: Counter,
    /// Events decoded.
    pub events: Counter,
    /// Service checks decoded.
    pub service_checks: Counter,
    /// Messages whose tags held invalid UTF-8, repaired and kept.
    pub utf8_repaired: Counter,
    errors: Vec<Counter>,
    filtered: Vec<Counter>,
}

impl DecoderTelemetry {
    /// Registers (or finds) the decoder counters.
    pub fn new(registry: &Registry) -> Self {
        Self {
            metrics: registry.counter("adp_dogstatsd_metrics", "DogStatsD metric samples decoded.", &[]),
            events: registry.counter("adp_dogstatsd_events", "DogStatsD events decoded.", &[]),
            service_checks: registry.counter("adp_dogstatsd_service_checks", "DogStatsD service checks decoded.", &[]),
            utf8_repaired: registry.counter(
                "adp_dogstatsd_utf8_repaired",
                "DogStatsD messages kept after invalid UTF-8 in their tags was replaced.",
                &[],
            ),
            errors: DecodeError::ALL
                .iter()
                .map(|e| {
                    registry.counter(
                        "adp_dogstatsd_decode_errors",
                        "DogStatsD messages rejected or values dropped, by reason.",
                        &[("reason", e.reason())],
                    )
                })
                .collect(),
            filtered: DropReason::ALL
                .iter()
                .map(|r| {
                    registry.counter(
                        "adp_dogstatsd_filtered_points",
                        "DogStatsD metric samples dropped by the blocklist (statsd_metric_blocklist, metric_filterlist), by reason.",
                        &[("reason", r.reason())],
                    )
                })
                .collect(),
        }
    }

    /// Counters not attached to a registry (tests, benchmarks).
    pub fn detached() -> Self {
        Self::new(&Registry::new())
    }

    /// The counter of decode errors for `error`.
    pub fn error(&self, error: DecodeError) -> &Counter {
        &self.errors[error.index()]
    }

    /// The counter of samples dropped by enrichment for `reason`.
    pub fn filtered(&self, reason: DropReason) -> &Counter {
        &self.filtered[reason as usize]
    }
}
