//! The one login flow. The PAM module's `open_session` and
//! `nsjail-helper run` both call `login`, so `run` decides exactly as a
//! login will: look the user up, load the policy (falling back to the last
//! valid one when the file is broken), decide, check that the calling
//! application can place a session in a set, and create or join the set.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{open, OpenRequest, Opened};
use crate::limits::Limits;
use crate::log::Level;
use crate::nsset::{ExecHelper, SetCreator, UnitPlacement};
use crate::paths;
use crate::policy::{self, Config, Decision, LoadError, MatchReason};
use crate::procfs::ProcId;
use crate::registry::Registry;
use crate::user::{self, UserError, UserInfo};

/// What to do when the policy cannot be read or is invalid (module
/// argument `on_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Refuse every non-root login that is isolated or whose status is
    /// unknown (the default).
    Deny,
    /// Let such logins in unconfined, with a LOG_ERR line.
    Allow,
}

/// The program that asked for a session, which decides whether a session
/// can be placed in a set at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// OpenSSH's sshd up to 9.7: its post-auth child calls `pam_setcred`,
    /// where the session joins the set; a failed `pam_open_session` ends
    /// the connection.
    Sshd,
    /// OpenSSH 9.8 and later run each connection in `sshd-session`, with
    /// the same two-phase PAM sequence, but go on after a failed
    /// `pam_open_session` (with a restricted session): there the module
    /// must end the connection itself.
    SshdSession,
    /// pamtester: opens and closes sessions in one process and runs
    /// nothing; sets are created and released for testing.
    Pamtester,
    /// `nsjail-helper run`, which joins its own child into the set.
    Run,
    /// systemd's user manager (`user@UID.service`, PAM service
    /// `systemd-user`): it execs `systemd --user` in the very process that
    /// opened the session, so the module splits that process at
    /// `open_session` (`crate::manager`): a child in the set becomes the
    /// manager, the original stays on the host as the unit's main pid.
    UserManager(String),
    /// Debian's cron (`/usr/sbin/cron`, docs/SERVICES.md): like sshd, a
    /// hook (setcred REINITIALIZE) runs in the job's own process, as root
    /// with the user's groups; but that process execs the job itself, so
    /// it forks into the set there (`nsset::fork_into_set`, placement b)
    /// and stays on the host as the job's relay. Needs the auth line.
    Cron,
    /// Programs that open the session in a process (P) that later forks
    /// the session's child with no PAM hook in it, then closes the session
    /// in P (placement a', docs/SERVICES.md): P forks into the set at
    /// open_session; the child goes on inside it as root of the set's user
    /// namespace only (no privilege over the host) and drops to the user
    /// itself; the original stays on the host as a relay and closes the
    /// session.
    Forking(Forker),
    /// Anything else: no known place to move the session into a set, so
    /// isolated users are refused there.
    Other(String),
}

/// The applications of placement a' (`App::Forking`); login and atd
/// measured not to work inside a set (`why_not`) and refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forker {
    /// util-linux `su` (services su, su-l).
    Su,
    /// util-linux `runuser` (services runuser, runuser-l).
    Runuser,
    /// `login` (shadow's on Debian 12, util-linux's on Debian 13).
    Login,
    /// at's `atd`.
    Atd,
}

impl Forker {
    /// Why this program cannot run a session correctly inside a set, as
    /// measured (docs/SERVICES.md): then isolated users are refused there.
    pub fn why_not(self) -> Option<&'static str> {
        match self {
            Forker::Su | Forker::Runuser => None,
            Forker::Login => Some(
                "login cannot run a session inside a namespace set: shadow's login (Debian 12) sets the user's groups (initgroups) after open_session, where a set denies setgroups; util-linux's login (Debian 13) reopens its terminal by name in the session's child, and a host pty does not exist in the set's own devpts ('can't reopen tty'), nor can it chown the terminal or make it the shell's controlling tty (host root is unmapped in the set); refusing isolated user",
            ),
            Forker::Atd => Some(
                "atd cannot run a job inside a namespace set: its job process sets the user's groups (initgroups) after open_session, where a set denies setgroups, and it unlinks its spool files as the daemon user, which the set does not map; refusing isolated user (the job stays queued)",
            ),
        }
    }
}

