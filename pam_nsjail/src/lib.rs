//! pam_nsjail: PAM hook glue. The login decision itself is
//! `nsjail::session::login`, shared with `nsjail-helper run`; this crate
//! only reads PAM items and module data, logs through `pam_syslog`, and
//! does the child-side join. Where sshd calls each hook (DESIGN §2):
//!
//! 1. `setcred(ESTABLISH)` in sshd's privileged monitor, *before*
//!    `open_session`: we only note that the auth line is present.
//! 2. `open_session` in the monitor: `login` decides and creates or joins
//!    the user's namespace set (all config read now); we keep a pidfd.
//! 3. `setcred(ESTABLISH)` in the post-auth child (a different pid): join
//!    the set with one `setns(pidfd)`, drop to the user, clear
//!    capabilities. sshd ignores a failed setcred here (fail-open), so any
//!    failure or panic `_exit(1)`s instead of returning.
//! 4. `close_session` in the monitor: release the session.
//!
//! cron has the same shape, but its job process (where setcred runs)
//! execs the job itself: there step 3 forks into the set
//! (`nsset::fork_into_set`) and the original stays on the host as the
//! job's relay. su and runuser run no hook after open_session in the
//! session's child: there open_session itself forks into the set, the
//! child goes on in the application's code inside the set, and the
//! original relays and does step 4 once the child ended. login and atd
//! have the same shape but were measured not to work inside a set: they
//! are refused (docs/SERVICES.md). systemd's user manager opens its
//! session in the executor that then execs `systemd --user` itself: there
//! open_session forks into the set too (`nsjail::manager`), the child
//! becomes the manager, and the original stays the unit's main process.
//!
//! No panics cross the FFI boundary (pam-bindings guards every hook, and
//! the lints below forbid the obvious sources), no threads are started.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// All of this crate's own unsafe code is in `ffi`.
#![deny(unsafe_code)]

mod args;
#[allow(unsafe_code)]
mod ffi;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use pam::constants::{PamFlag, PamResultCode, PAM_DELETE_CRED};
use pam::items::Service;
use pam::module::{PamHandle, PamHooks};

use args::ModuleArgs;
use ffi::{AuthSeen, Decided, SessionData};
use nsjail::child::{self, ChildFailure};
use nsjail::log::Level;
use nsjail::nsset::{ExecHelper, Forward, Identity, SetError};
use nsjail::paths;
use nsjail::procfs;
use nsjail::registry::Registry;
use nsjail::session::{self, decision_line, App, Closed, LoginRequest, Outcome, System};

const LOG_ERR: i32 = libc::LOG_ERR;
const LOG_INFO: i32 = libc::LOG_INFO;
const LOG_DEBUG: i32 = libc::LOG_DEBUG;

fn priority(level: Level) -> i32 {
    match level {
        Level::Info => LOG_INFO,
        Level::Warning => libc::LOG_WARNING,
        Level::Err => LOG_ERR,
    }
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
        let pid = std::process::id();
        if flags & PAM_DELETE_CRED != 0 {
            return PamResultCode::PAM_IGNORE;
        }
        if let Some(data) = ffi::session_data(pamh) {
            if data.opener_pid == pid {
                return PamResultCode::PAM_IGNORE;
            }
            // We are sshd's post-auth child: join or die.
            let args = module_args(&args);
            return child_join(pamh, data, args.debug);
        }
        match ffi::auth_seen(pamh).map(|a| a.pid) {
            // The auth line is present and setcred precedes open_session,
            // as sshd does it.
            None => {
                let _ = ffi::set_auth_seen(pamh, AuthSeen { pid });
                PamResultCode::PAM_IGNORE
            }
            Some(monitor) if monitor == pid => PamResultCode::PAM_IGNORE,
            // sshd's post-auth child, but open_session placed nothing.
            Some(_) => {
                let args = module_args(&args);
                in_sshd_child(pamh, 1, |pamh| child_without_set(pamh, &args))
            }
        }
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        let args = module_args(&args);
        if ffi::session_data(pamh).is_some() {
            // A second pam_nsjail line in the same stack (Debian's su-l
            // includes su, runuser-l includes runuser): this handle's
            // session is open already, and after `fork_at_open` this may
            // be the child inside the set, where nothing is to be decided.
            return PamResultCode::PAM_IGNORE;
        }
        log_unknown_args(pamh, &args);
        if App::of_this_process(&service_name(pamh)) != App::SshdSession {
            return open_session(pamh, &args);
        }
        // OpenSSH 9.8 and later fork the session child even after a
        // failed (or aborted) open_session: here no failure and no panic
        // may return into sshd's code.
        in_sshd_child(pamh, 255, |pamh| match open_session(pamh, &args) {
            PamResultCode::PAM_SESSION_ERR => {
                ffi::syslog(
                    pamh,
                    LOG_ERR,
                    &format!(
                        "service={} action=refused note=\"sshd-session continues after a failed open_session: pam_nsjail ends this connection\"",
                        service_name(pamh)
                    ),
                );
                child::exit_now(255)
            }
            rc => rc,
        })
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        let args = module_args(&args);
        close_session(pamh, &args)
    }
}

