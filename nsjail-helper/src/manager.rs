//! The user manager (`user@UID.service`, PAM service `systemd-user`) of an
//! isolated user, inside her set (docs/SERVICES.md, "systemd-user").
//!
//! systemd's executor (P) runs `open_session` and then execs
//! `systemd --user` itself, so the module splits P there with
//! `nsset::fork_into_set_with`: the child (Y), born in the set's pid
//! namespace, joins the set (`join`) and returns into the executor, which
//! drops to the user and execs `systemd --user` inside; the original (W)
//! stays on the host as the unit's main process, passes every signal
//! systemd sends it (stop, reload, kill) on to Y, closes the session on
//! the host when Y has ended and leaves as Y did. The unit needs
//! `NotifyAccess=all` (Y, not the main process, sends READY=1): the
//! drop-in in config/systemd.
//!
//! What Y must do differently from a session's child, measured on
//! systemd 257 (Debian 13):
//! - it joins every namespace of the set but the pid namespace (it was
//!   born there) and the cgroup namespace: the manager manages its
//!   delegated cgroup `user@UID.service`, which is outside the set's
//!   cgroup root. (A set that has a cgroup namespace also has a read-only
//!   /sys/fs/cgroup of its own scope, where the manager cannot work at
//!   all: such users are refused in `session::login`.)
//! - it stays root of the set's user namespace (host root is unmapped
//!   there), so that the executor can still drop to the user's ids;
//!   undumpable until then (`join_keeping_root`).
//! - the executor, after PAM, re-applies the groups PAM left it with
//!   (`setgroups`), which the set's user namespace denies for good
//!   (`setgroups` = deny, written when the set was made): the start fails
//!   with "Changing group credentials failed: Operation not permitted"
//!   (216/GROUP). Y therefore installs a seccomp filter that makes
//!   `setgroups` succeed without doing anything. The groups stay what they
//!   are (the user's, set by the executor before PAM), which is what the
//!   executor asked for; for every process the manager starts, inside a
//!   namespace where `setgroups` can never change anything, the call
//!   reports success instead of EPERM. Nothing relies on the filter for
//!   safety: a call it does not cover (another ABI) gets the kernel's
//!   EPERM.
#![forbid(unsafe_code)]

use std::os::fd::BorrowedFd;

use crate::nsset::{join_keeping_root, SetError};

/// The namespaces the manager joins: the set's, without its pid namespace
/// (Y is born there) and without its cgroup namespace.
pub fn join_flags(set_flags: libc::c_int) -> libc::c_int {
    set_flags & !(libc::CLONE_NEWPID | libc::CLONE_NEWCGROUP)
}

/// Y's join (see the module doc).
pub fn join(set: BorrowedFd<'_>, set_flags: libc::c_int) -> Result<(), SetError> {
    join_keeping_root(set, join_flags(set_flags))?;
    crate::sys::setgroups_noop_filter()
        .map_err(|e| SetError::new("seccomp filter making setgroups a no-op", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manager_joins_all_but_the_pid_and_cgroup_namespaces() {
        let set = crate::nsset::join_flags(true, true, true);
        let f = join_flags(set);
        for ns in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWNET,
        ] {
            assert_ne!(f & ns, 0, "{ns:#x}");
        }
        assert_eq!(f & (libc::CLONE_NEWPID | libc::CLONE_NEWCGROUP), 0);
    }

    #[test]
    #[ignore = "installs a seccomp filter: run in a child of its own"]
    fn setgroups_succeeds_without_changing_the_groups() {
        let pid = crate::child::fork_child(|| {
            let before = nix::unistd::getgroups().expect("getgroups");
            if crate::sys::setgroups_noop_filter().is_err() {
                // Needs no_new_privs without CAP_SYS_ADMIN.
                let _ = nix::sys::prctl::set_no_new_privs();
                crate::sys::setgroups_noop_filter().expect("filter");
            }
            let other = [nix::unistd::Gid::from_raw(12345)];
            match nix::unistd::setgroups(&other) {
                Ok(()) if nix::unistd::getgroups().expect("getgroups") == before => 0,
                _ => 1,
            }
        })
        .expect("fork");
        assert_eq!(crate::child::wait_status(pid).expect("wait"), 0);
    }
}
