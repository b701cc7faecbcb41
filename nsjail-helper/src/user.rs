//! User and group lookups through NSS, kept here so the rest of the
//! library is pure logic: policy matching takes a `UserInfo`, and its unit
//! tests build one by hand.
#![forbid(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, User};

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
    /// The passwd entry's primary gid.
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// Primary group first, then getgrouplist's supplementary groups, each
    /// gid once.
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

/// A user lookup failed.
#[derive(Debug, PartialEq, Eq)]
pub struct UserError(String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

impl UserError {
    /// NSS has no user `name`.
    pub fn unknown(name: &str) -> UserError {
        UserError(format!("unknown user '{name}'"))
    }
}

/// Looks `name` up with getpwnam and getgrouplist.
pub fn lookup_user(name: &str) -> Result<UserInfo, UserError> {
    lookup_with(name, User::from_name, nix::unistd::getgrouplist)
}

/// `lookup_user` over injectable NSS calls. The groups are those of the
/// passwd entry's own name, not of `name` as typed: a case-insensitive
/// source (sssd's `case_sensitive = false`) finds `ALICE` as `alice`,
/// and a group source that is case-sensitive would give `ALICE` none.
fn lookup_with(
    name: &str,
    getpwnam: impl Fn(&str) -> nix::Result<Option<User>>,
    getgrouplist: impl Fn(&CStr, Gid) -> nix::Result<Vec<Gid>>,
) -> Result<UserInfo, UserError> {
    // Checked first: nix would turn a NUL into a bare EINVAL.
    if CString::new(name).is_err() {
        return Err(UserError(format!("invalid user name {name:?}")));
    }
    if name.is_empty() {
        return Err(UserError::unknown(name));
    }
    let user = match getpwnam(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(UserError::unknown(name)),
        Err(e) => return Err(UserError(format!("cannot look up user '{name}': {e}"))),
    };
    let canonical = CString::new(user.name.as_str())
        .map_err(|_| UserError(format!("invalid user name {:?}", user.name)))?;
    let gids = getgrouplist(&canonical, user.gid)
        .map_err(|e| UserError(format!("cannot look up the groups of '{}': {e}", user.name)))?;
    Ok(UserInfo {
        groups: memberships(user.gid, &gids, group_name),
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
        shell: user.shell,
    })
}

/// The primary group, then each other gid of `gids` once, named by `name_of`.
fn memberships(
    primary: Gid,
    gids: &[Gid],
    name_of: impl Fn(u32) -> Option<String>,
) -> Vec<GroupMembership> {
    let primary = primary.as_raw();
    let mut out = vec![GroupMembership {
        gid: primary,
        name: name_of(primary),
        primary: true,
    }];
    for gid in gids.iter().map(|g| g.as_raw()) {
        if out.iter().all(|g| g.gid != gid) {
            out.push(GroupMembership {
                gid,
                name: name_of(gid),
                primary: false,
            });
        }
    }
    out
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
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
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            root.groups[0],
            GroupMembership {
                gid: 0,
                name: Some("root".into()),
                primary: true
            }
        );
        assert_eq!(root.groups.iter().filter(|g| g.primary).count(), 1);
        assert_eq!(root.all_gids()[0], 0);
        assert!(root.home.is_absolute());
    }

    #[test]
    fn unknown_and_invalid_users_are_named_in_the_error() {
        let err = lookup_user("no-such-user-xyz").expect_err("must fail");
        assert_eq!(err.to_string(), "unknown user 'no-such-user-xyz'");
        assert_eq!(
            lookup_user("").expect_err("empty").to_string(),
            "unknown user ''"
        );
        assert_eq!(
            lookup_user("ro\0ot").expect_err("nul").to_string(),
            "invalid user name \"ro\\0ot\""
        );
    }

    #[test]
    fn groups() {
        assert!(group_exists("root"));
        assert!(!group_exists("no-such-group-xyz"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }

    /// A passwd source that ignores case (sssd, `case_sensitive =
    /// false`) and a group source that does not.
    fn case_insensitive_passwd(name: &str) -> nix::Result<Option<User>> {
        Ok((name.eq_ignore_ascii_case("alice")).then(|| User {
            name: "alice".into(),
            passwd: CString::default(),
            uid: nix::unistd::Uid::from_raw(2001),
            gid: Gid::from_raw(2001),
            gecos: CString::default(),
            dir: "/home/alice".into(),
            shell: "/bin/sh".into(),
        }))
    }

    #[test]
    fn groups_are_those_of_the_canonical_name_not_the_typed_one() {
        let asked = std::cell::RefCell::new(Vec::new());
        let grouplist = |name: &CStr, primary: Gid| {
            asked.borrow_mut().push(name.to_owned());
            Ok(if name == c"alice" {
                vec![primary, Gid::from_raw(3000)]
            } else {
                vec![primary]
            })
        };
        let u = lookup_with("ALICE", case_insensitive_passwd, grouplist).expect("found");
        assert_eq!(u.name, "alice");
        assert_eq!(*asked.borrow(), [c"alice".to_owned()]);
        assert_eq!(
            u.all_gids(),
            vec![2001, 3000],
            "her group 'students' is found"
        );
    }

    #[test]
    fn memberships_put_the_primary_group_first_once() {
        let gids = [
            Gid::from_raw(20),
            Gid::from_raw(10),
            Gid::from_raw(30),
            Gid::from_raw(20),
        ];
        let named = |gid: u32| (gid != 30).then(|| format!("g{gid}"));
        let m = memberships(Gid::from_raw(10), &gids, named);
        assert_eq!(
            m,
            [
                GroupMembership {
                    gid: 10,
                    name: Some("g10".into()),
                    primary: true
                },
                GroupMembership {
                    gid: 20,
                    name: Some("g20".into()),
                    primary: false
                },
                GroupMembership {
                    gid: 30,
                    name: None,
                    primary: false
                },
            ]
        );
    }

    #[test]
    fn all_gids_deduplicates_primary_first() {
        let u = UserInfo {
            name: "a".into(),
            uid: 1,
            gid: 10,
            home: "/".into(),
            shell: "/bin/sh".into(),
            groups: [(20, false), (10, true), (20, false), (30, false)]
                .into_iter()
                .map(|(gid, primary)| GroupMembership {
                    gid,
                    name: None,
                    primary,
                })
                .collect(),
        };
        assert_eq!(u.all_gids(), vec![10, 20, 30]);
    }
}
