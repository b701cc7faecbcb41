//! Per-user resource limits (`memory_max`, `memory_high`, `tasks_max`,
//! `cpu_quota`, `cpu_weight`, `io_weight` in the policy).
//!
//! A limit applies to ALL of a user's isolated processes together, across
//! their sets and logins: what an admin means by "each student gets 4 GB".
//! Where a login's processes sit decides what a limit covers (measured on
//! Debian 13 with systemd 257, DESIGN §2d): the holder is in the set's
//! scope `nsjail-UID-PID.scope`, but sshd's post-auth child, the shell it
//! forks and everything started from it are in logind's `session-N.scope`.
//!
//! On a systemd host (`systemd.rs`) therefore:
//! - the limits are properties of a per-user slice
//!   `user-UID-nsjail.slice` (a child of logind's `user-UID.slice`, so
//!   `loginctl terminate-user` still ends it, and an admin's
//!   `user-.slice` drop-ins still bound it from above), created or updated
//!   by H0 over D-Bus before the set exists;
//! - each set's scope lives in that slice, with `Delegate=yes`;
//! - sshd's post-auth child, before it runs anything of the user's (in
//!   `pam_setcred`), has the helper ask systemd to move it into the set's
//!   scope (`AttachProcessesToUnit`, which systemd only allows into a
//!   delegated unit), so the shell and all it starts are born there;
//!   sshd's monitor stays in `session-N.scope`, so logind's session, utmp
//!   and logout are unchanged. systemd's own cgroups are never written to.
//!
//! tmpfs and SysV shm pages are charged to the cgroup of the process that
//! first touches them: the user's, now.
//!
//! On a host without systemd (`direct.rs`), pam_nsjail manages a cgroup
//! v2 subtree of its own, `/sys/fs/cgroup/pam_nsjail`: the limits on a
//! cgroup per user, each set in a leaf below it, every joining process
//! moved into its set's leaf before it enters the set.
//!
//! Hosts where no cgroup v2 hierarchy offers the controllers a policy needs
//! (a v1/hybrid host binds them to v1) cannot enforce limits: a login whose
//! policy has limits is refused there, or with `on_error=allow` let in
//! without them and a LOG_ERR line saying so — never silently unlimited.
#![forbid(unsafe_code)]

pub mod direct;
pub mod systemd;
pub mod usage;

use std::fmt;
use std::fs;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::nsset::SetError;

/// The limits a policy sets; `None` is "no limit" (systemd's `infinity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes (`MemoryMax=`): above it the kernel reclaims, then OOM-kills
    /// inside the user's cgroup.
    pub memory_max: Option<u64>,
    /// Bytes (`MemoryHigh=`): above it the user's processes are throttled.
    pub memory_high: Option<u64>,
    /// Processes and threads (`TasksMax=`).
    pub tasks_max: Option<u64>,
    /// Percent of one CPU (`CPUQuota=`; 200 = two CPUs).
    pub cpu_quota: Option<u64>,
    /// 1..=10000 (`CPUWeight=`; systemd's default is 100).
    pub cpu_weight: Option<u64>,
    /// 1..=10000 (`IOWeight=`; systemd's default is 100).
    pub io_weight: Option<u64>,
}

/// Smallest `memory_max`/`memory_high`: below it a login cannot start.
pub const MIN_MEMORY: u64 = 8 << 20;
/// Smallest `tasks_max`: sshd's child, a shell and one command.
pub const MIN_TASKS: u64 = 4;
/// cgroup v2's weight range.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u64> = 1..=10000;
/// Largest `cpu_quota` in percent (10000 CPUs).
pub const MAX_CPU_PERCENT: u64 = 1_000_000;

