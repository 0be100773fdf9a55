//! Test harness: runs the real `kite` binary as a server and as the CLI, each with its own KITE_HOME.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_kite");

pub struct Server {
    pub child: Child,
    pub url: String,
    /// The node agent listener (plain HTTP), where pods' IMDS and /v1/credentials calls go.
    pub agent_url: String,
    pub home: PathBuf,
    pub log: PathBuf,
    /// What the server printed to stdout before it listened (bootstrap notice).
    pub banner: String,
}

impl Server {
    pub fn start(home: &Path, extra: &[&str]) -> Server {
        Server::start_env(home, extra, &[])
    }

    /// [`Server::start`] with extra environment variables (e.g. libfaketime's, to move its clock).
    pub fn start_env(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let log = home.with_extension("server.log");
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] })
            .args(if extra.contains(&"--agent-listen") { &[][..] } else { &["--agent-listen", "127.0.0.1:0"][..] })
            .args(extra)
            .env("KITE_HOME", home)
            .envs(env.iter().copied())
            .env("KITE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kite serve starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let mut agent_url = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
                let _ = child.kill();
                panic!("kite serve exited before listening:\n{banner}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            banner.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("kite: node agent listening on ") {
                agent_url = url.to_string();
            }
            if let Some(url) = line.trim().strip_prefix("kite: listening on ") {
                break url.to_string();
            }
        };
        Server { child, url, agent_url, home: home.to_path_buf(), log, banner }
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.home.join("admin-credentials.json")
    }

    pub fn credentials(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.credentials_file()).unwrap()).unwrap()
    }

    pub fn ca(&self) -> PathBuf {
        self.home.join("tls/ca.pem")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Server {
    /// A pod's IMDS call as azure-identity makes it (header `Metadata: true`) to the node agent
    /// listener, from 127.0.0.1: the status code and the JSON body (null when the body is not JSON).
    pub fn imds(&self, resource: &str) -> (u16, Value) {
        let url = format!("{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}", self.agent_url);
        let out = Command::new("curl").args(["-sS", "-H", "Metadata: true", "-w", "\n%{http_code}", &url]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

impl Server {
    /// One HTTPS request with curl (kite's CA trusted): the status and the body as text.
    pub fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        self.curl_with_input(args, path, b"")
    }

    /// As [`Server::curl`], with `input` on curl's standard input (`--data-binary @-` sends it).
    pub fn curl_with_input(&self, args: &[&str], path: &str, input: &[u8]) -> (u16, String) {
        use std::io::Write;
        let mut child = Command::new("curl")
            .args(["-sS", "--cacert", self.ca().to_str().unwrap(), "-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("{}{path}", self.url))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// A management API call with a bearer token and an optional JSON body: status and JSON answer.
    pub fn api(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let auth = format!("Authorization: Bearer {token}");
        let mut args = vec!["-X", method, "-H", &auth, "-H", "content-type: application/json"];
        if body.is_some() {
            args.extend(["--data-binary", "@-"]);
        }
        let input = body.map(Value::to_string).unwrap_or_default();
        let (code, text) = self.curl_with_input(&args, path, input.as_bytes());
        (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// An access token from the token endpoint (client_credentials with a secret) for `scope`.
    pub fn access_token(&self, app_id: &str, secret: &str, scope: &str) -> String {
        let tenant = self.credentials()["tenant"].as_str().unwrap().to_string();
        let (id, secret, scope) = (format!("client_id={app_id}"), format!("client_secret={secret}"), format!("scope={scope}"));
        let form = ["-d", "grant_type=client_credentials", "--data-urlencode", &id, "--data-urlencode", &secret, "--data-urlencode", &scope];
        let (_, text) = self.curl(&form, &format!("/{tenant}/oauth2/v2.0/token"));
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        answer["access_token"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string()
    }

    /// The bootstrap admin's management token.
    pub fn admin_token(&self) -> String {
        let c = self.credentials();
        self.access_token(c["appId"].as_str().unwrap(), c["password"].as_str().unwrap(), "https://management.azure.com/.default")
    }
}

/// Polls `probe` (state the server re-reads every few seconds) until it gives a value; after 40 s
/// the test fails naming `what`, with the server's log.
pub fn wait_for<T>(what: &str, server: &Server, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; server log:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one CLI run produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts success and returns the JSON output.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts success and returns the text output.
    pub fn ok_text(&self) -> String {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self.stdout.clone()
    }

    /// Asserts a failure whose message contains every one of `needles`.
    pub fn fails_with(&self, needles: &[&str]) {
        assert_ne!(self.code, 0, "expected failure, got:\n{}", self.stdout);
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks '{n}':\n{}", self.stderr);
        }
    }
}

/// The CLI with its own KITE_HOME (so several principals can be signed in at once).
pub struct Cli {
    pub home: PathBuf,
}

impl Cli {
    pub fn new(home: &Path) -> Cli {
        std::fs::create_dir_all(home).unwrap();
        Cli { home: home.to_path_buf() }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// [`Cli::run`] with extra environment variables (AWS_* credentials, endpoints).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(BIN).args(args).env("KITE_HOME", &self.home).envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Signs in as the bootstrap admin.
    pub fn admin(home: &Path, server: &Server) -> Cli {
        let cli = Cli::new(home);
        // The file names the URL of the first start; a restarted server may listen elsewhere.
        cli.run(&["login", "--credentials-file", server.credentials_file().to_str().unwrap(), "--server", &server.url]).ok();
        cli
    }

    /// Signs in as a service principal with a secret.
    pub fn service_principal(home: &Path, server: &Server, app_id: &str, secret: &str) -> (Cli, Run) {
        let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
        Cli::service_principal_in(home, server, &tenant, app_id, secret)
    }

    /// As [`Cli::service_principal`], for a server that did not bootstrap the tenant itself.
    pub fn service_principal_in(home: &Path, server: &Server, tenant: &str, app_id: &str, secret: &str) -> (Cli, Run) {
        let cli = Cli::new(home);
        let run = cli.run(&[
            "login",
            "--service-principal",
            "-u",
            app_id,
            "-p",
            secret,
            "--tenant",
            tenant,
            "--server",
            &server.url,
            "--ca-file",
            server.ca().to_str().unwrap(),
        ]);
        (cli, run)
    }

    pub fn subscription(&self) -> String {
        self.run(&["account", "show", "--query", "id", "-o", "tsv"]).stdout.trim().to_string()
    }
}

/// What standard-mode pod identity starts from, made through a first server on `home`: a node
/// resource group holding the kubelet identity, and an app identity. Returns (subscription,
/// kubelet identity, app identity).
pub fn kubelet_and_app_identities(home: &Path, admin_home: &Path) -> (String, Value, Value) {
    let first = Server::start(home, &[]);
    let admin = Cli::admin(admin_home, &first);
    admin.run(&["group", "create", "-n", "MC_rg_prod_japaneast", "-l", "japaneast"]).ok();
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    let kubelet = admin.run(&["identity", "create", "-g", "MC_rg_prod_japaneast", "-n", "prod-agentpool"]).ok();
    let identity = admin.run(&["identity", "create", "-g", "apps", "-n", "app"]).ok();
    (admin.subscription(), kubelet, identity)
}
