//! The DogStatsD pipeline, wired from the library crates:
//!
//! ```text
//! listeners ──Batch──▶ [bounded queue: dogstatsd_queue_size] ──▶ aggregator task ──Output──▶ encoder task ──EncodedPayload──▶ forwarder
//!  (adp-dogstatsd)                                                (adp-aggregate)   [2]     (adp-encoder)                  (adp-forwarder)
//! ```
//!
//! The aggregator task owns the [`Aggregator`]. It inserts every metric as it
//! arrives (after the memory limiter's back pressure, see [`crate::memory`]),
//! keeps events and service checks aside, and:
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adp_aggregate::{AggregateConfig, Aggregator, HistogramAggregate};
use adp_config::Config;
use adp_dogstatsd::{Batch, DogStatsDConfig, RunningSource};
use adp_encoder::{EncodeError, Encoder, PayloadsConfig};
use adp_forwarder::{Forwarder, ForwarderConfig, ForwarderHandle, ProxyConfig, ShutdownReport};
use adp_model::{Event, Flushed, ServiceCheck};
use adp_telemetry::Registry;
use adp_wire::{CompressionKind, EncodedPayload};
use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::health::Health;
use crate::memory::{ComponentBounds, MemoryLimiter};

/// Bytes one aggregation context holds, for the memory bounds: the shared
/// context (name and tags; interned text is counted in the interner), the
/// resolver's and the aggregator's map entries and one window of state.
/// Measured, not derived: `make bench` (churn) reached the default limit of
/// 1,000,000 short-named counters at 475 MiB RSS, ~500 bytes each. A
/// histogram window holds its samples and can exceed this.
const BYTES_PER_CONTEXT: u64 = 500;

/// Events and service checks are sent at least this often.
const EVENTS_TICK: Duration = Duration::from_secs(1);

/// The declared memory bounds of every component, from the configuration.
pub fn memory_bounds(config: &Config) -> Vec<ComponentBounds> {
    let d = &config.dogstatsd;
    let listeners = u64::from(d.port != 0) + u64::from(d.socket.is_some()) + u64::from(d.stream_socket.is_some());
    let receive_buffers = listeners.saturating_mul(d.buffer_size);
    let dogstatsd_min = receive_buffers.saturating_add(d.string_interner_size);
    // A queued batch is the decoded form of less than 1.5 buffers of packets
    // (the listeners group waiting packets), decoded about twice their wire size.
    let dogstatsd_firm = dogstatsd_min.saturating_add(d.queue_size.saturating_mul(d.buffer_size).saturating_mul(3));
    let s = &config.serializer;
    let encoder = s
        .max_series_uncompressed_payload_size
        .saturating_add(s.max_uncompressed_payload_size);
    let destinations = 1 + u64::try_from(config.additional_endpoints.len()).unwrap_or(u64::MAX);
    let forwarder = config
        .forwarder
        .retry_queue_payloads_max_size
        .saturating_mul(destinations)
        .saturating_add(u64::from(config.forwarder.high_prio_buffer_size).saturating_mul(s.max_payload_size));
    vec![
        ComponentBounds {
            name: "dogstatsd",
            minimum: dogstatsd_min,
            firm: dogstatsd_firm,
            key: "dogstatsd_queue_size",
        },
        ComponentBounds {
            name: "aggregator",
            minimum: 0,
            firm: config.aggregate.context_limit.saturating_mul(BYTES_PER_CONTEXT),
            key: "aggregate_context_limit",
        },
        ComponentBounds {
            name: "encoder",
            minimum: 0,
            firm: encoder,
            key: "serializer_max_uncompressed_payload_size",
        },
        ComponentBounds {
            name: "forwarder",
            minimum: 0,
            firm: forwarder,
            key: "forwarder_retry_queue_payloads_max_size",
        },
    ]
}

