//! Service-principal AzureIdentities (`spec.type: 1`): the client secret the node agent presents
//! for them lives in the Kubernetes Secret named by `spec.clientPassword`, under the key
//! aad-pod-identity's documentation gives (`clientSecret`). Security-sensitive: secret values are
//! held only here and never printed ([`SecretData`]'s `Debug` shows keys only).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret as CoreSecret;
use serde_json::Value;

use crate::podidentity::{AzureIdentity, ClusterState, ObjectMeta};

/// The key of the Secret's data that holds the service principal's client secret.
pub const CLIENT_SECRET_KEY: &str = "clientSecret";

/// A core/v1 Secret: `data` decoded from base64, merged with `stringData` (which wins, as the API
/// server merges them on write).
#[derive(Clone, Default, PartialEq)]
pub struct SecretData {
    pub metadata: ObjectMeta,
    data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret").field("metadata", &self.metadata).field("keys", &self.data.keys().collect::<Vec<_>>()).finish()
    }
}

impl SecretData {
    /// Parses a Secret object; base64 that does not decode is an error naming the Secret, never its value.
    pub fn from_value(item: Value) -> Result<SecretData, String> {
        let name = |v: &Value, f: &str| v["metadata"][f].as_str().unwrap_or_default().to_string();
        let (n, ns) = (name(&item, "name"), name(&item, "namespace"));
        // serde_json's message would quote the offending value: replace it.
        let secret: CoreSecret =
            serde_json::from_value(item).map_err(|_| format!("Secret {ns}/{n}: 'data' must map keys to base64 strings and 'stringData' keys to strings"))?;
        let mut data: BTreeMap<String, Vec<u8>> = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        data.extend(secret.string_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
        let metadata = ObjectMeta { name: secret.metadata.name.unwrap_or_default(), namespace: secret.metadata.namespace.unwrap_or_else(|| "default".into()) };
        Ok(SecretData { metadata, data })
    }
}

/// Why a type 1 identity's client secret cannot be read; the message names the AzureIdentity, the
/// secret reference and what is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingSecret(pub String);

/// The client secret of a service-principal AzureIdentity, read from the Secret it names. A
/// reference without a namespace means the identity's own.
pub fn client_secret(state: &ClusterState, identity: &AzureIdentity) -> Result<String, MissingSecret> {
    let who = format!("AzureIdentity {}/{} (type 1, clientID {})", identity.metadata.namespace, identity.metadata.name, identity.spec.client_id);
    let Some(reference) = identity.spec.client_password.as_ref().filter(|r| !r.name.is_empty()) else {
        return Err(MissingSecret(format!("{who} has no spec.clientPassword; set clientPassword: {{name: <Secret>, namespace: <namespace>}} naming a Secret whose '{CLIENT_SECRET_KEY}' key holds the service principal's client secret")));
    };
    let namespace = if reference.namespace.is_empty() { identity.metadata.namespace.as_str() } else { reference.namespace.as_str() };
    let at = format!("Secret {namespace}/{}", reference.name);
    let Some(secret) = state.secrets.iter().find(|s| s.metadata.namespace == namespace && s.metadata.name == reference.name) else {
        return Err(MissingSecret(format!(
            "{who}: its spec.clientPassword names {at}, which does not exist; create it (kubectl create secret generic {} -n {namespace} --from-literal={CLIENT_SECRET_KEY}=<client secret>)",
            reference.name
        )));
    };
    let Some(value) = secret.data.get(CLIENT_SECRET_KEY) else {
        return Err(MissingSecret(format!(
            "{who}: {at} (its spec.clientPassword) has no '{CLIENT_SECRET_KEY}' key (keys there: {:?}); put the client secret under '{CLIENT_SECRET_KEY}'",
            secret.data.keys().collect::<Vec<_>>()
        )));
    };
    // A file read with --from-file usually ends in a newline no client secret has.
    match std::str::from_utf8(value).map(|v| v.trim_end_matches(['\r', '\n'])) {
        Ok(v) if !v.is_empty() => Ok(v.to_string()),
        Ok(_) => Err(MissingSecret(format!("{who}: '{CLIENT_SECRET_KEY}' in {at} is empty; put the client secret there"))),
        Err(_) => Err(MissingSecret(format!(
            "{who}: '{CLIENT_SECRET_KEY}' in {at} is not UTF-8 text; a client secret is text (check that it was base64-encoded once, not twice)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD: &str = r#"
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: sp-identity, namespace: demo}
spec:
  type: 1
  tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
  clientID: 44444444-4444-4444-4444-444444444444
  clientPassword: {name: sp-secret, namespace: demo}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: same-namespace, namespace: demo}
spec: {type: 1, clientID: 55555555-5555-5555-5555-555555555555, clientPassword: {name: plain}}
---
apiVersion: v1
kind: Secret
metadata: {name: sp-secret, namespace: demo}
type: Opaque
data: {clientSecret: czNjcjN0LXZhbHVl}
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: demo}
stringData: {clientSecret: from-string-data}
"#;

    fn world() -> ClusterState {
        let mut s = ClusterState::default();
        s.read_yaml(WORLD, "world.yaml").unwrap();
        s
    }

    fn identity(s: &ClusterState, name: &str) -> AzureIdentity {
        s.identities.iter().find(|i| i.metadata.name == name).unwrap().clone()
    }

    #[test]
    fn the_client_secret_is_read_from_base64_data_or_string_data() {
        let s = world();
        assert_eq!(client_secret(&s, &identity(&s, "sp-identity")).unwrap(), "s3cr3t-value");
        assert_eq!(client_secret(&s, &identity(&s, "same-namespace")).unwrap(), "from-string-data", "no namespace in the reference means the identity's");
    }

    #[test]
    fn a_missing_secret_or_key_is_named_with_the_identity_and_the_reference() {
        let mut s = world();
        let mut moved = identity(&s, "sp-identity");
        moved.spec.client_password.as_mut().unwrap().namespace = "elsewhere".into();
        let MissingSecret(m) = client_secret(&s, &moved).unwrap_err();
        assert!(m.contains("AzureIdentity demo/sp-identity") && m.contains("Secret elsewhere/sp-secret") && m.contains("does not exist"), "{m}");

        s.read_yaml("kind: Secret\napiVersion: v1\nmetadata: {name: wrong-key, namespace: demo}\nstringData: {password: x}\n", "more.yaml").unwrap();
        let mut wrong = identity(&s, "sp-identity");
        wrong.spec.client_password.as_mut().unwrap().name = "wrong-key".into();
        let MissingSecret(m) = client_secret(&s, &wrong).unwrap_err();
        assert!(m.contains("Secret demo/wrong-key") && m.contains("no 'clientSecret' key") && m.contains("\"password\""), "{m}");
        assert!(!m.contains(": x"), "values are never quoted: {m}");

        let mut none = identity(&s, "sp-identity");
        none.spec.client_password = None;
        let MissingSecret(m) = client_secret(&s, &none).unwrap_err();
        assert!(m.contains("no spec.clientPassword"), "{m}");
    }

    #[test]
    fn secret_values_never_reach_debug_output_or_parse_errors() {
        let s = world();
        let printed = format!("{s:?}");
        assert!(printed.contains("sp-secret") && printed.contains("clientSecret"), "{printed}");
        assert!(!printed.contains("s3cr3t") && !printed.contains("czNjcjN0") && !printed.contains("from-string-data"), "{printed}");

        let mut bad = ClusterState::default();
        let err = bad
            .read_yaml("kind: Secret\napiVersion: v1\nmetadata: {name: b, namespace: demo}\ndata: {clientSecret: 'not base64 hunter2!'}\n", "bad.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Secret demo/b") && !err.contains("hunter2"), "{err}");
    }
}
