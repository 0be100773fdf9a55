//! The store's sealed rows: token-signing keys and secret settings (the STS master key), written
//! sealed and opened on read, and the one-time sealing of rows an older kite wrote in the clear.
//! Security-sensitive: no clear value leaves this module but as a return value.

use sqlx::{AnyPool, Row};

use crate::seal::{is_sealed, Keyring};
use crate::sql::{backend, conflict_or_backend, Tx};
use crate::{Error, Result, StoredKey};

fn signing_key_place(kid: &str) -> String {
    format!("signing_keys/{kid}")
}

fn setting_place(key: &str) -> String {
    format!("meta/{key}")
}

/// Settings that are secrets, sealed like [`crate::Store::secret_get_or_init`] writes them.
const SECRET_SETTINGS: &[&str] = &["sts_master_key"];

pub(crate) async fn insert_signing_key(tx: &mut Tx<'_>, keyring: &Keyring, key: &StoredKey) -> Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, created_at, body) VALUES ($1, $2, $3)")
        .bind(&key.kid)
        .bind(key.created_at)
        .bind(keyring.seal(&signing_key_place(&key.kid), key.body.as_bytes())?)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("signing key {} already exists", key.kid)))?;
    Ok(())
}

pub(crate) async fn list_signing_keys(pool: &AnyPool, keyring: &Keyring) -> Result<Vec<StoredKey>> {
    let r = sqlx::query("SELECT kid, created_at, body FROM signing_keys ORDER BY created_at, kid").fetch_all(pool).await.map_err(backend)?;
    r.iter()
        .map(|row| {
            let kid: String = row.try_get("kid").map_err(backend)?;
            let sealed: String = row.try_get("body").map_err(backend)?;
            Ok(StoredKey { body: keyring.open_text(&signing_key_place(&kid), &sealed)?, created_at: row.try_get("created_at").map_err(backend)?, kid })
        })
        .collect()
}

pub(crate) async fn secret_get_or_init(pool: &AnyPool, keyring: &Keyring, key: &str, init: &str) -> Result<String> {
    let place = setting_place(key);
    match sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)").bind(key).bind(keyring.seal(&place, init.as_bytes())?).execute(pool).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
        Err(e) => return Err(backend(e)),
    }
    let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(pool).await.map_err(backend)?;
    let stored: String = row.ok_or_else(|| Error::Backend(format!("setting '{key}' vanished")))?.try_get("value").map_err(backend)?;
    keyring.open_text(&place, &stored)
}

/// Seals, in one transaction, the signing keys and secret settings an older kite stored in the
/// clear; values already sealed are left alone. On SQLite the file is then rebuilt (VACUUM) and the
/// write-ahead log emptied, so no clear copy is left in free pages or old log frames.
pub(crate) async fn seal_clear_values(pool: &AnyPool, keyring: &Keyring, is_sqlite: bool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let mut sealed = 0usize;
    for row in sqlx::query("SELECT kid, body FROM signing_keys").fetch_all(&mut *tx).await.map_err(backend)? {
        let (kid, body): (String, String) = (row.try_get("kid").map_err(backend)?, row.try_get("body").map_err(backend)?);
        if !is_sealed(&body) {
            let value = keyring.seal(&signing_key_place(&kid), body.as_bytes())?;
            sqlx::query("UPDATE signing_keys SET body = $1 WHERE kid = $2").bind(value).bind(&kid).execute(&mut *tx).await.map_err(backend)?;
            sealed += 1;
        }
    }
    for key in SECRET_SETTINGS {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(*key).fetch_optional(&mut *tx).await.map_err(backend)?;
        let Some(value) = row.map(|r| r.try_get::<String, _>("value")).transpose().map_err(backend)? else { continue };
        if !is_sealed(&value) {
            let value = keyring.seal(&setting_place(key), value.as_bytes())?;
            sqlx::query("UPDATE meta SET value = $1 WHERE key = $2").bind(value).bind(*key).execute(&mut *tx).await.map_err(backend)?;
            sealed += 1;
        }
    }
    tx.commit().await.map_err(backend)?;
    if sealed > 0 {
        tracing::info!(values = sealed, "sealed values an older kite stored in the clear");
        if is_sqlite {
            for step in ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"] {
                sqlx::query(step).execute(pool).await.map_err(backend)?;
            }
        }
    }
    Ok(())
}