/// The host name series are attributed to: `hostname`, else the kernel's.
pub fn resolve_hostname(config: &Config) -> String {
    if !config.hostname.is_empty() {
        return config.hostname.clone();
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

fn dogstatsd_config(config: &Config) -> DogStatsDConfig {
    let d = &config.dogstatsd;
    let path =
        |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    DogStatsDConfig {
        dogstatsd_port: d.port,
        bind_host: d.bind_host.to_string(),
        dogstatsd_non_local_traffic: d.non_local_traffic,
        dogstatsd_socket: path(&d.socket),
        dogstatsd_stream_socket: path(&d.stream_socket),
        // Both are range-checked by adp-config (at most 64 MiB / i32::MAX), which fits any usize.
        dogstatsd_buffer_size: usize::try_from(d.buffer_size).unwrap_or(usize::MAX),
        dogstatsd_so_rcvbuf: usize::try_from(d.so_rcvbuf).unwrap_or(usize::MAX),
        dogstatsd_string_interner_size: d.string_interner_size,
        aggregate_context_limit: usize::try_from(config.aggregate.context_limit).unwrap_or(usize::MAX),
        dogstatsd_permissive_decoding: d.permissive_decoding,
        dogstatsd_minimum_sample_rate: d.minimum_sample_rate,
        dogstatsd_context_expiry_seconds: d.context_expiry_seconds,
    }
}

fn aggregate_config(config: &Config) -> anyhow::Result<AggregateConfig> {
    let a = &config.aggregate;
    Ok(AggregateConfig {
        aggregate_window_duration_seconds: a.window_duration_seconds,
        aggregate_flush_interval: a.flush_interval,
        aggregate_context_limit: a.context_limit,
        counter_expiry_seconds: a.counter_expiry_seconds,
        histogram_aggregates: a
            .histogram_aggregates
            .iter()
            .map(|s| s.parse::<HistogramAggregate>())
            .collect::<Result<_, _>>()
            .context("invalid `histogram_aggregates`")?,
        histogram_percentiles: a.histogram_percentiles.clone(),
    })
}

fn payloads_config(config: &Config, hostname: String) -> PayloadsConfig {
    let s = &config.serializer;
    PayloadsConfig {
        hostname,
        serializer_compressor_kind: match s.compressor_kind {
            adp_config::Compression::Zstd => CompressionKind::Zstd,
            adp_config::Compression::Zlib => CompressionKind::Zlib,
            adp_config::Compression::None => CompressionKind::None,
        },
        serializer_zstd_compressor_level: s.zstd_compressor_level,
        serializer_max_series_payload_size: s.max_series_payload_size,
        serializer_max_series_uncompressed_payload_size: s.max_series_uncompressed_payload_size,
        serializer_max_series_points_per_payload: s.max_series_points_per_payload,
        serializer_max_payload_size: s.max_payload_size,
        serializer_max_uncompressed_payload_size: s.max_uncompressed_payload_size,
    }
}

fn forwarder_config(config: &Config) -> ForwarderConfig {
    let f = &config.forwarder;
    ForwarderConfig {
        api_key: config.api_key.clone(),
        site: config.site.clone(),
        dd_url: config.dd_url.clone(),
        additional_endpoints: config.additional_endpoints.clone(),
        forwarder_timeout: f.timeout,
        forwarder_retry_queue_payloads_max_size: f.retry_queue_payloads_max_size,
        forwarder_storage_max_size_in_bytes: f.storage_max_size_in_bytes,
        forwarder_storage_path: f.storage_path.clone(),
        forwarder_outdated_file_in_days: f.outdated_file_in_days,
        forwarder_backoff_base: f.backoff_base,
        forwarder_backoff_factor: f.backoff_factor,
        forwarder_backoff_max: f.backoff_max,
        forwarder_recovery_interval: f.recovery_interval,
        forwarder_recovery_reset: f.recovery_reset,
        forwarder_stop_timeout: config.data_plane.shutdown_drain_timeout,
        forwarder_high_prio_buffer_size: usize::try_from(f.high_prio_buffer_size).unwrap_or(usize::MAX),
        proxy: ProxyConfig {
            https: config.proxy.https.clone(),
            http: config.proxy.http.clone(),
            no_proxy: config.proxy.no_proxy.clone(),
        },
        agent_version: crate::VERSION.to_owned(),
        ..ForwarderConfig::default()
    }
}

/// The running pipeline.
pub struct Running {
    source: RunningSource,
    aggregator: JoinHandle<()>,
    encoder: JoinHandle<()>,
    forwarder: JoinHandle<ShutdownReport>,
    forwarder_stop: oneshot::Sender<()>,
    stopping: Arc<AtomicBool>,
    failures: mpsc::Receiver<String>,
}

/// Builds and starts forwarder, aggregator and listeners (in that order, so
/// nothing received waits for a consumer that does not exist yet).
pub async fn start(
    config: &Config,
    registry: &Registry,
    health: &Health,
    limiter: MemoryLimiter,
) -> anyhow::Result<Running> {
    if config.api_key.is_empty() {
        anyhow::bail!("no API key configured: set `api_key` in datadog.yaml or DD_API_KEY");
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let (failure_tx, failures) = mpsc::channel(4);

    let forwarder_health = health.register("forwarder");
    let forwarder = Forwarder::new(forwarder_config(config), registry).context("invalid forwarder configuration")?;
    let handle = forwarder.handle();
    let (forwarder_stop, stop_rx) = oneshot::channel::<()>();
    let forwarder = tokio::spawn({
        let stopping = stopping.clone();
        let failure_tx = failure_tx.clone();
        let forwarder_health = forwarder_health.clone();
        async move {
            let report = forwarder
                .run(async {
                    let _ = stop_rx.await;
                })
                .await;
            if !stopping.load(Ordering::Relaxed) {
                forwarder_health.failed();
                let _ = failure_tx.try_send("the forwarder stopped".to_owned());
            }
            report
        }
    });
    forwarder_health.ready();

    let hostname = resolve_hostname(config);
    if hostname.is_empty() {
        tracing::warn!("No host name: set `hostname` (DD_HOSTNAME); series will carry an empty host.");
    }
    let encoder =
        Encoder::new(payloads_config(config, hostname), registry).context("invalid serializer configuration")?;
    let aggregator =
        Aggregator::new(aggregate_config(config)?, registry).context("invalid aggregation configuration")?;
    let queue = usize::try_from(config.dogstatsd.queue_size).unwrap_or(usize::MAX);
    let (tx, rx) = mpsc::channel::<Batch>(queue);
    let (output, outputs) = mpsc::channel::<Output>(OUTPUT_QUEUE);
    let encoder = tokio::spawn(
        EncoderTask {
            encoder,
            forwarder: handle,
        }
        .run(outputs),
    );
    let aggregator_health = health.register("aggregator");
    let aggregator = tokio::spawn(
        AggregatorTask {
            aggregator,
            output,
            limiter,
            flush_interval: config.aggregate.flush_interval,
            events: Vec::new(),
            checks: Vec::new(),
        }
        .run(rx),
    );

    aggregator_health.ready();

    let dogstatsd_health = health.register("dogstatsd");
    let source = dogstatsd_config(config)
        .build(registry)
        .context("invalid DogStatsD configuration")?;
    let source = source.start(tx).await.context("cannot start the DogStatsD listeners")?;
    dogstatsd_health.ready();
    // A listener task ends only on a fatal socket error; report it.
    let readiness = source.readiness();
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                if !readiness.load(Ordering::Relaxed) {
                    dogstatsd_health.failed();
                    let _ = failure_tx.try_send("a DogStatsD listener stopped".to_owned());
                    return;
                }
            }
        }
    });

    Ok(Running {
        source,
        aggregator,
        encoder,
        forwarder,
        forwarder_stop,
        stopping,
        failures,
    })
}

