//! What crosses between the caller and H0: H0's command line
//! (`nsjail-helper __create …`, built by `to_args`, checked by
//! `from_args`) and the line protocol on H0's stdin/stdout:
//!
//! ```text
//! H0 → caller   ok PID [UNIT]     the holder is ready (or: err STEP: CAUSE);
//!                                  UNIT is `unit=NAME`, `nounit=WHY` or
//!                                  `cgroup=PATH` (no systemd, limits)
//! caller → H0   K                 "keep it": the caller holds a pidfd
//! H0 → caller   done              the holder no longer dies with H0
//! ```
//!
//! Anything else, or EOF, ends the set.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{Identity, SetError, SetSpec, UnitPlacement};
use crate::idmap::MapLine;
use crate::policy::Propagation;

/// The caller's answer once it holds a pidfd for the holder.
pub const KEEP: u8 = b'K';
/// H0's last line: the holder outlives H0 from now on.
pub const DONE: &str = "done";
/// Longest line either side accepts.
const MAX_LINE: usize = 4096;

impl SetSpec {
    /// H0's command line, starting with `__create`.
    pub(super) fn to_args(&self) -> Vec<OsString> {
        let owner = &self.owner;
        let groups: Vec<String> = owner.gids.iter().map(u32::to_string).collect();
        let mut args: Vec<OsString> = vec![
            "__create".into(),
            "--user".into(),
            format!("{}:{}:{}", owner.uid, owner.gid, groups.join(",")).into(),
        ];
        let maps = |lines: &[MapLine]| {
            lines
                .iter()
                .map(|l| format!("{}:{}:{}", l.inside, l.outside, l.count))
                .collect::<Vec<_>>()
                .join(",")
        };
        args.extend(["--uid-map".into(), maps(&self.uid_map).into()]);
        args.extend(["--gid-map".into(), maps(&self.gid_map).into()]);
        for p in &self.private_tmp {
            args.extend(["--tmp".into(), p.as_os_str().to_owned()]);
        }
        if let Some(size) = &self.tmp_size {
            args.extend(["--tmp-size".into(), size.into()]);
        }
        args.extend(["--propagation".into(), self.propagation.as_str().into()]);
        if self.uts {
            args.push("--uts".into());
        }
        if self.cgroup {
            args.push("--cgroup".into());
        }
        if self.cgroup_auto {
            args.push("--cgroup-auto".into());
        }
        if self.net {
            args.push("--net".into());
        }
        if let Some(p) = &self.private_net {
            args.extend(["--net-private".into(), p.pool.to_string().into()]);
            for hp in &p.allow_host {
                args.extend(["--allow-host".into(), hp.to_string().into()]);
            }
        }
        if self.end_with_openers {
            args.push("--end-with-openers".into());
        }
        args.extend(["--ipc-shm-max".into(), self.ipc.shm_max.clone().into()]);
        args.extend(["--ipc-objects".into(), self.ipc.objects.to_string().into()]);
        args.extend(["--max-ptys".into(), self.max_ptys.to_string().into()]);
        if !self.limits.is_empty() {
            args.extend(["--limits".into(), self.limits.to_arg().into()]);
        }
        if let Some(gid) = self.crontab_gid {
            args.extend(["--crontab-gid".into(), gid.to_string().into()]);
        }
        args
    }

