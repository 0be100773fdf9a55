//! kite's live-cluster I/O through kube-rs, kept out of kite-k8s so the decision crate stays free
//! of a network stack (its property tests and benchmarks never build hyper or kube).
//!
//! - [`LiveCluster`] is the [`kite_k8s::ClusterSource`] fed by kube-rs watchers and reflectors:
//!   Pods, Nodes and the aad-pod-identity objects for the node agent, RBAC objects for
//!   `POST /authorize`, the `kube-system/aws-auth` ConfigMap for `POST /authenticate`.
//! - [`aws_auth::edit`] changes `aws-auth` in a cluster as eksctl does, with optimistic concurrency.
//! - [`assigned`] writes the controller's `AzureAssignedIdentity` objects; [`addon`] the AKS
//!   pod-identity add-on's `AzureIdentity` and `AzureIdentityBinding`.
//! - [`lease`] elects the one replica that runs the controller, on a `coordination.k8s.io` Lease.
//! - [`access`] lists what the server watches and writes, for its RBAC.
//!
//! Everything here takes a [`kube::Client`], so tests hand it a mocked tower service.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access;
pub mod addon;
pub mod assigned;
pub mod aws_auth;
pub mod lease;
mod live;
mod objects;
pub mod serviceaccount;

use std::path::PathBuf;

pub use kube::Client;
pub use live::LiveCluster;

/// How to reach the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A kubeconfig file, its current context.
    Kubeconfig(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
}

/// What can go wrong talking to a cluster. Messages name the object and the way out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    #[error("in-cluster configuration: {0} (is kite running in a pod with a service account?)")]
    InCluster(String),
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The change was refused before anything was written.
    #[error("{0}")]
    Refused(String),
    /// The API server refused a write; the message says what kite needs to be let through.
    #[error("{0}")]
    Rejected(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client for `target`. Reads the configuration only; the first request connects.
pub async fn client(target: &Target) -> Result<Client> {
    let config = match target {
        Target::Kubeconfig(path) => {
            let bad = |e: &dyn std::fmt::Display| Error::Kubeconfig { path: path.clone(), message: e.to_string() };
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default()).await.map_err(|e| bad(&e))?
        }
        Target::InCluster => kube::Config::incluster().map_err(|e| Error::InCluster(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| match target {
        Target::Kubeconfig(path) => Error::Kubeconfig { path: path.clone(), message: e.to_string() },
        Target::InCluster => Error::InCluster(e.to_string()),
    })
}
