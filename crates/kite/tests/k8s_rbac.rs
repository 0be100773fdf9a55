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
    let yes = cli.run(&["k8s", "auth", "can-i", "get", "pods", "-n", "kube-system", "--as", "6248", "--as-group", "eks-console-dashboard-full-access-group", "--rbac", &rbac]);
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);

    let no = cli.run(&["k8s", "auth", "can-i", "get", "pods", "-n", "kube-system", "--as", "viewer", "--as-group", "eks-console-dashboard-restricted-access-group", "--explain", "--rbac", &rbac]);
    assert_eq!(no.code, 1);
    assert!(no.stdout.starts_with("no\n"), "{}", no.stdout);
    assert!(no.stdout.contains("eks-console-dashboard-restricted-access-role-binding"), "{}", no.stdout);
    assert!(no.stdout.contains("kind: Role"), "the smallest Role is suggested as YAML: {}", no.stdout);

    let json = cli.run(&["k8s", "auth", "can-i", "get", "pods", "--as", "viewer", "--as-group", "eks-console-dashboard-restricted-access-group", "--rbac", &rbac, "-o", "json"]);
    assert_eq!(json.code, 0);
    assert_eq!(json.json()["allowed"], true);

    let table = cli.run(&["k8s", "auth", "who-can", "get", "pods", "-n", "kube-system", "--rbac", &rbac]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("eks-console-dashboard-full-access-group") && !table.stdout.contains("restricted"), "{}", table.stdout);

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: Role\nmetadata: [\n").unwrap();
    cli.run(&["k8s", "auth", "can-i", "get", "pods", "--as", "x", "--rbac", broken.to_str().unwrap()]).fails_with(&["broken.yaml", "document 1"]);
}
