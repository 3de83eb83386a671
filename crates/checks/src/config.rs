//! Check configuration as the Agent reads it: `conf.d/<check>.d/*.yaml`
//! (`init_config:` + `instances:`), with `conf.yaml.default` files that run
//! a check by default.
//!
//! The Agent's file provider rules, followed here:
//!
//! - In `confd_path`, every `<check>.d/` directory and every top-level
//!   `<check>.yaml` is read; files ending `.yaml` or `.yml` are configs,
//!   files ending `.yaml.default`/`.yml.default` are defaults; anything else
//!   (`conf.yaml.example`, `conf.yaml.disabled`) is skipped.
//! - A default is used only when the check has no other valid config file.
//! - A file without instances is invalid ("Configuration file contains no
//!   valid instances"), is logged and does not replace the default. So, as in
//!   the Agent, **a default check is disabled by removing or renaming its
//!   `conf.yaml.default`** (to `conf.yaml.disabled`, say); an empty
//!   `instances:` in a `conf.yaml` does not disable it.
//! - Each instance runs separately, every `min_collection_interval` seconds
//!   (from the instance, else `init_config`, else the check's default: 15 s,
//!   900 s for ntp); its `tags` are added to every series it sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;
use tracing::{debug, info, warn};

/// The Agent's default `confd_path`.
pub const DEFAULT_CONFD_PATH: &str = "/etc/datadog-agent/conf.d";

/// The default collection interval of a check instance.
pub const DEFAULT_MIN_COLLECTION_INTERVAL: Duration = Duration::from_secs(15);

/// The default configuration files shipped with the agent, as paths relative
/// to `confd_path` and their contents: the IoT Agent's set (cpu, disk, io,
/// load, memory, network, ntp, uptime enabled; file_handle shipped as an
/// example only). Packaging copies them to `/etc/datadog-agent/conf.d`.
pub const DEFAULT_CONFD: &[(&str, &str)] = &[
    (
        "cpu.d/conf.yaml.default",
        include_str!("../conf.d/cpu.d/conf.yaml.default"),
    ),
    (
        "disk.d/conf.yaml.default",
        include_str!("../conf.d/disk.d/conf.yaml.default"),
    ),
    (
        "file_handle.d/conf.yaml.example",
        include_str!("../conf.d/file_handle.d/conf.yaml.example"),
    ),
    (
        "io.d/conf.yaml.default",
        include_str!("../conf.d/io.d/conf.yaml.default"),
    ),
    (
        "load.d/conf.yaml.default",
        include_str!("../conf.d/load.d/conf.yaml.default"),
    ),
    (
        "memory.d/conf.yaml.default",
        include_str!("../conf.d/memory.d/conf.yaml.default"),
    ),
    (
        "network.d/conf.yaml.default",
        include_str!("../conf.d/network.d/conf.yaml.default"),
    ),
    (
        "ntp.d/conf.yaml.default",
        include_str!("../conf.d/ntp.d/conf.yaml.default"),
    ),
    (
        "uptime.d/conf.yaml.default",
        include_str!("../conf.d/uptime.d/conf.yaml.default"),
    ),
];

/// One valid configuration file of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// The check's name (from `<name>.d/` or `<name>.yaml`).
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// Whether it is a `.default` file.
    pub is_default: bool,
    /// `init_config` (null when absent).
    pub init_config: Value,
    /// `instances`, each a mapping (or null for `- ` / `- {}`).
    pub instances: Vec<Value>,
}

/// Why a configuration could not be used; logged by the loader, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape.
    #[error("{} is not a valid config file", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// The file has no instances.
    #[error("{} is not a valid config file: Configuration file contains no valid instances", path.display())]
    NoInstances {
        /// The file.
        path: PathBuf,
    },
    /// An instance option has the wrong type or value.
    #[error("invalid configuration of check '{check}' instance {index} in {}: {message}", path.display())]
    Instance {
        /// The check.
        check: String,
        /// The file.
        path: PathBuf,
        /// The instance's position in `instances`.
        index: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    init_config: Value,
    #[serde(default)]
    instances: Option<Vec<Value>>,
    #[serde(default)]
    logs: Value,
}

