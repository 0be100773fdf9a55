//! Key Vault secrets: names, versions, attributes and their limits, soft deletion. Pure: the clock
//! and the new version's identifier come in as arguments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Key Vault's limit on a secret value (25 KiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
pub const MAX_TAGS: usize = 15;
/// Latest dates Key Vault accepts (9999-12-31T23:59:59Z), in Unix seconds.
const MAX_DATE: i64 = 253_402_300_799;
/// The page size when a list does not ask (`maxresults`), and the largest Key Vault allows.
pub const DEFAULT_PAGE: usize = 25;

/// Key Vault's rule: 1–127 letters, digits and hyphens.
pub fn validate_secret_name(name: &str) -> Result<()> {
    if (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        let shown: String = name.chars().take(40).collect();
        Err(Error::InvalidArgument(format!("The secret name '{shown}' is invalid: use 1-127 letters, digits and hyphens")))
    }
}

/// A version identifier as Key Vault writes them: 32 lower-case hex digits.
pub fn validate_version(version: &str) -> Result<()> {
    if version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::NotFound(format!("SecretNotFound: '{}' is not a secret version", version.chars().take(40).collect::<String>())))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretAttributes {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// One version of a secret, without its value (which the store keeps sealed).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub attributes: SecretAttributes,
}

/// What a set or an update asks to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretChanges {
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attributes: Option<AttributeChanges>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AttributeChanges {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
}

fn check_date(what: &str, v: Option<i64>) -> Result<()> {
    match v {
        Some(t) if !(0..=MAX_DATE).contains(&t) => Err(Error::InvalidArgument(format!("attributes.{what} is {t}; give Unix seconds from 0 to {MAX_DATE}"))),
        _ => Ok(()),
    }
}

impl SecretChanges {
    fn check(&self) -> Result<()> {
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return Err(Error::InvalidArgument(format!("{} tags were given; a secret may have at most {MAX_TAGS}", tags.len())));
            }
            if let Some((k, _)) = tags.iter().find(|(k, v)| k.is_empty() || k.chars().count() > 512 || v.chars().count() > 256) {
                let shown: String = k.chars().take(40).collect();
                return Err(Error::InvalidArgument(format!("tag '{shown}' is invalid: names are 1-512 characters, values up to 256")));
            }
        }
        if self.content_type.as_ref().is_some_and(|c| c.chars().count() > 255) {
            return Err(Error::InvalidArgument("contentType is longer than 255 characters".into()));
        }
        if let Some(a) = &self.attributes {
            check_date("nbf", a.nbf)?;
            check_date("exp", a.exp)?;
        }
        Ok(())
    }

    fn apply(self, s: &mut SecretVersion, now: i64) {
        if let Some(c) = self.content_type {
            s.content_type = Some(c);
        }
        if let Some(t) = self.tags {
            s.tags = t;
        }
        if let Some(a) = self.attributes {
            s.attributes.enabled = a.enabled.unwrap_or(s.attributes.enabled);
            s.attributes.nbf = a.nbf.or(s.attributes.nbf);
            s.attributes.exp = a.exp.or(s.attributes.exp);
        }
        s.attributes.updated = now;
    }
}

impl SecretVersion {
    /// A new version `version` of `name` holding a value of `value_len` bytes, made at `now`.
    pub fn new(name: &str, version: &str, value_len: usize, changes: SecretChanges, now: i64) -> Result<SecretVersion> {
        validate_secret_name(name)?;
        if value_len > MAX_VALUE_BYTES {
            return Err(Error::InvalidArgument(format!("the secret value is {value_len} bytes; Key Vault allows at most {MAX_VALUE_BYTES}")));
        }
        changes.check()?;
        let mut s = SecretVersion {
            name: name.into(),
            version: version.into(),
            content_type: None,
            tags: BTreeMap::new(),
            attributes: SecretAttributes { enabled: true, nbf: None, exp: None, created: now, updated: now },
        };
        changes.apply(&mut s, now);
        Ok(s)
    }

    /// Applies an update of attributes, content type and tags.
    pub fn updated(mut self, changes: SecretChanges, now: i64) -> Result<SecretVersion> {
        changes.check()?;
        changes.apply(&mut self, now);
        Ok(self)
    }

    /// Why the value may not be read now, as Key Vault says it (`None`: it may).
    pub fn unreadable(&self, now: i64) -> Option<&'static str> {
        let a = &self.attributes;
        if !a.enabled {
            Some("Operation get is not allowed on a disabled secret.")
        } else if a.nbf.is_some_and(|nbf| now < nbf) {
            Some("Operation get is not allowed on a secret that is not yet valid (nbf).")
        } else if a.exp.is_some_and(|exp| now >= exp) {
            Some("Operation get is not allowed on an expired secret.")
        } else {
            None
        }
    }
}

/// A soft-deleted secret: its latest version and when it goes for good.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecret {
    pub latest: SecretVersion,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

impl DeletedSecret {
    pub fn new(latest: SecretVersion, now: i64, retention_days: u32) -> DeletedSecret {
        DeletedSecret { latest, deleted_date: now, scheduled_purge_date: now + i64::from(retention_days) * 86_400 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn names_values_and_tags_are_held_to_key_vaults_limits() {
        assert!(SecretVersion::new("redis-password", V, 10, SecretChanges::default(), 1).is_ok());
        assert!(SecretVersion::new("redis_password", V, 10, SecretChanges::default(), 1).is_err());
        assert!(SecretVersion::new(&"a".repeat(128), V, 10, SecretChanges::default(), 1).is_err());
        let big = SecretVersion::new("a", V, MAX_VALUE_BYTES + 1, SecretChanges::default(), 1).unwrap_err().to_string();
        assert!(big.contains("at most 25600"), "{big}");
        let tags = (0..16).map(|i| (format!("t{i}"), String::new())).collect();
        assert!(SecretVersion::new("a", V, 1, SecretChanges { tags: Some(tags), ..Default::default() }, 1).is_err());
        let far = SecretChanges { attributes: Some(AttributeChanges { exp: Some(i64::MAX), ..Default::default() }), ..Default::default() };
        assert!(SecretVersion::new("a", V, 1, far, 1).is_err());
    }

    #[test]
    fn a_disabled_expired_or_not_yet_valid_secret_is_not_readable() {
        let s = SecretVersion::new("a", V, 1, SecretChanges::default(), 100).unwrap();
        assert_eq!(s.unreadable(100), None);
        let change = |a: AttributeChanges| s.clone().updated(SecretChanges { attributes: Some(a), ..Default::default() }, 200).unwrap();
        assert!(change(AttributeChanges { enabled: Some(false), ..Default::default() }).unreadable(300).unwrap().contains("disabled"));
        assert!(change(AttributeChanges { exp: Some(250), ..Default::default() }).unreadable(300).unwrap().contains("expired"));
        assert!(change(AttributeChanges { nbf: Some(400), ..Default::default() }).unreadable(300).unwrap().contains("not yet valid"));
        let updated = change(AttributeChanges { enabled: Some(false), ..Default::default() });
        assert_eq!((updated.attributes.created, updated.attributes.updated), (100, 200));
    }
}
