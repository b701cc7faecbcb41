//! Entering a set: what sshd's post-auth child and `run`'s child do, as
//! root, just before they become the user.
#![forbid(unsafe_code)]

use std::os::fd::BorrowedFd;

use nix::sched::{setns, CloneFlags};
use nix::unistd::{Gid, Uid};

use super::{step_err, SetError};

/// Who a process becomes when it joins a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Every group (primary first).
    pub gids: Vec<u32>,
}

/// Enters the set behind `pidfd` (`flags`: the namespaces to join, all at
/// once or none) and becomes `who`, with no capability left in any set.
/// The pid namespace applies to the caller's children.
pub fn join_and_drop(
    pidfd: BorrowedFd<'_>,
    flags: libc::c_int,
    who: &Identity,
) -> Result<(), SetError> {
    // The set's user namespace belongs to its user (nsset/holder.rs): a
    // process of that user outside the set holds every capability in it,
    // so it could ptrace a dumpable root process that has just joined,
    // until we drop to the user below. Not dumpable, ptrace needs
    // capabilities in our (the host's) user namespace instead.
    nix::sys::prctl::set_dumpable(false).map_err(step_err("make the process undumpable"))?;
    // Test builds: a join that fails, or panics, must still never let
    // the session go on (the caller's `survive_or_exit`).
    if super::failpoint_armed("join-fail") {
        return Err(SetError::new("failpoint", "join-fail"));
    }
    if super::failpoint_armed("join-panic") {
        panic!("failpoint join-panic");
    }
    // The supplementary groups must be the user's before we leave the host
    // namespaces: never carry root's groups into the session.
    let gids: Vec<Gid> = who.gids.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&gids).map_err(step_err("setgroups"))?;
    setns(pidfd, CloneFlags::from_bits_retain(flags))
        .map_err(step_err("setns into the namespace set"))?;
    // Our cwd still points into the host's mount tree.
    std::env::set_current_dir("/").map_err(step_err("chdir /"))?;
    let (uid, gid) = (Uid::from_raw(who.uid), Gid::from_raw(who.gid));
    nix::unistd::setresgid(gid, gid, gid).map_err(step_err("setresgid"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(step_err("setresuid"))?;
    // setresuid away from 0 already cleared permitted/effective; be
    // explicit about every set, and check nothing is left.
    for set in [
        caps::CapSet::Ambient,
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| SetError::new("clear capabilities", e.to_string()))?;
    }
    match (nix::unistd::getresuid(), nix::unistd::getresgid()) {
        (Ok(u), Ok(g))
            if [u.real, u.effective, u.saved].iter().all(|&x| x == uid)
                && [g.real, g.effective, g.saved].iter().all(|&x| x == gid) =>
        {
            Ok(())
        }
        _ => Err(SetError::new(
            "verify credentials",
            "uid/gid did not change as requested",
        )),
    }
}
