//! End to end: the audit trail through the binary and the CLI. Management writes, tokens issued and
//! refused, webhook and node-agent decisions land in the trail once each, read back with Activity
//! Log's (or CloudTrail's) field names; no secret or token ever does; readers need read access.
mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::{Cli, Server};

/// `kite audit list` with these filters, as JSON.
fn audit(cli: &Cli, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "list"];
    args.extend(filters);
    cli.run(&args).ok().as_array().cloned().unwrap_or_else(|| panic!("not a list"))
}

#[test]
fn management_writes_are_recorded_with_who_what_where_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let admin_app = server.credentials()["appId"].as_str().unwrap().to_string();
    let sub = admin.subscription();
    admin.run(&["group", "create", "-n", "audited", "-l", "japaneast"]).ok();
    admin.run(&["identity", "create", "-g", "audited", "-n", "app"]).ok();
    let reader = admin.run(&["ad", "sp", "create-for-rbac", "--name", "reader", "--role", "Reader", "--scopes", &format!("/subscriptions/{sub}")]).ok();
    let (reader_cli, login) =
        Cli::service_principal(&dir.path().join("reader"), &server, reader["appId"].as_str().unwrap(), reader["password"].as_str().unwrap());
    login.ok();
    reader_cli.run(&["group", "create", "-n", "not-allowed", "-l", "japaneast"]).fails_with(&["AuthorizationFailed"]);

    let writes = audit(&admin, &["--operation", "Microsoft.Resources/subscriptions/resourceGroups/*"]);
    assert_eq!(writes.len(), 2, "one success by the admin, one refusal of the reader: {writes:#?}");
    let ok = &writes[0];
    assert_eq!(ok["caller"], admin_app.as_str());
    assert_eq!(ok["operationName"]["value"], "Microsoft.Resources/subscriptions/resourceGroups/write");
    assert_eq!(ok["status"]["value"], "Succeeded");
    assert_eq!(ok["resourceId"], format!("/subscriptions/{sub}/resourceGroups/audited"));
    assert_eq!(ok["httpRequest"]["clientIpAddress"], "127.0.0.1");
    assert_eq!(ok["claims"]["authnmethodsreferences"], "Bearer");
    assert_eq!(ok["correlationId"].as_str().unwrap().len(), 36);
    let refused = &writes[1];
    assert_eq!((refused["caller"].as_str(), refused["status"]["value"].as_str()), (reader["appId"].as_str(), Some("Failed")));
    assert_eq!(refused["properties"]["statusCode"], "403");
    assert_eq!(refused["properties"]["errorCode"], "AuthorizationFailed");

    // Filters narrow in the server: by status, caller (any case), resource prefix, time.
    let failed = audit(&admin, &["--status", "Failed"]);
    assert!(failed.iter().all(|e| e["status"]["value"] == "Failed" || e["status"] == "Failed") && !failed.is_empty());
    let by_reader = audit(&admin, &["--caller", &reader["appId"].as_str().unwrap().to_uppercase(), "--operation", "Microsoft.*"]);
    assert_eq!(by_reader.len(), 1);
    let under = audit(&admin, &["--resource-id", &format!("/subscriptions/{sub}/resourceGroups/audited/")]);
    assert_eq!(under.len(), 1, "only the identity lies below the group: {under:#?}");
    assert_eq!(under[0]["operationName"]["value"], "Microsoft.ManagedIdentity/userAssignedIdentities/write");
    assert!(audit(&admin, &["--start-time", "2999-01-01T00:00:00Z", "--end-time", "2999-01-02T00:00:00Z"]).is_empty());
    admin.run(&["audit", "list", "--start-time", "yesterday"]).fails_with(&["RFC 3339"]);

    let table = admin.run(&["audit", "list", "--operation", "Microsoft.ManagedIdentity/*", "-o", "table"]).ok_text();
    assert!(table.contains("Operation") && table.contains("Microsoft.ManagedIdentity/userAssignedIdentities/write"), "{table}");

    // Reading takes Microsoft.Insights/eventtypes/values/read: Reader has it, a principal with no role does not.
    assert!(!audit(&reader_cli, &["--operation", "Microsoft.*"]).is_empty());
    let nobody = admin.run(&["ad", "sp", "create-for-rbac", "--name", "nobody"]).ok();
    let (nobody_cli, login) =
        Cli::service_principal(&dir.path().join("nobody"), &server, nobody["appId"].as_str().unwrap(), nobody["password"].as_str().unwrap());
    login.ok();
    nobody_cli.run(&["audit", "list"]).fails_with(&["AuthorizationFailed", "Microsoft.Insights/eventtypes/values/read"]);
    let (status, _) = server.api("GET", &format!("/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values"), "not-a-token", None);
    assert_eq!(status, 401);
}

