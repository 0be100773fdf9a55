//! The RBAC authorizer. Security-sensitive: this must decide exactly as the API server's
//! `plugin/pkg/auth/authorizer/rbac` does, and the property tests hold it to an independent
//! brute-force evaluation.
//!
//! A request is allowed when some rule of a role bound to the user allows it: every
//! ClusterRoleBinding, then the RoleBindings of the request's namespace (none for a cluster-wide
//! or non-resource request). A binding applies through its first subject that names the user, one
//! of its groups, or the service account whose username the user is. RBAC only ever allows;
//! anything else is the authorizer's "no opinion", which the API server answers with 403.
//! Members of `system:masters` are allowed before RBAC is consulted, as the API server does.

use std::fmt;

use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus};
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use serde::{Deserialize, Serialize};

use crate::rbac::cani::parse_target;
use crate::rbac::load::{BindingView, RbacSnapshot};
use crate::rbac::rules::{compact, describe_mismatch, mismatches, quoted, rule_allows, Mismatch};
use crate::rbac::suggest::smallest_grant;
use crate::Result;

/// The group the API server authorizes for everything before consulting RBAC.
pub const PRIVILEGED_GROUP: &str = "system:masters";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// `system:serviceaccount:NS:NAME`, the username a service account authenticates as.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// Whether `user` is exactly `system:serviceaccount:NS:NAME` (the API server's `MatchesUsername`), without allocating.
fn is_service_account(user: &str, namespace: &str, name: &str) -> bool {
    user.strip_prefix(SERVICE_ACCOUNT_PREFIX).and_then(|r| r.strip_prefix(namespace)).and_then(|r| r.strip_prefix(':')) == Some(name)
}

/// `(namespace, name)` when `user` is a service account's username (two non-empty parts, as `SplitUsername` requires).
pub fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let (ns, name) = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What the authorizer sees of a request (`authorizer.Attributes`). A resource request leaves
/// `non_resource_url` empty; a non-resource request sets it and leaves the resource fields and
/// the namespace empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    /// "" is the core group.
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// "" for a cluster-wide request: only ClusterRoleBindings apply.
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_resource_url: Option<String>,
}

impl Attributes {
    /// `resource` or `resource/subresource`, as rules spell it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The API server's wording: `"get" resource "deployments.apps/scale" named "web" in namespace "dev"`.
    pub fn describe(&self) -> String {
        let scope = if self.namespace.is_empty() { "cluster-wide".to_string() } else { format!("in namespace {:?}", self.namespace) };
        if let Some(url) = &self.non_resource_url {
            return format!("{:?} nonResourceURL {url:?}", self.verb);
        }
        let mut what = self.resource.clone();
        if !self.api_group.is_empty() {
            what = format!("{what}.{}", self.api_group);
        }
        if !self.subresource.is_empty() {
            what = format!("{what}/{}", self.subresource);
        }
        let named = if self.name.is_empty() { String::new() } else { format!(" named {:?}", self.name) };
        format!("{:?} resource {what:?}{named} {scope}", self.verb)
    }

    fn who(&self) -> String {
        format!("user {:?} or any of its groups {}", self.user, quoted(&self.groups))
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum BindingKind {
    RoleBinding,
    ClusterRoleBinding,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BindingRef {
    pub kind: BindingKind,
    pub name: String,
    /// Set for a RoleBinding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl fmt::Display for BindingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{:?} {:?} in namespace {ns:?}", self.kind, self.name),
            None => write!(f, "{:?} {:?}", self.kind, self.name),
        }
    }
}

/// A binding's `roleRef`: `Role` or `ClusterRole` (anything else never resolves).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleName {
    pub kind: String,
    pub name: String,
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// The binding, subject, role and rule that allowed a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub binding: BindingRef,
    /// The binding's subject that names the user (a service account's namespace filled in from
    /// its RoleBinding when the subject omits it).
    pub subject: Subject,
    pub role: RoleName,
    pub rule_index: usize,
    pub rule: PolicyRule,
}

/// Why one rule of a considered role does not allow the request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleMiss {
    pub index: usize,
    pub rule: PolicyRule,
    pub mismatches: Vec<Mismatch>,
    pub why: String,
}

/// A binding that names the user but grants nothing for this request, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Considered {
    pub binding: BindingRef,
    pub subject: Subject,
    pub role: RoleName,
    /// False when the role reference does not resolve; `why` then says what is missing.
    pub role_found: bool,
    pub why: String,
    pub rules: Vec<RuleMiss>,
}

