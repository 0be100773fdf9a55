//! The STS endpoint's refusals, in AWS's XML shape.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::{json, t0, Server};

#[tokio::test]
async fn an_unknown_or_missing_action_is_a_validation_error() {
    let server = Server::start().await;
    for (query, says) in [("?Action=AssumeRole&Version=2011-06-15", "AssumeRole"), ("", "Missing")] {
        let (status, response) = server.send(t0(), Request::get(format!("/{query}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body = json(response).await.to_string();
        assert!(body.contains("ValidationError") && body.contains(says), "{body}");
    }
}

#[tokio::test]
async fn a_web_identity_token_that_is_no_jwt_is_refused_as_invalid() {
    let server = Server::start().await;
    let path = "/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::000000000000:role/r&RoleSessionName=s&WebIdentityToken=nope";
    let (status, response) = server.send(t0(), Request::get(path).body(Body::empty()).unwrap()).await;
    let body = json(response).await.to_string();
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body.contains("<Code>"), "{body}");
}
