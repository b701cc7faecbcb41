//! `nsjail-helper audit`: find PAM services through which a member of an
//! isolated group could open a session without pam_nsjail.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Args, CliResult};
use crate::paths;

const HELP: &str = "\
usage: nsjail-helper audit [--fix] [--pam-dir DIR] [--vendor-dir DIR]
                          [--sshd-config PATH] [--systemd-dir DIR] [--config PATH]

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
  - where systemd-user includes pam_nsjail on a systemd host: whether
    the user@.service drop-in (NotifyAccess=all) that a user manager in
    a set needs is installed (in --systemd-dir, default
    /etc/systemd/system and /usr/lib/systemd/system);
  - whether sshd uses PAM at all (UsePAM in --sshd-config, default
    /etc/ssh/sshd_config, and the files it Includes): without it no ssh
    login ever reaches pam_nsjail;
with the fix to apply. Exits 1 if anything needs fixing.

--fix prints, instead of the report, a shell script (idempotent; review
it, then run it as root) that applies every PAM fix found: it copies
vendor-only stacks to --pam-dir and appends '@include nsjail', or puts
the auth line first where pam_setcred would skip it. It never edits
anything itself; UsePAM is left to the admin.";

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
    /// Where systemd's unit drop-ins live (`/etc/systemd/system`, then
    /// `/usr/lib/systemd/system`), for the user manager's drop-in.
    pub systemd_units: Vec<PathBuf>,
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
    skips_before_ours(dirs, service, false)
}

/// `setcred_skips` for our line where it is, or (`appended`) where
/// `@include nsjail` appended to the service would put it: last.
fn skips_before_ours(dirs: &PamDirs, service: &str, appended: bool) -> Vec<String> {
    let mut lines = Vec::new();
    expand(dirs, service, Some("auth"), 0, &mut lines);
    // Jumps count the lines of the stack they are in: the top level here,
    // substack lines being opaque to it.
    let top: Vec<&PamLine> = lines.iter().filter(|l| !l.in_substack).collect();
    let ours = if appended {
        top.len()
    } else {
        match top.iter().position(|l| module_is_nsjail(&l.module)) {
            Some(i) => i,
            None => return Vec::new(),
        }
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

/// A change to one PAM service file that `--fix` prints as shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Append `@include nsjail` to `local`, after copying `vendor` there
    /// when only the vendor directory has the service.
    /// `auth_first`: the service joins through pam_setcred (sshd, cron)
    /// and its auth stack would stop before the appended auth line, so
    /// that line also goes first.
    Include {
        local: PathBuf,
        vendor: Option<PathBuf>,
        auth_first: bool,
    },
    /// Put `auth optional pam_nsjail.so` first in `local`, where
    /// pam_setcred could stop before the included auth line.
    AuthFirst { local: PathBuf },
}

/// One finding of `audit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub problem: bool,
    pub message: String,
    pub fix: Option<Fix>,
}

impl Finding {
    fn ok(message: String) -> Finding {
        Finding {
            problem: false,
            message,
            fix: None,
        }
    }

