//! `can-i` checks per second over 10 000 bindings, and that a check does not grow with the number
//! of bindings (they are indexed by subject: a check reads only the bindings naming the user or
//! one of its groups).
//!
//! The world: 100 namespaces with 3 Roles each, the built-in-style aggregated view/edit/admin
//! ClusterRoles plus 40 custom ones, and N bindings (one in ten a ClusterRoleBinding) spread over
//! 2 000 users, 200 groups and a service account per namespace. The checked user `me` (group
//! `team-7`) holds the same 5 bindings in every world size.
//!
//! Run: `cargo bench -p kite-k8s --bench can_i -- --warm-up-time 1 --measurement-time 3`
//! Criterion prints each check's time and, as `thrpt`, checks per second.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kite_k8s::{can_i, CanIArgs, Decision, RbacObjects, RbacSnapshot};

const NAMESPACES: usize = 100;
const USERS: usize = 2_000;
const GROUPS: usize = 200;
const CUSTOM_CLUSTER_ROLES: usize = 40;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule { api_groups: Some(v(groups)), resources: Some(v(resources)), verbs: v(verbs), ..Default::default() }
}

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

fn aggregated(name: &str, selects: &str, labels: &[(&str, &str)]) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(format!("rbac.authorization.k8s.io/aggregate-to-{selects}"), "true".to_string())])),
                ..Default::default()
            }]),
        }),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: kind.into(), name: name.into() }
}

fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(str::to_string),
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
    }
}

fn ns(i: usize) -> String {
    format!("ns-{:03}", i % NAMESPACES)
}

