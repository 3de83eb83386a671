//! Series and sketches written straight into their payloads: each item's
//! protobuf bytes are produced from borrowed strings (the aggregator's store,
//! or any `&str` tags) into one reused buffer and handed to the splitter, so
//! encoding allocates nothing per item or per tag.
//!
//! The bytes are exactly what prost writes for the equivalent
//! [`adp_wire::proto`] message (fields in tag order, proto3 defaults left
//! out); a property test checks this against prost.
//!
//! [`SeriesWriter`] and [`SketchWriter`] are push-based: the caller pushes
//! items (it may hold a lock while it does, and release it in between) and
//! takes finished payloads as they complete, so a flush holds at most one
//! compressed payload under construction plus those not yet taken.

use std::collections::VecDeque;
use std::fmt;

use adp_model::{FlushSink, SeriesKind, SeriesView};
use adp_wire::{EncodedPayload, Endpoint};
use ddsketch::AgentSketch;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::split::{Body, Framing, Splitter};
use crate::{EncodeError, Encoder};

const HOST_TAG_PREFIX: &str = "host:";
const DEVICE_TAG_PREFIX: &str = "device:";

/// Origin metadata the Agent writes for DogStatsD series and sketches:
/// product 10 (Agent), category 10 (DogStatsD), service 0 (left out).
const ORIGIN_PRODUCT_AGENT: u64 = 10;
const ORIGIN_CATEGORY_DOGSTATSD: u64 = 10;

/// Room kept before an item for its field key and length prefix.
const HEADER_ROOM: usize = 16;

/// The intake's `MetricType` number of a series kind.
fn metric_type(kind: SeriesKind) -> u64 {
    match kind {
        SeriesKind::Count => 1,
        SeriesKind::Rate => 2,
        SeriesKind::Gauge => 3,
    }
}

/// One series, borrowed (`adp-model`'s flush view).
pub type SeriesRef<'a, T> = SeriesView<'a, T>;

/// One `Dogsketch` (a sketch at one timestamp), borrowed.
#[derive(Clone, Debug)]
pub struct DogsketchRef<K, N> {
    /// The bucket's start (unix seconds).
    pub ts: i64,
    /// Samples.
    pub count: i64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub avg: f64,
    /// Sum.
    pub sum: f64,
    /// The bins' keys, ascending.
    pub k: K,
    /// The bins' counts, in the order of their keys.
    pub n: N,
}

/// `host:` and `device:` tags taken out of a tag list (the last of each wins).
struct Special<'a> {
    host: Option<&'a str>,
    device: Option<&'a str>,
}

fn special<'a>(tags: impl Iterator<Item = &'a str>, extract_device: bool) -> Special<'a> {
    let mut out = Special {
        host: None,
        device: None,
    };
    for tag in tags {
        if let Some(host) = tag.strip_prefix(HOST_TAG_PREFIX) {
            out.host = Some(host);
        } else if extract_device {
            if let Some(device) = tag.strip_prefix(DEVICE_TAG_PREFIX) {
                out.device = Some(device);
            }
        }
    }
    out
}

fn is_special(tag: &str, extract_device: bool) -> bool {
    tag.starts_with(HOST_TAG_PREFIX) || (extract_device && tag.starts_with(DEVICE_TAG_PREFIX))
}

fn len_field(len: usize) -> usize {
    // Field numbers here are below 16: one key byte.
    1 + encoded_len_varint(len as u64) + len
}

fn write_bytes(buf: &mut Vec<u8>, field: u32, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for p in parts {
        buf.extend_from_slice(p);
    }
}

fn write_varint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        encode_key(field, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn varint_field_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + encoded_len_varint(v)
    }
}

