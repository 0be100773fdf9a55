use std::collections::BTreeSet;

use kite_core::rbac::builtin_roles;
use kite_core::rbac::engine::Snapshot;
use kite_core::rbac::RoleAssignment;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::podidentity::Selector;

const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const NODE_RG: &str = "MC_rg_prod_japaneast";

fn identity_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourcegroups/apps/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn node_rg() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{NODE_RG}")
}

fn world() -> ClusterState {
    let yaml = format!(
        r#"
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {{name: app-identity, namespace: demo}}
spec: {{type: 0, resourceID: "{app}", clientID: 11111111-1111-1111-1111-111111111111}}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {{name: app-binding, namespace: demo}}
spec: {{azureIdentity: app-identity, selector: app}}
---
apiVersion: v1
kind: Node
metadata: {{name: aks-nodepool1-0}}
spec: {{providerID: "azure://{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0"}}
---
apiVersion: v1
kind: Node
metadata: {{name: aks-nodepool1-1}}
spec: {{providerID: "azure://{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/1"}}
"#,
        app = identity_id("app"),
        rg = node_rg()
    );
    let mut s = ClusterState::default();
    s.read_yaml(&yaml, "world.yaml").unwrap();
    s
}

fn pod(name: &str, label: &str, node: Option<&str>, phase: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "demo", "labels": {"aadpodidbinding": label}},
           "spec": {"nodeName": node, "containers": []},
           "status": {"podIP": format!("10.0.0.{}", name.len()), "phase": phase}})
}

fn with_pods(mut s: ClusterState, pods: &[serde_json::Value]) -> ClusterState {
    for p in pods {
        s.add(p.clone()).unwrap();
    }
    s
}

/// Applies a plan the way the controller does: the desired set becomes the current one.
fn applied(mut s: ClusterState, plan: &Plan) -> ClusterState {
    s.assigned = plan.desired.clone();
    s
}

const CLUSTER_CLIENT: &str = "22222222-2222-2222-2222-222222222222";
const CLUSTER_PRINCIPAL: Uuid = Uuid::from_u128(0x2222);

fn grant(role: &str, scope: &str) -> RoleAssignment {
    let role_id = builtin_roles().iter().find(|r| r.role_name == role).unwrap().name;
    serde_json::from_value(json!({"name": Uuid::new_v4(), "scope": scope, "roleDefinitionId": role_id, "principalId": CLUSTER_PRINCIPAL,
                                  "principalType": "ServicePrincipal", "createdOn": "2026-01-01T00:00:00Z"}))
    .unwrap()
}

fn standard(access: &Snapshot) -> Standard<'_, Snapshot> {
    Standard { cluster_client_id: CLUSTER_CLIENT, cluster_principal: Some(CLUSTER_PRINCIPAL), access }
}

fn operator_and_contributor() -> Snapshot {
    Snapshot::new([], [grant("Managed Identity Operator", &identity_id("app")), grant("Virtual Machine Contributor", &node_rg())])
}

fn names(list: &[AzureAssignedIdentity]) -> Vec<&str> {
    list.iter().map(|a| a.metadata.name.as_str()).collect()
}

