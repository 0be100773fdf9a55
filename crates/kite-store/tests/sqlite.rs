//! The conformance suite on SQLite files, plus what only a file can show: data survives a reopen.
mod common;

use kite_store::{SqlStore, Store};

async fn make() -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kite.db").display());
    (SqlStore::connect(&url).await.unwrap(), dir)
}

conformance_tests!(make);

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kite.db").display());
    {
        let store = SqlStore::connect(&url).await.unwrap();
        store.create_resource_group(&common::group("persisted")).await.unwrap();
    }
    let reopened = SqlStore::connect(&url).await.unwrap();
    assert_eq!(reopened.get_resource_group(&common::SUB, "persisted").await.unwrap().name, "persisted");
}

#[tokio::test]
async fn an_unopenable_database_is_a_clear_error() {
    let err = SqlStore::connect("sqlite:///nonexistent-dir/for/sure/kite.db").await.err().unwrap().to_string();
    assert!(err.contains("cannot open database"), "{err}");
}
