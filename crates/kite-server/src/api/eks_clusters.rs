//! EKS-shaped clusters (`aws eks create-cluster`, `describe-cluster`, `list-clusters`,
//! `delete-cluster`), called as EKS is called: signed with SigV4 (service `eks`) by an IAM
//! principal holding kite-issued credentials (an IAM user's key or a role session). kite evaluates
//! no IAM identity policies, so any such principal of this account may manage clusters; unsigned
//! requests, bad signatures and bearer tokens are refused. The signer of `create-cluster` is kept
//! as the cluster's creator: `/authenticate` lets it in as `system:masters` whatever `aws-auth`
//! says, and the audit trail names it under `CreateCluster`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::aws::cluster::EksCluster;
use kite_core::aws::sigv4::SignedRequest;
use kite_core::aws::sts::StsCaller;
use kite_store::AwsKind;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::Path;
use crate::audit::layer::{AuditNote, CallerSlot};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::token::iam::eks_cluster_named;

/// The region in cluster ARNs (kite itself has no regions).
const REGION: &str = "us-east-1";
/// Largest request body a signed call may carry.
const MAX_BODY: usize = 64 * 1024;

/// A request signed for `eks` by an IAM principal, with its body.
pub struct SignedCall {
    pub caller: StsCaller,
    pub body: Bytes,
    pub now: OffsetDateTime,
}

impl FromRequest<AppState> for SignedCall {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| ApiError::bad_request("InvalidRequestException", format!("the body could not be read: {e}")))?;
        let mut request = SignedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect(),
            headers: parts.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
            body: body.to_vec(),
        };
        // HTTP/2 carries the host as :authority, which clients sign as `host`.
        if let (None, Some(authority)) = (request.header("host"), parts.uri.authority()) {
            request.headers.push(("host".into(), authority.to_string()));
        }
        let now = state.now();
        let caller = crate::token::sessions::authenticate_for(state, &request, "eks", now).await.map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                e.code.as_str(),
                format!("{} (EKS-shaped calls are signed with SigV4 for service 'eks' with kite-issued AWS credentials)", e.message),
            )
        })?;
        CallerSlot::fill(&parts.extensions, caller.arn().to_string(), "SigV4");
        Ok(SignedCall { caller, body, now })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCluster {
    name: String,
    #[serde(default)]
    authentication_mode: Option<String>,
    #[serde(default)]
    bootstrap_cluster_creator_admin_permissions: Option<bool>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found("ResourceNotFoundException", format!("No cluster found for name: {name}. (kite eks list-clusters)"))
}

pub async fn create(State(state): State<AppState>, call: SignedCall) -> ApiResult<Response> {
    let req: NewCluster =
        serde_json::from_slice(&call.body).map_err(|e| ApiError::bad_request("InvalidParameterException", format!("the request body is invalid: {e}")))?;
    let invalid = |e: kite_core::Error| ApiError::bad_request("InvalidParameterException", e.to_string());
    let creator_admin = req.bootstrap_cluster_creator_admin_permissions.unwrap_or(true);
    let cluster = EksCluster::new(REGION, &state.aws_account(), &req.name, req.authentication_mode.as_deref(), creator_admin, call.caller.arn(), call.now)
        .map_err(invalid)?;
    let body = serde_json::to_value(&cluster).map_err(|e| ApiError::from(kite_store::Error::Backend(e.to_string())))?;
    state.store.create_aws_object(AwsKind::EksCluster, &cluster.name, &body).await.map_err(|e| match e {
        kite_store::Error::Conflict(_) => {
            ApiError::new(StatusCode::CONFLICT, "ResourceInUseException", format!("Cluster already exists with name: {}", req.name))
        }
        e => e.into(),
    })?;
    tracing::info!(cluster = cluster.name, creator = cluster.creator_arn, "eks cluster created");
    let note = AuditNote {
        resource_id: Some(cluster.arn.clone()),
        parameters: vec![("name", cluster.name.clone()), ("authenticationMode", cluster.authentication_mode.clone())],
    };
    let mut response = (StatusCode::OK, Json(json!({"cluster": cluster.render()}))).into_response();
    response.extensions_mut().insert(note);
    Ok(response)
}

pub async fn list(State(state): State<AppState>, _call: SignedCall) -> ApiResult<Json<Value>> {
    let all = state.store.list_aws_objects(AwsKind::EksCluster).await?;
    let names: Vec<Value> = all.iter().map(|c| c["name"].clone()).collect();
    Ok(Json(json!({"clusters": names})))
}

pub async fn describe(State(state): State<AppState>, Path(name): Path<String>, _call: SignedCall) -> ApiResult<Json<Value>> {
    let cluster = eks_cluster_named(&state, &name).await?.ok_or_else(|| not_found(&name))?;
    Ok(Json(json!({"cluster": cluster.render()})))
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>, _call: SignedCall) -> ApiResult<Response> {
    let cluster = eks_cluster_named(&state, &name).await?.ok_or_else(|| not_found(&name))?;
    state.store.delete_aws_object(AwsKind::EksCluster, &name).await.map_err(|_| not_found(&name))?;
    tracing::info!(cluster = cluster.name, "eks cluster deleted");
    let mut response = Json(json!({"cluster": cluster.render()})).into_response();
    response.extensions_mut().insert(AuditNote { resource_id: Some(cluster.arn.clone()), parameters: vec![("name", cluster.name.clone())] });
    Ok(response)
}