/// Runs `hook` where sshd would go on after a failure of ours (its
/// post-auth child; the monitor of `sshd-session`): a panic in `hook`
/// never returns (pam-bindings would make it PAM_ABORT, which sshd
/// ignores there) but is logged, and the process `_exit(code)`s.
fn in_sshd_child(
    pamh: &mut PamHandle,
    code: i32,
    hook: impl FnOnce(&mut PamHandle) -> PamResultCode,
) -> PamResultCode {
    let handle = RefCell::new(pamh);
    child::survive_or_exit(
        code,
        || {
            let mut pamh = handle.borrow_mut();
            Ok::<_, Infallible>(hook(&mut pamh))
        },
        |failure| {
            let ChildFailure::Panic(message) = failure;
            // The panic's unwinding released the borrow above.
            let Ok(mut pamh) = handle.try_borrow_mut() else {
                return;
            };
            let service = service_name(&pamh);
            let name = pamh.get_user(None).unwrap_or_default();
            let line = decision_line(
                &name,
                &service,
                "-",
                "refused",
                "-",
                &format!("error=\"panic: {}\"", message.replace('"', "'")),
            );
            ffi::syslog(&pamh, LOG_ERR, &format!("{line} (session process exits)"));
        },
    )
}

/// The child side: returns only once the process is in the set as the
/// user. On any failure or panic it logs and `_exit(1)`s, because sshd
/// would run the shell unconfined after a failed setcred.
fn child_join(pamh: &PamHandle, data: &SessionData, debug: bool) -> PamResultCode {
    if data.joined.get() {
        return PamResultCode::PAM_SUCCESS;
    }
    child::survive_or_exit(
        1,
        || {
            let pidfd = take_pidfd(data)?;
            enter_limits(data, pidfd.as_fd())?;
            let join =
                || nsjail::nsset::join_and_drop(pidfd.as_fd(), data.join_flags, &data.identity);
            if !data.fork_in_child {
                return join();
            }
            // The original never returns from here: it relays until the
            // job ended and leaves as it did (the opener closes the
            // session).
            nsjail::nsset::fork_into_set(pidfd.as_fd(), join, |ended| {
                if let Some(why) = &ended.join_error {
                    log_join_failure(pamh, data, why);
                }
            })
        },
        |failure| {
            let e = match failure {
                ChildFailure::Error(e) => e,
                ChildFailure::Panic(m) => SetError::new("join", format!("panic: {m}")),
            };
            log_join_failure(pamh, data, &e);
        },
    );
    data.joined.set(true);
    if debug {
        ffi::syslog(
            pamh,
            LOG_DEBUG,
            &format!(
                "user={} joined set={} in pid {}",
                data.user,
                data.key,
                std::process::id()
            ),
        );
    }
    PamResultCode::PAM_SUCCESS
}

/// Moves this process under the user's limits, when the policy sets any
/// (as root in the host namespaces, before anything of the user's runs).
fn enter_limits(data: &SessionData, pidfd: BorrowedFd<'_>) -> Result<(), SetError> {
    match &data.limits_helper {
        Some(helper) => {
            nsjail::limits::enter_limits(helper, data.holder_pid, pidfd, data.identity.uid, true)
        }
        None => Ok(()),
    }
}