fn world(total_bindings: usize) -> RbacSnapshot {
    let mut o = RbacObjects::default();
    o.cluster_roles.push(aggregated("admin", "admin", &[]));
    o.cluster_roles.push(aggregated("edit", "edit", &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")]));
    o.cluster_roles.push(aggregated("view", "view", &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")]));
    let source = |name: &str, to: &str, rules: Vec<PolicyRule>| ClusterRole {
        metadata: meta(name, None, &[(&format!("rbac.authorization.k8s.io/aggregate-to-{to}"), "true")]),
        rules: Some(rules),
        aggregation_rule: None,
    };
    o.cluster_roles.push(source(
        "system:aggregate-to-view",
        "view",
        vec![
            rule(&[""], &["pods", "pods/log", "services", "endpoints", "configmaps", "persistentvolumeclaims"], &["get", "list", "watch"]),
            rule(&["apps"], &["deployments", "replicasets", "statefulsets", "daemonsets"], &["get", "list", "watch"]),
            rule(&["batch"], &["jobs", "cronjobs"], &["get", "list", "watch"]),
        ],
    ));
    o.cluster_roles.push(source(
        "system:aggregate-to-edit",
        "edit",
        vec![
            rule(&[""], &["pods", "pods/exec", "services", "configmaps", "secrets"], &["create", "delete", "patch", "update"]),
            rule(&["apps"], &["deployments", "deployments/scale", "statefulsets"], &["create", "delete", "patch", "update"]),
        ],
    ));
    o.cluster_roles.push(source("system:aggregate-to-admin", "admin", vec![rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], &["*"])]));
    for i in 0..CUSTOM_CLUSTER_ROLES {
        o.cluster_roles.push(ClusterRole {
            metadata: meta(&format!("custom-{i:02}"), None, &[]),
            rules: Some(vec![
                rule(&[""], &["nodes", "namespaces"], &["get", "list"]),
                rule(&["example.com"], &[&format!("widgets{i}")], &["get", "list", "watch"]),
                rule(&["apps"], &["deployments"], &["get"]),
            ]),
            aggregation_rule: None,
        });
    }
    for n in 0..NAMESPACES {
        for r in 0..3 {
            o.roles.push(Role {
                metadata: meta(&format!("role-{r}"), Some(&ns(n)), &[]),
                rules: Some(vec![rule(&[""], &["configmaps"], &["get", "list"]), rule(&["apps"], &["deployments"], &["get", "update"])]),
            });
        }
    }

    // The checked user's own bindings: edit in ns-042 (directly), view in three namespaces (through
    // its group) and custom-07 cluster-wide.
    o.role_bindings.push(RoleBinding {
        metadata: meta("me-edit", Some("ns-042"), &[]),
        role_ref: role_ref("ClusterRole", "edit"),
        subjects: Some(vec![subject("User", "me", None)]),
    });
    for n in [3, 17, 64] {
        o.role_bindings.push(RoleBinding {
            metadata: meta("team-7-view", Some(&ns(n)), &[]),
            role_ref: role_ref("ClusterRole", "view"),
            subjects: Some(vec![subject("Group", "team-7", None)]),
        });
    }
    o.cluster_role_bindings.push(ClusterRoleBinding {
        metadata: meta("me-nodes", None, &[]),
        role_ref: role_ref("ClusterRole", "custom-07"),
        subjects: Some(vec![subject("User", "me", None)]),
    });

    let mine = o.role_bindings.len() + o.cluster_role_bindings.len();
    for i in mine..total_bindings {
        let who = match i % 4 {
            0 | 1 => subject("User", &format!("user-{:04}", (i * 7) % USERS), None),
            2 => subject("Group", &format!("group-{:03}", (i * 13) % GROUPS), None),
            _ => subject("ServiceAccount", "builder", Some(&ns(i * 3))),
        };
        if i % 10 == 0 {
            let role = format!("custom-{:02}", i % CUSTOM_CLUSTER_ROLES);
            o.cluster_role_bindings.push(ClusterRoleBinding {
                metadata: meta(&format!("crb-{i}"), None, &[]),
                role_ref: role_ref("ClusterRole", &role),
                subjects: Some(vec![who]),
            });
        } else {
            let (kind, name) = match i % 3 {
                0 => ("Role", format!("role-{}", i % 3)),
                1 => ("ClusterRole", ["view", "edit", "admin"][i % 3].to_string()),
                _ => ("ClusterRole", format!("custom-{:02}", i % CUSTOM_CLUSTER_ROLES)),
            };
            o.role_bindings.push(RoleBinding {
                metadata: meta(&format!("rb-{i}"), Some(&ns(i)), &[]),
                role_ref: role_ref(kind, &name),
                subjects: Some(vec![who]),
            });
        }
    }
    RbacSnapshot::new(o).unwrap_or_else(|e| panic!("{e}"))
}

struct Check {
    name: &'static str,
    args: CanIArgs,
    allowed: bool,
}

fn checks() -> Vec<Check> {
    let args = |verb: &str, resource: &str, namespace: Option<&str>, explain: bool| CanIArgs {
        verb: verb.into(),
        resource: resource.into(),
        namespace: namespace.map(str::to_string),
        as_user: Some("me".into()),
        as_groups: vec!["team-7".into()],
        explain,
        ..CanIArgs::default()
    };
    vec![
        Check { name: "allowed_via_role_binding_to_aggregated_edit", args: args("get", "pods", Some("ns-042"), false), allowed: true },
        Check { name: "allowed_via_group_role_binding", args: args("list", "deployments.apps", Some("ns-064"), false), allowed: true },
        Check { name: "allowed_via_cluster_role_binding", args: args("list", "nodes", None, false), allowed: true },
        Check { name: "denied_without_explanation", args: args("delete", "secrets", Some("ns-017"), false), allowed: false },
        Check { name: "denied_explained_with_suggestion", args: args("delete", "secrets", Some("ns-017"), true), allowed: false },
    ]
}

fn run(snap: &RbacSnapshot, args: &CanIArgs) -> Decision {
    can_i(snap, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Fails the run if a check does not decide what it is meant to measure.
fn verify(snap: &RbacSnapshot, check: &Check) {
    let d = run(snap, &check.args);
    assert_eq!(d.allowed, check.allowed, "{}: {}", check.name, d.reason);
    if check.args.explain {
        assert!(d.suggestion.is_some() && d.bindings_considered.len() == 2, "{}: {}", check.name, d.reason);
    }
}

fn can_i_10k(c: &mut Criterion) {
    let snap = world(10_000);
    assert_eq!(snap.role_bindings().len() + snap.cluster_role_bindings().len(), 10_000);
    let mut group = c.benchmark_group("can_i_10k_bindings");
    group.throughput(Throughput::Elements(1));
    for check in checks() {
        verify(&snap, &check);
        group.bench_function(check.name, |b| b.iter(|| run(black_box(&snap), black_box(&check.args))));
    }
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let checks = checks();
    let check = &checks[0];
    let mut group = c.benchmark_group("can_i_vs_bindings");
    group.throughput(Throughput::Elements(1));
    for total in [1_000, 10_000, 100_000] {
        let snap = world(total);
        verify(&snap, check);
        group.bench_with_input(BenchmarkId::from_parameter(total), &snap, |b, snap| b.iter(|| run(black_box(snap), black_box(&check.args))));
    }
    group.finish();
}

criterion_group!(benches, can_i_10k, scaling);
criterion_main!(benches);
