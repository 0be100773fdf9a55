//! `kite eks pod-identity-association create|list|show|delete`, shaped like
//! `aws eks create-pod-identity-association` and friends, and printing what they print.

use anyhow::{bail, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;

#[derive(Subcommand)]
pub enum PodIdentityCmd {
    /// Associate a service account with an IAM role whose trust policy allows pods.eks.amazonaws.com
    /// to perform sts:AssumeRole and sts:TagSession.
    Create {
        #[arg(long)]
        cluster_name: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        service_account: String,
        #[arg(long)]
        role_arn: String,
        /// The region in the association's ARN (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
        #[arg(long, env = "AWS_REGION")]
        region: Option<String>,
    },
    List {
        #[arg(long)]
        cluster_name: String,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        service_account: Option<String>,
    },
    #[command(alias = "describe")]
    Show {
        #[arg(long)]
        cluster_name: String,
        #[arg(long)]
        association_id: String,
    },
    Delete {
        #[arg(long)]
        cluster_name: String,
        #[arg(long)]
        association_id: String,
    },
}

/// The API path; names are checked first so that user input cannot reshape the URL.
fn path(cluster: &str, id: Option<&str>) -> Result<String> {
    kite_core::aws::eks::validate_cluster_name(cluster)?;
    let base = format!("/kite/eks/clusters/{cluster}/pod-identity-associations");
    match id {
        Some(id) if id.starts_with("a-") && id[2..].bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(format!("{base}/{id}")),
        Some(id) => {
            bail!("'{id}' is not an association ID: they look like a-0123456789abcdefg (see 'kite eks pod-identity-association list --cluster-name {cluster}')")
        }
        None => Ok(base),
    }
}

pub async fn run(cmd: PodIdentityCmd, client: &mut Client) -> Result<Value> {
    match cmd {
        PodIdentityCmd::Create { cluster_name, namespace, service_account, role_arn, region } => {
            let region = region.or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
            let body = json!({"namespace": namespace, "serviceAccount": service_account, "roleArn": role_arn, "region": region});
            client.call(Method::POST, &path(&cluster_name, None)?, Some(&body)).await
        }
        PodIdentityCmd::List { cluster_name, namespace, service_account } => {
            let mut query = Vec::new();
            if let Some(ns) = namespace {
                query.push(("namespace", ns));
            }
            if let Some(sa) = service_account {
                query.push(("serviceAccount", sa));
            }
            client.call_with(Method::GET, &path(&cluster_name, None)?, &query, None).await
        }
        PodIdentityCmd::Show { cluster_name, association_id } => client.call(Method::GET, &path(&cluster_name, Some(&association_id))?, None).await,
        PodIdentityCmd::Delete { cluster_name, association_id } => client.call(Method::DELETE, &path(&cluster_name, Some(&association_id))?, None).await,
    }
}
