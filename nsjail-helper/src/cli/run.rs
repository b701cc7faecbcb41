//! `nsjail-helper run`: open or join USER's set exactly as a login would,
//! run a command as USER inside it, close the session.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

use super::{fail, require_root, Args, CliError, CliResult, DEFAULT_SERVICE};
use crate::log::{self, Level};
use crate::nsset;
use crate::procfs;
use crate::registry::{Registry, DEFAULT_ROOT};
use crate::session::{self, decision_line, OpenRequest};
use crate::sys;
use crate::user::UserInfo;

const HELP: &str = "\
usage: nsjail-helper run [--config PATH] [--service NAME] USER [-- CMD...]

As root, open or join USER's namespace set exactly as an ssh login would
(policy, sub-id maps, registry, session counting), run CMD as USER inside it
(default: USER's login shell), then close the session. The exit status is
CMD's (128+N if it was killed by signal N). A user the policy does not
isolate runs CMD unconfined, like their login would.

  --config PATH    policy file (default /etc/security/pam_nsjail.toml)
  --service NAME   PAM service name to match policies against (default sshd)";

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &["--config", "--service"], &[])?;
    if args.help {
        println!("{HELP}");
        return Ok(0);
    }
    let name = args.one_user()?;
    require_root("run")?;
    let config = super::load_config(&args.config_path())?;
    let user = super::lookup_user(name)?;
    let service = args.option("--service").unwrap_or(DEFAULT_SERVICE);
    let decision = config.decide(&user, service);
    let Some(settings) = decision.settings.as_ref() else {
        log::log(
            Level::Info,
            &decision_line(
                &user.name,
                service,
                &decision.policy,
                "exempt",
                "-",
                "via=run",
            ),
        );
        return run_unconfined(&user, &args.command);
    };
    let reg = Registry::open(Path::new(DEFAULT_ROOT)).map_err(|e| fail(DEFAULT_ROOT, e))?;
    let me = procfs::proc_id(Path::new("/proc"), sys::getpid())
        .ok_or_else(|| fail("run", "cannot read own /proc entry"))?;
    let mut opened = session::open(
        &reg,
        &OpenRequest {
            user: &user,
            policy: &decision.policy,
            settings,
            etc: Path::new("/etc"),
            creator: nsset::Creator::Fork,
            opener: me,
        },
    )
    .map_err(|e| {
        log::log(
            Level::Err,
            &decision_line(
                &user.name,
                service,
                &decision.policy,
                "refused",
                "-",
                &format!("error=\"{e}\""),
            ),
        );
        fail(format!("run {}", user.name), e)
    })?;
    let action = if opened.created { "isolated" } else { "joined" };
    log::log(
        Level::Info,
        &decision_line(
            &user.name,
            service,
            &decision.policy,
            action,
            &opened.key,
            "via=run",
        ),
    );
    let status = run_inside(&user, &mut opened, &args.command);
    let closed = session::close(&reg, user.uid, &opened.key, me.pid);
    if let Err(e) = &closed {
        eprintln!("nsjail-helper: close session {}: {e}", opened.key);
    }
    status
}

/// Runs `cmd` as `user` inside the set: a child joins the set's pid
/// namespace by being forked after `setns(CLONE_NEWPID)`, then joins the
/// rest and drops to the user before exec.
fn run_inside(user: &UserInfo, opened: &mut session::Opened, cmd: &[String]) -> CliResult {
    let exec = prepare_exec(user, cmd)?;
    let gids = user.all_gids();
    // Only our children enter the pid namespace; we stay in the host's
    // namespaces to close the session afterwards.
    sys::setns(opened.holder.pidfd.as_fd(), libc::CLONE_NEWPID)
        .map_err(|e| fail("setns pid namespace", e))?;
    let (old_int, old_quit) = (
        sys::ignore_signal(libc::SIGINT),
        sys::ignore_signal(libc::SIGQUIT),
    );
    // SAFETY: nsjail-helper is single-threaded.
    let fork = unsafe { sys::fork() }.map_err(|e| fail("fork", e))?;
    let sys::Fork::Parent(child) = fork else {
        sys::restore_signal(libc::SIGINT, old_int);
        sys::restore_signal(libc::SIGQUIT, old_quit);
        if let Err(e) = sys::setgroups(&gids) {
            eprintln!("nsjail-helper: setgroups: {e}");
            sys::exit_now(127);
        }
        if let Err(e) = nsset::join_and_drop(
            opened.holder.pidfd.as_fd(),
            opened.join_flags,
            user.uid,
            user.gid,
        ) {
            eprintln!("nsjail-helper: join namespace set: {e}");
            sys::exit_now(127);
        }
        exec.run()
    };
    // The command is on its way: now reap the process that built a new
    // set, rather than leave it a zombie for the whole session.
    opened.reap_helper();
    let status = sys::waitpid(child).map_err(|e| fail("wait", e))?;
    sys::restore_signal(libc::SIGINT, old_int);
    sys::restore_signal(libc::SIGQUIT, old_quit);
    Ok(sys::exit_code(status))
}

