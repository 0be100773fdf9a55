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
    (SqlStore::connect(&url, &common::kek()).await.unwrap(), Schema(schema))
}

conformance_tests!(make);
