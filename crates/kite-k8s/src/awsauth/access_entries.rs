//! EKS access entries and authentication modes: which of access entries and `aws-auth` decide, in what order.

use super::*;

/// The cluster's `accessConfig.authenticationMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationMode {
    ConfigMap,
    ApiAndConfigMap,
    Api,
}

impl AuthenticationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationMode::ConfigMap => "CONFIG_MAP",
            AuthenticationMode::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            AuthenticationMode::Api => "API",
        }
    }

    pub fn uses_access_entries(self) -> bool {
        self != AuthenticationMode::ConfigMap
    }

    pub fn uses_config_map(self) -> bool {
        self != AuthenticationMode::Api
    }
}

impl fmt::Display for AuthenticationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthenticationMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [AuthenticationMode::ConfigMap, AuthenticationMode::ApiAndConfigMap, AuthenticationMode::Api]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown authentication mode '{s}': use CONFIG_MAP, API_AND_CONFIG_MAP or API")))
    }
}

/// Where an access policy applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessScope {
    Cluster,
    Namespaces(Vec<String>),
}

/// An access policy associated with an access entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicyAssociation {
    pub policy_arn: String,
    pub scope: AccessScope,
}

/// An EKS access entry (`aws eks create-access-entry` + `associate-access-policy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    /// `None` takes EKS's default: the user's ARN, or `arn:aws:sts::ACCT:assumed-role/ROLE/{{SessionName}}` for a role.
    pub username: Option<String>,
    pub policies: Vec<AccessPolicyAssociation>,
}

/// The access policies kite understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessPolicy {
    ClusterAdmin,
    Admin,
    Edit,
    View,
}

pub(super) const ACCESS_POLICIES: [(AccessPolicy, &str, &str); 4] = [
    (AccessPolicy::ClusterAdmin, "AmazonEKSClusterAdminPolicy", "cluster-admin"),
    (AccessPolicy::Admin, "AmazonEKSAdminPolicy", "admin"),
    (AccessPolicy::Edit, "AmazonEKSEditPolicy", "edit"),
    (AccessPolicy::View, "AmazonEKSViewPolicy", "view"),
];

impl AccessPolicy {
    /// Reads `arn:<partition>:eks::aws:cluster-access-policy/<name>`.
    pub fn from_arn(arn: &str) -> Result<AccessPolicy> {
        let name = PARTITIONS.iter().find_map(|p| arn.strip_prefix(&format!("arn:{p}:eks::aws:cluster-access-policy/"))).ok_or_else(|| {
            Error::InvalidArgument(format!("'{arn}' is not an EKS access policy ARN: expected arn:aws:eks::aws:cluster-access-policy/<name>"))
        })?;
        ACCESS_POLICIES.iter().find(|(_, n, _)| *n == name).map(|(p, ..)| *p).ok_or_else(|| {
            let names: Vec<&str> = ACCESS_POLICIES.iter().map(|(_, n, _)| *n).collect();
            let near = kite_core::suggest::closest(name, names.iter().copied()).map(|n| format!(" (did you mean {n}?)")).unwrap_or_default();
            Error::InvalidArgument(format!("unsupported access policy '{name}'{near}: kite knows {}", names.join(", ")))
        })
    }

    pub fn name(self) -> &'static str {
        ACCESS_POLICIES.iter().find(|(p, ..)| *p == self).map(|(_, n, _)| *n).unwrap_or_default()
    }

    pub fn arn(self) -> String {
        format!("arn:aws:eks::aws:cluster-access-policy/{}", self.name())
    }

    /// The Kubernetes ClusterRole with the same permissions.
    pub fn cluster_role(self) -> &'static str {
        ACCESS_POLICIES.iter().find(|(p, ..)| *p == self).map(|(.., r)| *r).unwrap_or_default()
    }
}

/// An access policy as Kubernetes RBAC would write it: a ClusterRole bound cluster-wide
/// (ClusterRoleBinding) or, when scoped, in each namespace (RoleBindings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sPermission {
    pub policy_arn: String,
    pub cluster_role: String,
    pub scope: AccessScope,
}

/// The Kubernetes equivalent of an access policy association.
pub fn permission_of(assoc: &AccessPolicyAssociation) -> Result<K8sPermission> {
    let policy = AccessPolicy::from_arn(&assoc.policy_arn)?;
    if let AccessScope::Namespaces(ns) = &assoc.scope {
        if ns.is_empty() {
            return Err(Error::InvalidArgument(format!("{}: a namespace scope needs at least one namespace", policy.name())));
        }
    }
    Ok(K8sPermission { policy_arn: assoc.policy_arn.clone(), cluster_role: policy.cluster_role().to_string(), scope: assoc.scope.clone() })
}

