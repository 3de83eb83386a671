//! Malformed, oversized and hostile DogStatsD input: counted drops, no panic.
//!
//! Hostile payloads go to every listener (UDP, Unix datagram, Unix stream
//! with length-prefixed and newline framing) between valid counters; each
//! send waits for the listener's packet counter, so the kernel never drops a
//! UDP datagram and every counter delta is exact. The telemetry names the
//! drops:
//!
//! - `adp_dogstatsd_truncated_packets_total{listener}`: datagrams or stream
//!   frames larger than `dogstatsd_buffer_size`, dropped whole;
//! - `adp_dogstatsd_decode_errors_total{reason}`: rejected messages by reason
//!   (`truncated` mirrors the above, `invalid_utf8`, `invalid_name`, ...);
//! - `adp_dogstatsd_utf8_repaired_total`: messages kept after their tags'
//!   invalid UTF-8 was replaced (only bytes outside the tags reject one).

use std::io::Write as _;
use std::net::UdpSocket;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

use adp_dogstatsd::codec::{CodecConfig, DecodeError};
use adp_dogstatsd::telemetry::DecoderTelemetry;
use adp_dogstatsd::{Batch, Decoder};
use adp_test_intake::{Received, TestIntake};

use crate::harness::*;

fn packets(listener: &str) -> String {
    format!("adp_dogstatsd_packets_total{{listener=\"{listener}\"}}")
}

fn truncated(listener: &str) -> String {
    format!("adp_dogstatsd_truncated_packets_total{{listener=\"{listener}\"}}")
}

fn errors(reason: &str) -> String {
    format!("adp_dogstatsd_decode_errors_total{{reason=\"{reason}\"}}")
}

