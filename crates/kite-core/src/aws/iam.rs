//! IAM roles, OIDC identity providers, and the trust-policy check STS makes for
//! AssumeRoleWithWebIdentity, with a denial that names the statement and condition that failed.
//!
//! Only what a web-identity trust decision needs is modelled: Allow/Deny statements, Action and
//! NotAction, Principal/NotPrincipal `Federated`, and the string conditions trust policies use on the
//! provider's keys `<url>:sub`, `<url>:aud`, `<url>:oaud` and `<url>:amr`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::arn::{provider_url_of, validate_name, validate_path, Arn};
use super::sts::{ErrorCode, StsError};
use crate::{Error, Result};

/// The action a web-identity trust policy must allow.
pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
/// IAM's default and bounds for a role's MaxSessionDuration, in seconds.
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;
pub const MIN_SESSION_DURATION: u32 = 900;
pub const MAX_SESSION_DURATION_LIMIT: u32 = 43200;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub arn: Arn,
    pub role_name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `AROA` + 17 uppercase letters or digits; the stable part of `AssumedRoleId`.
    pub role_id: String,
    pub trust_policy: Value,
    pub max_session_duration: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

impl Role {
    /// A new role with a fresh role ID. The trust policy is checked now, because IAM refuses a
    /// malformed one at CreateRole and a mistake found only at AssumeRole is much harder to read.
    pub fn new(account: &str, name: &str, path: Option<&str>, trust_policy: Value, max_session_duration: Option<u32>, now: OffsetDateTime) -> Result<Role> {
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_name("role", name)?;
        let arn = Arn::role(account, Some(path), name)?;
        validate_trust_policy(&trust_policy)?;
        let max_session_duration = max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        if !(DEFAULT_MAX_SESSION_DURATION..=MAX_SESSION_DURATION_LIMIT).contains(&max_session_duration) {
            return Err(Error::InvalidArgument(format!(
                "max session duration {max_session_duration}s is out of range: use {DEFAULT_MAX_SESSION_DURATION}-{MAX_SESSION_DURATION_LIMIT} seconds (1 to 12 hours)"
            )));
        }
        Ok(Role { arn, role_name: name.into(), path: path.into(), role_id: super::random_id("AROA", 17), trust_policy, max_session_duration, created: now })
    }
}

/// An IAM OIDC identity provider: the issuer IAM trusts, and the audiences it accepts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    pub arn: Arn,
    /// The issuer without `https://`, as in the ARN and the condition keys.
    pub url: String,
    /// Accepted audiences (IAM's ClientIDList), e.g. `sts.amazonaws.com` for EKS.
    pub client_ids: Vec<String>,
    /// SHA-1 fingerprints (40 lowercase hex) of the issuer's CA; IAM no longer requires them.
    pub thumbprints: Vec<String>,
}

impl OidcProvider {
    pub fn new(account: &str, url: &str, client_ids: Vec<String>, thumbprints: Vec<String>) -> Result<OidcProvider> {
        if url.starts_with("http://") {
            return Err(Error::InvalidArgument(format!("OIDC provider URL '{url}' must use https: STS only trusts issuers whose 'iss' starts with https://")));
        }
        let arn = Arn::oidc_provider(account, url)?;
        let url = provider_url_of(url).to_string();
        let mut ids: Vec<String> = Vec::new();
        for id in client_ids {
            if id.trim().is_empty() || id.len() > 255 {
                return Err(Error::InvalidArgument(format!("invalid client ID '{id}': use 1-255 characters")));
            }
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() || ids.len() > 100 {
            return Err(Error::InvalidArgument("give 1-100 client IDs (the audiences tokens carry in 'aud'), e.g. sts.amazonaws.com as EKS uses".into()));
        }
        let mut prints: Vec<String> = Vec::new();
        for t in thumbprints {
            if t.len() != 40 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::InvalidArgument(format!(
                    "invalid thumbprint '{t}': give the SHA-1 fingerprint of the issuer's CA certificate as 40 hex digits"
                )));
            }
            let t = t.to_ascii_lowercase();
            if !prints.contains(&t) {
                prints.push(t);
            }
        }
        if prints.len() > 5 {
            return Err(Error::InvalidArgument("give at most 5 thumbprints".into()));
        }
        Ok(OidcProvider { arn, url, client_ids: ids, thumbprints: prints })
    }

    /// The issuer tokens of this provider carry in `iss`.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.url)
    }

    /// STS's checks of a (signature-verified) token against the provider before any trust policy:
    /// same issuer, and an audience among the client IDs. Returns the accepted audience, which
    /// the response reports as `Audience`.
    pub fn accept_token(&self, facts: &TokenFacts) -> Result<String, StsError> {
        if facts.iss != self.issuer() {
            return Err(StsError::new(
                ErrorCode::InvalidIdentityToken,
                format!("The token's issuer '{}' is not this provider's '{}'.", facts.iss, self.issuer()),
            ));
        }
        let candidates = facts.azp.iter().chain(facts.aud.iter());
        for aud in candidates {
            if self.client_ids.contains(aud) {
                return Ok(aud.clone());
            }
        }
        Err(StsError::new(
            ErrorCode::InvalidIdentityToken,
            format!(
                "Incorrect token audience: the token's aud is {} but provider {} accepts {}",
                quote_list(&facts.aud),
                self.arn,
                quote_list(&self.client_ids)
            ),
        ))
    }
}

