//! Component health for `/health/live` and `/health/ready`.
//!
//! Each pipeline component registers itself and reports `ready` once it can do
//! its job (listeners bound, tasks running). The process is ready when every
//! registered component is; it is live unless a component failed (its task
//! ended unexpectedly). A supervisor restarts on "not live" and routes or waits
//! on "not ready".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Failed,
}

#[derive(Default)]
struct Inner {
    components: Mutex<BTreeMap<&'static str, State>>,
    changed: Notify,
}

/// The set of components and their states. Cloning shares it.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

/// One component's handle for reporting its state.
#[derive(Clone)]
pub struct ComponentHealth {
    name: &'static str,
    inner: Arc<Inner>,
}

impl ComponentHealth {
    fn set(&self, state: State) {
        self.inner
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.name, state);
        self.inner.changed.notify_waiters();
    }

    /// The component can do its job.
    pub fn ready(&self) {
        self.set(State::Ready);
    }

    /// The component runs but cannot do its job for now (not ready, still live).
    pub fn not_ready(&self) {
        self.set(State::Starting);
    }

    /// The component stopped working (not live, not ready).
    pub fn failed(&self) {
        self.set(State::Failed);
    }
}

impl Health {
    /// Registers a component, not ready yet.
    pub fn register(&self, name: &'static str) -> ComponentHealth {
        let handle = ComponentHealth {
            name,
            inner: self.inner.clone(),
        };
        handle.set(State::Starting);
        handle
    }

    fn snapshot(&self) -> BTreeMap<&'static str, State> {
        self.inner.components.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every component is ready (and there is at least one).
    pub fn is_ready(&self) -> bool {
        let components = self.snapshot();
        !components.is_empty() && components.values().all(|s| *s == State::Ready)
    }

    /// No component has failed.
    pub fn is_live(&self) -> bool {
        self.snapshot().values().all(|s| *s != State::Failed)
    }

    /// `{"ready": bool, "live": bool, "components": {"<name>": {"ready": bool, "live": bool}}}`.
    pub fn report(&self) -> Value {
        let components = self.snapshot();
        let ready = !components.is_empty() && components.values().all(|s| *s == State::Ready);
        let live = components.values().all(|s| *s != State::Failed);
        let per: serde_json::Map<String, Value> = components
            .iter()
            .map(|(name, s)| {
                (
                    (*name).to_owned(),
                    json!({"ready": *s == State::Ready, "live": *s != State::Failed}),
                )
            })
            .collect();
        json!({"ready": ready, "live": live, "components": per})
    }

    /// Waits until every component is ready; returns false if one fails first.
    pub async fn wait_ready(&self) -> bool {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            // Register interest before checking, so a change in between is not missed.
            notified.as_mut().enable();
            if !self.is_live() {
                return false;
            }
            if self.is_ready() {
                return true;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_component_is_ready() {
        let health = Health::default();
        assert!(!health.is_ready(), "no components: not ready");
        let a = health.register("dogstatsd");
        let b = health.register("forwarder");
        a.ready();
        assert!(!health.is_ready());
        assert_eq!(health.report()["components"]["forwarder"]["ready"], false);
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.wait_ready().await }
        });
        b.ready();
        assert!(tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap());
        assert_eq!(
            health.report(),
            json!({"ready": true, "live": true, "components": {
            "dogstatsd": {"ready": true, "live": true}, "forwarder": {"ready": true, "live": true}}})
        );
    }

    #[tokio::test]
    async fn a_failed_component_makes_the_process_not_live() {
        let health = Health::default();
        let a = health.register("aggregator");
        a.failed();
        assert!(!health.is_live());
        assert!(!health.wait_ready().await);
    }
}