/// Runs `cmd` as `user` in the host namespaces (exempt users).
fn run_unconfined(user: &UserInfo, cmd: &[String]) -> CliResult {
    let exec = prepare_exec(user, cmd)?;
    let gids = user.all_gids();
    // SAFETY: nsjail-helper is single-threaded.
    let fork = unsafe { sys::fork() }.map_err(|e| fail("fork", e))?;
    let sys::Fork::Parent(child) = fork else {
        let dropped = sys::setgroups(&gids)
            .and_then(|()| {
                nix::unistd::setresgid(user.gid.into(), user.gid.into(), user.gid.into())
                    .map_err(Into::into)
            })
            .and_then(|()| {
                nix::unistd::setresuid(user.uid.into(), user.uid.into(), user.uid.into())
                    .map_err(Into::into)
            });
        if let Err(e) = dropped {
            eprintln!("nsjail-helper: drop privileges: {e}");
            sys::exit_now(127);
        }
        exec.run()
    };
    let status = sys::waitpid(child).map_err(|e| fail("wait", e))?;
    Ok(sys::exit_code(status))
}

/// Everything the child needs to exec, allocated before fork.
struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    home: std::path::PathBuf,
}

impl Exec {
    fn run(&self) -> ! {
        // The home dir is entered as the user; "/" if it is not
        // reachable, like login(1).
        if std::env::set_current_dir(&self.home).is_err() {
            let _ = std::env::set_current_dir("/");
        }
        sys::default_signal(libc::SIGPIPE);
        let err = sys::execve(&self.path, &self.argv, &self.envp);
        eprintln!("nsjail-helper: exec {}: {err}", self.path.to_string_lossy());
        sys::exit_now(127)
    }
}

fn cstring(s: &str) -> Result<CString, CliError> {
    CString::new(s).map_err(|_| fail("argument", "contains a NUL byte"))
}

fn prepare_exec(user: &UserInfo, cmd: &[String]) -> Result<Exec, CliError> {
    let shell = user.shell.to_string_lossy().into_owned();
    let shell = if shell.is_empty() {
        "/bin/sh".to_owned()
    } else {
        shell
    };
    let (path, argv) = match cmd.split_first() {
        None => {
            let base = Path::new(&shell)
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            (shell.clone(), vec![format!("-{base}")])
        }
        Some((prog, _)) => {
            let path = if prog.contains('/') {
                prog.clone()
            } else {
                find_in_path(prog).unwrap_or_else(|| prog.clone())
            };
            (path, cmd.to_vec())
        }
    };
    let mut env = vec![
        format!("HOME={}", user.home.display()),
        format!("USER={}", user.name),
        format!("LOGNAME={}", user.name),
        format!("SHELL={shell}"),
        "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
    ];
    for var in ["TERM", "LANG", "LC_ALL"] {
        if let Ok(v) = std::env::var(var) {
            env.push(format!("{var}={v}"));
        }
    }
    Ok(Exec {
        path: cstring(&path)?,
        argv: argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        envp: env.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        home: user.home.clone(),
    })
}

fn find_in_path(prog: &str) -> Option<String> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| format!("{d}/{prog}"))
        .find(|p| Path::new(p).is_file())
}
