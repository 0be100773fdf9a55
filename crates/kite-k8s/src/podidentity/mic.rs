//! The controller (MIC) as a pure function: from pods, nodes, `AzureIdentity`s, bindings and the
//! current `AzureAssignedIdentity`s to the set there should be (one per scheduled pod × matched
//! identity), the changes that get there, and which identities each node's VM or scale set holds.
//!
//! Standard mode assigns user-assigned identities to nodes, so before an identity goes onto a node
//! the RBAC engine checks that the cluster (kubelet) identity holds what aad-pod-identity's
//! `role-assignment.sh` grants: Managed Identity Operator on the identity and Virtual Machine
//! Contributor on the node's VM or scale set. Until it does, the `AzureAssignedIdentity` stays
//! `Created` and carries, in an annotation, exactly what is missing and the command that fixes it.
//! Managed mode (the AKS add-on) leaves nodes alone: matches go straight to `Assigned`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Node, Pod};
use kite_core::rbac::engine::{evaluate, AccessRequest, AccessView};
use kite_core::rbac::ActionKind;
use kite_core::scope::Scope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::podidentity::{pod_name, AzureIdentity, AzureIdentityBinding, ClusterState, PodDecision, Refusal, BINDING_LABEL};
use crate::{Error, Result};

pub const API_VERSION: &str = "aadpodidentity.k8s.io/v1";
/// The `AzureAssignedIdentity` exists; the identity is not (yet) on the pod's node.
pub const CREATED: &str = "Created";
/// The identity is on the pod's node (or needs no node, as in managed mode): NMI may serve it.
pub const ASSIGNED: &str = "Assigned";
/// Why a `Created` assignment is not `Assigned` yet. Upstream's status has no room for a reason,
/// and an annotation travels with the object to the node agent through any cluster source.
pub const BLOCKED_ANNOTATION: &str = "kite.aadpodidentity.k8s.io/not-assigned-because";

const ASSIGN_ACTION: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
const MANAGED_IDENTITY_OPERATOR: &str = "Managed Identity Operator";
const VIRTUAL_MACHINE_CONTRIBUTOR: &str = "Virtual Machine Contributor";

/// An object embedded whole (`x-kubernetes-embedded-resource`), with its own apiVersion and kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Embedded<T> {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(flatten)]
    pub object: T,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AssignedMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `AzureAssignedIdentity.spec`, field names as upstream's CRD.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureAssignedIdentitySpec {
    #[serde(rename = "azureIdentityRef")]
    pub identity: Embedded<AzureIdentity>,
    #[serde(rename = "azureBindingRef")]
    pub binding: Embedded<AzureIdentityBinding>,
    pub pod: String,
    #[serde(rename = "podNamespace")]
    pub pod_namespace: String,
    #[serde(rename = "nodename")]
    pub node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureAssignedIdentityStatus {
    #[serde(default)]
    pub status: String,
    #[serde(rename = "availableReplicas", default)]
    pub available_replicas: i32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AzureAssignedIdentity {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: AssignedMeta,
    pub spec: AzureAssignedIdentitySpec,
    #[serde(default)]
    pub status: AzureAssignedIdentityStatus,
}

impl AzureAssignedIdentity {
    pub fn is_assigned(&self) -> bool {
        self.status.status == ASSIGNED
    }

    fn needs_node(&self) -> bool {
        self.spec.identity.object.spec.kind == 0
    }

    fn resource_id(&self) -> &str {
        &self.spec.identity.object.spec.resource_id
    }
}

/// Upstream's name for the assignment of `identity` to a pod.
pub fn assigned_name(pod: &str, namespace: &str, identity: &str) -> String {
    format!("{pod}-{namespace}-{identity}")
}

/// `--pod-identity-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ControllerMode {
    /// The AKS add-on: no node assignment, matches are `Assigned` at once.
    #[default]
    Managed,
    /// Identities are assigned to nodes, which needs the cluster identity's permissions.
    Standard,
}

impl FromStr for ControllerMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "managed" => Ok(ControllerMode::Managed),
            "standard" => Ok(ControllerMode::Standard),
            _ => Err(Error::InvalidArgument(format!(
                "unknown pod identity mode '{s}': use managed (the AKS add-on) or standard (node assignment by the controller)"
            ))),
        }
    }
}

/// The Azure VM or scale set behind a node, from its `spec.providerID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeVm {
    /// The VM's or scale set's resource ID: what assigning an identity writes.
    pub resource_id: String,
    /// The node resource group, where `role-assignment.sh` grants Virtual Machine Contributor.
    pub resource_group: String,
    pub write_action: &'static str,
}

