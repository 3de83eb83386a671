//! Events and service checks as the DogStatsD decoder produces them. Neither
//! is aggregated: the encoder sends them as they came.

/// Event priority (`|p:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventPriority {
    /// `normal` (the default).
    #[default]
    Normal,
    /// `low`.
    Low,
}

impl EventPriority {
    /// The intake's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

/// Event alert type (`|t:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventAlertType {
    /// `info` (the default).
    #[default]
    Info,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `success`.
    Success,
}

impl EventAlertType {
    /// The intake's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Success => "success",
        }
    }
}

/// A decoded `_e{..}` event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Title (non-empty).
    pub title: String,
    /// Text (non-empty; `\\n` already turned into newlines).
    pub text: String,
    /// `|d:` unix seconds; `None` means "now" at encoding time.
    pub timestamp: Option<i64>,
    /// `|h:` hostname override.
    pub hostname: Option<String>,
    /// `|k:` aggregation key.
    pub aggregation_key: Option<String>,
    /// `|p:` priority.
    pub priority: EventPriority,
    /// `|s:` source type name.
    pub source_type_name: Option<String>,
    /// `|t:` alert type.
    pub alert_type: EventAlertType,
    /// `|#` tags, sorted and deduplicated.
    pub tags: Vec<String>,
}

/// Service check status (`0`..=`3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ServiceCheckStatus {
    /// 0
    Ok = 0,
    /// 1
    Warning = 1,
    /// 2
    Critical = 2,
    /// 3
    Unknown = 3,
}

/// A decoded `_sc|..` service check.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCheck {
    /// Check name.
    pub name: String,
    /// Status.
    pub status: ServiceCheckStatus,
    /// `|d:` unix seconds; `None` means "now" at encoding time.
    pub timestamp: Option<i64>,
    /// `|h:` hostname override.
    pub hostname: Option<String>,
    /// `|m:` message.
    pub message: Option<String>,
    /// `|#` tags, sorted and deduplicated.
    pub tags: Vec<String>,
}
