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
group names NSS does not know, about users of isolated groups who have
no /etc/subuid or /etc/subgid range (or none from libsubid), and about a
'subid:' line in /etc/nsswitch.conf that libsubid cannot honour here.";

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
    if let Some(note) = cgroup_note(
        &config,
        crate::nsset::cgroup_namespace_hides(),
        crate::nsset::cgroup2_unified(),
    ) {
        eprintln!("nsjail-helper: note: {note}");
    }
    println!(
        "{}: OK ({} policies)",
        path.display(),
        config.policies().len()
    );
    Ok(0)
}

/// What the cgroup namespace does on this host, where that is not what
/// the policy may lead an admin to expect: on a host without systemd or
/// without the unified cgroup v2 hierarchy it hides nothing, so the
/// default leaves it out and an explicit "cgroup" buys no privacy. Sets
/// under resource limits on a unified host (`unified`) have a cgroup of
/// their own with or without systemd, so theirs hides.
fn cgroup_note(config: &Config, hides: bool, unified: bool) -> Option<String> {
    use crate::policy::Namespace;
    if hides {
        return None;
    }
    let isolating = config
        .policies()
        .iter()
        .filter(|p| p.isolate && (!unified || p.settings.limits.is_empty()));
    let (mut explicit, mut default) = (Vec::new(), Vec::new());
    for p in isolating {
        if p.settings.namespaces.contains(&Namespace::Cgroup) {
            explicit.push(p.name.as_str());
        } else if !p.settings.cgroup_opt_out {
            default.push(p.name.as_str());
        }
    }
    if explicit.is_empty() && default.is_empty() {
        return None;
    }
    let mut note = String::from("this host has no systemd scope per set on a cgroup v2 hierarchy, so a cgroup namespace hides nothing here: /sys/fs/cgroup in a set lists other users' cgroups as on the host");
    if !default.is_empty() {
        note.push_str(&format!(
            "; policies {} get none by default (they would on a systemd host)",
            default.join(", ")
        ));
    }
    if !explicit.is_empty() {
        note.push_str(&format!(
            "; \"cgroup\" in policies {} changes little here",
            explicit.join(", ")
        ));
    }
    Some(note)
}

/// Group names NSS does not resolve, and members of isolating groups
/// without a usable sub-id range.
pub fn warnings(config: &Config, path: &Path, etc: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = crate::subid::honoured(etc) {
        out.push(format!(
            "{}: warning: sub-ids: {e}: every login that needs a new set is refused (or, with on_error=allow, let in unconfined)",
            path.display()
        ));
    }
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
    let mut worst_case = TmpfsSum::default();
    let mut sets = SetSum::default();
    let ram = crate::procfs::mem_total_bytes(Path::new(crate::paths::PROC));
    for name in members {
        let Ok(info) = user::lookup_user(&name) else {
            continue;
        };
        let decision = config.decide(&info, crate::paths::DEFAULT_SERVICE);
        let Some(settings) = decision.settings else {
            continue;
        };
        if let Err(e) = crate::session::plan(&info, &settings, etc) {
            out.push(format!("{}: warning: {name}: {e}", path.display()));
        }
        if let Some(ram) = ram {
            // memory_max bounds them only where the host enforces it.
            let enforced =
                crate::limits::support(&settings.limits, Path::new(crate::paths::CGROUP)).is_ok();
            worst_case.add(&decision.policy, &settings, ram, enforced);
        }
        sets.add(&decision.policy, &settings);
    }
    if let Some(ram) = ram {
        out.extend(
            worst_case
                .lines(ram)
                .into_iter()
                .map(|l| format!("{}: {l}", path.display())),
        );
    }
    out.extend(
        sets.lines(&kernel_limits(Path::new(crate::paths::PROC)))
            .into_iter()
            .map(|l| format!("{}: {l}", path.display())),
    );
    out.extend(network_lines(config, path));
    out.extend(limits_lines(config, path));
    out
}

