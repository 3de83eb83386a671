//! Secret resolution against real backend scripts (shell, in a temporary
//! directory, with the modes the Agent's checks look at).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::*;
use crate::{ConfigError, ConfigFile, Effective, Reader};

/// Reads the keys these tests look at, as their owners would.
fn load(reader: Result<Reader, ConfigError>) -> Result<(Effective, String, String, Option<String>), ConfigError> {
    let mut r = reader?;
    let api_key = r.get(key!("api_key"), String::new(), parse::string);
    let hostname = r.get(key!("hostname"), String::new(), parse::string);
    let proxy = r.get(key!("proxy.https"), None, parse::optional_string);
    let _: u16 = r.get(key!("dogstatsd_port"), 8125, parse::integer(0, 65535));
    Ok((r.finish()?, api_key, hostname, proxy))
}

/// Environment only, secrets resolved (what `Reader::open` does with no file).
fn from_env(dir: &Path, env: Environment) -> Result<Reader, ConfigError> {
    let mut r = Reader::from_env(dir, env);
    r.resolve_secrets()?;
    Ok(r)
}

/// Tests run one at a time: a script being written must not be open for
/// writing while another test forks (its child would inherit the descriptor
/// and the exec of the script fail with "Text file busy").
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes an executable `#!/bin/sh` script with `mode`.
fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A backend that records its stdin and arguments, counts its runs, and
/// answers `answer` (a JSON document).
fn recording_backend(dir: &Path, answer: &str) -> SecretBackend {
    let d = dir.display();
    let body =
        format!("cat > '{d}/stdin.json'\necho \"$@\" > '{d}/args'\necho run >> '{d}/runs'\nprintf '%s' '{answer}'");
    SecretBackend::new(script(dir, "backend.sh", &body, 0o700).display().to_string())
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map_or(0, |s| s.lines().count())
}

fn yaml(text: &str) -> Yaml {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn enc_values_are_recognised_as_the_agent_does() {
    assert_eq!(enc_handle("ENC[api_key]"), Some("api_key"));
    assert_eq!(enc_handle(" \tENC[a b]\t "), Some("a b"));
    assert_eq!(enc_handle("ENC[]"), Some(""));
    assert_eq!(enc_handle("ENC[x"), None);
    assert_eq!(enc_handle("prefix ENC[x]"), None);
    assert_eq!(enc_handle("\nENC[x]"), None, "only spaces and tabs are trimmed");
}

#[test]
fn every_handle_is_resolved_in_one_call_with_the_agent_payload() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut backend = recording_backend(
        dir.path(),
        r#"{"api":{"value":"0123456789abcdef"},"extra":{"value":"k-extra"},"unused":{"value":"x"}}"#,
    );
    backend.arguments = vec!["--profile".into(), "board 7".into()];
    let mut doc = yaml(
        r#"
api_key: ENC[api]
hostname: plain
additional_endpoints:
  "https://app.datadoghq.eu": ["ENC[extra]", "plain-key", " ENC[api] "]
ENC[api]: a key is never resolved
nested: {deeper: {list: [1, true, "ENC[extra]"]}}
"#,
    );
    let report = resolve_secrets(&mut doc, &backend).unwrap();
    assert_eq!(runs(dir.path()), 1, "one call for every handle");
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stdin.json")).unwrap()).unwrap();
    assert_eq!(
        stdin,
        serde_json::json!({"version": "1.1", "secrets": ["api", "extra"]}),
        "each handle once, in order of first use"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args")).unwrap(),
        "--profile board 7\n"
    );
    let expected = yaml(
        r#"
api_key: "0123456789abcdef"
hostname: plain
additional_endpoints:
  "https://app.datadoghq.eu": ["k-extra", "plain-key", "0123456789abcdef"]
ENC[api]: a key is never resolved
nested: {deeper: {list: [1, true, "k-extra"]}}
"#,
    );
    assert_eq!(doc, expected);
    assert_eq!(report.handles, ["api", "extra"]);
    let locations: Vec<&str> = report.locations.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        locations,
        [
            "api_key",
            "additional_endpoints.https://app.datadoghq.eu.0",
            "additional_endpoints.https://app.datadoghq.eu.2",
            "nested.deeper.list.2"
        ]
    );
    let messages: Vec<&str> = report.log.iter().map(|l| l.message.as_str()).collect();
    assert!(
        messages
            .contains(&r#"calling secret_backend_command with payload: '{"secrets":["api","extra"],"version":"1.1"}'"#),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"Secret 'api' was successfully resolved"),
        "{messages:#?}"
    );
    for line in &report.log {
        assert!(!line.message.contains("0123456789abcdef") && !line.message.contains("k-extra"));
    }
    assert!(!format!("{report:?}").contains("0123456789abcdef"));
    assert_eq!(
        report.redact("key=0123456789abcdef, other=k-extra"),
        "key=********, other=********"
    );
}

