//! From packets to owned values: the [`Decoder`] runs the codec over every
//! message of a packet, enriches metrics, resolves their contexts and fills a
//! [`Batch`].
//!
//! A multi-value metric becomes one [`Metric`] per value, all sharing one
//! [`Context`](adp_model::Context). A message whose values include one that is not a
//! number is rejected whole; non-finite values are dropped one by one. Every
//! rejection and drop is counted in [`DecoderTelemetry`].
//!
//! A message refused as invalid UTF-8 is parsed once more with its tags
//! repaired ([`repair_tags`]); it is kept when the invalid bytes were only in
//! its tags.
//!
//! With an [`Enricher`] ([`Decoder::with_enricher`]), each metric is renamed,
//! tagged, dropped or copied as the Agent's DogStatsD server does (see
//! [`crate::enrich`]): its context is resolved from the final name and the
//! client's tags followed by the added ones, a histogram or timer may also be
//! sent as a distribution, and events and service checks get
//! `dogstatsd_tags`. With nothing configured the enricher is skipped
//! altogether: one branch per metric message.

use std::time::Instant;

use adp_model::{Event, Metric, MetricKind, MetricValue, ServiceCheck};
use stringtheory::MetaString;

use crate::codec::{
    parse_message, repair_tags, split_messages, CodecConfig, DecodeError, Message, MetricPacket, Tags, ValueRef,
};
use crate::context::ContextResolver;
use crate::enrich::{Enricher, MetricDecision};
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
    /// `None` when nothing is configured ([`Enricher::is_passthrough`]).
    enricher: Option<Enricher>,
}

impl Decoder {
    /// A decoder with its own context cache on `resolver`'s shared budget.
    pub fn new(config: CodecConfig, resolver: ContextResolver, telemetry: DecoderTelemetry) -> Self {
        Self {
            config,
            resolver,
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
            resolver,
            telemetry,
            enricher,
            ..
        } = self;
        let extra_tags = enricher.as_ref().map_or(&[][..], |e| e.dogstatsd_tags());
        match parsed {
            Message::Metric(packet) => {
                let Some(enricher) = enricher else {
                    let added = push_samples(
                        resolver,
                        telemetry,
                        &packet,
                        packet.name,
                        packet.kind,
                        std::iter::empty(),
                        batch,
                    )?;
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
                        let added_tags = enriched.added_tags();
                        let start = batch.metrics.len();
                        let added = push_samples(
                            resolver,
                            telemetry,
                            &packet,
                            enriched.name(),
                            packet.kind,
                            added_tags.clone(),
                            batch,
                        )?;
                        telemetry.metrics.add(added);
                        if let Some(name) = enriched.distribution_name() {
                            // The same samples, as a distribution of its own context.
                            match resolver.resolve(&name, packet.tags.iter().chain(added_tags)) {
                                Ok(context) => {
                                    for i in start..batch.metrics.len() {
                                        let copy = Metric {
                                            context: context.clone(),
                                            kind: MetricKind::Distribution,
                                            ..batch.metrics[i].clone()
                                        };
                                        batch.metrics.push(copy);
                                    }
                                }
                                Err(drop) => telemetry.context_drop(drop).inc(),
                            }
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

/// Resolves the context of `name` with `packet`'s tags followed by
/// `added_tags`, and pushes one metric of `kind` per value of `packet`.
/// Returns how many were pushed; on an error none are. A context that cannot
/// be created is counted and pushes nothing.
fn push_samples<'t>(
    resolver: &mut ContextResolver,
    telemetry: &DecoderTelemetry,
    packet: &MetricPacket<'t>,
    name: &str,
    kind: MetricKind,
    added_tags: impl Iterator<Item = &'t str> + Clone,
    batch: &mut Batch,
) -> Result<u64, DecodeError> {
    let context = match resolver.resolve(name, packet.tags.iter().chain(added_tags)) {
        Ok(c) => c,
        Err(drop) => {
            telemetry.context_drop(drop).inc();
            return Ok(0);
        }
    };
    let sample_rate = packet.effective_sample_rate();
    let start = batch.metrics.len();
    for value in packet.values() {
        let value = match value {
            Ok(ValueRef::Number(n)) => MetricValue::Number(n),
            Ok(ValueRef::SetMember(m)) => MetricValue::SetMember(MetaString::from(m)),
            Err(DecodeError::NonFinite) => {
                telemetry.error(DecodeError::NonFinite).inc();
                continue;
            }
            Err(e) => {
                batch.metrics.truncate(start);
                return Err(e);
            }
        };
        batch.metrics.push(Metric {
            context: context.clone(),
            kind,
            value,
            sample_rate,
            timestamp: packet.timestamp,
        });
    }
    Ok((batch.metrics.len() - start) as u64)
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
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::context::{ContextBudget, ContextDrop};
    use crate::enrich::{DropReason, EnrichConfig};
    use crate::mapper::{MappingProfileConfig, MetricMappingConfig};
    use adp_model::{EventAlertType, EventPriority, ServiceCheckStatus};

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

    fn enriched(config: EnrichConfig) -> Decoder {
        let (enricher, error) = Enricher::new(&config);
        assert_eq!(error, None);
        decoder().with_enricher(enricher)
    }

    fn tags(m: &Metric) -> Vec<&str> {
        m.context.tags().iter().map(|t| t.as_str()).collect()
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
        assert_eq!(b.metrics[0].context.name(), "board.job.duration");
        assert_eq!(
            tags(&b.metrics[0]),
            ["env:prod", "job_name:nightly", "job_type:etl", "rack:3", "site:lab"]
        );
        // `kafka` is in the namespace blacklist by default.
        assert_eq!(b.metrics[1].context.name(), "kafka.lag");
        assert_eq!(tags(&b.metrics[1]), ["rack:3", "site:lab"]);
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
        let names: Vec<_> = b.metrics.iter().map(|m| m.context.name().to_string()).collect();
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
        let got: Vec<_> = b
            .metrics
            .iter()
            .map(|m| (m.context.name().to_string(), m.kind, m.value.clone(), m.sample_rate))
            .collect();
        use MetricKind::*;
        let n = MetricValue::Number;
        assert_eq!(
            got,
            [
                ("lat".to_owned(), Histogram, n(1.0), 0.5),
                ("lat".to_owned(), Histogram, n(2.0), 0.5),
                ("dist.lat".to_owned(), Distribution, n(1.0), 0.5),
                ("dist.lat".to_owned(), Distribution, n(2.0), 0.5),
                ("rt".to_owned(), Timer, n(7.0), 1.0),
                ("dist.rt".to_owned(), Distribution, n(7.0), 1.0),
                ("g".to_owned(), Gauge, n(1.0), 1.0),
            ]
        );
        assert_eq!(tags(&b.metrics[2]), ["r:a"]);
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
        assert_eq!(tags(&b.metrics[0]), ["env:\u{FFFD}prod"]);
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
            let all_finite = b.metrics.iter().all(|m| match m.value {
                MetricValue::Number(n) => n.is_finite(),
                MetricValue::SetMember(_) => true,
            });
            prop_assert!(all_finite);
        }
    }
}
