//! The root-only registry of live namespace sets under `/run/pam_nsjail`.
//!
//! Layout (directory mode 0700, root-owned, checked on every open):
//!   `locks/UID`   empty files, `flock`ed while a user's sets change; the
//!                 kernel drops the lock when its holder dies, so a crashed
//!                 login can never leave a stale lock behind
//!   `sets/KEY`    one small text record per set (`u1001` for a user's
//!                 shared set, `s1001.PID` for a per-session set)
//!
//! A record names its holder by pid *and* start time *and* user-namespace
//! inode; `attach` opens a pidfd first and verifies all three afterwards,
//! so a reused pid is never joined.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::nsset::Holder;
use crate::paths;
use crate::policy::{OnLogout, Share};
use crate::procfs::{self, ProcId};
use crate::sys;
use crate::trust;

/// How long a login waits for another login of the same user to finish
/// creating or joining a set.
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One open session of a set: the process that opened it (sshd's monitor,
/// `nsjail-helper run`, pamtester) and must close it.
pub type SessionRef = ProcId;

/// A registered namespace set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRecord {
    pub key: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub policy: String,
    pub share: Share,
    pub on_logout: OnLogout,
    pub holder: ProcId,
    pub userns: u64,
    pub uts: bool,
    pub cgroup: bool,
    pub net: bool,
    /// The set's private network: its address and host link.
    pub lease: Option<crate::net::Lease>,
    pub created: u64,
    /// The host gids the set's gid map holds as themselves (the user's
    /// groups when it was made): a process of hers outside the set can
    /// take any of them through its user namespace. `None` for a record
    /// of an older version, which also lent the host's tty group.
    pub lent_gids: Option<Vec<u32>>,
    /// The set's cgroup v2 path when it is under resource limits (its
    /// systemd scope, or `/pam_nsjail/user-UID/set-N`); the user's
    /// limited cgroup, which counts her OOM kills, is its parent.
    pub limits_cgroup: Option<String>,
    pub sessions: Vec<SessionRef>,
}

impl SetRecord {
    fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "user={}", self.user);
        let _ = writeln!(s, "uid={}", self.uid);
        let _ = writeln!(s, "gid={}", self.gid);
        let _ = writeln!(s, "policy={}", self.policy);
        let _ = writeln!(s, "share={}", self.share);
        let _ = writeln!(s, "on_logout={}", self.on_logout);
        let _ = writeln!(s, "holder={}:{}", self.holder.pid, self.holder.start);
        let _ = writeln!(s, "userns={}", self.userns);
        let _ = writeln!(s, "uts={}", self.uts);
        let _ = writeln!(s, "cgroup={}", self.cgroup);
        let _ = writeln!(s, "net={}", self.net);
        if let Some(l) = &self.lease {
            let _ = writeln!(s, "lease={}", l.to_wire());
        }
        let _ = writeln!(s, "created={}", self.created);
        if let Some(gids) = &self.lent_gids {
            let list: Vec<String> = gids.iter().map(u32::to_string).collect();
            let _ = writeln!(s, "lent_gids={}", list.join(","));
        }
        if let Some(c) = &self.limits_cgroup {
            let _ = writeln!(s, "limits_cgroup={c}");
        }
        for sess in &self.sessions {
            let _ = writeln!(s, "session={}:{}", sess.pid, sess.start);
        }
        s
    }

    fn parse(key: &str, text: &str) -> Option<SetRecord> {
        let mut rec = blank_record(key);
        let proc_id = |v: &str| {
            let (p, s) = v.split_once(':')?;
            Some(ProcId {
                pid: p.parse().ok()?,
                start: s.parse().ok()?,
            })
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "user" => rec.user = v.to_owned(),
                "uid" => rec.uid = v.parse().ok()?,
                "gid" => rec.gid = v.parse().ok()?,
                "policy" => rec.policy = v.to_owned(),
                "share" => rec.share = Share::parse(v)?,
                "on_logout" => rec.on_logout = OnLogout::parse(v)?,
                "holder" => rec.holder = proc_id(v)?,
                "userns" => rec.userns = v.parse().ok()?,
                "uts" => rec.uts = v == "true",
                "cgroup" => rec.cgroup = v == "true",
                "net" => rec.net = v == "true",
                "lease" => rec.lease = Some(crate::net::Lease::from_wire(v)?),
                "created" => rec.created = v.parse().ok()?,
                "lent_gids" => {
                    rec.lent_gids = Some(
                        v.split(',')
                            .filter(|g| !g.is_empty())
                            .map(str::parse)
                            .collect::<Result<_, _>>()
                            .ok()?,
                    )
                }
                "limits_cgroup" => rec.limits_cgroup = Some(v.to_owned()),
                "session" => rec.sessions.push(proc_id(v)?),
                // A key a newer version writes: a record is not corrupt
                // for it (which would end its live set).
                _ => {}
            }
        }
        (rec.holder.pid > 0 && !rec.user.is_empty()).then_some(rec)
    }

    /// The `setns` flags for joining this set.
    pub fn join_flags(&self) -> libc::c_int {
        crate::nsset::join_flags(self.uts, self.net, self.cgroup)
    }
}

