//! `nsjail-helper audit`: find PAM services through which a member of an
//! isolated group could open a session without pam_nsjail.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Args, CliResult};
use crate::paths;

const HELP: &str = "\
usage: nsjail-helper audit [--pam-dir DIR] [--vendor-dir DIR] [--config PATH]

Scan the PAM configuration the way Linux-PAM reads it: a service file in
--pam-dir (default /etc/pam.d) overrides the file of the same name in
--vendor-dir (default /usr/lib/pam.d, where Debian 13 ships systemd-user).
Follow @include, include and substack, and report:
  - whether sshd has both pam_nsjail lines (auth and session), and whether
    pam_setcred can reach the auth line: a 'sufficient' module, a 'done'
    action or a [success=N] jump before it (in sshd's own stack or a file
    it includes, not inside a substack) stops setcred first, and isolated
    logins are then refused;
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

/// Where Linux-PAM looks for a service's file: the local directory
/// first, then the vendor directory (Linux-PAM >= 1.2 with a vendordir).
pub struct PamDirs {
    pub local: PathBuf,
    pub vendor: Option<PathBuf>,
}

impl PamDirs {
    /// The file PAM reads for `service`, if any.
    pub fn resolve(&self, service: &str) -> Option<PathBuf> {
        if service.contains('/') || service.is_empty() {
            return None;
        }
        std::iter::once(&self.local)
            .chain(self.vendor.as_ref())
            .map(|d| d.join(service))
            .find(|p| p.is_file())
    }
}

/// One line of a service's stack, includes expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PamLine {
    ty: String,
    control: String,
    module: String,
    /// Inside a `substack`: its `sufficient`, `done` and jumps end the
    /// substack only, never skip a line after it.
    in_substack: bool,
}

/// Expands `service` into its lines.
fn expand(
    dirs: &PamDirs,
    service: &str,
    only_type: Option<&str>,
    depth: usize,
    out: &mut Vec<PamLine>,
) {
    expand_in(dirs, service, only_type, depth, false, out);
}

fn expand_in(
    dirs: &PamDirs,
    service: &str,
    only_type: Option<&str>,
    depth: usize,
    in_substack: bool,
    out: &mut Vec<PamLine>,
) {
    if depth > 16 {
        return;
    }
    let Some(text) = dirs
        .resolve(service)
        .and_then(|p| fs::read_to_string(p).ok())
    else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if first == "@include" {
            if let Some(inc) = words.next() {
                expand_in(dirs, inc, only_type, depth + 1, in_substack, out);
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
                    Some(w) => {
                        c.push(' ');
                        c.push_str(w);
                    }
                    None => break,
                }
            }
            c
        } else {
            control.to_owned()
        };
        let Some(module) = words.next() else { continue };
        if control == "include" || control == "substack" {
            let sub = in_substack || control == "substack";
            expand_in(dirs, module, Some(ty), depth + 1, sub, out);
        } else {
            out.push(PamLine {
                ty: ty.to_owned(),
                control,
                module: module.to_owned(),
                in_substack,
            });
        }
    }
}

pub fn stacks(dirs: &PamDirs, service: &str) -> Stacks {
    let mut lines = Vec::new();
    expand(dirs, service, None, 0, &mut lines);
    let mut s = Stacks::default();
    for line in &lines {
        match line.ty.as_str() {
            "session" => {
                s.session_lines += 1;
                s.nsjail_session |= module_is_nsjail(&line.module);
            }
            "auth" => s.nsjail_auth |= module_is_nsjail(&line.module),
            _ => {}
        }
    }
    s
}

