//! AWS Signature Version 4 verification for kite's STS: `Authorization`-header requests (boto3)
//! and presigned URLs (`aws eks get-token`).
//!
//! The canonical form follows botocore's signer exactly, because that is what real clients sign:
//! path dot-segments removed and URI-encoded (again) keeping `/`; query pairs RFC 3986-encoded and
//! sorted by key then value; header names lowercased, values trimmed with inner whitespace runs
//! collapsed, repeated headers joined with `,`; payload hash from `x-amz-content-sha256` or the body.
//! Security-sensitive: signatures are compared in constant time and every refusal is typed.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::sts::ErrorCode;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service kite verifies signatures for.
pub const SERVICE: &str = "sts";
/// How far a header-signed request's date may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// SigV4's upper bound on X-Amz-Expires (one week).
pub const MAX_PRESIGN_EXPIRES: u64 = 604_800;
/// STS ignores X-Amz-Expires and accepts a presigned URL for 15 minutes after X-Amz-Date;
/// `aws eks get-token` relies on it (it signs with X-Amz-Expires=60 and lets kubectl reuse the
/// token for 14 minutes). kite honours the longer of this and X-Amz-Expires.
pub const STS_PRESIGNED_VALIDITY: Duration = Duration::minutes(15);
/// SHA-256 of the empty string, the payload hash of a body-less request.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Headers botocore never signs (hop-by-hop, tracing, user agent), plus the signature itself.
const UNSIGNED_HEADERS: [&str; 15] = [
    "authorization",
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// A request as the server received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedRequest {
    /// As sent (`GET`, `POST`); HTTP methods are case-sensitive.
    pub method: String,
    /// The path as on the wire (still percent-encoded), without the query.
    pub path: String,
    /// Query parameters, already percent-decoded, in any order; repeated keys allowed.
    pub query: Vec<(String, String)>,
    /// Header names in any case; repeated headers allowed.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes (for STS, the form-encoded parameters).
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn query_values(&self, name: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// `DATE/REGION/SERVICE/aws4_request`, the part of the credential after the access key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialScope {
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

impl fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// A request whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub scope: CredentialScope,
    pub signed_at: OffsetDateTime,
    /// Lowercase names of the signed headers (e.g. to require `x-k8s-aws-id`).
    pub signed_headers: Vec<String>,
    /// `X-Amz-Security-Token` (header or query), for the caller to open and match to the key.
    pub security_token: Option<String>,
    pub presigned: bool,
}

impl Verified {
    pub fn is_header_signed(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Why a signature was refused. `code()` gives the STS error code to answer with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Request is missing Authentication Token: sign it with AWS Signature Version 4 (an Authorization header or X-Amz-* query parameters)")]
    MissingAuthentication,
    /// The signature's parts are missing or malformed; the message names which.
    #[error("{0}")]
    Incomplete(String),
    #[error("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")]
    MissingDate,
    /// The credential scope names another date, service or terminator.
    #[error("{0}")]
    InvalidScope(String),
    /// Signed too long ago (header: more than 5 minutes; presigned: past its validity).
    #[error("{0}")]
    Expired(String),
    /// Signed more than 5 minutes in the future.
    #[error("{0}")]
    NotYetValid(String),
    #[error("X-Amz-Expires must be less than a week (in seconds) that is 604800, got {0}")]
    ExpiresTooLong(u64),
    #[error("The security token included in the request is invalid: access key ID '{0}' is unknown.")]
    UnknownAccessKey(String),
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed: the header says {claimed}, the body hashes to {actual}.")]
    BodyHashMismatch { claimed: String, actual: String },
    /// The recomputed signature differs; both intermediate strings are included, as AWS does, so
    /// a client author can diff them against their own.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.{}\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
        hints.iter().map(|h| format!(" {h}")).collect::<String>()
    )]
    SignatureDoesNotMatch { canonical_request: String, string_to_sign: String, hints: Vec<String> },
}

impl SigV4Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            SigV4Error::MissingAuthentication => ErrorCode::MissingAuthenticationToken,
            SigV4Error::Incomplete(_) | SigV4Error::MissingDate | SigV4Error::ExpiresTooLong(_) => ErrorCode::IncompleteSignature,
            SigV4Error::UnknownAccessKey(_) => ErrorCode::InvalidClientTokenId,
            SigV4Error::InvalidScope(_)
            | SigV4Error::Expired(_)
            | SigV4Error::NotYetValid(_)
            | SigV4Error::BodyHashMismatch { .. }
            | SigV4Error::SignatureDoesNotMatch { .. } => ErrorCode::SignatureDoesNotMatch,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Canonicalisation
// ------------------------------------------------------------------------------------------------

/// RFC 3986 percent-encoding: everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`) becomes
/// `%XX` with uppercase hex.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986 dot-segment removal plus collapsing of empty segments, as botocore does; `""` is `/`.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() { "/" } else { "" };
    format!("{first}{}{last}", out.join("/"))
}

