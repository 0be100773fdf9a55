//! `kite k8s manifests server|agent`: the RBAC they print is what kite does in a cluster, derived
//! from the lists kite-kube builds its watchers and writers from (for the server and for `kite
//! agent`), and nothing more.
mod support;

use std::collections::BTreeSet;
use std::process::Command;

use kite_k8s::install::Where;
use serde_json::Value;

/// (namespace or none for cluster-wide, group, resource, verb, resource name or none)
type Grant = (Option<String>, String, String, String, Option<String>);

fn manifests(part: &str, namespace: &str) -> Vec<Value> {
    let out = Command::new(support::BIN).args(["k8s", "manifests", part, "--namespace", namespace, "-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// What the Roles and ClusterRoles named `name` grant, rule by rule, verb by verb, name by name.
fn grants(objects: &[Value], name: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for o in objects.iter().filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")) && o["metadata"]["name"] == name) {
        let namespace = o["metadata"]["namespace"].as_str().map(str::to_string);
        for rule in o["rules"].as_array().unwrap() {
            let strings =
                |key: &str| -> Vec<String> { rule[key].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect()).unwrap_or_default() };
            let names: Vec<Option<String>> = match strings("resourceNames") {
                names if names.is_empty() => vec![None],
                names => names.into_iter().map(Some).collect(),
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        for n in &names {
                            out.insert((namespace.clone(), group.clone(), resource.clone(), verb.clone(), n.clone()));
                        }
                    }
                }
            }
        }
    }
    out
}

/// What `accesses` (kite-kube's lists) come to, with kite's own namespace `own`.
fn expected(accesses: Vec<kite_k8s::install::Access>, own: &str) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for a in accesses {
        let namespace = match a.scope {
            Where::Cluster => None,
            Where::Own => Some(own.to_string()),
            Where::Namespace(ns) => Some(ns.to_string()),
        };
        let names: Vec<Option<String>> = if a.names.is_empty() { vec![None] } else { a.names.iter().cloned().map(Some).collect() };
        for verb in a.verbs {
            for n in &names {
                out.insert((namespace.clone(), a.group.clone(), a.resource.clone(), verb.to_string(), n.clone()));
            }
        }
    }
    out
}

#[test]
fn the_server_roles_grant_exactly_what_kite_kube_watches_and_writes() {
    let objects = manifests("server", "identity");
    let expected = expected(kite_kube::access::server(), "identity");
    let granted = grants(&objects, "kite-server");
    assert_eq!(granted, expected, "granted but unused: {:#?}\nused but not granted: {:#?}", granted.difference(&expected), expected.difference(&granted));

    // What that means, spelled out: reads of the watched kinds, writes only of assignments and the Lease.
    let writes: BTreeSet<(String, String)> =
        granted.iter().filter(|g| !matches!(g.3.as_str(), "get" | "list" | "watch")).map(|g| (g.2.clone(), g.3.clone())).collect();
    let expected_writes = [
        ("azureassignedidentities", "create"),
        ("azureassignedidentities", "delete"),
        ("azureassignedidentities", "update"),
        ("leases", "create"),
        ("leases", "update"),
    ];
    assert_eq!(writes, expected_writes.iter().map(|(r, v)| (r.to_string(), v.to_string())).collect());
    assert!(granted.contains(&(Some("kube-system".into()), String::new(), "configmaps".into(), "watch".into(), Some("aws-auth".into()))));
    assert!(granted.iter().filter(|g| g.2 == "configmaps").all(|g| g.4.as_deref() == Some("aws-auth")), "only aws-auth among ConfigMaps");
    assert!(granted.iter().filter(|g| g.2 == "leases").all(|g| g.0.as_deref() == Some("identity")), "the Lease only in kite's namespace");

    // Each Role and ClusterRole is bound to kite-server's ServiceAccount in kite's namespace.
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        let bindings: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
        assert!(!bindings.is_empty(), "{kind}");
        for b in bindings {
            assert_eq!(b["subjects"], serde_json::json!([{"kind": "ServiceAccount", "name": "kite-server", "namespace": "identity"}]), "{b}");
        }
    }
}

#[test]
fn the_agent_reads_pods_and_pod_identity_objects_and_nothing_else() {
    let objects = manifests("agent", "kite-system");
    let granted = grants(&objects, "kite-agent");
    assert_eq!(granted, expected(kite_kube::access::agent(), "kite-system"));
    let resources: BTreeSet<&str> = granted.iter().map(|g| g.2.as_str()).collect();
    assert_eq!(
        resources,
        BTreeSet::from(["pods", "azureidentities", "azureidentitybindings", "azurepodidentityexceptions", "azureassignedidentities"]),
        "no secrets, no nodes, no writes"
    );
    assert!(granted.iter().all(|g| matches!(g.3.as_str(), "get" | "list" | "watch") && g.0.is_none()), "{granted:#?}");
    assert!(!objects.iter().any(|o| o["kind"] == "Role"), "the agent needs no namespaced access");
}
