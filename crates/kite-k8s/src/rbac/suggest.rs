//! The smallest grant for a denied request: one rule naming exactly its verb, group, resource (and
//! subresource, and object name when it has one), in a Role for a namespaced request or a
//! ClusterRole for a cluster-wide or non-resource one, bound to the user.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::rbac::authorizer::{split_service_account, Attributes, BindingKind, BindingRef, RoleName, Suggestion};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Object names are capped well under the 253 characters Kubernetes allows, to stay readable.
const NAME_LIMIT: usize = 120;

/// Lower-case letters, digits, '-' and '.', as a DNS subdomain: anything else becomes '-'.
fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.replace('*', "all").chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let trimmed: String = out.trim_matches(|c| c == '-' || c == '.').chars().take(NAME_LIMIT).collect();
    let trimmed = trimmed.trim_end_matches(['-', '.']).to_string();
    if trimmed.is_empty() {
        "root".to_string()
    } else {
        trimmed
    }
}

/// Who to bind: the service account or user; a request with no user binds its first own group.
fn subject_for(attrs: &Attributes) -> Option<Subject> {
    if let Some((ns, name)) = split_service_account(&attrs.user) {
        return Some(Subject { kind: "ServiceAccount".into(), name: name.into(), namespace: Some(ns.into()), api_group: None });
    }
    let (kind, name) = if attrs.user.is_empty() {
        ("Group", attrs.groups.iter().find(|g| !g.starts_with("system:")).or(attrs.groups.first())?.clone())
    } else {
        ("User", attrs.user.clone())
    };
    Some(Subject { kind: kind.into(), name, namespace: None, api_group: Some(RBAC_GROUP.into()) })
}

pub(crate) fn smallest_grant(attrs: &Attributes) -> Option<Suggestion> {
    let subject = subject_for(attrs)?;
    let (rule, base) = match &attrs.non_resource_url {
        Some(url) => (
            PolicyRule { non_resource_urls: Some(vec![url.clone()]), verbs: vec![attrs.verb.clone()], ..Default::default() },
            format!("kite-{}-url-{}", attrs.verb, url),
        ),
        None => {
            let group = if attrs.api_group.is_empty() { String::new() } else { format!(".{}", attrs.api_group) };
            let sub = if attrs.subresource.is_empty() { String::new() } else { format!("-{}", attrs.subresource) };
            (
                PolicyRule {
                    api_groups: Some(vec![attrs.api_group.clone()]),
                    resources: Some(vec![attrs.combined_resource()]),
                    resource_names: (!attrs.name.is_empty()).then(|| vec![attrs.name.clone()]),
                    verbs: vec![attrs.verb.clone()],
                    ..Default::default()
                },
                format!("kite-{}-{}{sub}{group}", attrs.verb, attrs.resource),
            )
        }
    };
    let role_name = sanitize(&base);
    let binding_name = sanitize(&format!("{role_name}-{}", subject.name));
    let namespaced = attrs.non_resource_url.is_none() && !attrs.namespace.is_empty();
    let meta = |name: &str| ObjectMeta { name: Some(name.to_string()), namespace: namespaced.then(|| attrs.namespace.clone()), ..Default::default() };
    let role_kind = if namespaced { "Role" } else { "ClusterRole" };
    let role_ref = RoleRef { api_group: Some(RBAC_GROUP.into()), kind: role_kind.into(), name: role_name.clone() };
    let subjects = Some(vec![subject]);
    let (role_yaml, binding_yaml, binding_kind) = if namespaced {
        (
            serde_yaml_ng::to_string(&Role { metadata: meta(&role_name), rules: Some(vec![rule]) }),
            serde_yaml_ng::to_string(&RoleBinding { metadata: meta(&binding_name), role_ref, subjects }),
            BindingKind::RoleBinding,
        )
    } else {
        (
            serde_yaml_ng::to_string(&ClusterRole { metadata: meta(&role_name), rules: Some(vec![rule]), aggregation_rule: None }),
            serde_yaml_ng::to_string(&ClusterRoleBinding { metadata: meta(&binding_name), role_ref, subjects }),
            BindingKind::ClusterRoleBinding,
        )
    };
    // Serializing these plain structs cannot fail; if it ever did, no suggestion beats a wrong one.
    let yaml = format!("{}---\n{}", role_yaml.ok()?, binding_yaml.ok()?);
    Some(Suggestion {
        role: RoleName { kind: role_kind.into(), name: role_name },
        binding: BindingRef { kind: binding_kind, name: binding_name, namespace: namespaced.then(|| attrs.namespace.clone()) },
        yaml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{evaluate, RbacSnapshot};

    fn denied(attrs: &Attributes) -> Suggestion {
        smallest_grant(attrs).unwrap()
    }

    #[test]
    fn a_namespaced_request_gets_a_role_and_role_binding_that_grant_exactly_it() {
        let a = Attributes {
            user: "arn:aws:iam::860391000000:user/6248".into(),
            verb: "update".into(),
            api_group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            namespace: "web".into(),
            ..Default::default()
        };
        let s = denied(&a);
        assert_eq!(s.role.name, "kite-update-deployments-scale.apps");
        assert_eq!(s.binding.name, "kite-update-deployments-scale.apps-arn-aws-iam-860391000000-user-6248");
        assert!(s.yaml.contains("kind: Role\n") && s.yaml.contains("kind: RoleBinding\n") && s.yaml.contains("namespace: web"), "{}", s.yaml);
        // Applying the suggestion grants the request and nothing broader.
        let snap = RbacSnapshot::from_yaml(&s.yaml).unwrap();
        assert!(evaluate(&snap, &a, false).allowed);
        assert!(!evaluate(&snap, &Attributes { verb: "get".into(), ..a.clone() }, false).allowed);
        assert!(!evaluate(&snap, &Attributes { namespace: "other".into(), ..a.clone() }, false).allowed);
        assert!(!evaluate(&snap, &Attributes { subresource: String::new(), ..a }, false).allowed);
    }

    #[test]
    fn cluster_wide_and_non_resource_requests_get_a_cluster_role_bound_to_the_service_account() {
        let a =
            Attributes { user: "system:serviceaccount:mon:prom".into(), verb: "get".into(), non_resource_url: Some("/metrics".into()), ..Default::default() };
        let s = denied(&a);
        assert_eq!((s.role.kind.as_str(), s.role.name.as_str(), s.binding.kind), ("ClusterRole", "kite-get-url-metrics", BindingKind::ClusterRoleBinding));
        assert!(s.yaml.contains("kind: ServiceAccount") && s.yaml.contains("namespace: mon"), "{}", s.yaml);
        assert!(evaluate(&RbacSnapshot::from_yaml(&s.yaml).unwrap(), &a, false).allowed);
        let nodes = Attributes { user: "u".into(), verb: "*".into(), resource: "nodes".into(), name: "n1".into(), ..Default::default() };
        let s = denied(&nodes);
        assert_eq!(s.role.name, "kite-all-nodes");
        assert!(s.yaml.contains("resourceNames:\n  - n1"), "{}", s.yaml);
    }
}