/// Isolating policies whose limits this host cannot enforce: their logins
/// are refused (or, with on_error=allow, let in without the limits).
fn limits_lines(config: &Config, path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let defaults = config
        .defaults_isolate()
        .then(|| ("[defaults]".to_owned(), config.default_settings()));
    let entries = config
        .policies()
        .iter()
        .filter(|p| p.isolate)
        .map(|p| (format!("policy '{}'", p.name), &p.settings));
    for (what, settings) in defaults.into_iter().chain(entries) {
        if let Err(why) = crate::limits::support(&settings.limits, Path::new(crate::paths::CGROUP))
        {
            out.push(format!(
                "{}: warning: {what}: {why}; its logins are refused (or, with on_error=allow, let in without limits)",
                path.display()
            ));
        }
    }
    out
}

/// With any `network = "private"` policy: the pool's capacity, and what
/// the host looks like for it (route overlaps, tools, forwarding, a
/// firewall that drops forwarded traffic, the resolver).
fn network_lines(config: &Config, path: &Path) -> Vec<String> {
    if !config.uses_private_network() {
        return Vec::new();
    }
    let pool = config.network().pool;
    let report = crate::net::host_report(pool);
    let mut out: Vec<String> = report
        .problems
        .iter()
        .map(|p| format!("{}: warning: {p}", path.display()))
        .collect();
    out.push(format!(
        "{}: note: [network] pool {pool}: {} private-network sets at once, gateway {}",
        path.display(),
        pool.capacity(),
        pool.gateway()
    ));
    out.extend(
        report
            .notes
            .iter()
            .map(|n| format!("{}: note: {n}", path.display())),
    );
    out
}

/// What the private tmpfs and SysV shared memory of every isolated user
/// could hold at once, if each filled theirs in as many sets as they may
/// have (one with share = "user", max_sets with share = "session"). A
/// user's tmpfs and shm pages are charged to her memory cgroup, so where
/// her policy's `memory_max` is enforced it bounds all of them together,
/// however many sets she has.
#[derive(Default)]
struct TmpfsSum {
    bytes: u128,
    parts: Vec<TmpfsPart>,
}

/// One policy's share of `TmpfsSum`, for the message.
struct TmpfsPart {
    policy: String,
    users: usize,
    sets: u32,
    mounts: usize,
    size: String,
    shm: String,
    /// The enforced `memory_max` that bounds a user's total, if it is
    /// below what her sets could hold.
    bounded_by: Option<u64>,
}

impl TmpfsSum {
    fn add(&mut self, policy: &str, settings: &crate::policy::Settings, ram: u64, enforced: bool) {
        let size = settings
            .tmp_size
            .clone()
            .unwrap_or_else(|| "50%".to_owned());
        let shm = settings.ipc_shm_max().to_owned();
        let mounts = settings.private_tmp.len();
        let sets = settings.sets_per_user();
        let one_set = u128::from(tmpfs_bytes(&size, ram)) * mounts as u128
            + u128::from(tmpfs_bytes(&shm, ram));
        let all_sets = one_set * u128::from(sets);
        let bounded_by = settings
            .limits
            .memory_max
            .filter(|max| enforced && u128::from(*max) < all_sets);
        self.bytes += bounded_by.map_or(all_sets, u128::from);
        match self.parts.iter_mut().find(|p| p.policy == policy) {
            Some(part) => part.users += 1,
            None => self.parts.push(TmpfsPart {
                policy: policy.to_owned(),
                users: 1,
                sets,
                mounts,
                size,
                shm,
                bounded_by,
            }),
        }
    }

    /// A warning if the total is beyond RAM; otherwise a note where
    /// memory_max is what keeps it within.
    fn lines(&self, ram: u64) -> Vec<String> {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|p| {
                let mut s = format!(
                    "policy '{}': {} users x {} {} x ({} tmpfs x {} + SysV shm {})",
                    p.policy,
                    p.users,
                    p.sets,
                    if p.sets == 1 { "set" } else { "sets" },
                    p.mounts,
                    p.size,
                    p.shm
                );
                if let Some(max) = p.bounded_by {
                    s.push_str(&format!(
                        ", but at most memory_max = {} per user",
                        crate::limits::show_bytes(max)
                    ));
                }
                s
            })
            .collect();
        let bounded = self.parts.iter().any(|p| p.bounded_by.is_some());
        let why = "tmpfs and SysV shm pages are charged to the memory cgroup of the user who writes them, so an enforced memory_max bounds all of a user's sets together";
        if self.bytes > u128::from(ram) {
            return vec![format!(
                "warning: if every isolated user filled their private temp dirs and SysV shared memory in every set they may have at once, they could take {} MiB, more than this host's {} MiB of RAM ({}); tmpfs and shm pages live in RAM or swap: lower tmp_size, ipc_shm_max or max_sets, or set memory_max ({why})",
                self.bytes >> 20,
                ram >> 20,
                parts.join("; ")
            )];
        }
        if bounded {
            return vec![format!(
                "note: every isolated user's private temp dirs and SysV shared memory, in every set they may have, take at most {} MiB of this host's {} MiB of RAM ({}): {why}",
                self.bytes >> 20,
                ram >> 20,
                parts.join("; ")
            )];
        }
        Vec::new()
    }
}

