//! End-to-end tests of the `agent-data-plane` binary, run as a separate process
//! (through `$ADP_TEST_RUNNER`, e.g. `qemu-arm -L /usr/arm-linux-gnueabihf`,
//! when set) with a clean environment:
//!
//! - `cli`: version output, configuration errors, the `config` command;
//! - `modes`: disabled and remote-agent modes;
//! - `pipeline`: a standalone run delivering DogStatsD over UDP and a Unix
//!   socket to an in-process test intake, the APIs, and a clean SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: a debug build under qemu-arm starts in seconds, not milliseconds.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The binary, behind `$ADP_TEST_RUNNER` when set, with an empty environment
/// (no stray `DD_*` or proxy variables from the machine running the tests).
fn command() -> Command {
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

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

mod cli {
    use super::*;

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
        assert!(stdout.contains("api_key: '********'"), "{stdout}");
        assert!(stdout.contains("hostname: from-file"), "{stdout}");
        assert!(stdout.contains("dogstatsd_port: 4321"), "environment wins: {stdout}");
        assert!(stdout.contains("https: http://u:********@proxy:3128"), "{stdout}");
        assert!(
            !stdout.contains("file-key-0123456789") && !stdout.contains("hunter2"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("logs_enabled"),
            "keys of other components are not shown: {stdout}"
        );
    }
}

mod modes {
    use super::*;

    #[test]
    fn disabled_mode_logs_and_exits_zero() {
        let out = run(&["run"], &[("DD_DATA_PLANE_ENABLED", "false")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let log = text(&out.stderr);
        assert!(log.contains("Agent Data Plane starting..."), "{log}");
        assert!(log.contains("Agent Data Plane is not enabled. Exiting."), "{log}");
    }

    #[test]
    fn remote_agent_mode_fails_naming_standalone_mode() {
        let out = run(
            &["run"],
            &[
                ("DD_DATA_PLANE_ENABLED", "true"),
                ("DD_DATA_PLANE_STANDALONE_MODE", "false"),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("data_plane.standalone_mode"),
            "{}",
            text(&out.stderr)
        );
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let out = run(&["run"], &[("DD_LOG_FORMAT_JSON", "true")]);
        assert!(out.status.success());
        let log = text(&out.stderr);
        let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
        assert_eq!(lines[0]["message"], "Agent Data Plane starting...");
        assert_eq!(lines[0]["version"], env!("CARGO_PKG_VERSION"));
        assert!(lines[0]["pid"].is_u64());
        assert_eq!(
            lines.last().unwrap()["message"],
            "Agent Data Plane is not enabled. Exiting."
        );
    }
}

mod pipeline {
    use std::net::{TcpStream, UdpSocket};
    use std::os::unix::net::UnixDatagram;

    use adp_test_intake::{Behaviour, TestIntake};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A running `agent-data-plane run` whose standard error is collected line by line.
    struct Running {
        child: Child,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Running {
        fn start(env: &[(&str, String)], pidfile: &Path) -> Self {
            let mut child = command()
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

        fn log(&self) -> String {
            self.log.lock().unwrap().join("\n")
        }

        async fn wait_for_line(&mut self, needle: &str) -> String {
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

        async fn wait_exit(&mut self) -> ExitStatus {
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

    fn address_in(line: &str) -> String {
        let start = line.find(" on ").expect(line) + 4;
        line[start..]
            .split(". ")
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned()
    }

    fn http_get(addr: &str, path: &str) -> (u16, String) {
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

    fn parse_response(response: &str) -> (u16, String) {
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect(response);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// One HTTPS request to the privileged API, trusting only `cert`.
    async fn https(addr: &str, cert: &rcgen::CertifiedKey, request: String) -> (u16, String) {
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
        parse_response(&String::from_utf8_lossy(&response))
    }

    fn free_udp_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_standalone_run_delivers_dogstatsd_serves_its_apis_and_stops_cleanly_on_sigterm() {
        let intake = TestIntake::start("127.0.0.1:0".parse().unwrap(), Behaviour::normal())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("dsd.socket");
        let pidfile = dir.path().join("adp.pid");
        let token = "0123456789abcdef".repeat(4);
        std::fs::write(dir.path().join("auth_token"), &token).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(
            dir.path().join("ipc_cert.pem"),
            format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem()),
        )
        .unwrap();
        let port = free_udp_port();
        let env = [
            ("DD_API_KEY", "e2e-api-key-0123456789".to_owned()),
            ("DD_HOSTNAME", "e2e-host".to_owned()),
            ("DD_DD_URL", intake.url()),
            ("DD_DATA_PLANE_ENABLED", "true".to_owned()),
            ("DD_DATA_PLANE_STANDALONE_MODE", "true".to_owned()),
            ("DD_DATA_PLANE_REMOTE_AGENT_ENABLED", "false".to_owned()),
            ("DD_DATA_PLANE_USE_NEW_CONFIG_STREAM_ENDPOINT", "false".to_owned()),
            ("DD_DATA_PLANE_API_LISTEN_ADDRESS", "tcp://127.0.0.1:0".to_owned()),
            (
                "DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS",
                "tcp://127.0.0.1:0".to_owned(),
            ),
            ("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "10".to_owned()),
            (
                "DD_AUTH_TOKEN_FILE_PATH",
                dir.path().join("auth_token").to_string_lossy().into_owned(),
            ),
            (
                "DD_IPC_CERT_FILE_PATH",
                dir.path().join("ipc_cert.pem").to_string_lossy().into_owned(),
            ),
            ("DD_DOGSTATSD_PORT", port.to_string()),
            ("DD_DOGSTATSD_SOCKET", socket.to_string_lossy().into_owned()),
            ("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "1".to_owned()),
            ("DD_AGGREGATE_FLUSH_INTERVAL", "250ms".to_owned()),
        ];
        let mut adp = Running::start(&env, &pidfile);
        adp.wait_for_line("Topology healthy. Waiting for interrupt...").await;
        let pid = std::fs::read_to_string(&pidfile).expect("pidfile written");
        assert_eq!(pid.trim(), adp.child.id().to_string(), "pidfile holds the process id");
        let api = address_in(&adp.wait_for_line("Serving unprivileged API on").await);
        let secure_api = address_in(&adp.wait_for_line("Serving privileged API on").await);

        // Health and telemetry.
        let (status, body) = http_get(&api, "/health/ready");
        assert_eq!(status, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        for component in ["dogstatsd", "aggregator", "forwarder"] {
            assert_eq!(health["components"][component]["ready"], true, "{body}");
        }
        assert_eq!(http_get(&api, "/health/live").0, 200);

        // DogStatsD over UDP and the Unix socket reaches the intake.
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"e2e.udp:3|c|#src:udp", ("127.0.0.1", port))
            .unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to(b"e2e.uds:42|g|#src:uds", &socket)
            .unwrap();
        let received = intake
            .wait_for(TIMEOUT, |r| {
                !r.series_named("e2e.udp").is_empty() && !r.series_named("e2e.uds").is_empty()
            })
            .await
            .expect("series at the intake");
        let udp = received.series_named("e2e.udp")[0];
        assert_eq!(
            (udp.kind.as_str(), udp.host.as_str(), udp.tags.as_slice()),
            ("rate", "e2e-host", &["src:udp".to_owned()][..])
        );
        assert_eq!(
            received.series_value_sum("e2e.udp"),
            3.0,
            "a 1 s window: the rate is the count"
        );
        assert_eq!(received.series_named("e2e.uds")[0].points[0].1, 42.0);
        assert!(received.request_log.iter().all(|r| r.api_key_present));

        let (status, metrics) = http_get(&api, "/metrics");
        assert_eq!(status, 200);
        assert!(
            metrics.contains("adp_dogstatsd_packets_total{listener=\"udp\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("adp_forwarder_payloads_sent_total{endpoint=\"series\"}"),
            "{metrics}"
        );
        assert!(metrics.ends_with("# EOF\n"));

        // The privileged API: TLS with the configured certificate, bearer token.
        let get = |path: &str, auth: Option<&str>| {
            let auth = auth
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
        };
        assert_eq!(https(&secure_api, &cert, get("/config", None)).await.0, 401);
        assert_eq!(
            https(&secure_api, &cert, get("/config", Some(&"f".repeat(64)))).await.0,
            403
        );
        let (status, config) = https(&secure_api, &cert, get("/config", Some(&token))).await;
        assert_eq!(status, 200, "{config}");
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["api_key"], "********");
        assert_eq!(config["hostname"], "e2e-host");
        let (status, stats) = https(&secure_api, &cert, get("/dogstatsd/stats", Some(&token))).await;
        assert_eq!(status, 200);
        assert!(stats.contains("\"adp_dogstatsd_packets\""), "{stats}");
        let set_level = format!(
            "POST /logging/level HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\ndebug"
        );
        let (status, body) = https(&secure_api, &cert, set_level).await;
        assert_eq!((status, body.trim()), (200, r#"{"log_level":"debug"}"#));

        // A sample in a still-open window is delivered by the final flush at SIGTERM.
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"e2e.final:7|g", ("127.0.0.1", port))
            .unwrap();
        // SAFETY: kill(2) on the child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(adp.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let status = adp.wait_exit().await;
        let log = adp.log();
        assert!(status.success(), "exit {status}:\n{log}");
        let order = [
            "Agent Data Plane starting...",
            "Serving unprivileged API on",
            "Serving privileged API on",
            "DogStatsD listener started.",
            "Agent Data Plane running.",
            "Topology healthy. Waiting for interrupt...",
            "Received SIGTERM, shutting down...",
            "Agent Data Plane stopped.",
        ];
        let mut at = 0;
        for needle in order {
            let found = log[at..]
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing or out of order:\n{log}"));
            at += found + needle.len();
        }
        assert!(log.contains("topology_ready_ms="), "{log}");
        assert_eq!(
            log.matches("DogStatsD listener started.").count(),
            2,
            "UDP and Unix datagram: {log}"
        );
        for bad in ["panic", "bus error", "segmentation fault", "Failed to"] {
            assert!(
                !log.to_lowercase().contains(&bad.to_lowercase()),
                "{bad:?} in the log:\n{log}"
            );
        }
        // Secrets: neither the API key nor the bearer token is ever logged,
        // even at the debug level switched on above.
        for secret in ["e2e-api-key-0123456789", token.as_str()] {
            assert!(!log.contains(secret), "a secret leaked into the log:\n{log}");
        }
        assert!(!pidfile.exists(), "pidfile removed at exit");
        let received = intake.received();
        assert_eq!(
            received.series_named("e2e.final").len(),
            1,
            "final flush delivered: {:?}",
            received.series
        );
        assert_eq!(received.series_named("e2e.final")[0].points[0].1, 7.0);
        intake.shutdown().await;
    }

    /// Every DogStatsD kind goes codec → aggregate → encode → forward → intake
    /// while the intake first answers 503 (retried with backoff), and arrives
    /// with exact totals and no duplicate points. One-hour windows keep every
    /// sample in one window; the final flush at SIGTERM closes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_metric_type_arrives_with_exact_totals_through_an_intake_outage() {
        const OUTAGE_REQUESTS: u64 = 3;
        let intake = TestIntake::start(
            "127.0.0.1:0".parse().unwrap(),
            Behaviour::status(503).for_next(OUTAGE_REQUESTS),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("dsd.socket");
        let env = [
            ("DD_API_KEY", "e2e-api-key-0123456789".to_owned()),
            ("DD_HOSTNAME", "e2e-host".to_owned()),
            ("DD_DD_URL", intake.url()),
            ("DD_DATA_PLANE_ENABLED", "true".to_owned()),
            ("DD_DATA_PLANE_STANDALONE_MODE", "true".to_owned()),
            ("DD_DATA_PLANE_REMOTE_AGENT_ENABLED", "false".to_owned()),
            ("DD_DATA_PLANE_USE_NEW_CONFIG_STREAM_ENDPOINT", "false".to_owned()),
            ("DD_DATA_PLANE_API_LISTEN_ADDRESS", "tcp://127.0.0.1:0".to_owned()),
            (
                "DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS",
                "tcp://127.0.0.1:0".to_owned(),
            ),
            ("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "20".to_owned()),
            (
                "DD_AUTH_TOKEN_FILE_PATH",
                dir.path().join("auth_token").to_string_lossy().into_owned(),
            ),
            (
                "DD_IPC_CERT_FILE_PATH",
                dir.path().join("ipc_cert.pem").to_string_lossy().into_owned(),
            ),
            ("DD_DOGSTATSD_PORT", "0".to_owned()),
            ("DD_DOGSTATSD_SOCKET", socket.to_string_lossy().into_owned()),
            ("DD_AGGREGATE_WINDOW_DURATION_SECONDS", "3600".to_owned()),
            ("DD_AGGREGATE_FLUSH_INTERVAL", "250ms".to_owned()),
            ("DD_FORWARDER_BACKOFF_BASE", "100ms".to_owned()),
            ("DD_FORWARDER_BACKOFF_MAX", "200ms".to_owned()),
        ];
        let pidfile = dir.path().join("adp.pid");
        let mut adp = Running::start(&env, &pidfile);
        adp.wait_for_line("Topology healthy. Waiting for interrupt...").await;

        // Unix datagrams are not dropped by the kernel: a full queue blocks the sender.
        let client = UnixDatagram::unbound().unwrap();
        let send = |payload: &str| {
            client.send_to(payload.as_bytes(), &socket).unwrap();
        };
        for _ in 0..50 {
            send("all.count:2|c|#t:a");
        }
        for _ in 0..10 {
            send("all.count:1|c|@0.5|#t:a"); // weighted ×2
        }
        for v in 1..=9 {
            send(&format!("all.gauge:{v}|g"));
        }
        send("all.set:a|s\nall.set:b|s\nall.set:a|s\nall.set:c|s");
        send(
            &(1..=10)
                .map(|v| format!("all.hist:{v}|h"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        for _ in 0..4 {
            send("all.timer:100|ms");
        }
        send("all.dist:1:2:3:4|d");
        send("all.dist:10|d|@0.5"); // weighted ×2
        send("all.ts:5|c|T1700000000");
        send("_sc|all.check|1|m:degraded");
        send("_e{5,4}:title|text|#t:e");

        // The event and service check are sent within a second, through the outage.
        intake
            .wait_for(TIMEOUT, |r| !r.service_checks.is_empty() && !r.events.is_empty())
            .await
            .expect("event and service check at the intake after the outage");
        // SAFETY: kill(2) on the child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(adp.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let status = adp.wait_exit().await;
        assert!(status.success(), "exit {status}:\n{}", adp.log());
        let r = intake.received();

        let requests: u64 = r.requests.values().sum();
        let accepted: u64 = r.accepted.values().sum();
        assert_eq!(
            requests - accepted,
            OUTAGE_REQUESTS,
            "the outage was seen and retried: {r:#?}"
        );

        // No point delivered twice.
        let mut seen = std::collections::BTreeSet::new();
        for s in &r.series {
            for p in &s.points {
                let key = format!("{} {:?} {}", s.metric, s.tags, p.0);
                assert!(seen.insert(key.clone()), "duplicate point {key}");
            }
        }
        let one = |name: &str| {
            let found = r.series_named(name);
            assert_eq!(found.len(), 1, "{name}: {found:#?}");
            found[0].clone()
        };
        // Counts: RATE over the window; value × interval recovers the count.
        let count = one("all.count");
        assert_eq!(
            (count.kind.as_str(), count.interval, count.tags.as_slice()),
            ("rate", 3600, &["t:a".to_owned()][..])
        );
        assert!((count.points[0].1 * 3600.0 - 120.0).abs() < 1e-9, "{count:?}");
        assert_eq!(one("all.gauge").points[0].1, 9.0);
        assert_eq!(one("all.set").points[0].1, 3.0);
        assert!((one("all.hist.count").points[0].1 * 3600.0 - 10.0).abs() < 1e-9);
        assert_eq!(one("all.hist.max").points[0].1, 10.0);
        assert_eq!(one("all.hist.avg").points[0].1, 5.5);
        assert!((one("all.timer.count").points[0].1 * 3600.0 - 4.0).abs() < 1e-9);
        assert_eq!(one("all.timer.max").points[0].1, 100.0);
        let ts = one("all.ts");
        assert_eq!(
            (ts.kind.as_str(), ts.points.as_slice()),
            ("count", &[(1_700_000_000, 5.0)][..])
        );
        // Distributions: one sketch, weighted by the sample rate.
        let sketches = r.sketches_named("all.dist");
        assert_eq!(sketches.len(), 1, "{sketches:#?}");
        assert_eq!(sketches[0].dogsketches.len(), 1);
        let d = &sketches[0].dogsketches[0];
        assert_eq!((d.cnt, d.min, d.max, d.sum), (6, 1.0, 10.0, 30.0));
        assert_eq!(d.n.iter().map(|&n| u64::from(n)).sum::<u64>(), 6);
        assert_eq!(r.service_checks.len(), 1);
        assert_eq!(
            (r.service_checks[0].status, r.service_checks[0].message.as_str()),
            (1, "degraded")
        );
        assert_eq!(r.events.len(), 1);
        assert_eq!(
            (r.events[0].title.as_str(), r.events[0].text.as_str()),
            ("title", "text")
        );
    }
}
