//! Namespace sets: creation with the *locked* layout, and joining.
//!
//! A set is a user, mount, pid and ipc namespace (optionally uts and net)
//! whose pid 1 is a small holder process. Creation runs in a freshly
//! exec'd `nsjail-helper __create` (process "H0"), so the holder that stays
//! behind is a copy of a small process, not of sshd, and so the caller's
//! fds, signal handlers and memory never leak into a set.
//!
//! The ordering is the security property (DESIGN §2): every private mount
//! is made *before* the user namespace exists; the user namespace is then
//! created together with a new mount namespace, which makes the copied
//! mounts MNT_LOCKED — nobody inside, not even root of a nested user
//! namespace, can unmount them to uncover the host's /tmp.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode};

use crate::idmap::{self, MapLine};
use crate::policy::{Namespace, Propagation, Settings};
use crate::procfs::{self, ProcId};
use crate::sys;

/// The freestanding holder program built by build.rs from holder/holder.rs
/// (empty on targets it does not support).
const HOLDER_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nsjail-holder"));

/// Everything H0 needs to build a set; passed on the helper's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    pub uid_map: Vec<MapLine>,
    pub gid_map: Vec<MapLine>,
    pub private_tmp: Vec<PathBuf>,
    pub tmp_size: Option<String>,
    pub propagation: Propagation,
    pub uts: bool,
    pub net: bool,
}

impl SetSpec {
    pub fn new(settings: &Settings, uid_map: Vec<MapLine>, gid_map: Vec<MapLine>) -> Self {
        SetSpec {
            uid_map,
            gid_map,
            private_tmp: settings.private_tmp.clone(),
            tmp_size: settings.tmp_size.clone(),
            propagation: settings.propagation,
            uts: settings.namespaces.contains(&Namespace::Uts),
            net: settings.namespaces.contains(&Namespace::Net),
        }
    }

    /// The `setns` flags a session uses to join a set built from this spec.
    pub fn join_flags(&self) -> libc::c_int {
        join_flags(self.uts, self.net)
    }

    fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["__create".into()];
        let maps = |lines: &[MapLine]| {
            lines
                .iter()
                .map(|l| format!("{}:{}:{}", l.inside, l.outside, l.count))
                .collect::<Vec<_>>()
                .join(",")
        };
        args.extend(["--uid-map".into(), maps(&self.uid_map).into()]);
        args.extend(["--gid-map".into(), maps(&self.gid_map).into()]);
        for p in &self.private_tmp {
            args.extend(["--tmp".into(), p.as_os_str().to_owned()]);
        }
        if let Some(size) = &self.tmp_size {
            args.extend(["--tmp-size".into(), size.into()]);
        }
        args.extend(["--propagation".into(), self.propagation.as_str().into()]);
        if self.uts {
            args.push("--uts".into());
        }
        if self.net {
            args.push("--net".into());
        }
        args
    }

    /// Parses the arguments produced by `to_args` (after `__create`).
    pub fn from_args(args: &[String]) -> Result<SetSpec, String> {
        let mut spec = SetSpec {
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            private_tmp: Vec::new(),
            tmp_size: None,
            propagation: Propagation::Slave,
            uts: false,
            net: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--uid-map" => spec.uid_map = parse_map_arg(value()?)?,
                "--gid-map" => spec.gid_map = parse_map_arg(value()?)?,
                "--tmp" => spec.private_tmp.push(PathBuf::from(value()?)),
                "--tmp-size" => spec.tmp_size = Some(value()?.clone()),
                "--propagation" => {
                    spec.propagation = match value()?.as_str() {
                        "slave" => Propagation::Slave,
                        "private" => Propagation::Private,
                        other => return Err(format!("bad propagation {other}")),
                    }
                }
                "--uts" => spec.uts = true,
                "--net" => spec.net = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if spec.uid_map.is_empty() || spec.gid_map.is_empty() {
            return Err("--uid-map and --gid-map are required".into());
        }
        Ok(spec)
    }
}

