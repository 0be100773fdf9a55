//! Property tests: `can_i` on random small RBAC worlds agrees with a brute-force evaluation
//! written here from the Kubernetes documentation, without the crate's index, aggregation loop,
//! matchers or argument parser.
//!
//! Worlds are drawn from small vocabularies so that they collide often: wildcards in every rule
//! field, `*/subresource`, `resourceNames`, `nonResourceURLs` with trailing `*`, RoleBindings to
//! ClusterRoles, ClusterRoleBindings to Roles (which never resolve), references to missing roles,
//! service-account subjects with and without a namespace, and two levels of aggregation. Every
//! world goes through YAML and `RbacSnapshot::from_yaml`.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kite_k8s::{can_i, who_can_attributes, CanIArgs, RbacSnapshot};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::Config;

const NAMESPACES: &[&str] = &["default", "dev", "prod"];
const RULE_VERBS: &[&str] = &["get", "list", "update", "create", "*"];
const REQUEST_VERBS: &[&str] = &["get", "list", "update", "delete"];
const RULE_GROUPS: &[&str] = &["", "apps", "example.com", "*"];
const RULE_RESOURCES: &[&str] = &["pods", "pods/log", "*/log", "deployments", "deployments/scale", "*/scale", "widgets", "nodes", "*"];
const RULE_NAMES: &[&str] = &["web", "db"];
const RULE_URLS: &[&str] = &["/healthz", "/logs/*", "/log*", "*"];
const USERS: &[&str] = &["alice", "bob", "system:serviceaccount:dev:ci", "system:serviceaccount:prod:ci"];
const GROUPS: &[&str] = &["g1", "g2", "system:authenticated", "system:serviceaccounts"];

