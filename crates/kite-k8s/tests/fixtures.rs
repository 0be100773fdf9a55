//! The user stories, on YAML files as a person would point `kite k8s auth can-i --rbac` at them.

use std::path::PathBuf;

use kite_k8s::{can_i, who_can, BindingKind, CanIArgs, Decision, RbacSnapshot};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn load(name: &str) -> RbacSnapshot {
    RbacSnapshot::load(&[fixture(name)]).unwrap_or_else(|e| panic!("{e}"))
}

fn check(snap: &RbacSnapshot, verb: &str, resource: &str, ns: Option<&str>, user: &str, groups: &[&str]) -> Decision {
    let args = CanIArgs {
        verb: verb.into(),
        resource: resource.into(),
        namespace: ns.map(str::to_string),
        as_user: Some(user.into()),
        as_groups: groups.iter().map(|g| g.to_string()).collect(),
        explain: true,
        ..CanIArgs::default()
    };
    can_i(snap, &args).unwrap_or_else(|e| panic!("{e}"))
}

const FULL: &str = "eks-console-dashboard-full-access-group";
const RESTRICTED: &str = "eks-console-dashboard-restricted-access-group";

#[test]
fn seed_004_a_user_mapped_to_the_full_access_group_can_get_pods_and_the_answer_names_the_binding() {
    let snap = load("eks");
    let d = check(&snap, "get", "pods", Some("kube-system"), "6248", &[FULL]);
    assert!(d.allowed, "{}", d.reason);
    let g = d.granted_by.as_ref().unwrap();
    assert_eq!((g.binding.kind, g.binding.name.as_str()), (BindingKind::ClusterRoleBinding, "eks-console-dashboard-full-access-binding"));
    assert_eq!(g.role.name, "eks-console-dashboard-full-access-clusterrole");
    assert_eq!((g.subject.kind.as_str(), g.subject.name.as_str()), ("Group", FULL));
    assert!(d.reason.contains(r#"ClusterRoleBinding "eks-console-dashboard-full-access-binding""#), "{}", d.reason);
    // Reading is all the console needs: changing is not granted.
    assert!(!check(&snap, "delete", "pods", Some("kube-system"), "6248", &[FULL]).allowed);
}

#[test]
fn seed_004_a_user_without_a_mapping_cannot_get_pods_is_told_why_and_what_would_grant_it() {
    let snap = load("eks");
    // An IAM identity missing from aws-auth reaches RBAC with no groups of its own.
    let d = check(&snap, "get", "pods", None, "arn:aws:iam::860391000000:user/2049", &[]);
    assert!(!d.allowed);
    assert!(d.bindings_considered.is_empty());
    assert!(
        d.reason.contains(
            r#"no ClusterRoleBinding, and no RoleBinding in namespace "default", names user "arn:aws:iam::860391000000:user/2049" or any of its groups"#
        ),
        "{}",
        d.reason
    );
    let s = d.suggestion.unwrap();
    assert_eq!((s.role.kind.as_str(), s.binding.kind), ("Role", BindingKind::RoleBinding));
    assert!(s.yaml.contains("name: arn:aws:iam::860391000000:user/2049"), "{}", s.yaml);
}

#[test]
fn seed_004_the_restricted_group_reads_pods_only_in_default_through_its_role_binding() {
    let snap = load("eks");
    let d = check(&snap, "list", "pods", Some("default"), "viewer", &[RESTRICTED]);
    assert!(d.allowed, "{}", d.reason);
    let g = d.granted_by.unwrap();
    assert_eq!((g.binding.kind, g.binding.namespace.as_deref()), (BindingKind::RoleBinding, Some("default")));
    assert_eq!((g.role.kind.as_str(), g.rule_index), ("ClusterRole", 1));

    let d = check(&snap, "list", "pods", Some("kube-system"), "viewer", &[RESTRICTED]);
    assert!(!d.allowed);
    assert!(d.reason.contains(r#"in namespace "kube-system""#), "{}", d.reason);
    let elsewhere: Vec<&str> = d.granted_elsewhere.iter().map(|g| g.binding.name.as_str()).collect();
    assert_eq!(elsewhere, ["eks-console-dashboard-restricted-access-role-binding"]);
    assert!(d.reason.contains(r#"in namespace "default" would allow it there"#), "{}", d.reason);
    // Nodes are cluster-scoped: the RoleBinding's ClusterRole lists them, but a RoleBinding never grants them.
    let nodes = check(&snap, "list", "nodes", Some("default"), "viewer", &[RESTRICTED]);
    assert!(!nodes.allowed, "{}", nodes.reason);
    assert_eq!(nodes.suggestion.unwrap().role.kind, "ClusterRole");
}

#[test]
fn seed_004_the_cluster_creator_in_system_masters_can_do_anything() {
    let snap = load("eks");
    let d = check(&snap, "*", "*", Some("kube-system"), "arn:aws:iam::860391000000:user/2049", &["system:masters"]);
    assert!(d.allowed && d.granted_by.is_none());
    assert!(d.reason.contains("system:masters"), "{}", d.reason);
}

#[test]
fn who_can_get_pods_in_kube_system_names_the_full_access_group_only() {
    let grants = who_can(&load("eks"), "get", "pods", "kube-system").unwrap();
    let names: Vec<&str> = grants.iter().map(|g| g.subject.name.as_str()).collect();
    assert_eq!(names, [FULL]);
    let in_default: Vec<String> = who_can(&load("eks"), "get", "pods", "default").unwrap().into_iter().map(|g| g.subject.name).collect();
    assert_eq!(in_default, [FULL, RESTRICTED]);
}

#[test]
fn built_in_style_aggregation_gives_edit_and_admin_what_view_has_and_binding_edit_grants_it() {
    let snap = load("aggregation");
    let verbs_of = |role: &str| -> usize { snap.cluster_role(role).unwrap().rules.as_ref().map_or(0, Vec::len) };
    assert_eq!(verbs_of("view"), 3, "system:aggregate-to-view's two rules and widgets-view's");
    assert_eq!(verbs_of("edit"), 5, "system:aggregate-to-edit's two and view's three");
    assert_eq!(verbs_of("admin"), 6, "edit's five and system:aggregate-to-admin's");

    let team_a = |verb: &str, resource: &str, sub: Option<&str>| {
        let args = CanIArgs {
            verb: verb.into(),
            resource: resource.into(),
            subresource: sub.map(str::to_string),
            namespace: Some("team-a".into()),
            as_user: Some("ann".into()),
            as_groups: vec!["team-a".into()],
            explain: true,
            ..CanIArgs::default()
        };
        can_i(&snap, &args).unwrap()
    };
    assert!(team_a("get", "widgets.example.com", None).allowed, "a custom resource aggregated into view reaches edit");
    assert!(team_a("update", "deployments.apps", Some("scale")).allowed);
    assert!(team_a("get", "pods", Some("log")).allowed);
    let d = team_a("create", "rolebindings.rbac.authorization.k8s.io", None);
    assert!(!d.allowed, "only admin aggregates role management");
    assert_eq!(d.bindings_considered.len(), 1);
    assert!(d.bindings_considered[0].why.contains("none of the 5 rules of ClusterRole \"edit\""), "{}", d.bindings_considered[0].why);
}

#[test]
fn aggregation_by_match_expressions_skips_labels_excluded_by_does_not_exist() {
    let snap = load("aggregation");
    let oncall = snap.cluster_role("oncall").unwrap().rules.clone().unwrap_or_default();
    assert_eq!(oncall.len(), 1, "ops-restart only: sre-drain is experimental");
    let args = |verb: &str, resource: &str, sub: Option<&str>| CanIArgs {
        verb: verb.into(),
        resource: resource.into(),
        subresource: sub.map(str::to_string),
        namespace: Some("prod".into()),
        as_user: Some("pager@example.com".into()),
        ..CanIArgs::default()
    };
    assert!(can_i(&snap, &args("patch", "deploy", None)).unwrap().allowed);
    assert!(!can_i(&snap, &args("create", "pods", Some("eviction"))).unwrap().allowed);
}

#[test]
fn a_service_account_from_another_namespace_reads_through_a_role_binding_that_names_its_namespace() {
    let snap = load("aggregation");
    let args = CanIArgs {
        verb: "list".into(),
        resource: "widgets.example.com".into(),
        namespace: Some("team-a".into()),
        as_user: Some("system:serviceaccount:audit:auditor".into()),
        ..CanIArgs::default()
    };
    let d = can_i(&snap, &args).unwrap();
    assert!(d.allowed, "{}", d.reason);
    assert!(d.reason.contains(r#"ServiceAccount "audit/auditor""#), "{}", d.reason);
    assert!(!can_i(&snap, &CanIArgs { verb: "delete".into(), ..args }).unwrap().allowed);
}

#[test]
fn a_broken_file_is_named_with_its_document_and_nothing_is_loaded() {
    let err = RbacSnapshot::load(&[fixture("eks"), fixture("bad")]).unwrap_err().to_string();
    assert!(err.contains("bad/rbac.yaml, document 2: not valid YAML"), "{err}");
}
