//! `crontab` inside a set (issue 18).
//!
//! Debian's `/usr/bin/crontab` is `root:crontab 2755`: the group lets it
//! write the spool (`/var/spool/cron/crontabs`, `root:crontab 1730`). The
//! kernel honours a setgid bit only if the file's owner *and* group are
//! both mapped in the caller's user namespace (fs/exec.c,
//! `bprm_fill_uid`); a set maps neither root nor, by default, the crontab
//! group, so there `crontab` ran without its group and failed. Mapping the
//! group alone is not enough (measured: a `root:crontab 2755` binary keeps
//! the caller's egid in a namespace that maps gid crontab but not uid 0).
//!
//! So each set gets two things, both made by H0 before the set's user
//! namespace exists:
//! - its gid map holds the crontab group as itself (`session::plan`);
//! - `/usr/bin/crontab` is covered by a read-only, nodev, *idmapped* bind
//!   mount of the very same file, through which root (uid 0, the owner)
//!   shows as the user's own uid and the crontab group as itself. Mapped
//!   on both sides, the setgid bit works again, and only there. Nothing
//!   else of root is mapped; the mount is read-only, so owning the file
//!   in that view gives her nothing to change.
//!
//! Anything missing or unexpected (no such group, no such file, a file
//! that is not `root:crontab`, setgid, unwritable by group and others, a
//! filesystem without idmapped mounts) means no bind: the caller then
//! leaves the group out of the map, and `crontab` fails inside as before.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::idmap::MapLine;
use crate::sys::{self, Forked};

/// The group the crontab program is setgid to (Debian's cron).
pub const GROUP: &str = "crontab";
/// Where Debian's cron installs it.
pub const PROGRAM: &std::ffi::CStr = c"/usr/bin/crontab";

/// H0, in the set's new mount namespace (before the user namespace
/// exists, so the mount ends up locked): covers `PROGRAM` with an
/// idmapped read-only view of itself in which its owner, root, is `uid`
/// and group `gid` is itself. The error says which step failed.
pub(super) fn bind_idmapped(uid: u32, gid: u32) -> Result<(), String> {
    let tree = idmapped_view(uid, gid)?;
    sys::move_mount_here(tree.as_fd(), PROGRAM)
        .map_err(|e| format!("mount it on {}: {e}", PROGRAM.to_string_lossy()))
}

/// Whether `bind_idmapped` would succeed on this host, for `explain`
/// (root, single-threaded): the same view, made and dropped unattached.
pub fn check_usable(uid: u32, gid: u32) -> Result<(), String> {
    idmapped_view(uid, gid).map(drop)
}

/// The gid map a set gets when the crontab view could not be made: the
/// group taken out again, unless it is one of the user's own.
pub fn without_group(map: &[MapLine], gid: u32, own: &[u32]) -> Vec<MapLine> {
    map.iter()
        .copied()
        .filter(|l| own.contains(&gid) || !(l.inside == gid && l.outside == gid))
        .collect()
}

/// A detached, checked, idmapped read-only copy of the mount of `PROGRAM`.
fn idmapped_view(uid: u32, gid: u32) -> Result<OwnedFd, String> {
    let tree = sys::open_tree_clone(PROGRAM)
        .map_err(|e| format!("open {}: {e}", PROGRAM.to_string_lossy()))?;
    // Checked on the detached copy itself: what is bound is what was checked.
    check_program(&tree, gid)?;
    let userns = idmap_userns(uid, gid).map_err(|e| format!("idmap user namespace: {e}"))?;
    sys::make_idmapped_readonly(tree.as_fd(), userns.as_fd())
        .map_err(|e| format!("make an idmapped mount of it: {e}"))?;
    Ok(tree)
}

/// The program must be what the host's cron installs: a regular file of
/// root's, group `gid`, setgid and group-executable, written by nobody
/// but root. Anything else is not lent a group.
fn check_program(fd: &OwnedFd, gid: u32) -> Result<(), String> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| format!("stat: {e}"))?;
    let mode = st.st_mode;
    let why = if mode & libc::S_IFMT != libc::S_IFREG {
        "not a regular file"
    } else if st.st_uid != 0 {
        "not owned by root"
    } else if st.st_gid != gid {
        "not of the crontab group"
    } else if mode & (libc::S_ISGID | libc::S_IXGRP) != libc::S_ISGID | libc::S_IXGRP {
        "not setgid and group-executable"
    } else if mode & (libc::S_ISUID | 0o022) != 0 {
        "setuid, or writable by group or others"
    } else {
        return Ok(());
    };
    Err(format!(
        "{} is {why} (uid {}, gid {}, mode {:o})",
        PROGRAM.to_string_lossy(),
        st.st_uid,
        st.st_gid,
        mode & 0o7777
    ))
}

/// A user namespace whose maps are only `0 -> uid` and `gid -> gid`,
/// made by a child that exits once its namespace is open here (an
/// idmapped mount needs the namespace only while it is being made).
fn idmap_userns(uid: u32, gid: u32) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (done_r, done_w) = nix::unistd::pipe()?;
    match sys::fork_checked()? {
        Forked::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok()
                && nix::unistd::write(&ready_w, b"U").is_ok();
            // Wait until the parent has opened the namespace (EOF).
            let _ = nix::unistd::read(&done_r, &mut [0u8; 1]);
            sys::exit_now(if ok { 0 } else { 1 })
        }
        Forked::Parent(pid) => {
            drop(ready_w);
            drop(done_r);
            let result = (|| {
                let mut token = [0u8; 1];
                if nix::unistd::read(&ready_r, &mut token)? != 1 {
                    return Err(io::Error::other("the child could not unshare"));
                }
                fs::write(format!("/proc/{pid}/uid_map"), format!("0 {uid} 1\n"))?;
                fs::write(format!("/proc/{pid}/gid_map"), format!("{gid} {gid} 1\n"))?;
                Ok(OwnedFd::from(fs::File::open(format!(
                    "/proc/{pid}/ns/user"
                ))?))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::line;

    #[test]
    fn a_failed_view_takes_the_group_out_unless_it_is_hers() {
        let map = [line(107, 107, 1), line(2001, 2001, 1), line(1, 200001, 106)];
        assert_eq!(
            without_group(&map, 107, &[2001]),
            [line(2001, 2001, 1), line(1, 200001, 106)]
        );
        assert_eq!(without_group(&map, 107, &[2001, 107]), map, "her own group");
    }

    #[test]
    fn only_a_root_owned_setgid_program_of_the_group_is_accepted() {
        let path = std::env::temp_dir().join(format!("nsjail-crontab-{}", std::process::id()));
        fs::write(&path, b"#!/bin/sh\n").expect("write");
        let fd = OwnedFd::from(fs::File::open(&path).expect("open"));
        let st = nix::sys::stat::fstat(&fd).expect("stat");
        let err = check_program(&fd, st.st_gid).expect_err("not setgid, maybe not root's");
        assert!(
            err.contains("not owned by root") || err.contains("not setgid"),
            "{err}"
        );
        let _ = fs::remove_file(&path);
    }
}
