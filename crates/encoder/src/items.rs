//! One item's wire form: a series, a sketch context or an event as its
//! protobuf message, a service check as its `check_run` JSON object, with
//! the configured hostname, the Agent's `host:`/`device:` tag handling and
//! origin metadata applied (see the [crate documentation](crate)).
//!
//! The builders take borrowed parts rather than pipeline types, so the same
//! code serves the agent's path ([`crate::inputs`]) and the test-support
//! entry points.

use adp_wire::proto;
use serde::Serialize;

/// Origin metadata the Agent writes for DogStatsD series and sketches:
/// product 10 (Agent), category 10 (DogStatsD), service 0.
#[cfg(test)]
const ORIGIN_PRODUCT_AGENT: u32 = 10;
#[cfg(test)]
const ORIGIN_CATEGORY_DOGSTATSD: u32 = 10;
#[cfg(test)]
const ORIGIN_SERVICE_DOGSTATSD: u32 = 0;

const HOST_TAG_PREFIX: &str = "host:";
const DEVICE_TAG_PREFIX: &str = "device:";

/// The v2 series metric type.
#[cfg(any(test, feature = "test-support"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesType {
    /// `COUNT`.
    Count,
    /// `RATE` (DogStatsD counts are sent as rates).
    Rate,
    /// `GAUGE`.
    Gauge,
}

#[cfg(any(test, feature = "test-support"))]
impl SeriesType {
    /// The same kind in `adp-model`'s terms.
    pub(crate) fn model(self) -> adp_model::SeriesKind {
        match self {
            Self::Count => adp_model::SeriesKind::Count,
            Self::Rate => adp_model::SeriesKind::Rate,
            Self::Gauge => adp_model::SeriesKind::Gauge,
        }
    }

    #[cfg(test)]
    fn proto(self) -> proto::MetricType {
        match self {
            Self::Count => proto::MetricType::Count,
            Self::Rate => proto::MetricType::Rate,
            Self::Gauge => proto::MetricType::Gauge,
        }
    }
}

/// Builds a `Dogsketch` from a sketch's summary and its sparse bins.
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::too_many_arguments)]
pub fn dogsketch(
    ts: i64,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    avg: f64,
    k: Vec<i32>,
    n: Vec<u32>,
) -> proto::Dogsketch {
    proto::Dogsketch {
        ts,
        cnt: i64::try_from(count).unwrap_or(i64::MAX),
        min,
        max,
        avg,
        sum,
        k,
        n,
    }
}

#[cfg(test)]
fn origin_metadata() -> Option<proto::Metadata> {
    Some(proto::Metadata {
        origin: Some(proto::Origin {
            origin_product: ORIGIN_PRODUCT_AGENT,
            origin_category: ORIGIN_CATEGORY_DOGSTATSD,
            origin_service: ORIGIN_SERVICE_DOGSTATSD,
        }),
    })
}

/// Tags with the Agent's special tags taken out.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SplitTags {
    pub tags: Vec<String>,
    /// The value of the last `host:` tag, if any.
    pub host: Option<String>,
    /// The value of the last `device:` tag, if any (only when asked for).
    pub device: Option<String>,
}

impl SplitTags {
    /// A series's resources: its `host:` tag's host, or `default_host`, and
    /// its `device:` tag's device if any. Leaves `tags` in place.
    pub fn series_resources(&mut self, default_host: &str) -> Vec<proto::Resource> {
        let mut resources = vec![proto::Resource {
            r#type: "host".to_owned(),
            name: self.host.take().unwrap_or_else(|| default_host.to_owned()),
        }];
        if let Some(device) = self.device.take() {
            resources.push(proto::Resource {
                r#type: "device".to_owned(),
                name: device,
            });
        }
        resources
    }
}

pub(crate) fn split_tags<T: AsRef<str>>(tags: &[T], extract_device: bool) -> SplitTags {
    let mut out = SplitTags {
        tags: Vec::with_capacity(tags.len()),
        ..SplitTags::default()
    };
    for tag in tags {
        let tag = tag.as_ref();
        if let Some(host) = tag.strip_prefix(HOST_TAG_PREFIX) {
            out.host = Some(host.to_owned());
        } else if let Some(device) = tag.strip_prefix(DEVICE_TAG_PREFIX).filter(|_| extract_device) {
            out.device = Some(device.to_owned());
        } else {
            out.tags.push(tag.to_owned());
        }
    }
    out
}

