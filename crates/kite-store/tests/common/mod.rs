//! The conformance suite every `Store` backend passes. `conformance_tests!(make_store)` expands to one
//! named test per case, so a failure says which part of the contract broke on which backend.

pub mod vaults;

pub use vaults::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use kite_core::credential::PasswordCredential;
use kite_core::directory::{Application, ManagedIdentity, ResourceGroup, Subscription, Tenant};
use kite_core::rbac::{builtin_roles, RoleAssignment, RoleDefinition};
use kite_core::Scope;
use kite_store::{AssignmentFilter, Bootstrap, Error, Store, StoredKey};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

pub const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);
pub const SUB: Uuid = Uuid::from_u128(0x5ab5c418);
pub const TENANT: Uuid = Uuid::from_u128(0x7e4a47);

/// A fresh key-encryption key for a test store.
pub fn kek() -> kite_store::Kek {
    kite_store::Kek::generate("the test's KEK").unwrap()
}

pub fn role(name: &str) -> Uuid {
    builtin_roles().iter().find(|r| r.role_name == name).unwrap().name
}

pub fn group(name: &str) -> ResourceGroup {
    ResourceGroup::new(SUB, name, "japaneast", BTreeMap::new()).unwrap()
}

pub fn assignment(principal: Uuid, role_name: &str, scope: &str) -> RoleAssignment {
    RoleAssignment {
        name: Uuid::new_v4(),
        scope: Scope::parse(scope).unwrap(),
        role_definition_id: role(role_name),
        principal_id: principal,
        principal_type: "ServicePrincipal".into(),
        description: None,
        created_on: NOW,
        created_by: None,
    }
}

pub fn rg_scope(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{name}")
}

pub async fn bootstrap_case(store: impl Store) {
    assert!(store.tenant().await.unwrap().is_none());
    let admin = Application::new("kite-admin", TENANT, None, NOW).unwrap();
    let b = Bootstrap {
        tenant: Tenant { tenant_id: TENANT, display_name: "kite".into() },
        subscription: Subscription { subscription_id: SUB, tenant_id: TENANT, display_name: "default".into() },
        admin_assignment: assignment(admin.principal_id, "Owner", &format!("/subscriptions/{SUB}")),
        admin,
        signing_key: StoredKey { kid: "first".into(), created_at: 1, body: "{}".into() },
    };
    store.bootstrap(&b).await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![b.signing_key.clone()]);
    let (tenant, subs) = store.tenant().await.unwrap().unwrap();
    assert_eq!(tenant.tenant_id, TENANT);
    assert_eq!(subs[0].subscription_id, SUB);
    assert!(matches!(store.bootstrap(&b).await, Err(Error::Conflict(_))));
    assert_eq!(store.get_application(&b.admin.app_id).await.unwrap(), b.admin);
    let chain = store.assignments_on_chain(&b.admin.principal_id, &Scope::parse(&rg_scope("any")).unwrap()).await.unwrap();
    assert_eq!(chain, vec![b.admin_assignment.clone()]);
}

