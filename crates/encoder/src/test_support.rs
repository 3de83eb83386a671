//! Entry points beside the agent's, behind the `test-support` feature: items
//! given as borrowed parts or as ready-made protobuf messages, for tests that
//! need exact control over what is encoded (the test intake's, this crate's)
//! and for building payloads the agent would never produce.
//!
//! They share every step after the item's conversion with the agent's path:
//! splitting, compression, telemetry.

use adp_wire::{proto, EncodedPayload, Endpoint};
use prost::Message;

use crate::items::{CheckParts, EventParts, SeriesType};
use crate::{EncodeError, Encoder};

impl Encoder {
    /// Encodes ready-made `MetricSeries` messages into `/api/v2/series`
    /// payloads, as they are (no host or tag processing).
    pub fn encode_series_protos(
        &self,
        series: impl IntoIterator<Item = proto::MetricSeries>,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.encode_protobuf(Endpoint::Series, series, |s| {
            (&s.metric, u64::try_from(s.points.len()).unwrap_or(u64::MAX))
        })
    }

    /// Encodes ready-made `Sketch` messages into `/api/beta/sketches` payloads.
    pub fn encode_sketch_protos(
        &self,
        sketches: impl IntoIterator<Item = proto::Sketch>,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.encode_protobuf(Endpoint::Sketches, sketches, |s| (&s.metric, 0))
    }

    /// Encodes ready-made `Event` messages into `/api/v1/events_batch` payloads.
    pub fn encode_event_protos(
        &self,
        events: impl IntoIterator<Item = proto::Event>,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.encode_protobuf(Endpoint::Events, events, |e| (&e.title, 0))
    }

    fn encode_protobuf<M: Message>(
        &self,
        endpoint: Endpoint,
        items: impl IntoIterator<Item = M>,
        describe: impl Fn(&M) -> (&str, u64),
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.protobuf_payloads(endpoint, items.into_iter(), 1, describe)
            .collect()
    }

    /// Encodes one series per `(name, tags, type, interval, points)` with the
    /// configured hostname, `host:`/`device:` tag handling and origin metadata.
    pub fn encode_series_parts<'a, T: AsRef<str> + 'a>(
        &'a self,
        series: impl IntoIterator<Item = (&'a str, &'a [T], SeriesType, u64, &'a [(i64, f64)])> + 'a,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.series_from_parts(series).collect()
    }

    /// [`Self::encode_series_parts`], each payload built when the previous
    /// one is taken.
    pub fn series_parts_payloads<'a, T: AsRef<str> + 'a>(
        &'a self,
        series: impl IntoIterator<Item = (&'a str, &'a [T], SeriesType, u64, &'a [(i64, f64)])> + 'a,
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        self.series_from_parts(series)
    }

    /// Encodes one sketch context per `(name, tags, dogsketches)` with the
    /// configured hostname and `host:` tag handling.
    pub fn encode_sketch_parts<'a, T: AsRef<str> + 'a>(
        &'a self,
        sketches: impl IntoIterator<Item = (&'a str, &'a [T], Vec<proto::Dogsketch>)> + 'a,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.sketches_from_parts(sketches).collect()
    }

    /// Encodes service checks into `/api/v1/check_run` JSON; a missing
    /// timestamp is `now` (Unix seconds).
    pub fn encode_check_parts<'a, T: AsRef<str> + 'a>(
        &self,
        checks: impl IntoIterator<Item = CheckParts<'a, T>>,
        now: i64,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.checks_from_parts(checks, now)
    }

    /// Encodes events into `/api/v1/events_batch` protobuf payloads; a
    /// missing timestamp is `now` (Unix seconds).
    pub fn encode_event_parts<'a, T: AsRef<str> + 'a>(
        &self,
        events: impl IntoIterator<Item = EventParts<'a, T>>,
        now: i64,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.events_from_parts(events, now)
    }
}
