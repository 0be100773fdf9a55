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

async fn make() -> (SqlStore, Schema) {
    use sqlx::Connection;
    let schema = format!("kite_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base_url()).await.expect("PostgreSQL must be running for these tests");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
    let url = format!("{}?options=-c%20search_path%3D{schema}", base_url());
    (SqlStore::connect(&url).await.unwrap(), Schema(schema))
}

conformance_tests!(make);

/// Replicas are separate stores on one database: one's announcement reaches the other, and a store
/// on another schema (another kite) hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_announced_by_one_replica_reaches_the_others_on_the_same_schema_only() {
    use kite_store::{Change, Store};
    let (a, schema) = make().await;
    let url = format!("{}?options=-c%20search_path%3D{}", base_url(), schema.0);
    let b = SqlStore::connect(&url).await.unwrap();
    let (elsewhere, _other) = make().await;
    let (mut on_b, mut on_elsewhere) = (b.changes(), elsewhere.changes());
    let sent = std::time::Instant::now();
    a.announce(Change::SigningKeys).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(1), on_b.recv()).await.expect("heard within 1 s").unwrap();
    assert_eq!(got, Change::SigningKeys);
    println!("announcement heard by the other replica after {:?}", sent.elapsed());
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), on_elsewhere.recv()).await.is_err(), "another schema's store heard it");
}
