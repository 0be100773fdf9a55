//! The CLI's side of the wire: the signed-in profile, tokens, and calls to the management API.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use kite_server::infra::tls::write_private;

/// Management API audience the CLI asks tokens for (what Azure's own CLI asks for ARM).
pub const MANAGEMENT_SCOPE: &str = "https://management.azure.com/.default";

/// What `kite login` keeps, in `$KITE_HOME/cli-profile.json`, readable only by the user.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub server: String,
    pub tenant: String,
    pub subscription: Option<String>,
    pub app_id: String,
    pub password: String,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_on: i64,
}

pub fn profile_path(home: &Path) -> PathBuf {
    home.join("cli-profile.json")
}

/// An API error, printed as az prints them: `(Code) message`.
#[derive(Debug)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
}

impl ApiFailure {
    /// A 2xx answer's body, or the failure its error (ARM's shape, else the body as it came) names.
    pub fn check(status: reqwest::StatusCode, value: Value) -> Result<Value> {
        if status.is_success() {
            return Ok(value);
        }
        Err(ApiFailure {
            code: value["error"]["code"].as_str().unwrap_or(status.as_str()).to_string(),
            message: value["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
        }
        .into())
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}) {}", self.code, self.message)
    }
}

impl std::error::Error for ApiFailure {}

pub struct Client {
    http: reqwest::Client,
    home: PathBuf,
    pub profile: Profile,
}

fn http_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder().user_agent(concat!("kite-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("reading the CA certificate {}", ca.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).context("the CA file is not a PEM certificate")?);
    }
    Ok(builder)
}

fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client> {
    http_builder(ca_file)?.build().context("building the HTTP client")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Client {
    pub fn load(home: &Path) -> Result<Client> {
        let path = profile_path(home);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            anyhow!(
                "not signed in. Run 'kite login --credentials-file {}' (written by the first 'kite serve'), \
                 or 'kite login --service-principal -u <appId> -p <secret> --tenant <tenant> --server <url>'",
                home.join("admin-credentials.json").display()
            )
        })?;
        let profile: Profile = serde_json::from_str(&text).with_context(|| format!("{} is damaged; run 'kite login' again", path.display()))?;
        Ok(Client { http: http_client(profile.ca_file.as_deref())?, home: home.to_path_buf(), profile })
    }

    /// Signs in with a client secret and keeps the profile.
    pub async fn login(home: &Path, mut profile: Profile) -> Result<Client> {
        profile.server = profile.server.trim_end_matches('/').to_string();
        let mut client = Client { http: http_client(profile.ca_file.as_deref())?, home: home.to_path_buf(), profile };
        client.refresh_token().await?;
        let subs = client.call(Method::GET, "/subscriptions", None).await?;
        if client.profile.subscription.is_none() {
            client.profile.subscription = subs["value"][0]["subscriptionId"].as_str().map(str::to_string);
        }
        client.save()?;
        Ok(client)
    }

    fn save(&self) -> Result<()> {
        std::fs::create_dir_all(&self.home)?;
        let path = profile_path(&self.home);
        write_private(&path, &serde_json::to_string_pretty(&self.profile)?)
    }

    async fn refresh_token(&mut self) -> Result<()> {
        let (token, expires_in) = self.fetch_token(MANAGEMENT_SCOPE).await?;
        self.profile.access_token = Some(token);
        self.profile.expires_on = now() + expires_in;
        Ok(())
    }

    /// A token for `scope` (client credentials) and its lifetime in seconds.
    async fn fetch_token(&self, scope: &str) -> Result<(String, i64)> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.profile.server, self.profile.tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.profile.app_id.as_str()),
            ("client_secret", self.profile.password.as_str()),
            ("scope", scope),
        ];
        let resp = self.http.post(&url).form(&form).send().await.map_err(|e| connect_error(&self.profile.server, e))?;
        let status = resp.status();
        let body: Value = resp.json().await.context("the token endpoint did not answer JSON")?;
        if !status.is_success() {
            let description = body["error_description"].as_str().unwrap_or("").lines().next().unwrap_or("").to_string();
            bail!("sign-in failed ({}): {description}", body["error"].as_str().unwrap_or("error"));
        }
        let token = body["access_token"].as_str().ok_or_else(|| anyhow!("the token endpoint answered no access_token"))?;
        Ok((token.to_string(), body["expires_in"].as_i64().unwrap_or(0)))
    }

    async fn token(&mut self) -> Result<String> {
        // Renew five minutes early so a long command never carries a token that expires mid-way.
        if self.profile.access_token.is_none() || self.profile.expires_on - now() < 300 {
            self.refresh_token().await?;
            self.save()?;
        }
        self.profile.access_token.clone().ok_or_else(|| anyhow!("no access token; run 'kite login'"))
    }

    pub fn subscription(&self) -> Result<&str> {
        self.profile.subscription.as_deref().ok_or_else(|| anyhow!("no subscription selected; run 'kite login' again"))
    }

    /// Calls the API; non-2xx answers become an [`ApiFailure`].
    pub async fn call(&mut self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_with(method, path, &[], body).await
    }

    pub async fn call_with(&mut self, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value> {
        let (mut status, mut value) = self.send(method.clone(), path, query, body).await?;
        // The server's clock decides expiry: a token this machine still thinks valid may not be.
        if status == reqwest::StatusCode::UNAUTHORIZED && value["error"]["code"] == "ExpiredAuthenticationToken" {
            self.refresh_token().await?;
            self.save()?;
            (status, value) = self.send(method, path, query, body).await?;
        }
        ApiFailure::check(status, value)
    }
}

