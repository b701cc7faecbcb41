//! Sessions: the one login flow (`login`, in `login.rs`) that both the
//! PAM module and `nsjail-helper run` call, and below it the registry
//! work of opening and closing a session in a user's set. Set creation
//! itself goes through the `SetCreator` seam, so all of this is unit
//! tested without root (`tests.rs`).
#![forbid(unsafe_code)]

mod login;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::Path;

pub use login::{
    canonical_name, login, refusal_without_session, App, Forker, Host, LoginRequest, OnError,
    Outcome, Placement, System,
};

use crate::idmap;
use crate::nsset::{self, Holder, SetCreator, SetError, SetSpec};
use crate::paths;
use crate::policy::{OnLogout, Settings, Share, SubidMode};
use crate::procfs::{self, ProcId};
use crate::registry::{self, Registry, SetRecord};
use crate::subid::{self, SubRange};
use crate::user::UserInfo;

/// How long `close` waits for a killed set's processes to be gone.
const TEARDOWN_WAIT_MS: i32 = 2000;

/// A failure to place a session, naming the step.
#[derive(Debug)]
pub enum SessionError {
    /// Sub-id range missing or unusable; the message names file and user.
    Subid(String),
    /// The id maps could not be built.
    Map(String),
    /// The registry under /run/pam_nsjail could not be used.
    Registry(io::Error),
    /// The helper could not create the set.
    Create(SetError),
    /// The user's set lends groups she is no longer in, and other logins
    /// still use it.
    Stale { gids: Vec<u32>, logins: usize },
    /// The user already has as many sets as the policy allows.
    TooManySets {
        user: String,
        live: usize,
        max: u32,
        policy: String,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Subid(m) => write!(f, "sub-id range: {m}"),
            SessionError::Map(m) => write!(f, "id map: {m}"),
            SessionError::Registry(e) => write!(f, "registry {}: {e}", paths::REGISTRY),
            SessionError::Create(e) => write!(f, "create namespace set: {e}"),
            SessionError::Stale { gids, logins } => write!(
                f,
                "the user's set maps {} she is no longer a member of, and {logins} other login(s) still use it: refused until they end (or 'nsjail-helper stop' ends the set)",
                describe_gids(gids)
            ),
            SessionError::TooManySets {
                user,
                live,
                max,
                policy,
            } => write!(
                f,
                "{user} already has {live} namespace sets, the most policy {policy:?} allows (max_sets = {max}): end one (log out, or `nsjail-helper stop {user}`) first"
            ),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<io::Error> for SessionError {
    fn from(e: io::Error) -> Self {
        SessionError::Registry(e)
    }
}

/// What a new set for `user` would look like under `settings`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: SetSpec,
    pub subuid: Option<SubRange>,
    pub subgid: Option<SubRange>,
    /// Where the ranges came from (`subid::Source::describe`).
    pub subid_source: String,
    /// Groups the gid map holds as themselves though she need not be in
    /// them (see `SharedGroup`).
    pub shared: Vec<SharedGroup>,
    pub warnings: Vec<String>,
}

/// A host group every isolated user's set maps as itself, member or not,
/// because one setgid program of the host needs it to work inside: today
/// only Debian's `crontab` (setgid `crontab`, to write the cron spool).
/// The group is usable inside only through that program (no capability in
/// the set; `nsset/crontab.rs`; SECURITY.md says what it grants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedGroup {
    pub name: String,
    pub gid: u32,
    /// Why it is lent, for `explain` and the logs.
    pub why: &'static str,
}

impl SharedGroup {
    /// The shared groups of this host, looked up by name through NSS
    /// (a group that does not exist is simply not lent).
    pub fn of_host() -> Vec<SharedGroup> {
        let name = nsset::CRONTAB_GROUP;
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) if g.gid.as_raw() != 0 => vec![SharedGroup {
                name: name.to_owned(),
                gid: g.gid.as_raw(),
                why: "setgid group of the crontab program, so crontab works in the set (it lets that program write the cron spool)",
            }],
            _ => Vec::new(),
        }
    }

    /// Human form: `crontab (gid 107)`.
    pub fn describe(&self) -> String {
        format!("{} (gid {})", self.name, self.gid)
    }
}