#[test]
fn tokens_issued_and_refused_are_recorded_and_no_secret_or_token_ever_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "worker"]).ok();
    let (app_id, secret) = (sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());
    let token = server.access_token(app_id, secret, "https://vault.azure.net/.default");
    let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
    let wrong = "Wr0ng~secret~that~must~not~be~kept";
    let (status, body) = server.curl(
        &[
            "-H",
            "client-request-id: 0b6f7d1c-5a1e-4a57-9d4c-2f7b1e3f9a10",
            "-d",
            "grant_type=client_credentials",
            "--data-urlencode",
            &format!("client_id={app_id}"),
            "--data-urlencode",
            &format!("client_secret={wrong}"),
            "-d",
            "scope=https://vault.azure.net/.default",
        ],
        &format!("/{tenant}/oauth2/v2.0/token"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("0b6f7d1c-5a1e-4a57-9d4c-2f7b1e3f9a10"), "the error carries the client's correlation ID: {body}");

    let events = audit(&admin, &["--operation", "Kite.Token/*", "--caller", app_id]);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["status"]["value"], "Succeeded");
    assert_eq!(events[0]["resourceId"], "https://vault.azure.net/.default");
    assert_eq!(events[0]["claims"]["authnmethodsreferences"], "client_secret");
    assert_eq!(events[0]["properties"]["grant"], "client_credentials");
    assert_eq!(events[1]["status"]["value"], "Failed");
    assert_eq!(events[1]["properties"]["errorCode"], "AADSTS7000215");
    assert_eq!(events[1]["correlationId"], "0b6f7d1c-5a1e-4a57-9d4c-2f7b1e3f9a10");

    let export = dir.path().join("trail.jsonl");
    admin.run(&["audit", "export", "--file", export.to_str().unwrap()]).ok();
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 4, "the admin's sign-in, the app's creation and both token requests: {}", lines.len());
    let admin_secret = server.credentials()["password"].as_str().unwrap().to_string();
    for (what, needle) in
        [("the client secret", secret), ("the wrong secret", wrong), ("the issued token", token.as_str()), ("the admin's secret", &admin_secret)]
    {
        assert!(!text.contains(needle), "{what} is in the trail");
    }
    assert!(!text.contains("eyJ"), "no JWT of any kind is in the trail");
}