impl Running {
    /// Completes when a component stops on its own, with what stopped.
    pub async fn failed(&mut self) -> String {
        self.failures
            .recv()
            .await
            .unwrap_or_else(|| "the pipeline stopped".to_owned())
    }

    /// Stops the listeners, flushes everything, and lets the forwarder send for
    /// at most `drain` before it stores or drops the rest.
    pub async fn shutdown(self, drain: Duration) -> anyhow::Result<()> {
        let Self {
            source,
            aggregator,
            encoder,
            forwarder,
            forwarder_stop,
            stopping,
            failures: _,
        } = self;
        stopping.store(true, Ordering::Relaxed);
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
    use std::path::Path;

    use adp_config::Environment;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_env(Path::new("/tmp"), &Environment::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn component_configs_carry_the_agent_keys_through() {
        let c = config(&[
            ("DD_API_KEY", "k"),
            ("DD_DD_URL", "http://127.0.0.1:9"),
            ("DD_DOGSTATSD_PORT", "0"),
            ("DD_DOGSTATSD_SOCKET", "/tmp/x.sock"),
            ("DD_AGGREGATE_FLUSH_INTERVAL", "2"),
            ("DD_HISTOGRAM_AGGREGATES", "max sum"),
            ("DD_SERIALIZER_COMPRESSOR_KIND", "zlib"),
            ("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "3"),
        ]);
        let d = dogstatsd_config(&c);
        assert_eq!((d.dogstatsd_port, d.dogstatsd_socket.as_str()), (0, "/tmp/x.sock"));
        assert_eq!(d.dogstatsd_string_interner_size, 2 << 20);
        let a = aggregate_config(&c).unwrap();
        assert_eq!(a.aggregate_flush_interval, Duration::from_secs(2));
        assert_eq!(
            a.histogram_aggregates,
            [HistogramAggregate::Max, HistogramAggregate::Sum]
        );
        a.validate().unwrap();
        let p = payloads_config(&c, "h".to_owned());
        assert_eq!(p.serializer_compressor_kind, CompressionKind::Zlib);
        let f = forwarder_config(&c);
        assert_eq!(f.dd_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(f.forwarder_stop_timeout, Duration::from_secs(3));
        f.validate().unwrap();
    }

    #[test]
    fn memory_bounds_follow_the_limits_in_u64() {
        let c = config(&[
            ("DD_AGGREGATE_CONTEXT_LIMIT", "4000000000"),
            ("DD_DOGSTATSD_SOCKET", "/tmp/s"),
        ]);
        let bounds = memory_bounds(&c);
        let aggregator = bounds.iter().find(|b| b.name == "aggregator").unwrap();
        assert_eq!(aggregator.firm, 4_000_000_000 * BYTES_PER_CONTEXT, "above 4 GiB, exact");
        let dogstatsd = bounds.iter().find(|b| b.name == "dogstatsd").unwrap();
        assert_eq!(dogstatsd.minimum, 2 * 8192 + (2 << 20));
        assert!(bounds.iter().all(|b| b.firm >= b.minimum));
    }

    #[test]
    fn the_hostname_is_the_configured_one_or_the_kernels() {
        assert_eq!(resolve_hostname(&config(&[("DD_HOSTNAME", "board-1")])), "board-1");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(resolve_hostname(&config(&[])), kernel.trim());
    }
}
