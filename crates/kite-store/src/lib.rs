//! kite's one storage interface.
//!
//! Contract (every backend, checked by the conformance suite in `tests/`):
//! - lookups of something absent return [`Error::NotFound`]; creating something that exists returns
//!   [`Error::Conflict`] and changes nothing;
//! - every method that writes more than one row does so in one transaction: it happens whole or not at all;
//! - [`Store::update_application`] is a compare-and-swap read-modify-write, safe across replicas.
//!
//! - values that are secrets (signing keys, secret settings) are sealed at rest under data keys
//!   wrapped by the key-encryption key the store is opened with ([`Kek`]; see `seal.rs`).
//!
//! SQLite (the embedded default) and PostgreSQL (scale-out) share one implementation, [`SqlStore`],
//! through sqlx's `Any` driver and portable SQL.

// Request paths answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod audit;
mod changes;
mod seal;
mod sealed;
mod sql;
mod vaults;

use async_trait::async_trait;
use kite_core::aks::{ClusterWrite, ManagedCluster};
use kite_core::audit::{AuditEvent, AuditFilter};
use kite_core::aws::eks::PodIdentityAssociation;
use kite_core::aws::user::{AccessKey, KeyStatus, User};
use kite_core::directory::{Application, ManagedIdentity, Principal, ResourceGroup, Subscription, Tenant};
use kite_core::federation::FederatedCredential;
use kite_core::rbac::{RoleAssignment, RoleDefinition};
use kite_core::vault::secret::{DeletedSecret, SecretVersion};
use kite_core::vault::Vault;
use kite_core::Scope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use changes::Change;
pub use seal::Kek;
pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The database failed; the message is for logs, not for API callers.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The key-encryption key does not open the database (or is malformed); the message names its source.
    #[error("{0}")]
    Locked(String),
    /// The database cannot be reached (refused, dropped, no connection within the pool's wait):
    /// worth retrying shortly. The message is for logs.
    #[error("database unreachable: {0}")]
    Unavailable(String),
}

/// Seconds a caller is told to wait (`Retry-After`) while the database is unreachable.
pub const RETRY_AFTER_SECS: u64 = 5;

impl From<kite_core::Error> for Error {
    fn from(e: kite_core::Error) -> Self {
        match e {
            kite_core::Error::NotFound(m) => Error::NotFound(m),
            kite_core::Error::Conflict(m) => Error::Conflict(m),
            kite_core::Error::InvalidScope(m) | kite_core::Error::InvalidArgument(m) => Error::Invalid(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the first start writes, all at once: the tenant, its subscription and the admin app with
/// its Owner assignment.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub tenant: Tenant,
    pub subscription: Subscription,
    pub admin: Application,
    pub admin_assignment: RoleAssignment,
    /// The first token-signing key, written with the rest so racing replicas agree on it.
    pub signing_key: StoredKey,
}

/// Filters of `role assignment list`.
#[derive(Clone, Debug, Default)]
pub struct AssignmentFilter {
    pub principal_id: Option<Uuid>,
    pub scope: Option<Scope>,
    /// With `scope`: also the assignments at every scope above it.
    pub include_inherited: bool,
    /// Without `scope`: assignments at every scope, not only at subscriptions and above.
    pub all: bool,
}

/// What deleting a resource group took with it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeletion {
    pub identities: u64,
    pub role_assignments: u64,
}

impl GroupDeletion {
    pub fn add(&mut self, other: GroupDeletion) {
        self.identities += other.identities;
        self.role_assignments += other.role_assignments;
    }
}

/// A stored signing key; `body` (which holds the private key) is opaque to the store and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub created_at: i64,
    pub body: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("created_at", &self.created_at).finish_non_exhaustive()
    }
}

/// The kinds of AWS-shaped objects kite keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsKind {
    Role,
    OidcProvider,
    /// EKS-shaped clusters, keyed by name.
    EksCluster,
}

