//! Trusted proxies: a list of addresses and CIDR blocks, and a tiny CIDR matcher.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use super::error::ParseCidrError;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`), or a single
/// address (`127.0.0.1`, `::1`) when written without a prefix.
///
/// ```
/// use tower_adaptive_throttle::http::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with the first `prefix` bits significant.
    ///
    /// # Errors
    ///
    /// [`ParseCidrError`] when `prefix` is longer than the address (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ParseCidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(ParseCidrError::prefix_too_long(prefix, max));
        }
        Ok(Self {
            addr: mask(canonical(addr), prefix),
            prefix,
        })
    }

    /// The network that holds only `addr`.
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match the
    /// IPv4 networks they map to.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    /// Parses `ADDR` or `ADDR/PREFIX`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once('/') {
            None => s
                .parse::<IpAddr>()
                .map(Self::host)
                .map_err(|_| ParseCidrError::invalid(s)),
            Some((addr, prefix)) => {
                let addr = addr
                    .parse::<IpAddr>()
                    .map_err(|_| ParseCidrError::invalid(s))?;
                let prefix = prefix
                    .parse::<u8>()
                    .map_err(|_| ParseCidrError::invalid(s))?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Self {
        Self::host(addr)
    }
}

/// The proxies whose forwarding headers are believed: a list of [`Cidr`]s. Cheap to clone.
///
/// Only a request whose *peer* (the socket address) is in this list has its `Forwarded` or
/// `X-Forwarded-For` header read, and the header is walked from the right, skipping hops that are
/// themselves trusted, so a client cannot choose its own key by sending the header itself.
///
/// ```
/// use tower_adaptive_throttle::http::TrustedProxies;
///
/// let proxies = TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])?;
/// assert!(proxies.contains("10.9.8.7".parse()?));
/// assert!(!proxies.contains("203.0.113.9".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Arc<[Cidr]>,
}

impl TrustedProxies {
    /// No trusted proxy: forwarding headers are never read.
    pub fn none() -> Self {
        Self::default()
    }

    /// The given networks.
    pub fn new(nets: impl IntoIterator<Item = Cidr>) -> Self {
        Self {
            nets: nets.into_iter().collect(),
        }
    }

    /// Parses each of `nets` as `ADDR` or `ADDR/PREFIX`.
    ///
    /// # Errors
    ///
    /// The first [`ParseCidrError`]: an entry that is not an address, or whose prefix is too long.
    pub fn parse<I, S>(nets: I) -> Result<Self, ParseCidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = nets
            .into_iter()
            .map(|s| s.as_ref().parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(nets))
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The networks.
    pub fn networks(&self) -> &[Cidr] {
        &self.nets
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses become IPv4 (a dual-stack listener reports IPv4 peers that way).
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with all but the first `prefix` bits cleared (`prefix` clamped to the address length).
pub(crate) fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let p = u32::from(prefix.min(32));
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let p = u32::from(prefix.min(128));
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matches_its_own_network_only() {
        let net: Cidr = "192.168.4.0/22".parse().unwrap();
        assert!(net.contains(ip("192.168.4.1")));
        assert!(net.contains(ip("192.168.7.255")));
        assert!(!net.contains(ip("192.168.8.0")));
        assert!(!net.contains(ip("::1")), "families never match");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn zero_prefix_matches_the_whole_family() {
        let all4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("::")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("ffff::1")));
    }

    #[test]
    fn bare_address_is_a_host_network() {
        let host: Cidr = " 10.0.0.1 ".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("10.0.0.1")));
        assert!(!host.contains(ip("10.0.0.2")));
    }

    #[test]
    fn mapped_ipv6_peers_match_ipv4_networks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("::ffff:10.1.1.1")));
    }

    #[test]
    fn malformed_cidrs_are_errors_naming_the_input() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        let err = TrustedProxies::parse(["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
