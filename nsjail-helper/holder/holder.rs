//! The namespace-set holder: pid 1 of a set's pid namespace. It blocks
//! every signal, takes them synchronously and reaps orphans until it is
//! killed: SIGKILL from the host, or a SIGTERM from outside its pid
//! namespace (`loginctl kill-user`, systemd stopping its scope), ends the
//! set. A SIGTERM from inside the set (its sender has a pid here) is
//! ignored like every other signal, and so is a forged one: only a signal
//! the kernel itself describes (`kill()`: SI_USER, or SI_KERNEL) counts,
//! because `rt_sigqueueinfo` lets any process choose si_pid = 0 as long
//! as its si_code is negative (SI_QUEUE and the like).
//!
//! With `on_logout = "kill"` it is started with fd 3, a unix socket on
//! which root hands it a pidfd of every process that opens a session in
//! the set (src/nsset/lifetime.rs; the first is queued before it starts),
//! and it also exits once every one of those processes has exited: the
//! set ends with its last login even if that login never closed. Built without std or libc as a static binary of a
//! few kB, so each live set costs only a few kB of memory.
#![no_std]
#![no_main]

use core::arch::asm;

const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_WAIT4: usize = 61;
const SYS_EXIT: usize = 60;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_PRCTL: usize = 157;
const PR_SET_NAME: usize = 15;
const PR_SET_DUMPABLE: usize = 4;
const SIG_SETMASK: usize = 2;
const WNOHANG: usize = 1;
const SIGSET_BYTES: usize = 8;
const SIGTERM: i32 = 15;
/// From outside (like SIGTERM): stop watching the openers and hold until
/// `close` or `stop` ends the set. Root sends it when it could not hand
/// a joining login's opener over (src/session/mod.rs).
const SIGUSR1: i32 = 10;
const SYS_CLOSE: usize = 3;
const SYS_POLL: usize = 7;
const SYS_RECVMSG: usize = 47;
const SYS_FCNTL: usize = 72;
const SYS_SIGNALFD4: usize = 289;
const F_GETFD: usize = 1;
const SFD_CLOEXEC: usize = 0o2000000;
const MSG_DONTWAIT: usize = 0x40;
const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;
const SOL_SOCKET: u32 = 1;
const SCM_RIGHTS: u32 = 1;
/// The ready pipe to H0, closed once the holder has its name.
const NAMED_FD: usize = 5;
/// Where the openers' pidfds arrive (src/nsset/lifetime.rs).
const OPENERS_FD: usize = 3;
/// Openers tracked at once; past that, the set no longer ends by itself
/// (only by `close`, as without the channel).
const MAX_OPENERS: usize = 1024;
/// struct pollfd: fd, then events and revents (i16 each) in one i32.
/// [0] the signalfd, [1] the openers' socket, [2..] the openers.
static mut POLLFDS: [[i32; 2]; MAX_OPENERS + 2] = [[0; 2]; MAX_OPENERS + 2];
/// struct msghdr (7 words), iovec (2), a 1-byte payload and a control
/// buffer for one fd (CMSG_SPACE(4) = 24 bytes).
static mut MSGHDR: [usize; 7] = [0; 7];
static mut IOV: [usize; 2] = [0; 2];
static mut PAYLOAD: [u8; 8] = [0; 8];
static mut CMSG: [u32; 6] = [0; 6];
/// A zero timeout for rt_sigtimedwait: take a pending signal, never wait.
static ZERO_TIMEOUT: [i64; 2] = [0, 0];
/// si_code of a signal sent with kill(2) (or pidfd_send_signal without
/// info) and of one the kernel raises itself. The kernel refuses both
/// values (any si_code >= 0) in rt_sigqueueinfo to another process.
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
/// `siginfo_t` on x86_64: 128 bytes; si_signo at 0, si_code at 8, si_pid
/// (for signals sent by a process) at 16. In .bss, not on the stack: `_start`
/// is entered with the stack 16-byte aligned, not as a called function
/// expects, so the compiler's aligned stores to a stack buffer would fault.
static mut SIGINFO: [i32; 32] = [0; 32];

/// # Safety
/// Raw system call; arguments must be valid for call number `n`.
unsafe fn syscall4(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux syscall ABI; rcx and r11 are clobbered.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        // SAFETY: exit takes an integer status.
        unsafe { syscall4(SYS_EXIT, 1, 0, 0, 0) };
    }
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let all: u64 = !0;
    let info = &raw mut SIGINFO;
    let name = b"nsjail-holder\0";
    // SAFETY: `all` is a valid 8-byte signal set, `info` a writable
    // siginfo_t-sized buffer only this single thread touches, and `name` a
    // NUL-terminated string, all outliving every call.
    unsafe {
        // Named for ps and pgrep (a memfd exec would show "memfd:...").
        syscall4(SYS_PRCTL, PR_SET_NAME, name.as_ptr() as usize, 0, 0);
        // Named: H0, waiting for the end of this pipe, may let the set's
        // first login go on (src/nsset/holder.rs).
        syscall4(SYS_CLOSE, NAMED_FD, 0, 0, 0);
        // Not dumpable: the processes of the set, which run as the same
        // user, cannot ptrace their pid 1 (they hold no capability in the
        // set's user namespace).
        syscall4(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0);
        syscall4(SYS_RT_SIGPROCMASK, SIG_SETMASK, &all as *const u64 as usize, 0, SIGSET_BYTES);
        if syscall4(SYS_FCNTL, OPENERS_FD, F_GETFD, 0, 0) >= 0 {
            hold_while_openers_live(&all, info);
        }
        loop {
            while syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {}
            take_signal(&all, info, 0);
        }
    }
}

