//! Everything a cluster needs to run kite, as Kubernetes objects for `kubectl apply -f -`: the
//! namespace, service accounts, RBAC built from what each component does ([`access`]), the server
//! Deployment (replicas on one PostgreSQL, one controller under a Lease), its Service and
//! PodDisruptionBudget, the node agent DaemonSet, aad-pod-identity's CRDs; and kube-apiserver's
//! authentication and authorization webhook configuration files.

pub mod access;
mod apiserver;
mod workloads;

use serde_json::{json, Value};

pub use access::{Access, Where};
pub use apiserver::{webhook_configs, ApiServerFiles, WebhookConfig};
pub use workloads::{SERVER_CA, WEBHOOK_CLIENT_CA};

pub const SERVER: &str = "kite-server";
pub const AGENT: &str = "kite-agent";
/// The server's HTTPS port (management API, token service, the agents' token requests, probes).
pub const SERVER_PORT: u16 = 8443;
/// The webhook listener's port: kube-apiserver only, with a client certificate.
pub const WEBHOOK_PORT: u16 = 9443;
/// The node agent's plain-HTTP port on each node (NMI's).
pub const AGENT_PORT: u16 = 2579;
/// The audience of the projected token the agent proves itself with.
pub const AGENT_AUDIENCE: &str = "kite";

#[derive(Clone, Debug)]
pub struct Options {
    pub namespace: String,
    pub image: String,
    /// The Secret whose key `url` holds the PostgreSQL URL.
    pub database_url_secret: String,
    /// The Secret whose key `kek` holds the key-encryption key (base64 of 32 bytes) every replica
    /// opens the sealed keys and secrets with.
    pub kek_secret: String,
    /// The `kubernetes.io/tls` Secret (e.g. cert-manager's) with the server's certificate.
    pub tls_secret: String,
    /// The cluster's service-account issuer, which signs the agents' tokens.
    pub agent_issuer: String,
    /// What `kite serve` does in the cluster (kite-kube's watchers and writers).
    pub server_access: Vec<Access>,
    /// What `kite agent` does there.
    pub agent_access: Vec<Access>,
}

impl Options {
    /// The server's URL inside the cluster.
    pub fn server_url(&self) -> String {
        format!("https://{SERVER}.{}.svc:{SERVER_PORT}", self.namespace)
    }
}

fn meta(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({"name": name, "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kite"}});
    if let Some(ns) = namespace {
        m["namespace"] = ns.into();
    }
    m
}

pub fn namespace(o: &Options) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(&o.namespace, None)})
}

/// A ServiceAccount, ClusterRole and binding for `name`, and a Role and RoleBinding per namespace
/// its accesses reach.
fn rbac(o: &Options, name: &str, accesses: &[Access]) -> Vec<Value> {
    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": o.namespace}]);
    let mut out = vec![json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, Some(&o.namespace))})];
    const RBAC: &str = "rbac.authorization.k8s.io/v1";
    let cluster = access::rules(accesses, &Where::Cluster);
    if !cluster.is_empty() {
        out.push(json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": meta(name, None), "rules": cluster}));
        out.push(json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": meta(name, None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": subject}));
    }
    for (scope, ns) in access::namespaces(accesses, &o.namespace) {
        out.push(json!({"apiVersion": RBAC, "kind": "Role", "metadata": meta(name, Some(ns)), "rules": access::rules(accesses, &scope)}));
        out.push(json!({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": meta(name, Some(ns)),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}, "subjects": subject}));
    }
    out
}

/// The server: its account and RBAC, Deployment, Service and PodDisruptionBudget.
pub fn server(o: &Options) -> Vec<Value> {
    let mut out = vec![namespace(o)];
    out.extend(server_objects(o));
    out
}

fn server_objects(o: &Options) -> Vec<Value> {
    let mut out = rbac(o, SERVER, &o.server_access);
    out.extend([workloads::deployment(o), workloads::service(o), workloads::disruption_budget(o)]);
    out
}

/// The node agent: its account and read-only RBAC, and the DaemonSet.
pub fn agent(o: &Options) -> Vec<Value> {
    let mut out = vec![namespace(o)];
    out.extend(agent_objects(o));
    out
}

fn agent_objects(o: &Options) -> Vec<Value> {
    let mut out = rbac(o, AGENT, &o.agent_access);
    out.push(workloads::daemon_set(o));
    out
}

/// CRDs first (the server watches them), then the namespace, the server and the agent.
pub fn all(o: &Options) -> Vec<Value> {
    let mut out = crate::podidentity::crds::crds();
    out.push(namespace(o));
    out.extend(server_objects(o));
    out.extend(agent_objects(o));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            namespace: "kite-system".into(),
            image: "kite:test".into(),
            database_url_secret: "kite-db".into(),
            kek_secret: "kite-kek".into(),
            tls_secret: "kite-server-tls".into(),
            agent_issuer: "https://kubernetes.default.svc.cluster.local".into(),
            server_access: vec![
                Access::new(Where::Cluster, "", "pods", &["list", "watch"]),
                Access::new(Where::Cluster, "", "pods", &["watch", "get"]),
                Access::new(Where::Namespace("kube-system"), "", "configmaps", &["list", "watch"]).named("aws-auth"),
                Access::new(Where::Own, "coordination.k8s.io", "leases", &["create"]),
            ],
            agent_access: vec![Access::new(Where::Cluster, "", "pods", &["list", "watch"])],
        }
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str, ns: Option<&str>) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name && o["metadata"]["namespace"].as_str() == ns)
            .unwrap_or_else(|| panic!("no {kind} {name} in {ns:?}"))
    }

    #[test]
    fn accesses_become_merged_rules_in_the_scope_they_name() {
        let objects = server(&options());
        let role = find(&objects, "ClusterRole", SERVER, None);
        assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]));
        let aws = find(&objects, "Role", SERVER, Some("kube-system"));
        assert_eq!(aws["rules"][0]["resourceNames"], json!(["aws-auth"]));
        let lease = find(&objects, "Role", SERVER, Some("kite-system"));
        assert_eq!(lease["rules"][0]["resources"], json!(["leases"]));
        let binding = find(&objects, "RoleBinding", SERVER, Some("kube-system"));
        assert_eq!(binding["subjects"][0]["namespace"], "kite-system");
    }

    #[test]
    fn all_holds_each_object_once() {
        let objects = all(&options());
        let mut keys: Vec<String> = objects.iter().map(|o| format!("{} {} {}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "{keys:#?}");
        assert_eq!(objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition").count(), 4);
    }
}
