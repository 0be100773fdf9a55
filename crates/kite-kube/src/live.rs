//! The live-cluster [`ClusterSource`]: one kube-rs watcher per kind, cached by reflectors, and a
//! task per part of the state (pods, RBAC, aws-auth) that rebuilds that part when any of its
//! kinds changes. A part is first published once all its kinds have been listed, so kite never
//! answers from a half-read cluster; a rebuild that fails keeps the last good one in force.

use std::fmt::Debug;
use std::sync::Arc;

use parking_lot::RwLock;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kite_k8s::awsauth::{AwsAuth, AwsAuthStore};
use kite_k8s::podidentity::ClusterState;
use kite_k8s::{ClusterSource, RbacObjects, RbacSnapshot};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use tokio::sync::Notify;

use crate::aws_auth::{CONFIGMAP, NAMESPACE};

/// An aad-pod-identity kind, by the plural the upstream CRDs declare.
pub(crate) fn crd(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("aadpodidentity.k8s.io", "v1", kind), plural)
}

/// What the node agent and the workload identity webhook read, each with how it is watched: Pods,
/// Nodes, every aad-pod-identity kind, Secrets and ServiceAccounts. Secrets are what type 1 AzureIdentities' client secrets live in, and one may
/// name a Secret in any namespace (as NMI reads them), so they are watched cluster-wide, but only
/// `type: Opaque` (aad-pod-identity's documented form): service-account tokens, TLS keys and Helm
/// releases are neither listed nor held. kite needs get, list and watch on secrets for this.
///
/// `kite agent` (`node` given) reads only what its decision needs: its own node's pods (a field
/// selector, as the kubelet watches) and the aad-pod-identity kinds; never Secrets, which stay
/// with the server.
pub fn pod_identity_kinds(node: Option<&str>) -> Vec<(ApiResource, watcher::Config)> {
    let all = watcher::Config::default;
    let crds = [
        crd("AzureIdentity", "azureidentities"),
        crd("AzureIdentityBinding", "azureidentitybindings"),
        crd("AzurePodIdentityException", "azurepodidentityexceptions"),
        crd("AzureAssignedIdentity", "azureassignedidentities"),
    ];
    match node {
        Some(node) => std::iter::once((ApiResource::erase::<Pod>(&()), all().fields(&format!("spec.nodeName={node}"))))
            .chain(crds.into_iter().map(|c| (c, all())))
            .collect(),
        None => [(ApiResource::erase::<Pod>(&()), all()), (ApiResource::erase::<Node>(&()), all())]
            .into_iter()
            .chain(crds.into_iter().map(|c| (c, all())))
            .chain([
                (ApiResource::erase::<Secret>(&()), all().fields("type=Opaque")),
                // The workload identity webhook reads their annotations, per pod, without asking the API server.
                (ApiResource::erase::<ServiceAccount>(&()), all()),
            ])
            .collect(),
    }
}

#[derive(Default)]
pub struct LiveCluster {
    pods: RwLock<Arc<ClusterState>>,
    /// Set once the pod identity kinds have all been listed and published.
    listed: std::sync::atomic::AtomicBool,
    rbac: RwLock<Option<Arc<RbacSnapshot>>>,
    aws_auth: RwLock<AwsAuthStore>,
}

impl ClusterSource for LiveCluster {
    fn pods(&self) -> Arc<ClusterState> {
        self.pods.read().clone()
    }

    fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.rbac.read().clone()
    }

    fn aws_auth(&self) -> AwsAuth {
        self.aws_auth.read().current().clone()
    }

    fn ready(&self) -> bool {
        self.listed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Why a watch keeps failing, in terms of what to do about it.
fn hint(error: &watcher::Error) -> &'static str {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => 0,
    };
    match status {
        404 => " (the API server does not serve this kind: for aadpodidentity.k8s.io kinds, install aad-pod-identity's CRDs)",
        401 | 403 => " (kite's credentials may not list and watch this kind: grant get, list and watch on it in a ClusterRole bound to kite)",
        _ => " (kite retries with backoff)",
    }
}

/// Runs one watcher; every event wakes the task that rebuilds the part it feeds.
fn drive<K: Debug>(what: String, stream: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static, changed: Arc<Notify>) {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!("watching {what}: {e}{}", hint(&e)),
            }
        }
    });
}

/// A reflector over every `K` in the cluster, feeding `changed`.
fn typed<K>(client: &Client, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default())).default_backoff();
    drive(K::plural(&()).into_owned(), stream, changed.clone());
    reader
}

/// Waits until every store has been listed once; false when the watchers are gone.
async fn listed<K: kube::runtime::reflector::Lookup + Clone + 'static>(stores: &[&Store<K>]) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    for s in stores {
        if s.wait_until_ready().await.is_err() {
            return false;
        }
    }
    true
}

fn owned<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> Vec<K> {
    store.state().iter().map(|k| (**k).clone()).collect()
}

