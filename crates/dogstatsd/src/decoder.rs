//! From packets to owned values: the [`Decoder`] runs the codec over every
//! message of a packet, enriches metrics and fills a [`Batch`].
//!
//! Metric messages become samples of an [`adp_model::MetricBatch`]: the
//! message's final name and tags are copied into the batch once and keyed
//! ([`adp_model::context_key`]), and each value becomes one sample of that
//! context. Contexts are resolved downstream, by the aggregator, in one hash
//! probe per message: the decoder keeps no context state of its own. A
//! message whose values include one that is not a number is rejected whole;
//! non-finite values are dropped one by one. Every rejection and drop is
//! counted in [`DecoderTelemetry`].
//!
//! A message refused as invalid UTF-8 is parsed once more with its tags
//! repaired ([`repair_tags`]); it is kept when the invalid bytes were only in
//! its tags.
//!
//! With an [`Enricher`] ([`Decoder::with_enricher`]), each metric is renamed,
//! tagged, dropped or copied as the Agent's DogStatsD server does (see
//! [`crate::enrich`]): its context is the final name and the client's tags
//! followed by the added ones, a histogram or timer may also be sent as a
//! distribution (a second context of the batch, the same samples), and
//! events and service checks get `dogstatsd_tags`. With nothing configured
//! the enricher is skipped altogether: one branch per metric message.

use adp_model::{Event, MetricBatch, MetricKind, ServiceCheck};

use crate::codec::{
    parse_message, repair_tags, split_messages, CodecConfig, DecodeError, Message, MetricPacket, Tags, ValueRef,
};
use crate::enrich::{Enricher, MetricDecision};
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
    /// `None` when nothing is configured ([`Enricher::is_passthrough`]).
    enricher: Option<Enricher>,
}

impl Decoder {
    /// A decoder counting into `telemetry`.
    pub fn new(config: CodecConfig, telemetry: DecoderTelemetry) -> Self {
        Self {
            config,
            telemetry,
            enricher: None,
        }
    }

    /// Enriches every metric, event and service check with `enricher` (kept
    /// only when it changes something).
    pub fn with_enricher(mut self, enricher: Enricher) -> Self {
        self.enricher = (!enricher.is_passthrough()).then_some(enricher);
        self
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
        let repaired;
        let parsed = match parse_message(message, &self.config) {
            Err(DecodeError::InvalidUtf8) => {
                repaired = repair_tags(message).ok_or(DecodeError::InvalidUtf8)?;
                let parsed = parse_message(&repaired, &self.config)?;
                self.telemetry.utf8_repaired.inc();
                parsed
            }
            other => other?,
        };
        let Self {
            telemetry, enricher, ..
        } = self;
        let extra_tags = enricher.as_ref().map_or(&[][..], |e| e.dogstatsd_tags());
        match parsed {
            Message::Metric(packet) => {
                let Some(enricher) = enricher else {
                    let added = push_samples(telemetry, &packet, packet.name, std::iter::empty(), &mut batch.metrics)?;
                    telemetry.metrics.add(added);
                    return Ok(());
                };
                let is_histogram = matches!(packet.kind, MetricKind::Histogram | MetricKind::Timer);
                match enricher.metric(packet.name, is_histogram) {
                    MetricDecision::Drop(reason) => {
                        // Counted per sample, as the samples the client sent;
                        // a value that is not a number still rejects the message.
                        let mut dropped = 0;
                        for value in packet.values() {
                            match value {
                                Ok(_) => dropped += 1,
                                Err(DecodeError::NonFinite) => telemetry.error(DecodeError::NonFinite).inc(),
                                Err(e) => return Err(e),
                            }
                        }
                        telemetry.filtered(reason).add(dropped);
                    }
                    MetricDecision::Keep(enriched) => {
                        let metrics = &mut batch.metrics;
                        let start = metrics.len();
                        let added = push_samples(telemetry, &packet, enriched.name(), enriched.added_tags(), metrics)?;
                        telemetry.metrics.add(added);
                        if let (Some(name), Some(first)) = (enriched.distribution_name(), metrics.samples().get(start))
                        {
                            // The same samples, as a distribution of its own context.
                            let copy = metrics.add_renamed_context(first.context, &name);
                            metrics.copy_samples(start, copy, MetricKind::Distribution);
                        }
                    }
                }
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
                    tags: sorted_tags(e.tags, extra_tags),
                });
                telemetry.events.inc();
            }
            Message::ServiceCheck(sc) => {
                batch.service_checks.push(ServiceCheck {
                    name: sc.name.to_owned(),
                    status: sc.status,
                    timestamp: sc.timestamp,
                    hostname: sc.hostname.map(str::to_owned),
                    message: sc.message().map(|m| m.into_owned()),
                    tags: sorted_tags(sc.tags, extra_tags),
                });
                telemetry.service_checks.inc();
            }
        }
        Ok(())
    }
}

