//! Property test for the node agent's decision: on random small clusters (pods sharing IPs, in
//! every phase, with and without binding labels; bindings to missing identities or across
//! namespaces; the same clientID in two namespaces; exceptions), `decide` never hands a caller an
//! identity its pod is not bound to. The oracle below is written from aad-pod-identity's rules by
//! brute force, without `decide`'s code: the one live pod at the IP, the bindings in its namespace
//! whose selector equals its `aadpodidbinding` label, the identities in that namespace they name.

use std::collections::BTreeMap;

use kite_k8s::podidentity::{decide, ClusterState, PodDecision, Selector};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

const NAMESPACES: &[&str] = &["demo", "prod"];
const IPS: &[&str] = &["10.244.0.1", "10.244.0.2", "10.244.0.3", "10.244.0.4"];
const IDENTITY_NAMES: &[&str] = &["id-a", "id-b", "id-c", "id-d"];
const CLIENT_IDS: &[&str] = &["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"];
const RESOURCE_IDS: &[&str] = &[
    "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one",
    "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/two",
];
const SELECTORS: &[&str] = &["app", "web", "App"];
const PHASES: &[Option<&str>] = &[Some("Running"), Some("Pending"), Some("Succeeded"), Some("Failed"), None];

#[derive(Clone, Debug)]
struct TPod {
    name: usize,
    ns: &'static str,
    ip: &'static str,
    phase: Option<&'static str>,
    binding_label: Option<&'static str>,
    tier: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct TIdentity {
    ns: &'static str,
    name: &'static str,
    client_id: &'static str,
    resource_id: &'static str,
}

#[derive(Clone, Debug)]
struct TBinding {
    ns: &'static str,
    identity: &'static str,
    selector: &'static str,
}

fn pod() -> impl Strategy<Value = TPod> {
    (0..4usize, select(NAMESPACES), select(IPS), select(PHASES), proptest::option::of(select(SELECTORS)), proptest::option::of(select(&["system", "user"][..])))
        .prop_map(|(name, ns, ip, phase, binding_label, tier)| TPod { name, ns, ip, phase, binding_label, tier })
}

fn identities() -> impl Strategy<Value = Vec<TIdentity>> {
    // Keyed by (namespace, name): object names are unique per namespace in Kubernetes.
    proptest::collection::btree_map((select(NAMESPACES), select(IDENTITY_NAMES)), (select(CLIENT_IDS), select(RESOURCE_IDS)), 0..6)
        .prop_map(|m| m.into_iter().map(|((ns, name), (client_id, resource_id))| TIdentity { ns, name, client_id, resource_id }).collect())
}

fn binding() -> impl Strategy<Value = TBinding> {
    (select(NAMESPACES), select(IDENTITY_NAMES), select(SELECTORS)).prop_map(|(ns, identity, selector)| TBinding { ns, identity, selector })
}

fn exceptions() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    // (namespace, tier label value that is excepted)
    proptest::collection::vec((select(NAMESPACES), select(&["system", "user"][..])), 0..2)
}

fn selector() -> impl Strategy<Value = Selector> {
    (proptest::option::of(select(CLIENT_IDS)), proptest::option::of(select(RESOURCE_IDS)))
        .prop_map(|(c, r)| Selector { client_id: c.map(|c| c.to_uppercase()), resource_id: r.map(str::to_string) })
}

