//! End to end on both stores: the embedded SQLite file survives restarts, and several stateless
//! replicas share one PostgreSQL database.
mod support;

use std::process::Command;

use support::{postgres_base, Cli, Schema, Server};

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

/// The token endpoint's answer (status) for a client secret at `server`.
fn grant(server: &Server, tenant: &str, app_id: &str, secret: &str) -> u16 {
    let (id, secret) = (format!("client_id={app_id}"), format!("client_secret={secret}"));
    let form =
        ["-d", "grant_type=client_credentials", "--data-urlencode", &id, "--data-urlencode", &secret, "-d", "scope=https://management.azure.com/.default"];
    server.curl(&form, &format!("/{tenant}/oauth2/v2.0/token")).0
}

/// How long until `check` holds, polling every 20 ms; fails the test after `limit`.
fn within(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn a_reset_or_a_rotation_on_one_replica_takes_effect_on_the_other_within_a_second() {
    let (_schema, url) = Schema::create();
    let dir = tempfile::tempdir().unwrap();
    let kek = kite_store::Kek::generate("test").unwrap().to_base64();
    let a = Server::start_env(&dir.path().join("a"), &["--database-url", &url], &[("KITE_KEK", &kek)]);
    // Replicas behind one address share one public URL, so their tokens' issuer is the same.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut b = Server::start_env(&dir.path().join("b"), &["--database-url", &url, "--public-url", &a.url, "--listen", &listen], &[("KITE_KEK", &kek)]);
    b.url = format!("https://{listen}");
    let admin = Cli::admin(&dir.path().join("cli-a"), &a);
    let tenant = a.credentials()["tenant"].as_str().unwrap().to_string();
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "replicated"]).ok();
    let (app, old) = (sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());
    // B has the client cached (its TTL alone would keep the old secret working for 5 s).
    assert_eq!(grant(&b, &tenant, app, old), 200);

    let reset = admin.run(&["ad", "sp", "credential", "reset", "--id", app]).ok();
    let took = within(std::time::Duration::from_secs(1), "B refuses the reset secret", || grant(&b, &tenant, app, old) == 401);
    println!("a credential reset on replica A refused the old secret on replica B after {took:?}");
    assert_eq!(grant(&b, &tenant, app, reset["password"].as_str().unwrap()), 200);

    // A rotates; its first token with the new key is accepted by B at once (B's reload is every 5 s).
    admin.run(&["keys", "rotate"]).ok();
    let token = a.admin_token();
    let took = within(std::time::Duration::from_secs(1), "B accepts a token signed with A's new key", || {
        b.api("GET", "/subscriptions?api-version=2022-12-01", &token, None).0 == 200
    });
    println!("a key rotation on replica A was accepted by replica B after {took:?}");
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

/// A TCP proxy between kite and PostgreSQL that the test cuts (every connection reset, new ones
/// closed at once) and restores, so the shared server is never stopped.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy { port: listener.local_addr().unwrap().port(), cut: Default::default(), open: Default::default() };
        let (cut, open, upstream) = (proxy.cut.clone(), proxy.open.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                open.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn with_the_database_cut_off_requests_fail_fast_with_503_cached_clients_keep_their_tokens_and_kite_recovers() {
    let (_schema, url) = Schema::create();
    let proxy = Proxy::start("127.0.0.1:5432");
    let via_proxy = url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(via_proxy, url, "the test database URL names 127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let kek = kite_store::Kek::generate("test").unwrap().to_base64();
    let server = Server::start_env(&dir.path().join("srv"), &["--database-url", &via_proxy], &[("KITE_KEK", &kek)]);
    let creds = server.credentials();
    let (tenant, app, secret) = (creds["tenant"].as_str().unwrap(), creds["appId"].as_str().unwrap(), creds["password"].as_str().unwrap());
    let token = server.admin_token();
    let groups = format!("/subscriptions/{}/resourceGroups?api-version=2021-04-01", creds["subscription"].as_str().unwrap());
    assert_eq!(server.api("GET", &groups, &token, None).0, 200);

    proxy.cut();
    let cut_at = std::time::Instant::now();
    let asked = std::time::Instant::now();
    let (code, headers) = {
        let auth = format!("Authorization: Bearer {token}");
        let (code, text) = server.curl(&["-D", "-", "-o", "/dev/null", "-H", &auth], &groups);
        (code, text.to_lowercase())
    };
    assert_eq!(code, 503, "{headers}");
    assert!(headers.contains("retry-after: 5"), "{headers}");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5), "answered after {:?}", asked.elapsed());
    // Readiness says so too (a load balancer stops sending), while liveness does not restart kite.
    assert_eq!(server.curl(&[], "/readyz").0, 503);
    assert_eq!(server.curl(&[], "/healthz").0, 200);
    // The client the token endpoint has seen keeps getting tokens, past the cache's 5 s TTL.
    assert_eq!(grant(&server, tenant, app, secret), 200);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(grant(&server, tenant, app, secret), 200);
    // A client it has never seen cannot be checked: 503, not a refusal of its credentials.
    assert_eq!(grant(&server, tenant, &uuid::Uuid::new_v4().to_string(), "x"), 503);
    std::thread::sleep(std::time::Duration::from_secs(10).saturating_sub(cut_at.elapsed()));

    proxy.restore();
    let took = within(std::time::Duration::from_secs(10), "kite answers from the database again", || server.api("GET", &groups, &token, None).0 == 200);
    assert_eq!(server.curl(&[], "/readyz").0, 200);
    println!("kite recovered {took:?} after the database came back");
}
