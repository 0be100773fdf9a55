//! Where kite's fetches of external issuers' documents may go. An issuer URL comes from whoever
//! may add a federated credential, so without these rules kite would fetch, for anyone, from its
//! own loopback, the node's metadata service or the private network (SSRF).
//!
//! The URL's host is parsed, never matched as text; IP literals are classified here, and names
//! are resolved by [`VettedResolver`], which hands the connector only addresses the policy allows,
//! so a name that resolves to a public address once and to a private one later (DNS rebinding)
//! is checked at the moment of connecting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Which non-public destinations the operator allows (`kite serve` flags).
#[derive(Clone, Copy, Debug, Default)]
pub struct IssuerAccess {
    /// `--allow-http-issuer`: issuers on this machine (loopback), over http or https (tests, local clusters).
    pub loopback: bool,
    /// `--allow-private-issuer`: issuers on private networks (RFC 1918, IPv6 ULA, CGNAT), https only.
    pub private: bool,
}

/// What kind of network an address belongs to, as far as outbound fetches care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    SharedNat,
    LinkLocal,
    Metadata,
    Unspecified,
    /// Multicast, broadcast, documentation and reserved ranges: nothing an issuer lives on.
    Reserved,
}

impl AddressClass {
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedNat => "carrier-grade NAT",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Reserved => "reserved",
        }
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) => AddressClass::Metadata,
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, b, _) if (16..32).contains(&b) => AddressClass::Private,
        (100, b, _) if (64..128).contains(&b) => AddressClass::SharedNat,
        (169, 254, _) => AddressClass::LinkLocal,
        // IETF protocol assignments, documentation, benchmarking, multicast, reserved, broadcast.
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Reserved,
        (198, b, _) if b == 18 || b == 19 => AddressClass::Reserved,
        (224.., _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    // Addresses that carry an IPv4 address reach that address: mapped (::ffff:0:0/96), NAT64
    // (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return classify_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    match s[0] {
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        _ if ip.is_loopback() => AddressClass::Loopback,
        // AWS's IMDS over IPv6.
        _ if s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => AddressClass::Metadata,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
        0xfc00..=0xfdff | 0xfec0..=0xfeff => AddressClass::Private,
        0xff00.. => AddressClass::Reserved,
        // Documentation (2001:db8::/32) and the rest of ::/8 (IPv4-compatible and reserved).
        0x2001 if s[1] == 0xdb8 => AddressClass::Reserved,
        0..=0xff => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

impl IssuerAccess {
    /// Why kite may not connect to `ip`, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<AddressClass> {
        let class = classify(ip);
        let allowed = match class {
            AddressClass::Public => true,
            AddressClass::Loopback => self.loopback,
            AddressClass::Private | AddressClass::SharedNat => self.private,
            AddressClass::LinkLocal | AddressClass::Metadata | AddressClass::Unspecified | AddressClass::Reserved => false,
        };
        (!allowed).then_some(class)
    }

    /// Checks an issuer or JWKS URL before any connection: https (http only to a loopback host
    /// with `--allow-http-issuer`), no credentials in it, and an IP-literal host the policy allows.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|_| "it is not a URL".to_string())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL with credentials (user@host) is refused".into());
        }
        let host = url.host().ok_or_else(|| "the URL has no host".to_string())?;
        let loopback_host = match &host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.loopback && loopback_host => {}
            "http" if loopback_host => return Err("plain http is refused: only `kite serve --allow-http-issuer` allows it, and only on loopback".into()),
            _ => return Err("only https issuers are allowed".into()),
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(class) = literal.and_then(|ip| self.refusal(ip)) {
            return Err(refused_message(class));
        }
        Ok(url)
    }
}

pub fn refused_message(class: AddressClass) -> String {
    let hint = match class {
        AddressClass::Loopback => " (allowed with `kite serve --allow-http-issuer`)",
        AddressClass::Private | AddressClass::SharedNat => " (allowed with `kite serve --allow-private-issuer`)",
        _ => "",
    };
    format!("its address is {}, which kite does not connect to{hint}", class.describe())
}

