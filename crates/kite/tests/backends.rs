//! End to end on both stores: the embedded SQLite file survives restarts, and several stateless
//! replicas share one PostgreSQL database.
mod support;

use std::process::Command;

use support::{Cli, Server};

#[test]
fn sqlite_data_and_tls_identity_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    let first = Server::start(&home, &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &first);
    cli.run(&["group", "create", "-n", "kept", "-l", "westus2"]).ok();
    let mi = cli.run(&["identity", "create", "-g", "kept", "-n", "kept-identity"]).ok();
    let ca = std::fs::read_to_string(first.ca()).unwrap();
    drop(first);

    let second = Server::start(&home, &[]);
    assert!(!second.banner.contains("created tenant"), "a restart must not bootstrap again");
    assert_eq!(std::fs::read_to_string(second.ca()).unwrap(), ca, "the CA must be reused");
    // The CLI signs in again to the new port with the same credentials file.
    let cli = Cli::admin(&dir.path().join("cli2"), &second);
    assert_eq!(cli.run(&["identity", "show", "-g", "kept", "-n", "kept-identity"]).ok()["clientId"], mi["clientId"]);
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::BIN).args(["serve", "--insecure-http", "--listen", "0.0.0.0:0"]).env("KITE_HOME", dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only allowed on a loopback address"));
}

fn postgres_base() -> String {
    std::env::var("KITE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

struct Schema(String);

impl Schema {
    /// A schema of its own in the test database, and the URL that makes it kite's search path.
    fn create() -> (Schema, String) {
        let schema = Schema(format!("kite_e2e_{}", uuid::Uuid::new_v4().simple()));
        let made = Command::new("psql").args([postgres_base().as_str(), "-qc", &format!("CREATE SCHEMA {}", schema.0)]).output().unwrap();
        assert!(made.status.success(), "PostgreSQL must be running: {}", String::from_utf8_lossy(&made.stderr));
        let url = format!("{}?options=-c%20search_path%3D{}", postgres_base(), schema.0);
        (schema, url)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql").args([postgres_base().as_str(), "-qc", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0)]).output();
    }
}

#[test]
fn replicas_on_one_postgres_bootstrap_once_and_share_everything() {
    let (_schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();

    // Two replicas start at the same moment on an empty database: exactly one bootstraps.
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    let (ua, ub) = (url.clone(), url.clone());
    // Every replica is given the same key-encryption key; the data key the first one writes is shared.
    let kek = kite_store::Kek::generate("test").unwrap().to_base64();
    let (ka, kb) = (kek.clone(), kek.clone());
    let a = std::thread::spawn(move || Server::start_env(&home_a, &["--database-url", &ua], &[("KITE_KEK", &ka)]));
    let b = std::thread::spawn(move || Server::start_env(&home_b, &["--database-url", &ub], &[("KITE_KEK", &kb)]));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let (boot, other) = match (a.credentials_file().exists(), b.credentials_file().exists()) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        both => panic!("exactly one replica must bootstrap, got {both:?}"),
    };

    let admin = Cli::admin(&dir.path().join("cli-a"), &boot);
    admin.run(&["group", "create", "-n", "shared", "-l", "japaneast"]).ok();
    let mi = admin.run(&["identity", "create", "-g", "shared", "-n", "shared-identity"]).ok();

    // The same admin, through the other replica (its own TLS CA, same database and signing keys).
    let creds = boot.credentials();
    let (tenant, app, secret) = (creds["tenant"].as_str().unwrap(), creds["appId"].as_str().unwrap(), creds["password"].as_str().unwrap());
    let (via_b, login) = Cli::service_principal_in(&dir.path().join("cli-b"), &other, tenant, app, secret);
    login.ok();
    assert_eq!(via_b.run(&["identity", "show", "-g", "shared", "-n", "shared-identity"]).ok()["principalId"], mi["principalId"]);
    via_b.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", "shared-identity", "-g", "shared"]).ok();
    let seen = admin.run(&["role", "assignment", "list", "-g", "shared", "--query", "[].roleDefinitionName"]).ok();
    assert_eq!(seen, serde_json::json!(["Reader"]));
}

#[test]
fn a_store_failure_on_a_request_path_is_a_500_with_a_trace_id_never_the_backends_text() {
    let (schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let kek = kite_store::Kek::generate("test").unwrap().to_base64();
    let server = Server::start_env(&dir.path().join("srv"), &["--database-url", &url], &[("KITE_KEK", &kek)]);
    let token = server.admin_token();
    let sub = server.credentials()["subscription"].as_str().unwrap().to_string();

    // The tables vanish under the running server (an operator's mistake, a restore gone wrong).
    let dropped = Command::new("psql").args([postgres_base().as_str(), "-qc", &format!("DROP SCHEMA {} CASCADE", schema.0)]).output().unwrap();
    assert!(dropped.status.success(), "{}", String::from_utf8_lossy(&dropped.stderr));

    let (code, answer) = server.api("GET", &format!("/subscriptions/{sub}/resourceGroups?api-version=2021-04-01"), &token, None);
    assert_eq!((code, answer["error"]["code"].as_str()), (500, Some("InternalServerError")), "{answer}");
    let (code, imds) = server.imds(&format!("https://vault.azure.net&object_id={}", uuid::Uuid::new_v4()));
    assert_eq!(code, 500, "the node agent says its store failed, not that the identity is unknown: {imds}");
    for body in [answer.to_string(), imds.to_string()] {
        assert!(body.contains("trace id") && !body.contains("relation") && !body.contains("does not exist"), "{body}");
    }
    assert!(server.log_text().contains("does not exist"), "the backend's text is in the log, with the trace id");
}

#[test]
fn a_postgres_database_without_a_key_encryption_key_is_refused_at_start_with_how_to_give_one() {
    let (_schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("KITE_HOME", dir.path())
        .env_remove("KITE_KEK")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--kek-file PATH or KITE_KEK") && stderr.contains("same on every replica"), "{stderr}");
}