/// The provider whose issuer is `iss`, or STS's InvalidIdentityToken, pointing out a near miss
/// (an issuer that differs only by a trailing slash or case, the classic copy-paste mistake).
pub fn find_provider<'a>(providers: &'a [OidcProvider], iss: &str) -> Result<&'a OidcProvider, StsError> {
    if let Some(p) = providers.iter().find(|p| p.issuer() == iss) {
        return Ok(p);
    }
    let near = providers
        .iter()
        .find(|p| p.issuer().trim_end_matches('/').eq_ignore_ascii_case(iss.trim_end_matches('/')))
        .map(|p| format!(" Provider {} has issuer {}, which differs only by case or a trailing slash: they must match exactly.", p.arn, p.issuer()))
        .unwrap_or_default();
    Err(StsError::new(ErrorCode::InvalidIdentityToken, format!("No OpenIDConnect provider found in your account for {iss}.{near}")))
}

/// The claims of a verified web-identity token that trust policies can test.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFacts {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    /// When present, IAM's `<url>:aud` key holds `azp` and `<url>:oaud` holds `aud`.
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub amr: Vec<String>,
}

/// Why a trust policy refuses a token. `reason` names the statement that came closest and the
/// check it failed, with the token's actual value, so the fix is visible without a debugger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustDenial {
    /// Index into `Statement` of the deciding or closest statement, if there was one.
    pub statement: Option<usize>,
    pub sid: Option<String>,
    /// True when an explicit Deny decided.
    pub explicit_deny: bool,
    pub reason: String,
}

impl fmt::Display for TrustDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Not authorized to perform {ASSUME_ROLE_WITH_WEB_IDENTITY}: {}", self.reason)
    }
}

impl std::error::Error for TrustDenial {}

// ------------------------------------------------------------------------------------------------
// Trust policy validation
// ------------------------------------------------------------------------------------------------

/// Condition operators IAM accepts, without the `ForAnyValue:`/`ForAllValues:` prefix and the
/// `IfExists` suffix.
const OPERATORS: [&str; 27] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "BinaryEquals",
    "Null",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "IpAddress",
    "NotIpAddress",
];

/// Checks a role trust policy's shape as IAM does at CreateRole (MalformedPolicyDocument).
pub fn validate_trust_policy(policy: &Value) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidArgument(format!("malformed trust policy: {msg}")));
    let Some(doc) = policy.as_object() else {
        return bad("the policy must be a JSON object with \"Version\" and \"Statement\"".into());
    };
    if let Some(v) = doc.get("Version") {
        if v != "2012-10-17" && v != "2008-10-17" {
            return bad(format!("Version {v} is not a policy language version: use \"2012-10-17\""));
        }
    }
    for key in doc.keys() {
        if !["Version", "Statement", "Id"].contains(&key.as_str()) {
            return bad(format!("unknown top-level field \"{key}\": a policy has Version, Id and Statement"));
        }
    }
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
        Some(Value::Object(_)) => vec![&doc["Statement"]],
        _ => return bad("\"Statement\" must be a statement object or a non-empty list of them".into()),
    };
    for (i, st) in statements.iter().enumerate() {
        if let Err(msg) = validate_statement(st) {
            return bad(format!("Statement[{i}]: {msg}"));
        }
    }
    Ok(())
}

fn validate_statement(st: &Value) -> Result<(), String> {
    let Some(st) = st.as_object() else {
        return Err("a statement must be a JSON object".into());
    };
    for key in st.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Principal" | "NotPrincipal" | "Condition" => {}
            "Resource" | "NotResource" => {
                return Err(format!("has prohibited field {key}: a trust policy's resource is the role itself, remove it"));
            }
            other => return Err(format!("unknown field \"{other}\"")),
        }
    }
    if st.get("Sid").is_some_and(|s| !s.is_string()) {
        return Err("\"Sid\" must be a string".into());
    }
    match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") | Some("Deny") => {}
        _ => return Err(format!("\"Effect\" must be \"Allow\" or \"Deny\", got {}", st.get("Effect").unwrap_or(&Value::Null))),
    }
    match (st.get("Action"), st.get("NotAction")) {
        (Some(a), None) | (None, Some(a)) => {
            if strings(a).is_none_or(|v| v.is_empty()) {
                return Err("\"Action\" must be an action or a list of actions, e.g. \"sts:AssumeRoleWithWebIdentity\"".into());
            }
        }
        _ => return Err("give exactly one of \"Action\" and \"NotAction\"".into()),
    }
    match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), None) | (None, Some(p)) => validate_principal(p)?,
        _ => {
            return Err(
                "give exactly one of \"Principal\" and \"NotPrincipal\"; for web identity: \"Principal\": {\"Federated\": \"<OIDC provider ARN>\"}".into()
            )
        }
    }
    if let Some(c) = st.get("Condition") {
        let Some(ops) = c.as_object() else {
            return Err("\"Condition\" must be an object of operators, e.g. {\"StringEquals\": {\"<provider>:sub\": \"...\"}}".into());
        };
        for (op, block) in ops {
            if parse_operator(op).is_none() {
                return Err(format!("unknown condition operator \"{op}\""));
            }
            let Some(block) = block.as_object() else {
                return Err(format!("condition {op} must map keys to values"));
            };
            for (key, v) in block {
                if condition_values(v).is_none() {
                    return Err(format!("condition {op} \"{key}\" must have a string or a list of strings"));
                }
            }
        }
    }
    Ok(())
}