/// `setns` flags for joining a set.
pub fn join_flags(uts: bool, net: bool) -> libc::c_int {
    let mut flags =
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
    if uts {
        flags |= libc::CLONE_NEWUTS;
    }
    if net {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

fn parse_map_arg(text: &str) -> Result<Vec<MapLine>, String> {
    text.split(',')
        .map(|part| {
            let nums: Vec<u32> = part
                .split(':')
                .map(|n| n.parse().map_err(|_| format!("bad map entry {part}")))
                .collect::<Result<_, _>>()?;
            match nums[..] {
                [inside, outside, count] => Ok(MapLine {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(format!("bad map entry {part}")),
            }
        })
        .collect()
}

/// A failure while creating a set, naming the step.
#[derive(Debug)]
pub struct SetError {
    pub step: String,
    pub cause: String,
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)
    }
}

impl std::error::Error for SetError {}

fn step_err(step: &str) -> impl FnOnce(io::Error) -> SetError + '_ {
    move |e| SetError {
        step: step.to_owned(),
        cause: e.to_string(),
    }
}

/// A live holder as seen by the process that created or found it.
#[derive(Debug)]
pub struct Holder {
    pub id: ProcId,
    pub pidfd: OwnedFd,
    pub userns: u64,
}

/// How a set's H0 process is started.
#[derive(Clone, Copy, Debug)]
pub enum Creator<'a> {
    /// Execute `HELPER __create …`: what the PAM module does, so the set
    /// starts from a small fresh image and nothing of sshd leaks into it.
    Exec(&'a Path),
    /// Fork the calling process: for `nsjail-helper` itself, which is
    /// already that small image (saves one exec per set).
    Fork,
}

/// A set just created: its holder, and H0, which has handed the holder
/// over and is exiting.
#[derive(Debug)]
pub struct Spawned {
    pub holder: Holder,
    pub h0: H0,
}

/// The H0 process of a set just created. Once it has said `done`, how it
/// exits no longer matters, but it must be reaped. Its exit frees the
/// mount namespace the set was built in, which takes a few hundred
/// microseconds, so a caller keeps this until the login's own work is
/// done. Dropping it reaps (blocking); a caller that reaps children
/// itself (sshd) may have done so already, which is fine.
#[derive(Debug)]
pub enum H0 {
    Child(std::process::Child),
    Forked(i32),
}

impl Drop for H0 {
    fn drop(&mut self) {
        match self {
            H0::Child(child) => {
                let _ = child.wait();
            }
            H0::Forked(pid) => {
                let _ = sys::waitpid(*pid);
            }
        }
    }
}

/// Caller side: starts H0 and returns the new holder, with a pidfd opened
/// while H0 still keeps the holder's pid from being reused.
pub fn spawn(creator: Creator<'_>, spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError> {
    match creator {
        Creator::Exec(helper) => spawn_exec(helper, spec, proc_root),
        Creator::Fork => spawn_fork(spec, proc_root),
    }
}

fn spawn_exec(helper: &Path, spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError> {
    check_helper(helper).map_err(|e| SetError {
        step: format!("check helper {}", helper.display()),
        cause: e.to_string(),
    })?;
    let mut child = Command::new(helper)
        .args(spec.to_args())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| SetError {
            step: format!("exec helper {}", helper.display()),
            cause: e.to_string(),
        })?;
    let result = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => hand_over(BufReader::new(stdout), stdin, proc_root),
        _ => Err(SetError {
            step: "helper reply".into(),
            cause: "no pipe".into(),
        }),
    };
    // On failure H0 is reaped right here (dropping it waits); on success
    // the caller decides when.
    let h0 = H0::Child(child);
    result.map(|holder| Spawned { holder, h0 })
}

