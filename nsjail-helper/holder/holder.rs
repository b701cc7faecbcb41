//! The namespace-set holder: pid 1 of a set's pid namespace. It blocks
//! every signal, takes them synchronously and reaps orphans until it is
//! killed: SIGKILL from the host, or a SIGTERM from outside its pid
//! namespace (`loginctl kill-user`, systemd stopping its scope), ends the
//! set. A SIGTERM from inside the set (its sender has a pid here) is
//! ignored like every other signal, and so is a forged one: only a signal
//! the kernel itself describes (`kill()`: SI_USER, or SI_KERNEL) counts,
//! because `rt_sigqueueinfo` lets any process choose si_pid = 0 as long
//! as its si_code is negative (SI_QUEUE and the like). Built without std or libc as a static binary of a
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
        // Not dumpable: the processes of the set, which run as the same
        // user, cannot ptrace their pid 1 (they hold no capability in the
        // set's user namespace).
        syscall4(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0);
        syscall4(SYS_RT_SIGPROCMASK, SIG_SETMASK, &all as *const u64 as usize, 0, SIGSET_BYTES);
        loop {
            while syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {}
            let sig = syscall4(
                SYS_RT_SIGTIMEDWAIT,
                &all as *const u64 as usize,
                info as usize,
                0,
                SIGSET_BYTES,
            );
            // A sender outside our pid namespace has no pid here: 0; and
            // only kill() or the kernel, whose si_code no process can
            // forge, says so truthfully.
            let code = core::ptr::read_volatile(&raw const (*info)[2]);
            let pid = core::ptr::read_volatile(&raw const (*info)[4]);
            if sig == SIGTERM as isize && pid == 0 && (code == SI_USER || code == SI_KERNEL) {
                syscall4(SYS_EXIT, 0, 0, 0, 0);
            }
        }
    }
}
