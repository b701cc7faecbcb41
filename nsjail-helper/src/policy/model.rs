//! The validated policy: namespaces, the per-policy settings, and the
//! first-match-in-file-order decision for one login.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use crate::user::UserInfo;

/// A namespace a policy can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
    Cgroup,
}

impl Namespace {
    /// Every namespace, in the order the kernel joins them.
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
        Namespace::Cgroup,
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
            Namespace::Cgroup => "cgroup",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Namespace> {
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

            pub(crate) fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// `"a", "b"` for error messages.
            pub(crate) fn choices() -> String {
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

choice!(
    /// The set's network (policy key `network`).
    Network {
        /// No network namespace: the host's network, as without the module.
        Host = "host",
        /// A network namespace with loopback only (the older spelling is
        /// `"net"` in `namespaces`).
        Loopback = "none",
        /// The set's own loopback plus outbound IPv4 through the host (a
        /// veth pair, NAT); see `crate::net`.
        Private = "private",
    }
);

/// The address pool private networks take their addresses from when the
/// policy has no `[network] pool`.
pub const DEFAULT_POOL: &str = "10.213.0.0/16";

/// The top-level `[network]` table: what every `network = "private"` set
/// shares on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Addresses of private networks: the first usable one is the host's
    /// end of every set's link (the gateway), each set gets one of the rest.
    pub pool: crate::net::Pool,
    /// Services on the host's own addresses a set may reach
    /// (`tcp/22`, `udp/123`); none by default.
    pub allow_host: Vec<crate::net::HostPort>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            pool: DEFAULT_POOL.parse().unwrap_or(crate::net::Pool::FALLBACK),
            allow_host: Vec::new(),
        }
    }
}

/// `size=` of each private tmpfs when no policy sets `tmp_size`: the
/// kernel's own default is half of RAM per mount, three mounts per set.
pub const DEFAULT_TMP_SIZE: &str = "10%";

/// Concurrent sets per user when no policy sets `max_sets`.
pub const DEFAULT_MAX_SETS: u32 = 8;
/// ptys of a set's own devpts instance when no policy sets `max_ptys`.
pub const DEFAULT_MAX_PTYS: u32 = 64;
/// SysV IPC objects per set (shared memory segments, message queues and
/// semaphore sets, each) when no policy sets `ipc_objects`.
pub const DEFAULT_IPC_OBJECTS: u32 = 128;
/// Largest `max_sets`, `max_ptys` and `ipc_objects` (IPCMNI is 32768;
/// `kernel.pty.max` defaults to 4096).
pub const MAX_SETS_LIMIT: u32 = 1024;
pub const MAX_PTYS_LIMIT: u32 = 4096;
pub const MAX_IPC_OBJECTS: u32 = 32768;

/// What one user may take of the pools the host shares between users
/// (kernel counters, ptys, SysV IPC memory). Each bound is per set except
/// `max_sets`, which makes every one of them a per-user bound too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Sets one user may have at once (`max_sets`). Every set costs root
    /// an ipc and a pid namespace (DESIGN §2c), and a record in the
    /// registry; only `share = "session"` makes more than one.
    pub max_sets: u32,
    /// ptys of the set's own devpts instance (`max_ptys`), login ptys
    /// included.
    pub max_ptys: u32,
    /// SysV shared memory of one set: the largest segment and all of them
    /// together (`ipc_shm_max`, a size like `tmp_size`); `None` means "as
    /// much as one private tmpfs", `tmp_size`.
    pub ipc_shm_max: Option<String>,
    /// SysV shared memory segments, message queues and semaphore sets a
    /// set may hold, each (`ipc_objects`).
    pub ipc_objects: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_sets: DEFAULT_MAX_SETS,
            max_ptys: DEFAULT_MAX_PTYS,
            ipc_shm_max: None,
            ipc_objects: DEFAULT_IPC_OBJECTS,
        }
    }
}