fn spawn_fork(spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError> {
    let pipe_err = |e: nix::Error| step_err("pipe")(e.into());
    let (reply_r, reply_w) = nix::unistd::pipe().map_err(pipe_err)?;
    let (release_r, release_w) = nix::unistd::pipe().map_err(pipe_err)?;
    // SAFETY: nsjail-helper is single-threaded.
    match unsafe { sys::fork() }.map_err(step_err("fork H0"))? {
        sys::Fork::Child => {
            // H0 speaks the same protocol as `__create` on stdin/stdout.
            drop(reply_r);
            drop(release_w);
            let ok = sys::dup_onto(release_r.as_fd(), 0)
                .and_then(|()| sys::dup_onto(reply_w.as_fd(), 1))
                .and_then(|()| sys::stdio_to_dev_null(&[2]));
            if ok.is_err() {
                sys::exit_now(1);
            }
            sys::exit_now(create_main(spec))
        }
        sys::Fork::Parent(pid) => {
            drop(reply_w);
            drop(release_r);
            let reply = BufReader::new(File::from(reply_r));
            let result = hand_over(reply, File::from(release_w), proc_root);
            let h0 = H0::Forked(pid);
            result.map(|holder| Spawned { holder, h0 })
        }
    }
}

/// Caller side of the handover: reads H0's `ok PID`, opens a pidfd for
/// the holder, answers "K"eep, and waits for H0's `done`: from then on
/// the holder no longer dies with H0. Without the "K" (an error here
/// closes the pipe) H0 ends the set itself.
fn hand_over(
    mut reply: impl BufRead,
    mut release: impl Write,
    proc_root: &Path,
) -> Result<Holder, SetError> {
    let holder = read_helper_reply(&mut reply, proc_root)?;
    let _ = release.write_all(b"K");
    drop(release);
    let mut line = String::new();
    if reply.read_line(&mut line).is_err() || line.trim_end() != "done" {
        // H0 died or failed before letting go of the holder, which then
        // died with it (parent-death signal); make sure, and report.
        let _ = sys::pidfd_send_signal(holder.pidfd.as_fd(), libc::SIGKILL);
        return Err(SetError {
            step: "hand over the holder".into(),
            cause: "the helper exited before handing over the new set".into(),
        });
    }
    Ok(holder)
}

fn read_helper_reply(reply: &mut impl BufRead, proc_root: &Path) -> Result<Holder, SetError> {
    let mut line = String::new();
    reply
        .read_line(&mut line)
        .map_err(step_err("read helper reply"))?;
    let line = line.trim_end();
    if let Some(err) = line.strip_prefix("err ") {
        let (step, cause) = err.split_once(": ").unwrap_or((err, ""));
        return Err(SetError {
            step: step.to_owned(),
            cause: cause.to_owned(),
        });
    }
    let pid: i32 = line
        .strip_prefix("ok ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| SetError {
            step: "helper reply".into(),
            cause: if line.is_empty() {
                "helper exited without a reply".into()
            } else {
                format!("unexpected reply {line:?}")
            },
        })?;
    let pidfd = sys::pidfd_open(pid).map_err(step_err("pidfd_open holder"))?;
    let id = procfs::proc_id(proc_root, pid).ok_or_else(|| SetError {
        step: "read holder start time".into(),
        cause: "holder exited".into(),
    })?;
    let userns =
        procfs::ns_inode(proc_root, pid, "user").map_err(step_err("read holder user namespace"))?;
    Ok(Holder { id, pidfd, userns })
}

/// Opens `path` as an `O_PATH` directory fd, walking it one component at a
/// time without following symlinks. Every component must be root-owned;
/// a component other than the last may be writable by others only if it
/// is sticky (so nobody else can rename entries in it).
pub fn open_trusted_dir(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut fd: OwnedFd = File::open("/")?.into();
    let components: Vec<_> = path.components().collect();
    for (i, comp) in components.iter().enumerate() {
        let name = match comp {
            Component::RootDir => continue,
            Component::Normal(n) => *n,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path is not normalized",
                ))
            }
        };
        let next = openat(&fd, name, flags, Mode::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", path.display()),
            )
        })?;
        let st = fstat(&next).map_err(io::Error::from)?;
        let last = i + 1 == components.len();
        let writable_by_others = st.st_mode & 0o022 != 0;
        let sticky = st.st_mode & 0o1000 != 0;
        if st.st_uid != 0 || (!last && writable_by_others && !sticky) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: a component is not root-owned or is writable by others",
                    path.display()
                ),
            ));
        }
        fd = next;
    }
    Ok(fd)
}

fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// H0 side, run as `nsjail-helper __create …` by `spawn`. On stdout,
/// `ok PID` (or `err STEP: CAUSE`); then, once the caller has a pidfd for
/// the holder and has answered "K" on stdin, `done` when the holder no
/// longer dies with H0. EOF instead of "K" ends the set.
pub fn create_main(spec: &SetSpec) -> i32 {
    let mut out = io::stdout();
    match create(spec) {
        Ok(mut pending) => {
            failpoint("h0-before-reply");
            let _ = writeln!(out, "ok {}", pending.pid);
            let _ = out.flush();
            failpoint("h0-after-reply");
            // Keep the holder as our un-reaped child until the caller has
            // its pidfd (its pid cannot be reused before then) and says
            // "K"eep. Anything else means the caller failed or died: the
            // set would be unreachable, so it ends here.
            let mut buf = [0u8; 1];
            let keep = matches!(io::stdin().read(&mut buf), Ok(1)) && buf[0] == b'K';
            if keep && pending.disarm().is_ok() {
                failpoint("h0-after-disarm");
                let _ = writeln!(out, "done");
                let _ = out.flush();
                0
            } else {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pending.pid),
                    nix::sys::signal::SIGKILL,
                );
                let _ = sys::waitpid(pending.pid);
                1
            }
        }
        Err(e) => {
            let _ = writeln!(out, "err {e}");
            let _ = out.flush();
            1
        }
    }
}

/// A holder H0 has set up but not yet let go: it still dies with H0
/// (parent-death signal) until `disarm`.
struct PendingHolder {
    pid: i32,
    ready: File,
    go: File,
}

impl PendingHolder {
    /// Tells the holder to drop its parent-death signal and waits until
    /// it has: from then on it outlives H0.
    fn disarm(&mut self) -> Result<(), SetError> {
        self.go.write_all(b"D").map_err(step_err("disarm holder"))?;
        read_token(&mut self.ready, b'X', "holder: disarm")
    }
}

/// Test builds only (`--features failpoints`): SIGKILLs the calling
/// process at step `name` when `NSJAIL_FAILPOINT=name`, to prove that a
/// helper killed at any step leaves nothing behind.
fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("NSJAIL_FAILPOINT").is_ok_and(|v| v == name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::SIGKILL);
        // pid 1 of a pid namespace ignores signals it sends itself.
        sys::exit_now(137);
    }
    let _ = name;
}

