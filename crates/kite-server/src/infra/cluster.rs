//! Where the node agent and the Kubernetes webhooks read the cluster from: the files named by
//! `--pod-identity-dir`, `--k8s-rbac` and `--aws-auth` (re-read as they change, by nmi.rs and
//! k8s.rs), or a live API server (`--kubeconfig`, `--in-cluster`) watched by kite-kube.

use std::sync::Arc;

use kite_k8s::awsauth::AwsAuth;
use kite_k8s::podidentity::ClusterState;
use kite_k8s::{ClusterSource, RbacSnapshot};

use crate::agent::imds::NodeAgent;
use crate::webhooks::k8s::K8sPolicy;

/// The directory source: what the file reloaders last read successfully.
pub struct Directory {
    pub nmi: Arc<NodeAgent>,
    pub k8s: Arc<K8sPolicy>,
}

impl ClusterSource for Directory {
    fn pods(&self) -> Arc<ClusterState> {
        self.nmi.cluster()
    }

    fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.k8s.rbac()
    }

    fn aws_auth(&self) -> AwsAuth {
        self.k8s.aws_auth()
    }
}

/// The source `config` asks for; a live one starts watching at once.
pub async fn source(config: Option<&kite_kube::Target>, nmi: &Arc<NodeAgent>, k8s: &Arc<K8sPolicy>) -> anyhow::Result<Arc<dyn ClusterSource>> {
    Ok(match config {
        Some(target) => {
            tracing::info!(?target, "reading Pods, aad-pod-identity objects, RBAC and aws-auth from the cluster");
            kite_kube::LiveCluster::start(kite_kube::client(target).await?)
        }
        None => Arc::new(Directory { nmi: nmi.clone(), k8s: k8s.clone() }),
    })
}
