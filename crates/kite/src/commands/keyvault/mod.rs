//! `kite keyvault`: vaults (create, show, list, delete, recover, purge) and their access policies,
//! as `az keyvault` calls them, and their secrets (`secret`). Vault names are global, so `-g` is
//! optional wherever az has it so.

pub mod secret;

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::{print, Format};
use crate::view::list_of;

#[derive(Subcommand)]
pub enum KeyvaultCmd {
    Create {
        #[arg(short = 'g', long)]
        resource_group: String,
        #[arg(short = 'n', long)]
        name: String,
        /// Default: the resource group's location.
        #[arg(short = 'l', long)]
        location: Option<String>,
        /// Authorize data-plane calls with role assignments (Key Vault Secrets User, …) instead of access policies.
        #[arg(long)]
        enable_rbac_authorization: bool,
        /// Days a deleted vault (or secret) can be recovered: 7 to 90.
        #[arg(long, value_parser = clap::value_parser!(u32).range(7..=90))]
        retention_days: Option<u32>,
        /// Do not give the signed-in principal an access policy with every secret permission (az's default).
        #[arg(long)]
        no_self_perms: bool,
    },
    Show(VaultRef),
    List {
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
    },
    /// Soft-delete: recoverable for the vault's retention period.
    Delete(VaultRef),
    /// Soft-deleted vaults of the subscription.
    ListDeleted,
    Recover {
        #[arg(short = 'n', long)]
        name: String,
    },
    /// Remove a soft-deleted vault and its secrets for good.
    Purge {
        #[arg(short = 'n', long)]
        name: String,
    },
    /// Grant a principal permissions (added to what its policy holds).
    SetPolicy {
        #[command(flatten)]
        vault: VaultRef,
        #[command(flatten)]
        principal: PrincipalArgs,
        /// get list set delete backup restore recover purge all
        #[arg(long, num_args = 1..)]
        secret_permissions: Vec<String>,
    },
    /// Remove a principal's access policy.
    DeletePolicy {
        #[command(flatten)]
        vault: VaultRef,
        #[command(flatten)]
        principal: PrincipalArgs,
    },
    /// A vault's secrets (the Key Vault REST API at the vault's URI).
    #[command(subcommand)]
    Secret(secret::SecretCmd),
}

#[derive(Args)]
pub struct VaultRef {
    #[arg(short = 'n', long)]
    pub name: String,
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PrincipalArgs {
    /// A service principal's client (app) ID or display name.
    #[arg(long)]
    spn: Option<String>,
    #[arg(long)]
    object_id: Option<String>,
    /// A user principal name (kite resolves it like any display name).
    #[arg(long)]
    upn: Option<String>,
}

impl PrincipalArgs {
    async fn object_id(&self, client: &mut Client) -> Result<String> {
        let needle = self.spn.as_deref().or(self.object_id.as_deref()).or(self.upn.as_deref()).ok_or_else(|| anyhow!("give --spn, --object-id or --upn"))?;
        let p = client.call_with(Method::GET, "/v1.0/principals/resolve", &[("assignee", needle.to_string())], None).await?;
        p["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the server returned no object id for '{needle}'"))
    }
}

/// A vault as az shows it: ARM's shape plus the resource group its id names.
fn view(mut v: Value) -> Value {
    let rg = v["id"].as_str().and_then(|id| id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("resourcegroups")).nth(1).map(str::to_string));
    v["resourceGroup"] = json!(rg);
    v
}

/// The vault's resource ID: under `-g` when given, else found among the subscription's vaults.
pub async fn vault_id(client: &mut Client, r: &VaultRef) -> Result<String> {
    let sub = client.subscription()?.to_string();
    if let Some(rg) = &r.resource_group {
        return Ok(format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{}", r.name));
    }
    let all = client.call(Method::GET, &format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults"), None).await?;
    list_of(all, |v| v)
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&r.name))))
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .ok_or_else(|| anyhow!("The Vault '{}' not found within subscription; list them with 'kite keyvault list'", r.name))
}

