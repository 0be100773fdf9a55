//! STS sessions without HTTP: the session issuer (one per tenant, shared by replicas) and who
//! signed a SigV4 request. The STS endpoint, the EKS credentials endpoint, IAM user keys and the
//! TokenReview webhook use them. Security-sensitive: every AWS-shaped credential is checked here.

use kite_core::aws::sigv4::{self, SignedRequest};
use kite_core::aws::sts::{ErrorCode, SessionIssuer, StsCaller, StsError};
use kite_core::aws::user::is_user_access_key_id;
use time::OffsetDateTime;

use crate::infra::state::AppState;

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
            let stored = state.store.meta_get_or_init("sts_master_key", &fresh).await.map_err(internal)?;
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
    let issuer = issuer(state).await?;
    match sigv4::claimed_access_key_id(request) {
        Some(akid) if is_user_access_key_id(&akid) => {
            let key = found(state.store.get_access_key(&akid).await)?;
            let user = match &key {
                Some(k) => found(state.store.get_iam_user(&k.user_name).await)?,
                None => None,
            };
            issuer.authenticate_user(request, now, &akid, key.as_ref().zip(user.as_ref()))
        }
        _ => issuer.authenticate(request, now).map(|(_, session)| StsCaller::Session(session)),
    }
}