/// Reads `azure:///subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{n}`
/// or `…/virtualMachines/{vm}`.
pub fn node_vm(provider_id: &str) -> std::result::Result<NodeVm, String> {
    let expected = "expected azure:///subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{n} or …/virtualMachines/{vm}";
    let bad = |why: &str| format!("providerID '{provider_id}' {why}; {expected}");
    let path = provider_id.strip_prefix("azure://").ok_or_else(|| bad("is not an Azure provider ID"))?;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let [s, sub, r, rg, p, ns, kind, name, rest @ ..] = parts.as_slice() else { return Err(bad("is too short")) };
    if !(is(s, "subscriptions") && is(r, "resourceGroups") && is(p, "providers") && is(ns, "Microsoft.Compute")) {
        return Err(bad("does not name a Microsoft.Compute resource"));
    }
    let resource_group = format!("/subscriptions/{sub}/resourceGroups/{rg}");
    let (resource_type, write_action) = match (rest, *kind) {
        ([vm, _], k) if is(k, "virtualMachineScaleSets") && is(vm, "virtualMachines") => {
            ("virtualMachineScaleSets", "Microsoft.Compute/virtualMachineScaleSets/write")
        }
        ([], k) if is(k, "virtualMachines") => ("virtualMachines", "Microsoft.Compute/virtualMachines/write"),
        _ => return Err(bad("names neither a scale set instance nor a VM")),
    };
    let resource_id = format!("{resource_group}/providers/Microsoft.Compute/{resource_type}/{name}");
    Scope::parse(&resource_id).map_err(|e| bad(&e.to_string()))?;
    Ok(NodeVm { resource_id, resource_group, write_action })
}

/// Standard mode's inputs: the cluster identity and an RBAC view holding its assignments.
pub struct Standard<'a, V: AccessView> {
    pub cluster_client_id: &'a str,
    /// `None` when the client ID is no principal kite knows.
    pub cluster_principal: Option<Uuid>,
    pub access: &'a V,
}

/// What stands between an identity and a node, for one assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// `namespace/name` of the `AzureAssignedIdentity`.
    pub assigned: String,
    pub message: String,
}

/// A node whose identities change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentities {
    pub node: String,
    /// The VM or scale set, when the node's providerID names one.
    pub vm: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Every identity the node holds afterwards.
    pub identities: Vec<String>,
}

/// What the controller should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Every `AzureAssignedIdentity` there should be, by namespace then name.
    pub desired: Vec<AzureAssignedIdentity>,
    pub create: Vec<AzureAssignedIdentity>,
    /// Existing ones whose spec, labels or status change (a pod moved, an identity got assigned).
    pub update: Vec<AzureAssignedIdentity>,
    pub delete: Vec<AzureAssignedIdentity>,
    pub nodes: Vec<NodeIdentities>,
    pub blocked: Vec<Blocked>,
}

fn embed<T>(kind: &str, object: &T) -> Embedded<T>
where
    T: Clone,
{
    Embedded { api_version: API_VERSION.into(), kind: kind.into(), object: object.clone() }
}

fn scheduled(pod: &Pod) -> Option<&str> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// One assignment per scheduled pod × identity its `aadpodidbinding` label selects through a
/// binding in its namespace (identities looked up in that namespace too, as the node agent does).
fn matches(state: &ClusterState) -> Vec<AzureAssignedIdentity> {
    let mut bindings: HashMap<(&str, &str), Vec<&AzureIdentityBinding>> = HashMap::new();
    for b in &state.bindings {
        bindings.entry((b.metadata.namespace.as_str(), b.spec.selector.as_str())).or_default().push(b);
    }
    let identities: HashMap<(&str, &str), &AzureIdentity> =
        state.identities.iter().map(|i| ((i.metadata.namespace.as_str(), i.metadata.name.as_str()), i)).collect();
    let mut out: BTreeMap<(String, String), AzureAssignedIdentity> = BTreeMap::new();
    for pod in &state.pods {
        let Some(node) = scheduled(pod) else { continue };
        let Some(label) = pod.metadata.labels.as_ref().and_then(|l| l.get(BINDING_LABEL)) else { continue };
        let (name, namespace) = pod_name(pod);
        for binding in bindings.get(&(namespace.as_str(), label.as_str())).into_iter().flatten() {
            let Some(identity) = identities.get(&(namespace.as_str(), binding.spec.azure_identity.as_str())) else { continue };
            let aai_name = assigned_name(&name, &namespace, &identity.metadata.name);
            // Two bindings of one identity make one assignment; the first binding names it.
            out.entry((namespace.clone(), aai_name.clone())).or_insert_with(|| AzureAssignedIdentity {
                api_version: API_VERSION.into(),
                kind: "AzureAssignedIdentity".into(),
                metadata: AssignedMeta {
                    name: aai_name,
                    namespace: identity.metadata.namespace.clone(),
                    labels: [("nodename", node), ("podname", &name), ("podnamespace", &namespace)]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    annotations: BTreeMap::new(),
                },
                spec: AzureAssignedIdentitySpec {
                    identity: embed("AzureIdentity", *identity),
                    binding: embed("AzureIdentityBinding", *binding),
                    pod: name.clone(),
                    pod_namespace: namespace.clone(),
                    node_name: node.to_string(),
                    replicas: None,
                },
                status: AzureAssignedIdentityStatus { status: CREATED.into(), available_replicas: 1 },
            });
        }
    }
    out.into_values().collect()
}

