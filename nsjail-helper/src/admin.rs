//! What the admin commands do to live sets (`list`, `enter`, `stop`),
//! kept out of the CLI, which only parses and prints.
#![forbid(unsafe_code)]

use std::path::Path;

use crate::limits::usage::{self, Usage};
use crate::nsset::Holder;
use crate::paths;
use crate::procfs;
use crate::registry::{self, Registry, SetRecord};

pub use crate::session::stop_user;

/// A set whose holder is alive, with what `list` shows about it.
pub struct LiveSet {
    pub rec: SetRecord,
    /// Processes in the set's pid namespace and those nested in it.
    pub processes: usize,
    pub age_secs: u64,
    /// Who owns (and is charged for) the set's user namespace.
    pub userns_owner: Option<u32>,
    /// The use and limits of the user's limited slice, when the set is in
    /// one (its policy has limits, on a systemd host).
    pub usage: Option<Usage>,
}

/// Every live set. Records whose holder is gone are removed, each under
/// its user's lock (and only if still dead once the lock is held).
pub fn live_sets(reg: &Registry) -> Vec<LiveSet> {
    let mut out = Vec::new();
    for mut rec in reg.all() {
        if reg.attach(&rec).is_none() {
            if let Ok(_lock) = reg.lock_user(rec.uid) {
                if reg
                    .read(&rec.key)
                    .ok()
                    .flatten()
                    .is_some_and(|r| reg.attach(&r).is_none())
                {
                    let _ = reg.remove(&rec.key);
                    crate::session::sweep_cgroups(rec.uid, rec.limits_cgroup.as_slice());
                }
            }
            continue;
        }
        reg.prune_sessions(&mut rec);
        let processes = procfs::ns_inode(reg.proc_root(), rec.holder.pid, "pid")
            .map(|ns| procfs::pids_in_pid_ns(reg.proc_root(), ns).len())
            .unwrap_or(0);
        let age_secs = registry::now_secs().saturating_sub(rec.created);
        let userns_owner = procfs::userns_owner(reg.proc_root(), rec.holder.pid).ok();
        let usage = usage::of_holder(
            reg.proc_root(),
            Path::new(paths::CGROUP),
            rec.holder.pid,
            rec.uid,
        );
        out.push(LiveSet {
            rec,
            processes,
            age_secs,
            userns_owner,
            usage,
        });
    }
    out
}

/// The set `enter` picks for a user: the shared one, else the newest,
/// with a verified handle on its holder.
pub fn pick_set(reg: &Registry, uid: u32) -> Option<(SetRecord, Holder)> {
    let mut sets = reg.sets_of(uid);
    sets.sort_by_key(|r| (r.key.starts_with('u'), r.created));
    sets.into_iter()
        .rev()
        .find_map(|r| reg.attach(&r).map(|h| (r, h)))
}
