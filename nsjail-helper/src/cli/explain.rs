//! `nsjail-helper explain USER`: which policy applies and what the set
//! would look like, computed by the same code a login uses.

use std::path::Path;

use super::{Args, CliResult};
use crate::idmap;
use crate::paths::{self, DEFAULT_SERVICE};
use crate::policy::Share;
use crate::registry::Registry;
use crate::session;

const HELP: &str = "\
usage: nsjail-helper explain USER [--service NAME] [--config PATH]

Show which policy applies to USER for service NAME (default sshd) and why,
then what their namespace set gets: namespaces, the mounts, share and
on_logout, where the sub-id ranges come from (/etc/subuid and /etc/subgid,
or libsubid where /etc/nsswitch.conf has a subid: line), the exact uid_map
and gid_map lines, and whether a set is live.";

pub fn main(args: &[String]) -> CliResult {
    let args = Args::parse(args, &["--config", "--service"], &[])?;
    if args.help {
        println!("{HELP}");
        return Ok(0);
    }
    let name = args.one_user()?;
    let config = super::load_config(&args.config_path())?;
    let user = super::lookup_user(name)?;
    let service = args.option("--service").unwrap_or(DEFAULT_SERVICE);
    let decision = config.decide(&user, service);

    let groups: Vec<String> = user
        .groups
        .iter()
        .map(|g| {
            let name = g.name.clone().unwrap_or_else(|| "?".into());
            if g.primary {
                format!("{name}({}, primary)", g.gid)
            } else {
                format!("{name}({})", g.gid)
            }
        })
        .collect();
    println!(
        "user:        {} (uid {}, gid {})",
        user.name, user.uid, user.gid
    );
    println!("groups:      {}", groups.join(" "));
    println!("service:     {service}");
    println!("policy:      {} ({})", decision.policy, decision.reason);
    let Some(settings) = decision.settings.as_ref() else {
        println!("action:      not isolated: logins run in the host namespaces");
        return Ok(0);
    };
    println!("action:      isolate");
    let ns: Vec<&str> = settings.namespaces.iter().map(|n| n.as_str()).collect();
    println!("namespaces:  {}", ns.join(" "));
    if !settings
        .namespaces
        .contains(&crate::policy::Namespace::Cgroup)
        && !settings.cgroup_opt_out
    {
        if crate::nsset::cgroup_namespace_hides() {
            println!("             and cgroup: the default where each set has a systemd scope on cgroup v2, as here (\"!cgroup\" opts out)");
        } else {
            println!("             no cgroup: by default only where each set has a systemd scope on cgroup v2, not here");
        }
    }
    let share = match settings.share {
        Share::User => format!("user (all of {}'s logins share one set)", user.name),
        Share::Session => "session (each login gets its own set)".to_owned(),
    };
    println!("share:       {share}");
    println!("on_logout:   {}", settings.on_logout.as_str());
    println!(
        "propagation: {} (/ is made r{} before any private mount)",
        settings.propagation.as_str(),
        settings.propagation.as_str()
    );
    let size = settings
        .tmp_size
        .as_deref()
        .map(|s| format!(",size={s}"))
        .unwrap_or_default();
    println!("mounts:");
    for dir in &settings.private_tmp {
        println!(
            "  tmpfs on {} (nosuid,nodev,mode=1777{size}), private to the set",
            dir.display()
        );
    }
    println!("  proc on /proc (nosuid,nodev,noexec) for the set's pid namespace");
    println!("  mqueue on /dev/mqueue if present, for the set's ipc namespace");
    println!("  all locked: they cannot be unmounted from inside");
    print_network(settings, &user);
    print_limits(settings, &user);
    match session::plan(&user, settings, Path::new(paths::ETC)) {
        Ok(plan) => {
            let range = |r: Option<crate::subid::SubRange>| {
                r.map_or(
                    "none (only the user's own ids are mapped)".to_owned(),
                    |r| format!("{}+{}", r.start, r.count),
                )
            };
            println!("subids:      {}", plan.subid_source);
            println!("subuid:      {}", range(plan.subuid));
            println!("subgid:      {}", range(plan.subgid));
            println!("uid_map:");
            print!("{}", indent(&idmap::render(&plan.spec.uid_map)));
            // What H0 will do about the crontab view, tried the same way
            // (as root; the view is made and dropped, never attached).
            let mut gid_map = plan.spec.gid_map.clone();
            let mut lent = Vec::new();
            for g in &plan.shared {
                let usable = if nix::unistd::geteuid().is_root() {
                    crate::nsset::crontab_usable(user.uid, g.gid)
                } else {
                    Ok(())
                };
                match usable {
                    Ok(()) => lent.push(format!(
                        "lent group:  {} to every set, member or not: {}",
                        g.describe(),
                        g.why
                    )),
                    Err(why) => {
                        gid_map = crate::nsset::without_group(&gid_map, g.gid, &user.all_gids());
                        lent.push(format!(
                            "not lent:    {}: {why} (crontab fails inside a set)",
                            g.describe()
                        ));
                    }
                }
            }
            println!("gid_map:");
            print!("{}", indent(&idmap::render(&gid_map)));
            for line in lent {
                println!("{line}");
            }
            for w in &plan.warnings {
                println!("warning:     {w}");
            }
        }
        Err(e) => {
            println!("error:       {e}");
            println!("             a login of {} would be refused", user.name);
        }
    }
    if let Ok(Some(reg)) = Registry::open_existing(Path::new(paths::REGISTRY)) {
        for rec in reg.sets_of(user.uid) {
            if reg.attach(&rec).is_some() {
                println!(
                    "live set:    {} (holder pid {}, {} session(s))",
                    rec.key,
                    rec.holder.pid,
                    rec.sessions.len()
                );
                let lent = rec.lent_gids.as_deref().unwrap_or_default();
                for g in session::SharedGroup::of_host() {
                    if !lent.contains(&g.gid) {
                        println!(
                            "             does not lend {} (made before it was lent, or its crontab view could not be made): crontab fails in it until it ends",
                            g.describe()
                        );
                    }
                }
            }
        }
    }
    Ok(0)
}

