//! Datadog Agent-compatible configuration for the Agent Data Plane: the keys of
//! `datadog.yaml` that the DogStatsD pipeline uses, overridden by `DD_*`
//! environment variables, with the Agent's defaults, typed and validated.
//!
//! # Loading
//!
//! [`Config::load`] reads the YAML file (a missing *default* file means
//! "environment only"; a missing file given explicitly is an error), then looks up
//! every known key in the environment first and the file second
//! (`data_plane.enabled` ↔ `DD_DATA_PLANE_ENABLED`; see [`env_var_name`]). Keys the data plane does not use — the rest of a full
//! Agent configuration — are ignored quietly, so the binary can share the Agent's
//! `datadog.yaml`.
//!
//! Every invalid value is reported at once, each naming the key, where the value
//! came from, the value and what is expected:
//!
//! ```text
//! invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): "abc": expected an integer 0-65535
//! ```
//!
//! # Secrets
//!
//! `ENC[handle]` values, in the file and in `DD_*` variables, are resolved
//! through `secret_backend_command` before any key is read (see
//! [`secrets`] for the Agent's protocol and checks); resolved
//! values are redacted wherever the configuration is shown, and the log lines
//! of the resolution wait in [`Config::secrets`] for the binary to emit.
//!
//! # Display
//!
//! [`Config::to_redacted_json`] renders the effective configuration keyed by the
//! Agent's key names with secrets replaced by `********` (see [`redact_json`]).
//!
//! # Missing
//!
//! - `unix://` API listen addresses are rejected.
//! - Remote-agent settings (`agent_ipc_endpoint`, config streaming) are not read:
//!   that mode is not implemented by the binary.
#![deny(missing_docs)]

mod redact;
pub mod secrets;
mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use redact::{is_secret_key, redact_json, redact_url, REDACTED};
pub use secrets::{ResolvedReport, SecretBackend, SecretError};
use source::Lookup;
pub use source::{env_var_name, format_duration, Environment, InvalidValue, Origin};

/// The Agent's default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/datadog-agent/datadog.yaml";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config PATH` names a file that does not exist.
    #[error("configuration file {} does not exist (given with --config); create it, or omit --config to read {DEFAULT_CONFIG_PATH} if present and the DD_* environment", path.display())]
    FileNotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// The file exists but could not be read; `source` says why.
    #[error("cannot read configuration file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML; `source` says where.
    #[error("cannot parse configuration file {} as YAML", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        source: serde_yaml::Error,
    },
    /// The file's top level is not a mapping of keys.
    #[error("configuration file {} must be a YAML mapping of keys (like datadog.yaml), not {found}", path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: &'static str,
    },
    /// One or more keys have invalid values.
    #[error("{}", InvalidValues(.0))]
    Invalid(Vec<InvalidValue>),
    /// An `ENC[...]` value could not be resolved (the Agent's wording).
    #[error("unable to decrypt secret from datadog.yaml: {0}")]
    Secrets(SecretError),
}

struct InvalidValues<'a>(&'a [InvalidValue]);

impl fmt::Display for InvalidValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} invalid configuration values:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Which configuration file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path.
    pub path: PathBuf,
    /// Given explicitly (`--config`): then a missing file is an error.
    pub explicit: bool,
}

impl ConfigFile {
    /// The Agent's default file, [`DEFAULT_CONFIG_PATH`]; optional.
    pub fn default_path() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_CONFIG_PATH),
            explicit: false,
        }
    }

    /// A file given by the user; it must exist.
    pub fn explicit(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            explicit: true,
        }
    }
}

