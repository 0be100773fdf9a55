//! Kubernetes webhooks: `POST /authorize` answers SubjectAccessReviews with kite-k8s's RBAC engine
//! over RBAC YAML; `POST /authenticate` answers TokenReviews for `aws eks get-token` tokens,
//! verified against kite's own STS and mapped through `aws-auth`, and for kite-issued access tokens
//! (see `entra_review`). What they decide with, and how its files are re-read, is `policy`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kite_core::audit::{AuditEvent, Category, NewEvent, Shape};
use kite_core::aws::cluster::CREATOR_USERNAME;
use kite_core::aws::sigv4;
use kite_k8s::awsauth::{self, AuthenticationMode};
use kite_k8s::k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use kite_k8s::k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus};
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
                state.audit.record(|| review_event(&state, &answered.spec, status));
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

/// A SubjectAccessReview's decision in the trail: the user, verb, resource and why.
fn review_event(state: &AppState, spec: &SubjectAccessReviewSpec, status: &SubjectAccessReviewStatus) -> AuditEvent {
    let (verb, resource) = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(r), _) => (
            r.verb.clone().unwrap_or_default(),
            format!(
                "{}/{}{}",
                r.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("*"),
                r.resource.clone().unwrap_or_default(),
                r.subresource.as_deref().map(|s| format!("/{s}")).unwrap_or_default()
            ),
        ),
        (None, Some(n)) => (n.verb.clone().unwrap_or_default(), n.path.clone().unwrap_or_default()),
        (None, None) => (String::new(), String::new()),
    };
    let user = spec.user.clone().unwrap_or_default();
    let correlation = uuid::Uuid::new_v4().to_string();
    let new = NewEvent {
        shape: Shape::ActivityLog,
        category: Category::Webhook,
        caller: &user,
        authentication: "KubernetesUser",
        operation_name: "authorization.k8s.io/subjectaccessreviews/create",
        resource_id: &resource,
        correlation_id: &correlation,
    };
    let event = AuditEvent::new(new, state.now()).with("verb", verb).with("reason", status.reason.as_deref().unwrap_or_default());
    if status.allowed {
        event.with("decision", "allow")
    } else {
        event.ended(403).failed_with("Forbidden").with("decision", "deny")
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
    let canonical = kite_core::aws::canonicalize(caller.arn()).to_string();
    // EKS's bootstrap cluster-creator admin: the creator is in system:masters whatever aws-auth
    // or the access entries say, so it can repair them when everyone else is locked out.
    let created = crate::token::iam::eks_cluster_named(state, cluster).await.map_err(|e| format!("reading cluster {cluster}: {}", e.message))?;
    // A cluster made with `kite eks create-cluster` decides by its own authentication mode.
    let stored_mode = created.as_ref().and_then(|c| c.authentication_mode.parse::<AuthenticationMode>().ok());
    let (username, groups, canonical) = match created.filter(|c| c.is_creator_admin(&canonical)) {
        Some(_) => (CREATOR_USERNAME.to_string(), vec!["system:masters".to_string()], canonical),
        None => {
            let entries = state.k8s.access_entries();
            let mode = stored_mode.or(state.k8s.mode).unwrap_or(AuthenticationMode::ConfigMap);
            let id = awsauth::resolve(mode, &entries, &state.cluster.aws_auth(), &arn, caller.access_key_id(), caller.session_name())
                .map_err(|miss| miss.to_string())?;
            (id.username, id.groups, id.canonical_arn)
        }
    };
    let extra = [
        ("arn", arn.clone()),
        ("canonicalArn", canonical),
        ("sessionName", caller.session_name().unwrap_or_default().to_string()),
        ("accessKeyId", caller.access_key_id().to_string()),
        ("principalId", caller.user_id()),
    ];
    Ok(UserInfo {
        username: Some(username),
        uid: Some(format!("aws-iam-authenticator:{}:{}", caller.arn().account(), caller.stable_id())),
        groups: Some(groups),
        extra: Some(extra.into_iter().map(|(k, v)| (k.to_string(), vec![v])).collect()),
    })
}

/// The authentication webhook (`authentication.k8s.io/v1` TokenReview in, the same out with status).
pub async fn authenticate(State(state): State<AppState>, Json(mut review): Json<TokenReview>) -> Json<TokenReview> {
    let token = review.spec.token.clone();
    let now = state.now();
    let correlation = uuid::Uuid::new_v4().to_string();
    let event = |caller: &str, arn: &str| {
        let new = NewEvent {
            shape: Shape::ActivityLog,
            category: Category::Webhook,
            caller,
            authentication: if token.trim().starts_with(sigv4::EKS_TOKEN_PREFIX) { "aws-iam-authenticator" } else { "Bearer" },
            operation_name: "authentication.k8s.io/tokenreviews/create",
            resource_id: state.k8s.cluster_id.as_deref().unwrap_or_default(),
            correlation_id: &correlation,
        };
        AuditEvent::new(new, now).with("arn", arn)
    };
    review.status = Some(match identify(&state, token.trim(), now).await {
        Ok(user) => {
            tracing::info!(username = user.username.as_deref().unwrap_or(""), "token review: authenticated");
            let arn = user.extra.as_ref().and_then(|x| x.get("arn")).and_then(|v| v.first()).cloned().unwrap_or_default();
            let groups = user.groups.clone().unwrap_or_default().join(",");
            state.audit.record(|| event(user.username.as_deref().unwrap_or_default(), &arn).with("groups", groups));
            TokenReviewStatus { authenticated: Some(true), user: Some(user), ..Default::default() }
        }
        Err(reason) => {
            tracing::info!("token review refused: {reason}");
            state.audit.record(|| event("", "").ended(401).failed_with("Unauthorized").with("reason", &reason));
            TokenReviewStatus { authenticated: Some(false), error: Some(reason), ..Default::default() }
        }
    });
    Json(review)
}
