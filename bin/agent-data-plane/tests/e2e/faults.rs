//! Intake faults under steady load, and SIGTERM under load.
//!
//! Every test runs the agent against an in-process [`TestIntake`] while a
//! [`Load`] thread sends DogStatsD over the Unix datagram socket at a steady
//! rate (the kernel blocks a sender whose datagrams the agent has not read
//! yet rather than dropping them, so what was sent is exactly known): one
//! counter sample per tick and one uniquely titled event every
//! [`EVENT_EVERY`] ticks. Accounting is per point: with the harness's 1 s
//! windows each window of the counter arrives as one RATE point whose value ×
//! interval is that window's count, keyed by its timestamp, so the sum over
//! distinct points is the number of samples and a point (or event) that
//! arrives twice is a duplicate ([`Totals`]).
//!
//! What each fault does, as these tests pin it down:
//!
//! | fault | agent | delivery |
//! | --- | --- | --- |
//! | 503 for 60 s | retries with backoff, queues in memory | exact, no duplicates |
//! | answer slower than `forwarder_timeout`, payload not yet recorded | times out, retries | exact, no duplicates |
//! | answer slower than `forwarder_timeout`, payload already recorded | times out, retries | at least once: one duplicate copy per timed-out attempt |
//! | 413 | drops the payload, logs it, `payloads_dropped{reason="status_413"}` | the refused payload is lost, the rest exact |
//! | 403 | drops the payload, logs an API key problem (never the key) | the refused payload is lost, the rest exact |
//! | connection refused, then the intake comes up | retries | exact, no duplicates |
//! | connection closed or reset without an answer | retries | exact, no duplicates |
//! | unresolvable host | retries, logs host and lookup error, stays ready, evicts the oldest beyond `forwarder_retry_queue_payloads_max_size` | evicted payloads are lost (counted) |
//! | SIGTERM under load | drains the socket, final flush, forwards | exact |
//! | SIGTERM while the intake fails | retries until `data_plane.shutdown_drain_timeout`, then drops (counted, logged) or persists to disk storage, replayed exactly by the next start | lost, or exact after restart |

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use adp_test_intake::{Behaviour, Decoded, Received, ReceivedEvent, ReceivedSeries, TestIntake};
use adp_wire::Endpoint;

use crate::harness::*;

/// One tick of load: a counter sample (and, every [`EVENT_EVERY`] ticks, an event).
const TICK: Duration = Duration::from_millis(5);
/// One event every this many ticks (10 events per second).
const EVENT_EVERY: u64 = 20;

/// What a [`Load`] sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    /// `<prefix>.count:1|c` samples.
    samples: u64,
    /// Events titled `<prefix>-<n>`, `n` in `0..events`.
    events: u64,
}

/// A thread sending DogStatsD at a steady rate until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Sent>>,
}

