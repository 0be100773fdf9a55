//! The STS endpoint: refusals in AWS's XML shape, and web identity tokens at their expiry, to the second.

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

/// Posts `body` as JSON with the admin's management token.
async fn create(server: &Server, path: &str, body: serde_json::Value) -> serde_json::Value {
    let token = server.access_token(t0()).await;
    let request =
        Request::post(path).header("authorization", format!("Bearer {token}")).header("content-type", "application/json").body(Body::from(body.to_string()));
    let (status, response) = server.send(t0(), request.unwrap()).await;
    let body = json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn a_web_identity_token_is_exchanged_until_one_second_before_exp_and_refused_as_expired_at_it() {
    let server = Server::start().await;
    let issuer = server.state.issuer_v2();
    let provider = create(&server, "/kite/aws/oidcProviders", serde_json::json!({"Url": issuer, "ClientIDList": ["sts.amazonaws.com"]})).await;
    let oid = server.state.store.find_principals(&server.app_id).await.unwrap()[0].object_id.to_string();
    let condition = serde_json::json!({"StringEquals": {format!("{}:sub", issuer.trim_start_matches("https://")): oid}});
    let statement =
        serde_json::json!({"Effect": "Allow", "Principal": {"Federated": provider["Arn"]}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition});
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [statement]});
    let role = create(&server, "/kite/aws/roles", serde_json::json!({"RoleName": "reader", "AssumeRolePolicyDocument": policy})).await;
    let issued = t0();
    let (_, body) = server.token(issued, &server.secret.clone(), "sts.amazonaws.com/.default").await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let exp = issued + time::Duration::seconds(crate::support::LIFETIME);
    let path = format!(
        "/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=pod-1&RoleArn={}&WebIdentityToken={token}",
        role["Arn"].as_str().unwrap()
    );

    let (status, response) = server.send(exp - time::Duration::seconds(1), Request::get(&path).body(Body::empty()).unwrap()).await;
    let body = json(response).await.to_string();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<AccessKeyId>ASIA"), "{body}");

    let (status, response) = server.send(exp, Request::get(&path).body(Body::empty()).unwrap()).await;
    let body = json(response).await.to_string();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("<Code>ExpiredTokenException</Code>"), "{body}");
}
