//! The pam_nsjail engine: policy, sub-id ranges, id maps, namespace sets,
//! their registry, and the one login flow (`session::login`) that the PAM
//! module and `nsjail-helper run` share.
//!
//! All `unsafe` code of the crate lives in the private `sys` module; every
//! other module forbids it.

pub mod admin;
pub mod child;
pub mod cli;
pub mod dbus;
pub mod idmap;
pub mod limits;
pub mod log;
pub mod manager;
pub mod net;
pub mod nsset;
pub mod paths;
pub mod policy;
pub mod procfs;
pub mod registry;
pub mod relay;
pub mod runner;
pub mod session;
pub mod subid;
mod sys;
pub mod trust;
pub mod user;
