//! The policy file (`/etc/security/pam_nsjail.toml`, DESIGN §4): trust
//! check, parsing with unknown keys rejected, a semantic validation pass
//! that reports every error with line and column, and the
//! first-match-in-file-order decision for one login.
//!
//! Loading never panics: the PAM module runs this inside sshd.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use serde::Deserialize;
use toml::Spanned;

use crate::user::UserInfo;

/// Largest policy file we read; a longer one is refused rather than cut
/// short (a truncated file could silently drop policies).
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Most `private_tmp` entries per policy.
pub const MAX_PRIVATE_TMP: usize = 16;
/// Longest policy name. Names appear unquoted in `key=value` log lines,
/// hence also the restricted alphabet (see `policy_name_problem`).
pub const MAX_POLICY_NAME: usize = 64;
/// Longest `private_tmp` path (PATH_MAX, including the NUL).
const MAX_PATH: usize = 4095;

// ---- the validated model ---------------------------------------------------

/// A namespace a policy can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
}

impl Namespace {
    /// Every namespace, in the order the kernel joins them.
    pub const ALL: [Namespace; 6] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
    ];
    /// The namespaces an isolating policy must include: without any one of
    /// them the isolation DESIGN §1 promises does not hold.
    pub const REQUIRED: [Namespace; 4] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
    ];

    /// The TOML spelling.
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

    fn parse(text: &str) -> Option<Namespace> {
        Namespace::ALL.into_iter().find(|n| n.as_str() == text)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Defines a string-valued setting with its TOML spellings; `parse` and
/// the list of choices for error messages come from the same table.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The TOML spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// `"a", "b"` for error messages.
            fn choices() -> String {
                [$(concat!("\"", $text, "\"")),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// Who shares one namespace set.
    Share {
        /// All logins of one user share a set.
        User = "user",
        /// Every login gets its own set.
        Session = "session",
    }
);
choice!(
    /// Mount propagation from the host into the set.
    Propagation {
        Slave = "slave",
        Private = "private",
    }
);
choice!(
    /// What to do when the user has no `/etc/subuid` / `/etc/subgid` range.
    SubidMode {
        /// Refuse the login.
        Required = "required",
        /// Map only the user's own ids.
        Optional = "optional",
    }
);
choice!(
    /// What happens to a set when its last session ends.
    OnLogout {
        Kill = "kill",
        Linger = "linger",
    }
);

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
    /// The built-in defaults (DESIGN §4).
    fn default() -> Self {
        Settings {
            namespaces: Namespace::REQUIRED.to_vec(),
            share: Share::User,
            private_tmp: ["/tmp", "/var/tmp", "/dev/shm"]
                .into_iter()
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
    /// PAM service names; empty means every service.
    pub services: Vec<String>,
    /// False for an explicit exemption.
    pub isolate: bool,
    /// Own keys, else `[defaults]`, else built-in defaults.
    pub settings: Settings,
    /// Line of the `[[policy]]` header.
    pub line: usize,
}

impl PolicyEntry {
    fn applies_to_service(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }

    /// Why `user` matches this policy (ignoring services), if it does.
    fn match_user(&self, user: &UserInfo) -> Option<MatchReason> {
        if self.users.contains(&user.name) {
            return Some(MatchReason::User {
                user: user.name.clone(),
            });
        }
        user.groups.iter().find_map(|g| {
            let name = g.name.as_deref()?;
            self.groups
                .iter()
                .any(|pg| pg == name)
                .then(|| MatchReason::Group {
                    user: user.name.clone(),
                    group: name.to_owned(),
                    primary: g.primary,
                })
        })
    }
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
    /// uid 0 is never isolated.
    Root,
    /// The user is listed in the policy's `users`.
    User { user: String },
    /// The user is a member of one of the policy's `groups`.
    Group {
        user: String,
        group: String,
        /// Membership through the passwd entry's gid (else supplementary).
        primary: bool,
    },
    /// No `[[policy]]` matched.
    Defaults { user: String },
}

impl fmt::Display for MatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchReason::Root => f.write_str("root (uid 0) is never isolated"),
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
    /// The policy's name, "defaults", or "-" for root.
    pub policy: String,
    pub reason: MatchReason,
    /// `Some` exactly when the login is isolated.
    pub settings: Option<Settings>,
}

impl Config {
    /// The `[[policy]]` entries in file order.
    pub fn policies(&self) -> &[PolicyEntry] {
        &self.policies
    }

    /// Whether `[defaults]` isolates users no policy matches.
    pub fn defaults_isolate(&self) -> bool {
        self.defaults_isolate
    }

    /// The settings `[defaults]` gives (built-in defaults for unset keys).
    pub fn default_settings(&self) -> &Settings {
        &self.defaults
    }

    /// Every group name any policy refers to, once each, in file order
    /// (for "unknown group" warnings).
    pub fn group_names(&self) -> impl Iterator<Item = &str> + '_ {
        unique(self.policies.iter().flat_map(|p| &p.groups))
    }

    /// Group names of the isolating policies, once each, in file order.
    /// A group listed here may still be exempted for some users by an
    /// earlier policy; `decide` is the authority.
    pub fn isolating_groups(&self) -> impl Iterator<Item = &str> + '_ {
        unique(
            self.policies
                .iter()
                .filter(|p| p.isolate)
                .flat_map(|p| &p.groups),
        )
    }

    /// The first `[[policy]]` in file order whose services include
    /// `service` (or are empty) and which lists the user or one of the
    /// user's groups (primary or supplementary); else `[defaults]`. Root
    /// is never isolated.
    pub fn decide(&self, user: &UserInfo, service: &str) -> Decision {
        if user.uid == 0 {
            return Decision {
                policy: "-".into(),
                reason: MatchReason::Root,
                settings: None,
            };
        }
        let matched = self
            .policies
            .iter()
            .filter(|p| p.applies_to_service(service))
            .find_map(|p| p.match_user(user).map(|reason| (p, reason)));
        match matched {
            Some((p, reason)) => Decision {
                policy: p.name.clone(),
                reason,
                settings: p.isolate.then(|| p.settings.clone()),
            },
            None => Decision {
                policy: "defaults".into(),
                reason: MatchReason::Defaults {
                    user: user.name.clone(),
                },
                settings: self.defaults_isolate.then(|| self.defaults.clone()),
            },
        }
    }
}

/// The distinct strings of `items`, first occurrence first.
fn unique<'a>(items: impl Iterator<Item = &'a String>) -> impl Iterator<Item = &'a str> {
    let mut seen = BTreeSet::new();
    items
        .map(String::as_str)
        .filter(|s| seen.insert(*s))
        .collect::<Vec<_>>()
        .into_iter()
}

// ---- errors ----------------------------------------------------------------

