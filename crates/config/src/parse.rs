//! Typed parsers for [`Reader::get`](crate::Reader::get): each turns a [`Raw`]
//! value into a typed one, or returns what the key expects (which the error
//! message shows after "expected").
//!
//! Environment values are strings and are read the way the Agent reads them:
//! booleans are `true`/`false`/`1`/`0` (any case), lists are space-separated
//! (`DD_HISTOGRAM_AGGREGATES="max avg"`) or a JSON array, maps are JSON objects.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value as Yaml;

use crate::source::Raw;

/// A boolean: `true`/`false`/`1`/`0` in any case.
pub fn boolean(raw: Raw<'_>) -> Result<bool, String> {
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

/// An integer within `min..=max`, as the type of the key's default (`u16` for a
/// port, `u64` for a count that may pass 4 GiB on 32-bit targets).
pub fn integer<T: TryFrom<u64>>(min: u64, max: u64) -> impl FnOnce(Raw<'_>) -> Result<T, String> {
    move |raw| {
        let expected = || format!("an integer {min}-{max}");
        let n = match raw {
            Raw::Yaml(Yaml::Number(n)) => n.as_u64(),
            Raw::Yaml(Yaml::String(s)) => s.trim().parse().ok(),
            Raw::Env(s) => s.trim().parse().ok(),
            Raw::Yaml(_) => None,
        };
        n.filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(expected)
    }
}

/// A finite number accepted by `check`, described by `expected`.
pub fn float(expected: &'static str, check: fn(f64) -> bool) -> impl FnOnce(Raw<'_>) -> Result<f64, String> {
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

/// A scalar as text (YAML numbers and booleans as the Agent casts them).
pub fn string(raw: Raw<'_>) -> Result<String, String> {
    raw.scalar().ok_or_else(|| "a string".to_owned())
}

/// A string that may be empty to mean "unset".
pub fn optional_string(raw: Raw<'_>) -> Result<Option<String>, String> {
    string(raw).map(|s| Some(s).filter(|s| !s.trim().is_empty()))
}

/// A path that may be empty to mean "unset".
pub fn optional_path(raw: Raw<'_>) -> Result<Option<PathBuf>, String> {
    optional_string(raw).map(|s| s.map(PathBuf::from))
}

/// A non-empty path.
pub fn path(raw: Raw<'_>) -> Result<PathBuf, String> {
    match optional_string(raw) {
        Ok(Some(s)) => Ok(PathBuf::from(s)),
        _ => Err("a non-empty file path".to_owned()),
    }
}

/// A list of strings: a YAML sequence, or space-separated text / a JSON array from the environment.
pub fn list(raw: Raw<'_>) -> Result<Vec<String>, String> {
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

/// A duration: a number of seconds (`15`, `0.5`) or a number with a unit (`500ms`, `15s`, `2m`, `1h`),
/// between `min` and one day.
pub fn duration(min: Duration) -> impl FnOnce(Raw<'_>) -> Result<Duration, String> {
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
pub fn byte_size(raw: Raw<'_>) -> Result<u64, String> {
    const EXPECTED: &str = "a size in bytes (e.g. 268435456) or with a unit (256MiB, 1GB, 512KiB)";
    match raw {
        Raw::Yaml(Yaml::Number(n)) => n.as_u64().ok_or_else(|| EXPECTED.to_owned()),
        _ => raw.text().and_then(parse_byte_size).ok_or_else(|| EXPECTED.to_owned()),
    }
}

/// A [`byte_size`] above zero.
pub fn positive_size(raw: Raw<'_>) -> Result<u64, String> {
    byte_size(raw).and_then(|n| {
        if n == 0 {
            Err("a size in bytes > 0".to_owned())
        } else {
            Ok(n)
        }
    })
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
pub fn choice<T: Copy>(choices: &'static [(&'static str, T)]) -> impl FnOnce(Raw<'_>) -> Result<T, String> {
    move |raw| {
        let word = raw.scalar().map(|s| s.trim().to_ascii_lowercase());
        word.and_then(|w| choices.iter().find(|(name, _)| *name == w).map(|(_, v)| *v))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                format!("one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<T>(parse: impl FnOnce(Raw<'_>) -> Result<T, String>, text: &str) -> Result<T, String> {
        parse(Raw::Env(text))
    }

    fn yaml<T>(parse: impl FnOnce(Raw<'_>) -> Result<T, String>, text: &str) -> Result<T, String> {
        let v: Yaml = serde_yaml::from_str(text).unwrap();
        parse(Raw::Yaml(&v))
    }

    #[test]
    fn booleans_accept_true_false_one_and_zero_in_any_case() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(env(boolean, text), Ok(want), "{text}");
        }
        assert_eq!(yaml(boolean, "1"), Ok(true));
        assert_eq!(yaml(boolean, "\"true\""), Ok(true));
        assert_eq!(env(boolean, "yes"), Err("a boolean (true, false, 1 or 0)".to_owned()));
    }

    #[test]
    fn integers_are_range_checked_and_typed_by_the_caller() {
        assert_eq!(env(integer::<u16>(0, 65535), "8125"), Ok(8125));
        assert_eq!(
            yaml(integer::<u16>(0, 65535), "70000"),
            Err("an integer 0-65535".to_owned())
        );
        assert_eq!(env(integer::<u64>(1, u64::MAX), "4000000000"), Ok(4_000_000_000));
        // A range wider than the type is still refused, never truncated.
        assert!(env(integer::<u8>(0, 1000), "300").is_err());
    }

    #[test]
    fn lists_come_from_yaml_sequences_or_space_separated_or_json_environment_values() {
        assert_eq!(env(list, "max  min sum").unwrap(), ["max", "min", "sum"]);
        assert_eq!(env(list, r#"["count", "sum"]"#).unwrap(), ["count", "sum"]);
        assert_eq!(yaml(list, "[a, 1, true]").unwrap(), ["a", "1", "true"]);
        assert!(yaml(list, "{a: b}").is_err());
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        for (text, want) in [
            ("2", 2000),
            ("0.5", 500),
            ("250ms", 250),
            ("3s", 3000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            assert_eq!(
                env(duration(Duration::from_millis(10)), text),
                Ok(Duration::from_millis(want)),
                "{text}"
            );
        }
        assert_eq!(yaml(duration(Duration::ZERO), "0"), Ok(Duration::ZERO));
        for bad in ["0", "-1", "2d", "1ms", "forever"] {
            let e = env(duration(Duration::from_millis(10)), bad).unwrap_err();
            assert!(e.starts_with("a duration of at least 10ms"), "{bad}: {e}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(15)), "15s");
    }

    #[test]
    fn byte_sizes_take_units_and_stay_exact_above_four_gibibytes() {
        for (text, want) in [
            ("268435456", 268_435_456u64),
            ("256MiB", 256 << 20),
            ("256 mb", 256_000_000),
            ("1.5GiB", 3 << 29),
            ("8GiB", 8 << 30),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(env(byte_size, text), Ok(want), "{text}");
        }
        for bad in ["-1", "12 parsecs", "99999999999999999999", "20000000TiB"] {
            assert!(env(byte_size, bad).is_err(), "{bad}");
        }
        assert_eq!(env(positive_size, "0"), Err("a size in bytes > 0".to_owned()));
    }

    #[test]
    fn choices_are_case_insensitive_and_listed_when_wrong() {
        const LEVELS: &[(&str, u8)] = &[("low", 1), ("high", 2)];
        assert_eq!(env(choice(LEVELS), " HIGH "), Ok(2));
        assert_eq!(env(choice(LEVELS), "mid"), Err("one of low, high".to_owned()));
    }

    #[test]
    fn optional_strings_and_paths_treat_empty_as_unset() {
        assert_eq!(env(optional_string, "  "), Ok(None));
        assert_eq!(
            env(optional_path, "/run/x.sock"),
            Ok(Some(PathBuf::from("/run/x.sock")))
        );
        assert!(env(path, " ").is_err());
    }
}
