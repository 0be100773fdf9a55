//! End to end: directory objects are managed the Entra way. An app's credentials are managed by its
//! owners and by directory roles granted at the tenant root; Azure roles, Owner included, grant
//! nothing there; a privileged app (one whose principal could grant roles) takes Global Administrator.
mod support;

use serde_json::{json, Value};
use support::{Cli, Server};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn start(dir: &std::path::Path) -> (Server, Cli, String) {
    let server = Server::start(&dir.join("srv"), &[]);
    let admin = Cli::admin(&dir.join("admin"), &server);
    let sub = admin.subscription();
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    (server, admin, sub)
}

/// A service principal made by the admin, holding `role` at `scope` when given.
fn sp(admin: &Cli, name: &str, role: Option<(&str, &str)>) -> Value {
    let mut args = vec!["ad", "sp", "create-for-rbac", "--name", name];
    if let Some((role, scope)) = role {
        args.extend(["--role", role, "--scopes", scope]);
    }
    admin.run(&args).ok()
}

fn signed_in(dir: &std::path::Path, server: &Server, sp: &Value) -> Cli {
    let (cli, login) = Cli::service_principal(&dir.join(s(&sp["displayName"])), server, s(&sp["appId"]), s(&sp["password"]));
    login.ok();
    cli
}

/// Issue 9, hole 2, exactly: a principal holding Contributor (or Owner) on the subscription POSTs
/// resetCredentials with append for the bootstrap admin's app. Refused, and the admin's one
/// secret is all there is.
#[test]
fn contributor_and_owner_on_the_subscription_cannot_add_a_secret_to_the_admin_app() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = start(dir.path());
    let admin_app = server.credentials()["appId"].as_str().unwrap().to_string();
    let plain = sp(&admin, "plain", None);
    for role in ["Contributor", "Owner"] {
        let holder = sp(&admin, &format!("{role}-holder"), Some((role, &format!("/subscriptions/{sub}"))));
        let token = server.access_token(s(&holder["appId"]), s(&holder["password"]), "https://management.azure.com/.default");
        let (status, answer) = server.api("POST", &format!("/v1.0/applications/{admin_app}/resetCredentials"), &token, Some(&json!({"append": true})));
        assert_eq!(status, 403, "{role}: {answer}");
        assert_eq!(answer["error"]["code"], "AuthorizationFailed");
        let message = s(&answer["error"]["message"]);
        assert!(message.contains("is privileged") && message.contains("Global Administrator"), "{message}");
        // Not even an ordinary app: Azure roles grant nothing in the directory.
        let (status, answer) =
            server.api("POST", &format!("/v1.0/applications/{}/resetCredentials", s(&plain["appId"])), &token, Some(&json!({"append": true})));
        assert_eq!(status, 403, "{role}: {answer}");
        assert!(s(&answer["error"]["message"]).contains("grant nothing in the directory"), "{answer}");
        // Nor a federated credential, the other way to sign in as the app (a Graph route: Graph's code).
        let fic = json!({"name": "takeover", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:x/y:ref:refs/heads/main",
                         "audiences": ["api://AzureADTokenExchange"]});
        let (status, answer) = server.api("POST", &format!("/v1.0/applications/{admin_app}/federatedIdentityCredentials"), &token, Some(&fic));
        assert_eq!((status, &answer["error"]["code"]), (403, &json!("Authorization_RequestDenied")), "{answer}");
        assert!(s(&answer["error"]["message"]).contains("is privileged"), "{answer}");
    }
    let secrets = admin.run(&["ad", "sp", "credential", "list", "--id", &admin_app]).ok();
    assert_eq!(secrets.as_array().unwrap().len(), 1, "{secrets}");
    assert_eq!(admin.run(&["ad", "app", "federated-credential", "list", "--id", &admin_app]).ok(), json!([]));
}

