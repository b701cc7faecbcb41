//! The policy file (`/etc/security/pam_nsjail.toml`, DESIGN §4): trust
//! check, parsing with unknown keys rejected, semantic validation with
//! line:column for every error, and first-match-in-file-order decisions.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::user::UserInfo;

/// Largest policy file we read.
const MAX_POLICY_BYTES: u64 = 1 << 20;
/// Most private_tmp entries per policy.
const MAX_PRIVATE_TMP: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
}

impl Namespace {
    const ALL: [Namespace; 6] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
    ];
    const REQUIRED: [Namespace; 4] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mount",
            Namespace::Pid => "pid",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Net => "net",
        }
    }
}

/// Defines a string-valued setting enum with its TOML spellings.
macro_rules! choice {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
            fn choices() -> &'static str {
                concat!($("\"", $text, "\" "),+)
            }
        }
    };
}

choice!(Share { User = "user", Session = "session" });
choice!(Propagation { Slave = "slave", Private = "private" });
choice!(SubidMode { Required = "required", Optional = "optional" });
choice!(OnLogout { Kill = "kill", Linger = "linger" });

/// What an isolating policy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub namespaces: Vec<Namespace>,
    pub share: Share,
    pub private_tmp: Vec<PathBuf>,
    /// Canonical tmpfs `size=` value, e.g. "512M" or "10%".
    pub tmp_size: Option<String>,
    pub propagation: Propagation,
    pub subids: SubidMode,
    pub on_logout: OnLogout,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Namespace::REQUIRED.to_vec(),
            share: Share::User,
            private_tmp: ["/tmp", "/var/tmp", "/dev/shm"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            tmp_size: None,
            propagation: Propagation::Slave,
            subids: SubidMode::Required,
            on_logout: OnLogout::Kill,
        }
    }
}

/// One validated `[[policy]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    pub name: String,
    pub groups: Vec<String>,
    pub users: Vec<String>,
    pub services: Vec<String>,
    pub isolate: bool,
    pub settings: Settings,
    /// Line of the `[[policy]]` header.
    pub line: usize,
}

/// A validated policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    defaults_isolate: bool,
    defaults: Settings,
    policies: Vec<PolicyEntry>,
}

/// Why a policy applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchReason {
    Root,
    User {
        user: String,
    },
    Group {
        user: String,
        group: String,
        primary: bool,
    },
    Defaults {
        user: String,
    },
}

impl fmt::Display for MatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchReason::Root => write!(f, "root (uid 0) is never isolated"),
            MatchReason::User { user } => write!(f, "{user} is listed in users"),
            MatchReason::Group {
                user,
                group,
                primary,
            } => {
                let kind = if *primary { "primary" } else { "supplementary" };
                write!(f, "{user} is in group {group} ({kind})")
            }
            MatchReason::Defaults { user } => {
                write!(f, "no policy matches {user}; [defaults] applies")
            }
        }
    }
}

/// The outcome for one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Policy name, "defaults", or "-" for root.
    pub policy: String,
    pub reason: MatchReason,
    /// `Some` exactly when the login is isolated.
    pub settings: Option<Settings>,
}

impl Config {
    pub fn policies(&self) -> &[PolicyEntry] {
        &self.policies
    }

    /// Every group name the file refers to.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.policies
            .iter()
            .flat_map(|p| p.groups.iter().map(String::as_str))
    }

    /// First `[[policy]]` in file order that matches `service` and the
    /// user (by name, or by primary or supplementary group), else
    /// `[defaults]`. Root is never isolated.
    pub fn decide(&self, user: &UserInfo, service: &str) -> Decision {
        if user.uid == 0 {
            return Decision {
                policy: "-".into(),
                reason: MatchReason::Root,
                settings: None,
            };
        }
        for p in &self.policies {
            if !p.services.is_empty() && !p.services.iter().any(|s| s == service) {
                continue;
            }
            let reason = if p.users.contains(&user.name) {
                Some(MatchReason::User {
                    user: user.name.clone(),
                })
            } else {
                user.groups.iter().find_map(|g| {
                    let name = g.name.as_deref()?;
                    p.groups
                        .iter()
                        .any(|pg| pg == name)
                        .then(|| MatchReason::Group {
                            user: user.name.clone(),
                            group: name.to_owned(),
                            primary: g.primary,
                        })
                })
            };
            if let Some(reason) = reason {
                return Decision {
                    policy: p.name.clone(),
                    reason,
                    settings: p.isolate.then(|| p.settings.clone()),
                };
            }
        }
        Decision {
            policy: "defaults".into(),
            reason: MatchReason::Defaults {
                user: user.name.clone(),
            },
            settings: self.defaults_isolate.then(|| self.defaults.clone()),
        }
    }
}

