//! pam_nsjail: PAM hook glue. Where sshd calls each hook (DESIGN §2):
//!
//! 1. `setcred(ESTABLISH)` in sshd's privileged monitor, *before*
//!    `open_session`: we only note that the auth line is present.
//! 2. `open_session` in the monitor: decide policy, create or join the
//!    user's namespace set (all config read now), keep a pidfd for it.
//! 3. `setcred(ESTABLISH)` in the post-auth child (a different pid): join
//!    the set with one `setns(pidfd)`, drop to the user, clear
//!    capabilities. sshd ignores a failed setcred here (fail-open), so any
//!    failure `_exit(1)`s instead of returning.
//! 4. `close_session` in the monitor: release the session.
//!
//! No panics cross the FFI boundary (pam-bindings guards every hook, and
//! the lints below forbid the obvious sources), no threads are started.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod args;
mod ffi;

use std::cell::Cell;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use pam::constants::{PamFlag, PamResultCode, PAM_DELETE_CRED};
use pam::items::Service;
use pam::module::{PamHandle, PamHooks};

use args::{ModuleArgs, OnError};
use nsjail::policy;
use nsjail::procfs;
use nsjail::registry::{self, Registry, DEFAULT_ROOT};
use nsjail::session::{self, decision_line, Closed, OpenRequest};
use nsjail::sys;
use nsjail::user::{self, UserInfo};

const LOG_ERR: i32 = libc::LOG_ERR;
const LOG_INFO: i32 = libc::LOG_INFO;
const LOG_DEBUG: i32 = libc::LOG_DEBUG;

/// PAM data keys; each key always holds the same type.
mod keys {
    /// `AuthSeen`: setcred ran in this process before open_session.
    pub const AUTH: &str = "pam_nsjail.auth";
    /// `SessionData`: open_session placed this login in a set.
    pub const SESSION: &str = "pam_nsjail.session";
}

struct AuthSeen {
    pid: i32,
}

/// What open_session prepared for the child's join and for close_session.
struct SessionData {
    opener_pid: i32,
    key: String,
    user: String,
    service: String,
    policy: String,
    uid: u32,
    gid: u32,
    gids: Vec<u32>,
    join_flags: libc::c_int,
    pidfd: Cell<Option<OwnedFd>>,
    joined: Cell<bool>,
}

struct PamNsjail;
pam::pam_hooks!(PamNsjail);

fn module_args(args: &[&CStr]) -> ModuleArgs {
    ModuleArgs::parse(args.iter().filter_map(|a| a.to_str().ok()))
}

fn log_unknown_args(pamh: &PamHandle, args: &ModuleArgs) {
    for arg in &args.unknown {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &format!("unknown or malformed module argument '{arg}' ignored"),
        );
    }
}

impl PamHooks for PamNsjail {
    fn sm_authenticate(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_IGNORE
    }

    fn sm_setcred(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let pid = sys::getpid();
        if let Some(data) = ffi::get_data::<SessionData>(pamh, keys::SESSION) {
            if data.opener_pid == pid || flags & PAM_DELETE_CRED != 0 {
                return PamResultCode::PAM_IGNORE;
            }
            // We are sshd's post-auth child: join or die.
            let args = module_args(&args);
            return child_join(pamh, data, args.debug);
        }
        if flags & PAM_DELETE_CRED == 0 {
            // The auth line is present and setcred precedes open_session,
            // as sshd does it.
            let _ = pamh.set_data(keys::AUTH, Box::new(AuthSeen { pid }));
        }
        PamResultCode::PAM_IGNORE
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        let args = module_args(&args);
        log_unknown_args(pamh, &args);
        open_session(pamh, &args)
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        let args = module_args(&args);
        close_session(pamh, &args)
    }
}

/// The child side: never returns an error, because sshd would run the
/// shell unconfined after a failed setcred.
fn child_join(pamh: &PamHandle, data: &SessionData, debug: bool) -> PamResultCode {
    if data.joined.get() {
        return PamResultCode::PAM_SUCCESS;
    }
    let die = |step: &str, cause: &dyn std::fmt::Display| -> ! {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &decision_line(
                &data.user,
                &data.service,
                &data.policy,
                "refused",
                &data.key,
                &format!("step=\"{step}\" error=\"{cause}\" (session process exits)"),
            ),
        );
        sys::exit_now(1)
    };
    let Some(pidfd) = data.pidfd.take() else {
        die("join", &"no namespace set handle (pidfd) from open_session")
    };
    // The supplementary groups must be the user's before we leave the host
    // namespaces: never carry root's groups into the session.
    if let Err(e) = sys::setgroups(&data.gids) {
        die("setgroups", &e);
    }
    if let Err(e) = nsjail::nsset::join_and_drop(pidfd.as_fd(), data.join_flags, data.uid, data.gid)
    {
        die(&e.step, &e.cause);
    }
    drop(pidfd);
    data.joined.set(true);
    if debug {
        ffi::syslog(
            pamh,
            LOG_DEBUG,
            &format!(
                "user={} joined set={} in pid {}",
                data.user,
                data.key,
                sys::getpid()
            ),
        );
    }
    PamResultCode::PAM_SUCCESS
}