/// Identities on each node: resource IDs (lower-cased key → as written) of type-0 identities
/// whose assignment is `Assigned`.
fn node_sets<'a>(assigned: impl Iterator<Item = &'a AzureAssignedIdentity>) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut nodes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for a in assigned.filter(|a| a.is_assigned() && a.needs_node()) {
        nodes.entry(a.spec.node_name.clone()).or_default().insert(a.resource_id().to_ascii_lowercase(), a.resource_id().to_string());
    }
    nodes
}

/// What the cluster identity lacks to put `a`'s identity on its node, as sentences; empty when nothing.
fn missing<V: AccessView>(standard: &Standard<'_, V>, a: &AzureAssignedIdentity, node: Option<&Node>) -> Vec<String> {
    let client = standard.cluster_client_id;
    let node_name = &a.spec.node_name;
    let Some(node) = node else {
        return vec![format!("node {node_name} is not in the cluster state (no Node object), so its VM is unknown")];
    };
    let provider = node.spec.as_ref().and_then(|s| s.provider_id.as_deref()).unwrap_or_default();
    let vm = match node_vm(provider) {
        Ok(vm) => vm,
        Err(e) => return vec![format!("node {node_name}: {e}")],
    };
    let Some(principal) = standard.cluster_principal else {
        return vec![format!(
            "the cluster identity {client} (--cluster-identity) is no principal kite knows; give the kubelet identity's client ID ('kite identity list')"
        )];
    };
    let identity_id = a.resource_id();
    let identity_scope = match Scope::parse(identity_id) {
        Ok(s) => s,
        Err(e) => {
            return vec![format!("AzureIdentity {} has resourceID '{identity_id}', which is not a resource ID: {e}", a.spec.identity.object.metadata.name)]
        }
    };
    let vm_scope = match Scope::parse(&vm.resource_id) {
        Ok(s) => s,
        Err(e) => return vec![format!("node {node_name}: {e}")],
    };
    let checks = [
        (MANAGED_IDENTITY_OPERATOR, ASSIGN_ACTION, &identity_scope, identity_id.to_string()),
        (VIRTUAL_MACHINE_CONTRIBUTOR, vm.write_action, &vm_scope, vm.resource_group.clone()),
    ];
    checks
        .into_iter()
        .filter_map(|(role, action, scope, fix_scope)| {
            let decision = evaluate(standard.access, &AccessRequest { principal_id: principal, action, kind: ActionKind::Action, scope });
            (!decision.allowed).then(|| {
                format!(
                    "the cluster identity {client} lacks {role} on {fix_scope} ({action} on {scope}: {}); fix: kite role assignment create --role \"{role}\" --assignee {client} --scope {fix_scope}",
                    decision.reason
                )
            })
        })
        .collect()
}