/// The privileged sequence. Each step must come before the next one.
fn create(spec: &SetSpec) -> Result<PendingHolder, SetError> {
    if sys::geteuid() != 0 {
        return Err(SetError {
            step: "check privileges".into(),
            cause: "nsjail-helper must run as root to create a namespace set".into(),
        });
    }
    // 1. Shed everything inherited from the caller (sshd's sockets, the
    //    client connection, lock files): only stdio stays.
    sys::close_fds_from(3).map_err(step_err("close inherited fds"))?;
    let _ = nix::unistd::setsid();
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));

    // 2. Private mount and ipc namespaces (and uts/net if asked), still
    //    owned by the host user namespace so a user inside can never
    //    administer them.
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC;
    if spec.uts {
        flags |= libc::CLONE_NEWUTS;
    }
    if spec.net {
        flags |= libc::CLONE_NEWNET;
    }
    sys::unshare(flags).map_err(step_err("unshare mount/ipc namespaces"))?;
    failpoint("h0-after-unshare");

    // 3. Stop our mounts from propagating back to the host; with "slave"
    //    the admin's later host mounts still appear inside.
    let prop = match spec.propagation {
        Propagation::Slave => libc::MS_SLAVE,
        Propagation::Private => libc::MS_PRIVATE,
    };
    sys::mount(None, "/", None, libc::MS_REC | prop, None).map_err(step_err("make / rslave"))?;

    // 4. Private temp dirs, mounted through fds so no symlink a user might
    //    plant is ever followed by root.
    let mut data = String::from("mode=1777");
    if let Some(size) = &spec.tmp_size {
        data.push_str(",size=");
        data.push_str(size);
    }
    for dir in &spec.private_tmp {
        let step = format!("mount tmpfs on {}", dir.display());
        let fd = open_trusted_dir(dir).map_err(step_err(&step))?;
        sys::mount(
            Some("tmpfs"),
            &fd_path(fd.as_fd()),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&data),
        )
        .map_err(step_err(&step))?;
    }
    if spec.net {
        sys::loopback_up().map_err(step_err("bring up loopback"))?;
    }

    failpoint("h0-after-mounts");
    // 5. The pid namespace applies to our next child, the holder.
    sys::unshare(libc::CLONE_NEWPID).map_err(step_err("unshare pid namespace"))?;

    // The holder's tiny program, in a sealed memfd the holder will exec.
    let holder_exe = sys::sealed_memfd(c"nsjail-holder", HOLDER_ELF)
        .map_err(step_err("prepare holder program"))?;
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| step_err("pipe")(e.into()))?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(|e| step_err("pipe")(e.into()))?;
    // SAFETY: the helper is single-threaded.
    match unsafe { sys::fork() }.map_err(step_err("fork holder"))? {
        sys::Fork::Child => {
            drop(ready_r);
            drop(go_w);
            holder_main(ready_w, go_r, holder_exe)
        }
        sys::Fork::Parent(holder) => {
            drop(ready_w);
            drop(go_r);
            drop(holder_exe);
            failpoint("h0-after-fork");
            let result = finish_holder(spec, ready_r, go_w).map(|(ready, go)| PendingHolder {
                pid: holder,
                ready,
                go,
            });
            if result.is_err() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(holder),
                    nix::sys::signal::SIGKILL,
                );
                let _ = sys::waitpid(holder);
            }
            result
        }
    }
}

/// H0 after the fork: waits for the holder's user namespace, writes its
/// id maps, lets it go on and waits until it is ready.
fn finish_holder(
    spec: &SetSpec,
    ready_r: OwnedFd,
    go_w: OwnedFd,
) -> Result<(File, File), SetError> {
    let mut ready = File::from(ready_r);
    let mut go = File::from(go_w);
    read_token(
        &mut ready,
        b'U',
        "holder: mount proc / unshare user namespace",
    )?;
    // Our /proc is now the holder's procfs, where the holder is pid 1.
    // uid_map, then setgroups=deny, then gid_map (the kernel's order).
    fs::write("/proc/1/uid_map", idmap::render(&spec.uid_map))
        .map_err(step_err("write uid_map"))?;
    fs::write("/proc/1/setgroups", "deny").map_err(step_err("write setgroups"))?;
    fs::write("/proc/1/gid_map", idmap::render(&spec.gid_map))
        .map_err(step_err("write gid_map"))?;
    failpoint("h0-after-maps");
    go.write_all(b"G").map_err(step_err("release holder"))?;
    read_token(&mut ready, b'R', "holder: sanitise")?;
    Ok((ready, go))
}

fn read_token(pipe: &mut File, want: u8, step: &str) -> Result<(), SetError> {
    let mut buf = [0u8; 256];
    let n = pipe.read(&mut buf).map_err(step_err(step))?;
    match &buf[..n] {
        [b] if *b == want => Ok(()),
        [] => Err(SetError {
            step: step.into(),
            cause: "holder exited".into(),
        }),
        msg => Err(SetError {
            step: step.into(),
            cause: String::from_utf8_lossy(&msg[1..]).into_owned(),
        }),
    }
}

