//! End-to-end tests: real HTTP over loopback against a small hyper intake
//! whose answers each test scripts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adp_telemetry::Registry;
use adp_wire::{EncodedPayload, Endpoint};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;

/// How the test intake answers one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// Answer with this status; 2xx requests are recorded as received.
    Status(u16),
    /// Answer 200 after this delay, without recording (the client gave up).
    Hang(Duration),
    /// Record, then answer 200 after this delay (a slow but working intake).
    Slow(Duration),
}

#[derive(Clone, Debug)]
struct Received {
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

type Script = Box<dyn Fn(u64, &Received) -> Reply + Send + Sync>;

/// A loopback HTTP intake recording what it accepted. API key checks
/// (`GET /api/v1/validate`) are answered and recorded apart, so that they
/// count neither as attempts nor as received payloads.
struct Intake {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<AtomicU64>,
    script: Arc<Mutex<Script>>,
    validations: Arc<Mutex<Vec<Received>>>,
    validate_reply: Arc<Mutex<Reply>>,
    /// Payload requests being answered now, and the most at once.
    inflight: Arc<(AtomicU64, AtomicU64)>,
}

impl Intake {
    async fn start(script: impl Fn(u64, &Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicU64::new(0));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        let validations = Arc::new(Mutex::new(Vec::new()));
        let validate_reply = Arc::new(Mutex::new(Reply::Status(200)));
        let (r, a, s) = (Arc::clone(&received), Arc::clone(&attempts), Arc::clone(&script));
        let (vr, vs) = (Arc::clone(&validations), Arc::clone(&validate_reply));
        let inflight = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let gauge = Arc::clone(&inflight);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, a, s) = (Arc::clone(&r), Arc::clone(&a), Arc::clone(&s));
                let (vr, vs) = (Arc::clone(&vr), Arc::clone(&vs));
                let gauge = Arc::clone(&gauge);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (r, a, s) = (Arc::clone(&r), Arc::clone(&a), Arc::clone(&s));
                        let (vr, vs) = (Arc::clone(&vr), Arc::clone(&vs));
                        let gauge = Arc::clone(&gauge);
                        async move {
                            let validation = req.uri().path() == "/api/v1/validate";
                            if !validation {
                                let now = gauge.0.fetch_add(1, Ordering::SeqCst) + 1;
                                gauge.1.fetch_max(now, Ordering::SeqCst);
                            }
                            let uri = req.uri().to_string();
                            let headers = req.headers().clone();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let got = Received { uri, headers, body };
                            let reply = if validation {
                                vr.lock().unwrap().push(got.clone());
                                *vs.lock().unwrap()
                            } else {
                                let n = a.fetch_add(1, Ordering::SeqCst);
                                (s.lock().unwrap())(n, &got)
                            };
                            if !validation && matches!(reply, Reply::Status(200..=299) | Reply::Slow(_)) {
                                r.lock().unwrap().push(got);
                            }
                            let status = match reply {
                                Reply::Status(code) => code,
                                Reply::Hang(d) | Reply::Slow(d) => {
                                    tokio::time::sleep(d).await;
                                    200
                                }
                            };
                            if !validation {
                                gauge.0.fetch_sub(1, Ordering::SeqCst);
                            }
                            let response = Response::builder()
                                .status(StatusCode::from_u16(status).unwrap())
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            attempts,
            script,
            validations,
            validate_reply,
            inflight,
        }
    }

    /// The most payload requests the intake was answering at once.
    fn max_inflight(&self) -> u64 {
        self.inflight.1.load(Ordering::SeqCst)
    }

    /// How `GET /api/v1/validate` is answered from now on (200 by default).
    fn set_validate_reply(&self, reply: Reply) {
        *self.validate_reply.lock().unwrap() = reply;
    }

