//! The intake over real loopback HTTP, fed by the real encoders.

use std::net::SocketAddr;
use std::time::Duration;

use adp_encoder::{dogsketch, CheckParts, Encoder, EncoderConfig, SeriesType};
use adp_telemetry::Registry;
use adp_wire::{proto, CompressionKind, EncodedPayload, Endpoint};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::*;

const LOOPBACK: &str = "127.0.0.1:0";
const WAIT: Duration = Duration::from_secs(10);

async fn intake() -> TestIntake {
    TestIntake::start(LOOPBACK.parse().unwrap(), Behaviour::normal())
        .await
        .unwrap()
}

fn encoder(kind: CompressionKind) -> Encoder {
    let config = EncoderConfig {
        hostname: "board-1".to_owned(),
        serializer_compressor_kind: kind,
        ..EncoderConfig::default()
    };
    Encoder::new(config, &Registry::new()).unwrap()
}

/// One request on a fresh connection; `Err` when the server closed it unanswered.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = sender.send_request(builder.body(Full::new(body)).unwrap()).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn post(addr: SocketAddr, p: &EncodedPayload) -> Result<StatusCode, hyper::Error> {
    let headers = [
        ("dd-api-key", "0123456789abcdef"),
        ("content-type", p.content_type),
        ("content-encoding", p.content_encoding),
        ("user-agent", "datadog-agent/7.0.0 (adp)"),
    ];
    send(addr, "POST", p.endpoint.path(), &headers, p.body.clone())
        .await
        .map(|(s, _)| s)
}

/// Sets the intake's behaviour through `POST /_intake/behaviour` with the JSON `body`.
async fn steer(addr: SocketAddr, body: &'static [u8]) -> (StatusCode, Bytes) {
    send(addr, "POST", "/_intake/behaviour", &[], Bytes::from_static(body))
        .await
        .unwrap()
}

/// Posts each payload, asserts that the intake accepted it, and returns what
/// the intake has received once `until` holds.
async fn post_accepted<'a>(
    intake: &TestIntake,
    payloads: impl IntoIterator<Item = &'a EncodedPayload>,
    until: impl Fn(&Received) -> bool,
) -> Received {
    for p in payloads {
        assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
    }
    intake.wait_for(WAIT, until).await.unwrap()
}