/// The error a refused resolution carries through reqwest, found again by [`refused_class`].
#[derive(Debug)]
pub struct RefusedAddress(pub AddressClass);

impl std::fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&refused_message(self.0))
    }
}

impl std::error::Error for RefusedAddress {}

/// The refusal behind a failed request, if the resolver refused every address.
pub fn refused_class(e: &(dyn std::error::Error + 'static)) -> Option<AddressClass> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<RefusedAddress>() {
            return Some(r.0);
        }
        source = s.source();
    }
    None
}

/// Resolves with the system resolver and keeps only addresses the policy allows; the connector
/// sees nothing else.
pub struct VettedResolver(pub IssuerAccess);

impl Resolve for VettedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let access = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = all.into_iter().partition(|a| access.refusal(a.ip()).is_none());
            match (allowed.is_empty(), refused.first()) {
                (true, Some(first)) => {
                    let class = access.refusal(first.ip()).unwrap_or(AddressClass::Reserved);
                    Err(Box::new(RefusedAddress(class)) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn addresses_are_classified_by_range() {
        for (ip, want) in [
            ("8.8.8.8", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("fd12::1", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("100.64.0.1", AddressClass::SharedNat),
            ("100.127.255.255", AddressClass::SharedNat),
            ("100.128.0.1", AddressClass::Public),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("100.100.100.200", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("ff02::1", AddressClass::Reserved),
            // IPv4 inside IPv6 is judged by the IPv4 address it reaches.
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("64:ff9b::a00:1", AddressClass::Private),
            ("2002:a9fe:a9fe::1", AddressClass::Metadata),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn flags_open_only_their_own_class() {
        let none = IssuerAccess::default();
        let all = IssuerAccess { loopback: true, private: true };
        assert_eq!(none.refusal("127.0.0.1".parse().unwrap()), Some(AddressClass::Loopback));
        assert_eq!(none.refusal("10.0.0.1".parse().unwrap()), Some(AddressClass::Private));
        assert_eq!(none.refusal("8.8.8.8".parse().unwrap()), None);
        assert_eq!(all.refusal("127.0.0.1".parse().unwrap()), None);
        assert_eq!(all.refusal("10.0.0.1".parse().unwrap()), None);
        assert_eq!(IssuerAccess { loopback: true, private: false }.refusal("10.0.0.1".parse().unwrap()), Some(AddressClass::Private));
        for never in ["169.254.169.254", "169.254.1.1", "fe80::1", "0.0.0.0", "224.0.0.1"] {
            assert!(all.refusal(never.parse().unwrap()).is_some(), "{never}");
        }
    }

    #[test]
    fn urls_are_judged_by_their_parsed_host() {
        let tests = IssuerAccess { loopback: true, private: false };
        assert!(tests.check_url("http://127.0.0.1:8080").is_ok());
        assert!(tests.check_url("http://localhost:8080/x").is_ok());
        assert!(tests.check_url("http://[::1]:8080").is_ok());
        assert!(tests.check_url("https://issuer.example.com").is_ok());
        // A prefix match would take these for loopback.
        assert!(tests.check_url("http://localhost@127.0.0.1:9").unwrap_err().contains("credentials"));
        assert!(tests.check_url("http://127.0.0.1.evil.com").unwrap_err().contains("https"));
        assert!(tests.check_url("http://127.0.0.1:80@evil.com").is_err());
        let strict = IssuerAccess::default();
        assert!(strict.check_url("http://127.0.0.1:8080").unwrap_err().contains("--allow-http-issuer"));
        assert!(strict.check_url("https://127.0.0.1:8443").unwrap_err().contains("loopback"));
        assert!(strict.check_url("https://169.254.169.254/").unwrap_err().contains("metadata"));
        assert!(strict.check_url("https://[::ffff:10.0.0.1]/").unwrap_err().contains("private"));
        assert!(strict.check_url("ftp://example.com").is_err());
        assert!(strict.check_url("not a url").is_err());
    }
}
