//! Namespace sets: creation with the *locked* layout, and joining.
//!
//! A set is a user, mount, pid and ipc namespace (optionally uts, net and
//! cgroup)
//! whose pid 1 is a small holder process. Four parts:
//!
//! - `spawn`: the caller's side (sshd's monitor, `nsjail-helper run`):
//!   executes the helper as `nsjail-helper __create …` ("H0") through a
//!   checked fd and takes the new holder over through a pidfd;
//! - `create`: H0's ordered, privileged sequence;
//! - `holder`: what becomes pid 1 of the set;
//! - `join`: entering a set and dropping to the user (sshd's session
//!   child, `run`'s child);
//! - `lifetime`: how a set ends with the last process that opened a
//!   session in it, however that process ended;
//! - `wire`: H0's command line and the line protocol between caller and
//!   H0, both checked on the receiving side.
//!
//! The ordering is the security property (DESIGN §2): every private mount
//! is made *before* the user namespace exists; the user namespace is then
//! created together with a new mount namespace, which makes the copied
//! mounts MNT_LOCKED — nobody inside, not even root of a nested user
//! namespace, can unmount them to uncover the host's /tmp.
#![forbid(unsafe_code)]

mod create;
mod crontab;
mod forkjoin;
mod holder;
mod join;
mod lifetime;
mod ptys;
mod records;
mod spawn;
mod unit;
mod wire;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::idmap::MapLine;
use crate::policy::{Namespace, Network, OnLogout, Propagation, Settings};
use crate::procfs::ProcId;

pub use create::create_main;
pub(crate) use create::mount_cgroup_view;
pub use crontab::{check_usable as crontab_usable, without_group, GROUP as CRONTAB_GROUP};
pub use forkjoin::{
    fork_into_set, fork_into_set_with, join_keeping_root, EndStatus, Ended, Forward,
};
pub use holder::drop_all_capabilities;
pub use join::{join_and_drop, Identity};
pub use lifetime::enlist_opener;
pub use ptys::adopt_set_ptys;
pub use spawn::{ExecHelper, SetCreator, Spawned, H0};
pub use unit::systemd_booted;
pub use unit::{cgroup2_unified, cgroup_namespace_hides};

/// Everything H0 needs to build a set; passed on the helper's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// The user whose set this is: the holder takes these ids before it
    /// creates the set's user namespace, so the kernel charges that
    /// namespace, and everything made inside it, to the user (DESIGN §2c).
    pub owner: Identity,
    pub uid_map: Vec<MapLine>,
    pub gid_map: Vec<MapLine>,
    pub private_tmp: Vec<PathBuf>,
    pub tmp_size: Option<String>,
    pub propagation: Propagation,
    pub uts: bool,
    /// A cgroup namespace, and a cgroup2 view of only its own subtree.
    pub cgroup: bool,
    /// The same where it hides something: where the set gets a systemd
    /// scope of its own on a cgroup v2 host (the policy's default).
    pub cgroup_auto: bool,
    pub net: bool,
    /// With `net`: the set's own link to the host (`network = "private"`).
    pub private_net: Option<crate::net::PrivateSpec>,
    /// `on_logout = "kill"`: the holder ends the set once every process
    /// that opened a session in it has exited (see `lifetime.rs`).
    pub end_with_openers: bool,
    /// SysV IPC limits H0 writes into the set's ipc namespace.
    pub ipc: IpcLimits,
    /// ptys of the set's own devpts instance (see `ptys.rs`).
    pub max_ptys: u32,
    /// The user's resource limits: H0 puts the set's scope in the user's
    /// limited slice (`limits/`). Empty: the scope stays in `user-UID.slice`.
    pub limits: crate::limits::Limits,
    /// The host's crontab group, identity-mapped in `gid_map`: H0 covers
    /// the crontab program with an idmapped view in which it works
    /// (`crontab.rs`), or takes the group out of the map again.
    pub crontab_gid: Option<u32>,
}

/// The SysV IPC limits of a set's ipc namespace (the kernel's own are
/// unlimited in practice: shmall of 2^64 pages, 32000 queues of 16 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcLimits {
    /// Canonical size ("64M", "10%" of RAM): the largest shared memory
    /// segment, and all of them together.
    pub shm_max: String,
    /// Segments, message queues and semaphore sets, each.
    pub objects: u32,
}

impl Default for IpcLimits {
    fn default() -> Self {
        IpcLimits {
            shm_max: crate::policy::DEFAULT_TMP_SIZE.to_owned(),
            objects: crate::policy::DEFAULT_IPC_OBJECTS,
        }
    }
}

impl IpcLimits {
    /// Bytes per message queue (the kernel's default msgmnb) and per
    /// message (msgmax), and semaphores per set (SEMMSL) and per semop
    /// call (SEMOPM), as traditional System V hosts had them.
    pub const MSG_QUEUE_BYTES: u64 = 16384;
    pub const MSG_BYTES: u64 = 8192;
    pub const SEMS_PER_SET: u64 = 250;
    pub const SEM_OPS: u64 = 100;

