//! The HTTP(S) client: hyper's pooled HTTP/1.1 client over a small connector
//! that speaks plain TCP, rustls, and HTTP proxies.
//!
//! The connector picks the route per destination, so one client serves every
//! endpoint:
//!
//! | destination | proxy for it | route |
//! |---|---|---|
//! | `http://`  | none | TCP to the host |
//! | `http://`  | `proxy.http` | TCP to the proxy; hyper sends the request line in absolute form |
//! | `https://` | none | TCP + TLS to the host |
//! | `https://` | `proxy.https` | TCP to the proxy, `CONNECT host:port`, then TLS to the host through the tunnel |
//!
//! Proxy credentials in the URL (`http://user:pass@proxy:3128`) are sent as
//! `Proxy-Authorization: Basic`. TLS is rustls with the ring provider (TLS 1.2
//! and 1.3, ALPN `http/1.1`); trusted roots are Mozilla's (webpki-roots) plus
//! the system bundle (`SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`)
//! when it can be read, so corporate CAs installed on the board work.
//!
//! A hand-written connector (rather than hyper-rustls + hyper-util's proxy
//! tunnel) keeps routing, `no_proxy` and proxy authentication in one place and
//! the dependency tree small.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{redact_userinfo, ProxyConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no HTTP status.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// `forwarder_timeout` elapsed.
    Timeout,
    /// Connecting, TLS, proxying or the exchange failed.
    Transport(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out (forwarder_timeout)"),
            Self::Transport(e) => f.write_str(e),
        }
    }
}

/// A pooled client with a per-request timeout.
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// Builds the client, keeping up to `idle_per_host` idle connections per
    /// host (one per worker, so that concurrent requests reuse their TLS
    /// sessions); fails only when a proxy URL cannot be parsed.
    pub(crate) fn new(proxy: &ProxyConfig, timeout: Duration, idle_per_host: usize) -> Result<Self, String> {
        Self::with_tls(proxy, timeout, idle_per_host, tls_config())
    }

    fn with_tls(
        proxy: &ProxyConfig,
        timeout: Duration,
        idle_per_host: usize,
        tls: rustls::ClientConfig,
    ) -> Result<Self, String> {
        let routes = ProxyRoutes {
            https: proxy.https.as_deref().map(ProxyTarget::parse).transpose()?,
            http: proxy.http.as_deref().map(ProxyTarget::parse).transpose()?,
            no_proxy: NoProxy::new(&proxy.no_proxy),
        };
        let connector = Connector {
            tls: TlsConnector::from(Arc::new(tls)),
            routes: Arc::new(routes),
        };
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(45))
            .pool_max_idle_per_host(idle_per_host.max(4))
            .build(connector);
        Ok(Self { inner, timeout })
    }

    /// POSTs `body` within `forwarder_timeout`; returns the status once the
    /// response body has been read.
    pub(crate) async fn post(&self, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<StatusCode, RequestError> {
        self.send(Method::POST, uri, headers, body, self.timeout).await
    }

    /// GETs `uri` within `timeout` (API key validation has its own).
    pub(crate) async fn get(
        &self,
        uri: Uri,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<StatusCode, RequestError> {
        self.send(Method::GET, uri, headers, Bytes::new(), timeout).await
    }

    async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<StatusCode, RequestError> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| RequestError::Transport(e.to_string()))?;
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| RequestError::Transport(adp_fmt::error_chain(&e)))?;
            let status = response.status();
            // Reading the (small) body lets the connection return to the pool.
            let _ = response.into_body().collect().await;
            Ok(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RequestError::Timeout),
        }
    }
}

/// The rustls client configuration: ring, TLS 1.2+1.3, webpki + system roots.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let (added, path) = add_system_roots(&mut roots);
    tracing::debug!(system_roots = added, bundle = %path.display(), "Loaded TLS roots.");
    tls_config_with_roots(roots)
}

