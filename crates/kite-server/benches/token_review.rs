//! TokenReview round trips per second through the real router (no socket): an `aws eks get-token`
//! token is unwrapped, its presigned GetCallerIdentity verified (SigV4 + sealed session token) and
//! the caller mapped through aws-auth. "Warm": the STS key and aws-auth are already loaded.
//!
//! Run: `cargo bench -p kite-server --bench token_review`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use kite_core::aws::sigv4::{self, presign, SignedRequest, Signer};
use kite_core::aws::{OidcProvider, Role, TokenFacts};
use kite_server::{app, prepare};
use kite_store::{SqlStore, Store};
use tower::ServiceExt;

mod support;

const MEASURE: Duration = Duration::from_secs(4);

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("kite.db").display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, &kite_store::Kek::generate("bench")?).await?);
        let aws_auth = dir.path().join("aws-auth.yaml");
        let public = "https://127.0.0.1:8443";
        let (probe, _) = prepare(store.clone(), &support::config(dir.path(), &url, Some("prod"), None), public, None).await?;
        let account = probe.aws_account();
        let role = Role::new(&account, "bench", None, serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/issuer.example"}, "Action": "sts:AssumeRoleWithWebIdentity"}]}), None, time::OffsetDateTime::now_utc())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(
            &aws_auth,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n    - rolearn: {}\n      username: bench:{{{{SessionName}}}}\n      groups:\n        - readers\n", role.arn),
        )?;
        let (state, _) = prepare(store, &support::config(dir.path(), &url, Some("prod"), Some(aws_auth)), public, None).await?;
        let provider = OidcProvider::new(&account, "https://issuer.example", vec!["sts.amazonaws.com".into()], vec![]).map_err(|e| anyhow::anyhow!("{e}"))?;
        let facts = TokenFacts { iss: "https://issuer.example".into(), sub: "s".into(), aud: vec!["sts.amazonaws.com".into()], ..Default::default() };
        let issuer = kite_server::token::sessions::issuer(&state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let (creds, _) = issuer.issue(&role, "bench", &provider, &facts, None, time::OffsetDateTime::now_utc()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let signer = Signer { access_key_id: &creds.access_key_id, secret_access_key: &creds.secret_access_key, session_token: Some(&creds.session_token), region: "us-east-1", service: "sts" };
        let mut get = SignedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: vec![("Action".into(), "GetCallerIdentity".into()), ("Version".into(), "2011-06-15".into())],
            headers: vec![("host".into(), "127.0.0.1:8443".into()), ("x-k8s-aws-id".into(), "prod".into())],
            ..Default::default()
        };
        presign(&mut get, &signer, time::OffsetDateTime::now_utc(), 60);
        let query: Vec<String> = get.query.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
        let token = format!("k8s-aws-v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{public}/?{}", query.join("&"))));
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}).to_string();

        let router = app(state);
        let review = || {
            let req = Request::post("/authenticate").header("content-type", "application/json").body(Body::from(body.clone()));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.expect("request builds")).await.expect("router answers");
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                assert_eq!(v["status"]["authenticated"], true, "{v}");
            }
        };
        for _ in 0..200 {
            review().await;
        }
        let (start, mut n) = (Instant::now(), 0u64);
        while start.elapsed() < MEASURE {
            review().await;
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("TokenReview (aws eks get-token token, aws-auth mapping), 1 core: {rate:>8.0} reviews/s ({:.1} µs each)", 1e6 / rate);
        Ok(())
    })
}
