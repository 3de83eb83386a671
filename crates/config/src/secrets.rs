//! `ENC[handle]` secrets, resolved through `secret_backend_command` as the
//! Datadog Agent resolves them, before any key is read.
//!
//! Facts from the Agent (DataDog/datadog-agent `comp/core/secrets/impl/{secrets,
//! fetch_secret,check_rights_nix,exec_nix}.go`, `comp/core/secrets/utils/utils.go`,
//! `comp/core/secrets/def/type.go`, `pkg/config/setup/config.go` `resolveSecrets`):
//!
//! - A value is a secret reference when, trimmed of spaces and tabs, it starts
//!   with `ENC[` and ends with `]`; the handle is what is between (`IsEnc`).
//!   Only whole string values count, in mappings and lists at any depth; keys
//!   are never resolved. The Agent marshals *all settings* (file and `DD_*`
//!   environment) before resolving, so environment values are resolved too;
//!   here a `DD_*` variable is resolved when its whole value is a reference or
//!   when it is JSON (`DD_ADDITIONAL_ENDPOINTS='{"https://…":["ENC[k]"]}'`)
//!   holding references. `DD_SECRET_BACKEND_*` themselves are not resolved.
//! - Off unless `secret_backend_command` is set. The command runs with
//!   `secret_backend_arguments` as its arguments, receives on stdin
//!   `{"secrets":[handles…],"version":"1.1"}` with every handle of the
//!   configuration in one call (each once, in order of first use), and prints
//!   `{"<handle>":{"value":"…","error":"…"}}`. A missing handle, a non-empty
//!   `error` or an empty `value` fails the whole batch, and so the start.
//! - `secret_backend_timeout` (seconds, default 30; 0 means the default) kills
//!   the command; `secret_backend_output_max_size` (bytes, default 1048576; 0
//!   means the default) bounds stdout and stderr each.
//!   `secret_backend_remove_trailing_line_break` (false) strips `\r`/`\n` from
//!   the end of each value.
//! - Before running it (Linux): `stat` the file; refuse any group or other
//!   permission bit (`mode & 0o077`), or with
//!   `secret_backend_command_allow_group_exec_perm: true` group write and any
//!   other bit (`mode & 0o027`); then `access(X_OK)`. The Agent no longer
//!   checks the owner (the older `pkg/secrets` did).
//! - Error texts are the Agent's: `invalid executable '<path>', 'group' or
//!   'others' have rights on it`, `error while running '<cmd>': command
//!   timeout`, `… command output was too long: exceeded N bytes`, `secret handle
//!   'h' was not resolved by the secret_backend_command`, `an error occurred
//!   while resolving 'h': …`, `resolved secret for 'h' is empty`; the
//!   configuration loader wraps them in `unable to decrypt secret from
//!   datadog.yaml: …`. Each here also says what to do.
//!
//! Differences, and why:
//! - The command runs in its own process group, and the whole group is killed
//!   at the timeout, so a shell script's children die with it (the Agent kills
//!   only the command).
//! - The Agent logs the command's stderr as a separate error line before
//!   failing; logging is not set up while the configuration loads, so here the
//!   stderr (its last 2 KiB) is part of the error.
//! - Log lines (`Starting to resolve secrets`, `calling secret_backend_command
//!   with payload: '…'`, …) are returned in [`ResolvedReport::log`] for the
//!   binary to emit once logging runs. They name handles and the command,
//!   never a resolved value.
//! - Resolved values are redacted wherever the configuration is shown
//!   ([`ResolvedReport::redact`]): any occurrence of a resolved value becomes
//!   `********`, whatever key holds it (the Agent adds the key name to its log
//!   scrubber instead).
//!
//! # Missing
//! - `secret_backend_type`/`secret_backend_config` (the bundled
//!   `secret-generic-connector`) and `multi_secret_backends`: with references
//!   present, `secret_backend_type` without `secret_backend_command` is refused.
//! - `secret_refresh_interval` and refresh on an invalid API key: secrets are
//!   resolved once, at start.
//! - A space-separated `DD_*` list holding references item by item.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use crate::redact::REDACTED;
use crate::source::Environment;
use crate::{key, parse, Reader};

/// The protocol version sent to the backend (`secrets.PayloadVersion`).
pub const PAYLOAD_VERSION: &str = "1.1";
/// `secret_backend_timeout`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `secret_backend_output_max_size`'s default, per stream.
pub const DEFAULT_OUTPUT_MAX_SIZE: u64 = 1024 * 1024;