fn write_double(buf: &mut Vec<u8>, field: u32, v: f64) {
    if v != 0.0 {
        encode_key(field, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn double_len(v: f64) -> usize {
    if v != 0.0 {
        9
    } else {
        0
    }
}

/// `Metadata { origin: Origin { product 10, category 10 } }` as field `field`.
fn write_metadata(buf: &mut Vec<u8>, field: u32) {
    let origin_len = varint_field_len(ORIGIN_PRODUCT_AGENT) + varint_field_len(ORIGIN_CATEGORY_DOGSTATSD);
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len_field(origin_len) as u64, buf);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(origin_len as u64, buf);
    write_varint_field(buf, 4, ORIGIN_PRODUCT_AGENT);
    write_varint_field(buf, 5, ORIGIN_CATEGORY_DOGSTATSD);
}

/// A `Resource { type, name }` as field 1 of a series.
fn write_resource(buf: &mut Vec<u8>, kind: &str, name: &str) {
    let name_len = if name.is_empty() { 0 } else { len_field(name.len()) };
    let len = len_field(kind.len()) + name_len;
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    write_bytes(buf, 1, &[kind.as_bytes()]);
    if !name.is_empty() {
        write_bytes(buf, 2, &[name.as_bytes()]);
    }
}

/// The body of a `MetricSeries` (without its own field key and length).
pub(crate) fn write_series<'t, T>(buf: &mut Vec<u8>, hostname: &str, extra_tags: &[String], s: &SeriesRef<'_, T>)
where
    T: Iterator<Item = &'t str> + Clone,
{
    let special = special(s.tags.clone(), true);
    write_resource(buf, "host", special.host.unwrap_or(hostname));
    if let Some(device) = special.device {
        write_resource(buf, "device", device);
    }
    if !s.name.is_empty() || !s.suffix.is_empty() {
        write_bytes(buf, 2, &[s.name.as_bytes(), s.suffix.as_bytes()]);
    }
    for tag in s.tags.clone().filter(|t| !is_special(t, true)) {
        write_bytes(buf, 3, &[tag.as_bytes()]);
    }
    for tag in extra_tags {
        write_bytes(buf, 3, &[tag.as_bytes()]);
    }
    for &(ts, value) in s.points {
        let len = double_len(value) + varint_field_len(ts as u64);
        encode_key(4, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        write_double(buf, 1, value);
        write_varint_field(buf, 2, ts as u64);
    }
    write_varint_field(buf, 5, metric_type(s.kind));
    write_varint_field(buf, 8, i64::try_from(s.interval_secs).unwrap_or(i64::MAX) as u64);
    write_metadata(buf, 9);
}

fn zigzag(k: i32) -> u64 {
    u64::from(((k << 1) ^ (k >> 31)) as u32)
}

/// The body of a `Sketch` (without its own field key and length).
pub(crate) fn write_sketch<'t, T, D, K, N>(
    buf: &mut Vec<u8>,
    hostname: &str,
    extra_tags: &[String],
    name: &str,
    tags: T,
    dogsketches: D,
) where
    T: Iterator<Item = &'t str> + Clone,
    D: Iterator<Item = DogsketchRef<K, N>>,
    K: Iterator<Item = i32> + Clone,
    N: Iterator<Item = u32> + Clone,
{
    let special = special(tags.clone(), false);
    if !name.is_empty() {
        write_bytes(buf, 1, &[name.as_bytes()]);
    }
    let host = special.host.unwrap_or(hostname);
    if !host.is_empty() {
        write_bytes(buf, 2, &[host.as_bytes()]);
    }
    for tag in tags.filter(|t| !is_special(t, false)) {
        write_bytes(buf, 4, &[tag.as_bytes()]);
    }
    for tag in extra_tags {
        write_bytes(buf, 4, &[tag.as_bytes()]);
    }
    for d in dogsketches {
        let k_len: usize = d.k.clone().map(|k| encoded_len_varint(zigzag(k))).sum();
        let n_len: usize = d.n.clone().map(|n| encoded_len_varint(u64::from(n))).sum();
        let packed = |len: usize| if len == 0 { 0 } else { len_field(len) };
        let len = varint_field_len(d.ts as u64)
            + varint_field_len(d.count as u64)
            + double_len(d.min)
            + double_len(d.max)
            + double_len(d.avg)
            + double_len(d.sum)
            + packed(k_len)
            + packed(n_len);
        encode_key(7, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        write_varint_field(buf, 1, d.ts as u64);
        write_varint_field(buf, 2, d.count as u64);
        write_double(buf, 3, d.min);
        write_double(buf, 4, d.max);
        write_double(buf, 5, d.avg);
        write_double(buf, 6, d.sum);
        if k_len > 0 {
            encode_key(7, WireType::LengthDelimited, buf);
            encode_varint(k_len as u64, buf);
            for k in d.k {
                encode_varint(zigzag(k), buf);
            }
        }
        if n_len > 0 {
            encode_key(8, WireType::LengthDelimited, buf);
            encode_varint(n_len as u64, buf);
            for n in d.n {
                encode_varint(u64::from(n), buf);
            }
        }
    }
    write_metadata(buf, 8);
}

/// Items of one protobuf endpoint written into payloads: a splitter, the
/// buffer items are written into, and the bodies finished but not yet taken.
pub(crate) struct PayloadWriter<'e> {
    encoder: &'e Encoder,
    endpoint: Endpoint,
    splitter: Splitter,
    buf: Vec<u8>,
    ready: VecDeque<Body>,
}

impl<'e> PayloadWriter<'e> {
    pub(crate) fn new(encoder: &'e Encoder, endpoint: Endpoint) -> Self {
        Self {
            encoder,
            endpoint,
            splitter: encoder.splitter(endpoint, Framing::PROTOBUF),
            buf: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// Writes one item, `body` filling in its message, as repeated field 1 of
    /// the payload message.
    pub(crate) fn push(
        &mut self,
        points: u64,
        name: &dyn fmt::Display,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), EncodeError> {
        self.buf.clear();
        self.buf.resize(HEADER_ROOM, 0);
        body(&mut self.buf);
        let len = self.buf.len() - HEADER_ROOM;
        let mut header = [0u8; HEADER_ROOM];
        let mut h = &mut header[..];
        encode_key(1, WireType::LengthDelimited, &mut h);
        encode_varint(len as u64, &mut h);
        let header_len = HEADER_ROOM - h.len();
        let start = HEADER_ROOM - header_len;
        self.buf[start..HEADER_ROOM].copy_from_slice(&header[..header_len]);
        self.encoder
            .push(self.endpoint, &mut self.splitter, &self.buf[start..], points, name)?;
        self.ready.extend(self.splitter.take_done());
        Ok(())
    }

    /// The next finished payload, if one is.
    pub(crate) fn next_ready(&mut self) -> Option<EncodedPayload> {
        let body = self.ready.pop_front()?;
        Some(self.encoder.payload(self.endpoint, body))
    }

    /// Closes the payload under construction; every payload not taken yet.
    pub(crate) fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        let Self {
            encoder,
            endpoint,
            splitter,
            ready,
            ..
        } = self;
        let mut out: Vec<EncodedPayload> = ready.into_iter().map(|b| encoder.payload(endpoint, b)).collect();
        out.extend(encoder.finish(endpoint, splitter)?);
        Ok(out)
    }
}

/// The name a too-big item is logged with: the series name and its suffix.
struct Name<'a>(&'a str, &'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)
    }
}

