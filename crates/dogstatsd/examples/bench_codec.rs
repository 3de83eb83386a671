//! Throughput from datagram to aggregation state on one core: the DogStatsD
//! codec (decode, context key) and the aggregator's insert (one hash probe
//! per message, the context store's interning for a new context), on the
//! load shape of the Saluki memory gates (lading's dogstatsd generator).
//!
//! ```text
//! cargo run --release -p adp-dogstatsd --example bench_codec   # or: make bench-codec
//! ```
//!
//! Shape: metric names 1–200 chars, tags 3–150 chars, 2–50 tags per message,
//! multi-value messages (2–32 values) with probability 0.08, type weights
//! count 208, gauge 66, distribution 72, set 9, histogram 1; messages packed
//! into 8 KiB datagrams. Contexts are drawn from a fixed pool (10,000 by
//! default, like `dsd_medium`), tags from a pool shared between contexts. The
//! generator is seeded, so every run decodes the same bytes.
//!
//! Rates are per CPU second of the decoding thread (`CLOCK_THREAD_CPUTIME_ID`),
//! so a busy shared machine does not deflate them; wall time is printed too.
//!
//! Options (environment): `BENCH_CONTEXTS` (pool size), `BENCH_SECONDS`
//! (minimum CPU time measured, default 3), `BENCH_SEED`, `BENCH_ENRICH`
//! (`all`, or some of `mapper,namespace,tags`: enrich every metric with a
//! mapper profile tried on every name, whose pattern matches none, a
//! namespace, two `dogstatsd_tags`), `BENCH_MAPPER_CACHE` (its
//! `dogstatsd_mapper_cache_size`, default 1000: fewer than the corpus's
//! names, so most lookups miss and run the pattern).

use std::time::{Duration, Instant};

use adp_aggregate::{AggregateConfig, Aggregator, Growth};
use adp_dogstatsd::codec::CodecConfig;
use adp_dogstatsd::enrich::{EnrichConfig, Enricher};
use adp_dogstatsd::mapper::{MappingProfileConfig, MetricMappingConfig};
use adp_dogstatsd::telemetry::DecoderTelemetry;
use adp_dogstatsd::{Batch, Decoder};

/// xorshift64*: small, seeded, good enough for load generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = u64::try_from(hi - lo + 1).unwrap();
        lo + usize::try_from(self.next() % span).unwrap()
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn string(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.range(0, alphabet.len() - 1)]))
            .collect()
    }
}

const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_.";
const TAG_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-./";

/// CPU time of this thread: on a shared machine wall time also counts other
/// processes' slices, CPU time measures only this core's work.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(u64::try_from(ts.tv_sec).unwrap(), u32::try_from(ts.tv_nsec).unwrap())
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Corpus {
    packets: Vec<Vec<u8>>,
    bytes: u64,
    messages: u64,
    samples: u64,
}

fn generate(rng: &mut Rng, contexts: usize, target_bytes: usize) -> Corpus {
    let tag_pool: Vec<String> = (0..contexts.max(100) / 2)
        .map(|_| {
            let len = rng.range(3, 150);
            let key_len = rng.range(1, (len - 1).min(20));
            format!(
                "{}:{}",
                rng.string(key_len, TAG_CHARS),
                rng.string(len - key_len - 1, TAG_CHARS)
            )
        })
        .collect();
    let pool: Vec<(String, String)> = (0..contexts)
        .map(|_| {
            let name_len = rng.range(1, 200);
            let name = rng.string(name_len, NAME_CHARS);
            let n_tags = rng.range(2, 50);
            let tags: Vec<&str> = (0..n_tags)
                .map(|_| tag_pool[rng.range(0, tag_pool.len() - 1)].as_str())
                .collect();
            (name, tags.join(","))
        })
        .collect();
    // count 208, gauge 66, distribution 72, set 9, histogram 1
    let kinds = [("c", 208), ("g", 66), ("d", 72), ("s", 9), ("h", 1)];
    let total_weight: usize = kinds.iter().map(|k| k.1).sum();

    let mut corpus = Corpus {
        packets: Vec::new(),
        bytes: 0,
        messages: 0,
        samples: 0,
    };
    let mut packet = Vec::with_capacity(8192);
    while corpus.bytes < target_bytes as u64 {
        let (name, tags) = &pool[rng.range(0, pool.len() - 1)];
        let mut w = rng.range(0, total_weight - 1);
        let kind = kinds
            .iter()
            .find(|(_, weight)| {
                if w < *weight {
                    true
                } else {
                    w -= weight;
                    false
                }
            })
            .unwrap()
            .0;
        let values = if kind != "s" && rng.chance(0.08) {
            rng.range(2, 32)
        } else {
            1
        };
        let mut msg = format!("{name}:");
        for i in 0..values {
            if i > 0 {
                msg.push(':');
            }
            if kind == "s" {
                msg.push_str(&rng.range(0, 10_000).to_string());
            } else if rng.chance(0.5) {
                msg.push_str(&rng.range(0, 100_000).to_string());
            } else {
                msg.push_str(&format!("{:.3}", rng.range(0, 10_000_000) as f64 / 1000.0));
            }
        }
        msg.push('|');
        msg.push_str(kind);
        msg.push_str("|#");
        msg.push_str(tags);
        if !packet.is_empty() && packet.len() + 1 + msg.len() > 8192 {
            corpus.bytes += packet.len() as u64;
            corpus
                .packets
                .push(std::mem::replace(&mut packet, Vec::with_capacity(8192)));
        }
        if !packet.is_empty() {
            packet.push(b'\n');
        }
        packet.extend_from_slice(msg.as_bytes());
        corpus.messages += 1;
        corpus.samples += values as u64;
    }
    if !packet.is_empty() {
        corpus.bytes += packet.len() as u64;
        corpus.packets.push(packet);
    }
    corpus
}

