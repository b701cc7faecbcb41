//! Limits on a host without systemd: the cgroup v2 hierarchy, directly.
//!
//! pam_nsjail owns one subtree, `/sys/fs/cgroup/pam_nsjail` (root's,
//! 0755: no user can write in it), and nothing outside it but the
//! root's `cgroup.subtree_control`, where it enables the controllers its
//! limits need. Below it:
//!
//! ```text
//! pam_nsjail/                 controllers enabled for its children
//!   user-UID/                 the user's limits (memory.max, pids.max, …):
//!                             all of her sets and logins together
//!     set-H0PID[-N]/          one set: its holder and every process that
//!                             joined it (a leaf: cgroup v2 lets processes
//!                             live only in leaves, apart from the root)
//! ```
//!
//! - H0, under the user's lock, creates the path, writes the limits into
//!   `user-UID` (all six, unset ones as the kernel's default, so a key
//!   removed from the policy is lifted at the next login) and moves itself
//!   into `set-H0PID` before it makes any namespace: the holder it forks
//!   is born there, and the set's cgroup namespace is rooted there.
//! - Every process that joins the set (sshd's post-auth child, `run`'s
//!   and `enter`'s child), as root in the host namespaces and before it
//!   enters the set or drops to the user, writes `0` ("the writer") into
//!   the set's `cgroup.procs`. `0` needs no pid: `run`'s child is already
//!   in the set's pid namespace, where its own pid means nothing to the
//!   host. The set's path is read from its holder's `/proc/PID/cgroup`
//!   and trusted only after the holder's pidfd says it is still alive.
//! - When a set ends, its cgroup is removed, and the user's with her last
//!   set, under the user's lock (`sweep_user`): so a concurrent login of
//!   hers never finds a half-removed path, and a set that ended without a
//!   logout (its holder exited by itself) is swept at her next login or
//!   `list`.
#![forbid(unsafe_code)]

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Limits;

/// pam_nsjail's subtree, under the cgroup v2 root.
pub const SUBTREE: &str = "pam_nsjail";
/// Controllers enabled for every user's cgroup even where the limits do
/// not need them, so `list` can show memory and tasks.
const ALWAYS: [&str; 2] = ["memory", "pids"];
/// How long a removal waits for the kernel to let go of a set's last
/// processes (a pid namespace's members leave their cgroup as they exit).
const REMOVE_WAIT: Duration = Duration::from_millis(1000);

/// The user's cgroup, relative to the cgroup v2 root: `/pam_nsjail/user-UID`.
pub fn user_cgroup(uid: u32) -> String {
    format!("/{SUBTREE}/user-{uid}")
}

/// `root` joined with a cgroup path (`/pam_nsjail/…`).
fn dir(root: &Path, cgroup: &str) -> PathBuf {
    root.join(cgroup.trim_start_matches('/'))
}

/// The set cgroup a `/proc/PID/cgroup` text places the process in, if it
/// is one of `uid`'s: `/pam_nsjail/user-UID/set-N`.
pub fn set_cgroup_of(cgroup: &str, uid: u32) -> Option<String> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let set = path
        .strip_prefix(&user_cgroup(uid))?
        .strip_prefix("/set-")?;
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match set.split_once('-') {
        Some((pid, n)) => numbers(pid) && numbers(n),
        None => numbers(set),
    };
    ok.then(|| path.to_owned())
}

/// The user's cgroup a set cgroup path lies in.
pub fn user_of_set(set: &str) -> Option<&str> {
    set.rsplit_once('/').map(|(user, _)| user)
}

/// The values written for `limits`, file by file; `None` for a file whose
/// controller the limits do not need and which may be absent.
fn files(limits: &Limits) -> [(&'static str, &'static str, Option<String>); 6] {
    let max = |v: Option<u64>| v.map_or_else(|| "max".to_owned(), |n| n.to_string());
    [
        ("memory", "memory.max", Some(max(limits.memory_max))),
        ("memory", "memory.high", Some(max(limits.memory_high))),
        ("pids", "pids.max", Some(max(limits.tasks_max))),
        (
            "cpu",
            "cpu.max",
            // µs per 100 ms period: 100 % of one CPU = 100000.
            Some(limits.cpu_quota.map_or_else(
                || "max 100000".to_owned(),
                |pct| format!("{} 100000", pct.saturating_mul(1000)),
            )),
        ),
        (
            "cpu",
            "cpu.weight",
            Some(limits.cpu_weight.unwrap_or(100).to_string()),
        ),
        (
            "io",
            "io.weight",
            Some(format!("default {}", limits.io_weight.unwrap_or(100))),
        ),
    ]
}

/// The controllers to enable down to the users' cgroups.
fn wanted(limits: &Limits, available: &[&str]) -> Vec<&'static str> {
    let mut want: Vec<&'static str> = ALWAYS
        .into_iter()
        .filter(|c| available.contains(c))
        .collect();
    for c in limits.controllers() {
        if !want.contains(&c) {
            want.push(c);
        }
    }
    want
}

