//! aad-pod-identity's objects (`aadpodidentity.k8s.io/v1`, field names verbatim so the YAML users
//! already have applies unchanged) and the node agent's decision: which identity a pod calling the
//! IMDS endpoint from a given IP may have. Managed mode: bindings are matched directly, as NMI does
//! when MIC is not running.

pub mod aksaddon;
pub mod crds;
pub mod mic;
pub mod spsecret;

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The pod label whose value selects bindings.
pub const BINDING_LABEL: &str = "aadpodidbinding";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SecretReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// `AzureIdentity.spec`: `type` 0 = user-assigned managed identity, 1 = service principal with a
/// secret, 2 = service principal with a certificate.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureIdentitySpec {
    #[serde(rename = "type", default)]
    pub kind: i64,
    #[serde(rename = "resourceID", default)]
    pub resource_id: String,
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    // Absent fields stay absent when written back (in AzureAssignedIdentity's azureIdentityRef):
    // the CRD schema refuses `clientPassword: null`.
    #[serde(rename = "clientPassword", default, skip_serializing_if = "Option::is_none")]
    pub client_password: Option<SecretReference>,
    #[serde(rename = "tenantID", default, skip_serializing_if = "String::is_empty")]
    pub tenant_id: String,
    #[serde(rename = "auxiliaryTenantIDs", default, skip_serializing_if = "Vec::is_empty")]
    pub auxiliary_tenant_ids: Vec<String>,
    #[serde(rename = "adResourceID", default, skip_serializing_if = "String::is_empty")]
    pub ad_resource_id: String,
    #[serde(rename = "adEndpoint", default, skip_serializing_if = "String::is_empty")]
    pub ad_endpoint: String,
    /// Keys the CRD does not have (upstream README's `ResourceID`, `ClientID`): read so `kite doctor`
    /// can name them, never written back.
    #[serde(flatten, default, skip_serializing)]
    pub unread: BTreeMap<String, serde_json::Value>,
}

impl AzureIdentitySpec {
    /// The spec keys kite ignored.
    pub fn unread_fields(&self) -> Vec<String> {
        self.unread.keys().cloned().collect()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureIdentity {
    pub metadata: ObjectMeta,
    pub spec: AzureIdentitySpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureIdentityBindingSpec {
    #[serde(rename = "azureIdentity", default)]
    pub azure_identity: String,
    #[serde(default)]
    pub selector: String,
    #[serde(default)]
    pub weight: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureIdentityBinding {
    pub metadata: ObjectMeta,
    pub spec: AzureIdentityBindingSpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzurePodIdentityExceptionSpec {
    #[serde(rename = "podLabels", default)]
    pub pod_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzurePodIdentityException {
    pub metadata: ObjectMeta,
    pub spec: AzurePodIdentityExceptionSpec,
}

/// What the node agent and the controller see: pods, nodes and the aad-pod-identity objects.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub identities: Vec<AzureIdentity>,
    pub bindings: Vec<AzureIdentityBinding>,
    pub exceptions: Vec<AzurePodIdentityException>,
    /// The controller's output, read back like any other object.
    pub assigned: Vec<crate::podidentity::mic::AzureAssignedIdentity>,
    /// Where type 1 identities' client secrets live.
    pub secrets: Vec<crate::podidentity::spsecret::SecretData>,
    /// Their annotations say which identity or role a pod gets (the workload identity webhook).
    pub service_accounts: Vec<ServiceAccount>,
}

impl ClusterState {
    /// The node the pod `namespace/name` with this UID is scheduled on: how the server places a
    /// projected token's pod (the UID, so a token outliving its pod does not carry over to a new one).
    pub fn scheduled_node(&self, namespace: &str, name: &str, uid: &str) -> Option<&str> {
        self.pods
            .iter()
            .find(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(name) && p.metadata.uid.as_deref() == Some(uid))
            .and_then(|p| p.spec.as_ref()?.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// The service account `namespace/name`, as the workload identity webhook looks it up.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts.iter().find(|sa| sa.metadata.namespace.as_deref().unwrap_or("default") == namespace && sa.metadata.name.as_deref() == Some(name))
    }

    /// Reads multi-document YAML files (or directories of them); other kinds are ignored.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<ClusterState> {
        let mut state = ClusterState::default();
        for p in paths {
            state.read_path(p.as_ref())?;
        }
        Ok(state)
    }

    fn read_path(&mut self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path).map_err(io)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                let ext = e.extension().and_then(|x| x.to_str()).unwrap_or_default();
                if e.is_dir() || ["yaml", "yml", "json"].contains(&ext) {
                    self.read_path(&e)?;
                }
            }
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        self.read_yaml(&text, &path.display().to_string())
    }

    pub fn read_yaml(&mut self, text: &str, origin: &str) -> Result<()> {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let bad = |message: String| Error::Document { file: origin.to_string(), document: i + 1, message };
            let value = Value::deserialize(doc).map_err(|e| bad(format!("not valid YAML: {e}")))?;
            let items = match value.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") => value.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
                _ => vec![value],
            };
            for item in items {
                self.add(item).map_err(bad)?;
            }
        }
        Ok(())
    }

    /// Adds one object (a Pod, a Node, a Secret or an aad-pod-identity object, as JSON); other kinds are ignored.
    /// Both sources use this: the YAML directory, and the live cluster's watchers.
    pub fn add(&mut self, item: Value) -> std::result::Result<(), String> {
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let parse = |e: serde_json::Error| format!("{kind}: invalid {e}");
        match kind.as_str() {
            "Pod" => self.pods.push(serde_json::from_value(item).map_err(parse)?),
            "Node" => self.nodes.push(serde_json::from_value(item).map_err(parse)?),
            "AzureAssignedIdentity" => self.assigned.push(serde_json::from_value(item).map_err(parse)?),
            "AzureIdentity" => self.identities.push(serde_json::from_value(item).map_err(parse)?),
            "AzureIdentityBinding" => self.bindings.push(serde_json::from_value(item).map_err(parse)?),
            "AzurePodIdentityException" => self.exceptions.push(serde_json::from_value(item).map_err(parse)?),
            "Secret" => self.secrets.push(crate::podidentity::spsecret::SecretData::from_value(item)?),
            "ServiceAccount" => self.service_accounts.push(serde_json::from_value(item).map_err(parse)?),
            _ => {}
        }
        Ok(())
    }
}

/// How a request names one identity among several: `client_id`, `object_id` or a resource ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub client_id: Option<String>,
    pub resource_id: Option<String>,
}

