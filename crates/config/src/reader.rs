//! The shared reader: components read their own keys from it, it records what
//! each read and where the value came from, and it collects every invalid value
//! so one run reports all mistakes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::key::{Key, Redact};
use crate::redact::{redact_value, REDACTED};
use crate::secrets::{ResolvedReport, SecretBackend};
use crate::source::{yaml_get, Environment, InvalidValue, Origin, Raw};
use crate::value::ConfigValue;
use crate::{ConfigError, ConfigFile};

/// Reads keys from the environment and the file, in that order of precedence
/// (see the crate docs), for the components that own them.
pub struct Reader {
    file: Option<(PathBuf, serde_yaml::Mapping)>,
    config_dir: PathBuf,
    env: Environment,
    errors: Vec<InvalidValue>,
    records: Vec<KeyRecord>,
    secrets: ResolvedReport,
}

/// What a component read for one key, redacted as the key declares.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// The key as declared by its owner.
    pub key: Key,
    /// The effective value, redacted.
    pub value: Value,
    /// The built-in default, redacted.
    pub default: Value,
    /// Where the value came from; `None` for the default.
    pub origin: Option<Origin>,
}

/// The outcome of a successful read: every key read, with its value and origin,
/// and what was set that no component read.
#[derive(Clone, Debug)]
pub struct Effective {
    source_file: Option<PathBuf>,
    records: Vec<KeyRecord>,
    unread: Vec<String>,
    secrets: ResolvedReport,
}

impl Reader {
    /// Reads `file` (a missing default file means "environment only"; a missing
    /// file given explicitly is an error) for lookups together with `env`, and
    /// resolves its `ENC[...]` secrets (see [`Reader::resolve_secrets`]).
    pub fn open(file: &ConfigFile, env: Environment) -> Result<Self, ConfigError> {
        let mut reader = Self::open_unresolved(file, env)?;
        reader.resolve_secrets()?;
        Ok(reader)
    }

