//! `kube-system/aws-auth` in a live cluster, read and changed as eksctl does — except that kite
//! replaces the ConfigMap with the resourceVersion it read, so a concurrent change is never
//! overwritten, and refuses to write a mapping its own authenticator would refuse.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kite_k8s::awsauth::{validate, AwsAuth};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

use crate::{Error, Result};

pub const NAMESPACE: &str = "kube-system";
pub const CONFIGMAP: &str = "aws-auth";
/// The keys kite owns; any other key in the ConfigMap is kept as it is.
const KEYS: [&str; 3] = ["mapRoles", "mapUsers", "mapAccounts"];
/// Conflicting writes tolerated before giving up.
const ATTEMPTS: usize = 5;

fn parse(cm: &ConfigMap) -> Result<AwsAuth> {
    let yaml = serde_yaml_ng::to_string(cm).map_err(|e| Error::Refused(format!("{NAMESPACE}/{CONFIGMAP}: {e}")))?;
    AwsAuth::from_configmap_yaml(&yaml).map_err(|report| {
        Error::Refused(format!("{NAMESPACE}/{CONFIGMAP} in the cluster is not a valid aws-auth ConfigMap; fix it with 'kubectl edit configmap -n {NAMESPACE} {CONFIGMAP}':\n{report}"))
    })
}

/// The mapping in the cluster; a cluster without the ConfigMap maps nobody.
pub async fn read(client: &Client) -> Result<AwsAuth> {
    match Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE).get_opt(CONFIGMAP).await? {
        Some(cm) => parse(&cm),
        None => Ok(AwsAuth::default()),
    }
}

/// Reads the ConfigMap, applies `change` and writes the result back: a replace carrying the
/// resourceVersion read (or a create when there was none). When someone else wrote in between,
/// the API server answers 409 Conflict and the change is redone on the fresh copy. Nothing is
/// written when `change` fails or the result would not pass validation — unless it has fewer
/// errors than before, so deleting one of several broken entries is still possible.
pub async fn edit<T>(client: &Client, mut change: impl FnMut(&mut AwsAuth) -> Result<T, String>) -> Result<(T, AwsAuth)> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE);
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(CONFIGMAP).await?;
        let before = match &existing {
            Some(cm) => parse(cm)?,
            None => AwsAuth::default(),
        };
        let mut auth = before.clone();
        let out = change(&mut auth).map_err(Error::Refused)?;
        let report = validate(&auth, None);
        if !report.is_ok() && report.errors.len() >= validate(&before, None).errors.len() {
            return Err(Error::Refused(format!("refusing to write {NAMESPACE}/{CONFIGMAP}: kite's authenticator would refuse it as a whole\n{report}")));
        }
        let rendered: ConfigMap = auth
            .to_configmap_yaml()
            .map_err(|e| e.to_string())
            .and_then(|y| serde_yaml_ng::from_str(&y).map_err(|e| e.to_string()))
            .map_err(|e| Error::Refused(format!("cannot render {NAMESPACE}/{CONFIGMAP}: {e}")))?;
        let written = match existing {
            Some(mut cm) => {
                let data = cm.data.get_or_insert_with(BTreeMap::new);
                data.retain(|k, _| !KEYS.contains(&k.as_str()));
                data.extend(rendered.data.unwrap_or_default());
                // cm.metadata.resourceVersion is the one read: the API server refuses the
                // replace if the ConfigMap changed since.
                api.replace(CONFIGMAP, &PostParams::default(), &cm).await
            }
            None => {
                let meta = ObjectMeta { name: Some(CONFIGMAP.into()), namespace: Some(NAMESPACE.into()), ..Default::default() };
                api.create(&PostParams::default(), &ConfigMap { metadata: meta, data: rendered.data, ..Default::default() }).await
            }
        };
        match written {
            Ok(_) => return Ok((out, auth)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!("{NAMESPACE}/{CONFIGMAP} changed while kite was editing it; redoing the change on the new version");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Refused(format!(
        "{NAMESPACE}/{CONFIGMAP} changed under kite {ATTEMPTS} times in a row; nothing was written, try again when other writers are done"
    )))
}