/// How much of a failed command's stderr an error repeats.
const STDERR_IN_ERROR: usize = 2048;

/// The handle of an `ENC[handle]` value, as the Agent's `IsEnc` reads it.
pub fn enc_handle(value: &str) -> Option<&str> {
    value.trim_matches([' ', '\t']).strip_prefix("ENC[")?.strip_suffix(']')
}

/// The `secret_backend_*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretBackend {
    /// `secret_backend_command`: the executable (a path, or a name looked up in `PATH`).
    pub command: String,
    /// `secret_backend_arguments`: its arguments. Defaults to none.
    pub arguments: Vec<String>,
    /// `secret_backend_timeout`: the command is killed after this. Defaults to 30 s.
    pub timeout: Duration,
    /// `secret_backend_output_max_size`: bytes allowed on stdout, and on
    /// stderr. Defaults to 1048576.
    pub output_max_size: u64,
    /// `secret_backend_command_allow_group_exec_perm`: allow group read and
    /// execute permission on the command file. Defaults to false.
    pub allow_group_exec_perm: bool,
    /// `secret_backend_remove_trailing_line_break`: strip `\r` and `\n` from
    /// the end of every value. Defaults to false.
    pub remove_trailing_line_break: bool,
}

impl SecretBackend {
    /// A backend running `command` with the Agent's defaults.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            arguments: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            output_max_size: DEFAULT_OUTPUT_MAX_SIZE,
            allow_group_exec_perm: false,
            remove_trailing_line_break: false,
        }
    }

    /// Reads the `secret_backend_*` keys through `r` (they are this crate's
    /// own keys); `None` when `secret_backend_command` is unset or empty. The
    /// second value is `secret_backend_type` when set (not supported).
    pub(crate) fn read(r: &mut Reader) -> (Option<Self>, Option<String>) {
        let kind = r.get(key!("secret_backend_type"), None, parse::optional_string);
        let command = r.get(key!("secret_backend_command"), None, parse::optional_string);
        let arguments = r.get(key!("secret_backend_arguments"), Vec::new(), parse::list);
        // 0 means the default, as in the Agent.
        let timeout: u64 = r.get(key!("secret_backend_timeout"), 0, |raw| {
            parse::integer(0, 86_400)(raw).map_err(|_| "a number of seconds (0 for the default, 30)".to_owned())
        });
        let output_max_size: u64 = r.get(key!("secret_backend_output_max_size"), 0, |raw| {
            parse::integer(0, u64::from(u32::MAX))(raw)
                .map_err(|_| "a number of bytes (0 for the default, 1048576)".to_owned())
        });
        let allow_group_exec_perm = r.get(
            key!("secret_backend_command_allow_group_exec_perm"),
            false,
            parse::boolean,
        );
        let remove_trailing_line_break =
            r.get(key!("secret_backend_remove_trailing_line_break"), false, parse::boolean);
        let backend = command.map(|command| {
            let mut b = SecretBackend::new(command.trim());
            b.arguments = arguments;
            if timeout > 0 {
                b.timeout = Duration::from_secs(timeout);
            }
            if output_max_size > 0 {
                b.output_max_size = output_max_size;
            }
            b.allow_group_exec_perm = allow_group_exec_perm;
            b.remove_trailing_line_break = remove_trailing_line_break;
            b
        });
        (backend, kind)
    }

    /// Runs the command once for `handles` and returns each handle's value.
    /// Log lines (never a value) are appended to `log`.
    pub fn fetch(&self, handles: &[String], log: &mut Vec<LogLine>) -> Result<BTreeMap<String, String>, SecretError> {
        let payload = serde_json::json!({"version": PAYLOAD_VERSION, "secrets": handles}).to_string();
        let output = self.run(&payload, log)?;
        let mut answers: BTreeMap<String, SecretVal> =
            serde_json::from_slice(&output).map_err(|e| SecretError::Unmarshal {
                command: self.command.clone(),
                error: e.to_string(),
            })?;
        let mut values = BTreeMap::new();
        for handle in handles {
            let answer = answers
                .remove(handle)
                .ok_or_else(|| SecretError::Missing { handle: handle.clone() })?;
            if let Some(message) = answer.error.filter(|e| !e.is_empty()) {
                return Err(SecretError::Backend {
                    handle: handle.clone(),
                    message,
                });
            }
            let mut value = answer.value.unwrap_or_default();
            if self.remove_trailing_line_break {
                let kept = value.trim_end_matches(['\r', '\n']).len();
                value.truncate(kept);
            }
            if value.is_empty() {
                return Err(SecretError::Empty { handle: handle.clone() });
            }
            values.insert(handle.clone(), value);
        }
        Ok(values)
    }

    /// Checks the command file, runs it with `payload` on stdin and returns its stdout.
    fn run(&self, payload: &str, log: &mut Vec<LogLine>) -> Result<Vec<u8>, SecretError> {
        let path = look_up(&self.command);
        check_rights(&path, self.allow_group_exec_perm)?;
        let failed = |reason: String, stderr: Option<&[u8]>| SecretError::Run {
            command: self.command.clone(),
            reason,
            stderr: stderr.map(stderr_tail).unwrap_or_default(),
        };
        let mut child = Command::new(&path)
            .args(&self.arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that the timeout kills what a script started too.
            .process_group(0)
            .spawn()
            .map_err(|e| failed(e.to_string(), None))?;
        log.push(LogLine::debug(format!(
            "calling secret_backend_command with payload: '{payload}'"
        )));
        let started = Instant::now();
        let group = child.id();

        if let Some(mut stdin) = child.stdin.take() {
            let payload = payload.as_bytes().to_vec();
            // A thread, so a command that never reads its input cannot block us;
            // a command that exits without reading it is not an error (EPIPE).
            std::thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
        }
        let limit = usize::try_from(self.output_max_size).unwrap_or(usize::MAX);
        let (tx, rx) = mpsc::channel();
        for (stream, pipe) in [
            (0usize, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
            (1, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        ] {
            let Some(pipe) = pipe else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send((stream, read_limited(pipe, limit)));
            });
        }
        drop(tx);

        let deadline = started + self.timeout;
        let mut outputs: [Option<Vec<u8>>; 2] = [None, None];
        let mut status: Option<ExitStatus> = None;
        loop {
            if status.is_none() {
                status = child.try_wait().map_err(|e| failed(e.to_string(), None))?;
            }
            if status.is_some() && outputs.iter().all(Option::is_some) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                kill_group(group, &mut child);
                return Err(failed("command timeout".to_owned(), None));
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(5))) {
                Ok((stream, Ok(bytes))) => outputs[stream] = Some(bytes),
                Ok((_, Err(ReadError::TooLong))) => {
                    kill_group(group, &mut child);
                    return Err(failed(
                        format!("command output was too long: exceeded {} bytes", self.output_max_size),
                        None,
                    ));
                }
                Ok((stream, Err(ReadError::Io(_)))) => outputs[stream] = Some(Vec::new()),
                Err(_) => {}
            }
        }
        let elapsed = started.elapsed();
        let [stdout, stderr] = outputs.map(Option::unwrap_or_default);
        log.push(LogLine::debug(format!(
            "secret_backend_command '{}' completed in {elapsed:?}",
            self.command
        )));
        let status = status.expect("the loop ends only with a status");
        if !status.success() {
            return Err(failed(exit_text(status), Some(&stderr)));
        }
        log.push(LogLine::debug(format!(
            "secret_backend_command stderr: {}",
            String::from_utf8_lossy(&stderr).trim_end()
        )));
        Ok(stdout)
    }
}