#[test]
fn webhook_decisions_are_recorded_with_the_user_and_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let rbac = dir.path().join("rbac.yaml");
    std::fs::write(
        &rbac,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: jane-reads}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}\n\
         subjects:\n- {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}\n",
    )
    .unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--k8s-rbac", rbac.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let review = |verb: &str| {
        let sar = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "jane", "resourceAttributes": {"namespace": "default", "verb": verb, "resource": "pods"}}});
        server.curl_with_input(&["-H", "content-type: application/json", "--data-binary", "@-"], "/authorize", sar.to_string().as_bytes())
    };
    assert!(review("get").1.contains("\"allowed\":true"));
    assert!(review("delete").1.contains("\"allowed\":false"));
    let tr = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "k8s-aws-v1.bm90LWEtdG9rZW4"}});
    server.curl_with_input(&["-H", "content-type: application/json", "--data-binary", "@-"], "/authenticate", tr.to_string().as_bytes());

    let reviews = audit(&admin, &["--operation", "authorization.k8s.io/*"]);
    let decisions: Vec<(&str, &str, &str)> = reviews
        .iter()
        .map(|e| (e["caller"].as_str().unwrap(), e["properties"]["verb"].as_str().unwrap(), e["properties"]["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(decisions, vec![("jane", "get", "allow"), ("jane", "delete", "deny")]);
    assert_eq!(reviews[0]["resourceId"], "default/pods");
    let authn = audit(&admin, &["--operation", "authentication.k8s.io/tokenreviews/create"]);
    assert_eq!(authn.len(), 1);
    assert_eq!(authn[0]["status"]["value"], "Failed");
    assert!(authn[0]["properties"]["reason"].as_str().unwrap().contains("EKS"), "{:#?}", authn[0]);
    let text = admin.run(&["audit", "list"]).ok_text();
    assert!(!text.contains("bm90LWEtdG9rZW4"), "the presented token is not in the trail");

    // The mutating webhook's decision: who created the pod, the pod, its service account, what changed.
    let admission = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default", "operation": "CREATE", "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
                   "spec": {"serviceAccountName": "plain", "containers": [{"name": "app", "image": "app"}]}}}});
    let (_, answer) =
        server.curl_with_input(&["-H", "content-type: application/json", "--data-binary", "@-"], "/mutate-v1-pod", admission.to_string().as_bytes());
    assert!(answer.contains("\"allowed\":true"), "{answer}");
    let mutated = audit(&admin, &["--operation", "admission.k8s.io/*"]);
    assert_eq!(mutated.len(), 1, "{mutated:#?}");
    assert_eq!(mutated[0]["caller"], "system:serviceaccount:kube-system:replicaset-controller");
    assert_eq!(mutated[0]["resourceId"], "default/web-1");
    assert_eq!((mutated[0]["properties"]["serviceAccount"].as_str(), mutated[0]["properties"]["decision"].as_str()), (Some("plain"), Some("unchanged")));
}

#[test]
fn ten_thousand_token_requests_each_land_in_the_trail_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let sp = admin.run(&["ad", "sp", "create-for-rbac", "--name", "busy"]).ok();
    let (app_id, secret) = (sp["appId"].as_str().unwrap().to_string(), sp["password"].as_str().unwrap().to_string());
    let tenant = server.credentials()["tenant"].as_str().unwrap().to_string();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(server.ca()).unwrap()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let url = format!("{}/{tenant}/oauth2/v2.0/token", server.url);

    const N: usize = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Every seventh request presents a wrong secret (refused with AADSTS7000215, then braked with
    // AADSTS50053); the rest get tokens. The client's request ID names each one.
    let sent: HashMap<String, u16> = rt.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(0..N)
            .map(|i| {
                let (http, url, app_id) = (http.clone(), url.clone(), app_id.clone());
                let secret = if i % 7 == 0 { format!("wrong-{i}") } else { secret.clone() };
                async move {
                    let id = uuid::Uuid::new_v4().to_string();
                    let form = [
                        ("grant_type", "client_credentials"),
                        ("client_id", &app_id),
                        ("client_secret", &secret),
                        ("scope", "https://management.azure.com/.default"),
                    ];
                    let resp = http.post(&url).header("client-request-id", &id).form(&form).send().await.unwrap();
                    (id, resp.status().as_u16())
                }
            })
            .buffer_unordered(16)
            .collect::<HashMap<_, _>>()
            .await
    });
    assert_eq!(sent.len(), N);
    let issued = sent.values().filter(|s| **s == 200).count();
    assert!(issued > N / 2 && issued < N, "both issues and refusals: {issued} issued");

    let export = dir.path().join("tokens.jsonl");
    admin.run(&["audit", "export", "--operation", "Kite.Token/*", "--caller", &app_id, "--file", export.to_str().unwrap()]).ok();
    let mut seen: HashMap<String, (usize, Value)> = HashMap::new();
    for line in std::fs::read_to_string(&export).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let entry = seen.entry(e["correlationId"].as_str().unwrap().to_string()).or_insert((0, e.clone()));
        entry.0 += 1;
    }
    assert_eq!(seen.len(), N, "every request is in the trail");
    for (id, status) in &sent {
        let (count, event) = &seen[id];
        assert_eq!(*count, 1, "request {id} is in the trail once");
        let expected = if *status == 200 { "Succeeded" } else { "Failed" };
        assert_eq!(event["status"]["value"], expected, "{event}");
        assert_eq!(event["properties"]["statusCode"], status.to_string());
    }
    let (_, metrics) = server.curl(&[], "/metrics");
    assert!(metrics.contains("kite_audit_events_dropped_total 0"), "nothing was dropped:\n{metrics}");
}

