//! H0's part of a private network, and its teardown.
//!
//! H0 has just unshared the set's network namespace. It steps back into
//! the host's, and under the host-wide network lock: turns forwarding on
//! if it was off (and notes that it did), (re)loads the host table,
//! picks the next index whose interface `nsj<index>` does not exist,
//! flushes conntrack entries a former holder of that address left, and
//! creates the veth pair with its peer already inside the set. Back in
//! the set, it configures the set's end. Everything per set (link,
//! addresses, routes) lives on the two interfaces, so it disappears with
//! the set's network namespace, by whatever path the set ends; what is
//! shared (the table, forwarding) goes with the last set (`sweep`).
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use super::pool::{veth_index, veth_name, HostPort, Pool, SET_IFNAME};
use super::rules::{host_table, loopback_resolver, set_table, TABLE};
use super::tools;
use crate::nsset::SetError;
use crate::paths;
use crate::registry::Registry;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long a teardown waits for a set's link to disappear: the kernel
/// frees network namespaces in a work queue, one batch after another, so
/// after many sets ended at once it can take seconds (measured: over 1 s
/// in the full test suite). Past this bound the next login, logout,
/// `list` or `stop` removes what is left.
const LINK_GONE_WAIT: Duration = Duration::from_secs(5);

/// What a private network needs from the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateSpec {
    pub pool: Pool,
    pub allow_host: Vec<HostPort>,
}

/// A set's address and the host end of its link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub ifname: String,
}

impl Lease {
    /// `ADDR,IFNAME` (H0's reply, the registry record).
    pub fn to_wire(&self) -> String {
        format!("{},{}", self.addr, self.ifname)
    }

    pub fn from_wire(text: &str) -> Option<Lease> {
        let (addr, ifname) = text.split_once(',')?;
        veth_index(ifname)?;
        Some(Lease {
            addr: addr.parse().ok()?,
            ifname: ifname.to_owned(),
        })
    }
}

fn err<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> SetError {
    move |e| SetError::new(step, e)
}

