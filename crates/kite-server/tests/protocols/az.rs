//! What the Azure CLI reads and sends: the cloud metadata, ARM's `$filter` on role definitions and
//! assignments, and the Graph surface (its audience, filters, errors and who may write).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{t0, Server};

const GRAPH: &str = "https://kite.test/graph/";

#[tokio::test]
async fn the_cloud_metadata_is_public_and_derived_from_the_public_url_in_both_shapes() {
    let server = Server::start().await;
    // az joins `--endpoint-resource-manager https://kite.test/` and `/metadata/…` into `//metadata/…`.
    for path in ["/metadata/endpoints?api-version=2022-09-01", "//metadata/endpoints?api-version=2022-09-01"] {
        let (status, doc) = server.get(t0(), path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {doc}");
        assert_eq!(doc["resourceManager"], "https://kite.test/");
        assert_eq!(doc["authentication"]["loginEndpoint"], "https://kite.test");
        assert_eq!(doc["authentication"]["audiences"], json!(["https://kite.test/"]));
        assert_eq!(doc["authentication"]["identityProvider"], "AAD");
        assert_eq!(doc["microsoftGraphResourceId"], GRAPH);
        assert_eq!(doc["graph"], GRAPH);
        assert_eq!(doc["suffixes"]["keyVaultDns"], "vault.kite.test");
        assert!(doc.get("portal").is_none(), "{doc}");
    }
    let (status, old) = server.get(t0(), "/metadata/endpoints?api-version=2019-05-01", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, new) = server.get(t0(), "/metadata/endpoints?api-version=2022-09-01", None).await;
    assert_eq!(old, json!([new]));

    let (status, body) = server.get(t0(), "/metadata/endpoints", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("MissingApiVersionParameter")), "{body}");
    let (status, body) = server.get(t0(), "/metadata/endpoints?api-version=latest", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidApiVersionParameter")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'latest'"), "{body}");
}

