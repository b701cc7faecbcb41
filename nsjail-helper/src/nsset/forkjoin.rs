//! "Fork into the set, the original stays outside as a relay": how a
//! process the application *continues in* ends up inside a set.
//!
//! `setns(CLONE_NEWPID)` only moves a process's future children, and a
//! process in the set's mount namespace but not its pid namespace has a
//! broken `/proc/self`. So where there is no later fork of ours (cron's
//! job process execs the job itself; su, runuser, login and atd fork the
//! session's child with no PAM hook in it), the module forks:
//!
//! - the child ("Y") is born in the set's pid namespace, joins the set's
//!   other namespaces (`join`, given by the caller) and *returns* into the
//!   application's code as the session's process;
//! - the original ("W", the pid the application's parent knows) never
//!   returns: it stays in the host's namespaces, passes signals sent to
//!   it on to Y, stops and continues with Y, does the host-side
//!   bookkeeping once Y has ended (`after`), and leaves with Y's status
//!   (the same exit code, or death by the same signal).
//!
//! Y's join failing (or panicking) never lets Y go on: Y `_exit(1)`s after
//! writing why into a pipe W reads, and W reports it through `after`.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{step_err, SetError};
use crate::child;
use crate::sys::{self, Forked};

/// The signals W passes on to Y when a process sends them to W (`kill`,
/// cron or atd stopping a job, `timeout`). Those the kernel generates for
/// a terminal's foreground process group (^C, ^\) reached Y already, as it
/// is in W's process group, and are not doubled; SIGHUP is always passed
/// on, because a hangup signals only the session leader, which may be W.
const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
];

/// `si_code` of a signal the kernel generated (a terminal's ^C, a hangup).
const SI_KERNEL: i32 = 0x80;

/// How Y ended, as W saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Y could not enter the set (it exited with status 1 without
    /// returning into the application): why.
    pub join_error: Option<SetError>,
    /// Y's exit code, or the signal that killed it.
    pub status: EndStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndStatus {
    Exited(i32),
    Signaled(i32),
}

/// Forks the caller into the set behind `set`. Returns `Ok` only in the
/// child (Y), after `join` succeeded there; Y then continues the caller's
/// code inside the set. The original process (W) never returns: it relays
/// until Y has ended, calls `after` (on the host, with the caller's
/// privileges; a panic there is swallowed) and exits as Y did.
///
/// `Err` means nothing was forked and the caller is unchanged, still on
/// the host: it must refuse the session. The caller must be
/// single-threaded (checked).
pub fn fork_into_set(
    set: BorrowedFd<'_>,
    join: impl FnOnce() -> Result<(), SetError>,
    after: impl FnOnce(&Ended),
) -> Result<(), SetError> {
    // Test builds: the primitive itself fails before anything is forked.
    if super::failpoint_armed("forkjoin-fail") {
        return Err(SetError::new("failpoint", "forkjoin-fail"));
    }
    let own_pid_ns = File::open("/proc/self/ns/pid").map_err(step_err("open /proc/self/ns/pid"))?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(step_err("pipe for the join's outcome"))?;
    // Blocked before the fork, so none sent in between is lost; Y gets
    // the caller's mask back at once.
    let mut blocked = SigSet::empty();
    for sig in FORWARDED {
        blocked.add(sig);
    }
    blocked.add(Signal::SIGCHLD);
    let saved = blocked
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(step_err("block signals"))?;
    let restore = |e: SetError| {
        let _ = saved.thread_set_mask();
        let _ = setns(&own_pid_ns, CloneFlags::CLONE_NEWPID);
        e
    };
    setns(set, CloneFlags::CLONE_NEWPID)
        .map_err(step_err("enter the set's pid namespace for children"))
        .map_err(restore)?;
    let forked = sys::fork_checked()
        .map_err(step_err("fork into the set"))
        .map_err(restore)?;
    match forked {
        Forked::Child => {
            drop(report_r);
            in_child(saved, report_w, join);
            Ok(())
        }
        Forked::Parent(y) => {
            drop(report_w);
            relay(y, own_pid_ns, report_r, &blocked, after)
        }
    }
}

