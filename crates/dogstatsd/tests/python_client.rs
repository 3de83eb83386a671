//! End to end with the official Python client: the PyPI `datadog` package's
//! `DogStatsd` sends every kind of message over UDP, a Unix datagram socket
//! and a Unix stream socket (where the client uses 4-byte length-prefixed
//! framing) to a running source, and the test asserts exactly what was decoded.
//!
//! Needs `python3` with the `datadog` module (`make setup` installs both).
//! `ADP_SKIP_PYTHON_TESTS=1` skips it; otherwise a missing client fails.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use adp_dogstatsd::Batch;
use adp_dogstatsd::DogStatsDConfig;
use adp_model::{Event, EventAlertType, EventPriority, MetricKind, ServiceCheck, ServiceCheckStatus};
use adp_telemetry::Registry;
use tokio::sync::mpsc;

/// The client calls, one per message kind. Sampling is made deterministic by
/// replacing the client's `random()` so that sampled calls are always sent.
const SCRIPT: &str = r#"
import sys
import datadog.dogstatsd.base as base
base.random = lambda: 0.0
from datadog.dogstatsd import DogStatsd

target = sys.argv[1]
if target.startswith("udp:"):
    client = DogStatsd(host="127.0.0.1", port=int(target[4:]), disable_telemetry=True,
                       origin_detection_enabled=False)
else:
    # A Unix datagram queue holds only net.unix.max_dgram_qlen (10) datagrams; the
    # client's default non-blocking send drops the rest when the receiver lags
    # (a loaded CI machine). A send timeout makes it wait instead, so the test
    # can demand every message.
    client = DogStatsd(socket_path=target[5:], disable_telemetry=True, origin_detection_enabled=False,
                       socket_timeout=10)

client.increment("py.increment", tags=["env:test", "b:2"])
client.increment("py.increment.sampled", 5, sample_rate=0.5)
client.decrement("py.decrement", 3)
client.gauge("py.gauge", 42.5, tags=["x", "x"])
client.histogram("py.histogram", 7)
client.distribution("py.distribution", 0.25, tags=["env:test"], cardinality="low")
client.timing("py.timing", 12)
client.set("py.set", "alice")
client.gauge_with_timestamp("py.ts.gauge", 9, 1700000000)
client.count_with_timestamp("py.ts.count", 4, 1700000000, sample_rate=0.5)
client.event("Deploy", "line1\nline2", alert_type="warning", aggregation_key="agg", source_type_name="src",
             date_happened=1700000001, priority="low", tags=["svc:web"], hostname="host1")
client.service_check("py.check", 2, tags=["svc:web"], timestamp=1700000002, hostname="host2",
                     message="down | really\nm: yes")
client.flush()
client.close_socket()
"#;

fn python_available() -> bool {
    if std::env::var("ADP_SKIP_PYTHON_TESTS").as_deref() == Ok("1") {
        eprintln!("ADP_SKIP_PYTHON_TESTS=1: skipping the Python client test");
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import datadog"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "python3 with the `datadog` module is required for this test: run `make setup` (or set ADP_SKIP_PYTHON_TESTS=1)");
    true
}

fn run_client(target: &str) {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SCRIPT, target]);
    // The client adds tags from DD_ENV, DD_SERVICE, DD_ENTITY_ID, ...
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (name, kind, value, sample rate, timestamp, tags) for each metric.
type Row = (String, MetricKind, String, f64, Option<i64>, Vec<String>);