/// The wire/explain names, in a fixed order.
const KEYS: [&str; 6] = [
    "memory_max",
    "memory_high",
    "tasks_max",
    "cpu_quota",
    "cpu_weight",
    "io_weight",
];

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    fn values(&self) -> [Option<u64>; 6] {
        [
            self.memory_max,
            self.memory_high,
            self.tasks_max,
            self.cpu_quota,
            self.cpu_weight,
            self.io_weight,
        ]
    }

    fn slot(&mut self, key: &str) -> Option<&mut Option<u64>> {
        Some(match key {
            "memory_max" => &mut self.memory_max,
            "memory_high" => &mut self.memory_high,
            "tasks_max" => &mut self.tasks_max,
            "cpu_quota" => &mut self.cpu_quota,
            "cpu_weight" => &mut self.cpu_weight,
            "io_weight" => &mut self.io_weight,
            _ => return None,
        })
    }

    /// The cgroup v2 controllers these limits need.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.memory_max.is_some() || self.memory_high.is_some() {
            c.push("memory");
        }
        if self.tasks_max.is_some() {
            c.push("pids");
        }
        if self.cpu_quota.is_some() || self.cpu_weight.is_some() {
            c.push("cpu");
        }
        if self.io_weight.is_some() {
            c.push("io");
        }
        c
    }

    /// `key=value,...` (raw numbers) for H0's command line; "" when empty.
    pub fn to_arg(&self) -> String {
        KEYS.iter()
            .zip(self.values())
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Inverse of `to_arg`, re-checking every value as the policy would.
    pub fn from_arg(text: &str) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for item in text.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("limit {item:?}: expected key=value"))?;
            let n: u64 = value
                .parse()
                .map_err(|_| format!("limit {key}: {value:?} is not a number"))?;
            let slot = limits
                .slot(key)
                .ok_or_else(|| format!("unknown limit {key:?}"))?;
            if slot.replace(n).is_some() {
                return Err(format!("limit {key} given twice"));
            }
        }
        limits.check()?;
        Ok(limits)
    }

    /// The bounds `check` enforces, for a spec built any other way.
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("memory_max", self.memory_max),
            ("memory_high", self.memory_high),
        ] {
            if let Some(v) = v {
                memory_value_ok(v).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let Some(t) = self.tasks_max {
            tasks_ok(t).map_err(|e| format!("tasks_max: {e}"))?;
        }
        if let Some(q) = self.cpu_quota {
            if !(1..=MAX_CPU_PERCENT).contains(&q) {
                return Err(format!("cpu_quota: {q}% is outside 1%..{MAX_CPU_PERCENT}%"));
            }
        }
        for (key, v) in [
            ("cpu_weight", self.cpu_weight),
            ("io_weight", self.io_weight),
        ] {
            if let Some(v) = v {
                weight_ok(v).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let (Some(high), Some(max)) = (self.memory_high, self.memory_max) {
            if high > max {
                return Err(format!(
                    "memory_high ({}) is above memory_max ({}): it would never apply",
                    show_bytes(high),
                    show_bytes(max)
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Limits {
    /// `memory_max=4G tasks_max=1024 cpu_quota=200%`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        for (key, v) in KEYS.iter().zip(self.values()) {
            let Some(v) = v else { continue };
            parts.push(match *key {
                "memory_max" | "memory_high" => format!("{key}={}", show_bytes(v)),
                "cpu_quota" => format!("{key}={v}%"),
                _ => format!("{key}={v}"),
            });
        }
        f.write_str(&parts.join(" "))
    }
}

/// `4G`, `512M`, `1536K` or plain bytes: the largest exact binary unit.
pub fn show_bytes(v: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if v != 0 && v % (1u64 << shift) == 0 {
            return format!("{}{unit}", v >> shift);
        }
    }
    v.to_string()
}

/// A memory size: digits with an optional K/M/G/T suffix (binary, either
/// case), at least [`MIN_MEMORY`].
pub fn parse_memory(v: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size like \"4G\", \"512M\" or a number of bytes";
    let (digits, shift) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(EXPECTED.into()),
            };
            (v.get(..i).unwrap_or_default(), shift)
        }
        _ => (v, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EXPECTED.into());
    }
    let n: u64 = digits.parse().map_err(|_| "too large".to_owned())?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .filter(|b| *b < u64::MAX)
        .ok_or_else(|| "too large".to_owned())?;
    memory_value_ok(bytes)?;
    Ok(bytes)
}

fn memory_value_ok(bytes: u64) -> Result<(), String> {
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{} is too small: a login needs at least {}",
            show_bytes(bytes),
            show_bytes(MIN_MEMORY)
        ));
    }
    if bytes == u64::MAX {
        return Err("too large".into());
    }
    Ok(())
}

/// `cpu_quota`: a percentage of one CPU, "50%".."1000000%".
pub fn parse_cpu_quota(v: &str) -> Result<u64, String> {
    let expected = format!(
        "expected a percentage of one CPU like \"50%\" or \"200%\" (1%..{MAX_CPU_PERCENT}%)"
    );
    let digits = v.strip_suffix('%').ok_or_else(|| expected.clone())?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected);
    }
    match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_CPU_PERCENT).contains(&n) => Ok(n),
        _ => Err(expected),
    }
}

pub fn tasks_ok(n: u64) -> Result<(), String> {
    if n < MIN_TASKS {
        return Err(format!(
            "{n} is too small: a login needs at least {MIN_TASKS} tasks (sshd's child, a shell, a command)"
        ));
    }
    if n == u64::MAX {
        return Err("too large".into());
    }
    Ok(())
}

