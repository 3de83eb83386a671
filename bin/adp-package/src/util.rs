//! Small deterministic helpers: sha256 digests, RFC 3339 timestamps from
//! `SOURCE_DATE_EPOCH`, and canonical (sorted-key) JSON.
//!
//! JSON is written by [`canonical_json`] rather than `serde_json::to_vec` so
//! that the bytes do not depend on whether another crate in the build enables
//! `serde_json/preserve_order` (feature unification would silently reorder
//! keys and change every digest).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC).
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days, for non-negative day counts.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Serialises `value` with object keys sorted byte-wise; `pretty` indents by
/// two spaces and ends with a newline, compact form has no whitespace at all.
pub fn canonical_json(value: &Value, pretty: bool) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, value, pretty, 0);
    if pretty {
        out.push('\n');
    }
    out.into_bytes()
}

fn write_value(out: &mut String, value: &Value, pretty: bool, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(out, item, pretty, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_value(out, &map[key], pretty, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
        // Scalars, `[]` and `{}`: serde_json's own encoding is canonical.
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn json_keys_are_sorted_at_every_depth() {
        let v = json!({"b": {"z": 1, "a": [1, {"y": null, "x": "q"}]}, "a": {}});
        assert_eq!(
            String::from_utf8(canonical_json(&v, false)).unwrap(),
            r#"{"a":{},"b":{"a":[1,{"x":"q","y":null}],"z":1}}"#
        );
        let pretty = String::from_utf8(canonical_json(&v, true)).unwrap();
        let back: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back, v);
        assert!(pretty.ends_with("}\n"));
    }

    #[test]
    fn sha256_of_the_empty_string() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
