//! `list`, `enter` and `stop`: operating on live namespace sets.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::Path;

use super::{fail, require_root, Args, CliResult};
use crate::log::{self, Level};
use crate::procfs;
use crate::registry::{Registry, SetRecord, DEFAULT_ROOT};
use crate::session;
use crate::sys;

const LIST_HELP: &str = "\
usage: nsjail-helper list [--json]

List live namespace sets: set id, user, policy, holder pid, open sessions,
processes in the set and age. Dead sets found in the registry are removed.";

const ENTER_HELP: &str = "\
usage: nsjail-helper enter USER [-- CMD...]

As root, join USER's namespace set (mount, pid and ipc namespaces; uts/net
if the set has them) without joining its user namespace, and run CMD
(default /bin/sh) as root there, to inspect what the user sees.";

const STOP_HELP: &str = "\
usage: nsjail-helper stop USER

End every namespace set of USER: kill its holder (pid 1 of the set's pid
namespace, which takes every process in the set with it) and remove it
from the registry.";

struct LiveSet {
    rec: SetRecord,
    processes: usize,
    age_secs: u64,
}

fn live_sets(reg: &Registry) -> Vec<LiveSet> {
    let mut out = Vec::new();
    for mut rec in reg.all() {
        let Some(_holder) = reg.attach(&rec) else {
            // Take the user's lock before touching their record.
            if let Ok(_lock) = reg.lock_user(rec.uid) {
                if reg
                    .read(&rec.key)
                    .ok()
                    .flatten()
                    .is_some_and(|r| reg.attach(&r).is_none())
                {
                    let _ = reg.remove(&rec.key);
                }
            }
            continue;
        };
        reg.prune_sessions(&mut rec);
        let processes = procfs::ns_inode(reg.proc_root(), rec.holder.pid, "pid")
            .map(|ns| procfs::pids_in_pid_ns(reg.proc_root(), ns).len())
            .unwrap_or(0);
        let age_secs = crate::registry::now_secs().saturating_sub(rec.created);
        out.push(LiveSet {
            rec,
            processes,
            age_secs,
        });
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn list_main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &[], &["--json"])?;
    if args.help {
        println!("{LIST_HELP}");
        return Ok(0);
    }
    args.no_positional()?;
    require_root("list")?;
    let sets = match Registry::open_existing(Path::new(DEFAULT_ROOT))
        .map_err(|e| fail(DEFAULT_ROOT, e))?
    {
        Some(reg) => live_sets(&reg),
        None => Vec::new(),
    };
    if args.switch("--json") {
        let items: Vec<String> = sets
            .iter()
            .map(|s| {
                format!(
                    "{{\"set\":{},\"user\":{},\"uid\":{},\"policy\":{},\"share\":{},\"on_logout\":{},\"holder_pid\":{},\"sessions\":{},\"processes\":{},\"age_seconds\":{}}}",
                    json_str(&s.rec.key),
                    json_str(&s.rec.user),
                    s.rec.uid,
                    json_str(&s.rec.policy),
                    json_str(&s.rec.share),
                    json_str(&s.rec.on_logout),
                    s.rec.holder.pid,
                    s.rec.sessions.len(),
                    s.processes,
                    s.age_secs
                )
            })
            .collect();
        println!("[{}]", items.join(","));
        return Ok(0);
    }
    println!(
        "{:<16} {:<12} {:<12} {:>8} {:>8} {:>9} {:>6}",
        "SET", "USER", "POLICY", "HOLDER", "SESSIONS", "PROCESSES", "AGE"
    );
    for s in &sets {
        println!(
            "{:<16} {:<12} {:<12} {:>8} {:>8} {:>9} {:>6}",
            s.rec.key,
            s.rec.user,
            s.rec.policy,
            s.rec.holder.pid,
            s.rec.sessions.len(),
            s.processes,
            age(s.age_secs)
        );
    }
    Ok(0)
}

