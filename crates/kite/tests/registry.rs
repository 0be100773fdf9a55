//! End to end through the real binary: bootstrap, resource groups, managed identities, service
//! principals and their credentials.
mod support;

use support::{Cli, Server};

#[test]
fn first_start_bootstraps_a_tenant_and_keeps_the_admin_secret_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    assert!(server.banner.contains("kite login --credentials-file"), "{}", server.banner);
    let creds = server.credentials();
    let secret = creds["password"].as_str().unwrap();
    assert!(secret.len() >= 43);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.credentials_file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "credentials file is readable by others: {mode:o}");
        let home_mode = std::fs::metadata(&server.home).unwrap().permissions().mode();
        assert_eq!(home_mode & 0o077, 0, "KITE_HOME is open to others: {home_mode:o}");
    }
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let account = cli.run(&["account", "show"]).ok();
    assert_eq!(account["id"], creds["subscription"]);
    assert_eq!(account["tenantId"], creds["tenant"]);
    let owners = cli.run(&["role", "assignment", "list", "--assignee", creds["appId"].as_str().unwrap()]).ok();
    // Owner on the subscription, and Global Administrator (a directory role) at the tenant root.
    let held: Vec<(&str, &str)> =
        owners.as_array().unwrap().iter().map(|a| (a["roleDefinitionName"].as_str().unwrap(), a["scope"].as_str().unwrap())).collect();
    let sub_scope = format!("/subscriptions/{}", creds["subscription"].as_str().unwrap());
    assert_eq!(held, vec![("Global Administrator", "/"), ("Owner", sub_scope.as_str())]);
    assert!(!server.log_text().contains(secret), "the admin secret appeared in the server log");
    assert!(server.log_text().contains("kite serving") && !server.log_text().contains('\u{1b}'), "a log file gets no colour codes");
    assert!(!server.banner.contains(secret));
}

#[cfg(unix)]
#[test]
fn the_database_and_every_credential_file_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    // A database an older kite created world-readable is narrowed at start.
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("kite.db"), "").unwrap();
    std::fs::set_permissions(home.join("kite.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&home, &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "rg", "-l", "westus2"]).ok();
    let files = ["kite.db", "kite.db-wal", "kite.db-shm", "admin-credentials.json", "tls/ca-key.pem", "tls/server-key.pem"];
    for file in files.iter().map(|f| home.join(f)).chain(std::fs::read_dir(&cli.home).unwrap().map(|e| e.unwrap().path())) {
        let mode = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is open to others: {mode:o}", file.display());
    }
}

#[test]
fn groups_and_identities_behave_like_az() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let sub = cli.subscription();

    let rg = cli.run(&["group", "create", "--name", "myResourceGroup", "--location", "westus2"]).ok();
    assert_eq!(rg["id"], format!("/subscriptions/{sub}/resourceGroups/myResourceGroup"));
    assert_eq!(rg["properties"]["provisioningState"], "Succeeded");
    // Re-running the same create is harmless, as in az; moving the group is refused with ARM's error.
    cli.run(&["group", "create", "--name", "myresourcegroup", "--location", "westus2"]).ok();
    cli.run(&["group", "create", "-n", "myResourceGroup", "-l", "japaneast"]).fails_with(&["InvalidResourceGroupLocation", "westus2"]);

    let mi = cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "myIdentity"]).ok();
    for key in ["clientId", "principalId", "tenantId"] {
        assert!(uuid::Uuid::parse_str(mi[key].as_str().unwrap()).is_ok(), "{key}: {mi}");
    }
    assert_eq!(mi["id"], format!("/subscriptions/{sub}/resourcegroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myIdentity"));
    assert_eq!(mi["type"], "Microsoft.ManagedIdentity/userAssignedIdentities");
    assert_eq!(mi["resourceGroup"], "myResourceGroup");
    assert_eq!(mi["location"], "westus2");
    assert_eq!(cli.run(&["identity", "show", "-g", "myresourcegroup", "-n", "myIdentity"]).ok(), mi);
    let again = cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "myIdentity"]).ok();
    assert_eq!(again["clientId"], mi["clientId"], "an idempotent create must not mint a new identity");

    // Seed 002's query, in every output format.
    let q = "[].{Name:name, Id:id, Location:location}";
    let table = cli.run(&["identity", "list", "--query", q, "-o", "table"]).ok_text();
    assert!(table.lines().next().unwrap().contains("Location") && table.contains("myIdentity"), "{table}");
    // Columns keep the order the query wrote, as az prints them (scripts read tsv by position).
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["Name", "Id", "Location"], "{table}");
    let row = cli.run(&["identity", "list", "--query", "[].{Name:name, Id:id, Location:location}", "-o", "tsv"]).ok_text();
    let cells: Vec<&str> = row.trim().split('\t').collect();
    assert_eq!(cells, [mi["name"].as_str().unwrap(), mi["id"].as_str().unwrap(), "westus2"], "{row}");
    let tsv = cli.run(&["identity", "list", "--query", "[].clientId", "-o", "tsv"]).ok_text();
    assert_eq!(tsv.trim(), mi["clientId"].as_str().unwrap());
    let yaml = cli.run(&["identity", "list", "-o", "yaml"]).ok_text();
    assert!(yaml.contains("name: myIdentity"), "{yaml}");
    assert!(cli.run(&["identity", "list", "-o", "jsonc"]).ok_text().contains("\u{1b}["));
    cli.run(&["identity", "list", "--query", "[?"]).fails_with(&["invalid --query"]);

    cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "short-lived-identity"]).ok();
    cli.run(&["identity", "delete", "-g", "myResourceGroup", "-n", "short-lived-identity"]).ok();
    cli.run(&["identity", "delete", "-g", "myResourceGroup", "-n", "short-lived-identity"]).fails_with(&["ResourceNotFound"]);
    cli.run(&["group", "create", "-n", "second", "-l", "japaneast", "--tags", "env=dev"]).ok();
    let groups = cli.run(&["group", "list", "--query", "[].{name:name, env:tags.env}"]).ok();
    assert_eq!(groups, serde_json::json!([{"env": null, "name": "myResourceGroup"}, {"env": "dev", "name": "second"}]));
    cli.run(&["identity", "show", "-g", "myResourceGroup", "-n", "nope"]).fails_with(&["ResourceNotFound", "nope"]);
    cli.run(&["identity", "create", "-g", "missing-rg", "-n", "x-identity"]).fails_with(&["ResourceGroupNotFound", "kite group create"]);
    cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "bad name"]).fails_with(&["invalid identity name"]);

    // Deleting the group takes its identities and the role assignments inside it, with progress shown.
    cli.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", mi["clientId"].as_str().unwrap(), "-g", "myResourceGroup"]).ok();
    cli.run(&["group", "delete", "-n", "myResourceGroup"]).fails_with(&["--yes"]);
    let del = cli.run(&["group", "delete", "-n", "myResourceGroup", "--yes"]);
    del.ok();
    assert!(del.stderr.contains("1 identit(ies) and 1 role assignment(s) removed"), "{}", del.stderr);
    assert_eq!(cli.run(&["identity", "list"]).ok(), serde_json::json!([]));
    cli.run(&["group", "show", "-n", "myResourceGroup"]).fails_with(&["ResourceGroupNotFound"]);
}