fn canonical_query(query: &[(String, String)], skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature")).map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trimall: strip, and collapse inner whitespace runs to one space.
fn trim_all(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical request for `signed_headers` (lowercase) and `payload_hash`. A signed header the
/// request lacks canonicalises as empty (the signature then cannot match).
pub fn canonical_request(req: &SignedRequest, signed_headers: &[String], payload_hash: &str, presigned: bool) -> String {
    let mut cr = String::new();
    cr.push_str(&req.method);
    cr.push('\n');
    cr.push_str(&uri_encode(&normalize_path(&req.path), true));
    cr.push('\n');
    cr.push_str(&canonical_query(&req.query, presigned));
    cr.push('\n');
    for name in signed_headers {
        let values: Vec<String> = req.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| trim_all(v)).collect();
        cr.push_str(name);
        cr.push(':');
        cr.push_str(&values.join(","));
        cr.push('\n');
    }
    cr.push('\n');
    cr.push_str(&signed_headers.join(";"));
    cr.push('\n');
    cr.push_str(payload_hash);
    cr
}

/// `AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(timestamp: &str, scope: &CredentialScope, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{timestamp}\n{scope}\n{}", hex_sha256(canonical_request.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    // HMAC takes keys of any length, so this is always Some; callers fail closed on None.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().to_vec())
}

/// The hex signature of `string_to_sign` with the key derived from `secret` for `scope`.
pub fn signature(secret: &str, scope: &CredentialScope, string_to_sign: &str) -> Option<String> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes())?;
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes())?;
    let k_signing = hmac_sha256(&k_service, b"aws4_request")?;
    Some(hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes())?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, fmt).ok().map(PrimitiveDateTime::assume_utc)
}

/// `YYYYMMDDTHHMMSSZ`, SigV4's timestamp form.
pub fn amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

// ------------------------------------------------------------------------------------------------
// Verification
// ------------------------------------------------------------------------------------------------

/// What a signature claims, from either the Authorization header or the query.
struct Claimed<'a> {
    credential: &'a str,
    signed_headers: Vec<String>,
    signature: &'a str,
    timestamp: String,
    signed_at: OffsetDateTime,
    security_token: Option<String>,
    presigned: bool,
}

/// The access key ID a request says it is signed with, unverified: lets the caller find a stored
/// key before calling [`verify`].
pub fn claimed_access_key_id(req: &SignedRequest) -> Option<String> {
    let credential = match req.header("authorization") {
        Some(auth) => auth.split([' ', ',']).find_map(|part| part.trim().strip_prefix("Credential="))?,
        None => req.query_values("X-Amz-Credential").into_iter().next()?,
    };
    credential.split('/').next().filter(|id| !id.is_empty()).map(str::to_string)
}

/// Verifies a request signed for kite's STS (service `sts`, any region).
pub fn verify(req: &SignedRequest, now: OffsetDateTime, secret_for: impl Fn(&str) -> Option<String>) -> Result<Verified, SigV4Error> {
    verify_for_service(req, SERVICE, now, secret_for)
}

/// [`verify`] for another service name (AWS's published test vectors use `service`).
pub fn verify_for_service(
    req: &SignedRequest,
    service: &str,
    now: OffsetDateTime,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Verified, SigV4Error> {
    let authorization = req.header("authorization");
    let query_auth = ["X-Amz-Algorithm", "X-Amz-Signature", "X-Amz-Credential"].iter().any(|k| !req.query_values(k).is_empty());
    let claimed = match (authorization, query_auth) {
        (Some(_), true) => {
            return Err(SigV4Error::Incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified".into(),
            ))
        }
        (Some(auth), false) => from_header(req, auth, now)?,
        (None, true) => from_query(req, now)?,
        (None, false) => return Err(SigV4Error::MissingAuthentication),
    };
    if !claimed.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into()));
    }

    let parts: Vec<&str> = claimed.credential.split('/').collect();
    let [access_key_id, date, region, scope_service, terminator] = parts[..] else {
        return Err(SigV4Error::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            claimed.credential
        )));
    };
    if access_key_id.is_empty() || region.is_empty() {
        return Err(SigV4Error::Incomplete(format!("Credential '{}' lacks an access key ID or a region", claimed.credential)));
    }
    let stamp_date = claimed.timestamp.get(..8).unwrap_or("");
    if date != stamp_date {
        return Err(SigV4Error::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{stamp_date}', from '{}'.",
            claimed.timestamp
        )));
    }
    if scope_service != service {
        return Err(SigV4Error::InvalidScope(format!("Credential should be scoped to correct service: '{service}', not '{scope_service}'.")));
    }
    if terminator != "aws4_request" {
        return Err(SigV4Error::InvalidScope(format!("Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'.")));
    }
    let scope = CredentialScope { date: date.into(), region: region.into(), service: service.into() };

    let secret = secret_for(access_key_id).ok_or_else(|| SigV4Error::UnknownAccessKey(access_key_id.into()))?;

    let actual_hash = hex_sha256(&req.body);
    let payload_hash = match req.header("x-amz-content-sha256") {
        Some(claimed_hash) if claimed_hash != actual_hash => {
            return Err(SigV4Error::BodyHashMismatch { claimed: claimed_hash.into(), actual: actual_hash });
        }
        _ => actual_hash,
    };
    let cr = canonical_request(req, &claimed.signed_headers, &payload_hash, claimed.presigned);
    let sts = string_to_sign(&claimed.timestamp, &scope, &cr);
    let expected = signature(&secret, &scope, &sts).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), claimed.signature.as_bytes()) {
        let mut hints: Vec<String> = claimed
            .signed_headers
            .iter()
            .filter(|h| req.header(h).is_none())
            .map(|h| format!("The signed header '{h}' is missing from the request."))
            .collect();
        if claimed.presigned && claimed.signed_headers.iter().any(|h| h == "x-k8s-aws-id") {
            hints.push("For an EKS token, x-k8s-aws-id must be the cluster name the token was made for.".into());
        }
        return Err(SigV4Error::SignatureDoesNotMatch { canonical_request: cr, string_to_sign: sts, hints });
    }
    Ok(Verified {
        access_key_id: access_key_id.into(),
        scope,
        signed_at: claimed.signed_at,
        signed_headers: claimed.signed_headers,
        security_token: claimed.security_token,
        presigned: claimed.presigned,
    })
}

