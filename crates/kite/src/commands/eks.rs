//! `kite eks`: aws-auth identity mappings (eksctl's `iamidentitymapping`) and access entries, in the
//! files `kite serve` reads (or a live cluster's ConfigMap), and pod identity associations, kept by
//! the server and shaped like `aws eks create-pod-identity-association` and friends.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::ClusterArgs;
use crate::aws_client::AwsClient;
use crate::client::Client;
use crate::files::replace_file;
use crate::output::{print, Format};

#[derive(Subcommand)]
pub enum EksCmd {
    /// aws-auth ConfigMap entries, as eksctl manages them.
    #[command(subcommand)]
    Iamidentitymapping(IdentityMappingCmd),
    /// EKS access entries (the API authentication mode's mapping).
    #[command(subcommand)]
    AccessEntry(AccessEntryCmd),
    /// EKS Pod Identity associations (namespace + service account → IAM role), kept by the server.
    #[command(subcommand)]
    PodIdentityAssociation(PodIdentityAssociationCmd),
    /// Create a cluster, as `aws eks create-cluster` does; the signer is kept as its creator, who is
    /// in system:masters at /authenticate whatever aws-auth says.
    CreateCluster {
        #[arg(long)]
        name: String,
        /// CONFIG_MAP, API_AND_CONFIG_MAP (default) or API.
        #[arg(long)]
        authentication_mode: Option<String>,
        /// Do not make the creator a cluster admin (EKS's bootstrapClusterCreatorAdminPermissions=false).
        #[arg(long)]
        no_bootstrap_cluster_creator_admin_permissions: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    DescribeCluster {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    ListClusters {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    DeleteCluster {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

/// Where the EKS-shaped API is: kite's URL (else AWS_ENDPOINT_URL_EKS); signed with the AWS_* credentials.
#[derive(Args)]
pub struct Endpoint {
    #[arg(long = "endpoint-url")]
    endpoint_url: Option<String>,
}

#[derive(Args)]
pub struct AwsAuthFile {
    #[arg(long)]
    cluster: String,
    /// The aws-auth ConfigMap YAML to read and rewrite (what `kite serve --aws-auth` reads).
    #[arg(long = "aws-auth", env = "KITE_AWS_AUTH", required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    aws_auth: Option<PathBuf>,
    /// Or the `kube-system/aws-auth` ConfigMap of a live cluster.
    #[command(flatten)]
    live: ClusterArgs,
}

#[derive(Subcommand)]
pub enum IdentityMappingCmd {
    Create {
        #[command(flatten)]
        file: AwsAuthFile,
        #[arg(long)]
        arn: String,
        #[arg(long)]
        username: String,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    List {
        #[command(flatten)]
        file: AwsAuthFile,
    },
    Delete {
        #[command(flatten)]
        file: AwsAuthFile,
        #[arg(long)]
        arn: String,
        /// Remove every entry for the ARN, not just the first.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct AccessEntriesFile {
    #[arg(long)]
    cluster: String,
    /// The access entries file (JSON) `kite serve --access-entries` reads.
    #[arg(long = "access-entries", env = "KITE_ACCESS_ENTRIES")]
    access_entries: PathBuf,
}

#[derive(Subcommand)]
pub enum AccessEntryCmd {
    Create {
        #[command(flatten)]
        file: AccessEntriesFile,
        #[arg(long)]
        principal_arn: String,
        #[arg(long, num_args = 1..)]
        kubernetes_groups: Vec<String>,
        #[arg(long)]
        username: Option<String>,
        /// e.g. arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy
        #[arg(long)]
        policy_arn: Option<String>,
        /// With --policy-arn: namespaces to scope it to (cluster-wide when absent).
        #[arg(long, num_args = 1..)]
        namespaces: Vec<String>,
    },
    List {
        #[command(flatten)]
        file: AccessEntriesFile,
    },
    Delete {
        #[command(flatten)]
        file: AccessEntriesFile,
        #[arg(long)]
        principal_arn: String,
    },
}

#[derive(Subcommand)]
pub enum PodIdentityAssociationCmd {
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

pub async fn run(cmd: EksCmd, home: &Path, format: Format, query: Option<&str>) -> Result<ExitCode> {
    use kite_k8s::awsauth::{self, AccessEntry, AccessPolicyAssociation, AccessScope};
    let read_entries = |f: &AccessEntriesFile| -> Result<Vec<AccessEntry>> {
        match std::fs::read_to_string(&f.access_entries) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is not an access entries file", f.access_entries.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(anyhow!("reading {}: {e}", f.access_entries.display())),
        }
    };
    let v = match cmd {
        EksCmd::Iamidentitymapping(IdentityMappingCmd::Create { file, arn, username, groups }) => {
            let cluster = file.cluster.clone();
            let target = AwsAuthTarget::open(file).await?;
            let (warnings, auth) = target.edit(|auth| awsauth::create_mapping(auth, &arn, &username, &groups).map_err(|e| e.to_string())).await?;
            for w in &warnings {
                eprintln!("Warning: {w}");
            }
            eprintln!("adding identity \"{arn}\" to auth ConfigMap for cluster \"{cluster}\"");
            serde_json::to_value(awsauth::list(&auth))?
        }
        EksCmd::Iamidentitymapping(IdentityMappingCmd::List { file }) => serde_json::to_value(awsauth::list(&AwsAuthTarget::open(file).await?.read().await?))?,
        EksCmd::Iamidentitymapping(IdentityMappingCmd::Delete { file, arn, all }) => {
            let cluster = file.cluster.clone();
            let target = AwsAuthTarget::open(file).await?;
            let (removed, _) = target.edit(|auth| awsauth::delete_mapping(auth, &arn, all).map_err(|e| e.to_string())).await?;
            eprintln!("removed {removed} mapping(s) for \"{arn}\" from cluster \"{cluster}\"");
            return Ok(ExitCode::SUCCESS);
        }
        EksCmd::AccessEntry(AccessEntryCmd::Create { file, principal_arn, kubernetes_groups, username, policy_arn, namespaces }) => {
            let mut entries = read_entries(&file)?;
            kite_core::aws::arn::Arn::parse(&principal_arn).map_err(|e| anyhow!("{e}"))?;
            if entries.iter().any(|e| e.principal_arn.eq_ignore_ascii_case(&principal_arn)) {
                bail!("ResourceInUseException: an access entry for {principal_arn} already exists in cluster {}", file.cluster);
            }
            let policies = match policy_arn {
                Some(p) => {
                    let scope = if namespaces.is_empty() { AccessScope::Cluster } else { AccessScope::Namespaces(namespaces) };
                    let assoc = AccessPolicyAssociation { policy_arn: p, scope };
                    awsauth::permission_of(&assoc).map_err(|e| anyhow!("{e}"))?;
                    vec![assoc]
                }
                None => Vec::new(),
            };
            let entry = AccessEntry { principal_arn, kubernetes_groups, username, policies };
            entries.push(entry.clone());
            replace_file(&file.access_entries, &serde_json::to_string_pretty(&entries)?)?;
            serde_json::to_value(entry)?
        }
        EksCmd::AccessEntry(AccessEntryCmd::List { file }) => serde_json::to_value(read_entries(&file)?)?,
        EksCmd::AccessEntry(AccessEntryCmd::Delete { file, principal_arn }) => {
            let mut entries = read_entries(&file)?;
            let before = entries.len();
            entries.retain(|e| !e.principal_arn.eq_ignore_ascii_case(&principal_arn));
            if entries.len() == before {
                bail!("ResourceNotFoundException: no access entry for {principal_arn} in cluster {}", file.cluster);
            }
            replace_file(&file.access_entries, &serde_json::to_string_pretty(&entries)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        EksCmd::PodIdentityAssociation(cmd) => pod_identity_association(cmd, &mut Client::load(home)?).await?,
        EksCmd::CreateCluster { name, authentication_mode, no_bootstrap_cluster_creator_admin_permissions, endpoint } => {
            kite_core::aws::eks::validate_cluster_name(&name)?;
            let body = json!({"name": name, "authenticationMode": authentication_mode,
                              "bootstrapClusterCreatorAdminPermissions": !no_bootstrap_cluster_creator_admin_permissions});
            AwsClient::from_env(endpoint.endpoint_url)?.call("POST", "/kite/eks/clusters", Some(&body)).await?
        }
        EksCmd::DescribeCluster { name, endpoint } => {
            kite_core::aws::eks::validate_cluster_name(&name)?;
            AwsClient::from_env(endpoint.endpoint_url)?.call("GET", &format!("/kite/eks/clusters/{name}"), None).await?
        }
        EksCmd::ListClusters { endpoint } => AwsClient::from_env(endpoint.endpoint_url)?.call("GET", "/kite/eks/clusters", None).await?,
        EksCmd::DeleteCluster { name, endpoint } => {
            kite_core::aws::eks::validate_cluster_name(&name)?;
            AwsClient::from_env(endpoint.endpoint_url)?.call("DELETE", &format!("/kite/eks/clusters/{name}"), None).await?
        }
    };
    print(v, format, query)
}

/// Where `eks iamidentitymapping` reads and writes aws-auth: a file, or a live cluster's ConfigMap.
enum AwsAuthTarget {
    File(PathBuf),
    Cluster(kite_kube::Client),
}

impl AwsAuthTarget {
    async fn open(f: AwsAuthFile) -> Result<AwsAuthTarget> {
        match (f.live.target(), f.aws_auth) {
            (Some(target), _) => Ok(AwsAuthTarget::Cluster(kite_kube::client(&target).await?)),
            (None, Some(path)) => Ok(AwsAuthTarget::File(path)),
            (None, None) => bail!("say where aws-auth is: --aws-auth FILE or --kubeconfig PATH"),
        }
    }

    async fn read(&self) -> Result<kite_k8s::awsauth::AwsAuth> {
        use kite_k8s::awsauth::AwsAuth;
        match self {
            AwsAuthTarget::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => AwsAuth::from_configmap_yaml(&text).map_err(|report| anyhow!("{} is not a valid aws-auth ConfigMap:\n{report}", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AwsAuth::default()),
                Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
            },
            AwsAuthTarget::Cluster(client) => Ok(kite_kube::aws_auth::read(client).await?),
        }
    }

    /// Applies `change` and writes the result; the cluster's ConfigMap is replaced with the
    /// resourceVersion read, so a concurrent change is redone on rather than overwritten.
    async fn edit<T>(&self, mut change: impl FnMut(&mut kite_k8s::awsauth::AwsAuth) -> Result<T, String>) -> Result<(T, kite_k8s::awsauth::AwsAuth)> {
        match self {
            AwsAuthTarget::File(path) => {
                let mut auth = self.read().await?;
                let out = change(&mut auth).map_err(|e| anyhow!(e))?;
                replace_file(path, &auth.to_configmap_yaml().map_err(|e| anyhow!("{e}"))?)?;
                Ok((out, auth))
            }
            AwsAuthTarget::Cluster(client) => Ok(kite_kube::aws_auth::edit(client, change).await?),
        }
    }
}

/// The API path; names are checked first so that user input cannot reshape the URL.
fn association_path(cluster: &str, id: Option<&str>) -> Result<String> {
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

/// `kite eks pod-identity-association create|list|show|delete`, answering what `aws eks` prints.
async fn pod_identity_association(cmd: PodIdentityAssociationCmd, client: &mut Client) -> Result<Value> {
    match cmd {
        PodIdentityAssociationCmd::Create { cluster_name, namespace, service_account, role_arn, region } => {
            let region = region.or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
            let body = json!({"namespace": namespace, "serviceAccount": service_account, "roleArn": role_arn, "region": region});
            client.call(Method::POST, &association_path(&cluster_name, None)?, Some(&body)).await
        }
        PodIdentityAssociationCmd::List { cluster_name, namespace, service_account } => {
            let mut query = Vec::new();
            if let Some(ns) = namespace {
                query.push(("namespace", ns));
            }
            if let Some(sa) = service_account {
                query.push(("serviceAccount", sa));
            }
            client.call_with(Method::GET, &association_path(&cluster_name, None)?, &query, None).await
        }
        PodIdentityAssociationCmd::Show { cluster_name, association_id } => {
            client.call(Method::GET, &association_path(&cluster_name, Some(&association_id))?, None).await
        }
        PodIdentityAssociationCmd::Delete { cluster_name, association_id } => {
            client.call(Method::DELETE, &association_path(&cluster_name, Some(&association_id))?, None).await
        }
    }
}
