//! STS response documents, element for element as STS sends them (botocore's query-protocol parser
//! reads them), and the JSON form of GetCallerIdentity that aws-iam-authenticator asks for with
//! `Accept: application/json`. Every text node is XML-escaped.

use quick_xml::escape::escape;
use serde_json::json;
use time::OffsetDateTime;

use super::sts::{Credentials, ErrorCode, Session};

/// The namespace of every STS response.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// `2024-05-01T13:00:00Z`: STS's timestamp form (UTC, whole seconds, `Z`).
pub fn iso8601(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// Who a GetCallerIdentity caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    /// `ROLEID:session` for a role session, the user ID for a user.
    pub user_id: String,
    pub account: String,
}

impl CallerIdentity {
    pub fn of_session(s: &Session) -> CallerIdentity {
        CallerIdentity { arn: s.assumed_role_arn.to_string(), user_id: s.assumed_role_id(), account: s.account().to_string() }
    }
}

/// The body of a successful AssumeRoleWithWebIdentity.
pub fn assume_role_with_web_identity_response(credentials: &Credentials, session: &Session, request_id: &str) -> String {
    format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{NAMESPACE}\">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>{subject}</SubjectFromWebIdentityToken>
    <Audience>{audience}</Audience>
    <AssumedRoleUser>
      <Arn>{arn}</Arn>
      <AssumedRoleId>{role_id}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{akid}</AccessKeyId>
    </Credentials>
    <Provider>{provider}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>{request_id}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
",
        subject = escape(session.subject.as_str()),
        audience = escape(session.audience.as_str()),
        arn = escape(session.assumed_role_arn.to_string().as_str()),
        role_id = escape(session.assumed_role_id().as_str()),
        token = escape(credentials.session_token.as_str()),
        secret = escape(credentials.secret_access_key.as_str()),
        expiration = iso8601(credentials.expiration),
        akid = escape(credentials.access_key_id.as_str()),
        provider = escape(session.provider.as_str()),
        request_id = escape(request_id),
    )
}

/// The body of a successful GetCallerIdentity (XML, what boto3 reads).
pub fn get_caller_identity_response(id: &CallerIdentity, request_id: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\">
  <GetCallerIdentityResult>
    <Arn>{arn}</Arn>
    <UserId>{user_id}</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>{request_id}</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
",
        arn = escape(id.arn.as_str()),
        user_id = escape(id.user_id.as_str()),
        account = escape(id.account.as_str()),
        request_id = escape(request_id),
    )
}

/// GetCallerIdentity as JSON, for `Accept: application/json` (aws-iam-authenticator's request).
pub fn get_caller_identity_json(id: &CallerIdentity, request_id: &str) -> String {
    json!({
        "GetCallerIdentityResponse": {
            "GetCallerIdentityResult": {"Account": id.account, "Arn": id.arn, "UserId": id.user_id},
            "ResponseMetadata": {"RequestId": request_id}
        }
    })
    .to_string()
}

/// An STS error document; serve it with `code.http_status()`.
pub fn error_response(code: ErrorCode, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{NAMESPACE}\">
  <Error>
    <Type>{fault}</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>{request_id}</RequestId>
</ErrorResponse>
",
        fault = code.fault(),
        code = code.as_str(),
        message = escape(message),
        request_id = escape(request_id),
    )
}

