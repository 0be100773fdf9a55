//! End to end against a live (fake) Kubernetes API server: `kite aks pod-identity add|delete
//! --kubeconfig` creates and deletes the add-on's AzureIdentity and AzureIdentityBinding in the
//! cluster, and `kite serve --kubeconfig` serves (then refuses) a labelled pod through its watch.
mod fake_kube;
mod support;

use fake_kube::FakeKube;
use serde_json::{json, Value};
use support::{Cli, Server};

const IDENTITIES: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentities";
const BINDINGS: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentitybindings";

/// A cluster with one pod labelled `aadpodidbinding: vote`; `with_crds` false leaves out
/// aad-pod-identity's kinds, as a cluster without its CRDs.
fn cluster(with_crds: bool) -> FakeKube {
    // The test's curl calls come from 127.0.0.1: that is the pod's IP in this cluster.
    let pod = json!({"metadata": {"name": "azure-vote-front", "namespace": "default", "labels": {"aadpodidbinding": "vote"}},
        "spec": {"containers": [{"name": "front", "image": "front"}]}, "status": {"podIP": "127.0.0.1", "phase": "Running"}});
    let mut collections = vec![
        ("/api/v1/pods", vec![pod]),
        ("/api/v1/nodes", vec![json!({"metadata": {"name": "aks-nodepool1-0"}})]),
        ("/api/v1/secrets", vec![]),
        ("/api/v1/serviceaccounts", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/roles", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/rolebindings", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", vec![]),
        ("/api/v1/namespaces/kube-system/configmaps", vec![]),
    ];
    if with_crds {
        collections.extend([
            (IDENTITIES, vec![]),
            (BINDINGS, vec![]),
            ("/apis/aadpodidentity.k8s.io/v1/azurepodidentityexceptions", vec![]),
            ("/apis/aadpodidentity.k8s.io/v1/azureassignedidentities", vec![]),
        ]);
    }
    FakeKube::start(&collections)
}

/// The pod's IMDS call, repeated until it answers `want`.
fn imds_until(server: &Server, want: u16) -> Value {
    support::wait_for(&format!("the node agent to answer {want}"), server, || {
        let (status, body) = server.imds("https://vault.azure.net");
        (status == want).then_some(body)
    })
}

#[test]
fn pod_identity_add_with_a_kubeconfig_creates_the_addon_objects_the_node_agent_serves_and_delete_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let kube = cluster(true);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let kc = kubeconfig.to_str().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--kubeconfig", kc]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "pod-identity", "-l", "japaneast"]).ok();
    cli.run(&["aks", "create", "-g", "pod-identity", "-n", "prod", "--network-plugin", "azure", "--enable-pod-identity"]).ok();
    let mi = cli.run(&["identity", "create", "-g", "pod-identity", "-n", "azure-vote"]).ok();
    let pod_identity = |verb: &str, name: &str, extra: &[&str]| {
        let mut args = vec!["aks", "pod-identity", verb, "--cluster-name", "prod", "-g", "pod-identity", "--namespace", "default", "--name", name];
        args.extend_from_slice(extra);
        cli.run(&args)
    };

    // Nothing binds the pod yet.
    kube.wait_for_watch(BINDINGS);
    let refused = imds_until(&server, 403);
    assert!(refused["error_description"].as_str().unwrap().contains("aadpodidbinding=vote"), "{refused}");

    let id = mi["id"].as_str().unwrap();
    pod_identity("add", "azure-vote", &["--identity-resource-id", id, "--binding-selector", "vote", "--kubeconfig", kc]).ok();
    let identity = kube.object(IDENTITIES, "azure-vote").expect("the AzureIdentity is in the cluster");
    assert_eq!((&identity["kind"], &identity["metadata"]["namespace"]), (&json!("AzureIdentity"), &json!("default")), "{identity}");
    assert_eq!(
        (&identity["spec"]["type"], &identity["spec"]["resourceID"], &identity["spec"]["clientID"]),
        (&json!(0), &json!(id), &mi["clientId"]),
        "{identity}"
    );
    let binding = kube.object(BINDINGS, "azure-vote-binding").expect("the AzureIdentityBinding is in the cluster");
    assert_eq!(binding["spec"], json!({"azureIdentity": "azure-vote", "selector": "vote", "weight": 0}));

    // kite serve sees them through its watch: the labelled pod gets the identity's token.
    let token = imds_until(&server, 200);
    assert_eq!(token["client_id"], mi["clientId"], "{token}");
    assert!(token["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{token}");

    // Adding it again is refused by the cluster resource before anything is written.
    pod_identity("add", "azure-vote", &["--identity-resource-id", id, "--binding-selector", "vote", "--kubeconfig", kc])
        .fails_with(&["default/azure-vote is given twice"]);

    pod_identity("delete", "azure-vote", &["--kubeconfig", kc]).ok();
    assert!(kube.object(IDENTITIES, "azure-vote").is_none() && kube.object(BINDINGS, "azure-vote-binding").is_none());
    let refused = imds_until(&server, 403);
    assert!(refused["error_description"].as_str().unwrap().contains("aadpodidbinding=vote"), "{refused}");
    pod_identity("delete", "azure-vote", &["--kubeconfig", kc]).fails_with(&["has no pod identity default/azure-vote"]);

    // A cluster without aad-pod-identity's CRDs: the add says how to install them, and the cluster
    // resource is left as it was so the same add can be run again once they are there.
    let bare = cluster(false);
    let bare_config = dir.path().join("bare-kubeconfig");
    bare.kubeconfig(&bare_config);
    pod_identity("add", "azure-vote", &["--identity-resource-id", id, "--binding-selector", "vote", "--kubeconfig", bare_config.to_str().unwrap()])
        .fails_with(&["does not serve azureidentities.aadpodidentity.k8s.io", "kite k8s crds | kubectl apply -f -", "was not added"]);
    let listed =
        cli.run(&["aks", "pod-identity", "list", "--cluster-name", "prod", "-g", "pod-identity", "--query", "podIdentityProfile.userAssignedIdentities"]).ok();
    assert_eq!(listed, json!([]), "{listed}");
    pod_identity("add", "azure-vote", &["--identity-resource-id", id, "--binding-selector", "vote", "--kubeconfig", kc]).ok();
    imds_until(&server, 200);
}

#[test]
fn serviceaccount_create_with_a_kubeconfig_writes_the_annotated_service_account_and_the_webhook_reads_it_by_watch() {
    const ACCOUNTS: &str = "/api/v1/serviceaccounts";
    let dir = tempfile::tempdir().unwrap();
    let kube = cluster(true);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let kc = kubeconfig.to_str().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--kubeconfig", kc]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    // The service account exists already, with an annotation of its team's: kept.
    kube.apply(ACCOUNTS, json!({"metadata": {"name": "api", "namespace": "payments", "annotations": {"team": "payments"}}}));
    let create = ["k8s", "serviceaccount", "create", "--name", "api", "--namespace", "payments", "--identity-name", "api-id", "-g", "apps"];
    cli.run(&[&create[..], &["--issuer", "https://oidc.example/cluster", "--kubeconfig", kc]].concat()).ok();
    let mi = cli.run(&["identity", "show", "-g", "apps", "-n", "api-id"]).ok();
    let account = kube.object(ACCOUNTS, "api").expect("the ServiceAccount is in the cluster");
    assert_eq!(account["metadata"]["annotations"]["azure.workload.identity/client-id"], mi["clientId"], "{account}");
    assert_eq!(account["metadata"]["annotations"]["team"], "payments", "{account}");
    assert_eq!(account["metadata"]["labels"]["azure.workload.identity/use"], "true", "{account}");

    // The webhook sees it through kite serve's watch, with no file and no call per pod.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u-1", "namespace": "payments",
        "object": {"metadata": {"generateName": "api-", "labels": {"azure.workload.identity/use": "true"}},
                   "spec": {"serviceAccountName": "api", "containers": [{"name": "app", "image": "app"}]}}}});
    let body = review.to_string();
    let answer = support::wait_for("the webhook to patch the pod", &server, || {
        let (status, text) = server.curl(&["-X", "POST", "-H", "content-type: application/json", "-d", &body], "/mutate-v1-pod");
        let answer: Value = serde_json::from_str(&text).ok()?;
        (status == 200 && answer["response"]["patch"].is_string()).then_some(answer)
    });
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    // Running it again changes nothing and still keeps the team's annotation.
    cli.run(&[&create[..], &["--issuer", "https://oidc.example/cluster", "--kubeconfig", kc]].concat()).ok();
    assert_eq!(kube.object(ACCOUNTS, "api").unwrap()["metadata"]["annotations"]["team"], "payments");
}