/// Handle on the registry directory.
pub struct Registry {
    root: PathBuf,
    proc_root: PathBuf,
    /// Who must own the directory: root (tests use their own uid).
    owner: u32,
    /// What `read` had to repair, for the caller to log (`take_notes`).
    notes: std::cell::RefCell<Vec<String>>,
}

/// Held while a user's sets are examined or changed.
pub struct UserLock {
    _lock: Flock<File>,
}

/// Held while private networks are allocated or torn down.
pub struct NetLock {
    lock: Flock<File>,
}

impl NetLock {
    /// The index handed out last (0 if none yet).
    pub fn cursor(&self) -> u32 {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 16];
        let n = self.lock.read_at(&mut buf, 0).unwrap_or(0);
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn set_cursor(&self, index: u32) {
        use std::os::unix::fs::FileExt;
        let text = format!("{index:<15}\n");
        let _ = self.lock.write_at(text.as_bytes(), 0);
    }
}

/// Opens (creating) and `flock`s `path`. A crashed holder of the lock
/// releases it with its last fd, so a lock is never stale; a live but
/// stuck one must not hang every later login, hence the deadline.
fn lock_file(path: &Path, holder: &str) -> io::Result<Flock<File>> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open lock {}: {e}", path.display())))?;
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((_, e)) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "lock {}: {e} (held for over {} s by {holder})",
                        path.display(),
                        LOCK_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }
}

impl Registry {
    /// Opens (creating if needed) the registry at `root`, on a filesystem
    /// of its own.
    pub fn open(root: &Path) -> io::Result<Registry> {
        own_filesystem(root)?;
        Self::open_as(root, Path::new(paths::PROC), 0)
    }

    /// `open` with the `/proc` to read and the owner the directories must
    /// have (0 outside tests).
    pub(crate) fn open_as(root: &Path, proc_root: &Path, owner: u32) -> io::Result<Registry> {
        for dir in [root.to_owned(), root.join("locks"), root.join("sets")] {
            trust::open_private_dir(&dir, owner)?;
        }
        Ok(Registry {
            root: root.to_owned(),
            proc_root: proc_root.to_owned(),
            owner,
            notes: Default::default(),
        })
    }