#[tokio::test]
async fn series_and_sketches_are_decoded_for_every_compression_kind() {
    for kind in [CompressionKind::Zstd, CompressionKind::Zlib, CompressionKind::None] {
        let intake = intake().await;
        let enc = encoder(kind);
        let tags = ["env:test", "host:edge-3"];
        let points = [(1_700_000_000, 1.5), (1_700_000_010, 2.5)];
        let series = enc
            .encode_series_parts([
                ("app.requests", &tags[..], SeriesType::Rate, 10, &points[..]),
                ("app.temp", &tags[..1], SeriesType::Gauge, 10, &points[..1]),
            ])
            .unwrap();
        let d = dogsketch(
            1_700_000_000,
            4,
            1.0,
            8.0,
            15.0,
            3.75,
            vec![0, 1338, 1383],
            vec![1, 2, 1],
        );
        let sketches = enc.encode_sketch_parts([("app.latency", &tags[1..], vec![d])]).unwrap();
        let r = post_accepted(&intake, series.iter().chain(&sketches), |r| {
            r.series.len() == 2 && r.sketches.len() == 1
        })
        .await;
        assert_eq!(
            r.series[0],
            ReceivedSeries {
                metric: "app.requests".into(),
                kind: "rate".into(),
                interval: 10,
                host: "edge-3".into(),
                tags: vec!["env:test".into()],
                points: points.to_vec(),
                resources: vec![],
                unit: String::new(),
                source_type_name: String::new(),
                origin: Some((10, 10, 0)),
            },
            "{kind}"
        );
        assert_eq!(
            (r.series[1].host.as_str(), r.series[1].kind.as_str()),
            ("board-1", "gauge")
        );
        assert_eq!(
            r.sketches[0],
            ReceivedSketch {
                metric: "app.latency".into(),
                host: "edge-3".into(),
                tags: vec![],
                dogsketches: vec![ReceivedDogsketch {
                    ts: 1_700_000_000,
                    cnt: 4,
                    min: 1.0,
                    max: 8.0,
                    avg: 3.75,
                    sum: 15.0,
                    k: vec![0, 1338, 1383],
                    n: vec![1, 2, 1],
                }],
            }
        );
        let log = &r.request_log[0];
        assert!(log.api_key_present);
        assert_eq!(log.content_encoding.as_deref(), Some(kind.content_encoding()));
        assert_eq!(log.content_type.as_deref(), Some("application/x-protobuf"));
        assert_eq!(log.user_agent.as_deref(), Some("datadog-agent/7.0.0 (adp)"));
        assert_eq!(
            (r.accepted_by(Endpoint::Series), r.accepted_by(Endpoint::Sketches)),
            (1, 1)
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        intake.shutdown().await;
    }
}

#[tokio::test]
async fn service_checks_and_events_are_decoded() {
    let intake = intake().await;
    let enc = encoder(CompressionKind::Zstd);
    let checks = enc
        .encode_check_parts(
            [CheckParts {
                name: "db.up",
                status: 2,
                timestamp: None,
                hostname: None,
                message: Some("no route"),
                tags: &["a:b"][..],
            }],
            1_700_000_123,
        )
        .unwrap();
    let events = enc
        .encode_event_protos([proto::Event {
            title: "deploy".into(),
            text: "v2".into(),
            ts: 7,
            ..Default::default()
        }])
        .unwrap();
    let r = post_accepted(&intake, checks.iter().chain(&events), |r| {
        r.service_checks.len() == 1 && r.events.len() == 1
    })
    .await;
    assert_eq!(
        r.service_checks[0],
        ReceivedServiceCheck {
            check: "db.up".into(),
            host_name: "board-1".into(),
            timestamp: 1_700_000_123,
            status: 2,
            message: "no route".into(),
            tags: vec!["a:b".into()],
        }
    );
    assert_eq!(
        (r.events[0].title.as_str(), r.events[0].text.as_str(), r.events[0].ts),
        ("deploy", "v2", 7)
    );
    assert_eq!(r.request_log[0].content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn host_metadata_is_decoded_and_a_payload_without_a_hostname_refused() {
    let intake = intake().await;
    let enc = encoder(CompressionKind::Zstd);
    let body = br#"{"apiKey":"k","internalHostname":"board-1","host-tags":{"system":["env:prod","team:iot"]}}"#;
    let p = enc.host_metadata_payload(body).unwrap().unwrap();
    assert_eq!(post(intake.addr(), &p).await.unwrap(), StatusCode::ACCEPTED);
    let r = intake.received();
    assert_eq!(r.host_metadata.len(), 1);
    assert_eq!(r.host_metadata[0]["internalHostname"], "board-1");
    assert_eq!(r.host_tags(), ["env:prod", "team:iot"]);
    assert_eq!(r.accepted_by(Endpoint::Intake), 1);
    assert_eq!(r.request_log[0].content_type.as_deref(), Some("application/json"));

    let bad = enc.host_metadata_payload(br#"{"apiKey":"k"}"#).unwrap().unwrap();
    assert_eq!(post(intake.addr(), &bad).await.unwrap(), StatusCode::BAD_REQUEST);
    let r = intake.received();
    assert_eq!(r.host_metadata.len(), 1);
    assert!(r.errors[0].contains("internalHostname"), "{:?}", r.errors);
}

#[tokio::test]
async fn undecodable_bodies_get_400_and_are_recorded() {
    let intake = intake().await;
    let key = ("dd-api-key", "k");
    let cases: [(&str, &str, &[u8]); 4] = [
        ("/api/v2/series", "zstd", b"definitely not zstd"),
        ("/api/v2/series", "identity", &[0x0a, 0x05, 0x01]), // truncated field
        ("/api/v1/check_run", "identity", b"{\"not\":\"an array\"}"),
        ("/api/beta/sketches", "br", b""),
    ];
    for (path, encoding, body) in cases {
        let (status, _) = send(
            intake.addr(),
            "POST",
            path,
            &[key, ("content-encoding", encoding)],
            Bytes::from_static(body),
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {encoding}");
    }
    let r = intake.received();
    assert_eq!(r.errors.len(), 4, "{:?}", r.errors);
    assert!(r.errors[0].contains("zstd"), "{}", r.errors[0]);
    assert!(r.errors[2].contains("service checks"), "{}", r.errors[2]);
    assert!(r.series.is_empty() && r.accepted.is_empty());
    assert_eq!(r.requests_to(Endpoint::Series), 2);
}

#[tokio::test]
async fn a_missing_api_key_is_forbidden_and_validate_checks_for_one() {
    let intake = intake().await;
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_protos([proto::MetricSeries::default()])
        .unwrap()[0];
    let key: &[(&str, &str)] = &[("dd-api-key", "k")];
    // A payload without a key, the key check with and without one, then an
    // unknown path with a key.
    let cases = [
        (
            "POST",
            p.endpoint.path(),
            &[][..],
            p.body.clone(),
            StatusCode::FORBIDDEN,
        ),
        ("GET", "/api/v1/validate", key, Bytes::new(), StatusCode::OK),
        ("GET", "/api/v1/validate", &[], Bytes::new(), StatusCode::FORBIDDEN),
        ("POST", "/api/v1/series", key, Bytes::new(), StatusCode::NOT_FOUND),
    ];
    for (method, path, headers, body, expected) in cases {
        let (status, answer) = send(intake.addr(), method, path, headers, body).await.unwrap();
        assert_eq!(status, expected, "{method} {path} {headers:?}");
        if status == StatusCode::OK {
            assert_eq!(answer.as_ref(), b"{\"valid\":true}");
        }
    }
    let r = intake.received();
    assert!(r.series.is_empty());
    assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
}

#[tokio::test]
async fn one_valid_api_key_refuses_every_other_in_key_checks_and_payloads() {
    let intake = intake().await;
    intake.set_behaviour(Behaviour::only_api_key("right-key"));
    let validate = |key: &'static str| {
        let addr = intake.addr();
        async move {
            send(
                addr,
                "GET",
                &format!("/api/v1/validate?api_key={key}"),
                &[],
                Bytes::new(),
            )
            .await
            .unwrap()
            .0
        }
    };
    assert_eq!(validate("right-key").await, StatusCode::OK);
    assert_eq!(validate("wrong-key").await, StatusCode::FORBIDDEN);
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_parts([("m", &[] as &[&str], SeriesType::Gauge, 10, &[(1, 1.0)][..])])
        .unwrap()[0];
    // `post` sends another key.
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::FORBIDDEN);
    let headers = [
        ("dd-api-key", "right-key"),
        ("content-type", p.content_type),
        ("content-encoding", p.content_encoding),
    ];
    let (status, _) = send(intake.addr(), "POST", p.endpoint.path(), &headers, p.body.clone())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    let r = intake.received();
    assert_eq!(r.series.len(), 1, "only the payload with the valid key is received");
    assert!(r.refused.is_empty());
    assert_eq!(
        r.errors,
        ["validate: invalid api_key", "series: DD-Api-Key is not the valid key"]
    );
}

#[tokio::test]
async fn the_most_requests_handled_at_once_is_recorded() {
    let intake = intake().await;
    let p = encoder(CompressionKind::Zstd)
        .encode_series_parts([("m", &[] as &[&str], SeriesType::Gauge, 10, &[(1, 1.0)][..])])
        .unwrap()
        .remove(0);
    intake.set_behaviour(Behaviour::delay(Duration::from_millis(300)));
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let (addr, p) = (intake.addr(), p.clone());
            tokio::spawn(async move { post(addr, &p).await.unwrap() })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap(), StatusCode::ACCEPTED);
    }
    assert_eq!(intake.received().max_in_flight, 3);
    intake.set_behaviour(Behaviour::normal());
    for _ in 0..3 {
        post(intake.addr(), &p).await.unwrap();
    }
    assert_eq!(
        intake.received().max_in_flight,
        3,
        "one at a time does not change the peak"
    );
    intake.reset();
    post(intake.addr(), &p).await.unwrap();
    assert_eq!(intake.received().max_in_flight, 1);
}

#[tokio::test]
async fn a_status_fault_for_the_next_requests_then_recovery() {
    let intake = intake().await;
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_parts([("m", &[] as &[&str], SeriesType::Gauge, 10, &[(1, 1.0)][..])])
        .unwrap()[0];
    intake.set_behaviour(Behaviour::status(503).for_next(2));
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        intake.received().series.is_empty(),
        "rejected payloads are not recorded"
    );
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
    let r = intake.received();
    assert_eq!(
        (
            r.series.len(),
            r.requests_to(Endpoint::Series),
            r.accepted_by(Endpoint::Series)
        ),
        (1, 3, 1)
    );

    intake.set_behaviour(Behaviour::status(413));
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE);
    intake.set_behaviour(Behaviour::status(403).for_duration(Duration::from_millis(100)));
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn close_and_delay_faults() {
    let intake = intake().await;
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_protos([proto::MetricSeries::default()])
        .unwrap()[0];
    intake.set_behaviour(Behaviour::close().for_next(1));
    let err = post(intake.addr(), p).await.unwrap_err();
    assert!(err.is_incomplete_message() || err.is_closed(), "{err:?}");
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);

    intake.set_behaviour(Behaviour::delay(Duration::from_millis(200)).for_next(1));
    let started = std::time::Instant::now();
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let r = intake.received();
    assert_eq!(
        (r.requests_to(Endpoint::Series), r.accepted_by(Endpoint::Series)),
        (3, 2)
    );
    assert_eq!(r.request_log[0].status, 0, "closed requests are logged with status 0");
}

