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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value as Yaml;

use crate::redact::{is_secret_key, REDACTED};

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

    /// The value of `name`, or `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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

/// Where an effective value came from; shown in error messages.
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

/// One raw value before typing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw<'a> {
    Yaml(&'a Yaml),
    Env(&'a str),
}

impl Raw<'_> {
    /// The value as a user would recognise it: strings quoted, others as YAML/JSON.
    fn show(&self) -> String {
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
    fn text(&self) -> Option<&str> {
        match self {
            Raw::Env(s) => Some(s),
            Raw::Yaml(Yaml::String(s)) => Some(s),
            Raw::Yaml(_) => None,
        }
    }

    /// A scalar as text (YAML numbers and booleans included, as the Agent casts them).
    fn scalar(&self) -> Option<String> {
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

/// Looks keys up in the environment and the file, types them, and collects every
/// invalid value (so one run reports all mistakes, not just the first).
pub(crate) struct Reader<'a> {
    file: Option<(&'a Path, &'a serde_yaml::Mapping)>,
    env: &'a Environment,
    pub(crate) errors: Vec<InvalidValue>,
}

/// How a key is looked up besides its own name.
#[derive(Clone, Copy, Default)]
pub(crate) struct Lookup<'k> {
    /// Older or alternative key names (`dogstatsd_expiry_seconds` for `counter_expiry_seconds`).
    pub aliases: &'k [&'k str],
    /// Extra environment variables read after the `DD_` ones (`HTTPS_PROXY`).
    pub extra_env: &'k [&'k str],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(file: Option<(&'a Path, &'a serde_yaml::Mapping)>, env: &'a Environment) -> Self {
        Self {
            file,
            env,
            errors: Vec::new(),
        }
    }

    fn find(&self, key: &str, lookup: Lookup<'_>) -> Option<(Raw<'a>, Origin)> {
        for k in std::iter::once(key).chain(lookup.aliases.iter().copied()) {
            let name = env_var_name(k);
            if let Some(v) = self.env.get(&name) {
                return Some((Raw::Env(v), Origin::Env(name)));
            }
        }
        for name in lookup.extra_env {
            if let Some(v) = self.env.get(name) {
                return Some((Raw::Env(v), Origin::Env((*name).to_owned())));
            }
        }
        let (path, root) = self.file?;
        for k in std::iter::once(key).chain(lookup.aliases.iter().copied()) {
            if let Some(v) = yaml_get(root, k) {
                return Some((Raw::Yaml(v), Origin::File(path.to_owned())));
            }
        }
        None
    }

    /// The typed value of `key`, `default` when unset, or `default` plus a recorded
    /// error when the value does not parse.
    pub(crate) fn get<T>(
        &mut self,
        key: &str,
        lookup: Lookup<'_>,
        default: T,
        parse: impl FnOnce(Raw<'_>) -> Result<T, String>,
    ) -> T {
        let Some((raw, origin)) = self.find(key, lookup) else {
            return default;
        };
        match parse(raw) {
            Ok(v) => v,
            Err(expected) => {
                self.push_error(key, raw, origin, expected);
                default
            }
        }
    }

    fn push_error(&mut self, key: &str, raw: Raw<'_>, origin: Origin, expected: String) {
        // A mistyped secret is still a secret: never echo it.
        let value = if is_secret_key(key) {
            format!("{REDACTED:?}")
        } else {
            raw.show()
        };
        self.errors.push(InvalidValue {
            key: key.to_owned(),
            origin,
            value,
            expected,
        });
    }

    /// Records an error for a value that parsed but failed a check involving other keys.
    pub(crate) fn reject(&mut self, key: &str, lookup: Lookup<'_>, expected: String) {
        if let Some((raw, origin)) = self.find(key, lookup) {
            self.push_error(key, raw, origin, expected);
        }
    }
}

/// Walks `a.b.c` through nested mappings; `null` counts as unset.
fn yaml_get<'v>(root: &'v serde_yaml::Mapping, key: &str) -> Option<&'v Yaml> {
    let mut parts = key.split('.');
    let mut cur = root.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_mapping()?.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}

// ---- Typed parsers. Each returns what the key expects when the value is wrong. ----

pub(crate) fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    const EXPECTED: &str = "a boolean (true, false, 1 or 0)";
    match raw {
        Raw::Yaml(Yaml::Bool(b)) => Ok(*b),
        Raw::Yaml(Yaml::Number(n)) => match n.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(EXPECTED.to_owned()),
        },
        Raw::Yaml(Yaml::String(s)) => parse_bool_text(s).ok_or_else(|| EXPECTED.to_owned()),
        Raw::Env(s) => parse_bool_text(s).ok_or_else(|| EXPECTED.to_owned()),
        Raw::Yaml(_) => Err(EXPECTED.to_owned()),
    }
}

