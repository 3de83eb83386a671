//! The DogStatsD pipeline, wired from the library crates:
//!
//! ```text
//! listeners ──Batch──▶ [bounded queue: dogstatsd_queue_size] ──▶ aggregator task ──┐ Arc<Mutex<Aggregator>>
//!  (adp-dogstatsd)                                                (insert batches) │
//!                                                                                  ▼
//!                             events, service checks [2] ──▶ encoder task (flush in steps) ──EncodedPayload──▶ forwarder
//!                                                             (adp-aggregate → adp-encoder)                  (adp-forwarder)
//! ```
//!
//! The listeners' decoders already did the Agent's DogStatsD enrichment
//! (mapper, namespace, blocklist, `dogstatsd_tags`, histogram copies:
//! `adp_dogstatsd::enrich`); the aggregator drops the histogram series the
//! blocklist names (`.max`, `.95percentile` entries).
//!
//! The [`Aggregator`] (and its context store) sits behind one mutex. The
//! aggregator task takes it once per batch to insert the batch's samples
//! (after the memory limiter's admission of new contexts; its back pressure
//! paces the listeners, see [`crate::memory`]); it keeps events and service
//! checks aside and hands them to the encoder task every second (or the
//! flush interval, if shorter), as they are not aggregated. It also answers
//! `dogstatsd stats` and `top` ([`DebugServer`]).
//!
//! The encoder task owns the [`Encoder`] and the flush timer. Every
//! `aggregate_flush_interval` it flushes in steps: it takes the mutex for
//! [`FLUSH_STEP`] contexts at a time, during which the aggregator writes their
//! closed windows straight into the compressor (names and tags borrowed from
//! the context store, no copy of the flush), releases it, and hands the
//! finished payloads to the forwarder before the next step. Encoding a large
//! flush (100,000 contexts) takes a fraction of a second spread over
//! hundreds of steps, between which the aggregator task keeps draining the
//! listeners' queue. When the queue closes (the listeners stopped at
//! shutdown), the aggregator task inserts what is left, hands over the last
//! events and checks and ends; the encoder task then force-flushes every
//! open window and ends.
//!
//! A flush keeps at most one of its payloads in the forwarder while it builds
//! the next ([`InFlight`]: a payload's body counts until the forwarder frees
//! it, sent or dropped), so a flush costs the steady state about two
//! compressed payloads, not a queue of them; if the forwarder holds on to a
//! payload for more than [`IN_FLIGHT_WAIT`] (the intake is slow or down), the
//! flush goes on and the forwarder's own bounds apply. Other payloads go to
//! the forwarder with [`ForwarderHandle::send`], which waits when the
//! forwarder's buffer is full: that wait is the back pressure from the network
//! to the encoder task, and through the bounded channels, to the listeners.

//!
//! # The host and its system checks
//!
//! ```text
//! adp-checks threads ──CheckBatch──▶ [16] ──▶ checks task ──Output──▶ encoder task
//! host metadata task ──/intake/ payload──────────────────────────────────▶ forwarder
//! ```
//!
//! At start the hostname is resolved as the Agent does (`adp-host`: `Hostname
//! is: …`; no name at all stops the start, as in the Agent) and given to the
//! encoder. The system checks (`adp-checks`, configured from `confd_path`) run
//! on their own two threads; the supervised `checks` task hands each run's
//! series and service checks to the encoder task through the same channel as
//! the aggregator's events, past the aggregator: check series keep their own
//! timestamps, as the Agent's check sampler sends them. While
//! `expected_tags_duration` lasts, the encoder adds the host tags to every
//! series and sketch. The `host metadata` task sends the v5 host payload at
//! start and on the Agent's schedule, compressed like the other payloads; the
//! forwarder never stores it on disk (it holds the API key).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adp_aggregate::Aggregator;
use adp_checks::{CheckBatch, RunnerHandle};
use adp_dogstatsd::debug::DebugServer;
use adp_dogstatsd::{Batch, Pacer, RunningSource};
use adp_encoder::{CheckSeriesParts, EncodeError, Encoder, EncoderConfig};
use adp_forwarder::{ApiKeyStatus, Forwarder, ForwarderHandle, ShutdownReport};
use adp_host::{ExpectedHostTags, HostMetadata, MetadataSchedule, SystemInfo, SystemPaths};
use adp_model::{Event, SeriesKind, ServiceCheck, ServiceCheckStatus};
use adp_telemetry::Registry;
use adp_wire::EncodedPayload;
use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::health::Health;
use crate::memory::{Admission, MemoryLimiter};
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Events and service checks are sent at least this often.
const EVENTS_TICK: Duration = Duration::from_secs(1);

