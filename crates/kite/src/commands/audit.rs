//! `kite audit`: the server's audit trail, read as `az monitor activity-log list` reads Activity
//! Log (`caller`, `operationName`, `resourceId`, `status`, `eventTimestamp`, `correlationId`); the
//! AWS-shaped events read as CloudTrail writes them (`eventName`, `userIdentity.arn`,
//! `requestParameters`). `export` writes every selected event as one JSON line, for a SIEM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::output::{print_as, Format};

#[derive(Args)]
pub struct Selection {
    /// Only events by this caller (object/client ID, ARN, pod `namespace/name`, Kubernetes user; any case).
    #[arg(long)]
    caller: Option<String>,
    /// Only these operations: `Microsoft.Authorization/roleAssignments/*`, `CreateCluster`, … (`*`, `?` wildcards).
    #[arg(long)]
    operation: Option<String>,
    /// Only events on this resource ID and what lies below it.
    #[arg(long = "resource-id")]
    resource_id: Option<String>,
    /// Succeeded or Failed.
    #[arg(long, value_parser = ["Succeeded", "Failed"], ignore_case = true)]
    status: Option<String>,
    /// From this time (RFC 3339, e.g. 2026-12-01T00:00:00Z); default: the start of the retention.
    #[arg(long = "start-time")]
    start_time: Option<String>,
    /// Until this time (RFC 3339); default: now.
    #[arg(long = "end-time")]
    end_time: Option<String>,
}

impl Selection {
    /// Activity Log's `$filter`, quoting values as OData does.
    fn filter(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let clauses = [
            self.start_time.as_deref().map(|t| format!("eventTimestamp ge {}", quote(t))),
            self.end_time.as_deref().map(|t| format!("eventTimestamp le {}", quote(t))),
            self.caller.as_deref().map(|c| format!("caller eq {}", quote(c))),
            self.operation.as_deref().map(|o| format!("operationName eq {}", quote(o))),
            self.resource_id.as_deref().map(|r| format!("resourceId eq {}", quote(r))),
            self.status.as_deref().map(|s| format!("status eq {}", quote(s))),
        ];
        clauses.into_iter().flatten().collect::<Vec<_>>().join(" and ")
    }
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Events of the trail, oldest first.
    List {
        #[command(flatten)]
        selection: Selection,
    },
    /// Every selected event as one JSON object per line, to a file or stdout.
    Export {
        #[command(flatten)]
        selection: Selection,
        /// Write here instead of stdout (replaced if it exists).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Columns of the table view, for Activity Log and CloudTrail events alike.
const TABLE: &str = "[].{Time: eventTimestamp || eventTime, Caller: caller || userIdentity.arn, Operation: operationName.value || eventName, \
                     Status: status.value || status, Resource: resourceId || resources[0].ARN}";

/// Reads every page the server gives, following its `$skipToken`s.
async fn events(client: &mut Client, selection: &Selection, mut each: impl FnMut(Value) -> Result<()>) -> Result<()> {
    let path = format!("/subscriptions/{}/providers/Microsoft.Insights/eventtypes/management/values", client.subscription()?);
    let filter = selection.filter();
    let mut skip: Option<String> = None;
    loop {
        let mut query = vec![("api-version", "2015-04-01".to_string()), ("$filter", filter.clone())];
        if let Some(token) = &skip {
            query.push(("$skipToken", token.clone()));
        }
        let page = client.call_with(Method::GET, &path, &query, None).await?;
        for event in page["value"].as_array().cloned().unwrap_or_default() {
            each(event)?;
        }
        let next = page["nextLink"].as_str().and_then(|link| url::Url::parse(link).ok());
        skip = next.and_then(|u| u.query_pairs().find(|(k, _)| k == "$skipToken").map(|(_, v)| v.into_owned()));
        if skip.is_none() {
            return Ok(());
        }
    }
}

pub async fn run(cmd: AuditCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    match cmd {
        AuditCmd::List { selection } => {
            let mut all = Vec::new();
            events(client, &selection, |e| {
                all.push(e);
                Ok(())
            })
            .await?;
            print_as(Value::Array(all), format, query, Some(TABLE))
        }
        AuditCmd::Export { selection, file } => {
            let mut out: Box<dyn Write> = match &file {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut n = 0u64;
            events(client, &selection, |e| {
                n += 1;
                writeln!(out, "{}", serde_json::to_string(&e)?).context("writing the export")
            })
            .await?;
            out.flush().context("writing the export")?;
            if let Some(path) = file {
                eprintln!("kite: {n} events written to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