impl Load {
    fn start(socket: &Path, prefix: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = socket.to_owned();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = UnixDatagram::unbound().unwrap();
            // Blocking (the agent is behind), but never forever.
            client.set_write_timeout(Some(TIMEOUT)).unwrap();
            let started = Instant::now();
            let mut tick: u64 = 0;
            while !flag.load(Ordering::Relaxed) {
                let mut datagram = format!("{prefix}.count:1|c");
                if tick % EVENT_EVERY == 0 {
                    let title = format!("{prefix}-{}", tick / EVENT_EVERY);
                    datagram.push_str(&format!("\n_e{{{},1}}:{title}|t", title.len()));
                }
                if let Err(e) = client.send_to(datagram.as_bytes(), &socket) {
                    panic!("sending tick {tick} to {}: {e}", socket.display());
                }
                tick += 1;
                // A steady rate, not "a pause after each send": catch up after a blocked send.
                let next = started + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Sent {
                samples: tick,
                events: tick.div_ceil(EVENT_EVERY),
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sending; returns what was sent (every send has returned).
    fn stop(mut self) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("stopped once");
        thread.join().expect("the load thread panicked")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What arrived of one [`Load`], per point and per event.
#[derive(Debug, Default)]
struct Totals {
    /// Σ value × interval over distinct counter points: the samples delivered.
    samples: f64,
    /// Counter point (window start) → copies.
    points: BTreeMap<i64, u64>,
    /// Extra copies of counter points.
    duplicate_points: u64,
    /// Event number → copies.
    events: BTreeMap<u64, u64>,
}

impl Totals {
    /// What the intake accepted.
    fn received(r: &Received, prefix: &str) -> Self {
        Self::of(r.series.iter(), r.events.iter(), prefix)
    }

    /// What the intake refused with an injected status.
    fn refused(r: &Received, prefix: &str) -> Self {
        let series = r.refused.iter().flat_map(|d| match d {
            Decoded::Series { series } => series.as_slice(),
            _ => &[],
        });
        let events = r.refused.iter().flat_map(|d| match d {
            Decoded::Events { events } => events.as_slice(),
            _ => &[],
        });
        Self::of(series, events, prefix)
    }

    fn of<'a>(
        series: impl Iterator<Item = &'a ReceivedSeries>,
        events: impl Iterator<Item = &'a ReceivedEvent>,
        prefix: &str,
    ) -> Self {
        let metric = format!("{prefix}.count");
        let mut totals = Self::default();
        let mut values: BTreeMap<i64, f64> = BTreeMap::new();
        for s in series.filter(|s| s.metric == metric) {
            // A 1 s window: the rate is the window's count.
            assert_eq!((s.kind.as_str(), s.interval), ("rate", 1), "{s:?}");
            for &(ts, value) in &s.points {
                *totals.points.entry(ts).or_default() += 1;
                match values.insert(ts, value) {
                    None => totals.samples += value,
                    Some(earlier) => {
                        assert_eq!(earlier, value, "two different points for window {ts}");
                        totals.duplicate_points += 1;
                    }
                }
            }
        }
        let event_prefix = format!("{prefix}-");
        for e in events {
            let n = e
                .title
                .strip_prefix(&event_prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("an event the load did not send: {e:?}"));
            *totals.events.entry(n).or_default() += 1;
        }
        totals
    }

    /// Extra copies of events.
    fn duplicate_events(&self) -> u64 {
        self.events.values().map(|c| c - 1).sum()
    }

    /// Every sample and event arrived, each exactly once.
    fn assert_exact(&self, sent: Sent) {
        assert_eq!(self.samples, sent.samples as f64, "samples delivered: {self:?}");
        assert_eq!(self.duplicate_points, 0, "duplicate points: {self:?}");
        assert_eq!(
            self.events.len() as u64,
            sent.events,
            "events delivered (of 0..{}): {self:?}",
            sent.events
        );
        assert!(self.events.values().all(|&c| c == 1), "duplicate events: {self:?}");
        assert!(self.events.keys().all(|&n| n < sent.events), "{self:?}");
    }

    /// Every sample and event arrived at least once.
    fn assert_at_least_once(&self, sent: Sent) {
        assert_eq!(self.samples, sent.samples as f64, "samples delivered: {self:?}");
        assert_eq!(self.events.len() as u64, sent.events, "events delivered: {self:?}");
        assert!(self.events.keys().all(|&n| n < sent.events), "{self:?}");
    }
}

/// A standalone agent whose DogStatsD socket and unprivileged API are known.
struct Agent {
    adp: Running,
    api: String,
    socket: PathBuf,
}

impl Agent {
    async fn start(env: &Env, dir: &Path) -> Self {
        let (adp, api) = start_healthy(env, dir).await;
        Self {
            adp,
            api,
            socket: dir.join("dsd.socket"),
        }
    }

    /// Failed attempts queued for retry, over every endpoint (one request is
    /// in flight per destination and a failed payload is retried first, so
    /// one endpoint's payload may take every retry).
    fn retries(&self) -> f64 {
        let (status, body) = http_get(&self.api, "/metrics");
        assert_eq!(status, 200, "{body}");
        Endpoint::ALL
            .iter()
            .filter_map(|e| metric_in(&body, &format!("adp_forwarder_retries_total{{endpoint=\"{e}\"}}")))
            .sum()
    }

    /// Waits until the forwarder holds nothing for retry.
    async fn wait_drained(&mut self) {
        wait_metric(&mut self.adp, &self.api, "adp_forwarder_retry_queue_bytes", |b| {
            b == 0.0
        })
        .await;
    }

    /// SIGTERM; asserts a zero exit, no crash in the log and no API key in
    /// it, and returns the whole log.
    async fn stop(mut self) -> String {
        let log = self.adp.stop().await;
        assert_clean_log(&log, &[]);
        assert!(!log.contains(API_KEY), "the API key leaked into the log:\n{log}");
        log
    }
}

/// Stops `load` then `agent`, and asserts that the intake accepted every
/// payload request at once and got every sample and event of `load` exactly once;
/// returns what `load` sent.
async fn stop_with_every_payload_accepted_once(agent: Agent, load: Load, intake: &TestIntake, label: &str) -> Sent {
    let sent = load.stop();
    agent.stop().await;
    let r = intake.received();
    assert!(r.payload_requests().all(|q| q.status == 202), "{:?}", r.request_log);
    Totals::received(&r, label).assert_exact(sent);
    sent
}

/// A normal intake, the agent of the standalone environment sending to it
/// (its files in the returned directory), and load `label` on its socket.
async fn agent_under_load(label: &'static str) -> (TestIntake, tempfile::TempDir, Agent, Load) {
    let (intake, dir) = intake_and_dir().await;
    let agent = Agent::start(&Env::standalone(&intake.url(), dir.path()), dir.path()).await;
    let load = Load::start(&agent.socket, label);
    (intake, dir, agent, load)
}

/// Waits until the intake has accepted series: the load flows end to end.
async fn wait_for_flow(intake: &TestIntake) {
    intake
        .wait_for(TIMEOUT, |r| r.accepted_by(Endpoint::Series) > 0)
        .await
        .unwrap();
}

fn accepted(r: &Received) -> u64 {
    r.accepted.values().sum()
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        + name.len()
        + 2;
    line[start..].split(' ').next().unwrap()
}

/// The outage: the intake answers 503 for a whole minute while load
/// continues; the forwarder retries with backoff and queues in memory, and
/// after recovery every sample and event arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_second_503_outage_then_recovery_delivers_exact_totals_without_duplicates() {
    const OUTAGE: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let (intake, _dir, mut agent, load) = agent_under_load("outage").await;

    // The outage starts under flow.
    wait_for_flow(&intake).await;
    intake.set_behaviour(Behaviour::status(503).for_duration(OUTAGE));
    let outage_started = Instant::now();
    // After the first refusal every request is refused until the outage ends
    // (one request in flight per destination), so the next acceptance is the recovery.
    let first = intake.wait_for(TIMEOUT, |r| !r.refused.is_empty()).await.unwrap();
    let before = accepted(&first);
    wait_metric(&mut agent.adp, &agent.api, "adp_forwarder_retry_queue_bytes", |b| {
        b > 0.0
    })
    .await;
    intake
        .wait_for(OUTAGE + TIMEOUT, |r| accepted(r) > before)
        .await
        .unwrap();
    let outage = outage_started.elapsed();
    assert!(
        outage >= OUTAGE,
        "nothing accepted during the outage: recovered after {outage:?}"
    );
    agent.wait_drained().await;
    let retries = agent.retries();
    let sent = load.stop();
    agent.stop().await;

    let r = intake.received();
    let refusals = r.payload_requests().filter(|q| q.status == 503).count();
    assert_eq!(refusals, r.refused.len(), "every refused payload was decoded");
    assert!(
        refusals >= 2 && retries >= 1.0,
        "the outage was seen: {refusals} refusals, {retries} retries"
    );
    assert_eq!(
        r.payload_requests()
            .filter(|q| q.status != 503 && q.status != 202)
            .count(),
        0,
        "{:?}",
        r.request_log
    );
    Totals::received(&r, "outage").assert_exact(sent);
    eprintln!(
        "503 outage: sent {sent:?}; {refusals} requests refused; {retries} retries; recovered after {outage:.1?} [{:.1?}]",
        started.elapsed()
    );
}

/// Answers slower than `forwarder_timeout` are retried, and everything
/// arrives at least once. The edge of "at least once": if the intake had
/// already recorded a payload when the agent gave up on the answer (a slow
/// acknowledgement), the retry delivers it again, so each timed-out attempt
/// of that kind is one duplicate copy. When the intake is slow *before*
/// taking the payload (the timed-out request never completes), nothing is
/// duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_forwarder_timeout_are_retried_and_arrive_at_least_once() {
    const SLOW: Duration = Duration::from_secs(6);
    const ATTEMPTS: u64 = 2;
    let started = Instant::now();
    let (intake, dir) = intake_and_dir().await;
    let env = Env::standalone(&intake.url(), dir.path()).set("DD_FORWARDER_TIMEOUT", "2s");
    let mut agent = Agent::start(&env, dir.path()).await;
    let load = Load::start(&agent.socket, "slow");
    wait_for_flow(&intake).await;

    // Slow before taking the payload: the agent gives up after 2 s, the
    // intake drops the request (logged with status 0).
    let base = accepted(&intake.received());
    intake.set_behaviour(Behaviour::delay(SLOW).for_next(ATTEMPTS));
    let r = intake
        .wait_for(TIMEOUT + SLOW, |r| {
            r.payload_requests().filter(|q| q.status == 0).count() as u64 == ATTEMPTS && accepted(r) > base
        })
        .await
        .unwrap();
    let after_delay = Totals::received(&r, "slow");
    assert_eq!(
        (after_delay.duplicate_points, after_delay.duplicate_events()),
        (0, 0),
        "abandoned requests were not recorded: {after_delay:?}"
    );

    // A slow acknowledgement: the payload is recorded, then the agent gives up.
    let base = accepted(&r);
    intake.set_behaviour(Behaviour::slow_ack(SLOW).for_next(ATTEMPTS));
    intake
        .wait_for(TIMEOUT + SLOW, |r| accepted(r) > base + ATTEMPTS)
        .await
        .unwrap();
    agent.wait_drained().await;
    let sent = load.stop();
    let log = agent.stop().await;
    let timeouts = log
        .lines()
        .filter(|l| l.contains("Payload not delivered; will retry.") && l.contains("timed out (forwarder_timeout)"))
        .count() as u64;
    assert_eq!(timeouts, 2 * ATTEMPTS, "one timeout per slow answer:\n{log}");

    let totals = Totals::received(&intake.received(), "slow");
    totals.assert_at_least_once(sent);
    // The slow-acknowledged payload was retried first both times (a failed
    // payload goes back to the front of the queue): what it carried arrived
    // ATTEMPTS + 1 times, everything else once.
    let copies = totals.points.values().chain(totals.events.values());
    assert!(copies.clone().all(|&c| c == 1 || c == ATTEMPTS + 1), "{totals:?}");
    assert!(
        copies.clone().any(|&c| c > 1),
        "the slow acknowledgement duplicated: {totals:?}"
    );
    assert!(
        totals.duplicate_points == 0 || totals.duplicate_events() == 0,
        "one payload (series or events) was duplicated: {totals:?}"
    );
    eprintln!(
        "slow answers: sent {sent:?}; {timeouts} timeouts; duplicates: {} points, {} events [{:.1?}]",
        totals.duplicate_points,
        totals.duplicate_events(),
        started.elapsed()
    );
}

/// A status the forwarder does not retry (413, 403): the refused payloads are
/// dropped with one log line each and counted; the next payloads still
/// arrive; nothing is lost besides the refused payloads and nothing arrives
/// twice. Returns the refusal's log line.
async fn a_refusal_is_dropped_not_retried(status: u16, prefix: &'static str) -> String {
    const REFUSED: u64 = 2;
    let started = Instant::now();
    let (intake, _dir, mut agent, load) = agent_under_load(prefix).await;
    wait_for_flow(&intake).await;
    intake.set_behaviour(Behaviour::status(status).for_next(REFUSED));
    let r = intake
        .wait_for(TIMEOUT, |r| r.refused.len() as u64 == REFUSED)
        .await
        .unwrap();
    let base = accepted(&r);
    // Later payloads still arrive.
    intake.wait_for(TIMEOUT, |r| accepted(r) > base + 2).await.unwrap();
    let dropped_series = format!("adp_forwarder_payloads_dropped_total{{reason=\"status_{status}\"}}");
    let dropped = wait_metric(&mut agent.adp, &agent.api, &dropped_series, |n| n >= REFUSED as f64).await;
    assert_eq!(dropped, REFUSED as f64);
    assert_eq!(agent.retries(), 0.0);
    let sent = load.stop();
    let log = agent.stop().await;

    let r = intake.received();
    let refusals = r.payload_requests().filter(|q| q.status == status).count() as u64;
    assert_eq!(refusals, REFUSED, "not retried: {:?}", r.request_log);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Payload refused and dropped (not retried)"))
        .collect();
    assert_eq!(lines.len() as u64, REFUSED, "{log}");
    assert!(lines.iter().all(|l| l.contains(&format!("status={status}"))), "{log}");
    // What arrived plus what was refused is exactly what was sent: the
    // refused payloads never arrived later, everything else arrived once.
    let received = Totals::received(&r, prefix);
    let refused = Totals::refused(&r, prefix);
    assert_eq!(received.duplicate_points + refused.duplicate_points, 0);
    let mut all = received;
    all.samples += refused.samples;
    for (n, c) in refused.events {
        *all.events.entry(n).or_default() += c;
    }
    all.assert_exact(sent);
    eprintln!(
        "status {status}: sent {sent:?}; {REFUSED} payloads refused and dropped [{:.1?}]",
        started.elapsed()
    );
    log.lines()
        .find(|l| l.contains("Payload refused and dropped (not retried)"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_drops_the_payload_with_a_log_line_and_a_counter_and_later_payloads_arrive() {
    let line = a_refusal_is_dropped_not_retried(413, "too-large").await;
    assert!(
        line.contains("the payload was too large for the intake") && line.contains("`serializer_max_payload_size`"),
        "says what to do: {line}"
    );
    eprintln!("413 log line: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_is_not_retried_and_logs_an_api_key_problem_without_the_key() {
    let line = a_refusal_is_dropped_not_retried(403, "forbidden").await;
    assert!(line.contains("API key") && line.contains("`api_key`"), "{line}");
    eprintln!("403 log line: {line}");
    // Agent::stop scanned the whole log for the key.
}

/// Nothing listens on the intake's port at first (connection refused), then
/// the intake comes up on that port: every sample and event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_until_the_intake_comes_up_then_exact_totals() {
    let started = Instant::now();
    let addr = std::net::TcpListener::bind(loopback()).unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone(&format!("http://{addr}"), dir.path());
    let mut agent = Agent::start(&env, dir.path()).await;
    let load = Load::start(&agent.socket, "refused");
    let line = agent.adp.wait_for_line("Payload not delivered; will retry.").await;
    assert!(
        line.contains(&format!("connecting to {addr}")) && line.contains("Connection refused"),
        "{line}"
    );
    // Some backlog builds up before the intake appears.
    let deadline = Instant::now() + TIMEOUT;
    while agent.retries() < 3.0 {
        assert!(Instant::now() < deadline, "{}", agent.adp.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let intake = TestIntake::start(addr, Behaviour::normal()).await.unwrap();
    intake.wait_for(TIMEOUT, |r| accepted(r) > 0).await.unwrap();
    agent.wait_drained().await;
    let sent = stop_with_every_payload_accepted_once(agent, load, &intake, "refused").await;
    eprintln!("connection refused: sent {sent:?} [{:.1?}]", started.elapsed());
}

/// The intake closes connections without answering (FIN), then resets them
/// (RST): both are retried, and every sample and event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_or_reset_without_an_answer_are_retried_with_exact_totals() {
    const EACH: u64 = 2;
    let started = Instant::now();
    let (intake, _dir, mut agent, load) = agent_under_load("reset").await;
    wait_for_flow(&intake).await;
    for fault in [Behaviour::close(), Behaviour::reset()] {
        let unanswered = |r: &Received| r.payload_requests().filter(|q| q.status == 0).count() as u64;
        let before = unanswered(&intake.received());
        intake.set_behaviour(fault.for_next(EACH));
        let r = intake
            .wait_for(TIMEOUT, |r| unanswered(r) == before + EACH)
            .await
            .unwrap();
        let base = accepted(&r);
        intake.wait_for(TIMEOUT, |r| accepted(r) > base).await.unwrap();
    }
    agent.wait_drained().await;
    let sent = load.stop();
    let log = agent.stop().await;
    let retried: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Payload not delivered; will retry."))
        .collect();
    assert_eq!(retried.len() as u64, 2 * EACH, "{log}");
    assert!(
        retried.iter().any(|l| l.contains("Connection reset by peer")),
        "a true reset reaches the agent:\n{log}"
    );
    Totals::received(&intake.received(), "reset").assert_exact(sent);
    eprintln!("close and reset: sent {sent:?} [{:.1?}]", started.elapsed());
}

/// An intake host that does not resolve: the log names the host and the
/// lookup failure, the agent stays ready, and memory stays bounded by the
/// retry queue, whose oldest payloads are evicted and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_host_is_logged_and_the_retry_queue_stays_bounded() {
    const QUEUE_MAX: f64 = 1024.0;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone("https://adp-e2e.invalid", dir.path())
        .set("DD_FORWARDER_RETRY_QUEUE_PAYLOADS_MAX_SIZE", "1024")
        .set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "1");
    let mut agent = Agent::start(&env, dir.path()).await;
    let load = Load::start(&agent.socket, "invalid");
    let line = agent.adp.wait_for_line("Payload not delivered; will retry.").await;
    assert!(
        line.contains("adp-e2e.invalid:443") && line.contains("failed to lookup address"),
        "names the host and the problem: {line}"
    );
    eprintln!("unresolvable host log line: {line}");
    let evicted_series = "adp_forwarder_payloads_dropped_total{reason=\"evicted\"}";
    let evicted = wait_metric(&mut agent.adp, &agent.api, evicted_series, |n| n >= 5.0).await;
    let queued = metric_or_zero(&agent.api, "adp_forwarder_retry_queue_bytes");
    assert!(queued > 0.0 && queued <= QUEUE_MAX, "retry queue {queued} bytes");
    let (status, body) = http_get(&agent.api, "/health/ready");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["components"]["forwarder"]["ready"], true, "{body}");
    let sent = load.stop();
    let log = agent.stop().await;
    assert!(
        log.contains("Retry queue full (forwarder_retry_queue_payloads_max_size)"),
        "{log}"
    );
    eprintln!(
        "unresolvable host: sent {sent:?}; {evicted} payloads evicted; retry queue {queued} bytes [{:.1?}]",
        started.elapsed()
    );
}

/// SIGTERM right after the last send, with no wait for a flush: the listener
/// drains its socket, the aggregator flushes every open window, and the
/// forwarder delivers it all before exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_delivers_exact_totals() {
    let started = Instant::now();
    let (intake, _dir, agent, load) = agent_under_load("sigterm").await;
    intake
        .wait_for(TIMEOUT, |r| {
            r.accepted_by(Endpoint::Series) >= 4 && !r.events.is_empty()
        })
        .await
        .unwrap();
    let sent = stop_with_every_payload_accepted_once(agent, load, &intake, "sigterm").await;
    eprintln!("SIGTERM under load: sent {sent:?} [{:.1?}]", started.elapsed());
}

/// SIGTERM while the intake answers 503: the forwarder keeps retrying for
/// `data_plane.shutdown_drain_timeout`, then drops what it holds (no disk
/// storage), says how many, and the agent exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_intake_fails_drops_the_backlog_after_the_drain_timeout() {
    let started = Instant::now();
    let intake = TestIntake::start(loopback(), Behaviour::status(503)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone(&intake.url(), dir.path()).set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "2");
    let agent = Agent::start(&env, dir.path()).await;
    let load = Load::start(&agent.socket, "failing");
    intake.wait_for(TIMEOUT, |r| r.refused.len() >= 4).await.unwrap();
    let sent = load.stop();
    let stopping = Instant::now();
    let log = agent.stop().await;
    let took = stopping.elapsed();
    let r = intake.received();
    assert_eq!(accepted(&r), 0);
    let line = log
        .lines()
        .find(|l| l.contains("Forwarder stopped with undelivered payloads."))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("persisted=0") && line.contains("dropped="), "{line}");
    assert!(
        log.contains("Payloads were not delivered before the shutdown deadline (data_plane.shutdown_drain_timeout)."),
        "{log}"
    );
    // One request in flight and a failed payload retried first: the oldest
    // payload took every attempt; the rest (the final flush included) waited
    // behind it and was dropped with it at the deadline.
    let dropped: u64 = field(line, "dropped").parse().unwrap();
    assert!(dropped >= 2, "{line}");
    assert!(
        took >= Duration::from_secs(2),
        "retried until the drain timeout: {took:?}"
    );
    let first = &r.refused[0];
    assert!(
        r.refused.iter().all(|d| d == first),
        "only the head payload was attempted"
    );
    eprintln!(
        "SIGTERM while failing: sent {sent:?}; exited in {took:?}; {line} [{:.1?}]",
        started.elapsed()
    );
}

