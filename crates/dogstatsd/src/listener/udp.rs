//! The UDP listener (`dogstatsd_port`).

use std::net::SocketAddr;

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
                    let mut batch = Batch::default();
                    decode(&buf, n, &mut decoder, &pipe, &mut batch);
                    add_ready_packets(&socket, &mut buf, n, &mut decoder, &pipe, &mut batch);
                    if !pipe.send(batch).await {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "DogStatsD UDP receive failed."),
            },
        }
    }
    while let Ok((n, _)) = socket.try_recv_from(&mut buf) {
        let mut batch = Batch::default();
        decode(&buf, n, &mut decoder, &pipe, &mut batch);
        if !pipe.send(batch).await {
            return;
        }
    }
}

/// Decodes into `batch` the packets the kernel already holds, up to
/// [`PACKETS_PER_BATCH`](super::PACKETS_PER_BATCH) in all and until they
/// total half the buffer: one channel send and one consumer wake-up for a run
/// of packets instead of one each, as the Agent's packet buffer
/// (`dogstatsd_packet_buffer_size`) groups them.
fn add_ready_packets(
    socket: &UdpSocket,
    buf: &mut [u8],
    first: usize,
    decoder: &mut Decoder,
    pipe: &Pipe,
    batch: &mut Batch,
) {
    let mut bytes = first;
    for _ in 1..super::PACKETS_PER_BATCH {
        if bytes >= pipe.buffer_size / 2 {
            break;
        }
        let Ok((n, _)) = socket.try_recv_from(buf) else { break };
        decode(buf, n, decoder, pipe, batch);
        bytes = bytes.saturating_add(n);
    }
}

fn decode(buf: &[u8], n: usize, decoder: &mut Decoder, pipe: &Pipe, batch: &mut Batch) {
    pipe.telemetry.packets.inc();
    pipe.telemetry.bytes.add(n as u64);
    if n > pipe.buffer_size {
        pipe.telemetry.truncated.inc();
        decoder.telemetry().error(DecodeError::Truncated).inc();
        return;
    }
    decoder.decode_packet(buf.get(..n).unwrap_or(&[]), batch);
}
