//! The SQL backend: one code path for SQLite and PostgreSQL through sqlx's `Any` driver.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kite_core::aks::{ClusterWrite, ControlPlane, ManagedCluster};
use kite_core::audit::{AuditEvent, AuditFilter};
use kite_core::aws::eks::PodIdentityAssociation;
use kite_core::aws::user::{AccessKey, KeyStatus, User, MAX_ACCESS_KEYS_PER_USER};
use kite_core::directory::{Application, ManagedIdentity, Principal, ResourceGroup, Subscription, Tenant};
use kite_core::federation::{FederatedCredential, MAX_PER_OWNER};
use kite_core::rbac::{RoleAssignment, RoleDefinition};
use kite_core::scope::ScopeLevel;
use kite_core::vault::secret::{DeletedSecret, SecretVersion};
use kite_core::vault::Vault;
use kite_core::Scope;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::seal::{Kek, Keyring};
use crate::vaults;
use crate::{AppUpdate, AssignmentFilter, AwsKind, Bootstrap, ClusterUpdate, Error, GroupDeletion, Result, Store, StoredKey};
use crate::{SecretPage, SecretValue, VaultUpdate};

/// Migrations are compiled into the binary, so a single-file install needs nothing beside it.
#[derive(Debug)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "federated credentials", include_str!("../migrations/0002_federated_credentials.sql")),
    (3, "aws objects", include_str!("../migrations/0003_aws.sql")),
    (4, "managed clusters", include_str!("../migrations/0004_managed_clusters.sql")),
    (5, "pod identity associations", include_str!("../migrations/0005_pod_identity_associations.sql")),
    (6, "iam users", include_str!("../migrations/0006_iam_users.sql")),
    (7, "audit trail", include_str!("../migrations/0007_audit.sql")),
    (8, "data keys", include_str!("../migrations/0008_data_keys.sql")),
    (9, "vaults", include_str!("../migrations/0009_vaults.sql")),
];

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> futures_core::future::BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS.iter().map(|(v, d, sql)| Migration::new(*v, Cow::Borrowed(*d), MigrationType::Simple, Cow::Borrowed(*sql), false)).collect())
        })
    }
}

pub(crate) fn backend(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_) => {
            Error::Unavailable(e.to_string())
        }
        e => Error::Backend(e.to_string()),
    }
}

/// Unique-constraint violations become `Conflict` with the caller's message; anything else is a backend failure.
pub(crate) fn conflict_or_backend(e: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(what()),
        _ => backend(e),
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Backend(format!("serialising: {e}")))
}

fn from_row<T: DeserializeOwned>(row: &AnyRow) -> Result<T> {
    let body: String = row.try_get("body").map_err(backend)?;
    serde_json::from_str(&body).map_err(|e| Error::Backend(format!("stored object does not parse: {e}")))
}

pub(crate) fn rows<T: DeserializeOwned>(rows: &[AnyRow]) -> Result<Vec<T>> {
    rows.iter().map(from_row).collect()
}

/// `{sub}/{rg}` in lower case for scopes at or below a resource group, else "".
fn group_key(scope: &Scope) -> String {
    match (scope.subscription_id(), scope.resource_group_name()) {
        (Some(s), Some(rg)) => format!("{s}/{rg}").to_lowercase(),
        _ => String::new(),
    }
}

fn identity_key(sub: &Uuid, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.managedidentity/userassignedidentities/{name}").to_lowercase()
}

/// The database holds credential hashes and signing keys: it is created 0600 before SQLite opens it
/// (SQLite gives `-wal` and `-shm` the database file's mode), and files an older kite left wider
/// are narrowed.
fn restrict_sqlite_files(url: &str) -> Result<()> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| Error::Backend(format!("invalid SQLite URL '{}': {e}", redact(url))))?;
    let db = options.get_filename();
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |path: &std::path::Path, e: std::io::Error| Error::Backend(format!("cannot open database '{}' (owner-only): {e}", path.display()));
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(db).map_err(|e| fail(db, e))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| fail(&path, e))?;
            }
        }
    }
    Ok(())
}

#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    keyring: Arc<Keyring>,
    changes: crate::changes::Changes,
}