/// Which kind of PAM application called us, from its executable.
#[derive(Debug, PartialEq, Eq)]
enum App {
    /// OpenSSH's sshd: the only application whose session child calls
    /// pam_setcred, so the only one we can place in a set.
    Sshd,
    /// pamtester: opens and closes sessions in one process and runs
    /// nothing; sets are created and released for testing.
    Pamtester,
    Other(String),
}

fn calling_app() -> App {
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    match exe.file_name().and_then(|n| n.to_str()) {
        Some("sshd") => App::Sshd,
        Some("pamtester") => App::Pamtester,
        _ => App::Other(exe.display().to_string()),
    }
}

fn open_session(pamh: &mut PamHandle, args: &ModuleArgs) -> PamResultCode {
    let service = match pamh.get_item::<Service>() {
        Ok(Some(s)) => s.to_string_lossy().into_owned(),
        _ => "?".to_owned(),
    };
    let name = match pamh.get_user(None) {
        Ok(n) => n,
        Err(e) => {
            ffi::syslog(
                pamh,
                LOG_ERR,
                &format!("service={service} action=refused error=\"cannot get user name: {e:?}\""),
            );
            return PamResultCode::PAM_SESSION_ERR;
        }
    };
    let line = |policy: &str, action: &str, set: &str, detail: &str| {
        decision_line(&name, &service, policy, action, set, detail)
    };
    let user = match user::lookup_user(&name) {
        Ok(u) => u,
        Err(e) => {
            ffi::syslog(
                pamh,
                LOG_ERR,
                &line("-", "refused", "-", &format!("error=\"{e}\"")),
            );
            return PamResultCode::PAM_SESSION_ERR;
        }
    };
    if user.uid == 0 {
        ffi::syslog(
            pamh,
            LOG_INFO,
            &line(
                "-",
                "exempt",
                "-",
                "reason=\"root (uid 0) is never isolated\"",
            ),
        );
        return PamResultCode::PAM_IGNORE;
    }
    let config = match policy::load_with_text(&args.config) {
        Ok((c, text)) => {
            registry::remember_valid_policy(Path::new(DEFAULT_ROOT), &text);
            c
        }
        Err(e) => return policy_error(pamh, args, &user, &service, &e.to_string()),
    };
    let decision = config.decide(&user, &service);
    let Some(settings) = decision.settings.as_ref() else {
        ffi::syslog(
            pamh,
            LOG_INFO,
            &line(
                &decision.policy,
                "exempt",
                "-",
                &format!("reason=\"{}\"", decision.reason),
            ),
        );
        return PamResultCode::PAM_IGNORE;
    };
    let refuse = |pamh: &PamHandle, detail: String| {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &line(&decision.policy, "refused", "-", &detail),
        );
        PamResultCode::PAM_SESSION_ERR
    };
    let app = calling_app();
    match &app {
        App::Sshd => {
            let auth_seen =
                ffi::get_data::<AuthSeen>(pamh, keys::AUTH).is_some_and(|a| a.pid == sys::getpid());
            if !auth_seen {
                return refuse(
                    pamh,
                    "error=\"the auth line 'auth optional pam_nsjail.so' is missing from the PAM stack (use '@include nsjail', which has both lines); without it the session cannot be isolated\"".into(),
                );
            }
        }
        App::Pamtester => {}
        App::Other(exe) => {
            return refuse(
                pamh,
                format!("error=\"{exe} cannot place sessions in a namespace set (only sshd is supported); refusing isolated user\""),
            );
        }
    }
    if sys::geteuid() != 0 {
        return refuse(
            pamh,
            "error=\"pam_nsjail must run as root to isolate a session\"".into(),
        );
    }
    let reg = match Registry::open(Path::new(DEFAULT_ROOT)) {
        Ok(r) => r,
        Err(e) => return refuse(pamh, format!("step=registry error=\"{DEFAULT_ROOT}: {e}\"")),
    };
    let Some(opener) = procfs::proc_id(Path::new("/proc"), sys::getpid()) else {
        return refuse(pamh, "error=\"cannot read own /proc entry\"".into());
    };
    let opened = match session::open(
        &reg,
        &OpenRequest {
            user: &user,
            policy: &decision.policy,
            settings,
            etc: Path::new("/etc"),
            creator: nsjail::nsset::Creator::Exec(&args.helper),
            opener,
        },
    ) {
        Ok(o) => o,
        Err(e) => return refuse(pamh, format!("error=\"{e}\"")),
    };
    let action = if opened.created { "isolated" } else { "joined" };
    let data = SessionData {
        opener_pid: opener.pid,
        key: opened.key.clone(),
        user: user.name.clone(),
        service: service.clone(),
        policy: decision.policy.clone(),
        uid: user.uid,
        gid: user.gid,
        gids: user.all_gids(),
        join_flags: opened.join_flags,
        pidfd: Cell::new(Some(opened.holder.pidfd)),
        joined: Cell::new(false),
    };
    if let Err(e) = pamh.set_data(keys::SESSION, Box::new(data)) {
        // Without the data the child could not join: undo and refuse.
        let _ = session::close(&reg, user.uid, &opened.key, opener.pid);
        return refuse(pamh, format!("error=\"pam_set_data: {e:?}\""));
    }
    let mut detail = format!("holder={}", opened.holder.id.pid);
    if args.debug {
        detail.push_str(&format!(" reason=\"{}\"", decision.reason));
    }
    if app == App::Pamtester {
        detail.push_str(" note=\"pamtester: set opened and released, nothing runs in it\"");
    }
    ffi::syslog(
        pamh,
        LOG_INFO,
        &line(&decision.policy, action, &opened.key, &detail),
    );
    PamResultCode::PAM_SUCCESS
}

