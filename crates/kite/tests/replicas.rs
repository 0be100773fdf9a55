//! End to end: `kite serve` replicas on one PostgreSQL database against one (fake) API server run
//! one controller between them, under a `coordination.k8s.io` Lease; when the leader is killed the
//! other takes over, or at once when it is stopped. Of candidates racing for an expired Lease, the
//! API server's resourceVersion check lets exactly one through. Every request the replicas make is
//! one the server's manifests grant. And `/readyz` says when a replica should get no traffic: its
//! store gone, or its cluster not yet listed.
mod fake_kube;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use fake_kube::{FakeKube, LEASES};
use serde_json::{json, Value};
use support::{postgres_base, Schema, Server};

const PODS: &str = "/api/v1/pods";
const ASSIGNED: &str = "/apis/aadpodidentity.k8s.io/v1/azureassignedidentities";
/// Short, so the takeover is quick to see; the default is 15.
const LEASE_SECONDS: u64 = 3;

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo", "labels": {"aadpodidbinding": "app"}},
        "spec": {"nodeName": "aks-nodepool1-0", "containers": [{"name": "web", "image": "web"}]}, "status": {"podIP": "10.244.0.7", "phase": "Running"}})
}

fn cluster() -> FakeKube {
    let node = json!({"metadata": {"name": "aks-nodepool1-0"}, "spec": {"providerID":
        "azure:///subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/MC_rg_prod_japaneast/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0"}});
    let identity = json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": "app-identity", "namespace": "demo"},
        "spec": {"type": 0, "clientID": "5b7d4b8e-2f5c-4a50-9a38-0c5e4c4a0b11",
                 "resourceID": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/apps/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"}});
    let binding = json!({"metadata": {"name": "app-binding", "namespace": "demo"}, "spec": {"azureIdentity": "app-identity", "selector": "app"}});
    FakeKube::start(&[
        (PODS, vec![pod("web")]),
        ("/api/v1/nodes", vec![node]),
        ("/api/v1/secrets", vec![]),
        ("/api/v1/serviceaccounts", vec![]),
        ("/apis/aadpodidentity.k8s.io/v1/azureidentities", vec![identity]),
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

/// `kite_controller_leader` on the replica's /metrics.
fn leading(server: &Server) -> Option<bool> {
    let (code, text) = server.curl(&[], "/metrics");
    assert_eq!(code, 200, "{text}");
    text.lines().find_map(|l| l.strip_prefix("kite_controller_leader ")).map(|v| v.trim() == "1")
}

fn poll<T>(what: &str, within: Duration, logs: &[&Server], mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        let logs: Vec<String> = logs.iter().map(|s| s.log_text()).collect();
        assert!(Instant::now() < deadline, "timed out waiting for {what}; logs:\n{}", logs.join("\n-----\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replica(dir: &std::path::Path, name: &str, url: &str, kubeconfig: &std::path::Path) -> Server {
    replica_for(dir, name, url, kubeconfig, LEASE_SECONDS)
}

/// The key-encryption key every replica on the test database opens the sealed keys with.
fn shared_kek() -> String {
    static KEK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEK.get_or_init(|| kite_store::Kek::generate("test").unwrap().to_base64()).clone()
}

fn replica_for(dir: &std::path::Path, name: &str, url: &str, kubeconfig: &std::path::Path, lease_seconds: u64) -> Server {
    let duration = lease_seconds.to_string();
    Server::start_env(
        &dir.join(name),
        &[
            "--database-url",
            url,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--leader-election-namespace",
            "kite-system",
            "--leader-election-lease-duration",
            &duration,
        ],
        &[("KITE_KEK", &shared_kek())],
    )
}

#[test]
fn two_replicas_run_one_controller_and_the_survivor_takes_over_when_the_leader_is_killed() {
    let (_schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let kube = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let a = replica(dir.path(), "a", &url, &kubeconfig);
    let b = replica(dir.path(), "b", &url, &kubeconfig);

    // One of them takes the lease and reconciles; the other reports it does not lead.
    poll("a leader", Duration::from_secs(30), &[&a, &b], || match (leading(&a), leading(&b)) {
        (Some(x), Some(y)) if x != y => Some(()),
        _ => None,
    });
    let (leader, follower) = if leading(&a) == Some(true) { (a, b) } else { (b, a) };
    poll("the AzureAssignedIdentity", Duration::from_secs(30), &[&leader], || kube.object(ASSIGNED, "web-demo-app-identity"));
    let lease = kube.object(LEASES, "kite-controller").unwrap();
    assert_eq!(lease["metadata"]["namespace"], "kite-system", "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], LEASE_SECONDS, "{lease}");
    let first_holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_string();

    // A second pod: still only the leader writes, and it stays the leader over several renewals.
    kube.apply(PODS, pod("api"));
    poll("the second AzureAssignedIdentity", Duration::from_secs(30), &[&leader], || kube.object(ASSIGNED, "api-demo-app-identity"));
    std::thread::sleep(Duration::from_secs(LEASE_SECONDS * 2));
    assert_eq!((leading(&leader), leading(&follower)), (Some(true), Some(false)));
    let posts = kube.requests().iter().filter(|r| r.starts_with("POST /apis/aadpodidentity.k8s.io/v1/namespaces/demo/azureassignedidentities")).count();
    assert_eq!(posts, 2, "one create per assignment, from one controller: {:#?}", kube.requests());
    assert!(leader.log_text().contains("AzureAssignedIdentity written"));
    assert!(!follower.log_text().contains("AzureAssignedIdentity written"), "{}", follower.log_text());
    assert_eq!(kube.object(LEASES, "kite-controller").unwrap()["spec"]["holderIdentity"], first_holder.as_str(), "renewed, not taken over");

    // kill -9 the leader: it cannot hand the lease over, so the survivor waits out the lease and takes it.
    let mut leader = leader;
    let killed = Instant::now();
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    poll("the survivor to lead", Duration::from_secs(LEASE_SECONDS * 3), &[&follower], || (leading(&follower) == Some(true)).then_some(()));
    let took = killed.elapsed();
    println!("takeover {took:?} after kill -9, lease duration {LEASE_SECONDS}s");
    assert!(took < Duration::from_secs(LEASE_SECONDS * 2), "took {took:?}: the lease should expire within {LEASE_SECONDS}s and be taken at once");
    let lease = kube.object(LEASES, "kite-controller").unwrap();
    assert_ne!(lease["spec"]["holderIdentity"], first_holder.as_str(), "{lease}");
    assert!(lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1, "{lease}");

    // The new leader runs the controller: a pod that goes takes its assignment with it.
    kube.delete(PODS, "web");
    poll("the survivor to delete the assignment", Duration::from_secs(30), &[&follower], || {
        kube.object(ASSIGNED, "web-demo-app-identity").is_none().then_some(())
    });
    assert!(kube.object(ASSIGNED, "api-demo-app-identity").is_some());
    assert!(follower.log_text().contains("AzureAssignedIdentity removed"), "{}", follower.log_text());

    // Every request both replicas made is one `kite k8s manifests server` grants.
    let out = Command::new(support::BIN).args(["k8s", "manifests", "server", "-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let objects: Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests = kube.requests();
    assert!(requests.iter().any(|r| r.starts_with("PUT /apis/coordination.k8s.io/v1/namespaces/kite-system/leases/kite-controller")), "{requests:#?}");
    for request in &requests {
        let (verb, at) = rbac_request(request);
        assert!(granted(&objects["items"], &verb, &at), "{request} ({verb} {at:?}) is not granted by the server's manifests");
    }
}

#[test]
fn a_leader_stopped_by_sigterm_hands_the_lease_over_at_once() {
    const LONG: u64 = 60;
    let (_schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let kube = cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let a = replica_for(dir.path(), "a", &url, &kubeconfig, LONG);
    let b = replica_for(dir.path(), "b", &url, &kubeconfig, LONG);
    poll("a leader", Duration::from_secs(30), &[&a, &b], || match (leading(&a), leading(&b)) {
        (Some(x), Some(y)) if x != y => Some(()),
        _ => None,
    });
    let (leader, follower) = if leading(&a) == Some(true) { (a, b) } else { (b, a) };

    // A rolling update or a drain: SIGTERM. The leader frees the lease on its way out.
    let stopped = Instant::now();
    let term = Command::new("kill").args(["-TERM", &leader.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    poll("the survivor to lead", Duration::from_secs(10), &[&leader, &follower], || (leading(&follower) == Some(true)).then_some(()));
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(LONG / 4), "took {took:?}: a released lease need not be waited out");
    assert!(leader.log_text().contains("released: another replica takes over the controller now"), "{}", leader.log_text());
    let lease = kube.object(LEASES, "kite-controller").unwrap();
    assert_eq!(lease["spec"]["leaseDurationSeconds"], LONG, "the survivor's own claim: {lease}");
    poll("the assignment", Duration::from_secs(30), &[&follower], || kube.object(ASSIGNED, "web-demo-app-identity"));
}

/// What RBAC sees in a request: the verb, and (namespace, group, resource, name).
fn rbac_request(request: &str) -> (String, (Option<String>, String, String, Option<String>)) {
    let (method, uri) = request.split_once(' ').unwrap();
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let query: std::collections::BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts[0] {
        "api" => (String::new(), &parts[2..]),
        _ => (parts[1].to_string(), &parts[3..]),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let resource = rest[0].to_string();
    let named = query.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).map(str::to_string);
    let (verb, name) = match (method, rest.get(1)) {
        ("GET", None) if query.get("watch").is_some_and(|w| w == "true") => ("watch", named),
        ("GET", None) => ("list", named),
        ("GET", Some(n)) => ("get", Some(n.to_string())),
        ("POST", _) => ("create", None),
        ("PUT", Some(n)) => ("update", Some(n.to_string())),
        ("DELETE", Some(n)) => ("delete", Some(n.to_string())),
        other => panic!("unexpected request {other:?}: {request}"),
    };
    (verb.to_string(), (namespace, group, resource, name))
}

/// Whether a ClusterRole, or a Role in the request's namespace, among `objects` lets `verb` through.
fn granted(objects: &Value, verb: &str, (namespace, group, resource, name): &(Option<String>, String, String, Option<String>)) -> bool {
    objects.as_array().unwrap().iter().any(|o| {
        let applies = match o["kind"].as_str() {
            Some("ClusterRole") => true,
            Some("Role") => namespace.as_deref().is_some_and(|ns| o["metadata"]["namespace"] == ns),
            _ => false,
        };
        applies
            && o["rules"].as_array().unwrap().iter().any(|rule| {
                let has = |key: &str, v: &str| rule[key].as_array().unwrap().iter().any(|x| x == v);
                let names_ok = rule.get("resourceNames").is_none_or(|names| name.as_deref().is_some_and(|n| names.as_array().unwrap().iter().any(|x| x == n)));
                has("apiGroups", group) && has("resources", resource) && has("verbs", verb) && names_ok
            })
    })
}

#[test]
fn readyz_fails_while_the_store_is_gone_and_healthz_still_answers() {
    let (schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_env(&dir.path().join("srv"), &["--database-url", &url], &[("KITE_KEK", &shared_kek())]);
    assert_eq!(server.curl(&[], "/healthz"), (200, "ok".to_string()));
    assert_eq!(server.curl(&[], "/readyz"), (200, "ok".to_string()));

    let dropped = Command::new("psql").args([postgres_base().as_str(), "-qc", &format!("DROP SCHEMA {} CASCADE", schema.0)]).output().unwrap();
    assert!(dropped.status.success(), "{}", String::from_utf8_lossy(&dropped.stderr));
    let (code, body) = server.curl(&[], "/readyz");
    assert_eq!((code, body.as_str()), (503, "store not ready"), "a short reason, never the backend's text");
    assert_eq!(server.curl(&[], "/healthz"), (200, "ok".to_string()), "the process is alive: no restart for a database outage");
    assert!(server.log_text().contains("not ready: the store does not answer"), "{}", server.log_text());
}

#[test]
fn readyz_fails_until_the_cluster_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    // An API server that is not there: nothing is ever listed.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"),
    )
    .unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(server.curl(&[], "/readyz"), (503, "cluster not yet listed".to_string()));
    assert_eq!(server.curl(&[], "/healthz"), (200, "ok".to_string()));

    // The same with a cluster that answers: ready once every pod identity kind was listed.
    let kube = cluster();
    let kubeconfig = dir.path().join("kubeconfig-live");
    kube.kubeconfig(&kubeconfig);
    let live = Server::start(&dir.path().join("live"), &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    poll("ready", Duration::from_secs(30), &[&live], || (live.curl(&[], "/readyz") == (200, "ok".to_string())).then_some(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_candidates_racing_for_an_expired_lease_exactly_one_wins_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let kube = cluster();
    // A holder that died long ago; candidates still wait one duration from first seeing it unchanged.
    kube.apply(
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "kite-controller", "namespace": "kite-system"},
               "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 2, "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 4}}),
    );
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let target = kite_kube::Target::Kubeconfig(kubeconfig);
    let start = Instant::now();
    let mut candidates = Vec::new();
    for i in 0..5 {
        let settings = kite_kube::lease::Settings { namespace: "kite-system".into(), identity: format!("candidate-{i}"), duration: Duration::from_secs(2) };
        candidates.push(kite_kube::lease::spawn(kite_kube::client(&target).await.unwrap(), settings));
    }
    let leaders = |c: &[(tokio::sync::watch::Receiver<bool>, kite_kube::lease::Resign)]| c.iter().filter(|(l, _)| *l.borrow()).count();
    // Sampled every 50 ms for 8 s: never two leaders; one from the lease's expiry on.
    let mut first = None;
    while start.elapsed() < Duration::from_secs(8) {
        let n = leaders(&candidates);
        assert!(n <= 1, "{n} leaders at {:?}", start.elapsed());
        if n == 1 && first.is_none() {
            first = Some(start.elapsed());
        }
        if first.is_some() {
            assert_eq!(n, 1, "the leader lost the lease at {:?}", start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = first.expect("nobody took the expired lease");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "taken after {took:?}");
    let lease = kube.object(LEASES, "kite-controller").unwrap();
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_string();
    let leading = candidates.iter().position(|(l, _)| *l.borrow()).unwrap();
    assert_eq!(holder, format!("candidate-{leading}"));
    assert_eq!(lease["spec"]["leaseTransitions"], 5, "one takeover: {lease}");

    // The leader resigns: another candidate takes the lease within a retry period.
    let (_, resign) = candidates.remove(leading);
    let resigned = Instant::now();
    resign.resign().await;
    while leaders(&candidates) == 0 {
        assert!(resigned.elapsed() < Duration::from_secs(2), "nobody took the released lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(leaders(&candidates), 1);
}
