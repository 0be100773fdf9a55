//! ARNs of the identities an STS deals with: IAM roles, users, OIDC providers and the account root,
//! and the STS session ARNs (`assumed-role`, `federated-user`) that GetCallerIdentity returns.
//!
//! Parsing is strict and every refusal says what is wrong and how to write it instead, because a
//! mistyped ARN in a trust policy or an `aws-auth` entry otherwise fails silently much later.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Partitions kite accepts (the ones aws-iam-authenticator recognises).
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

const RESOURCE_TYPES: [&str; 6] = ["role", "user", "oidc-provider", "root", "assumed-role", "federated-user"];

/// What an ARN names. Role and user paths are kept as IAM shows them: `/` or `/a/b/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `arn:aws:iam::ACCT:root`, the account itself (trust policies and aws-iam-authenticator use it).
    Root,
    Role {
        path: String,
        name: String,
    },
    User {
        path: String,
        name: String,
    },
    /// The provider's URL without `https://`, e.g. `oidc.eks.us-west-2.amazonaws.com/id/ABC`.
    OidcProvider {
        url: String,
    },
    /// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`. STS leaves the role's path out.
    AssumedRole {
        role_name: String,
        session_name: String,
    },
    FederatedUser {
        name: String,
    },
}

/// A parsed, validated ARN. Construct it with [`Arn::parse`] or the typed constructors so that an
/// `Arn` value is always one kite could have produced itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Arn {
    partition: String,
    account: String,
    resource: Resource,
}

/// True for a string of exactly 12 ASCII digits (leading zeros are part of the ID).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks an account ID, explaining the rule when it is broken.
pub fn validate_account_id(s: &str) -> Result<()> {
    if is_account_id(s) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!("account ID '{s}' must be exactly 12 digits, leading zeros included (e.g. 012345678901)")))
}

/// The characters IAM allows in role, user and session names: `[\w+=,.@-]` with ASCII `\w`.
pub(crate) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Role and user names: 1-64 of `[\w+=,.@-]`.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(is_iam_name_char) {
        return Err(Error::InvalidArgument(format!("invalid {kind} name '{name}': use 1-64 letters, digits or any of _+=,.@-")));
    }
    Ok(())
}

/// Session names as STS takes them in RoleSessionName: 2-64 of `[\w+=,.@-]`.
pub(crate) fn validate_session_name(name: &str) -> Result<()> {
    if name.len() < 2 || name.len() > 64 || !name.chars().all(is_iam_name_char) {
        return Err(Error::InvalidArgument(format!("invalid role session name '{name}': use 2-64 letters, digits or any of _+=,.@-")));
    }
    Ok(())
}

/// IAM paths: `/` or `/segment/.../`, printable ASCII without spaces, at most 512 characters.
pub(crate) fn validate_path(path: &str) -> Result<()> {
    let ok = path.starts_with('/') && path.ends_with('/') && path.len() <= 512 && !path.contains("//") && path.chars().all(|c| ('!'..='~').contains(&c));
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "invalid IAM path '{path}': use '/' or '/segment/…/' (printable ASCII, no spaces, at most 512 characters)"
        )));
    }
    Ok(())
}

fn validate_partition(p: &str) -> Result<()> {
    if PARTITIONS.contains(&p) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!("unknown partition '{p}': use one of {}", PARTITIONS.join(", "))))
}

/// An OIDC issuer in the form IAM uses in provider ARNs and condition keys: without `https://`.
/// IAM keeps a trailing slash (`auth.example.com/`) because the issuer's `iss` has it.
pub(crate) fn provider_url_of(issuer_or_url: &str) -> &str {
    issuer_or_url.strip_prefix("https://").unwrap_or(issuer_or_url)
}

fn validate_provider_url(url: &str) -> Result<()> {
    let host = url.split('/').next().unwrap_or("");
    let ok = !host.is_empty() && url.len() <= 255 && !url.contains("://") && !url.contains(['?', '#']) && url.chars().all(|c| ('!'..='~').contains(&c));
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "invalid OIDC provider URL '{url}': give the issuer without https://, e.g. oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE \
             (at most 255 characters, no query or fragment)"
        )));
    }
    Ok(())
}

