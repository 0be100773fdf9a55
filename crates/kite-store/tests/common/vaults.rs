//! Conformance cases for key vaults and their secrets.

use kite_core::vault::secret::{DeletedSecret, SecretChanges, SecretVersion};
use kite_core::vault::{Vault, VaultSpec};
use kite_store::{Error, SecretValue, Store};

use super::{NOW, SUB, TENANT};

fn vault(rg: &str, name: &str) -> Vault {
    Vault::new(SUB, rg, name, TENANT, VaultSpec { location: "japaneast".into(), ..Default::default() }).unwrap()
}

fn version(n: u32) -> String {
    format!("{n:032x}")
}

fn secret(name: &str, n: u32) -> SecretVersion {
    SecretVersion::new(name, &version(n), 8, SecretChanges::default(), NOW.unix_timestamp() + i64::from(n)).unwrap()
}

fn value(v: &str) -> SecretValue {
    SecretValue(v.into())
}

pub async fn vault_names_are_global_and_kept_by_a_soft_deleted_vault_until_purged(store: impl Store) {
    store.create_vault(&vault("rg", "azure-vote")).await.unwrap();
    assert!(matches!(store.create_vault(&vault("other", "AZURE-VOTE")).await, Err(Error::Conflict(m)) if m.contains("already in use")));
    store.create_vault(&vault("other", "second")).await.unwrap();
    let names = |v: Vec<Vault>| v.into_iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_vaults(&SUB, None, false).await.unwrap()), vec!["azure-vote", "second"]);
    assert_eq!(names(store.list_vaults(&SUB, Some("RG"), false).await.unwrap()), vec!["azure-vote"]);

    let deleted = store
        .update_vault("Azure-Vote", &|mut v| {
            Ok({
                v.soft_delete(NOW);
                v
            })
        })
        .await
        .unwrap();
    assert!(deleted.deleted.is_some());
    assert_eq!(names(store.list_vaults(&SUB, None, false).await.unwrap()), vec!["second"]);
    assert_eq!(names(store.list_vaults(&SUB, None, true).await.unwrap()), vec!["azure-vote"]);
    assert!(store.get_vault("azure-vote").await.unwrap().deleted.is_some());
    assert!(matches!(store.create_vault(&vault("rg", "azure-vote")).await, Err(Error::Conflict(_))), "the name stays taken");
    assert!(matches!(
        store
            .update_vault("azure-vote", &|mut v| Ok({
                v.name = "renamed".into();
                v
            }))
            .await,
        Err(Error::Invalid(_))
    ));

    store.set_secret("second", &secret("s", 1), &value("v")).await.unwrap();
    store.purge_vault("second").await.unwrap();
    assert!(matches!(store.get_vault("second").await, Err(Error::NotFound(_))));
    store.create_vault(&vault("rg", "second")).await.unwrap();
    assert!(matches!(store.get_secret("second", "s", None).await, Err(Error::NotFound(_))), "purging a vault takes its secrets");
}

pub async fn secrets_keep_versions_page_and_soft_delete(store: impl Store) {
    store.create_vault(&vault("rg", "kv1")).await.unwrap();
    store.set_secret("kv1", &secret("redis", 1), &value("first")).await.unwrap();
    store.set_secret("kv1", &secret("redis", 2), &value("second")).await.unwrap();
    store.set_secret("kv1", &secret("alpha", 3), &value("a")).await.unwrap();
    store.set_secret("kv1", &secret("zulu", 4), &value("z")).await.unwrap();
    let (latest, v) = store.get_secret("KV1", "Redis", None).await.unwrap();
    assert_eq!((latest.version.as_str(), v), (version(2).as_str(), value("second")));
    assert_eq!(store.get_secret("kv1", "redis", Some(&version(1))).await.unwrap().1, value("first"));
    assert!(matches!(store.get_secret("kv1", "redis", Some(&version(9))).await, Err(Error::NotFound(m)) if m.contains("SecretNotFound")));
    assert!(format!("{:?}", store.get_secret("kv1", "redis", None).await.unwrap()).contains("redacted"));

    let first = store.list_secrets("kv1", None, "", 2).await.unwrap();
    assert_eq!(first.items.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["alpha", "redis"]);
    assert_eq!(first.items[1].version, version(2), "a listing shows each secret's latest version");
    let after = first.next_after.unwrap();
    let second = store.list_secrets("kv1", None, &after, 2).await.unwrap();
    assert_eq!(second.items.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["zulu"]);
    assert!(second.next_after.is_none());
    let versions = store.list_secrets("kv1", Some("redis"), "", 25).await.unwrap();
    assert_eq!(versions.items.len(), 2);

    let mut disabled = latest.clone();
    disabled.attributes.enabled = false;
    store.update_secret("kv1", &disabled).await.unwrap();
    assert!(!store.get_secret("kv1", "redis", None).await.unwrap().0.attributes.enabled);

    store.delete_secret("kv1", &DeletedSecret::new(disabled.clone(), NOW.unix_timestamp(), 90)).await.unwrap();
    assert!(matches!(store.get_secret("kv1", "redis", None).await, Err(Error::NotFound(_))));
    assert!(matches!(store.set_secret("kv1", &secret("redis", 5), &value("x")).await, Err(Error::Conflict(m)) if m.contains("deleted but recoverable")));
    assert_eq!(store.get_deleted_secret("kv1", "redis").await.unwrap().latest, disabled);
    assert_eq!(store.list_deleted_secrets("kv1", "", 25).await.unwrap().items.len(), 1);
    assert_eq!(store.list_secrets("kv1", None, "", 25).await.unwrap().items.len(), 2);
    store.recover_secret("kv1", "redis").await.unwrap();
    assert_eq!(store.get_secret("kv1", "redis", Some(&version(1))).await.unwrap().1, value("first"), "recovery brings every version back");

    store.delete_secret("kv1", &DeletedSecret::new(disabled, NOW.unix_timestamp(), 90)).await.unwrap();
    store.purge_secret("kv1", "redis").await.unwrap();
    assert!(matches!(store.get_deleted_secret("kv1", "redis").await, Err(Error::NotFound(_))));
    assert!(matches!(store.purge_secret("kv1", "alpha").await, Err(Error::NotFound(_))), "only a deleted secret is purged");
    store.set_secret("kv1", &secret("redis", 6), &value("again")).await.unwrap();
    assert_eq!(store.list_secrets("kv1", Some("redis"), "", 25).await.unwrap().items.len(), 1, "a purged name starts afresh");
}

pub async fn concurrent_secret_writes_all_land_as_versions(store: impl Store) {
    let store = std::sync::Arc::new(store);
    store.create_vault(&vault("rg", "busy")).await.unwrap();
    let writes = (0..8u32).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.set_secret("busy", &secret("hot", n + 1), &value(&format!("v{n}"))).await })
    });
    for w in writes.collect::<Vec<_>>() {
        w.await.unwrap().unwrap();
    }
    assert_eq!(store.list_secrets("busy", Some("hot"), "", 25).await.unwrap().items.len(), 8);
}
