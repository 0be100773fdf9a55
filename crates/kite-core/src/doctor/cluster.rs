//! Rules over what the cluster source holds: pod-identity labels, bindings and identities that do
//! not meet, `AzureIdentity` fields kite cannot read, and aws-auth entries that can never match.

use super::{Finding, Severity, Snapshot};
use crate::aws::arn::{Arn, Resource};

pub(super) fn pods_matching_no_binding(s: &Snapshot, out: &mut Vec<Finding>) {
    for pod in &s.pods {
        let Some(label) = &pod.binding_label else { continue };
        if s.bindings.iter().any(|b| b.namespace == pod.namespace && b.selector == *label) {
            continue;
        }
        out.push(Finding {
            rule: "pod-without-binding",
            severity: Severity::Error,
            object: format!("pod {}/{}", pod.namespace, pod.name),
            problem: format!(
                "its aadpodidbinding label '{label}' matches no AzureIdentityBinding selector in namespace {}: the node agent refuses its token requests (403) now",
                pod.namespace
            ),
            fix: format!(
                "kite aks pod-identity add --cluster-name <cluster> -g <group> --namespace {} --name <name> --identity-resource-id <identity> --binding-selector {label}",
                pod.namespace
            ),
        });
    }
}

pub(super) fn bindings_without_identity(s: &Snapshot, out: &mut Vec<Finding>) {
    for b in &s.bindings {
        if s.azure_identities.iter().any(|i| i.namespace == b.namespace && i.name == b.identity) {
            continue;
        }
        out.push(Finding {
            rule: "binding-without-identity",
            severity: Severity::Error,
            object: format!("AzureIdentityBinding {}/{}", b.namespace, b.name),
            problem: format!(
                "it names AzureIdentity '{}', which does not exist in namespace {}: pods labelled aadpodidbinding={} get no token",
                b.identity, b.namespace, b.selector
            ),
            fix: format!(
                "kite aks pod-identity add --cluster-name <cluster> -g <group> --namespace {} --name {} --identity-resource-id <identity>",
                b.namespace, b.identity
            ),
        });
    }
}

/// Upstream's README once spelled the fields `ResourceID` and `ClientID`; the CRD (and kite) read
/// `resourceID` and `clientID`, so such an identity reads as empty.
pub(super) fn unread_azure_identity_fields(s: &Snapshot, out: &mut Vec<Finding>) {
    for i in s.azure_identities.iter().filter(|i| !i.unread_fields.is_empty()) {
        let spelled: Vec<String> = i
            .unread_fields
            .iter()
            .map(|f| match f.as_str() {
                "ResourceID" | "ResourceId" | "resourceId" => format!("{f} (write resourceID)"),
                "ClientID" | "ClientId" | "clientId" => format!("{f} (write clientID)"),
                other => other.to_string(),
            })
            .collect();
        out.push(Finding {
            rule: "azure-identity-fields",
            severity: if i.client_id.is_empty() { Severity::Error } else { Severity::Warning },
            object: format!("AzureIdentity {}/{}", i.namespace, i.name),
            problem: format!(
                "spec fields {} are not the CRD's spelling and are ignored: kite reads clientID '{}' and resourceID '{}', so pods bound to it get no token",
                spelled.join(", "),
                i.client_id,
                i.resource_id
            ),
            fix: format!("rename the fields to resourceID and clientID (kubectl edit azureidentity -n {} {})", i.namespace, i.name),
        });
    }
}

fn never_matches(entry_role: bool, arn: &str) -> Option<String> {
    let parsed = match Arn::parse(arn) {
        Ok(a) => a,
        Err(e) => return Some(format!("it is not an ARN ({e})")),
    };
    match parsed.resource() {
        Resource::AssumedRole { role_name, .. } => {
            Some(format!("it is a role session's ARN; the authenticator compares the session's role, arn:aws:iam::{}:role/{role_name}", parsed.account()))
        }
        Resource::Role { path, name } if path != "/" => {
            let sso = if name.starts_with("AWSReservedSSO_") {
                " (an IAM Identity Center role: map it without its /aws-reserved/sso.amazonaws.com/ path)"
            } else {
                ""
            };
            Some(format!(
                "it carries the role path {path}, which STS leaves out of session ARNs, so it never equals the caller's arn:aws:iam::{}:role/{name}{sso}",
                parsed.account()
            ))
        }
        Resource::User { .. } if entry_role => Some("it is a user's ARN under mapRoles; users are matched under mapUsers".into()),
        Resource::Role { .. } if !entry_role => Some("it is a role's ARN under mapUsers; roles are matched under mapRoles".into()),
        _ => None,
    }
}

/// aws-auth entries that can never match a caller, and `system:masters` given to anyone but the creator.
pub(super) fn aws_auth_entries_that_never_match(s: &Snapshot, out: &mut Vec<Finding>) {
    let target = s.aws_auth_target.as_deref().unwrap_or("--cluster <cluster> --aws-auth <file>");
    for e in &s.aws_auth {
        let section = if e.role { "mapRoles" } else { "mapUsers" };
        let object = format!("aws-auth {section} {}", e.arn);
        let fix =
            format!("kite eks iamidentitymapping delete {target} --arn {} && kite eks iamidentitymapping create {target} --arn <the caller's ARN> …", e.arn);
        if let Some(why) = never_matches(e.role, &e.arn) {
            out.push(Finding { rule: "aws-auth-never-matches", severity: Severity::Error, object, problem: format!("this entry can never match: {why}"), fix });
            continue;
        }
        if !s.iam_arns.iter().any(|a| a.eq_ignore_ascii_case(&e.arn)) {
            out.push(Finding {
                rule: "aws-auth-never-matches",
                severity: Severity::Warning,
                object: object.clone(),
                problem: "kite has no IAM role or user with this ARN, so no caller can present it (a typo, or a deleted role)".into(),
                fix,
            });
        }
        let creator = s.eks_creator.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&e.arn));
        if e.groups.iter().any(|g| g == "system:masters") && !creator {
            out.push(Finding {
                rule: "aws-auth-system-masters",
                severity: Severity::Warning,
                object,
                problem: "it grants system:masters, which no RBAC binding can restrict; only the cluster creator needs it".into(),
                fix: format!("kite eks iamidentitymapping delete {target} --arn {} && map it to a narrower group bound by RBAC", e.arn),
            });
        }
    }
}
