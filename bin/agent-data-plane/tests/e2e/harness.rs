//! What every end-to-end test shares: the binary behind `$ADP_TEST_RUNNER`
//! with a clean environment, a running agent whose log is collected (started
//! until healthy, stopped with SIGTERM and a zero exit, its log checked for
//! crashes), the standalone environment every pipeline test starts from,
//! reads of its telemetry, and small HTTP clients for the two APIs.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: a debug build under qemu-arm starts in seconds, not milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The binary, behind `$ADP_TEST_RUNNER` when set, with an empty environment
/// (no stray `DD_*` or proxy variables from the machine running the tests).
pub fn command() -> Command {
    let bin = env!("CARGO_BIN_EXE_agent-data-plane");
    let runner = std::env::var("ADP_TEST_RUNNER").unwrap_or_default();
    let mut parts = runner.split_whitespace();
    let mut cmd = match parts.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
use std::net::{SocketAddr, TcpStream, UdpSocket};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The environment of a standalone `run` against `intake_url`: the one the
/// smoke checks and the benchmarks use too (`checks/lib/standalone.env`:
/// loopback APIs on ephemeral ports, files under `dir`, DogStatsD on an
/// ephemeral UDP port and `dir/dsd.socket`), then the tests' own: their API key
/// and host name, a 20 s shutdown drain, a 1 s aggregation window flushed every
/// 250 ms and a fast forwarder backoff. Tests override what they exercise with
/// [`Env::set`].
pub struct Env {
    vars: Vec<(&'static str, String)>,
}

/// The API key every e2e test configures (and scans logs and endpoints for).
pub const API_KEY: &str = "e2e-api-key-0123456789";

/// `KEY=VALUE` lines with `{intake_url}` and `{dir}` placeholders; its header
/// says the format.
const STANDALONE_ENV: &str = include_str!("../../../../checks/lib/standalone.env");

impl Env {
    pub fn standalone(intake_url: &str, dir: &Path) -> Self {
        let dir = dir.to_string_lossy();
        let vars = STANDALONE_ENV
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (key, value) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("checks/lib/standalone.env: {line:?} is not KEY=VALUE"));
                assert!(
                    !value.replace("{intake_url}", "").replace("{dir}", "").contains('{'),
                    "checks/lib/standalone.env: {line:?} has a placeholder other than {{intake_url}} and {{dir}}"
                );
                (key, value.replace("{intake_url}", intake_url).replace("{dir}", &dir))
            })
            .collect();
        Self { vars }
            .set("DD_API_KEY", API_KEY)
            .set("DD_HOSTNAME", "e2e-host")
            .set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "20")
            .set("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "1")
            .set("DD_AGGREGATE_FLUSH_INTERVAL", "250ms")
            .set("DD_FORWARDER_BACKOFF_BASE", "100ms")
            .set("DD_FORWARDER_BACKOFF_MAX", "200ms")
    }

    /// Removes one variable (to take its key from a configuration file).
    pub fn unset(mut self, key: &str) -> Self {
        self.vars.retain(|(k, _)| *k != key);
        self
    }

    /// Sets (or replaces) one variable.
    pub fn set(mut self, key: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((key, value)),
        }
        self
    }

    pub fn vars(&self) -> &[(&'static str, String)] {
        &self.vars
    }
}

/// A running `agent-data-plane run` whose standard error is collected line by line.
pub struct Running {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub fn start(env: &[(&str, String)], pidfile: &Path) -> Self {
        Self::start_with_args(env, &[], pidfile)
    }

