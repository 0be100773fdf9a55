//! End to end: federated credentials and signing keys through the CLI (the Python suite in
//! tests/compat drives the token endpoints with the real Azure clients).
mod support;

use support::{Cli, Server};

#[test]
fn federated_credentials_are_validated_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "wi", "-l", "japaneast"]).ok();
    cli.run(&["identity", "create", "-g", "wi", "-n", "app-identity"]).ok();
    let base = ["identity", "federated-credential"];
    let create = |name: &str, issuer: &str, subject: &str| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["create", "--name", name, "--identity-name", "app-identity", "-g", "wi", "--issuer", issuer, "--subject", subject]);
        cli.run(&args)
    };
    let fic = create("kubernetes", "https://oidc.example.com/abc", "system:serviceaccount:default:app").ok();
    assert_eq!(fic["audiences"], serde_json::json!(["api://AzureADTokenExchange"]));
    assert_eq!(fic["type"], "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials");
    assert!(fic["id"].as_str().unwrap().ends_with("/userAssignedIdentities/app-identity/federatedIdentityCredentials/kubernetes"));
    create("kubernetes", "https://oidc.example.com/abc", "system:serviceaccount:default:other").fails_with(&["already exists"]);
    create("plain-http", "http://oidc.example.com", "x").fails_with(&["invalid issuer"]);
    let listed = cli.run(&["identity", "federated-credential", "list", "--identity-name", "app-identity", "-g", "wi", "--query", "[].subject"]).ok();
    assert_eq!(listed, serde_json::json!(["system:serviceaccount:default:app"]));
    cli.run(&["identity", "federated-credential", "delete", "--name", "kubernetes", "--identity-name", "app-identity", "-g", "wi"]).ok();
    cli.run(&["identity", "federated-credential", "show", "--name", "kubernetes", "--identity-name", "app-identity", "-g", "wi"])
        .fails_with(&["ResourceNotFound"]);
}

#[test]
fn only_owners_rotate_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let keys = admin.run(&["keys", "list"]).ok();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["signing"], true);
    let sub = admin.subscription();
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "contrib", "--role", "Contributor", "--scopes", &format!("/subscriptions/{sub}")]).ok();
    let (contrib, login) = Cli::service_principal(&dir.path().join("contrib"), &server, sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());
    login.ok();
    contrib.run(&["keys", "rotate"]).fails_with(&["AuthorizationFailed", "signingKeys/write", "NotAction 'Microsoft.Authorization/*/Write'"]);
    let rotated = admin.run(&["keys", "rotate"]).ok();
    let rotated = rotated.as_array().unwrap();
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated.iter().filter(|k| k["signing"] == true).count(), 1);
    assert!(rotated[0]["retiresAfter"].is_number(), "the superseded key announces when it retires");
    assert_eq!(rotated[1]["signing"], true, "the newest key signs");
    // Tokens signed before the rotation keep working: the contributor's cached token is still accepted.
    contrib.run(&["group", "list"]).ok();
}