impl App {
    /// Recognises the application by its executable's name (and, for
    /// systemd, the PAM service it runs).
    pub fn from_exe(exe: &Path, service: &str) -> App {
        match exe.file_name().and_then(|n| n.to_str()) {
            Some("sshd") => App::Sshd,
            Some("sshd-session") => App::SshdSession,
            Some("pamtester") => App::Pamtester,
            Some("cron") => App::Cron,
            Some("su") => App::Forking(Forker::Su),
            Some("runuser") => App::Forking(Forker::Runuser),
            Some("login") => App::Forking(Forker::Login),
            Some("atd") => App::Forking(Forker::Atd),
            Some("systemd-executor" | "systemd") if service == "systemd-user" => {
                App::UserManager(exe.display().to_string())
            }
            _ => App::Other(exe.display().to_string()),
        }
    }

    /// The application this process is running.
    pub fn of_this_process(service: &str) -> App {
        App::from_exe(
            &fs::read_link("/proc/self/exe").unwrap_or_default(),
            service,
        )
    }

    /// Whether a hook of this application runs in the session's own
    /// process after `open_session` (sshd's post-auth child, cron's job
    /// process), which needs the module's auth line.
    pub fn needs_auth_line(&self) -> bool {
        matches!(self, App::Sshd | App::SshdSession | App::Cron)
    }
}

/// One login, as the caller knows it.
#[derive(Clone, Debug)]
pub struct LoginRequest<'a> {
    /// The user's canonical name (`canonical_name`).
    pub user: &'a str,
    pub service: &'a str,
    pub app: App,
    pub on_error: OnError,
    /// sshd only: the module's auth line ran `pam_setcred` in this
    /// process before `open_session`, so sshd's child will call it too.
    pub auth_line_seen: bool,
    /// The process that will close the session.
    pub opener: ProcId,
}

/// The system a login runs against: the seam that lets the flow be unit
/// tested without root, NSS users or a helper.
pub trait Host {
    /// The policy file, for messages and for the last-valid copy.
    fn policy_path(&self) -> &Path;
    fn load_policy(&self) -> Result<(Config, String), LoadError>;
    fn lookup_user(&self, name: &str) -> Result<UserInfo, UserError>;
    /// Whether this process may create and join sets.
    fn is_root(&self) -> bool;
    /// Where `subuid`/`subgid` live.
    fn etc(&self) -> &Path;
    fn creator(&self) -> &dyn SetCreator;
    fn registry(&self) -> io::Result<Registry>;
    /// The calling process' threads: forking into a set needs exactly one.
    fn threads(&self) -> usize {
        fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
    }
    /// Why this host cannot enforce `limits`, if it cannot.
    fn limits_support(&self, limits: &Limits) -> Result<(), String> {
        crate::limits::support(limits, Path::new(paths::CGROUP))
    }
    /// The groups every set lends, member or not (`SharedGroup`).
    fn shared_groups(&self) -> Vec<super::SharedGroup> {
        super::SharedGroup::of_host()
    }
}

/// The real system: NSS, `/etc`, the registry under `/run/pam_nsjail`,
/// and sets created by executing the helper.
pub struct System {
    policy: PathBuf,
    creator: ExecHelper,
}

impl System {
    pub fn new(policy: impl Into<PathBuf>, creator: ExecHelper) -> System {
        System {
            policy: policy.into(),
            creator,
        }
    }
}

impl Host for System {
    fn policy_path(&self) -> &Path {
        &self.policy
    }

    fn load_policy(&self) -> Result<(Config, String), LoadError> {
        policy::load_with_text(&self.policy)
    }