    /// [`Running::start`] with global arguments before `run` (`-c FILE`).
    pub fn start_with_args(env: &[(&str, String)], args: &[&str], pidfile: &Path) -> Self {
        let mut child = command()
            .args(args)
            .args(["run", "--pidfile", pidfile.to_str().unwrap()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    /// SIGTERM; waits for the exit, asserts it is zero and returns the whole log.
    pub async fn stop(&mut self) -> String {
        // SAFETY: kill(2) on the child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let status = self.wait_exit().await;
        let log = self.log();
        assert!(status.success(), "exit {status}:\n{log}");
        log
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub async fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before logging {needle:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `run` with `env` (its pidfile in `dir`), waits until the topology
/// is healthy, and returns it with its unprivileged API address.
pub async fn start_healthy(env: &Env, dir: &Path) -> (Running, String) {
    start_healthy_with_args(env, &[], dir).await
}

/// [`start_healthy`] with global arguments before `run` (`-c FILE`).
pub async fn start_healthy_with_args(env: &Env, args: &[&str], dir: &Path) -> (Running, String) {
    let mut adp = Running::start_with_args(env.vars(), args, &dir.join("adp.pid"));
    adp.wait_for_line("Topology healthy. Waiting for interrupt...").await;
    let api = address_in(&adp.wait_for_line("Serving unprivileged API on").await);
    (adp, api)
}

/// Runs the agent with `env` (its pidfile in `dir`), whose supervised `task`
/// ends early (debug builds honour `ADP_TEST_PANIC_TASK`): asserts that it exits
/// 1 and logs the task's name, and returns the log.
pub async fn assert_task_end_stops_the_agent(env: Env, dir: &Path, task: &str) -> String {
    let env = env.set("ADP_TEST_PANIC_TASK", task);
    let mut adp = Running::start(env.vars(), &dir.join("adp.pid"));
    let status = adp.wait_exit().await;
    let log = adp.log();
    assert_eq!(status.code(), Some(1), "{task}:\n{log}");
    let expected =
        format!("ERROR Task `{task}` stopped unexpectedly; exiting so that the service manager restarts the agent.");
    assert!(log.lines().any(|l| l.ends_with(&expected)), "{task}:\n{log}");
    log
}

/// Writes `token` and a self-signed `localhost` certificate with its key
/// where the environment of [`Env::standalone`] points the agent.
pub fn write_credentials(dir: &Path, token: &str) -> rcgen::CertifiedKey {
    std::fs::write(dir.join("auth_token"), token).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(
        dir.join("ipc_cert.pem"),
        format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem()),
    )
    .unwrap();
    cert
}

/// What a crash leaves in a log.
const CRASH_MARKS: [&str; 3] = ["panic", "bus error", "segmentation fault"];

/// Asserts that `log` holds no crash mark nor any of `also` (case-insensitive).
pub fn assert_clean_log(log: &str, also: &[&str]) {
    let lower = log.to_lowercase();
    for bad in CRASH_MARKS.iter().chain(also) {
        assert!(!lower.contains(&bad.to_lowercase()), "{bad:?} in the log:\n{log}");
    }
}

pub fn address_in(line: &str) -> String {
    let start = line.find(" on ").expect(line) + 4;
    line[start..]
        .split(". ")
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    parse_response(&response)
}

pub fn parse_response(response: &str) -> (u16, String) {
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect(response);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One HTTPS request to the privileged API, trusting only `cert`.
pub async fn https(addr: &str, cert: &rcgen::CertifiedKey, request: String) -> (u16, String) {
    parse_response(&https_raw(addr, cert, request).await)
}

/// [`https`], returning the whole response (status line, headers, body).
pub async fn https_raw(addr: &str, cert: &rcgen::CertifiedKey, request: String) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server may close without close_notify; what was read is enough.
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// An ephemeral port on loopback, for an intake or a listener.
pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A test intake that accepts everything, on loopback, and a fresh
/// temporary directory for the agent's files: how most end-to-end tests start.
pub async fn intake_and_dir() -> (adp_test_intake::TestIntake, tempfile::TempDir) {
    let intake = adp_test_intake::TestIntake::start(loopback(), adp_test_intake::Behaviour::normal())
        .await
        .unwrap();
    (intake, tempfile::tempdir().unwrap())
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind(loopback()).unwrap().local_addr().unwrap().port()
}

/// The value of one series of the unprivileged API's `/metrics`, e.g.
/// `adp_forwarder_payloads_dropped_total{reason="corrupted"}` (exact text
/// before the value), or `None` when it is not exposed.
pub fn metric(api: &str, series: &str) -> Option<f64> {
    let (status, body) = http_get(api, "/metrics");
    assert_eq!(status, 200, "{body}");
    metric_in(&body, series)
}

/// [`metric`], with a series not (yet) exposed read as 0.
pub fn metric_or_zero(api: &str, series: &str) -> f64 {
    metric(api, series).unwrap_or(0.0)
}

/// [`metric`] on an already fetched `/metrics` body.
pub fn metric_in(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == series))
        .map(|(_, v)| v.parse().unwrap_or_else(|_| panic!("{series}: {v:?} is not a number")))
}

/// Polls [`metric_or_zero`] until `condition` holds and returns the value;
/// fails after [`TIMEOUT`] or if the agent exits.
pub async fn wait_metric(adp: &mut Running, api: &str, series: &str, condition: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let value = metric_or_zero(api, series);
        if condition(value) {
            return value;
        }
        if let Ok(Some(status)) = adp.child.try_wait() {
            panic!(
                "exited ({status}) while waiting on {series} (at {value}):\n{}",
                adp.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{series} still {value} after {TIMEOUT:?}:\n{}",
            adp.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
