//! `GET /kite/doctor?days=N`: reads a snapshot of the store and the cluster source and runs the
//! pure rules of `kite_core::doctor` over it. It reads every app, identity, cluster and assignment,
//! so it takes `Kite/doctor/read` on the subscription (Reader and above hold it through `*/read`).

use axum::extract::State;
use axum::Json;
use kite_core::aks::ControlPlane;
use kite_core::doctor::{diagnose, exit_code, AwsAuthEntry, AzureIdentityFacts, BindingFacts, PodFacts, Snapshot};
use kite_core::Scope;
use kite_k8s::podidentity::mic::ControllerMode;
use kite_store::{AssignmentFilter, AwsKind};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::Query;
use crate::api::auth::{authorize, Caller};
use crate::infra::error::{ApiError, ApiResult};
use crate::infra::state::AppState;
use crate::token::iam::eks_cluster_named;

#[derive(Deserialize)]
pub struct Params {
    days: Option<i64>,
}

pub async fn run(State(state): State<AppState>, caller: Caller, Query(p): Query<Params>) -> ApiResult<Json<Value>> {
    authorize(&state, &caller, "Kite/doctor/read", &Scope::subscription(&state.default_subscription())).await?;
    let days = match p.days {
        None => 30,
        Some(d @ 1..=730) => d,
        Some(d) => return Err(ApiError::bad_request("InvalidQueryParameterValue", format!("days {d} is out of range: 1 to 730"))),
    };
    let findings = diagnose(&snapshot(&state, caller.now, days).await?);
    Ok(Json(json!({"exitCode": exit_code(&findings), "findings": findings})))
}

/// `kite serve --doctor-interval SECS`: runs the rules every interval and exports the findings as
/// `kite_doctor_findings{rule,severity}` on /metrics, so an alert fires before the outage.
pub fn spawn_watch(state: AppState, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match snapshot(&state, state.now(), 30).await {
                Ok(s) => state.metrics.doctor_findings(&diagnose(&s)),
                Err(e) => tracing::error!("doctor: reading the snapshot failed: {}", e.message),
            }
        }
    });
}

/// What the rules look at, read now: the store's directory, RBAC, clusters and IAM objects, and
/// the cluster source's pods, pod-identity objects and aws-auth.
async fn snapshot(state: &AppState, now: OffsetDateTime, days: i64) -> ApiResult<Snapshot> {
    let store = &state.store;
    let mut s = Snapshot::empty(now);
    s.expiry_window = time::Duration::days(days);
    s.applications = store.list_applications().await?;
    for sub in &state.subscriptions {
        s.identities.extend(store.list_identities(&sub.subscription_id, None).await?);
        s.clusters.extend(store.list_managed_clusters(&sub.subscription_id, None).await?);
    }
    s.assignments = store.list_role_assignments(&AssignmentFilter { all: true, ..Default::default() }).await?;
    s.custom_roles = store.list_role_definitions().await?;
    s.principals = s.applications.iter().map(|a| a.principal_id).chain(s.identities.iter().map(|i| i.principal_id)).collect();
    s.principals.extend(s.clusters.iter().filter_map(|c| match c.control_plane {
        ControlPlane::SystemAssigned { principal_id, .. } => Some(principal_id),
        _ => None,
    }));
    for app in &s.applications {
        s.federated.extend(store.list_federated_credentials(&app.app_id).await?.into_iter().map(|f| (format!("app {}", app.app_id), f)));
    }
    for mi in &s.identities {
        s.federated.extend(store.list_federated_credentials(&mi.client_id).await?.into_iter().map(|f| (mi.id(), f)));
    }
    s.cluster_issuers = crate::token::iam::providers(state).await?.iter().map(|p| p.url.clone()).collect();
    s.cluster_issuers.extend(state.cluster_issuer.iter().cloned());
    s.cluster_issuers.push(state.issuer_v2());
    s.standard_mode = state.pod_identity_mode == ControllerMode::Standard;
    cluster_facts(state, &mut s);
    for kind in [AwsKind::Role] {
        s.iam_arns.extend(store.list_aws_objects(kind).await?.iter().filter_map(|r| r["arn"].as_str().map(str::to_string)));
    }
    s.iam_arns.extend(store.list_iam_users().await?.iter().map(|u| u.arn.to_string()));
    if let Some(cluster) = &state.k8s.cluster_id {
        s.eks_creator = eks_cluster_named(state, cluster).await?.map(|c| c.creator_arn);
        s.aws_auth_target = Some(format!("--cluster {cluster} --aws-auth <file>"));
    }
    Ok(s)
}

fn cluster_facts(state: &AppState, s: &mut Snapshot) {
    let pods = state.cluster.pods();
    s.pods = pods
        .pods
        .iter()
        .map(|p| PodFacts {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            binding_label: p.metadata.labels.as_ref().and_then(|l| l.get("aadpodidbinding").cloned()),
        })
        .collect();
    s.bindings = pods
        .bindings
        .iter()
        .map(|b| BindingFacts {
            namespace: b.metadata.namespace.clone(),
            name: b.metadata.name.clone(),
            identity: b.spec.azure_identity.clone(),
            selector: b.spec.selector.clone(),
        })
        .collect();
    s.azure_identities = pods
        .identities
        .iter()
        .map(|i| AzureIdentityFacts {
            namespace: i.metadata.namespace.clone(),
            name: i.metadata.name.clone(),
            client_id: i.spec.client_id.clone(),
            resource_id: i.spec.resource_id.clone(),
            unread_fields: i.spec.unread_fields(),
        })
        .collect();
    if state.k8s.cluster_id.is_some() {
        let auth = state.cluster.aws_auth();
        let roles = auth.map_roles.iter().map(|r| AwsAuthEntry { role: true, arn: r.rolearn.clone(), groups: r.groups.clone() });
        let users = auth.map_users.iter().map(|u| AwsAuthEntry { role: false, arn: u.userarn.clone(), groups: u.groups.clone() });
        s.aws_auth = roles.chain(users).collect();
    }
}