/// One backend answer (`secrets.SecretVal`).
#[derive(Deserialize)]
struct SecretVal {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

enum ReadError {
    TooLong,
    Io(#[allow(dead_code)] std::io::Error),
}

/// Reads `pipe` to its end, failing as soon as it holds more than `limit` bytes.
fn read_limited(mut pipe: Box<dyn Read + Send>, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                if out.len().saturating_add(n) > limit {
                    return Err(ReadError::TooLong);
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

fn kill_group(group: u32, child: &mut std::process::Child) {
    if let Ok(pgid) = libc::pid_t::try_from(group) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Go's `ExitError` text: `exit status 3`, or `signal: 9`.
fn exit_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => status.to_string(),
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.len() <= STDERR_IN_ERROR {
        return text.to_owned();
    }
    let mut start = text.len() - STDERR_IN_ERROR;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// `command` as `exec.LookPath` finds it: a name without `/` is searched in `PATH`.
fn look_up(command: &str) -> PathBuf {
    if command.contains('/') {
        return PathBuf::from(command);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(command);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    PathBuf::from(command)
}

/// The Agent's Linux permission check (`check_rights_nix.go`).
fn check_rights(path: &Path, allow_group_exec: bool) -> Result<(), SecretError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| SecretError::Stat {
        path: shown.clone(),
        error: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if allow_group_exec {
        if mode & 0o027 != 0 {
            return Err(SecretError::GroupOrOthersWrite { path: shown, mode });
        }
    } else if mode & 0o077 != 0 {
        return Err(SecretError::GroupOrOthers { path: shown, mode });
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| SecretError::Access {
        path: shown.clone(),
        error: "the path contains a NUL byte".to_owned(),
    })?;
    // SAFETY: access(2) reads the NUL-terminated path, which outlives the call.
    if unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } != 0 {
        return Err(SecretError::Access {
            path: shown,
            error: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

/// Why secrets could not be resolved. Texts start as the Agent's, then say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The command file cannot be examined.
    #[error("invalid executable '{path}': can't stat it: {error} (check secret_backend_command)")]
    Stat {
        /// The command file.
        path: String,
        /// The operating system's error.
        error: String,
    },
    /// Group or others have permissions on the command file.
    #[error("invalid executable '{path}', 'group' or 'others' have rights on it (mode {mode:o}): only its owner may read, write or run it; run `chmod 700 '{path}'`, or set secret_backend_command_allow_group_exec_perm: true to allow group read and execute")]
    GroupOrOthers {
        /// The command file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// With group execution allowed: others have permissions, or the group may write.
    #[error("invalid executable '{path}', 'others' have rights on it or 'group' has write permissions on it (mode {mode:o}); run `chmod 750 '{path}'`")]
    GroupOrOthersWrite {
        /// The command file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The command file is not executable for this process.
    #[error("invalid executable '{path}': can't access it: {error} (it must be executable by the user running the data plane)")]
    Access {
        /// The command file.
        path: String,
        /// The operating system's error.
        error: String,
    },
    /// The command could not be started, failed, timed out or printed too much.
    #[error("error while running '{command}': {reason}{}", stderr_suffix(stderr))]
    Run {
        /// `secret_backend_command`.
        command: String,
        /// `command timeout`, `exit status 3`, `command output was too long: …`.
        reason: String,
        /// The end of the command's stderr when it failed, else empty.
        stderr: String,
    },
    /// The command's stdout is not the expected JSON.
    #[error("could not unmarshal 'secret_backend_command' output: {error} ('{command}' must print {{\"<handle>\": {{\"value\": \"…\"}}}})")]
    Unmarshal {
        /// `secret_backend_command`.
        command: String,
        /// The JSON parser's error (never the output).
        error: String,
    },
    /// The command did not answer for a handle.
    #[error(
        "secret handle '{handle}' was not resolved by the secret_backend_command (check that the backend knows it)"
    )]
    Missing {
        /// The handle.
        handle: String,
    },
    /// The command reported an error for a handle.
    #[error("an error occurred while resolving '{handle}': {message}")]
    Backend {
        /// The handle.
        handle: String,
        /// The backend's `error` text.
        message: String,
    },
    /// The command returned an empty value.
    #[error("resolved secret for '{handle}' is empty (the backend must return a non-empty value)")]
    Empty {
        /// The handle.
        handle: String,
    },
    /// `secret_backend_type` without `secret_backend_command`.
    #[error("secret_backend_type '{kind}' (the Agent's bundled secret-generic-connector) is not supported by the data plane: set secret_backend_command to a backend executable")]
    UnsupportedType {
        /// `secret_backend_type`.
        kind: String,
    },
    /// References found but no backend configured.
    #[error("'{location}' holds ENC[{handle}] but secret_backend_command is not set: configure the secret backend or put the value itself")]
    NoBackend {
        /// Where the reference was found.
        location: String,
        /// Its handle.
        handle: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (secret_backend_command stderr: {stderr})")
    }
}

/// The level of a [`LogLine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Something to look at.
    Warn,
}

/// A log line produced while the configuration loads, to be emitted once logging runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The message (never a secret value).
    pub message: String,
}

impl LogLine {
    fn debug(message: String) -> Self {
        Self {
            level: LogLevel::Debug,
            message,
        }
    }

    fn info(message: &str) -> Self {
        Self {
            level: LogLevel::Info,
            message: message.to_owned(),
        }
    }
}

/// What secret resolution did: the handles, where they were used, the log
/// lines to emit, and (privately) the values, for redaction. Its `Debug`
/// never shows a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResolvedReport {
    /// Handles resolved, in order of first use.
    pub handles: Vec<String>,
    /// `(location, handle)`: a key path (`api_key`, `additional_endpoints.https://x.0`)
    /// or an environment variable (`DD_API_KEY`).
    pub locations: Vec<(String, String)>,
    /// Log lines to emit (info and debug), in order.
    pub log: Vec<LogLine>,
    /// Resolved values, longest first.
    values: Vec<String>,
}

impl fmt::Debug for ResolvedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedReport")
            .field("handles", &self.handles)
            .field("locations", &self.locations)
            .field("log", &self.log)
            .field("values", &format_args!("[{} redacted]", self.values.len()))
            .finish()
    }
}

impl ResolvedReport {
    /// `text` with every resolved value replaced by `********`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redacts every string in `value` (keys included) in place.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        if self.values.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.redact_json(&mut v);
                    map.insert(self.redact(&k).into_owned(), v);
                }
            }
            _ => {}
        }
    }
}