/// One error, with its position in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub source_line: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl ConfigError {
    /// The error line, then the offending source line and a caret under
    /// the column (like visudo).
    pub fn render_with_caret(&self) -> String {
        let mut out = format!("{self}\n");
        if let Some(src) = &self.source_line {
            out.push_str(&format!(
                "    {src}\n    {}^\n",
                " ".repeat(self.col.saturating_sub(1))
            ));
        }
        out
    }
}

/// Why the policy could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Untrusted {
        path: PathBuf,
        why: String,
    },
    Parse(Vec<ConfigError>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "{}: cannot read policy: {error}", path.display())
            }
            LoadError::Untrusted { path, why } => write!(
                f,
                "{}: refusing policy: {why}; it must be root-owned and not group/world-writable",
                path.display()
            ),
            LoadError::Parse(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads `path` after checking it can be trusted: a regular file (not a
/// symlink), root-owned, not group/world-writable, in a root-owned
/// directory that is not group/world-writable.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_with_text(path).map(|(config, _)| config)
}

/// `load`, also returning the text that was validated.
pub fn load_with_text(path: &Path) -> Result<(Config, String), LoadError> {
    let io = |error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    let untrusted = |why: String| LoadError::Untrusted {
        path: path.to_owned(),
        why,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dmeta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !dmeta.is_dir() || dmeta.uid() != 0 || dmeta.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "directory {} is {} (owner uid {}, mode {:04o})",
            dir.display(),
            if dmeta.is_dir() {
                "not trustworthy"
            } else {
                "not a directory"
            },
            dmeta.uid(),
            dmeta.mode() & 0o7777
        )));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                untrusted("it is a symbolic link".into())
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(untrusted("not a regular file".into()));
    }
    if meta.uid() != 0 {
        return Err(untrusted(format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(untrusted(format!(
            "file is world-writable (mode {:04o})",
            meta.mode() & 0o7777
        )));
    }
    if meta.mode() & 0o020 != 0 {
        return Err(untrusted(format!(
            "file is group-writable (mode {:04o})",
            meta.mode() & 0o7777
        )));
    }
    let mut text = String::new();
    (&mut file as &mut File)
        .take(MAX_POLICY_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    let config = parse(path, &text).map_err(LoadError::Parse)?;
    Ok((config, text))
}

// ---- raw TOML shape -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawPolicy>>,
    policy: Option<Vec<Spanned<RawPolicy>>>,
}

type SpannedList = Spanned<Vec<Spanned<String>>>;

/// Both `[defaults]` and `[[policy]]`; keys that only make sense in a
/// policy are rejected in `[defaults]` by validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<Spanned<String>>,
    groups: Option<SpannedList>,
    users: Option<SpannedList>,
    services: Option<SpannedList>,
    isolate: Option<Spanned<bool>>,
    namespaces: Option<SpannedList>,
    share: Option<Spanned<String>>,
    private_tmp: Option<SpannedList>,
    tmp_size: Option<Spanned<String>>,
    propagation: Option<Spanned<String>>,
    subids: Option<Spanned<String>>,
    on_logout: Option<Spanned<String>>,
}

