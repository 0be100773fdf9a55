//! Azure resource scopes: `/`, `/subscriptions/{id}`, `…/resourceGroups/{rg}`, `…/providers/{ns}/{type}/{name}[/{type}/{name}…]`.
//!
//! Azure compares scopes case-insensitively. A parsed [`Scope`] keeps the caller's spelling for display
//! and a lower-cased key whose ancestors are all prefixes of it, so walking the inheritance chain
//! allocates nothing (the decision engine's hot path). Lower-casing is Unicode's, not only ASCII's:
//! resource group names may hold non-ASCII letters, and `Ä-rg` and `ä-rg` are one group (the store
//! keys groups the same way).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The shapes a scope may take, shown whenever one does not parse.
pub const SCOPE_SHAPES: &str = "'/', '/subscriptions/{subscriptionId}', \
'/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}' or \
'/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/{namespace}/{type}/{name}'";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScopeLevel {
    Root,
    Subscription,
    ResourceGroup,
    Resource,
}

#[derive(Clone, Debug)]
pub struct Scope {
    display: String,
    key: String,
    /// End offsets of every ancestor in `display` and in `key`, outermost first (the root is always
    /// 0-length, handled apart). They differ when lower-casing changes a character's UTF-8 length.
    ancestors: Vec<(usize, usize)>,
    level: ScopeLevel,
    subscription: Option<String>,
    resource_group: Option<String>,
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Scope {}
impl std::hash::Hash for Scope {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

fn malformed(input: &str, why: &str) -> Error {
    Error::InvalidScope(format!("malformed scope '{input}': {why}; expected {SCOPE_SHAPES}"))
}

/// Resource group names: 1–90 characters of letters, digits, `_ - . ( )`, not ending in a period (ARM's rule).
pub fn validate_resource_group_name(name: &str) -> Result<()> {
    let ok_chars = name.chars().all(|c| c.is_alphanumeric() || "_-.()".contains(c));
    if name.is_empty() || name.len() > 90 || !ok_chars || name.ends_with('.') {
        return Err(Error::InvalidArgument(format!(
            "invalid resource group name '{name}': use 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"
        )));
    }
    Ok(())
}

impl Scope {
    pub fn root() -> Scope {
        Scope { display: "/".into(), key: String::new(), ancestors: Vec::new(), level: ScopeLevel::Root, subscription: None, resource_group: None }
    }

    pub fn subscription(sub: &uuid::Uuid) -> Scope {
        let display = format!("/subscriptions/{sub}");
        Scope {
            key: display.to_ascii_lowercase(),
            display,
            ancestors: Vec::new(),
            level: ScopeLevel::Subscription,
            subscription: Some(sub.to_string()),
            resource_group: None,
        }
    }

    pub fn resource_group(sub: &uuid::Uuid, rg: &str) -> Result<Scope> {
        Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}"))
    }

    pub fn parse(input: &str) -> Result<Scope> {
        let trimmed = input.trim();
        if trimmed == "/" {
            return Ok(Scope::root());
        }
        if !trimmed.starts_with('/') {
            return Err(malformed(input, "a scope starts with '/'"));
        }
        let body = trimmed.trim_end_matches('/');
        let parts: Vec<&str> = body[1..].split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(malformed(input, "it has an empty segment ('//')"));
        }
        if !parts[0].eq_ignore_ascii_case("subscriptions") {
            return Err(malformed(input, &format!("the first segment is '{}', not 'subscriptions'", parts[0])));
        }
        let Some(raw_sub) = parts.get(1) else {
            return Err(malformed(input, "the subscription id is missing"));
        };
        // One spelling of the GUID (hyphenated, lower case), so every form of it names the same scope.
        let sub = match uuid::Uuid::parse_str(raw_sub) {
            Ok(id) => id.to_string(),
            Err(_) => return Err(malformed(input, &format!("subscription id '{raw_sub}' is not a GUID"))),
        };
        let mut display = format!("/subscriptions/{sub}");
        let mut key = display.to_lowercase();
        // Each piece is lower-cased on its own so ancestor offsets into `key` stay exact.
        let push = |display: &mut String, key: &mut String, piece: String| {
            key.push_str(&piece.to_lowercase());
            display.push_str(&piece);
        };
        let mut ancestors = Vec::new();
        let mut level = ScopeLevel::Subscription;
        let mut resource_group = None;
        let mut rest = &parts[2..];
        if let Some(seg) = rest.first() {
            if seg.eq_ignore_ascii_case("resourceGroups") {
                let Some(rg) = rest.get(1) else {
                    return Err(malformed(input, "the resource group name is missing after 'resourceGroups'"));
                };
                validate_resource_group_name(rg).map_err(|e| malformed(input, &e.to_string()))?;
                ancestors.push((display.len(), key.len()));
                push(&mut display, &mut key, format!("/resourceGroups/{rg}"));
                resource_group = Some(rg.to_string());
                level = ScopeLevel::ResourceGroup;
                rest = &rest[2..];
            }
        }
        if let Some(seg) = rest.first() {
            if !seg.eq_ignore_ascii_case("providers") {
                return Err(malformed(input, &format!("'{seg}' found where 'providers' or 'resourceGroups' was expected")));
            }
            let Some(ns) = rest.get(1) else {
                return Err(malformed(input, "the resource provider namespace is missing after 'providers'"));
            };
            if !ns.contains('.') {
                return Err(malformed(input, &format!("'{ns}' is not a provider namespace such as 'Microsoft.Network'")));
            }
            let pairs = &rest[2..];
            if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
                return Err(malformed(input, "a resource needs '{type}/{name}' pairs after the provider namespace"));
            }
            ancestors.push((display.len(), key.len()));
            push(&mut display, &mut key, format!("/providers/{ns}"));
            for (i, pair) in pairs.chunks(2).enumerate() {
                if i > 0 {
                    ancestors.push((display.len(), key.len()));
                }
                push(&mut display, &mut key, format!("/{}/{}", pair[0], pair[1]));
            }
            level = ScopeLevel::Resource;
        }
        Ok(Scope { display, key, ancestors, level, subscription: Some(sub), resource_group })
    }

    /// The lower-cased comparison key; the root's key is the empty string.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn level(&self) -> &ScopeLevel {
        &self.level
    }

    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    pub fn resource_group_name(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// Keys of this scope and every scope it inherits from, most specific first, ending with the root ("").
    pub fn chain_keys(&self) -> impl Iterator<Item = &str> {
        let own = (!self.key.is_empty()).then_some(self.key.as_str());
        let ancestors = self.ancestors.iter().rev().map(|&(_, end)| &self.key[..end]);
        own.into_iter().chain(ancestors).chain(std::iter::once(""))
    }

    /// The scopes this one inherits from, most specific first (display spelling).
    pub fn chain(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.key.is_empty() {
            out.push(self.display.clone());
        }
        for &(end, _) in self.ancestors.iter().rev() {
            out.push(self.display[..end].to_string());
        }
        out.push("/".into());
        out
    }

    /// True when `self` is `other` or lies beneath it.
    pub fn is_within(&self, other: &Scope) -> bool {
        self.chain_keys().any(|k| k == other.key)
    }
}

