//! The namespace-set holder: pid 1 of a set's pid namespace. It blocks
//! every signal and reaps orphans until it is killed (SIGKILL from the
//! host ends the set). Built without std or libc as a static binary of a
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
const SIG_SETMASK: usize = 2;
const WNOHANG: usize = 1;
const SIGSET_BYTES: usize = 8;

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
    let name = b"nsjail-holder\0";
    // SAFETY: `all` is a valid 8-byte signal set and `name` a NUL-terminated
    // string, both outliving every call.
    unsafe {
        // Named for ps and pgrep (a memfd exec would show "memfd:...").
        syscall4(SYS_PRCTL, PR_SET_NAME, name.as_ptr() as usize, 0, 0);
        syscall4(SYS_RT_SIGPROCMASK, SIG_SETMASK, &all as *const u64 as usize, 0, SIGSET_BYTES);
        loop {
            while syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {}
            syscall4(SYS_RT_SIGTIMEDWAIT, &all as *const u64 as usize, 0, 0, SIGSET_BYTES);
        }
    }
}
