//! Which engine endpoints a pool may be told to connect to.
//!
//! Adding a host makes the server open a connection to the endpoint it is given. Left
//! open, that lets anyone with the admin token probe the server's network (a cloud
//! metadata service, a Docker socket on loopback, a file on disk) and read the answer
//! from the error text. An [`EndpointPolicy`] decides, from the endpoint's text alone,
//! whether the pool may connect there at all.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// IPv4 addresses of cloud metadata services outside 169.254.0.0/16.
const METADATA_V4: [Ipv4Addr; 1] = [
    // Alibaba Cloud.
    Ipv4Addr::new(100, 100, 100, 200),
];

/// IPv6 addresses of cloud metadata services outside fe80::/10.
const METADATA_V6: [Ipv6Addr; 1] = [
    // AWS (IMDS over IPv6).
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
];

/// Host names of cloud metadata services (compared without case or a trailing dot).
const METADATA_NAMES: [&str; 6] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

/// Which engine endpoints hosts may have.
///
/// An endpoint passes when `allow` is empty or one of its patterns matches it, and,
/// with `deny_link_local`, it does not name a link-local or cloud metadata address:
/// 169.254.0.0/16, fe80::/10, 100.100.100.200, fd00:ec2::254, those IPv4 addresses
/// inside IPv6 (`::ffff:169.254.169.254`, `64:ff9b::a9fe:a9fe`), in any form an
/// address resolver reads (`0xa9fea9fe`, `2852039166`, `169.254.43518`), and the names
/// `metadata`, `metadata.google.internal`, `metadata.goog`, `instance-data`,
/// `instance-data.ec2.internal` and `metadata.tencentyun.com`.
///
/// Only the endpoint's text is judged: nothing is resolved or connected to, so a name
/// that resolves to a denied address passes the link-local rule; an `allow` list is
/// what keeps such names out.
///
/// In a pattern, `*` stands for any run of characters within one part of the
/// endpoint: it never crosses `/`, `:`, `@`, `?` or `#`. So `tcp://10.0.*:2376` allows
/// `tcp://10.0.3.7:2376` but not `tcp://10.0.3.7:80/x:2376`, and
/// `unix:///var/run/*.sock` allows sockets in `/var/run` only. An endpoint with a `.`
/// or `..` path segment never matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointPolicy {
    /// Patterns of the endpoints allowed (`unix:///var/run/docker.sock`,
    /// `tcp://10.0.*:2376`, `sim://*`); empty allows every endpoint.
    pub allow: Vec<String>,
    /// Refuse link-local and cloud metadata addresses, even when a pattern allows them.
    pub deny_link_local: bool,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        EndpointPolicy {
            allow: Vec::new(),
            deny_link_local: true,
        }
    }
}

impl EndpointPolicy {
    /// `Ok` when hosts may have `endpoint`; else [`Error::Invalid`] for `endpoint`,
    /// whose message says only that the policy refuses it, never why: it must not tell
    /// whether anything is there.
    pub fn check(&self, endpoint: &str) -> Result<()> {
        let listed = self.allow.is_empty()
            || !has_dot_segment(endpoint) && self.allow.iter().any(|pattern| matches(pattern, endpoint));
        let denied = self.deny_link_local && host_of(endpoint).is_some_and(is_link_local);
        if listed && !denied {
            return Ok(());
        }
        Err(Error::invalid(
            "endpoint",
            "this endpoint is not allowed by the server's endpoint policy; an operator can \
             change it with the endpoint_allow and endpoint_deny_link_local settings",
        ))
    }
}

/// Characters a `*` does not match: the delimiters between an endpoint's parts.
fn is_delimiter(c: u8) -> bool {
    matches!(c, b'/' | b':' | b'@' | b'?' | b'#')
}

/// Whether `pattern` matches all of `text`: one pass over `text`, keeping which
/// prefixes of `pattern` match the text read so far (no backtracking, so a long
/// endpoint costs length × pattern length at most).
fn matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let mut matched: Vec<bool> = std::iter::once(true)
        .chain(pattern.iter().scan(true, |all_stars, &c| {
            *all_stars &= c == b'*';
            Some(*all_stars)
        }))
        .collect();
    for &c in text.as_bytes() {
        let mut next = vec![false; matched.len()];
        for (j, &p) in pattern.iter().enumerate() {
            next[j + 1] = if p == b'*' {
                next[j] || matched[j + 1] && !is_delimiter(c)
            } else {
                matched[j] && p == c
            };
        }
        matched = next;
    }
    matched[pattern.len()]
}