/// Adds the context of `name` with `packet`'s tags followed by `added_tags`
/// to `metrics`, and one sample of `packet`'s kind per value. Returns how
/// many samples were added; on an error, or when every value was dropped,
/// nothing is (no context either).
fn push_samples<'t>(
    telemetry: &DecoderTelemetry,
    packet: &MetricPacket<'t>,
    name: &str,
    added_tags: impl Iterator<Item = &'t str> + Clone,
    metrics: &mut MetricBatch,
) -> Result<u64, DecodeError> {
    let mark = metrics.mark();
    let context = metrics.add_context(name, packet.tags.as_raw(), added_tags);
    let sample_rate = packet.effective_sample_rate();
    let mut added = 0u64;
    for value in packet.values() {
        match value {
            Ok(ValueRef::Number(n)) => metrics.push_number(context, packet.kind, n, sample_rate, packet.timestamp),
            Ok(ValueRef::SetMember(m)) => metrics.push_member(context, m, sample_rate, packet.timestamp),
            Err(DecodeError::NonFinite) => {
                telemetry.error(DecodeError::NonFinite).inc();
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
        metrics.truncate(mark);
    }
    Ok(added)
}

/// `tags` and `extra`, sorted and deduplicated, owned.
fn sorted_tags(tags: Tags<'_>, extra: &[String]) -> Vec<String> {
    let mut v: Vec<&str> = tags.iter().chain(extra.iter().map(String::as_str)).collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::enrich::{DropReason, EnrichConfig};
    use crate::mapper::{MappingProfileConfig, MetricMappingConfig};
    use adp_model::{EventAlertType, EventPriority, ServiceCheckStatus};

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

    fn enriched(config: EnrichConfig) -> Decoder {
        let (enricher, error) = Enricher::new(&config);
        assert_eq!(error, None);
        decoder().with_enricher(enricher)
    }

    /// A row's tags as its context holds them: sorted, unique.
    fn tags(row: &Row) -> Vec<&str> {
        let mut t: Vec<&str> = row.1.iter().map(String::as_str).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    #[test]
    fn metrics_are_mapped_namespaced_and_tagged_in_the_agents_order() {
        let mut d = enriched(EnrichConfig {
            dogstatsd_mapper_profiles: vec![MappingProfileConfig {
                name: "airflow".into(),
                prefix: "airflow.".into(),
                mappings: vec![MetricMappingConfig {
                    match_pattern: "airflow.job.duration_sec.*.*".into(),
                    name: "job.duration".into(),
                    tags: [
                        ("job_type".to_owned(), "$1".to_owned()),
                        ("job_name".to_owned(), "$2".to_owned()),
                    ]
                    .into_iter()
                    .collect(),
                    ..MetricMappingConfig::default()
                }],
            }],
            statsd_metric_namespace: "board".into(),
            dogstatsd_tags: vec!["site:lab".into(), "rack:3".into()],
            ..EnrichConfig::default()
        });
        let b = decode(
            &mut d,
            "airflow.job.duration_sec.etl.nightly:12|g|#env:prod\nkafka.lag:3|g\n_e{1,1}:t|x|#a\n_sc|chk|0|#site:lab",
        );
        let rows = samples(&b);
        assert_eq!(rows[0].0, "board.job.duration");
        assert_eq!(
            tags(&rows[0]),
            ["env:prod", "job_name:nightly", "job_type:etl", "rack:3", "site:lab"]
        );
        // `kafka` is in the namespace blacklist by default.
        assert_eq!(rows[1].0, "kafka.lag");
        assert_eq!(tags(&rows[1]), ["rack:3", "site:lab"]);
        assert_eq!(b.events[0].tags, ["a", "rack:3", "site:lab"]);
        assert_eq!(b.service_checks[0].tags, ["rack:3", "site:lab"], "deduplicated");
    }

    #[test]
    fn blocked_samples_are_counted_per_value_and_never_decoded() {
        let mut d = enriched(EnrichConfig {
            statsd_metric_namespace: "ns".into(),
            statsd_metric_blocklist: vec!["ns.noisy".into()],
            ..EnrichConfig::default()
        });
        let b = decode(&mut d, "noisy:1:2:3|d\nnoisy:1|c\nquiet:1|c\nnoisy:1:x|d");
        let names: Vec<_> = samples(&b).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["ns.quiet"]);
        let t = d.telemetry();
        assert_eq!(t.filtered(DropReason::Blocklist).get(), 4);
        assert_eq!(t.metrics.get(), 1);
        assert_eq!(
            t.error(DecodeError::InvalidValue).get(),
            1,
            "a bad value still rejects a blocked message"
        );
    }

    #[test]
    fn histograms_and_timers_are_also_sent_as_distributions() {
        let mut d = enriched(EnrichConfig {
            histogram_copy_to_distribution: true,
            histogram_copy_to_distribution_prefix: "dist.".into(),
            ..EnrichConfig::default()
        });
        let b = decode(&mut d, "lat:1:2|h|@0.5|#r:a\nrt:7|ms\ng:1|g");
        let rows = samples(&b);
        let got: Vec<_> = rows.iter().map(|r| (r.0.as_str(), r.2, r.3.as_str(), r.4)).collect();
        use MetricKind::*;
        assert_eq!(
            got,
            [
                ("lat", Histogram, "1", 0.5),
                ("lat", Histogram, "2", 0.5),
                ("dist.lat", Distribution, "1", 0.5),
                ("dist.lat", Distribution, "2", 0.5),
                ("rt", Timer, "7", 1.0),
                ("dist.rt", Distribution, "7", 1.0),
                ("g", Gauge, "1", 1.0),
            ]
        );
        assert_eq!(tags(&rows[2]), ["r:a"]);
        assert_eq!(d.telemetry().metrics.get(), 4, "copies are not counted as decoded");
    }

    #[test]
    fn an_enricher_that_changes_nothing_is_not_kept() {
        let (enricher, _) = Enricher::new(&EnrichConfig::default());
        let d = decoder().with_enricher(enricher);
        assert!(d.enricher.is_none());
    }

    #[test]
    fn invalid_utf8_in_tags_is_repaired_and_elsewhere_rejects_the_message() {
        let mut d = decoder();
        let mut b = Batch::default();
        d.decode_packet(
            b"m:1|c|#env:\xff\xfeprod\n_sc|chk|0|#x\xe2\x82|m:ok\nbad\xff:1|c\n_e{1,2}:t|\xff\xff|#a",
            &mut b,
        );
        assert_eq!(tags(&samples(&b)[0]), ["env:\u{FFFD}prod"]);
        assert_eq!(b.service_checks[0].tags, ["x\u{FFFD}"]);
        assert_eq!(b.metrics.len(), 1);
        assert!(b.events.is_empty());
        let t = d.telemetry();
        assert_eq!(t.utf8_repaired.get(), 2);
        assert_eq!(t.error(DecodeError::InvalidUtf8).get(), 2);
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