/// Reads one configuration file.
pub fn read_config_file(name: &str, path: &Path, is_default: bool) -> Result<CheckConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let file: ConfigFile = serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
        path: path.into(),
        source,
    })?;
    let instances = file.instances.unwrap_or_default();
    if instances.is_empty() && file.logs.is_null() {
        return Err(ConfigError::NoInstances { path: path.into() });
    }
    Ok(CheckConfig {
        name: name.to_owned(),
        source: path.into(),
        is_default,
        init_config: file.init_config,
        instances,
    })
}

/// `(check name, is_default)` of a config file name, `None` when it is not a
/// config file.
fn classify(file_name: &str, dir_check: Option<&str>) -> Option<(String, bool)> {
    let (stem, is_default) = match file_name.strip_suffix(".default") {
        Some(stem) => (stem, true),
        None => (file_name, false),
    };
    let base = stem.strip_suffix(".yaml").or_else(|| stem.strip_suffix(".yml"))?;
    if file_name == "metrics.yaml" || file_name == "metrics.yml" {
        return None; // JMX metric files, not check instances
    }
    Some((dir_check.unwrap_or(base).to_owned(), is_default))
}

/// Reads every check configuration under `confd`, applying the Agent's
/// default-file rule. Invalid files are logged and skipped; a missing
/// directory yields nothing (logged).
pub fn load_confd(confd: &Path) -> Vec<CheckConfig> {
    info!(
        "File Configuration Provider: searching for configuration files at: {}",
        confd.display()
    );
    let mut entries = match std::fs::read_dir(confd) {
        Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(e) => {
            warn!("Skipping, {}: {e}", confd.display());
            return Vec::new();
        }
    };
    entries.sort_by_key(|e| e.file_name());

    let mut configs = Vec::new();
    let mut defaults = Vec::new();
    let mut read =
        |name: String, path: PathBuf, is_default: bool, configs: &mut Vec<CheckConfig>| match read_config_file(
            &name, &path, is_default,
        ) {
            Ok(c) if is_default => defaults.push(c),
            Ok(c) => configs.push(c),
            Err(e) => warn!("{e}"),
        };
    for entry in entries {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let Some(check) = file_name.strip_suffix(".d") else {
                debug!("Not a config folder, skipping directory: {}", path.display());
                continue;
            };
            let mut sub = match std::fs::read_dir(&path) {
                Ok(rd) => rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect::<Vec<_>>(),
                Err(e) => {
                    warn!("Skipping config directory {}: {e}", path.display());
                    continue;
                }
            };
            sub.sort();
            for p in sub {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match classify(&name, Some(check)) {
                    Some((check, is_default)) => read(check, p, is_default, &mut configs),
                    None => debug!("Skipping file: {}", p.display()),
                }
            }
        } else if let Some((check, is_default)) = classify(&file_name, None) {
            read(check, path, is_default, &mut configs);
        }
    }
    for default in defaults {
        if configs.iter().any(|c| c.name == default.name) {
            debug!(
                "Ignoring default config file '{}' because non-default config was found",
                default.name
            );
        } else {
            configs.push(default);
        }
    }
    configs
}

/// Options every instance accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonOptions {
    /// `min_collection_interval`.
    pub interval: Duration,
    /// The instance's `tags`.
    pub tags: Arc<[String]>,
}

