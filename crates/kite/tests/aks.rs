//! End to end through the real binary: AKS-shaped clusters and their identities (seeds 000–002).
mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::{Cli, Server};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The roles `principal` holds, as (role name, scope) pairs.
fn roles_of(cli: &Cli, principal: &str) -> Vec<(String, String)> {
    let list = cli.run(&["role", "assignment", "list", "--assignee", principal, "--all"]).ok();
    list.as_array().unwrap().iter().map(|a| (s(&a["roleDefinitionName"]).to_string(), s(&a["scope"]).to_lowercase())).collect()
}

#[test]
fn a_managed_identity_cluster_comes_with_its_node_group_identities_and_contributor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let sub = cli.subscription();
    cli.run(&["group", "create", "--name", "myResourceGroup", "--location", "westus2"]).ok();

    let aks = cli.run(&["aks", "create", "-g", "myResourceGroup", "-n", "myManagedCluster", "--enable-managed-identity"]).ok();
    assert_eq!(aks["id"], format!("/subscriptions/{sub}/resourcegroups/myResourceGroup/providers/Microsoft.ContainerService/managedClusters/myManagedCluster"));
    assert_eq!(aks["type"], "Microsoft.ContainerService/managedClusters");
    assert_eq!(aks["provisioningState"], "Succeeded");
    assert_eq!(aks["resourceGroup"], "myResourceGroup");
    assert_eq!(aks["nodeResourceGroup"], "MC_myResourceGroup_myManagedCluster_westus2");
    assert_eq!(aks["identity"]["type"], "SystemAssigned");
    assert_eq!(aks["identity"]["userAssignedIdentities"], Value::Null);
    assert_eq!(aks["identity"]["tenantId"], server.credentials()["tenant"]);
    // Seed 002: the check that a cluster uses a managed identity.
    cli.run(&["aks", "create", "-g", "myResourceGroup", "-n", "myManagedCluster"]).fails_with(&["already exists", "kite aks update"]);
    let sp = cli.run(&["aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster", "--query", "servicePrincipalProfile"]).ok();
    assert_eq!(sp, json!({"clientId": "msi"}));

    let node = cli.run(&["group", "show", "-n", "MC_myResourceGroup_myManagedCluster_westus2"]).ok();
    assert_eq!(node["managedBy"], aks["id"]);
    let kubelet = cli.run(&["identity", "show", "-g", "MC_myResourceGroup_myManagedCluster_westus2", "-n", "myManagedCluster-agentpool"]).ok();
    let profile = &aks["identityProfile"]["kubeletidentity"];
    assert_eq!((&profile["clientId"], &profile["objectId"], &profile["resourceId"]), (&kubelet["clientId"], &kubelet["principalId"], &kubelet["id"]));
    let control_plane = s(&aks["identity"]["principalId"]).to_string();
    let node_scope = format!("/subscriptions/{sub}/resourcegroups/mc_myresourcegroup_mymanagedcluster_westus2");
    assert_eq!(roles_of(&cli, &control_plane), vec![("Contributor".to_string(), node_scope.clone())]);

    // Azure's own refusals, word for word.
    cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "myIdentity"]).ok();
    let kubelet_mi = cli.run(&["identity", "create", "-g", "myResourceGroup", "-n", "myKubeletIdentity"]).ok();
    cli.run(&["aks", "create", "-g", "myResourceGroup", "-n", "lonely", "--enable-managed-identity", "--assign-kubelet-identity", s(&kubelet_mi["id"])])
        .fails_with(&["--assign-kubelet-identity can only be specified when --assign-identity is specified"]);
    cli.run(&["aks", "create", "-g", "myResourceGroup", "-n", "podid", "--network-plugin", "kubenet", "--enable-pod-identity"])
        .fails_with(&["Network plugin kubenet is not supported to use with PodIdentity addon."]);
    for refused in ["lonely", "podid"] {
        cli.run(&["aks", "show", "-g", "myResourceGroup", "-n", refused]).fails_with(&["ResourceNotFound"]);
        cli.run(&["group", "show", "-n", &format!("MC_myResourceGroup_{refused}_westus2")]).fails_with(&["ResourceGroupNotFound"]);
    }

    // Bring your own control-plane and kubelet identities (seed 002).
    let mi = cli.run(&["identity", "show", "-g", "myResourceGroup", "-n", "myIdentity"]).ok();
    let own = cli
        .run(&[
            "aks",
            "create",
            "-g",
            "myResourceGroup",
            "-n",
            "own",
            "--network-plugin",
            "azure",
            "--enable-managed-identity",
            "--assign-identity",
            s(&mi["id"]),
            "--assign-kubelet-identity",
            s(&kubelet_mi["id"]),
            "--node-resource-group",
            "own-nodes",
        ])
        .ok();
    assert_eq!(own["identity"]["type"], "UserAssigned");
    assert_eq!(own["identity"]["principalId"], Value::Null);
    assert_eq!(own["identity"]["userAssignedIdentities"][s(&mi["id"])]["principalId"], mi["principalId"]);
    assert_eq!(own["identityProfile"]["kubeletidentity"]["resourceId"], kubelet_mi["id"]);
    assert_eq!(own["networkProfile"]["networkPlugin"], "azure");
    cli.run(&["identity", "show", "-g", "own-nodes", "-n", "own-agentpool"]).fails_with(&["ResourceNotFound"]);
    // az's create gives the control plane Managed Identity Operator on the kubelet identity it brings.
    let mut held = roles_of(&cli, s(&mi["principalId"]));
    held.sort();
    let expected = vec![
        ("Contributor".to_string(), format!("/subscriptions/{sub}/resourcegroups/own-nodes")),
        ("Managed Identity Operator".to_string(), s(&kubelet_mi["id"]).to_lowercase()),
    ];
    assert_eq!(held, expected);

    let names = cli.run(&["aks", "list", "--query", "[].name"]).ok();
    assert_eq!(names, json!(["myManagedCluster", "own"]));
    assert_eq!(cli.run(&["aks", "list", "-g", "myResourceGroup", "--query", "length(@)"]).ok(), json!(2));

    cli.run(&["group", "delete", "-n", "MC_myResourceGroup_myManagedCluster_westus2", "--yes"])
        .fails_with(&["ResourceGroupManagedByCluster", "kite aks delete"]);
    // Deleting the cluster takes its node group, the kubelet identity and the system identity's assignments.
    cli.run(&["aks", "delete", "-g", "myResourceGroup", "-n", "myManagedCluster", "--yes"]).ok();
    cli.run(&["group", "show", "-n", "MC_myResourceGroup_myManagedCluster_westus2"]).fails_with(&["ResourceGroupNotFound"]);
    cli.run(&["role", "assignment", "list", "--assignee", &control_plane]).fails_with(&["PrincipalNotFound"]);
    cli.run(&["identity", "show", "-g", "myResourceGroup", "-n", "myKubeletIdentity"]).ok();
    cli.run(&["aks", "show", "-g", "myResourceGroup", "-n", "myManagedCluster"]).fails_with(&["ResourceNotFound", "kite aks list"]);
}

