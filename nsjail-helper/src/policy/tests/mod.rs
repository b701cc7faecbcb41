//! Unit tests of the policy: matching, inheritance, validation with
//! positions, and the trust check of the file.

use std::path::{Path, PathBuf};

use super::*;
use crate::user::{GroupMembership, UserInfo};

mod load;
mod matching;
mod syntax;

const P: &str = "/p.toml";

/// A user whose groups are `(name, gid, primary)`.
fn user(name: &str, uid: u32, groups: &[(&str, u32, bool)]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid,
        gid: groups.iter().find(|g| g.2).map_or(uid, |g| g.1),
        home: "/home/x".into(),
        shell: "/bin/sh".into(),
        groups: groups
            .iter()
            .map(|&(n, gid, primary)| GroupMembership {
                gid,
                name: Some(n.into()),
                primary,
            })
            .collect(),
    }
}

fn cfg(text: &str) -> Config {
    parse(Path::new(P), text).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn errs(text: &str) -> Vec<String> {
    parse(Path::new(P), text)
        .expect_err("must fail")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Exactly one error, equal to `expected`.
fn one_err(text: &str, expected: &str) {
    assert_eq!(errs(text), vec![expected.to_owned()], "for {text:?}");
}

/// The first error starts with `prefix`.
fn first_err_starts(text: &str, prefix: &str) {
    let e = errs(text);
    assert!(e[0].starts_with(prefix), "{}", e[0]);
}

/// A policy that is valid except for `extra` lines (from line 4).
fn with(extra: &str) -> String {
    format!("[[policy]]\nname = \"p\"\ngroups = [\"g\"]\n{extra}\n")
}

const EXAMPLE: &str = r#"
[defaults]
isolate = false

[[policy]]
name = "admins"
groups = ["admins"]
isolate = false

[[policy]]
name = "students"
groups = ["students", "cs101"]
tmp_size = "512M"

[[policy]]
name = "guests"
users = ["guest"]
services = ["sshd"]
share = "session"
"#;