/// Whether the path of `endpoint` has a `.` or `..` segment.
fn has_dot_segment(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    rest.split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
}

/// The host named by an endpoint with an authority (`tcp://`, `http://`, ...); `None`
/// for a socket path.
fn host_of(endpoint: &str) -> Option<&str> {
    let (scheme, rest) = endpoint.split_once("://")?;
    if ["unix", "npipe"].contains(&scheme) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    Some(host)
}

/// Whether `host` (a name or an address literal) is link-local or a cloud metadata
/// service.
fn is_link_local(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let unzoned = host.split('%').next().unwrap_or_default();
    if let Ok(v6) = unzoned.parse::<Ipv6Addr>() {
        return is_link_local_v6(v6);
    }
    if let Some(v4) = parse_ipv4_loose(host) {
        return is_link_local_v4(v4);
    }
    METADATA_NAMES.iter().any(|name| host.eq_ignore_ascii_case(name))
}

fn is_link_local_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || METADATA_V4.contains(&ip)
}

fn is_link_local_v6(ip: Ipv6Addr) -> bool {
    let [first, ..] = ip.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and NAT64
    // (64:ff9b::a.b.c.d) all reach the IPv4 address.
    let [.., a, b, c, d] = ip.octets();
    let embedded = Ipv4Addr::new(a, b, c, d);
    let carries_v4 = ip.to_ipv4().is_some() || ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    first & 0xffc0 == 0xfe80 || METADATA_V6.contains(&ip) || carries_v4 && is_link_local_v4(embedded)
}

/// An IPv4 address in any form `inet_aton` (and so most resolvers) reads: one to four
/// parts, each decimal, octal (`0` first) or hexadecimal (`0x` first), the last part
/// filling the bytes left (`169.254.43518`, `2852039166`, `0xa9.0376.43518`).
fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let values = parts
        .iter()
        .map(|p| parse_number(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = values.split_last()?;
    let last_bits = 8 * (4 - leading.len() as u32);
    if leading.iter().any(|&v| v > 0xff) || *last >= 1u64 << last_bits {
        return None;
    }
    let head = leading
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &v)| acc | v << (24 - 8 * i as u32));
    u32::try_from(head | last).ok().map(Ipv4Addr::from)
}