/// The smallest Role (or ClusterRole, for a cluster-wide or non-resource request) granting
/// exactly this request, and a binding of it to the user, as YAML ready for `kubectl apply -f -`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub role: RoleName,
    pub binding: BindingRef,
    pub yaml: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub allowed: bool,
    pub attributes: Attributes,
    /// One sentence a person can act on.
    pub reason: String,
    /// The first binding and rule that allowed the request (none for `system:masters`).
    pub granted_by: Option<Grant>,
    /// When denied and explained: every binding naming the user or its groups, and why none of its rules allows the request.
    pub bindings_considered: Vec<Considered>,
    /// When denied and explained: RoleBindings in other namespaces that would allow the same
    /// request there (the usual "works in one namespace, not in this one").
    pub granted_elsewhere: Vec<Grant>,
    /// When denied and explained: the smallest grant that would allow it.
    pub suggestion: Option<Suggestion>,
    /// Things about the request itself worth knowing (an unknown verb or resource type, a namespace ignored).
    pub warnings: Vec<String>,
}

fn binding_ref(b: &BindingView<'_>) -> BindingRef {
    BindingRef { kind: b.kind, name: b.name.to_string(), namespace: (!b.namespace.is_empty()).then(|| b.namespace.to_string()) }
}

fn role_name(b: &BindingView<'_>) -> RoleName {
    RoleName { kind: b.role_ref.kind.clone(), name: b.role_ref.name.clone() }
}

/// The subject as it applies in `namespace` (the binding's, "" for a ClusterRoleBinding): a
/// service account without a namespace takes the RoleBinding's, and never applies cluster-wide.
fn effective_subject(s: &Subject, namespace: &str) -> Option<Subject> {
    match s.kind.as_str() {
        "User" | "Group" => Some(s.clone()),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
            (!ns.is_empty()).then(|| Subject { namespace: Some(ns.to_string()), ..s.clone() })
        }
        _ => None,
    }
}

/// The API server's `appliesToUser`.
fn applies_to(attrs: &Attributes, s: &Subject, namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => attrs.user == s.name,
        "Group" => attrs.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
            !ns.is_empty() && is_service_account(&attrs.user, ns, &s.name)
        }
        _ => false,
    }
}

