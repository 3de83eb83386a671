//! Secret redaction for anything that shows configuration to a person: the
//! `config` command, the privileged `/config` endpoint and error messages.
//!
//! Rules, applied to the effective configuration rendered as JSON:
//! - a key that names a secret (`api_key`, anything ending in `_key`, `token`,
//!   `password` or `secret`) has its non-empty string values replaced by `********`;
//! - `additional_endpoints` maps URLs to API keys: every key is replaced;
//! - any string that is a URL with credentials (`http://user:pass@proxy:3128`)
//!   keeps its user name and loses its password (a URL with only a user part,
//!   often a token, loses the user part).
//!
//! Empty values stay empty so that "unset" remains visible.

use serde_json::Value;

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

/// `scheme://user:password@host/...` → `scheme://user:********@host/...`. Strings
/// that are not URLs with credentials are returned unchanged.
pub fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &s[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
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

/// Redacts secrets in a JSON rendering of the configuration, in place.
pub fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) {
                    redact_all_strings(v);
                } else if key == "additional_endpoints" {
                    // URL → API keys: keep the URLs (minus credentials), hide every key.
                    if let Value::Object(endpoints) = v {
                        let redacted = std::mem::take(endpoints)
                            .into_iter()
                            .map(|(url, mut keys)| {
                                redact_all_strings(&mut keys);
                                (redact_url(&url), keys)
                            })
                            .collect();
                        *endpoints = redacted;
                    } else {
                        redact_all_strings(v);
                    }
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(s) => {
            let redacted = redact_url(s);
            if redacted != *s {
                *s = redacted;
            }
        }
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
    fn redaction_hides_keys_tokens_endpoint_keys_and_proxy_credentials() {
        let mut v = json!({
            "api_key": "0123456789abcdef",
            "hostname": "board",
            "empty_key": "",
            "additional_endpoints": {"https://u:p@intake.example": ["k1", "k2"]},
            "proxy": {"https": "http://bob:hunter2@proxy:3128", "no_proxy": ["localhost"]},
            "auth_token_file_path": "/etc/datadog-agent/auth_token",
        });
        redact_json(&mut v);
        assert_eq!(
            v,
            json!({
                "api_key": REDACTED,
                "hostname": "board",
                "empty_key": "",
                "additional_endpoints": {"https://u:********@intake.example": [REDACTED, REDACTED]},
                "proxy": {"https": "http://bob:********@proxy:3128", "no_proxy": ["localhost"]},
                "auth_token_file_path": "/etc/datadog-agent/auth_token",
            })
        );
        let text = v.to_string();
        for secret in ["0123456789abcdef", "hunter2", "k1", "k2"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}
