//! SSRF policy for outbound requests made on behalf of a model or a tenant (API.md §9.2 item 6).
//!
//! Usage: [`SsrfPolicy::resolve_checked`] validates a URL, resolves its host **once**, checks
//! every resolved address and returns the address to connect to. Callers must connect to that
//! exact address (e.g. `reqwest::ClientBuilder::resolve(host, addr)`), must not use a proxy,
//! and must handle redirects themselves, calling `resolve_checked` again for each target.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

/// Every refusal message starts with this (followed by `": <reason>"`).
pub const BLOCKED_PREFIX: &str = "blocked by SSRF policy";

/// Ports allowed without an allowlist entry naming the port.
pub const STANDARD_PORTS: [u16; 4] = [80, 443, 8080, 8443];

fn blocked(reason: impl fmt::Display) -> String {
    format!("{BLOCKED_PREFIX}: {reason}")
}

/// Why `ip` is not a public unicast address, or `None` if it is one.
///
/// Refused: `0.0.0.0/8` (incl. unspecified), loopback, RFC 1918, CGNAT `100.64.0.0/10`,
/// link-local (`169.254.0.0/16`, `fe80::/10`), IETF protocol assignments `192.0.0.0/24`,
/// documentation (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
/// `3fff::/20`), benchmarking `198.18.0.0/15`, multicast, reserved `240.0.0.0/4` incl.
/// broadcast, RFC 4193 `fc00::/7`, site-local `fec0::/10`, discard `100::/64`, NAT64 local-use
/// `64:ff9b:1::/48`; and IPv6 forms embedding a refused IPv4 address: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, all refused as deprecated), NAT64
/// `64:ff9b::/96` and 6to4 `2002::/16`.
pub fn classify_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, _, _) => "\"this network\" 0.0.0.0/8",
        (10, _, _) => "private (RFC 1918)",
        (100, 64..=127, _) => "shared address space / CGNAT 100.64.0.0/10",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private (RFC 1918)",
        (192, 168, _) => "private (RFC 1918)",
        (192, 0, 0) => "IETF protocol assignments 192.0.0.0/24",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking 198.18.0.0/15",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved 240.0.0.0/4",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible ::a.b.c.d (deprecated, RFC 4291): never a legitimate destination.
        return classify_v4(embedded_v4(s[6], s[7])).or(Some("IPv4-compatible IPv6 (deprecated)"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the gateway connects to the embedded IPv4 address.
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("NAT64 local-use 64:ff9b:1::/48");
    }
    if s[0] == 0x2002 {
        // 6to4: the relay connects to the embedded IPv4 address.
        return classify_v4(embedded_v4(s[1], s[2]));
    }
    Some(match s[0] {
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] & 0xf000 == 0 => "documentation",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only 100::/64",
        x if x & 0xfe00 == 0xfc00 => "unique local (RFC 4193)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        x if x & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Host part of an allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowHost {
    /// An exact host name (lower-case, IDNA-normalized, no trailing dot).
    Name(String),
    /// `*.example.com`: any subdomain of `example.com` (not `example.com` itself).
    Suffix(String),
    /// An address (`10.0.0.5`, `[::1]`) or network (`10.0.0.0/8`, `[fd00::/8]`).
    Net(IpNet),
}

/// One `OPENLOOP_SSRF_ALLOWLIST` entry: `host`, `host:port`, `*.domain[:port]`, `ip`,
/// `ip:port`, `[v6]`, `[v6]:port`, `cidr`, `cidr:port` (IPv4) or `[v6cidr]:port`.
///
/// An entry lifts the private-address rule for the hosts/addresses it matches. An entry with a
/// port matches only that port and additionally allows it when it is not a standard port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub host: AllowHost,
    pub port: Option<u16>,
}

impl AllowEntry {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let s = entry.trim();
        let invalid = |why: &str| format!("invalid SSRF allowlist entry {entry:?}: {why}");
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.contains("://") {
            return Err(invalid("expected host, host:port, IP or CIDR (no scheme)"));
        }

        let (host_part, port_part) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(|| invalid("missing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| invalid("expected ':port' after ']'"))?),
            };
            (inner, port)
        } else if s.parse::<IpNet>().is_ok() || s.parse::<IpAddr>().is_ok() {
            (s, None)
        } else if let Some((h, p)) = s.rsplit_once(':') {
            if h.contains(':') {
                return Err(invalid("IPv6 addresses must be bracketed: [::1]:8080"));
            }
            (h, Some(p))
        } else {
            (s, None)
        };

