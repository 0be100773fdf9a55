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

mod aggregate;
pub mod authorizer;
pub mod cani;
mod load;
pub mod rules;
mod suggest;

pub use authorizer::{
    evaluate, review, who_can, who_can_attributes, Attributes, BindingKind, BindingRef, Considered, Decision, Grant, RoleName, RuleMiss, Suggestion,
    PRIVILEGED_GROUP,
};
pub use cani::{can_i, parse_target, CanIArgs, Target};
pub use load::{RbacObjects, RbacSnapshot};
pub use rules::Mismatch;
