//! `kite aks …`: AKS-shaped clusters, as az's `aks` commands drive ARM, printed as az prints them
//! (properties folded in, with the resource group). `pod-identity add|delete`
//! are read-modify-writes of the cluster as az does them, and with `--pod-identity-dir` (or
//! `--kubeconfig`/`--in-cluster`) also write the objects the add-on would create in the cluster,
//! where `kite serve --pod-identity-dir` (or `--kubeconfig`) reads them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use kite_k8s::podidentity::{AzureIdentity, AzureIdentityBinding};
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::ClusterArgs;
use crate::client::Client;
use crate::files::replace_file;
use crate::output::{print, Format};
use crate::view::{identity_view, list_of};

#[derive(Args)]
pub struct ClusterRef {
    #[arg(short = 'g', long)]
    resource_group: String,
    #[arg(short = 'n', long)]
    name: String,
}

/// The cluster's identities, as `az aks create` and `az aks update` take them.
#[derive(Args)]
pub struct IdentityArgs {
    /// Use a managed identity (system-assigned unless --assign-identity); on create the default
    /// unless --service-principal is given, on update the move from a service principal.
    #[arg(long)]
    enable_managed_identity: bool,
    /// Resource ID of a user-assigned identity for the control plane.
    #[arg(long)]
    assign_identity: Option<String>,
    /// Resource ID of a user-assigned identity for the kubelet (needs --assign-identity).
    #[arg(long)]
    assign_kubelet_identity: Option<String>,
}

impl IdentityArgs {
    /// The ARM `identity` these flags ask for, if they ask for one.
    fn identity(&self) -> Option<Value> {
        match (&self.assign_identity, self.enable_managed_identity) {
            (Some(id), _) => Some(json!({"type": "UserAssigned", "userAssignedIdentities": {id.as_str(): {}}})),
            (None, true) => Some(json!({"type": "SystemAssigned"})),
            (None, false) => None,
        }
    }

    fn identity_profile(&self) -> Option<Value> {
        self.assign_kubelet_identity.as_ref().map(|id| json!({"kubeletidentity": {"resourceId": id}}))
    }
}

