//! Running a program for the admin tool: as a user inside their set
//! (`run`, `enter`) or on the host (`run` for an exempt user). Every child
//! is forked through `child::fork_child`, so it can only `_exit`, and
//! gets its stdio through `relay::Plumbing`, so never root's terminal.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::child;
use crate::nsset::{self, Identity};
use crate::relay::{Forwarder, Plumbing};
use crate::sys;
use crate::user::UserInfo;

/// Where `run` and `enter` look up a command given without a '/'.
const SEARCH_PATH: [&str; 5] = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// A program ready to execute: everything allocated before the fork.
#[derive(Clone, Debug)]
pub struct Program {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Entered before exec; "/" if it is not reachable, like login(1).
    cwd: PathBuf,
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("argument {s:?} contains a NUL byte"),
        )
    })
}

fn find_in_path(prog: &str) -> String {
    if prog.contains('/') {
        return prog.to_owned();
    }
    SEARCH_PATH
        .iter()
        .map(|d| format!("{d}/{prog}"))
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| prog.to_owned())
}

impl Program {
    /// `cmd` (or, if empty, `user`'s login shell as a login shell) with a
    /// login's environment for `user`.
    pub fn for_user(user: &UserInfo, cmd: &[String]) -> io::Result<Program> {
        let shell = user.shell.to_string_lossy().into_owned();
        let shell = if shell.is_empty() {
            "/bin/sh".to_owned()
        } else {
            shell
        };
        let (path, argv) = match cmd.split_first() {
            None => {
                let base = Path::new(&shell)
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (shell.clone(), vec![format!("-{base}")])
            }
            Some((prog, _)) => (find_in_path(prog), cmd.to_vec()),
        };
        let mut env = vec![
            format!("HOME={}", user.home.display()),
            format!("USER={}", user.name),
            format!("LOGNAME={}", user.name),
            format!("SHELL={shell}"),
            "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        ];
        for var in ["TERM", "LANG", "LC_ALL"] {
            if let Ok(v) = std::env::var(var) {
                env.push(format!("{var}={v}"));
            }
        }
        Ok(Program {
            path: cstring(&path)?,
            argv: argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            envp: env.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            cwd: user.home.clone(),
        })
    }

    /// In a forked child: enter `cwd`, restore default signal handling
    /// (Rust ignores SIGPIPE) and exec.
    /// Returns only the status to `_exit` with on failure.
    fn exec(&self) -> i32 {
        if std::env::set_current_dir(&self.cwd).is_err() {
            let _ = std::env::set_current_dir("/");
        }
        sys::reset_signal_dispositions();
        let err = nix::unistd::execve(&self.path, &self.argv, &self.envp);
        eprintln!(
            "nsjail-helper: exec {}: {}",
            self.path.to_string_lossy(),
            err.map_or_else(|e| e.desc().to_owned(), |_| String::new())
        );
        127
    }
}

/// Runs `prog` as `who` inside the set behind `pidfd` and returns its
/// shell-style status. Only the child joins: this process stays in the
/// host namespaces (to close the session afterwards) and relays the
/// child's terminal (`relay.rs`). `h0`, the process that built a new set,
/// is reaped as soon as the command has started. The child is first moved
/// under the user's limits, as sshd's session child is: `limits` names
/// the holder's pid and whether the set must be under them (the policy
/// sets limits) or only is if it is (`enter`).
pub fn run_in_set(
    pidfd: BorrowedFd<'_>,
    join_flags: libc::c_int,
    who: &Identity,
    prog: &Program,
    h0: nsset::H0,
    limits: (i32, bool),
) -> io::Result<i32> {
    // Our next child enters the pid namespace; we do not. Later children
    // (the tools a private network's teardown runs) must not: once the
    // set's pid 1 is gone, fork() there fails with ENOMEM.
    let own = std::fs::File::open("/proc/self/ns/pid")?;
    setns(pidfd, CloneFlags::CLONE_NEWPID)?;
    start(prog, h0, Some(own), || {
        let (holder, required) = limits;
        crate::limits::enter_limits(
            std::path::Path::new("/proc/self/exe"),
            holder,
            pidfd,
            who.uid,
            required,
        )
        .map_err(|e| format!("{e}"))?;
        nsset::join_and_drop(pidfd, join_flags, who).map_err(|e| format!("join namespace set: {e}"))
    })
}

/// Runs `prog` as `who` on the host (a user the policy does not isolate).
pub fn run_on_host(who: &Identity, prog: &Program) -> io::Result<i32> {
    start(prog, nsset::H0::default(), None, || {
        become_user(who).map_err(|e| format!("drop privileges: {e}"))
    })
}

/// Forks a child that gets its stdio (`relay.rs`), becomes the user with
/// `take_identity`, and executes `prog`; reaps `h0` once the child runs, relays
/// its terminal, and returns its shell-style status.
fn start(
    prog: &Program,
    h0: nsset::H0,
    own_pid_ns: Option<std::fs::File>,
    take_identity: impl FnOnce() -> Result<(), String>,
) -> io::Result<i32> {
    let plumbing = Plumbing::new()?;
    // SIGTERM, SIGHUP, SIGINT and SIGQUIT are passed on to the command
    // (relay.rs), so this process outlives it and closes its session.
    let signals = Forwarder::new()?;
    let pid = child::fork_child(|| {
        if let Err(e) = signals.restore_in_child() {
            eprintln!("nsjail-helper: signal mask: {e}");
            return 127;
        }
        if let Err(e) = plumbing.child_side() {
            eprintln!("nsjail-helper: stdio: {e}");
            return 127;
        }
        if let Err(e) = take_identity() {
            eprintln!("nsjail-helper: {e}");
            return 127;
        }
        prog.exec()
    })?;
    if let Some(own) = own_pid_ns {
        // Best effort: root of a user namespace below the one owning our
        // pid namespace may not come back (EPERM); its later children
        // (only a private network's teardown tools) then fail to start,
        // and the next login or `list` sweeps instead.
        let _ = setns(&own, CloneFlags::CLONE_NEWPID);
    }
    drop(h0);
    plumbing.relay(pid, &signals)
}

fn become_user(who: &Identity) -> nix::Result<()> {
    use nix::unistd::{Gid, Uid};
    let gids: Vec<Gid> = who.gids.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&gids)?;
    let (uid, gid) = (Uid::from_raw(who.uid), Gid::from_raw(who.gid));
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)
}
