//! The pam_nsjail engine: policy, sub-id ranges, id maps, namespace sets and
//! their registry. Shared by the `nsjail-helper` binary and the PAM module.
//!
//! All `unsafe` code lives in `sys`; the policy, sub-id and id-map modules
//! are pure logic with unit tests that need no root.

pub mod cli;
pub mod idmap;
pub mod log;
pub mod nsset;
pub mod policy;
pub mod procfs;
pub mod registry;
pub mod session;
pub mod subid;
pub mod sys;
pub mod trust;
pub mod user;
