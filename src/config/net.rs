//! Small value types of the configuration that are written as strings in TOML: source
//! address allowlists ([`Cidr`]), the RTP port range ([`PortRange`]) and the callback number
//! pattern ([`Pattern`]). Each parses with `FromStr`, prints back in the same form, and
//! (de)serializes through those, so `check-config` shows exactly what was read.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

/// Why a string value of the configuration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The address part of a CIDR is not an IP address.
    #[error("invalid CIDR {0:?}: expected an IP address with an optional /prefix")]
    CidrAddress(String),
    /// The prefix length is not a number or longer than the address.
    #[error("invalid CIDR {text:?}: prefix length must be 0 to {max}")]
    CidrPrefix {
        /// The CIDR as written.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits below the prefix are set, which usually means a typo in the network address.
    #[error("invalid CIDR {text:?}: host bits are set (did you mean {suggestion}?)")]
    CidrHostBits {
        /// The CIDR as written.
        text: String,
        /// The same prefix with the host bits cleared.
        suggestion: String,
    },
    /// Not of the form `START-END` with two port numbers.
    #[error("invalid port range {0:?}: expected \"START-END\", e.g. \"20000-29999\"")]
    PortSyntax(String),
    /// RTP must start on an even port (RFC 3550 §11: RTP even, RTCP the odd port above).
    #[error("invalid port range {0:?}: the first port must be even (RTP uses even ports)")]
    PortOdd(String),
    /// The range is empty, reversed, or starts at port 0.
    #[error("invalid port range {0:?}: need 0 < START < END")]
    PortOrder(String),
    /// The regular expression does not compile.
    #[error("invalid regular expression {text:?}: {reason}")]
    Regex {
        /// The pattern as written.
        text: String,
        /// The regex crate's explanation, on one line.
        reason: String,
    },
}

/// An IPv4 or IPv6 network such as `127.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address (host bits are zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// Number of leading bits that must match.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| ValueError::CidrAddress(text.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| ValueError::CidrPrefix {
                    text: text.to_owned(),
                    max,
                })?,
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        if network != addr {
            return Err(ValueError::CidrHostBits {
                text: text.to_owned(),
                suggestion: format!("{network}/{prefix}"),
            });
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The UDP ports RTP may use, `START-END` inclusive, START even.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// A range from `start` to `end` inclusive; `start` must be even and below `end`.
    pub fn new(start: u16, end: u16) -> Result<Self, ValueError> {
        format!("{start}-{end}").parse()
    }

    /// First port (even).
    pub fn start(&self) -> u16 {
        self.start
    }

    /// Last port (inclusive).
    pub fn end(&self) -> u16 {
        self.end
    }

    /// The even ports of the range: each carries one RTP stream (its odd neighbour is left
    /// for RTCP).
    pub fn rtp_ports(&self) -> impl Iterator<Item = u16> + use<> {
        (self.start..=self.end).step_by(2)
    }
}

impl FromStr for PortRange {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let syntax = || ValueError::PortSyntax(text.to_owned());
        let (start, end) = text.split_once('-').ok_or_else(syntax)?;
        let start: u16 = start.trim().parse().map_err(|_| syntax())?;
        let end: u16 = end.trim().parse().map_err(|_| syntax())?;
        if start == 0 || start >= end {
            return Err(ValueError::PortOrder(text.to_owned()));
        }
        if !start.is_multiple_of(2) {
            return Err(ValueError::PortOdd(text.to_owned()));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A compiled regular expression that remembers its source text.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Whether the whole rule matches `text` (anchor the pattern with `^…$` to require a
    /// full match, as the default does).
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl FromStr for Pattern {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        regex::Regex::new(text).map(Self).map_err(|e| {
            // The regex crate explains syntax errors over several lines with a caret
            // diagram; the last line is the reason, which is what a `key: reason` line needs.
            let message = e.to_string();
            let reason = message
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("does not compile")
                .trim_start_matches("error: ")
                .to_owned();
            ValueError::Regex {
                text: text.to_owned(),
                reason,
            }
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serde through `Display`/`FromStr`, so the TOML form is the human form.
macro_rules! string_serde {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

string_serde!(Cidr, PortRange, Pattern);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_contains() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains(ip("127.0.0.1")));
        assert!(lo.contains(ip("127.255.255.255")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped IPv6");
        assert!(!lo.contains(ip("::1")));

        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));

        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("203.0.113.9")));
        assert!(!any.contains(ip("2001:db8::1")));

        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn cidr_rejects_bad_input() {
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(ValueError::CidrPrefix {
                text: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(ValueError::CidrAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<Cidr>(),
            Err(ValueError::CidrPrefix { .. })
        ));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap_err().to_string(),
            "invalid CIDR \"10.1.2.3/8\": host bits are set (did you mean 10.0.0.0/8?)"
        );
    }

    #[test]
    fn port_range() {
        let r: PortRange = "20000-29999".parse().unwrap();
        assert_eq!((r.start(), r.end()), (20000, 29999));
        assert_eq!(r.to_string(), "20000-29999");
        assert_eq!(r.rtp_ports().count(), 5000);
        assert_eq!(r.rtp_ports().last(), Some(29998));
        assert_eq!(
            "20001-29999".parse::<PortRange>(),
            Err(ValueError::PortOdd("20001-29999".into()))
        );
        assert_eq!(
            "30000-20000".parse::<PortRange>(),
            Err(ValueError::PortOrder("30000-20000".into()))
        );
        assert_eq!(
            "20000".parse::<PortRange>(),
            Err(ValueError::PortSyntax("20000".into()))
        );
        assert!(matches!(
            PortRange::new(0, 10),
            Err(ValueError::PortOrder(_))
        ));
        assert!("20000-70000".parse::<PortRange>().is_err());
    }

    #[test]
    fn pattern() {
        let p: Pattern = r"^\+?[0-9]{6,15}$".parse().unwrap();
        assert!(p.is_match("+15550001111"));
        assert!(!p.is_match("12345"));
        assert!(!p.is_match("555-0001"));
        // \d needs the unicode-perl feature of the regex crate; people will write it.
        let d: Pattern = r"^\d+$".parse().unwrap();
        assert!(d.is_match("123"));
        let err = "^[0-9".parse::<Pattern>().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid regular expression \"^[0-9\": "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}
