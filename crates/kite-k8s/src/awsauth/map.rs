//! Mapping a caller's ARN through `aws-auth`, as the authenticator does; a miss names the closest entry.

use super::*;

/// The entry that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Matched {
    MapRole { index: usize, rolearn: String },
    MapUser { index: usize, userarn: String },
    MapAccount { account: String },
    AccessEntry { index: usize, principal_arn: String },
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matched::MapRole { index, rolearn } => write!(f, "{}", role_label(*index, rolearn)),
            Matched::MapUser { index, userarn } => write!(f, "{}", user_label(*index, userarn)),
            Matched::MapAccount { account } => write!(f, "mapAccounts entry {account}"),
            Matched::AccessEntry { principal_arn, .. } => write!(f, "access entry {principal_arn}"),
        }
    }
}

/// Who the caller is in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
    pub matched: Matched,
    /// The caller's ARN as STS returned it.
    pub arn: String,
    /// The ARN the lookup used (a session becomes its role, without path).
    pub canonical_arn: String,
    /// Kubernetes permissions from access policies (access entries only).
    pub permissions: Vec<K8sPermission>,
}

/// The mapping entry nearest to a caller that matched nothing, and how it differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closest {
    pub entry: String,
    pub arn: String,
    pub distance: usize,
    pub difference: String,
}

/// Why a caller maps to nobody.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapMiss {
    pub arn: String,
    pub canonical_arn: Option<String>,
    pub reason: String,
    /// Boxed to keep `Result<Identity, MapMiss>` small.
    pub closest: Option<Box<Closest>>,
    pub fix: Option<String>,
}

impl fmt::Display for MapMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not mapped", self.arn)?;
        if let Some(c) = self.canonical_arn.as_ref().filter(|c| **c != self.arn) {
            write!(f, " (looked up as {c})")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(c) = &self.closest {
            write!(f, "; closest entry {}: {}", c.entry, c.difference)?;
        }
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MapMiss {}

pub(super) fn resource_kind(r: &Resource) -> &'static str {
    r.describe()
}

pub(super) fn resource_name(r: &Resource) -> Option<&str> {
    match r {
        Resource::Role { name, .. } | Resource::User { name, .. } | Resource::FederatedUser { name } => Some(name),
        Resource::AssumedRole { role_name, .. } => Some(role_name),
        _ => None,
    }
}

/// How an entry's ARN differs from the caller's canonical ARN, in words, with the fix.
pub(super) fn explain_difference(field: &str, entry: &str, caller: &Arn) -> String {
    let entry_arn = match Arn::parse(entry) {
        Ok(a) => a,
        Err(e) => return format!("{field} is not a valid ARN ({e})"),
    };
    if let Resource::AssumedRole { .. } = entry_arn.resource() {
        return format!("{field} is a role session ARN, which never matches; write {}", canonicalize(&entry_arn));
    }
    let mut parts = Vec::new();
    if let Resource::Role { path, name } = entry_arn.resource() {
        if path != "/" {
            let bare = format!("arn:{}:iam::{}:role/{name}", entry_arn.partition(), entry_arn.account());
            if bare.eq_ignore_ascii_case(&caller.to_string()) {
                return format!("{field} has path {path} which STS drops; write {bare}");
            }
            parts.push(format!("{field} has path {path} which STS drops"));
        }
    }
    if std::mem::discriminant(entry_arn.resource()) != std::mem::discriminant(caller.resource()) {
        parts.push(format!("{field} names {} but the caller is {}", resource_kind(entry_arn.resource()), resource_kind(caller.resource())));
    }
    if entry_arn.partition() != caller.partition() {
        parts.push(format!("partition {} in the entry vs {} in the caller's ARN", entry_arn.partition(), caller.partition()));
    }
    if entry_arn.account() != caller.account() {
        parts.push(format!("account {} in the entry vs {} in the caller's ARN", entry_arn.account(), caller.account()));
    }
    match (resource_name(entry_arn.resource()), resource_name(caller.resource())) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => parts.push(format!("name '{a}' in the entry vs '{b}' in the caller's ARN")),
        _ => {}
    }
    if parts.is_empty() {
        parts.push(format!("{entry} differs from {caller}"));
    }
    format!("{}; the caller needs an entry for {caller}", parts.join(", "))
}

pub(super) fn closest_of<'a>(candidates: impl IntoIterator<Item = (String, &'a str, &'static str)>, caller: &Arn) -> Option<Box<Closest>> {
    let key = caller.to_string().to_lowercase();
    candidates
        .into_iter()
        .map(|(entry, arn, field)| (strsim::levenshtein(&key, &arn.to_lowercase()), entry, arn, field))
        .min_by_key(|(d, ..)| *d)
        .map(|(distance, entry, arn, field)| Box::new(Closest { entry, arn: arn.to_string(), distance, difference: explain_difference(field, arn, caller) }))
}

pub(super) struct Caller {
    pub(super) arn: Arn,
    pub(super) canonical: Arn,
    pub(super) key: String,
    pub(super) session: String,
}

