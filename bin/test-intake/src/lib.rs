//! A stand-in for the Datadog intake that really decodes what the agent
//! sends, for tests, smoke checks and benchmarks.
//!
//! [`TestIntake`] is an HTTP/1.1 server (hyper on tokio) on a loopback
//! address. It accepts the agent's payload endpoints, decompresses each body
//! by its `Content-Encoding`, decodes it (protobuf series, sketches and
//! events; JSON service checks and host metadata) and records the result with the request's
//! headers; [`TestIntake::received`] returns a [`Received`] snapshot and
//! [`TestIntake::wait_for`] waits until a predicate over it holds. A body
//! that cannot be decoded is answered 400 and recorded in
//! [`Received::errors`]; so is a request without a `DD-Api-Key` (403).
//!
//! Faults are injected with a [`Behaviour`], settable at runtime, for the
//! next `n` requests or for a duration:
//!
//! | fault | [`Behaviour`] / JSON | what the client sees | what is recorded |
//! | --- | --- | --- | --- |
//! | status | `status(503)` / `{"status":503}` | that status | the request; the payload in [`Received::refused`] |
//! | delay | `delay(d)` / `{"delay_ms":2000}` | a late answer | the request; the payload only if the client waited (else status 0) |
//! | slow acknowledgement | `slow_ack(d)` / `{"ack_delay_ms":2000}` | a late 202 | the payload at once, as accepted, even if the client gives up |
//! | close | `close()` / `{"close":true}` | end of stream (FIN), no answer | the request, status 0 |
//! | reset | `reset()` / `{"reset":true}` | connection reset (RST), no answer | the request, status 0 |
//! | one valid API key | `only_api_key(k)` / `{"api_key":"k"}` | 403 for any other key, key checks included | the request; not the payload |
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /api/v2/series`, `/api/beta/sketches`, `/api/v1/check_run`, `/api/v1/events_batch`, `/intake/` | 202 `{}` after decoding, or the fault |
//! | `GET /api/v1/validate` | 200 `{"valid":true}` with an API key (the valid one, when the behaviour names one), else 403 |
//! | `GET /_intake/received` | the [`Received`] snapshot as JSON |
//! | `GET /_intake/behaviour`, `POST /_intake/behaviour` | the [`Behaviour`] as JSON; POST sets it |
//! | `POST /_intake/reset` | forgets everything received and restores normal behaviour |
//!
//! The `adp-test-intake` binary wraps this for shell checks
//! (`adp-test-intake --listen 127.0.0.1:0 --print`).
//!
//! # Missing
//!
//! - HTTP/1.1 only, plain TCP: no TLS, no HTTP/2.
//! - `/intake/` takes only the host-metadata payload (a JSON object with
//!   `internalHostname` and `apiKey`), not the Agent's older `/intake/` JSON
//!   events; `/api/v1/series` JSON is not decoded (404). This project sends
//!   neither.
#![deny(missing_docs)]

mod behaviour;
mod received;
mod server;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use behaviour::Behaviour;
pub use received::{
    decode, Decoded, Received, ReceivedDogsketch, ReceivedEvent, ReceivedSeries, ReceivedServiceCheck, ReceivedSketch,
    RequestInfo, MAX_DECOMPRESSED_BYTES,
};
use tokio::sync::{watch, Notify};

/// How the intake keeps what it receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntakeOptions {
    /// Count requests and bytes but neither decode nor keep payloads (for
    /// benchmarks, where the intake must cost as little as possible).
    pub blackhole: bool,
    /// Print each decoded payload to stdout as one JSON line.
    pub print: bool,
}

pub(crate) struct State {
    received: Mutex<Received>,
    /// Intake requests being handled now.
    in_flight: std::sync::atomic::AtomicU64,
    behaviour: Mutex<behaviour::Active>,
    changed: Notify,
    options: IntakeOptions,
}

impl State {
    fn received(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn behaviour(&self) -> MutexGuard<'_, behaviour::Active> {
        self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running test intake. Dropping it stops the server and closes its
/// connections.
pub struct TestIntake {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// [`TestIntake::wait_for`] ran out of time; carries the last snapshot so the
/// failing test can show what did arrive.
#[derive(Debug)]
pub struct WaitTimeout {
    /// How long was waited.
    pub waited: Duration,
    /// What had been received when time ran out.
    pub received: Received,
}

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "condition not met within {:?}; received {} series, {} sketches, {} service checks, {} events; requests {:?}; errors {:?}",
            self.waited,
            self.received.series.len(),
            self.received.sketches.len(),
            self.received.service_checks.len(),
            self.received.events.len(),
            self.received.requests,
            self.received.errors,
        )
    }
}

impl std::error::Error for WaitTimeout {}

impl TestIntake {
    /// Binds `bind` (use port 0 for any free port) and starts serving with
    /// the given behaviour. Must be called within a tokio runtime.
    pub async fn start(bind: SocketAddr, behaviour: Behaviour) -> io::Result<Self> {
        Self::start_with(bind, behaviour, IntakeOptions::default()).await
    }

    /// [`Self::start`] with options (blackhole, print).
    pub async fn start_with(bind: SocketAddr, behaviour: Behaviour, options: IntakeOptions) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            received: Mutex::new(Received::default()),
            in_flight: std::sync::atomic::AtomicU64::new(0),
            behaviour: Mutex::new(behaviour::Active::new(behaviour)),
            changed: Notify::new(),
            options,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, Arc::clone(&state), shutdown_rx));
        Ok(Self {
            addr,
            state,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of everything received so far.
    pub fn received(&self) -> Received {
        self.state.received().clone()
    }

    /// Replaces the behaviour; counts and durations start now.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour() = behaviour::Active::new(behaviour);
    }

    /// Forgets everything received and restores normal behaviour.
    pub fn reset(&self) {
        *self.state.received() = Received::default();
        self.set_behaviour(Behaviour::normal());
    }

    /// Waits until `condition` holds for what has been received, re-checking
    /// after every request, and returns the snapshot that satisfied it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&Received) -> bool,
    ) -> Result<Received, WaitTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            // Register before checking so a request landing in between wakes us.
            changed.as_mut().enable();
            {
                let received = self.state.received();
                if condition(&received) {
                    return Ok(received.clone());
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(WaitTimeout {
                    waited: timeout,
                    received: self.received(),
                });
            }
        }
    }

    /// Stops accepting, closes every connection and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestIntake {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
