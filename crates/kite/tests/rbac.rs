//! End to end: role assignments are enforced by the engine, every refusal explains itself, and bad
//! input changes nothing.
mod support;

use support::{Cli, Server};

fn setup(dir: &std::path::Path) -> (Server, Cli, String) {
    let server = Server::start(&dir.join("srv"), &[]);
    let admin = Cli::admin(&dir.join("admin"), &server);
    let sub = admin.subscription();
    admin.run(&["group", "create", "-n", "aks-rg", "-l", "japaneast"]).ok();
    admin.run(&["group", "create", "-n", "other-rg", "-l", "japaneast"]).ok();
    (server, admin, sub)
}

#[test]
fn a_contributor_cannot_grant_roles_until_given_user_access_administrator_and_is_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = setup(dir.path());
    let sp = admin
        .run(&[
            "ad",
            "sp",
            "create-for-rbac",
            "--name",
            "deployer",
            "--role",
            "Contributor",
            "--scopes",
            &format!("/subscriptions/{sub}/resourceGroups/aks-rg"),
        ])
        .ok();
    let (deployer, login) = Cli::service_principal(&dir.path().join("deployer"), &server, sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());
    login.ok();
    let kubelet = admin.run(&["identity", "create", "-g", "aks-rg", "-n", "aks-agentpool"]).ok();
    let kubelet_id = kubelet["principalId"].as_str().unwrap();

    // Contributor on the group: may create identities there, not in the sibling group, and may not assign roles.
    deployer.run(&["identity", "create", "-g", "aks-rg", "-n", "workload"]).ok();
    admin.run(&["identity", "create", "-g", "other-rg", "-n", "elsewhere"]).ok();
    // Listings show only what the caller may read.
    assert_eq!(deployer.run(&["group", "list", "--query", "[].name"]).ok(), serde_json::json!(["aks-rg"]));
    assert_eq!(deployer.run(&["identity", "list", "--query", "[].name"]).ok(), serde_json::json!(["aks-agentpool", "workload"]));
    assert_eq!(admin.run(&["identity", "list", "--query", "length(@)"]).ok(), serde_json::json!(3));
    deployer.run(&["identity", "create", "-g", "other-rg", "-n", "workload"]).fails_with(&[
        "AuthorizationFailed",
        "userAssignedIdentities/write",
        "has no role assignment",
    ]);
    let refused = deployer.run(&["role", "assignment", "create", "--role", "Managed Identity Operator", "--assignee", kubelet_id, "-g", "aks-rg"]);
    refused.fails_with(&[
        "AuthorizationFailed",
        "Microsoft.Authorization/roleAssignments/write",
        "role 'Contributor'",
        "NotAction 'Microsoft.Authorization/*/Write'",
        "kite role assignment create --assignee",
    ]);
    assert!(admin.run(&["role", "assignment", "list", "--assignee", kubelet_id, "--all"]).ok().as_array().unwrap().is_empty());

    // Seed 000: Owner or User Access Administrator is what assigning roles takes.
    admin.run(&["role", "assignment", "create", "--role", "User Access Administrator", "--assignee", "deployer", "-g", "aks-rg"]).ok();
    let granted = deployer.run(&["role", "assignment", "create", "--role", "Managed Identity Operator", "--assignee", kubelet_id, "-g", "aks-rg"]).ok();
    assert_eq!(granted["roleDefinitionName"], "Managed Identity Operator");
    assert_eq!(granted["principalId"], kubelet_id);
    assert_eq!(
        granted["roleDefinitionId"],
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/f1a07417-d97a-45cb-824c-7a7467783830")
    );
    admin
        .run(&["role", "assignment", "create", "--role", "Managed Identity Operator", "--assignee", kubelet_id, "-g", "aks-rg"])
        .fails_with(&["RoleAssignmentExists"]);
    // Removing by id, as az takes it.
    let id = granted["id"].as_str().unwrap();
    deployer.run(&["role", "assignment", "delete", "--ids", id]).ok();
    assert!(admin.run(&["role", "assignment", "list", "--assignee", kubelet_id, "--all"]).ok().as_array().unwrap().is_empty());
    // Still nothing at the sibling group.
    deployer.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", kubelet_id, "-g", "other-rg"]).fails_with(&["AuthorizationFailed"]);
}

