//! The two HTTP APIs, served with hyper 1 on plain TCP (unprivileged) or TLS
//! (privileged).
//!
//! - [`unprivileged`], on `data_plane.api_listen_address`: health and telemetry,
//!   safe to expose to a supervisor or a scraper.
//! - [`privileged`], on `data_plane.secure_api_listen_address`: TLS with the
//!   Agent's IPC certificate and a bearer token; shows configuration and changes
//!   the process (log level).
//!
//! Each accepted connection is served on its own task with an HTTP/1.1 header
//! timeout, so an idle or slow client cannot hold the API.

pub mod privileged;
mod tls;
pub mod unprivileged;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::supervisor::Supervisor;

pub use tls::{load_or_create_auth_token, load_or_generate_tls, read_ipc_certificates};

/// Every response body is built in memory; the APIs return small documents.
pub type Body = Full<Bytes>;

/// How long a client may take to send request headers, or the TLS handshake.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with a body and content type.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    respond(status, "application/json", text)
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// Listens on `addr` (the setting `key`, named on failure) and serves the API
/// `name` there with `handler` as a supervised task until `shutdown` turns true.
pub async fn spawn<H, F>(
    supervisor: &Supervisor,
    name: &'static str,
    (addr, key): (SocketAddr, &str),
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen for the {name} on {addr} (`{key}`)"))?;
    tracing::info!("Serving {name} on {}.", listener.local_addr()?);
    Ok(supervisor.spawn(name, None, serve(listener, tls, handler, shutdown)))
}

/// Serves connections from `listener` with `handler` until `shutdown` turns true.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "API accept error; retrying.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return,
        };
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(CLIENT_TIMEOUT);
            let result = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(acceptor) => match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => http.serve_connection(TokioIo::new(tls_stream), service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake with an API client did not complete.");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake with an API client timed out.");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended with an error.");
            }
        });
    }
}

/// Completes once `shutdown` holds true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here, not across an await.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}