#[test]
fn a_scheduled_pod_gets_an_assigned_identity_named_as_upstream_and_loses_it_when_it_goes() {
    let unscheduled = with_pods(world(), &[pod("web", "app", None, "Pending")]);
    assert!(reconcile::<Snapshot>(&unscheduled, None).desired.is_empty(), "no node yet, nothing to assign");

    let s = with_pods(world(), &[pod("web", "app", Some("aks-nodepool1-0"), "Running"), pod("batch", "app", Some("aks-nodepool1-0"), "Succeeded")]);
    let plan = reconcile::<Snapshot>(&s, None);
    assert_eq!(names(&plan.create), ["web-demo-app-identity"]);
    let a = &plan.create[0];
    assert_eq!((a.status.status.as_str(), a.spec.node_name.as_str(), a.spec.pod_namespace.as_str()), (ASSIGNED, "aks-nodepool1-0", "demo"));
    assert_eq!(a.metadata.labels["nodename"], "aks-nodepool1-0");
    assert_eq!(a.spec.identity.object.spec.resource_id, identity_id("app"));
    let wire = serde_json::to_value(a).unwrap();
    assert_eq!(wire["spec"]["azureIdentityRef"]["kind"], "AzureIdentity");
    assert_eq!(wire["spec"]["azureBindingRef"]["spec"]["selector"], "app");
    assert_eq!(wire["spec"]["podNamespace"], "demo");
    assert_eq!(wire["status"]["status"], "Assigned");
    assert!(wire["spec"]["azureIdentityRef"]["spec"].get("clientPassword").is_none(), "absent fields stay absent: {wire}");

    let s = applied(s, &plan);
    assert_eq!(reconcile::<Snapshot>(&s, None), Plan { desired: plan.desired.clone(), ..Default::default() }, "a second pass changes nothing");
    let gone = ClusterState { pods: Vec::new(), ..s };
    let plan = reconcile::<Snapshot>(&gone, None);
    assert_eq!(names(&plan.delete), ["web-demo-app-identity"]);
    assert!(plan.desired.is_empty() && plan.create.is_empty());
}

#[test]
fn a_node_keeps_an_identity_while_another_pod_on_it_still_needs_it() {
    let access = operator_and_contributor();
    let std = standard(&access);
    let s = with_pods(world(), &[pod("a", "app", Some("aks-nodepool1-0"), "Running"), pod("b", "app", Some("aks-nodepool1-0"), "Running")]);
    let plan = reconcile(&s, Some(&std));
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    assert_eq!(plan.nodes.len(), 1);
    let node = &plan.nodes[0];
    assert_eq!(node.node, "aks-nodepool1-0");
    assert_eq!(node.vm.as_deref(), Some(format!("{}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss", node_rg()).as_str()));
    assert_eq!(node.added, [identity_id("app")]);

    // Pod a goes: b still needs the identity, so the node keeps it.
    let s = applied(s, &plan);
    let only_b = ClusterState { pods: s.pods.iter().filter(|p| p.metadata.name.as_deref() == Some("b")).cloned().collect(), ..s.clone() };
    let plan = reconcile(&only_b, Some(&std));
    assert_eq!(names(&plan.delete), ["a-demo-app-identity"]);
    assert!(plan.nodes.is_empty(), "node unchanged while b needs it: {:?}", plan.nodes);

    // b goes too: now the identity leaves the node.
    let s = applied(only_b, &plan);
    let none = ClusterState { pods: Vec::new(), ..s };
    let plan = reconcile(&none, Some(&std));
    assert_eq!(plan.nodes.len(), 1);
    assert_eq!((plan.nodes[0].removed.clone(), plan.nodes[0].identities.is_empty()), (vec![identity_id("app")], true));
}

