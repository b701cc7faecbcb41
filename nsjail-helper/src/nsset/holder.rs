//! The holder: pid 1 of a set's pid namespace, forked by H0. It mounts
//! the set's /proc and mqueue, enters the new user namespace, sheds every
//! privilege and inherited attachment, and becomes the ~1 kB freestanding
//! holder program (holder/holder.rs), which reaps orphans until killed.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::{failpoint, lifetime, Identity, SetError};
use crate::sys;

/// Reads the holder's one-byte answer `want`; anything else is the
/// holder's error text (`E…`) or its death (EOF).
pub(super) fn read_token(pipe: &mut File, want: u8, step: &str) -> Result<(), SetError> {
    let mut buf = [0u8; 256];
    let n = pipe.read(&mut buf).map_err(|e| SetError::new(step, e))?;
    match buf.get(..n).unwrap_or_default() {
        [b] if *b == want => Ok(()),
        [] => Err(SetError::new(step, "holder exited")),
        msg => Err(SetError::new(
            step,
            String::from_utf8_lossy(msg.get(1..).unwrap_or_default()),
        )),
    }
}

/// Where the holder program finds the ready pipe, which it closes once it
/// has named itself (holder/holder.rs).
const NAMED_FD: std::os::fd::RawFd = 5;

/// The holder, forked by H0. Never returns.
pub(super) fn holder_main(
    owner: &Identity,
    ready_w: OwnedFd,
    go_r: OwnedFd,
    holder_exe: Option<OwnedFd>,
    openers: Option<(OwnedFd, OwnedFd)>,
) -> ! {
    let mut ready = File::from(ready_w);
    let mut go = File::from(go_r);
    let fail = |ready: &mut File, what: &str, e: io::Error| -> ! {
        let _ = ready.write_all(format!("E{what}: {e}").as_bytes());
        sys::exit_now(1)
    };
    // Until H0 has handed us to a caller that holds a pidfd for us, we
    // die with H0: a helper killed half-way must not leave an unreachable
    // set. (Had H0 died before this line, the read of "G" below sees EOF.)
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err() {
        sys::exit_now(1);
    }
    // a. A procfs for the new pid namespace, and an mqueue fs for the new
    //    ipc namespace; both made before the user namespace, so locked.
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(e) = mount(Some("proc"), "/proc", Some("proc"), hidden, None::<&str>) {
        fail(&mut ready, "mount /proc", e.into());
    }
    failpoint("holder-after-proc");
    if fs::symlink_metadata("/dev/mqueue")
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        if let Err(e) = mount(
            Some("mqueue"),
            "/dev/mqueue",
            Some("mqueue"),
            hidden,
            None::<&str>,
        ) {
            fail(&mut ready, "mount /dev/mqueue", e.into());
        }
    }
    // b. Shed what we inherited from the first login while we still have
    //    host privileges: its audit loginuid, its session keyring, and the
    //    signal dispositions H0 set for itself.
    let _ = fs::write("/proc/self/loginuid", "4294967295");
    let _ = sys::join_new_session_keyring();
    sys::reset_signal_dispositions();
    // c. Become the set's owner, so that the user namespace made next is
    //    the user's: the kernel then charges it, and every namespace,
    //    inotify instance, mqueue byte or pending signal made inside it,
    //    to the user's own counters, not to root's, which every isolated
    //    user and root's services share (DESIGN §2c). H0, still root,
    //    writes the full id maps. The mounts made above stay locked.
    if let Err(e) = become_owner(owner) {
        fail(&mut ready, "take the owner's ids", e);
    }
    // d. The user namespace together with a new mount namespace: the copy
    //    of every mount above is now locked.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        fail(&mut ready, "unshare user+mount namespaces", e.into());
    }
    failpoint("holder-after-userns");
    if ready.write_all(b"U").is_err() {
        sys::exit_now(1);
    }
    let mut buf = [0u8; 1];
    if !matches!(go.read(&mut buf), Ok(1)) {
        sys::exit_now(1);
    }
    // e. No capabilities at all and no way to regain any; every signal
    //    blocked (taken synchronously by the reaper loop).
    if let Err(e) = drop_all_capabilities() {
        fail(&mut ready, "drop capabilities", e);
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        fail(&mut ready, "set no_new_privs", e.into());
    }
    if let Err(e) = nix::sys::signal::SigSet::all().thread_block() {
        fail(&mut ready, "block signals", e.into());
    }
    let _ = std::env::set_current_dir("/");
    // The holder outlives everyone who might read its stdio (H0's pipes,
    // the caller's stderr): point all three at /dev/null.
    if let Err(e) = stdio_to_dev_null() {
        fail(&mut ready, "redirect stdio", e);
    }
    let _ = ready.write_all(b"R");
    // Wait until H0 knows a caller holds us, then stop dying with H0.
    if !matches!(go.read(&mut buf), Ok(1)) || buf[0] != b'D' {
        sys::exit_now(1);
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(None) {
        fail(&mut ready, "clear parent-death signal", e.into());
    }
    failpoint("holder-before-exec");
    let _ = ready.write_all(b"X");
    drop(go);
    // f. Become the ~1 kB holder program: a forked copy of this process
    //    would keep every page H0 touched (~500 kB PSS per set). Where
    //    there is no such program, hold in this image: bigger, but just as
    //    correct.
    //    It gets `ready` at NAMED_FD and closes it once it has named
    //    itself, so H0 (`disarm`) returns only when `ps` shows the set's
    //    pid 1 as nsjail-holder, never as the exec's fd number. With
    //    on_logout = "kill", it also gets the openers' channel at the fd
    //    numbers it expects (lifetime.rs).
    let holder_exe = match holder_exe {
        Some(exe) => {
            let mut place = vec![(OwnedFd::from(ready), NAMED_FD)];
            if let Some((receive, send)) = openers {
                place.push((receive, lifetime::RECEIVE_FD));
                place.push((send, lifetime::SEND_FD));
            }
            Some(sys::place_fds_for_exec(exe, place).unwrap_or_else(|_| sys::exit_now(1)))
        }
        None => {
            drop(ready);
            None
        }
    };
    if let Some(exe) = holder_exe {
        let no_env: [&std::ffi::CStr; 0] = [];
        let _ = nix::unistd::execveat(
            &exe,
            c"",
            &[c"nsjail-holder"],
            &no_env,
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        );
    }
    sys::hold_forever()
}

