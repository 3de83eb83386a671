//! One worker per destination (base URL): its queue, its circuit breaker, and
//! up to `forwarder_num_workers` requests in flight (the Agent's workers per
//! domain; default 1).
//!
//! Requests start in queue order and may finish in any order. A failure
//! blocks the destination (no new request starts until the backoff ends)
//! while those already in flight finish; each failed copy goes back to the
//! front of the queue. At the shutdown deadline, copies still in flight are
//! kept (stored or counted as dropped) in their queue order: whether the
//! intake got them is unknown, and a duplicate is preferred to a loss.
//!
//! The queue is FIFO and holds every copy waiting to be sent, new or failed,
//! bounded by `forwarder_retry_queue_payloads_max_size` body bytes. While the
//! destination accepts, new copies are taken from the input only as the queue
//! has room: the rest wait in the input buffer (`forwarder_high_prio_buffer_size`),
//! as the Agent's do in its high-priority channel, so one flush larger than the
//! bound is sent in full rather than evicted on arrival. While the destination
//! is backing off (and at shutdown) every copy is taken: a failed copy goes
//! back to the front (it is the oldest), and when the bound is exceeded the
//! oldest copies leave first, to disk storage when it is enabled or dropped as
//! `evicted`. While the queue is empty and the destination is not
//! blocked, stored payloads are read back one at a time, oldest first, and
//! sent even when one alone exceeds the bound (that is why it was stored).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use http::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backoff::{Backoff, CircuitBreaker};
use crate::client::{HttpClient, RequestError};
use crate::metrics::Metrics;
use crate::storage::{DiskStorage, StoreError};
use crate::transaction::{endpoint_index, Transaction};

static DD_API_KEY: HeaderName = HeaderName::from_static("dd-api-key");
static DD_AGENT_VERSION: HeaderName = HeaderName::from_static("dd-agent-version");
static DD_AGENT_PAYLOAD: HeaderName = HeaderName::from_static("dd-agent-payload");

/// State shared by every worker.
pub(crate) struct Shared {
    pub client: HttpClient,
    pub metrics: Arc<Metrics>,
    pub storage: Option<Arc<Mutex<DiskStorage>>>,
    pub backoff: Backoff,
    pub max_queue_bytes: u64,
    pub stop_timeout: Duration,
    pub agent_version: HeaderValue,
    pub user_agent: HeaderValue,
    pub payload_version: HeaderValue,
    /// `forwarder_num_workers`: requests in flight at once per destination.
    pub workers: usize,
    /// Set when the forwarder stops accepting: workers then take all their input.
    pub stopping: watch::Sender<bool>,
}

/// What a worker did with its leftovers at shutdown.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WorkerReport {
    pub persisted: u64,
    pub dropped: u64,
}

enum Outcome {
    Accepted(StatusCode),
    Refused(StatusCode),
    Failed(String),
}

type InFlight = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Where a worker sends: one configured domain with its API keys.
pub(crate) struct Destination {
    /// The URL requests go to (version-prefixed for Datadog `app.` hosts).
    pub url: String,
    /// Per endpoint (by `endpoint_index`), the full request URI.
    pub uris: Vec<Uri>,
    pub keys: Vec<HeaderValue>,
}

pub(crate) struct DomainWorker {
    index: usize,
    dest: Destination,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Transaction>,
    queue: VecDeque<Transaction>,
    queue_bytes: u64,
    breaker: CircuitBreaker,
    report: WorkerReport,
}

impl DomainWorker {
    pub(crate) fn new(index: usize, dest: Destination, shared: Arc<Shared>, rx: mpsc::Receiver<Transaction>) -> Self {
        Self {
            index,
            dest,
            shared,
            rx,
            queue: VecDeque::new(),
            queue_bytes: 0,
            breaker: CircuitBreaker::default(),
            report: WorkerReport::default(),
        }
    }

