//! Temporary credentials for assumed-role sessions, without storing any secret.
//!
//! Security-sensitive. Everything derives from one master key held by the server:
//! - the secret access key of a session is `base64(HMAC-SHA256(K_secret, access_key_id))` cut to
//!   AWS's 40 characters, so it can be recomputed from the access key ID on every request (IAM
//!   users' long-term `AKIA…` keys derive theirs the same way; only their ID and status are stored);
//! - the session token is the session's facts in JSON, sealed with `HMAC-SHA256(K_token, payload)`,
//!   so whoever presents it can be trusted for exactly those facts until `exp`.
//!
//! `K_secret` and `K_token` are separate HMAC-derived subkeys so that a token's MAC can never double
//! as some key's secret. Consequences: a session cannot be revoked before it expires, and rotating
//! the master key ends every session at once.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

use super::arn::{validate_session_name, Arn, Resource};
use super::iam::{evaluate_web_identity_trust, OidcProvider, Role, TokenFacts, MIN_SESSION_DURATION};
use super::sigv4::{self, SignedRequest, Verified};
use super::user::{is_user_access_key_id, AccessKey, KeyStatus, User};
use crate::{Error, Result};

/// Session tokens longer than this are refused before any decoding.
const MAX_SESSION_TOKEN_LEN: usize = 8192;
/// AssumeRoleWithWebIdentity's default DurationSeconds.
pub const DEFAULT_DURATION: u32 = 3600;

/// STS error codes kite answers with, with their HTTP status and fault side as STS sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The web identity token is malformed, unsigned, or from an unknown provider (400).
    InvalidIdentityToken,
    /// The web identity token has expired (400).
    ExpiredTokenException,
    /// The session token of a signed request has expired (403; botocore then refreshes).
    ExpiredToken,
    AccessDenied,
    SignatureDoesNotMatch,
    IncompleteSignature,
    MissingAuthenticationToken,
    /// Unknown access key or an invalid/forged session token (403).
    InvalidClientTokenId,
    ValidationError,
    IdpRejectedClaim,
    InternalFailure,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidIdentityToken => "InvalidIdentityToken",
            ErrorCode::ExpiredTokenException => "ExpiredTokenException",
            ErrorCode::ExpiredToken => "ExpiredToken",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            ErrorCode::IncompleteSignature => "IncompleteSignature",
            ErrorCode::MissingAuthenticationToken => "MissingAuthenticationToken",
            ErrorCode::InvalidClientTokenId => "InvalidClientTokenId",
            ErrorCode::ValidationError => "ValidationError",
            ErrorCode::IdpRejectedClaim => "IDPRejectedClaim",
            ErrorCode::InternalFailure => "InternalFailure",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidIdentityToken | ErrorCode::ExpiredTokenException | ErrorCode::IncompleteSignature | ErrorCode::ValidationError => 400,
            ErrorCode::ExpiredToken
            | ErrorCode::AccessDenied
            | ErrorCode::SignatureDoesNotMatch
            | ErrorCode::MissingAuthenticationToken
            | ErrorCode::InvalidClientTokenId
            | ErrorCode::IdpRejectedClaim => 403,
            ErrorCode::InternalFailure => 500,
        }
    }

    /// `Sender` or `Receiver`, the `<Type>` of the error document.
    pub fn fault(self) -> &'static str {
        if self == ErrorCode::InternalFailure {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An STS error: the code clients branch on and a message people read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StsError {
    pub code: ErrorCode,
    pub message: String,
}

impl StsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> StsError {
        StsError { code, message: message.into() }
    }

    fn invalid_token() -> StsError {
        StsError::new(ErrorCode::InvalidClientTokenId, "The security token included in the request is invalid.")
    }
}

/// What AssumeRoleWithWebIdentity hands out (`Credentials` in the response).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Whole seconds, as STS reports it.
    pub expiration: OffsetDateTime,
}

impl fmt::Debug for Credentials {
    // Never print the secret or the token, even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).field("expiration", &self.expiration).finish_non_exhaustive()
    }
}

