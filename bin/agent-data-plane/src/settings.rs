//! Every setting of the agent, each read by the crate that owns it through the
//! shared reader of `adp-config`.
//!
//! | keys | owner |
//! | --- | --- |
//! | `dogstatsd_*`, `bind_host`, `statsd_metric_*`, `metric_filterlist*`, `histogram_copy_to_distribution*` | `adp-dogstatsd` ([`DogStatsDConfig::read`]) |
//! | `aggregate_*`, `counter_expiry_seconds`, `histogram_aggregates`, `histogram_percentiles` | `adp-aggregate` ([`AggregateConfig::read`]) |
//! | `serializer_*` | `adp-encoder` ([`EncoderConfig::read`]) |
//! | `api_key`, `site`, `dd_url`, `additional_endpoints`, `forwarder_*`, `proxy.*`, `run_path`, `data_plane.shutdown_drain_timeout` | `adp-forwarder` ([`ForwarderConfig::read`]) |
//! | `secret_backend_*` | `adp-config` (read before any other key) |
//! | `hostname*`, `tags`, `extra_tags`, `env`, `tag_value_split_separator`, `host_aliases`, `expected_tags_duration`, `enable_metadata_collection`, `metadata_providers` | `adp-host` ([`HostSettings::read`]) |
//! | `confd_path`, `procfs_path` | `adp-checks` ([`ChecksSettings::read`]) |
//! | `data_plane.*` (but the drain), `log_level`, `log_format_json`, `auth_token_file_path`, `ipc_cert_file_path` | this binary ([`AgentSettings::read`]) |
//! | `memory_limit`, `memory_slop_factor`, `memory_mode` | this binary ([`MemoryConfig::read`]) |
//!
//! `agent-data-plane config` prints every key read, its value and its origin;
//! `run` warns once about keys set that no component reads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use adp_aggregate::AggregateConfig;
use adp_checks::ChecksSettings;
use adp_config::{key, parse, ConfigError, ConfigFile, Effective, Environment, MemoryBounds, Raw, Reader};
use adp_dogstatsd::DogStatsDConfig;
use adp_encoder::EncoderConfig;
use adp_forwarder::ForwarderConfig;
use adp_host::HostSettings;

use crate::logging::LogLevel;
use crate::memory::MemoryConfig;

/// The effective configuration: each component's own settings, and what was read.
pub struct Settings {
    /// The binary's own keys.
    pub agent: AgentSettings,
    /// The memory limiter's keys.
    pub memory: MemoryConfig,
    /// The host's keys: hostname, host tags, host metadata.
    pub host: HostSettings,
    /// The DogStatsD source's keys.
    pub dogstatsd: DogStatsDConfig,
    /// The aggregator's keys.
    pub aggregate: AggregateConfig,
    /// The encoder's keys (its `hostname` set at start from the resolved name).
    pub encoder: EncoderConfig,
    /// The forwarder's keys (its version set to this binary's).
    pub forwarder: ForwarderConfig,
    /// The system checks' keys.
    pub checks: ChecksSettings,
    /// Every key read, its value and origin, and what nobody read.
    pub effective: Effective,
}

/// `data_plane.*`: what the Agent Data Plane runs and where its APIs listen.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPlane {
    /// `data_plane.enabled`: run at all. When false (and not standalone) the
    /// binary logs "Agent Data Plane is not enabled. Exiting." and exits 0.
    /// Defaults to false.
    pub enabled: bool,
    /// `data_plane.standalone_mode`: local configuration is the authority and
    /// no core Agent is contacted. Implies `enabled`. Defaults to false.
    pub standalone_mode: bool,
    /// `data_plane.remote_agent_enabled`: register with the core Agent over
    /// gRPC (not implemented; the binary refuses to start in that mode).
    /// Defaults to true.
    pub remote_agent_enabled: bool,
    /// `data_plane.use_new_config_stream_endpoint`: stream configuration from
    /// the core Agent (remote-agent mode only). Defaults to true.
    pub use_new_config_stream_endpoint: bool,
    /// `data_plane.dogstatsd.enabled`: run the DogStatsD pipeline. Defaults to true.
    pub dogstatsd_enabled: bool,
    /// `data_plane.api_listen_address`: the unprivileged HTTP API (health,
    /// telemetry). Port 0 picks a free port. Defaults to `tcp://0.0.0.0:5100`.
    pub api_listen_address: SocketAddr,
    /// `data_plane.secure_api_listen_address`: the privileged HTTPS API
    /// (config, log level, DogStatsD statistics). Port 0 picks a free port.
    /// Defaults to `tcp://0.0.0.0:5101`.
    pub secure_api_listen_address: SocketAddr,
}

