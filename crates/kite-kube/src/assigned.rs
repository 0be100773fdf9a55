//! The controller's writes in a live cluster: `AzureAssignedIdentity` objects created, replaced
//! and deleted through the API server, rendered by the same serde types the directory writer uses.

use kite_k8s::podidentity::mic::AzureAssignedIdentity;
use kube::Client;

use crate::objects::{Kind, Named};
use crate::Result;

const ASSIGNED: Kind = Kind {
    kind: "AzureAssignedIdentity",
    plural: "azureassignedidentities",
    grant: "grant get, list, watch, create, update and delete on azureassignedidentities (apiGroup aadpodidentity.k8s.io) in a ClusterRole bound to kite",
    on_conflict: "kite retries on its next pass",
};

/// What the writes below need: `replace` reads the object first.
pub fn access() -> kite_k8s::install::Access {
    let ar = crate::live::crd(ASSIGNED.kind, ASSIGNED.plural);
    kite_k8s::install::Access::new(kite_k8s::install::Where::Cluster, ar.group, ar.plural, &["get", "create", "update", "delete"])
}

fn named(a: &AzureAssignedIdentity) -> Named<'_> {
    Named { namespace: &a.metadata.namespace, name: &a.metadata.name }
}

/// Creates `a`; when it exists already (kite's view of the cluster lagged behind), replaces it.
pub async fn create(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    ASSIGNED.create(client, &named(a), ASSIGNED.render(&named(a), a)?).await
}

/// Replaces the object named like `a` with `a` (a status change included); an object deleted
/// meanwhile is created again.
pub async fn update(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    ASSIGNED.replace(client, &named(a), ASSIGNED.render(&named(a), a)?).await
}

/// Deletes `a`; one already gone is fine.
pub async fn delete(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    ASSIGNED.delete(client, &named(a)).await
}