fn tls_config_with_roots(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Adds the certificates of the system bundle, if readable; returns how many
/// were added and from where.
fn add_system_roots(roots: &mut rustls::RootCertStore) -> (usize, PathBuf) {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    (add_pem_roots(roots, &path), path)
}

fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> usize {
    let Ok(certs) = CertificateDer::pem_file_iter(path) else {
        return 0;
    };
    let mut added = 0;
    for cert in certs.flatten() {
        if roots.add(cert).is_ok() {
            added += 1;
        }
    }
    added
}

/// Which proxy (if any) serves which scheme.
#[derive(Debug)]
struct ProxyRoutes {
    https: Option<ProxyTarget>,
    http: Option<ProxyTarget>,
    no_proxy: NoProxy,
}

/// A parsed `http://[user:pass@]host:port` proxy.
#[derive(Debug, Clone)]
struct ProxyTarget {
    host: String,
    port: u16,
    authorization: Option<HeaderValue>,
}

impl ProxyTarget {
    fn parse(url: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid proxy URL {}: {why}", redact_userinfo(url));
        let uri: Uri = url.trim().parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// proxies are supported"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?.as_str();
        let (userinfo, _) = authority
            .rsplit_once('@')
            .map_or((None, authority), |(u, h)| (Some(u), h));
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let authorization = match userinfo {
            Some(u) => {
                let mut v = HeaderValue::from_str(&format!("Basic {}", base64(percent_decode(u).as_bytes())))
                    .map_err(|_| invalid("bad credentials"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: uri.port_u16().unwrap_or(80),
            authorization,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Two hex digits are at most 255.
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `no_proxy` matching (see [`ProxyConfig::no_proxy`]); loopback is always direct.
#[derive(Debug, Default)]
pub(crate) struct NoProxy {
    all: bool,
    entries: Vec<(String, Option<u16>)>,
}

impl NoProxy {
    pub(crate) fn new(list: &[String]) -> Self {
        let mut this = Self::default();
        for raw in list {
            let entry = raw.trim().to_ascii_lowercase();
            if entry == "*" {
                this.all = true;
                continue;
            }
            if entry.is_empty() {
                continue;
            }
            // `host:port` (but not a bare IPv6 address).
            let (host, port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h.to_owned(), p.parse().ok()),
                _ => (entry.clone(), None),
            };
            this.entries
                .push((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
        }
        this
    }

    /// Whether `host:port` is reached directly.
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        if self.all || host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.entries.iter().any(|(entry, entry_port)| {
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            if let Some(suffix) = entry.strip_prefix('.') {
                host.ends_with(&format!(".{suffix}"))
            } else {
                host == *entry || host.ends_with(&format!(".{entry}"))
            }
        })
    }
}

/// The tower service hyper calls to open connections.
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    routes: Arc<ProxyRoutes>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(dst).await })
    }
}

impl Connector {
    async fn connect(&self, dst: Uri) -> Result<Conn, BoxError> {
        let https = match dst.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("unsupported scheme {other:?}").into()),
        };
        let host = dst
            .host()
            .ok_or("URL without host")?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = dst.port_u16().unwrap_or(if https { 443 } else { 80 });
        let proxy = if https { &self.routes.https } else { &self.routes.http };
        let proxy = proxy.as_ref().filter(|_| !self.routes.no_proxy.matches(host, port));
        match (https, proxy) {
            (false, None) => Ok(Conn::plain(tcp(host, port).await?, false)),
            (false, Some(p)) => Ok(Conn::plain(tcp(&p.host, p.port).await?, true)),
            (true, proxy) => {
                let stream = match proxy {
                    None => tcp(host, port).await?,
                    Some(p) => {
                        let mut s = tcp(&p.host, p.port).await?;
                        tunnel(&mut s, host, port, p.authorization.as_ref()).await?;
                        s
                    }
                };
                let name =
                    ServerName::try_from(host.to_owned()).map_err(|e| format!("invalid TLS name {host:?}: {e}"))?;
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
                Ok(Conn {
                    io: TokioIo::new(Stream::Tls(Box::new(tls))),
                    proxied: false,
                })
            }
        }
    }
}

async fn tcp(host: &str, port: u16) -> Result<TcpStream, BoxError> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens an HTTP `CONNECT` tunnel to `host:port` over `stream` (a connection
/// to the proxy). Fails unless the proxy answers 2xx.
pub(crate) async fn tunnel<S>(stream: &mut S, host: &str, port: u16, auth: Option<&HeaderValue>) -> Result<(), BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(auth) = auth {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(auth.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await?;
    stream.flush().await?;

    // Read byte-wise up to the blank line so no TLS bytes are consumed.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 8192 {
            return Err("proxy CONNECT response header exceeds 8 KiB".into());
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(format!("proxy closed the connection during CONNECT to {authority}").into());
        }
        head.push(byte[0]);
    }
    let status_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(407) => Err(format!(
            "proxy requires authentication for CONNECT to {authority} (407): set credentials in proxy.https"
        )
        .into()),
        _ => Err(format!("proxy refused CONNECT to {authority}: {}", status_line.trim()).into()),
    }
}

/// Plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection handed to hyper; `proxied` makes hyper use absolute-form
/// request targets (plain HTTP through a proxy).
struct Conn {
    io: TokioIo<Stream>,
    proxied: bool,
}

impl Conn {
    fn plain(stream: TcpStream, proxied: bool) -> Self {
        Self {
            io: TokioIo::new(Stream::Plain(stream)),
            proxied,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;

    #[test]
    fn no_proxy_matches_domains_suffixes_ports_and_loopback() {
        let np = NoProxy::new(&[
            "Example.com".into(),
            ".sub.test".into(),
            "10.0.0.1".into(),
            "host.test:8443".into(),
        ]);
        assert!(np.matches("example.com", 443));
        assert!(np.matches("intake.example.com", 443));
        assert!(!np.matches("badexample.com", 443));
        assert!(np.matches("a.sub.test", 443));
        assert!(!np.matches("sub.test", 443));
        assert!(np.matches("10.0.0.1", 80));
        assert!(!np.matches("10.0.0.2", 80));
        assert!(np.matches("host.test", 8443));
        assert!(!np.matches("host.test", 443));
        assert!(np.matches("127.0.0.1", 1) && np.matches("::1", 1) && np.matches("localhost", 1));
        assert!(NoProxy::new(&["*".into()]).matches("anything.example", 443));
    }

    #[test]
    fn proxy_credentials_become_basic_authorization() {
        let p = ProxyTarget::parse("http://user%40corp:p%3Ass@proxy.internal:3128").unwrap();
        assert_eq!(p.host, "proxy.internal");
        assert_eq!(p.port, 3128);
        // base64("user@corp:p:ss")
        assert_eq!(p.authorization.unwrap().to_str().unwrap(), "Basic dXNlckBjb3JwOnA6c3M=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert!(ProxyTarget::parse("https://proxy:1").is_err());
    }

    #[test]
    fn the_system_bundle_is_optional() {
        let mut roots = rustls::RootCertStore::empty();
        assert_eq!(add_pem_roots(&mut roots, Path::new("/nonexistent/ca.crt")), 0);
        let _ = tls_config();
    }

    #[tokio::test]
    async fn connect_tunnel_sends_authority_and_credentials_then_carries_bytes() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, head) = accept_connect(&proxy).await;
            // Echo what follows, as the tunnelled peer would see it.
            let mut payload = [0u8; 5];
            s.read_exact(&mut payload).await.unwrap();
            s.write_all(&payload).await.unwrap();
            head
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        let auth = HeaderValue::from_static("Basic dTpw");
        tunnel(&mut s, "app.datadoghq.com", 443, Some(&auth)).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        s.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello");
        let head = server.await.unwrap();
        assert!(head.starts_with("CONNECT app.datadoghq.com:443 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Host: app.datadoghq.com:443\r\n"), "{head}");
        assert!(head.contains("Proxy-Authorization: Basic dTpw\r\n"), "{head}");
    }

    /// A TLS intake on loopback with a certificate for `intake.example` and
    /// `localhost`, signed by `testdata/ca.pem` (an EC P-256 CA made with
    /// openssl for these tests, valid for 100 years; the CA key was discarded).
    async fn tls_intake() -> SocketAddr {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(include_bytes!("testdata/server.pem"))
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                        let key = req.headers().get("dd-api-key").cloned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = if key.is_some_and(|k| k == "k") && &body[..] == b"tls-body" {
                            202
                        } else {
                            400
                        };
                        let response = http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        addr
    }

    /// Accepts one connection on `proxy` and reads its request head (up to
    /// the blank line); the answer is the caller's.
    pub(crate) async fn read_connect_head(proxy: &TcpListener) -> (TcpStream, String) {
        let (mut s, _) = proxy.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        (s, String::from_utf8(head).unwrap())
    }

    /// A CONNECT proxy's side of [`tunnel`]: accepts one connection, reads
    /// the request head and answers 200; the stream then carries the tunnel.
    async fn accept_connect(proxy: &TcpListener) -> (TcpStream, String) {
        let (mut s, head) = read_connect_head(proxy).await;
        s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        (s, head)
    }

    fn test_client(proxy: &ProxyConfig) -> HttpClient {
        let mut roots = rustls::RootCertStore::empty();
        assert_eq!(
            add_pem_roots(
                &mut roots,
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/ca.pem")
            ),
            1
        );
        HttpClient::with_tls(proxy, Duration::from_secs(10), 4, tls_config_with_roots(roots)).unwrap()
    }

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("dd-api-key", HeaderValue::from_static("k"));
        h
    }

