//! `kite iam`: AWS-shaped IAM (OIDC providers, roles, users and their access keys) that kite's STS endpoint honours.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::args::read_arg;
use crate::client::Client;
use crate::output::{print, Format};

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

pub async fn run(cmd: IamCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
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
