//! End to end: `kite k8s auth can-i|who-can` over RBAC YAML files, as kubectl answers them.
mod support;

use std::path::PathBuf;

use support::Cli;

fn fixtures() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kite-k8s/tests/fixtures/eks").display().to_string()
}

#[test]
fn can_i_answers_yes_or_no_with_kubectl_exit_codes_and_explains_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let rbac = fixtures();
    let yes = cli.run(&[
        "k8s",
        "auth",
        "can-i",
        "get",
        "pods",
        "-n",
        "kube-system",
        "--as",
        "6248",
        "--as-group",
        "eks-console-dashboard-full-access-group",
        "--rbac",
        &rbac,
    ]);
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);

    let no = cli.run(&[
        "k8s",
        "auth",
        "can-i",
        "get",
        "pods",
        "-n",
        "kube-system",
        "--as",
        "viewer",
        "--as-group",
        "eks-console-dashboard-restricted-access-group",
        "--explain",
        "--rbac",
        &rbac,
    ]);
    assert_eq!(no.code, 1);
    assert!(no.stdout.starts_with("no\n"), "{}", no.stdout);
    assert!(no.stdout.contains("eks-console-dashboard-restricted-access-role-binding"), "{}", no.stdout);
    assert!(no.stdout.contains("kind: Role"), "the smallest Role is suggested as YAML: {}", no.stdout);

    let json = cli.run(&[
        "k8s",
        "auth",
        "can-i",
        "get",
        "pods",
        "--as",
        "viewer",
        "--as-group",
        "eks-console-dashboard-restricted-access-group",
        "--rbac",
        &rbac,
        "-o",
        "json",
    ]);
    assert_eq!(json.code, 0);
    assert_eq!(json.json()["allowed"], true);

    let table = cli.run(&["k8s", "auth", "who-can", "get", "pods", "-n", "kube-system", "--rbac", &rbac]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("eks-console-dashboard-full-access-group") && !table.stdout.contains("restricted"), "{}", table.stdout);

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: Role\nmetadata: [\n").unwrap();
    cli.run(&["k8s", "auth", "can-i", "get", "pods", "--as", "x", "--rbac", broken.to_str().unwrap()]).fails_with(&["broken.yaml", "document 1"]);
}

fn post(server: &support::Server, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert", server.ca().to_str().unwrap(), "-H", "content-type: application/json", "-d", &body.to_string()])
        .arg(format!("{}{path}", server.url))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn sar(user: &str, groups: &[&str], namespace: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": {"namespace": namespace, "verb": "get", "resource": "pods"}}
    })
}

#[test]
fn the_authorize_webhook_answers_subject_access_reviews_and_survives_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let rbac = dir.path().join("rbac");
    std::fs::create_dir_all(&rbac).unwrap();
    for f in ["eks-console-full-access.yaml", "eks-console-restricted-access.yaml"] {
        std::fs::copy(PathBuf::from(fixtures()).join(f), rbac.join(f)).unwrap();
    }
    let server = support::Server::start(&dir.path().join("srv"), &["--k8s-rbac", rbac.to_str().unwrap()]);
    let full = sar("6248", &["eks-console-dashboard-full-access-group"], "kube-system");
    let answered = post(&server, "/authorize", &full);
    assert_eq!(answered["status"]["allowed"], true, "{answered}");
    let viewer = post(&server, "/authorize", &sar("viewer", &["eks-console-dashboard-restricted-access-group"], "kube-system"));
    assert_eq!(viewer["status"]["allowed"], false);
    assert!(viewer["status"]["reason"].as_str().unwrap_or_default().len() > 10, "{viewer}");

    // A typo in one file must not lock everyone out: the last good objects stay in force.
    std::fs::write(rbac.join("eks-console-full-access.yaml"), "kind: ClusterRoleBinding\nsubjects: [\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(post(&server, "/authorize", &full)["status"]["allowed"], true);
    assert!(server.log_text().contains("last good"), "the refusal is logged");
}
