//! `kite identity`: user-assigned managed identities and their federated credentials.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::output::{print, Format};
use crate::view::{flatten, identity_view, list_of};

#[derive(Subcommand)]
pub enum IdentityCmd {
    Create {
        #[arg(short = 'g', long)]
        resource_group: String,
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'l', long)]
        location: Option<String>,
    },
    Show {
        #[arg(short = 'g', long)]
        resource_group: String,
        #[arg(short = 'n', long)]
        name: String,
    },
    List {
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
    },
    Delete {
        #[arg(short = 'g', long)]
        resource_group: String,
        #[arg(short = 'n', long)]
        name: String,
    },
    /// Trust tokens of an external issuer (a cluster's service accounts) for this identity.
    #[command(subcommand)]
    FederatedCredential(IdentityFicCmd),
}

#[derive(Args)]
pub struct IdentityRef {
    #[arg(long)]
    identity_name: String,
    #[arg(short = 'g', long)]
    resource_group: String,
}

#[derive(Subcommand)]
pub enum IdentityFicCmd {
    Create {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        identity: IdentityRef,
        /// The issuer URL exactly as its tokens carry it in `iss`.
        #[arg(long)]
        issuer: String,
        /// The token's `sub`, e.g. system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT.
        #[arg(long)]
        subject: String,
        /// Default: api://AzureADTokenExchange.
        #[arg(long, num_args = 1..)]
        audiences: Vec<String>,
    },
    List {
        #[command(flatten)]
        identity: IdentityRef,
    },
    Show {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        identity: IdentityRef,
    },
    Delete {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        identity: IdentityRef,
    },
}

pub async fn run(cmd: IdentityCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let sub = client.subscription()?.to_string();
    let path = |rg: &str, name: &str| format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}");
    let v = match cmd {
        IdentityCmd::Create { resource_group, name, location } => {
            let body = json!({"location": location});
            identity_view(client.call(Method::PUT, &path(&resource_group, &name), Some(&body)).await?)
        }
        IdentityCmd::Show { resource_group, name } => identity_view(client.call(Method::GET, &path(&resource_group, &name), None).await?),
        IdentityCmd::List { resource_group } => {
            let url = match resource_group {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
                None => format!("/subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
            };
            list_of(client.call(Method::GET, &url, None).await?, identity_view)
        }
        IdentityCmd::Delete { resource_group, name } => {
            client.call(Method::DELETE, &path(&resource_group, &name), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        IdentityCmd::FederatedCredential(cmd) => {
            let fics = |i: &IdentityRef| format!("{}/federatedIdentityCredentials", path(&i.resource_group, &i.identity_name));
            match cmd {
                IdentityFicCmd::Create { name, identity, issuer, subject, audiences } => {
                    let body = json!({"properties": {"issuer": issuer, "subject": subject, "audiences": audiences}});
                    flatten(client.call(Method::PUT, &format!("{}/{name}", fics(&identity)), Some(&body)).await?)
                }
                IdentityFicCmd::List { identity } => list_of(client.call(Method::GET, &fics(&identity), None).await?, flatten),
                IdentityFicCmd::Show { name, identity } => flatten(client.call(Method::GET, &format!("{}/{name}", fics(&identity)), None).await?),
                IdentityFicCmd::Delete { name, identity } => {
                    client.call(Method::DELETE, &format!("{}/{name}", fics(&identity)), None).await?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    };
    print(v, format, query)
}
