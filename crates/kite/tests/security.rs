//! End to end: the outside probe's findings (issue 9), each replayed over HTTP or the CLI against the
//! binary as the probe sent it, and now refused.
mod support;

use base64::Engine;
use serde_json::{json, Value};
use support::{Cli, Server};

fn start(dir: &std::path::Path) -> (Server, Cli, String) {
    let server = Server::start(&dir.join("srv"), &[]);
    let admin = Cli::admin(&dir.join("admin"), &server);
    let sub = admin.subscription();
    (server, admin, sub)
}

#[test]
fn a_secret_lifetime_that_would_wrap_around_is_refused_before_any_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin, _) = start(dir.path());
    // 357913942 × 12 months wraps a u32 to 8: it used to become an 8-month secret.
    admin.run(&["ad", "sp", "create-for-rbac", "--name", "wrap", "--years", "357913942"]).fails_with(&["at most 24 months", "4294967304 months"]);
    let app = admin.run(&["ad", "sp", "create-for-rbac", "--name", "ok"]).ok();
    admin.run(&["ad", "sp", "credential", "reset", "--id", app["appId"].as_str().unwrap(), "--years", "357913942"]).fails_with(&["at most 24 months"]);
}

#[test]
fn token_lifetimes_outside_entras_range_are_refused_at_start() {
    for bad in ["-100", "0", "599", "86401", "315360000", "9223372036854775807"] {
        let home = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(support::BIN).args(["serve", &format!("--token-lifetime={bad}")]).env("KITE_HOME", home.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("600..=86400"), "--token-lifetime={bad}: {err}");
    }
}

#[test]
fn tags_beyond_arms_limits_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = start(dir.path());
    admin.run(&["group", "create", "-n", "rg", "-l", "westus2"]).ok();
    let token = server.admin_token();
    let path =
        |name: &str| format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2023-01-31");
    // The probe's 1.5 MB of tags, then each limit just past its edge.
    let huge: serde_json::Map<String, Value> = (0..3000).map(|i| (format!("tag{i:04}-{}", "x".repeat(240)), json!("v".repeat(256)))).collect();
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("t{i}"), json!("v"))).collect();
    let cases = [
        (json!({"location": "westus2", "tags": huge}), "3000 tags"),
        (json!({"location": "westus2", "tags": many}), "at most 50"),
        (json!({"location": "westus2", "tags": {"k".repeat(513): "v"}}), "use 1 to 512"),
        (json!({"location": "westus2", "tags": {"k": "v".repeat(257)}}), "at most 256"),
        (json!({"location": "westus2", "tags": {"a/b": "v"}}), "may not contain"),
    ];
    for (body, needle) in cases {
        let (code, answer) = server.api("PUT", &path("tagged"), &token, Some(&body));
        assert_eq!(code, 400, "{needle}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{needle}: {answer}");
    }
    let (code, _) = server.api("GET", &path("tagged"), &token, None);
    assert_eq!(code, 404, "a refused identity is not stored");
    let (code, answer) = server.api("PUT", &path("tagged"), &token, Some(&json!({"location": "westus2", "tags": {"team": "payments"}})));
    assert_eq!((code, &answer["tags"]), (201, &json!({"team": "payments"})), "{answer}");
}

#[test]
fn a_role_assignment_to_a_principal_that_does_not_exist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = start(dir.path());
    let token = server.admin_token();
    let reader = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let assign = |principal: &str| {
        let body = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{sub}{reader}"), "principalId": principal}});
        let name = uuid::Uuid::new_v4();
        server.api("PUT", &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"), &token, Some(&body))
    };
    let nobody = uuid::Uuid::new_v4().to_string();
    let (code, answer) = assign(&nobody);
    assert_eq!((code, answer["error"]["code"].as_str()), (400, Some("PrincipalNotFound")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains(&nobody), "{answer}");

    // A principal that existed once is gone for good.
    let app = admin.run(&["ad", "sp", "create-for-rbac", "--name", "short-lived"]).ok();
    let oid = admin.run(&["ad", "sp", "show", "--id", app["appId"].as_str().unwrap()]).ok()["id"].as_str().unwrap().to_string();
    admin.run(&["ad", "sp", "delete", "--id", app["appId"].as_str().unwrap()]).ok();
    let (code, answer) = assign(&oid);
    assert_eq!((code, answer["error"]["code"].as_str()), (400, Some("PrincipalNotFound")), "{answer}");
    let listed = admin.run(&["role", "assignment", "list", "--all"]).ok();
    assert!(!listed.to_string().contains(&nobody) && !listed.to_string().contains(&oid), "{listed}");
}

#[test]
fn each_rejected_management_token_names_its_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, sub) = start(dir.path());
    let app = admin.run(&["ad", "sp", "create-for-rbac", "--name", "caller"]).ok();
    let (app_id, secret) = (app["appId"].as_str().unwrap(), app["password"].as_str().unwrap());
    let groups = format!("/subscriptions/{sub}/resourceGroups?api-version=2021-04-01");
    let refusal = |token: &str| {
        let (code, answer) = server.api("GET", &groups, token, None);
        assert_eq!(code, 401, "{answer}");
        answer["error"]["message"].as_str().unwrap().to_string()
    };
    // A valid kite token for another resource: the audience is what is wrong, not the issuer.
    let vault = server.access_token(app_id, secret, "https://vault.azure.net/.default");
    let m = refusal(&vault);
    assert!(m.contains("audience (aud) is not one this API accepts") && !m.contains("issuer"), "{m}");
    // The same token with its signature altered.
    let (head, sig) = vault.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let m = refusal(&format!("{head}.{flipped}{}", &sig[1..]));
    assert!(m.contains("signature does not verify"), "{m}");
    // A management token minted by kite works (v2 issuer) and so does the check for v1.
    let good = server.access_token(app_id, secret, "https://management.azure.com/.default");
    assert_ne!(server.api("GET", &groups, &good, None).0, 401);
}