    fn open_unresolved(file: &ConfigFile, env: Environment) -> Result<Self, ConfigError> {
        let config_dir = file
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        match std::fs::read_to_string(&file.path) {
            Ok(text) => Self::from_yaml(&text, &file.path, env),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if file.explicit {
                    Err(ConfigError::FileNotFound {
                        path: file.path.clone(),
                    })
                } else {
                    Ok(Self::from_env(&config_dir, env))
                }
            }
            Err(source) => Err(ConfigError::ReadFile {
                path: file.path.clone(),
                source,
            }),
        }
    }

    /// A reader of the YAML `text`, said to come from `path` (its directory is
    /// where default file paths are relative to).
    pub fn from_yaml(text: &str, path: &Path, env: Environment) -> Result<Self, ConfigError> {
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
        let config_dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        let mut reader = Self::from_env(&config_dir, env);
        reader.file = Some((path.to_owned(), map));
        Ok(reader)
    }

    /// A reader of the environment alone; `config_dir` is where default file
    /// paths are relative to.
    pub fn from_env(config_dir: &Path, env: Environment) -> Self {
        Self {
            file: None,
            config_dir: config_dir.to_owned(),
            env,
            errors: Vec::new(),
            records: Vec::new(),
            secrets: ResolvedReport::default(),
        }
    }

    /// Replaces every `ENC[handle]` value of the file and the environment by
    /// what `secret_backend_command` returns for it (one call for all handles),
    /// before any other key is read. The backend's own keys are read first
    /// (and recorded as this crate's). Resolved values are redacted wherever
    /// a value is shown. [`Reader::open`] does this; the other constructors
    /// leave it to the caller.
    pub fn resolve_secrets(&mut self) -> Result<(), ConfigError> {
        let (backend, kind) = SecretBackend::read(self);
        if !self.errors.is_empty() {
            return Err(ConfigError::Invalid(std::mem::take(&mut self.errors)));
        }
        let file = self.file.as_ref().map(|(_, m)| m);
        let resolved = crate::secrets::resolve_sources(backend, kind, file, &self.env).map_err(ConfigError::Secrets)?;
        if let Some((mapping, env)) = resolved.replaced {
            if let (Some((_, file)), Some(mapping)) = (self.file.as_mut(), mapping) {
                *file = mapping;
            }
            self.env = env;
        }
        self.secrets = resolved.report;
        Ok(())
    }

    /// The directory of the configuration file (default paths such as
    /// `auth_token` are relative to it).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The file being read, if any.
    pub fn source_file(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    fn find(&self, key: &Key) -> Option<(Raw<'_>, Origin)> {
        for k in std::iter::once(key.name).chain(key.aliases.iter().copied()) {
            let name = crate::env_var_name(k);
            if let Some(v) = self.env.get(&name) {
                return Some((Raw::Env(v), Origin::Env(name)));
            }
        }
        for name in key.extra_env {
            if let Some(v) = self.env.get(name) {
                return Some((Raw::Env(v), Origin::Env((*name).to_owned())));
            }
        }
        let (path, root) = self.file.as_ref()?;
        for k in std::iter::once(key.name).chain(key.aliases.iter().copied()) {
            if let Some(v) = yaml_get(root, k) {
                return Some((Raw::Yaml(v), Origin::File(path.clone())));
            }
        }
        None
    }

    /// The typed value of `key`: parsed from the environment or the file, or
    /// `default` when unset. A value that does not parse is recorded as an
    /// error (reported by [`Reader::finish`]) and `default` is returned so that
    /// reading goes on and every mistake is found in one run.
    pub fn get<T: ConfigValue>(&mut self, key: Key, default: T, parse: impl FnOnce(Raw<'_>) -> Result<T, String>) -> T {
        self.get_with(key, default, parse, T::show)
    }

    /// [`Reader::get`] for a type that is not a [`ConfigValue`] (one of
    /// another crate): `show` renders it for `config`.
    pub fn get_with<T>(
        &mut self,
        key: Key,
        default: T,
        parse: impl FnOnce(Raw<'_>) -> Result<T, String>,
        show: impl Fn(&T) -> Value,
    ) -> T {
        let redact = key.effective_redact();
        let shown_default = self.shown(show(&default), redact);
        let found = self.find(&key).map(|(raw, origin)| (parse(raw), raw.show(), origin));
        let (value, origin) = match found {
            None => (default, None),
            Some((Ok(value), _, origin)) => (value, Some(origin)),
            Some((Err(expected), shown, origin)) => {
                self.push_error(&key, shown, origin, expected);
                (default, None)
            }
        };
        self.records.push(KeyRecord {
            key,
            value: self.shown(show(&value), redact),
            default: shown_default,
            origin,
        });
        value
    }

    /// A value as it may be shown: redacted per the key, and with every
    /// resolved secret hidden wherever it appears.
    fn shown(&self, value: Value, redact: Redact) -> Value {
        let mut value = redact_value(value, redact);
        self.secrets.redact_json(&mut value);
        value
    }

    /// Records an error for `key`'s value, which parsed but failed a check that
    /// involves other keys (`forwarder_backoff_max` below `forwarder_backoff_base`).
    pub fn reject(&mut self, key: Key, expected: impl Into<String>) {
        let found = self.find(&key).map(|(raw, origin)| (raw.show(), origin));
        if let Some((shown, origin)) = found {
            self.push_error(&key, shown, origin, expected.into());
        }
    }

    fn push_error(&mut self, key: &Key, shown: String, origin: Origin, expected: String) {
        // A mistyped secret is still a secret: never echo it.
        let value = if key.effective_redact() == Redact::No {
            self.secrets.redact(&shown).into_owned()
        } else {
            format!("{REDACTED:?}")
        };
        self.errors.push(InvalidValue {
            key: key.name.to_owned(),
            origin,
            value,
            expected,
        });
    }

    /// Ends reading: every invalid value at once, or what was read and what
    /// was set but not read by anyone.
    pub fn finish(self) -> Result<Effective, ConfigError> {
        if !self.errors.is_empty() {
            return Err(ConfigError::Invalid(self.errors));
        }
        let unread = self.unread();
        Ok(Effective {
            source_file: self.file.map(|(p, _)| p),
            records: self.records,
            unread,
            secrets: self.secrets,
        })
    }

    /// Keys set in the file and `DD_*` variables set in the environment that
    /// no component read. A file section nobody reads any key of is named once
    /// (`apm_config`), not per leaf.
    fn unread(&self) -> Vec<String> {
        let read: BTreeSet<&str> = self
            .records
            .iter()
            .flat_map(|r| std::iter::once(r.key.name).chain(r.key.aliases.iter().copied()))
            .collect();
        let mut unread = Vec::new();
        if let Some((_, root)) = &self.file {
            unread_in(root, "", &read, &mut unread);
        }
        let read_vars: BTreeSet<String> = self.records.iter().flat_map(|r| r.key.env_vars()).collect();
        for (name, value) in self.env.iter() {
            if name.starts_with("DD_") && !value.is_empty() && !read_vars.contains(name) {
                unread.push(name.to_owned());
            }
        }
        unread
    }
}

fn unread_in(map: &serde_yaml::Mapping, prefix: &str, read: &BTreeSet<&str>, out: &mut Vec<String>) {
    for (k, v) in map {
        if v.is_null() {
            continue; // `key:` with no value is unset, as for every key read.
        }
        let Some(k) = k.as_str().map(str::to_owned).or_else(|| serde_yaml::to_string(k).ok()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            k.trim().to_owned()
        } else {
            format!("{prefix}.{}", k.trim())
        };
        if read.contains(path.as_str()) {
            continue;
        }
        let below = format!("{path}.");
        match v.as_mapping() {
            Some(inner) if read.iter().any(|r| r.starts_with(&below)) => unread_in(inner, &path, read, out),
            _ => out.push(path),
        }
    }
}

impl Effective {
    /// The file that was read, if any.
    pub fn source_file(&self) -> Option<&Path> {
        self.source_file.as_deref()
    }

    /// Every key read, in reading order.
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    /// What secret resolution did, with its log lines for the binary to emit
    /// once logging runs.
    pub fn secrets(&self) -> &ResolvedReport {
        &self.secrets
    }

    /// Hides every resolved secret in `text` (for messages that quote values).
    pub fn redact_secrets<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.secrets.redact(text)
    }

    /// Keys and `DD_*` variables that were set but that no component reads.
    pub fn unread(&self) -> &[String] {
        &self.unread
    }

    /// The effective configuration as nested JSON keyed by the Agent's key
    /// names (`{"data_plane": {"enabled": true}}`), secrets redacted.
    pub fn to_json(&self) -> Value {
        let mut root = serde_json::Map::new();
        for record in &self.records {
            let mut parts: Vec<&str> = record.key.name.split('.').collect();
            let leaf = parts.pop().unwrap_or(record.key.name);
            let mut node = &mut root;
            for part in parts {
                let entry = node
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(serde_json::Map::new());
                }
                let Value::Object(next) = entry else {
                    unreachable!("made an object above")
                };
                node = next;
            }
            node.insert(leaf.to_owned(), record.value.clone());
        }
        Value::Object(root)
    }

    /// One line per key, grouped by the crate that owns it: `key: value  # origin`,
    /// where the origin is the environment variable, the file, or `default`;
    /// then the keys set that nothing reads. Values are JSON, which YAML reads.
    pub fn to_annotated_yaml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Effective configuration of agent-data-plane: every key it reads, its value and where the value \
             came from (an environment variable, the file, or the default). Secrets are shown as {REDACTED}."
        );
        let mut owner = "";
        for record in &self.records {
            if record.key.owner != owner {
                owner = record.key.owner;
                let _ = writeln!(out, "\n# {owner}");
            }
            let line = format!("{}: {}", record.key.name, record.value);
            let origin = match &record.origin {
                Some(origin) => origin.to_string(),
                None => "default".to_owned(),
            };
            let _ = writeln!(out, "{line:<56} # {origin}");
        }
        if !self.unread.is_empty() {
            let _ = writeln!(out, "\n# Set but not used by agent-data-plane (ignored):");
            for key in &self.unread {
                let _ = writeln!(out, "#   {key}");
            }
        }
        out
    }
}

