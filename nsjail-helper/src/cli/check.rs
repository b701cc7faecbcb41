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
    let mut worst_case = TmpfsSum::default();
    let ram = mem_total_bytes(Path::new(crate::paths::PROC));
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
            worst_case.add(&decision.policy, &settings, ram);
        }
    }
    if let Some(warning) = ram.and_then(|ram| worst_case.warning(ram)) {
        out.push(format!("{}: warning: {warning}", path.display()));
    }
    out.extend(network_lines(config, path));
    out.extend(limits_lines(config, path));
    out
}

/// Isolating policies whose limits this host cannot enforce: their logins
/// are refused (or, with on_error=allow, let in without the limits).
fn limits_lines(config: &Config, path: &Path) -> Vec<String> {
    let systemd = crate::nsset::systemd_booted();
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
        if let Err(why) =
            crate::limits::support(&settings.limits, systemd, Path::new("/sys/fs/cgroup"))
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

/// What the private tmpfs of every isolated user could hold at once, if
/// each filled theirs: one set per user (share = "session" makes one per
/// login, so more).
#[derive(Default)]
struct TmpfsSum {
    bytes: u128,
    users: usize,
    /// (policy, users, mounts per set, size of one) for the message.
    parts: Vec<(String, usize, usize, String)>,
}

impl TmpfsSum {
    fn add(&mut self, policy: &str, settings: &crate::policy::Settings, ram: u64) {
        let size = settings
            .tmp_size
            .clone()
            .unwrap_or_else(|| "50%".to_owned());
        let one = tmpfs_bytes(&size, ram);
        let mounts = settings.private_tmp.len();
        self.bytes += u128::from(one) * mounts as u128;
        self.users += 1;
        match self.parts.iter_mut().find(|p| p.0 == policy) {
            Some(part) => part.1 += 1,
            None => self.parts.push((policy.to_owned(), 1, mounts, size)),
        }
    }

    fn warning(&self, ram: u64) -> Option<String> {
        if self.bytes <= u128::from(ram) {
            return None;
        }
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(p, users, mounts, size)| {
                format!("policy '{p}': {users} users x {mounts} tmpfs x {size}")
            })
            .collect();
        Some(format!(
            "if every isolated user filled their private temp dirs at once they could take {} MiB, more than this host's {} MiB of RAM ({}); tmpfs pages live in RAM or swap: lower tmp_size or limit memory per user (for example MemoryMax= on user-.slice)",
            self.bytes >> 20,
            ram >> 20,
            parts.join("; ")
        ))
    }
}

/// Bytes of one tmpfs of `size` (a canonical tmp_size: "512M", "10%").
fn tmpfs_bytes(size: &str, ram: u64) -> u64 {
    if let Some(pct) = size.strip_suffix('%') {
        let pct = u128::from(pct.parse::<u64>().unwrap_or(50));
        return (u128::from(ram) * pct / 100) as u64;
    }
    let (digits, shift) = match size.char_indices().last() {
        Some((i, 'K')) => (&size[..i], 10),
        Some((i, 'M')) => (&size[..i], 20),
        Some((i, 'G')) => (&size[..i], 30),
        _ => (size, 0),
    };
    digits
        .parse::<u64>()
        .unwrap_or(0)
        .saturating_mul(1 << shift)
}

/// MemTotal from `/proc/meminfo`, in bytes.
fn mem_total_bytes(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
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
    fn tmpfs_sizes_resolve_against_ram() {
        let gib = 1u64 << 30;
        assert_eq!(tmpfs_bytes("10%", 10 * gib), gib);
        assert_eq!(tmpfs_bytes("512M", gib), gib / 2);
        assert_eq!(tmpfs_bytes("2G", gib), 2 * gib);
        assert_eq!(tmpfs_bytes("4096", gib), 4096);
    }

    #[test]
    fn the_worst_case_warns_only_beyond_ram() {
        let gib = 1u64 << 30;
        let settings = Settings::default(); // 3 mounts of 10%
        let mut sum = TmpfsSum::default();
        for _ in 0..3 {
            sum.add("students", &settings, 10 * gib);
        }
        assert_eq!(sum.warning(10 * gib), None, "3 users x 3 x 10% = 90%");
        sum.add("students", &settings, 10 * gib);
        let w = sum.warning(10 * gib).expect("4 users x 3 x 10% = 120%");
        assert!(
            w.contains("12288 MiB, more than this host's 10240 MiB"),
            "{w}"
        );
        assert!(
            w.contains("policy 'students': 4 users x 3 tmpfs x 10%"),
            "{w}"
        );
    }
}
