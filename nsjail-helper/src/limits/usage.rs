//! What a limited user uses now, against the limits: read (never written)
//! from the user's limited cgroup in the cgroup v2 hierarchy — her slice
//! `user-UID-nsjail.slice` on a systemd host, `/pam_nsjail/user-UID`
//! without systemd — found from a set holder's `/proc/PID/cgroup` (the
//! holder sits in one of its scopes or set cgroups). `list` shows it.
//!
//! The slice's figures are the user's total over all sets and logins,
//! which is what the limits bound (see `limits/mod.rs`).
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use super::systemd::limited_scope_of;

/// One user's use and limits as the kernel counts them. A field is `None`
/// when its file is absent (the controller is not enabled on the slice);
/// a limit of `Some(None)` is "max" (none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The slice's path in the cgroup v2 hierarchy, e.g.
    /// `/user.slice/user-1000.slice/user-1000-nsjail.slice`.
    pub cgroup: String,
    /// `memory.current` and `memory.max` (bytes).
    pub memory_current: Option<u64>,
    pub memory_max: Option<Option<u64>>,
    /// `pids.current` and `pids.max`.
    pub tasks_current: Option<u64>,
    pub tasks_max: Option<Option<u64>>,
    /// `usage_usec` of `cpu.stat`: CPU time used since the slice began.
    pub cpu_usage_usec: Option<u64>,
    /// `cpu.max` as `(quota, period)` µs; quota `None` is "max".
    pub cpu_max: Option<(Option<u64>, u64)>,
}

/// The path of `uid`'s limited cgroup in the v2 hierarchy, from the
/// `/proc/PID/cgroup` text of a process in one of its sets: the parent of
/// a limited set scope, or of a set cgroup of pam_nsjail's own.
pub fn slice_path_of(cgroup: &str, uid: u32) -> Option<String> {
    if let Some(set) = super::direct::set_cgroup_of(cgroup, uid) {
        return super::direct::user_of_set(&set).map(str::to_owned);
    }
    limited_scope_of(cgroup, uid)?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (slice, _scope) = path.rsplit_once('/')?;
    Some(slice.to_owned())
}

