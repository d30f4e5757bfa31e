//! Passing a descriptor (or the reason there is none) over a Unix socket.

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Starts a failure report: the rest of the stream is the message.
pub(crate) const FAILED: &str = "FAILED:";

/// Sends `fd` with one byte of data.
pub(crate) fn send(socket: RawFd, fd: RawFd) -> io::Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &[IoSlice::new(b"F")], &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives a descriptor sent by [`send`], or the failure reported instead.
pub(crate) fn receive(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    let got = msg.bytes;
    let mut rest = String::new();
    let mut reader = socket;
    let _ = reader.read_to_string(&mut rest);
    let text = format!("{}{rest}", String::from_utf8_lossy(&byte[..got]));
    Err(io::Error::other(match text.strip_prefix(FAILED) {
        Some(message) => message.to_owned(),
        None if text.is_empty() => "the sandbox ended before it was set up".to_owned(),
        None => format!("unexpected message from the sandbox: {text:?}"),
    }))
}
