//! Measures series encoding on the agent's path (aggregated [`Series`] in,
//! payloads out, one at a time): time, payload count and compressed size for
//! 100,000 single-point series (DogStatsD-like names and tags) with each
//! compression kind.
//!
//! ```text
//! cargo run --release -p adp-encoder --example encode_throughput
//! ```

use std::time::Instant;

use adp_encoder::{Encoder, EncoderConfig};
use adp_model::{context_key, Context, Series, SeriesKind};
use adp_telemetry::Registry;
use adp_wire::CompressionKind;
use stringtheory::MetaString;

fn main() {
    const SERIES: usize = 100_000;
    let names: Vec<String> = (0..SERIES)
        .map(|i| format!("app.service.requests.{}", i % 500))
        .collect();
    let tags: Vec<Vec<String>> = (0..SERIES)
        .map(|i| {
            vec![
                "env:prod".to_owned(),
                format!("service:svc-{}", i % 37),
                format!("pod:pod-{i}"),
                "version:1.2.3".into(),
            ]
        })
        .collect();
    let series: Vec<Series> = (0..SERIES)
        .map(|i| {
            let mut sorted: Vec<&str> = tags[i].iter().map(String::as_str).collect();
            sorted.sort_unstable();
            let key = context_key(&names[i], sorted.iter().copied());
            let tags = sorted.into_iter().map(MetaString::from).collect();
            let context = Context::from_parts(key, MetaString::from(names[i].as_str()), tags);
            Series {
                name: context.name().clone(),
                context,
                kind: SeriesKind::Gauge,
                interval_secs: 10,
                points: vec![(1_700_000_000, f64::from(u32::try_from(i).unwrap()) * 0.1)],
            }
        })
        .collect();
    for (kind, level) in [
        (CompressionKind::Zstd, 1),
        (CompressionKind::Zstd, 3),
        (CompressionKind::Zlib, 6),
        (CompressionKind::None, 0),
    ] {
        let config = EncoderConfig {
            hostname: "board-1".into(),
            serializer_compressor_kind: kind,
            serializer_zstd_compressor_level: if kind == CompressionKind::Zstd { level } else { 1 },
            ..EncoderConfig::default()
        };
        let registry = Registry::new();
        let encoder = Encoder::new(config, &registry).expect("valid config");
        let started = Instant::now();
        let (mut payloads, mut compressed) = (0, 0);
        for payload in encoder.series_payloads(&series) {
            payloads += 1;
            compressed += payload.expect("encode").body.len();
        }
        let elapsed = started.elapsed();
        let uncompressed = registry
            .value("adp_payloads_uncompressed_bytes", &[("endpoint", "series")])
            .unwrap_or(0);
        println!(
            "{kind:>4} level {level}: {SERIES} series in {:>7.1} ms ({:>9.0} series/s), {} payloads, {} -> {} bytes ({:.1}x)",
            elapsed.as_secs_f64() * 1e3,
            SERIES as f64 / elapsed.as_secs_f64(),
            payloads,
            uncompressed,
            compressed,
            uncompressed as f64 / compressed as f64,
        );
    }
}
