//! Pure Kubernetes logic, one folder per concept; the only I/O is reading YAML files the caller names.
//!
//! - [`rbac`]: Kubernetes RBAC as the API server evaluates it (can-i, who-can, the authorizer), every
//!   decision explaining itself.
//! - [`awsauth`]: EKS authentication: the `aws-auth` ConfigMap (parse, validate, map), identity
//!   mappings, access entries and authentication modes.
//! - [`podidentity`]: aad-pod-identity: its objects, the node agent's decision, the MIC reconcile,
//!   the CRDs, service-principal Secrets and the AKS add-on's objects.
//! - [`entra`]: how kite-issued (Entra-shaped) tokens' principals map to Kubernetes users.
//! - [`source`]: the one [`ClusterSource`] trait that files and live clusters implement.
//! - [`manifests`]: the Kubernetes objects that make a cluster call kite; [`install`]: everything
//!   a cluster needs to run kite (RBAC from what each component does, workloads, CRDs).
//! - [`workload_identity`]: what the mutating admission webhook adds to pods (Azure Workload
//!   Identity, IRSA, EKS Pod Identity), as a JSON Patch.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod awsauth;
pub mod entra;
pub mod install;
pub mod manifests;
pub mod podidentity;
pub mod rbac;
pub mod source;
pub mod workload_identity;

pub use k8s_openapi;

pub use rbac::{
    can_i, evaluate, parse_target, review, who_can, who_can_attributes, Attributes, BindingKind, BindingRef, CanIArgs, Considered, Decision, Grant, Mismatch,
    RbacObjects, RbacSnapshot, RoleName, RuleMiss, Suggestion, Target, PRIVILEGED_GROUP,
};
pub use source::ClusterSource;

use std::path::PathBuf;

/// What can go wrong loading RBAC objects or reading a request. Every message names the file and
/// document, or the argument, at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// `document` counts from 1 within `file`.
    #[error("{file}, document {document}: {message}")]
    Document { file: String, document: usize, message: String },
    #[error("ClusterRole {role:?}: aggregationRule: {message}")]
    Aggregation { role: String, message: String },
    #[error("{0}")]
    InvalidObject(String),
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