fn main() {
    let contexts: usize = env_or("BENCH_CONTEXTS", 10_000);
    let min_secs: f64 = env_or("BENCH_SECONDS", 3.0);
    let seed: u64 = env_or("BENCH_SEED", 0x5eed_d065_7a75);
    let mut rng = Rng(seed | 1);
    let corpus = generate(&mut rng, contexts, 48 << 20);

    let telemetry = DecoderTelemetry::detached();
    let mut decoder = Decoder::new(CodecConfig::default(), telemetry.clone());
    let registry = adp_telemetry::Registry::new();
    let mut aggregator = Aggregator::new(AggregateConfig::default(), &registry)
        .expect("default configuration")
        .with_interner(64 << 20, true);
    // One window for the whole run: every sample lands in open state.
    let now = 1_700_000_000;
    let enrich = std::env::var("BENCH_ENRICH").unwrap_or_default();
    if !enrich.is_empty() {
        let all = enrich == "1" || enrich == "all";
        let on = |part: &str| all || enrich.split(',').any(|p| p == part);
        let mut config = EnrichConfig::default();
        if on("namespace") {
            config.statsd_metric_namespace = "bench".into();
        }
        if on("tags") {
            config.dogstatsd_tags = vec!["site:lab".into(), "rack:3".into()];
        }
        if on("mapper") {
            config.dogstatsd_mapper_profiles = vec![MappingProfileConfig {
                name: "all".into(),
                prefix: "*".into(),
                mappings: vec![MetricMappingConfig {
                    match_pattern: "never.*.matched".into(),
                    name: "x".into(),
                    ..MetricMappingConfig::default()
                }],
            }];
        }
        if let Ok(size) = std::env::var("BENCH_MAPPER_CACHE") {
            config.dogstatsd_mapper_cache_size = size.parse().expect("BENCH_MAPPER_CACHE: an integer");
        }
        let (enricher, error) = Enricher::new(&config);
        assert!(error.is_none(), "{error:?}");
        decoder = decoder.with_enricher(enricher);
        println!("enrichment: {enrich}");
    }
    let mut batch = Batch::default();

    // Warm-up pass: creates (interns) every context; timed separately.
    let start = thread_cpu_time();
    for p in &corpus.packets {
        decoder.decode_packet(p, &mut batch);
        aggregator.insert_batch(&batch.metrics, now, Growth::Allowed);
        batch.metrics.clear();
    }
    let warmup = thread_cpu_time() - start;
    let decoded = telemetry.metrics.get();
    assert_eq!(decoded, corpus.samples, "every sample decodes (no errors, no drops)");

    let mut passes = 0u64;
    let wall = Instant::now();
    let start = thread_cpu_time();
    loop {
        for p in &corpus.packets {
            decoder.decode_packet(p, &mut batch);
            aggregator.insert_batch(&batch.metrics, now, Growth::Allowed);
            batch.metrics.clear();
        }
        passes += 1;
        if (thread_cpu_time() - start).as_secs_f64() >= min_secs {
            break;
        }
    }
    let secs = (thread_cpu_time() - start).as_secs_f64();
    let wall_secs = wall.elapsed().as_secs_f64();
    let samples = corpus.samples * passes;
    assert_eq!(telemetry.metrics.get(), decoded * (passes + 1));

    println!("DogStatsD datagram-to-aggregation benchmark (decode + context key + aggregator insert, 1 thread)");
    println!(
        "corpus: {} packets, {:.1} MiB, {} messages, {} samples, {} contexts in pool, seed {seed:#x}",
        corpus.packets.len(),
        corpus.bytes as f64 / f64::from(1 << 20),
        corpus.messages,
        corpus.samples,
        contexts
    );
    let memory = aggregator.memory();
    println!(
        "first pass (creating {} contexts, {} KiB of strings): {:.0} metrics/s",
        memory.contexts,
        (memory.interner_bytes + memory.heap_bytes) / 1024,
        corpus.samples as f64 / warmup.as_secs_f64()
    );
    println!(
        "steady state: {passes} passes, {secs:.2} s CPU ({wall_secs:.2} s wall): {:.0} metrics/s/core, {:.0} messages/s/core, {:.0} MiB/s/core",
        samples as f64 / secs,
        (corpus.messages * passes) as f64 / secs,
        (corpus.bytes * passes) as f64 / secs / f64::from(1 << 20)
    );
    println!("metrics_per_second_per_core={:.0}", samples as f64 / secs);
}
