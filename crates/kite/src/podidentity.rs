//! `kite k8s crds` and `kite k8s get`: aad-pod-identity's CRDs, and the objects in a pod identity
//! directory read kubectl-style. Offline: no server involved.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use kite_k8s::podidentity::ClusterState;
use serde_json::{json, Value};

use crate::output::{self, Format};

/// kubectl's shape for several objects in JSON.
fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

pub fn crds(format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    let all = kite_k8s::podidentity::crds::crds();
    match (format.unwrap_or(Format::Yaml), query) {
        // `kubectl apply -f -` takes the manifests one document each.
        (Format::Yaml, None) => {
            let docs: Vec<String> = all.iter().map(serde_yaml_ng::to_string).collect::<Result<_, _>>()?;
            print!("{}", docs.join("---\n"));
        }
        (Format::Table | Format::Tsv, _) => bail!("kite k8s crds prints manifests: use -o yaml (the default) or -o json"),
        (format, query) => print!("{}", output::render(&output::query(list(all), query)?, format)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get(resource: &str, dirs: &[PathBuf], namespace: Option<&str>, format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
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
