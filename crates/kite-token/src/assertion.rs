//! Client assertions (RFC 7523 `jwt-bearer`): read what an assertion claims, then verify its
//! signature with the key the claim points at. Security-sensitive: the algorithm is pinned to the
//! key's family (so `alg: none` and HS256-signed-with-the-public-key are refused), and time claims
//! are checked here against the caller's clock, as numbers (msal sends floats).

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the client assertion is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the client assertion uses algorithm {0}; only asymmetric RS256/RS384/RS512/PS256/ES256/ES384 signatures are accepted")]
    Algorithm(String),
    #[error("the client assertion failed signature validation: {0}")]
    Signature(String),
    #[error("no key to verify the client assertion: {0}")]
    NoKey(String),
    #[error("the client assertion is not within its valid time range: {0}")]
    Time(String),
}

impl AssertionError {
    /// What went wrong, without the category sentence (for messages that state the category themselves).
    pub fn detail(&self) -> &str {
        match self {
            AssertionError::Malformed(d) | AssertionError::Algorithm(d) | AssertionError::Signature(d) | AssertionError::NoKey(d) | AssertionError::Time(d) => {
                d
            }
        }
    }
}

/// An assertion read but not yet trusted.
pub struct Unverified {
    pub header: Header,
    pub claims: Value,
}

impl Unverified {
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// `aud` as a list, whether the token carries a string or an array.
    pub fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

/// Reads header and claims without verifying anything.
pub fn peek(raw: &str) -> Result<Unverified, AssertionError> {
    let raw = raw.trim();
    let header = jsonwebtoken::decode_header(raw).map_err(|e| AssertionError::Malformed(e.to_string()))?;
    let payload = raw.split('.').nth(1).ok_or_else(|| AssertionError::Malformed("it has no payload".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| AssertionError::Malformed(format!("payload is not base64url: {e}")))?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|e| AssertionError::Malformed(format!("payload is not JSON: {e}")))?;
    if !claims.is_object() {
        return Err(AssertionError::Malformed("payload is not a JSON object".into()));
    }
    Ok(Unverified { header, claims })
}

const RSA_ALGS: [Algorithm; 4] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256];
const EC_ALGS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::ES384];

fn verify(raw: &str, key: &DecodingKey, algs: &[Algorithm]) -> Result<(), AssertionError> {
    let header = jsonwebtoken::decode_header(raw.trim()).map_err(|e| AssertionError::Malformed(e.to_string()))?;
    if !algs.contains(&header.alg) {
        return Err(AssertionError::Algorithm(format!("{:?}", header.alg)));
    }
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(raw.trim(), key, &v).map(|_| ()).map_err(|e| AssertionError::Signature(e.to_string()))
}

/// Verifies a signature made with the private key of an RSA certificate (modulus, exponent).
pub fn verify_with_rsa(raw: &str, modulus: &[u8], exponent: &[u8]) -> Result<(), AssertionError> {
    verify(raw, &DecodingKey::from_rsa_raw_components(modulus, exponent), &RSA_ALGS)
}

/// Verifies a signature with the issuer's JWKS: the key named by `kid`, or the only key when the
/// token names none.
pub fn verify_with_jwks(raw: &str, jwks: &JwkSet) -> Result<(), AssertionError> {
    let header = jsonwebtoken::decode_header(raw.trim()).map_err(|e| AssertionError::Malformed(e.to_string()))?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid).ok_or_else(|| AssertionError::NoKey(format!("the issuer publishes no key with kid '{kid}'")))?,
        None if jwks.keys.len() == 1 => &jwks.keys[0],
        None => return Err(AssertionError::NoKey("the token names no kid and the issuer publishes several keys".into())),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| AssertionError::NoKey(e.to_string()))?;
    let algs: &[Algorithm] = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => &RSA_ALGS,
        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => &EC_ALGS,
        _ => return Err(AssertionError::NoKey("the issuer's key is neither RSA nor EC".into())),
    };
    verify(raw, &key, algs)
}

/// `exp` must be in the future and `nbf` (if any) not ahead of now by more than `leeway` seconds.
pub fn check_time(claims: &Value, now: i64, leeway: i64) -> Result<(), AssertionError> {
    let num = |n: &str| claims.get(n).and_then(Value::as_f64);
    let exp = num("exp").ok_or_else(|| AssertionError::Time("it has no 'exp' claim".into()))?;
    if (now as f64) >= exp + leeway as f64 {
        return Err(AssertionError::Time(format!("it expired at {} (unix time), now is {now}", exp as i64)));
    }
    if let Some(nbf) = num("nbf") {
        if nbf > (now + leeway) as f64 {
            return Err(AssertionError::Time(format!("it is not valid before {} (unix time), now is {now}", nbf as i64)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySet, SigningKey};
    use serde_json::json;

    fn signed(claims: &Value) -> (String, KeySet) {
        let set = KeySet::new(&[SigningKey::generate("issuer", 0).unwrap()]).unwrap();
        (set.sign(claims).unwrap(), set)
    }

    #[test]
    fn a_token_verifies_against_its_issuers_jwks_and_nothing_else() {
        let (token, set) = signed(&json!({"iss": "https://issuer", "sub": "s", "exp": 2_000_000_000}));
        verify_with_jwks(&token, set.jwks()).unwrap();
        let peeked = peek(&token).unwrap();
        assert_eq!(peeked.str_claim("sub"), Some("s"));
        let other = KeySet::new(&[SigningKey::generate("other", 0).unwrap()]).unwrap();
        assert!(matches!(verify_with_jwks(&token, other.jwks()), Err(AssertionError::NoKey(_))));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(verify_with_jwks(&tampered, set.jwks()), Err(AssertionError::Signature(_))));
    }

    #[test]
    fn unsigned_and_symmetric_tokens_are_refused() {
        let (token, set) = signed(&json!({"exp": 2_000_000_000}));
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(format!(r#"{{"alg":"none","kid":"{kid}"}}"#)), b64(r#"{"exp":2000000000}"#.into()));
        assert!(verify_with_jwks(&none, set.jwks()).is_err());
        // HS256 "signed" with the public key material: the classic key-confusion attack.
        let n = match &set.jwks().keys[0].algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
            _ => unreachable!(),
        };
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let hs = jsonwebtoken::encode(&header, &json!({"exp": 2_000_000_000}), &jsonwebtoken::EncodingKey::from_secret(n.as_bytes())).unwrap();
        assert!(matches!(verify_with_jwks(&hs, set.jwks()), Err(AssertionError::Algorithm(_))));
    }

    #[test]
    fn time_claims_may_be_floats_and_are_checked() {
        let now = 1_000;
        assert!(check_time(&json!({"exp": 1600.5, "iat": 1000.2}), now, 0).is_ok());
        assert!(matches!(check_time(&json!({"exp": 999.0}), now, 0), Err(AssertionError::Time(_))));
        assert!(matches!(check_time(&json!({"exp": 5000, "nbf": 2000}), now, 60), Err(AssertionError::Time(_))));
        assert!(matches!(check_time(&json!({}), now, 0), Err(AssertionError::Time(_))));
    }
}
