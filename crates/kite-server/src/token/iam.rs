//! The IAM-shaped objects STS trusts (OIDC providers, roles), read from the store for STS, the EKS
//! credentials endpoint and the management API alike, with IAM's error codes.

use axum::http::StatusCode;
use kite_core::aws::cluster::EksCluster;
use kite_core::aws::iam::{OidcProvider, Role};
use kite_store::AwsKind;
use serde_json::Value;

use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;

pub(crate) fn decode<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::from(kite_store::Error::Backend(format!("stored IAM object does not parse: {e}"))))
}

pub(crate) fn iam_error(e: kite_store::Error) -> ApiError {
    match e {
        kite_store::Error::NotFound(m) => ApiError::not_found("NoSuchEntity", m),
        kite_store::Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "EntityAlreadyExists", m),
        other => other.into(),
    }
}

/// Every OIDC provider, for STS to find a token's issuer among.
pub async fn providers(state: &AppState) -> ApiResult<Vec<OidcProvider>> {
    state.store.list_aws_objects(AwsKind::OidcProvider).await?.into_iter().map(decode).collect()
}

/// The EKS-shaped cluster named `name` (any case), if there is one.
pub async fn eks_cluster_named(state: &AppState, name: &str) -> ApiResult<Option<EksCluster>> {
    match state.store.get_aws_object(AwsKind::EksCluster, name).await {
        Ok(v) => decode(v).map(Some),
        Err(kite_store::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn role_named(state: &AppState, name: &str) -> ApiResult<Role> {
    decode(state.store.get_aws_object(AwsKind::Role, name).await.map_err(iam_error)?)
}
