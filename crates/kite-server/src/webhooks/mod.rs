//! What the Kubernetes API server calls: TokenReview and SubjectAccessReview (`k8s`), with
//! kite-issued access tokens reviewed by `entra_review`, and the workload identity admission
//! webhook (`admission`). Security-sensitive: these answers decide
//! who a cluster's callers are and what they may do.

pub mod admission;
pub mod entra_review;
pub mod k8s;
pub mod policy;
