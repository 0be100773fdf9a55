//! EKS authentication as aws-iam-authenticator and the EKS control plane decide it: the
//! `kube-system/aws-auth` ConfigMap (`mapRoles`, `mapUsers`, `mapAccounts`), EKS access entries,
//! and the cluster's authentication mode. Security-sensitive and pure: every function here works
//! on values the caller has read, and every refusal explains itself and gives the corrected value.
//!
//! - [`AwsAuth::from_configmap_yaml`] / [`AwsAuth::to_configmap_yaml`] read and write the ConfigMap.
//! - [`validate`] finds what upstream would silently get wrong: a role path in `rolearn` (STS drops
//!   paths, so the entry never matches), session ARNs, duplicates, unknown template variables,
//!   `system:masters` for people other than the cluster creator.
//! - [`apply`] / [`AwsAuthStore`] refuse a ConfigMap that fails validation as a whole, keeping the
//!   last good mapping in force. Upstream instead drops every mapping of a list with one YAML typo,
//!   locking everyone but the cluster creator out.
//! - [`map`] is the authenticator's lookup (canonical ARN, case-insensitive, `mapRoles`, then
//!   `mapUsers`, then `mapAccounts`) with its username and group templates; a miss names the
//!   closest entry and how it differs.
//! - [`create_mapping`], [`delete_mapping`], [`list`] are `eksctl … iamidentitymapping`.
//! - [`AccessEntry`], [`AuthenticationMode`] and [`resolve`] add EKS access entries, which win over
//!   `aws-auth` in `API_AND_CONFIG_MAP`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kite_core::aws::arn::{canonicalize, is_account_id, Arn, Resource, PARTITIONS};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::rbac::authorizer::PRIVILEGED_GROUP;
use crate::{Error, Result};

/// The ConfigMap the authenticator watches, and its namespace.
pub const CONFIGMAP_NAME: &str = "aws-auth";
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";

/// The template variables upstream renders in usernames and groups.
pub const TEMPLATE_VARIABLES: [&str; 5] = ["AccountID", "SessionName", "SessionNameRaw", "AccessKeyID", "EC2PrivateDNSName"];

/// A `mapRoles` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    pub rolearn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// A `mapUsers` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMapping {
    pub userarn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// The `aws-auth` ConfigMap's three lists, in the order they were written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsAuth {
    pub map_roles: Vec<RoleMapping>,
    pub map_users: Vec<UserMapping>,
    pub map_accounts: Vec<String>,
}

/// Where a finding is: the document itself, or an entry (index from 0) of one of the lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Section {
    Document,
    MapRoles(Option<usize>),
    MapUsers(Option<usize>),
    MapAccounts(Option<usize>),
}

/// One problem: which entry, what is wrong, and the value to write instead when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub section: Section,
    /// Human name of the entry, e.g. `mapRoles[1] (rolearn arn:aws:iam::111122223333:role/dev/ops)`.
    pub entry: String,
    /// 1-based line in the ConfigMap YAML, when the finding came from a document and could be placed.
    pub line: Option<usize>,
    pub problem: String,
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{}: {}", self.entry, self.problem)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// What [`validate`] found. Errors refuse the ConfigMap; warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

fn finding(section: Section, entry: impl Into<String>, problem: impl Into<String>, fix: Option<String>) -> Finding {
    Finding { section, entry: entry.into(), line: None, problem: problem.into(), fix }
}

fn role_label(i: usize, arn: &str) -> String {
    format!("mapRoles[{i}] (rolearn {arn})")
}

fn user_label(i: usize, arn: &str) -> String {
    format!("mapUsers[{i}] (userarn {arn})")
}

mod access_entries;
mod configmap;
mod map;
mod mappings;
mod template;
#[cfg(test)]
mod tests;
mod validate;

pub use access_entries::*;
use configmap::*;
pub use map::*;
pub use mappings::*;
use template::*;
pub use validate::*;
