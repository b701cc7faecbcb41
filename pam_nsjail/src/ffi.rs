//! The module's only `unsafe` code: `pam_syslog` and typed access to PAM
//! module data.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use pam::module::PamHandle;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// Logs `msg` through `pam_syslog` (facility authpriv, prefixed by PAM with
/// `pam_nsjail(SERVICE:TYPE):`), always with a constant "%s" format.
pub fn syslog(pamh: &PamHandle, priority: c_int, msg: &str) {
    let Ok(msg) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: `pamh` is the live handle PAM passed to this hook; the format
    // is a constant "%s" and its one argument a NUL-terminated string.
    unsafe { pam_syslog(pamh, priority, c"%s".as_ptr(), msg.as_ptr()) };
}

/// Reads module data stored by `set_data::<T>` under `key`.
pub fn get_data<'a, T>(pamh: &'a PamHandle, key: &str) -> Option<&'a T> {
    // SAFETY: this module only ever stores values of one type per key
    // (see `keys` in lib.rs), so the type read back is the type stored.
    unsafe { pamh.get_data::<T>(key) }.ok()
}