/// Computes the id maps and mounts for `user` (sub-ids from the source
/// `etc/nsswitch.conf` names: `etc/subuid` and `etc/subgid`, or libsubid;
/// `etc` is injectable for tests).
///
/// The maps hold only ids the user owns anyway: her uid, her groups, her
/// sub-id ranges. The set's user namespace is hers, so a process of hers
/// outside the set may enter it and take any id it maps: the host's tty
/// group, which owns every terminal, is deliberately not mapped (her
/// login pty shows as `nogroup` inside, and works).
/// The host's crontab group (`SharedGroup`) is mapped as well: lent to
/// every set for the crontab program alone.
pub fn plan(user: &UserInfo, settings: &Settings, etc: &Path) -> Result<Plan, SessionError> {
    plan_with(user, settings, etc, SharedGroup::of_host())
}

/// `plan` with the shared groups given (tests).
pub fn plan_with(
    user: &UserInfo,
    settings: &Settings,
    etc: &Path,
    shared: Vec<SharedGroup>,
) -> Result<Plan, SessionError> {
    let mut gids = user.all_gids();
    gids.sort_unstable();
    gids.dedup();
    let uids = [user.uid];
    let found = subid::entries(etc, &user.name).map_err(|e| SessionError::Subid(e.to_string()))?;
    let required = settings.subids == SubidMode::Required;
    let range = |which: subid::Which, own: &[u32]| {
        found
            .select(which, &user.name, user.uid, own, required)
            .map_err(|e| SessionError::Subid(e.to_string()))
    };
    let subuid = range(subid::Which::Uid, &uids)?;
    let subgid = range(subid::Which::Gid, &gids)?;
    let uid_map = idmap::build(&uids, subuid).map_err(|e| SessionError::Map(e.to_string()))?;
    // Her sub range is checked against her own groups only: a shared
    // group inside it just becomes one more hole in the map.
    let mapped: Vec<u32> = gids
        .iter()
        .copied()
        .chain(shared.iter().map(|g| g.gid))
        .collect();
    let gid_map = idmap::build(&mapped, subgid).map_err(|e| SessionError::Map(e.to_string()))?;
    let mut spec = SetSpec::new(
        nsset::Identity {
            uid: user.uid,
            gid: user.gid,
            gids: user.all_gids(),
        },
        settings,
        uid_map,
        gid_map,
    );
    spec.crontab_gid = shared
        .iter()
        .find(|g| g.name == nsset::CRONTAB_GROUP)
        .map(|g| g.gid);
    Ok(Plan {
        spec,
        subuid,
        subgid,
        subid_source: found.source.describe(etc),
        shared,
        warnings: found.warnings,
    })
}

/// A session placed in a set: the caller joins through `holder.pidfd`.
#[derive(Debug)]
pub struct Opened {
    pub key: String,
    pub holder: Holder,
    /// True if this open created the set, false if it joined one.
    pub created: bool,
    pub join_flags: libc::c_int,
    /// The exiting process that built a new set; reaped when this is
    /// dropped, so drop it (or `reap_helper`) once the login is placed.
    pub h0: nsset::H0,
    /// Where systemd keeps a set this open created (`NoSystemd` when it
    /// joined one).
    pub unit: nsset::UnitPlacement,
    /// What the registry had to repair on the way (a corrupt record).
    pub notes: Vec<String>,
    /// The set's private network (address, host link), if it has one.
    pub lease: Option<crate::net::Lease>,
    /// The policy's resource limits apply: the process that joins must
    /// first be moved under them (`limits::enter_limits`).
    pub limited: bool,
}

impl Opened {
    /// Reaps the process that built the set, if this open created one.
    pub fn reap_helper(&mut self) {
        self.h0 = nsset::H0::default();
    }
}