#[derive(Deserialize, Default)]
struct RawCommon {
    #[serde(default)]
    min_collection_interval: Option<u64>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn raw_common(value: &Value) -> Result<RawCommon, String> {
    if value.is_null() {
        return Ok(RawCommon::default());
    }
    serde_yaml::from_value(value.clone()).map_err(|e| {
        format!("{e} (`min_collection_interval` takes whole seconds, `tags` a list of \"key:value\" strings)")
    })
}

/// The common options of an instance: `init_config` first, the instance
/// overriding, `default_interval` when neither sets a positive interval.
pub fn common_options(
    init_config: &Value,
    instance: &Value,
    default_interval: Duration,
) -> Result<CommonOptions, String> {
    let init = raw_common(init_config)?;
    let inst = raw_common(instance)?;
    let interval = inst
        .min_collection_interval
        .filter(|s| *s > 0)
        .or(init.min_collection_interval.filter(|s| *s > 0))
        .map_or(default_interval, Duration::from_secs);
    let tags = inst.tags.or(init.tags).unwrap_or_default();
    Ok(CommonOptions {
        interval,
        tags: tags.into(),
    })
}

/// Parses an instance's check-specific options (unknown keys are ignored, as
/// the Agent's YAML unmarshalling ignores them).
pub(crate) fn options<T: serde::de::DeserializeOwned + Default>(value: &Value) -> Result<T, String> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_yaml::from_value(value.clone()).map_err(|e| {
        let instance = serde_yaml::to_string(value).unwrap_or_default();
        format!("{e}, in `{}`", instance.trim().replace('\n', "; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn defaults_run_unless_a_plain_config_exists() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in DEFAULT_CONFD {
            write(dir.path(), rel, text);
        }
        let names = |c: &[CheckConfig]| {
            let mut n: Vec<String> = c.iter().map(|c| c.name.clone()).collect();
            n.sort();
            n
        };
        let configs = load_confd(dir.path());
        assert_eq!(
            names(&configs),
            ["cpu", "disk", "io", "load", "memory", "network", "ntp", "uptime"]
        );
        assert!(configs.iter().all(|c| c.is_default));

        // A plain conf.yaml replaces the default.
        write(
            dir.path(),
            "network.d/conf.yaml",
            "instances:\n  - excluded_interfaces: []\n",
        );
        let configs = load_confd(dir.path());
        let network: Vec<_> = configs.iter().filter(|c| c.name == "network").collect();
        assert_eq!(network.len(), 1);
        assert!(!network[0].is_default);

        // Renaming a default disables the check; an empty instances list does not.
        std::fs::rename(
            dir.path().join("load.d/conf.yaml.default"),
            dir.path().join("load.d/conf.yaml.disabled"),
        )
        .unwrap();
        write(dir.path(), "uptime.d/conf.yaml", "init_config:\ninstances: []\n");
        let n = names(&load_confd(dir.path()));
        assert!(!n.contains(&"load".to_owned()));
        assert!(n.contains(&"uptime".to_owned()));

        // The example enables file_handle once copied to conf.yaml.
        std::fs::copy(
            dir.path().join("file_handle.d/conf.yaml.example"),
            dir.path().join("file_handle.d/conf.yaml"),
        )
        .unwrap();
        assert!(names(&load_confd(dir.path())).contains(&"file_handle".to_owned()));
    }

    #[test]
    fn top_level_files_and_several_instances_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cpu.yaml",
            "instances:\n  - {}\n  - min_collection_interval: 30\n",
        );
        write(dir.path(), "notes.txt", "not a config");
        write(dir.path(), "broken.yaml", "instances: [\n");
        let configs = load_confd(dir.path());
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].instances.len(), 2);
        assert!(load_confd(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn common_options_take_the_instance_then_init_config_then_the_default() {
        let v = |s: &str| serde_yaml::from_str::<Value>(s).unwrap();
        let d = DEFAULT_MIN_COLLECTION_INTERVAL;
        let o = common_options(&Value::Null, &Value::Null, d).unwrap();
        assert_eq!((o.interval, o.tags.len()), (d, 0));
        let o = common_options(&v("min_collection_interval: 60"), &v("tags: [a:b]"), d).unwrap();
        assert_eq!(o.interval, Duration::from_secs(60));
        assert_eq!(&*o.tags, ["a:b".to_owned()]);
        let o = common_options(&v("min_collection_interval: 60"), &v("min_collection_interval: 5"), d).unwrap();
        assert_eq!(o.interval, Duration::from_secs(5));
        let o = common_options(&Value::Null, &v("min_collection_interval: 0"), d).unwrap();
        assert_eq!(o.interval, d);
        let err = common_options(&Value::Null, &v("min_collection_interval: fast"), d).unwrap_err();
        assert!(err.contains("whole seconds"), "{err}");
    }
}