    fn lookup_user(&self, name: &str) -> Result<UserInfo, UserError> {
        user::lookup_user(name)
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn etc(&self) -> &Path {
        Path::new(paths::ETC)
    }

    fn creator(&self) -> &dyn SetCreator {
        &self.creator
    }

    fn registry(&self) -> io::Result<Registry> {
        Registry::open(Path::new(paths::REGISTRY))
    }
}

/// A login placed in a set.
#[derive(Debug)]
pub struct Placement {
    pub user: UserInfo,
    pub policy: String,
    pub reason: MatchReason,
    pub opened: Opened,
    /// The policy sets limits this host cannot enforce, and `on_error=allow`
    /// let the login in without them: why.
    pub limits_unenforced: Option<String>,
}

/// How a login ends up.
#[derive(Debug)]
pub enum Outcome {
    /// Runs on the host: root, an exemption, or, while the policy file is
    /// broken, a user the last valid policy exempted (`broken` says why).
    Exempt {
        policy: String,
        reason: String,
        broken: Option<String>,
    },
    /// The policy is broken and the admin chose `on_error=allow`.
    Unconfined { error: String },
    /// The login must not go on.
    Refused {
        policy: String,
        step: Option<&'static str>,
        error: String,
        reason: Option<String>,
        /// The policy's own errors, for callers that show them in full.
        load_error: Option<LoadError>,
    },
    /// The login is in a set.
    Placed(Box<Placement>),
}

impl Outcome {
    fn refused(policy: &str, error: impl Into<String>) -> Outcome {
        Outcome::Refused {
            policy: policy.to_owned(),
            step: None,
            error: error.into(),
            reason: None,
            load_error: None,
        }
    }

    /// The decision's syslog line (DESIGN §4: user, service, policy,
    /// action, set id) and its level. `debug` adds the matching reason to
    /// `isolated`/`joined` lines.
    pub fn log_line(&self, req: &LoginRequest<'_>, debug: bool) -> (Level, String) {
        let line = |policy: &str, action: &str, set: &str, detail: String| {
            let mut detail = detail;
            if req.app == App::Run {
                detail.push_str(" via=run");
            }
            super::decision_line(req.user, req.service, policy, action, set, detail.trim())
        };
        match self {
            Outcome::Exempt {
                policy,
                reason,
                broken: None,
            } => (
                Level::Info,
                line(policy, "exempt", "-", format!("reason=\"{reason}\"")),
            ),
            Outcome::Exempt {
                policy,
                reason,
                broken: Some(error),
            } => (
                Level::Err,
                line(
                    policy,
                    "exempt",
                    "-",
                    format!("error=\"{error}\" reason=\"{reason}\""),
                ),
            ),
            Outcome::Unconfined { error } => (
                Level::Err,
                line(
                    "-",
                    "unconfined",
                    "-",
                    format!("error=\"{error}\" reason=\"on_error=allow\""),
                ),
            ),
            Outcome::Refused {
                policy,
                step,
                error,
                reason,
                ..
            } => {
                let mut detail = String::new();
                if let Some(step) = step {
                    detail.push_str(&format!("step={step} "));
                }
                detail.push_str(&format!("error=\"{error}\""));
                if let Some(reason) = reason {
                    detail.push_str(&format!(" reason=\"{reason}\""));
                }
                (Level::Err, line(policy, "refused", "-", detail))
            }
            Outcome::Placed(p) => {
                let action = if p.opened.created {
                    "isolated"
                } else {
                    "joined"
                };
                let mut detail = format!("holder={}", p.opened.holder.id.pid);
                if let Some(lease) = &p.opened.lease {
                    // So an abuse report about an outbound connection
                    // (the NATed source is the host) maps to a user.
                    detail.push_str(&format!(" addr={} link={}", lease.addr, lease.ifname));
                }
                if debug {
                    detail.push_str(&format!(" reason=\"{}\"", p.reason));
                }
                let mut level = Level::Info;
                match &p.opened.unit {
                    UnitPlacement::NoSystemd => {}
                    UnitPlacement::Own(unit) => detail.push_str(&format!(" unit={unit}")),
                    UnitPlacement::Cgroup(path) => detail.push_str(&format!(" cgroup={path}")),
                    UnitPlacement::Failed(why) => {
                        level = Level::Warning;
                        detail.push_str(&format!(
                            " warning=\"the set could not be given a systemd unit of its own, so it stays in this login's scope: {}\"",
                            why.replace('"', "'")
                        ));
                    }
                }
                for note in &p.opened.notes {
                    level = Level::Warning;
                    detail.push_str(&format!(" warning=\"{}\"", note.replace('"', "'")));
                }
                if let Some(why) = &p.limits_unenforced {
                    level = Level::Err;
                    detail.push_str(&format!(
                        " limits=unenforced error=\"{}\" reason=\"on_error=allow\"",
                        why.replace('"', "'")
                    ));
                }
                if req.app == App::Pamtester {
                    detail.push_str(
                        " note=\"pamtester: set opened and released, nothing runs in it\"",
                    );
                }
                (level, line(&p.policy, action, &p.opened.key, detail))
            }
        }
    }
}

/// Who the login is for and what the policy says, before anything is
/// created: either the final outcome (root, exempt, broken policy), or the
/// user and the isolating decision.
// Built once per login and matched at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Decided {
    Final(Outcome),
    Isolate { user: UserInfo, decision: Decision },
}

