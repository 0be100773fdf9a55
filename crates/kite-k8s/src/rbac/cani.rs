//! `kubectl auth can-i VERB (TYPE | TYPE/NAME | NONRESOURCEURL) [--subresource S] [-n NS | -A]
//! --as U --as-group G`, offline: kubectl's argument parsing, the API server's impersonation
//! rules for the user's groups, then [`evaluate`].
//!
//! As in kubectl, `TYPE/NAME` names an object (`pods/web-0`), never a subresource: that is
//! `--subresource log`. Without a server to ask, resource types are resolved from a table of the
//! built-in ones (plural, singular or short name, with or without `.group`); an unknown
//! `TYPE.GROUP` is taken as a custom resource of that group, with a warning.

use crate::rbac::authorizer::{evaluate, split_service_account, Attributes, Decision};
use crate::{Error, RbacSnapshot, Result};

const RESOURCE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "use",
    "bind",
    "impersonate",
    "*",
    "approve",
    "sign",
    "escalate",
    "attest",
];
const NON_RESOURCE_VERBS: &[&str] = &["get", "put", "post", "head", "options", "delete", "patch", "*"];
const DEFAULT_NAMESPACE: &str = "default";
const ANONYMOUS: &str = "system:anonymous";
const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The arguments of `can-i`, as the CLI collects them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanIArgs {
    pub verb: String,
    /// `TYPE`, `TYPE.GROUP`, `TYPE.VERSION.GROUP`, any of them `/NAME`, `*`, or a URL starting with `/`.
    pub resource: String,
    /// `--subresource`.
    pub subresource: Option<String>,
    /// `-n`; `default` when absent.
    pub namespace: Option<String>,
    /// `-A`: check cluster-wide.
    pub all_namespaces: bool,
    /// `--as`; absent means the anonymous user (kite reads no kubeconfig to know who "I" am).
    pub as_user: Option<String>,
    /// `--as-group`, repeatable.
    pub as_groups: Vec<String>,
    /// List the bindings considered and suggest a grant when denied.
    pub explain: bool,
}

/// What a `can-i` resource argument names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub non_resource_url: Option<String>,
    /// Whether the resource type is namespaced, when it is a known built-in type.
    pub namespaced: Option<bool>,
    pub warnings: Vec<String>,
}

struct Known {
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
    group: &'static str,
    namespaced: bool,
}

const fn k(plural: &'static str, singular: &'static str, short: &'static [&'static str], group: &'static str, namespaced: bool) -> Known {
    Known { plural, singular, short, group, namespaced }
}