    /// Parses the arguments produced by `to_args` (after `__create`) and
    /// checks them again: H0 is root, so it trusts no caller to have
    /// built a safe spec (host root is never mapped, the private dirs are
    /// ones policy could name, the owner is not root).
    pub fn from_args(args: &[String]) -> Result<SetSpec, String> {
        let mut owner = None;
        let mut spec = SetSpec {
            owner: Identity {
                uid: 0,
                gid: 0,
                gids: Vec::new(),
            },
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            private_tmp: Vec::new(),
            tmp_size: None,
            propagation: Propagation::Slave,
            uts: false,
            cgroup: false,
            cgroup_auto: false,
            net: false,
            private_net: None,
            end_with_openers: false,
            ipc: super::IpcLimits::default(),
            max_ptys: crate::policy::DEFAULT_MAX_PTYS,
            limits: crate::limits::Limits::default(),
            crontab_gid: None,
        };
        let mut allow_host = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--user" => owner = Some(parse_owner(value()?)?),
                "--uid-map" => spec.uid_map = parse_map_arg(value()?)?,
                "--gid-map" => spec.gid_map = parse_map_arg(value()?)?,
                "--tmp" => spec.private_tmp.push(PathBuf::from(value()?)),
                "--tmp-size" => spec.tmp_size = Some(value()?.clone()),
                "--propagation" => {
                    spec.propagation = match value()?.as_str() {
                        "slave" => Propagation::Slave,
                        "private" => Propagation::Private,
                        other => return Err(format!("bad propagation {other}")),
                    }
                }
                "--uts" => spec.uts = true,
                "--cgroup" => spec.cgroup = true,
                "--cgroup-auto" => spec.cgroup_auto = true,
                "--net" => spec.net = true,
                "--net-private" => {
                    spec.private_net = Some(crate::net::PrivateSpec {
                        pool: value()?
                            .parse()
                            .map_err(|e| format!("--net-private: {e}"))?,
                        allow_host: Vec::new(),
                    })
                }
                "--allow-host" => {
                    allow_host.push(value()?.parse().map_err(|e| format!("--allow-host: {e}"))?)
                }
                "--end-with-openers" => spec.end_with_openers = true,
                "--ipc-shm-max" => {
                    let size = value()?;
                    spec.ipc.shm_max = crate::policy::tmp_size(size)
                        .map_err(|why| format!("--ipc-shm-max {size}: {why}"))?;
                }
                "--ipc-objects" => {
                    spec.ipc.objects = value()?
                        .parse()
                        .ok()
                        .filter(|n| (1..=crate::policy::MAX_IPC_OBJECTS).contains(n))
                        .ok_or_else(|| format!("bad {arg}"))?;
                }
                "--max-ptys" => {
                    spec.max_ptys = value()?
                        .parse()
                        .ok()
                        .filter(|n| (1..=crate::policy::MAX_PTYS_LIMIT).contains(n))
                        .ok_or_else(|| format!("bad {arg}"))?;
                }
                "--limits" => {
                    spec.limits = crate::limits::Limits::from_arg(value()?)
                        .map_err(|e| format!("--limits: {e}"))?
                }
                "--crontab-gid" => {
                    spec.crontab_gid = Some(
                        value()?
                            .parse()
                            .map_err(|e| format!("--crontab-gid: {e}"))?,
                    )
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if spec.uid_map.is_empty() || spec.gid_map.is_empty() {
            return Err("--uid-map and --gid-map are required".into());
        }
        spec.owner = owner.ok_or("--user is required")?;
        match &mut spec.private_net {
            Some(p) if spec.net => p.allow_host = allow_host,
            Some(_) => return Err("--net-private needs --net".into()),
            None if !allow_host.is_empty() => return Err("--allow-host needs --net-private".into()),
            None => {}
        }
        check_map("uid", &spec.uid_map)?;
        check_map("gid", &spec.gid_map)?;
        if let Some(gid) = spec.crontab_gid {
            // Only a group the map already holds as itself, never root's.
            let identity = spec
                .gid_map
                .iter()
                .any(|l| l.inside == gid && l.outside == gid && l.count == 1);
            if gid == 0 || !identity {
                return Err(format!(
                    "--crontab-gid {gid}: not a group the gid map holds as itself"
                ));
            }
        }
        for dir in &spec.private_tmp {
            let text = dir.to_str().ok_or("private dir is not UTF-8")?;
            if let Some(why) = crate::policy::private_dir_problem(text) {
                return Err(format!("private dir {text}: {why}"));
            }
        }
        if let Some(size) = &spec.tmp_size {
            crate::policy::tmp_size(size).map_err(|why| format!("tmp size {size}: {why}"))?;
        }
        Ok(spec)
    }
}

/// `UID:GID:G1,G2,...` (the owner's groups may be empty).
fn parse_owner(text: &str) -> Result<Identity, String> {
    let bad = || format!("bad --user {text}");
    let mut parts = text.splitn(3, ':');
    let uid: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let gid: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let gids = match parts.next() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|g| g.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    };
    if uid == 0 {
        return Err("a set is never made for root".into());
    }
    Ok(Identity { uid, gid, gids })
}