/// Everything `open` needs about the login.
pub struct OpenRequest<'a> {
    pub user: &'a UserInfo,
    pub policy: &'a str,
    pub settings: &'a Settings,
    /// Where `subuid`/`subgid` live; read only if a set must be created.
    pub etc: &'a Path,
    /// How a new set is built.
    pub creator: &'a dyn SetCreator,
    /// The process that will call `close` (sshd's monitor, `run`, …).
    pub opener: ProcId,
    /// The groups a set lends to every user (`SharedGroup::of_host`).
    pub shared: &'a [SharedGroup],
}

/// Creates or joins the user's set under the per-user lock and records
/// the session in it. Joining needs no id maps, so the sub-id files are
/// only read when a set is created.
pub fn open(reg: &Registry, req: &OpenRequest<'_>) -> Result<Opened, SessionError> {
    for done in crate::net::sweep_if_idle() {
        crate::log::log(
            crate::log::Level::Info,
            &format!("private networks: the last set had ended: {done}"),
        );
    }
    let _lock = reg.lock_user(req.user.uid)?;
    // Cgroups of sets that ended without a logout (no systemd).
    sweep_cgroups(req.user.uid, &[]);
    if req.settings.share == Share::User {
        let key = format!("u{}", req.user.uid);
        if let Some(mut rec) = reg.read(&key)? {
            if let Some(holder) = reg.attach(&rec) {
                reg.prune_sessions(&mut rec);
                log_oom_kills(reg, &rec);
                if let Some(gids) = no_longer_hers(&rec, req.user, req.shared) {
                    if !rec.sessions.is_empty() {
                        return Err(SessionError::Stale {
                            gids,
                            logins: rec.sessions.len(),
                        });
                    }
                    // Nobody uses it (a lingering set): end it, as the
                    // last logout would have, and make a fresh one.
                    registry::kill_holder(&holder, TEARDOWN_WAIT_MS)?;
                    reg.remove(&key)?;
                    sweep_cgroups(req.user.uid, rec.limits_cgroup.as_slice());
                    reg.note(format!(
                        "set {key} (holder {}) mapped {} she is no longer a member of and had no logins: it was ended and a new set made",
                        rec.holder.pid,
                        describe_gids(&gids)
                    ));
                    return create(reg, req);
                }
                rec.sessions.push(req.opener);
                reg.write(&rec)?;
                let mut notes = reg.take_notes();
                if rec.on_logout == OnLogout::Kill {
                    // Without it the set still ends at the last close,
                    // but not if this login ends without one.
                    if let Err(e) = req.creator.enlist(&holder, req.opener, reg.proc_root()) {
                        // The holder would end the set with the openers
                        // it knows, under this login: tell it to stop
                        // watching (then only a close or stop ends it),
                        // or refuse this login.
                        use std::os::fd::AsFd;
                        crate::sys::pidfd_send_signal(holder.pidfd.as_fd(), libc::SIGUSR1)
                            .map_err(|s| {
                                SessionError::Create(SetError::new(
                                    "hand the session's opener to the holder",
                                    format!(
                                        "{e}; and telling the holder to stop watching failed: {s}"
                                    ),
                                ))
                            })?;
                        notes.push(format!(
                            "the set will not end by itself if a login ends without closing (its holder stopped watching the logins' openers): {e}"
                        ));
                    }
                }
                return Ok(Opened {
                    key,
                    join_flags: rec.join_flags(),
                    holder,
                    created: false,
                    h0: nsset::H0::default(),
                    unit: nsset::UnitPlacement::NoSystemd,
                    notes,
                    lease: rec.lease.clone(),
                    limited: !req.settings.limits.is_empty(),
                });
            }
            // The holder died or its pid now belongs to someone else: the
            // record is stale. Never signal a process we could not verify.
            reg.remove(&key)?;
        }
    }
    create(reg, req)
}

/// The gids `rec`'s set lends that `user` is no longer in and that are
/// not lent to every set (`shared`, the crontab group), or (a record of
/// an older version: the tty group, unknown), or `None` if it lends only
/// those. Joining such a set would keep lending them for as long as her
/// logins keep it alive.
///
/// A set made before the crontab group was shared does not lend it: it
/// is joined all the same (it lends less; only crontab fails in it, until
/// her last login ends it and the next one makes a new set), never
/// ended under her running logins or lingering jobs for that.
fn no_longer_hers(rec: &SetRecord, user: &UserInfo, shared: &[SharedGroup]) -> Option<Vec<u32>> {
    let Some(lent) = &rec.lent_gids else {
        return Some(Vec::new());
    };
    let hers = user.all_gids();
    let gone: Vec<u32> = lent
        .iter()
        .copied()
        .filter(|g| !hers.contains(g) && !shared.iter().any(|s| s.gid == *g))
        .collect();
    (!gone.is_empty()).then_some(gone)
}

