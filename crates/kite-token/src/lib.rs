//! Signing keys, the JWKS that publishes them, and access-token minting and verification.
//!
//! Security-sensitive. Keys are RS256 (2048-bit) as Entra ID uses; each comes with a self-signed
//! certificate so the JWKS can carry `x5c`/`x5t` like Entra's. Verification pins the algorithm
//! to RS256 and looks the key up by `kid`, so `alg: none` or HS256-with-the-public-key tokens fail.

// Request paths answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod assertion;

pub use jsonwebtoken::jwk::JwkSet;

use std::collections::HashMap;

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha1::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("signing key: {0}")]
    Key(String),
    /// Signed by a published key for the right audience and issuer, but past its `exp` (unix time):
    /// the one refusal a client answers by getting a new token.
    #[error("token rejected: the token expired at {0} (unix time)")]
    Expired(i64),
    #[error("token rejected: {0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A signing key as stored: private key and certificate in PEM. Persisted by the caller.
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub created_at: i64,
    pub private_key_pem: String,
    pub certificate_pem: String,
    pub certificate_der_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("created_at", &self.created_at).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh RSA-2048 key with a self-signed certificate; `kid` and `x5t` are the certificate's
    /// SHA-1 thumbprint in base64url, as Entra ID names its keys.
    pub fn generate(issuer_name: &str, now_unix: i64) -> Result<SigningKey> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| Error::Key(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| Error::Key(e.to_string()))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, issuer_name);
        let cert = params.self_signed(&key).map_err(|e| Error::Key(e.to_string()))?;
        let der = cert.der().to_vec();
        Ok(SigningKey {
            kid: thumbprint(&der),
            created_at: now_unix,
            private_key_pem: key.serialize_pem(),
            certificate_pem: cert.pem(),
            certificate_der_b64: base64::engine::general_purpose::STANDARD.encode(&der),
        })
    }
}

/// base64url SHA-1 of a DER certificate (JWK `x5t`).
pub fn thumbprint(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der))
}

/// Keys that may be deleted: superseded (a newer key exists) longer ago than any token signed with
/// them can live, plus `grace` for clock skew. The newest key is never retired.
pub fn retired(keys: &[SigningKey], now_unix: i64, token_lifetime: i64, grace: i64) -> Vec<String> {
    let mut by_age: Vec<&SigningKey> = keys.iter().collect();
    by_age.sort_by_key(|k| (k.created_at, k.kid.clone()));
    by_age.windows(2).filter(|pair| now_unix > pair[1].created_at + token_lifetime + grace).map(|pair| pair[0].kid.clone()).collect()
}

/// The claims of a kite access token, named as Entra ID v2 names them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub azp: String,
    pub idtyp: String,
    pub ver: String,
}