/// Host root is never mapped, and no line may wrap around.
fn check_map(which: &str, lines: &[MapLine]) -> Result<(), String> {
    if lines.len() > crate::idmap::MAX_LINES {
        return Err(format!(
            "{which} map has more than {} lines",
            crate::idmap::MAX_LINES
        ));
    }
    for l in lines {
        let end = |start: u32| start.checked_add(l.count).filter(|_| l.count > 0);
        if end(l.inside).is_none() || end(l.outside).is_none() {
            return Err(format!(
                "{which} map line {} {} {} is empty or wraps around",
                l.inside, l.outside, l.count
            ));
        }
        if l.outside == 0 {
            return Err(format!(
                "{which} map line {} {} {} maps host root",
                l.inside, l.outside, l.count
            ));
        }
    }
    Ok(())
}

fn parse_map_arg(text: &str) -> Result<Vec<MapLine>, String> {
    text.split(',')
        .map(|part| {
            let nums: Vec<u32> = part
                .split(':')
                .map(|n| n.parse().map_err(|_| format!("bad map entry {part}")))
                .collect::<Result<_, _>>()?;
            match nums[..] {
                [inside, outside, count] => Ok(MapLine {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(format!("bad map entry {part}")),
            }
        })
        .collect()
}

/// What H0 reports once the holder is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ready {
    pub pid: i32,
    pub unit: UnitPlacement,
    /// The set's private network, if it has one.
    pub lease: Option<crate::net::Lease>,
    /// A shared group (crontab) the plan's gid map held but H0 took out
    /// again because its program's view could not be made: the set does
    /// not map it, and its record must not say it lends it.
    pub unlent: Option<u32>,
}

/// H0's first line for `result`.
pub(super) fn reply_line(result: &Result<Ready, SetError>) -> String {
    match result {
        Ok(Ready {
            pid,
            unit,
            lease,
            unlent,
        }) => {
            let mut net = lease
                .as_ref()
                .map(|l| format!(" net={}", l.to_wire()))
                .unwrap_or_default();
            if let Some(gid) = unlent {
                net.push_str(&format!(" unlent={gid}"));
            }
            match unit {
                UnitPlacement::NoSystemd => format!("ok {pid}{net}"),
                UnitPlacement::Own(name) => format!("ok {pid}{net} unit={name}"),
                UnitPlacement::Cgroup(path) => format!("ok {pid}{net} cgroup={path}"),
                UnitPlacement::Failed(why) => {
                    format!("ok {pid}{net} nounit={}", why.replace('\n', " "))
                }
            }
        }
        Err(e) => format!("err {e}"),
    }
}

/// The holder's pid (and unit) from H0's first line, or the failure it
/// reports.
pub(super) fn parse_reply(line: &str) -> Result<Ready, SetError> {
    if let Some(err) = line.strip_prefix("err ") {
        let (step, cause) = err.split_once(": ").unwrap_or((err, ""));
        return Err(SetError::new(step, cause));
    }
    let bad = || {
        SetError::new(
            "helper reply",
            if line.is_empty() {
                "helper exited without a reply".to_owned()
            } else {
                format!("unexpected reply {line:?}")
            },
        )
    };
    let rest = line.strip_prefix("ok ").ok_or_else(bad)?;
    let (pid, mut unit) = rest.split_once(' ').unwrap_or((rest, ""));
    let pid: i32 = pid.parse().ok().filter(|&p| p > 0).ok_or_else(bad)?;
    let mut lease = None;
    if let Some(net) = unit.strip_prefix("net=") {
        let (wire, after) = net.split_once(' ').unwrap_or((net, ""));
        lease = Some(crate::net::Lease::from_wire(wire).ok_or_else(bad)?);
        unit = after;
    }
    let mut unlent = None;
    if let Some(gid) = unit.strip_prefix("unlent=") {
        let (gid, after) = gid.split_once(' ').unwrap_or((gid, ""));
        unlent = Some(gid.parse().map_err(|_| bad())?);
        unit = after;
    }
    let unit = if unit.is_empty() {
        UnitPlacement::NoSystemd
    } else if let Some(name) = unit.strip_prefix("unit=") {
        UnitPlacement::Own(name.to_owned())
    } else if let Some(path) = unit.strip_prefix("cgroup=") {
        UnitPlacement::Cgroup(path.to_owned())
    } else if let Some(why) = unit.strip_prefix("nounit=") {
        UnitPlacement::Failed(why.to_owned())
    } else {
        return Err(bad());
    };
    Ok(Ready {
        pid,
        unit,
        lease,
        unlent,
    })
}

/// Reads one line (without its newline) from `fd`, giving up at
/// `deadline`: a helper that hangs must not hang the login holding the
/// user's lock. EOF before a newline returns what was read.
pub(super) fn read_line(fd: impl AsFd, deadline: Instant) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer before the deadline",
                ))
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(fd.as_fd(), &mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < MAX_LINE => line.push(byte[0]),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_arguments() {
        let spec = SetSpec {
            owner: Identity {
                uid: 1001,
                gid: 1002,
                gids: vec![1002, 27],
            },
            uid_map: vec![MapLine {
                inside: 1001,
                outside: 1001,
                count: 1,
            }],
            gid_map: vec![
                MapLine {
                    inside: 5,
                    outside: 5,
                    count: 1,
                },
                MapLine {
                    inside: 1,
                    outside: 100001,
                    count: 4,
                },
            ],
            private_tmp: vec!["/tmp".into(), "/dev/shm".into()],
            tmp_size: Some("512M".into()),
            propagation: Propagation::Private,
            uts: true,
            cgroup: false,
            cgroup_auto: true,
            net: true,
            private_net: Some(crate::net::PrivateSpec {
                pool: "198.51.100.0/24".parse().unwrap(),
                allow_host: vec!["tcp/22".parse().unwrap(), "udp/123".parse().unwrap()],
            }),
            end_with_openers: true,
            ipc: crate::nsset::IpcLimits {
                shm_max: "64M".into(),
                objects: 32,
            },
            max_ptys: 16,
            limits: crate::limits::Limits {
                memory_max: Some(64 << 20),
                tasks_max: Some(32),
                cpu_quota: Some(150),
                ..Default::default()
            },
            crontab_gid: Some(5),
        };
        let args: Vec<String> = spec.to_args()[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(SetSpec::from_args(&args), Ok(spec));
    }

    #[test]
    fn bad_create_arguments_are_rejected() {
        assert!(SetSpec::from_args(&["--uid-map".into(), "1:2".into()]).is_err());
        assert!(SetSpec::from_args(&["--frobnicate".into()]).is_err());
        assert!(SetSpec::from_args(&[]).is_err());
        let base = [
            "--user",
            "1001:1001:",
            "--uid-map",
            "1001:1001:1",
            "--gid-map",
            "1001:1001:1",
        ];
        let with = |extra: &[&str]| {
            let args: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
            SetSpec::from_args(&args)
        };
        assert!(with(&["--net", "--net-private", "198.51.100.0/24"]).is_ok());
        assert!(
            with(&["--net-private", "198.51.100.0/24"]).is_err(),
            "needs --net"
        );
        assert!(
            with(&["--net", "--allow-host", "tcp/22"]).is_err(),
            "needs a pool"
        );
        assert!(with(&["--net", "--net-private", "198.51.100.7/24"]).is_err());
        assert!(
            SetSpec::from_args(&[
                "--uid-map".into(),
                "1:2:3".into(),
                "--gid-map".into(),
                "1:2:3".into()
            ])
            .is_err(),
            "--uid is required"
        );
    }

    fn args(user: &str, uid_map: &str, gid_map: &str, extra: &[&str]) -> Vec<String> {
        ["--user", user, "--uid-map", uid_map, "--gid-map", gid_map]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn h0_rechecks_what_it_is_asked_to_build() {
        let ok = SetSpec::from_args(&args(
            "1001:1002:1002",
            "1001:1001:1,1:100001:1000",
            "1002:1002:1",
            &[],
        ));
        assert!(ok.is_ok(), "{ok:?}");
        let crontab = SetSpec::from_args(&args(
            "1001:1002:1002",
            "1001:1001:1",
            "107:107:1,1002:1002:1",
            &["--crontab-gid", "107"],
        ));
        assert_eq!(crontab.map(|s| s.crontab_gid), Ok(Some(107)));
        for (user, uid_map, gid_map, extra, why) in [
            (
                "1001:1002:",
                "0:0:1",
                "1002:1002:1",
                &[][..],
                "maps host root",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "0:0:4294967295",
                &[],
                "maps host root",
            ),
            (
                "1001:1002:",
                "5:4294967295:2",
                "1002:1002:1",
                &[],
                "wraps around",
            ),
            ("1001:1002:", "1001:1001:0", "1002:1002:1", &[], "is empty"),
            (
                "0:0:",
                "1001:1001:1",
                "1002:1002:1",
                &[],
                "never made for root",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "1002:1002:1",
                &["--tmp", "/"],
                "cannot be /",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "1002:1002:1",
                &["--tmp", "/proc/x"],
                "must not be under /proc",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "1002:1002:1",
                &["--tmp-size", "0"],
                "tmp size 0",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "1002:1002:1,1:100001:100",
                &["--crontab-gid", "107"],
                "not a group the gid map holds as itself",
            ),
            (
                "1001:1002:",
                "1001:1001:1",
                "1002:1002:1,0:0:1",
                &["--crontab-gid", "0"],
                "maps host root",
            ),
        ] {
            let err = SetSpec::from_args(&args(user, uid_map, gid_map, extra)).expect_err(why);
            assert!(err.contains(why), "{err} (wanted {why})");
        }
    }

    #[test]
    fn replies_round_trip() {
        for unit in [
            UnitPlacement::NoSystemd,
            UnitPlacement::Own("nsjail-1001-7.scope".into()),
            UnitPlacement::Cgroup("/pam_nsjail/user-1001/set-7".into()),
            UnitPlacement::Failed(
                "systemd: connect /run/dbus/system_bus_socket: No such file".into(),
            ),
        ] {
            for unlent in [None, Some(107)] {
                let ready = Ready {
                    pid: 42,
                    unit: unit.clone(),
                    lease: None,
                    unlent,
                };
                assert_eq!(parse_reply(&reply_line(&Ok(ready.clone()))), Ok(ready));
            }
        }
        assert!(parse_reply("ok 42 unlent=x").is_err());
        assert!(parse_reply("ok 42 frob=1").is_err());
        let e = SetError::new("mount tmpfs on /tmp", "Permission denied");
        assert_eq!(parse_reply(&reply_line(&Err(e.clone()))), Err(e));
        assert_eq!(
            parse_reply("").expect_err("empty").cause,
            "helper exited without a reply"
        );
        assert!(parse_reply("ok -1").is_err());
        assert!(parse_reply("ok 0").is_err());
        assert!(parse_reply("hello").is_err());
    }

    #[test]
    fn lines_are_read_up_to_a_deadline() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        nix::unistd::write(&w, b"ok 7\ndone").expect("write");
        let soon = Instant::now() + std::time::Duration::from_millis(200);
        assert_eq!(read_line(&r, soon).expect("line"), "ok 7");
        drop(w);
        assert_eq!(read_line(&r, soon).expect("eof"), "done");
        let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let err = read_line(&r, Instant::now() + std::time::Duration::from_millis(20))
            .expect_err("nothing written");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