/// Built-in resource types (and aad-pod-identity's, which kite serves). Core first: an unqualified
/// name that exists in two groups (`events`) resolves to the core one, as kubectl's mapper does.
const KNOWN: &[Known] = &[
    k("pods", "pod", &["po"], "", true),
    k("services", "service", &["svc"], "", true),
    k("endpoints", "endpoints", &["ep"], "", true),
    k("configmaps", "configmap", &["cm"], "", true),
    k("secrets", "secret", &[], "", true),
    k("serviceaccounts", "serviceaccount", &["sa"], "", true),
    k("persistentvolumeclaims", "persistentvolumeclaim", &["pvc"], "", true),
    k("events", "event", &["ev"], "", true),
    k("limitranges", "limitrange", &["limits"], "", true),
    k("resourcequotas", "resourcequota", &["quota"], "", true),
    k("replicationcontrollers", "replicationcontroller", &["rc"], "", true),
    k("podtemplates", "podtemplate", &[], "", true),
    k("bindings", "binding", &[], "", true),
    k("persistentvolumes", "persistentvolume", &["pv"], "", false),
    k("nodes", "node", &["no"], "", false),
    k("namespaces", "namespace", &["ns"], "", false),
    k("componentstatuses", "componentstatus", &["cs"], "", false),
    // Not discoverable, but what `impersonate` is checked on.
    k("users", "user", &[], "", false),
    k("groups", "group", &[], "", false),
    k("userextras", "userextra", &[], "", false),
    k("uids", "uid", &[], "", false),
    k("deployments", "deployment", &["deploy"], "apps", true),
    k("replicasets", "replicaset", &["rs"], "apps", true),
    k("statefulsets", "statefulset", &["sts"], "apps", true),
    k("daemonsets", "daemonset", &["ds"], "apps", true),
    k("controllerrevisions", "controllerrevision", &[], "apps", true),
    k("jobs", "job", &[], "batch", true),
    k("cronjobs", "cronjob", &["cj"], "batch", true),
    k("horizontalpodautoscalers", "horizontalpodautoscaler", &["hpa"], "autoscaling", true),
    k("poddisruptionbudgets", "poddisruptionbudget", &["pdb"], "policy", true),
    k("ingresses", "ingress", &["ing"], "networking.k8s.io", true),
    k("networkpolicies", "networkpolicy", &["netpol"], "networking.k8s.io", true),
    k("ingressclasses", "ingressclass", &[], "networking.k8s.io", false),
    k("roles", "role", &[], "rbac.authorization.k8s.io", true),
    k("rolebindings", "rolebinding", &[], "rbac.authorization.k8s.io", true),
    k("clusterroles", "clusterrole", &[], "rbac.authorization.k8s.io", false),
    k("clusterrolebindings", "clusterrolebinding", &[], "rbac.authorization.k8s.io", false),
    k("storageclasses", "storageclass", &["sc"], "storage.k8s.io", false),
    k("csidrivers", "csidriver", &[], "storage.k8s.io", false),
    k("csinodes", "csinode", &[], "storage.k8s.io", false),
    k("volumeattachments", "volumeattachment", &[], "storage.k8s.io", false),
    k("customresourcedefinitions", "customresourcedefinition", &["crd", "crds"], "apiextensions.k8s.io", false),
    k("leases", "lease", &[], "coordination.k8s.io", true),
    k("certificatesigningrequests", "certificatesigningrequest", &["csr"], "certificates.k8s.io", false),
    k("mutatingwebhookconfigurations", "mutatingwebhookconfiguration", &[], "admissionregistration.k8s.io", false),
    k("validatingwebhookconfigurations", "validatingwebhookconfiguration", &[], "admissionregistration.k8s.io", false),
    k("tokenreviews", "tokenreview", &[], "authentication.k8s.io", false),
    k("subjectaccessreviews", "subjectaccessreview", &[], "authorization.k8s.io", false),
    k("selfsubjectaccessreviews", "selfsubjectaccessreview", &[], "authorization.k8s.io", false),
    k("selfsubjectrulesreviews", "selfsubjectrulesreview", &[], "authorization.k8s.io", false),
    k("localsubjectaccessreviews", "localsubjectaccessreview", &[], "authorization.k8s.io", true),
    k("priorityclasses", "priorityclass", &["pc"], "scheduling.k8s.io", false),
    k("endpointslices", "endpointslice", &[], "discovery.k8s.io", true),
    k("runtimeclasses", "runtimeclass", &[], "node.k8s.io", false),
    k("apiservices", "apiservice", &[], "apiregistration.k8s.io", false),
    k("flowschemas", "flowschema", &[], "flowcontrol.apiserver.k8s.io", false),
    k("prioritylevelconfigurations", "prioritylevelconfiguration", &[], "flowcontrol.apiserver.k8s.io", false),
    k("events", "event", &["ev"], "events.k8s.io", true),
    k("azureidentities", "azureidentity", &[], "aadpodidentity.k8s.io", true),
    k("azureidentitybindings", "azureidentitybinding", &[], "aadpodidentity.k8s.io", true),
    k("azureassignedidentities", "azureassignedidentity", &[], "aadpodidentity.k8s.io", true),
    k("azurepodidentityexceptions", "azurepodidentityexception", &[], "aadpodidentity.k8s.io", true),
];

fn lookup(name: &str, group: Option<&str>) -> Option<&'static Known> {
    KNOWN.iter().filter(|k| group.is_none_or(|g| g == k.group)).find(|k| k.plural == name || k.singular == name || k.short.contains(&name))
}

/// `v1`, `v2`, `v1beta1`, `v1alpha2`: what can stand between a resource and its group.
fn looks_like_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty() || ["alpha", "beta"].iter().any(|p| tail.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
}

