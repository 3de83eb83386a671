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
//! - A message must be valid UTF-8 ([`DecodeError::InvalidUtf8`]).
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
//! # Missing
//!
//! - Tags with invalid UTF-8 reject the whole message rather than being
//!   repaired with U+FFFD as Saluki does.
//! - No per-message limits on tag count or tag length.

use std::borrow::Cow;

use adp_model::{EventAlertType, EventPriority, MetricKind, ServiceCheckStatus};

/// The smallest sample rate accepted; lower rates are clamped to it (the
/// Datadog Agent's `dogstatsd_minimum_sample_rate`).
pub const MINIMUM_SAMPLE_RATE: f64 = 0.000000003845;

/// Why a message was rejected (or, for [`NonFinite`](Self::NonFinite), one of
/// its values dropped). [`reason`](Self::reason) is the telemetry label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The message is not valid UTF-8.
    #[error("message is not valid UTF-8")]
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

/// Origin tag cardinality requested by the client (`|card:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    /// `none`
    None,
    /// `low`
    Low,
    /// `orchestrator`
    Orchestrator,
    /// `high`
    High,
}

impl Cardinality {
    /// Parses a level case-insensitively; unknown levels are `None` (ignored,
    /// like the Agent does) rather than an error.
    fn parse(s: &str) -> Option<Self> {
        [
            ("none", Self::None),
            ("low", Self::Low),
            ("orchestrator", Self::Orchestrator),
            ("high", Self::High),
        ]
        .into_iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }
}

/// Origin fields shared by all message kinds (`c:`, `e:`, `card:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    /// `|c:` local data: `ci-<container id>` or `in-<cgroup inode>`.
    pub local_data: Option<&'a str>,
    /// `|e:` external data.
    pub external_data: Option<&'a str>,
    /// `|card:` cardinality (unknown levels are `None`).
    pub cardinality: Option<Cardinality>,
}

impl<'a> Origin<'a> {
    /// Consumes `field` if it is an origin field.
    fn try_field(&mut self, field: &'a str) -> bool {
        if let Some(v) = field.strip_prefix("card:") {
            self.cardinality = Cardinality::parse(v);
        } else if let Some(v) = field.strip_prefix("c:") {
            self.local_data = Some(v);
        } else if let Some(v) = field.strip_prefix("e:") {
            self.external_data = Some(v);
        } else {
            return false;
        }
        true
    }
}

/// A `|#` tag list, borrowed; [`iter`](Self::iter) skips empty tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tags<'a>(&'a str);

impl<'a> Tags<'a> {
    /// Wraps a raw comma-separated tag list.
    pub fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The raw text after `#`.
    pub fn as_raw(&self) -> &'a str {
        self.0
    }

    /// The tags in wire order, empty ones skipped, duplicates kept.
    pub fn iter(&self) -> TagIter<'a> {
        TagIter {
            rest: self.0.as_bytes(),
            src: self.0,
        }
    }

    /// The tags sorted and deduplicated, as owned strings.
    pub fn to_sorted_vec(&self) -> Vec<String> {
        let mut v: Vec<&str> = self.iter().collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(str::to_owned).collect()
    }
}

/// Iterator over the tags of a [`Tags`] list.
#[derive(Clone, Debug)]
pub struct TagIter<'a> {
    rest: &'a [u8],
    src: &'a str,
}

impl<'a> Iterator for TagIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let start = self.src.len() - self.rest.len();
            let len = memchr::memchr(b',', self.rest).unwrap_or(self.rest.len());
            self.rest = self.rest.get(len + 1..).unwrap_or(&[]);
            // `,` is ASCII, so both ends are char boundaries; `get` keeps it panic-free.
            if let Some(tag) = self.src.get(start..start + len) {
                if !tag.is_empty() {
                    return Some(tag);
                }
            }
        }
    }
}

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

/// A parsed `_e{..}` event, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket<'a> {
    /// The raw title (`\\n` not yet unescaped).
    pub raw_title: &'a str,
    /// The raw text (`\\n` not yet unescaped).
    pub raw_text: &'a str,
    /// `|d:` unix seconds.
    pub timestamp: Option<i64>,
    /// `|h:` hostname.
    pub hostname: Option<&'a str>,
    /// `|k:` aggregation key.
    pub aggregation_key: Option<&'a str>,
    /// `|p:` priority (unknown values give the default).
    pub priority: EventPriority,
    /// `|s:` source type name.
    pub source_type_name: Option<&'a str>,
    /// `|t:` alert type (unknown values give the default).
    pub alert_type: EventAlertType,
    /// `|#` tags.
    pub tags: Tags<'a>,
    /// `c:`, `e:`, `card:`.
    pub origin: Origin<'a>,
}

