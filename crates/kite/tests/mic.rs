//! End to end: the pod identity controller (MIC) inside `kite serve --pod-identity-dir`, driven by
//! writing Kubernetes YAML into the directory, read back with `kite k8s get`, and the node agent's
//! IMDS endpoint called with curl from the "pod" (this machine: the Pod's status.podIP is 127.0.0.1).
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{wait_for, Cli, Server};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  labels:
    aadpodidbinding: app
spec:
  nodeName: aks-nodepool1-0
  containers: [{name: web, image: nginx}]
status:
  podIP: 127.0.0.1
  phase: Running
";

fn cluster_yaml(sub: &str, identity: &Value) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: aks-nodepool1-0
spec:
  providerID: azure:///subscriptions/{sub}/resourceGroups/MC_rg_prod_japaneast/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata:
  name: app-identity
  namespace: demo
spec:
  type: 0
  resourceID: {}
  clientID: {}
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata:
  name: app-binding
  namespace: demo
spec:
  azureIdentity: app-identity
  selector: app
"#,
        identity["id"].as_str().unwrap(),
        identity["clientId"].as_str().unwrap()
    )
}

/// `kite k8s get azureassignedidentities -o json`: the items.
fn assigned(cli: &Cli, dir: &Path) -> Vec<Value> {
    let out = cli.run(&["k8s", "get", "azureassignedidentities", "--dir", dir.to_str().unwrap(), "-n", "demo", "-o", "json"]).ok();
    assert_eq!(out["kind"], "List");
    out["items"].as_array().unwrap().clone()
}

/// Checks `value` against a CRD's openAPIV3Schema: every field declared, every type right.
fn conforms(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || (value.is_null() && schema["nullable"] == true),
        Some("array") => value.is_array() || (value.is_null() && schema["nullable"] == true),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: {value} is not of type {}", schema["type"]));
    }
    if let (Some(fields), Some(props)) = (value.as_object(), schema["properties"].as_object()) {
        for (k, v) in fields {
            let sub = props.get(k).ok_or_else(|| format!("{at}.{k} is not in the schema (fields there: {:?})", props.keys().collect::<Vec<_>>()))?;
            conforms(v, sub, &format!("{at}.{k}"))?;
        }
    }
    if let (Some(fields), Some(extra)) = (value.as_object(), schema.get("additionalProperties")) {
        for (k, v) in fields {
            conforms(v, extra, &format!("{at}.{k}"))?;
        }
    }
    Ok(())
}

fn crds(cli: &Cli) -> Vec<Value> {
    let yaml = cli.run(&["k8s", "crds"]).ok_text();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    docs
}