#[tokio::test]
async fn a_refused_payload_is_kept_apart_from_what_was_received() {
    let intake = intake().await;
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_parts([("m", &[] as &[&str], SeriesType::Gauge, 10, &[(1, 4.0)][..])])
        .unwrap()[0];
    intake.set_behaviour(Behaviour::status(413).for_next(1));
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = intake.received();
    assert!(r.series.is_empty());
    match r.refused.as_slice() {
        [Decoded::Series { series }] => assert_eq!(series[0].points, vec![(1, 4.0)]),
        other => panic!("{other:?}"),
    }
}

/// A client that gives up during `delay` delivered nothing; during a slow
/// acknowledgement it delivered the payload anyway.
#[tokio::test]
async fn a_client_giving_up_during_a_delay_or_a_slow_acknowledgement() {
    let intake = intake().await;
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_parts([("m", &[] as &[&str], SeriesType::Gauge, 10, &[(1, 1.0)][..])])
        .unwrap()[0];
    let give_up = Duration::from_millis(100);
    intake.set_behaviour(Behaviour::delay(Duration::from_millis(400)).for_next(1));
    assert!(tokio::time::timeout(give_up, post(intake.addr(), p)).await.is_err());
    let r = intake
        .wait_for(WAIT, |r| r.requests_to(Endpoint::Series) == 1)
        .await
        .unwrap();
    assert_eq!(r.request_log[0].status, 0, "abandoned during the delay");
    // Past the delay: the abandoned handler never records the payload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(intake.received().series.is_empty());

    intake.set_behaviour(Behaviour::slow_ack(Duration::from_millis(400)).for_next(1));
    assert!(tokio::time::timeout(give_up, post(intake.addr(), p)).await.is_err());
    let r = intake.received();
    assert_eq!((r.series.len(), r.accepted_by(Endpoint::Series)), (1, 1));
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_reset_fault_sends_a_tcp_reset() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let intake = intake().await;
    intake.set_behaviour(Behaviour::reset().for_next(1));
    let mut s = tokio::net::TcpStream::connect(intake.addr()).await.unwrap();
    s.write_all(b"POST /api/v2/series HTTP/1.1\r\nHost: x\r\nDD-Api-Key: k\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let err = s.read_to_end(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}; read {buf:?}");
    let r = intake.received();
    assert_eq!((r.requests_to(Endpoint::Series), r.request_log[0].status), (1, 0));
    // The next connection is served normally.
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_protos([proto::MetricSeries::default()])
        .unwrap()[0];
    assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn control_endpoints_steer_and_report() {
    let intake = intake().await;
    let addr = intake.addr();
    let (status, body) = steer(addr, b"{\"status\":500,\"next\":1}").await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::OK, &b"{\"status\":500,\"next\":1}"[..])
    );
    let (status, _) = steer(addr, b"{\"bogus\":1}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let p = &encoder(CompressionKind::Zlib)
        .encode_series_parts([("m", &["k:v"][..], SeriesType::Gauge, 10, &[(5, 9.0)][..])])
        .unwrap()[0];
    assert_eq!(post(addr, p).await.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(post(addr, p).await.unwrap(), StatusCode::ACCEPTED);
    let (status, body) = send(addr, "GET", "/_intake/received", &[], Bytes::new()).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let received: Received = serde_json::from_slice(&body).unwrap();
    assert_eq!(received, intake.received());
    assert_eq!(received.series_value_sum("m"), 9.0);
    let (status, _) = send(addr, "POST", "/_intake/reset", &[], Bytes::new()).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(intake.received(), Received::default());
}

#[tokio::test]
async fn blackhole_counts_without_keeping() {
    let options = IntakeOptions {
        blackhole: true,
        print: false,
    };
    let intake = TestIntake::start_with(LOOPBACK.parse().unwrap(), Behaviour::normal(), options)
        .await
        .unwrap();
    let p = &encoder(CompressionKind::Zstd)
        .encode_series_protos([proto::MetricSeries::default()])
        .unwrap()[0];
    for _ in 0..3 {
        assert_eq!(post(intake.addr(), p).await.unwrap(), StatusCode::ACCEPTED);
    }
    let r = intake.received();
    assert_eq!(r.accepted_by(Endpoint::Series), 3);
    assert_eq!(r.bytes["series"], 3 * u64::try_from(p.body.len()).unwrap());
    assert!(r.series.is_empty() && r.request_log.is_empty());
}

#[tokio::test]
async fn wait_for_times_out_with_what_arrived() {
    let intake = intake().await;
    let err = intake
        .wait_for(Duration::from_millis(50), |r| !r.series.is_empty())
        .await
        .unwrap_err();
    assert_eq!(err.received, Received::default());
    assert!(err.to_string().contains("0 series"), "{err}");
}

#[tokio::test]
async fn a_split_batch_arrives_whole() {
    let intake = intake().await;
    let enc = encoder(CompressionKind::Zstd);
    let tags: Vec<[String; 1]> = (0..12_000).map(|i| [format!("i:{i}")]).collect();
    let points = [(1_700_000_000, 1.0)];
    let payloads = enc
        .encode_series_parts(
            tags.iter()
                .map(|t| ("split.me", &t[..], SeriesType::Count, 10, &points[..])),
        )
        .unwrap();
    assert!(payloads.len() >= 2);
    let r = post_accepted(&intake, &payloads, |r| r.series.len() == 12_000).await;
    assert_eq!(r.series_value_sum("split.me"), 12_000.0);
    assert_eq!(r.accepted_by(Endpoint::Series), u64::try_from(payloads.len()).unwrap());
}