    /// Opens an existing registry for reading; `None` if there is none.
    pub fn open_existing(root: &Path) -> io::Result<Option<Registry>> {
        match fs::symlink_metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            _ => Self::open(root).map(Some),
        }
    }

    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Takes the per-user lock (blocking).
    pub fn lock_user(&self, uid: u32) -> io::Result<UserLock> {
        let path = self.root.join("locks").join(uid.to_string());
        lock_file(&path, "another login of this user").map(|l| UserLock { _lock: l })
    }

    /// Takes the host-wide lock of private networks (blocking): held
    /// while an address is chosen and its link made, and while the host
    /// table is loaded or removed. The file holds the last index given
    /// out, so addresses are handed out round-robin.
    pub fn lock_net(&self) -> io::Result<NetLock> {
        lock_file(&self.root.join("net.lock"), "another login").map(|lock| NetLock { lock })
    }

    /// Exists while pam_nsjail has turned IPv4 forwarding on (it was off):
    /// the last set's teardown turns it off again.
    pub fn forwarding_marker(&self) -> PathBuf {
        self.root.join("net.forwarding")
    }

    /// Exists while table inet pam_nsjail is (or may be) loaded: a cheap
    /// test for "is there anything to sweep" on every login.
    pub fn table_marker(&self) -> PathBuf {
        self.root.join("net.table")
    }

    fn set_path(&self, key: &str) -> PathBuf {
        self.root.join("sets").join(key)
    }

    pub fn read(&self, key: &str) -> io::Result<Option<SetRecord>> {
        let mut text = String::new();
        match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.set_path(key))
        {
            Ok(mut f) => f.read_to_string(&mut text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match SetRecord::parse(key, &text) {
            Some(rec) => Ok(Some(rec)),
            None => {
                self.repair(key, &text);
                Ok(None)
            }
        }
    }

    /// A record that does not parse must not orphan a live set: its
    /// holder, if the record still names one that passes every check
    /// `attach` makes (pid, start time, user namespace), is ended, and the
    /// file is moved aside for the admin (`.corrupt-KEY-SECONDS`).
    fn repair(&self, key: &str, text: &str) {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        };
        let holder = field("holder").and_then(|v| {
            let (p, s) = v.split_once(':')?;
            Some(ProcId {
                pid: p.parse().ok()?,
                start: s.parse().ok()?,
            })
        });
        let userns = field("userns").and_then(|v| v.parse().ok());
        let mut note = format!("record {key} was corrupt");
        if let (Some(holder), Some(userns)) = (holder, userns) {
            let probe = SetRecord {
                holder,
                userns,
                ..blank_record(key)
            };
            if let Some(live) = self.attach(&probe) {
                let ended = kill_holder(&live, 2000).is_ok();
                note.push_str(&format!(
                    "; its set (holder {}) {}",
                    holder.pid,
                    if ended {
                        "was ended"
                    } else {
                        "could not be ended"
                    }
                ));
            }
        }
        let aside = self
            .root
            .join("sets")
            .join(format!(".corrupt-{key}-{}", now_secs()));
        if fs::rename(self.set_path(key), &aside).is_ok() {
            note.push_str(&format!("; kept as {}", aside.display()));
        } else {
            let _ = fs::remove_file(self.set_path(key));
        }
        self.notes.borrow_mut().push(note);
    }

    /// Adds a note for the caller to log (`take_notes`).
    pub fn note(&self, note: String) {
        self.notes.borrow_mut().push(note);
    }

    /// What reads repaired since the last call.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.notes.borrow_mut())
    }

    /// Writes a record atomically (temporary file, fsync-free rename: the
    /// registry lives on tmpfs and dies with the machine anyway).
    pub fn write(&self, rec: &SetRecord) -> io::Result<()> {
        let tmp = self.root.join("sets").join(format!(".{}.tmp", rec.key));
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(rec.render().as_bytes())?;
        drop(f);
        fs::rename(&tmp, self.set_path(&rec.key))
    }

    pub fn remove(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.set_path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The OOM kills of `uid`'s limited cgroup already logged, as
    /// (the cgroup directory's inode, `oom_kill` count): a cgroup made
    /// anew counts from 0 again. The caller holds the user's lock.
    pub fn oom_logged(&self, uid: u32) -> Option<(u64, u64)> {
        let text = fs::read_to_string(self.root.join(format!("oom.{uid}"))).ok()?;
        let (ino, n) = text.trim().split_once(' ')?;
        Some((ino.parse().ok()?, n.parse().ok()?))
    }

    /// Records what `oom_logged` returns next.
    pub fn set_oom_logged(&self, uid: u32, ino: u64, count: u64) -> io::Result<()> {
        fs::write(
            self.root.join(format!("oom.{uid}")),
            format!("{ino} {count}\n"),
        )
    }

    /// Every record (unparseable ones are skipped).
    pub fn all(&self) -> Vec<SetRecord> {
        self.records_where(|_| true)
    }

    /// The records whose key passes `keep`, in key order.
    fn records_where(&self, keep: impl Fn(&str) -> bool) -> Vec<SetRecord> {
        let Ok(dir) = fs::read_dir(self.root.join("sets")) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|k| !k.starts_with('.') && keep(k))
            .collect();
        keys.sort();
        keys.iter()
            .filter_map(|k| self.read(k).ok().flatten())
            .collect()
    }

    /// The records belonging to `uid`. Only the keys that can be its
    /// (`uUID`, `sUID.PID`) are read, so a login's cost does not grow
    /// with every other user's sets.
    pub fn sets_of(&self, uid: u32) -> Vec<SetRecord> {
        let shared = format!("u{uid}");
        let session = format!("s{uid}.");
        self.records_where(|k| k == shared || k.starts_with(&session))
            .into_iter()
            .filter(|r| r.uid == uid)
            .collect()
    }

    /// Opens a pidfd on the record's holder and verifies it is still the
    /// same process: same start time, same user namespace, not exited.
    ///
    /// A holder that is the recorded process (pid and start time) but is
    /// no longer in the recorded user namespace cannot be joined, and its
    /// record goes: it is killed here, or it would live on, unreachable
    /// by `stop`.
    pub fn attach(&self, rec: &SetRecord) -> Option<Holder> {
        let pidfd = sys::pidfd_open(rec.holder.pid).ok()?;
        // The pidfd pins whatever process had the pid when it was opened;
        // checking the identity *after* opening closes the reuse race.
        if !procfs::is_alive(&self.proc_root, rec.holder) {
            return None;
        }
        let userns = procfs::ns_inode(&self.proc_root, rec.holder.pid, "user").ok();
        if userns != Some(rec.userns) {
            // Pid and start time name one process: the recorded holder.
            let orphan = Holder {
                id: rec.holder,
                pidfd,
                userns: rec.userns,
            };
            let _ = kill_holder(&orphan, 2000);
            return None;
        }
        if pidfd_exited(pidfd.as_fd(), 0).unwrap_or(true) {
            return None;
        }
        Some(Holder {
            id: rec.holder,
            pidfd,
            userns: rec.userns,
        })
    }

    /// Drops sessions whose opener has died.
    pub fn prune_sessions(&self, rec: &mut SetRecord) {
        rec.sessions
            .retain(|s| procfs::is_alive(&self.proc_root, *s));
    }
}