/// Enables `controllers` in `cgroup`'s `cgroup.subtree_control`, each one
/// not yet enabled.
fn enable(cgroup: &Path, controllers: &[&str]) -> Result<(), String> {
    let file = cgroup.join("cgroup.subtree_control");
    let on = fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let on: Vec<&str> = on.split_whitespace().collect();
    for c in controllers.iter().filter(|c| !on.contains(c)) {
        write_file(&file, &format!("+{c}"))?;
    }
    Ok(())
}

/// One write of `text` to an existing cgroup file (no create, no
/// truncate: cgroup files take one value per write).
fn write_file(file: &Path, text: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("write {text:?} to {}: {e}", file.display()))
}

fn mkdir(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(format!("mkdir {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes (or updates) `uid`'s cgroup with `limits` and a new set cgroup
/// `set-PID` (`pid`: H0's own; `set-PID-N` if that exists), and moves the
/// calling process into it. Returns the set's cgroup path
/// (`/pam_nsjail/user-UID/set-PID`). The
/// caller holds the user's lock. `root` is normally `/sys/fs/cgroup`.
pub fn place_set(root: &Path, uid: u32, pid: u32, limits: &Limits) -> Result<String, String> {
    let available = fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|e| format!("read {}/cgroup.controllers: {e}", root.display()))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let want = wanted(limits, &available);
    // 1. The controllers, from the root down to the users' cgroups: a
    //    controller is usable in a cgroup only if its parent enabled it.
    //    Neither the root (exempt) nor our subtree holds a process, so
    //    enabling is allowed.
    enable(root, &want)?;
    let subtree = root.join(SUBTREE);
    mkdir(&subtree)?;
    enable(&subtree, &want)?;
    // 2. The user's cgroup and her limits, before any process of hers is
    //    in it. Unset limits are written as the kernel's defaults.
    let user = dir(root, &user_cgroup(uid));
    mkdir(&user)?;
    for (controller, name, value) in files(limits) {
        let Some(value) = value else { continue };
        let file = user.join(name);
        if !want.contains(&controller) && !file.exists() {
            continue;
        }
        write_file(&file, &value)?;
    }
    // No controller is enabled below the user's cgroup: a memory cgroup
    // per set would nearly quadruple a set's kernel memory (measured: 406 kB
    // against 104 kB), and the limits are the user's anyway.
    // 3. The set's leaf, new (our pid may be that of an earlier H0 whose
    //    set still lives, or whose empty cgroup awaits its sweep), and
    //    this process in it.
    for n in 0..100 {
        let set = match n {
            0 => format!("{}/set-{pid}", user_cgroup(uid)),
            n => format!("{}/set-{pid}-{n}", user_cgroup(uid)),
        };
        let leaf = dir(root, &set);
        match fs::DirBuilder::new().create(&leaf) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("mkdir {}: {e}", leaf.display())),
            Ok(()) => {}
        }
        write_file(&leaf.join("cgroup.procs"), "0")?;
        return Ok(set);
    }
    Err(format!(
        "{}: no free name for a set's cgroup (set-{pid}-N)",
        user.display()
    ))
}

/// Moves the calling process into the set cgroup `set` (from
/// `set_cgroup_of`) and checks it arrived.
pub fn join(root: &Path, set: &str) -> Result<(), String> {
    write_file(&dir(root, set).join("cgroup.procs"), "0")?;
    let now = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if now.lines().any(|l| l.strip_prefix("0::") == Some(set)) {
        Ok(())
    } else {
        Err(format!(
            "moved into {set}, but this process is in {}",
            now.trim()
        ))
    }
}

/// Removes `uid`'s set cgroups that no process is in any more (sets that
/// ended), and her cgroup when no set cgroup is left; waits up to
/// `REMOVE_WAIT` for cgroups whose last processes are still exiting
/// (`busy`: cgroups of live sets are never waited for). The caller holds
/// the user's lock. Returns what could not be removed, with why.
pub fn sweep_user(root: &Path, uid: u32, busy: &[String]) -> Vec<String> {
    let user = dir(root, &user_cgroup(uid));
    let Ok(entries) = fs::read_dir(&user) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    let mut sets = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("set-") || !entry.path().is_dir() {
            continue;
        }
        sets += 1;
        let cgroup = format!("{}/{name}", user_cgroup(uid));
        let wait = busy.contains(&cgroup);
        if !wait && populated(&entry.path()) {
            continue;
        }
        match remove(&entry.path(), wait) {
            Ok(()) => sets -= 1,
            Err(e) => left.push(format!("{cgroup}: {e}")),
        }
    }
    if sets == 0 {
        if let Err(e) = remove(&user, false) {
            left.push(format!("{}: {e}", user_cgroup(uid)));
        }
    }
    left
}

