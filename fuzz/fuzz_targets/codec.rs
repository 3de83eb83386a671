//! Arbitrary bytes through everything that reads untrusted input: the codec
//! (via the decoder), context resolution in the aggregator's context store,
//! and the stream framer. Any panic, overflow or out-of-bounds access is a
//! finding.
#![no_main]

use std::sync::Mutex;

use adp_aggregate::{AggregateConfig, Aggregator, Growth};
use adp_dogstatsd::codec::{parse_message, split_messages, CodecConfig, Message};
use adp_dogstatsd::listener::framing::StreamFramer;
use adp_dogstatsd::telemetry::DecoderTelemetry;
use adp_dogstatsd::{Batch, Decoder};
use libfuzzer_sys::fuzz_target;

/// One aggregator across inputs, small on purpose: the interner-full and
/// context-limit paths get exercised too, and its flush runs now and then.
static AGGREGATOR: Mutex<Option<(Aggregator, i64)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let strict = CodecConfig { permissive: false, ..CodecConfig::default() };
    for msg in split_messages(data) {
        for config in [CodecConfig::default(), strict] {
            match parse_message(msg, &config) {
                Ok(Message::Metric(m)) => {
                    let _ = m.values().count();
                    let _ = m.tags.iter().count();
                    let _ = m.effective_sample_rate();
                }
                Ok(Message::Event(e)) => {
                    let _ = (e.title(), e.text(), e.tags.to_sorted_vec());
                }
                Ok(Message::ServiceCheck(sc)) => {
                    let _ = sc.message();
                }
                Err(e) => {
                    let _ = e.reason();
                }
            }
        }
    }

    let mut decoder = Decoder::new(CodecConfig::default(), DecoderTelemetry::detached());
    let mut batch = Batch::default();
    decoder.decode_packet(data, &mut batch);
    for s in batch.metrics.samples() {
        assert!(s.is_member() || s.number().is_finite());
        assert!(s.sample_rate > 0.0 && s.sample_rate <= 1.0);
    }
    let mut guard = AGGREGATOR.lock().unwrap_or_else(|e| e.into_inner());
    let (aggregator, now) = guard.get_or_insert_with(|| {
        let config = AggregateConfig {
            aggregate_context_limit: 512,
            ..AggregateConfig::default()
        };
        let registry = adp_telemetry::Registry::new();
        (Aggregator::new(config, &registry).unwrap().with_interner(64 * 1024, false), 1_700_000_000)
    });
    *now += 1;
    aggregator.insert_batch(&batch.metrics, *now, Growth::Allowed);
    if *now % 64 == 0 {
        let _ = aggregator.flush(*now, false);
    }

    let mut framer = StreamFramer::new(256);
    for chunk in data.chunks(7) {
        framer.feed(chunk, &mut |_| {});
        assert!(framer.buffered() <= 256 + 7 + 4);
    }
});
