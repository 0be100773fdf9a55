//! What `kite serve` and `kite agent` do in a live cluster, read off the lists their watchers and
//! writers are built from: `kite k8s manifests server|agent` turn it into their ClusterRoles and
//! Roles, so they grant exactly this and nothing more.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kite_k8s::install::{Access, Where};
use kube::api::ApiResource;

use crate::aws_auth::{CONFIGMAP, NAMESPACE};

/// Watchers list and watch; nothing else.
const WATCH: &[&str] = &["list", "watch"];

/// Every access of the server: the pod identity kinds and RBAC kinds it watches cluster-wide,
/// the `aws-auth` ConfigMap it watches by name, the AzureAssignedIdentities the controller writes,
/// and the controller's Lease.
pub fn server() -> Vec<Access> {
    let watched = crate::live::pod_identity_kinds(None).into_iter().map(|(ar, _)| ar);
    let rbac = [
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
    ];
    let mut out: Vec<Access> = watched.chain(rbac).map(|ar| Access::new(Where::Cluster, ar.group, ar.plural, WATCH)).collect();
    let configmaps = ApiResource::erase::<ConfigMap>(&());
    out.push(Access::new(Where::Namespace(NAMESPACE), configmaps.group, configmaps.plural, WATCH).named(CONFIGMAP));
    out.push(crate::assigned::access());
    out.extend(crate::lease::access());
    out
}

/// Every access of `kite agent`: list and watch on what it reads, its node's pods (the field
/// selector narrows the watch, not the grant) and the aad-pod-identity kinds. No Secrets, no writes.
pub fn agent() -> Vec<Access> {
    crate::live::pod_identity_kinds(Some("any")).into_iter().map(|(ar, _)| Access::new(Where::Cluster, ar.group, ar.plural, WATCH)).collect()
}