/// The key that signs: parsed once, with its JWS header already encoded (it is the same for
/// every token).
struct Signer {
    kid: String,
    key: aws_lc_rs::signature::RsaKeyPair,
    header_b64: String,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl Signer {
    fn new(kid: &str, pem: &str) -> Result<Signer> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::PrivateKeyDer;
        let bad = |e: String| Error::Key(format!("{kid}: {e}"));
        let key = match PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))? {
            PrivateKeyDer::Pkcs8(der) => aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => aws_lc_rs::signature::RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err(bad("not an RSA private key".into())),
        }
        .map_err(|e| bad(e.to_string()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.x5t = Some(kid.to_string());
        let header_b64 = b64url(&serde_json::to_vec(&header).map_err(|e| bad(e.to_string()))?);
        Ok(Signer { kid: kid.to_string(), key, header_b64, rng: aws_lc_rs::rand::SystemRandom::new() })
    }

    /// JWS compact serialisation, RS256.
    fn sign(&self, claims: &[u8]) -> Result<String> {
        let message = format!("{}.{}", self.header_b64, b64url(claims));
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &self.rng, message.as_bytes(), &mut signature)
            .map_err(|e| Error::Key(format!("signing with {}: {e}", self.kid)))?;
        Ok(format!("{message}.{}", b64url(&signature)))
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The keys in force: the newest signs, all verify and are published.
pub struct KeySet {
    signer: Signer,
    verifiers: HashMap<String, DecodingKey>,
    jwks: JwkSet,
}

impl KeySet {
    /// Builds from stored keys; the one created last signs.
    pub fn new(keys: &[SigningKey]) -> Result<KeySet> {
        let newest = keys.iter().max_by_key(|k| (k.created_at, k.kid.clone())).ok_or_else(|| Error::Key("no signing key".into()))?;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        let mut signer = None;
        for k in keys {
            let enc = EncodingKey::from_rsa_pem(k.private_key_pem.as_bytes()).map_err(|e| Error::Key(format!("{}: {e}", k.kid)))?;
            let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).map_err(|e| Error::Key(e.to_string()))?;
            jwk.common.key_id = Some(k.kid.clone());
            jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
            jwk.common.x509_sha1_fingerprint = Some(k.kid.clone());
            jwk.common.x509_chain = Some(vec![k.certificate_der_b64.clone()]);
            verifiers.insert(k.kid.clone(), DecodingKey::from_jwk(&jwk).map_err(|e| Error::Key(e.to_string()))?);
            jwks.push(jwk);
            if k.kid == newest.kid {
                signer = Some(Signer::new(&k.kid, &k.private_key_pem)?);
            }
        }
        let signer = signer.ok_or_else(|| Error::Key("no signing key".into()))?;
        Ok(KeySet { signer, verifiers, jwks: JwkSet { keys: jwks } })
    }

    pub fn signing_kid(&self) -> &str {
        &self.signer.kid
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String> {
        self.signer.sign(&serde_json::to_vec(claims).map_err(|e| Error::Key(e.to_string()))?)
    }

    /// Verifies signature (RS256 only, key by `kid`), `exp`/`nbf` at `now` with no leeway, `aud` and
    /// `iss` (one of `issuers`).
    pub fn verify(&self, token: &str, audiences: &[&str], issuers: &[&str], now_unix: i64) -> Result<AccessClaims> {
        let c = self.verify_ignoring_time(token, audiences, issuers)?;
        if now_unix >= c.exp {
            return Err(Error::Expired(c.exp));
        }
        if now_unix < c.nbf {
            return Err(Error::Invalid("the token is not valid yet".into()));
        }
        Ok(c)
    }

    /// [`KeySet::verify`] without the time checks, for callers that explain expiry in their own words.
    pub fn verify_ignoring_time(&self, token: &str, audiences: &[&str], issuers: &[&str]) -> Result<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Error::Invalid(format!("malformed token: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(Error::Invalid(format!("algorithm {:?} is not accepted; kite signs with RS256", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| Error::Invalid("the token names no signing key (kid)".into()))?;
        let key = self.verifiers.get(&kid).ok_or_else(|| Error::Invalid(format!("signing key '{kid}' is not (or no longer) published")))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(audiences);
        v.set_issuer(issuers);
        // Time is checked below against the caller's clock rather than the library's.
        v.validate_nbf = false;
        v.validate_exp = false;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &v).map_err(|e| rejection(&e, audiences, issuers))?;
        Ok(data.claims)
    }
}

/// Which check a token failed, in words: callers relay it, so each reason must be its own.
fn rejection(e: &jsonwebtoken::errors::Error, audiences: &[&str], issuers: &[&str]) -> Error {
    use jsonwebtoken::errors::ErrorKind;
    Error::Invalid(match e.kind() {
        ErrorKind::InvalidAudience => format!("its audience (aud) is not one this API accepts ({})", audiences.join(", ")),
        ErrorKind::InvalidIssuer => format!("its issuer (iss) is not {}", issuers.join(" or ")),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no '{claim}' claim"),
        _ => format!("it could not be decoded: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            aud: "https://management.kite.local/".into(),
            iss: "https://kite/t/v2.0".into(),
            iat: now,
            nbf: now,
            exp: now + 3600,
            tid: "t".into(),
            oid: "o".into(),
            sub: "o".into(),
            appid: "a".into(),
            azp: "a".into(),
            idtyp: "app".into(),
            ver: "2.0".into(),
        }
    }

    #[test]
    fn tokens_verify_until_expiry_and_only_with_published_keys() {
        let now = 1_800_000_000;
        let k1 = SigningKey::generate("kite", now).unwrap();
        let set = KeySet::new(std::slice::from_ref(&k1)).unwrap();
        let token = set.sign(&claims(now)).unwrap();
        let aud = ["https://management.kite.local/"];
        assert_eq!(set.verify(&token, &aud, &["https://kite/t/v2.0"], now + 10).unwrap().oid, "o");
        // Each refusal names its own reason, not the last check tried.
        let reason = |r: Result<AccessClaims>| r.unwrap_err().to_string();
        assert!(reason(set.verify(&token, &aud, &["https://kite/t/v2.0"], now + 3600)).contains("expired"));
        assert!(reason(set.verify(&token, &aud, &["https://kite/t/v2.0"], now - 1)).contains("not valid yet"));
        assert!(reason(set.verify(&token, &["other"], &["https://kite/t/v2.0"], now)).contains("audience (aud) is not one this API accepts (other)"));
        assert!(reason(set.verify(&token, &aud, &["https://elsewhere", "https://v1"], now)).contains("issuer (iss) is not https://elsewhere or https://v1"));
        assert_eq!(set.verify(&token, &aud, &["https://v1", "https://kite/t/v2.0"], now + 10).unwrap().oid, "o", "any listed issuer");

        // Rotation: a new key signs; the old one still verifies while published, not after removal.
        let k2 = SigningKey::generate("kite", now + 1).unwrap();
        let both = KeySet::new(&[k1.clone(), k2.clone()]).unwrap();
        assert_eq!(both.signing_kid(), k2.kid);
        assert_eq!(both.jwks().keys.len(), 2);
        assert!(both.verify(&token, &aud, &["https://kite/t/v2.0"], now).is_ok());
        let only_new = KeySet::new(&[k2]).unwrap();
        assert!(only_new.verify(&token, &aud, &["https://kite/t/v2.0"], now).unwrap_err().to_string().contains("not (or no longer) published"));
    }

    #[test]
    fn a_key_is_retired_only_once_every_token_it_signed_has_expired() {
        let k = |kid: &str, created_at| SigningKey {
            kid: kid.into(),
            created_at,
            private_key_pem: String::new(),
            certificate_pem: String::new(),
            certificate_der_b64: String::new(),
        };
        let keys = [k("old", 0), k("new", 1000)];
        assert!(retired(&keys, 1000 + 3600 + 300, 3600, 300).is_empty());
        assert_eq!(retired(&keys, 1000 + 3600 + 301, 3600, 300), vec!["old".to_string()]);
        assert!(retired(&keys[1..], 1_000_000, 3600, 300).is_empty(), "the signing key stays");
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let now = 1_800_000_000;
        let set = KeySet::new(&[SigningKey::generate("kite", now).unwrap()]).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&serde_json::to_string(&claims(now)).unwrap()));
        assert!(set.verify(&none, &["https://management.kite.local/"], &["https://kite/t/v2.0"], now).is_err());
    }
}
