//! What a kite component does in the cluster, as data (kite-kube reads both lists off its watchers
//! and writers). RBAC rules are built from these lists, so the roles grant what kite uses and
//! nothing else.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Where an access applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Where {
    /// Every namespace and cluster-scoped objects: a ClusterRole.
    Cluster,
    /// kite's own namespace (`--namespace`): a Role there.
    Own,
    /// One named namespace: a Role there.
    Namespace(&'static str),
}

/// Verbs on one resource, optionally only on objects with these names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub scope: Where,
    /// The API group, `""` for core.
    pub group: String,
    /// The plural resource name.
    pub resource: String,
    pub verbs: &'static [&'static str],
    pub names: Vec<String>,
}

impl Access {
    pub fn new(scope: Where, group: impl Into<String>, resource: impl Into<String>, verbs: &'static [&'static str]) -> Access {
        Access { scope, group: group.into(), resource: resource.into(), verbs, names: Vec::new() }
    }

    /// Only on the object called `name` (RBAC's resourceNames).
    pub fn named(mut self, name: &str) -> Access {
        self.names.push(name.into());
        self
    }
}

/// RBAC rules for the accesses in one scope: one rule per group, resource and names, verbs merged
/// and sorted, in a stable order.
pub fn rules(accesses: &[Access], scope: &Where) -> Vec<Value> {
    let mut merged: BTreeMap<(String, String, Vec<String>), Vec<&str>> = BTreeMap::new();
    for a in accesses.iter().filter(|a| &a.scope == scope) {
        let verbs = merged.entry((a.group.clone(), a.resource.clone(), a.names.clone())).or_default();
        verbs.extend(a.verbs.iter().copied());
    }
    merged
        .into_iter()
        .map(|((group, resource, names), mut verbs)| {
            verbs.sort_unstable();
            verbs.dedup();
            let mut rule = json!({"apiGroups": [group], "resources": [resource], "verbs": verbs});
            if !names.is_empty() {
                rule["resourceNames"] = json!(names);
            }
            rule
        })
        .collect()
}

/// The namespaced scopes among `accesses`, each once, with `own` standing for [`Where::Own`].
pub fn namespaces<'a>(accesses: &'a [Access], own: &'a str) -> Vec<(Where, &'a str)> {
    let mut out: Vec<(Where, &str)> = Vec::new();
    for a in accesses {
        let ns = match &a.scope {
            Where::Cluster => continue,
            Where::Own => own,
            Where::Namespace(ns) => *ns,
        };
        if !out.iter().any(|(w, _)| w == &a.scope) {
            out.push((a.scope.clone(), ns));
        }
    }
    out
}