/// One problem in the policy file, with its position (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The offending line, if the position is on one.
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

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The error line, then the offending source line and a caret under
    /// the column (like visudo). Tabs before the column are kept so the
    /// caret lines up however the terminal expands them.
    pub fn render_with_caret(&self) -> String {
        let mut out = format!("{self}\n");
        if let Some(src) = &self.source_line {
            let pad: String = src
                .chars()
                .chain(std::iter::repeat(' '))
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("    {src}\n    {pad}^\n"));
        }
        out
    }

    /// An error at byte `offset` of `text`.
    fn at(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
        // Clamp to the text and back off to a character boundary, so a
        // stray span can never make us slice inside a UTF-8 sequence.
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let col = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        let source_line = text
            .get(line_start..)
            .filter(|rest| !rest.is_empty())
            .and_then(|rest| rest.lines().next())
            .map(str::to_owned);
        ConfigError {
            path: path.to_owned(),
            line,
            col,
            message,
            source_line,
        }
    }
}

/// Why the policy could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file or its directory could not be opened or read.
    Io { path: PathBuf, error: io::Error },
    /// The file or its directory could be changed by someone but root.
    Untrusted { path: PathBuf, why: String },
    /// Syntax, unknown-key, type and semantic errors, in file order.
    Parse(Vec<ConfigError>),
}

impl fmt::Display for LoadError {
    /// One line per error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "{}: cannot read policy: {error}", path.display())
            }
            LoadError::Untrusted { path, why } => {
                write!(f, "{}: refusing policy: {why}", path.display())
            }
            LoadError::Parse(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---- loading with the trust check ------------------------------------------

const TRUST_RULE: &str = "it must be root-owned and not group/world-writable";

/// Reads and validates `path` after checking it can be trusted: its
/// directory is not a symlink, is root-owned and not group/world-writable;
/// the file is a regular file (not a symlink) in that directory, root-owned
/// and not group/world-writable.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_with_text(path).map(|(config, _)| config)
}

/// `load`, also returning the text that was validated.
pub fn load_with_text(path: &Path) -> Result<(Config, String), LoadError> {
    let text = read_trusted(path)?;
    let config = parse(path, &text).map_err(LoadError::Parse)?;
    Ok((config, text))
}

/// The text of `path`, if it passes the trust check.
fn read_trusted(path: &Path) -> Result<String, LoadError> {
    let io_err = |error: io::Error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    let untrusted = |why: String| LoadError::Untrusted {
        path: path.to_owned(),
        why,
    };
    let Some(file_name) = path.file_name() else {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));

    // The directory first, by fd: the file is then opened relative to the
    // very directory we checked, so swapping the directory afterwards
    // cannot substitute another file.
    let dir_fd = fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // O_NOFOLLOW with O_DIRECTORY reports a symlink as ENOTDIR.
        Errno::ELOOP | Errno::ENOTDIR if dir.is_symlink() => untrusted(format!(
            "directory {} is a symbolic link; {TRUST_RULE}",
            dir.display()
        )),
        e => io_err(e.into()),
    })?;
    let dst = stat::fstat(dir_fd.as_fd()).map_err(|e| io_err(e.into()))?;
    if let Some(problem) = ownership_problem(dst.st_uid, dst.st_mode) {
        return Err(untrusted(format!(
            "directory {} {problem}; {TRUST_RULE}",
            dir.display()
        )));
    }

    // O_NONBLOCK: a FIFO planted here must not hang sshd; it is refused
    // below as not a regular file.
    let fd = fcntl::openat(
        dir_fd.as_fd(),
        file_name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP => untrusted(
            "file is a symbolic link; it must be a regular file, root-owned and not group/world-writable"
                .into(),
        ),
        e => io_err(e.into()),
    })?;
    let st = stat::fstat(fd.as_fd()).map_err(|e| io_err(e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(untrusted(format!(
            "file is not a regular file; {TRUST_RULE}"
        )));
    }
    if let Some(problem) = ownership_problem(st.st_uid, st.st_mode) {
        return Err(untrusted(format!("file {problem}; {TRUST_RULE}")));
    }

    let mut bytes = Vec::new();
    File::from(fd)
        .take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {MAX_POLICY_BYTES} bytes"),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let prefix = String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default());
        LoadError::Parse(vec![ConfigError::at(
            path,
            &prefix,
            valid,
            "invalid UTF-8".into(),
        )])
    })
}

/// What is wrong with an owner and mode that should be root and not
/// group/world-writable.
fn ownership_problem(uid: u32, mode: u32) -> Option<String> {
    let perms = mode & 0o7777;
    if uid != 0 {
        Some(format!("is owned by uid {uid} (mode {perms:04o})"))
    } else if mode & 0o002 != 0 {
        Some(format!("is world-writable (mode {perms:04o})"))
    } else if mode & 0o020 != 0 {
        Some(format!("is group-writable (mode {perms:04o})"))
    } else {
        None
    }
}

// ---- parsing: the raw TOML shape -------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawPolicy>>,
    policy: Option<Vec<Spanned<RawPolicy>>>,
}

type SpannedList = Spanned<Vec<Spanned<String>>>;

/// Both `[defaults]` and `[[policy]]`. Keys that only make sense in a
/// policy are rejected in `[defaults]` by validation, which reports all of
/// them at once instead of stopping at the first.
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

/// Parses and validates policy text; `path` is only used in messages.
/// Returns every error found, sorted by position.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        path,
        text,
        errors: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = syntax_message(text, &span, e.message());
            v.error(span, message);
            return Err(v.errors);
        }
    };

    let (defaults_isolate, defaults) = match &raw.defaults {
        None => (false, Settings::default()),
        Some(d) => v.defaults(d.get_ref()),
    };
    let mut policies: Vec<PolicyEntry> = Vec::new();
    for p in raw.policy.iter().flatten() {
        let entry = v.policy(p, &policies, &defaults);
        policies.push(entry);
    }
    v.inherited_namespaces(raw.defaults.as_ref(), &raw.policy, &policies);

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

/// The TOML library's message, with a hint for the two table mistakes
/// admins make.
fn syntax_message(text: &str, span: &Range<usize>, message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    let at = text.get(span.start..).unwrap_or_default();
    if at.starts_with("[policy]") {
        format!("{message}: write [[policy]] (an array of tables), not [policy]")
    } else if at.starts_with("[[defaults]]") {
        format!("{message}: write [defaults] (a single table), not [[defaults]]")
    } else {
        message
    }
}

