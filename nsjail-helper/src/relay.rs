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
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys;

/// After the command is reaped, its output is drained for at most this
/// long, and only while it keeps coming at least every `DRAIN_IDLE`.
pub const DRAIN_MAX: Duration = Duration::from_millis(500);
const DRAIN_IDLE: Duration = Duration::from_millis(50);

/// The signals `run` and `enter` pass on to their command (a closed
/// terminal, `timeout`, `kill`, ^C where the command has no pty of its
/// own) instead of dying of them: the command ends as it would at a
/// terminal, and the caller still closes its session.
const FORWARDED: [Signal; 4] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
];

fn is_ready(f: &PollFd<'_>) -> bool {
    f.revents()
        .is_some_and(|r| !(r & !PollFlags::POLLNVAL).is_empty())
}

/// Blocks the forwarded signals in this process (before the fork, so none
/// is lost in between) and takes them through a signalfd while the
/// command runs. Dropping it discards what is still pending and unblocks
/// them.
pub struct Forwarder {
    fd: SignalFd,
    saved: SigSet,
}

impl Forwarder {
    pub fn new() -> io::Result<Forwarder> {
        let mut set = SigSet::empty();
        for sig in FORWARDED {
            set.add(sig);
        }
        let saved = set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .inspect_err(|_| {
                let _ = saved.thread_set_mask();
            })?;
        Ok(Forwarder { fd, saved })
    }

    /// In the forked child: the signal mask the caller had.
    pub fn restore_in_child(&self) -> io::Result<()> {
        Ok(self.saved.thread_set_mask()?)
    }

    /// Sends each pending forwarded signal on to `child` (our unreaped
    /// child, so its pid cannot have been reused).
    fn forward_pending(&self, child: i32) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                let _ = nix::sys::signal::kill(Pid::from_raw(child), sig);
            }
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        while let Ok(Some(_)) = self.fd.read_signal() {}
        let _ = self.saved.thread_set_mask();
    }
}

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

    /// In this process, after the fork: relays until `child` has exited,
    /// forwarding `signals` to it meanwhile; returns its shell-style
    /// status.
    ///
    /// Once the child is reaped nothing of root's reaches the pty or the
    /// pipes any more: a process the command left behind (a `setsid`
    /// writer started from the user's profile) may keep them busy, so
    /// input stops at once, output is drained for at most `DRAIN_MAX`,
    /// and then the pty master and the pipes are closed, which hangs up
    /// the pty for everyone still holding it (as `su --pty` does), before
    /// root's terminal is restored.
    pub fn relay(mut self, child: i32, signals: &Forwarder) -> io::Result<i32> {
        // The child's copies: without ours closed, EOF never comes.
        self.child = [Endpoint::Inherit, Endpoint::Inherit, Endpoint::Inherit];
        let raw = match &self.pty_master {
            Some(_) => RawTerminal::enter(io::stdin().as_fd()).ok(),
            None => None,
        };
        // Our unreaped child: its pid is its own until we reap it.
        let child_fd = sys::pidfd_open(child)?;
        let status = self.relay_while_running(child, child_fd.as_fd(), signals);
        self.drain(Instant::now() + DRAIN_MAX);
        // Hang up: every holder of the pty's slave side (or the pipes'
        // write ends) now reads EOF and writes EIO or EPIPE.
        self.pty_master = None;
        self.pipes.clear();
        drop(raw);
        status
    }

    /// Relays output and root's input, and forwards signals, until the
    /// child has exited; returns its status once reaped.
    fn relay_while_running(
        &mut self,
        child: i32,
        child_fd: BorrowedFd<'_>,
        signals: &Forwarder,
    ) -> io::Result<i32> {
        let mut stdin_open = self.pty_master.is_some();
        let mut last_size = sys::window_size(io::stdin().as_fd()).ok();
        loop {
            let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
            let sources = self.sources();
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(fd, _)| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            fds.push(PollFd::new(child_fd, PollFlags::POLLIN));
            fds.push(PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            // Wake up now and then to notice a resized terminal.
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<bool> = fds.iter().map(is_ready).collect();
            drop(fds);
            let n = sources.len();
            let child_done = ready.get(n) == Some(&true);
            if ready.get(n + 1) == Some(&true) {
                signals.forward_pending(child);
            }
            let mut closed = Vec::new();
            for (i, (src, dst)) in sources.iter().enumerate() {
                if ready.get(i) == Some(&true) {
                    let out = if *dst == 2 {
                        stderr.as_fd()
                    } else {
                        stdout.as_fd()
                    };
                    if !copy_once(*src, out).unwrap_or(false) {
                        closed.push(src.as_raw_fd());
                    }
                }
            }
            drop(sources);
            self.drop_closed(&closed);
            if child_done {
                // Not one more byte of root's input: the command is gone,
                // and whoever reads the pty now is not the command.
                if let Some(code) = exited(child)? {
                    return Ok(code);
                }
            }
            if stdin_open && ready.get(n + 2) == Some(&true) {
                if let Some(master) = &self.pty_master {
                    if !copy_once(stdin.as_fd(), master.as_fd()).unwrap_or(false) {
                        stdin_open = false;
                    }
                }
            }
            if let Some(master) = &self.pty_master {
                let size = sys::window_size(stdin.as_fd()).ok();
                if let (Some(ws), true) = (&size, size_changed(&size, &last_size)) {
                    let _ = sys::set_window_size(master.as_fd(), ws);
                }
                last_size = size;
            }
        }
    }

    /// After the child is reaped: copies what output is left until every
    /// source is at EOF, nothing came for `DRAIN_IDLE`, or `deadline`.
    fn drain(&mut self, deadline: Instant) {
        let (stdout, stderr) = (io::stdout(), io::stderr());
        loop {
            let now = Instant::now();
            let sources = self.sources();
            if sources.is_empty() || now >= deadline {
                return;
            }
            let left = deadline.saturating_duration_since(now).min(DRAIN_IDLE);
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX).max(1);
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(fd, _)| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            let ready: Vec<bool> = fds.iter().map(is_ready).collect();
            drop(fds);
            let mut closed = Vec::new();
            for (i, (src, dst)) in sources.iter().enumerate() {
                if ready.get(i) == Some(&true) {
                    let out = if *dst == 2 {
                        stderr.as_fd()
                    } else {
                        stdout.as_fd()
                    };
                    if !copy_once(*src, out).unwrap_or(false) {
                        closed.push(src.as_raw_fd());
                    }
                }
            }
            drop(sources);
            self.drop_closed(&closed);
        }
    }

    /// The fds to copy output from, each with the fd of ours it goes to.
    fn sources(&self) -> Vec<(BorrowedFd<'_>, i32)> {
        let mut sources: Vec<(BorrowedFd<'_>, i32)> = Vec::new();
        if let Some(master) = &self.pty_master {
            sources.push((master.as_fd(), 1));
        }
        for (r, dst) in &self.pipes {
            sources.push((r.as_fd(), *dst));
        }
        sources
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
