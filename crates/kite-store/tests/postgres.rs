//! The conformance suite on PostgreSQL. Each test gets its own schema in the database named by
//! `KITE_TEST_POSTGRES_URL` (default: the local server, database `test`).
mod common;

use kite_store::SqlStore;

fn base_url() -> String {
    std::env::var("KITE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the test's schema when the test ends.
pub struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::process::Command::new("psql").args([base_url().as_str(), "-qc", &format!("DROP SCHEMA IF EXISTS {name} CASCADE")]).output();
    }
}

/// One key-encryption key for every store here, so a second store on a schema (a replica) opens it.
fn kek() -> kite_store::Kek {
    kite_store::Kek::from_base64("a2l0ZS1wb3N0Z3Jlcy10ZXN0LWtlay0zMi1ieXRlcyE=", "the tests' KEK").unwrap()
}

async fn make() -> (SqlStore, Schema) {
    use sqlx::Connection;
    let schema = format!("kite_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base_url()).await.expect("PostgreSQL must be running for these tests");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
    let url = format!("{}?options=-c%20search_path%3D{schema}", base_url());
    (SqlStore::connect(&url, &kek()).await.unwrap(), Schema(schema))
}

conformance_tests!(make);

#[tokio::test]
async fn the_rows_hold_no_private_key_no_secret_setting_and_no_secret_value_in_the_clear() {
    use kite_core::vault::secret::{SecretChanges, SecretVersion};
    use kite_core::vault::{Vault, VaultSpec};
    use kite_store::{SecretValue, Store, StoredKey};
    use sqlx::{Connection, Row};

    let (store, schema) = make().await;
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    store.add_signing_key(&StoredKey { kid: "k1".into(), created_at: 1, body: pem.into() }).await.unwrap();
    store.secret_get_or_init("sts_master_key", "master-key-that-must-not-leak").await.unwrap();
    let vault = Vault::new(common::SUB, "rg", "sealed-vault", common::TENANT, VaultSpec { location: "japaneast".into(), ..Default::default() }).unwrap();
    store.create_vault(&vault).await.unwrap();
    let s = SecretVersion::new("redis", &format!("{:032x}", 1), 20, SecretChanges::default(), 1).unwrap();
    store.set_secret("sealed-vault", &s, &SecretValue("redis-value-that-must-not-leak".into())).await.unwrap();

    // What a copy of the database shows, read straight from its tables.
    let mut conn = sqlx::PgConnection::connect(&format!("{}?options=-c%20search_path%3D{}", base_url(), schema.0)).await.unwrap();
    let mut raw = String::new();
    for q in
        ["SELECT body AS v FROM signing_keys", "SELECT value AS v FROM meta", "SELECT value AS v FROM vault_secrets", "SELECT body AS v FROM vault_secrets"]
    {
        for row in sqlx::query(q).fetch_all(&mut conn).await.unwrap() {
            raw.push_str(&row.get::<String, _>("v"));
        }
    }
    assert!(raw.contains("kite-sealed:v1:"));
    for clear in ["PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "master-key-that-must-not-leak", "redis-value-that-must-not-leak"] {
        assert!(!raw.contains(clear), "the tables show {clear}");
    }
}

/// Replicas are separate stores on one database: one's announcement reaches the other, and a store
/// on another schema (another kite) hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_announced_by_one_replica_reaches_the_others_on_the_same_schema_only() {
    use kite_store::{Change, Store};
    let (a, schema) = make().await;
    let url = format!("{}?options=-c%20search_path%3D{}", base_url(), schema.0);
    let b = SqlStore::connect(&url, &kek()).await.unwrap();
    let (elsewhere, _other) = make().await;
    let (mut on_b, mut on_elsewhere) = (b.changes(), elsewhere.changes());
    let sent = std::time::Instant::now();
    a.announce(Change::SigningKeys).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(1), on_b.recv()).await.expect("heard within 1 s").unwrap();
    assert_eq!(got, Change::SigningKeys);
    println!("announcement heard by the other replica after {:?}", sent.elapsed());
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), on_elsewhere.recv()).await.is_err(), "another schema's store heard it");
}