/// The user's resource limits, and whether this host can enforce them.
fn print_limits(settings: &crate::policy::Settings, user: &crate::user::UserInfo) {
    let limits = &settings.limits;
    if limits.is_empty() {
        println!("limits:      none");
        return;
    }
    println!(
        "limits:      {limits} (for all of {}'s isolated processes together, every set and login)",
        user.name
    );
    match crate::limits::support(limits, Path::new(paths::CGROUP)) {
        Ok(()) => println!(
            "  enforced {}",
            crate::limits::mechanism(crate::nsset::systemd_booted(), user.uid)
        ),
        Err(why) => println!(
            "  NOT enforceable on this host: {why}; logins are refused (on_error=deny) or let in without limits (on_error=allow)"
        ),
    }
}

/// The set's network: what it is, its address, what it can reach.
fn print_network(settings: &crate::policy::Settings, user: &crate::user::UserInfo) {
    use crate::policy::Network;
    match settings.network {
        Network::Host => {
            println!("network:     host (no network namespace: localhost, abstract unix sockets and ports are shared with every user of the host)");
        }
        Network::Loopback => {
            println!(
                "network:     none (a loopback of its own and nothing else: no outbound access)"
            );
        }
        Network::Private => {
            let nc = &settings.net_config;
            let pool = nc.pool;
            println!("network:     private (a loopback of its own, one address, outbound IPv4 through the host with NAT)");
            println!(
                "  pool {pool} ({} addresses), gateway {} (the host's end of every set's link)",
                pool.capacity(),
                pool.gateway()
            );
            let live = Registry::open_existing(Path::new(paths::REGISTRY))
                .ok()
                .flatten()
                .and_then(|reg| {
                    reg.sets_of(user.uid)
                        .into_iter()
                        .find(|r| r.lease.is_some() && reg.attach(r).is_some())
                });
            match live.and_then(|r| r.lease) {
                Some(l) => println!("  address:   {} (live set, host link {})", l.addr, l.ifname),
                None => println!("  address:   the next free one of the pool, given at login and released when the set ends"),
            }
            let dns = std::fs::read_to_string("/etc/resolv.conf")
                .ok()
                .and_then(|t| crate::net::loopback_resolver(&t))
                .map_or("the resolvers of /etc/resolv.conf".to_owned(), |r| {
                    format!("the host's loopback resolver {r} (through the gateway, port 53 only)")
                });
            println!("  reaches:   other hosts as the host does (TCP, UDP, ICMP; IPv4 only); names through {dns}");
            let allowed: Vec<String> = nc.allow_host.iter().map(ToString::to_string).collect();
            let host = if allowed.is_empty() {
                "the host's own addresses".to_owned()
            } else {
                format!("the host's own addresses except {}", allowed.join(", "))
            };
            println!("  not:       other sets, the host's loopback services, {host}, IPv6, any source address but its own");
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