/// The set `enter` picks for a user: the shared one, else the newest.
fn pick_set(reg: &Registry, uid: u32) -> Option<SetRecord> {
    let mut sets = reg.sets_of(uid);
    sets.sort_by_key(|r| (r.key.starts_with('u'), r.created));
    sets.into_iter().rev().find(|r| reg.attach(r).is_some())
}

pub fn enter_main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &[], &[])?;
    if args.help {
        println!("{ENTER_HELP}");
        return Ok(0);
    }
    let name = args.one_user()?;
    require_root("enter")?;
    let user = super::lookup_user(name)?;
    let reg = Registry::open_existing(Path::new(DEFAULT_ROOT))
        .map_err(|e| fail(DEFAULT_ROOT, e))?
        .ok_or_else(|| fail(format!("enter {name}"), "no namespace set"))?;
    let rec = pick_set(&reg, user.uid)
        .ok_or_else(|| fail(format!("enter {name}"), "no namespace set"))?;
    let holder = reg
        .attach(&rec)
        .ok_or_else(|| fail(format!("enter {name}"), "the set just ended"))?;
    let cmd: Vec<String> = if args.command.is_empty() {
        vec!["/bin/sh".into()]
    } else {
        args.command.clone()
    };
    let argv: Vec<std::ffi::CString> = cmd
        .iter()
        .map(|a| {
            std::ffi::CString::new(a.as_str()).map_err(|_| fail("argument", "contains a NUL byte"))
        })
        .collect::<Result<_, _>>()?;
    let path = argv[0].clone();
    let envp: Vec<std::ffi::CString> = [
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME=/root",
    ]
    .iter()
    .filter_map(|s| std::ffi::CString::new(*s).ok())
    .chain(
        std::env::var("TERM")
            .ok()
            .and_then(|t| std::ffi::CString::new(format!("TERM={t}")).ok()),
    )
    .collect();
    let flags = rec.join_flags() & !libc::CLONE_NEWUSER;
    sys::setns(holder.pidfd.as_fd(), libc::CLONE_NEWPID)
        .map_err(|e| fail("setns pid namespace", e))?;
    log::log(
        Level::Info,
        &format!("user={} action=enter set={} by=root", rec.user, rec.key),
    );
    // SAFETY: nsjail-helper is single-threaded.
    let fork = unsafe { sys::fork() }.map_err(|e| fail("fork", e))?;
    let sys::Fork::Parent(child) = fork else {
        if let Err(e) = sys::setns(holder.pidfd.as_fd(), flags & !libc::CLONE_NEWPID) {
            eprintln!("nsjail-helper: setns: {e}");
            sys::exit_now(127);
        }
        let _ = std::env::set_current_dir("/");
        let path = if cmd[0].contains('/') {
            path
        } else {
            ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .map(|d| format!("{d}/{}", cmd[0]))
                .find(|p| Path::new(p).is_file())
                .and_then(|p| std::ffi::CString::new(p).ok())
                .unwrap_or(path)
        };
        let err = sys::execve(&path, &argv, &envp);
        eprintln!("nsjail-helper: exec {}: {err}", cmd[0]);
        sys::exit_now(127)
    };
    let status = sys::waitpid(child).map_err(|e| fail("wait", e))?;
    Ok(sys::exit_code(status))
}

pub fn stop_main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &[], &[])?;
    if args.help {
        println!("{STOP_HELP}");
        return Ok(0);
    }
    let name = args.one_user()?;
    require_root("stop")?;
    let user = super::lookup_user(name)?;
    let no_set = || fail(format!("stop {name}"), "no namespace set");
    let reg = Registry::open_existing(Path::new(DEFAULT_ROOT))
        .map_err(|e| fail(DEFAULT_ROOT, e))?
        .ok_or_else(no_set)?;
    let ended = session::stop_user(&reg, user.uid).map_err(|e| fail(format!("stop {name}"), e))?;
    if ended.is_empty() {
        return Err(no_set());
    }
    for key in &ended {
        log::log(
            Level::Info,
            &format!("user={name} action=stopped set={key} by=root"),
        );
        println!("stopped {key}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn ages_are_human() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(200_000), "2d");
    }
}
