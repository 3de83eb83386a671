//! The forwarder: delivers encoded payloads to the Datadog intake over HTTPS,
//! retrying with backoff, bounding what it holds in memory, and keeping what
//! it cannot send on disk across restarts.
//!
//! # Use
//! ```no_run
//! # async fn example(payload: adp_wire::EncodedPayload) -> Result<(), Box<dyn std::error::Error>> {
//! use adp_forwarder::{Forwarder, ForwarderConfig};
//! let config = ForwarderConfig { api_key: "<key>".into(), ..Default::default() };
//! let forwarder = Forwarder::new(config, &adp_telemetry::Registry::new())?;
//! let handle = forwarder.handle();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(forwarder.run(async { let _ = stopped.await; }));
//! handle.send(payload).await?; // waits while the forwarder's buffer is full
//! let _ = stop.send(());
//! let report = task.await?;
//! println!("{} persisted, {} dropped at shutdown", report.persisted, report.dropped);
//! # Ok(()) }
//! ```
//!
//! # Behaviour (the Datadog Agent's forwarder, see `reference/intake.md`)
//! - Every payload goes to the main endpoint and once more per API key of each
//!   `additional_endpoints` URL; each copy is retried on its own.
//! - A destination on a Datadog `app.` host is reached under the Agent's
//!   version-prefixed name, `<maj>-<min>-<patch>-app.agent.<site>` (from
//!   `agent_version`), for every payload kind; custom URLs are used as given.
//!   Disk storage stays keyed by the configured URL, so stored payloads are
//!   replayed after an upgrade (the Agent keys its folders by the prefixed
//!   name).
//! - The version in that host, in `DD-Agent-Version` and in `User-Agent` is
//!   this agent's own (the binary sets `agent_version` to its crate version:
//!   0.1.0 → `0-1-0-app.agent.<site>`), not an Agent release number. The
//!   Agent Data Plane does the same with its own version (DataDog/saluki
//!   `lib/saluki-components/src/common/datadog/endpoints.rs`,
//!   `get_data_plane_version_prefix`): the label exists so the intake can
//!   tell senders and their versions apart, and a 7.x number would claim the
//!   payloads came from an Agent release they did not come from. ADP puts its
//!   identifier in the label (`<v>-adp.agent.<site>`); this agent keeps the
//!   Agent's `app`, whose hosts are known to resolve for every site (that
//!   `-adp.agent.` hosts do is not confirmed here).
//! - Up to `forwarder_num_workers` requests are in flight per destination.
//!   The Agent keeps no order either: its workers take transactions from one
//!   queue and finish in any order, and it re-sends failed ones newest first
//!   on a 5 s tick. Here requests *start* in queue order (oldest first, a
//!   failed copy back at the front) and may finish in any order; with one
//!   worker (the default) delivery follows submission order per destination.
//! - API keys are checked at start and every
//!   `forwarder_apikey_validation_interval` against `/api/v1/validate`
//!   ([`validate`] has the Agent's rules and log lines); the
//!   verdict is [`Forwarder::api_key_status`]. Payloads are sent regardless.
//! - Requests carry `DD-Api-Key`, `DD-Agent-Version`, `User-Agent:
//!   datadog-agent/<version>`, the payload's `Content-Type` and
//!   `Content-Encoding`, and `DD-Agent-Payload` for protobuf bodies.
//! - Timeouts, connection errors and every status ≥ 400 are retried, except
//!   400, 403 and 413, which are logged (status, endpoint, never the key) and
//!   dropped. 404 is retried, as in the Agent.
//! - Failures block the destination for an exponential, jittered backoff
//!   ([`backoff`] documents the exact formula).
//! - The in-memory queue per destination is bounded; while the destination
//!   accepts, new copies wait in the input buffer until the queue has room (a
//!   flush larger than the bound is delayed, not evicted); while it backs off,
//!   the oldest copies are evicted first, to disk storage when
//!   `forwarder_storage_max_size_in_bytes` is set ([`storage`]
//!   documents the file format) — except host metadata (`/intake/`), whose
//!   body holds the API key: as in the Agent, it is never written to disk.
//! - Shutdown: when the `shutdown` future given to [`Forwarder::run`]
//!   completes (or every handle is dropped), the forwarder stops accepting,
//!   keeps sending for up to `forwarder_stop_timeout`, then persists what is
//!   left (disk storage) or drops it, and returns a [`ShutdownReport`].
//!
//! Telemetry (`adp_forwarder_*`): `payloads_received`, `payloads_sent`,
//! `bytes_sent` and `retries` by `endpoint`; `payloads_dropped` by `reason`
//! (`status_400`, `status_403`, `status_413`, `evicted`, `too_large`,
//! `disk_evicted`, `disk_error`, `corrupted`, `outdated`, `unknown_api_key`,
//! `shutdown`); `payloads_persisted`, `payloads_replayed`; gauges
//! `retry_queue_bytes` and `disk_bytes`.
//!
//! # Missing
//! - HTTP/2 is not used, so `forwarder_max_concurrent_requests` (requests per
//!   worker, over HTTP/2) does not apply: as the Agent over HTTP/1.1 (its
//!   connections per host are capped at `forwarder_num_workers`), one request
//!   per worker is in flight.
//! - An invalid API key does not trigger a secrets refresh (secrets are
//!   resolved once, at start).
//! - `forwarder_storage_max_disk_ratio` and the Agent's transaction priorities
//!   are not implemented.
#![deny(missing_docs)]