impl Arn {
    fn build(account: &str, resource: Resource) -> Result<Arn> {
        validate_account_id(account)?;
        Ok(Arn { partition: "aws".into(), account: account.into(), resource })
    }

    /// `arn:aws:iam::ACCT:role{path}{name}`; `path` defaults to `/`.
    pub fn role(account: &str, path: Option<&str>, name: &str) -> Result<Arn> {
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_name("role", name)?;
        Arn::build(account, Resource::Role { path: path.into(), name: name.into() })
    }

    /// `arn:aws:iam::ACCT:user{path}{name}`; `path` defaults to `/`.
    pub fn user(account: &str, path: Option<&str>, name: &str) -> Result<Arn> {
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_name("user", name)?;
        Arn::build(account, Resource::User { path: path.into(), name: name.into() })
    }

    /// `arn:aws:iam::ACCT:oidc-provider/URL`; a leading `https://` is dropped, as IAM does.
    pub fn oidc_provider(account: &str, issuer_or_url: &str) -> Result<Arn> {
        let url = provider_url_of(issuer_or_url);
        validate_provider_url(url)?;
        Arn::build(account, Resource::OidcProvider { url: url.into() })
    }

    /// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`, the ARN of a session of `role` (a role ARN).
    pub fn assumed_role(role: &Arn, session_name: &str) -> Result<Arn> {
        let Resource::Role { name, .. } = &role.resource else {
            return Err(Error::InvalidArgument(format!("'{role}' is not a role ARN: only roles can be assumed")));
        };
        validate_session_name(session_name)?;
        Ok(Arn {
            partition: role.partition.clone(),
            account: role.account.clone(),
            resource: Resource::AssumedRole { role_name: name.clone(), session_name: session_name.into() },
        })
    }