fn describe_gids(gids: &[u32]) -> String {
    if gids.is_empty() {
        return "ids unknown to this version (a set made before 'lent_gids' was recorded, which lends the host's tty group)".into();
    }
    let list: Vec<String> = gids.iter().map(u32::to_string).collect();
    format!("gid(s) {}", list.join(","))
}

/// Whether `pid` is in a cgroup namespace other than this process's.
fn own_cgroup_ns(proc_root: &Path, pid: i32) -> bool {
    let ours = procfs::ns_inode(proc_root, std::process::id() as i32, "cgroup");
    let theirs = procfs::ns_inode(proc_root, pid, "cgroup");
    matches!((ours, theirs), (Ok(a), Ok(b)) if a != b)
}

/// Creates a set for the login and records it (the per-user lock held).
fn create(reg: &Registry, req: &OpenRequest<'_>) -> Result<Opened, SessionError> {
    // Every set costs root an ipc and a pid namespace (H0 makes them) and
    // the registry a record, from pools all users share (DESIGN §2c): one user
    // may only hold so many, counted here under the per-user lock.
    let live = reg
        .sets_of(req.user.uid)
        .iter()
        .filter(|rec| reg.attach(rec).is_some())
        .count();
    if live >= req.settings.bounds.max_sets as usize {
        return Err(SessionError::TooManySets {
            user: req.user.name.clone(),
            live,
            max: req.settings.bounds.max_sets,
            policy: req.policy.to_owned(),
        });
    }
    let plan = plan_with(req.user, req.settings, req.etc, req.shared.to_vec())?;
    let links_before = match plan.spec.private_net {
        Some(_) => crate::net::live_indices(),
        None => Vec::new(),
    };
    let nsset::Spawned {
        holder,
        h0,
        unit,
        lease,
        unlent,
    } = req
        .creator
        .create(&plan.spec, reg.proc_root())
        .map_err(|e| {
            // A set that failed half-way took its link with it; what it
            // may have left on the host (table, forwarding) goes if no
            // other set needs it.
            if plan.spec.private_net.is_some() {
                crate::net::sweep_after_failure(&links_before);
            }
            SessionError::Create(e)
        })?;
    let key = match req.settings.share {
        Share::User => format!("u{}", req.user.uid),
        Share::Session => format!("s{}.{}", req.user.uid, holder.id.pid),
    };
    let rec = SetRecord {
        key: key.clone(),
        user: req.user.name.clone(),
        uid: req.user.uid,
        gid: req.user.gid,
        policy: req.policy.to_owned(),
        share: req.settings.share,
        on_logout: req.settings.on_logout,
        holder: holder.id,
        userns: holder.userns,
        uts: plan.spec.uts,
        // Where the policy leaves it to the host, H0 decided: the set has
        // a cgroup namespace of its own if its holder is in another one.
        cgroup: plan.spec.cgroup
            || (plan.spec.cgroup_auto && own_cgroup_ns(reg.proc_root(), holder.id.pid)),
        net: plan.spec.net,
        lease: lease.clone(),
        created: registry::now_secs(),
        // What the set maps as itself: the plan's identity lines, less a
        // shared group H0 had to take back out.
        lent_gids: Some(
            plan.spec
                .gid_map
                .iter()
                .filter(|l| l.inside == l.outside && Some(l.outside) != unlent)
                .map(|l| l.outside)
                .collect(),
        ),
        limits_cgroup: limits_cgroup(
            reg.proc_root(),
            holder.id.pid,
            &unit,
            !req.settings.limits.is_empty(),
        ),
        sessions: vec![req.opener],
    };
    if let Err(e) = reg.write(&rec) {
        // An unregistered set would be unreachable: end it now.
        let _ = registry::kill_holder(&holder, TEARDOWN_WAIT_MS);
        if let Some(l) = &rec.lease {
            crate::net::release(l);
        }
        return Err(e.into());
    }
    Ok(Opened {
        key,
        join_flags: rec.join_flags(),
        holder,
        created: true,
        h0,
        unit,
        notes: reg.take_notes(),
        lease,
        limited: !req.settings.limits.is_empty(),
    })
}

