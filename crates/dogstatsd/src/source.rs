//! The DogStatsD source: configuration, listeners and lifecycle.
//!
//! [`DogStatsDConfig`] (see [`crate::config`]) uses the Datadog Agent's key
//! names. [`DogStatsDConfig::build`] validates it into a [`DogStatsDSource`], and
//! [`DogStatsDSource::start`] binds every configured listener (failing fast on
//! the first that cannot bind), spawns one task per listener and returns a
//! [`RunningSource`]. Decoded [`Batch`]es go to the `mpsc::Sender` given to
//! `start`; its capacity is the back pressure between ingestion and
//! aggregation. A [`Pacer`] ([`DogStatsDSource::with_pacer`], the agent's
//! memory limiter) adds back pressure at the source itself: a listener waits
//! as long as it says before handing over each batch, so a process near its
//! memory limit stops reading its sockets rather than filling the queue.
//!
//! [`RunningSource::shutdown`] stops the listeners: each drains what its
//! socket already received, sends it, and drops its sender, so the channel
//! closes once the last listener is gone.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adp_dogstatsd::DogStatsDConfig;
//! let registry = adp_telemetry::Registry::new();
//! let source = DogStatsDConfig::default().build(&registry)?;
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
//! let running = source.start(tx).await?;
//! while let Some(batch) = rx.recv().await {
//!     println!("{} metrics", batch.metrics.len());
//! #   break;
//! }
//! running.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adp_telemetry::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::codec::CodecConfig;
pub use crate::config::{ConfigError, DogStatsDConfig};
use crate::decoder::{Batch, Decoder};
use crate::enrich::Enricher;
use crate::listener::{udp, unix, ListenAddr, ListenerError, Pipe};
use crate::telemetry::{DecoderTelemetry, ListenerKind, ListenerTelemetry};

/// Errors of [`DogStatsDSource::start`].
pub type StartError = ListenerError;

/// A validated DogStatsD source, ready to start.
#[derive(Debug)]
pub struct DogStatsDSource {
    udp: Option<SocketAddr>,
    unix_datagram: Option<PathBuf>,
    unix_stream: Option<PathBuf>,
    buffer_size: usize,
    so_rcvbuf: usize,
    codec: CodecConfig,
    registry: Registry,
    decoder_telemetry: DecoderTelemetry,
    enricher: Enricher,
    pacer: Option<Pacer>,
}

/// Says how long a listener waits before handing over its next batch.
#[derive(Clone)]
pub struct Pacer(Arc<dyn Fn() -> Option<Duration> + Send + Sync>);

impl Pacer {
    /// A pacer asking `delay` before each batch (`None`: no wait). It runs
    /// once per batch, so it must be cheap: a load and a compare.
    pub fn new(delay: impl Fn() -> Option<Duration> + Send + Sync + 'static) -> Self {
        Self(Arc::new(delay))
    }

    /// The wait before the next batch, if any.
    pub fn delay(&self) -> Option<Duration> {
        (self.0)()
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacer")
    }
}

impl DogStatsDConfig {
    /// Validates the configuration and registers the source's counters in
    /// `registry`.
    ///
    /// An invalid mapper profile does not fail the build: as the Agent does,
    /// it logs `Could not create metric mapper: <why>` (warning) and the
    /// source runs without a mapper.
    pub fn build(&self, registry: &Registry) -> Result<DogStatsDSource, ConfigError> {
        self.validate()?;
        let (enricher, mapper_error) = Enricher::new(&self.enrich);
        if let Some(e) = mapper_error {
            tracing::warn!("Could not create metric mapper: {e}");
        }
        let udp = (self.dogstatsd_port != 0).then(|| {
            let ip = if self.dogstatsd_non_local_traffic {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                self.bind_host
            };
            SocketAddr::new(ip, self.dogstatsd_port)
        });
        Ok(DogStatsDSource {
            udp,
            unix_datagram: self.dogstatsd_socket.clone(),
            unix_stream: self.dogstatsd_stream_socket.clone(),
            buffer_size: self.dogstatsd_buffer_size,
            so_rcvbuf: self.dogstatsd_so_rcvbuf,
            codec: CodecConfig {
                permissive: self.dogstatsd_permissive_decoding,
                minimum_sample_rate: self.dogstatsd_minimum_sample_rate,
            },
            registry: registry.clone(),
            decoder_telemetry: DecoderTelemetry::new(registry),
            enricher,
            pacer: None,
        })
    }
}