/// The passwd entry's own spelling of the name the client typed (sssd
/// with `case_sensitive = false` finds `ALICE` as `alice`): callers build
/// their `LoginRequest` with it, so every name that decides anything, and
/// every log line, is the canonical one. `typed` itself where NSS does
/// not know the user (the login is refused anyway).
pub fn canonical_name(host: &dyn Host, typed: &str) -> String {
    host.lookup_user(typed)
        .map(|u| u.name)
        .unwrap_or_else(|_| typed.to_owned())
}

fn decide(host: &dyn Host, req: &LoginRequest<'_>) -> Decided {
    let user = match host.lookup_user(req.user) {
        Ok(u) => u,
        Err(e) => return Decided::Final(Outcome::refused("-", e.to_string())),
    };
    // Enforced, not only documented: a caller that logs or matches the
    // typed name would log one user and isolate another spelling.
    if user.name != req.user {
        return Decided::Final(Outcome::refused(
            "-",
            format!(
                "internal: login requested as '{}', not as the passwd entry's name '{}'",
                req.user, user.name
            ),
        ));
    }
    if user.uid == 0 {
        return Decided::Final(Outcome::Exempt {
            policy: "-".into(),
            reason: MatchReason::Root.to_string(),
            broken: None,
        });
    }
    let config = match host.load_policy() {
        Ok((config, text)) => {
            if let Ok(reg) = host.registry() {
                reg.remember_valid_policy(host.policy_path(), &text);
            }
            config
        }
        Err(e) => return Decided::Final(broken_policy(host, req, &user, e)),
    };
    let decision = config.decide(&user, req.service);
    if let Some(policy) = config.unknown_group_could_isolate(&user, req.service, &decision) {
        let gids: Vec<String> = user
            .groups
            .iter()
            .filter(|g| g.name.is_none())
            .map(|g| g.gid.to_string())
            .collect();
        let error = format!(
            "NSS has no group entry for gid {} of user '{}' (a directory offline, its group never cached?): whether policy {policy} isolates her by group cannot be decided",
            gids.join(","),
            user.name
        );
        return Decided::Final(if req.on_error == OnError::Allow {
            Outcome::Unconfined { error }
        } else {
            Outcome::Refused {
                policy: policy.clone(),
                step: Some("groups"),
                error,
                reason: Some("on_error=deny".into()),
                load_error: None,
            }
        });
    }
    if decision.settings.is_none() {
        return Decided::Final(Outcome::Exempt {
            policy: decision.policy,
            reason: decision.reason.to_string(),
            broken: None,
        });
    }
    Decided::Isolate { user, decision }
}

/// For a session whose `open_session` never ran this module (its session
/// line is missing, or an earlier session module failed and OpenSSH 9.8+
/// went on regardless): `None` if the login would run on the host anyway
/// (root, exempt, `on_error=allow`), else why it must not go on.
pub fn refusal_without_session(host: &dyn Host, req: &LoginRequest<'_>) -> Option<String> {
    // Test builds: a panic where sshd's session child decides.
    if crate::nsset::failpoint_armed("child-decide-panic") {
        panic!("failpoint child-decide-panic");
    }
    match decide(host, req) {
        Decided::Final(Outcome::Refused { error, .. }) => Some(error),
        Decided::Final(_) => None,
        Decided::Isolate { decision, .. } => Some(format!(
            "policy {} isolates this user, but pam_nsjail's open_session did not run for this login (the session line is missing, or an earlier session module failed)",
            decision.policy
        )),
    }
}