#[test]
fn deploying_needs_aks_contributor_on_the_group_and_a_denial_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let sub = admin.subscription();
    admin.run(&["group", "create", "-n", "team", "-l", "japaneast"]).ok();
    let scope = format!("/subscriptions/{sub}/resourceGroups/team");
    let deployer = admin.run(&["ad", "sp", "create-for-rbac", "--name", "deployer", "--role", "Reader", "--scopes", &scope]).ok();
    let (cli, login) = Cli::service_principal(&dir.path().join("deployer"), &server, s(&deployer["appId"]), s(&deployer["password"]));
    login.ok();

    let denied = cli.run(&["aks", "create", "-g", "team", "-n", "k8s-doitest", "--enable-managed-identity"]);
    // The explanation: what the deployer holds falls short, and the role (with the command) that would grant it.
    denied.fails_with(&[
        "AuthorizationFailed",
        "Microsoft.ContainerService/managedClusters/write",
        "none of the 1 role assignment(s)",
        "kite role assignment create",
        "--role \"Azure Kubernetes Service Contributor Role\"",
    ]);
    admin.run(&["group", "show", "-n", "MC_team_k8s-doitest_japaneast"]).fails_with(&["ResourceGroupNotFound"]);

    admin
        .run(&["role", "assignment", "create", "--role", "Azure Kubernetes Service Contributor Role", "--assignee", s(&deployer["appId"]), "--scope", &scope])
        .ok();
    let aks = cli.run(&["aks", "create", "-g", "team", "-n", "k8s-doitest", "--enable-managed-identity"]).ok();
    assert_eq!(aks["nodeResourceGroup"], "MC_team_k8s-doitest_japaneast");
    assert_eq!(cli.run(&["aks", "list", "--query", "[].name"]).ok(), json!(["k8s-doitest"]));
    // AKS Contributor may not hand out identities it cannot assign (Managed Identity Operator would allow it).
    let mi = admin.run(&["identity", "create", "-g", "team", "-n", "control-plane"]).ok();
    cli.run(&["aks", "create", "-g", "team", "-n", "own", "--assign-identity", s(&mi["id"])])
        .fails_with(&["AuthorizationFailed", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"]);
}

#[test]
fn a_service_principal_cluster_takes_new_credentials_in_place_and_moves_to_a_managed_identity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    let sub = cli.subscription();
    cli.run(&["group", "create", "-n", "doi_test", "-l", "japaneast"]).ok();
    let sp = cli.run(&["ad", "sp", "create-for-rbac", "--name", "aks-sp"]).ok();
    let (app_id, old_secret) = (s(&sp["appId"]).to_string(), s(&sp["password"]).to_string());

    cli.run(&["aks", "create", "-g", "doi_test", "-n", "k8s-doitest", "--service-principal", &app_id, "--client-secret", "not-the-secret"])
        .fails_with(&["ServicePrincipalProfile were invalid", "AADSTS7000215"]);
    let aks = cli.run(&["aks", "create", "-g", "doi_test", "-n", "k8s-doitest", "--service-principal", &app_id, "--client-secret", &old_secret]).ok();
    assert_eq!(aks["servicePrincipalProfile"], json!({"clientId": app_id}));
    assert_eq!(aks["identity"], Value::Null);
    assert_eq!(aks["identityProfile"], Value::Null);
    let node_scope = format!("/subscriptions/{sub}/resourcegroups/mc_doi_test_k8s-doitest_japaneast");
    assert_eq!(roles_of(&cli, &app_id), vec![("Contributor".to_string(), node_scope.clone())]);

    // Seed 000: the secret is rotated, the old one stops working and the cluster is given the new one.
    let reset = cli.run(&["ad", "sp", "credential", "reset", "--id", &app_id]).ok();
    let new_secret = s(&reset["password"]).to_string();
    let (_, old_login) = Cli::service_principal(&dir.path().join("old"), &server, &app_id, &old_secret);
    old_login.fails_with(&["7000215"]);
    Cli::service_principal(&dir.path().join("new"), &server, &app_id, &new_secret).1.ok();
    let update = |secret: &str| {
        cli.run(&[
            "aks",
            "update-credentials",
            "-g",
            "doi_test",
            "-n",
            "k8s-doitest",
            "--reset-service-principal",
            "--service-principal",
            &app_id,
            "--client-secret",
            secret,
        ])
    };
    update(&old_secret).fails_with(&["AADSTS7000215", "kite ad sp credential reset"]);
    assert_eq!(update(&new_secret).ok()["servicePrincipalProfile"]["clientId"], json!(app_id));

    // Seed 002: `az aks update --enable-managed-identity`.
    let moved = cli.run(&["aks", "update", "-g", "doi_test", "-n", "k8s-doitest", "--enable-managed-identity", "--yes"]).ok();
    assert_eq!(moved["identity"]["type"], "SystemAssigned");
    assert_eq!(moved["servicePrincipalProfile"], json!({"clientId": "msi"}));
    let kubelet = cli.run(&["identity", "show", "-g", "MC_doi_test_k8s-doitest_japaneast", "-n", "k8s-doitest-agentpool"]).ok();
    assert_eq!(moved["identityProfile"]["kubeletidentity"]["clientId"], kubelet["clientId"]);
    assert_eq!(roles_of(&cli, s(&moved["identity"]["principalId"])), vec![("Contributor".to_string(), node_scope)]);
    assert_eq!(cli.run(&["aks", "show", "-g", "doi_test", "-n", "k8s-doitest"]).ok(), moved);
    update(&new_secret).fails_with(&["uses a managed identity"]);
    cli.run(&["aks", "update", "-g", "doi_test", "-n", "k8s-doitest", "--assign-identity", s(&kubelet["id"])]).fails_with(&["already uses a managed identity"]);
}