/// The effective configuration. Field names are Rust names; the serialized form
/// (the `config` command, `/config`) uses the Agent's key names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// The file that was read, if any (not a key).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// What `ENC[...]` resolution did, its log lines to emit, and the values
    /// to redact (not a key; its `Debug` shows no value).
    #[serde(skip)]
    pub secrets: ResolvedReport,
    /// `api_key`: the Datadog API key sent with every payload. Required to run the
    /// pipeline (checked by the binary, so that `config` works without it). Defaults to empty.
    pub api_key: String,
    /// `site`: the Datadog site; the intake is `https://app.<site>` unless `dd_url`
    /// is set. Defaults to `datadoghq.com`.
    pub site: String,
    /// `dd_url` (also `DD_URL`): the intake base URL, overriding `site`. Defaults to unset.
    pub dd_url: Option<String>,
    /// `additional_endpoints`: more intakes, each URL with its API keys; every
    /// payload is sent to each. Defaults to none.
    pub additional_endpoints: BTreeMap<String, Vec<String>>,
    /// `hostname`: the host name attached to every series. Empty means "ask the
    /// operating system". Defaults to empty.
    pub hostname: String,
    /// `log_level`: `trace`, `debug`, `info`, `warn`, `error` (`critical` is read as
    /// `error`) or `off`. Can be changed at run time through the privileged API.
    /// Defaults to `info`.
    pub log_level: LogLevel,
    /// `log_format_json`: log one JSON object per line instead of text. Defaults to false.
    pub log_format_json: bool,
    /// `auth_token_file_path`: the bearer token for the privileged API; created
    /// (mode 0600, 64 random hex digits) if absent. Defaults to `auth_token` beside
    /// the configuration file (`/etc/datadog-agent/auth_token`).
    pub auth_token_file_path: PathBuf,
    /// `ipc_cert_file_path`: PEM certificate and private key (one file, like the
    /// Agent's `ipc_cert.pem`) for the privileged API's TLS. If the file does not
    /// exist a self-signed certificate is generated at start. Defaults to
    /// `ipc_cert.pem` beside `auth_token_file_path`.
    pub ipc_cert_file_path: PathBuf,
    /// `run_path`: where runtime state lives. Defaults to `/opt/datadog-agent/run`.
    pub run_path: PathBuf,
    /// `data_plane.*`.
    pub data_plane: DataPlaneConfig,
    /// `dogstatsd_*` and `bind_host`.
    #[serde(flatten)]
    pub dogstatsd: DogStatsDConfig,
    /// `aggregate_*`, `counter_expiry_seconds`, `histogram_*`.
    #[serde(flatten)]
    pub aggregate: AggregateConfig,
    /// `forwarder_*`.
    #[serde(flatten)]
    pub forwarder: ForwarderConfig,
    /// `serializer_*`.
    #[serde(flatten)]
    pub serializer: SerializerConfig,
    /// `proxy.*`.
    pub proxy: ProxyConfig,
    /// `memory_limit`, `memory_slop_factor`, `memory_mode`.
    #[serde(flatten)]
    pub memory: MemoryConfig,
}

/// `data_plane.*`: what the Agent Data Plane runs and where its APIs listen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataPlaneConfig {
    /// `data_plane.enabled`: run at all. When false (and not standalone) the binary
    /// logs "Agent Data Plane is not enabled. Exiting." and exits 0. Defaults to false.
    pub enabled: bool,
    /// `data_plane.standalone_mode`: local configuration is the authority and no core
    /// Agent is contacted. Implies `enabled`. Defaults to false.
    pub standalone_mode: bool,
    /// `data_plane.remote_agent_enabled`: register with the core Agent over gRPC
    /// (not implemented; the binary refuses to start in that mode). Defaults to true.
    pub remote_agent_enabled: bool,
    /// `data_plane.use_new_config_stream_endpoint`: stream configuration from the
    /// core Agent (remote-agent mode only). Defaults to true.
    pub use_new_config_stream_endpoint: bool,
    /// `data_plane.dogstatsd.enabled`: run the DogStatsD pipeline. Defaults to true.
    pub dogstatsd: DataPlaneDogStatsD,
    /// `data_plane.api_listen_address`: the unprivileged HTTP API (health,
    /// telemetry). Port 0 picks a free port. Defaults to `tcp://0.0.0.0:5100`.
    #[serde(serialize_with = "ser_tcp")]
    pub api_listen_address: SocketAddr,
    /// `data_plane.secure_api_listen_address`: the privileged HTTPS API (config,
    /// log level, DogStatsD statistics). Port 0 picks a free port. Defaults to
    /// `tcp://0.0.0.0:5101`.
    #[serde(serialize_with = "ser_tcp")]
    pub secure_api_listen_address: SocketAddr,
    /// `data_plane.shutdown_drain_timeout` (also read from the Agent's
    /// `forwarder_stop_timeout`): on SIGINT/SIGTERM, after the listeners stop and
    /// every open window is flushed, how long the forwarder may keep sending what
    /// is queued before the rest is stored on disk (if enabled) or dropped and
    /// counted. 0 drops at once. Defaults to 10s.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_drain_timeout: Duration,
}

/// `data_plane.dogstatsd.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataPlaneDogStatsD {
    /// `data_plane.dogstatsd.enabled`: run the DogStatsD pipeline. Defaults to true.
    pub enabled: bool,
}

