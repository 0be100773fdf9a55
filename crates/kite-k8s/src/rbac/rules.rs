//! Whether one `PolicyRule` allows a request: the API server's `RuleAllows` and the matchers of
//! `pkg/apis/rbac/v1/evaluation_helpers.go`, one function each, plus [`mismatches`] saying which
//! of them failed for a denial's explanation.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::{Deserialize, Serialize};

use crate::rbac::authorizer::Attributes;

/// The wildcard for verbs, API groups, resources and non-resource URLs alike.
pub const ALL: &str = "*";

/// One part of a rule that does not cover the request.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Mismatch {
    Verb,
    ApiGroup,
    Resource,
    ResourceName,
    NonResourceUrl,
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups).iter().any(|g| g == ALL || g == group)
}

/// The API server's `ResourceMatches(rule, combined, subresource)` with `combined` given in parts
/// (`resource`, or `resource/subresource` when there is one) so a check allocates nothing. A rule's
/// `*/subresource` matches that subresource of any resource; a bare `*` matches everything.
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let is_combined = |r: &str| {
        if subresource.is_empty() {
            r == resource
        } else {
            r.strip_prefix(resource).and_then(|rest| rest.strip_prefix('/')) == Some(subresource)
        }
    };
    list(&rule.resources).iter().any(|r| r == ALL || is_combined(r) || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource)))
}

/// A rule without `resourceNames` covers every name; one with them never covers a request that
/// names nothing (list, watch, create, deletecollection).
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// Exact, `*`, or a prefix ending in `*` (every trailing `*` is dropped before comparing).
pub fn non_resource_url_matches(rule: &PolicyRule, url: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|u| u == ALL || u == url || (u.ends_with('*') && url.starts_with(u.trim_end_matches('*'))))
}

/// The API server's `RuleAllows`.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    match &attrs.non_resource_url {
        None => {
            verb_matches(rule, &attrs.verb)
                && api_group_matches(rule, &attrs.api_group)
                && resource_matches(rule, &attrs.resource, &attrs.subresource)
                && resource_name_matches(rule, &attrs.name)
        }
        Some(url) => verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, url),
    }
}

/// Every part of `rule` that fails the request; empty exactly when [`rule_allows`].
pub fn mismatches(attrs: &Attributes, rule: &PolicyRule) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if !verb_matches(rule, &attrs.verb) {
        out.push(Mismatch::Verb);
    }
    match &attrs.non_resource_url {
        None => {
            if !api_group_matches(rule, &attrs.api_group) {
                out.push(Mismatch::ApiGroup);
            }
            if !resource_matches(rule, &attrs.resource, &attrs.subresource) {
                out.push(Mismatch::Resource);
            }
            if !resource_name_matches(rule, &attrs.name) {
                out.push(Mismatch::ResourceName);
            }
        }
        Some(url) => {
            if !non_resource_url_matches(rule, url) {
                out.push(Mismatch::NonResourceUrl);
            }
        }
    }
    out
}

/// Go's `%q` of a string slice: `["" "apps"]`.
pub(crate) fn quoted(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(" "))
}

/// One sentence per mismatch, e.g. `verbs ["list" "watch"] do not include "get"`.
pub fn describe_mismatch(attrs: &Attributes, rule: &PolicyRule, m: Mismatch) -> String {
    let field = |name: &str, v: &[String], wanted: &str| {
        if v.is_empty() {
            format!("it lists no {name}")
        } else {
            format!("{name} {} do not include {wanted:?}", quoted(v))
        }
    };
    match m {
        Mismatch::Verb => field("verbs", &rule.verbs, &attrs.verb),
        Mismatch::ApiGroup => {
            let core = if attrs.api_group.is_empty() { " (the core group)" } else { "" };
            format!("{}{core}", field("apiGroups", list(&rule.api_groups), &attrs.api_group))
        }
        Mismatch::Resource => {
            let combined = attrs.combined_resource();
            if list(&rule.resources).is_empty() && !list(&rule.non_resource_urls).is_empty() {
                "it is a nonResourceURLs rule and lists no resources".to_string()
            } else if attrs.subresource.is_empty() {
                field("resources", list(&rule.resources), &combined)
            } else {
                format!("{} (nor \"*/{}\")", field("resources", list(&rule.resources), &combined), attrs.subresource)
            }
        }
        Mismatch::ResourceName if attrs.name.is_empty() => {
            format!("it is limited to resourceNames {} and the request names no object", quoted(list(&rule.resource_names)))
        }
        Mismatch::ResourceName => field("resourceNames", list(&rule.resource_names), &attrs.name),
        Mismatch::NonResourceUrl => {
            if list(&rule.non_resource_urls).is_empty() {
                "it is a resource rule and lists no nonResourceURLs".to_string()
            } else {
                format!("nonResourceURLs {} do not match {:?}", quoted(list(&rule.non_resource_urls)), attrs.non_resource_url.as_deref().unwrap_or(""))
            }
        }
    }
}

