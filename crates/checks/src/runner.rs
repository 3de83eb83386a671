//! Running check instances on schedule, off the async runtime.
//!
//! The checks read /proc and call `statvfs`, which can block on a hung
//! network file system, and ntp waits on DNS and UDP for seconds. So they run
//! on two dedicated threads rather than on the tokio runtime that carries
//! DogStatsD: `adp-checks` for the /proc checks and `adp-checks-net` for
//! those that wait on the network (ntp), so that an unreachable NTP pool
//! never delays the cpu or memory series. Each thread runs its checks at
//! their start, then every `min_collection_interval`, skipping the runs it
//! missed; each run's output is sent to a tokio channel (waiting when it is
//! full).
//!
//! A failing run is logged once per distinct error (`Error running check
//! <id>: <error>`), counted in [`CheckStats`], and the check runs again at its
//! next interval; a recovery is logged at INFO.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adp_telemetry::{Counter, Registry};
use tokio::sync::mpsc;
use tracing::{debug, error, info};

use crate::check::Check;
use crate::output::{CheckBatch, Emitter};

const THREAD_STACK: usize = 256 * 1024;

/// Runs and failures of one check instance since start: detached counters,
/// or `adp_checks_runs_total` and `adp_checks_errors_total` labelled
/// `check="<instance id>"` once [`ScheduledCheck::register_telemetry`] is
/// called.
#[derive(Debug, Default)]
pub struct CheckStats {
    runs: Counter,
    errors: Counter,
}

impl CheckStats {
    /// Runs so far.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    /// Failed runs so far.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
}

/// A check instance with its schedule and error accounting.
pub struct ScheduledCheck {
    id: Arc<str>,
    name: &'static str,
    interval: Duration,
    check: Box<dyn Check>,
    stats: Arc<CheckStats>,
    last_error: Option<String>,
    failed_in_a_row: u64,
    capacity: usize,
}

impl std::fmt::Debug for ScheduledCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledCheck")
            .field("id", &self.id)
            .field("interval", &self.interval)
            .finish()
    }
}

impl ScheduledCheck {
    /// A check instance named `id`, run every `interval`.
    pub fn new(id: Arc<str>, check: Box<dyn Check>, interval: Duration) -> Self {
        let name = check.name();
        ScheduledCheck {
            id,
            name,
            interval,
            check,
            stats: Arc::default(),
            last_error: None,
            failed_in_a_row: 0,
            capacity: 16,
        }
    }

    /// The instance ID (`cpu`, `disk:1`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The check's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The collection interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Its run and error counters.
    pub fn stats(&self) -> Arc<CheckStats> {
        Arc::clone(&self.stats)
    }

    /// Counts runs and errors in `registry` (`adp_checks_runs`,
    /// `adp_checks_errors`, labelled with the instance ID) from now on.
    pub fn register_telemetry(&mut self, registry: &Registry) {
        let labels = [("check", &*self.id)];
        let stats = CheckStats {
            runs: registry.counter("adp_checks_runs", "Check runs, failed or not.", &labels),
            errors: registry.counter(
                "adp_checks_errors",
                "Check runs that failed (logged once per distinct error).",
                &labels,
            ),
        };
        stats.runs.add(self.stats.runs());
        stats.errors.add(self.stats.errors());
        self.stats = Arc::new(stats);
    }

    /// Runs the check once now; errors are logged and counted, and whatever
    /// the run emitted before failing is still returned.
    pub fn run_once(&mut self) -> CheckBatch {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut out = Emitter::new(timestamp, self.capacity);
        debug!("Running check {}", self.id);
        let result = self.check.run(&mut out, Instant::now());
        self.stats.runs.inc();
        match result {
            Ok(()) => {
                if self.failed_in_a_row > 0 {
                    info!(
                        "Check {} is running again after {} failed runs",
                        self.id, self.failed_in_a_row
                    );
                }
                self.failed_in_a_row = 0;
                self.last_error = None;
            }
            Err(e) => {
                self.stats.errors.inc();
                self.failed_in_a_row += 1;
                let message = e.to_string();
                if self.last_error.as_deref() != Some(message.as_str()) {
                    let cause = std::error::Error::source(&e)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    error!("Error running check {}: {message}{cause}", self.id);
                    self.last_error = Some(message);
                } else {
                    debug!("Error running check {} (again): {message}", self.id);
                }
            }
        }
        let (series, service_checks) = out.into_parts();
        self.capacity = self.capacity.max(series.len());
        CheckBatch {
            check: self.name,
            instance: Arc::clone(&self.id),
            series,
            service_checks,
        }
    }
}

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Sleeps until `deadline`; true when asked to stop meanwhile.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
}

/// The running checks; [`stop`](Self::stop) ends them.
#[derive(Debug)]
pub struct RunnerHandle {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<(Arc<str>, Arc<CheckStats>)>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stop")
    }
}

impl RunnerHandle {
    /// Each instance's ID and counters.
    pub fn stats(&self) -> &[(Arc<str>, Arc<CheckStats>)] {
        &self.stats
    }

