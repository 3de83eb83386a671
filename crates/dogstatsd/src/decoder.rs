//! From packets to owned values: the [`Decoder`] runs the codec over every
//! message of a packet, resolves metric contexts and fills a [`Batch`].
//!
//! A multi-value metric becomes one [`Metric`] per value, all sharing one
//! [`Context`](adp_model::Context). A message whose values include one that is not a
//! number is rejected whole; non-finite values are dropped one by one. Every
//! rejection and drop is counted in [`DecoderTelemetry`].

use std::time::Instant;

use adp_model::{Event, Metric, MetricValue, ServiceCheck};
use stringtheory::MetaString;

use crate::codec::{parse_message, split_messages, CodecConfig, DecodeError, Message, ValueRef};
use crate::context::ContextResolver;
use crate::listener::credentials::Credentials;
use crate::telemetry::DecoderTelemetry;

/// What one packet (or a run of packets) decoded to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Metric samples, one per value.
    pub metrics: Vec<Metric>,
    /// Events.
    pub events: Vec<Event>,
    /// Service checks.
    pub service_checks: Vec<ServiceCheck>,
    /// The sender's credentials, for packets from a Unix socket.
    pub origin: Option<Credentials>,
}

impl Batch {
    /// Whether nothing was decoded.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.events.is_empty() && self.service_checks.is_empty()
    }

    /// Number of metrics, events and service checks.
    pub fn len(&self) -> usize {
        self.metrics.len() + self.events.len() + self.service_checks.len()
    }
}

/// Decodes packets into [`Batch`]es: codec, context resolution and counters.
#[derive(Debug)]
pub struct Decoder {
    config: CodecConfig,
    resolver: ContextResolver,
    telemetry: DecoderTelemetry,
}

impl Decoder {
    /// A decoder with its own context cache on `resolver`'s shared budget.
    pub fn new(config: CodecConfig, resolver: ContextResolver, telemetry: DecoderTelemetry) -> Self {
        Self {
            config,
            resolver,
            telemetry,
        }
    }

    /// The context resolver.
    pub fn resolver(&self) -> &ContextResolver {
        &self.resolver
    }

    /// The counters.
    pub fn telemetry(&self) -> &DecoderTelemetry {
        &self.telemetry
    }

    /// Advances the context cache's clock (expiring idle contexts now and then).
    pub fn tick(&mut self, now: Instant) {
        self.resolver.tick(now);
    }

    /// Decodes every message of `packet` into `batch`, counting errors.
    pub fn decode_packet(&mut self, packet: &[u8], batch: &mut Batch) {
        for message in split_messages(packet) {
            if let Err(e) = self.decode_message(message, batch) {
                self.telemetry.error(e).inc();
            }
        }
    }

