//! Exponential backoff with jitter and the per-endpoint circuit breaker.
//!
//! This follows the Datadog Agent's `ExpBackoffPolicy` and `blockedEndpoints`:
//!
//! - After `n` consecutive errors (`n` capped at `max_errors =
//!   ⌊log2(max / base)⌋ + 1`) the wait is `t = base × 2ⁿ`; when `t` exceeds
//!   `max` the wait is `max`, otherwise it is drawn uniformly from
//!   `[t / factor, t]`. With the defaults (2 s, factor 2, 64 s) the first error
//!   waits 2–4 s, then 4–8 s, …, up to 64 s.
//! - An error blocks the endpoint for that wait. A success lowers the error
//!   count by `recovery_interval` (or to 0 with `recovery_reset`) and blocks for
//!   the wait of the new count, so a flapping intake is approached gradually;
//!   at zero errors nothing is blocked.
//!
//! The Agent's newer half-open probing is not modelled: while blocked, nothing
//! is sent to the endpoint; the first request after the wait acts as the probe.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::ForwarderConfig;

/// The backoff policy (immutable).
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    base: f64,
    factor: f64,
    max: f64,
    max_errors: u32,
    recovery_interval: u32,
    recovery_reset: bool,
}

impl Backoff {
    pub(crate) fn new(config: &ForwarderConfig) -> Self {
        let base = config.forwarder_backoff_base.as_secs_f64();
        let max = config.forwarder_backoff_max.as_secs_f64();
        // Both are validated positive with max >= base, so the log is >= 0.
        let max_errors = (max / base).log2().floor().clamp(0.0, 62.0) as u32 + 1;
        Self {
            base,
            factor: config.forwarder_backoff_factor,
            max,
            max_errors,
            recovery_interval: config.forwarder_recovery_interval,
            recovery_reset: config.forwarder_recovery_reset,
        }
    }

    /// The wait after `errors` consecutive errors, with jitter.
    pub(crate) fn duration(&self, errors: u32) -> Duration {
        if errors == 0 {
            return Duration::ZERO;
        }
        let t = self.base * 2f64.powi(i32::try_from(errors).unwrap_or(i32::MAX));
        let secs = if t > self.max {
            self.max
        } else {
            let low = t / self.factor;
            low + fastrand::f64() * (t - low)
        };
        Duration::from_secs_f64(secs)
    }

    fn increment(&self, errors: u32) -> u32 {
        errors.saturating_add(1).min(self.max_errors)
    }

    fn decrement(&self, errors: u32) -> u32 {
        if self.recovery_reset {
            0
        } else {
            errors.saturating_sub(self.recovery_interval)
        }
    }
}

/// One endpoint's breaker state.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreaker {
    errors: u32,
    until: Option<Instant>,
}

impl CircuitBreaker {
    /// Records a failed request; returns how long the endpoint is now blocked.
    pub(crate) fn failure(&mut self, now: Instant, policy: &Backoff) -> Duration {
        self.errors = policy.increment(self.errors);
        let wait = policy.duration(self.errors);
        self.until = Some(now + wait);
        wait
    }

    /// Records a request the intake answered (accepted or definitively refused).
    pub(crate) fn success(&mut self, now: Instant, policy: &Backoff) {
        self.errors = policy.decrement(self.errors);
        self.until = (self.errors > 0).then(|| now + policy.duration(self.errors));
    }

    /// When the endpoint may be tried again, if it is blocked at `now`.
    pub(crate) fn blocked_until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }

    /// Consecutive errors, as the breaker counts them.
    pub(crate) fn errors(&self) -> u32 {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff::new(&ForwarderConfig::default())
    }

    #[test]
    fn waits_grow_exponentially_within_jitter_bounds_and_cap_at_max() {
        let p = policy();
        assert_eq!(p.max_errors, 6);
        assert_eq!(p.duration(0), Duration::ZERO);
        for _ in 0..200 {
            for (n, low, high) in [(1, 2.0, 4.0), (2, 4.0, 8.0), (3, 8.0, 16.0), (5, 32.0, 64.0)] {
                let d = p.duration(n).as_secs_f64();
                assert!((low..=high).contains(&d), "n={n}: {d}");
            }
            assert_eq!(p.duration(6), Duration::from_secs(64));
        }
    }

    #[test]
    fn breaker_blocks_after_errors_and_recovers_by_the_recovery_interval() {
        let p = policy();
        let now = Instant::now();
        let mut b = CircuitBreaker::default();
        assert_eq!(b.blocked_until(now), None);
        for _ in 0..10 {
            b.failure(now, &p);
        }
        assert_eq!(b.errors(), 6, "capped at max_errors");
        assert!(b.blocked_until(now).is_some());
        b.success(now, &p);
        assert_eq!(b.errors(), 4);
        assert!(b.blocked_until(now).is_some(), "recovering endpoints still back off");
        b.success(now, &p);
        b.success(now, &p);
        assert_eq!(b.errors(), 0);
        assert_eq!(b.blocked_until(now), None);
        let reset = Backoff::new(&ForwarderConfig {
            forwarder_recovery_reset: true,
            ..Default::default()
        });
        b.failure(now, &reset);
        b.failure(now, &reset);
        b.success(now, &reset);
        assert_eq!(b.errors(), 0);
    }
}
