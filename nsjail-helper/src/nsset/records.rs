//! Login records: the host's utmp, wtmp, btmp and lastlog name every
//! user's terminals, source addresses and times. Inside a set the user
//! sees only her own: H0, before the user namespace exists (so the mounts
//! are locked), binds read-only copies filtered to her records over them.
//! The copies are taken when the set is created; sshd's monitor, in the
//! host namespaces, goes on writing the host's files, so logins recorded
//! later (her own included) do not appear inside.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{step_err, SetError};
use crate::trust;

/// Files of `struct utmp` records (utmp(5)).
const UTMP_FILES: [&str; 3] = ["/run/utmp", "/var/log/wtmp", "/var/log/btmp"];
/// `struct lastlog` records indexed by uid.
const LASTLOG: &str = "/var/log/lastlog";
/// Debian 13's SQLite login records (wtmpdb, lastlog2) and their journal
/// files: no filtered copy can be written without SQLite, so a set gets
/// them empty (`last` from wtmpdb shows nothing there, of anyone).
const SQLITE_RECORDS: [&str; 8] = [
    "/var/log/wtmp.db",
    "/var/log/wtmp.db-wal",
    "/var/log/wtmp.db-shm",
    "/var/log/wtmp.db-journal",
    "/var/lib/lastlog/lastlog2.db",
    "/var/lib/lastlog/lastlog2.db-wal",
    "/var/lib/lastlog/lastlog2.db-shm",
    "/var/lib/lastlog/lastlog2.db-journal",
];
const UTMP_SIZE: usize = 384;
const UT_USER: std::ops::Range<usize> = 44..76;
/// ut_type values up to this one describe the system (run level, boot,
/// clock change), not a user.
const LAST_SYSTEM_TYPE: i16 = 4;
const LASTLOG_SIZE: u64 = 292;
/// Records files are small; a larger one is not copied (an empty file is
/// bound instead).
const MAX_BYTES: u64 = 64 << 20;

/// The records of `data` (utmp format) that are the system's or `user`'s.
pub fn filter_utmp(data: &[u8], user: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for rec in data.chunks_exact(UTMP_SIZE) {
        let kind = i16::from_ne_bytes([rec[0], rec[1]]);
        let name = rec.get(UT_USER).unwrap_or_default();
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        if kind <= LAST_SYSTEM_TYPE || (!user.is_empty() && name == user.as_bytes()) {
            out.extend_from_slice(rec);
        }
    }
    out
}

/// H0, in the set's mount namespace before the user namespace exists:
/// binds filtered copies of the login records over the host's.
/// `staging` is a directory (one of the private temp dirs, about to get
/// the user's tmpfs) used briefly for a tmpfs of the copies.
pub(super) fn hide_other_users(uid: u32, staging: &Path) -> Result<(), SetError> {
    let present: Vec<&str> = UTMP_FILES
        .iter()
        .chain(std::iter::once(&LASTLOG))
        .chain(SQLITE_RECORDS.iter())
        .copied()
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let step = "copy login records";
    let dir = trust::open_root_dir_path(staging).map_err(step_err(step))?;
    let stage = trust::fd_path(&dir);
    mount(
        Some("tmpfs"),
        stage.as_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700,size=64m"),
    )
    .map_err(step_err(step))?;
    // The tmpfs now covers `dir`'s directory; reach it again by name (a
    // fresh mount of ours, in our own mount namespace: nobody else's).
    let result = present.iter().enumerate().try_for_each(|(i, path)| {
        let copy = Path::new(staging).join(format!("r{i}"));
        bind_filtered(Path::new(path), &copy, &user, uid)
    });
    let _ = umount2(staging, MntFlags::MNT_DETACH);
    result
}

/// Writes the filtered copy of `host` at `copy` (same mode and owner) and
/// binds it read-only over `host`.
fn bind_filtered(host: &Path, copy: &Path, user: &str, uid: u32) -> Result<(), SetError> {
    let step = format!("hide other users' records in {}", host.display());
    let mut src = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(host)
        .map_err(step_err(&step))?;
    let meta = src.metadata().map_err(step_err(&step))?;
    let mut out = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(copy)
        .map_err(step_err(&step))?;
    if meta.is_file()
        && meta.len() <= MAX_BYTES
        && !SQLITE_RECORDS.iter().any(|p| host == Path::new(p))
    {
        let mut data = Vec::new();
        src.read_to_end(&mut data).map_err(step_err(&step))?;
        if host == Path::new(LASTLOG) {
            // Only her slot, at its offset; every other slot reads as
            // "never logged in".
            let at = u64::from(uid) * LASTLOG_SIZE;
            let mine = usize::try_from(at)
                .ok()
                .and_then(|a| data.get(a..a + LASTLOG_SIZE as usize));
            if let Some(mine) = mine {
                out.set_len(at).map_err(step_err(&step))?;
                std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(at))
                    .map_err(step_err(&step))?;
                out.write_all(mine).map_err(step_err(&step))?;
            }
        } else {
            out.write_all(&filter_utmp(&data, user))
                .map_err(step_err(&step))?;
        }
    }
    nix::unistd::fchown(
        out.as_fd(),
        Some(meta.uid().into()),
        Some(meta.gid().into()),
    )
    .map_err(step_err(&step))?;
    out.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o644))
        .map_err(step_err(&step))?;
    drop(out);
    // Bind through an fd of the target opened without following links.
    let target = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(host)
        .map_err(step_err(&step))?;
    let target = trust::fd_path(&target);
    let copy = copy.to_string_lossy();
    mount(
        Some(copy.as_ref()),
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(step_err(&step))?;
    // Read-only is set on the new mount itself, reached by a fresh fd
    // (the first one names the file under it).
    let bound = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(host)
        .map_err(step_err(&step))?;
    mount(
        None::<&str>,
        trust::fd_path(&bound).as_str(),
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(step_err(&step))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: i16, user: &str) -> Vec<u8> {
        let mut rec = vec![0u8; UTMP_SIZE];
        rec[..2].copy_from_slice(&kind.to_ne_bytes());
        rec[UT_USER.start..UT_USER.start + user.len()].copy_from_slice(user.as_bytes());
        rec
    }

    #[test]
    fn only_her_records_and_the_systems_are_kept() {
        let boot = record(2, "reboot");
        let alice = record(7, "alice");
        let data = [
            boot.clone(),
            record(7, "bob"),
            alice.clone(),
            record(8, "alicex"),
            record(6, "LOGIN"),
        ]
        .concat();
        assert_eq!(filter_utmp(&data, "alice"), [boot.clone(), alice].concat());
        // Without a name, only the system's records.
        assert_eq!(filter_utmp(&data, ""), boot);
        // A trailing partial record is dropped.
        assert!(filter_utmp(&data[..100], "alice").is_empty());
    }
}