#[test]
fn a_missing_handle_fails_the_whole_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backend = recording_backend(dir.path(), r#"{"a":{"value":"va"}}"#);
    let mut doc = yaml("api_key: ENC[a]\nhostname: ENC[b]\n");
    let before = doc.clone();
    let err = resolve_secrets(&mut doc, &backend).unwrap_err();
    assert_eq!(err, SecretError::Missing { handle: "b".into() });
    assert!(err
        .to_string()
        .starts_with("secret handle 'b' was not resolved by the secret_backend_command"));
    assert_eq!(doc, before, "nothing is substituted when the batch fails");
}

#[test]
fn an_error_field_or_an_empty_value_fails_the_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backend = recording_backend(
        dir.path(),
        r#"{"a":{"value":"va"},"b":{"error":"permission denied by vault"}}"#,
    );
    let err = resolve_secrets(&mut yaml("x: ENC[a]\ny: ENC[b]\n"), &backend).unwrap_err();
    assert_eq!(
        err.to_string(),
        "an error occurred while resolving 'b': permission denied by vault"
    );
    let backend = recording_backend(dir.path(), r#"{"a":{"value":""}}"#);
    let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap_err();
    assert_eq!(err, SecretError::Empty { handle: "a".into() });
    assert!(err.to_string().starts_with("resolved secret for 'a' is empty"));
    let backend = recording_backend(dir.path(), "not json");
    let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("could not unmarshal 'secret_backend_command' output: "),
        "{err}"
    );
}

#[test]
fn trailing_line_breaks_are_removed_only_when_asked() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut backend = recording_backend(dir.path(), r#"{"a":{"value":"va\r\n"}}"#);
    let mut doc = yaml("x: ENC[a]\n");
    resolve_secrets(&mut doc, &backend).unwrap();
    assert_eq!(doc, yaml("x: \"va\\r\\n\"\n"));
    backend.remove_trailing_line_break = true;
    let mut doc = yaml("x: ENC[a]\n");
    resolve_secrets(&mut doc, &backend).unwrap();
    assert_eq!(doc, yaml("x: va\n"));
}

#[test]
fn a_slow_backend_is_killed_at_the_timeout_with_its_children() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    let body = format!("sleep 3 && touch '{}' &\nsleep 30", marker.display());
    let mut backend = SecretBackend::new(script(dir.path(), "slow.sh", &body, 0o700).display().to_string());
    backend.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(
        err.to_string(),
        format!("error while running '{}': command timeout", backend.command)
    );
    // The background child was in the killed group: it never gets to touch the file.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!marker.exists(), "a child of the backend outlived the timeout");
}

#[test]
fn output_beyond_the_maximum_on_either_stream_fails() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for (name, redirect) in [("stdout.sh", ""), ("stderr.sh", " >&2")] {
        let body = format!("head -c 5000 /dev/zero | tr '\\000' a{redirect}\nprintf '{{}}'");
        let mut backend = SecretBackend::new(script(dir.path(), name, &body, 0o700).display().to_string());
        backend.output_max_size = 1000;
        let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error while running '{}': command output was too long: exceeded 1000 bytes",
                backend.command
            ),
            "{name}"
        );
    }
    // At the limit exactly is fine.
    let answer = r#"{"a":{"value":"v"}}"#;
    let mut backend = recording_backend(dir.path(), answer);
    backend.output_max_size = answer.len() as u64;
    resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap();
}

#[test]
fn a_failing_backend_reports_its_exit_status_and_stderr() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let body = "cat > /dev/null\necho 'vault is sealed' >&2\nexit 3";
    let backend = SecretBackend::new(script(dir.path(), "fail.sh", body, 0o700).display().to_string());
    let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "error while running '{}': exit status 3 (secret_backend_command stderr: vault is sealed)",
            backend.command
        )
    );
    let missing = SecretBackend::new(dir.path().join("absent").display().to_string());
    let err = resolve_secrets(&mut yaml("x: ENC[a]\n"), &missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("invalid executable '{}': can't stat it: ", missing.command)),
        "{err}"
    );
}