fn parse_bool_text(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// An integer within `min..=max`.
pub(crate) fn integer(min: u64, max: u64) -> impl FnOnce(Raw<'_>) -> Result<u64, String> {
    move |raw| {
        let expected = || format!("an integer {min}-{max}");
        let n = match raw {
            Raw::Yaml(Yaml::Number(n)) => n.as_u64(),
            Raw::Yaml(Yaml::String(s)) => s.trim().parse().ok(),
            Raw::Env(s) => s.trim().parse().ok(),
            Raw::Yaml(_) => None,
        };
        n.filter(|n| (min..=max).contains(n)).ok_or_else(expected)
    }
}

/// A finite number accepted by `check`, described by `expected`.
pub(crate) fn float(expected: &'static str, check: fn(f64) -> bool) -> impl FnOnce(Raw<'_>) -> Result<f64, String> {
    move |raw| {
        let n = match raw {
            Raw::Yaml(Yaml::Number(n)) => n.as_f64(),
            Raw::Yaml(Yaml::String(s)) => s.trim().parse().ok(),
            Raw::Env(s) => s.trim().parse().ok(),
            Raw::Yaml(_) => None,
        };
        n.filter(|n| n.is_finite() && check(*n))
            .ok_or_else(|| expected.to_owned())
    }
}

pub(crate) fn string(raw: Raw<'_>) -> Result<String, String> {
    raw.scalar().ok_or_else(|| "a string".to_owned())
}

/// A string that may be empty to mean "unset".
pub(crate) fn optional_string(raw: Raw<'_>) -> Result<Option<String>, String> {
    string(raw).map(|s| Some(s).filter(|s| !s.trim().is_empty()))
}

pub(crate) fn optional_path(raw: Raw<'_>) -> Result<Option<PathBuf>, String> {
    optional_string(raw).map(|s| s.map(PathBuf::from))
}

pub(crate) fn path(raw: Raw<'_>) -> Result<PathBuf, String> {
    match optional_string(raw) {
        Ok(Some(s)) => Ok(PathBuf::from(s)),
        _ => Err("a non-empty file path".to_owned()),
    }
}

/// A list of strings: a YAML sequence, or space-separated text / a JSON array from the environment.
pub(crate) fn list(raw: Raw<'_>) -> Result<Vec<String>, String> {
    const EXPECTED: &str = "a list of strings (a YAML list, or space-separated in the environment)";
    let from_text = |s: &str| -> Result<Vec<String>, String> {
        let t = s.trim();
        if t.starts_with('[') {
            let v: Vec<serde_json::Value> = serde_json::from_str(t).map_err(|_| EXPECTED.to_owned())?;
            v.into_iter()
                .map(|e| match e {
                    serde_json::Value::String(s) => Ok(s),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    serde_json::Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(EXPECTED.to_owned()),
                })
                .collect()
        } else {
            Ok(t.split_whitespace().map(str::to_owned).collect())
        }
    };
    match raw {
        Raw::Env(s) => from_text(s),
        Raw::Yaml(Yaml::String(s)) => from_text(s),
        Raw::Yaml(Yaml::Sequence(items)) => items
            .iter()
            .map(|i| Raw::Yaml(i).scalar().ok_or_else(|| EXPECTED.to_owned()))
            .collect(),
        Raw::Yaml(_) => Err(EXPECTED.to_owned()),
    }
}

/// A map of endpoint URL to API keys (`additional_endpoints`): a YAML mapping, or a
/// JSON object in the environment, as the Agent reads it.
pub(crate) fn endpoint_map(raw: Raw<'_>) -> Result<BTreeMap<String, Vec<String>>, String> {
    const EXPECTED: &str =
        "a map of intake URL to a list of API keys, e.g. {\"https://app.datadoghq.eu\": [\"<api key>\"]}";
    let yaml: Yaml = match raw {
        Raw::Yaml(v @ Yaml::Mapping(_)) => v.clone(),
        _ => {
            let s = raw.text().ok_or_else(|| EXPECTED.to_owned())?;
            let json: serde_json::Value = serde_json::from_str(s).map_err(|_| EXPECTED.to_owned())?;
            serde_yaml::to_value(json).map_err(|_| EXPECTED.to_owned())?
        }
    };
    let Yaml::Mapping(map) = yaml else {
        return Err(EXPECTED.to_owned());
    };
    let mut out = BTreeMap::new();
    for (url, keys) in &map {
        let url = url
            .as_str()
            .filter(|u| u.contains("://"))
            .ok_or_else(|| EXPECTED.to_owned())?;
        let keys = match keys {
            Yaml::String(k) => vec![k.clone()],
            Yaml::Sequence(ks) => ks
                .iter()
                .map(|k| k.as_str().map(str::to_owned).ok_or_else(|| EXPECTED.to_owned()))
                .collect::<Result<_, _>>()?,
            _ => return Err(EXPECTED.to_owned()),
        };
        out.insert(url.trim_end_matches('/').to_owned(), keys);
    }
    Ok(out)
}

/// A duration: a number of seconds (`15`, `0.5`) or a number with a unit (`500ms`, `15s`, `2m`, `1h`),
/// between `min` and one day.
pub(crate) fn duration(min: Duration) -> impl FnOnce(Raw<'_>) -> Result<Duration, String> {
    move |raw| {
        let expected = || {
            format!(
                "a duration of at least {} and at most 1 day, in seconds (15) or with a unit (500ms, 15s, 2m, 1h)",
                format_duration(min)
            )
        };
        let secs = match raw {
            Raw::Yaml(Yaml::Number(n)) => n.as_f64(),
            Raw::Yaml(Yaml::String(s)) => parse_duration_text(s),
            Raw::Env(s) => parse_duration_text(s),
            Raw::Yaml(_) => None,
        };
        secs.filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .filter(|d| *d >= min)
            .ok_or_else(expected)
    }
}

fn parse_duration_text(s: &str) -> Option<f64> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    number.trim().parse::<f64>().ok().map(|n| n * scale)
}