/// The API server's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn compact(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (name, v) in [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ] {
        if !v.is_empty() {
            parts.push(format!("{name}:{}", quoted(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Rule equality as the aggregation controller's semantic DeepEqual sees it: an absent list equals an empty one.
pub(crate) fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule { verbs: verbs.iter().map(|s| s.to_string()).collect(), api_groups: strings(groups), resources: strings(resources), ..Default::default() }
    }

    fn get(resource: &str, subresource: &str) -> Attributes {
        Attributes { verb: "get".into(), resource: resource.into(), subresource: subresource.into(), ..Default::default() }
    }

    #[test]
    fn star_slash_subresource_matches_that_subresource_of_any_resource_and_nothing_else() {
        let r = rule(&["get"], &[""], &["*/log"]);
        assert!(rule_allows(&get("pods", "log"), &r));
        assert!(rule_allows(&get("anything", "log"), &r));
        assert!(!rule_allows(&get("pods", ""), &r));
        assert!(!rule_allows(&get("pods", "logs"), &r));
        assert!(!rule_allows(&get("pods", "og"), &r), "the length check keeps '*/log' from matching a suffix");
    }

    #[test]
    fn a_plain_resource_does_not_cover_its_subresources_but_star_does() {
        assert!(!rule_allows(&get("pods", "log"), &rule(&["get"], &[""], &["pods"])));
        assert!(rule_allows(&get("pods", "log"), &rule(&["get"], &[""], &["pods/log"])));
        assert!(rule_allows(&get("pods", "log"), &rule(&["get"], &[""], &["*"])));
    }

    #[test]
    fn resource_names_never_cover_a_request_without_a_name() {
        let mut r = rule(&["get", "list"], &[""], &["configmaps"]);
        r.resource_names = strings(&["kube-root-ca.crt"]);
        let mut a = get("configmaps", "");
        assert!(!rule_allows(&a, &r));
        assert!(describe_mismatch(&a, &r, Mismatch::ResourceName).contains("names no object"));
        a.name = "kube-root-ca.crt".into();
        assert!(rule_allows(&a, &r));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_prefix() {
        let r = PolicyRule { verbs: vec!["get".into()], non_resource_urls: strings(&["/healthz", "/logs/*", "/api**"]), ..Default::default() };
        let at = |u: &str| Attributes { verb: "get".into(), non_resource_url: Some(u.into()), ..Default::default() };
        assert!(rule_allows(&at("/healthz"), &r));
        assert!(!rule_allows(&at("/healthz/ready"), &r));
        assert!(rule_allows(&at("/logs/"), &r));
        assert!(rule_allows(&at("/logs/kube.log"), &r));
        assert!(!rule_allows(&at("/logs"), &r));
        assert!(rule_allows(&at("/apis/apps"), &r), "every trailing '*' is trimmed");
    }

    #[test]
    fn a_resource_rule_never_allows_a_non_resource_request_and_the_reverse() {
        let at = Attributes { verb: "get".into(), non_resource_url: Some("/healthz".into()), ..Default::default() };
        let r = rule(&["*"], &["*"], &["*"]);
        assert_eq!(mismatches(&at, &r), vec![Mismatch::NonResourceUrl]);
        let n = PolicyRule { verbs: vec!["*".into()], non_resource_urls: strings(&["*"]), ..Default::default() };
        assert_eq!(mismatches(&get("pods", ""), &n), vec![Mismatch::ApiGroup, Mismatch::Resource]);
        assert_eq!(describe_mismatch(&get("pods", ""), &n, Mismatch::Resource), "it is a nonResourceURLs rule and lists no resources");
    }

    #[test]
    fn compact_form_reads_like_the_api_servers() {
        assert_eq!(compact(&rule(&["get", "list"], &["", "apps"], &["pods"])), r#"{APIGroups:["" "apps"], Resources:["pods"], Verbs:["get" "list"]}"#);
    }
}
