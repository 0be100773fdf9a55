//! `kite doctor`: what will break next, found by pure rules over a snapshot of the store and the
//! cluster source. Each finding names the object, says what will happen and when, and gives the
//! exact kite command that fixes it. The server (or CLI) reads the snapshot; nothing here does I/O
//! or reads the clock.

mod cluster;
mod directory;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::aks::ManagedCluster;
use crate::directory::{Application, ManagedIdentity};
use crate::federation::FederatedCredential;
use crate::rbac::{RoleAssignment, RoleDefinition};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: which rule found it, how bad, on what, what will happen, and the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub object: String,
    /// What will happen and when.
    pub problem: String,
    /// The exact kite command (or commands, `&&`-joined) that fixes it.
    pub fix: String,
}

/// A pod as the rules see it: its name and the `aadpodidbinding` label, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub binding_label: Option<String>,
}

/// An `AzureIdentityBinding`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingFacts {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub selector: String,
}

/// An `AzureIdentity`, with the spec keys kite does not read (upstream README's `ResourceID`, `ClientID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureIdentityFacts {
    pub namespace: String,
    pub name: String,
    pub client_id: String,
    pub resource_id: String,
    pub unread_fields: Vec<String>,
}

/// One `aws-auth` entry: `mapRoles` (role) or `mapUsers` (user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsAuthEntry {
    pub role: bool,
    pub arn: String,
    pub groups: Vec<String>,
}

/// Everything the rules look at, read once at the edge.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub now: OffsetDateTime,
    /// Secrets and certificates ending within this are warned about.
    pub expiry_window: Duration,
    pub applications: Vec<Application>,
    pub identities: Vec<ManagedIdentity>,
    pub clusters: Vec<ManagedCluster>,
    pub assignments: Vec<RoleAssignment>,
    pub custom_roles: Vec<RoleDefinition>,
    /// Object IDs of every principal that exists (apps, identities, system-assigned cluster identities).
    pub principals: Vec<Uuid>,
    /// Federated credentials with their owner's name (`app <appId>` or an identity's resource ID).
    pub federated: Vec<(String, FederatedCredential)>,
    /// Issuers kite knows clusters by (`--cluster-issuer`, IAM OIDC providers, its own).
    pub cluster_issuers: Vec<String>,
    /// Standard mode (`--pod-identity-mode standard`): kubelet identities need role assignments.
    pub standard_mode: bool,
    pub pods: Vec<PodFacts>,
    pub bindings: Vec<BindingFacts>,
    pub azure_identities: Vec<AzureIdentityFacts>,
    pub aws_auth: Vec<AwsAuthEntry>,
    /// ARNs of the IAM roles and users kite has.
    pub iam_arns: Vec<String>,
    /// The EKS cluster creator's ARN, who is `system:masters` by right.
    pub eks_creator: Option<String>,
    /// How `kite eks iamidentitymapping` reaches this aws-auth (`--cluster prod --aws-auth FILE`).
    pub aws_auth_target: Option<String>,
}

impl Snapshot {
    /// An empty snapshot at `now` with the default 30-day window.
    pub fn empty(now: OffsetDateTime) -> Snapshot {
        Snapshot {
            now,
            expiry_window: Duration::days(30),
            applications: Vec::new(),
            identities: Vec::new(),
            clusters: Vec::new(),
            assignments: Vec::new(),
            custom_roles: Vec::new(),
            principals: Vec::new(),
            federated: Vec::new(),
            cluster_issuers: Vec::new(),
            standard_mode: false,
            pods: Vec::new(),
            bindings: Vec::new(),
            azure_identities: Vec::new(),
            aws_auth: Vec::new(),
            iam_arns: Vec::new(),
            eks_creator: None,
            aws_auth_target: None,
        }
    }
}

/// Every finding, errors first, then by rule and object.
pub fn diagnose(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    directory::expiring_credentials(s, &mut out);
    directory::cluster_identity_without_contributor(s, &mut out);
    directory::kubelet_missing_roles(s, &mut out);
    directory::kubenet_with_pod_identity(s, &mut out);
    directory::federated_issuer_near_misses(s, &mut out);
    directory::identities_without_assignments(s, &mut out);
    directory::assignments_to_deleted_principals(s, &mut out);
    cluster::pods_matching_no_binding(s, &mut out);
    cluster::bindings_without_identity(s, &mut out);
    cluster::unread_azure_identity_fields(s, &mut out);
    cluster::aws_auth_entries_that_never_match(s, &mut out);
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)).then(a.object.cmp(&b.object)));
    out
}

/// Exit status for CI: 0 clean, 1 warnings only, 2 any error.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        None => 0,
        Some(Severity::Warning) => 1,
        Some(Severity::Error) => 2,
    }
}

#[cfg(test)]
mod tests;