    /// Runs until the input closes and the queue is empty, or until
    /// `forwarder_stop_timeout` after the input closed; then persists or drops
    /// what is left.
    pub(crate) async fn run(mut self) -> WorkerReport {
        let workers = self.shared.workers.max(1);
        // In start order, so that leftovers go back to the queue in order.
        let mut inflight: Vec<(Transaction, InFlight)> = Vec::with_capacity(workers);
        let mut input_open = true;
        let mut deadline: Option<Instant> = None;
        let mut stop = self.shared.stopping.subscribe();
        let mut stopping = *stop.borrow_and_update();
        loop {
            let now = Instant::now();
            let blocked = self.breaker.blocked_until(now);
            if blocked.is_none() {
                while inflight.len() < workers {
                    if self.queue.is_empty() && input_open {
                        self.replay_one();
                    }
                    let Some(t) = self.pop_front() else { break };
                    let request = self.request(&t);
                    inflight.push((t, request));
                }
            }
            if !input_open && inflight.is_empty() && self.queue.is_empty() {
                break;
            }
            // Wake at the end of the backoff when a request could start:
            // queued payloads, or stored ones to replay (without this a payload
            // moved back to disk after a failure waited for the next input).
            let wake = blocked
                .filter(|_| inflight.len() < workers && (!self.queue.is_empty() || (input_open && self.has_stored())));
            let take_input =
                input_open && (stopping || blocked.is_some() || self.queue_bytes < self.shared.max_queue_bytes);
            tokio::select! {
                biased;
                () = sleep_until(deadline) => break,
                _ = stop.changed(), if !stopping => stopping = true,
                msg = self.rx.recv(), if take_input => match msg {
                    Some(t) => self.enqueue(t, blocked.is_some() || stopping),
                    None => {
                        input_open = false;
                        deadline = Some(Instant::now() + self.shared.stop_timeout);
                    }
                },
                (index, outcome) = first_done(&mut inflight), if !inflight.is_empty() => {
                    let (t, _) = inflight.remove(index);
                    self.settle(t, outcome);
                }
                () = sleep_until(wake) => {}
            }
        }
        // A request cut off by the deadline may or may not have reached the
        // intake; keeping it risks a duplicate, dropping it risks a loss. Keep it.
        for (t, _) in inflight.into_iter().rev() {
            self.push_front(t);
        }
        self.finish()
    }