/// The holder: pid 1 of the new pid namespace. Never returns.
fn holder_main(ready_w: OwnedFd, go_r: OwnedFd, holder_exe: Option<OwnedFd>) -> ! {
    let mut ready = File::from(ready_w);
    let mut go = File::from(go_r);
    let fail = |ready: &mut File, what: &str, e: io::Error| -> ! {
        let _ = ready.write_all(format!("E{what}: {e}").as_bytes());
        sys::exit_now(1)
    };
    // Until H0 has handed us to a caller that holds a pidfd for us, we
    // die with H0: a helper killed half-way must not leave an unreachable
    // set. (Had H0 died before this line, the read of "G" below sees EOF.)
    if sys::set_parent_death_signal(libc::SIGKILL).is_err() {
        sys::exit_now(1);
    }
    // a. A procfs for the new pid namespace, and an mqueue fs for the new
    //    ipc namespace; both made before the user namespace, so locked.
    if let Err(e) = sys::mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    ) {
        fail(&mut ready, "mount /proc", e);
    }
    failpoint("holder-after-proc");
    if fs::symlink_metadata("/dev/mqueue")
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        if let Err(e) = sys::mount(
            Some("mqueue"),
            "/dev/mqueue",
            Some("mqueue"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ) {
            fail(&mut ready, "mount /dev/mqueue", e);
        }
    }
    // b. Shed what we inherited from the first login while we still have
    //    host privileges: its audit loginuid and its session keyring.
    let _ = fs::write("/proc/self/loginuid", "4294967295");
    let _ = sys::join_new_session_keyring();
    // c. The user namespace together with a new mount namespace: the copy
    //    of every mount above is now locked.
    if let Err(e) = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) {
        fail(&mut ready, "unshare user+mount namespaces", e);
    }
    failpoint("holder-after-userns");
    if ready.write_all(b"U").is_err() {
        sys::exit_now(1);
    }
    let mut buf = [0u8; 1];
    if !matches!(go.read(&mut buf), Ok(1)) {
        sys::exit_now(1);
    }
    // d. No capabilities at all and no way to regain any; every signal
    //    blocked (taken synchronously by the reaper loop).
    if let Err(e) = drop_all_capabilities() {
        fail(&mut ready, "drop capabilities", e);
    }
    if let Err(e) = sys::set_no_new_privs() {
        fail(&mut ready, "set no_new_privs", e);
    }
    if let Err(e) = sys::block_all_signals() {
        fail(&mut ready, "block signals", e);
    }
    let _ = std::env::set_current_dir("/");
    // The holder outlives everyone who might read its stdio (H0's pipes,
    // the caller's stderr): point all three at /dev/null.
    if let Err(e) = sys::stdio_to_dev_null(&[0, 1, 2]) {
        fail(&mut ready, "redirect stdio", e);
    }
    let _ = ready.write_all(b"R");
    // Wait until H0 knows a caller holds us, then stop dying with H0.
    if !matches!(go.read(&mut buf), Ok(1)) || buf[0] != b'D' {
        sys::exit_now(1);
    }
    if let Err(e) = sys::set_parent_death_signal(0) {
        fail(&mut ready, "clear parent-death signal", e);
    }
    failpoint("holder-before-exec");
    let _ = ready.write_all(b"X");
    drop(ready);
    drop(go);
    // e. Become the ~1 kB holder program (holder/holder.rs): a forked copy
    //    of this process would keep every page H0 touched (~500 kB PSS per
    //    set). Where there is no such program, hold in this image: bigger,
    //    but just as correct.
    if let Some(exe) = holder_exe {
        let _ = sys::fexecve(exe.as_fd(), &[c"nsjail-holder"]);
    }
    hold()
}