#[test]
fn standard_mode_holds_the_assignment_at_created_and_names_each_missing_role_with_its_fix() {
    let s = with_pods(world(), &[pod("web", "app", Some("aks-nodepool1-0"), "Running")]);
    let nothing = Snapshot::new([], []);
    let plan = reconcile(&s, Some(&standard(&nothing)));
    assert_eq!(plan.create[0].status.status, CREATED);
    assert!(plan.nodes.is_empty(), "nothing goes onto the node");
    let why = &plan.blocked[0].message;
    assert_eq!(plan.create[0].metadata.annotations[BLOCKED_ANNOTATION], *why);
    assert!(why.contains("identity demo/app-identity is not yet assigned to node aks-nodepool1-0"), "{why}");
    assert!(
        why.contains(&format!("kite role assignment create --role \"Managed Identity Operator\" --assignee {CLUSTER_CLIENT} --scope {}", identity_id("app"))),
        "{why}"
    );
    assert!(why.contains(&format!("--role \"Virtual Machine Contributor\" --assignee {CLUSTER_CLIENT} --scope {}", node_rg())), "{why}");
    assert!(why.contains("denied: principal"), "the engine's explanation is kept: {why}");

    // Managed Identity Operator on the node resource group does not reach an identity elsewhere.
    let s = applied(s, &plan);
    let wrong_scope = Snapshot::new([], [grant("Managed Identity Operator", &node_rg()), grant("Virtual Machine Contributor", &node_rg())]);
    let plan = reconcile(&s, Some(&standard(&wrong_scope)));
    let why = &plan.blocked[0].message;
    assert!(why.contains("lacks Managed Identity Operator") && !why.contains("lacks Virtual Machine Contributor"), "{why}");
    assert_eq!((names(&plan.update), plan.update[0].status.status.as_str()), (vec!["web-demo-app-identity"], CREATED), "only the reason changes");

    // Both granted: assigned, the annotation gone, the identity on the node's scale set.
    let plan = reconcile(&s, Some(&standard(&operator_and_contributor())));
    assert!(plan.blocked.is_empty());
    assert_eq!(names(&plan.update), ["web-demo-app-identity"]);
    assert_eq!(plan.update[0].status.status, ASSIGNED);
    assert!(plan.update[0].metadata.annotations.is_empty());
    assert_eq!(plan.nodes[0].added, [identity_id("app")]);
}

#[test]
fn an_unknown_cluster_identity_or_node_is_reported_not_assigned() {
    let access = operator_and_contributor();
    let unknown = Standard { cluster_client_id: CLUSTER_CLIENT, cluster_principal: None, access: &access };
    let s = with_pods(world(), &[pod("web", "app", Some("aks-nodepool1-0"), "Running"), pod("job", "app", Some("ghost"), "Running")]);
    let plan = reconcile(&s, Some(&unknown));
    let all: Vec<&str> = plan.blocked.iter().map(|b| b.message.as_str()).collect();
    assert!(all.iter().any(|m| m.contains("node ghost is not in the cluster state")), "{all:?}");
    assert!(all.iter().any(|m| m.contains(&format!("cluster identity {CLUSTER_CLIENT} (--cluster-identity) is no principal kite knows"))), "{all:?}");
}

#[test]
fn provider_ids_name_the_scale_set_or_the_vm_and_bad_ones_say_what_is_expected() {
    let vmss = node_vm(&format!("azure://{}/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3", node_rg())).unwrap();
    assert_eq!(vmss.resource_id, format!("{}/providers/Microsoft.Compute/virtualMachineScaleSets/pool", node_rg()));
    assert_eq!((vmss.resource_group, vmss.write_action), (node_rg(), "Microsoft.Compute/virtualMachineScaleSets/write"));
    let vm = node_vm(&format!("azure://{}/providers/Microsoft.Compute/virtualMachines/vm0", node_rg())).unwrap();
    assert_eq!(vm.write_action, "Microsoft.Compute/virtualMachines/write");
    let err = node_vm("aws:///us-east-1a/i-0123").unwrap_err();
    assert!(err.contains("not an Azure provider ID") && err.contains("virtualMachineScaleSets/{vmss}"), "{err}");
}

#[test]
fn in_standard_mode_the_node_agent_waits_for_assigned_and_says_why() {
    let s = with_pods(world(), &[pod("web", "app", Some("aks-nodepool1-0"), "Running")]);
    let ip = "10.0.0.3";
    let before = crate::podidentity::decide(&s, ip, &Selector::default());
    let PodDecision::Refused { message, .. } = require_assigned(&s, before.clone()) else { panic!() };
    assert!(message.contains("no AzureAssignedIdentity"), "{message}");

    let nothing = Snapshot::new([], []);
    let s = applied(s.clone(), &reconcile(&s, Some(&standard(&nothing))));
    let PodDecision::Refused { message, .. } = require_assigned(&s, before.clone()) else { panic!() };
    assert!(
        message.contains("pod demo/web: identity demo/app-identity is not yet assigned to node aks-nodepool1-0")
            && message.contains("Managed Identity Operator"),
        "{message}"
    );

    let s = applied(s.clone(), &reconcile(&s, Some(&standard(&operator_and_contributor()))));
    assert!(matches!(require_assigned(&s, before), PodDecision::Identity { .. }));
}