/// The DogStatsD source's keys (`dogstatsd_*`, `bind_host`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DogStatsDConfig {
    /// `dogstatsd_port`: UDP port; 0 disables the UDP listener. Defaults to 8125.
    #[serde(rename = "dogstatsd_port")]
    pub port: u16,
    /// `bind_host`: the UDP listener's address when non-local traffic is off
    /// (`localhost` means 127.0.0.1). Defaults to 127.0.0.1.
    pub bind_host: IpAddr,
    /// `dogstatsd_non_local_traffic`: listen on every interface (0.0.0.0) instead
    /// of `bind_host`. Defaults to false.
    #[serde(rename = "dogstatsd_non_local_traffic")]
    pub non_local_traffic: bool,
    /// `dogstatsd_socket`: a Unix datagram socket path; unset or empty disables it.
    /// Defaults to unset.
    #[serde(rename = "dogstatsd_socket")]
    pub socket: Option<PathBuf>,
    /// `dogstatsd_stream_socket`: a Unix stream socket path; unset or empty
    /// disables it. Defaults to unset.
    #[serde(rename = "dogstatsd_stream_socket")]
    pub stream_socket: Option<PathBuf>,
    /// `dogstatsd_buffer_size`: the receive buffer per datagram, in bytes; larger
    /// datagrams are truncated and dropped. 1 to 64 MiB. Defaults to 8192.
    #[serde(rename = "dogstatsd_buffer_size")]
    pub buffer_size: u64,
    /// `dogstatsd_so_rcvbuf`: the socket receive buffer (`SO_RCVBUF`) in bytes; 0
    /// keeps the OS default. Defaults to 0.
    #[serde(rename = "dogstatsd_so_rcvbuf")]
    pub so_rcvbuf: u64,
    /// `dogstatsd_string_interner_size`: the byte budget of the interner holding
    /// metric names and tags (units such as `4MiB` accepted), as the Agent Data
    /// Plane reads it; when full, new contexts are dropped and counted. Defaults
    /// to 2097152 (2 MiB, the Agent's 4096 entries × 512 B).
    #[serde(rename = "dogstatsd_string_interner_size")]
    pub string_interner_size: u64,
    /// `dogstatsd_queue_size`: decoded batches that may wait between the
    /// listeners and the aggregator before the listeners slow down (back
    /// pressure). Defaults to 1024.
    #[serde(rename = "dogstatsd_queue_size")]
    pub queue_size: u64,
    /// `dogstatsd_minimum_sample_rate`: sample rates below this are clamped to it.
    /// In (0, 1]. Defaults to 0.000000003845.
    #[serde(rename = "dogstatsd_minimum_sample_rate")]
    pub minimum_sample_rate: f64,
    /// `dogstatsd_context_expiry_seconds`: an unused context leaves the
    /// resolver's cache after this long. Defaults to 20.
    #[serde(rename = "dogstatsd_context_expiry_seconds")]
    pub context_expiry_seconds: u64,
    /// `dogstatsd_permissive_decoding`: accept metric names with any printable
    /// ASCII but `:` and `|`. Defaults to true.
    #[serde(rename = "dogstatsd_permissive_decoding")]
    pub permissive_decoding: bool,
}

impl DogStatsDConfig {
    /// The UDP listener's address, or `None` when `dogstatsd_port` is 0.
    pub fn udp_listen_address(&self) -> Option<SocketAddr> {
        (self.port != 0).then(|| {
            let ip = if self.non_local_traffic {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                self.bind_host
            };
            SocketAddr::new(ip, self.port)
        })
    }
}

/// The aggregator's keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AggregateConfig {
    /// `aggregate_window_duration_seconds`: the width of an aggregation window
    /// (bucket); also the `interval` of count series. Defaults to 10.
    #[serde(rename = "aggregate_window_duration_seconds")]
    pub window_duration_seconds: u64,
    /// `aggregate_flush_interval`: how often closed windows are flushed to the
    /// intake. Defaults to 15s.
    #[serde(rename = "aggregate_flush_interval", serialize_with = "ser_duration")]
    pub flush_interval: Duration,
    /// `aggregate_context_limit`: distinct contexts held at once; samples for new
    /// contexts beyond it are dropped and counted. Defaults to 1000000.
    #[serde(rename = "aggregate_context_limit")]
    pub context_limit: u64,
    /// `counter_expiry_seconds` (alias `dogstatsd_expiry_seconds`): how long an idle
    /// counter keeps reporting 0. Defaults to 300.
    pub counter_expiry_seconds: u64,
    /// `histogram_aggregates`: series sent per histogram/timer: any of max, min,
    /// median, avg, sum, count. Defaults to max, median, avg, count.
    pub histogram_aggregates: Vec<String>,
    /// `histogram_percentiles`: percentile series per histogram/timer (0.95 →
    /// `<name>.95percentile`). Defaults to 0.95.
    pub histogram_percentiles: Vec<f64>,
}