#[test]
fn owners_manage_their_apps_and_directory_roles_at_the_root_decide_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = start(dir.path());
    let admin_app = server.credentials()["appId"].as_str().unwrap().to_string();
    let builder = signed_in(dir.path(), &server, &sp(&admin, "builder", Some(("Contributor", &format!("/subscriptions/{sub}")))));
    let plain = sp(&admin, "plain", None);
    let plain_app = s(&plain["appId"]);

    // The app's owner (its creator) manages it; a Contributor does not manage someone else's.
    let own = builder.run(&["ad", "sp", "create-for-rbac", "--name", "builder-app"]).ok();
    let own_app = s(&own["appId"]);
    builder.run(&["ad", "sp", "credential", "reset", "--id", own_app, "--append"]).ok();
    assert_eq!(builder.run(&["ad", "sp", "credential", "list", "--id", own_app]).ok().as_array().unwrap().len(), 2);
    builder
        .run(&["ad", "sp", "credential", "reset", "--id", plain_app, "--append"])
        .fails_with(&["AuthorizationFailed", "Azure roles, Owner included, grant nothing"]);
    let denied = admin.run(&["role", "check", "--assignee", "builder", "--action", "microsoft.directory/applications/credentials/update", "--scope", "/"]);
    assert_eq!(denied.code, 3, "{}", denied.stdout);
    assert_eq!(denied.json()["suggestion"]["roleName"], "Cloud Application Administrator");

    // Directory roles are granted at the tenant root only, and only by a Global Administrator.
    let app_admin_sp = sp(&admin, "app-admin", None);
    let app_admin = signed_in(dir.path(), &server, &app_admin_sp);
    admin
        .run(&["role", "assignment", "create", "--role", "Application Administrator", "--assignee", "app-admin", "--scope", &format!("/subscriptions/{sub}")])
        .fails_with(&["InvalidRoleAssignmentScope", "directory role", "--scope /"]);
    let Value::Object(granted) =
        admin.run(&["role", "assignment", "create", "--role", "Application Administrator", "--assignee", "app-admin", "--scope", "/"]).ok()
    else {
        panic!("not an assignment")
    };
    assert_eq!((&granted["roleDefinitionName"], &granted["scope"]), (&json!("Application Administrator"), &json!("/")));
    builder
        .run(&["role", "assignment", "create", "--role", "Global Administrator", "--assignee", "builder", "--scope", "/"])
        .fails_with(&["AuthorizationFailed"]);
    app_admin
        .run(&["role", "assignment", "create", "--role", "Global Administrator", "--assignee", "app-admin", "--scope", "/"])
        .fails_with(&["AuthorizationFailed"]);
    let check =
        admin.run(&["role", "check", "--assignee", "app-admin", "--action", "microsoft.directory/applications/credentials/update", "--scope", "/"]).ok();
    assert_eq!(check["grantedBy"]["roleName"], "Application Administrator");
    let held = admin.run(&["role", "assignment", "list", "--assignee", "app-admin"]).ok();
    assert_eq!(held[0]["roleDefinitionName"], "Application Administrator", "{held}");
    let at_root = admin.run(&["role", "assignment", "list", "--scope", "/", "--query", "sort([].roleDefinitionName)"]).ok();
    assert_eq!(at_root, json!(["Application Administrator", "Global Administrator"]));
    builder.run(&["role", "assignment", "list", "--scope", "/"]).fails_with(&["AuthorizationFailed"]);

    // Application Administrator manages an ordinary app, not a privileged one.
    app_admin.run(&["ad", "sp", "credential", "reset", "--id", plain_app, "--append"]).ok();
    app_admin.run(&["ad", "sp", "credential", "reset", "--id", &admin_app, "--append"]).fails_with(&[
        "AuthorizationFailed",
        "is privileged",
        "holds 'Global Administrator' at '/'",
        "takes Global Administrator",
    ]);
    // An owner's app that comes to hold User Access Administrator is privileged too, for its owner as well.
    admin.run(&["role", "assignment", "create", "--role", "User Access Administrator", "--assignee", own_app, "-g", "apps"]).ok();
    builder.run(&["ad", "sp", "credential", "reset", "--id", own_app, "--append"]).fails_with(&["is privileged", "'User Access Administrator'"]);
    app_admin.run(&["ad", "sp", "credential", "reset", "--id", own_app, "--append"]).fails_with(&["is privileged"]);

    // A Global Administrator can.
    let ga = signed_in(dir.path(), &server, &sp(&admin, "ga", None));
    admin.run(&["role", "assignment", "create", "--role", "Global Administrator", "--assignee", "ga", "--scope", "/"]).ok();
    let added = ga.run(&["ad", "sp", "credential", "reset", "--id", own_app, "--append"]).ok();
    Cli::service_principal(&dir.path().join("builder-app"), &server, own_app, s(&added["password"])).1.ok();
    ga.run(&["ad", "sp", "credential", "reset", "--id", &admin_app, "--append"]).ok();
    // Removing a directory role takes a Global Administrator as well.
    let id = s(&granted["id"]).to_string();
    app_admin.run(&["role", "assignment", "delete", "--ids", &id]).fails_with(&["AuthorizationFailed"]);
    ga.run(&["role", "assignment", "delete", "--ids", &id]).ok();
    app_admin.run(&["ad", "sp", "credential", "reset", "--id", plain_app, "--append"]).fails_with(&["AuthorizationFailed"]);
}

/// A store made before directory roles: the admin holds only Owner. The next start grants it
/// Global Administrator, so the upgrade does not lock the admin out of managing apps.
#[test]
fn an_upgraded_store_grants_the_bootstrap_admin_global_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, _) = start(dir.path());
    let admin_app = server.credentials()["appId"].as_str().unwrap().to_string();
    let roles = |cli: &Cli| cli.run(&["role", "assignment", "list", "--assignee", &admin_app, "--query", "sort([].roleDefinitionName)"]).ok();
    assert_eq!(roles(&admin), json!(["Global Administrator", "Owner"]));
    let home = server.home.clone();
    drop(server);
    let db = home.join("kite.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("DELETE FROM role_assignments WHERE role_id = '62e90394-69f5-4237-9190-012177145e10'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let server = Server::start(&home, &[]);
    assert!(server.log_text().contains("granted Global Administrator"), "{}", server.log_text());
    let admin = Cli::admin(&dir.path().join("admin2"), &server);
    assert_eq!(roles(&admin), json!(["Global Administrator", "Owner"]));
    let other = signed_in(dir.path(), &server, &sp(&admin, "someone", None));
    let theirs = other.run(&["ad", "sp", "create-for-rbac", "--name", "theirs"]).ok();
    admin.run(&["ad", "sp", "credential", "reset", "--id", s(&theirs["appId"]), "--append"]).ok();
}
