//! Secrets never leave the process; the APIs refuse what they must; the files
//! the agent creates have the Agent's modes.
//!
//! - Secrets (the API keys, the auth token, a proxy password) appear neither in
//!   the log, at `trace` level too, nor in any response of either API, nor in
//!   the `config` command's output, while every path that holds them is used:
//!   delivery with the API key, an additional endpoint reached through an
//!   authenticating proxy that refuses it.
//! - The privileged API answers as the Agent does: 401 without credentials or
//!   with another scheme, 403 for any wrong token; it serves no plain HTTP.
//!   The unprivileged API has none of its routes.
//! - DogStatsD socket files are `0o722`, a created auth token `0o600`.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use adp_test_intake::{Behaviour, TestIntake};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::*;

/// The auth token the tests write (64 characters, like a generated one).
const TOKEN: &str = "5ec7e70c5ec7e70c5ec7e70c5ec7e70c5ec7e70c5ec7e70c5ec7e70c5ec7e70c";

/// A request with an optional raw `Authorization` value.
fn request(method: &str, path: &str, authorization: Option<&str>, body: &str) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The routes an API module serves: every string literal in its source that
/// is a path (`"/health/live"`), so that a route added later is noticed here.
fn routes_in(source: &str) -> BTreeSet<String> {
    source
        .match_indices("\"/")
        .filter_map(|(at, _)| {
            let rest = &source[at + 1..];
            let end = rest.find('"')?;
            let path = &rest[..end];
            path.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_-".contains(&b))
                .then(|| path.to_owned())
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// An HTTP proxy that records each request head and refuses it with 407.
async fn refusing_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let _ = conn
                    .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, heads)
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_neither_the_trace_log_nor_any_api_response_nor_the_config_command() {
    const PROXY_USER: &str = "e2e-proxy-user";
    const PROXY_PASSWORD: &str = "e2e-proxy-pa55word";
    const ADDITIONAL_KEY: &str = "e2e-additional-key-9876543210";
    let intake = TestIntake::start(loopback(), Behaviour::normal()).await.unwrap();
    let (proxy, proxied) = refusing_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = write_credentials(dir.path(), TOKEN);
    let proxy_credentials = base64(format!("{PROXY_USER}:{PROXY_PASSWORD}").as_bytes());
    let secrets = [
        API_KEY,
        TOKEN,
        PROXY_PASSWORD,
        ADDITIONAL_KEY,
        proxy_credentials.as_str(),
    ];
    // The main intake is on loopback, reached directly; the additional one is
    // https and goes through the proxy, which refuses it: the proxy's
    // credentials are used and its failure is logged on every retry.
    let env = Env::standalone(&intake.url(), dir.path())
        .set(
            "DD_PROXY_HTTPS",
            format!("http://{PROXY_USER}:{PROXY_PASSWORD}@{proxy}"),
        )
        .set(
            "DD_ADDITIONAL_ENDPOINTS",
            format!(r#"{{"https://intake.invalid": ["{ADDITIONAL_KEY}"]}}"#),
        )
        .set("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "1");

    let config = command()
        .arg("config")
        .envs(env.vars().iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let shown = text(&config.stdout);
    assert!(config.status.success(), "{shown}{}", text(&config.stderr));
    assert!(
        shown.contains(&format!("{PROXY_USER}:********@")),
        "the proxy is shown, redacted:\n{shown}"
    );
    for secret in &secrets {
        assert!(
            !shown.contains(secret) && !text(&config.stderr).contains(secret),
            "`config` shows {secret:?}:\n{shown}"
        );
    }

    let (mut adp, api) = start_healthy(&env, dir.path()).await;
    let secure_api = address_in(&adp.wait_for_line("Serving privileged API on").await);
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = https(
        &secure_api,
        &cert,
        request("POST", "/logging/level", Some(&bearer), "trace"),
    )
    .await;
    assert_eq!((status, body.trim()), (200, r#"{"log_level":"trace"}"#));

    // Data through both endpoints, now that everything is logged.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"e2e.secret:1|c", dir.path().join("dsd.socket"))
        .unwrap();
    intake
        .wait_for(TIMEOUT, |r| !r.series_named("e2e.secret").is_empty())
        .await
        .expect("series at the intake");
    assert!(intake.received().request_log.iter().all(|r| r.api_key_present));
    // A trace-level line: the level change took effect.
    adp.wait_for_line("Payload accepted.").await;
    let refused = adp.wait_for_line("proxy requires authentication").await;
    assert!(refused.contains("intake.invalid:443"), "{refused}");
    let connect = proxied.lock().unwrap()[0].clone();
    assert!(
        connect.starts_with("CONNECT intake.invalid:443 HTTP/1.1\r\n")
            && connect.contains(&format!("Proxy-Authorization: Basic {proxy_credentials}\r\n")),
        "the proxy's credentials are in use: {connect}"
    );

    // Every route of both APIs, as their sources list them.
    let unprivileged = routes_in(include_str!("../../src/api/unprivileged.rs"));
    let privileged = routes_in(include_str!("../../src/api/privileged.rs"));
    assert_eq!(
        (&unprivileged, &privileged),
        (
            &set(&["/health/live", "/health/ready", "/metrics"]),
            &set(&["/config", "/dogstatsd/contexts", "/dogstatsd/stats", "/logging/level"])
        ),
        "the APIs' routes changed: update these lists (every route is checked for secrets)"
    );
    let mut responses = Vec::new();
    for path in &unprivileged {
        let (status, body) = http_get(&api, path);
        responses.push((format!("unprivileged {path}"), status, body));
    }
    for path in &privileged {
        // The statistics collection takes its duration as a parameter.
        let target = if path == "/dogstatsd/stats" {
            format!("{path}?collection_duration_secs=1")
        } else {
            path.clone()
        };
        let (status, body) = https(&secure_api, &cert, request("GET", &target, Some(&bearer), "")).await;
        responses.push((format!("privileged {path}"), status, body));
    }
    for (route, status, body) in &responses {
        // Readiness is about the components running, not about delivery:
        // the refused additional endpoint does not change it.
        assert_eq!(*status, 200, "{route}: {body}");
        assert!(!body.is_empty(), "{route} answered nothing");
        for secret in &secrets {
            assert!(!body.contains(secret), "{route} shows {secret:?}:\n{body}");
        }
    }
    let config = &responses.iter().find(|r| r.0 == "privileged /config").unwrap().2;
    assert!(config.contains(r#""api_key":"********""#), "{config}");
    assert!(config.contains(&format!("{PROXY_USER}:********@")), "{config}");

    let log = adp.stop().await;
    for secret in &secrets {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privileged_api_refuses_bad_credentials_as_the_agent_does_and_serves_no_plain_http() {
    let (intake, dir) = intake_and_dir().await;
    let cert = write_credentials(dir.path(), TOKEN);
    let env = Env::standalone(&intake.url(), dir.path());
    let (mut adp, api) = start_healthy(&env, dir.path()).await;
    let secure_api = address_in(&adp.wait_for_line("Serving privileged API on").await);

    let same_length = "0".repeat(TOKEN.len());
    let cases: [(&str, Option<String>, u16, &str); 11] = [
        ("no header", None, 401, "no session token provided"),
        ("empty", Some(String::new()), 401, "no session token provided"),
        (
            "Basic scheme",
            Some(format!("Basic {TOKEN}")),
            401,
            "unsupported authorization scheme",
        ),
        (
            "lowercase bearer",
            Some(format!("bearer {TOKEN}")),
            401,
            "unsupported authorization scheme",
        ),
        (
            "token without scheme",
            Some(TOKEN.to_owned()),
            401,
            "unsupported authorization scheme",
        ),
        ("Bearer alone", Some("Bearer".to_owned()), 403, "invalid session token"),
        (
            "wrong token, same length",
            Some(format!("Bearer {same_length}")),
            403,
            "invalid session token",
        ),
        (
            "wrong token, other length",
            Some("Bearer 0123456789abcdef0123456789abcdef".to_owned()),
            403,
            "invalid session token",
        ),
        (
            "prefix of the token",
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            403,
            "invalid session token",
        ),
        (
            "token with a suffix",
            Some(format!("Bearer {TOKEN}0")),
            403,
            "invalid session token",
        ),
        (
            "two spaces",
            Some(format!("Bearer  {TOKEN}")),
            403,
            "invalid session token",
        ),
    ];
    for (case, authorization, status, message) in &cases {
        for (method, path) in [
            ("GET", "/config"),
            ("POST", "/logging/level"),
            ("GET", "/no/such/route"),
        ] {
            let raw = https_raw(
                &secure_api,
                &cert,
                request(method, path, authorization.as_deref(), "debug"),
            )
            .await;
            let (got, body) = parse_response(&raw);
            assert_eq!(
                (got, body.trim()),
                (*status, format!(r#"{{"error":"{message}"}}"#).as_str()),
                "{case}, {method} {path}:\n{raw}"
            );
            assert_eq!(
                raw.contains("\r\nwww-authenticate: Bearer realm=\"Datadog Agent\"\r\n"),
                *status == 401,
                "{case}: WWW-Authenticate on 401 only:\n{raw}"
            );
        }
    }
    // Nothing got through: the level is still the configured one.
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = https(&secure_api, &cert, request("GET", "/logging/level", Some(&bearer), "")).await;
    assert_eq!((status, body.trim()), (200, r#"{"log_level":"info"}"#));
    // Each refusal is logged as the Agent logs it (the log is read on another
    // thread: wait for the lines, then count them exactly).
    let deadline = std::time::Instant::now() + TIMEOUT;
    while adp.log().matches("invalid auth token for ").count() < cases.len() * 3 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        adp.log().matches("invalid auth token for ").count(),
        cases.len() * 3,
        "{}",
        adp.log()
    );
    adp.wait_for_line("invalid auth token for POST request to /logging/level: unsupported authorization scheme")
        .await;

    // Plain HTTP on the TLS port: no HTTP answer; at most a TLS alert, then close.
    let mut plain = TcpStream::connect(&secure_api).unwrap();
    plain.set_read_timeout(Some(TIMEOUT)).unwrap();
    plain
        .write_all(request("GET", "/config", Some(&bearer), "").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let closed = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was served: {}",
        text(&answer)
    );
    // rustls answers a record it cannot parse with one fatal alert record
    // (type 0x15, 2 bytes: level 2, description) and closes.
    assert!(
        answer.len() == 7 && answer[0] == 0x15 && answer[5] == 2,
        "only a fatal TLS alert may come back: {answer:?}"
    );
    assert!(closed.is_ok(), "the connection is closed, not left open: {closed:?}");

    // The unprivileged API has none of the privileged routes, with or without the token.
    for path in ["/config", "/logging/level", "/dogstatsd/stats", "/dogstatsd/contexts"] {
        let (status, body) = http_get(&api, path);
        assert_eq!(
            (status, body.trim()),
            (404, format!(r#"{{"error":"no such endpoint: {path}"}}"#).as_str())
        );
    }
    let mut post = TcpStream::connect(&api).unwrap();
    post.set_read_timeout(Some(TIMEOUT)).unwrap();
    post.write_all(request("POST", "/logging/level", Some(&bearer), "debug").as_bytes())
        .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert_eq!(parse_response(&answer).0, 405, "{answer}");
    let (_, body) = https(&secure_api, &cert, request("GET", "/logging/level", Some(&bearer), "")).await;
    assert_eq!(body.trim(), r#"{"log_level":"info"}"#);

    let log = adp.stop().await;
    assert!(!log.contains(TOKEN), "a presented token was logged:\n{log}");
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_sockets_are_mode_0722_and_a_created_auth_token_is_0600() {
    let (intake, dir) = intake_and_dir().await;
    let datagram = dir.path().join("dsd.socket");
    let stream = dir.path().join("dsd-stream.socket");
    let token_file = dir.path().join("auth_token");
    let env = Env::standalone(&intake.url(), dir.path())
        .set("DD_DOGSTATSD_STREAM_SOCKET", stream.to_string_lossy().into_owned());
    let (mut adp, _) = start_healthy(&env, dir.path()).await;
    for socket in [&datagram, &stream] {
        let meta = std::fs::metadata(socket).unwrap();
        assert!(meta.file_type().is_socket(), "{}", socket.display());
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o722,
            "{}: anyone may send, only the owner reads",
            socket.display()
        );
    }
    let meta = std::fs::metadata(&token_file).expect("the auth token file is created");
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "the token is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.len(), 64, "{token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token:?}");

    let log = adp.stop().await;
    assert!(!log.contains(&token), "the created token was logged:\n{log}");
    assert!(!datagram.exists() && !stream.exists(), "socket files removed at exit");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token,
        "the token is kept for the next run"
    );
    intake.shutdown().await;
}
