//! The AWS-shaped half of kite: an STS that unmodified boto3, awscli and aws-iam-authenticator
//! accept. Pure domain code; the server reads the clock, the store and the request and passes them in.
//!
//! - [`arn`]: ARNs of roles, users, OIDC providers and STS sessions; canonicalisation.
//! - [`eks`]: EKS Pod Identity associations and the pod-to-role decision.
//! - [`iam`]: roles, OIDC providers, and the web-identity trust-policy decision with its explanation.
//! - [`user`]: IAM users and their long-term access keys (no secret stored).
//! - [`sts`]: temporary credentials that need no storage (secrets derived, session tokens sealed).
//! - [`sigv4`]: Signature Version 4 verification (header and presigned), canonicalised as botocore does.
//! - [`xml`]: STS response and error documents (and the JSON form aws-iam-authenticator reads).

pub mod arn;
pub mod cluster;
pub mod eks;
pub mod iam;
pub mod sigv4;
pub mod sts;
pub mod user;
pub mod xml;

pub use arn::{canonicalize, Arn, Resource};
pub use iam::{evaluate_web_identity_trust, OidcProvider, Role, TokenFacts, TrustDenial};
pub use sigv4::{SigV4Error, SignedRequest, Verified};
pub use sts::{Credentials, ErrorCode, Session, SessionIssuer, StsError};

use rand::Rng;

/// `prefix` followed by `len` random uppercase letters and digits, the shape of AWS unique IDs
/// (`AROA…` role IDs, `ASIA…` temporary access key IDs).
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}
