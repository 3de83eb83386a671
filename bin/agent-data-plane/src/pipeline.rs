//! The DogStatsD pipeline, wired from the library crates:
//!
//! ```text
//! listeners ──Batch──▶ [bounded queue: dogstatsd_queue_size] ──▶ aggregator task ──Output──▶ encoder task ──EncodedPayload──▶ forwarder
//!  (adp-dogstatsd)                                                (adp-aggregate)   [2]     (adp-encoder)                  (adp-forwarder)
//! ```
//!
//! The listeners' decoders already did the Agent's DogStatsD enrichment
//! (mapper, namespace, blocklist, `dogstatsd_tags`, histogram copies:
//! `adp_dogstatsd::enrich`); the aggregator drops the histogram series the
//! blocklist names (`.max`, `.95percentile` entries).
//!
//! The aggregator task owns the [`Aggregator`]. It inserts every metric as it
//! arrives (after the memory limiter's back pressure, see [`crate::memory`]),
//! keeps events and service checks aside, answers `dogstatsd stats` and `top`
//! ([`DebugServer`]), and:
//!
//! - every `aggregate_flush_interval`, flushes the closed windows;
//! - every second (or the flush interval, if shorter), hands over the events
//!   and service checks received since the last time: they are not
//!   aggregated, so they are sent promptly, batched per tick;
//! - when the queue closes (the listeners stopped at shutdown), force-flushes
//!   every open window, hands over what is left and ends.
//!
//! The encoder task owns the [`Encoder`]: it turns each hand-over into
//! payloads and gives them to the forwarder. Encoding a large flush (100,000
//! contexts: ~2 s of protobuf and zstd on one core) runs there, so the
//! aggregator keeps draining the listeners' queue meanwhile; the hand-over
//! channel holds at most two flushes, so a slow encoder still slows the
//! aggregator rather than growing memory.
//!
//! Payloads go to the forwarder with [`ForwarderHandle::send`], which waits when
//! the forwarder's buffer is full: that wait is the back pressure from the
//! network to the encoder, and through the bounded channels, to the aggregator
//! and the listeners.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adp_aggregate::Aggregator;
use adp_dogstatsd::debug::DebugServer;
use adp_dogstatsd::{Batch, RunningSource};
use adp_encoder::{EncodeError, Encoder, EncoderConfig};
use adp_forwarder::{ApiKeyStatus, Forwarder, ForwarderHandle, ShutdownReport};
use adp_model::{Event, Flushed, ServiceCheck};
use adp_telemetry::Registry;
use adp_wire::EncodedPayload;
use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::health::Health;
use crate::memory::MemoryLimiter;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Events and service checks are sent at least this often.
const EVENTS_TICK: Duration = Duration::from_secs(1);