/// Collects errors with positions while validating.
struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        let source_line = self.text[line_start..].lines().next().map(str::to_owned);
        self.errors.push(ConfigError {
            path: self.path.to_owned(),
            line,
            col,
            message: message.into(),
            source_line,
        });
    }

    fn name_list(&mut self, what: &str, list: &Option<SpannedList>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in list.iter().flat_map(|l| l.get_ref()) {
            let name = item.get_ref();
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c == ':' || c == '/')
            {
                self.error(item.span(), format!("invalid {what} name {name:?}"));
            } else if out.contains(name) {
                self.error(item.span(), format!("duplicate {what} {name:?}"));
            } else {
                out.push(name.clone());
            }
        }
        out
    }

    fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        parse: fn(&str) -> Option<T>,
        choices: &str,
        inherited: T,
    ) -> T {
        match value {
            None => inherited,
            Some(v) => parse(v.get_ref()).unwrap_or_else(|| {
                self.error(
                    v.span(),
                    format!(
                        "invalid {key} {:?}: expected one of {}",
                        v.get_ref(),
                        choices.trim_end()
                    ),
                );
                inherited
            }),
        }
    }

    fn namespaces(&mut self, raw: &SpannedList, isolate: bool) -> Vec<Namespace> {
        let mut out = Vec::new();
        for item in raw.get_ref() {
            match Namespace::ALL.iter().find(|n| n.as_str() == item.get_ref()) {
                None => self.error(
                    item.span(),
                    format!(
                        "unknown namespace {:?}: expected user, mount, pid, ipc (required) and optionally uts, net",
                        item.get_ref()
                    ),
                ),
                Some(n) if out.contains(n) => self.error(item.span(), format!("duplicate namespace {:?}", n.as_str())),
                Some(n) => out.push(*n),
            }
        }
        let missing: Vec<&str> = Namespace::REQUIRED
            .iter()
            .filter(|n| !out.contains(n))
            .map(|n| n.as_str())
            .collect();
        if isolate && !missing.is_empty() {
            self.error(
                raw.span(),
                format!(
                    "namespaces must include user, mount, pid and ipc (missing: {}); uts and net are the optional extras",
                    missing.join(", ")
                ),
            );
        }
        out
    }

    fn private_tmp(&mut self, raw: &SpannedList) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        if raw.get_ref().len() > MAX_PRIVATE_TMP {
            self.error(
                raw.span(),
                format!("private_tmp has more than {MAX_PRIVATE_TMP} entries"),
            );
        }
        for item in raw.get_ref() {
            let p = item.get_ref();
            if let Some(why) = bad_private_dir(p) {
                self.error(
                    item.span(),
                    format!("invalid private_tmp entry {p:?}: {why}"),
                );
            } else if out.iter().any(|o| o.as_os_str() == p.as_str()) {
                self.error(item.span(), format!("duplicate private_tmp entry {p:?}"));
            } else {
                out.push(PathBuf::from(p));
            }
        }
        out
    }

    fn tmp_size(&mut self, raw: &Spanned<String>) -> Option<String> {
        let v = raw.get_ref();
        if valid_size(v) {
            Some(v.clone())
        } else {
            self.error(
                raw.span(),
                format!("invalid tmp_size {v:?}: expected a size like \"512M\", \"2G\", \"65536k\" or a percentage \"1%\"..\"100%\""),
            );
            None
        }
    }

    /// Settings of `raw`, inheriting unset keys from `base`.
    fn settings(&mut self, raw: &RawPolicy, base: &Settings, isolate: bool) -> Settings {
        Settings {
            namespaces: match &raw.namespaces {
                Some(ns) => self.namespaces(ns, isolate),
                None => base.namespaces.clone(),
            },
            share: self.choice(
                "share",
                &raw.share,
                Share::parse,
                Share::choices(),
                base.share,
            ),
            private_tmp: match &raw.private_tmp {
                Some(list) => self.private_tmp(list),
                None => base.private_tmp.clone(),
            },
            tmp_size: match &raw.tmp_size {
                Some(s) => self.tmp_size(s),
                None => base.tmp_size.clone(),
            },
            propagation: self.choice(
                "propagation",
                &raw.propagation,
                Propagation::parse,
                Propagation::choices(),
                base.propagation,
            ),
            subids: self.choice(
                "subids",
                &raw.subids,
                SubidMode::parse,
                SubidMode::choices(),
                base.subids,
            ),
            on_logout: self.choice(
                "on_logout",
                &raw.on_logout,
                OnLogout::parse,
                OnLogout::choices(),
                base.on_logout,
            ),
        }
    }
}