fn describe_subject(s: &Subject) -> String {
    match (s.kind.as_str(), s.namespace.as_deref()) {
        ("ServiceAccount", Some(ns)) => format!("ServiceAccount {:?}", format!("{ns}/{}", s.name)),
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

/// Bindings in the order the API server visits them: ClusterRoleBindings, then the RoleBindings
/// of the request's namespace when it has one.
fn scopes(attrs: &Attributes) -> impl Iterator<Item = (BindingKind, &str)> {
    let ns = attrs.namespace.as_str();
    [(BindingKind::ClusterRoleBinding, ""), (BindingKind::RoleBinding, ns)]
        .into_iter()
        .filter(|(k, ns)| *k == BindingKind::ClusterRoleBinding || !ns.is_empty())
}

/// Decides `attrs` against `snap`. With `explain`, a denial also lists every binding naming the
/// user and suggests the smallest grant; without it, a denial costs only the lookups.
pub fn evaluate(snap: &RbacSnapshot, attrs: &Attributes, explain: bool) -> Decision {
    let mut decision = Decision {
        allowed: false,
        attributes: attrs.clone(),
        reason: String::new(),
        granted_by: None,
        bindings_considered: Vec::new(),
        granted_elsewhere: Vec::new(),
        suggestion: None,
        warnings: Vec::new(),
    };
    if attrs.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        decision.allowed = true;
        decision.reason =
            format!("allowed: user {:?} is in group {PRIVILEGED_GROUP:?}, which the API server authorizes for everything before consulting RBAC", attrs.user);
        return decision;
    }
    let mut naming = 0;
    for (kind, ns) in scopes(attrs) {
        for b in snap.bindings_naming(kind, ns, &attrs.user, &attrs.groups) {
            // The index is exact, but the authorizer's own test also picks the subject to report.
            let Some(subject) = b.subjects.iter().find(|s| applies_to(attrs, s, ns)) else {
                continue;
            };
            naming += 1;
            let subject = effective_subject(subject, ns).unwrap_or_else(|| subject.clone());
            match snap.rules_for(b.role_ref, b.namespace) {
                Ok(rules) => {
                    if let Some((i, rule)) = rules.iter().enumerate().find(|(_, r)| rule_allows(attrs, r)) {
                        let grant = Grant { binding: binding_ref(&b), subject, role: role_name(&b), rule_index: i, rule: rule.clone() };
                        decision.allowed = true;
                        decision.bindings_considered.clear(); // only a denial lists them
                        decision.reason = format!(
                            "allowed: {} binds {} to {}; its rule #{i} {} grants {}",
                            grant.binding,
                            grant.role,
                            describe_subject(&grant.subject),
                            compact(rule),
                            attrs.describe()
                        );
                        decision.granted_by = Some(grant);
                        return decision;
                    }
                    if explain {
                        decision.bindings_considered.push(considered(attrs, &b, subject, rules));
                    }
                }
                Err(why) => {
                    if explain {
                        let (binding, role) = (binding_ref(&b), role_name(&b));
                        decision.bindings_considered.push(Considered { binding, subject, role, role_found: false, why, rules: Vec::new() });
                    }
                }
            }
        }
    }
    if explain && !attrs.namespace.is_empty() {
        decision.granted_elsewhere = granted_elsewhere(snap, attrs);
    }
    deny(&mut decision, naming, explain);
    decision
}

/// The same request in every other namespace with RoleBindings naming the user: which would allow it.
fn granted_elsewhere(snap: &RbacSnapshot, attrs: &Attributes) -> Vec<Grant> {
    let mut out = Vec::new();
    let mut namespaces: Vec<&str> = snap.binding_namespaces().filter(|ns| *ns != attrs.namespace).collect();
    namespaces.sort_unstable();
    for ns in namespaces {
        let there = Attributes { namespace: ns.to_string(), ..attrs.clone() };
        for b in snap.bindings_naming(BindingKind::RoleBinding, ns, &attrs.user, &attrs.groups) {
            let Some(subject) = b.subjects.iter().find(|s| applies_to(&there, s, ns)).and_then(|s| effective_subject(s, ns)) else {
                continue;
            };
            let Ok(rules) = snap.rules_for(b.role_ref, b.namespace) else {
                continue;
            };
            if let Some((i, rule)) = rules.iter().enumerate().find(|(_, r)| rule_allows(&there, r)) {
                out.push(Grant { binding: binding_ref(&b), subject, role: role_name(&b), rule_index: i, rule: rule.clone() });
            }
        }
    }
    out
}

fn considered(attrs: &Attributes, b: &BindingView<'_>, subject: Subject, rules: &[PolicyRule]) -> Considered {
    let misses: Vec<RuleMiss> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            let mismatches = mismatches(attrs, rule);
            let why = mismatches.iter().map(|m| describe_mismatch(attrs, rule, *m)).collect::<Vec<_>>().join(", and ");
            RuleMiss { index, rule: rule.clone(), mismatches, why }
        })
        .collect();
    let role = role_name(b);
    let why = match misses.as_slice() {
        [] => format!("{role} has no rules"),
        [only] => format!("the only rule of {role}, {}, does not apply: {}", compact(&only.rule), only.why),
        _ => {
            // The rule that fails on the fewest counts is usually the one that was meant to apply.
            let closest = misses.iter().min_by_key(|m| m.mismatches.len());
            let hint = closest.map(|m| format!(" (closest: rule #{} {}: {})", m.index, compact(&m.rule), m.why)).unwrap_or_default();
            format!("none of the {} rules of {role} applies{hint}", misses.len())
        }
    };
    Considered { binding: binding_ref(b), subject, role, role_found: true, why, rules: misses }
}

fn deny(decision: &mut Decision, naming: usize, explain: bool) {
    let attrs = &decision.attributes;
    let mut reason = if naming == 0 {
        let where_ = if attrs.namespace.is_empty() || attrs.non_resource_url.is_some() {
            "no ClusterRoleBinding".to_string()
        } else {
            format!("no ClusterRoleBinding, and no RoleBinding in namespace {:?},", attrs.namespace)
        };
        format!("denied: {where_} names {}, so nothing allows {}", attrs.who(), attrs.describe())
    } else {
        format!("denied: none of the {naming} binding(s) naming {} allows {}", attrs.who(), attrs.describe())
    };
    for c in &decision.bindings_considered {
        reason.push_str(&format!("; {} ({}): {}", c.binding, describe_subject(&c.subject), c.why));
    }
    for g in &decision.granted_elsewhere {
        reason.push_str(&format!("; {} would allow it there (through {})", g.binding, describe_subject(&g.subject)));
    }
    if explain {
        decision.suggestion = smallest_grant(attrs);
    }
    if let Some(s) = &decision.suggestion {
        let role_where = s.binding.namespace.as_ref().map(|ns| format!(" in namespace {ns:?}")).unwrap_or_default();
        reason.push_str(&format!(". The smallest grant is {}{role_where} with {:?} {:?} (YAML in the suggestion)", s.role, s.binding.kind, s.binding.name));
    }
    decision.reason = reason;
}

