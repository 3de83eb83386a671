//! The shared configuration reader of the Agent Data Plane: Datadog Agent-style
//! keys from `datadog.yaml`, overridden by `DD_*` environment variables, read by
//! the components that own them.
//!
//! # One owner per key
//!
//! This crate knows no component's keys. Each component crate declares the keys
//! it uses where it reads them, with [`key!`] (which records the reading crate
//! as the owner), its default, and a parser from [`parse`] or its own:
//!
//! ```
//! use adp_config::{key, parse, Environment, Reader};
//!
//! let mut r = Reader::from_env("/etc/datadog-agent".as_ref(), Environment::from_pairs([("DD_DOGSTATSD_PORT", "9125")]));
//! let port: u16 = r.get(key!("dogstatsd_port"), 8125, parse::integer(0, 65535));
//! let effective = r.finish().unwrap();
//! assert_eq!(port, 9125);
//! assert_eq!(effective.records()[0].key.owner, "adp-config"); // the crate that called key!
//! ```
//!
//! # Lookup
//!
//! A key such as `data_plane.enabled` is looked up, in order of precedence:
//!
//! 1. the environment variable named like the Datadog Agent names it: `DD_`, then
//!    the key upper-cased with every `.` turned into `_` (`DD_DATA_PLANE_ENABLED`),
//!    then the same for each alias key, then any extra variable the key accepts
//!    (`HTTPS_PROXY` for `proxy.https`);
//! 2. the YAML file, walking nested mappings (`data_plane: {enabled: true}`), then
//!    the alias keys;
//! 3. the owner's default.
//!
//! An empty environment variable or a YAML `null` counts as unset, as in the Agent.
//!
//! # Errors, all at once
//!
//! A value that does not parse does not stop reading: [`Reader::finish`] reports
//! every invalid value, each naming the key, where the value came from, the value
//! (secrets never echoed) and what is expected:
//!
//! ```text
//! invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): "abc": expected an integer 0-65535
//! ```
//!
//! # What was read, and what was not
//!
//! [`Effective`] holds every key read with its redacted value and origin (the
//! `config` command prints it with [`Effective::to_annotated_yaml`], the
//! privileged `/config` endpoint with [`Effective::to_json`]), and the keys set
//! in the file or the environment that no component read (the binary warns
//! about them at start: a key nobody reads must not vanish in silence).
//!
//! # Secrets
//!
//! `ENC[handle]` values, in the file and in `DD_*` variables, are resolved
//! through `secret_backend_command` before any key is read (see [`secrets`]
//! for the Agent's protocol and checks); resolved values are redacted wherever
//! the configuration is shown, and the log lines of the resolution wait in
//! [`Effective::secrets`] for the binary to emit.
//!
//! # Missing
//!
//! - `unix://` API listen addresses are rejected by the binary's parser.
//! - Remote-agent settings (`agent_ipc_endpoint`, config streaming) are not read:
//!   that mode is not implemented by the binary.
#![deny(missing_docs)]

mod key;
pub mod parse;
mod reader;
mod redact;
pub mod secrets;
mod source;
mod value;

use std::fmt;
use std::path::PathBuf;

pub use key::{Key, Redact};
pub use parse::format_duration;
#[cfg(any(test, feature = "test-support"))]
pub use reader::read_for_test;
pub use reader::{Effective, KeyRecord, Reader};
pub use redact::{is_secret_key, redact_url, redact_value, url_authority, REDACTED};
pub use secrets::{ResolvedReport, SecretBackend, SecretError};
pub use source::{env_var_name, Environment, InvalidValue, Origin, Raw};
pub use value::ConfigValue;

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
    /// An `ENC[...]` value could not be resolved (the Agent's wording).
    #[error("unable to decrypt secret from datadog.yaml: {0}")]
    Secrets(SecretError),
    /// One or more keys have invalid values.
    #[error("{}", InvalidValues(.0))]
    Invalid(Vec<InvalidValue>),
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

/// The memory a component declares for its settings, checked by the binary
/// against `memory_limit` at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBounds {
    /// The component (`dogstatsd`, `aggregator`, ...).
    pub component: &'static str,
    /// Bytes it holds as soon as it runs.
    pub minimum: u64,
    /// The most it holds with every queue and limit full.
    pub firm: u64,
    /// The key that lowers the firm bound most, named when the bounds do not fit.
    pub key: &'static str,
}
