use super::*;

#[test]
fn sizes_quotas_and_weights_parse_and_show() {
    assert_eq!(parse_memory("4G"), Ok(4 << 30));
    assert_eq!(parse_memory("512m"), Ok(512 << 20));
    assert_eq!(parse_memory("16777216"), Ok(16 << 20));
    assert!(parse_memory("1M").unwrap_err().contains("too small"));
    for bad in [
        "",
        "G",
        "4GB",
        "-4G",
        "4.5G",
        "99999999999999999999",
        "16777216T",
    ] {
        assert!(parse_memory(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_cpu_quota("200%"), Ok(200));
    for bad in ["200", "0%", "%", "1000001%", "2.5%"] {
        assert!(parse_cpu_quota(bad).is_err(), "{bad:?}");
    }
    assert!(weight_ok(1).is_ok() && weight_ok(10000).is_ok());
    assert!(weight_ok(0).is_err() && weight_ok(10001).is_err());
    assert!(tasks_ok(3).is_err() && tasks_ok(4).is_ok());
    assert_eq!(show_bytes(4 << 30), "4G");
    assert_eq!(show_bytes(1536 << 10), "1536K");
    assert_eq!(show_bytes(1000), "1000");
}

#[test]
fn limits_round_trip_through_the_wire_and_are_rechecked() {
    let l = Limits {
        memory_max: Some(1 << 30),
        memory_high: Some(768 << 20),
        tasks_max: Some(64),
        cpu_quota: Some(200),
        cpu_weight: Some(50),
        io_weight: Some(200),
    };
    assert_eq!(Limits::from_arg(&l.to_arg()), Ok(l));
    assert_eq!(
        l.to_string(),
        "memory_max=1G memory_high=768M tasks_max=64 cpu_quota=200% cpu_weight=50 io_weight=200"
    );
    assert_eq!(Limits::default().to_string(), "none");
    assert_eq!(Limits::from_arg(""), Ok(Limits::default()));
    for bad in [
        "tasks_max=2",
        "memory_max=1",
        "bogus=1",
        "tasks_max=8,tasks_max=9",
        "cpu_weight=0",
        "memory_max=16777216,memory_high=33554432",
        "tasks_max",
    ] {
        assert!(Limits::from_arg(bad).is_err(), "{bad}");
    }
    assert_eq!(l.controllers(), ["memory", "pids", "cpu", "io"]);
}

#[test]
fn systemd_properties_lift_unset_limits() {
    let l = Limits {
        memory_max: Some(1 << 30),
        cpu_quota: Some(200),
        ..Default::default()
    };
    let p = systemd::properties(&l);
    assert_eq!(p[0], ("MemoryMax", 1 << 30));
    assert_eq!(p[1], ("MemoryHigh", u64::MAX));
    assert_eq!(p[3], ("CPUQuotaPerSecUSec", 2_000_000));
    assert_eq!(p[4], ("CPUWeight", u64::MAX));
}

#[test]
fn only_the_users_own_limited_scopes_are_recognised() {
    let ok = "0::/user.slice/user-1001.slice/user-1001-nsjail.slice/nsjail-1001-42.scope\n";
    assert_eq!(
        systemd::limited_scope_of(ok, 1001).as_deref(),
        Some("nsjail-1001-42.scope")
    );
    assert_eq!(systemd::limited_scope_of(ok, 1002), None);
    for bad in [
        "0::/user.slice/user-1001.slice/nsjail-1001-42.scope\n",
        "0::/user.slice/user-1001.slice/session-3.scope\n",
        "0::/user.slice/user-1001.slice/user-1001-nsjail.slice/nsjail-1001-.scope\n",
        "1:name=systemd:/user.slice/user-1001.slice/user-1001-nsjail.slice/nsjail-1001-42.scope\n",
    ] {
        assert_eq!(systemd::limited_scope_of(bad, 1001), None, "{bad}");
    }
}

#[test]
fn hosts_without_usable_controllers_say_why() {
    let limits = Limits {
        memory_max: Some(1 << 30),
        tasks_max: Some(100),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("nsjail-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A hybrid host: no cgroup.controllers at the root, an empty v2 part.
    std::fs::create_dir_all(dir.join("unified")).unwrap();
    std::fs::write(dir.join("unified/cgroup.controllers"), "\n").unwrap();
    let e = support(&limits, &dir).unwrap_err();
    assert!(
        e.contains("no controllers, they are bound to cgroup v1"),
        "{e}"
    );
    assert!(e.contains("memory_max=1G tasks_max=100"), "{e}");
    // Unified, but without pids.
    std::fs::write(dir.join("cgroup.controllers"), "cpu io memory\n").unwrap();
    let e = support(&limits, &dir).unwrap_err();
    assert!(e.contains("controller(s) pids not available"), "{e}");
    std::fs::write(dir.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    assert_eq!(support(&limits, &dir), Ok(()));
    assert_eq!(
        support(&Limits::default(), Path::new("/nonexistent")),
        Ok(())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
