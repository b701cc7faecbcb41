//! The address pool of private networks and the host ports sets may
//! reach: parsing (for the policy) and the index ↔ address ↔ interface
//! name arithmetic every other part of `net` relies on.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The host-side interface of set `i` is `nsj<i>`: the kernel's unique
/// interface names make the address allocation race-free, and the
/// interface disappears with the set's network namespace, which releases
/// the address without anybody having to remember it.
pub const VETH_PREFIX: &str = "nsj";
/// The interface name the set sees.
pub const SET_IFNAME: &str = "eth0";
/// Smallest pool: the network address, the gateway, one set, broadcast.
pub const MAX_PREFIX: u8 = 30;
/// Largest pool accepted (a /8 already holds 16 million sets).
pub const MIN_PREFIX: u8 = 8;

/// An IPv4 pool `a.b.c.d/n`: index 0 is the network address, 1 the
/// gateway (the host's end of every set's link), the last the broadcast
/// address; sets get the indices in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    base: u32,
    prefix: u8,
}

impl Pool {
    /// Only used if the built-in default failed to parse (it cannot).
    pub const FALLBACK: Pool = Pool {
        base: 0x0ad5_0000,
        prefix: 16,
    };

    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn prefix(self) -> u8 {
        self.prefix
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The netmask as a number.
    pub fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The host's address on every set's link.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// How many sets the pool holds at once.
    pub fn capacity(self) -> u32 {
        (self.size() - 3) as u32
    }

    /// The first and last set index.
    pub fn indices(self) -> std::ops::RangeInclusive<u32> {
        2..=(self.size() - 2) as u32
    }

    /// The address of set index `i` (`None` outside the set range).
    pub fn address(self, i: u32) -> Option<Ipv4Addr> {
        self.indices()
            .contains(&i)
            .then(|| Ipv4Addr::from(self.base + i))
    }

    /// The set index of `addr` (`None` for addresses no set can have).
    pub fn index_of(self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        (a & self.mask() == self.base)
            .then_some(a - self.base)
            .filter(|i| self.indices().contains(i))
    }

    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == self.base
    }

    /// Whether this pool and `net/prefix` share any address.
    pub fn overlaps(self, net: Ipv4Addr, prefix: u8) -> bool {
        let p = self.prefix.min(prefix.min(32));
        let mask = if p == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(p))
        };
        (u32::from(net) & mask) == (self.base & mask)
    }
}

/// The host-side interface name of set index `i`.
pub fn veth_name(i: u32) -> String {
    format!("{VETH_PREFIX}{i}")
}

/// The set index a host interface name stands for, if it is one of ours.
pub fn veth_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(VETH_PREFIX)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Pool {
    type Err = String;

    fn from_str(text: &str) -> Result<Pool, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or("expected an IPv4 network like \"10.213.0.0/16\"")?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (MIN_PREFIX..=MAX_PREFIX).contains(p))
            .ok_or_else(|| {
                format!("the prefix length must be {MIN_PREFIX}..{MAX_PREFIX}, not {prefix:?}")
            })?;
        let pool = Pool {
            base: u32::from(addr),
            prefix,
        };
        let base = u32::from(addr) & pool.mask();
        if base != u32::from(addr) {
            return Err(format!(
                "{addr} has host bits set for /{prefix}: did you mean \"{}/{prefix}\"?",
                Ipv4Addr::from(base)
            ));
        }
        if addr.is_loopback()
            || addr.is_multicast()
            || addr.is_unspecified()
            || u32::from(addr) >= 0xf000_0000
        {
            return Err(format!("{text} is not a unicast network a host can route"));
        }
        Ok(pool)
    }
}

/// A transport protocol of an allowed host port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A service on the host's own addresses that sets may reach (`tcp/22`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub proto: Proto,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto.as_str(), self.port)
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<HostPort, String> {
        let bad = || format!("expected \"tcp/PORT\" or \"udp/PORT\" (PORT 1..65535), not {text:?}");
        let (proto, port) = text.split_once('/').ok_or_else(bad)?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad()),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        Ok(HostPort { proto, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_gives_gateway_sets_and_names() {
        let p: Pool = "198.51.100.0/24".parse().unwrap();
        assert_eq!(p.gateway(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(p.capacity(), 253);
        assert_eq!(p.indices(), 2..=254);
        assert_eq!(p.address(2), Some(Ipv4Addr::new(198, 51, 100, 2)));
        assert_eq!(p.address(254), Some(Ipv4Addr::new(198, 51, 100, 254)));
        assert_eq!(p.address(1), None);
        assert_eq!(p.address(255), None);
        assert_eq!(p.index_of(Ipv4Addr::new(198, 51, 100, 77)), Some(77));
        assert_eq!(p.index_of(Ipv4Addr::new(198, 51, 100, 1)), None);
        assert_eq!(p.index_of(Ipv4Addr::new(198, 51, 101, 7)), None);
        assert_eq!(veth_name(77), "nsj77");
        assert_eq!(veth_index("nsj77"), Some(77));
        for bad in ["nsj", "nsj07", "nsjx", "eth0", "nsj7a"] {
            assert_eq!(veth_index(bad), None, "{bad}");
        }
        assert_eq!(p.to_string(), "198.51.100.0/24");
    }

    #[test]
    fn the_default_pool_holds_ten_thousand_sets() {
        let p: Pool = crate::policy::DEFAULT_POOL.parse().unwrap();
        assert!(p.capacity() >= 10_000);
        assert!(veth_name(*p.indices().end()).len() < 16);
        let big: Pool = "10.0.0.0/8".parse().unwrap();
        assert!(veth_name(*big.indices().end()).len() < 16, "IFNAMSIZ");
    }

    #[test]
    fn bad_pools_say_why() {
        for (text, why) in [
            ("10.1.2.3/16", "did you mean \"10.1.0.0/16\""),
            ("10.0.0.0", "expected an IPv4 network"),
            ("10.0.0.0/31", "prefix length"),
            ("10.0.0.0/4", "prefix length"),
            ("fd00::/64", "not an IPv4 address"),
            ("127.0.0.0/8", "not a unicast network"),
            ("224.0.0.0/8", "not a unicast network"),
        ] {
            let err = text.parse::<Pool>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn overlap_is_symmetric_in_size() {
        let p: Pool = "10.213.0.0/16".parse().unwrap();
        assert!(p.overlaps(Ipv4Addr::new(10, 0, 0, 0), 8));
        assert!(p.overlaps(Ipv4Addr::new(10, 213, 7, 0), 24));
        assert!(!p.overlaps(Ipv4Addr::new(10, 214, 0, 0), 16));
        assert!(p.overlaps(Ipv4Addr::new(0, 0, 0, 0), 0));
    }

    #[test]
    fn host_ports_parse() {
        assert_eq!(
            "tcp/22".parse::<HostPort>().unwrap(),
            HostPort {
                proto: Proto::Tcp,
                port: 22
            }
        );
        assert_eq!(
            "udp/123".parse::<HostPort>().unwrap().to_string(),
            "udp/123"
        );
        for bad in ["tcp/0", "tcp/65536", "sctp/1", "tcp", "tcp/+1", "tcp/22/1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }
}
