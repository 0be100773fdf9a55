//! End to end: the node agent serves a service-principal AzureIdentity (`spec.type: 1`) whose
//! client secret lives in a Kubernetes Secret, all written as YAML into `--pod-identity-dir`; the
//! "pod" is this machine (status.podIP 127.0.0.1) calling the IMDS endpoint with curl.
mod support;

use std::path::Path;

use base64::Engine;
use serde_json::Value;
use support::{Cli, Server};

const RESOURCE: &str = "https://vault.azure.net";

const POD_AND_BINDING: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: demo, labels: {aadpodidbinding: sp-app}}
status: {podIP: 127.0.0.1, phase: Running}
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata: {name: sp-binding, namespace: demo}
spec: {azureIdentity: sp-identity, selector: sp-app}
"#;

fn identity_yaml(tenant: &str, client_id: &str) -> String {
    format!(
        r#"apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata: {{name: sp-identity, namespace: demo}}
spec:
  type: 1
  tenantID: {tenant}
  clientID: {client_id}
  clientPassword: {{name: sp-secret, namespace: demo}}
"#
    )
}

/// The Secret as `kubectl create secret generic sp-secret --from-literal=clientSecret=…` writes it.
fn secret_yaml(secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: sp-secret, namespace: demo}}\ntype: Opaque\ndata:\n  clientSecret: {encoded}\n")
}

/// Calls IMDS until the answer has `status` and mentions `needle` (the agent re-reads the
/// directory every few seconds).
fn imds_until(server: &Server, status: u16, needle: &str) -> Value {
    support::wait_for(&format!("IMDS to answer {status} with {needle:?}"), server, || {
        let (code, body) = server.imds(RESOURCE);
        (code == status && body.to_string().contains(needle)).then_some(body)
    })
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A server on a fresh `--pod-identity-dir` (plus `extra` flags), its admin, the directory, and a
/// service principal for type 1 identities.
fn server_and_sp(dir: &Path, extra: &[&str]) -> (Server, Cli, std::path::PathBuf, Value) {
    let cluster = dir.join("cluster");
    std::fs::create_dir(&cluster).unwrap();
    let mut args = vec!["--pod-identity-dir", cluster.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.join("server"), &args);
    let admin = Cli::admin(&dir.join("admin"), &server);
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "worker-sp"]).ok();
    (server, admin, cluster, sp)
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

#[test]
fn a_type_1_identity_gets_its_service_principals_token_until_the_secret_is_reset_and_then_again_once_the_secret_is_updated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, cluster, sp) = server_and_sp(dir.path(), &[]);
    let (app_id, password, tenant) = (sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap(), sp["tenant"].as_str().unwrap());
    let object_id = admin.run(&["ad", "sp", "show", "--id", app_id]).ok()["id"].as_str().unwrap().to_string();

    // The identity and its binding first: without the Secret the pod is refused, naming what is missing.
    write(&cluster, "pod.yaml", POD_AND_BINDING);
    write(&cluster, "identity.yaml", &identity_yaml(tenant, app_id));
    let missing = imds_until(&server, 403, "sp-identity");
    let m = missing["error_description"].as_str().unwrap();
    assert!(m.contains("AzureIdentity demo/sp-identity") && m.contains("Secret demo/sp-secret") && m.contains("does not exist"), "{m}");

    write(&cluster, "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: sp-secret, namespace: demo}\nstringData: {password: wrong-key}\n");
    let wrong_key = imds_until(&server, 403, "no 'clientSecret' key");
    let m = wrong_key["error_description"].as_str().unwrap();
    assert!(m.contains("Secret demo/sp-secret") && m.contains("\"password\"") && !m.contains("wrong-key"), "keys are named, values never: {m}");

    write(&cluster, "secret.yaml", &secret_yaml(password));
    let body = imds_until(&server, 200, "access_token");
    assert_eq!((body["client_id"].as_str(), body["resource"].as_str(), body["token_type"].as_str()), (Some(app_id), Some(RESOURCE), Some("Bearer")), "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (c["appid"].as_str(), c["oid"].as_str(), c["tid"].as_str(), c["aud"].as_str()),
        (Some(app_id), Some(object_id.as_str()), Some(tenant), Some(RESOURCE)),
        "{c}"
    );
    // Served again from the cache: the same token.
    assert_eq!(server.imds(RESOURCE).1["access_token"], body["access_token"]);

    // A reset replaces the secret: the agent refuses at once with the token endpoint's reason,
    // even though a token for the old secret is still cached.
    let new_password = admin.run(&["ad", "sp", "credential", "reset", "--id", app_id]).ok()["password"].as_str().unwrap().to_string();
    let (code, refused) = server.imds(RESOURCE);
    assert_eq!(code, 403, "{refused}");
    let m = refused["error_description"].as_str().unwrap();
    assert!(m.contains("AzureIdentity demo/sp-identity") && m.contains("Secret demo/sp-secret") && m.contains("AADSTS7000215") && m.contains(app_id), "{m}");
    assert!(!m.contains(password) && !server.log_text().contains(password), "the secret is neither relayed nor logged");

    let misses = metric(&server, "imds_token_cache_misses_total");
    write(&cluster, "secret.yaml", &secret_yaml(&new_password));
    let renewed = imds_until(&server, 200, "access_token");
    // Minted anew (a token minted in the same second may equal the old one byte for byte).
    assert_eq!(metric(&server, "imds_token_cache_misses_total"), misses + 1.0, "a changed Secret is not answered from the old cache entry");
    assert_eq!(claims(renewed["access_token"].as_str().unwrap())["appid"].as_str(), Some(app_id));
    assert!(!server.log_text().contains(new_password.as_str()));

    // Type 2 (certificate) is refused, saying what is not supported.
    write(&cluster, "identity.yaml", &identity_yaml(tenant, app_id).replace("type: 1", "type: 2"));
    let cert = imds_until(&server, 400, "type 2");
    assert!(cert["error_description"].as_str().unwrap().contains("not type 2 (service principal with a certificate)"), "{cert}");
}