/// Collects positioned errors while validating.
struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError::at(
            self.path,
            self.text,
            span.start,
            message.into(),
        ));
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        ConfigError::at(self.path, self.text, span.start, String::new()).line
    }

    /// `[defaults]`: `isolate` and the settings keys only.
    fn defaults(&mut self, raw: &RawPolicy) -> (bool, Settings) {
        for (key, span) in [
            ("name", raw.name.as_ref().map(Spanned::span)),
            ("groups", raw.groups.as_ref().map(Spanned::span)),
            ("users", raw.users.as_ref().map(Spanned::span)),
            ("services", raw.services.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                self.error(
                    span,
                    format!(
                        "'{key}' is not allowed in [defaults]: it only applies to a [[policy]]"
                    ),
                );
            }
        }
        let isolate = raw.isolate.as_ref().is_some_and(|i| *i.get_ref());
        let settings = self.settings(raw, &Settings::default(), isolate);
        (isolate, settings)
    }

    /// One `[[policy]]`, given the ones before it (for duplicate names).
    fn policy(
        &mut self,
        raw: &Spanned<RawPolicy>,
        earlier: &[PolicyEntry],
        defaults: &Settings,
    ) -> PolicyEntry {
        let header = raw.span();
        let r = raw.get_ref();
        let name = match &r.name {
            None => {
                self.error(header.clone(), "policy has no name: add name = \"...\"");
                String::new()
            }
            Some(n) => {
                let name = n.get_ref();
                if let Some(problem) = policy_name_problem(name) {
                    self.error(n.span(), format!("invalid policy name {name:?}: {problem}"));
                } else if let Some(first) = earlier.iter().find(|q| q.name == *name) {
                    self.error(
                        n.span(),
                        format!(
                            "duplicate policy name {name:?} (first used at line {})",
                            first.line
                        ),
                    );
                }
                name.clone()
            }
        };
        let groups = self.name_list("group", &r.groups);
        let users = self.name_list("user", &r.users);
        let services = self.name_list("service", &r.services);
        let is_empty = |l: &Option<SpannedList>| l.as_ref().is_none_or(|l| l.get_ref().is_empty());
        if is_empty(&r.groups) && is_empty(&r.users) {
            self.error(
                header.clone(),
                format!("policy {name:?} matches nobody: set groups or users"),
            );
        }
        // An exemption must say so: a policy isolates unless isolate = false.
        let isolate = r.isolate.as_ref().is_none_or(|i| *i.get_ref());
        let settings = self.settings(r, defaults, isolate);
        PolicyEntry {
            name,
            groups,
            users,
            services,
            isolate,
            settings,
            line: self.line_of(&header),
        }
    }

    /// Settings of `raw`, inheriting each unset key from `base`.
    fn settings(&mut self, raw: &RawPolicy, base: &Settings, isolate: bool) -> Settings {
        Settings {
            namespaces: match &raw.namespaces {
                Some(list) => self.namespaces(list, isolate),
                None => base.namespaces.clone(),
            },
            share: self.choice(
                "share",
                &raw.share,
                Share::parse,
                Share::choices,
                base.share,
            ),
            private_tmp: match &raw.private_tmp {
                Some(list) => self.private_tmp(list),
                None => base.private_tmp.clone(),
            },
            tmp_size: match &raw.tmp_size {
                Some(size) => match tmp_size(size.get_ref()) {
                    Ok(canonical) => Some(canonical),
                    Err(why) => {
                        self.error(
                            size.span(),
                            format!("invalid tmp_size {:?}: {why}", size.get_ref()),
                        );
                        None
                    }
                },
                None => base.tmp_size.clone(),
            },
            propagation: self.choice(
                "propagation",
                &raw.propagation,
                Propagation::parse,
                Propagation::choices,
                base.propagation,
            ),
            subids: self.choice(
                "subids",
                &raw.subids,
                SubidMode::parse,
                SubidMode::choices,
                base.subids,
            ),
            on_logout: self.choice(
                "on_logout",
                &raw.on_logout,
                OnLogout::parse,
                OnLogout::choices,
                base.on_logout,
            ),
        }
    }

    fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        parse: fn(&str) -> Option<T>,
        choices: fn() -> String,
        inherited: T,
    ) -> T {
        let Some(v) = value else {
            return inherited;
        };
        parse(v.get_ref()).unwrap_or_else(|| {
            self.error(
                v.span(),
                format!(
                    "invalid {key} {:?}: expected one of {}",
                    v.get_ref(),
                    choices()
                ),
            );
            inherited
        })
    }

    /// A list of group, user or service names: valid-looking, no duplicates.
    fn name_list(&mut self, what: &str, list: &Option<SpannedList>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in list.iter().flat_map(Spanned::get_ref) {
            let name = item.get_ref();
            if let Some(problem) = name_problem(name) {
                self.error(
                    item.span(),
                    format!("invalid {what} name {name:?}: {problem}"),
                );
            } else if out.contains(name) {
                self.error(item.span(), format!("duplicate {what} {name:?}"));
            } else {
                out.push(name.clone());
            }
        }
        out
    }

    fn namespaces(&mut self, list: &SpannedList, isolate: bool) -> Vec<Namespace> {
        let mut out = Vec::new();
        for item in list.get_ref() {
            match Namespace::parse(item.get_ref()) {
                None => self.error(
                    item.span(),
                    format!(
                        "unknown namespace {:?}: expected \"user\", \"mount\", \"pid\", \"ipc\" (required) and optionally \"uts\", \"net\"",
                        item.get_ref()
                    ),
                ),
                Some(n) if out.contains(&n) => {
                    self.error(item.span(), format!("duplicate namespace {:?}", n.as_str()));
                }
                Some(n) => out.push(n),
            }
        }
        if isolate {
            if let Some(message) = missing_namespaces(&out) {
                self.error(list.span(), message);
            }
        }
        out
    }

    fn private_tmp(&mut self, list: &SpannedList) -> Vec<PathBuf> {
        if list.get_ref().len() > MAX_PRIVATE_TMP {
            self.error(
                list.span(),
                format!(
                    "private_tmp has {} entries; at most {MAX_PRIVATE_TMP} are allowed",
                    list.get_ref().len()
                ),
            );
        }
        let mut out: Vec<PathBuf> = Vec::new();
        for item in list.get_ref() {
            let p = item.get_ref();
            if let Some(why) = private_dir_problem(p) {
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

    /// A policy that isolates but takes `namespaces` from a `[defaults]`
    /// lacking a required one (allowed there while defaults do not
    /// isolate): the error points at the `[defaults]` key, once.
    fn inherited_namespaces(
        &mut self,
        raw_defaults: Option<&Spanned<RawPolicy>>,
        raw_policies: &Option<Vec<Spanned<RawPolicy>>>,
        policies: &[PolicyEntry],
    ) {
        let Some(ns) = raw_defaults.and_then(|d| d.get_ref().namespaces.as_ref()) else {
            return;
        };
        let inheritor = raw_policies
            .iter()
            .flatten()
            .zip(policies)
            .find(|(raw, p)| p.isolate && raw.get_ref().namespaces.is_none());
        let defaults_isolate = raw_defaults
            .and_then(|d| d.get_ref().isolate.as_ref())
            .is_some_and(|i| *i.get_ref());
        if let Some((_, p)) = inheritor.filter(|_| !defaults_isolate) {
            if let Some(message) = missing_namespaces(&p.settings.namespaces) {
                self.error(
                    ns.span(),
                    format!(
                        "{message} (policy {:?} at line {} inherits this list)",
                        p.name, p.line
                    ),
                );
            }
        }
    }
}

/// The error for an isolating namespace list lacking a required one.
fn missing_namespaces(list: &[Namespace]) -> Option<String> {
    let missing: Vec<&str> = Namespace::REQUIRED
        .into_iter()
        .filter(|n| !list.contains(n))
        .map(Namespace::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: {}); \"uts\" and \"net\" are the optional extras",
            missing.join(", ")
        )
    })
}

