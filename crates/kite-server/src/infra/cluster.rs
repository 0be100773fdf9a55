//! Where the node agent, the controller and the Kubernetes webhooks read the cluster from: the
//! files named by `--pod-identity-dir` (read by [`PodFiles`] here), `--k8s-rbac` and `--aws-auth`
//! (by the webhooks' policy), each re-read as it changes; or a live API server (`--kubeconfig`,
//! `--in-cluster`) watched by kite-kube.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use kite_k8s::awsauth::AwsAuth;
use kite_k8s::podidentity::ClusterState;
use kite_k8s::{ClusterSource, RbacSnapshot};

use crate::infra::watch::Watched;
use crate::webhooks::policy::K8sPolicy;

/// The pod identity directory: Pods and aad-pod-identity objects as last read successfully.
#[derive(Default)]
pub struct PodFiles {
    pub paths: Vec<PathBuf>,
    state: RwLock<Arc<ClusterState>>,
    watched: Watched,
}

impl PodFiles {
    /// Reads the files once; a bad one at start-up is a configuration error worth stopping for.
    pub fn load(paths: Vec<PathBuf>) -> anyhow::Result<PodFiles> {
        let files = PodFiles { paths, ..Default::default() };
        if !files.paths.is_empty() {
            let state = ClusterState::load(&files.paths).map_err(|e| anyhow::anyhow!("--pod-identity-dir: {e}"))?;
            *files.state.write() = Arc::new(state);
        }
        Ok(files)
    }

    /// Re-reads the files if they changed; a file that stops parsing leaves the last good state in force.
    pub fn reload(&self) {
        if self.paths.is_empty() || !self.watched.changed(&self.paths) {
            return;
        }
        match ClusterState::load(&self.paths) {
            Ok(state) => *self.state.write() = Arc::new(state),
            Err(e) => tracing::warn!("pod identity state not reloaded, the last good one stays in force: {e}"),
        }
    }

    pub fn current(&self) -> Arc<ClusterState> {
        self.state.read().clone()
    }
}

/// `kite agent`'s directory source: pods and aad-pod-identity objects only.
impl ClusterSource for PodFiles {
    fn pods(&self) -> Arc<ClusterState> {
        self.current()
    }

    fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        None
    }

    fn aws_auth(&self) -> AwsAuth {
        AwsAuth::default()
    }
}

pub fn spawn_reloader(files: Arc<PodFiles>) {
    if !files.paths.is_empty() {
        crate::infra::watch::spawn(files.paths.clone(), move || files.reload());
    }
}

/// The directory source: what the file reloaders last read successfully.
pub struct Directory {
    pub pods: Arc<PodFiles>,
    pub k8s: Arc<K8sPolicy>,
}

impl ClusterSource for Directory {
    fn pods(&self) -> Arc<ClusterState> {
        self.pods.current()
    }

    fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.k8s.rbac()
    }

    fn aws_auth(&self) -> AwsAuth {
        self.k8s.aws_auth()
    }
}

/// The source `config` asks for; a live one starts watching at once.
pub async fn source(config: Option<&kite_kube::Target>, pods: &Arc<PodFiles>, k8s: &Arc<K8sPolicy>) -> anyhow::Result<Arc<dyn ClusterSource>> {
    Ok(match config {
        Some(target) => {
            tracing::info!(?target, "reading Pods, aad-pod-identity objects, RBAC and aws-auth from the cluster");
            kite_kube::LiveCluster::start(kite_kube::client(target).await?)
        }
        None => Arc::new(Directory { pods: pods.clone(), k8s: k8s.clone() }),
    })
}