/// Takes `owner`'s groups, gid and uid (real, effective and saved), then
/// re-arms the parent-death signal, which the kernel clears on a change of
/// credentials. (Had H0 died in between, the next read of its pipe sees
/// EOF and the holder exits: nothing is orphaned.)
fn become_owner(owner: &Identity) -> io::Result<()> {
    use nix::unistd::{Gid, Uid};
    let gids: Vec<Gid> = owner.gids.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&gids)?;
    let (uid, gid) = (Uid::from_raw(owner.uid), Gid::from_raw(owner.gid));
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    Ok(())
}

/// Points stdin, stdout and stderr at /dev/null.
fn stdio_to_dev_null() -> io::Result<()> {
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Clears the bounding, inheritable, ambient, permitted and effective
/// capability sets of the calling process, and makes sure the kernel
/// knows no capability this build could not have dropped.
pub fn drop_all_capabilities() -> io::Result<()> {
    let to_io = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    let known = caps::all().len();
    let kernel_last: usize = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if kernel_last >= known {
        return Err(io::Error::other(format!(
            "the kernel knows {} capabilities, this build only {known}",
            kernel_last + 1
        )));
    }
    for set in [
        caps::CapSet::Bounding,
        caps::CapSet::Ambient,
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(to_io)?;
    }
    Ok(())
}