/// The session's process could not enter the set, and exits.
fn log_join_failure(pamh: &PamHandle, data: &SessionData, e: &SetError) {
    log_refused(pamh, data, &data.key, e, " (session process exits)");
}

/// The refusal line for a session `open_session` had placed (`set`: its
/// key, or "-" once undone).
fn log_refused(pamh: &PamHandle, data: &SessionData, set: &str, e: &SetError, tail: &str) {
    let detail = format!(
        "step=\"{}\" error=\"{}\"{tail}",
        e.step,
        e.cause.replace('"', "'")
    );
    let line = decision_line(
        &data.user,
        &data.service,
        &data.policy,
        "refused",
        set,
        &detail,
    );
    ffi::syslog(pamh, LOG_ERR, &line);
}

/// The set's handle open_session left for the one process that joins.
fn take_pidfd(data: &SessionData) -> Result<std::os::fd::OwnedFd, SetError> {
    data.pidfd
        .take()
        .ok_or_else(|| SetError::new("join", "no namespace set handle (pidfd) from open_session"))
}

/// su and runuser (`App::Forking`), at the end of a successful
/// open_session: forks into the set. Returns in the child, which goes on
/// in the application's code inside the set as root of the set's user
/// namespace only; the original relays until that child ended, closes
/// the session on the host and exits as the child did. Nothing forked:
/// the session is undone and refused.
fn fork_at_open(pamh: &PamHandle, args: &ModuleArgs) -> PamResultCode {
    let Some(data) = ffi::session_data(pamh) else {
        return PamResultCode::PAM_SESSION_ERR;
    };
    let forked = (|| {
        let pidfd = take_pidfd(data)?;
        enter_limits(data, pidfd.as_fd())?;
        nsjail::nsset::fork_into_set(
            pidfd.as_fd(),
            || nsjail::nsset::join_keeping_root(pidfd.as_fd(), data.join_flags),
            |ended| {
                if let Some(why) = &ended.join_error {
                    log_join_failure(pamh, data, why);
                }
                let _ = close_registered(pamh, data, args);
            },
        )
    })();
    // Later hooks in this process (a setcred after open_session) have
    // nothing left to do.
    forked_at_open(pamh, data, forked)
}

/// After `fork_into_set` at open_session: in the child (`Ok`), the
/// session is in the set and this process never joins or closes again
/// (the original does, on the host); nothing forked (`Err`): the session
/// is undone and refused.
fn forked_at_open(
    pamh: &PamHandle,
    data: &SessionData,
    forked: Result<(), SetError>,
) -> PamResultCode {
    match forked {
        Ok(()) => {
            data.joined.set(true);
            PamResultCode::PAM_SUCCESS
        }
        Err(e) => {
            if let Ok(reg) = Registry::open(Path::new(paths::REGISTRY)) {
                let _ = session::close(&reg, data.identity.uid, &data.key, data.opener_pid as i32);
            }
            log_refused(pamh, data, "-", &e, "");
            PamResultCode::PAM_SESSION_ERR
        }
    }
}

/// sshd's post-auth child when open_session left no set to join. OpenSSH
/// 9.8 and later fork this child even after a failed open_session, so
/// this is the last barrier: the session goes on only where open_session
/// decided the user is not isolated, or, where it never ran this module
/// at all, where the policy leaves the user on the host.
fn child_without_set(pamh: &mut PamHandle, args: &ModuleArgs) -> PamResultCode {
    let refusal = match ffi::decided(pamh) {
        Some(Decided::NotIsolated) => return PamResultCode::PAM_IGNORE,
        Some(Decided::Refused(line)) => line.clone(),
        None => {
            let service = service_name(pamh);
            let sys = system(args);
            let name = session::canonical_name(&sys, &pamh.get_user(None).unwrap_or_default());
            let Some(opener) = procfs::proc_id(Path::new(paths::PROC), std::process::id() as i32)
            else {
                child::exit_now(1)
            };
            let req = login_request(&name, &service, args, true, opener);
            match session::refusal_without_session(&sys, &req) {
                None => return PamResultCode::PAM_IGNORE,
                Some(error) => decision_line(
                    &name,
                    &service,
                    "-",
                    "refused",
                    "-",
                    &format!("error=\"{}\"", error.replace('"', "'")),
                ),
            }
        }
    };
    ffi::syslog(pamh, LOG_ERR, &format!("{refusal} (session process exits)"));
    child::exit_now(1)
}

