//! The module's only `unsafe` code: `pam_syslog`, and PAM module data,
//! which PAM hands back untyped: each key below is only ever stored and
//! read as its one type.

use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::raw::{c_char, c_int};

use nsjail::nsset::Identity;
use pam::constants::PamResultCode;
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

/// Stored under `AUTH_KEY`: setcred ran in this process before
/// open_session (the auth line is present, in sshd's order).
pub struct AuthSeen {
    pub pid: u32,
}

/// Stored under `SESSION_KEY`: what open_session prepared for the child's
/// join and for close_session.
pub struct SessionData {
    pub opener_pid: u32,
    pub key: String,
    pub user: String,
    pub service: String,
    pub policy: String,
    pub identity: Identity,
    pub join_flags: libc::c_int,
    pub pidfd: Cell<Option<OwnedFd>>,
    pub joined: Cell<bool>,
    /// ` addr=A link=L` for a set with a private network (else empty),
    /// for the closing line.
    pub net_detail: String,
    /// The set's holder (behind `pidfd`) and, when the policy sets
    /// resource limits, the helper that moves the child under them.
    pub holder_pid: i32,
    pub limits_helper: Option<std::path::PathBuf>,
    /// cron: the process that calls setcred after open_session then execs
    /// the job itself, so the join forks there (`nsset::fork_into_set`).
    pub fork_in_child: bool,
}

/// Stored under `DECIDED_KEY` when open_session placed nothing: what the
/// session's child may do.
pub enum Decided {
    /// Root, exempt, or let in by `on_error=allow`: runs on the host.
    NotIsolated,
    /// Refused; the decision line to log again where the child exits.
    Refused(String),
}

const AUTH_KEY: &str = "pam_nsjail.auth";
const SESSION_KEY: &str = "pam_nsjail.session";
const DECIDED_KEY: &str = "pam_nsjail.decided";

pub fn set_auth_seen(pamh: &mut PamHandle, data: AuthSeen) -> Result<(), PamResultCode> {
    pamh.set_data(AUTH_KEY, Box::new(data))
}

pub fn auth_seen(pamh: &PamHandle) -> Option<&AuthSeen> {
    // SAFETY: AUTH_KEY is only ever stored by `set_auth_seen`, as AuthSeen.
    unsafe { pamh.get_data::<AuthSeen>(AUTH_KEY) }.ok()
}

pub fn set_session_data(pamh: &mut PamHandle, data: SessionData) -> Result<(), PamResultCode> {
    pamh.set_data(SESSION_KEY, Box::new(data))
}

pub fn session_data(pamh: &PamHandle) -> Option<&SessionData> {
    // SAFETY: SESSION_KEY is only ever stored by `set_session_data`, as
    // SessionData.
    unsafe { pamh.get_data::<SessionData>(SESSION_KEY) }.ok()
}

pub fn set_decided(pamh: &mut PamHandle, data: Decided) -> Result<(), PamResultCode> {
    pamh.set_data(DECIDED_KEY, Box::new(data))
}

pub fn decided(pamh: &PamHandle) -> Option<&Decided> {
    // SAFETY: DECIDED_KEY is only ever stored by `set_decided`, as Decided.
    unsafe { pamh.get_data::<Decided>(DECIDED_KEY) }.ok()
}
