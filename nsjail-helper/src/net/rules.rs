//! The nftables rulesets of private networks, rendered as `nft -f` text
//! (pure functions, unit tested; `setup` loads them).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::pool::{HostPort, Pool, Proto, SET_IFNAME, VETH_PREFIX};

/// Family and name of the host table (and of the table inside each set).
pub const TABLE: &str = "inet pam_nsjail";

/// The first IPv4 loopback `nameserver` of resolv.conf text: the resolver
/// a set cannot reach by itself (its loopback is its own).
pub fn loopback_resolver(resolv_conf: &str) -> Option<Ipv4Addr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse::<Ipv4Addr>().ok())
            .flatten()
            .filter(Ipv4Addr::is_loopback)
    })
}

/// The host's table, replacing any older one in one transaction (so
/// there is never a moment without it once a set exists).
///
/// `guard_forwarding`: the host did not forward before pam_nsjail turned
/// forwarding on, so forwarding between any two interfaces that are not
/// ours stays dropped.
pub fn host_table(
    pool: Pool,
    resolver: Option<Ipv4Addr>,
    allow_host: &[HostPort],
    guard_forwarding: bool,
) -> String {
    let ours = format!("iifname \"{VETH_PREFIX}*\"");
    let to_ours = format!("oifname \"{VETH_PREFIX}*\"");
    let gw = pool.gateway();
    let mut t = String::new();
    // `add` + `delete` makes the first load and every later one the same
    // atomic replacement.
    let _ = writeln!(t, "add table {TABLE}");
    let _ = writeln!(t, "delete table {TABLE}");
    let _ = writeln!(t, "table {TABLE} {{");
    let _ = writeln!(
        t,
        "\tcomment \"pam_nsjail private networks, pool {pool}; removed with the last set\""
    );
    // Before conntrack: nothing but IPv4 from the set's own address.
    let _ = writeln!(t, "\tchain spoof {{");
    let _ = writeln!(
        t,
        "\t\ttype filter hook prerouting priority raw; policy accept;"
    );
    let _ = writeln!(t, "\t\t{ours} meta nfproto != ipv4 drop");
    let _ = writeln!(t, "\t\t{ours} ip saddr != {pool} drop");
    let _ = writeln!(t, "\t\t{ours} fib saddr . iif oif missing drop");
    let _ = writeln!(t, "\t}}");
    if let Some(r) = resolver {
        let _ = writeln!(t, "\tchain nat_dns {{");
        let _ = writeln!(
            t,
            "\t\ttype nat hook prerouting priority dstnat; policy accept;"
        );
        for proto in ["udp", "tcp"] {
            let _ = writeln!(
                t,
                "\t\t{ours} ip daddr {gw} {proto} dport 53 dnat ip to {r}"
            );
        }
        let _ = writeln!(t, "\t}}");
    }
    let _ = writeln!(t, "\tchain input {{");
    let _ = writeln!(
        t,
        "\t\ttype filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(t, "\t\t{ours} ct state established,related accept");
    if let Some(r) = resolver {
        for proto in ["udp", "tcp"] {
            let _ = writeln!(
                t,
                "\t\t{ours} ct status dnat ip daddr {r} {proto} dport 53 accept"
            );
        }
    }
    for hp in allow_host {
        let proto = match hp.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let _ = writeln!(
            t,
            "\t\t{ours} ip daddr != 127.0.0.0/8 {proto} dport {} accept",
            hp.port
        );
    }
    let _ = writeln!(t, "\t\t{ours} drop");
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "\tchain forward {{");
    let _ = writeln!(
        t,
        "\t\ttype filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(t, "\t\t{ours} {to_ours} drop");
    let _ = writeln!(t, "\t\t{ours} ip daddr {pool} drop");
    // Into a set: replies only (`!= established,related` would compare
    // with both bits at once, so accept them and drop the rest).
    let _ = writeln!(t, "\t\t{to_ours} ct state established,related accept");
    let _ = writeln!(t, "\t\t{to_ours} drop");
    if guard_forwarding {
        let _ = writeln!(
            t,
            "\t\tiifname != \"{VETH_PREFIX}*\" oifname != \"{VETH_PREFIX}*\" drop"
        );
    }
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "\tchain output {{");
    let _ = writeln!(
        t,
        "\t\ttype filter hook output priority filter; policy accept;"
    );
    let _ = writeln!(t, "\t\t{to_ours} ct state new drop");
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "\tchain nat_out {{");
    let _ = writeln!(
        t,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        t,
        "\t\tip saddr {pool} oifname != \"{VETH_PREFIX}*\" masquerade"
    );
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "}}");
    t
}