/// Deterministic bytes (SplitMix64).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// What the agent's own decoder makes of `payloads` (its default codec
/// settings): the decode error counts by reason. Asserts that nothing in them
/// decodes, so that every one of them is a drop.
fn expected_errors(payloads: &[&[u8]]) -> Vec<(&'static str, u64)> {
    let mut decoder = Decoder::new(CodecConfig::default(), DecoderTelemetry::detached());
    let mut batch = Batch::default();
    for p in payloads {
        decoder.decode_packet(p, &mut batch);
    }
    assert!(batch.is_empty(), "the garbage decodes to something: {batch:?}");
    DecodeError::ALL
        .iter()
        .map(|e| (e.reason(), decoder.telemetry().error(*e).get()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A snapshot of `/metrics`, to take deltas from.
struct Snapshot(String);

impl Snapshot {
    fn take(api: &str) -> Self {
        Self(http_get(api, "/metrics").1)
    }
    fn get(&self, series: &str) -> f64 {
        metric_in(&self.0, series).unwrap_or(0.0)
    }
}

/// The agent, its API, and a sender per listener.
struct Agent {
    adp: Running,
    api: String,
    udp: UdpSocket,
    udp_port: u16,
    uds: UnixDatagram,
    uds_path: std::path::PathBuf,
}

impl Agent {
    async fn start(intake: &TestIntake, dir: &Path, buffer_size: Option<usize>) -> Self {
        let udp_port = free_udp_port();
        let mut env = Env::standalone(&intake.url(), dir)
            .set("DD_DOGSTATSD_PORT", udp_port.to_string())
            .set(
                "DD_DOGSTATSD_STREAM_SOCKET",
                dir.join("dsd-stream.socket").to_str().unwrap(),
            )
            // One window for the whole test: each counter is one exact total.
            .set("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "3600");
        if let Some(size) = buffer_size {
            env = env.set("DD_DOGSTATSD_BUFFER_SIZE", size.to_string());
        }
        let (adp, api) = start_healthy(&env, dir).await;
        // The default send buffer (about 208 KiB) takes the largest datagram sent here.
        let uds = UnixDatagram::unbound().unwrap();
        Self {
            adp,
            api,
            udp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            udp_port,
            uds,
            uds_path: dir.join("dsd.socket"),
        }
    }

    /// Waits until `listener` has received `n` more packets than at `before`.
    async fn wait_packets(&mut self, listener: &str, before: f64, n: u64) {
        let want = before + n as f64;
        let got = wait_metric(&mut self.adp, &self.api, &packets(listener), |v| v >= want).await;
        assert_eq!(got, want, "{listener}: packets counted once each");
    }

    async fn udp(&mut self, payload: &[u8]) {
        let before = metric_or_zero(&self.api, &packets("udp"));
        let sent = self.udp.send_to(payload, ("127.0.0.1", self.udp_port)).unwrap();
        assert_eq!(sent, payload.len());
        self.wait_packets("udp", before, 1).await;
    }

    async fn uds(&mut self, payload: &[u8]) {
        let before = metric_or_zero(&self.api, &packets("unix_datagram"));
        assert_eq!(self.uds.send_to(payload, &self.uds_path).unwrap(), payload.len());
        self.wait_packets("unix_datagram", before, 1).await;
    }
}

/// `input.lp` frames for a length-prefixed stream.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A metric with `n` (at most 10,000) distinct tags `t0000`, `t0001`, ...: 6
/// bytes each with the comma, so 10,000 fit in one UDP datagram.
fn many_tags(name: &str, n: usize, reversed: bool) -> Vec<u8> {
    let mut tags: Vec<String> = (0..n).map(|i| format!("t{i:04}")).collect();
    if reversed {
        tags.reverse();
    }
    format!("{name}:1|c|#{}", tags.join(",")).into_bytes()
}

fn counts(r: &Received, name: &str) -> f64 {
    // One-hour windows: RATE value × interval recovers the count.
    r.series_named(name)
        .iter()
        .map(|s| s.points.iter().map(|p| p.1).sum::<f64>() * s.interval as f64)
        .sum()
}

fn assert_healthy(agent: &mut Agent) {
    if let Ok(Some(status)) = agent.adp.child.try_wait() {
        panic!("the agent exited ({status}):\n{}", agent.adp.log());
    }
    let (status, body) = http_get(&agent.api, "/health/ready");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&agent.api, "/health/live");
    assert_eq!(status, 200, "{body}");
}

/// Oversized datagrams and stream frames, invalid UTF-8 in every field,
/// a 10,000-tag metric over the default 8 KiB buffer and random garbage, on
/// every listener: each is dropped and counted exactly, nothing of it reaches
/// the intake, the valid metrics sent between them all arrive with exact
/// totals, and the agent stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_dropped_and_counted_while_valid_metrics_arrive_exactly() {
    let (intake, dir) = intake_and_dir().await;
    let mut agent = Agent::start(&intake, dir.path(), None).await;
    let before = Snapshot::take(&agent.api);
    let ok = |listener: &str| format!("input.ok:1|c|#via:{listener}").into_bytes();

    // --- UDP -------------------------------------------------------------
    let invalid_utf8: [&[u8]; 5] = [
        b"input.bad\xffname:1|c",
        b"input.badvalue:1\xfe|c",
        b"input.badset:\xff\xfe|s",
        b"_e{3,4}:\xff\xfe\xfd|text",
        b"_sc|check\xff|0",
    ];
    let mut oversized = b"input.trunc:1|c\n".repeat(8192 / 16);
    oversized.extend_from_slice(b"x"); // 8,193 bytes: one over dogstatsd_buffer_size
    assert_eq!(oversized.len(), 8193);
    let huge = b"input.trunc:1|c\n".repeat(65_000 / 16); // 64,992 bytes, near UDP's limit
    let tags_10k = many_tags("input.tags10k", 10_000, false);
    assert!(tags_10k.len() > 8192 && tags_10k.len() < 65_507);
    let noise = garbage(0x5eed, 4000);

    // Each hostile packet between two valid ones.
    agent.udp(&ok("udp")).await;
    for hostile in [&oversized[..], &huge, &tags_10k].into_iter().chain(invalid_utf8) {
        agent.udp(hostile).await;
        agent.udp(&ok("udp")).await;
    }
    // Invalid UTF-8 in the tags only: repaired and kept.
    let bad_tag: &[u8] = b"input.badtag:1|c|#env:\xc3\x28";
    agent.udp(bad_tag).await;
    // Valid and invalid messages in one datagram: only the invalid one goes.
    agent
        .udp(b"input.ok:1|c|#via:udp\ninput.bad\xff:1|c\ninput.ok:1|c|#via:udp")
        .await;
    agent.udp(&noise).await;
    agent.udp(&ok("udp")).await;

    // --- Unix datagram -----------------------------------------------------
    let mut big = b"input.trunc:1|c\n".repeat(100_000 / 16);
    big.truncate(100_000);
    agent.uds(&ok("uds")).await;
    for hostile in [&oversized[..], &big, &noise] {
        agent.uds(hostile).await;
        agent.uds(&ok("uds")).await;
    }

    // --- Unix stream, length-prefixed ----------------------------------------
    let stream_path = dir.path().join("dsd-stream.socket");
    let stream_packets = Snapshot::take(&agent.api).get(&packets("unix_stream"));
    let mut wire = Vec::new();
    for payload in [
        &ok("stream")[..],
        &big[..], // a 100,000-byte frame
        &ok("stream")[..],
        &tags_10k[..],
        &ok("stream")[..],
        bad_tag,
        &ok("stream")[..],
    ] {
        wire.extend(frame(payload));
    }
    let mut lp = UnixStream::connect(&stream_path).unwrap();
    lp.write_all(&wire).unwrap();
    agent.wait_packets("unix_stream", stream_packets, 7).await;
    // A frame announcing almost 16 MiB: skipped as it streams in, never buffered.
    let mut claim = 16_000_000u32.to_le_bytes().to_vec();
    claim.extend(vec![b'x'; 1 << 20]);
    lp.write_all(&claim).unwrap();
    agent.wait_packets("unix_stream", stream_packets, 8).await;
    drop(lp);
    // Newline framing: an over-long line between valid ones.
    let mut nl = UnixStream::connect(&stream_path).unwrap();
    let mut lines = ok("stream");
    lines.push(b'\n');
    lines.extend(vec![b'y'; 20_000]);
    lines.push(b'\n');
    lines.extend(ok("stream"));
    lines.push(b'\n');
    nl.write_all(&lines).unwrap();
    agent.wait_packets("unix_stream", stream_packets, 11).await;
    drop(nl);

    // --- What arrives, and what is counted -----------------------------------
    let (udp_ok, uds_ok, stream_ok) = (12.0, 4.0, 6.0);
    let repaired = 2.0; // the bad tag over UDP and the stream
                        // A packet is counted when received, its messages when decoded: wait for
                        // the last valid ones (each listener's last message) to be decoded.
    let decoded = before.get("adp_dogstatsd_metrics_total") + udp_ok + uds_ok + stream_ok + repaired;
    wait_metric(&mut agent.adp, &agent.api, "adp_dogstatsd_metrics_total", |n| {
        n >= decoded
    })
    .await;
    let after = Snapshot::take(&agent.api);
    let delta = |s: &str| after.get(s) - before.get(s);
    assert_healthy(&mut agent);
    // The final flush at SIGTERM closes the one-hour window.
    assert_clean_log(&agent.adp.stop().await, &["Failed to"]);
    let r = intake.received();
    let by_tag = |tag: &str| -> f64 {
        r.series_named("input.ok")
            .iter()
            .filter(|s| s.tags == [tag.to_owned()])
            .map(|s| s.points.iter().map(|p| p.1).sum::<f64>() * s.interval as f64)
            .sum()
    };
    assert_eq!(
        (by_tag("via:udp"), by_tag("via:uds"), by_tag("via:stream")),
        (udp_ok, uds_ok, stream_ok)
    );
    let names: std::collections::BTreeSet<&str> = r.series.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        names,
        ["input.badtag", "input.ok"].into(),
        "nothing hostile reached the intake"
    );
    let badtag = r.series_named("input.badtag");
    assert!(
        badtag.iter().all(|s| s.tags == ["env:\u{FFFD}(".to_owned()]),
        "{badtag:?}"
    );
    assert_eq!(counts(&r, "input.badtag"), repaired);
    assert_eq!(delta("adp_dogstatsd_utf8_repaired_total"), repaired);
    assert!(r.events.is_empty() && r.service_checks.is_empty());

    assert_eq!(delta(&truncated("udp")), 3.0, "8,193 B, 65,000 B, 10,000 tags");
    assert_eq!(delta(&truncated("unix_datagram")), 2.0, "8,193 B, 100,000 B");
    assert_eq!(
        delta(&truncated("unix_stream")),
        4.0,
        "100,000 B frame, 10,000 tags, 16 MB claim, 20,000 B line"
    );
    let mut expected: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    expected.insert("truncated", 9.0);
    expected.insert("invalid_utf8", 5.0 + 1.0);
    for (reason, n) in expected_errors(&[&noise, &noise]) {
        *expected.entry(reason).or_default() += n as f64;
    }
    for e in DecodeError::ALL {
        let want = expected.get(e.reason()).copied().unwrap_or(0.0);
        assert_eq!(delta(&errors(e.reason())), want, "decode errors {}", e.reason());
    }
    assert_eq!(
        delta("adp_dogstatsd_metrics_total"),
        udp_ok + uds_ok + stream_ok + repaired,
        "only the valid samples were decoded"
    );
    eprintln!(
        "hostile input: decode errors {:?}, truncated udp/uds/stream {}/{}/{}",
        expected,
        delta(&truncated("udp")),
        delta(&truncated("unix_datagram")),
        delta(&truncated("unix_stream"))
    );
}

/// With a buffer large enough for it, a metric with 10,000 tags is one
/// context whatever the tag order, delivered with all its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_with_10000_tags_is_one_context_delivered_whole() {
    let (intake, dir) = intake_and_dir().await;
    let mut agent = Agent::start(&intake, dir.path(), Some(65_536)).await;
    agent.uds(&many_tags("input.tags10k", 10_000, false)).await;
    agent.udp(&many_tags("input.tags10k", 10_000, true)).await;
    agent.uds(b"input.after:5|c").await;
    let decoded = wait_metric(&mut agent.adp, &agent.api, "adp_dogstatsd_metrics_total", |n| n >= 3.0).await;
    assert_eq!(decoded, 3.0);
    assert_eq!(metric(&agent.api, &errors("truncated")), Some(0.0));
    assert_healthy(&mut agent);
    assert_clean_log(&agent.adp.stop().await, &["Failed to"]);
    let r = intake.received();
    let series = r.series_named("input.tags10k");
    assert!(
        !series.is_empty() && series.iter().all(|s| s.tags.len() == 10_000),
        "{:?}",
        r.requests
    );
    let expected: Vec<String> = (0..10_000).map(|i| format!("t{i:04}")).collect();
    assert_eq!(series[0].tags, expected);
    assert_eq!(counts(&r, "input.tags10k"), 2.0, "one context, both samples");
    assert_eq!(counts(&r, "input.after"), 5.0);
}