/// A `can-i` argument and what it means, written out by hand: (arg, --subresource, group,
/// resource, subresource, name, url, cluster-scoped).
struct Target(&'static str, Option<&'static str>, &'static str, &'static str, &'static str, &'static str, Option<&'static str>, bool);

const TARGETS: &[Target] = &[
    Target("pods", None, "", "pods", "", "", None, false),
    Target("pod", Some("log"), "", "pods", "log", "", None, false),
    Target("po/web", None, "", "pods", "", "web", None, false),
    Target("pods/db", Some("log"), "", "pods", "log", "db", None, false),
    Target("deployments.apps", None, "apps", "deployments", "", "", None, false),
    Target("deploy/web", Some("scale"), "apps", "deployments", "scale", "web", None, false),
    Target("deployments.v1.apps", Some("status"), "apps", "deployments", "status", "", None, false),
    Target("widgets.example.com", None, "example.com", "widgets", "", "", None, false),
    Target("widgets.example.com/db", Some("scale"), "example.com", "widgets", "scale", "db", None, false),
    Target("nodes", None, "", "nodes", "", "", None, true),
    Target("nodes/web", None, "", "nodes", "", "web", None, true),
    Target("*", None, "", "*", "", "", None, false),
    Target("/healthz", None, "", "", "", "", Some("/healthz"), true),
    Target("/logs/kube.log", None, "", "", "", "", Some("/logs/kube.log"), true),
    Target("/logs", None, "", "", "", "", Some("/logs"), true),
];

#[derive(Clone, Debug)]
struct TRule {
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

#[derive(Clone, Debug)]
struct TRole {
    namespace: &'static str,
    /// Cluster roles only: carries label `agg: yes`, `agg2: yes`.
    to_agg: bool,
    to_agg2: bool,
    rules: Vec<TRule>,
}

#[derive(Clone, Debug)]
struct TSubject {
    kind: String,
    name: String,
    namespace: String,
}

impl TSubject {
    fn new(kind: &str, name: &str, namespace: &str) -> Self {
        TSubject { kind: kind.into(), name: name.into(), namespace: namespace.into() }
    }
}

#[derive(Clone, Debug)]
struct TBinding {
    /// "" for a ClusterRoleBinding.
    namespace: &'static str,
    ref_kind: &'static str,
    ref_name: String,
    subjects: Vec<TSubject>,
}

#[derive(Clone, Debug)]
struct World {
    /// Named r0, r1, …
    roles: Vec<TRole>,
    /// Named c0, c1, …; besides them "agg" gathers every `agg: yes` role and "agg2" gathers
    /// "agg" and every `agg2: yes` role.
    cluster_roles: Vec<TRole>,
    bindings: Vec<TBinding>,
}

#[derive(Clone, Debug)]
struct Query {
    verb: &'static str,
    target: usize,
    namespace: Option<&'static str>,
    all_namespaces: bool,
    user: &'static str,
    groups: Vec<&'static str>,
    masters: bool,
    explain: bool,
}

/// One to `max` entries of `from`, or (as often) just the wildcard, so that rules often apply.
fn some(from: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        1 => subsequence(from, 1..=max.min(from.len())).prop_map(|v| v.into_iter().map(str::to_string).collect()),
        1 => Just(vec!["*".to_string()]),
    ]
}

fn owned(v: &Option<Vec<String>>) -> Vec<String> {
    v.clone().unwrap_or_default()
}

fn rule() -> impl Strategy<Value = TRule> {
    let resource_rule = (
        some(RULE_VERBS, 2),
        some(RULE_GROUPS, 2),
        some(RULE_RESOURCES, 3),
        prop_oneof![4 => Just(vec![]), 1 => subsequence(RULE_NAMES, 1).prop_map(|v| v.into_iter().map(str::to_string).collect())],
    )
        .prop_map(|(verbs, groups, resources, names)| TRule { verbs, groups, resources, names, urls: vec![] });
    let url_rule = (some(RULE_VERBS, 2), some(RULE_URLS, 2)).prop_map(|(verbs, urls)| TRule { verbs, groups: vec![], resources: vec![], names: vec![], urls });
    prop_oneof![4 => resource_rule, 1 => url_rule]
}

fn role() -> impl Strategy<Value = TRole> {
    (select(NAMESPACES), any::<bool>(), prop::bool::weighted(0.3), prop::collection::vec(rule(), 0..4)).prop_map(|(namespace, to_agg, to_agg2, rules)| TRole {
        namespace,
        to_agg,
        to_agg2,
        rules,
    })
}

fn subject() -> impl Strategy<Value = TSubject> {
    prop_oneof![
        2 => select(&["alice", "bob", "carol"][..]).prop_map(|name| TSubject::new("User", name, "")),
        2 => select(GROUPS).prop_map(|name| TSubject::new("Group", name, "")),
        2 => select(&["", "dev", "prod"][..]).prop_map(|namespace| TSubject::new("ServiceAccount", "ci", namespace)),
        1 => Just(TSubject::new("Robot", "alice", "")),
    ]
}

fn binding() -> impl Strategy<Value = TBinding> {
    let role_ref = prop_oneof![
        4 => (0..3usize).prop_map(|i| ("Role", format!("r{i}"))),
        4 => (0..3usize).prop_map(|i| ("ClusterRole", format!("c{i}"))),
        2 => select(&["agg", "agg2", "missing"][..]).prop_map(|n| ("ClusterRole", n.to_string())),
        1 => Just(("Bogus", "c0".to_string())),
    ];
    (prop_oneof![1 => Just(""), 2 => select(NAMESPACES)], role_ref, prop::collection::vec(subject(), 0..4))
        .prop_map(|(namespace, (ref_kind, ref_name), subjects)| TBinding { namespace, ref_kind, ref_name, subjects })
}

fn world() -> impl Strategy<Value = World> {
    (prop::collection::vec(role(), 0..5), prop::collection::vec(role(), 1..4), prop::collection::vec(binding(), 0..12))
        .prop_map(|(roles, cluster_roles, bindings)| World { roles, cluster_roles, bindings })
}

fn query() -> impl Strategy<Value = Query> {
    (
        select(REQUEST_VERBS),
        0..TARGETS.len(),
        prop_oneof![Just(None), select(NAMESPACES).prop_map(Some)],
        prop::bool::weighted(0.15),
        select(USERS),
        prop::collection::vec(select(GROUPS), 0..2),
        prop::bool::weighted(0.05),
        any::<bool>(),
    )
        .prop_map(|(verb, target, namespace, all_namespaces, user, groups, masters, explain)| Query {
            verb,
            target,
            namespace,
            all_namespaces,
            user,
            groups,
            masters,
            explain,
        })
}

// ---------------------------------------------------------------------------------------------
// The world as Kubernetes objects, through YAML
// ---------------------------------------------------------------------------------------------

fn strings<S: AsRef<str>>(v: &[S]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.iter().map(|s| s.as_ref().to_string()).collect())
}

