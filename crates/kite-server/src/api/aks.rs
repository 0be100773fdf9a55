//! `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}`:
//! AKS-shaped clusters. A PUT creates a cluster (with its node resource group and identities, as
//! kite-core plans it) or updates an existing one, as ARM's create-or-update does.

use std::collections::BTreeMap;

use axum::extract::State;

use super::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kite_core::addons::Addon;
use kite_core::aks::{
    parse_identity_id, plan_create, plan_update, reset_service_principal, validate_cluster_name, ClusterSpec, ClusterUpdate, ControlPlane, IdentityChoice,
    IdentityRef, ManagedCluster, NetworkPlugin, PodIdentity, MSI, TYPE,
};
use kite_core::directory::{ManagedIdentity, ResourceGroup};
use kite_core::network::NetworkSettings;
use kite_core::Scope;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{groups, respond, Body};
use crate::api::auth::{authorize, Caller, CallerAccess};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

fn render_ref(r: &IdentityRef) -> Value {
    json!({"resourceId": r.resource_id, "clientId": r.client_id, "objectId": r.object_id})
}

/// A cluster as ARM returns it (az folds `properties` in when it prints).
pub fn render(c: &ManagedCluster) -> Value {
    let identity = match &c.control_plane {
        ControlPlane::SystemAssigned { principal_id, .. } => {
            json!({"type": "SystemAssigned", "principalId": principal_id, "tenantId": c.tenant_id, "userAssignedIdentities": null})
        }
        ControlPlane::UserAssigned(r) => json!({
            "type": "UserAssigned", "principalId": null, "tenantId": null,
            "userAssignedIdentities": {r.resource_id.clone(): {"clientId": r.client_id, "principalId": r.object_id}},
        }),
        ControlPlane::ServicePrincipal { .. } => Value::Null,
    };
    let sp_client_id = match &c.control_plane {
        ControlPlane::ServicePrincipal { client_id, .. } => client_id.to_string(),
        _ => MSI.to_string(),
    };
    let pods: Vec<Value> = c
        .pod_identities
        .iter()
        .map(|p| {
            json!({"name": p.name, "namespace": p.namespace, "identity": render_ref(&p.identity),
                   "bindingSelector": p.binding_selector, "provisioningState": "Assigned"})
        })
        .collect();
    json!({
        "id": c.id(),
        "name": c.name,
        "type": TYPE,
        "location": c.location,
        "identity": identity,
        "properties": {
            "provisioningState": "Succeeded",
            "nodeResourceGroup": c.node_resource_group,
            "servicePrincipalProfile": {"clientId": sp_client_id},
            "identityProfile": c.kubelet.as_ref().map(|k| json!({"kubeletidentity": render_ref(k)})),
            "networkProfile": network_profile(c),
            "addonProfiles": if c.addons.is_empty() { Value::Null } else { json!(c.addons) },
            "agentPoolProfiles": if c.agent_pools.is_empty() { Value::Null } else { json!(c.agent_pools) },
            "podIdentityProfile": {"enabled": c.pod_identity_enabled, "userAssignedIdentities": pods},
        },
    })
}

fn network_profile(c: &ManagedCluster) -> Value {
    let n = &c.network;
    let mut profile = json!({"networkPlugin": c.network_plugin.as_str()});
    for (key, value) in
        [("serviceCidr", &n.service_cidr), ("dnsServiceIP", &n.dns_service_ip), ("dockerBridgeCidr", &n.docker_bridge_cidr), ("podCidr", &n.pod_cidr)]
    {
        if let Some(v) = value {
            profile[key] = json!(v);
        }
    }
    profile
}

