//! H0: the privileged sequence that builds a set, run as
//! `nsjail-helper __create …` in a freshly executed process, so the set
//! starts from a small clean image and nothing of sshd (fds, signal
//! handlers, memory) leaks into it.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::holder::{holder_main, read_token};
use super::wire::{self, Ready, DONE, KEEP};
use super::{failpoint, lifetime, records, step_err, unit, SetError, SetSpec, UnitPlacement};
use crate::idmap;
use crate::policy::Propagation;
use crate::sys::{self, Forked};
use crate::trust;

/// The freestanding holder program built by build.rs from holder/holder.rs
/// (empty on targets it does not support).
const HOLDER_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nsjail-holder"));

/// Lock directories made private in every set (see step 4b of `create`).
const LOCK_DIRS: [&str; 2] = ["/run/lock", "/var/lock"];
/// As Debian mounts /run/lock.
const LOCK_DIR_OPTIONS: &str = "mode=1777,size=5m";

/// H0's main, run as `nsjail-helper __create …` by `spawn`. On stdout,
/// `ok PID` (or `err STEP: CAUSE`); then, once the caller has a pidfd for
/// the holder and has answered "K" on stdin, `done` when the holder no
/// longer dies with H0. EOF instead of "K" ends the set.
pub fn create_main(spec: &SetSpec) -> i32 {
    let mut out = io::stdout();
    let pending = create(spec);
    failpoint("h0-before-reply");
    if super::failpoint_armed("h0-hang") {
        // A helper stuck (on a hung mount, say) with the holder made.
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    let _ = writeln!(
        out,
        "{}",
        wire::reply_line(
            &pending
                .as_ref()
                .map(|p| Ready {
                    pid: p.pid,
                    unit: p.unit.clone(),
                    lease: p.lease.clone(),
                    unlent: p.unlent,
                })
                .map_err(Clone::clone)
        )
    );
    let _ = out.flush();
    let Ok(mut pending) = pending else {
        return 1;
    };
    failpoint("h0-after-reply");
    // Keep the holder as our un-reaped child until the caller has its
    // pidfd (its pid cannot be reused before then) and says "K"eep.
    // Anything else means the caller failed or died: the set would be
    // unreachable, so it ends here.
    let mut buf = [0u8; 1];
    let keep = matches!(io::stdin().read(&mut buf), Ok(1)) && buf[0] == KEEP;
    if keep && pending.disarm().is_ok() {
        failpoint("h0-after-disarm");
        let _ = writeln!(out, "{DONE}");
        let _ = out.flush();
        0
    } else {
        let _ = kill(Pid::from_raw(pending.pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pending.pid), None);
        1
    }
}

/// A holder H0 has set up but not yet let go: it still dies with H0
/// (parent-death signal) until `disarm`.
struct PendingHolder {
    pid: i32,
    ready: File,
    go: File,
    unit: UnitPlacement,
    lease: Option<crate::net::Lease>,
    /// The shared group taken back out of the gid map (`Ready::unlent`).
    unlent: Option<u32>,
}

impl PendingHolder {
    /// Tells the holder to drop its parent-death signal and waits until
    /// it has: from then on it outlives H0.
    fn disarm(&mut self) -> Result<(), SetError> {
        self.go.write_all(b"D").map_err(step_err("disarm holder"))?;
        read_token(&mut self.ready, b'X', "holder: disarm")?;
        // The pipe ends when the holder has exec'd its program and named
        // itself (or is holding in this image, or died: ended anyway).
        let mut rest = Vec::new();
        self.ready
            .read_to_end(&mut rest)
            .map_err(step_err("holder: wait for its name"))?;
        Ok(())
    }
}

/// The privileged sequence. Each step must come before the next one.
fn create(spec: &SetSpec) -> Result<PendingHolder, SetError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(SetError::new(
            "check privileges",
            "nsjail-helper must run as root to create a namespace set",
        ));
    }
    // 1. Shed everything inherited from the caller: its fds (sshd's
    //    sockets, the client connection; only stdio stays: the holder's
    //    exec closes the rest), its signal dispositions (an ignored
    //    SIGCHLD would let the kernel reap the holder behind our back and
    //    free its pid for reuse) and its signal mask.
    sys::cloexec_fds_from(3).map_err(step_err("close inherited fds"))?;
    sys::reset_signal_dispositions();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(step_err("reset signal mask"))?;
    // A write to a bus that hung up must be an error, not a SIGPIPE.
    sys::ignore_sigpipe();
    let _ = nix::unistd::setsid();
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));

    // 1b. On a systemd host, a scope of our own, before anything else: the
    //     holder forked below is born in it (see unit.rs).
    //     With limits, the scope is the user's limited one, or there is no
    //     set at all: a set outside it would be unlimited.
    let unit = if unit::systemd_booted() {
        match unit::move_into_own_scope(spec.owner.uid, &spec.limits) {
            Ok(name) => UnitPlacement::Own(name),
            Err(why) if !spec.limits.is_empty() => {
                return Err(SetError::new(
                    "place the set under its resource limits",
                    why,
                ))
            }
            Err(why) => UnitPlacement::Failed(why),
        }
    } else if !spec.limits.is_empty() {
        // No systemd: the user's cgroup of our own subtree, and a leaf
        // for this set, which we enter now (limits/direct.rs). The
        // caller holds the user's lock.
        let root = Path::new(crate::paths::CGROUP);
        match crate::limits::direct::place_set(
            root,
            spec.owner.uid,
            std::process::id(),
            &spec.limits,
        ) {
            Ok(path) => UnitPlacement::Cgroup(path),
            Err(why) => {
                return Err(SetError::new(
                    "place the set under its resource limits",
                    why,
                ))
            }
        }
    } else {
        UnitPlacement::NoSystemd
    };

    // 2. Private mount and ipc namespaces (and uts/net if asked), still
    //    owned by the host user namespace so a user inside can never
    //    administer them. A private network needs the host's network
    //    namespace once more, to make the set's link.
    let host_net = match spec.private_net {
        Some(_) => {
            Some(File::open("/proc/self/ns/net").map_err(step_err("open host network namespace"))?)
        }
        None => None,
    };
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC;
    if spec.uts {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if spec.net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    // The policy's default (no "cgroup", no "!cgroup"): a cgroup
    // namespace wherever it hides other users' cgroups, i.e. where the set
    // now has a scope (or, without systemd, a cgroup) of its own on a
    // cgroup v2 host.
    let cgroup = spec.cgroup
        || (spec.cgroup_auto
            && matches!(unit, UnitPlacement::Own(_) | UnitPlacement::Cgroup(_))
            && unit::cgroup2_unified());
    if cgroup {
        // Rooted at our cgroup: the set's own scope or cgroup.
        flags |= CloneFlags::CLONE_NEWCGROUP;
    }
    unshare(flags).map_err(step_err("unshare mount/ipc namespaces"))?;
    failpoint("h0-after-unshare");

    // 3. Stop our mounts from propagating back to the host; with "slave"
    //    the admin's later host mounts still appear inside.
    let prop = match spec.propagation {
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Private => MsFlags::MS_PRIVATE,
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | prop,
        None::<&str>,
    )
    .map_err(step_err("make / rslave"))?;

    // 3b. SysV IPC limits of the new ipc namespace, before any process of
    //     the user can be in it: the kernel's defaults let one set pin
    //     all of RAM in segments that outlive their processes. These
    //     files act on the writer's ipc namespace, which is now the set's.
    write_ipc_limits(&spec.ipc)?;

    // 3b. Login records (utmp, wtmp, btmp, lastlog): read-only copies
    //     with only the user's own records (and the system's), so nobody
    //     inside learns other users' terminals, addresses and times.
    //     /tmp serves briefly as staging; it gets its private tmpfs next.
    records::hide_other_users(spec.owner.uid, Path::new("/tmp"))?;
    failpoint("h0-after-records");

    // 4. Private temp dirs, mounted through fds so no symlink a user might
    //    plant is ever followed by root.
    let mut data = String::from("mode=1777");
    if let Some(size) = &spec.tmp_size {
        data.push_str(",size=");
        data.push_str(size);
    }
    for dir in &spec.private_tmp {
        mount_tmpfs(dir, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &data)?;
    }
    // 4b. The lock directories every program may write (/run/lock, 1777,
    //     and /var/lock where it is a directory, not a link to it) are
    //     shared by every user of the host: private in every set, whatever
    //     private_tmp says, and small.
    for dir in LOCK_DIRS.map(Path::new) {
        let is_dir = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
        if !is_dir || spec.private_tmp.iter().any(|p| p == dir) {
            continue;
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount_tmpfs(dir, flags, LOCK_DIR_OPTIONS)?;
    }
    // 4c. ptys of the set's own: a devpts instance with at most max_ptys,
    //     so one user can neither take the host's ptys from everyone else
    //     nor see other users' terminals (and when they last typed).
    super::ptys::mount_own_devpts(spec.max_ptys)?;
    // 4e. crontab: an idmapped view of the program in which its setgid
    //     bit works (crontab.rs). If that cannot be made, the set does not
    //     lend the group at all (unless it is one of hers anyway): a login
    //     still works, only crontab fails inside, as it did before.
    let mut gid_map = spec.gid_map.clone();
    let mut unlent = None;
    if let Some(gid) = spec.crontab_gid {
        if let Err(why) = super::crontab::bind_idmapped(spec.owner.uid, gid) {
            gid_map = super::without_group(&gid_map, gid, &spec.owner.gids);
            if !spec.owner.gids.contains(&gid) {
                unlent = Some(gid);
            }
            crate::log::log(
                crate::log::Level::Warning,
                &format!(
                    "crontab will not work in the new set of uid {}: {why}; the set does not map the crontab group (gid {gid})",
                    spec.owner.uid
                ),
            );
        }
    }
    if cgroup {
        // Read-only: the set's processes only look at their own subtree
        // (a v1 tree would show every other user's groups).
        mount_cgroup_view(true)?;
    }
    if spec.net {
        sys::loopback_up().map_err(step_err("bring up loopback"))?;
    }
    // 4d. The set's own link, address and routes (see crate::net); if
    //     anything later fails, they go with this network namespace.
    let lease = match (&spec.private_net, &host_net) {
        (Some(p), Some(host)) => Some(crate::net::attach_private(p, host)?),
        _ => None,
    };
    drop(host_net);

    failpoint("h0-after-mounts");
    // 5. The pid namespace applies to our next child, the holder.
    unshare(CloneFlags::CLONE_NEWPID).map_err(step_err("unshare pid namespace"))?;

    // The holder's tiny program, in a sealed memfd the holder will exec.
    let holder_exe = sealed_memfd(HOLDER_ELF).map_err(step_err("prepare holder program"))?;
    // 5b. With on_logout = "kill", the channel over which the holder
    //     learns of every process that opens a session (lifetime.rs), our
    //     caller's pidfd already in it, so the set ends with its openers
    //     even if none of them ever closes its session.
    let openers = match (spec.end_with_openers, &holder_exe) {
        (true, Some(_)) => Some(lifetime::channel_with_caller()?),
        _ => None,
    };
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step_err("pipe"))?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step_err("pipe"))?;
    match sys::fork_checked().map_err(step_err("fork holder"))? {
        Forked::Child => {
            drop(ready_r);
            drop(go_w);
            holder_main(&spec.owner, ready_w, go_r, holder_exe, openers)
        }
        Forked::Parent(holder) => {
            drop(ready_w);
            drop(go_r);
            drop(holder_exe);
            drop(openers);
            failpoint("h0-after-fork");
            let result =
                finish_holder(spec, &gid_map, ready_r, go_w).map(|(ready, go)| PendingHolder {
                    pid: holder,
                    ready,
                    go,
                    unit,
                    lease,
                    unlent,
                });
            if result.is_err() {
                let _ = kill(Pid::from_raw(holder), Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(holder), None);
            }
            result
        }
    }
}

