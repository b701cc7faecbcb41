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
//! - a set with a cgroup namespace (the default on a systemd host with
//!   cgroup v2) shows its processes a read-only /sys/fs/cgroup of the
//!   set's own scope, where the manager cannot work ("Failed to create
//!   .../init.scope control group: Read-only file system"). There Y gives
//!   the manager a cgroup namespace and a mount namespace of its own
//!   (`cgroup_of_its_own`): while still host root, it makes
//!   `user@UID.service/pam_nsjail` (a subtree of the cgroup systemd
//!   delegates to the manager) and its `init.scope`, hands both to the
//!   user as systemd hands over a delegated cgroup, and moves itself into
//!   `pam_nsjail`; after joining the set it unshares a cgroup namespace
//!   there (its root) and a mount namespace, moves itself on into
//!   `init.scope` (through a descriptor opened on the host), and mounts a
//!   writable cgroup2 view of that root on /sys/fs/cgroup. The manager then
//!   reads `0::/init.scope` in /proc/self/cgroup, takes the namespace's
//!   root as its own, and builds `app.slice` and the rest beside its
//!   `init.scope`; its units see only that subtree, never other users'
//!   cgroups. systemd leaves `user@UID.service`'s subtree_control to the
//!   manager (measured on the Debian 13 VM: empty until the manager
//!   writes it), so Y enables there every controller user@ has, for
//!   `pam_nsjail` to have them. The root holds no process (the relay W
//!   stays in `user@UID.service/init.scope`), so the manager can pass
//!   them on to its units as it would from user@ itself. The mount namespace is a child of the set's (same
//!   /tmp, same mounts, slave to them) that differs from the logins' in
//!   /sys/fs/cgroup only.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{chown, Gid, Uid};

use crate::nsset::{join_keeping_root, mount_cgroup_view, Identity, SetError};

/// The subtree of `user@UID.service` that becomes the root of the
/// manager's cgroup namespace.
pub const SUBTREE: &str = "pam_nsjail";

/// The files of a cgroup systemd hands to the user it delegates it to
/// (besides the directory itself).
const DELEGATED_FILES: [&str; 3] = ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"];

/// The namespaces the manager joins: the set's, without its pid namespace
/// (Y is born there) and without its cgroup namespace.
pub fn join_flags(set_flags: libc::c_int) -> libc::c_int {
    set_flags & !(libc::CLONE_NEWPID | libc::CLONE_NEWCGROUP)
}

/// Y's join (see the module doc).
pub fn join(set: BorrowedFd<'_>, set_flags: libc::c_int, who: &Identity) -> Result<(), SetError> {
    let own_cgroup = if set_flags & libc::CLONE_NEWCGROUP != 0 {
        Some(prepare_cgroup(
            Path::new("/sys/fs/cgroup"),
            &own_cgroup_path()?,
            who,
        )?)
    } else {
        None
    };
    join_keeping_root(set, join_flags(set_flags))?;
    if let Some(init_scope) = own_cgroup {
        cgroup_of_its_own(init_scope)?;
    }
    crate::sys::setgroups_noop_filter()
        .map_err(|e| SetError::new("seccomp filter making setgroups a no-op", e))
}

fn own_cgroup_path() -> Result<String, SetError> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| SetError::new("read /proc/self/cgroup", e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
        .ok_or_else(|| SetError::new("read /proc/self/cgroup", invalid("no cgroup v2 line")))
}

fn invalid(why: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.into())
}

/// The delegated cgroup of `uid`'s manager, from the executor's own
/// cgroup: `…/user@UID.service/init.scope` (systemd 254 and later, which
/// start the manager in that subgroup) or `…/user@UID.service`.
pub fn delegated_cgroup(own: &str, uid: u32) -> Option<&str> {
    let unit = format!("user@{uid}.service");
    let path = own.strip_suffix("/init.scope").unwrap_or(own);
    let (parent, last) = path.rsplit_once('/')?;
    (last == unit && parent.starts_with('/') && !path.contains("/../")).then_some(path)
}

