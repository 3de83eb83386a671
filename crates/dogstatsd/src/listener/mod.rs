//! The socket listeners: UDP, Unix datagram and Unix stream.
//!
//! Each listener is one tokio task that receives payloads into a buffer of
//! `dogstatsd_buffer_size` bytes, decodes them with its own
//! [`Decoder`](crate::decoder::Decoder) and sends the resulting
//! [`Batch`] downstream. Sending waits when the channel
//! is full, or as long as the source's [`Pacer`] says (the memory limiter),
//! so a slow consumer or a process near its memory limit stops the reads and
//! the kernel's socket buffer (`dogstatsd_so_rcvbuf`) absorbs or drops the
//! excess — back pressure never grows memory here.
//!
//! Datagram listeners decode the packets that are already waiting into one
//! batch — at most `PACKETS_PER_BATCH` (32) packets and about half a buffer of
//! bytes past the first, so a batch holds less than 1.5 buffers of packets.
//!
//! Payloads larger than the buffer are counted as truncated and dropped whole:
//! a cut-off DogStatsD message would decode to wrong values.
//!
//! Unix socket files are created with mode `0o722` (anyone may send, only the
//! owner may read). A leftover file from a dead process is replaced; a socket
//! some live process still listens on is not stolen: binding fails with an
//! error naming the path and the config key.
//!
//! # Missing
//!
//! - Credentials are attached to batches but not resolved to container tags
//!   (there is no tagger); `c:`/`e:`/`card:` are parsed but not used either.

pub mod credentials;
pub mod framing;
pub(crate) mod udp;
pub(crate) mod unix;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};

use crate::decoder::Batch;
use crate::source::Pacer;
use crate::telemetry::ListenerTelemetry;

/// The most packets decoded into one batch (the Agent's
/// `dogstatsd_packet_buffer_size` default).
pub(crate) const PACKETS_PER_BATCH: usize = 32;

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A UDP address.
    Udp(SocketAddr),
    /// A Unix datagram socket path.
    UnixDatagram(PathBuf),
    /// A Unix stream socket path.
    UnixStream(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp://{a}"),
            Self::UnixDatagram(p) => write!(f, "unixgram://{}", p.display()),
            Self::UnixStream(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// A listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Binding (or configuring) the socket failed; `source` says why.
    #[error("cannot bind the DogStatsD listener to {addr} (check `{key}`)")]
    Bind {
        /// The address.
        addr: String,
        /// The config key that sets it.
        key: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another live process listens on the socket path.
    #[error("cannot bind the DogStatsD listener to {}: another process is listening on it (stop that process, or set `{key}` to another path)", path.display())]
    SocketInUse {
        /// The path.
        path: PathBuf,
        /// The config key that sets it.
        key: &'static str,
    },
    /// The path exists and is not a socket.
    #[error("cannot bind the DogStatsD listener to {}: the file exists and is not a socket (remove it, or set `{key}` to another path)", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// The config key that sets it.
        key: &'static str,
    },
}

/// What a listener task needs besides its socket and decoder.
#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    pub tx: mpsc::Sender<Batch>,
    pub shutdown: watch::Receiver<bool>,
    pub telemetry: ListenerTelemetry,
    pub buffer_size: usize,
    pub pacer: Option<Pacer>,
}

impl Pipe {
    /// Sends a non-empty batch, after the pacer's wait; `false` when the
    /// receiver is gone.
    pub(crate) async fn send(&self, batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        if let Some(delay) = self.pacer.as_ref().and_then(Pacer::delay) {
            tokio::time::sleep(delay).await;
        }
        self.tx.send(batch).await.is_ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnixKind {
    Datagram,
    Stream,
}

/// Makes `path` free for binding: a stale socket file is removed, a live
/// socket or a non-socket file is an error.
pub(crate) fn prepare_socket_path(path: &Path, kind: UnixKind, key: &'static str) -> Result<(), ListenerError> {
    let bind_err = |source| ListenerError::Bind {
        addr: path.display().to_string(),
        key,
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bind_err(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ListenerError::NotASocket {
            path: path.to_owned(),
            key,
        });
    }
    let live = match kind {
        UnixKind::Datagram => std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(path))
            .is_ok(),
        UnixKind::Stream => std::os::unix::net::UnixStream::connect(path).is_ok(),
    };
    if live {
        return Err(ListenerError::SocketInUse {
            path: path.to_owned(),
            key,
        });
    }
    tracing::info!(path = %path.display(), "Removing stale DogStatsD socket file.");
    std::fs::remove_file(path).map_err(bind_err)
}

/// Applies mode 0o722 to a freshly bound socket file.
pub(crate) fn set_socket_mode(path: &Path, key: &'static str) -> Result<(), ListenerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o722)).map_err(|source| ListenerError::Bind {
        addr: path.display().to_string(),
        key,
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixDatagram, UnixListener};

    use super::*;

    #[test]
    fn a_taken_udp_port_names_address_and_key_and_leaves_the_cause_to_the_source() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = udp::bind(addr, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot bind the DogStatsD listener to udp://{addr} (check `dogstatsd_port`)")
        );
        let cause = std::error::Error::source(&err).expect("the OS error");
        assert_eq!(
            cause.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::AddrInUse)
        );
    }

    #[test]
    fn a_missing_path_is_free() {
        let dir = tempfile::tempdir().unwrap();
        prepare_socket_path(&dir.path().join("none.sock"), UnixKind::Datagram, "dogstatsd_socket").unwrap();
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(UnixDatagram::bind(&path).unwrap());
        assert!(path.exists());
        prepare_socket_path(&path, UnixKind::Datagram, "dogstatsd_socket").unwrap();
        assert!(!path.exists());
        let spath = dir.path().join("stale-stream.sock");
        drop(UnixListener::bind(&spath).unwrap());
        prepare_socket_path(&spath, UnixKind::Stream, "dogstatsd_stream_socket").unwrap();
        assert!(!spath.exists());
    }

    #[test]
    fn a_live_socket_is_not_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.sock");
        let _live = UnixDatagram::bind(&path).unwrap();
        let err = prepare_socket_path(&path, UnixKind::Datagram, "dogstatsd_socket").unwrap_err();
        assert!(matches!(err, ListenerError::SocketInUse { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("`dogstatsd_socket`"),
            "{msg}"
        );
        assert!(path.exists());

        let spath = dir.path().join("live-stream.sock");
        let _l = UnixListener::bind(&spath).unwrap();
        let err = prepare_socket_path(&spath, UnixKind::Stream, "dogstatsd_stream_socket").unwrap_err();
        assert!(err.to_string().contains("`dogstatsd_stream_socket`"));
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, b"keep me").unwrap();
        let err = prepare_socket_path(&path, UnixKind::Datagram, "dogstatsd_socket").unwrap_err();
        assert!(matches!(err, ListenerError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[test]
    fn socket_files_get_mode_722() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let _s = UnixDatagram::bind(&path).unwrap();
        set_socket_mode(&path, "dogstatsd_socket").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o722);
    }
}