/// Writes `/api/v2/series` payloads from borrowed series ([`Encoder::series_writer`]).
pub struct SeriesWriter<'e> {
    inner: PayloadWriter<'e>,
}

impl SeriesWriter<'_> {
    /// Adds one series (to the payload under construction, or to a new one
    /// when it does not fit; one too big for any payload is dropped and
    /// counted).
    pub fn push<'t, T>(&mut self, series: &SeriesRef<'_, T>) -> Result<(), EncodeError>
    where
        T: Iterator<Item = &'t str> + Clone,
    {
        let host = self.inner.encoder.hostname();
        let points = u64::try_from(series.points.len()).unwrap_or(u64::MAX);
        let extra = self.inner.encoder.extra_tags();
        self.inner.push(points, &Name(series.name, series.suffix), |buf| {
            write_series(buf, host, extra, series)
        })
    }

    /// The next finished payload, if one is: take it (and send it) before
    /// pushing more, so that finished payloads do not pile up.
    pub fn next_ready(&mut self) -> Option<EncodedPayload> {
        self.inner.next_ready()
    }

    /// Closes the last payload; every payload not taken yet.
    pub fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.inner.finish()
    }
}

/// Writes `/api/beta/sketches` payloads from borrowed sketches ([`Encoder::sketch_writer`]).
pub struct SketchWriter<'e> {
    inner: PayloadWriter<'e>,
}