#[test]
fn service_principal_secrets_live_at_most_24_months_are_shown_once_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);

    cli.run(&["ad", "sp", "create-for-rbac", "--name", "too-long", "--years", "3"]).fails_with(&["at most 24 months", "--years 2"]);
    assert_eq!(cli.run(&["ad", "sp", "list", "--query", "[?displayName=='too-long']"]).ok(), serde_json::json!([]));

    let created = cli.run(&["ad", "sp", "create-for-rbac", "--name", "ci-deployer", "--years", "2"]);
    let sp = created.ok();
    assert!(created.stderr.contains("shown only this once"));
    let (app, first) = (sp["appId"].as_str().unwrap().to_string(), sp["password"].as_str().unwrap().to_string());
    assert_eq!(sp["tenant"], server.credentials()["tenant"]);
    cli.run(&["ad", "sp", "create-for-rbac", "--name", "CI-DEPLOYER"]).fails_with(&["already exists", "credential reset"]);

    let listed = cli.run(&["ad", "sp", "credential", "list", "--id", &app]).ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["hint"], first[..3]);
    assert!(listed[0]["secretText"].is_null());
    assert!(!listed.to_string().contains(&first[3..]), "the secret must never be readable again");

    let (_, login) = Cli::service_principal(&dir.path().join("sp1"), &server, &app, &first);
    login.ok();

    // Reset replaces: the old secret stops working at once; --append keeps both.
    let second = cli.run(&["ad", "sp", "credential", "reset", "--id", &app]).ok()["password"].as_str().unwrap().to_string();
    let (_, old) = Cli::service_principal(&dir.path().join("sp2"), &server, &app, &first);
    old.fails_with(&["AADSTS7000215"]);
    let third = cli.run(&["ad", "sp", "credential", "reset", "--id", &app, "--append"]).ok()["password"].as_str().unwrap().to_string();
    for (i, s) in [&second, &third].into_iter().enumerate() {
        Cli::service_principal(&dir.path().join(format!("sp3-{i}")), &server, &app, s).1.ok();
    }
    let listed = cli.run(&["ad", "sp", "credential", "list", "--id", &app]).ok();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let key = listed[0]["keyId"].as_str().unwrap().to_string();
    cli.run(&["ad", "sp", "credential", "delete", "--id", &app, "--key-id", &key]).ok();
    assert_eq!(cli.run(&["ad", "sp", "credential", "list", "--id", &app]).ok().as_array().unwrap().len(), 1);
    assert!(!server.log_text().contains(&third), "a secret appeared in the server log");
}

#[test]
fn an_expired_secret_is_refused_with_aadsts7000222() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let end = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let sp = cli.run(&["ad", "sp", "create-for-rbac", "--name", "short-lived", "--end-date", &end]).ok();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (_, login) = Cli::service_principal(&dir.path().join("sp"), &server, sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());
    login.fails_with(&["invalid_client", "AADSTS7000222", "expired"]);
}

#[test]
fn certificate_credentials_keep_thumbprint_and_validity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=ci-cert"])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let fingerprint = std::process::Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha1", "-in", cert.to_str().unwrap()]).output().unwrap();
    let expected = String::from_utf8_lossy(&fingerprint.stdout).trim().rsplit('=').next().unwrap().replace(':', "");

    let cert_arg = format!("@{}", cert.display());
    let sp = cli.run(&["ad", "sp", "create-for-rbac", "--name", "cert-app", "--cert", &cert_arg]).ok();
    assert!(sp.get("password").is_none(), "{sp}");
    assert_eq!(sp["certificateThumbprint"], expected);
    let certs = cli.run(&["ad", "sp", "credential", "list", "--id", sp["appId"].as_str().unwrap(), "--cert"]).ok();
    assert_eq!(certs[0]["customKeyIdentifier"], expected);
    assert_eq!(certs[0]["displayName"], "CN=ci-cert");
    assert_eq!(certs[0]["type"], "AsymmetricX509Cert");
    let key_arg = format!("@{}", key.display());
    cli.run(&["ad", "sp", "credential", "reset", "--id", sp["appId"].as_str().unwrap(), "--cert", &key_arg]).fails_with(&["invalid certificate"]);
}
