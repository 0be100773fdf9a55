//! Key vaults: the ARM resource (`Microsoft.KeyVault/vaults`) with its access policies and
//! soft-delete state, and the decision whether a caller may do a secret operation. Pure: the clock
//! and the caller's RBAC decision come in as arguments. Security-sensitive: [`decide`] is the only
//! place a vault's permission model is read.

pub mod secret;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::directory::{validate_location, validate_tags};
use crate::{Error, Result};

pub const TYPE: &str = "Microsoft.KeyVault/vaults";
/// Days a deleted vault (and a deleted secret) is kept before it is purged, unless set otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Key Vault's limits on access policies per vault.
pub const MAX_ACCESS_POLICIES: usize = 1024;

/// Key Vault's rule: 3–24 characters, letters, digits and hyphens, starting with a letter, ending
/// with a letter or digit, no two hyphens in a row. The name is also the vault's DNS label.
pub fn validate_vault_name(name: &str) -> Result<()> {
    let ok = (3..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "The vault name '{name}' is invalid: it must be 3-24 characters, only letters, digits and hyphens, start with a letter, \
             end with a letter or digit, and not contain consecutive hyphens"
        )))
    }
}

/// What one principal may do in a vault (access-policy model). Lists hold Key Vault's permission
/// names in lower case (`get`, `list`, `set`, …, or `all`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Permissions {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub storage: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    pub tenant_id: Uuid,
    pub object_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<Uuid>,
    pub permissions: Permissions,
}

const SECRET_PERMISSIONS: &[&str] = &["all", "backup", "delete", "get", "list", "purge", "recover", "restore", "set"];

impl AccessPolicy {
    /// Checks the secret permission names (case-insensitive, stored in lower case).
    pub fn normalized(mut self) -> Result<AccessPolicy> {
        for p in &mut self.permissions.secrets {
            *p = p.to_ascii_lowercase();
            if !SECRET_PERMISSIONS.contains(&p.as_str()) {
                return Err(Error::InvalidArgument(format!("'{p}' is not a secret permission; use any of {}", SECRET_PERMISSIONS.join(", "))));
            }
        }
        self.permissions.secrets.sort();
        self.permissions.secrets.dedup();
        Ok(self)
    }
}

/// How `accessPolicies/{kind}` changes a vault's policies, as Key Vault does it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyUpdate {
    /// Adds the given permissions to the principal's policy (creating it).
    Add,
    /// Removes the given permissions; a policy left with none goes.
    Remove,
    /// Sets the principal's policy to exactly the given permissions.
    Replace,
}

impl std::str::FromStr for PolicyUpdate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "add" => Ok(PolicyUpdate::Add),
            "remove" => Ok(PolicyUpdate::Remove),
            "replace" => Ok(PolicyUpdate::Replace),
            _ => Err(Error::InvalidArgument(format!("'{s}' is not an access policy operation: use add, remove or replace"))),
        }
    }
}

fn merge(into: &mut Vec<String>, given: &[String], kind: PolicyUpdate) {
    match kind {
        PolicyUpdate::Add => into.extend(given.iter().cloned()),
        PolicyUpdate::Remove => into.retain(|p| !given.iter().any(|g| g.eq_ignore_ascii_case(p))),
        PolicyUpdate::Replace => *into = given.to_vec(),
    }
    into.sort();
    into.dedup();
}

/// When a vault was deleted and when it is purged unless recovered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    #[serde(with = "time::serde::rfc3339")]
    pub deletion_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_purge_date: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub subscription_id: Uuid,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tenant_id: Uuid,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub sku: String,
    #[serde(default)]
    pub access_policies: Vec<AccessPolicy>,
    #[serde(default)]
    pub enable_rbac_authorization: bool,
    pub soft_delete_retention_days: u32,
    #[serde(default)]
    pub deleted: Option<Deletion>,
}

/// What a create asks for.
#[derive(Clone, Debug, Default)]
pub struct VaultSpec {
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub sku: Option<String>,
    pub access_policies: Vec<AccessPolicy>,
    pub enable_rbac_authorization: bool,
    pub soft_delete_retention_days: Option<u32>,
}

impl Vault {
    pub fn new(subscription_id: Uuid, resource_group: &str, name: &str, tenant_id: Uuid, spec: VaultSpec) -> Result<Vault> {
        validate_vault_name(name)?;
        validate_tags(&spec.tags)?;
        let retention = spec.soft_delete_retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if !(7..=90).contains(&retention) {
            return Err(Error::InvalidArgument(format!("softDeleteRetentionInDays is {retention}; it must be 7 to 90")));
        }
        let sku = spec.sku.unwrap_or_else(|| "standard".into()).to_ascii_lowercase();
        if sku != "standard" && sku != "premium" {
            return Err(Error::InvalidArgument(format!("sku '{sku}' is not a vault SKU: use standard or premium")));
        }
        let mut vault = Vault {
            subscription_id,
            resource_group: resource_group.into(),
            name: name.into(),
            location: validate_location(&spec.location)?,
            tenant_id,
            tags: spec.tags,
            sku,
            access_policies: Vec::new(),
            enable_rbac_authorization: spec.enable_rbac_authorization,
            soft_delete_retention_days: retention,
            deleted: None,
        };
        for p in spec.access_policies {
            vault.update_policy(p, PolicyUpdate::Add)?;
        }
        Ok(vault)
    }

