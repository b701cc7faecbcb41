use super::*;

// ---- matching -----------------------------------------------------

#[test]
fn supplementary_group_match() {
    let alice = user(
        "alice",
        1001,
        &[("alice", 1002, true), ("students", 1001, false)],
    );
    let d = cfg(EXAMPLE).decide(&alice, "sshd");
    assert_eq!(d.policy, "students");
    assert_eq!(
        d.reason.to_string(),
        "alice is in group students (supplementary)"
    );
    assert_eq!(
        d.settings,
        Some(Settings {
            tmp_size: Some("512M".into()),
            ..Settings::default()
        })
    );
}

#[test]
fn primary_group_match() {
    let bob = user("bob", 1003, &[("cs101", 1001, true), ("audio", 29, false)]);
    let d = cfg(EXAMPLE).decide(&bob, "sshd");
    assert_eq!(d.policy, "students");
    assert_eq!(
        d.reason,
        MatchReason::Group {
            user: "bob".into(),
            group: "cs101".into(),
            primary: true
        }
    );
    assert_eq!(d.reason.to_string(), "bob is in group cs101 (primary)");
}

#[test]
fn group_without_a_name_never_matches() {
    let mut u = user("zed", 1009, &[("zed", 1009, true)]);
    u.groups.push(GroupMembership {
        gid: 1001,
        name: None,
        primary: false,
    });
    assert_eq!(cfg(EXAMPLE).decide(&u, "sshd").policy, "defaults");
}

#[test]
fn first_match_in_file_order_wins_and_exemptions_isolate_nothing() {
    let dave = user(
        "dave",
        1005,
        &[
            ("dave", 1005, true),
            ("students", 1001, false),
            ("admins", 1004, false),
        ],
    );
    let d = cfg(EXAMPLE).decide(&dave, "sshd");
    assert_eq!(d.policy, "admins");
    assert_eq!(
        d.reason.to_string(),
        "dave is in group admins (supplementary)"
    );
    assert_eq!(d.settings, None);
    // The same user, policies in the other order: the isolating one wins.
    let swapped = "[[policy]]\nname = \"students\"\ngroups = [\"students\"]\n\
                   [[policy]]\nname = \"admins\"\ngroups = [\"admins\"]\nisolate = false\n";
    let d = cfg(swapped).decide(&dave, "sshd");
    assert_eq!(d.policy, "students");
    assert!(d.settings.is_some());
}

#[test]
fn user_list_and_services_filter() {
    let c = cfg(EXAMPLE);
    let guest = user("guest", 2000, &[("guest", 2000, true)]);
    let d = c.decide(&guest, "sshd");
    assert_eq!(d.policy, "guests");
    assert_eq!(d.reason.to_string(), "guest is listed in users");
    assert_eq!(d.settings.map(|s| s.share), Some(Share::Session));
    // Another service skips the policy; nothing else matches.
    let d = c.decide(&guest, "login");
    assert_eq!(d.policy, "defaults");
    assert_eq!(
        d.reason.to_string(),
        "no policy matches guest; [defaults] applies"
    );
    assert_eq!(d.settings, None);
}

#[test]
fn services_filter_falls_through_to_a_later_policy() {
    let c = cfg("[[policy]]\nname = \"ssh-only\"\ngroups = [\"g\"]\nservices = [\"sshd\"]\nisolate = false\n\
                 [[policy]]\nname = \"rest\"\ngroups = [\"g\"]\n");
    let u = user("u", 1000, &[("g", 1000, true)]);
    assert_eq!(c.decide(&u, "sshd").policy, "ssh-only");
    let d = c.decide(&u, "su");
    assert_eq!(d.policy, "rest");
    assert!(d.settings.is_some());
}

#[test]
fn listed_user_beats_group_reason() {
    let c = cfg("[[policy]]\nname = \"p\"\ngroups = [\"g\"]\nusers = [\"u\"]\n");
    let u = user("u", 1000, &[("g", 1000, true)]);
    assert_eq!(
        c.decide(&u, "sshd").reason,
        MatchReason::User { user: "u".into() }
    );
}