/// Like `kubectl who-can VERB TYPE[/NAME] -n NS`: every subject of every binding that allows the
/// request in `namespace` ("" for cluster-wide: ClusterRoleBindings only). `system:masters` is
/// always allowed and is not listed, as it is no binding.
pub fn who_can(snap: &RbacSnapshot, verb: &str, resource: &str, namespace: &str) -> Result<Vec<Grant>> {
    let target = parse_target(resource, None)?;
    let cluster_wide = target.non_resource_url.is_some() || target.namespaced == Some(false);
    let attrs = Attributes {
        verb: verb.to_string(),
        api_group: target.api_group,
        resource: target.resource,
        subresource: target.subresource,
        name: target.name,
        namespace: if cluster_wide { String::new() } else { namespace.to_string() },
        non_resource_url: target.non_resource_url,
        ..Attributes::default()
    };
    Ok(who_can_attributes(snap, &attrs))
}

/// [`who_can`] for a request already in attributes (its user and groups are ignored).
pub fn who_can_attributes(snap: &RbacSnapshot, attrs: &Attributes) -> Vec<Grant> {
    let mut out = Vec::new();
    for (kind, ns) in scopes(attrs) {
        for b in snap.bindings_in(kind, ns) {
            let Ok(rules) = snap.rules_for(b.role_ref, b.namespace) else {
                continue;
            };
            let Some((i, rule)) = rules.iter().enumerate().find(|(_, r)| rule_allows(attrs, r)) else {
                continue;
            };
            for subject in b.subjects.iter().filter_map(|s| effective_subject(s, ns)) {
                out.push(Grant { binding: binding_ref(&b), subject, role: role_name(&b), rule_index: i, rule: rule.clone() });
            }
        }
    }
    out
}

fn attributes_from_review(spec: &SubjectAccessReviewSpec) -> Result<Attributes, String> {
    let mut attrs = Attributes { user: spec.user.clone().unwrap_or_default(), groups: spec.groups.clone().unwrap_or_default(), ..Default::default() };
    match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(r), _) => {
            let s = |v: &Option<String>| v.clone().unwrap_or_default();
            attrs.verb = s(&r.verb);
            attrs.api_group = s(&r.group);
            attrs.resource = s(&r.resource);
            attrs.subresource = s(&r.subresource);
            attrs.name = s(&r.name);
            attrs.namespace = s(&r.namespace);
        }
        (None, Some(n)) => {
            attrs.verb = n.verb.clone().unwrap_or_default();
            attrs.non_resource_url = Some(n.path.clone().unwrap_or_default());
        }
        (None, None) => return Err("spec has neither resourceAttributes nor nonResourceAttributes".to_string()),
    }
    Ok(attrs)
}

/// Answers a `SubjectAccessReview` as an authorization webhook: `status.allowed` and
/// `status.reason` from [`evaluate`], `status.denied` false because RBAC never denies outright
/// (it has no opinion, leaving later authorizers free to allow). The user and groups are taken
/// as given: the API server has already authenticated them.
pub fn review(snap: &RbacSnapshot, mut sar: SubjectAccessReview) -> SubjectAccessReview {
    let status = match attributes_from_review(&sar.spec) {
        Ok(attrs) => {
            let d = evaluate(snap, &attrs, false);
            SubjectAccessReviewStatus { allowed: d.allowed, denied: Some(false), reason: Some(d.reason), evaluation_error: None }
        }
        Err(e) => SubjectAccessReviewStatus { allowed: false, denied: Some(false), reason: None, evaluation_error: Some(e) },
    };
    sar.status = Some(status);
    sar
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};

    const WORLD: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: health}
