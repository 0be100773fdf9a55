//! Validation (what upstream would silently get wrong) and the store that refuses a bad ConfigMap as a whole.

use super::*;

pub(super) fn strip_role_path(arn: &Arn) -> Option<String> {
    match arn.resource() {
        Resource::Role { name, .. } => Some(format!("arn:{}:iam::{}:role/{name}", arn.partition(), arn.account())),
        _ => None,
    }
}

pub(super) fn same_identity(a: &Arn, b: &Arn) -> bool {
    canonicalize(a).to_string().eq_ignore_ascii_case(&canonicalize(b).to_string())
}

pub(super) struct Entry<'a> {
    pub(super) section: Section,
    pub(super) label: String,
    pub(super) arn: &'a str,
    pub(super) username: &'a str,
    pub(super) groups: &'a [String],
    pub(super) is_user_list: bool,
}

pub(super) fn entries(auth: &AwsAuth) -> Vec<Entry<'_>> {
    let roles = auth.map_roles.iter().enumerate().map(|(i, r)| Entry {
        section: Section::MapRoles(Some(i)),
        label: role_label(i, &r.rolearn),
        arn: &r.rolearn,
        username: &r.username,
        groups: &r.groups,
        is_user_list: false,
    });
    let users = auth.map_users.iter().enumerate().map(|(i, u)| Entry {
        section: Section::MapUsers(Some(i)),
        label: user_label(i, &u.userarn),
        arn: &u.userarn,
        username: &u.username,
        groups: &u.groups,
        is_user_list: true,
    });
    roles.chain(users).collect()
}

/// Judges an `aws-auth` mapping. `creator` is the ARN that created the cluster (EKS makes it
/// `system:masters` outside `aws-auth`); `system:masters` for anyone else is a warning.
pub fn validate(auth: &AwsAuth, creator: Option<&str>) -> Report {
    let mut report = Report::default();
    let creator = match creator.map(Arn::parse) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            report.warnings.push(finding(Section::Document, "the cluster creator", e.to_string(), None));
            None
        }
        None => None,
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    for e in entries(auth) {
        let field = if e.is_user_list { "userarn" } else { "rolearn" };
        let err = |report: &mut Report, p: String, fix: Option<String>| report.errors.push(finding(e.section.clone(), e.label.clone(), p, fix));
        let warn = |report: &mut Report, p: String, fix: Option<String>| report.warnings.push(finding(e.section.clone(), e.label.clone(), p, fix));

        let parsed = if e.arn.is_empty() {
            err(
                &mut report,
                format!("{field} is missing: the entry can never match"),
                Some(format!("{field}: arn:aws:iam::<account>:{}/<name>", if e.is_user_list { "user" } else { "role" })),
            );
            None
        } else {
            match Arn::parse(e.arn) {
                Ok(a) => Some(a),
                Err(x) => {
                    err(&mut report, format!("{field} is not a valid identity ARN: {x}"), None);
                    None
                }
            }
        };
        if let Some(arn) = &parsed {
            match arn.resource() {
                Resource::AssumedRole { .. } => {
                    let role = canonicalize(arn).to_string();
                    let hint = if e.is_user_list { " in mapRoles" } else { "" };
                    err(
                        &mut report,
                        format!("{field} is a role session ARN (what `aws sts get-caller-identity` prints), which the authenticator turns into the role before matching, so this entry never matches"),
                        Some(format!("rolearn: {role}{hint}")),
                    );
                }
                Resource::Role { path, .. } if path != "/" => {
                    let bare = strip_role_path(arn).unwrap_or_default();
                    err(
                        &mut report,
                        format!("{field} has the role path {path}, which STS drops from session ARNs, so upstream never matches this entry"),
                        Some(format!("rolearn: {bare}")),
                    );
                }
                Resource::OidcProvider { .. } => err(
                    &mut report,
                    format!("{field} names an OIDC provider, which never calls the cluster itself"),
                    Some("map the role its workloads assume instead".into()),
                ),
                Resource::Role { .. } if e.is_user_list => warn(
                    &mut report,
                    "userarn names a role; upstream matches it anyway, but eksctl and kite keep roles in mapRoles".into(),
                    Some(format!("move it to mapRoles as rolearn: {arn}")),
                ),
                Resource::User { .. } | Resource::FederatedUser { .. } | Resource::Root if !e.is_user_list => warn(
                    &mut report,
                    "rolearn names an IAM user, federated user or account root, not a role; upstream matches it anyway, but it belongs in mapUsers".into(),
                    Some(format!("move it to mapUsers as userarn: {arn}")),
                ),
                _ => {}
            }
        }
        let key = e.arn.to_lowercase();
        if !key.is_empty() {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                err(
                    &mut report,
                    format!("duplicates {first}; upstream keeps only one of them (the last in a list, mapRoles over mapUsers) without saying so"),
                    Some(format!("merge the two into one entry for {}", e.arn)),
                );
            } else {
                seen.push((key, e.label.clone()));
            }
        }

        let mut errs = Vec::new();
        let mut warns = Vec::new();
        if e.username.trim().is_empty() {
            let fix = match parsed.as_ref().map(|a| a.resource().clone()) {
                Some(Resource::Role { name, .. }) => {
                    format!("username: {name}:{{{{SessionName}}}}")
                }
                Some(Resource::User { name, .. }) => format!("username: {name}"),
                _ => "username: <kubernetes user name>".into(),
            };
            errs.push(("username is empty: the authenticator would hand Kubernetes an empty user".to_string(), Some(fix)));
        } else {
            check_template(e.username, "username", e.is_user_list, &mut errs, &mut warns);
        }
        for (gi, g) in e.groups.iter().enumerate() {
            if g.trim().is_empty() {
                errs.push((format!("groups[{gi}] is empty"), Some("remove it".into())));
            } else {
                check_template(g, &format!("groups[{gi}] '{g}'"), e.is_user_list, &mut errs, &mut warns);
            }
        }
        for (p, fix) in errs {
            err(&mut report, p, fix);
        }
        for (p, fix) in warns {
            warn(&mut report, p, fix);
        }
        if e.groups.is_empty() && !e.username.starts_with("system:") {
            warn(
                &mut report,
                format!("has no groups: '{}' authenticates but holds only what RBAC binds to that username (and system:authenticated)", e.username),
                Some(format!("add a group that a (Cluster)RoleBinding names, e.g. eksctl create iamidentitymapping --arn {} --group <group>", e.arn)),
            );
        }
        if e.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            let is_creator = matches!((&parsed, &creator), (Some(a), Some(c)) if same_identity(a, c));
            if !is_creator {
                let who = creator
                    .as_ref()
                    .map(|c| format!("only the cluster creator ({c}) needs it"))
                    .unwrap_or_else(|| "the cluster creator already has it outside aws-auth".into());
                warn(
                    &mut report,
                    format!("grants {PRIVILEGED_GROUP}, unrestricted cluster-admin that RBAC cannot narrow; least privilege: {who}"),
                    Some(format!("bind a narrower ClusterRole (view, edit) to a group of its own and list that group for {} instead", e.arn)),
                );
            }
        }
    }
    let mut seen_accounts: Vec<&str> = Vec::new();
    for (i, a) in auth.map_accounts.iter().enumerate() {
        let label = format!("mapAccounts[{i}] ({a})");
        if !is_account_id(a) {
            let digits: String = a.chars().filter(|c| c.is_ascii_digit()).collect();
            let fix = if is_account_id(&digits) {
                Some(format!("- \"{digits}\""))
            } else if !digits.is_empty() && digits.len() < 12 && a.chars().all(|c| c.is_ascii_digit()) {
                Some(format!("- \"{digits:0>12}\" if leading zeros were lost: quote account IDs so YAML keeps them"))
            } else {
                None
            };
            report.errors.push(finding(Section::MapAccounts(Some(i)), label, "is not a 12-digit AWS account ID", fix));
        } else if seen_accounts.contains(&a.as_str()) {
            report.warnings.push(finding(Section::MapAccounts(Some(i)), label, "is listed twice", Some("remove the second one".into())));
        } else {
            seen_accounts.push(a);
        }
    }
    if !auth.map_accounts.is_empty() {
        report.warnings.push(finding(
            Section::MapAccounts(None),
            "mapAccounts",
            "lets every user and role of these accounts in under its own ARN as username, with no groups",
            Some("map the identities that need access in mapRoles/mapUsers instead".into()),
        ));
    }
    if auth.map_roles.is_empty() && auth.map_users.is_empty() && auth.map_accounts.is_empty() {
        report.warnings.push(finding(
            Section::Document,
            "aws-auth",
            "maps nobody: only the cluster creator (and access entries) can reach the cluster, and nodes cannot join",
            None,
        ));
    }
    report
}