/// The host name series are attributed to: `hostname`, else the kernel's.
pub fn resolve_hostname(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (POSIX allows truncation without NUL, handled below).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The running pipeline.
pub struct Running {
    source: RunningSource,
    aggregator: JoinHandle<()>,
    encoder: JoinHandle<()>,
    forwarder: JoinHandle<ShutdownReport>,
    forwarder_stop: oneshot::Sender<()>,
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

    let hostname = resolve_hostname(&settings.agent.hostname);
    if hostname.is_empty() {
        tracing::warn!("No host name: set `hostname` (DD_HOSTNAME); series will carry an empty host.");
    }
    let encoder = Encoder::new(
        EncoderConfig {
            hostname,
            ..settings.encoder.clone()
        },
        registry,
    )
    .context("invalid serializer configuration")?;
    let mut aggregator =
        Aggregator::new(settings.aggregate.clone(), registry).context("invalid aggregation configuration")?;
    let histogram_blocklist = settings
        .dogstatsd
        .enrich
        .blocklist()
        .histogram_aggregates(aggregator.histogram_suffixes());
    if !histogram_blocklist.is_empty() {
        aggregator.set_histogram_filter(move |name| histogram_blocklist.contains(name));
    }
    let (tx, rx) = mpsc::channel::<Batch>(settings.dogstatsd.dogstatsd_queue_size);
    let (output, outputs) = mpsc::channel::<Output>(OUTPUT_QUEUE);
    let encoder = supervisor.spawn(
        "encoder",
        None,
        EncoderTask {
            encoder,
            forwarder: handle,
        }
        .run(outputs),
    );
    let aggregator_health = health.register("aggregator");
    let aggregator = supervisor.spawn(
        "aggregator",
        Some(aggregator_health.clone()),
        AggregatorTask {
            aggregator,
            output,
            limiter,
            flush_interval: settings.aggregate.aggregate_flush_interval,
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
        .build(registry, settings.aggregate.aggregate_context_limit)
        .context("invalid DogStatsD configuration")?;
    let source = source.start(tx).await.context("cannot start the DogStatsD listeners")?;
    // A listener ends before shutdown only on a fatal socket error, which it
    // logs itself; the supervisor reports the component.
    let stopped = source.listener_stopped();
    supervisor.spawn("dogstatsd", Some(dogstatsd_health.clone()), async move {
        stopped.await;
    });
    dogstatsd_health.ready();

    Ok(Running {
        source,
        aggregator,
        encoder,
        forwarder,
        forwarder_stop,
    })
}

impl Running {
    /// Stops the listeners, flushes everything, and lets the forwarder send for
    /// at most `drain` before it stores or drops the rest.
    pub async fn shutdown(self, drain: Duration) -> anyhow::Result<()> {
        let Self {
            source,
            aggregator,
            encoder,
            forwarder,
            forwarder_stop,
        } = self;
        source.shutdown().await;
        tracing::debug!("DogStatsD listeners stopped.");
        // The aggregator ends once the queue is empty and closed, after its
        // final flush; the encoder once it has handed that flush over.
        let (mut aggregator, mut encoder) = (aggregator, encoder);
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
        let _ = forwarder_stop.send(());
        let report = forwarder.await.context("the forwarder task failed")?;
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

/// Flushes handed from the aggregator to the encoder task before the
/// aggregator waits: one being encoded, two waiting.
const OUTPUT_QUEUE: usize = 2;

/// What the aggregator hands to the encoder task at a tick.
#[derive(Default)]
struct Output {
    flushed: Flushed,
    events: Vec<Event>,
    checks: Vec<ServiceCheck>,
}

struct AggregatorTask {
    aggregator: Aggregator,
    output: mpsc::Sender<Output>,
    limiter: MemoryLimiter,
    flush_interval: Duration,
    events: Vec<Event>,
    checks: Vec<ServiceCheck>,
    debug: DebugServer,
}

struct EncoderTask {
    encoder: Encoder,
    forwarder: ForwarderHandle,
}

fn unix_now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

impl AggregatorTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        let start = tokio::time::Instant::now();
        let mut flush = tokio::time::interval_at(start + self.flush_interval, self.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let events_every = EVENTS_TICK.min(self.flush_interval);
        let mut events = tokio::time::interval_at(start + events_every, events_every);
        events.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        self.limiter.wait().await;
                        self.insert(batch);
                    }
                    None => break,
                },
                _ = flush.tick() => {
                    let started = std::time::Instant::now();
                    let flushed = self.aggregator.flush(unix_now(), false);
                    tracing::debug!(
                        points = flushed.point_count(),
                        contexts = self.aggregator.context_count(),
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "Flushed the closed aggregation windows."
                    );
                    self.hand_over(flushed).await;
                }
                _ = events.tick() => self.hand_over(Flushed::default()).await,
                event = self.debug.next() => self.debug.handle(event, || self.aggregator.contexts()),
            }
        }
        let flushed = self.aggregator.flush(unix_now(), true);
        tracing::debug!(points = flushed.point_count(), "Flushed every open aggregation window.");
        self.hand_over(flushed).await;
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
        for metric in metrics {
            // Drops (limits, bad shapes) are counted by the aggregator.
            self.aggregator.insert_at(metric, now);
        }
        self.events.extend(events);
        self.checks.extend(service_checks);
    }

    /// Gives `flushed` and the events and checks kept so far to the encoder task.
    async fn hand_over(&mut self, flushed: Flushed) {
        let output = Output {
            flushed,
            events: std::mem::take(&mut self.events),
            checks: std::mem::take(&mut self.checks),
        };
        if output.flushed.is_empty() && output.events.is_empty() && output.checks.is_empty() {
            return;
        }
        if self.output.send(output).await.is_err() {
            tracing::error!("The encoder task is gone; flushed metrics are lost.");
        }
    }
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
    async fn run(self, mut rx: mpsc::Receiver<Output>) {
        while let Some(Output {
            flushed,
            events,
            checks,
        }) = rx.recv().await
        {
            let now = unix_now();
            if !flushed.is_empty() {
                let started = std::time::Instant::now();
                // One payload compressed at a time, each handed over before the
                // next is built: a flush never holds all its payloads at once.
                self.send_each(self.encoder.series_payloads(&flushed.series), "series")
                    .await;
                self.send_each(self.encoder.sketch_payloads(&flushed.sketches), "sketches")
                    .await;
                tracing::debug!(
                    points = flushed.point_count(),
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "Encoded and handed over the flushed series and sketches."
                );
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

    #[test]
    fn the_hostname_is_the_configured_one_or_the_kernels() {
        assert_eq!(resolve_hostname("board-1"), "board-1");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(resolve_hostname(""), kernel.trim());
    }
}
