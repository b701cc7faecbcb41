use nix::sys::stat::Mode;

use super::*;

// ---- trust check (needs root to own files as someone else) ----------

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nsjail-policy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(path: &Path) -> String {
    load(path).expect_err("must be refused").to_string()
}

#[test]
#[ignore = "needs root: files must be chowned to root and to others"]
fn trusted_file_loads() {
    let dir = TempDir::new("ok");
    let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
    let (config, text) = load_with_text(&path).expect("trusted");
    assert_eq!(config.policies().len(), 3);
    assert_eq!(text, EXAMPLE);
    // Read-only for root is fine too.
    let path = dir.file("ro.toml", EXAMPLE.as_bytes(), 0o400);
    assert!(load(&path).is_ok());
}

#[test]
#[ignore = "needs root: files must be chowned to root and to others"]
fn writable_or_foreign_files_are_refused() {
    let dir = TempDir::new("perm");
    let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o666);
    assert_eq!(
        load_err(&path),
        format!(
            "{}: refusing policy: file is world-writable (mode 0666); it must be root-owned and not group/world-writable",
            path.display()
        )
    );
    let path = dir.file("g.toml", EXAMPLE.as_bytes(), 0o664);
    assert!(load_err(&path).contains("file is group-writable (mode 0664)"));
    let path = dir.file("u.toml", EXAMPLE.as_bytes(), 0o644);
    std::os::unix::fs::chown(&path, Some(1000), None).expect("chown");
    assert!(load_err(&path).contains("file is owned by uid 1000 (mode 0644)"));
}

#[test]
#[ignore = "needs root: files must be chowned to root and to others"]
fn symlinks_fifos_and_directories_are_refused() {
    let dir = TempDir::new("kind");
    let target = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
    let link = dir.0.join("link.toml");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    assert!(load_err(&link).contains("refusing policy: file is a symbolic link"));
    let fifo = dir.0.join("fifo.toml");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
    assert!(load_err(&fifo).contains("file is not a regular file"));
    let sub = dir.0.join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    assert!(load_err(&sub).contains("file is not a regular file"));
    // A symlinked directory is refused even if the file is fine.
    let dir_link = dir.0.join("dirlink");
    std::os::unix::fs::symlink(&dir.0, &dir_link).expect("symlink");
    let e = load_err(&dir_link.join("p.toml"));
    assert!(
        e.contains(&format!(
            "directory {} is a symbolic link",
            dir_link.display()
        )),
        "{e}"
    );
}

#[test]
#[ignore = "needs root: files must be chowned to root and to others"]
fn untrusted_directories_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("dir");
    let path = dir.file("p.toml", EXAMPLE.as_bytes(), 0o644);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_eq!(
        load_err(&path),
        format!(
            "{}: refusing policy: directory {} is world-writable (mode 0777); it must be root-owned and not group/world-writable",
            path.display(),
            dir.0.display()
        )
    );
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    assert!(load_err(&path).contains("is group-writable (mode 0775)"));
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&dir.0, Some(1000), None).expect("chown");
    assert!(load_err(&path).contains("is owned by uid 1000"));
}

#[test]
#[ignore = "needs root: files must be chowned to root and to others"]
fn unreadable_oversized_and_non_utf8_files() {
    let dir = TempDir::new("io");
    let missing = dir.0.join("missing.toml");
    let e = load(&missing).expect_err("missing");
    assert!(matches!(e, LoadError::Io { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read policy: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let e = load(&dir.0.join("nodir/p.toml")).expect_err("missing dir");
    assert!(e.to_string().contains("No such file or directory"), "{e}");
    let big = dir.file("big.toml", &vec![b'#'; MAX_POLICY_BYTES + 1], 0o644);
    assert!(load_err(&big).contains("larger than 1048576 bytes"));
    let exact = dir.file("exact.toml", &vec![b'#'; MAX_POLICY_BYTES], 0o644);
    assert!(load(&exact).is_ok());
    let bad = dir.file("bad.toml", b"# ok\n  x\xff = 1\n", 0o644);
    assert_eq!(
        load_err(&bad),
        format!("{}:2:4: invalid UTF-8", bad.display())
    );
    let e = load(Path::new("/")).expect_err("no file name");
    assert!(e.to_string().starts_with("/: cannot read policy"), "{e}");
}
