//! The controller (MIC) inside `kite serve --pod-identity-dir DIR` or `--kubeconfig`/`--in-cluster`:
//! it reconciles when the cluster state changes and, while some assignment waits for permissions
//! (standard mode; role assignments live in the store, not in the cluster) or a write failed, on
//! every tick. Its output goes to a [`Sink`]: DIR/azureassignedidentities/{name}.yaml, read back by
//! the node agent like any other object, or the API server, read back by watch; and one log line
//! per node whose identities change.
//!
//! With a live cluster, replicas of `kite serve` share it: each campaigns for the
//! `coordination.k8s.io` Lease (kite-kube's `lease`) and only the holder reconciles; the others
//! wait, and take over when the holder stops renewing. `kite_controller_leader` says which.

mod sink;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use anyhow::bail;
use kite_core::rbac::engine::Snapshot;
use kite_k8s::podidentity::mic::{reconcile, ControllerMode, Plan, Standard};
use kite_k8s::podidentity::ClusterState;

use sink::Sink;
pub use sink::OUTPUT_DIR;

use crate::infra::state::AppState;

/// How often the loop looks at the cluster state (as often as the file reloaders re-read it).
const TICK: std::time::Duration = std::time::Duration::from_secs(5);
use crate::Config;

struct Controller {
    sink: Sink,
    /// Whether this replica holds the Lease; `None` with the directory source (one process).
    leader: Option<tokio::sync::watch::Receiver<bool>>,
    mode: ControllerMode,
    /// The kubelet identity's client ID (standard mode).
    cluster_identity: String,
}

/// Starts the controller when `--pod-identity-dir` names a directory or kite reads a live
/// cluster; refuses flag combinations that could not work. With a live cluster, returns how to
/// hand the Lease over on shutdown.
pub async fn spawn(state: &AppState, config: &Config) -> anyhow::Result<Option<kite_kube::lease::Resign>> {
    let mode = config.pod_identity_mode;
    let cluster_identity = match (mode, config.cluster_identity.as_deref()) {
        (ControllerMode::Standard, None) => bail!(
            "--pod-identity-mode standard assigns identities to nodes as the cluster's kubelet identity: give its client ID with --cluster-identity \
             (e.g. kite identity show -g <node resource group> -n <cluster>-agentpool --query clientId -o tsv)"
        ),
        (ControllerMode::Managed, Some(_)) => {
            bail!("--cluster-identity is only used with --pod-identity-mode standard; drop it or add --pod-identity-mode standard")
        }
        (_, id) => id.unwrap_or_default().to_string(),
    };
    let paths = &config.pod_identity;
    let (sink, leader) = match (&config.kubernetes, paths.first().filter(|p| p.is_dir())) {
        (Some(target), _) => {
            let client = kite_kube::client(target).await?;
            let settings = kite_kube::lease::Settings {
                namespace: config.leader_election.namespace.clone(),
                identity: config.leader_election.identity.clone(),
                duration: config.leader_election.lease_duration,
            };
            tracing::info!(lease = %format!("{}/{}", settings.namespace, kite_kube::lease::NAME), identity = %settings.identity, "pod identity controller runs while this replica holds the lease");
            let (leading, resign) = kite_kube::lease::spawn(client.clone(), settings);
            (Sink::Kube(client), Some((leading, resign)))
        }
        (None, Some(dir)) => (Sink::directory(paths, dir), None),
        (None, None) => {
            if mode == ControllerMode::Standard {
                bail!(
                    "--pod-identity-mode standard needs somewhere to keep AzureAssignedIdentities: a live cluster (--kubeconfig PATH or --in-cluster) \
                     or --pod-identity-dir naming a directory (the controller writes DIR/{OUTPUT_DIR})"
                );
            }
            if !paths.is_empty() {
                tracing::info!("pod identity controller not running: --pod-identity-dir names no directory to write AzureAssignedIdentities into");
            }
            return Ok(None);
        }
    };
    state.metrics.controller_leader(leader.is_none());
    let (leader, resign) = leader.unzip();
    let ctl = Controller { sink, leader, mode, cluster_identity };
    let state = state.clone();
    tokio::spawn(async move { ctl.run(state).await });
    Ok(resign)
}