/// Gives the registry a small tmpfs of its own the first time it is used
/// (root-only, mode 0700). On /run itself, any user able to fill a
/// directory there (`/run/lock` is 1777 on many hosts) could make the
/// registry's writes fail and so refuse everyone's logins. Two first
/// users race under a lock on the directory, so only one mounts.
fn own_filesystem(root: &Path) -> io::Result<()> {
    let dir = trust::open_private_dir(root, 0)?;
    if is_mount_root(root)? {
        return Ok(());
    }
    let _lock = Flock::lock(File::from(dir.try_clone()?), FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))?;
    if is_mount_root(root)? {
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        trust::fd_path(&dir).as_str(),
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some(REGISTRY_FS_OPTIONS),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mount a tmpfs on {}: {e}", root.display()),
        )
    })
}

/// Size and inode limits of the registry's own tmpfs: a record takes a
/// page, so this holds some 16,000 live sets (`CAPACITY`).
const REGISTRY_FS_OPTIONS: &str = "mode=0700,size=64m,nr_inodes=65536";
/// Bytes of the registry's tmpfs (the `size=` above).
pub const REGISTRY_BYTES: u64 = 64 << 20;
/// Live sets the registry can hold: a record takes at least a 4 KiB page
/// (and the per-user locks some more).
pub const CAPACITY: u64 = REGISTRY_BYTES / 4096;

