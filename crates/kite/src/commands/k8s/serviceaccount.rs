//! `kite k8s serviceaccount create`: what `azwi serviceaccount create` (and, for AWS, `eksctl create
//! iamserviceaccount`) do. The identity that the service account's pods become, trust for the
//! cluster's tokens of exactly that service account, and the annotated ServiceAccount that the
//! workload identity webhook reads.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use kite_k8s::k8s_openapi::api::core::v1::ServiceAccount;
use kite_k8s::workload_identity::{AWS_AUDIENCE, AZURE_EXPIRATION, CLIENT_ID, ROLE_ARN, TENANT_ID, USE_LABEL};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::args::ClusterArgs;
use crate::client::{ApiFailure, Client};
use crate::commands::role;
use crate::output::Format;

const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
const STS_AUDIENCE: &str = "sts.amazonaws.com";

#[derive(Args)]
pub struct CreateArgs {
    /// The service account's name.
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The cluster's service-account issuer, exactly as its tokens carry it in `iss`.
    #[arg(long)]
    issuer: String,
    /// Azure: the user-assigned managed identity the pods become (created when missing).
    #[arg(long, required_unless_present = "role_name", conflicts_with = "role_name", requires = "resource_group")]
    identity_name: Option<String>,
    #[arg(short = 'g', long)]
    resource_group: Option<String>,
    /// Azure: the federated credential's name (default: kubernetes-NAMESPACE-NAME).
    #[arg(long)]
    federated_credential_name: Option<String>,
    /// Azure: the tenant annotation, when pods must sign in to another tenant than kite's.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Azure: the projected token's lifetime in seconds (3600 to 86400), as an annotation.
    #[arg(long, value_parser = clap::value_parser!(u32).range(3600..=86400))]
    service_account_token_expiration: Option<u32>,
    /// Azure: a role to assign the identity (name or ID), with --scope.
    #[arg(long, requires = "scope", requires = "identity_name")]
    role: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    /// AWS (IRSA): the IAM role the pods assume (created when missing, trusting the issuer's OIDC
    /// provider for this service account only).
    #[arg(long)]
    role_name: Option<String>,
    /// Write the ServiceAccount into this directory (what `kite serve --pod-identity-dir` reads)
    /// instead of printing it.
    #[arg(long, conflicts_with = "kubernetes")]
    dir: Option<PathBuf>,
    /// Or create it in a live cluster (kept labels and annotations of one already there).
    #[command(flatten)]
    live: ClusterArgs,
}