impl Controller {
    async fn run(mut self, state: AppState) {
        let mut tick = tokio::time::interval(TICK);
        let mut cluster: Option<Arc<ClusterState>> = None;
        let mut again = false;
        let mut reported = BTreeSet::new();
        loop {
            if let Some(leader) = &mut self.leader {
                // A new leader starts at once, not on the next tick.
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = leader.changed() => if changed.is_err() { return },
                }
                let leading = *leader.borrow_and_update();
                state.metrics.controller_leader(leading);
                if !leading {
                    // Whoever leads next reconciles everything it sees, from scratch.
                    (cluster, again) = (None, false);
                    reported.clear();
                    continue;
                }
            } else {
                tick.tick().await;
            }
            match self.sink.changed(&state, cluster.as_ref()) {
                Some(Ok(c)) => cluster = Some(c),
                Some(Err(e)) => {
                    // Acting on half the cluster would delete assignments pods still need.
                    tracing::warn!("pod identity controller: cluster state not reloaded, no AzureAssignedIdentity changes until it parses: {e}");
                    continue;
                }
                None if !again => continue,
                None => {}
            }
            let Some(cluster) = &cluster else { continue };
            match self.plan(&state, cluster).await {
                Ok(plan) => {
                    let failed = self.apply(&plan).await;
                    again = !plan.blocked.is_empty() || !failed.is_empty();
                    self.sink.written(&state);
                    // Each reason once, not every 5 seconds while it lasts.
                    let blocked = plan.blocked.iter().map(|b| format!("AzureAssignedIdentity {} stays Created: {}", b.assigned, b.message));
                    let now: BTreeSet<String> = blocked.chain(failed).collect();
                    for line in now.difference(&reported) {
                        tracing::warn!("{line}");
                    }
                    reported = now;
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
        let principal =
            state.store.find_principals(client_id).await?.into_iter().find(|p| p.app_id.to_string().eq_ignore_ascii_case(client_id)).map(|p| p.object_id);
        let assignments = match principal {
            Some(id) => state.store.list_role_assignments(&kite_store::AssignmentFilter { principal_id: Some(id), all: true, ..Default::default() }).await?,
            None => Vec::new(),
        };
        let access = Snapshot::new(state.store.list_role_definitions().await?, assignments);
        Ok(reconcile(cluster, Some(&Standard { cluster_client_id: client_id, cluster_principal: principal, access: &access })))
    }

    /// Carries out `plan`; returns what could not be done, as log lines. A failure never stops
    /// the pass: the rest is still written, and the loop retries on its next tick.
    async fn apply(&self, plan: &Plan) -> Vec<String> {
        let mut failed = Vec::new();
        let updates: HashSet<(&str, &str)> = plan.update.iter().map(|a| (a.metadata.namespace.as_str(), a.metadata.name.as_str())).collect();
        for a in plan.create.iter().chain(&plan.update) {
            match self.sink.put(a, updates.contains(&(a.metadata.namespace.as_str(), a.metadata.name.as_str()))).await {
                Ok(()) => {
                    tracing::info!(name = %a.metadata.name, namespace = %a.metadata.namespace, pod = %a.spec.pod, node = %a.spec.node_name, status = %a.status.status, "AzureAssignedIdentity written")
                }
                Err(e) => failed.push(format!("pod identity controller: {e:#}")),
            }
        }
        for a in &plan.delete {
            match self.sink.delete(a).await {
                Ok(()) => {
                    tracing::info!(name = %a.metadata.name, namespace = %a.metadata.namespace, pod = %a.spec.pod, "AzureAssignedIdentity removed: its pod or binding is gone")
                }
                Err(e) => failed.push(format!("pod identity controller: {e:#}")),
            }
        }
        for n in &plan.nodes {
            tracing::info!(node = %n.node, vm = n.vm.as_deref().unwrap_or("unknown"), added = ?n.added, removed = ?n.removed, identities = ?n.identities, "node identities changed");
        }
        failed
    }
}