#[cfg(test)]
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One series's protobuf form, as prost writes it: the reference the
/// hand-written encoding (`crate::direct`) is tested against.
#[cfg(test)]
pub(crate) fn series_proto<T: AsRef<str>>(
    hostname: &str,
    name: &str,
    tags: &[T],
    kind: SeriesType,
    interval_secs: u64,
    points: &[(i64, f64)],
) -> proto::MetricSeries {
    let mut split = split_tags(tags, true);
    proto::MetricSeries {
        resources: split.series_resources(hostname),
        metric: name.to_owned(),
        tags: split.tags,
        points: points
            .iter()
            .map(|&(timestamp, value)| proto::MetricPoint { value, timestamp })
            .collect(),
        r#type: kind.proto() as i32,
        unit: String::new(),
        source_type_name: String::new(),
        interval: clamp_i64(interval_secs),
        metadata: origin_metadata(),
    }
}

/// One sketch context's protobuf form, as prost writes it (the reference
/// for `crate::direct`).
#[cfg(test)]
pub(crate) fn sketch_proto<T: AsRef<str>>(
    hostname: &str,
    name: &str,
    tags: &[T],
    dogsketches: Vec<proto::Dogsketch>,
) -> proto::Sketch {
    let split = split_tags(tags, false);
    proto::Sketch {
        metric: name.to_owned(),
        host: split.host.unwrap_or_else(|| hostname.to_owned()),
        distributions: Vec::new(),
        tags: split.tags,
        dogsketches,
        metadata: origin_metadata(),
    }
}

/// A service check as `/api/v1/check_run` takes it.
#[derive(Serialize)]
pub(crate) struct CheckRun<'a> {
    pub check: &'a str,
    pub host_name: String,
    pub timestamp: i64,
    pub status: u8,
    pub message: &'a str,
    pub tags: Vec<String>,
}

/// The fields of a service check, borrowed from whatever type holds them.
#[derive(Clone, Copy, Debug)]
pub struct CheckParts<'a, T> {
    /// Check name.
    pub name: &'a str,
    /// Status, 0 (ok) to 3 (unknown).
    pub status: u8,
    /// Unix seconds; `None` means the `now` given to the encoder.
    pub timestamp: Option<i64>,
    /// The check's own hostname (`|h:`), which wins over a `host:` tag.
    pub hostname: Option<&'a str>,
    /// Message; `None` is sent as `""`.
    pub message: Option<&'a str>,
    /// Tags.
    pub tags: &'a [T],
}

pub(crate) fn check_run<'a, T: AsRef<str>>(hostname: &str, now: i64, c: &CheckParts<'a, T>) -> CheckRun<'a> {
    let split = split_tags(c.tags, false);
    CheckRun {
        check: c.name,
        host_name: c
            .hostname
            .map(str::to_owned)
            .or(split.host)
            .unwrap_or_else(|| hostname.to_owned()),
        timestamp: c.timestamp.unwrap_or(now),
        status: c.status,
        message: c.message.unwrap_or(""),
        tags: split.tags,
    }
}

/// The fields of an event, borrowed from whatever type holds them.
#[derive(Clone, Copy, Debug)]
pub struct EventParts<'a, T> {
    /// Title.
    pub title: &'a str,
    /// Text.
    pub text: &'a str,
    /// Unix seconds; `None` means the `now` given to the encoder.
    pub timestamp: Option<i64>,
    /// The event's own hostname (`|h:`), which wins over a `host:` tag.
    pub hostname: Option<&'a str>,
    /// Aggregation key.
    pub aggregation_key: Option<&'a str>,
    /// `normal` or `low`.
    pub priority: &'a str,
    /// Source type name.
    pub source_type_name: Option<&'a str>,
    /// `info`, `error`, `warning` or `success`.
    pub alert_type: &'a str,
    /// Tags.
    pub tags: &'a [T],
}

pub(crate) fn event_proto<T: AsRef<str>>(hostname: &str, now: i64, e: &EventParts<'_, T>) -> proto::Event {
    let split = split_tags(e.tags, false);
    proto::Event {
        title: e.title.to_owned(),
        text: e.text.to_owned(),
        ts: e.timestamp.unwrap_or(now),
        priority: e.priority.to_owned(),
        host: e
            .hostname
            .map(str::to_owned)
            .or(split.host)
            .unwrap_or_else(|| hostname.to_owned()),
        tags: split.tags,
        alert_type: e.alert_type.to_owned(),
        aggregation_key: e.aggregation_key.unwrap_or_default().to_owned(),
        source_type_name: e.source_type_name.unwrap_or_default().to_owned(),
    }
}
