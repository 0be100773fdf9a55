//! Arguments more than one command takes: a live cluster (also `kite serve`'s), and az's `@file` values.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

/// A live Kubernetes cluster, instead of files.
#[derive(Args)]
#[group(id = "kubernetes", multiple = false)]
pub struct ClusterArgs {
    /// Read (and for `eks iamidentitymapping` and `aks pod-identity`, write) the cluster this kubeconfig's current context names.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Use the pod's service account, when kite runs inside the cluster.
    #[arg(long)]
    in_cluster: bool,
}

impl ClusterArgs {
    pub fn target(&self) -> Option<kite_kube::Target> {
        match (&self.kubeconfig, self.in_cluster) {
            (Some(path), _) => Some(kite_kube::Target::Kubeconfig(path.clone())),
            (None, true) => Some(kite_kube::Target::InCluster),
            (None, false) => None,
        }
    }
}

/// `@file` or a file path or inline text, as az reads such arguments.
pub fn read_arg(raw: &str) -> Result<String> {
    let path = raw.strip_prefix('@').unwrap_or(raw);
    if raw.starts_with('@') || Path::new(path).is_file() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {path}"));
    }
    Ok(raw.to_string())
}
