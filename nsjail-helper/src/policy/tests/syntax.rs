use super::*;

// ---- syntax, keys and types ----------------------------------------

#[test]
fn malformed_toml_has_line_and_column() {
    let e = errs("[[policy]]\nname = \"x\"\ngroups = [\"a\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/p.toml:4:1: ") && e[0].contains("expected `]`"),
        "{}",
        e[0]
    );
    first_err_starts("[[policy]]\nname = \"x\ngroups = []\n", "/p.toml:2:");
}

#[test]
fn unknown_keys_are_named_with_their_position() {
    let e = errs(&with("isolat = true"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/p.toml:4:1: unknown field `isolat`"),
        "{}",
        e[0]
    );
    first_err_starts(
        "[defualts]\nisolate = true\n",
        "/p.toml:1:2: unknown field `defualts`",
    );
    first_err_starts(
        "[defaults]\n  Isolate = false\n",
        "/p.toml:2:3: unknown field `Isolate`",
    );
    first_err_starts(
        &with("[policy.extra]"),
        "/p.toml:4:9: unknown field `extra`",
    );
}

#[test]
fn wrong_types_have_positions() {
    first_err_starts(
        &with("isolate = \"yes\""),
        "/p.toml:4:11: invalid type: string \"yes\", expected a boolean",
    );
    first_err_starts(
        "[[policy]]\nname = \"p\"\ngroups = \"g\"\n",
        "/p.toml:3:10: invalid type",
    );
    first_err_starts(
        "[[policy]]\nname = \"p\"\ngroups = [\"g\", 7]\n",
        "/p.toml:3:16: invalid type: integer",
    );
    first_err_starts(&with("name = \"q\""), "/p.toml:4:1: duplicate key `name`");
}

#[test]
fn table_shape_mistakes_get_a_hint() {
    let e = errs("[policy]\nname = \"p\"\ngroups = [\"g\"]\n");
    assert!(
        e[0].starts_with("/p.toml:1:1: ")
            && e[0].ends_with("write [[policy]] (an array of tables), not [policy]"),
        "{}",
        e[0]
    );
    let e = errs("[[defaults]]\nisolate = true\n");
    assert!(
        e[0].starts_with("/p.toml:1:1: ") && e[0].ends_with("not [[defaults]]"),
        "{}",
        e[0]
    );
}

// ---- semantic validation ----------------------------------------------

#[test]
fn namespaces_are_checked() {
    one_err(
        &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"time\"]"),
        "/p.toml:4:46: unknown namespace \"time\": expected \"user\", \"mount\", \"pid\", \"ipc\" (required) and optionally \"uts\", \"net\", \"cgroup\" (or \"!cgroup\": none even where it is the default)",
    );
    one_err(
        &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"pid\"]"),
        "/p.toml:4:46: duplicate namespace \"pid\"",
    );
    one_err(
        &with("namespaces = [\"user\", \"net\"]"),
        "/p.toml:4:14: namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: mount, pid, ipc); \"uts\", \"net\" and \"cgroup\" are the optional extras",
    );
    let e = errs(&with("namespaces = []"));
    assert!(e[0].contains("missing: user, mount, pid, ipc"), "{e:?}");
    // An exemption may list anything valid: it creates no namespaces.
    cfg(&with("isolate = false\nnamespaces = [\"net\"]"));
    cfg(&with(
        "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"cgroup\"]",
    ));
}

#[test]
fn the_cgroup_namespace_is_the_default_unless_a_policy_says_not() {
    use crate::nsset::{Identity, SetSpec};
    let spec = |text: &str| {
        let c = cfg(text);
        let owner = Identity {
            uid: 1001,
            gid: 1001,
            gids: vec![1001],
        };
        SetSpec::new(owner, &c.policies()[0].settings, vec![], vec![])
    };
    // No namespaces key, and a list without "cgroup" (existing policies,
    // the shipped example): the host decides (a cgroup namespace where
    // each set has a systemd scope on cgroup v2).
    for text in [
        with(""),
        with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\"]"),
    ] {
        let s = spec(&text);
        assert!(!s.cgroup && s.cgroup_auto, "{text}");
    }
    let s = spec(&with(
        "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"cgroup\"]",
    ));
    assert!(s.cgroup && !s.cgroup_auto, "always");
    let s = spec(&with(
        "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"!cgroup\"]",
    ));
    assert!(!s.cgroup && !s.cgroup_auto, "the opt-out");
    // Inherited from [defaults] like the rest of the list.
    let s = spec(&format!(
        "[defaults]\nnamespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"!cgroup\"]\n{}",
        with("")
    ));
    assert!(!s.cgroup && !s.cgroup_auto, "inherited opt-out");
    one_err(
        &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"cgroup\", \"!cgroup\"]"),
        "/p.toml:4:56: \"!cgroup\" with \"cgroup\" or twice: list one of them",
    );
    one_err(
        &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"!cgroup\", \"cgroup\"]"),
        "/p.toml:4:57: \"cgroup\" with \"!cgroup\": list one of them",
    );
}