/// What an isolating policy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub namespaces: Vec<Namespace>,
    /// `"!cgroup"` in `namespaces`: no cgroup namespace even where one
    /// would be made by default (a systemd host with cgroup v2, where each
    /// set has a scope of its own). Without either `"cgroup"` or this,
    /// such hosts give every set a cgroup namespace.
    pub cgroup_opt_out: bool,
    pub share: Share,
    pub private_tmp: Vec<PathBuf>,
    /// Canonical tmpfs `size=` value, e.g. "512M" or "10%" (by default
    /// `DEFAULT_TMP_SIZE`; `None` only from a spec built by hand).
    pub tmp_size: Option<String>,
    pub propagation: Propagation,
    pub subids: SubidMode,
    pub on_logout: OnLogout,
    /// Which network the set has; anything but `Host` gives it a network
    /// namespace of its own (and `Net` is then in `namespaces`).
    pub network: Network,
    /// The file's `[network]` table (pool, allowed host ports), for sets
    /// with `network = "private"`.
    pub net_config: NetConfig,
    /// Per-set and per-user bounds on shared pools.
    pub bounds: Bounds,
    /// Per-user resource limits (`limits/`); empty: none.
    pub limits: crate::limits::Limits,
}

impl Settings {
    /// The SysV shared memory bound in effect: `ipc_shm_max`, else
    /// `tmp_size`, else the built-in tmpfs default.
    pub fn ipc_shm_max(&self) -> &str {
        self.bounds
            .ipc_shm_max
            .as_deref()
            .or(self.tmp_size.as_deref())
            .unwrap_or(DEFAULT_TMP_SIZE)
    }

    /// How many sets of one user can exist at once under these settings.
    pub fn sets_per_user(&self) -> u32 {
        match self.share {
            Share::User => 1,
            Share::Session => self.bounds.max_sets,
        }
    }
}

impl Default for Settings {
    /// The built-in defaults (DESIGN §4).
    fn default() -> Self {
        Settings {
            namespaces: Namespace::REQUIRED.to_vec(),
            cgroup_opt_out: false,
            share: Share::User,
            private_tmp: ["/tmp", "/var/tmp", "/dev/shm"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            tmp_size: Some(DEFAULT_TMP_SIZE.to_owned()),
            propagation: Propagation::Slave,
            subids: SubidMode::Required,
            on_logout: OnLogout::Kill,
            network: Network::Host,
            net_config: NetConfig::default(),
            bounds: Bounds::default(),
            limits: crate::limits::Limits::default(),
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
    pub(super) defaults_isolate: bool,
    pub(super) defaults: Settings,
    pub(super) policies: Vec<PolicyEntry>,
    pub(super) network: NetConfig,
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

    /// The `[network]` table (built-in defaults for unset keys).
    pub fn network(&self) -> &NetConfig {
        &self.network
    }

    /// Whether any isolating policy (or isolating `[defaults]`) gives its
    /// sets a private network: only then does the host need forwarding.
    pub fn uses_private_network(&self) -> bool {
        (self.defaults_isolate && self.defaults.network == Network::Private)
            || self
                .policies
                .iter()
                .any(|p| p.isolate && p.settings.network == Network::Private)
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

    /// Whether `decision`, which leaves `user` on the host, may be wrong
    /// because NSS could not name one of her gids (her passwd entry's
    /// primary gid, when a directory is offline and its group was never
    /// cached: membership of an unnamed group is unknown): the first
    /// isolating `[[policy]]` with `groups`, for `service`, that comes
    /// before the decision's own (any, when `[defaults]` decided). `None`
    /// when every gid has a name, the decision isolates, or it rests on
    /// something NSS cannot change (root, an explicit `users` entry).
    pub fn unknown_group_could_isolate(
        &self,
        user: &UserInfo,
        service: &str,
        decision: &Decision,
    ) -> Option<String> {
        if decision.settings.is_some()
            || matches!(
                decision.reason,
                MatchReason::Root | MatchReason::User { .. }
            )
            || user.groups.iter().all(|g| g.name.is_some())
        {
            return None;
        }
        self.policies
            .iter()
            .filter(|p| p.applies_to_service(service))
            .take_while(|p| p.name != decision.policy)
            .find(|p| p.isolate && !p.groups.is_empty())
            .map(|p| p.name.clone())
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
