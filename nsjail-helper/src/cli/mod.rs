//! Command-line interface of `nsjail-helper` (DESIGN §4). Exit status:
//! 0 success, 1 failure, 2 usage error. Errors go to stderr as one line,
//! `nsjail-helper: <context>: <cause>`.
#![forbid(unsafe_code)]

mod audit;
mod check;
mod explain;
mod run;
mod sets;

use std::path::{Path, PathBuf};

use crate::paths;
use crate::policy::{self, Config};
use crate::user::{self, UserInfo};

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Bad command line (exit 2); the text is printed with a usage hint.
    Usage(String),
    /// The command failed (exit 1); already formatted as `context: cause`.
    Fail(String),
    /// The command failed and has already printed its diagnostics.
    Reported,
}

pub type CliResult = Result<i32, CliError>;

pub fn fail(context: impl std::fmt::Display, cause: impl std::fmt::Display) -> CliError {
    CliError::Fail(format!("{context}: {cause}"))
}

const USAGE: &str = "\
usage: nsjail-helper COMMAND [ARGS]

Commands:
  check   [--config PATH]                     validate the policy file
  explain USER [--service NAME] [--config PATH]
                                              show which policy applies to USER and what
                                              their namespace set looks like
  run     [--config PATH] [--service NAME] USER [-- CMD...]
                                              open or join USER's set like a login and
                                              run CMD (default: the login shell) as USER
  list    [--json]                            list live namespace sets
  enter   USER [-- CMD...]                    run CMD as USER in their live set, to inspect it
  stop    USER                                end USER's sets and every process in them
  audit   [--pam-dir DIR] [--vendor-dir DIR]  find PAM services that bypass pam_nsjail

Run 'nsjail-helper COMMAND --help' for details. See nsjail-helper(8).";

/// Runs the command line `args` (without the program name); returns the
/// exit status.
pub fn main(args: &[String]) -> i32 {
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let result = match cmd.as_str() {
        "check" => check::main(rest),
        "explain" => explain::main(rest),
        "run" => run::main(rest),
        "list" => sets::list_main(rest),
        "enter" => sets::enter_main(rest),
        "stop" => sets::stop_main(rest),
        "audit" => audit::main(rest),
        "__attach" => Ok(crate::limits::systemd::attach_main(rest)),
        "__subids" => Ok(crate::subid::subids_main(rest)),
        "__create" => Ok(crate::nsset::SetSpec::from_args(rest)
            .map(|spec| crate::nsset::create_main(&spec))
            .unwrap_or_else(|e| {
                println!("err parse arguments: {e}");
                2
            })),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(0)
        }
        "-V" | "--version" => {
            println!("nsjail-helper {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        other => Err(CliError::Usage(format!("unknown command '{other}'"))),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            eprintln!("nsjail-helper: {msg}");
            eprintln!("Try 'nsjail-helper --help'.");
            2
        }
        Err(CliError::Fail(msg)) => {
            eprintln!("nsjail-helper: {msg}");
            1
        }
        Err(CliError::Reported) => 1,
    }
}

/// A tiny option parser: `--flag VALUE` options, boolean switches,
/// positionals, and everything after `--` as a command.
pub struct Args {
    pub positional: Vec<String>,
    pub options: Vec<(String, String)>,
    pub switches: Vec<String>,
    pub command: Vec<String>,
    pub help: bool,
}

impl Args {
    pub fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, CliError> {
        let mut out = Args {
            positional: Vec::new(),
            options: Vec::new(),
            switches: Vec::new(),
            command: Vec::new(),
            help: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                out.command = it.cloned().collect();
                break;
            } else if arg == "-h" || arg == "--help" {
                out.help = true;
            } else if let Some((name, value)) =
                arg.split_once('=').filter(|(n, _)| valued.contains(n))
            {
                out.options.push((name.to_owned(), value.to_owned()));
            } else if valued.contains(&arg.as_str()) {
                let value = it
                    .next()
                    .ok_or_else(|| CliError::Usage(format!("option {arg} needs a value")))?;
                out.options.push((arg.clone(), value.clone()));
            } else if switches.contains(&arg.as_str()) {
                out.switches.push(arg.clone());
            } else if arg.starts_with('-') && arg.len() > 1 {
                return Err(CliError::Usage(format!("unknown option '{arg}'")));
            } else {
                out.positional.push(arg.clone());
            }
        }
        Ok(out)
    }

    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn config_path(&self) -> PathBuf {
        PathBuf::from(self.option("--config").unwrap_or(paths::POLICY))
    }

    /// Exactly one positional USER.
    pub fn one_user(&self) -> Result<&str, CliError> {
        match self.positional.as_slice() {
            [user] => Ok(user),
            [] => Err(CliError::Usage("missing USER".into())),
            _ => Err(CliError::Usage(format!(
                "unexpected argument '{}'",
                self.positional[1]
            ))),
        }
    }

    pub fn no_positional(&self) -> Result<(), CliError> {
        match self.positional.first() {
            Some(extra) => Err(CliError::Usage(format!("unexpected argument '{extra}'"))),
            None => Ok(()),
        }
    }
}

/// Loads and validates the policy, printing every error (with source line
/// and caret) to stderr.
pub fn load_config(path: &Path) -> Result<Config, CliError> {
    // Only logins keep the last valid policy (session::login): `check` and
    // `explain` must not change what logins fall back to.
    policy::load(path).map_err(|e| {
        eprint!("{}", render_load_error(&e));
        CliError::Reported
    })
}

/// Text for a policy load failure: one `nsjail-helper: ...` line per error,
/// followed by the source line and a caret when there is one.
pub fn render_load_error(e: &policy::LoadError) -> String {
    let mut out = String::new();
    match e {
        policy::LoadError::Parse(errors) => {
            for err in errors {
                out.push_str("nsjail-helper: ");
                out.push_str(&err.render_with_caret());
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&format!("nsjail-helper: {other}\n"));
        }
    }
    out
}

pub fn lookup_user(name: &str) -> Result<UserInfo, CliError> {
    user::lookup_user(name).map_err(|e| CliError::Fail(e.to_string()))
}

pub fn require_root(what: &str) -> Result<(), CliError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(fail(what, "must be run as root"));
    }
    Ok(())
}