#[test]
fn root_is_never_isolated() {
    let c = cfg("[defaults]\nisolate = true\n[[policy]]\nname = \"r\"\nusers = [\"root\"]\n");
    let root = user("root", 0, &[("root", 0, true)]);
    let d = c.decide(&root, "sshd");
    assert_eq!(d.reason, MatchReason::Root);
    assert_eq!(d.reason.to_string(), "root (uid 0) is never isolated");
    assert_eq!(d.settings, None);
    // Root by uid, whatever the name.
    let toor = user("toor", 0, &[("root", 0, true)]);
    assert_eq!(c.decide(&toor, "sshd").settings, None);
}

#[test]
fn isolating_defaults_apply_to_unmatched_users() {
    let c = cfg("[defaults]\nisolate = true\nshare = \"session\"\n");
    let eve = user("eve", 1010, &[("eve", 1010, true)]);
    let d = c.decide(&eve, "sshd");
    assert_eq!(d.policy, "defaults");
    assert_eq!(
        d.settings,
        Some(Settings {
            share: Share::Session,
            ..Settings::default()
        })
    );
    assert!(c.defaults_isolate());
}

#[test]
fn empty_file_isolates_nobody() {
    let c = cfg("");
    assert!(!c.defaults_isolate());
    assert_eq!(c.default_settings(), &Settings::default());
    let u = user("u", 1000, &[("u", 1000, true)]);
    assert_eq!(c.decide(&u, "sshd").settings, None);
}

#[test]
fn group_name_listings() {
    let c = cfg(EXAMPLE);
    assert_eq!(
        c.group_names().collect::<Vec<_>>(),
        ["admins", "students", "cs101"]
    );
    assert_eq!(
        c.isolating_groups().collect::<Vec<_>>(),
        ["students", "cs101"]
    );
    let dup = cfg("[[policy]]\nname = \"a\"\ngroups = [\"x\", \"y\"]\n[[policy]]\nname = \"b\"\ngroups = [\"y\", \"x\", \"z\"]\n");
    assert_eq!(dup.group_names().collect::<Vec<_>>(), ["x", "y", "z"]);
}

// ---- inheritance ----------------------------------------------------

#[test]
fn policies_inherit_every_unset_key_from_defaults() {
    let text = r#"[defaults]
namespaces = ["user", "mount", "pid", "ipc", "uts"]
share = "session"
private_tmp = ["/tmp"]
tmp_size = "10%"
propagation = "private"
subids = "optional"
on_logout = "linger"

[[policy]]
name = "inherits"
groups = ["g"]

[[policy]]
name = "overrides"
groups = ["h"]
namespaces = ["user", "mount", "pid", "ipc", "net"]
share = "user"
private_tmp = ["/var/tmp"]
tmp_size = "1g"
propagation = "slave"
subids = "required"
on_logout = "kill"
"#;
    let c = cfg(text);
    let inherited = &c.policies()[0];
    assert_eq!(inherited.line, 10);
    assert!(inherited.isolate);
    assert_eq!(
        inherited.settings,
        Settings {
            namespaces: vec![
                Namespace::User,
                Namespace::Mount,
                Namespace::Pid,
                Namespace::Ipc,
                Namespace::Uts
            ],
            cgroup_opt_out: false,
            share: Share::Session,
            private_tmp: vec![PathBuf::from("/tmp")],
            tmp_size: Some("10%".into()),
            propagation: Propagation::Private,
            subids: SubidMode::Optional,
            on_logout: OnLogout::Linger,
            network: Network::Host,
            net_config: NetConfig::default(),
            bounds: Bounds::default(),
            limits: Default::default(),
        }
    );
    let own = &c.policies()[1];
    assert_eq!(own.line, 14);
    assert_eq!(
        own.settings,
        Settings {
            namespaces: vec![
                Namespace::User,
                Namespace::Mount,
                Namespace::Pid,
                Namespace::Ipc,
                Namespace::Net
            ],
            cgroup_opt_out: false,
            share: Share::User,
            private_tmp: vec![PathBuf::from("/var/tmp")],
            tmp_size: Some("1G".into()),
            propagation: Propagation::Slave,
            subids: SubidMode::Required,
            on_logout: OnLogout::Kill,
            network: Network::Loopback,
            net_config: NetConfig::default(),
            bounds: Bounds::default(),
            limits: Default::default(),
        }
    );
    // [defaults] itself does not isolate unless it says so.
    assert!(!c.defaults_isolate());
}

