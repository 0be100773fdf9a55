//! `kite role`: role definitions, role assignments and access checks.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::read_arg;
use crate::client::Client;
use crate::output::{print, print_as, Format};
use crate::view::{flatten, list_of};

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

pub async fn run(cmd: RoleCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
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
            flatten(assign(client, &role, &principal, &scope, description).await?)
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

/// Assigns `role` (name or ID) to the principal with object ID `principal` at `scope`.
pub async fn assign(client: &mut Client, role: &str, principal: &str, scope: &str, description: Option<String>) -> Result<Value> {
    let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal, "description": description}});
    let name = uuid::Uuid::new_v4();
    client.call(Method::PUT, &format!("{}/roleAssignments/{name}", authz(scope)), Some(&body)).await
}

fn authz(scope: &str) -> String {
    let scope = if scope == "/" { "" } else { scope.trim_end_matches('/') };
    format!("{scope}/providers/Microsoft.Authorization")
}

/// `--assignee` (object id, client id or name) → the principal's object id.
async fn principal_id(client: &mut Client, assignee: &str) -> Result<String> {
    let p = client.call_with(Method::GET, "/v1.0/principals/resolve", &[("assignee", assignee.to_string())], None).await?;
    p["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the server returned no object id for '{assignee}'"))
}

fn uuid_of(def: &Value) -> Option<String> {
    let raw = def.get("name").or_else(|| def.get("id")).and_then(Value::as_str)?;
    let tail = raw.rsplit('/').next()?;
    uuid::Uuid::parse_str(tail).ok().map(|u| u.to_string())
}
