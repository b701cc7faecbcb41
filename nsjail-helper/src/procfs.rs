//! Reads the few facts about a process the registry needs, from the host's
//! `/proc` (root-owned and kernel-generated, never a path a user controls).
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Identity of a process that survives pid reuse: its pid plus its start
/// time in clock ticks since boot (field 22 of `/proc/PID/stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

fn proc_path(proc_root: &Path, pid: i32, rest: &str) -> PathBuf {
    proc_root.join(pid.to_string()).join(rest)
}

/// The fields after the `(comm)` of `/proc/PID/stat`: the command name may
/// contain spaces and parentheses, so split at the last `)`.
fn stat_fields(proc_root: &Path, pid: i32) -> io::Result<Vec<String>> {
    let text = fs::read_to_string(proc_path(proc_root, pid, "stat"))?;
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// Start time of `pid`, or `None` if it does not exist or is a zombie.
pub fn live_start_time(proc_root: &Path, pid: i32) -> Option<u64> {
    let fields = stat_fields(proc_root, pid).ok()?;
    // fields[0] is field 3 (state); start time is field 22.
    if fields.first().map(String::as_str) == Some("Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The current identity of `pid`, if it is alive.
pub fn proc_id(proc_root: &Path, pid: i32) -> Option<ProcId> {
    live_start_time(proc_root, pid).map(|start| ProcId { pid, start })
}

/// Whether the process recorded as `id` is still alive (not reused).
pub fn is_alive(proc_root: &Path, id: ProcId) -> bool {
    live_start_time(proc_root, id.pid) == Some(id.start)
}

/// Inode number of one of `pid`'s namespaces (`kind` as in `/proc/PID/ns`).
pub fn ns_inode(proc_root: &Path, pid: i32, kind: &str) -> io::Result<u64> {
    let link = fs::read_link(proc_path(proc_root, pid, &format!("ns/{kind}")))?;
    let text = link.to_string_lossy();
    text.rsplit_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected ns link {text}"),
            )
        })
}

/// Pids (host numbering) of every process whose pid namespace is `pid_ns`
/// or one nested in it (a user may make pid namespaces inside a set).
/// Used only for counting and display; never to choose a namespace to join.
pub fn pids_in_pid_ns(proc_root: &Path, pid_ns: u64) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid_ns_within(proc_root, pid, pid_ns))
        .collect()
}

/// Whether `pid`'s pid namespace is `pid_ns` or a descendant of it.
fn pid_ns_within(proc_root: &Path, pid: i32, pid_ns: u64) -> bool {
    // The kernel nests pid namespaces at most 32 deep.
    const MAX_DEPTH: usize = 33;
    let Ok(mut ns) = fs::File::open(proc_path(proc_root, pid, "ns/pid")).map(OwnedFd::from) else {
        return false;
    };
    for _ in 0..MAX_DEPTH {
        match nix::sys::stat::fstat(&ns) {
            Ok(st) if st.st_ino == pid_ns => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        // Fails at the top of the tree (or outside our view of it).
        match crate::sys::ns_parent(ns.as_fd()) {
            Ok(parent) => ns = parent,
            Err(_) => return false,
        }
    }
    false
}

/// The uid (on the host) that owns `pid`'s user namespace: who the kernel
/// charges for what is made inside it.
pub fn userns_owner(proc_root: &Path, pid: i32) -> io::Result<u32> {
    let ns = fs::File::open(proc_path(proc_root, pid, "ns/user"))?;
    crate::sys::ns_owner_uid(ns.as_fd())
}

/// Proportional set size of `pid` in kB, from `smaps_rollup`.
pub fn pss_kb(proc_root: &Path, pid: i32) -> Option<u64> {
    let text = fs::read_to_string(proc_path(proc_root, pid, "smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Clock ticks since boot now (for ages), from `/proc/uptime`.
pub fn uptime_secs(proc_root: &Path) -> Option<f64> {
    let text = fs::read_to_string(proc_root.join("uptime")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// MemTotal from `/proc/meminfo`, in bytes.
pub fn mem_total_bytes(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_namespaces() {
        let root = Path::new("/proc");
        let me = proc_id(root, std::process::id() as i32).expect("self stat");
        assert!(is_alive(root, me));
        assert!(!is_alive(
            root,
            ProcId {
                pid: me.pid,
                start: me.start + 1
            }
        ));
        assert!(ns_inode(root, me.pid, "pid").is_ok());
        let my_pid_ns = ns_inode(root, me.pid, "pid").expect("pid ns");
        assert!(pids_in_pid_ns(root, my_pid_ns).contains(&me.pid));
        assert!(!pids_in_pid_ns(root, 1).contains(&me.pid));
        // The test runs in its own user namespace's ancestor or itself:
        // either way it owns nothing exotic; the call just has to work.
        assert!(userns_owner(root, me.pid).is_ok());
    }
}
