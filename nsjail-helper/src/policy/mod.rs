//! The policy file (`/etc/security/pam_nsjail.toml`, DESIGN §4), in four
//! parts: the validated `model` and its first-match decision, `load`ing
//! with the trust check, the `validate`ing parser, and `error`s with
//! positions. Loading never panics: the PAM module runs this inside sshd.
#![forbid(unsafe_code)]

mod error;
mod load;
mod model;
mod validate;

pub use error::{ConfigError, LoadError};
pub use load::{load, load_with_text, MAX_POLICY_BYTES};
pub use model::{
    Bounds, Config, Decision, MatchReason, Namespace, NetConfig, Network, OnLogout, PolicyEntry,
    Propagation, Settings, Share, SubidMode, DEFAULT_IPC_OBJECTS, DEFAULT_MAX_PTYS,
    DEFAULT_MAX_SETS, DEFAULT_POOL, DEFAULT_TMP_SIZE, MAX_IPC_OBJECTS, MAX_PTYS_LIMIT,
    MAX_SETS_LIMIT,
};
pub use validate::{parse, MAX_POLICY_NAME, MAX_PRIVATE_TMP};
pub(crate) use validate::{private_dir_problem, size_bytes, tmp_size};

#[cfg(test)]
mod tests;