#[test]
fn a_command_file_others_or_the_group_can_use_is_refused_before_it_runs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let answer = r#"{"a":{"value":"va"}}"#;
    let body = format!("touch '{}/ran'\nprintf '%s' '{answer}'", dir.path().display());
    let check = |mode: u32, allow_group: bool| {
        let path = script(dir.path(), &format!("b{mode:o}{allow_group}.sh"), &body, mode);
        let mut backend = SecretBackend::new(path.display().to_string());
        backend.allow_group_exec_perm = allow_group;
        let _ = std::fs::remove_file(dir.path().join("ran"));
        let result = resolve_secrets(&mut yaml("x: ENC[a]\n"), &backend);
        let ran = dir.path().join("ran").exists();
        (result.map(|_| ()), ran, path.display().to_string())
    };
    for (mode, allow) in [
        (0o777, false),
        (0o707, false),
        (0o750, false),
        (0o710, false),
        (0o701, false),
    ] {
        let (result, ran, path) = check(mode, allow);
        let err = result.unwrap_err();
        assert_eq!(
            err,
            SecretError::GroupOrOthers {
                path: path.clone(),
                mode
            },
            "{mode:o}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "invalid executable '{path}', 'group' or 'others' have rights on it"
            )),
            "{text}"
        );
        assert!(text.contains("chmod 700"), "{text}");
        assert!(!ran, "{mode:o}: refused before running");
    }
    for mode in [0o777, 0o720, 0o701, 0o704] {
        let (result, ran, path) = check(mode, true);
        let text = result.unwrap_err().to_string();
        assert!(
            text.starts_with(&format!(
                "invalid executable '{path}', 'others' have rights on it or 'group' has write permissions on it"
            )),
            "{mode:o}: {text}"
        );
        assert!(!ran);
    }
    for (mode, allow) in [(0o700, false), (0o500, false), (0o750, true), (0o710, true)] {
        let (result, ran, _) = check(mode, allow);
        result.unwrap();
        assert!(ran, "{mode:o} allow_group={allow}");
    }
    // No execute bit: refused by access(X_OK), root included.
    let (result, ran, path) = check(0o600, false);
    let text = result.unwrap_err().to_string();
    assert!(
        text.starts_with(&format!("invalid executable '{path}': can't access it: ")),
        "{text}"
    );
    assert!(!ran);
}

#[test]
fn environment_values_and_json_in_them_are_resolved_too() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backend = recording_backend(dir.path(), r#"{"k":{"value":"from-env"},"e":{"value":"extra-key"}}"#);
    let mut env = Environment::from_pairs([
        ("DD_API_KEY", "ENC[k]"),
        ("DD_ADDITIONAL_ENDPOINTS", r#"{"https://x.example": ["ENC[e]"]}"#),
        ("DD_SECRET_BACKEND_ARGUMENTS", "ENC[not-resolved]"),
        ("OTHER", "ENC[not-resolved]"),
    ]);
    let report = resolve_all(None, &mut env, &backend).unwrap();
    assert_eq!(env.get("DD_API_KEY"), Some("from-env"));
    assert_eq!(
        env.get("DD_ADDITIONAL_ENDPOINTS"),
        Some(r#"{"https://x.example":["extra-key"]}"#)
    );
    assert_eq!(env.get("DD_SECRET_BACKEND_ARGUMENTS"), Some("ENC[not-resolved]"));
    assert_eq!(env.get("OTHER"), Some("ENC[not-resolved]"));
    assert_eq!(report.handles, ["e", "k"], "variables are read in name order");
    assert_eq!(runs(dir.path()), 1);
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("datadog.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_configuration_is_loaded_with_resolved_secrets_that_stay_redacted() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backend = recording_backend(
        dir.path(),
        r#"{"api":{"value":"0123456789abcdef0123456789abcdef"},"host":{"value":"board-from-vault"},"proxy":{"value":"http://bob:hunter2@proxy:3128"}}"#,
    );
    let path = write_config(
        dir.path(),
        &format!(
            "api_key: ENC[api]\nhostname: ENC[host]\nproxy:\n  https: ENC[proxy]\nsecret_backend_command: {}\nsecret_backend_timeout: 5\n",
            backend.command
        ),
    );
    let (config, api_key, hostname, proxy) =
        load(Reader::open(&ConfigFile::explicit(&path), Environment::default())).unwrap();
    assert_eq!(api_key, "0123456789abcdef0123456789abcdef");
    assert_eq!(hostname, "board-from-vault");
    assert_eq!(proxy.as_deref(), Some("http://bob:hunter2@proxy:3128"));
    let shown = format!("{}{}", config.to_annotated_yaml(), config.to_json());
    for secret in ["0123456789abcdef", "board-from-vault", "hunter2"] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    assert!(shown.contains("hostname: \"********\""), "{shown}");
    let log: Vec<&str> = config.secrets().log.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(log.first(), Some(&"Starting to resolve secrets"));
    assert_eq!(log.last(), Some(&"Finished resolving secrets"));
    for line in &log {
        for secret in ["0123456789abcdef", "board-from-vault", "hunter2"] {
            assert!(!line.contains(secret), "{secret} in log line {line}");
        }
    }
    assert!(!format!("{:?}", config.secrets()).contains("hunter2"));
}

#[test]
fn a_secret_that_fails_a_key_check_is_not_repeated_in_the_error() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backend = recording_backend(dir.path(), r#"{"port":{"value":"port-secret-xyz"}}"#);
    let env = Environment::from_pairs([
        ("DD_DOGSTATSD_PORT", "ENC[port]"),
        ("DD_SECRET_BACKEND_COMMAND", backend.command.as_str()),
    ]);
    let err = load(from_env(dir.path(), env)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`dogstatsd_port` (from DD_DOGSTATSD_PORT)"), "{text}");
    assert!(!text.contains("port-secret-xyz"), "{text}");
}

#[test]
fn a_world_writable_backend_stops_the_load_with_the_agent_error() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let command = script(dir.path(), "open.sh", "printf '{}'", 0o777);
    let path = write_config(
        dir.path(),
        &format!("api_key: ENC[api]\nsecret_backend_command: {}\n", command.display()),
    );
    let err = Reader::open(&ConfigFile::explicit(&path), Environment::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, ConfigError::Secrets(SecretError::GroupOrOthers { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "unable to decrypt secret from datadog.yaml: invalid executable '{}', 'group' or 'others' have rights on it",
            command.display()
        )),
        "{err}"
    );
}

#[test]
fn references_without_a_backend_and_bad_backend_settings_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let err = from_env(dir.path(), Environment::from_pairs([("DD_API_KEY", "ENC[api]")]))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "unable to decrypt secret from datadog.yaml: 'DD_API_KEY' holds ENC[api] but secret_backend_command is not set: configure the secret backend or put the value itself"
    );
    let env = Environment::from_pairs([("DD_API_KEY", "ENC[api]"), ("DD_SECRET_BACKEND_TYPE", "aws.secrets")]);
    let err = from_env(dir.path(), env).err().unwrap();
    assert!(
        matches!(err, ConfigError::Secrets(SecretError::UnsupportedType { .. })),
        "{err}"
    );
    let env = Environment::from_pairs([
        ("DD_SECRET_BACKEND_COMMAND", "/bin/true"),
        ("DD_SECRET_BACKEND_TIMEOUT", "soon"),
        ("DD_SECRET_BACKEND_COMMAND_ALLOW_GROUP_EXEC_PERM", "maybe"),
    ]);
    let err = from_env(dir.path(), env).err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("invalid value for `secret_backend_timeout` (from DD_SECRET_BACKEND_TIMEOUT): \"soon\""),
        "{text}"
    );
    assert!(
        text.contains("`secret_backend_command_allow_group_exec_perm`"),
        "{text}"
    );
    // Without references, a configured backend is never run.
    let env = Environment::from_pairs([("DD_SECRET_BACKEND_COMMAND", "/nonexistent/backend")]);
    let (config, ..) = load(from_env(dir.path(), env)).unwrap();
    assert!(config.secrets().handles.is_empty());
}

