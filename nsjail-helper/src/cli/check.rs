//! `nsjail-helper check`: validate the policy file like `visudo -c`.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Args, CliResult};
use crate::policy::Config;
use crate::user;

const HELP: &str = "\
usage: nsjail-helper check [--config PATH]

Validate the policy file (default /etc/security/pam_nsjail.toml): ownership
and permissions, TOML syntax, unknown keys and semantic rules. Prints
'PATH: OK (N policies)' and exits 0, or prints each error as
'PATH:LINE:COL: message' with the offending line and exits 1. Warns about
group names NSS does not know and about users of isolated groups who have
no /etc/subuid or /etc/subgid range.";

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &["--config"], &[])?;
    if args.help {
        println!("{HELP}");
        return Ok(0);
    }
    args.no_positional()?;
    let path = args.config_path();
    let config = super::load_config(&path)?;
    for warning in warnings(&config, &path, Path::new("/etc")) {
        eprintln!("nsjail-helper: {warning}");
    }
    println!(
        "{}: OK ({} policies)",
        path.display(),
        config.policies().len()
    );
    Ok(0)
}

/// Group names NSS does not resolve, and members of isolating groups
/// without a usable sub-id range.
pub fn warnings(config: &Config, path: &Path, etc: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut members = BTreeSet::new();
    for entry in config.policies() {
        for group in &entry.groups {
            match nix::unistd::Group::from_name(group) {
                Ok(Some(g)) => {
                    if entry.isolate {
                        members.extend(g.mem.iter().cloned());
                        members.extend(primary_members(etc, g.gid.as_raw()));
                    }
                }
                _ => out.push(format!(
                    "{}: warning: policy '{}': group '{}' is unknown to NSS",
                    path.display(),
                    entry.name,
                    group
                )),
            }
        }
        if entry.isolate {
            members.extend(entry.users.iter().cloned());
        }
    }
    for name in members {
        let Ok(info) = user::lookup_user(&name) else {
            continue;
        };
        let Some(settings) = config.decide(&info, crate::paths::DEFAULT_SERVICE).settings else {
            continue;
        };
        if let Err(e) = crate::session::plan(&info, &settings, etc) {
            out.push(format!("{}: warning: {name}: {e}", path.display()));
        }
    }
    out
}

/// Users whose primary group is `gid`, from the passwd file (a warning
/// aid only: matching itself goes through NSS).
fn primary_members(etc: &Path, gid: u32) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(etc.join("passwd")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[3].parse() == Ok(gid)).then(|| f[0].to_owned())
        })
        .collect()
}