        let port = match port_part {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("bad port")),
                Ok(p) => Some(p),
            },
        };

        let host = if let Ok(net) = host_part.parse::<IpNet>() {
            AllowHost::Net(net)
        } else if let Ok(ip) = host_part.parse::<IpAddr>() {
            AllowHost::Net(IpNet::from(canonical(ip)))
        } else if let Some(domain) = host_part.strip_prefix("*.") {
            match parse_host(domain).map_err(|e| invalid(&e))? {
                Host::Domain(d) => AllowHost::Suffix(d),
                _ => return Err(invalid("a wildcard needs a domain name")),
            }
        } else {
            match parse_host(host_part).map_err(|e| invalid(&e))? {
                Host::Domain(d) => AllowHost::Name(d),
                Host::Ipv4(ip) => AllowHost::Net(IpNet::from(IpAddr::V4(ip))),
                Host::Ipv6(ip) => AllowHost::Net(IpNet::from(canonical(IpAddr::V6(ip)))),
            }
        };
        Ok(Self { host, port })
    }

    /// Does the host part match a request to host name `name` (if any) at address `ip`
    /// (if known)?
    fn host_matches(&self, name: Option<&str>, ip: Option<IpAddr>) -> bool {
        match &self.host {
            AllowHost::Name(n) => name.is_some_and(|h| trim_dot(h) == n),
            AllowHost::Suffix(d) => name.is_some_and(|h| trim_dot(h).strip_suffix(d.as_str()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))),
            AllowHost::Net(net) => ip.is_some_and(|ip| net.contains(&canonical(ip))),
        }
    }

    fn matches(&self, name: Option<&str>, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => true,
        };
        port_ok && self.host_matches(name, ip)
    }
}

impl FromStr for AllowEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = matches!(self.host, AllowHost::Net(IpNet::V6(_)));
        let host = match &self.host {
            AllowHost::Name(n) => n.clone(),
            AllowHost::Suffix(d) => format!("*.{d}"),
            AllowHost::Net(net) if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
            AllowHost::Net(net) => net.to_string(),
        };
        match (self.port, v6) {
            (Some(p), true) => write!(f, "[{host}]:{p}"),
            (Some(p), false) => write!(f, "{host}:{p}"),
            (None, _) => f.write_str(&host),
        }
    }
}

fn parse_host(s: &str) -> Result<Host, String> {
    let host = Host::parse(trim_dot(s)).map_err(|e| format!("bad host: {e}"))?;
    Ok(match host {
        Host::Domain(d) if d.is_empty() => return Err("empty host".into()),
        Host::Domain(d) => Host::Domain(d.to_ascii_lowercase()),
        other => other,
    })
}

fn trim_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Where outbound requests may go. `Default` is the strict policy (no private addresses, no
/// allowlist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// `OPENLOOP_SSRF_ALLOW_PRIVATE`: lift the private-address rule everywhere (not the port
    /// rule).
    pub allow_private: bool,
    /// `OPENLOOP_SSRF_ALLOWLIST`.
    pub allowlist: Vec<AllowEntry>,
}

