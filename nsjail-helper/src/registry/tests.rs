use super::*;

fn sample() -> SetRecord {
    SetRecord {
        key: "u1001".into(),
        user: "alice".into(),
        uid: 1001,
        gid: 1002,
        policy: "students".into(),
        share: Share::User,
        on_logout: OnLogout::Kill,
        holder: ProcId {
            pid: 42,
            start: 777,
        },
        userns: 4026532000,
        uts: false,
        cgroup: true,
        net: true,
        lease: crate::net::Lease::from_wire("198.51.100.7,nsj7"),
        created: 1700000000,
        lent_gids: Some(vec![1001, 1002]),
        limits_cgroup: Some("/pam_nsjail/user-1001/set-41".into()),
        sessions: vec![ProcId { pid: 7, start: 8 }, ProcId { pid: 9, start: 10 }],
    }
}

#[test]
fn record_round_trips() {
    let rec = sample();
    assert_eq!(SetRecord::parse("u1001", &rec.render()), Some(rec));
    let older = SetRecord {
        lent_gids: None,
        limits_cgroup: None,
        ..sample()
    };
    assert_eq!(SetRecord::parse("u1001", &older.render()), Some(older));
}

#[test]
fn logged_oom_kills_are_kept_per_user() {
    let root = temp_root("oom");
    let reg = Registry::open_as(&root, Path::new("/proc"), my_uid()).expect("open");
    assert_eq!(reg.oom_logged(1001), None);
    reg.set_oom_logged(1001, 4242, 3).expect("write");
    assert_eq!(reg.oom_logged(1001), Some((4242, 3)));
    assert_eq!(reg.oom_logged(1002), None);
    assert!(reg.all().is_empty(), "not a set record");
}

#[test]
fn the_last_valid_policy_is_kept_and_read_back() {
    let root = temp_root("last");
    let reg = Registry::open_as(&root, Path::new("/proc"), my_uid()).expect("open");
    let path = Path::new("/etc/p.toml");
    assert!(reg.last_valid_policy(path).is_none());
    reg.remember_valid_policy(path, "[[policy]]\nname = \"p\"\ngroups = [\"g\"]\n");
    assert_eq!(
        reg.last_valid_policy(path).expect("kept").policies().len(),
        1
    );
    assert!(
        reg.last_valid_policy(Path::new("/etc/other.toml"))
            .is_none(),
        "a copy of one file never stands in for another"
    );
    fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn a_corrupt_record_ends_its_verified_holder_and_is_kept_aside() {
    let root = temp_root("corrupt");
    let reg = Registry::open_as(&root, Path::new("/proc"), my_uid()).expect("open");
    let mut holder = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep");
    let pid = holder.id() as i32;
    let id = procfs::proc_id(Path::new("/proc"), pid).expect("alive");
    let userns = procfs::ns_inode(Path::new("/proc"), pid, "user").expect("ns");
    fs::write(
        root.join("sets/u1001"),
        format!(
            "user=alice\nholder={}:{}\nuserns={userns}\nsession=garbage\n",
            id.pid, id.start
        ),
    )
    .expect("write");
    assert_eq!(reg.read("u1001").expect("read"), None);
    let status = holder.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the live holder the corrupt record named was ended, not orphaned"
    );
    let notes = reg.take_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("record u1001 was corrupt; its set (holder"),
        "{}",
        notes[0]
    );
    assert!(!root.join("sets/u1001").exists());
    assert!(fs::read_dir(root.join("sets")).expect("dir").any(|e| e
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .starts_with(".corrupt-u1001-")));
    // A corrupt record naming a process that is not a holder (wrong
    // start time) never gets that process signalled.
    let mut bystander = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep");
    fs::write(
        root.join("sets/u1002"),
        format!(
            "user=bob\nholder={}:1\nuserns={userns}\nbogus\n",
            bystander.id()
        ),
    )
    .expect("write");
    assert_eq!(reg.read("u1002").expect("read"), None);
    assert!(
        bystander.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn keys_of_a_newer_version_are_not_corruption() {
    let mut text = sample().render();
    text.push_str("somefuturekey=1\n");
    assert_eq!(SetRecord::parse("u1001", &text), Some(sample()));
}

#[test]
fn corrupt_records_are_rejected() {
    assert_eq!(SetRecord::parse("u1", "user=alice\nholder=x:1\n"), None);
    assert_eq!(SetRecord::parse("u1", "bogus=1\n"), None);
    assert_eq!(SetRecord::parse("u1", ""), None);
}

fn temp_root(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nsjail-reg-{tag}-{}", std::process::id()))
}

fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn my_pid() -> i32 {
    nix::unistd::getpid().as_raw()
}

#[test]
fn registry_stores_and_verifies_records() {
    let root = temp_root("store");
    let reg = Registry::open_as(&root, Path::new("/proc"), my_uid()).expect("open");
    let mut rec = sample();
    // The recorded holder (pid and start time) outside its recorded user
    // namespace is never attached, and is killed, not orphaned.
    let mut holder = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep");
    rec.holder = procfs::proc_id(Path::new("/proc"), holder.id() as i32).expect("sleep");
    rec.userns = 1; // wrong namespace inode
    reg.write(&rec).expect("write");
    assert_eq!(reg.read("u1001").expect("read"), Some(rec.clone()));
    assert!(reg.attach(&rec).is_none(), "wrong userns must not attach");
    let status = holder.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "a holder that fails attach is killed"
    );
    rec.holder = procfs::proc_id(Path::new("/proc"), my_pid()).expect("self");
    rec.userns = procfs::ns_inode(Path::new("/proc"), rec.holder.pid, "user").expect("ns");
    assert!(
        reg.attach(&rec).is_some(),
        "the live, matching process attaches"
    );
    rec.holder.start += 1;
    assert!(
        reg.attach(&rec).is_none(),
        "a reused pid (other start time) must not attach"
    );
    assert_eq!(reg.sets_of(1001).len(), 1);
    reg.remove("u1001").expect("remove");
    assert_eq!(reg.read("u1001").expect("read"), None);
    let _lock = reg.lock_user(1001).expect("lock");
    fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn registry_refuses_an_open_directory() {
    let root = temp_root("perm");
    fs::create_dir_all(&root).expect("mkdir");
    fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let err = Registry::open_as(&root, Path::new("/proc"), my_uid())
        .err()
        .expect("must refuse a 0755 registry");
    assert!(err.to_string().contains("mode 0700"), "{err}");
    fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn dead_sessions_are_pruned() {
    let reg = Registry {
        root: PathBuf::from("/nonexistent"),
        proc_root: PathBuf::from("/proc"),
        owner: 0,
        notes: Default::default(),
    };
    let me = procfs::proc_id(Path::new("/proc"), my_pid()).expect("self");
    let mut rec = sample();
    rec.sessions = vec![
        me,
        ProcId {
            pid: me.pid,
            start: me.start + 1,
        },
        ProcId {
            pid: i32::MAX,
            start: 1,
        },
    ];
    reg.prune_sessions(&mut rec);
    assert_eq!(rec.sessions, vec![me]);
}
