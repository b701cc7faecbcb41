//! User and group lookups through NSS. Policy matching takes a `UserInfo`,
//! so its unit tests build one by hand instead of calling NSS.

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;

use nix::unistd::{Group, User};

/// One group the user belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMembership {
    pub gid: u32,
    /// `None` if NSS has no name for the gid.
    pub name: Option<String>,
    /// True for the passwd entry's primary group.
    pub primary: bool,
}

/// A user as NSS knows them, with every group (primary first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
    pub groups: Vec<GroupMembership>,
}

impl UserInfo {
    /// Primary and supplementary gids, primary first, without duplicates.
    pub fn all_gids(&self) -> Vec<u32> {
        let mut gids = vec![self.gid];
        for g in &self.groups {
            if !gids.contains(&g.gid) {
                gids.push(g.gid);
            }
        }
        gids
    }
}

#[derive(Debug)]
pub struct UserError(String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Looks `name` up with getpwnam and getgrouplist.
pub fn lookup_user(name: &str) -> Result<UserInfo, UserError> {
    let user = match User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(UserError(format!("unknown user '{name}'"))),
        Err(e) => return Err(UserError(format!("look up user '{name}': {e}"))),
    };
    let cname = CString::new(name).map_err(|_| UserError(format!("invalid user name '{name}'")))?;
    let gids = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| UserError(format!("look up groups of '{name}': {e}")))?;
    let mut groups = vec![GroupMembership {
        gid: user.gid.as_raw(),
        name: group_name(user.gid.as_raw()),
        primary: true,
    }];
    for gid in gids {
        let gid = gid.as_raw();
        if groups.iter().all(|g| g.gid != gid) {
            groups.push(GroupMembership {
                gid,
                name: group_name(gid),
                primary: false,
            });
        }
    }
    Ok(UserInfo {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
        shell: user.shell,
        groups,
    })
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(gid.into()).ok().flatten().map(|g| g.name)
}

/// The gid of group `tty`, which owns ptys and is identity-mapped so a
/// session's terminal keeps its group inside.
pub fn tty_gid() -> Option<u32> {
    Group::from_name("tty")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Whether NSS knows group `name`.
pub fn group_exists(name: &str) -> bool {
    matches!(Group::from_name(name), Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_primary_group_first() {
        let root = lookup_user("root").expect("root exists");
        assert_eq!(root.uid, 0);
        assert_eq!(
            root.groups[0],
            GroupMembership {
                gid: 0,
                name: Some("root".into()),
                primary: true
            }
        );
        assert_eq!(root.all_gids()[0], 0);
    }

    #[test]
    fn unknown_user_is_named_in_the_error() {
        let err = lookup_user("no-such-user-xyz").expect_err("must fail");
        assert_eq!(err.to_string(), "unknown user 'no-such-user-xyz'");
    }

    #[test]
    fn all_gids_deduplicates() {
        let u = UserInfo {
            name: "a".into(),
            uid: 1,
            gid: 10,
            home: "/".into(),
            shell: "/bin/sh".into(),
            groups: vec![
                GroupMembership {
                    gid: 10,
                    name: None,
                    primary: true,
                },
                GroupMembership {
                    gid: 20,
                    name: None,
                    primary: false,
                },
                GroupMembership {
                    gid: 10,
                    name: None,
                    primary: false,
                },
            ],
        };
        assert_eq!(u.all_gids(), vec![10, 20]);
    }
}
