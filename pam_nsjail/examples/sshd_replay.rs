//! Replays the exact PAM call sequence of OpenSSH's sshd (DESIGN §2) and
//! times the module's part of it, for benchmarks and tests:
//!
//!   monitor: pam_start → pam_setcred(ESTABLISH) → pam_open_session → fork
//!   child:   setgid, initgroups, pam_setcred(ESTABLISH) (the join),
//!            setuid, fork+exec CMD, wait
//!   monitor: wait → pam_close_session → pam_end
//!
//! pam_nsjail only isolates sessions of sshd (the one application whose
//! session child calls pam_setcred), recognised by its executable name, so
//! benchmarks run a copy of this program named `sshd`.
//!
//! usage: sshd SERVICE USER [CMD...]
//! prints: `open_us=N join_us=N close_us=N status=N` on stderr.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::time::Instant;

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *const *const c_void, *mut *mut c_void, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_setcred(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

const PAM_ESTABLISH_CRED: c_int = 0x2;
const PAM_CONV_ERR: c_int = 19;

extern "C" fn no_conversation(
    _: c_int,
    _: *const *const c_void,
    _: *mut *mut c_void,
    _: *mut c_void,
) -> c_int {
    PAM_CONV_ERR
}

fn die(msg: &str) -> ! {
    eprintln!("sshd_replay: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        die("usage: sshd SERVICE USER [CMD...]");
    }
    let service = CString::new(args[1].as_str()).unwrap_or_else(|_| die("bad service"));
    let user = CString::new(args[2].as_str()).unwrap_or_else(|_| die("bad user"));
    let cmd: Vec<CString> = args[3..]
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_else(|_| die("bad argument")))
        .collect();
    let pw = nix::unistd::User::from_name(&args[2])
        .ok()
        .flatten()
        .unwrap_or_else(|| die("unknown user"));
    let conv = PamConv {
        conv: no_conversation,
        appdata: std::ptr::null_mut(),
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    // SAFETY: all pointers are valid C strings / out-pointers for the call.
    let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    if rc != 0 {
        die(&format!("pam_start: {rc}"));
    }
    // SAFETY: pamh is the live handle from pam_start.
    unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
    let t = Instant::now();
    // SAFETY: as above.
    let rc = unsafe { pam_open_session(pamh, 0) };
    let open_us = t.elapsed().as_micros();
    if rc != 0 {
        eprintln!("open_us={open_us} open_session=failed rc={rc}");
        // SAFETY: as above.
        unsafe { pam_end(pamh, rc) };
        std::process::exit(1);
    }
    let (rd, wr) = nix::unistd::pipe().unwrap_or_else(|_| die("pipe"));
    // SAFETY: this program is single-threaded.
    match unsafe { nix::unistd::fork() }.unwrap_or_else(|_| die("fork")) {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let name = CStr::from_bytes_with_nul(user.as_bytes_with_nul()).unwrap_or(c"");
            if nix::unistd::setgid(pw.gid).is_err()
                || nix::unistd::initgroups(name, pw.gid).is_err()
            {
                std::process::exit(120);
            }
            let t = Instant::now();
            // SAFETY: the child's copy of the live handle.
            let rc = unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
            let join_us = t.elapsed().as_micros();
            if rc != 0 && rc != 25 {
                std::process::exit(121);
            }
            let _ = nix::unistd::write(&wr, format!("{join_us}").as_bytes());
            drop(wr);
            if nix::unistd::setuid(pw.uid).is_err() {
                std::process::exit(122);
            }
            if cmd.is_empty() {
                std::process::exit(0);
            }
            // Like sshd, the command is a child of the session process: it
            // is the first process that is in the set's pid namespace.
            // SAFETY: single-threaded.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    let _ = nix::unistd::execvp(&cmd[0], &cmd);
                    std::process::exit(127);
                }
                Ok(nix::unistd::ForkResult::Parent { child }) => {
                    match nix::sys::wait::waitpid(child, None) {
                        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => std::process::exit(code),
                        _ => std::process::exit(125),
                    }
                }
                Err(_) => std::process::exit(124),
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut buf = [0u8; 32];
            let n = nix::unistd::read(&rd, &mut buf).unwrap_or(0);
            let join_us = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
                _ => 126,
            };
            let t = Instant::now();
            // SAFETY: the monitor's live handle.
            unsafe { pam_close_session(pamh, 0) };
            let close_us = t.elapsed().as_micros();
            // SAFETY: as above; the handle is not used afterwards.
            unsafe { pam_end(pamh, 0) };
            eprintln!("open_us={open_us} join_us={join_us} close_us={close_us} status={status}");
            std::process::exit(status);
        }
    }
}
