//! `kite group`: resource groups.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::output::{print, Format};
use crate::view::list_of;

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

pub async fn run(cmd: GroupCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
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

fn parse_tags(tags: &[String]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect()
}
