//! One way to notice a failure: every long-running task of the agent is
//! spawned through the [`Supervisor`] under a name, and holds a guard that,
//! when the task ends before shutdown began — it returned, or it panicked and
//! unwound — marks its health component failed (`/health/live` turns false)
//! and reports the name. `run` logs "Task `<name>` stopped unexpectedly." and
//! the agent exits 1, so that systemd (or any supervisor) restarts it.
//!
//! In release builds a panic aborts the process (`panic = "abort"`), which is
//! the same outcome without the log line.
//!
//! Debug builds (the ones the end-to-end tests run) honour
//! `ADP_TEST_PANIC_TASK=<name>`: that task panics a second after it starts, so
//! the tests can show that a task ending early stops the agent.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::health::ComponentHealth;

/// Spawns named tasks and reports the first that ends before [`Supervisor::stopping`].
pub struct Supervisor {
    stopping: Arc<AtomicBool>,
    ended_tx: mpsc::UnboundedSender<&'static str>,
    ended: mpsc::UnboundedReceiver<&'static str>,
}

/// Held by a supervised task for as long as it runs.
struct Guard {
    name: &'static str,
    health: Option<ComponentHealth>,
    stopping: Arc<AtomicBool>,
    ended: mpsc::UnboundedSender<&'static str>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        if let Some(health) = &self.health {
            health.failed();
        }
        let _ = self.ended.send(self.name);
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Self {
            stopping: Arc::new(AtomicBool::new(false)),
            ended_tx,
            ended,
        }
    }
}

impl Supervisor {
    /// Spawns `task` as `name`; if `health` is given, the task's early end
    /// also fails that health component.
    pub fn spawn<T, F>(&self, name: &'static str, health: Option<ComponentHealth>, task: F) -> JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let guard = Guard {
            name,
            health,
            stopping: Arc::clone(&self.stopping),
            ended: self.ended_tx.clone(),
        };
        let panic_after_start = test_hook(name);
        tokio::spawn(async move {
            let _guard = guard;
            if panic_after_start {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                panic!("ADP_TEST_PANIC_TASK: task `{name}` panics on purpose");
            }
            task.await
        })
    }

    /// Shutdown began: tasks that end from now on end as asked.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Completes with the name of the first task that ended unexpectedly.
    pub async fn ended(&mut self) -> &'static str {
        // The supervisor holds a sender itself, so the channel never closes.
        self.ended.recv().await.unwrap_or("the supervisor")
    }
}

#[cfg(debug_assertions)]
fn test_hook(name: &str) -> bool {
    std::env::var("ADP_TEST_PANIC_TASK").is_ok_and(|v| v == name)
}

#[cfg(not(debug_assertions))]
fn test_hook(_: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::Health;

    #[tokio::test]
    async fn a_task_that_returns_early_is_reported_by_name_and_fails_its_component() {
        let health = Health::default();
        let mut supervisor = Supervisor::default();
        let component = health.register("aggregator");
        component.ready();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        supervisor.spawn("aggregator", Some(component), async move {
            let _ = rx.await;
        });
        supervisor.spawn("encoder", None, std::future::pending::<()>());
        assert!(health.is_live());
        drop(tx);
        let name = tokio::time::timeout(Duration::from_secs(5), supervisor.ended())
            .await
            .unwrap();
        assert_eq!(name, "aggregator");
        assert!(!health.is_live());
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_too() {
        let mut supervisor = Supervisor::default();
        let handle = supervisor.spawn("forwarder", None, async {
            panic!("boom");
        });
        assert!(handle.await.unwrap_err().is_panic());
        assert_eq!(supervisor.ended().await, "forwarder");
    }

    #[tokio::test]
    async fn tasks_ending_after_shutdown_began_are_not_failures() {
        let mut supervisor = Supervisor::default();
        supervisor.stopping();
        supervisor.spawn("aggregator", None, async {}).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(100), supervisor.ended()).await;
        assert!(waited.is_err(), "nothing reported");
    }
}
