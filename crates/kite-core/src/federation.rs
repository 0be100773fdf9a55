//! Federated identity credentials: trust in tokens from an external issuer (a Kubernetes cluster's
//! service-account issuer, GitHub Actions, …) for an app or a user-assigned identity, matched as
//! Entra ID matches them: issuer and subject exactly (case-sensitive), audience among the listed.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Entra's default audience for workload identity federation.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Entra allows at most this many federated credentials per app or identity.
pub const MAX_PER_OWNER: usize = 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl FederatedCredential {
    pub fn new(name: &str, issuer: &str, subject: &str, audiences: Vec<String>, description: Option<String>) -> Result<Self> {
        let name_ok = (3..=120).contains(&name.len())
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(Error::InvalidArgument(format!(
                "invalid federated credential name '{name}': use 3-120 letters, digits, '-' or '_', starting with a letter or digit"
            )));
        }
        if !issuer_url_ok(issuer) || issuer.len() > 600 || issuer.contains(char::is_whitespace) {
            return Err(Error::InvalidArgument(format!(
                "invalid issuer '{issuer}': give the issuer's https URL exactly as its tokens carry it in 'iss' \
                 (for AKS: az aks show --query oidcIssuerProfile.issuerUrl)"
            )));
        }
        if subject.trim().is_empty() || subject.len() > 600 {
            return Err(Error::InvalidArgument(
                "invalid subject: give the token's 'sub' exactly, e.g. system:serviceaccount:<namespace>:<service-account>".into(),
            ));
        }
        let audiences = if audiences.is_empty() { vec![DEFAULT_AUDIENCE.to_string()] } else { audiences };
        if audiences.len() != 1 || audiences[0].trim().is_empty() {
            return Err(Error::InvalidArgument(format!("give exactly one audience (Entra's rule), usually {DEFAULT_AUDIENCE}")));
        }
        Ok(FederatedCredential { name: name.into(), issuer: issuer.into(), subject: subject.into(), audiences, description })
    }
}

/// An issuer is an https URL, or http to a loopback host (tests, local clusters), with no
/// credentials in it; the host is parsed, so `http://localhost@evil` and `http://127.0.0.1.evil`
/// are not loopback. Whether kite will fetch it is decided at fetch time, by `kite serve`'s flags.
fn issuer_url_ok(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else { return false };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return false,
    };
    url.username().is_empty() && url.password().is_none() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// Why no federated credential accepts an assertion, with Entra's code. `message` is for the caller,
/// who may be anyone holding any token: it echoes only what the assertion presented, as Entra's
/// AADSTS70021 does. `detail` explains the closest miss (a trailing slash on the issuer is the
/// classic one) and names the `near` credentials: for the app's owner and the log, never the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationDenial {
    pub code: u32,
    pub message: String,
    pub detail: String,
    pub near: Vec<String>,
}

