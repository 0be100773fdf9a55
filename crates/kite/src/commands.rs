//! The CLI's commands: each builds one or two API calls, reshapes the answer as az prints it, and
//! hands it to the output formatter.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{profile_path, Client, Profile};
use crate::output::{self, Format};
use crate::Command;

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
pub enum IamCmd {
    /// OIDC identity providers whose tokens STS accepts (AssumeRoleWithWebIdentity).
    #[command(subcommand)]
    OidcProvider(OidcProviderCmd),
    /// Roles with trust policies.
    #[command(subcommand)]
    Role(IamRoleCmd),
    /// IAM users: people or tools that sign with long-term access keys.
    #[command(subcommand)]
    User(IamUserCmd),
    /// A user's long-term access keys (at most 2; the secret is printed once, at creation).
    #[command(subcommand)]
    AccessKey(AccessKeyCmd),
}

#[derive(Subcommand)]
pub enum IamUserCmd {
    Create {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        path: Option<String>,
    },
    List,
    Show {
        #[arg(long)]
        user_name: String,
    },
    /// Refused while the user has access keys (delete them first), as in IAM.
    Delete {
        #[arg(long)]
        user_name: String,
    },
}

#[derive(Subcommand)]
pub enum AccessKeyCmd {
    /// Prints AccessKeyId and SecretAccessKey; the secret cannot be shown again.
    Create {
        #[arg(long)]
        user_name: String,
    },
    List {
        #[arg(long)]
        user_name: String,
    },
    /// Active keys sign; Inactive keys are refused until reactivated.
    Update {
        #[arg(long)]
        access_key_id: String,
        #[arg(long, value_parser = ["Active", "Inactive"])]
        status: String,
        #[arg(long)]
        user_name: Option<String>,
    },
    /// The key stops working at once.
    Delete {
        #[arg(long)]
        access_key_id: String,
        #[arg(long)]
        user_name: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OidcProviderCmd {
    Create {
        /// The issuer URL (https://…), exactly as tokens carry it in `iss`.
        #[arg(long)]
        url: String,
        /// Accepted audiences, e.g. sts.amazonaws.com.
        #[arg(long, num_args = 1..)]
        client_id_list: Vec<String>,
        #[arg(long, num_args = 1..)]
        thumbprint_list: Vec<String>,
    },
    List,
    Delete {
        #[arg(long)]
        arn: String,
    },
}

#[derive(Subcommand)]
pub enum IamRoleCmd {
    Create {
        #[arg(long)]
        role_name: String,
        /// The trust policy: file://path, @path, a path, or inline JSON.
        #[arg(long, alias = "assume-role-policy-document")]
        trust_policy: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        max_session_duration: Option<u32>,
    },
    List,
    Show {
        #[arg(long)]
        role_name: String,
    },
    Delete {
        #[arg(long)]
        role_name: String,
    },
}

#[derive(Subcommand)]
pub enum K8sCmd {
    #[command(subcommand)]
    Auth(K8sAuthCmd),
    /// aad-pod-identity's CustomResourceDefinitions (aadpodidentity.k8s.io/v1), ready for `kubectl apply -f -` (YAML; -o json too).
    Crds,
    /// Like `kubectl get azureassignedidentities`, from a pod identity directory (what `kite serve --pod-identity-dir` writes).
    Get {
        resource: String,
        /// The pod identity directory (or YAML files).
        #[arg(long, required = true, num_args = 1..)]
        dir: Vec<PathBuf>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
}

#[derive(Args)]
pub struct RbacSource {
    /// RBAC YAML files or directories (Roles, ClusterRoles, bindings; lists from `kubectl get -o yaml` work).
    #[arg(long = "rbac", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum K8sAuthCmd {
    /// Like `kubectl auth can-i`: answers yes/no (exit 0/1); --explain says which binding and rule, or
    /// when denied the subject's bindings and the smallest Role that would grant it.
    CanI {
        verb: String,
        /// TYPE[.GROUP][/NAME] or a non-resource URL such as /healthz.
        resource: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(long)]
        subresource: Option<String>,
        #[arg(long = "as")]
        as_user: Option<String>,
        #[arg(long = "as-group")]
        as_groups: Vec<String>,
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        rbac: RbacSource,
    },
    /// Who may VERB RESOURCE in a namespace, and through which binding.
    WhoCan {
        verb: String,
        resource: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        rbac: RbacSource,
    },
}

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
    PodIdentityAssociation(crate::eks_pod_identity::PodIdentityCmd),
}

/// A live Kubernetes cluster, instead of files.
#[derive(Args)]
#[group(id = "kubernetes", multiple = false)]
pub struct ClusterArgs {
    /// Read (and for `eks iamidentitymapping` and `aks pod-identity`, write) the cluster this kubeconfig's current context names.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Use the pod's service account, when kite runs inside the cluster.
    #[arg(long)]
    in_cluster: bool,
}

impl ClusterArgs {
    pub fn target(&self) -> Option<kite_kube::Target> {
        match (&self.kubeconfig, self.in_cluster) {
            (Some(path), _) => Some(kite_kube::Target::Kubeconfig(path.clone())),
            (None, true) => Some(kite_kube::Target::InCluster),
            (None, false) => None,
        }
    }
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
pub enum KeysCmd {
    /// The published signing keys, which one signs, and when superseded ones retire.
    List,
    /// Add a key that signs from now on; older keys stay published until their tokens have expired.
    Rotate,
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// The subscription in use.
    Show,
    /// Every subscription of the tenant.
    List,
}

#[derive(Subcommand)]
pub enum GroupCmd {
    Create {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'l', long)]
        location: String,
        /// Space-separated tags: key[=value].
        #[arg(long, num_args = 0..)]
        tags: Vec<String>,
    },
    Show {
        #[arg(short = 'n', long)]
        name: String,
    },
    List,
    /// Delete a group with every identity and role assignment in it.
    Delete {
        #[arg(short = 'n', long)]
        name: String,
        /// Do not prompt for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

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

#[derive(Subcommand)]
pub enum RoleCmd {
    #[command(subcommand)]
    Definition(DefinitionCmd),
    #[command(subcommand)]
    Assignment(AssignmentCmd),
    /// Is an action allowed for a principal at a scope, and why (exit code 0 allowed, 3 denied).
    Check {
        #[arg(long)]
        assignee: String,
        #[arg(long)]
        action: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// The action is a data action (e.g. Microsoft.KeyVault/vaults/secrets/getSecret/action).
        #[arg(long)]
        data_action: bool,
    },
}

#[derive(Subcommand)]
pub enum DefinitionCmd {
    List {
        /// A role name or id.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        custom_role_only: bool,
    },
    /// Create a custom role from az-format JSON: a file, @file, or inline JSON.
    Create {
        #[arg(long)]
        role_definition: String,
    },
    Delete {
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Default, Clone)]
pub struct ScopeArgs {
    /// /subscriptions/{id}[/resourceGroups/{rg}[/providers/…]]
    #[arg(long)]
    scope: Option<String>,
    /// Shorthand for --scope /subscriptions/{current}/resourceGroups/{rg}.
    #[arg(short = 'g', long)]
    resource_group: Option<String>,
}

#[derive(Subcommand)]
pub enum AssignmentCmd {
    Create {
        #[arg(long)]
        role: String,
        #[arg(long)]
        assignee: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        description: Option<String>,
    },
    List {
        #[command(flatten)]
        filter: AssignmentFilterArgs,
        /// Assignments at every scope, not only the subscription.
        #[arg(long)]
        all: bool,
        /// With --scope: also assignments inherited from scopes above it.
        #[arg(long)]
        include_inherited: bool,
    },
    Delete {
        /// Assignment IDs (…/providers/Microsoft.Authorization/roleAssignments/{name}).
        #[arg(long, num_args = 1..)]
        ids: Vec<String>,
        #[command(flatten)]
        filter: AssignmentFilterArgs,
    },
}

#[derive(Args)]
pub struct AssignmentFilterArgs {
    #[arg(long)]
    assignee: Option<String>,
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    scope: ScopeArgs,
}

impl AssignmentFilterArgs {
    /// Query parameters of a role-assignment listing; `atScope` when a scope is given.
    async fn query(&self, client: &mut Client, at_scope: bool) -> Result<Vec<(&'static str, String)>> {
        let mut q = Vec::new();
        if at_scope {
            q.push(("atScope", "true".to_string()));
        }
        if let Some(a) = &self.assignee {
            q.push(("principalId", principal_id(client, a).await?));
        }
        if let Some(r) = &self.role {
            q.push(("role", r.clone()));
        }
        Ok(q)
    }
}

pub(crate) fn print(value: Value, format: Format, query: Option<&str>) -> Result<ExitCode> {
    print_as(value, format, query, None)
}

/// Like [`print`], with the columns az's table view shows for this kind of object when no --query is given.
fn print_as(value: Value, format: Format, query: Option<&str>, table_view: Option<&str>) -> Result<ExitCode> {
    let query = match (format, query) {
        (Format::Table, None) => table_view,
        (_, q) => q,
    };
    let value = output::query(value, query)?;
    print!("{}", output::render(&value, format)?);
    Ok(ExitCode::SUCCESS)
}

/// ARM's `properties` folded into the object, as az shows resources.
fn flatten(mut v: Value) -> Value {
    let Some(Value::Object(props)) = v.as_object_mut().and_then(|o| o.remove("properties")) else { return v };
    let Some(obj) = v.as_object_mut() else { return v };
    for (k, val) in props {
        let key = if k == "type" { "roleType".to_string() } else { k };
        obj.entry(key).or_insert(val);
    }
    v
}

pub(crate) fn identity_view(v: Value) -> Value {
    let mut v = flatten(v);
    if let Some(id) = v["id"].as_str() {
        let rg = id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("resourcegroups")).nth(1).map(str::to_string);
        v["resourceGroup"] = json!(rg);
    }
    v
}

pub(crate) fn list_of(v: Value, f: impl Fn(Value) -> Value) -> Value {
    Value::Array(match v.get("value") {
        Some(Value::Array(items)) => items.iter().cloned().map(f).collect(),
        _ => Vec::new(),
    })
}

/// `@file` or a file path or inline text, as az reads such arguments.
fn read_arg(raw: &str) -> Result<String> {
    let path = raw.strip_prefix('@').unwrap_or(raw);
    if raw.starts_with('@') || Path::new(path).is_file() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {path}"));
    }
    Ok(raw.to_string())
}