/// The table inside a set whose host has a loopback resolver: DNS to the
/// set's own loopback goes to the gateway instead (with the set's address
/// as source), where the host table hands it to the resolver. Nobody in
/// the set can change it: the set's network namespace belongs to the
/// host's user namespace.
pub fn set_table(gateway: Ipv4Addr, addr: Ipv4Addr) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "table {TABLE} {{");
    let _ = writeln!(t, "\tchain nat_dns {{");
    let _ = writeln!(t, "\t\ttype nat hook output priority -100; policy accept;");
    for proto in ["udp", "tcp"] {
        let _ = writeln!(
            t,
            "\t\tip daddr 127.0.0.0/8 {proto} dport 53 dnat ip to {gateway}"
        );
    }
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "\tchain nat_source {{");
    let _ = writeln!(
        t,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        t,
        "\t\toifname \"{SET_IFNAME}\" ip saddr 127.0.0.0/8 snat ip to {addr}"
    );
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "}}");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_resolver_is_the_first_ipv4_loopback_nameserver() {
        let conf = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver 127.0.0.53\nnameserver 127.0.0.1\noptions edns0\n";
        assert_eq!(loopback_resolver(conf), Some(Ipv4Addr::new(127, 0, 0, 53)));
        assert_eq!(loopback_resolver("nameserver 192.0.2.53\n"), None);
        assert_eq!(loopback_resolver("nameserver ::1\n"), None);
        assert_eq!(loopback_resolver("#nameserver 127.0.0.1\n"), None);
    }

    #[test]
    fn the_host_table_replaces_itself_and_names_the_pool() {
        let pool: Pool = "198.51.100.0/24".parse().unwrap();
        let t = host_table(
            pool,
            Some(Ipv4Addr::new(127, 0, 0, 53)),
            &["tcp/22".parse().unwrap()],
            true,
        );
        assert!(t.starts_with("add table inet pam_nsjail\ndelete table inet pam_nsjail\n"));
        assert!(t.contains("ip daddr 198.51.100.1 udp dport 53 dnat ip to 127.0.0.53"));
        assert!(t.contains("fib saddr . iif oif missing drop"));
        assert!(t.contains("ip saddr 198.51.100.0/24 oifname != \"nsj*\" masquerade"));
        assert!(t.contains("tcp dport 22 accept"));
        assert!(t.contains("iifname != \"nsj*\" oifname != \"nsj*\" drop"));
        // Every rule that accepts for a set comes before its final drop.
        let input = t.split("chain input").nth(1).unwrap();
        let input = input.split("\t}").next().unwrap();
        assert!(
            input.trim_end().ends_with("iifname \"nsj*\" drop"),
            "{input}"
        );
    }

    #[test]
    fn no_resolver_no_dns_rules_and_no_guard_when_the_host_forwarded() {
        let pool: Pool = "10.213.0.0/16".parse().unwrap();
        let t = host_table(pool, None, &[], false);
        assert!(!t.contains("dport 53"));
        assert!(!t.contains("iifname != "));
    }

    #[test]
    fn the_set_table_sends_loopback_dns_to_the_gateway() {
        let t = set_table(
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(198, 51, 100, 7),
        );
        assert!(t.contains("ip daddr 127.0.0.0/8 udp dport 53 dnat ip to 198.51.100.1"));
        assert!(t.contains("oifname \"eth0\" ip saddr 127.0.0.0/8 snat ip to 198.51.100.7"));
    }
}
