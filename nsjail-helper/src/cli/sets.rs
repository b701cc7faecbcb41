//! `list`, `enter` and `stop`: operating on live namespace sets.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::Path;

use super::{fail, require_root, Args, CliResult};
use crate::admin::{self, live_sets};
use crate::limits::usage::Usage;
use crate::log::{self, Level};
use crate::nsset::{Identity, H0};
use crate::paths;
use crate::registry::Registry;
use crate::runner::{self, Program};

const LIST_HELP: &str = "\
usage: nsjail-helper list [--json]

List live namespace sets: set id, user, policy, holder pid, open sessions,
processes in the set (and in pid namespaces nested in it) and age; for a
user with resource limits, the use of all the user's sets together against
them, as the kernel counts it in the user's cgroup (user-UID-nsjail.slice):
MEMORY (memory.current/memory.max), TASKS (pids.current/pids.max) and CPU
(CPU time used, from cpu.stat's usage_usec, and the quota); `-` when the
set has no limits. --json also gives the owner of the set's user namespace
and the raw figures (\"usage\", null without limits). Dead sets found in
the registry are removed.";

const ENTER_HELP: &str = "\
usage: nsjail-helper enter USER [-- CMD...]

As root, run CMD (default: USER's login shell) inside USER's live namespace
set, to inspect what the user sees, without opening a session or creating
a set. CMD runs as USER, not as root: a set's namespaces belong to its user,
so a root process inside them would be within that user's reach; for the
same reason it runs in the set's cgroup, under the user's resource limits
if the set has any. It gets a terminal of its own (when stdin is one) and
no other fd of the caller's.";

const STOP_HELP: &str = "\
usage: nsjail-helper stop USER

End every namespace set of USER: kill its holder (pid 1 of the set's pid
namespace, which takes every process in the set with it), remove it from
the registry, and end the user's logins into it (their sshd connections,
with any port forwarding, or `run` commands).";

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

/// The `usage` JSON object of a set (`null` without limits).
fn usage_json(u: Option<&Usage>) -> String {
    let Some(u) = u else {
        return "null".to_owned();
    };
    let num = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |n| n.to_string());
    // A limit: the number, "max" (none), or null (controller not enabled).
    let limit = |v: Option<Option<u64>>| match v {
        Some(Some(n)) => n.to_string(),
        Some(None) => json_str("max"),
        None => "null".to_owned(),
    };
    format!(
        "{{\"cgroup\":{},\"memory_current\":{},\"memory_max\":{},\"tasks_current\":{},\"tasks_max\":{},\"cpu_usage_usec\":{},\"cpu_quota_percent\":{}}}",
        json_str(&u.cgroup),
        num(u.memory_current),
        limit(u.memory_max),
        num(u.tasks_current),
        limit(u.tasks_max),
        num(u.cpu_usage_usec),
        num(u.cpu_quota_percent()),
    )
}

pub fn list_main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &[], &["--json"])?;
    if args.help {
        println!("{LIST_HELP}");
        return Ok(0);
    }
    args.no_positional()?;
    require_root("list")?;
    // Sets that ended without a logout may have left the private
    // networks' table and forwarding behind.
    crate::net::sweep_if_idle();
    let sets = match Registry::open_existing(Path::new(paths::REGISTRY))
        .map_err(|e| fail(paths::REGISTRY, e))?
    {
        Some(reg) => live_sets(&reg),
        None => Vec::new(),
    };
    if args.switch("--json") {
        let items: Vec<String> = sets
            .iter()
            .map(|s| {
                format!(
                    "{{\"set\":{},\"user\":{},\"uid\":{},\"policy\":{},\"share\":{},\"on_logout\":{},\"holder_pid\":{},\"sessions\":{},\"processes\":{},\"age_seconds\":{},\"userns_owner_uid\":{},\"usage\":{}}}",
                    json_str(&s.rec.key),
                    json_str(&s.rec.user),
                    s.rec.uid,
                    json_str(&s.rec.policy),
                    json_str(s.rec.share.as_str()),
                    json_str(s.rec.on_logout.as_str()),
                    s.rec.holder.pid,
                    s.rec.sessions.len(),
                    s.processes,
                    s.age_secs,
                    s.userns_owner
                        .map_or_else(|| "null".to_owned(), |u| u.to_string()),
                    usage_json(s.usage.as_ref())
                )
            })
            .collect();
        println!("[{}]", items.join(","));
        return Ok(0);
    }
    println!(
        "{:<16} {:<12} {:<12} {:>8} {:>8} {:>9} {:>6} {:>15} {:>11} {:>12}",
        "SET", "USER", "POLICY", "HOLDER", "SESSIONS", "PROCESSES", "AGE", "MEMORY", "TASKS", "CPU"
    );
    for s in &sets {
        let dash = || "-".to_owned();
        let u = s.usage.as_ref();
        println!(
            "{:<16} {:<12} {:<12} {:>8} {:>8} {:>9} {:>6} {:>15} {:>11} {:>12}",
            s.rec.key,
            s.rec.user,
            s.rec.policy,
            s.rec.holder.pid,
            s.rec.sessions.len(),
            s.processes,
            age(s.age_secs),
            u.map_or_else(dash, Usage::memory_column),
            u.map_or_else(dash, Usage::tasks_column),
            u.map_or_else(dash, Usage::cpu_column),
        );
    }
    Ok(0)
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
    let reg = Registry::open_existing(Path::new(paths::REGISTRY))
        .map_err(|e| fail(paths::REGISTRY, e))?
        .ok_or_else(|| fail(format!("enter {name}"), "no namespace set"))?;
    let (rec, holder) = admin::pick_set(&reg, user.uid)
        .ok_or_else(|| fail(format!("enter {name}"), "no namespace set"))?;
    let prog = Program::for_user(&user, &args.command).map_err(|e| fail("enter", e))?;
    log::log(
        Level::Info,
        &format!(
            "user={} action=enter set={} by=root as={}",
            rec.user, rec.key, user.name
        ),
    );
    let who = Identity {
        uid: user.uid,
        gid: user.gid,
        gids: user.all_gids(),
    };
    runner::run_in_set(
        holder.pidfd.as_fd(),
        rec.join_flags(),
        &who,
        &prog,
        H0::default(),
        // What runs in the set runs as the user: under her limits, if
        // the set is (and in its cgroup, which its cgroup namespace
        // shows as "/").
        (holder.id.pid, false),
    )
    .map_err(|e| fail(format!("enter {name}"), e))
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
    let reg = Registry::open_existing(Path::new(paths::REGISTRY))
        .map_err(|e| fail(paths::REGISTRY, e))?
        .ok_or_else(no_set)?;
    let ended = admin::stop_user(&reg, user.uid).map_err(|e| fail(format!("stop {name}"), e))?;
    if ended.is_empty() {
        return Err(no_set());
    }
    for s in &ended {
        log::log(
            Level::Info,
            &format!(
                "user={name} action=stopped set={} logins_ended={} by=root",
                s.key, s.logins
            ),
        );
        println!("stopped {} ({} logins ended)", s.key, s.logins);
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
    fn usage_json_has_every_figure() {
        assert_eq!(usage_json(None), "null");
        let u = Usage {
            cgroup: "/user.slice/user-7.slice/user-7-nsjail.slice".into(),
            memory_current: Some(4096),
            memory_max: Some(None),
            tasks_current: Some(3),
            tasks_max: Some(Some(40)),
            cpu_usage_usec: Some(1500),
            cpu_max: Some((Some(50_000), 100_000)),
        };
        assert_eq!(
            usage_json(Some(&u)),
            "{\"cgroup\":\"/user.slice/user-7.slice/user-7-nsjail.slice\",\"memory_current\":4096,\"memory_max\":\"max\",\"tasks_current\":3,\"tasks_max\":40,\"cpu_usage_usec\":1500,\"cpu_quota_percent\":50}"
        );
    }

    #[test]
    fn ages_are_human() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(200_000), "2d");
    }
}