/// Whether `path` is the root of a mount (its device differs from its
/// parent's).
fn is_mount_root(path: &Path) -> io::Result<bool> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok(fs::metadata(path)?.dev() != fs::metadata(parent)?.dev())
}

/// A record with nothing in it but its key.
fn blank_record(key: &str) -> SetRecord {
    SetRecord {
        key: key.to_owned(),
        user: String::new(),
        uid: 0,
        gid: 0,
        policy: String::new(),
        share: Share::User,
        on_logout: OnLogout::Kill,
        holder: ProcId { pid: 0, start: 0 },
        userns: 0,
        uts: false,
        cgroup: false,
        net: false,
        lease: None,
        created: 0,
        lent_gids: None,
        limits_cgroup: None,
        sessions: Vec::new(),
    }
}

/// Kills a set's holder (pid 1 of its pid namespace: the kernel then kills
/// every process in it) and waits up to `wait_ms` for all of them to exit.
pub fn kill_holder(holder: &Holder, wait_ms: i32) -> io::Result<()> {
    sys::pidfd_send_signal(holder.pidfd.as_fd(), libc::SIGKILL)?;
    // pid 1 of a pid namespace exits only after every other member is gone,
    // so its pidfd turning readable means the whole set is dead.
    pidfd_exited(holder.pidfd.as_fd(), wait_ms)?;
    Ok(())
}

/// Whether the process behind `pidfd` has exited (a zombie counts as
/// exited), waiting up to `timeout_ms`: a pidfd polls readable once its
/// process terminates.
pub fn pidfd_exited(pidfd: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let timeout = PollTimeout::try_from(timeout_ms.max(0)).unwrap_or(PollTimeout::ZERO);
    loop {
        match poll(&mut [PollFd::new(pidfd, PollFlags::POLLIN)], timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Registry {
    /// Keeps a copy of the last policy text of `path` that validated, so
    /// that a broken edit never locks out the users it exempted (DESIGN
    /// §4: on_error=deny refuses only logins that are isolated or whose
    /// status is unknown). Best effort: failing to keep it never fails a
    /// login. Only logins call this; `check` never changes what logins use.
    pub fn remember_valid_policy(&self, path: &Path, text: &str) {
        let dest = self.root.join("policy.last-good");
        let text = format!("{}{text}", last_good_header(path));
        if fs::read(&dest).ok().as_deref() == Some(text.as_bytes()) {
            return;
        }
        let tmp = self
            .root
            .join(format!(".policy.last-good.{}", nix::unistd::getpid()));
        let written = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if written.is_ok() {
            let _ = fs::rename(&tmp, &dest);
        } else {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// The last policy of `path` that validated, if a login loaded one
    /// since boot.
    pub fn last_valid_policy(&self, path: &Path) -> Option<crate::policy::Config> {
        let copy = self.root.join("policy.last-good");
        let meta = fs::symlink_metadata(&copy).ok()?;
        if !meta.is_file() || meta.uid() != self.owner || meta.mode() & 0o022 != 0 {
            return None;
        }
        let text = fs::read_to_string(&copy).ok()?;
        let text = text.strip_prefix(&last_good_header(path))?;
        crate::policy::parse(path, text).ok()
    }
}

/// First line of the last-valid copy: which file it is a copy of.
fn last_good_header(path: &Path) -> String {
    format!("# last valid copy of {}\n", path.display())
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
