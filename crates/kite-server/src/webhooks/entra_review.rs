//! TokenReviews for kite-issued (Entra-shaped) access tokens, as AKS's managed AAD answers them:
//! the token must be signed by one of kite's published keys, issued by this kite's tenant, for the
//! cluster's audience (e.g. AKS's server app ID `6dae42f8-4368-4678-94ff-3960e28e3630`), and
//! unexpired; its principal is then named through `kite_k8s::entra`. Security-sensitive: claims
//! are only believed after the signature checks out, except the issuer, which is read first so a
//! foreign token is refused as foreign rather than as signed by an unknown key.

use kite_k8s::entra::{default_identity, TokenPrincipal};
use kite_k8s::k8s_openapi::api::authentication::v1::UserInfo;
use kite_token::assertion;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::infra::state::AppState;
use crate::webhooks::policy::EntraReview;

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Who a kite-issued access token belongs to, or why it is refused.
pub async fn identify(review: &EntraReview, state: &AppState, token: &str, now: OffsetDateTime) -> Result<UserInfo, String> {
    let peeked = assertion::peek(token).map_err(|e| format!("the token is neither an `aws eks get-token` token nor a JWT access token: {}", e.detail()))?;
    let (v2, v1) = (state.issuer_v2(), state.issuer_v1());
    let iss = peeked.str_claim("iss").unwrap_or_default();
    if iss != v2 && iss != v1 {
        return Err(format!("the token's issuer '{iss}' is not this kite ('{v2}' or '{v1}'): only kite-issued access tokens are accepted"));
    }
    // The signature first (with the token's own audience), so nothing below trusts forged claims.
    let aud = peeked.audiences();
    let auds: Vec<&str> = aud.iter().map(String::as_str).collect();
    let claims = state.keys().verify_ignoring_time(token, &auds, &[iss]).map_err(|e| format!("the token does not verify with kite's published keys: {e}"))?;
    if claims.aud != review.audience {
        return Err(format!(
            "the token is for audience '{}', but this cluster accepts '{}': request it with scope {}/.default (kubelogin --server-id {})",
            claims.aud, review.audience, review.audience, review.audience
        ));
    }
    let now = now.unix_timestamp();
    if now >= claims.exp {
        return Err(format!("the token expired at {} ({} seconds ago): get a new one", rfc3339(claims.exp), now - claims.exp));
    }
    if now < claims.nbf {
        return Err(format!("the token is not valid before {}", rfc3339(claims.nbf)));
    }
    if claims.tid != state.tenant.tenant_id.to_string() {
        return Err(format!("the token is from tenant {}, not this kite's {}", claims.tid, state.tenant.tenant_id));
    }
    // A deleted principal's tokens stop here, not when they expire: the client cache lives a few
    // seconds and this replica forgets it whenever it deletes a principal.
    let gone = || format!("the token's principal (appid {}, oid {}) no longer exists in this directory", claims.appid, claims.oid);
    let app_id = Uuid::parse_str(&claims.appid).map_err(|_| gone())?;
    let client = state.clients.get(state.store.as_ref(), &app_id).await.map_err(|e| {
        tracing::error!("token review: reading the directory failed: {e}");
        "kite could not read its directory; see kite's log".to_string()
    })?;
    if client.is_none_or(|c| c.principal.object_id.to_string() != claims.oid) {
        return Err(gone());
    }
    let principal = TokenPrincipal { oid: &claims.oid, appid: &claims.appid };
    let mapping = review.mapping();
    let id = match mapping {
        // The mapping file's path stays in kite's log; the API server relays refusals to clients.
        Some(m) => m.map(principal).map_err(|e| format!("{e} (in kite's --entra-mapping file)"))?,
        None => default_identity(principal),
    };
    let extra = [("oid", claims.oid.clone()), ("appid", claims.appid.clone()), ("tid", claims.tid.clone())];
    Ok(UserInfo {
        username: Some(id.username),
        uid: Some(claims.oid.clone()),
        groups: Some(id.groups),
        extra: Some(extra.into_iter().map(|(k, v)| (k.to_string(), vec![v])).collect()),
    })
}