/// Contexts flushed per hold of the aggregator's mutex: at 100,000 contexts
/// of ~26 tags, about a millisecond of encoding, after which the aggregator
/// task may insert the next batch.
const FLUSH_STEP: usize = 128;

/// The longest a flush waits for the forwarder to free its previous payload
/// before building the next one anyway.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// The shared aggregator.
type Shared = Arc<Mutex<Aggregator>>;

/// A flush's payloads handed to the forwarder and not yet freed by it.
#[derive(Default)]
struct InFlight {
    payloads: AtomicUsize,
    freed: Notify,
}

/// A payload body that counts itself in [`InFlight`] until its last
/// reference (the forwarder's, or a retry's) is dropped.
struct TrackedBody {
    body: Vec<u8>,
    in_flight: Arc<InFlight>,
}

impl AsRef<[u8]> for TrackedBody {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.in_flight.payloads.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.freed.notify_waiters();
    }
}

impl InFlight {
    /// `payload`, its body tracked.
    fn track(self: &Arc<Self>, mut payload: EncodedPayload) -> EncodedPayload {
        self.payloads.fetch_add(1, Ordering::AcqRel);
        // Zero-copy: the body was made from a Vec and is not shared yet.
        let body: Vec<u8> = std::mem::take(&mut payload.body).into();
        payload.body = bytes::Bytes::from_owner(TrackedBody {
            body,
            in_flight: Arc::clone(self),
        });
        payload
    }

    /// Waits until at most `n` tracked payloads are held, or [`IN_FLIGHT_WAIT`].
    async fn wait_for_at_most(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a free in between is not missed.
            freed.as_mut().enable();
            if self.payloads.load(Ordering::Acquire) <= n {
                return;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return;
            }
        }
    }
}