/// The login flow: who, which policy, which application, then the set.
pub fn login(host: &dyn Host, req: &LoginRequest<'_>) -> Outcome {
    // Test builds: a panic in the login flow (sshd's monitor, `run`).
    if crate::nsset::failpoint_armed("login-panic") {
        panic!("failpoint login-panic");
    }
    let (user, decision) = match decide(host, req) {
        Decided::Final(outcome) => return outcome,
        Decided::Isolate { user, decision } => (user, decision),
    };
    let Some(settings) = decision.settings.as_ref() else {
        return Outcome::refused(
            &decision.policy,
            "internal: isolating decision without settings",
        );
    };
    match &req.app {
        app if app.needs_auth_line() && !req.auth_line_seen => {
            return Outcome::refused(
                &decision.policy,
                "the auth line 'auth optional pam_nsjail.so' is missing from the PAM stack (use '@include nsjail', which has both lines); without it the session cannot be isolated",
            )
        }
        App::Sshd | App::SshdSession | App::Pamtester | App::Run | App::Cron => {}
        App::Forking(f @ (Forker::Login | Forker::Atd)) => {
            return Outcome::refused(&decision.policy, f.why_not().unwrap_or_default())
        }
        App::Forking(_) => {}
        App::UserManager(exe) if !settings.limits.is_empty() => {
            return Outcome::refused(
                &decision.policy,
                format!("{exe}: the policy sets resource limits, and the user manager's units live in user@UID.service, which systemd delegates to the manager, outside the set's limits; refusing the user manager (systemd --user) of this user rather than running her units unlimited"),
            )
        }
        App::UserManager(_) => {}
        App::Other(exe) => {
            return Outcome::refused(
                &decision.policy,
                format!("{exe} cannot place sessions in a namespace set (only sshd, cron, su and runuser can); refusing isolated user"),
            )
        }
    }
    // The session's process is forked from this one into the set
    // (`nsset::fork_into_set`), which needs a single thread: refuse before
    // anything is created.
    if matches!(req.app, App::Forking(_)) {
        let threads = host.threads();
        if threads != 1 {
            return Outcome::refused(
                &decision.policy,
                format!("{}: the process opening the session has {threads} threads; it can only be forked into the set with one", req.service),
            );
        }
    }
    if !host.is_root() {
        return Outcome::refused(
            &decision.policy,
            "pam_nsjail must run as root to isolate a session",
        );
    }
    // Limits the host cannot enforce: never silently unlimited.
    let mut settings = settings.clone();
    let mut limits_unenforced = None;
    if let Err(why) = host.limits_support(&settings.limits) {
        if req.on_error == OnError::Deny {
            return Outcome::Refused {
                policy: decision.policy,
                step: Some("limits"),
                error: why,
                reason: Some("on_error=deny".into()),
                load_error: None,
            };
        }
        settings.limits = Limits::default();
        limits_unenforced = Some(why);
    }
    let settings = &settings;
    let reg = match host.registry() {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Refused {
                policy: decision.policy,
                step: Some("registry"),
                error: format!("{}: {e}", paths::REGISTRY),
                reason: None,
                load_error: None,
            }
        }
    };
    let opened = match open(
        &reg,
        &OpenRequest {
            user: &user,
            policy: &decision.policy,
            settings,
            etc: host.etc(),
            creator: host.creator(),
            opener: req.opener,
            shared: &host.shared_groups(),
        },
    ) {
        Ok(o) => o,
        Err(e) => return Outcome::refused(&decision.policy, e.to_string()),
    };
    Outcome::Placed(Box::new(Placement {
        user,
        policy: decision.policy,
        reason: decision.reason,
        opened,
        limits_unenforced,
    }))
}

/// The policy could not be loaded. Users the last valid policy exempted
/// still get in; everyone else is refused unless `on_error=allow`.
fn broken_policy(
    host: &dyn Host,
    req: &LoginRequest<'_>,
    user: &UserInfo,
    e: LoadError,
) -> Outcome {
    let error = format!(
        "policy {} is invalid: {}",
        host.policy_path().display(),
        e.to_string().replace('\n', "; ").replace('"', "'")
    );
    let last = host
        .registry()
        .ok()
        .and_then(|reg| reg.last_valid_policy(host.policy_path()))
        .map(|c| c.decide(user, req.service));
    if let Some(d) = last.filter(|d| d.settings.is_none()) {
        return Outcome::Exempt {
            policy: d.policy,
            reason: "exempt under the last valid policy".into(),
            broken: Some(error),
        };
    }
    if req.on_error == OnError::Allow {
        return Outcome::Unconfined { error };
    }
    Outcome::Refused {
        policy: "-".into(),
        step: None,
        error,
        reason: Some("on_error=deny".into()),
        load_error: Some(e),
    }
}