    /// The API key checks received so far.
    fn validations(&self) -> Vec<Received> {
        self.validations.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_script(&self, script: impl Fn(u64, &Received) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Box::new(script);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect()
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

fn payload(endpoint: Endpoint, body: &str) -> EncodedPayload {
    EncodedPayload {
        endpoint,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: endpoint.content_type(),
        content_encoding: "zstd",
        items: 1,
    }
}

/// A 100-byte series payload that starts with `tag`.
fn hundred_bytes(tag: &str) -> EncodedPayload {
    payload(Endpoint::Series, &format!("{tag}{}", "x".repeat(100 - tag.len())))
}

/// [`config`] with a retry queue of `bytes`.
fn config_with_queue(intake: &Intake, bytes: u64) -> ForwarderConfig {
    ForwarderConfig {
        forwarder_retry_queue_payloads_max_size: bytes,
        ..config(intake)
    }
}

/// A directory for disk storage, and an intake that answers 503 to every payload.
async fn storage_and_refusing_intake() -> (tempfile::TempDir, Intake) {
    (
        tempfile::tempdir().unwrap(),
        Intake::start(|_, _| Reply::Status(503)).await,
    )
}

/// [`config`] with 1 MiB of disk storage in `dir`.
fn config_with_storage(intake: &Intake, dir: &Path) -> ForwarderConfig {
    ForwarderConfig {
        forwarder_storage_max_size_in_bytes: 1 << 20,
        forwarder_storage_path: dir.to_owned(),
        ..config(intake)
    }
}

/// [`config`] with `n` workers.
fn config_with_workers(intake: &Intake, n: usize) -> ForwarderConfig {
    ForwarderConfig {
        forwarder_num_workers: n,
        ..config(intake)
    }
}

/// A local port nothing listens on: bound, then closed.
async fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(intake: &Intake) -> ForwarderConfig {
    ForwarderConfig {
        api_key: "main-key".into(),
        dd_url: Some(intake.url()),
        forwarder_timeout: Duration::from_secs(5),
        forwarder_backoff_base: Duration::from_millis(10),
        forwarder_backoff_max: Duration::from_millis(40),
        forwarder_stop_timeout: Duration::from_secs(5),
        agent_version: "7.99.0".into(),
        ..Default::default()
    }
}

/// A running forwarder with its shutdown trigger.
struct Running {
    handle: ForwarderHandle,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<ShutdownReport>,
}

impl Running {
    /// [`Running::start`] with a registry of its own, returned beside it.
    fn start_with_registry(config: ForwarderConfig) -> (Self, Registry) {
        let registry = Registry::new();
        (Self::start(config, &registry), registry)
    }

    fn start(config: ForwarderConfig, registry: &Registry) -> Self {
        Self::run(Forwarder::new(config, registry).unwrap())
    }

    /// Spawns `forwarder`'s run, which ends when [`Running::stop`] says so.
    fn run(forwarder: Forwarder) -> Self {
        let handle = forwarder.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(forwarder.run(async {
            let _ = stopped.await;
        }));
        Self { handle, stop, task }
    }

    async fn send(&self, p: EncodedPayload) {
        self.handle.send(p).await.unwrap();
    }

    async fn stop(self) -> ShutdownReport {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("shutdown is bounded")
            .unwrap()
    }
}

/// Polls `condition` every 5 ms for up to 10 s.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> i64 {
    registry
        .value(name, labels)
        .unwrap_or_else(|| panic!("{name} {labels:?} not registered"))
}

fn retry_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "retry") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_reach_every_endpoint_and_key_with_the_agent_headers() {
    let intake = Intake::start(|_, _| Reply::Status(202)).await;
    let mut c = config(&intake);
    // The same server under another name is a second destination.
    let other = format!("http://localhost:{}/", intake.addr.port());
    c.additional_endpoints
        .insert(other, vec!["extra-1".into(), "extra-2".into()]);
    let (f, registry) = Running::start_with_registry(c);
    f.send(payload(Endpoint::Series, "series-body")).await;
    f.send(payload(Endpoint::CheckRun, "[]")).await;
    wait_for("6 copies", || intake.received().len() == 6).await;
    let report = f.stop().await;
    assert_eq!(report, ShutdownReport::default());

    let received = intake.received();
    let mut keys: Vec<(String, String)> = received
        .iter()
        .map(|r| (r.uri.clone(), r.headers["dd-api-key"].to_str().unwrap().to_owned()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("/api/v1/check_run", "extra-1"),
            ("/api/v1/check_run", "extra-2"),
            ("/api/v1/check_run", "main-key"),
            ("/api/v2/series", "extra-1"),
            ("/api/v2/series", "extra-2"),
            ("/api/v2/series", "main-key"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    for r in &received {
        assert_eq!(r.headers["dd-agent-version"], "7.99.0");
        assert_eq!(r.headers["user-agent"], "datadog-agent/7.99.0");
        assert_eq!(r.headers["content-encoding"], "zstd");
        if r.uri == "/api/v2/series" {
            assert_eq!(&r.body[..], b"series-body");
            assert_eq!(r.headers["content-type"], "application/x-protobuf");
            assert_eq!(r.headers["dd-agent-payload"], "v5.0.141");
        } else {
            assert_eq!(r.headers["content-type"], "application/json");
            assert!(!r.headers.contains_key("dd-agent-payload"));
        }
    }
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_received", &[("endpoint", "series")]),
        1
    );
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_sent", &[("endpoint", "series")]),
        3
    );
    assert_eq!(
        value(&registry, "adp_forwarder_bytes_sent", &[("endpoint", "series")]),
        3 * 11
    );
    assert_eq!(value(&registry, "adp_forwarder_retries", &[("endpoint", "series")]), 0);
    assert_eq!(value(&registry, "adp_forwarder_retry_queue_bytes", &[]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_ends_with_every_payload_delivered_exactly_once() {
    // 503 for the first 25 attempts, then healthy.
    let intake = Intake::start(|n, _| Reply::Status(if n < 25 { 503 } else { 200 })).await;
    let (f, registry) = Running::start_with_registry(config(&intake));
    for i in 0..40 {
        f.send(payload(Endpoint::Series, &format!("p{i}"))).await;
    }
    wait_for("40 payloads", || intake.received().len() >= 40).await;
    let report = f.stop().await;
    assert_eq!(report, ShutdownReport::default());
    let mut bodies = intake.bodies();
    bodies.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each payload exactly once");
    assert_eq!(value(&registry, "adp_forwarder_retries", &[("endpoint", "series")]), 25);
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_sent", &[("endpoint", "series")]),
        40
    );
    assert_eq!(intake.attempts(), 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_400_403_and_413_are_dropped_without_retry_but_404_is_retried() {
    let intake = Intake::start(|_, r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        match body.as_str() {
            "bad" => Reply::Status(400),
            "forbidden" => Reply::Status(403),
            "huge" => Reply::Status(413),
            _ => Reply::Status(200),
        }
    })
    .await;
    let (f, registry) = Running::start_with_registry(config(&intake));
    for body in ["bad", "forbidden", "huge", "fine"] {
        f.send(payload(Endpoint::Sketches, body)).await;
    }
    wait_for("the good payload", || intake.received().len() == 1).await;
    // A 404 (first attempt only) is retried, as in the Agent.
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    intake.set_script(move |_, _| {
        Reply::Status(if s.fetch_add(1, Ordering::SeqCst) == 0 {
            404
        } else {
            200
        })
    });
    f.send(payload(Endpoint::Sketches, "after-404")).await;
    wait_for("the 404 payload", || intake.received().len() == 2).await;
    f.stop().await;
    assert_eq!(
        intake.attempts(),
        6,
        "400/403/413 once each, fine once, 404 then success"
    );
    assert_eq!(intake.bodies(), ["fine", "after-404"]);
    for reason in ["status_400", "status_403", "status_413"] {
        assert_eq!(
            value(&registry, "adp_forwarder_payloads_dropped", &[("reason", reason)]),
            1,
            "{reason}"
        );
    }
    assert_eq!(
        value(&registry, "adp_forwarder_retries", &[("endpoint", "sketches")]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_is_retried() {
    let intake = Intake::start(|n, _| {
        if n == 0 {
            Reply::Hang(Duration::from_secs(10))
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let c = ForwarderConfig {
        forwarder_timeout: Duration::from_secs(1),
        ..config(&intake)
    };
    let (f, registry) = Running::start_with_registry(c);
    f.send(payload(Endpoint::Series, "slow")).await;
    wait_for("the retried payload", || intake.received().len() == 1).await;
    f.stop().await;
    assert_eq!(intake.bodies(), ["slow"]);
    assert_eq!(value(&registry, "adp_forwarder_retries", &[("endpoint", "series")]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_retried_until_the_intake_comes_up() {
    // Reserve a port, close it, and start the intake there later.
    let port = closed_port().await;
    let c = ForwarderConfig {
        api_key: "k".into(),
        dd_url: Some(format!("http://127.0.0.1:{port}")),
        forwarder_backoff_base: Duration::from_millis(10),
        forwarder_backoff_max: Duration::from_millis(40),
        ..Default::default()
    };
    let (f, registry) = Running::start_with_registry(c);
    f.send(payload(Endpoint::Events, "e")).await;
    wait_for("a failed attempt", || {
        value(&registry, "adp_forwarder_retries", &[("endpoint", "events")]) >= 2
    })
    .await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        });
        let _ = tx.send(());
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), service)
            .await;
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    wait_for("delivery", || {
        value(&registry, "adp_forwarder_payloads_sent", &[("endpoint", "events")]) == 1
    })
    .await;
    assert_eq!(f.stop().await, ShutdownReport::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_retry_queue_evicts_the_oldest_payloads() {
    let intake = Intake::start(|_, _| Reply::Status(503)).await;
    let (f, registry) = Running::start_with_registry(config_with_queue(&intake, 300));
    for i in 0..5 {
        f.send(hundred_bytes(&i.to_string())).await;
        // One at a time, so the order of arrival is the order of age.
        wait_for("queued", || {
            value(&registry, "adp_forwarder_payloads_received", &[("endpoint", "series")]) == i + 1
        })
        .await;
    }
    wait_for("two evictions", || {
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "evicted")]) == 2
    })
    .await;
    assert!(value(&registry, "adp_forwarder_retry_queue_bytes", &[]) <= 300);
    intake.set_script(|_, _| Reply::Status(200));
    wait_for("three deliveries", || intake.received().len() == 3).await;
    f.stop().await;
    let mut firsts: Vec<char> = intake.bodies().iter().map(|b| b.chars().next().unwrap()).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, ['2', '3', '4'], "payloads 0 and 1 were the oldest");
    let (f, too_big) = Running::start_with_registry(config_with_queue(&intake, 10));
    f.send(payload(Endpoint::Series, "more than ten bytes")).await;
    wait_for("too_large", || {
        value(&too_big, "adp_forwarder_payloads_dropped", &[("reason", "too_large")]) == 1
    })
    .await;
    f.stop().await;
}

/// A flush can hand over more than the retry queue holds at once; while the
/// intake accepts, the excess waits in the input buffer instead of evicting
/// (it once cost the heavy benchmark payloads with a healthy intake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_retry_queue_is_delivered_while_the_intake_accepts() {
    let intake = Intake::start(|_, _| Reply::Status(200)).await;
    // Not a multiple of the payload size: the queue is under its bound right
    // after an eviction, which once kept admitting and evicting in turn.
    let (f, registry) = Running::start_with_registry(config_with_queue(&intake, 350));
    // 20 × 100 bytes submitted back to back: far faster than requests complete.
    for i in 0..20 {
        f.send(hundred_bytes(&format!("{i:02}"))).await;
    }
    wait_for("20 deliveries", || intake.received().len() == 20).await;
    assert_eq!(f.stop().await, ShutdownReport::default());
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "evicted")]),
        0
    );
    let mut firsts: Vec<String> = intake.bodies().iter().map(|b| b[..2].to_owned()).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, (0..20).map(|i| format!("{i:02}")).collect::<Vec<_>>());
}

/// With disk storage, a payload larger than the memory queue on its own is
/// stored, then replayed and sent; it used to bounce between the queue bound
/// and the disk forever (every replay stored it again as `too_large`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_larger_than_the_memory_queue_is_delivered_through_disk_storage() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|n, _| Reply::Status(if n == 0 { 503 } else { 200 })).await;
    let c = ForwarderConfig {
        forwarder_retry_queue_payloads_max_size: 10,
        ..config_with_storage(&intake, dir.path())
    };
    let (f, registry) = Running::start_with_registry(c);
    f.send(payload(Endpoint::Series, "more than ten bytes")).await;
    wait_for("delivery after one failure", || intake.received().len() == 1).await;
    assert_eq!(f.stop().await, ShutdownReport::default());
    assert_eq!(intake.bodies(), ["more than ten bytes"]);
    assert_eq!(intake.attempts(), 2, "one 503, then accepted");
    // Stored on arrival (too large for memory), and again after the 503.
    assert_eq!(value(&registry, "adp_forwarder_payloads_persisted", &[]), 2);
    assert_eq!(value(&registry, "adp_forwarder_payloads_replayed", &[]), 2);
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "too_large")]),
        0
    );
    assert!(retry_files(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_payloads_are_persisted_at_shutdown_and_replayed_after_a_restart() {
    let (dir, intake) = storage_and_refusing_intake().await;
    let c = ForwarderConfig {
        forwarder_stop_timeout: Duration::from_millis(100),
        // Memory holds two payloads; the third overflows to disk while running.
        forwarder_retry_queue_payloads_max_size: 2 * 6,
        ..config_with_storage(&intake, dir.path())
    };
    let (f, registry) = Running::start_with_registry(c.clone());
    for i in 0..5 {
        f.send(payload(Endpoint::Series, &format!("body-{i}"))).await;
    }
    wait_for("overflow to disk", || {
        value(&registry, "adp_forwarder_payloads_persisted", &[]) >= 3
    })
    .await;
    let report = f.stop().await;
    assert_eq!(report.dropped, 0);
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_persisted", &[]),
        5,
        "3 overflowed + 2 at shutdown"
    );
    assert_eq!(report.persisted, 2);
    assert_eq!(retry_files(dir.path()).len(), 5);
    assert!(value(&registry, "adp_forwarder_disk_bytes", &[]) > 0);
    assert!(intake.received().is_empty());
    // No temporary files remain next to the stored ones.
    for sub in std::fs::read_dir(dir.path()).unwrap() {
        for e in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            assert!(!e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
        }
    }

    intake.set_script(|_, _| Reply::Status(200));
    let (f, restarted) = Running::start_with_registry(c);
    wait_for("replay", || intake.received().len() == 5).await;
    assert_eq!(f.stop().await, ShutdownReport::default());
    let mut bodies = intake.bodies();
    bodies.sort();
    assert_eq!(bodies, (0..5).map(|i| format!("body-{i}")).collect::<Vec<_>>());
    assert_eq!(value(&restarted, "adp_forwarder_payloads_replayed", &[]), 5);
    assert_eq!(value(&restarted, "adp_forwarder_disk_bytes", &[]), 0);
    assert!(retry_files(dir.path()).is_empty());
    // Replayed payloads keep their headers and key.
    assert!(intake
        .received()
        .iter()
        .all(|r| r.headers["dd-api-key"] == "main-key" && r.headers["content-encoding"] == "zstd"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_metadata_is_retried_but_never_written_to_disk() {
    let (dir, intake) = storage_and_refusing_intake().await;
    let c = ForwarderConfig {
        forwarder_stop_timeout: Duration::from_millis(50),
        // Memory holds one payload: the second one evicts the first.
        forwarder_retry_queue_payloads_max_size: 40,
        ..config_with_storage(&intake, dir.path())
    };
    let (f, registry) = Running::start_with_registry(c);
    f.send(payload(Endpoint::Intake, r#"{"apiKey":"main-key","host":"h"}"#))
        .await;
    wait_for("host metadata retried", || intake.attempts() >= 3).await;
    f.send(payload(Endpoint::Series, "series body that evicts")).await;
    wait_for("the metadata evicted", || {
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "evicted")]) == 1
    })
    .await;
    f.send(payload(Endpoint::Intake, r#"{"apiKey":"main-key","again":1}"#))
        .await;
    let report = f.stop().await;
    // The series went to disk (evicted by the second metadata payload, or at
    // shutdown); the second metadata payload was dropped at shutdown.
    assert_eq!(report.dropped, 1, "{report:?}");
    assert_eq!(value(&registry, "adp_forwarder_payloads_persisted", &[]), 1);
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "shutdown")]),
        1
    );
    let files = retry_files(dir.path());
    assert_eq!(files.len(), 1);
    for file in files {
        let data = std::fs::read(file).unwrap();
        assert!(!data.windows(8).any(|w| w == b"main-key"), "no stored API key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_stored_payload_is_skipped_and_the_rest_replayed() {
    let (dir, intake) = storage_and_refusing_intake().await;
    let c = ForwarderConfig {
        forwarder_stop_timeout: Duration::from_millis(50),
        ..config_with_storage(&intake, dir.path())
    };
    let (f, registry) = Running::start_with_registry(c.clone());
    f.send(payload(Endpoint::CheckRun, "first")).await;
    f.send(payload(Endpoint::CheckRun, "second")).await;
    wait_for("both queued", || {
        value(
            &registry,
            "adp_forwarder_payloads_received",
            &[("endpoint", "check_run")],
        ) == 2
    })
    .await;
    assert_eq!(f.stop().await.persisted, 2);
    let files = retry_files(dir.path());
    assert_eq!(files.len(), 2);
    let data = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &data[..data.len() - 3]).unwrap();

    intake.set_script(|_, _| Reply::Status(200));
    let (f, restarted) = Running::start_with_registry(c);
    wait_for("replay", || intake.received().len() == 1).await;
    f.stop().await;
    assert_eq!(
        value(&restarted, "adp_forwarder_payloads_dropped", &[("reason", "corrupted")]),
        1
    );
    assert_eq!(intake.bodies().len(), 1);
    assert!(retry_files(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_storage_shutdown_reports_what_it_dropped() {
    let intake = Intake::start(|_, _| Reply::Status(500)).await;
    let c = ForwarderConfig {
        forwarder_stop_timeout: Duration::from_millis(50),
        ..config(&intake)
    };
    let (f, registry) = Running::start_with_registry(c);
    for i in 0..3 {
        f.send(payload(Endpoint::Series, &format!("{i}"))).await;
    }
    wait_for("attempts", || intake.attempts() >= 1).await;
    let started = tokio::time::Instant::now();
    let report = f.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain deadline bounds shutdown"
    );
    assert_eq!(
        report,
        ShutdownReport {
            persisted: 0,
            dropped: 3
        }
    );
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_dropped", &[("reason", "shutdown")]),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_what_was_accepted_before_it() {
    let intake = Intake::start(|_, _| Reply::Status(200)).await;
    let f = Running::start(config(&intake), &Registry::new());
    for i in 0..50 {
        f.send(payload(Endpoint::Series, &format!("{i}"))).await;
    }
    let handle = f.handle.clone();
    assert_eq!(f.stop().await, ShutdownReport::default());
    assert_eq!(intake.received().len(), 50);
    let err = handle.send(payload(Endpoint::Series, "late")).await.unwrap_err();
    assert!(matches!(err, SubmitError::Closed(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_send_reports_a_full_buffer() {
    let intake = Intake::start(|_, _| Reply::Status(200)).await;
    let c = ForwarderConfig {
        forwarder_high_prio_buffer_size: 1,
        ..config(&intake)
    };
    let forwarder = Forwarder::new(c, &Registry::new()).unwrap();
    let handle = forwarder.handle();
    handle.try_send(payload(Endpoint::Series, "a")).unwrap();
    let err = handle.try_send(payload(Endpoint::Series, "b")).unwrap_err();
    assert!(matches!(err, SubmitError::Full(_)));
    assert_eq!(&err.into_payload().body[..], b"b");
    drop(handle);
    // Dropping every handle also shuts the forwarder down, after delivering "a".
    let report = tokio::time::timeout(Duration::from_secs(10), forwarder.run(std::future::pending()))
        .await
        .unwrap();
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(intake.bodies(), ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_goes_through_the_proxy_in_absolute_form() {
    // The "proxy" is a recording server: hyper parses the absolute-form target.
    let proxy = Intake::start(|_, _| Reply::Status(200)).await;
    let mut c = ForwarderConfig {
        api_key: "k".into(),
        dd_url: Some("http://intake.example:8080".into()),
        forwarder_backoff_base: Duration::from_millis(10),
        forwarder_backoff_max: Duration::from_millis(40),
        ..Default::default()
    };
    c.proxy.http = Some(proxy.url());
    // Excluded hosts would be connected directly (and fail to resolve).
    c.proxy.no_proxy = vec!["other.example".into()];
    let f = Running::start(c, &Registry::new());
    f.send(payload(Endpoint::Series, "via-proxy")).await;
    wait_for("proxied request", || proxy.received().len() == 1).await;
    f.stop().await;
    let r = &proxy.received()[0];
    assert_eq!(r.uri, "http://intake.example:8080/api/v2/series");
    assert_eq!(&r.body[..], b"via-proxy");
}

#[test]
fn forwarder_new_rejects_bad_configuration_with_the_key() {
    let err = Forwarder::new(ForwarderConfig::default(), &Registry::new())
        .err()
        .unwrap();
    assert!(err.to_string().contains("api_key"), "{err}");
    let c = ForwarderConfig {
        api_key: "bad\nkey".into(),
        ..Default::default()
    };
    let err = Forwarder::new(c, &Registry::new()).err().unwrap();
    assert!(err.to_string().contains("`api_key`"), "{err}");
    let c = ForwarderConfig {
        api_key: "k".into(),
        forwarder_storage_max_size_in_bytes: 1,
        forwarder_storage_path: "/proc/forbidden/storage".into(),
        ..Default::default()
    };
    let err = Forwarder::new(c, &Registry::new()).err().unwrap();
    assert!(err.to_string().contains("forwarder_storage_path"), "{err}");
}

/// Log output captured from the current thread (tests using it run on a
/// current-thread runtime, so every task logs here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines at `level` containing `message`.
    fn count(&self, level: &str, message: &str) -> usize {
        self.text()
            .lines()
            .filter(|l| l.contains(level) && l.contains(message))
            .count()
    }
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// An intake that accepts payloads (202) and answers key checks with `validate`.
async fn accepting_intake(validate: u16) -> Intake {
    let intake = Intake::start(|_, _| Reply::Status(202)).await;
    intake.set_validate_reply(Reply::Status(validate));
    intake
}

/// [`config`] with the API key [`KEY`].
fn key_config(intake: &Intake) -> ForwarderConfig {
    ForwarderConfig {
        api_key: KEY.into(),
        ..config(intake)
    }
}

async fn wait_status(rx: &mut watch::Receiver<ApiKeyStatus>, want: ApiKeyStatus) {
    let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s == want))
        .await
        .map(|r| r.is_ok());
    assert_eq!(waited, Ok(true), "no {want:?} within 10 s (now {:?})", *rx.borrow());
}

/// Starts a forwarder and returns it with its API key status.
fn start_validating(c: ForwarderConfig) -> (Running, watch::Receiver<ApiKeyStatus>) {
    let forwarder = Forwarder::new(c, &Registry::new()).unwrap();
    let status = forwarder.api_key_status();
    (Running::run(forwarder), status)
}

/// A forwarder with [`KEY`], started against an intake that accepts payloads
/// and answers key checks with `validate`, once it holds the key for valid.
async fn valid_key_against(validate: u16) -> (Intake, Running) {
    let intake = accepting_intake(validate).await;
    let (f, mut status) = start_validating(key_config(&intake));
    wait_status(&mut status, ApiKeyStatus::Valid).await;
    (intake, f)
}

#[tokio::test]
async fn the_api_key_is_validated_at_start_as_the_agent_sends_it() {
    let (logs, _guard) = Logs::capture();
    let (intake, f) = valid_key_against(200).await;
    f.send(payload(Endpoint::Series, "s")).await;
    wait_for("the payload", || intake.received().len() == 1).await;
    f.stop().await;
    let checks = intake.validations();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].uri, format!("/api/v1/validate?api_key={KEY}"));
    assert!(
        !checks[0].headers.contains_key("dd-api-key"),
        "the key goes in the query only"
    );
    assert_eq!(checks[0].headers["user-agent"], "datadog-agent/7.99.0");
    let domain = intake.url();
    assert_eq!(
        logs.count(
            "DEBUG",
            &format!("api_key '{}cdef' for domain {domain} is valid", "*".repeat(28))
        ),
        1,
        "{}",
        logs.text()
    );
    assert_eq!(logs.count("ERROR", "No valid api key found"), 0);
    assert!(!logs.text().contains(KEY), "the key was logged:\n{}", logs.text());
}

#[tokio::test]
async fn a_refused_key_is_reported_as_the_agent_reports_it_and_payloads_still_flow() {
    let (logs, _guard) = Logs::capture();
    let intake = accepting_intake(403).await;
    let (f, mut status) = start_validating(ForwarderConfig {
        forwarder_apikey_validation_interval: Duration::from_millis(200),
        ..key_config(&intake)
    });
    wait_status(&mut status, ApiKeyStatus::Invalid).await;
    f.send(payload(Endpoint::Series, "still sent")).await;
    wait_for("the payload", || intake.received().len() == 1).await;
    // Re-checked every interval: a key that becomes valid makes it healthy again.
    intake.set_validate_reply(Reply::Status(200));
    wait_status(&mut status, ApiKeyStatus::Valid).await;
    f.stop().await;
    let text = logs.text();
    let shown = format!("{}cdef", "*".repeat(28));
    assert!(
        logs.count(
            "WARN",
            &format!("api_key '{shown}' for domain {} is invalid", intake.url())
        ) >= 1,
        "{text}"
    );
    assert!(
        logs.count("ERROR", "No valid api key found, reporting the forwarder as unhealthy.") >= 1,
        "{text}"
    );
    assert!(intake.validations().len() >= 2, "checked again after the interval");
    assert!(!text.contains(KEY), "the key was logged:\n{text}");
}

#[tokio::test]
async fn a_check_that_cannot_tell_assumes_a_valid_key() {
    let (logs, _guard) = Logs::capture();
    // The validation endpoint answers 500.
    let (_intake, f) = valid_key_against(500).await;
    f.stop().await;
    assert_eq!(
        logs.count(
            "DEBUG",
            "could not be validated: unexpected response code from the apikey validation endpoint: 500"
        ),
        1,
        "{}",
        logs.text()
    );
    // Nothing listens: the endpoint is unreachable.
    let port = closed_port().await;
    let (f, mut status) = start_validating(ForwarderConfig {
        api_key: KEY.into(),
        dd_url: Some(format!("http://127.0.0.1:{port}")),
        ..Default::default()
    });
    wait_status(&mut status, ApiKeyStatus::Valid).await;
    let _ = f.stop.send(());
    f.task.abort();
    let text = logs.text();
    assert!(
        text.lines().any(|l| l.contains("DEBUG")
            && l.contains(&format!("for domain http://127.0.0.1:{port} could not be validated: "))
            && l.contains("Connection refused")),
        "{text}"
    );
    assert_eq!(logs.count("ERROR", "No valid api key found"), 0, "{text}");
    assert!(!text.contains(KEY), "the key was logged:\n{text}");
}

#[tokio::test]
async fn the_agents_fake_key_and_an_invalid_interval_are_handled_as_the_agent_does() {
    let (logs, _guard) = Logs::capture();
    let intake = Intake::start(|_, _| Reply::Status(202)).await;
    let (f, mut status) = start_validating(ForwarderConfig {
        api_key: "00000000000000000000000000000000".into(),
        forwarder_apikey_validation_interval: Duration::ZERO,
        ..config(&intake)
    });
    wait_status(&mut status, ApiKeyStatus::Valid).await;
    f.stop().await;
    assert!(intake.validations().is_empty(), "the fake key is never sent");
    assert_eq!(
        logs.count(
            "WARN",
            "'forwarder_apikey_validation_interval' set to invalid value (0), defaulting to 60 minute(s)"
        ),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_app_hosts_get_the_version_prefix_and_keys_are_checked_at_the_api_host() {
    // A plain-HTTP proxy (the recording intake) sees the absolute request URL;
    // an HTTPS proxy records the CONNECT target of the validation and refuses it.
    let proxy = Intake::start(|_, _| Reply::Status(202)).await;
    let connect = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connect_addr = connect.local_addr().unwrap();
    let (seen_tx, seen_rx) = oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, head) = crate::client::tests::read_connect_head(&connect).await;
        let _ = seen_tx.send(head);
        let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
    });
    let mut c = ForwarderConfig {
        api_key: KEY.into(),
        dd_url: Some("http://app.datadoghq.com".into()),
        agent_version: "7.99.1".into(),
        ..Default::default()
    };
    c.proxy.http = Some(proxy.url());
    c.proxy.https = Some(format!("http://{connect_addr}"));
    c.additional_endpoints
        .insert("http://custom.example:8080".into(), vec!["other-key".into()]);
    let forwarder = Forwarder::new(c, &Registry::new()).unwrap();
    assert_eq!(
        forwarder.endpoints(),
        ["http://7-99-1-app.agent.datadoghq.com", "http://custom.example:8080"]
    );
    let mut status = forwarder.api_key_status();
    let f = Running::run(forwarder);
    for endpoint in [
        Endpoint::Series,
        Endpoint::Sketches,
        Endpoint::CheckRun,
        Endpoint::Events,
    ] {
        f.send(payload(endpoint, "p")).await;
    }
    wait_for("8 proxied requests", || proxy.received().len() == 8).await;
    wait_status(&mut status, ApiKeyStatus::Valid).await;
    f.stop().await;
    let mut uris: Vec<String> = proxy.received().iter().map(|r| r.uri.clone()).collect();
    uris.sort();
    assert_eq!(
        uris,
        [
            "http://7-99-1-app.agent.datadoghq.com/api/beta/sketches",
            "http://7-99-1-app.agent.datadoghq.com/api/v1/check_run",
            "http://7-99-1-app.agent.datadoghq.com/api/v1/events_batch",
            "http://7-99-1-app.agent.datadoghq.com/api/v2/series",
            "http://custom.example:8080/api/beta/sketches",
            "http://custom.example:8080/api/v1/check_run",
            "http://custom.example:8080/api/v1/events_batch",
            "http://custom.example:8080/api/v2/series",
        ]
    );
    // The Datadog destination's key is checked at https://api.<site> (through
    // the HTTPS proxy, which saw only the host), the custom one where it is.
    let head = tokio::time::timeout(Duration::from_secs(10), seen_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("CONNECT api.datadoghq.com:443 HTTP/1.1\r\n"), "{head}");
    assert!(!head.contains(KEY));
    let checks: Vec<String> = proxy.validations().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(checks, ["http://custom.example:8080/api/v1/validate?api_key=other-key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_send_concurrently_and_deliver_every_payload_exactly_once() {
    let intake = Intake::start(|_, _| Reply::Slow(Duration::from_millis(300))).await;
    let (f, registry) = Running::start_with_registry(config_with_workers(&intake, 4));
    let started = tokio::time::Instant::now();
    for i in 0..40 {
        f.send(payload(Endpoint::Series, &format!("p{i:02}"))).await;
    }
    wait_for("40 payloads", || intake.received().len() >= 40).await;
    let elapsed = started.elapsed();
    assert_eq!(f.stop().await, ShutdownReport::default());
    assert_eq!(intake.max_inflight(), 4, "four requests at once, never more");
    let mut bodies = intake.bodies();
    bodies.sort();
    assert_eq!(bodies, (0..40).map(|i| format!("p{i:02}")).collect::<Vec<_>>());
    // One at a time this takes at least 40 × 300 ms = 12 s; four at once, 3 s.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(
        value(&registry, "adp_forwarder_payloads_sent", &[("endpoint", "series")]),
        40
    );

    // One worker (the default): one request at a time, in submission order.
    let intake = Intake::start(|_, _| Reply::Slow(Duration::from_millis(20))).await;
    let f = Running::start(config(&intake), &Registry::new());
    for i in 0..10 {
        f.send(payload(Endpoint::Series, &format!("q{i}"))).await;
    }
    wait_for("10 payloads", || intake.received().len() >= 10).await;
    f.stop().await;
    assert_eq!(intake.max_inflight(), 1);
    assert_eq!(intake.bodies(), (0..10).map(|i| format!("q{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_several_workers_ends_with_every_payload_delivered_exactly_once() {
    let intake = Intake::start(|n, _| {
        if n < 25 {
            Reply::Status(503)
        } else {
            Reply::Slow(Duration::from_millis(10))
        }
    })
    .await;
    let (f, registry) = Running::start_with_registry(config_with_workers(&intake, 4));
    for i in 0..40 {
        f.send(payload(Endpoint::Sketches, &format!("p{i}"))).await;
    }
    wait_for("40 payloads", || intake.received().len() >= 40).await;
    assert_eq!(f.stop().await, ShutdownReport::default());
    let mut bodies = intake.bodies();
    bodies.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each payload exactly once");
    assert_eq!(intake.attempts(), 65);
    assert_eq!(
        value(&registry, "adp_forwarder_retries", &[("endpoint", "sketches")]),
        25
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_the_shutdown_deadline_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start(|_, _| Reply::Hang(Duration::from_secs(30))).await;
    let registry = Registry::new();
    let f = Running::start(
        ForwarderConfig {
            forwarder_num_workers: 3,
            forwarder_stop_timeout: Duration::from_millis(200),
            ..config_with_storage(&intake, dir.path())
        },
        &registry,
    );
    for i in 0..5 {
        f.send(payload(Endpoint::Series, &format!("p{i}"))).await;
    }
    wait_for("3 requests in flight", || intake.attempts() == 3).await;
    let report = f.stop().await;
    assert_eq!(
        report,
        ShutdownReport {
            persisted: 5,
            dropped: 0
        }
    );
    assert_eq!(retry_files(dir.path()).len(), 5);
}
