//! Every default path, defined once (DESIGN §4).
#![forbid(unsafe_code)]

/// The policy file.
pub const POLICY: &str = "/etc/security/pam_nsjail.toml";
/// The helper the module executes to create a set.
pub const HELPER: &str = "/usr/sbin/nsjail-helper";
/// The root-only registry of live sets.
pub const REGISTRY: &str = "/run/pam_nsjail";
/// Where `subuid`, `subgid`, `passwd` are read.
pub const ETC: &str = "/etc";
/// The host's procfs.
pub const PROC: &str = "/proc";
/// The cgroup v2 hierarchy (read only: `list` shows the limited users' use).
pub const CGROUP: &str = "/sys/fs/cgroup";
/// The local PAM configuration, and the vendor directory it overrides.
pub const PAM_DIR: &str = "/etc/pam.d";
pub const VENDOR_PAM_DIR: &str = "/usr/lib/pam.d";
/// sshd's main configuration file.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// The PAM service whose policies `run`, `explain` and `check` apply.
pub const DEFAULT_SERVICE: &str = "sshd";