#[test]
fn backend_settings_are_read_from_the_file_and_the_environment() {
    let map: serde_yaml::Mapping = serde_yaml::from_str(
        "secret_backend_command: /opt/backend\nsecret_backend_arguments: [a, 'b c']\nsecret_backend_timeout: 0\nsecret_backend_output_max_size: 2048\nsecret_backend_remove_trailing_line_break: true\n",
    )
    .unwrap();
    let path = Path::new("/etc/datadog-agent/datadog.yaml");
    let text = serde_yaml::to_string(&map).unwrap();
    let reader = |env| Reader::from_yaml(&text, path, env).unwrap();
    let (backend, kind) = SecretBackend::read(&mut reader(Environment::default()));
    let backend = backend.unwrap();
    assert_eq!(backend.command, "/opt/backend");
    assert_eq!(backend.arguments, ["a", "b c"]);
    assert_eq!(backend.timeout, DEFAULT_TIMEOUT, "0 means the default");
    assert_eq!(backend.output_max_size, 2048);
    assert!(backend.remove_trailing_line_break);
    assert!(!backend.allow_group_exec_perm);
    assert_eq!(kind, None);
    let env = Environment::from_pairs([
        ("DD_SECRET_BACKEND_ARGUMENTS", "x y"),
        ("DD_SECRET_BACKEND_TIMEOUT", "7"),
        ("DD_SECRET_BACKEND_COMMAND_ALLOW_GROUP_EXEC_PERM", "1"),
    ]);
    let backend = SecretBackend::read(&mut reader(env)).0.unwrap();
    assert_eq!(backend.arguments, ["x", "y"]);
    assert_eq!(backend.timeout, Duration::from_secs(7));
    assert!(backend.allow_group_exec_perm);
    assert_eq!(
        SecretBackend::new("c"),
        SecretBackend {
            command: "c".into(),
            arguments: vec![],
            timeout: Duration::from_secs(30),
            output_max_size: 1_048_576,
            allow_group_exec_perm: false,
            remove_trailing_line_break: false,
        }
    );
}