fn policy_rule(r: &TRule) -> PolicyRule {
    PolicyRule {
        verbs: r.verbs.clone(),
        api_groups: strings(&r.groups),
        resources: strings(&r.resources),
        resource_names: strings(&r.names),
        non_resource_urls: strings(&r.urls),
    }
}

fn label_selector(key: &str) -> AggregationRule {
    AggregationRule {
        cluster_role_selectors: Some(vec![LabelSelector { match_labels: Some(BTreeMap::from([(key.to_string(), "yes".to_string())])), ..Default::default() }]),
    }
}

fn yaml(world: &World) -> String {
    let mut docs: Vec<String> = Vec::new();
    let mut push = |r: Result<String, serde_yaml_ng::Error>| docs.push(r.unwrap());
    for (i, r) in world.roles.iter().enumerate() {
        push(serde_yaml_ng::to_string(&Role {
            metadata: ObjectMeta { name: Some(format!("r{i}")), namespace: Some(r.namespace.into()), ..Default::default() },
            rules: Some(r.rules.iter().map(policy_rule).collect()),
        }));
    }
    for (i, r) in world.cluster_roles.iter().enumerate() {
        let mut labels = BTreeMap::new();
        if r.to_agg {
            labels.insert("agg".to_string(), "yes".to_string());
        }
        if r.to_agg2 {
            labels.insert("agg2".to_string(), "yes".to_string());
        }
        push(serde_yaml_ng::to_string(&ClusterRole {
            metadata: ObjectMeta { name: Some(format!("c{i}")), labels: Some(labels), ..Default::default() },
            rules: Some(r.rules.iter().map(policy_rule).collect()),
            aggregation_rule: None,
        }));
    }
    push(serde_yaml_ng::to_string(&ClusterRole {
        metadata: ObjectMeta { name: Some("agg".into()), labels: Some(BTreeMap::from([("agg2".to_string(), "yes".to_string())])), ..Default::default() },
        rules: None,
        aggregation_rule: Some(label_selector("agg")),
    }));
    push(serde_yaml_ng::to_string(&ClusterRole {
        metadata: ObjectMeta { name: Some("agg2".into()), ..Default::default() },
        // Stale rules the aggregation must replace.
        rules: Some(vec![PolicyRule { verbs: vec!["*".into()], api_groups: strings(&["*"]), resources: strings(&["*"]), ..Default::default() }]),
        aggregation_rule: Some(label_selector("agg2")),
    }));
    for (i, b) in world.bindings.iter().enumerate() {
        let role_ref = RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: b.ref_kind.into(), name: b.ref_name.clone() };
        let subjects = Some(
            b.subjects
                .iter()
                .map(|s| Subject {
                    kind: s.kind.clone(),
                    name: s.name.clone(),
                    namespace: (!s.namespace.is_empty()).then(|| s.namespace.clone()),
                    api_group: None,
                })
                .collect(),
        );
        if b.namespace.is_empty() {
            push(serde_yaml_ng::to_string(&ClusterRoleBinding {
                metadata: ObjectMeta { name: Some(format!("b{i}")), ..Default::default() },
                role_ref,
                subjects,
            }));
        } else {
            push(serde_yaml_ng::to_string(&RoleBinding {
                metadata: ObjectMeta { name: Some(format!("b{i}")), namespace: Some(b.namespace.into()), ..Default::default() },
                role_ref,
                subjects,
            }));
        }
    }
    docs.join("---\n")
}

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// The request as the API server would see it, from the hand-written target table.
struct Request {
    user: String,
    groups: Vec<String>,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
    namespace: String,
    url: Option<String>,
}