/// The policy could not be loaded. Users the last valid policy exempted
/// still get in; everyone else is refused unless `on_error=allow`.
fn policy_error(
    pamh: &PamHandle,
    args: &ModuleArgs,
    user: &UserInfo,
    service: &str,
    err: &str,
) -> PamResultCode {
    let err = err.replace('\n', "; ").replace('"', "'");
    let last =
        registry::last_valid_policy(Path::new(DEFAULT_ROOT)).map(|c| c.decide(user, service));
    if let Some(d) = last.as_ref().filter(|d| d.settings.is_none()) {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &decision_line(
                &user.name,
                service,
                &d.policy,
                "exempt",
                "-",
                &format!("error=\"policy {} is invalid: {err}\" reason=\"exempt under the last valid policy\"", args.config.display()),
            ),
        );
        return PamResultCode::PAM_IGNORE;
    }
    if args.on_error == OnError::Allow {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &decision_line(
                &user.name,
                service,
                "-",
                "unconfined",
                "-",
                &format!(
                    "error=\"policy {} is invalid: {err}\" reason=\"on_error=allow\"",
                    args.config.display()
                ),
            ),
        );
        return PamResultCode::PAM_IGNORE;
    }
    ffi::syslog(
        pamh,
        LOG_ERR,
        &decision_line(
            &user.name,
            service,
            "-",
            "refused",
            "-",
            &format!(
                "error=\"policy {} is invalid: {err}\" reason=\"on_error=deny\"",
                args.config.display()
            ),
        ),
    );
    PamResultCode::PAM_SESSION_ERR
}

fn close_session(pamh: &mut PamHandle, args: &ModuleArgs) -> PamResultCode {
    let Some(data) = ffi::get_data::<SessionData>(pamh, keys::SESSION) else {
        return PamResultCode::PAM_IGNORE;
    };
    if data.opener_pid != sys::getpid() {
        return PamResultCode::PAM_IGNORE;
    }
    let line = |action: &str, detail: &str| {
        decision_line(
            &data.user,
            &data.service,
            &data.policy,
            action,
            &data.key,
            detail,
        )
    };
    let reg = match Registry::open(Path::new(DEFAULT_ROOT)) {
        Ok(r) => r,
        Err(e) => {
            ffi::syslog(
                pamh,
                LOG_ERR,
                &line("close-failed", &format!("error=\"{DEFAULT_ROOT}: {e}\"")),
            );
            return PamResultCode::PAM_SESSION_ERR;
        }
    };
    match session::close(&reg, data.uid, &data.key, data.opener_pid) {
        Ok(Closed::Ended) => ffi::syslog(pamh, LOG_INFO, &line("closed", "set_ended=yes")),
        Ok(Closed::Kept { sessions }) => ffi::syslog(
            pamh,
            LOG_INFO,
            &line("closed", &format!("set_ended=no sessions_left={sessions}")),
        ),
        Ok(Closed::Gone) => ffi::syslog(pamh, LOG_INFO, &line("closed", "set_ended=already")),
        Err(e) => {
            ffi::syslog(
                pamh,
                LOG_ERR,
                &line("close-failed", &format!("error=\"{e}\"")),
            );
            return PamResultCode::PAM_SESSION_ERR;
        }
    }
    if args.debug {
        ffi::syslog(
            pamh,
            LOG_DEBUG,
            &format!("close_session done in pid {}", sys::getpid()),
        );
    }
    PamResultCode::PAM_SUCCESS
}
