//! End to end: who `POST /authenticate` says a token belongs to. IAM users with static keys made
//! by the CLI sign STS calls and EKS tokens (as botocore would, with kite-core's signer); kite-issued
//! access tokens from the token endpoint are mapped as AKS maps Entra tokens. The Python suite in
//! tests/compat drives the same paths with awscli, boto3 and azure-identity. With `--kubeconfig`,
//! aws-auth comes from a live (fake) cluster's watch.
mod fake_kube;
mod support;

use std::collections::HashMap;
use std::process::Command;

use base64::Engine;
use kite_core::aws::sigv4::{self, SignedRequest, Signer};
use serde_json::{json, Value};
use support::{Cli, Server};

const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

fn curl_text(server: &Server, args: &[&str], path: &str) -> String {
    server.curl(args, path).1
}

fn curl(server: &Server, args: &[&str], path: &str) -> Value {
    let text = curl_text(server, args, path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn review(server: &Server, token: &str) -> Value {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    curl(server, &["-H", "content-type: application/json", "-d", &body.to_string()], "/authenticate")["status"].clone()
}

fn host(server: &Server) -> String {
    server.url.split("://").nth(1).unwrap().to_string()
}

/// GetCallerIdentity signed with the key, sent over HTTPS (JSON when it succeeds, STS's XML error otherwise).
fn get_caller_identity(server: &Server, akid: &str, secret: &str) -> String {
    let mut req = SignedRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: vec![("Host".into(), host(server)), ("Content-Type".into(), "application/x-www-form-urlencoded".into())],
        body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
        ..Default::default()
    };
    let signer = Signer { access_key_id: akid, secret_access_key: secret, session_token: None, region: "us-east-1", service: "sts" };
    sigv4::sign(&mut req, &signer, time::OffsetDateTime::now_utc());
    let mut args: Vec<String> = vec!["-H".into(), "Accept: application/json".into()];
    for (k, v) in req.headers.iter().filter(|(k, _)| k != "Host") {
        args.extend(["-H".into(), format!("{k}: {v}")]);
    }
    args.extend(["--data-binary".into(), String::from_utf8(req.body).unwrap()]);
    curl_text(server, &args.iter().map(String::as_str).collect::<Vec<_>>(), "/")
}

/// What `aws eks get-token` makes: a presigned GetCallerIdentity URL with x-k8s-aws-id signed.
fn eks_token(server: &Server, cluster: &str, akid: &str, secret: &str) -> String {
    let mut req = SignedRequest {
        method: "GET".into(),
        path: "/".into(),
        query: vec![("Action".into(), "GetCallerIdentity".into()), ("Version".into(), "2011-06-15".into())],
        headers: vec![("host".into(), host(server)), ("x-k8s-aws-id".into(), cluster.into())],
        ..Default::default()
    };
    let signer = Signer { access_key_id: akid, secret_access_key: secret, session_token: None, region: "us-east-1", service: "sts" };
    sigv4::presign(&mut req, &signer, time::OffsetDateTime::now_utc(), 60);
    let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    let url = format!("{}/?{}", server.url, query.join("&"));
    format!("{}{}", sigv4::EKS_TOKEN_PREFIX, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url))
}

