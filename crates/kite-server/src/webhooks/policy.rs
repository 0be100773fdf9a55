//! What the Kubernetes webhooks decide with: RBAC objects, `aws-auth`, access entries and the Entra
//! mapping, each read from its file at start-up (a bad one stops kite) and re-read as it changes;
//! one that stops parsing or validating is refused and the last good one stays in force (a typo
//! must not lock a cluster out, the upstream authenticator's trap). No HTTP here.

use std::path::PathBuf;
use std::sync::Arc;

use kite_k8s::awsauth::{AccessEntry, AuthenticationMode, AwsAuth, AwsAuthStore};
use kite_k8s::entra::EntraMapping;
use kite_k8s::RbacSnapshot;
use parking_lot::RwLock;

use crate::infra::watch::Watched;

/// What the Kubernetes webhooks decide with.
#[derive(Default)]
pub struct K8sPolicy {
    pub rbac_paths: Vec<PathBuf>,
    rbac: RwLock<Option<Arc<RbacSnapshot>>>,
    /// The EKS-shaped cluster name tokens must be signed for (`x-k8s-aws-id`).
    pub cluster_id: Option<String>,
    pub aws_auth_path: Option<PathBuf>,
    aws_auth: RwLock<AwsAuthStore>,
    /// Which mappings identify callers, as EKS's `accessConfig.authenticationMode`.
    pub mode: Option<AuthenticationMode>,
    pub access_entries_path: Option<PathBuf>,
    access_entries: RwLock<Vec<AccessEntry>>,
    watched: [Watched; 3],
    /// Kite-issued access tokens, when `--entra-audience` is set.
    pub entra: Option<EntraReview>,
}

/// Where the webhooks' inputs come from.
pub struct Sources {
    pub rbac: Vec<PathBuf>,
    pub cluster_id: Option<String>,
    pub aws_auth: Option<PathBuf>,
    pub access_entries: Option<PathBuf>,
    pub mode: AuthenticationMode,
    pub entra_audience: Option<String>,
    pub entra_mapping: Option<PathBuf>,
}

fn read_entries(path: &std::path::Path) -> Result<Vec<AccessEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not an access entries file: {e}", path.display()))
}

impl K8sPolicy {
    pub fn new(src: Sources) -> anyhow::Result<K8sPolicy> {
        let policy = K8sPolicy {
            rbac_paths: src.rbac,
            cluster_id: src.cluster_id,
            aws_auth_path: src.aws_auth,
            mode: Some(src.mode),
            access_entries_path: src.access_entries,
            entra: src.entra_audience.map(|aud| EntraReview::new(aud, src.entra_mapping)).transpose()?,
            ..Default::default()
        };
        if let Some(path) = &policy.access_entries_path {
            let entries = read_entries(path).map_err(|e| anyhow::anyhow!("--access-entries {e}"))?;
            *policy.access_entries.write() = entries;
        }
        // Bad files at start-up are configuration errors worth stopping for.
        if !policy.rbac_paths.is_empty() {
            let snap = RbacSnapshot::load(&policy.rbac_paths).map_err(|e| anyhow::anyhow!("--k8s-rbac: {e}"))?;
            policy.set_rbac(snap);
        }
        if let Some(path) = &policy.aws_auth_path {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--aws-auth {}: {e}", path.display()))?;
            policy.aws_auth.write().apply(&text).map_err(|report| anyhow::anyhow!("--aws-auth {} is refused:\n{report}", path.display()))?;
        }
        Ok(policy)
    }

    pub fn aws_auth(&self) -> AwsAuth {
        self.aws_auth.read().current().clone()
    }

    fn reload_aws_auth(&self) {
        let Some(path) = &self.aws_auth_path else {
            return;
        };
        if !self.watched[0].changed(std::slice::from_ref(path)) {
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return tracing::warn!("aws-auth not reloaded from {}: {e}; the last good mapping stays in force", path.display()),
        };
        let mut store = self.aws_auth.write();
        match store.apply(&text) {
            Ok(report) => tracing::info!(
                warnings = report.warnings.len(),
                "aws-auth reloaded from {}{}",
                path.display(),
                if report.warnings.is_empty() { String::new() } else { format!(":\n{report}") }
            ),
            Err(report) => tracing::warn!("aws-auth in {} refused, the last good mapping stays in force:\n{report}", path.display()),
        }
    }

