//! The conformance suite on SQLite files, plus what only a file can show: data survives a reopen,
//! and the file's bytes hold no secret in the clear.
mod common;

use std::path::Path;

use kite_store::{Kek, SqlStore, Store, StoredKey};

async fn make() -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kite.db").display());
    (SqlStore::connect(&url, &common::kek()).await.unwrap(), dir)
}

conformance_tests!(make);

fn url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("kite.db").display())
}

/// The database file and its write-ahead log, as a thief copying them would read them.
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("kite.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("kite.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
const MASTER: &str = "c3RzLW1hc3Rlci1rZXktdGhhdC1tdXN0LW5vdC1sZWFr";

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let kek = common::kek();
    {
        let store = SqlStore::connect(&url(dir.path()), &kek).await.unwrap();
        store.create_resource_group(&common::group("persisted")).await.unwrap();
    }
    let reopened = SqlStore::connect(&url(dir.path()), &kek).await.unwrap();
    assert_eq!(reopened.get_resource_group(&common::SUB, "persisted").await.unwrap().name, "persisted");
}

#[tokio::test]
async fn an_unopenable_database_is_a_clear_error() {
    let err = SqlStore::connect("sqlite:///nonexistent-dir/for/sure/kite.db", &common::kek()).await.err().unwrap().to_string();
    assert!(err.contains("cannot open database"), "{err}");
}

#[tokio::test]
async fn the_file_holds_no_private_key_and_no_secret_setting_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&url(dir.path()), &common::kek()).await.unwrap();
    store.add_signing_key(&StoredKey { kid: "k1".into(), created_at: 1, body: PEM.into() }).await.unwrap();
    store.secret_get_or_init("sts_master_key", MASTER).await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap()[0].body, PEM);
    let bytes = raw_bytes(dir.path());
    assert!(contains(&bytes, "kite-sealed:v1:"), "the values are in the file, sealed");
    for clear in ["PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7", MASTER] {
        assert!(!contains(&bytes, clear), "the raw database shows {clear}");
    }
}

#[tokio::test]
async fn a_wrong_key_encryption_key_is_refused_naming_its_source_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    SqlStore::connect(&url(dir.path()), &common::kek()).await.unwrap();
    let wrong = Kek::generate("--kek-file /etc/kite/wrong").unwrap();
    let err = SqlStore::connect(&url(dir.path()), &wrong).await.err().unwrap();
    let message = err.to_string();
    assert!(matches!(err, kite_store::Error::Locked(_)), "{message}");
    assert!(message.contains("--kek-file /etc/kite/wrong") && message.contains("not the key the database was sealed with"), "{message}");
    assert!(!message.contains(&wrong.to_base64()), "the message never shows the key");
}

#[tokio::test]
async fn an_older_database_with_clear_keys_is_sealed_on_first_open_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kek = common::kek();
    drop(SqlStore::connect(&url(dir.path()), &kek).await.unwrap());
    {
        // What an older kite left: the key and the STS master key in the clear.
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url(dir.path())).await.unwrap();
        sqlx::query("INSERT INTO signing_keys (kid, created_at, body) VALUES ('old', 5, $1)").bind(PEM).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO meta (key, value) VALUES ('sts_master_key', $1)").bind(MASTER).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    assert!(contains(&raw_bytes(dir.path()), "PRIVATE KEY"), "the older database is in the clear");
    let store = SqlStore::connect(&url(dir.path()), &kek).await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![StoredKey { kid: "old".into(), created_at: 5, body: PEM.into() }]);
    assert_eq!(store.secret_get_or_init("sts_master_key", "new").await.unwrap(), MASTER);
    drop(store);
    let bytes = raw_bytes(dir.path());
    for clear in ["PRIVATE KEY", MASTER] {
        assert!(!contains(&bytes, clear), "after sealing the raw database still shows {clear}");
    }
    let again = SqlStore::connect(&url(dir.path()), &kek).await.unwrap();
    assert_eq!(again.list_signing_keys().await.unwrap().len(), 1, "sealing twice changes nothing");
}

#[tokio::test]
async fn after_a_rewrap_the_new_key_opens_the_database_and_the_old_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Kek::generate("--kek-file old").unwrap(), Kek::generate("--kek-file new").unwrap());
    let store = SqlStore::connect(&url(dir.path()), &old).await.unwrap();
    store.add_signing_key(&StoredKey { kid: "k1".into(), created_at: 1, body: PEM.into() }).await.unwrap();
    store.rewrap_data_keys(&new).await.unwrap();
    assert_eq!(store.list_signing_keys().await.unwrap()[0].body, PEM, "a running store goes on after the rewrap");
    drop(store);
    let reopened = SqlStore::connect(&url(dir.path()), &new).await.unwrap();
    assert_eq!(reopened.list_signing_keys().await.unwrap()[0].body, PEM);
    let err = SqlStore::connect(&url(dir.path()), &old).await.err().unwrap().to_string();
    assert!(err.contains("--kek-file old"), "{err}");
}