/// Why `pam_setcred` on `service`'s auth stack may stop before the first
/// pam_nsjail line: the lines (module and control) that can skip it.
/// Linux-PAM runs setcred over the auth stack with the same controls as
/// authentication: a `sufficient` module that succeeds, a `done` action,
/// or a `[value=N]` jump past our line ends the walk first. Lines inside
/// a substack only end that substack. (`requisite` and `die` stop the
/// walk too, but only on a failure, which fails setcred: the login is
/// then refused, never unconfined.)
pub fn setcred_skips(dirs: &PamDirs, service: &str) -> Vec<String> {
    let mut lines = Vec::new();
    expand(dirs, service, Some("auth"), 0, &mut lines);
    // Jumps count the lines of the stack they are in: the top level here,
    // substack lines being opaque to it.
    let top: Vec<&PamLine> = lines.iter().filter(|l| !l.in_substack).collect();
    let Some(ours) = top.iter().position(|l| module_is_nsjail(&l.module)) else {
        return Vec::new();
    };
    let mut skips = Vec::new();
    for (i, line) in top.iter().enumerate().take(ours) {
        let control = line.control.as_str();
        let why = if control == "sufficient" {
            Some("'sufficient': setcred stops there when it succeeds".to_owned())
        } else if let Some(inner) = control.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
            inner.split_whitespace().find_map(|pair| {
                let (value, action) = pair.split_once('=')?;
                if action == "done" {
                    return Some(format!("'{value}=done': setcred stops there"));
                }
                let n: usize = action.parse().ok()?;
                (i + n >= ours).then(|| format!("'{value}={n}' jumps past pam_nsjail"))
            })
        } else {
            None
        };
        if let Some(why) = why {
            skips.push(format!("auth {} {} ({why})", line.control, line.module));
        }
    }
    skips
}

/// The fix for a session service that bypasses pam_nsjail. A service
/// that only exists in the vendor directory is fixed by a local copy,
/// which then overrides it.
fn fix_for(dirs: &PamDirs, service: &str, path: &Path) -> String {
    let local = dirs.local.join(service);
    let edit = if path == local {
        format!("add '@include nsjail' to {}", local.display())
    } else {
        format!(
            "cp {} {}, then add '@include nsjail' to {}",
            path.display(),
            local.display(),
            local.display()
        )
    };
    let consequence = match service {
        "systemd-user" => "pam_nsjail then runs the user manager (systemd --user) of isolated users inside their set where the policy says \"!cgroup\" (with the user@.service drop-in pam_nsjail.conf), and refuses it otherwise; without it, `systemd-run --user` and the user's units run outside the set",
        "cron" => "pam_nsjail then runs isolated users' cron jobs inside their set; without it they run outside the set",
        "su" | "su-l" | "runuser" | "runuser-l" => "pam_nsjail then places the session of an isolated target user in her set; without it su/runuser give a shell outside the set",
        "atd" => "pam_nsjail then refuses isolated users' at jobs (atd cannot run a job inside a set: its job process calls initgroups, which a set denies); without it they run outside the set",
        "login" => "pam_nsjail then refuses console and serial logins of isolated users (login cannot run a session inside a set: docs/SERVICES.md); without it they log in outside the set",
        _ => "pam_nsjail then refuses isolated users there: it places sessions in a set only for sshd, cron, su and runuser",
    };
    format!("  fix: {edit}\n  ({consequence}), or deny isolated groups this service (e.g. pam_succeed_if / access.conf)")
}

