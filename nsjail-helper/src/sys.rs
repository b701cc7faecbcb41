//! The library's only `unsafe` code: the few system calls that neither
//! `std`, `nix` (without features that add dependencies) nor `caps` wrap
//! (pidfds, `close_range`, keyrings, an AF_UNIX connect and its peer
//! credentials, the namespace and terminal ioctls, `_exit`, resetting
//! signal dispositions), and `fork`, which is only offered behind a
//! single-thread check.
//!
//! Private to the crate. Every block says why it is sound; every wrapper
//! turns a `-1` into `io::Error::last_os_error()` via `cerr`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::SigSet;

/// Converts a C-style `-1`-on-error return into an `io::Result`.
fn cerr<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `_exit(2)`: leaves at once, without atexit handlers, destructors or
/// unwinding. The only way out of a forked child, so that nothing the
/// parent owns (a lock, a buffered writer) is released or flushed twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// `pidfd_open(2)`: an fd that refers to one process for as long as it is
/// open, immune to pid reuse. Close-on-exec by default.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cerr(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached copy of the mount at
/// `path` (not recursive), close-on-exec, which `move_mount_here` can
/// attach in another mount namespace.
pub fn open_tree_clone(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
    let fd =
        cerr(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `move_mount(2)`: attaches the detached mount `tree` on `to`.
pub fn move_mount_here(tree: BorrowedFd<'_>, to: &std::ffi::CStr) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: both strings are valid and NUL-terminated for the call.
    cerr(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `mount_setattr(2)` on the detached mount `tree` alone: read-only,
/// nodev, and ids shown through the id maps of the user namespace
/// `userns` (an idmapped mount).
pub fn make_idmapped_readonly(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    /// `struct mount_attr` of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the path is a valid empty string, `attr` a live struct of
    // the size passed, both for the call's duration.
    cerr(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `pidfd_send_signal(2)`: signals exactly the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo pointer is documented as valid.
    cerr(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Marks every fd from `first` upwards close-on-exec. Unlike closing, this
/// cannot invalidate an fd some object still owns.
pub fn cloexec_fds_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: setting FD_CLOEXEC closes nothing now; plain syscall.
    cerr(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

/// Joins a fresh anonymous session keyring, so a long-lived process does
/// not pin the keyring of the login that created it.
pub fn join_new_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks the kernel for a new anonymous keyring.
    cerr(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    })?;
    Ok(())
}

/// Resets every signal's disposition to the default. `exec` keeps ignored
/// signals ignored, and a helper started by sshd with SIGCHLD ignored would
/// have its children reaped by the kernel behind its back.
pub fn reset_signal_dispositions() {
    // The kernel's struct sigaction: handler (0 = SIG_DFL), flags,
    // restorer, mask. The raw call, because glibc refuses the real-time
    // signals it reserves for itself (32, 33), which a caller may still
    // have set to "ignore".
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code; `dfl` is a valid,
        // zeroed kernel sigaction and the old action is not asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
}

/// Ignores SIGPIPE (after `reset_signal_dispositions`), so writing to a
/// closed pipe or socket is an `EPIPE` error.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Makes every mount of the caller's (new, private) mount namespace a
/// slave of its original: nothing mounted here reaches the namespace it
/// was copied from, while mounts made there still arrive.
pub fn make_mounts_slaves() -> nix::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: creating a socket has no memory-safety preconditions.
    let sock =
        cerr(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: the kernel just gave us this fd.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills in the ifreq we own.
    cerr(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the kernel initialised the flags member of the union above.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    cerr(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

const NSIO: u64 = 0xb7;
/// `_IO(NSIO, n)`.
const fn ns_ioctl(n: u64) -> u64 {
    (NSIO << 8) | n
}

/// `ioctl(NS_GET_PARENT)`: the parent of a pid or user namespace, or an
/// error at the top (or outside the caller's view).
pub fn ns_parent(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new fd.
    let fd = cerr(unsafe { libc::ioctl(ns.as_raw_fd(), ns_ioctl(2) as _) })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(NS_GET_OWNER_UID)`: the uid (in the caller's user namespace)
/// that created the user namespace `ns`.
pub fn ns_owner_uid(ns: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer.
    cerr(unsafe { libc::ioctl(ns.as_raw_fd(), ns_ioctl(4) as _, &mut uid) })?;
    Ok(uid)
}

/// `ioctl(TIOCSCTTY)`: makes the terminal `fd` the controlling terminal of
/// the calling session leader.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    cerr(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    Ok(())
}

/// The window size of terminal `fd`.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data; all-zero is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills in the winsize we own.
    cerr(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

/// Sets the window size of terminal `fd`.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads the winsize we own.
    cerr(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) })?;
    Ok(())
}

/// The holder loop for targets without the freestanding holder program:
/// closes every fd but stdio, blocks every signal and reaps orphans until
/// killed (or sent SIGTERM from outside its pid namespace). Signals are
/// taken synchronously, so SIGCHLD is never missed.
pub fn hold_forever() -> ! {
    // SAFETY: this function never returns or unwinds, so no object that
    // owns one of these fds anywhere up the stack can use or close it
    // again.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0) };
    let all = SigSet::all();
    let _ = all.thread_set_mask();
    loop {
        while nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            .is_ok_and(|s| s != nix::sys::wait::WaitStatus::StillAlive)
        {}
        // SAFETY: siginfo_t is plain data; sigwaitinfo fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `all` is a valid signal set and `info` writable.
        let sig = unsafe { libc::sigwaitinfo(all.as_ref(), &mut info) };
        // A sender outside our pid namespace has no pid here: 0; only a
        // kill() (SI_USER) or the kernel (SI_KERNEL) is believed, since
        // rt_sigqueueinfo lets anyone forge si_pid with a negative si_code
        // (as in holder/holder.rs).
        // SAFETY: for a signal a process sent, si_pid is the field set.
        let pid = unsafe { info.si_pid() };
        if sig == libc::SIGTERM && pid == 0 && is_from_kill_or_kernel(info.si_code) {
            exit_now(0);
        }
    }
}

/// `pidfd_getfd(2)`: a copy of the fd numbered `target` in the process
/// behind `pidfd` (needs ptrace access to it). Close-on-exec.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cerr(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into the array we own.
    cerr(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: the kernel just returned these fds; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether `fd` is a unix-domain seqpacket socket.
pub fn is_unix_seqpacket(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let get = |opt: libc::c_int| -> io::Result<libc::c_int> {
        let mut val: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `val`.
        cerr(unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        })?;
        Ok(val)
    };
    Ok(get(libc::SO_TYPE)? == libc::SOCK_SEQPACKET && get(libc::SO_DOMAIN)? == libc::AF_UNIX)
}

/// Sends one byte and a copy of `fd` (SCM_RIGHTS) on socket `sock`,
/// without blocking and without SIGPIPE.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let payload = [b'p'];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // Room for one cmsghdr and one int, aligned as cmsghdr needs.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space.min(std::mem::size_of_val(&control));
    // SAFETY: msg_control points at `control`, large enough for one
    // header and one int (CMSG_SPACE(4) = 24 <= 32), so CMSG_FIRSTHDR is
    // non-null and its data lies within `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    // SAFETY: every pointer in `msg` points at locals that outlive the call.
    cerr(unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(())
}

/// A non-blocking, close-on-exec AF_UNIX stream socket (nix offers
/// sockets only with a feature that adds a dependency).
pub fn unix_stream_socket_nonblocking() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cerr(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `connect(2)` of an AF_UNIX socket to the filesystem path `path`.
pub fn unix_connect(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    // Room for the terminating NUL, which the zeroed buffer provides.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is an initialised sockaddr_un of `len` bytes that
    // outlives the call; `fd` is a valid open socket.
    cerr(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len,
        )
    })?;
    Ok(())
}

/// Right before an exec: makes each `(fd, number)` of `place` available
/// to the new program as inheritable fd `number`. `exe`, the program to
/// execute through, is first moved out of the way (to 10 or above) and
/// returned; every other fd stays as it was (close-on-exec).
pub fn place_fds_for_exec(exe: OwnedFd, place: Vec<(OwnedFd, RawFd)>) -> io::Result<OwnedFd> {
    let high = |fd: OwnedFd| -> io::Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd that nothing else owns.
        let new = cerr(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) })?;
        // SAFETY: as above.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    // Every original is closed before any target number is taken, so no
    // owner closes a placed fd later.
    let exe = high(exe)?;
    let moved = place
        .into_iter()
        .map(|(fd, n)| high(fd).map(|h| (h, n)))
        .collect::<io::Result<Vec<_>>>()?;
    for (fd, n) in &moved {
        // SAFETY: `n` is not owned by any object of ours (every fd we own
        // was moved to 10 or above); dup2 leaves the copy inheritable.
        cerr(unsafe { libc::dup2(fd.as_raw_fd(), *n) })?;
    }
    Ok(exe)
}

/// The uid of the process that created the peer socket of the connected
/// AF_UNIX socket `fd` (`SO_PEERCRED`: fixed at connect()/listen() time,
/// not forgeable by the peer).
pub fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred of `len` bytes, as SO_PEERCRED
    // expects; `fd` is a valid open socket.
    cerr(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast::<libc::c_void>(),
            &mut len,
        )
    })?;
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("SO_PEERCRED: short answer"));
    }
    Ok(cred.uid)
}

/// True for a signal's si_code that no process can forge when it signals
/// another: kill(2)'s SI_USER and the kernel's SI_KERNEL (rt_sigqueueinfo
/// refuses every si_code >= 0 unless a process signals itself).
pub fn is_from_kill_or_kernel(si_code: libc::c_int) -> bool {
    si_code == libc::SI_USER || si_code == libc::SI_KERNEL
}

/// Result of `fork_checked`.
pub enum Forked {
    Parent(i32),
    Child,
}

/// `fork(2)`, refused unless the caller is single-threaded, which makes it
/// sound: a child of a multi-threaded process may inherit locks (malloc's,
/// stdio's) held by threads that no longer exist.
pub fn fork_checked() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    // Unit tests fork from the multi-threaded test harness on purpose
    // (their children only allocate, which glibc keeps fork-safe).
    if threads != 1 && !cfg!(test) {
        return Err(io::Error::other(format!(
            "refusing to fork a process with {threads} threads"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above, and only
    // this thread could start another).
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
    }
}

// ---- libsubid, loaded at run time ---------------------------------------------

/// `struct subid_range` of shadow's `<shadow/subid.h>` (ABI 4 and 5).
#[repr(C)]
struct SubidRange {
    start: libc::c_ulong,
    count: libc::c_ulong,
}

type SubidInit = unsafe extern "C" fn(*const libc::c_char, *mut libc::FILE) -> bool;
type SubidGetRanges =
    unsafe extern "C" fn(*const libc::c_char, *mut *mut SubidRange) -> libc::c_int;
type SubidFree = unsafe extern "C" fn(*mut libc::c_void);

/// The last `dlerror()` text, or `what` if there is none.
fn dl_error(what: &str) -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by
    // libc, valid until the next dl* call on this thread; copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        what.to_owned()
    } else {
        // SAFETY: non-NULL, NUL-terminated (see above).
        unsafe { std::ffi::CStr::from_ptr(e) }
            .to_string_lossy()
            .into_owned()
    }
}

/// `dlopen(name)`, or dlerror's text.
fn dl_open(name: &str, flags: libc::c_int) -> Result<*mut libc::c_void, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("invalid library name {name:?}"))?;
    // SAFETY: a valid C string; dlopen has no other precondition. The
    // library's constructors run, as for any program that links it.
    let handle = unsafe { libc::dlopen(c.as_ptr(), flags) };
    if handle.is_null() {
        Err(dl_error(&format!("{name}: cannot be loaded")))
    } else {
        Ok(handle)
    }
}