/// Why `name` cannot be a policy name: it appears unquoted in log lines,
/// so letters, digits, '.', '_' and '-' only; "defaults" and "-" mean
/// `[defaults]` and root there.
fn policy_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".into())
    } else if name.len() > MAX_POLICY_NAME {
        Some(format!("longer than {MAX_POLICY_NAME} characters"))
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("use only letters, digits, '.', '_' and '-'".into())
    } else if name == "defaults" || name == "-" {
        Some("reserved for [defaults] and root in logs".into())
    } else {
        None
    }
}

/// Why `name` cannot be a user, group or service name.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters")
    } else if name.contains([':', '/']) {
        Some("must not contain ':' or '/'")
    } else {
        None
    }
}

/// Why `p` cannot be a private tmpfs mount point, if it cannot.
fn private_dir_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("must be an absolute path");
    }
    if p == "/" {
        return Some("cannot be /");
    }
    if p.len() > MAX_PATH {
        return Some("is longer than PATH_MAX");
    }
    if p.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    let components = p.get(1..).unwrap_or_default().split('/');
    if p.ends_with('/')
        || components
            .clone()
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("must be normalized (no '.', '..', '//' or trailing '/')");
    }
    let under = |root: &str| {
        p.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/proc")
        || under("/sys")
        || (under("/dev") && p != "/dev/shm")
        || under("/run/pam_nsjail")
    {
        return Some(
            "must not be under /proc, /sys, /dev (except /dev/shm itself) or /run/pam_nsjail",
        );
    }
    None
}

