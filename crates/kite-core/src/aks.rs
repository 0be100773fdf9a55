//! AKS-shaped managed clusters: the cluster resource, and what creating or changing one brings with
//! it as Azure does (seeds 000 and 002): the node resource group `MC_{rg}_{cluster}_{location}`, the
//! control-plane identity holding Contributor on it, and the kubelet identity `{cluster}-agentpool`.
//! Every change is planned here as a [`ClusterWrite`] the store applies in one transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::addons::{check_unchanged, plan_addons, Addon};
use crate::directory::{validate_location, Application, ManagedIdentity, Principal, PrincipalKind, ResourceGroup};
use crate::network::NetworkSettings;
use crate::rbac::RoleAssignment;
use crate::scope::{validate_resource_group_name, Scope};
use crate::{Error, Result};

pub const TYPE: &str = "Microsoft.ContainerService/managedClusters";
/// What `servicePrincipalProfile.clientId` says for a cluster that uses a managed identity.
pub const MSI: &str = "msi";
/// Contributor: AKS gives it to the control-plane identity on the node resource group.
pub const CONTRIBUTOR: Uuid = Uuid::from_u128(0xb24988ac_6180_42a0_ab88_20f7382dd24c);
/// Managed Identity Operator: the control plane gets it on a kubelet identity it is given, and
/// `az aks pod-identity add` gives it to the cluster identity on the pod's identity.
pub const MANAGED_IDENTITY_OPERATOR: Uuid = Uuid::from_u128(0xf1a07417_d97a_45cb_824c_7a7467783830);

/// Azure's own text (the AKS resource provider's, as az prints it).
pub const KUBENET_POD_IDENTITY: &str = "Network plugin kubenet is not supported to use with PodIdentity addon.";
/// Azure CLI's own text.
pub const KUBELET_NEEDS_CONTROL_PLANE: &str = "--assign-kubelet-identity can only be specified when --assign-identity is specified";

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPlugin {
    Azure,
    Kubenet,
}

impl NetworkPlugin {
    pub fn parse(raw: &str) -> Result<NetworkPlugin> {
        match raw.to_ascii_lowercase().as_str() {
            "azure" => Ok(NetworkPlugin::Azure),
            "kubenet" => Ok(NetworkPlugin::Kubenet),
            _ => Err(Error::InvalidArgument(format!("invalid network plugin '{raw}': use 'azure' or 'kubenet'"))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NetworkPlugin::Azure => "azure",
            NetworkPlugin::Kubenet => "kubenet",
        }
    }
}

/// A user-assigned identity as a cluster records it (ARM's `UserAssignedIdentity`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRef {
    pub resource_id: String,
    pub client_id: Uuid,
    pub object_id: Uuid,
}

impl From<&ManagedIdentity> for IdentityRef {
    fn from(mi: &ManagedIdentity) -> Self {
        IdentityRef { resource_id: mi.id(), client_id: mi.client_id, object_id: mi.principal_id }
    }
}

/// Who the control plane acts as.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ControlPlane {
    #[serde(rename_all = "camelCase")]
    SystemAssigned {
        principal_id: Uuid,
        client_id: Uuid,
    },
    UserAssigned(IdentityRef),
    #[serde(rename_all = "camelCase")]
    ServicePrincipal {
        client_id: Uuid,
        object_id: Uuid,
    },
}

impl ControlPlane {
    /// The object id role assignments name.
    pub fn object_id(&self) -> Uuid {
        match self {
            ControlPlane::SystemAssigned { principal_id, .. } => *principal_id,
            ControlPlane::UserAssigned(r) => r.object_id,
            ControlPlane::ServicePrincipal { object_id, .. } => *object_id,
        }
    }
}

/// One entry of `podIdentityProfile.userAssignedIdentities`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub identity: IdentityRef,
    #[serde(default)]
    pub binding_selector: Option<String>,
}