    fn problem(message: String, fix: Option<Fix>) -> Finding {
        Finding {
            problem: true,
            message,
            fix,
        }
    }
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shell lines that apply `fix` (idempotent: running them twice
/// changes nothing the second time).
pub fn fix_script(fix: &Fix) -> String {
    match fix {
        Fix::Include {
            local,
            vendor,
            auth_first,
        } => {
            let l = sh_quote(&local.display().to_string());
            let mut out = String::new();
            if let Some(v) = vendor {
                out.push_str(&format!(
                    "[ -e {l} ] || cp {} {l}\n",
                    sh_quote(&v.display().to_string())
                ));
            }
            out.push_str(&format!(
                "grep -qsE '^[[:space:]]*@include[[:space:]]+nsjail([[:space:]#]|$)' {l} || echo '@include nsjail' >> {l}\n"
            ));
            if *auth_first {
                out.push_str(&fix_script(&Fix::AuthFirst {
                    local: local.clone(),
                }));
            }
            out
        }
        Fix::AuthFirst { local } => {
            let l = sh_quote(&local.display().to_string());
            format!(
                "head -n1 {l} | grep -qE '^auth[[:space:]]+optional[[:space:]]+pam_nsjail\\.so' || sed -i '1i auth     optional   pam_nsjail.so' {l}\n"
            )
        }
    }
}

/// What pam_nsjail does, once `@include nsjail` is in its stack, with
/// a session of an isolated user through `service`.
fn with_the_include(service: &str) -> &'static str {
    match service {
        "systemd-user" => "pam_nsjail then runs the user manager (systemd --user) of isolated users inside their set (with the user@.service drop-in pam_nsjail.conf), and refuses it where the policy sets resource limits; without it, `systemd-run --user` and the user's units run outside the set",
        "cron" => "pam_nsjail then runs isolated users' cron jobs inside their set; without it they run outside the set",
        "su" | "su-l" | "runuser" | "runuser-l" => "pam_nsjail then places the session of an isolated target user in her set; without it su/runuser give a shell outside the set",
        "atd" => "pam_nsjail then refuses isolated users' at jobs (atd cannot run a job inside a set: its job process calls initgroups, which a set denies); without it they run outside the set",
        "login" => "pam_nsjail then refuses console and serial logins of isolated users (login cannot run a session inside a set: docs/SERVICES.md); without it they log in outside the set",
        _ => "pam_nsjail then refuses isolated users there: it places sessions in a set only for sshd, cron, su and runuser",
    }
}

/// The finding for a session service that bypasses pam_nsjail. A
/// service that only exists in the vendor directory is fixed by a local
/// copy, which then overrides it.
fn bypass(dirs: &PamDirs, service: &str, path: &Path) -> Finding {
    let local = dirs.local.join(service);
    let (edit, vendor) = if path == local {
        (
            format!("add '@include nsjail' to {}", local.display()),
            None,
        )
    } else {
        (
            format!(
                "cp {} {}, then add '@include nsjail' to {}",
                path.display(),
                local.display(),
                local.display()
            ),
            Some(path.to_owned()),
        )
    };
    Finding::problem(
        format!(
            "{}: '{service}' opens sessions without pam_nsjail: a member of an isolated group gets an unconfined session through it\n  fix: {edit}\n  ({}), or deny isolated groups this service (e.g. pam_succeed_if / access.conf)",
            path.display(),
            with_the_include(service)
        ),
        Some(Fix::Include {
            local,
            vendor,
            auth_first: service == "cron" && !skips_before_ours(dirs, service, true).is_empty(),
        }),
    )
}

/// The finding for sshd's own stack.
fn sshd_finding(dirs: &PamDirs) -> Finding {
    let local = dirs.local.join("sshd");
    let Some(path) = dirs.resolve("sshd") else {
        return Finding::ok(format!(
            "{}: not present (no sshd service)",
            local.display()
        ));
    };
    let vendor = (path != local).then(|| path.clone());
    let sshd = stacks(dirs, "sshd");
    if !sshd.nsjail_session {
        return Finding::problem(
            format!(
                "{}: pam_nsjail is not enabled for ssh logins\n  fix: echo '@include nsjail' >> {}",
                path.display(),
                local.display()
            ),
            Some(Fix::Include {
                local,
                vendor,
                auth_first: !skips_before_ours(dirs, "sshd", true).is_empty(),
            }),
        );
    }
    if !sshd.nsjail_auth {
        return Finding::problem(
            format!(
                "{}: 'session pam_nsjail.so' without 'auth optional pam_nsjail.so': isolated logins will be refused\n  fix: use '@include nsjail', which has both lines",
                path.display()
            ),
            Some(Fix::AuthFirst { local }),
        );
    }
    let skips = setcred_skips(dirs, "sshd");
    if skips.is_empty() {
        return Finding::ok(format!(
            "{}: ok (auth and session lines present)",
            path.display()
        ));
    }
    Finding::problem(
        format!(
            "{}: pam_setcred can stop before 'auth optional pam_nsjail.so' at: {}; isolated logins are then refused\n  fix: put the line 'auth optional pam_nsjail.so' before them (e.g. as the first auth line of {}); keep '@include nsjail' for the session line",
            path.display(),
            skips.join("; "),
            local.display()
        ),
        Some(Fix::AuthFirst { local }),
    )
}

/// The drop-in `NotifyAccess=all` a user manager in a set needs: its
/// readiness comes from the set's process, not the unit's MainPID (the
/// relay); without it the unit times out and the user's logins wait.
const USER_MANAGER_DROPIN: &str = "user@.service.d/pam_nsjail.conf";

/// A problem when `systemd-user` includes pam_nsjail on a systemd host
/// (one of `units` exists) and no unit directory has the drop-in.
fn user_manager_dropin(units: &[PathBuf]) -> Option<Finding> {
    if !units.iter().any(|d| d.is_dir())
        || units.iter().any(|d| d.join(USER_MANAGER_DROPIN).is_file())
    {
        return None;
    }
    let want = units.first()?.join(USER_MANAGER_DROPIN);
    Some(Finding::problem(
        format!(
            "systemd-user includes pam_nsjail, but no {USER_MANAGER_DROPIN} drop-in (NotifyAccess=all) is installed: an isolated user's manager never reports ready, user@.service times out (90 s by default) and her logins wait for it\n  fix: install the package's drop-in, or create {} with '[Service]' and 'NotifyAccess=all', then systemctl daemon-reload",
            want.display()
        ),
        None,
    ))
}

/// Findings for every session-opening service.
pub fn audit(dirs: &PamDirs) -> Vec<Finding> {
    let mut out = vec![sshd_finding(dirs)];
    for service in SESSION_SERVICES.iter().filter(|s| **s != "sshd") {
        let Some(path) = dirs.resolve(service) else {
            continue;
        };
        let st = stacks(dirs, service);
        if *service == "cron" && st.nsjail_session {
            // cron, like sshd, joins in the job's process through setcred.
            let skips = setcred_skips(dirs, service);
            if !st.nsjail_auth || !skips.is_empty() {
                out.push(Finding::problem(
                    format!(
                        "{}: pam_setcred cannot reach 'auth optional pam_nsjail.so'{}: isolated users' cron jobs are refused\n  fix: use '@include nsjail', which has both lines, with no 'sufficient' module, 'done' action or [success=N] jump before the auth line (or put 'auth optional pam_nsjail.so' first)",
                        path.display(),
                        if skips.is_empty() {
                            String::new()
                        } else {
                            format!(" (stops at: {})", skips.join("; "))
                        }
                    ),
                    Some(Fix::AuthFirst {
                        local: dirs.local.join(service),
                    }),
                ));
                continue;
            }
        }
        if *service == "systemd-user" && st.nsjail_session {
            if let Some(f) = user_manager_dropin(&dirs.systemd_units) {
                out.push(f);
                continue;
            }
        }
        if st.session_lines == 0 || st.nsjail_session {
            out.push(Finding::ok(format!("{}: ok", path.display())));
        } else {
            out.push(bypass(dirs, service, &path));
        }
    }
    out
}

/// sshd's `UsePAM`, as sshd reads it: the first value found in `config`
/// and the files it `Include`s, in order, up to the first `Match`
/// (`UsePAM` is not allowed there). `None` when the file cannot be read.
pub fn sshd_use_pam(config: &Path) -> Option<bool> {
    fn walk(path: &Path, depth: usize, in_match: &mut bool) -> Option<Option<bool>> {
        let text = fs::read_to_string(path).ok()?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line
                .split(|c: char| c.is_whitespace() || c == '=')
                .filter(|w| !w.is_empty());
            let (Some(key), value) = (words.next(), words.next()) else {
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "match" => *in_match = true,
                "include" if depth < 16 => {
                    for pattern in std::iter::once(value).flatten().chain(words) {
                        for file in include_files(path, pattern) {
                            if let Some(Some(v)) = walk(&file, depth + 1, in_match) {
                                return Some(Some(v));
                            }
                        }
                    }
                }
                "usepam" if !*in_match => {
                    return Some(Some(value.is_some_and(|v| v.eq_ignore_ascii_case("yes"))));
                }
                _ => {}
            }
        }
        Some(None)
    }
    let mut in_match = false;
    // OpenSSH's built-in default is `UsePAM no`.
    walk(config, 0, &mut in_match).map(|v| v.unwrap_or(false))
}

