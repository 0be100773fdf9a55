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

/// A `client_credentials` request with a secret, from `source` (a loopback address curl binds
/// to): the status, the Retry-After header and the JSON body.
fn secret_grant(server: &Server, source: &str, app_id: &str, secret: &str) -> (u16, Option<u64>, serde_json::Value) {
    let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--interface", source, "--cacert", server.ca().to_str().unwrap()])
        .args(["--data-urlencode", "grant_type=client_credentials", "--data-urlencode", &format!("client_id={app_id}")])
        .args(["--data-urlencode", &format!("client_secret={secret}"), "--data-urlencode", "scope=https://management.azure.com/.default"])
        .arg(format!("{}/{tenant}/oauth2/v2.0/token", server.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let retry_after = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().parse().unwrap()));
    (status, retry_after, serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn guessing_a_client_secret_is_throttled_per_client_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let victim = admin.run(&["ad", "sp", "create-for-rbac", "--name", "victim"]).ok();
    let bystander = admin.run(&["ad", "sp", "create-for-rbac", "--name", "bystander"]).ok();
    let (victim_id, victim_secret) = (victim["appId"].as_str().unwrap(), victim["password"].as_str().unwrap());

    let mut answers = Vec::new();
    for i in 0..30 {
        answers.push(secret_grant(&server, "127.0.0.1", victim_id, &format!("guess-{i:04}-wrong")));
    }
    let refused = answers.iter().take_while(|(status, _, _)| *status == 401).count();
    assert_eq!(refused, 10, "10 wrong secrets are answered, then the brake holds: {:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    for (status, retry_after, body) in &answers[10..] {
        assert_eq!(*status, 429, "{body}");
        assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "Retry-After: {retry_after:?}");
        assert_eq!(body["error_codes"], serde_json::json!([50053]), "{body}");
        assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS50053: Too many failed authentications"), "{body}");
    }
    // The pair is locked, so the right secret from the guessing address waits too; from another
    // address it works, and so does another client from the guessing address.
    assert_eq!(secret_grant(&server, "127.0.0.1", victim_id, victim_secret).0, 429);
    assert_eq!(secret_grant(&server, "127.0.0.2", victim_id, victim_secret).0, 200);
    assert_eq!(secret_grant(&server, "127.0.0.1", bystander["appId"].as_str().unwrap(), bystander["password"].as_str().unwrap()).0, 200);

    let log = server.log_text();
    let warning = log.lines().find(|l| l.contains("client authentication throttled")).unwrap_or_else(|| panic!("no warning logged:\n{log}"));
    assert!(warning.contains("WARN") && warning.contains(victim_id) && warning.contains("127.0.0.1"), "{warning}");
    assert!(!log.contains("-wrong"), "a guessed secret reached the log");
}
