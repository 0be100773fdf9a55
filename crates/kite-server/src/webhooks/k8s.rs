//! Kubernetes webhooks: `POST /authorize` answers SubjectAccessReviews with kite-k8s's RBAC engine
//! over RBAC YAML; `POST /authenticate` answers TokenReviews for `aws eks get-token` tokens,
//! verified against kite's own STS and mapped through `aws-auth`, and for kite-issued access tokens
//! (see `entra_review`). What they decide with, and how its files are re-read, is `policy`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::aws::sigv4;
use kite_k8s::awsauth::{self, AuthenticationMode};
use kite_k8s::k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use kite_k8s::k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use time::OffsetDateTime;

use crate::infra::state::AppState;
use crate::webhooks::entra_review;

/// The authorization webhook (`authorization.k8s.io/v1` SubjectAccessReview in, the same out with status).
pub async fn authorize(State(state): State<AppState>, Json(sar): Json<SubjectAccessReview>) -> Response {
    match state.cluster.rbac() {
        Some(snap) => {
            let answered = kite_k8s::review(&snap, sar);
            if let Some(status) = &answered.status {
                tracing::info!(allowed = status.allowed, reason = status.reason.as_deref().unwrap_or(""), "subject access review");
            }
            Json(answered).into_response()
        }
        None => {
            let mut sar = sar;
            sar.status = Some(SubjectAccessReviewStatus {
                allowed: false,
                reason: Some(
                    "kite has no Kubernetes RBAC objects loaded: start it with --k8s-rbac PATH, or --kubeconfig PATH to read them from the cluster".into(),
                ),
                ..Default::default()
            });
            (StatusCode::OK, Json(sar)).into_response()
        }
    }
}

/// Who a token belongs to, or why it is refused. `aws eks get-token` tokens: the rule that failed,
/// the ARN seen and the closest aws-auth entry (the upstream authenticator answers a bare
/// "Unauthorized"); anything else is taken for a kite-issued access token.
async fn identify(state: &AppState, token: &str, now: OffsetDateTime) -> Result<UserInfo, String> {
    if !token.starts_with(sigv4::EKS_TOKEN_PREFIX) {
        return match &state.k8s.entra {
            Some(review) => entra_review::identify(review, state, token, now).await,
            None => Err(format!(
                "only {}… tokens (aws eks get-token) are accepted here; start kite with --entra-audience AUD to accept kite-issued access tokens",
                sigv4::EKS_TOKEN_PREFIX
            )),
        };
    }
    let cluster = state.k8s.cluster_id.as_deref().ok_or("kite serves no EKS-shaped cluster: start it with --eks-cluster NAME")?;
    let request = sigv4::eks_token_request(token, cluster).map_err(|e| e.to_string())?;
    let ours = state.public_url.split("://").nth(1).unwrap_or_default().to_ascii_lowercase();
    let host = request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.to_ascii_lowercase()).unwrap_or_default();
    if host != ours {
        return Err(format!("the token was presigned for STS at '{host}', not this kite ('{ours}'): set AWS_ENDPOINT_URL_STS={}", state.public_url));
    }
    let caller = crate::token::sessions::authenticate(state, &request, now).await.map_err(|e| e.to_string())?;
    let arn = caller.arn().to_string();
    let entries = state.k8s.access_entries();
    let mode = state.k8s.mode.unwrap_or(AuthenticationMode::ConfigMap);
    let id =
        awsauth::resolve(mode, &entries, &state.cluster.aws_auth(), &arn, caller.access_key_id(), caller.session_name()).map_err(|miss| miss.to_string())?;
    let extra = [
        ("arn", arn.clone()),
        ("canonicalArn", id.canonical_arn.clone()),
        ("sessionName", caller.session_name().unwrap_or_default().to_string()),
        ("accessKeyId", caller.access_key_id().to_string()),
        ("principalId", caller.user_id()),
    ];
    Ok(UserInfo {
        username: Some(id.username),
        uid: Some(format!("aws-iam-authenticator:{}:{}", caller.arn().account(), caller.stable_id())),
        groups: Some(id.groups),
        extra: Some(extra.into_iter().map(|(k, v)| (k.to_string(), vec![v])).collect()),
    })
}

/// The authentication webhook (`authentication.k8s.io/v1` TokenReview in, the same out with status).
pub async fn authenticate(State(state): State<AppState>, Json(mut review): Json<TokenReview>) -> Json<TokenReview> {
    let token = review.spec.token.clone();
    review.status = Some(match identify(&state, token.trim(), state.now()).await {
        Ok(user) => {
            tracing::info!(username = user.username.as_deref().unwrap_or(""), "token review: authenticated");
            TokenReviewStatus { authenticated: Some(true), user: Some(user), ..Default::default() }
        }
        Err(reason) => {
            tracing::info!("token review refused: {reason}");
            TokenReviewStatus { authenticated: Some(false), error: Some(reason), ..Default::default() }
        }
    });
    Json(review)
}
