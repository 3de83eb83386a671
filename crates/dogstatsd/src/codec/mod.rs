//! The DogStatsD v1.3 wire codec: bytes in, borrowed packets out.
//!
//! A datagram (or a stream frame) holds one or more messages separated by
//! `\n`; [`split_messages`] yields them and [`parse_message`] classifies and
//! parses one:
//!
//! ```text
//! metric         name:value[:value...]|type[|@rate][|#tags][|c:local][|T<ts>][|e:external][|card:level]
//! event          _e{<title bytes>,<text bytes>}:title|text[|d:ts][|h:host][|k:key][|p:prio][|s:src][|t:alert][|#tags]...
//! service check  _sc|name|status[|d:ts][|h:host][|#tags][|m:message]...
//! ```
//!
//! The parsed packets ([`MetricPacket`], [`EventPacket`], [`ServiceCheckPacket`])
//! borrow every string from the input; values and tags are iterated lazily, so
//! a message whose context is already known costs no allocation here. Turning
//! packets into owned `adp-model` values is the job of the
//! [`Decoder`](crate::decoder::Decoder).
//!
//! # Rules
//!
//! - A message must be valid UTF-8 ([`DecodeError::InvalidUtf8`]), except in
//!   its tags: [`repair_tags`] replaces each invalid run there with U+FFFD, as
//!   Saluki does, and the decoder parses the repaired copy.
//! - Metric names are printable ASCII without `:` or `|` in permissive mode
//!   (the default); strict mode allows ASCII letters, digits, ` `, `_`, `-`, `.`.
//! - `name:1:2:3|d` is three samples; a set's whole value field is one member.
//! - Sample rates below [`MINIMUM_SAMPLE_RATE`] are clamped up to it; rates that
//!   are not numbers, not finite or above 1 are errors.
//! - Non-finite values (`nan`, `inf`) are dropped one by one
//!   ([`ValueIter`] yields [`DecodeError::NonFinite`] for each); an
//!   unparseable value rejects the whole message.
//! - Unknown `|x...` fields and empty fields are skipped; when a field repeats,
//!   the last one wins.
//!
//! Nothing here panics on any input: every index is bounds-checked (`get`,
//! `split_at` after a `memchr` hit) and no input-derived `unwrap` exists; the
//! property test `property_test_arbitrary_bytes_never_panic` and the fuzz
//! target in `fuzz/` exercise that.
//!
//! # Layout
//!
//! This module holds what every message shares: [`split_messages`],
//! [`parse_message`], [`DecodeError`] and [`CodecConfig`]. Each message kind
//! has its own module, its packet type beside its parser: `metric.rs`,
//! `event.rs`, `service_check.rs`; `fields.rs` has the pieces they have in
//! common (the `|`-separated fields, tags, origin fields, timestamps);
//! `repair.rs` the repair of tags that are not UTF-8.
//!
//! # Missing
//!
//! - No per-message limits on tag count or tag length.

/// Defines a message kind's test helper `$name(s)`: `s` parsed with the
/// default configuration as a `Message::$kind` (another kind panics).
#[cfg(test)]
macro_rules! parse_as {
    ($name:ident, $kind:ident, $packet:ident) => {
        fn $name(s: &str) -> Result<$packet<'_>, DecodeError> {
            match crate::codec::parse_message(s.as_bytes(), &crate::codec::CodecConfig::default())? {
                crate::codec::Message::$kind(p) => Ok(p),
                other => panic!("expected a {}, got {other:?}", stringify!($kind)),
            }
        }
    };
}

/// Fills in the field events and service checks share (`d:`, `h:`, `#` or an
/// origin field) on `$packet`, whose fields for them are named alike.
macro_rules! shared_field {
    ($field:expr, $packet:ident) => {
        super::fields::shared_field(
            $field,
            &mut $packet.timestamp,
            &mut $packet.hostname,
            &mut $packet.tags,
            &mut $packet.origin,
        )
    };
}

mod event;
mod fields;
mod metric;
mod repair;
mod service_check;

pub use event::EventPacket;
pub use fields::{Cardinality, Origin, TagIter, Tags};
pub use metric::{MetricPacket, ValueIter, ValueRef};
pub use repair::repair_tags;
pub use service_check::ServiceCheckPacket;

/// The smallest sample rate accepted; lower rates are clamped to it (the
/// Datadog Agent's `dogstatsd_minimum_sample_rate`).
pub const MINIMUM_SAMPLE_RATE: f64 = 0.000000003845;

/// Why a message was rejected (or, for [`NonFinite`](Self::NonFinite), one of
/// its values dropped). [`reason`](Self::reason) is the telemetry label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The message is not valid UTF-8 outside its tags (tags are repaired).
    #[error("message is not valid UTF-8 (outside its tags, which are repaired)")]
    InvalidUtf8,
    /// The metric name is empty or has a forbidden character.
    #[error("metric name is empty or holds a character outside the allowed set (see `dogstatsd_permissive_decoding`)")]
    InvalidName,
    /// No `:value` part, or an empty value field.
    #[error("metric has no value (expected `name:value|type`)")]
    NoValue,
    /// No `|type`, or a type other than c, g, s, ms, h, d.
    #[error("metric type is missing or not one of c, g, s, ms, h, d")]
    InvalidType,
    /// A value is not a number.
    #[error("metric value is not a number")]
    InvalidValue,
    /// A value is NaN or infinite (the value is dropped, the rest kept).
    #[error("metric value is not finite")]
    NonFinite,
    /// The `@rate` is not a number, not finite or above 1.
    #[error("sample rate is not a number in (0, 1]")]
    InvalidSampleRate,
    /// A `T` or `d:` timestamp is not a non-negative integer of 64 bits.
    #[error("timestamp is not a non-negative integer")]
    InvalidTimestamp,
    /// An event header `_e{t,l}:` is malformed or its lengths disagree with the message.
    #[error("event header `_e{{title_len,text_len}}:` is malformed or its lengths do not match")]
    EventLength,
    /// A service check has no name.
    #[error("service check name is empty")]
    ServiceCheckName,
    /// A service check status is not 0, 1, 2 or 3.
    #[error("service check status is not 0, 1, 2 or 3")]
    ServiceCheckStatus,
    /// The frame was larger than `dogstatsd_buffer_size` and was cut off.
    #[error("payload larger than `dogstatsd_buffer_size` was truncated and dropped")]
    Truncated,
}

