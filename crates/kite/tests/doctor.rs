//! End to end: `kite doctor` through the binary and the CLI, with seed 000's two experiments: a
//! cluster's service-principal secret left to expire, and the node resource group's Contributor
//! assignment removed.
mod support;

use serde_json::Value;
use support::{Cli, Server};

/// Debian's libfaketime: the server's wall clock moved from outside, as tests/compat does.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn doctor(cli: &Cli) -> (i32, Vec<Value>) {
    let run = cli.run(&["doctor", "-o", "json"]);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    (run.code, run.json().as_array().cloned().unwrap())
}

/// A service-principal cluster, as seed 000 built it; returns (appId, password).
fn sp_cluster(admin: &Cli, secret_days: i64) -> (String, String) {
    admin.run(&["group", "create", "-n", "doi_test", "-l", "japaneast"]).ok();
    let end = (time::OffsetDateTime::now_utc() + time::Duration::days(secret_days)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "k8s-doitest-sp", "--end-date", &end]).ok();
    let (app, password) = (sp["appId"].as_str().unwrap().to_string(), sp["password"].as_str().unwrap().to_string());
    admin
        .run(&["aks", "create", "-g", "doi_test", "-n", "k8s-doitest", "--service-principal", &app, "--client-secret", &password, "--network-plugin", "azure"])
        .ok();
    (app, password)
}

#[test]
fn a_clean_store_is_clean_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    sp_cluster(&admin, 300);
    assert_eq!(doctor(&admin), (0, Vec::new()));
    let table = admin.run(&["doctor", "-o", "table"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
}

#[test]
fn seed_000_an_expiring_cluster_secret_is_warned_ahead_and_refused_with_aadsts7000222_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    let server = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let (app, password) = sp_cluster(&admin, 10);

    let (code, findings) = doctor(&admin);
    assert_eq!(code, 1, "warnings only: {findings:#?}");
    let [f] = findings.as_slice() else { panic!("{findings:#?}") };
    assert_eq!((f["rule"].as_str(), f["severity"].as_str()), (Some("credential-expiry"), Some("Warning")));
    let problem = f["problem"].as_str().unwrap();
    assert!(problem.contains("(in 9 days)") && problem.contains("doi_test/k8s-doitest") && problem.contains("<pending>"), "{problem}");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.contains(&format!("kite aks update-credentials -g doi_test -n k8s-doitest --reset-service-principal --service-principal {app}")), "{fix}");
    let narrow = admin.run(&["doctor", "--days", "5", "-o", "json"]);
    assert_eq!((narrow.code, narrow.json()), (0, serde_json::json!([])), "outside a 5-day window");

    // Eleven days on, the secret has expired: the token endpoint says AADSTS7000222 and doctor errs.
    drop(server);
    let clock = [("LD_PRELOAD", LIBFAKETIME), ("FAKETIME", "+11d"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let later = Server::start_env(&home, &[], &clock);
    let tenant = later.credentials()["tenant"].as_str().unwrap().to_string();
    let (status, body) = later.curl(
        &[
            "-d",
            "grant_type=client_credentials",
            "--data-urlencode",
            &format!("client_id={app}"),
            "--data-urlencode",
            &format!("client_secret={password}"),
            "-d",
            "scope=https://management.azure.com/.default",
        ],
        &format!("/{tenant}/oauth2/v2.0/token"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("AADSTS7000222"), "{body}");
    let admin = Cli::admin(&dir.path().join("admin-later"), &later);
    let (code, findings) = doctor(&admin);
    assert_eq!(code, 2, "{findings:#?}");
    assert!(findings[0]["problem"].as_str().unwrap().contains("expired on"), "{findings:#?}");
}

#[test]
fn seed_000_a_removed_node_group_contributor_is_named_with_the_assignment_that_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "doi_test", "-l", "japaneast"]).ok();
    let cluster = admin.run(&["aks", "create", "-g", "doi_test", "-n", "k8s-doitest", "--enable-managed-identity", "--network-plugin", "azure"]).ok();
    let principal = cluster["identity"]["principalId"].as_str().unwrap().to_string();
    let node = cluster["nodeResourceGroup"].as_str().unwrap().to_string();
    let sub = admin.subscription();
    let scope = format!("/subscriptions/{sub}/resourceGroups/{node}");
    assert_eq!(doctor(&admin).0, 0);

    admin.run(&["role", "assignment", "delete", "--assignee", &principal, "--role", "Contributor", "--scope", &scope]).ok();
    let (code, findings) = doctor(&admin);
    assert_eq!(code, 2, "{findings:#?}");
    let f = findings.iter().find(|f| f["rule"] == "cluster-identity-contributor").unwrap_or_else(|| panic!("{findings:#?}"));
    let fix = f["fix"].as_str().unwrap();
    assert_eq!(fix, format!("kite role assignment create --role Contributor --assignee {principal} --scope {scope}"));
    assert!(f["problem"].as_str().unwrap().contains("<pending>"));

    // The printed command is the fix.
    let args: Vec<&str> = fix.split_whitespace().skip(1).collect();
    admin.run(&args).ok();
    assert_eq!(doctor(&admin), (0, Vec::new()));
}

