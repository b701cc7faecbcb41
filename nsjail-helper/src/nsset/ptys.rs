//! A set's own ptys.
//!
//! Every set gets a devpts instance of its own on /dev/pts (at most
//! `max_ptys` ptys, /dev/ptmx bound to its ptmx), made by H0 before the
//! user namespace exists, so it is locked. One user then cannot take the
//! ptys of the host's instance from everybody else (root included), and
//! nobody sees other users' terminals or when they last typed. The kernel
//! keeps `kernel.pty.reserve` of `kernel.pty.max` for the host's instance.
//!
//! A login's own pty is allocated by sshd's monitor, in the host's mount
//! namespace, after the session is open: on the host's instance its name
//! (`/dev/pts/N`) would mean nothing, or another pty, inside the set
//! (measured: `tty` says "not a tty", sshd's child fails to reopen it by
//! name). So the process that opened the session (the monitor, or `run`)
//! first moves into a mount namespace of its own whose /dev/pts is the
//! set's instance (`adopt_set_ptys`): the pty it allocates then comes
//! from the set's pool, under a name that is the same on both sides.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::{step_err, SetError};
use crate::{sys, trust};

/// H0, in the set's new mount namespace: a devpts instance of the set's
/// own on /dev/pts, and /dev/ptmx bound to its ptmx.
pub(super) fn mount_own_devpts(max: u32) -> Result<(), SetError> {
    let step = "mount devpts on /dev/pts";
    let mut data = format!("newinstance,ptmxmode=0666,mode=0620,max={max}");
    // New ptys belong to the host's tty group, as on the host's instance
    // (sshd's monitor sets the same); the set's maps do not hold it, so
    // inside it shows as nogroup and lends nothing (issue 16).
    if let Ok(Some(tty)) = nix::unistd::Group::from_name("tty") {
        data.push_str(&format!(",gid={}", tty.gid.as_raw()));
    }
    let fd = trust::open_root_dir_path(Path::new("/dev/pts")).map_err(step_err(step))?;
    mount(
        Some("devpts"),
        trust::fd_path(&fd).as_str(),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(step_err(step))?;
    bind_ptmx().map_err(step_err("bind /dev/pts/ptmx on /dev/ptmx"))
}

/// /dev/ptmx opens the instance on the /dev/pts next to it anyway; the
/// bind makes that explicit (a symlink to pts/ptmx needs nothing).
fn bind_ptmx() -> nix::Result<()> {
    let is_link = fs::symlink_metadata("/dev/ptmx").is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        return Ok(());
    }
    mount(
        Some("/dev/pts/ptmx"),
        "/dev/ptmx",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
}

/// The opener of a session (root, single-threaded, in the host's
/// namespaces): moves into a mount namespace of its own, a slave copy of
/// the current one, whose /dev/pts is the set's devpts instance (and
/// /dev/ptmx its ptmx). Everything else it sees stays as it was.
pub fn adopt_set_ptys(holder: BorrowedFd<'_>) -> io::Result<()> {
    let context =
        |what: &'static str| move |e: nix::Error| io::Error::other(format!("{what}: {e}"));
    let cwd = File::open(".")?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(context("unshare mount namespace"))?;
    // Nothing done here may reach the host's mounts.
    crate::sys::make_mounts_slaves().map_err(context("make / rslave"))?;
    let own = File::open("/proc/self/ns/mnt")?;
    setns(holder, CloneFlags::CLONE_NEWNS).map_err(context("enter the set's mount namespace"))?;
    let tree = sys::open_tree_clone(c"/dev/pts");
    // Back into our own before anything else, whatever open_tree did.
    setns(own.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(context("return to own mount namespace"))?;
    nix::unistd::fchdir(&cwd).map_err(context("return to the working directory"))?;
    let tree = tree.map_err(|e| io::Error::other(format!("clone the set's /dev/pts: {e}")))?;
    sys::move_mount_here(tree.as_fd(), c"/dev/pts")
        .map_err(|e| io::Error::other(format!("mount the set's devpts on /dev/pts: {e}")))?;
    bind_ptmx().map_err(context("bind /dev/pts/ptmx on /dev/ptmx"))
}