/// The keys this binary owns itself.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSettings {
    /// `data_plane.*`.
    pub data_plane: DataPlane,
    /// `log_level`: `trace`, `debug`, `info`, `warn`, `error` (`critical` is
    /// read as `error`) or `off`. Can be changed at run time through the
    /// privileged API. Defaults to `info`.
    pub log_level: LogLevel,
    /// `log_format_json`: log one JSON object per line instead of text.
    /// Defaults to false.
    pub log_format_json: bool,
    /// `auth_token_file_path`: the bearer token for the privileged API;
    /// created (mode 0600, 64 random hex digits) if absent. Defaults to
    /// `auth_token` beside the configuration file (`/etc/datadog-agent/auth_token`).
    pub auth_token_file_path: PathBuf,
    /// `ipc_cert_file_path`: PEM certificate and private key (one file, like
    /// the Agent's `ipc_cert.pem`) for the privileged API's TLS; generated
    /// self-signed at start if absent. Defaults to `ipc_cert.pem` beside
    /// `auth_token_file_path`.
    pub ipc_cert_file_path: PathBuf,
}

impl AgentSettings {
    /// Reads the binary's own keys.
    pub fn read(r: &mut Reader) -> Self {
        let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let data_plane = DataPlane {
            enabled: r.get(key!("data_plane.enabled"), false, parse::boolean),
            standalone_mode: r.get(key!("data_plane.standalone_mode"), false, parse::boolean),
            remote_agent_enabled: r.get(key!("data_plane.remote_agent_enabled"), true, parse::boolean),
            use_new_config_stream_endpoint: r.get(
                key!("data_plane.use_new_config_stream_endpoint"),
                true,
                parse::boolean,
            ),
            dogstatsd_enabled: r.get(key!("data_plane.dogstatsd.enabled"), true, parse::boolean),
            api_listen_address: r.get_with(
                key!("data_plane.api_listen_address"),
                any(5100),
                tcp_listen_address,
                show_tcp,
            ),
            secure_api_listen_address: r.get_with(
                key!("data_plane.secure_api_listen_address"),
                any(5101),
                tcp_listen_address,
                show_tcp,
            ),
        };
        let log_level = r.get(key!("log_level"), LogLevel::Info, parse::choice(LogLevel::CHOICES));
        let log_format_json = r.get(key!("log_format_json"), false, parse::boolean);
        let auth_token_file_path = r.get(
            key!("auth_token_file_path"),
            r.config_dir().join("auth_token"),
            parse::path,
        );
        let ipc_default = auth_token_file_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("ipc_cert.pem");
        let ipc_cert_file_path = r.get(key!("ipc_cert_file_path"), ipc_default, parse::path);
        Self {
            data_plane,
            log_level,
            log_format_json,
            auth_token_file_path,
            ipc_cert_file_path,
        }
    }
}

