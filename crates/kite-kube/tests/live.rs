//! The live source and the aws-auth editor against a mocked API server, as kube-rs tests
//! controllers: `Client::new(tower_test::mock::pair())`, answering each request the watchers make
//! (a paged list, then `watch=true` from the list's resourceVersion) from JSON fixtures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kite_k8s::podidentity::{decide, PodDecision, Selector};
use kite_k8s::{CanIArgs, ClusterSource};
use kite_kube::{Client, LiveCluster};
use kube::client::Body;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Log<T> = Arc<Mutex<Vec<T>>>;

/// A fake API server: lists per collection path, and the events the first watch of a path
/// returns (later watches stay open and silent, as on a quiet cluster); deletes succeed.
#[derive(Default)]
struct FakeApi {
    lists: HashMap<String, Vec<Value>>,
    watch_events: HashMap<String, Vec<Value>>,
    /// GET of one object: path → successive answers (status, body); the last one repeats.
    gets: HashMap<String, Vec<(u16, Value)>>,
    /// PUT/POST answers, in order; the last one repeats.
    writes: Vec<(u16, Value)>,
    seen: Log<String>,
    bodies: Log<(String, Value)>,
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(serde_json::to_vec(body).unwrap()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

fn not_found(path: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")})
}

impl FakeApi {
    fn list(mut self, path: &str, items: Vec<Value>) -> Self {
        self.lists.insert(path.into(), items);
        self
    }

    fn then_watch(mut self, path: &str, events: Vec<Value>) -> Self {
        self.watch_events.insert(path.into(), events);
        self
    }

    fn run(mut self, mut handle: Handle) -> (Log<String>, Log<(String, Value)>) {
        let (seen, bodies) = (self.seen.clone(), self.bodies.clone());
        tokio::spawn(async move {
            // Watches with nothing more to say are parked here, never answered.
            let mut parked = Vec::new();
            let mut watched: HashMap<String, usize> = HashMap::new();
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().clone();
                let path = uri.path().to_string();
                let query = uri.query().unwrap_or_default().to_string();
                let method = request.method().clone();
                self.seen.lock().unwrap().push(format!("{method} {uri}"));
                if method == http::Method::PUT || method == http::Method::POST {
                    let body: Value = serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
                    self.bodies.lock().unwrap().push((format!("{method} {path}"), body));
                    let (status, answer) = if self.writes.len() > 1 { self.writes.remove(0) } else { self.writes[0].clone() };
                    send.send_response(respond(status, &answer));
                } else if method == http::Method::DELETE {
                    send.send_response(respond(200, &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})));
                } else if query.contains("watch=true") {
                    let n = watched.entry(path.clone()).or_default();
                    *n += 1;
                    match self.watch_events.get(&path).filter(|_| *n == 1) {
                        Some(events) => {
                            let lines: Vec<u8> = events.iter().flat_map(|e| [serde_json::to_vec(e).unwrap(), b"\n".to_vec()].concat()).collect();
                            send.send_response(Response::new(Body::from(lines)));
                        }
                        None => parked.push(send),
                    }
                } else if let Some(items) = self.lists.get(&path) {
                    send.send_response(respond(200, &json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})));
                } else if let Some(answers) = self.gets.get_mut(&path) {
                    let (status, answer) = if answers.len() > 1 { answers.remove(0) } else { answers[0].clone() };
                    send.send_response(respond(status, &answer));
                } else {
                    send.send_response(respond(404, &not_found(&path)));
                }
            }
        });
        (seen, bodies)
    }
}

fn client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pod(name: &str, ip: &str, binding: &str, rv: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "demo", "labels": {"aadpodidbinding": binding}, "resourceVersion": rv}, "spec": {"containers": [{"name": "app", "image": "app"}]}, "status": {"podIP": ip, "phase": "Running"}})
}

const CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";

fn aws_auth(rv: &str, map_roles: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system", "resourceVersion": rv}, "data": {"mapRoles": map_roles}})
}

const GOOD_ROLES: &str = "- rolearn: arn:aws:iam::111122223333:role/dev\n  username: dev\n  groups:\n  - developers\n";
/// A role path in rolearn: the upstream authenticator never matches it, kite refuses it.
const BAD_ROLES: &str = "- rolearn: arn:aws:iam::111122223333:role/team/dev\n  username: dev\n  groups:\n  - developers\n";

