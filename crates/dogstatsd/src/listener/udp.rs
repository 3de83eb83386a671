//! The UDP listener (`dogstatsd_port`).

use std::net::SocketAddr;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{ListenerError, Pipe};
use crate::codec::DecodeError;
use crate::decoder::{Batch, Decoder};

/// Binds a non-blocking UDP socket with the requested receive buffer.
pub(crate) fn bind(addr: SocketAddr, so_rcvbuf: usize) -> Result<UdpSocket, ListenerError> {
    let err = |source| ListenerError::Bind {
        addr: format!("udp://{addr}"),
        key: "dogstatsd_port",
        source,
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if so_rcvbuf > 0 {
        socket.set_recv_buffer_size(so_rcvbuf).map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

/// Receives until shutdown, then drains what the kernel already holds.
pub(crate) async fn run(socket: UdpSocket, mut decoder: Decoder, mut pipe: Pipe) {
    // One spare byte tells a datagram of exactly the buffer size from a larger one.
    let mut buf = vec![0u8; pipe.buffer_size.saturating_add(1)];
    loop {
        tokio::select! {
            biased;
            _ = pipe.shutdown.changed() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => {
                    if !handle(&buf, n, &mut decoder, &pipe).await {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "DogStatsD UDP receive failed."),
            },
        }
    }
    while let Ok((n, _)) = socket.try_recv_from(&mut buf) {
        if !handle(&buf, n, &mut decoder, &pipe).await {
            return;
        }
    }
}

async fn handle(buf: &[u8], n: usize, decoder: &mut Decoder, pipe: &Pipe) -> bool {
    pipe.telemetry.packets.inc();
    pipe.telemetry.bytes.add(n as u64);
    if n > pipe.buffer_size {
        pipe.telemetry.truncated.inc();
        decoder.telemetry().error(DecodeError::Truncated).inc();
        return true;
    }
    let mut batch = Batch::default();
    decoder.tick(Instant::now());
    decoder.decode_packet(buf.get(..n).unwrap_or(&[]), &mut batch);
    pipe.send(batch).await
}
