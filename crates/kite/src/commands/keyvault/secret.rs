//! `kite keyvault secret`: a vault's secrets through its Key Vault REST endpoint, as
//! `az keyvault secret` calls them.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::{vault_id, VaultRef};
use crate::client::Client;

#[derive(Subcommand)]
pub enum SecretCmd {
    /// Add a version (the value is the new latest).
    Set {
        #[command(flatten)]
        at: SecretRef,
        #[arg(long)]
        value: String,
        #[arg(long)]
        content_type: Option<String>,
        /// Space-separated tags: key[=value].
        #[arg(long, num_args = 0..)]
        tags: Vec<String>,
    },
    Show {
        #[command(flatten)]
        at: SecretRef,
        #[arg(long)]
        version: Option<String>,
    },
    List {
        #[arg(long)]
        vault_name: String,
    },
    ListVersions {
        #[command(flatten)]
        at: SecretRef,
    },
    /// Change enabled, expiry, not-before, content type or tags (of the latest version unless --version).
    SetAttributes {
        #[command(flatten)]
        at: SecretRef,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        enabled: Option<bool>,
        /// Expiry, Unix seconds.
        #[arg(long)]
        expires: Option<i64>,
        /// Not before, Unix seconds.
        #[arg(long)]
        not_before: Option<i64>,
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Soft delete: recoverable for the vault's retention period.
    Delete {
        #[command(flatten)]
        at: SecretRef,
    },
    ShowDeleted {
        #[command(flatten)]
        at: SecretRef,
    },
    ListDeleted {
        #[arg(long)]
        vault_name: String,
    },
    Recover {
        #[command(flatten)]
        at: SecretRef,
    },
    Purge {
        #[command(flatten)]
        at: SecretRef,
    },
}

#[derive(Args)]
pub struct SecretRef {
    #[arg(long)]
    vault_name: String,
    #[arg(short = 'n', long)]
    name: String,
}

/// The vault's data-plane address, as `keyvault show` names it.
async fn vault_uri(client: &mut Client, vault: &str) -> Result<String> {
    let id = vault_id(client, &VaultRef { name: vault.to_string(), resource_group: None }).await?;
    let v = client.call(Method::GET, &id, None).await?;
    v["properties"]["vaultUri"].as_str().map(str::to_string).ok_or_else(|| anyhow!("vault '{vault}' names no vaultUri"))
}

/// Every item of a paged listing, following `nextLink`.
async fn all_pages(client: &mut Client, uri: &str, path: &str) -> Result<Value> {
    let mut items = Vec::new();
    let mut next: Option<(String, Vec<(String, String)>)> = Some((path.to_string(), Vec::new()));
    while let Some((path, query)) = next.take() {
        let q: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let page = client.vault_call(uri, Method::GET, &path, &q, None).await?;
        items.extend(page["value"].as_array().cloned().unwrap_or_default());
        if let Some(link) = page["nextLink"].as_str() {
            let url = reqwest::Url::parse(link)?;
            let query = url.query_pairs().filter(|(k, _)| k != "api-version").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            next = Some((url.path().to_string(), query));
        }
    }
    Ok(Value::Array(items))
}

fn tags_of(tags: &[String]) -> Option<BTreeMap<String, String>> {
    (!tags.is_empty()).then(|| tags.iter().map(|t| t.split_once('=').map_or((t.clone(), String::new()), |(k, v)| (k.to_string(), v.to_string()))).collect())
}

pub async fn run(cmd: SecretCmd, client: &mut Client) -> Result<Value> {
    match cmd {
        SecretCmd::Set { at, value, content_type, tags } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            let body = json!({"value": value, "contentType": content_type, "tags": tags_of(&tags)});
            client.vault_call(&uri, Method::PUT, &format!("/secrets/{}", at.name), &[], Some(&body)).await
        }
        SecretCmd::Show { at, version } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            client.vault_call(&uri, Method::GET, &format!("/secrets/{}/{}", at.name, version.unwrap_or_default()), &[], None).await
        }
        SecretCmd::List { vault_name } => {
            let uri = vault_uri(client, &vault_name).await?;
            all_pages(client, &uri, "/secrets").await
        }
        SecretCmd::ListVersions { at } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            all_pages(client, &uri, &format!("/secrets/{}/versions", at.name)).await
        }
        SecretCmd::SetAttributes { at, version, enabled, expires, not_before, content_type } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            let body = json!({"contentType": content_type, "attributes": {"enabled": enabled, "exp": expires, "nbf": not_before}});
            client.vault_call(&uri, Method::PATCH, &format!("/secrets/{}/{}", at.name, version.unwrap_or_default()), &[], Some(&body)).await
        }
        SecretCmd::Delete { at } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            client.vault_call(&uri, Method::DELETE, &format!("/secrets/{}", at.name), &[], None).await
        }
        SecretCmd::ShowDeleted { at } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            client.vault_call(&uri, Method::GET, &format!("/deletedsecrets/{}", at.name), &[], None).await
        }
        SecretCmd::ListDeleted { vault_name } => {
            let uri = vault_uri(client, &vault_name).await?;
            all_pages(client, &uri, "/deletedsecrets").await
        }
        SecretCmd::Recover { at } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            client.vault_call(&uri, Method::POST, &format!("/deletedsecrets/{}/recover", at.name), &[], None).await
        }
        SecretCmd::Purge { at } => {
            let uri = vault_uri(client, &at.vault_name).await?;
            client.vault_call(&uri, Method::DELETE, &format!("/deletedsecrets/{}", at.name), &[], None).await
        }
    }
}