    /// Parses any supported ARN.
    pub fn parse(s: &str) -> Result<Arn> {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(Error::InvalidArgument(format!(
                "'{s}' is not an ARN: expected arn:<partition>:<service>:<region>:<account>:<resource>, \
                 e.g. arn:aws:iam::123456789012:role/MyRole"
            )));
        }
        let (partition, service, region, account, resource) = (parts[1], parts[2], parts[3], parts[4], parts[5]);
        validate_partition(partition)?;
        if service != "iam" && service != "sts" {
            return Err(Error::InvalidArgument(format!(
                "'{s}': service '{service}' does not name an identity: use iam (role/, user/, oidc-provider/, root) \
                 or sts (assumed-role/, federated-user/)"
            )));
        }
        if !region.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "'{s}': {service} ARNs have no region, leave it empty: arn:{partition}:{service}::{account}:{resource}"
            )));
        }
        if account.is_empty() {
            return Err(Error::InvalidArgument(format!("'{s}' has no account ID: write arn:{partition}:{service}::<12-digit account>:{resource}")));
        }
        validate_account_id(account).map_err(|e| Error::InvalidArgument(format!("'{s}': {e}")))?;
        let (kind, rest) = match resource.split_once('/') {
            Some((k, r)) => (k, Some(r)),
            None => (resource, None),
        };
        let expected_service = match kind {
            "role" | "user" | "oidc-provider" | "root" => "iam",
            "assumed-role" | "federated-user" => "sts",
            _ => {
                let hint = crate::suggest::closest(kind, RESOURCE_TYPES).map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default();
                return Err(Error::InvalidArgument(format!(
                    "'{s}': unknown resource type '{kind}'{hint}: expected role/, user/, oidc-provider/ or root (service iam), \
                     or assumed-role/ or federated-user/ (service sts)"
                )));
            }
        };
        if service != expected_service {
            return Err(Error::InvalidArgument(format!(
                "'{s}': {kind} ARNs belong to service '{expected_service}', not '{service}': \
                 write arn:{partition}:{expected_service}::{account}:{resource}"
            )));
        }
        let at = |e: Error| Error::InvalidArgument(format!("'{s}': {e}"));
        let resource = match (kind, rest) {
            ("root", None) => Resource::Root,
            ("root", Some(_)) => return Err(Error::InvalidArgument(format!("'{s}': the account root ARN ends in ':root', with nothing after it"))),
            (_, None) | (_, Some("")) => {
                return Err(Error::InvalidArgument(format!("'{s}': nothing follows '{kind}/': add the {kind} name")));
            }
            ("role", Some(rest)) | ("user", Some(rest)) => {
                let (path, name) = match rest.rfind('/') {
                    Some(i) => (format!("/{}", &rest[..=i]), &rest[i + 1..]),
                    None => ("/".to_string(), rest),
                };
                validate_path(&path).map_err(at)?;
                validate_name(kind, name).map_err(at)?;
                if kind == "role" {
                    Resource::Role { path, name: name.into() }
                } else {
                    Resource::User { path, name: name.into() }
                }
            }
            ("oidc-provider", Some(url)) => {
                validate_provider_url(url).map_err(at)?;
                Resource::OidcProvider { url: url.into() }
            }
            ("assumed-role", Some(rest)) => {
                let segments: Vec<&str> = rest.split('/').collect();
                let [role_name, session_name] = segments[..] else {
                    return Err(Error::InvalidArgument(format!(
                        "'{s}': an assumed-role ARN is assumed-role/<role name>/<session name> (STS never includes the role's path)"
                    )));
                };
                validate_name("role", role_name).map_err(at)?;
                validate_session_name(session_name).map_err(at)?;
                Resource::AssumedRole { role_name: role_name.into(), session_name: session_name.into() }
            }
            ("federated-user", Some(name)) => {
                validate_name("federated user", name).map_err(at)?;
                Resource::FederatedUser { name: name.into() }
            }
            _ => return Err(Error::InvalidArgument(format!("'{s}': unknown resource '{resource}'"))),
        };
        Ok(Arn { partition: partition.into(), account: account.into(), resource })
    }

    /// Parses an ARN that must name an IAM role, explaining the usual mix-ups (a session ARN copied
    /// from GetCallerIdentity, a user ARN).
    pub fn parse_role(s: &str) -> Result<Arn> {
        let arn = Arn::parse(s)?;
        match &arn.resource {
            Resource::Role { .. } => Ok(arn),
            Resource::AssumedRole { role_name, .. } => Err(Error::InvalidArgument(format!(
                "'{s}' is a session of a role (what GetCallerIdentity returns), not the role: \
                 use arn:{}:iam::{}:role/{role_name} (add the role's path if it has one)",
                arn.partition, arn.account
            ))),
            other => Err(Error::InvalidArgument(format!(
                "'{s}' names {}, but a role is needed: arn:{}:iam::{}:role/<name>",
                describe(other),
                arn.partition,
                arn.account
            ))),
        }
    }

    pub fn partition(&self) -> &str {
        &self.partition
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// `iam` or `sts`, implied by the resource type.
    pub fn service(&self) -> &'static str {
        match self.resource {
            Resource::AssumedRole { .. } | Resource::FederatedUser { .. } => "sts",
            _ => "iam",
        }
    }
}

impl Resource {
    /// What kind of principal or object this is, in words ("a role session").
    pub fn describe(&self) -> &'static str {
        describe(self)
    }
}

fn describe(r: &Resource) -> &'static str {
    match r {
        Resource::Root => "the account root",
        Resource::Role { .. } => "a role",
        Resource::User { .. } => "an IAM user",
        Resource::OidcProvider { .. } => "an OIDC provider",
        Resource::AssumedRole { .. } => "a role session",
        Resource::FederatedUser { .. } => "a federated user",
    }
}

/// The identity behind an ARN as aws-iam-authenticator compares it: an assumed-role session
/// becomes its role, `arn:aws:iam::ACCT:role/ROLE`. STS does not keep the role's path in session
/// ARNs, so the result has path `/` even when the role has another; everything else is unchanged.
pub fn canonicalize(arn: &Arn) -> Arn {
    match &arn.resource {
        Resource::AssumedRole { role_name, .. } => {
            Arn { partition: arn.partition.clone(), account: arn.account.clone(), resource: Resource::Role { path: "/".into(), name: role_name.clone() } }
        }
        _ => arn.clone(),
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:{}::{}:", self.partition, self.service(), self.account)?;
        match &self.resource {
            Resource::Root => write!(f, "root"),
            Resource::Role { path, name } => write!(f, "role{path}{name}"),
            Resource::User { path, name } => write!(f, "user{path}{name}"),
            Resource::OidcProvider { url } => write!(f, "oidc-provider/{url}"),
            Resource::AssumedRole { role_name, session_name } => write!(f, "assumed-role/{role_name}/{session_name}"),
            Resource::FederatedUser { name } => write!(f, "federated-user/{name}"),
        }
    }
}

