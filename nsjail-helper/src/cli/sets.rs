//! `list`, `enter` and `stop`: operating on live namespace sets.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::path::Path;

use super::{fail, require_root, Args, CliResult};
use crate::admin::{self, live_sets};
use crate::log::{self, Level};
use crate::nsset::{Identity, H0};
use crate::paths;
use crate::registry::Registry;
use crate::runner::{self, Program};

const LIST_HELP: &str = "\
usage: nsjail-helper list [--json]

List live namespace sets: set id, user, policy, holder pid, open sessions,
processes in the set (and in pid namespaces nested in it) and age; --json
also gives the owner of the set's user namespace. Dead sets found in the
registry are removed.";

const ENTER_HELP: &str = "\
usage: nsjail-helper enter USER [-- CMD...]

As root, run CMD (default: USER's login shell) inside USER's live namespace
set, to inspect what the user sees, without opening a session or creating
a set. CMD runs as USER, not as root: a set's namespaces belong to its user,
so a root process inside them would be within that user's reach. It gets a
terminal of its own (when stdin is one) and no other fd of the caller's.";

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
                    "{{\"set\":{},\"user\":{},\"uid\":{},\"policy\":{},\"share\":{},\"on_logout\":{},\"holder_pid\":{},\"sessions\":{},\"processes\":{},\"age_seconds\":{},\"userns_owner_uid\":{}}}",
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
                        .map_or_else(|| "null".to_owned(), |u| u.to_string())
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
        // An admin inspecting a set is not held to the user's limits.
        None,
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
    fn ages_are_human() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(200_000), "2d");
    }
}