fn expected_metrics() -> Vec<Row> {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut rows: Vec<Row> = vec![
        (
            "py.increment".into(),
            MetricKind::Count,
            "1".into(),
            1.0,
            None,
            tags(&["b:2", "env:test"]),
        ),
        (
            "py.increment.sampled".into(),
            MetricKind::Count,
            "5".into(),
            0.5,
            None,
            tags(&[]),
        ),
        (
            "py.decrement".into(),
            MetricKind::Count,
            "-3".into(),
            1.0,
            None,
            tags(&[]),
        ),
        (
            "py.gauge".into(),
            MetricKind::Gauge,
            "42.5".into(),
            1.0,
            None,
            tags(&["x"]),
        ),
        (
            "py.histogram".into(),
            MetricKind::Histogram,
            "7".into(),
            1.0,
            None,
            tags(&[]),
        ),
        (
            "py.distribution".into(),
            MetricKind::Distribution,
            "0.25".into(),
            1.0,
            None,
            tags(&["env:test"]),
        ),
        ("py.timing".into(), MetricKind::Timer, "12".into(), 1.0, None, tags(&[])),
        (
            "py.set".into(),
            MetricKind::Set,
            "set:alice".into(),
            1.0,
            None,
            tags(&[]),
        ),
        (
            "py.ts.gauge".into(),
            MetricKind::Gauge,
            "9".into(),
            1.0,
            Some(1_700_000_000),
            tags(&[]),
        ),
        // Timestamped counts ignore the sample rate.
        (
            "py.ts.count".into(),
            MetricKind::Count,
            "4".into(),
            1.0,
            Some(1_700_000_000),
            tags(&[]),
        ),
    ];
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn expected_event() -> Event {
    Event {
        title: "Deploy".into(),
        text: "line1\nline2".into(),
        timestamp: Some(1_700_000_001),
        hostname: Some("host1".into()),
        aggregation_key: Some("agg".into()),
        priority: EventPriority::Low,
        source_type_name: Some("src".into()),
        alert_type: EventAlertType::Warning,
        tags: vec!["svc:web".into()],
    }
}

fn expected_service_check() -> ServiceCheck {
    ServiceCheck {
        name: "py.check".into(),
        status: ServiceCheckStatus::Critical,
        timestamp: Some(1_700_000_002),
        hostname: Some("host2".into()),
        message: Some("down | really\nm: yes".into()),
        tags: vec!["svc:web".into()],
    }
}

/// Collects batches until the expected totals arrived, then checks that
/// nothing else follows for a moment.
async fn collect(rx: &mut mpsc::Receiver<Batch>) -> Vec<Batch> {
    let want = expected_metrics().len() + 2;
    let mut got = Vec::new();
    let mut n = 0;
    while n < want {
        let b = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {n} of {want} items: {got:#?}"))
            .expect("channel open");
        n += b.len();
        got.push(b);
    }
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected extra batch: {extra:#?}");
    }
    got
}

fn check(batches: &[Batch], expect_origin: bool) {
    let mut rows: Vec<Row> = batches
        .iter()
        .flat_map(|b| b.metrics.samples().iter().map(move |s| (&b.metrics, s)))
        .map(|(m, s)| {
            let value = if s.is_member() {
                format!("set:{}", m.member(s))
            } else {
                s.number().to_string()
            };
            let c = m.context_of(s);
            // As the aggregator resolves them: sorted, each once.
            let mut tags: Vec<String> = m.tags_of(c).map(str::to_owned).collect();
            tags.sort();
            tags.dedup();
            (m.name(c).to_owned(), s.kind, value, s.sample_rate, s.timestamp(), tags)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows, expected_metrics());
    let events: Vec<&Event> = batches.iter().flat_map(|b| &b.events).collect();
    assert_eq!(events, [&expected_event()]);
    let checks: Vec<&ServiceCheck> = batches.iter().flat_map(|b| &b.service_checks).collect();
    assert_eq!(checks, [&expected_service_check()]);
    for b in batches {
        match (expect_origin, b.origin) {
            (false, None) => {}
            (true, Some(c)) => assert!(c.pid > 0 && c.pid != i32::try_from(std::process::id()).unwrap()),
            other => panic!("unexpected origin {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_is_decoded_exactly_over_udp_and_unix_sockets() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dsd.sock");
    let stream_socket = dir.path().join("dsd-stream.sock");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = Registry::new();
    let source = DogStatsDConfig {
        dogstatsd_port: port,
        dogstatsd_socket: Some(socket.clone()),
        dogstatsd_stream_socket: Some(stream_socket.clone()),
        ..DogStatsDConfig::default()
    }
    .build(&registry)
    .unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let running = source.start(tx).await.unwrap();
    let udp = running.udp_addr().unwrap();

    let target = format!("udp:{}", udp.port());
    tokio::task::spawn_blocking(move || run_client(&target)).await.unwrap();
    check(&collect(&mut rx).await, false);

    let target = format!("unix:{}", socket.display());
    tokio::task::spawn_blocking(move || run_client(&target)).await.unwrap();
    check(&collect(&mut rx).await, true);

    let target = format!("unix:unixstream://{}", stream_socket.display());
    tokio::task::spawn_blocking(move || run_client(&target)).await.unwrap();
    check(&collect(&mut rx).await, true);

    running.shutdown().await;
    let counters: BTreeMap<String, i64> = registry
        .snapshot()
        .into_iter()
        .filter(|(_, labels, _)| labels.is_empty() || labels.iter().any(|(_, v)| v == "udp" || v.starts_with("unix_")))
        .map(|(name, labels, v)| (format!("{name}{labels:?}"), v))
        .collect();
    let metrics = i64::try_from(3 * expected_metrics().len()).unwrap();
    assert_eq!(counters["adp_dogstatsd_metrics[]"], metrics, "{counters:#?}");
    assert_eq!(counters["adp_dogstatsd_events[]"], 3);
    assert_eq!(counters["adp_dogstatsd_service_checks[]"], 3);
    let errors: i64 = registry
        .snapshot()
        .into_iter()
        .filter(|(name, _, _)| name == "adp_dogstatsd_decode_errors")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(errors, 0);
}
