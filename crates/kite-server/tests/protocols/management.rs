//! The management API's bearer tokens: ARM's codes, expiry exact to the second.

use axum::http::StatusCode;
use time::Duration;

use crate::support::{t0, Server, LIFETIME};

#[tokio::test]
async fn an_access_token_is_accepted_one_second_before_its_exp_and_refused_as_expired_at_it() {
    let server = Server::start().await;
    let issued = t0();
    let token = server.access_token(issued).await;
    let exp = issued + Duration::seconds(LIFETIME);

    let (status, body) = server.get(exp - Duration::seconds(1), "/subscriptions", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = server.get(exp, "/subscriptions", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "ExpiredAuthenticationToken", "{body}");
}

#[tokio::test]
async fn a_request_without_a_bearer_token_is_authentication_failed_and_says_how_to_get_one() {
    let server = Server::start().await;
    let (status, body) = server.get(t0(), "/subscriptions", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "AuthenticationFailed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("kite login"), "{body}");
}

#[tokio::test]
async fn a_token_for_another_audience_is_invalid_not_expired() {
    let server = Server::start().await;
    let (status, body) = server.token(t0(), &server.secret.clone(), "api://somewhere-else/.default").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.get(t0(), "/subscriptions", body["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken", "{body}");
}
