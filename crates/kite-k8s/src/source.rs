//! Where the node agent and the webhooks read the cluster from. Two sources implement
//! [`ClusterSource`]: a directory of Kubernetes YAML re-read as it changes (kite-server), and a
//! live API server watched through kube-rs (kite-kube). Both keep the last good state when an
//! update is refused, and hand out cheap snapshots so a request never waits on a reload.

use std::sync::Arc;

use crate::awsauth::AwsAuth;
use crate::podidentity::ClusterState;
use crate::RbacSnapshot;

pub trait ClusterSource: Send + Sync {
    /// Pods, Nodes and the aad-pod-identity objects, for the node agent.
    fn pods(&self) -> Arc<ClusterState>;
    /// Roles, ClusterRoles and their bindings, for `POST /authorize`; `None` when the source has
    /// none (no `--k8s-rbac` files).
    fn rbac(&self) -> Option<Arc<RbacSnapshot>>;
    /// The `aws-auth` mapping in force, for `POST /authenticate`.
    fn aws_auth(&self) -> AwsAuth;
    /// Whether the pods and aad-pod-identity objects have been read at least once, so answers
    /// come from the whole cluster rather than an empty start (`/readyz`).
    fn ready(&self) -> bool {
        true
    }
}
