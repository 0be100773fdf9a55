//! Rules over the directory and RBAC: credentials running out, clusters whose identities lack the
//! roles the cloud provider and the pod-identity controller need, federated credentials that will
//! never match, identities nobody uses and assignments to principals that are gone.

use std::collections::HashSet;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finding, Severity, Snapshot};
use crate::aks::{ControlPlane, ManagedCluster, NetworkPlugin};
use crate::rbac::engine::{evaluate, AccessRequest, Snapshot as RbacView};
use crate::rbac::ActionKind;
use crate::Scope;

/// What the cloud provider does on the node resource group (Contributor grants it).
const LOAD_BALANCER_WRITE: &str = "Microsoft.Network/loadBalancers/write";
/// What the pod-identity controller does on the nodes (Virtual Machine Contributor grants it).
const VM_WRITE: &str = "Microsoft.Compute/virtualMachineScaleSets/write";
/// What assigning a user-assigned identity to a node takes (Managed Identity Operator grants it).
const ASSIGN: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";

fn date(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn rbac(s: &Snapshot) -> RbacView {
    RbacView::new(s.custom_roles.clone(), s.assignments.clone())
}

fn allowed(view: &RbacView, principal: Uuid, action: &str, scope: &Scope) -> bool {
    evaluate(view, &AccessRequest { principal_id: principal, action, kind: ActionKind::Action, scope }).allowed
}

fn node_group(c: &ManagedCluster) -> Option<Scope> {
    Scope::resource_group(&c.subscription_id, &c.node_resource_group).ok()
}

/// Secrets and certificates that expired or end within the window, with the clusters whose
/// control plane signs in with them (seed 000: the LoadBalancer IP stuck in `<pending>`).
pub(super) fn expiring_credentials(s: &Snapshot, out: &mut Vec<Finding>) {
    for app in &s.applications {
        let clusters: Vec<&ManagedCluster> =
            s.clusters.iter().filter(|c| matches!(c.control_plane, ControlPlane::ServicePrincipal { client_id, .. } if client_id == app.app_id)).collect();
        let secrets = app.password_credentials.iter().map(|c| ("client secret", c.key_id, c.end_date_time));
        let certificates = app.key_credentials.iter().map(|c| ("certificate", c.key_id, c.end_date_time));
        for (kind, key_id, end) in secrets.chain(certificates) {
            let left = end - s.now;
            if left > s.expiry_window {
                continue;
            }
            let users = match clusters.as_slice() {
                [] => String::new(),
                cs => format!(
                    "; clusters {} sign in with this service principal: their cloud provider loses access to Azure (LoadBalancer IPs stay <pending>)",
                    cs.iter().map(|c| format!("{}/{}", c.resource_group, c.name)).collect::<Vec<_>>().join(", ")
                ),
            };
            let (severity, when) = if left.is_negative() || left.is_zero() {
                (Severity::Error, format!("expired on {}: token requests with it fail with AADSTS7000222", date(end)))
            } else {
                (Severity::Warning, format!("expires on {} (in {} days): then token requests with it fail with AADSTS7000222", date(end), left.whole_days()))
            };
            let reset = if kind == "certificate" {
                format!("kite ad sp credential reset --id {} --append --cert @new-cert.pem", app.app_id)
            } else {
                format!("kite ad sp credential reset --id {} --append", app.app_id)
            };
            let fix = std::iter::once(reset)
                .chain(clusters.iter().map(|c| {
                    format!(
                        "kite aks update-credentials -g {} -n {} --reset-service-principal --service-principal {} --client-secret <the new password>",
                        c.resource_group, c.name, app.app_id
                    )
                }))
                .collect::<Vec<_>>()
                .join(" && ");
            out.push(Finding {
                rule: "credential-expiry",
                severity,
                object: format!("app {} ({}) {kind} {key_id}", app.display_name, app.app_id),
                problem: format!("{when}{users}"),
                fix,
            });
        }
    }
}

/// A control-plane identity without Contributor on its node resource group (seed 000's removed assignment).
pub(super) fn cluster_identity_without_contributor(s: &Snapshot, out: &mut Vec<Finding>) {
    let view = rbac(s);
    for c in &s.clusters {
        let Some(scope) = node_group(c) else { continue };
        let principal = c.control_plane.object_id();
        if allowed(&view, principal, LOAD_BALANCER_WRITE, &scope) {
            continue;
        }
        out.push(Finding {
            rule: "cluster-identity-contributor",
            severity: Severity::Error,
            object: c.id(),
            problem: format!(
                "the control-plane identity {principal} holds no Contributor on node resource group {}: the cloud provider cannot create load balancers or public IPs, so LoadBalancer services stay <pending> from now on",
                c.node_resource_group
            ),
            fix: format!("kite role assignment create --role Contributor --assignee {principal} --scope {}", scope),
        });
    }
}

/// Standard mode: the kubelet identity assigns pod identities to nodes, which takes Managed
/// Identity Operator on each identity and Virtual Machine Contributor on the node resource group (seed 003).
pub(super) fn kubelet_missing_roles(s: &Snapshot, out: &mut Vec<Finding>) {
    if !s.standard_mode {
        return;
    }
    let view = rbac(s);
    for c in s.clusters.iter().filter(|c| c.pod_identity_enabled) {
        let (Some(kubelet), Some(scope)) = (&c.kubelet, node_group(c)) else { continue };
        if !allowed(&view, kubelet.object_id, VM_WRITE, &scope) {
            out.push(Finding {
                rule: "kubelet-identity-roles",
                severity: Severity::Error,
                object: c.id(),
                problem: format!(
                    "the kubelet identity {} holds no Virtual Machine Contributor on {}: the controller cannot assign pod identities to nodes, so pods get no token (NMI waits, then 403)",
                    kubelet.client_id,
                    c.node_resource_group
                ),
                fix: format!("kite role assignment create --role \"Virtual Machine Contributor\" --assignee {} --scope {}", kubelet.object_id, scope),
            });
        }
        for pi in &c.pod_identities {
            let Ok(identity) = Scope::parse(&pi.identity.resource_id) else { continue };
            if !allowed(&view, kubelet.object_id, ASSIGN, &identity) {
                out.push(Finding {
                    rule: "kubelet-identity-roles",
                    severity: Severity::Error,
                    object: format!("{} pod identity {}/{}", c.id(), pi.namespace, pi.name),
                    problem: format!(
                        "the kubelet identity {} holds no Managed Identity Operator on {}: pods bound to it get no token",
                        kubelet.client_id, pi.identity.resource_id
                    ),
                    fix: format!(
                        "kite role assignment create --role \"Managed Identity Operator\" --assignee {} --scope {}",
                        kubelet.object_id, pi.identity.resource_id
                    ),
                });
            }
        }
    }
}

pub(super) fn kubenet_with_pod_identity(s: &Snapshot, out: &mut Vec<Finding>) {
    for c in s.clusters.iter().filter(|c| c.pod_identity_enabled && c.network_plugin == NetworkPlugin::Kubenet) {
        out.push(Finding {
            rule: "kubenet-pod-identity",
            severity: Severity::Error,
            object: c.id(),
            problem: "pod identity on kubenet lets any pod reach NMI's redirect and take another pod's identity (AKS refuses it: \"Network plugin kubenet is not supported to use with PodIdentity addon.\")".into(),
            fix: format!("kite aks update -g {} -n {} --disable-pod-identity", c.resource_group, c.name),
        });
    }
}

/// A federated credential's issuer that is a known cluster issuer but for a trailing slash or the
/// case: Entra compares exactly, so every exchange fails with AADSTS70021.
pub(super) fn federated_issuer_near_misses(s: &Snapshot, out: &mut Vec<Finding>) {
    let norm = |i: &str| i.trim_end_matches('/').to_ascii_lowercase();
    for (owner, fic) in &s.federated {
        if s.cluster_issuers.contains(&fic.issuer) {
            continue;
        }
        let Some(known) = s.cluster_issuers.iter().find(|k| norm(k) == norm(&fic.issuer)) else { continue };
        let differs = if fic.issuer.trim_end_matches('/') == known.trim_end_matches('/') { "a trailing slash" } else { "letter case" };
        out.push(Finding {
            rule: "federated-issuer",
            severity: Severity::Error,
            object: format!("{owner} federated credential {}", fic.name),
            problem: format!(
                "its issuer '{}' differs from the cluster issuer '{known}' only by {differs}: issuers are compared exactly, so every token exchange fails with AADSTS70021",
                fic.issuer
            ),
            fix: format!(
                "delete it and create it again with --issuer {known} (kite identity federated-credential create … --issuer {known}, or kite ad app federated-credential create …)"
            ),
        });
    }
}

/// Identities that hold no role anywhere; kubelet identities are left to `kubelet_missing_roles`
/// (in managed mode they need none).
pub(super) fn identities_without_assignments(s: &Snapshot, out: &mut Vec<Finding>) {
    let mut assigned: HashSet<Uuid> = s.assignments.iter().map(|a| a.principal_id).collect();
    assigned.extend(s.clusters.iter().filter_map(|c| c.kubelet.as_ref().map(|k| k.object_id)));
    for mi in s.identities.iter().filter(|mi| !assigned.contains(&mi.principal_id)) {
        out.push(Finding {
            rule: "identity-without-assignment",
            severity: Severity::Warning,
            object: mi.id(),
            problem: "this identity holds no role anywhere: tokens it gets are refused by every resource kite guards".into(),
            fix: format!(
                "kite role assignment create --role <role> --assignee {} --scope <scope>   (or, if unused: kite identity delete -g {} -n {})",
                mi.principal_id, mi.resource_group, mi.name
            ),
        });
    }
}

pub(super) fn assignments_to_deleted_principals(s: &Snapshot, out: &mut Vec<Finding>) {
    let exists: HashSet<Uuid> = s.principals.iter().copied().collect();
    for a in s.assignments.iter().filter(|a| !exists.contains(&a.principal_id)) {
        out.push(Finding {
            rule: "assignment-to-deleted-principal",
            severity: Severity::Warning,
            object: a.id(),
            problem: format!("principal {} no longer exists: the assignment grants nothing, and shows as 'Identity not found' in listings", a.principal_id),
            fix: format!("kite role assignment delete --ids {}", a.id()),
        });
    }
}