pub async fn resource_groups_case(store: impl Store) {
    store.create_resource_group(&group("myResourceGroup")).await.unwrap();
    match store.create_resource_group(&group("MYRESOURCEGROUP")).await {
        Err(Error::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    store.create_resource_group(&group("other")).await.unwrap();
    assert_eq!(store.get_resource_group(&SUB, "myresourcegroup").await.unwrap().name, "myResourceGroup");
    let names: Vec<String> = store.list_resource_groups(&SUB).await.unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, vec!["myResourceGroup", "other"]);
    assert!(matches!(store.get_resource_group(&SUB, "nope").await, Err(Error::NotFound(_))));
    assert!(store.list_resource_groups(&Uuid::new_v4()).await.unwrap().is_empty());
}

pub async fn deleting_a_group_takes_its_identities_and_assignments_but_nothing_else(store: impl Store) {
    let rg1 = group("rg1");
    let rg10 = group("rg10");
    store.create_resource_group(&rg1).await.unwrap();
    store.create_resource_group(&rg10).await.unwrap();
    let mi = ManagedIdentity::new(&rg1, "id-in-rg1", None, TENANT).unwrap();
    let keep = ManagedIdentity::new(&rg10, "id-in-rg10", None, TENANT).unwrap();
    store.create_identity(&mi).await.unwrap();
    store.create_identity(&keep).await.unwrap();
    let outsider = Uuid::new_v4();
    store.create_role_assignment(&assignment(mi.principal_id, "Reader", &format!("/subscriptions/{SUB}"))).await.unwrap();
    store.create_role_assignment(&assignment(outsider, "Reader", &rg_scope("rg1"))).await.unwrap();
    store.create_role_assignment(&assignment(outsider, "Reader", &format!("{}/providers/Microsoft.Network/loadBalancers/lb", rg_scope("RG1")))).await.unwrap();
    let kept = assignment(outsider, "Reader", &rg_scope("rg10"));
    store.create_role_assignment(&kept).await.unwrap();

    let d = store.delete_resource_group(&SUB, "RG1").await.unwrap();
    assert_eq!((d.identities, d.role_assignments), (1, 3));
    assert!(matches!(store.get_identity(&SUB, "rg1", "id-in-rg1").await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_principal(&mi.principal_id).await, Err(Error::NotFound(_))));
    assert_eq!(store.get_identity(&SUB, "rg10", "id-in-rg10").await.unwrap(), keep);
    let left = store.list_role_assignments(&AssignmentFilter { all: true, ..Default::default() }).await.unwrap();
    assert_eq!(left, vec![kept]);
    assert!(matches!(store.delete_resource_group(&SUB, "rg1").await, Err(Error::NotFound(_))));
}

pub async fn identities_are_found_by_client_id_object_id_and_name(store: impl Store) {
    let rg = group("rg");
    store.create_resource_group(&rg).await.unwrap();
    let mi = ManagedIdentity::new(&rg, "myIdentity", None, TENANT).unwrap();
    store.create_identity(&mi).await.unwrap();
    assert!(matches!(store.create_identity(&mi).await, Err(Error::Conflict(_))));
    assert_eq!(store.get_identity(&SUB, "RG", "MYIDENTITY").await.unwrap(), mi);
    for needle in [mi.client_id.to_string(), mi.principal_id.to_string().to_uppercase(), "myidentity".to_string()] {
        let found = store.find_principals(&needle).await.unwrap();
        assert_eq!(found.len(), 1, "{needle}");
        assert_eq!(found[0].object_id, mi.principal_id);
    }
    assert_eq!(store.list_identities(&SUB, Some("rg")).await.unwrap(), vec![mi.clone()]);
    assert_eq!(store.list_identities(&SUB, None).await.unwrap().len(), 1);
    store.create_role_assignment(&assignment(mi.principal_id, "Reader", &rg_scope("rg"))).await.unwrap();
    store.delete_identity(&SUB, "rg", "myIdentity").await.unwrap();
    assert!(store.find_principals("myidentity").await.unwrap().is_empty());
    assert!(store.list_role_assignments(&AssignmentFilter { all: true, ..Default::default() }).await.unwrap().is_empty());
}

pub async fn a_failed_multi_row_write_leaves_nothing_behind(store: impl Store) {
    let app = Application::new("half-done", TENANT, None, NOW).unwrap();
    let a = assignment(app.principal_id, "Reader", &format!("/subscriptions/{SUB}"));
    let mut duplicate = a.clone();
    duplicate.name = Uuid::new_v4();
    // The second assignment repeats the first (same principal, role, scope): the whole write must fail.
    assert!(matches!(store.create_application(&app, &[a, duplicate]).await, Err(Error::Conflict(_))));
    assert!(matches!(store.get_application(&app.app_id).await, Err(Error::NotFound(_))));
    assert!(store.find_principals("half-done").await.unwrap().is_empty());
    assert!(store.list_role_assignments(&AssignmentFilter { all: true, ..Default::default() }).await.unwrap().is_empty());
    // And the same name is then free to use.
    store.create_application(&app, &[]).await.unwrap();
    let again = Application::new("HALF-DONE", TENANT, None, NOW).unwrap();
    assert!(matches!(store.create_application(&again, &[]).await, Err(Error::Conflict(_))));
}

pub async fn concurrent_application_updates_all_land(store: impl Store) {
    let store = Arc::new(store);
    let app = Application::new("busy", TENANT, None, NOW).unwrap();
    store.create_application(&app, &[]).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (store, app_id) = (store.clone(), app.app_id);
        tasks.push(tokio::spawn(async move {
            store
                .update_application(&app_id, &|mut a: Application| {
                    a.password_credentials.push(PasswordCredential::generate(NOW, datetime!(2027-01-01 0:00 UTC), None).credential);
                    Ok(a)
                })
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.get_application(&app.app_id).await.unwrap().password_credentials.len(), 6);
    let refused = store.update_application(&app.app_id, &|_| Err(Error::Invalid("no".into()))).await;
    assert!(matches!(refused, Err(Error::Invalid(_))));
    assert_eq!(store.get_application(&app.app_id).await.unwrap().password_credentials.len(), 6);
}

pub async fn role_assignments_filter_like_az(store: impl Store) {
    let p = Uuid::new_v4();
    let q = Uuid::new_v4();
    let at_sub = assignment(p, "Reader", &format!("/subscriptions/{SUB}"));
    let at_rg = assignment(p, "Contributor", &rg_scope("rg"));
    let other = assignment(q, "Owner", &rg_scope("rg"));
    for a in [&at_sub, &at_rg, &other] {
        store.create_role_assignment(a).await.unwrap();
    }
    let mut dup = at_rg.clone();
    dup.name = Uuid::new_v4();
    dup.scope = Scope::parse(&rg_scope("RG")).unwrap();
    assert!(matches!(store.create_role_assignment(&dup).await, Err(Error::Conflict(m)) if m.contains("RoleAssignmentExists")));

    let list = |f: AssignmentFilter| {
        let store = &store;
        async move { store.list_role_assignments(&f).await.unwrap() }
    };
    assert_eq!(list(AssignmentFilter::default()).await, vec![at_sub.clone()]);
    assert_eq!(list(AssignmentFilter { all: true, ..Default::default() }).await.len(), 3);
    let rg = Scope::parse(&rg_scope("rg")).unwrap();
    assert_eq!(list(AssignmentFilter { scope: Some(rg.clone()), ..Default::default() }).await.len(), 2);
    let inherited = list(AssignmentFilter { principal_id: Some(p), scope: Some(rg.clone()), include_inherited: true, ..Default::default() }).await;
    assert_eq!(inherited.len(), 2);
    let deep = Scope::parse(&format!("{}/providers/Microsoft.Network/loadBalancers/lb", rg_scope("rg"))).unwrap();
    let mut chain = store.assignments_on_chain(&p, &deep).await.unwrap();
    chain.sort_by_key(|a| a.scope.key().len());
    assert_eq!(chain, vec![at_sub.clone(), at_rg.clone()]);
    assert!(store.assignments_on_chain(&p, &Scope::parse(&rg_scope("rg2")).unwrap()).await.unwrap() == vec![at_sub.clone()]);

    assert_eq!(store.get_role_assignment(&at_rg.name).await.unwrap(), at_rg);
    assert_eq!(store.delete_role_assignment(&at_rg.name).await.unwrap(), at_rg);
    assert!(matches!(store.get_role_assignment(&at_rg.name).await, Err(Error::NotFound(_))));
    assert!(matches!(store.delete_role_assignment(&at_rg.name).await, Err(Error::NotFound(_))));
}

pub async fn custom_roles_cannot_be_deleted_while_assigned(store: impl Store) {
    let def = RoleDefinition::custom_from_json(&serde_json::json!({
        "Name": "LB Reader", "Actions": ["Microsoft.Network/loadBalancers/read"],
        "AssignableScopes": [format!("/subscriptions/{SUB}")]
    }))
    .unwrap();
    store.create_role_definition(&def).await.unwrap();
    let mut same_name = def.clone();
    same_name.name = Uuid::new_v4();
    same_name.role_name = "lb reader".into();
    assert!(matches!(store.create_role_definition(&same_name).await, Err(Error::Conflict(_))));
    let mut a = assignment(Uuid::new_v4(), "Reader", &rg_scope("rg"));
    a.role_definition_id = def.name;
    store.create_role_assignment(&a).await.unwrap();
    assert!(matches!(store.delete_role_definition(&def.name).await, Err(Error::Conflict(m)) if m.contains("still used")));
    assert_eq!(store.list_role_definitions().await.unwrap(), vec![def.clone()]);
    store.delete_role_assignment(&a.name).await.unwrap();
    store.delete_role_definition(&def.name).await.unwrap();
    assert!(store.list_role_definitions().await.unwrap().is_empty());
}

/// A custom role can never be stored under a built-in role's GUID or name (any case), whatever the
/// caller built; the store checks on its own, not trusting the API layer.
pub async fn custom_roles_never_take_a_builtin_id_or_name(store: impl Store) {
    let mut def = RoleDefinition::custom_from_json(&serde_json::json!({
        "Name": "Everything", "Actions": ["*"], "AssignableScopes": [format!("/subscriptions/{SUB}")]
    }))
    .unwrap();
    def.name = role("Reader");
    assert!(matches!(store.create_role_definition(&def).await, Err(Error::Conflict(m)) if m.contains("built-in role 'Reader'")));
    def.name = Uuid::new_v4();
    def.role_name = "oWNER".into();
    assert!(matches!(store.create_role_definition(&def).await, Err(Error::Conflict(m)) if m.contains("built-in role 'Owner'")));
    def.role_name = "Everything".into();
    def.role_type = kite_core::rbac::RoleType::BuiltInRole;
    assert!(matches!(store.create_role_definition(&def).await, Err(Error::Invalid(_))));
    assert!(store.list_role_definitions().await.unwrap().is_empty());
}

pub async fn signing_keys_round_trip(store: impl Store) {
    let k1 = StoredKey { kid: "k1".into(), created_at: 1, body: "{\"a\":1}".into() };
    let k2 = StoredKey { kid: "k2".into(), created_at: 2, body: "{}".into() };
    store.add_signing_key(&k2).await.unwrap();
    store.add_signing_key(&k1).await.unwrap();
    assert!(matches!(store.add_signing_key(&k1).await, Err(Error::Conflict(_))));
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![k1.clone(), k2.clone()]);
    store.delete_signing_key("k1").await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![k2]);
    assert!(matches!(store.delete_signing_key("k1").await, Err(Error::NotFound(_))));
}

pub async fn sealed_values_stay_readable_across_a_rewrap(store: impl Store) {
    let key = StoredKey { kid: "k1".into(), created_at: 1, body: "-----BEGIN PRIVATE KEY-----\nsecret\n".into() };
    store.add_signing_key(&key).await.unwrap();
    assert_eq!(store.secret_get_or_init("sts_master_key", "master").await.unwrap(), "master");
    assert_eq!(store.rewrap_data_keys(&kek()).await.unwrap(), 1, "one data key on a new store");
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![key]);
    assert_eq!(store.secret_get_or_init("sts_master_key", "other").await.unwrap(), "master");
}