fn world() -> FakeApi {
    let identity = json!({"metadata": {"name": "app-identity", "namespace": "demo", "resourceVersion": "1"},
        "spec": {"type": 0, "resourceID": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app", "clientID": CLIENT_ID}});
    let binding =
        json!({"metadata": {"name": "app-binding", "namespace": "demo", "resourceVersion": "1"}, "spec": {"azureIdentity": "app-identity", "selector": "app"}});
    let sp_identity = json!({"metadata": {"name": "sp-identity", "namespace": "demo", "resourceVersion": "1"},
        "spec": {"type": 1, "clientID": "44444444-4444-4444-4444-444444444444", "clientPassword": {"name": "sp-secret", "namespace": "demo"}}});
    // base64 of "s3cr3t-value"
    let secret =
        json!({"metadata": {"name": "sp-secret", "namespace": "demo", "resourceVersion": "1"}, "type": "Opaque", "data": {"clientSecret": "czNjcjN0LXZhbHVl"}});
    let role = json!({"metadata": {"name": "pod-reader", "namespace": "demo", "resourceVersion": "1"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    let role_binding = json!({"metadata": {"name": "devs-read-pods", "namespace": "demo", "resourceVersion": "1"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}]});
    let ai = "/apis/aadpodidentity.k8s.io/v1";
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    FakeApi::default()
        .list("/api/v1/pods", vec![pod("web", "10.244.0.5", "app", "1")])
        .then_watch("/api/v1/pods", vec![json!({"type": "ADDED", "object": pod("late", "10.244.0.9", "app", "2")})])
        .list("/api/v1/nodes", vec![json!({"metadata": {"name": "aks-node-0", "resourceVersion": "1"}})])
        .list(&format!("{ai}/azureidentities"), vec![identity, sp_identity])
        .list("/api/v1/secrets", vec![secret])
        .list(
            "/api/v1/serviceaccounts",
            vec![json!({"metadata": {"name": "api", "namespace": "demo", "resourceVersion": "1",
            "annotations": {"azure.workload.identity/client-id": CLIENT_ID}}})],
        )
        .list(&format!("{ai}/azureidentitybindings"), vec![binding])
        .list(&format!("{ai}/azurepodidentityexceptions"), vec![])
        .list(&format!("{ai}/azureassignedidentities"), vec![])
        .list(&format!("{rbac}/roles"), vec![role])
        .list(&format!("{rbac}/clusterroles"), vec![])
        .list(&format!("{rbac}/rolebindings"), vec![role_binding])
        .list(&format!("{rbac}/clusterrolebindings"), vec![])
        .list("/api/v1/namespaces/kube-system/configmaps", vec![aws_auth("5", GOOD_ROLES)])
        .then_watch("/api/v1/namespaces/kube-system/configmaps", vec![json!({"type": "MODIFIED", "object": aws_auth("6", BAD_ROLES)})])
}

#[tokio::test]
async fn the_live_source_lists_then_watches_every_kind_and_answers_from_what_it_saw() {
    let (client, handle) = client();
    let (seen, _) = world().run(handle);
    let live = LiveCluster::start(client);

    // Pods: the listed pod at once, then the one a watch event added.
    let pods = eventually("the pod added by the watch", || Some(live.pods()).filter(|p| p.pods.len() == 2)).await;
    match decide(&pods, "10.244.0.9", &Selector::default()) {
        PodDecision::Identity { pod, identity, .. } => assert_eq!((pod.as_str(), identity.spec.client_id.as_str()), ("late", CLIENT_ID)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(decide(&pods, "10.244.0.5", &Selector::default()), PodDecision::Identity { .. }));
    // A type 1 identity's client secret, from the watched Secret.
    let sp = pods.identities.iter().find(|i| i.metadata.name == "sp-identity").unwrap();
    assert_eq!(kite_k8s::podidentity::spsecret::client_secret(&pods, sp).unwrap(), "s3cr3t-value");
    // A ServiceAccount, for the workload identity webhook.
    let sa = pods.service_account("demo", "api").expect("the watched ServiceAccount");
    assert_eq!(sa.metadata.annotations.as_ref().unwrap()["azure.workload.identity/client-id"], CLIENT_ID);

    // RBAC: a can-i decision through the cluster's RoleBinding.
    let rbac = eventually("RBAC objects", || live.rbac()).await;
    let ask = |verb: &str| CanIArgs {
        verb: verb.into(),
        resource: "pods".into(),
        namespace: Some("demo".into()),
        as_user: Some("dev".into()),
        as_groups: vec!["developers".into()],
        ..Default::default()
    };
    assert!(kite_k8s::can_i(&rbac, &ask("list")).unwrap().allowed);
    assert!(!kite_k8s::can_i(&rbac, &ask("delete")).unwrap().allowed);

    // aws-auth: the good mapping from the list; the watch's update (a role path) is refused and the
    // good one stays. The watcher re-watches only after handing over the update, so a second watch
    // request on the ConfigMap means the update has been judged.
    let cm_watch = "GET /api/v1/namespaces/kube-system/configmaps?&watch=true";
    eventually("the ConfigMap watched again", || (seen.lock().unwrap().iter().filter(|u| u.contains(cm_watch)).count() >= 2).then_some(())).await;
    let mapping = live.aws_auth();
    assert_eq!(mapping.map_roles.len(), 1);
    assert_eq!(mapping.map_roles[0].rolearn, "arn:aws:iam::111122223333:role/dev");

    // The requests are the ones a kube-rs watcher makes: a paged list, then a watch from the
    // list's resourceVersion, then from the last event's.
    let seen = seen.lock().unwrap().clone();
    for expected in [
        "GET /api/v1/pods?&limit=500",
        "GET /api/v1/pods?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1",
        "GET /api/v1/pods?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=2",
        "GET /api/v1/nodes?&limit=500",
        "GET /apis/aadpodidentity.k8s.io/v1/azureassignedidentities?&limit=500",
        // Only Opaque Secrets: service-account tokens, TLS keys and Helm releases are not read.
        "GET /api/v1/secrets?&fieldSelector=type%3DOpaque&limit=500",
        "GET /api/v1/serviceaccounts?&limit=500",
        "GET /apis/rbac.authorization.k8s.io/v1/clusterrolebindings?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1",
        "GET /api/v1/namespaces/kube-system/configmaps?&fieldSelector=metadata.name%3Daws-auth&limit=500",
        "GET /api/v1/namespaces/kube-system/configmaps?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3Daws-auth&allowWatchBookmarks=true&resourceVersion=6",
    ] {
        assert!(seen.iter().any(|u| u == expected), "no request {expected} in {seen:#?}");
    }
}

const CM_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/aws-auth";
const OPS_ROLES: &str = "- rolearn: arn:aws:iam::111122223333:role/ops\n  username: ops\n  groups:\n  - ops\n";

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
           "message": "Operation cannot be fulfilled on configmaps \"aws-auth\": the object has been modified; please apply your changes to the latest version and try again"})
}

#[tokio::test]
async fn iamidentitymapping_create_replaces_aws_auth_with_the_version_it_read_and_redoes_the_change_after_a_conflict() {
    let (client, handle) = client();
    let mut api = FakeApi::default();
    // Someone adds "ops" between kite's read and its write: the first replace is refused with 409.
    api.gets.insert(CM_PATH.into(), vec![(200, aws_auth("7", GOOD_ROLES)), (200, aws_auth("8", &format!("{GOOD_ROLES}{OPS_ROLES}")))]);
    api.writes = vec![(409, conflict()), (200, aws_auth("9", GOOD_ROLES))];
    let (seen, bodies) = api.run(handle);

    let arn = "arn:aws:iam::111122223333:user/6248";
    let (_, written) =
        kite_kube::aws_auth::edit(&client, |auth| kite_k8s::awsauth::create_mapping(auth, arn, "user-6248", &["developers".into()]).map_err(|e| e.to_string()))
            .await
            .unwrap();

    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{:#?}", seen.lock().unwrap());
    let (first, second) = (&bodies[0], &bodies[1]);
    assert_eq!(first.0, format!("PUT {CM_PATH}"));
    assert_eq!(first.1["metadata"]["resourceVersion"], "7");
    assert_eq!(second.1["metadata"]["resourceVersion"], "8");
    let roles = second.1["data"]["mapRoles"].as_str().unwrap();
    assert!(roles.contains("role/dev") && roles.contains("role/ops"), "the other writer's entry was lost: {roles}");
    assert!(second.1["data"]["mapUsers"].as_str().unwrap().contains(arn));
    assert_eq!(written.map_users.len(), 1);
    assert_eq!(written.map_roles.len(), 2);
}

#[tokio::test]
async fn a_change_that_would_fail_validation_is_refused_before_anything_is_written() {
    let (client, handle) = client();
    let mut api = FakeApi::default();
    api.gets.insert(CM_PATH.into(), vec![(200, aws_auth("7", GOOD_ROLES))]);
    api.writes = vec![(200, aws_auth("8", GOOD_ROLES))];
    let (_, bodies) = api.run(handle);

    let err = kite_kube::aws_auth::edit(&client, |auth| {
        auth.map_roles.push(kite_k8s::awsauth::RoleMapping {
            rolearn: "arn:aws:iam::111122223333:role/team/dev".into(),
            username: "dev2".into(),
            groups: vec![],
        });
        Ok(())
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("refusing to write kube-system/aws-auth") && err.contains("role path"), "{err}");
    assert!(bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cluster_without_aws_auth_gets_one_created() {
    let (client, handle) = client();
    let mut api = FakeApi::default();
    api.gets.insert(CM_PATH.into(), vec![(404, not_found(CM_PATH))]);
    api.writes = vec![(201, aws_auth("1", GOOD_ROLES))];
    let (_, bodies) = api.run(handle);

    kite_kube::aws_auth::edit(&client, |auth| {
        kite_k8s::awsauth::create_mapping(auth, "arn:aws:iam::111122223333:role/dev", "dev", &["developers".into()]).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies[0].0, "POST /api/v1/namespaces/kube-system/configmaps");
    assert_eq!(bodies[0].1["metadata"]["name"], "aws-auth");
    assert!(bodies[0].1["data"]["mapRoles"].as_str().unwrap().contains("role/dev"));
}

const ASSIGNED: &str = "/apis/aadpodidentity.k8s.io/v1/namespaces/demo/azureassignedidentities";

/// `world()`, with every pod scheduled on aks-node-0, no watch events, and `assigned` as the
/// cluster's AzureAssignedIdentities.
fn scheduled_world(pods: Vec<Value>, assigned: Vec<Value>) -> FakeApi {
    let mut api = world().list("/api/v1/pods", pods).list("/apis/aadpodidentity.k8s.io/v1/azureassignedidentities", assigned);
    api.watch_events.clear();
    api
}

fn scheduled_pod() -> Value {
    let mut p = pod("web", "10.244.0.5", "app", "1");
    p["spec"]["nodeName"] = "aks-node-0".into();
    p
}

/// The controller's view once every pod-identity kind is listed.
async fn listed_state(live: &LiveCluster, pods: usize, assigned: usize) -> std::sync::Arc<kite_k8s::podidentity::ClusterState> {
    eventually("the cluster state", || Some(live.pods()).filter(|s| s.pods.len() == pods && s.assigned.len() == assigned && !s.bindings.is_empty())).await
}

fn managed_plan(state: &kite_k8s::podidentity::ClusterState) -> kite_k8s::podidentity::mic::Plan {
    kite_k8s::podidentity::mic::reconcile::<kite_core::rbac::engine::Snapshot>(state, None)
}

#[tokio::test]
async fn a_new_pods_assignment_is_posted_with_upstreams_fields_and_deleted_when_the_pod_goes() {
    let expected = json!({
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureAssignedIdentity",
        "metadata": {"name": "web-demo-app-identity", "namespace": "demo", "labels": {"nodename": "aks-node-0", "podname": "web", "podnamespace": "demo"}},
        "spec": {
            "azureIdentityRef": {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": "app-identity", "namespace": "demo"},
                "spec": {"type": 0, "resourceID": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app", "clientID": CLIENT_ID}},
            "azureBindingRef": {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding", "metadata": {"name": "app-binding", "namespace": "demo"},
                "spec": {"azureIdentity": "app-identity", "selector": "app", "weight": 0}},
            "pod": "web",
            "podNamespace": "demo",
            "nodename": "aks-node-0"
        },
        "status": {"status": "Assigned", "availableReplicas": 1}
    });

    // A scheduled pod whose label selects the binding, and no assignment yet: one POST.
    let (kube, handle) = client();
    let mut api = scheduled_world(vec![scheduled_pod()], vec![]);
    api.writes = vec![(201, expected.clone())];
    let (_, bodies) = api.run(handle);
    let live = LiveCluster::start(kube.clone());
    let plan = managed_plan(&*listed_state(&live, 1, 0).await);
    assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (1, 0, 0), "{plan:#?}");
    kite_kube::assigned::create(&kube, &plan.create[0]).await.unwrap();
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies, vec![(format!("POST {ASSIGNED}"), expected.clone())]);

    // The pod is gone and the cluster holds the assignment (as the API server stored it): one DELETE.
    let (kube, handle) = client();
    let mut stored = expected.clone();
    stored["metadata"]["resourceVersion"] = "3".into();
    stored["metadata"]["uid"] = "0c7d3c86-8a9e-4a4e-9d5c-5f7a1e2b3c4d".into();
    let (seen, bodies) = scheduled_world(vec![], vec![stored]).run(handle);
    let live = LiveCluster::start(kube.clone());
    let plan = managed_plan(&*listed_state(&live, 0, 1).await);
    assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 0, 1), "{plan:#?}");
    kite_kube::assigned::delete(&kube, &plan.delete[0]).await.unwrap();
    let deletes: Vec<String> = seen.lock().unwrap().iter().filter(|r| r.starts_with("DELETE")).cloned().collect();
    assert_eq!(deletes, vec![format!("DELETE {ASSIGNED}/web-demo-app-identity?")]);
    assert!(bodies.lock().unwrap().is_empty());
}

fn refusal(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message})
}

/// An assignment as reconcile makes it, from the scheduled pod.
async fn desired(status: &str) -> kite_k8s::podidentity::mic::AzureAssignedIdentity {
    let (kube, handle) = client();
    scheduled_world(vec![scheduled_pod()], vec![]).run(handle);
    let live = LiveCluster::start(kube);
    let mut a = managed_plan(&*listed_state(&live, 1, 0).await).create.remove(0);
    a.status.status = status.into();
    a
}

#[tokio::test]
async fn a_status_change_replaces_the_object_with_the_version_read_keeping_the_servers_metadata() {
    let assigned = desired("Assigned").await;
    let mut stored = serde_json::to_value(&assigned).unwrap();
    stored["status"]["status"] = "Created".into();
    stored["metadata"]["annotations"] = json!({"kite.aadpodidentity.k8s.io/not-assigned-because": "the cluster identity lacks a role"});
    stored["metadata"]["resourceVersion"] = "7".into();
    stored["metadata"]["uid"] = "0c7d3c86-8a9e-4a4e-9d5c-5f7a1e2b3c4d".into();
    let (kube, handle) = client();
    let mut api = FakeApi::default();
    api.gets.insert(format!("{ASSIGNED}/web-demo-app-identity"), vec![(200, stored)]);
    api.writes = vec![(200, json!({}))];
    let (_, bodies) = api.run(handle);

    kite_kube::assigned::update(&kube, &assigned).await.unwrap();
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let (request, body) = &bodies[0];
    assert_eq!(request, &format!("PUT {ASSIGNED}/web-demo-app-identity"));
    assert_eq!(body["status"], json!({"status": "Assigned", "availableReplicas": 1}));
    assert_eq!(body["metadata"]["resourceVersion"], "7", "custom resources refuse a replace without the version read");
    assert_eq!(body["metadata"]["uid"], "0c7d3c86-8a9e-4a4e-9d5c-5f7a1e2b3c4d");
    assert!(body["metadata"].get("annotations").is_none(), "the reason goes once assigned: {body}");
    assert_eq!(body["spec"], serde_json::to_value(&assigned).unwrap()["spec"]);
}

#[tokio::test]
async fn refused_writes_say_which_permission_crd_or_version_is_missing() {
    let assigned = desired("Assigned").await;
    let forbidden = "azureassignedidentities.aadpodidentity.k8s.io is forbidden: User \"kite\" cannot create resource \"azureassignedidentities\"";
    let cases = [
        (
            403,
            "Forbidden",
            forbidden,
            vec![
                "cannot create AzureAssignedIdentity demo/web-demo-app-identity",
                "grant get, list, watch, create, update and delete on azureassignedidentities",
                forbidden,
            ],
        ),
        (
            404,
            "NotFound",
            "the server could not find the requested resource",
            vec!["does not serve azureassignedidentities.aadpodidentity.k8s.io", "kite k8s crds | kubectl apply -f -"],
        ),
    ];
    for (code, reason, message, expected) in cases {
        let (kube, handle) = client();
        FakeApi { writes: vec![(code, refusal(code, reason, message))], ..Default::default() }.run(handle);
        let err = kite_kube::assigned::create(&kube, &assigned).await.unwrap_err().to_string();
        for part in expected {
            assert!(err.contains(part), "{code}: no '{part}' in: {err}");
        }
    }

    // Someone changed the object between kite's read and its replace.
    let (kube, handle) = client();
    let mut api = FakeApi::default();
    let mut stored = serde_json::to_value(&assigned).unwrap();
    stored["metadata"]["resourceVersion"] = "7".into();
    api.gets.insert(format!("{ASSIGNED}/web-demo-app-identity"), vec![(200, stored)]);
    api.writes = vec![(409, refusal(409, "Conflict", "the object has been modified"))];
    api.run(handle);
    let err = kite_kube::assigned::update(&kube, &assigned).await.unwrap_err().to_string();
    assert!(err.contains("cannot update AzureAssignedIdentity demo/web-demo-app-identity") && err.contains("retries on its next pass"), "{err}");
}

const ADDON: &str = "/apis/aadpodidentity.k8s.io/v1/namespaces/default";

/// What `az aks pod-identity add --namespace default --name azure-vote --binding-selector vote` makes.
fn addon_objects() -> (kite_k8s::podidentity::AzureIdentity, kite_k8s::podidentity::AzureIdentityBinding) {
    let id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azure-vote";
    kite_k8s::podidentity::aksaddon::pod_identity_objects("default", "azure-vote", id, CLIENT_ID, "vote")
}

#[tokio::test]
async fn the_addon_objects_are_posted_and_an_existing_binding_is_replaced_with_the_version_read() {
    let (kube, handle) = client();
    let mut api = FakeApi::default();
    // The identity is new; a binding of that name exists already (an earlier add), with a label of its own.
    let stored = json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",
        "metadata": {"name": "azure-vote-binding", "namespace": "default", "resourceVersion": "4", "uid": "u-1", "labels": {"team": "vote"}},
        "spec": {"azureIdentity": "azure-vote", "selector": "old", "weight": 0}});
    api.gets.insert(format!("{ADDON}/azureidentitybindings/azure-vote-binding"), vec![(200, stored)]);
    api.writes = vec![(201, json!({})), (409, refusal(409, "AlreadyExists", "azureidentitybindings \"azure-vote-binding\" already exists")), (200, json!({}))];
    let (seen, bodies) = api.run(handle);

    let (identity, binding) = addon_objects();
    kite_kube::addon::apply(&kube, &identity, &binding).await.unwrap();
    let bodies = bodies.lock().unwrap().clone();
    let requests: Vec<&str> = bodies.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        requests,
        [
            format!("POST {ADDON}/azureidentities"),
            format!("POST {ADDON}/azureidentitybindings"),
            format!("PUT {ADDON}/azureidentitybindings/azure-vote-binding")
        ]
    );
    assert_eq!(
        bodies[0].1,
        json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": "azure-vote", "namespace": "default"},
               "spec": serde_json::to_value(&identity.spec).unwrap()})
    );
    assert_eq!(bodies[0].1["spec"]["type"], 0);
    assert_eq!(bodies[0].1["spec"]["clientID"], CLIENT_ID);
    let replaced = &bodies[2].1;
    assert_eq!(replaced["kind"], "AzureIdentityBinding");
    assert_eq!(replaced["metadata"]["resourceVersion"], "4", "custom resources refuse a replace without the version read");
    assert_eq!(replaced["metadata"]["uid"], "u-1");
    assert_eq!(replaced["spec"], json!({"azureIdentity": "azure-vote", "selector": "vote", "weight": 0}));

    // Delete: the binding, then the identity.
    kite_kube::addon::remove(&kube, "default", "azure-vote").await.unwrap();
    let deletes: Vec<String> = seen.lock().unwrap().iter().filter(|r| r.starts_with("DELETE")).cloned().collect();
    assert_eq!(deletes, [format!("DELETE {ADDON}/azureidentitybindings/azure-vote-binding?"), format!("DELETE {ADDON}/azureidentities/azure-vote?")]);
}

