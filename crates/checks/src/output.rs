//! What a check run produces: series points and service checks, ready for
//! the intake.

use std::borrow::Cow;
use std::sync::Arc;

/// The intake type of a check series point.
///
/// The Agent's check sampler turns a check's `Rate` into a per-second value
/// sent as a GAUGE, and a `MonotonicCount` into the delta since the previous
/// run sent as a COUNT; checks never send the intake's RATE type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A value at a point in time (gauges and computed rates).
    Gauge,
    /// The increase since the previous run (monotonic counts).
    Count,
}

/// The `source_type_name` the Agent gives every check series.
pub const SOURCE_TYPE_NAME: &str = "System";

/// One point of one series, as the Agent's check sampler flushes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSeries {
    /// The metric name (`system.cpu.user`).
    pub name: Cow<'static, str>,
    /// Gauge or count.
    pub metric_type: MetricType,
    /// The value, in the Agent's unit for the metric.
    pub value: f64,
    /// The tags (device tags, then the instance's `tags`), shared between the
    /// series of one device.
    pub tags: Arc<[String]>,
    /// Unix seconds of the run.
    pub timestamp: i64,
    /// Always 0: the Agent sends check series without an interval.
    pub interval: u64,
}

/// A service check status, with the intake's numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceCheckStatus {
    /// 0.
    Ok = 0,
    /// 1.
    Warning = 1,
    /// 2.
    Critical = 2,
    /// 3.
    Unknown = 3,
}

/// A service check (`ntp.in_sync`, `disk.read_write`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCheck {
    /// The service check name.
    pub name: &'static str,
    /// Its status.
    pub status: ServiceCheckStatus,
    /// Its tags (the instance's `tags`).
    pub tags: Arc<[String]>,
    /// Unix seconds of the run.
    pub timestamp: i64,
    /// A message (empty unless the status needs one).
    pub message: String,
}

/// Everything one run of one check instance produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckBatch {
    /// The check's name (`cpu`).
    pub check: &'static str,
    /// The instance's ID (`cpu:0`, `disk:1`).
    pub instance: Arc<str>,
    /// Series points.
    pub series: Vec<CheckSeries>,
    /// Service checks.
    pub service_checks: Vec<ServiceCheck>,
}

/// Collects one run's output; checks call it as the Agent's checks call
/// their sender.
#[derive(Debug)]
pub struct Emitter {
    timestamp: i64,
    series: Vec<CheckSeries>,
    service_checks: Vec<ServiceCheck>,
}

impl Emitter {
    /// An emitter for a run at `timestamp` (Unix seconds), with room for
    /// `capacity` series.
    pub fn new(timestamp: i64, capacity: usize) -> Self {
        Emitter {
            timestamp,
            series: Vec::with_capacity(capacity),
            service_checks: Vec::new(),
        }
    }

    /// The run's timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Adds a gauge point.
    pub fn gauge(&mut self, name: impl Into<Cow<'static, str>>, value: f64, tags: &Arc<[String]>) {
        self.push(name.into(), MetricType::Gauge, value, tags);
    }

    /// Adds a count point.
    pub fn count(&mut self, name: impl Into<Cow<'static, str>>, value: f64, tags: &Arc<[String]>) {
        self.push(name.into(), MetricType::Count, value, tags);
    }

    /// Adds a gauge when a rate could be computed (see [`crate::Counter::rate`]).
    pub fn rate(&mut self, name: impl Into<Cow<'static, str>>, value: Option<f64>, tags: &Arc<[String]>) {
        if let Some(v) = value {
            self.gauge(name, v, tags);
        }
    }

    /// Adds a count when a delta could be computed (see
    /// [`crate::Counter::delta`]).
    pub fn monotonic(&mut self, name: impl Into<Cow<'static, str>>, value: Option<f64>, tags: &Arc<[String]>) {
        if let Some(v) = value {
            self.count(name, v, tags);
        }
    }

    /// Adds a service check.
    pub fn service_check(
        &mut self,
        name: &'static str,
        status: ServiceCheckStatus,
        tags: &Arc<[String]>,
        message: String,
    ) {
        let timestamp = self.timestamp;
        self.service_checks.push(ServiceCheck {
            name,
            status,
            tags: Arc::clone(tags),
            timestamp,
            message,
        });
    }

    fn push(&mut self, name: Cow<'static, str>, metric_type: MetricType, value: f64, tags: &Arc<[String]>) {
        self.series.push(CheckSeries {
            name,
            metric_type,
            value,
            tags: Arc::clone(tags),
            timestamp: self.timestamp,
            interval: 0,
        });
    }

    /// The series emitted so far.
    pub fn series(&self) -> &[CheckSeries] {
        &self.series
    }

    /// Ends the run.
    pub fn into_parts(self) -> (Vec<CheckSeries>, Vec<ServiceCheck>) {
        (self.series, self.service_checks)
    }
}