    /// Stops the threads (a run in progress finishes first) and waits for them.
    pub fn stop(self) {
        self.stop.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts the checks: every instance runs now, then at its interval; each
/// non-empty run is sent to `tx`. The threads end when [`RunnerHandle::stop`]
/// is called or the receiver is dropped.
pub fn spawn(checks: Vec<ScheduledCheck>, tx: mpsc::Sender<CheckBatch>) -> io::Result<RunnerHandle> {
    let stop = Arc::new(Stop::default());
    let stats = checks.iter().map(|c| (Arc::clone(&c.id), c.stats())).collect();
    for c in &checks {
        info!("Scheduling check {} with an interval of {:?}", c.id, c.interval);
    }
    let (net, local): (Vec<_>, Vec<_>) = checks.into_iter().partition(|c| c.check.waits_on_network());
    let mut threads = Vec::new();
    for (name, group) in [("adp-checks", local), ("adp-checks-net", net)] {
        if group.is_empty() {
            continue;
        }
        let (thread_stop, tx) = (Arc::clone(&stop), tx.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .stack_size(THREAD_STACK)
            .spawn(move || worker(group, tx, &thread_stop));
        match thread {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop.stop();
                return Err(e);
            }
        }
    }
    Ok(RunnerHandle { stop, threads, stats })
}

fn worker(mut checks: Vec<ScheduledCheck>, tx: mpsc::Sender<CheckBatch>, stop: &Stop) {
    let start = Instant::now();
    let mut due = vec![start; checks.len()];
    loop {
        let Some((i, &next)) = due.iter().enumerate().min_by_key(|(_, d)| **d) else {
            return;
        };
        if stop.sleep_until(next) {
            return;
        }
        let batch = checks[i].run_once();
        let now = Instant::now();
        due[i] += checks[i].interval.max(Duration::from_millis(1));
        if due[i] <= now {
            // Missed runs (a slow run, a suspended board) are skipped, not caught up.
            due[i] = now + checks[i].interval;
        }
        if (!batch.series.is_empty() || !batch.service_checks.is_empty()) && tx.blocking_send(batch).is_err() {
            debug!("The check output channel is closed; the check runner stops");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckError;
    use crate::procfs::Roots;

    struct Flaky {
        runs: u32,
    }

    impl Check for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn run(&mut self, out: &mut Emitter, _now: Instant) -> Result<(), CheckError> {
            self.runs += 1;
            out.gauge("flaky.runs", f64::from(self.runs), &Arc::from(Vec::new()));
            if self.runs % 2 == 0 {
                Err(CheckError::Failed("even run".into()))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn errors_are_counted_and_output_still_returned() {
        let mut c = ScheduledCheck::new("flaky".into(), Box::new(Flaky { runs: 0 }), Duration::from_secs(1));
        for _ in 0..4 {
            let batch = c.run_once();
            assert_eq!(batch.series.len(), 1);
        }
        assert_eq!((c.stats().runs(), c.stats().errors()), (4, 2));

        let registry = Registry::new();
        c.register_telemetry(&registry);
        c.run_once();
        let value = |name| registry.value(name, &[("check", "flaky")]);
        assert_eq!(
            (value("adp_checks_runs"), value("adp_checks_errors")),
            (Some(5), Some(2))
        );
        assert!(registry
            .render_openmetrics()
            .contains("adp_checks_errors_total{check=\"flaky\"} 2"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_runner_sends_batches_on_schedule_and_stops() {
        let roots = Roots::default();
        let checks = vec![
            ScheduledCheck::new(
                "uptime".into(),
                Box::new(crate::uptime::UptimeCheck::new(&roots, Arc::from(Vec::new()))),
                Duration::from_millis(100),
            ),
            ScheduledCheck::new(
                "memory".into(),
                Box::new(crate::memory::MemoryCheck::new(&roots, Arc::from(Vec::new()))),
                Duration::from_secs(3600),
            ),
        ];
        let (tx, mut rx) = mpsc::channel(16);
        let handle = spawn(checks, tx).unwrap();
        let mut uptime = 0;
        let mut memory = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while uptime < 3 {
            let batch = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("batches arrive")
                .unwrap();
            match batch.check {
                "uptime" => uptime += 1,
                "memory" => memory += 1,
                other => panic!("unexpected {other}"),
            }
            assert!(batch.series.iter().all(|s| s.timestamp > 1_600_000_000));
        }
        assert_eq!(memory, 1, "the hourly check ran once, at start");
        assert!(handle.stats().iter().all(|(_, s)| s.errors() == 0));
        tokio::task::spawn_blocking(move || handle.stop()).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_receiver_ends_the_runner() {
        let roots = Roots::default();
        let checks = vec![ScheduledCheck::new(
            "uptime".into(),
            Box::new(crate::uptime::UptimeCheck::new(&roots, Arc::from(Vec::new()))),
            Duration::from_millis(10),
        )];
        let (tx, rx) = mpsc::channel(1);
        let handle = spawn(checks, tx).unwrap();
        drop(rx);
        let joined = tokio::task::spawn_blocking(move || {
            for t in handle.threads {
                t.join().unwrap();
            }
        });
        tokio::time::timeout(Duration::from_secs(5), joined)
            .await
            .expect("the runner ends")
            .unwrap();
    }
}