pub fn weight_ok(n: u64) -> Result<(), String> {
    if WEIGHT_RANGE.contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "{n} is outside {}..={} (100 is the default share)",
            WEIGHT_RANGE.start(),
            WEIGHT_RANGE.end()
        ))
    }
}

/// Why this host cannot enforce `limits`, if it cannot: it needs a cgroup
/// v2 hierarchy at `cgroup_root` (normally `/sys/fs/cgroup`) offering the
/// controllers they need, managed by systemd or, without it, by
/// pam_nsjail (`mechanism`).
pub fn support(limits: &Limits, cgroup_root: &Path) -> Result<(), String> {
    if limits.is_empty() {
        return Ok(());
    }
    let controllers = match std::fs::read_to_string(cgroup_root.join("cgroup.controllers")) {
        Ok(text) => text,
        Err(_) => {
            let unified = cgroup_root.join("unified/cgroup.controllers");
            let why = match std::fs::read_to_string(&unified) {
                Ok(t) if t.trim().is_empty() => format!(
                    "{} is not a cgroup v2 hierarchy (a v1/hybrid host): its v2 part at {} has no controllers, they are bound to cgroup v1",
                    cgroup_root.display(),
                    unified.display().to_string().trim_end_matches("/cgroup.controllers")
                ),
                _ => format!(
                    "{} is not a cgroup v2 hierarchy (a v1/hybrid host)",
                    cgroup_root.display()
                ),
            };
            return Err(format!(
                "resource limits ({limits}) cannot be enforced: {why}"
            ));
        }
    };
    let have: Vec<&str> = controllers.split_whitespace().collect();
    let missing: Vec<&str> = limits
        .controllers()
        .into_iter()
        .filter(|c| !have.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "resource limits ({limits}) cannot be enforced: cgroup v2 controller(s) {} not available at {}",
            missing.join(", "),
            cgroup_root.display()
        ));
    }
    Ok(())
}

/// How `support`ed limits are enforced for `uid` on this host, for
/// `explain` and `check`.
pub fn mechanism(systemd: bool, uid: u32) -> String {
    if systemd {
        format!(
            "by systemd: {} (the sets' scopes inside, with Delegate=yes)",
            systemd::slice_name(uid)
        )
    } else {
        format!(
            "by pam_nsjail on the cgroup v2 hierarchy (no systemd): {}{} (one cgroup per set inside)",
            crate::paths::CGROUP,
            direct::user_cgroup(uid)
        )
    }
}

/// The step name of a failed `enter_limits`.
pub(crate) const ENTER_STEP: &str = "enter the user's resource limits";

/// The joining process' side (sshd's post-auth child, `run`'s and
/// `enter`'s child), as root in the host namespaces and before anything
/// of the user's runs: finds the limited cgroup of the set whose holder
/// is `holder_pid` (behind `holder`, checked alive after the read, so the
/// pid was the holder's) and moves this process there: into its leaf
/// (`direct.rs`), or through `helper __attach` into its systemd scope.
/// With `required` (the policy sets limits), a set outside them is an
/// error; without (an admin's `enter`), nothing happens then.
pub fn enter_limits(
    helper: &Path,
    holder_pid: i32,
    holder: BorrowedFd<'_>,
    uid: u32,
    required: bool,
) -> Result<(), SetError> {
    let cgroup = fs::read_to_string(format!("/proc/{holder_pid}/cgroup"))
        .map_err(|e| SetError::new(ENTER_STEP, format!("read the holder's cgroup: {e}")))?;
    crate::sys::pidfd_send_signal(holder, 0)
        .map_err(|e| SetError::new(ENTER_STEP, format!("the set's holder is gone: {e}")))?;
    if let Some(set) = direct::set_cgroup_of(&cgroup, uid) {
        return direct::join(Path::new(crate::paths::CGROUP), &set)
            .map_err(|e| SetError::new(ENTER_STEP, e));
    }
    if let Some(unit) = systemd::limited_scope_of(&cgroup, uid) {
        return systemd::attach_via_helper(helper, &unit);
    }
    if !required {
        return Ok(());
    }
    Err(SetError::new(
        ENTER_STEP,
        format!(
            "the set is not under the user's limits (its holder is in {}): it was created before the policy set limits; end it with 'nsjail-helper stop' so the next login makes a limited one",
            cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("?")
        ),
    ))
}

#[cfg(test)]
mod tests;