impl SketchWriter<'_> {
    /// Adds one distribution context with its sketches (one per bucket).
    pub fn push<'t, T, D, K, N>(&mut self, name: &str, tags: T, dogsketches: D) -> Result<(), EncodeError>
    where
        T: Iterator<Item = &'t str> + Clone,
        D: Iterator<Item = DogsketchRef<K, N>>,
        K: Iterator<Item = i32> + Clone,
        N: Iterator<Item = u32> + Clone,
    {
        let host = self.inner.encoder.hostname();
        let extra = self.inner.encoder.extra_tags();
        self.inner.push(0, &Name(name, ""), |buf| {
            write_sketch(buf, host, extra, name, tags, dogsketches)
        })
    }

    /// The next finished payload, if one is.
    pub fn next_ready(&mut self) -> Option<EncodedPayload> {
        self.inner.next_ready()
    }

    /// Closes the last payload; every payload not taken yet.
    pub fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.inner.finish()
    }
}

/// The `Dogsketch` of one sketch at `ts`, borrowed: an empty sketch (which
/// the aggregator never emits) has zero min, max and avg.
#[allow(clippy::type_complexity)]
pub fn dogsketch_ref(
    ts: i64,
    sketch: &AgentSketch,
) -> DogsketchRef<impl Iterator<Item = i32> + Clone + '_, impl Iterator<Item = u32> + Clone + '_> {
    DogsketchRef {
        ts,
        count: i64::try_from(sketch.count()).unwrap_or(i64::MAX),
        min: sketch.min().unwrap_or(0.0),
        max: sketch.max().unwrap_or(0.0),
        avg: sketch.avg().unwrap_or(0.0),
        sum: sketch.sum(),
        k: sketch.bins().map(|(k, _)| i32::from(k)),
        n: sketch.bins().map(|(_, n)| u32::from(n)),
    }
}

/// An aggregator flush written into series and sketch payloads
/// ([`Encoder::flush_writer`]): the aggregator pushes each series and
/// sketch borrowed from its state ([`FlushSink`]), the caller takes the
/// payloads as they finish.
pub struct FlushWriter<'e> {
    series: SeriesWriter<'e>,
    sketches: SketchWriter<'e>,
}

impl FlushWriter<'_> {
    /// The next finished payload, series first, if one is.
    pub fn next_ready(&mut self) -> Option<EncodedPayload> {
        self.series.next_ready().or_else(|| self.sketches.next_ready())
    }

    /// Closes both payloads under construction; every payload not taken yet.
    pub fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        let mut out = self.series.finish()?;
        out.extend(self.sketches.finish()?);
        Ok(out)
    }
}

impl FlushSink for FlushWriter<'_> {
    type Error = EncodeError;

    fn series<'t, T>(&mut self, series: SeriesView<'_, T>) -> Result<(), EncodeError>
    where
        T: Iterator<Item = &'t str> + Clone,
    {
        self.series.push(&series)
    }

    fn sketches<'t, 's, T, P>(&mut self, name: &str, tags: T, _interval_secs: u64, points: P) -> Result<(), EncodeError>
    where
        T: Iterator<Item = &'t str> + Clone,
        P: Iterator<Item = (i64, &'s AgentSketch)> + Clone,
    {
        self.sketches
            .push(name, tags, points.map(|(ts, sketch)| dogsketch_ref(ts, sketch)))
    }
}