impl PodIdentity {
    /// The `aadpodidbinding` value that selects it: the binding selector, else the name (as az documents).
    pub fn selector(&self) -> &str {
        self.binding_selector.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    pub subscription_id: Uuid,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tenant_id: Uuid,
    pub node_resource_group: String,
    pub network_plugin: NetworkPlugin,
    pub control_plane: ControlPlane,
    /// None while a service-principal cluster's kubelet uses the service principal.
    pub kubelet: Option<IdentityRef>,
    pub pod_identity_enabled: bool,
    #[serde(default)]
    pub pod_identities: Vec<PodIdentity>,
    /// `networkProfile`'s ranges and the agent pool's subnet, as given (checked by [`NetworkSettings::validate`]).
    #[serde(default)]
    pub network: NetworkSettings,
    /// `addonProfiles`, with the identities kite made for them.
    #[serde(default)]
    pub addons: BTreeMap<String, Addon>,
    /// `agentPoolProfiles` as the caller gave them (kite runs no nodes), checked by [`validate_agent_pools`].
    #[serde(default)]
    pub agent_pools: Vec<serde_json::Value>,
}

impl ManagedCluster {
    /// The resource ID as az prints it (lower-case `resourcegroups`).
    pub fn id(&self) -> String {
        format!("/subscriptions/{}/resourcegroups/{}/providers/{TYPE}/{}", self.subscription_id, self.resource_group, self.name)
    }