#[tokio::test]
async fn refused_addon_writes_name_the_verbs_and_resources_to_grant_or_the_crds_to_install() {
    let (identity, binding) = addon_objects();
    let forbidden = "azureidentities.aadpodidentity.k8s.io is forbidden: User \"dev\" cannot create resource \"azureidentities\" in the namespace \"default\"";
    let cases = [
        (
            403,
            "Forbidden",
            forbidden,
            vec![
                "cannot create AzureIdentity default/azure-vote",
                "grant get, create, update and delete on azureidentities and azureidentitybindings",
                forbidden,
            ],
        ),
        (
            404,
            "NotFound",
            "the server could not find the requested resource",
            vec!["does not serve azureidentities.aadpodidentity.k8s.io", "kite k8s crds | kubectl apply -f -"],
        ),
    ];
    for (code, reason, message, expected) in cases {
        let (kube, handle) = client();
        let (_, bodies) = FakeApi { writes: vec![(code, refusal(code, reason, message))], ..Default::default() }.run(handle);
        let err = kite_kube::addon::apply(&kube, &identity, &binding).await.unwrap_err().to_string();
        for part in expected {
            assert!(err.contains(part), "{code}: no '{part}' in: {err}");
        }
        assert_eq!(bodies.lock().unwrap().len(), 1, "{code}: the binding is not written once the identity was refused");
    }
}

