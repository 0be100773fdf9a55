//! Reading RBAC objects from YAML (the only I/O in this crate) and the indexed snapshot the
//! authorizer reads.
//!
//! Input is what `kubectl apply -f` and `kubectl get -o yaml` deal in: multi-document YAML (or
//! JSON) files, directories of them, and `kind: List` / `kind: RoleList` wrappers. Objects of any
//! other kind are skipped, so a whole manifest directory can be pointed at.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::rbac::aggregate::aggregate;
use crate::rbac::authorizer::{service_account_username, BindingKind};
use crate::{Error, Result};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Where `kubectl apply` puts a namespaced object that names no namespace (without `-n`).
const DEFAULT_NAMESPACE: &str = "default";

/// RBAC objects as read, before aggregation and indexing.
#[derive(Clone, Debug, Default)]
pub struct RbacObjects {
    pub roles: Vec<Role>,
    pub cluster_roles: Vec<ClusterRole>,
    pub role_bindings: Vec<RoleBinding>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

struct Location<'a> {
    file: &'a str,
    document: usize,
}

impl Location<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        Error::Document { file: self.file.to_string(), document: self.document, message: message.into() }
    }
}

impl RbacObjects {
    /// Reads every document of `text`; `origin` names it in errors. Returns how many RBAC objects it held.
    pub fn read_yaml(&mut self, text: &str, origin: &str) -> Result<usize> {
        let mut found = 0;
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let at = Location { file: origin, document: i + 1 };
            let value = Value::deserialize(document).map_err(|e| at.error(format!("not valid YAML: {e}")))?;
            found += self.take(value, &at, None)?;
        }
        Ok(found)
    }

    /// Reads a file, or every `.yaml`, `.yml` and `.json` file under a directory (recursively, in
    /// path order so that a later duplicate deterministically replaces an earlier one).
    pub fn read_path(&mut self, path: &Path) -> Result<usize> {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        let mut found = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
            found += self.read_yaml(&text, &file.display().to_string())?;
        }
        Ok(found)
    }

    /// One document, or one item of a List (`list` then holds the list's apiVersion and item kind, for items that omit theirs).
    fn take(&mut self, mut value: Value, at: &Location<'_>, list: Option<(&str, &str)>) -> Result<usize> {
        let Value::Mapping(map) = &mut value else {
            return Ok(0); // empty documents and stray scalars are not objects
        };
        if let Some((list_api_version, item_kind)) = list.filter(|(_, k)| !k.is_empty()) {
            // A typed list (`RoleList` from the API) carries kind and apiVersion once, on the list.
            map.entry("kind".into()).or_insert_with(|| item_kind.into());
            map.entry("apiVersion".into()).or_insert_with(|| list_api_version.into());
        }
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        if list.is_none() && kind.ends_with("List") {
            let Some(items) = map.remove("items") else {
                return Ok(0);
            };
            let Value::Sequence(items) = items else {
                return Err(at.error(format!("{kind}: items is not a list")));
            };
            let item_kind = kind.strip_suffix("List").unwrap_or_default();
            let mut found = 0;
            for item in items {
                found += self.take(item, at, Some((&api_version, item_kind)))?;
            }
            return Ok(found);
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        if group != RBAC_GROUP || !matches!(kind.as_str(), "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") {
            return Ok(0);
        }
        if !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
            return Err(at.error(format!("{kind}: unknown apiVersion {api_version:?}")));
        }
        // The beta and alpha shapes carry the same fields this crate reads; k8s-openapi's types check
        // apiVersion, so present them as v1.
        map.insert("apiVersion".into(), format!("{RBAC_GROUP}/v1").into());
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| at.error(format!("{kind} has no metadata.name")))?;
        let bad = |e: serde_yaml_ng::Error| at.error(format!("{kind} {name:?}: {e}"));
        match kind.as_str() {
            "Role" => self.roles.push(serde_yaml_ng::from_value(value).map_err(bad)?),
            "ClusterRole" => self.cluster_roles.push(serde_yaml_ng::from_value(value).map_err(bad)?),
            "RoleBinding" => self.role_bindings.push(serde_yaml_ng::from_value(value).map_err(bad)?),
            _ => self.cluster_role_bindings.push(serde_yaml_ng::from_value(value).map_err(bad)?),
        }
        Ok(1)
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|source| Error::Io { path: path.to_path_buf(), source })?.path());
    }
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Binding indices by the subject keys that can match them: users (service accounts under their
/// username, `system:serviceaccount:NS:NAME`) and groups.
#[derive(Debug, Default)]
struct SubjectIndex {
    users: HashMap<String, Vec<usize>>,
    groups: HashMap<String, Vec<usize>>,
}

impl SubjectIndex {
    /// `namespace` is the binding's, or "" for a ClusterRoleBinding.
    fn add(&mut self, i: usize, subjects: &[Subject], namespace: &str) {
        for s in subjects {
            let list = match s.kind.as_str() {
                "User" => self.users.entry(s.name.clone()).or_default(),
                "Group" => self.groups.entry(s.name.clone()).or_default(),
                "ServiceAccount" => {
                    let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(namespace);
                    if ns.is_empty() {
                        continue; // never matches: the authorizer has no namespace to default it to
                    }
                    self.users.entry(service_account_username(ns, &s.name)).or_default()
                }
                _ => continue,
            };
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }

    /// Every binding naming `user` or one of `groups`, in the order they were loaded.
    fn lookup(&self, user: &str, groups: &[String]) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let hits = std::iter::once(self.users.get(user)).chain(groups.iter().map(|g| self.groups.get(g.as_str())));
        for list in hits.flatten() {
            out.extend_from_slice(list);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A binding of either kind, as the authorizer reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BindingView<'a> {
    pub kind: BindingKind,
    pub name: &'a str,
    /// Empty for a ClusterRoleBinding.
    pub namespace: &'a str,
    pub role_ref: &'a RoleRef,
    pub subjects: &'a [Subject],
}

/// Roles, aggregated ClusterRoles and bindings indexed by subject, so that a check reads only the
/// bindings that name the user or one of its groups: its cost does not grow with the cluster.
#[derive(Debug, Default)]
pub struct RbacSnapshot {
    roles: HashMap<String, HashMap<String, Role>>,
    cluster_roles: HashMap<String, ClusterRole>,
    role_bindings: Vec<RoleBinding>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    cluster_index: SubjectIndex,
    namespace_index: HashMap<String, SubjectIndex>,
    role_bindings_by_namespace: HashMap<String, Vec<usize>>,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kind: &str) -> Result<String> {
    meta.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| Error::InvalidObject(format!("a {kind} has no metadata.name")))
}

fn namespace_of(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.get_or_insert_with(|| DEFAULT_NAMESPACE.to_string()).clone()
}

/// Keeps the last object of each identity, at the position of the first: re-applying an object replaces it.
fn last_wins<T>(items: Vec<T>, mut key: impl FnMut(&mut T) -> Result<String>) -> Result<Vec<T>> {
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for mut item in items {
        let k = key(&mut item)?;
        match position.get(&k) {
            Some(&i) => out[i] = item,
            None => {
                position.insert(k, out.len());
                out.push(item);
            }
        }
    }
    Ok(out)
}

impl RbacSnapshot {
    /// Reads every path (files or directories) into one snapshot.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        let mut objects = RbacObjects::default();
        for p in paths {
            objects.read_path(p.as_ref())?;
        }
        Self::new(objects)
    }

    /// One YAML text, for tests and for callers that already hold the manifests.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let mut objects = RbacObjects::default();
        objects.read_yaml(text, "<yaml>")?;
        Self::new(objects)
    }

    /// Resolves aggregation and builds the subject index. Namespaced objects without a namespace
    /// land in `default`, as `kubectl apply` would put them.
    pub fn new(objects: RbacObjects) -> Result<Self> {
        let RbacObjects { roles, cluster_roles, role_bindings, cluster_role_bindings } = objects;
        let roles = last_wins(roles, |r| Ok(format!("{}/{}", namespace_of(&mut r.metadata), name_of(&r.metadata, "Role")?)))?;
        let mut cluster_roles = last_wins(cluster_roles, |r| name_of(&r.metadata, "ClusterRole"))?;
        let role_bindings = last_wins(role_bindings, |b| Ok(format!("{}/{}", namespace_of(&mut b.metadata), name_of(&b.metadata, "RoleBinding")?)))?;
        let cluster_role_bindings = last_wins(cluster_role_bindings, |b| name_of(&b.metadata, "ClusterRoleBinding"))?;
        aggregate(&mut cluster_roles)?;

        let mut snap = RbacSnapshot::default();
        for r in roles {
            let ns = r.metadata.namespace.clone().unwrap_or_default();
            let name = r.metadata.name.clone().unwrap_or_default();
            snap.roles.entry(ns).or_default().insert(name, r);
        }
        for r in cluster_roles {
            snap.cluster_roles.insert(r.metadata.name.clone().unwrap_or_default(), r);
        }
        for (i, b) in cluster_role_bindings.iter().enumerate() {
            snap.cluster_index.add(i, b.subjects.as_deref().unwrap_or(&[]), "");
        }
        for (i, b) in role_bindings.iter().enumerate() {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            snap.namespace_index.entry(ns.clone()).or_default().add(i, b.subjects.as_deref().unwrap_or(&[]), &ns);
            snap.role_bindings_by_namespace.entry(ns).or_default().push(i);
        }
        snap.role_bindings = role_bindings;
        snap.cluster_role_bindings = cluster_role_bindings;
        Ok(snap)
    }

    pub fn role(&self, namespace: &str, name: &str) -> Option<&Role> {
        self.roles.get(namespace).and_then(|by_name| by_name.get(name))
    }

    /// With aggregated rules resolved.
    pub fn cluster_role(&self, name: &str) -> Option<&ClusterRole> {
        self.cluster_roles.get(name)
    }

    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values().flat_map(HashMap::values)
    }

    pub fn cluster_roles(&self) -> impl Iterator<Item = &ClusterRole> {
        self.cluster_roles.values()
    }

    pub fn role_bindings(&self) -> &[RoleBinding] {
        &self.role_bindings
    }

    pub fn cluster_role_bindings(&self) -> &[ClusterRoleBinding] {
        &self.cluster_role_bindings
    }

    /// The API server's `GetRoleReferenceRules`; `namespace` is the binding's ("" for a
    /// ClusterRoleBinding, which therefore never resolves a Role). The error says what is missing.
    pub(crate) fn rules_for(&self, role_ref: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" if namespace.is_empty() => {
                Err(format!("Role {:?} cannot be used by a ClusterRoleBinding, which can only reference a ClusterRole", role_ref.name))
            }
            "Role" => self
                .role(namespace, &role_ref.name)
                .map(|r| r.rules.as_deref().unwrap_or(&[]))
                .ok_or_else(|| format!("Role {:?} not found in namespace {namespace:?}", role_ref.name)),
            "ClusterRole" => {
                self.cluster_role(&role_ref.name).map(|r| r.rules.as_deref().unwrap_or(&[])).ok_or_else(|| format!("ClusterRole {:?} not found", role_ref.name))
            }
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// Bindings that name `user` or one of `groups`: every such ClusterRoleBinding (namespace "")
    /// or every such RoleBinding in `namespace`, in load order.
    pub(crate) fn bindings_naming(&self, kind: BindingKind, namespace: &str, user: &str, groups: &[String]) -> Vec<BindingView<'_>> {
        match kind {
            BindingKind::ClusterRoleBinding => self.cluster_index.lookup(user, groups).into_iter().filter_map(|i| self.view(kind, i)).collect(),
            BindingKind::RoleBinding => self
                .namespace_index
                .get(namespace)
                .map(|idx| idx.lookup(user, groups).into_iter().filter_map(|i| self.view(kind, i)).collect())
                .unwrap_or_default(),
        }
    }

    /// Namespaces holding at least one RoleBinding.
    pub(crate) fn binding_namespaces(&self) -> impl Iterator<Item = &str> {
        self.role_bindings_by_namespace.keys().map(String::as_str)
    }

    /// Every ClusterRoleBinding, or every RoleBinding in `namespace`, in load order.
    pub(crate) fn bindings_in(&self, kind: BindingKind, namespace: &str) -> Vec<BindingView<'_>> {
        match kind {
            BindingKind::ClusterRoleBinding => (0..self.cluster_role_bindings.len()).filter_map(|i| self.view(kind, i)).collect(),
            BindingKind::RoleBinding => {
                self.role_bindings_by_namespace.get(namespace).map(|list| list.iter().filter_map(|&i| self.view(kind, i)).collect()).unwrap_or_default()
            }
        }
    }

    fn view(&self, kind: BindingKind, i: usize) -> Option<BindingView<'_>> {
        let (meta, role_ref, subjects) = match kind {
            BindingKind::ClusterRoleBinding => {
                let b = self.cluster_role_bindings.get(i)?;
                (&b.metadata, &b.role_ref, &b.subjects)
            }
            BindingKind::RoleBinding => {
                let b = self.role_bindings.get(i)?;
                (&b.metadata, &b.role_ref, &b.subjects)
            }
        };
        Some(BindingView {
            kind,
            name: meta.name.as_deref().unwrap_or_default(),
            namespace: meta.namespace.as_deref().filter(|_| kind == BindingKind::RoleBinding).unwrap_or_default(),
            role_ref,
            subjects: subjects.as_deref().unwrap_or(&[]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_kubectl_get_and_typed_api_lists_are_unwrapped_and_other_kinds_skipped() {
        let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: reader}
  rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: aws-auth, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBindingList
items:
- metadata: {name: rb, namespace: dev}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
  subjects: [{kind: User, name: alice}]
---
# an empty document
"#;
        let mut objects = RbacObjects::default();
        assert_eq!(objects.read_yaml(text, "dump.yaml").unwrap(), 2);
        assert_eq!(objects.cluster_roles.len(), 1);
        assert_eq!(objects.role_bindings[0].metadata.namespace.as_deref(), Some("dev"));
    }

    #[test]
    fn bad_yaml_names_the_file_and_the_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\nkind: Role\n  bad: [indent\n";
        let err = RbacObjects::default().read_yaml(text, "rbac/team.yaml").unwrap_err().to_string();
        assert!(err.starts_with("rbac/team.yaml, document 2: not valid YAML"), "{err}");
    }

    #[test]
    fn a_malformed_rbac_object_names_its_kind_and_name() {
        let text = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: dev}\nrules: [{resources: [pods], verbs: get}]\n";
        let err = RbacObjects::default().read_yaml(text, "r.yaml").unwrap_err().to_string();
        assert!(err.starts_with(r#"r.yaml, document 1: Role "r": "#) && err.contains("expected a sequence"), "{err}");
    }

    #[test]
    fn beta_objects_are_read_as_v1_and_a_later_duplicate_replaces_the_earlier() {
        let text = r#"
apiVersion: rbac.authorization.k8s.io/v1beta1
kind: Role
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
"#;
        let snap = RbacSnapshot::from_yaml(text).unwrap();
        assert_eq!(snap.roles().count(), 1);
        assert_eq!(snap.role("default", "r").unwrap().rules.as_ref().unwrap()[0].verbs, ["list"]);
    }

    #[test]
    fn directories_are_read_recursively_in_path_order_and_missing_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let cr = |verb: &str| {
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: x}}\nrules: [{{apiGroups: ['*'], resources: ['*'], verbs: [{verb}]}}]\n")
        };
        std::fs::write(dir.path().join("a.yaml"), cr("get")).unwrap();
        std::fs::write(dir.path().join("sub/b.yml"), cr("list")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let snap = RbacSnapshot::load(&[dir.path()]).unwrap();
        assert_eq!(snap.cluster_role("x").unwrap().rules.as_ref().unwrap()[0].verbs, ["list"]);
        let missing = dir.path().join("nope.yaml");
        let err = RbacSnapshot::load(&[&missing]).unwrap_err().to_string();
        assert!(err.contains("nope.yaml"), "{err}");
    }
}