/// `kite_<name> <value>` from the server's /metrics.
fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = server.curl(&[], "/metrics");
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(&format!("kite_{name}"))).unwrap_or_else(|| panic!("no kite_{name} in:\n{text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_token_cache_holds_at_most_imds_cache_size_tokens_and_evicts_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin, cluster, sp) = server_and_sp(dir.path(), &["--imds-cache-size", "3"]);
    write(&cluster, "pod.yaml", POD_AND_BINDING);
    write(&cluster, "identity.yaml", &identity_yaml(sp["tenant"].as_str().unwrap(), sp["appId"].as_str().unwrap()));
    write(&cluster, "secret.yaml", &secret_yaml(sp["password"].as_str().unwrap()));
    imds_until(&server, 200, "access_token");

    // One pod asking for ever new resources (the probe's 30,000) keeps the cache at its size.
    let resources: Vec<String> = (0..6).map(|i| format!("https://resource-{i}.example.com")).collect();
    let mut first = Value::Null;
    for (i, r) in resources.iter().enumerate() {
        let (code, body) = server.imds(r);
        assert_eq!(code, 200, "{body}");
        if i == 0 {
            first = body;
        }
    }
    assert_eq!(metric(&server, "imds_token_cache_entries"), 3.0);
    assert!(metric(&server, "imds_token_cache_evictions_total") >= 4.0, "RESOURCE, resource-0, -1 and -2 went");
    // The most recent is a hit; the oldest was evicted and is minted anew.
    let misses = metric(&server, "imds_token_cache_misses_total");
    server.imds(&resources[5]);
    assert_eq!(metric(&server, "imds_token_cache_misses_total"), misses);
    let (_, again) = server.imds(&resources[0]);
    assert_eq!(metric(&server, "imds_token_cache_misses_total"), misses + 1.0);
    assert_eq!(again["resource"], first["resource"]);
    assert_eq!(metric(&server, "imds_token_cache_entries"), 3.0);
}

#[test]
fn an_imds_cache_size_out_of_range_is_refused_with_the_range() {
    for bad in ["0", "-1", "1000001", "lots"] {
        let out = std::process::Command::new(support::BIN).args(["serve", &format!("--imds-cache-size={bad}")]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("from 1 to 1000000"), "{bad}: {err}");
    }
}

/// Polls IMDS every 100 ms until it answers `status`; fails after `limit`.
fn imds_within(server: &Server, status: u16, limit: std::time::Duration) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let (code, body) = server.imds(RESOURCE);
        if code == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "IMDS still answers {code} after {limit:?}, not {status}: {body}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_pod_added_or_relabelled_in_the_directory_is_served_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin, cluster, sp) = server_and_sp(dir.path(), &[]);
    write(&cluster, "identity.yaml", &identity_yaml(sp["tenant"].as_str().unwrap(), sp["appId"].as_str().unwrap()));
    write(&cluster, "secret.yaml", &secret_yaml(sp["password"].as_str().unwrap()));
    write(&cluster, "binding.yaml", POD_AND_BINDING.split("---").nth(1).unwrap());
    imds_until(&server, 403, "127.0.0.1");

    // Three changes in a row, each within 2 s: a 5-second poll would miss most of them.
    let limit = std::time::Duration::from_secs(2);
    write(&cluster, "pod.yaml", POD_AND_BINDING.split("---").next().unwrap());
    imds_within(&server, 200, limit);
    write(&cluster, "pod.yaml", &POD_AND_BINDING.split("---").next().unwrap().replace("aadpodidbinding: sp-app", "aadpodidbinding: other"));
    imds_within(&server, 403, limit);
    // An editor's way: write aside, then rename over the file.
    write(&cluster, "pod.yaml.tmp", POD_AND_BINDING.split("---").next().unwrap());
    std::fs::rename(cluster.join("pod.yaml.tmp"), cluster.join("pod.yaml")).unwrap();
    imds_within(&server, 200, limit);
}
