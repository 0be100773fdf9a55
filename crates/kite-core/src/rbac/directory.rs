//! Entra directory roles: what manages directory objects (apps, their credentials, directory role
//! assignments). As in Azure, Azure (ARM) roles grant nothing here, Owner included, and directory
//! roles grant nothing in ARM: an action under `microsoft.directory/` is decided by directory roles
//! alone, which are assigned only at the tenant root (`/`).

use std::sync::LazyLock;

use uuid::Uuid;

use super::{ActionKind, Coverage, Permission, RoleAssignment, RoleDefinition, RoleType};

/// Adds or removes an app's secrets, certificates and federated credentials.
pub const CREDENTIALS_UPDATE: &str = "microsoft.directory/applications/credentials/update";
/// Reads an app's credential metadata and federated credentials.
pub const APPLICATIONS_READ: &str = "microsoft.directory/applications/allProperties/read";
pub const APPLICATIONS_DELETE: &str = "microsoft.directory/applications/delete";
/// Grants and removes directory roles; also what changing a privileged app takes (see [`privileged_holding`]).
pub const ROLE_ASSIGNMENTS_MANAGE: &str = "microsoft.directory/roleAssignments/allProperties/allTasks";
pub const ROLE_ASSIGNMENTS_READ: &str = "microsoft.directory/roleAssignments/standard/read";

/// What an app-managing role may do, with Entra's action names (a subset: what kite checks and
/// what a reader would look for).
const APP_ADMIN_ACTIONS: &[&str] = &[
    "microsoft.directory/applications/create",
    "microsoft.directory/applications/delete",
    CREDENTIALS_UPDATE,
    "microsoft.directory/applications/owners/update",
    "microsoft.directory/applications/basic/update",
    APPLICATIONS_READ,
    "microsoft.directory/servicePrincipals/create",
    "microsoft.directory/servicePrincipals/delete",
    "microsoft.directory/servicePrincipals/credentials/update",
    "microsoft.directory/servicePrincipals/owners/update",
    "microsoft.directory/servicePrincipals/allProperties/read",
];

/// Entra's role template IDs, so assignments read the same as Entra's.
pub const GLOBAL_ADMINISTRATOR: Uuid = Uuid::from_u128(0x62e90394_69f5_4237_9190_012177145e10);
pub const APPLICATION_ADMINISTRATOR: Uuid = Uuid::from_u128(0x9b895d92_2cd3_44c7_9d02_a6ac2d5ea5c3);
pub const CLOUD_APPLICATION_ADMINISTRATOR: Uuid = Uuid::from_u128(0x158c047a_c907_4556_b7ef_446551a6b5f7);

fn role(name: Uuid, role_name: &str, description: &str, actions: Vec<String>) -> RoleDefinition {
    RoleDefinition {
        name,
        role_name: role_name.into(),
        description: description.into(),
        role_type: RoleType::DirectoryRole,
        permissions: vec![Permission { actions, ..Permission::default() }],
        assignable_scopes: vec!["/".into()],
    }
}

static DIRECTORY_ROLES: LazyLock<Vec<RoleDefinition>> = LazyLock::new(|| {
    let app_admin = || APP_ADMIN_ACTIONS.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mut with_proxy = app_admin();
    with_proxy.push("microsoft.directory/applications/applicationProxy/update".into());
    vec![
        // Least privileged first: suggestions pick the first that grants.
        role(
            CLOUD_APPLICATION_ADMINISTRATOR,
            "Cloud Application Administrator",
            "Can create and manage all aspects of app registrations and enterprise apps except App Proxy.",
            app_admin(),
        ),
        role(APPLICATION_ADMINISTRATOR, "Application Administrator", "Can create and manage all aspects of app registrations and enterprise apps.", with_proxy),
        role(
            GLOBAL_ADMINISTRATOR,
            "Global Administrator",
            "Can manage all aspects of Microsoft Entra ID, including directory role assignments.",
            vec!["microsoft.directory/*".into()],
        ),
    ]
});

/// The directory roles kite knows, with Entra's template IDs.
pub fn directory_roles() -> &'static [RoleDefinition] {
    &DIRECTORY_ROLES
}

/// True for actions on directory objects, which only directory roles grant.
pub fn is_directory_action(action: &str) -> bool {
    const PREFIX: &str = "microsoft.directory/";
    action.get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// Why a principal counts as privileged, given its assignments and a way to read roles: the first
/// assignment of a directory role, or of an Azure role that grants `roleAssignments/write` (Owner,
/// User Access Administrator, Role Based Access Control Administrator, custom roles alike).
/// Adding a credential to such a principal's app is as strong as granting what it holds, so it
/// takes [`ROLE_ASSIGNMENTS_MANAGE`], whoever owns the app.
pub fn privileged_holding<'a, 'r>(
    assignments: &'a [RoleAssignment],
    role: impl Fn(&Uuid) -> Option<&'r RoleDefinition>,
) -> Option<(&'a RoleAssignment, &'r RoleDefinition)> {
    assignments.iter().find_map(|a| {
        let r = role(&a.role_definition_id)?;
        let grants = r.role_type == RoleType::DirectoryRole
            || matches!(r.coverage("Microsoft.Authorization/roleAssignments/write", ActionKind::Action), Coverage::Granted { .. });
        grants.then_some((a, r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_roles_carry_entras_template_ids_and_only_global_administrator_manages_role_assignments() {
        for a in directory_roles().iter().flat_map(|r| r.permissions.iter().flat_map(|p| &p.actions)) {
            super::super::action::validate(a).unwrap();
        }
        let by_name = |n: &str| directory_roles().iter().find(|r| r.role_name == n).unwrap();
        assert_eq!(by_name("Global Administrator").name.to_string(), "62e90394-69f5-4237-9190-012177145e10");
        assert_eq!(by_name("Application Administrator").name.to_string(), "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3");
        assert_eq!(by_name("Cloud Application Administrator").name.to_string(), "158c047a-c907-4556-b7ef-446551a6b5f7");
        for r in directory_roles() {
            let grants = |a: &str| matches!(r.coverage(a, ActionKind::Action), Coverage::Granted { .. });
            assert!(grants(CREDENTIALS_UPDATE), "{}", r.role_name);
            assert_eq!(grants(ROLE_ASSIGNMENTS_MANAGE), r.name == GLOBAL_ADMINISTRATOR, "{}", r.role_name);
        }
        assert!(is_directory_action("Microsoft.Directory/applications/credentials/update"));
        assert!(!is_directory_action("Microsoft.DirectoryServices/x/read"));
        assert!(!is_directory_action("é"));
    }
}
