//! Key Vault: vaults as ARM resources (`arm`, under `/subscriptions/…`), and the Key Vault REST
//! data plane (`data`) served to requests whose Host is `NAME.vault.<kite domain>`, with its own
//! error type (`error`). Secret values are sealed at rest by the store.

pub mod arm;
pub mod data;
pub mod error;
pub mod service;

use anyhow::{bail, Result};

/// Where vaults live: `https://NAME.<suffix><port>/`, e.g. `https://azure-vote.vault.localhost:8443/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultDomain {
    /// `vault.<kite domain>`.
    pub suffix: String,
    /// `:PORT` when the public URL names one, else empty.
    pub port: String,
}

impl VaultDomain {
    /// `vault.<dns_domain>`; without one, the public URL's host when it is a DNS name, else
    /// `localhost` (an IP has no subdomains, and `*.localhost` is loopback by definition).
    pub fn new(public_url: &str, dns_domain: Option<&str>) -> Result<VaultDomain> {
        let url = url::Url::parse(public_url).map_err(|e| anyhow::anyhow!("the public URL '{public_url}' does not parse: {e}"))?;
        let domain = match (dns_domain, url.host()) {
            (Some(d), _) => d.trim_end_matches('.').to_ascii_lowercase(),
            (None, Some(url::Host::Domain(d))) => d.to_ascii_lowercase(),
            _ => "localhost".to_string(),
        };
        if domain.is_empty() || !domain.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
            bail!("'{domain}' is not a DNS domain for vaults (--dns-domain): give labels of letters, digits and hyphens, e.g. kite.example.com");
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(VaultDomain { suffix: format!("vault.{domain}"), port })
    }

    /// `properties.vaultUri`.
    pub fn vault_uri(&self, name: &str) -> String {
        format!("https://{}.{}{}/", name.to_ascii_lowercase(), self.suffix, self.port)
    }

    /// The resource the data plane's challenge names and its tokens must be for (no trailing slash,
    /// so the SDK's check that the vault's host ends with `.` + this host passes).
    pub fn resource(&self) -> String {
        format!("https://{}{}", self.suffix, self.port)
    }

    /// The wildcard the TLS certificate must cover.
    pub fn tls_name(&self) -> String {
        format!("*.{}", self.suffix)
    }

    /// The vault a request's Host header names, if it is one of ours (`NAME.<suffix>[:port]`).
    pub fn vault_of_host(&self, host: &str) -> Option<String> {
        let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        let name = host.to_ascii_lowercase().strip_suffix(&format!(".{}", self.suffix))?.to_string();
        (!name.is_empty() && !name.contains('.')).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_domain_follows_the_public_url_or_the_given_domain() {
        let ip = VaultDomain::new("https://127.0.0.1:8443", None).unwrap();
        assert_eq!(ip.vault_uri("Azure-Vote"), "https://azure-vote.vault.localhost:8443/");
        assert_eq!(ip.resource(), "https://vault.localhost:8443");
        assert_eq!(ip.tls_name(), "*.vault.localhost");
        let named = VaultDomain::new("https://kite.example.com", None).unwrap();
        assert_eq!(named.vault_uri("kv"), "https://kv.vault.kite.example.com/");
        assert_eq!(VaultDomain::new("https://10.0.0.1", Some("corp.test")).unwrap().suffix, "vault.corp.test");
        assert!(VaultDomain::new("https://10.0.0.1", Some("bad domain")).is_err());
        assert_eq!(ip.vault_of_host("azure-vote.vault.localhost:8443").as_deref(), Some("azure-vote"));
        assert_eq!(ip.vault_of_host("AZURE-VOTE.VAULT.LOCALHOST").as_deref(), Some("azure-vote"));
        assert_eq!(ip.vault_of_host("vault.localhost:8443"), None);
        assert_eq!(ip.vault_of_host("a.b.vault.localhost"), None);
        assert_eq!(ip.vault_of_host("127.0.0.1:8443"), None);
    }
}
