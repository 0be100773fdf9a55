//! Role definitions and assignments, shaped as Azure's `Microsoft.Authorization` resources.

pub mod action;
pub mod directory;
pub mod engine;

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::scope::{Scope, ScopeLevel};
use crate::{Error, Result};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RoleType {
    BuiltInRole,
    CustomRole,
    /// An Entra directory role (see [`directory`]): assignable only at the tenant root.
    DirectoryRole,
}

/// A role definition in `az role definition list` shape (the full `id` is added by the API layer,
/// since it names the subscription it is read through).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// The role's GUID.
    pub name: Uuid,
    pub role_name: String,
    #[serde(default)]
    pub description: String,
    pub role_type: RoleType,
    pub permissions: Vec<Permission>,
    pub assignable_scopes: Vec<String>,
}

static BUILTIN_ROLES: LazyLock<Vec<RoleDefinition>> = LazyLock::new(|| {
    // The file is Microsoft's published definitions; a parse failure is a build defect caught by tests.
    serde_json::from_str(include_str!("builtin-roles.json")).unwrap_or_default()
});

/// Azure's built-in roles with their real GUIDs and permission lists.
pub fn builtin_roles() -> &'static [RoleDefinition] {
    &BUILTIN_ROLES
}

/// The built-in role (Azure or directory) a custom role would take over: one with its GUID, or
/// with its name ignoring case (Unicode lower-casing, as the store's unique name key). A custom
/// role that collides is refused on write and never takes effect when found stored.
pub fn shadowed_builtin(custom: &RoleDefinition) -> Option<&'static RoleDefinition> {
    let name = custom.role_name.trim().to_lowercase();
    builtin_roles().iter().chain(directory::directory_roles()).find(|b| b.name == custom.name || b.role_name.to_lowercase() == name)
}

/// What an action is checked against: control-plane `actions` or data-plane `dataActions`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Action,
    DataAction,
}

/// How a role treats an action: granted by a pattern, removed by a NotAction, or not covered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Coverage {
    #[serde(rename_all = "camelCase")]
    Granted {
        matched: String,
    },
    #[serde(rename_all = "camelCase")]
    RemovedByNotAction {
        matched: String,
        not_action: String,
    },
    NotCovered,
}

impl RoleDefinition {
    /// Effective permissions are, per permission block, Actions minus NotActions; blocks add up.
    pub fn coverage(&self, action: &str, kind: ActionKind) -> Coverage {
        let mut removed = None;
        for p in &self.permissions {
            let (allow, deny) = match kind {
                ActionKind::Action => (&p.actions, &p.not_actions),
                ActionKind::DataAction => (&p.data_actions, &p.not_data_actions),
            };
            let Some(hit) = allow.iter().find(|a| action::matches(a, action)) else { continue };
            match deny.iter().find(|n| action::matches(n, action)) {
                None => return Coverage::Granted { matched: hit.clone() },
                Some(n) => removed = Some(Coverage::RemovedByNotAction { matched: hit.clone(), not_action: n.clone() }),
            }
        }
        removed.unwrap_or(Coverage::NotCovered)
    }

    /// How much the role grants overall; see [`action::breadth`].
    pub fn breadth(&self) -> u64 {
        self.permissions.iter().flat_map(|p| p.actions.iter().chain(&p.data_actions)).map(|a| action::breadth(a)).sum()
    }

    pub fn is_assignable_at(&self, scope: &Scope) -> bool {
        if self.role_type == RoleType::DirectoryRole {
            return *scope.level() == ScopeLevel::Root;
        }
        // Built-in roles are assignable at "/"; answering that without parsing keeps denials cheap.
        self.assignable_scopes.iter().any(|s| {
            s == "/"
                || match Scope::parse(s) {
                    Ok(allowed) => scope.is_within(&allowed),
                    Err(_) => false,
                }
        })
    }

