//! The RBAC decision engine. Security-sensitive: a decision is a pure function of the request and
//! a snapshot of roles and assignments, and it always carries its explanation.
//!
//! An action is allowed at a scope when some role assigned to the principal at that scope or any
//! scope above it (resource ← parent resources ← resource group ← subscription ← root) grants it:
//! within one permission block Actions minus NotActions, blocks adding up. The cost of a check
//! grows with the depth of the scope, not with the number of assignments.
//!
//! Two kinds of role never mix: actions under `microsoft.directory/` are granted only by directory
//! roles, every other action only by Azure roles (built-in or custom).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::directory::{directory_roles, is_directory_action};
use super::{builtin_roles, ActionKind, Coverage, RoleAssignment, RoleDefinition, RoleType};
use crate::scope::{display_key, Scope};

/// What the engine reads: assignments by (principal, exact scope) and role definitions by GUID.
pub trait AccessView {
    fn assignments_at(&self, principal: &Uuid, scope_key: &str) -> &[RoleAssignment];
    fn role(&self, id: &Uuid) -> Option<&RoleDefinition>;
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub assignment_name: Uuid,
    pub role_name: String,
    pub role_definition_id: Uuid,
    /// Where the assignment was made (the request's scope or one above it).
    pub scope: String,
    #[serde(flatten)]
    pub coverage: Coverage,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub role_name: String,
    pub role_definition_id: Uuid,
    pub command: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub allowed: bool,
    pub principal_id: Uuid,
    pub action: String,
    pub action_kind: ActionKind,
    pub scope: String,
    /// One sentence a person can act on.
    pub reason: String,
    /// The assignment that allowed the action.
    pub granted_by: Option<Evidence>,
    /// When denied: every assignment the principal holds on the scope chain, and what each did with the action.
    pub assignments: Vec<Evidence>,
    /// When denied: the least-privileged built-in role that would grant the action here.
    pub suggestion: Option<Suggestion>,
}

pub struct AccessRequest<'a> {
    pub principal_id: Uuid,
    pub action: &'a str,
    pub kind: ActionKind,
    pub scope: &'a Scope,
}

/// Built-in roles (Azure, then directory) ordered from least to most privileged, for suggestions.
static LEAST_PRIVILEGED_FIRST: LazyLock<Vec<&'static RoleDefinition>> = LazyLock::new(|| {
    let mut roles: Vec<&RoleDefinition> = builtin_roles().iter().chain(directory_roles()).collect();
    roles.sort_by_key(|r| (r.breadth(), r.permissions.iter().map(|p| p.actions.len() + p.data_actions.len()).sum::<usize>()));
    roles
});

/// Which built-in roles (indices into [`LEAST_PRIVILEGED_FIRST`]) grant an action, by `kind` and
/// lower-cased action. Built-in roles never change, so this is a pure function worth remembering:
/// without it every denial would glob-match the action against every built-in permission.
type GrantMemo = HashMap<(ActionKind, String), Arc<[usize]>>;
static GRANTING_BUILTINS: LazyLock<RwLock<GrantMemo>> = LazyLock::new(Default::default);

/// Bound on remembered actions; past it the memo starts afresh (actions are few in practice).
const MEMO_LIMIT: usize = 16_384;

fn granting_builtins(action: &str, kind: ActionKind) -> Arc<[usize]> {
    let key = (kind, action.to_ascii_lowercase());
    if let Some(hit) = GRANTING_BUILTINS.read().ok().and_then(|m| m.get(&key).cloned()) {
        return hit;
    }
    let found: Arc<[usize]> = LEAST_PRIVILEGED_FIRST
        .iter()
        .enumerate()
        .filter(|(_, r)| counts_for(r, action) && matches!(r.coverage(action, kind), Coverage::Granted { .. }))
        .map(|(i, _)| i)
        .collect();
    if let Ok(mut memo) = GRANTING_BUILTINS.write() {
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(key, found.clone());
    }
    found
}

/// The least-privileged built-in role that grants `action` at `scope`, if any does.
pub fn least_privileged_builtin(action: &str, kind: ActionKind, scope: &Scope) -> Option<&'static RoleDefinition> {
    granting_builtins(action, kind).iter().map(|&i| LEAST_PRIVILEGED_FIRST[i]).find(|r| r.is_assignable_at(scope))
}

