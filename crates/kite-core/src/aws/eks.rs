//! EKS Pod Identity: associations of a cluster's (namespace, service account) with an IAM role,
//! and what EKS Auth's AssumeRoleForPodIdentity decides from a pod's service-account token.
//!
//! Security-sensitive: [`pod_of`] turns a signature-verified token into the namespace and service
//! account that select a role; it refuses anything ambiguous rather than guess.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::arn::{validate_account_id, Arn, Resource};
use super::iam::{evaluate_service_trust, Role};
use crate::{Error, Result};

/// The service principal that assumes roles for pods, and the audience of the tokens pods present.
pub const POD_IDENTITY_SERVICE: &str = "pods.eks.amazonaws.com";
/// What a role's trust policy must allow the service to do (EKS tags every session).
pub const POD_IDENTITY_ACTIONS: [&str; 2] = ["sts:AssumeRole", "sts:TagSession"];

/// One association, in EKS's field names (`aws eks describe-pod-identity-association`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityAssociation {
    pub cluster_name: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub association_arn: String,
    /// `a-` followed by 17 lowercase letters and digits.
    pub association_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
}

impl PodIdentityAssociation {
    /// A new association for `role`, after EKS's checks: valid names, and a trust policy that lets
    /// `pods.eks.amazonaws.com` assume and tag the role for this cluster's pods.
    pub fn new(region: &str, account: &str, cluster: &str, namespace: &str, service_account: &str, role: &Role, now: OffsetDateTime) -> Result<Self> {
        validate_region(region)?;
        validate_account_id(account)?;
        validate_cluster_name(cluster)?;
        validate_dns_label("namespace", namespace, 63)?;
        validate_dns_label("service account", service_account, 253)?;
        let association_id = format!("a-{}", super::random_id("", 17).to_lowercase());
        let association = PodIdentityAssociation {
            cluster_name: cluster.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
            role_arn: role.arn.to_string(),
            association_arn: format!("arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{association_id}"),
            association_id,
            tags: BTreeMap::new(),
            created_at: now,
            modified_at: now,
        };
        // The pod is not known yet, so only the keys fixed by the association are in the context.
        let context = association.trust_context(account, &association.tags_for(None));
        check_role_trust(role, &context)?;
        Ok(association)
    }

    /// `arn:aws:eks:REGION:ACCOUNT:cluster/NAME`, from the association's own ARN.
    pub fn cluster_arn(&self) -> String {
        let prefix = self.association_arn.split(":podidentityassociation/").next().unwrap_or_default();
        format!("{prefix}:cluster/{}", self.cluster_name)
    }

    /// The session tags EKS puts on a pod's role session; the pod ones only when the pod is known.
    pub fn tags_for(&self, pod: Option<&PodServiceAccount>) -> Vec<(String, String)> {
        let mut tags = vec![
            ("eks-cluster-arn".to_string(), self.cluster_arn()),
            ("eks-cluster-name".to_string(), self.cluster_name.clone()),
            ("kubernetes-namespace".to_string(), self.namespace.clone()),
            ("kubernetes-service-account".to_string(), self.service_account.clone()),
        ];
        if let Some(pod) = pod {
            tags.push(("kubernetes-pod-name".into(), pod.pod_name.clone()));
            tags.push(("kubernetes-pod-uid".into(), pod.pod_uid.clone()));
        }
        tags
    }

    /// The condition keys a trust policy can test when EKS assumes the role for this association.
    pub fn trust_context(&self, account: &str, tags: &[(String, String)]) -> Vec<(String, Vec<String>)> {
        let mut context = vec![
            ("aws:SourceAccount".to_string(), vec![account.to_string()]),
            ("aws:SourceArn".to_string(), vec![self.cluster_arn()]),
            ("aws:TagKeys".to_string(), tags.iter().map(|(k, _)| k.clone()).collect()),
        ];
        context.extend(tags.iter().map(|(k, v)| (format!("aws:RequestTag/{k}"), vec![v.clone()])));
        context
    }
}

/// Refuses a role whose trust policy does not let EKS Pod Identity assume and tag it, with the
/// statement to add.
pub fn check_role_trust(role: &Role, context: &[(String, Vec<String>)]) -> Result<()> {
    evaluate_service_trust(&role.trust_policy, POD_IDENTITY_SERVICE, &POD_IDENTITY_ACTIONS, context).map_err(|why| {
        Error::InvalidArgument(format!(
            "role {} cannot be used with EKS Pod Identity: {why}. Add this statement to its trust policy: \
             {{\"Effect\": \"Allow\", \"Principal\": {{\"Service\": \"{POD_IDENTITY_SERVICE}\"}}, \"Action\": [\"sts:AssumeRole\", \"sts:TagSession\"]}}",
            role.arn
        ))
    })
}

