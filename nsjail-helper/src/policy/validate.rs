//! Parsing and validation: the raw TOML shape (unknown keys rejected),
//! then a semantic pass that reports every error with line and column.
#![forbid(unsafe_code)]

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::model::{
    Bounds, Config, Namespace, NetConfig, Network, OnLogout, PolicyEntry, Propagation, Settings,
    Share, SubidMode, MAX_IPC_OBJECTS, MAX_PTYS_LIMIT, MAX_SETS_LIMIT,
};
use crate::limits::{self, Limits};

/// Most `private_tmp` entries per policy.
pub const MAX_PRIVATE_TMP: usize = 16;
/// Longest policy name. Names appear unquoted in `key=value` log lines,
/// hence also the restricted alphabet (see `policy_name_problem`).
pub const MAX_POLICY_NAME: usize = 64;
/// Longest `private_tmp` path (PATH_MAX, including the NUL).
const MAX_PATH: usize = 4095;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawPolicy>>,
    policy: Option<Vec<Spanned<RawPolicy>>>,
    network: Option<Spanned<RawNetwork>>,
}

/// The top-level `[network]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    pool: Option<Spanned<String>>,
    allow_host: Option<SpannedList>,
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
    network: Option<Spanned<String>>,
    max_sets: Option<Spanned<i64>>,
    max_ptys: Option<Spanned<i64>>,
    ipc_shm_max: Option<Spanned<String>>,
    ipc_objects: Option<Spanned<i64>>,
    memory_max: Option<Spanned<String>>,
    memory_high: Option<Spanned<String>>,
    tasks_max: Option<Spanned<i64>>,
    cpu_quota: Option<Spanned<String>>,
    cpu_weight: Option<Spanned<i64>>,
    io_weight: Option<Spanned<i64>>,
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

    let net_config = match &raw.network {
        None => NetConfig::default(),
        Some(n) => v.network(n.get_ref()),
    };
    let (defaults_isolate, defaults) = match &raw.defaults {
        None => (
            false,
            Settings {
                net_config: net_config.clone(),
                ..Settings::default()
            },
        ),
        Some(d) => v.defaults(d.get_ref(), &net_config),
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
            network: net_config,
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

    /// `[network]`: the pool and the host ports sets may reach.
    fn network(&mut self, raw: &RawNetwork) -> NetConfig {
        let mut out = NetConfig::default();
        if let Some(pool) = &raw.pool {
            match pool.get_ref().parse() {
                Ok(p) => out.pool = p,
                Err(why) => self.error(
                    pool.span(),
                    format!("invalid [network] pool {:?}: {why}", pool.get_ref()),
                ),
            }
        }
        for item in raw.allow_host.iter().flat_map(Spanned::get_ref) {
            match item.get_ref().parse::<crate::net::HostPort>() {
                Ok(hp) if out.allow_host.contains(&hp) => {
                    self.error(item.span(), format!("duplicate allow_host entry \"{hp}\""));
                }
                Ok(hp) => out.allow_host.push(hp),
                Err(why) => self.error(item.span(), format!("invalid allow_host entry: {why}")),
            }
        }
        out
    }

    /// `[defaults]`: `isolate` and the settings keys only.
    fn defaults(&mut self, raw: &RawPolicy, net_config: &NetConfig) -> (bool, Settings) {
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
        let base = Settings {
            net_config: net_config.clone(),
            ..Settings::default()
        };
        let settings = self.settings(raw, &base, isolate);
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
        let (namespaces, cgroup_opt_out) = match &raw.namespaces {
            Some(list) => self.namespaces(list, isolate),
            None => (base.namespaces.clone(), base.cgroup_opt_out),
        };
        let (namespaces, network) = self.network_choice(raw, base, namespaces);
        let bounds = self.bounds(raw, &base.bounds);
        Settings {
            bounds,
            namespaces,
            cgroup_opt_out,
            network,
            net_config: base.net_config.clone(),
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
            limits: self.limits(raw, &base.limits),
        }
    }

    /// The resource limits of `raw`, each unset key inherited from `base`.
    fn limits(&mut self, raw: &RawPolicy, base: &Limits) -> Limits {
        let mut text = |key: &str,
                        v: &Option<Spanned<String>>,
                        parse: fn(&str) -> Result<u64, String>,
                        inherited: Option<u64>| match v {
            None => inherited,
            Some(v) => match parse(v.get_ref()) {
                Ok(n) => Some(n),
                Err(why) => {
                    self.error(v.span(), format!("invalid {key} {:?}: {why}", v.get_ref()));
                    None
                }
            },
        };
        let memory_max = text(
            "memory_max",
            &raw.memory_max,
            limits::parse_memory,
            base.memory_max,
        );
        let memory_high = text(
            "memory_high",
            &raw.memory_high,
            limits::parse_memory,
            base.memory_high,
        );
        let cpu_quota = text(
            "cpu_quota",
            &raw.cpu_quota,
            limits::parse_cpu_quota,
            base.cpu_quota,
        );
        let mut number = |key: &str,
                          v: &Option<Spanned<i64>>,
                          ok: fn(u64) -> Result<(), String>,
                          inherited: Option<u64>| match v {
            None => inherited,
            Some(v) => match u64::try_from(*v.get_ref())
                .map_err(|_| "must not be negative".to_owned())
                .and_then(|n| ok(n).map(|()| n))
            {
                Ok(n) => Some(n),
                Err(why) => {
                    self.error(v.span(), format!("invalid {key} {}: {why}", v.get_ref()));
                    None
                }
            },
        };
        let tasks_max = number(
            "tasks_max",
            &raw.tasks_max,
            limits::tasks_ok,
            base.tasks_max,
        );
        let cpu_weight = number(
            "cpu_weight",
            &raw.cpu_weight,
            limits::weight_ok,
            base.cpu_weight,
        );
        let io_weight = number(
            "io_weight",
            &raw.io_weight,
            limits::weight_ok,
            base.io_weight,
        );
        if let (Some(high), Some(max)) = (memory_high, memory_max) {
            if high > max {
                // Point at whichever of the two this table sets.
                if let Some(span) = raw
                    .memory_high
                    .as_ref()
                    .or(raw.memory_max.as_ref())
                    .map(Spanned::span)
                {
                    self.error(
                        span,
                        format!(
                            "memory_high ({}) is above memory_max ({}): it would never apply",
                            limits::show_bytes(high),
                            limits::show_bytes(max)
                        ),
                    );
                }
            }
        }
        Limits {
            memory_max,
            memory_high,
            tasks_max,
            cpu_quota,
            cpu_weight,
            io_weight,
        }
    }

    /// `max_sets`, `max_ptys`, `ipc_shm_max` and `ipc_objects`, each
    /// inherited from `base` when unset.
    fn bounds(&mut self, raw: &RawPolicy, base: &Bounds) -> Bounds {
        Bounds {
            max_sets: self.count(
                "max_sets",
                &raw.max_sets,
                MAX_SETS_LIMIT,
                base.max_sets,
                "sets one user may have at once",
            ),
            max_ptys: self.count(
                "max_ptys",
                &raw.max_ptys,
                MAX_PTYS_LIMIT,
                base.max_ptys,
                "ptys of one set, its logins' included",
            ),
            ipc_shm_max: match &raw.ipc_shm_max {
                Some(size) => match tmp_size(size.get_ref()) {
                    Ok(canonical) => Some(canonical),
                    Err(why) => {
                        self.error(
                            size.span(),
                            format!("invalid ipc_shm_max {:?}: {why}", size.get_ref()),
                        );
                        None
                    }
                },
                None => base.ipc_shm_max.clone(),
            },
            ipc_objects: self.count(
                "ipc_objects",
                &raw.ipc_objects,
                MAX_IPC_OBJECTS,
                base.ipc_objects,
                "SysV shared memory segments, message queues and semaphore sets of one set, each",
            ),
        }
    }

    /// A whole number from 1 to `max`.
    fn count(
        &mut self,
        key: &str,
        value: &Option<Spanned<i64>>,
        max: u32,
        inherited: u32,
        meaning: &str,
    ) -> u32 {
        let Some(v) = value else {
            return inherited;
        };
        match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "invalid {key} {}: expected 1..{max} ({meaning})",
                        v.get_ref()
                    ),
                );
                inherited
            }
        }
    }

    /// `network`, and `"net"` in `namespaces` (its older spelling for
    /// `"none"`): a set has a network namespace exactly when `network` is
    /// not `"host"`, and `namespaces` lists "net" exactly then.
    fn network_choice(
        &mut self,
        raw: &RawPolicy,
        base: &Settings,
        mut namespaces: Vec<Namespace>,
    ) -> (Vec<Namespace>, Network) {
        let listed_net = namespaces.contains(&Namespace::Net);
        let network = match &raw.network {
            Some(v) => {
                let chosen = self.choice(
                    "network",
                    &Some(v.clone()),
                    Network::parse,
                    Network::choices,
                    base.network,
                );
                if chosen == Network::Host && listed_net && raw.namespaces.is_some() {
                    self.error(
                        v.span(),
                        "network = \"host\" contradicts \"net\" in namespaces (the older spelling of network = \"none\"): drop one of them",
                    );
                }
                chosen
            }
            // "net" listed here, or inherited with the list: loopback only.
            None if listed_net && raw.namespaces.is_some() => Network::Loopback,
            None if listed_net && base.network == Network::Host => Network::Loopback,
            None => base.network,
        };
        if network == Network::Host {
            namespaces.retain(|n| *n != Namespace::Net);
        } else if !listed_net {
            namespaces.push(Namespace::Net);
        }
        (namespaces, network)
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

    /// The listed namespaces, and whether `"!cgroup"` opts out of the
    /// default cgroup namespace.
    fn namespaces(&mut self, list: &SpannedList, isolate: bool) -> (Vec<Namespace>, bool) {
        let mut out = Vec::new();
        let mut opt_out = false;
        for item in list.get_ref() {
            if item.get_ref() == "!cgroup" {
                if opt_out || out.contains(&Namespace::Cgroup) {
                    self.error(
                        item.span(),
                        "\"!cgroup\" with \"cgroup\" or twice: list one of them".to_owned(),
                    );
                }
                opt_out = true;
                continue;
            }
            match Namespace::parse(item.get_ref()) {
                Some(Namespace::Cgroup) if opt_out => self.error(
                    item.span(),
                    "\"cgroup\" with \"!cgroup\": list one of them".to_owned(),
                ),
                None => self.error(
                    item.span(),
                    format!(
                        "unknown namespace {:?}: expected \"user\", \"mount\", \"pid\", \"ipc\" (required) and optionally \"uts\", \"net\", \"cgroup\" (or \"!cgroup\": none even where it is the default)",
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
        (out, opt_out)
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
            "namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: {}); \"uts\", \"net\" and \"cgroup\" are the optional extras",
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
pub(crate) fn private_dir_problem(p: &str) -> Option<&'static str> {
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

/// Bytes of a canonical size (`tmp_size`, `ipc_shm_max`: "512M", "10%"),
/// percentages taken of `ram` bytes as tmpfs does.
pub(crate) fn size_bytes(size: &str, ram: u64) -> u64 {
    if let Some(pct) = size.strip_suffix('%') {
        let pct = u128::from(pct.parse::<u64>().unwrap_or(100).min(100));
        return u64::try_from(u128::from(ram) * pct / 100).unwrap_or(u64::MAX);
    }
    let (digits, shift) = match size.char_indices().last() {
        Some((i, 'K')) => (size.get(..i).unwrap_or_default(), 10),
        Some((i, 'M')) => (size.get(..i).unwrap_or_default(), 20),
        Some((i, 'G')) => (size.get(..i).unwrap_or_default(), 30),
        _ => (size, 0),
    };
    digits
        .parse::<u64>()
        .unwrap_or(u64::MAX)
        .saturating_mul(1 << shift)
}

/// The canonical tmpfs `size=` for `v`: a positive number with an
/// optional k/m/g suffix (either case; printed upper-case, leading zeros
/// dropped), or a percentage of RAM from 1% to 100%.
pub(crate) fn tmp_size(v: &str) -> Result<String, String> {
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