fn from_header<'a>(req: &'a SignedRequest, auth: &'a str, now: OffsetDateTime) -> Result<Claimed<'a>, SigV4Error> {
    let (algorithm, rest) = auth.trim().split_once(' ').unwrap_or((auth.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!("Unsupported AWS 'algorithm': '{algorithm}'; sign with {ALGORITHM} (Signature Version 4)")));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.trim()),
            Some(("SignedHeaders", v)) => signed = Some(v.trim()),
            Some(("Signature", v)) => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, v) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed)] {
        if v.is_none_or(str::is_empty) {
            missing.push_str(&format!("Authorization header requires '{name}' parameter. "));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SigV4Error::Incomplete(format!("{missing}Authorization={auth}")));
    };
    if !missing.is_empty() {
        return Err(SigV4Error::Incomplete(format!("{missing}Authorization={auth}")));
    }
    let signed_headers = parse_signed_headers(signed)?;

    let (timestamp, signed_at) = if let Some(v) = req.header("x-amz-date") {
        let t = parse_amz_date(v.trim())
            .ok_or_else(|| SigV4Error::Incomplete(format!("X-Amz-Date '{v}' must be in ISO8601 basic format, e.g. 20240501T120000Z")))?;
        (v.trim().to_string(), t)
    } else if let Some(v) = req.header("date") {
        let t = OffsetDateTime::parse(v.trim(), &Rfc2822).map_err(|_| SigV4Error::Incomplete(format!("Date header '{v}' is not an RFC 1123 date")))?;
        (amz_date(t), t)
    } else {
        return Err(SigV4Error::MissingDate);
    };
    check_skew(&timestamp, signed_at, now)?;
    let security_token = req.header("x-amz-security-token").map(str::to_string);
    Ok(Claimed { credential, signed_headers, signature, timestamp, signed_at, security_token, presigned: false })
}

fn check_skew(timestamp: &str, signed_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), SigV4Error> {
    if signed_at < now - MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {timestamp} is now earlier than {} ({} - 5 min.)",
            amz_date(now - MAX_CLOCK_SKEW),
            amz_date(now)
        )));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::NotYetValid(format!(
            "Signature not yet current: {timestamp} is still later than {} ({} + 5 min.)",
            amz_date(now + MAX_CLOCK_SKEW),
            amz_date(now)
        )));
    }
    Ok(())
}

fn parse_signed_headers(s: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = s.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    if names.iter().any(String::is_empty) {
        return Err(SigV4Error::Incomplete(format!("SignedHeaders '{s}' has an empty header name")));
    }
    Ok(names)
}

fn from_query(req: &SignedRequest, now: OffsetDateTime) -> Result<Claimed<'_>, SigV4Error> {
    const REQUIRED: [&str; 6] = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"];
    let mut found: [&str; 6] = [""; 6];
    for (i, name) in REQUIRED.iter().enumerate() {
        match req.query_values(name)[..] {
            [v] if !v.is_empty() => found[i] = v,
            [] | [_] => {
                return Err(SigV4Error::Incomplete(
                    "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', \
                     'X-Amz-SignedHeaders', and 'X-Amz-Expires'. Re-examine the query-string parameters."
                        .into(),
                ))
            }
            _ => return Err(SigV4Error::Incomplete(format!("query parameter '{name}' appears more than once"))),
        }
    }
    let [algorithm, credential, signature, date, signed, expires] = found;
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!("X-Amz-Algorithm only supports '{ALGORITHM}', got '{algorithm}'")));
    }
    let signed_at =
        parse_amz_date(date).ok_or_else(|| SigV4Error::Incomplete(format!("X-Amz-Date '{date}' must be in ISO8601 basic format, e.g. 20240501T120000Z")))?;
    let expires: u64 = expires.parse().map_err(|_| SigV4Error::Incomplete(format!("X-Amz-Expires should be a number of seconds, got '{expires}'")))?;
    if expires > MAX_PRESIGN_EXPIRES {
        return Err(SigV4Error::ExpiresTooLong(expires));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::NotYetValid(format!(
            "Signature not yet current: {date} is still later than {} ({} + 5 min.)",
            amz_date(now + MAX_CLOCK_SKEW),
            amz_date(now)
        )));
    }
    // `expires` is at most a week, so the cast cannot wrap.
    let validity = Duration::seconds(expires as i64).max(STS_PRESIGNED_VALIDITY);
    if now > signed_at + validity {
        return Err(SigV4Error::Expired(format!(
            "Signature expired: the URL was signed at {date} and was valid for {} seconds, until {}; it is now {}. \
             Presign a new one (aws eks get-token makes a fresh token on every run).",
            validity.whole_seconds(),
            amz_date(signed_at + validity),
            amz_date(now)
        )));
    }
    let security_token = match req.query_values("X-Amz-Security-Token")[..] {
        [] => None,
        [t] => Some(t.to_string()),
        _ => return Err(SigV4Error::Incomplete("query parameter 'X-Amz-Security-Token' appears more than once".into())),
    };
    Ok(Claimed {
        credential,
        signed_headers: parse_signed_headers(signed)?,
        signature,
        timestamp: date.to_string(),
        signed_at,
        security_token,
        presigned: true,
    })
}

// ------------------------------------------------------------------------------------------------
// Signing (tests, the CLI's own calls) and URLs
// ------------------------------------------------------------------------------------------------