pub(super) fn parse_caller(caller_arn: &str, session_name: Option<&str>) -> Result<Caller, MapMiss> {
    let arn = Arn::parse(caller_arn).map_err(|e| MapMiss {
        arn: caller_arn.into(),
        canonical_arn: None,
        reason: format!("the caller's ARN cannot be read: {e}"),
        closest: None,
        fix: None,
    })?;
    let canonical = canonicalize(&arn);
    let session = match arn.resource() {
        Resource::AssumedRole { session_name, .. } => session_name.clone(),
        _ => session_name.unwrap_or_default().to_string(),
    };
    Ok(Caller { key: canonical.to_string().to_lowercase(), arn, canonical, session })
}

pub(super) fn refuse(caller: &Caller, entry: String, why: String) -> MapMiss {
    MapMiss {
        arn: caller.arn.to_string(),
        canonical_arn: Some(caller.canonical.to_string()),
        reason: format!("it matches {entry}, but {why}"),
        closest: None,
        fix: None,
    }
}

pub(super) fn render_all(caller: &Caller, access_key_id: &str, label: &str, username: &str, groups: &[String]) -> Result<(String, Vec<String>), MapMiss> {
    let input = TemplateInput { account: caller.arn.account(), session_name: &caller.session, access_key_id };
    let username = render(username, &input).map_err(|e| refuse(caller, label.to_string(), format!("its username {e}")))?;
    if username.is_empty() {
        return Err(refuse(caller, label.to_string(), "its username renders empty".into()));
    }
    let groups = groups
        .iter()
        .map(|g| render(g, &input))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| refuse(caller, label.to_string(), format!("a group {e}")))?;
    Ok((username, groups))
}

pub(super) fn map_parsed(auth: &AwsAuth, caller: &Caller, access_key_id: &str) -> Option<Result<Identity, MapMiss>> {
    let ident = |username, groups, matched| Identity {
        username,
        groups,
        matched,
        arn: caller.arn.to_string(),
        canonical_arn: caller.canonical.to_string(),
        permissions: Vec::new(),
    };
    // Upstream keeps the last entry of each ARN, and looks in mapRoles before mapUsers.
    if let Some((i, r)) = auth.map_roles.iter().enumerate().rev().find(|(_, r)| r.rolearn.to_lowercase() == caller.key) {
        let label = role_label(i, &r.rolearn);
        return Some(
            render_all(caller, access_key_id, &label, &r.username, &r.groups)
                .map(|(u, g)| ident(u, g, Matched::MapRole { index: i, rolearn: r.rolearn.clone() })),
        );
    }
    if let Some((i, u)) = auth.map_users.iter().enumerate().rev().find(|(_, u)| u.userarn.to_lowercase() == caller.key) {
        let label = user_label(i, &u.userarn);
        return Some(
            render_all(caller, access_key_id, &label, &u.username, &u.groups)
                .map(|(n, g)| ident(n, g, Matched::MapUser { index: i, userarn: u.userarn.clone() })),
        );
    }
    if auth.map_accounts.iter().any(|a| a == caller.arn.account()) {
        return Some(Ok(ident(caller.canonical.to_string(), Vec::new(), Matched::MapAccount { account: caller.arn.account().to_string() })));
    }
    None
}

pub(super) fn aws_auth_candidates(auth: &AwsAuth) -> Vec<(String, &str, &'static str)> {
    let roles = auth.map_roles.iter().enumerate().map(|(i, r)| (role_label(i, &r.rolearn), r.rolearn.as_str(), "rolearn"));
    let users = auth.map_users.iter().enumerate().map(|(i, u)| (user_label(i, &u.userarn), u.userarn.as_str(), "userarn"));
    roles.chain(users).collect()
}

pub(super) fn suggest_mapping(caller: &Caller) -> String {
    format!("eksctl create iamidentitymapping --arn {} --username <name> --group <group> (kite: create_mapping)", caller.canonical)
}

/// The authenticator's lookup: the caller's canonical ARN against `mapRoles`, then `mapUsers`
/// (case-insensitively, the last entry of an ARN winning), then its account against
/// `mapAccounts` (username = the canonical ARN, no groups). `session_name` is used only when the
/// ARN carries none (an assumed-role ARN's own session name wins, as STS is the authority).
pub fn map(auth: &AwsAuth, caller_arn: &str, access_key_id: &str, session_name: Option<&str>) -> Result<Identity, MapMiss> {
    let caller = parse_caller(caller_arn, session_name)?;
    if let Some(result) = map_parsed(auth, &caller, access_key_id) {
        return result;
    }
    Err(aws_auth_miss(auth, &caller))
}

pub(super) fn aws_auth_miss(auth: &AwsAuth, caller: &Caller) -> MapMiss {
    let closest = closest_of(aws_auth_candidates(auth), &caller.canonical);
    let reason = if auth.map_roles.is_empty() && auth.map_users.is_empty() && auth.map_accounts.is_empty() {
        "aws-auth maps nobody".to_string()
    } else {
        format!("no mapRoles or mapUsers entry is {} and account {} is not in mapAccounts", caller.canonical, caller.arn.account())
    };
    MapMiss { arn: caller.arn.to_string(), canonical_arn: Some(caller.canonical.to_string()), reason, closest, fix: Some(suggest_mapping(caller)) }
}
