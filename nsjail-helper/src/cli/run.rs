//! `nsjail-helper run`: a login without ssh. Goes through the same
//! `session::login` as the PAM module, then runs a command as the user
//! inside the set (or on the host, for a user the policy leaves alone)
//! and closes the session.

use std::os::fd::AsFd;
use std::path::Path;

use super::{fail, require_root, Args, CliError, CliResult};
use crate::log;
use crate::nsset::{ExecHelper, Identity};
use crate::paths;
use crate::procfs;
use crate::runner::{self, Program};
use crate::session::{self, App, Host, LoginRequest, OnError, Outcome, System};

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
    let service = args.option("--service").unwrap_or(paths::DEFAULT_SERVICE);
    let host = System::new(args.config_path(), ExecHelper::this_program());
    let opener = procfs::proc_id(Path::new(paths::PROC), std::process::id() as i32)
        .ok_or_else(|| fail("run", "cannot read own /proc entry"))?;
    let canonical = session::canonical_name(&host, name);
    let name = canonical.as_str();
    let req = LoginRequest {
        user: name,
        service,
        app: App::Run,
        on_error: OnError::Deny,
        auth_line_seen: false,
        opener,
    };
    let outcome = session::login(&host, &req);
    let (level, line) = outcome.log_line(&req, false);
    log::log(level, &line);
    match outcome {
        Outcome::Placed(placement) => {
            let mut placed = *placement;
            let who = Identity {
                uid: placed.user.uid,
                gid: placed.user.gid,
                gids: placed.user.all_gids(),
            };
            let h0 = std::mem::take(&mut placed.opened.h0);
            let opened = &placed.opened;
            // The command's pty (relay.rs) must come from the set's devpts.
            if let Err(e) = crate::nsset::adopt_set_ptys(opened.holder.pidfd.as_fd()) {
                eprintln!("nsjail-helper: warning: run {name}: the command's pty stays on the host's devpts: {e}");
            }
            let status = Program::for_user(&placed.user, &args.command)
                .and_then(|prog| {
                    runner::run_in_set(
                        opened.holder.pidfd.as_fd(),
                        opened.join_flags,
                        &who,
                        &prog,
                        h0,
                        (opened.holder.id.pid, opened.limited),
                    )
                })
                .map_err(|e| fail(format!("run {name}"), e));
            let reg = host.registry().map_err(|e| fail(paths::REGISTRY, e))?;
            if let Err(e) = session::close(&reg, who.uid, &placed.opened.key, opener.pid) {
                eprintln!("nsjail-helper: close session {}: {e}", placed.opened.key);
            }
            status
        }
        Outcome::Exempt { ref broken, .. } => {
            if let Some(error) = broken {
                eprintln!(
                    "nsjail-helper: warning: {error}; {name} is exempt under the last valid policy"
                );
            }
            run_unconfined(&host, name, &args.command)
        }
        Outcome::Unconfined { .. } => run_unconfined(&host, name, &args.command),
        Outcome::Refused {
            load_error: Some(e),
            ..
        } => {
            eprint!("{}", super::render_load_error(&e));
            Err(CliError::Reported)
        }
        Outcome::Refused { error, .. } => Err(fail(format!("run {name}"), error)),
    }
}

/// Runs the command as the user on the host (not isolated).
fn run_unconfined(host: &System, name: &str, cmd: &[String]) -> CliResult {
    let user = host
        .lookup_user(name)
        .map_err(|e| CliError::Fail(e.to_string()))?;
    let who = Identity {
        uid: user.uid,
        gid: user.gid,
        gids: user.all_gids(),
    };
    let prog = Program::for_user(&user, cmd).map_err(|e| fail(format!("run {name}"), e))?;
    runner::run_on_host(&who, &prog).map_err(|e| fail(format!("run {name}"), e))
}