#[test]
fn defaults_namespaces_are_checked_when_something_inherits_them() {
    let base = "[defaults]\nnamespaces = [\"user\", \"pid\"]\n";
    // Nothing isolating inherits them: fine.
    cfg(&format!(
        "{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\nisolate = false\n"
    ));
    cfg(&format!("{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\nnamespaces = [\"user\", \"mount\", \"pid\", \"ipc\"]\n"));
    // An isolating policy inherits them: the error points at [defaults].
    one_err(
        &format!("{base}[[policy]]\nname = \"x\"\ngroups = [\"g\"]\n"),
        "/p.toml:2:14: namespaces must include \"user\", \"mount\", \"pid\" and \"ipc\" when isolating (missing: mount, ipc); \"uts\", \"net\" and \"cgroup\" are the optional extras (policy \"x\" at line 3 inherits this list)",
    );
    // [defaults] that isolates is checked directly.
    let e = errs("[defaults]\nisolate = true\nnamespaces = [\"user\"]\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/p.toml:3:14: namespaces must include"),
        "{e:?}"
    );
}

#[test]
fn choices_list_their_valid_values() {
    one_err(
        &with("share = \"everyone\""),
        "/p.toml:4:9: invalid share \"everyone\": expected one of \"user\", \"session\"",
    );
    one_err(
        &with("propagation = \"shared\""),
        "/p.toml:4:15: invalid propagation \"shared\": expected one of \"slave\", \"private\"",
    );
    one_err(
        &with("subids = \"maybe\""),
        "/p.toml:4:10: invalid subids \"maybe\": expected one of \"required\", \"optional\"",
    );
    one_err(
        &with("on_logout = \"never\""),
        "/p.toml:4:13: invalid on_logout \"never\": expected one of \"kill\", \"linger\"",
    );
    one_err(
        "[defaults]\nshare = \"User\"\n",
        "/p.toml:2:9: invalid share \"User\": expected one of \"user\", \"session\"",
    );
}

#[test]
fn tmp_size_is_validated_and_canonical() {
    for (given, canonical) in [
        ("512M", "512M"),
        ("512m", "512M"),
        ("1G", "1G"),
        ("65536k", "65536K"),
        ("4096", "4096"),
        ("0010M", "10M"),
        ("1%", "1%"),
        ("100%", "100%"),
        ("050%", "50%"),
    ] {
        let c = cfg(&with(&format!("tmp_size = \"{given}\"")));
        assert_eq!(
            c.policies()[0].settings.tmp_size.as_deref(),
            Some(canonical),
            "{given}"
        );
    }
    for bad in [
        "",
        "0",
        "0M",
        "0%",
        "101%",
        "-1M",
        "+1M",
        "1T",
        "1.5G",
        "M",
        "%",
        " 1M",
        "1 M",
        "1MB",
        "99999999999999999999",
        "17179869184G",
        "1e3",
    ] {
        let e = errs(&with(&format!("tmp_size = \"{bad}\"")));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with(&format!("/p.toml:4:12: invalid tmp_size {bad:?}: ")),
            "{}",
            e[0]
        );
    }
    assert!(errs(&with("tmp_size = \"0\""))[0].contains("unlimited"));
    assert!(errs(&with("tmp_size = \"1T\""))[0].contains("\"512M\""));
}

