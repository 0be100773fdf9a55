//! Projected service-account tokens from the cluster's issuer (`--cluster-issuer`): what a pod
//! presents to the EKS Pod Identity endpoint and what a node agent presents to the server. One
//! check for both: issued by that issuer, signed by a key of its discovery document, in its time
//! window and meant for the audience the caller expects. Each caller says in its own protocol
//! what failed.

use kite_token::assertion::{self, Unverified};
use time::OffsetDateTime;

use crate::infra::state::AppState;

/// What was wrong with a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    Missing,
    Malformed,
    /// The issuer's keys could not be fetched: nothing the caller can fix.
    KeysUnavailable,
    Signature,
    Time,
    Audience,
}

#[derive(Debug)]
pub struct Rejected {
    pub flaw: Flaw,
    pub message: String,
}

fn rejected(flaw: Flaw, message: impl Into<String>) -> Rejected {
    Rejected { flaw, message: message.into() }
}

/// The token's claims once it is verified to come from `issuer` for `audience`.
pub async fn verify(state: &AppState, raw: &str, issuer: &str, audience: &str, now: OffsetDateTime) -> Result<Unverified, Rejected> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(rejected(Flaw::Missing, "no service-account token was presented"));
    }
    let token = assertion::peek(raw).map_err(|e| rejected(Flaw::Malformed, format!("the service-account token cannot be parsed: {}", e.detail())))?;
    let iss = token.str_claim("iss").unwrap_or_default();
    if iss != issuer {
        return Err(rejected(Flaw::Malformed, format!("the token's issuer '{iss}' is not the cluster's service-account issuer '{issuer}'")));
    }
    let jwks = state
        .issuers
        .jwks(issuer, token.header.kid.as_deref())
        .await
        .map_err(|e| rejected(Flaw::KeysUnavailable, format!("cannot verify the token: the keys of cluster issuer {issuer} are unavailable ({e})")))?;
    assertion::verify_with_jwks(raw, &jwks).map_err(|e| rejected(Flaw::Signature, format!("the token's signature is invalid: {}", e.detail())))?;
    assertion::check_time(&token.claims, now.unix_timestamp(), 0)
        .map_err(|e| rejected(Flaw::Time, format!("the service-account token is expired or not yet valid: {}", e.detail())))?;
    let audiences = token.audiences();
    if !audiences.iter().any(|a| a == audience) {
        return Err(rejected(
            Flaw::Audience,
            format!("the token's audience is {audiences:?}; a projected service-account token with audience {audience} is needed"),
        ));
    }
    Ok(token)
}