/// Whether `role` may grant `action` at all: directory roles only directory actions, Azure roles
/// only the rest (so Owner's `*` never reaches the directory).
fn counts_for(role: &RoleDefinition, action: &str) -> bool {
    (role.role_type == RoleType::DirectoryRole) == is_directory_action(action)
}

pub fn evaluate(view: &impl AccessView, req: &AccessRequest<'_>) -> Decision {
    let mut seen = Vec::new();
    for key in req.scope.chain_keys() {
        for assignment in view.assignments_at(&req.principal_id, key) {
            let role = view.role(&assignment.role_definition_id);
            if role.is_some_and(|r| !counts_for(r, req.action)) {
                continue;
            }
            let Some(role) = role else {
                // A role deleted under its assignment grants nothing, but the denial still lists it.
                seen.push(Evidence {
                    assignment_name: assignment.name,
                    role_name: format!("(missing role {})", assignment.role_definition_id),
                    role_definition_id: assignment.role_definition_id,
                    scope: assignment.scope.to_string(),
                    coverage: Coverage::NotCovered,
                });
                continue;
            };
            let coverage = role.coverage(req.action, req.kind);
            let evidence = Evidence {
                assignment_name: assignment.name,
                role_name: role.role_name.clone(),
                role_definition_id: role.name,
                scope: assignment.scope.to_string(),
                coverage,
            };
            if let Coverage::Granted { matched } = &evidence.coverage {
                let inherited = if key == req.scope.key() { String::new() } else { format!(", inherited by '{}'", req.scope) };
                return Decision {
                    allowed: true,
                    principal_id: req.principal_id,
                    action: req.action.to_string(),
                    action_kind: req.kind,
                    scope: req.scope.to_string(),
                    reason: format!(
                        "allowed: role '{}' assigned at '{}'{inherited} grants '{}' through '{matched}' (assignment {})",
                        role.role_name,
                        display_key(&evidence.scope),
                        req.action,
                        assignment.name
                    ),
                    granted_by: Some(evidence),
                    assignments: Vec::new(),
                    suggestion: None,
                };
            }
            seen.push(evidence);
        }
    }
    deny(req, seen)
}

fn deny(req: &AccessRequest<'_>, seen: Vec<Evidence>) -> Decision {
    let directory = is_directory_action(req.action);
    let mut reason = if directory && seen.is_empty() {
        format!(
            "denied: principal {} has no directory role assignment at the tenant root ('/'); Azure roles, Owner included, grant nothing in the directory",
            req.principal_id
        )
    } else if seen.is_empty() {
        format!("denied: principal {} has no role assignment at '{}' or any scope above it", req.principal_id, req.scope)
    } else {
        format!(
            "denied: none of the {} role assignment(s) principal {} holds on '{}' and the scopes above it grants '{}'",
            seen.len(),
            req.principal_id,
            req.scope,
            req.action
        )
    };
    for e in &seen {
        if let Coverage::RemovedByNotAction { matched, not_action } = &e.coverage {
            reason.push_str(&format!("; role '{}' at '{}' lists it under '{matched}' but its NotAction '{not_action}' removes it", e.role_name, e.scope));
        }
    }
    // Directory roles are granted at the tenant root whatever scope was asked about.
    let scope = if directory { Scope::root() } else { req.scope.clone() };
    let suggestion = least_privileged_builtin(req.action, req.kind, &scope).map(|role| Suggestion {
        role_name: role.role_name.clone(),
        role_definition_id: role.name,
        command: format!("kite role assignment create --assignee {} --role \"{}\" --scope {scope}", req.principal_id, role.role_name),
    });
    if let Some(s) = &suggestion {
        reason.push_str(&format!(". The least-privileged built-in role that grants it is '{}': {}", s.role_name, s.command));
    }
    Decision {
        allowed: false,
        principal_id: req.principal_id,
        action: req.action.to_string(),
        action_kind: req.kind,
        scope: req.scope.to_string(),
        reason,
        granted_by: None,
        assignments: seen,
        suggestion,
    }
}

