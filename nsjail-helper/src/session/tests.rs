//! The login flow and the session registry, without root: a fake host
//! (policy text, hand-made users, a private registry owned by the test's
//! own uid) and a recording fake creator whose "holders" are `sleep`
//! children of the test.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::*;
use crate::nsset::{Holder, SetCreator, SetError, SetSpec, Spawned, UnitPlacement, H0};
use crate::policy::{self, Config, LoadError};
use crate::procfs;
use crate::user::{GroupMembership, UserError, UserInfo};

/// Records every spec it is asked to build; each set's holder is a
/// `sleep` child of the test, so killing it is harmless.
struct FakeCreator {
    specs: RefCell<Vec<SetSpec>>,
    holders: RefCell<Vec<Child>>,
    fail: Cell<bool>,
    unit: RefCell<UnitPlacement>,
    /// (holder, opener) of every `enlist`.
    enlisted: RefCell<Vec<(ProcId, ProcId)>>,
    /// What H0 reports it took back out of the gid map.
    unlent: Cell<Option<u32>>,
}

impl Default for FakeCreator {
    fn default() -> Self {
        FakeCreator {
            specs: RefCell::default(),
            holders: RefCell::default(),
            fail: Cell::new(false),
            unit: RefCell::new(UnitPlacement::NoSystemd),
            enlisted: RefCell::default(),
            unlent: Cell::new(None),
        }
    }
}

impl SetCreator for FakeCreator {
    fn enlist(&self, holder: &Holder, opener: ProcId, _: &Path) -> Result<(), SetError> {
        self.enlisted.borrow_mut().push((holder.id, opener));
        Ok(())
    }

    fn create(&self, spec: &SetSpec, proc_root: &Path) -> Result<Spawned, SetError> {
        if self.fail.get() {
            return Err(SetError::new("mount tmpfs on /tmp", "Permission denied"));
        }
        self.specs.borrow_mut().push(spec.clone());
        let child = Command::new("sleep").arg("300").spawn().expect("sleep");
        let pid = child.id() as i32;
        self.holders.borrow_mut().push(child);
        let holder = Holder {
            id: procfs::proc_id(proc_root, pid).expect("holder alive"),
            pidfd: crate::sys::pidfd_open(pid).expect("pidfd"),
            userns: procfs::ns_inode(proc_root, pid, "user").expect("userns"),
        };
        Ok(Spawned {
            holder,
            h0: H0::default(),
            unit: self.unit.borrow().clone(),
            lease: None,
            unlent: self.unlent.get(),
        })
    }
}

impl Drop for FakeCreator {
    fn drop(&mut self) {
        for child in self.holders.borrow_mut().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct FakeHost {
    dir: PathBuf,
    etc: PathBuf,
    policy_text: RefCell<String>,
    users: RefCell<HashMap<String, UserInfo>>,
    root: Cell<bool>,
    creator: FakeCreator,
    /// Looks names up as sssd with `case_sensitive = false` does.
    case_insensitive: Cell<bool>,
    /// The opening process' threads, as `Host::threads` reports them.
    threads: Cell<usize>,
    /// What `Host::shared_groups` reports (none unless a test sets it).
    shared: RefCell<Vec<SharedGroup>>,
}

const POLICY: &str = r#"
[[policy]]
name = "admins"
groups = ["admins"]
isolate = false

[[policy]]
name = "students"
groups = ["students"]
"#;

fn user(name: &str, uid: u32, group: &str, gid: u32) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid,
        gid,
        home: "/nonexistent".into(),
        shell: "/bin/sh".into(),
        groups: vec![GroupMembership {
            gid,
            name: Some(group.into()),
            primary: true,
        }],
    }
}