/// A cgroup limit file's value: a number or `max`.
fn parse_limit(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// `cpu.max`: "QUOTA PERIOD", QUOTA a number or `max`.
fn parse_cpu_max(text: &str) -> Option<(Option<u64>, u64)> {
    let mut it = text.split_whitespace();
    let quota = parse_limit(it.next()?)?;
    let period = it.next()?.parse().ok()?;
    Some((quota, period))
}

/// `usage_usec` of a `cpu.stat` text.
fn parse_cpu_usage(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// The usage of `uid`'s limited slice, if the holder `pid` sits in one of
/// its scopes. `proc_root` and `cgroup_root` are normally `/proc` and
/// `/sys/fs/cgroup`.
pub fn of_holder(proc_root: &Path, cgroup_root: &Path, pid: i32, uid: u32) -> Option<Usage> {
    let cgroup = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    let slice = slice_path_of(&cgroup, uid)?;
    let dir = cgroup_root.join(slice.trim_start_matches('/'));
    if !dir.is_dir() {
        return None;
    }
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    Some(Usage {
        memory_current: read("memory.current").and_then(|t| t.trim().parse().ok()),
        memory_max: read("memory.max").and_then(|t| parse_limit(&t)),
        tasks_current: read("pids.current").and_then(|t| t.trim().parse().ok()),
        tasks_max: read("pids.max").and_then(|t| parse_limit(&t)),
        cpu_usage_usec: read("cpu.stat").and_then(|t| parse_cpu_usage(&t)),
        cpu_max: read("cpu.max").and_then(|t| parse_cpu_max(&t)),
        cgroup: slice,
    })
}

/// A size for people: `812K`, `12.3M`, `1.5G`.
pub fn human_bytes(v: u64) -> String {
    if v < 1 << 20 {
        return format!("{}K", v.div_ceil(1 << 10));
    }
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M")] {
        if v >= 1u64 << shift {
            let tenths = (v as u128 * 10) >> shift;
            return if tenths % 10 == 0 {
                format!("{}{unit}", tenths / 10)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    unreachable!("v >= 1M is covered")
}

impl Usage {
    /// `cpu.max` as percent of one CPU, if there is a quota.
    pub fn cpu_quota_percent(&self) -> Option<u64> {
        match self.cpu_max {
            Some((Some(q), p)) if p > 0 => Some(q.saturating_mul(100) / p),
            _ => None,
        }
    }

    /// `list`'s MEMORY column: `12.3M/64M`, `-` when not counted.
    pub fn memory_column(&self) -> String {
        match (self.memory_current, self.memory_max) {
            (Some(cur), Some(max)) => format!(
                "{}/{}",
                human_bytes(cur),
                max.map_or_else(|| "max".to_owned(), human_bytes)
            ),
            (Some(cur), None) => human_bytes(cur),
            _ => "-".to_owned(),
        }
    }

    /// `list`'s TASKS column: `5/40`.
    pub fn tasks_column(&self) -> String {
        match (self.tasks_current, self.tasks_max) {
            (Some(cur), Some(max)) => {
                format!(
                    "{cur}/{}",
                    max.map_or_else(|| "max".to_owned(), |m| m.to_string())
                )
            }
            (Some(cur), None) => cur.to_string(),
            _ => "-".to_owned(),
        }
    }

    /// `list`'s CPU column: seconds used, and the quota: `12.4s/150%`.
    pub fn cpu_column(&self) -> String {
        let Some(used) = self.cpu_usage_usec else {
            return "-".to_owned();
        };
        let secs = format!("{}.{}s", used / 1_000_000, used % 1_000_000 / 100_000);
        match (self.cpu_max, self.cpu_quota_percent()) {
            (_, Some(pct)) => format!("{secs}/{pct}%"),
            (Some((None, _)), None) => format!("{secs}/max"),
            _ => secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const CG: &str =
        "0::/user.slice/user-1000.slice/user-1000-nsjail.slice/nsjail-1000-4242.scope\n";

    #[test]
    fn the_slice_is_found_only_from_a_limited_scope_of_the_user() {
        assert_eq!(
            slice_path_of(CG, 1000).as_deref(),
            Some("/user.slice/user-1000.slice/user-1000-nsjail.slice")
        );
        assert_eq!(slice_path_of(CG, 1001), None);
        assert_eq!(
            slice_path_of("0::/user.slice/user-1000.slice/session-3.scope\n", 1000),
            None
        );
        assert_eq!(slice_path_of("12:pids:/x\n", 1000), None);
        assert_eq!(
            slice_path_of("0::/pam_nsjail/user-1000/set-77\n", 1000).as_deref(),
            Some("/pam_nsjail/user-1000")
        );
        assert_eq!(
            slice_path_of("0::/pam_nsjail/user-1000/set-77\n", 1001),
            None
        );
    }

    #[test]
    fn limit_files_parse() {
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("67108864\n"), Some(Some(64 << 20)));
        assert_eq!(parse_limit("lots"), None);
        assert_eq!(
            parse_cpu_max("150000 100000\n"),
            Some((Some(150_000), 100_000))
        );
        assert_eq!(parse_cpu_max("max 100000\n"), Some((None, 100_000)));
        assert_eq!(parse_cpu_max("max"), None);
        assert_eq!(
            parse_cpu_usage("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"),
            Some(1_234_567)
        );
        assert_eq!(parse_cpu_usage("user_usec 5\n"), None);
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(0), "0K");
        assert_eq!(human_bytes(1000), "1K");
        assert_eq!(human_bytes(812 << 10), "812K");
        assert_eq!(human_bytes(64 << 20), "64M");
        assert_eq!(human_bytes((12 << 20) + (3 << 20) / 10 + 1), "12.3M");
        assert_eq!(human_bytes(3 << 29), "1.5G");
    }

    fn fake_host(files: &[(&str, &str)]) -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "nsjail-usage-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&base);
        let proc_root = base.join("proc");
        fs::create_dir_all(proc_root.join("4242")).unwrap();
        fs::write(proc_root.join("4242/cgroup"), CG).unwrap();
        let slice = base.join("cg/user.slice/user-1000.slice/user-1000-nsjail.slice");
        fs::create_dir_all(&slice).unwrap();
        for (name, text) in files {
            fs::write(slice.join(name), text).unwrap();
        }
        (proc_root, base.join("cg"))
    }

    #[test]
    fn usage_is_read_from_the_holders_slice_and_shown() {
        let (proc_root, cg) = fake_host(&[
            ("memory.current", "12898304\n"),
            ("memory.max", "67108864\n"),
            ("pids.current", "7\n"),
            ("pids.max", "40\n"),
            ("cpu.stat", "usage_usec 2345678\nuser_usec 2000000\n"),
            ("cpu.max", "150000 100000\n"),
        ]);
        let u = of_holder(&proc_root, &cg, 4242, 1000).unwrap();
        assert_eq!(
            u.cgroup,
            "/user.slice/user-1000.slice/user-1000-nsjail.slice"
        );
        assert_eq!(u.memory_current, Some(12_898_304));
        assert_eq!(u.memory_max, Some(Some(64 << 20)));
        assert_eq!(u.cpu_quota_percent(), Some(150));
        assert_eq!(u.memory_column(), "12.3M/64M");
        assert_eq!(u.tasks_column(), "7/40");
        assert_eq!(u.cpu_column(), "2.3s/150%");
        // Another uid's holder, or a missing holder: nothing.
        assert_eq!(of_holder(&proc_root, &cg, 4242, 1001), None);
        assert_eq!(of_holder(&proc_root, &cg, 4243, 1000), None);
        let _ = fs::remove_dir_all(proc_root.parent().unwrap());
    }

    #[test]
    fn controllers_that_are_not_enabled_show_as_dashes() {
        let (proc_root, cg) = fake_host(&[
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            ("cpu.stat", "usage_usec 900000\n"),
        ]);
        let u = of_holder(&proc_root, &cg, 4242, 1000).unwrap();
        assert_eq!(u.memory_column(), "4K/max");
        assert_eq!(u.tasks_column(), "-");
        assert_eq!(u.cpu_column(), "0.9s");
        assert_eq!(u.cpu_quota_percent(), None);
        let _ = fs::remove_dir_all(proc_root.parent().unwrap());
    }
}