impl Encoder {
    /// A writer of one aggregator flush's series and sketch payloads.
    pub fn flush_writer(&self) -> FlushWriter<'_> {
        FlushWriter {
            series: self.series_writer(),
            sketches: self.sketch_writer(),
        }
    }

    /// A writer of `/api/v2/series` payloads: push series, take payloads as
    /// they finish, then [`finish`](SeriesWriter::finish).
    pub fn series_writer(&self) -> SeriesWriter<'_> {
        SeriesWriter {
            inner: PayloadWriter::new(self, Endpoint::Series),
        }
    }

    /// A writer of `/api/beta/sketches` payloads.
    pub fn sketch_writer(&self) -> SketchWriter<'_> {
        SketchWriter {
            inner: PayloadWriter::new(self, Endpoint::Sketches),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use adp_wire::proto;

    use super::*;
    use crate::items::{dogsketch, series_proto, sketch_proto, SeriesType};

    fn series_type(kind: SeriesKind) -> SeriesType {
        match kind {
            SeriesKind::Count => SeriesType::Count,
            SeriesKind::Rate => SeriesType::Rate,
            SeriesKind::Gauge => SeriesType::Gauge,
        }
    }

    fn tag() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{0,6}:[a-zé0-9]{0,12}",
            "host:[a-z0-9-]{0,8}",
            "device:[a-z0-9]{0,6}",
            Just(String::new()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The hand-written bytes are prost's for the same series.
        #[test]
        fn property_test_series_bytes_are_prosts(
            name in "[a-z.]{0,20}",
            suffix in prop_oneof![Just(String::new()), Just(".max".to_owned()), Just(".95percentile".to_owned())],
            tags in proptest::collection::vec(tag(), 0..8),
            kind in prop_oneof![Just(SeriesKind::Count), Just(SeriesKind::Rate), Just(SeriesKind::Gauge)],
            interval in prop_oneof![Just(0u64), Just(10), any::<u64>()],
            points in proptest::collection::vec((any::<i64>(), prop_oneof![Just(0.0), Just(-0.0), any::<f64>()]), 0..4),
            hostname in "[a-z]{0,6}",
        ) {
            let full = format!("{name}{suffix}");
            let expected = series_proto(&hostname, &full, &tags, series_type(kind), interval, &points).encode_to_vec();
            let mut got = Vec::new();
            let series = SeriesRef { name: &name, suffix: &suffix, tags: tags.iter().map(String::as_str), kind, interval_secs: interval, points: &points };
            write_series(&mut got, &hostname, &[], &series);
            prop_assert_eq!(got, expected);
        }

        /// The hand-written bytes are prost's for the same sketch.
        #[test]
        fn property_test_sketch_bytes_are_prosts(
            name in "[a-z.]{0,20}",
            tags in proptest::collection::vec(tag(), 0..8),
            sketches in proptest::collection::vec(
                (any::<i64>(), any::<u64>(), any::<f64>(), any::<f64>(), any::<f64>(), any::<f64>(),
                 proptest::collection::vec(any::<i16>(), 0..6), proptest::collection::vec(any::<u16>(), 0..6)),
                0..3),
            hostname in "[a-z]{0,6}",
        ) {
            let protos: Vec<proto::Dogsketch> = sketches.iter().map(|(ts, cnt, min, max, sum, avg, k, n)| {
                dogsketch(*ts, *cnt, *min, *max, *sum, *avg,
                    k.iter().map(|&k| i32::from(k)).collect(), n.iter().map(|&n| u32::from(n)).collect())
            }).collect();
            let expected = sketch_proto(&hostname, &name, &tags, protos.clone()).encode_to_vec();
            let mut got = Vec::new();
            let refs = protos.iter().map(|d| DogsketchRef {
                ts: d.ts, count: d.cnt, min: d.min, max: d.max, avg: d.avg, sum: d.sum,
                k: d.k.iter().copied(),
                n: d.n.iter().copied(),
            });
            write_sketch(&mut got, &hostname, &[], &name, tags.iter().map(String::as_str), refs);
            prop_assert_eq!(got, expected);
        }
    }
}