impl DogStatsDSource {
    fn decoder(&self) -> Decoder {
        Decoder::new(self.codec, self.decoder_telemetry.clone()).with_enricher(self.enricher.clone())
    }

    /// Sets the [`Pacer`] every listener consults before each batch it hands over.
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = Some(pacer);
        self
    }

    /// Binds every listener, then spawns their tasks on the current tokio
    /// runtime. Logs "DogStatsD listener started." with `listen_addr` for each.
    pub async fn start(self, tx: mpsc::Sender<Batch>) -> Result<RunningSource, StartError> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let pipe = |kind| Pipe {
            tx: tx.clone(),
            shutdown: shutdown_rx.clone(),
            telemetry: ListenerTelemetry::new(&self.registry, kind),
            buffer_size: self.buffer_size,
            pacer: self.pacer.clone(),
        };
        // Bind everything first so a failure leaves nothing running.
        let udp = self.udp.map(|addr| udp::bind(addr, self.so_rcvbuf)).transpose()?;
        let dgram = match &self.unix_datagram {
            Some(p) => Some((unix::bind_datagram(p, self.so_rcvbuf)?, p.clone())),
            None => None,
        };
        let stream = match &self.unix_stream {
            Some(p) => Some((unix::bind_stream(p, self.so_rcvbuf)?, p.clone())),
            None => None,
        };

        let (stopped_tx, stopped) = watch::channel(None);
        let stopped_tx = Arc::new(stopped_tx);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        let mut spawn = |addr: ListenAddr, task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            addrs.push(addr.clone());
            // Whatever ends a listener (its receiver gone, shutdown), it says which.
            let stopped_tx = Arc::clone(&stopped_tx);
            tasks.spawn(async move {
                task.await;
                stopped_tx.send_replace(Some(addr));
            });
        };
        if let Some(socket) = udp {
            let addr = ListenAddr::Udp(socket.local_addr().map_err(|source| ListenerError::Bind {
                addr: format!("{:?}", self.udp),
                key: "dogstatsd_port",
                source,
            })?);
            spawn(
                addr,
                Box::pin(udp::run(socket, self.decoder(), pipe(ListenerKind::Udp))),
            );
        }
        if let Some((socket, path)) = dgram {
            spawn(
                ListenAddr::UnixDatagram(path.clone()),
                Box::pin(unix::run_datagram(
                    socket,
                    path,
                    self.decoder(),
                    pipe(ListenerKind::UnixDatagram),
                )),
            );
        }
        if let Some((listener, path)) = stream {
            spawn(
                ListenAddr::UnixStream(path.clone()),
                Box::pin(unix::run_stream(
                    listener,
                    path,
                    self.decoder(),
                    pipe(ListenerKind::UnixStream),
                )),
            );
        }
        for addr in &addrs {
            tracing::info!(listen_addr = %addr, "DogStatsD listener started.");
        }
        Ok(RunningSource {
            addrs,
            shutdown: shutdown_tx,
            tasks,
            stopped,
        })
    }
}

/// A started source. Dropping it without [`shutdown`](Self::shutdown) also
/// stops the listeners (they see the shutdown signal's sender go away).
#[derive(Debug)]
pub struct RunningSource {
    addrs: Vec<ListenAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    stopped: watch::Receiver<Option<ListenAddr>>,
}