/// A listener address `tcp://<ip>:<port>` (`localhost` means 127.0.0.1).
fn tcp_listen_address(raw: Raw<'_>) -> Result<SocketAddr, String> {
    const EXPECTED: &str = "a listen address tcp://<ip>:<port>, e.g. tcp://0.0.0.0:5100";
    let s = raw.scalar().ok_or_else(|| EXPECTED.to_owned())?;
    let s = s.trim();
    if s.starts_with("unix://") {
        return Err(format!("{EXPECTED} (unix:// listeners are not supported yet)"));
    }
    let rest = s.strip_prefix("tcp://").ok_or_else(|| EXPECTED.to_owned())?;
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = rest.strip_prefix("localhost:").ok_or_else(|| EXPECTED.to_owned())?;
    let port: u16 = port.parse().map_err(|_| EXPECTED.to_owned())?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

fn show_tcp(addr: &SocketAddr) -> serde_json::Value {
    serde_json::Value::String(format!("tcp://{addr}"))
}

impl Settings {
    /// Reads `--config PATH` (or the Agent's default file, optional) and `env`:
    /// secrets first, then every component's keys; every invalid value at once.
    pub fn load(path: Option<&Path>, env: Environment) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => ConfigFile::explicit(p),
            None => ConfigFile::default_path(),
        };
        Self::read(Reader::open(&file, env)?)
    }

    /// Reads every component's keys from `r`.
    pub fn read(mut r: Reader) -> Result<Self, ConfigError> {
        let agent = AgentSettings::read(&mut r);
        let memory = MemoryConfig::read(&mut r);
        let host = HostSettings::read(&mut r);
        let dogstatsd = DogStatsDConfig::read(&mut r);
        let aggregate = AggregateConfig::read(&mut r);
        let encoder = EncoderConfig::read(&mut r);
        let mut forwarder = ForwarderConfig::read(&mut r);
        forwarder.agent_version = crate::VERSION.to_owned();
        let checks = ChecksSettings::read(&mut r);
        let effective = r.finish()?;
        Ok(Self {
            agent,
            memory,
            host,
            dogstatsd,
            aggregate,
            encoder,
            forwarder,
            checks,
            effective,
        })
    }

    /// The declared memory bounds of every component.
    pub fn memory_bounds(&self) -> Vec<MemoryBounds> {
        vec![
            self.dogstatsd.memory_bounds(),
            self.aggregate.memory_bounds(),
            self.encoder.memory_bounds(),
            self.forwarder.memory_bounds(self.encoder.serializer_max_payload_size),
            self.checks.memory_bounds(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn from_env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut r = Reader::from_env(
            Path::new("/etc/datadog-agent"),
            Environment::from_pairs(pairs.iter().copied()),
        );
        r.resolve_secrets()?;
        Settings::read(r)
    }

    #[test]
    fn defaults_match_the_datadog_agent() {
        let s = from_env(&[]).unwrap();
        let a = &s.agent;
        assert_eq!(a.data_plane.api_listen_address, "0.0.0.0:5100".parse().unwrap());
        assert_eq!(a.data_plane.secure_api_listen_address, "0.0.0.0:5101".parse().unwrap());
        assert!(!a.data_plane.enabled && !a.data_plane.standalone_mode && a.data_plane.dogstatsd_enabled);
        assert_eq!(a.log_level, LogLevel::Info);
        assert_eq!(a.auth_token_file_path, PathBuf::from("/etc/datadog-agent/auth_token"));
        assert_eq!(a.ipc_cert_file_path, PathBuf::from("/etc/datadog-agent/ipc_cert.pem"));
        assert_eq!(s.dogstatsd, DogStatsDConfig::default());
        assert_eq!(s.aggregate, AggregateConfig::default());
        assert_eq!(s.encoder, EncoderConfig::default());
        assert_eq!(s.forwarder.site, "datadoghq.com");
        assert_eq!(s.forwarder.forwarder_stop_timeout, Duration::from_secs(10));
        assert_eq!(s.forwarder.agent_version, crate::VERSION);
    }

    #[test]
    fn every_key_has_one_owner() {
        let s = from_env(&[]).unwrap();
        let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for record in s.effective.records() {
            owners.entry(record.key.name).or_default().push(record.key.owner);
        }
        let shared: Vec<_> = owners.iter().filter(|(_, o)| o.len() > 1).collect();
        assert!(shared.is_empty(), "keys read twice: {shared:?}");
        assert_eq!(owners["dogstatsd_port"], ["adp-dogstatsd"]);
        assert_eq!(owners["aggregate_context_limit"], ["adp-aggregate"]);
        assert_eq!(owners["api_key"], ["adp-forwarder"]);
        assert_eq!(owners["data_plane.enabled"], ["agent-data-plane"]);
        assert_eq!(owners["hostname"], ["adp-host"]);
        assert_eq!(owners["tags"], ["adp-host"]);
        assert_eq!(owners["confd_path"], ["adp-checks"]);
        assert_eq!(owners["secret_backend_command"], ["adp-config"]);
    }

    #[test]
    fn every_invalid_value_of_every_component_is_reported_at_once() {
        let Err(ConfigError::Invalid(errors)) = from_env(&[
            ("DD_LOG_LEVEL", "loud"),
            ("DD_MEMORY_MODE", "lax"),
            ("DD_DOGSTATSD_BUFFER_SIZE", "0"),
            ("DD_AGGREGATE_FLUSH_INTERVAL", "soon"),
            ("DD_SERIALIZER_COMPRESSOR_KIND", "lz4"),
            ("DD_FORWARDER_TIMEOUT", "never"),
        ]) else {
            panic!("invalid")
        };
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "log_level",
                "memory_mode",
                "dogstatsd_buffer_size",
                "aggregate_flush_interval",
                "serializer_compressor_kind",
                "forwarder_timeout"
            ]
        );
        let text = ConfigError::Invalid(errors).to_string();
        assert!(
            text.starts_with("6 invalid configuration values:\n  - invalid value for `log_level`"),
            "{text}"
        );
    }

    #[test]
    fn listen_addresses_are_tcp_urls() {
        let s = from_env(&[
            ("DD_DATA_PLANE_API_LISTEN_ADDRESS", "tcp://127.0.0.1:0"),
            ("DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS", "tcp://localhost:6101"),
        ])
        .unwrap();
        assert_eq!(s.agent.data_plane.api_listen_address, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            s.agent.data_plane.secure_api_listen_address,
            "127.0.0.1:6101".parse().unwrap()
        );
        assert_eq!(
            s.effective.to_json()["data_plane"]["secure_api_listen_address"],
            "tcp://127.0.0.1:6101"
        );
        for bad in ["0.0.0.0:5100", "unix:///var/run/adp.sock", "tcp://host:1"] {
            let Err(ConfigError::Invalid(errors)) = from_env(&[("DD_DATA_PLANE_API_LISTEN_ADDRESS", bad)]) else {
                panic!("{bad} is invalid")
            };
            assert_eq!(errors[0].key, "data_plane.api_listen_address");
        }
    }

    #[test]
    fn keys_for_other_agent_components_are_reported_as_unread() {
        let yaml = "
api_key: abc
logs_enabled: true
logs_config:
  container_collect_all: true
apm_config:
  enabled: [1, 2]
data_plane:
  enabled: true
  otlp: {enabled: true}
";
        let mut r = Reader::from_yaml(
            yaml,
            Path::new("/etc/datadog-agent/datadog.yaml"),
            Environment::from_pairs([("DD_APM_ENABLED", "whatever"), ("DD_DOGSTATSD_PORT", "9125")]),
        )
        .unwrap();
        r.resolve_secrets().unwrap();
        let s = Settings::read(r).unwrap();
        assert_eq!(s.forwarder.api_key, "abc");
        assert_eq!(
            s.effective.unread(),
            [
                "logs_enabled",
                "logs_config",
                "apm_config",
                "data_plane.otlp",
                "DD_APM_ENABLED"
            ]
        );
    }

    #[test]
    fn memory_bounds_are_each_components_own() {
        let s = from_env(&[
            ("DD_AGGREGATE_CONTEXT_LIMIT", "4000000000"),
            ("DD_DOGSTATSD_SOCKET", "/tmp/s"),
        ])
        .unwrap();
        let bounds = s.memory_bounds();
        let names: Vec<&str> = bounds.iter().map(|b| b.component).collect();
        assert_eq!(names, ["dogstatsd", "aggregator", "encoder", "forwarder", "checks"]);
        assert_eq!(
            bounds[1].firm,
            4_000_000_000 * adp_aggregate::BYTES_PER_CONTEXT,
            "above 4 GiB, exact"
        );
        assert_eq!(bounds[0].minimum, 2 * 8192 + (2 << 20));
        assert!(bounds.iter().all(|b| b.firm >= b.minimum));
    }

    #[test]
    fn log_levels_accept_the_agent_names() {
        assert_eq!(
            from_env(&[("DD_LOG_LEVEL", "WARNING")]).unwrap().agent.log_level,
            LogLevel::Warn
        );
        assert_eq!(
            from_env(&[("DD_LOG_LEVEL", "critical")]).unwrap().agent.log_level,
            LogLevel::Error
        );
        assert_eq!(LogLevel::parse(" Debug "), Some(LogLevel::Debug));
        assert_eq!(LogLevel::parse("verbose"), None);
    }
}

