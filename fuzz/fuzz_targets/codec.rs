//! Arbitrary bytes through everything that reads untrusted input: the codec
//! (via the decoder, context resolution included) and the stream framer.
//! Any panic, overflow or out-of-bounds access is a finding.
#![no_main]

use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::time::Duration;

use adp_dogstatsd::codec::{parse_message, split_messages, CodecConfig, Message};
use adp_dogstatsd::context::{ContextBudget, ContextResolver};
use adp_dogstatsd::listener::framing::StreamFramer;
use adp_dogstatsd::telemetry::DecoderTelemetry;
use adp_dogstatsd::{Batch, Decoder};
use adp_model::MetricValue;
use libfuzzer_sys::fuzz_target;

fn budget() -> ContextBudget {
    // Small on purpose: the interner-full and context-limit paths get exercised too.
    static BUDGET: OnceLock<ContextBudget> = OnceLock::new();
    BUDGET.get_or_init(|| ContextBudget::new(NonZeroUsize::new(64 * 1024).unwrap(), 512)).clone()
}

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

    let mut decoder = Decoder::new(
        CodecConfig::default(),
        ContextResolver::new(budget(), Duration::from_secs(20)),
        DecoderTelemetry::detached(),
    );
    let mut batch = Batch::default();
    decoder.decode_packet(data, &mut batch);
    for m in &batch.metrics {
        if let MetricValue::Number(n) = m.value {
            assert!(n.is_finite());
        }
        assert!(m.sample_rate > 0.0 && m.sample_rate <= 1.0);
    }

    let mut framer = StreamFramer::new(256);
    for chunk in data.chunks(7) {
        framer.feed(chunk, &mut |_| {});
        assert!(framer.buffered() <= 256 + 7 + 4);
    }
});
