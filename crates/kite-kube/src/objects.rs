//! Writes of aadpodidentity.k8s.io/v1 objects through the API server, shared by the controller's
//! `AzureAssignedIdentity` objects and the AKS add-on's `AzureIdentity`/`AzureIdentityBinding`.
//! Upstream's CRDs have no status subresource and custom resources refuse unconditional updates,
//! so a change is a replace of the whole object carrying the resourceVersion just read.

use kube::api::{Api, DeleteParams, DynamicObject, PostParams, TypeMeta};
use kube::Client;
use serde::Serialize;

use crate::live::crd;
use crate::{Error, Result};

/// One aadpodidentity.k8s.io kind, and what its writer needs to be told when a write fails.
pub(crate) struct Kind {
    pub kind: &'static str,
    pub plural: &'static str,
    /// The RBAC grant that lets the writer through, as a sentence ending the 403 message.
    pub grant: &'static str,
    /// What happens after a 409 on replace.
    pub on_conflict: &'static str,
}

/// The namespace and name of an object to write.
pub(crate) struct Named<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Kind {
    fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &crd(self.kind, self.plural))
    }

    /// `object` as the API server takes it, apiVersion and kind included.
    pub fn render(&self, at: &Named, object: &impl Serialize) -> Result<DynamicObject> {
        let mut out: DynamicObject = serde_json::to_value(object)
            .and_then(serde_json::from_value)
            .map_err(|e| Error::Rejected(format!("cannot render {} {}/{}: {e}", self.kind, at.namespace, at.name)))?;
        out.types = Some(TypeMeta { api_version: "aadpodidentity.k8s.io/v1".into(), kind: self.kind.into() });
        Ok(out)
    }

    /// What an API error means for a write, in terms of what to do. `verb` is the RBAC verb.
    fn explain(&self, verb: &str, at: &Named, e: kube::Error) -> Error {
        let (plural, namespace) = (self.plural, at.namespace);
        let why = match &e {
            kube::Error::Api(s) => match s.code {
                401 | 403 => {
                    format!("kite's credentials may not {verb} {plural}.aadpodidentity.k8s.io in namespace {namespace} ({}); {}", s.message, self.grant)
                }
                404 => format!(
                    "the API server does not serve {plural}.aadpodidentity.k8s.io; install aad-pod-identity's CRDs with: kite k8s crds | kubectl apply -f -"
                ),
                409 => format!("it changed while kite was writing it ({}); {}", s.message, self.on_conflict),
                _ => format!("{} ({} {})", s.message, s.code, s.reason),
            },
            other => other.to_string(),
        };
        Error::Rejected(format!("cannot {verb} {} {namespace}/{}: {why}", self.kind, at.name))
    }

    /// Creates `desired`; when it exists already, replaces it.
    pub async fn create(&self, client: &Client, at: &Named<'_>, desired: DynamicObject) -> Result<()> {
        match self.api(client, at.namespace).create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => self.replace(client, at, desired).await,
            Err(e) => Err(self.explain("create", at, e)),
        }
    }

    /// Replaces the object with `desired`, keeping the server's metadata (uid, owners,
    /// finalizers); labels and annotations are the writer's. One deleted meanwhile is created again.
    pub async fn replace(&self, client: &Client, at: &Named<'_>, desired: DynamicObject) -> Result<()> {
        let api = self.api(client, at.namespace);
        let Some(mut existing) = api.get_opt(at.name).await.map_err(|e| self.explain("get", at, e))? else {
            return api.create(&PostParams::default(), &desired).await.map(drop).map_err(|e| self.explain("create", at, e));
        };
        existing.metadata.labels = desired.metadata.labels;
        existing.metadata.annotations = desired.metadata.annotations;
        existing.types = desired.types;
        existing.data = desired.data;
        // existing.metadata.resourceVersion is the one read: a concurrent write makes this a 409.
        api.replace(at.name, &PostParams::default(), &existing).await.map(drop).map_err(|e| self.explain("update", at, e))
    }

    /// Deletes the object; one already gone is fine.
    pub async fn delete(&self, client: &Client, at: &Named<'_>) -> Result<()> {
        match self.api(client, at.namespace).delete(at.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.explain("delete", at, e)),
        }
    }
}
