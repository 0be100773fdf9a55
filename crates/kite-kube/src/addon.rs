//! What `kite aks pod-identity add|delete --kubeconfig` writes in a live cluster: the AKS
//! pod-identity add-on's `AzureIdentity` and `AzureIdentityBinding` for one pod identity,
//! created or replaced (with the resourceVersion read), and deleted.

use kite_k8s::podidentity::aksaddon::binding_name;
use kite_k8s::podidentity::{AzureIdentity, AzureIdentityBinding};
use kube::Client;

use crate::objects::{Kind, Named};
use crate::Result;

const GRANT: &str = "grant get, create, update and delete on azureidentities and azureidentitybindings (apiGroup aadpodidentity.k8s.io) \
                     in that namespace to the kubeconfig's user, or use a kubeconfig of a cluster admin";
const CONFLICT: &str = "run the command again";

const IDENTITY: Kind = Kind { kind: "AzureIdentity", plural: "azureidentities", grant: GRANT, on_conflict: CONFLICT };
const BINDING: Kind = Kind { kind: "AzureIdentityBinding", plural: "azureidentitybindings", grant: GRANT, on_conflict: CONFLICT };

/// Creates both objects, or replaces those already there. The identity goes first, so the
/// binding never names an identity the cluster lacks.
pub async fn apply(client: &Client, identity: &AzureIdentity, binding: &AzureIdentityBinding) -> Result<()> {
    let at = Named { namespace: &identity.metadata.namespace, name: &identity.metadata.name };
    IDENTITY.create(client, &at, IDENTITY.render(&at, identity)?).await?;
    let at = Named { namespace: &binding.metadata.namespace, name: &binding.metadata.name };
    BINDING.create(client, &at, BINDING.render(&at, binding)?).await
}

/// Deletes both objects of pod identity `namespace/name` (the binding first, so no pod is left
/// bound to a missing identity); objects already gone are fine.
pub async fn remove(client: &Client, namespace: &str, name: &str) -> Result<()> {
    BINDING.delete(client, &Named { namespace, name: &binding_name(name) }).await?;
    IDENTITY.delete(client, &Named { namespace, name }).await
}
