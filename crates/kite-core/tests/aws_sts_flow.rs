//! The whole IRSA / EKS path through kite-core's public AWS API, as the server will drive it:
//! provider + role → AssumeRoleWithWebIdentity → XML → a boto3-style signed GetCallerIdentity
//! and an `aws eks get-token`-style presigned URL made with the returned credentials → the
//! identity aws-auth sees.

use kite_core::aws::iam::find_provider;
use kite_core::aws::sigv4::{self, presign, request_from_url, sign, SignedRequest, Signer};
use kite_core::aws::xml::{self, CallerIdentity};
use kite_core::aws::{canonicalize, Arn, ErrorCode, OidcProvider, Role, SessionIssuer, TokenFacts};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);
const SA: &str = "system:serviceaccount:default:s3-reader";

fn setup() -> (SessionIssuer, OidcProvider, Role) {
    let provider = OidcProvider::new("123456789012", "https://127.0.0.1:8443/oidc", vec!["sts.amazonaws.com".into()], vec![]).unwrap();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider.arn.to_string()},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"127.0.0.1:8443/oidc:sub": SA, "127.0.0.1:8443/oidc:aud": "sts.amazonaws.com"}}
        }]
    });
    let role = Role::new("123456789012", "s3-reader", Some("/irsa/"), policy, None, NOW).unwrap();
    (SessionIssuer::new(b"0123456789abcdef0123456789abcdef").unwrap(), provider, role)
}

fn facts(sub: &str) -> TokenFacts {
    TokenFacts { iss: "https://127.0.0.1:8443/oidc".into(), sub: sub.into(), aud: vec!["sts.amazonaws.com".into()], ..Default::default() }
}

#[test]
fn a_pod_assumes_its_role_and_then_is_who_sts_says_by_header_and_by_eks_token() {
    let (issuer, provider, role) = setup();
    let providers = vec![provider];
    let provider = find_provider(&providers, "https://127.0.0.1:8443/oidc").unwrap();
    let (creds, session) = issuer.assume_role_with_web_identity(&role, "pod-1", provider, &facts(SA), Some(900), NOW).unwrap();
    let body = xml::assume_role_with_web_identity_response(&creds, &session, "req-1");
    assert!(body.contains("<Arn>arn:aws:sts::123456789012:assumed-role/s3-reader/pod-1</Arn>"), "{body}");
    assert!(body.contains("<Expiration>2024-05-01T12:15:00Z</Expiration>"), "{body}");

    let signer = Signer {
        access_key_id: &creds.access_key_id,
        secret_access_key: &creds.secret_access_key,
        session_token: Some(&creds.session_token),
        region: "us-east-1",
        service: "sts",
    };

    // boto3: a header-signed POST.
    let mut call = SignedRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: vec![("Host".into(), "127.0.0.1:8443".into()), ("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())],
        body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
        ..Default::default()
    };
    sign(&mut call, &signer, NOW + Duration::seconds(1));
    let (_, who) = issuer.authenticate(&call, NOW + Duration::seconds(2)).unwrap();
    let id = CallerIdentity::of_session(&who);
    assert_eq!(id.arn, "arn:aws:sts::123456789012:assumed-role/s3-reader/pod-1");
    assert_eq!(id.user_id, format!("{}:pod-1", role.role_id));
    // aws-auth compares the canonical ARN, which drops the role's /irsa/ path as STS does.
    assert_eq!(canonicalize(&Arn::parse(&id.arn).unwrap()).to_string(), "arn:aws:iam::123456789012:role/s3-reader");
    assert_ne!(canonicalize(&Arn::parse(&id.arn).unwrap()), role.arn);

    // aws eks get-token: a presigned GET inside the token, verified against the cluster name.
    let mut get = SignedRequest {
        method: "GET".into(),
        path: "/".into(),
        query: vec![("Action".into(), "GetCallerIdentity".into()), ("Version".into(), "2011-06-15".into())],
        headers: vec![("host".into(), "127.0.0.1:8443".into()), ("x-k8s-aws-id".into(), "my-cluster".into())],
        ..Default::default()
    };
    presign(&mut get, &signer, NOW, 60);
    let query: Vec<String> = get.query.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    let url = format!("https://127.0.0.1:8443/?{}", query.join("&"));
    let req = request_from_url("GET", &url, &[("x-k8s-aws-id", "my-cluster")]).unwrap();
    let (verified, who) = issuer.authenticate(&req, NOW + Duration::minutes(10)).unwrap();
    assert!(verified.presigned && verified.is_header_signed("x-k8s-aws-id"));
    let json = xml::get_caller_identity_json(&CallerIdentity::of_session(&who), "req-2");
    assert!(json.contains("\"Arn\":\"arn:aws:sts::123456789012:assumed-role/s3-reader/pod-1\""), "{json}");

    // The session ends with its credentials.
    let e = issuer.authenticate(&req, NOW + Duration::minutes(15)).unwrap_err();
    assert_eq!(e.code, ErrorCode::ExpiredToken, "{e}");
}

#[test]
fn credentials_from_one_session_cannot_carry_another_sessions_token() {
    let (issuer, provider, role) = setup();
    let (a, _) = issuer.assume_role_with_web_identity(&role, "pod-a", &provider, &facts(SA), None, NOW).unwrap();
    let (b, _) = issuer.assume_role_with_web_identity(&role, "pod-b", &provider, &facts(SA), None, NOW).unwrap();
    let signer = Signer {
        access_key_id: &a.access_key_id,
        secret_access_key: &a.secret_access_key,
        session_token: Some(&b.session_token),
        region: "us-east-1",
        service: "sts",
    };
    let mut call = SignedRequest { method: "POST".into(), path: "/".into(), headers: vec![("Host".into(), "kite".into())], ..Default::default() };
    sign(&mut call, &signer, NOW);
    assert_eq!(issuer.authenticate(&call, NOW).unwrap_err().code, ErrorCode::InvalidClientTokenId);

    let unsigned_token = Signer { session_token: None, ..signer };
    let mut call = SignedRequest { method: "POST".into(), path: "/".into(), headers: vec![("Host".into(), "kite".into())], ..Default::default() };
    sign(&mut call, &unsigned_token, NOW);
    assert_eq!(issuer.authenticate(&call, NOW).unwrap_err().code, ErrorCode::InvalidClientTokenId);
}

#[test]
fn an_intruders_service_account_is_refused_with_the_subject_it_presented() {
    let (issuer, provider, role) = setup();
    let e = issuer.assume_role_with_web_identity(&role, "pod-1", &provider, &facts("system:serviceaccount:default:intruder"), None, NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::AccessDenied);
    let doc = xml::error_response(e.code, &e.message, "req-3");
    assert!(doc.contains("<Code>AccessDenied</Code>"), "{doc}");
    assert!(
        doc.contains(
            "expects &quot;system:serviceaccount:default:s3-reader&quot; but the token&apos;s sub is &quot;system:serviceaccount:default:intruder&quot;"
        ),
        "{doc}"
    );
}