/// The namespaces root is charged for as long as a set lives: its ipc and
/// pid namespace (and uts, net, cgroup if asked) are made by H0 as root
/// (DESIGN §2c); its mount namespace is the holder's, made as the user.
/// Each set also takes a registry record.
#[derive(Default)]
struct SetSum {
    /// Sets that can exist at once, per namespace kind.
    per_kind: std::collections::BTreeMap<&'static str, u64>,
    total: u64,
    /// (policy, users, sets per user) for the message.
    parts: Vec<(String, usize, u32)>,
}

/// The `/proc/sys/user/max_*_namespaces` files, by kind.
const NS_KINDS: [(&str, crate::policy::Namespace); 5] = [
    ("ipc", crate::policy::Namespace::Ipc),
    ("pid", crate::policy::Namespace::Pid),
    ("uts", crate::policy::Namespace::Uts),
    ("net", crate::policy::Namespace::Net),
    ("cgroup", crate::policy::Namespace::Cgroup),
];

impl SetSum {
    fn add(&mut self, policy: &str, settings: &crate::policy::Settings) {
        let sets = u64::from(settings.sets_per_user());
        for (kind, ns) in NS_KINDS {
            if settings.namespaces.contains(&ns) {
                *self.per_kind.entry(kind).or_default() += sets;
            }
        }
        self.total += sets;
        match self.parts.iter_mut().find(|p| p.0 == policy) {
            Some(part) => part.1 += 1,
            None => self
                .parts
                .push((policy.to_owned(), 1, settings.sets_per_user())),
        }
    }