/// Findings for every session-opening service, as (is_problem, message)
/// pairs.
pub fn audit(dirs: &PamDirs) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let sshd = stacks(dirs, "sshd");
    match dirs.resolve("sshd") {
        None => out.push((
            false,
            format!(
                "{}: not present (no sshd service)",
                dirs.local.join("sshd").display()
            ),
        )),
        Some(path) if !sshd.nsjail_session => out.push((
            true,
            format!(
                "{}: pam_nsjail is not enabled for ssh logins\n  fix: echo '@include nsjail' >> {}",
                path.display(),
                dirs.local.join("sshd").display()
            ),
        )),
        Some(path) if !sshd.nsjail_auth => out.push((
            true,
            format!(
                "{}: 'session pam_nsjail.so' without 'auth optional pam_nsjail.so': isolated logins will be refused\n  fix: use '@include nsjail', which has both lines",
                path.display()
            ),
        )),
        Some(path) => {
            let skips = setcred_skips(dirs, "sshd");
            if skips.is_empty() {
                out.push((
                    false,
                    format!("{}: ok (auth and session lines present)", path.display()),
                ));
            } else {
                out.push((
                    true,
                    format!(
                        "{}: pam_setcred can stop before 'auth optional pam_nsjail.so' at: {}; isolated logins are then refused\n  fix: put the line 'auth optional pam_nsjail.so' before them (e.g. as the first auth line of {}); keep '@include nsjail' for the session line",
                        path.display(),
                        skips.join("; "),
                        dirs.local.join("sshd").display()
                    ),
                ));
            }
        }
    }
    for service in SESSION_SERVICES.iter().filter(|s| **s != "sshd") {
        let Some(path) = dirs.resolve(service) else {
            continue;
        };
        let st = stacks(dirs, service);
        if *service == "cron" && st.nsjail_session {
            // cron, like sshd, joins in the job's process through setcred.
            let skips = setcred_skips(dirs, service);
            if !st.nsjail_auth || !skips.is_empty() {
                out.push((
                    true,
                    format!(
                        "{}: pam_setcred cannot reach 'auth optional pam_nsjail.so'{}: isolated users' cron jobs are refused\n  fix: use '@include nsjail', which has both lines, with no 'sufficient' module, 'done' action or [success=N] jump before the auth line",
                        path.display(),
                        if skips.is_empty() { String::new() } else { format!(" (stops at: {})", skips.join("; ")) }
                    ),
                ));
                continue;
            }
        }
        if st.session_lines == 0 || st.nsjail_session {
            out.push((false, format!("{}: ok", path.display())));
            continue;
        }
        out.push((
            true,
            format!(
                "{}: '{service}' opens sessions without pam_nsjail: a member of an isolated group gets an unconfined session through it\n{}",
                path.display(),
                fix_for(dirs, service, &path)
            ),
        ));
    }
    out
}

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &["--pam-dir", "--vendor-dir", "--config"], &[])?;
    if args.help {
        println!("{HELP}");
        return Ok(0);
    }
    args.no_positional()?;
    let dirs = PamDirs {
        local: PathBuf::from(args.option("--pam-dir").unwrap_or(paths::PAM_DIR)),
        vendor: Some(PathBuf::from(
            args.option("--vendor-dir").unwrap_or(paths::VENDOR_PAM_DIR),
        )),
    };
    if !dirs.local.is_dir() {
        return Err(super::fail(dirs.local.display(), "not a directory"));
    }
    let mut problems = 0;
    for (bad, msg) in audit(&dirs) {
        if bad {
            problems += 1;
            println!("warning: {msg}");
        } else {
            println!("{msg}");
        }
    }
    // What private networks need of, and changed on, the host.
    if let Ok(config) = crate::policy::load(&args.config_path()) {
        if config.uses_private_network() {
            let report = crate::net::host_report(config.network().pool);
            for p in &report.problems {
                problems += 1;
                println!("warning: network: {p}");
            }
            for n in &report.notes {
                println!("network: {n}");
            }
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
        pam_dir_named(&files.len().to_string(), files)
    }

    fn pam_dir_named(tag: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nsjail-audit-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn only(dir: &Path) -> PamDirs {
        PamDirs {
            local: dir.to_owned(),
            vendor: None,
        }
    }

    #[test]
    fn vendor_files_count_unless_a_local_file_overrides_them() {
        let nsjail = "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n";
        let vendor = pam_dir_named(
            "vendor",
            &[
                (
                    "systemd-user",
                    "account include common-account\nsession required pam_unix.so\n",
                ),
                ("cron", "session required pam_unix.so\n"),
                ("common-account", "account required pam_unix.so\n"),
                ("sshd", "session required pam_unix.so\n"),
            ],
        );
        let local = pam_dir_named(
            "local",
            &[
                ("nsjail", nsjail),
                ("sshd", "session required pam_unix.so\n@include nsjail\n"),
            ],
        );
        let dirs = PamDirs {
            local: local.clone(),
            vendor: Some(vendor.clone()),
        };
        let findings = audit(&dirs);
        let user = findings
            .iter()
            .find(|(_, m)| m.contains("systemd-user"))
            .expect("systemd-user is audited from the vendor directory");
        assert!(user.0, "{}", user.1);
        assert!(
            user.1.starts_with(&format!(
                "{}: 'systemd-user' opens sessions",
                vendor.join("systemd-user").display()
            )),
            "{}",
            user.1
        );
        assert!(
            user.1.contains(&format!(
                "fix: cp {} {}",
                vendor.join("systemd-user").display(),
                local.join("systemd-user").display()
            )),
            "{}",
            user.1
        );
        assert!(
            user.1.contains(
                "runs the user manager (systemd --user) of isolated users inside their set"
            ),
            "{}",
            user.1
        );
        assert!(findings.iter().any(|(bad, m)| *bad
            && m.contains("'cron'")
            && m.contains("cron jobs inside their set")));
        // The local sshd overrides the vendor one.
        assert!(findings.iter().any(
            |(bad, m)| !*bad && m.starts_with(&format!("{}: ok", local.join("sshd").display()))
        ));
        // A local copy with the include fixes systemd-user.
        fs::write(
            local.join("systemd-user"),
            "session required pam_unix.so\n@include nsjail\n",
        )
        .unwrap();
        assert!(
            audit(&dirs)
                .iter()
                .any(|(bad, m)| !*bad
                    && m == &format!("{}: ok", local.join("systemd-user").display()))
        );
        fs::remove_dir_all(&vendor).unwrap();
        fs::remove_dir_all(&local).unwrap();
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
            stacks(&only(&dir), "sshd"),
            Stacks {
                session_lines: 2,
                nsjail_session: true,
                nsjail_auth: true
            }
        );
        // `include` of type session only takes the session lines.
        assert_eq!(
            stacks(&only(&dir), "login"),
            Stacks {
                session_lines: 1,
                nsjail_session: true,
                nsjail_auth: false
            }
        );
        let findings = audit(&only(&dir));
        assert!(findings.iter().any(|(bad, m)| *bad && m.contains("/su:")));
        assert!(findings
            .iter()
            .any(|(bad, m)| !*bad && m.contains("/sshd: ok")));
        assert!(!findings.iter().any(|(bad, m)| *bad && m.contains("/login")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_auth_line_that_setcred_would_skip_is_flagged() {
        let nsjail = "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n";
        // RHEL style: a sufficient module (pam_sss) before our line, in a
        // file included into sshd's own stack.
        let dir = pam_dir_named(
            "rhel",
            &[
                ("nsjail", nsjail),
                (
                    "system-auth",
                    "auth required pam_env.so\nauth sufficient pam_sss.so forward_pass\nauth required pam_deny.so\n",
                ),
                ("sshd", "auth include system-auth\n@include nsjail\n"),
            ],
        );
        let skips = setcred_skips(&only(&dir), "sshd");
        assert_eq!(
            skips,
            ["auth sufficient pam_sss.so ('sufficient': setcred stops there when it succeeds)"]
        );
        let findings = audit(&only(&dir));
        let sshd = findings
            .iter()
            .find(|(_, m)| m.contains("/sshd:"))
            .expect("sshd audited");
        assert!(sshd.0, "{}", sshd.1);
        assert!(
            sshd.1
                .contains("fix: put the line 'auth optional pam_nsjail.so' before them"),
            "{}",
            sshd.1
        );
        // The same module inside a substack ends only the substack.
        fs::write(
            dir.join("sshd"),
            "auth substack system-auth\n@include nsjail\n",
        )
        .unwrap();
        assert!(setcred_skips(&only(&dir), "sshd").is_empty());
        // Our line first: nothing can skip it.
        fs::write(
            dir.join("sshd"),
            "auth optional pam_nsjail.so\nauth include system-auth\n@include nsjail\n",
        )
        .unwrap();
        assert!(setcred_skips(&only(&dir), "sshd").is_empty());
        assert!(audit(&only(&dir))
            .iter()
            .any(|(bad, m)| !*bad && m.contains("/sshd: ok")));
        // A done action, and a jump past our line.
        fs::write(
            dir.join("sshd"),
            "auth [success=done default=ignore] pam_x.so\n@include nsjail\n",
        )
        .unwrap();
        assert_eq!(setcred_skips(&only(&dir), "sshd").len(), 1);
        fs::write(
            dir.join("sshd"),
            "auth [success=1 default=ignore] pam_x.so\n@include nsjail\n",
        )
        .unwrap();
        assert_eq!(
            setcred_skips(&only(&dir), "sshd"),
            ["auth [success=1 default=ignore] pam_x.so ('success=1' jumps past pam_nsjail)"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debians_common_auth_with_sss_jumps_stay_before_our_line() {
        // Debian's common-auth once libpam-sss is installed.
        let dir = pam_dir_named(
            "debian-sss",
            &[
                ("nsjail", "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n"),
                (
                    "common-auth",
                    "auth [success=2 default=ignore] pam_unix.so nullok\nauth [success=1 default=ignore] pam_sss.so use_first_pass\nauth requisite pam_deny.so\nauth required pam_permit.so\n",
                ),
                ("sshd", "@include common-auth\nsession required pam_unix.so\n@include nsjail\n"),
            ],
        );
        assert!(setcred_skips(&only(&dir), "sshd").is_empty());
        assert!(audit(&only(&dir))
            .iter()
            .any(|(bad, m)| !*bad && m.contains("/sshd: ok")));
        // Control: without the two lines the jumps land on (a jump of N
        // skips the next N lines), both jump past our line.
        fs::write(
            dir.join("common-auth"),
            "auth [success=2 default=ignore] pam_unix.so nullok\nauth [success=1 default=ignore] pam_sss.so use_first_pass\n",
        )
        .unwrap();
        assert_eq!(setcred_skips(&only(&dir), "sshd").len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sshd_without_auth_line_is_flagged() {
        let dir = pam_dir(&[("sshd", "session required pam_nsjail.so\n")]);
        assert!(audit(&only(&dir))
            .iter()
            .any(|(bad, m)| *bad && m.contains("without 'auth optional")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cron_needs_the_auth_line_where_setcred_reaches_it() {
        let nsjail = "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n";
        let cron_of = |tag: &str, cron: &str| {
            let dir = pam_dir_named(
                tag,
                &[
                    ("nsjail", nsjail),
                    ("cron", cron),
                    ("sshd", "@include nsjail\n"),
                ],
            );
            let found = audit(&only(&dir))
                .into_iter()
                .find(|(_, m)| m.contains("/cron"))
                .expect("cron audited");
            let _ = fs::remove_dir_all(&dir);
            found
        };
        let (bad, m) = cron_of("cron-ok", "session required pam_unix.so\n@include nsjail\n");
        assert!(!bad, "{m}");
        let (bad, m) = cron_of("cron-noauth", "session required pam_nsjail.so\n");
        assert!(
            bad && m.contains("isolated users' cron jobs are refused"),
            "{m}"
        );
        let (bad, m) = cron_of(
            "cron-skip",
            "auth sufficient pam_rootok.so\n@include nsjail\n",
        );
        assert!(
            bad && m.contains("stops at: auth sufficient pam_rootok.so"),
            "{m}"
        );
    }
}
