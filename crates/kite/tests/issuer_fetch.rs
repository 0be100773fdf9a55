//! End to end: a federated credential's issuer is a URL anyone who may add a credential chooses,
//! and any caller can make kite fetch it by posting an (unsigned) assertion that names it. These
//! tests register hostile issuers through the API as the admin, post such assertions to the token
//! endpoint, and watch local listeners to see what kite connected to.
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::{Cli, Server};

/// A local listener that counts connections and answers each with `reply` (or never, when `None`).
struct Listener {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Listener {
    fn start(reply: Option<String>) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    match reply {
                        Some(r) => {
                            let _ = stream.write_all(r.as_bytes());
                        }
                        None => std::thread::sleep(Duration::from_secs(30)),
                    }
                });
            }
        });
        Listener { port, connections }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
}

/// An app with one federated credential per issuer (names fic-0, fic-1, …), as the admin adds them.
fn app_trusting(cli: &Cli, name: &str, issuers: &[&str]) -> String {
    let app = cli.run(&["ad", "sp", "create-for-rbac", "--name", name]).ok();
    let app_id = app["appId"].as_str().unwrap().to_string();
    for (i, issuer) in issuers.iter().enumerate() {
        let params = json!({"name": format!("fic-{i}"), "issuer": issuer, "subject": "attacker", "audiences": ["api://AzureADTokenExchange"]});
        cli.run(&["ad", "app", "federated-credential", "create", "--id", &app_id, "--parameters", &params.to_string()]).ok();
    }
    app_id
}

/// Posts an unsigned assertion naming `issuer` to the v2 token endpoint; the status and the
/// error's first line (the AADSTS summary, without the per-request trace IDs).
fn assert_with(server: &Server, app_id: &str, issuer: &str) -> (u16, String) {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assertion = format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})),
        b64(json!({"iss": issuer, "sub": "attacker", "aud": "api://AzureADTokenExchange", "iat": now, "nbf": now, "exp": now + 600})),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not a signature")
    );
    let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert", server.ca().to_str().unwrap(), "-w", "\n%{http_code}"])
        .args(["--data-urlencode", "grant_type=client_credentials", "--data-urlencode", &format!("client_id={app_id}")])
        .args(["--data-urlencode", "scope=https://management.azure.com/.default"])
        .args(["--data-urlencode", "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer"])
        .args(["--data-urlencode", &format!("client_assertion={assertion}")])
        .arg(format!("{}/{tenant}/oauth2/v2.0/token", server.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    let summary = body["error_description"].as_str().unwrap_or_default().split("\r\n").next().unwrap_or_default().to_string();
    (code.parse().unwrap(), summary)
}

#[test]
fn loopback_private_and_metadata_issuers_are_refused_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let target = Listener::start(Some(response("200 OK", "", "{}")));
    let (http, https, name) =
        (format!("http://127.0.0.1:{}", target.port), format!("https://127.0.0.1:{}", target.port), format!("https://localhost:{}", target.port));
    let app = app_trusting(&cli, "ssrf-loopback", &[&http, &https, &name, "https://169.254.169.254", "https://10.0.0.1"]);

    for (issuer, needle) in [
        (http.as_str(), "plain http is refused"),
        (https.as_str(), "its address is loopback"),
        // A name is judged by what it resolves to, at the moment of connecting.
        (name.as_str(), "its address is loopback"),
        ("https://169.254.169.254", "its address is cloud metadata"),
        ("https://10.0.0.1", "its address is private"),
    ] {
        let (status, summary) = assert_with(&server, &app, issuer);
        assert_eq!(status, 400, "{issuer}: {summary}");
        assert!(summary.contains("AADSTS50166") && summary.contains(needle), "{issuer}: {summary}");
    }
    assert_eq!(target.count(), 0, "kite connected to a loopback issuer it should have refused");
}

#[test]
fn hostile_issuer_urls_redirects_and_answers_are_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--allow-http-issuer"]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let inner = Listener::start(Some(response("200 OK", "", "{}")));
    let redirect = Listener::start(Some(response("302 Found", &format!("location: http://127.0.0.1:{}/x\r\n", inner.port), "")));
    let page = Listener::start(Some(response("200 OK", "content-type: text/html\r\n", "<html>INTERNAL-ADMIN-PAGE</html>")));
    let huge = Listener::start(Some(response("200 OK", "", &format!("{{\"pad\": \"{}\"}}", "x".repeat(300 << 10)))));
    let silent = Listener::start(None);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuers = [
        format!("http://localhost@127.0.0.1:{}", inner.port),
        "http://127.0.0.1.evil.com".to_string(),
        format!("http://127.0.0.1:{}", redirect.port),
        format!("http://127.0.0.1:{}", page.port),
        format!("http://127.0.0.1:{closed}"),
        format!("http://127.0.0.1:{}", huge.port),
        format!("http://127.0.0.1:{}", silent.port),
    ];
    let app = app_trusting(&cli, "ssrf-urls", &issuers[2..].iter().map(String::as_str).collect::<Vec<_>>());
    let refused = |i: usize, needle: &str| {
        let (status, summary) = assert_with(&server, &app, &issuers[i]);
        assert_eq!(status, 400, "{}: {summary}", issuers[i]);
        assert!(summary.contains(needle), "{}: {summary}", issuers[i]);
        summary
    };

    // The host is parsed: userinfo that names loopback, and a name that starts like loopback, are
    // not loopback issuers. They cannot be registered, and naming them fetches nothing (a stored
    // one from before would be refused at fetch time: egress's unit tests).
    for hostile in &issuers[..2] {
        let params = json!({"name": "hostile", "issuer": hostile, "subject": "attacker", "audiences": ["api://AzureADTokenExchange"]});
        cli.run(&["ad", "app", "federated-credential", "create", "--id", &app, "--parameters", &params.to_string()]).fails_with(&["invalid issuer"]);
    }
    refused(0, "AADSTS70021");
    refused(1, "AADSTS70021");
    assert_eq!(inner.count(), 0);
    // No redirect is followed, and the failure is remembered: the second try does not connect.
    refused(2, "redirect (HTTP 302)");
    refused(2, "not retried");
    assert_eq!((redirect.count(), inner.count()), (1, 0), "the redirect was followed or the issuer fetched again");
    // What the other side answered never reaches the caller, and an open port serving something
    // else reads like a closed port.
    let open = refused(3, "could not fetch the discovery document");
    assert!(!open.contains("INTERNAL-ADMIN-PAGE"), "{open}");
    let shut = refused(4, "could not fetch the discovery document");
    let strip = |s: &str| s.replace(&issuers[3], "ISSUER").replace(&issuers[4], "ISSUER");
    assert_eq!(strip(&open), strip(&shut));
    refused(5, "larger than 256 KiB");
    let started = std::time::Instant::now();
    refused(6, "timed out");
    assert!(started.elapsed() < Duration::from_secs(10), "the fetch took {:?}", started.elapsed());
}

#[test]
fn a_burst_naming_a_slow_issuer_fetches_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--allow-http-issuer"]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let silent = Listener::start(None);
    let issuer = format!("http://127.0.0.1:{}", silent.port);
    let app = app_trusting(&cli, "ssrf-burst", &[&issuer]);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8).map(|_| s.spawn(|| assert_with(&server, &app, &issuer))).collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (status, summary) in &answers {
        assert_eq!(*status, 400, "{summary}");
        assert!(summary.contains("timed out"), "{summary}");
    }
    assert_eq!(silent.count(), 1, "8 concurrent assertions made kite connect more than once");
}