/// The facts sealed in a session token: who the caller is for GetCallerIdentity and aws-auth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    /// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub assumed_role_arn: Arn,
    pub role_id: String,
    pub session_name: String,
    /// The web identity's `sub` (SubjectFromWebIdentityToken).
    pub subject: String,
    /// The audience the provider accepted (Audience).
    pub audience: String,
    /// The OIDC provider's ARN (Provider).
    pub provider: String,
    pub expiration: OffsetDateTime,
    /// Session tags (key, value), e.g. those EKS Pod Identity sets; empty for web identity.
    pub tags: Vec<(String, String)>,
}

impl Session {
    /// `ROLEID:session`, STS's AssumedRoleId and GetCallerIdentity's UserId for a role session.
    pub fn assumed_role_id(&self) -> String {
        format!("{}:{}", self.role_id, self.session_name)
    }

    pub fn account(&self) -> &str {
        self.assumed_role_arn.account()
    }
}

/// The JSON sealed into a session token. Short field names keep tokens (and EKS tokens, which
/// embed them and must stay under 4096 bytes) small.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    akid: String,
    assumed_role_arn: String,
    role_id: String,
    session: String,
    sub: String,
    aud: String,
    provider: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<(String, String)>,
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    // HMAC accepts keys of any length, so this is always Some; callers still fail closed on None.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// True for `ASIA` + 16 uppercase letters or digits, the shape [`SessionIssuer`] issues.
pub fn is_session_access_key_id(akid: &str) -> bool {
    akid.len() == 20 && akid.starts_with("ASIA") && akid.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Mints and opens session credentials with keys derived from the server's master key.
pub struct SessionIssuer {
    secret_key: [u8; 32],
    token_key: [u8; 32],
}

impl fmt::Debug for SessionIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionIssuer { .. }")
    }
}

impl SessionIssuer {
    /// `master_key` must hold at least 32 bytes of secret randomness.
    pub fn new(master_key: &[u8]) -> Result<SessionIssuer> {
        if master_key.len() < 32 {
            return Err(Error::InvalidArgument(format!("the STS master key has {} bytes; it needs at least 32 random bytes", master_key.len())));
        }
        let derive = |label: &str| hmac_sha256(master_key, label.as_bytes());
        match (derive("kite/sts/secret-access-key/v1"), derive("kite/sts/session-token/v1")) {
            (Some(secret_key), Some(token_key)) => Ok(SessionIssuer { secret_key, token_key }),
            _ => Err(Error::InvalidArgument("the STS master key cannot be used as an HMAC key".into())),
        }
    }

    /// The secret access key of a session access key ID, or `None` for IDs kite never issues.
    /// Knowing an ID does not reveal its secret: that needs the master key.
    pub fn secret_for(&self, access_key_id: &str) -> Option<String> {
        is_session_access_key_id(access_key_id).then(|| self.derive_secret(access_key_id)).flatten()
    }

    /// The secret of an IAM user's long-term key (`AKIA…`), derived the same way from its ID, so
    /// kite stores no secret for it. Shown once at creation; recomputed on every signed request.
    pub fn user_key_secret(&self, key: &AccessKey) -> Option<String> {
        is_user_access_key_id(&key.access_key_id).then(|| self.derive_secret(&key.access_key_id)).flatten()
    }

    fn derive_secret(&self, access_key_id: &str) -> Option<String> {
        let mac = hmac_sha256(&self.secret_key, access_key_id.as_bytes())?;
        let mut secret = STANDARD.encode(mac);
        secret.truncate(40);
        Some(secret)
    }

