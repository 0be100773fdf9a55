//! Key vaults and their secrets. Secret values are sealed (see `seal.rs`), bound to their vault,
//! name and version; the attributes beside them are not secret.

use kite_core::vault::secret::{DeletedSecret, SecretVersion};
use kite_core::vault::Vault;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::seal::Keyring;
use crate::sql::{backend, conflict_or_backend, rows, to_json};
use crate::{Error, Result, SecretPage, SecretValue, VaultUpdate};

/// The most rows one page reads, whatever the caller asks.
const MAX_PAGE: usize = 1000;

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("The Resource 'Microsoft.KeyVault/vaults/{name}' was not found; list vaults with 'kite keyvault list'"))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Backend(format!("stored vault object does not parse: {e}")))
}

pub(crate) async fn create(pool: &AnyPool, v: &Vault) -> Result<()> {
    sqlx::query("INSERT INTO vaults (name_key, sub_id, rg_key, deleted, version, body) VALUES ($1, $2, $3, $4, 0, $5)")
        .bind(v.name.to_lowercase())
        .bind(v.subscription_id.to_string())
        .bind(v.resource_group.to_lowercase())
        .bind(i64::from(v.deleted.is_some()))
        .bind(to_json(v)?)
        .execute(pool)
        .await
        .map_err(|e| {
            conflict_or_backend(e, || {
                format!(
                    "VaultAlreadyExists: the vault name '{}' is already in use (vault names are global, and a deleted vault keeps its name until purged)",
                    v.name
                )
            })
        })?;
    Ok(())
}

pub(crate) async fn get(pool: &AnyPool, name: &str) -> Result<Vault> {
    let row = sqlx::query("SELECT body FROM vaults WHERE name_key = $1").bind(name.to_lowercase()).fetch_optional(pool).await.map_err(backend)?;
    let body: String = row.ok_or_else(|| not_found(name))?.try_get("body").map_err(backend)?;
    parse(&body)
}

pub(crate) async fn list(pool: &AnyPool, sub: &Uuid, rg: Option<&str>, deleted: bool) -> Result<Vec<Vault>> {
    let r = sqlx::query("SELECT body FROM vaults WHERE sub_id = $1 AND ($2 = '' OR rg_key = $2) AND deleted = $3 ORDER BY name_key")
        .bind(sub.to_string())
        .bind(rg.unwrap_or("").to_lowercase())
        .bind(i64::from(deleted))
        .fetch_all(pool)
        .await
        .map_err(backend)?;
    rows(&r)
}

pub(crate) async fn update(pool: &AnyPool, name: &str, update: VaultUpdate<'_>) -> Result<Vault> {
    let key = name.to_lowercase();
    // Compare-and-swap on `version`: a concurrent writer makes us re-read and re-apply.
    for _ in 0..8 {
        let row = sqlx::query("SELECT version, body FROM vaults WHERE name_key = $1").bind(&key).fetch_optional(pool).await.map_err(backend)?;
        let row = row.ok_or_else(|| not_found(name))?;
        let version: i64 = row.try_get("version").map_err(backend)?;
        let current: Vault = parse(&row.try_get::<String, _>("body").map_err(backend)?)?;
        let new = update(current.clone())?;
        if new.name.to_lowercase() != key || new.subscription_id != current.subscription_id || !new.resource_group.eq_ignore_ascii_case(&current.resource_group)
        {
            return Err(Error::Invalid("a vault's name, subscription and resource group cannot change".into()));
        }
        let r = sqlx::query("UPDATE vaults SET body = $1, deleted = $2, version = $3 WHERE name_key = $4 AND version = $5")
            .bind(to_json(&new)?)
            .bind(i64::from(new.deleted.is_some()))
            .bind(version + 1)
            .bind(&key)
            .bind(version)
            .execute(pool)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 1 {
            return Ok(new);
        }
    }
    Err(Error::Conflict(format!("vault '{name}' is being changed concurrently; try again")))
}

pub(crate) async fn purge(pool: &AnyPool, name: &str) -> Result<Vault> {
    let key = name.to_lowercase();
    let mut tx = pool.begin().await.map_err(backend)?;
    let row = sqlx::query("SELECT body FROM vaults WHERE name_key = $1").bind(&key).fetch_optional(&mut *tx).await.map_err(backend)?;
    let vault: Vault = parse(&row.ok_or_else(|| not_found(name))?.try_get::<String, _>("body").map_err(backend)?)?;
    sqlx::query("DELETE FROM vault_secrets WHERE vault_key = $1").bind(&key).execute(&mut *tx).await.map_err(backend)?;
    sqlx::query("DELETE FROM vaults WHERE name_key = $1").bind(&key).execute(&mut *tx).await.map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(vault)
}

