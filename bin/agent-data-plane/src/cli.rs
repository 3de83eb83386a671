//! `agent-data-plane dogstatsd stats` and `agent-data-plane dogstatsd top`:
//! clients of the running agent's privileged API, shaped as ADP's CLI.
//!
//! Both read the same configuration as `run` (`-c`, `DD_*`) for three keys:
//! `data_plane.secure_api_listen_address` (an unspecified address means
//! loopback; port 0 cannot be reached, a fixed port must be configured),
//! `auth_token_file_path` (the bearer token: a command run by a user who
//! cannot read it is refused before anything is sent, and the API refuses a
//! wrong one) and `ipc_cert_file_path` (the certificate the API must present;
//! when that file does not exist the agent serves a certificate generated in
//! memory, which cannot be verified: then, as ADP's CLI always does, the
//! certificate is accepted unverified, on a loopback address only).
//!
//! What they print is built by `adp_dogstatsd::debug`.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use adp_dogstatsd::debug::{
    render_stats_cardinality, render_stats_summary, ContextReport, SortDirection, StatsReport, StatsView,
};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::settings::AgentSettings;

/// `agent-data-plane dogstatsd ...`.
#[derive(Debug, Subcommand)]
pub enum DogstatsdCommand {
    /// Counts every metric sample the running agent receives for a while,
    /// per metric name and tags, then prints them (ADP's `dogstatsd stats`).
    Stats(StatsArgs),
    /// Prints the metric names holding the most contexts in the running
    /// agent's aggregator now, with the number of distinct values of their
    /// tags (the Agent's `dogstatsd top`): what fills the memory.
    Top(TopArgs),
}

/// `dogstatsd stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Seconds to collect for (1 to 3600).
    #[arg(short = 'd', long = "duration-secs", value_name = "SECS")]
    duration_secs: u64,
    /// `summary`: one row per metric name and tags; `cardinality`: one row per name.
    #[arg(short = 'm', long = "mode", value_enum, default_value_t = Mode::Summary)]
    mode: Mode,
    /// Sort direction (summary: by name, ascending; cardinality: by contexts, descending).
    #[arg(short = 's', long = "sort-dir", value_enum)]
    sort_dir: Option<Sort>,
    /// Only metric names containing this text.
    #[arg(short = 'f', long = "filter", value_name = "TEXT")]
    filter: Option<String>,
    /// At most this many rows.
    #[arg(short = 'l', long = "limit", value_name = "N")]
    limit: Option<usize>,
    /// Prints the API's JSON answer instead of a table.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

/// `dogstatsd top` options.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Metric names to show.
    #[arg(short = 'm', long = "num-metrics", value_name = "N", default_value_t = 10)]
    num_metrics: usize,
    /// Tag keys to show per metric name.
    #[arg(short = 't', long = "num-tags", value_name = "N", default_value_t = 5)]
    num_tags: usize,
    /// Prints the API's JSON answer (every name) instead of the report.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Summary,
    Cardinality,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Sort {
    Asc,
    Desc,
}

/// Runs `command` against the agent configured by `agent`; returns what to print.
pub fn dogstatsd(agent: &AgentSettings, command: &DogstatsdCommand) -> anyhow::Result<String> {
    let client = PrivilegedClient::new(agent)?;
    match command {
        DogstatsdCommand::Stats(args) => {
            eprintln!("Collecting DogStatsD statistics for {} seconds...", args.duration_secs);
            let body = client.get(
                &format!("/dogstatsd/stats?collection_duration_secs={}", args.duration_secs),
                Duration::from_secs(args.duration_secs),
            )?;
            if args.json {
                return Ok(body);
            }
            let report: StatsReport =
                serde_json::from_str(&body).context("the agent's statistics are not the expected JSON")?;
            let view = StatsView {
                filter: args.filter.clone(),
                limit: args.limit,
                sort: args.sort_dir.map(|s| match s {
                    Sort::Asc => SortDirection::Ascending,
                    Sort::Desc => SortDirection::Descending,
                }),
            };
            Ok(match args.mode {
                Mode::Summary => render_stats_summary(&report, &view),
                Mode::Cardinality => render_stats_cardinality(&report, &view),
            })
        }
        DogstatsdCommand::Top(args) => {
            let body = client.get("/dogstatsd/contexts", Duration::ZERO)?;
            if args.json {
                return Ok(body);
            }
            let report: ContextReport =
                serde_json::from_str(&body).context("the agent's context report is not the expected JSON")?;
            Ok(report.render(args.num_metrics, args.num_tags))
        }
    }
}

