//! `kite login`, `kite logout` and `kite account`: the signed-in profile and the tenant's subscriptions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{profile_path, Client, Profile};
use crate::output::{print, Format};
use crate::view::list_of;

#[derive(Args)]
pub struct LoginArgs {
    /// The admin credentials file the first 'kite serve' wrote (or any file of that shape).
    #[arg(long, conflicts_with_all = ["username", "password", "tenant"])]
    credentials_file: Option<PathBuf>,
    /// Sign in as a service principal (the only kind of sign-in kite has; accepted for az compatibility).
    #[arg(long)]
    service_principal: bool,
    /// The service principal's appId (client id).
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// The client secret.
    #[arg(short = 'p', long)]
    password: Option<String>,
    #[arg(short = 't', long)]
    tenant: Option<String>,
    /// The server URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    server: Option<String>,
    /// CA certificate that signed the server's certificate (KITE_HOME/tls/ca.pem).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// The subscription in use.
    Show,
    /// Every subscription of the tenant.
    List,
}

pub async fn login(args: LoginArgs, home: &Path, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let profile = match &args.credentials_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            let field = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("{} has no '{k}'", path.display()));
            Profile {
                server: args.server.clone().map(Ok).unwrap_or_else(|| field("server"))?,
                tenant: field("tenant")?,
                subscription: v["subscription"].as_str().map(str::to_string),
                app_id: field("appId")?,
                password: field("password")?,
                ca_file: args.ca_file.clone().or_else(|| v["caFile"].as_str().map(PathBuf::from)),
                access_token: None,
                expires_on: 0,
            }
        }
        None => {
            let need = |v: &Option<String>, flag: &str| v.clone().ok_or_else(|| anyhow!("{flag} is required (or use --credentials-file)"));
            Profile {
                server: need(&args.server, "--server")?,
                tenant: need(&args.tenant, "--tenant")?,
                subscription: None,
                app_id: need(&args.username, "--username/-u")?,
                password: need(&args.password, "--password/-p")?,
                ca_file: args.ca_file.clone(),
                access_token: None,
                expires_on: 0,
            }
        }
    };
    let mut client = Client::login(home, profile).await?;
    let subs = client.call(Method::GET, "/subscriptions", None).await?;
    let current = client.subscription()?.to_string();
    print(list_of(subs, |s| account_view(s, &current, &client.profile)), format, query)
}

pub fn logout(home: &Path) -> Result<ExitCode> {
    let path = profile_path(home);
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: AccountCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let subs = client.call(Method::GET, "/subscriptions", None).await?;
    let current = client.subscription()?.to_string();
    let view = |s: Value| account_view(s, &current, &client.profile);
    let list = list_of(subs, view);
    match cmd {
        AccountCmd::List => print(list, format, query),
        AccountCmd::Show => {
            let one = list.as_array().and_then(|l| l.iter().find(|s| s["isDefault"] == json!(true)).cloned());
            print(one.ok_or_else(|| anyhow!("subscription {current} is not in this tenant; run 'kite login' again"))?, format, query)
        }
    }
}

fn account_view(s: Value, current: &str, profile: &Profile) -> Value {
    json!({
        "cloudName": "kite",
        "id": s["subscriptionId"],
        "isDefault": s["subscriptionId"].as_str() == Some(current),
        "name": s["displayName"],
        "state": s["state"],
        "tenantId": s["tenantId"],
        "user": {"name": profile.app_id, "type": "servicePrincipal"},
        "server": profile.server,
    })
}