fn place(vault: &str, name: &str, version: &str) -> String {
    format!("vault_secrets/{}/{}/{version}", vault.to_lowercase(), name.to_lowercase())
}

fn secret_missing(vault: &str, name: &str, version: Option<&str>) -> Error {
    match version {
        Some(v) => Error::NotFound(format!("SecretNotFound: A secret with (name/id) {name}/{v} was not found in this key vault ({vault})")),
        None => Error::NotFound(format!("SecretNotFound: A secret with (name/id) {name} was not found in this key vault ({vault})")),
    }
}

/// Adds a version; `Conflict` while the secret is soft-deleted. One statement reads the next
/// sequence number and writes, so SQLite serialises it whole; on PostgreSQL a concurrent writer
/// taking the same number makes this one retry.
pub(crate) async fn set_secret(pool: &AnyPool, keyring: &Keyring, vault: &str, s: &SecretVersion, value: &SecretValue) -> Result<()> {
    let sealed = keyring.seal(&place(vault, &s.name, &s.version), value.0.as_bytes())?;
    let body = to_json(s)?;
    for _ in 0..8 {
        let inserted = sqlx::query(
            "INSERT INTO vault_secrets (vault_key, name_key, version, seq, body, value, deleted) \
             SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, NULL FROM vault_secrets WHERE vault_key = $1 AND name_key = $2 \
             HAVING COUNT(deleted) = 0",
        )
        .bind(vault.to_lowercase())
        .bind(s.name.to_lowercase())
        .bind(&s.version)
        .bind(&body)
        .bind(&sealed)
        .execute(pool)
        .await;
        match inserted {
            Ok(r) if r.rows_affected() == 1 => return Ok(()),
            Ok(_) => {
                return Err(Error::Conflict(format!(
                    "ObjectIsDeletedButRecoverable: Secret {} is currently in a deleted but recoverable state, and its name cannot be reused; \
                     in this state, the secret can only be recovered or purged",
                    s.name
                )))
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
            Err(e) => return Err(backend(e)),
        }
    }
    Err(Error::Conflict(format!("secret '{}' is being written concurrently; try again", s.name)))
}

/// A live version (the latest when `version` is `None`) with its value.
pub(crate) async fn get_secret(pool: &AnyPool, keyring: &Keyring, vault: &str, name: &str, version: Option<&str>) -> Result<(SecretVersion, SecretValue)> {
    let r = sqlx::query(
        "SELECT version, body, value FROM vault_secrets WHERE vault_key = $1 AND name_key = $2 AND ($3 = '' OR version = $3) AND deleted IS NULL \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(vault.to_lowercase())
    .bind(name.to_lowercase())
    .bind(version.unwrap_or("").to_lowercase())
    .fetch_optional(pool)
    .await
    .map_err(backend)?;
    let row = r.ok_or_else(|| secret_missing(vault, name, version))?;
    let v: String = row.try_get("version").map_err(backend)?;
    let s: SecretVersion = parse(&row.try_get::<String, _>("body").map_err(backend)?)?;
    let value = keyring.open_text(&place(vault, name, &v), &row.try_get::<String, _>("value").map_err(backend)?)?;
    Ok((s, SecretValue(value)))
}

/// Rewrites one version's attributes (never its value).
pub(crate) async fn update_secret(pool: &AnyPool, vault: &str, s: &SecretVersion) -> Result<()> {
    let r = sqlx::query("UPDATE vault_secrets SET body = $1 WHERE vault_key = $2 AND name_key = $3 AND version = $4 AND deleted IS NULL")
        .bind(to_json(s)?)
        .bind(vault.to_lowercase())
        .bind(s.name.to_lowercase())
        .bind(&s.version)
        .execute(pool)
        .await
        .map_err(backend)?;
    if r.rows_affected() == 0 {
        return Err(secret_missing(vault, &s.name, Some(&s.version)));
    }
    Ok(())
}

/// Live secrets (the latest version of each) or one secret's versions, by name after `after`, at most `limit`.
pub(crate) async fn list_secrets(pool: &AnyPool, vault: &str, name: Option<&str>, after: &str, limit: usize) -> Result<SecretPage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let sql = match name {
        // The latest version of each name: the row with the greatest seq.
        None => {
            "SELECT s.body AS body, s.name_key AS k FROM vault_secrets s WHERE s.vault_key = $1 AND s.deleted IS NULL AND s.name_key > $2 \
                 AND s.seq = (SELECT MAX(t.seq) FROM vault_secrets t WHERE t.vault_key = s.vault_key AND t.name_key = s.name_key) \
                 ORDER BY s.name_key LIMIT $3"
        }
        Some(_) => {
            "SELECT body, version AS k FROM vault_secrets WHERE vault_key = $1 AND deleted IS NULL AND version > $2 AND name_key = $4 \
                    ORDER BY version LIMIT $3"
        }
    };
    let mut q = sqlx::query(sql).bind(vault.to_lowercase()).bind(after).bind((limit + 1) as i64);
    if let Some(name) = name {
        q = q.bind(name.to_lowercase());
    }
    let r = q.fetch_all(pool).await.map_err(backend)?;
    page(&r, limit)
}

/// `limit` items of the rows (one more was fetched to learn whether a next page exists).
fn page<T: serde::de::DeserializeOwned>(r: &[sqlx::any::AnyRow], limit: usize) -> Result<SecretPage<T>> {
    let mut items = Vec::new();
    let mut next = None;
    for (i, row) in r.iter().enumerate() {
        if i == limit {
            next = Some(r[i - 1].try_get::<String, _>("k").map_err(backend)?);
            break;
        }
        items.push(parse(&row.try_get::<String, _>("body").map_err(backend)?)?);
    }
    Ok(SecretPage { items, next_after: next })
}

/// Soft-deletes every version of a live secret; returns the latest version's attributes.
pub(crate) async fn delete_secret(pool: &AnyPool, vault: &str, d: &DeletedSecret) -> Result<()> {
    let r = sqlx::query("UPDATE vault_secrets SET deleted = $1 WHERE vault_key = $2 AND name_key = $3 AND deleted IS NULL")
        .bind(to_json(d)?)
        .bind(vault.to_lowercase())
        .bind(d.latest.name.to_lowercase())
        .execute(pool)
        .await
        .map_err(backend)?;
    if r.rows_affected() == 0 {
        return Err(secret_missing(vault, &d.latest.name, None));
    }
    Ok(())
}

pub(crate) async fn get_deleted_secret(pool: &AnyPool, vault: &str, name: &str) -> Result<DeletedSecret> {
    let row = sqlx::query("SELECT deleted FROM vault_secrets WHERE vault_key = $1 AND name_key = $2 AND deleted IS NOT NULL LIMIT 1")
        .bind(vault.to_lowercase())
        .bind(name.to_lowercase())
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    let text: String = row
        .ok_or_else(|| Error::NotFound(format!("SecretNotFound: Deleted Secret not found: {name} in key vault {vault}")))?
        .try_get("deleted")
        .map_err(backend)?;
    parse(&text)
}

pub(crate) async fn list_deleted_secrets(pool: &AnyPool, vault: &str, after: &str, limit: usize) -> Result<SecretPage<DeletedSecret>> {
    let limit = limit.clamp(1, MAX_PAGE);
    let r = sqlx::query(
        "SELECT DISTINCT name_key AS k, deleted AS body FROM vault_secrets WHERE vault_key = $1 AND deleted IS NOT NULL AND name_key > $2 ORDER BY name_key LIMIT $3",
    )
    .bind(vault.to_lowercase())
    .bind(after)
    .bind((limit + 1) as i64)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    page(&r, limit)
}

/// Brings a soft-deleted secret back with all its versions.
pub(crate) async fn recover_secret(pool: &AnyPool, vault: &str, name: &str) -> Result<()> {
    on_deleted_secret(pool, "UPDATE vault_secrets SET deleted = NULL WHERE vault_key = $1 AND name_key = $2 AND deleted IS NOT NULL", vault, name).await
}

/// Removes a soft-deleted secret for good.
pub(crate) async fn purge_secret(pool: &AnyPool, vault: &str, name: &str) -> Result<()> {
    on_deleted_secret(pool, "DELETE FROM vault_secrets WHERE vault_key = $1 AND name_key = $2 AND deleted IS NOT NULL", vault, name).await
}

/// Runs `sql` on the soft-deleted secret `name`; Key Vault's not-found when there is none.
async fn on_deleted_secret(pool: &AnyPool, sql: &str, vault: &str, name: &str) -> Result<()> {
    let r = sqlx::query(sql).bind(vault.to_lowercase()).bind(name.to_lowercase()).execute(pool).await.map_err(backend)?;
    if r.rows_affected() == 0 {
        return Err(Error::NotFound(format!("SecretNotFound: Deleted Secret not found: {name} in key vault {vault}")));
    }
    Ok(())
}