    /// Mints credentials for a session of `role` after STS's input checks (RoleSessionName,
    /// DurationSeconds) and the provider's (issuer, audience). It does NOT evaluate the role's
    /// trust policy: [`SessionIssuer::assume_role_with_web_identity`] is the whole decision.
    pub fn issue(
        &self,
        role: &Role,
        session_name: &str,
        provider: &OidcProvider,
        facts: &TokenFacts,
        duration_seconds: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(Credentials, Session), StsError> {
        check_session_name(session_name)?;
        let duration = check_duration(duration_seconds, role)?;
        let audience = provider.accept_token(facts)?;
        self.mint(role, session_name, facts.sub.clone(), audience, provider.arn.to_string(), Vec::new(), duration, now)
    }

    /// Credentials for a session of `role` that the AWS service principal `service` assumes on a
    /// caller's behalf, tagged with `tags` (EKS Pod Identity: `pods.eks.amazonaws.com` for a pod).
    /// The caller has decided that the role's trust policy lets `service` assume and tag it (see
    /// [`super::iam::evaluate_service_trust`]); this applies STS's input checks and mints.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_for_service(
        &self,
        role: &Role,
        session_name: &str,
        service: &str,
        subject: &str,
        tags: Vec<(String, String)>,
        duration_seconds: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(Credentials, Session), StsError> {
        check_session_name(session_name)?;
        let duration = check_duration(duration_seconds, role)?;
        self.mint(role, session_name, subject.into(), service.into(), service.into(), tags, duration, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn mint(
        &self,
        role: &Role,
        session_name: &str,
        subject: String,
        audience: String,
        provider: String,
        tags: Vec<(String, String)>,
        duration: u32,
        now: OffsetDateTime,
    ) -> Result<(Credentials, Session), StsError> {
        let assumed_role_arn = Arn::assumed_role(&role.arn, session_name).map_err(|e| StsError::new(ErrorCode::ValidationError, e.to_string()))?;
        let expiration = (now + Duration::seconds(i64::from(duration))).replace_nanosecond(0).unwrap_or(now);
        let access_key_id = super::random_id("ASIA", 16);
        let internal = || StsError::new(ErrorCode::InternalFailure, "could not seal the session");
        let secret_access_key = self.secret_for(&access_key_id).ok_or_else(internal)?;
        let session = Session {
            access_key_id: access_key_id.clone(),
            assumed_role_arn,
            role_id: role.role_id.clone(),
            session_name: session_name.into(),
            subject,
            audience,
            provider,
            expiration,
            tags,
        };
        let session_token = self.seal(&session).ok_or_else(internal)?;
        Ok((Credentials { access_key_id, secret_access_key, session_token, expiration }, session))
    }

    /// AssumeRoleWithWebIdentity for a token whose signature the caller has verified and whose
    /// issuer resolved to `provider` (see [`super::iam::find_provider`]): input checks, the
    /// provider's audience check, the role's trust policy (AccessDenied with its explanation),
    /// then [`SessionIssuer::issue`].
    pub fn assume_role_with_web_identity(
        &self,
        role: &Role,
        session_name: &str,
        provider: &OidcProvider,
        facts: &TokenFacts,
        duration_seconds: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(Credentials, Session), StsError> {
        check_session_name(session_name)?;
        check_duration(duration_seconds, role)?;
        provider.accept_token(facts)?;
        evaluate_web_identity_trust(&role.trust_policy, provider, facts).map_err(|d| StsError::new(ErrorCode::AccessDenied, d.to_string()))?;
        self.issue(role, session_name, provider, facts, duration_seconds, now)
    }

    fn seal(&self, s: &Session) -> Option<String> {
        let payload = Payload {
            v: 1,
            akid: s.access_key_id.clone(),
            assumed_role_arn: s.assumed_role_arn.to_string(),
            role_id: s.role_id.clone(),
            session: s.session_name.clone(),
            sub: s.subject.clone(),
            aud: s.audience.clone(),
            provider: s.provider.clone(),
            exp: s.expiration.unix_timestamp(),
            tags: s.tags.clone(),
        };
        let json = serde_json::to_vec(&payload).ok()?;
        let mac = hmac_sha256(&self.token_key, &json)?;
        Some(format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), URL_SAFE_NO_PAD.encode(mac)))
    }

    /// The session a token stands for: InvalidClientTokenId unless kite sealed it, ExpiredToken
    /// once `now` reaches its expiration. The MAC is checked before anything in it is believed.
    pub fn open(&self, session_token: &str, now: OffsetDateTime) -> Result<Session, StsError> {
        if session_token.len() > MAX_SESSION_TOKEN_LEN {
            return Err(StsError::invalid_token());
        }
        let (body, tag) = session_token.split_once('.').ok_or_else(StsError::invalid_token)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| StsError::invalid_token())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StsError::invalid_token())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.token_key).map_err(|_| StsError::invalid_token())?;
        mac.update(&json);
        mac.verify_slice(&tag).map_err(|_| StsError::invalid_token())?;
        let p: Payload = serde_json::from_slice(&json).map_err(|_| StsError::invalid_token())?;
        let assumed_role_arn = Arn::parse(&p.assumed_role_arn).map_err(|_| StsError::invalid_token())?;
        let expiration = OffsetDateTime::from_unix_timestamp(p.exp).map_err(|_| StsError::invalid_token())?;
        if p.v != 1 || !matches!(assumed_role_arn.resource(), Resource::AssumedRole { .. }) {
            return Err(StsError::invalid_token());
        }
        if now >= expiration {
            return Err(StsError::new(ErrorCode::ExpiredToken, "The security token included in the request is expired"));
        }
        Ok(Session {
            access_key_id: p.akid,
            assumed_role_arn,
            role_id: p.role_id,
            session_name: p.session,
            subject: p.sub,
            audience: p.aud,
            provider: p.provider,
            expiration,
            tags: p.tags,
        })
    }

    /// Authenticates a SigV4-signed STS request made with kite session credentials (what boto3
    /// and `aws eks get-token` send): signature, then the session token, which must belong to the
    /// access key that signed.
    pub fn authenticate(&self, req: &SignedRequest, now: OffsetDateTime) -> Result<(Verified, Session), StsError> {
        self.authenticate_for(req, sigv4::SERVICE, now)
    }

    /// [`SessionIssuer::authenticate`] for a request signed for another service (`eks` for kite's EKS API).
    pub fn authenticate_for(&self, req: &SignedRequest, service: &str, now: OffsetDateTime) -> Result<(Verified, Session), StsError> {
        let verified = sigv4::verify_for_service(req, service, now, |akid| self.secret_for(akid)).map_err(|e| StsError::new(e.code(), e.to_string()))?;
        let token = verified.security_token.as_deref().ok_or_else(StsError::invalid_token)?;
        let session = self.open(token, now)?;
        if session.access_key_id != verified.access_key_id {
            return Err(StsError::invalid_token());
        }
        Ok((verified, session))
    }

    /// Authenticates a request signed with an IAM user's long-term key `access_key_id`. `stored`
    /// is what the store holds for that key and its owner (`None` when either is gone: a deleted
    /// key or user stops working at once). An inactive key is refused, and so is a session token,
    /// which long-term keys never carry.
    pub fn authenticate_user(
        &self,
        req: &SignedRequest,
        now: OffsetDateTime,
        access_key_id: &str,
        stored: Option<(&AccessKey, &User)>,
    ) -> Result<StsCaller, StsError> {
        self.authenticate_user_for(req, sigv4::SERVICE, now, access_key_id, stored)
    }

    /// [`SessionIssuer::authenticate_user`] for a request signed for another service.
    pub fn authenticate_user_for(
        &self,
        req: &SignedRequest,
        service: &str,
        now: OffsetDateTime,
        access_key_id: &str,
        stored: Option<(&AccessKey, &User)>,
    ) -> Result<StsCaller, StsError> {
        let invalid = |why: String| StsError::new(ErrorCode::InvalidClientTokenId, format!("The security token included in the request is invalid: {why}"));
        let Some((key, user)) = stored else {
            return Err(invalid(format!(
                "access key {access_key_id} does not exist (deleted, or never issued by this kite; kite iam access-key list --user-name NAME)"
            )));
        };
        if key.status != KeyStatus::Active {
            return Err(invalid(format!("access key {access_key_id} of user {} is {}", user.user_name, key.status)));
        }
        let verified = sigv4::verify_for_service(req, service, now, |akid| if akid == key.access_key_id { self.user_key_secret(key) } else { None })
            .map_err(|e| StsError::new(e.code(), e.to_string()))?;
        if verified.security_token.is_some() {
            return Err(invalid("long-term access keys sign without a session token; unset AWS_SESSION_TOKEN".into()));
        }
        Ok(StsCaller::User { user: user.clone(), access_key_id: key.access_key_id.clone() })
    }
}

