//! The caller's side of set creation: execute the helper (through an fd
//! whose owner and mode were checked, never by name a second time) as H0,
//! and take the new holder over through a pidfd.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::wire::{self, DONE, KEEP};
use super::{step_err, Holder, SetError, SetSpec, UnitPlacement};
use crate::procfs::{self, ProcId};
use crate::sys;
use crate::trust;

/// How long a caller waits for H0's answers. The caller holds the user's
/// lock meanwhile, so a helper stuck (on a hung mount, say) must not hold
/// every later login of that user with it.
pub const HELPER_DEADLINE: Duration = Duration::from_secs(10);

/// `HELPER_DEADLINE`, or in test builds `NSJAIL_HELPER_DEADLINE_MS`.
fn helper_deadline() -> Duration {
    #[cfg(feature = "failpoints")]
    if let Some(ms) = std::env::var("NSJAIL_HELPER_DEADLINE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    HELPER_DEADLINE
}

/// A set just created: its holder, and H0, which has handed it over.
#[derive(Debug)]
pub struct Spawned {
    pub holder: Holder,
    pub h0: H0,
    /// Whether systemd gave the set a scope of its own.
    pub unit: UnitPlacement,
    /// The set's private network, if it has one.
    pub lease: Option<crate::net::Lease>,
    /// The shared group H0 did not lend after all (`wire::Ready::unlent`).
    pub unlent: Option<u32>,
}

/// The H0 process of a set just created. Once it has said `done`, how it
/// exits no longer matters, but it must be reaped. Its exit frees the
/// mount namespace the set was built in, which takes a few hundred
/// microseconds, so a caller keeps this until the login's own work is
/// done. Dropping it reaps (blocking); a caller that reaps children
/// itself (sshd) may have done so already, which is fine.
#[derive(Debug, Default)]
pub struct H0(Option<Child>);

impl Drop for H0 {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// How a new set comes into being: the seam between the session logic
/// and the privileged machinery (tests substitute a recording fake).
pub trait SetCreator {
    /// Builds a set for `spec` and hands its holder over, identified in
    /// the `/proc` at `proc_root`.
    fn create(&self, spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError>;

    /// Tells the holder of a set with `on_logout = "kill"` that `opener`
    /// opened a session in it, so the set ends once it and every other
    /// opener have exited (lifetime.rs).
    fn enlist(&self, holder: &Holder, opener: ProcId, proc_root: &Path) -> Result<(), SetError>;
}

/// The real creator: `HELPER __create …`.
#[derive(Clone, Debug)]
pub struct ExecHelper {
    path: PathBuf,
}

impl ExecHelper {
    pub fn new(path: impl Into<PathBuf>) -> ExecHelper {
        ExecHelper { path: path.into() }
    }

    /// The running program itself (for `nsjail-helper run`), so a failpoint
    /// or test build creates sets with its own code.
    pub fn this_program() -> ExecHelper {
        ExecHelper::new("/proc/self/exe")
    }
}

impl SetCreator for ExecHelper {
    fn enlist(&self, holder: &Holder, opener: ProcId, proc_root: &Path) -> Result<(), SetError> {
        super::lifetime::enlist_opener(holder, opener, proc_root)
            .map_err(step_err("hand the session's opener to the holder"))
    }

    fn create(&self, spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError> {
        let exe = trust::open_root_executable(&self.path)
            .map_err(step_err(&format!("check helper {}", self.path.display())))?;
        let mut cmd = trust::clean_command(&exe, "nsjail-helper");
        cmd.args(spec.to_args());
        #[cfg(feature = "failpoints")]
        if let Some(step) = std::env::var_os("NSJAIL_FAILPOINT") {
            cmd.env("NSJAIL_FAILPOINT", step);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(step_err(&format!("exec helper {}", self.path.display())))?;
        drop(exe);
        let deadline = Instant::now() + helper_deadline();
        let result = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => hand_over(stdout, stdin, proc_root, deadline),
            _ => Err(SetError::new("helper reply", "no pipe")),
        };
        if result.is_err() {
            // A helper past its deadline is still running: end it (the
            // holder dies with it). It is our unreaped child, so its pid
            // is still its own.
            let _ = child.kill();
        }
        let h0 = H0(Some(child));
        result.map(|(holder, ready)| Spawned {
            holder,
            h0,
            unit: ready.unit,
            lease: ready.lease,
            unlent: ready.unlent,
        })
    }
}

/// Reads H0's `ok PID`, opens a pidfd for the holder (H0 has not reaped
/// it, so the pid is still the holder's), answers "K"eep, and waits for
/// H0's `done`: from then on the holder no longer dies with H0. Without
/// the "K" (an error here closes the pipe) H0 ends the set itself.
fn hand_over(
    reply: impl std::os::fd::AsFd,
    mut release: impl Write,
    proc_root: &Path,
    deadline: Instant,
) -> Result<(Holder, wire::Ready), SetError> {
    let line = wire::read_line(&reply, deadline).map_err(step_err("read helper reply"))?;
    let ready = wire::parse_reply(&line)?;
    let holder = adopt(ready.pid, proc_root)?;
    let _ = release.write_all(&[KEEP]);
    drop(release);
    if !wire::read_line(&reply, deadline).is_ok_and(|l| l == DONE) {
        // H0 died or failed before letting go of the holder, which then
        // died with it (parent-death signal); make sure, and report.
        let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&holder.pidfd), libc::SIGKILL);
        return Err(SetError::new(
            "hand over the holder",
            "the helper exited before handing over the new set",
        ));
    }
    Ok((holder, ready))
}

/// A pidfd and the identity of the holder H0 reported.
fn adopt(pid: i32, proc_root: &Path) -> Result<Holder, SetError> {
    let pidfd = sys::pidfd_open(pid).map_err(step_err("pidfd_open holder"))?;
    let id = procfs::proc_id(proc_root, pid)
        .ok_or_else(|| SetError::new("read holder start time", "holder exited"))?;
    let userns =
        procfs::ns_inode(proc_root, pid, "user").map_err(step_err("read holder user namespace"))?;
    Ok(Holder { id, pidfd, userns })
}
