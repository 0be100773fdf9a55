//! Each rule with a snapshot that triggers it and one that does not; and a property: a clean
//! snapshot (everything bound, assigned and unexpired) yields no finding.

use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::*;
use crate::aks::{plan_create, ClusterSpec, IdentityChoice, IdentityRef, NetworkPlugin, PodIdentity};
use crate::credential::PasswordCredential;
use crate::directory::{Application, ManagedIdentity, ResourceGroup};
use crate::federation::FederatedCredential;
use crate::rbac::{builtin_roles, RoleAssignment};
use crate::Scope;

const NOW: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
const SUB: Uuid = Uuid::from_u128(0x5ab);
const TENANT: Uuid = Uuid::from_u128(0x7e4);
const ISSUER: &str = "https://oidc.prod.example/abc";

fn assignment(principal: Uuid, role: &str, scope: &str) -> RoleAssignment {
    RoleAssignment {
        name: Uuid::new_v4(),
        scope: Scope::parse(scope).unwrap(),
        role_definition_id: builtin_roles().iter().find(|r| r.role_name == role).unwrap().name,
        principal_id: principal,
        principal_type: "ServicePrincipal".into(),
        description: None,
        created_on: NOW,
        created_by: None,
    }
}

/// A service-principal cluster whose secret ends in `days`, with everything else in order: the
/// app, its Contributor on the node group, a used identity with a role, a bound pod.
fn clean(days: i64) -> Snapshot {
    let mut app = Application::new("k8s-doitest", TENANT, None, NOW - Duration::days(700)).unwrap();
    let secret = PasswordCredential::generate(NOW - Duration::days(700), NOW + Duration::days(days), None);
    app.password_credentials.push(secret.credential);
    let rg = ResourceGroup::new(SUB, "doi_test", "japaneast", Default::default()).unwrap();
    let spec = ClusterSpec {
        name: "k8s-doitest".into(),
        location: None,
        identity: IdentityChoice::ServicePrincipal { app: app.clone(), secret: secret.secret_text },
        kubelet: None,
        network_plugin: Some(NetworkPlugin::Azure),
        enable_pod_identity: false,
        node_resource_group: None,
        network: Default::default(),
        addons: Default::default(),
        agent_pools: Default::default(),
    };
    let w = plan_create(&rg, spec, TENANT, NOW - Duration::days(700), None).unwrap();
    let identity = ManagedIdentity::new(&rg, "app", None, TENANT).unwrap();
    let mut s = Snapshot::empty(NOW);
    s.assignments = w.assignments;
    s.assignments.push(assignment(identity.principal_id, "Reader", &rg.id()));
    s.principals = vec![app.principal_id, identity.principal_id];
    s.clusters = vec![w.cluster];
    s.applications = vec![app];
    s.identities = vec![identity.clone()];
    s.federated = vec![(identity.id(), FederatedCredential::new("k8s", ISSUER, "system:serviceaccount:default:app", Vec::new(), None).unwrap())];
    s.cluster_issuers = vec![ISSUER.into()];
    s.pods = vec![PodFacts { namespace: "default".into(), name: "web".into(), binding_label: Some("web".into()) }];
    s.bindings = vec![BindingFacts { namespace: "default".into(), name: "web-binding".into(), identity: "web-id".into(), selector: "web".into() }];
    s.azure_identities = vec![AzureIdentityFacts {
        namespace: "default".into(),
        name: "web-id".into(),
        client_id: identity.client_id.to_string(),
        resource_id: identity.id(),
        unread_fields: Vec::new(),
    }];
    s.iam_arns = vec!["arn:aws:iam::860391000000:role/ekscluster".into(), "arn:aws:iam::860391000000:user/6248".into()];
    s.aws_auth = vec![
        AwsAuthEntry { role: true, arn: "arn:aws:iam::860391000000:role/ekscluster".into(), groups: vec!["system:masters".into()] },
        AwsAuthEntry { role: false, arn: "arn:aws:iam::860391000000:user/6248".into(), groups: vec!["eks-console-dashboard-full-access-group".into()] },
    ];
    s.eks_creator = Some("arn:aws:iam::860391000000:role/ekscluster".into());
    s
}

fn rules(s: &Snapshot) -> Vec<&'static str> {
    diagnose(s).iter().map(|f| f.rule).collect()
}

#[test]
fn a_clean_snapshot_yields_nothing_and_exits_zero() {
    assert_eq!(diagnose(&clean(365)), Vec::new());
    assert_eq!(exit_code(&[]), 0);
}

#[test]
fn a_secret_expiring_within_the_window_warns_with_the_clusters_and_the_commands() {
    let findings = diagnose(&clean(12));
    let [f] = findings.as_slice() else { panic!("{findings:#?}") };
    assert_eq!((f.rule, f.severity), ("credential-expiry", Severity::Warning));
    assert!(f.problem.contains("in 12 days") && f.problem.contains("AADSTS7000222") && f.problem.contains("doi_test/k8s-doitest"), "{}", f.problem);
    assert!(
        f.fix.contains("kite ad sp credential reset --id")
            && f.fix.contains("kite aks update-credentials -g doi_test -n k8s-doitest --reset-service-principal")
    );
    assert_eq!(exit_code(&findings), 1);
    let mut wider = clean(45);
    assert!(diagnose(&wider).is_empty());
    wider.expiry_window = Duration::days(60);
    assert_eq!(rules(&wider), vec!["credential-expiry"], "the window is configurable");
}