/// The forwarder's keys (`forwarder_*`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForwarderConfig {
    /// `forwarder_timeout`: limit for one request, connection and TLS handshake
    /// included; a timed-out request is retried. Defaults to 20s.
    #[serde(rename = "forwarder_timeout", serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// `forwarder_retry_queue_payloads_max_size`: bytes of payloads kept in memory
    /// for retry; the oldest are evicted (and counted) beyond it. Defaults to
    /// 15728640 (15 MiB).
    #[serde(rename = "forwarder_retry_queue_payloads_max_size")]
    pub retry_queue_payloads_max_size: u64,
    /// `forwarder_backoff_base`: the first retry waits between this and twice
    /// this. Defaults to 2s.
    #[serde(rename = "forwarder_backoff_base", serialize_with = "ser_duration")]
    pub backoff_base: Duration,
    /// `forwarder_backoff_factor`: the Agent's minimum backoff factor (jitter
    /// range divisor); at least 2. Defaults to 2.
    #[serde(rename = "forwarder_backoff_factor")]
    pub backoff_factor: f64,
    /// `forwarder_backoff_max`: the longest wait between retries. Defaults to 64s.
    #[serde(rename = "forwarder_backoff_max", serialize_with = "ser_duration")]
    pub backoff_max: Duration,
    /// `forwarder_recovery_interval`: error steps forgiven per success. Defaults to 2.
    #[serde(rename = "forwarder_recovery_interval")]
    pub recovery_interval: u32,
    /// `forwarder_recovery_reset`: one success forgives every error. Defaults to false.
    #[serde(rename = "forwarder_recovery_reset")]
    pub recovery_reset: bool,
    /// `forwarder_high_prio_buffer_size`: payloads waiting between the pipeline
    /// and the forwarder before the pipeline waits. Defaults to 100.
    #[serde(rename = "forwarder_high_prio_buffer_size")]
    pub high_prio_buffer_size: u32,
    /// `forwarder_storage_max_size_in_bytes`: on-disk retry storage; 0 disables it. Defaults to 0.
    #[serde(rename = "forwarder_storage_max_size_in_bytes")]
    pub storage_max_size_in_bytes: u64,
    /// `forwarder_storage_path`: where on-disk retries are kept. Defaults to
    /// `<run_path>/transactions_to_retry`.
    #[serde(rename = "forwarder_storage_path")]
    pub storage_path: PathBuf,
    /// `forwarder_outdated_file_in_days`: stored retries older than this are
    /// deleted at start instead of replayed. Defaults to 10.
    #[serde(rename = "forwarder_outdated_file_in_days")]
    pub outdated_file_in_days: u32,
}

/// The payload encoder's keys (`serializer_*`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SerializerConfig {
    /// `serializer_compressor_kind`: payload compression: `zstd`, `zlib`
    /// (`deflate`) or `none`. Defaults to `zstd`.
    #[serde(rename = "serializer_compressor_kind")]
    pub compressor_kind: Compression,
    /// `serializer_zstd_compressor_level`: 1 (fast) to 22 (small). Defaults to 1.
    #[serde(rename = "serializer_zstd_compressor_level")]
    pub zstd_compressor_level: i32,
    /// `serializer_max_series_payload_size`: compressed bytes per series payload.
    /// Defaults to 512000.
    #[serde(rename = "serializer_max_series_payload_size")]
    pub max_series_payload_size: u64,
    /// `serializer_max_series_uncompressed_payload_size`: uncompressed bytes per
    /// series payload. Defaults to 5242880.
    #[serde(rename = "serializer_max_series_uncompressed_payload_size")]
    pub max_series_uncompressed_payload_size: u64,
    /// `serializer_max_series_points_per_payload`: points per series payload.
    /// Defaults to 10000.
    #[serde(rename = "serializer_max_series_points_per_payload")]
    pub max_series_points_per_payload: u64,
    /// `serializer_max_payload_size`: compressed bytes per sketch, check or event
    /// payload. Defaults to 2621440.
    #[serde(rename = "serializer_max_payload_size")]
    pub max_payload_size: u64,
    /// `serializer_max_uncompressed_payload_size`: uncompressed bytes per sketch,
    /// check or event payload. Defaults to 4194304.
    #[serde(rename = "serializer_max_uncompressed_payload_size")]
    pub max_uncompressed_payload_size: u64,
}