/// Polls until the node agent (which re-reads its directory every few seconds) answers `want`.
fn imds_until(server: &Server, want: u16) -> Value {
    support::wait_for(&format!("the node agent to answer {want}"), server, || {
        let (status, body) = server.imds("https://vault.azure.net");
        (status == want).then_some(body)
    })
}

fn write_pod(dir: &Path, selector: &str) {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: azure-vote-front\n  namespace: default\n  labels:\n    aadpodidbinding: {selector}\nstatus:\n  podIP: 127.0.0.1\n  phase: Running\n"
    );
    std::fs::write(dir.join("pod.yaml"), pod).unwrap();
}

#[test]
fn pod_identity_add_grants_managed_identity_operator_and_the_node_agent_serves_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_dir = dir.path().join("cluster");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--pod-identity-dir", cluster_dir.to_str().unwrap()]);
    let cli = Cli::admin(&dir.path().join("cli"), &server);
    cli.run(&["group", "create", "-n", "pod-identity", "-l", "japaneast"]).ok();
    let plain = cli.run(&["aks", "create", "-g", "pod-identity", "-n", "plain", "--network-plugin", "azure"]).ok();
    assert_eq!(plain["podIdentityProfile"]["enabled"], false);
    let aks = cli.run(&["aks", "create", "-g", "pod-identity", "-n", "pod-identity", "--network-plugin", "azure", "--enable-pod-identity"]).ok();
    let mi = cli.run(&["identity", "create", "-g", "pod-identity", "-n", "azure-vote"]).ok();
    let dir_arg = cluster_dir.to_str().unwrap();
    let add = |cluster: &str, name: &str| {
        cli.run(&[
            "aks",
            "pod-identity",
            "add",
            "--cluster-name",
            cluster,
            "-g",
            "pod-identity",
            "--namespace",
            "default",
            "--name",
            name,
            "--identity-resource-id",
            s(&mi["id"]),
            "--binding-selector",
            "azure-vote",
            "--pod-identity-dir",
            dir_arg,
        ])
    };
    add("plain", "azure-vote").fails_with(&["pod identity addon is not enabled", "kite aks update --enable-pod-identity"]);

    let added = add("pod-identity", "azure-vote").ok();
    let entry = &added["podIdentityProfile"]["userAssignedIdentities"][0];
    assert_eq!((&entry["name"], &entry["namespace"], &entry["bindingSelector"]), (&json!("azure-vote"), &json!("default"), &json!("azure-vote")));
    assert_eq!((&entry["identity"]["clientId"], &entry["identity"]["objectId"]), (&mi["clientId"], &mi["principalId"]));
    add("pod-identity", "azure-vote").fails_with(&["default/azure-vote is given twice"]);
    // Seed 001: the cluster identity gets Managed Identity Operator on the pod's identity, once.
    let operator = ("Managed Identity Operator".to_string(), s(&mi["id"]).to_lowercase());
    let cluster_identity = s(&aks["identity"]["principalId"]).to_string();
    assert!(roles_of(&cli, &cluster_identity).contains(&operator), "{:?}", roles_of(&cli, &cluster_identity));
    let listed = cli.run(&["role", "assignment", "list", "--scope", s(&mi["id"]), "--query", "[].roleDefinitionName"]).ok();
    assert_eq!(listed, json!(["Managed Identity Operator"]));

    // The add-on's objects are in the directory; a labelled pod now gets the identity's token.
    let file = cluster_dir.join("default-azure-vote.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("kind: AzureIdentity\n") && yaml.contains("kind: AzureIdentityBinding") && yaml.contains("selector: azure-vote"), "{yaml}");
    write_pod(&cluster_dir, "azure-vote");
    let token = imds_until(&server, 200);
    assert_eq!(token["client_id"], mi["clientId"]);
    assert_eq!(token["resource"], "https://vault.azure.net");
    write_pod(&cluster_dir, "someone-else");
    assert!(s(&imds_until(&server, 403)["error_description"]).contains("aadpodidbinding=someone-else"));
    write_pod(&cluster_dir, "azure-vote");
    imds_until(&server, 200);

    let listed = cli
        .run(&[
            "aks",
            "pod-identity",
            "list",
            "--cluster-name",
            "pod-identity",
            "-g",
            "pod-identity",
            "--query",
            "podIdentityProfile.userAssignedIdentities[].name",
        ])
        .ok();
    assert_eq!(listed, json!(["azure-vote"]));
    let delete = [
        "aks",
        "pod-identity",
        "delete",
        "--cluster-name",
        "pod-identity",
        "-g",
        "pod-identity",
        "--namespace",
        "default",
        "--name",
        "azure-vote",
        "--pod-identity-dir",
        dir_arg,
    ];
    let after = cli.run(&delete).ok();
    assert_eq!(after["podIdentityProfile"]["userAssignedIdentities"], json!([]));
    assert!(!file.exists());
    imds_until(&server, 403);
    cli.run(&delete).fails_with(&["has no pod identity default/azure-vote"]);
}
