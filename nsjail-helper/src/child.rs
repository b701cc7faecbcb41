//! The only ways a process of ours that is not the original caller may
//! end: a forked child, or sshd's post-auth child after a failed join.
//! Both go through `survive_or_exit`, which never returns into the
//! caller's code after a failure or a panic: it `_exit`s, so nothing the
//! parent owns (the per-user lock, buffered output) is released, flushed
//! or used twice, and sshd never goes on to start an unconfined shell.
#![forbid(unsafe_code)]

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::sys::{self, Forked};

/// Why a child could not go on.
pub enum ChildFailure<E> {
    Error(E),
    /// A panic, with its message if it had one.
    Panic(String),
}

/// Runs `body`; on `Ok` returns its value. On `Err` or a panic, calls
/// `report` (itself guarded against panics) and `_exit(code)`.
pub fn survive_or_exit<T, E>(
    code: i32,
    body: impl FnOnce() -> Result<T, E>,
    report: impl FnOnce(ChildFailure<E>),
) -> T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return value,
        Ok(Err(e)) => ChildFailure::Error(e),
        Err(payload) => ChildFailure::Panic(
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        ),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| report(failure)));
    sys::exit_now(code)
}

/// Forks; the child runs `body` and `_exit`s with its result (127 if it
/// panicked). Returns the child's pid in the parent. Refused in a
/// multi-threaded process.
pub fn fork_child(body: impl FnOnce() -> i32) -> io::Result<i32> {
    match sys::fork_checked()? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            let code = survive_or_exit(127, || Ok::<i32, ()>(body()), |_| {});
            sys::exit_now(code)
        }
    }
}

/// Waits for `pid` and returns a shell-style status: the exit code, or
/// 128 + the signal that killed it.
pub fn wait_status(pid: i32) -> io::Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `_exit(code)`: leaves at once, without destructors or unwinding.
pub fn exit_now(code: i32) -> ! {
    sys::exit_now(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_exits_with_its_status_and_a_panic_becomes_127() {
        let pid = fork_child(|| 7).expect("fork");
        assert_eq!(wait_status(pid).expect("wait"), 7);
        let pid = fork_child(|| panic!("boom")).expect("fork");
        assert_eq!(wait_status(pid).expect("wait"), 127);
    }

    #[test]
    fn survive_or_exit_returns_on_success() {
        let v = survive_or_exit(1, || Ok::<_, ()>(5), |_| unreachable!());
        assert_eq!(v, 5);
    }

    #[test]
    fn a_failing_or_panicking_body_never_returns() {
        for panics in [false, true] {
            let pid = fork_child(move || {
                survive_or_exit(
                    3,
                    || {
                        if panics {
                            panic!("in the join");
                        }
                        Err::<(), _>("failed")
                    },
                    |_| {},
                );
                0 // only reached if survive_or_exit returned
            })
            .expect("fork");
            assert_eq!(wait_status(pid).expect("wait"), 3, "panics={panics}");
        }
    }
}