/// An in-memory view: every built-in role, the custom roles given, and assignments indexed by
/// principal then exact scope key, so a check does one hash lookup per level of the scope chain.
/// A custom role that would take over a built-in role (its GUID or name) is left out: it never
/// takes effect, whatever the store holds (the server names such roles at start).
#[derive(Default)]
pub struct Snapshot {
    roles: HashMap<Uuid, RoleDefinition>,
    index: HashMap<Uuid, HashMap<String, Vec<RoleAssignment>>>,
}

impl Snapshot {
    pub fn new(custom_roles: impl IntoIterator<Item = RoleDefinition>, assignments: impl IntoIterator<Item = RoleAssignment>) -> Self {
        let customs = custom_roles.into_iter().filter(|r| r.check_custom().is_ok());
        let roles = builtin_roles().iter().chain(directory_roles()).cloned().chain(customs).map(|r| (r.name, r)).collect();
        let mut index: HashMap<Uuid, HashMap<String, Vec<RoleAssignment>>> = HashMap::new();
        for a in assignments {
            index.entry(a.principal_id).or_default().entry(a.scope.key().to_string()).or_default().push(a);
        }
        Snapshot { roles, index }
    }
}

impl AccessView for Snapshot {
    fn assignments_at(&self, principal: &Uuid, scope_key: &str) -> &[RoleAssignment] {
        self.index.get(principal).and_then(|by_scope| by_scope.get(scope_key)).map(Vec::as_slice).unwrap_or(&[])
    }

    fn role(&self, id: &Uuid) -> Option<&RoleDefinition> {
        self.roles.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) const SUB: Uuid = Uuid::from_u128(0x1111);

    fn role_id(name: &str) -> Uuid {
        builtin_roles().iter().chain(directory_roles()).find(|r| r.role_name == name).unwrap().name
    }

    fn assign(principal: Uuid, role: &str, scope: &str) -> RoleAssignment {
        RoleAssignment {
            name: Uuid::new_v4(),
            scope: Scope::parse(scope).unwrap(),
            role_definition_id: role_id(role),
            principal_id: principal,
            principal_type: "ServicePrincipal".into(),
            description: None,
            created_on: datetime!(2026-01-01 0:00 UTC),
            created_by: None,
        }
    }

    fn check(snap: &Snapshot, principal: Uuid, action: &str, scope: &str) -> Decision {
        let scope = Scope::parse(scope).unwrap();
        evaluate(snap, &AccessRequest { principal_id: principal, action, kind: ActionKind::Action, scope: &scope })
    }

    #[test]
    fn contributor_on_the_node_resource_group_reaches_its_load_balancers_and_says_so() {
        let p = Uuid::new_v4();
        let rg = format!("/subscriptions/{SUB}/resourceGroups/MC_rg_aks_japaneast");
        let snap = Snapshot::new([], [assign(p, "Contributor", &rg)]);
        let d = check(&snap, p, "Microsoft.Network/loadBalancers/read", &format!("{rg}/providers/Microsoft.Network/loadBalancers/kubernetes"));
        assert!(d.allowed, "{}", d.reason);
        assert!(d.reason.contains("'Contributor'") && d.reason.contains("inherited"), "{}", d.reason);
        assert_eq!(d.granted_by.unwrap().scope, rg);
    }

    #[test]
    fn denial_lists_assignments_names_the_not_action_and_suggests_the_smallest_role() {
        let p = Uuid::new_v4();
        let sub = format!("/subscriptions/{SUB}");
        let snap = Snapshot::new([], [assign(p, "Contributor", &sub), assign(p, "Reader", &sub)]);
        let d = check(&snap, p, "Microsoft.Authorization/roleAssignments/write", &format!("{sub}/resourceGroups/rg1"));
        assert!(!d.allowed);
        assert_eq!(d.assignments.len(), 2);
        assert!(d.reason.contains("NotAction 'Microsoft.Authorization/*/Write'"), "{}", d.reason);
        let s = d.suggestion.unwrap();
        assert!(["Role Based Access Control Administrator", "User Access Administrator"].contains(&s.role_name.as_str()), "{}", s.role_name);
        assert!(s.command.starts_with(&format!("kite role assignment create --assignee {p} --role")));
    }

