//! The webhook's patches, applied with json-patch as the API server applies them: what each kind of
//! pod gets, what it keeps, and that a second pass adds nothing.
use kite_k8s::workload_identity::{mutate, Settings};
use proptest::prelude::*;
use serde_json::{json, Value};

const CLIENT: &str = "5e3a4c3f-8d2e-4a8e-9f5c-0b1d2c3e4f50";

fn settings() -> Settings {
    Settings {
        tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
        authority_host: "https://kite.example:8443".into(),
        container_credentials_uri: "http://169.254.170.23/v1/credentials".into(),
        ..Settings::default()
    }
}

fn pod(labels: Value, annotations: Value, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "payments", "labels": labels, "annotations": annotations},
           "spec": {"serviceAccountName": "api", "containers": containers}})
}

fn sa(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "payments", "annotations": annotations}})
}

fn apply(pod: &Value, ops: &[Value]) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .map(|e| e.iter().map(|v| (v["name"].as_str().unwrap().to_string(), v["value"].as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}

#[test]
fn an_azure_pod_gets_the_sdk_environment_and_a_projected_token_in_every_container_not_skipped() {
    let p = pod(
        json!({"azure.workload.identity/use": "true"}),
        json!({"azure.workload.identity/skip-containers": "sidecar", "azure.workload.identity/service-account-token-expiration": "7200"}),
        json!([{"name": "app", "image": "app"}, {"name": "sidecar", "image": "envoy"}]),
    );
    let m = mutate(&p, "payments/app", Some(&sa(json!({"azure.workload.identity/client-id": CLIENT}))), false, &settings());
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let out = apply(&p, &m.patch);
    let env = env_of(&out["spec"]["containers"][0]);
    for (k, v) in [
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
        ("AZURE_AUTHORITY_HOST", "https://kite.example:8443"),
    ] {
        assert!(env.contains(&(k.to_string(), v.to_string())), "{k} missing: {env:?}");
    }
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0],
        json!({"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": true})
    );
    assert!(out["spec"]["containers"][1].get("env").is_none(), "skipped containers are left alone");
    let token = &out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!((token["audience"].as_str(), token["expirationSeconds"].as_i64()), (Some("api://AzureADTokenExchange"), Some(7200)));
}