fn schema_for<'a>(crds: &'a [Value], kind: &str) -> &'a Value {
    let crd = crds.iter().find(|c| c["spec"]["names"]["kind"] == kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn kite_k8s_crds_prints_four_installable_crds_whose_schemas_take_the_seed_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let docs = crds(&cli);
    let kinds: Vec<&str> = docs.iter().map(|d| d["spec"]["names"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["AzureIdentity", "AzureIdentityBinding", "AzureAssignedIdentity", "AzurePodIdentityException"]);
    for d in &docs {
        assert_eq!((d["apiVersion"].as_str(), d["kind"].as_str()), (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")));
        assert_eq!(d["spec"]["group"], "aadpodidentity.k8s.io");
        let plural = d["spec"]["names"]["plural"].as_str().unwrap();
        assert_eq!(d["metadata"]["name"].as_str().unwrap(), format!("{plural}.aadpodidentity.k8s.io"));
        assert_eq!(d["spec"]["versions"][0]["name"], "v1");
    }
    // The objects seeds 001 and 003 apply, verbatim.
    let seed = r#"apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata:
  name: demo
spec:
  type: 0
  resourceID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/Study4Dev-JE-AKS-Study4Dev-JE-AKSResource/providers/Microsoft.ManagedIdentity/userAssignedIdentities/DEMO"
  clientID: cb5569f2-8d09-4de1-a007-e02058e11d15
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata:
  name: demo-binding
spec:
  azureIdentity: demo
  selector: DEMO
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzurePodIdentityException
metadata:
  name: mic-exception
  namespace: default
spec:
  podLabels:
    kubernetes.azure.com/managedby: aks
"#;
    for doc in serde_yaml_ng::Deserializer::from_str(seed) {
        let obj: Value = serde::Deserialize::deserialize(doc).unwrap();
        let kind = obj["kind"].as_str().unwrap();
        conforms(&obj, schema_for(&docs, kind), kind).unwrap();
    }
    // A misspelt field is something the schema would refuse.
    let typo: Value = serde_json::json!({"kind": "AzureIdentityBinding", "spec": {"azureIdentityName": "demo"}});
    assert!(conforms(&typo, schema_for(&docs, "AzureIdentityBinding"), "binding").unwrap_err().contains("azureIdentityName"));

    let json = cli.run(&["k8s", "crds", "-o", "json"]).ok();
    assert_eq!((json["kind"].as_str(), json["items"].as_array().map(Vec::len)), (Some("List"), Some(4)));
    cli.run(&["k8s", "crds", "-o", "table"]).fails_with(&["-o yaml"]);
}

#[test]
fn managed_mode_keeps_assigned_identities_in_step_with_the_pods() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    std::fs::create_dir(&cluster).unwrap();
    let server = Server::start(&dir.path().join("server"), &["--pod-identity-dir", cluster.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    let identity = admin.run(&["identity", "create", "-g", "apps", "-n", "app"]).ok();
    std::fs::write(cluster.join("cluster.yaml"), cluster_yaml(&admin.subscription(), &identity)).unwrap();
    std::fs::write(cluster.join("pod.yaml"), POD).unwrap();

    let file = cluster.join("azureassignedidentities/web-demo-app-identity.yaml");
    wait_for("the AzureAssignedIdentity file", &server, || file.exists().then_some(()));
    let items = assigned(&admin, &cluster);
    assert_eq!(items.len(), 1, "{items:?}");
    let a = &items[0];
    assert_eq!((a["kind"].as_str(), a["status"]["status"].as_str()), (Some("AzureAssignedIdentity"), Some("Assigned")), "managed mode assigns at once: {a}");
    assert_eq!(
        (a["spec"]["pod"].as_str(), a["spec"]["podNamespace"].as_str(), a["spec"]["nodename"].as_str()),
        (Some("web"), Some("demo"), Some("aks-nodepool1-0"))
    );
    assert_eq!(a["spec"]["azureIdentityRef"]["spec"]["clientID"], identity["clientId"]);
    assert_eq!(a["metadata"]["labels"]["nodename"], "aks-nodepool1-0");
    // What the controller writes is what the CRD accepts.
    let written: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    conforms(&written, schema_for(&crds(&admin), "AzureAssignedIdentity"), "written").unwrap();

    let table = admin.run(&["k8s", "get", "azureassignedidentities", "--dir", cluster.to_str().unwrap()]).ok_text();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE") && lines[0].contains("STATUS"), "{table}");
    assert!(lines[1].starts_with("demo") && lines[1].contains("web-demo-app-identity") && lines[1].ends_with("Assigned"), "{table}");

    let (code, body) = wait_for("a token", &server, || Some(server.imds("https://management.azure.com/")).filter(|(c, _)| *c == 200));
    assert_eq!((code, body["client_id"].as_str()), (200, identity["clientId"].as_str()));

    // The pod goes: so does its assignment.
    std::fs::remove_file(cluster.join("pod.yaml")).unwrap();
    wait_for("the AzureAssignedIdentity to go", &server, || (!file.exists()).then_some(()));
    assert!(assigned(&admin, &cluster).is_empty());
    admin.run(&["k8s", "get", "azureidentitybindings", "--dir", cluster.to_str().unwrap()]).fails_with(&["reads azureassignedidentities"]);
}

#[test]
fn standard_mode_refuses_the_pod_until_the_cluster_identity_holds_both_roles() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("server");
    let cluster = dir.path().join("cluster");
    std::fs::create_dir(&cluster).unwrap();
    let (sub, kubelet, identity) = support::kubelet_and_app_identities(&home, &dir.path().join("admin"));
    let kubelet_id = kubelet["clientId"].as_str().unwrap();
    let refused = Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--pod-identity-dir", cluster.to_str().unwrap(), "--pod-identity-mode", "standard"])
        .env("KITE_HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("give its client ID with --cluster-identity"), "{stderr}");
    let server = Server::start(&home, &["--pod-identity-dir", cluster.to_str().unwrap(), "--pod-identity-mode", "standard", "--cluster-identity", kubelet_id]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    std::fs::write(cluster.join("cluster.yaml"), cluster_yaml(&sub, &identity)).unwrap();
    std::fs::write(cluster.join("pod.yaml"), POD).unwrap();

    let file = cluster.join("azureassignedidentities/web-demo-app-identity.yaml");
    wait_for("the AzureAssignedIdentity file", &server, || file.exists().then_some(()));
    let a = assigned(&admin, &cluster).remove(0);
    assert_eq!(a["status"]["status"], "Created", "{a}");
    let node_rg = format!("/subscriptions/{sub}/resourceGroups/MC_rg_prod_japaneast");
    let mio_fix = format!("--role \"Managed Identity Operator\" --assignee {kubelet_id} --scope {}", identity["id"].as_str().unwrap());
    let vmc_fix = format!("--role \"Virtual Machine Contributor\" --assignee {kubelet_id} --scope {node_rg}");

    let (code, body) = server.imds("https://management.azure.com/");
    let why = body["error_description"].as_str().unwrap_or_default().to_string();
    assert_eq!(code, 403, "{body}");
    assert!(why.contains("pod demo/web: identity demo/app-identity is not yet assigned to node aks-nodepool1-0"), "{why}");
    assert!(why.contains(&mio_fix) && why.contains(&vmc_fix), "both missing roles with their fixes: {why}");

    admin
        .run(&["role", "assignment", "create", "--role", "Managed Identity Operator", "--assignee", kubelet_id, "--scope", identity["id"].as_str().unwrap()])
        .ok();
    let why = wait_for("Managed Identity Operator to count", &server, || {
        let (code, body) = server.imds("https://management.azure.com/");
        let why = body["error_description"].as_str().unwrap_or_default().to_string();
        (code == 403 && !why.contains(&mio_fix)).then_some(why)
    });
    assert!(why.contains(&vmc_fix), "still lacks Virtual Machine Contributor: {why}");

    admin.run(&["role", "assignment", "create", "--role", "Virtual Machine Contributor", "--assignee", kubelet_id, "--scope", &node_rg]).ok();
    let (_, body) = wait_for("the token", &server, || Some(server.imds("https://management.azure.com/")).filter(|(c, _)| *c == 200));
    assert_eq!(body["client_id"], identity["clientId"]);
    let a = assigned(&admin, &cluster).remove(0);
    assert_eq!(a["status"]["status"], "Assigned");
    assert!(a["metadata"].get("annotations").is_none(), "no reason left once assigned: {a}");
    let vmss = format!("{node_rg}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss");
    let log = server.log_text();
    assert!(log.lines().any(|l| l.contains("node identities changed") && l.contains(&vmss) && l.contains("added")), "{log}");

    std::fs::remove_file(cluster.join("pod.yaml")).unwrap();
    // The log styles field names, so the node line is matched by its parts: the second change
    // leaves the scale set with no identities (the last field).
    let removed = wait_for("the identity to leave the node", &server, || {
        let log = server.log_text();
        let changes: Vec<String> = log.lines().filter(|l| l.contains("node identities changed")).map(str::to_string).collect();
        (changes.len() == 2).then(|| changes[1].clone())
    });
    assert!(removed.contains(&vmss) && removed.contains(identity["id"].as_str().unwrap()) && removed.trim_end().ends_with("[]"), "{removed}");
    assert!(!file.exists());
}