pub mod backoff;
mod client;
mod config;
mod domain;
mod metrics;
pub mod storage;
mod transaction;
pub mod validate;
mod worker;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adp_telemetry::Registry;
use adp_wire::{EncodedPayload, Endpoint};
use http::{HeaderValue, Uri};
use tokio::sync::{mpsc, watch};

pub use config::{
    ConfigError, ForwarderConfig, ProxyConfig, DEFAULT_APIKEY_VALIDATION_INTERVAL, DEFAULT_RETRY_QUEUE_MAX_SIZE,
};
pub use validate::ApiKeyStatus;

use crate::backoff::Backoff;
use crate::client::HttpClient;
use crate::metrics::Metrics;
use crate::storage::DiskStorage;
use crate::transaction::{endpoint_index, Transaction};
use crate::validate::Validator;
use crate::worker::{Destination, DomainWorker, Shared};

/// Why the forwarder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A header value (API key or version) contains characters HTTP forbids.
    #[error("`{key}` contains characters that are not allowed in an HTTP header")]
    InvalidHeader {
        /// The key holding the value.
        key: &'static str,
    },
    /// The proxy could not be set up.
    #[error("invalid proxy configuration (`proxy` / HTTPS_PROXY): {0}")]
    Proxy(String),
    /// The storage directory could not be opened; `source` says why.
    #[error("cannot open disk storage at {} (check `forwarder_storage_path`, or set `forwarder_storage_max_size_in_bytes: 0` to disable it)", path.display())]
    Storage {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What shutdown did with payload copies still queued at the deadline.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Copies written to disk storage, replayed by the next start.
    pub persisted: u64,
    /// Copies lost (storage disabled, full, or failing).
    pub dropped: u64,
}

/// Why [`ForwarderHandle::send`] / [`ForwarderHandle::try_send`] did not take a
/// payload; the payload is handed back.
pub enum SubmitError {
    /// The buffer (`forwarder_high_prio_buffer_size`) is full (`try_send` only).
    Full(EncodedPayload),
    /// The forwarder has stopped.
    Closed(EncodedPayload),
}

impl SubmitError {
    /// The payload that was not taken.
    pub fn into_payload(self) -> EncodedPayload {
        match self {
            Self::Full(p) | Self::Closed(p) => p,
        }
    }
}

impl fmt::Debug for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is opaque bytes; show what identifies the payload.
        let (kind, p) = match self {
            Self::Full(p) => ("Full", p),
            Self::Closed(p) => ("Closed", p),
        };
        write!(f, "SubmitError::{kind}({} payload, {} bytes)", p.endpoint, p.body.len())
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(p) => write!(
                f,
                "forwarder buffer full (forwarder_high_prio_buffer_size); {} payload not taken",
                p.endpoint
            ),
            Self::Closed(p) => write!(f, "forwarder stopped; {} payload not taken", p.endpoint),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Submits payloads to a running [`Forwarder`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ForwarderHandle {
    tx: mpsc::Sender<EncodedPayload>,
}

impl ForwarderHandle {
    /// Hands a payload over, waiting while the buffer is full (backpressure).
    pub async fn send(&self, payload: EncodedPayload) -> Result<(), SubmitError> {
        self.tx.send(payload).await.map_err(|e| SubmitError::Closed(e.0))
    }

    /// Hands a payload over if the buffer has room.
    pub fn try_send(&self, payload: EncodedPayload) -> Result<(), SubmitError> {
        self.tx.try_send(payload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(p) => SubmitError::Full(p),
            mpsc::error::TrySendError::Closed(p) => SubmitError::Closed(p),
        })
    }
}