/// Who signs, for where.
#[derive(Clone, Copy, Debug)]
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer<'_> {
    fn scope(&self, now: OffsetDateTime) -> (String, CredentialScope) {
        let timestamp = amz_date(now);
        let date = timestamp.get(..8).unwrap_or("").to_string();
        (timestamp, CredentialScope { date, region: self.region.into(), service: self.service.into() })
    }
}

/// The lowercase, sorted, de-duplicated names of the headers botocore would sign.
fn signable_headers(req: &SignedRequest) -> Vec<String> {
    let mut names: Vec<String> = req.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).filter(|k| !UNSIGNED_HEADERS.contains(&k.as_str())).collect();
    names.sort();
    names.dedup();
    names
}

/// Signs `req` in place with an Authorization header, as botocore's SigV4Auth does: sets
/// X-Amz-Date (and X-Amz-Security-Token) and signs every header present but the unsignable ones.
/// The request must already carry its Host header.
pub fn sign(req: &mut SignedRequest, signer: &Signer<'_>, now: OffsetDateTime) {
    req.headers.retain(|(k, _)| !["authorization", "x-amz-date", "x-amz-security-token"].contains(&k.to_ascii_lowercase().as_str()));
    let (timestamp, scope) = signer.scope(now);
    req.headers.push(("X-Amz-Date".into(), timestamp.clone()));
    if let Some(token) = signer.session_token {
        req.headers.push(("X-Amz-Security-Token".into(), token.into()));
    }
    let signed = signable_headers(req);
    let payload = req.header("x-amz-content-sha256").map(str::to_string).unwrap_or_else(|| hex_sha256(&req.body));
    let cr = canonical_request(req, &signed, &payload, false);
    let sig = signature(signer.secret_access_key, &scope, &string_to_sign(&timestamp, &scope, &cr)).unwrap_or_default();
    let auth = format!("{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={sig}", signer.access_key_id, signed.join(";"));
    req.headers.push(("Authorization".into(), auth));
}