/// Y: the caller's signal mask, then the join; on failure, why, to W.
fn in_child(saved: SigSet, report: OwnedFd, join: impl FnOnce() -> Result<(), SetError>) {
    let mut report = File::from(report);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        saved
            .thread_set_mask()
            .map_err(step_err("restore the signal mask"))?;
        join()
    }));
    let why = match outcome {
        Ok(Ok(())) => return, // `report` closes: W reads EOF, no error
        Ok(Err(e)) => e,
        Err(p) => SetError::new(
            "join",
            format!(
                "panic: {}",
                p.downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            ),
        ),
    };
    // "step NUL cause": W splits it again.
    let _ = report.write_all(format!("{}\0{}", why.step, why.cause).as_bytes());
    child::exit_now(1)
}

/// W: relays until Y has ended, then `after`, then leaves as Y did.
fn relay(
    y: i32,
    own_pid_ns: File,
    report: OwnedFd,
    blocked: &SigSet,
    after: impl FnOnce(&Ended),
) -> ! {
    let ended = catch_unwind(AssertUnwindSafe(|| {
        // Our own later children (a private network's teardown tools) must
        // not be born in the set; if this fails (never for host root),
        // they fail to start and the next login sweeps instead.
        let _ = setns(&own_pid_ns, CloneFlags::CLONE_NEWPID);
        drop(own_pid_ns);
        // An application that ignores SIGCHLD would have Y reaped behind
        // our back.
        sys::default_disposition(libc::SIGCHLD);
        // Y closes its end once it joined, or writes why it could not.
        let mut why = String::new();
        let _ = File::from(report).read_to_string(&mut why);
        let status = wait_relaying(y, blocked);
        let join_error = (!why.is_empty()).then(|| match why.split_once('\0') {
            Some((step, cause)) => SetError::new(step, cause),
            None => SetError::new("join", why),
        });
        Ended { join_error, status }
    }));
    let Ok(ended) = ended else {
        // Y is our child: it goes on alone, and ends with its session.
        child::exit_now(1)
    };
    let _ = catch_unwind(AssertUnwindSafe(|| after(&ended)));
    match ended.status {
        EndStatus::Exited(code) => child::exit_now(code),
        EndStatus::Signaled(sig) => sys::die_of_signal(sig),
    }
}

/// Waits for Y, passing on signals and stopping with it.
fn wait_relaying(y: i32, blocked: &SigSet) -> EndStatus {
    let pid = Pid::from_raw(y);
    let Ok(fd) = SignalFd::with_flags(blocked, SfdFlags::SFD_CLOEXEC) else {
        return wait_plain(pid);
    };
    loop {
        // SIGCHLD may have come before the signalfd existed: look first.
        match waitpid(
            pid,
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED),
        ) {
            Ok(WaitStatus::Exited(_, code)) => return EndStatus::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return EndStatus::Signaled(sig as i32),
            Ok(WaitStatus::Stopped(..)) => stop_with(pid),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return EndStatus::Exited(1),
        }
        let info = match fd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return wait_plain(pid),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig == Signal::SIGCHLD {
            continue;
        }
        if sig == Signal::SIGHUP || info.ssi_code != SI_KERNEL {
            // Y is our unreaped child: its pid cannot have been reused.
            let _ = kill(pid, sig);
        }
    }
}

/// Y stopped (its terminal's ^Z reached it, or su stopped itself with its
/// shell): stop W too, so W's parent (a shell's job control) sees it, and
/// continue Y when W is continued.
fn stop_with(y: Pid) {
    let _ = kill(Pid::this(), Signal::SIGSTOP);
    let _ = kill(y, Signal::SIGCONT);
}

fn wait_plain(pid: Pid) -> EndStatus {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return EndStatus::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return EndStatus::Signaled(sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return EndStatus::Exited(1),
        }
    }
}