#[test]
fn private_tmp_entries_are_checked() {
    for ok in [
        "/tmp",
        "/var/tmp",
        "/dev/shm",
        "/srv/scratch",
        "/devices",
        "/run/user",
        "/run/pam_nsjailx",
        "/procfs",
    ] {
        let c = cfg(&with(&format!("private_tmp = [\"{ok}\"]")));
        assert_eq!(c.policies()[0].settings.private_tmp, [PathBuf::from(ok)]);
    }
    for (bad, why) in [
        ("tmp", "must be an absolute path"),
        ("", "must be an absolute path"),
        ("/", "cannot be /"),
        ("/tmp/", "normalized"),
        ("//tmp", "normalized"),
        ("/var//tmp", "normalized"),
        ("/tmp/./x", "normalized"),
        ("/tmp/../etc", "normalized"),
        ("/tmp/..", "normalized"),
        ("/proc", "/proc"),
        ("/proc/sys", "/proc"),
        ("/sys/fs", "/sys"),
        ("/dev", "/dev"),
        ("/dev/pts", "/dev"),
        ("/dev/shm/x", "/dev"),
        ("/run/pam_nsjail", "/run/pam_nsjail"),
        ("/run/pam_nsjail/alice", "/run/pam_nsjail"),
        ("/tmp/a\\u0000b", "control characters"),
    ] {
        let e = errs(&with(&format!("private_tmp = [\"/ok\", \"{bad}\"]")));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with("/p.toml:4:23: invalid private_tmp entry "),
            "{}",
            e[0]
        );
        assert!(e[0].contains(why), "{bad}: {}", e[0]);
    }
    one_err(
        &with("private_tmp = [\"/tmp\", \"/var/tmp\", \"/tmp\"]"),
        "/p.toml:4:36: duplicate private_tmp entry \"/tmp\"",
    );
    // An empty list is allowed: no private directories.
    assert!(cfg(&with("private_tmp = []")).policies()[0]
        .settings
        .private_tmp
        .is_empty());
}