    /// `(file under /proc/sys/kernel, value)` for a host with `ram` bytes
    /// of memory and pages of `page` bytes, in the order H0 writes them.
    pub fn sysctls(&self, ram: u64, page: u64) -> Vec<(&'static str, String)> {
        let shm = crate::policy::size_bytes(&self.shm_max, ram).max(page);
        let n = u64::from(self.objects);
        vec![
            ("shmmax", shm.to_string()),
            ("shmall", shm.div_ceil(page.max(1)).to_string()),
            ("shmmni", n.to_string()),
            ("msgmax", Self::MSG_BYTES.to_string()),
            ("msgmnb", Self::MSG_QUEUE_BYTES.to_string()),
            ("msgmni", n.to_string()),
            (
                "sem",
                format!(
                    "{} {} {} {n}",
                    Self::SEMS_PER_SET,
                    Self::SEMS_PER_SET * n,
                    Self::SEM_OPS
                ),
            ),
        ]
    }
}

impl SetSpec {
    pub fn new(
        owner: Identity,
        settings: &Settings,
        uid_map: Vec<MapLine>,
        gid_map: Vec<MapLine>,
    ) -> Self {
        SetSpec {
            owner,
            uid_map,
            gid_map,
            private_tmp: settings.private_tmp.clone(),
            tmp_size: settings.tmp_size.clone(),
            propagation: settings.propagation,
            uts: settings.namespaces.contains(&Namespace::Uts),
            net: settings.network != Network::Host,
            private_net: (settings.network == Network::Private).then(|| crate::net::PrivateSpec {
                pool: settings.net_config.pool,
                allow_host: settings.net_config.allow_host.clone(),
            }),
            cgroup: settings.namespaces.contains(&Namespace::Cgroup),
            end_with_openers: settings.on_logout == OnLogout::Kill,
            cgroup_auto: !settings.namespaces.contains(&Namespace::Cgroup)
                && !settings.cgroup_opt_out,
            ipc: IpcLimits {
                shm_max: settings.ipc_shm_max().to_owned(),
                objects: settings.bounds.ipc_objects,
            },
            max_ptys: settings.bounds.max_ptys,
            limits: settings.limits,
            crontab_gid: None,
        }
    }

    /// The `setns` flags a session uses to join a set built from this spec.
    pub fn join_flags(&self) -> libc::c_int {
        join_flags(self.uts, self.net, self.cgroup)
    }
}

/// `setns` flags for joining a set.
pub fn join_flags(uts: bool, net: bool, cgroup: bool) -> libc::c_int {
    let mut flags =
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
    if uts {
        flags |= libc::CLONE_NEWUTS;
    }
    if net {
        flags |= libc::CLONE_NEWNET;
    }
    if cgroup {
        flags |= libc::CLONE_NEWCGROUP;
    }
    flags
}

/// Where systemd keeps a new set (see `unit.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitPlacement {
    /// Not a systemd host: nothing to do.
    NoSystemd,
    /// In a scope unit of its own, named here.
    Own(String),
    /// No systemd, and the policy sets limits: in a cgroup of its own
    /// under the user's limited one (`limits/direct.rs`), this path.
    Cgroup(String),
    /// systemd could not give the set a unit of its own (why): it lives
    /// in the scope of the login that created it.
    Failed(String),
}

/// A live holder as seen by the process that created or found it.
#[derive(Debug)]
pub struct Holder {
    pub id: ProcId,
    pub pidfd: OwnedFd,
    pub userns: u64,
}

/// A failure while creating or joining a set, naming the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    pub step: String,
    pub cause: String,
}

impl SetError {
    pub fn new(step: impl Into<String>, cause: impl fmt::Display) -> SetError {
        SetError {
            step: step.into(),
            cause: cause.to_string(),
        }
    }
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)
    }
}

impl std::error::Error for SetError {}

/// `map_err` adapter: an `io::Error` (or `nix::Error`) at `step`.
fn step_err<E: Into<io::Error>>(step: &str) -> impl FnOnce(E) -> SetError + '_ {
    move |e| SetError::new(step, e.into())
}

/// Test builds only (`--features failpoints`): SIGKILLs the calling
/// process at step `name` when `NSJAIL_FAILPOINT=name`, to prove that a
/// helper killed at any step leaves nothing behind.
pub(crate) fn failpoint(name: &str) {
    if failpoint_armed(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::SIGKILL);
        // pid 1 of a pid namespace ignores signals it sends itself.
        crate::sys::exit_now(137);
    }
}

/// Test builds only: whether `NSJAIL_FAILPOINT=name` (always false
/// otherwise), for failpoints that do something else than die.
pub(crate) fn failpoint_armed(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    if std::env::var("NSJAIL_FAILPOINT").is_ok_and(|v| v == name) {
        return true;
    }
    let _ = name;
    false
}
