//! The `adp-test-intake` binary as shell checks use it: port 0, the
//! `listening on` line, `--print` JSON lines, and a clean SIGTERM exit.
//!
//! Under `checks/cargo-armv7.sh` the binary is an ARM executable; it runs
//! through `$ADP_TEST_RUNNER` (qemu-arm) when that is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adp_encoder::{Encoder, EncoderConfig, SeriesType};
use adp_wire::CompressionKind;

fn spawn(args: &[&str]) -> Child {
    let exe = env!("CARGO_BIN_EXE_adp-test-intake");
    let mut command = match std::env::var("ADP_TEST_RUNNER").ok().filter(|r| !r.trim().is_empty()) {
        Some(runner) => {
            let mut parts = runner.split_whitespace();
            let mut c = Command::new(parts.next().expect("runner program"));
            c.args(parts).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn adp-test-intake")
}

/// A minimal HTTP/1.1 exchange (`Connection: close`), enough for a check script's needs.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_binary_prints_its_address_then_each_decoded_payload() {
    let mut child = spawn(&["--listen", "127.0.0.1:0", "--print"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .expect("first line")
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);

    let config = EncoderConfig {
        hostname: "board-1".into(),
        serializer_compressor_kind: CompressionKind::Zstd,
        ..Default::default()
    };
    let enc = Encoder::new(config, &adp_telemetry::Registry::new()).unwrap();
    let p = enc
        .encode_series_parts([(
            "demo.rate",
            &["env:dev"][..],
            SeriesType::Rate,
            10,
            &[(1_700_000_000, 0.3)][..],
        )])
        .unwrap();
    let headers = [
        ("DD-Api-Key", "k"),
        ("Content-Type", p[0].content_type),
        ("Content-Encoding", p[0].content_encoding),
    ];
    let (status, _) = http(addr, "POST", p[0].endpoint.path(), &headers, &p[0].body);
    assert_eq!(status, 202);

    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        printed,
        serde_json::json!({
            "endpoint": "series",
            "content_encoding": "zstd",
            "body_bytes": p[0].body.len(),
            "series": [{
                "metric": "demo.rate", "type": "rate", "interval": 10, "host": "board-1",
                "tags": ["env:dev"], "points": [[1_700_000_000, 0.3]], "origin": [10, 10, 0]
            }]
        })
    );
    assert!(
        line.starts_with("{\"endpoint\":\"series\""),
        "request fields come first: {line}"
    );

    let (status, body) = http(addr, "GET", "/_intake/received", &[], b"");
    assert_eq!(status, 200);
    let received: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(received["accepted"]["series"], 1);

    let terminated = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let child = spawn(&["--listen", &addr]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("--listen"),
        "{stderr}"
    );
}
