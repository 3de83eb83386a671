//! Metric messages: `name:value[:value...]|type[|@rate][|#tags][|T<ts>]...`.

use adp_model::MetricKind;

use super::fields::{fields, first_field, parse_timestamp, split_once_byte, Origin, Tags};
use super::{CodecConfig, DecodeError};

/// A parsed metric message, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPacket<'a> {
    /// The metric name.
    pub name: &'a str,
    /// The metric type.
    pub kind: MetricKind,
    /// The raw value field (`1:2:3`, or a set member).
    pub raw_values: &'a str,
    /// `|@rate`, already clamped to the minimum.
    pub sample_rate: Option<f64>,
    /// `|#` tags.
    pub tags: Tags<'a>,
    /// `|T` unix seconds.
    pub timestamp: Option<i64>,
    /// `c:`, `e:`, `card:`.
    pub origin: Origin<'a>,
}

impl<'a> MetricPacket<'a> {
    /// The values: one set member for `s`, otherwise each `:`-separated number.
    pub fn values(&self) -> ValueIter<'a> {
        ValueIter {
            rest: if self.kind == MetricKind::Set {
                None
            } else {
                Some(self.raw_values)
            },
            set: self.kind == MetricKind::Set,
            member: Some(self.raw_values),
        }
    }

    /// The sample rate the aggregator should weight each sample by: 1.0 when
    /// absent and for timestamped counts (which are pre-aggregated points).
    pub fn effective_sample_rate(&self) -> f64 {
        match (self.kind, self.timestamp, self.sample_rate) {
            (MetricKind::Count, Some(_), _) | (_, _, None) => 1.0,
            (_, _, Some(rate)) => rate,
        }
    }
}

/// One value of a metric message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// A finite number.
    Number(f64),
    /// A set member.
    SetMember(&'a str),
}

/// Lazy iterator over a metric's values: `Ok` for each usable value,
/// `Err(NonFinite)` for a dropped one, `Err(InvalidValue)` for one that is not
/// a number (which should reject the whole message).
#[derive(Clone, Debug)]
pub struct ValueIter<'a> {
    rest: Option<&'a str>,
    set: bool,
    member: Option<&'a str>,
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Result<ValueRef<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.set {
            return self.member.take().map(|m| Ok(ValueRef::SetMember(m)));
        }
        let rest = self.rest?;
        let (value, tail) = match split_once_byte(rest, b':') {
            Some((v, t)) => (v, Some(t)),
            None => (rest, None),
        };
        self.rest = tail;
        Some(parse_number(value))
    }
}

#[inline]
fn parse_number(s: &str) -> Result<ValueRef<'_>, DecodeError> {
    // Fast path: plain non-negative integers, the most common value on the wire.
    let bytes = s.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for b in bytes {
            n = n * 10 + u64::from(b - b'0');
        }
        // Exact: below 10^15 < 2^53.
        #[allow(clippy::cast_precision_loss)]
        return Ok(ValueRef::Number(n as f64));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(ValueRef::Number(v)),
        Ok(_) => Err(DecodeError::NonFinite),
        Err(_) => Err(DecodeError::InvalidValue),
    }
}

fn valid_name(name: &str, permissive: bool) -> bool {
    !name.is_empty()
        && if permissive {
            name.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b':' && b != b'|')
        } else {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-' | b'.'))
        }
}

pub(super) fn parse_metric<'a>(message: &'a str, config: &CodecConfig) -> Result<MetricPacket<'a>, DecodeError> {
    let (name, rest) = split_once_byte(message, b':').ok_or(DecodeError::NoValue)?;
    if !valid_name(name, config.permissive) {
        return Err(DecodeError::InvalidName);
    }
    let (raw_values, rest) = split_once_byte(rest, b'|').ok_or(DecodeError::InvalidType)?;
    if raw_values.is_empty() {
        return Err(DecodeError::NoValue);
    }
    let (raw_kind, rest) = first_field(rest);
    let kind = match raw_kind {
        "c" => MetricKind::Count,
        "g" => MetricKind::Gauge,
        "s" => MetricKind::Set,
        "ms" => MetricKind::Timer,
        "h" => MetricKind::Histogram,
        "d" => MetricKind::Distribution,
        _ => return Err(DecodeError::InvalidType),
    };
    let mut packet = MetricPacket {
        name,
        kind,
        raw_values,
        sample_rate: None,
        tags: Tags::default(),
        timestamp: None,
        origin: Origin::default(),
    };
    for field in rest.into_iter().flat_map(fields) {
        let Some(&first) = field.as_bytes().first() else {
            continue;
        };
        match first {
            b'@' => packet.sample_rate = Some(parse_sample_rate(field.get(1..).unwrap_or(""), config)?),
            b'#' => packet.tags = Tags::new(field.get(1..).unwrap_or("")),
            b'T' => packet.timestamp = Some(parse_timestamp(field.get(1..).unwrap_or(""))?),
            _ => {
                // Origin fields, or an unknown extension: skipped.
                packet.origin.try_field(field);
            }
        }
    }
    Ok(packet)
}

