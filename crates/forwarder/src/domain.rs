//! How the Agent names hosts: the version-prefixed intake host, the API host
//! for key validation, and API keys shown in logs.
//!
//! - [`versioned_base`] — DataDog/datadog-agent `pkg/config/utils/endpoints.go`
//!   (`AddAgentVersionToDomain`, `ddURLRegexp`), applied by
//!   `comp/forwarder/defaultforwarder/impl/default_forwarder.go` to every
//!   forwarder domain.
//! - [`api_domain`] — `comp/forwarder/defaultforwarder/impl/forwarder_health.go`
//!   (`getAPIDomain`, `domainURLRegexp`).
//! - [`hide_key_except_last_chars`] — `pkg/util/scrubber/default.go`.
//!
//! The Agent matches with Go regular expressions; these are hand-written
//! matchers for the same languages (no regex engine in the binary).

/// `<maj>-<min>-<patch>` of an Agent version (`7.72.0-devel+git.1` →
/// `7-72-0`); `0-0-0` when it does not parse, as the Agent's zero version.
pub(crate) fn version_prefix(version: &str) -> String {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<Option<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [Some(major), Some(minor), Some(patch)] => format!("{major}-{minor}-{patch}"),
        _ => "0-0-0".to_owned(),
    }
}

/// The Agent's version-prefixed host: a base URL whose host (with its port,
/// as Go's `URL.Host`) matches `^app(\.mrf)?\.([a-z]{2,}\d{1,2}\.)?(datad(oghq|0g)\.(com|eu)|ddog-gov\.com)\.?$`
/// gets `app` replaced by `<maj>-<min>-<patch>-app.agent`
/// (`https://app.datadoghq.eu` → `https://7-72-0-app.agent.datadoghq.eu`);
/// any other URL (custom intake, proxy, port given) is returned unchanged.
pub(crate) fn versioned_base(base: &str, agent_version: &str) -> String {
    let Some(span) = adp_config::url_authority(base) else {
        return base.to_owned();
    };
    let authority_start = span.start;
    let authority = &base[span];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host = &authority[host_start..];
    if !is_versionable_host(host) {
        return base.to_owned();
    }
    let at = authority_start + host_start;
    format!(
        "{}{}-app.agent{}",
        &base[..at],
        version_prefix(agent_version),
        &base[at + "app".len()..]
    )
}

fn is_versionable_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("app.") else {
        return false;
    };
    let rest = rest.strip_prefix("mrf.").unwrap_or(rest);
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    is_dd_domain(rest)
        || rest
            .split_once('.')
            .is_some_and(|(dc, d)| is_dc_label(dc) && is_dd_domain(d))
}

/// `datad(oghq|0g)\.(com|eu)|ddog-gov\.com`.
fn is_dd_domain(d: &str) -> bool {
    matches!(
        d,
        "datadoghq.com" | "datadoghq.eu" | "datad0g.com" | "datad0g.eu" | "ddog-gov.com"
    )
}

/// `[a-z]{2,}\d{1,2}` (a datacenter label such as `us3` or `ap1`).
fn is_dc_label(label: &str) -> bool {
    let letters = label.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &label[letters..];
    letters >= 2 && (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Where the Agent validates API keys for a forwarder domain: the leftmost
/// match of `([a-z]{2,}\d{1,2}\.)?(datadoghq\.[a-z]+|ddog-gov\.com)\.?$` in
/// the URL, without its trailing dot, behind `https://api.`
/// (`https://app.us3.datadoghq.com` → `https://api.us3.datadoghq.com`); a URL
/// with no match (custom intake, a port) is used as it is.
pub(crate) fn api_domain(base: &str) -> String {
    for (start, _) in base.char_indices() {
        let tail = &base[start..];
        if matches_api_site(tail) || tail.strip_suffix('.').is_some_and(matches_api_site) {
            return format!("https://api.{}", tail.strip_suffix('.').unwrap_or(tail));
        }
    }
    base.to_owned()
}

fn matches_api_site(s: &str) -> bool {
    is_api_domain(s)
        || s.split_once('.')
            .is_some_and(|(dc, d)| is_dc_label(dc) && is_api_domain(d))
}

/// `datadoghq\.[a-z]+|ddog-gov\.com`.
fn is_api_domain(d: &str) -> bool {
    d == "ddog-gov.com"
        || d.strip_prefix("datadoghq.")
            .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_lowercase()))
}