impl<'a> EventPacket<'a> {
    /// The title with `\\n` turned into newlines.
    pub fn title(&self) -> Cow<'a, str> {
        unescape_newlines(self.raw_title)
    }

    /// The text with `\\n` turned into newlines.
    pub fn text(&self) -> Cow<'a, str> {
        unescape_newlines(self.raw_text)
    }
}

/// A parsed `_sc|..` service check, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCheckPacket<'a> {
    /// The check name.
    pub name: &'a str,
    /// The status.
    pub status: ServiceCheckStatus,
    /// `|d:` unix seconds.
    pub timestamp: Option<i64>,
    /// `|h:` hostname.
    pub hostname: Option<&'a str>,
    /// `|#` tags.
    pub tags: Tags<'a>,
    /// `|m:` raw message (the rest of the line: it may contain `|`).
    pub raw_message: Option<&'a str>,
    /// `c:`, `e:`, `card:`.
    pub origin: Origin<'a>,
}

impl<'a> ServiceCheckPacket<'a> {
    /// The message with the clients' escapes undone (`\\n` → newline, `m\:` → `m:`).
    pub fn message(&self) -> Option<Cow<'a, str>> {
        self.raw_message.map(|m| {
            let m = unescape_newlines(m);
            if m.contains("m\\:") {
                Cow::Owned(m.replace("m\\:", "m:"))
            } else {
                m
            }
        })
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
        parse_event(rest).map(Message::Event)
    } else if let Some(rest) = message.strip_prefix("_sc|") {
        parse_service_check(rest).map(Message::ServiceCheck)
    } else {
        parse_metric(message, config).map(Message::Metric)
    }
}

/// Splits `s` at the first `delim`, the delimiter excluded.
#[inline]
fn split_once_byte(s: &str, delim: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(delim, s.as_bytes())?;
    // `delim` is ASCII so `i` and `i + 1` are char boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Iterates the `|`-separated fields of `s` (memchr-based).
#[inline]
fn fields(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_byte(r, b'|') {
            Some((field, tail)) => {
                rest = Some(tail);
                Some(field)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
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

/// Parses a `T`/`d:` timestamp: ASCII digits fitting an `i64`.
fn parse_timestamp(s: &str) -> Result<i64, DecodeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidTimestamp);
    }
    s.parse::<i64>().map_err(|_| DecodeError::InvalidTimestamp)
}

fn parse_metric<'a>(message: &'a str, config: &CodecConfig) -> Result<MetricPacket<'a>, DecodeError> {
    let (name, rest) = split_once_byte(message, b':').ok_or(DecodeError::NoValue)?;
    if !valid_name(name, config.permissive) {
        return Err(DecodeError::InvalidName);
    }
    let (raw_values, rest) = split_once_byte(rest, b'|').ok_or(DecodeError::InvalidType)?;
    if raw_values.is_empty() {
        return Err(DecodeError::NoValue);
    }
    let (raw_kind, rest) = match split_once_byte(rest, b'|') {
        Some((k, r)) => (k, Some(r)),
        None => (rest, None),
    };
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
            b'#' => packet.tags = Tags(field.get(1..).unwrap_or("")),
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