/// Who signed an STS request: a role session (stateless `ASIA…` credentials) or an IAM user (a
/// stored `AKIA…` key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsCaller {
    Session(Session),
    User { user: User, access_key_id: String },
}

impl StsCaller {
    /// The caller's ARN as GetCallerIdentity reports it (assumed-role ARN for a session).
    pub fn arn(&self) -> &Arn {
        match self {
            StsCaller::Session(s) => &s.assumed_role_arn,
            StsCaller::User { user, .. } => &user.arn,
        }
    }

    /// GetCallerIdentity's `UserId`: `ROLEID:session` or the user's `AIDA…` ID.
    pub fn user_id(&self) -> String {
        match self {
            StsCaller::Session(s) => s.assumed_role_id(),
            StsCaller::User { user, .. } => user.user_id.clone(),
        }
    }

    /// The role's or user's unique ID, the part aws-iam-authenticator puts in a TokenReview `uid`.
    pub fn stable_id(&self) -> &str {
        match self {
            StsCaller::Session(s) => &s.role_id,
            StsCaller::User { user, .. } => &user.user_id,
        }
    }

    pub fn access_key_id(&self) -> &str {
        match self {
            StsCaller::Session(s) => &s.access_key_id,
            StsCaller::User { access_key_id, .. } => access_key_id,
        }
    }

