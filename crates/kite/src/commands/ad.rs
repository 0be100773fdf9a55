//! `kite ad`: service principals, their credentials, and applications' federated credentials.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::read_arg;
use crate::client::Client;
use crate::output::{print, Format};
use crate::view::list_of;

#[derive(Subcommand)]
pub enum AdCmd {
    #[command(subcommand)]
    Sp(SpCmd),
    #[command(subcommand)]
    App(AppCmd),
}

#[derive(Subcommand)]
pub enum AppCmd {
    #[command(subcommand)]
    FederatedCredential(AppFicCmd),
}

#[derive(Subcommand)]
pub enum AppFicCmd {
    /// --parameters: JSON (inline, a file or @file) with name, issuer, subject, audiences, description.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        parameters: String,
    },
    List {
        #[arg(long)]
        id: String,
    },
    Delete {
        #[arg(long)]
        id: String,
        #[arg(long)]
        federated_credential_id: String,
    },
}

#[derive(Args, Default)]
pub struct SecretArgs {
    /// Secret lifetime in years (1 or 2; at most 24 months).
    #[arg(long)]
    years: Option<u32>,
    /// Secret end date (2027-01-31 or RFC 3339), at most 24 months away.
    #[arg(long)]
    end_date: Option<String>,
    /// A PEM certificate, inline or as @file, to use instead of a secret.
    #[arg(long)]
    cert: Option<String>,
}

#[derive(Subcommand)]
pub enum SpCmd {
    /// Create an app and its service principal with a secret (shown once) or a certificate.
    CreateForRbac {
        #[arg(short = 'n', long)]
        name: String,
        /// A role to assign at --scopes.
        #[arg(long)]
        role: Option<String>,
        #[arg(long, num_args = 1..)]
        scopes: Vec<String>,
        #[command(flatten)]
        secret: SecretArgs,
    },
    List,
    Show {
        #[arg(long)]
        id: String,
    },
    Delete {
        #[arg(long)]
        id: String,
    },
    #[command(subcommand)]
    Credential(CredentialCmd),
}

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Replace (or with --append, add) a credential; a new secret is shown once.
    Reset {
        #[arg(long)]
        id: String,
        #[arg(long)]
        append: bool,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        secret: SecretArgs,
    },
    List {
        #[arg(long)]
        id: String,
        /// List certificates instead of secrets.
        #[arg(long)]
        cert: bool,
    },
    Delete {
        #[arg(long)]
        id: String,
        #[arg(long)]
        key_id: String,
    },
}

pub async fn run(cmd: AdCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    match cmd {
        AdCmd::Sp(cmd) => sp(cmd, client, format, query).await,
        AdCmd::App(AppCmd::FederatedCredential(cmd)) => app_fic(cmd, client, format, query).await,
    }
}

async fn sp(cmd: SpCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        SpCmd::CreateForRbac { name, role, scopes, secret } => {
            let mut body = credential_body(&secret)?;
            body["displayName"] = json!(name);
            body["role"] = json!(role);
            body["scopes"] = json!(scopes);
            let out = client.call(Method::POST, "/v1.0/servicePrincipals/createForRbac", Some(&body)).await?;
            if out.get("password").is_some() {
                eprintln!("The output includes credentials that you must protect. It is shown only this once; kite keeps only a salted hash.");
            }
            out
        }
        SpCmd::List => list_of(client.call(Method::GET, "/v1.0/servicePrincipals", None).await?, |p| p),
        SpCmd::Show { id } => client.call(Method::GET, &format!("/v1.0/servicePrincipals/{id}"), None).await?,
        SpCmd::Delete { id } => {
            client.call(Method::DELETE, &format!("/v1.0/servicePrincipals/{id}"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        SpCmd::Credential(CredentialCmd::Reset { id, append, display_name, secret }) => {
            let mut body = credential_body(&secret)?;
            body["append"] = json!(append);
            body["displayName"] = json!(display_name);
            let out = client.call(Method::POST, &format!("/v1.0/applications/{id}/resetCredentials"), Some(&body)).await?;
            if out.get("password").is_some() {
                eprintln!("The output includes credentials that you must protect. It is shown only this once.");
            }
            out
        }
        SpCmd::Credential(CredentialCmd::List { id, cert }) => {
            let q = [("cert", cert.to_string())];
            list_of(client.call_with(Method::GET, &format!("/v1.0/applications/{id}/credentials"), &q, None).await?, |c| c)
        }
        SpCmd::Credential(CredentialCmd::Delete { id, key_id }) => {
            client.call(Method::DELETE, &format!("/v1.0/applications/{id}/credentials/{key_id}"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    print(v, format, query)
}

async fn app_fic(cmd: AppFicCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        AppFicCmd::Create { id, parameters } => {
            let body: Value = serde_json::from_str(&read_arg(&parameters)?).context("--parameters is not valid JSON")?;
            client.call(Method::POST, &format!("/v1.0/applications/{id}/federatedIdentityCredentials"), Some(&body)).await?
        }
        AppFicCmd::List { id } => list_of(client.call(Method::GET, &format!("/v1.0/applications/{id}/federatedIdentityCredentials"), None).await?, |f| f),
        AppFicCmd::Delete { id, federated_credential_id } => {
            client.call(Method::DELETE, &format!("/v1.0/applications/{id}/federatedIdentityCredentials/{federated_credential_id}"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    print(v, format, query)
}

fn credential_body(secret: &SecretArgs) -> Result<Value> {
    if secret.cert.is_some() && (secret.years.is_some() || secret.end_date.is_some()) {
        bail!("--cert takes its validity from the certificate; drop --years/--end-date");
    }
    Ok(json!({
        "years": secret.years,
        "endDateTime": secret.end_date,
        "certificatePem": secret.cert.as_deref().map(read_arg).transpose()?,
    }))
}