/// The display form of a scope key; the root's empty key is shown as `/`.
pub fn display_key(key: &str) -> &str {
    if key.is_empty() {
        "/"
    } else {
        key
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.display)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    const SUB_ID: uuid::Uuid = uuid::Uuid::from_u128(1);

    #[test]
    fn resource_scope_inherits_from_its_parents_case_insensitively() {
        let s = Scope::parse(&format!("/subscriptions/{SUB}/resourcegroups/RG1/providers/Microsoft.Network/virtualNetworks/v1/subnets/s1")).unwrap();
        let chain: Vec<&str> = s.chain_keys().collect();
        assert_eq!(
            chain,
            vec![
                format!("/subscriptions/{SUB}/resourcegroups/rg1/providers/microsoft.network/virtualnetworks/v1/subnets/s1").as_str(),
                format!("/subscriptions/{SUB}/resourcegroups/rg1/providers/microsoft.network/virtualnetworks/v1").as_str(),
                format!("/subscriptions/{SUB}/resourcegroups/rg1").as_str(),
                format!("/subscriptions/{SUB}").as_str(),
                "",
            ]
        );
        assert_eq!(s.resource_group_name(), Some("RG1"));
        assert!(s.is_within(&Scope::resource_group(&SUB_ID, "rg1").unwrap()));
        assert!(!s.is_within(&Scope::resource_group(&SUB_ID, "rg10").unwrap()));
    }

    #[test]
    fn non_ascii_names_compare_case_insensitively_and_keep_their_chain() {
        let lower = Scope::parse(&format!("/subscriptions/{SUB}/resourceGroups/ünïcode-rg/providers/Microsoft.Network/virtualNetworks/ÄÖ/subnets/s")).unwrap();
        let upper = Scope::parse(&format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/ÜNÏCODE-RG/PROVIDERS/MICROSOFT.NETWORK/VIRTUALNETWORKS/äö/SUBNETS/S")).unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower.chain_keys().collect::<Vec<_>>(), upper.chain_keys().collect::<Vec<_>>());
        assert!(upper.is_within(&Scope::resource_group(&SUB_ID, "Ünïcode-RG").unwrap()));
        assert_eq!(upper.chain()[2], format!("/subscriptions/{SUB}/resourceGroups/ÜNÏCODE-RG"));
    }

    #[test]
    fn malformed_scopes_name_the_problem_and_the_expected_shape() {
        for (bad, why) in [
            ("subscriptions/x", "starts with '/'"),
            ("/subscription/abc", "not 'subscriptions'"),
            ("/subscriptions/not-a-guid", "is not a GUID"),
            (&format!("/subscriptions/{SUB}/resourceGroups"), "name is missing"),
            (&format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/vnets"), "pairs"),
            (&format!("/subscriptions/{SUB}/rg/x"), "'rg' found"),
        ] {
            let err = Scope::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"), "{err}");
        }
    }
}