/// The files an sshd `Include` names: relative to /etc/ssh (the
/// including file's directory), with `*` globbing in the file name only,
/// in lexical order as sshd's glob(3) gives them.
fn include_files(from: &Path, pattern: &str) -> Vec<PathBuf> {
    let pattern = match Path::new(pattern) {
        p if p.is_absolute() => p.to_owned(),
        p => from.parent().unwrap_or(Path::new("/")).join(p),
    };
    let (Some(dir), Some(name)) = (
        pattern.parent(),
        pattern.file_name().and_then(|n| n.to_str()),
    ) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.clone()];
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_owned();
            (n.len() >= prefix.len() + suffix.len()
                && n.starts_with(prefix)
                && n.ends_with(suffix)
                && !n.starts_with('.'))
            .then(|| e.path())
        })
        .collect();
    files.sort();
    files
}

/// The finding for sshd's `UsePAM`.
fn use_pam_finding(config: &Path) -> Option<Finding> {
    match sshd_use_pam(config)? {
        true => Some(Finding::ok(format!("{}: UsePAM yes", config.display()))),
        false => Some(Finding::problem(
            format!(
                "{}: sshd does not use PAM (UsePAM no, or not set: OpenSSH's default is no): no ssh login reaches pam_nsjail, every user gets an unconfined session\n  fix: set 'UsePAM yes' in {} (before any Match block) and restart sshd",
                config.display(),
                config.display()
            ),
            None,
        )),
    }
}

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(
        args,
        &[
            "--pam-dir",
            "--vendor-dir",
            "--config",
            "--sshd-config",
            "--systemd-dir",
        ],
        &["--fix"],
    )?;
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
        systemd_units: match args.option("--systemd-dir") {
            Some(d) => vec![PathBuf::from(d)],
            None => vec![
                PathBuf::from("/etc/systemd/system"),
                PathBuf::from("/usr/lib/systemd/system"),
            ],
        },
    };
    if !dirs.local.is_dir() {
        return Err(super::fail(dirs.local.display(), "not a directory"));
    }
    let mut findings = audit(&dirs);
    if args.switch("--fix") {
        print!("{}", fix_report(&findings));
        return Ok(0);
    }
    let sshd_config = Path::new(args.option("--sshd-config").unwrap_or(paths::SSHD_CONFIG));
    if dirs.resolve("sshd").is_some() {
        findings.extend(use_pam_finding(sshd_config));
    }
    let mut problems = 0;
    for f in &findings {
        if f.problem {
            problems += 1;
            println!("warning: {}", f.message);
        } else {
            println!("{}", f.message);
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
        println!("{problems} problem(s) found (`nsjail-helper audit --fix` prints the PAM fixes as a script)");
        Ok(1)
    } else {
        println!("no problems found");
        Ok(0)
    }
}

