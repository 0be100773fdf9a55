//! Installable `apiextensions.k8s.io/v1` CustomResourceDefinitions for aad-pod-identity's kinds,
//! generated from one table; names and schema fields as upstream's chart (`charts/aad-pod-identity/crds`),
//! so the YAML users already have validates unchanged. Upstream defines no short names.

use serde_json::{json, Value};

use crate::podidentity::mic::API_VERSION;

pub const GROUP: &str = "aadpodidentity.k8s.io";

/// One kind: its names, what it is, its spec's schema and kubectl's extra columns.
struct Kind {
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    description: &'static str,
    spec: fn() -> Value,
    status: fn() -> Value,
    columns: &'static [(&'static str, &'static str)],
}

const KINDS: [Kind; 4] = [
    Kind {
        kind: "AzureIdentity",
        plural: "azureidentities",
        singular: "azureidentity",
        short_names: &[],
        description: "AzureIdentity is the specification of the identity data structure.",
        spec: identity_spec,
        status: replicas_status,
        columns: &[("Type", ".spec.type"), ("ClientID", ".spec.clientID")],
    },
    Kind {
        kind: "AzureIdentityBinding",
        plural: "azureidentitybindings",
        singular: "azureidentitybinding",
        short_names: &[],
        description: "AzureIdentityBinding brings together the spec of matching pods and the identity which they can use.",
        spec: binding_spec,
        status: replicas_status,
        columns: &[("AzureIdentity", ".spec.azureIdentity"), ("Selector", ".spec.selector")],
    },
    Kind {
        kind: "AzureAssignedIdentity",
        plural: "azureassignedidentities",
        singular: "azureassignedidentity",
        short_names: &[],
        description: "AzureAssignedIdentity contains the identity <-> pod mapping which is matched.",
        spec: assigned_spec,
        status: assigned_status,
        columns: &[("Pod", ".spec.pod"), ("Node", ".spec.nodename"), ("Status", ".status.status")],
    },
    Kind {
        kind: "AzurePodIdentityException",
        plural: "azurepodidentityexceptions",
        singular: "azurepodidentityexception",
        short_names: &[],
        description: "AzurePodIdentityException contains the pod selectors for all pods that don't require NMI to process and request token on their behalf.",
        spec: exception_spec,
        status: exception_status,
        columns: &[],
    },
];

fn string() -> Value {
    json!({"type": "string"})
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}

fn identity_spec() -> Value {
    object(json!({
        "type": {"type": "integer", "description": "0: user-assigned managed identity, 1: service principal, 2: service principal with a certificate"},
        "resourceID": string(),
        "clientID": string(),
        "clientPassword": object(json!({"name": string(), "namespace": string()})),
        "tenantID": string(),
        "auxiliaryTenantIDs": {"type": "array", "items": string(), "nullable": true},
        "adResourceID": string(),
        "adEndpoint": string(),
        "replicas": {"type": "integer", "format": "int32", "nullable": true},
        "metadata": {"type": "object"},
    }))
}

fn binding_spec() -> Value {
    object(json!({"azureIdentity": string(), "selector": string(), "weight": {"type": "integer"}, "metadata": {"type": "object"}}))
}

fn replicas_status() -> Value {
    object(json!({"availableReplicas": int32(), "metadata": {"type": "object"}}))
}

/// An embedded object (`x-kubernetes-embedded-resource`) of one of the table's kinds.
fn embedded(spec: fn() -> Value, status: fn() -> Value) -> Value {
    let mut v = object(json!({"apiVersion": string(), "kind": string(), "metadata": {"type": "object"}, "spec": spec(), "status": status()}));
    v["x-kubernetes-embedded-resource"] = json!(true);
    v
}

fn assigned_spec() -> Value {
    object(json!({
        "azureIdentityRef": embedded(identity_spec, replicas_status),
        "azureBindingRef": embedded(binding_spec, replicas_status),
        "pod": string(),
        "podNamespace": string(),
        "nodename": string(),
        "replicas": {"type": "integer", "format": "int32", "nullable": true},
        "metadata": {"type": "object"},
    }))
}

fn assigned_status() -> Value {
    object(
        json!({"status": {"type": "string", "description": "Created, Assigned or Unassigned"}, "availableReplicas": int32(), "metadata": {"type": "object"}}),
    )
}

fn exception_spec() -> Value {
    object(json!({"podLabels": {"type": "object", "additionalProperties": string()}, "metadata": {"type": "object"}}))
}

fn exception_status() -> Value {
    object(json!({"status": string(), "metadata": {"type": "object"}}))
}

fn crd(k: &Kind) -> Value {
    let mut names = json!({"kind": k.kind, "listKind": format!("{}List", k.kind), "plural": k.plural, "singular": k.singular});
    if !k.short_names.is_empty() {
        names["shortNames"] = json!(k.short_names);
    }
    let mut version = json!({
        "name": API_VERSION.rsplit('/').next().unwrap_or("v1"),
        "served": true,
        "storage": true,
        "schema": {"openAPIV3Schema": {
            "description": k.description,
            "type": "object",
            "properties": {"apiVersion": string(), "kind": string(), "metadata": {"type": "object"}, "spec": (k.spec)(), "status": (k.status)()},
        }},
    });
    if !k.columns.is_empty() {
        let mut columns: Vec<Value> = k.columns.iter().map(|(name, path)| json!({"name": name, "jsonPath": path, "type": "string"})).collect();
        columns.push(json!({"name": "Age", "jsonPath": ".metadata.creationTimestamp", "type": "date"}));
        version["additionalPrinterColumns"] = json!(columns);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{GROUP}", k.plural), "annotations": {"api-approved.kubernetes.io": "unapproved"}},
        "spec": {"group": GROUP, "names": names, "scope": "Namespaced", "versions": [version]},
    })
}

/// The four CRDs, in upstream's order of kinds.
pub fn crds() -> Vec<Value> {
    KINDS.iter().map(crd).collect()
}

/// The kind a resource name (plural, singular or kind, any case) stands for, as kubectl resolves it.
pub fn kind_named(resource: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| [k.plural, k.singular, k.kind].iter().chain(k.short_names).any(|n| n.eq_ignore_ascii_case(resource))).map(|k| k.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_crds_in_the_group_with_upstream_names() {
        let all = crds();
        let names: Vec<&str> = all.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "azureidentities.aadpodidentity.k8s.io",
                "azureidentitybindings.aadpodidentity.k8s.io",
                "azureassignedidentities.aadpodidentity.k8s.io",
                "azurepodidentityexceptions.aadpodidentity.k8s.io"
            ]
        );
        assert_eq!(all[2]["spec"]["names"]["listKind"], "AzureAssignedIdentityList");
        assert_eq!(all[2]["spec"]["versions"][0]["name"], "v1");
        assert_eq!(kind_named("AzureAssignedIdentities"), Some("AzureAssignedIdentity"));
        assert_eq!(kind_named("azureidentity"), Some("AzureIdentity"));
        assert_eq!(kind_named("pods"), None);
    }
}