/// On the host, as root: makes `DELEGATED/pam_nsjail/init.scope`, hands
/// both to the user, moves the calling process into `pam_nsjail` and
/// returns `init.scope`'s cgroup.procs, opened here, where it can be
/// written from inside the set.
fn prepare_cgroup(root: &Path, own: &str, who: &Identity) -> Result<File, SetError> {
    let step = "the user manager's cgroup";
    let delegated = delegated_cgroup(own, who.uid).ok_or_else(|| {
        SetError::new(
            step,
            invalid(format!(
                "the executor runs in {own}, not in user@{}.service",
                who.uid
            )),
        )
    })?;
    let unit = root.join(delegated.trim_start_matches('/'));
    // systemd leaves user@UID.service's subtree_control to the manager,
    // which enables there every controller it was given; the manager now
    // manages `pam_nsjail` instead, which gets only what user@ enables.
    // (Not where the executor itself sits in user@UID.service, systemd
    // before 254: a cgroup with a process cannot enable controllers for
    // its children; the manager then runs without any.)
    if own.ends_with("/init.scope") {
        pass_controllers_on(&unit).map_err(|e| {
            SetError::new("enable the delegated controllers in user@UID.service", e)
        })?;
    }
    let subtree = unit.join(SUBTREE);
    let init_scope = subtree.join("init.scope");
    for dir in [&subtree, &init_scope] {
        make_delegated(dir, who).map_err(|e| {
            SetError::new(
                step,
                std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())),
            )
        })?;
    }
    let procs = |dir: &PathBuf| dir.join("cgroup.procs");
    let into_init_scope = OpenOptions::new()
        .write(true)
        .open(procs(&init_scope))
        .map_err(|e| SetError::new("open the manager's init.scope", e))?;
    fs::write(procs(&subtree), b"0")
        .map_err(|e| SetError::new("move into the manager's cgroup subtree", e))?;
    Ok(into_init_scope)
}

/// Enables in `cgroup`'s subtree_control every controller it has.
fn pass_controllers_on(cgroup: &Path) -> std::io::Result<()> {
    let have = fs::read_to_string(cgroup.join("cgroup.controllers"))?;
    let enable = subtree_control_line(&have);
    if enable.is_empty() {
        return Ok(());
    }
    fs::write(cgroup.join("cgroup.subtree_control"), enable)
}

/// `+a +b …` for the controllers listed in a cgroup.controllers text.
pub fn subtree_control_line(controllers: &str) -> String {
    controllers
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A cgroup the user may manage: created if missing, the directory and
/// its delegated files owned by her.
fn make_delegated(dir: &Path, who: &Identity) -> std::io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let (uid, gid) = (Some(Uid::from_raw(who.uid)), Some(Gid::from_raw(who.gid)));
    chown(dir, uid, gid)?;
    for file in DELEGATED_FILES {
        chown(&dir.join(file), uid, gid)?;
    }
    Ok(())
}

/// Inside the set (root of its user namespace): the cgroup namespace
/// rooted at `pam_nsjail` and a mount namespace with its writable view.
fn cgroup_of_its_own(mut into_init_scope: File) -> Result<(), SetError> {
    unshare(CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWNS)
        .map_err(|e| SetError::new("unshare cgroup and mount namespaces", e))?;
    into_init_scope
        .write_all(b"0")
        .map_err(|e| SetError::new("move into the manager's init.scope", e))?;
    drop(into_init_scope);
    // Nothing mounted here reaches the set's logins.
    crate::sys::make_mounts_slaves()
        .map_err(|e| SetError::new("make the manager's mounts slaves", e))?;
    mount_cgroup_view(false)
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
    fn the_delegated_cgroup_is_user_at_uid_service_and_nothing_else() {
        fn d(own: &str) -> Option<&str> {
            delegated_cgroup(own, 1000)
        }
        let unit = "/user.slice/user-1000.slice/user@1000.service";
        assert_eq!(d(&format!("{unit}/init.scope")), Some(unit));
        assert_eq!(d(unit), Some(unit), "systemd before 254: no init.scope");
        assert_eq!(
            d("/user.slice/user-1001.slice/user@1001.service/init.scope"),
            None
        );
        assert_eq!(d("/system.slice/user@1000.service/x.scope"), None);
        assert_eq!(d("/user.slice/user-1000.slice/session-3.scope"), None);
        assert_eq!(d("user@1000.service"), None);
        assert_eq!(d("/../user@1000.service/init.scope"), None);
    }

    #[test]
    fn every_controller_user_at_has_is_passed_on() {
        assert_eq!(
            subtree_control_line("cpu memory pids\n"),
            "+cpu +memory +pids"
        );
        assert_eq!(subtree_control_line("\n"), "");
    }

    #[test]
    fn prepare_cgroup_refuses_outside_the_delegated_cgroup() {
        let who = Identity {
            uid: 1000,
            gid: 1000,
            gids: vec![1000],
        };
        let root = std::env::temp_dir().join(format!("mgr-cg-{}", std::process::id()));
        let e = prepare_cgroup(&root, "/system.slice/cron.service", &who).unwrap_err();
        assert!(e.to_string().contains("not in user@1000.service"), "{e}");
        assert!(!root.exists(), "nothing was made");
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
