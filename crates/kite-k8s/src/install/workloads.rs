//! The server Deployment, Service and PodDisruptionBudget, and the node agent DaemonSet.

use serde_json::{json, Value};

use super::{meta, Options, AGENT, AGENT_AUDIENCE, AGENT_PORT, SERVER, SERVER_PORT, WEBHOOK_PORT};
use crate::workload_identity::CA_KEY;

/// The server's writable volume, and KITE_HOME inside it: kite makes KITE_HOME itself, so it owns
/// it and may restrict it to itself (a volume's root belongs to root).
const DATA: &str = "/var/lib/kite";
const HOME: &str = "/var/lib/kite/home";
const TLS_DIR: &str = "/etc/kite/tls";
const WEBHOOK_CA_DIR: &str = "/etc/kite/webhook-client-ca";
/// The ConfigMap holding the CA that signed kube-apiserver's webhook client certificate.
pub const WEBHOOK_CLIENT_CA: &str = "kite-webhook-client-ca";
/// The ConfigMap holding the CA of the server's certificate, which agents trust (`kite k8s
/// manifests ca-bundle` prints it).
pub const SERVER_CA: &str = "kite-root-ca.crt";
const AGENT_CA_DIR: &str = "/etc/kite/ca";
const AGENT_TOKEN_DIR: &str = "/var/run/secrets/kite";

fn selector(name: &str) -> Value {
    json!({"app.kubernetes.io/name": name})
}

fn probe(path: &str, port: Value, scheme: &str, period: u32) -> Value {
    json!({"httpGet": {"path": path, "port": port, "scheme": scheme}, "periodSeconds": period, "timeoutSeconds": 3, "failureThreshold": 3})
}

fn server_args(o: &Options) -> Vec<String> {
    let ns = &o.namespace;
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        &format!("0.0.0.0:{SERVER_PORT}"),
        "--public-url",
        &o.server_url(),
        "--in-cluster",
        "--tls-cert",
        &format!("{TLS_DIR}/tls.crt"),
        "--tls-key",
        &format!("{TLS_DIR}/tls.key"),
        "--webhook-listen",
        &format!("0.0.0.0:{WEBHOOK_PORT}"),
        "--webhook-client-ca",
        &format!("{WEBHOOK_CA_DIR}/{CA_KEY}"),
        "--leader-election-namespace",
        ns,
        "--cluster-issuer",
        &o.agent_issuer,
        "--agent-audience",
        AGENT_AUDIENCE,
        "--agent-service-account",
        &format!("{ns}:{AGENT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The API server as issuer (kubeadm's default): a Service address, private, with the cluster's CA.
    let host = o.agent_issuer.trim_start_matches("https://").split(['/', ':']).next().unwrap_or_default();
    if host.ends_with(".svc") || host.ends_with(".svc.cluster.local") {
        args.extend(["--allow-private-issuer", "--issuer-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"].map(String::from));
    }
    args
}

/// Two replicas on one PostgreSQL (the URL from a Secret), one certificate for both (a TLS Secret,
/// reloaded as it is renewed), spread over nodes.
pub fn deployment(o: &Options) -> Value {
    let container = json!({
        "name": "kite",
        "image": o.image,
        "command": ["kite"],
        "args": server_args(o),
        "env": [
            {"name": "KITE_HOME", "value": HOME},
            {"name": "KITE_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": o.database_url_secret, "key": "url"}}},
            {"name": "KITE_KEK", "valueFrom": {"secretKeyRef": {"name": o.kek_secret, "key": "kek"}}},
        ],
        "ports": [
            {"name": "https", "containerPort": SERVER_PORT, "protocol": "TCP"},
            {"name": "webhooks", "containerPort": WEBHOOK_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": probe("/healthz", json!("https"), "HTTPS", 10),
        "readinessProbe": probe("/readyz", json!("https"), "HTTPS", 5),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "home", "mountPath": DATA},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": true},
            {"name": "webhook-client-ca", "mountPath": WEBHOOK_CA_DIR, "readOnly": true},
        ],
    });
    let spread = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector(SERVER)}}}]}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(SERVER, Some(&o.namespace)),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector(SERVER)},
            "template": {
                "metadata": {"labels": meta(SERVER, None)["labels"]},
                "spec": {
                    "serviceAccountName": SERVER,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "affinity": spread,
                    "containers": [container],
                    "volumes": [
                        {"name": "home", "emptyDir": {}},
                        {"name": "tls", "secret": {"secretName": o.tls_secret}},
                        {"name": "webhook-client-ca", "configMap": {"name": WEBHOOK_CLIENT_CA}},
                    ],
                },
            },
        },
    })
}

pub fn service(o: &Options) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(SERVER, Some(&o.namespace)),
        "spec": {
            "selector": selector(SERVER),
            "ports": [
                {"name": "https", "port": SERVER_PORT, "targetPort": "https", "protocol": "TCP"},
                {"name": "webhooks", "port": WEBHOOK_PORT, "targetPort": "webhooks", "protocol": "TCP"},
            ],
        },
    })
}

/// A drain leaves one replica serving.
pub fn disruption_budget(o: &Options) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(SERVER, Some(&o.namespace)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(SERVER)}},
    })
}

/// The agent on every node, on the host network (it answers pods' IMDS calls there, and its
/// redirect rule needs NET_ADMIN, its only added capability). It proves itself to the server with
/// a projected token for the audience `kite`, and holds no secret of its own.
pub fn daemon_set(o: &Options) -> Value {
    let args: Vec<String> = [
        "agent",
        "--server",
        &o.server_url(),
        "--server-ca",
        &format!("{AGENT_CA_DIR}/{CA_KEY}"),
        "--token-file",
        &format!("{AGENT_TOKEN_DIR}/token"),
        "--node-name",
        "$(NODE_NAME)",
        "--listen",
        &format!("0.0.0.0:{AGENT_PORT}"),
        "--in-cluster",
        "--redirect",
        "--pod-interfaces",
        "veth+,azv+,cali+,eni+",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let container = json!({
        "name": "kite-agent",
        "image": o.image,
        "command": ["kite"],
        "args": args,
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "ports": [{"name": "http", "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "livenessProbe": probe("/healthz", json!(AGENT_PORT), "HTTP", 10),
        "readinessProbe": probe("/readyz", json!(AGENT_PORT), "HTTP", 5),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "volumeMounts": [
            {"name": "kite-token", "mountPath": AGENT_TOKEN_DIR, "readOnly": true},
            {"name": "server-ca", "mountPath": AGENT_CA_DIR, "readOnly": true},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
        ],
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(AGENT, Some(&o.namespace)),
        "spec": {
            "selector": {"matchLabels": selector(AGENT)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": meta(AGENT, None)["labels"]},
                "spec": {
                    "serviceAccountName": AGENT,
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "kite-token", "projected": {"sources": [{"serviceAccountToken": {"audience": AGENT_AUDIENCE, "expirationSeconds": 3600, "path": "token"}}]}},
                        {"name": "server-ca", "configMap": {"name": SERVER_CA}},
                        // Shared with kube-proxy, so their iptables changes never interleave.
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                    ],
                },
            },
        },
    })
}