#[derive(Subcommand)]
pub enum AksCmd {
    /// Create a cluster with its node resource group, control-plane identity and kubelet identity.
    Create {
        #[command(flatten)]
        cluster: ClusterRef,
        #[arg(short = 'l', long)]
        location: Option<String>,
        #[command(flatten)]
        identity: IdentityArgs,
        /// The appId of a service principal for the control plane, with --client-secret.
        #[arg(long)]
        service_principal: Option<String>,
        #[arg(long)]
        client_secret: Option<String>,
        /// azure or kubenet (default kubenet).
        #[arg(long)]
        network_plugin: Option<String>,
        #[arg(long)]
        enable_pod_identity: bool,
        /// Default: MC_{group}_{cluster}_{location}.
        #[arg(long)]
        node_resource_group: Option<String>,
    },
    Show {
        #[command(flatten)]
        cluster: ClusterRef,
    },
    List {
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
    },
    /// Delete a cluster with its node resource group and identities.
    Delete {
        #[command(flatten)]
        cluster: ClusterRef,
        /// Accepted for az compatibility; kite does not prompt.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    Update {
        #[command(flatten)]
        cluster: ClusterRef,
        #[command(flatten)]
        identity: IdentityArgs,
        #[arg(long, conflicts_with = "disable_pod_identity")]
        enable_pod_identity: bool,
        #[arg(long)]
        disable_pod_identity: bool,
        /// Accepted for az compatibility; kite does not prompt.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Replace the cluster's service principal (or its secret) in place.
    UpdateCredentials {
        #[command(flatten)]
        cluster: ClusterRef,
        #[arg(long, required = true)]
        reset_service_principal: bool,
        #[arg(long)]
        service_principal: String,
        #[arg(long)]
        client_secret: String,
    },
    /// Pod identities of the pod-identity add-on.
    #[command(subcommand)]
    PodIdentity(PodIdentityCmd),
}

#[derive(Args)]
pub struct PodIdentityRef {
    #[arg(long)]
    cluster_name: String,
    #[arg(short = 'g', long)]
    resource_group: String,
    #[arg(long)]
    namespace: String,
    #[arg(short = 'n', long)]
    name: String,
    /// Where `kite serve --pod-identity-dir` reads cluster objects: the add-on's AzureIdentity and
    /// AzureIdentityBinding are written to (or removed from) DIR/{namespace}-{name}.yaml.
    #[arg(long, conflicts_with_all = ["kubeconfig", "in_cluster"])]
    pod_identity_dir: Option<PathBuf>,
    /// Or create (delete) them in a live cluster.
    #[command(flatten)]
    live: ClusterArgs,
}

#[derive(Subcommand)]
pub enum PodIdentityCmd {
    /// Add a pod identity and give the cluster identity Managed Identity Operator on it.
    Add {
        #[command(flatten)]
        pod: PodIdentityRef,
        #[arg(long)]
        identity_resource_id: String,
        /// The aadpodidbinding label value that selects it (default: the name).
        #[arg(long)]
        binding_selector: Option<String>,
    },
    Delete {
        #[command(flatten)]
        pod: PodIdentityRef,
    },
    List {
        #[arg(long)]
        cluster_name: String,
        #[arg(short = 'g', long)]
        resource_group: String,
    },
}

fn cluster_path(client: &Client, rg: &str, name: &str) -> Result<String> {
    Ok(format!("/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}", client.subscription()?))
}

/// The podIdentityProfile entries of a cluster answer, in the shape a PUT takes them.
fn pod_entries(cluster: &Value) -> Vec<Value> {
    let entries = cluster["properties"]["podIdentityProfile"]["userAssignedIdentities"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|e| json!({"name": e["name"], "namespace": e["namespace"], "identity": {"resourceId": e["identity"]["resourceId"]}, "bindingSelector": e["bindingSelector"]}))
        .collect()
}

fn addon_file(dir: &Path, namespace: &str, name: &str) -> PathBuf {
    dir.join(format!("{namespace}-{name}.yaml"))
}

pub async fn run(cmd: AksCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        AksCmd::Create { cluster, location, identity, service_principal, client_secret, network_plugin, enable_pod_identity, node_resource_group } => {
            let sp_profile = match (&service_principal, &client_secret) {
                (Some(_), _) if identity.identity().is_some() => {
                    bail!("give --service-principal or a managed identity (--enable-managed-identity/--assign-identity), not both")
                }
                (Some(sp), Some(secret)) => Some(json!({"clientId": sp, "secret": secret})),
                (Some(_), None) => bail!("--client-secret is required if --service-principal is specified"),
                (None, Some(_)) => bail!("--client-secret is given without --service-principal"),
                (None, None) => None,
            };
            // Without a service principal the cluster gets a system-assigned identity, as az does.
            let arm_identity = match (identity.identity(), &sp_profile) {
                (Some(chosen), _) => chosen,
                (None, None) => json!({"type": "SystemAssigned"}),
                (None, Some(_)) => Value::Null,
            };
            let body = json!({
                "location": location,
                "identity": arm_identity,
                "properties": {
                    "servicePrincipalProfile": sp_profile,
                    "identityProfile": identity.identity_profile(),
                    "nodeResourceGroup": node_resource_group,
                    "networkProfile": {"networkPlugin": network_plugin},
                    "podIdentityProfile": {"enabled": enable_pod_identity},
                },
            });
            let path = cluster_path(client, &cluster.resource_group, &cluster.name)?;
            // A PUT on an existing cluster updates it (and would reset what this create does not
            // restate), so create refuses to touch one, as az does. Any error reading it is left
            // to the PUT to report (a caller may write clusters without being allowed to read them).
            if client.call(Method::GET, &path, None).await.is_ok() {
                bail!(
                    "The cluster '{}' under resource group '{}' already exists; change it with 'kite aks update', or pick another name",
                    cluster.name,
                    cluster.resource_group
                );
            }
            identity_view(client.call(Method::PUT, &path, Some(&body)).await?)
        }
        AksCmd::Show { cluster } => identity_view(client.call(Method::GET, &cluster_path(client, &cluster.resource_group, &cluster.name)?, None).await?),
        AksCmd::List { resource_group } => {
            let sub = client.subscription()?.to_string();
            let path = match resource_group {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters"),
                None => format!("/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters"),
            };
            list_of(client.call(Method::GET, &path, None).await?, identity_view)
        }
        AksCmd::Delete { cluster, yes: _ } => {
            let out = client.call(Method::DELETE, &cluster_path(client, &cluster.resource_group, &cluster.name)?, None).await?;
            let gone = &out["deleted"];
            eprintln!(" - Deleted cluster '{}' with {} identit(ies) and {} role assignment(s)", cluster.name, gone["identities"], gone["roleAssignments"]);
            return Ok(ExitCode::SUCCESS);
        }
        AksCmd::Update { cluster, identity, enable_pod_identity, disable_pod_identity, yes: _ } => {
            let path = cluster_path(client, &cluster.resource_group, &cluster.name)?;
            let mut body = json!({"properties": {}});
            if let Some(chosen) = identity.identity() {
                body["identity"] = chosen;
            }
            if let Some(profile) = identity.identity_profile() {
                body["properties"]["identityProfile"] = profile;
            }
            if enable_pod_identity || disable_pod_identity {
                let current = client.call(Method::GET, &path, None).await?;
                let entries = if enable_pod_identity { pod_entries(&current) } else { Vec::new() };
                body["properties"]["podIdentityProfile"] = json!({"enabled": enable_pod_identity, "userAssignedIdentities": entries});
            }
            if body.get("identity").is_none() && body["properties"].as_object().is_some_and(|p| p.is_empty()) {
                bail!("nothing to update: give --enable-managed-identity, --assign-identity, --enable-pod-identity or --disable-pod-identity");
            }
            identity_view(client.call(Method::PUT, &path, Some(&body)).await?)
        }
        AksCmd::UpdateCredentials { cluster, reset_service_principal: _, service_principal, client_secret } => {
            let path = format!("{}/resetServicePrincipalProfile", cluster_path(client, &cluster.resource_group, &cluster.name)?);
            let body = json!({"clientId": service_principal, "secret": client_secret});
            identity_view(client.call(Method::POST, &path, Some(&body)).await?)
        }
        AksCmd::PodIdentity(PodIdentityCmd::Add { pod, identity_resource_id, binding_selector }) => {
            pod_identity_add(client, pod, &identity_resource_id, binding_selector).await?
        }
        AksCmd::PodIdentity(PodIdentityCmd::Delete { pod }) => pod_identity_delete(client, pod).await?,
        AksCmd::PodIdentity(PodIdentityCmd::List { cluster_name, resource_group }) => {
            identity_view(client.call(Method::GET, &cluster_path(client, &resource_group, &cluster_name)?, None).await?)
        }
    };
    print(v, format, query)
}