#[test]
fn an_iam_users_static_key_is_who_sts_and_the_authenticator_say_until_it_is_deactivated_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("aws-auth.yaml");
    std::fs::write(&auth, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata: {}\n").unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--eks-cluster", "prod", "--aws-auth", auth.to_str().unwrap()]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);

    let user = cli.run(&["iam", "user", "create", "--user-name", "6248"]).ok()["User"].clone();
    cli.run(&["iam", "user", "create", "--user-name", "6248"]).fails_with(&["EntityAlreadyExists"]);
    cli.run(&["iam", "user", "create", "--user-name", "has space"]).fails_with(&["invalid user name"]);
    let arn = user["Arn"].as_str().unwrap();
    assert!(arn.starts_with("arn:aws:iam::") && arn.ends_with(":user/6248"), "{arn}");
    let key = cli.run(&["iam", "access-key", "create", "--user-name", "6248"]).ok()["AccessKey"].clone();
    let (akid, secret) = (key["AccessKeyId"].as_str().unwrap(), key["SecretAccessKey"].as_str().unwrap());
    cli.run(&["iam", "access-key", "create", "--user-name", "6248"]).ok();
    cli.run(&["iam", "access-key", "create", "--user-name", "6248"]).fails_with(&["LimitExceeded"]);
    cli.run(&["iam", "access-key", "create", "--user-name", "nobody"]).fails_with(&["NoSuchEntity", "nobody"]);
    let listed = cli.run(&["iam", "access-key", "list", "--user-name", "6248", "--query", "AccessKeyMetadata[].SecretAccessKey"]).ok();
    assert_eq!(listed, json!([]), "no secret is ever listed");

    let me: Value = serde_json::from_str(&get_caller_identity(&server, akid, secret)).unwrap();
    let result = &me["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
    assert_eq!((&result["Arn"], &result["UserId"]), (&user["Arn"], &user["UserId"]), "{me}");
    let wrong = get_caller_identity(&server, akid, &"x".repeat(40));
    assert!(wrong.contains("<Code>SignatureDoesNotMatch</Code>"), "{wrong}");

    let token = eks_token(&server, "prod", akid, secret);
    let refused = review(&server, &token);
    assert_ne!(refused["authenticated"], true);
    assert!(refused["error"].as_str().unwrap().contains(arn), "{refused}");
    cli.run(&[
        "eks",
        "iamidentitymapping",
        "create",
        "--cluster",
        "prod",
        "--aws-auth",
        auth.to_str().unwrap(),
        "--arn",
        arn,
        "--username",
        "6248",
        "--group",
        "eks-console-dashboard-full-access-group",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_secs(6));
    let ok = review(&server, &token);
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!((&ok["user"]["username"], &ok["user"]["groups"]), (&json!("6248"), &json!(["eks-console-dashboard-full-access-group"])));
    assert_eq!(ok["user"]["extra"]["canonicalArn"], json!([arn]));

    // Deactivated: refused at once, saying so; reactivated: back.
    cli.run(&["iam", "access-key", "update", "--access-key-id", akid, "--status", "Inactive"]).ok();
    assert!(review(&server, &token)["error"].as_str().unwrap().contains("is Inactive"));
    cli.run(&["iam", "access-key", "update", "--access-key-id", akid, "--status", "Active", "--user-name", "6248"]).ok();
    assert_eq!(review(&server, &token)["authenticated"], true);

    cli.run(&["iam", "user", "delete", "--user-name", "6248"]).fails_with(&["DeleteConflict", akid]);
    cli.run(&["iam", "access-key", "delete", "--access-key-id", akid, "--user-name", "someone-else"]).fails_with(&["belongs to 6248"]);
    cli.run(&["iam", "access-key", "delete", "--access-key-id", akid]).ok();
    let gone = review(&server, &token);
    assert!(gone["error"].as_str().unwrap().contains("does not exist"), "{gone}");
    assert!(get_caller_identity(&server, akid, secret).contains("<Code>InvalidClientTokenId</Code>"));
}

fn access_token(server: &Server, app: &Value, scope: &str) -> String {
    server.access_token(app["appId"].as_str().unwrap(), app["password"].as_str().unwrap(), scope)
}

#[test]
fn kite_issued_access_tokens_for_the_cluster_audience_are_mapped_through_the_entra_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("entra.yaml");
    let server_home = dir.path().join("srv");
    // The mapping names an app created below, so start with an empty one and rewrite it.
    std::fs::write(&mapping, "principals: []\n").unwrap();
    let server = Server::start(&server_home, &["--entra-audience", AKS_SERVER_APP, "--entra-mapping", mapping.to_str().unwrap()]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let app = cli.run(&["ad", "sp", "create-for-rbac", "--name", "aks-ci"]).ok();
    let oid = cli.run(&["ad", "sp", "show", "--id", app["appId"].as_str().unwrap()]).ok()["id"].as_str().unwrap().to_string();

    let token = access_token(&server, &app, &format!("{AKS_SERVER_APP}/.default"));
    let refused = review(&server, &token);
    assert!(refused["error"].as_str().unwrap().contains(&format!("no mapping for oid {oid}")), "{refused}");
    // The API server relays refusals to its clients: kite's file paths stay in kite's log.
    assert!(!refused.to_string().contains(dir.path().to_str().unwrap()), "a server path leaked: {refused}");

    std::fs::write(&mapping, format!("principals:\n- appId: {}\n  groups: [ci]\n", app["appId"].as_str().unwrap())).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(6));
    let ok = review(&server, &token);
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!((&ok["user"]["username"], &ok["user"]["groups"]), (&json!(oid), &json!(["ci"])), "the username defaults to the object ID");

    let mgmt = review(&server, &access_token(&server, &app, "https://management.azure.com/.default"));
    assert!(mgmt["error"].as_str().unwrap().contains(&format!("this cluster accepts '{AKS_SERVER_APP}'")), "{mgmt}");
    assert!(server.log_text().contains("token review refused: the token is for audience 'https://management.azure.com'"), "refusals are logged");

    // A bad mapping at start-up stops the server with the reason.
    std::fs::write(&mapping, "principals:\n- username: x\n").unwrap();
    let out = Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--entra-audience", AKS_SERVER_APP, "--entra-mapping", mapping.to_str().unwrap()])
        .env("KITE_HOME", dir.path().join("srv2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("names neither objectId nor appId"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_deleted_principals_token_is_refused_at_once_not_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--entra-audience", AKS_SERVER_APP]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let app = cli.run(&["ad", "sp", "create-for-rbac", "--name", "aks-ci"]).ok();
    let token = access_token(&server, &app, &format!("{AKS_SERVER_APP}/.default"));
    assert_eq!(review(&server, &token)["authenticated"], true);

    cli.run(&["ad", "sp", "delete", "--id", app["appId"].as_str().unwrap()]).ok();
    // This replica forgets its client cache on the deletion, so the very next review refuses
    // (other replicas within clients::TTL, 5 s).
    let started = std::time::Instant::now();
    let gone = review(&server, &token);
    assert_eq!(gone["authenticated"], false, "{gone}");
    assert!(gone["error"].as_str().unwrap().contains("no longer exists in this directory"), "{gone}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";

/// A cluster with nothing in it but `kube-system/aws-auth`-shaped ConfigMaps, once applied.
fn empty_cluster() -> fake_kube::FakeKube {
    let kinds = [
        "/api/v1/pods",
        "/api/v1/nodes",
        "/api/v1/secrets",
        "/api/v1/serviceaccounts",
        "/apis/aadpodidentity.k8s.io/v1/azureidentities",
        "/apis/aadpodidentity.k8s.io/v1/azureidentitybindings",
        "/apis/aadpodidentity.k8s.io/v1/azurepodidentityexceptions",
        "/apis/aadpodidentity.k8s.io/v1/azureassignedidentities",
        "/apis/rbac.authorization.k8s.io/v1/roles",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/rolebindings",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        CONFIGMAPS,
    ];
    fake_kube::FakeKube::start(&kinds.map(|k| (k, vec![])))
}

fn aws_auth(map_roles: &str, map_users: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"},
           "data": {"mapRoles": map_roles, "mapUsers": map_users}})
}

fn review_until(server: &Server, token: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    support::wait_for(what, server, || Some(review(server, token)).filter(|s| done(s)))
}

#[test]
fn a_live_clusters_aws_auth_maps_eks_tokens_and_its_changes_arrive_by_watch_but_a_bad_one_never_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let kube = empty_cluster();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.kubeconfig(&kubeconfig);
    let server = Server::start(&dir.path().join("srv"), &["--eks-cluster", "prod", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let arn = cli.run(&["iam", "user", "create", "--user-name", "6248"]).ok()["User"]["Arn"].as_str().unwrap().to_string();
    let account = arn.split(':').nth(4).unwrap().to_string();
    let key = cli.run(&["iam", "access-key", "create", "--user-name", "6248"]).ok()["AccessKey"].clone();
    let token = eks_token(&server, "prod", key["AccessKeyId"].as_str().unwrap(), key["SecretAccessKey"].as_str().unwrap());

    // No aws-auth in the cluster: nobody is mapped.
    kube.wait_for_watch(CONFIGMAPS);
    let refused = review(&server, &token);
    assert_ne!(refused["authenticated"], true, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains(&arn), "{refused}");

    // kubectl apply of aws-auth with a mapUsers entry (a username template included) reaches kite by watch.
    let admins = format!("- rolearn: arn:aws:iam::{account}:role/admins\n  username: admin\n  groups:\n  - system:masters\n");
    let user = format!("- userarn: {arn}\n  username: user-{{{{AccountID}}}}\n  groups:\n  - developers\n");
    kube.apply(CONFIGMAPS, aws_auth(&admins, &user));
    let ok = review_until(&server, &token, "the mapping from the cluster", |s| s["authenticated"] == true);
    assert_eq!((&ok["user"]["username"], &ok["user"]["groups"]), (&json!(format!("user-{account}")), &json!(["developers"])), "{ok}");
    assert_eq!(ok["user"]["extra"]["canonicalArn"], json!([arn]));

    // An update that drops the user but carries a role path (which upstream never matches) is
    // refused as a whole: the last good mapping stays in force.
    let bad = format!("{admins}- rolearn: arn:aws:iam::{account}:role/team/dev\n  username: dev\n  groups:\n  - developers\n");
    kube.apply(CONFIGMAPS, aws_auth(&bad, ""));
    let version = kube.object(CONFIGMAPS, "aws-auth").unwrap()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let judged = format!("aws-auth from the cluster (resourceVersion {version}) refused, the last good mapping stays in force");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.log_text().contains(&judged) {
        assert!(std::time::Instant::now() < deadline, "no '{judged}' in:\n{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(server.log_text().contains("role path"), "the log says why:\n{}", server.log_text());
    assert_eq!(review(&server, &token)["authenticated"], true);

    // A valid update without the user: refused, saying which ARN was seen and that nothing maps it.
    kube.apply(CONFIGMAPS, aws_auth(&admins, ""));
    let gone = review_until(&server, &token, "the entry's removal", |s| s["authenticated"] != true);
    let error = gone["error"].as_str().unwrap();
    assert!(error.contains(&arn) && error.contains("aws-auth"), "{gone}");
}

/// Seed 004: a cluster created by IAM user 2049; worker 6248 is mapped through aws-auth. CloudTrail
/// (here `kite audit list --operation CreateCluster`) names the creator, and when aws-auth is
/// emptied or broken, only the creator still gets in, as system:masters.
#[test]
fn the_cluster_creator_is_named_by_the_trail_and_stays_system_masters_when_aws_auth_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("aws-auth.yaml");
    let empty = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata: {}\n";
    std::fs::write(&auth, empty).unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--eks-cluster", "testcluster", "--aws-auth", auth.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let mut keys = HashMap::new();
    for name in ["2049", "6248"] {
        let arn = admin.run(&["iam", "user", "create", "--user-name", name]).ok()["User"]["Arn"].as_str().unwrap().to_string();
        let key = admin.run(&["iam", "access-key", "create", "--user-name", name]).ok()["AccessKey"].clone();
        keys.insert(name, (arn, key["AccessKeyId"].as_str().unwrap().to_string(), key["SecretAccessKey"].as_str().unwrap().to_string()));
    }
    let as_user = |name: &str, args: &[&str]| {
        let (_, akid, secret) = &keys[name];
        let ca = server.ca();
        let env = [
            ("AWS_ACCESS_KEY_ID", akid.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
            ("AWS_ENDPOINT_URL_EKS", server.url.as_str()),
            ("AWS_CA_BUNDLE", ca.to_str().unwrap()),
        ];
        Cli::new(&dir.path().join(format!("aws-{name}"))).run_env(args, &env)
    };
    let created = as_user("2049", &["eks", "create-cluster", "--name", "testcluster", "--authentication-mode", "CONFIG_MAP"]).ok();
    assert_eq!(created["cluster"]["accessConfig"]["authenticationMode"], "CONFIG_MAP");
    assert_eq!(created["cluster"]["status"], "ACTIVE");
    as_user("6248", &["eks", "create-cluster", "--name", "testcluster"]).fails_with(&["ResourceInUseException"]);
    assert_eq!(as_user("6248", &["eks", "list-clusters"]).ok()["clusters"], json!(["testcluster"]));
    assert_eq!(as_user("6248", &["eks", "describe-cluster", "--name", "testcluster"]).ok()["cluster"]["name"], "testcluster");
    // Only SigV4 with kite-issued AWS credentials reaches the EKS API: not a bearer token, not a bad signature.
    let (status, body) = server.api("POST", "/kite/eks/clusters", &server.admin_token(), Some(&json!({"name": "other"})));
    assert_eq!(status, 403, "{body}");
    let forged = Cli::new(&dir.path().join("forged")).run_env(
        &["eks", "list-clusters"],
        &[
            ("AWS_ACCESS_KEY_ID", keys["2049"].1.as_str()),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_ENDPOINT_URL_EKS", &server.url),
            ("AWS_CA_BUNDLE", server.ca().to_str().unwrap()),
        ],
    );
    forged.fails_with(&["SignatureDoesNotMatch"]);

    // Who created the cluster: the trail's CreateCluster event, as CloudTrail shows it.
    let events = admin.run(&["audit", "list", "--operation", "CreateCluster"]).ok();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3, "the creation, the refused duplicate, the refused bearer call: {events:#?}");
    assert_eq!(events[0]["userIdentity"]["arn"], keys["2049"].0.as_str());
    assert_eq!(events[0]["userIdentity"]["type"], "IAMUser");
    assert_eq!(events[0]["eventName"], "CreateCluster");
    assert_eq!(events[0]["eventSource"], "eks.amazonaws.com");
    assert_eq!(events[0]["requestParameters"]["name"], "testcluster");
    assert!(events[0]["resources"][0]["ARN"].as_str().unwrap().ends_with(":cluster/testcluster"));
    assert_eq!((events[1]["userIdentity"]["arn"].as_str(), events[1]["errorCode"].as_str()), (Some(keys["6248"].0.as_str()), Some("ResourceInUseException")));
    assert_eq!((events[2]["userIdentity"]["arn"].as_str(), events[2]["status"].as_str()), (Some(""), Some("Failed")), "nobody was authenticated");
    let by_creator = admin.run(&["audit", "list", "--operation", "CreateCluster", "--caller", &keys["2049"].0, "--query", "[].eventName"]).ok();
    assert_eq!(by_creator, json!(["CreateCluster"]));

    let token = |name: &str| eks_token(&server, "testcluster", &keys[name].1, &keys[name].2);
    let map_worker: String = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapUsers: |\n    - userarn: {}\n      username: \"6248\"\n      groups:\n        - system:masters\n", keys["6248"].0);
    std::fs::write(&auth, &map_worker).unwrap();
    support::wait_for("the worker's mapping", &server, || (review(&server, &token("6248"))["authenticated"] == true).then_some(()));
    let creator = review(&server, &token("2049"));
    assert_eq!(creator["authenticated"], true, "{creator}");
    assert_eq!((&creator["user"]["username"], &creator["user"]["groups"]), (&json!("kubernetes-admin"), &json!(["system:masters"])));

    // aws-auth emptied (as if deleted), then broken: the worker is locked out, the creator is not.
    std::fs::write(&auth, empty).unwrap();
    support::wait_for("the emptied aws-auth", &server, || (review(&server, &token("6248"))["authenticated"] != true).then_some(()));
    std::fs::write(&auth, "data:\n  mapUsers: |\n    - userarn: [unclosed\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_ne!(review(&server, &token("6248"))["authenticated"], true);
    let creator = review(&server, &token("2049"));
    assert_eq!((&creator["authenticated"], &creator["user"]["groups"]), (&json!(true), &json!(["system:masters"])), "{creator}");

    // Once the cluster is deleted its creator is nobody special.
    as_user("2049", &["eks", "delete-cluster", "--name", "testcluster"]).ok();
    assert_ne!(review(&server, &token("2049"))["authenticated"], true);
    as_user("2049", &["eks", "describe-cluster", "--name", "testcluster"]).fails_with(&["ResourceNotFoundException"]);

    // The stored cluster's authentication mode decides: in API mode aws-auth is not read at all,
    // and a creator made no admin (bootstrapClusterCreatorAdminPermissions=false) is not one.
    std::fs::write(&auth, &map_worker).unwrap();
    support::wait_for("the worker's mapping again", &server, || (review(&server, &token("6248"))["authenticated"] == true).then_some(()));
    as_user("2049", &["eks", "create-cluster", "--name", "testcluster", "--authentication-mode", "API", "--no-bootstrap-cluster-creator-admin-permissions"])
        .ok();
    assert_ne!(review(&server, &token("6248"))["authenticated"], true, "API mode reads no aws-auth");
    assert_ne!(review(&server, &token("2049"))["authenticated"], true, "the creator was not made an admin");
}
