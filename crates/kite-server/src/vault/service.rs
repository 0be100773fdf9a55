//! The data plane without HTTP: the vault a request names, whether the caller may do the
//! operation (access policies, or RBAC data actions), and the store calls. Security-sensitive:
//! every secret operation passes [`vault_for`] first.

use kite_core::rbac::ActionKind;
use kite_core::vault::secret::{validate_version, DeletedSecret, SecretChanges, SecretVersion};
use kite_core::vault::{decide, SecretOp, Vault};
use kite_store::{SecretPage, SecretValue};

use crate::api::auth::{self, Caller};
use crate::infra::state::AppState;
use crate::vault::arm::scope_of;
use crate::vault::error::{KvError, KvResult};

/// A page request: at most `limit` items after `after`.
pub struct PageRequest {
    pub after: String,
    pub limit: usize,
}

/// The live vault `name`, once the caller is allowed `op` in it; else 403 naming the caller, the
/// vault, the missing permission and why.
pub async fn vault_for(state: &AppState, caller: &Caller, name: &str, op: SecretOp) -> KvResult<Vault> {
    let vault = match state.store.get_vault(name).await {
        Ok(v) if v.deleted.is_none() => v,
        Ok(_) | Err(kite_store::Error::NotFound(_)) => {
            return Err(KvError::new(
                axum::http::StatusCode::NOT_FOUND,
                "VaultNotFound",
                format!("Vault '{name}' does not exist (or is deleted); list vaults with 'kite keyvault list'"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let rbac = if vault.enable_rbac_authorization {
        let scope = scope_of(&vault.subscription_id, &vault.resource_group, &vault.name)?;
        let d = auth::decide(state, caller.object_id, op.data_action(), ActionKind::DataAction, &scope).await?;
        Some((d.allowed, d.reason))
    } else {
        None
    };
    let decision = decide(&vault, &caller.object_id, op, rbac.as_ref().map(|(a, r)| (*a, r.as_str())));
    if decision.allowed {
        return Ok(vault);
    }
    let who = format!("appid={};oid={}", caller.app_id, caller.object_id);
    tracing::info!(caller = %who, vault = %vault.name, permission = op.permission(), "vault access denied: {}", decision.reason);
    Err(if vault.enable_rbac_authorization {
        KvError::forbidden(
            format!(
                "Caller is not authorized to perform action on resource.\r\nCaller: {who}\r\nAction: '{}'\r\nResource: '{}'\r\nVault: {};location={}\r\n{}",
                op.data_action(),
                vault.id().to_lowercase(),
                vault.name,
                vault.location,
                decision.reason
            ),
            "ForbiddenByRbac",
        )
    } else {
        KvError::forbidden(
            format!(
                "The user, group or application '{who}' does not have secrets {} permission on key vault '{};location={}'. {}",
                op.permission(),
                vault.name,
                vault.location,
                decision.reason
            ),
            "AccessDenied",
        )
    })
}

/// The body of a set: the value and what the new version carries.
pub struct SetRequest {
    pub value: SecretValue,
    pub changes: SecretChanges,
}

pub async fn set(state: &AppState, caller: &Caller, vault: &str, name: &str, req: SetRequest) -> KvResult<(Vault, SecretVersion)> {
    let vault = vault_for(state, caller, vault, SecretOp::Set).await?;
    let version = uuid::Uuid::new_v4().simple().to_string();
    let s = SecretVersion::new(name, &version, req.value.0.len(), req.changes, caller.now.unix_timestamp())?;
    state.store.set_secret(&vault.name, &s, &req.value).await?;
    Ok((vault, s))
}

pub async fn get(state: &AppState, caller: &Caller, vault: &str, name: &str, version: Option<&str>) -> KvResult<(Vault, SecretVersion, SecretValue)> {
    let vault = vault_for(state, caller, vault, SecretOp::Get).await?;
    if let Some(v) = version {
        validate_version(v)?;
    }
    let (s, value) = state.store.get_secret(&vault.name, name, version).await?;
    if let Some(why) = s.unreadable(caller.now.unix_timestamp()) {
        return Err(KvError::forbidden(why, "SecretDisabled"));
    }
    Ok((vault, s, value))
}

/// Every live secret (`name` `None`) or one secret's versions.
pub async fn list(state: &AppState, caller: &Caller, vault: &str, name: Option<&str>, page: PageRequest) -> KvResult<(Vault, SecretPage)> {
    let vault = vault_for(state, caller, vault, SecretOp::List).await?;
    let found = state.store.list_secrets(&vault.name, name, &page.after, page.limit).await?;
    if let (Some(n), true) = (name, found.items.is_empty() && page.after.is_empty()) {
        return Err(KvError::secret_not_found(format!("A secret with (name/id) {n} was not found in this key vault ({})", vault.name)));
    }
    Ok((vault, found))
}

pub async fn update(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    name: &str,
    version: Option<&str>,
    changes: SecretChanges,
) -> KvResult<(Vault, SecretVersion)> {
    let vault = vault_for(state, caller, vault, SecretOp::Update).await?;
    if let Some(v) = version {
        validate_version(v)?;
    }
    let (current, _) = state.store.get_secret(&vault.name, name, version).await?;
    let updated = current.updated(changes, caller.now.unix_timestamp())?;
    state.store.update_secret(&vault.name, &updated).await?;
    Ok((vault, updated))
}

pub async fn delete(state: &AppState, caller: &Caller, vault: &str, name: &str) -> KvResult<(Vault, DeletedSecret)> {
    let vault = vault_for(state, caller, vault, SecretOp::Delete).await?;
    let (latest, _) = state.store.get_secret(&vault.name, name, None).await?;
    let deleted = DeletedSecret::new(latest, caller.now.unix_timestamp(), vault.soft_delete_retention_days);
    state.store.delete_secret(&vault.name, &deleted).await?;
    Ok((vault, deleted))
}

pub async fn get_deleted(state: &AppState, caller: &Caller, vault: &str, name: &str) -> KvResult<(Vault, DeletedSecret)> {
    let vault = vault_for(state, caller, vault, SecretOp::GetDeleted).await?;
    let d = state.store.get_deleted_secret(&vault.name, name).await?;
    Ok((vault, d))
}

pub async fn list_deleted(state: &AppState, caller: &Caller, vault: &str, page: PageRequest) -> KvResult<(Vault, SecretPage<DeletedSecret>)> {
    let vault = vault_for(state, caller, vault, SecretOp::GetDeleted).await?;
    let found = state.store.list_deleted_secrets(&vault.name, &page.after, page.limit).await?;
    Ok((vault, found))
}

pub async fn recover(state: &AppState, caller: &Caller, vault: &str, name: &str) -> KvResult<(Vault, SecretVersion)> {
    let vault = vault_for(state, caller, vault, SecretOp::Recover).await?;
    let d = state.store.get_deleted_secret(&vault.name, name).await?;
    state.store.recover_secret(&vault.name, name).await?;
    Ok((vault, d.latest))
}

pub async fn purge(state: &AppState, caller: &Caller, vault: &str, name: &str) -> KvResult<()> {
    let vault = vault_for(state, caller, vault, SecretOp::Purge).await?;
    state.store.purge_secret(&vault.name, name).await?;
    Ok(())
}