/// The control-plane identity's object id, which `az aks pod-identity add` gives Managed Identity Operator.
fn cluster_identity(cluster: &Value) -> Result<String> {
    let identity = &cluster["identity"];
    let found = match identity["type"].as_str() {
        Some("SystemAssigned") => identity["principalId"].as_str(),
        Some("UserAssigned") => identity["userAssignedIdentities"].as_object().and_then(|m| m.values().next()).and_then(|v| v["principalId"].as_str()),
        _ => None,
    };
    found.map(str::to_string).ok_or_else(|| {
        anyhow!("pod identities need a cluster with a managed identity; this one uses a service principal. Migrate it with 'kite aks update --enable-managed-identity'")
    })
}

/// Where the add-on's objects for a pod identity go, besides the cluster resource.
enum AddonTarget {
    None,
    Dir(PathBuf),
    Cluster(kite_kube::Client),
}

impl AddonTarget {
    /// Opened before the cluster resource changes, so a bad kubeconfig changes nothing.
    async fn open(pod: &PodIdentityRef) -> Result<AddonTarget> {
        Ok(match (pod.live.target(), pod.pod_identity_dir.clone()) {
            (Some(target), _) => AddonTarget::Cluster(kite_kube::client(&target).await?),
            (None, Some(dir)) => AddonTarget::Dir(dir),
            (None, None) => AddonTarget::None,
        })
    }

    async fn write(&self, identity: &AzureIdentity, binding: &AzureIdentityBinding) -> Result<()> {
        match self {
            AddonTarget::None => {}
            AddonTarget::Dir(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let yaml = kite_k8s::podidentity::aksaddon::to_yaml(identity, binding).map_err(|e| anyhow!("{e}"))?;
                replace_file(&addon_file(dir, &identity.metadata.namespace, &identity.metadata.name), &yaml)?;
            }
            AddonTarget::Cluster(client) => kite_kube::addon::apply(client, identity, binding).await?,
        }
        Ok(())
    }

    async fn remove(&self, namespace: &str, name: &str) -> Result<()> {
        match self {
            AddonTarget::None => {}
            AddonTarget::Dir(dir) => {
                let file = addon_file(dir, namespace, name);
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(anyhow!("removing {}: {e}", file.display())),
                }
            }
            AddonTarget::Cluster(client) => kite_kube::addon::remove(client, namespace, name).await?,
        }
        Ok(())
    }
}