fn lock(aggregator: &Shared) -> MutexGuard<'_, Aggregator> {
    // A panic aborts the process (panic = "abort"); a poisoned lock can only
    // come from a test, where the state is still usable.
    aggregator.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Check runs waiting for the checks task (each holds one run's series).
const CHECK_QUEUE: usize = 16;

/// How long shutdown waits for a check run in progress (an NTP query waits up
/// to its `timeout` per server) before leaving the checks behind.
const CHECKS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running pipeline.
pub struct Running {
    source: RunningSource,
    aggregator: JoinHandle<()>,
    encoder: JoinHandle<()>,
    forwarder: JoinHandle<ShutdownReport>,
    forwarder_stop: oneshot::Sender<()>,
    checks: Option<(RunnerHandle, JoinHandle<()>)>,
    host_metadata: Option<JoinHandle<()>>,
}

/// Builds and starts forwarder, aggregator and listeners (in that order, so
/// nothing received waits for a consumer that does not exist yet), each task
/// under `supervisor`.
pub async fn start(
    settings: &Settings,
    registry: &Registry,
    health: &Health,
    supervisor: &Supervisor,
    limiter: MemoryLimiter,
    debug: DebugServer,
) -> anyhow::Result<Running> {
    if settings.forwarder.api_key.is_empty() {
        anyhow::bail!("no API key configured: set `api_key` in datadog.yaml or DD_API_KEY");
    }
    for warning in settings.host.warnings() {
        tracing::warn!("{warning}");
    }
    // Blocking: the FQDN and the deprecation notice ask the resolver.
    let hostname_config = settings.host.hostname.clone();
    let resolved = tokio::task::spawn_blocking(move || adp_host::resolve(&hostname_config))
        .await
        .context("the hostname resolution failed")?
        .context("Error while getting hostname, exiting")?;

    let forwarder_health = health.register("forwarder");
    let forwarder = Forwarder::new(settings.forwarder.clone(), registry).context("invalid forwarder configuration")?;
    let handle = forwarder.handle();
    // An API key the intake refuses makes the forwarder unready, as the Agent
    // reports it unhealthy; payloads are still sent.
    let mut key_status = forwarder.api_key_status();
    supervisor.spawn("forwarder api key check", None, {
        let forwarder_health = forwarder_health.clone();
        async move {
            loop {
                match *key_status.borrow_and_update() {
                    ApiKeyStatus::Invalid => forwarder_health.not_ready(),
                    ApiKeyStatus::Valid | ApiKeyStatus::Unchecked => forwarder_health.ready(),
                }
                if key_status.changed().await.is_err() {
                    // The forwarder is gone; its own task reports that.
                    std::future::pending::<()>().await;
                }
            }
        }
    });
    let (forwarder_stop, stop_rx) = oneshot::channel::<()>();
    let forwarder = supervisor.spawn("forwarder", Some(forwarder_health), async move {
        forwarder
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });

    let encoder = Encoder::new(
        EncoderConfig {
            hostname: resolved.hostname.clone(),
            ..settings.encoder.clone()
        },
        registry,
    )
    .context("invalid serializer configuration")?;
    let host_tags = ExpectedHostTags::new(
        settings.host.host_tags(),
        Instant::now(),
        settings.host.expected_tags_duration,
    );
    if let Some(deadline) = host_tags.deadline() {
        tracing::debug!(
            tags = ?settings.host.host_tags(),
            "Adding host tags to metrics for {:?}",
            deadline.saturating_duration_since(Instant::now())
        );
    }
    let host_metadata = if settings.host.enable_metadata_collection {
        let config = settings
            .host
            .metadata_config(resolved, &settings.forwarder.api_key, crate::VERSION);
        let paths = SystemPaths {
            proc_root: settings.checks.roots().proc,
            ..SystemPaths::default()
        };
        let metadata = tokio::task::spawn_blocking(move || HostMetadata::new(config, SystemInfo::gather(&paths)))
            .await
            .context("reading the system facts for the host metadata failed")?;
        Some(send_host_metadata(
            Arc::new(metadata),
            settings.host.metadata_schedule(),
            encoder.clone(),
            handle.clone(),
        ))
    } else {
        // The Agent's line.
        tracing::warn!("Metadata collection disabled, only do that if another agent/dogstatsd is running on this host");
        None
    };
    let interner_bytes = usize::try_from(settings.dogstatsd.dogstatsd_string_interner_size).unwrap_or(usize::MAX);
    let mut aggregator = Aggregator::new(settings.aggregate.clone(), registry)
        .context("invalid aggregation configuration")?
        .with_interner(interner_bytes, settings.dogstatsd.dogstatsd_allow_context_heap_allocs);
    let histogram_blocklist = settings
        .dogstatsd
        .enrich
        .blocklist()
        .histogram_aggregates(aggregator.histogram_suffixes());
    if !histogram_blocklist.is_empty() {
        aggregator.set_histogram_filter(move |name| histogram_blocklist.contains(name));
    }
    let aggregator: Shared = Arc::new(Mutex::new(aggregator));
    let (tx, rx) = mpsc::channel::<Batch>(settings.dogstatsd.dogstatsd_queue_size);
    let (output, outputs) = mpsc::channel::<Output>(OUTPUT_QUEUE);
    let checks_output = output.clone();
    let encoder = supervisor.spawn(
        "encoder",
        None,
        EncoderTask {
            encoder,
            forwarder: handle,
            aggregator: aggregator.clone(),
            flush_interval: settings.aggregate.aggregate_flush_interval,
            in_flight: Arc::default(),
            host_tags,
        }
        .run(outputs),
    );
    let pacer = limiter.clone();
    let aggregator_health = health.register("aggregator");
    let aggregator = supervisor.spawn(
        "aggregator",
        Some(aggregator_health.clone()),
        AggregatorTask {
            aggregator,
            queued: registry.gauge(
                "adp_dogstatsd_queued_batches",
                "Decoded batches waiting for the aggregator (dogstatsd_queue_size at most).",
                &[],
            ),
            output,
            limiter,
            admission: Admission::default(),
            events_every: EVENTS_TICK.min(settings.aggregate.aggregate_flush_interval),
            events: Vec::new(),
            checks: Vec::new(),
            debug,
        }
        .run(rx),
    );
    aggregator_health.ready();

    let dogstatsd_health = health.register("dogstatsd");
    let source = settings
        .dogstatsd
        .build(registry)
        .context("invalid DogStatsD configuration")?
        .with_pacer(Pacer::new(move || pacer.delay()));
    let source = source.start(tx).await.context("cannot start the DogStatsD listeners")?;
    // A listener ends before shutdown only on a fatal socket error, which it
    // logs itself; the supervisor reports the component.
    let stopped = source.listener_stopped();
    supervisor.spawn("dogstatsd", Some(dogstatsd_health.clone()), async move {
        stopped.await;
    });
    dogstatsd_health.ready();

    // The second source and the host payload, once DogStatsD runs (a start that
    // fails on a listener sends nothing).
    let checks = start_checks(settings, registry, supervisor, checks_output)?;
    let host_metadata = host_metadata.map(|task| supervisor.spawn("host metadata", None, task));

    Ok(Running {
        source,
        aggregator,
        encoder,
        forwarder,
        forwarder_stop,
        checks,
        host_metadata,
    })
}

/// Loads the checks of `confd_path` and starts them with the supervised task
/// that hands their output to the encoder; `None` when no check is configured.
fn start_checks(
    settings: &Settings,
    registry: &Registry,
    supervisor: &Supervisor,
    output: mpsc::Sender<Output>,
) -> anyhow::Result<Option<(RunnerHandle, JoinHandle<()>)>> {
    let mut checks = adp_checks::load_checks(&settings.checks.confd_path, &settings.checks.roots());
    if checks.is_empty() {
        tracing::info!(
            confd_path = %settings.checks.confd_path.display(),
            "No system check configured."
        );
        return Ok(None);
    }
    for check in &mut checks {
        check.register_telemetry(registry);
    }
    let (tx, rx) = mpsc::channel::<CheckBatch>(CHECK_QUEUE);
    let runner = adp_checks::spawn(checks, tx).context("cannot start the system checks' threads")?;
    // The runner's threads hold the channel's senders: it closes when they end.
    let task = supervisor.spawn("checks", None, forward_checks(rx, output));
    Ok(Some((runner, task)))
}

/// Hands each check run's output to the encoder task, until the runner's
/// threads end (at shutdown) or the encoder task is gone.
async fn forward_checks(mut rx: mpsc::Receiver<CheckBatch>, output: mpsc::Sender<Output>) {
    while let Some(batch) = rx.recv().await {
        // Runs that finished together (every check starts at once) go as one.
        let mut check_batches = vec![batch];
        while check_batches.len() < CHECK_QUEUE {
            match rx.try_recv() {
                Ok(more) => check_batches.push(more),
                Err(_) => break,
            }
        }
        let checks = check_batches
            .iter()
            .flat_map(|b| &b.service_checks)
            .map(|c| ServiceCheck {
                name: c.name.to_owned(),
                status: match c.status {
                    adp_checks::ServiceCheckStatus::Ok => ServiceCheckStatus::Ok,
                    adp_checks::ServiceCheckStatus::Warning => ServiceCheckStatus::Warning,
                    adp_checks::ServiceCheckStatus::Critical => ServiceCheckStatus::Critical,
                    adp_checks::ServiceCheckStatus::Unknown => ServiceCheckStatus::Unknown,
                },
                timestamp: Some(c.timestamp),
                hostname: None,
                message: Some(c.message.clone()).filter(|m| !m.is_empty()),
                tags: c.tags.to_vec(),
            })
            .collect();
        let out = Output {
            checks,
            check_batches,
            ..Output::default()
        };
        if output.send(out).await.is_err() {
            tracing::error!("The encoder task is gone; check output is lost.");
            return;
        }
    }
}

/// Sends the host-metadata payload now, then on `schedule`, until aborted at
/// shutdown.
async fn send_host_metadata(
    metadata: Arc<HostMetadata>,
    mut schedule: MetadataSchedule,
    encoder: Encoder,
    forwarder: ForwarderHandle,
) {
    loop {
        // Blocking: the payload reads the FQDN from the resolver.
        let m = Arc::clone(&metadata);
        match tokio::task::spawn_blocking(move || m.payload().to_json()).await {
            Ok(json) => match encoder.host_metadata_payload(&json) {
                Ok(Some(payload)) => {
                    tracing::debug!(bytes = json.len(), "Sending host metadata payload.");
                    if forwarder.send(payload).await.is_err() {
                        // The forwarder is gone; its own task reports that.
                        std::future::pending::<()>().await;
                    }
                }
                // Too large: logged and counted by the encoder.
                Ok(None) => {}
                Err(e) => {
                    let error = format!("{:#}", anyhow::Error::new(e));
                    tracing::error!(error = %error, "Cannot encode the host metadata; it is not sent.");
                }
            },
            Err(e) => tracing::error!(error = %e, "Building the host metadata failed; it is not sent."),
        }
        tokio::time::sleep(schedule.next_interval()).await;
    }
}

impl Running {
    /// Stops the listeners, flushes everything, and lets the forwarder send for
    /// at most `drain` before it stores or drops the rest.
    pub async fn shutdown(self, drain: Duration) -> anyhow::Result<()> {
        if let Some(task) = self.host_metadata {
            task.abort();
        }
        if let Some((runner, mut task)) = self.checks {
            // The last runs' output is still encoded: the checks task ends once
            // the runner's threads have stopped and their channel is drained.
            let stopped = tokio::task::spawn_blocking(move || runner.stop());
            let drained = async {
                let _ = stopped.await;
                let _ = (&mut task).await;
            };
            if tokio::time::timeout(CHECKS_STOP_TIMEOUT, drained).await.is_err() {
                tracing::warn!(
                    "A system check run did not finish within {CHECKS_STOP_TIMEOUT:?} of shutdown (an NTP server not \
                     answering?); leaving it."
                );
                task.abort();
            }
            tracing::debug!("System checks stopped.");
        }
        self.source.shutdown().await;
        tracing::debug!("DogStatsD listeners stopped.");
        // The aggregator ends once the queue is empty and closed, after its
        // final flush; the encoder once it has handed that flush over.
        let (mut aggregator, mut encoder) = (self.aggregator, self.encoder);
        let flushed = async {
            let _ = (&mut aggregator).await;
            let _ = (&mut encoder).await;
        };
        if tokio::time::timeout(drain.max(Duration::from_secs(1)), flushed)
            .await
            .is_err()
        {
            tracing::warn!("The final flush did not finish within data_plane.shutdown_drain_timeout; abandoning it.");
            aggregator.abort();
            encoder.abort();
        }
        let _ = self.forwarder_stop.send(());
        let report = self.forwarder.await.context("the forwarder task failed")?;
        if report.dropped > 0 {
            tracing::warn!(
                dropped = report.dropped,
                persisted = report.persisted,
                "Payloads were not delivered before the shutdown deadline (data_plane.shutdown_drain_timeout)."
            );
        }
        Ok(())
    }
}

/// Hand-overs of events and service checks waiting for the encoder task.
const OUTPUT_QUEUE: usize = 2;

/// What the aggregator (at a tick) and the checks task (after check runs)
/// hand to the encoder task.
#[derive(Default)]
struct Output {
    events: Vec<Event>,
    checks: Vec<ServiceCheck>,
    /// System check runs: their series go to the encoder as they are.
    check_batches: Vec<CheckBatch>,
}

struct AggregatorTask {
    aggregator: Shared,
    /// Batches waiting in the queue when the last one was taken.
    queued: adp_telemetry::Gauge,
    output: mpsc::Sender<Output>,
    limiter: MemoryLimiter,
    admission: Admission,
    events_every: Duration,
    events: Vec<Event>,
    checks: Vec<ServiceCheck>,
    debug: DebugServer,
}

struct EncoderTask {
    encoder: Encoder,
    forwarder: ForwarderHandle,
    aggregator: Shared,
    flush_interval: Duration,
    in_flight: Arc<InFlight>,
    /// The host tags, added to series and sketches while they last.
    host_tags: ExpectedHostTags,
}

/// Ticks every `period`, the first time one `period` from now; a late tick
/// delays the ones after it instead of bursting to catch up.
fn ticker(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

fn unix_now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

impl AggregatorTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        let mut events = ticker(self.events_every);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        self.queued.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
                        self.insert(batch);
                    }
                    None => break,
                },
                _ = events.tick() => self.hand_over().await,
                event = self.debug.next() => {
                    // A copy of every context, taken under the mutex (`top` is rare).
                    let aggregator = &self.aggregator;
                    self.debug.handle(event, || lock(aggregator).contexts().collect::<Vec<_>>().into_iter());
                }
            }
        }
        self.hand_over().await;
        // Dropping the sender tells the encoder task to flush everything and end.
    }

    fn insert(&mut self, batch: Batch) {
        let Batch {
            metrics,
            events,
            service_checks,
            origin: _,
        } = batch;
        let now = unix_now();
        self.debug.observe(&metrics, now);
        if !metrics.is_empty() {
            self.limiter.refresh();
            let mut aggregator = lock(&self.aggregator);
            let resident = u64::try_from(aggregator.memory().resident_bytes).unwrap_or(u64::MAX);
            let growth = self.admission.growth(&self.limiter, resident);
            // Drops (limits, bad values) are counted by the aggregator.
            aggregator.insert_batch(&metrics, now, growth);
        }
        self.events.extend(events);
        self.checks.extend(service_checks);
    }

    /// Gives the events and checks kept so far to the encoder task.
    async fn hand_over(&mut self) {
        let output = Output {
            events: std::mem::take(&mut self.events),
            checks: std::mem::take(&mut self.checks),
            check_batches: Vec::new(),
        };
        if output.events.is_empty() && output.checks.is_empty() {
            return;
        }
        if self.output.send(output).await.is_err() {
            tracing::error!("The encoder task is gone; events and service checks are lost.");
        }
    }
}