#[test]
fn an_expired_secret_is_an_error() {
    let findings = diagnose(&clean(-1));
    assert_eq!((findings[0].rule, findings[0].severity), ("credential-expiry", Severity::Error));
    assert!(findings[0].problem.contains("expired on"));
    assert_eq!(exit_code(&findings), 2);
}

#[test]
fn a_cluster_identity_without_contributor_on_its_node_group_is_named_with_the_assignment_that_restores_it() {
    let mut s = clean(365);
    let node = s.clusters[0].node_resource_group.clone();
    s.assignments.retain(|a| !a.scope.to_string().contains(&node));
    let findings = diagnose(&s);
    let f = findings.iter().find(|f| f.rule == "cluster-identity-contributor").unwrap();
    let principal = s.clusters[0].control_plane.object_id();
    assert_eq!(f.fix, format!("kite role assignment create --role Contributor --assignee {principal} --scope /subscriptions/{SUB}/resourceGroups/{node}"));
    assert!(f.problem.contains("<pending>"));
    // Contributor at the subscription covers the node group too.
    s.assignments.push(assignment(principal, "Contributor", &format!("/subscriptions/{SUB}")));
    assert!(!rules(&s).contains(&"cluster-identity-contributor"));
}

fn standard_mode(s: &mut Snapshot) -> (Uuid, String) {
    let rg = ResourceGroup::new(SUB, &s.clusters[0].node_resource_group, "japaneast", Default::default()).unwrap();
    let kubelet = ManagedIdentity::new(&rg, "k8s-doitest-agentpool", None, TENANT).unwrap();
    let target = s.identities[0].clone();
    let c = &mut s.clusters[0];
    c.pod_identity_enabled = true;
    c.kubelet = Some(IdentityRef::from(&kubelet));
    c.pod_identities = vec![PodIdentity { name: "web-id".into(), namespace: "default".into(), identity: IdentityRef::from(&target), binding_selector: None }];
    s.standard_mode = true;
    s.principals.push(kubelet.principal_id);
    s.identities.push(kubelet.clone());
    (kubelet.principal_id, rg.id())
}

#[test]
fn a_kubelet_identity_without_its_roles_in_standard_mode_is_named() {
    let mut s = clean(365);
    let (kubelet, node) = standard_mode(&mut s);
    let findings: Vec<Finding> = diagnose(&s).into_iter().filter(|f| f.rule == "kubelet-identity-roles").collect();
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert!(findings.iter().any(|f| f.fix.contains("\"Virtual Machine Contributor\"") && f.fix.contains(&node)));
    assert!(findings.iter().any(|f| f.fix.contains("\"Managed Identity Operator\"") && f.fix.contains(&s.identities[0].id())));
    s.assignments.push(assignment(kubelet, "Virtual Machine Contributor", &node));
    s.assignments.push(assignment(kubelet, "Managed Identity Operator", &s.identities[0].id()));
    assert!(!rules(&s).contains(&"kubelet-identity-roles"));
    s.assignments.retain(|a| a.principal_id != kubelet);
    s.standard_mode = false;
    assert!(!rules(&s).contains(&"kubelet-identity-roles"), "managed mode assigns nothing to nodes");
}

#[test]
fn kubenet_with_pod_identity_is_an_error() {
    let mut s = clean(365);
    s.clusters[0].pod_identity_enabled = true;
    assert!(!rules(&s).contains(&"kubenet-pod-identity"));
    s.clusters[0].network_plugin = NetworkPlugin::Kubenet;
    let f = diagnose(&s).into_iter().find(|f| f.rule == "kubenet-pod-identity").unwrap();
    assert_eq!(f.fix, "kite aks update -g doi_test -n k8s-doitest --disable-pod-identity");
}

#[test]
fn pods_matching_no_binding_and_bindings_naming_no_identity_are_errors() {
    let mut s = clean(365);
    s.pods.push(PodFacts { namespace: "default".into(), name: "lonely".into(), binding_label: Some("nobody".into()) });
    s.pods.push(PodFacts { namespace: "other".into(), name: "web".into(), binding_label: Some("web".into()) });
    s.pods.push(PodFacts { namespace: "default".into(), name: "plain".into(), binding_label: None });
    let objects: Vec<String> = diagnose(&s).into_iter().filter(|f| f.rule == "pod-without-binding").map(|f| f.object).collect();
    assert_eq!(objects, vec!["pod default/lonely", "pod other/web"], "bindings are per namespace");
    s.azure_identities.clear();
    let f = diagnose(&s).into_iter().find(|f| f.rule == "binding-without-identity").unwrap();
    assert_eq!(f.object, "AzureIdentityBinding default/web-binding");
}