#[test]
fn check_access_explains_allow_and_deny_with_wildcards_and_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin, sub) = setup(dir.path());
    let mi = admin.run(&["identity", "create", "-g", "aks-rg", "-n", "control-plane"]).ok();
    let who = mi["clientId"].as_str().unwrap();
    let node_rg = format!("/subscriptions/{sub}/resourceGroups/aks-rg");
    admin.run(&["role", "assignment", "create", "--role", "contributor", "--assignee", who, "--scope", &node_rg]).ok();
    let lb = format!("{node_rg}/providers/Microsoft.Network/loadBalancers/kubernetes");

    let allowed = admin.run(&["role", "check", "--assignee", who, "--action", "microsoft.network/LOADBALANCERS/read", "--scope", &lb]);
    let d = allowed.ok();
    assert_eq!(d["allowed"], true);
    assert_eq!(d["grantedBy"]["roleName"], "Contributor");
    assert_eq!(d["grantedBy"]["scope"], node_rg);
    assert_eq!(d["grantedBy"]["matched"], "*");

    let denied = admin.run(&[
        "role",
        "check",
        "--assignee",
        "control-plane",
        "--action",
        "Microsoft.Network/loadBalancers/read",
        "--scope",
        &format!("/subscriptions/{sub}/resourceGroups/other-rg"),
    ]);
    assert_eq!(denied.code, 3, "denied checks exit 3");
    let d = denied.json();
    assert_eq!(d["allowed"], false);
    assert_eq!(d["suggestion"]["roleName"], "Reader");
    assert!(d["suggestion"]["command"].as_str().unwrap().contains("--role \"Reader\" --scope /subscriptions/"));

    let data =
        admin.run(&["role", "check", "--assignee", who, "--action", "Microsoft.KeyVault/vaults/secrets/getSecret/action", "--data-action", "-g", "aks-rg"]);
    assert_eq!(data.code, 3, "Contributor grants no data actions: {}", data.stdout);
    assert_eq!(data.json()["suggestion"]["roleName"], "Key Vault Secrets User");

    let table = admin.run(&["role", "check", "--assignee", who, "--action", "Microsoft.Compute/virtualMachines/write", "-g", "aks-rg", "-o", "table"]);
    assert!(table.stdout.contains("allowed: role 'Contributor'"), "{}", table.stdout);
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin, sub) = setup(dir.path());
    admin.run(&["identity", "create", "-g", "aks-rg", "-n", "app-id"]).ok();
    let before = admin.run(&["role", "assignment", "list", "--all"]).ok();

    admin
        .run(&["role", "assignment", "create", "--role", "Contributer", "--assignee", "app-id", "-g", "aks-rg"])
        .fails_with(&["RoleDefinitionDoesNotExist", "Did you mean 'Contributor'?"]);
    admin
        .run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "app-id", "--scope", &format!("/subscriptions/{sub}/resourcegroup/aks-rg")])
        .fails_with(&["InvalidScope", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"]);
    admin
        .run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "app-idd", "-g", "aks-rg"])
        .fails_with(&["PrincipalNotFound", "Did you mean 'app-id'?"]);
    admin.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "app-id", "-g", "no-such-rg"]).fails_with(&["ResourceGroupNotFound"]);
    admin.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "app-id"]).fails_with(&["--scope is required"]);
    admin.run(&["role", "check", "--assignee", "app-id", "--action", "read everything", "-g", "aks-rg"]).fails_with(&["invalid action"]);
    assert_eq!(admin.run(&["role", "assignment", "list", "--all"]).ok(), before);

    // Same name in two groups: the assignee is ambiguous, and the error lists both.
    admin.run(&["identity", "create", "-g", "other-rg", "-n", "app-id"]).ok();
    admin.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "app-id", "-g", "aks-rg"]).fails_with(&[
        "AmbiguousAssignee",
        "other-rg",
        "aks-rg",
    ]);
}