/// EKS resolves a role's access entry by the role itself, so its path does not matter.
pub(super) fn access_entry_key(principal: &Arn) -> String {
    strip_role_path(principal).unwrap_or_else(|| principal.to_string()).to_lowercase()
}

pub(super) fn map_access_entry(entries: &[AccessEntry], caller: &Caller, access_key_id: &str) -> Option<Result<Identity, MapMiss>> {
    let (index, entry, principal) = entries.iter().enumerate().find_map(|(i, e)| {
        let p = Arn::parse(&e.principal_arn).ok()?;
        (access_entry_key(&p) == caller.key).then_some((i, e, p))
    })?;
    let label = format!("access entry {}", entry.principal_arn);
    let default_username = match principal.resource() {
        Resource::Role { name, .. } => format!("arn:{}:sts::{}:assumed-role/{name}/{{{{SessionName}}}}", principal.partition(), principal.account()),
        _ => principal.to_string(),
    };
    let username = entry.username.clone().unwrap_or(default_username);
    let result = render_all(caller, access_key_id, &label, &username, &entry.kubernetes_groups).and_then(|(username, groups)| {
        let permissions = entry.policies.iter().map(permission_of).collect::<Result<Vec<_>>>().map_err(|e| refuse(caller, label.clone(), e.to_string()))?;
        Ok(Identity {
            username,
            groups,
            matched: Matched::AccessEntry { index, principal_arn: entry.principal_arn.clone() },
            arn: caller.arn.to_string(),
            canonical_arn: caller.canonical.to_string(),
            permissions,
        })
    });
    Some(result)
}

/// Who the caller is under `mode`: access entries (`API`, and first in `API_AND_CONFIG_MAP`, as EKS
/// does), then `aws-auth` (`CONFIG_MAP`, and second in `API_AND_CONFIG_MAP`). A miss says when
/// the source the mode ignores would have matched.
pub fn resolve(
    mode: AuthenticationMode,
    entries: &[AccessEntry],
    aws_auth: &AwsAuth,
    caller_arn: &str,
    access_key_id: &str,
    session_name: Option<&str>,
) -> Result<Identity, MapMiss> {
    let caller = parse_caller(caller_arn, session_name)?;
    if mode.uses_access_entries() {
        if let Some(r) = map_access_entry(entries, &caller, access_key_id) {
            return r;
        }
    }
    if mode.uses_config_map() {
        if let Some(r) = map_parsed(aws_auth, &caller, access_key_id) {
            return r;
        }
    }
    let mut candidates: Vec<(String, &str, &'static str)> = Vec::new();
    if mode.uses_access_entries() {
        candidates.extend(entries.iter().map(|e| (format!("access entry {}", e.principal_arn), e.principal_arn.as_str(), "principalArn")));
    }
    if mode.uses_config_map() {
        candidates.extend(aws_auth_candidates(aws_auth));
    }
    let closest = closest_of(candidates, &caller.canonical);
    let ignored = if !mode.uses_config_map() && map_parsed(aws_auth, &caller, access_key_id).is_some() {
        Some(format!("aws-auth maps it, but authentication mode {mode} ignores aws-auth: create an access entry or switch to API_AND_CONFIG_MAP"))
    } else if !mode.uses_access_entries() && map_access_entry(entries, &caller, access_key_id).is_some() {
        Some(format!(
            "an access entry exists for it, but authentication mode {mode} ignores access entries: switch to API_AND_CONFIG_MAP or add it to aws-auth"
        ))
    } else {
        None
    };
    let consulted = match mode {
        AuthenticationMode::ConfigMap => "aws-auth",
        AuthenticationMode::ApiAndConfigMap => "access entries or aws-auth",
        AuthenticationMode::Api => "access entries",
    };
    let fix = match mode {
        AuthenticationMode::ConfigMap => suggest_mapping(&caller),
        _ => format!("aws eks create-access-entry --principal-arn {} --kubernetes-groups <group>", caller.canonical),
    };
    Err(MapMiss {
        arn: caller.arn.to_string(),
        canonical_arn: Some(caller.canonical.to_string()),
        reason: ignored.unwrap_or_else(|| format!("nothing in {consulted} (authentication mode {mode}) names {}", caller.canonical)),
        closest,
        fix: Some(fix),
    })
}
