//! Private networks (`network = "private"`): each set gets its own
//! loopback and one IPv4 address from the admin's pool, linked to the host
//! by a veth pair whose host end is `nsj<index>`; the host NATs the set's
//! outbound traffic and a table of our own (`inet pam_nsjail`) decides
//! what a set may reach:
//!
//! - other hosts, as the host itself can (TCP, UDP, ICMP), masqueraded;
//! - the host's resolver even where `/etc/resolv.conf` names one on the
//!   host's loopback (systemd-resolved's 127.0.0.53, dnsmasq, unbound):
//!   the set sends loopback DNS to the gateway, the host forwards it to
//!   that resolver and nothing else on its loopback;
//! - not: another set, the host's loopback services, the host's own
//!   addresses (except `[network] allow_host`), and nothing with a source
//!   address but its own (checked against the route back, `fib`).
//!
//! IPv4 only: IPv6 is switched off on both ends of the link, so a set has
//! `::1` and nothing else.
//!
//! Parts: `pool` (address arithmetic), `rules` (the rulesets, as text),
//! `tools` (running `ip`, `nft` and `conntrack`, checked like the helper),
//! `setup` (H0's part, and the teardown), `hostinfo` (what `check`,
//! `explain` and `audit` report about the host).
#![forbid(unsafe_code)]

mod hostinfo;
mod pool;
mod rules;
mod setup;
mod tools;

pub use hostinfo::{host_report, HostReport};
pub use pool::{veth_index, veth_name, HostPort, Pool, Proto, SET_IFNAME, VETH_PREFIX};
pub use rules::{host_table, loopback_resolver, set_table, TABLE};
pub use setup::{
    attach_private, live_indices, release, sweep, sweep_after_failure, sweep_if_idle, Lease,
    PrivateSpec,
};