#[test]
fn custom_roles_from_az_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin, sub) = setup(dir.path());
    let file = dir.path().join("lb-reader.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "Name": "LB Reader", "IsCustom": true, "Description": "Reads load balancers",
            "Actions": ["Microsoft.Network/loadBalancers/read"], "NotActions": [], "DataActions": [], "NotDataActions": [],
            "AssignableScopes": [format!("/subscriptions/{sub}")]
        })
        .to_string(),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let role = admin.run(&["role", "definition", "create", "--role-definition", path]).ok();
    assert_eq!(role["roleName"], "LB Reader");
    assert_eq!(role["roleType"], "CustomRole");
    admin.run(&["role", "definition", "create", "--role-definition", path]).fails_with(&["RoleDefinitionWithSameNameExists"]);
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"{"Name": "No Scopes", "Actions": ["*/read"]}"#).unwrap();
    admin.run(&["role", "definition", "create", "--role-definition", broken.to_str().unwrap()]).fails_with(&["AssignableScopes"]);

    let mi = admin.run(&["identity", "create", "-g", "aks-rg", "-n", "lb-watcher"]).ok();
    let who = mi["principalId"].as_str().unwrap();
    admin.run(&["role", "assignment", "create", "--role", "lb reader", "--assignee", who, "-g", "aks-rg"]).ok();
    assert_eq!(admin.run(&["role", "check", "--assignee", who, "--action", "Microsoft.Network/loadBalancers/read", "-g", "aks-rg"]).code, 0);
    assert_eq!(admin.run(&["role", "check", "--assignee", who, "--action", "Microsoft.Network/loadBalancers/write", "-g", "aks-rg"]).code, 3);
    admin.run(&["role", "definition", "delete", "--name", "LB Reader"]).fails_with(&["still used"]);
    admin.run(&["role", "assignment", "delete", "--assignee", who, "--role", "LB Reader", "-g", "aks-rg"]).ok();
    admin.run(&["role", "definition", "delete", "--name", "LB Reader"]).ok();
    admin.run(&["role", "definition", "delete", "--name", "Reader"]).fails_with(&["built-in"]);
    let names = admin.run(&["role", "definition", "list", "--query", "[].roleName"]).ok();
    for builtin in [
        "Owner",
        "Contributor",
        "Reader",
        "User Access Administrator",
        "Managed Identity Operator",
        "Virtual Machine Contributor",
        "Network Contributor",
        "Azure Kubernetes Service Contributor Role",
        "DNS Zone Contributor",
        "Key Vault Secrets User",
        "AcrPull",
        "Monitoring Metrics Publisher",
    ] {
        assert!(names.as_array().unwrap().iter().any(|n| n == builtin), "{builtin} missing");
    }
}

#[test]
fn the_api_refuses_missing_or_forged_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = setup(dir.path());
    let _ = admin;
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert", server.ca().to_str().unwrap(), &format!("{}/subscriptions/{sub}/resourceGroups", server.url)])
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyJ9.";
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert", server.ca().to_str().unwrap(), "-H", &format!("Authorization: Bearer {forged}")])
        .arg(format!("{}/subscriptions/{sub}/resourceGroups", server.url))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken", "{body}");
}

const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