/// `dlsym(handle, name)` (NULL if absent).
fn dl_sym(handle: *mut libc::c_void, name: &std::ffi::CStr) -> *mut libc::c_void {
    // SAFETY: `handle` came from a successful dlopen and is never closed.
    unsafe { libc::dlsym(handle, name.as_ptr()) }
}

/// Whether the shared library `name` can be loaded (found and its
/// dependencies resolved); dlerror's text if not. Closed again after.
pub fn library_loads(name: &str) -> Result<(), String> {
    let handle = dl_open(name, libc::RTLD_LAZY | libc::RTLD_LOCAL)?;
    // SAFETY: the handle came from dlopen and is not used after.
    unsafe { libc::dlclose(handle) };
    Ok(())
}

/// shadow's libsubid (`libsubid.so.5`, else `libsubid.so.4`), loaded once
/// and never unloaded (it registers an atexit handler). Only the
/// helper loads it: the PAM module asks `nsjail-helper __subids`.
pub struct Libsubid {
    /// The soname that loaded.
    pub soname: &'static str,
    get_uid: SubidGetRanges,
    get_gid: SubidGetRanges,
    /// ABI 5's `subid_free`; ABI 4 arrays are plain malloc'd memory.
    free: Option<SubidFree>,
}

impl Libsubid {
    pub fn load() -> Result<Libsubid, String> {
        let mut errors = Vec::new();
        for soname in ["libsubid.so.5", "libsubid.so.4"] {
            match dl_open(soname, libc::RTLD_NOW | libc::RTLD_LOCAL) {
                Ok(handle) => return Self::bind(soname, handle),
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    fn bind(soname: &'static str, handle: *mut libc::c_void) -> Result<Libsubid, String> {
        let need = |name: &std::ffi::CStr| {
            let p = dl_sym(handle, name);
            if p.is_null() {
                Err(format!("{soname} has no {}", name.to_string_lossy()))
            } else {
                Ok(p)
            }
        };
        let init = need(c"subid_init")?;
        let get_uid = need(c"subid_get_uid_ranges")?;
        let get_gid = need(c"subid_get_gid_ranges")?;
        let free = dl_sym(handle, c"subid_free");
        // SAFETY: the symbols are shadow's public API with exactly these
        // signatures in ABI 4 and 5 (lib/subid.h.in: bool subid_init(const
        // char *, FILE *); int subid_get_{u,g}id_ranges(const char *,
        // struct subid_range **); void subid_free(void *), ABI 5 only).
        let (init, get_uid, get_gid, free) = unsafe {
            (
                std::mem::transmute::<*mut libc::c_void, SubidInit>(init),
                std::mem::transmute::<*mut libc::c_void, SubidGetRanges>(get_uid),
                std::mem::transmute::<*mut libc::c_void, SubidGetRanges>(get_gid),
                (!free.is_null())
                    .then(|| std::mem::transmute::<*mut libc::c_void, SubidFree>(free)),
            )
        };
        // SAFETY: a static C string; a NULL log stream makes libsubid log
        // to /dev/null (without init, ABI 4 would write to a NULL FILE).
        unsafe { init(c"nsjail-helper".as_ptr(), std::ptr::null_mut()) };
        Ok(Libsubid {
            soname,
            get_uid,
            get_gid,
            free,
        })
    }

    /// `owner`'s ranges (`uid`: subuid, else subgid) as (start, count), in
    /// libsubid's order.
    pub fn ranges(&self, uid: bool, owner: &str) -> Result<Vec<(u64, u64)>, String> {
        let c =
            std::ffi::CString::new(owner).map_err(|_| format!("invalid user name {owner:?}"))?;
        let get = if uid { self.get_uid } else { self.get_gid };
        let mut ranges: *mut SubidRange = std::ptr::null_mut();
        // SAFETY: a valid C string and a valid out-pointer; on success
        // libsubid points `ranges` at `n` elements it allocated.
        let n = unsafe { get(c.as_ptr(), &mut ranges) };
        let out = if n < 0 {
            Err(format!("{} returned an error ({n})", self.soname))
        } else if n > 0 && ranges.is_null() {
            Err(format!("{} returned {n} ranges and no array", self.soname))
        } else {
            Ok((0..n as usize)
                .map(|i| {
                    // SAFETY: i < n elements (checked non-NULL above).
                    let r = unsafe { &*ranges.add(i) };
                    // c_ulong is u32 on 32-bit targets.
                    #[allow(clippy::useless_conversion)]
                    (u64::from(r.start), u64::from(r.count))
                })
                .collect())
        };
        if !ranges.is_null() {
            match self.free {
                // SAFETY: the array libsubid allocated, freed once, by
                // ABI 5's subid_free.
                Some(free) => unsafe { free(ranges.cast()) },
                // SAFETY: ABI 4 hands out memory malloc'd from this
                // process's libc; freed once.
                None => unsafe { libc::free(ranges.cast()) },
            }
        }
        out
    }
}

/// Sets `sig`'s disposition to the default (`SIG_DFL`).
pub fn default_disposition(sig: i32) {
    // SAFETY: SIG_DFL installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Dies of `sig`, as a process that passes on how its child ended does:
/// default disposition, unblocked, no core file; `_exit(128 + sig)` if
/// the signal does not kill.
pub fn die_of_signal(sig: i32) -> ! {
    default_disposition(sig);
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit struct, read during the call only.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
        let mut set = SigSet::empty();
        set.add(s);
        let _ = set.thread_unblock();
        let _ = nix::sys::signal::raise(s);
    }
    exit_now(128 + sig)
}

/// The audit architecture of this build, for a seccomp filter.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Installs a seccomp filter under which `setgroups(2)` of this build's
/// architecture returns success without doing anything; every other call
/// is allowed. For a process inside a set, whose user namespace denies
/// setgroups for good (its groups are fixed at entry): see
/// `manager.rs` for why and what it changes. Needs CAP_SYS_ADMIN in the
/// caller's user namespace or no_new_privs; inherited by every child and
/// kept across exec.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn setgroups_noop_filter() -> io::Result<()> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // struct seccomp_data: nr at 0, arch at 4.
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(LD_W_ABS, 4),
        jump(AUDIT_ARCH, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0),
        jump(libc::SYS_setgroups as u32, 0, 1),
        // errno 0: the call "succeeds" without running.
        stmt(RET_K, libc::SECCOMP_RET_ERRNO),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `filter`, both alive for the call; the
    // kernel copies the program.
    cerr(unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    })?;
    Ok(())
}
