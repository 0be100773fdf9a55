//! The directory and the resource hierarchy: tenant → subscriptions → resource groups → resources,
//! and the principals (service principals, managed identities) that role assignments name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::credential::{CertificateCredential, PasswordCredential};
use crate::scope::{validate_resource_group_name, Scope};
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_id: Uuid,
    pub display_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    pub subscription_id: Uuid,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Set for node resource groups that a cluster owns (`MC_…`).
    #[serde(default)]
    pub managed_by: Option<String>,
}

/// Azure location names are lower-case letters and digits (`westus2`, `japaneast`).
pub fn validate_location(location: &str) -> Result<String> {
    let normalized: String = location.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    if normalized.is_empty() || !normalized.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::InvalidArgument(format!("invalid location '{location}': use a region name such as 'westus2' or 'japaneast'")));
    }
    Ok(normalized)
}

/// ARM's limits on a resource's tags: at most 50, names up to 512 characters without `<>%&\\?/`,
/// values up to 256 characters.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    const MAX_TAGS: usize = 50;
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidArgument(format!("{} tags were given; a resource may have at most {MAX_TAGS}", tags.len())));
    }
    for (name, value) in tags {
        let shown: String = name.chars().take(40).collect();
        if name.is_empty() || name.chars().count() > 512 {
            return Err(Error::InvalidArgument(format!("tag name '{shown}…' has {} characters; use 1 to 512", name.chars().count())));
        }
        if let Some(c) = name.chars().find(|c| "<>%&\\?/".contains(*c) || c.is_control()) {
            return Err(Error::InvalidArgument(format!("tag name '{shown}' contains {c:?}, which tag names may not contain (<, >, %, &, \\, ?, /)")));
        }
        if value.chars().count() > 256 {
            return Err(Error::InvalidArgument(format!("the value of tag '{shown}' has {} characters; use at most 256", value.chars().count())));
        }
    }
    Ok(())
}

impl ResourceGroup {
    pub fn new(subscription_id: Uuid, name: &str, location: &str, tags: BTreeMap<String, String>) -> Result<Self> {
        validate_resource_group_name(name)?;
        validate_tags(&tags)?;
        Ok(ResourceGroup { subscription_id, name: name.into(), location: validate_location(location)?, tags, managed_by: None })
    }

    pub fn id(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}", self.subscription_id, self.name)
    }

    pub fn scope(&self) -> Scope {
        Scope::resource_group(&self.subscription_id, &self.name).unwrap_or_else(|_| Scope::subscription(&self.subscription_id))
    }
}

/// What a principal is, as Entra's `servicePrincipalType` says it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum PrincipalKind {
    Application,
    ManagedIdentity,
}

/// A security principal role assignments can name: object id (principalId) and client id (appId).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub object_id: Uuid,
    pub app_id: Uuid,
    pub display_name: String,
    pub service_principal_type: PrincipalKind,
    pub tenant_id: Uuid,
    /// For managed identities, the identity's resource ID (Entra lists it as an alternative name).
    #[serde(default)]
    pub alternative_names: Vec<String>,
}

/// A user-assigned managed identity, shaped like `az identity show`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentity {
    pub subscription_id: Uuid,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub client_id: Uuid,
    pub principal_id: Uuid,
    pub tenant_id: Uuid,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Identity names: 3–128 characters, letters, digits, '-' and '_', starting with a letter or digit.
pub fn validate_identity_name(name: &str) -> Result<()> {
    let ok = (3..=128).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Error::InvalidArgument(format!("invalid identity name '{name}': use 3-128 letters, digits, '-' or '_', starting with a letter or digit")));
    }
    Ok(())
}

impl ManagedIdentity {
    pub fn new(rg: &ResourceGroup, name: &str, location: Option<&str>, tenant_id: Uuid) -> Result<Self> {
        validate_identity_name(name)?;
        let location = match location {
            Some(l) => validate_location(l)?,
            None => rg.location.clone(),
        };
        Ok(ManagedIdentity {
            subscription_id: rg.subscription_id,
            resource_group: rg.name.clone(),
            name: name.into(),
            location,
            client_id: Uuid::new_v4(),
            principal_id: Uuid::new_v4(),
            tenant_id,
            tags: BTreeMap::new(),
        })
    }

    /// The resource ID exactly as az prints it (lower-case `resourcegroups`).
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }

    pub fn principal(&self) -> Principal {
        Principal {
            object_id: self.principal_id,
            app_id: self.client_id,
            display_name: self.name.clone(),
            service_principal_type: PrincipalKind::ManagedIdentity,
            tenant_id: self.tenant_id,
            alternative_names: vec!["isExplicit=True".into(), self.id()],
        }
    }
}

/// An app registration with its service principal and credentials.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub app_id: Uuid,
    pub display_name: String,
    /// Object id of the service principal (what role assignments name).
    pub principal_id: Uuid,
    pub tenant_id: Uuid,
    /// The principal that created the app; it may manage the app's credentials.
    pub owner: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(default)]
    pub key_credentials: Vec<CertificateCredential>,
}

/// Display names of apps: 1–120 printable characters.
pub fn validate_display_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 120 || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!("invalid display name '{name}': use 1-120 printable characters")));
    }
    Ok(())
}

impl Application {
    pub fn new(display_name: &str, tenant_id: Uuid, owner: Option<Uuid>, now: OffsetDateTime) -> Result<Self> {
        validate_display_name(display_name)?;
        Ok(Application {
            app_id: Uuid::new_v4(),
            display_name: display_name.into(),
            principal_id: Uuid::new_v4(),
            tenant_id,
            owner,
            created_date_time: now,
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
        })
    }

    /// The certificate a JWT header's `x5t` (SHA-1) or `x5t#S256` thumbprint names (padding ignored).
    pub fn certificate_by_thumbprint(&self, x5t: Option<&str>, x5t256: Option<&str>) -> Option<&CertificateCredential> {
        self.key_credentials.iter().find(|c| {
            let (sha1, sha256) = c.header_thumbprints();
            x5t.is_some_and(|t| t.trim_end_matches('=') == sha1) || x5t256.is_some_and(|t| t.trim_end_matches('=') == sha256)
        })
    }

    pub fn principal(&self) -> Principal {
        Principal {
            object_id: self.principal_id,
            app_id: self.app_id,
            display_name: self.display_name.clone(),
            service_principal_type: PrincipalKind::Application,
            tenant_id: self.tenant_id,
            alternative_names: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resource_id_is_shaped_like_az() {
        let rg = ResourceGroup::new(Uuid::from_u128(7), "myResourceGroup", "West US 2", BTreeMap::new()).unwrap();
        assert_eq!(rg.location, "westus2");
        let mi = ManagedIdentity::new(&rg, "myIdentity", None, Uuid::from_u128(9)).unwrap();
        assert_eq!(
            mi.id(),
            "/subscriptions/00000000-0000-0000-0000-000000000007/resourcegroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myIdentity"
        );
        assert_ne!(mi.client_id, mi.principal_id);
        assert!(ManagedIdentity::new(&rg, "my identity", None, Uuid::nil()).is_err());
    }
}