/// A reference found in the configuration.
struct Found {
    location: String,
    handle: String,
}

/// Collects references in a YAML value (values only, never keys).
fn find_in_yaml(value: &Yaml, path: &mut Vec<String>, out: &mut Vec<Found>) {
    match value {
        Yaml::String(s) => {
            if let Some(h) = enc_handle(s) {
                out.push(Found {
                    location: path.join("."),
                    handle: h.to_owned(),
                });
            }
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                find_in_yaml(item, path, out);
                path.pop();
            }
        }
        Yaml::Mapping(map) => find_in_mapping(map, path, out),
        Yaml::Tagged(t) => find_in_yaml(&t.value, path, out),
        _ => {}
    }
}

fn find_in_mapping(map: &serde_yaml::Mapping, path: &mut Vec<String>, out: &mut Vec<Found>) {
    for (k, v) in map {
        path.push(key_text(k));
        find_in_yaml(v, path, out);
        path.pop();
    }
}

fn key_text(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        _ => "?".to_owned(),
    }
}

fn replace_in_yaml(value: &mut Yaml, values: &BTreeMap<String, String>) {
    match value {
        Yaml::String(s) => {
            if let Some(v) = enc_handle(s).and_then(|h| values.get(h)) {
                *s = v.clone();
            }
        }
        Yaml::Sequence(items) => items.iter_mut().for_each(|i| replace_in_yaml(i, values)),
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| replace_in_yaml(v, values)),
        Yaml::Tagged(t) => replace_in_yaml(&mut t.value, values),
        _ => {}
    }
}

