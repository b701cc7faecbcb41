//! `nsjail-helper audit`: find PAM services through which a member of an
//! isolated group could open a session without pam_nsjail.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Args, CliResult};

const HELP: &str = "\
usage: nsjail-helper audit [--pam-dir DIR] [--config PATH]

Scan the PAM configuration (default /etc/pam.d), following @include,
include and substack, and report:
  - whether sshd has both pam_nsjail lines (auth and session);
  - every other service that opens sessions (su, login, runuser, sudo,
    cron, atd, systemd-user, display managers, ...) without pam_nsjail,
    through which a user of an isolated group gets an unconfined session;
with the fix to apply. Exits 1 if anything needs fixing.";

/// Services known to open PAM sessions for a user.
const SESSION_SERVICES: &[&str] = &[
    "sshd",
    "login",
    "su",
    "su-l",
    "sudo",
    "sudo-i",
    "runuser",
    "runuser-l",
    "cron",
    "atd",
    "systemd-user",
    "gdm-password",
    "gdm-autologin",
    "lightdm",
    "lightdm-autologin",
    "sddm",
    "xrdp-sesman",
    "remote",
    "cockpit",
    "vsftpd",
    "proftpd",
    "dovecot",
    "screen",
    "tmux",
    "doas",
    "machinectl",
    "polkit-1",
];

/// Which stacks of a service reach pam_nsjail, after expanding includes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stacks {
    pub session_lines: usize,
    pub nsjail_session: bool,
    pub nsjail_auth: bool,
}

fn module_is_nsjail(module: &str) -> bool {
    Path::new(module)
        .file_name()
        .is_some_and(|f| f == "pam_nsjail.so")
}

/// Expands `service` in `dir` into (type, module) pairs.
fn expand(
    dir: &Path,
    service: &str,
    only_type: Option<&str>,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    if depth > 16 || service.contains('/') {
        return;
    }
    let Ok(text) = fs::read_to_string(dir.join(service)) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if first == "@include" {
            if let Some(inc) = words.next() {
                expand(dir, inc, only_type, depth + 1, out);
            }
            continue;
        }
        let ty = first.trim_start_matches('-');
        if only_type.is_some_and(|t| t != ty) {
            continue;
        }
        let Some(control) = words.next() else {
            continue;
        };
        let control = if control.starts_with('[') {
            // [value=action ...] may contain spaces; skip to the closing ].
            let mut c = control.to_owned();
            while !c.ends_with(']') {
                match words.next() {
                    Some(w) => c.push_str(w),
                    None => break,
                }
            }
            c
        } else {
            control.to_owned()
        };
        let Some(module) = words.next() else { continue };
        if control == "include" || control == "substack" {
            expand(dir, module, Some(ty), depth + 1, out);
        } else {
            out.push((ty.to_owned(), module.to_owned()));
        }
    }
}

pub fn stacks(dir: &Path, service: &str) -> Stacks {
    let mut lines = Vec::new();
    expand(dir, service, None, 0, &mut lines);
    let mut s = Stacks::default();
    for (ty, module) in &lines {
        match ty.as_str() {
            "session" => {
                s.session_lines += 1;
                s.nsjail_session |= module_is_nsjail(module);
            }
            "auth" => s.nsjail_auth |= module_is_nsjail(module),
            _ => {}
        }
    }
    s
}

/// Findings for every session-opening service in `dir`, as
/// (is_problem, message) pairs.
pub fn audit(dir: &Path) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let file = |s: &str| -> PathBuf { dir.join(s) };
    let sshd = stacks(dir, "sshd");
    let ssh_path = file("sshd");
    if !ssh_path.exists() {
        out.push((
            false,
            format!("{}: not present (no sshd service)", ssh_path.display()),
        ));
    } else if !sshd.nsjail_session {
        out.push((
            true,
            format!(
                "{}: pam_nsjail is not enabled for ssh logins\n  fix: echo '@include nsjail' >> {}",
                ssh_path.display(),
                ssh_path.display()
            ),
        ));
    } else if !sshd.nsjail_auth {
        out.push((
            true,
            format!(
                "{}: 'session pam_nsjail.so' without 'auth optional pam_nsjail.so': isolated logins will be refused\n  fix: use '@include nsjail', which has both lines",
                ssh_path.display()
            ),
        ));
    } else {
        out.push((
            false,
            format!(
                "{}: ok (auth and session lines present)",
                ssh_path.display()
            ),
        ));
    }
    for service in SESSION_SERVICES.iter().filter(|s| **s != "sshd") {
        let path = file(service);
        if !path.is_file() {
            continue;
        }
        let st = stacks(dir, service);
        if st.session_lines == 0 || st.nsjail_session {
            out.push((false, format!("{}: ok", path.display())));
            continue;
        }
        out.push((
            true,
            format!(
                "{}: '{service}' opens sessions without pam_nsjail: a member of an isolated group gets an unconfined session through it\n  fix: add '@include nsjail' to {} (pam_nsjail refuses isolated users there: only sshd can place a session in a set), or deny isolated groups this service (e.g. pam_succeed_if / access.conf)",
                path.display(),
                path.display()
            ),
        ));
    }
    out
}

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &["--pam-dir", "--config"], &[])?;
    if args.help {
        println!("{HELP}");
        return Ok(0);
    }
    args.no_positional()?;
    let dir = PathBuf::from(args.option("--pam-dir").unwrap_or("/etc/pam.d"));
    if !dir.is_dir() {
        return Err(super::fail(dir.display(), "not a directory"));
    }
    let mut problems = 0;
    for (bad, msg) in audit(&dir) {
        if bad {
            problems += 1;
            println!("warning: {msg}");
        } else {
            println!("{msg}");
        }
    }
    if problems > 0 {
        println!("{problems} problem(s) found");
        Ok(1)
    } else {
        println!("no problems found");
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pam_dir(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "nsjail-audit-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn include_chains_are_followed() {
        let dir = pam_dir(&[
            (
                "nsjail",
                "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n",
            ),
            ("common-session", "session required pam_unix.so\n"),
            ("sshd", "@include common-session\n@include nsjail\n"),
            ("su", "session include common-session\n"),
            ("login", "session substack nsjail\n"),
        ]);
        assert_eq!(
            stacks(&dir, "sshd"),
            Stacks {
                session_lines: 2,
                nsjail_session: true,
                nsjail_auth: true
            }
        );
        // `include` of type session only takes the session lines.
        assert_eq!(
            stacks(&dir, "login"),
            Stacks {
                session_lines: 1,
                nsjail_session: true,
                nsjail_auth: false
            }
        );
        let findings = audit(&dir);
        assert!(findings.iter().any(|(bad, m)| *bad && m.contains("/su:")));
        assert!(findings
            .iter()
            .any(|(bad, m)| !*bad && m.contains("/sshd: ok")));
        assert!(!findings.iter().any(|(bad, m)| *bad && m.contains("/login")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sshd_without_auth_line_is_flagged() {
        let dir = pam_dir(&[("sshd", "session required pam_nsjail.so\n")]);
        assert!(audit(&dir)
            .iter()
            .any(|(bad, m)| *bad && m.contains("without 'auth optional")));
        fs::remove_dir_all(&dir).unwrap();
    }
}