impl SqlStore {
    /// Opens (creating if needed) and migrates the database at `url` (`sqlite://PATH` or
    /// `postgres://…`), unwraps its data keys with `kek` (refused, naming the KEK's source, when it
    /// is not the database's), and seals what an older kite stored in the clear.
    pub async fn connect(url: &str, kek: &Kek) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") { format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }) } else { url.to_string() };
        if is_sqlite {
            restrict_sqlite_files(&url)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 16 })
            // A request waits this long at most for a connection when the database is away (then
            // 503 with Retry-After), rather than hanging.
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                        // WAL lets readers proceed during a write; the busy timeout serialises writers.
                        // synchronous = NORMAL: in WAL mode a committed write survives a crash or
                        // kill -9 of kite (tested), and only an OS crash or power cut can take the
                        // last commits. FULL adds an fsync to every commit; with it, the suite under
                        // heavy parallel load met occasional 500s (longer write transactions meeting
                        // SQLITE_BUSY is the suspected cause), so it stays off until that is proven.
                        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 10000"] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| Error::Backend(format!("cannot open database '{}': {e}", redact(&url))))?;
        let migrator = Migrator::new(Embedded).await.map_err(|e| Error::Backend(e.to_string()))?;
        migrator.run(&pool).await.map_err(|e| Error::Backend(format!("migrating the database: {e}")))?;
        let keyring = Arc::new(Keyring::load(&pool, kek).await?);
        crate::sealed::seal_clear_values(&pool, &keyring, is_sqlite).await?;
        let changes = crate::changes::Changes::start(&url, &pool).await?;
        Ok(SqlStore { pool, keyring, changes })
    }

    /// One object by key, or `NotFound` with the caller's message.
    async fn one<T: DeserializeOwned>(&self, sql: &str, keys: &[String], missing: impl FnOnce() -> String) -> Result<T> {
        let mut q = sqlx::query(sql);
        for k in keys {
            q = q.bind(k.clone());
        }
        match q.fetch_optional(&self.pool).await.map_err(backend)? {
            Some(r) => from_row(&r),
            None => Err(Error::NotFound(missing())),
        }
    }

    /// The bodies of a table's rows in a subscription, or in one of its resource groups.
    async fn in_subscription<T: DeserializeOwned>(&self, table: &str, sub: &Uuid, rg: Option<&str>) -> Result<Vec<T>> {
        let q = match rg {
            Some(_) => format!("SELECT body FROM {table} WHERE sub_id = $1 AND rg_key = $2 ORDER BY id_key"),
            None => format!("SELECT body FROM {table} WHERE sub_id = $1 ORDER BY id_key"),
        };
        let mut q = sqlx::query(&q).bind(sub.to_string());
        if let Some(rg) = rg {
            q = q.bind(rg.to_lowercase());
        }
        rows(&q.fetch_all(&self.pool).await.map_err(backend)?)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await.map_err(backend)?;
        row.map(|r| r.try_get::<String, _>("value").map_err(backend)).transpose()
    }
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

pub(crate) type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

async fn insert_principal(tx: &mut Tx<'_>, p: &Principal) -> Result<()> {
    sqlx::query("INSERT INTO principals (object_id, app_id, name_key, body) VALUES ($1, $2, $3, $4)")
        .bind(p.object_id.to_string())
        .bind(p.app_id.to_string())
        .bind(p.display_name.to_lowercase())
        .bind(to_json(p)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("a principal with object id {} or app id {} already exists", p.object_id, p.app_id)))?;
    Ok(())
}

async fn insert_assignment(tx: &mut Tx<'_>, a: &RoleAssignment) -> Result<()> {
    sqlx::query("INSERT INTO role_assignments (name, scope_key, rg_key, principal_id, role_id, body) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(a.name.to_string())
        .bind(a.scope.key().to_string())
        .bind(group_key(&a.scope))
        .bind(a.principal_id.to_string())
        .bind(a.role_definition_id.to_string())
        .bind(to_json(a)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            conflict_or_backend(e, || {
                format!("RoleAssignmentExists: principal {} already holds role {} at '{}'", a.principal_id, a.role_definition_id, a.scope)
            })
        })?;
    Ok(())
}

/// Removes a principal, its federated credentials and everything assigned to it.
async fn delete_principal(tx: &mut Tx<'_>, object_id: &Uuid, app_id: &Uuid) -> Result<u64> {
    let id = object_id.to_string();
    sqlx::query("DELETE FROM principals WHERE object_id = $1").bind(&id).execute(&mut **tx).await.map_err(backend)?;
    sqlx::query("DELETE FROM federated_credentials WHERE owner_id = $1").bind(app_id.to_string()).execute(&mut **tx).await.map_err(backend)?;
    let r = sqlx::query("DELETE FROM role_assignments WHERE principal_id = $1").bind(&id).execute(&mut **tx).await.map_err(backend)?;
    Ok(r.rows_affected())
}

async fn insert_group(tx: &mut Tx<'_>, rg: &ResourceGroup) -> Result<()> {
    sqlx::query("INSERT INTO resource_groups (sub_id, name_key, body) VALUES ($1, $2, $3)")
        .bind(rg.subscription_id.to_string())
        .bind(rg.name.to_lowercase())
        .bind(to_json(rg)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("resource group '{}' already exists", rg.name)))?;
    Ok(())
}

async fn insert_identity(tx: &mut Tx<'_>, mi: &ManagedIdentity) -> Result<()> {
    sqlx::query("INSERT INTO identities (id_key, sub_id, rg_key, body) VALUES ($1, $2, $3, $4)")
        .bind(identity_key(&mi.subscription_id, &mi.resource_group, &mi.name))
        .bind(mi.subscription_id.to_string())
        .bind(mi.resource_group.to_lowercase())
        .bind(to_json(mi)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("identity '{}' already exists in resource group '{}'", mi.name, mi.resource_group)))?;
    insert_principal(tx, &mi.principal()).await
}

