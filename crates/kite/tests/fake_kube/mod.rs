//! A small fake Kubernetes API server for end-to-end tests: plain HTTP on 127.0.0.1, collections
//! of JSON objects, list (with `fieldSelector=metadata.name=…`), watch (newline-delimited events,
//! streamed as the test or kite changes objects), get, create, replace with resourceVersion checks,
//! and delete; namespaced paths reach cluster-wide collections. Replaces whose resourceVersion is not
//! the stored one, and creates of an existing name, are 409 Conflict, as the API server answers them
//! (what leader election on a Lease relies on).

// Each test binary uses its own part of the fake.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// The Lease collection; namespaced paths (`…/namespaces/NS/leases/NAME`) reach it.
pub const LEASES: &str = "/apis/coordination.k8s.io/v1/leases";

#[derive(Default)]
struct Cluster {
    /// Collection path (`/api/v1/pods`) → objects.
    objects: BTreeMap<String, Vec<Value>>,
    version: u64,
    requests: Vec<String>,
}

pub struct FakeKube {
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    events: broadcast::Sender<(String, Value)>,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

impl FakeKube {
    /// Serves `collections` (path → objects; every kind kite watches must be there, empty or not),
    /// and Leases, where replicas elect the one that runs the controller.
    pub fn start(collections: &[(&str, Vec<Value>)]) -> FakeKube {
        let mut cluster = Cluster { version: 1, ..Default::default() };
        cluster.objects.insert(LEASES.to_string(), Vec::new());
        for (path, items) in collections {
            cluster.objects.insert(path.to_string(), items.clone());
        }
        let cluster = Arc::new(Mutex::new(cluster));
        let (events, _) = broadcast::channel(64);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (c, e) = (cluster.clone(), events.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| handle(c.clone(), e.clone(), method, uri, body));
                axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
            });
        });
        FakeKube { url, cluster, events }
    }

    /// A kubeconfig whose current context is this server.
    pub fn kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\nusers:\n- name: tester\n  user:\n    token: not-checked\n",
            self.url
        );
        std::fs::write(path, text).unwrap();
    }

    /// Adds or replaces (by name) an object, as `kubectl apply` would; watchers see the event.
    pub fn apply(&self, collection: &str, mut object: Value) {
        let mut c = self.cluster.lock().unwrap();
        c.version += 1;
        object["metadata"]["resourceVersion"] = c.version.to_string().into();
        let items = c.objects.get_mut(collection).unwrap();
        let kind = match items.iter_mut().find(|o| name_of(o) == name_of(&object)) {
            Some(existing) => {
                *existing = object.clone();
                "MODIFIED"
            }
            None => {
                items.push(object.clone());
                "ADDED"
            }
        };
        let _ = self.events.send((collection.to_string(), json!({"type": kind, "object": object})));
    }

    /// Every object in `collection`.
    pub fn objects(&self, collection: &str) -> Vec<Value> {
        self.cluster.lock().unwrap().objects.get(collection).cloned().unwrap_or_default()
    }

    /// Removes an object, as `kubectl delete` would; watchers see the event.
    pub fn delete(&self, collection: &str, name: &str) {
        let mut c = self.cluster.lock().unwrap();
        c.version += 1;
        let items = c.objects.get_mut(collection).unwrap();
        let i = items.iter().position(|o| name_of(o) == name).unwrap();
        let object = items.remove(i);
        let _ = self.events.send((collection.to_string(), json!({"type": "DELETED", "object": object})));
    }

    /// Every request so far, as `METHOD URI`.
    pub fn requests(&self) -> Vec<String> {
        self.cluster.lock().unwrap().requests.clone()
    }

    pub fn object(&self, collection: &str, name: &str) -> Option<Value> {
        self.cluster.lock().unwrap().objects.get(collection)?.iter().find(|o| name_of(o) == name).cloned()
    }

    /// Waits until kite watches `collection`, so events sent after this reach it.
    pub fn wait_for_watch(&self, collection: &str) {
        let needle = format!("GET {collection}?");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.cluster.lock().unwrap().requests.iter().any(|r| r.starts_with(&needle) && r.contains("watch=true")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nobody watches {collection}: {:#?}", self.cluster.lock().unwrap().requests);
    }
}

async fn handle(cluster: Arc<Mutex<Cluster>>, events: broadcast::Sender<(String, Value)>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query: BTreeMap<String, String> = url_pairs(uri.query().unwrap_or_default());
    let mut c = cluster.lock().unwrap();
    // Subscribe before recording the request, so a test that saw the request cannot miss an event.
    let watch = (query.get("watch").map(String::as_str) == Some("true")).then(|| events.subscribe());
    c.requests.push(format!("{method} {uri}"));
    if let Some(rx) = watch {
        if !c.objects.contains_key(&path) {
            return status(404, "NotFound", format!("the server could not find the requested resource {path}"));
        }
        let stream = futures::stream::unfold((rx, path), |(mut rx, path)| async move {
            loop {
                match rx.recv().await {
                    Ok((p, event)) if p == path => {
                        let mut line = serde_json::to_vec(&event).unwrap();
                        line.push(b'\n');
                        return Some((Ok::<_, Infallible>(Bytes::from(line)), (rx, path)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        return Response::new(Body::from_stream(stream));
    }
    let version = c.version.to_string();
    if method == Method::GET {
        if let Some(items) = c.objects.get(&path) {
            let wanted = query.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name="));
            let items: Vec<&Value> = items.iter().filter(|o| wanted.is_none_or(|n| name_of(o) == n)).collect();
            return Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items})).into_response();
        }
    }
    let Some((collection, namespace, name)) = locate(&c.objects, &path) else {
        return status(404, "NotFound", format!("the server could not find the requested resource {path}"));
    };
    let items = c.objects.get_mut(&collection).unwrap();
    let position = items.iter().position(|o| name_of(o) == name && namespace.as_deref().is_none_or(|ns| o["metadata"]["namespace"] == ns));
    let event = |kind: &str, object: &Value| {
        let _ = events.send((collection.clone(), json!({"type": kind, "object": object})));
    };
    match (method, position) {
        (Method::GET, Some(i)) => Json(items[i].clone()).into_response(),
        (Method::GET | Method::DELETE, None) => status(404, "NotFound", format!("\"{name}\" not found")),
        (Method::PUT, Some(i)) => {
            let mut object: Value = serde_json::from_slice(&body).unwrap();
            if object["metadata"]["resourceVersion"] != items[i]["metadata"]["resourceVersion"] {
                return status(409, "Conflict", format!("Operation cannot be fulfilled on \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
            }
            c.version += 1;
            object["metadata"]["resourceVersion"] = c.version.to_string().into();
            c.objects.get_mut(&collection).unwrap()[i] = object.clone();
            event("MODIFIED", &object);
            Json(object).into_response()
        }
        (Method::POST, _) if !name.is_empty() => status(405, "MethodNotAllowed", format!("POST goes to a collection, not {path}")),
        (Method::POST, _) => {
            let mut object: Value = serde_json::from_slice(&body).unwrap();
            let ns = namespace.unwrap_or_default();
            if items.iter().any(|o| name_of(o) == name_of(&object) && o["metadata"]["namespace"] == ns.as_str()) {
                return status(409, "AlreadyExists", format!("\"{}\" already exists", name_of(&object)));
            }
            c.version += 1;
            object["metadata"]["resourceVersion"] = c.version.to_string().into();
            object["metadata"]["namespace"] = ns.into();
            c.objects.get_mut(&collection).unwrap().push(object.clone());
            event("ADDED", &object);
            (StatusCode::CREATED, Json(object)).into_response()
        }
        (Method::DELETE, Some(i)) => {
            let object = c.objects.get_mut(&collection).unwrap().remove(i);
            c.version += 1;
            event("DELETED", &object);
            Json(object).into_response()
        }
        (method, _) => status(405, "MethodNotAllowed", format!("{method} {path} is not served by this fake")),
    }
}

/// The collection a request path addresses, the namespace it names (for a namespaced path into a
/// cluster-wide collection: `/apis/G/V/namespaces/NS/PLURAL` is kept in `/apis/G/V/PLURAL`) and the
/// object's name (empty for the collection itself).
fn locate(objects: &BTreeMap<String, Vec<Value>>, path: &str) -> Option<(String, Option<String>, String)> {
    let candidates = [(path, ""), path.rsplit_once('/').unwrap_or_default()];
    for (collection, name) in candidates {
        if objects.contains_key(collection) {
            return Some((collection.to_string(), None, name.to_string()));
        }
        let (prefix, rest) = collection.split_once("/namespaces/")?;
        let (namespace, plural) = rest.split_once('/')?;
        let wide = format!("{prefix}/{plural}");
        if objects.contains_key(&wide) {
            return Some((wide, Some(namespace.to_string()), name.to_string()));
        }
    }
    None
}

fn url_pairs(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}
