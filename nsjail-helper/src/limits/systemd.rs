//! Limits through systemd (see `limits/mod.rs` for the design): the
//! user's slice with the limits, and moving sshd's post-auth child into the
//! set's delegated scope. Everything goes over D-Bus; nothing here writes
//! to a cgroup.
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::Limits;
use crate::dbus;
use crate::nsset::SetError;

/// How long one call to systemd may take.
const BUS_TIMEOUT: Duration = Duration::from_secs(3);

/// The slice holding every set scope of `uid` that has limits; a child of
/// logind's `user-UID.slice` (systemd derives the parent from the name).
pub fn slice_name(uid: u32) -> String {
    format!("user-{uid}-nsjail.slice")
}

/// The slice properties for `limits`: all six, "infinity" for unset ones,
/// so that a key removed from the policy is lifted at the next login.
pub fn properties(limits: &Limits) -> [(&'static str, u64); 6] {
    let or_inf = |v: Option<u64>| v.unwrap_or(u64::MAX);
    [
        ("MemoryMax", or_inf(limits.memory_max)),
        ("MemoryHigh", or_inf(limits.memory_high)),
        ("TasksMax", or_inf(limits.tasks_max)),
        // µs of CPU time per second: 100 % = 1 000 000.
        (
            "CPUQuotaPerSecUSec",
            limits
                .cpu_quota
                .map_or(u64::MAX, |pct| pct.saturating_mul(10_000)),
        ),
        ("CPUWeight", or_inf(limits.cpu_weight)),
        ("IOWeight", or_inf(limits.io_weight)),
    ]
}

/// Updates the limits of `uid`'s slice if it exists: `Ok(false)` when it
/// does not (the caller then creates it with the set's scope).
pub fn update_user_slice(uid: u32, limits: &Limits) -> Result<bool, String> {
    let name = slice_name(uid);
    match dbus::set_unit_properties(
        Path::new(dbus::SYSTEM_BUS_SOCKET),
        &name,
        &properties(limits),
        BUS_TIMEOUT,
    ) {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.error_name(),
                Some("org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.systemd1.LoadFailed")
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!("systemd: {name}: {e}")),
    }
}

/// The description of `uid`'s slice (user-.slice.d's drop-in may show its
/// own instead).
pub fn slice_description(uid: u32, limits: &Limits) -> String {
    format!("pam_nsjail resource limits of uid {uid}: {limits}")
}

/// The set scope a `/proc/PID/cgroup` text (of a set's holder) places the
/// process in, if that scope is one of `uid`'s limited ones
/// (`…/user-UID-nsjail.slice/nsjail-UID-N.scope`).
pub fn limited_scope_of(cgroup: &str, uid: u32) -> Option<String> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut parts = path.rsplit('/');
    let scope = parts.next()?;
    let slice = parts.next()?;
    let n = scope
        .strip_prefix(&format!("nsjail-{uid}-"))?
        .strip_suffix(".scope")?;
    (slice == slice_name(uid) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| scope.to_owned())
}

/// Moves process `pid` into the delegated set scope `unit` and checks that
/// it arrived.
pub fn attach(unit: &str, pid: u32) -> Result<(), String> {
    dbus::attach_processes(
        Path::new(dbus::SYSTEM_BUS_SOCKET),
        unit,
        &[pid],
        BUS_TIMEOUT,
    )
    .map_err(|e| format!("systemd: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if now
            .lines()
            .filter_map(|l| l.strip_prefix("0::"))
            .any(|p| p.rsplit('/').next() == Some(unit))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "systemd accepted moving pid {pid} into {unit}, but it is still in {}",
                now.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Has `helper __attach` move this process into the limited set scope
/// `unit` (see `super::enter_limits`). The module itself never talks
/// D-Bus (no client code in sshd's process).
pub(super) fn attach_via_helper(helper: &Path, unit: &str) -> Result<(), SetError> {
    let step = super::ENTER_STEP;
    let exe = crate::trust::open_root_executable(helper)
        .map_err(|e| SetError::new(step, format!("check helper {}: {e}", helper.display())))?;
    let out = Command::new(crate::trust::fd_path(&exe))
        .arg0("nsjail-helper")
        .args(["__attach", unit, &host_pid().to_string()])
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SetError::new(step, format!("exec helper {}: {e}", helper.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(SetError::new(
        step,
        format!("move into {unit}: {}", why.trim().replace('"', "'")),
    ))
}

/// This process's pid as systemd (the host's pid namespace) knows it.
/// `run`'s child is already in the set's pid namespace (its parent
/// entered it for its children), where getpid() says 2; the host's
/// /proc still names it by its host pid.
fn host_pid() -> u32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

/// `nsjail-helper __attach UNIT PID`: what `enter_limits` runs.
pub fn attach_main(args: &[String]) -> i32 {
    let [unit, pid] = args else {
        eprintln!("usage: nsjail-helper __attach UNIT PID");
        return 2;
    };
    let valid_unit = unit
        .strip_prefix("nsjail-")
        .and_then(|u| u.strip_suffix(".scope"))
        .and_then(|u| u.split_once('-'))
        .is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        });
    let pid = pid.parse::<u32>().ok().filter(|p| *p > 1);
    let (true, Some(pid)) = (valid_unit, pid) else {
        eprintln!("nsjail-helper: __attach: not a set scope and pid: {unit} {pid:?}");
        return 2;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("nsjail-helper: __attach: must run as root");
        return 1;
    }
    match attach(unit, pid) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