/// Issue 9, hole 1: whoever may write role definitions on one resource group sends a custom role
/// under Reader's (or Owner's) ID with `Actions: ["*"]`. It is refused, as is a built-in's name in
/// any case; one already stored never takes effect, is named at start, and can be removed.
#[test]
fn a_custom_role_can_never_take_over_a_builtin_role() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = setup(dir.path());
    let rg = format!("/subscriptions/{sub}/resourceGroups/aks-rg");
    let rg_admin = admin.run(&["ad", "sp", "create-for-rbac", "--name", "rg-admin", "--role", "User Access Administrator", "--scopes", &rg]).ok();
    let reader = admin.run(&["ad", "sp", "create-for-rbac", "--name", "reader", "--role", "Reader", "--scopes", &format!("/subscriptions/{sub}")]).ok();
    let reader_id = reader["appId"].as_str().unwrap();
    let attacker = server.access_token(rg_admin["appId"].as_str().unwrap(), rg_admin["password"].as_str().unwrap(), "https://management.azure.com/.default");

    for (id, name) in [(READER, "Reader"), (OWNER, "Owner")] {
        let body = serde_json::json!({"properties": {"roleName": "takeover", "permissions": [{"actions": ["*"]}], "assignableScopes": [rg]}});
        let (status, answer) = server.api("PUT", &format!("{rg}/providers/Microsoft.Authorization/roleDefinitions/{id}"), &attacker, Some(&body));
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "RoleDefinitionWithSameNameExists");
        assert!(answer["error"]["message"].as_str().unwrap().contains(&format!("built-in role '{name}'")), "{answer}");
    }
    let body = serde_json::json!({"properties": {"roleName": "rEADER", "permissions": [{"actions": ["*"]}], "assignableScopes": [rg]}});
    let (status, answer) =
        server.api("PUT", &format!("{rg}/providers/Microsoft.Authorization/roleDefinitions/{}", uuid::Uuid::new_v4()), &attacker, Some(&body));
    assert_eq!((status, &answer["error"]["code"]), (409, &serde_json::json!("RoleDefinitionWithSameNameExists")), "{answer}");
    let write = ["role", "check", "--assignee", reader_id, "--action", "Microsoft.Compute/virtualMachines/write", "--scope", &rg];
    assert_eq!(admin.run(&write).code, 3, "a Reader must not write");
    assert!(admin.run(&["role", "definition", "list", "--custom-role-only"]).ok().as_array().unwrap().is_empty());

    // Stored by an older kite: the row is there, but it never takes effect.
    let home = server.home.clone();
    drop(server);
    let stored = serde_json::json!({"name": READER, "roleName": "takeover", "description": "", "roleType": "CustomRole",
        "permissions": [{"actions": ["*"]}], "assignableScopes": [rg]});
    let insert = format!("INSERT INTO role_definitions (id, name_key, body) VALUES ('{READER}', 'takeover', '{stored}')");
    let db = home.join("kite.db");
    let out = std::process::Command::new("sqlite3").arg(&db).arg(&insert).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin2"), &server);
    let log = server.log_text();
    assert!(log.contains("ERROR") && log.contains(READER) && log.contains(&format!("kite role definition delete --name {READER}")), "{log}");
    assert_eq!(admin.run(&write).code, 3, "a stored takeover must not take effect");
    let shown = admin.run(&["role", "definition", "list", "--name", "Reader"]).ok();
    assert_eq!(shown[0]["roleType"], "BuiltInRole");
    admin.run(&["role", "definition", "delete", "--name", READER]).ok();
    let left = std::process::Command::new("sqlite3").arg(&db).arg("SELECT count(*) FROM role_definitions").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
    admin.run(&["role", "definition", "delete", "--name", READER]).fails_with(&["built-in"]);
}

/// As in Azure: writing a role definition takes `roleDefinitions/write` at every one of its
/// assignable scopes, not only at the scope the request names.
#[test]
fn writing_a_role_definition_needs_write_at_every_assignable_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = setup(dir.path());
    let (rg, other) = (format!("/subscriptions/{sub}/resourceGroups/aks-rg"), format!("/subscriptions/{sub}/resourceGroups/other-rg"));
    let rg_admin = admin.run(&["ad", "sp", "create-for-rbac", "--name", "rg-admin", "--role", "User Access Administrator", "--scopes", &rg]).ok();
    let token = server.access_token(rg_admin["appId"].as_str().unwrap(), rg_admin["password"].as_str().unwrap(), "https://management.azure.com/.default");
    let put = |scopes: serde_json::Value| {
        let body = serde_json::json!({"properties": {"roleName": "LB Reader", "permissions": [{"actions": ["Microsoft.Network/loadBalancers/read"]}], "assignableScopes": scopes}});
        server.api("PUT", &format!("{rg}/providers/Microsoft.Authorization/roleDefinitions/{}", uuid::Uuid::new_v4()), &token, Some(&body))
    };
    for scopes in [serde_json::json!([rg, other]), serde_json::json!([format!("/subscriptions/{sub}")])] {
        let (status, answer) = put(scopes.clone());
        assert_eq!((status, &answer["error"]["code"]), (403, &serde_json::json!("AuthorizationFailed")), "{scopes}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("roleDefinitions/write"), "{answer}");
    }
    let (status, answer) = put(serde_json::json!([rg]));
    assert_eq!(status, 201, "{answer}");
}
