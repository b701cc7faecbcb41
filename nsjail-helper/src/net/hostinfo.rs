//! What `check`, `explain` and `audit` say about the host's side of
//! private networks: does the pool collide with the host's routes, what
//! pam_nsjail changed (forwarding, its table), and whether the admin's
//! firewall drops forwarded traffic (reported, never worked around).
#![forbid(unsafe_code)]

use std::fs;
use std::net::Ipv4Addr;

use super::pool::{veth_index, Pool};
use super::rules::loopback_resolver;
use super::tools;
use crate::paths;
use crate::registry::Registry;

/// The host as private networks see it.
#[derive(Clone, Debug, Default)]
pub struct HostReport {
    /// Problems that make private networks fail or leak.
    pub problems: Vec<String>,
    /// What is worth knowing (changes pam_nsjail made, the resolver).
    pub notes: Vec<String>,
}

/// Examines the host for `pool`.
pub fn host_report(pool: Pool) -> HostReport {
    let mut r = HostReport::default();
    for (dest, prefix, iface) in routes() {
        if prefix > 0 && pool.overlaps(dest, prefix) {
            r.problems.push(format!(
                "[network] pool {pool} overlaps the host's route {dest}/{prefix} (dev {iface}): choose a pool no host route or address uses"
            ));
        }
    }
    for (addr, iface) in addresses() {
        if pool.contains(addr) {
            r.problems.push(format!(
                "[network] pool {pool} contains the host's address {addr} (dev {iface})"
            ));
        }
    }
    for tool in ["ip", "nft"] {
        if tools::find(tool).is_none() {
            r.problems.push(format!(
                "network = \"private\" needs {tool} (apt-get install {})",
                if tool == "nft" {
                    "nftables"
                } else {
                    "iproute2"
                }
            ));
        }
    }
    if tools::find("conntrack").is_none() {
        r.notes.push("conntrack is not installed (apt-get install conntrack): connection-tracking entries of an ended set stay until they time out".into());
    }
    match fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|t| t.trim() == "1") {
        Ok(true) if forwarding_marker_exists() => r.notes.push(
            "net.ipv4.ip_forward is on because pam_nsjail turned it on for private networks; table inet pam_nsjail drops forwarding between the host's other interfaces, and the last set turns it off again".into(),
        ),
        Ok(true) => r.notes.push(
            "net.ipv4.ip_forward was already on (the admin's): pam_nsjail leaves it and the host's other forwarding alone".into(),
        ),
        Ok(false) => r.notes.push(
            "net.ipv4.ip_forward is off: the first private-network set turns it on (forwarding between the host's other interfaces stays dropped) and the last one turns it off again".into(),
        ),
        Err(_) => {}
    }
    for chain in dropping_forward_chains() {
        r.problems.push(format!(
            "the host firewall's {chain} drops forwarded traffic by default: private-network sets have no outbound access unless it accepts traffic from the interfaces nsj* (iifname \"nsj*\" accept) and back (ct state established,related accept)"
        ));
    }
    match fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| loopback_resolver(&t))
    {
        Some(r0) => r.notes.push(format!(
            "/etc/resolv.conf names a resolver on the host's loopback ({r0}): sets reach it through the gateway {} (udp and tcp port 53 only)",
            pool.gateway()
        )),
        None => r.notes.push(
            "/etc/resolv.conf names no loopback resolver: sets use its resolvers through NAT".into(),
        ),
    }
    let live = super::setup::live_indices().len();
    if live > 0 || table_loaded() {
        r.notes.push(format!(
            "now: {live} private-network set(s); table inet pam_nsjail {}",
            if table_loaded() {
                "loaded"
            } else {
                "not loaded"
            }
        ));
    }
    r
}

fn forwarding_marker_exists() -> bool {
    Registry::open_existing(std::path::Path::new(paths::REGISTRY))
        .ok()
        .flatten()
        .is_some_and(|reg| reg.forwarding_marker().exists())
}

fn table_loaded() -> bool {
    tools::find("nft").is_some()
        && tools::run("nft", &["list", "table", "inet", "pam_nsjail"], "").is_ok()
}

/// The IPv4 routes of the main table, but ours: (destination, prefix, dev).
fn routes() -> Vec<(Ipv4Addr, u8, String)> {
    let Ok(text) = fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let iface = *f.first()?;
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // /proc/net/route prints the network-order bytes as a native
            // number.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            (veth_index(iface).is_none()).then(|| (dest, mask.count_ones() as u8, iface.to_owned()))
        })
        .collect()
}

/// The host's IPv4 addresses, but those on our links.
fn addresses() -> Vec<(Ipv4Addr, String)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| veth_index(&a.interface_name).is_none())
        .filter_map(|a| {
            let sin = a.address?;
            let sin = sin.as_sockaddr_in()?;
            Some((sin.ip(), a.interface_name))
        })
        .collect()
}

/// `table FAMILY NAME chain CHAIN` of every base chain on the forward
/// hook with policy drop, but ours.
fn dropping_forward_chains() -> Vec<String> {
    let Ok(text) = tools::run("nft", &["list", "chains"], "") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let (mut table, mut chain) = (String::new(), String::new());
    for line in text.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix("table ") {
            table = t.trim_end_matches(" {").to_owned();
        } else if let Some(c) = line.strip_prefix("chain ") {
            chain = c.trim_end_matches(" {").to_owned();
        } else if line.contains("hook forward")
            && line.contains("policy drop")
            && table != "inet pam_nsjail"
        {
            found.push(format!("table {table} chain {chain}"));
        }
    }
    found
}