#[test]
fn private_tmp_has_at_most_16_entries() {
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("\"/t{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    cfg(&with(&format!("private_tmp = [{}]", list(16))));
    one_err(
        &with(&format!("private_tmp = [{}]", list(17))),
        "/p.toml:4:15: private_tmp has 17 entries; at most 16 are allowed",
    );
}

#[test]
fn user_group_and_service_names_are_checked() {
    let text = "[[policy]]\nname = \"p\"\ngroups = [\"g\", \"\", \"a b\", \"x:y\", \"g\"]\nusers = [\"u/v\", \"ok\", \"tab\\t\"]\nservices = [\"sshd\", \"sshd\"]\n";
    assert_eq!(
        errs(text),
        [
            "/p.toml:3:16: invalid group name \"\": must not be empty",
            "/p.toml:3:20: invalid group name \"a b\": must not contain whitespace or control characters",
            "/p.toml:3:27: invalid group name \"x:y\": must not contain ':' or '/'",
            "/p.toml:3:34: duplicate group \"g\"",
            "/p.toml:4:10: invalid user name \"u/v\": must not contain ':' or '/'",
            "/p.toml:4:23: invalid user name \"tab\\t\": must not contain whitespace or control characters",
            "/p.toml:5:21: duplicate service \"sshd\"",
        ]
    );
}

#[test]
fn policy_names_are_required_valid_and_unique() {
    one_err(
        "[[policy]]\ngroups = [\"g\"]\n",
        "/p.toml:1:1: policy has no name: add name = \"...\"",
    );
    one_err(
        "[[policy]]\nname = \"\"\ngroups = [\"g\"]\n",
        "/p.toml:2:8: invalid policy name \"\": must not be empty",
    );
    one_err(
        "[[policy]]\nname = \"my policy\"\ngroups = [\"g\"]\n",
        "/p.toml:2:8: invalid policy name \"my policy\": use only letters, digits, '.', '_' and '-'",
    );
    one_err(
        "[[policy]]\nname = \"defaults\"\ngroups = [\"g\"]\n",
        "/p.toml:2:8: invalid policy name \"defaults\": reserved for [defaults] and root in logs",
    );
    assert!(errs(&format!(
        "[[policy]]\nname = \"{}\"\ngroups = [\"g\"]\n",
        "n".repeat(65)
    ))[0]
        .contains("longer than 64"));
    cfg(&format!(
        "[[policy]]\nname = \"{}\"\ngroups = [\"g\"]\n",
        "n".repeat(64)
    ));
    one_err(
        "[[policy]]\nname = \"a\"\ngroups = [\"g\"]\n\n[[policy]]\nname = \"a\"\nusers = [\"u\"]\n",
        "/p.toml:6:8: duplicate policy name \"a\" (first used at line 1)",
    );
}

#[test]
fn a_policy_must_match_someone() {
    one_err(
        "[[policy]]\nname = \"p\"\n",
        "/p.toml:1:1: policy \"p\" matches nobody: set groups or users",
    );
    one_err(
        "\n[[policy]]\nname = \"p\"\ngroups = []\nusers = []\nisolate = false\n",
        "/p.toml:2:1: policy \"p\" matches nobody: set groups or users",
    );
    // An invalid name is reported as such, not also as "matches nobody".
    one_err(
        "[[policy]]\nname = \"p\"\ngroups = [\"\"]\n",
        "/p.toml:3:11: invalid group name \"\": must not be empty",
    );
}

#[test]
fn defaults_reject_policy_only_keys() {
    assert_eq!(
        errs("[defaults]\nname = \"x\"\ngroups = [\"g\"]\nusers = []\nservices = []\n"),
        [
            "/p.toml:2:8: 'name' is not allowed in [defaults]: it only applies to a [[policy]]",
            "/p.toml:3:10: 'groups' is not allowed in [defaults]: it only applies to a [[policy]]",
            "/p.toml:4:9: 'users' is not allowed in [defaults]: it only applies to a [[policy]]",
            "/p.toml:5:12: 'services' is not allowed in [defaults]: it only applies to a [[policy]]",
        ]
    );
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = r#"[[policy]]
name = "a"
groups = ["g"]
share = "everyone"
tmp_size = "lots"

[defaults]
on_logout = "never"

[[policy]]
name = "a"
"#;
    assert_eq!(
        errs(text),
        [
            "/p.toml:4:9: invalid share \"everyone\": expected one of \"user\", \"session\"",
            "/p.toml:5:12: invalid tmp_size \"lots\": expected a size like \"512M\", \"2G\", \"65536K\", \"4096\" or a percentage \"1%\"..\"100%\"",
            "/p.toml:8:13: invalid on_logout \"never\": expected one of \"kill\", \"linger\"",
            "/p.toml:10:1: policy \"a\" matches nobody: set groups or users",
            "/p.toml:11:8: duplicate policy name \"a\" (first used at line 1)",
        ]
    );
}

// ---- positions and rendering ---------------------------------------

#[test]
fn columns_count_characters_not_bytes() {
    one_err(
        "# ünïcödé\n[[policy]]\nname = \"p\"\ngroups = [\"é\", \"é\"]\n",
        "/p.toml:4:16: duplicate group \"é\"",
    );
}

#[test]
fn caret_points_at_the_column() {
    let e = parse(Path::new(P), &with("share = \"x\"")).expect_err("bad");
    assert_eq!(
        e[0].render_with_caret(),
        "/p.toml:4:9: invalid share \"x\": expected one of \"user\", \"session\"\n    share = \"x\"\n            ^\n"
    );
    assert_eq!(e[0].source_line.as_deref(), Some("share = \"x\""));
    // Tabs before the column are kept so the caret lines up.
    let e = parse(Path::new(P), &with("\tshare\t= \"x\"")).expect_err("bad");
    assert_eq!(e[0].col, 10);
    assert!(e[0]
        .render_with_caret()
        .ends_with("    \tshare\t= \"x\"\n    \t     \t  ^\n"));
}

#[test]
fn error_at_end_of_file_has_no_source_line() {
    let e = parse(Path::new(P), "[[policy]]\nname = \"x\"\ngroups = [\"a\"\n").expect_err("bad");
    assert_eq!((e[0].line, e[0].col), (4, 1));
    assert_eq!(e[0].source_line, None);
    assert_eq!(e[0].render_with_caret(), format!("{}\n", e[0]));
}

#[test]
fn positions_never_panic_on_odd_offsets() {
    let text = "aé\nb";
    for offset in 0..10 {
        let e = ConfigError::at(Path::new(P), text, offset, "m".into());
        assert!(e.line >= 1 && e.line <= 2 && e.col >= 1);
    }
    let e = ConfigError::at(Path::new(P), text, 2, "m".into()); // inside 'é'
    assert_eq!((e.line, e.col), (1, 2));
}

#[test]
fn load_error_display_is_one_line_per_error() {
    let errors = parse(Path::new(P), &with("share = \"x\"\nsubids = \"y\"")).expect_err("bad");
    let text = LoadError::Parse(errors).to_string();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.starts_with("/p.toml:")), "{text}");
}

// ---- network ---------------------------------------------------------

