//! Token-endpoint throughput against raw RS256 signing, on one core, in the same run.
//!
//! The endpoint's work beyond signing (form parsing, client lookup, salted-hash check, routing)
//! should cost little next to the RSA signature: the target is ≥ 90 % of the raw signing rate for
//! `client_credentials` with a client secret. Requests go through the real router (no socket, no
//! TLS: those are the same for every endpoint and not what this measures).
//!
//! Run: `cargo bench -p kite-server --bench token_throughput`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kite_server::{app, prepare};
use kite_store::{SqlStore, Store};
use kite_token::AccessClaims;
use tower::ServiceExt;

mod support;

const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(4);

/// Runs `op` repeatedly for MEASURE after WARMUP; returns operations per second.
async fn rate<F, Fut>(mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    while start.elapsed() < WARMUP {
        op().await;
    }
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < MEASURE {
        op().await;
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("kite.db").display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, &kite_store::Kek::generate("bench")?).await?);
        let config = support::config(dir.path(), &url, None, None);
        let (state, creds) = prepare(store, &config, "https://127.0.0.1:8443", None).await?;
        let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(creds.expect("fresh store bootstraps"))?)?;
        let (tenant, app_id, secret) =
            (creds["tenant"].as_str().unwrap_or_default(), creds["appId"].as_str().unwrap_or_default(), creds["password"].as_str().unwrap_or_default());

        let keys = state.keys();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            aud: "https://management.azure.com".into(),
            iss: state.issuer_v2(),
            iat: now,
            nbf: now,
            exp: now + 3600,
            tid: tenant.into(),
            oid: app_id.into(),
            sub: app_id.into(),
            appid: app_id.into(),
            azp: app_id.into(),
            idtyp: "app".into(),
            ver: "2.0".into(),
        };
        let signing = rate(|| {
            let token = keys.sign(&claims);
            async move {
                assert!(token.is_ok());
            }
        })
        .await;

        let router = app(state.clone());
        let form = format!(
            "grant_type=client_credentials&client_id={app_id}&client_secret={secret}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_info=1"
        );
        let path = format!("/{tenant}/oauth2/v2.0/token");
        let endpoint = rate(|| {
            let req = Request::post(&path).header("content-type", "application/x-www-form-urlencoded").body(Body::from(form.clone()));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.expect("request builds")).await.expect("router answers");
                assert_eq!(resp.status(), StatusCode::OK);
            }
        })
        .await;

        println!("raw RS256 signing (1 core):                 {signing:>8.0} tokens/s");
        println!("token endpoint, client secret (1 core):     {endpoint:>8.0} tokens/s");
        println!("endpoint / raw signing:                     {:>8.1} %  (target >= 90 %)", 100.0 * endpoint / signing);
        Ok(())
    })
}