fn cluster(pods: &[TPod], ids: &[TIdentity], bindings: &[TBinding], exceptions: &[(&str, &str)]) -> ClusterState {
    let mut state = ClusterState::default();
    let mut objects: Vec<Value> = Vec::new();
    for p in pods {
        let mut labels = BTreeMap::new();
        if let Some(l) = p.binding_label {
            labels.insert("aadpodidbinding", l);
        }
        if let Some(t) = p.tier {
            labels.insert("tier", t);
        }
        let mut status = json!({"podIP": p.ip});
        if let Some(phase) = p.phase {
            status["phase"] = json!(phase);
        }
        objects.push(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{}", p.name), "namespace": p.ns, "labels": labels}, "status": status}),
        );
    }
    for i in ids {
        objects.push(json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": {"name": i.name, "namespace": i.ns},
                            "spec": {"type": 0, "clientID": i.client_id, "resourceID": i.resource_id}}));
    }
    for (n, b) in bindings.iter().enumerate() {
        objects.push(
            json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding", "metadata": {"name": format!("binding-{n}"), "namespace": b.ns},
                            "spec": {"azureIdentity": b.identity, "selector": b.selector}}),
        );
    }
    for (n, (ns, tier)) in exceptions.iter().enumerate() {
        objects.push(json!({"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzurePodIdentityException", "metadata": {"name": format!("exception-{n}"), "namespace": ns},
                            "spec": {"podLabels": {"tier": tier}}}));
    }
    for o in objects {
        state.add(o).expect("generated objects are valid");
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_agent_never_hands_out_an_identity_the_calling_pod_is_not_bound_to(
        pods in proptest::collection::vec(pod(), 0..6),
        ids in identities(),
        bindings in proptest::collection::vec(binding(), 0..6),
        excepted in exceptions(),
        ip in select(IPS),
        wanted in selector(),
    ) {
        let state = cluster(&pods, &ids, &bindings, &excepted);
        let live: Vec<&TPod> = pods.iter().filter(|p| p.ip == ip && matches!(p.phase, Some("Running") | Some("Pending") | None)).collect();
        match decide(&state, ip, &wanted) {
            PodDecision::Identity { pod, namespace, identity } => {
                // Exactly one live pod has the IP, and it is the one named.
                prop_assert_eq!(live.len(), 1);
                let caller = live[0];
                prop_assert_eq!((pod, namespace.as_str()), (format!("pod-{}", caller.name), caller.ns));
                prop_assert!(!excepted.iter().any(|(ns, tier)| *ns == caller.ns && caller.tier == Some(*tier)));
                // The identity is one a binding in the pod's namespace, selected by its label, names.
                let label = caller.binding_label;
                let bound: Vec<&TIdentity> = ids.iter()
                    .filter(|i| i.ns == caller.ns && bindings.iter().any(|b| b.ns == caller.ns && Some(b.selector) == label && b.identity == i.name))
                    .collect();
                let given = (identity.metadata.namespace.as_str(), identity.metadata.name.as_str(), identity.spec.client_id.as_str(), identity.spec.resource_id.as_str());
                prop_assert!(bound.iter().any(|i| (i.ns, i.name, i.client_id, i.resource_id) == given), "{given:?} is not among {bound:?}");
                // And it is the one asked for, when one was.
                if let Some(c) = &wanted.client_id {
                    prop_assert!(identity.spec.client_id.eq_ignore_ascii_case(c));
                } else if let Some(r) = &wanted.resource_id {
                    prop_assert!(identity.spec.resource_id.eq_ignore_ascii_case(r));
                } else {
                    // Unasked, only a pod bound to exactly one identity gets it.
                    let names: std::collections::BTreeSet<&str> = bound.iter().map(|i| i.name).collect();
                    prop_assert_eq!(names.len(), 1);
                }
            }
            PodDecision::Excepted { pod, namespace, .. } => {
                prop_assert_eq!(live.len(), 1);
                let caller = live[0];
                prop_assert_eq!((pod, namespace.as_str()), (format!("pod-{}", caller.name), caller.ns));
                prop_assert!(excepted.iter().any(|(ns, tier)| *ns == caller.ns && caller.tier == Some(*tier)));
            }
            PodDecision::Refused { message, .. } => {
                // A refusal is right only when no bound identity fits the request.
                if let [caller] = live.as_slice() {
                    let fitting: std::collections::BTreeSet<&str> = ids.iter().filter(|i| {
                        i.ns == caller.ns
                            && bindings.iter().any(|b| b.ns == caller.ns && Some(b.selector) == caller.binding_label && b.identity == i.name)
                            && wanted.client_id.as_ref().is_none_or(|c| i.client_id.eq_ignore_ascii_case(c))
                            && (wanted.client_id.is_some() || wanted.resource_id.as_ref().is_none_or(|r| i.resource_id.eq_ignore_ascii_case(r)))
                    }).map(|i| i.name).collect();
                    // Several bound identities and none named: refusing (and listing them) is right.
                    let ambiguous = wanted == Selector::default() && fitting.len() > 1;
                    let is_excepted = excepted.iter().any(|(ns, tier)| *ns == caller.ns && caller.tier == Some(*tier));
                    prop_assert!(fitting.is_empty() || ambiguous || is_excepted, "refused a pod with a fitting identity: {message}");
                }
            }
        }
    }
}
