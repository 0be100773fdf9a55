//! End to end: EKS Pod Identity. Associations managed with `kite eks pod-identity-association`
//! (as `aws eks …-pod-identity-association`), and the agent's `GET /v1/credentials` answering a
//! pod's projected service-account token from a cluster issuer with its role's credentials.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use serde_json::{json, Value};
use support::{Cli, Server};

/// A cluster's service-account issuer: discovery and JWKS over loopback http, and RS256 tokens.
struct Issuer {
    url: String,
    keys: kite_token::KeySet,
}

impl Issuer {
    fn start() -> Issuer {
        let key = kite_token::SigningKey::generate("test cluster", 1).unwrap();
        let keys = kite_token::KeySet::new(&[key]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/openid/v1/jwks")}).to_string();
        let jwks = serde_json::to_string(keys.jwks()).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                let (status, body) = match line.split_whitespace().nth(1) {
                    Some("/.well-known/openid-configuration") => ("200 OK", discovery.as_str()),
                    Some("/openid/v1/jwks") => ("200 OK", jwks.as_str()),
                    _ => ("404 Not Found", "{}"),
                };
                let _ =
                    write!(&stream, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            }
        });
        Issuer { url, keys }
    }

    /// A projected token as the kubelet writes it for a pod: bound to the pod, for `aud`.
    fn token(&self, namespace: &str, service_account: &str, aud: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.keys
            .sign(&json!({
                "iss": self.url, "sub": format!("system:serviceaccount:{namespace}:{service_account}"), "aud": [aud],
                "iat": now, "nbf": now, "exp": now + 3600,
                "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": "sa-uid"},
                                  "pod": {"name": format!("{service_account}-7d9f"), "uid": "pod-uid"}}
            }))
            .unwrap()
    }
}

/// `GET /v1/credentials` as botocore sends it: the token verbatim as the Authorization header.
fn credentials(server: &Server, token: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--cacert", server.ca().to_str().unwrap(), "-H", "Accept: application/json"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: {t}")]);
    }
    let out = cmd.arg(format!("{}/v1/credentials", server.agent_url)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn role(cli: &Cli, dir: &std::path::Path, name: &str, statement: Value) -> String {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()).unwrap();
    let created = cli.run(&["iam", "role", "create", "--role-name", name, "--trust-policy", &format!("file://{}", file.display())]).ok();
    created["Role"]["Arn"].as_str().unwrap().to_string()
}