/// The node agent's answer for a caller.
#[derive(Clone, Debug, PartialEq)]
pub enum PodDecision {
    /// The pod may have this identity.
    Identity { pod: String, namespace: String, identity: Box<AzureIdentity> },
    /// The pod is excepted: its request goes to the real IMDS untouched.
    Excepted { pod: String, namespace: String, exception: String },
    /// Refused, with a message naming the pod and what is missing.
    Refused { reason: Refusal, message: String },
}

/// Why a pod was refused, for counting; the message says it to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No running pod, or more than one, has the caller's IP.
    UnknownPod,
    NoBindingLabel,
    /// The label selects no binding that names an existing identity.
    NoBinding,
    /// The identity asked for is not among the pod's.
    NotBound,
    /// Several identities and none asked for.
    SeveralIdentities,
    /// Standard mode: the controller has not assigned the identity yet.
    NotAssigned,
    /// The pod runs on another node than the asking agent's (NodeRestriction).
    OtherNode,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownPod => "unknown_pod",
            Refusal::NoBindingLabel => "no_binding_label",
            Refusal::NoBinding => "no_binding",
            Refusal::NotBound => "not_bound",
            Refusal::SeveralIdentities => "several_identities",
            Refusal::NotAssigned => "not_assigned",
            Refusal::OtherNode => "other_node",
        }
    }

    pub const ALL: [Refusal; 7] = [
        Refusal::UnknownPod,
        Refusal::NoBindingLabel,
        Refusal::NoBinding,
        Refusal::NotBound,
        Refusal::SeveralIdentities,
        Refusal::NotAssigned,
        Refusal::OtherNode,
    ];
}

pub(crate) fn pod_name(p: &Pod) -> (String, String) {
    (p.metadata.name.clone().unwrap_or_default(), p.metadata.namespace.clone().unwrap_or_else(default_namespace))
}

/// Which identity the pod at `ip` may have, as NMI decides it.
pub fn decide(state: &ClusterState, ip: &str, selector: &Selector) -> PodDecision {
    decide_among(state, None, ip, selector)
}

/// As [`decide`], for the agent of `node`: only a pod scheduled on that node can be the caller, as
/// the NodeRestriction admission plugin limits a kubelet to its own pods. A compromised node thus
/// reaches only the identities of the pods it runs.
pub fn decide_on_node(state: &ClusterState, node: &str, ip: &str, selector: &Selector) -> PodDecision {
    decide_among(state, Some(node), ip, selector)
}