/// The canonical tmpfs `size=` for `v`: a positive number with an
/// optional k/m/g suffix (either case; printed upper-case, leading zeros
/// dropped), or a percentage of RAM from 1% to 100%.
fn tmp_size(v: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "expected a size like \"512M\", \"2G\", \"65536K\", \"4096\" or a percentage \"1%\"..\"100%\"";
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(pct) = v.strip_suffix('%') {
        return match pct.parse::<u32>() {
            Ok(n) if digits_only(pct) && (1..=100).contains(&n) => Ok(format!("{n}%")),
            _ => Err(format!("a percentage must be 1%..100%; {EXPECTED}")),
        };
    }
    let (digits, suffix, shift) = match v.char_indices().last() {
        Some((i, c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G'))) => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                _ => 30,
            };
            (
                v.get(..i).unwrap_or_default(),
                c.to_ascii_uppercase().to_string(),
                shift,
            )
        }
        _ => (v, String::new(), 0),
    };
    if !digits_only(digits) {
        return Err(EXPECTED.into());
    }
    let n: u64 = digits.parse().map_err(|_| "too large".to_owned())?;
    if n == 0 {
        return Err("0 would make the tmpfs unlimited; give a positive size".into());
    }
    if n.checked_mul(1u64 << shift).is_none() {
        return Err("too large".into());
    }
    Ok(format!("{n}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::GroupMembership;

    const P: &str = "/p.toml";

    /// A user whose groups are `(name, gid, primary)`.
    fn user(name: &str, uid: u32, groups: &[(&str, u32, bool)]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid,
            gid: groups.iter().find(|g| g.2).map_or(uid, |g| g.1),
            home: "/home/x".into(),
            shell: "/bin/sh".into(),
            groups: groups
                .iter()
                .map(|&(n, gid, primary)| GroupMembership {
                    gid,
                    name: Some(n.into()),
                    primary,
                })
                .collect(),
        }
    }

    fn cfg(text: &str) -> Config {
        parse(Path::new(P), text).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn errs(text: &str) -> Vec<String> {
        parse(Path::new(P), text)
            .expect_err("must fail")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Exactly one error, equal to `expected`.
    fn one_err(text: &str, expected: &str) {
        assert_eq!(errs(text), vec![expected.to_owned()], "for {text:?}");
    }

    /// The first error starts with `prefix`.
    fn first_err_starts(text: &str, prefix: &str) {
        let e = errs(text);
        assert!(e[0].starts_with(prefix), "{}", e[0]);
    }

    /// A policy that is valid except for `extra` lines (from line 4).
    fn with(extra: &str) -> String {
        format!("[[policy]]\nname = \"p\"\ngroups = [\"g\"]\n{extra}\n")
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
groups = ["students", "cs101"]
tmp_size = "512M"

[[policy]]
name = "guests"
users = ["guest"]
services = ["sshd"]
share = "session"
"#;

    // ---- matching -----------------------------------------------------

    #[test]
    fn supplementary_group_match() {
        let alice = user(
            "alice",
            1001,
            &[("alice", 1002, true), ("students", 1001, false)],
        );
        let d = cfg(EXAMPLE).decide(&alice, "sshd");
        assert_eq!(d.policy, "students");
        assert_eq!(
            d.reason.to_string(),
            "alice is in group students (supplementary)"
        );
        assert_eq!(
            d.settings,
            Some(Settings {
                tmp_size: Some("512M".into()),
                ..Settings::default()
            })
        );
    }

    #[test]
    fn primary_group_match() {
        let bob = user("bob", 1003, &[("cs101", 1001, true), ("audio", 29, false)]);
        let d = cfg(EXAMPLE).decide(&bob, "sshd");
        assert_eq!(d.policy, "students");
        assert_eq!(
            d.reason,
            MatchReason::Group {
                user: "bob".into(),
                group: "cs101".into(),
                primary: true
            }
        );
        assert_eq!(d.reason.to_string(), "bob is in group cs101 (primary)");
    }

    #[test]
    fn group_without_a_name_never_matches() {
        let mut u = user("zed", 1009, &[("zed", 1009, true)]);
        u.groups.push(GroupMembership {
            gid: 1001,
            name: None,
            primary: false,
        });
        assert_eq!(cfg(EXAMPLE).decide(&u, "sshd").policy, "defaults");
    }

    #[test]
    fn first_match_in_file_order_wins_and_exemptions_isolate_nothing() {
        let dave = user(
            "dave",
            1005,
            &[
                ("dave", 1005, true),
                ("students", 1001, false),
                ("admins", 1004, false),
            ],
        );
        let d = cfg(EXAMPLE).decide(&dave, "sshd");
        assert_eq!(d.policy, "admins");
        assert_eq!(
            d.reason.to_string(),
            "dave is in group admins (supplementary)"
        );
        assert_eq!(d.settings, None);
        // The same user, policies in the other order: the isolating one wins.
        let swapped = "[[policy]]\nname = \"students\"\ngroups = [\"students\"]\n\
                       [[policy]]\nname = \"admins\"\ngroups = [\"admins\"]\nisolate = false\n";
        let d = cfg(swapped).decide(&dave, "sshd");
        assert_eq!(d.policy, "students");
        assert!(d.settings.is_some());
    }

    #[test]
    fn user_list_and_services_filter() {
        let c = cfg(EXAMPLE);
        let guest = user("guest", 2000, &[("guest", 2000, true)]);
        let d = c.decide(&guest, "sshd");
        assert_eq!(d.policy, "guests");
        assert_eq!(d.reason.to_string(), "guest is listed in users");
        assert_eq!(d.settings.map(|s| s.share), Some(Share::Session));
        // Another service skips the policy; nothing else matches.
        let d = c.decide(&guest, "login");
        assert_eq!(d.policy, "defaults");
        assert_eq!(
            d.reason.to_string(),
            "no policy matches guest; [defaults] applies"
        );
        assert_eq!(d.settings, None);
    }

    #[test]
    fn services_filter_falls_through_to_a_later_policy() {
        let c = cfg("[[policy]]\nname = \"ssh-only\"\ngroups = [\"g\"]\nservices = [\"sshd\"]\nisolate = false\n\
                     [[policy]]\nname = \"rest\"\ngroups = [\"g\"]\n");
        let u = user("u", 1000, &[("g", 1000, true)]);
        assert_eq!(c.decide(&u, "sshd").policy, "ssh-only");
        let d = c.decide(&u, "su");
        assert_eq!(d.policy, "rest");
        assert!(d.settings.is_some());
    }

    #[test]
    fn listed_user_beats_group_reason() {
        let c = cfg("[[policy]]\nname = \"p\"\ngroups = [\"g\"]\nusers = [\"u\"]\n");
        let u = user("u", 1000, &[("g", 1000, true)]);
        assert_eq!(
            c.decide(&u, "sshd").reason,
            MatchReason::User { user: "u".into() }
        );
    }

    #[test]
    fn root_is_never_isolated() {
        let c = cfg("[defaults]\nisolate = true\n[[policy]]\nname = \"r\"\nusers = [\"root\"]\n");
        let root = user("root", 0, &[("root", 0, true)]);
        let d = c.decide(&root, "sshd");
        assert_eq!(d.reason, MatchReason::Root);
        assert_eq!(d.reason.to_string(), "root (uid 0) is never isolated");
        assert_eq!(d.settings, None);
        // Root by uid, whatever the name.
        let toor = user("toor", 0, &[("root", 0, true)]);
        assert_eq!(c.decide(&toor, "sshd").settings, None);
    }

    #[test]
    fn isolating_defaults_apply_to_unmatched_users() {
        let c = cfg("[defaults]\nisolate = true\nshare = \"session\"\n");
        let eve = user("eve", 1010, &[("eve", 1010, true)]);
        let d = c.decide(&eve, "sshd");
        assert_eq!(d.policy, "defaults");
        assert_eq!(
            d.settings,
            Some(Settings {
                share: Share::Session,
                ..Settings::default()
            })
        );
        assert!(c.defaults_isolate());
    }

    #[test]
    fn empty_file_isolates_nobody() {
        let c = cfg("");
        assert!(!c.defaults_isolate());
        assert_eq!(c.default_settings(), &Settings::default());
        let u = user("u", 1000, &[("u", 1000, true)]);
        assert_eq!(c.decide(&u, "sshd").settings, None);
    }

    #[test]
    fn group_name_listings() {
        let c = cfg(EXAMPLE);
        assert_eq!(
            c.group_names().collect::<Vec<_>>(),
            ["admins", "students", "cs101"]
        );
        assert_eq!(
            c.isolating_groups().collect::<Vec<_>>(),
            ["students", "cs101"]
        );
        let dup = cfg("[[policy]]\nname = \"a\"\ngroups = [\"x\", \"y\"]\n[[policy]]\nname = \"b\"\ngroups = [\"y\", \"x\", \"z\"]\n");
        assert_eq!(dup.group_names().collect::<Vec<_>>(), ["x", "y", "z"]);
    }

    // ---- inheritance ----------------------------------------------------

    #[test]
    fn policies_inherit_every_unset_key_from_defaults() {
        let text = r#"[defaults]
namespaces = ["user", "mount", "pid", "ipc", "uts"]
share = "session"
private_tmp = ["/tmp"]
tmp_size = "10%"
propagation = "private"
subids = "optional"
on_logout = "linger"

[[policy]]
name = "inherits"
groups = ["g"]

[[policy]]
name = "overrides"
groups = ["h"]
namespaces = ["user", "mount", "pid", "ipc", "net"]
share = "user"
private_tmp = ["/var/tmp"]
tmp_size = "1g"
propagation = "slave"
subids = "required"
on_logout = "kill"
"#;
        let c = cfg(text);
        let inherited = &c.policies()[0];
        assert_eq!(inherited.line, 10);
        assert!(inherited.isolate);
        assert_eq!(
            inherited.settings,
            Settings {
                namespaces: vec![
                    Namespace::User,
                    Namespace::Mount,
                    Namespace::Pid,
                    Namespace::Ipc,
                    Namespace::Uts
                ],
                share: Share::Session,
                private_tmp: vec![PathBuf::from("/tmp")],
                tmp_size: Some("10%".into()),
                propagation: Propagation::Private,
                subids: SubidMode::Optional,
                on_logout: OnLogout::Linger,
            }
        );
        let own = &c.policies()[1];
        assert_eq!(own.line, 14);
        assert_eq!(
            own.settings,
            Settings {
                namespaces: vec![
                    Namespace::User,
                    Namespace::Mount,
                    Namespace::Pid,
                    Namespace::Ipc,
                    Namespace::Net
                ],
                share: Share::User,
                private_tmp: vec![PathBuf::from("/var/tmp")],
                tmp_size: Some("1G".into()),
                propagation: Propagation::Slave,
                subids: SubidMode::Required,
                on_logout: OnLogout::Kill,
            }
        );
        // [defaults] itself does not isolate unless it says so.
        assert!(!c.defaults_isolate());
    }

    #[test]
    fn built_in_defaults_without_a_defaults_table() {
        let c = cfg("[[policy]]\nname = \"p\"\nusers = [\"u\"]\n");
        let p = &c.policies()[0];
        assert!(p.isolate);
        assert!(p.services.is_empty());
        assert_eq!(p.settings, Settings::default());
        assert_eq!(
            Settings::default().private_tmp,
            ["/tmp", "/var/tmp", "/dev/shm"].map(PathBuf::from)
        );
    }

    #[test]
    fn enum_spellings_round_trip() {
        for n in Namespace::ALL {
            assert_eq!(Namespace::parse(n.as_str()), Some(n));
        }
        assert_eq!(Share::Session.to_string(), "session");
        assert_eq!(Propagation::Private.as_str(), "private");
        assert_eq!(SubidMode::Optional.as_str(), "optional");
        assert_eq!(OnLogout::Linger.as_str(), "linger");
        assert_eq!(OnLogout::choices(), "\"kill\", \"linger\"");
    }

    // ---- syntax, keys and types ----------------------------------------

    #[test]
    fn malformed_toml_has_line_and_column() {
        let e = errs("[[policy]]\nname = \"x\"\ngroups = [\"a\"\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("/p.toml:4:1: ") && e[0].contains("expected `]`"),
            "{}",
            e[0]
        );
        first_err_starts("[[policy]]\nname = \"x\ngroups = []\n", "/p.toml:2:");
    }

    #[test]
    fn unknown_keys_are_named_with_their_position() {
        let e = errs(&with("isolat = true"));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("/p.toml:4:1: unknown field `isolat`"),
            "{}",
            e[0]
        );
        first_err_starts(
            "[defualts]\nisolate = true\n",
            "/p.toml:1:2: unknown field `defualts`",
        );
        first_err_starts(
            "[defaults]\n  Isolate = false\n",
            "/p.toml:2:3: unknown field `Isolate`",
        );
        first_err_starts(
            &with("[policy.extra]"),
            "/p.toml:4:9: unknown field `extra`",
        );
    }

    #[test]
    fn wrong_types_have_positions() {
        first_err_starts(
            &with("isolate = \"yes\""),
            "/p.toml:4:11: invalid type: string \"yes\", expected a boolean",
        );
        first_err_starts(
            "[[policy]]\nname = \"p\"\ngroups = \"g\"\n",
            "/p.toml:3:10: invalid type",
        );
        first_err_starts(
            "[[policy]]\nname = \"p\"\ngroups = [\"g\", 7]\n",
            "/p.toml:3:16: invalid type: integer",
        );
        first_err_starts(&with("name = \"q\""), "/p.toml:4:1: duplicate key `name`");
    }

    #[test]
    fn table_shape_mistakes_get_a_hint() {
        let e = errs("[policy]\nname = \"p\"\ngroups = [\"g\"]\n");
        assert!(
            e[0].starts_with("/p.toml:1:1: ")
                && e[0].ends_with("write [[policy]] (an array of tables), not [policy]"),
            "{}",
            e[0]
        );
        let e = errs("[[defaults]]\nisolate = true\n");
        assert!(
            e[0].starts_with("/p.toml:1:1: ") && e[0].ends_with("not [[defaults]]"),
            "{}",
            e[0]
        );
    }

    // ---- semantic validation ----------------------------------------------

    #[test]
    fn namespaces_are_checked() {
        one_err(
            &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"time\"]"),
            "/p.toml:4:46: unknown namespace \"time\": expected \"user\", \"mount\", \"pid\", \"ipc\" (required) and optionally \"uts\", \"net\"",
        );
        one_err(
            &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"pid\"]"),
            "/p.toml:4:46: duplicate namespace \"pid\"",
        );
        one_err(
            &with("namespaces = [\"user\", \"net\"]"),
            "/p.toml:4:14: namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: mount, pid, ipc); \"uts\" and \"net\" are the optional extras",
        );
        let e = errs(&with("namespaces = []"));
        assert!(e[0].contains("missing: user, mount, pid, ipc"), "{e:?}");
        // An exemption may list anything valid: it creates no namespaces.
        cfg(&with("isolate = false\nnamespaces = [\"net\"]"));
    }

    #[test]
    fn defaults_namespaces_are_checked_when_something_inherits_them() {
        let base = "[defaults]\nnamespaces = [\"user\", \"pid\"]\n";
        // Nothing isolating inherits them: fine.
        cfg(&format!(
            "{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\nisolate = false\n"
        ));
        cfg(&format!("{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\nnamespaces = [\"user\", \"mount\", \"pid\", \"ipc\"]\n"));
        // An isolating policy inherits them: the error points at [defaults].
        one_err(
            &format!("{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\n"),
            "/p.toml:2:14: namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: mount, ipc); \"uts\" and \"net\" are the optional extras (policy \"x\" at line 3 inherits this list)",
        );
        // [defaults] that isolates is checked directly.
        let e = errs("[defaults]\nisolate = true\nnamespaces = [\"user\"]\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("/p.toml:3:14: namespaces must include"),
            "{e:?}"
        );
    }

    #[test]
    fn choices_list_their_valid_values() {
        one_err(
            &with("share = \"everyone\""),
            "/p.toml:4:9: invalid share \"everyone\": expected one of \"user\", \"session\"",
        );
        one_err(
            &with("propagation = \"shared\""),
            "/p.toml:4:15: invalid propagation \"shared\": expected one of \"slave\", \"private\"",
        );
        one_err(
            &with("subids = \"maybe\""),
            "/p.toml:4:10: invalid subids \"maybe\": expected one of \"required\", \"optional\"",
        );
        one_err(
            &with("on_logout = \"never\""),
            "/p.toml:4:13: invalid on_logout \"never\": expected one of \"kill\", \"linger\"",
        );
        one_err(
            "[defaults]\nshare = \"User\"\n",
            "/p.toml:2:9: invalid share \"User\": expected one of \"user\", \"session\"",
        );
    }

    #[test]
    fn tmp_size_is_validated_and_canonical() {
        for (given, canonical) in [
            ("512M", "512M"),
            ("512m", "512M"),
            ("1G", "1G"),
            ("65536k", "65536K"),
            ("4096", "4096"),
            ("0010M", "10M"),
            ("1%", "1%"),
            ("100%", "100%"),
            ("050%", "50%"),
        ] {
            let c = cfg(&with(&format!("tmp_size = \"{given}\"")));
            assert_eq!(
                c.policies()[0].settings.tmp_size.as_deref(),
                Some(canonical),
                "{given}"
            );
        }
        for bad in [
            "",
            "0",
            "0M",
            "0%",
            "101%",
            "-1M",
            "+1M",
            "1T",
            "1.5G",
            "M",
            "%",
            " 1M",
            "1 M",
            "1MB",
            "99999999999999999999",
            "17179869184G",
            "1e3",
        ] {
            let e = errs(&with(&format!("tmp_size = \"{bad}\"")));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(
                e[0].starts_with(&format!("/p.toml:4:12: invalid tmp_size {bad:?}: ")),
                "{}",
                e[0]
            );
        }
        assert!(errs(&with("tmp_size = \"0\""))[0].contains("unlimited"));
        assert!(errs(&with("tmp_size = \"1T\""))[0].contains("\"512M\""));
    }

    #[test]
    fn private_tmp_entries_are_checked() {
        for ok in [
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            "/srv/scratch",
            "/devices",
            "/run/user",
            "/run/pam_nsjailx",
            "/procfs",
        ] {
            let c = cfg(&with(&format!("private_tmp = [\"{ok}\"]")));
            assert_eq!(c.policies()[0].settings.private_tmp, [PathBuf::from(ok)]);
        }
        for (bad, why) in [
            ("tmp", "must be an absolute path"),
            ("", "must be an absolute path"),
            ("/", "cannot be /"),
            ("/tmp/", "normalized"),
            ("//tmp", "normalized"),
            ("/var//tmp", "normalized"),
            ("/tmp/./x", "normalized"),
            ("/tmp/../etc", "normalized"),
            ("/tmp/..", "normalized"),
            ("/proc", "/proc"),
            ("/proc/sys", "/proc"),
            ("/sys/fs", "/sys"),
            ("/dev", "/dev"),
            ("/dev/pts", "/dev"),
            ("/dev/shm/x", "/dev"),
            ("/run/pam_nsjail", "/run/pam_nsjail"),
            ("/run/pam_nsjail/alice", "/run/pam_nsjail"),
            ("/tmp/a\\u0000b", "control characters"),
        ] {
            let e = errs(&with(&format!("private_tmp = [\"/ok\", \"{bad}\"]")));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(
                e[0].starts_with("/p.toml:4:23: invalid private_tmp entry "),
                "{}",
                e[0]
            );
            assert!(e[0].contains(why), "{bad}: {}", e[0]);
        }
        one_err(
            &with("private_tmp = [\"/tmp\", \"/var/tmp\", \"/tmp\"]"),
            "/p.toml:4:36: duplicate private_tmp entry \"/tmp\"",
        );
        // An empty list is allowed: no private directories.
        assert!(cfg(&with("private_tmp = []")).policies()[0]
            .settings
            .private_tmp
            .is_empty());
    }

    #[test]
    fn private_tmp_has_at_most_16_entries() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("\"/t{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        cfg(&with(&format!("private_tmp = [{}]", list(16))));
        one_err(
            &with(&format!("private_tmp = [{}]", list(17))),
            "/p.toml:4:15: private_tmp has 17 entries; at most 16 are allowed",
        );
    }

    #[test]
    fn user_group_and_service_names_are_checked() {
        let text = "[[policy]]\nname = \"p\"\ngroups = [\"g\", \"\", \"a b\", \"x:y\", \"g\"]\nusers = [\"u/v\", \"ok\", \"tab\\t\"]\nservices = [\"sshd\", \"sshd\"]\n";
        assert_eq!(
            errs(text),
            [
                "/p.toml:3:16: invalid group name \"\": must not be empty",
                "/p.toml:3:20: invalid group name \"a b\": must not contain whitespace or control characters",
                "/p.toml:3:27: invalid group name \"x:y\": must not contain ':' or '/'",
                "/p.toml:3:34: duplicate group \"g\"",
                "/p.toml:4:10: invalid user name \"u/v\": must not contain ':' or '/'",
                "/p.toml:4:23: invalid user name \"tab\\t\": must not contain whitespace or control characters",
                "/p.toml:5:21: duplicate service \"sshd\"",
            ]
        );
    }

    #[test]
    fn policy_names_are_required_valid_and_unique() {
        one_err(
            "[[policy]]\ngroups = [\"g\"]\n",
            "/p.toml:1:1: policy has no name: add name = \"...\"",
        );
        one_err(
            "[[policy]]\nname = \"\"\ngroups = [\"g\"]\n",
            "/p.toml:2:8: invalid policy name \"\": must not be empty",
        );
        one_err(
            "[[policy]]\nname = \"my policy\"\ngroups = [\"g\"]\n",
            "/p.toml:2:8: invalid policy name \"my policy\": use only letters, digits, '.', '_' and '-'",
        );
        one_err(
            "[[policy]]\nname = \"defaults\"\ngroups = [\"g\"]\n",
            "/p.toml:2:8: invalid policy name \"defaults\": reserved for [defaults] and root in logs",
        );
        assert!(errs(&format!(
            "[[policy]]\nname = \"{}\"\ngroups = [\"g\"]\n",
            "n".repeat(65)
        ))[0]
            .contains("longer than 64"));
        cfg(&format!(
            "[[policy]]\nname = \"{}\"\ngroups = [\"g\"]\n",
            "n".repeat(64)
        ));
        one_err(
            "[[policy]]\nname = \"a\"\ngroups = [\"g\"]\n\n[[policy]]\nname = \"a\"\nusers = [\"u\"]\n",
            "/p.toml:6:8: duplicate policy name \"a\" (first used at line 1)",
        );
    }

    #[test]
    fn a_policy_must_match_someone() {
        one_err(
            "[[policy]]\nname = \"p\"\n",
            "/p.toml:1:1: policy \"p\" matches nobody: set groups or users",
        );
        one_err(
            "\n[[policy]]\nname = \"p\"\ngroups = []\nusers = []\nisolate = false\n",
            "/p.toml:2:1: policy \"p\" matches nobody: set groups or users",
        );
        // An invalid name is reported as such, not also as "matches nobody".
        one_err(
            "[[policy]]\nname = \"p\"\ngroups = [\"\"]\n",
            "/p.toml:3:11: invalid group name \"\": must not be empty",
        );
    }

    #[test]
    fn defaults_reject_policy_only_keys() {
        assert_eq!(
            errs("[defaults]\nname = \"x\"\ngroups = [\"g\"]\nusers = []\nservices = []\n"),
            [
                "/p.toml:2:8: 'name' is not allowed in [defaults]: it only applies to a [[policy]]",
                "/p.toml:3:10: 'groups' is not allowed in [defaults]: it only applies to a [[policy]]",
                "/p.toml:4:9: 'users' is not allowed in [defaults]: it only applies to a [[policy]]",
                "/p.toml:5:12: 'services' is not allowed in [defaults]: it only applies to a [[policy]]",
            ]
        );
    }

    #[test]
    fn every_semantic_error_is_reported_in_file_order() {
        let text = r#"[[policy]]
name = "a"
groups = ["g"]
share = "everyone"
tmp_size = "lots"

[defaults]
on_logout = "never"

[[policy]]
name = "a"
"#;
        assert_eq!(
            errs(text),
            [
                "/p.toml:4:9: invalid share \"everyone\": expected one of \"user\", \"session\"",
                "/p.toml:5:12: invalid tmp_size \"lots\": expected a size like \"512M\", \"2G\", \"65536K\", \"4096\" or a percentage \"1%\"..\"100%\"",
                "/p.toml:8:13: invalid on_logout \"never\": expected one of \"kill\", \"linger\"",
                "/p.toml:10:1: policy \"a\" matches nobody: set groups or users",
                "/p.toml:11:8: duplicate policy name \"a\" (first used at line 1)",
            ]
        );
    }

    // ---- positions and rendering ---------------------------------------

    #[test]
    fn columns_count_characters_not_bytes() {
        one_err(
            "# ünïcödé\n[[policy]]\nname = \"p\"\ngroups = [\"é\", \"é\"]\n",
            "/p.toml:4:16: duplicate group \"é\"",
        );
    }

    #[test]
    fn caret_points_at_the_column() {
        let e = parse(Path::new(P), &with("share = \"x\"")).expect_err("bad");
        assert_eq!(
            e[0].render_with_caret(),
            "/p.toml:4:9: invalid share \"x\": expected one of \"user\", \"session\"\n    share = \"x\"\n            ^\n"
        );
        assert_eq!(e[0].source_line.as_deref(), Some("share = \"x\""));
        // Tabs before the column are kept so the caret lines up.
        let e = parse(Path::new(P), &with("\tshare\t= \"x\"")).expect_err("bad");
        assert_eq!(e[0].col, 10);
        assert!(e[0]
            .render_with_caret()
            .ends_with("    \tshare\t= \"x\"\n    \t     \t  ^\n"));
    }

    #[test]
    fn error_at_end_of_file_has_no_source_line() {
        let e =
            parse(Path::new(P), "[[policy]]\nname = \"x\"\ngroups = [\"a\"\n").expect_err("bad");
        assert_eq!((e[0].line, e[0].col), (4, 1));
        assert_eq!(e[0].source_line, None);
        assert_eq!(e[0].render_with_caret(), format!("{}\n", e[0]));
    }

    #[test]
    fn positions_never_panic_on_odd_offsets() {
        let text = "aé\nb";
        for offset in 0..10 {
            let e = ConfigError::at(Path::new(P), text, offset, "m".into());
            assert!(e.line >= 1 && e.line <= 2 && e.col >= 1);
        }
        let e = ConfigError::at(Path::new(P), text, 2, "m".into()); // inside 'é'
        assert_eq!((e.line, e.col), (1, 2));
    }

    #[test]
    fn load_error_display_is_one_line_per_error() {
        let errors = parse(Path::new(P), &with("share = \"x\"\nsubids = \"y\"")).expect_err("bad");
        let text = LoadError::Parse(errors).to_string();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| l.starts_with("/p.toml:")), "{text}");
    }

    // ---- trust check (needs root to own files as someone else) ----------

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::os::unix::fs::PermissionsExt;
            let dir =
                std::env::temp_dir().join(format!("nsjail-policy-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).expect("mkdir");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            TempDir(dir)
        }

        fn file(&self, name: &str, text: &[u8], mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn load_err(path: &Path) -> String {
        load(path).expect_err("must be refused").to_string()
    }

    #[test]
    fn trusted_file_loads() {
        if !is_root() {
            return;
        }
        let dir = TempDir::new("ok");
        let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
        let (config, text) = load_with_text(&path).expect("trusted");
        assert_eq!(config.policies().len(), 3);
        assert_eq!(text, EXAMPLE);
        // Read-only for root is fine too.
        let path = dir.file("ro.toml", EXAMPLE.as_bytes(), 0o400);
        assert!(load(&path).is_ok());
    }

    #[test]
    fn writable_or_foreign_files_are_refused() {
        if !is_root() {
            return;
        }
        let dir = TempDir::new("perm");
        let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o666);
        assert_eq!(
            load_err(&path),
            format!(
                "{}: refusing policy: file is world-writable (mode 0666); it must be root-owned and not group/world-writable",
                path.display()
            )
        );
        let path = dir.file("g.toml", EXAMPLE.as_bytes(), 0o664);
        assert!(load_err(&path).contains("file is group-writable (mode 0664)"));
        let path = dir.file("u.toml", EXAMPLE.as_bytes(), 0o644);
        std::os::unix::fs::chown(&path, Some(1000), None).expect("chown");
        assert!(load_err(&path).contains("file is owned by uid 1000 (mode 0644)"));
    }

    #[test]
    fn symlinks_fifos_and_directories_are_refused() {
        if !is_root() {
            return;
        }
        let dir = TempDir::new("kind");
        let target = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
        let link = dir.0.join("link.toml");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(load_err(&link).contains("refusing policy: file is a symbolic link"));
        let fifo = dir.0.join("fifo.toml");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
        assert!(load_err(&fifo).contains("file is not a regular file"));
        let sub = dir.0.join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        assert!(load_err(&sub).contains("file is not a regular file"));
        // A symlinked directory is refused even if the file is fine.
        let dir_link = dir.0.join("dirlink");
        std::os::unix::fs::symlink(&dir.0, &dir_link).expect("symlink");
        let e = load_err(&dir_link.join("p.toml"));
        assert!(
            e.contains(&format!(
                "directory {} is a symbolic link",
                dir_link.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn untrusted_directories_are_refused() {
        if !is_root() {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("dir");
        let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert_eq!(
            load_err(&path),
            format!(
                "{}: refusing policy: directory {} is world-writable (mode 0777); it must be root-owned and not group/world-writable",
                path.display(),
                dir.0.display()
            )
        );
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o775)).expect("chmod");
        assert!(load_err(&path).contains("is group-writable (mode 0775)"));
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(&dir.0, Some(1000), None).expect("chown");
        assert!(load_err(&path).contains("is owned by uid 1000"));
    }

    #[test]
    fn unreadable_oversized_and_non_utf8_files() {
        if !is_root() {
            return;
        }
        let dir = TempDir::new("io");
        let missing = dir.0.join("missing.toml");
        let e = load(&missing).expect_err("missing");
        assert!(matches!(e, LoadError::Io { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read policy: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let e = load(&dir.0.join("nodir/p.toml")).expect_err("missing dir");
        assert!(e.to_string().contains("No such file or directory"), "{e}");
        let big = dir.file("big.toml", &vec![b'#'; MAX_POLICY_BYTES + 1], 0o644);
        assert!(load_err(&big).contains("larger than 1048576 bytes"));
        let exact = dir.file("exact.toml", &vec![b'#'; MAX_POLICY_BYTES], 0o644);
        assert!(load(&exact).is_ok());
        let bad = dir.file("bad.toml", b"# ok\n  x\xff = 1\n", 0o644);
        assert_eq!(
            load_err(&bad),
            format!("{}:2:4: invalid UTF-8", bad.display())
        );
        let e = load(Path::new("/")).expect_err("no file name");
        assert!(e.to_string().starts_with("/: cannot read policy"), "{e}");
    }
}
