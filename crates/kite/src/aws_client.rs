//! The CLI's side of kite's EKS-shaped API, reached as awscli reaches EKS: the endpoint from
//! `--endpoint-url` or `AWS_ENDPOINT_URL_EKS`, the CA from `AWS_CA_BUNDLE`, the credentials from
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for a role session), each
//! request signed with SigV4 for service `eks`. The signer is who the server records.

use anyhow::{anyhow, Context, Result};
use kite_core::aws::sigv4::{self, Signer};
use serde_json::Value;

use crate::client::ApiFailure;

pub struct AwsClient {
    http: reqwest::Client,
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AwsClient {
    pub fn from_env(endpoint: Option<String>) -> Result<AwsClient> {
        let endpoint = endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_EKS"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .ok_or_else(|| anyhow!("say where kite is: --endpoint-url https://HOST:PORT or AWS_ENDPOINT_URL_EKS (and AWS_CA_BUNDLE for kite's CA)"))?;
        let missing =
            |name: &str| anyhow!("{name} is not set: sign EKS calls with kite-issued AWS credentials (kite iam access-key create, or a role session)");
        let mut builder = reqwest::Client::builder().user_agent(concat!("kite-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = env("AWS_CA_BUNDLE") {
            let pem = std::fs::read(&ca).with_context(|| format!("reading AWS_CA_BUNDLE {ca}"))?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).context("AWS_CA_BUNDLE is not a PEM certificate")?);
        }
        Ok(AwsClient {
            http: builder.build().context("building the HTTP client")?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            access_key_id: env("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: env("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }

    /// One signed call; non-2xx answers become an [`ApiFailure`] with the server's code and message.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut req = sigv4::request_from_url(method, &url, &[("content-type", "application/json")]).map_err(|e| anyhow!("{e}"))?;
        req.body = payload.clone().into_bytes();
        let signer = Signer {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
            region: "us-east-1",
            service: "eks",
        };
        sigv4::sign(&mut req, &signer, time::OffsetDateTime::now_utc());
        let method = reqwest::Method::from_bytes(method.as_bytes()).context("HTTP method")?;
        let mut builder = self.http.request(method, &url).body(payload);
        for (k, v) in req.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let resp = builder.send().await.map_err(|e| anyhow!("cannot reach kite at {}: {e}", self.endpoint))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        ApiFailure::check(status, value)
    }
}