fn parse_sample_rate(s: &str, config: &CodecConfig) -> Result<f64, DecodeError> {
    let rate: f64 = s.parse().map_err(|_| DecodeError::InvalidSampleRate)?;
    if !rate.is_finite() || rate > 1.0 {
        return Err(DecodeError::InvalidSampleRate);
    }
    if rate < config.minimum_sample_rate {
        tracing::debug!(
            rate,
            minimum = config.minimum_sample_rate,
            "Sample rate below the minimum; clamped."
        );
        return Ok(config.minimum_sample_rate);
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{parse_message, Cardinality, MINIMUM_SAMPLE_RATE};

    parse_as!(metric, Metric, MetricPacket);

    fn values<'a>(m: &MetricPacket<'a>) -> Vec<Result<ValueRef<'a>, DecodeError>> {
        m.values().collect()
    }

    #[test]
    fn every_metric_type_decodes() {
        for (wire, kind) in [
            ("c", MetricKind::Count),
            ("g", MetricKind::Gauge),
            ("ms", MetricKind::Timer),
            ("h", MetricKind::Histogram),
            ("d", MetricKind::Distribution),
        ] {
            let msg = format!("my.metric:2.5|{wire}");
            let m = metric(&msg).unwrap();
            assert_eq!(m.name, "my.metric");
            assert_eq!(m.kind, kind);
            assert_eq!(values(&m), vec![Ok(ValueRef::Number(2.5))]);
            assert_eq!(m.sample_rate, None);
            assert_eq!(m.timestamp, None);
            assert_eq!(m.tags.iter().count(), 0);
        }
    }

    #[test]
    fn set_value_is_one_member_even_with_colons() {
        let m = metric("users:alice:42|s").unwrap();
        assert_eq!(m.kind, MetricKind::Set);
        assert_eq!(values(&m), vec![Ok(ValueRef::SetMember("alice:42"))]);
    }

    #[test]
    fn multi_value_yields_each_value() {
        let m = metric("lat:1:2.5:-3:1e3|d").unwrap();
        let v: Vec<_> = values(&m);
        assert_eq!(
            v,
            vec![
                Ok(ValueRef::Number(1.0)),
                Ok(ValueRef::Number(2.5)),
                Ok(ValueRef::Number(-3.0)),
                Ok(ValueRef::Number(1000.0))
            ]
        );
    }

    #[test]
    fn large_integers_fall_back_to_the_float_parser() {
        let m = metric("big:12345678901234567890|g").unwrap();
        assert_eq!(values(&m), vec![Ok(ValueRef::Number(12345678901234567890.0))]);
    }

    #[test]
    fn non_finite_values_are_flagged_individually() {
        let m = metric("x:1:nan:inf:-inf:2|h").unwrap();
        assert_eq!(
            values(&m),
            vec![
                Ok(ValueRef::Number(1.0)),
                Err(DecodeError::NonFinite),
                Err(DecodeError::NonFinite),
                Err(DecodeError::NonFinite),
                Ok(ValueRef::Number(2.0)),
            ]
        );
    }

    #[test]
    fn unparseable_values_are_invalid() {
        let m = metric("x:1:abc|c").unwrap();
        assert_eq!(values(&m)[1], Err(DecodeError::InvalidValue));
        let m = metric("x:1::2|c").unwrap();
        assert_eq!(values(&m)[1], Err(DecodeError::InvalidValue));
    }

    #[test]
    fn sample_rate_is_parsed_and_clamped() {
        assert_eq!(metric("x:1|c|@0.5").unwrap().sample_rate, Some(0.5));
        assert_eq!(metric("x:1|c|@1").unwrap().sample_rate, Some(1.0));
        assert_eq!(metric("x:1|c|@0").unwrap().sample_rate, Some(MINIMUM_SAMPLE_RATE));
        assert_eq!(
            metric("x:1|c|@0.0000000001").unwrap().sample_rate,
            Some(MINIMUM_SAMPLE_RATE)
        );
        assert_eq!(metric("x:1|c|@-1").unwrap().sample_rate, Some(MINIMUM_SAMPLE_RATE));
    }

    #[test]
    fn malformed_sample_rates_are_rejected() {
        for bad in ["x:1|c|@", "x:1|c|@abc", "x:1|c|@1.5", "x:1|c|@nan", "x:1|c|@inf"] {
            assert_eq!(metric(bad), Err(DecodeError::InvalidSampleRate), "{bad}");
        }
    }

    #[test]
    fn tags_iterate_in_order_skipping_empty_ones() {
        let m = metric("x:1|g|#env:prod,,b,a:1,b,").unwrap();
        assert_eq!(m.tags.iter().collect::<Vec<_>>(), vec!["env:prod", "b", "a:1", "b"]);
        assert_eq!(m.tags.to_sorted_vec(), vec!["a:1", "b", "env:prod"]);
        assert_eq!(metric("x:1|g|#").unwrap().tags.iter().count(), 0);
    }

    #[test]
    fn fields_may_come_in_any_order() {
        let m = metric("x:1|c|T1700000000|#a,b|@0.25|c:ci-abc|e:it-false,cn-app|card:HIGH").unwrap();
        assert_eq!(m.timestamp, Some(1_700_000_000));
        assert_eq!(m.sample_rate, Some(0.25));
        assert_eq!(m.tags.iter().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(m.origin.local_data, Some("ci-abc"));
        assert_eq!(m.origin.external_data, Some("it-false,cn-app"));
        assert_eq!(m.origin.cardinality, Some(Cardinality::High));
    }

    #[test]
    fn cardinality_levels_parse_and_unknown_ones_are_ignored() {
        for (s, c) in [
            ("none", Cardinality::None),
            ("low", Cardinality::Low),
            ("orchestrator", Cardinality::Orchestrator),
        ] {
            assert_eq!(metric(&format!("x:1|c|card:{s}")).unwrap().origin.cardinality, Some(c));
        }
        assert_eq!(metric("x:1|c|card:bogus").unwrap().origin.cardinality, None);
    }

    #[test]
    fn timestamped_counts_ignore_the_sample_rate() {
        let m = metric("x:3|c|@0.5|T1700000000").unwrap();
        assert_eq!(m.effective_sample_rate(), 1.0);
        let m = metric("x:3|g|@0.5|T1700000000").unwrap();
        assert_eq!(m.effective_sample_rate(), 0.5);
        let m = metric("x:3|c|@0.5").unwrap();
        assert_eq!(m.effective_sample_rate(), 0.5);
        assert_eq!(metric("x:3|c").unwrap().effective_sample_rate(), 1.0);
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        for bad in [
            "x:1|c|T",
            "x:1|c|Tabc",
            "x:1|c|T-5",
            "x:1|c|T1.5",
            "x:1|c|T99999999999999999999",
        ] {
            assert_eq!(metric(bad), Err(DecodeError::InvalidTimestamp), "{bad}");
        }
    }

    #[test]
    fn unknown_and_empty_fields_are_skipped() {
        let m = metric("x:1|c||zzz|#a|x:y|").unwrap();
        assert_eq!(m.tags.iter().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(m.kind, MetricKind::Count);
    }

    #[test]
    fn permissive_names_accept_printable_ascii() {
        let m = metric("my metric/with*odd(chars)!:1|c").unwrap();
        assert_eq!(m.name, "my metric/with*odd(chars)!");
    }

    #[test]
    fn strict_names_reject_odd_characters() {
        let strict = CodecConfig {
            permissive: false,
            ..CodecConfig::default()
        };
        assert!(parse_message(b"ok.name_1-x:1|c", &strict).is_ok());
        assert_eq!(parse_message(b"bad/name:1|c", &strict), Err(DecodeError::InvalidName));
    }

    #[test]
    fn malformed_metric_structures_are_classified() {
        assert_eq!(metric("novalue"), Err(DecodeError::NoValue));
        assert_eq!(metric("x:|c"), Err(DecodeError::NoValue));
        assert_eq!(metric(":1|c"), Err(DecodeError::InvalidName));
        assert_eq!(metric("a|b:1|c"), Err(DecodeError::InvalidName));
        assert_eq!(metric("ctl\u{1}:1|c"), Err(DecodeError::InvalidName));
        assert_eq!(metric("x:1"), Err(DecodeError::InvalidType));
        assert_eq!(metric("x:1|"), Err(DecodeError::InvalidType));
        assert_eq!(metric("x:1|q"), Err(DecodeError::InvalidType));
        assert_eq!(metric("x:1|cc"), Err(DecodeError::InvalidType));
        assert_eq!(
            parse_message(b"x:\xff|c", &CodecConfig::default()),
            Err(DecodeError::InvalidUtf8)
        );
    }

    proptest! {
        #[test]
        fn property_test_well_formed_metrics_round_trip(
            name in "[a-z][a-z0-9_.]{0,30}",
            vals in proptest::collection::vec(-1.0e9f64..1.0e9, 1..8),
            tags in proptest::collection::vec("[a-z0-9_:]{1,12}", 0..6),
        ) {
            let raw_vals: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
            let msg = format!("{name}:{}|d|#{}", raw_vals.join(":"), tags.join(","));
            let m = metric(&msg).unwrap();
            prop_assert_eq!(m.name, name.as_str());
            let got: Vec<f64> = m.values().map(|v| match v { Ok(ValueRef::Number(n)) => n, other => panic!("{other:?}") }).collect();
            prop_assert_eq!(got, vals);
            prop_assert_eq!(m.tags.iter().collect::<Vec<_>>(), tags.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