/// An API key for a log line: `*` for all but the last 1 to 4 characters,
/// more shown for longer keys (`********` for 4 characters or fewer).
pub(crate) fn hide_key_except_last_chars(key: &str) -> String {
    let len = key.len();
    if len <= 4 {
        return "********".to_owned();
    }
    // Go's bits.Len(len) - 2, clamped to 1..=4.
    let bits = usize::BITS - len.leading_zeros();
    let visible = (bits.saturating_sub(2)).clamp(1, 4) as usize;
    match key.get(len - visible..) {
        Some(tail) => format!("{}{tail}", "*".repeat(len - visible)),
        None => "********".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_versions_become_dash_separated_prefixes() {
        for (version, prefix) in [
            ("7.72.0", "7-72-0"),
            ("7.72.0-devel+git.1.abc", "7-72-0"),
            ("0.1.0", "0-1-0"),
            ("garbage", "0-0-0"),
            ("7.72", "0-0-0"),
        ] {
            assert_eq!(version_prefix(version), prefix, "{version}");
        }
    }

    #[test]
    fn only_the_agents_app_hosts_get_the_version_prefix() {
        let v = "7.72.0";
        for (base, expected) in [
            ("https://app.datadoghq.com", "https://7-72-0-app.agent.datadoghq.com"),
            ("https://app.datadoghq.eu", "https://7-72-0-app.agent.datadoghq.eu"),
            (
                "https://app.us3.datadoghq.com",
                "https://7-72-0-app.agent.us3.datadoghq.com",
            ),
            (
                "https://app.ap1.datadoghq.com",
                "https://7-72-0-app.agent.ap1.datadoghq.com",
            ),
            ("https://app.ddog-gov.com", "https://7-72-0-app.agent.ddog-gov.com"),
            ("https://app.datad0g.com", "https://7-72-0-app.agent.datad0g.com"),
            (
                "https://app.mrf.datadoghq.com",
                "https://7-72-0-app.agent.mrf.datadoghq.com",
            ),
            ("https://app.datadoghq.com.", "https://7-72-0-app.agent.datadoghq.com."),
            (
                "http://app.datadoghq.com/prefix",
                "http://7-72-0-app.agent.datadoghq.com/prefix",
            ),
        ] {
            assert_eq!(versioned_base(base, v), expected, "{base}");
        }
        for base in [
            "https://app.datadoghq.com:443",
            "https://intake.datadoghq.com",
            "https://api.datadoghq.com",
            "https://app.example.com",
            "https://myapp.datadoghq.com",
            "https://app.us345.datadoghq.com",
            "https://app.u3.datadoghq.com",
            "https://app.datadoghq.org",
            "https://APP.datadoghq.com",
            "http://127.0.0.1:8080",
            "no scheme",
        ] {
            assert_eq!(versioned_base(base, v), base, "{base}");
        }
    }

    #[test]
    fn keys_are_validated_at_the_api_host_of_datadog_sites_and_at_custom_urls_as_they_are() {
        for (base, expected) in [
            ("https://app.datadoghq.com", "https://api.datadoghq.com"),
            ("https://app.datadoghq.eu", "https://api.datadoghq.eu"),
            ("https://app.us3.datadoghq.com", "https://api.us3.datadoghq.com"),
            ("https://app.ddog-gov.com", "https://api.ddog-gov.com"),
            ("https://app.datadoghq.com.", "https://api.datadoghq.com"),
            ("http://app.datadoghq.com", "https://api.datadoghq.com"),
            // The Agent's pattern is not anchored at the start of the host.
            ("https://intake.notdatadoghq.com", "https://api.datadoghq.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://app.datadoghq.com:443", "https://app.datadoghq.com:443"),
            ("https://app.datad0g.com", "https://app.datad0g.com"),
            ("https://proxy.example/intake", "https://proxy.example/intake"),
        ] {
            assert_eq!(api_domain(base), expected, "{base}");
        }
    }

    #[test]
    fn keys_in_logs_show_only_their_last_characters() {
        for (key, shown) in [
            ("abcd", "********"),
            ("abcde", "****e"),
            ("abcdefgh", "******gh"),
            ("0123456789abcdef", "*************def"),
        ] {
            assert_eq!(hide_key_except_last_chars(key), shown, "{key}");
        }
        let key = "0123456789abcdef0123456789abcdef";
        assert_eq!(hide_key_except_last_chars(key), format!("{}cdef", "*".repeat(28)));
    }
}