/// The holder loop in Rust, for targets without the freestanding holder:
/// reaps every orphan of the pid namespace until killed. Signals are
/// blocked and taken synchronously, so SIGCHLD is never missed.
pub fn hold() -> ! {
    let _ = sys::block_all_signals();
    loop {
        while sys::reap_one().is_some() {}
        sys::wait_for_any_signal();
    }
}

/// Clears the bounding, inheritable, ambient, permitted and effective
/// capability sets of the calling process.
pub fn drop_all_capabilities() -> io::Result<()> {
    let to_io = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    for cap in 0..64 {
        sys::drop_bounding_cap(cap)?;
    }
    sys::clear_ambient_caps()?;
    caps::clear(None, caps::CapSet::Inheritable).map_err(to_io)?;
    caps::clear(None, caps::CapSet::Effective).map_err(to_io)?;
    caps::clear(None, caps::CapSet::Permitted).map_err(to_io)?;
    Ok(())
}

/// Child side of a login: enter the set behind `pidfd` and become the user.
/// The caller must already have the user's supplementary groups; the pid
/// namespace applies to the caller's children.
pub fn join_and_drop(
    pidfd: BorrowedFd<'_>,
    flags: libc::c_int,
    uid: u32,
    gid: u32,
) -> Result<(), SetError> {
    sys::setns(pidfd, flags).map_err(step_err("setns into the namespace set"))?;
    // Our cwd still points into the host's mount tree.
    std::env::set_current_dir("/").map_err(step_err("chdir /"))?;
    nix::unistd::setresgid(gid.into(), gid.into(), gid.into())
        .map_err(|e| step_err("setresgid")(e.into()))?;
    nix::unistd::setresuid(uid.into(), uid.into(), uid.into())
        .map_err(|e| step_err("setresuid")(e.into()))?;
    // setresuid away from 0 already cleared permitted/effective; be
    // explicit about every set, and check nothing is left.
    sys::clear_ambient_caps().map_err(step_err("clear ambient capabilities"))?;
    let to_io = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    for set in [
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set)
            .map_err(to_io)
            .map_err(step_err("clear capabilities"))?;
    }
    match (nix::unistd::getresuid(), nix::unistd::getresgid()) {
        (Ok(u), Ok(g))
            if [u.real, u.effective, u.saved]
                .iter()
                .all(|x| x.as_raw() == uid)
                && [g.real, g.effective, g.saved]
                    .iter()
                    .all(|x| x.as_raw() == gid) =>
        {
            Ok(())
        }
        _ => Err(SetError {
            step: "verify credentials".into(),
            cause: "uid/gid did not change as requested".into(),
        }),
    }
}

/// Checks an already-known `path` is a file owned by root (used before
/// exec'ing the helper from the PAM module).
pub fn check_helper(path: &Path) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a root-owned file not writable by group or others",
                path.display()
            ),
        ));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not executable", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_arguments() {
        let spec = SetSpec {
            uid_map: vec![MapLine {
                inside: 1001,
                outside: 1001,
                count: 1,
            }],
            gid_map: vec![
                MapLine {
                    inside: 5,
                    outside: 5,
                    count: 1,
                },
                MapLine {
                    inside: 1,
                    outside: 100001,
                    count: 4,
                },
            ],
            private_tmp: vec!["/tmp".into(), "/dev/shm".into()],
            tmp_size: Some("512M".into()),
            propagation: Propagation::Private,
            uts: true,
            net: false,
        };
        let args: Vec<String> = spec.to_args()[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(SetSpec::from_args(&args), Ok(spec));
    }

    #[test]
    fn bad_create_arguments_are_rejected() {
        assert!(SetSpec::from_args(&["--uid-map".into(), "1:2".into()]).is_err());
        assert!(SetSpec::from_args(&["--frobnicate".into()]).is_err());
        assert!(SetSpec::from_args(&[]).is_err());
    }

    #[test]
    fn trusted_dir_rejects_relative_and_dotdot() {
        assert!(open_trusted_dir(Path::new("/tmp/../etc")).is_err());
    }
}