#[test]
fn a_path_segment_that_does_not_parse_gets_an_arm_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, _) = start(dir.path());
    let app = admin.run(&["ad", "sp", "create-for-rbac", "--name", "keys"]).ok();
    let (code, answer) =
        server.api("DELETE", &format!("/v1.0/applications/{}/credentials/not-a-guid", app["appId"].as_str().unwrap()), &server.admin_token(), None);
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "InvalidRequestUri", "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("UUID"), "{answer}");
}

/// An assertion nobody signed, as the probe posted it: the claims an attacker chooses.
fn unsigned_assertion(iss: &str, sub: &str, aud: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": "k"})),
        b64(json!({"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + 600}))
    )
}

#[test]
fn federated_credentials_cannot_be_enumerated_with_unsigned_assertions_and_their_owner_sees_why() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, _) = start(dir.path());
    let app = admin.run(&["ad", "sp", "create-for-rbac", "--name", "workload"]).ok();
    let app_id = app["appId"].as_str().unwrap();
    let issuer = "https://oidc.cluster.example.com/8f7a";
    let fic = json!({"name": "prod-cluster", "issuer": issuer, "subject": "system:serviceaccount:payments:api", "audiences": ["api://AzureADTokenExchange"]});
    admin.run(&["ad", "app", "federated-credential", "create", "--id", app_id, "--parameters", &fic.to_string()]).ok();
    let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
    let post = |assertion: &str| {
        let form = [
            "-d",
            "grant_type=client_credentials",
            "-d",
            &format!("client_id={app_id}"),
            "-d",
            "scope=https://vault.azure.net/.default",
            "-d",
            "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "-d",
            &format!("client_assertion={assertion}"),
        ];
        let (code, text) = server.curl(&form, &format!("/{tenant}/oauth2/v2.0/token"));
        let body: Value = serde_json::from_str(&text).unwrap();
        (code, body["error_description"].as_str().unwrap().to_string())
    };
    let probes = [
        (format!("{issuer}/"), "system:serviceaccount:payments:api", "api://AzureADTokenExchange", "AADSTS70021"),
        (issuer.to_uppercase(), "system:serviceaccount:payments:api", "api://AzureADTokenExchange", "AADSTS70021"),
        (issuer.to_string(), "system:serviceaccount:default:guess", "api://AzureADTokenExchange", "AADSTS70021"),
        (issuer.to_string(), "system:serviceaccount:payments:api", "guess", "AADSTS700212"),
    ];
    for (iss, sub, aud, code) in &probes {
        let (status, m) = post(&unsigned_assertion(iss, sub, aud));
        assert_eq!(status, 400, "{m}");
        // Only what the assertion presented comes back, as Entra answers: no registered issuer,
        // subject, audience or credential name, nothing after the sentence but trace lines.
        let expected = match *code {
            "AADSTS700212" => format!("{code}: No matching federated identity record found for presented assertion audience '{aud}'.\r\n"),
            _ => format!("{code}: No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'.\r\n"),
        };
        assert!(m.starts_with(&expected), "expected {expected:?}, got {m:?}");
    }
    // The owner reads why the last one missed on the credential itself.
    let listed = admin.run(&["ad", "app", "federated-credential", "list", "--id", app_id]).ok();
    let last = &listed[0]["kiteLastRefusal"];
    assert_eq!(last["error"], "AADSTS700212", "{listed}");
    assert!(last["reason"].as_str().unwrap().contains("is not the credential's 'api://AzureADTokenExchange'"), "{listed}");
    assert!(server.log_text().contains("differs from the credential's"), "the log has the trailing-slash explanation");
}

#[test]
fn the_probes_passing_checks_stay_passing_concurrent_creates_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    let (server, admin, sub) = start(dir.path());
    admin.run(&["group", "create", "-n", "rg", "-l", "westus2"]).ok();
    let token = server.admin_token();
    let path = format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/raced?api-version=2023-01-31");
    // Eight creates of one identity at once: one identity, one client ID, whoever wins.
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8).map(|_| s.spawn(|| server.api("PUT", &path, &token, Some(&json!({"location": "westus2"}))))).collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(answers.iter().filter(|(code, _)| *code == 201).count(), 1, "{answers:?}");
    let client_ids: std::collections::BTreeSet<String> = answers.iter().map(|(_, a)| a["properties"]["clientId"].as_str().unwrap().to_string()).collect();
    assert_eq!(client_ids.len(), 1, "{answers:?}");

    // Every acknowledged write survives SIGKILL (Server's drop kills with SIGKILL, no shutdown).
    let acknowledged: Vec<String> =
        (0..10).map(|i| admin.run(&["identity", "create", "-g", "rg", "-n", &format!("acked-{i}")]).ok()["clientId"].as_str().unwrap().to_string()).collect();
    drop(server);
    let again = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin2"), &again);
    let listed = admin.run(&["identity", "list", "-g", "rg", "--query", "[].clientId", "-o", "json"]).ok();
    for id in acknowledged.iter().chain(&client_ids) {
        assert!(listed.as_array().unwrap().iter().any(|v| v == id), "{id} lost after kill -9: {listed}");
    }
}
