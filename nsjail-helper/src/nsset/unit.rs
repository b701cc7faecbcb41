//! On a systemd host, a set's lifetime must belong to the set, not to the
//! login that happened to create it. sshd's monitor sits in that login's
//! `session-N.scope` (pam_systemd runs before us), and everything it forks
//! inherits the scope: logging that login out under KillUserProcesses=yes
//! would SIGKILL the holder, and with it every other login of the user;
//! under KillUserProcesses=no the first session would stay "closing" until
//! the set ends.
//!
//! So H0, first thing and before any namespace exists, asks systemd (over
//! the system bus, D-Bus `StartTransientUnit`) for a scope of its own in
//! the user's slice and moves itself there; the holder it forks later is
//! born in that scope. systemd's own cgroups are never written to.
//!
//! The scope is `PartOf=user-runtime-dir@UID.service`, which logind keeps
//! running exactly as long as it keeps the user: while any session of the
//! user is open or closing (a job left running after logout keeps its
//! session "closing"), or the user lingers (`loginctl enable-linger`).
//! When logind lets go of the user (10 s after the last session is gone,
//! or at once on `loginctl terminate-user`), the scope is stopped and the
//! set ends, `on_logout = "linger"` or not. Stopping it kills the holder
//! at once (KillSignal=SIGKILL); `loginctl kill-user` reaches it too (the
//! holder dies on SIGTERM from outside its pid namespace).
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dbus::{self, Scope};
use crate::limits::Limits;

/// How long H0 waits for systemd, with the user's lock held by the caller.
const BUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long H0 waits for systemd to have moved it into the new scope.
const MOVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether this host runs systemd (as `sd_booted(3)` tells).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether a cgroup namespace hides anything on this host: only where
/// systemd gives each set a scope of its own and the cgroup v2 hierarchy
/// is the one mounted at /sys/fs/cgroup is the set's view rooted at its
/// own scope. Without systemd a set stays in its login's cgroup (often
/// the root); on a v1 or hybrid host the controllers' trees are v1. Sets
/// get one by default only where this holds.
pub fn cgroup_namespace_hides() -> bool {
    systemd_booted() && cgroup2_unified()
}

/// /sys/fs/cgroup is the unified cgroup v2 hierarchy (where, without
/// systemd, a set under resource limits gets a cgroup of its own too).
pub fn cgroup2_unified() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// The scope H0 of a set for `uid` asks for.
pub(super) fn unit_name(uid: u32, h0_pid: u32) -> String {
    format!("nsjail-{uid}-{h0_pid}.scope")
}

/// Moves this process (H0) into a new scope in `user-UID.slice`; returns
/// the scope's name, or why it could not (the set then stays in the
/// caller's scope and the login says so).
///
/// With `limits`, the scope goes into the user's limited slice
/// `user-UID-nsjail.slice` (created or updated first) with `Delegate=yes`,
/// so that each login's session child can be moved in (`limits/`).
pub(super) fn move_into_own_scope(uid: u32, limits: &Limits) -> Result<String, String> {
    let pid = std::process::id();
    let name = unit_name(uid, pid);
    let slice = if limits.is_empty() {
        format!("user-{uid}.slice")
    } else {
        crate::limits::systemd::slice_name(uid)
    };
    let runtime_dir = format!("user-runtime-dir@{uid}.service");
    let description = format!("pam_nsjail namespace set of uid {uid}");
    let slice_description = crate::limits::systemd::slice_description(uid, limits);
    let slice_properties = crate::limits::systemd::properties(limits);
    // With limits: update the user's slice if another set keeps it, or
    // create it together with this scope. Once more if systemd was just
    // stopping it (its last set ended meanwhile).
    let mut attempt = 0;
    loop {
        attempt += 1;
        let new_slice =
            if limits.is_empty() || crate::limits::systemd::update_user_slice(uid, limits)? {
                None
            } else {
                Some(dbus::Slice {
                    name: &slice,
                    description: &slice_description,
                    properties: &slice_properties,
                })
            };
        match start_scope(
            &name,
            &slice,
            &description,
            pid,
            &runtime_dir,
            limits,
            new_slice,
        ) {
            Err(e) if attempt < 3 && !limits.is_empty() && retryable(&e) => continue,
            other => other.map_err(|e| format!("systemd: {e}"))?,
        }
        break;
    }
    wait_until_moved(&name)?;
    Ok(name)
}

/// A transaction that lost a race with the user's slice coming or going.
fn retryable(e: &dbus::DbusError) -> bool {
    matches!(
        e.error_name(),
        Some(
            "org.freedesktop.systemd1.UnitExists"
                | "org.freedesktop.systemd1.TransactionIsDestructive"
        )
    )
}

#[allow(clippy::too_many_arguments)]
fn start_scope(
    name: &str,
    slice: &str,
    description: &str,
    pid: u32,
    runtime_dir: &str,
    limits: &Limits,
    new_slice: Option<dbus::Slice<'_>>,
) -> Result<(), dbus::DbusError> {
    dbus::start_transient_scope(
        Path::new(dbus::SYSTEM_BUS_SOCKET),
        &Scope {
            name,
            slice: Some(slice),
            description,
            pids: &[pid],
            kill_signal: Some(libc::SIGKILL),
            send_sigkill: None,
            collect_inactive_or_failed: true,
            part_of: &[runtime_dir],
            delegate: !limits.is_empty(),
            new_slice,
        },
        BUS_TIMEOUT,
    )
    .map(|_job| ())
}

/// systemd answers the start before the move: wait for it.
fn wait_until_moved(name: &str) -> Result<(), String> {
    // systemd answers once the start job is queued; the move follows.
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        if in_unit(
            &fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            name,
        ) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "systemd did not move the helper into {name} within {} ms",
                MOVE_TIMEOUT.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a `/proc/PID/cgroup` text places the process in `unit`.
fn in_unit(cgroup: &str, unit: &str) -> bool {
    cgroup.lines().any(|l| {
        l.rsplit_once(':')
            .is_some_and(|(_, path)| path.rsplit('/').next() == Some(unit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines_are_matched_by_their_last_component() {
        let unit = unit_name(1001, 42);
        assert_eq!(unit, "nsjail-1001-42.scope");
        assert!(in_unit(
            "0::/user.slice/user-1001.slice/nsjail-1001-42.scope\n",
            &unit
        ));
        assert!(in_unit(
            "1:name=systemd:/user.slice/user-1001.slice/nsjail-1001-42.scope\n0::/\n",
            &unit
        ));
        assert!(!in_unit(
            "0::/user.slice/user-1001.slice/session-3.scope\n",
            &unit
        ));
        assert!(!in_unit("0::/nsjail-1001-42.scope/x\n", &unit));
    }
}