/// The role ARN an association names: an IAM role ARN in `account`.
pub fn parse_role_arn(raw: &str, account: &str) -> Result<(Arn, String)> {
    let arn = Arn::parse_role(raw)?;
    let Resource::Role { name, .. } = arn.resource() else {
        return Err(Error::InvalidArgument(format!("'{raw}' is not a role ARN: use arn:aws:iam::{account}:role/NAME")));
    };
    if arn.account() != account {
        return Err(Error::InvalidArgument(format!("role {raw} is in account {}, but this kite's account is {account}", arn.account())));
    }
    let name = name.clone();
    Ok((arn, name))
}

fn validate_region(region: &str) -> Result<()> {
    let ok = region.len() <= 32 && region.split('-').count() >= 3 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("'{region}' is not an AWS region name: use one such as us-east-1 or eu-west-2")))
    }
}

/// EKS: 1-100 characters, a letter or digit first, then letters, digits, `-` and `_`.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 100 && chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("invalid cluster name '{name}': use 1-100 letters, digits, '-' and '_', starting with a letter or digit")))
    }
}

/// Kubernetes names: lowercase letters, digits and `-` (service accounts may also hold `.`),
/// starting and ending with a letter or digit.
fn validate_dns_label(what: &str, name: &str, max: usize) -> Result<()> {
    let dots = what == "service account";
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = !name.is_empty()
        && name.len() <= max
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {what} '{name}': Kubernetes names are at most {max} lowercase letters, digits and '-'{}, starting and ending with a letter or digit",
            if dots { " or '.'" } else { "" }
        )))
    }
}

/// Who a pod's service-account token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodServiceAccount {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
}

/// The pod and service account of a verified projected service-account token: `sub` must be
/// `system:serviceaccount:NS:SA`, the `kubernetes.io` claim must agree with it and name the pod
/// the token is bound to (projected tokens always are; EKS refuses unbound ones).
pub fn pod_of(claims: &Value) -> Result<PodServiceAccount, String> {
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let Some((namespace, service_account)) = sub.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) else {
        return Err(format!("the token's sub is '{sub}', not a service account (system:serviceaccount:NAMESPACE:NAME)"));
    };
    let k8s = claims.get("kubernetes.io").cloned().unwrap_or(Value::Null);
    let claim = |path: &[&str]| path.iter().try_fold(&k8s, |v, p| v.get(*p)).and_then(Value::as_str).map(str::to_string);
    for (path, expected) in [(&["namespace"][..], namespace), (&["serviceaccount", "name"][..], service_account)] {
        if let Some(found) = claim(path) {
            if found != expected {
                return Err(format!("the token's kubernetes.io.{} is '{found}' but its sub names '{expected}'", path.join(".")));
            }
        }
    }
    let (Some(pod_name), Some(pod_uid)) = (claim(&["pod", "name"]), claim(&["pod", "uid"])) else {
        return Err(format!(
            "the token of {namespace}/{service_account} is not bound to a pod (no kubernetes.io.pod claim): \
             mount a projected service-account token with audience {POD_IDENTITY_SERVICE} into the pod"
        ));
    };
    Ok(PodServiceAccount { namespace: namespace.into(), service_account: service_account.into(), pod_name, pod_uid })
}

