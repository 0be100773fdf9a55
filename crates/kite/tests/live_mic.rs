//! End to end: the pod identity controller against a live (fake) Kubernetes API server.
//! `kite serve --kubeconfig` creates the AzureAssignedIdentity for a labelled, scheduled pod in the
//! cluster, replaces it once the cluster identity's role assignments let it be Assigned (standard
//! mode: until then the node agent refuses the pod, saying what is missing), and deletes it when
//! the pod goes — every change read back through kite's own watch.
mod fake_kube;
mod support;

use fake_kube::FakeKube;
use serde_json::{json, Value};
use support::{wait_for, Cli, Server};

const PODS: &str = "/api/v1/pods";
const ASSIGNED: &str = "/apis/aadpodidentity.k8s.io/v1/azureassignedidentities";
const NAME: &str = "web-demo-app-identity";

fn cluster(sub: &str, identity: &Value) -> FakeKube {
    // The test's curl calls come from 127.0.0.1: that is the pod's IP in this cluster.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "demo", "labels": {"aadpodidbinding": "app"}},
        "spec": {"nodeName": "aks-nodepool1-0", "containers": [{"name": "web", "image": "web"}]}, "status": {"podIP": "127.0.0.1", "phase": "Running"}});
    let node = json!({"metadata": {"name": "aks-nodepool1-0"}, "spec": {"providerID": format!(
        "azure:///subscriptions/{sub}/resourceGroups/MC_rg_prod_japaneast/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0")}});
    let azure_identity = json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": "app-identity", "namespace": "demo"},
        "spec": {"type": 0, "resourceID": identity["id"], "clientID": identity["clientId"]}});
    let binding = json!({"metadata": {"name": "app-binding", "namespace": "demo"}, "spec": {"azureIdentity": "app-identity", "selector": "app"}});
    FakeKube::start(&[
        (PODS, vec![pod]),
        ("/api/v1/nodes", vec![node]),
        ("/api/v1/secrets", vec![]),
        ("/api/v1/serviceaccounts", vec![]),
        ("/apis/aadpodidentity.k8s.io/v1/azureidentities", vec![azure_identity]),
        ("/apis/aadpodidentity.k8s.io/v1/azureidentitybindings", vec![binding]),
        ("/apis/aadpodidentity.k8s.io/v1/azurepodidentityexceptions", vec![]),
        (ASSIGNED, vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/roles", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/rolebindings", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", vec![]),
        ("/api/v1/namespaces/kube-system/configmaps", vec![]),
    ])
}

#[test]
fn standard_mode_with_a_kubeconfig_keeps_azure_assigned_identities_in_step_in_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("server");
    let (sub, kubelet, identity) = support::kubelet_and_app_identities(&home, &dir.path().join("admin"));
    let kubelet_id = kubelet["clientId"].as_str().unwrap();
    let kube = cluster(&sub, &identity);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let server = Server::start(&home, &["--kubeconfig", kubeconfig.to_str().unwrap(), "--pod-identity-mode", "standard", "--cluster-identity", kubelet_id]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);

    // The controller creates the assignment in the cluster: Created, with what is missing.
    let created = wait_for("the AzureAssignedIdentity in the cluster", &server, || kube.object(ASSIGNED, NAME));
    assert_eq!((created["kind"].as_str(), created["metadata"]["namespace"].as_str()), (Some("AzureAssignedIdentity"), Some("demo")), "{created}");
    assert_eq!(created["status"]["status"], "Created", "{created}");
    assert_eq!((created["spec"]["pod"].as_str(), created["spec"]["nodename"].as_str()), (Some("web"), Some("aks-nodepool1-0")));
    assert_eq!(created["spec"]["azureIdentityRef"]["spec"]["clientID"], identity["clientId"]);
    assert_eq!(created["metadata"]["labels"]["nodename"], "aks-nodepool1-0");
    let requests = kube.requests();
    assert!(requests.iter().any(|r| r == "POST /apis/aadpodidentity.k8s.io/v1/namespaces/demo/azureassignedidentities?"), "{requests:#?}");

    // The node agent reads the assignment back through the watch and refuses the pod with the reason.
    let node_rg = format!("/subscriptions/{sub}/resourceGroups/MC_rg_prod_japaneast");
    let mio_fix = format!("--role \"Managed Identity Operator\" --assignee {kubelet_id} --scope {}", identity["id"].as_str().unwrap());
    let vmc_fix = format!("--role \"Virtual Machine Contributor\" --assignee {kubelet_id} --scope {node_rg}");
    let (code, body) = wait_for("the agent to see the assignment", &server, || {
        Some(server.imds("https://management.azure.com/"))
            .filter(|(_, b)| b["error_description"].as_str().is_some_and(|d| d.contains("not yet assigned to node")))
    });
    let why = body["error_description"].as_str().unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(why.contains("pod demo/web: identity demo/app-identity is not yet assigned to node aks-nodepool1-0"), "{why}");
    assert!(why.contains(&mio_fix) && why.contains(&vmc_fix), "both missing roles with their fixes: {why}");

    // Granting both roles: the periodic re-check replaces the object as Assigned, and the pod gets its token.
    admin
        .run(&["role", "assignment", "create", "--role", "Managed Identity Operator", "--assignee", kubelet_id, "--scope", identity["id"].as_str().unwrap()])
        .ok();
    admin.run(&["role", "assignment", "create", "--role", "Virtual Machine Contributor", "--assignee", kubelet_id, "--scope", &node_rg]).ok();
    let (_, token) = wait_for("the token", &server, || Some(server.imds("https://management.azure.com/")).filter(|(c, _)| *c == 200));
    assert_eq!(token["client_id"], identity["clientId"], "{token}");
    let assigned = kube.object(ASSIGNED, NAME).unwrap();
    assert_eq!(assigned["status"]["status"], "Assigned", "{assigned}");
    assert!(assigned["metadata"].get("annotations").is_none(), "no reason left once assigned: {assigned}");
    assert!(kube.requests().iter().any(|r| r == &format!("PUT /apis/aadpodidentity.k8s.io/v1/namespaces/demo/azureassignedidentities/{NAME}?")));

    // The pod goes: so does its assignment, and the agent no longer knows the caller.
    kube.delete(PODS, "web");
    wait_for("the AzureAssignedIdentity to be deleted", &server, || kube.objects(ASSIGNED).is_empty().then_some(()));
    assert!(kube.requests().iter().any(|r| r.starts_with(&format!("DELETE /apis/aadpodidentity.k8s.io/v1/namespaces/demo/azureassignedidentities/{NAME}"))));
    let log = server.log_text();
    assert!(!log.contains("pod identity controller: cannot"), "no write was refused: {log}");
}
