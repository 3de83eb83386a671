//! Fault injection: how the intake answers the next requests.
//!
//! A [`Behaviour`] is a fault (a status instead of 202, a delay, a slow
//! acknowledgement, a closed or reset connection, or a combination) plus how
//! long it lasts: for the next `n` intake requests, for a duration, or until
//! replaced. When it runs out the intake answers normally again, which is
//! exactly the shape of an outage test: "503 for the next 5 requests, then
//! recover".
//!
//! Faults apply to intake endpoints only, never to the `/_intake/` control
//! endpoints, so a test can always read what was received. A request
//! answered with a fault status is counted but its payload is not recorded
//! as received: the real intake did not accept it, so a retry must not be
//! double counted (it is kept, decoded, in [`Received::refused`](crate::Received::refused)).
//!
//! The two delays differ in what a client that gives up has delivered:
//! `delay_ms` waits *before* the payload is recorded, so a client timing out
//! (and closing the connection, which drops the handler) has delivered
//! nothing, and the request is logged with status 0; `ack_delay_ms` records
//! the payload first and only then waits to answer, like an intake that
//! committed the payload but whose answer is slow: a client timing out has
//! delivered it anyway, so its retry is a duplicate (the at-least-once edge).
//!
//! `api_key` is not a fault of the transport but of the account: with it set,
//! that key is the only valid one, as for a real organisation. `GET
//! /api/v1/validate` answers 403 for any other key (the intake's answer for an
//! invalid key, which the agent's key check reports), and so does every intake
//! endpoint, without recording the payload. It lasts as the faults do (`next`
//! counts intake requests only; key checks do not use it up).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How the intake answers intake requests. The JSON form (for `POST
/// /_intake/behaviour`) has the same field names, all optional:
/// `{"status": 503, "next": 3}`, `{"delay_ms": 2000}`, `{"ack_delay_ms":
/// 2000, "next": 1}`, `{"close": true, "for_ms": 500}`, `{"reset": true}`,
/// `{"api_key": "<the one valid key>"}`, `{}` (normal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Answer with this status instead of decoding and answering 202.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Wait this long before handling the request (before recording its
    /// payload, answering, closing or resetting). A client that gives up
    /// meanwhile delivered nothing; the request is logged with status 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// Decode and record the payload as accepted, then wait this long before
    /// answering 202 (a slow acknowledgement). A client that gives up
    /// meanwhile delivered the payload anyway.
    #[serde(skip_serializing_if = "is_zero")]
    pub ack_delay_ms: u64,
    /// Close the connection without answering (an orderly close: FIN).
    #[serde(skip_serializing_if = "is_false")]
    pub close: bool,
    /// Reset the connection without answering (TCP RST: `SO_LINGER` 0, then
    /// close), as a crashing server or a middlebox does.
    #[serde(skip_serializing_if = "is_false")]
    pub reset: bool,
    /// The only valid API key: key checks and intake requests with another
    /// one are answered 403 (payloads not recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Apply to the next this-many intake requests only, then answer normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// Apply for this long after being set, then answer normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl Behaviour {
    /// Decode every payload and answer 202.
    pub fn normal() -> Self {
        Self::default()
    }

    /// Answer with `status` (e.g. 503, 413, 403) without recording the payload.
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Wait `delay` before handling the request, then answer normally.
    pub fn delay(delay: Duration) -> Self {
        Self {
            delay_ms: millis(delay),
            ..Self::default()
        }
    }

    /// Record the payload, then wait `delay` before answering 202.
    pub fn slow_ack(delay: Duration) -> Self {
        Self {
            ack_delay_ms: millis(delay),
            ..Self::default()
        }
    }

    /// Close the connection without answering.
    pub fn close() -> Self {
        Self {
            close: true,
            ..Self::default()
        }
    }

    /// Reset the connection (TCP RST) without answering.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::default()
        }
    }

    /// Accept `key` only: any other API key is refused with 403.
    pub fn only_api_key(key: impl Into<String>) -> Self {
        Self {
            api_key: Some(key.into()),
            ..Self::default()
        }
    }

    /// Limits this behaviour to the next `n` intake requests.
    pub fn for_next(mut self, n: u64) -> Self {
        self.next = Some(n);
        self
    }

    /// Limits this behaviour to `d` from when it is set.
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.for_ms = Some(millis(d));
        self
    }

    /// Whether this behaviour changes anything.
    pub fn is_normal(&self) -> bool {
        self.status.is_none()
            && self.delay_ms == 0
            && self.ack_delay_ms == 0
            && !self.close
            && !self.reset
            && self.api_key.is_none()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What to do with one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    pub status: Option<u16>,
    pub delay: Duration,
    pub ack_delay: Duration,
    pub close: bool,
    pub reset: bool,
    pub api_key: Option<String>,
}