/// Formats a duration the way [`duration`] reads it back (`15s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A size in bytes: an integer, or a number with a unit: `KB`/`MB`/`GB` (powers of
/// 1000) or `KiB`/`MiB`/`GiB` (powers of 1024), any case, optional space. `u64`
/// throughout, so sizes above 4 GiB are exact on 32-bit targets too.
pub(crate) fn byte_size(raw: Raw<'_>) -> Result<u64, String> {
    const EXPECTED: &str = "a size in bytes (e.g. 268435456) or with a unit (256MiB, 1GB, 512KiB)";
    match raw {
        Raw::Yaml(Yaml::Number(n)) => n.as_u64().ok_or_else(|| EXPECTED.to_owned()),
        _ => raw.text().and_then(parse_byte_size).ok_or_else(|| EXPECTED.to_owned()),
    }
}

fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(scale);
    }
    // Fractional sizes ("1.5GiB"): exact enough below 2^53, which covers any real limit.
    let n: f64 = number.parse().ok()?;
    let bytes = (n * scale as f64).round();
    (0.0..9_007_199_254_740_992.0).contains(&bytes).then_some(bytes as u64)
}

/// One of a fixed set of words (case-insensitive).
pub(crate) fn choice<T: Copy>(choices: &'static [(&'static str, T)]) -> impl FnOnce(Raw<'_>) -> Result<T, String> {
    move |raw| {
        let word = raw.scalar().map(|s| s.trim().to_ascii_lowercase());
        word.and_then(|w| choices.iter().find(|(name, _)| *name == w).map(|(_, v)| *v))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                format!("one of {}", names.join(", "))
            })
    }
}

/// A listener address `tcp://<ip>:<port>` (`localhost` means 127.0.0.1).
pub(crate) fn tcp_listen_address(raw: Raw<'_>) -> Result<SocketAddr, String> {
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

/// An IP address or `localhost` (hostnames are not resolved: a listener must not
/// depend on DNS at start).
pub(crate) fn bind_host(raw: Raw<'_>) -> Result<IpAddr, String> {
    const EXPECTED: &str = "an IP address or localhost";
    let s = raw.scalar().ok_or_else(|| EXPECTED.to_owned())?;
    let s = s.trim();
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse().map_err(|_| EXPECTED.to_owned())
}

/// Percentiles for `histogram_percentiles`: numbers in (0, 1), as YAML numbers or
/// strings ("0.95"), rounded to two decimals like the Agent.
pub(crate) fn percentiles(raw: Raw<'_>) -> Result<Vec<f64>, String> {
    const EXPECTED: &str = "a list of percentiles between 0 and 1 exclusive, e.g. [\"0.95\", \"0.99\"]";
    let items = list(raw).map_err(|_| EXPECTED.to_owned())?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let p: f64 = item.trim().parse().map_err(|_| EXPECTED.to_owned())?;
        let p = (p * 100.0).round() / 100.0;
        if !(p > 0.0 && p < 1.0) {
            return Err(EXPECTED.to_owned());
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}