/// Presigns `req` in place with X-Amz-* query parameters, as botocore's SigV4QueryAuth does (and
/// so `aws eks get-token`, whose only extra signed header is `x-k8s-aws-id`).
pub fn presign(req: &mut SignedRequest, signer: &Signer<'_>, now: OffsetDateTime, expires_seconds: u64) {
    req.query.retain(|(k, _)| !k.starts_with("X-Amz-"));
    let (timestamp, scope) = signer.scope(now);
    let signed = signable_headers(req);
    req.query.push(("X-Amz-Algorithm".into(), ALGORITHM.into()));
    req.query.push(("X-Amz-Credential".into(), format!("{}/{scope}", signer.access_key_id)));
    req.query.push(("X-Amz-Date".into(), timestamp.clone()));
    req.query.push(("X-Amz-Expires".into(), expires_seconds.to_string()));
    req.query.push(("X-Amz-SignedHeaders".into(), signed.join(";")));
    if let Some(token) = signer.session_token {
        req.query.push(("X-Amz-Security-Token".into(), token.into()));
    }
    let payload = hex_sha256(&req.body);
    let cr = canonical_request(req, &signed, &payload, true);
    let sig = signature(signer.secret_access_key, &scope, &string_to_sign(&timestamp, &scope, &cr)).unwrap_or_default();
    req.query.push(("X-Amz-Signature".into(), sig));
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request a presigned URL stands for (e.g. the URL inside an EKS token): Host from the
/// authority (lowercase, default port dropped, as botocore signs it), the path as written, the
/// query percent-decoded (`+` is a space), plus `extra_headers` such as `x-k8s-aws-id`.
pub fn request_from_url(method: &str, url: &str, extra_headers: &[(&str, &str)]) -> Result<SignedRequest, SigV4Error> {
    let bad = || SigV4Error::Incomplete(format!("'{url}' is not an absolute http(s) URL"));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(bad()),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_suffix(default_port).unwrap_or(&host).to_string();
    if host.is_empty() {
        return Err(bad());
    }
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let mut headers = vec![("host".to_string(), host)];
    headers.extend(extra_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(SignedRequest { method: method.into(), path: if path.is_empty() { "/".into() } else { path.into() }, query, headers, body: Vec::new() })
}

/// The prefix of the tokens `aws eks get-token` and aws-iam-authenticator make.
pub const EKS_TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// The presigned GetCallerIdentity request inside an EKS token, after aws-iam-authenticator's
/// format checks (at most 4096 bytes, `k8s-aws-v1.` + unpadded base64url of an https URL with path
/// `/`, only Action, Version and X-Amz-* parameters, each once, Action=GetCallerIdentity,
/// `x-k8s-aws-id` signed, X-Amz-Expires at most 900). The request carries `x-k8s-aws-id:
/// cluster_id`, so [`verify`] then fails unless the token was made for this cluster. The URL's
/// host is not checked here: the caller compares it with its own STS host.
pub fn eks_token_request(token: &str, cluster_id: &str) -> Result<SignedRequest, SigV4Error> {
    use base64::Engine;
    let bad = |why: String| SigV4Error::Incomplete(format!("input token was not properly formatted: {why}"));
    if token.len() > 4096 {
        return Err(bad("token is too large".into()));
    }
    let encoded = token.strip_prefix(EKS_TOKEN_PREFIX).ok_or_else(|| bad(format!("token is missing expected \"{EKS_TOKEN_PREFIX}\" prefix")))?;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("the part after the prefix is not base64url of a URL".into()))?;
    if !url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return Err(bad("the pre-signed URL must use https".into()));
    }
    let req = request_from_url("GET", &url, &[("x-k8s-aws-id", cluster_id)])?;
    if req.path != "/" {
        return Err(bad("unexpected path in pre-signed URL".into()));
    }
    const ALLOWED: [&str; 9] = [
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    ];
    let mut seen: Vec<String> = Vec::new();
    for (k, _) in &req.query {
        let lower = k.to_ascii_lowercase();
        if !ALLOWED.contains(&lower.as_str()) {
            return Err(bad(format!("non-whitelisted query parameter \"{k}\"")));
        }
        if seen.contains(&lower) {
            return Err(bad("query parameter with multiple values not supported".into()));
        }
        seen.push(lower);
    }
    let param = |name: &str| req.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    if param("action") != Some("GetCallerIdentity") {
        return Err(bad("unexpected action parameter in pre-signed URL".into()));
    }
    if !param("x-amz-signedheaders").unwrap_or("").split(';').any(|h| h.eq_ignore_ascii_case("x-k8s-aws-id")) {
        return Err(bad("client did not sign the x-k8s-aws-id header in the pre-signed URL".into()));
    }
    match param("x-amz-expires").map(str::parse::<u64>) {
        Some(Ok(0..=900)) => Ok(req),
        _ => Err(bad(format!("invalid X-Amz-Expires parameter in pre-signed URL: {}", param("x-amz-expires").unwrap_or("(missing)")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_TIME: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn suite_request(method: &str, query: &[(&str, &str)], headers: &[(&str, &str)], body: &str) -> SignedRequest {
        let mut all = vec![("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
        all.extend_from_slice(headers);
        SignedRequest { method: method.into(), path: "/".into(), query: h(query), headers: h(&all), body: body.as_bytes().to_vec() }
    }

    fn suite_secret(akid: &str) -> Option<String> {
        (akid == AKID).then(|| SECRET.to_string())
    }

    fn authz(sig: &str, signed: &str) -> (&'static str, String) {
        ("Authorization", format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={sig}"))
    }

    // --- AWS's published SigV4 test suite (aws-sig-v4-test-suite), region us-east-1, service "service" ---

    #[test]
    fn get_vanilla_canonicalises_and_signs_exactly_as_the_aws_test_suite_publishes() {
        let req = suite_request("GET", &[], &[], "");
        let signed = vec!["host".to_string(), "x-amz-date".to_string()];
        let cr = canonical_request(&req, &signed, EMPTY_SHA256, false);
        assert_eq!(cr, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let scope = CredentialScope { date: "20150830".into(), region: "us-east-1".into(), service: "service".into() };
        let sts = string_to_sign("20150830T123600Z", &scope, &cr);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(signature(SECRET, &scope, &sts).unwrap(), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    }

    #[test]
    fn the_published_get_vanilla_authorization_header_verifies() {
        let (k, v) = authz("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", "host;x-amz-date");
        let mut req = suite_request("GET", &[], &[], "");
        req.headers.push((k.into(), v));
        let ok = verify_for_service(&req, "service", SUITE_TIME, suite_secret).unwrap();
        assert_eq!(ok.access_key_id, AKID);
        assert_eq!(ok.scope.to_string(), "20150830/us-east-1/service/aws4_request");
        assert!(!ok.presigned);
    }

    #[test]
    fn more_published_vectors_verify_query_order_header_trimming_and_form_bodies() {
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Pairs, Pairs, &str, &str, &str); 3] = [
            // get-vanilla-query-order-key-case
            (
                "GET",
                &[("Param2", "value2"), ("Param1", "value1")],
                &[],
                "",
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            // get-header-value-trim
            (
                "GET",
                &[],
                &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
                "",
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            ),
            // post-x-www-form-urlencoded
            (
                "POST",
                &[],
                &[("Content-Type", "application/x-www-form-urlencoded")],
                "Param1=value1",
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
        ];
        for (method, query, headers, body, signed, sig) in cases {
            let mut req = suite_request(method, query, headers, body);
            let (k, v) = authz(sig, signed);
            req.headers.push((k.into(), v));
            assert!(verify_for_service(&req, "service", SUITE_TIME, suite_secret).is_ok(), "{signed} {sig}");
            // `sign` reproduces the same published signature.
            let mut fresh = suite_request(method, query, headers, body);
            fresh.headers.retain(|(k, _)| k != "X-Amz-Date");
            let signer = Signer { access_key_id: AKID, secret_access_key: SECRET, session_token: None, region: "us-east-1", service: "service" };
            sign(&mut fresh, &signer, SUITE_TIME);
            assert!(fresh.header("authorization").unwrap_or("").ends_with(sig), "{:?}", fresh.header("authorization"));
        }
    }

    // --- What boto3 and awscli really send (captured from botocore 1.44 / awscli 1.46 with a frozen clock) ---

    const KITE_SECRET: &str = "kiteSecretExampleKey/+0123456789abcdefghij";
    const KITE_AKID: &str = "ASIAKITEEXAMPLE00001";
    const BOTO_TIME: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

    fn kite_secret(akid: &str) -> Option<String> {
        (akid == KITE_AKID).then(|| KITE_SECRET.to_string())
    }

    fn boto3_get_caller_identity() -> SignedRequest {
        SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: vec![],
            headers: h(&[
                ("Host", "sts.kite.test:8443"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("User-Agent", "Botocore/1.44.5 ua/2.1 os/linux md/arch#x86_64 lang/python#3.11.7"),
                ("X-Amz-Date", "20240501T120000Z"),
                ("X-Amz-Security-Token", "kite-session-token-example"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=67c1786cca59f453ad12bc91f94fb221d4640d304a639b91bcd04dad8c06421c"),
                ("amz-sdk-invocation-id", "3b43b3b7-672b-4a0b-9332-7124d26e41eb"),
                ("amz-sdk-request", "attempt=1; max=3"),
                ("Content-Length", "43"),
            ]),
            body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
        }
    }

    /// `aws eks get-token --cluster-name my-cluster` with AWS_ENDPOINT_URL_STS=https://sts.kite.test:8443.
    const EKS_URL: &str = "https://sts.kite.test:8443/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAKITEEXAMPLE00001%2F20240501%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20240501T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=kite-session-token-example&X-Amz-Signature=5641f1d9c1e368a85639cb5a7d79f78c036c79741fe9a7dcf5cb1dd51d549bf2";

    #[test]
    fn a_boto3_get_caller_identity_request_verifies_with_its_session_token() {
        let ok = verify(&boto3_get_caller_identity(), BOTO_TIME + Duration::seconds(3), kite_secret).unwrap();
        assert_eq!(ok.access_key_id, KITE_AKID);
        assert_eq!(ok.scope.region, "us-east-1");
        assert_eq!(ok.security_token.as_deref(), Some("kite-session-token-example"));
        assert_eq!(ok.signed_headers, ["content-type", "host", "x-amz-date", "x-amz-security-token"]);
    }

    #[test]
    fn an_aws_eks_get_token_url_verifies_for_its_cluster_for_fifteen_minutes() {
        let req = request_from_url("GET", EKS_URL, &[("x-k8s-aws-id", "my-cluster")]).unwrap();
        assert_eq!(req.header("host"), Some("sts.kite.test:8443"));
        let ok = verify(&req, BOTO_TIME + Duration::minutes(14), kite_secret).unwrap();
        assert!(ok.presigned && ok.is_header_signed("x-k8s-aws-id"));
        assert_eq!(ok.security_token.as_deref(), Some("kite-session-token-example"));

        let late = verify(&req, BOTO_TIME + Duration::minutes(15) + Duration::seconds(1), kite_secret).unwrap_err();
        assert!(matches!(late, SigV4Error::Expired(_)), "{late}");

        let other = request_from_url("GET", EKS_URL, &[("x-k8s-aws-id", "other-cluster")]).unwrap();
        let e = verify(&other, BOTO_TIME, kite_secret).unwrap_err();
        assert!(e.to_string().contains("x-k8s-aws-id:other-cluster") && e.to_string().contains("cluster name"), "{e}");
    }

    /// The token `aws eks get-token --cluster-name my-cluster` printed for [`EKS_URL`].
    const EKS_TOKEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMua2l0ZS50ZXN0Ojg0NDMvP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BU0lBS0lURUVYQU1QTEUwMDAwMSUyRjIwMjQwNTAxJTJGdXMtZWFzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNDA1MDFUMTIwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TZWN1cml0eS1Ub2tlbj1raXRlLXNlc3Npb24tdG9rZW4tZXhhbXBsZSZYLUFtei1TaWduYXR1cmU9NTY0MWYxZDljMWUzNjhhODU2MzljYjVhN2Q3OWY3OGMwMzZjNzk3NDFmZTlhN2RjZjVjYjFkZDUxZDU0OWJmMg";

    #[test]
    fn an_eks_token_unwraps_to_its_presigned_request_for_the_named_cluster() {
        let req = eks_token_request(EKS_TOKEN, "my-cluster").unwrap();
        assert_eq!(req, request_from_url("GET", EKS_URL, &[("x-k8s-aws-id", "my-cluster")]).unwrap());
        assert!(verify(&req, BOTO_TIME, kite_secret).is_ok());
        let other = eks_token_request(EKS_TOKEN, "other-cluster").unwrap();
        assert_eq!(verify(&other, BOTO_TIME, kite_secret).unwrap_err().code(), ErrorCode::SignatureDoesNotMatch);
    }

    #[test]
    fn eks_tokens_breaking_the_authenticators_format_rules_say_which() {
        use base64::Engine;
        let wrap = |url: &str| format!("{EKS_TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url));
        let cases = [
            ("k8s-aws-v2.abc".to_string(), "prefix"),
            (format!("{EKS_TOKEN_PREFIX}!!!"), "base64url"),
            (format!("{EKS_TOKEN_PREFIX}{}", "A".repeat(4100)), "too large"),
            (wrap(&EKS_URL.replace("https://", "http://")), "https"),
            (wrap(&EKS_URL.replace(":8443/?", ":8443/x?")), "unexpected path"),
            (wrap(&format!("{EKS_URL}&Extra=1")), "non-whitelisted query parameter \"Extra\""),
            (wrap(&format!("{EKS_URL}&Version=2011-06-15")), "multiple values"),
            (wrap(&EKS_URL.replace("Action=GetCallerIdentity", "Action=AssumeRole")), "unexpected action"),
            (wrap(&EKS_URL.replace("host%3Bx-k8s-aws-id", "host")), "x-k8s-aws-id"),
            (wrap(&EKS_URL.replace("X-Amz-Expires=60", "X-Amz-Expires=901")), "X-Amz-Expires"),
        ];
        for (token, needle) in cases {
            let e = eks_token_request(&token, "my-cluster").unwrap_err().to_string();
            assert!(e.contains("not properly formatted") && e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn a_wrong_secret_is_signature_does_not_match_with_both_strings_to_compare() {
        let e = verify(&boto3_get_caller_identity(), BOTO_TIME, |_| Some("wrong".into())).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SignatureDoesNotMatch);
        let text = e.to_string();
        assert!(text.contains("The Canonical String for this request should have been\n'POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:sts.kite.test:8443\n"), "{text}");
        assert!(text.contains("The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20240501T120000Z\n20240501/us-east-1/sts/aws4_request\n"), "{text}");
    }

    #[test]
    fn header_signatures_older_or_newer_than_five_minutes_are_refused_with_the_times() {
        let e = verify(&boto3_get_caller_identity(), BOTO_TIME + Duration::minutes(5) + Duration::seconds(1), kite_secret).unwrap_err();
        assert_eq!(e.to_string(), "Signature expired: 20240501T120000Z is now earlier than 20240501T120001Z (20240501T120501Z - 5 min.)");
        let e = verify(&boto3_get_caller_identity(), BOTO_TIME - Duration::minutes(6), kite_secret).unwrap_err();
        assert!(matches!(e, SigV4Error::NotYetValid(_)) && e.to_string().starts_with("Signature not yet current"), "{e}");
        assert!(verify(&boto3_get_caller_identity(), BOTO_TIME + Duration::minutes(5), kite_secret).is_ok());
    }

    #[test]
    fn presigned_urls_refuse_week_long_expiry_and_future_dates() {
        let signer = Signer { access_key_id: KITE_AKID, secret_access_key: KITE_SECRET, session_token: None, region: "us-east-1", service: "sts" };
        let base = SignedRequest { method: "GET".into(), path: "/".into(), headers: h(&[("host", "sts.kite.test")]), ..Default::default() };
        let mut week = base.clone();
        presign(&mut week, &signer, BOTO_TIME, 604_800);
        assert!(verify(&week, BOTO_TIME + Duration::days(6), kite_secret).is_ok());
        let mut long = base.clone();
        presign(&mut long, &signer, BOTO_TIME, 604_801);
        assert_eq!(verify(&long, BOTO_TIME, kite_secret).unwrap_err(), SigV4Error::ExpiresTooLong(604_801));
        let mut future = base;
        presign(&mut future, &signer, BOTO_TIME + Duration::minutes(6), 60);
        assert!(matches!(verify(&future, BOTO_TIME, kite_secret).unwrap_err(), SigV4Error::NotYetValid(_)));
    }

    #[test]
    fn missing_or_malformed_parts_name_the_rule() {
        let mut req = boto3_get_caller_identity();
        req.headers.retain(|(k, _)| k != "Authorization");
        assert_eq!(verify(&req, BOTO_TIME, kite_secret).unwrap_err(), SigV4Error::MissingAuthentication);

        let mut req = boto3_get_caller_identity();
        req.headers.retain(|(k, _)| k != "X-Amz-Date");
        assert_eq!(verify(&req, BOTO_TIME, kite_secret).unwrap_err(), SigV4Error::MissingDate);

        let with_auth = |auth: &str| {
            let mut req = boto3_get_caller_identity();
            for (k, v) in req.headers.iter_mut() {
                if k == "Authorization" {
                    *v = auth.into();
                }
            }
            verify(&req, BOTO_TIME, kite_secret).unwrap_err()
        };
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/sts/aws4_request, Signature=abc");
        assert!(matches!(&e, SigV4Error::Incomplete(m) if m.contains("requires 'SignedHeaders' parameter")), "{e}");
        assert_eq!(e.code(), ErrorCode::IncompleteSignature);
        let e = with_auth("AWS4-HMAC-SHA1 Credential=x");
        assert!(e.to_string().contains("Unsupported AWS 'algorithm'"), "{e}");
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/sts, SignedHeaders=host, Signature=abc");
        assert!(e.to_string().contains("exactly 5 slash-delimited"), "{e}");
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=abc");
        assert!(matches!(&e, SigV4Error::InvalidScope(m) if m.contains("correct service: 'sts'")), "{e}");
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240502/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc");
        assert!(e.to_string().contains("Date in Credential scope does not match"), "{e}");
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/sts/aws4_request, SignedHeaders=x-amz-date, Signature=abc");
        assert!(e.to_string().contains("'Host'"), "{e}");
        let e = with_auth("AWS4-HMAC-SHA256 Credential=ASIAOTHER/20240501/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc");
        assert_eq!(e.code(), ErrorCode::InvalidClientTokenId);

        let mut req = request_from_url("GET", EKS_URL, &[("x-k8s-aws-id", "my-cluster")]).unwrap();
        req.query.retain(|(k, _)| k != "X-Amz-Expires");
        assert!(verify(&req, BOTO_TIME, kite_secret).unwrap_err().to_string().contains("must include 'X-Amz-Algorithm'"));
    }

    #[test]
    fn a_body_that_does_not_match_its_declared_hash_is_refused() {
        let mut req = boto3_get_caller_identity();
        req.headers.push(("X-Amz-Content-SHA256".into(), "UNSIGNED-PAYLOAD".into()));
        assert!(matches!(verify(&req, BOTO_TIME, kite_secret).unwrap_err(), SigV4Error::BodyHashMismatch { .. }));
    }

    #[test]
    fn a_date_header_can_stand_in_for_x_amz_date_as_botocore_signs_it() {
        // botocore signs with the Date header instead of X-Amz-Date when the request has one.
        let req = SignedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: vec![],
            headers: h(&[
                ("Host", "sts.kite.test"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("Date", "Wed, 01 May 2024 12:00:00 -0000"),
                ("X-Amz-Security-Token", "kite-session-token-example"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=ASIAKITEEXAMPLE00001/20240501/us-east-1/sts/aws4_request, SignedHeaders=content-type;date;host;x-amz-security-token, Signature=d7c84ba4ccd0d9e0ba0ebe6bb3a175a8ec70cce419a972e5ded24d2f352ec1b6"),
            ]),
            body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
        };
        let ok = verify(&req, BOTO_TIME, kite_secret).unwrap();
        assert_eq!(ok.signed_at, BOTO_TIME);
    }

    #[test]
    fn paths_are_normalised_and_encoded_like_botocore() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(normalize_path("/.."), "/");
        // The wire path is encoded once more, as botocore does for every service but S3.
        assert_eq!(uri_encode(&normalize_path("/%E1%88%B4 x"), true), "/%25E1%2588%25B4%20x");
        assert_eq!(canonical_query(&h(&[("b", "2"), ("a", "x y/+"), ("a", "1")]), false), "a=1&a=x%20y%2F%2B&b=2");
    }

    #[test]
    fn urls_decode_into_the_request_botocore_signed() {
        let r = request_from_url("GET", "HTTPS://User@STS.Example.com:443/p?a=%2F+b&c&=d#frag", &[]).unwrap();
        assert_eq!(r.header("host"), Some("sts.example.com"));
        assert_eq!(r.path, "/p");
        assert_eq!(r.query, h(&[("a", "/ b"), ("c", ""), ("", "d")]));
        assert_eq!(request_from_url("GET", "http://h:8080", &[]).unwrap().header("host"), Some("h:8080"));
        assert!(request_from_url("GET", "ftp://h/", &[]).is_err());
        assert!(request_from_url("GET", "no-scheme", &[]).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn signer() -> Signer<'static> {
            Signer { access_key_id: KITE_AKID, secret_access_key: KITE_SECRET, session_token: Some("tok"), region: "eu-west-1", service: "sts" }
        }

        prop_compose! {
            fn request()(
                method in prop::sample::select(vec!["GET", "POST", "PUT"]),
                path in prop::collection::vec("[A-Za-z0-9_~-]{1,6}", 0..3),
                query in prop::collection::vec(("[A-Za-z0-9 ._~/+%-]{1,6}", "[A-Za-z0-9 ._~/+%=&-]{0,6}"), 0..4),
                headers in prop::collection::vec(("x-h[a-z]{1,4}", "[ -~]{0,8}"), 0..3),
                body in prop::collection::vec(any::<u8>(), 0..32),
            ) -> SignedRequest {
                let mut headers: Vec<(String, String)> = headers;
                headers.push(("Host".into(), "sts.kite.test".into()));
                SignedRequest { method: method.into(), path: format!("/{}", path.join("/")), query, headers, body }
            }
        }

        /// Another character of the same class, so the change cannot be normalised away.
        fn change(c: u8) -> u8 {
            match c {
                b'a'..=b'y' | b'A'..=b'Y' | b'0'..=b'8' => c + 1,
                b'z' => b'a',
                b'Z' => b'A',
                b'9' => b'0',
                _ => b'q',
            }
        }

        fn mutate_string(s: &mut String, at: usize) -> bool {
            let mut bytes = s.clone().into_bytes();
            let Some(i) = (0..bytes.len()).map(|k| (at + k) % bytes.len().max(1)).find(|&i| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric())) else {
                return false;
            };
            bytes[i] = change(bytes[i]);
            *s = String::from_utf8_lossy(&bytes).into_owned();
            true
        }

        proptest! {
            #[test]
            fn any_request_signed_by_sign_verifies(mut req in request()) {
                sign(&mut req, &signer(), BOTO_TIME);
                let ok = verify(&req, BOTO_TIME, kite_secret).unwrap();
                prop_assert_eq!(ok.security_token.as_deref(), Some("tok"));
            }

            #[test]
            fn any_request_presigned_by_presign_verifies(mut req in request()) {
                presign(&mut req, &signer(), BOTO_TIME, 60);
                prop_assert!(verify(&req, BOTO_TIME + Duration::minutes(10), kite_secret).is_ok());
            }

            #[test]
            fn any_single_byte_change_to_a_signed_part_fails(mut req in request(), part in 0usize..5, at in any::<usize>(), presigned in any::<bool>()) {
                if presigned {
                    presign(&mut req, &signer(), BOTO_TIME, 60);
                } else {
                    sign(&mut req, &signer(), BOTO_TIME);
                }
                let changed = match part {
                    0 => { req.method = if req.method == "GET" { "HEAD".into() } else { "GET".into() }; true }
                    1 => { let mut p = req.path.clone(); p.push('x'); req.path = p; true }
                    2 => {
                        let signed_params: Vec<usize> = (0..req.query.len()).filter(|&i| req.query[i].0 != "X-Amz-Signature").collect();
                        match signed_params.get(at % signed_params.len().max(1)) {
                            Some(&i) => {
                                let (k, v) = &mut req.query[i];
                                let (first, second) = if at % 2 == 0 { (v, k) } else { (k, v) };
                                mutate_string(first, at) || mutate_string(second, at)
                            }
                            None => false,
                        }
                    }
                    3 => {
                        let signed: Vec<usize> = (0..req.headers.len()).filter(|&i| !req.headers[i].0.eq_ignore_ascii_case("authorization")).collect();
                        match signed.get(at % signed.len().max(1)) {
                            Some(&i) => mutate_string(&mut req.headers[i].1, at),
                            None => false,
                        }
                    }
                    _ => {
                        if req.body.is_empty() { req.body.push(b'x') } else { let i = at % req.body.len(); req.body[i] ^= 1 }
                        true
                    }
                };
                prop_assume!(changed);
                prop_assert!(verify(&req, BOTO_TIME, kite_secret).is_err());
            }
        }
    }
}
