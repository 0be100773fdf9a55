//! The Entra-shaped token endpoint: AADSTS codes, lifetimes from the pinned clock, the brake.

use axum::http::StatusCode;
use serde_json::Value;
use time::Duration;

use crate::support::{t0, Server, LIFETIME, MANAGEMENT};

fn code(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or_default()
}

#[tokio::test]
async fn a_client_secret_works_until_one_second_before_its_end_and_is_expired_7000222_at_it() {
    let server = Server::start().await;
    let scope = format!("{MANAGEMENT}.default");
    let secret = server.secret.clone();

    let (status, body) = server.token(server.secret_end - Duration::seconds(1), &secret, &scope).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = server.token(server.secret_end, &secret, &scope).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!((body["error"].as_str(), code(&body)), (Some("invalid_client"), 7000222), "{body}");
}

#[tokio::test]
async fn the_token_times_come_from_the_clock_the_request_was_answered_at() {
    let server = Server::start().await;
    let at = t0() + Duration::days(3);
    let form = format!("grant_type=client_credentials&client_id={}&resource={MANAGEMENT}", server.app_id);
    let form = url::form_urlencoded::Serializer::new(form).append_pair("client_secret", &server.secret).finish();
    let (status, body) = server.post_form(at, &format!("/{}/oauth2/token", server.tenant), form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["not_before"], at.unix_timestamp().to_string());
    assert_eq!(body["expires_on"], (at.unix_timestamp() + LIFETIME).to_string());
}

#[tokio::test]
async fn a_wrong_secret_is_7000215_and_the_eleventh_failure_in_a_minute_is_throttled_50053() {
    let server = Server::start().await;
    let scope = format!("{MANAGEMENT}.default");
    for _ in 0..10 {
        let (status, body) = server.token(t0(), "not-the-secret", &scope).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, 7000215), "{body}");
    }
    let (status, body) = server.token(t0(), &server.secret.clone(), &scope).await;
    assert_eq!((status, code(&body)), (StatusCode::TOO_MANY_REQUESTS, 50053), "{body}");
}

#[tokio::test]
async fn requests_the_endpoint_cannot_serve_carry_their_aadsts_codes() {
    let server = Server::start().await;
    let (app, tenant) = (server.app_id.clone(), server.tenant.clone());
    let cases = [
        (format!("/{}/oauth2/v2.0/token", uuid::Uuid::new_v4()), format!("grant_type=client_credentials&client_id={app}"), 90002),
        (format!("/{tenant}/oauth2/v2.0/token"), format!("grant_type=password&client_id={app}"), 70003),
        (format!("/{tenant}/oauth2/v2.0/token"), "grant_type=client_credentials".to_string(), 900144),
        (format!("/{tenant}/oauth2/v2.0/token"), format!("grant_type=client_credentials&client_id={app}&scope={MANAGEMENT}"), 1002012),
        (format!("/{tenant}/oauth2/v2.0/token"), format!("grant_type=client_credentials&client_id={}&scope=x/.default", uuid::Uuid::new_v4()), 700016),
        (format!("/{tenant}/oauth2/v2.0/token"), format!("grant_type=client_credentials&client_id={app}&scope=x/.default"), 7000218),
    ];
    for (path, form, expected) in cases {
        let (status, body) = server.post_form(t0(), &path, form.clone()).await;
        assert_eq!(code(&body), expected, "{form}: {body}");
        assert!(status.is_client_error(), "{form}: {status}");
        assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{expected}: ")), "{body}");
    }
}