/// The soft-deleted vault of that name, as the deleted-vaults listing shows it.
async fn deleted_vault(client: &mut Client, name: &str) -> Result<Value> {
    let sub = client.subscription()?.to_string();
    let all = client.call(Method::GET, &format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults"), None).await?;
    let found = list_of(all, |v| v).as_array().and_then(|vs| vs.iter().find(|v| v["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))).cloned());
    found.ok_or_else(|| anyhow!("No deleted vault named '{name}'; list them with 'kite keyvault list-deleted'"))
}

pub async fn run(cmd: KeyvaultCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let sub = client.subscription()?.to_string();
    let v = match cmd {
        KeyvaultCmd::Create { resource_group, name, location, enable_rbac_authorization, retention_days, no_self_perms } => {
            // As az does: the creator may manage the secrets of an access-policy vault it made.
            let mut policies = Vec::new();
            if !enable_rbac_authorization && !no_self_perms {
                let me = client.profile.app_id.clone();
                let object_id = PrincipalArgs { spn: Some(me), object_id: None, upn: None }.object_id(client).await?;
                let all = ["get", "list", "set", "delete", "backup", "restore", "recover", "purge"];
                policies.push(json!({"tenantId": client.profile.tenant, "objectId": object_id, "permissions": {"secrets": all}}));
            }
            let body = json!({"location": location, "properties": {
                "sku": {"family": "A", "name": "standard"},
                "accessPolicies": policies,
                "enableRbacAuthorization": enable_rbac_authorization,
                "softDeleteRetentionInDays": retention_days,
            }});
            let path = format!("/subscriptions/{sub}/resourceGroups/{resource_group}/providers/Microsoft.KeyVault/vaults/{name}");
            view(client.call(Method::PUT, &path, Some(&body)).await?)
        }
        KeyvaultCmd::Show(r) => {
            let id = vault_id(client, &r).await?;
            view(client.call(Method::GET, &id, None).await?)
        }
        KeyvaultCmd::List { resource_group } => {
            let path = match resource_group {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"),
                None => format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults"),
            };
            list_of(client.call(Method::GET, &path, None).await?, view)
        }
        KeyvaultCmd::Delete(r) => {
            let id = vault_id(client, &r).await?;
            client.call(Method::DELETE, &id, None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        KeyvaultCmd::ListDeleted => {
            list_of(client.call(Method::GET, &format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults"), None).await?, |v| v)
        }
        KeyvaultCmd::Recover { name } => {
            let deleted = deleted_vault(client, &name).await?;
            let id = deleted["properties"]["vaultId"].as_str().ok_or_else(|| anyhow!("the deleted vault '{name}' names no vaultId"))?.to_string();
            let body = json!({"location": deleted["properties"]["location"], "properties": {"createMode": "recover"}});
            view(client.call(Method::PUT, &id, Some(&body)).await?)
        }
        KeyvaultCmd::Purge { name } => {
            let deleted = deleted_vault(client, &name).await?;
            let id = deleted["id"].as_str().ok_or_else(|| anyhow!("the deleted vault '{name}' has no id"))?.to_string();
            client.call(Method::POST, &format!("{id}/purge"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        KeyvaultCmd::SetPolicy { vault, principal, secret_permissions } => {
            if secret_permissions.is_empty() {
                bail!("give the permissions to grant with --secret-permissions (e.g. get list)");
            }
            let id = vault_id(client, &vault).await?;
            let object_id = principal.object_id(client).await?;
            let tenant = client.call(Method::GET, &id, None).await?["properties"]["tenantId"].clone();
            let policy = json!({"tenantId": tenant, "objectId": object_id, "permissions": {"secrets": secret_permissions}});
            client.call(Method::PUT, &format!("{id}/accessPolicies/add"), Some(&json!({"properties": {"accessPolicies": [policy]}}))).await?;
            view(client.call(Method::GET, &id, None).await?)
        }
        KeyvaultCmd::DeletePolicy { vault, principal } => {
            let id = vault_id(client, &vault).await?;
            let object_id = principal.object_id(client).await?;
            let current = client.call(Method::GET, &id, None).await?;
            let policies = current["properties"]["accessPolicies"].as_array().cloned().unwrap_or_default();
            let Some(policy) = policies.into_iter().find(|p| p["objectId"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(&object_id))) else {
                bail!("vault '{}' has no access policy for object id {object_id}", vault.name);
            };
            client.call(Method::PUT, &format!("{id}/accessPolicies/remove"), Some(&json!({"properties": {"accessPolicies": [policy]}}))).await?;
            view(client.call(Method::GET, &id, None).await?)
        }
        KeyvaultCmd::Secret(cmd) => secret::run(cmd, client).await?,
    };
    print(v, format, query)
}