/// Whether any process is in `cgroup` or below (`cgroup.events`).
fn populated(cgroup: &Path) -> bool {
    fs::read_to_string(cgroup.join("cgroup.events"))
        .map(|t| !t.lines().any(|l| l == "populated 0"))
        .unwrap_or(true)
}

/// rmdir, retried while the kernel still counts exiting processes in it
/// (EBUSY) if `wait`.
fn remove(cgroup: &Path, wait: bool) -> io::Result<()> {
    let deadline = Instant::now() + REMOVE_WAIT;
    loop {
        match fs::remove_dir(cgroup) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && wait => {
                if Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// A number from a flat-keyed cgroup file (`memory.events`'s `oom_kill`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `oom_kill` of `cgroup`'s `memory.events` (kills of its processes and
/// those below it), if it has one.
pub fn oom_kills(root: &Path, cgroup: &str) -> Option<u64> {
    let text = fs::read_to_string(dir(root, cgroup).join("memory.events")).ok()?;
    keyed(&text, "oom_kill")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!(
            "nsjail-direct-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        base
    }

    #[test]
    fn set_cgroups_are_recognised_only_under_the_users_own() {
        assert_eq!(
            set_cgroup_of("0::/pam_nsjail/user-1001/set-42\n", 1001).as_deref(),
            Some("/pam_nsjail/user-1001/set-42")
        );
        for other in [
            "0::/pam_nsjail/user-1002/set-42\n",
            "0::/pam_nsjail/user-10011/set-42\n",
            "0::/pam_nsjail/user-1001/set-\n",
            "0::/pam_nsjail/user-1001/set-4x\n",
            "0::/pam_nsjail/user-1001/set-42-\n",
            "0::/pam_nsjail/user-1001/set--1\n",
            "0::/pam_nsjail/user-1001/set-42-1-1\n",
            "0::/pam_nsjail/user-1001\n",
            "0::/\n",
            "4:pids:/pam_nsjail/user-1001/set-42\n",
        ] {
            assert_eq!(set_cgroup_of(other, 1001), None, "{other}");
        }
        assert_eq!(
            set_cgroup_of("0::/pam_nsjail/user-1001/set-42-2\n", 1001).as_deref(),
            Some("/pam_nsjail/user-1001/set-42-2")
        );
        assert_eq!(
            user_of_set("/pam_nsjail/user-1001/set-42"),
            Some("/pam_nsjail/user-1001")
        );
    }

    #[test]
    fn every_limit_is_written_and_unset_ones_lifted() {
        let l = Limits {
            memory_max: Some(64 << 20),
            tasks_max: Some(40),
            cpu_quota: Some(150),
            io_weight: Some(200),
            ..Limits::default()
        };
        let written: Vec<(&str, String)> = files(&l)
            .into_iter()
            .map(|(_, f, v)| (f, v.unwrap()))
            .collect();
        assert_eq!(
            written,
            [
                ("memory.max", "67108864".to_owned()),
                ("memory.high", "max".to_owned()),
                ("pids.max", "40".to_owned()),
                ("cpu.max", "150000 100000".to_owned()),
                ("cpu.weight", "100".to_owned()),
                ("io.weight", "default 200".to_owned()),
            ]
        );
        assert_eq!(
            wanted(&l, &["cpu", "io", "memory", "pids"]),
            ["memory", "pids", "cpu", "io"]
        );
        assert_eq!(
            wanted(&Limits::default(), &["cpu", "memory"]),
            ["memory"],
            "only what is there"
        );
    }

    #[test]
    fn memory_events_are_read() {
        let text = "low 0\nhigh 3\nmax 17\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(text, "oom_kill"), Some(2));
        assert_eq!(keyed(text, "oom"), Some(2));
        assert_eq!(keyed(text, "max"), Some(17));
        assert_eq!(keyed(text, "gone"), None);
    }

    #[test]
    fn sweeping_keeps_live_sets_and_their_user() {
        // A plain directory tree stands in for cgroupfs (whose removal the
        // VM test exercises): a set whose cgroup.events says populated
        // stays, and so does the user's cgroup above it.
        let root = scratch("sweep");
        let user = dir(&root, &user_cgroup(7));
        fs::create_dir_all(user.join("set-1")).unwrap();
        fs::write(user.join("set-1/cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(sweep_user(&root, 7, &[]).is_empty());
        assert!(user.join("set-1").is_dir() && user.is_dir());
        assert!(sweep_user(&root, 8, &[]).is_empty(), "no cgroup: nothing");
        // An empty leaf (cgroupfs has no files to delete) of a set that
        // ended goes, and the user's cgroup with her last one.
        fs::remove_file(user.join("set-1/cgroup.events")).unwrap();
        assert!(sweep_user(&root, 7, &["/pam_nsjail/user-7/set-1".into()]).is_empty());
        assert!(!user.exists());
        let _ = fs::remove_dir_all(&root);
    }
}
