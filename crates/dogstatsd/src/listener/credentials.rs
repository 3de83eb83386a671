//! Sender credentials on Unix datagram sockets: `SO_PASSCRED` and
//! `SCM_CREDENTIALS`.
//!
//! With `SO_PASSCRED` set, the kernel attaches the sender's pid, uid and gid
//! to every datagram as an `SCM_CREDENTIALS` control message (it fills them in
//! even when the sender did not send any). `recvmsg` needs a control buffer
//! for it; its size is `CMSG_SPACE(sizeof(struct ucred))` computed by libc for
//! the target: 32 bytes on x86_64 (16-byte header, 12-byte `ucred` padded to 16)
//! and 24 on armv7 (12 + 12). The seed system sized and
//! checked this with 64-bit assumptions (`x.wrapping_shr(u32::BITS) != 0`,
//! which on 32-bit shifts by 0 and fails every check); here every size comes
//! from `size_of` and `CMSG_SPACE`, and every length from the kernel is
//! compared, never shifted.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::RawFd;

/// Origin credentials of a Unix-socket sender (`SCM_CREDENTIALS`, or
/// `SO_PEERCRED` for a stream connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Sender process id.
    pub pid: i32,
    /// Sender user id.
    pub uid: u32,
    /// Sender group id.
    pub gid: u32,
}

/// `CMSG_SPACE(sizeof(struct ucred))` for this target.
// The cast is of `size_of::<ucred>()` (12 bytes) to `c_uint` and back: lossless.
const CMSG_CAPACITY: usize = unsafe { libc::CMSG_SPACE(size_of::<libc::ucred>() as libc::c_uint) } as usize;

/// A control-message buffer aligned for `cmsghdr` on every target.
#[repr(C)]
union CmsgBuffer {
    bytes: [MaybeUninit<u8>; CMSG_CAPACITY],
    _align: MaybeUninit<libc::cmsghdr>,
}

/// The result of one [`recv_with_credentials`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// The datagram was larger than the buffer (`MSG_TRUNC`); its tail is lost.
    pub truncated: bool,
    /// The sender's credentials, if the kernel attached them.
    pub credentials: Option<Credentials>,
}

/// Sets `SO_PASSCRED` on a Unix socket.
pub fn enable_passcred(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one datagram into `buf` with `recvmsg`, returning its length,
/// whether it was truncated and the sender's `SCM_CREDENTIALS`.
///
/// The socket should be non-blocking when used from async code (it returns
/// `WouldBlock` then).
pub fn recv_with_credentials(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = CmsgBuffer {
        bytes: [MaybeUninit::uninit(); CMSG_CAPACITY],
    };
    // SAFETY: an all-zero msghdr is valid (null name, no iov) before we fill it in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: taking the address of a union field does not read it.
    msg.msg_control = unsafe { control.bytes.as_mut_ptr() }.cast();
    // `msg_controllen` is `size_t` on glibc for every target.
    msg.msg_controllen = CMSG_CAPACITY as _;

    // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all live and
    // correctly sized for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;

    let mut credentials = None;
    // SAFETY: the kernel initialised `msg_controllen` bytes of `control`;
    // CMSG_FIRSTHDR/NXTHDR stay within them, and each header's `cmsg_len` is
    // checked before its data is read.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let hdr = &*cmsg;
            let data_len = (hdr.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if hdr.cmsg_level == libc::SOL_SOCKET
                && hdr.cmsg_type == libc::SCM_CREDENTIALS
                && data_len >= size_of::<libc::ucred>()
            {
                let ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                credentials = Some(Credentials {
                    pid: ucred.pid,
                    uid: ucred.uid,
                    gid: ucred.gid,
                });
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        len,
        truncated,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    use super::*;

    #[test]
    fn the_control_buffer_is_sized_for_this_target() {
        let header = size_of::<libc::cmsghdr>();
        assert!(CMSG_CAPACITY >= header + size_of::<libc::ucred>());
        // Header and payload are each padded to `size_t` alignment, no more.
        let align = size_of::<usize>();
        let pad = |n: usize| n.div_ceil(align) * align;
        assert_eq!(CMSG_CAPACITY, pad(header) + pad(size_of::<libc::ucred>()));
        #[cfg(target_pointer_width = "32")]
        assert_eq!(CMSG_CAPACITY, 24);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(CMSG_CAPACITY, 32);
    }

    #[test]
    fn a_real_credential_arrives_over_a_socket_pair() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        enable_passcred(rx.as_raw_fd()).unwrap();
        tx.send(b"hello:1|c").unwrap();
        let mut buf = [0u8; 64];
        let got = recv_with_credentials(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"hello:1|c");
        assert!(!got.truncated);
        let creds = got.credentials.expect("SCM_CREDENTIALS attached");
        assert_eq!(creds.pid, i32::try_from(std::process::id()).unwrap());
        // SAFETY: getuid/getgid cannot fail.
        assert_eq!(creds.uid, unsafe { libc::getuid() });
        assert_eq!(creds.gid, unsafe { libc::getgid() });
    }

    #[test]
    fn oversized_datagrams_are_reported_truncated() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        enable_passcred(rx.as_raw_fd()).unwrap();
        tx.send(&[b'x'; 100]).unwrap();
        let mut buf = [0u8; 10];
        let got = recv_with_credentials(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(got.len, 10);
        assert!(got.truncated);
    }

    #[test]
    fn without_passcred_no_credentials_are_reported() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        tx.send(b"x:1|c").unwrap();
        let mut buf = [0u8; 64];
        let got = recv_with_credentials(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(got.credentials, None);
        assert_eq!(got.len, 5);
    }
}