pub async fn federated_credentials_are_per_owner_capped_and_go_with_their_identity(store: impl Store) {
    use kite_core::federation::{FederatedCredential, MAX_PER_OWNER};
    let rg = group("rg");
    store.create_resource_group(&rg).await.unwrap();
    let mi = ManagedIdentity::new(&rg, "workload", None, TENANT).unwrap();
    store.create_identity(&mi).await.unwrap();
    let fic = |n: usize| {
        FederatedCredential::new(&format!("fic-{n:02}"), "https://issuer.example", &format!("system:serviceaccount:ns:sa{n}"), vec![], None).unwrap()
    };
    for n in 0..MAX_PER_OWNER {
        store.create_federated_credential(&mi.client_id, &fic(n)).await.unwrap();
    }
    assert!(
        matches!(store.create_federated_credential(&mi.client_id, &fic(99)).await, Err(Error::Conflict(m)) if m.contains("at most") || m.contains("most Entra"))
    );
    assert!(matches!(store.create_federated_credential(&mi.client_id, &fic(0)).await, Err(Error::Conflict(_))));
    assert_eq!(store.list_federated_credentials(&mi.client_id).await.unwrap().len(), MAX_PER_OWNER);
    assert!(store.list_federated_credentials(&Uuid::new_v4()).await.unwrap().is_empty());
    store.delete_federated_credential(&mi.client_id, "FIC-00").await.unwrap();
    assert!(matches!(store.delete_federated_credential(&mi.client_id, "fic-00").await, Err(Error::NotFound(_))));
    store.delete_identity(&SUB, "rg", "workload").await.unwrap();
    assert!(store.list_federated_credentials(&mi.client_id).await.unwrap().is_empty(), "an identity's credentials go with it");
}

