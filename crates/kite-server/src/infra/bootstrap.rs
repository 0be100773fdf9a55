//! First start: a tenant, a subscription, and an admin service principal holding Owner on the
//! subscription, written in one transaction; then Global Administrator for the admin (see
//! [`ensure_global_administrator`]). The admin's secret goes to a file only the user can
//! read, never to the log. Replicas starting together on one PostgreSQL agree: the loser of the
//! race reads what the winner wrote.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kite_core::credential::{secret_end_date, PasswordCredential};
use kite_core::directory::{Application, Subscription, Tenant};
use kite_core::rbac::directory::GLOBAL_ADMINISTRATOR;
use kite_core::rbac::{builtin_roles, RoleAssignment};
use kite_core::Scope;
use kite_store::{AssignmentFilter, Bootstrap, Store, StoredKey};
use kite_token::SigningKey;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::infra::tls::write_private;

pub struct Bootstrapped {
    pub tenant: Tenant,
    pub subscriptions: Vec<Subscription>,
    /// Set when this start created the tenant: where the admin credentials were written.
    pub credentials_file: Option<PathBuf>,
}

pub const CREDENTIALS_FILE: &str = "admin-credentials.json";

/// How the bootstrap admin's assignments are marked, so a later start can find the admin.
const BOOTSTRAP_ADMIN: &str = "kite bootstrap administrator";

pub async fn ensure_tenant(store: &dyn Store, home: &Path, public_url: &str, ca_file: Option<&Path>) -> Result<Bootstrapped> {
    if let Some((tenant, subscriptions)) = store.tenant().await? {
        return Ok(Bootstrapped { tenant, subscriptions, credentials_file: None });
    }
    let now = OffsetDateTime::now_utc();
    let tenant = Tenant { tenant_id: Uuid::new_v4(), display_name: "kite".into() };
    let subscription = Subscription { subscription_id: Uuid::new_v4(), tenant_id: tenant.tenant_id, display_name: "kite-default".into() };
    let mut admin = Application::new("kite-admin", tenant.tenant_id, None, now)?;
    let secret = PasswordCredential::generate(now, secret_end_date(now, Some(1), None)?, Some("bootstrap".into()));
    admin.password_credentials.push(secret.credential.clone());
    let owner = builtin_roles().iter().find(|r| r.role_name == "Owner").context("the Owner role is missing from the built-in roles")?;
    let admin_assignment = RoleAssignment {
        name: Uuid::new_v4(),
        scope: Scope::subscription(&subscription.subscription_id),
        role_definition_id: owner.name,
        principal_id: admin.principal_id,
        principal_type: "ServicePrincipal".into(),
        description: Some(BOOTSTRAP_ADMIN.into()),
        created_on: now,
        created_by: None,
    };
    let key = SigningKey::generate("kite token signing", now.unix_timestamp())?;
    let signing_key = StoredKey { kid: key.kid.clone(), created_at: key.created_at, body: serde_json::to_string(&key)? };
    let b = Bootstrap { tenant: tenant.clone(), subscription: subscription.clone(), admin: admin.clone(), admin_assignment, signing_key };
    match store.bootstrap(&b).await {
        Ok(()) => {}
        Err(kite_store::Error::Conflict(_)) => {
            let (tenant, subscriptions) = store.tenant().await?.context("bootstrap raced but no tenant is stored")?;
            return Ok(Bootstrapped { tenant, subscriptions, credentials_file: None });
        }
        Err(e) => return Err(e.into()),
    }
    std::fs::create_dir_all(home)?;
    let path = home.join(CREDENTIALS_FILE);
    let creds = json!({
        "tenant": tenant.tenant_id,
        "subscription": subscription.subscription_id,
        "appId": admin.app_id,
        "password": secret.secret_text,
        "endDateTime": secret.credential.end_date_time.format(&time::format_description::well_known::Rfc3339)?,
        "server": public_url,
        "caFile": ca_file,
    });
    write_private(&path, &serde_json::to_string_pretty(&creds)?)?;
    Ok(Bootstrapped { tenant, subscriptions: vec![subscription], credentials_file: Some(path) })
}

/// The directory always keeps a Global Administrator: when no principal holds it (a tenant made
/// before directory roles existed, or the last one removed), the bootstrap admin is granted it at
/// the tenant root, so an upgrade never locks the admin out of managing apps. Racing replicas
/// agree: the store refuses the second identical assignment.
pub async fn ensure_global_administrator(store: &dyn Store) -> Result<()> {
    let all = store.list_role_assignments(&AssignmentFilter { all: true, ..Default::default() }).await?;
    if all.iter().any(|a| a.role_definition_id == GLOBAL_ADMINISTRATOR) {
        return Ok(());
    }
    let Some(admin) = all.iter().find(|a| a.description.as_deref() == Some(BOOTSTRAP_ADMIN) && a.created_by.is_none()) else {
        tracing::warn!("no principal holds Global Administrator and the bootstrap admin is gone: no one can grant directory roles or change privileged apps");
        return Ok(());
    };
    let grant = RoleAssignment {
        name: Uuid::new_v4(),
        scope: Scope::root(),
        role_definition_id: GLOBAL_ADMINISTRATOR,
        principal_id: admin.principal_id,
        principal_type: "ServicePrincipal".into(),
        description: Some(BOOTSTRAP_ADMIN.into()),
        created_on: OffsetDateTime::now_utc(),
        created_by: None,
    };
    match store.create_role_assignment(&grant).await {
        Ok(()) => tracing::info!(principal = %admin.principal_id, "granted Global Administrator at '/' to the bootstrap admin"),
        Err(kite_store::Error::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Names every stored custom role that would take over a built-in role (stored by an older kite,
/// or written around the API). None takes effect: the engine and the API leave them out.
pub async fn report_shadowing_roles(store: &dyn Store) -> Result<()> {
    for def in store.list_role_definitions().await? {
        if let Err(e) = def.check_custom() {
            tracing::error!(
                role_definition = %def.name,
                role_name = %def.role_name,
                "stored custom role refused, it is never in effect: {e}. Remove it with 'kite role definition delete --name {}'",
                def.name
            );
        }
    }
    Ok(())
}

/// Loads the signing keys (the first one is written by the bootstrap).
pub async fn load_keys(store: &dyn Store) -> Result<Vec<SigningKey>> {
    let stored = store.list_signing_keys().await?;
    if stored.is_empty() {
        anyhow::bail!("the store holds no token-signing key; it was bootstrapped by an incompatible kite version");
    }
    stored.iter().map(|k| serde_json::from_str::<SigningKey>(&k.body).with_context(|| format!("signing key {} does not parse", k.kid))).collect()
}