    /// The resource ID as ARM writes it.
    pub fn id(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}/providers/{TYPE}/{}", self.subscription_id, self.resource_group, self.name)
    }

    /// `https://NAME.vault.DOMAIN/`, what `properties.vaultUri` says and the SDKs call.
    pub fn uri(&self, vault_domain: &str) -> String {
        format!("https://{}.{vault_domain}/", self.name.to_ascii_lowercase())
    }

    /// Merges one principal's policy (`Add`, `Remove`, `Replace`), as `accessPolicies/{kind}` does.
    pub fn update_policy(&mut self, policy: AccessPolicy, kind: PolicyUpdate) -> Result<()> {
        let policy = policy.normalized()?;
        let existing = self.access_policies.iter().position(|p| p.object_id == policy.object_id && p.application_id == policy.application_id);
        match existing {
            Some(i) => {
                let current = &mut self.access_policies[i].permissions;
                let given = &policy.permissions;
                merge(&mut current.secrets, &given.secrets, kind);
                merge(&mut current.keys, &given.keys, kind);
                merge(&mut current.certificates, &given.certificates, kind);
                merge(&mut current.storage, &given.storage, kind);
                let p = &self.access_policies[i].permissions;
                if kind == PolicyUpdate::Remove && p.secrets.is_empty() && p.keys.is_empty() && p.certificates.is_empty() && p.storage.is_empty() {
                    self.access_policies.remove(i);
                }
            }
            None if kind == PolicyUpdate::Remove => {}
            None => {
                if self.access_policies.len() >= MAX_ACCESS_POLICIES {
                    return Err(Error::Conflict(format!("vault '{}' already has {MAX_ACCESS_POLICIES} access policies, Key Vault's limit", self.name)));
                }
                self.access_policies.push(policy);
            }
        }
        Ok(())
    }

    /// Soft-deletes the vault at `now`; it is purged after its retention unless recovered.
    pub fn soft_delete(&mut self, now: OffsetDateTime) {
        let purge = now + time::Duration::days(i64::from(self.soft_delete_retention_days));
        self.deleted = Some(Deletion { deletion_date: now, scheduled_purge_date: purge });
    }
}

/// A secret operation of the data plane, with its access-policy permission and its RBAC data action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretOp {
    Get,
    List,
    Set,
    Update,
    Delete,
    GetDeleted,
    Recover,
    Purge,
}

impl SecretOp {
    /// The access-policy permission Key Vault requires.
    pub fn permission(self) -> &'static str {
        match self {
            SecretOp::Get => "get",
            SecretOp::List | SecretOp::GetDeleted => "list",
            SecretOp::Set | SecretOp::Update => "set",
            SecretOp::Delete => "delete",
            SecretOp::Recover => "recover",
            SecretOp::Purge => "purge",
        }
    }

    /// The RBAC data action Key Vault checks when the vault uses RBAC authorization.
    pub fn data_action(self) -> &'static str {
        match self {
            SecretOp::Get => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            SecretOp::List | SecretOp::GetDeleted => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            SecretOp::Set => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            SecretOp::Update => "Microsoft.KeyVault/vaults/secrets/update/action",
            SecretOp::Delete => "Microsoft.KeyVault/vaults/secrets/delete",
            SecretOp::Recover => "Microsoft.KeyVault/vaults/secrets/recover/action",
            SecretOp::Purge => "Microsoft.KeyVault/vaults/secrets/purge/action",
        }
    }
}

/// Whether a caller may do a secret operation, and a sentence saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultDecision {
    pub allowed: bool,
    pub reason: String,
}