/// `eks-CLUSTER-POD-<random>`, cut to STS's 64 characters with the random suffix kept.
pub fn session_name(cluster: &str, pod: &str) -> String {
    let mut prefix: String = format!("eks-{cluster}-{pod}").chars().filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c)).collect();
    prefix.truncate(53);
    format!("{prefix}-{}", super::random_id("", 10).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);
    const ACCOUNT: &str = "123456789012";

    fn role(statement: Value) -> Role {
        Role::new(ACCOUNT, "app", None, json!({"Version": "2012-10-17", "Statement": [statement]}), None, NOW).unwrap()
    }

    fn eks_trust() -> Value {
        json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]})
    }

    fn assoc(r: &Role) -> Result<PodIdentityAssociation> {
        PodIdentityAssociation::new("us-west-2", ACCOUNT, "prod", "default", "s3-reader", r, NOW)
    }

    #[test]
    fn an_association_has_eks_shaped_ids_and_arns() {
        let a = assoc(&role(eks_trust())).unwrap();
        assert!(a.association_id.starts_with("a-") && a.association_id.len() == 19, "{}", a.association_id);
        assert!(a.association_id[2..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(a.association_arn, format!("arn:aws:eks:us-west-2:{ACCOUNT}:podidentityassociation/prod/{}", a.association_id));
        assert_eq!(a.cluster_arn(), format!("arn:aws:eks:us-west-2:{ACCOUNT}:cluster/prod"));
        assert_eq!(a.role_arn, format!("arn:aws:iam::{ACCOUNT}:role/app"));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["serviceAccount"], "s3-reader");
        assert_eq!(serde_json::from_value::<PodIdentityAssociation>(json).unwrap(), a);
    }

    #[test]
    fn a_role_that_does_not_trust_eks_pod_identity_is_refused_with_the_statement_to_add() {
        let irsa = json!({"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com"}, "Action": "sts:AssumeRoleWithWebIdentity"});
        let e = assoc(&role(irsa)).unwrap_err().to_string();
        assert!(e.contains("pods.eks.amazonaws.com") && e.contains("sts:AssumeRole") && e.contains("Add this statement"), "{e}");
        let no_tag = json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let e = assoc(&role(no_tag)).unwrap_err().to_string();
        assert!(e.contains("sts:TagSession"), "{e}");
        let wildcard = json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:*"});
        assert!(assoc(&role(wildcard)).is_ok());
    }

    #[test]
    fn trust_conditions_see_the_source_account_cluster_and_request_tags() {
        let scoped = |ns: &str| {
            let mut st = eks_trust();
            st["Condition"] = json!({"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:RequestTag/kubernetes-namespace": ns},
                                     "ArnLike": {"aws:SourceArn": "arn:aws:eks:*:123456789012:cluster/prod"}});
            role(st)
        };
        assert!(assoc(&scoped("default")).is_ok());
        let e = assoc(&scoped("payments")).unwrap_err().to_string();
        assert!(e.contains("aws:RequestTag/kubernetes-namespace") && e.contains("\"default\""), "{e}");
        for everyone in [json!("*"), json!({"AWS": "*"})] {
            let mut deny = role(eks_trust());
            deny.trust_policy["Statement"].as_array_mut().unwrap().push(json!({"Effect": "Deny", "Principal": everyone, "Action": "sts:TagSession"}));
            assert!(assoc(&deny).unwrap_err().to_string().contains("explicitly denies sts:TagSession"), "{everyone}");
        }
    }

    #[test]
    fn names_are_checked_as_eks_and_kubernetes_do() {
        let r = role(eks_trust());
        for (cluster, ns, sa) in [("-bad", "default", "sa"), ("prod", "Default", "sa"), ("prod", "default", "sa_1"), ("prod", "default", "")] {
            assert!(PodIdentityAssociation::new("us-west-2", ACCOUNT, cluster, ns, sa, &r, NOW).is_err(), "{cluster} {ns} {sa}");
        }
        assert!(PodIdentityAssociation::new("uswest", ACCOUNT, "prod", "default", "sa", &r, NOW).unwrap_err().to_string().contains("region"));
        assert!(PodIdentityAssociation::new("us-west-2", ACCOUNT, "prod_1", "kube-system", "my.sa", &r, NOW).is_ok());
    }

    fn token(sub: &str, k8s: Value) -> Value {
        json!({"sub": sub, "kubernetes.io": k8s})
    }

    #[test]
    fn the_pod_comes_from_sub_and_the_kubernetes_claims_which_must_agree() {
        let k8s = json!({"namespace": "default", "serviceaccount": {"name": "app", "uid": "u1"}, "pod": {"name": "app-1", "uid": "p1"}});
        let pod = pod_of(&token("system:serviceaccount:default:app", k8s.clone())).unwrap();
        assert_eq!(pod, PodServiceAccount { namespace: "default".into(), service_account: "app".into(), pod_name: "app-1".into(), pod_uid: "p1".into() });
        assert!(pod_of(&token("system:serviceaccount:other:app", k8s.clone())).unwrap_err().contains("kubernetes.io.namespace is 'default'"));
        assert!(pod_of(&token("alice", k8s)).unwrap_err().contains("not a service account"));
        let unbound = pod_of(&token("system:serviceaccount:default:app", json!({"namespace": "default"}))).unwrap_err();
        assert!(unbound.contains("not bound to a pod"), "{unbound}");
    }

    #[test]
    fn session_names_fit_sts_rules_and_differ_per_call() {
        let long = session_name(&"c".repeat(100), &"p".repeat(253));
        assert_eq!(long.len(), 64);
        assert!(super::super::arn::validate_session_name(&long).is_ok());
        assert!(session_name("prod", "app-1").starts_with("eks-prod-app-1-"));
        assert_ne!(session_name("prod", "app-1"), session_name("prod", "app-1"));
    }
}