impl DecodeError {
    /// Every variant, in declaration order (for pre-registering counters).
    pub const ALL: [DecodeError; 12] = [
        Self::InvalidUtf8,
        Self::InvalidName,
        Self::NoValue,
        Self::InvalidType,
        Self::InvalidValue,
        Self::NonFinite,
        Self::InvalidSampleRate,
        Self::InvalidTimestamp,
        Self::EventLength,
        Self::ServiceCheckName,
        Self::ServiceCheckStatus,
        Self::Truncated,
    ];

    /// A stable snake_case label for telemetry.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidName => "invalid_name",
            Self::NoValue => "no_value",
            Self::InvalidType => "invalid_type",
            Self::InvalidValue => "invalid_value",
            Self::NonFinite => "non_finite",
            Self::InvalidSampleRate => "invalid_sample_rate",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::EventLength => "event_length",
            Self::ServiceCheckName => "service_check_name",
            Self::ServiceCheckStatus => "service_check_status",
            Self::Truncated => "truncated",
        }
    }

    /// The index of this variant in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Codec options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodecConfig {
    /// Permissive metric names (any printable ASCII but `:` and `|`).
    pub permissive: bool,
    /// Sample rates below this are clamped to it.
    pub minimum_sample_rate: f64,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            permissive: true,
            minimum_sample_rate: MINIMUM_SAMPLE_RATE,
        }
    }
}

/// One parsed message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Message<'a> {
    /// A metric sample (possibly multi-value).
    Metric(MetricPacket<'a>),
    /// An event.
    Event(EventPacket<'a>),
    /// A service check.
    ServiceCheck(ServiceCheckPacket<'a>),
}

/// Splits a packet into its non-empty messages (`\n` separated; a trailing
/// `\r` is removed so `\r\n` framing works too).
pub fn split_messages(packet: &[u8]) -> impl Iterator<Item = &[u8]> {
    // memchr (SIMD) rather than a byte-wise `split`: messages are kilobytes long.
    let mut rest = Some(packet);
    std::iter::from_fn(move || loop {
        let r = rest?;
        let (line, tail) = match memchr::memchr(b'\n', r) {
            Some(i) => (r.get(..i).unwrap_or(&[]), r.get(i + 1..)),
            None => (r, None),
        };
        rest = tail;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            return Some(line);
        }
    })
}

/// Parses one message (no newline inside).
pub fn parse_message<'a>(message: &'a [u8], config: &CodecConfig) -> Result<Message<'a>, DecodeError> {
    let message = std::str::from_utf8(message).map_err(|_| DecodeError::InvalidUtf8)?;
    if let Some(rest) = message.strip_prefix("_e{") {
        event::parse_event(rest).map(Message::Event)
    } else if let Some(rest) = message.strip_prefix("_sc|") {
        service_check::parse_service_check(rest).map(Message::ServiceCheck)
    } else {
        metric::parse_metric(message, config).map(Message::Metric)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn messages_split_on_newlines_skipping_blank_lines() {
        let msgs: Vec<_> = split_messages(b"a:1|c\n\nb:2|g\r\nc:3|s\n").collect();
        assert_eq!(msgs, vec![&b"a:1|c"[..], b"b:2|g", b"c:3|s"]);
    }

    #[test]
    fn every_error_has_a_distinct_reason_and_index() {
        let mut reasons: Vec<_> = DecodeError::ALL.iter().map(|e| e.reason()).collect();
        for (i, e) in DecodeError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), DecodeError::ALL.len());
    }

    proptest! {
        #[test]
        fn property_test_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for msg in split_messages(&bytes) {
                if let Ok(Message::Metric(m)) = parse_message(msg, &CodecConfig::default()) {
                    let _ = m.values().count();
                    let _ = m.tags.iter().count();
                }
            }
        }

        #[test]
        fn property_test_structured_noise_never_panics(parts in proptest::collection::vec(
            prop_oneof![Just("_e{"), Just("_sc|"), Just("|"), Just(":"), Just(","), Just("#"), Just("@"), Just("}"),
                        Just("T"), Just("d:"), Just("m:"), Just("1"), Just("é"), Just("c"), Just("\n")], 0..40)) {
            let s: String = parts.concat();
            for msg in split_messages(s.as_bytes()) {
                match parse_message(msg, &CodecConfig::default()) {
                    Ok(Message::Metric(m)) => { let _ = m.values().count(); }
                    Ok(Message::Event(e)) => { let _ = (e.title(), e.text()); }
                    Ok(Message::ServiceCheck(sc)) => { let _ = sc.message(); }
                    Err(e) => { let _ = e.reason(); }
                }
            }
        }
    }
}