/// The access-policy model's answer: the caller's policy (by object ID) must hold the operation's
/// permission or `all`. With RBAC authorization on, `rbac` (the engine's answer for the data action
/// at the vault's scope, with its reason) decides instead, and access policies are ignored.
pub fn decide(vault: &Vault, caller_object_id: &Uuid, op: SecretOp, rbac: Option<(bool, &str)>) -> VaultDecision {
    if vault.enable_rbac_authorization {
        let (allowed, why) = rbac.unwrap_or((false, "no role assignment was evaluated"));
        let reason = if allowed {
            format!("vault '{}' uses RBAC authorization and {why}", vault.name)
        } else {
            format!("vault '{}' uses RBAC authorization, and data action '{}' is not granted ({why})", vault.name, op.data_action())
        };
        return VaultDecision { allowed, reason };
    }
    let perm = op.permission();
    match vault.access_policies.iter().find(|p| p.object_id == *caller_object_id) {
        Some(p) if p.permissions.secrets.iter().any(|s| s == perm || s == "all") => {
            VaultDecision { allowed: true, reason: format!("the access policy of vault '{}' grants secret permission '{perm}'", vault.name) }
        }
        Some(p) => VaultDecision {
            allowed: false,
            reason: format!(
                "the access policy of vault '{}' for this caller grants secret permissions [{}] but not '{perm}'; add it with \
                 'kite keyvault set-policy -n {} --object-id {caller_object_id} --secret-permissions {perm}'",
                vault.name,
                p.permissions.secrets.join(", "),
                vault.name
            ),
        },
        None => VaultDecision {
            allowed: false,
            reason: format!(
                "vault '{}' has no access policy for this caller (role assignments such as Reader do not grant secret access under access policies); \
                 add one with 'kite keyvault set-policy -n {} --object-id {caller_object_id} --secret-permissions {perm}'",
                vault.name, vault.name
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Uuid = Uuid::from_u128(7);
    const CALLER: Uuid = Uuid::from_u128(42);

    fn vault(rbac: bool) -> Vault {
        Vault::new(
            Uuid::from_u128(1),
            "rg",
            "azure-vote",
            TENANT,
            VaultSpec { location: "japaneast".into(), enable_rbac_authorization: rbac, ..Default::default() },
        )
        .unwrap()
    }

    fn policy(secrets: &[&str]) -> AccessPolicy {
        AccessPolicy {
            tenant_id: TENANT,
            object_id: CALLER,
            application_id: None,
            permissions: Permissions { secrets: secrets.iter().map(|s| s.to_string()).collect(), ..Default::default() },
        }
    }

    #[test]
    fn vault_names_follow_key_vaults_rule() {
        for good in ["abc", "azure-vote", "a1-b2-c3", "A23456789012345678901234"] {
            assert!(validate_vault_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "1abc", "abc-", "a--b", "a_b", "a.b", "A234567890123456789012345"] {
            assert!(validate_vault_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_policy_a_caller_is_refused_with_the_command_that_fixes_it() {
        let v = vault(false);
        let d = decide(&v, &CALLER, SecretOp::Get, Some((true, "Owner")));
        assert!(!d.allowed, "a role assignment does not open an access-policy vault");
        assert!(d.reason.contains("no access policy") && d.reason.contains("set-policy"), "{}", d.reason);
    }

    #[test]
    fn policies_add_and_remove_permissions_and_decide_by_them() {
        let mut v = vault(false);
        v.update_policy(policy(&["Get"]), PolicyUpdate::Add).unwrap();
        v.update_policy(policy(&["list", "get"]), PolicyUpdate::Add).unwrap();
        assert_eq!(v.access_policies.len(), 1);
        assert_eq!(v.access_policies[0].permissions.secrets, vec!["get", "list"]);
        assert!(decide(&v, &CALLER, SecretOp::Get, None).allowed);
        let refused = decide(&v, &CALLER, SecretOp::Set, None);
        assert!(!refused.allowed && refused.reason.contains("[get, list] but not 'set'"), "{}", refused.reason);
        v.update_policy(policy(&["get", "list"]), PolicyUpdate::Remove).unwrap();
        assert!(v.access_policies.is_empty(), "a policy left with nothing goes");
        assert!(v.update_policy(policy(&["read"]), PolicyUpdate::Add).is_err());
        v.update_policy(policy(&["all"]), PolicyUpdate::Replace).unwrap();
        assert!(decide(&v, &CALLER, SecretOp::Purge, None).allowed);
    }

    #[test]
    fn with_rbac_authorization_only_the_data_action_counts() {
        let mut v = vault(true);
        v.update_policy(policy(&["all"]), PolicyUpdate::Add).unwrap();
        let d = decide(&v, &CALLER, SecretOp::Get, Some((false, "Reader grants no data actions")));
        assert!(!d.allowed && d.reason.contains("getSecret/action") && d.reason.contains("Reader"), "{}", d.reason);
        assert!(decide(&v, &CALLER, SecretOp::Get, Some((true, "Key Vault Secrets User grants it"))).allowed);
    }

    #[test]
    fn a_soft_deleted_vault_is_purged_after_its_retention() {
        let mut v = vault(false);
        let now = time::macros::datetime!(2026-12-01 00:00 UTC);
        v.soft_delete(now);
        assert_eq!(v.deleted.unwrap().scheduled_purge_date, time::macros::datetime!(2027-03-01 00:00 UTC));
    }
}
