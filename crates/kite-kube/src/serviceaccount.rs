//! What `kite k8s serviceaccount create --kubeconfig` writes: the annotated ServiceAccount the
//! workload identity webhook reads. Created; when it exists, kite's labels and annotations are set
//! on it and the rest is kept, in a replace carrying the resourceVersion just read.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::Client;

use crate::{Error, Result};

pub async fn apply(client: &Client, account: &ServiceAccount) -> Result<()> {
    let namespace = account.metadata.namespace.as_deref().unwrap_or("default");
    let name = account.metadata.name.as_deref().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let explain = |verb: &str, e: kube::Error| {
        let why = match &e {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => format!(
                "kite's credentials may not {verb} serviceaccounts in namespace {namespace} ({}); grant get, create and update on serviceaccounts there",
                s.message
            ),
            kube::Error::Api(s) if s.code == 409 => format!("it changed while kite was writing it ({}); run the command again", s.message),
            other => other.to_string(),
        };
        Error::Rejected(format!("cannot {verb} ServiceAccount {namespace}/{name}: {why}"))
    };
    match api.create(&PostParams::default(), account).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(explain("create", e)),
    }
    let mut existing = api.get(name).await.map_err(|e| explain("get", e))?;
    existing.metadata.labels.get_or_insert_default().extend(account.metadata.labels.clone().unwrap_or_default());
    existing.metadata.annotations.get_or_insert_default().extend(account.metadata.annotations.clone().unwrap_or_default());
    api.replace(name, &PostParams::default(), &existing).await.map(drop).map_err(|e| explain("update", e))
}