fn scope_of(sub: &Uuid, rg: &str, name: &str) -> ApiResult<Scope> {
    Ok(Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{TYPE}/{name}"))?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user_assigned_identities: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalBody {
    client_id: String,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdBody {
    resource_id: String,
}

#[derive(Deserialize)]
pub struct IdentityProfileBody {
    kubeletidentity: ResourceIdBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfileBody {
    #[serde(default)]
    network_plugin: Option<String>,
    #[serde(default)]
    service_cidr: Option<String>,
    #[serde(default, rename = "dnsServiceIP")]
    dns_service_ip: Option<String>,
    #[serde(default)]
    docker_bridge_cidr: Option<String>,
    #[serde(default)]
    pod_cidr: Option<String>,
}

#[derive(Deserialize, Clone)]
pub struct AgentPoolBody {
    #[serde(default, rename = "vnetSubnetID")]
    vnet_subnet_id: Option<String>,
    /// The pool as sent, kept.
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl AgentPoolBody {
    fn as_sent(&self) -> Value {
        let mut pool = Value::Object(self.rest.clone());
        if let Some(subnet) = &self.vnet_subnet_id {
            pool["vnetSubnetID"] = json!(subnet);
        }
        pool
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityBody {
    name: String,
    namespace: String,
    identity: ResourceIdBody,
    #[serde(default)]
    binding_selector: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityProfileBody {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    user_assigned_identities: Vec<PodIdentityBody>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PropertiesBody {
    #[serde(default)]
    service_principal_profile: Option<ServicePrincipalBody>,
    #[serde(default)]
    identity_profile: Option<IdentityProfileBody>,
    #[serde(default)]
    node_resource_group: Option<String>,
    #[serde(default)]
    network_profile: Option<NetworkProfileBody>,
    #[serde(default)]
    pod_identity_profile: Option<PodIdentityProfileBody>,
    #[serde(default)]
    agent_pool_profiles: Option<Vec<AgentPoolBody>>,
    #[serde(default)]
    addon_profiles: Option<BTreeMap<String, Addon>>,
}

impl PropertiesBody {
    fn agent_pools(&self) -> Option<Vec<Value>> {
        self.agent_pool_profiles.as_ref().map(|pools| pools.iter().map(AgentPoolBody::as_sent).collect())
    }

    /// The network settings the body gives, if it gives any.
    fn network(&self) -> Option<NetworkSettings> {
        let subnet = self.agent_pool_profiles.iter().flatten().find_map(|p| p.vnet_subnet_id.clone());
        if self.network_profile.is_none() && subnet.is_none() {
            return None;
        }
        let n = self.network_profile.as_ref();
        Some(NetworkSettings {
            service_cidr: n.and_then(|n| n.service_cidr.clone()),
            dns_service_ip: n.and_then(|n| n.dns_service_ip.clone()),
            docker_bridge_cidr: n.and_then(|n| n.docker_bridge_cidr.clone()),
            pod_cidr: n.and_then(|n| n.pod_cidr.clone()),
            vnet_subnet_id: subnet,
        })
    }
}

#[derive(Deserialize)]
pub struct ClusterBody {
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    identity: Option<IdentityBody>,
    #[serde(default)]
    properties: PropertiesBody,
}

/// A user-assigned identity named by resource ID, which the caller must be allowed to assign (as ARM checks).
async fn assignable_identity(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ManagedIdentity> {
    let (sub, rg, name) = parse_identity_id(id)?;
    let sub = state.subscription(&sub.to_string())?;
    let mi = state.store.get_identity(&sub, &rg, &name).await.map_err(|e| match e {
        kite_store::Error::NotFound(m) => ApiError::bad_request("InvalidUserAssignedIdentity", m),
        other => other.into(),
    })?;
    let scope = Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"))?;
    authorize(state, caller, "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", &scope).await?;
    Ok(mi)
}

/// The control-plane identity a body asks for; `None` when it names none (or only restates a managed identity).
async fn identity_choice(state: &AppState, caller: &Caller, body: &ClusterBody) -> ApiResult<Option<IdentityChoice>> {
    if let Some(sp) = &body.properties.service_principal_profile {
        if let (Some(secret), false) = (&sp.secret, sp.client_id == MSI) {
            if body.identity.as_ref().is_some_and(|i| !i.kind.eq_ignore_ascii_case("none")) {
                return Err(ApiError::bad_request(
                    "InvalidIdentity",
                    "a cluster uses a service principal or a managed identity, not both: drop servicePrincipalProfile.secret or identity",
                ));
            }
            let app_id = Uuid::parse_str(&sp.client_id).map_err(|_| {
                ApiError::bad_request(
                    "InvalidServicePrincipalProfile",
                    format!("servicePrincipalProfile.clientId '{}' is not an appId (a GUID) or 'msi'", sp.client_id),
                )
            })?;
            let app = state.store.get_application(&app_id).await.map_err(|e| match e {
                kite_store::Error::NotFound(_) => ApiError::bad_request(
                    "ServicePrincipalNotFound",
                    format!(
                        "Service principal clientID: {app_id} not found in Active Directory tenant {}; list them with 'kite ad sp list'",
                        state.tenant.tenant_id
                    ),
                ),
                other => other.into(),
            })?;
            return Ok(Some(IdentityChoice::ServicePrincipal { app, secret: secret.clone() }));
        }
    }
    let Some(identity) = &body.identity else {
        return Ok(None);
    };
    match identity.kind.to_ascii_lowercase().as_str() {
        "systemassigned" => Ok(Some(IdentityChoice::SystemAssigned)),
        "userassigned" => {
            let ids: Vec<&String> = identity.user_assigned_identities.keys().collect();
            let [id] = ids.as_slice() else {
                return Err(ApiError::bad_request(
                    "InvalidIdentity",
                    format!("a cluster takes exactly one user-assigned control-plane identity; {} given", ids.len()),
                ));
            };
            Ok(Some(IdentityChoice::UserAssigned(assignable_identity(state, caller, id).await?)))
        }
        "none" => Ok(None),
        other => Err(ApiError::bad_request("InvalidIdentityType", format!("identity type '{other}' is not one of SystemAssigned, UserAssigned"))),
    }
}

async fn pod_identities(state: &AppState, entries: &[PodIdentityBody]) -> ApiResult<Vec<PodIdentity>> {
    let mut out = Vec::new();
    for e in entries {
        let (sub, rg, name) = parse_identity_id(&e.identity.resource_id)?;
        let mi = state.store.get_identity(&state.subscription(&sub.to_string())?, &rg, &name).await.map_err(|err| match err {
            kite_store::Error::NotFound(m) => ApiError::bad_request("InvalidUserAssignedIdentity", format!("pod identity {}/{}: {m}", e.namespace, e.name)),
            other => other.into(),
        })?;
        out.push(PodIdentity {
            name: e.name.clone(),
            namespace: e.namespace.clone(),
            identity: IdentityRef::from(&mi),
            binding_selector: e.binding_selector.clone().filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

fn not_found(e: kite_store::Error) -> ApiError {
    match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("ResourceNotFound", m),
        other => other.into(),
    }
}

/// Creates the cluster, or updates it when it exists (ARM's create-or-update).
/// What a PUT asks for, with every identity it names resolved and checked for the caller.
struct Requested {
    location: Option<String>,
    node_resource_group: Option<String>,
    identity: Option<IdentityChoice>,
    kubelet: Option<ManagedIdentity>,
    network_plugin: Option<NetworkPlugin>,
    network: Option<NetworkSettings>,
    addons: Option<BTreeMap<String, Addon>>,
    agent_pools: Option<Vec<Value>>,
    pod_identity: Option<(bool, Vec<PodIdentity>)>,
}

async fn requested(state: &AppState, caller: &Caller, body: &ClusterBody) -> ApiResult<Requested> {
    let kubelet = match &body.properties.identity_profile {
        Some(p) => Some(assignable_identity(state, caller, &p.kubeletidentity.resource_id).await?),
        None => None,
    };
    let pod_identity = match &body.properties.pod_identity_profile {
        Some(p) => Some((p.enabled, pod_identities(state, &p.user_assigned_identities).await?)),
        None => None,
    };
    Ok(Requested {
        location: body.location.clone(),
        node_resource_group: body.properties.node_resource_group.clone(),
        identity: identity_choice(state, caller, body).await?,
        kubelet,
        network_plugin: body.properties.network_profile.as_ref().and_then(|n| n.network_plugin.as_deref()).map(NetworkPlugin::parse).transpose()?,
        network: body.properties.network(),
        addons: body.properties.addon_profiles.clone(),
        agent_pools: body.properties.agent_pools(),
        pod_identity,
    })
}

async fn create(state: &AppState, caller: &Caller, group: &ResourceGroup, name: String, r: Requested) -> ApiResult<ManagedCluster> {
    let (now, by) = (caller.now, Some(caller.object_id));
    let (enable_pod_identity, pods) = r.pod_identity.unwrap_or_default();
    let spec = ClusterSpec {
        name,
        location: r.location,
        identity: r.identity.unwrap_or(IdentityChoice::SystemAssigned),
        kubelet: r.kubelet,
        network_plugin: r.network_plugin,
        enable_pod_identity,
        node_resource_group: r.node_resource_group,
        network: r.network.unwrap_or_default(),
        addons: r.addons.unwrap_or_default(),
        agent_pools: r.agent_pools.unwrap_or_default(),
    };
    let mut w = plan_create(group, spec, state.tenant.tenant_id, now, by)?;
    if !pods.is_empty() {
        // Entries given at create are checked as any later change to them is.
        let update = ClusterUpdate { pod_identity: Some((enable_pod_identity, pods)), ..Default::default() };
        w.cluster = plan_update(&w.cluster, update, now, by)?.cluster;
    }
    state.store.create_managed_cluster(&w).await?;
    tracing::info!(cluster = %w.cluster.id(), by = %caller.object_id, node_group = %w.cluster.node_resource_group, "managed cluster created");
    Ok(w.cluster)
}

async fn update(state: &AppState, caller: &Caller, (sub, rg, name): (&Uuid, &str, &str), r: Requested) -> ApiResult<ManagedCluster> {
    let (now, by) = (caller.now, Some(caller.object_id));
    let update = ClusterUpdate {
        location: r.location,
        node_resource_group: r.node_resource_group,
        network_plugin: r.network_plugin,
        identity: r.identity,
        kubelet: r.kubelet,
        pod_identity: r.pod_identity,
        network: r.network,
        addons: r.addons,
        agent_pools: r.agent_pools,
    };
    state.store.update_managed_cluster(sub, rg, name, &|c| Ok(plan_update(&c, update.clone(), now, by)?)).await.map_err(not_found)
}

/// Creates the cluster (201) or updates it in place (200), as ARM's PUT does.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Body(body): Body<ClusterBody>,
) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    validate_cluster_name(&name)?;
    authorize(&state, &caller, &format!("{TYPE}/write"), &scope_of(&sub, &rg, &name)?).await?;
    let group = groups::existing(&state, &sub, &rg).await?;
    let request = requested(&state, &caller, &body).await?;
    let (status, cluster) = match state.store.get_managed_cluster(&sub, &rg, &name).await {
        Err(kite_store::Error::NotFound(_)) => (StatusCode::CREATED, create(&state, &caller, &group, name, request).await?),
        Err(e) => return Err(e.into()),
        Ok(_) => (StatusCode::OK, update(&state, &caller, (&sub, &rg, &name), request).await?),
    };
    state.clients.changed(state.store.as_ref()).await;
    Ok(respond(status, render(&cluster)))
}

pub async fn get(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &scope_of(&sub, &rg, &name)?).await?;
    groups::existing(&state, &sub, &rg).await?;
    Ok(Json(render(&state.store.get_managed_cluster(&sub, &rg, &name).await.map_err(not_found)?)))
}

pub async fn list_in_group(State(state): State<AppState>, caller: Caller, Path((sub, rg)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/read"), &Scope::resource_group(&sub, &rg)?).await?;
    groups::existing(&state, &sub, &rg).await?;
    let all = state.store.list_managed_clusters(&sub, Some(&rg)).await?;
    Ok(Json(json!({"value": all.iter().map(render).collect::<Vec<_>>()})))
}

pub async fn list_in_subscription(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> ApiResult<Json<Value>> {
    let sub = state.subscription(&sub)?;
    let access = CallerAccess::load(&state, &caller).await?;
    let all = state.store.list_managed_clusters(&sub, None).await?;
    let visible = access.permitted(all, &format!("{TYPE}/read"), |c| scope_of(&sub, &c.resource_group, &c.name))?;
    Ok(Json(json!({ "value": visible.iter().map(render).collect::<Vec<_>>() })))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path((sub, rg, name)): Path<(String, String, String)>) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/delete"), &scope_of(&sub, &rg, &name)?).await?;
    let gone = state.store.delete_managed_cluster(&sub, &rg, &name).await.map_err(not_found)?;
    state.clients.changed(state.store.as_ref()).await;
    tracing::info!(cluster = %name, group = %rg, identities = gone.identities, assignments = gone.role_assignments, "managed cluster deleted");
    Ok(respond(StatusCode::OK, json!({"deleted": gone})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetBody {
    client_id: Uuid,
    secret: String,
}

/// `POST …/resetServicePrincipalProfile` (`az aks update-credentials --reset-service-principal`).
pub async fn reset_service_principal_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Body(body): Body<ResetBody>,
) -> ApiResult<Response> {
    let sub = state.subscription(&sub)?;
    authorize(&state, &caller, &format!("{TYPE}/resetServicePrincipalProfile/action"), &scope_of(&sub, &rg, &name)?).await?;
    let app = state.store.get_application(&body.client_id).await.map_err(|e| match e {
        kite_store::Error::NotFound(m) => ApiError::bad_request("ServicePrincipalNotFound", m),
        other => other.into(),
    })?;
    let (now, by) = (caller.now, Some(caller.object_id));
    let cluster =
        state.store.update_managed_cluster(&sub, &rg, &name, &|c| Ok(reset_service_principal(&c, &app, &body.secret, now, by)?)).await.map_err(not_found)?;
    tracing::info!(cluster = %cluster.id(), app = %app.app_id, by = %caller.object_id, "cluster service principal reset");
    Ok(respond(StatusCode::OK, render(&cluster)))
}
