//! STS sessions without HTTP: the session issuer (one per tenant, shared by replicas) and who
//! signed a SigV4 request. The STS endpoint, the EKS credentials endpoint, IAM user keys and the
//! TokenReview webhook use them. Security-sensitive: every AWS-shaped credential is checked here.

use kite_core::aws::arn::{Arn, Resource};
use kite_core::aws::iam::{find_provider, TokenFacts};
use kite_core::aws::sigv4::{self, SignedRequest};
use kite_core::aws::sts::{Credentials, ErrorCode, Session, SessionIssuer, StsCaller, StsError};
use kite_core::aws::user::is_user_access_key_id;
use kite_token::assertion;
use serde_json::Value;
use time::OffsetDateTime;

use crate::infra::state::AppState;
use crate::token::iam::{providers, role_named};

pub(crate) fn internal(e: impl std::fmt::Display) -> StsError {
    tracing::error!("sts: {e}");
    StsError::new(ErrorCode::InternalFailure, "An internal error occurred.")
}

/// The session issuer, keyed by the tenant's STS master key (created once in the store, shared by
/// replicas) and kept for the life of the process: it is on every STS and TokenReview call.
pub async fn issuer(state: &AppState) -> Result<std::sync::Arc<SessionIssuer>, StsError> {
    state
        .sts_issuer
        .get_or_try_init(|| async {
            use base64::Engine;
            let fresh = {
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key).map_err(|_| internal("no randomness"))?;
                base64::engine::general_purpose::STANDARD.encode(key)
            };
            let stored = state.store.secret_get_or_init("sts_master_key", &fresh).await.map_err(internal)?;
            let key = base64::engine::general_purpose::STANDARD.decode(stored).map_err(internal)?;
            Ok(std::sync::Arc::new(SessionIssuer::new(&key).map_err(internal)?))
        })
        .await
        .cloned()
}

/// `None` for NotFound, so a missing key or user is the caller's error, not the server's.
fn found<T>(r: kite_store::Result<T>) -> Result<Option<T>, StsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kite_store::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// Who signed `request`. An IAM user's key is looked up in the store on every call, so deleting or
/// deactivating it takes effect at once; any other key ID must be a stateless role session.
pub async fn authenticate(state: &AppState, request: &SignedRequest, now: OffsetDateTime) -> Result<StsCaller, StsError> {
    authenticate_for(state, request, sigv4::SERVICE, now).await
}

/// [`authenticate`] for a request signed for `service` (`eks` for kite's EKS cluster API).
pub async fn authenticate_for(state: &AppState, request: &SignedRequest, service: &str, now: OffsetDateTime) -> Result<StsCaller, StsError> {
    let issuer = issuer(state).await?;
    match sigv4::claimed_access_key_id(request) {
        Some(akid) if is_user_access_key_id(&akid) => {
            let key = found(state.store.get_access_key(&akid).await)?;
            let user = match &key {
                Some(k) => found(state.store.get_iam_user(&k.user_name).await)?,
                None => None,
            };
            issuer.authenticate_user_for(request, service, now, &akid, key.as_ref().zip(user.as_ref()))
        }
        _ => issuer.authenticate_for(request, service, now).map(|(_, session)| StsCaller::Session(session)),
    }
}

/// `AssumeRoleWithWebIdentity`: the role must exist in this account, the token must come from one of
/// its trusted OIDC providers with a valid signature and be unexpired at `now`, and the role's trust
/// policy must accept it.
pub async fn assume_role_with_web_identity(
    state: &AppState,
    role_arn: &str,
    session_name: &str,
    token: &str,
    duration: Option<u32>,
    now: OffsetDateTime,
) -> Result<(Credentials, Session), StsError> {
    let arn = Arn::parse_role(role_arn).map_err(|e| StsError::new(ErrorCode::ValidationError, e.to_string()))?;
    let Resource::Role { name, .. } = arn.resource() else {
        return Err(StsError::new(ErrorCode::ValidationError, format!("'{role_arn}' is not a role ARN")));
    };
    let not_authorized = || {
        StsError::new(
            ErrorCode::AccessDenied,
            format!("Not authorized to perform sts:AssumeRoleWithWebIdentity: role {role_arn} does not exist (kite iam role list)"),
        )
    };
    let role = role_named(state, name).await.map_err(|_| not_authorized())?;
    if !role.arn.to_string().eq_ignore_ascii_case(&arn.to_string()) || arn.account() != state.aws_account() {
        return Err(StsError::new(
            ErrorCode::AccessDenied,
            format!("Not authorized to perform sts:AssumeRoleWithWebIdentity: no role {role_arn}; did you mean {}?", role.arn),
        ));
    }

    let claims = assertion::peek(token).map_err(|e| StsError::new(ErrorCode::InvalidIdentityToken, e.detail().to_string()))?;
    let iss = claims.str_claim("iss").ok_or_else(|| StsError::new(ErrorCode::InvalidIdentityToken, "The web identity token has no 'iss' claim."))?.to_string();
    let all = providers(state).await.map_err(|e| internal(e.message))?;
    let provider = find_provider(&all, &iss)?;
    let verified = if iss == state.issuer_v2() {
        assertion::verify_with_jwks(token, state.keys().jwks())
    } else {
        let jwks = state
            .issuers
            .jwks(&iss, claims.header.kid.as_deref())
            .await
            .map_err(|e| StsError::new(ErrorCode::InvalidIdentityToken, format!("Couldn't retrieve verification key from your identity provider: {e}")))?;
        assertion::verify_with_jwks(token, &jwks)
    };
    verified.map_err(|e| StsError::new(ErrorCode::InvalidIdentityToken, format!("The web identity token's signature is invalid: {}", e.detail())))?;
    assertion::check_time(&claims.claims, now.unix_timestamp(), 0)
        .map_err(|e| StsError::new(ErrorCode::ExpiredTokenException, format!("Token expired: {}", e.detail())))?;
    let facts = TokenFacts {
        iss,
        sub: claims.str_claim("sub").unwrap_or_default().to_string(),
        aud: claims.audiences(),
        azp: claims.str_claim("azp").map(str::to_string),
        amr: claims.claims.get("amr").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default(),
    };
    let (credentials, session) = issuer(state).await?.assume_role_with_web_identity(&role, session_name, provider, &facts, duration, now)?;
    tracing::info!(role = %role.arn, session = session_name, subject = %facts.sub, "sts: role assumed with web identity");
    Ok((credentials, session))
}