fn names(list: &Value) -> Vec<String> {
    list["value"].as_array().unwrap().iter().map(|r| r["properties"]["roleName"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn role_definitions_filter_by_role_name_and_type_and_refuse_what_they_do_not_understand() {
    let server = Server::start().await;
    let token = server.access_token(t0()).await;
    let sub = server.state.default_subscription();
    let list = |filter: &str| format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions?$filter={}", urlencode(filter));

    let (status, all) = server.get(t0(), &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&all).len() > 20);
    let (_, one) = server.get(t0(), &list("roleName eq 'Managed Identity Operator'"), Some(&token)).await;
    assert_eq!(names(&one), vec!["Managed Identity Operator"]);
    let (_, any_case) = server.get(t0(), &list("roleName eq 'reader'"), Some(&token)).await;
    assert_eq!(names(&any_case), vec!["Reader"]);
    let (_, none) = server.get(t0(), &list("roleName eq 'Nobody'"), Some(&token)).await;
    assert_eq!(names(&none), Vec::<String>::new());
    let (_, custom) = server.get(t0(), &list("type eq 'CustomRole'"), Some(&token)).await;
    assert_eq!(names(&custom), Vec::<String>::new());
    let (_, builtin) = server.get(t0(), &list("type eq 'BuiltInRole' and roleName eq 'Owner'"), Some(&token)).await;
    assert_eq!(names(&builtin), vec!["Owner"]);

    for (filter, says) in [
        ("roleName eq 'Reader' or roleName eq 'Owner'", "found 'or'"),
        ("description eq 'x'", "'description eq 'x'' is not supported on role definitions"),
        ("type eq 'Weird'", "not 'Weird'"),
    ] {
        let (status, body) = server.get(t0(), &list(filter), Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(body["error"]["code"], "InvalidFilter", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{filter}: {body}");
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Registers an app through Graph as `bearer` and gives it a secret: (appId, principal id, secret).
async fn register(server: &Server, bearer: &str, name: &str) -> (String, String, String) {
    let (status, app) = server.call(t0(), "POST", "/graph/v1.0/applications", Some(bearer), json!({"displayName": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["appId"].as_str().unwrap().to_string();
    let (status, pw) = server
        .call(t0(), "POST", &format!("/graph/v1.0/applications/{app_id}/addPassword"), Some(bearer), json!({"passwordCredential": {"displayName": "rbac"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{pw}");
    let (status, sp) = server.call(t0(), "POST", "/graph/v1.0/servicePrincipals", Some(bearer), json!({"appId": app_id, "accountEnabled": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{sp}");
    (app_id, sp["id"].as_str().unwrap().to_string(), pw["secretText"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn role_assignments_filter_by_principal_at_scope_and_assigned_to() {
    let server = Server::start().await;
    let token = server.access_token(t0()).await;
    let sub = server.state.default_subscription();
    let (status, body) = server.call(t0(), "PUT", &format!("/subscriptions/{sub}/resourceGroups/rg1"), Some(&token), json!({"location": "westus2"})).await;
    assert!(status.is_success(), "{body}");
    let (_, principal, _) = register(&server, &token, "deployer").await;
    let rg = format!("/subscriptions/{sub}/resourceGroups/rg1");
    let assignment = format!("{rg}/providers/Microsoft.Authorization/roleAssignments/{}", uuid::Uuid::new_v4());
    let reader = format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7");
    let (status, body) =
        server.call(t0(), "PUT", &assignment, Some(&token), json!({"properties": {"roleDefinitionId": reader, "principalId": principal}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let list = |scope: &str, filter: &str| format!("{scope}/providers/Microsoft.Authorization/roleAssignments?$filter={}", urlencode(filter));
    let scopes = |v: &Value| -> Vec<(String, String)> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["properties"]["principalId"].as_str().unwrap().into(), a["properties"]["scope"].as_str().unwrap().into()))
            .collect()
    };
    // At the subscription, a principal's assignments below it too.
    let (status, by_principal) = server.get(t0(), &list(&format!("/subscriptions/{sub}"), &format!("principalId eq '{principal}'")), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{by_principal}");
    assert_eq!(scopes(&by_principal), vec![(principal.clone(), rg.clone())]);
    let (_, assigned) = server.get(t0(), &list(&format!("/subscriptions/{sub}"), &format!("assignedTo('{principal}')")), Some(&token)).await;
    assert_eq!(scopes(&assigned), scopes(&by_principal));
    // No filter, as ARM: at, above and below the scope.
    let (_, everything) = server.get(t0(), &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments"), Some(&token)).await;
    assert!(scopes(&everything).contains(&(principal.clone(), rg.clone())) && scopes(&everything).len() > 1, "{everything}");
    let (_, at_rg_all) = server.get(t0(), &format!("{rg}/providers/Microsoft.Authorization/roleAssignments"), Some(&token)).await;
    assert!(scopes(&at_rg_all).contains(&(principal.clone(), rg.clone())) && scopes(&at_rg_all).len() > 1, "{at_rg_all}");
    // atScope() at the subscription: the admin's Owner there, not the group's assignment below it.
    let (_, at_sub) = server.get(t0(), &list(&format!("/subscriptions/{sub}"), "atScope()"), Some(&token)).await;
    assert!(scopes(&at_sub).iter().all(|(_, s)| s != &rg), "{at_sub}");
    assert!(!scopes(&at_sub).is_empty());
    // atScope() at the group: the group's and those above it.
    let (_, at_rg) = server.get(t0(), &list(&rg, "atScope()"), Some(&token)).await;
    assert!(scopes(&at_rg).contains(&(principal.clone(), rg.clone())));
    assert!(scopes(&at_rg).len() > 1, "{at_rg}");
    let (_, mine_at_rg) = server.get(t0(), &list(&rg, &format!("atScope() and assignedTo('{principal}')")), Some(&token)).await;
    assert_eq!(scopes(&mine_at_rg), vec![(principal.clone(), rg.clone())]);

    for filter in ["principalId eq 'not-a-guid'", "roleDefinitionId eq 'x'", "atScope('x') or x"] {
        let (status, body) = server.get(t0(), &list(&rg, filter), Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
        assert!(["InvalidFilter", "InvalidPrincipalId"].contains(&body["error"]["code"].as_str().unwrap()), "{body}");
    }
}

#[tokio::test]
async fn a_graph_token_is_accepted_by_graph_and_refused_by_the_management_api() {
    let server = Server::start().await;
    let graph = server.client_token(t0(), &server.app_id, &server.secret.clone(), &format!("{GRAPH}.default")).await;
    let (status, body) = server.get(t0(), "/graph/v1.0/servicePrincipals", Some(&graph)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["@odata.context"], "https://kite.test/graph/v1.0/$metadata#servicePrincipals");
    let (status, body) = server.get(t0(), "/subscriptions", Some(&graph)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Nor kite's own directory calls outside Graph's surface.
    let (status, body) = server.call(t0(), "POST", "/v1.0/servicePrincipals/createForRbac", Some(&graph), json!({"displayName": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // kite's own CLI calls Graph with its management token.
    let management = server.access_token(t0()).await;
    let (status, _) = server.get(t0(), "/v1.0/servicePrincipals", Some(&management)).await;
    assert_eq!(status, StatusCode::OK);
    // Graph's error shape, naming what was asked for.
    let (status, body) = server.get(t0(), "/graph/v1.0/servicePrincipals/00000000-0000-0000-0000-000000000001", Some(&graph)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("00000000-0000-0000-0000-000000000001"));
    assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
    let (status, body) = server.get(t0(), "/graph/v1.0/servicePrincipals", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["innerError"].is_object(), "{body}");
}

#[tokio::test]
async fn graph_filters_find_service_principals_and_applications_as_az_asks() {
    let server = Server::start().await;
    let token = server.access_token(t0()).await;
    let (app_id, sp_id, _) = register(&server, &token, "mysp").await;
    // App names are unique; a managed identity may share one.
    register(&server, &token, "twin").await;
    let sub = server.state.default_subscription();
    let (status, body) = server.call(t0(), "PUT", &format!("/subscriptions/{sub}/resourceGroups/rg1"), Some(&token), json!({"location": "westus2"})).await;
    assert!(status.is_success(), "{body}");
    let mi = format!("/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/twin");
    let (status, twin) = server.call(t0(), "PUT", &mi, Some(&token), json!({"location": "westus2"})).await;
    assert!(status.is_success(), "{twin}");
    let sps = |filter: &str| format!("/graph/v1.0/servicePrincipals?$filter={}", urlencode(filter));
    let ids = |v: &Value| -> Vec<String> { v["value"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect() };

    for filter in [
        format!("servicePrincipalNames/any(c:c eq '{app_id}')"),
        "servicePrincipalNames/any(c:c eq 'mysp')".into(),
        "displayName eq 'mysp'".into(),
        "startswith(displayName,'mys')".into(),
        format!("appId eq '{app_id}'"),
        format!("id in ('{sp_id}', '00000000-0000-0000-0000-000000000001')"),
    ] {
        let (status, body) = server.get(t0(), &sps(&filter), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(ids(&body), vec![sp_id.clone()], "{filter}");
        assert_eq!(body["value"][0]["servicePrincipalNames"][0], app_id.as_str());
    }
    // A display name two principals share is no service principal name: never the wrong one.
    let (_, twins) = server.get(t0(), &sps("servicePrincipalNames/any(c:c eq 'twin')"), Some(&token)).await;
    assert_eq!(ids(&twins), Vec::<String>::new());
    let (_, twins) = server.get(t0(), &sps("displayName eq 'twin'"), Some(&token)).await;
    assert_eq!(ids(&twins).len(), 2);
    // A managed identity's names: its client ID and its resource ID, as Entra lists them.
    let (_, by_resource) =
        server.get(t0(), &sps(&format!("servicePrincipalNames/any(c:c eq '{}')", mi.replace("resourceGroups", "resourcegroups"))), Some(&token)).await;
    assert_eq!(ids(&by_resource), vec![twin["properties"]["principalId"].as_str().unwrap().to_string()], "{by_resource}");

    let (_, apps) = server.get(t0(), &format!("/graph/v1.0/applications?$filter={}", urlencode(&format!("appId eq '{app_id}'"))), Some(&token)).await;
    assert_eq!(ids(&apps), vec![app_id.clone()]);
    assert_eq!(apps["value"][0]["passwordCredentials"].as_array().unwrap().len(), 1);
    let (_, by_uri) = server.get(t0(), &format!("/graph/v1.0/applications?$filter={}", urlencode("identifierUris/any(s:s eq 'api://x')")), Some(&token)).await;
    assert_eq!(ids(&by_uri), Vec::<String>::new());

    let (status, stubs) =
        server.call(t0(), "POST", "/graph/v1.0/directoryObjects/getByIds", Some(&token), json!({"ids": [sp_id], "types": ["servicePrincipal"]})).await;
    assert_eq!(status, StatusCode::OK, "{stubs}");
    assert_eq!(stubs["value"][0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    assert_eq!(ids(&stubs), vec![sp_id.clone()]);

    // A managed identity goes with its resource, not through Graph.
    let twin_principal = twin["properties"]["principalId"].as_str().unwrap();
    let (status, body) = server.call(t0(), "DELETE", &format!("/graph/v1.0/servicePrincipals/{twin_principal}"), Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("az identity delete"), "{body}");

    let (status, body) = server.get(t0(), &sps("tags/any(t:t eq 'x')"), Some(&token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("Request_UnsupportedQuery")), "{body}");
    let (status, body) = server.get(t0(), &sps("displayName eq 'a' or displayName eq 'b'"), Some(&token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("BadRequest")), "{body}");
    let too_many: Vec<String> = (0..1001).map(|_| sp_id.clone()).collect();
    let (status, _) = server.call(t0(), "POST", "/graph/v1.0/directoryObjects/getByIds", Some(&token), json!({"ids": too_many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn graph_writes_go_through_the_directory_rules() {
    let server = Server::start().await;
    let admin = server.access_token(t0()).await;
    let (owned_app, _, _) = register(&server, &admin, "owned-by-admin").await;
    let (other_app, _, other_secret) = register(&server, &admin, "someone").await;
    let someone = server.client_token(t0(), &other_app, &other_secret, &format!("{GRAPH}.default")).await;

    // Anyone signed in may register an app, and owns it.
    let (mine, _, _) = register(&server, &someone, "mine").await;
    // Not someone else's: no password added or removed, no deletion, credential metadata hidden.
    let add = json!({"passwordCredential": {"displayName": "x"}});
    let (status, body) = server.call(t0(), "POST", &format!("/graph/v1.0/applications/{owned_app}/addPassword"), Some(&someone), add.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Insufficient privileges"), "{body}");
    let (_, app) = server.get(t0(), &format!("/graph/v1.0/applications/{owned_app}"), Some(&admin)).await;
    let key = app["passwordCredentials"][0]["keyId"].as_str().unwrap().to_string();
    let (status, _) = server.call(t0(), "POST", &format!("/graph/v1.0/applications/{owned_app}/removePassword"), Some(&someone), json!({"keyId": key})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.call(t0(), "DELETE", &format!("/graph/v1.0/applications/{owned_app}"), Some(&someone), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server.call(t0(), "PATCH", &format!("/graph/v1.0/applications/{owned_app}"), Some(&someone), json!({"keyCredentials": []})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, seen) = server.get(t0(), &format!("/graph/v1.0/applications/{owned_app}"), Some(&someone)).await;
    assert_eq!(seen["passwordCredentials"], json!([]), "{seen}");

    // Its own app: yes, through the service principal's endpoints too.
    let (_, sp) = server.get(t0(), &format!("/graph/v1.0/servicePrincipals/{mine}"), Some(&someone)).await;
    let sp_id = sp["id"].as_str().unwrap();
    let (status, pw) = server.call(t0(), "POST", &format!("/graph/v1.0/servicePrincipals/{sp_id}/addPassword"), Some(&someone), add.clone()).await;
    assert_eq!(status, StatusCode::OK, "{pw}");
    assert!(pw["secretText"].as_str().unwrap().len() > 30);
    let key = pw["keyId"].as_str().unwrap();
    let (status, body) =
        server.call(t0(), "POST", &format!("/graph/v1.0/servicePrincipals/{sp_id}/removePassword"), Some(&someone), json!({"keyId": key})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // addKey: someone else's app is refused before its proof is read; its own needs a proof.
    let add_key = json!({"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": "MIIB"}, "proof": "not-a-jwt"});
    let (status, _) = server.call(t0(), "POST", &format!("/graph/v1.0/applications/{owned_app}/addKey"), Some(&someone), add_key.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = server.call(t0(), "POST", &format!("/graph/v1.0/applications/{mine}/addKey"), Some(&someone), add_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("The proof is invalid"), "{body}");
    // PATCH keeps the name, and keeps only key credentials the app has.
    let (status, body) = server.call(t0(), "PATCH", &format!("/graph/v1.0/applications/{mine}"), Some(&someone), json!({"displayName": "mine"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = server.call(t0(), "PATCH", &format!("/graph/v1.0/applications/{mine}"), Some(&someone), json!({"displayName": "renamed"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'renamed'"), "{body}");
    let unknown = json!({"keyCredentials": [{"keyId": "00000000-0000-0000-0000-000000000009", "key": null}]});
    let (status, body) = server.call(t0(), "PATCH", &format!("/graph/v1.0/applications/{mine}"), Some(&someone), unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("00000000-0000-0000-0000-000000000009"), "{body}");
    // A secret longer than 24 months is refused, naming the limit.
    let long = json!({"passwordCredential": {"endDateTime": "2999-01-01T00:00:00Z"}});
    let (status, body) = server.call(t0(), "POST", &format!("/graph/v1.0/applications/{mine}/addPassword"), Some(&someone), long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("24 months"), "{body}");
    let (status, _) = server.call(t0(), "DELETE", &format!("/graph/v1.0/applications/{mine}"), Some(&someone), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