#[cfg(test)]
mod key_table {
    use super::*;

    const BEGIN: &str =
        "<!-- key table: generated by `cargo test -p agent-data-plane key_table` from the keys each crate reads -->";
    const END: &str = "<!-- end of key table -->";

    /// Every key read, its owner, the variables it is read from and its default.
    fn render() -> String {
        let mut r = Reader::from_env(Path::new("/etc/datadog-agent"), Environment::default());
        r.resolve_secrets().unwrap();
        let settings = Settings::read(r).unwrap();
        let mut out = String::from("| key | owner | environment | default |\n|---|---|---|---|\n");
        for record in settings.effective.records() {
            let vars: Vec<String> = record.key.env_vars().iter().map(|v| format!("`{v}`")).collect();
            let default = match &record.default {
                serde_json::Value::Null => "unset".to_owned(),
                serde_json::Value::String(s) if s.is_empty() => "empty".to_owned(),
                serde_json::Value::Array(a) if a.is_empty() => "none".to_owned(),
                serde_json::Value::Object(o) if o.is_empty() => "none".to_owned(),
                other => format!("`{other}`"),
            };
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                record.key.name,
                record.key.owner,
                vars.join(", "),
                default.replace('|', "\\|")
            ));
        }
        out
    }

    #[test]
    fn the_key_table_in_the_architecture_doc_is_current() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md")).unwrap();
        let expected = render();
        let current = doc
            .split_once(BEGIN)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(table, _)| table.trim().to_owned());
        assert_eq!(
            current.as_deref(),
            Some(expected.trim()),
            "docs/architecture.md's key table is stale; put this between its markers:\n{BEGIN}\n{expected}{END}"
        );
    }
}