    #[test]
    fn read_only_needs_suggest_reader_and_writes_suggest_the_service_role() {
        let scope = Scope::parse(&format!("/subscriptions/{SUB}/resourceGroups/rg")).unwrap();
        let pick = |a: &str| least_privileged_builtin(a, ActionKind::Action, &scope).unwrap().role_name.clone();
        assert_eq!(pick("Microsoft.Network/loadBalancers/read"), "Reader");
        assert_eq!(pick("Microsoft.Network/loadBalancers/write"), "Network Contributor");
        assert_eq!(pick("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"), "Managed Identity Operator");
    }

    #[test]
    fn nothing_assigned_means_denied_with_no_evidence() {
        let snap = Snapshot::new([], []);
        let d = check(&snap, Uuid::new_v4(), "Microsoft.Compute/virtualMachines/read", &format!("/subscriptions/{SUB}"));
        assert!(!d.allowed && d.assignments.is_empty());
        assert!(d.reason.contains("has no role assignment"));
    }

    #[test]
    fn a_custom_role_with_a_builtin_id_or_name_never_takes_effect() {
        let p = Uuid::new_v4();
        let sub = format!("/subscriptions/{SUB}");
        let everything = |name: Uuid, role_name: &str| RoleDefinition {
            name,
            role_name: role_name.into(),
            description: String::new(),
            role_type: RoleType::CustomRole,
            permissions: vec![super::super::Permission { actions: vec!["*".into()], ..Default::default() }],
            assignable_scopes: vec!["/".into()],
        };
        let as_reader = everything(role_id("Reader"), "Reader but more");
        let named_reader = everything(Uuid::new_v4(), "READER");
        let named_admin = everything(Uuid::new_v4(), "global administrator");
        let mut by_name = assign(p, "Reader", &sub);
        by_name.role_definition_id = named_reader.name;
        let mut by_admin_name = assign(p, "Reader", &sub);
        by_admin_name.role_definition_id = named_admin.name;
        let snap = Snapshot::new([as_reader, named_reader, named_admin], [assign(p, "Reader", &sub), by_name, by_admin_name]);
        let d = check(&snap, p, "Microsoft.Compute/virtualMachines/write", &sub);
        assert!(!d.allowed, "{}", d.reason);
        assert!(d.assignments.iter().any(|e| e.role_name == "Reader"), "{:?}", d.assignments);
        assert!(check(&snap, p, "Microsoft.Compute/virtualMachines/read", &sub).allowed);
    }

    #[test]
    fn azure_roles_grant_nothing_in_the_directory_and_directory_roles_nothing_in_azure() {
        let p = Uuid::new_v4();
        let sub = format!("/subscriptions/{SUB}");
        let snap = Snapshot::new([], [assign(p, "Owner", "/"), assign(p, "Contributor", &sub), assign(p, "Application Administrator", "/")]);
        let d = check(&snap, p, super::super::directory::ROLE_ASSIGNMENTS_MANAGE, "/");
        assert!(!d.allowed, "{}", d.reason);
        assert_eq!(d.assignments.len(), 1, "only the directory role is evidence: {:?}", d.assignments);
        let s = d.suggestion.unwrap();
        assert_eq!(s.role_name, "Global Administrator");
        assert!(s.command.ends_with("--scope /"), "{}", s.command);
        let d = check(&snap, p, super::super::directory::CREDENTIALS_UPDATE, &sub);
        assert!(d.allowed && d.granted_by.unwrap().role_name == "Application Administrator", "{}", d.reason);

        let admin_only = Snapshot::new([], [assign(p, "Global Administrator", "/")]);
        assert!(check(&admin_only, p, super::super::directory::ROLE_ASSIGNMENTS_MANAGE, "/").allowed);
        assert!(!check(&admin_only, p, "Microsoft.Compute/virtualMachines/read", &sub).allowed);
        let contributor_only = Snapshot::new([], [assign(p, "Contributor", &sub)]);
        let d = check(&contributor_only, p, "Microsoft.Directory/applications/credentials/update", &sub);
        assert!(!d.allowed && d.reason.contains("grant nothing in the directory"), "{}", d.reason);
        assert_eq!(d.suggestion.unwrap().role_name, "Cloud Application Administrator");
    }
}