    pub fn session_name(&self) -> Option<&str> {
        match self {
            StsCaller::Session(s) => Some(&s.session_name),
            StsCaller::User { .. } => None,
        }
    }
}

fn check_session_name(name: &str) -> Result<(), StsError> {
    validate_session_name(name).map_err(|_| {
        let rule = if name.len() < 2 || name.len() > 64 {
            "Member must have length between 2 and 64"
        } else {
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        };
        StsError::new(
            ErrorCode::ValidationError,
            format!("1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: {rule}"),
        )
    })
}

fn check_duration(requested: Option<u32>, role: &Role) -> Result<u32, StsError> {
    let max = role.max_session_duration;
    let d = requested.unwrap_or(DEFAULT_DURATION.min(max));
    let range = format!("this role allows DurationSeconds from {MIN_SESSION_DURATION} to {max}");
    if d < MIN_SESSION_DURATION {
        return Err(StsError::new(
            ErrorCode::ValidationError,
            format!("1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {MIN_SESSION_DURATION} ({range})"),
        ));
    }
    if d > max {
        return Err(StsError::new(
            ErrorCode::ValidationError,
            format!("The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({range}; raise the role's max session duration up to 43200 to allow more)"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::xml;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 12:00:00.5 UTC);

    fn issuer() -> SessionIssuer {
        SessionIssuer::new(&[7u8; 32]).unwrap()
    }

    fn provider() -> OidcProvider {
        OidcProvider::new("123456789012", "https://oidc.example.com/id/ABC", vec!["sts.amazonaws.com".into()], vec![]).unwrap()
    }

    fn role(max: Option<u32>) -> Role {
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.example.com/id/ABC:sub": "system:serviceaccount:default:app"}}
        }]});
        Role::new("123456789012", "app", Some("/team/"), policy, max, NOW).unwrap()
    }

    fn facts(sub: &str) -> TokenFacts {
        TokenFacts { iss: "https://oidc.example.com/id/ABC".into(), sub: sub.into(), aud: vec!["sts.amazonaws.com".into()], ..Default::default() }
    }

    fn assume(duration: Option<u32>) -> Result<(Credentials, Session), StsError> {
        issuer().assume_role_with_web_identity(&role(None), "botocore-session-1", &provider(), &facts("system:serviceaccount:default:app"), duration, NOW)
    }

    #[test]
    fn issued_credentials_have_aws_shapes_and_whole_second_expiry() {
        let (c, s) = assume(None).unwrap();
        assert!(is_session_access_key_id(&c.access_key_id), "{}", c.access_key_id);
        assert_eq!(c.secret_access_key.len(), 40);
        assert_eq!(c.expiration, datetime!(2024-05-01 13:00:00 UTC));
        assert_eq!(s.assumed_role_arn.to_string(), "arn:aws:sts::123456789012:assumed-role/app/botocore-session-1");
        assert_eq!(s.assumed_role_id(), format!("{}:botocore-session-1", s.role_id));
        assert!(s.role_id.starts_with("AROA"));
        assert_eq!(s.audience, "sts.amazonaws.com");
        assert_eq!(s.provider, "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC");
        assert_eq!(s.account(), "123456789012");
        assert!(!format!("{c:?}").contains(&c.secret_access_key));
    }

    #[test]
    fn the_secret_is_recomputed_from_the_access_key_id_alone() {
        let (c, _) = assume(None).unwrap();
        assert_eq!(issuer().secret_for(&c.access_key_id).as_deref(), Some(c.secret_access_key.as_str()));
        let other = SessionIssuer::new(&[8u8; 32]).unwrap();
        assert_ne!(other.secret_for(&c.access_key_id), Some(c.secret_access_key));
        assert_eq!(issuer().secret_for("AKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(issuer().secret_for("ASIAlowercase0000000"), None);
    }

    #[test]
    fn a_session_token_opens_to_the_session_it_was_issued_for() {
        let (c, s) = assume(Some(900)).unwrap();
        assert_eq!(issuer().open(&c.session_token, NOW).unwrap(), Session { expiration: c.expiration, ..s });
    }

    #[test]
    fn an_expired_session_token_is_expired_token_and_a_forged_one_is_invalid() {
        let (c, _) = assume(Some(900)).unwrap();
        let e = issuer().open(&c.session_token, c.expiration).unwrap_err();
        assert_eq!(e.code, ErrorCode::ExpiredToken);
        let e = SessionIssuer::new(&[8u8; 32]).unwrap().open(&c.session_token, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientTokenId);
        for bad in ["", "abc", "a.b", "..", &"x".repeat(9000)] {
            assert_eq!(issuer().open(bad, NOW).unwrap_err().code, ErrorCode::InvalidClientTokenId);
        }
    }

    #[test]
    fn a_payload_edited_to_extend_expiry_no_longer_verifies() {
        let (c, _) = assume(Some(900)).unwrap();
        let (body, tag) = c.session_token.split_once('.').unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        json["exp"] = json!(4_000_000_000i64);
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap()));
        assert_eq!(issuer().open(&forged, NOW).unwrap_err().code, ErrorCode::InvalidClientTokenId);
    }

    #[test]
    fn durations_outside_the_role_range_are_validation_errors_naming_the_range() {
        let e = assume(Some(899)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.contains("from 900 to 3600"), "{}", e.message);
        let e = assume(Some(3601)).unwrap_err();
        assert!(e.message.contains("exceeds the MaxSessionDuration") && e.message.contains("from 900 to 3600"), "{}", e.message);
        let long = issuer().issue(&role(Some(43200)), "s1", &provider(), &facts("x"), Some(43200), NOW).unwrap();
        assert_eq!(long.0.expiration, datetime!(2024-05-02 00:00:00 UTC));
    }

    #[test]
    fn session_names_follow_sts_rules() {
        let r = role(None);
        let p = provider();
        for bad in ["a", "has space", &"x".repeat(65), "slash/y"] {
            let e = issuer().issue(&r, bad, &p, &facts("x"), None, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationError, "{bad}");
            assert!(e.message.contains("roleSessionName"), "{}", e.message);
        }
        assert!(issuer().issue(&r, "user@example.com,=+.-_", &p, &facts("x"), None, NOW).is_ok());
    }

    #[test]
    fn a_token_the_trust_policy_refuses_is_access_denied_with_the_reason() {
        let e = issuer().assume_role_with_web_identity(&role(None), "s1", &provider(), &facts("system:serviceaccount:default:other"), None, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDenied);
        assert!(e.message.contains("but the token's sub is \"system:serviceaccount:default:other\""), "{}", e.message);
        let mut f = facts("system:serviceaccount:default:app");
        f.aud = vec!["nope".into()];
        let e = issuer().assume_role_with_web_identity(&role(None), "s1", &provider(), &f, None, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidIdentityToken);
    }

    fn signed_by(akid: &str, secret: &str, token: Option<&str>) -> SignedRequest {
        let mut req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![("Host".into(), "kite.test".into()), ("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())],
            body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
            ..Default::default()
        };
        let signer = sigv4::Signer { access_key_id: akid, secret_access_key: secret, session_token: token, region: "us-east-1", service: "sts" };
        sigv4::sign(&mut req, &signer, NOW);
        req
    }

    #[test]
    fn a_user_key_signs_with_its_derived_secret_until_it_is_gone_or_inactive() {
        let user = User::new("123456789012", "6248", None, NOW).unwrap();
        let key = AccessKey::new(&user, NOW);
        let secret = issuer().user_key_secret(&key).unwrap();
        assert_eq!(secret.len(), 40);
        assert_ne!(SessionIssuer::new(&[8u8; 32]).unwrap().user_key_secret(&key), Some(secret.clone()), "the secret depends on the master key");
        assert_eq!(issuer().secret_for(&key.access_key_id), None, "a user key is not a session key");

        let req = signed_by(&key.access_key_id, &secret, None);
        assert_eq!(sigv4::claimed_access_key_id(&req).as_deref(), Some(key.access_key_id.as_str()));
        let who = issuer().authenticate_user(&req, NOW, &key.access_key_id, Some((&key, &user))).unwrap();
        let id = xml::CallerIdentity::of_caller(&who);
        assert_eq!((id.arn.as_str(), id.user_id.as_str(), id.account.as_str()), ("arn:aws:iam::123456789012:user/6248", user.user_id.as_str(), "123456789012"));
        assert_eq!((who.session_name(), who.stable_id(), who.access_key_id()), (None, user.user_id.as_str(), key.access_key_id.as_str()));

        let gone = issuer().authenticate_user(&req, NOW, &key.access_key_id, None).unwrap_err();
        assert_eq!(gone.code, ErrorCode::InvalidClientTokenId);
        assert!(gone.message.contains("does not exist"), "{}", gone.message);
        let off = AccessKey { status: KeyStatus::Inactive, ..key.clone() };
        let e = issuer().authenticate_user(&req, NOW, &key.access_key_id, Some((&off, &user))).unwrap_err();
        assert!(e.message.contains("is Inactive"), "{}", e.message);
        let wrong = signed_by(&key.access_key_id, &"x".repeat(40), None);
        assert_eq!(issuer().authenticate_user(&wrong, NOW, &key.access_key_id, Some((&key, &user))).unwrap_err().code, ErrorCode::SignatureDoesNotMatch);
        let with_token = signed_by(&key.access_key_id, &secret, Some("tok"));
        let e = issuer().authenticate_user(&with_token, NOW, &key.access_key_id, Some((&key, &user))).unwrap_err();
        assert!(e.message.contains("AWS_SESSION_TOKEN"), "{}", e.message);
    }

    #[test]
    fn a_service_session_carries_its_tags_sealed_in_the_token() {
        let tags = vec![("kubernetes-namespace".to_string(), "default".to_string()), ("kubernetes-pod-name".to_string(), "app-1".to_string())];
        let (c, s) = issuer()
            .issue_for_service(&role(None), "eks-prod-app-1-x", "pods.eks.amazonaws.com", "system:serviceaccount:default:app", tags.clone(), None, NOW)
            .unwrap();
        assert_eq!(s.assumed_role_arn.to_string(), "arn:aws:sts::123456789012:assumed-role/app/eks-prod-app-1-x");
        let opened = issuer().open(&c.session_token, NOW).unwrap();
        assert_eq!((opened.tags, opened.provider.as_str()), (tags, "pods.eks.amazonaws.com"));
        assert_eq!(
            issuer().issue_for_service(&role(None), "x", "pods.eks.amazonaws.com", "s", vec![], None, NOW).unwrap_err().code,
            ErrorCode::ValidationError
        );
    }

    #[test]
    fn a_short_master_key_is_refused() {
        assert!(SessionIssuer::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn error_codes_carry_sts_status_and_fault() {
        assert_eq!(ErrorCode::IdpRejectedClaim.as_str(), "IDPRejectedClaim");
        assert_eq!(ErrorCode::AccessDenied.http_status(), 403);
        assert_eq!(ErrorCode::ValidationError.http_status(), 400);
        assert_eq!(ErrorCode::InternalFailure.fault(), "Receiver");
        assert_eq!(ErrorCode::ExpiredTokenException.fault(), "Sender");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn any_single_byte_change_to_a_session_token_is_rejected(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
                let (c, _) = assume(None).unwrap();
                let mut t = c.session_token.into_bytes();
                let i = pos.index(t.len());
                prop_assume!(t[i] != byte);
                t[i] = byte;
                // Padding-free base64 is decoded strictly (no stray trailing bits), so every change
                // is either undecodable or changes the sealed bytes.
                let t = String::from_utf8_lossy(&t).into_owned();
                prop_assert!(issuer().open(&t, NOW).is_err(), "a changed token opened: {}", t);
            }
        }
    }
}