/// Parses a `can-i` resource argument as kubectl does (see the module doc for where it differs:
/// only in resolving types without a server).
pub fn parse_target(arg: &str, subresource: Option<&str>) -> Result<Target> {
    let subresource = subresource.unwrap_or_default();
    if arg.is_empty() {
        return Err(Error::InvalidArgument("you must specify two arguments: verb resource or verb resource/resourceName".into()));
    }
    if arg.starts_with('/') {
        if !subresource.is_empty() {
            return Err(Error::InvalidArgument("--subresource can not be used with NonResourceURL".into()));
        }
        return Ok(Target { non_resource_url: Some(arg.to_string()), ..Target::default() });
    }
    let (type_arg, name) = arg.split_once('/').unwrap_or((arg, ""));
    let mut t = Target { subresource: subresource.to_string(), name: name.to_string(), ..Target::default() };
    if type_arg == "*" {
        t.resource = "*".into();
        return Ok(t);
    }
    let lower = type_arg.to_lowercase();
    let parts: Vec<&str> = lower.splitn(3, '.').collect();
    let found = match parts.as_slice() {
        [res] => lookup(res, None),
        [res, version, group] if looks_like_version(version) => lookup(res, Some(group)),
        _ => None,
    }
    .or_else(|| lower.split_once('.').and_then(|(res, group)| lookup(res, Some(group))));
    match found {
        Some(known) => {
            t.resource = known.plural.into();
            t.api_group = known.group.into();
            t.namespaced = Some(known.namespaced);
        }
        None => {
            let (res, group) = match parts.as_slice() {
                [res, version, group] if looks_like_version(version) => (*res, *group),
                _ => lower.split_once('.').unwrap_or((&lower, "")),
            };
            t.resource = res.into();
            t.api_group = group.into();
            t.warnings.push(if group.is_empty() {
                format!("{res:?} is not a built-in resource type: checked as {res:?} in the core group (name a custom resource as TYPE.GROUP)")
            } else {
                format!("{res:?} is not a built-in resource type in group {group:?}: checked as a custom resource of that group")
            });
        }
    }
    Ok(t)
}