impl ScopeArgs {
    fn resolve(&self, client: &Client) -> Result<Option<String>> {
        match (&self.scope, &self.resource_group) {
            (Some(_), Some(_)) => bail!("give --scope or --resource-group, not both"),
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(rg)) => Ok(Some(format!("/subscriptions/{}/resourceGroups/{rg}", client.subscription()?))),
            (None, None) => Ok(None),
        }
    }

    fn required(&self, client: &Client) -> Result<String> {
        self.resolve(client)?.ok_or_else(|| {
            anyhow!(
                "--scope is required, e.g. --scope /subscriptions/{}/resourceGroups/<group> (or -g <group>)",
                client.subscription().unwrap_or("<subscription>")
            )
        })
    }
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

/// `--assignee` (object id, client id or name) → the principal's object id.
async fn principal_id(client: &mut Client, assignee: &str) -> Result<String> {
    let p = client.call_with(Method::GET, "/v1.0/principals/resolve", &[("assignee", assignee.to_string())], None).await?;
    p["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the server returned no object id for '{assignee}'"))
}

pub async fn run(command: Command, home: &Path, explicit_format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    let format = explicit_format.unwrap_or(Format::Json);
    match command {
        Command::Login(args) => login(args, home, format, query).await,
        Command::Logout => {
            let path = profile_path(home);
            if path.exists() {
                std::fs::remove_file(&path)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Account(cmd) => {
            let mut client = Client::load(home)?;
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
        Command::Group(cmd) => group(cmd, &mut Client::load(home)?, format, query).await,
        Command::Identity(cmd) => identity(cmd, &mut Client::load(home)?, format, query).await,
        Command::Ad(AdCmd::Sp(cmd)) => sp(cmd, &mut Client::load(home)?, format, query).await,
        Command::Ad(AdCmd::App(AppCmd::FederatedCredential(cmd))) => app_fic(cmd, &mut Client::load(home)?, format, query).await,
        Command::Role(cmd) => role(cmd, &mut Client::load(home)?, format, query).await,
        Command::Iam(cmd) => iam(cmd, &mut Client::load(home)?, format, query).await,
        Command::K8s(K8sCmd::Auth(cmd)) => k8s_auth(cmd, explicit_format, query),
        Command::Eks(EksCmd::PodIdentityAssociation(cmd)) => print(crate::eks_pod_identity::run(cmd, &mut Client::load(home)?).await?, format, query),
        Command::K8s(K8sCmd::Crds) => crate::podidentity::crds(explicit_format, query),
        Command::K8s(K8sCmd::Get { resource, dir, namespace }) => crate::podidentity::get(&resource, &dir, namespace.as_deref(), explicit_format, query),
        Command::Eks(cmd) => eks(cmd, format, query).await,
        Command::Aks(cmd) => crate::aks::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Keys(cmd) => {
            let mut client = Client::load(home)?;
            let v = match cmd {
                KeysCmd::List => client.call(Method::GET, "/kite/signingKeys", None).await?,
                KeysCmd::Rotate => client.call(Method::POST, "/kite/signingKeys/rotate", None).await?,
            };
            print(list_of(v, |k| k), format, query)
        }
        Command::Serve(_) => unreachable!("serve is handled in main"),
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

async fn login(args: LoginArgs, home: &Path, format: Format, query: Option<&str>) -> Result<ExitCode> {
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

fn parse_tags(tags: &[String]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect()
}

async fn group(cmd: GroupCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let base = format!("/subscriptions/{}/resourceGroups", client.subscription()?);
    let v = match cmd {
        GroupCmd::Create { name, location, tags } => {
            let body = json!({"location": location, "tags": (!tags.is_empty()).then(|| parse_tags(&tags))});
            client.call(Method::PUT, &format!("{base}/{name}"), Some(&body)).await?
        }
        GroupCmd::Show { name } => client.call(Method::GET, &format!("{base}/{name}"), None).await?,
        GroupCmd::List => list_of(client.call(Method::GET, &base, None).await?, |g| g),
        GroupCmd::Delete { name, yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("deleting '{name}' removes every identity and role assignment in it; confirm with --yes");
                }
                eprint!("Are you sure you want to delete resource group '{name}' and everything in it? (y/n): ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !answer.trim().eq_ignore_ascii_case("y") {
                    return Ok(ExitCode::from(1));
                }
            }
            eprintln!(" - Deleting resource group '{name}' with its identities and role assignments ...");
            let out = client.call(Method::DELETE, &format!("{base}/{name}"), None).await?;
            let gone = &out["deleted"];
            eprintln!(" - Done: {} identit(ies) and {} role assignment(s) removed", gone["identities"], gone["roleAssignments"]);
            return Ok(ExitCode::SUCCESS);
        }
    };
    print(v, format, query)
}

async fn identity(cmd: IdentityCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
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

async fn iam(cmd: IamCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        IamCmd::OidcProvider(OidcProviderCmd::Create { url, client_id_list, thumbprint_list }) => {
            let body = json!({"Url": url, "ClientIDList": client_id_list, "ThumbprintList": thumbprint_list});
            client.call(Method::POST, "/kite/aws/oidcProviders", Some(&body)).await?
        }
        IamCmd::OidcProvider(OidcProviderCmd::List) => client.call(Method::GET, "/kite/aws/oidcProviders", None).await?["OpenIDConnectProviderList"].take(),
        IamCmd::OidcProvider(OidcProviderCmd::Delete { arn }) => {
            client.call_with(Method::DELETE, "/kite/aws/oidcProviders", &[("arn", arn)], None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        IamCmd::Role(IamRoleCmd::Create { role_name, trust_policy, path, max_session_duration }) => {
            let text = read_arg(trust_policy.strip_prefix("file://").unwrap_or(&trust_policy))?;
            let policy: Value = serde_json::from_str(&text).context("the trust policy is not valid JSON")?;
            let body = json!({"RoleName": role_name, "Path": path, "AssumeRolePolicyDocument": policy, "MaxSessionDuration": max_session_duration});
            json!({"Role": client.call(Method::POST, "/kite/aws/roles", Some(&body)).await?})
        }
        IamCmd::Role(IamRoleCmd::List) => client.call(Method::GET, "/kite/aws/roles", None).await?,
        IamCmd::Role(IamRoleCmd::Show { role_name }) => json!({"Role": client.call(Method::GET, &format!("/kite/aws/roles/{role_name}"), None).await?}),
        IamCmd::Role(IamRoleCmd::Delete { role_name }) => {
            client.call(Method::DELETE, &format!("/kite/aws/roles/{role_name}"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        IamCmd::User(IamUserCmd::Create { user_name, path }) => {
            client.call(Method::POST, "/kite/aws/users", Some(&json!({"UserName": user_name, "Path": path}))).await?
        }
        IamCmd::User(IamUserCmd::List) => client.call(Method::GET, "/kite/aws/users", None).await?,
        IamCmd::User(IamUserCmd::Show { user_name }) => client.call(Method::GET, &format!("/kite/aws/users/{user_name}"), None).await?,
        IamCmd::User(IamUserCmd::Delete { user_name }) => {
            client.call(Method::DELETE, &format!("/kite/aws/users/{user_name}"), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        IamCmd::AccessKey(AccessKeyCmd::Create { user_name }) => client.call(Method::POST, &format!("/kite/aws/users/{user_name}/accessKeys"), None).await?,
        IamCmd::AccessKey(AccessKeyCmd::List { user_name }) => client.call(Method::GET, &format!("/kite/aws/users/{user_name}/accessKeys"), None).await?,
        IamCmd::AccessKey(AccessKeyCmd::Update { access_key_id, status, user_name }) => {
            let owner: Vec<(&str, String)> = user_name.into_iter().map(|u| ("UserName", u)).collect();
            client.call_with(Method::PATCH, &format!("/kite/aws/accessKeys/{access_key_id}"), &owner, Some(&json!({"Status": status}))).await?
        }
        IamCmd::AccessKey(AccessKeyCmd::Delete { access_key_id, user_name }) => {
            let owner: Vec<(&str, String)> = user_name.into_iter().map(|u| ("UserName", u)).collect();
            client.call_with(Method::DELETE, &format!("/kite/aws/accessKeys/{access_key_id}"), &owner, None).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    print(v, format, query)
}

/// Replaces a file in one step (write aside, then rename), so a reader never sees half of it.
pub(crate) fn replace_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("kite-tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
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

async fn eks(cmd: EksCmd, format: Format, query: Option<&str>) -> Result<ExitCode> {
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
        EksCmd::PodIdentityAssociation(_) => unreachable!("pod identity associations are handled in run"),
    };
    print(v, format, query)
}

/// Kubernetes RBAC questions, answered offline from YAML with kite-k8s.
fn k8s_auth(cmd: K8sAuthCmd, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    let load = |src: &RbacSource| kite_k8s::RbacSnapshot::load(&src.paths).map_err(|e| anyhow!("{e}"));
    match cmd {
        K8sAuthCmd::CanI { verb, resource, namespace, all_namespaces, subresource, as_user, as_groups, explain, rbac } => {
            let snapshot = load(&rbac)?;
            let args = kite_k8s::CanIArgs { verb, resource, subresource, namespace, all_namespaces, as_user, as_groups, explain };
            let decision = kite_k8s::can_i(&snapshot, &args).map_err(|e| anyhow!("{e}"))?;
            let code = if decision.allowed { ExitCode::SUCCESS } else { ExitCode::from(1) };
            match format {
                Some(f) => {
                    print(serde_json::to_value(&decision)?, f, query)?;
                }
                None => {
                    println!("{}", if decision.allowed { "yes" } else { "no" });
                    for w in &decision.warnings {
                        eprintln!("Warning: {w}");
                    }
                    if explain {
                        println!("{}", decision.reason);
                        for c in &decision.bindings_considered {
                            println!("  - {}", c.why);
                        }
                        if let Some(s) = &decision.suggestion {
                            println!("The smallest grant that would allow it:\n{}", s.yaml);
                        }
                    }
                }
            }
            Ok(code)
        }
        K8sAuthCmd::WhoCan { verb, resource, namespace, rbac } => {
            let snapshot = load(&rbac)?;
            let grants = kite_k8s::who_can(&snapshot, &verb, &resource, &namespace).map_err(|e| anyhow!("{e}"))?;
            let rows: Vec<Value> = grants
                .iter()
                .map(|g| {
                    let binding = match &g.binding.namespace {
                        Some(ns) => format!("{:?}/{}/{}", g.binding.kind, ns, g.binding.name),
                        None => format!("{:?}/{}", g.binding.kind, g.binding.name),
                    };
                    json!({"subject": g.subject.name, "kind": g.subject.kind, "binding": binding, "role": g.role.name})
                })
                .collect();
            print(Value::Array(rows), format.unwrap_or(Format::Table), query)
        }
    }
}

fn authz(scope: &str) -> String {
    let scope = if scope == "/" { "" } else { scope.trim_end_matches('/') };
    format!("{scope}/providers/Microsoft.Authorization")
}

async fn role(cmd: RoleCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let sub_scope = format!("/subscriptions/{}", client.subscription()?);
    let v = match cmd {
        RoleCmd::Definition(DefinitionCmd::List { name, custom_role_only }) => {
            let mut q = Vec::new();
            if let Some(n) = name {
                q.push(("roleName", n));
            }
            if custom_role_only {
                q.push(("custom", "true".to_string()));
            }
            let list = list_of(client.call_with(Method::GET, &format!("{}/roleDefinitions", authz(&sub_scope)), &q, None).await?, flatten);
            return print_as(list, format, query, Some("[].{Name: roleName, Type: roleType, Description: description}"));
        }
        RoleCmd::Definition(DefinitionCmd::Create { role_definition }) => {
            let text = read_arg(&role_definition)?;
            let def: Value = serde_json::from_str(&text).context("--role-definition is not valid JSON")?;
            let id = uuid_of(&def).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let body = json!({ "properties": def });
            flatten(client.call(Method::PUT, &format!("{}/roleDefinitions/{id}", authz(&sub_scope)), Some(&body)).await?)
        }
        RoleCmd::Definition(DefinitionCmd::Delete { name }) => {
            let id = match uuid::Uuid::parse_str(&name) {
                Ok(id) => id.to_string(),
                Err(_) => {
                    let found = client.call_with(Method::GET, &format!("{}/roleDefinitions", authz(&sub_scope)), &[("roleName", name.clone())], None).await?;
                    found["value"][0]["name"].as_str().map(str::to_string).ok_or_else(|| anyhow!("role '{name}' not found"))?
                }
            };
            client.call(Method::DELETE, &format!("{}/roleDefinitions/{id}", authz(&sub_scope)), None).await?;
            return Ok(ExitCode::SUCCESS);
        }
        RoleCmd::Assignment(AssignmentCmd::Create { role, assignee, scope, description }) => {
            let scope = scope.required(client)?;
            let principal = principal_id(client, &assignee).await?;
            let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal, "description": description}});
            let name = uuid::Uuid::new_v4();
            flatten(client.call(Method::PUT, &format!("{}/roleAssignments/{name}", authz(&scope)), Some(&body)).await?)
        }
        RoleCmd::Assignment(AssignmentCmd::List { filter, all, include_inherited }) => {
            let scope = filter.scope.resolve(client)?;
            let mut q = filter.query(client, scope.is_some()).await?;
            q.extend([("all", all.to_string()), ("includeInherited", include_inherited.to_string())]);
            let at = scope.unwrap_or(sub_scope);
            let list = list_of(client.call_with(Method::GET, &format!("{}/roleAssignments", authz(&at)), &q, None).await?, flatten);
            return print_as(list, format, query, Some("[].{Principal: principalName, Role: roleDefinitionName, Scope: scope}"));
        }
        RoleCmd::Assignment(AssignmentCmd::Delete { ids, filter }) => {
            let targets = if !ids.is_empty() {
                ids
            } else {
                let scope = filter.scope.required(client)?;
                let q = filter.query(client, true).await?;
                let found = client.call_with(Method::GET, &format!("{}/roleAssignments", authz(&scope)), &q, None).await?;
                let ids: Vec<String> =
                    list_of(found, |a| a["id"].clone()).as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
                if ids.is_empty() {
                    bail!("no role assignment matches at '{scope}'; list them with 'kite role assignment list --scope {scope}'");
                }
                ids
            };
            for id in targets {
                client.call(Method::DELETE, &id, None).await?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        RoleCmd::Check { assignee, action, scope, data_action } => {
            let scope = scope.required(client)?;
            let principal = principal_id(client, &assignee).await?;
            let body = json!({"principalId": principal, "action": action, "dataAction": data_action});
            let decision = client.call(Method::POST, &format!("{}/checkAccess", authz(&scope)), Some(&body)).await?;
            let allowed = decision["allowed"] == json!(true);
            let shown = if format == Format::Table { json!({"allowed": allowed, "reason": decision["reason"]}) } else { decision };
            print(shown, format, query)?;
            return Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(3) });
        }
    };
    print(v, format, query)
}

fn uuid_of(def: &Value) -> Option<String> {
    let raw = def.get("name").or_else(|| def.get("id")).and_then(Value::as_str)?;
    let tail = raw.rsplit('/').next()?;
    uuid::Uuid::parse_str(tail).ok().map(|u| u.to_string())
}