rules:
- {nonResourceURLs: [/healthz, /livez], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: dev}
rules:
- {apiGroups: [apps], resources: [deployments, deployments/scale], verbs: [get, update]}
- {apiGroups: [""], resources: [configmaps], resourceNames: [app-config], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-deployer, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: ServiceAccount, name: ci}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
subjects:
- {kind: Group, name: dev-team, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: health-for-all}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: health}
subjects:
- {kind: Group, name: "system:authenticated", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: broken}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: User, name: carol}
- {kind: ServiceAccount, name: ci}
"#;

    fn world() -> RbacSnapshot {
        RbacSnapshot::from_yaml(WORLD).unwrap()
    }

    fn req(user: &str, groups: &[&str], verb: &str, group: &str, resource: &str, ns: &str) -> Attributes {
        Attributes {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_role_binding_to_a_cluster_role_grants_only_in_its_namespace() {
        let snap = world();
        let d = evaluate(&snap, &req("alice", &["dev-team"], "list", "", "pods", "dev"), true);
        assert!(d.allowed, "{}", d.reason);
        let g = d.granted_by.unwrap();
        assert_eq!((g.binding.kind, g.binding.name.as_str(), g.role.kind.as_str()), (BindingKind::RoleBinding, "readers", "ClusterRole"));
        assert!(d.reason.contains(r#"RoleBinding "readers" in namespace "dev" binds ClusterRole "pod-reader" to Group "dev-team""#), "{}", d.reason);
        assert!(!evaluate(&snap, &req("alice", &["dev-team"], "list", "", "pods", "prod"), true).allowed);
        assert!(!evaluate(&snap, &req("alice", &["dev-team"], "list", "", "pods", ""), true).allowed, "cluster-wide needs a ClusterRoleBinding");
    }

    #[test]
    fn a_service_account_subject_without_namespace_takes_its_role_bindings_and_never_applies_cluster_wide() {
        let snap = world();
        let ci = "system:serviceaccount:dev:ci";
        let mut a = req(ci, &["system:serviceaccounts", "system:serviceaccounts:dev"], "update", "apps", "deployments", "dev");
        a.subresource = "scale".into();
        let d = evaluate(&snap, &a, true);
        assert!(d.allowed, "{}", d.reason);
        assert_eq!(d.granted_by.unwrap().subject.namespace.as_deref(), Some("dev"));
        assert!(!evaluate(&snap, &req("system:serviceaccount:prod:ci", &[], "get", "apps", "deployments", "dev"), true).allowed);
        // The ClusterRoleBinding "broken" names ServiceAccount "ci" without a namespace: it never applies.
        let d = evaluate(&snap, &req(ci, &[], "get", "apps", "deployments", ""), true);
        assert!(d.bindings_considered.is_empty(), "{:?}", d.bindings_considered);
    }

    #[test]
    fn a_denial_lists_the_bindings_that_name_the_user_and_why_each_falls_short() {
        let snap = world();
        let mut a = req("system:serviceaccount:dev:ci", &["system:authenticated"], "get", "", "configmaps", "dev");
        a.name = "other".into();
        let d = evaluate(&snap, &a, true);
        assert!(!d.allowed);
        let names: Vec<&str> = d.bindings_considered.iter().map(|c| c.binding.name.as_str()).collect();
        assert_eq!(names, ["health-for-all", "ci-deployer"], "cluster bindings first, as the API server visits them");
        let deployer = &d.bindings_considered[1];
        assert_eq!(deployer.rules[1].mismatches, [Mismatch::ResourceName]);
        assert!(
            deployer.why.contains(r#"closest: rule #1"#) && deployer.why.contains(r#"resourceNames ["app-config"] do not include "other""#),
            "{}",
            deployer.why
        );
        assert!(d.bindings_considered[0].why.contains("it is a nonResourceURLs rule"), "{}", d.bindings_considered[0].why);
        assert!(d.reason.contains("none of the 2 binding(s)"), "{}", d.reason);
    }

    #[test]
    fn a_cluster_role_binding_to_a_role_is_listed_as_unresolvable() {
        let d = evaluate(&world(), &req("carol", &[], "get", "apps", "deployments", "dev"), true);
        assert!(!d.allowed);
        let c = &d.bindings_considered[0];
        assert!(!c.role_found && c.why.contains("can only reference a ClusterRole"), "{}", c.why);
    }

    #[test]
    fn system_masters_is_allowed_before_rbac_with_nothing_bound() {
        let d = evaluate(&RbacSnapshot::default(), &req("kubernetes-admin", &["system:masters"], "delete", "", "nodes", ""), true);
        assert!(d.allowed && d.granted_by.is_none());
        assert!(d.reason.contains("system:masters"), "{}", d.reason);
    }

    #[test]
    fn non_resource_urls_are_decided_by_cluster_role_bindings_only() {
        let snap = world();
        let at = |url: &str, groups: &[&str]| Attributes {
            user: "bob".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            verb: "get".into(),
            non_resource_url: Some(url.into()),
            ..Default::default()
        };
        assert!(evaluate(&snap, &at("/healthz", &["system:authenticated"]), false).allowed);
        assert!(!evaluate(&snap, &at("/metrics", &["system:authenticated"]), false).allowed);
        assert!(!evaluate(&snap, &at("/healthz", &[]), false).allowed);
    }

    #[test]
    fn an_unknown_user_is_told_nothing_names_it_and_given_the_smallest_role() {
        let d = evaluate(&world(), &req("dave", &["system:authenticated"], "delete", "", "pods", "dev"), true);
        assert!(!d.allowed && d.bindings_considered.len() == 1, "{:?}", d.bindings_considered);
        let s = d.suggestion.unwrap();
        assert_eq!((s.role.kind.as_str(), s.binding.kind), ("Role", BindingKind::RoleBinding));
        assert!(d.reason.contains(r#"The smallest grant is Role "kite-delete-pods" in namespace "dev""#), "{}", d.reason);
        let nobody = evaluate(&world(), &req("erin", &[], "get", "", "pods", "dev"), false);
        assert!(nobody.reason.contains(r#"no ClusterRoleBinding, and no RoleBinding in namespace "dev", names user "erin""#), "{}", nobody.reason);
        assert!(nobody.suggestion.is_none(), "no suggestion unless explaining");
    }

    #[test]
    fn who_can_lists_every_subject_of_every_binding_that_allows_it() {
        let snap = world();
        let subjects = |verb: &str, resource: &str, ns: &str| -> Vec<String> {
            who_can(&snap, verb, resource, ns).unwrap().iter().map(|g| format!("{}:{}", g.subject.kind, g.subject.name)).collect()
        };
        assert_eq!(subjects("get", "pods", "dev"), ["Group:dev-team"]);
        assert_eq!(subjects("get", "pods", "prod"), Vec::<String>::new());
        assert_eq!(subjects("update", "deployments.apps", "dev"), ["ServiceAccount:ci"]);
        assert_eq!(subjects("get", "/livez", "dev"), ["Group:system:authenticated"]);
        assert_eq!(who_can(&snap, "get", "configmaps/app-config", "dev").unwrap()[0].rule_index, 1);
    }

    #[test]
    fn a_subject_access_review_is_answered_with_allowed_reason_and_no_opinion_on_denial() {
        let snap = world();
        let sar = |resource: Option<ResourceAttributes>, non: Option<NonResourceAttributes>| SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("alice".into()),
                groups: Some(vec!["dev-team".into()]),
                resource_attributes: resource,
                non_resource_attributes: non,
                ..Default::default()
            },
            ..Default::default()
        };
        let pods =
            |ns: &str| ResourceAttributes { namespace: Some(ns.into()), verb: Some("watch".into()), resource: Some("pods".into()), ..Default::default() };
        let status = review(&snap, sar(Some(pods("dev")), None)).status.unwrap();
        assert!(status.allowed && status.denied == Some(false));
        assert!(status.reason.unwrap().contains("readers"));
        let status = review(&snap, sar(Some(pods("prod")), None)).status.unwrap();
        assert!(!status.allowed && status.denied == Some(false) && status.reason.is_some());
        let healthz = NonResourceAttributes { path: Some("/healthz".into()), verb: Some("get".into()) };
        assert!(!review(&snap, sar(None, Some(healthz))).status.unwrap().allowed, "groups are taken as given: no system:authenticated added");
        assert!(review(&snap, sar(None, None)).status.unwrap().evaluation_error.is_some());
    }

    #[test]
    fn a_subject_access_review_round_trips_through_json_as_the_api_server_sends_it() {
        let body = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview",
            "spec":{"resourceAttributes":{"namespace":"dev","verb":"get","resource":"pods","subresource":"log"},
                    "user":"alice","groups":["dev-team","system:authenticated"]}}"#;
        let sar: SubjectAccessReview = serde_json::from_str(body).unwrap();
        let out = serde_json::to_value(review(&world(), sar)).unwrap();
        assert_eq!(out["status"]["allowed"], true);
        assert_eq!(out["status"]["denied"], false);
        assert_eq!(out["kind"], "SubjectAccessReview");
    }
}