impl FakeHost {
    fn new(tag: &str) -> FakeHost {
        let dir = std::env::temp_dir().join(format!("nsjail-session-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).expect("mkdir");
        for f in ["subuid", "subgid"] {
            fs::write(
                dir.join("etc").join(f),
                "alice:200000:65536\nbob:300000:65536\n",
            )
            .expect("write");
        }
        let users = [
            user("alice", 2001, "students", 2001),
            user("bob", 2002, "students", 2002),
            user("carol", 2003, "admins", 2003),
            user("root", 0, "root", 0),
        ]
        .into_iter()
        .map(|u| (u.name.clone(), u))
        .collect();
        FakeHost {
            etc: dir.join("etc"),
            dir,
            policy_text: RefCell::new(POLICY.into()),
            users: RefCell::new(users),
            root: Cell::new(true),
            threads: Cell::new(1),
            creator: FakeCreator::default(),
            case_insensitive: Cell::new(false),
            shared: RefCell::new(Vec::new()),
        }
    }

    fn set_policy(&self, text: &str) {
        *self.policy_text.borrow_mut() = text.into();
    }

    fn registry(&self) -> Registry {
        Host::registry(self).expect("registry")
    }

    fn created(&self) -> usize {
        self.creator.specs.borrow().len()
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Host for FakeHost {
    fn policy_path(&self) -> &Path {
        Path::new("/etc/security/test.toml")
    }

    fn load_policy(&self) -> Result<(Config, String), LoadError> {
        let text = self.policy_text.borrow().clone();
        policy::parse(self.policy_path(), &text)
            .map(|c| (c, text))
            .map_err(LoadError::Parse)
    }

    fn lookup_user(&self, name: &str) -> Result<UserInfo, UserError> {
        let key = if self.case_insensitive.get() {
            name.to_lowercase()
        } else {
            name.to_owned()
        };
        self.users
            .borrow()
            .get(&key)
            .cloned()
            .ok_or_else(|| UserError::unknown(name))
    }

    fn is_root(&self) -> bool {
        self.root.get()
    }

    fn threads(&self) -> usize {
        self.threads.get()
    }

    fn etc(&self) -> &Path {
        &self.etc
    }

    fn shared_groups(&self) -> Vec<SharedGroup> {
        self.shared.borrow().clone()
    }

    fn creator(&self) -> &dyn SetCreator {
        &self.creator
    }

    fn registry(&self) -> std::io::Result<Registry> {
        Registry::open_as(
            &self.dir.join("run"),
            Path::new("/proc"),
            nix::unistd::geteuid().as_raw(),
        )
    }
}

fn me() -> ProcId {
    procfs::proc_id(Path::new("/proc"), std::process::id() as i32).expect("self")
}

/// A second live process to stand for another login's opener.
fn other_opener() -> (Child, ProcId) {
    let child = Command::new("sleep").arg("300").spawn().expect("sleep");
    let id = procfs::proc_id(Path::new("/proc"), child.id() as i32).expect("alive");
    (child, id)
}

fn request<'a>(user: &'a str, app: App, opener: ProcId) -> LoginRequest<'a> {
    LoginRequest {
        user,
        service: "sshd",
        app,
        on_error: OnError::Deny,
        auth_line_seen: true,
        opener,
    }
}

fn placed(outcome: Outcome) -> Placement {
    match outcome {
        Outcome::Placed(p) => *p,
        other => panic!("expected a placed login, got {other:?}"),
    }
}

fn refused_error(outcome: Outcome) -> String {
    match outcome {
        Outcome::Refused { error, .. } => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_isolated_user_gets_a_set_and_a_second_login_joins_it() {
    let host = FakeHost::new("join");
    let first = placed(login(&host, &request("alice", App::Sshd, me())));
    assert!(first.opened.created);
    assert_eq!(first.opened.key, "u2001");
    assert_eq!(first.policy, "students");
    let (mut other, id) = other_opener();
    let second = placed(login(&host, &request("alice", App::Sshd, id)));
    assert!(!second.opened.created, "share=user: the second login joins");
    assert_eq!(second.opened.holder.id, first.opened.holder.id);
    assert_eq!(host.created(), 1, "joining creates nothing");
    // The maps: her own uid to itself, the rest from her sub range.
    let spec = host.creator.specs.borrow()[0].clone();
    assert_eq!(spec.uid_map[0].inside, 2001);
    assert!(spec.uid_map.iter().all(|l| l.outside != 0));
    let reg = host.registry();
    assert_eq!(
        close(&reg, 2001, "u2001", id.pid).expect("close"),
        Closed::Kept { sessions: 1 }
    );
    assert_eq!(
        close(&reg, 2001, "u2001", me().pid).expect("close"),
        Closed::Ended
    );
    assert!(
        !procfs::is_alive(Path::new("/proc"), first.opened.holder.id),
        "on_logout=kill: the last close killed the holder"
    );
    assert_eq!(reg.read("u2001").expect("read"), None);
    assert_eq!(
        close(&reg, 2001, "u2001", me().pid).expect("close"),
        Closed::Gone
    );
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn with_on_logout_kill_every_opener_is_handed_to_the_holder() {
    // The set's first opener is handed over by H0 itself (the spec says
    // so); every login that joins is enlisted with the holder, so the set
    // ends with its openers even if none of them closes.
    let host = FakeHost::new("enlist");
    let first = placed(login(&host, &request("alice", App::Sshd, me())));
    assert!(host.creator.specs.borrow()[0].end_with_openers);
    assert!(host.creator.enlisted.borrow().is_empty());
    let (mut other, id) = other_opener();
    let _second = placed(login(&host, &request("alice", App::Sshd, id)));
    assert_eq!(
        *host.creator.enlisted.borrow(),
        [(first.opened.holder.id, id)]
    );
    let _ = other.kill();
    let _ = other.wait();
    // on_logout = "linger": nothing to hand over.
    let host = FakeHost::new("enlist-linger");
    host.set_policy(&format!("{POLICY}on_logout = \"linger\"\n"));
    placed(login(&host, &request("alice", App::Sshd, me())));
    let (mut other, id) = other_opener();
    placed(login(&host, &request("alice", App::Sshd, id)));
    assert!(!host.creator.specs.borrow()[0].end_with_openers);
    assert!(host.creator.enlisted.borrow().is_empty());
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn share_session_gives_each_login_its_own_set_and_linger_keeps_it() {
    let host = FakeHost::new("session");
    host.set_policy(&format!(
        "{POLICY}share = \"session\"\non_logout = \"linger\"\n"
    ));
    let a = placed(login(&host, &request("alice", App::Sshd, me())));
    let (mut other, other_id) = other_opener();
    let b = placed(login(&host, &request("alice", App::Sshd, other_id)));
    assert_ne!(a.opened.key, b.opened.key);
    assert!(a.opened.key.starts_with("s2001."));
    assert_eq!(host.created(), 2);
    let reg = host.registry();
    assert_eq!(
        close(&reg, 2001, &a.opened.key, me().pid).expect("close"),
        Closed::Kept { sessions: 0 },
        "on_logout=linger keeps the set"
    );
    assert!(procfs::is_alive(Path::new("/proc"), a.opened.holder.id));
    // stop ends both sets, and the login still open in one of them.
    let mut stopped = stop_user(&reg, 2001).expect("stop");
    stopped.sort_by_key(|s| s.logins);
    assert_eq!(stopped.iter().map(|s| s.logins).collect::<Vec<_>>(), [0, 1]);
    assert!(!procfs::is_alive(Path::new("/proc"), a.opened.holder.id));
    assert!(!procfs::is_alive(Path::new("/proc"), b.opened.holder.id));
    let status = other.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "the open login's opener was ended"
    );
}

/// Alice with a supplementary group `extra` (gid 3000) or without it.
fn alice_in_extra(host: &FakeHost, member: bool) {
    let mut alice = user("alice", 2001, "students", 2001);
    if member {
        alice.groups.push(GroupMembership {
            gid: 3000,
            name: Some("extra".into()),
            primary: false,
        });
    }
    host.users.borrow_mut().insert("alice".into(), alice);
}

#[test]
fn a_set_maps_only_her_own_ids_never_the_tty_group() {
    let host = FakeHost::new("ownids");
    alice_in_extra(&host, true);
    placed(login(&host, &request("alice", App::Sshd, me())));
    let spec = host.creator.specs.borrow()[0].clone();
    let identity = |map: &[crate::idmap::MapLine]| -> Vec<u32> {
        map.iter()
            .filter(|l| l.inside == l.outside)
            .map(|l| l.outside)
            .collect()
    };
    assert_eq!(identity(&spec.gid_map), [2001, 3000], "no tty group (5)");
    assert_eq!(identity(&spec.uid_map), [2001]);
    // The rest comes from her sub range, nowhere else.
    for l in spec.gid_map.iter().filter(|l| l.inside != l.outside) {
        assert!(l.outside >= 200000 && l.outside + l.count <= 200000 + 65536);
    }
    let rec = host
        .registry()
        .read("u2001")
        .expect("read")
        .expect("record");
    assert_eq!(rec.lent_gids, Some(vec![2001, 3000]));
}

fn crontab_group(gid: u32) -> SharedGroup {
    SharedGroup {
        name: "crontab".into(),
        gid,
        why: "test",
    }
}

fn identity_ids(map: &[crate::idmap::MapLine]) -> Vec<u32> {
    map.iter()
        .filter(|l| l.inside == l.outside)
        .map(|l| l.outside)
        .collect()
}

#[test]
fn every_set_maps_the_crontab_group_though_she_is_not_in_it() {
    let host = FakeHost::new("crontab");
    *host.shared.borrow_mut() = vec![crontab_group(107)];
    alice_in_extra(&host, true);
    let (mut first, first_id) = other_opener();
    placed(login(&host, &request("alice", App::Sshd, first_id)));
    let spec = host.creator.specs.borrow()[0].clone();
    assert_eq!(identity_ids(&spec.gid_map), [107, 2001, 3000]);
    assert_eq!(
        spec.crontab_gid,
        Some(107),
        "H0 is asked for the crontab bind"
    );
    assert_eq!(
        identity_ids(&spec.uid_map),
        [2001],
        "never root, for any program"
    );
    assert_eq!(spec.owner.gids, [2001, 3000], "she is not made a member");
    let reg = host.registry();
    let rec = reg.read("u2001").expect("read").expect("record");
    assert_eq!(rec.lent_gids, Some(vec![107, 2001, 3000]));
    // The lent group is not hers, yet the set is joined: it is lent to
    // everyone, not for a membership she could lose.
    let joined = placed(login(&host, &request("alice", App::Sshd, me())));
    assert!(!joined.opened.created, "joined, not refused as stale");
    close(&reg, 2001, "u2001", me().pid).expect("close");
    stop_user(&reg, 2001).expect("stop");
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn a_crontab_group_h0_could_not_lend_is_not_recorded_as_lent() {
    let host = FakeHost::new("crontabunlent");
    *host.shared.borrow_mut() = vec![crontab_group(107)];
    host.creator.unlent.set(Some(107));
    placed(login(&host, &request("alice", App::Sshd, me())));
    let spec = host.creator.specs.borrow()[0].clone();
    assert_eq!(identity_ids(&spec.gid_map), [107, 2001], "planned");
    let reg = host.registry();
    let rec = reg.read("u2001").expect("read").expect("record");
    assert_eq!(rec.lent_gids, Some(vec![2001]), "what the set maps");
    close(&reg, 2001, "u2001", me().pid).expect("close");
    stop_user(&reg, 2001).expect("stop");
}

#[test]
fn no_crontab_group_no_crontab_mapping() {
    let host = FakeHost::new("nocrontab");
    placed(login(&host, &request("alice", App::Sshd, me())));
    let spec = host.creator.specs.borrow()[0].clone();
    assert_eq!(identity_ids(&spec.gid_map), [2001]);
    assert_eq!(spec.crontab_gid, None);
    close(&host.registry(), 2001, "u2001", me().pid).expect("close");
}

#[test]
fn the_crontab_group_may_be_hers_or_inside_her_sub_range() {
    let host = FakeHost::new("crontabclash");
    let alice = user("alice", 2001, "students", 2001);
    let settings = Settings::default();
    // Her own primary group: one identity line, not two.
    let plan = plan_with(&alice, &settings, &host.etc, vec![crontab_group(2001)]).expect("plan");
    assert_eq!(identity_ids(&plan.spec.gid_map), [2001]);
    assert_eq!(plan.spec.crontab_gid, Some(2001));
    // Inside her sub range (200000+65536): a hole where the range would
    // map to it, her range still accepted (checked against her own ids).
    let plan = plan_with(&alice, &settings, &host.etc, vec![crontab_group(200005)]).expect("plan");
    let map = &plan.spec.gid_map;
    assert_eq!(identity_ids(map), [2001, 200005]);
    for l in map.iter().filter(|l| l.inside != l.outside) {
        let outside = u64::from(l.outside)..u64::from(l.outside) + u64::from(l.count);
        assert!(!outside.contains(&200005), "{l:?} maps it twice");
        let inside = u64::from(l.inside)..u64::from(l.inside) + u64::from(l.count);
        assert!(
            !inside.contains(&2001) && !inside.contains(&200005),
            "{l:?}"
        );
    }
    assert!(map.contains(&crate::idmap::MapLine {
        inside: 1,
        outside: 200001,
        count: 4
    }));
}

#[test]
fn old_sets_without_the_crontab_group_are_joined_a_removed_one_is_not() {
    let host = FakeHost::new("crontabold");
    host.set_policy(&format!("{POLICY}on_logout = \"linger\"\n"));
    let (mut first, first_id) = other_opener();
    placed(login(&host, &request("alice", App::Sshd, first_id)));
    let reg = host.registry();
    let rec = reg.read("u2001").expect("read").expect("record");
    assert_eq!(rec.lent_gids, Some(vec![2001]));
    // The host now shares the crontab group: a set made before lends
    // less, and is joined.
    *host.shared.borrow_mut() = vec![crontab_group(107)];
    let joined = placed(login(&host, &request("alice", App::Sshd, me())));
    assert!(!joined.opened.created);
    close(&reg, 2001, "u2001", me().pid).expect("close");
    stop_user(&reg, 2001).expect("stop");
    let _ = first.wait();
    // A set that lends gid 107, on a host where 107 is no longer the
    // crontab group (renumbered, or cron removed): lending it is no
    // longer justified, so it counts as a group she has left.
    let (mut second, second_id) = other_opener();
    placed(login(&host, &request("alice", App::Sshd, second_id)));
    *host.shared.borrow_mut() = vec![crontab_group(108)];
    let error = refused_error(login(&host, &request("alice", App::Sshd, me())));
    assert!(
        error.contains("maps gid(s) 107 she is no longer a member of"),
        "{error}"
    );
    stop_user(&reg, 2001).expect("stop");
    let _ = second.kill();
    let _ = second.wait();
}

#[test]
fn a_set_that_lends_a_group_she_has_left_is_never_joined() {
    let host = FakeHost::new("stale");
    host.set_policy(&format!("{POLICY}on_logout = \"linger\"\n"));
    alice_in_extra(&host, true);
    let first = placed(login(&host, &request("alice", App::Sshd, me())));
    // Control: while she is still in `extra`, a second login joins.
    let (mut other, other_id) = other_opener();
    let joined = placed(login(&host, &request("alice", App::Sshd, other_id)));
    assert!(!joined.opened.created);
    let reg = host.registry();
    close(&reg, 2001, "u2001", other_id.pid).expect("close");
    // The admin removes her from `extra`; her first login is still on.
    alice_in_extra(&host, false);
    let error = refused_error(login(&host, &request("alice", App::Sshd, other_id)));
    assert!(
        error.contains(
            "maps gid(s) 3000 she is no longer a member of, and 1 other login(s) still use it"
        ),
        "{error}"
    );
    assert!(procfs::is_alive(Path::new("/proc"), first.opened.holder.id));
    // Once no login uses it, the next login ends it and gets a fresh set
    // that maps only what is hers now.
    close(&reg, 2001, "u2001", me().pid).expect("close");
    let fresh = placed(login(&host, &request("alice", App::Sshd, other_id)));
    assert!(fresh.opened.created, "a new set, not the old one");
    assert!(!procfs::is_alive(
        Path::new("/proc"),
        first.opened.holder.id
    ));
    assert!(
        fresh.opened.notes.iter().any(|n| n.contains(
            "mapped gid(s) 3000 she is no longer a member of and had no logins: it was ended"
        )),
        "{:?}",
        fresh.opened.notes
    );
    let rec = reg.read("u2001").expect("read").expect("record");
    assert_eq!(rec.lent_gids, Some(vec![2001]));
    // A record of an older version (no lent_gids: it lent the tty group)
    // is treated the same way.
    let mut old = rec.clone();
    old.lent_gids = None;
    reg.write(&old).expect("write");
    close(&reg, 2001, "u2001", other_id.pid).expect("close");
    let again = placed(login(&host, &request("alice", App::Sshd, other_id)));
    assert!(again.opened.created);
    stop_user(&reg, 2001).expect("stop");
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn root_and_exempt_users_run_on_the_host() {
    let host = FakeHost::new("exempt");
    match login(&host, &request("carol", App::Sshd, me())) {
        Outcome::Exempt {
            policy,
            reason,
            broken: None,
        } => {
            assert_eq!(policy, "admins");
            assert_eq!(reason, "carol is in group admins (primary)");
        }
        other => panic!("{other:?}"),
    }
    match login(
        &host,
        &request("root", App::Other("/usr/bin/su".into()), me()),
    ) {
        Outcome::Exempt { policy, reason, .. } => {
            assert_eq!(policy, "-");
            assert_eq!(reason, "root (uid 0) is never isolated");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.created(), 0);
}

#[test]
fn applications_that_cannot_join_are_refused_for_isolated_users_only() {
    let host = FakeHost::new("apps");
    let e = refused_error(login(
        &host,
        &request("alice", App::Other("/usr/bin/su".into()), me()),
    ));
    assert!(e.starts_with("/usr/bin/su cannot place sessions"), "{e}");
    let mut no_auth = request("alice", App::Sshd, me());
    no_auth.auth_line_seen = false;
    let e = refused_error(login(&host, &no_auth));
    assert!(
        e.contains("'auth optional pam_nsjail.so' is missing"),
        "{e}"
    );
    assert!(matches!(
        login(
            &host,
            &request("carol", App::Other("/usr/bin/su".into()), me())
        ),
        Outcome::Exempt { .. }
    ));
    host.root.set(false);
    let e = refused_error(login(&host, &request("alice", App::Run, me())));
    assert_eq!(e, "pam_nsjail must run as root to isolate a session");
    assert_eq!(host.created(), 0);
}

#[test]
fn a_broken_policy_falls_back_to_the_last_valid_one_for_exemptions_only() {
    let host = FakeHost::new("broken");
    host.set_policy("[[policy]]\nname = \"x\"\ngroups = [");
    // No valid policy seen yet: everyone but root is refused.
    match login(&host, &request("carol", App::Sshd, me())) {
        Outcome::Refused {
            error,
            reason,
            load_error,
            ..
        } => {
            assert!(
                error.starts_with(
                    "policy /etc/security/test.toml is invalid: /etc/security/test.toml:3:"
                ),
                "{error}"
            );
            assert_eq!(reason.as_deref(), Some("on_error=deny"));
            assert!(matches!(load_error, Some(LoadError::Parse(_))));
        }
        other => panic!("{other:?}"),
    }
    let mut allow = request("alice", App::Sshd, me());
    allow.on_error = OnError::Allow;
    assert!(matches!(login(&host, &allow), Outcome::Unconfined { .. }));
    // A valid load is remembered; after the next broken edit carol, whom
    // it exempted, still gets in (logged as an error) and alice does not.
    host.set_policy(POLICY);
    assert!(matches!(
        login(&host, &request("carol", App::Sshd, me())),
        Outcome::Exempt { broken: None, .. }
    ));
    host.set_policy("garbage [");
    match login(&host, &request("carol", App::Sshd, me())) {
        Outcome::Exempt {
            policy,
            reason,
            broken: Some(_),
        } => {
            assert_eq!(policy, "admins");
            assert_eq!(reason, "exempt under the last valid policy");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        login(&host, &request("alice", App::Sshd, me())),
        Outcome::Refused { .. }
    ));
    assert_eq!(host.created(), 0);
}

#[test]
fn sub_id_ranges_are_required_unless_optional() {
    let host = FakeHost::new("subid");
    fs::write(host.dir.join("etc/subuid"), "bob:300000:65536\n").expect("write");
    let e = refused_error(login(&host, &request("alice", App::Sshd, me())));
    assert!(
        e.contains("subuid: no subordinate id range for user alice"),
        "{e}"
    );
    host.set_policy(&format!("{POLICY}subids = \"optional\"\n"));
    let p = placed(login(&host, &request("alice", App::Sshd, me())));
    let spec = host.creator.specs.borrow()[0].clone();
    assert_eq!(
        spec.uid_map.len(),
        1,
        "only her own uid: {:?}",
        spec.uid_map
    );
    let reg = host.registry();
    close(&reg, 2001, &p.opened.key, me().pid).expect("close");
}

#[test]
fn a_failed_creation_is_refused_and_leaves_no_record() {
    let host = FakeHost::new("fail");
    host.creator.fail.set(true);
    let e = refused_error(login(&host, &request("alice", App::Sshd, me())));
    assert_eq!(
        e,
        "create namespace set: mount tmpfs on /tmp: Permission denied"
    );
    assert!(host.registry().all().is_empty());
}

#[test]
fn a_dead_holder_is_replaced_by_a_fresh_set() {
    let host = FakeHost::new("stale");
    let first = placed(login(&host, &request("alice", App::Sshd, me())));
    crate::sys::pidfd_send_signal(
        std::os::fd::AsFd::as_fd(&first.opened.holder.pidfd),
        libc::SIGKILL,
    )
    .expect("kill");
    for child in host.creator.holders.borrow_mut().iter_mut() {
        let _ = child.wait();
    }
    let second = placed(login(&host, &request("alice", App::Sshd, me())));
    assert!(second.opened.created, "a fresh set replaces the dead one");
    assert_ne!(second.opened.holder.id, first.opened.holder.id);
    assert_eq!(host.created(), 2);
}

#[test]
fn log_lines_name_user_service_policy_action_and_set() {
    let host = FakeHost::new("log");
    let req = request("alice", App::Pamtester, me());
    let outcome = login(&host, &req);
    let (level, line) = outcome.log_line(&req, true);
    assert_eq!(level, crate::log::Level::Info);
    assert!(
        line.starts_with(
            "user=alice service=sshd policy=students action=isolated set=u2001 holder="
        ),
        "{line}"
    );
    assert!(line.contains("reason=\"alice is in group students (primary)\""));
    assert!(line.contains("note=\"pamtester: set opened and released"));
    let run = request("carol", App::Run, me());
    let (level, line) = login(&host, &run).log_line(&run, false);
    assert_eq!(level, crate::log::Level::Info);
    assert_eq!(
        line,
        "user=carol service=sshd policy=admins action=exempt set=- reason=\"carol is in group admins (primary)\" via=run"
    );
}

#[test]
fn a_name_typed_in_another_case_decides_and_logs_as_the_passwd_entry_spells_it() {
    let host = FakeHost::new("case");
    // sssd with case_sensitive = false: `ALICE` finds alice's entry.
    host.case_insensitive.set(true);
    host.set_policy(
        r#"
[defaults]
isolate = false

[[policy]]
name = "by-name"
users = ["alice"]
"#,
    );
    let name = canonical_name(&host, "ALICE");
    assert_eq!(name, "alice");
    let req = request(&name, App::Pamtester, me());
    let (_, line) = login(&host, &req).log_line(&req, false);
    assert!(
        line.starts_with("user=alice service=sshd policy=by-name action=isolated set=u2001"),
        "{line}"
    );
    // A caller that forgot to canonicalise is refused, never logged or
    // matched under the typed spelling.
    let typed = request("ALICE", App::Pamtester, me());
    let error = refused_error(login(&host, &typed));
    assert!(
        error.contains("requested as 'ALICE', not as the passwd entry's name 'alice'"),
        "{error}"
    );
    assert_eq!(canonical_name(&host, "nobody-here"), "nobody-here");
}

#[test]
fn the_log_says_which_unit_holds_a_new_set_or_why_none_does() {
    let host = FakeHost::new("unit");
    *host.creator.unit.borrow_mut() = UnitPlacement::Own("nsjail-2001-9.scope".into());
    let req = request("alice", App::SshdSession, me());
    let (level, line) = login(&host, &req).log_line(&req, false);
    assert_eq!(level, crate::log::Level::Info);
    assert!(line.contains(" unit=nsjail-2001-9.scope"), "{line}");
    // A second login joins: no unit is made for it.
    let (_, line) = login(&host, &req).log_line(&req, false);
    assert!(
        line.contains("action=joined") && !line.contains("unit="),
        "{line}"
    );
    *host.creator.unit.borrow_mut() = UnitPlacement::Failed(
        "systemd: connect /run/dbus/system_bus_socket: No such file or directory".into(),
    );
    let req = request("bob", App::SshdSession, me());
    let (level, line) = login(&host, &req).log_line(&req, false);
    assert_eq!(level, crate::log::Level::Warning);
    assert!(
        line.contains("action=isolated") && line.contains("warning=\"the set could not be given a systemd unit of its own, so it stays in this login's scope: systemd: connect"),
        "{line}"
    );
}

#[test]
fn the_user_manager_is_placed_with_or_without_a_cgroup_namespace_but_not_with_limits() {
    let host = FakeHost::new("usermgr");
    let exe = Path::new("/usr/lib/systemd/systemd-executor");
    let mut req = request("alice", App::from_exe(exe, "systemd-user"), me());
    req.service = "systemd-user";
    assert_eq!(req.app, App::UserManager(exe.display().to_string()));
    // Without a cgroup namespace (the fake host has no systemd) and with
    // one (the manager then makes its own, `manager::join`): placed.
    for (namespaces, cgroup) in [
        ("", 0),
        (
            "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"cgroup\"]\n",
            libc::CLONE_NEWCGROUP,
        ),
    ] {
        host.set_policy(&format!("{POLICY}{namespaces}"));
        let key = match login(&host, &req) {
            Outcome::Placed(p) => {
                assert_eq!(p.opened.join_flags & libc::CLONE_NEWCGROUP, cgroup);
                p.opened.key
            }
            other => panic!("expected a placement, got {other:?}"),
        };
        close(&host.registry(), 2001, &key, me().pid).expect("close");
        assert!(host.registry().sets_of(2001).is_empty());
    }
    // Limits: refused before anything is made.
    let made = host.created();
    host.set_policy(&format!("{POLICY}memory_max = \"1G\"\n"));
    let e = refused_error(login(&host, &req));
    assert!(e.contains("the policy sets resource limits"), "{e}");
    assert_eq!(host.created(), made);
    let carol = request("carol", App::from_exe(exe, "systemd-user"), me());
    assert!(matches!(login(&host, &carol), Outcome::Exempt { .. }));
}

#[test]
fn other_applications_are_refused_for_isolated_users() {
    let host = FakeHost::new("otherapp");
    let exe = Path::new("/usr/lib/systemd/systemd-executor");
    assert_eq!(
        App::from_exe(exe, "other-service"),
        App::Other(exe.display().to_string())
    );
    let e = refused_error(login(
        &host,
        &request("alice", App::from_exe(exe, "other-service"), me()),
    ));
    assert!(
        e.contains("cannot place sessions in a namespace set"),
        "{e}"
    );
    assert_eq!(
        App::from_exe(Path::new("/usr/lib/openssh/sshd-session"), "sshd"),
        App::SshdSession
    );
    assert_eq!(
        App::from_exe(Path::new("/usr/sbin/sshd"), "sshd"),
        App::Sshd
    );
    assert_eq!(host.created(), 0);
}

#[test]
fn without_open_session_only_users_left_on_the_host_may_go_on() {
    let host = FakeHost::new("noopen");
    let e = refusal_without_session(&host, &request("alice", App::SshdSession, me()))
        .expect("alice is isolated");
    assert!(e.contains("open_session did not run for this login"), "{e}");
    assert_eq!(
        refusal_without_session(&host, &request("carol", App::SshdSession, me())),
        None
    );
    assert_eq!(
        refusal_without_session(&host, &request("root", App::SshdSession, me())),
        None
    );
    host.set_policy("broken [");
    let mut allow = request("alice", App::SshdSession, me());
    assert!(refusal_without_session(&host, &allow).is_some());
    allow.on_error = OnError::Allow;
    assert_eq!(refusal_without_session(&host, &allow), None);
    assert_eq!(host.created(), 0, "nothing is ever created there");
}

#[test]
fn cron_su_and_runuser_are_placed_login_and_atd_refused_with_the_reason() {
    use super::Forker;
    let host = FakeHost::new("services");
    let app = |exe: &str, service: &str| App::from_exe(Path::new(exe), service);
    assert_eq!(app("/usr/sbin/cron", "cron"), App::Cron);
    assert_eq!(app("/usr/bin/su", "su-l"), App::Forking(Forker::Su));
    assert_eq!(
        app("/usr/sbin/runuser", "runuser"),
        App::Forking(Forker::Runuser)
    );
    assert_eq!(app("/usr/bin/login", "login"), App::Forking(Forker::Login));
    assert_eq!(app("/usr/sbin/atd", "atd"), App::Forking(Forker::Atd));
    for forker in [Forker::Su, Forker::Runuser] {
        let p = placed(login(&host, &request("alice", App::Forking(forker), me())));
        assert_eq!(p.user.name, "alice");
    }
    let p = placed(login(&host, &request("alice", App::Cron, me())));
    assert_eq!(p.policy, "students");
    // cron's job process reaches the module only through the auth line.
    let mut no_auth = request("alice", App::Cron, me());
    no_auth.auth_line_seen = false;
    let e = refused_error(login(&host, &no_auth));
    assert!(
        e.contains("'auth optional pam_nsjail.so' is missing"),
        "{e}"
    );
    // su and runuser need no auth line: open_session itself forks.
    let mut su = request("alice", App::Forking(Forker::Su), me());
    su.auth_line_seen = false;
    placed(login(&host, &su));
    let created = host.created();
    let e = refused_error(login(
        &host,
        &request("alice", App::Forking(Forker::Login), me()),
    ));
    assert!(
        e.starts_with("login cannot run a session inside a namespace set"),
        "{e}"
    );
    assert!(
        e.contains("initgroups") && e.contains("can't reopen tty"),
        "{e}"
    );
    let e = refused_error(login(
        &host,
        &request("alice", App::Forking(Forker::Atd), me()),
    ));
    assert!(
        e.starts_with("atd cannot run a job inside a namespace set"),
        "{e}"
    );
    // A threaded opener cannot be forked into the set: refused before
    // anything is created.
    host.threads.set(3);
    let e = refused_error(login(
        &host,
        &request("alice", App::Forking(Forker::Su), me()),
    ));
    assert!(e.contains("has 3 threads"), "{e}");
    assert_eq!(host.created(), created, "refusals create nothing");
    // Exempt users are never refused, whatever the program.
    for forker in [Forker::Login, Forker::Atd, Forker::Su] {
        assert!(matches!(
            login(&host, &request("carol", App::Forking(forker), me())),
            Outcome::Exempt { .. }
        ));
    }
}