impl Client {
    async fn send(&mut self, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<(reqwest::StatusCode, Value)> {
        let token = self.token().await?;
        let url = format!("{}{}", self.profile.server, path);
        let mut req = self.http.request(method, &url).bearer_auth(token).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| connect_error(&self.profile.server, e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) }))
    }
}

impl Client {
    /// A call to a vault's data plane at `vault_uri` (its `properties.vaultUri`), with a token for
    /// the vault's resource (`https://vault.<domain>[:port]`). The vault's DNS name is resolved to
    /// the signed-in server's address, so the CLI needs no DNS entry for it.
    pub async fn vault_call(&mut self, vault_uri: &str, method: Method, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Value> {
        let vault = reqwest::Url::parse(vault_uri).with_context(|| format!("the vault URI '{vault_uri}' does not parse"))?;
        let host = vault.host_str().ok_or_else(|| anyhow!("the vault URI '{vault_uri}' names no host"))?.to_string();
        let (_, domain) = host.split_once('.').ok_or_else(|| anyhow!("the vault URI '{vault_uri}' is not NAME.vault.DOMAIN"))?;
        let port = vault.port().map(|p| format!(":{p}")).unwrap_or_default();
        let (token, _) = self.fetch_token(&format!("https://{domain}{port}/.default")).await?;
        let server = reqwest::Url::parse(&self.profile.server).with_context(|| format!("the server URL '{}' does not parse", self.profile.server))?;
        let addr =
            server.socket_addrs(|| Some(443)).ok().and_then(|a| a.into_iter().next()).ok_or_else(|| anyhow!("cannot resolve {}", self.profile.server))?;
        let http = http_builder(self.profile.ca_file.as_deref())?.resolve(&host, addr).build().context("building the HTTP client")?;
        let url = format!("{}{path}", vault_uri.trim_end_matches('/'));
        let mut query: Vec<(&str, String)> = query.to_vec();
        query.push(("api-version", "7.5".into()));
        let mut req = http.request(method, &url).bearer_auth(token).query(&query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| connect_error(vault_uri, e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        ApiFailure::check(status, if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }
}

fn connect_error(server: &str, e: reqwest::Error) -> anyhow::Error {
    let mut msg = format!("cannot reach kite at {server}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    anyhow!("{msg}. Is 'kite serve' running, and does --ca-file name its CA (tls/ca.pem)?")
}