/// The add-on's objects for pod identity `pod` as the cluster resource `updated` records it.
fn addon_objects(updated: &Value, pod: &PodIdentityRef) -> Result<(AzureIdentity, AzureIdentityBinding)> {
    let added = updated["properties"]["podIdentityProfile"]["userAssignedIdentities"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == json!(pod.name) && e["namespace"] == json!(pod.namespace)))
        .ok_or_else(|| anyhow!("the server's answer lacks pod identity {}/{}", pod.namespace, pod.name))?;
    let field =
        |v: &Value| v.as_str().map(str::to_string).ok_or_else(|| anyhow!("the server's answer lacks a field of pod identity {}/{}", pod.namespace, pod.name));
    let selector = added["bindingSelector"].as_str().unwrap_or(&pod.name).to_string();
    Ok(kite_k8s::podidentity::aksaddon::pod_identity_objects(
        &pod.namespace,
        &pod.name,
        &field(&added["identity"]["resourceId"])?,
        &field(&added["identity"]["clientId"])?,
        &selector,
    ))
}

async fn pod_identity_add(client: &mut Client, pod: PodIdentityRef, identity_id: &str, binding_selector: Option<String>) -> Result<Value> {
    let target = AddonTarget::open(&pod).await?;
    let path = cluster_path(client, &pod.resource_group, &pod.cluster_name)?;
    let cluster = client.call(Method::GET, &path, None).await?;
    if cluster["properties"]["podIdentityProfile"]["enabled"] != json!(true) {
        bail!("The pod identity addon is not enabled for this managed cluster yet.\nTo enable, run \"kite aks update --enable-pod-identity\"");
    }
    let assignee = cluster_identity(&cluster)?;
    // As az does: Managed Identity Operator on the identity, unless the cluster identity holds it there already.
    let assignments = format!("{}/providers/Microsoft.Authorization/roleAssignments", identity_id.trim_end_matches('/'));
    let query = [("principalId", assignee.clone()), ("role", "Managed Identity Operator".to_string()), ("includeInherited", "true".to_string())];
    let held = client.call_with(Method::GET, &assignments, &query, None).await?;
    if list_of(held, |a| a).as_array().is_none_or(|a| a.is_empty()) {
        let body = json!({"properties": {"roleDefinitionId": "Managed Identity Operator", "principalId": assignee}});
        client.call(Method::PUT, &format!("{assignments}/{}", uuid::Uuid::new_v4()), Some(&body)).await?;
    }
    let before = pod_entries(&cluster);
    let mut entries = before.clone();
    entries.push(json!({"name": pod.name, "namespace": pod.namespace, "identity": {"resourceId": identity_id}, "bindingSelector": binding_selector}));
    let body = json!({"properties": {"podIdentityProfile": {"enabled": true, "userAssignedIdentities": entries}}});
    let updated = client.call(Method::PUT, &path, Some(&body)).await?;
    let written = match addon_objects(&updated, &pod) {
        Ok((identity, binding)) => target.write(&identity, &binding).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        // The entry without its objects would make a retry fail as a duplicate: take it back.
        let body = json!({"properties": {"podIdentityProfile": {"enabled": true, "userAssignedIdentities": before}}});
        return Err(match client.call(Method::PUT, &path, Some(&body)).await {
            Ok(_) => e.context(format!("pod identity {}/{} was not added (cluster '{}' is as it was)", pod.namespace, pod.name, pod.cluster_name)),
            Err(undo) => e.context(format!(
                "pod identity {}/{} is recorded on cluster '{}' but its objects are not in the cluster, and taking the entry back failed ({undo}); \
                 remove it with 'kite aks pod-identity delete' and add it again",
                pod.namespace, pod.name, pod.cluster_name
            )),
        });
    }
    Ok(identity_view(updated))
}

async fn pod_identity_delete(client: &mut Client, pod: PodIdentityRef) -> Result<Value> {
    let target = AddonTarget::open(&pod).await?;
    let path = cluster_path(client, &pod.resource_group, &pod.cluster_name)?;
    let cluster = client.call(Method::GET, &path, None).await?;
    let mut entries = pod_entries(&cluster);
    let before = entries.len();
    entries.retain(|e| !(e["name"] == json!(pod.name) && e["namespace"] == json!(pod.namespace)));
    if entries.len() == before {
        bail!(
            "cluster '{}' has no pod identity {}/{}; list them with 'kite aks pod-identity list --cluster-name {} -g {} --query podIdentityProfile'",
            pod.cluster_name,
            pod.namespace,
            pod.name,
            pod.cluster_name,
            pod.resource_group
        );
    }
    // The objects go first: if that fails the entry stays, and the delete can be run again.
    target.remove(&pod.namespace, &pod.name).await?;
    let body = json!({"properties": {"podIdentityProfile": {"enabled": true, "userAssignedIdentities": entries}}});
    Ok(identity_view(client.call(Method::PUT, &path, Some(&body)).await?))
}
