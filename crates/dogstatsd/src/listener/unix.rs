//! The Unix datagram (`dogstatsd_socket`) and stream (`dogstatsd_stream_socket`)
//! listeners, with sender credentials.
//!
//! Datagram sockets get `SO_PASSCRED`, so every datagram carries its sender's
//! pid, uid and gid ([`super::credentials`]). Stream connections take the
//! peer's credentials once, at accept time (`SO_PEERCRED`), since they cannot
//! change over a connection.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use socket2::SockRef;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::{UnixDatagram, UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::credentials::{enable_passcred, recv_with_credentials};
use super::framing::{Frame, StreamFramer};
use super::{prepare_socket_path, set_socket_mode, ListenerError, Pipe, UnixKind};
use crate::codec::DecodeError;
use crate::decoder::{Batch, Decoder};
use crate::listener::credentials::Credentials;

const DATAGRAM_KEY: &str = "dogstatsd_socket";
const STREAM_KEY: &str = "dogstatsd_stream_socket";

fn bind_err<'a>(path: &'a Path, key: &'static str) -> impl Fn(std::io::Error) -> ListenerError + 'a {
    move |source| ListenerError::Bind {
        addr: path.display().to_string(),
        key,
        source,
    }
}

/// Binds the datagram socket: stale file replaced, mode 0o722, `SO_PASSCRED`.
pub(crate) fn bind_datagram(path: &Path, so_rcvbuf: usize) -> Result<UnixDatagram, ListenerError> {
    prepare_socket_path(path, UnixKind::Datagram, DATAGRAM_KEY)?;
    let err = bind_err(path, DATAGRAM_KEY);
    let socket = std::os::unix::net::UnixDatagram::bind(path).map_err(&err)?;
    set_socket_mode(path, DATAGRAM_KEY)?;
    enable_passcred(socket.as_raw_fd()).map_err(&err)?;
    if so_rcvbuf > 0 {
        SockRef::from(&socket).set_recv_buffer_size(so_rcvbuf).map_err(&err)?;
    }
    socket.set_nonblocking(true).map_err(&err)?;
    UnixDatagram::from_std(socket).map_err(&err)
}

/// Binds the stream socket: stale file replaced, mode 0o722.
pub(crate) fn bind_stream(path: &Path, so_rcvbuf: usize) -> Result<UnixListener, ListenerError> {
    prepare_socket_path(path, UnixKind::Stream, STREAM_KEY)?;
    let err = bind_err(path, STREAM_KEY);
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(&err)?;
    set_socket_mode(path, STREAM_KEY)?;
    if so_rcvbuf > 0 {
        SockRef::from(&listener).set_recv_buffer_size(so_rcvbuf).map_err(&err)?;
    }
    listener.set_nonblocking(true).map_err(&err)?;
    UnixListener::from_std(listener).map_err(&err)
}

/// Receives datagrams until shutdown, drains the socket, removes the file.
pub(crate) async fn run_datagram(socket: UnixDatagram, path: PathBuf, mut decoder: Decoder, mut pipe: Pipe) {
    let mut buf = vec![0u8; pipe.buffer_size.max(1)];
    let fd = socket.as_raw_fd();
    let recv = |buf: &mut [u8]| socket.try_io(Interest::READABLE, || recv_with_credentials(fd, buf));
    loop {
        let received = tokio::select! {
            biased;
            _ = pipe.shutdown.changed() => break,
            r = socket.async_io(Interest::READABLE, || recv_with_credentials(fd, &mut buf)) => r,
        };
        let first = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "DogStatsD Unix datagram receive failed.");
                continue;
            }
        };
        let mut batch = Batch {
            origin: first.credentials,
            ..Batch::default()
        };
        decode_datagram(&buf, first, &mut decoder, &pipe, &mut batch);
        // The packets already waiting join the batch (see `PACKETS_PER_BATCH`),
        // as long as they come from the same sender: a batch has one origin.
        let mut bytes = first.len;
        for _ in 1..super::PACKETS_PER_BATCH {
            if bytes >= pipe.buffer_size / 2 {
                break;
            }
            let Ok(next) = recv(&mut buf) else { break };
            if next.credentials != batch.origin {
                let other = Batch {
                    origin: next.credentials,
                    ..Batch::default()
                };
                if !pipe.send(std::mem::replace(&mut batch, other)).await {
                    return remove(&path);
                }
            }
            decode_datagram(&buf, next, &mut decoder, &pipe, &mut batch);
            bytes = bytes.saturating_add(next.len);
        }
        if !pipe.send(batch).await {
            return remove(&path);
        }
    }
    while let Ok(r) = recv(&mut buf) {
        let mut batch = Batch {
            origin: r.credentials,
            ..Batch::default()
        };
        decode_datagram(&buf, r, &mut decoder, &pipe, &mut batch);
        if !pipe.send(batch).await {
            break;
        }
    }
    remove(&path);
}

fn decode_datagram(buf: &[u8], r: super::credentials::Received, decoder: &mut Decoder, pipe: &Pipe, batch: &mut Batch) {
    pipe.telemetry.packets.inc();
    pipe.telemetry.bytes.add(r.len as u64);
    if r.truncated {
        pipe.telemetry.truncated.inc();
        decoder.telemetry().error(DecodeError::Truncated).inc();
        return;
    }
    decoder.decode_packet(buf.get(..r.len).unwrap_or(&[]), batch);
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::debug!(path = %path.display(), error = %e, "Could not remove DogStatsD socket file.");
    }
}

/// Accepts connections until shutdown; each is read by its own task sharing
/// one decoder. On shutdown the connections stop reading (a partial line or
/// frame is discarded) and are awaited.
pub(crate) async fn run_stream(listener: UnixListener, path: PathBuf, decoder: Decoder, mut pipe: Pipe) {
    let decoder = Arc::new(Mutex::new(decoder));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = pipe.shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let creds = stream.peer_cred().ok().map(|c| Credentials {
                        pid: c.pid().unwrap_or(0),
                        uid: c.uid(),
                        gid: c.gid(),
                    });
                    connections.spawn(run_connection(stream, creds, Arc::clone(&decoder), pipe.clone()));
                }
                Err(e) => tracing::debug!(error = %e, "DogStatsD Unix stream accept failed."),
            },
        }
    }
    drop(listener);
    remove(&path);
    while connections.join_next().await.is_some() {}
}

async fn run_connection(
    mut stream: UnixStream,
    origin: Option<Credentials>,
    decoder: Arc<Mutex<Decoder>>,
    mut pipe: Pipe,
) {
    let mut framer = StreamFramer::new(pipe.buffer_size);
    let mut buf = vec![0u8; pipe.buffer_size.max(4096)];
    loop {
        let n = tokio::select! {
            biased;
            _ = pipe.shutdown.changed() => break,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        pipe.telemetry.bytes.add(n as u64);
        let mut batch = Batch {
            origin,
            ..Batch::default()
        };
        {
            let mut decoder = decoder.lock().unwrap_or_else(|e| e.into_inner());
            let telemetry = &pipe.telemetry;
            framer.feed(buf.get(..n).unwrap_or(&[]), &mut |frame| {
                telemetry.packets.inc();
                match frame {
                    Frame::Payload(p) => decoder.decode_packet(p, &mut batch),
                    Frame::Truncated => {
                        telemetry.truncated.inc();
                        decoder.telemetry().error(DecodeError::Truncated).inc();
                    }
                }
            });
        }
        if !pipe.send(batch).await {
            break;
        }
    }
}