/// What `close` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// Other sessions (or `on_logout = "linger"`) keep the set alive.
    Kept { sessions: usize },
    /// The last session left and the set was killed.
    Ended,
    /// The set was already gone.
    Gone,
}

/// Removes `opener`'s session from set `key`; with `on_logout = "kill"`
/// the last session out kills the set and removes its record. A private
/// network's teardown (which may wait for the kernel) runs after the
/// user's lock is released, so it never holds up her other logins.
pub fn close(reg: &Registry, uid: u32, key: &str, opener_pid: i32) -> Result<Closed, SessionError> {
    let (closed, ended) = {
        let _lock = reg.lock_user(uid)?;
        close_locked(reg, key, opener_pid)?
    };
    if let Some(rec) = ended {
        release_network(&rec);
    }
    Ok(closed)
}

/// `close` under the user's lock; also returns the record of a set that
/// is gone.
fn close_locked(
    reg: &Registry,
    key: &str,
    opener_pid: i32,
) -> Result<(Closed, Option<SetRecord>), SessionError> {
    let Some(mut rec) = reg.read(key)? else {
        return Ok((Closed::Gone, None));
    };
    let Some(holder) = reg.attach(&rec) else {
        reg.remove(key)?;
        log_oom_kills(reg, &rec);
        sweep_cgroups(rec.uid, rec.limits_cgroup.as_slice());
        return Ok((Closed::Gone, Some(rec)));
    };
    if let Some(i) = rec.sessions.iter().position(|s| s.pid == opener_pid) {
        rec.sessions.remove(i);
    }
    reg.prune_sessions(&mut rec);
    log_oom_kills(reg, &rec);
    if rec.sessions.is_empty() && rec.on_logout == OnLogout::Kill {
        registry::kill_holder(&holder, TEARDOWN_WAIT_MS)?;
        reg.remove(key)?;
        sweep_cgroups(rec.uid, rec.limits_cgroup.as_slice());
        return Ok((Closed::Ended, Some(rec)));
    }
    reg.write(&rec)?;
    Ok((
        Closed::Kept {
            sessions: rec.sessions.len(),
        },
        None,
    ))
}

/// A set `stop_user` ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped {
    pub key: String,
    /// Logins of the set whose opener (sshd's monitor, `run`, …) was ended
    /// too, so nothing of them (port forwarding, say) outlives the set.
    pub logins: usize,
}

/// Kills every set of `uid`, then ends each of its logins' openers.
pub fn stop_user(reg: &Registry, uid: u32) -> Result<Vec<Stopped>, SessionError> {
    let mut ended = Vec::new();
    let mut gone = Vec::new();
    {
        let _lock = reg.lock_user(uid)?;
        for rec in reg.sets_of(uid) {
            log_oom_kills(reg, &rec);
            if let Some(holder) = reg.attach(&rec) {
                registry::kill_holder(&holder, TEARDOWN_WAIT_MS)?;
            }
            reg.remove(&rec.key)?;
            let logins = rec
                .sessions
                .iter()
                .filter(|s| end_process(reg.proc_root(), **s))
                .count();
            ended.push(Stopped {
                key: rec.key.clone(),
                logins,
            });
            gone.push(rec);
        }
        let ended: Vec<String> = gone
            .iter()
            .filter_map(|r| r.limits_cgroup.clone())
            .collect();
        sweep_cgroups(uid, &ended);
    }
    // Network teardowns wait for the kernel: not under the user's lock.
    for rec in &gone {
        release_network(rec);
    }
    Ok(ended)
}