/// `--fix`: every PAM fix of `findings` as one reviewed-then-run script.
pub fn fix_report(findings: &[Finding]) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# nsjail-helper audit --fix: review, then run as root. Idempotent.\nset -e\n",
    );
    let mut n = 0;
    for f in findings.iter().filter(|f| f.problem) {
        let Some(fix) = &f.fix else { continue };
        n += 1;
        let what = f.message.lines().next().unwrap_or_default();
        out.push_str(&format!("\n# {what}\n{}", fix_script(fix)));
    }
    if n == 0 {
        out.push_str("# nothing to fix in the PAM stacks\n");
    }
    out
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
            systemd_units: Vec::new(),
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
            systemd_units: Vec::new(),
        };
        let findings = audit(&dirs);
        let user = findings
            .iter()
            .find(|f| f.message.contains("systemd-user"))
            .expect("systemd-user is audited from the vendor directory");
        assert!(user.problem, "{}", user.message);
        assert!(
            user.message.starts_with(&format!(
                "{}: 'systemd-user' opens sessions",
                vendor.join("systemd-user").display()
            )),
            "{}",
            user.message
        );
        assert!(
            user.message.contains(&format!(
                "fix: cp {} {}",
                vendor.join("systemd-user").display(),
                local.join("systemd-user").display()
            )),
            "{}",
            user.message
        );
        assert!(
            user.message.contains(
                "runs the user manager (systemd --user) of isolated users inside their set"
            ),
            "{}",
            user.message
        );
        assert!(findings.iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| *bad
                && m.contains("'cron'")
                && m.contains("cron jobs inside their set")
        ));
        // The local sshd overrides the vendor one.
        assert!(findings.iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| !*bad
                && m.starts_with(&format!("{}: ok", local.join("sshd").display()))
        ));
        // A local copy with the include fixes systemd-user.
        fs::write(
            local.join("systemd-user"),
            "session required pam_unix.so\n@include nsjail\n",
        )
        .unwrap();
        assert!(audit(&dirs).iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| !*bad && m == &format!("{}: ok", local.join("systemd-user").display())
        ));
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
        assert!(findings.iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| *bad && m.contains("/su:")
        ));
        assert!(findings.iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| !*bad && m.contains("/sshd: ok")
        ));
        assert!(!findings.iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| *bad && m.contains("/login")
        ));
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
            .find(|f| f.message.contains("/sshd:"))
            .expect("sshd audited");
        assert!(sshd.problem, "{}", sshd.message);
        assert!(
            sshd.message
                .contains("fix: put the line 'auth optional pam_nsjail.so' before them"),
            "{}",
            sshd.message
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
        assert!(audit(&only(&dir)).iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| !*bad && m.contains("/sshd: ok")
        ));
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
        assert!(audit(&only(&dir)).iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| !*bad && m.contains("/sshd: ok")
        ));
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
        assert!(audit(&only(&dir)).iter().any(
            |Finding {
                 problem: bad,
                 message: m,
                 ..
             }| *bad && m.contains("without 'auth optional")
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_fix_script_makes_audit_content_and_is_idempotent() {
        let nsjail = "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n";
        let vendor = pam_dir_named(
            "fix-vendor",
            &[("systemd-user", "session required pam_unix.so\n")],
        );
        let local = pam_dir_named(
            "fix-local",
            &[
                ("nsjail", nsjail),
                (
                    "common-auth",
                    "auth sufficient pam_sss.so\nauth required pam_unix.so\n",
                ),
                (
                    "sshd",
                    "@include common-auth\nsession required pam_unix.so\n@include nsjail\n",
                ),
                (
                    "cron",
                    "@include common-auth\nsession required pam_unix.so\n",
                ),
                ("su", "session required pam_unix.so # it's quoted\n"),
            ],
        );
        let dirs = PamDirs {
            local: local.clone(),
            vendor: Some(vendor.clone()),
            systemd_units: Vec::new(),
        };
        let before = audit(&dirs);
        assert_eq!(before.iter().filter(|f| f.problem).count(), 4, "{before:?}");
        let script = fix_report(&before);
        let run = |script: &str| {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .status()
                .unwrap();
            assert!(status.success(), "{script}");
        };
        run(&script);
        let after = audit(&dirs);
        assert!(after.iter().all(|f| !f.problem), "{after:?}\n{script}");
        assert!(fix_report(&after).contains("nothing to fix"));
        // The auth line went first; the vendor file was copied.
        let sshd = fs::read_to_string(local.join("sshd")).unwrap();
        assert!(
            sshd.starts_with("auth     optional   pam_nsjail.so\n@include common-auth"),
            "{sshd}"
        );
        assert!(local.join("systemd-user").is_file());
        // Twice: nothing changes.
        let files = |d: &Path| {
            let mut v: Vec<(String, String)> = fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read_to_string(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let once = files(&local);
        run(&script);
        assert_eq!(files(&local), once);
        fs::remove_dir_all(&vendor).unwrap();
        fs::remove_dir_all(&local).unwrap();
    }

    #[test]
    fn use_pam_is_read_as_sshd_reads_it() {
        let dir = pam_dir_named("sshd-config", &[]);
        fs::create_dir_all(dir.join("sshd_config.d")).unwrap();
        let main = dir.join("sshd_config");
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
        // Debian's layout: an Include first, UsePAM yes later.
        write(
            "sshd_config",
            &format!(
                "Include {}/sshd_config.d/*.conf\nPort 22\nUsePAM yes\n",
                dir.display()
            ),
        );
        assert_eq!(sshd_use_pam(&main), Some(true));
        // A drop-in read first wins (the first value obtained is used).
        write("sshd_config.d/10-nopam.conf", "  usepam = no # local\n");
        write("sshd_config.d/20-yes.conf", "UsePAM yes\n");
        assert_eq!(sshd_use_pam(&main), Some(false));
        assert!(use_pam_finding(&main).unwrap().problem);
        // Files that do not match the glob are not read.
        fs::remove_file(dir.join("sshd_config.d/10-nopam.conf")).unwrap();
        write("sshd_config.d/10-nopam.conf.disabled", "UsePAM no\n");
        assert_eq!(sshd_use_pam(&main), Some(true));
        // Not set at all: OpenSSH's default is no. Match blocks do not count.
        write("sshd_config", "Port 22\nMatch User bob\n  UsePAM yes\n");
        assert_eq!(sshd_use_pam(&main), Some(false));
        // Relative includes are relative to the including file's directory.
        write("sshd_config", "Include sshd_config.d/*.conf\n");
        assert_eq!(sshd_use_pam(&main), Some(true));
        assert!(!use_pam_finding(&main).unwrap().problem);
        assert_eq!(sshd_use_pam(&dir.join("missing")), None);
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
                .find(|f| f.message.contains("/cron"))
                .expect("cron audited");
            let _ = fs::remove_dir_all(&dir);
            found
        };
        let f = cron_of("cron-ok", "session required pam_unix.so\n@include nsjail\n");
        assert!(!f.problem, "{}", f.message);
        let f = cron_of("cron-noauth", "session required pam_nsjail.so\n");
        assert!(
            f.problem && f.message.contains("isolated users' cron jobs are refused"),
            "{}",
            f.message
        );
        let f = cron_of(
            "cron-skip",
            "auth sufficient pam_rootok.so\n@include nsjail\n",
        );
        assert!(
            f.problem
                && f.message
                    .contains("stops at: auth sufficient pam_rootok.so"),
            "{}",
            f.message
        );
        assert!(matches!(f.fix, Some(Fix::AuthFirst { .. })));
    }

    #[test]
    fn a_user_manager_in_a_set_needs_the_dropin() {
        let units = pam_dir_named("units", &[]);
        let pam = pam_dir_named(
            "um-pam",
            &[
                (
                    "nsjail",
                    "auth optional pam_nsjail.so\nsession required pam_nsjail.so\n",
                ),
                (
                    "systemd-user",
                    "session required pam_unix.so\n@include nsjail\n",
                ),
            ],
        );
        let dirs = PamDirs {
            local: pam.clone(),
            vendor: None,
            systemd_units: vec![units.clone()],
        };
        let um = |dirs: &PamDirs| {
            audit(dirs)
                .into_iter()
                .find(|f| f.message.contains("systemd-user") || f.message.contains("drop-in"))
                .expect("systemd-user audited")
        };
        let f = um(&dirs);
        assert!(
            f.problem && f.message.contains("NotifyAccess=all"),
            "{}",
            f.message
        );
        fs::create_dir_all(units.join("user@.service.d")).unwrap();
        fs::write(
            units.join(USER_MANAGER_DROPIN),
            "[Service]\nNotifyAccess=all\n",
        )
        .unwrap();
        assert!(!um(&dirs).problem);
        // No systemd unit directory at all: not a systemd host.
        let none = PamDirs {
            local: pam.clone(),
            vendor: None,
            systemd_units: vec![units.join("missing")],
        };
        assert!(!um(&none).problem);
        fs::remove_dir_all(&units).unwrap();
        fs::remove_dir_all(&pam).unwrap();
    }
}