fn node_of(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn decide_among(state: &ClusterState, node: Option<&str>, ip: &str, selector: &Selector) -> PodDecision {
    let (candidates, elsewhere): (Vec<&Pod>, Vec<&Pod>) = state
        .pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip))
        .filter(|p| matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running") | Some("Pending") | None))
        .partition(|p| node.is_none_or(|n| node_of(p) == n));
    if let (Some(node), [], [other, ..]) = (node, candidates.as_slice(), elsewhere.as_slice()) {
        let (name, namespace) = pod_name(other);
        let runs_on = match node_of(other) {
            "" => "is not scheduled on any node".to_string(),
            n => format!("runs on node {n}"),
        };
        return PodDecision::Refused {
            reason: Refusal::OtherNode,
            message: format!("pod {namespace}/{name} (IP {ip}) {runs_on}, not on node {node}: a node's agent gets tokens only for the pods on its own node"),
        };
    }
    let pod = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return PodDecision::Refused {
                reason: Refusal::UnknownPod,
                message: format!("no running pod has IP {ip}; the caller is not a pod kite knows (is the pod list current?)"),
            }
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|p| {
                    let (n, ns) = pod_name(p);
                    format!("{ns}/{n}")
                })
                .collect();
            return PodDecision::Refused {
                reason: Refusal::UnknownPod,
                message: format!("{} pods have IP {ip} ({}); exactly one must", many.len(), names.join(", ")),
            };
        }
    };
    let (name, namespace) = pod_name(pod);
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    if let Some(ex) =
        state.exceptions.iter().filter(|e| e.metadata.namespace == namespace).find(|e| e.spec.pod_labels.iter().any(|(k, v)| labels.get(k) == Some(v)))
    {
        return PodDecision::Excepted { pod: name, namespace, exception: ex.metadata.name.clone() };
    }
    let Some(label) = labels.get(BINDING_LABEL) else {
        return PodDecision::Refused {
            reason: Refusal::NoBindingLabel,
            message: format!(
                "pod {namespace}/{name} has no '{BINDING_LABEL}' label, so no AzureIdentityBinding selects it; add the label with a binding's selector value"
            ),
        };
    };
    let mut bound: Vec<&AzureIdentity> = state
        .bindings
        .iter()
        .filter(|b| b.metadata.namespace == namespace && b.spec.selector == *label)
        .filter_map(|b| state.identities.iter().find(|i| i.metadata.namespace == namespace && i.metadata.name == b.spec.azure_identity))
        .collect();
    // Two bindings may name the same identity.
    bound.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    bound.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    if bound.is_empty() {
        let selectors: Vec<&str> = state.bindings.iter().filter(|b| b.metadata.namespace == namespace).map(|b| b.spec.selector.as_str()).collect();
        return PodDecision::Refused {
            reason: Refusal::NoBinding,
            message: format!(
                "pod {namespace}/{name} has {BINDING_LABEL}={label} but no AzureIdentityBinding in namespace {namespace} with that selector names an existing AzureIdentity (selectors there: {selectors:?})"
            ),
        };
    }
    let have = || bound.iter().map(|i| format!("{} (clientID {})", i.metadata.name, i.spec.client_id)).collect::<Vec<_>>().join(", ");
    let chosen = match (&selector.client_id, &selector.resource_id) {
        (Some(c), _) => bound.iter().find(|i| i.spec.client_id.eq_ignore_ascii_case(c)),
        (None, Some(r)) => bound.iter().find(|i| i.spec.resource_id.eq_ignore_ascii_case(r)),
        (None, None) if bound.len() == 1 => bound.first(),
        // Guessing would hand out whichever identity happens to sort first.
        (None, None) => {
            return PodDecision::Refused {
                reason: Refusal::SeveralIdentities,
                message: format!("pod {namespace}/{name} is bound to several identities: {}; name one with client_id, object_id or mi_res_id", have()),
            }
        }
    };
    match chosen {
        Some(identity) => PodDecision::Identity { pod: name, namespace, identity: Box::new((*identity).clone()) },
        None => PodDecision::Refused {
            reason: Refusal::NotBound,
            message: format!("pod {namespace}/{name} is not bound to the requested identity; it is bound to: {}", have()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD: &str = r#"
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: app-identity, namespace: demo}
spec: {type: 0, resourceID: /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app, clientID: 11111111-1111-1111-1111-111111111111}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: app-binding, namespace: demo}
spec: {azureIdentity: app-identity, selector: app}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzurePodIdentityException
metadata: {name: kube-system-exception, namespace: kube-system}
spec: {podLabels: {"kubernetes.azure.com/managedby": aks}}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: demo, labels: {aadpodidbinding: app}}
  status: {podIP: 10.244.0.5, phase: Running}
- apiVersion: v1
  kind: Pod
  metadata: {name: other, namespace: demo, labels: {app: other}}
  status: {podIP: 10.244.0.6, phase: Running}
- apiVersion: v1
  kind: Pod
  metadata: {name: coredns, namespace: kube-system, labels: {"kubernetes.azure.com/managedby": aks}}
  status: {podIP: 10.244.0.7, phase: Running}
