//! Kubernetes identities for kite-issued (Entra-shaped) access tokens, the AKS-managed-AAD way.
//!
//! AKS's webhook (guard) names a caller by the token's `upn`, or by its `oid` when there is none
//! (service principals and managed identities), with no prefix, and takes groups as Entra group
//! object IDs. kite issues app-only tokens (no `upn`, no `groups`), so:
//! - without a mapping file, every kite principal authenticates as its object ID, with no groups;
//! - with one, only the principals it lists authenticate, with the username and groups it gives.
//!
//! ```yaml
//! principals:
//! - objectId: 0b7f…      # the token's oid (a service principal's or managed identity's object ID)
//!   username: deployer   # default: the object ID, as AKS names service principals
//!   groups: [ci-deployers]
//! - appId: 5e3a…         # or the app (client) ID, the token's appid
//!   groups: [readers]
//! ```
//! An entry by `objectId` wins over one by `appId`. A file that fails validation is refused whole.

use serde::Deserialize;
use uuid::Uuid;

/// What a verified token says about its principal.
#[derive(Clone, Copy, Debug)]
pub struct TokenPrincipal<'a> {
    pub oid: &'a str,
    pub appid: &'a str,
}

/// The Kubernetes user a token authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraIdentity {
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    object_id: Option<Uuid>,
    app_id: Option<Uuid>,
    username: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    principals: Vec<Entry>,
}

/// A validated mapping file.
#[derive(Clone, Debug)]
pub struct EntraMapping {
    entries: Vec<Entry>,
}

/// AKS's rule when nothing is mapped: the object ID, no groups.
pub fn default_identity(p: TokenPrincipal<'_>) -> EntraIdentity {
    EntraIdentity { username: p.oid.to_string(), groups: Vec::new() }
}

impl EntraMapping {
    /// Parses and validates; the error lists every problem, one per line, naming the entry.
    pub fn parse(yaml: &str) -> Result<EntraMapping, String> {
        let file: MappingFile = serde_yaml_ng::from_str(yaml)
            .map_err(|e| format!("not an Entra mapping ({e}); expected `principals:` with entries of objectId or appId, username, groups"))?;
        let mut problems = Vec::new();
        let mut seen: Vec<(&str, Uuid)> = Vec::new();
        for (i, e) in file.principals.iter().enumerate() {
            let at = format!("principals[{i}]");
            let key = match (e.object_id, e.app_id) {
                (Some(oid), None) => Some(("objectId", oid)),
                (None, Some(app)) => Some(("appId", app)),
                (Some(_), Some(_)) => {
                    problems.push(format!("{at} names both objectId and appId: keep one (objectId matches the token's oid, appId its appid)"));
                    None
                }
                (None, None) => {
                    problems.push(format!("{at} names neither objectId nor appId: add the principal's object ID (kite ad sp show --id APPID)"));
                    None
                }
            };
            if let Some(key) = key {
                if seen.contains(&key) {
                    problems.push(format!("{at} repeats {} {}: merge the two entries", key.0, key.1));
                }
                seen.push(key);
            }
            match e.username.as_deref().map(str::trim) {
                Some("") => problems.push(format!("{at} has an empty username: drop the field to use the object ID")),
                Some(u) if u.starts_with("system:") => {
                    problems.push(format!("{at} username '{u}' uses the 'system:' prefix Kubernetes reserves for its own components: pick another"))
                }
                _ => {}
            }
            if e.groups.iter().any(|g| g.trim().is_empty()) {
                problems.push(format!("{at} has an empty group name"));
            }
        }
        if problems.is_empty() {
            Ok(EntraMapping { entries: file.principals })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The identity for a principal, or why it has none (with the entry to add).
    pub fn map(&self, p: TokenPrincipal<'_>) -> Result<EntraIdentity, String> {
        let is = |id: Option<Uuid>, claim: &str| id.is_some_and(|u| Uuid::parse_str(claim).is_ok_and(|c| c == u));
        let entry = self.entries.iter().find(|e| is(e.object_id, p.oid)).or_else(|| self.entries.iter().find(|e| is(e.app_id, p.appid)));
        let Some(e) = entry else {
            return Err(format!(
                "no mapping for oid {} (appid {}) in the Entra mapping: add `- objectId: {}` with its username and groups",
                p.oid, p.appid, p.oid
            ));
        };
        Ok(EntraIdentity { username: e.username.clone().unwrap_or_else(|| p.oid.to_string()), groups: e.groups.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "0b7f4c8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    const APP: &str = "5e3a1111-2222-4333-8444-555566667777";

    fn who<'a>(oid: &'a str, appid: &'a str) -> TokenPrincipal<'a> {
        TokenPrincipal { oid, appid }
    }

    #[test]
    fn without_a_file_a_principal_is_its_object_id() {
        assert_eq!(default_identity(who(OID, APP)), EntraIdentity { username: OID.into(), groups: vec![] });
    }

    #[test]
    fn entries_match_by_object_id_before_app_id_and_default_the_username_to_the_oid() {
        let m = EntraMapping::parse(&format!("principals:\n- appId: {APP}\n  groups: [readers]\n- objectId: {OID}\n  username: deployer\n  groups: [ci]\n"))
            .unwrap();
        assert_eq!(m.map(who(OID, APP)).unwrap(), EntraIdentity { username: "deployer".into(), groups: vec!["ci".into()] });
        let other_oid = "99999999-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(m.map(who(other_oid, APP)).unwrap(), EntraIdentity { username: other_oid.into(), groups: vec!["readers".into()] });
        let e = m.map(who(other_oid, "11111111-2222-4333-8444-555566667777")).unwrap_err();
        assert!(e.contains(&format!("no mapping for oid {other_oid}")) && e.contains(&format!("- objectId: {other_oid}")), "{e}");
    }

    #[test]
    fn a_bad_file_is_refused_with_every_problem_named() {
        let e = EntraMapping::parse(&format!(
            "principals:\n- username: x\n- objectId: {OID}\n  appId: {APP}\n- objectId: {OID}\n  username: 'system:admin'\n- objectId: {OID}\n  groups: ['']\n"
        ))
        .unwrap_err();
        for needle in [
            "principals[0] names neither",
            "principals[1] names both",
            "principals[2] username 'system:admin'",
            "principals[3] repeats objectId",
            "principals[3] has an empty group",
        ] {
            assert!(e.contains(needle), "missing '{needle}' in:\n{e}");
        }
        assert!(EntraMapping::parse("principals:\n- objectId: not-a-guid\n").unwrap_err().contains("not an Entra mapping"));
        assert!(EntraMapping::parse("principal: []\n").is_err(), "a misspelt key is not silently an empty mapping");
    }
}