/// Writes the set's SysV IPC limits (`IpcLimits::sysctls`) into our own,
/// new, ipc namespace.
fn write_ipc_limits(ipc: &super::IpcLimits) -> Result<(), SetError> {
    let ram = crate::procfs::mem_total_bytes(Path::new(crate::paths::PROC))
        .ok_or_else(|| SetError::new("set SysV IPC limits", "no MemTotal in /proc/meminfo"))?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    let write_all = || -> Result<(), (io::Error, String)> {
        for (name, value) in ipc.sysctls(ram, page) {
            let path = Path::new("/proc/sys/kernel").join(name);
            fs::write(&path, &value)
                .map_err(|e| (e, format!("write {value:?} to {}", path.display())))?;
        }
        Ok(())
    };
    match write_all() {
        // A container (systemd-nspawn) mounts /proc/sys read-only: write
        // through a procfs of our own instead, in our own (already slave)
        // mount namespace, and take it away again at once, so the set's
        // layout is what it would have been.
        Err((e, _)) if e.raw_os_error() == Some(libc::EROFS) => {
            let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), "/proc", Some("proc"), hidden, None::<&str>)
                .map_err(step_err("mount proc to set SysV IPC limits"))?;
            let written = write_all();
            nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH)
                .map_err(step_err("unmount the proc used for SysV IPC limits"))?;
            written
                .map_err(|(e, what)| SetError::new("set SysV IPC limits", format!("{what}: {e}")))
        }
        Err((e, what)) => Err(SetError::new("set SysV IPC limits", format!("{what}: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// Mounts a fresh tmpfs on `dir`, reached through an fd opened without
/// following a symlink, each component checked (trust.rs), so root never
/// follows a path a user could have changed.
/// Mounts a cgroup2 view of the caller's cgroup namespace on
/// /sys/fs/cgroup, over whatever is there (the host's tree, v1 or v2, or
/// the view of an outer namespace). An empty tmpfs goes first: the kernel
/// refuses to stack a cgroup2 mount on the root of another mount of the
/// same hierarchy.
pub(crate) fn mount_cgroup_view(read_only: bool) -> Result<(), SetError> {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(
        Some("tmpfs"),
        "/sys/fs/cgroup",
        Some("tmpfs"),
        flags,
        Some("mode=0755,size=4k"),
    )
    .map_err(step_err("mount tmpfs on /sys/fs/cgroup"))?;
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        flags,
        None::<&str>,
    )
    .map_err(step_err("mount cgroup2 on /sys/fs/cgroup"))?;
    if read_only {
        // cgroup2 has one superblock for all its mounts, which stays
        // writable: read-only must be set on this mount itself.
        mount(
            None::<&str>,
            "/sys/fs/cgroup",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
            None::<&str>,
        )
        .map_err(step_err("make /sys/fs/cgroup read-only"))?;
    }
    Ok(())
}

fn mount_tmpfs(dir: &Path, flags: MsFlags, data: &str) -> Result<(), SetError> {
    let step = format!("mount tmpfs on {}", dir.display());
    let fd = trust::open_root_dir_path(dir).map_err(step_err(&step))?;
    mount(
        Some("tmpfs"),
        trust::fd_path(&fd).as_str(),
        Some("tmpfs"),
        flags,
        Some(data),
    )
    .map_err(step_err(&step))
}

/// H0 after the fork: waits for the holder's user namespace, writes its
/// id maps, lets it go on and waits until it is ready.
fn finish_holder(
    spec: &SetSpec,
    gid_map: &[idmap::MapLine],
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
    fs::write("/proc/1/gid_map", idmap::render(gid_map)).map_err(step_err("write gid_map"))?;
    failpoint("h0-after-maps");
    go.write_all(b"G").map_err(step_err("release holder"))?;
    read_token(&mut ready, b'R', "holder: sanitise")?;
    Ok((ready, go))
}

/// A close-on-exec memfd holding `bytes`, sealed against any change, or
/// `None` if `bytes` is empty.
fn sealed_memfd(bytes: &[u8]) -> io::Result<Option<OwnedFd>> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    if bytes.is_empty() {
        return Ok(None);
    }
    let fd = memfd_create(
        c"nsjail-holder",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(Some(file.into()))
}
