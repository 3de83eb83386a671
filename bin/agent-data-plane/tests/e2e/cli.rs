//! Version output, configuration errors, the `config` command.

use crate::harness::*;

#[test]
fn version_prints_v_version_dash_git_hash() {
    let out = run(&["version"], &[]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let line = stdout.trim_end();
    let hash = line
        .strip_prefix(&format!("v{}-", env!("CARGO_PKG_VERSION")))
        .expect(line);
    assert!(
        hash == "unknown" || ((7..=40).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line}"
    );
    assert_eq!(stdout.lines().count(), 1);
}

#[test]
fn version_reads_no_configuration() {
    let out = run(
        &["-c", "/nonexistent/datadog.yaml", "version", "--json"],
        &[("DD_DOGSTATSD_PORT", "abc")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["git_hash"].is_string() && json["build_time"].is_string());
    assert_eq!(json["target_arch"], std::env::consts::ARCH);
}

#[test]
fn an_invalid_value_names_the_key_and_fails() {
    let out = run(&["run"], &[("DD_DOGSTATSD_PORT", "abc")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "agent-data-plane: invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): \"abc\": expected an integer 0-65535"
    );
}

#[test]
fn a_missing_explicit_config_file_is_an_error_but_a_missing_default_is_not() {
    let out = run(&["-c", "/nonexistent/datadog.yaml", "config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/datadog.yaml does not exist"),
        "{}",
        text(&out.stderr)
    );
    // The default /etc/datadog-agent/datadog.yaml may or may not exist here; the
    // environment must still be read either way.
    let out = run(&["config"], &[("DD_DOGSTATSD_PORT", "9999")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("dogstatsd_port: 9999"));
}

#[test]
fn the_config_command_shows_file_and_environment_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datadog.yaml");
    std::fs::write(
        &file,
        "api_key: file-key-0123456789\nhostname: from-file\nlogs_enabled: true\ndogstatsd_port: 1234\n",
    )
    .unwrap();
    let out = run(
        &["--config", file.to_str().unwrap(), "config"],
        &[
            ("DD_DOGSTATSD_PORT", "4321"),
            ("DD_PROXY_HTTPS", "http://u:hunter2@proxy:3128"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no line for {key}:\n{stdout}"))
            .to_owned()
    };
    let file_origin = format!("# {}", file.display());
    assert!(line("api_key").starts_with("api_key: \"********\""), "{stdout}");
    assert!(line("api_key").ends_with(&file_origin), "{stdout}");
    assert!(line("hostname").starts_with("hostname: \"from-file\""), "{stdout}");
    assert!(
        line("dogstatsd_port").starts_with("dogstatsd_port: 4321 "),
        "environment wins: {stdout}"
    );
    assert!(line("dogstatsd_port").ends_with("# DD_DOGSTATSD_PORT"), "{stdout}");
    assert!(
        line("proxy.https").contains("\"http://u:********@proxy:3128\""),
        "{stdout}"
    );
    assert!(line("aggregate_context_limit").ends_with("# default"), "{stdout}");
    assert!(stdout.contains("\n# adp-dogstatsd\n"), "grouped by owner: {stdout}");
    assert!(
        !stdout.contains("file-key-0123456789") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    let (_, ignored) = stdout
        .split_once("# Set but not used by agent-data-plane (ignored):")
        .expect("the unread keys are listed");
    assert_eq!(
        ignored.trim(),
        "#   logs_enabled",
        "keys of other components are listed as ignored"
    );
}