/// One HTTPS request at a time to the privileged API, with the bearer token.
struct PrivilegedClient {
    addr: SocketAddr,
    token: String,
    token_path: std::path::PathBuf,
    tls: Arc<ClientConfig>,
}

impl PrivilegedClient {
    fn new(agent: &AgentSettings) -> anyhow::Result<Self> {
        let listen = agent.data_plane.secure_api_listen_address;
        if listen.port() == 0 {
            bail!(
                "data_plane.secure_api_listen_address is {listen}: port 0 is chosen at start, so this command cannot \
                 find the API; configure a fixed port"
            );
        }
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let addr = SocketAddr::new(ip, listen.port());
        let token_path = agent.auth_token_file_path.clone();
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| {
                format!(
                    "cannot read the auth token {} (`auth_token_file_path`); run this command as the user the agent \
                     runs as",
                    token_path.display()
                )
            })?
            .trim()
            .to_owned();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?;
        let cert_path = &agent.ipc_cert_file_path;
        let tls = if cert_path.exists() {
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::api::read_ipc_certificates(cert_path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{} holds an unusable certificate", cert_path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else if ip.is_loopback() {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            bail!(
                "{} (`ipc_cert_file_path`) does not exist, so the certificate of the API at {addr} cannot be verified; \
                 create it, or reach the API on a loopback address",
                cert_path.display()
            );
        };
        Ok(Self {
            addr,
            token,
            token_path,
            tls: Arc::new(tls),
        })
    }

    /// GETs `path`; waits up to `busy` longer than a quick answer takes. The
    /// body of a 200, else an error with the API's own message.
    fn get(&self, path: &str, busy: Duration) -> anyhow::Result<String> {
        let timeout = busy + Duration::from_secs(30);
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10)).with_context(|| {
            format!(
                "cannot connect to the agent's privileged API at {} (data_plane.secure_api_listen_address); is the \
                 agent running?",
                self.addr
            )
        })?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let server = ServerName::try_from("localhost").context("localhost is a server name")?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), server).context("cannot start TLS")?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        tls.write_all(request.as_bytes())
            .and_then(|()| tls.flush())
            .with_context(|| format!("cannot send the request to the privileged API at {}", self.addr))?;
        let mut response = Vec::new();
        if let Err(e) = tls.read_to_end(&mut response) {
            // The server may close without a TLS close_notify: what came is checked below.
            if e.kind() != std::io::ErrorKind::UnexpectedEof || response.is_empty() {
                return Err(e).with_context(|| format!("no answer from the privileged API at {}", self.addr));
            }
        }
        let (status, body) = parse_response(&response)?;
        match status {
            200 => Ok(body),
            401 | 403 => bail!(
                "the privileged API refused the auth token ({status}: {}); use the token in {} \
                 (`auth_token_file_path`) of the running agent",
                api_error(&body),
                self.token_path.display()
            ),
            _ => bail!("the privileged API answered {status}: {}", api_error(&body)),
        }
    }
}

/// The status and the body (complete per `Content-Length`) of an HTTP/1.1 response.
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the privileged API's answer is not HTTP")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the privileged API's answer has no status")?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if length.is_some_and(|n| body.len() < n) {
        bail!("the privileged API's answer was cut short");
    }
    Ok((status, body.to_owned()))
}

/// The `error` of a JSON error body, or the body itself.
fn api_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

/// Accepts the server's certificate without verifying it (only for a
/// loopback API whose certificate exists in memory only), while still
/// checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_with_their_status_and_whole_body() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(ok).unwrap(), (200, "{\"a\":1}".to_owned()));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n{}";
        assert!(parse_response(short).unwrap_err().to_string().contains("cut short"));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(
            api_error(r#"{"error":"invalid session token"}"#),
            "invalid session token"
        );
        assert_eq!(api_error("plain\n"), "plain");
    }
}
