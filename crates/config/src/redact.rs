//! Secret redaction for anything that shows configuration to a person: the
//! `config` command, the privileged `/config` endpoint and error messages.
//!
//! Each key declares how it is shown ([`Redact`]); a key whose name says it is
//! a secret (`api_key`, anything ending in `_key`, `token`, `password` or
//! `secret`) is redacted even if its declaration forgot to say so:
//! - a secret has its non-empty string values replaced by `********`;
//! - a map of URL to secrets (`additional_endpoints`) keeps its URLs and loses
//!   every secret;
//! - any string that is a URL with credentials (`http://user:pass@proxy:3128`)
//!   keeps its user name and loses its password (a URL with only a user part,
//!   often a token, loses the user part).
//!
//! Empty values stay empty so that "unset" remains visible.

use serde_json::Value;

use crate::key::Redact;

/// What a redacted secret is shown as.
pub const REDACTED: &str = "********";

/// Whether a configuration key holds a secret. Paths to secrets (`auth_token_file_path`) are not secrets.
pub fn is_secret_key(key: &str) -> bool {
    let leaf = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    leaf == "key"
        || leaf.ends_with("_key")
        || leaf.ends_with("token")
        || leaf.ends_with("password")
        || leaf.ends_with("secret")
}

/// Where the authority (`[userinfo@]host[:port]`) of `scheme://authority/...`
/// is in `url`: from after `://` to the first `/`, `?` or `#`. `None` without `://`.
pub fn url_authority(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(start..start + len)
}

/// `scheme://user:password@host/...` → `scheme://user:********@host/...`. Strings
/// that are not URLs with credentials are returned unchanged.
pub fn redact_url(s: &str) -> String {
    let Some(span) = url_authority(s) else {
        return s.to_owned();
    };
    let authority_start = span.start;
    let authority = &s[span];
    let Some(at) = authority.rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted_userinfo = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!(
        "{}{}{}",
        &s[..authority_start],
        redacted_userinfo,
        &s[authority_start + at..]
    )
}

/// `value` as it may be shown for a key redacted as `mode`. URL credentials are
/// hidden whatever the mode.
pub fn redact_value(mut value: Value, mode: Redact) -> Value {
    match mode {
        Redact::No => redact_urls(&mut value),
        Redact::Secret => redact_all_strings(&mut value),
        Redact::MapValues => {
            if let Value::Object(map) = &mut value {
                let redacted = std::mem::take(map)
                    .into_iter()
                    .map(|(url, mut secrets)| {
                        redact_all_strings(&mut secrets);
                        (redact_url(&url), secrets)
                    })
                    .collect();
                *map = redacted;
            } else {
                redact_all_strings(&mut value);
            }
        }
    }
    value
}

fn redact_urls(value: &mut Value) {
    match value {
        Value::String(s) => {
            let redacted = redact_url(s);
            if redacted != *s {
                *s = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_urls),
        Value::Object(map) => map.values_mut().for_each(redact_urls),
        _ => {}
    }
}

fn redact_all_strings(value: &mut Value) {
    match value {
        Value::String(s) if !s.is_empty() => *s = REDACTED.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(redact_all_strings),
        Value::Object(map) => map.values_mut().for_each(redact_all_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_recognised_by_their_leaf_name() {
        for key in [
            "api_key",
            "app_key",
            "proxy.password",
            "cluster_agent.auth_token",
            "some_secret",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "auth_token_file_path",
            "ipc_cert_file_path",
            "hostname",
            "aggregate_context_limit",
            "keys",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn the_authority_ends_at_the_path_query_or_fragment() {
        for (url, authority) in [
            ("http://u:p@proxy:3128/x", Some("u:p@proxy:3128")),
            ("https://app.datadoghq.eu?q=1", Some("app.datadoghq.eu")),
            ("https://h#f", Some("h")),
            ("https://", Some("")),
            ("no scheme", None),
        ] {
            assert_eq!(url_authority(url).map(|r| &url[r]), authority, "{url}");
        }
    }

    #[test]
    fn url_passwords_are_hidden_and_user_names_kept() {
        assert_eq!(
            redact_url("http://bob:hunter2@proxy:3128"),
            "http://bob:********@proxy:3128"
        );
        assert_eq!(redact_url("https://tok3n@proxy/x?y=1"), "https://********@proxy/x?y=1");
        assert_eq!(redact_url("http://proxy:3128/a@b"), "http://proxy:3128/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn redaction_hides_secrets_endpoint_keys_and_url_credentials() {
        assert_eq!(redact_value(json!("0123456789abcdef"), Redact::Secret), json!(REDACTED));
        assert_eq!(
            redact_value(json!(""), Redact::Secret),
            json!(""),
            "unset stays visible"
        );
        assert_eq!(
            redact_value(json!({"https://u:p@intake.example": ["k1", "k2"]}), Redact::MapValues),
            json!({"https://u:********@intake.example": [REDACTED, REDACTED]})
        );
        assert_eq!(
            redact_value(json!(["http://bob:hunter2@proxy:3128", "localhost"]), Redact::No),
            json!(["http://bob:********@proxy:3128", "localhost"])
        );
    }
}