/// Gives the network namespace H0 is in (new, with loopback up) its link
/// to the host. `host_ns` is the host's network namespace, opened before
/// the unshare. Returns in the set's namespace, even on error.
pub fn attach_private(spec: &PrivateSpec, host_ns: impl AsFd) -> Result<Lease, SetError> {
    let set_ns =
        File::open("/proc/self/ns/net").map_err(err("open the set's network namespace"))?;
    setns(host_ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(err("enter the host's network namespace"))?;
    let resolver = fs::read_to_string(RESOLV_CONF)
        .ok()
        .and_then(|t| loopback_resolver(&t));
    let host = host_side(spec, resolver, &set_ns);
    setns(set_ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(err("return to the set's network namespace"))?;
    let lease = host?;
    crate::nsset::failpoint("h0-net-after-link");
    set_side(spec.pool.gateway(), &lease, resolver)?;
    Ok(lease)
}

fn host_side(
    spec: &PrivateSpec,
    resolver: Option<Ipv4Addr>,
    set_ns: &File,
) -> Result<Lease, SetError> {
    let reg = Registry::open_existing(Path::new(paths::REGISTRY))
        .map_err(err("open the registry"))?
        .ok_or_else(|| SetError::new("open the registry", "missing"))?;
    let lock = reg.lock_net().map_err(err("lock private networks"))?;
    let guard = ensure_forwarding(&reg)?;
    fs::write(reg.table_marker(), "").map_err(err("note the host table"))?;
    tools::run(
        "nft",
        &["-f", "-"],
        &host_table(spec.pool, resolver, &spec.allow_host, guard),
    )
    .map_err(err("load the host table"))?;
    let used = live_indices();
    let index = pick(spec.pool, &used, lock.cursor()).ok_or_else(|| {
        SetError::new(
            "allocate an address",
            format!(
                "all {} addresses of pool {} are in use",
                spec.pool.capacity(),
                spec.pool
            ),
        )
    })?;
    lock.set_cursor(index);
    let addr = spec
        .pool
        .address(index)
        .ok_or_else(|| SetError::new("allocate an address", "index outside the pool"))?;
    let ifname = veth_name(index);
    // Entries of an earlier set with this address must not carry over.
    flush_conntrack(addr);
    let peer_ns = format!("/proc/{}/fd/{}", std::process::id(), set_ns.as_raw_fd());
    let gw = spec.pool.gateway();
    // One batch. The host end comes up without carrier (the set's end is
    // still down), so it has no IPv6 address yet when the sysctls below
    // switch IPv6 off, before the set's end ever comes up.
    tools::run(
        "ip",
        &["-batch", "-"],
        &format!(
            "link add {ifname} type veth peer name {SET_IFNAME} netns {peer_ns}\n\
             address add {gw}/32 dev {ifname}\n\
             link set {ifname} up\n\
             route add {addr}/32 dev {ifname}\n"
        ),
    )
    .map_err(err("create the link"))?;
    // No IPv6 (not even link-local) towards the set, and loopback
    // destinations allowed for the resolver's DNAT only (the host table
    // drops everything else to the host).
    sysctl(&ifname, "ipv6", "disable_ipv6", "1")?;
    if resolver.is_some() {
        sysctl(&ifname, "ipv4", "route_localnet", "1")?;
    }
    Ok(Lease { addr, ifname })
}

fn set_side(gw: Ipv4Addr, lease: &Lease, resolver: Option<Ipv4Addr>) -> Result<(), SetError> {
    sysctl(SET_IFNAME, "ipv6", "disable_ipv6", "1")?;
    if resolver.is_some() {
        sysctl(SET_IFNAME, "ipv4", "route_localnet", "1")?;
    }
    let addr = lease.addr;
    tools::run(
        "ip",
        &["-batch", "-"],
        &format!(
            "address add {addr}/32 dev {SET_IFNAME}\nlink set {SET_IFNAME} up\nroute add default via {gw} dev {SET_IFNAME} onlink\n"
        ),
    )
    .map_err(err("configure the set's end of the link"))?;
    if resolver.is_some() {
        tools::run("nft", &["-f", "-"], &set_table(gw, addr))
            .map_err(err("load the set's resolver redirect"))?;
    }
    Ok(())
}

/// Writes one per-interface sysctl of the current network namespace.
fn sysctl(ifname: &str, family: &str, key: &str, value: &str) -> Result<(), SetError> {
    let path = format!("/proc/sys/net/{family}/conf/{ifname}/{key}");
    fs::write(&path, value).map_err(|e| SetError::new("set sysctl", format!("{path}: {e}")))
}

/// Turns IPv4 forwarding on if it is off, noting that pam_nsjail did (so
/// the last set turns it off again and the host table drops forwarding
/// between the host's other interfaces). True if the note exists.
fn ensure_forwarding(reg: &Registry) -> Result<bool, SetError> {
    let marker = reg.forwarding_marker();
    let on = fs::read_to_string(IP_FORWARD)
        .map_err(err("read net.ipv4.ip_forward"))?
        .trim()
        == "1";
    if !on {
        fs::write(
            &marker,
            "pam_nsjail turned net.ipv4.ip_forward on for private networks\n",
        )
        .map_err(err("note forwarding"))?;
        fs::write(IP_FORWARD, "1").map_err(err("turn on net.ipv4.ip_forward"))?;
        crate::log::log(
            crate::log::Level::Info,
            "private networks: turned net.ipv4.ip_forward on (it was off); forwarding between the host's other interfaces stays dropped by table inet pam_nsjail, and the last set turns it off again",
        );
    }
    Ok(marker.exists())
}

/// The indices of the private-network links that exist now, in this
/// process's network namespace: from /proc/self/net/dev (a plain read,
/// cheap with thousands of links, unlike a netlink dump of all of them),
/// else through if_nameindex.
pub fn live_indices() -> Vec<u32> {
    if let Ok(text) = fs::read_to_string("/proc/self/net/dev") {
        return text
            .lines()
            .skip(2)
            .filter_map(|l| veth_index(l.split(':').next()?.trim()))
            .collect();
    }
    nix::net::if_::if_nameindex()
        .map(|ifs| {
            ifs.iter()
                .filter_map(|i| veth_index(i.name().to_str().ok()?))
                .collect()
        })
        .unwrap_or_default()
}

/// The next free index after `cursor`, round-robin, so an address just
/// released is the last to be given out again.
fn pick(pool: Pool, used: &[u32], cursor: u32) -> Option<u32> {
    let used: std::collections::HashSet<u32> = used.iter().copied().collect();
    let (first, last) = (*pool.indices().start(), *pool.indices().end());
    let start = if (first..last).contains(&cursor) {
        cursor + 1
    } else {
        first
    };
    (start..=last)
        .chain(first..start)
        .find(|i| !used.contains(i))
}

fn flush_conntrack(addr: Ipv4Addr) {
    if tools::find("conntrack").is_some() {
        // Exit status 1 with "0 flow entries" when there were none.
        let _ = tools::run("conntrack", &["-D", "-s", &addr.to_string()], "");
    }
}

/// After a set with `lease` ended: waits (boundedly) for its link to go
/// with its network namespace, forgets its connections, and removes the
/// shared state if it was the last set. Returns what was done, for logs.
pub fn release(lease: &Lease) -> Vec<String> {
    let deadline = Instant::now() + LINK_GONE_WAIT;
    while nix::net::if_::if_nametoindex(lease.ifname.as_str()).is_ok() && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    flush_conntrack(lease.addr);
    sweep()
}

/// `sweep`, but only if something of private networks may be left and
/// no link is: cheap enough for every login (no tool runs otherwise).
/// Sets that end without a logout (their holder killed, or ended with its
/// last opener) leave the shared table and forwarding to this.
pub fn sweep_if_idle() -> Vec<String> {
    let Ok(Some(reg)) = Registry::open_existing(Path::new(paths::REGISTRY)) else {
        return Vec::new();
    };
    let pending = reg.table_marker().exists() || reg.forwarding_marker().exists();
    if pending && live_indices().is_empty() {
        sweep()
    } else {
        Vec::new()
    }
}

/// After a set failed half-way: its link goes with its network namespace,
/// which the kernel frees asynchronously. `before` are the links that
/// existed before the attempt: wait (boundedly) until none but those is
/// left, then remove what only the failed set needed.
pub fn sweep_after_failure(before: &[u32]) -> Vec<String> {
    let deadline = Instant::now() + LINK_GONE_WAIT;
    while live_indices().iter().any(|i| !before.contains(i)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    sweep()
}

/// Removes the host table and restores forwarding once no private-network
/// link is left. Safe to call any time (holds the network lock).
pub fn sweep() -> Vec<String> {
    let mut done = Vec::new();
    let Ok(Some(reg)) = Registry::open_existing(Path::new(paths::REGISTRY)) else {
        return done;
    };
    let marker = reg.forwarding_marker();
    let Ok(_lock) = reg.lock_net() else {
        return done;
    };
    if !live_indices().is_empty() {
        return done;
    }
    if tools::find("nft").is_some()
        && tools::run("nft", &["list", "table", "inet", "pam_nsjail"], "").is_ok()
    {
        match tools::run("nft", &["delete", "table", "inet", "pam_nsjail"], "") {
            Ok(_) => done.push(format!("removed table {TABLE}")),
            Err(e) => done.push(format!("could not remove table {TABLE}: {e}")),
        }
    }
    let _ = fs::remove_file(reg.table_marker());
    if marker.exists() && fs::write(IP_FORWARD, "0").is_ok() {
        let _ = fs::remove_file(&marker);
        done.push("turned net.ipv4.ip_forward off again".to_owned());
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picking_is_round_robin_and_skips_used_indices() {
        let pool: Pool = "198.51.100.0/29".parse().unwrap(); // sets 2..=6
        assert_eq!(pick(pool, &[], 0), Some(2));
        assert_eq!(pick(pool, &[], 2), Some(3));
        assert_eq!(pick(pool, &[3, 4], 2), Some(5));
        assert_eq!(pick(pool, &[], 6), Some(2), "wraps around");
        assert_eq!(pick(pool, &[2, 3, 4, 5, 6], 3), None, "exhausted");
        assert_eq!(pick(pool, &[2, 3, 5, 6], 5), Some(4));
    }

    #[test]
    fn leases_cross_the_wire_and_refuse_foreign_names() {
        let l = Lease {
            addr: Ipv4Addr::new(198, 51, 100, 9),
            ifname: "nsj9".into(),
        };
        assert_eq!(Lease::from_wire(&l.to_wire()), Some(l));
        assert_eq!(Lease::from_wire("198.51.100.9,eth0"), None);
        assert_eq!(Lease::from_wire("nope,nsj9"), None);
    }
}