#[test]
fn doctor_reads_everything_so_it_takes_read_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let nobody = admin.run(&["ad", "sp", "create-for-rbac", "--name", "nobody"]).ok();
    let (cli, login) = Cli::service_principal(&dir.path().join("nobody"), &server, nobody["appId"].as_str().unwrap(), nobody["password"].as_str().unwrap());
    login.ok();
    cli.run(&["doctor"]).fails_with(&["AuthorizationFailed", "Kite/doctor/read"]);
    admin.run(&["doctor", "--days", "0"]).fails_with(&["0"]);
}

/// What the cluster source holds, read by a running server: a pod whose label no binding selects,
/// an AzureIdentity written with the upstream README's PascalCase fields, a binding naming an
/// identity that does not exist, and an aws-auth entry no caller can present that grants
/// system:masters (entries with role paths never get this far: kite refuses such an aws-auth whole).
#[test]
fn cluster_source_objects_that_do_not_meet_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    std::fs::write(
        pods.join("objects.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: demo\n  labels:\n    aadpodidbinding: web\nspec:\n  containers: [{name: web, image: nginx}]\n\
         status:\n  podIP: 10.0.0.7\n  phase: Running\n---\n\
         apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: api-id\n  namespace: demo\nspec:\n  type: 0\n  ResourceID: /subscriptions/x\n  ClientID: 00000000-0000-0000-0000-000000000001\n---\n\
         apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata:\n  name: api-binding\n  namespace: demo\nspec:\n  azureIdentity: api-id\n  selector: api\n---\n\
         apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata:\n  name: old-binding\n  namespace: demo\nspec:\n  azureIdentity: gone-id\n  selector: old\n",
    )
    .unwrap();
    let auth = dir.path().join("aws-auth.yaml");
    std::fs::write(
        &auth,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapUsers: |\n    - userarn: arn:aws:iam::111122223333:user/typo\n      username: typo\n      groups: [system:masters]\n",
    )
    .unwrap();
    let server =
        Server::start(&dir.path().join("srv"), &["--pod-identity-dir", pods.to_str().unwrap(), "--eks-cluster", "prod", "--aws-auth", auth.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let (code, findings) = doctor(&admin);
    assert_eq!(code, 2);
    let found: Vec<(&str, &str)> = findings.iter().map(|f| (f["rule"].as_str().unwrap(), f["object"].as_str().unwrap())).collect();
    for expected in [
        ("pod-without-binding", "pod demo/web"),
        ("azure-identity-fields", "AzureIdentity demo/api-id"),
        ("binding-without-identity", "AzureIdentityBinding demo/old-binding"),
        ("aws-auth-never-matches", "aws-auth mapUsers arn:aws:iam::111122223333:user/typo"),
        ("aws-auth-system-masters", "aws-auth mapUsers arn:aws:iam::111122223333:user/typo"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:#?}");
    }
    let fields = findings.iter().find(|f| f["rule"] == "azure-identity-fields").unwrap();
    assert!(fields["problem"].as_str().unwrap().contains("ClientID (write clientID)"), "{fields}");
    let aws = findings.iter().find(|f| f["rule"] == "aws-auth-never-matches").unwrap();
    assert!(aws["problem"].as_str().unwrap().contains("kite has no IAM role or user with this ARN"), "{aws}");
    assert!(aws["fix"].as_str().unwrap().starts_with("kite eks iamidentitymapping delete --cluster prod"), "{aws}");
}

#[test]
fn a_serving_kite_exports_the_findings_as_metrics_at_its_doctor_interval() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--doctor-interval", "10"]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    admin.run(&["identity", "create", "-g", "apps", "-n", "unused"]).ok();
    let series = "kite_doctor_findings{rule=\"identity-without-assignment\",severity=\"Warning\"} 1";
    support::wait_for("the finding on /metrics", &server, || server.curl(&[], "/metrics").1.contains(series).then_some(()));
    admin.run(&["identity", "delete", "-g", "apps", "-n", "unused"]).ok();
    support::wait_for("the finding to go", &server, || (!server.curl(&[], "/metrics").1.contains("identity-without-assignment")).then_some(()));
    let bad = std::process::Command::new(support::BIN).args(["serve", "--doctor-interval", "5"]).env("KITE_HOME", dir.path().join("bad")).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("10 to 86400"), "{bad:?}");
}

#[test]
fn doctor_watch_prints_findings_as_they_come_and_go_and_keeps_them_in_a_metrics_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let (metrics, out) = (dir.path().join("kite.prom"), dir.path().join("watch.out"));
    let mut watch = std::process::Command::new(support::BIN)
        .args(["doctor", "--watch", "1", "--metrics-file", metrics.to_str().unwrap()])
        .env("KITE_HOME", &admin.home)
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    support::wait_for("the first run's metrics", &server, || read(&metrics).contains("kite_doctor_up 1").then_some(()));
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    admin.run(&["identity", "create", "-g", "apps", "-n", "unused"]).ok();
    let series = "kite_doctor_findings{rule=\"identity-without-assignment\",severity=\"Warning\"} 1";
    support::wait_for("the finding in the metrics file", &server, || read(&metrics).contains(series).then_some(()));
    admin.run(&["identity", "delete", "-g", "apps", "-n", "unused"]).ok();
    support::wait_for("the finding to go", &server, || (!read(&metrics).contains("identity-without-assignment")).then_some(()));
    support::wait_for("the printed changes", &server, || read(&out).contains("- [identity-without-assignment]").then_some(()));
    let _ = watch.kill();
    let _ = watch.wait();
    let printed = read(&out);
    assert!(printed.contains("+ [identity-without-assignment] Warning") && printed.contains("unused"), "{printed}");
}