#[test]
fn network_is_a_choice_and_net_its_older_spelling() {
    let net = |c: &Config| {
        let s = &c.policies()[0].settings;
        (s.network, s.namespaces.contains(&Namespace::Net))
    };
    assert_eq!(net(&cfg(&with(""))), (Network::Host, false));
    assert_eq!(
        net(&cfg(&with("network = \"private\""))),
        (Network::Private, true)
    );
    assert_eq!(
        net(&cfg(&with("network = \"none\""))),
        (Network::Loopback, true)
    );
    assert_eq!(
        net(&cfg(&with(
            "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"net\"]"
        ))),
        (Network::Loopback, true),
        "\"net\" in namespaces still means loopback only"
    );
    assert_eq!(
        net(&cfg(&with(
            "namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"net\"]\nnetwork = \"private\""
        ))),
        (Network::Private, true)
    );
    one_err(
        &with("network = \"bridge\""),
        "/p.toml:4:11: invalid network \"bridge\": expected one of \"host\", \"none\", \"private\"",
    );
    first_err_starts(
        &with("namespaces = [\"user\", \"mount\", \"pid\", \"ipc\", \"net\"]\nnetwork = \"host\""),
        "/p.toml:5:11: network = \"host\" contradicts \"net\" in namespaces",
    );
    // Inherited from [defaults].
    let c =
        cfg("[defaults]\nnetwork = \"private\"\n\n[[policy]]\nname = \"p\"\ngroups = [\"g\"]\n");
    assert_eq!(net(&c), (Network::Private, true));
    assert_eq!(c.default_settings().network, Network::Private);
}

#[test]
fn the_network_table_holds_the_pool_and_allowed_host_ports() {
    let c = cfg(&format!(
        "[network]\npool = \"198.51.100.0/24\"\nallow_host = [\"tcp/22\", \"udp/123\"]\n\n{}",
        with("network = \"private\"")
    ));
    assert_eq!(c.network().pool.to_string(), "198.51.100.0/24");
    assert_eq!(c.network().allow_host.len(), 2);
    assert_eq!(c.policies()[0].settings.net_config, *c.network());
    assert!(c.uses_private_network());
    let d = cfg(&with(""));
    assert_eq!(d.network().pool.to_string(), DEFAULT_POOL);
    assert!(!d.uses_private_network());
    one_err(
        "[network]\npool = \"10.1.2.3/16\"\n",
        "/p.toml:2:8: invalid [network] pool \"10.1.2.3/16\": 10.1.2.3 has host bits set for /16: did you mean \"10.1.0.0/16\"?",
    );
    first_err_starts(
        "[network]\nallow_host = [\"tcp/22\", \"ssh\"]\n",
        "/p.toml:2:25: invalid allow_host entry: expected \"tcp/PORT\"",
    );
    first_err_starts(
        "[network]\nallow_host = [\"tcp/22\", \"tcp/22\"]\n",
        "/p.toml:2:25: duplicate allow_host entry \"tcp/22\"",
    );
    first_err_starts(
        "[network]\npools = \"x\"\n",
        "/p.toml:2:1: unknown field `pools`",
    );
}

// ---- bounds on shared pools (issue 17) -------------------------------------

#[test]
fn bounds_have_defaults_and_are_inherited() {
    let c = cfg(&format!(
        "[defaults]\nmax_sets = 3\nipc_shm_max = \"32m\"\n{}",
        with("max_ptys = 16\nipc_objects = 40")
    ));
    let b = &c.policies()[0].settings.bounds;
    assert_eq!(
        (
            b.max_sets,
            b.max_ptys,
            b.ipc_shm_max.as_deref(),
            b.ipc_objects
        ),
        (3, 16, Some("32M"), 40)
    );
    let plain = cfg(&with(""));
    let d = &plain.policies()[0].settings;
    assert_eq!(d.bounds, Bounds::default());
    assert_eq!(
        (d.bounds.max_sets, d.bounds.max_ptys, d.bounds.ipc_objects),
        (DEFAULT_MAX_SETS, DEFAULT_MAX_PTYS, DEFAULT_IPC_OBJECTS)
    );
    // SysV shared memory follows tmp_size unless set.
    assert_eq!(d.ipc_shm_max(), DEFAULT_TMP_SIZE);
    let sized = cfg(&with("tmp_size = \"64M\""));
    assert_eq!(sized.policies()[0].settings.ipc_shm_max(), "64M");
    assert_eq!(d.sets_per_user(), 1, "share = \"user\": one set");
    let session = cfg(&with("share = \"session\"\nmax_sets = 5"));
    assert_eq!(session.policies()[0].settings.sets_per_user(), 5);
}