impl FromStr for Arn {
    type Err = Error;
    fn from_str(s: &str) -> Result<Arn> {
        Arn::parse(s)
    }
}

impl TryFrom<String> for Arn {
    type Error = Error;
    fn try_from(s: String) -> Result<Arn> {
        Arn::parse(&s)
    }
}

impl From<Arn> for String {
    fn from(a: Arn) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        match Arn::parse(s) {
            Ok(a) => panic!("{s} parsed as {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn role_arns_parse_with_and_without_a_path() {
        let a = Arn::parse("arn:aws:iam::123456789012:role/Admin").unwrap();
        assert_eq!(a.resource(), &Resource::Role { path: "/".into(), name: "Admin".into() });
        let a = Arn::parse("arn:aws:iam::123456789012:role/team/ops/Admin").unwrap();
        assert_eq!(a.resource(), &Resource::Role { path: "/team/ops/".into(), name: "Admin".into() });
        assert_eq!(a.to_string(), "arn:aws:iam::123456789012:role/team/ops/Admin");
        assert_eq!(a.service(), "iam");
        assert_eq!(a.account(), "123456789012");
    }

    #[test]
    fn users_providers_root_and_sessions_parse_and_print_back() {
        for s in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:user/dev/alice@example.com",
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            "arn:aws:iam::012345678901:root",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws-cn:iam::123456789012:role/Admin",
        ] {
            assert_eq!(Arn::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn an_account_id_that_is_not_twelve_digits_is_refused_with_the_rule() {
        let e = err("arn:aws:iam::12345:role/Admin");
        assert!(e.contains("exactly 12 digits"), "{e}");
        assert!(err("arn:aws:iam::12345678901a:role/Admin").contains("12 digits"));
        assert!(err("arn:aws:iam:::role/Admin").contains("no account ID"));
    }

    #[test]
    fn a_role_under_sts_or_a_session_under_iam_names_the_right_service() {
        let e = err("arn:aws:sts::123456789012:role/Admin");
        assert!(e.contains("belong to service 'iam'") && e.contains("arn:aws:iam::123456789012:role/Admin"), "{e}");
        let e = err("arn:aws:iam::123456789012:assumed-role/Admin/s1");
        assert!(e.contains("belong to service 'sts'") && e.contains("arn:aws:sts::123456789012:assumed-role/Admin/s1"), "{e}");
    }

    #[test]
    fn an_unknown_resource_type_is_refused_with_a_suggestion() {
        let e = err("arn:aws:iam::123456789012:roles/Admin");
        assert!(e.contains("unknown resource type 'roles'") && e.contains("did you mean 'role'"), "{e}");
        assert!(err("arn:aws:iam::123456789012:group/Admins").contains("unknown resource type 'group'"));
    }

    #[test]
    fn other_malformed_arns_say_what_to_write() {
        assert!(err("role/Admin").contains("not an ARN"));
        assert!(err("arn:aws:ec2::123456789012:instance/i-1").contains("service 'ec2'"));
        assert!(err("arn:aws:iam:us-east-1:123456789012:role/Admin").contains("arn:aws:iam::123456789012:role/Admin"));
        assert!(err("arn:aws:iam::123456789012:role/").contains("add the role name"));
        assert!(err("arn:aws:iam::123456789012:role/bad name").contains("invalid role name"));
        assert!(err("arn:aws:iam::123456789012:oidc-provider/https://x.example").contains("without https://"));
        assert!(err("arn:aws:sts::123456789012:assumed-role/path/Admin/s1").contains("never includes the role's path"));
        assert!(err("arn:aws:iam::123456789012:root/x").contains("':root'"));
        assert!(err("arn:azure:iam::123456789012:role/A").contains("unknown partition"));
    }

    #[test]
    fn parse_role_explains_that_a_session_arn_is_not_its_role() {
        let e = Arn::parse_role("arn:aws:sts::123456789012:assumed-role/Admin/alice").unwrap_err().to_string();
        assert!(e.contains("use arn:aws:iam::123456789012:role/Admin"), "{e}");
        let e = Arn::parse_role("arn:aws:iam::123456789012:user/alice").unwrap_err().to_string();
        assert!(e.contains("an IAM user"), "{e}");
        assert!(Arn::parse_role("arn:aws:iam::123456789012:role/x/Admin").is_ok());
    }

    #[test]
    fn canonicalize_turns_a_session_into_its_role_without_a_path() {
        let s = Arn::parse("arn:aws:sts::123456789012:assumed-role/Admin/alice").unwrap();
        assert_eq!(canonicalize(&s).to_string(), "arn:aws:iam::123456789012:role/Admin");
        let r = Arn::parse("arn:aws:iam::123456789012:role/team/Admin").unwrap();
        assert_eq!(canonicalize(&r), r);
        let u = Arn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
        assert_eq!(canonicalize(&u), u);
    }

    #[test]
    fn constructors_validate_like_parse() {
        assert_eq!(Arn::role("123456789012", None, "A").unwrap().to_string(), "arn:aws:iam::123456789012:role/A");
        assert!(Arn::role("123", None, "A").is_err());
        assert!(Arn::role("123456789012", Some("nopath"), "A").is_err());
        let p = Arn::oidc_provider("123456789012", "https://oidc.example.com/id/ABC").unwrap();
        assert_eq!(p.to_string(), "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC");
        let r = Arn::role("123456789012", Some("/x/"), "A").unwrap();
        assert_eq!(Arn::assumed_role(&r, "s1").unwrap().to_string(), "arn:aws:sts::123456789012:assumed-role/A/s1");
        assert!(Arn::assumed_role(&r, "s").is_err());
        assert!(Arn::assumed_role(&p, "s1").is_err());
    }

    #[test]
    fn arns_serialize_as_their_string() {
        let a = Arn::parse("arn:aws:iam::123456789012:role/A").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"arn:aws:iam::123456789012:role/A\"");
        let back: Arn = serde_json::from_str("\"arn:aws:iam::123456789012:role/A\"").unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<Arn>("\"arn:aws:iam::1:role/A\"").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn name(min: usize) -> impl Strategy<Value = String> {
            proptest::string::string_regex(&format!("[A-Za-z0-9_+=,.@-]{{{min},64}}")).unwrap()
        }

        fn arn() -> impl Strategy<Value = Arn> {
            let path = proptest::collection::vec("[A-Za-z0-9_.-]{1,8}", 0..3).prop_map(|segs| {
                if segs.is_empty() {
                    "/".to_string()
                } else {
                    format!("/{}/", segs.join("/"))
                }
            });
            let resource = prop_oneof![
                Just(Resource::Root),
                (path.clone(), name(1)).prop_map(|(path, name)| Resource::Role { path, name }),
                (path, name(1)).prop_map(|(path, name)| Resource::User { path, name }),
                "[a-z0-9.-]{1,20}(/[A-Za-z0-9]{1,10}){0,2}".prop_map(|url| Resource::OidcProvider { url }),
                (name(1), name(2)).prop_map(|(role_name, session_name)| Resource::AssumedRole { role_name, session_name }),
                name(1).prop_map(|name| Resource::FederatedUser { name }),
            ];
            (proptest::sample::select(PARTITIONS.to_vec()), "[0-9]{12}", resource).prop_map(|(p, account, resource)| Arn {
                partition: p.to_string(),
                account,
                resource,
            })
        }

        proptest! {
            #[test]
            fn display_then_parse_gives_back_the_same_arn(a in arn()) {
                prop_assert_eq!(Arn::parse(&a.to_string()).unwrap(), a);
            }

            #[test]
            fn parse_never_panics_and_accepts_only_what_it_prints_back(s in "arn:[a-z-]{0,4}:[a-z]{0,4}:[a-z]{0,2}:[0-9]{0,13}:[a-z-]{0,14}(/[A-Za-z0-9@/.]{0,10})?") {
                if let Ok(a) = Arn::parse(&s) {
                    prop_assert_eq!(a.to_string(), s);
                }
            }
        }
    }
}