/// The node agent's view, built from the reflectors' caches. Objects go in by namespace and name
/// so an answer does not depend on cache order; one that does not parse is skipped and reported
/// (the API server accepted it, so kite must not drop the whole cluster for it).
pub(crate) fn cluster_state(stores: &[(ApiResource, Store<DynamicObject>)]) -> ClusterState {
    let mut state = ClusterState::default();
    for (ar, store) in stores {
        let mut objects = store.state();
        objects.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
        for obj in objects {
            let Ok(mut value) = serde_json::to_value(&*obj) else { continue };
            // List items carry no apiVersion/kind; the watch's ApiResource knows them.
            value["apiVersion"] = ar.api_version.clone().into();
            value["kind"] = ar.kind.clone().into();
            if let Err(e) = state.add(value) {
                tracing::warn!(
                    "{} {}/{} skipped: {e}",
                    ar.kind,
                    obj.metadata.namespace.as_deref().unwrap_or_default(),
                    obj.metadata.name.as_deref().unwrap_or_default()
                );
            }
        }
    }
    state
}

impl LiveCluster {
    /// Starts the watchers on the current tokio runtime and returns at once.
    pub fn start(client: Client) -> Arc<LiveCluster> {
        let live = Arc::new(LiveCluster::default());
        live.watch_pods(&client, None);
        live.watch_rbac(&client);
        live.watch_aws_auth(&client);
        live
    }

    /// `kite agent`'s view: the pods of `node` and the aad-pod-identity objects, nothing else.
    pub fn start_for_node(client: Client, node: &str) -> Arc<LiveCluster> {
        let live = Arc::new(LiveCluster::default());
        live.watch_pods(&client, Some(node));
        live
    }

    fn watch_pods(self: &Arc<Self>, client: &Client, node: Option<&str>) {
        let changed = Arc::new(Notify::new());
        let stores: Vec<(ApiResource, Store<DynamicObject>)> = pod_identity_kinds(node)
            .into_iter()
            .map(|(ar, config)| {
                let writer = Writer::new(ar.clone());
                let reader = writer.as_reader();
                let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
                drive(format!("{}.{}", ar.plural, ar.group), reflector::reflector(writer, watcher(api, config)).default_backoff(), changed.clone());
                (ar, reader)
            })
            .collect();
        let live = self.clone();
        tokio::spawn(async move {
            if !listed(&stores.iter().map(|(_, s)| s).collect::<Vec<_>>()).await {
                return;
            }
            loop {
                let state = Arc::new(cluster_state(&stores));
                tracing::info!(pods = state.pods.len(), bindings = state.bindings.len(), "pod identity state from the cluster");
                *live.pods.write() = state;
                live.listed.store(true, std::sync::atomic::Ordering::Release);
                changed.notified().await;
            }
        });
    }

    fn watch_rbac(self: &Arc<Self>, client: &Client) {
        let changed = Arc::new(Notify::new());
        let roles = typed::<Role>(client, &changed);
        let cluster_roles = typed::<ClusterRole>(client, &changed);
        let role_bindings = typed::<RoleBinding>(client, &changed);
        let cluster_role_bindings = typed::<ClusterRoleBinding>(client, &changed);
        let live = self.clone();
        tokio::spawn(async move {
            if !(listed(&[&roles]).await && listed(&[&cluster_roles]).await && listed(&[&role_bindings]).await && listed(&[&cluster_role_bindings]).await) {
                return;
            }
            loop {
                let objects = RbacObjects {
                    roles: owned(&roles),
                    cluster_roles: owned(&cluster_roles),
                    role_bindings: owned(&role_bindings),
                    cluster_role_bindings: owned(&cluster_role_bindings),
                };
                match RbacSnapshot::new(objects) {
                    Ok(snap) => {
                        *live.rbac.write() = Some(Arc::new(snap));
                    }
                    Err(e) => tracing::warn!("RBAC objects from the cluster not applied, the last good ones stay in force: {e}"),
                }
                changed.notified().await;
            }
        });
    }

    /// Only `kube-system/aws-auth` is watched (a field selector), and no cache is needed: each
    /// event carries the whole ConfigMap.
    fn watch_aws_auth(self: &Arc<Self>, client: &Client) {
        let api = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP}"));
        let live = self.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => live.apply_aws_auth(&cm),
                    Ok(watcher::Event::Delete(_)) => {
                        tracing::warn!("{NAMESPACE}/{CONFIGMAP} was deleted; the last good mapping stays in force until it is recreated")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("watching {NAMESPACE}/{CONFIGMAP}: {e}{}", hint(&e)),
                }
            }
        });
    }

    fn apply_aws_auth(&self, cm: &ConfigMap) {
        let yaml = match serde_yaml_ng::to_string(cm) {
            Ok(y) => y,
            Err(e) => return tracing::warn!("{NAMESPACE}/{CONFIGMAP} not readable, the last good mapping stays in force: {e}"),
        };
        let mut store = self.aws_auth.write();
        let version = cm.metadata.resource_version.as_deref().unwrap_or_default();
        match store.apply(&yaml) {
            Ok(report) if report.warnings.is_empty() => tracing::info!("aws-auth applied from the cluster (resourceVersion {version})"),
            Ok(report) => tracing::info!("aws-auth applied from the cluster (resourceVersion {version}):\n{report}"),
            Err(report) => tracing::warn!("aws-auth from the cluster (resourceVersion {version}) refused, the last good mapping stays in force:\n{report}"),
        }
    }
}
