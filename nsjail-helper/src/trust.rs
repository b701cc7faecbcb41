//! The one home of "may root trust this path?": every check works on a
//! file descriptor that was opened without following a symlink where it
//! matters, and the caller then uses that same descriptor, so nothing can
//! be swapped between the check and the use (the CVE-2025-6020 class of
//! pam_namespace bugs).
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// The rule admins are told when a file or directory fails the check.
pub const ROOT_ONLY_RULE: &str = "it must be root-owned and not group/world-writable";

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// What is wrong with an owner and mode that should be `owner` and not
/// group/world-writable, if anything.
pub fn ownership_problem(st: &FileStat, owner: u32) -> Option<String> {
    let perms = st.st_mode & 0o7777;
    if st.st_uid != owner {
        Some(format!("is owned by uid {} (mode {perms:04o})", st.st_uid))
    } else if st.st_mode & 0o002 != 0 {
        Some(format!("is world-writable (mode {perms:04o})"))
    } else if st.st_mode & 0o020 != 0 {
        Some(format!("is group-writable (mode {perms:04o})"))
    } else {
        None
    }
}

/// Why a configuration file could not be opened as trusted.
#[derive(Debug)]
pub enum Distrust {
    /// It could not be opened or examined at all.
    Io(io::Error),
    /// Someone other than root could change it; the text says how.
    Untrusted(String),
}

/// Opens `path` for reading after checking that root alone can change it:
/// its directory is not a symlink, is root-owned and not
/// group/world-writable; the file is a regular file (not a symlink) in that
/// very directory, root-owned and not group/world-writable. Opened
/// non-blocking, so a FIFO planted there never hangs sshd.
pub fn open_root_file(path: &Path) -> Result<File, Distrust> {
    let Some(file_name) = path.file_name() else {
        return Err(Distrust::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The directory first, by fd: the file is then opened relative to the
    // very directory we checked.
    let dir_fd = fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // O_NOFOLLOW with O_DIRECTORY reports a symlink as ENOTDIR.
        Errno::ELOOP | Errno::ENOTDIR if dir.is_symlink() => Distrust::Untrusted(format!(
            "directory {} is a symbolic link; {ROOT_ONLY_RULE}",
            dir.display()
        )),
        e => Distrust::Io(io_err(e)),
    })?;
    let dst = fstat(&dir_fd).map_err(|e| Distrust::Io(io_err(e)))?;
    if let Some(problem) = ownership_problem(&dst, 0) {
        return Err(Distrust::Untrusted(format!(
            "directory {} {problem}; {ROOT_ONLY_RULE}",
            dir.display()
        )));
    }
    let fd = fcntl::openat(
        dir_fd.as_fd(),
        file_name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP => Distrust::Untrusted(
            "file is a symbolic link; it must be a regular file, root-owned and not group/world-writable"
                .into(),
        ),
        e => Distrust::Io(io_err(e)),
    })?;
    let st = fstat(&fd).map_err(|e| Distrust::Io(io_err(e)))?;
    if file_type(&st) != SFlag::S_IFREG {
        return Err(Distrust::Untrusted(format!(
            "file is not a regular file; {ROOT_ONLY_RULE}"
        )));
    }
    if let Some(problem) = ownership_problem(&st, 0) {
        return Err(Distrust::Untrusted(format!(
            "file {problem}; {ROOT_ONLY_RULE}"
        )));
    }
    Ok(File::from(fd))
}

/// Opens the program at `path` with `O_PATH` and checks that descriptor:
/// a regular file owned by root, not writable by group or others, and
/// executable. Run it through the returned fd (`execveat`), never by name
/// again.
pub fn open_root_executable(path: &Path) -> io::Result<OwnedFd> {
    let fd = fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| io::Error::new(io_err(e).kind(), format!("{}: {e}", path.display())))?;
    let st = fstat(&fd).map_err(io_err)?;
    if file_type(&st) != SFlag::S_IFREG || st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a root-owned file not writable by group or others",
                path.display()
            ),
        ));
    }
    if st.st_mode & 0o111 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not executable", path.display()),
        ));
    }
    Ok(fd)
}

/// Opens (creating it with mode 0700 if missing) a directory that only
/// `owner` may use, and checks the descriptor: a directory, not a
/// symlink, owned by `owner`, no permission bits for group or others.
pub fn open_private_dir(path: &Path, owner: u32) -> io::Result<OwnedFd> {
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(io::Error::new(
                io_err(e).kind(),
                format!("create {}: {e}", path.display()),
            ))
        }
    }
    let fd = fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io::Error::new(io_err(e).kind(), format!("{}: {e}", path.display())))?;
    let st = fstat(&fd).map_err(io_err)?;
    if st.st_uid != owner || st.st_mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a root-owned directory with mode 0700 (found uid {} mode {:o})",
                path.display(),
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(fd)
}

/// Opens `path` as an `O_PATH` directory fd, walking it one component at a
/// time without following symlinks. Every component must be root-owned;
/// a component other than the last may be writable by others only if it
/// is sticky (so nobody else can rename entries in it).
pub fn open_root_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut fd: OwnedFd = File::open("/")?.into();
    let components: Vec<_> = path.components().collect();
    for (i, comp) in components.iter().enumerate() {
        let name = match comp {
            Component::RootDir => continue,
            Component::Normal(n) => *n,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path is not normalized",
                ))
            }
        };
        let next = fcntl::openat(&fd, name, flags, Mode::empty())
            .map_err(|e| io::Error::new(io_err(e).kind(), format!("{}: {e}", path.display())))?;
        let st = fstat(&next).map_err(io_err)?;
        let last = i + 1 == components.len();
        let writable_by_others = st.st_mode & 0o022 != 0;
        let sticky = st.st_mode & 0o1000 != 0;
        if st.st_uid != 0 || (!last && writable_by_others && !sticky) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: a component is not root-owned or is writable by others",
                    path.display()
                ),
            ));
        }
        fd = next;
    }
    Ok(fd)
}

/// The `/proc/self/fd/N` name of `fd`, for system calls that take a path
/// (mount targets): the kernel resolves it to the very object behind `fd`.
pub fn fd_path(fd: impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// A command that runs `exe` (from `open_root_executable`) through its fd,
/// named `arg0`, in `/`, with a clean environment (only a system PATH):
/// nothing of the caller's (a login's) environment reaches a root tool.
pub fn clean_command(exe: impl AsFd, arg0: &str) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(fd_path(exe));
    cmd.arg0(arg0)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_walk_rejects_relative_and_dotdot() {
        assert!(open_root_dir_path(Path::new("/tmp/../etc")).is_err());
    }

    #[test]
    fn dir_walk_accepts_root_owned_paths() {
        // /usr and /usr/bin are root-owned on every test machine.
        assert!(open_root_dir_path(Path::new("/usr/bin")).is_ok());
    }

    #[test]
    fn executables_are_checked_through_the_fd() {
        assert!(open_root_executable(Path::new("/bin/sh")).is_ok());
        let err = open_root_executable(Path::new("/etc/passwd")).expect_err("not executable");
        assert!(err.to_string().contains("is not executable"), "{err}");
        let err = open_root_executable(Path::new("/nonexistent-xyz")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent-xyz"), "{err}");
    }
}