/// Why `p` cannot be a private tmpfs mount point, if it cannot.
fn bad_private_dir(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("must be an absolute path");
    }
    if p == "/" {
        return Some("cannot be /");
    }
    if p.ends_with('/')
        || p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("must be normalized (no '.', '..', '//' or trailing '/')");
    }
    let under = |root: &str| p == root || p.starts_with(&format!("{root}/"));
    if under("/proc")
        || under("/sys")
        || (under("/dev") && p != "/dev/shm")
        || under("/run/pam_nsjail")
    {
        return Some("must not be under /proc, /sys, /dev (except /dev/shm) or /run/pam_nsjail");
    }
    None
}

/// A tmpfs size: digits with an optional k/m/g suffix, or 1%..100%.
fn valid_size(v: &str) -> bool {
    if let Some(pct) = v.strip_suffix('%') {
        return pct.parse::<u32>().is_ok_and(|n| (1..=100).contains(&n))
            && pct.chars().all(|c| c.is_ascii_digit());
    }
    let digits = v.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(v);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

/// Parses and validates policy text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        path,
        text,
        errors: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().trim().replace('\n', " ");
            v.error(e.span().unwrap_or(0..0), message);
            return Err(v.errors);
        }
    };
    let (defaults_isolate, defaults) = match &raw.defaults {
        None => (false, Settings::default()),
        Some(d) => {
            let d_ref = d.get_ref();
            for (key, span) in [
                ("name", d_ref.name.as_ref().map(|s| s.span())),
                ("groups", d_ref.groups.as_ref().map(|s| s.span())),
                ("users", d_ref.users.as_ref().map(|s| s.span())),
                ("services", d_ref.services.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = span {
                    v.error(
                        span,
                        format!(
                            "'{key}' is not allowed in [defaults]: it only applies to a [[policy]]"
                        ),
                    );
                }
            }
            let isolate = d_ref.isolate.as_ref().is_some_and(|i| *i.get_ref());
            let settings = v.settings(d_ref, &Settings::default(), isolate);
            (isolate, settings)
        }
    };
    let mut policies: Vec<PolicyEntry> = Vec::new();
    for p in raw.policy.iter().flatten() {
        let p_ref = p.get_ref();
        let header = p.span();
        let name = match &p_ref.name {
            None => {
                v.error(header.clone(), "policy has no name: add name = \"...\"");
                String::new()
            }
            Some(n) if n.get_ref().is_empty() => {
                v.error(n.span(), "policy name must not be empty");
                String::new()
            }
            Some(n) if policies.iter().any(|q| q.name == *n.get_ref()) => {
                v.error(n.span(), format!("duplicate policy name {:?}", n.get_ref()));
                n.get_ref().clone()
            }
            Some(n) => n.get_ref().clone(),
        };
        let groups = v.name_list("group", &p_ref.groups);
        let users = v.name_list("user", &p_ref.users);
        let services = v.name_list("service", &p_ref.services);
        if groups.is_empty() && users.is_empty() {
            v.error(
                header.clone(),
                format!("policy {name:?} matches nobody: set groups or users"),
            );
        }
        let isolate = p_ref.isolate.as_ref().is_none_or(|i| *i.get_ref());
        let settings = v.settings(p_ref, &defaults, isolate);
        let line = text[..header.start.min(text.len())].matches('\n').count() + 1;
        policies.push(PolicyEntry {
            name,
            groups,
            users,
            services,
            isolate,
            settings,
            line,
        });
    }
    // A [defaults] without every required namespace is only an error if
    // it isolates; a policy inheriting it is checked here.
    for (p, raw_p) in policies.iter().zip(raw.policy.iter().flatten()) {
        if p.isolate
            && raw_p.get_ref().namespaces.is_none()
            && !Namespace::REQUIRED
                .iter()
                .all(|n| p.settings.namespaces.contains(n))
        {
            v.error(raw_p.span(), format!("policy {:?} inherits namespaces without user, mount, pid and ipc from [defaults]", p.name));
        }
    }
    if v.errors.is_empty() {
        Ok(Config {
            defaults_isolate,
            defaults,
            policies,
        })
    } else {
        v.errors.sort_by_key(|e| (e.line, e.col));
        Err(v.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::GroupMembership;

    fn user(name: &str, uid: u32, groups: &[(&str, u32, bool)]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid,
            gid: groups.iter().find(|g| g.2).map_or(uid, |g| g.1),
            home: "/home/x".into(),
            shell: "/bin/sh".into(),
            groups: groups
                .iter()
                .map(|(n, gid, primary)| GroupMembership {
                    gid: *gid,
                    name: Some((*n).into()),
                    primary: *primary,
                })
                .collect(),
        }
    }

    fn cfg(text: &str) -> Config {
        parse(Path::new("/p.toml"), text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn errs(text: &str) -> Vec<String> {
        parse(Path::new("/p.toml"), text)
            .expect_err("must fail")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const EXAMPLE: &str = r#"
[defaults]
isolate = false

[[policy]]
name = "admins"
groups = ["admins"]
isolate = false

[[policy]]
name = "students"
groups = ["students"]
tmp_size = "512M"

[[policy]]
name = "guests"
users = ["guest"]
services = ["sshd"]
share = "session"
"#;

    #[test]
    fn supplementary_and_primary_group_matches() {
        let c = cfg(EXAMPLE);
        let alice = user(
            "alice",
            1001,
            &[("alice", 1002, true), ("students", 1001, false)],
        );
        let d = c.decide(&alice, "sshd");
        assert_eq!(d.policy, "students");
        assert_eq!(
            d.reason.to_string(),
            "alice is in group students (supplementary)"
        );
        let s = d.settings.expect("isolated");
        assert_eq!(s.tmp_size.as_deref(), Some("512M"));
        assert_eq!(
            s,
            Settings {
                tmp_size: Some("512M".into()),
                ..Settings::default()
            }
        );
        let bob = user("bob", 1003, &[("students", 1001, true)]);
        assert_eq!(
            c.decide(&bob, "sshd").reason.to_string(),
            "bob is in group students (primary)"
        );
    }

    #[test]
    fn first_match_wins_and_exemptions() {
        let c = cfg(EXAMPLE);
        let both = user(
            "dave",
            1005,
            &[
                ("dave", 1005, true),
                ("students", 1001, false),
                ("admins", 1004, false),
            ],
        );
        let d = c.decide(&both, "sshd");
        assert_eq!(d.policy, "admins");
        assert!(d.settings.is_none());
    }

    #[test]
    fn users_and_services() {
        let c = cfg(EXAMPLE);
        let guest = user("guest", 2000, &[("guest", 2000, true)]);
        let d = c.decide(&guest, "sshd");
        assert_eq!(d.policy, "guests");
        assert_eq!(d.reason.to_string(), "guest is listed in users");
        assert_eq!(d.settings.expect("isolated").share, Share::Session);
        let d = c.decide(&guest, "login");
        assert_eq!(d.policy, "defaults");
        assert!(d.settings.is_none());
    }

    #[test]
    fn root_and_defaults() {
        let c = cfg("[defaults]\nisolate = true\nshare = \"session\"\n");
        let root = user("root", 0, &[("root", 0, true)]);
        assert_eq!(c.decide(&root, "sshd").reason, MatchReason::Root);
        assert!(c.decide(&root, "sshd").settings.is_none());
        let eve = user("eve", 1010, &[("eve", 1010, true)]);
        let d = c.decide(&eve, "sshd");
        assert_eq!(d.policy, "defaults");
        assert_eq!(
            d.settings.expect("isolated by defaults").share,
            Share::Session
        );
    }

    #[test]
    fn policies_inherit_defaults() {
        let c = cfg("[defaults]\non_logout = \"linger\"\nprivate_tmp = [\"/tmp\"]\n[[policy]]\nname = \"s\"\ngroups = [\"s\"]\n");
        let s = &c.policies()[0].settings;
        assert_eq!(s.on_logout, OnLogout::Linger);
        assert_eq!(s.private_tmp, vec![PathBuf::from("/tmp")]);
        assert_eq!(c.policies()[0].line, 4);
    }

    #[test]
    fn malformed_toml_has_line_and_column() {
        let e = errs("[[policy]]\nname = \"x\"\ngroups = [\"a\"\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("/p.toml:4:1: ") && e[0].contains("expected `]`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = errs("[[policy]]\nname = \"x\"\ngroups = [\"a\"]\nisolat = true\n");
        assert!(e[0].starts_with("/p.toml:4:1: "), "{}", e[0]);
        assert!(e[0].contains("isolat"), "{}", e[0]);
        let e = errs("[defualts]\n");
        assert!(e[0].contains("defualts"), "{}", e[0]);
    }

    #[test]
    fn semantic_errors_with_positions() {
        let text = r#"[[policy]]
name = "a"
groups = ["g"]
namespaces = ["user", "mount", "pid", "ipc", "time"]
share = "everyone"
private_tmp = ["tmp", "/proc/x", "/tmp/../etc", "/dev/shm", "/dev/shm"]
tmp_size = "lots"
propagation = "shared"
subids = "maybe"
on_logout = "never"

[[policy]]
name = "a"
groups = ["g", "g"]
namespaces = ["user", "net"]

[[policy]]
name = "nobody"
"#;
        let e = errs(text);
        let has = |prefix: &str, needle: &str| {
            assert!(
                e.iter()
                    .any(|m| m.starts_with(prefix) && m.contains(needle)),
                "no {prefix} {needle} in {e:#?}"
            );
        };
        has("/p.toml:4:46:", "unknown namespace \"time\"");
        has(
            "/p.toml:5:9:",
            "invalid share \"everyone\": expected one of \"user\" \"session\"",
        );
        has("/p.toml:6:16:", "must be an absolute path");
        has("/p.toml:6:23:", "/proc");
        has("/p.toml:6:34:", "normalized");
        has("/p.toml:6:61:", "duplicate private_tmp");
        has("/p.toml:7:12:", "invalid tmp_size");
        has("/p.toml:8:15:", "invalid propagation");
        has("/p.toml:9:10:", "invalid subids");
        has("/p.toml:10:13:", "invalid on_logout");
        has("/p.toml:13:8:", "duplicate policy name");
        has("/p.toml:14:16:", "duplicate group");
        has("/p.toml:15:14:", "missing: mount, pid, ipc");
        has("/p.toml:17:1:", "matches nobody");
    }

    #[test]
    fn defaults_reject_policy_only_keys() {
        let e = errs("[defaults]\nname = \"x\"\n");
        assert!(
            e[0].starts_with("/p.toml:2:8:") && e[0].contains("not allowed in [defaults]"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn sizes() {
        for ok in ["512M", "1G", "65536k", "100%", "1%", "4096"] {
            assert!(valid_size(ok), "{ok}");
        }
        for bad in ["", "0", "0M", "101%", "0%", "-1M", "1T", "1.5G", "M", "%"] {
            assert!(!valid_size(bad), "{bad}");
        }
    }

    #[test]
    fn caret_points_at_the_column() {
        let e = parse(
            Path::new("/p.toml"),
            "[[policy]]\nname = \"a\"\ngroups = [\"g\"]\nshare = \"x\"\n",
        )
        .expect_err("bad");
        assert_eq!(e[0].render_with_caret(), "/p.toml:4:9: invalid share \"x\": expected one of \"user\" \"session\"\n    share = \"x\"\n            ^\n");
    }

    #[test]
    fn trust_check_refuses_writable_and_symlinked_files() {
        if crate::sys::geteuid() != 0 {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nsjail-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = dir.join("p.toml");
        std::fs::write(&file, EXAMPLE).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(load(&file).is_ok());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let e = load(&file).expect_err("world-writable").to_string();
        assert!(
            e.contains("world-writable") && e.starts_with(&file.display().to_string()),
            "{e}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(load(&link)
            .expect_err("symlink")
            .to_string()
            .contains("symbolic link"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(load(&file)
            .expect_err("open dir")
            .to_string()
            .contains("directory"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