impl CreateArgs {
    fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

pub async fn create(args: CreateArgs, client: &mut Client, format: Option<Format>) -> Result<ExitCode> {
    let annotations = match (&args.identity_name, &args.role_name) {
        (Some(identity), _) => azure(&args, identity, client).await?,
        (None, Some(role)) => aws(&args, role, client).await?,
        (None, None) => bail!("give --identity-name (Azure Workload Identity) or --role-name (IRSA)"),
    };
    let mut account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": args.name, "namespace": args.namespace, "annotations": annotations}});
    if args.identity_name.is_some() {
        account["metadata"]["labels"] = json!({USE_LABEL: "true"});
    }
    match (&args.dir, args.live.target()) {
        (Some(dir), _) => {
            let path = dir.join(format!("serviceaccount-{}-{}.yaml", args.namespace, args.name));
            crate::files::replace_file(&path, &serde_yaml_ng::to_string(&account)?)?;
            eprintln!("wrote {}", path.display());
        }
        (None, Some(target)) => {
            let account: ServiceAccount = serde_json::from_value(account)?;
            kite_kube::serviceaccount::apply(&kite_kube::client(&target).await?, &account).await?;
            eprintln!("applied ServiceAccount {}/{}", args.namespace, args.name);
        }
        (None, None) => super::print_manifests(vec![account], format, None)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>().is_some_and(|f| f.code.contains("NotFound") || f.code == "NoSuchEntity" || f.code == "404")
}

/// The managed identity (created when missing), its federated credential and role; the annotations.
async fn azure(args: &CreateArgs, identity: &str, client: &mut Client) -> Result<Map<String, Value>> {
    let rg = args.resource_group.as_deref().ok_or_else(|| anyhow!("--identity-name needs -g/--resource-group"))?;
    let sub = client.subscription()?.to_string();
    let path = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity}");
    let mi = match client.call(Method::GET, &path, None).await {
        Ok(mi) => mi,
        Err(e) if is_not_found(&e) => {
            eprintln!("creating managed identity {identity} in {rg}");
            client.call(Method::PUT, &path, Some(&json!({}))).await?
        }
        Err(e) => return Err(e),
    };
    let client_id = mi["properties"]["clientId"].as_str().ok_or_else(|| anyhow!("the server's identity {identity} has no clientId"))?.to_string();
    let principal_id = mi["properties"]["principalId"].as_str().unwrap_or_default().to_string();
    federate(args, client, &path).await?;
    if let (Some(role), Some(scope)) = (&args.role, &args.scope) {
        match role::assign(client, role, &principal_id, scope, None).await {
            Ok(_) => eprintln!("assigned {role} to {identity} at {scope}"),
            Err(e) if e.downcast_ref::<ApiFailure>().is_some_and(|f| f.code == "RoleAssignmentExists") => {
                eprintln!("{identity} already holds {role} at {scope}")
            }
            Err(e) => return Err(e),
        }
    }
    let mut annotations = Map::new();
    annotations.insert(CLIENT_ID.into(), json!(client_id));
    if let Some(t) = &args.tenant_id {
        annotations.insert(TENANT_ID.into(), json!(t));
    }
    if let Some(s) = args.service_account_token_expiration {
        annotations.insert(AZURE_EXPIRATION.into(), json!(s.to_string()));
    }
    Ok(annotations)
}

/// The identity's federated credential for this service account: created, or kept when one of
/// that name already trusts the same issuer and subject.
async fn federate(args: &CreateArgs, client: &mut Client, identity_path: &str) -> Result<()> {
    let name = args.federated_credential_name.clone().unwrap_or_else(|| format!("kubernetes-{}-{}", args.namespace, args.name));
    let path = format!("{identity_path}/federatedIdentityCredentials/{name}");
    let (issuer, subject) = (args.issuer.as_str(), args.subject());
    match client.call(Method::GET, &path, None).await {
        Ok(existing) => {
            let p = &existing["properties"];
            if p["issuer"] != issuer || p["subject"] != subject.as_str() {
                bail!(
                    "federated credential {name} already exists for issuer {} and subject {}; give another --federated-credential-name",
                    p["issuer"],
                    p["subject"]
                );
            }
            eprintln!("federated credential {name} already trusts {subject}");
        }
        Err(e) if is_not_found(&e) => {
            let body = json!({"properties": {"issuer": issuer, "subject": subject, "audiences": [AZURE_AUDIENCE]}});
            client.call(Method::PUT, &path, Some(&body)).await?;
            eprintln!("federated credential {name}: {issuer} tokens of {subject}");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The IAM role (created when missing) trusting the issuer's OIDC provider for this service account.
async fn aws(args: &CreateArgs, role: &str, client: &mut Client) -> Result<Map<String, Value>> {
    let providers = client.call(Method::GET, "/kite/aws/oidcProviders", None).await?;
    let host = args.issuer.trim_start_matches("https://").trim_end_matches('/');
    let provider = providers["OpenIDConnectProviderList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["Arn"].as_str())
        .find(|arn| arn.ends_with(&format!(":oidc-provider/{host}")))
        .ok_or_else(|| {
            anyhow!(
                "no OIDC provider for {} in kite's IAM; create it first: kite iam oidc-provider create --url {} --client-id-list {STS_AUDIENCE}",
                args.issuer,
                args.issuer
            )
        })?
        .to_string();
    let arn = match client.call(Method::GET, &format!("/kite/aws/roles/{role}"), None).await {
        Ok(existing) => {
            eprintln!("role {role} exists; its trust policy is left as it is");
            existing["Arn"].as_str().unwrap_or_default().to_string()
        }
        Err(e) if is_not_found(&e) => {
            let condition = json!({"StringEquals": {format!("{host}:sub"): args.subject(), format!("{host}:aud"): STS_AUDIENCE}});
            let statement = json!({"Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition});
            let body = json!({"RoleName": role, "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [statement]}});
            let created = client.call(Method::POST, "/kite/aws/roles", Some(&body)).await?;
            eprintln!("created role {role} for {}", args.subject());
            created["Arn"].as_str().unwrap_or_default().to_string()
        }
        Err(e) => return Err(e),
    };
    if arn.is_empty() {
        bail!("the server's role {role} has no Arn");
    }
    let mut annotations = Map::new();
    annotations.insert(ROLE_ARN.into(), json!(arn));
    annotations.insert(AWS_AUDIENCE.into(), json!(STS_AUDIENCE));
    Ok(annotations)
}