/// The credential that accepts an assertion with these claims, or Entra's refusal.
pub fn match_assertion<'a>(credentials: &'a [FederatedCredential], iss: &str, sub: &str, aud: &[String]) -> Result<&'a FederatedCredential, FederationDenial> {
    let no_record = format!(
        "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
        aud.join(",")
    );
    let by_issuer: Vec<&FederatedCredential> = credentials.iter().filter(|c| c.issuer == iss).collect();
    if by_issuer.is_empty() {
        let near: Vec<&FederatedCredential> =
            credentials.iter().filter(|c| c.issuer.trim_end_matches('/').eq_ignore_ascii_case(iss.trim_end_matches('/'))).collect();
        let detail = match near.first() {
            Some(c) => format!(
                "the assertion's issuer '{iss}' differs from the credential's '{}' only by case or a trailing slash: issuers must match exactly",
                c.issuer
            ),
            None => format!("no federated credential names the issuer '{iss}'"),
        };
        return Err(FederationDenial { code: 70021, message: no_record, detail, near: near.iter().map(|c| c.name.clone()).collect() });
    }
    let Some(by_subject) = by_issuer.iter().copied().find(|c| c.subject == sub) else {
        let expected: Vec<String> = by_issuer.iter().map(|c| format!("'{}' ({})", c.subject, c.name)).collect();
        return Err(FederationDenial {
            code: 70021,
            message: no_record,
            detail: format!("the assertion's subject '{sub}' is none of those registered for its issuer: {}", expected.join(", ")),
            near: by_issuer.iter().map(|c| c.name.clone()).collect(),
        });
    };
    if !by_subject.audiences.iter().any(|a| aud.contains(a)) {
        return Err(FederationDenial {
            code: 700212,
            message: format!("No matching federated identity record found for presented assertion audience '{}'.", aud.join(",")),
            detail: format!("the assertion's audience '{}' is not the credential's '{}'", aud.join(","), by_subject.audiences.join(",")),
            near: vec![by_subject.name.clone()],
        });
    }
    Ok(by_subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fic() -> FederatedCredential {
        FederatedCredential::new("kubernetes-app", "https://oidc.example.com/cluster1", "system:serviceaccount:default:app", vec![], None).unwrap()
    }

    #[test]
    fn issuers_are_https_or_loopback_http_judged_by_the_parsed_host() {
        let new = |issuer: &str| FederatedCredential::new("kubernetes-app", issuer, "sub", vec![], None);
        for ok in ["https://oidc.example.com/x", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:9"] {
            assert!(new(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://localhost@127.0.0.1:9",
            "http://127.0.0.1.evil.com",
            "http://localhost.evil.com",
            "https://user:pw@oidc.example.com",
            "http://oidc.example.com",
            "oidc",
        ] {
            assert!(new(refused).unwrap_err().to_string().contains("invalid issuer"), "{refused}");
        }
    }

    #[test]
    fn exact_issuer_subject_and_default_audience_match() {
        let creds = [fic()];
        let aud = vec![DEFAULT_AUDIENCE.to_string()];
        assert_eq!(match_assertion(&creds, "https://oidc.example.com/cluster1", "system:serviceaccount:default:app", &aud).unwrap().name, "kubernetes-app");
    }

    #[test]
    fn a_trailing_slash_or_another_subject_is_aadsts70021_with_the_reason() {
        let creds = [fic()];
        let aud = vec![DEFAULT_AUDIENCE.to_string()];
        let d = match_assertion(&creds, "https://oidc.example.com/cluster1/", "system:serviceaccount:default:app", &aud).unwrap_err();
        assert_eq!((d.code, d.near.as_slice()), (70021, ["kubernetes-app".to_string()].as_slice()));
        assert!(d.detail.contains("trailing slash"), "{}", d.detail);
        let d = match_assertion(&creds, "https://oidc.example.com/cluster1", "system:serviceaccount:default:other", &aud).unwrap_err();
        assert!(d.detail.contains("'system:serviceaccount:default:app' (kubernetes-app)"), "{}", d.detail);
        let d = match_assertion(&creds, "https://oidc.example.com/cluster1", "system:serviceaccount:default:app", &["other".into()]).unwrap_err();
        assert_eq!(d.code, 700212);
        assert!(d.detail.contains(DEFAULT_AUDIENCE), "{}", d.detail);
    }

    #[test]
    fn the_callers_message_echoes_only_what_the_assertion_presented() {
        let creds = [fic()];
        let aud = vec![DEFAULT_AUDIENCE.to_string()];
        let presented = |iss: &str, sub: &str| {
            format!("No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{DEFAULT_AUDIENCE}'.")
        };
        for (iss, sub) in [
            ("https://OIDC.example.com/cluster1/", "system:serviceaccount:default:app"),
            ("https://oidc.example.com/cluster1", "system:serviceaccount:default:other"),
        ] {
            assert_eq!(match_assertion(&creds, iss, sub, &aud).unwrap_err().message, presented(iss, sub));
        }
        let d = match_assertion(&creds, "https://oidc.example.com/cluster1", "system:serviceaccount:default:app", &["other".into()]).unwrap_err();
        assert_eq!(d.message, "No matching federated identity record found for presented assertion audience 'other'.");
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(FederatedCredential::new("x", "https://a", "s", vec![], None).is_err());
        assert!(FederatedCredential::new("good-name", "http://evil.example.com", "s", vec![], None).is_err());
        assert!(FederatedCredential::new("good-name", "https://a", " ", vec![], None).is_err());
        assert!(FederatedCredential::new("good-name", "https://a", "s", vec!["a".into(), "b".into()], None).is_err());
        assert!(FederatedCredential::new("good-name", "http://127.0.0.1:8080/issuer", "s", vec![], None).is_ok());
    }
}
