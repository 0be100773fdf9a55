//! The controller's writes in a live cluster: `AzureAssignedIdentity` objects created, replaced
//! and deleted through the API server, rendered by the same serde types the directory writer uses.
//! Upstream's CRD has no status subresource, so a status change is a replace of the whole object
//! carrying the resourceVersion just read (custom resources refuse unconditional updates).

use kite_k8s::mic::AzureAssignedIdentity;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::Client;

use crate::live::crd;
use crate::{Error, Result};

const RESOURCE: &str = "azureassignedidentities.aadpodidentity.k8s.io";

fn api(client: &Client, a: &AzureAssignedIdentity) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &a.metadata.namespace, &crd("AzureAssignedIdentity", "azureassignedidentities"))
}

fn render(a: &AzureAssignedIdentity) -> Result<DynamicObject> {
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Rejected(format!("cannot render AzureAssignedIdentity {}/{}: {e}", a.metadata.namespace, a.metadata.name)))
}

/// What an API error means for a write of `a`, in terms of what to do. `verb` is the RBAC verb.
fn explain(verb: &str, a: &AzureAssignedIdentity, e: kube::Error) -> Error {
    let (namespace, name) = (&a.metadata.namespace, &a.metadata.name);
    let why = match &e {
        kube::Error::Api(s) => match s.code {
            401 | 403 => format!(
                "kite's credentials may not {verb} {RESOURCE} in namespace {namespace} ({}); grant get, list, watch, create, update and delete on \
                 azureassignedidentities (apiGroup aadpodidentity.k8s.io) in a ClusterRole bound to kite",
                s.message
            ),
            404 => format!("the API server does not serve {RESOURCE}; install aad-pod-identity's CRDs with: kite k8s crds | kubectl apply -f -"),
            409 => format!("it changed while kite was writing it ({}); kite retries on its next pass", s.message),
            _ => format!("{} ({} {})", s.message, s.code, s.reason),
        },
        other => other.to_string(),
    };
    Error::Rejected(format!("cannot {verb} AzureAssignedIdentity {namespace}/{name}: {why}"))
}

/// Creates `a`; when it exists already (kite's view of the cluster lagged behind), replaces it.
pub async fn create(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    match api(client, a).create(&PostParams::default(), &render(a)?).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => update(client, a).await,
        Err(e) => Err(explain("create", a, e)),
    }
}

/// Replaces the object named like `a` with `a`, keeping the server's metadata (uid, owners,
/// finalizers); labels and annotations are the controller's, as in the directory. An object
/// deleted meanwhile is created again.
pub async fn update(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    let api = api(client, a);
    let desired = render(a)?;
    let Some(mut existing) = api.get_opt(&a.metadata.name).await.map_err(|e| explain("get", a, e))? else {
        return api.create(&PostParams::default(), &desired).await.map(drop).map_err(|e| explain("create", a, e));
    };
    existing.metadata.labels = desired.metadata.labels;
    existing.metadata.annotations = desired.metadata.annotations;
    existing.data = desired.data;
    // existing.metadata.resourceVersion is the one read: a concurrent write makes this a 409.
    api.replace(&a.metadata.name, &PostParams::default(), &existing).await.map(drop).map_err(|e| explain("update", a, e))
}

/// Deletes `a`; one already gone is fine.
pub async fn delete(client: &Client, a: &AzureAssignedIdentity) -> Result<()> {
    match api(client, a).delete(&a.metadata.name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(explain("delete", a, e)),
    }
}