#[test]
fn bounds_are_checked_with_positions() {
    for (line, at) in [
        (
            "max_sets = 0",
            "/p.toml:4:12: invalid max_sets 0: expected 1..1024",
        ),
        (
            "max_sets = 1025",
            "/p.toml:4:12: invalid max_sets 1025: expected 1..1024",
        ),
        (
            "max_ptys = -1",
            "/p.toml:4:12: invalid max_ptys -1: expected 1..4096",
        ),
        (
            "ipc_objects = 32769",
            "/p.toml:4:15: invalid ipc_objects 32769: expected 1..32768",
        ),
        (
            "ipc_shm_max = \"0\"",
            "/p.toml:4:15: invalid ipc_shm_max \"0\": 0 would make",
        ),
    ] {
        let e = errs(&with(line));
        assert_eq!(e.len(), 1, "{line}: {e:?}");
        assert!(e[0].starts_with(at), "{line}: {}", e[0]);
    }
    first_err_starts(
        &with("max_sets = \"8\""),
        "/p.toml:4:12: invalid type: string \"8\", expected i64",
    );
    // In [defaults] too.
    first_err_starts(
        "[defaults]\nipc_objects = 0\n",
        "/p.toml:2:15: invalid ipc_objects 0",
    );
}

// ---- resource limits -------------------------------------------------

#[test]
fn limits_parse_and_inherit_key_by_key() {
    let c = cfg(
        "[defaults]\nmemory_max = \"4G\"\ntasks_max = 1024\ncpu_weight = 50\n\
         [[policy]]\nname = \"p\"\ngroups = [\"g\"]\nmemory_max = \"512m\"\ncpu_quota = \"200%\"\n\
         memory_high = \"384M\"\nio_weight = 10000\n",
    );
    let l = c.policies()[0].settings.limits;
    assert_eq!(l.memory_max, Some(512 << 20));
    assert_eq!(l.memory_high, Some(384 << 20));
    assert_eq!(l.tasks_max, Some(1024));
    assert_eq!(l.cpu_quota, Some(200));
    assert_eq!(l.cpu_weight, Some(50));
    assert_eq!(l.io_weight, Some(10000));
    assert_eq!(c.default_settings().limits.memory_max, Some(4 << 30));
    assert!(cfg(&with("")).policies()[0].settings.limits.is_empty());
}

#[test]
fn nonsense_limits_are_refused_with_their_position() {
    for (line, col, want) in [
        (
            "memory_max = \"4GB\"",
            14,
            "invalid memory_max \"4GB\": expected a size",
        ),
        (
            "memory_max = \"1M\"",
            14,
            "invalid memory_max \"1M\": 1M is too small",
        ),
        (
            "memory_high = \"\"",
            15,
            "invalid memory_high \"\": expected a size",
        ),
        ("tasks_max = 0", 13, "invalid tasks_max 0: 0 is too small"),
        (
            "tasks_max = -5",
            13,
            "invalid tasks_max -5: must not be negative",
        ),
        (
            "cpu_quota = \"200\"",
            13,
            "invalid cpu_quota \"200\": expected a percentage",
        ),
        ("cpu_quota = \"0%\"", 13, "invalid cpu_quota \"0%\""),
        (
            "cpu_weight = 0",
            14,
            "invalid cpu_weight 0: 0 is outside 1..=10000",
        ),
        (
            "io_weight = 10001",
            13,
            "invalid io_weight 10001: 10001 is outside 1..=10000",
        ),
    ] {
        let e = errs(&with(line));
        assert_eq!(e.len(), 1, "{line}: {e:?}");
        let prefix = format!("/p.toml:4:{col}: {want}");
        assert!(e[0].starts_with(&prefix), "{line}: {}", e[0]);
    }
    let e = errs(&with("memory_max = \"1G\"\nmemory_high = \"2G\""));
    assert!(
        e[0].starts_with("/p.toml:5:15: memory_high (2G) is above memory_max (1G)"),
        "{}",
        e[0]
    );
    // A type error is TOML's, still positioned.
    first_err_starts(&with("tasks_max = \"many\""), "/p.toml:4:13: ");
}
