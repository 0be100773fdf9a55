//! A server in process for the protocol tests: a fresh tenant on a throw-away SQLite file, driven
//! through `app(state).oneshot(…)` with the clock pinned wherever a test says.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use kite_server::infra::clock::Clock;
use kite_server::infra::state::AppState;
use kite_server::{app, prepare, Config};

#[path = "../../benches/support/mod.rs"]
mod shared;
use kite_store::{SqlStore, Store};
use serde_json::Value;
use shared::config;
use time::OffsetDateTime;
use tower::ServiceExt;

pub const LIFETIME: i64 = 3600;
pub const MANAGEMENT: &str = "https://management.azure.com/";

pub struct Server {
    pub state: AppState,
    pub tenant: String,
    pub app_id: String,
    pub secret: String,
    /// When the bootstrap admin's secret stops working.
    pub secret_end: OffsetDateTime,
    _home: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        Server::with(|_| {}).await
    }

    /// A server whose configuration `adjust` changes first.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Server {
        let home = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", home.path().join("kite.db").display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, &kite_store::Kek::generate("test").unwrap()).await.unwrap());
        let mut config = Config { token_lifetime_secs: LIFETIME, ..config(home.path(), &url, None, None) };
        adjust(&mut config);
        let (state, creds) = prepare(store, &config, "https://kite.test", None).await.unwrap();
        let creds: Value = serde_json::from_str(&std::fs::read_to_string(creds.unwrap()).unwrap()).unwrap();
        let text = |k: &str| creds[k].as_str().unwrap().to_string();
        let secret_end = OffsetDateTime::parse(&text("endDateTime"), &time::format_description::well_known::Rfc3339).unwrap();
        Server { state, tenant: text("tenant"), app_id: text("appId"), secret: text("password"), secret_end, _home: home }
    }

    /// Sends `request` to the router with the clock pinned at `at`.
    pub async fn send(&self, at: OffsetDateTime, request: Request<Body>) -> (StatusCode, Response) {
        let state = AppState { clock: Clock::pinned(at), ..self.state.clone() };
        let response = app(state).oneshot(request).await.unwrap();
        (response.status(), response)
    }

    /// `request` to the node agent listener (`--agent-listen`), at `at`.
    pub async fn send_agent(&self, at: OffsetDateTime, request: Request<Body>) -> (StatusCode, Response) {
        let state = AppState { clock: Clock::pinned(at), ..self.state.clone() };
        let response = kite_server::agent::router(kite_server::agent::Agent::embedded(&state)).oneshot(request).await.unwrap();
        (response.status(), response)
    }

    /// `client_credentials` with the admin's secret at the v2 endpoint, for `scope`.
    pub async fn token(&self, at: OffsetDateTime, secret: &str, scope: &str) -> (StatusCode, Value) {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.app_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", scope)
            .finish();
        self.post_form(at, &format!("/{}/oauth2/v2.0/token", self.tenant), form).await
    }

    pub async fn post_form(&self, at: OffsetDateTime, path: &str, form: String) -> (StatusCode, Value) {
        let request = Request::post(path).header("content-type", "application/x-www-form-urlencoded").body(Body::from(form)).unwrap();
        let (status, response) = self.send(at, request).await;
        (status, json(response).await)
    }

    /// A management access token issued at `at`.
    pub async fn access_token(&self, at: OffsetDateTime) -> String {
        let (status, body) = self.token(at, &self.secret.clone(), &format!("{MANAGEMENT}.default")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, at: OffsetDateTime, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::get(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let (status, response) = self.send(at, request.body(Body::empty()).unwrap()).await;
        (status, json(response).await)
    }
}

impl Server {
    /// A JSON request (`body` may be `Null` for none) with an optional bearer token.
    pub async fn call(&self, at: OffsetDateTime, method: &str, path: &str, bearer: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
        let (status, response) = self.send(at, request.header("content-type", "application/json").body(body).unwrap()).await;
        (status, json(response).await)
    }

    /// An access token for any client's secret and scope.
    pub async fn client_token(&self, at: OffsetDateTime, client_id: &str, secret: &str, scope: &str) -> String {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", scope)
            .finish();
        let (status, body) = self.post_form(at, &format!("/{}/oauth2/v2.0/token", self.tenant), form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }
}

pub async fn json(response: Response) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

/// A fixed instant, so a test's times are the same on every run.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}