    #[tokio::test]
    async fn https_requests_verify_the_intake_certificate() {
        let addr = tls_intake().await;
        let client = test_client(&ProxyConfig::default());
        let uri: Uri = format!("https://localhost:{}/api/v2/series", addr.port())
            .parse()
            .unwrap();
        let status = client
            .post(uri.clone(), headers(), Bytes::from_static(b"tls-body"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::ACCEPTED);
        // Without the test CA the handshake fails (and is reported as such).
        let untrusted = HttpClient::new(&ProxyConfig::default(), Duration::from_secs(10), 4).unwrap();
        let err = untrusted
            .post(uri, headers(), Bytes::from_static(b"tls-body"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS handshake"), "{err}");
    }

    #[tokio::test]
    async fn https_goes_through_a_connect_proxy() {
        let intake = tls_intake().await;
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut client, head) = accept_connect(&proxy).await;
            let _ = seen_tx.send(head);
            // intake.example does not resolve: this proxy routes it to the test intake.
            let mut upstream = TcpStream::connect(intake).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        let config = ProxyConfig {
            https: Some(format!("http://user:pw@{proxy_addr}")),
            ..Default::default()
        };
        let client = test_client(&config);
        let uri: Uri = "https://intake.example/api/v2/series".parse().unwrap();
        let status = client
            .post(uri, headers(), Bytes::from_static(b"tls-body"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::ACCEPTED);
        let head = seen_rx.await.unwrap();
        assert!(head.starts_with("CONNECT intake.example:443 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Proxy-Authorization: Basic dXNlcjpwdw==\r\n"), "{head}");
    }

    #[tokio::test]
    async fn connect_tunnel_reports_a_refusal() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = proxy.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await
                .unwrap();
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        let err = tunnel(&mut s, "app.datadoghq.com", 443, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("407") && err.contains("proxy.https"), "{err}");
    }
}