/// The system the module's logins run against. Sub-ids that come from
/// libsubid are asked through the helper: libsubid and its plugins are
/// never loaded into the login process.
fn system(args: &ModuleArgs) -> System {
    nsjail::subid::ask_libsubid_through(&args.helper);
    System::new(&args.config, ExecHelper::new(&args.helper))
}

/// This login, as `session::login` wants it.
fn login_request<'a>(
    name: &'a str,
    service: &'a str,
    args: &ModuleArgs,
    auth_line_seen: bool,
    opener: nsjail::procfs::ProcId,
) -> LoginRequest<'a> {
    LoginRequest {
        user: name,
        service,
        app: App::of_this_process(service),
        on_error: args.on_error,
        auth_line_seen,
        opener,
    }
}

fn service_name(pamh: &PamHandle) -> String {
    match pamh.get_item::<Service>() {
        Ok(Some(s)) => s.to_string_lossy().into_owned(),
        _ => "?".to_owned(),
    }
}

fn open_session(pamh: &mut PamHandle, args: &ModuleArgs) -> PamResultCode {
    let service = service_name(pamh);
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
    let sys = system(args);
    let name = session::canonical_name(&sys, &name);
    let pid = std::process::id();
    let refusal = |detail: &str| decision_line(&name, &service, "-", "refused", "-", detail);
    let Some(opener) = procfs::proc_id(Path::new(paths::PROC), pid as i32) else {
        ffi::syslog(
            pamh,
            LOG_ERR,
            &refusal("error=\"cannot read own /proc entry\""),
        );
        return PamResultCode::PAM_SESSION_ERR;
    };
    let auth_line_seen = ffi::auth_seen(pamh).is_some_and(|a| a.pid == pid);
    let req = login_request(&name, &service, args, auth_line_seen, opener);
    let outcome = session::login(&sys, &req);
    let (level, line) = outcome.log_line(&req, args.debug);
    let Outcome::Placed(placement) = outcome else {
        ffi::syslog(pamh, priority(level), &line);
        if !matches!(outcome, Outcome::Refused { .. }) {
            let _ = ffi::set_decided(pamh, Decided::NotIsolated);
            return PamResultCode::PAM_IGNORE;
        }
        if req.app == App::SshdSession {
            // OpenSSH 9.8 and later go on after a failed open_session,
            // and without the auth line nothing of ours runs in the
            // session's child: end the connection here, as sshd 9.2
            // does itself.
            ffi::syslog(
                pamh,
                LOG_ERR,
                &refusal("note=\"sshd-session continues after a failed open_session: pam_nsjail ends this connection\""),
            );
            child::exit_now(255);
        }
        let _ = ffi::set_decided(pamh, Decided::Refused(line));
        return PamResultCode::PAM_SESSION_ERR;
    };
    let placed = *placement;
    let opened = placed.opened;
    let manager = matches!(req.app, App::UserManager(_));
    // The login's pty, which this process allocates later, must come from
    // the set's own devpts so its name means the same inside the set.
    // (The user manager allocates none.)
    if manager {
    } else if let Err(e) = nsjail::nsset::adopt_set_ptys(opened.holder.pidfd.as_fd()) {
        ffi::syslog(
            pamh,
            priority(Level::Warning),
            &decision_line(
                &name,
                &service,
                &placed.policy,
                "warning",
                &opened.key,
                &format!("error=\"login ptys stay on the host's devpts, where the set cannot name them (tty, screen fail): {e}\""),
            ),
        );
    }
    let data = SessionData {
        opener_pid: pid,
        key: opened.key.clone(),
        user: placed.user.name.clone(),
        service: service.clone(),
        policy: placed.policy.clone(),
        identity: Identity {
            uid: placed.user.uid,
            gid: placed.user.gid,
            gids: placed.user.all_gids(),
        },
        join_flags: opened.join_flags,
        net_detail: opened
            .lease
            .as_ref()
            .map(|l| format!(" addr={} link={}", l.addr, l.ifname))
            .unwrap_or_default(),
        holder_pid: opened.holder.id.pid,
        limits_helper: opened.limited.then(|| args.helper.clone()),
        fork_in_child: req.app == App::Cron,
        pidfd: Cell::new(Some(opened.holder.pidfd)),
        joined: Cell::new(false),
    };
    let h0 = opened.h0;
    if let Err(e) = ffi::set_session_data(pamh, data) {
        // Without the data the child could not join: undo and refuse.
        if let Ok(reg) = Registry::open(Path::new(paths::REGISTRY)) {
            let _ = session::close(&reg, placed.user.uid, &opened.key, pid as i32);
        }
        ffi::syslog(
            pamh,
            LOG_ERR,
            &decision_line(
                &name,
                &service,
                &placed.policy,
                "refused",
                "-",
                &format!("error=\"pam_set_data: {e:?}\""),
            ),
        );
        return PamResultCode::PAM_SESSION_ERR;
    }
    ffi::syslog(pamh, priority(level), &line);
    // Reap the process that built a new set only now, off the login's
    // critical path.
    drop(h0);
    if manager {
        return split_user_manager(pamh, args);
    }
    if matches!(req.app, App::Forking(_)) {
        return fork_at_open(pamh, args);
    }
    PamResultCode::PAM_SUCCESS
}