/// The forwarder, built and waiting for [`Forwarder::run`].
pub struct Forwarder {
    tx: mpsc::Sender<EncodedPayload>,
    rx: mpsc::Receiver<EncodedPayload>,
    destinations: Vec<Destination>,
    shared: Arc<Shared>,
    buffer: usize,
    validator: Validator,
}

impl Forwarder {
    /// Validates `config`, resolves destinations and the proxy (configured
    /// values, then `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`), loads TLS roots,
    /// and opens disk storage when enabled (removing outdated files). Counters
    /// are registered in `registry`. Needs no runtime; [`Self::run`] does.
    pub fn new(config: ForwarderConfig, registry: &Registry) -> Result<Self, ForwarderError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new(registry));
        let domains = config.domains();
        let mut destinations = Vec::with_capacity(domains.len());
        for d in &domains {
            let url = domain::versioned_base(&d.base, &config.agent_version);
            let uris = Endpoint::ALL
                .iter()
                .map(|e| {
                    format!("{url}{}", e.path())
                        .parse::<Uri>()
                        .map_err(|err| ConfigError::InvalidUrl {
                            key: "dd_url",
                            url: d.base.clone(),
                            reason: err.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            debug_assert!(Endpoint::ALL.iter().enumerate().all(|(i, e)| endpoint_index(*e) == i));
            let keys = d
                .keys
                .iter()
                .map(|k| {
                    let mut v =
                        HeaderValue::from_str(k).map_err(|_| ForwarderError::InvalidHeader { key: "api_key" })?;
                    v.set_sensitive(true);
                    Ok(v)
                })
                .collect::<Result<Vec<_>, ForwarderError>>()?;
            destinations.push(Destination { url, uris, keys });
        }
        let proxy = config.proxy.clone();
        let client = HttpClient::new(&proxy, config.forwarder_timeout, config.forwarder_num_workers)
            .map_err(ForwarderError::Proxy)?;

        let storage = if config.forwarder_storage_max_size_in_bytes > 0 {
            let bases: Vec<String> = domains.iter().map(|d| d.base.clone()).collect();
            let days = u64::from(config.forwarder_outdated_file_in_days);
            let outdated = Duration::from_secs(days.saturating_mul(86_400));
            let (storage, report) = DiskStorage::open(
                &config.forwarder_storage_path,
                &bases,
                config.forwarder_storage_max_size_in_bytes,
                outdated,
            )
            .map_err(|source| ForwarderError::Storage {
                path: config.forwarder_storage_path.clone(),
                source,
            })?;
            metrics.dropped("outdated", report.outdated);
            metrics
                .disk_bytes
                .set(i64::try_from(storage.bytes()).unwrap_or(i64::MAX));
            tracing::info!(
                path = %storage.root().display(), stored_bytes = storage.bytes(), outdated_removed = report.outdated,
                "Forwarder disk storage enabled."
            );
            Some(Arc::new(Mutex::new(storage)))
        } else {
            None
        };

        let header = |key: &'static str, value: String| {
            HeaderValue::from_str(&value).map_err(|_| ForwarderError::InvalidHeader { key })
        };
        let mut interval = config.forwarder_apikey_validation_interval;
        if interval.is_zero() {
            tracing::warn!(
                "'forwarder_apikey_validation_interval' set to invalid value (0), defaulting to {} minute(s)",
                DEFAULT_APIKEY_VALIDATION_INTERVAL.as_secs() / 60
            );
            interval = DEFAULT_APIKEY_VALIDATION_INTERVAL;
        }
        let keys_by_base: Vec<(String, Vec<String>)> =
            domains.iter().map(|d| (d.base.clone(), d.keys.clone())).collect();
        let validator = Validator::new(
            client.clone(),
            &keys_by_base,
            interval,
            header("agent_version", format!("datadog-agent/{}", config.agent_version))?,
        );
        let shared = Arc::new(Shared {
            client,
            metrics,
            storage,
            backoff: Backoff::new(&config),
            max_queue_bytes: config.forwarder_retry_queue_payloads_max_size,
            stop_timeout: config.forwarder_stop_timeout,
            agent_version: header("agent_version", config.agent_version.clone())?,
            user_agent: header("agent_version", format!("datadog-agent/{}", config.agent_version))?,
            payload_version: header("agent_payload_version", config.agent_payload_version.clone())?,
            workers: config.forwarder_num_workers,
            stopping: watch::channel(false).0,
        });
        let (tx, rx) = mpsc::channel(config.forwarder_high_prio_buffer_size);
        Ok(Self {
            tx,
            rx,
            destinations,
            shared,
            buffer: config.forwarder_high_prio_buffer_size,
            validator,
        })
    }

    /// The API key check's verdict, updated after each round (see
    /// [`validate`]); [`ApiKeyStatus::Invalid`] is what the
    /// Agent reports as an unhealthy forwarder. Take it before [`Self::run`].
    pub fn api_key_status(&self) -> watch::Receiver<ApiKeyStatus> {
        self.validator.subscribe()
    }

    /// A handle for submitting payloads; take it before calling [`Self::run`].
    pub fn handle(&self) -> ForwarderHandle {
        ForwarderHandle { tx: self.tx.clone() }
    }

    /// The destinations' URLs as requests go to them (version-prefixed for
    /// Datadog `app.` hosts), main endpoint first (for logs).
    pub fn endpoints(&self) -> Vec<String> {
        self.destinations.iter().map(|d| d.url.clone()).collect()
    }

    /// Sends payloads until `shutdown` completes or every handle is dropped,
    /// then drains (see the crate docs) and reports what was left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let Self {
            tx,
            mut rx,
            destinations,
            shared,
            buffer,
            validator,
        } = self;
        drop(tx);
        let validation = tokio::spawn(validator.run());
        let mut workers = Vec::with_capacity(destinations.len());
        let mut tasks = Vec::with_capacity(destinations.len());
        for (index, d) in destinations.into_iter().enumerate() {
            let (wtx, wrx) = mpsc::channel(buffer);
            let keys = u16::try_from(d.keys.len()).unwrap_or(u16::MAX);
            tracing::info!(endpoint = %d.url, api_keys = keys, workers = shared.workers, "Forwarding to endpoint.");
            let worker = DomainWorker::new(index, d, Arc::clone(&shared), wrx);
            tasks.push(tokio::spawn(worker.run()));
            workers.push((wtx, keys));
        }
        let dispatch = |payload: EncodedPayload| {
            shared.metrics.endpoint(payload.endpoint).received.inc();
            let workers = &workers;
            async move {
                for (wtx, keys) in workers {
                    for key_index in 0..*keys {
                        // A worker only stops after its sender is dropped, below.
                        let _ = wtx.send(Transaction::new(&payload, key_index)).await;
                    }
                }
            }
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                payload = rx.recv() => match payload {
                    Some(p) => dispatch(p).await,
                    None => break,
                },
            }
        }
        // Stop accepting, but forward what was already accepted; workers take
        // all their input now, so that their drain deadline starts.
        shared.stopping.send_replace(true);
        rx.close();
        while let Some(p) = rx.recv().await {
            dispatch(p).await;
        }
        drop(workers);
        validation.abort();
        tracing::info!("Forwarder stopping; sending queued payloads (forwarder_stop_timeout).");
        let mut report = ShutdownReport::default();
        for task in tasks {
            match task.await {
                Ok(r) => {
                    report.persisted += r.persisted;
                    report.dropped += r.dropped;
                }
                // Only the runtime's own shutdown cancels a worker (the agent is
                // exiting after a failed start): not a failure of the worker.
                Err(e) if e.is_cancelled() => tracing::debug!("Forwarder worker cancelled at runtime shutdown."),
                Err(e) => tracing::error!(error = %e, "Forwarder worker failed."),
            }
        }
        if report.dropped > 0 {
            tracing::warn!(
                persisted = report.persisted,
                dropped = report.dropped,
                "Forwarder stopped with undelivered payloads."
            );
        } else {
            tracing::info!(persisted = report.persisted, "Forwarder stopped.");
        }
        report
    }
}

#[cfg(test)]
mod tests;
