//! A standalone run delivering DogStatsD over UDP and a Unix socket to an
//! in-process test intake: the APIs, every metric type through an outage,
//! the final flush at SIGTERM, and more distinct strings than the string
//! interner holds.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

use adp_test_intake::{Behaviour, TestIntake};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_run_delivers_dogstatsd_serves_its_apis_and_stops_cleanly_on_sigterm() {
    let (intake, dir) = intake_and_dir().await;
    let socket = dir.path().join("dsd.socket");
    let pidfile = dir.path().join("adp.pid");
    let token = "0123456789abcdef".repeat(4);
    std::fs::write(dir.path().join("auth_token"), &token).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(
        dir.path().join("ipc_cert.pem"),
        format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem()),
    )
    .unwrap();
    let port = free_udp_port();
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "10")
        .set("DD_DOGSTATSD_PORT", port.to_string());
    let (mut adp, api) = start_healthy(&env, dir.path()).await;
    let pid = std::fs::read_to_string(&pidfile).expect("pidfile written");
    assert_eq!(pid.trim(), adp.child.id().to_string(), "pidfile holds the process id");
    let secure_api = address_in(&adp.wait_for_line("Serving privileged API on").await);

    // Health and telemetry.
    let (status, body) = http_get(&api, "/health/ready");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    for component in ["dogstatsd", "aggregator", "forwarder"] {
        assert_eq!(health["components"][component]["ready"], true, "{body}");
    }
    assert_eq!(http_get(&api, "/health/live").0, 200);

    // DogStatsD over UDP and the Unix socket reaches the intake.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"e2e.udp:3|c|#src:udp", ("127.0.0.1", port))
        .unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"e2e.uds:42|g|#src:uds", &socket)
        .unwrap();
    let received = intake
        .wait_for(TIMEOUT, |r| {
            !r.series_named("e2e.udp").is_empty() && !r.series_named("e2e.uds").is_empty()
        })
        .await
        .expect("series at the intake");
    let udp = received.series_named("e2e.udp")[0];
    assert_eq!(
        (udp.kind.as_str(), udp.host.as_str(), udp.tags.as_slice()),
        ("rate", "e2e-host", &["src:udp".to_owned()][..])
    );
    assert_eq!(
        received.series_value_sum("e2e.udp"),
        3.0,
        "a 1 s window: the rate is the count"
    );
    assert_eq!(received.series_named("e2e.uds")[0].points[0].1, 42.0);
    assert!(received.request_log.iter().all(|r| r.api_key_present));

    let (status, metrics) = http_get(&api, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("adp_dogstatsd_packets_total{listener=\"udp\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("adp_forwarder_payloads_sent_total{endpoint=\"series\"}"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"));

    // The privileged API: TLS with the configured certificate, bearer token.
    let get = |path: &str, auth: Option<&str>| {
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
    };
    assert_eq!(https(&secure_api, &cert, get("/config", None)).await.0, 401);
    assert_eq!(
        https(&secure_api, &cert, get("/config", Some(&"f".repeat(64)))).await.0,
        403
    );
    let (status, config) = https(&secure_api, &cert, get("/config", Some(&token))).await;
    assert_eq!(status, 200, "{config}");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["api_key"], "********");
    assert_eq!(config["hostname"], "e2e-host");
    let (status, stats) = https(
        &secure_api,
        &cert,
        get("/dogstatsd/stats?collection_duration_secs=1", Some(&token)),
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    assert!(stats.starts_with("{\"stats\":["), "{stats}");
    let set_level = format!(
        "POST /logging/level HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\ndebug"
    );
    let (status, body) = https(&secure_api, &cert, set_level).await;
    assert_eq!((status, body.trim()), (200, r#"{"log_level":"debug"}"#));

    // A sample in a still-open window is delivered by the final flush at SIGTERM.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"e2e.final:7|g", ("127.0.0.1", port))
        .unwrap();
    let log = adp.stop().await;
    let order = [
        "Agent Data Plane starting...",
        "Serving unprivileged API on",
        "Serving privileged API on",
        "DogStatsD listener started.",
        "Agent Data Plane running.",
        "Topology healthy. Waiting for interrupt...",
        "Received SIGTERM, shutting down...",
        "Agent Data Plane stopped.",
    ];
    let mut at = 0;
    for needle in order {
        let found = log[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing or out of order:\n{log}"));
        at += found + needle.len();
    }
    assert!(log.contains("topology_ready_ms="), "{log}");
    assert_eq!(
        log.matches("DogStatsD listener started.").count(),
        2,
        "UDP and Unix datagram: {log}"
    );
    assert_clean_log(&log, &["Failed to"]);
    // Secrets: neither the API key nor the bearer token is ever logged,
    // even at the debug level switched on above.
    for secret in [API_KEY, token.as_str()] {
        assert!(!log.contains(secret), "a secret leaked into the log:\n{log}");
    }
    assert!(!pidfile.exists(), "pidfile removed at exit");
    let received = intake.received();
    assert_eq!(
        received.series_named("e2e.final").len(),
        1,
        "final flush delivered: {:?}",
        received.series
    );
    assert_eq!(received.series_named("e2e.final")[0].points[0].1, 7.0);
    intake.shutdown().await;
}

/// Every DogStatsD kind goes codec → aggregate → encode → forward → intake
/// while the intake first answers 503 (retried with backoff), and arrives
/// with exact totals and no duplicate points. One-hour windows keep every
/// sample in one window; the final flush at SIGTERM closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_type_arrives_with_exact_totals_through_an_intake_outage() {
    const OUTAGE_REQUESTS: u64 = 3;
    let intake = TestIntake::start(loopback(), Behaviour::status(503).for_next(OUTAGE_REQUESTS))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dsd.socket");
    let env = Env::standalone(&intake.url(), dir.path()).set("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "3600");
    let (mut adp, _) = start_healthy(&env, dir.path()).await;

    // Unix datagrams are not dropped by the kernel: a full queue blocks the sender.
    let client = UnixDatagram::unbound().unwrap();
    let send = |payload: &str| {
        client.send_to(payload.as_bytes(), &socket).unwrap();
    };
    for _ in 0..50 {
        send("all.count:2|c|#t:a");
    }
    for _ in 0..10 {
        send("all.count:1|c|@0.5|#t:a"); // weighted ×2
    }
    for v in 1..=9 {
        send(&format!("all.gauge:{v}|g"));
    }
    send("all.set:a|s\nall.set:b|s\nall.set:a|s\nall.set:c|s");
    send(
        &(1..=10)
            .map(|v| format!("all.hist:{v}|h"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for _ in 0..4 {
        send("all.timer:100|ms");
    }
    send("all.dist:1:2:3:4|d");
    send("all.dist:10|d|@0.5"); // weighted ×2
    send("all.ts:5|c|T1700000000");
    send("_sc|all.check|1|m:degraded");
    send("_e{5,4}:title|text|#t:e");

    // The event and service check are sent within a second, through the outage.
    intake
        .wait_for(TIMEOUT, |r| !r.service_checks.is_empty() && !r.events.is_empty())
        .await
        .expect("event and service check at the intake after the outage");
    adp.stop().await;
    let r = intake.received();

    // The API key check at start is not a payload.
    let requests: u64 = r
        .requests
        .iter()
        .filter(|(e, _)| *e != "validate")
        .map(|(_, n)| n)
        .sum();
    let accepted: u64 = r.accepted.values().sum();
    assert_eq!(
        requests - accepted,
        OUTAGE_REQUESTS,
        "the outage was seen and retried: {r:#?}"
    );

    // No point delivered twice.
    let mut seen = std::collections::BTreeSet::new();
    for s in &r.series {
        for p in &s.points {
            let key = format!("{} {:?} {}", s.metric, s.tags, p.0);
            assert!(seen.insert(key.clone()), "duplicate point {key}");
        }
    }
    let one = |name: &str| {
        let found = r.series_named(name);
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        found[0].clone()
    };
    // Counts: RATE over the window; value × interval recovers the count.
    let count = one("all.count");
    assert_eq!(
        (count.kind.as_str(), count.interval, count.tags.as_slice()),
        ("rate", 3600, &["t:a".to_owned()][..])
    );
    assert!((count.points[0].1 * 3600.0 - 120.0).abs() < 1e-9, "{count:?}");
    assert_eq!(one("all.gauge").points[0].1, 9.0);
    assert_eq!(one("all.set").points[0].1, 3.0);
    assert!((one("all.hist.count").points[0].1 * 3600.0 - 10.0).abs() < 1e-9);
    assert_eq!(one("all.hist.max").points[0].1, 10.0);
    assert_eq!(one("all.hist.avg").points[0].1, 5.5);
    assert!((one("all.timer.count").points[0].1 * 3600.0 - 4.0).abs() < 1e-9);
    assert_eq!(one("all.timer.max").points[0].1, 100.0);
    let ts = one("all.ts");
    assert_eq!(
        (ts.kind.as_str(), ts.points.as_slice()),
        ("count", &[(1_700_000_000, 5.0)][..])
    );
    // Distributions: one sketch, weighted by the sample rate.
    let sketches = r.sketches_named("all.dist");
    assert_eq!(sketches.len(), 1, "{sketches:#?}");
    assert_eq!(sketches[0].dogsketches.len(), 1);
    let d = &sketches[0].dogsketches[0];
    assert_eq!((d.cnt, d.min, d.max, d.sum), (6, 1.0, 10.0, 30.0));
    assert_eq!(d.n.iter().map(|&n| u64::from(n)).sum::<u64>(), 6);
    assert_eq!(r.service_checks.len(), 1);
    assert_eq!(
        (r.service_checks[0].status, r.service_checks[0].message.as_str()),
        (1, "degraded")
    );
    assert_eq!(r.events.len(), 1);
    assert_eq!(
        (r.events[0].title.as_str(), r.events[0].text.as_str()),
        ("title", "text")
    );
}

/// A 4 KiB string interner and a few hundred contexts of long names and tags
/// (about 100 KiB of distinct strings): the strings that do not fit go to
/// the heap, counted, and every value still reaches the intake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_distinct_strings_than_the_interner_holds_all_arrive() {
    const CONTEXTS: usize = 300;
    let (intake, dir) = intake_and_dir().await;
    let socket = dir.path().join("dsd.socket");
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DOGSTATSD_STRING_INTERNER_SIZE", "4096")
        .set("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "3600");
    let (mut adp, api) = start_healthy(&env, dir.path()).await;

    // Longer than any inline string; every name and every tag distinct.
    let name = |i: usize| format!("e2e.interner.overflow.metric.number.{i:05}.with.a.long.name");
    let tag = |i: usize, t: usize| format!("tag{t}:value-{i:05}-{}", "x".repeat(40));
    let client = UnixDatagram::unbound().unwrap();
    for i in 0..CONTEXTS {
        let tags: Vec<String> = (0..3).map(|t| tag(i, t)).collect();
        let message = format!(
            "{}:{}|c|#{}\n{}:{}|c|#{}",
            name(i),
            i,
            tags.join(","),
            name(i),
            1,
            tags.join(",")
        );
        client.send_to(message.as_bytes(), &socket).unwrap();
    }
    let heap = wait_metric(&mut adp, &api, "adp_context_interner_fallback_strings_total", |v| {
        v > 0.0
    })
    .await;
    // Every string past the first few kilobytes: most of the 1,200.
    assert!(heap >= (CONTEXTS * 4 / 2) as f64, "{heap} heap strings");
    adp.stop().await;

    let r = intake.received();
    for i in 0..CONTEXTS {
        let series = r.series_named(&name(i));
        assert_eq!(series.len(), 1, "{}: {series:#?}", name(i));
        let s = series[0];
        let mut expected: Vec<String> = (0..3).map(|t| tag(i, t)).collect();
        expected.sort();
        let mut tags = s.tags.clone();
        tags.sort();
        assert_eq!(tags, expected);
        // i + 1 counted over a one-hour window, sent as a rate.
        assert!((s.points[0].1 * 3600.0 - (i + 1) as f64).abs() < 1e-6, "{s:?}");
    }
}