pub async fn aws_objects_and_write_once_settings(store: impl Store) {
    use kite_store::AwsKind;
    let arn = "arn:aws:iam::123456789012:role/App";
    let body = serde_json::json!({"Arn": arn, "RoleName": "App"});
    store.create_aws_object(AwsKind::Role, arn, &body).await.unwrap();
    assert!(matches!(store.create_aws_object(AwsKind::Role, &arn.to_uppercase(), &body).await, Err(Error::Conflict(m)) if m.contains("EntityAlreadyExists")));
    assert_eq!(store.get_aws_object(AwsKind::Role, arn).await.unwrap(), body);
    assert!(matches!(store.get_aws_object(AwsKind::OidcProvider, arn).await, Err(Error::NotFound(m)) if m.contains("NoSuchEntity")));
    assert_eq!(store.list_aws_objects(AwsKind::Role).await.unwrap(), vec![body]);
    store.delete_aws_object(AwsKind::Role, arn).await.unwrap();
    assert!(store.list_aws_objects(AwsKind::Role).await.unwrap().is_empty());
    assert_eq!(store.secret_get_or_init("sts_master_key", "first").await.unwrap(), "first");
    assert_eq!(store.secret_get_or_init("sts_master_key", "second").await.unwrap(), "first", "the first value written wins");
}