fn request(q: &Query) -> Request {
    let t = &TARGETS[q.target];
    let mut groups: Vec<String> = q.groups.iter().map(|g| g.to_string()).collect();
    if q.masters {
        groups.push("system:masters".into());
    }
    // Impersonation: a service account with no groups given gets its own; everyone is authenticated.
    if groups.is_empty() && q.user.starts_with("system:serviceaccount:") {
        let ns = q.user.split(':').nth(2).unwrap();
        groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let namespace = if t.7 || q.all_namespaces { "" } else { q.namespace.unwrap_or("default") };
    Request {
        user: q.user.into(),
        groups,
        verb: q.verb.into(),
        group: t.2.into(),
        resource: t.3.into(),
        subresource: t.1.map_or(t.4, |s| s).into(),
        name: t.5.into(),
        namespace: namespace.into(),
        url: t.6.map(str::to_string),
    }
}

fn oracle_rule_allows(req: &Request, r: &TRule) -> bool {
    let verb = r.verbs.iter().any(|v| v == "*" || *v == req.verb);
    match &req.url {
        Some(url) => verb && r.urls.iter().any(|u| u == "*" || u == url || (u.ends_with('*') && url.starts_with(u.trim_end_matches('*')))),
        None => {
            let wanted = if req.subresource.is_empty() { req.resource.clone() } else { format!("{}/{}", req.resource, req.subresource) };
            let any_sub = format!("*/{}", req.subresource);
            verb && r.groups.iter().any(|g| g == "*" || *g == req.group)
                && r.resources.iter().any(|x| x == "*" || *x == wanted || (!req.subresource.is_empty() && *x == any_sub))
                && (r.names.is_empty() || r.names.contains(&req.name))
        }
    }
}

/// Rules of every cluster role by name, aggregation spelled out: "agg" is the union of the
/// labelled roles, "agg2" of "agg" and its own labelled roles.
fn cluster_rules(world: &World) -> BTreeMap<String, Vec<TRule>> {
    let mut out: BTreeMap<String, Vec<TRule>> = BTreeMap::new();
    for (i, r) in world.cluster_roles.iter().enumerate() {
        out.insert(format!("c{i}"), r.rules.clone());
    }
    let agg: Vec<TRule> = world.cluster_roles.iter().filter(|r| r.to_agg).flat_map(|r| r.rules.clone()).collect();
    let mut agg2 = agg.clone();
    agg2.extend(world.cluster_roles.iter().filter(|r| r.to_agg2).flat_map(|r| r.rules.clone()));
    out.insert("agg".into(), agg);
    out.insert("agg2".into(), agg2);
    out
}

fn subject_matches(req: &Request, s: &TSubject, binding_namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => req.user == s.name,
        "Group" => req.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() { binding_namespace } else { &s.namespace };
            !ns.is_empty() && req.user == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

/// (allowed, number of bindings that name the user and apply to the request's namespace)
fn oracle(world: &World, req: &Request) -> (bool, usize) {
    if req.groups.iter().any(|g| g == "system:masters") {
        return (true, 0);
    }
    let cluster = cluster_rules(world);
    let mut naming = 0;
    let mut allowed = false;
    for b in &world.bindings {
        let applies_here = b.namespace.is_empty() || (!req.namespace.is_empty() && b.namespace == req.namespace);
        if !applies_here || !b.subjects.iter().any(|s| subject_matches(req, s, b.namespace)) {
            continue;
        }
        naming += 1;
        let rules: Vec<TRule> = match b.ref_kind {
            "ClusterRole" => cluster.get(&b.ref_name).cloned().unwrap_or_default(),
            "Role" if !b.namespace.is_empty() => {
                let found = b.ref_name.strip_prefix('r').and_then(|i| i.parse::<usize>().ok()).and_then(|i| world.roles.get(i));
                found.filter(|r| r.namespace == b.namespace).map(|r| r.rules.clone()).unwrap_or_default()
            }
            _ => vec![],
        };
        allowed |= rules.iter().any(|r| oracle_rule_allows(req, r));
    }
    (allowed, naming)
}

fn args(q: &Query) -> CanIArgs {
    let t = &TARGETS[q.target];
    let mut groups: Vec<String> = q.groups.iter().map(|g| g.to_string()).collect();
    if q.masters {
        groups.push("system:masters".into());
    }
    CanIArgs {
        verb: q.verb.into(),
        resource: t.0.into(),
        subresource: t.1.map(str::to_string),
        namespace: q.namespace.map(str::to_string),
        all_namespaces: q.all_namespaces,
        as_user: Some(q.user.into()),
        as_groups: groups,
        explain: q.explain,
    }
}

proptest! {
    #![proptest_config(Config { cases: 1000, ..Config::default() })]

    #[test]
    fn can_i_agrees_with_a_brute_force_evaluation_on_random_worlds(world in world(), queries in prop::collection::vec(query(), 12)) {
        let snap = RbacSnapshot::from_yaml(&yaml(&world)).unwrap();
        for q in &queries {
            let req = request(q);
            let d = can_i(&snap, &args(q)).unwrap();
            let (allowed, naming) = oracle(&world, &req);
            prop_assert_eq!(d.allowed, allowed, "{:?}\n{}", q, d.reason);

            // The attributes are what the oracle derived independently.
            let a = &d.attributes;
            prop_assert_eq!(
                (&a.api_group, &a.resource, &a.subresource, &a.name, &a.namespace, &a.non_resource_url),
                (&req.group, &req.resource, &req.subresource, &req.name, &req.namespace, &req.url)
            );
            let mut groups = a.groups.clone();
            groups.sort();
            let mut expected = req.groups.clone();
            expected.sort();
            prop_assert_eq!(groups, expected);

            if d.allowed {
                prop_assert!(d.bindings_considered.is_empty() && d.suggestion.is_none());
                if let Some(g) = &d.granted_by {
                    let rule = TRule {
                        verbs: g.rule.verbs.clone(),
                        groups: owned(&g.rule.api_groups),
                        resources: owned(&g.rule.resources),
                        names: owned(&g.rule.resource_names),
                        urls: owned(&g.rule.non_resource_urls),
                    };
                    prop_assert!(oracle_rule_allows(&req, &rule), "granting rule does not allow: {:?}", g);
                } else {
                    prop_assert!(q.masters);
                }
            } else if q.explain {
                prop_assert_eq!(d.bindings_considered.len(), naming, "{}", d.reason);
                prop_assert!(d.bindings_considered.iter().all(|c| !c.rules.iter().any(|m| m.mismatches.is_empty())));
                prop_assert!(d.suggestion.is_some());
            }

            // who-can inverts can-i: some listed subject names this user exactly when RBAC allows it.
            if !q.masters {
                let grants = who_can_attributes(&snap, a);
                let named = grants.iter().any(|g| {
                    let s = TSubject::new(&g.subject.kind, &g.subject.name, g.subject.namespace.as_deref().unwrap_or_default());
                    subject_matches(&req, &s, "")
                });
                prop_assert_eq!(named, allowed);
            }
        }
    }

    #[test]
    fn an_applied_suggestion_allows_exactly_the_denied_request(world in world(), q in query()) {
        let snap = RbacSnapshot::from_yaml(&yaml(&world)).unwrap();
        let d = can_i(&snap, &CanIArgs { explain: true, ..args(&q) }).unwrap();
        if let Some(s) = d.suggestion {
            let fixed = RbacSnapshot::from_yaml(&format!("{}---\n{}", yaml(&world), s.yaml)).unwrap();
            prop_assert!(can_i(&fixed, &args(&q)).unwrap().allowed, "{}", s.yaml);
            let other = CanIArgs { verb: if q.verb == "delete" { "get".into() } else { "delete".into() }, ..args(&q) };
            let before = can_i(&snap, &other).unwrap().allowed;
            prop_assert_eq!(can_i(&fixed, &other).unwrap().allowed, before, "the suggestion granted another verb too");
        }
    }
}