/// One part of a loose IPv4 address.
fn parse_number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() && radix != 16 || digits.len() > 12 {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> EndpointPolicy {
        EndpointPolicy {
            allow: allow.iter().map(|p| p.to_string()).collect(),
            ..EndpointPolicy::default()
        }
    }

    #[test]
    fn the_default_allows_all_but_link_local_and_metadata() {
        let open = EndpointPolicy::default();
        let table = [
            ("unix:///var/run/docker.sock", true),
            ("tcp://10.0.0.1:2375", true),
            ("tcp://[::1]:2375", true),
            ("tcp://127.0.0.1:2375", true),
            ("https://docker.example.com:2376", true),
            ("sim://lab", true),
            ("tcp://169.254.169.254", false),
            ("tcp://169.254.169.254:80", false),
            ("http://169.254.0.1:2375/x", false),
            ("tcp://user:pw@169.254.169.254:80", false),
            ("tcp://[fe80::1]:2375", false),
            ("tcp://[fe80::1%25eth0]:2375", false),
            ("tcp://[febf::1]:2375", false),
            ("tcp://[fec0::1]:2375", true),
            ("tcp://[fd00:ec2::254]:80", false),
            ("tcp://[::ffff:169.254.169.254]:80", false),
            ("tcp://[::ffff:a9fe:a9fe]:80", false),
            ("tcp://[64:ff9b::169.254.169.254]:80", false),
            ("tcp://100.100.100.200:80", false),
            ("tcp://metadata.google.internal:80", false),
            ("tcp://METADATA.google.internal.:80", false),
            ("tcp://metadata:80", false),
            ("tcp://instance-data.ec2.internal", false),
            ("tcp://metadata.example.com:80", true),
            // Other spellings of 169.254.169.254 that resolvers accept.
            ("tcp://2852039166:80", false),
            ("tcp://0xa9fea9fe:80", false),
            ("tcp://169.254.43518:80", false),
            ("tcp://0251.0376.0251.0376:80", false),
            ("tcp://0xa9.254.169.254:80", false),
            ("tcp://169.254.169.254.:80", false),
            ("tcp://169.255.169.254:80", true),
        ];
        for (endpoint, allowed) in table {
            assert_eq!(open.check(endpoint).is_ok(), allowed, "{endpoint}");
        }
    }

    #[test]
    fn a_list_allows_only_what_it_matches() {
        let list = policy(&[
            "unix:///var/run/docker.sock",
            "unix:///run/engines/*.sock",
            "tcp://10.0.*:2376",
            "sim://*",
        ]);
        let table = [
            ("unix:///var/run/docker.sock", true),
            ("unix:///var/run/docker.sock2", false),
            ("unix:///etc/shadow", false),
            ("unix:///run/engines/a.sock", true),
            ("unix:///run/engines/x/a.sock", false),
            ("unix:///run/engines/../../etc/a.sock", false),
            ("unix:///run/engines/..sock", true),
            ("tcp://10.0.3.7:2376", true),
            ("tcp://10.0.3.7:2375", false),
            ("tcp://10.0.3.7:80/x:2376", false),
            ("tcp://10.0.3.7:2376/", false),
            ("tcp://evil@10.0.3.7:2376", false),
            ("tcp://10.1.3.7:2376", false),
            ("tcp://[::1]:2375", false),
            ("sim://lab", true),
            ("sim://", true),
            ("sim://a/b", false),
            ("", false),
        ];
        for (endpoint, allowed) in table {
            assert_eq!(list.check(endpoint).is_ok(), allowed, "{endpoint}");
        }
    }

    #[test]
    fn link_local_stays_denied_unless_turned_off() {
        let mut list = policy(&["tcp://169.254.*:2375"]);
        assert!(list.check("tcp://169.254.1.1:2375").is_err());
        list.deny_link_local = false;
        assert!(list.check("tcp://169.254.1.1:2375").is_ok());
        let open = EndpointPolicy {
            deny_link_local: false,
            ..EndpointPolicy::default()
        };
        assert!(open.check("tcp://169.254.169.254:80").is_ok());
    }

    #[test]
    fn the_refusal_says_nothing_about_the_endpoint() {
        let list = policy(&["sim://*"]);
        let refused = |e: &str| list.check(e).expect_err(e).to_string();
        let texts = [
            refused("unix:///etc/shadow"),
            refused("unix:///nonexistent"),
            refused("tcp://169.254.169.254:80"),
            refused("tcp://[::1]:2375"),
        ];
        assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
        assert!(texts[0].contains("endpoint_allow"), "{}", texts[0]);
        let err = list.check("unix:///etc/shadow").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "endpoint",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn patterns_match_like_globs_within_a_part() {
        let table = [
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "ab/c", false),
            ("*", "", true),
            ("*.sock", "x.y.sock", true),
            ("a*b*c", "a1b2c", true),
            ("a*b*c", "a1b2", false),
            ("abc", "abcd", false),
            ("tcp://*:*", "tcp://h:1", true),
            ("tcp://*:*", "tcp://h:1:2", false),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn loose_ipv4_reads_like_inet_aton() {
        let table = [
            ("1.2.3.4", Some([1, 2, 3, 4])),
            ("16909060", Some([1, 2, 3, 4])),
            ("1.131844", Some([1, 2, 3, 4])),
            ("1.2.772", Some([1, 2, 3, 4])),
            ("0x1.0x2.03.4", Some([1, 2, 3, 4])),
            ("256.1.1.1", None),
            ("1.2.3.4.5", None),
            ("1..3.4", None),
            ("4294967296", None),
            ("example.com", None),
            ("09.1.1.1", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_ipv4_loose(text), expected.map(Ipv4Addr::from), "{text}");
        }
    }
}
