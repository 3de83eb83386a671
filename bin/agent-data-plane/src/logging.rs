//! Logging: `tracing` to standard error, as text or one JSON object per line
//! (`log_format_json`), at `log_level`, changeable at run time through the
//! privileged API (a `tracing-subscriber` reload layer swaps the filter).
//! The Agent's `log_level` is one level for every target, so the filter is a
//! plain `LevelFilter`: `EnvFilter` would add a regex engine (~0.3 MiB on armv7)
//! for directives no configuration key can express.

use std::sync::{Arc, Mutex};

use adp_config::ConfigValue;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload, Registry};

/// `log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off but handled.
    Warn,
    /// Something failed.
    Error,
    /// No logs.
    Off,
}

impl LogLevel {
    /// The accepted spellings (the Agent's names included).
    pub const CHOICES: &'static [(&'static str, LogLevel)] = &[
        ("trace", LogLevel::Trace),
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("warning", LogLevel::Warn),
        ("error", LogLevel::Error),
        ("critical", LogLevel::Error),
        ("off", LogLevel::Off),
    ];

    /// The lower-case name, as a `tracing` filter directive understands it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Off => "off",
        }
    }

    /// Parses a level name (case-insensitive; `warning`/`critical` accepted).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::CHOICES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ConfigValue for LogLevel {
    fn show(&self) -> serde_json::Value {
        serde_json::Value::from(self.as_str())
    }
}

/// Changes and reports the log level of the running process. Cloning shares it.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<LevelFilter, Registry>,
    current: Arc<Mutex<LogLevel>>,
}

impl LogControl {
    /// The level in force.
    pub fn level(&self) -> LogLevel {
        *self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the level for every target.
    pub fn set_level(&self, level: LogLevel) -> anyhow::Result<()> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.handle
            .reload(level_filter(level))
            .map_err(|e| anyhow::anyhow!("could not change the log level to {level}: {e}"))?;
        *current = level;
        Ok(())
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Off => LevelFilter::OFF,
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(level: LogLevel, json: bool) -> anyhow::Result<LogControl> {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let text = (!json).then(|| fmt::layer().with_writer(std::io::stderr).with_target(false));
    let json = json.then(|| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .map_err(|e| anyhow::anyhow!("could not install the logger: {e}"))?;
    Ok(LogControl {
        handle,
        current: Arc::new(Mutex::new(level)),
    })
}