/// Waits for the next signal (at most `timeout`, a timespec, if not 0),
/// takes it and exits if it ends the set; returns the signal, or a
/// negative errno if none came.
///
/// # Safety
/// `all` and `info` as in `_start`; `timeout` 0 or a valid timespec.
unsafe fn take_signal(all: &u64, info: *mut [i32; 32], timeout: usize) -> isize {
    // SAFETY: as documented for the caller.
    unsafe {
        let sig = syscall4(
            SYS_RT_SIGTIMEDWAIT,
            all as *const u64 as usize,
            info as usize,
            timeout,
            SIGSET_BYTES,
        );
        // A sender outside our pid namespace has no pid here: 0; and
        // only kill() or the kernel, whose si_code no process can forge,
        // says so truthfully.
        let code = core::ptr::read_volatile(&raw const (*info)[2]);
        let pid = core::ptr::read_volatile(&raw const (*info)[4]);
        if sig == SIGTERM as isize && pid == 0 && (code == SI_USER || code == SI_KERNEL) {
            syscall4(SYS_EXIT, 0, 0, 0, 0);
        }
        sig
    }
}

/// Receives one pidfd from the openers' socket: the fd, -1 for a message
/// without one, or a negative errno (-11, EAGAIN: none left).
///
/// # Safety
/// Single-threaded; uses the static message buffers.
unsafe fn receive_opener() -> isize {
    // SAFETY: the statics are only touched by this single thread, and
    // every pointer handed to the kernel points into them.
    unsafe {
        let msg = &raw mut MSGHDR;
        let iov = &raw mut IOV;
        let cmsg = &raw mut CMSG;
        (*iov)[0] = &raw mut PAYLOAD as usize;
        (*iov)[1] = 8;
        *cmsg = [0; 6];
        *msg = [0, 0, iov as usize, 1, cmsg as usize, 24, 0];
        let n = syscall4(SYS_RECVMSG, OPENERS_FD, msg as usize, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, 0);
        if n < 0 {
            return n;
        }
        // cmsghdr: cmsg_len (u64), cmsg_level, cmsg_type, then the fd.
        let c = core::ptr::read_volatile(cmsg);
        if (*msg)[5] >= 20 && c[0] == 20 && c[2] == SOL_SOCKET && c[3] == SCM_RIGHTS {
            return c[4] as isize;
        }
        -1
    }
}

/// The set's life with `on_logout = "kill"`: signals and orphans as
/// always, plus the openers' pidfds; exits when the last opener has
/// exited (the kernel then ends every process in the set). Returns only
/// if the openers can no longer be watched, and the caller then holds as
/// without them (the set ends by `close` or `stop`).
///
/// # Safety
/// As `take_signal`; single-threaded.
unsafe fn hold_while_openers_live(all: &u64, info: *mut [i32; 32]) {
    // SAFETY: POLLFDS is only touched by this single thread; every call
    // gets valid pointers and lengths into it or into `all`.
    unsafe {
        let fds = &raw mut POLLFDS;
        let sigfd = syscall4(SYS_SIGNALFD4, usize::MAX, all as *const u64 as usize, SIGSET_BYTES, SFD_CLOEXEC);
        if sigfd < 0 {
            return;
        }
        // events = POLLIN (1) in the low half of the second word.
        (*fds)[0] = [sigfd as i32, 1];
        (*fds)[1] = [OPENERS_FD as i32, 1];
        let mut live = 0usize;
        let mut overflow = false;
        loop {
            while syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {}
            loop {
                let sig = take_signal(all, info, ZERO_TIMEOUT.as_ptr() as usize);
                if sig <= 0 {
                    break;
                }
                let code = core::ptr::read_volatile(&raw const (*info)[2]);
                let pid = core::ptr::read_volatile(&raw const (*info)[4]);
                if sig == SIGUSR1 as isize && pid == 0 && (code == SI_USER || code == SI_KERNEL) {
                    // A login holds the set that we could not be told
                    // of: ending with the openers we know could end it
                    // under that login. Hold as without the channel.
                    return;
                }
            }
            loop {
                let fd = receive_opener();
                if fd == -1 {
                    continue;
                }
                if fd < 0 {
                    break;
                }
                if live < MAX_OPENERS {
                    *(*fds).get_unchecked_mut(2 + live) = [fd as i32, 1];
                    live += 1;
                } else {
                    syscall4(SYS_CLOSE, fd as usize, 0, 0, 0);
                    overflow = true;
                }
            }
            if live == 0 && !overflow {
                // Every process that opened a session here has exited.
                syscall4(SYS_EXIT, 0, 0, 0, 0);
            }
            // Indices below are always < 2 + live <= MAX_OPENERS + 2
            // (unchecked: a bounds check would pull in panic machinery).
            let mut i = 0;
            while i < 2 + live {
                (*fds).get_unchecked_mut(i)[1] = 1;
                i += 1;
            }
            if syscall4(SYS_POLL, fds as usize, 2 + live, usize::MAX, 0) < 0 {
                continue;
            }
            let mut i = 2;
            while i < 2 + live {
                // Any event on a pidfd (readable, hung up) means its
                // process has ended.
                let slot = *(*fds).get_unchecked(i);
                if slot[1] >> 16 != 0 {
                    syscall4(SYS_CLOSE, slot[0] as usize, 0, 0, 0);
                    *(*fds).get_unchecked_mut(i) = *(*fds).get_unchecked(1 + live);
                    live -= 1;
                } else {
                    i += 1;
                }
            }
        }
    }
}