/// `proxy.*`: an HTTP(S) proxy for the intake.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyConfig {
    /// `proxy.http` (also `HTTP_PROXY`): proxy for `http://` intakes. Defaults to unset.
    pub http: Option<String>,
    /// `proxy.https` (also `HTTPS_PROXY`): proxy for `https://` intakes. Defaults to unset.
    pub https: Option<String>,
    /// `proxy.no_proxy` (also `NO_PROXY`): hosts reached directly. Defaults to none.
    pub no_proxy: Vec<String>,
}

/// The global memory limiter's keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryConfig {
    /// `memory_limit`: the process's memory budget (RSS) in bytes (units such as
    /// `256MiB` accepted); 0 turns the limiter off. Defaults to 0.
    pub memory_limit: u64,
    /// `memory_slop_factor`: the fraction of `memory_limit` held back for memory
    /// that no component accounts for (allocator overhead, stacks, code). The
    /// components' firm bounds must fit in the rest. 0 to 0.9. Defaults to 0.25.
    pub memory_slop_factor: f64,
    /// `memory_mode`: `disabled` (no checks, no limiter), `permissive` (bounds
    /// logged, limiter applies back pressure near the limit) or `strict` (as
    /// permissive, and refuse to start when the firm bounds exceed the limit).
    /// Defaults to `permissive`.
    pub memory_mode: MemoryMode,
}

impl MemoryConfig {
    /// The bytes left for components once the slop is held back (`None` when no limit is set).
    pub fn effective_limit(&self) -> Option<u64> {
        if self.memory_limit == 0 || self.memory_mode == MemoryMode::Disabled {
            return None;
        }
        // Integer math in per-mille so that 32-bit targets and huge limits are exact enough.
        let keep_per_mille = 1000 - (self.memory_slop_factor * 1000.0).round().clamp(0.0, 1000.0) as u64;
        Some(self.memory_limit / 1000 * keep_per_mille + self.memory_limit % 1000 * keep_per_mille / 1000)
    }
}

/// `log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `serializer_compressor_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (`Content-Encoding: zstd`).
    Zstd,
    /// zlib/deflate (`Content-Encoding: deflate`).
    Zlib,
    /// Uncompressed.
    None,
}

/// `memory_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryMode {
    /// No bounds checks and no limiter.
    Disabled,
    /// Bounds logged; the limiter applies back pressure near the limit.
    Permissive,
    /// As permissive, and starting fails when the firm bounds exceed the limit.
    Strict,
}

fn ser_tcp<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("tcp://{addr}"))
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

const NONE: Lookup<'static> = Lookup {
    aliases: &[],
    extra_env: &[],
};

/// Narrows a value already range-checked by its parser (the fallback is unreachable).
fn narrow<T: TryFrom<u64> + Default>(v: u64) -> T {
    T::try_from(v).unwrap_or_default()
}

fn positive_size(raw: source::Raw<'_>) -> Result<u64, String> {
    source::byte_size(raw).and_then(|n| {
        if n == 0 {
            Err("a size in bytes > 0".to_owned())
        } else {
            Ok(n)
        }
    })
}