    pub fn node_group_scope(&self) -> Result<Scope> {
        Scope::resource_group(&self.subscription_id, &self.node_resource_group)
    }
}

/// Everything one create or update writes, in one transaction. Assignments the principal already
/// holds are kept as they are.
#[derive(Clone, Debug)]
pub struct ClusterWrite {
    pub cluster: ManagedCluster,
    pub node_group: Option<ResourceGroup>,
    pub identities: Vec<ManagedIdentity>,
    /// System-assigned identities: principals with no identity resource of their own.
    pub principals: Vec<Principal>,
    pub assignments: Vec<RoleAssignment>,
}

/// The control-plane identity a request asks for, with what it names already looked up.
#[derive(Clone)]
pub enum IdentityChoice {
    SystemAssigned,
    UserAssigned(ManagedIdentity),
    /// `--service-principal` with `--client-secret`, checked against the app's credentials.
    ServicePrincipal {
        app: Application,
        secret: String,
    },
}

/// What `aks create` asks for.
pub struct ClusterSpec {
    pub name: String,
    pub location: Option<String>,
    pub identity: IdentityChoice,
    pub kubelet: Option<ManagedIdentity>,
    pub network_plugin: Option<NetworkPlugin>,
    pub enable_pod_identity: bool,
    pub node_resource_group: Option<String>,
    pub network: NetworkSettings,
    pub addons: BTreeMap<String, Addon>,
    pub agent_pools: Vec<serde_json::Value>,
}

/// The most agent pools a cluster has, as AKS allows.
pub const MAX_AGENT_POOLS: usize = 100;

/// Agent pools as AKS names them: objects whose `name` is 1–12 lower-case letters and digits,
/// starting with a letter, each name once. kite runs no nodes: the rest is kept as given.
pub fn validate_agent_pools(pools: &[serde_json::Value]) -> Result<()> {
    if pools.len() > MAX_AGENT_POOLS {
        return Err(Error::InvalidArgument(format!("{} agent pools were given; a cluster has at most {MAX_AGENT_POOLS}", pools.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, pool) in pools.iter().enumerate() {
        let name = pool.get("name").and_then(serde_json::Value::as_str).ok_or_else(|| Error::InvalidArgument(format!("agentPoolProfiles[{i}] has no name")))?;
        let ok = (1..=12).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(Error::InvalidArgument(format!("agent pool name '{name}' is invalid: use 1-12 lower-case letters and digits, starting with a letter")));
        }
        if !seen.insert(name) {
            return Err(Error::InvalidArgument(format!("agent pool '{name}' is given twice")));
        }
    }
    Ok(())
}

/// Cluster names: 1–63 letters, digits, '-' and '_', starting and ending with a letter or digit.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "invalid cluster name '{name}': use 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// A user-assigned identity's resource ID → (subscription, resource group, name).
pub fn parse_identity_id(id: &str) -> Result<(Uuid, String, String)> {
    let bad = || {
        Error::InvalidArgument(format!(
            "'{id}' is not a user-assigned identity ID; expected /subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{{name}} (see 'kite identity show --query id')"
        ))
    };
    let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, sub, r, rg, p, ns, t, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourcegroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.ManagedIdentity")
                && t.eq_ignore_ascii_case("userAssignedIdentities") =>
        {
            Ok((Uuid::parse_str(sub).map_err(|_| bad())?, rg.to_string(), name.to_string()))
        }
        _ => Err(bad()),
    }
}

/// A service principal's secret must be one of its current secrets, as AKS checks when it signs in with it.
pub fn check_secret(app: &Application, secret: &str, now: OffsetDateTime) -> Result<()> {
    match app.password_credentials.iter().find(|c| c.matches(secret)) {
        None => Err(Error::InvalidArgument(format!(
            "The credentials in ServicePrincipalProfile were invalid: the client secret is not one of app {}'s secrets (AADSTS7000215). \
             Get a new one with 'kite ad sp credential reset --id {}'",
            app.app_id, app.app_id
        ))),
        Some(c) if c.is_expired(now) => Err(Error::InvalidArgument(format!(
            "The credentials in ServicePrincipalProfile were invalid: the client secret of app {} expired on {} (AADSTS7000222). \
             Get a new one with 'kite ad sp credential reset --id {}'",
            app.app_id, c.end_date_time, app.app_id
        ))),
        Some(_) => Ok(()),
    }
}

pub(crate) fn assignment(principal_id: Uuid, role: Uuid, scope: Scope, now: OffsetDateTime, by: Option<Uuid>) -> RoleAssignment {
    RoleAssignment {
        name: Uuid::new_v4(),
        scope,
        role_definition_id: role,
        principal_id,
        principal_type: "ServicePrincipal".into(),
        description: None,
        created_on: now,
        created_by: by,
    }
}

/// A fresh system-assigned identity for the cluster: a principal Entra lists with the cluster's ID.
fn system_assigned(cluster_id: &str, name: &str, tenant_id: Uuid) -> (ControlPlane, Principal) {
    let principal = Principal {
        object_id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        display_name: name.to_string(),
        service_principal_type: PrincipalKind::ManagedIdentity,
        tenant_id,
        alternative_names: vec!["isExplicit=False".into(), cluster_id.to_string()],
    };
    (ControlPlane::SystemAssigned { principal_id: principal.object_id, client_id: principal.app_id }, principal)
}

/// The managed-identity part of a cluster (create, or migration from a service principal): the
/// control-plane identity with Contributor on the node resource group, and a kubelet identity
/// (`{cluster}-agentpool` in the node resource group, or the given one, on which the control plane
/// then holds Managed Identity Operator).
fn managed_identities(
    w: &mut ClusterWrite,
    control_plane: IdentityChoice,
    kubelet: Option<ManagedIdentity>,
    node_group: &ResourceGroup,
    now: OffsetDateTime,
    by: Option<Uuid>,
) -> Result<()> {
    let cluster_id = w.cluster.id();
    w.cluster.control_plane = match control_plane {
        IdentityChoice::SystemAssigned => {
            let (cp, principal) = system_assigned(&cluster_id, &w.cluster.name, w.cluster.tenant_id);
            w.principals.push(principal);
            cp
        }
        IdentityChoice::UserAssigned(mi) => ControlPlane::UserAssigned(IdentityRef::from(&mi)),
        IdentityChoice::ServicePrincipal { .. } => {
            return Err(Error::InvalidArgument("a managed-identity cluster needs a managed identity, not a service principal".into()))
        }
    };
    let kubelet = match kubelet {
        Some(mi) => {
            // The control plane acts for the kubelet identity it was given; az grants this before it creates the cluster.
            let scope = Scope::parse(&mi.id())?;
            w.assignments.push(assignment(w.cluster.control_plane.object_id(), MANAGED_IDENTITY_OPERATOR, scope, now, by));
            mi
        }
        None => {
            let mi = ManagedIdentity::new(node_group, &format!("{}-agentpool", w.cluster.name), Some(&w.cluster.location), w.cluster.tenant_id)?;
            w.identities.push(mi.clone());
            mi
        }
    };
    w.cluster.kubelet = Some(IdentityRef::from(&kubelet));
    w.assignments.push(assignment(w.cluster.control_plane.object_id(), CONTRIBUTOR, node_group.scope(), now, by));
    Ok(())
}

/// Plans `aks create` in `group`.
pub fn plan_create(group: &ResourceGroup, spec: ClusterSpec, tenant_id: Uuid, now: OffsetDateTime, by: Option<Uuid>) -> Result<ClusterWrite> {
    validate_cluster_name(&spec.name)?;
    if spec.kubelet.is_some() && !matches!(spec.identity, IdentityChoice::UserAssigned(_)) {
        return Err(Error::InvalidArgument(KUBELET_NEEDS_CONTROL_PLANE.into()));
    }
    let network_plugin = spec.network_plugin.unwrap_or(NetworkPlugin::Kubenet);
    if spec.enable_pod_identity && network_plugin == NetworkPlugin::Kubenet {
        return Err(Error::InvalidArgument(KUBENET_POD_IDENTITY.into()));
    }
    spec.network.validate()?;
    validate_agent_pools(&spec.agent_pools)?;
    let location = match &spec.location {
        Some(l) => validate_location(l)?,
        None => group.location.clone(),
    };
    let node_name = spec.node_resource_group.clone().unwrap_or_else(|| format!("MC_{}_{}_{}", group.name, spec.name, location));
    validate_resource_group_name(&node_name).map_err(|e| {
        Error::InvalidArgument(format!(
            "{e}; the node resource group name comes from MC_{{group}}_{{cluster}}_{{location}}, give a shorter one with --node-resource-group"
        ))
    })?;
    let mut node_group = ResourceGroup::new(group.subscription_id, &node_name, &location, Default::default())?;
    let cluster = ManagedCluster {
        subscription_id: group.subscription_id,
        resource_group: group.name.clone(),
        name: spec.name,
        location,
        tenant_id,
        node_resource_group: node_name,
        network_plugin,
        // Replaced below; a placeholder keeps one construction path for every kind of identity.
        control_plane: ControlPlane::ServicePrincipal { client_id: Uuid::nil(), object_id: Uuid::nil() },
        kubelet: None,
        pod_identity_enabled: spec.enable_pod_identity,
        pod_identities: Vec::new(),
        network: spec.network,
        addons: BTreeMap::new(),
        agent_pools: spec.agent_pools,
    };
    node_group.managed_by = Some(cluster.id());
    let mut w = ClusterWrite { cluster, node_group: None, identities: Vec::new(), principals: Vec::new(), assignments: Vec::new() };
    match spec.identity {
        IdentityChoice::ServicePrincipal { app, secret } => {
            check_secret(&app, &secret, now)?;
            w.cluster.control_plane = ControlPlane::ServicePrincipal { client_id: app.app_id, object_id: app.principal_id };
            w.assignments.push(assignment(app.principal_id, CONTRIBUTOR, node_group.scope(), now, by));
        }
        managed => managed_identities(&mut w, managed, spec.kubelet, &node_group, now, by)?,
    }
    plan_addons(&mut w, spec.addons, &node_group, now, by)?;
    w.node_group = Some(node_group);
    Ok(w)
}

/// What `aks update` (an ARM PUT on an existing cluster) asks to change; `None` leaves a part as it is.
#[derive(Clone, Default)]
pub struct ClusterUpdate {
    pub location: Option<String>,
    pub node_resource_group: Option<String>,
    pub network_plugin: Option<NetworkPlugin>,
    /// A managed identity for a service-principal cluster (`--enable-managed-identity`).
    pub identity: Option<IdentityChoice>,
    pub kubelet: Option<ManagedIdentity>,
    /// `podIdentityProfile`: enabled, and the entries with their identities looked up.
    pub pod_identity: Option<(bool, Vec<PodIdentity>)>,
    /// `networkProfile` as sent again (az sends what it read): what it sets must not change.
    pub network: Option<NetworkSettings>,
    /// `addonProfiles` as sent again: the enabled ones must not change.
    pub addons: Option<BTreeMap<String, Addon>>,
    /// `agentPoolProfiles`: replaced as a whole.
    pub agent_pools: Option<Vec<serde_json::Value>>,
}

fn unchangeable(property: &str) -> Error {
    Error::InvalidArgument(format!("PropertyChangeNotAllowed: Changing property '{property}' is not allowed."))
}

/// DNS-1123 labels, as Kubernetes names and namespaces must be.
fn validate_k8s_name(what: &str, name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "invalid pod identity {what} '{name}': use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// Plans an update of `current`.
pub fn plan_update(current: &ManagedCluster, update: ClusterUpdate, now: OffsetDateTime, by: Option<Uuid>) -> Result<ClusterWrite> {
    if update.location.as_deref().map(validate_location).transpose()?.is_some_and(|l| l != current.location) {
        return Err(unchangeable("location"));
    }
    if update.node_resource_group.as_ref().is_some_and(|n| !n.eq_ignore_ascii_case(&current.node_resource_group)) {
        return Err(unchangeable("nodeResourceGroup"));
    }
    if update.network_plugin.is_some_and(|p| p != current.network_plugin) {
        return Err(unchangeable("networkProfile.networkPlugin"));
    }
    if let Some(sent) = &update.addons {
        check_unchanged(&current.addons, sent)?;
    }
    if let Some(pools) = &update.agent_pools {
        validate_agent_pools(pools)?;
    }
    if let Some(n) = &update.network {
        let was = &current.network;
        for (property, new, old) in [
            ("networkProfile.serviceCidr", &n.service_cidr, &was.service_cidr),
            ("networkProfile.dnsServiceIP", &n.dns_service_ip, &was.dns_service_ip),
            ("networkProfile.dockerBridgeCidr", &n.docker_bridge_cidr, &was.docker_bridge_cidr),
            ("networkProfile.podCidr", &n.pod_cidr, &was.pod_cidr),
            ("agentPoolProfiles.vnetSubnetID", &n.vnet_subnet_id, &was.vnet_subnet_id),
        ] {
            if new.as_ref().is_some_and(|v| Some(v) != old.as_ref()) {
                return Err(unchangeable(property));
            }
        }
    }
    let mut w = ClusterWrite { cluster: current.clone(), node_group: None, identities: Vec::new(), principals: Vec::new(), assignments: Vec::new() };
    match (update.identity, &current.control_plane) {
        (None, _) => {
            if update.kubelet.is_some() {
                return Err(Error::InvalidArgument(KUBELET_NEEDS_CONTROL_PLANE.into()));
            }
        }
        (Some(IdentityChoice::ServicePrincipal { .. }), _) => {
            return Err(Error::InvalidArgument(
                "a cluster's service principal is changed with 'kite aks update-credentials --reset-service-principal', not with an update".into(),
            ))
        }
        (Some(choice), ControlPlane::ServicePrincipal { .. }) => {
            if update.kubelet.is_some() && !matches!(choice, IdentityChoice::UserAssigned(_)) {
                return Err(Error::InvalidArgument(KUBELET_NEEDS_CONTROL_PLANE.into()));
            }
            let node_group = ResourceGroup::new(current.subscription_id, &current.node_resource_group, &current.location, Default::default())?;
            managed_identities(&mut w, choice, update.kubelet, &node_group, now, by)?;
        }
        (Some(IdentityChoice::SystemAssigned), ControlPlane::SystemAssigned { .. }) => {}
        (Some(IdentityChoice::UserAssigned(mi)), ControlPlane::UserAssigned(r)) if r.resource_id.eq_ignore_ascii_case(&mi.id()) => {}
        (Some(_), _) => {
            return Err(Error::InvalidArgument(
                "this cluster already uses a managed identity; kite only migrates service-principal clusters to one (a cluster's managed identity cannot be replaced)".into(),
            ))
        }
    }
    if let Some(pools) = update.agent_pools {
        w.cluster.agent_pools = pools;
    }
    if let Some((enabled, entries)) = update.pod_identity {
        if enabled && current.network_plugin == NetworkPlugin::Kubenet {
            return Err(Error::InvalidArgument(KUBENET_POD_IDENTITY.into()));
        }
        if !enabled && !entries.is_empty() {
            return Err(Error::InvalidArgument(
                "The pod identity addon is not enabled for this managed cluster yet. To enable, run 'kite aks update --enable-pod-identity'".into(),
            ));
        }
        for (i, p) in entries.iter().enumerate() {
            validate_k8s_name("name", &p.name)?;
            validate_k8s_name("namespace", &p.namespace)?;
            if entries[..i].iter().any(|q| q.name == p.name && q.namespace == p.namespace) {
                return Err(Error::Conflict(format!("pod identity {}/{} is given twice; names are unique per namespace", p.namespace, p.name)));
            }
        }
        w.cluster.pod_identity_enabled = enabled;
        w.cluster.pod_identities = entries;
    }
    Ok(w)
}

/// `aks update-credentials --reset-service-principal`: the cluster signs in with this app and secret from now on.
pub fn reset_service_principal(current: &ManagedCluster, app: &Application, secret: &str, now: OffsetDateTime, by: Option<Uuid>) -> Result<ClusterWrite> {
    let ControlPlane::ServicePrincipal { client_id, .. } = current.control_plane else {
        return Err(Error::InvalidArgument(format!(
            "cluster '{}' uses a managed identity, whose credentials Azure rotates itself; --reset-service-principal applies to service-principal clusters only",
            current.name
        )));
    };
    check_secret(app, secret, now)?;
    let mut w = ClusterWrite { cluster: current.clone(), node_group: None, identities: Vec::new(), principals: Vec::new(), assignments: Vec::new() };
    w.cluster.control_plane = ControlPlane::ServicePrincipal { client_id: app.app_id, object_id: app.principal_id };
    if client_id != app.app_id {
        w.assignments.push(assignment(app.principal_id, CONTRIBUTOR, current.node_group_scope()?, now, by));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::credential::PasswordCredential;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-23 09:00 UTC);

    fn group() -> ResourceGroup {
        ResourceGroup::new(Uuid::from_u128(7), "myResourceGroup", "westus2", BTreeMap::new()).unwrap()
    }

    fn spec(identity: IdentityChoice) -> ClusterSpec {
        ClusterSpec {
            network: NetworkSettings::default(),
            addons: BTreeMap::new(),
            agent_pools: Vec::new(),
            name: "myManagedCluster".into(),
            location: None,
            identity,
            kubelet: None,
            network_plugin: Some(NetworkPlugin::Azure),
            enable_pod_identity: false,
            node_resource_group: None,
        }
    }

    #[test]
    fn add_ons_get_their_identities_as_aks_names_them_with_seed_002s_roles() {
        let mut s = spec(IdentityChoice::SystemAssigned);
        let on = |enabled| crate::addons::Addon { enabled, ..Default::default() };
        s.addons = [
            ("ingressApplicationGateway", on(true)),
            ("omsagent", on(true)),
            ("azureKeyvaultSecretsProvider", on(true)),
            ("azurepolicy", on(true)),
            ("aciConnectorLinux", on(false)),
        ]
        .into_iter()
        .map(|(k, a)| (k.to_string(), a))
        .collect();
        let w = plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap();
        let node = w.node_group.as_ref().unwrap();
        let names: Vec<&str> = w.identities.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "myManagedCluster-agentpool",
                "azurekeyvaultsecretsprovider-myManagedCluster",
                "ingressapplicationgateway-myManagedCluster",
                "omsagent-myManagedCluster"
            ]
        );
        assert!(w.identities.iter().all(|m| m.resource_group == node.name));
        let holds = |identity: &str| -> Vec<(Uuid, String)> {
            let mi = w.identities.iter().find(|m| m.name == identity).unwrap();
            w.assignments.iter().filter(|a| a.principal_id == mi.principal_id).map(|a| (a.role_definition_id, a.scope.to_string())).collect()
        };
        assert_eq!(holds("ingressapplicationgateway-myManagedCluster"), vec![(CONTRIBUTOR, node.scope().to_string())]);
        assert_eq!(holds("omsagent-myManagedCluster"), vec![(crate::addons::MONITORING_METRICS_PUBLISHER, Scope::parse(&w.cluster.id()).unwrap().to_string())]);
        assert_eq!(holds("azurekeyvaultsecretsprovider-myManagedCluster"), vec![]);
        assert_eq!(w.cluster.addons["omsagent"].identity.as_ref().unwrap().client_id, w.identities[3].client_id);
        assert!(w.cluster.addons["azurepolicy"].identity.is_none() && w.cluster.addons["aciConnectorLinux"].identity.is_none());
        // An update sends them back unchanged; it does not enable or disable one.
        let same = w.cluster.addons.clone();
        plan_update(&w.cluster, ClusterUpdate { addons: Some(same.clone()), ..Default::default() }, NOW, None).unwrap();
        let mut more = same;
        more.insert("aciConnectorLinux".into(), on(true));
        let e = plan_update(&w.cluster, ClusterUpdate { addons: Some(more), ..Default::default() }, NOW, None).unwrap_err();
        assert!(e.to_string().contains("--enable-addons"), "{e}");
    }

    #[test]
    fn agent_pools_are_kept_as_given_once_their_names_are_checked() {
        let mut s = spec(IdentityChoice::SystemAssigned);
        let pool = serde_json::json!({"name": "nodepool1", "count": 3, "vmSize": "Standard_DS2_v2", "mode": "System"});
        s.agent_pools = vec![pool.clone()];
        let w = plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap();
        assert_eq!(w.cluster.agent_pools, vec![pool.clone()]);
        for (pools, says) in [
            (vec![serde_json::json!({"count": 1})], "has no name"),
            (vec![serde_json::json!({"name": "Pool_1"})], "'Pool_1' is invalid"),
            (vec![pool.clone(), pool.clone()], "given twice"),
        ] {
            let e = plan_update(&w.cluster, ClusterUpdate { agent_pools: Some(pools), ..Default::default() }, NOW, None).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let more = vec![pool, serde_json::json!({"name": "user1", "count": 1})];
        assert_eq!(
            plan_update(&w.cluster, ClusterUpdate { agent_pools: Some(more.clone()), ..Default::default() }, NOW, None).unwrap().cluster.agent_pools,
            more
        );
    }

    #[test]
    fn the_network_profile_is_checked_at_create_kept_and_not_changed_by_an_update() {
        let mut s = spec(IdentityChoice::SystemAssigned);
        s.network = NetworkSettings { service_cidr: Some("10.2.0.0/24".into()), dns_service_ip: Some("10.3.0.10".into()), ..Default::default() };
        assert!(plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap_err().to_string().contains("not within serviceCidr"));
        let mut s = spec(IdentityChoice::SystemAssigned);
        let network = NetworkSettings { service_cidr: Some("10.2.0.0/24".into()), dns_service_ip: Some("10.2.0.10".into()), ..Default::default() };
        s.network = network.clone();
        let w = plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap();
        assert_eq!(w.cluster.network, network);
        plan_update(&w.cluster, ClusterUpdate { network: Some(network.clone()), ..Default::default() }, NOW, None).unwrap();
        let moved = NetworkSettings { service_cidr: Some("10.9.0.0/24".into()), ..network };
        let e = plan_update(&w.cluster, ClusterUpdate { network: Some(moved), ..Default::default() }, NOW, None).unwrap_err();
        assert!(e.to_string().contains("networkProfile.serviceCidr"), "{e}");
    }

    #[test]
    fn role_ids_are_the_built_in_roles() {
        let id = |name: &str| crate::rbac::builtin_roles().iter().find(|r| r.role_name == name).map(|r| r.name);
        assert_eq!(id("Contributor"), Some(CONTRIBUTOR));
        assert_eq!(id("Managed Identity Operator"), Some(MANAGED_IDENTITY_OPERATOR));
    }

    #[test]
    fn a_managed_identity_cluster_brings_its_node_group_identities_and_contributor() {
        let w = plan_create(&group(), spec(IdentityChoice::SystemAssigned), Uuid::from_u128(9), NOW, None).unwrap();
        let node = w.node_group.as_ref().unwrap();
        assert_eq!(node.name, "MC_myResourceGroup_myManagedCluster_westus2");
        assert_eq!(node.managed_by.as_deref(), Some(w.cluster.id().as_str()));
        assert_eq!(w.principals.len(), 1);
        assert_eq!(w.identities[0].name, "myManagedCluster-agentpool");
        assert_eq!(w.identities[0].resource_group, node.name);
        assert_eq!(w.cluster.kubelet.as_ref().unwrap().client_id, w.identities[0].client_id);
        let a = &w.assignments[0];
        assert_eq!((a.principal_id, a.role_definition_id, a.scope.clone()), (w.principals[0].object_id, CONTRIBUTOR, node.scope()));
    }

    #[test]
    fn kubelet_identity_needs_a_user_assigned_control_plane_and_kubenet_refuses_pod_identity() {
        let kubelet = ManagedIdentity::new(&group(), "kubelet", None, Uuid::nil()).unwrap();
        let mut s = spec(IdentityChoice::SystemAssigned);
        s.kubelet = Some(kubelet.clone());
        assert_eq!(plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap_err(), Error::InvalidArgument(KUBELET_NEEDS_CONTROL_PLANE.into()));
        let own = ManagedIdentity::new(&group(), "control", None, Uuid::nil()).unwrap();
        let mut s = spec(IdentityChoice::UserAssigned(own.clone()));
        s.kubelet = Some(kubelet.clone());
        let w = plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap();
        assert!(w.identities.is_empty(), "no agentpool identity when one is given");
        assert_eq!(w.cluster.kubelet, Some(IdentityRef::from(&kubelet)));
        let held: Vec<(Uuid, Uuid, String)> = w.assignments.iter().map(|a| (a.principal_id, a.role_definition_id, a.scope.key().to_string())).collect();
        let node = format!("/subscriptions/{}/resourcegroups/mc_myresourcegroup_mymanagedcluster_westus2", Uuid::from_u128(7));
        assert_eq!(held, vec![(own.principal_id, MANAGED_IDENTITY_OPERATOR, kubelet.id().to_lowercase()), (own.principal_id, CONTRIBUTOR, node)]);
        let mut s = spec(IdentityChoice::SystemAssigned);
        (s.network_plugin, s.enable_pod_identity) = (Some(NetworkPlugin::Kubenet), true);
        assert_eq!(plan_create(&group(), s, Uuid::nil(), NOW, None).unwrap_err(), Error::InvalidArgument(KUBENET_POD_IDENTITY.into()));
    }

    #[test]
    fn service_principal_clusters_check_the_secret_and_migrate_to_a_managed_identity() {
        let mut app = Application::new("aks-sp", Uuid::nil(), None, NOW).unwrap();
        let secret = PasswordCredential::generate(NOW, NOW + time::Duration::days(30), None);
        app.password_credentials.push(secret.credential);
        let wrong = IdentityChoice::ServicePrincipal { app: app.clone(), secret: "nope".into() };
        assert!(plan_create(&group(), spec(wrong), Uuid::nil(), NOW, None).unwrap_err().to_string().contains("AADSTS7000215"));
        let right = IdentityChoice::ServicePrincipal { app: app.clone(), secret: secret.secret_text.clone() };
        let sp = plan_create(&group(), spec(right), Uuid::nil(), NOW, None).unwrap();
        assert!(sp.cluster.kubelet.is_none() && sp.identities.is_empty() && sp.principals.is_empty());
        assert_eq!(sp.assignments[0].principal_id, app.principal_id);
        let later = NOW + time::Duration::days(31);
        assert!(reset_service_principal(&sp.cluster, &app, &secret.secret_text, later, None).unwrap_err().to_string().contains("AADSTS7000222"));

        let update = ClusterUpdate { identity: Some(IdentityChoice::SystemAssigned), ..Default::default() };
        let migrated = plan_update(&sp.cluster, update, NOW, None).unwrap();
        assert!(matches!(migrated.cluster.control_plane, ControlPlane::SystemAssigned { .. }));
        assert_eq!(migrated.identities[0].name, "myManagedCluster-agentpool");
        assert_eq!(migrated.assignments[0].principal_id, migrated.cluster.control_plane.object_id());
        let again = ClusterUpdate { identity: Some(IdentityChoice::SystemAssigned), ..Default::default() };
        assert!(plan_update(&migrated.cluster, again, NOW, None).unwrap().principals.is_empty(), "re-applying is a no-op");
        assert!(reset_service_principal(&migrated.cluster, &app, &secret.secret_text, NOW, None).is_err());
    }

    #[test]
    fn updates_refuse_unchangeable_properties_and_bad_pod_identities() {
        let w = plan_create(&group(), spec(IdentityChoice::SystemAssigned), Uuid::nil(), NOW, None).unwrap();
        let moved = ClusterUpdate { location: Some("japaneast".into()), ..Default::default() };
        assert!(plan_update(&w.cluster, moved, NOW, None).unwrap_err().to_string().contains("'location'"));
        let mi = ManagedIdentity::new(&group(), "pod-id", None, Uuid::nil()).unwrap();
        let entry = PodIdentity { name: "azure-vote".into(), namespace: "default".into(), identity: IdentityRef::from(&mi), binding_selector: None };
        let twice = ClusterUpdate { pod_identity: Some((true, vec![entry.clone(), entry.clone()])), ..Default::default() };
        assert!(matches!(plan_update(&w.cluster, twice, NOW, None), Err(Error::Conflict(_))));
        let disabled = ClusterUpdate { pod_identity: Some((false, vec![entry.clone()])), ..Default::default() };
        assert!(plan_update(&w.cluster, disabled, NOW, None).unwrap_err().to_string().contains("not enabled"));
        let ok = plan_update(&w.cluster, ClusterUpdate { pod_identity: Some((true, vec![entry.clone()])), ..Default::default() }, NOW, None).unwrap();
        assert_eq!(ok.cluster.pod_identities[0].selector(), "azure-vote");
        assert!(parse_identity_id(&mi.id()).is_ok_and(|(_, rg, name)| rg == "myResourceGroup" && name == "pod-id"));
        assert!(parse_identity_id("/subscriptions/x/resourceGroups/rg").is_err());
    }
}
