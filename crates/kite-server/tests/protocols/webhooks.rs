//! The TokenReview webhook on kite-issued access tokens: expiry exact to the second.

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::support::{self, t0, Server, LIFETIME};

const AUDIENCE: &str = "api://k8s";

async fn review(server: &Server, at: OffsetDateTime, token: &str) -> Value {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let request = Request::post("/authenticate").header("content-type", "application/json").body(Body::from(review.to_string())).unwrap();
    let (_, response) = server.send(at, request).await;
    support::json(response).await["status"].clone()
}

#[tokio::test]
async fn a_kite_token_is_authenticated_until_one_second_before_exp_and_refused_as_expired_at_it() {
    let server = Server::with(|c| c.entra_audience = Some(AUDIENCE.into())).await;
    let issued = t0();
    let (_, body) = server.token(issued, &server.secret.clone(), &format!("{AUDIENCE}/.default")).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let exp = issued + Duration::seconds(LIFETIME);

    let status = review(&server, exp - Duration::seconds(1), &token).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["user"]["username"], server.state.store.find_principals(&server.app_id).await.unwrap()[0].object_id.to_string(), "{status}");

    let status = review(&server, exp, &token).await;
    assert_eq!(status["authenticated"], false, "{status}");
    assert!(status["error"].as_str().unwrap().contains("expired"), "{status}");
}

#[tokio::test]
async fn a_token_that_is_neither_eks_nor_a_jwt_is_not_authenticated_and_says_why() {
    let server = Server::start().await;
    let status = review(&server, t0(), "garbage").await;
    assert_eq!(status["authenticated"], false, "{status}");
    assert!(!status["error"].as_str().unwrap_or_default().is_empty(), "{status}");
}
