//! What an admin command (`run`, `enter`) hands to the program it starts
//! for a user: never the admin's terminal, never another fd of root's.
//!
//! A process of the user in the same set (or the user's own shell
//! profile) can ptrace the program and use every fd it has: root's
//! terminal would let it push input into root's shell (TIOCSTI, or writes
//! through a copy taken with pidfd_getfd). So, as `su --pty` and
//! `machinectl shell` do:
//!
//! - if stdin is a terminal, the program gets a new pty as stdin, stdout
//!   and stderr, in a session of its own, and this process relays between
//!   the pty and root's terminal (put in raw mode meanwhile);
//! - otherwise it gets stdin as it is (a file or pipe root chose), and a
//!   pipe, relayed here, in place of any stdout or stderr that is a
//!   terminal;
//! - every other fd is closed at exec.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys;

fn is_tty(fd: i32) -> bool {
    let result = match fd {
        0 => nix::unistd::isatty(io::stdin()),
        1 => nix::unistd::isatty(io::stdout()),
        _ => nix::unistd::isatty(io::stderr()),
    };
    result.unwrap_or(false)
}

/// The child's side of one standard fd.
enum Endpoint {
    /// Keep the inherited fd (not a terminal).
    Inherit,
    /// Use this fd instead (a pty slave or a pipe's write end).
    Use(OwnedFd),
}

/// Prepared before the fork: what the child gets, and what this process
/// relays once it runs.
pub struct Plumbing {
    child: [Endpoint; 3],
    pty_master: Option<OwnedFd>,
    /// (read end here, fd of ours it is copied to): stdout, stderr.
    pipes: Vec<(OwnedFd, i32)>,
}

impl Plumbing {
    /// Decides from this process' own stdin, stdout and stderr.
    pub fn new() -> io::Result<Plumbing> {
        if is_tty(0) {
            let size = sys::window_size(io::stdin().as_fd()).ok();
            let pty = nix::pty::openpty(size.as_ref(), None)?;
            nix::fcntl::fcntl(
                &pty.master,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
            let slave = pty.slave;
            return Ok(Plumbing {
                child: [
                    Endpoint::Use(slave.try_clone()?),
                    Endpoint::Use(slave.try_clone()?),
                    Endpoint::Use(slave),
                ],
                pty_master: Some(pty.master),
                pipes: Vec::new(),
            });
        }
        let mut child = [Endpoint::Inherit, Endpoint::Inherit, Endpoint::Inherit];
        let mut pipes = Vec::new();
        for fd in [1, 2] {
            if is_tty(fd) {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                child[fd as usize] = Endpoint::Use(w);
                pipes.push((r, fd));
            }
        }
        Ok(Plumbing {
            child,
            pty_master: None,
            pipes,
        })
    }

    /// Whether the program runs on a pty of its own (so the terminal,
    /// not this process, delivers ^C to it).
    pub fn has_pty(&self) -> bool {
        self.pty_master.is_some()
    }

    /// In the forked child, before it joins the set: a session of its own
    /// (no controlling terminal of root's), the prepared stdio, and every
    /// other fd closed at exec.
    pub fn child_side(&self) -> io::Result<()> {
        nix::unistd::setsid()?;
        for (fd, end) in self.child.iter().enumerate() {
            if let Endpoint::Use(src) = end {
                match fd {
                    0 => nix::unistd::dup2_stdin(src)?,
                    1 => nix::unistd::dup2_stdout(src)?,
                    _ => nix::unistd::dup2_stderr(src)?,
                }
            }
        }
        if self.has_pty() {
            sys::set_controlling_tty(io::stdin().as_fd())?;
        }
        sys::cloexec_fds_from(3)
    }

    /// In this process, after the fork: relays until `child` has exited
    /// and its output is drained; returns its shell-style status.
    pub fn relay(mut self, child: i32) -> io::Result<i32> {
        // The child's copies: without ours closed, EOF never comes.
        self.child = [Endpoint::Inherit, Endpoint::Inherit, Endpoint::Inherit];
        let _raw = match &self.pty_master {
            Some(_) => RawTerminal::enter(io::stdin().as_fd()).ok(),
            None => None,
        };
        let mut status = None;
        let mut stdin_open = self.pty_master.is_some();
        let mut last_size = sys::window_size(io::stdin().as_fd()).ok();
        loop {
            if status.is_none() {
                status = exited(child)?;
            }
            let mut sources: Vec<(BorrowedFd<'_>, i32)> = Vec::new();
            if let Some(master) = &self.pty_master {
                sources.push((master.as_fd(), 1));
            }
            for (r, dst) in &self.pipes {
                sources.push((r.as_fd(), *dst));
            }
            if sources.is_empty() {
                break;
            }
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(fd, _)| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            // Wake up now and then to notice the child's exit and a
            // resized terminal.
            let timeout = if status.is_some() { 50u16 } else { 200u16 };
            match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| {
                    f.revents()
                        .is_some_and(|r| !(r & !PollFlags::POLLNVAL).is_empty())
                })
                .collect();
            let mut moved = false;
            let mut closed = Vec::new();
            for (i, (src, dst)) in sources.iter().enumerate() {
                if ready[i] {
                    let out = if *dst == 2 {
                        stderr.as_fd()
                    } else {
                        stdout.as_fd()
                    };
                    match copy_once(*src, out) {
                        Ok(true) => moved = true,
                        _ => closed.push(src.as_raw_fd()),
                    }
                }
            }
            if stdin_open && ready.last() == Some(&true) {
                if let Some(master) = &self.pty_master {
                    if !copy_once(stdin.as_fd(), master.as_fd()).unwrap_or(false) {
                        stdin_open = false;
                    }
                }
            }
            drop(fds);
            if let Some(master) = &self.pty_master {
                let size = sys::window_size(stdin.as_fd()).ok();
                if let (Some(ws), true) = (&size, size_changed(&size, &last_size)) {
                    let _ = sys::set_window_size(master.as_fd(), ws);
                }
                last_size = size;
            }
            drop(sources);
            self.drop_closed(&closed);
            // The child is gone and nothing more came: done, even if a
            // background process of it still holds the pty or a pipe.
            if status.is_some() && !moved {
                break;
            }
        }
        match status {
            Some(code) => Ok(code),
            None => crate::child::wait_status(child),
        }
    }

    fn drop_closed(&mut self, closed: &[i32]) {
        if let Some(m) = &self.pty_master {
            if closed.contains(&m.as_raw_fd()) {
                self.pty_master = None;
            }
        }
        self.pipes.retain(|(r, _)| !closed.contains(&r.as_raw_fd()));
    }
}

fn size_changed(a: &Option<libc::winsize>, b: &Option<libc::winsize>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a.ws_row, a.ws_col) != (b.ws_row, b.ws_col),
        (Some(_), None) => true,
        _ => false,
    }
}

/// The child's status if it has exited (without blocking).
fn exited(child: i32) -> io::Result<Option<i32>> {
    match waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Copies what one read of `src` returns to `dst`; false at EOF or on an
/// error (a pty master reads EIO once the slave is closed).
fn copy_once(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    let n = match nix::unistd::read(src, &mut buf) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let mut rest = buf.get(..n).unwrap_or_default();
    while !rest.is_empty() {
        match nix::unistd::write(dst, rest) {
            Ok(w) => rest = rest.get(w..).unwrap_or_default(),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Root's terminal in raw mode while the program runs; restored on drop.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    fn enter(fd: BorrowedFd<'_>) -> io::Result<RawTerminal> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw)?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}