/// The controller's decision for the whole cluster. `standard` is `None` in managed mode.
pub fn reconcile<V: AccessView>(state: &ClusterState, standard: Option<&Standard<'_, V>>) -> Plan {
    let mut desired = matches(state);
    let current: HashMap<(&str, &str), &AzureAssignedIdentity> =
        state.assigned.iter().map(|a| ((a.metadata.namespace.as_str(), a.metadata.name.as_str()), a)).collect();
    let mut blocked = Vec::new();
    let mut nodes = Vec::new();
    match standard {
        None => desired.iter_mut().for_each(|a| a.status.status = ASSIGNED.into()),
        Some(standard) => {
            let before = node_sets(state.assigned.iter());
            let node_objects: HashMap<&str, &Node> = state.nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n))).collect();
            for a in desired.iter_mut() {
                // Service principals are not assigned to nodes; an identity a node already holds needs no new write.
                let on_node = before.get(&a.spec.node_name).is_some_and(|ids| ids.contains_key(&a.resource_id().to_ascii_lowercase()));
                let lacking = if !a.needs_node() || on_node { Vec::new() } else { missing(standard, a, node_objects.get(a.spec.node_name.as_str()).copied()) };
                if lacking.is_empty() {
                    a.status.status = ASSIGNED.into();
                    continue;
                }
                let message = format!(
                    "identity {}/{} is not yet assigned to node {}: {}",
                    a.metadata.namespace,
                    a.spec.identity.object.metadata.name,
                    a.spec.node_name,
                    lacking.join("; and ")
                );
                a.metadata.annotations.insert(BLOCKED_ANNOTATION.into(), message.clone());
                blocked.push(Blocked { assigned: format!("{}/{}", a.metadata.namespace, a.metadata.name), message });
            }
            let after = node_sets(desired.iter());
            let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
            let empty = BTreeMap::new();
            for node in names {
                let (was, now) = (before.get(node).unwrap_or(&empty), after.get(node).unwrap_or(&empty));
                if was.keys().eq(now.keys()) {
                    continue;
                }
                let vm = node_objects.get(node.as_str()).and_then(|n| node_vm(n.spec.as_ref()?.provider_id.as_deref()?).ok()).map(|v| v.resource_id);
                nodes.push(NodeIdentities {
                    node: node.clone(),
                    vm,
                    added: now.iter().filter(|(k, _)| !was.contains_key(*k)).map(|(_, v)| v.clone()).collect(),
                    removed: was.iter().filter(|(k, _)| !now.contains_key(*k)).map(|(_, v)| v.clone()).collect(),
                    identities: now.values().cloned().collect(),
                });
            }
        }
    }
    let wanted: BTreeSet<(&str, &str)> = desired.iter().map(|a| (a.metadata.namespace.as_str(), a.metadata.name.as_str())).collect();
    let delete = state.assigned.iter().filter(|a| !wanted.contains(&(a.metadata.namespace.as_str(), a.metadata.name.as_str()))).cloned().collect();
    let (mut create, mut update) = (Vec::new(), Vec::new());
    for a in &desired {
        match current.get(&(a.metadata.namespace.as_str(), a.metadata.name.as_str())) {
            None => create.push(a.clone()),
            Some(old) if *old != a => update.push(a.clone()),
            Some(_) => {}
        }
    }
    Plan { desired, create, update, delete, nodes, blocked }
}

/// Standard mode's node agent: a pod gets an identity only once its `AzureAssignedIdentity` is
/// `Assigned`, as NMI requires; a refusal says what is still missing.
pub fn require_assigned(state: &ClusterState, decision: PodDecision) -> PodDecision {
    let PodDecision::Identity { pod, namespace, identity } = &decision else { return decision };
    let mine: Vec<&AzureAssignedIdentity> = state
        .assigned
        .iter()
        .filter(|a| a.spec.pod == *pod && a.spec.pod_namespace == *namespace)
        .filter(|a| a.spec.identity.object.metadata.name == identity.metadata.name && a.spec.identity.object.metadata.namespace == identity.metadata.namespace)
        .collect();
    if mine.iter().any(|a| a.is_assigned()) {
        return decision;
    }
    let name = &identity.metadata.name;
    let message = match mine.first() {
        Some(a) => match a.metadata.annotations.get(BLOCKED_ANNOTATION) {
            Some(why) => format!("pod {namespace}/{pod}: {why}"),
            None => format!(
                "pod {namespace}/{pod}: AzureAssignedIdentity {}/{} is {}, not Assigned: identity {name} is not yet on node {}",
                a.metadata.namespace, a.metadata.name, a.status.status, a.spec.node_name
            ),
        },
        None => format!(
            "pod {namespace}/{pod} matches identity {name}, but there is no AzureAssignedIdentity for them yet; in standard mode the controller must create it \
             and assign the identity to the pod's node first (is the pod scheduled, with spec.nodeName?)"
        ),
    };
    PodDecision::Refused { reason: Refusal::NotAssigned, message }
}

#[cfg(test)]
mod tests;
