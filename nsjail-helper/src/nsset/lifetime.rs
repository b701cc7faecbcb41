//! How a set with `on_logout = "kill"` ends with its last login, however
//! that login ended: a `close` that never came (`run` killed, sshd's
//! monitor SIGKILLed or OOM-killed) must not leave the set alive.
//!
//! No daemon watches: the holder itself does. It keeps a pidfd of every
//! process that opened a session in the set (sshd's monitor, `run`) and
//! exits, which ends the set, once all of them have exited (a pidfd polls
//! readable when its process ends). The pidfds reach it over a unix
//! socket pair the holder owns both ends of, at fixed fd numbers:
//!
//! - H0 creates the pair and queues the pidfd of its caller (the first
//!   opener) before it forks the holder, so the holder never sees a
//!   moment without an opener;
//! - a later opener (a login joining the set) fetches the sending end
//!   with `pidfd_getfd` (root only: the holder is not dumpable, and the
//!   processes inside the set hold no capability) and sends its own pidfd.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::Path;

use super::{step_err, Holder, SetError};
use crate::procfs::{self, ProcId};
use crate::sys;

/// The holder's receiving end (holder/holder.rs reads it).
pub(super) const RECEIVE_FD: RawFd = 3;
/// The holder's copy of the sending end, which openers fetch.
pub(super) const SEND_FD: RawFd = 4;

/// H0: the socket pair (receiving end, sending end) with the pidfd of
/// H0's caller, the process opening the set's first session, queued.
pub(super) fn channel_with_caller() -> Result<(OwnedFd, OwnedFd), SetError> {
    let (receive, send) = sys::seqpacket_pair().map_err(step_err("socketpair for the openers"))?;
    let caller = nix::unistd::getppid();
    let pidfd = sys::pidfd_open(caller.as_raw()).map_err(step_err("pidfd_open caller"))?;
    // Had the caller died before pidfd_open, we were reparented and the
    // pid may name another process: the pidfd is the caller's only if
    // our parent is still that pid now.
    if nix::unistd::getppid() != caller {
        return Err(SetError::new("pidfd_open caller", "the caller exited"));
    }
    sys::send_fd(send.as_fd(), pidfd.as_fd()).map_err(step_err("hand the caller to the holder"))?;
    Ok((receive, send))
}

/// A session opened in an existing set: hands its holder a pidfd of
/// `opener`, which must still be the process recorded (`proc_root`).
pub fn enlist_opener(holder: &Holder, opener: ProcId, proc_root: &Path) -> io::Result<()> {
    let send = sys::pidfd_getfd(holder.pidfd.as_fd(), SEND_FD)?;
    // Whatever sits at that number in a holder is not trusted to be ours
    // (a process of the user outside the set could have ptraced the
    // holder): only a unix seqpacket socket is written to, never blocking.
    if !sys::is_unix_seqpacket(send.as_fd())? {
        return Err(io::Error::other(
            "the holder's fd 4 is not its openers' socket",
        ));
    }
    let pidfd = sys::pidfd_open(opener.pid)?;
    if !procfs::is_alive(proc_root, opener) {
        return Err(io::Error::other("the opener exited"));
    }
    sys::send_fd(send.as_fd(), pidfd.as_fd())
}