#[test]
fn built_in_defaults_without_a_defaults_table() {
    let c = cfg("[[policy]]\nname = \"p\"\nusers = [\"u\"]\n");
    let p = &c.policies()[0];
    assert!(p.isolate);
    assert!(p.services.is_empty());
    assert_eq!(p.settings, Settings::default());
    assert_eq!(
        Settings::default().private_tmp,
        ["/tmp", "/var/tmp", "/dev/shm"].map(PathBuf::from)
    );
    assert_eq!(
        Settings::default().tmp_size.as_deref(),
        Some("10%"),
        "private tmpfs are bounded unless a policy says otherwise"
    );
}

#[test]
fn enum_spellings_round_trip() {
    for n in Namespace::ALL {
        assert_eq!(Namespace::parse(n.as_str()), Some(n));
    }
    assert_eq!(Share::Session.to_string(), "session");
    assert_eq!(Propagation::Private.as_str(), "private");
    assert_eq!(SubidMode::Optional.as_str(), "optional");
    assert_eq!(OnLogout::Linger.as_str(), "linger");
    assert_eq!(OnLogout::choices(), "\"kill\", \"linger\"");
}

#[test]
fn an_unnamed_gid_makes_a_default_exemption_undecidable() {
    // A directory offline, the user's groups never cached: NSS gives her
    // passwd entry's gid and no name for it.
    let mut frank = user("frank", 1010, &[("frank", 1010, true)]);
    frank.groups[0].name = None;
    let c = cfg(EXAMPLE);
    let d = c.decide(&frank, "sshd");
    assert_eq!(d.policy, "defaults");
    assert_eq!(
        c.unknown_group_could_isolate(&frank, "sshd", &d).as_deref(),
        Some("students")
    );
    // Every gid named: decided.
    let zed = user("zed", 1009, &[("zed", 1009, true)]);
    let d = c.decide(&zed, "sshd");
    assert_eq!(c.unknown_group_could_isolate(&zed, "sshd", &d), None);
    // An explicit users entry does not depend on groups.
    let mut guest = user("guest", 1011, &[("guest", 1011, true)]);
    guest.groups[0].name = None;
    let d = c.decide(&guest, "sshd");
    assert_eq!(d.policy, "guests");
    assert_eq!(c.unknown_group_could_isolate(&guest, "sshd", &d), None);
    // Exempt by a named group listed before any isolating policy: the
    // unnamed gid cannot change that first match.
    let mut ann = user("ann", 1012, &[("ann", 1012, true), ("admins", 50, false)]);
    ann.groups[0].name = None;
    let d = c.decide(&ann, "sshd");
    assert_eq!(d.policy, "admins");
    assert_eq!(c.unknown_group_could_isolate(&ann, "sshd", &d), None);
    // Isolated anyway: nothing to doubt.
    let mut bob = user(
        "bob",
        1003,
        &[("bob", 1003, true), ("students", 1001, false)],
    );
    bob.groups[0].name = None;
    let d = c.decide(&bob, "sshd");
    assert!(d.settings.is_some());
    assert_eq!(c.unknown_group_could_isolate(&bob, "sshd", &d), None);
}