/// The user and groups the API server would see when impersonating: a service account gets its
/// groups when none are given, and every named user gets `system:authenticated` unless told
/// `system:(un)authenticated` explicitly.
pub fn impersonate(as_user: Option<&str>, as_groups: &[String]) -> Result<(String, Vec<String>)> {
    let Some(user) = as_user.filter(|u| !u.is_empty()) else {
        if !as_groups.is_empty() {
            return Err(Error::InvalidArgument("--as-group needs --as: groups cannot be impersonated without a user".into()));
        }
        return Ok((ANONYMOUS.into(), vec![UNAUTHENTICATED.into()]));
    };
    let mut groups = as_groups.to_vec();
    if groups.is_empty() {
        if let Some((ns, _)) = split_service_account(user) {
            groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
        }
    }
    if user == ANONYMOUS {
        if !groups.iter().any(|g| g == UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok((user.to_string(), groups))
}

/// `kubectl auth can-i`, decided against `snap`.
pub fn can_i(snap: &RbacSnapshot, args: &CanIArgs) -> Result<Decision> {
    if args.verb.is_empty() {
        return Err(Error::InvalidArgument("you must specify two arguments: verb resource or verb resource/resourceName".into()));
    }
    let target = parse_target(&args.resource, args.subresource.as_deref())?;
    let (user, groups) = impersonate(args.as_user.as_deref(), &args.as_groups)?;
    let mut warnings = target.warnings;
    if args.as_user.as_deref().is_none_or(str::is_empty) {
        warnings.push(format!("no --as given: checked as {ANONYMOUS:?}"));
    }
    let verbs = if target.non_resource_url.is_some() { NON_RESOURCE_VERBS } else { RESOURCE_VERBS };
    if !verbs.contains(&args.verb.as_str()) {
        warnings.push(format!("verb {:?} is not a known verb", args.verb));
    }
    let namespace = if target.non_resource_url.is_some() || args.all_namespaces {
        String::new()
    } else if target.namespaced == Some(false) {
        // kubectl would still send its namespace, which a RoleBinding could then satisfy although
        // the real request (cluster-scoped) never consults RoleBindings.
        if let Some(ns) = &args.namespace {
            warnings.push(format!("resource {:?} is not namespace scoped: checked cluster-wide, not in namespace {ns:?}", target.resource));
        }
        String::new()
    } else {
        args.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into())
    };
    let attrs = Attributes {
        user,
        groups,
        verb: args.verb.clone(),
        api_group: target.api_group,
        resource: target.resource,
        subresource: target.subresource,
        name: target.name,
        namespace,
        non_resource_url: target.non_resource_url,
    };
    let mut decision = evaluate(snap, &attrs, args.explain);
    decision.warnings = warnings;
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(arg: &str, sub: Option<&str>) -> (String, String, String, String) {
        let t = parse_target(arg, sub).unwrap();
        (t.api_group, t.resource, t.subresource, t.name)
    }

    fn s(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
        (a.into(), b.into(), c.into(), d.into())
    }

    #[test]
    fn resource_arguments_resolve_groups_short_names_and_names_as_kubectl_does() {
        assert_eq!(target("pods", None), s("", "pods", "", ""));
        assert_eq!(target("po", Some("log")), s("", "pods", "log", ""));
        assert_eq!(target("pods/web-0", None), s("", "pods", "", "web-0"), "TYPE/NAME names an object");
        assert_eq!(target("deployments.apps", None), s("apps", "deployments", "", ""));
        assert_eq!(target("Deployment", Some("scale")), s("apps", "deployments", "scale", ""));
        assert_eq!(target("deployments.v1.apps/web", None), s("apps", "deployments", "", "web"));
        assert_eq!(target("jobs.batch/Nightly", None), s("batch", "jobs", "", "Nightly"), "names keep their case");
        assert_eq!(target("events.events.k8s.io", None), s("events.k8s.io", "events", "", ""));
        assert_eq!(target("events", None), s("", "events", "", ""), "the core group wins an unqualified name");
        assert_eq!(target("*", None), s("", "*", "", ""));
    }

    #[test]
    fn unknown_types_are_custom_resources_of_their_group_with_a_warning() {
        let t = parse_target("widgets.example.com", None).unwrap();
        assert_eq!((t.api_group.as_str(), t.resource.as_str(), t.namespaced), ("example.com", "widgets", None));
        assert!(t.warnings[0].contains("custom resource"), "{:?}", t.warnings);
        let t = parse_target("widgets.v1beta1.example.com", None).unwrap();
        assert_eq!(t.api_group, "example.com");
        assert!(parse_target("gizmos", None).unwrap().warnings[0].contains("core group"));
    }

    #[test]
    fn urls_are_non_resource_and_refuse_a_subresource() {
        assert_eq!(parse_target("/logs/", None).unwrap().non_resource_url.as_deref(), Some("/logs/"));
        assert!(parse_target("/healthz", Some("x")).unwrap_err().to_string().contains("--subresource"));
    }

    #[test]
    fn impersonation_adds_authenticated_and_service_account_groups_as_the_api_server_does() {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(impersonate(Some("alice"), &[]).unwrap().1, g(&["system:authenticated"]));
        assert_eq!(impersonate(Some("alice"), &g(&["dev"])).unwrap().1, g(&["dev", "system:authenticated"]));
        assert_eq!(
            impersonate(Some("system:serviceaccount:ci:runner"), &[]).unwrap().1,
            g(&["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"])
        );
        assert_eq!(impersonate(Some("system:serviceaccount:ci:runner"), &g(&["x"])).unwrap().1, g(&["x", "system:authenticated"]));
        assert_eq!(impersonate(None, &[]).unwrap(), ("system:anonymous".to_string(), g(&["system:unauthenticated"])));
        assert!(impersonate(None, &g(&["dev"])).is_err());
    }

    #[test]
    fn cluster_scoped_types_and_urls_are_checked_cluster_wide_and_the_namespace_defaults() {
        let snap = RbacSnapshot::default();
        let run = |resource: &str, namespace: Option<&str>, all: bool| {
            let args = CanIArgs {
                verb: "get".into(),
                resource: resource.into(),
                namespace: namespace.map(str::to_string),
                all_namespaces: all,
                as_user: Some("u".into()),
                ..Default::default()
            };
            can_i(&snap, &args).unwrap()
        };
        assert_eq!(run("pods", None, false).attributes.namespace, "default");
        assert_eq!(run("pods", Some("dev"), true).attributes.namespace, "");
        let nodes = run("nodes", Some("dev"), false);
        assert_eq!(nodes.attributes.namespace, "");
        assert!(nodes.warnings[0].contains("not namespace scoped"), "{:?}", nodes.warnings);
        assert_eq!(run("/healthz", Some("dev"), false).attributes.namespace, "");
        let odd = can_i(&snap, &CanIArgs { verb: "frobnicate".into(), resource: "pods".into(), ..Default::default() }).unwrap();
        assert!(odd.warnings.iter().any(|w| w.contains("not a known verb")) && odd.warnings.iter().any(|w| w.contains("no --as")));
    }
}