/// The user manager's executor, after its session was placed: the process
/// splits (`nsjail::manager`). Returns only in the child that becomes
/// `systemd --user` inside the set, or, before anything was started, with
/// a refusal; the original stays on the host until the manager has ended,
/// closes the session there and exits as the manager did.
fn split_user_manager(pamh: &PamHandle, args: &ModuleArgs) -> PamResultCode {
    let Some(data) = ffi::session_data(pamh) else {
        return PamResultCode::PAM_SESSION_ERR;
    };
    let forked = take_pidfd(data).and_then(|pidfd| {
        nsjail::nsset::fork_into_set_with(
            pidfd.as_fd(),
            Forward::All,
            || nsjail::manager::join(pidfd.as_fd(), data.join_flags, &data.identity),
            |ended| {
                if let Some(why) = &ended.join_error {
                    log_refused(pamh, data, &data.key, why, " (the user manager exits)");
                }
                if args.debug {
                    ffi::syslog(
                        pamh,
                        LOG_DEBUG,
                        &format!("user manager ended: {:?}", ended.status),
                    );
                }
                let _ = close_registered(pamh, data, args);
            },
        )
    });
    // The manager, in the set: never join again, never close.
    forked_at_open(pamh, data, forked)
}

fn close_session(pamh: &PamHandle, args: &ModuleArgs) -> PamResultCode {
    let Some(data) = ffi::session_data(pamh) else {
        return PamResultCode::PAM_IGNORE;
    };
    // `joined`: a process that joined the set (sshd's child, the user
    // manager), whose pid in the set may equal the opener's on the host.
    if data.opener_pid != std::process::id() || data.joined.get() {
        return PamResultCode::PAM_IGNORE;
    }
    close_registered(pamh, data, args)
}

/// Releases the session in the registry and logs the closing line (the
/// opener's close_session; the relay of `fork_at_open`).
fn close_registered(pamh: &PamHandle, data: &SessionData, args: &ModuleArgs) -> PamResultCode {
    let line = |action: &str, detail: &str| {
        decision_line(
            &data.user,
            &data.service,
            &data.policy,
            action,
            &data.key,
            &format!("{detail}{}", data.net_detail),
        )
    };
    let reg = match Registry::open(Path::new(paths::REGISTRY)) {
        Ok(r) => r,
        Err(e) => {
            ffi::syslog(
                pamh,
                LOG_ERR,
                &line(
                    "close-failed",
                    &format!("error=\"{}: {e}\"", paths::REGISTRY),
                ),
            );
            return PamResultCode::PAM_SESSION_ERR;
        }
    };
    match session::close(&reg, data.identity.uid, &data.key, data.opener_pid as i32) {
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
            &format!("close_session done in pid {}", std::process::id()),
        );
    }
    PamResultCode::PAM_SUCCESS
}