fn validate_principal(p: &Value) -> Result<(), String> {
    if p == "*" {
        return Ok(());
    }
    let Some(map) = p.as_object() else {
        return Err("\"Principal\" must be \"*\" or an object such as {\"Federated\": \"<OIDC provider ARN>\"}".into());
    };
    if map.is_empty() {
        return Err("\"Principal\" is empty".into());
    }
    for (kind, v) in map {
        if !["AWS", "Federated", "Service", "CanonicalUser"].contains(&kind.as_str()) {
            return Err(format!("unknown principal type \"{kind}\": use AWS, Federated, Service or CanonicalUser"));
        }
        if strings(v).is_none_or(|v| v.is_empty()) {
            return Err(format!("principal {kind} must be a string or a list of strings"));
        }
        if kind == "Federated" {
            for f in strings(v).unwrap_or_default() {
                if f.starts_with("arn:") {
                    Arn::parse(f).map_err(|e| format!("principal Federated: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

/// A string or a list of strings; `None` for anything else.
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => a.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Condition values: IAM also takes booleans and numbers and compares their text.
fn condition_values(v: &Value) -> Option<Vec<String>> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Array(a) => a.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

// ------------------------------------------------------------------------------------------------
// Condition operators
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Single,
    AnyValue,
    AllValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Equals,
    EqualsIgnoreCase,
    Like,
    Null,
    /// Numeric, date and IP operators: kite's web-identity context has no such keys.
    Unsupported,
}

#[derive(Clone, Copy, Debug)]
struct Operator {
    set: SetOp,
    base: Base,
    negated: bool,
    if_exists: bool,
}

fn parse_operator(name: &str) -> Option<Operator> {
    let lower = name.to_ascii_lowercase();
    let (set, rest) = if let Some(r) = lower.strip_prefix("foranyvalue:") {
        (SetOp::AnyValue, r)
    } else if let Some(r) = lower.strip_prefix("forallvalues:") {
        (SetOp::AllValues, r)
    } else {
        (SetOp::Single, lower.as_str())
    };
    let (rest, if_exists) = match rest.strip_suffix("ifexists") {
        Some(r) if r != "null" => (r, true),
        _ => (rest, false),
    };
    let known = OPERATORS.iter().any(|op| op.eq_ignore_ascii_case(rest));
    if !known {
        return None;
    }
    let (base, negated) = match rest {
        "stringequals" | "arnequals" | "binaryequals" => (Base::Equals, false),
        "stringnotequals" | "arnnotequals" => (Base::Equals, true),
        "stringequalsignorecase" | "bool" => (Base::EqualsIgnoreCase, false),
        "stringnotequalsignorecase" => (Base::EqualsIgnoreCase, true),
        "stringlike" | "arnlike" => (Base::Like, false),
        "stringnotlike" | "arnnotlike" => (Base::Like, true),
        "null" => (Base::Null, false),
        "numericnotequals" | "datenotequals" | "notipaddress" => (Base::Unsupported, true),
        _ => (Base::Unsupported, false),
    };
    Some(Operator { set, base, negated, if_exists })
}

/// IAM wildcard match: `*` any run of characters, `?` any one character.
pub(crate) fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| if ignore_case { a.to_lowercase().eq(b.to_lowercase()) } else { a == b };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || eq(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn base_match(base: Base, pattern: &str, value: &str) -> bool {
    match base {
        Base::Equals => pattern == value,
        Base::EqualsIgnoreCase => pattern.to_lowercase() == value.to_lowercase(),
        Base::Like => wildcard_match(pattern, value, false),
        Base::Null | Base::Unsupported => false,
    }
}

/// Evaluates one operator on one key. `actual` is `None` when the request has no such key.
fn condition_holds(op: Operator, expected: &[String], actual: Option<&[String]>) -> bool {
    let actual = actual.filter(|v| !v.is_empty());
    if op.base == Base::Null {
        let wants_absent = expected.iter().any(|e| e.eq_ignore_ascii_case("true"));
        return actual.is_none() == wants_absent;
    }
    let Some(values) = actual else {
        // IAM: a missing key never matches, so negated and ForAllValues operators hold.
        return op.if_exists
            || match op.set {
                SetOp::AllValues => true,
                SetOp::AnyValue => false,
                SetOp::Single => op.negated,
            };
    };
    if op.base == Base::Unsupported {
        return false;
    }
    let matches = |v: &String| expected.iter().any(|e| base_match(op.base, e, v));
    let holds = |v: &String| matches(v) != op.negated;
    match op.set {
        SetOp::AnyValue => values.iter().any(holds),
        SetOp::AllValues => values.iter().all(holds),
        SetOp::Single if op.negated => values.iter().all(|v| !matches(v)),
        SetOp::Single => values.iter().any(matches),
    }
}

// ------------------------------------------------------------------------------------------------
// Evaluation
// ------------------------------------------------------------------------------------------------

/// The request context of AssumeRoleWithWebIdentity: the provider's condition keys and values.
struct Context<'a> {
    provider: &'a OidcProvider,
    keys: Vec<(String, Vec<String>)>,
}

impl<'a> Context<'a> {
    fn new(provider: &'a OidcProvider, facts: &TokenFacts) -> Context<'a> {
        let url = &provider.url;
        let aud_key = match &facts.azp {
            Some(azp) => vec![azp.clone()],
            None => facts.aud.clone(),
        };
        let keys = vec![
            (format!("{url}:sub"), vec![facts.sub.clone()]),
            (format!("{url}:aud"), aud_key),
            (format!("{url}:oaud"), facts.aud.clone()),
            (format!("{url}:amr"), facts.amr.clone()),
        ];
        Context { provider, keys }
    }

    /// Condition keys are case-insensitive in IAM.
    fn get(&self, key: &str) -> Option<&[String]> {
        self.keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_slice())
    }
}

/// How far a statement got before it stopped applying, for choosing the closest miss.
enum Outcome {
    Applies,
    Malformed(String),
    Action(String),
    Principal(String),
    /// A condition failed after `passed` others held.
    Condition {
        passed: usize,
        reason: String,
    },
}

impl Outcome {
    fn progress(&self) -> usize {
        match self {
            Outcome::Applies => usize::MAX,
            Outcome::Malformed(_) => 0,
            Outcome::Action(_) => 1,
            Outcome::Principal(_) => 2,
            Outcome::Condition { passed, .. } => 3 + passed,
        }
    }
}

/// Decides whether `policy` lets a token of `provider` with `facts` assume the role, as IAM does:
/// some Allow statement must apply and no Deny statement may apply. A statement applies when its
/// action matches `sts:AssumeRoleWithWebIdentity` (case-insensitive, `*`/`?` wildcards), its
/// principal is the provider (`{"Federated": "<provider ARN>"}`, or `"*"`), and every condition
/// holds (values within a key are ORed; keys and operators are ANDed).
pub fn evaluate_web_identity_trust(policy: &Value, provider: &OidcProvider, facts: &TokenFacts) -> Result<(), TrustDenial> {
    let ctx = Context::new(provider, facts);
    let statements: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    };
    let sid_of = |st: &Value| st.get("Sid").and_then(Value::as_str).map(str::to_string);
    let mut allowed = false;
    let mut closest: Option<(usize, Outcome)> = None;
    for (i, st) in statements.iter().enumerate() {
        let effect = st.get("Effect").and_then(Value::as_str);
        let outcome = statement_outcome(st, &ctx);
        match (effect, outcome) {
            (Some("Deny"), Outcome::Applies) => {
                let sid = sid_of(st);
                let named = sid.as_ref().map(|s| format!(" (Sid \"{s}\")")).unwrap_or_default();
                return Err(TrustDenial {
                    statement: Some(i),
                    sid,
                    explicit_deny: true,
                    reason: format!("Statement[{i}]{named} explicitly denies this token (sub \"{}\") and an explicit Deny overrides every Allow", facts.sub),
                });
            }
            (Some("Allow"), Outcome::Applies) => allowed = true,
            (Some("Allow"), outcome) if closest.as_ref().is_none_or(|(_, best)| outcome.progress() > best.progress()) => {
                closest = Some((i, outcome));
            }
            _ => {}
        }
    }
    if allowed {
        return Ok(());
    }
    let Some((i, outcome)) = closest else {
        return Err(TrustDenial {
            statement: None,
            sid: None,
            explicit_deny: false,
            reason: format!(
                "the role's trust policy has no Allow statement; add one with \"Action\": \"{ASSUME_ROLE_WITH_WEB_IDENTITY}\" and \"Principal\": {{\"Federated\": \"{}\"}}",
                provider.arn
            ),
        });
    };
    let sid = statements.get(i).and_then(|st| sid_of(st));
    let named = sid.as_ref().map(|s| format!(" (Sid \"{s}\")")).unwrap_or_default();
    let why = match outcome {
        Outcome::Malformed(m) | Outcome::Action(m) | Outcome::Principal(m) => m,
        Outcome::Condition { reason, .. } => reason,
        Outcome::Applies => String::new(),
    };
    Err(TrustDenial { statement: Some(i), sid, explicit_deny: false, reason: format!("closest is Statement[{i}]{named}: {why}") })
}

fn statement_outcome(st: &Value, ctx: &Context<'_>) -> Outcome {
    // Action / NotAction.
    let (actions, not_action) = match (st.get("Action"), st.get("NotAction")) {
        (Some(a), None) => (strings(a), false),
        (None, Some(a)) => (strings(a), true),
        _ => (None, false),
    };
    let Some(actions) = actions else {
        return Outcome::Malformed("the statement has no usable Action".into());
    };
    let listed = actions.iter().any(|p| wildcard_match(p, ASSUME_ROLE_WITH_WEB_IDENTITY, true));
    if listed == not_action {
        let field = if not_action { "NotAction excludes" } else { "it allows" };
        return Outcome::Action(format!("{field} {}, which does not cover {ASSUME_ROLE_WITH_WEB_IDENTITY}", quote_strs(&actions)));
    }
    // Principal / NotPrincipal.
    let provider_arn = ctx.provider.arn.to_string();
    let (principal, not_principal) = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), None) => (p, false),
        (None, Some(p)) => (p, true),
        _ => return Outcome::Malformed("the statement has no Principal".into()),
    };
    let federated: Vec<&str> = principal.get("Federated").and_then(strings).unwrap_or_default();
    let everyone = principal == "*" || principal.get("AWS").and_then(strings).is_some_and(|a| a.contains(&"*"));
    let named = everyone || federated.contains(&provider_arn.as_str());
    if named == not_principal {
        return Outcome::Principal(principal_mismatch(principal, &federated, &provider_arn, not_principal));
    }
    // Conditions.
    let Some(conditions) = st.get("Condition") else {
        return Outcome::Applies;
    };
    let Some(conditions) = conditions.as_object() else {
        return Outcome::Malformed("Condition is not an object".into());
    };
    let mut passed = 0;
    for (op_name, block) in conditions {
        let Some(op) = parse_operator(op_name) else {
            return Outcome::Condition { passed, reason: format!("condition operator \"{op_name}\" is unknown, so it never holds") };
        };
        let Some(block) = block.as_object() else {
            return Outcome::Condition { passed, reason: format!("condition {op_name} does not map keys to values") };
        };
        for (key, expected) in block {
            let Some(expected) = condition_values(expected) else {
                return Outcome::Condition { passed, reason: format!("condition {op_name} \"{key}\" has no usable values") };
            };
            let actual = ctx.get(key);
            if condition_holds(op, &expected, actual) {
                passed += 1;
            } else {
                return Outcome::Condition { passed, reason: explain_condition(op_name, op, key, &expected, actual, ctx) };
            }
        }
    }
    Outcome::Applies
}

fn principal_mismatch(principal: &Value, federated: &[&str], provider_arn: &str, not_principal: bool) -> String {
    if not_principal {
        return format!("its NotPrincipal excludes {provider_arn}, the provider this token came through");
    }
    if federated.is_empty() {
        return format!("it trusts {principal}, but web-identity tokens are matched through \"Principal\": {{\"Federated\": \"{provider_arn}\"}}");
    }
    let mut msg = format!("it trusts Federated {} but the token came through {provider_arn}", quote_strs(federated));
    if let Some(f) = federated.iter().find(|f| f.eq_ignore_ascii_case(provider_arn)) {
        msg.push_str(&format!(" (\"{f}\" differs only in case; ARNs must match exactly)"));
    } else if federated.iter().any(|f| !f.starts_with("arn:")) {
        msg.push_str(" (for an IAM OIDC provider, Federated must be the provider's ARN, not its URL)");
    }
    msg
}

fn explain_condition(op_name: &str, op: Operator, key: &str, expected: &[String], actual: Option<&[String]>, ctx: &Context<'_>) -> String {
    let claim = key.rsplit(':').next().unwrap_or(key);
    let shown_expected = if expected.len() == 1 { format!("\"{}\"", expected[0]) } else { format!("one of {}", quote_list(expected)) };
    let actual = actual.filter(|v| !v.is_empty());
    let Some(values) = actual else {
        if op.base == Base::Null {
            return format!("condition Null \"{key}\" requires the key to be present, but the token has no {claim}");
        }
        let url = &ctx.provider.url;
        let prefix = key.rsplit_once(':').map(|(p, _)| p).unwrap_or("");
        let hint = if prefix.starts_with("https://") && provider_url_of(prefix).eq_ignore_ascii_case(url) {
            format!("; write the key without https://, as \"{url}:{claim}\"")
        } else if !prefix.eq_ignore_ascii_case(url) {
            format!("; the key is for provider \"{prefix}\" but this token came from \"{url}\", whose keys are \"{url}:sub\", \"{url}:aud\", \"{url}:oaud\" and \"{url}:amr\"")
        } else {
            format!("; from a token IAM only sets \"{url}:sub\", \"{url}:aud\", \"{url}:oaud\" and \"{url}:amr\"")
        };
        return format!("condition {op_name} \"{key}\" expects {shown_expected} but the request has no such key{hint}");
    };
    let shown_actual = if values.len() == 1 { format!("\"{}\"", values[0]) } else { quote_list(values) };
    if op.base == Base::Null {
        return format!("condition Null \"{key}\" requires the key to be absent, but the token's {claim} is {shown_actual}");
    }
    if op.base == Base::Unsupported {
        return format!("condition {op_name} \"{key}\" cannot hold: kite compares token claims only with string operators");
    }
    let verb = match (op.set, op.negated, op.base) {
        (SetOp::AllValues, false, _) => format!("expects every value to match {shown_expected}"),
        (SetOp::AllValues, true, _) => format!("expects no value to match {shown_expected}"),
        (_, true, _) => format!("forbids {shown_expected}"),
        (_, false, Base::Like) => format!("expects a match for {shown_expected}"),
        (_, false, _) => format!("expects {shown_expected}"),
    };
    format!("condition {op_name} \"{key}\" {verb} but the token's {claim} is {shown_actual}")
}

/// Whether `policy` lets the AWS service principal `service` (e.g. `pods.eks.amazonaws.com`)
/// perform every one of `actions` on the role, as IAM decides it for a service assuming a role:
/// for each action some Allow statement naming the service (or `*`) must apply and no Deny may.
/// `context` holds the request's condition keys (`aws:SourceAccount`, `aws:RequestTag/…`); a
/// condition on a key missing from it does not hold, as in IAM.
pub fn evaluate_service_trust(policy: &Value, service: &str, actions: &[&str], context: &[(String, Vec<String>)]) -> Result<(), String> {
    let statements: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    };
    for action in actions {
        let mut allowed = false;
        let mut closest: Option<String> = None;
        for (i, st) in statements.iter().enumerate() {
            match service_statement(st, service, action, context) {
                Ok(()) if st.get("Effect").and_then(Value::as_str) == Some("Deny") => {
                    return Err(format!("Statement[{i}] explicitly denies {action} to {service}"));
                }
                Ok(()) => allowed = true,
                Err(why) => {
                    if st.get("Effect").and_then(Value::as_str) == Some("Allow") && closest.is_none() {
                        closest = Some(format!("Statement[{i}] {why}"));
                    }
                }
            }
        }
        if !allowed {
            let why = closest.unwrap_or_else(|| "no statement allows it".into());
            return Err(format!("the trust policy does not allow {service} to perform {action}: {why}"));
        }
    }
    Ok(())
}

/// Ok when the statement applies to `service` performing `action` in `context`; else why not.
fn service_statement(st: &Value, service: &str, action: &str, context: &[(String, Vec<String>)]) -> Result<(), String> {
    let (actions, not_action) = match (st.get("Action").and_then(strings), st.get("NotAction").and_then(strings)) {
        (Some(a), None) => (a, false),
        (None, Some(a)) => (a, true),
        _ => return Err("has no usable Action".into()),
    };
    if actions.iter().any(|p| wildcard_match(p, action, true)) == not_action {
        return Err(format!("allows {} but not {action}", quote_strs(&actions)));
    }
    let principal = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), None) => p,
        _ => return Err("has no Principal (NotPrincipal does not name a service)".into()),
    };
    let services: Vec<&str> = principal.get("Service").and_then(strings).unwrap_or_default();
    let everyone = principal == "*" || principal.get("AWS").and_then(strings).is_some_and(|a| a.contains(&"*"));
    if !everyone && !services.contains(&service) {
        return Err(format!("trusts {principal} rather than {{\"Service\": \"{service}\"}}"));
    }
    let Some(conditions) = st.get("Condition").and_then(Value::as_object) else {
        return Ok(());
    };
    for (op_name, block) in conditions {
        let (Some(op), Some(block)) = (parse_operator(op_name), block.as_object()) else {
            return Err(format!("has condition operator \"{op_name}\" that never holds"));
        };
        for (key, expected) in block {
            let expected = condition_values(expected).unwrap_or_default();
            let actual = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_slice());
            if !condition_holds(op, &expected, actual) {
                let seen = actual.map(quote_list).unwrap_or_else(|| "absent".into());
                return Err(format!("has condition {op_name} \"{key}\" expecting {} but the request's value is {seen}", quote_list(&expected)));
            }
        }
    }
    Ok(())
}