impl Config {
    /// Loads the configuration from `file` (see [`ConfigFile`]) and `env`.
    pub fn load(file: &ConfigFile, env: &Environment) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(&file.path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.explicit => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::FileNotFound {
                    path: file.path.clone(),
                })
            }
            Err(source) => {
                return Err(ConfigError::ReadFile {
                    path: file.path.clone(),
                    source,
                })
            }
        };
        let config_dir = file
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match text {
            Some(text) => Self::from_yaml(&text, &file.path, config_dir, env),
            None => Self::build(None, config_dir, env),
        }
    }

    /// Loads from YAML text (as if read from `path`) and `env`.
    pub fn from_yaml(text: &str, path: &Path, config_dir: &Path, env: &Environment) -> Result<Self, ConfigError> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source,
        })?;
        let map = match doc {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            other => {
                let found = match other {
                    serde_yaml::Value::Sequence(_) => "a list",
                    serde_yaml::Value::String(_) => "a string",
                    _ => "a scalar",
                };
                return Err(ConfigError::NotAMapping {
                    path: path.to_owned(),
                    found,
                });
            }
        };
        let mut config = Self::build(Some((path, &map)), config_dir, env)?;
        config.source_file = Some(path.to_owned());
        Ok(config)
    }

    /// Environment only (no file), with `config_dir` as the directory default
    /// paths are relative to.
    pub fn from_env(config_dir: &Path, env: &Environment) -> Result<Self, ConfigError> {
        Self::build(None, config_dir, env)
    }

    fn build(
        file: Option<(&Path, &serde_yaml::Mapping)>,
        config_dir: &Path,
        env: &Environment,
    ) -> Result<Self, ConfigError> {
        use source::*;
        let resolved = secrets::resolve_sources(file, env).map_err(|e| match e {
            secrets::ResolveError::Invalid(errors) => ConfigError::Invalid(errors),
            secrets::ResolveError::Secret(e) => ConfigError::Secrets(e),
        })?;
        let (file, env) = match &resolved.replaced {
            Some((mapping, env)) => (file.zip(mapping.as_ref()).map(|((p, _), m)| (p, m)), env),
            None => (file, env),
        };
        let mut r = Reader::new(file, env);

        let api_key = r.get("api_key", NONE, String::new(), |raw| {
            string(raw).map(|s| s.trim().to_owned())
        });
        let site = r.get("site", NONE, "datadoghq.com".to_owned(), |raw| match string(raw) {
            Ok(s) if !s.trim().is_empty() && !s.contains('/') => Ok(s.trim().to_owned()),
            _ => Err("a Datadog site domain such as datadoghq.com or datadoghq.eu".to_owned()),
        });
        let dd_url = r.get(
            "dd_url",
            Lookup {
                aliases: &[],
                extra_env: &["DD_URL"],
            },
            None,
            |raw| match optional_string(raw)? {
                None => Ok(None),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Ok(Some(u.trim().trim_end_matches('/').to_owned()))
                }
                Some(_) => Err("an http:// or https:// URL".to_owned()),
            },
        );
        let additional_endpoints = r.get("additional_endpoints", NONE, BTreeMap::new(), endpoint_map);
        let hostname = r.get("hostname", NONE, String::new(), |raw| {
            string(raw).map(|s| s.trim().to_owned())
        });
        let log_level = r.get("log_level", NONE, LogLevel::Info, choice(LogLevel::CHOICES));
        let log_format_json = r.get("log_format_json", NONE, false, boolean);
        let auth_token_file_path = r.get("auth_token_file_path", NONE, config_dir.join("auth_token"), path);
        let ipc_default = auth_token_file_path.parent().unwrap_or(config_dir).join("ipc_cert.pem");
        let ipc_cert_file_path = r.get("ipc_cert_file_path", NONE, ipc_default, path);
        let run_path = r.get("run_path", NONE, PathBuf::from("/opt/datadog-agent/run"), path);

        let data_plane = DataPlaneConfig {
            enabled: r.get("data_plane.enabled", NONE, false, boolean),
            standalone_mode: r.get("data_plane.standalone_mode", NONE, false, boolean),
            remote_agent_enabled: r.get("data_plane.remote_agent_enabled", NONE, true, boolean),
            use_new_config_stream_endpoint: r.get("data_plane.use_new_config_stream_endpoint", NONE, true, boolean),
            dogstatsd: DataPlaneDogStatsD {
                enabled: r.get("data_plane.dogstatsd.enabled", NONE, true, boolean),
            },
            api_listen_address: r.get(
                "data_plane.api_listen_address",
                NONE,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5100),
                tcp_listen_address,
            ),
            secure_api_listen_address: r.get(
                "data_plane.secure_api_listen_address",
                NONE,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5101),
                tcp_listen_address,
            ),
            shutdown_drain_timeout: r.get(
                "data_plane.shutdown_drain_timeout",
                Lookup {
                    aliases: &["forwarder_stop_timeout"],
                    extra_env: &[],
                },
                Duration::from_secs(10),
                duration(Duration::ZERO),
            ),
        };

        let dogstatsd = DogStatsDConfig {
            port: r
                .get("dogstatsd_port", NONE, 8125, integer(0, 65535))
                .try_into()
                .unwrap_or(8125),
            bind_host: r.get("bind_host", NONE, IpAddr::V4(Ipv4Addr::LOCALHOST), source::bind_host),
            non_local_traffic: r.get("dogstatsd_non_local_traffic", NONE, false, boolean),
            socket: r.get("dogstatsd_socket", NONE, None, optional_path),
            stream_socket: r.get("dogstatsd_stream_socket", NONE, None, optional_path),
            buffer_size: r.get("dogstatsd_buffer_size", NONE, 8192, integer(1, 64 << 20)),
            so_rcvbuf: r.get("dogstatsd_so_rcvbuf", NONE, 0, integer(0, i32::MAX as u64)),
            string_interner_size: r.get("dogstatsd_string_interner_size", NONE, 2 << 20, positive_size),
            queue_size: r.get("dogstatsd_queue_size", NONE, 1024, integer(1, 1 << 20)),
            minimum_sample_rate: r.get(
                "dogstatsd_minimum_sample_rate",
                NONE,
                0.000000003845,
                float("a sample rate in (0, 1]", |v| v > 0.0 && v <= 1.0),
            ),
            context_expiry_seconds: r.get("dogstatsd_context_expiry_seconds", NONE, 20, integer(0, 86_400)),
            permissive_decoding: r.get("dogstatsd_permissive_decoding", NONE, true, boolean),
        };

        const HISTOGRAM_AGGREGATES: &[&str] = &["max", "min", "median", "avg", "sum", "count"];
        let aggregate = AggregateConfig {
            window_duration_seconds: r.get("aggregate_window_duration_seconds", NONE, 10, integer(1, 3600)),
            flush_interval: r.get(
                "aggregate_flush_interval",
                NONE,
                Duration::from_secs(15),
                duration(Duration::from_millis(10)),
            ),
            context_limit: r.get(
                "aggregate_context_limit",
                NONE,
                1_000_000,
                integer(1, u64::from(u32::MAX)),
            ),
            counter_expiry_seconds: r.get(
                "counter_expiry_seconds",
                Lookup {
                    aliases: &["dogstatsd_expiry_seconds"],
                    extra_env: &[],
                },
                300,
                integer(0, 86_400),
            ),
            histogram_aggregates: r.get(
                "histogram_aggregates",
                NONE,
                ["max", "median", "avg", "count"].map(str::to_owned).to_vec(),
                |raw| {
                    let items = list(raw)?;
                    let mut out: Vec<String> = Vec::new();
                    for item in items {
                        let item = item.to_ascii_lowercase();
                        if !HISTOGRAM_AGGREGATES.contains(&item.as_str()) {
                            return Err(format!("a list of: {}", HISTOGRAM_AGGREGATES.join(", ")));
                        }
                        if !out.contains(&item) {
                            out.push(item);
                        }
                    }
                    Ok(out)
                },
            ),
            histogram_percentiles: r.get("histogram_percentiles", NONE, vec![0.95], percentiles),
        };

        let storage_default = run_path.join("transactions_to_retry");
        let forwarder = ForwarderConfig {
            timeout: r.get(
                "forwarder_timeout",
                NONE,
                Duration::from_secs(20),
                duration(Duration::from_millis(1)),
            ),
            retry_queue_payloads_max_size: r.get(
                "forwarder_retry_queue_payloads_max_size",
                NONE,
                15 * 1024 * 1024,
                |raw| {
                    byte_size(raw).and_then(|n| {
                        if n == 0 {
                            Err("a size in bytes > 0".to_owned())
                        } else {
                            Ok(n)
                        }
                    })
                },
            ),
            backoff_base: r.get(
                "forwarder_backoff_base",
                NONE,
                Duration::from_secs(2),
                duration(Duration::from_millis(1)),
            ),
            backoff_factor: r.get(
                "forwarder_backoff_factor",
                NONE,
                2.0,
                float("a number >= 2", |v| v >= 2.0),
            ),
            backoff_max: r.get(
                "forwarder_backoff_max",
                NONE,
                Duration::from_secs(64),
                duration(Duration::from_millis(1)),
            ),
            recovery_interval: narrow(r.get("forwarder_recovery_interval", NONE, 2, integer(1, 1000))),
            recovery_reset: r.get("forwarder_recovery_reset", NONE, false, boolean),
            high_prio_buffer_size: narrow(r.get("forwarder_high_prio_buffer_size", NONE, 100, integer(1, 1 << 20))),
            storage_max_size_in_bytes: r.get("forwarder_storage_max_size_in_bytes", NONE, 0, byte_size),
            storage_path: r.get("forwarder_storage_path", NONE, storage_default, path),
            outdated_file_in_days: narrow(r.get("forwarder_outdated_file_in_days", NONE, 10, integer(1, 3650))),
        };

        let serializer = SerializerConfig {
            compressor_kind: r.get(
                "serializer_compressor_kind",
                NONE,
                Compression::Zstd,
                choice(&[
                    ("zstd", Compression::Zstd),
                    ("zlib", Compression::Zlib),
                    ("deflate", Compression::Zlib),
                    ("none", Compression::None),
                ]),
            ),
            zstd_compressor_level: narrow(r.get("serializer_zstd_compressor_level", NONE, 1, integer(1, 22))),
            max_series_payload_size: r.get("serializer_max_series_payload_size", NONE, 512_000, positive_size),
            max_series_uncompressed_payload_size: r.get(
                "serializer_max_series_uncompressed_payload_size",
                NONE,
                5_242_880,
                positive_size,
            ),
            max_series_points_per_payload: r.get(
                "serializer_max_series_points_per_payload",
                NONE,
                10_000,
                integer(1, u64::from(u32::MAX)),
            ),
            max_payload_size: r.get("serializer_max_payload_size", NONE, 2_621_440, positive_size),
            max_uncompressed_payload_size: r.get(
                "serializer_max_uncompressed_payload_size",
                NONE,
                4_194_304,
                positive_size,
            ),
        };

        let proxy = ProxyConfig {
            http: r.get(
                "proxy.http",
                Lookup {
                    aliases: &[],
                    extra_env: &["HTTP_PROXY"],
                },
                None,
                optional_string,
            ),
            https: r.get(
                "proxy.https",
                Lookup {
                    aliases: &[],
                    extra_env: &["HTTPS_PROXY"],
                },
                None,
                optional_string,
            ),
            no_proxy: r.get(
                "proxy.no_proxy",
                Lookup {
                    aliases: &[],
                    extra_env: &["NO_PROXY"],
                },
                Vec::new(),
                |raw| {
                    // NO_PROXY is comma-separated by convention; the Agent's list is space-separated.
                    list(raw).map(|items| {
                        items
                            .iter()
                            .flat_map(|i| i.split(','))
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                },
            ),
        };

        let memory = MemoryConfig {
            memory_limit: r.get("memory_limit", NONE, 0, byte_size),
            memory_slop_factor: r.get(
                "memory_slop_factor",
                NONE,
                0.25,
                float("a fraction between 0 and 0.9", |v| (0.0..=0.9).contains(&v)),
            ),
            memory_mode: r.get(
                "memory_mode",
                NONE,
                MemoryMode::Permissive,
                choice(&[
                    ("disabled", MemoryMode::Disabled),
                    ("permissive", MemoryMode::Permissive),
                    ("strict", MemoryMode::Strict),
                ]),
            ),
        };

        // Checks across keys, reported like any other invalid value.
        if forwarder.backoff_max < forwarder.backoff_base {
            r.reject(
                "forwarder_backoff_max",
                NONE,
                format!(
                    "a duration >= forwarder_backoff_base ({})",
                    format_duration(forwarder.backoff_base)
                ),
            );
        }

        if !r.errors.is_empty() {
            // A value that came from a secret is not repeated in an error.
            for e in &mut r.errors {
                if let std::borrow::Cow::Owned(v) = resolved.report.redact(&e.value) {
                    e.value = v;
                }
            }
            return Err(ConfigError::Invalid(r.errors));
        }
        Ok(Self {
            source_file: None,
            secrets: resolved.report,
            api_key,
            site,
            dd_url,
            additional_endpoints,
            hostname,
            log_level,
            log_format_json,
            auth_token_file_path,
            ipc_cert_file_path,
            run_path,
            data_plane,
            dogstatsd,
            aggregate,
            forwarder,
            serializer,
            proxy,
            memory,
        })
    }

    /// The intake base URL: `dd_url` if set, else `https://app.<site>`.
    pub fn intake_url(&self) -> String {
        match &self.dd_url {
            Some(url) => url.clone(),
            None => format!("https://app.{}", self.site),
        }
    }

    /// The effective configuration keyed by the Agent's key names, secrets redacted.
    pub fn to_redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
        // Secrets first, so that a URL that is a secret as a whole is hidden whole.
        self.secrets.redact_json(&mut value);
        redact_json(&mut value);
        value
    }

    /// The same as YAML text, as the `config` command prints it.
    pub fn to_redacted_yaml(&self) -> String {
        serde_yaml::to_string(&self.to_redacted_json()).unwrap_or_else(|e| format!("# failed to render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