    fn request(&self, t: &Transaction) -> InFlight {
        let shared = &self.shared;
        let mut headers = HeaderMap::with_capacity(8);
        let key = self
            .dest
            .keys
            .get(usize::from(t.key_index))
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        headers.insert(DD_API_KEY.clone(), key);
        headers.insert(DD_AGENT_VERSION.clone(), shared.agent_version.clone());
        headers.insert(USER_AGENT, shared.user_agent.clone());
        headers.insert(CONTENT_TYPE, t.content_type.clone());
        headers.insert(CONTENT_ENCODING, t.content_encoding.clone());
        if t.content_type == "application/x-protobuf" {
            headers.insert(DD_AGENT_PAYLOAD.clone(), shared.payload_version.clone());
        }
        let uri = self.dest.uris[endpoint_index(t.endpoint)].clone();
        let client = shared.client.clone();
        let body = t.body.clone();
        Box::pin(async move {
            match client.post(uri, headers, body).await {
                Ok(s) if s.as_u16() < 400 => Outcome::Accepted(s),
                Ok(s @ (StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::PAYLOAD_TOO_LARGE)) => {
                    Outcome::Refused(s)
                }
                Ok(s) => Outcome::Failed(format!("HTTP {s}")),
                Err(RequestError::Timeout) => Outcome::Failed(RequestError::Timeout.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    }

    fn settle(&mut self, mut t: Transaction, outcome: Outcome) {
        let now = Instant::now();
        let endpoint = t.endpoint.as_str();
        match outcome {
            Outcome::Accepted(status) => {
                let m = self.shared.metrics.endpoint(t.endpoint);
                m.sent.inc();
                m.bytes_sent.add(t.size());
                self.breaker.success(now, &self.shared.backoff);
                tracing::trace!(domain = %self.dest.url, endpoint, %status, bytes = t.size(), "Payload accepted.");
            }
            Outcome::Refused(status) => {
                self.breaker.success(now, &self.shared.backoff);
                let (reason, hint) = match status.as_u16() {
                    403 => (
                        "status_403",
                        "the API key is probably invalid: check `api_key` / `additional_endpoints`",
                    ),
                    413 => (
                        "status_413",
                        "the payload was too large for the intake: lower `serializer_max_payload_size` \
                         (`serializer_max_series_payload_size` for series) below the intake's limit",
                    ),
                    _ => ("status_400", "the intake could not parse the payload"),
                };
                tracing::error!(
                    domain = %self.dest.url, endpoint, status = status.as_u16(), items = t.items, bytes = t.size(),
                    "Payload refused and dropped (not retried): {hint}."
                );
                self.shared.metrics.dropped(reason, 1);
            }
            Outcome::Failed(error) => {
                self.shared.metrics.endpoint(t.endpoint).retries.inc();
                t.attempts = t.attempts.saturating_add(1);
                let wait = self.breaker.failure(now, &self.shared.backoff);
                tracing::warn!(
                    domain = %self.dest.url, endpoint, %error, attempts = t.attempts,
                    consecutive_errors = self.breaker.errors(),
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "Payload not delivered; will retry."
                );
                self.push_front(t);
                self.enforce_bound();
            }
        }
    }

    /// Queues a new copy. Only a destination that is backing off (or a
    /// shutdown) evicts for it; otherwise the queue may pass its bound by this
    /// one copy, and no more input is taken until it is back under.
    fn enqueue(&mut self, t: Transaction, evict: bool) {
        if t.size() > self.shared.max_queue_bytes {
            self.overflow(t, "too_large");
            return;
        }
        self.push_back(t);
        if evict {
            self.enforce_bound();
        }
    }

    fn push_back(&mut self, t: Transaction) {
        self.queue_bytes += t.size();
        self.shared.metrics.queue_bytes.add(gauge_delta(t.size()));
        self.queue.push_back(t);
    }

    fn push_front(&mut self, t: Transaction) {
        self.queue_bytes += t.size();
        self.shared.metrics.queue_bytes.add(gauge_delta(t.size()));
        self.queue.push_front(t);
    }

    fn pop_front(&mut self) -> Option<Transaction> {
        let t = self.queue.pop_front()?;
        self.queue_bytes -= t.size();
        self.shared.metrics.queue_bytes.add(-gauge_delta(t.size()));
        Some(t)
    }

    fn enforce_bound(&mut self) {
        while self.queue_bytes > self.shared.max_queue_bytes {
            let Some(oldest) = self.pop_front() else { break };
            self.overflow(oldest, "evicted");
        }
    }

    /// Moves a copy that cannot stay in memory to disk, or drops it with
    /// `reason` when storage is off or the payload must not be stored (host
    /// metadata, which holds the API key). Returns whether it was persisted.
    fn overflow(&self, t: Transaction, reason: &'static str) -> bool {
        let metrics = &self.shared.metrics;
        let storage = self.shared.storage.as_ref().filter(|_| t.endpoint.storable_on_disk());
        let Some(storage) = storage else {
            tracing::warn!(domain = %self.dest.url, endpoint = t.endpoint.as_str(), reason, bytes = t.size(),
                "Retry queue full (forwarder_retry_queue_payloads_max_size); dropping the oldest payload.");
            metrics.dropped(reason, 1);
            return false;
        };
        let mut storage = storage.lock().unwrap_or_else(|e| e.into_inner());
        let result = storage.store(self.index, &t);
        metrics
            .disk_bytes
            .set(i64::try_from(storage.bytes()).unwrap_or(i64::MAX));
        match result {
            Ok(outcome) => {
                metrics.persisted.inc();
                if outcome.evicted > 0 {
                    tracing::warn!(
                        files = outcome.evicted,
                        "Disk storage full (forwarder_storage_max_size_in_bytes); removed the oldest payloads."
                    );
                    metrics.dropped("disk_evicted", outcome.evicted);
                }
                true
            }
            Err(StoreError::TooLarge) => {
                tracing::warn!(
                    bytes = t.size(),
                    "Payload larger than forwarder_storage_max_size_in_bytes; dropping it."
                );
                metrics.dropped("too_large", 1);
                false
            }
            Err(StoreError::Io(path, e)) => {
                tracing::warn!(file = %path.display(), error = %e, "Could not write payload to disk storage; dropping it.");
                metrics.dropped("disk_error", 1);
                false
            }
        }
    }

    /// Whether disk storage holds payloads for this destination.
    fn has_stored(&self) -> bool {
        self.shared
            .storage
            .as_ref()
            .is_some_and(|s| s.lock().unwrap_or_else(|e| e.into_inner()).has(self.index))
    }

    fn replay_one(&mut self) {
        let Some(storage) = &self.shared.storage else { return };
        let metrics = Arc::clone(&self.shared.metrics);
        let taken = {
            let mut storage = storage.lock().unwrap_or_else(|e| e.into_inner());
            if !storage.has(self.index) {
                return;
            }
            let t = storage.take_oldest(self.index, |path, reason| {
                tracing::warn!(file = %path.display(), reason, "Skipping unreadable stored payload.");
                metrics.dropped("corrupted", 1);
            });
            metrics
                .disk_bytes
                .set(i64::try_from(storage.bytes()).unwrap_or(i64::MAX));
            t
        };
        let Some(t) = taken else { return };
        if usize::from(t.key_index) >= self.dest.keys.len() {
            tracing::warn!(domain = %self.dest.url, key_index = t.key_index, "Stored payload refers to an API key no longer configured; dropping it.");
            metrics.dropped("unknown_api_key", 1);
            return;
        }
        metrics.replayed.inc();
        // Not `enqueue`: the queue is empty here, and a payload larger than the
        // memory bound on its own (stored for that reason) must still be sent,
        // or it would go straight back to disk on every replay and never leave.
        // If this attempt fails, `enforce_bound` moves it back to disk.
        self.push_back(t);
    }

    fn finish(mut self) -> WorkerReport {
        while let Some(t) = self.pop_front() {
            if self.shared.storage.is_some() && t.endpoint.storable_on_disk() {
                if self.overflow(t, "shutdown") {
                    self.report.persisted += 1;
                } else {
                    self.report.dropped += 1;
                }
            } else {
                self.shared.metrics.dropped("shutdown", 1);
                self.report.dropped += 1;
            }
        }
        self.report
    }
}

fn gauge_delta(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Polls every request in flight; resolves with the index and outcome of the
/// first that has finished.
async fn first_done(inflight: &mut [(Transaction, InFlight)]) -> (usize, Outcome) {
    std::future::poll_fn(|cx| {
        for (index, (_, request)) in inflight.iter_mut().enumerate() {
            if let Poll::Ready(outcome) = request.as_mut().poll(cx) {
                return Poll::Ready((index, outcome));
            }
        }
        Poll::Pending
    })
    .await
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