/// What Y does in su, runuser, login and atd (placement a'): enters every
/// namespace of the set and stays root *of the set's user namespace*
/// (host root is unmapped there), so the application can still drop to
/// the user's (identity-mapped) ids in the session's child. Undumpable
/// first: the set's user namespace belongs to the user, and a process of
/// hers outside the set would otherwise ptrace a privileged Y.
pub fn join_keeping_root(set: BorrowedFd<'_>, flags: libc::c_int) -> Result<(), SetError> {
    nix::sys::prctl::set_dumpable(false).map_err(step_err("make the process undumpable"))?;
    if super::failpoint_armed("join-fail") {
        return Err(SetError::new("failpoint", "join-fail"));
    }
    if super::failpoint_armed("join-panic") {
        panic!("failpoint join-panic");
    }
    // Joining a mount namespace moves the cwd to its root; the
    // application may rely on its cwd (su without -l keeps it): the same
    // path inside the set where it exists and this process may enter it.
    let cwd = std::env::current_dir().ok();
    setns(set, CloneFlags::from_bits_retain(flags))
        .map_err(step_err("setns into the namespace set"))?;
    if cwd.is_none_or(|c| std::env::set_current_dir(c).is_err()) {
        std::env::set_current_dir("/").map_err(step_err("chdir /"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::{fork_child, wait_status};
    use std::os::fd::AsFd;

    /// Runs `fork_into_set` into our own pid namespace in a forked child
    /// (W exits, the test harness must not); `in_y` is what Y does after
    /// returning; `after` gets how Y ended, written to a pipe the test reads.
    fn run(join_fails: bool, in_y: fn() -> i32, signal_w: Option<Signal>) -> (i32, String) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let t = fork_child(move || {
            let me = sys::pidfd_open(std::process::id() as i32).expect("pidfd");
            let w = File::from(w);
            let joined = fork_into_set(
                me.as_fd(),
                || {
                    if join_fails {
                        Err(SetError::new("join", "refused by the test"))
                    } else {
                        Ok(())
                    }
                },
                |ended| {
                    let _ = (&w).write_all(format!("{ended:?}").as_bytes());
                },
            );
            match joined {
                Ok(()) => in_y(),
                Err(_) => 99,
            }
        })
        .expect("fork");
        if let Some(sig) = signal_w {
            std::thread::sleep(std::time::Duration::from_millis(300));
            kill(Pid::from_raw(t), sig).expect("kill W");
        }
        let status = wait_status(t).expect("wait");
        let mut seen = String::new();
        File::from(r).read_to_string(&mut seen).expect("read");
        (status, seen)
    }

    #[test]
    #[ignore = "needs root: setns into a pid namespace"]
    fn w_leaves_as_y_did() {
        let (status, seen) = run(false, || 7, None);
        assert_eq!(status, 7);
        assert!(
            seen.contains("join_error: None") && seen.contains("Exited(7)"),
            "{seen}"
        );
        let (status, seen) = run(
            false,
            || {
                let _ = nix::sys::signal::raise(Signal::SIGUSR1);
                0
            },
            None,
        );
        assert_eq!(status, 128 + libc::SIGUSR1, "{seen}");
        assert!(seen.contains("Signaled(10)"), "{seen}");
    }

    #[test]
    #[ignore = "needs root: setns into a pid namespace"]
    fn a_failed_join_never_returns_into_the_caller() {
        let (status, seen) = run(true, || 0, None);
        assert_eq!(status, 1);
        assert!(seen.contains("refused by the test"), "{seen}");
    }

    #[test]
    #[ignore = "needs root: setns into a pid namespace"]
    fn a_signal_sent_to_w_reaches_y() {
        let (status, seen) = run(
            false,
            || {
                std::thread::sleep(std::time::Duration::from_secs(10));
                3
            },
            Some(Signal::SIGTERM),
        );
        assert_eq!(status, 128 + libc::SIGTERM, "{seen}");
        assert!(seen.contains("Signaled(15)"), "{seen}");
    }
}
