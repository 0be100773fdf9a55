//! ClusterRole aggregation as the controller-manager's `clusterrole-aggregation-controller` does it:
//! a ClusterRole with an `aggregationRule` has its rules *replaced* by the union of the rules of
//! every other ClusterRole whose labels match any of its `clusterRoleSelectors`, sources taken in
//! name order, duplicates dropped. The controller reacts to every change until nothing moves, so
//! chains (admin ← edit ← view) settle; here that is a loop to a fixed point.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::rbac::rules::same_rule;
use crate::{Error, Result};

/// `metav1.LabelSelectorAsSelector` then `Matches`: matchLabels and matchExpressions all hold; an
/// empty selector matches every object.
pub(crate) fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Ok(false);
        }
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or(&[]);
        let present = labels.get(&req.key);
        let holds = match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => return Err(format!("key {:?}: for 'In', 'NotIn' operators, values set can't be empty", req.key)),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!("key {:?}: values set must be empty for exists and does not exist", req.key))
            }
            "In" => present.is_some_and(|v| values.contains(v)),
            "NotIn" => present.is_none_or(|v| !values.contains(v)),
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            other => return Err(format!("key {:?}: {other:?} is not a valid label selector operator", req.key)),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Resolves every aggregated ClusterRole in place. `roles` may be in any order.
pub(crate) fn aggregate(roles: &mut [ClusterRole]) -> Result<()> {
    let name = |r: &ClusterRole| r.metadata.name.clone().unwrap_or_default();
    let mut by_name: Vec<usize> = (0..roles.len()).collect();
    by_name.sort_by_key(|&i| name(&roles[i]));
    let aggregated: Vec<usize> = by_name.iter().copied().filter(|&i| roles[i].aggregation_rule.is_some()).collect();
    if aggregated.is_empty() {
        return Ok(());
    }

    // Matching depends only on labels, which aggregation never changes: decide it once.
    let empty = BTreeMap::new();
    let mut sources: Vec<Vec<usize>> = Vec::with_capacity(aggregated.len());
    for &a in &aggregated {
        let selectors = roles[a].aggregation_rule.as_ref().and_then(|r| r.cluster_role_selectors.as_deref()).unwrap_or(&[]);
        let mut list = Vec::new();
        for selector in selectors {
            for &s in &by_name {
                if s == a {
                    continue;
                }
                let labels = roles[s].metadata.labels.as_ref().unwrap_or(&empty);
                if selector_matches(selector, labels).map_err(|message| Error::Aggregation { role: name(&roles[a]), message })? {
                    list.push(s);
                }
            }
        }
        sources.push(list);
    }

    // Each round can only copy rules one step further along a chain, so as many rounds as there
    // are aggregated roles (plus one to observe stability) always reach the fixed point, and a
    // cycle cannot loop forever.
    for _ in 0..=aggregated.len() {
        let mut changed = false;
        for (k, &a) in aggregated.iter().enumerate() {
            let mut union: Vec<PolicyRule> = Vec::new();
            for &s in &sources[k] {
                for rule in roles[s].rules.iter().flatten() {
                    if !union.iter().any(|u| same_rule(u, rule)) {
                        union.push(rule.clone());
                    }
                }
            }
            let current = roles[a].rules.as_deref().unwrap_or(&[]);
            if current.len() != union.len() || !current.iter().zip(&union).all(|(x, y)| same_rule(x, y)) {
                roles[a].rules = Some(union);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() { None } else { Some(values.iter().map(|s| s.to_string()).collect()) },
        }
    }

    fn role(name: &str, l: &[(&str, &str)], verbs: &[&str], selector: Option<LabelSelector>) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels(l)), ..Default::default() },
            rules: Some(vec![PolicyRule {
                verbs: verbs.iter().map(|s| s.to_string()).collect(),
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into()]),
                ..Default::default()
            }]),
            aggregation_rule: selector.map(|s| AggregationRule { cluster_role_selectors: Some(vec![s]) }),
        }
    }

    fn match_labels(k: &str, v: &str) -> LabelSelector {
        LabelSelector { match_labels: Some(labels(&[(k, v)])), ..Default::default() }
    }

    #[test]
    fn match_expressions_follow_the_label_selector_operators() {
        let l = labels(&[("tier", "web"), ("team", "a")]);
        let sel = |e: Vec<LabelSelectorRequirement>| LabelSelector { match_expressions: Some(e), ..Default::default() };
        assert_eq!(selector_matches(&sel(vec![expr("tier", "In", &["web", "db"])]), &l), Ok(true));
        assert_eq!(selector_matches(&sel(vec![expr("tier", "NotIn", &["web"])]), &l), Ok(false));
        assert_eq!(selector_matches(&sel(vec![expr("absent", "NotIn", &["x"])]), &l), Ok(true));
        assert_eq!(selector_matches(&sel(vec![expr("team", "Exists", &[])]), &l), Ok(true));
        assert_eq!(selector_matches(&sel(vec![expr("team", "DoesNotExist", &[])]), &l), Ok(false));
        assert_eq!(selector_matches(&LabelSelector::default(), &l), Ok(true), "an empty selector matches everything");
        assert!(selector_matches(&sel(vec![expr("tier", "In", &[])]), &l).is_err());
        assert!(selector_matches(&sel(vec![expr("tier", "Equals", &["web"])]), &l).unwrap_err().contains("not a valid"));
    }

    #[test]
    fn chained_aggregation_settles_whatever_the_order_and_replaces_the_roles_own_rules() {
        let mut roles = vec![
            role("admin", &[], &["stale"], Some(match_labels("aggregate-to-admin", "true"))),
            role("edit", &[("aggregate-to-admin", "true")], &["stale"], Some(match_labels("aggregate-to-edit", "true"))),
            role("view", &[("aggregate-to-edit", "true")], &["get"], None),
            role("custom-edit", &[("aggregate-to-edit", "true")], &["update"], None),
        ];
        aggregate(&mut roles).unwrap();
        let verbs = |r: &ClusterRole| r.rules.iter().flatten().flat_map(|r| r.verbs.clone()).collect::<Vec<_>>();
        assert_eq!(verbs(&roles[1]), ["update", "get"], "edit: sources in name order, own rules replaced");
        assert_eq!(verbs(&roles[0]), ["update", "get"], "admin reaches view through edit");
    }

    #[test]
    fn an_aggregation_cycle_terminates_and_a_role_never_aggregates_itself() {
        let mut roles =
            vec![role("a", &[("x", "1")], &["get"], Some(match_labels("x", "1"))), role("b", &[("x", "1")], &["list"], Some(match_labels("x", "1")))];
        aggregate(&mut roles).unwrap();
        assert!(roles.iter().all(|r| r.rules.iter().flatten().count() <= 2));
    }
}