    /// Reads a custom role in either of the shapes `az role definition create` takes: the flat one
    /// (`Name`, `Actions`, `AssignableScopes`, …) or the API one (`roleName`, `permissions`, …).
    /// Keys are matched case-insensitively.
    pub fn custom_from_json(input: &Value) -> Result<RoleDefinition> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid role definition: {why}"));
        let Value::Object(map) = input else { return Err(bad("expected a JSON object")) };
        // Every value under `keys`, in the keys' order, each key spelled exactly before any other case:
        // the flat shape's `Name` (the role's name) and the API's `name` (its GUID) differ only in case.
        let all = |keys: &[&str]| -> Vec<&Value> {
            keys.iter()
                .flat_map(|w| map.iter().filter(|(k, _)| k.as_str() == *w).chain(map.iter().filter(|(k, _)| k.as_str() != *w && k.eq_ignore_ascii_case(w))))
                .map(|(_, v)| v)
                .collect()
        };
        let get = |keys: &[&str]| all(keys).into_iter().next();
        let strings = |v: Option<&Value>, field: &str| -> Result<Vec<String>> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => {
                    items.iter().map(|i| i.as_str().map(str::to_string).ok_or_else(|| bad(&format!("'{field}' must be a list of strings")))).collect()
                }
                Some(_) => Err(bad(&format!("'{field}' must be a list of strings"))),
            }
        };
        let guid = |v: &Value| v.as_str().and_then(|s| Uuid::parse_str(s.rsplit('/').next().unwrap_or(s)).ok());
        let role_name = all(&["roleName", "Name"])
            .into_iter()
            .find(|v| guid(v).is_none())
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad("'Name' (or 'roleName') is required"))?
            .trim()
            .to_string();
        let description = get(&["description"]).and_then(Value::as_str).unwrap_or_default().to_string();
        let permissions = match get(&["permissions"]) {
            Some(Value::Array(blocks)) => blocks
                .iter()
                .map(|b| serde_json::from_value::<Permission>(b.clone()).map_err(|e| bad(&format!("'permissions': {e}"))))
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(bad("'permissions' must be a list")),
            None => vec![Permission {
                actions: strings(get(&["Actions"]), "Actions")?,
                not_actions: strings(get(&["NotActions"]), "NotActions")?,
                data_actions: strings(get(&["DataActions"]), "DataActions")?,
                not_data_actions: strings(get(&["NotDataActions"]), "NotDataActions")?,
            }],
        };
        if permissions.iter().all(|p| p.actions.is_empty() && p.data_actions.is_empty()) {
            return Err(bad("it grants nothing: give at least one entry in 'Actions' or 'DataActions'"));
        }
        for a in permissions.iter().flat_map(|p| p.actions.iter().chain(&p.not_actions).chain(&p.data_actions).chain(&p.not_data_actions)) {
            action::validate(a)?;
        }
        let assignable_scopes = strings(get(&["AssignableScopes"]), "AssignableScopes")?;
        if assignable_scopes.is_empty() {
            return Err(bad("'AssignableScopes' is required, e.g. [\"/subscriptions/{subscriptionId}\"]"));
        }
        for s in &assignable_scopes {
            Scope::parse(s)?;
        }
        let name = all(&["name", "id"]).into_iter().find_map(guid).unwrap_or_else(Uuid::new_v4);
        let def = RoleDefinition { name, role_name, description, role_type: RoleType::CustomRole, permissions, assignable_scopes };
        def.check_custom()?;
        Ok(def)
    }

    /// A custom role must be typed as one and must not take a built-in role's GUID or name.
    pub fn check_custom(&self) -> Result<()> {
        if self.role_type != RoleType::CustomRole {
            return Err(Error::InvalidArgument(format!("role definition {} ('{}') is not typed CustomRole", self.name, self.role_name)));
        }
        match shadowed_builtin(self) {
            Some(b) if b.name == self.name => Err(Error::Conflict(format!(
                "role definition id {} is the built-in role '{}'; a custom role needs its own id (omit it and one is generated)",
                self.name, b.role_name
            ))),
            Some(b) => {
                Err(Error::Conflict(format!("'{}' is the name of the built-in role '{}'; give the custom role another name", self.role_name, b.role_name)))
            }
            None => Ok(()),
        }
    }
}