/// Reads `yaml` (said to be `/etc/datadog-agent/datadog.yaml`) and the `env`
/// pairs with `read`, as a component's tests do: the value, or every invalid
/// value at once.
#[cfg(any(test, feature = "test-support"))]
pub fn read_for_test<T>(
    yaml: &str,
    env: &[(&str, &str)],
    read: impl FnOnce(&mut Reader) -> T,
) -> Result<T, ConfigError> {
    let mut r = Reader::from_yaml(
        yaml,
        Path::new("/etc/datadog-agent/datadog.yaml"),
        Environment::from_pairs(env.iter().copied()),
    )?;
    let value = read(&mut r);
    r.finish().map(|_| value)
}

/// Defines a component's test helpers `read(yaml, env)`: `$settings::read`
/// over `yaml` and the `env` pairs with [`read_for_test`], the settings or
/// every invalid value at once; and `invalid(yaml, env)`: the invalid values.
#[cfg(any(test, feature = "test-support"))]
#[macro_export]
macro_rules! test_read {
    ($settings:ty) => {
        fn read(yaml: &str, env: &[(&str, &str)]) -> Result<$settings, $crate::ConfigError> {
            $crate::read_for_test(yaml, env, <$settings>::read)
        }

        /// The invalid values `read` reports (it panics if `read` does not).
        #[allow(dead_code, reason = "not every component's tests need it")]
        fn invalid(yaml: &str, env: &[(&str, &str)]) -> Vec<$crate::InvalidValue> {
            match read(yaml, env) {
                Err($crate::ConfigError::Invalid(errors)) => errors,
                other => panic!("{yaml:?} {env:?}: expected invalid values, got {other:?}"),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::key;
    use crate::parse::{boolean, duration, integer, string};

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn reader(yaml: &str, pairs: &[(&str, &str)]) -> Reader {
        Reader::from_yaml(yaml, Path::new("/etc/datadog-agent/datadog.yaml"), env(pairs)).unwrap()
    }

    #[test]
    fn the_environment_wins_over_the_file_which_wins_over_the_default() {
        let mut r = reader(
            "dogstatsd_port: 1234\nhostname: file-host\n",
            &[("DD_DOGSTATSD_PORT", "4321")],
        );
        let port: u16 = r.get(key!("dogstatsd_port"), 8125, integer(0, 65535));
        let host = r.get(key!("hostname"), String::new(), string);
        let window: u64 = r.get(key!("aggregate_window_duration_seconds"), 10, integer(1, 3600));
        assert_eq!((port, host.as_str(), window), (4321, "file-host", 10));
        let e = r.finish().unwrap();
        let origins: Vec<String> = e
            .records()
            .iter()
            .map(|r| r.origin.as_ref().map_or("default".to_owned(), ToString::to_string))
            .collect();
        assert_eq!(
            origins,
            ["DD_DOGSTATSD_PORT", "/etc/datadog-agent/datadog.yaml", "default"]
        );
    }

    #[test]
    fn every_invalid_value_is_reported_at_once_with_key_origin_value_and_expectation() {
        let mut r = reader("log_format_json: maybe\n", &[("DD_DOGSTATSD_PORT", "abc")]);
        let _: u16 = r.get(key!("dogstatsd_port"), 8125, integer(0, 65535));
        let _ = r.get(key!("log_format_json"), false, boolean);
        let Err(ConfigError::Invalid(errors)) = r.finish() else {
            panic!("both values are invalid")
        };
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): \"abc\": expected an integer 0-65535",
                "invalid value for `log_format_json` (from /etc/datadog-agent/datadog.yaml): \"maybe\": expected a \
                 boolean (true, false, 1 or 0)",
            ]
        );
    }

    #[test]
    fn secrets_are_redacted_in_records_and_errors() {
        let mut r = reader("", &[("DD_API_KEY", "0123456789abcdef"), ("DD_MY_TOKEN", "")]);
        let _ = r.get(key!("api_key"), String::new(), string);
        let _ = r.get(key!("proxy.https"), None, |raw| string(raw).map(Some));
        let e = r.finish().unwrap();
        assert_eq!(e.records()[0].value, Value::String(REDACTED.to_owned()));
        assert!(!e.to_annotated_yaml().contains("0123456789abcdef"));

        let mut r = reader("", &[("DD_API_KEY", "secret-one")]);
        let _: u16 = r.get(key!("api_key"), 0, integer(0, 1));
        let Err(ConfigError::Invalid(errors)) = r.finish() else {
            panic!("invalid")
        };
        assert_eq!(errors[0].value, "\"********\"");
        assert!(!errors[0].to_string().contains("secret-one"));
    }

    #[test]
    fn keys_and_variables_nobody_reads_are_listed_once_per_unread_section() {
        let yaml = "\
hostname: h
tags: [env:prod]
apm_config:
  enabled: true
  env: x
data_plane:
  enabled: true
  otlp: {enabled: true}
proxy:
empty_section: ~
";
        let mut r = reader(
            yaml,
            &[
                ("DD_LOGS_ENABLED", "true"),
                ("DD_DATA_PLANE_ENABLED", "1"),
                ("PATH", "/bin"),
            ],
        );
        let _ = r.get(key!("hostname"), String::new(), string);
        let _ = r.get(key!("data_plane.enabled"), false, boolean);
        let _ = r.get(key!("proxy.https"), None, |raw| string(raw).map(Some));
        let e = r.finish().unwrap();
        assert_eq!(e.unread(), ["tags", "apm_config", "data_plane.otlp", "DD_LOGS_ENABLED"]);
    }

    #[test]
    fn an_alias_counts_as_read() {
        let mut r = reader(
            "dogstatsd_expiry_seconds: 30\n",
            &[("DD_DOGSTATSD_EXPIRY_SECONDS", "40")],
        );
        let v: u64 = r.get(
            key!("counter_expiry_seconds").aliases(&["dogstatsd_expiry_seconds"]),
            300,
            integer(0, 86_400),
        );
        assert_eq!(v, 40);
        assert!(r.finish().unwrap().unread().is_empty());
    }

    #[test]
    fn the_rendering_nests_dotted_keys_and_shows_durations_as_written() {
        let mut r = reader("data_plane:\n  enabled: true\n", &[]);
        let _ = r.get(key!("data_plane.enabled"), false, boolean);
        let _ = r.get(key!("data_plane.dogstatsd.enabled"), true, boolean);
        let _ = r.get(
            key!("aggregate_flush_interval"),
            Duration::from_secs(15),
            duration(Duration::from_millis(10)),
        );
        let e = r.finish().unwrap();
        assert_eq!(
            e.to_json(),
            serde_json::json!({
                "data_plane": {"enabled": true, "dogstatsd": {"enabled": true}},
                "aggregate_flush_interval": "15s",
            })
        );
        let yaml = e.to_annotated_yaml();
        assert!(yaml.contains("\n# adp-config\n"), "{yaml}");
        let line = yaml.lines().find(|l| l.starts_with("data_plane.enabled:")).unwrap();
        assert!(line.ends_with("# /etc/datadog-agent/datadog.yaml"), "{line}");
        let line = yaml
            .lines()
            .find(|l| l.starts_with("aggregate_flush_interval:"))
            .unwrap();
        assert!(
            line.starts_with("aggregate_flush_interval: \"15s\"") && line.ends_with("# default"),
            "{line}"
        );
        // Every value line parses back as YAML.
        for line in yaml.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            serde_yaml::from_str::<serde_yaml::Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::key;
    use crate::parse::{integer, string};

    #[test]
    fn a_missing_default_file_means_environment_only_but_a_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("datadog.yaml");
        let env = || Environment::from_pairs([("DD_HOSTNAME", "h")]);
        let mut r = Reader::open(
            &ConfigFile {
                path: missing.clone(),
                explicit: false,
            },
            env(),
        )
        .unwrap();
        assert_eq!(r.get(key!("hostname"), String::new(), string), "h");
        assert_eq!(r.config_dir(), dir.path(), "defaults sit beside the config file");
        assert_eq!(r.finish().unwrap().source_file(), None);

        let err = Reader::open(&ConfigFile::explicit(&missing), env()).err().unwrap();
        assert!(matches!(err, ConfigError::FileNotFound { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

        std::fs::write(&missing, "hostname: from-file\n").unwrap();
        let mut r = Reader::open(&ConfigFile::explicit(&missing), Environment::default()).unwrap();
        assert_eq!(r.get(key!("hostname"), String::new(), string), "from-file");
        assert_eq!(r.finish().unwrap().source_file(), Some(missing.as_path()));
    }

    #[test]
    fn malformed_files_are_rejected_with_their_path_and_the_parser_error_once() {
        let path = Path::new("/etc/datadog-agent/datadog.yaml");
        let err = Reader::from_yaml("dogstatsd_port: [\n", path, Environment::default())
            .err()
            .unwrap();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot parse configuration file /etc/datadog-agent/datadog.yaml as YAML"
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("line 2"), "the cause has the position: {cause}");
        let err = Reader::from_yaml("- a\n- b\n", path, Environment::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "configuration file /etc/datadog-agent/datadog.yaml must be a YAML mapping of keys (like datadog.yaml), \
             not a list"
        );
        let mut r = Reader::from_yaml("", path, Environment::default()).unwrap();
        let port: u16 = r.get(key!("dogstatsd_port"), 8125, integer(0, 65535));
        assert_eq!(port, 8125, "an empty file is all defaults");
    }

    #[test]
    fn empty_environment_variables_and_yaml_nulls_count_as_unset() {
        let path = Path::new("/etc/datadog-agent/datadog.yaml");
        let env = Environment::from_pairs([("DD_DOGSTATSD_PORT", ""), ("DD_HOSTNAME", "")]);
        let mut r = Reader::from_yaml("dogstatsd_port: 9000\nhostname: ~\n", path, env).unwrap();
        let port: u16 = r.get(key!("dogstatsd_port"), 8125, integer(0, 65535));
        assert_eq!(port, 9000);
        assert_eq!(r.get(key!("hostname"), "default".to_owned(), string), "default");
        assert!(r.finish().unwrap().unread().is_empty());
    }
}
