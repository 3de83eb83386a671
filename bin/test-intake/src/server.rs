//! The HTTP side: accept loop, routing, fault application and recording.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use adp_wire::Endpoint;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::behaviour::{Active, Behaviour};
use crate::received::{decode, Received, RequestInfo};
use crate::State;

/// Largest compressed body accepted (the intake's own limits are far lower).
const MAX_BODY_BYTES: usize = 16 << 20;

/// Returned by the service to make hyper drop the connection unanswered.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closing the connection without a response (fault injection)")
    }
}

impl std::error::Error for CloseConnection {}

type Reply = Result<Response<Full<Bytes>>, CloseConnection>;

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    // Dropping the set on return aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let reset = Arc::new(AtomicBool::new(false));
                let conn = Conn { stream, reset: Arc::clone(&reset) };
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(Arc::clone(&state), Arc::clone(&reset), req));
                    // Errors here are client disconnects or our own injected
                    // closes; either way the connection is over.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                });
            }
        }
    }
}

/// An accepted connection that a `reset` fault can end with a TCP RST: once
/// `reset` is set, shutdown (FIN) is skipped and dropping the stream closes
/// it with `SO_LINGER` 0, which makes the kernel send RST instead of FIN.
struct Conn {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset.load(Ordering::Relaxed) {
            // A FIN first would let the client read a clean end of stream.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            // Linger 0 does not block the close (only a non-zero linger does).
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Logs a request whose client went away during an injected delay: hyper
/// drops the handler when the connection closes, and this records the
/// request (status 0, payload not kept) on the way out.
struct Abandoned<'a> {
    state: &'a State,
    info: Option<RequestInfo>,
}

impl Abandoned<'_> {
    fn disarm(mut self) -> RequestInfo {
        self.info.take().expect("only taken here")
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(info) = self.info.take() {
            record(self.state, info, None, None);
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    Ok(response)
}

fn json_reply(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, "application/json", body),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e.to_string()),
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn read_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the request body failed (limit {MAX_BODY_BYTES} bytes): {e}"))
}

/// Whether `query` carries a non-empty `api_key` (never logged: only the path is).
fn query_has_api_key(query: Option<&str>) -> bool {
    query_api_key(query).is_some_and(|v| !v.is_empty())
}

/// The `api_key` of a query string.
fn query_api_key(query: Option<&str>) -> Option<&str> {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("api_key="))
}

/// One intake request being handled: counted in and out, and the most at
/// once kept in [`Received::max_in_flight`].
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut r = state.received();
        r.max_in_flight = r.max_in_flight.max(now);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(state: Arc<State>, reset: Arc<AtomicBool>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(control) = path.strip_prefix("/_intake/") {
        return handle_control(&state, control, req).await;
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let req_query = req.uri().query().map(str::to_owned);
    let endpoint = Endpoint::from_path(&path);
    let name = match (endpoint, path.as_str()) {
        (Some(e), _) => e.as_str(),
        (None, "/api/v1/validate") => "validate",
        (None, _) => "unknown",
    };
    let mut info = RequestInfo {
        endpoint: name.to_owned(),
        method: method.to_string(),
        path: path.clone(),
        // The Agent's key check sends the key as `?api_key=`, payloads as a header.
        api_key_present: headers.get("dd-api-key").is_some_and(|v| !v.is_empty())
            || (name == "validate" && query_has_api_key(req.uri().query())),
        content_encoding: header_string(&headers, "content-encoding"),
        content_type: header_string(&headers, "content-type"),
        user_agent: header_string(&headers, "user-agent"),
        agent_version: header_string(&headers, "dd-agent-version"),
        body_bytes: 0,
        status: 0,
    };
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(e) => return finish(&state, info, StatusCode::BAD_REQUEST, Some(e), None),
    };
    info.body_bytes = u64::try_from(body.len()).unwrap_or(u64::MAX);

    let Some(endpoint) = endpoint else {
        if name == "validate" && method == Method::GET {
            let valid = state.behaviour().valid_api_key();
            let presented = query_api_key(req_query.as_deref());
            return if valid.is_some() && presented != valid.as_deref() {
                // The intake's answer for a key of no organisation.
                finish(
                    &state,
                    info,
                    StatusCode::FORBIDDEN,
                    Some("validate: invalid api_key".to_owned()),
                    None,
                )
            } else if info.api_key_present {
                finish(&state, info, StatusCode::OK, None, None)
            } else {
                finish(
                    &state,
                    info,
                    StatusCode::FORBIDDEN,
                    Some("validate: missing api_key".to_owned()),
                    None,
                )
            };
        }
        let error = format!("{method} {path}: not an intake endpoint this test intake knows");
        return finish(&state, info, StatusCode::NOT_FOUND, Some(error), None);
    };
    if method != Method::POST {
        let error = format!("{method} {path}: intake endpoints take POST");
        return finish(&state, info, StatusCode::METHOD_NOT_ALLOWED, Some(error), None);
    }

    let _in_flight = InFlight::enter(&state);
    let fault = state.behaviour().take();
    if !fault.delay.is_zero() {
        let guard = Abandoned {
            state: &state,
            info: Some(info),
        };
        tokio::time::sleep(fault.delay).await;
        info = guard.disarm();
    }
    if fault.close || fault.reset {
        record(&state, info, None, None);
        reset.store(fault.reset, Ordering::Relaxed);
        return Err(CloseConnection);
    }
    let encoding = info.content_encoding.clone().unwrap_or_default();
    if let Some(code) = fault.status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Kept aside (not received): what the agent sent that was refused.
        let refused = if state.options.blackhole {
            None
        } else {
            decode(endpoint, &encoding, &body).ok()
        };
        return finish(&state, info, status, None, refused);
    }
    if !info.api_key_present {
        let error = format!("{endpoint}: missing DD-Api-Key header");
        return finish(&state, info, StatusCode::FORBIDDEN, Some(error), None);
    }
    if let Some(valid) = &fault.api_key {
        if headers.get("dd-api-key").map(|v| v.as_bytes()) != Some(valid.as_bytes()) {
            let error = format!("{endpoint}: DD-Api-Key is not the valid key");
            return finish(&state, info, StatusCode::FORBIDDEN, Some(error), None);
        }
    }
    let answer = if state.options.blackhole {
        finish(&state, info, StatusCode::ACCEPTED, None, None)
    } else {
        match decode(endpoint, &encoding, &body) {
            Ok(decoded) => {
                if state.options.print {
                    print_payload(&info, &decoded);
                }
                finish(&state, info, StatusCode::ACCEPTED, None, Some(decoded))
            }
            Err(e) => return finish(&state, info, StatusCode::BAD_REQUEST, Some(e), None),
        }
    };
    if !fault.ack_delay.is_zero() {
        // Recorded already: a client giving up now has delivered the payload.
        tokio::time::sleep(fault.ack_delay).await;
    }
    answer
}

