//! A managed cluster's network profile as `az aks create` sends it (seed 002: `--service-cidr`,
//! `--dns-service-ip`, `--docker-bridge-address`, `--pod-cidr`, `--vnet-subnet-id`), with AKS's
//! checks: the DNS service IP inside the service CIDR and neither its network address nor its first
//! address (the `kubernetes` service's); the Docker bridge and pod CIDRs apart from the service CIDR.
//! kite has no virtual networks, so the subnet is kept by ID and its address range is not checked.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An IPv4 range `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    pub fn parse(raw: &str, what: &str) -> Result<Ipv4Cidr> {
        let bad = || Error::InvalidArgument(format!("{what} '{raw}' is not an IPv4 CIDR such as 10.0.0.0/16"));
        let (addr, prefix) = raw.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr { addr, prefix })
    }

    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What kite keeps of `networkProfile` (and the agent pool's subnet), as the caller gave it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_service_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_bridge_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnet_subnet_id: Option<String>,
}

impl NetworkSettings {
    /// AKS's checks, each refusal naming the values given.
    pub fn validate(&self) -> Result<()> {
        let service = self.service_cidr.as_deref().map(|s| Ipv4Cidr::parse(s, "serviceCidr")).transpose()?;
        let dns = match &self.dns_service_ip {
            Some(raw) => Some(raw.trim().parse::<Ipv4Addr>().map_err(|_| Error::InvalidArgument(format!("dnsServiceIP '{raw}' is not an IPv4 address")))?),
            None => None,
        };
        let (service, dns) = match (service, dns) {
            (None, None) => (None, None),
            (Some(s), Some(d)) => (Some(s), Some(d)),
            _ => {
                return Err(Error::InvalidArgument("serviceCidr and dnsServiceIP are given together (--service-cidr with --dns-service-ip), or neither".into()))
            }
        };
        if let (Some(service), Some(dns)) = (service, dns) {
            if service.addr != service.network() {
                return Err(Error::InvalidArgument(format!("serviceCidr '{service}' has host bits set: use {}/{}", service.network(), service.prefix)));
            }
            if !service.contains(dns) {
                return Err(Error::InvalidArgument(format!(
                    "dnsServiceIP {dns} is not within serviceCidr {service}: pick an address inside it, such as the tenth"
                )));
            }
            let network = u32::from(service.network());
            if u32::from(dns) == network || u32::from(dns) == network.wrapping_add(1) {
                return Err(Error::InvalidArgument(format!(
                    "dnsServiceIP {dns} is {} of serviceCidr {service}, which the cluster reserves (the first address is the kubernetes service's); pick another, such as {}",
                    if u32::from(dns) == network { "the network address" } else { "the first address" },
                    Ipv4Addr::from(network.wrapping_add(10))
                )));
            }
        }
        for (raw, what) in [(&self.docker_bridge_cidr, "dockerBridgeCidr"), (&self.pod_cidr, "podCidr")] {
            let Some(raw) = raw else { continue };
            let range = Ipv4Cidr::parse(raw, what)?;
            if let Some(service) = service.filter(|s| s.overlaps(&range)) {
                return Err(Error::InvalidArgument(format!("{what} {range} overlaps serviceCidr {service}: they must not share addresses")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(service: &str, dns: &str) -> NetworkSettings {
        NetworkSettings { service_cidr: Some(service.into()), dns_service_ip: Some(dns.into()), ..Default::default() }
    }

    #[test]
    fn seed_002s_network_flags_are_accepted() {
        let s = NetworkSettings { docker_bridge_cidr: Some("172.17.0.1/16".into()), ..settings("10.2.0.0/24", "10.2.0.10") };
        s.validate().unwrap();
        NetworkSettings::default().validate().unwrap();
    }

    #[test]
    fn the_dns_service_ip_must_be_inside_the_service_cidr_and_not_its_first_address() {
        for (service, dns, says) in [
            ("10.2.0.0/24", "10.3.0.10", "is not within serviceCidr 10.2.0.0/24"),
            ("10.2.0.0/24", "10.2.0.1", "the first address"),
            ("10.2.0.0/24", "10.2.0.0", "the network address"),
            ("10.2.0.5/24", "10.2.0.10", "host bits set: use 10.2.0.0/24"),
            ("10.2.0.0/33", "10.2.0.10", "not an IPv4 CIDR"),
            ("10.2.0.0/24", "10.2.0.300", "not an IPv4 address"),
        ] {
            let e = settings(service, dns).validate().unwrap_err().to_string();
            assert!(e.contains(says), "{service} {dns}: {e}");
        }
        let half = NetworkSettings { service_cidr: Some("10.2.0.0/24".into()), ..Default::default() };
        assert!(half.validate().unwrap_err().to_string().contains("together"));
    }

    #[test]
    fn the_docker_bridge_and_pod_ranges_stay_out_of_the_service_cidr() {
        let s = NetworkSettings { docker_bridge_cidr: Some("10.2.0.128/25".into()), ..settings("10.2.0.0/24", "10.2.0.10") };
        assert!(s.validate().unwrap_err().to_string().contains("dockerBridgeCidr 10.2.0.128/25 overlaps serviceCidr 10.2.0.0/24"));
        let s = NetworkSettings { pod_cidr: Some("10.0.0.0/8".into()), ..settings("10.2.0.0/24", "10.2.0.10") };
        assert!(s.validate().unwrap_err().to_string().contains("podCidr 10.0.0.0/8 overlaps"));
    }
}
