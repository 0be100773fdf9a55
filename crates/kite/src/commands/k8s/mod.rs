//! `kite k8s`: Kubernetes RBAC questions (`auth can-i`, `auth who-can`) answered from RBAC YAML,
//! aad-pod-identity's CRDs, and the objects in a pod identity directory read kubectl-style.
//! the manifests that make a cluster call kite, and annotated service accounts for workload identity.
//! Offline except `serviceaccount create`, which creates the identity through the server.

mod manifests;
mod serviceaccount;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use kite_k8s::podidentity::ClusterState;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::{self, print, Format};

#[derive(Subcommand)]
pub enum K8sCmd {
    #[command(subcommand)]
    Auth(K8sAuthCmd),
    /// aad-pod-identity's CustomResourceDefinitions (aadpodidentity.k8s.io/v1), ready for `kubectl apply -f -` (YAML; -o json too).
    Crds,
    /// Manifests to run kite in a cluster and make the cluster call it (`kubectl apply -f -`):
    /// server, agent, crds, webhooks (kube-apiserver's files), all (the default), or one webhook or CA ConfigMap.
    Manifests(manifests::ManifestsArgs),
    /// Service accounts for workload identity.
    #[command(subcommand)]
    Serviceaccount(ServiceAccountCmd),
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

#[derive(Subcommand)]
pub enum ServiceAccountCmd {
    /// The identity a service account's pods become (created when missing), trust for that service
    /// account's tokens, optionally a role, and the annotated ServiceAccount (as `azwi serviceaccount create`).
    Create(serviceaccount::CreateArgs),
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

pub async fn run(cmd: K8sCmd, home: &std::path::Path, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    match cmd {
        K8sCmd::Auth(cmd) => auth(cmd, format, query),
        K8sCmd::Crds => {
            print_manifests(kite_k8s::podidentity::crds::crds(), format, query)?;
            Ok(ExitCode::SUCCESS)
        }
        K8sCmd::Manifests(cmd) => manifests::run(cmd, home, format, query),
        K8sCmd::Serviceaccount(ServiceAccountCmd::Create(args)) => serviceaccount::create(args, &mut Client::load(home)?, format).await,
        K8sCmd::Get { resource, dir, namespace } => get(&resource, &dir, namespace.as_deref(), format, query),
    }
}

/// Kubernetes RBAC questions, answered offline from YAML with kite-k8s.
fn auth(cmd: K8sAuthCmd, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
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
/// kubectl's shape for several objects in JSON.
fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Kubernetes objects as kubectl takes them: YAML documents by default, or a JSON List.
fn print_manifests(all: Vec<Value>, format: Option<Format>, query: Option<&str>) -> Result<()> {
    match (format.unwrap_or(Format::Yaml), query) {
        // `kubectl apply -f -` takes the manifests one document each.
        (Format::Yaml, None) => {
            let docs: Vec<String> = all.iter().map(serde_yaml_ng::to_string).collect::<Result<_, _>>()?;
            print!("{}", docs.join("---\n"));
        }
        (Format::Table | Format::Tsv, _) => bail!("this prints Kubernetes manifests: use -o yaml (the default) or -o json"),
        (format, query) => print!("{}", output::render(&output::query(list(all), query)?, format)?),
    }
    Ok(())
}

fn get(resource: &str, dirs: &[PathBuf], namespace: Option<&str>, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    match kite_k8s::podidentity::crds::kind_named(resource) {
        Some("AzureAssignedIdentity") => {}
        Some(kind) => bail!("kite k8s get reads azureassignedidentities (the controller's output); {kind} objects are the YAML you wrote into the directory"),
        None => bail!("unknown resource '{resource}': kite k8s get reads azureassignedidentities"),
    }
    let state = ClusterState::load(dirs).map_err(|e| anyhow!("{e}"))?;
    let mut items: Vec<_> = state.assigned.into_iter().filter(|a| namespace.is_none_or(|ns| a.metadata.namespace == ns)).collect();
    items.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    let Some(format) = format.filter(|f| *f != Format::Table) else {
        let mut header = vec!["NAME", "POD", "NODE", "IDENTITY", "STATUS"];
        let rows = items.iter().map(|a| {
            let mut row = vec![
                a.metadata.name.clone(),
                a.spec.pod.clone(),
                a.spec.node_name.clone(),
                a.spec.identity.object.metadata.name.clone(),
                a.status.status.clone(),
            ];
            if namespace.is_none() {
                row.insert(0, a.metadata.namespace.clone());
            }
            row
        });
        if namespace.is_none() {
            header.insert(0, "NAMESPACE");
        }
        print!("{}", columns(header.into_iter().map(String::from).collect(), rows.collect()));
        return Ok(ExitCode::SUCCESS);
    };
    let items = items.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?;
    print!("{}", output::render(&output::query(list(items), query)?, format)?);
    Ok(ExitCode::SUCCESS)
}

/// kubectl's table: upper-case headers, columns three spaces apart, no rules.
fn columns(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..header.len()).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}