/// Records the request and answers it (`{}` for 2xx, the error text otherwise).
/// `decoded` is received when the answer is 202, else kept as refused.
fn finish(
    state: &State,
    mut info: RequestInfo,
    status: StatusCode,
    error: Option<String>,
    decoded: Option<crate::Decoded>,
) -> Reply {
    info.status = status.as_u16();
    let body = match (&error, status.is_success()) {
        (_, true) if info.endpoint == "validate" => "{\"valid\":true}".to_owned(),
        (_, true) => "{}".to_owned(),
        (Some(e), false) => serde_json::json!({ "errors": [e] }).to_string(),
        (None, false) => serde_json::json!({ "errors": [format!("injected status {}", status.as_u16())] }).to_string(),
    };
    record(state, info, error, decoded);
    reply(status, "application/json", body)
}

fn record(state: &State, info: RequestInfo, error: Option<String>, decoded: Option<crate::Decoded>) {
    {
        let mut r = state.received();
        *r.requests.entry(info.endpoint.clone()).or_default() += 1;
        *r.bytes.entry(info.endpoint.clone()).or_default() += info.body_bytes;
        if info.status == StatusCode::ACCEPTED.as_u16() {
            *r.accepted.entry(info.endpoint.clone()).or_default() += 1;
        }
        if let Some(e) = error {
            r.errors.push(e);
        }
        if let Some(d) = decoded {
            if info.status == StatusCode::ACCEPTED.as_u16() {
                d.record(&mut r);
            } else {
                r.refused.push(d);
            }
        }
        if !state.options.blackhole {
            r.request_log.push(info);
        }
    }
    state.changed.notify_waiters();
}

/// One `--print` line: the request first, then what it carried.
#[derive(serde::Serialize)]
struct PrintLine<'a> {
    endpoint: &'a str,
    content_encoding: &'a str,
    body_bytes: u64,
    #[serde(flatten)]
    payload: &'a crate::Decoded,
}

fn print_payload(info: &RequestInfo, decoded: &crate::Decoded) {
    let line = PrintLine {
        endpoint: &info.endpoint,
        content_encoding: info.content_encoding.as_deref().unwrap_or("identity"),
        body_bytes: info.body_bytes,
        payload: decoded,
    };
    if let Ok(json) = serde_json::to_string(&line) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
        let _ = out.flush();
    }
}

async fn handle_control(state: &State, what: &str, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    match (method, what) {
        (Method::GET, "received") => {
            let snapshot: Received = state.received().clone();
            json_reply(StatusCode::OK, &snapshot)
        }
        (Method::GET, "behaviour") => json_reply(StatusCode::OK, state.behaviour().behaviour()),
        (Method::POST, "behaviour") => {
            let body = match read_body(req.into_body()).await {
                Ok(b) => b,
                Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain", e),
            };
            match serde_json::from_slice::<Behaviour>(&body) {
                Ok(b) => {
                    *state.behaviour() = Active::new(b.clone());
                    json_reply(StatusCode::OK, &b)
                }
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("behaviour JSON not understood ({e}); fields: status, delay_ms, ack_delay_ms, close, reset, api_key, next, for_ms"),
                ),
            }
        }
        (Method::POST, "reset") => {
            *state.received() = Received::default();
            *state.behaviour() = Active::new(Behaviour::normal());
            state.changed.notify_waiters();
            reply(StatusCode::OK, "application/json", "{}")
        }
        (method, _) => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no control endpoint {method} /_intake/{what}"),
        ),
    }
}