/// Gives the allocator's free memory back to the kernel. glibc returns only
/// the top of a heap by itself; the batches queued during a burst, or the
/// contexts a flush removed, leave free chunks in the middle that stay
/// resident until reused. Once per flush, the walk costs a few milliseconds.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own
    // heaps to the kernel; it takes the allocator's locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One check run's series as the encoder takes them.
fn check_series_parts(batch: &CheckBatch) -> impl Iterator<Item = CheckSeriesParts<'_>> {
    batch.series.iter().map(|s| CheckSeriesParts {
        check: batch.check,
        name: &s.name,
        tags: &s.tags,
        kind: match s.metric_type {
            adp_checks::MetricType::Gauge => SeriesKind::Gauge,
            adp_checks::MetricType::Count => SeriesKind::Count,
        },
        timestamp: s.timestamp,
        value: s.value,
    })
}

/// The payloads of an all-at-once encoding, or its error, one by one.
fn each(
    payloads: Result<Vec<EncodedPayload>, EncodeError>,
) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> {
    let (ok, err) = match payloads {
        Ok(payloads) => (payloads, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    ok.into_iter().map(Ok).chain(err.map(Err))
}

impl EncoderTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Output>) {
        let mut flush = ticker(self.flush_interval);
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    self.update_host_tags();
                    self.flush(false).await;
                }
                output = rx.recv() => match output {
                    Some(output) => {
                        self.update_host_tags();
                        self.send_outputs(output).await;
                    }
                    None => break,
                },
            }
        }
        self.update_host_tags();
        self.flush(true).await;
    }

    /// Gives the encoder the host tags of now (none once
    /// `expected_tags_duration` has passed).
    fn update_host_tags(&mut self) {
        let host_tags = self.host_tags.tags_at(Instant::now());
        if host_tags.len() != self.encoder.host_tags().len() {
            if host_tags.is_empty() {
                tracing::debug!("expected_tags_duration has passed: host tags are no longer added to metrics.");
            }
            self.encoder.set_host_tags(host_tags);
        }
    }

    /// Flushes the aggregator's closed windows (every window with `force`)
    /// in steps, handing each payload to the forwarder as it is finished.
    async fn flush(&self, force: bool) {
        let started = std::time::Instant::now();
        let mut writer = self.encoder.flush_writer();
        let mut job = lock(&self.aggregator).start_flush(unix_now(), force);
        loop {
            // One payload with the forwarder while the next is built.
            self.in_flight.wait_for_at_most(1).await;
            let step = lock(&self.aggregator).flush_step(&mut job, &mut writer, FLUSH_STEP);
            let done = match step {
                Ok(done) => done,
                Err(e) => {
                    // `{:#}`: the error and its cause (the compressor's error).
                    let error = format!("{:#}", anyhow::Error::new(e));
                    tracing::error!(error = %error, "Cannot encode the flushed series and sketches; the rest of this flush is dropped.");
                    return;
                }
            };
            while let Some(payload) = writer.next_ready() {
                if self.forwarder.send(self.in_flight.track(payload)).await.is_err() {
                    tracing::error!("The forwarder is gone; flushed series and sketches are lost.");
                    return;
                }
            }
            if done {
                break;
            }
        }
        let last = writer
            .finish()
            .map(|payloads| payloads.into_iter().map(|p| self.in_flight.track(p)).collect());
        self.send_each(each(last), "series and sketches").await;
        release_free_memory();
        let contexts = lock(&self.aggregator).context_count();
        tracing::debug!(
            points = job.points(),
            contexts,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            force,
            "Flushed and encoded the closed aggregation windows."
        );
    }

    /// Encodes and sends what the aggregator task (events, service checks)
    /// or the checks task (check runs) handed over.
    async fn send_outputs(&self, output: Output) {
        let Output {
            events,
            checks,
            check_batches,
        } = output;
        let now = unix_now();
        if !check_batches.is_empty() {
            // Collected: an iterator of closures held across the awaits
            // below would not be `Send` for the compiler (higher-ranked
            // lifetimes); a few hundred small parts per run.
            let parts: Vec<CheckSeriesParts<'_>> = check_batches.iter().flat_map(check_series_parts).collect();
            self.send_each(self.encoder.check_series_payloads(parts), "check series")
                .await;
        }
        if !events.is_empty() {
            let payloads = self.encoder.encode_events(&events, now);
            self.send_each(each(payloads), "events").await;
        }
        if !checks.is_empty() {
            let payloads = self.encoder.encode_service_checks(&checks, now);
            self.send_each(each(payloads), "service checks").await;
        }
    }

    async fn send_each(&self, payloads: impl Iterator<Item = Result<EncodedPayload, EncodeError>>, what: &str) {
        for payload in payloads {
            match payload {
                Ok(payload) => {
                    if self.forwarder.send(payload).await.is_err() {
                        tracing::error!("The forwarder is gone; {what} payloads are lost.");
                        return;
                    }
                }
                Err(e) => {
                    // `{:#}`: the error and its cause (the compressor's error).
                    let error = format!("{:#}", anyhow::Error::new(e));
                    tracing::error!(error = %error, "Cannot encode {what}; they are dropped.");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> EncodedPayload {
        EncodedPayload {
            endpoint: adp_wire::Endpoint::Series,
            body: bytes::Bytes::from(vec![7u8; len]),
            content_type: "application/x-protobuf",
            content_encoding: "zstd",
            items: 1,
        }
    }

    #[tokio::test]
    async fn a_tracked_payload_counts_until_its_last_copy_is_dropped() {
        let in_flight = Arc::new(InFlight::default());
        let a = in_flight.track(payload(1000));
        let b = in_flight.track(payload(10));
        assert_eq!(a.body.len(), 1000);
        assert!(a.body.iter().all(|&x| x == 7));
        assert_eq!(in_flight.payloads.load(Ordering::Acquire), 2);
        let copy = a.body.clone(); // a retry's copy, say
        drop(a);
        assert_eq!(in_flight.payloads.load(Ordering::Acquire), 2);
        // Freed by another task while this one waits.
        let waiter = {
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move { in_flight.wait_for_at_most(1).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "two payloads still held");
        drop(copy);
        tokio::time::timeout(Duration::from_millis(500), waiter)
            .await
            .expect("woken by the free")
            .unwrap();
        assert_eq!(in_flight.payloads.load(Ordering::Acquire), 1);
        drop(b);
        assert_eq!(in_flight.payloads.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_payload_held_too_long_does_not_stop_the_flush() {
        let in_flight = Arc::new(InFlight::default());
        let held = [in_flight.track(payload(1)), in_flight.track(payload(1))];
        let started = std::time::Instant::now();
        in_flight.wait_for_at_most(1).await;
        assert!(started.elapsed() >= IN_FLIGHT_WAIT);
        drop(held);
    }
}