proptest! {
    /// For random pods, labels, nodes, phases, bindings and identities, the controller's set is
    /// exactly the brute-force pod × binding × identity match.
    #[test]
    fn the_reconciled_set_is_the_brute_force_match(
        pods in prop::collection::vec((0..6usize, 0..2usize, prop::option::of(0..4usize), prop::option::of(0..2usize), 0..4usize), 0..12),
        bindings in prop::collection::vec((0..2usize, 0..4usize, 0..4usize), 0..8),
        identities in prop::collection::btree_set((0..2usize, 0..4usize), 0..6),
    ) {
        let ns = ["demo", "other"];
        let phases = ["Running", "Pending", "Succeeded", "Failed"];
        let mut s = ClusterState::default();
        let mut seen_pods = BTreeSet::new();
        for (p, n, label, node, phase) in &pods {
            if !seen_pods.insert((*p, *n)) { continue; }
            let labels = label.map(|l| json!({"aadpodidbinding": format!("sel{l}")})).unwrap_or(json!({}));
            s.add(json!({"kind": "Pod", "metadata": {"name": format!("pod{p}"), "namespace": ns[*n], "labels": labels},
                         "spec": {"nodeName": node.map(|x| format!("node{x}")), "containers": []}, "status": {"phase": phases[*phase]}})).unwrap();
        }
        for (i, (n, sel, id)) in bindings.iter().enumerate() {
            s.add(json!({"kind": "AzureIdentityBinding", "metadata": {"name": format!("b{i}"), "namespace": ns[*n]},
                         "spec": {"azureIdentity": format!("id{id}"), "selector": format!("sel{sel}")}})).unwrap();
        }
        for (n, id) in &identities {
            s.add(json!({"kind": "AzureIdentity", "metadata": {"name": format!("id{id}"), "namespace": ns[*n]},
                         "spec": {"type": 0, "resourceID": identity_id(&format!("id{id}")), "clientID": Uuid::new_v4()}})).unwrap();
        }
        let mut expected = BTreeSet::new();
        for p in &s.pods {
            let (name, namespace) = pod_name(p);
            let phase = p.status.as_ref().and_then(|x| x.phase.clone()).unwrap_or_default();
            let node = p.spec.as_ref().and_then(|x| x.node_name.clone()).unwrap_or_default();
            let label = p.metadata.labels.as_ref().and_then(|l| l.get("aadpodidbinding").cloned());
            for b in &s.bindings {
                for i in &s.identities {
                    if !node.is_empty() && phase != "Succeeded" && phase != "Failed" && label.as_deref() == Some(b.spec.selector.as_str())
                        && b.metadata.namespace == namespace && i.metadata.namespace == namespace && i.metadata.name == b.spec.azure_identity {
                        expected.insert((namespace.clone(), format!("{name}-{namespace}-{}", i.metadata.name), node.clone()));
                    }
                }
            }
        }
        let plan = reconcile::<Snapshot>(&s, None);
        let got: BTreeSet<(String, String, String)> =
            plan.desired.iter().map(|a| (a.metadata.namespace.clone(), a.metadata.name.clone(), a.spec.node_name.clone())).collect();
        prop_assert_eq!(got.len(), plan.desired.len(), "no duplicates");
        prop_assert_eq!(got, expected);
        prop_assert!(plan.desired.iter().all(|a| a.is_assigned()));
    }
}
