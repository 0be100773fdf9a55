//! Where the controller reads the cluster and puts its `AzureAssignedIdentity` objects: files in
//! the pod identity directory, or a live API server. Both take the objects as kite-k8s renders
//! them; the reconcile loop in `controller` does not know which it talks to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kite_k8s::podidentity::mic::AzureAssignedIdentity;
use kite_k8s::podidentity::ClusterState;

use crate::infra::state::AppState;
use crate::infra::watch::Watched;

/// Where the controller writes, under the pod identity directory.
pub const OUTPUT_DIR: &str = "azureassignedidentities";

pub enum Sink {
    /// `--pod-identity-dir DIR`: the state is parsed from the files; assignments go to
    /// DIR/azureassignedidentities/{name}.yaml.
    Directory { paths: Vec<PathBuf>, output: PathBuf, watched: Watched },
    /// `--kubeconfig`, `--in-cluster`: the state is what the watchers last built; writes go through
    /// the API server and come back by watch.
    Kube(kite_kube::Client),
}

impl Sink {
    pub fn directory(paths: &[PathBuf], dir: &Path) -> Sink {
        Sink::Directory { paths: paths.to_vec(), output: dir.join(OUTPUT_DIR), watched: Watched::default() }
    }

    /// The cluster state when it differs from `last`; an error when it does not parse.
    pub fn changed(&self, state: &AppState, last: Option<&Arc<ClusterState>>) -> Option<anyhow::Result<Arc<ClusterState>>> {
        match self {
            Sink::Directory { paths, watched, .. } => watched.changed(paths).then(|| Ok(Arc::new(ClusterState::load(paths)?))),
            // The live source publishes a new snapshot on every change it watches.
            Sink::Kube(_) => {
                let now = state.cluster.pods();
                (!last.is_some_and(|l| Arc::ptr_eq(l, &now))).then_some(Ok(now))
            }
        }
    }

    /// Creates or replaces `a`.
    pub async fn put(&self, a: &AzureAssignedIdentity, exists: bool) -> anyhow::Result<()> {
        match self {
            Sink::Directory { output, .. } => write(output, a),
            Sink::Kube(client) if exists => Ok(kite_kube::assigned::update(client, a).await?),
            Sink::Kube(client) => Ok(kite_kube::assigned::create(client, a).await?),
        }
    }

    pub async fn delete(&self, a: &AzureAssignedIdentity) -> anyhow::Result<()> {
        match self {
            Sink::Directory { output, .. } => {
                let file = output.join(format!("{}.yaml", a.metadata.name));
                std::fs::remove_file(&file).with_context(|| {
                    format!(
                        "AzureAssignedIdentity {}/{} matches no pod any more but {} cannot be removed; delete it where it is defined",
                        a.metadata.namespace,
                        a.metadata.name,
                        file.display()
                    )
                })
            }
            Sink::Kube(client) => Ok(kite_kube::assigned::delete(client, a).await?),
        }
    }

    /// After a pass. The node agent re-reads the directory on its own schedule, so it is told to
    /// read the new assignments now; a cluster's watch brings them back by itself.
    pub fn written(&self, state: &AppState) {
        if let Sink::Directory { .. } = self {
            state.pod_files.reload();
        }
    }
}

/// Writes beside the final name first, under a name the loader skips, so a reader never sees half a file.
fn write(dir: &Path, a: &AzureAssignedIdentity) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{}.yaml", a.metadata.name));
    let tmp = dir.join(format!(".{}.yaml.tmp", a.metadata.name));
    std::fs::write(&tmp, serde_yaml_ng::to_string(a)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("replacing {}", file.display()))
}
