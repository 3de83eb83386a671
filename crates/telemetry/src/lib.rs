//! Internal telemetry: lock-free counters and gauges that every pipeline stage
//! updates, registered by name and labels, and rendered as OpenMetrics text for
//! the unprivileged API's `/metrics` endpoint.
//!
//! Values are `u64`/`i64` atomics. 32-bit ARMv7 has native 64-bit atomics
//! (`ldrexd`/`strexd`), so counters never wrap at 4 Gi on the board.
#![deny(missing_docs)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing counter. Cloning shares the value.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter not attached to any registry (useful in tests).
    pub fn detached() -> Self {
        Self::default()
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue depths, bytes held). Cloning shares the value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// A gauge not attached to any registry (useful in tests).
    pub fn detached() -> Self {
        Self::default()
    }
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `d` (which may be negative).
    #[inline]
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Value {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    help: String,
    labels: Vec<(String, String)>,
    value: Value,
}

/// One metric's value at a point in time: `(name, labels, value)`; counters
/// saturate at `i64::MAX` (see [`Registry::snapshot`]).
pub type Sample = (String, Vec<(String, String)>, i64);

/// A set of named metrics. Cloning shares the registry.
///
/// Registering the same name and labels twice returns the same underlying value,
/// so components can be rebuilt (e.g. in tests) without double counting.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or finds) a counter. `name` should not carry the `_total`
    /// suffix; rendering adds it as OpenMetrics requires.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.register(name, help, labels, || Value::Counter(Counter::default())) {
            Value::Counter(c) => c,
            Value::Gauge(_) => panic!("telemetry metric {name} registered both as gauge and counter"),
        }
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.register(name, help, labels, || Value::Gauge(Gauge::default())) {
            Value::Gauge(g) => g,
            Value::Counter(_) => panic!("telemetry metric {name} registered both as counter and gauge"),
        }
    }

    fn register(&self, name: &str, help: &str, labels: &[(&str, &str)], make: impl FnOnce() -> Value) -> Value {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.iter().find(|e| {
            e.name == name
                && e.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .eq(labels.iter().copied())
        }) {
            return e.value.clone();
        }
        let value = make();
        entries.push(Entry {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            value: value.clone(),
        });
        value
    }

    /// The current value of a registered counter or gauge, for tests and the
    /// statistics endpoint. Counters are returned as `i64` (saturating).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| {
                e.name == name
                    && e.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .eq(labels.iter().copied())
            })
            .map(|e| match &e.value {
                Value::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
                Value::Gauge(g) => g.get(),
            })
    }

    /// Every metric, in registration order.
    pub fn snapshot(&self) -> Vec<Sample> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|e| {
                let v = match &e.value {
                    Value::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
                    Value::Gauge(g) => g.get(),
                };
                (e.name.clone(), e.labels.clone(), v)
            })
            .collect()
    }

    /// Renders every metric in the OpenMetrics text format (families grouped,
    /// `# TYPE`/`# HELP` once per family, terminated by `# EOF`).
    pub fn render_openmetrics(&self) -> String {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut families: Vec<&str> = Vec::new();
        for e in entries.iter() {
            if !families.contains(&e.name.as_str()) {
                families.push(&e.name);
            }
        }
        let mut out = String::new();
        for family in families {
            let mut members = entries.iter().filter(|e| e.name == family).peekable();
            let Some(first) = members.peek() else { continue };
            let (kind, suffix) = match first.value {
                Value::Counter(_) => ("counter", "_total"),
                Value::Gauge(_) => ("gauge", ""),
            };
            let _ = writeln!(out, "# TYPE {family} {kind}");
            let _ = writeln!(out, "# HELP {family} {}", escape(&first.help));
            for e in members {
                let value = match &e.value {
                    Value::Counter(c) => c.get().to_string(),
                    Value::Gauge(g) => g.get().to_string(),
                };
                out.push_str(family);
                out.push_str(suffix);
                if !e.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in e.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_twice_shares_the_value() {
        let r = Registry::new();
        let a = r.counter("adp_packets", "Packets received.", &[("listener", "udp")]);
        let b = r.counter("adp_packets", "Packets received.", &[("listener", "udp")]);
        a.add(2);
        b.inc();
        assert_eq!(a.get(), 3);
        assert_eq!(r.value("adp_packets", &[("listener", "udp")]), Some(3));
        assert_eq!(r.value("adp_packets", &[("listener", "uds")]), None);
    }

    #[test]
    fn counters_do_not_wrap_at_32_bits() {
        let c = Counter::detached();
        c.add(u64::from(u32::MAX));
        c.add(2);
        assert_eq!(c.get(), u64::from(u32::MAX) + 2);
    }

    #[test]
    fn openmetrics_groups_families_and_ends_with_eof() {
        let r = Registry::new();
        r.counter("adp_errors", "Decode errors.", &[("reason", "bad \"type\"")])
            .add(5);
        r.gauge("adp_queue_bytes", "Bytes queued.", &[]).set(-1);
        r.counter("adp_errors", "Decode errors.", &[("reason", "no_value")])
            .inc();
        let text = r.render_openmetrics();
        assert_eq!(
            text,
            "# TYPE adp_errors counter\n# HELP adp_errors Decode errors.\n\
             adp_errors_total{reason=\"bad \\\"type\\\"\"} 5\n\
             adp_errors_total{reason=\"no_value\"} 1\n\
             # TYPE adp_queue_bytes gauge\n# HELP adp_queue_bytes Bytes queued.\n\
             adp_queue_bytes -1\n# EOF\n"
        );
    }
}