fn find_in_json(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Found>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(h) = enc_handle(s) {
                out.push(Found {
                    location: path.join("."),
                    handle: h.to_owned(),
                });
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                find_in_json(item, path, out);
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                find_in_json(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn replace_in_json(value: &mut serde_json::Value, values: &BTreeMap<String, String>) {
    match value {
        serde_json::Value::String(s) => {
            if let Some(v) = enc_handle(s).and_then(|h| values.get(h)) {
                *s = v.clone();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| replace_in_json(i, values)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| replace_in_json(v, values)),
        _ => {}
    }
}

/// `DD_*` variables that may hold references (not the backend's own settings).
fn resolvable_env(name: &str) -> bool {
    name.starts_with("DD_") && !name.starts_with("DD_SECRET_BACKEND_")
}

/// References in environment values: the whole value, or strings inside a JSON value.
fn find_in_env(env: &Environment) -> Vec<(String, Option<serde_json::Value>, Vec<Found>)> {
    let mut out = Vec::new();
    for (name, value) in env.iter() {
        if !resolvable_env(name) {
            continue;
        }
        if let Some(h) = enc_handle(value) {
            let found = vec![Found {
                location: name.to_owned(),
                handle: h.to_owned(),
            }];
            out.push((name.to_owned(), None, found));
            continue;
        }
        let trimmed = value.trim_start();
        if !(trimmed.starts_with('{') || trimmed.starts_with('[')) || !value.contains("ENC[") {
            continue;
        }
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
            let mut found = Vec::new();
            find_in_json(&json, &mut vec![name.to_owned()], &mut found);
            if !found.is_empty() {
                out.push((name.to_owned(), Some(json), found));
            }
        }
    }
    out
}

/// Resolves every reference in `doc` (values at any depth, never keys) with
/// one call of `backend`.
pub fn resolve_secrets(doc: &mut Yaml, backend: &SecretBackend) -> Result<ResolvedReport, SecretError> {
    let mut env = Environment::default();
    resolve_all(Some(doc), &mut env, backend)
}

/// Resolves references in `doc` and in `DD_*` variables of `env` (see the
/// module docs) with one call of `backend`, substituting them in place.
pub fn resolve_all(
    doc: Option<&mut Yaml>,
    env: &mut Environment,
    backend: &SecretBackend,
) -> Result<ResolvedReport, SecretError> {
    let mut report = ResolvedReport::default();
    if backend.allow_group_exec_perm {
        report.log.push(LogLine {
            level: LogLevel::Warn,
            message:
                "Agent configuration relax permissions constraint on the secret backend cmd, Group can read and exec"
                    .to_owned(),
        });
    }
    let mut found = Vec::new();
    if let Some(doc) = doc.as_deref() {
        find_in_yaml(doc, &mut Vec::new(), &mut found);
    }
    let env_found = find_in_env(env);
    found.extend(env_found.iter().flat_map(|(_, _, f)| f.iter()).map(|f| Found {
        location: f.location.clone(),
        handle: f.handle.clone(),
    }));
    if found.is_empty() {
        return Ok(report);
    }
    for f in &found {
        if !report.handles.contains(&f.handle) {
            report.handles.push(f.handle.clone());
        }
    }
    let values = backend.fetch(&report.handles, &mut report.log)?;
    for f in found {
        report.log.push(LogLine::debug(format!(
            "Secret '{}' was successfully resolved",
            f.handle
        )));
        report.locations.push((f.location, f.handle));
    }
    if let Some(doc) = doc {
        replace_in_yaml(doc, &values);
    }
    for (name, json, _) in env_found {
        let resolved = match json {
            None => env.get(&name).and_then(enc_handle).and_then(|h| values.get(h)).cloned(),
            Some(mut json) => {
                replace_in_json(&mut json, &values);
                serde_json::to_string(&json).ok()
            }
        };
        if let Some(v) = resolved {
            env.set(&name, v);
        }
    }
    report.values = values.into_values().collect();
    report.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    report.values.dedup();
    Ok(report)
}

/// What the configuration reader uses after resolution.
pub(crate) struct ResolvedSources {
    /// The file's mapping and the environment with references substituted;
    /// `None` when nothing referred to a secret (use the sources as they are).
    pub replaced: Option<(Option<serde_yaml::Mapping>, Environment)>,
    /// The report, its log starting with the Agent's `Starting to resolve secrets`.
    pub report: ResolvedReport,
}

/// Resolves the configuration's references before keys are read.
pub(crate) fn resolve_sources(
    backend: Option<SecretBackend>,
    kind: Option<String>,
    file: Option<&serde_yaml::Mapping>,
    env: &Environment,
) -> Result<ResolvedSources, SecretError> {
    let mut log = vec![LogLine::info("Starting to resolve secrets")];
    let mut found = Vec::new();
    if let Some(map) = file {
        find_in_mapping(map, &mut Vec::new(), &mut found);
    }
    found.extend(find_in_env(env).into_iter().flat_map(|(_, _, f)| f));
    let Some(first) = found.into_iter().next() else {
        log.push(LogLine::info("Finished resolving secrets"));
        let report = ResolvedReport {
            log,
            ..ResolvedReport::default()
        };
        return Ok(ResolvedSources { replaced: None, report });
    };
    let backend = match (backend, kind) {
        (Some(b), _) => b,
        (None, Some(kind)) => return Err(SecretError::UnsupportedType { kind }),
        (None, None) => {
            return Err(SecretError::NoBackend {
                location: first.location,
                handle: first.handle,
            })
        }
    };
    let mut doc = file.map(|m| Yaml::Mapping(m.clone()));
    let mut env = env.clone();
    let mut report = resolve_all(doc.as_mut(), &mut env, &backend)?;
    log.append(&mut report.log);
    log.push(LogLine::info("Finished resolving secrets"));
    report.log = log;
    let mapping = match doc {
        Some(Yaml::Mapping(m)) => Some(m),
        _ => None,
    };
    Ok(ResolvedSources {
        replaced: Some((mapping, env)),
        report,
    })
}

#[cfg(test)]
mod tests;
