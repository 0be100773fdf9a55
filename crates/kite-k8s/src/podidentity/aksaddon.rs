//! What AKS's pod-identity add-on creates in the cluster for an entry of a cluster's
//! `podIdentityProfile` (`az aks pod-identity add`): an `AzureIdentity` of type 0 named after the
//! entry and an `AzureIdentityBinding` `{name}-binding` whose selector is the entry's binding
//! selector, else its name. Rendered as the Kubernetes YAML the node agent reads.

use serde_json::{json, Value};

use crate::podidentity::{AzureIdentity, AzureIdentityBinding, AzureIdentityBindingSpec, AzureIdentitySpec, ObjectMeta};
use crate::{Error, Result};

const API_VERSION: &str = "aadpodidentity.k8s.io/v1";

/// The name of the add-on's AzureIdentityBinding for pod identity `name`.
pub fn binding_name(name: &str) -> String {
    format!("{name}-binding")
}

/// The add-on's two objects for one pod identity.
pub fn pod_identity_objects(namespace: &str, name: &str, resource_id: &str, client_id: &str, selector: &str) -> (AzureIdentity, AzureIdentityBinding) {
    let meta = |n: String| ObjectMeta { name: n, namespace: namespace.to_string() };
    let identity = AzureIdentity {
        metadata: meta(name.to_string()),
        spec: AzureIdentitySpec { kind: 0, resource_id: resource_id.to_string(), client_id: client_id.to_string(), ..Default::default() },
    };
    let binding = AzureIdentityBinding {
        metadata: meta(binding_name(name)),
        spec: AzureIdentityBindingSpec { azure_identity: name.to_string(), selector: selector.to_string(), weight: 0 },
    };
    (identity, binding)
}

fn with_kind(object: Value, kind: &str) -> Value {
    let mut out = json!({"apiVersion": API_VERSION, "kind": kind});
    if let (Value::Object(o), Value::Object(fields)) = (&mut out, object) {
        o.extend(fields);
    }
    out
}

/// Both objects as one two-document YAML file.
pub fn to_yaml(identity: &AzureIdentity, binding: &AzureIdentityBinding) -> Result<String> {
    let render = |v: std::result::Result<Value, serde_json::Error>, kind: &str| -> Result<String> {
        let v = v.map_err(|e| Error::InvalidObject(format!("{kind}: {e}")))?;
        serde_yaml_ng::to_string(&with_kind(v, kind)).map_err(|e| Error::InvalidObject(format!("{kind}: {e}")))
    };
    Ok(format!("{}---\n{}", render(serde_json::to_value(identity), "AzureIdentity")?, render(serde_json::to_value(binding), "AzureIdentityBinding")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podidentity::{decide, ClusterState, PodDecision, Selector};

    #[test]
    fn the_rendered_objects_give_a_labelled_pod_its_identity() {
        let id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azure-vote";
        let (identity, binding) = pod_identity_objects("default", "azure-vote", id, "11111111-1111-1111-1111-111111111111", "vote");
        let yaml = to_yaml(&identity, &binding).unwrap();
        assert!(yaml.contains("kind: AzureIdentityBinding") && yaml.contains("resourceID:") && yaml.contains("name: azure-vote-binding"), "{yaml}");
        let mut state = ClusterState::default();
        state.read_yaml(&yaml, "addon.yaml").unwrap();
        state
            .read_yaml("kind: Pod\nmetadata: {name: web, namespace: default, labels: {aadpodidbinding: vote}}\nstatus: {podIP: 10.0.0.9}\n", "pod.yaml")
            .unwrap();
        match decide(&state, "10.0.0.9", &Selector::default()) {
            PodDecision::Identity { identity: got, .. } => assert_eq!(*got, identity),
            other => panic!("{other:?}"),
        }
    }
}
