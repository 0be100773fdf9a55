//! Seed 001 replayed through kite's CLI: a vault, a secret, an identity given Reader and a `get`
//! access policy, and the reads and refusals each step allows.
mod support;

use support::{Cli, Server};

#[test]
fn seed_001_a_vault_a_secret_and_who_may_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "pod-identity", "-l", "japaneast"]).ok();
    let identity = admin.run(&["identity", "create", "-g", "pod-identity", "-n", "azure-vote"]).ok();
    let vault = admin.run(&["keyvault", "create", "-g", "pod-identity", "-n", "azure-vote"]).ok();
    let shown = admin.run(&["keyvault", "show", "--name", "azure-vote"]).ok();
    assert_eq!(shown["properties"]["tenantId"], server.credentials()["tenant"]);
    let port = server.url.rsplit(':').next().unwrap();
    assert_eq!(shown["properties"]["vaultUri"], format!("https://azure-vote.vault.localhost:{port}/"));

    // The creator's access policy lets it write the secret (kite's CLI resolves the vault's name itself).
    let set = admin.run(&["keyvault", "secret", "set", "--vault-name", "azure-vote", "-n", "redis-password", "--value", "p@ss-1"]).ok();
    assert_eq!(set["value"], "p@ss-1");
    admin.run(&["keyvault", "secret", "set", "--vault-name", "azure-vote", "-n", "redis-password", "--value", "p@ss-2"]).ok();
    let versions = admin.run(&["keyvault", "secret", "list-versions", "--vault-name", "azure-vote", "-n", "redis-password"]).ok();
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // Reader on the vault, as the seed grants the identity, reads no secret.
    let client_id = identity["clientId"].as_str().unwrap();
    admin.run(&["role", "assignment", "create", "--role", "Reader", "--assignee", client_id, "--scope", vault["id"].as_str().unwrap()]).ok();
    let reader = admin.run(&["ad", "sp", "create-for-rbac", "--name", "reader", "--role", "Reader", "--scopes", vault["id"].as_str().unwrap()]).ok();
    let (app, password) = (reader["appId"].as_str().unwrap(), reader["password"].as_str().unwrap());
    let (as_reader, login) = Cli::service_principal(&dir.path().join("reader"), &server, app, password);
    login.ok();
    let refused = as_reader.run(&["keyvault", "secret", "show", "--vault-name", "azure-vote", "-n", "redis-password"]);
    refused.fails_with(&["(Forbidden)", app, "secrets get permission", "azure-vote", "no access policy"]);

    // `set-policy --secret-permissions get --spn <clientId>`: the identity's policy, then the reader's.
    let with_policy = admin.run(&["keyvault", "set-policy", "-n", "azure-vote", "--secret-permissions", "get", "--spn", client_id]).ok();
    let policies = with_policy["properties"]["accessPolicies"].as_array().unwrap();
    assert!(policies.iter().any(|p| p["objectId"] == identity["principalId"] && p["permissions"]["secrets"] == serde_json::json!(["get"])), "{with_policy}");
    admin.run(&["keyvault", "set-policy", "-n", "azure-vote", "--secret-permissions", "get", "--spn", app]).ok();
    let read = as_reader.run(&["keyvault", "secret", "show", "--vault-name", "azure-vote", "-n", "redis-password"]).ok();
    assert_eq!(read["value"], "p@ss-2");
    as_reader.run(&["keyvault", "secret", "list", "--vault-name", "azure-vote"]).fails_with(&["secrets list permission", "[get] but not 'list'"]);

    // Soft delete and recovery, through the CLI.
    admin.run(&["keyvault", "secret", "delete", "--vault-name", "azure-vote", "-n", "redis-password"]).ok();
    as_reader.run(&["keyvault", "secret", "show", "--vault-name", "azure-vote", "-n", "redis-password"]).fails_with(&["(SecretNotFound)"]);
    admin.run(&["keyvault", "secret", "recover", "--vault-name", "azure-vote", "-n", "redis-password"]).ok();
    assert_eq!(as_reader.run(&["keyvault", "secret", "show", "--vault-name", "azure-vote", "-n", "redis-password"]).ok()["value"], "p@ss-2");
}
