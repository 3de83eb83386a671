//! Logging: `tracing` to standard error, as text or one JSON object per line
//! (`log_format_json`), at `log_level`, changeable at run time through the
//! privileged API (a `tracing-subscriber` reload layer swaps the filter).
//! The Agent's `log_level` is one level for every target, so the filter is a
//! plain `LevelFilter`: `EnvFilter` would add a regex engine (~0.3 MiB on armv7)
//! for directives no configuration key can express.

use std::sync::{Arc, Mutex};

use adp_config::LogLevel;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload, Registry};

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