fn all_assignments() -> AssignmentFilter {
    AssignmentFilter { all: true, ..Default::default() }
}

fn cluster_spec(name: &str, identity: kite_core::aks::IdentityChoice) -> kite_core::aks::ClusterSpec {
    kite_core::aks::ClusterSpec {
        network: Default::default(),
        addons: Default::default(),
        agent_pools: Vec::new(),
        name: name.into(),
        location: None,
        identity,
        kubelet: None,
        network_plugin: Some(kite_core::aks::NetworkPlugin::Azure),
        enable_pod_identity: true,
        node_resource_group: None,
    }
}

pub async fn managed_clusters_bring_their_node_group_and_identities_and_take_them_away(store: impl Store) {
    use kite_core::aks::{plan_create, IdentityChoice};
    let rg = group("rg");
    store.create_resource_group(&rg).await.unwrap();
    let w = plan_create(&rg, cluster_spec("aks", IdentityChoice::SystemAssigned), TENANT, NOW, None).unwrap();
    store.create_managed_cluster(&w).await.unwrap();
    assert!(matches!(store.create_managed_cluster(&w).await, Err(Error::Conflict(m)) if m.contains("already exists")));
    assert_eq!(store.get_managed_cluster(&SUB, "RG", "AKS").await.unwrap(), w.cluster);
    assert_eq!(store.list_managed_clusters(&SUB, Some("rg")).await.unwrap(), vec![w.cluster.clone()]);
    assert_eq!(store.list_managed_clusters(&SUB, None).await.unwrap().len(), 1);
    let node = store.get_resource_group(&SUB, "MC_rg_aks_japaneast").await.unwrap();
    assert_eq!(node.managed_by, Some(w.cluster.id()));
    let kubelet = store.get_identity(&SUB, "MC_rg_aks_japaneast", "aks-agentpool").await.unwrap();
    let control_plane = w.cluster.control_plane.object_id();
    assert_eq!(store.get_principal(&control_plane).await.unwrap().display_name, "aks");
    let held = store.assignments_on_chain(&control_plane, &node.scope()).await.unwrap();
    assert_eq!(held.iter().map(|a| a.role_definition_id).collect::<Vec<_>>(), vec![role("Contributor")]);
    // A second cluster whose node group would collide is refused whole: no cluster row, no identities.
    let mut clash = cluster_spec("other", IdentityChoice::SystemAssigned);
    clash.node_resource_group = Some("MC_rg_aks_japaneast".into());
    let clash = plan_create(&rg, clash, TENANT, NOW, None).unwrap();
    assert!(matches!(store.create_managed_cluster(&clash).await, Err(Error::Conflict(_))));
    assert!(matches!(store.get_managed_cluster(&SUB, "rg", "other").await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_principal(&clash.cluster.control_plane.object_id()).await, Err(Error::NotFound(_))));

    let gone = store.delete_managed_cluster(&SUB, "rg", "aks").await.unwrap();
    assert_eq!(gone, kite_store::GroupDeletion { identities: 1, role_assignments: 1 });
    assert!(matches!(store.get_resource_group(&SUB, "MC_rg_aks_japaneast").await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_principal(&kubelet.principal_id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_principal(&control_plane).await, Err(Error::NotFound(_))));
    assert!(store.list_role_assignments(&all_assignments()).await.unwrap().is_empty());
    assert!(matches!(store.delete_managed_cluster(&SUB, "rg", "aks").await, Err(Error::NotFound(_))));
    assert!(store.get_resource_group(&SUB, "rg").await.is_ok(), "the cluster's own group stays");

    // Deleting the cluster's group takes the cluster with its node group.
    let w = plan_create(&rg, cluster_spec("aks", IdentityChoice::SystemAssigned), TENANT, NOW, None).unwrap();
    store.create_managed_cluster(&w).await.unwrap();
    store.delete_resource_group(&SUB, "rg").await.unwrap();
    assert!(store.list_managed_clusters(&SUB, None).await.unwrap().is_empty());
    assert!(store.list_resource_groups(&SUB).await.unwrap().is_empty());
    assert!(store.list_role_assignments(&all_assignments()).await.unwrap().is_empty());
}

pub async fn cluster_updates_are_compare_and_swap_and_write_what_they_bring(store: impl Store) {
    use kite_core::aks::{plan_create, plan_update, ClusterUpdate, IdentityChoice, IdentityRef, PodIdentity};
    let store = Arc::new(store);
    let rg = group("rg");
    store.create_resource_group(&rg).await.unwrap();
    let mut app = Application::new("aks-sp", TENANT, None, NOW).unwrap();
    let secret = PasswordCredential::generate(NOW, datetime!(2027-01-01 0:00 UTC), None);
    app.password_credentials.push(secret.credential.clone());
    store.create_application(&app, &[]).await.unwrap();
    let sp = IdentityChoice::ServicePrincipal { app: app.clone(), secret: secret.secret_text.clone() };
    store.create_managed_cluster(&plan_create(&rg, cluster_spec("aks", sp), TENANT, NOW, None).unwrap()).await.unwrap();

    let migrated = store
        .update_managed_cluster(&SUB, "rg", "aks", &|c| {
            plan_update(&c, ClusterUpdate { identity: Some(IdentityChoice::SystemAssigned), ..Default::default() }, NOW, None).map_err(Into::into)
        })
        .await
        .unwrap();
    let system = migrated.control_plane.object_id();
    assert!(store.get_principal(&system).await.is_ok());
    assert!(store.get_identity(&SUB, "MC_rg_aks_japaneast", "aks-agentpool").await.is_ok());
    let node = Scope::resource_group(&SUB, "MC_rg_aks_japaneast").unwrap();
    assert_eq!(store.assignments_on_chain(&system, &node).await.unwrap().len(), 1);
    assert_eq!(store.assignments_on_chain(&app.principal_id, &node).await.unwrap().len(), 1, "the service principal keeps its assignment");

    let mi = ManagedIdentity::new(&rg, "pod-identity", None, TENANT).unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (store, mi) = (store.clone(), mi.clone());
        tasks.push(tokio::spawn(async move {
            store
                .update_managed_cluster(&SUB, "rg", "aks", &|mut c| {
                    c.pod_identities.push(PodIdentity {
                        name: format!("id-{i}"),
                        namespace: "default".into(),
                        identity: IdentityRef::from(&mi),
                        binding_selector: None,
                    });
                    let entries = c.pod_identities.clone();
                    plan_update(&c, ClusterUpdate { pod_identity: Some((true, entries)), ..Default::default() }, NOW, None).map_err(Into::into)
                })
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.get_managed_cluster(&SUB, "rg", "aks").await.unwrap().pod_identities.len(), 6);
    let refused = store.update_managed_cluster(&SUB, "rg", "aks", &|_| Err(Error::Invalid("no".into()))).await;
    assert!(matches!(refused, Err(Error::Invalid(_))));
    assert!(matches!(store.update_managed_cluster(&SUB, "rg", "nope", &|_| Err(Error::Invalid("no".into()))).await, Err(Error::NotFound(_))));
    assert_eq!(store.get_managed_cluster(&SUB, "rg", "aks").await.unwrap().pod_identities.len(), 6);
}

pub async fn pod_identity_associations_are_one_per_service_account_per_cluster(store: impl Store) {
    use kite_core::aws::eks::PodIdentityAssociation;
    use kite_core::aws::iam::Role;
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                   "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    let role = Role::new("123456789012", "app", None, trust, None, NOW).unwrap();
    let new = |cluster: &str, ns: &str, sa: &str| PodIdentityAssociation::new("us-east-1", "123456789012", cluster, ns, sa, &role, NOW).unwrap();
    let (a, b, other) = (new("prod", "default", "app"), new("prod", "payments", "app"), new("staging", "default", "app"));
    for x in [&a, &b, &other] {
        store.create_pod_identity_association(x).await.unwrap();
    }
    match store.create_pod_identity_association(&new("PROD", "default", "app")).await {
        Err(Error::Conflict(m)) => assert!(m.contains("ResourceInUseException") && m.contains("default/app"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get_pod_identity_association("Prod", &a.association_id).await.unwrap(), a);
    assert!(
        matches!(store.get_pod_identity_association("staging", &a.association_id).await, Err(Error::NotFound(m)) if m.contains("ResourceNotFoundException"))
    );
    assert_eq!(store.list_pod_identity_associations("prod", None, None).await.unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(store.list_pod_identity_associations("prod", Some("payments"), None).await.unwrap(), vec![b.clone()]);
    assert_eq!(store.list_pod_identity_associations("prod", Some("default"), Some("app")).await.unwrap(), vec![a.clone()]);
    assert!(store.list_pod_identity_associations("prod", None, Some("nobody")).await.unwrap().is_empty());
    assert_eq!(store.delete_pod_identity_association("prod", &a.association_id).await.unwrap(), a);
    assert!(matches!(store.delete_pod_identity_association("prod", &a.association_id).await, Err(Error::NotFound(_))));
    assert_eq!(store.list_pod_identity_associations("prod", None, None).await.unwrap(), vec![b]);
    assert_eq!(store.list_pod_identity_associations("staging", None, None).await.unwrap(), vec![other]);
    // The service account is free again once its association is gone.
    store.create_pod_identity_association(&new("prod", "default", "app")).await.unwrap();
}

pub async fn iam_users_and_access_keys(store: impl Store) {
    use kite_core::aws::user::{AccessKey, KeyStatus, User};
    let user = User::new("123456789012", "6248", None, NOW).unwrap();
    store.create_iam_user(&user).await.unwrap();
    let twin = User::new("123456789012", "6248", None, NOW).unwrap();
    assert!(matches!(store.create_iam_user(&twin).await, Err(Error::Conflict(m)) if m.contains("EntityAlreadyExists")));
    assert_eq!(store.get_iam_user("6248").await.unwrap(), user);
    assert_eq!(store.list_iam_users().await.unwrap(), vec![user.clone()]);

    let (k1, k2, k3) = (AccessKey::new(&user, NOW), AccessKey::new(&user, NOW), AccessKey::new(&user, NOW));
    store.create_access_key(&k1).await.unwrap();
    store.create_access_key(&k2).await.unwrap();
    assert!(matches!(store.create_access_key(&k3).await, Err(Error::Conflict(m)) if m.contains("LimitExceeded")), "two keys per user, as IAM");
    let stranger = User::new("123456789012", "nobody", None, NOW).unwrap();
    assert!(matches!(store.create_access_key(&AccessKey::new(&stranger, NOW)).await, Err(Error::NotFound(_))));
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    assert_eq!(store.list_access_keys("6248").await.unwrap(), both);
    assert!(matches!(store.list_access_keys("nobody").await, Err(Error::NotFound(_))));

    let off = store.update_access_key_status(&k1.access_key_id, KeyStatus::Inactive).await.unwrap();
    assert_eq!(off.status, KeyStatus::Inactive);
    assert_eq!(store.get_access_key(&k1.access_key_id).await.unwrap().status, KeyStatus::Inactive);

    // A user with keys cannot be deleted (nothing vanishes by accident); once they are gone it can.
    assert!(matches!(store.delete_iam_user("6248").await, Err(Error::Conflict(m)) if m.contains(&k2.access_key_id)));
    assert_eq!(store.get_iam_user("6248").await.unwrap(), user, "a refused delete changes nothing");
    store.delete_access_key(&k1.access_key_id).await.unwrap();
    store.delete_access_key(&k2.access_key_id).await.unwrap();
    assert!(matches!(store.get_access_key(&k2.access_key_id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.delete_access_key(&k2.access_key_id).await, Err(Error::NotFound(_))));
    assert_eq!(store.delete_iam_user("6248").await.unwrap(), user);
    assert!(matches!(store.get_iam_user("6248").await, Err(Error::NotFound(m)) if m.contains("NoSuchEntity")));
}

pub async fn the_audit_trail_appends_filters_pages_and_prunes(store: impl Store) {
    use kite_core::audit::{AuditEvent, AuditFilter, Category, NewEvent, Shape, Status};
    let event = |op: &str, caller: &str, resource: &str, minute: i64| {
        AuditEvent::new(
            NewEvent {
                shape: Shape::ActivityLog,
                category: Category::Administrative,
                caller,
                authentication: "Bearer",
                operation_name: op,
                resource_id: resource,
                correlation_id: "c",
            },
            NOW + time::Duration::minutes(minute),
        )
    };
    let rg = rg_scope("rg_1%");
    let events = vec![
        event("Microsoft.Resources/subscriptions/resourceGroups/write", "Alice", &rg, 0),
        event("Microsoft.ManagedIdentity/userAssignedIdentities/write", "bob", &format!("{rg}/providers/x"), 1).ended(403),
        event("CreateCluster", "arn:aws:iam::123456789012:user/2049", "arn:aws:eks:us-east-1:123456789012:cluster/prod", 2),
        event("Microsoft.Resources/subscriptions/resourceGroups/delete", "alice", &rg_scope("rg_10"), 3),
    ];
    store.append_audit_events(&events).await.unwrap();
    store.append_audit_events(&[]).await.unwrap();
    let all = AuditFilter {
        start: NOW,
        end: NOW + time::Duration::hours(1),
        caller: None,
        operation: None,
        resource_id: None,
        status: None,
        after: None,
        limit: 100,
    };
    assert_eq!(store.list_audit_events(&all).await.unwrap(), events, "read back whole, oldest first");
    let ids = |f: AuditFilter| {
        let store = &store;
        async move { store.list_audit_events(&f).await.unwrap().iter().map(|e| e.event_timestamp).collect::<Vec<_>>() }
    };
    let at = |i: usize| events[i].event_timestamp;
    assert_eq!(ids(AuditFilter { caller: Some("ALICE".into()), ..all.clone() }).await, vec![at(0), at(3)], "callers match in any case");
    assert_eq!(ids(AuditFilter { operation: Some("microsoft.*/write".into()), ..all.clone() }).await, vec![at(0), at(1)]);
    assert_eq!(ids(AuditFilter { operation: Some("CreateCluster".into()), ..all.clone() }).await, vec![at(2)]);
    // `_` and `%` in a prefix are literal, not LIKE wildcards: rg_1% is not a prefix of rg_10.
    assert_eq!(ids(AuditFilter { resource_id: Some(rg.to_uppercase()), ..all.clone() }).await, vec![at(0), at(1)]);
    assert_eq!(ids(AuditFilter { status: Some(Status::Failed), ..all.clone() }).await, vec![at(1)]);
    assert_eq!(ids(AuditFilter { start: at(1), end: at(3), ..all.clone() }).await, vec![at(1), at(2)], "start inclusive, end exclusive");
    let first = store.list_audit_events(&AuditFilter { limit: 2, ..all.clone() }).await.unwrap();
    let last = first.last().map(|e| (e.event_timestamp, e.event_id));
    assert_eq!(ids(AuditFilter { after: last, ..all.clone() }).await, vec![at(2), at(3)], "the next page starts after the last event read");
    assert!(store.append_audit_events(&events[..1]).await.is_err(), "an event is appended once");
    assert_eq!(store.list_audit_events(&all).await.unwrap().len(), 4, "a refused batch adds nothing");

    assert_eq!(store.prune_audit_events(at(2)).await.unwrap(), 2);
    assert_eq!(ids(all.clone()).await, vec![at(2), at(3)]);
}

pub async fn announced_changes_reach_subscribers(store: impl Store) {
    use kite_store::Change;
    let mut heard = store.changes();
    for change in [Change::Clients, Change::SigningKeys] {
        store.announce(change).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv()).await.expect("announced within 5 s").unwrap();
        assert_eq!(got, change);
    }
}

#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make; bootstrap_case, resource_groups_case,
            deleting_a_group_takes_its_identities_and_assignments_but_nothing_else,
            identities_are_found_by_client_id_object_id_and_name, a_failed_multi_row_write_leaves_nothing_behind,
            concurrent_application_updates_all_land, role_assignments_filter_like_az,
            custom_roles_cannot_be_deleted_while_assigned, custom_roles_never_take_a_builtin_id_or_name, signing_keys_round_trip,
            sealed_values_stay_readable_across_a_rewrap,
            vault_names_are_global_and_kept_by_a_soft_deleted_vault_until_purged,
            secrets_keep_versions_page_and_soft_delete, concurrent_secret_writes_all_land_as_versions,
            federated_credentials_are_per_owner_capped_and_go_with_their_identity, aws_objects_and_write_once_settings,
            pod_identity_associations_are_one_per_service_account_per_cluster,
            iam_users_and_access_keys, the_audit_trail_appends_filters_pages_and_prunes,
            managed_clusters_bring_their_node_group_and_identities_and_take_them_away,
            cluster_updates_are_compare_and_swap_and_write_what_they_bring, announced_changes_reach_subscribers);
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                common::$case(store).await;
            }
        )*
    };
}
