//! End to end against a live (fake) Kubernetes API server: `kite serve --kubeconfig` answers the
//! node agent's IMDS endpoint and `POST /authorize` from what the cluster's watches say, changes
//! included, and `kite eks iamidentitymapping --kubeconfig` edits the cluster's aws-auth.
mod fake_kube;
mod support;

use fake_kube::FakeKube;
use serde_json::{json, Value};
use support::{wait_for, Cli, Server};

const PODS: &str = "/api/v1/pods";
const IDENTITIES: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentities";
const BINDINGS: &str = "/apis/aadpodidentity.k8s.io/v1/azureidentitybindings";
const CLUSTER_ROLE_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";

fn cluster(pods: Vec<Value>, aws_auth: Vec<Value>) -> FakeKube {
    let pod_reader = json!({"metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    let devs = json!({"metadata": {"name": "devs-read-pods", "namespace": "demo"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]});
    let binding = json!({"metadata": {"name": "app-binding", "namespace": "demo"}, "spec": {"azureIdentity": "app-identity", "selector": "app"}});
    FakeKube::start(&[
        (PODS, pods),
        ("/api/v1/nodes", vec![json!({"metadata": {"name": "aks-nodepool1-0"}})]),
        ("/api/v1/secrets", vec![]),
        ("/api/v1/serviceaccounts", vec![]),
        (IDENTITIES, vec![]),
        (BINDINGS, vec![binding]),
        ("/apis/aadpodidentity.k8s.io/v1/azurepodidentityexceptions", vec![]),
        ("/apis/aadpodidentity.k8s.io/v1/azureassignedidentities", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/roles", vec![]),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", vec![pod_reader]),
        ("/apis/rbac.authorization.k8s.io/v1/rolebindings", vec![devs]),
        (CLUSTER_ROLE_BINDINGS, vec![]),
        (CONFIGMAPS, aws_auth),
    ])
}

fn curl(server: &Server, args: &[&str], path: &str) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert", server.ca().to_str().unwrap()])
        .args(args)
        .arg(format!("{}{path}", server.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn allowed(server: &Server, groups: &[&str]) -> Value {
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "someone", "groups": groups, "resourceAttributes": {"namespace": "demo", "verb": "list", "resource": "pods"}}});
    curl(server, &["-H", "content-type: application/json", "-d", &sar.to_string()], "/authorize").1["status"].clone()
}

#[test]
fn kite_serve_with_a_kubeconfig_answers_imds_and_subject_access_reviews_from_the_live_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // The test's curl calls come from 127.0.0.1: that is the pod's IP in this cluster.
    let pod = json!({"metadata": {"name": "web", "namespace": "demo", "labels": {"aadpodidbinding": "app"}},
        "spec": {"containers": [{"name": "web", "image": "web"}]}, "status": {"podIP": "127.0.0.1", "phase": "Running"}});
    let kube = cluster(vec![pod], vec![]);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let server = Server::start(&dir.path().join("home"), &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "pods", "-l", "japaneast"]).ok();
    let identity = cli.run(&["identity", "create", "-g", "pods", "-n", "app-identity"]).ok();
    let client_id = identity["clientId"].as_str().unwrap().to_string();

    // The binding exists but names an AzureIdentity the cluster does not have yet.
    kube.wait_for_watch(IDENTITIES);
    let (code, body) = wait_for("the pod state from the cluster", &server, || {
        Some(server.imds("https://vault.azure.net")).filter(|(_, b)| b["error_description"].as_str().is_some_and(|d| d.contains("demo/web")))
    });
    assert_eq!(code, 403, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("no AzureIdentityBinding"), "{body}");

    // kubectl apply of the AzureIdentity reaches kite through its watch: the pod gets its token.
    kube.apply(
        IDENTITIES,
        json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": "app-identity", "namespace": "demo"},
        "spec": {"type": 0, "resourceID": identity["id"], "clientID": client_id}}),
    );
    let (code, token) = wait_for("a token for the pod", &server, || Some(server.imds("https://vault.azure.net")).filter(|(c, _)| *c == 200));
    assert_eq!(code, 200);
    assert_eq!(token["client_id"], client_id.as_str(), "{token}");
    assert!(token["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{token}");

    // RBAC from the cluster: developers may list pods in demo, ops may not — until a
    // ClusterRoleBinding for ops arrives by watch.
    let devs = wait_for("RBAC from the cluster", &server, || Some(allowed(&server, &["developers"])).filter(|s| s["allowed"] == true));
    assert!(devs["reason"].as_str().unwrap_or_default().contains("devs-read-pods"), "{devs}");
    assert_eq!(allowed(&server, &["ops"])["allowed"], false);
    kube.wait_for_watch(CLUSTER_ROLE_BINDINGS);
    kube.apply(
        CLUSTER_ROLE_BINDINGS,
        json!({"metadata": {"name": "ops-read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ops"}]}),
    );
    wait_for("the new ClusterRoleBinding to take effect", &server, || Some(allowed(&server, &["ops"])).filter(|s| s["allowed"] == true));
}

#[test]
fn iamidentitymapping_with_a_kubeconfig_edits_the_clusters_aws_auth_and_refuses_a_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let creator = "- rolearn: arn:aws:iam::111122223333:role/creator\n  username: creator\n  groups:\n  - system:masters\n";
    let aws_auth = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system", "labels": {"owner": "platform"}},
        "data": {"mapRoles": creator, "otherKey": "kept"}});
    let kube = cluster(vec![], vec![]);
    kube.apply(CONFIGMAPS, aws_auth);
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let cli = Cli::new(dir.path());
    let kc = kubeconfig.to_str().unwrap();
    let arn = "arn:aws:iam::111122223333:user/6248";
    let rows = cli
        .run(&[
            "eks",
            "iamidentitymapping",
            "create",
            "--cluster",
            "prod",
            "--kubeconfig",
            kc,
            "--arn",
            arn,
            "--username",
            "user-6248",
            "--group",
            "developers",
        ])
        .ok();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");

    let stored = kube.object(CONFIGMAPS, "aws-auth").unwrap();
    assert!(stored["data"]["mapUsers"].as_str().unwrap().contains(arn), "{stored}");
    assert!(stored["data"]["mapRoles"].as_str().unwrap().contains("role/creator"), "{stored}");
    assert_eq!(stored["data"]["otherKey"], "kept");
    assert_eq!(stored["metadata"]["labels"]["owner"], "platform");

    let listed = cli.run(&["eks", "iamidentitymapping", "list", "--cluster", "prod", "--kubeconfig", kc]).ok();
    assert!(listed.as_array().unwrap().iter().any(|r| r["arn"] == arn && r["username"] == "user-6248"), "{listed}");

    // A role path never matches upstream: refused, and the cluster's ConfigMap is untouched.
    let before = kube.object(CONFIGMAPS, "aws-auth").unwrap();
    cli.run(&[
        "eks",
        "iamidentitymapping",
        "create",
        "--cluster",
        "prod",
        "--kubeconfig",
        kc,
        "--arn",
        "arn:aws:iam::111122223333:role/team/dev",
        "--username",
        "dev",
        "--group",
        "developers",
    ])
    .fails_with(&["role path", "arn:aws:iam::111122223333:role/dev"]);
    assert_eq!(kube.object(CONFIGMAPS, "aws-auth").unwrap(), before);

    cli.run(&["eks", "iamidentitymapping", "delete", "--cluster", "prod", "--kubeconfig", kc, "--arn", arn]).ok_text();
    assert!(kube.object(CONFIGMAPS, "aws-auth").unwrap()["data"].get("mapUsers").is_none());
}