/// SIGTERM while the intake answers 503, with disk storage: the backlog is
/// persisted at the drain deadline, and the next start replays it to the
/// recovered intake: every sample and event arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_intake_fails_persists_the_backlog_and_the_next_start_delivers_it() {
    let started = Instant::now();
    let intake = TestIntake::start(loopback(), Behaviour::status(503)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "2")
        .set("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "10000000")
        .set(
            "DD_FORWARDER_STORAGE_PATH",
            dir.path().join("retry").to_string_lossy().into_owned(),
        );
    let agent = Agent::start(&env, dir.path()).await;
    let load = Load::start(&agent.socket, "persisted");
    intake.wait_for(TIMEOUT, |r| r.refused.len() >= 4).await.unwrap();
    let sent = load.stop();
    let log = agent.stop().await;
    assert_eq!(accepted(&intake.received()), 0);
    let line = log
        .lines()
        .find(|l| l.contains("Forwarder stopped."))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!log.contains("Forwarder stopped with undelivered payloads."), "{log}");

    intake.set_behaviour(Behaviour::normal());
    let agent = Agent::start(&env, dir.path()).await;
    let r = intake
        .wait_for(TIMEOUT, |r| {
            let t = Totals::received(r, "persisted");
            t.samples >= sent.samples as f64 && t.events.len() as u64 >= sent.events
        })
        .await
        .unwrap_or_else(|e| panic!("{e}:\n{}", agent.adp.log()));
    let replayed = metric_or_zero(&agent.api, "adp_forwarder_payloads_replayed_total");
    agent.stop().await;
    Totals::received(&r, "persisted").assert_exact(sent);
    Totals::received(&intake.received(), "persisted").assert_exact(sent);
    eprintln!(
        "SIGTERM while failing, disk storage: sent {sent:?}; {line}; {replayed} replayed [{:.1?}]",
        started.elapsed()
    );
}