"#;

    fn world() -> ClusterState {
        let mut s = ClusterState::default();
        s.read_yaml(WORLD, "world.yaml").unwrap();
        s
    }

    #[test]
    fn service_accounts_are_read_and_found_by_namespace_and_name() {
        let mut s = world();
        s.read_yaml(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api, namespace: demo, annotations: {azure.workload.identity/client-id: x}}\n",
            "sa.yaml",
        )
        .unwrap();
        let sa = s.service_account("demo", "api").unwrap();
        assert_eq!(sa.metadata.annotations.as_ref().unwrap()["azure.workload.identity/client-id"], "x");
        assert!(s.service_account("other", "api").is_none() && s.service_account("demo", "web").is_none());
    }

    #[test]
    fn a_node_agent_gets_answers_only_for_the_pods_on_its_own_node() {
        let mut s = world();
        for pod in &mut s.pods {
            pod.spec.get_or_insert_with(Default::default).node_name = Some("node-a".into());
        }
        let any = Selector::default();
        assert!(matches!(decide_on_node(&s, "node-a", "10.244.0.5", &any), PodDecision::Identity { .. }));
        let PodDecision::Refused { reason, message } = decide_on_node(&s, "node-b", "10.244.0.5", &any) else { panic!("node-b may not act for node-a's pod") };
        assert_eq!(reason, Refusal::OtherNode);
        assert!(message.contains("demo/web") && message.contains("runs on node node-a") && message.contains("not on node node-b"), "{message}");
        // An unscheduled pod belongs to no node's agent.
        s.pods[0].spec.as_mut().unwrap().node_name = None;
        let PodDecision::Refused { reason, message } = decide_on_node(&s, "node-a", "10.244.0.5", &any) else { panic!() };
        assert_eq!(reason, Refusal::OtherNode);
        assert!(message.contains("is not scheduled on any node"), "{message}");
        // The embedded agent (no node) still finds it by IP alone.
        assert!(matches!(decide(&s, "10.244.0.5", &any), PodDecision::Identity { .. }));
    }

    #[test]
    fn a_labelled_pod_gets_its_bound_identity_and_others_are_refused_with_the_reason() {
        let s = world();
        match decide(&s, "10.244.0.5", &Selector::default()) {
            PodDecision::Identity { pod, identity, .. } => {
                assert_eq!(pod, "web");
                assert_eq!(identity.spec.client_id, "11111111-1111-1111-1111-111111111111");
            }
            other => panic!("{other:?}"),
        }
        let PodDecision::Refused { reason: Refusal::NoBindingLabel, message } = decide(&s, "10.244.0.6", &Selector::default()) else { panic!() };
        assert!(message.contains("demo/other") && message.contains("aadpodidbinding"), "{message}");
        let PodDecision::Refused { reason: Refusal::UnknownPod, message } = decide(&s, "10.9.9.9", &Selector::default()) else { panic!() };
        assert!(message.contains("10.9.9.9"));
        let wrong = Selector { client_id: Some("22222222-2222-2222-2222-222222222222".into()), resource_id: None };
        let PodDecision::Refused { reason: Refusal::NotBound, message } = decide(&s, "10.244.0.5", &wrong) else { panic!() };
        assert!(message.contains("app-identity (clientID 11111111"), "{message}");
    }

    #[test]
    fn a_pod_bound_to_several_identities_must_name_one() {
        let mut s = world();
        let second = r#"
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: audit-identity, namespace: demo}
spec: {type: 0, resourceID: /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/audit, clientID: 33333333-3333-3333-3333-333333333333}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: audit-binding, namespace: demo}
spec: {azureIdentity: audit-identity, selector: app}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: app-binding-again, namespace: demo}
spec: {azureIdentity: app-identity, selector: app}
"#;
        s.read_yaml(second, "second.yaml").unwrap();
        let PodDecision::Refused { reason: Refusal::SeveralIdentities, message } = decide(&s, "10.244.0.5", &Selector::default()) else { panic!() };
        assert!(
            message.contains("several identities") && message.contains("app-identity (clientID 1111") && message.contains("audit-identity (clientID 3333"),
            "{message}"
        );
        assert_eq!(message.matches("app-identity").count(), 1, "an identity bound twice is listed once: {message}");
        let by_resource = Selector {
            client_id: None,
            resource_id: Some("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/AUDIT".into()),
        };
        let PodDecision::Identity { identity, .. } = decide(&s, "10.244.0.5", &by_resource) else { panic!() };
        assert_eq!(identity.metadata.name, "audit-identity");
    }

    #[test]
    fn excepted_pods_go_to_the_real_imds() {
        assert!(matches!(decide(&world(), "10.244.0.7", &Selector::default()), PodDecision::Excepted { .. }));
    }
}