/// Deletes a group's identities (with their principals and assignments), every assignment at or
/// below it, and the group itself; `None` when there is no such group.
async fn delete_group_rows(tx: &mut Tx<'_>, sub: &str, name_key: &str) -> Result<Option<GroupDeletion>> {
    let gone =
        sqlx::query("DELETE FROM resource_groups WHERE sub_id = $1 AND name_key = $2").bind(sub).bind(name_key).execute(&mut **tx).await.map_err(backend)?;
    if gone.rows_affected() == 0 {
        return Ok(None);
    }
    let ids =
        sqlx::query("SELECT body FROM identities WHERE sub_id = $1 AND rg_key = $2").bind(sub).bind(name_key).fetch_all(&mut **tx).await.map_err(backend)?;
    let identities: Vec<ManagedIdentity> = rows(&ids)?;
    let mut deletion = GroupDeletion { identities: identities.len() as u64, role_assignments: 0 };
    for mi in &identities {
        deletion.role_assignments += delete_principal(tx, &mi.principal_id, &mi.client_id).await?;
    }
    sqlx::query("DELETE FROM identities WHERE sub_id = $1 AND rg_key = $2").bind(sub).bind(name_key).execute(&mut **tx).await.map_err(backend)?;
    let r = sqlx::query("DELETE FROM role_assignments WHERE rg_key = $1").bind(format!("{sub}/{name_key}")).execute(&mut **tx).await.map_err(backend)?;
    deletion.role_assignments += r.rows_affected();
    Ok(Some(deletion))
}

fn cluster_key(sub: &Uuid, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/{}/{name}", kite_core::aks::TYPE).to_lowercase()
}

/// A cluster's row and what it brought: its node resource group and its system-assigned identity.
async fn delete_cluster_rows(tx: &mut Tx<'_>, c: &ManagedCluster) -> Result<GroupDeletion> {
    sqlx::query("DELETE FROM managed_clusters WHERE id_key = $1")
        .bind(cluster_key(&c.subscription_id, &c.resource_group, &c.name))
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let mut deletion = delete_group_rows(tx, &c.subscription_id.to_string(), &c.node_resource_group.to_lowercase()).await?.unwrap_or_default();
    if let ControlPlane::SystemAssigned { principal_id, client_id } = c.control_plane {
        deletion.role_assignments += delete_principal(tx, &principal_id, &client_id).await?;
    }
    Ok(deletion)
}