/// `kite agent`'s view: its own node's pods (a field selector, as the kubelet watches) and the
/// aad-pod-identity kinds, and nothing else: no Secrets, Nodes, ServiceAccounts, RBAC or aws-auth.
/// Not ready until all of them have been listed.
#[tokio::test]
async fn a_node_agents_live_source_watches_only_its_nodes_pods_and_the_pod_identity_kinds() {
    let (client, handle) = client();
    let (seen, _) = world().run(handle);
    let live = LiveCluster::start_for_node(client, "aks-node-0");
    let pods = eventually("the node's pods", || live.ready().then(|| live.pods())).await;
    assert!(matches!(decide(&pods, "10.244.0.5", &Selector::default()), PodDecision::Identity { .. }));
    assert!(live.rbac().is_none(), "the agent reads no RBAC");

    let seen = seen.lock().unwrap().clone();
    for expected in [
        "GET /api/v1/pods?&fieldSelector=spec.nodeName%3Daks-node-0&limit=500",
        "GET /apis/aadpodidentity.k8s.io/v1/azureidentities?&limit=500",
        "GET /apis/aadpodidentity.k8s.io/v1/azureidentitybindings?&limit=500",
        "GET /apis/aadpodidentity.k8s.io/v1/azurepodidentityexceptions?&limit=500",
        "GET /apis/aadpodidentity.k8s.io/v1/azureassignedidentities?&limit=500",
    ] {
        assert!(seen.iter().any(|u| u == expected), "no request {expected} in {seen:#?}");
    }
    for never in ["/api/v1/secrets", "/api/v1/nodes", "/api/v1/serviceaccounts", "/apis/rbac.authorization.k8s.io", "/configmaps"] {
        assert!(!seen.iter().any(|u| u.contains(never)), "the agent asked for {never}: {seen:#?}");
    }
    assert!(seen.iter().filter(|u| u.starts_with("GET /api/v1/pods")).all(|u| u.contains("fieldSelector=spec.nodeName%3Daks-node-0")), "{seen:#?}");
}