/// The behaviour in force and what is left of it.
#[derive(Debug)]
pub(crate) struct Active {
    behaviour: Behaviour,
    remaining: Option<u64>,
    until: Option<Instant>,
}

impl Active {
    pub(crate) fn new(behaviour: Behaviour) -> Self {
        let remaining = behaviour.next;
        let until = behaviour.for_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        Self {
            behaviour,
            remaining,
            until,
        }
    }

    /// The behaviour as set.
    pub(crate) fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// The only valid API key now, for a key check (which does not use up `next`).
    pub(crate) fn valid_api_key(&mut self) -> Option<String> {
        self.expire();
        self.behaviour.api_key.clone()
    }

    /// Restores normal behaviour once this one has run out; says whether it had.
    fn expire(&mut self) -> bool {
        let expired = self.remaining == Some(0) || self.until.is_some_and(|t| Instant::now() >= t);
        if expired {
            *self = Self::new(Behaviour::normal());
        }
        expired
    }

    /// The fault for the next intake request, consuming one of `next`.
    pub(crate) fn take(&mut self) -> Fault {
        if self.expire() || self.behaviour.is_normal() {
            return Fault::default();
        }
        if let Some(n) = self.remaining.as_mut() {
            *n -= 1;
        }
        Fault {
            status: self.behaviour.status,
            delay: Duration::from_millis(self.behaviour.delay_ms),
            ack_delay: Duration::from_millis(self.behaviour.ack_delay_ms),
            close: self.behaviour.close,
            reset: self.behaviour.reset,
            api_key: self.behaviour.api_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_fault_runs_out_then_requests_are_normal() {
        let mut a = Active::new(Behaviour::status(503).for_next(2));
        assert_eq!(a.take().status, Some(503));
        assert_eq!(a.take().status, Some(503));
        assert_eq!(a.take(), Fault::default());
        assert!(a.behaviour().is_normal());
    }

    #[test]
    fn a_key_check_reads_the_valid_key_without_using_up_the_count() {
        let mut a = Active::new(Behaviour::only_api_key("k1").for_next(1));
        assert_eq!(a.valid_api_key().as_deref(), Some("k1"));
        assert_eq!(a.valid_api_key().as_deref(), Some("k1"));
        assert_eq!(a.take().api_key.as_deref(), Some("k1"));
        assert_eq!(a.valid_api_key(), None, "used up by the intake request");
        assert_eq!(
            serde_json::to_string(&Behaviour::only_api_key("k")).unwrap(),
            r#"{"api_key":"k"}"#
        );
    }

    #[test]
    fn a_timed_fault_expires() {
        let mut a = Active::new(Behaviour::close().for_duration(Duration::from_millis(30)));
        assert!(a.take().close);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(a.take(), Fault::default());
    }

    #[test]
    fn behaviour_json_uses_the_field_names() {
        let b: Behaviour = serde_json::from_str(r#"{"status":413,"next":1,"delay_ms":5}"#).unwrap();
        assert_eq!(
            b,
            Behaviour {
                delay_ms: 5,
                ..Behaviour::status(413).for_next(1)
            }
        );
        assert_eq!(serde_json::to_string(&Behaviour::normal()).unwrap(), "{}");
        assert!(serde_json::from_str::<Behaviour>(r#"{"stauts":500}"#).is_err());
        let b: Behaviour = serde_json::from_str(r#"{"reset":true,"ack_delay_ms":7}"#).unwrap();
        assert_eq!(
            b,
            Behaviour {
                ack_delay_ms: 7,
                ..Behaviour::reset()
            }
        );
        assert_eq!(serde_json::to_string(&Behaviour::reset()).unwrap(), r#"{"reset":true}"#);
    }
}