fn quote_list(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", parts.join(", "))
}

fn quote_strs(v: &[&str]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "oidc.example.com/id/ABC";

    fn provider() -> OidcProvider {
        OidcProvider::new("123456789012", &format!("https://{URL}"), vec!["sts.amazonaws.com".into()], vec![]).unwrap()
    }

    fn facts(sub: &str) -> TokenFacts {
        TokenFacts { iss: format!("https://{URL}"), sub: sub.into(), aud: vec!["sts.amazonaws.com".into()], ..Default::default() }
    }

    fn irsa_policy(sub: &str) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    "oidc.example.com/id/ABC:aud": "sts.amazonaws.com",
                    "oidc.example.com/id/ABC:sub": sub,
                }}
            }]
        })
    }

    fn deny(policy: &Value, f: &TokenFacts) -> TrustDenial {
        evaluate_web_identity_trust(policy, &provider(), f).unwrap_err()
    }

    #[test]
    fn the_irsa_trust_policy_admits_its_service_account() {
        let p = irsa_policy("system:serviceaccount:default:app");
        assert_eq!(evaluate_web_identity_trust(&p, &provider(), &facts("system:serviceaccount:default:app")), Ok(()));
    }

    #[test]
    fn another_service_account_is_denied_with_the_expected_and_actual_subject() {
        let p = irsa_policy("system:serviceaccount:default:app");
        let d = deny(&p, &facts("system:serviceaccount:default:other"));
        assert_eq!(d.statement, Some(0));
        assert!(
            d.reason.contains(
                "condition StringEquals \"oidc.example.com/id/ABC:sub\" expects \"system:serviceaccount:default:app\" \
                 but the token's sub is \"system:serviceaccount:default:other\""
            ),
            "{d}"
        );
        assert!(d.to_string().starts_with("Not authorized to perform sts:AssumeRoleWithWebIdentity"));
    }

    #[test]
    fn a_wrong_audience_names_the_audience_the_token_has() {
        let p = irsa_policy("system:serviceaccount:default:app");
        let mut f = facts("system:serviceaccount:default:app");
        f.aud = vec!["api://AzureADTokenExchange".into()];
        let d = deny(&p, &f);
        assert!(d.reason.contains("expects \"sts.amazonaws.com\" but the token's aud is \"api://AzureADTokenExchange\""), "{d}");
    }

    #[test]
    fn condition_keys_match_case_insensitively_and_values_within_a_key_are_ored() {
        let p = json!({"Statement": {
            "Effect": "Allow",
            "Principal": {"Federated": ["arn:aws:iam::123456789012:oidc-provider/other.example.com", "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"]},
            "Action": ["s3:GetObject", "STS:assumerolewithwebidentity"],
            "Condition": {"StringEquals": {"OIDC.EXAMPLE.COM/id/abc:SUB": ["system:serviceaccount:a:x", "system:serviceaccount:b:y"]}}
        }});
        assert!(evaluate_web_identity_trust(&p, &provider(), &facts("system:serviceaccount:b:y")).is_ok());
        assert!(evaluate_web_identity_trust(&p, &provider(), &facts("system:serviceaccount:c:z")).is_err());
    }

    #[test]
    fn string_like_and_action_wildcards_match_namespaces() {
        let p = json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
            "Action": "sts:AssumeRoleWith*",
            "Condition": {"StringLike": {"oidc.example.com/id/ABC:sub": "system:serviceaccount:team-?:*"}}
        }]});
        assert!(evaluate_web_identity_trust(&p, &provider(), &facts("system:serviceaccount:team-a:anything")).is_ok());
        let d = deny(&p, &facts("system:serviceaccount:team-ab:x"));
        assert!(d.reason.contains("expects a match for \"system:serviceaccount:team-?:*\""), "{d}");
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow() {
        let mut p = irsa_policy("system:serviceaccount:default:app");
        p["Statement"].as_array_mut().unwrap().push(json!({
            "Sid": "NoDefault",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sts:*",
            "Condition": {"StringLike": {"oidc.example.com/id/ABC:sub": "system:serviceaccount:default:*"}}
        }));
        let d = deny(&p, &facts("system:serviceaccount:default:app"));
        assert!(d.explicit_deny && d.statement == Some(1) && d.sid.as_deref() == Some("NoDefault"), "{d:?}");
        assert!(d.reason.contains("explicit Deny overrides"), "{d}");
    }

    #[test]
    fn string_not_equals_excludes_and_explains_what_it_forbids() {
        let p = json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringNotEquals": {"oidc.example.com/id/ABC:sub": "system:serviceaccount:kube-system:admin"}}
        }]});
        assert!(evaluate_web_identity_trust(&p, &provider(), &facts("system:serviceaccount:default:app")).is_ok());
        let d = deny(&p, &facts("system:serviceaccount:kube-system:admin"));
        assert!(d.reason.contains("forbids \"system:serviceaccount:kube-system:admin\""), "{d}");
    }

    #[test]
    fn set_operators_follow_iam_semantics_for_multi_valued_and_missing_keys() {
        let stmt = |op: &str, key: &str, vals: Value| {
            json!({"Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {op: {key: vals}}
            }]})
        };
        let mut f = facts("s1");
        f.amr = vec!["authenticated".into(), "mfa".into()];
        let ok = |p: &Value, f: &TokenFacts| evaluate_web_identity_trust(p, &provider(), f).is_ok();
        let amr = "oidc.example.com/id/ABC:amr";
        assert!(ok(&stmt("ForAnyValue:StringLike", amr, json!("mf*")), &f));
        assert!(!ok(&stmt("ForAllValues:StringEquals", amr, json!("mfa")), &f));
        assert!(ok(&stmt("ForAllValues:StringEquals", amr, json!(["mfa", "authenticated"])), &f));
        // A missing key: ForAllValues holds, ForAnyValue does not, IfExists holds, Null "true" holds.
        let none = facts("s1");
        assert!(ok(&stmt("ForAllValues:StringEquals", amr, json!("mfa")), &none));
        assert!(!ok(&stmt("ForAnyValue:StringEquals", amr, json!("mfa")), &none));
        assert!(ok(&stmt("StringEqualsIfExists", amr, json!("mfa")), &none));
        assert!(ok(&stmt("Null", amr, json!("true")), &none));
        assert!(!ok(&stmt("Null", amr, json!("true")), &f));
        assert!(ok(&stmt("StringNotEquals", amr, json!("mfa")), &none));
    }

    #[test]
    fn azp_becomes_the_aud_key_and_aud_moves_to_oaud() {
        let p = |key: &str, v: &str| {
            json!({"Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {key: v}}
            }]})
        };
        let mut f = facts("s1");
        f.azp = Some("client-1".into());
        assert!(evaluate_web_identity_trust(&p("oidc.example.com/id/ABC:aud", "client-1"), &provider(), &f).is_ok());
        assert!(evaluate_web_identity_trust(&p("oidc.example.com/id/ABC:oaud", "sts.amazonaws.com"), &provider(), &f).is_ok());
    }

    #[test]
    fn a_condition_key_for_another_provider_or_with_https_is_pointed_out() {
        let p = irsa_policy("system:serviceaccount:default:app");
        let other = OidcProvider::new("123456789012", "https://oidc.example.com/id/XYZ", vec!["sts.amazonaws.com".into()], vec![]).unwrap();
        let mut p2 = p.clone();
        p2["Statement"][0]["Principal"]["Federated"] = json!(other.arn.to_string());
        let mut f = facts("system:serviceaccount:default:app");
        f.iss = other.issuer();
        let d = evaluate_web_identity_trust(&p2, &other, &f).unwrap_err();
        assert!(d.reason.contains("the key is for provider \"oidc.example.com/id/ABC\" but this token came from \"oidc.example.com/id/XYZ\""), "{d}");

        let p3 = json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"https://oidc.example.com/id/ABC:sub": "x"}}
        }]});
        let d = deny(&p3, &facts("x"));
        assert!(d.reason.contains("without https://"), "{d}");
    }

    #[test]
    fn a_statement_for_another_provider_or_action_says_so() {
        let mut p = irsa_policy("s1");
        p["Statement"][0]["Principal"]["Federated"] = json!("arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/OTHER");
        let d = deny(&p, &facts("s1"));
        assert!(d.reason.contains("it trusts Federated [\"arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/OTHER\"]"), "{d}");
        let mut p = irsa_policy("s1");
        p["Statement"][0]["Action"] = json!("sts:AssumeRole");
        let d = deny(&p, &facts("s1"));
        assert!(d.reason.contains("it allows [\"sts:AssumeRole\"], which does not cover sts:AssumeRoleWithWebIdentity"), "{d}");
        let mut p = irsa_policy("s1");
        p["Statement"][0]["Principal"] = json!({"Service": "ec2.amazonaws.com"});
        assert!(deny(&p, &facts("s1")).reason.contains("Federated"));
    }

    #[test]
    fn the_closest_statement_is_the_one_that_got_furthest() {
        let p = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Sid": "Irsa", "Effect": "Allow",
             "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {"oidc.example.com/id/ABC:aud": "sts.amazonaws.com", "oidc.example.com/id/ABC:sub": "want"}}}
        ]});
        let d = deny(&p, &facts("got"));
        assert_eq!((d.statement, d.sid.as_deref()), (Some(1), Some("Irsa")));
        assert!(d.reason.contains("closest is Statement[1] (Sid \"Irsa\")"), "{d}");
    }

    #[test]
    fn a_policy_without_allow_statements_says_what_to_add() {
        let d = deny(&json!({"Statement": []}), &facts("s"));
        assert_eq!(d.statement, None);
        assert!(d.reason.contains("no Allow statement"), "{d}");
    }

    #[test]
    fn trust_policies_are_validated_with_the_statement_and_rule() {
        assert!(validate_trust_policy(&irsa_policy("x")).is_ok());
        let cases = [
            (json!([]), "JSON object"),
            (json!({"Statement": []}), "non-empty list"),
            (json!({"Version": "2020-01-01", "Statement": {}}), "Version"),
            (json!({"Statement": [{"Effect": "allow", "Principal": "*", "Action": "sts:*"}]}), "Statement[0]: \"Effect\""),
            (json!({"Statement": [{"Effect": "Allow", "Action": "sts:*"}]}), "Principal"),
            (json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Resource": "*"}]}), "prohibited field Resource"),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"StringEqual": {"a": "b"}}}]}),
                "unknown condition operator \"StringEqual\"",
            ),
            (json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"}, "Action": "sts:*"}]}), "12 digits"),
            (json!({"Statement": [{"Effect": "Allow", "Principal": {"Web": "x"}, "Action": "sts:*"}]}), "unknown principal type"),
        ];
        for (policy, needle) in cases {
            let e = validate_trust_policy(&policy).unwrap_err().to_string();
            assert!(e.contains(needle), "{policy}: {e}");
        }
        assert!(parse_operator("ForAnyValue:StringLikeIfExists").is_some());
        assert!(parse_operator("NullIfExists").is_none());
    }

    #[test]
    fn roles_get_an_aroa_id_and_checked_names_and_durations() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let r = Role::new("123456789012", "app-role", Some("/team/"), irsa_policy("x"), None, now).unwrap();
        assert_eq!(r.arn.to_string(), "arn:aws:iam::123456789012:role/team/app-role");
        assert_eq!(r.max_session_duration, 3600);
        assert!(r.role_id.starts_with("AROA") && r.role_id.len() == 21);
        assert!(r.role_id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert!(Role::new("123456789012", "bad name", None, irsa_policy("x"), None, now).is_err());
        assert!(Role::new("123456789012", &"x".repeat(65), None, irsa_policy("x"), None, now).is_err());
        let e = Role::new("123456789012", "r", None, irsa_policy("x"), Some(60), now).unwrap_err().to_string();
        assert!(e.contains("3600-43200"), "{e}");
        assert!(Role::new("123456789012", "r", None, json!({}), None, now).is_err());
        let back: Role = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn providers_check_issuer_and_audience_before_any_policy() {
        let p = provider();
        assert_eq!(p.arn.to_string(), "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC");
        assert_eq!(p.accept_token(&facts("s")).unwrap(), "sts.amazonaws.com");
        let mut f = facts("s");
        f.aud = vec!["other".into()];
        let e = p.accept_token(&f).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidIdentityToken);
        assert!(e.message.contains("Incorrect token audience"), "{}", e.message);
        assert!(OidcProvider::new("123456789012", "http://x.example", vec!["a".into()], vec![]).is_err());
        assert!(OidcProvider::new("123456789012", "https://x.example", vec![], vec![]).is_err());
        assert!(OidcProvider::new("123456789012", "https://x.example", vec!["a".into()], vec!["abc".into()]).is_err());
        let ok = OidcProvider::new("123456789012", "https://x.example", vec!["a".into(), "a".into()], vec!["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280".into()])
            .unwrap();
        assert_eq!(ok.client_ids, vec!["a"]);
        assert_eq!(ok.thumbprints, vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]);
    }

    #[test]
    fn finding_a_provider_by_issuer_points_out_a_trailing_slash() {
        let providers = vec![provider()];
        assert!(find_provider(&providers, "https://oidc.example.com/id/ABC").is_ok());
        let e = find_provider(&providers, "https://oidc.example.com/id/ABC/").unwrap_err();
        assert!(e.message.contains("No OpenIDConnect provider found") && e.message.contains("trailing slash"), "{}", e.message);
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(!wildcard_match("ABC", "abc", false));
        assert!(wildcard_match("ABC", "abc", true));
        assert!(wildcard_match("*", "", false));
    }
}