/// The cgroup v2 path of a new set under resource limits (`limited`):
/// its own cgroup (no systemd), or its holder's, which is the set's
/// systemd scope.
fn limits_cgroup(
    proc_root: &Path,
    holder: i32,
    unit: &nsset::UnitPlacement,
    limited: bool,
) -> Option<String> {
    match unit {
        nsset::UnitPlacement::Cgroup(path) => Some(path.clone()),
        _ if limited => std::fs::read_to_string(proc_root.join(holder.to_string()).join("cgroup"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned),
        _ => None,
    }
}

/// Logs the OOM kills in the limited cgroup of `rec`'s user since they
/// were last logged (one line: user, the set whose login noticed, the
/// user's cgroup and its `memory.events` `oom_kill` count), and notes
/// the count in the registry. Called under the user's lock whenever a
/// login opens, closes or stops a set: the module runs no thread that
/// could watch. (The kills are counted per user, not per set: a memory
/// cgroup per set would nearly quadruple a set's kernel memory.)
fn log_oom_kills(reg: &Registry, rec: &SetRecord) {
    use std::os::unix::fs::MetadataExt;
    let Some(user_cgroup) = rec
        .limits_cgroup
        .as_deref()
        .and_then(crate::limits::direct::user_of_set)
    else {
        return;
    };
    let root = Path::new(paths::CGROUP);
    let Ok(ino) =
        std::fs::metadata(root.join(user_cgroup.trim_start_matches('/'))).map(|m| m.ino())
    else {
        return;
    };
    let Some(kills) = crate::limits::direct::oom_kills(root, user_cgroup) else {
        return;
    };
    let logged = match reg.oom_logged(rec.uid) {
        Some((i, n)) if i == ino => n,
        _ => 0,
    };
    if kills <= logged {
        return;
    }
    crate::log::log(
        crate::log::Level::Warning,
        &format!(
            "user={} set={} action=oom_kill oom_kill={kills} new={} cgroup={user_cgroup} note=\"the kernel's OOM killer ended process(es) of this user at her memory limit\"",
            rec.user,
            rec.key,
            kills - logged,
        ),
    );
    let _ = reg.set_oom_logged(rec.uid, ino, kills);
}

/// Removes the cgroups of `uid`'s sets that ended (no systemd: our own
/// subtree), waiting for those in `ended` to empty; the caller holds the
/// user's lock. What cannot be removed is logged and swept later.
pub fn sweep_cgroups(uid: u32, ended: &[String]) {
    for left in crate::limits::direct::sweep_user(Path::new(paths::CGROUP), uid, ended) {
        crate::log::log(
            crate::log::Level::Warning,
            &format!("uid={uid} cgroup not removed (swept at the next login): {left}"),
        );
    }
}

/// After a set with a private network ended: its link goes with its
/// network namespace; forget its connections, and the host table and
/// forwarding with the last such set (`net::release`).
fn release_network(rec: &SetRecord) {
    if let Some(lease) = &rec.lease {
        for done in crate::net::release(lease) {
            crate::log::log(
                crate::log::Level::Info,
                &format!("user={} set={} network: {done}", rec.user, rec.key),
            );
        }
    }
}

/// Ends the process `id` if it is still that process: SIGTERM, then
/// SIGKILL if it has not gone within the teardown wait. True if it was
/// alive.
fn end_process(proc_root: &Path, id: ProcId) -> bool {
    use std::os::fd::AsFd;
    let Ok(pidfd) = crate::sys::pidfd_open(id.pid) else {
        return false;
    };
    // The pidfd pins the process; check it is the one recorded.
    if !crate::procfs::is_alive(proc_root, id) {
        return false;
    }
    let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM);
    if !registry::pidfd_exited(pidfd.as_fd(), TEARDOWN_WAIT_MS).unwrap_or(false) {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
    true
}

/// One syslog line per decision, in the format admins grep for.
pub fn decision_line(
    user: &str,
    service: &str,
    policy: &str,
    action: &str,
    set: &str,
    detail: &str,
) -> String {
    let mut line =
        format!("user={user} service={service} policy={policy} action={action} set={set}");
    if !detail.is_empty() {
        line.push(' ');
        line.push_str(detail);
    }
    line
}