#[test]
fn a_pod_gets_its_associated_roles_credentials_until_the_association_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::start();
    let server = Server::start(&dir.path().join("srv"), &["--eks-cluster", "prod", "--cluster-issuer", &issuer.url, "--allow-http-issuer"]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let pods_role = role(
        &cli,
        dir.path(),
        "s3-reader",
        json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}),
    );
    let irsa_role = role(
        &cli,
        dir.path(),
        "irsa-only",
        json!({"Effect": "Allow", "Principal": {"Federated": pods_role.replace(":role/s3-reader", ":oidc-provider/oidc.example.com")}, "Action": "sts:AssumeRoleWithWebIdentity"}),
    );
    let create = |sa: &str, arn: &str| {
        cli.run(&[
            "eks",
            "pod-identity-association",
            "create",
            "--cluster-name",
            "prod",
            "--namespace",
            "default",
            "--service-account",
            sa,
            "--role-arn",
            arn,
            "--region",
            "eu-west-1",
        ])
    };

    // EKS's checks at creation: the role exists and trusts pods.eks.amazonaws.com to assume and tag it.
    create("app", &irsa_role).fails_with(&["InvalidParameterException", "pods.eks.amazonaws.com", "Add this statement", "sts:TagSession"]);
    create("app", &pods_role.replace("s3-reader", "nope")).fails_with(&["does not exist", "kite iam role create"]);
    let association = create("app", &pods_role).ok()["association"].clone();
    let id = association["associationId"].as_str().unwrap().to_string();
    assert!(id.starts_with("a-") && id.len() == 19, "{association}");
    let account = pods_role.split(':').nth(4).unwrap();
    assert_eq!(association["associationArn"], format!("arn:aws:eks:eu-west-1:{account}:podidentityassociation/prod/{id}"));
    assert_eq!((association["roleArn"].as_str(), association["serviceAccount"].as_str()), (Some(pods_role.as_str()), Some("app")));
    create("app", &pods_role).fails_with(&["ResourceInUseException", "default/app"]);

    let listed = cli.run(&["eks", "pod-identity-association", "list", "--cluster-name", "prod", "--namespace", "default"]).ok();
    assert_eq!(listed["associations"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["associations"][0]["associationId"], id.as_str());
    assert!(cli.run(&["eks", "pod-identity-association", "list", "--cluster-name", "staging"]).ok()["associations"].as_array().unwrap().is_empty());
    assert_eq!(cli.run(&["eks", "pod-identity-association", "describe", "--cluster-name", "prod", "--association-id", &id]).ok()["association"], association);

    // The pod's token buys temporary credentials for the role, in the agent's JSON.
    let (status, body) = credentials(&server, Some(&issuer.token("default", "app", "pods.eks.amazonaws.com")));
    assert_eq!(status, 200, "{body}");
    let creds: Value = serde_json::from_str(&body).unwrap();
    assert!(creds["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{creds}");
    assert_eq!(creds["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert!(!creds["Token"].as_str().unwrap().is_empty() && creds["Expiration"].as_str().unwrap().ends_with('Z'));
    assert_eq!(creds["AccountId"], account);

    // Refusals say what is wrong: another service account, the wrong audience, a forged token, none.
    let (status, body) = credentials(&server, Some(&issuer.token("default", "other", "pods.eks.amazonaws.com")));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("(ResourceNotFoundException)") && body.contains("service account default/other") && body.contains("cluster prod"), "{body}");
    let (status, body) = credentials(&server, Some(&issuer.token("default", "app", "sts.amazonaws.com")));
    assert_eq!(status, 400);
    assert!(body.contains("InvalidTokenException") && body.contains("audience pods.eks.amazonaws.com"), "{body}");
    let forger = Issuer { url: issuer.url.clone(), keys: kite_token::KeySet::new(&[kite_token::SigningKey::generate("forger", 2).unwrap()]).unwrap() };
    let (status, body) = credentials(&server, Some(&forger.token("default", "app", "pods.eks.amazonaws.com")));
    assert_eq!(status, 400);
    assert!(body.contains("InvalidTokenException") && body.contains("signature"), "{body}");
    let (status, body) = credentials(&server, None);
    assert_eq!(status, 400);
    assert!(body.contains("Service account token cannot be empty"), "{body}");
    assert!(!server.log_text().contains(&issuer.token("default", "app", "pods.eks.amazonaws.com")[..40]), "tokens never reach the log");

    // Deleting the association takes effect on the next call.
    let deleted = cli.run(&["eks", "pod-identity-association", "delete", "--cluster-name", "prod", "--association-id", &id]).ok();
    assert_eq!(deleted["association"]["associationId"], id.as_str());
    let (status, body) = credentials(&server, Some(&issuer.token("default", "app", "pods.eks.amazonaws.com")));
    assert_eq!(status, 404, "{body}");
    cli.run(&["eks", "pod-identity-association", "show", "--cluster-name", "prod", "--association-id", &id]).fails_with(&["ResourceNotFoundException", &id]);
    cli.run(&["eks", "pod-identity-association", "show", "--cluster-name", "prod", "--association-id", "../x"]).fails_with(&["is not an association ID"]);
}

#[test]
fn a_server_without_a_cluster_issuer_says_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let (status, body) = credentials(&server, Some("x.y.z"));
    assert_eq!(status, 503);
    assert!(body.contains("--eks-cluster NAME --cluster-issuer URL"), "{body}");

    for (issuer, needle) in [
        ("http://oidc.example.com", "--cluster-issuer 'http://oidc.example.com': only https issuers are allowed"),
        // Loopback only when the operator allows it.
        ("http://127.0.0.1:9", "--cluster-issuer 'http://127.0.0.1:9': plain http is refused: only `kite serve --allow-http-issuer` allows it"),
    ] {
        let refused = std::process::Command::new(support::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--eks-cluster", "prod", "--cluster-issuer", issuer])
            .env("KITE_HOME", dir.path().join("other"))
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains(needle), "{}", String::from_utf8_lossy(&refused.stderr));
    }
}