// ---------------------------------------------------------------------------------------------
// The store: refuse a bad ConfigMap as a whole

/// Reads and validates `new_yaml`; on any error the whole ConfigMap is refused (the caller keeps
/// `current`), and the report says so and what stays in force.
pub fn apply(current: &AwsAuth, new_yaml: &str) -> Result<AwsAuth, Report> {
    apply_as(current, new_yaml, None).map(|(a, _)| a)
}

pub(super) fn apply_as(current: &AwsAuth, new_yaml: &str, creator: Option<&str>) -> Result<(AwsAuth, Report), Report> {
    let (parsed, mut report) = parse_configmap(new_yaml);
    let refused = |mut report: Report| {
        report.warnings.push(finding(
            Section::Document,
            "aws-auth",
            format!(
                "refused as a whole: the last good mapping stays in force ({} mapRoles, {} mapUsers, {} mapAccounts entries)",
                current.map_roles.len(),
                current.map_users.len(),
                current.map_accounts.len()
            ),
            None,
        ));
        report
    };
    let Some(auth) = parsed.filter(|_| report.is_ok()) else {
        return Err(refused(report));
    };
    let mut judged = validate(&auth, creator);
    locate(new_yaml, &mut judged.errors);
    locate(new_yaml, &mut judged.warnings);
    report.errors.extend(judged.errors);
    report.warnings.extend(judged.warnings);
    if !report.is_ok() {
        return Err(refused(report));
    }
    for row in list(current) {
        let kept = list(&auth).iter().any(|r| r.arn.eq_ignore_ascii_case(&row.arn) && r.account == row.account);
        if !kept {
            let what = row.account.clone().unwrap_or_else(|| row.arn.clone());
            report.warnings.push(finding(Section::Document, what, format!("was mapped (as '{}') and this ConfigMap removes it", row.username), None));
        }
    }
    Ok((auth, report))
}

/// The mapping in force, replaced only by a ConfigMap that passes [`validate`].
#[derive(Clone, Debug, Default)]
pub struct AwsAuthStore {
    current: AwsAuth,
    creator: Option<String>,
}

impl AwsAuthStore {
    pub fn new(creator: Option<String>) -> AwsAuthStore {
        AwsAuthStore { current: AwsAuth::default(), creator }
    }

    pub fn current(&self) -> &AwsAuth {
        &self.current
    }

    /// Replaces the mapping when `yaml` passes; the warnings come back either way.
    pub fn apply(&mut self, yaml: &str) -> Result<Report, Report> {
        let (auth, report) = apply_as(&self.current, yaml, self.creator.as_deref())?;
        self.current = auth;
        Ok(report)
    }
}