impl AwsKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AwsKind::Role => "role",
            AwsKind::OidcProvider => "OpenIDConnectProvider",
            AwsKind::EksCluster => "cluster",
        }
    }
}

/// A read-modify-write step for [`Store::update_managed_cluster`]: the current cluster in, what to write out.
pub type ClusterUpdate<'a> = &'a (dyn Fn(ManagedCluster) -> Result<ClusterWrite> + Send + Sync);

/// A read-modify-write step for [`Store::update_vault`].
pub type VaultUpdate<'a> = &'a (dyn Fn(Vault) -> Result<Vault> + Send + Sync);

/// A secret's value in the clear, as the store hands it back; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One page of a secret listing; `next_after` is where the next page starts (exclusive) when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPage<T = SecretVersion> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// A read-modify-write step for [`Store::update_application`].
pub type AppUpdate<'a> = &'a (dyn Fn(Application) -> Result<Application> + Send + Sync);

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Tells every replica on this database (this one included) that `change` happened, so they
    /// drop what they cached of it.
    async fn announce(&self, change: Change) -> Result<()>;
    /// The changes announced from now on, by any replica.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Change>;

    /// Writes the first-start state; `Conflict` when the store is already bootstrapped.
    async fn bootstrap(&self, b: &Bootstrap) -> Result<()>;
    /// The tenant and its subscriptions, once bootstrapped.
    async fn tenant(&self) -> Result<Option<(Tenant, Vec<Subscription>)>>;

    async fn create_resource_group(&self, rg: &ResourceGroup) -> Result<()>;
    async fn get_resource_group(&self, sub: &Uuid, name: &str) -> Result<ResourceGroup>;
    async fn list_resource_groups(&self, sub: &Uuid) -> Result<Vec<ResourceGroup>>;
    /// Deletes the group, the identities in it (and their principals and assignments), every role
    /// assignment at or below it, and the managed clusters in it as [`Store::delete_managed_cluster`] does.
    async fn delete_resource_group(&self, sub: &Uuid, name: &str) -> Result<GroupDeletion>;

    /// Creates the identity and its principal.
    async fn create_identity(&self, mi: &ManagedIdentity) -> Result<()>;
    async fn get_identity(&self, sub: &Uuid, rg: &str, name: &str) -> Result<ManagedIdentity>;
    async fn list_identities(&self, sub: &Uuid, rg: Option<&str>) -> Result<Vec<ManagedIdentity>>;
    /// Deletes the identity, its principal and its role assignments.
    async fn delete_identity(&self, sub: &Uuid, rg: &str, name: &str) -> Result<()>;

    async fn get_principal(&self, object_id: &Uuid) -> Result<Principal>;
    /// Principals whose object id, app (client) id or display name (case-insensitive) is `needle`.
    async fn find_principals(&self, needle: &str) -> Result<Vec<Principal>>;

    /// Creates the app, its principal and the given role assignments.
    async fn create_application(&self, app: &Application, assignments: &[RoleAssignment]) -> Result<()>;
    async fn get_application(&self, app_id: &Uuid) -> Result<Application>;
    async fn list_applications(&self) -> Result<Vec<Application>>;
    async fn update_application(&self, app_id: &Uuid, update: AppUpdate<'_>) -> Result<Application>;
    /// Deletes the app, its principal and its role assignments.
    async fn delete_application(&self, app_id: &Uuid) -> Result<()>;

    /// `Conflict` when the name (case-insensitive) or GUID is taken, by a custom or a built-in role.
    async fn create_role_definition(&self, def: &RoleDefinition) -> Result<()>;
    /// Custom role definitions (built-ins live in code).
    async fn list_role_definitions(&self) -> Result<Vec<RoleDefinition>>;
    /// `Conflict` while assignments still use the role.
    async fn delete_role_definition(&self, id: &Uuid) -> Result<RoleDefinition>;

    /// `Conflict` when the principal already holds the role at that scope.
    async fn create_role_assignment(&self, a: &RoleAssignment) -> Result<()>;
    async fn get_role_assignment(&self, name: &Uuid) -> Result<RoleAssignment>;
    async fn delete_role_assignment(&self, name: &Uuid) -> Result<RoleAssignment>;
    async fn list_role_assignments(&self, filter: &AssignmentFilter) -> Result<Vec<RoleAssignment>>;
    /// The principal's assignments at `scope` and every scope above it: what a check needs.
    async fn assignments_on_chain(&self, principal: &Uuid, scope: &Scope) -> Result<Vec<RoleAssignment>>;

    /// Adds a federated credential to the app or identity whose client id is `owner`; at most
    /// [`kite_core::federation::MAX_PER_OWNER`], names unique per owner (case-insensitive).
    async fn create_federated_credential(&self, owner: &Uuid, fic: &FederatedCredential) -> Result<()>;
    async fn list_federated_credentials(&self, owner: &Uuid) -> Result<Vec<FederatedCredential>>;
    async fn delete_federated_credential(&self, owner: &Uuid, name: &str) -> Result<()>;

    /// AWS-shaped objects as JSON, keyed by ARN (case-insensitive); `Conflict` when the ARN exists.
    async fn create_aws_object(&self, kind: AwsKind, key: &str, body: &serde_json::Value) -> Result<()>;
    async fn get_aws_object(&self, kind: AwsKind, key: &str) -> Result<serde_json::Value>;
    async fn list_aws_objects(&self, kind: AwsKind) -> Result<Vec<serde_json::Value>>;
    async fn delete_aws_object(&self, kind: AwsKind, key: &str) -> Result<()>;

    /// Writes a new cluster with everything it brings (node resource group, identities, principals,
    /// role assignments); `Conflict` when the cluster or its node resource group exists.
    async fn create_managed_cluster(&self, w: &ClusterWrite) -> Result<()>;
    async fn get_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str) -> Result<ManagedCluster>;
    async fn list_managed_clusters(&self, sub: &Uuid, rg: Option<&str>) -> Result<Vec<ManagedCluster>>;
    /// Compare-and-swap read-modify-write; what the step adds is written in the same transaction,
    /// and role assignments the principal already holds are kept.
    async fn update_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str, update: ClusterUpdate<'_>) -> Result<ManagedCluster>;
    /// Deletes the cluster, its node resource group with everything in it, and its system-assigned
    /// identity with that identity's role assignments.
    async fn delete_managed_cluster(&self, sub: &Uuid, rg: &str, name: &str) -> Result<GroupDeletion>;
    /// EKS Pod Identity associations; `Conflict` when the (cluster, namespace, service account)
    /// already has one. Cluster names match case-insensitively, Kubernetes names exactly.
    async fn create_pod_identity_association(&self, a: &PodIdentityAssociation) -> Result<()>;
    async fn get_pod_identity_association(&self, cluster: &str, id: &str) -> Result<PodIdentityAssociation>;
    /// The cluster's associations, narrowed to a namespace and/or service account when given.
    async fn list_pod_identity_associations(
        &self,
        cluster: &str,
        namespace: Option<&str>,
        service_account: Option<&str>,
    ) -> Result<Vec<PodIdentityAssociation>>;
    /// Deletes the association and returns what it was.
    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> Result<PodIdentityAssociation>;
    /// IAM users, named case-insensitively as IAM does; `Conflict` when the name is taken.
    async fn create_iam_user(&self, user: &User) -> Result<()>;
    async fn get_iam_user(&self, name: &str) -> Result<User>;
    async fn list_iam_users(&self) -> Result<Vec<User>>;
    /// `Conflict` (IAM's DeleteConflict) while the user still has access keys, so no key is dropped unseen.
    async fn delete_iam_user(&self, name: &str) -> Result<User>;
    /// Adds a key to an existing user (`NotFound` otherwise), at most
    /// [`kite_core::aws::user::MAX_ACCESS_KEYS_PER_USER`] per user (`Conflict` beyond).
    async fn create_access_key(&self, key: &AccessKey) -> Result<()>;
    async fn get_access_key(&self, access_key_id: &str) -> Result<AccessKey>;
    /// The user's keys; `NotFound` when there is no such user.
    async fn list_access_keys(&self, user_name: &str) -> Result<Vec<AccessKey>>;
    async fn update_access_key_status(&self, access_key_id: &str, status: KeyStatus) -> Result<AccessKey>;
    async fn delete_access_key(&self, access_key_id: &str) -> Result<AccessKey>;

    /// A server-wide secret setting (the STS master key) written once, sealed at rest: the first
    /// caller's `init` wins, every caller reads it.
    async fn secret_get_or_init(&self, key: &str, init: &str) -> Result<String>;

    /// Appends audit events, all or none; the trail is append-only (no update, no delete but by age).
    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<()>;
    /// Events the filter selects, oldest first (by time, then event ID), at most `filter.limit`.
    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;
    /// Removes events older than `before` (the retention); returns how many went.
    async fn prune_audit_events(&self, before: time::OffsetDateTime) -> Result<u64>;

    /// Signing keys; `body` is sealed at rest and handed back in the clear.
    async fn add_signing_key(&self, key: &StoredKey) -> Result<()>;
    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>>;
    async fn delete_signing_key(&self, kid: &str) -> Result<()>;

    /// Key vaults, by their globally unique name (case-insensitive). `Conflict` when the name is
    /// taken, also by a soft-deleted vault (until it is purged).
    async fn create_vault(&self, v: &Vault) -> Result<()>;
    /// The vault of that name, live or soft-deleted.
    async fn get_vault(&self, name: &str) -> Result<Vault>;
    /// The live (or, with `deleted`, the soft-deleted) vaults of a subscription or one of its groups.
    async fn list_vaults(&self, sub: &Uuid, rg: Option<&str>, deleted: bool) -> Result<Vec<Vault>>;
    /// Compare-and-swap read-modify-write (policies, soft delete, recover).
    async fn update_vault(&self, name: &str, update: VaultUpdate<'_>) -> Result<Vault>;
    /// Removes the vault and every secret in it for good; returns what it was.
    async fn purge_vault(&self, name: &str) -> Result<Vault>;

    /// Adds a version to a secret (sealing the value); `Conflict` while the secret is soft-deleted.
    async fn set_secret(&self, vault: &str, s: &SecretVersion, value: &SecretValue) -> Result<()>;
    /// A live secret's version (the latest when `version` is `None`) with its value.
    async fn get_secret(&self, vault: &str, name: &str, version: Option<&str>) -> Result<(SecretVersion, SecretValue)>;
    /// Rewrites a live version's attributes, content type and tags.
    async fn update_secret(&self, vault: &str, s: &SecretVersion) -> Result<()>;
    /// The latest version of each live secret (`name` `None`), or one secret's versions, ordered by
    /// name (or version) after `after`, at most `limit`.
    async fn list_secrets(&self, vault: &str, name: Option<&str>, after: &str, limit: usize) -> Result<SecretPage>;
    /// Soft-deletes every version of the secret `d.latest` names.
    async fn delete_secret(&self, vault: &str, d: &DeletedSecret) -> Result<()>;
    async fn get_deleted_secret(&self, vault: &str, name: &str) -> Result<DeletedSecret>;
    async fn list_deleted_secrets(&self, vault: &str, after: &str, limit: usize) -> Result<SecretPage<DeletedSecret>>;
    /// Brings a soft-deleted secret back with every version.
    async fn recover_secret(&self, vault: &str, name: &str) -> Result<()>;
    /// Removes a soft-deleted secret for good.
    async fn purge_secret(&self, vault: &str, name: &str) -> Result<()>;

    /// Re-wraps every data key under `new` (in one transaction); sealed values stay as they are and
    /// stay readable. Returns how many data keys were re-wrapped. The next open needs `new`.
    async fn rewrap_data_keys(&self, new: &Kek) -> Result<u64>;
}