/// The JSON error shape AWS query services send for `Accept: application/json`.
pub fn error_json(code: ErrorCode, message: &str, request_id: &str) -> String {
    json!({"Error": {"Type": code.fault(), "Code": code.as_str(), "Message": message}, "RequestId": request_id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Arn;
    use quick_xml::events::Event;
    use quick_xml::Reader;
    use time::macros::datetime;

    fn session() -> (Credentials, Session) {
        // Session names cannot hold markup characters; the subject and the token can.
        let s = Session {
            access_key_id: "ASIAEXAMPLE000000001".into(),
            assumed_role_arn: Arn::parse("arn:aws:sts::123456789012:assumed-role/app/s1").unwrap(),
            role_id: "AROAEXAMPLE0000000001".into(),
            session_name: "s1".into(),
            subject: "system:serviceaccount:default:a&b<c>".into(),
            audience: "sts.amazonaws.com".into(),
            provider: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC".into(),
            expiration: datetime!(2024-05-01 13:00:00 UTC),
            tags: Vec::new(),
        };
        let c = Credentials {
            access_key_id: s.access_key_id.clone(),
            secret_access_key: "abc/def+ghi".into(),
            session_token: "tok\"en'".into(),
            expiration: s.expiration,
        };
        (c, s)
    }

    /// Element paths and texts, read back with a real XML parser.
    fn texts(xml: &str) -> Vec<(String, String)> {
        let mut reader = Reader::from_str(xml);
        let mut path: Vec<String> = Vec::new();
        let mut out = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) => path.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap()),
                Event::End(_) => {
                    path.pop();
                }
                Event::Text(t) => {
                    let text = t.decode().unwrap();
                    let text = quick_xml::escape::unescape(&text).unwrap().to_string();
                    if !text.trim().is_empty() {
                        out.push((path.join("/"), text));
                    }
                }
                Event::GeneralRef(r) => {
                    // quick-xml 0.38 reports entity references separately; fold them into the text.
                    let name = String::from_utf8(r.to_vec()).unwrap();
                    let ch = quick_xml::escape::unescape(&format!("&{name};")).unwrap().to_string();
                    match out.last_mut() {
                        Some((p, t)) if *p == path.join("/") => t.push_str(&ch),
                        _ => out.push((path.join("/"), ch)),
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        // Merge adjacent text pieces of the same element.
        let mut merged: Vec<(String, String)> = Vec::new();
        for (p, t) in out {
            match merged.last_mut() {
                Some((lp, lt)) if *lp == p => lt.push_str(&t),
                _ => merged.push((p, t)),
            }
        }
        merged
    }

    #[test]
    fn assume_role_with_web_identity_has_sts_elements_and_escaped_text() {
        let (c, s) = session();
        let xml = assume_role_with_web_identity_response(&c, &s, "req-1");
        assert!(xml.starts_with("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
        let r = "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult";
        let got = texts(&xml);
        let want = [
            (format!("{r}/SubjectFromWebIdentityToken"), "system:serviceaccount:default:a&b<c>"),
            (format!("{r}/Audience"), "sts.amazonaws.com"),
            (format!("{r}/AssumedRoleUser/Arn"), "arn:aws:sts::123456789012:assumed-role/app/s1"),
            (format!("{r}/AssumedRoleUser/AssumedRoleId"), "AROAEXAMPLE0000000001:s1"),
            (format!("{r}/Credentials/SessionToken"), "tok\"en'"),
            (format!("{r}/Credentials/SecretAccessKey"), "abc/def+ghi"),
            (format!("{r}/Credentials/Expiration"), "2024-05-01T13:00:00Z"),
            (format!("{r}/Credentials/AccessKeyId"), "ASIAEXAMPLE000000001"),
            (format!("{r}/Provider"), "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC"),
            ("AssumeRoleWithWebIdentityResponse/ResponseMetadata/RequestId".to_string(), "req-1"),
        ];
        let want: Vec<(String, String)> = want.into_iter().map(|(p, t)| (p, t.to_string())).collect();
        assert_eq!(got, want);
        assert!(xml.contains("a&amp;b&lt;c&gt;"));
    }

    #[test]
    fn get_caller_identity_renders_as_xml_and_as_the_authenticators_json() {
        let (_, s) = session();
        let id = CallerIdentity::of_session(&s);
        let xml = get_caller_identity_response(&id, "r2");
        assert_eq!(
            texts(&xml),
            vec![
                ("GetCallerIdentityResponse/GetCallerIdentityResult/Arn".to_string(), "arn:aws:sts::123456789012:assumed-role/app/s1".to_string()),
                ("GetCallerIdentityResponse/GetCallerIdentityResult/UserId".to_string(), "AROAEXAMPLE0000000001:s1".to_string()),
                ("GetCallerIdentityResponse/GetCallerIdentityResult/Account".to_string(), "123456789012".to_string()),
                ("GetCallerIdentityResponse/ResponseMetadata/RequestId".to_string(), "r2".to_string()),
            ]
        );
        let v: serde_json::Value = serde_json::from_str(&get_caller_identity_json(&id, "r2")).unwrap();
        let r = &v["GetCallerIdentityResponse"];
        assert_eq!(r["GetCallerIdentityResult"]["Account"], "123456789012");
        assert_eq!(r["GetCallerIdentityResult"]["Arn"], "arn:aws:sts::123456789012:assumed-role/app/s1");
        assert_eq!(r["GetCallerIdentityResult"]["UserId"], "AROAEXAMPLE0000000001:s1");
        assert_eq!(r["ResponseMetadata"]["RequestId"], "r2");
    }

    #[test]
    fn errors_carry_type_code_message_and_request_id() {
        let xml = error_response(ErrorCode::AccessDenied, "Not authorized: sub is \"a<b\"", "r3");
        assert!(xml.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
        assert_eq!(
            texts(&xml),
            vec![
                ("ErrorResponse/Error/Type".to_string(), "Sender".to_string()),
                ("ErrorResponse/Error/Code".to_string(), "AccessDenied".to_string()),
                ("ErrorResponse/Error/Message".to_string(), "Not authorized: sub is \"a<b\"".to_string()),
                ("ErrorResponse/RequestId".to_string(), "r3".to_string()),
            ]
        );
        for code in [
            ErrorCode::InvalidIdentityToken,
            ErrorCode::ExpiredTokenException,
            ErrorCode::SignatureDoesNotMatch,
            ErrorCode::InvalidClientTokenId,
            ErrorCode::ValidationError,
            ErrorCode::IdpRejectedClaim,
        ] {
            assert!(error_response(code, "m", "r").contains(&format!("<Code>{code}</Code>")));
        }
        let v: serde_json::Value = serde_json::from_str(&error_json(ErrorCode::ExpiredToken, "m", "r")).unwrap();
        assert_eq!(v["Error"]["Code"], "ExpiredToken");
    }

    #[test]
    fn timestamps_are_utc_whole_seconds_with_z() {
        assert_eq!(iso8601(datetime!(2024-05-01 15:00:00.9 +02:00)), "2024-05-01T13:00:00Z");
    }
}