    /// A note naming the bounds on the host's total, and a warning for
    /// each one the isolated users' sets could reach (`limits`: kind to
    /// root's `user.max_<kind>_namespaces`).
    fn lines(&self, limits: &[(&'static str, u64)]) -> Vec<String> {
        if self.total == 0 {
            return Vec::new();
        }
        let who: Vec<String> = self
            .parts
            .iter()
            .map(|(p, users, sets)| format!("policy '{p}': {users} users x max {sets}"))
            .collect();
        let who = who.join("; ");
        let named: Vec<String> = limits
            .iter()
            .filter(|(kind, _)| self.per_kind.contains_key(kind))
            .map(|(kind, limit)| format!("user.max_{kind}_namespaces = {limit}"))
            .collect();
        let mut out = vec![format!(
            "note: every set's namespaces are charged to root, so these bound all users' sets together, root's own services included: {}, and the registry ({} MiB tmpfs, about {} sets); isolated users can hold {} sets at once ({who})",
            named.join(", "),
            crate::registry::REGISTRY_BYTES >> 20,
            crate::registry::CAPACITY,
            self.total,
        )];
        for (kind, limit) in limits {
            let Some(&used) = self.per_kind.get(kind) else {
                continue;
            };
            if used >= *limit {
                let article = if kind.starts_with(['i', 'u']) {
                    "an"
                } else {
                    "a"
                };
                out.push(format!(
                    "warning: isolated users could hold {used} sets, each with {article} {kind} namespace charged to root, reaching user.max_{kind}_namespaces = {limit}: root's own services could then not make one; lower max_sets or raise the limit ({who})"
                ));
            }
        }
        if self.total >= crate::registry::CAPACITY {
            out.push(format!(
                "warning: isolated users could hold {} sets, more than the registry's tmpfs holds (about {}); lower max_sets ({who})",
                self.total,
                crate::registry::CAPACITY
            ));
        }
        out
    }
}

/// Root's `user.max_<kind>_namespaces` (read from `proc_root`/sys/user),
/// for the kinds whose file exists.
fn kernel_limits(proc_root: &Path) -> Vec<(&'static str, u64)> {
    NS_KINDS
        .iter()
        .filter_map(|(kind, _)| {
            let file = proc_root.join(format!("sys/user/max_{kind}_namespaces"));
            let text = std::fs::read_to_string(file).ok()?;
            Some((*kind, text.trim().parse().ok()?))
        })
        .collect()
}

/// Bytes of one tmpfs of `size` (a canonical tmp_size: "512M", "10%").
fn tmpfs_bytes(size: &str, ram: u64) -> u64 {
    crate::policy::size_bytes(size, ram)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Settings;

    #[test]
    fn check_says_where_a_cgroup_namespace_hides_nothing() {
        let config = crate::policy::parse(
            Path::new("/p.toml"),
            "[[policy]]\nname = \"a\"\ngroups = [\"g\"]\n\n[[policy]]\nname = \"b\"\ngroups = [\"h\"]\nnamespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"cgroup\"]\n\n[[policy]]\nname = \"c\"\ngroups = [\"i\"]\nnamespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"!cgroup\"]\n",
        )
        .expect("valid");
        assert_eq!(
            cgroup_note(&config, true, true),
            None,
            "a systemd v2 host: nothing to say"
        );
        let note = cgroup_note(&config, false, false).expect("a note");
        assert!(
            note.contains("a cgroup namespace hides nothing here"),
            "{note}"
        );
        assert!(note.contains("policies a get none by default"), "{note}");
        assert!(
            note.contains("\"cgroup\" in policies b changes little"),
            "{note}"
        );
        assert!(!note.contains(" c "), "{note}");
        // Without systemd on a unified v2 host, a policy with limits gets
        // a cgroup of its own per set (limits/direct.rs): its namespace
        // hides the rest; the others' does not.
        let limited = crate::policy::parse(
            Path::new("/p.toml"),
            "[[policy]]\nname = \"a\"\ngroups = [\"g\"]\nmemory_max = \"1G\"\n\n[[policy]]\nname = \"b\"\ngroups = [\"h\"]\n",
        )
        .expect("valid");
        let note = cgroup_note(&limited, false, true).expect("a note");
        assert!(note.contains("policies b get none"), "{note}");
        assert!(!note.contains(" a,"), "{note}");
        let note = cgroup_note(&limited, false, false).expect("a note");
        assert!(note.contains("policies a, b get none"), "{note}");
    }

    #[test]
    fn tmpfs_sizes_resolve_against_ram() {
        let gib = 1u64 << 30;
        assert_eq!(tmpfs_bytes("10%", 10 * gib), gib);
        assert_eq!(tmpfs_bytes("512M", gib), gib / 2);
        assert_eq!(tmpfs_bytes("2G", gib), 2 * gib);
        assert_eq!(tmpfs_bytes("4096", gib), 4096);
    }

    /// The one line `TmpfsSum::lines` gives, or None.
    fn tmpfs_line(sum: &TmpfsSum, ram: u64) -> Option<String> {
        let mut lines = sum.lines(ram);
        assert!(lines.len() <= 1, "{lines:?}");
        lines.pop()
    }

    #[test]
    fn the_worst_case_warns_only_beyond_ram() {
        let gib = 1u64 << 30;
        // 3 mounts of 10% and SysV shm as much as one of them
        let settings = Settings::default();
        let mut sum = TmpfsSum::default();
        for _ in 0..2 {
            sum.add("students", &settings, 10 * gib, true);
        }
        assert_eq!(
            tmpfs_line(&sum, 10 * gib),
            None,
            "2 users x (3 + 1) x 10% = 80%"
        );
        sum.add("students", &settings, 10 * gib, true);
        let w = tmpfs_line(&sum, 10 * gib).expect("3 users x (3 + 1) x 10% = 120%");
        assert!(
            w.starts_with("warning:") && w.contains("12288 MiB, more than this host's 10240 MiB"),
            "{w}"
        );
        assert!(
            w.contains("policy 'students': 3 users x 1 set x (3 tmpfs x 10% + SysV shm 10%)"),
            "{w}"
        );
    }

    #[test]
    fn share_session_counts_every_set_a_user_may_have() {
        let gib = 1u64 << 30;
        let settings = Settings {
            share: crate::policy::Share::Session,
            bounds: crate::policy::Bounds {
                max_sets: 2,
                ipc_shm_max: Some("1M".into()),
                ..crate::policy::Bounds::default()
            },
            ..Settings::default()
        };
        let mut sum = TmpfsSum::default();
        sum.add("s", &settings, 10 * gib, true);
        assert_eq!(tmpfs_line(&sum, 10 * gib), None, "1 user x 2 sets x 30%");
        sum.add("s", &settings, 10 * gib, true);
        let w = tmpfs_line(&sum, 10 * gib).expect("2 users x 2 sets x 30% = 120%");
        assert!(w.contains("policy 's': 2 users x 2 sets x (3 tmpfs"), "{w}");
    }

    #[test]
    fn an_enforced_memory_max_bounds_each_users_tmpfs_over_all_her_sets() {
        // share = "session", 4 sets of 3 tmpfs x 10% + shm 10%: 160% of
        // RAM per user unbounded; memory_max = 1G bounds her to 1 GiB.
        let gib = 1u64 << 30;
        let settings = Settings {
            share: crate::policy::Share::Session,
            bounds: crate::policy::Bounds {
                max_sets: 4,
                ..crate::policy::Bounds::default()
            },
            limits: crate::limits::Limits {
                memory_max: Some(gib),
                ..Default::default()
            },
            ..Settings::default()
        };
        let mut sum = TmpfsSum::default();
        for _ in 0..3 {
            sum.add("s", &settings, 10 * gib, true);
        }
        let n = tmpfs_line(&sum, 10 * gib).expect("a note");
        assert!(
            n.starts_with("note:") && n.contains("at most 3072 MiB of this host's 10240 MiB"),
            "{n}"
        );
        assert!(
            n.contains("3 users x 4 sets x (3 tmpfs x 10% + SysV shm 10%), but at most memory_max = 1G per user"),
            "{n}"
        );
        assert!(
            n.contains("charged to the memory cgroup of the user"),
            "{n}"
        );
        // Ten users: 10 GiB is not beyond 10 GiB of RAM; eleven are.
        for _ in 0..7 {
            sum.add("s", &settings, 10 * gib, true);
        }
        assert!(tmpfs_line(&sum, 10 * gib).unwrap().starts_with("note:"));
        sum.add("s", &settings, 10 * gib, true);
        let w = tmpfs_line(&sum, 10 * gib).expect("a warning");
        assert!(w.starts_with("warning:") && w.contains("11264 MiB"), "{w}");
        // Where the host cannot enforce memory_max, it bounds nothing.
        let mut unenforced = TmpfsSum::default();
        unenforced.add("s", &settings, 10 * gib, false);
        let w = tmpfs_line(&unenforced, 10 * gib).expect("160% of RAM");
        assert!(
            w.starts_with("warning:") && !w.contains("at most memory_max"),
            "{w}"
        );
        // A memory_max above what her sets can hold changes nothing.
        let roomy = Settings {
            limits: crate::limits::Limits {
                memory_max: Some(100 * gib),
                ..Default::default()
            },
            ..settings
        };
        let mut sum = TmpfsSum::default();
        sum.add("s", &roomy, 10 * gib, true);
        assert!(!tmpfs_line(&sum, 10 * gib).unwrap().contains("memory_max ="));
    }

    #[test]
    fn namespace_limits_are_named_and_warned_about() {
        let settings = Settings {
            share: crate::policy::Share::Session,
            bounds: crate::policy::Bounds {
                max_sets: 3,
                ..crate::policy::Bounds::default()
            },
            ..Settings::default()
        };
        let mut sum = SetSum::default();
        assert!(sum.lines(&[("ipc", 10)]).is_empty(), "nobody isolated");
        sum.add("s", &settings);
        sum.add("s", &settings);
        let limits = [("ipc", 10), ("pid", 6), ("net", 1)];
        let lines = sum.lines(&limits);
        assert!(
            lines[0].starts_with("note: ")
                && lines[0].contains("user.max_ipc_namespaces = 10, user.max_pid_namespaces = 6, and the registry (64 MiB tmpfs, about 16384 sets)")
                && lines[0].contains("isolated users can hold 6 sets at once (policy 's': 2 users x max 3)"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].contains("reaching user.max_pid_namespaces = 6"),
            "{lines:?}"
        );
    }
}