    fn set_rbac(&self, snap: RbacSnapshot) {
        *self.rbac.write() = Some(Arc::new(snap));
    }

    pub fn access_entries(&self) -> Vec<AccessEntry> {
        self.access_entries.read().clone()
    }

    pub fn rbac(&self) -> Option<Arc<RbacSnapshot>> {
        self.rbac.read().clone()
    }

    fn reload_access_entries(&self) {
        let Some(path) = &self.access_entries_path else {
            return;
        };
        if !self.watched[1].changed(std::slice::from_ref(path)) {
            return;
        }
        match read_entries(path) {
            Ok(entries) => {
                *self.access_entries.write() = entries;
            }
            Err(e) => {
                tracing::warn!("access entries not reloaded, the last good ones stay in force: {e}")
            }
        }
    }

    /// Re-reads the files; on error keeps what it had and says why.
    pub fn reload(&self) {
        self.reload_aws_auth();
        self.reload_access_entries();
        if let Some(entra) = &self.entra {
            entra.reload();
        }
        if self.rbac_paths.is_empty() || !self.watched[2].changed(&self.rbac_paths) {
            return;
        }
        match RbacSnapshot::load(&self.rbac_paths) {
            Ok(snap) => self.set_rbac(snap),
            Err(e) => {
                tracing::warn!("RBAC objects not reloaded, the last good ones stay in force: {e}")
            }
        }
    }
}

pub fn spawn_reloader(policy: Arc<K8sPolicy>) {
    let mut paths = policy.rbac_paths.clone();
    paths.extend(policy.aws_auth_path.iter().chain(&policy.access_entries_path).cloned());
    paths.extend(policy.entra.as_ref().and_then(|e| e.mapping_path()).cloned());
    if !paths.is_empty() {
        crate::infra::watch::spawn(paths, move || policy.reload());
    }
}

/// What `/authenticate` needs to accept kite-issued tokens.
pub struct EntraReview {
    /// The `aud` tokens must carry.
    pub audience: String,
    mapping_path: Option<PathBuf>,
    mapping: RwLock<Option<Arc<EntraMapping>>>,
    watched: Watched,
}

fn read_mapping(path: &std::path::Path) -> Result<EntraMapping, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    EntraMapping::parse(&text).map_err(|e| format!("{} is refused:\n{e}", path.display()))
}

impl EntraReview {
    /// A mapping file that cannot be read or validated at start-up is a configuration error.
    pub fn new(audience: String, mapping_path: Option<PathBuf>) -> anyhow::Result<EntraReview> {
        let review = EntraReview { audience, mapping: RwLock::new(None), watched: Watched::default(), mapping_path };
        if let Some(path) = &review.mapping_path {
            let mapping = read_mapping(path).map_err(|e| anyhow::anyhow!("--entra-mapping {e}"))?;
            review.watched.changed(std::slice::from_ref(path));
            review.set(mapping);
        }
        Ok(review)
    }

    fn set(&self, mapping: EntraMapping) {
        *self.mapping.write() = Some(Arc::new(mapping));
    }

    /// The mapping last read successfully; `None` without `--entra-mapping`.
    pub fn mapping(&self) -> Option<Arc<EntraMapping>> {
        self.mapping.read().clone()
    }

    pub fn mapping_path(&self) -> Option<&PathBuf> {
        self.mapping_path.as_ref()
    }

    /// Re-reads the mapping when it changed; a broken one is logged and the last good one stays.
    pub fn reload(&self) {
        let Some(path) = &self.mapping_path else {
            return;
        };
        if !self.watched.changed(std::slice::from_ref(path)) {
            return;
        }
        match read_mapping(path) {
            Ok(mapping) => {
                tracing::info!("Entra mapping reloaded from {}", path.display());
                self.set(mapping);
            }
            Err(e) => {
                tracing::warn!("Entra mapping not reloaded, the last good one stays in force: {e}")
            }
        }
    }
}