#[test]
fn node_agent_and_sts_decisions_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--pod-identity-dir", pods.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "apps", "-l", "japaneast"]).ok();
    let identity = admin.run(&["identity", "create", "-g", "apps", "-n", "web-id"]).ok();
    let (status, _) = server.imds("https://vault.azure.net");
    assert_eq!(status, 403, "no pod at 127.0.0.1 yet");
    std::fs::write(
        pods.join("web.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: demo\n  labels:\n    aadpodidbinding: web\nspec:\n  containers: [{{name: web, image: nginx}}]\n\
             status:\n  podIP: 127.0.0.1\n  phase: Running\n---\n\
             apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: web-id\n  namespace: demo\nspec:\n  type: 0\n  resourceID: {}\n  clientID: {}\n---\n\
             apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata:\n  name: web-binding\n  namespace: demo\nspec:\n  azureIdentity: web-id\n  selector: web\n",
            identity["id"].as_str().unwrap(),
            identity["clientId"].as_str().unwrap()
        ),
    )
    .unwrap();
    let body = support::wait_for("the pod to be served", &server, || {
        let (status, body) = server.imds("https://vault.azure.net");
        (status == 200).then_some(body)
    });
    let token = body["access_token"].as_str().unwrap().to_string();
    // The same token served again from the cache is not a new entry: the trail holds it once.
    for _ in 0..3 {
        assert_eq!(server.imds("https://vault.azure.net").0, 200);
    }

    let agent = audit(&admin, &["--operation", "Kite.NodeAgent/*"]);
    let succeeded = agent.iter().filter(|e| e["status"]["value"] == "Succeeded").count();
    assert_eq!(succeeded, 1, "one token, one pod: {agent:#?}");
    let refused = &agent[0];
    assert_eq!((refused["status"]["value"].as_str(), refused["properties"]["errorCode"].as_str()), (Some("Failed"), Some("unknown_pod")), "{refused:#?}");
    assert_eq!(refused["caller"], "127.0.0.1");
    let issued = agent.last().unwrap();
    assert_eq!((issued["caller"].as_str(), issued["status"]["value"].as_str()), (Some("demo/web"), Some("Succeeded")), "{agent:#?}");
    assert_eq!(issued["properties"]["identity"], "demo/web-id");
    assert_eq!(issued["resourceId"], "https://vault.azure.net");

    // An unsigned GetCallerIdentity: refused by STS, recorded as CloudTrail shows it.
    let (status, _) = server.curl(&["-d", "Action=GetCallerIdentity&Version=2011-06-15"], "/");
    assert_eq!(status, 403);
    let sts = audit(&admin, &["--operation", "GetCallerIdentity"]);
    assert_eq!(sts.len(), 1);
    assert_eq!((sts[0]["eventSource"].as_str(), sts[0]["status"].as_str()), (Some("sts.amazonaws.com"), Some("Failed")));
    assert!(sts[0]["errorCode"].is_string(), "{:#?}", sts[0]);
    let text = admin.run(&["audit", "list"]).ok_text();
    assert!(!text.contains(&token), "the pod's token is not in the trail");
}

#[test]
fn events_queued_when_the_server_is_stopped_are_written_before_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    let mut server = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    admin.run(&["group", "create", "-n", "last-words", "-l", "japaneast"]).ok();
    // At once, well inside the writer's 200 ms batch window.
    std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(server.child.wait().unwrap().success(), "{}", server.log_text());
    let again = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin2"), &again);
    assert_eq!(audit(&admin, &["--operation", "Microsoft.Resources/*"]).len(), 1);
}