#[test]
fn irsa_and_pod_identity_follow_the_service_account_and_the_association() {
    let p = pod(json!({}), json!({}), json!([{"name": "app", "image": "app"}]));
    let account = sa(json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/s3-reader", "eks.amazonaws.com/sts-regional-endpoints": "true"}));
    let out = apply(&p, &mutate(&p, "payments/app", Some(&account), false, &Settings { region: Some("us-west-2".into()), ..settings() }).patch);
    let env = env_of(&out["spec"]["containers"][0]);
    assert!(env.contains(&("AWS_ROLE_ARN".into(), "arn:aws:iam::111122223333:role/s3-reader".into())), "{env:?}");
    assert!(env.contains(&("AWS_WEB_IDENTITY_TOKEN_FILE".into(), "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into())));
    assert!(env.contains(&("AWS_STS_REGIONAL_ENDPOINTS".into(), "regional".into())) && env.contains(&("AWS_REGION".into(), "us-west-2".into())));
    assert_eq!(out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"], "sts.amazonaws.com");

    let out = apply(&p, &mutate(&p, "payments/app", Some(&sa(json!({}))), true, &settings()).patch);
    let env = env_of(&out["spec"]["containers"][0]);
    assert!(env.contains(&("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), "http://169.254.170.23/v1/credentials".into())), "{env:?}");
    assert_eq!(out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"], "pods.eks.amazonaws.com");
}

#[test]
fn with_a_ca_config_map_injected_containers_trust_kite_and_others_are_left_alone() {
    let p = pod(
        json!({"azure.workload.identity/use": "true"}),
        json!({"azure.workload.identity/skip-containers": "sidecar"}),
        json!([{"name": "app", "image": "app"}, {"name": "sidecar", "image": "envoy"}]),
    );
    let account = sa(json!({"azure.workload.identity/client-id": CLIENT}));
    let with_ca = Settings { ca_config_map: Some("kite-root-ca.crt".into()), ..settings() };
    let out = apply(&p, &mutate(&p, "payments/app", Some(&account), false, &with_ca).patch);
    let volume = out["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "kite-ca").cloned().unwrap();
    assert_eq!(volume["configMap"], json!({"name": "kite-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}));
    let env = env_of(&out["spec"]["containers"][0]);
    for k in ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"] {
        assert!(env.contains(&(k.to_string(), "/var/run/secrets/kite.io/ca/ca.crt".to_string())), "{k}: {env:?}");
    }
    assert!(out["spec"]["containers"][0]["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == "/var/run/secrets/kite.io/ca"));
    assert!(env_of(&out["spec"]["containers"][1]).is_empty(), "a skipped container gets nothing: {}", out["spec"]["containers"][1]);
    // Without the setting (kite behind a public certificate) nothing about the CA is injected.
    let plain = apply(&p, &mutate(&p, "payments/app", Some(&account), false, &settings()).patch);
    assert!(!plain.to_string().contains("kite-ca") && !plain.to_string().contains("CA_BUNDLE"), "{plain}");
    // A pod the webhook does not concern gets no CA either.
    let unconcerned = pod(json!({}), json!({}), json!([{"name": "app", "image": "app"}]));
    assert!(mutate(&unconcerned, "payments/app", Some(&account), false, &with_ca).patch.is_empty());
}

#[test]
fn malformed_annotations_and_unknown_service_accounts_admit_the_pod_unchanged_with_a_warning() {
    let labelled = pod(json!({"azure.workload.identity/use": "true"}), json!({}), json!([{"name": "app"}]));
    for (account, needle) in [
        (Some(sa(json!({"azure.workload.identity/client-id": "not-a-guid"}))), "is not a GUID"),
        (Some(sa(json!({}))), "has no azure.workload.identity/client-id"),
        (None, "not known to kite"),
    ] {
        let m = mutate(&labelled, "payments/app", account.as_ref(), false, &settings());
        assert!(m.patch.is_empty() && m.warnings.len() == 1 && m.warnings[0].contains(needle) && m.warnings[0].contains("payments/app"), "{m:?}");
    }
    let expiring = pod(
        json!({"azure.workload.identity/use": "true"}),
        json!({"azure.workload.identity/service-account-token-expiration": "60"}),
        json!([{"name": "app"}]),
    );
    let m = mutate(&expiring, "payments/app", Some(&sa(json!({"azure.workload.identity/client-id": CLIENT}))), false, &settings());
    assert!(m.patch.is_empty() && m.warnings[0].contains("from 3600 to 86400"), "{m:?}");
    let bad_arn = mutate(
        &pod(json!({}), json!({}), json!([{"name": "app"}])),
        "payments/app",
        Some(&sa(json!({"eks.amazonaws.com/role-arn": "s3-reader"}))),
        false,
        &settings(),
    );
    assert!(bad_arn.patch.is_empty() && bad_arn.warnings[0].contains("is not a role ARN"), "{bad_arn:?}");
    // A pod that asks for nothing gets nothing, and no warning.
    assert_eq!(mutate(&pod(json!({}), json!({}), json!([{"name": "app"}])), "payments/app", None, false, &settings()), Default::default());
}

fn arb_pod() -> impl Strategy<Value = (Value, Value, bool)> {
    let env = prop::collection::vec((prop::sample::select(vec!["AZURE_CLIENT_ID", "AWS_ROLE_ARN", "OTHER", "AWS_REGION"]), "[a-z]{1,6}"), 0..3);
    let container = (prop::sample::select(vec!["app", "sidecar", "init"]), env, any::<bool>()).prop_map(|(name, env, mounted)| {
        let mut c = json!({"name": name, "image": "img"});
        if !env.is_empty() {
            c["env"] = Value::Array(env.into_iter().map(|(k, v)| json!({"name": k, "value": v})).collect());
        }
        if mounted {
            c["volumeMounts"] = json!([{"name": "azure-identity-token", "mountPath": "/mine"}]);
        }
        c
    });
    (
        prop::collection::vec(container, 1..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["app", "sidecar;init"])),
    )
        .prop_map(|(containers, azure, irsa, associated, own_volume, skip)| {
            let mut annotations = json!({});
            if let Some(s) = skip {
                annotations["azure.workload.identity/skip-containers"] = json!(s);
            }
            let mut p = pod(json!({"azure.workload.identity/use": if azure { "true" } else { "false" }}), annotations, Value::Array(containers));
            if own_volume {
                p["spec"]["volumes"] = json!([{"name": "aws-iam-token", "emptyDir": {}}]);
            }
            let mut a = json!({"azure.workload.identity/client-id": CLIENT});
            if irsa {
                a["eks.amazonaws.com/role-arn"] = json!("arn:aws:iam::111122223333:role/r");
            }
            (p, sa(a), associated)
        })
}

/// Every value the original pod had is still in the mutated one, unchanged.
fn keeps(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => b.iter().all(|(k, v)| a.get(k).is_some_and(|w| keeps(v, w))),
        (Value::Array(b), Value::Array(a)) => b.len() <= a.len() && b.iter().zip(a).all(|(v, w)| keeps(v, w)),
        (b, a) => b == a,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn the_patch_applies_keeps_what_the_pod_had_and_a_second_pass_adds_nothing((p, account, associated) in arb_pod(), ca in any::<bool>()) {
        let settings = Settings { ca_config_map: ca.then(|| "kite-root-ca.crt".to_string()), ..settings() };
        let once = apply(&p, &mutate(&p, "payments/app", Some(&account), associated, &settings).patch);
        prop_assert!(keeps(&p, &once), "changed what the pod had:\n{p:#}\n{once:#}");
        let again = mutate(&once, "payments/app", Some(&account), associated, &settings);
        prop_assert!(again.patch.is_empty(), "a second pass patched: {:?}", again.patch);
    }
}

#[test]
fn an_admission_review_names_its_pod_and_a_malformed_one_says_what_is_wrong() {
    use kite_k8s::workload_identity::pod_request;
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "namespace": "payments", "operation": "CREATE",
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "api-"}, "spec": {"containers": [{"name": "app"}]}}}});
    let r = pod_request(&review).unwrap();
    assert_eq!((r.uid.as_str(), r.namespace.as_str(), r.service_account.as_str()), ("705ab4f5-6393-11e8-b7cc-42010a800002", "payments", "default"));
    assert_eq!(r.name, "payments/api-…", "named with the request's namespace, which the pod's metadata lacks");
    for (broken, needle) in [
        (json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}), "admissionReviewVersions: [v1]"),
        (json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}), "has no request"),
        (json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"object": {}}}), "request.uid"),
        (json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u"}}), "request.object"),
        (json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Deployment"}}}), "not a Pod"),
    ] {
        assert!(pod_request(&broken).unwrap_err().contains(needle), "{broken}");
    }
}