impl SsrfPolicy {
    /// Build from configuration strings (see [`AllowEntry`] for the entry syntax).
    pub fn new<S: AsRef<str>>(allow_private: bool, allowlist: &[S]) -> Result<Self, String> {
        let allowlist = allowlist.iter().map(|e| AllowEntry::parse(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(Self { allow_private, allowlist })
    }

    /// Checks that need no DNS: scheme, host presence, port (as far as it can be decided before
    /// resolution) and, for IP-literal hosts, the address. Errors start with
    /// [`BLOCKED_PREFIX`].
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(blocked(format_args!("scheme \"{other}\" is not allowed (only http and https)"))),
        }
        let port = url.port_or_known_default().ok_or_else(|| blocked("URL has no port"))?;
        match url.host() {
            None => Err(blocked("URL has no host")),
            Some(Host::Ipv4(ip)) => self.check_addr(None, IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => self.check_addr(None, IpAddr::V6(ip), port),
            Some(Host::Domain(name)) => {
                if trim_dot(name).is_empty() {
                    return Err(blocked("URL has no host"));
                }
                // Address-based entries can only be decided after resolution.
                let maybe = STANDARD_PORTS.contains(&port)
                    || self.allowlist.iter().any(|e| e.port == Some(port) && (e.host_matches(Some(name), None) || matches!(e.host, AllowHost::Net(_))));
                if maybe {
                    Ok(())
                } else {
                    Err(port_blocked(port))
                }
            }
        }
    }

    /// Full check of a connection to `ip:port` for host name `name` (`None` for IP-literal
    /// URLs). Errors start with [`BLOCKED_PREFIX`].
    pub fn check_addr(&self, name: Option<&str>, ip: IpAddr, port: u16) -> Result<(), String> {
        let port_ok = STANDARD_PORTS.contains(&port) || self.allowlist.iter().any(|e| e.port == Some(port) && e.host_matches(name, Some(ip)));
        if !port_ok {
            return Err(port_blocked(port));
        }
        if let Some(reason) = classify_ip(ip) {
            let allowed = self.allow_private || self.allowlist.iter().any(|e| e.matches(name, Some(ip), port));
            if !allowed {
                return Err(match name {
                    Some(name) => blocked(format_args!("{name} resolves to {ip}, which is not a public address ({reason})")),
                    None => blocked(format_args!("{ip} is not a public address ({reason})")),
                });
            }
        }
        Ok(())
    }

    /// [`check_url`](Self::check_url), then resolve the host once, check every resolved
    /// address and return the first one, to connect to. Policy refusals start with
    /// [`BLOCKED_PREFIX`]; resolution failures start with `"could not resolve host"`.
    pub async fn resolve_checked(&self, url: &Url) -> Result<SocketAddr, String> {
        let addrs = self.resolve_all_checked(url).await?;
        addrs.first().copied().ok_or_else(|| "could not resolve host: no addresses".to_string())
    }

    /// Like [`resolve_checked`](Self::resolve_checked) but returns every resolved address (all
    /// checked, never empty, in resolver order) so a client can fall back between IPv6 and
    /// IPv4 while still connecting only to checked addresses.
    pub async fn resolve_all_checked(&self, url: &Url) -> Result<Vec<SocketAddr>, String> {
        self.check_url(url)?;
        let port = url.port_or_known_default().ok_or_else(|| blocked("URL has no port"))?;
        let name = match url.host() {
            Some(Host::Ipv4(ip)) => return Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            Some(Host::Ipv6(ip)) => return Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Some(Host::Domain(name)) => name,
            None => return Err(blocked("URL has no host")),
        };
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((trim_dot(name), port))
            .await
            .map_err(|e| format!("could not resolve host {name}: {e}"))?
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|a| seen.insert(*a));
        if addrs.is_empty() {
            return Err(format!("could not resolve host {name}: no addresses"));
        }
        for addr in &addrs {
            self.check_addr(Some(name), addr.ip(), port)?;
        }
        Ok(addrs)
    }
}

fn port_blocked(port: u16) -> String {
    blocked(format_args!("port {port} is not allowed (only 80, 443, 8080 and 8443 unless allow-listed as host:port)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        for s in [
            "example.com",
            "example.com:9000",
            "*.corp.example",
            "*.corp.example:81",
            "10.0.0.0/8",
            "10.0.0.0/8:9000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "fd00::/8",
            "[fd00::/8]:9000",
        ] {
            let e = AllowEntry::parse(s).unwrap();
            let again = AllowEntry::parse(&e.to_string()).unwrap();
            assert_eq!(e, again, "{s}");
        }
        assert_eq!(AllowEntry::parse("EXAMPLE.com.").unwrap().host, AllowHost::Name("example.com".into()));
        assert_eq!(AllowEntry::parse("::1").unwrap().host, AllowHost::Net("::1/128".parse().unwrap()));
    }

    #[test]
    fn bad_entries_rejected() {
        for s in ["", "http://example.com", "example.com:0", "example.com:99999", "example.com:x", "::1:8080x", "[::1", "[::1]8080", "*.1.2.3.4"] {
            assert!(AllowEntry::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn suffix_matches_subdomains_only() {
        let e = AllowEntry::parse("*.example.com").unwrap();
        assert!(e.host_matches(Some("a.example.com"), None));
        assert!(e.host_matches(Some("a.b.example.com."), None));
        assert!(!e.host_matches(Some("example.com"), None));
        assert!(!e.host_matches(Some("badexample.com"), None));
    }
}
