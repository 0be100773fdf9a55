//! `eksctl create|get|delete iamidentitymapping` over an `AwsAuth`.

use super::*;

/// A row of `eksctl get iamidentitymapping`: `arn` empty and `account` set for a mapAccounts entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityMappingRow {
    pub arn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub account: Option<String>,
}

/// Every mapping, roles first, then users, then accounts, as eksctl lists them.
pub fn list(auth: &AwsAuth) -> Vec<IdentityMappingRow> {
    let roles =
        auth.map_roles.iter().map(|r| IdentityMappingRow { arn: r.rolearn.clone(), username: r.username.clone(), groups: r.groups.clone(), account: None });
    let users =
        auth.map_users.iter().map(|u| IdentityMappingRow { arn: u.userarn.clone(), username: u.username.clone(), groups: u.groups.clone(), account: None });
    let accounts =
        auth.map_accounts.iter().map(|a| IdentityMappingRow { arn: String::new(), username: String::new(), groups: Vec::new(), account: Some(a.clone()) });
    roles.chain(users).chain(accounts).collect()
}

/// `eksctl create iamidentitymapping`: a role ARN goes to mapRoles, anything else to mapUsers.
/// Refuses a duplicate and anything [`validate`] calls an error for the new entry; returns the
/// warnings about it (e.g. `system:masters`).
pub fn create_mapping(auth: &mut AwsAuth, arn: &str, username: &str, groups: &[String]) -> Result<Vec<Finding>> {
    let parsed = Arn::parse(arn).map_err(|e| Error::InvalidArgument(format!("--arn {arn}: {e}")))?;
    if let Some(existing) = entries(auth).iter().find(|e| Arn::parse(e.arn).is_ok_and(|a| same_identity(&a, &parsed)) || e.arn.eq_ignore_ascii_case(arn)) {
        return Err(Error::InvalidArgument(format!("{arn} is already mapped by {}: delete it first (delete_mapping) or edit that entry", existing.label)));
    }
    let mut candidate = auth.clone();
    let section = match parsed.resource() {
        Resource::Role { .. } | Resource::AssumedRole { .. } | Resource::OidcProvider { .. } => {
            candidate.map_roles.push(RoleMapping { rolearn: arn.into(), username: username.into(), groups: groups.to_vec() });
            Section::MapRoles(Some(candidate.map_roles.len() - 1))
        }
        _ => {
            candidate.map_users.push(UserMapping { userarn: arn.into(), username: username.into(), groups: groups.to_vec() });
            Section::MapUsers(Some(candidate.map_users.len() - 1))
        }
    };
    let report = validate(&candidate, None);
    let errors: Vec<String> = report.errors.iter().filter(|f| f.section == section).map(Finding::to_string).collect();
    if !errors.is_empty() {
        return Err(Error::InvalidArgument(format!("refusing to map {arn}: {}", errors.join("; "))));
    }
    *auth = candidate;
    Ok(report.warnings.into_iter().filter(|f| f.section == section).collect())
}

/// `eksctl delete iamidentitymapping`: removes the first mapping of `arn` (case-insensitive), or
/// every one with `all`; a 12-digit `arn` removes that mapAccounts entry. Returns how many went.
pub fn delete_mapping(auth: &mut AwsAuth, arn: &str, all: bool) -> Result<usize> {
    let mut removed = 0;
    let mut take = |matches: bool| {
        if matches && (all || removed == 0) {
            removed += 1;
            false
        } else {
            true
        }
    };
    if is_account_id(arn) {
        auth.map_accounts.retain(|a| take(a == arn));
    } else {
        auth.map_roles.retain(|r| take(r.rolearn.eq_ignore_ascii_case(arn)));
        auth.map_users.retain(|u| take(u.userarn.eq_ignore_ascii_case(arn)));
    }
    if removed == 0 {
        let hint = list(auth)
            .into_iter()
            .map(|r| r.account.unwrap_or(r.arn))
            .min_by_key(|c| strsim::levenshtein(&c.to_lowercase(), &arn.to_lowercase()))
            .map(|c| format!(" (closest mapping: {c})"))
            .unwrap_or_default();
        return Err(Error::InvalidArgument(format!("no iamidentitymapping with arn {arn} found{hint}")));
    }
    Ok(removed)
}