fn parse_event(after_prefix: &str) -> Result<EventPacket<'_>, DecodeError> {
    let (lengths, rest) = split_once_byte(after_prefix, b'}').ok_or(DecodeError::EventLength)?;
    let (title_len, text_len) = split_once_byte(lengths, b',').ok_or(DecodeError::EventLength)?;
    let parse_len = |s: &str| -> Result<usize, DecodeError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::EventLength);
        }
        s.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(DecodeError::EventLength)
    };
    let title_len = parse_len(title_len)?;
    let text_len = parse_len(text_len)?;
    let rest = rest.strip_prefix(':').ok_or(DecodeError::EventLength)?;
    // `get` returns None past the end or inside a multi-byte character.
    let raw_title = rest.get(..title_len).ok_or(DecodeError::EventLength)?;
    let rest = rest.get(title_len..).ok_or(DecodeError::EventLength)?;
    let rest = rest.strip_prefix('|').ok_or(DecodeError::EventLength)?;
    let raw_text = rest.get(..text_len).ok_or(DecodeError::EventLength)?;
    let rest = rest.get(text_len..).ok_or(DecodeError::EventLength)?;
    let rest = if rest.is_empty() {
        None
    } else {
        Some(rest.strip_prefix('|').ok_or(DecodeError::EventLength)?)
    };

    let mut packet = EventPacket {
        raw_title,
        raw_text,
        timestamp: None,
        hostname: None,
        aggregation_key: None,
        priority: EventPriority::default(),
        source_type_name: None,
        alert_type: EventAlertType::default(),
        tags: Tags::default(),
        origin: Origin::default(),
    };
    for field in rest.into_iter().flat_map(fields) {
        if let Some(v) = field.strip_prefix("d:") {
            packet.timestamp = Some(parse_timestamp(v)?);
        } else if let Some(v) = field.strip_prefix("h:") {
            packet.hostname = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix("k:") {
            packet.aggregation_key = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix("p:") {
            packet.priority = if v.eq_ignore_ascii_case("low") {
                EventPriority::Low
            } else {
                EventPriority::Normal
            };
        } else if let Some(v) = field.strip_prefix("s:") {
            packet.source_type_name = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix("t:") {
            packet.alert_type = match v.to_ascii_lowercase().as_str() {
                "error" => EventAlertType::Error,
                "warning" => EventAlertType::Warning,
                "success" => EventAlertType::Success,
                _ => EventAlertType::Info,
            };
        } else if let Some(v) = field.strip_prefix('#') {
            packet.tags = Tags(v);
        } else {
            packet.origin.try_field(field);
        }
    }
    Ok(packet)
}

fn parse_service_check(after_prefix: &str) -> Result<ServiceCheckPacket<'_>, DecodeError> {
    let (name, rest) = split_once_byte(after_prefix, b'|').ok_or(DecodeError::ServiceCheckStatus)?;
    if name.is_empty() {
        return Err(DecodeError::ServiceCheckName);
    }
    let (raw_status, rest) = match split_once_byte(rest, b'|') {
        Some((s, r)) => (s, Some(r)),
        None => (rest, None),
    };
    let status = match raw_status {
        "0" => ServiceCheckStatus::Ok,
        "1" => ServiceCheckStatus::Warning,
        "2" => ServiceCheckStatus::Critical,
        "3" => ServiceCheckStatus::Unknown,
        _ => return Err(DecodeError::ServiceCheckStatus),
    };
    let mut packet = ServiceCheckPacket {
        name,
        status,
        timestamp: None,
        hostname: None,
        tags: Tags::default(),
        raw_message: None,
        origin: Origin::default(),
    };
    let mut rest = rest;
    while let Some(r) = rest {
        let (field, tail) = match split_once_byte(r, b'|') {
            Some((f, t)) => (f, Some(t)),
            None => (r, None),
        };
        rest = tail;
        if let Some(v) = field.strip_prefix("m:") {
            // The message runs to the end of the line: clients send it last and
            // it may contain `|`.
            packet.raw_message = Some(r.get(2..).unwrap_or(v));
            break;
        } else if let Some(v) = field.strip_prefix("d:") {
            packet.timestamp = Some(parse_timestamp(v)?);
        } else if let Some(v) = field.strip_prefix("h:") {
            packet.hostname = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix('#') {
            packet.tags = Tags(v);
        } else {
            packet.origin.try_field(field);
        }
    }
    Ok(packet)
}

fn unescape_newlines(s: &str) -> Cow<'_, str> {
    if s.contains("\\n") {
        Cow::Owned(s.replace("\\n", "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn metric(s: &str) -> Result<MetricPacket<'_>, DecodeError> {
        match parse_message(s.as_bytes(), &CodecConfig::default())? {
            Message::Metric(m) => Ok(m),
            other => panic!("expected a metric, got {other:?}"),
        }
    }

    fn values<'a>(m: &MetricPacket<'a>) -> Vec<Result<ValueRef<'a>, DecodeError>> {
        m.values().collect()
    }

    fn event(s: &str) -> Result<EventPacket<'_>, DecodeError> {
        match parse_message(s.as_bytes(), &CodecConfig::default())? {
            Message::Event(e) => Ok(e),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn service_check(s: &str) -> Result<ServiceCheckPacket<'_>, DecodeError> {
        match parse_message(s.as_bytes(), &CodecConfig::default())? {
            Message::ServiceCheck(sc) => Ok(sc),
            other => panic!("expected a service check, got {other:?}"),
        }
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

    #[test]
    fn messages_split_on_newlines_skipping_blank_lines() {
        let msgs: Vec<_> = split_messages(b"a:1|c\n\nb:2|g\r\nc:3|s\n").collect();
        assert_eq!(msgs, vec![&b"a:1|c"[..], b"b:2|g", b"c:3|s"]);
    }

    #[test]
    fn events_decode_with_every_field() {
        let e = event(
            "_e{5,10}:title|some\\ntext|d:1700000000|h:host1|k:agg|p:low|s:my_src|t:warning|#b,a,b|c:ci-1|card:low",
        )
        .unwrap();
        assert_eq!(e.title(), "title");
        assert_eq!(e.text(), "some\ntext");
        assert_eq!(e.timestamp, Some(1_700_000_000));
        assert_eq!(e.hostname, Some("host1"));
        assert_eq!(e.aggregation_key, Some("agg"));
        assert_eq!(e.priority, EventPriority::Low);
        assert_eq!(e.source_type_name, Some("my_src"));
        assert_eq!(e.alert_type, EventAlertType::Warning);
        assert_eq!(e.tags.to_sorted_vec(), vec!["a", "b"]);
        assert_eq!(e.origin.local_data, Some("ci-1"));
        assert_eq!(e.origin.cardinality, Some(Cardinality::Low));
    }

    #[test]
    fn event_defaults_are_normal_and_info() {
        let e = event("_e{1,1}:a|b").unwrap();
        assert_eq!(e.priority, EventPriority::Normal);
        assert_eq!(e.alert_type, EventAlertType::Info);
        for t in ["error", "success", "info"] {
            let msg = format!("_e{{1,1}}:a|b|t:{t}");
            assert_eq!(event(&msg).unwrap().alert_type.as_str(), t);
        }
    }

    #[test]
    fn event_title_and_text_may_contain_pipes_and_multibyte_characters() {
        let title = "a|b";
        let text = "héllo|wörld";
        let msg = format!("_e{{{},{}}}:{title}|{text}|#x", title.len(), text.len());
        let e = event(&msg).unwrap();
        assert_eq!(e.raw_title, title);
        assert_eq!(e.raw_text, text);
        assert_eq!(e.tags.as_raw(), "x");
    }

    #[test]
    fn malformed_events_are_rejected() {
        for bad in [
            "_e{",
            "_e{1}:a|b",
            "_e{0,1}:|b",
            "_e{1,0}:a|",
            "_e{x,1}:a|b",
            "_e{-1,1}:a|b",
            "_e{1,1}a|b",
            "_e{2,1}:a|b",
            "_e{1,5}:a|b",
            "_e{1,1}:ab|c",
            "_e{1,1}:a|bc",
            "_e{1,1}:a|é",
            "_e{99999999999999999999999,1}:a|b",
        ] {
            assert_eq!(event(bad), Err(DecodeError::EventLength), "{bad}");
        }
        assert_eq!(event("_e{1,1}:a|b|d:x"), Err(DecodeError::InvalidTimestamp));
    }

    #[test]
    fn service_checks_decode_with_every_field() {
        let sc = service_check("_sc|my.check|2|d:1700000000|h:host1|#env:prod,a|c:in-42|m:broken | really\\nm\\: yes")
            .unwrap();
        assert_eq!(sc.name, "my.check");
        assert_eq!(sc.status, ServiceCheckStatus::Critical);
        assert_eq!(sc.timestamp, Some(1_700_000_000));
        assert_eq!(sc.hostname, Some("host1"));
        assert_eq!(sc.tags.to_sorted_vec(), vec!["a", "env:prod"]);
        assert_eq!(sc.origin.local_data, Some("in-42"));
        assert_eq!(sc.message().unwrap(), "broken | really\nm: yes");
    }

    #[test]
    fn every_service_check_status_decodes() {
        for (s, status) in [
            ("0", ServiceCheckStatus::Ok),
            ("1", ServiceCheckStatus::Warning),
            ("2", ServiceCheckStatus::Critical),
            ("3", ServiceCheckStatus::Unknown),
        ] {
            assert_eq!(service_check(&format!("_sc|c|{s}")).unwrap().status, status);
        }
    }

    #[test]
    fn malformed_service_checks_are_rejected() {
        assert_eq!(service_check("_sc||0"), Err(DecodeError::ServiceCheckName));
        assert_eq!(service_check("_sc|name"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|4"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|ok"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|0|d:soon"), Err(DecodeError::InvalidTimestamp));
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
