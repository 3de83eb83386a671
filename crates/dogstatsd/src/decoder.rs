//! From packets to owned values: the [`Decoder`] runs the codec over every
//! message of a packet and fills a [`Batch`].
//!
//! Metric messages become samples of an [`adp_model::MetricBatch`]: the
//! message's name and tags are copied into the batch once and keyed
//! ([`adp_model::context_key`]), and each value becomes one sample of that
//! context. Contexts are resolved downstream, by the aggregator, in one hash
//! probe per message: the decoder keeps no context state of its own. A
//! message whose values include one that is not a number is rejected whole;
//! non-finite values are dropped one by one. Every rejection and drop is
//! counted in [`DecoderTelemetry`].

use adp_model::{Event, MetricBatch, ServiceCheck};

use crate::codec::{parse_message, split_messages, CodecConfig, DecodeError, Message, ValueRef};
use crate::listener::credentials::Credentials;
use crate::telemetry::DecoderTelemetry;

/// What one packet (or a run of packets) decoded to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Metric samples, one per value, with their contexts' names and tags.
    pub metrics: MetricBatch,
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

    /// Number of metric samples, events and service checks.
    pub fn len(&self) -> usize {
        self.metrics.len() + self.events.len() + self.service_checks.len()
    }
}

/// Decodes packets into [`Batch`]es: codec and counters.
#[derive(Debug)]
pub struct Decoder {
    config: CodecConfig,
    telemetry: DecoderTelemetry,
}

impl Decoder {
    /// A decoder counting into `telemetry`.
    pub fn new(config: CodecConfig, telemetry: DecoderTelemetry) -> Self {
        Self { config, telemetry }
    }

    /// The counters.
    pub fn telemetry(&self) -> &DecoderTelemetry {
        &self.telemetry
    }

    /// Decodes every message of `packet` into `batch`, counting errors.
    pub fn decode_packet(&mut self, packet: &[u8], batch: &mut Batch) {
        let messages = memchr::memchr_iter(b'\n', packet).count() + 1;
        batch.metrics.reserve(packet.len(), messages);
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
                let metrics = &mut batch.metrics;
                let mark = metrics.mark();
                let context = metrics.add_context(packet.name, packet.tags.as_raw(), std::iter::empty());
                let sample_rate = packet.effective_sample_rate();
                let mut added = 0u64;
                for value in packet.values() {
                    match value {
                        Ok(ValueRef::Number(n)) => {
                            metrics.push_number(context, packet.kind, n, sample_rate, packet.timestamp);
                        }
                        Ok(ValueRef::SetMember(m)) => metrics.push_member(context, m, sample_rate, packet.timestamp),
                        Err(DecodeError::NonFinite) => {
                            self.telemetry.error(DecodeError::NonFinite).inc();
                            continue;
                        }
                        Err(e) => {
                            metrics.truncate(mark);
                            return Err(e);
                        }
                    }
                    added += 1;
                }
                if added == 0 {
                    // Every value was dropped: no context either.
                    metrics.truncate(mark);
                }
                self.telemetry.metrics.add(added);
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
    use proptest::prelude::*;

    use super::*;
    use adp_model::{EventAlertType, EventPriority, MetricKind, ServiceCheckStatus};

    fn decoder() -> Decoder {
        Decoder::new(CodecConfig::default(), DecoderTelemetry::detached())
    }

    /// A sample as `(name, tags, kind, number or member, rate, timestamp)`.
    type Row = (String, Vec<String>, MetricKind, String, f64, Option<i64>);

    /// Each sample as a [`Row`].
    fn samples(b: &Batch) -> Vec<Row> {
        let m = &b.metrics;
        m.samples()
            .iter()
            .map(|s| {
                let c = m.context_of(s);
                let value = if s.is_member() {
                    m.member(s).to_owned()
                } else {
                    s.number().to_string()
                };
                (
                    m.name(c).to_owned(),
                    m.tags_of(c).map(str::to_owned).collect(),
                    s.kind,
                    value,
                    s.sample_rate,
                    s.timestamp(),
                )
            })
            .collect()
    }

    fn decode(d: &mut Decoder, packet: &str) -> Batch {
        let mut b = Batch::default();
        d.decode_packet(packet.as_bytes(), &mut b);
        b
    }

    fn numbers(b: &Batch) -> Vec<f64> {
        b.metrics
            .samples()
            .iter()
            .map(|s| {
                assert!(!s.is_member(), "set");
                s.number()
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
        let s = samples(&b);
        assert_eq!(
            s[0],
            (
                "page.views".into(),
                vec!["env:prod".into()],
                MetricKind::Count,
                "1".into(),
                1.0,
                None
            )
        );
        assert_eq!((s[2].2, s[2].3.as_str()), (MetricKind::Set, "bob"));
        let lat: Vec<(&str, f64)> = s[3..].iter().map(|x| (x.3.as_str(), x.4)).collect();
        assert_eq!(lat, [("1", 0.5), ("2", 0.5), ("3", 0.5)]);
        // The values of one message share its context.
        let m = &b.metrics;
        assert!(m.samples()[3..].iter().all(|x| x.context == m.samples()[3].context));
        assert_eq!(m.context_of(&m.samples()[3]).key, adp_model::context_key("lat", []));
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
        let s = samples(&b);
        assert_eq!((s[0].4, s[0].5), (1.0, Some(1_700_000_000)));
        assert_eq!(s[1].4, 0.25);
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
    fn the_same_context_has_the_same_key_across_packets_and_tag_orders() {
        let mut d = decoder();
        let a = decode(&mut d, "m:1|c|#a,b");
        let b = decode(&mut d, "m:1|c|#b,a,a");
        let key = |b: &Batch| b.metrics.context_of(&b.metrics.samples()[0]).key;
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&decode(&mut d, "m:1|c|#a")));
    }

    #[test]
    fn a_rejected_message_leaves_nothing_in_the_batch() {
        let mut d = decoder();
        let mut b = Batch::default();
        d.decode_packet(b"ok:1|c", &mut b);
        let after_one = b.clone();
        d.decode_packet(b"bad:1:2:zz|d|#t\nnan:nan|g", &mut b);
        assert_eq!(
            b, after_one,
            "the bad value's message and the all-NaN one added nothing"
        );
    }

    proptest! {
        #[test]
        fn property_test_decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut d = decoder();
            let mut b = Batch::default();
            d.decode_packet(&bytes, &mut b);
            let all_finite = b.metrics.samples().iter().all(|s| s.is_member() || s.number().is_finite());
            prop_assert!(all_finite);
        }
    }
}