#[test]
fn pascal_case_azure_identity_fields_are_named_with_their_spelling() {
    let mut s = clean(365);
    s.azure_identities[0].unread_fields = vec!["ClientID".into(), "ResourceID".into()];
    s.azure_identities[0].client_id.clear();
    let f = diagnose(&s).into_iter().find(|f| f.rule == "azure-identity-fields").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.problem.contains("ClientID (write clientID)") && f.problem.contains("ResourceID (write resourceID)"), "{}", f.problem);
}

#[test]
fn federated_issuers_off_by_a_slash_or_case_are_errors_but_other_issuers_are_not_judged() {
    let mut s = clean(365);
    let fic = |issuer: &str| (s.identities[0].id(), FederatedCredential::new("k8s2", issuer, "system:serviceaccount:a:b", Vec::new(), None).unwrap());
    let (slash, case, other) = (fic(&format!("{ISSUER}/")), fic("https://OIDC.prod.example/abc"), fic("https://elsewhere.example"));
    s.federated.extend([slash, case, other]);
    let problems: Vec<String> = diagnose(&s).into_iter().filter(|f| f.rule == "federated-issuer").map(|f| f.problem).collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("a trailing slash") || problems[1].contains("a trailing slash"));
    assert!(problems.iter().any(|p| p.contains("letter case")));
}

#[test]
fn identities_with_no_role_and_assignments_to_deleted_principals_are_warnings() {
    let mut s = clean(365);
    let ghost = Uuid::new_v4();
    s.assignments.push(assignment(ghost, "Reader", &format!("/subscriptions/{SUB}")));
    let f = diagnose(&s).into_iter().find(|f| f.rule == "assignment-to-deleted-principal").unwrap();
    assert!(f.fix.starts_with("kite role assignment delete --ids /subscriptions/"));
    let used = s.identities[0].principal_id;
    s.assignments.retain(|a| a.principal_id != used);
    let f = diagnose(&s).into_iter().find(|f| f.rule == "identity-without-assignment").unwrap();
    assert_eq!((f.severity, f.object.as_str()), (Severity::Warning, s.identities[0].id().as_str()));
}

#[test]
fn aws_auth_entries_that_can_never_match_and_extra_masters_are_named() {
    let mut s = clean(365);
    s.aws_auth_target = Some("--cluster testcluster --aws-auth aws-auth.yaml".into());
    let entry = |role: bool, arn: &str, groups: &[&str]| AwsAuthEntry { role, arn: arn.into(), groups: groups.iter().map(|g| g.to_string()).collect() };
    s.aws_auth.extend([
        entry(true, "arn:aws:iam::860391000000:role/teams/eks-admins", &["ops"]),
        entry(true, "arn:aws:iam::860391000000:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123", &["ops"]),
        entry(true, "arn:aws:sts::860391000000:assumed-role/ekscluster/me", &["ops"]),
        entry(false, "arn:aws:iam::860391000000:user/typo", &["ops"]),
        entry(false, "arn:aws:iam::860391000000:user/6248", &["system:masters"]),
    ]);
    let findings: Vec<Finding> = diagnose(&s).into_iter().filter(|f| f.rule.starts_with("aws-auth")).collect();
    let summary: Vec<(&str, Severity, &str)> = findings.iter().map(|f| (f.rule, f.severity, f.object.as_str())).collect();
    assert_eq!(summary.len(), 5, "{summary:#?}");
    assert!(findings.iter().any(|f| f.problem.contains("role path /teams/")));
    assert!(findings.iter().any(|f| f.problem.contains("IAM Identity Center")));
    assert!(findings.iter().any(|f| f.problem.contains("role session's ARN")));
    assert!(findings.iter().any(|f| f.severity == Severity::Warning && f.object.ends_with("user/typo")));
    assert!(findings.iter().any(|f| f.rule == "aws-auth-system-masters" && f.object.ends_with("user/6248")));
    assert!(findings[0].fix.contains("kite eks iamidentitymapping delete --cluster testcluster --aws-auth aws-auth.yaml --arn"));
}

proptest! {
    /// However many clusters, apps, identities and pods there are, a clean snapshot stays clean.
    #[test]
    fn clean_snapshots_yield_no_finding(clusters in 1usize..4, pods in 0usize..6, days in 31i64..730, window in 1i64..30) {
        let mut s = clean(days);
        s.expiry_window = Duration::days(window);
        for i in 1..clusters {
            let more = clean(days);
            s.assignments.extend(more.assignments.iter().cloned());
            s.principals.extend(more.principals.iter().copied());
            s.applications.extend(more.applications.iter().cloned());
            s.identities.extend(more.identities.iter().cloned());
            s.clusters.extend(more.clusters.iter().cloned().map(|mut c| { c.name = format!("c{i}"); c }));
        }
        for i in 0..pods {
            s.pods.push(PodFacts { namespace: "default".into(), name: format!("p{i}"), binding_label: if i % 2 == 0 { Some("web".into()) } else { None } });
        }
        prop_assert_eq!(diagnose(&s), Vec::new());
    }
}
