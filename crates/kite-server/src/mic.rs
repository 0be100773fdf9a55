//! The controller (MIC) inside `kite serve --pod-identity-dir DIR`: it reconciles when the directory
//! changes and, in standard mode while some assignment waits for permissions, on every tick (role
//! assignments live in the store, not in DIR). Its output is DIR/azureassignedidentities/{name}.yaml,
//! read back by the node agent like any other object, and one log line per node whose identities change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kite_core::rbac::engine::Snapshot;
use kite_k8s::mic::{reconcile, AzureAssignedIdentity, ControllerMode, Plan, Standard};
use kite_k8s::podidentity::ClusterState;

use crate::state::AppState;
use crate::watch::Watched;

/// Where the controller writes, under the pod identity directory.
pub const OUTPUT_DIR: &str = "azureassignedidentities";

struct Controller {
    paths: Vec<PathBuf>,
    output: PathBuf,
    mode: ControllerMode,
    /// The kubelet identity's client ID (standard mode).
    cluster_identity: String,
    watched: Watched,
}

/// Starts the controller when `--pod-identity-dir` names a directory; refuses flag combinations
/// that could not work.
pub fn spawn(state: &AppState, paths: &[PathBuf], mode: ControllerMode, cluster_identity: Option<&str>) -> anyhow::Result<()> {
    let cluster_identity = match (mode, cluster_identity) {
        (ControllerMode::Standard, None) => bail!(
            "--pod-identity-mode standard assigns identities to nodes as the cluster's kubelet identity: give its client ID with --cluster-identity \
             (e.g. kite identity show -g <node resource group> -n <cluster>-agentpool --query clientId -o tsv)"
        ),
        (ControllerMode::Managed, Some(_)) => bail!("--cluster-identity is only used with --pod-identity-mode standard; drop it or add --pod-identity-mode standard"),
        (_, id) => id.unwrap_or_default().to_string(),
    };
    let Some(dir) = paths.first().filter(|p| p.is_dir()) else {
        if mode == ControllerMode::Standard {
            bail!("--pod-identity-mode standard needs --pod-identity-dir to name a directory: the controller writes AzureAssignedIdentities into DIR/{OUTPUT_DIR}");
        }
        if !paths.is_empty() {
            tracing::info!("pod identity controller not running: --pod-identity-dir names no directory to write AzureAssignedIdentities into");
        }
        return Ok(());
    };
    let ctl = Controller { paths: paths.to_vec(), output: dir.join(OUTPUT_DIR), mode, cluster_identity, watched: Watched::default() };
    let state = state.clone();
    tokio::spawn(async move { ctl.run(state).await });
    Ok(())
}

impl Controller {
    async fn run(self, state: AppState) {
        let mut tick = tokio::time::interval(crate::k8s::RELOAD_EVERY);
        let mut cluster: Option<ClusterState> = None;
        let mut waiting = false;
        let mut reported = BTreeSet::new();
        loop {
            tick.tick().await;
            if self.watched.changed(&self.paths) {
                match ClusterState::load(&self.paths) {
                    Ok(c) => cluster = Some(c),
                    Err(e) => {
                        // Acting on half the cluster would delete assignments pods still need.
                        tracing::warn!("pod identity controller: cluster state not reloaded, no AzureAssignedIdentity changes until it parses: {e}");
                        continue;
                    }
                }
            } else if !waiting {
                continue;
            }
            let Some(cluster) = &cluster else { continue };
            match self.plan(&state, cluster).await {
                Ok(plan) => {
                    waiting = !plan.blocked.is_empty();
                    self.apply(&plan, &mut reported);
                    state.nmi.reload();
                }
                Err(e) => tracing::warn!("pod identity controller: cannot read the cluster identity's role assignments: {e:#}"),
            }
        }
    }

    async fn plan(&self, state: &AppState, cluster: &ClusterState) -> anyhow::Result<Plan> {
        if self.mode == ControllerMode::Managed {
            return Ok(reconcile::<Snapshot>(cluster, None));
        }
        let client_id = self.cluster_identity.as_str();
        let principal = state.store.find_principals(client_id).await?.into_iter().find(|p| p.app_id.to_string().eq_ignore_ascii_case(client_id)).map(|p| p.object_id);
        let assignments = match principal {
            Some(id) => state.store.list_role_assignments(&kite_store::AssignmentFilter { principal_id: Some(id), all: true, ..Default::default() }).await?,
            None => Vec::new(),
        };
        let access = Snapshot::new(state.store.list_role_definitions().await?, assignments);
        Ok(reconcile(cluster, Some(&Standard { cluster_client_id: client_id, cluster_principal: principal, access: &access })))
    }

    fn apply(&self, plan: &Plan, reported: &mut BTreeSet<String>) {
        for a in plan.create.iter().chain(&plan.update) {
            match write(&self.output, a) {
                Ok(()) => tracing::info!(name = %a.metadata.name, namespace = %a.metadata.namespace, pod = %a.spec.pod, node = %a.spec.node_name, status = %a.status.status, "AzureAssignedIdentity written"),
                Err(e) => tracing::warn!("pod identity controller: {e:#}"),
            }
        }
        for a in &plan.delete {
            let file = self.output.join(format!("{}.yaml", a.metadata.name));
            match std::fs::remove_file(&file) {
                Ok(()) => tracing::info!(name = %a.metadata.name, namespace = %a.metadata.namespace, pod = %a.spec.pod, "AzureAssignedIdentity removed: its pod or binding is gone"),
                Err(e) => tracing::warn!(
                    "pod identity controller: AzureAssignedIdentity {}/{} matches no pod any more but {} cannot be removed ({e}); delete it where it is defined",
                    a.metadata.namespace,
                    a.metadata.name,
                    file.display()
                ),
            }
        }
        for n in &plan.nodes {
            tracing::info!(node = %n.node, vm = n.vm.as_deref().unwrap_or("unknown"), added = ?n.added, removed = ?n.removed, identities = ?n.identities, "node identities changed");
        }
        // Each reason once, not every 5 seconds while it lasts.
        let now: BTreeSet<String> = plan.blocked.iter().map(|b| format!("AzureAssignedIdentity {} stays Created: {}", b.assigned, b.message)).collect();
        for line in now.difference(reported) {
            tracing::warn!("{line}");
        }
        *reported = now;
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
