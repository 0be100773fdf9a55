//! Kubernetes RBAC as the API server evaluates it, with every decision explaining itself.
//! Security-sensitive: a decision is a pure function of the request attributes and a snapshot of
//! RBAC objects; the only I/O is [`RbacSnapshot::load`] reading YAML files.
//!
//! - [`RbacSnapshot`] holds Roles, ClusterRoles (aggregation resolved as the controller-manager
//!   does), RoleBindings and ClusterRoleBindings, with bindings indexed by subject.
//! - [`evaluate`] is the RBAC authorizer (`plugin/pkg/auth/authorizer/rbac`) plus the
//!   `system:masters` short-cut the API server takes before it; [`can_i`] adds kubectl's argument
//!   parsing and impersonation, [`review`] answers a `SubjectAccessReview`, [`who_can`] inverts it.
//!
//! The types are k8s-openapi's (`rbac/v1`, `authorization/v1`), re-exported as [`k8s_openapi`].

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod aggregate;
pub mod aksaddon;
pub mod authorizer;
pub mod awsauth;
pub mod cani;
pub mod crds;
pub mod entra;
mod load;
pub mod mic;
pub mod podidentity;
pub mod rules;
pub mod source;
pub mod spsecret;
mod suggest;

pub use k8s_openapi;

pub use authorizer::{
    evaluate, review, who_can, who_can_attributes, Attributes, BindingKind, BindingRef, Considered, Decision, Grant, RoleName, RuleMiss, Suggestion,
    PRIVILEGED_GROUP,
};
pub use cani::{can_i, parse_target, CanIArgs, Target};
pub use load::{RbacObjects, RbacSnapshot};
pub use rules::Mismatch;
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