    /// Decodes one message into `batch`. An error means nothing was added
    /// (dropped non-finite values are counted here and do not fail the message).
    pub fn decode_message(&mut self, message: &[u8], batch: &mut Batch) -> Result<(), DecodeError> {
        match parse_message(message, &self.config)? {
            Message::Metric(packet) => {
                let context = match self.resolver.resolve(packet.name, packet.tags.iter()) {
                    Ok(c) => c,
                    Err(drop) => {
                        self.telemetry.context_drop(drop).inc();
                        return Ok(());
                    }
                };
                let sample_rate = packet.effective_sample_rate();
                let start = batch.metrics.len();
                for value in packet.values() {
                    let value = match value {
                        Ok(ValueRef::Number(n)) => MetricValue::Number(n),
                        Ok(ValueRef::SetMember(m)) => MetricValue::SetMember(MetaString::from(m)),
                        Err(DecodeError::NonFinite) => {
                            self.telemetry.error(DecodeError::NonFinite).inc();
                            continue;
                        }
                        Err(e) => {
                            batch.metrics.truncate(start);
                            return Err(e);
                        }
                    };
                    batch.metrics.push(Metric {
                        context: context.clone(),
                        kind: packet.kind,
                        value,
                        sample_rate,
                        timestamp: packet.timestamp,
                    });
                }
                let added = batch.metrics.len() - start;
                self.telemetry.metrics.add(added as u64);
            }
            Message::Event(e) => {
                batch.events.push(Event {
                    title: e.title().into_owned(),
                    text: e.text().into_owned(),
                    timestamp: e.timestamp,
                    hostname: e.hostname.map(str::to_owned),
                    aggregation_key: e.aggregation_key.map(str::to_owned),
                    priority: e.priority,
                    source_type_name: e.source_type_name.map(str::to_owned),
                    alert_type: e.alert_type,
                    tags: e.tags.to_sorted_vec(),
                });
                self.telemetry.events.inc();
            }
            Message::ServiceCheck(sc) => {
                batch.service_checks.push(ServiceCheck {
                    name: sc.name.to_owned(),
                    status: sc.status,
                    timestamp: sc.timestamp,
                    hostname: sc.hostname.map(str::to_owned),
                    message: sc.message().map(|m| m.into_owned()),
                    tags: sc.tags.to_sorted_vec(),
                });
                self.telemetry.service_checks.inc();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::context::{ContextBudget, ContextDrop};
    use adp_model::{EventAlertType, EventPriority, MetricKind, ServiceCheckStatus};

    fn decoder_with(bytes: usize, limit: usize) -> Decoder {
        let budget = ContextBudget::new(NonZeroUsize::new(bytes).unwrap(), limit);
        Decoder::new(
            CodecConfig::default(),
            ContextResolver::new(budget, Duration::from_secs(20)),
            DecoderTelemetry::detached(),
        )
    }

    fn decoder() -> Decoder {
        decoder_with(1 << 20, 1000)
    }

    fn decode(d: &mut Decoder, packet: &str) -> Batch {
        let mut b = Batch::default();
        d.decode_packet(packet.as_bytes(), &mut b);
        b
    }

    fn numbers(b: &Batch) -> Vec<f64> {
        b.metrics
            .iter()
            .map(|m| match m.value {
                MetricValue::Number(n) => n,
                MetricValue::SetMember(_) => panic!("set"),
            })
            .collect()
    }

    #[test]
    fn a_packet_of_many_messages_decodes_every_one() {
        let mut d = decoder();
        let b = decode(
            &mut d,
            "page.views:1|c|#env:prod\nfan.speed:2.5|g\n_e{2,2}:hi|yo|#x\n_sc|db|1|m:slow\nusers:bob|s\nlat:1:2:3|d|@0.5\n",
        );
        assert_eq!(b.metrics.len(), 6);
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.service_checks.len(), 1);
        assert_eq!(b.metrics[0].context.name(), "page.views");
        assert_eq!(b.metrics[0].context.tags(), ["env:prod"]);
        assert_eq!(b.metrics[0].kind, MetricKind::Count);
        assert_eq!(b.metrics[2].value, MetricValue::SetMember(MetaString::from("bob")));
        assert_eq!(
            numbers(&Batch {
                metrics: b.metrics[3..].to_vec(),
                ..Batch::default()
            }),
            vec![1.0, 2.0, 3.0]
        );
        assert!(b.metrics[3..]
            .iter()
            .all(|m| m.sample_rate == 0.5 && m.context == b.metrics[3].context));
        assert_eq!(d.telemetry().metrics.get(), 6);
        assert_eq!(d.telemetry().events.get(), 1);
        assert_eq!(d.telemetry().service_checks.get(), 1);
    }

    #[test]
    fn events_and_service_checks_become_owned_values() {
        let mut d = decoder();
        let b = decode(
            &mut d,
            "_e{5,4}:Title|a\\nb|p:low|t:error|#z,a,z|h:h1|k:k1|s:src|d:17\n_sc|chk|3|d:18|h:h2|#t2,t1|m:down",
        );
        assert_eq!(
            b.events,
            vec![Event {
                title: "Title".into(),
                text: "a\nb".into(),
                timestamp: Some(17),
                hostname: Some("h1".into()),
                aggregation_key: Some("k1".into()),
                priority: EventPriority::Low,
                source_type_name: Some("src".into()),
                alert_type: EventAlertType::Error,
                tags: vec!["a".into(), "z".into()],
            }]
        );
        assert_eq!(
            b.service_checks,
            vec![ServiceCheck {
                name: "chk".into(),
                status: ServiceCheckStatus::Unknown,
                timestamp: Some(18),
                hostname: Some("h2".into()),
                message: Some("down".into()),
                tags: vec!["t1".into(), "t2".into()],
            }]
        );
    }

    #[test]
    fn timestamped_counts_carry_a_sample_rate_of_one() {
        let mut d = decoder();
        let b = decode(&mut d, "c:4|c|@0.25|T1700000000\ng:4|g|@0.25|T1700000000");
        assert_eq!(b.metrics[0].sample_rate, 1.0);
        assert_eq!(b.metrics[0].timestamp, Some(1_700_000_000));
        assert_eq!(b.metrics[1].sample_rate, 0.25);
    }

    #[test]
    fn non_finite_values_are_dropped_and_counted() {
        let mut d = decoder();
        let b = decode(&mut d, "x:1:nan:2:inf|d\ny:nan|g");
        assert_eq!(numbers(&b), vec![1.0, 2.0]);
        assert_eq!(d.telemetry().error(DecodeError::NonFinite).get(), 3);
        assert_eq!(d.telemetry().metrics.get(), 2);
    }

    #[test]
    fn one_bad_value_rejects_the_whole_message() {
        let mut d = decoder();
        let b = decode(&mut d, "ok:1|c\nx:1:2:zz|d\nok:2|c");
        assert_eq!(numbers(&b), vec![1.0, 2.0]);
        assert_eq!(d.telemetry().error(DecodeError::InvalidValue).get(), 1);
    }

    #[test]
    fn malformed_messages_are_counted_by_reason_and_the_rest_kept() {
        let mut d = decoder();
        let b = decode(&mut d, "x|c\nx:1|zz\n_e{9,9}:a|b\n_sc|n|7\nx:1|c|@2\ngood:1|g");
        assert_eq!(b.metrics.len(), 1);
        let t = d.telemetry();
        for (e, n) in [
            (DecodeError::NoValue, 1),
            (DecodeError::InvalidType, 1),
            (DecodeError::EventLength, 1),
            (DecodeError::ServiceCheckStatus, 1),
            (DecodeError::InvalidSampleRate, 1),
            (DecodeError::InvalidUtf8, 0),
        ] {
            assert_eq!(t.error(e).get(), n, "{e:?}");
        }
    }

    #[test]
    fn the_same_context_is_shared_across_packets_and_tag_orders() {
        let mut d = decoder();
        let a = decode(&mut d, "m:1|c|#a,b");
        let b = decode(&mut d, "m:1|c|#b,a,a");
        assert_eq!(a.metrics[0].context, b.metrics[0].context);
        assert_eq!(d.resolver().cached(), 1);
    }

    #[test]
    fn context_drops_are_counted_and_known_contexts_keep_working() {
        let mut d = decoder_with(1 << 16, 2);
        let b = decode(&mut d, "a:1|c\nb:1|c\nc:1|c\na:2|c");
        assert_eq!(numbers(&b), vec![1.0, 1.0, 2.0]);
        assert_eq!(d.telemetry().context_drop(ContextDrop::ContextLimit).get(), 1);
    }

    proptest! {
        #[test]
        fn property_test_decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut d = decoder();
            let mut b = Batch::default();
            d.decode_packet(&bytes, &mut b);
            let all_finite = b.metrics.iter().all(|m| match m.value {
                MetricValue::Number(n) => n.is_finite(),
                MetricValue::SetMember(_) => true,
            });
            prop_assert!(all_finite);
        }
    }
}