/// A role assignment in `az role assignment list` shape (the `id` is `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub name: Uuid,
    pub scope: Scope,
    /// The role definition's GUID.
    pub role_definition_id: Uuid,
    pub principal_id: Uuid,
    pub principal_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_on: OffsetDateTime,
    #[serde(default)]
    pub created_by: Option<Uuid>,
}

impl RoleAssignment {
    pub fn id(&self) -> String {
        let scope = self.scope.to_string();
        format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", scope.trim_end_matches('/'), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_parse_with_their_real_ids() {
        let roles = builtin_roles();
        assert!(roles.len() >= 12);
        let owner = roles.iter().find(|r| r.role_name == "Owner").unwrap();
        assert_eq!(owner.name.to_string(), "8e3af657-a8ff-443c-a75c-2fe8c4bcb635");
        let contributor = roles.iter().find(|r| r.role_name == "Contributor").unwrap();
        assert_eq!(
            contributor.coverage("Microsoft.Authorization/roleAssignments/write", ActionKind::Action),
            Coverage::RemovedByNotAction { matched: "*".into(), not_action: "Microsoft.Authorization/*/Write".into() }
        );
        let mio = roles.iter().find(|r| r.role_name == "Managed Identity Operator").unwrap();
        assert!(matches!(mio.coverage("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", ActionKind::Action), Coverage::Granted { .. }));
        let kv = roles.iter().find(|r| r.role_name == "Key Vault Secrets User").unwrap();
        assert!(matches!(kv.coverage("Microsoft.KeyVault/vaults/secrets/getSecret/action", ActionKind::DataAction), Coverage::Granted { .. }));
        assert_eq!(kv.coverage("Microsoft.KeyVault/vaults/secrets/getSecret/action", ActionKind::Action), Coverage::NotCovered);
    }

    #[test]
    fn custom_roles_read_the_az_file_shape_and_refuse_bad_ones() {
        let flat = serde_json::json!({
            "Name": "LB Reader", "IsCustom": true, "Description": "reads load balancers",
            "Actions": ["Microsoft.Network/loadBalancers/read"], "NotActions": [],
            "AssignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000001"]
        });
        let role = RoleDefinition::custom_from_json(&flat).unwrap();
        assert_eq!(role.role_name, "LB Reader");
        assert_eq!(role.role_type, RoleType::CustomRole);
        let mut no_scope = flat.clone();
        no_scope["AssignableScopes"] = serde_json::json!([]);
        assert!(RoleDefinition::custom_from_json(&no_scope).unwrap_err().to_string().contains("AssignableScopes"));
        let mut builtin_name = flat.clone();
        builtin_name["Name"] = "reader".into();
        assert!(RoleDefinition::custom_from_json(&builtin_name).unwrap_err().to_string().contains("built-in"));
        let builtin_id = serde_json::json!({
            "name": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "roleName": "Reader but more",
            "permissions": [{"actions": ["*"]}], "assignableScopes": ["/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"]
        });
        let refused = RoleDefinition::custom_from_json(&builtin_id).unwrap_err();
        assert!(matches!(&refused, Error::Conflict(m) if m.contains("built-in role 'Reader'")), "{refused}");
        // The API adds the GUID from the URL as `name`; neither shape may lose its role name or GUID to it.
        let id = "0f0e0d0c-0b0a-0908-0706-050403020100";
        let mut flat_with_id = flat.clone();
        flat_with_id["name"] = id.into();
        let api = serde_json::json!({"roleName": "LB Reader", "name": id, "permissions": [{"actions": ["*/read"]}], "assignableScopes": ["/"]});
        for shape in [flat_with_id, api] {
            let role = RoleDefinition::custom_from_json(&shape).unwrap();
            assert_eq!((role.role_name.as_str(), role.name.to_string().as_str()), ("LB Reader", id), "{shape}");
        }
        let mut directory_name = flat.clone();
        directory_name["Name"] = "Global ADMINISTRATOR".into();
        assert!(RoleDefinition::custom_from_json(&directory_name).unwrap_err().to_string().contains("built-in role 'Global Administrator'"));
        let mut bad_action = flat;
        bad_action["Actions"] = serde_json::json!(["read everything"]);
        assert!(RoleDefinition::custom_from_json(&bad_action).unwrap_err().to_string().contains("invalid action"));
    }
}