/// Writes what a cluster change brings besides the cluster row.
async fn write_cluster_objects(tx: &mut Tx<'_>, w: &ClusterWrite) -> Result<()> {
    if let Some(g) = &w.node_group {
        insert_group(tx, g).await?;
    }
    for mi in &w.identities {
        insert_identity(tx, mi).await?;
    }
    for p in &w.principals {
        insert_principal(tx, p).await?;
    }
    for a in &w.assignments {
        let held = sqlx::query("SELECT name FROM role_assignments WHERE principal_id = $1 AND role_id = $2 AND scope_key = $3")
            .bind(a.principal_id.to_string())
            .bind(a.role_definition_id.to_string())
            .bind(a.scope.key().to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
        if held.is_none() {
            insert_assignment(tx, a).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn announce(&self, change: crate::Change) -> Result<()> {
        self.changes.announce(&self.pool, change).await
    }

    fn changes(&self) -> tokio::sync::broadcast::Receiver<crate::Change> {
        self.changes.subscribe()
    }

    async fn bootstrap(&self, b: &Bootstrap) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('tenant', $1), ('subscriptions', $2)")
            .bind(to_json(&b.tenant)?)
            .bind(to_json(&vec![b.subscription.clone()])?)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_backend(e, || "this store is already bootstrapped".into()))?;
        insert_application(&mut tx, &b.admin).await?;
        insert_assignment(&mut tx, &b.admin_assignment).await?;
        crate::sealed::insert_signing_key(&mut tx, &self.keyring, &b.signing_key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn tenant(&self) -> Result<Option<(Tenant, Vec<Subscription>)>> {
        let (Some(t), Some(s)) = (self.meta("tenant").await?, self.meta("subscriptions").await?) else {
            return Ok(None);
        };
        let parse = |e: serde_json::Error| Error::Backend(format!("stored tenant does not parse: {e}"));
        Ok(Some((serde_json::from_str(&t).map_err(parse)?, serde_json::from_str(&s).map_err(parse)?)))
    }

    async fn create_resource_group(&self, rg: &ResourceGroup) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_group(&mut tx, rg).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_resource_group(&self, sub: &Uuid, name: &str) -> Result<ResourceGroup> {
        self.one("SELECT body FROM resource_groups WHERE sub_id = $1 AND name_key = $2", &[sub.to_string(), name.to_lowercase()], || {
            format!("resource group '{name}' could not be found; list them with 'kite group list'")
        })
        .await
    }

    async fn list_resource_groups(&self, sub: &Uuid) -> Result<Vec<ResourceGroup>> {
        let r = sqlx::query("SELECT body FROM resource_groups WHERE sub_id = $1 ORDER BY name_key")
            .bind(sub.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows(&r)
    }

    async fn delete_resource_group(&self, sub: &Uuid, name: &str) -> Result<GroupDeletion> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let (s, n) = (sub.to_string(), name.to_lowercase());
        let Some(mut deletion) = delete_group_rows(&mut tx, &s, &n).await? else {
            return Err(Error::NotFound(format!("resource group '{name}' could not be found")));
        };
        let r =
            sqlx::query("SELECT body FROM managed_clusters WHERE sub_id = $1 AND rg_key = $2").bind(&s).bind(&n).fetch_all(&mut *tx).await.map_err(backend)?;
        for cluster in rows::<ManagedCluster>(&r)? {
            deletion.add(delete_cluster_rows(&mut tx, &cluster).await?);
        }
        tx.commit().await.map_err(backend)?;
        Ok(deletion)
    }

    async fn create_identity(&self, mi: &ManagedIdentity) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_identity(&mut tx, mi).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_identity(&self, sub: &Uuid, rg: &str, name: &str) -> Result<ManagedIdentity> {
        self.one("SELECT body FROM identities WHERE id_key = $1", &[identity_key(sub, rg, name)], || {
            format!("identity '{name}' was not found in resource group '{rg}'; list them with 'kite identity list -g {rg}'")
        })
        .await
    }

    async fn list_identities(&self, sub: &Uuid, rg: Option<&str>) -> Result<Vec<ManagedIdentity>> {
        self.in_subscription("identities", sub, rg).await
    }

    async fn delete_identity(&self, sub: &Uuid, rg: &str, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let key = identity_key(sub, rg, name);
        let row = sqlx::query("SELECT body FROM identities WHERE id_key = $1").bind(&key).fetch_optional(&mut *tx).await.map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("identity '{name}' was not found in resource group '{rg}'")));
        };
        let mi: ManagedIdentity = from_row(&row)?;
        sqlx::query("DELETE FROM identities WHERE id_key = $1").bind(&key).execute(&mut *tx).await.map_err(backend)?;
        delete_principal(&mut tx, &mi.principal_id, &mi.client_id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_principal(&self, object_id: &Uuid) -> Result<Principal> {
        self.one("SELECT body FROM principals WHERE object_id = $1", &[object_id.to_string()], || format!("principal {object_id} does not exist")).await
    }

    async fn find_principals(&self, needle: &str) -> Result<Vec<Principal>> {
        let lowered = needle.trim().to_lowercase();
        let r = sqlx::query("SELECT body FROM principals WHERE object_id = $1 OR app_id = $1 OR name_key = $1 ORDER BY object_id")
            .bind(&lowered)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows(&r)
    }

    async fn create_application(&self, app: &Application, assignments: &[RoleAssignment]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_application(&mut tx, app).await?;
        for a in assignments {
            insert_assignment(&mut tx, a).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_application(&self, app_id: &Uuid) -> Result<Application> {
        self.one("SELECT body FROM applications WHERE app_id = $1", &[app_id.to_string()], || {
            format!("application {app_id} does not exist; list them with 'kite ad sp list'")
        })
        .await
    }

    async fn list_applications(&self) -> Result<Vec<Application>> {
        let r = sqlx::query("SELECT body FROM applications ORDER BY name_key").fetch_all(&self.pool).await.map_err(backend)?;
        rows(&r)
    }

    async fn update_application(&self, app_id: &Uuid, update: AppUpdate<'_>) -> Result<Application> {
        // Compare-and-swap on `version`: a concurrent writer makes us re-read and re-apply.
        for _ in 0..8 {
            let row = sqlx::query("SELECT version, body FROM applications WHERE app_id = $1")
                .bind(app_id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
            let Some(row) = row else {
                return Err(Error::NotFound(format!("application {app_id} does not exist")));
            };
            let version: i64 = row.try_get("version").map_err(backend)?;
            let new = update(from_row(&row)?)?;
            if new.app_id != *app_id || new.principal_id != from_row::<Application>(&row)?.principal_id {
                return Err(Error::Invalid("an application's appId and principal cannot change".into()));
            }
            let r = sqlx::query("UPDATE applications SET body = $1, name_key = $2, version = $3 WHERE app_id = $4 AND version = $5")
                .bind(to_json(&new)?)
                .bind(new.display_name.to_lowercase())
                .bind(version + 1)
                .bind(app_id.to_string())
                .bind(version)
                .execute(&self.pool)
                .await
                .map_err(|e| conflict_or_backend(e, || format!("an application named '{}' already exists", new.display_name)))?;
            if r.rows_affected() == 1 {
                return Ok(new);
            }
        }
        Err(Error::Conflict(format!("application {app_id} is being changed concurrently; try again")))
    }

    async fn delete_application(&self, app_id: &Uuid) -> Result<()> {
        let app = self.get_application(app_id).await?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let r = sqlx::query("DELETE FROM applications WHERE app_id = $1").bind(app_id.to_string()).execute(&mut *tx).await.map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("application {app_id} does not exist")));
        }
        delete_principal(&mut tx, &app.principal_id, &app.app_id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn create_role_definition(&self, def: &RoleDefinition) -> Result<()> {
        def.check_custom()?;
        sqlx::query("INSERT INTO role_definitions (id, name_key, body) VALUES ($1, $2, $3)")
            .bind(def.name.to_string())
            .bind(def.role_name.to_lowercase())
            .bind(to_json(def)?)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("a role named '{}' (or with id {}) already exists", def.role_name, def.name)))?;
        Ok(())
    }

    async fn list_role_definitions(&self) -> Result<Vec<RoleDefinition>> {
        let r = sqlx::query("SELECT body FROM role_definitions ORDER BY name_key").fetch_all(&self.pool).await.map_err(backend)?;
        rows(&r)
    }

    async fn delete_role_definition(&self, id: &Uuid) -> Result<RoleDefinition> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query("SELECT body FROM role_definitions WHERE id = $1").bind(id.to_string()).fetch_optional(&mut *tx).await.map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("custom role {id} does not exist")));
        };
        let def: RoleDefinition = from_row(&row)?;
        let used = sqlx::query("SELECT name FROM role_assignments WHERE role_id = $1").bind(id.to_string()).fetch_all(&mut *tx).await.map_err(backend)?;
        // A stored role under a built-in's GUID never took effect: the assignments naming that GUID are the built-in's.
        let builtin_id = kite_core::rbac::shadowed_builtin(&def).is_some_and(|b| b.name == def.name);
        if !used.is_empty() && !builtin_id {
            return Err(Error::Conflict(format!(
                "role '{}' is still used by {} role assignment(s); delete them first ('kite role assignment list --role \"{}\" --all')",
                def.role_name,
                used.len(),
                def.role_name
            )));
        }
        sqlx::query("DELETE FROM role_definitions WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(def)
    }

    async fn create_role_assignment(&self, a: &RoleAssignment) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_assignment(&mut tx, a).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_role_assignment(&self, name: &Uuid) -> Result<RoleAssignment> {
        self.one("SELECT body FROM role_assignments WHERE name = $1", &[name.to_string()], || format!("role assignment {name} does not exist")).await
    }

    async fn delete_role_assignment(&self, name: &Uuid) -> Result<RoleAssignment> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query("SELECT body FROM role_assignments WHERE name = $1").bind(name.to_string()).fetch_optional(&mut *tx).await.map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("role assignment {name} does not exist")));
        };
        let a = from_row(&row)?;
        sqlx::query("DELETE FROM role_assignments WHERE name = $1").bind(name.to_string()).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(a)
    }

    async fn list_role_assignments(&self, filter: &AssignmentFilter) -> Result<Vec<RoleAssignment>> {
        let r = match filter.principal_id {
            Some(p) => {
                sqlx::query("SELECT body FROM role_assignments WHERE principal_id = $1 ORDER BY scope_key, name")
                    .bind(p.to_string())
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query("SELECT body FROM role_assignments ORDER BY scope_key, name").fetch_all(&self.pool).await,
        }
        .map_err(backend)?;
        let all: Vec<RoleAssignment> = rows(&r)?;
        Ok(all
            .into_iter()
            .filter(|a| match &filter.scope {
                Some(s) => a.scope == *s || (filter.include_inherited && s.is_within(&a.scope)),
                None => filter.all || matches!(a.scope.level(), ScopeLevel::Root | ScopeLevel::Subscription),
            })
            .collect())
    }

    async fn assignments_on_chain(&self, principal: &Uuid, scope: &Scope) -> Result<Vec<RoleAssignment>> {
        let keys: Vec<&str> = scope.chain_keys().collect();
        let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("SELECT body FROM role_assignments WHERE principal_id = $1 AND scope_key IN ({})", placeholders.join(", "));
        let mut q = sqlx::query(&sql).bind(principal.to_string());
        for k in keys {
            q = q.bind(k.to_string());
        }
        let r = q.fetch_all(&self.pool).await.map_err(backend)?;
        rows(&r)
    }

    async fn create_federated_credential(&self, owner: &Uuid, fic: &FederatedCredential) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let existing =
            sqlx::query("SELECT name_key FROM federated_credentials WHERE owner_id = $1").bind(owner.to_string()).fetch_all(&mut *tx).await.map_err(backend)?;
        if existing.len() >= MAX_PER_OWNER {
            return Err(Error::Conflict(format!("{owner} already has {MAX_PER_OWNER} federated credentials, the most Entra allows; delete one first")));
        }
        sqlx::query("INSERT INTO federated_credentials (owner_id, name_key, body) VALUES ($1, $2, $3)")
            .bind(owner.to_string())
            .bind(fic.name.to_lowercase())
            .bind(to_json(fic)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("a federated credential named '{}' already exists", fic.name)))?;
        tx.commit().await.map_err(backend)
    }

    async fn list_federated_credentials(&self, owner: &Uuid) -> Result<Vec<FederatedCredential>> {
        let r = sqlx::query("SELECT body FROM federated_credentials WHERE owner_id = $1 ORDER BY name_key")
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows(&r)
    }

    async fn delete_federated_credential(&self, owner: &Uuid, name: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM federated_credentials WHERE owner_id = $1 AND name_key = $2")
            .bind(owner.to_string())
            .bind(name.to_lowercase())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("federated credential '{name}' does not exist")));
        }
        Ok(())
    }

    async fn create_aws_object(&self, kind: AwsKind, key: &str, body: &serde_json::Value) -> Result<()> {
        sqlx::query("INSERT INTO aws_objects (kind, key, body) VALUES ($1, $2, $3)")
            .bind(kind.as_str())
            .bind(key.to_lowercase())
            .bind(to_json(body)?)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("EntityAlreadyExists: {} '{key}' already exists", kind.as_str())))?;
        Ok(())
    }

    async fn get_aws_object(&self, kind: AwsKind, key: &str) -> Result<serde_json::Value> {
        self.one("SELECT body FROM aws_objects WHERE kind = $1 AND key = $2", &[kind.as_str().to_string(), key.to_lowercase()], || {
            format!("NoSuchEntity: {} '{key}' cannot be found", kind.as_str())
        })
        .await
    }

    async fn list_aws_objects(&self, kind: AwsKind) -> Result<Vec<serde_json::Value>> {
        let r = sqlx::query("SELECT body FROM aws_objects WHERE kind = $1 ORDER BY key").bind(kind.as_str()).fetch_all(&self.pool).await.map_err(backend)?;
        rows(&r)
    }

    async fn delete_aws_object(&self, kind: AwsKind, key: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM aws_objects WHERE kind = $1 AND key = $2")
            .bind(kind.as_str())
            .bind(key.to_lowercase())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("NoSuchEntity: {} '{key}' cannot be found", kind.as_str())));
        }
        Ok(())
    }

    async fn create_pod_identity_association(&self, a: &PodIdentityAssociation) -> Result<()> {
        sqlx::query("INSERT INTO pod_identity_associations (association_id, cluster_key, namespace, service_account, body) VALUES ($1, $2, $3, $4, $5)")
            .bind(&a.association_id)
            .bind(a.cluster_name.to_lowercase())
            .bind(&a.namespace)
            .bind(&a.service_account)
            .bind(to_json(a)?)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                conflict_or_backend(e, || {
                    format!(
                        "ResourceInUseException: service account {}/{} already has a pod identity association in cluster {}; \
                         list it with 'kite eks pod-identity-association list --cluster-name {} --namespace {} --service-account {}'",
                        a.namespace, a.service_account, a.cluster_name, a.cluster_name, a.namespace, a.service_account
                    )
                })
            })?;
        Ok(())
    }

    async fn get_pod_identity_association(&self, cluster: &str, id: &str) -> Result<PodIdentityAssociation> {
        self.one("SELECT body FROM pod_identity_associations WHERE cluster_key = $1 AND association_id = $2", &[cluster.to_lowercase(), id.to_string()], || {
            format!("ResourceNotFoundException: no pod identity association {id} in cluster {cluster}; list them with 'kite eks pod-identity-association list --cluster-name {cluster}'")
        })
        .await
    }

    async fn list_pod_identity_associations(
        &self,
        cluster: &str,
        namespace: Option<&str>,
        service_account: Option<&str>,
    ) -> Result<Vec<PodIdentityAssociation>> {
        let r = sqlx::query(
            "SELECT body FROM pod_identity_associations WHERE cluster_key = $1 AND ($2 = '' OR namespace = $2) AND ($3 = '' OR service_account = $3) \
             ORDER BY namespace, service_account",
        )
        .bind(cluster.to_lowercase())
        .bind(namespace.unwrap_or(""))
        .bind(service_account.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows(&r)
    }

    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> Result<PodIdentityAssociation> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query("SELECT body FROM pod_identity_associations WHERE cluster_key = $1 AND association_id = $2")
            .bind(cluster.to_lowercase())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("ResourceNotFoundException: no pod identity association {id} in cluster {cluster}")));
        };
        let a = from_row(&row)?;
        sqlx::query("DELETE FROM pod_identity_associations WHERE association_id = $1").bind(id).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(a)
    }

    async fn create_iam_user(&self, user: &User) -> Result<()> {
        sqlx::query("INSERT INTO iam_users (name_key, body) VALUES ($1, $2)")
            .bind(user.user_name.to_lowercase())
            .bind(to_json(user)?)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("EntityAlreadyExists: User with name {} already exists.", user.user_name)))?;
        Ok(())
    }

    async fn get_iam_user(&self, name: &str) -> Result<User> {
        self.one("SELECT body FROM iam_users WHERE name_key = $1", &[name.to_lowercase()], || no_such_user(name)).await
    }

    async fn list_iam_users(&self) -> Result<Vec<User>> {
        let r = sqlx::query("SELECT body FROM iam_users ORDER BY name_key").fetch_all(&self.pool).await.map_err(backend)?;
        rows(&r)
    }

    async fn delete_iam_user(&self, name: &str) -> Result<User> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let key = name.to_lowercase();
        let user: User = match sqlx::query("SELECT body FROM iam_users WHERE name_key = $1").bind(&key).fetch_optional(&mut *tx).await.map_err(backend)? {
            Some(row) => from_row(&row)?,
            None => return Err(Error::NotFound(no_such_user(name))),
        };
        let keys = sqlx::query("SELECT access_key_id FROM iam_access_keys WHERE user_key = $1 ORDER BY access_key_id")
            .bind(&key)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        if !keys.is_empty() {
            let ids = keys.iter().map(|r| r.try_get::<String, _>("access_key_id").map_err(backend)).collect::<Result<Vec<_>>>()?;
            return Err(Error::Conflict(format!(
                "DeleteConflict: Cannot delete entity, must delete access keys first: user {name} still has {} (kite iam access-key delete --user-name {name} --access-key-id ID)",
                ids.join(", ")
            )));
        }
        sqlx::query("DELETE FROM iam_users WHERE name_key = $1").bind(&key).execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(user)
    }

    async fn create_access_key(&self, key: &AccessKey) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let user = key.user_name.to_lowercase();
        if sqlx::query("SELECT name_key FROM iam_users WHERE name_key = $1").bind(&user).fetch_optional(&mut *tx).await.map_err(backend)?.is_none() {
            return Err(Error::NotFound(no_such_user(&key.user_name)));
        }
        let existing = sqlx::query("SELECT access_key_id FROM iam_access_keys WHERE user_key = $1").bind(&user).fetch_all(&mut *tx).await.map_err(backend)?;
        if existing.len() >= MAX_ACCESS_KEYS_PER_USER {
            return Err(Error::Conflict(format!(
                "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}; delete one of {}'s keys first",
                key.user_name
            )));
        }
        sqlx::query("INSERT INTO iam_access_keys (access_key_id, user_key, body) VALUES ($1, $2, $3)")
            .bind(&key.access_key_id)
            .bind(&user)
            .bind(to_json(key)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("access key {} already exists", key.access_key_id)))?;
        tx.commit().await.map_err(backend)
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<AccessKey> {
        self.one("SELECT body FROM iam_access_keys WHERE access_key_id = $1", &[access_key_id.to_string()], || no_such_key(access_key_id)).await
    }

    async fn list_access_keys(&self, user_name: &str) -> Result<Vec<AccessKey>> {
        self.get_iam_user(user_name).await?;
        let r = sqlx::query("SELECT body FROM iam_access_keys WHERE user_key = $1 ORDER BY access_key_id")
            .bind(user_name.to_lowercase())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows(&r)
    }

    async fn update_access_key_status(&self, access_key_id: &str, status: KeyStatus) -> Result<AccessKey> {
        let mut key = self.get_access_key(access_key_id).await?;
        key.status = status;
        let r = sqlx::query("UPDATE iam_access_keys SET body = $1 WHERE access_key_id = $2")
            .bind(to_json(&key)?)
            .bind(access_key_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(no_such_key(access_key_id)));
        }
        Ok(key)
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<AccessKey> {
        let key = self.get_access_key(access_key_id).await?;
        let r = sqlx::query("DELETE FROM iam_access_keys WHERE access_key_id = $1").bind(access_key_id).execute(&self.pool).await.map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(no_such_key(access_key_id)));
        }
        Ok(key)
    }

    async fn create_managed_cluster(&self, w: &ClusterWrite) -> Result<()> {
        let c = &w.cluster;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO managed_clusters (id_key, sub_id, rg_key, version, body) VALUES ($1, $2, $3, 0, $4)")
            .bind(cluster_key(&c.subscription_id, &c.resource_group, &c.name))
            .bind(c.subscription_id.to_string())
            .bind(c.resource_group.to_lowercase())
            .bind(to_json(c)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("managed cluster '{}' already exists in resource group '{}'", c.name, c.resource_group)))?;
        write_cluster_objects(&mut tx, w).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str) -> Result<ManagedCluster> {
        self.one("SELECT body FROM managed_clusters WHERE id_key = $1", &[cluster_key(sub, rg, name)], || {
            format!("managed cluster '{name}' was not found in resource group '{rg}'; list them with 'kite aks list -g {rg}'")
        })
        .await
    }

    async fn list_managed_clusters(&self, sub: &Uuid, rg: Option<&str>) -> Result<Vec<ManagedCluster>> {
        self.in_subscription("managed_clusters", sub, rg).await
    }

    async fn update_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str, update: ClusterUpdate<'_>) -> Result<ManagedCluster> {
        let key = cluster_key(sub, rg, name);
        // Compare-and-swap on `version`: a concurrent writer makes us re-read and re-apply.
        for _ in 0..8 {
            let row =
                sqlx::query("SELECT version, body FROM managed_clusters WHERE id_key = $1").bind(&key).fetch_optional(&self.pool).await.map_err(backend)?;
            let Some(row) = row else {
                return Err(Error::NotFound(format!("managed cluster '{name}' was not found in resource group '{rg}'")));
            };
            let version: i64 = row.try_get("version").map_err(backend)?;
            let current: ManagedCluster = from_row(&row)?;
            let w = update(current.clone())?;
            if cluster_key(&w.cluster.subscription_id, &w.cluster.resource_group, &w.cluster.name) != key {
                return Err(Error::Invalid("a cluster's subscription, resource group and name cannot change".into()));
            }
            let mut tx = self.pool.begin().await.map_err(backend)?;
            let r = sqlx::query("UPDATE managed_clusters SET body = $1, version = $2 WHERE id_key = $3 AND version = $4")
                .bind(to_json(&w.cluster)?)
                .bind(version + 1)
                .bind(&key)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            if r.rows_affected() == 1 {
                write_cluster_objects(&mut tx, &w).await?;
                tx.commit().await.map_err(backend)?;
                return Ok(w.cluster);
            }
        }
        Err(Error::Conflict(format!("managed cluster '{name}' is being changed concurrently; try again")))
    }

    async fn delete_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str) -> Result<GroupDeletion> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query("SELECT body FROM managed_clusters WHERE id_key = $1")
            .bind(cluster_key(sub, rg, name))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("managed cluster '{name}' was not found in resource group '{rg}'")));
        };
        let deletion = delete_cluster_rows(&mut tx, &from_row(&row)?).await?;
        tx.commit().await.map_err(backend)?;
        Ok(deletion)
    }

    async fn secret_get_or_init(&self, key: &str, init: &str) -> Result<String> {
        crate::sealed::secret_get_or_init(&self.pool, &self.keyring, key, init).await
    }

    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<()> {
        crate::audit::append(&self.pool, events).await
    }

    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        crate::audit::list(&self.pool, filter).await
    }

    async fn prune_audit_events(&self, before: OffsetDateTime) -> Result<u64> {
        crate::audit::prune(&self.pool, before).await
    }

    async fn add_signing_key(&self, key: &StoredKey) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        crate::sealed::insert_signing_key(&mut tx, &self.keyring, key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>> {
        crate::sealed::list_signing_keys(&self.pool, &self.keyring).await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM signing_keys WHERE kid = $1").bind(kid).execute(&self.pool).await.map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("signing key {kid} does not exist")));
        }
        Ok(())
    }

    async fn create_vault(&self, v: &Vault) -> Result<()> {
        vaults::create(&self.pool, v).await
    }

    async fn get_vault(&self, name: &str) -> Result<Vault> {
        vaults::get(&self.pool, name).await
    }

    async fn list_vaults(&self, sub: &Uuid, rg: Option<&str>, deleted: bool) -> Result<Vec<Vault>> {
        vaults::list(&self.pool, sub, rg, deleted).await
    }

    async fn update_vault(&self, name: &str, update: VaultUpdate<'_>) -> Result<Vault> {
        vaults::update(&self.pool, name, update).await
    }

    async fn purge_vault(&self, name: &str) -> Result<Vault> {
        vaults::purge(&self.pool, name).await
    }

    async fn set_secret(&self, vault: &str, s: &SecretVersion, value: &SecretValue) -> Result<()> {
        vaults::set_secret(&self.pool, &self.keyring, vault, s, value).await
    }

    async fn get_secret(&self, vault: &str, name: &str, version: Option<&str>) -> Result<(SecretVersion, SecretValue)> {
        vaults::get_secret(&self.pool, &self.keyring, vault, name, version).await
    }

    async fn update_secret(&self, vault: &str, s: &SecretVersion) -> Result<()> {
        vaults::update_secret(&self.pool, vault, s).await
    }

    async fn list_secrets(&self, vault: &str, name: Option<&str>, after: &str, limit: usize) -> Result<SecretPage> {
        vaults::list_secrets(&self.pool, vault, name, after, limit).await
    }

    async fn delete_secret(&self, vault: &str, d: &DeletedSecret) -> Result<()> {
        vaults::delete_secret(&self.pool, vault, d).await
    }

    async fn get_deleted_secret(&self, vault: &str, name: &str) -> Result<DeletedSecret> {
        vaults::get_deleted_secret(&self.pool, vault, name).await
    }

    async fn list_deleted_secrets(&self, vault: &str, after: &str, limit: usize) -> Result<SecretPage<DeletedSecret>> {
        vaults::list_deleted_secrets(&self.pool, vault, after, limit).await
    }

    async fn recover_secret(&self, vault: &str, name: &str) -> Result<()> {
        vaults::recover_secret(&self.pool, vault, name).await
    }

    async fn purge_secret(&self, vault: &str, name: &str) -> Result<()> {
        vaults::purge_secret(&self.pool, vault, name).await
    }

    async fn rewrap_data_keys(&self, new: &Kek) -> Result<u64> {
        self.keyring.rewrap(&self.pool, new).await
    }
}

fn no_such_user(name: &str) -> String {
    format!("NoSuchEntity: The user with name {name} cannot be found (kite iam user list)")
}

fn no_such_key(access_key_id: &str) -> String {
    format!("NoSuchEntity: The Access Key with id {access_key_id} cannot be found")
}

async fn insert_application(tx: &mut Tx<'_>, app: &Application) -> Result<()> {
    sqlx::query("INSERT INTO applications (app_id, name_key, version, body) VALUES ($1, $2, 0, $3)")
        .bind(app.app_id.to_string())
        .bind(app.display_name.to_lowercase())
        .bind(to_json(app)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            conflict_or_backend(e, || {
                format!(
                    "an application named '{}' already exists; pick another --name, or get it a new secret with 'kite ad sp credential reset --id <appId>'",
                    app.display_name
                )
            })
        })?;
    insert_principal(tx, &app.principal()).await
}
