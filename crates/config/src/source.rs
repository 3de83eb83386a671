//! Where a key's value comes from, and how raw values become typed ones.
//!
//! A key such as `data_plane.enabled` is looked up, in order of precedence:
//!
//! 1. the environment variable named like the Datadog Agent names it: `DD_`, then
//!    the key upper-cased with every `.` turned into `_` (`DD_DATA_PLANE_ENABLED`),
//!    then the same for each alias key, then any extra variable the key accepts
//!    (`HTTPS_PROXY` for `proxy.https`);
//! 2. the YAML file, walking nested mappings (`data_plane: {enabled: true}`), then
//!    the alias keys;
//! 3. the built-in default.
//!
//! An empty environment variable or a YAML `null` counts as unset, as in the Agent.
//!
//! Environment values are strings and are read the way the Agent reads them:
//! booleans are `true`/`false`/`1`/`0` (any case), lists are space-separated
//! (`DD_HISTOGRAM_AGGREGATES="max avg"`) or a JSON array, maps are JSON objects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_yaml::Value as Yaml;

/// The environment variables the configuration is read from.
///
/// Kept as a value (not read from the process on every lookup) so that loading is
/// a pure function of the file and this map, which is what the tests rely on.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process's environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    /// An environment made of the given pairs (for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// Every variable, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`, or `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Sets `name` (secret resolution substitutes values this way).
    pub fn set(&mut self, name: &str, value: String) {
        self.vars.insert(name.to_owned(), value);
    }
}

/// The environment variable the Agent reads for `key`: `data_plane.enabled` → `DD_DATA_PLANE_ENABLED`.
pub fn env_var_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len() + 3);
    name.push_str("DD_");
    for c in key.chars() {
        name.push(if c == '.' { '_' } else { c.to_ascii_uppercase() });
    }
    name
}

/// Where an effective value came from; shown in error messages and by `config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(name) => f.write_str(name),
        }
    }
}

/// One raw value before typing: what a parser (see [`crate::parse`]) receives.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    /// A value from the YAML file (never `null`: that counts as unset).
    Yaml(&'a Yaml),
    /// A non-empty environment variable's value.
    Env(&'a str),
}

impl Raw<'_> {
    /// The value as a user would recognise it: strings quoted, others as YAML/JSON.
    pub fn show(&self) -> String {
        match self {
            Raw::Env(s) => format!("{s:?}"),
            Raw::Yaml(Yaml::String(s)) => format!("{s:?}"),
            Raw::Yaml(Yaml::Bool(b)) => b.to_string(),
            Raw::Yaml(Yaml::Number(n)) => n.to_string(),
            Raw::Yaml(Yaml::Null) => "null".to_owned(),
            Raw::Yaml(other) => serde_json::to_string(other).unwrap_or_else(|_| "<a YAML value>".to_owned()),
        }
    }

    /// Text given as text: an environment value or a YAML string.
    pub fn text(&self) -> Option<&str> {
        match self {
            Raw::Env(s) => Some(s),
            Raw::Yaml(Yaml::String(s)) => Some(s),
            Raw::Yaml(_) => None,
        }
    }

    /// A scalar as text (YAML numbers and booleans included, as the Agent casts them).
    pub fn scalar(&self) -> Option<String> {
        match self {
            Raw::Env(s) => Some((*s).to_owned()),
            Raw::Yaml(Yaml::String(s)) => Some(s.clone()),
            Raw::Yaml(Yaml::Number(n)) => Some(n.to_string()),
            Raw::Yaml(Yaml::Bool(b)) => Some(b.to_string()),
            Raw::Yaml(_) => None,
        }
    }
}

/// One rejected value: the key, where it came from, the value and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue {
    /// The configuration key (`dogstatsd_port`).
    pub key: String,
    /// Where the value came from.
    pub origin: Origin,
    /// The value as given (secrets shown as `********`).
    pub value: String,
    /// What the key accepts.
    pub expected: String,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value for `{}` (from {}): {}: expected {}",
            self.key, self.origin, self.value, self.expected
        )
    }
}

/// Walks `a.b.c` through nested mappings; `null` counts as unset.
pub(crate) fn yaml_get<'v>(root: &'v serde_yaml::Mapping, key: &str) -> Option<&'v Yaml> {
    let mut parts = key.split('.');
    let mut cur = root.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_mapping()?.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}