impl RunningSource {
    /// The bound addresses, in the order UDP, Unix datagram, Unix stream
    /// (UDP with the actual port).
    pub fn listen_addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// The bound UDP address, if UDP is enabled.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.addrs.iter().find_map(|a| match a {
            ListenAddr::Udp(a) => Some(*a),
            _ => None,
        })
    }

    /// Completes when a listener stops (on its own: a fatal socket error or
    /// the batch receiver gone; or at shutdown), with its address. Clones
    /// may wait from other tasks.
    pub fn listener_stopped(&self) -> impl std::future::Future<Output = ListenAddr> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move {
            let addr = match stopped.wait_for(Option::is_some).await {
                Ok(addr) => addr.clone(),
                Err(_) => None,
            };
            match addr {
                Some(addr) => addr,
                // The source was dropped: every listener stopped with it.
                None => std::future::pending().await,
            }
        }
    }

    /// Stops the listeners, lets them drain what they already received, and
    /// waits for them; the batch channel closes when the caller's own sender
    /// clones are gone too.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "DogStatsD listener task failed.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::{UnixDatagram as StdUnixDatagram, UnixStream as StdUnixStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn config() -> DogStatsDConfig {
        DogStatsDConfig {
            dogstatsd_port: 0,
            ..DogStatsDConfig::default()
        }
    }

    /// [`config`] listening on the Unix stream socket `path` as well.
    fn stream(path: PathBuf) -> DogStatsDConfig {
        DogStatsDConfig {
            dogstatsd_stream_socket: Some(path),
            ..config()
        }
    }

    /// A started source listening on one Unix socket, `name` in a new
    /// temporary directory (returned to keep it), configured by `with_path`
    /// from the socket's path, sending into a channel of `capacity`.
    async fn start_on_socket(
        name: &str,
        with_path: impl FnOnce(PathBuf) -> DogStatsDConfig,
        registry: &Registry,
        capacity: usize,
    ) -> (tempfile::TempDir, PathBuf, RunningSource, mpsc::Receiver<Batch>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let source = with_path(path.clone()).build(registry).unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        (dir, path, source.start(tx).await.unwrap(), rx)
    }

    /// Receives batches until `n` metrics arrived (or fails after a timeout).
    async fn metrics(rx: &mut mpsc::Receiver<Batch>, n: usize) -> Vec<Batch> {
        let mut got = Vec::new();
        let mut count = 0;
        while count < n {
            let b = tokio::time::timeout(WAIT, rx.recv())
                .await
                .expect("timed out waiting for metrics")
                .expect("open");
            count += b.metrics.len();
            got.push(b);
        }
        got
    }

    fn names(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let m = &b.metrics;
                m.samples().iter().map(|s| m.name(m.context_of(s)).to_owned())
            })
            .collect()
    }

    /// A free UDP port on loopback (the Agent key reserves 0 for "disabled").
    fn free_udp_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn no_listener_is_a_config_error_naming_the_keys() {
        let err = config().build(&Registry::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("No listeners configured"), "{msg}");
        for key in ["`dogstatsd_port`", "`dogstatsd_socket`", "`dogstatsd_stream_socket`"] {
            assert!(msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn invalid_sizes_are_config_errors() {
        let r = Registry::new();
        let base = DogStatsDConfig::default();
        assert!(matches!(
            DogStatsDConfig {
                dogstatsd_buffer_size: 0,
                ..base.clone()
            }
            .build(&r),
            Err(ConfigError::BufferSize)
        ));
        assert!(matches!(
            DogStatsDConfig {
                dogstatsd_string_interner_size: 0,
                ..base.clone()
            }
            .build(&r),
            Err(ConfigError::InternerSize(0))
        ));
        assert!(matches!(
            DogStatsDConfig {
                dogstatsd_minimum_sample_rate: 0.0,
                ..base
            }
            .build(&r),
            Err(ConfigError::MinimumSampleRate(_))
        ));
    }

    #[test]
    fn non_local_traffic_binds_every_interface() {
        let r = Registry::new();
        let local = DogStatsDConfig::default().build(&r).unwrap();
        assert_eq!(local.udp, Some("127.0.0.1:8125".parse().unwrap()));
        let any = DogStatsDConfig {
            dogstatsd_non_local_traffic: true,
            ..DogStatsDConfig::default()
        }
        .build(&r)
        .unwrap();
        assert_eq!(any.udp, Some("0.0.0.0:8125".parse().unwrap()));
    }

    #[tokio::test]
    async fn udp_packets_are_decoded_counted_and_drained_on_shutdown() {
        let registry = Registry::new();
        let port = free_udp_port();
        let source = DogStatsDConfig {
            dogstatsd_port: port,
            dogstatsd_buffer_size: 64,
            ..config()
        }
        .build(&registry)
        .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let running = source.start(tx).await.unwrap();
        let stopped = running.listener_stopped();
        let addr = running.udp_addr().unwrap();
        assert_eq!(addr.port(), port);

        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"a:1|c\nb:2:3|d|#x,y", addr).unwrap();
        client.send_to(&[b'x'; 65], addr).unwrap(); // over the 64-byte buffer
        client.send_to(b"c:4|g", addr).unwrap();
        let batches = metrics(&mut rx, 4).await;
        assert_eq!(names(&batches), ["a", "b", "b", "c"]);
        assert!(batches.iter().all(|b| b.origin.is_none()));

        // Sent right before shutdown: still delivered by the drain.
        client.send_to(b"last:1|c", addr).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.shutdown().await;
        let mut rest = Vec::new();
        while let Some(b) = rx.recv().await {
            rest.push(b);
        }
        assert_eq!(names(&rest), ["last"]);
        assert_eq!(
            tokio::time::timeout(WAIT, stopped).await.unwrap(),
            ListenAddr::Udp(addr)
        );

        let v = |name: &str, labels: &[(&str, &str)]| registry.value(name, labels).unwrap();
        assert_eq!(v("adp_dogstatsd_packets", &[("listener", "udp")]), 4);
        assert_eq!(v("adp_dogstatsd_truncated_packets", &[("listener", "udp")]), 1);
        assert_eq!(v("adp_dogstatsd_decode_errors", &[("reason", "truncated")]), 1);
        assert_eq!(v("adp_dogstatsd_metrics", &[]), 5);
        assert_eq!(v("adp_dogstatsd_bytes", &[("listener", "udp")]), 18 + 65 + 5 + 8);
    }

    /// The memory limiter's back pressure reaches the sockets: the pacer is
    /// asked once per batch, and its wait comes before the batch leaves.
    #[tokio::test]
    async fn the_pacer_is_asked_before_each_batch_and_holds_it_back_for_its_wait() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let pause = Duration::from_millis(300);
        let source = DogStatsDConfig {
            dogstatsd_port: free_udp_port(),
            ..config()
        }
        .build(&Registry::new())
        .unwrap()
        .with_pacer(Pacer::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Some(pause)
        }));
        let (tx, mut rx) = mpsc::channel(16);
        let running = source.start(tx).await.unwrap();
        let addr = running.udp_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let sent = Instant::now();
            client.send_to(format!("{name}:1|c").as_bytes(), addr).unwrap();
            assert_eq!(names(&metrics(&mut rx, 1).await), [name]);
            assert!(sent.elapsed() >= pause, "batch {i} left after {:?}", sent.elapsed());
            assert_eq!(calls.load(Ordering::SeqCst), i + 1);
        }
        running.shutdown().await;
    }

    #[tokio::test]
    async fn a_listener_whose_receiver_is_gone_stops_and_says_which() {
        let source = DogStatsDConfig {
            dogstatsd_port: free_udp_port(),
            ..config()
        }
        .build(&Registry::new())
        .unwrap();
        let (tx, rx) = mpsc::channel(1);
        let running = source.start(tx).await.unwrap();
        let addr = running.udp_addr().unwrap();
        let stopped = running.listener_stopped();
        drop(rx);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"a:1|c", addr).unwrap();
        assert_eq!(
            tokio::time::timeout(WAIT, stopped).await.unwrap(),
            ListenAddr::Udp(addr)
        );
        running.shutdown().await;
    }

    /// Packets already waiting are decoded into one batch: at most
    /// `PACKETS_PER_BATCH`, and no more once half a buffer of bytes is in.
    #[tokio::test]
    async fn waiting_udp_packets_share_a_batch_up_to_the_packet_and_byte_limits() {
        for (buffer_size, expected) in [(8192, vec![32, 8]), (64, vec![4; 10])] {
            let port = free_udp_port();
            let source = DogStatsDConfig {
                dogstatsd_port: port,
                dogstatsd_buffer_size: buffer_size,
                ..config()
            }
            .build(&Registry::new())
            .unwrap();
            let (tx, mut rx) = mpsc::channel(64);
            let running = source.start(tx).await.unwrap();
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            // Sent before this single-threaded runtime first polls the listener.
            for i in 0..40 {
                client
                    .send_to(format!("m{i:02}:1|c\n").as_bytes(), running.udp_addr().unwrap())
                    .unwrap();
            }
            let batches = metrics(&mut rx, 40).await;
            let sizes: Vec<usize> = batches.iter().map(|b| b.metrics.len()).collect();
            assert_eq!(sizes, expected, "buffer {buffer_size}");
            let expected_names: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
            assert_eq!(names(&batches), expected_names, "in order");
            running.shutdown().await;
        }
    }

    #[tokio::test]
    async fn unix_datagrams_carry_the_senders_credentials() {
        let registry = Registry::new();
        let datagram = |p| DogStatsDConfig {
            dogstatsd_socket: Some(p),
            ..config()
        };
        let (_dir, path, running, mut rx) = start_on_socket("dsd.sock", datagram, &registry, 16).await;
        assert_eq!(running.listen_addrs(), [ListenAddr::UnixDatagram(path.clone())]);
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o722);
        }

        let client = StdUnixDatagram::unbound().unwrap();
        client.send_to(b"uds.metric:7|g|#b,a\n_sc|chk|0", &path).unwrap();
        let batches = metrics(&mut rx, 1).await;
        let b = &batches[0];
        assert_eq!(b.metrics.samples()[0].number(), 7.0);
        assert_eq!(b.service_checks.len(), 1);
        let creds = b.origin.expect("credentials");
        assert_eq!(creds.pid, i32::try_from(std::process::id()).unwrap());
        // SAFETY: getuid/getgid cannot fail.
        assert_eq!((creds.uid, creds.gid), unsafe { (libc::getuid(), libc::getgid()) });

        // A second source may not steal the live socket.
        let again = datagram(path.clone()).build(&registry).unwrap();
        let (tx2, _rx2) = mpsc::channel(1);
        let err = again.start(tx2).await.unwrap_err();
        assert!(err.to_string().contains("`dogstatsd_socket`"), "{err}");

        running.shutdown().await;
        assert!(!path.exists(), "socket file removed on shutdown");
    }

    #[tokio::test]
    async fn unix_streams_accept_newline_and_length_prefixed_framing() {
        let registry = Registry::new();
        let (_dir, path, running, mut rx) = start_on_socket("dsd-stream.sock", stream, &registry, 16).await;

        let mut newline = StdUnixStream::connect(&path).unwrap();
        newline.write_all(b"nl.one:1|c\nnl.two:").unwrap();
        newline.flush().unwrap();
        let first = metrics(&mut rx, 1).await;
        assert_eq!(names(&first), ["nl.one"]);
        newline.write_all(b"2|c\n").unwrap();
        assert_eq!(names(&metrics(&mut rx, 1).await), ["nl.two"]);

        let mut prefixed = StdUnixStream::connect(&path).unwrap();
        for payload in [&b"lp.one:1|c\nlp.two:2|c"[..], b"lp.three:3|c"] {
            prefixed
                .write_all(&u32::try_from(payload.len()).unwrap().to_le_bytes())
                .unwrap();
            prefixed.write_all(payload).unwrap();
        }
        let batches = metrics(&mut rx, 3).await;
        assert_eq!(names(&batches), ["lp.one", "lp.two", "lp.three"]);
        let creds = batches[0].origin.expect("peer credentials");
        assert_eq!(creds.pid, i32::try_from(std::process::id()).unwrap());

        running.shutdown().await;
        assert_eq!(
            registry.value("adp_dogstatsd_packets", &[("listener", "unix_stream")]),
            Some(4)
        );
    }

    #[tokio::test]
    async fn a_full_channel_applies_back_pressure_without_losing_stream_data() {
        let (_dir, path, running, mut rx) = start_on_socket("bp.sock", stream, &Registry::new(), 1).await;
        let writer = std::thread::spawn(move || {
            let mut s = StdUnixStream::connect(&path).unwrap();
            for i in 0..2000 {
                s.write_all(format!("bp:{i}|c\n").as_bytes()).unwrap();
            }
        });
        let mut sum = 0.0;
        let mut n = 0;
        while n < 2000 {
            let b = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
            for s in b.metrics.samples() {
                sum += s.number();
            }
            n += b.metrics.len();
        }
        writer.join().unwrap();
        assert_eq!(n, 2000);
        assert_eq!(sum, (0..2000).map(f64::from).sum::<f64>());
        running.shutdown().await;
    }
}
