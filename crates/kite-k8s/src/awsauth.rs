//! EKS authentication as aws-iam-authenticator and the EKS control plane decide it: the
//! `kube-system/aws-auth` ConfigMap (`mapRoles`, `mapUsers`, `mapAccounts`), EKS access entries,
//! and the cluster's authentication mode. Security-sensitive and pure: every function here works
//! on values the caller has read, and every refusal explains itself and gives the corrected value.
//!
//! - [`AwsAuth::from_configmap_yaml`] / [`AwsAuth::to_configmap_yaml`] read and write the ConfigMap.
//! - [`validate`] finds what upstream would silently get wrong: a role path in `rolearn` (STS drops
//!   paths, so the entry never matches), session ARNs, duplicates, unknown template variables,
//!   `system:masters` for people other than the cluster creator.
//! - [`apply`] / [`AwsAuthStore`] refuse a ConfigMap that fails validation as a whole, keeping the
//!   last good mapping in force. Upstream instead drops every mapping of a list with one YAML typo,
//!   locking everyone but the cluster creator out.
//! - [`map`] is the authenticator's lookup (canonical ARN, case-insensitive, `mapRoles`, then
//!   `mapUsers`, then `mapAccounts`) with its username and group templates; a miss names the
//!   closest entry and how it differs.
//! - [`create_mapping`], [`delete_mapping`], [`list`] are `eksctl … iamidentitymapping`.
//! - [`AccessEntry`], [`AuthenticationMode`] and [`resolve`] add EKS access entries, which win over
//!   `aws-auth` in `API_AND_CONFIG_MAP`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kite_core::aws::arn::{canonicalize, is_account_id, Arn, Resource, PARTITIONS};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::authorizer::PRIVILEGED_GROUP;
use crate::{Error, Result};

/// The ConfigMap the authenticator watches, and its namespace.
pub const CONFIGMAP_NAME: &str = "aws-auth";
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";

/// The template variables upstream renders in usernames and groups.
pub const TEMPLATE_VARIABLES: [&str; 5] = ["AccountID", "SessionName", "SessionNameRaw", "AccessKeyID", "EC2PrivateDNSName"];

/// A `mapRoles` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    pub rolearn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// A `mapUsers` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMapping {
    pub userarn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// The `aws-auth` ConfigMap's three lists, in the order they were written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsAuth {
    pub map_roles: Vec<RoleMapping>,
    pub map_users: Vec<UserMapping>,
    pub map_accounts: Vec<String>,
}

/// Where a finding is: the document itself, or an entry (index from 0) of one of the lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Section {
    Document,
    MapRoles(Option<usize>),
    MapUsers(Option<usize>),
    MapAccounts(Option<usize>),
}

/// One problem: which entry, what is wrong, and the value to write instead when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub section: Section,
    /// Human name of the entry, e.g. `mapRoles[1] (rolearn arn:aws:iam::111122223333:role/dev/ops)`.
    pub entry: String,
    /// 1-based line in the ConfigMap YAML, when the finding came from a document and could be placed.
    pub line: Option<usize>,
    pub problem: String,
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{}: {}", self.entry, self.problem)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// What [`validate`] found. Errors refuse the ConfigMap; warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

fn finding(section: Section, entry: impl Into<String>, problem: impl Into<String>, fix: Option<String>) -> Finding {
    Finding { section, entry: entry.into(), line: None, problem: problem.into(), fix }
}

fn role_label(i: usize, arn: &str) -> String {
    format!("mapRoles[{i}] (rolearn {arn})")
}

fn user_label(i: usize, arn: &str) -> String {
    format!("mapUsers[{i}] (userarn {arn})")
}

// ---------------------------------------------------------------------------------------------
// Reading and writing the ConfigMap

/// Upstream skips a list whose text is blank, "``" or `""`.
fn is_skippable(data: &str) -> bool {
    matches!(data.trim(), "" | "``" | "\"\"")
}

/// The message of a serde_yaml_ng error without its " at line L column C" suffix.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where `data.<key>` is written as a block scalar (`key: |`): the key's 1-based line and the
/// 1-based lines of its top-level list items.
fn block_lines(yaml: &str, key: &str) -> Option<(usize, Vec<usize>)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let prefix = format!("{key}:");
    let (key_idx, key_line) = lines.iter().enumerate().find(|(_, l)| {
        let t = l.trim_start();
        t.strip_prefix(&prefix).is_some_and(|rest| {
            let rest = rest.trim_start();
            rest.starts_with('|') || rest.starts_with('>')
        })
    })?;
    let key_indent = indent_of(key_line);
    let mut items = Vec::new();
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(key_idx + 1) {
        if l.trim().is_empty() {
            continue;
        }
        let ind = indent_of(l);
        if ind <= key_indent {
            break;
        }
        let base = *item_indent.get_or_insert(ind);
        if ind == base && l.trim_start().starts_with('-') {
            items.push(i + 1);
        }
    }
    Some((key_idx + 1, items))
}

fn section_key(section: &Section) -> Option<(&'static str, Option<usize>)> {
    match section {
        Section::Document => None,
        Section::MapRoles(i) => Some(("mapRoles", *i)),
        Section::MapUsers(i) => Some(("mapUsers", *i)),
        Section::MapAccounts(i) => Some(("mapAccounts", *i)),
    }
}

/// Fills in the YAML line of findings about list entries, where the list is a block scalar.
fn locate(yaml: &str, findings: &mut [Finding]) {
    for f in findings.iter_mut().filter(|f| f.line.is_none()) {
        let Some((key, index)) = section_key(&f.section) else {
            continue;
        };
        let Some((key_line, items)) = block_lines(yaml, key) else {
            continue;
        };
        f.line = match index {
            Some(i) => items.get(i).copied(),
            None => Some(key_line),
        };
    }
}

fn field_name_fix(got: &str, known: &[&str]) -> String {
    let best = known.iter().map(|k| (k, strsim::levenshtein(&got.to_lowercase(), &k.to_lowercase()))).min_by_key(|(_, d)| *d);
    match best {
        Some((k, d)) if d <= 3 => format!("did you mean '{k}'? upstream ignores unknown fields, so the entry would silently lose its value"),
        _ => format!("use only {}", known.join(", ")),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Parsed {
    arn: String,
    username: String,
    groups: Vec<String>,
}

/// One list entry with Go `encoding/json`'s case-insensitive field names, as upstream reads it.
fn parse_entry(item: &Value, arn_key: &str, section: Section, label: &str, report: &mut Report) -> Option<Parsed> {
    let Value::Mapping(m) = item else {
        report.errors.push(finding(
            section,
            label,
            "is not a mapping",
            Some(format!("write each entry as '- {arn_key}: <arn>' with username: and groups: under it")),
        ));
        return None;
    };
    let known = [arn_key, "username", "groups", "userid"];
    let mut out = Parsed { arn: String::new(), username: String::new(), groups: Vec::new() };
    let mut ok = true;
    for (k, v) in m {
        let Some(key) = k.as_str() else {
            report.errors.push(finding(section.clone(), label, format!("has a non-string key {k:?}"), None));
            ok = false;
            continue;
        };
        let lower = key.to_ascii_lowercase();
        if lower == arn_key || lower == "username" {
            match v {
                Value::String(s) => {
                    if lower == arn_key {
                        out.arn = s.clone()
                    } else {
                        out.username = s.clone()
                    }
                }
                Value::Null => {}
                other => {
                    report.errors.push(finding(section.clone(), label, format!("{key} must be a string, got {}", kind_of(other)), None));
                    ok = false;
                }
            }
        } else if lower == "groups" {
            match v {
                Value::Null => {}
                Value::Sequence(items) => {
                    for g in items {
                        match scalar_string(g) {
                            Some(g) => out.groups.push(g),
                            None => {
                                report.errors.push(finding(section.clone(), label, format!("groups holds a {}, not a group name", kind_of(g)), None));
                                ok = false;
                            }
                        }
                    }
                }
                Value::String(s) => {
                    report.errors.push(finding(
                        section.clone(),
                        label,
                        format!("groups is the string '{s}', not a list: upstream fails to read the whole list and drops every mapping in it"),
                        Some(format!("groups:\n  - {s}")),
                    ));
                    ok = false;
                }
                other => {
                    report.errors.push(finding(section.clone(), label, format!("groups must be a list, got {}", kind_of(other)), None));
                    ok = false;
                }
            }
        } else if lower == "userid" {
            report.warnings.push(finding(
                section.clone(),
                label,
                "userid is ignored by the aws-auth ConfigMap (only the authenticator's DynamicFile backend reads it)",
                None,
            ));
        } else if lower == "sso" {
            report.errors.push(finding(
                section.clone(),
                label,
                "sso matchers are not supported by kite",
                Some(format!("write the role as {arn_key}: arn:aws:iam::<account>:role/AWSReservedSSO_<permission set>_<suffix> (without its path)")),
            ));
            ok = false;
        } else {
            report.errors.push(finding(section.clone(), label, format!("unknown field '{key}'"), Some(field_name_fix(key, &known[..3]))));
            ok = false;
        }
    }
    ok.then_some(out)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Parses one `data.<key>` string into a YAML list, explaining YAML errors with the file line.
fn parse_list(doc: &str, key: &str, text: &str, section: Section, report: &mut Report) -> Option<Vec<Value>> {
    if is_skippable(text) {
        return Some(Vec::new());
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Err(e) => {
            let inner = e.location().map(|l| l.line());
            let line = match (inner, block_lines(doc, key)) {
                (Some(n), Some((key_line, _))) => Some(key_line + n),
                _ => None,
            };
            let at = inner.map(|n| format!(" (line {n} of the {key} text)")).unwrap_or_default();
            report.errors.push(Finding {
                section,
                entry: format!("data.{key}"),
                line,
                problem: format!(
                    "is not valid YAML{at}: {}. Upstream would drop every entry of {key} over this one mistake, locking out everyone it maps",
                    yaml_message(&e)
                ),
                fix: Some(format!("fix the YAML of data.{key}; kite keeps the last good mapping until then")),
            });
            None
        }
        Ok(Value::Null) => Some(Vec::new()),
        Ok(Value::Sequence(items)) => Some(items),
        Ok(other) => {
            report.errors.push(finding(
                section,
                format!("data.{key}"),
                format!("must be a YAML list, got {}", kind_of(&other)),
                Some("start every entry with '- ' under the key".into()),
            ));
            None
        }
    }
}

impl AwsAuth {
    /// Reads a `kube-system/aws-auth` ConfigMap. Structure and YAML problems come back as a
    /// [`Report`] naming the key and line; the values themselves are judged by [`validate`].
    pub fn from_configmap_yaml(yaml: &str) -> Result<AwsAuth, Report> {
        let (auth, report) = parse_configmap(yaml);
        match auth {
            Some(a) if report.is_ok() => Ok(a),
            _ => Err(report),
        }
    }

    /// Writes the ConfigMap back as eksctl does: fields of each entry in alphabetical order,
    /// lists as block strings, lists that are empty left out.
    pub fn to_configmap_yaml(&self) -> Result<String> {
        #[derive(Serialize)]
        struct RoleOut<'a> {
            groups: &'a [String],
            rolearn: &'a str,
            username: &'a str,
        }
        #[derive(Serialize)]
        struct UserOut<'a> {
            groups: &'a [String],
            userarn: &'a str,
            username: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            name: &'static str,
            namespace: &'static str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ConfigMap {
            api_version: &'static str,
            data: BTreeMap<&'static str, String>,
            kind: &'static str,
            metadata: Meta,
        }
        let ser = |e: serde_yaml_ng::Error| Error::InvalidObject(format!("cannot write aws-auth: {e}"));
        let mut data = BTreeMap::new();
        if !self.map_roles.is_empty() {
            let rows: Vec<RoleOut> = self.map_roles.iter().map(|r| RoleOut { groups: &r.groups, rolearn: &r.rolearn, username: &r.username }).collect();
            data.insert("mapRoles", serde_yaml_ng::to_string(&rows).map_err(ser)?);
        }
        if !self.map_users.is_empty() {
            let rows: Vec<UserOut> = self.map_users.iter().map(|u| UserOut { groups: &u.groups, userarn: &u.userarn, username: &u.username }).collect();
            data.insert("mapUsers", serde_yaml_ng::to_string(&rows).map_err(ser)?);
        }
        if !self.map_accounts.is_empty() {
            data.insert("mapAccounts", serde_yaml_ng::to_string(&self.map_accounts).map_err(ser)?);
        }
        let cm = ConfigMap { api_version: "v1", data, kind: "ConfigMap", metadata: Meta { name: CONFIGMAP_NAME, namespace: CONFIGMAP_NAMESPACE } };
        serde_yaml_ng::to_string(&cm).map_err(ser)
    }
}

fn parse_configmap(yaml: &str) -> (Option<AwsAuth>, Report) {
    let mut report = Report::default();
    let doc = Section::Document;
    let root = match serde_yaml_ng::from_str::<Value>(yaml) {
        Ok(v) => v,
        Err(e) => {
            report.errors.push(Finding {
                section: doc,
                entry: "the ConfigMap".into(),
                line: e.location().map(|l| l.line()),
                problem: format!("is not valid YAML: {}", yaml_message(&e)),
                fix: None,
            });
            return (None, report);
        }
    };
    let get = |v: &Value, k: &str| v.get(k).cloned();
    let kind = get(&root, "kind").and_then(|v| v.as_str().map(str::to_string));
    if kind.as_deref() != Some("ConfigMap") {
        report.errors.push(finding(
            doc.clone(),
            "kind",
            format!("is {}, not ConfigMap", kind.map(|k| format!("'{k}'")).unwrap_or_else(|| "missing".into())),
            Some("kind: ConfigMap".into()),
        ));
    }
    let meta = get(&root, "metadata");
    let name = meta.as_ref().and_then(|m| m.get("name")).and_then(Value::as_str);
    if name != Some(CONFIGMAP_NAME) {
        report.errors.push(finding(
            doc.clone(),
            "metadata.name",
            format!("is {}: the authenticator only reads the ConfigMap named aws-auth", name.map(|n| format!("'{n}'")).unwrap_or_else(|| "missing".into())),
            Some("metadata:\n  name: aws-auth\n  namespace: kube-system".into()),
        ));
    }
    if let Some(ns) = meta.as_ref().and_then(|m| m.get("namespace")).and_then(Value::as_str) {
        if ns != CONFIGMAP_NAMESPACE {
            report.errors.push(finding(
                doc.clone(),
                "metadata.namespace",
                format!("is '{ns}': the authenticator only watches kube-system"),
                Some("namespace: kube-system".into()),
            ));
        }
    }
    let mut texts: BTreeMap<&'static str, String> = BTreeMap::new();
    match get(&root, "data") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in &m {
                let key = k.as_str().unwrap_or_default();
                let known = ["mapRoles", "mapUsers", "mapAccounts"].into_iter().find(|x| *x == key);
                let Some(known) = known else {
                    let near = ["mapRoles", "mapUsers", "mapAccounts"].into_iter().find(|x| strsim::levenshtein(&x.to_lowercase(), &key.to_lowercase()) <= 2);
                    match near {
                        Some(n) => report.errors.push(finding(
                            doc.clone(),
                            format!("data.{key}"),
                            "is not read by the authenticator (keys are case-sensitive), so its mappings would never apply",
                            Some(format!("rename it to data.{n}")),
                        )),
                        None => report.warnings.push(finding(doc.clone(), format!("data.{key}"), "is not an aws-auth key and is ignored", None)),
                    }
                    continue;
                };
                match v {
                    Value::String(s) => {
                        texts.insert(known, s.clone());
                    }
                    Value::Null => {}
                    other => report.errors.push(finding(
                        doc.clone(),
                        format!("data.{known}"),
                        format!("is {}, but ConfigMap data values are strings (Kubernetes refuses anything else)", kind_of(other)),
                        Some(format!("write '{known}: |' and indent the list under it")),
                    )),
                }
            }
        }
        Some(other) => report.errors.push(finding(doc.clone(), "data", format!("must be a mapping, got {}", kind_of(&other)), None)),
    }

    let mut auth = AwsAuth::default();
    let mut ok = report.is_ok();
    let mut entries = |key: &str, arn_key: &str, section: fn(Option<usize>) -> Section, report: &mut Report| -> Vec<Parsed> {
        let Some(text) = texts.get(key) else { return Vec::new() };
        let Some(items) = parse_list(yaml, key, text, section(None), report) else {
            ok = false;
            return Vec::new();
        };
        let mut parsed = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match parse_entry(item, arn_key, section(Some(i)), &format!("{key}[{i}]"), report) {
                Some(p) => parsed.push(p),
                None => ok = false,
            }
        }
        parsed
    };
    let roles = entries("mapRoles", "rolearn", Section::MapRoles, &mut report);
    let users = entries("mapUsers", "userarn", Section::MapUsers, &mut report);
    auth.map_roles = roles.into_iter().map(|p| RoleMapping { rolearn: p.arn, username: p.username, groups: p.groups }).collect();
    auth.map_users = users.into_iter().map(|p| UserMapping { userarn: p.arn, username: p.username, groups: p.groups }).collect();
    if let Some(text) = texts.get("mapAccounts") {
        match parse_list(yaml, "mapAccounts", text, Section::MapAccounts(None), &mut report) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    match scalar_string(item) {
                        Some(a) => auth.map_accounts.push(a),
                        None => {
                            report.errors.push(finding(
                                Section::MapAccounts(Some(i)),
                                format!("mapAccounts[{i}]"),
                                format!("is {}, not an account ID", kind_of(item)),
                                Some("- \"111122223333\"".into()),
                            ));
                            ok = false;
                        }
                    }
                }
            }
            None => ok = false,
        }
    }
    locate(yaml, &mut report.errors);
    locate(yaml, &mut report.warnings);
    (ok.then_some(auth), report)
}

// ---------------------------------------------------------------------------------------------
// Templates

/// The `{{…}}` tokens of a template, or a description of an unterminated one.
fn template_tokens(template: &str) -> std::result::Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("'{{{{' without a closing '}}}}' in '{template}'"));
        };
        out.push(&after[..end]);
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Problems with the templates of one username or group; `is_user` for `mapUsers` entries.
fn check_template(template: &str, what: &str, is_user: bool, errors: &mut Vec<(String, Option<String>)>, warnings: &mut Vec<(String, Option<String>)>) {
    match template_tokens(template) {
        Err(e) => errors.push((format!("{what} has {e}"), None)),
        Ok(tokens) => {
            for t in tokens {
                if TEMPLATE_VARIABLES.contains(&t) {
                    if is_user && t.starts_with("SessionName") {
                        warnings.push((format!("{what} uses {{{{{t}}}}}, but IAM users have no session: it renders empty"), None));
                    }
                    if is_user && t == "EC2PrivateDNSName" {
                        errors.push((format!("{what} uses {{{{EC2PrivateDNSName}}}}, which only an EC2 instance role session can render"), None));
                    }
                    continue;
                }
                let trimmed = t.trim();
                let best = TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| (v, strsim::levenshtein(&trimmed.to_lowercase(), &v.to_lowercase())))
                    .min_by_key(|(_, d)| *d)
                    .filter(|(_, d)| *d <= 3)
                    .map(|(v, _)| *v);
                let fix = best.map(|v| template.replace(&format!("{{{{{t}}}}}"), &format!("{{{{{v}}}}}")));
                let known = TEMPLATE_VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ");
                errors.push((format!("{what} uses unknown template variable {{{{{t}}}}} (upstream leaves it as literal text; known: {known})"), fix));
            }
        }
    }
}

/// What a caller's request offers the templates.
struct TemplateInput<'a> {
    account: &'a str,
    session_name: &'a str,
    access_key_id: &'a str,
}

/// Renders a username or group as upstream does, refusing what kite cannot render.
fn render(template: &str, input: &TemplateInput) -> std::result::Result<String, String> {
    let tokens = template_tokens(template)?;
    if let Some(t) = tokens.iter().find(|t| !TEMPLATE_VARIABLES.contains(t)) {
        return Err(format!("'{template}' uses unknown template variable {{{{{t}}}}}"));
    }
    if tokens.contains(&"EC2PrivateDNSName") {
        return Err(format!(
            "'{template}' uses {{{{EC2PrivateDNSName}}}}, which upstream resolves by calling ec2:DescribeInstances for instance '{}'; \
             kite cannot resolve it offline",
            input.session_name
        ));
    }
    Ok(template
        .replace("{{AccountID}}", input.account)
        .replace("{{SessionNameRaw}}", input.session_name)
        .replace("{{SessionName}}", &input.session_name.replace('@', "-"))
        .replace("{{AccessKeyID}}", input.access_key_id))
}

// ---------------------------------------------------------------------------------------------
// Validation

fn strip_role_path(arn: &Arn) -> Option<String> {
    match arn.resource() {
        Resource::Role { name, .. } => Some(format!("arn:{}:iam::{}:role/{name}", arn.partition(), arn.account())),
        _ => None,
    }
}

fn same_identity(a: &Arn, b: &Arn) -> bool {
    canonicalize(a).to_string().eq_ignore_ascii_case(&canonicalize(b).to_string())
}

struct Entry<'a> {
    section: Section,
    label: String,
    arn: &'a str,
    username: &'a str,
    groups: &'a [String],
    is_user_list: bool,
}

fn entries(auth: &AwsAuth) -> Vec<Entry<'_>> {
    let roles = auth.map_roles.iter().enumerate().map(|(i, r)| Entry {
        section: Section::MapRoles(Some(i)),
        label: role_label(i, &r.rolearn),
        arn: &r.rolearn,
        username: &r.username,
        groups: &r.groups,
        is_user_list: false,
    });
    let users = auth.map_users.iter().enumerate().map(|(i, u)| Entry {
        section: Section::MapUsers(Some(i)),
        label: user_label(i, &u.userarn),
        arn: &u.userarn,
        username: &u.username,
        groups: &u.groups,
        is_user_list: true,
    });
    roles.chain(users).collect()
}

/// Judges an `aws-auth` mapping. `creator` is the ARN that created the cluster (EKS makes it
/// `system:masters` outside `aws-auth`); `system:masters` for anyone else is a warning.
pub fn validate(auth: &AwsAuth, creator: Option<&str>) -> Report {
    let mut report = Report::default();
    let creator = match creator.map(Arn::parse) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            report.warnings.push(finding(Section::Document, "the cluster creator", e.to_string(), None));
            None
        }
        None => None,
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    for e in entries(auth) {
        let field = if e.is_user_list { "userarn" } else { "rolearn" };
        let err = |report: &mut Report, p: String, fix: Option<String>| report.errors.push(finding(e.section.clone(), e.label.clone(), p, fix));
        let warn = |report: &mut Report, p: String, fix: Option<String>| report.warnings.push(finding(e.section.clone(), e.label.clone(), p, fix));

        let parsed = if e.arn.is_empty() {
            err(
                &mut report,
                format!("{field} is missing: the entry can never match"),
                Some(format!("{field}: arn:aws:iam::<account>:{}/<name>", if e.is_user_list { "user" } else { "role" })),
            );
            None
        } else {
            match Arn::parse(e.arn) {
                Ok(a) => Some(a),
                Err(x) => {
                    err(&mut report, format!("{field} is not a valid identity ARN: {x}"), None);
                    None
                }
            }
        };
        if let Some(arn) = &parsed {
            match arn.resource() {
                Resource::AssumedRole { .. } => {
                    let role = canonicalize(arn).to_string();
                    let hint = if e.is_user_list { " in mapRoles" } else { "" };
                    err(
                        &mut report,
                        format!("{field} is a role session ARN (what `aws sts get-caller-identity` prints), which the authenticator turns into the role before matching, so this entry never matches"),
                        Some(format!("rolearn: {role}{hint}")),
                    );
                }
                Resource::Role { path, .. } if path != "/" => {
                    let bare = strip_role_path(arn).unwrap_or_default();
                    err(
                        &mut report,
                        format!("{field} has the role path {path}, which STS drops from session ARNs, so upstream never matches this entry"),
                        Some(format!("rolearn: {bare}")),
                    );
                }
                Resource::OidcProvider { .. } => err(
                    &mut report,
                    format!("{field} names an OIDC provider, which never calls the cluster itself"),
                    Some("map the role its workloads assume instead".into()),
                ),
                Resource::Role { .. } if e.is_user_list => warn(
                    &mut report,
                    "userarn names a role; upstream matches it anyway, but eksctl and kite keep roles in mapRoles".into(),
                    Some(format!("move it to mapRoles as rolearn: {arn}")),
                ),
                Resource::User { .. } | Resource::FederatedUser { .. } | Resource::Root if !e.is_user_list => warn(
                    &mut report,
                    "rolearn names an IAM user, federated user or account root, not a role; upstream matches it anyway, but it belongs in mapUsers".into(),
                    Some(format!("move it to mapUsers as userarn: {arn}")),
                ),
                _ => {}
            }
        }
        let key = e.arn.to_lowercase();
        if !key.is_empty() {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                err(
                    &mut report,
                    format!("duplicates {first}; upstream keeps only one of them (the last in a list, mapRoles over mapUsers) without saying so"),
                    Some(format!("merge the two into one entry for {}", e.arn)),
                );
            } else {
                seen.push((key, e.label.clone()));
            }
        }

        let mut errs = Vec::new();
        let mut warns = Vec::new();
        if e.username.trim().is_empty() {
            let fix = match parsed.as_ref().map(|a| a.resource().clone()) {
                Some(Resource::Role { name, .. }) => {
                    format!("username: {name}:{{{{SessionName}}}}")
                }
                Some(Resource::User { name, .. }) => format!("username: {name}"),
                _ => "username: <kubernetes user name>".into(),
            };
            errs.push(("username is empty: the authenticator would hand Kubernetes an empty user".to_string(), Some(fix)));
        } else {
            check_template(e.username, "username", e.is_user_list, &mut errs, &mut warns);
        }
        for (gi, g) in e.groups.iter().enumerate() {
            if g.trim().is_empty() {
                errs.push((format!("groups[{gi}] is empty"), Some("remove it".into())));
            } else {
                check_template(g, &format!("groups[{gi}] '{g}'"), e.is_user_list, &mut errs, &mut warns);
            }
        }
        for (p, fix) in errs {
            err(&mut report, p, fix);
        }
        for (p, fix) in warns {
            warn(&mut report, p, fix);
        }
        if e.groups.is_empty() && !e.username.starts_with("system:") {
            warn(
                &mut report,
                format!("has no groups: '{}' authenticates but holds only what RBAC binds to that username (and system:authenticated)", e.username),
                Some(format!("add a group that a (Cluster)RoleBinding names, e.g. eksctl create iamidentitymapping --arn {} --group <group>", e.arn)),
            );
        }
        if e.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            let is_creator = matches!((&parsed, &creator), (Some(a), Some(c)) if same_identity(a, c));
            if !is_creator {
                let who = creator
                    .as_ref()
                    .map(|c| format!("only the cluster creator ({c}) needs it"))
                    .unwrap_or_else(|| "the cluster creator already has it outside aws-auth".into());
                warn(
                    &mut report,
                    format!("grants {PRIVILEGED_GROUP}, unrestricted cluster-admin that RBAC cannot narrow; least privilege: {who}"),
                    Some(format!("bind a narrower ClusterRole (view, edit) to a group of its own and list that group for {} instead", e.arn)),
                );
            }
        }
    }
    let mut seen_accounts: Vec<&str> = Vec::new();
    for (i, a) in auth.map_accounts.iter().enumerate() {
        let label = format!("mapAccounts[{i}] ({a})");
        if !is_account_id(a) {
            let digits: String = a.chars().filter(|c| c.is_ascii_digit()).collect();
            let fix = if is_account_id(&digits) {
                Some(format!("- \"{digits}\""))
            } else if !digits.is_empty() && digits.len() < 12 && a.chars().all(|c| c.is_ascii_digit()) {
                Some(format!("- \"{digits:0>12}\" if leading zeros were lost: quote account IDs so YAML keeps them"))
            } else {
                None
            };
            report.errors.push(finding(Section::MapAccounts(Some(i)), label, "is not a 12-digit AWS account ID", fix));
        } else if seen_accounts.contains(&a.as_str()) {
            report.warnings.push(finding(Section::MapAccounts(Some(i)), label, "is listed twice", Some("remove the second one".into())));
        } else {
            seen_accounts.push(a);
        }
    }
    if !auth.map_accounts.is_empty() {
        report.warnings.push(finding(
            Section::MapAccounts(None),
            "mapAccounts",
            "lets every user and role of these accounts in under its own ARN as username, with no groups",
            Some("map the identities that need access in mapRoles/mapUsers instead".into()),
        ));
    }
    if auth.map_roles.is_empty() && auth.map_users.is_empty() && auth.map_accounts.is_empty() {
        report.warnings.push(finding(
            Section::Document,
            "aws-auth",
            "maps nobody: only the cluster creator (and access entries) can reach the cluster, and nodes cannot join",
            None,
        ));
    }
    report
}

// ---------------------------------------------------------------------------------------------
// The store: refuse a bad ConfigMap as a whole

/// Reads and validates `new_yaml`; on any error the whole ConfigMap is refused (the caller keeps
/// `current`), and the report says so and what stays in force.
pub fn apply(current: &AwsAuth, new_yaml: &str) -> Result<AwsAuth, Report> {
    apply_as(current, new_yaml, None).map(|(a, _)| a)
}

fn apply_as(current: &AwsAuth, new_yaml: &str, creator: Option<&str>) -> Result<(AwsAuth, Report), Report> {
    let (parsed, mut report) = parse_configmap(new_yaml);
    let refused = |mut report: Report| {
        report.warnings.push(finding(
            Section::Document,
            "aws-auth",
            format!(
                "refused as a whole: the last good mapping stays in force ({} mapRoles, {} mapUsers, {} mapAccounts entries)",
                current.map_roles.len(),
                current.map_users.len(),
                current.map_accounts.len()
            ),
            None,
        ));
        report
    };
    let Some(auth) = parsed.filter(|_| report.is_ok()) else {
        return Err(refused(report));
    };
    let mut judged = validate(&auth, creator);
    locate(new_yaml, &mut judged.errors);
    locate(new_yaml, &mut judged.warnings);
    report.errors.extend(judged.errors);
    report.warnings.extend(judged.warnings);
    if !report.is_ok() {
        return Err(refused(report));
    }
    for row in list(current) {
        let kept = list(&auth).iter().any(|r| r.arn.eq_ignore_ascii_case(&row.arn) && r.account == row.account);
        if !kept {
            let what = row.account.clone().unwrap_or_else(|| row.arn.clone());
            report.warnings.push(finding(Section::Document, what, format!("was mapped (as '{}') and this ConfigMap removes it", row.username), None));
        }
    }
    Ok((auth, report))
}

/// The mapping in force, replaced only by a ConfigMap that passes [`validate`].
#[derive(Clone, Debug, Default)]
pub struct AwsAuthStore {
    current: AwsAuth,
    creator: Option<String>,
}

impl AwsAuthStore {
    pub fn new(creator: Option<String>) -> AwsAuthStore {
        AwsAuthStore { current: AwsAuth::default(), creator }
    }

    pub fn current(&self) -> &AwsAuth {
        &self.current
    }

    /// Replaces the mapping when `yaml` passes; the warnings come back either way.
    pub fn apply(&mut self, yaml: &str) -> Result<Report, Report> {
        let (auth, report) = apply_as(&self.current, yaml, self.creator.as_deref())?;
        self.current = auth;
        Ok(report)
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping a caller

/// The entry that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Matched {
    MapRole { index: usize, rolearn: String },
    MapUser { index: usize, userarn: String },
    MapAccount { account: String },
    AccessEntry { index: usize, principal_arn: String },
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matched::MapRole { index, rolearn } => write!(f, "{}", role_label(*index, rolearn)),
            Matched::MapUser { index, userarn } => write!(f, "{}", user_label(*index, userarn)),
            Matched::MapAccount { account } => write!(f, "mapAccounts entry {account}"),
            Matched::AccessEntry { principal_arn, .. } => write!(f, "access entry {principal_arn}"),
        }
    }
}

/// Who the caller is in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
    pub matched: Matched,
    /// The caller's ARN as STS returned it.
    pub arn: String,
    /// The ARN the lookup used (a session becomes its role, without path).
    pub canonical_arn: String,
    /// Kubernetes permissions from access policies (access entries only).
    pub permissions: Vec<K8sPermission>,
}

/// The mapping entry nearest to a caller that matched nothing, and how it differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closest {
    pub entry: String,
    pub arn: String,
    pub distance: usize,
    pub difference: String,
}

/// Why a caller maps to nobody.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapMiss {
    pub arn: String,
    pub canonical_arn: Option<String>,
    pub reason: String,
    /// Boxed to keep `Result<Identity, MapMiss>` small.
    pub closest: Option<Box<Closest>>,
    pub fix: Option<String>,
}

impl fmt::Display for MapMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not mapped", self.arn)?;
        if let Some(c) = self.canonical_arn.as_ref().filter(|c| **c != self.arn) {
            write!(f, " (looked up as {c})")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(c) = &self.closest {
            write!(f, "; closest entry {}: {}", c.entry, c.difference)?;
        }
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MapMiss {}

fn resource_kind(r: &Resource) -> &'static str {
    r.describe()
}

fn resource_name(r: &Resource) -> Option<&str> {
    match r {
        Resource::Role { name, .. } | Resource::User { name, .. } | Resource::FederatedUser { name } => Some(name),
        Resource::AssumedRole { role_name, .. } => Some(role_name),
        _ => None,
    }
}

/// How an entry's ARN differs from the caller's canonical ARN, in words, with the fix.
fn explain_difference(field: &str, entry: &str, caller: &Arn) -> String {
    let entry_arn = match Arn::parse(entry) {
        Ok(a) => a,
        Err(e) => return format!("{field} is not a valid ARN ({e})"),
    };
    if let Resource::AssumedRole { .. } = entry_arn.resource() {
        return format!("{field} is a role session ARN, which never matches; write {}", canonicalize(&entry_arn));
    }
    let mut parts = Vec::new();
    if let Resource::Role { path, name } = entry_arn.resource() {
        if path != "/" {
            let bare = format!("arn:{}:iam::{}:role/{name}", entry_arn.partition(), entry_arn.account());
            if bare.eq_ignore_ascii_case(&caller.to_string()) {
                return format!("{field} has path {path} which STS drops; write {bare}");
            }
            parts.push(format!("{field} has path {path} which STS drops"));
        }
    }
    if std::mem::discriminant(entry_arn.resource()) != std::mem::discriminant(caller.resource()) {
        parts.push(format!("{field} names {} but the caller is {}", resource_kind(entry_arn.resource()), resource_kind(caller.resource())));
    }
    if entry_arn.partition() != caller.partition() {
        parts.push(format!("partition {} in the entry vs {} in the caller's ARN", entry_arn.partition(), caller.partition()));
    }
    if entry_arn.account() != caller.account() {
        parts.push(format!("account {} in the entry vs {} in the caller's ARN", entry_arn.account(), caller.account()));
    }
    match (resource_name(entry_arn.resource()), resource_name(caller.resource())) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => parts.push(format!("name '{a}' in the entry vs '{b}' in the caller's ARN")),
        _ => {}
    }
    if parts.is_empty() {
        parts.push(format!("{entry} differs from {caller}"));
    }
    format!("{}; the caller needs an entry for {caller}", parts.join(", "))
}

fn closest_of<'a>(candidates: impl IntoIterator<Item = (String, &'a str, &'static str)>, caller: &Arn) -> Option<Box<Closest>> {
    let key = caller.to_string().to_lowercase();
    candidates
        .into_iter()
        .map(|(entry, arn, field)| (strsim::levenshtein(&key, &arn.to_lowercase()), entry, arn, field))
        .min_by_key(|(d, ..)| *d)
        .map(|(distance, entry, arn, field)| Box::new(Closest { entry, arn: arn.to_string(), distance, difference: explain_difference(field, arn, caller) }))
}

struct Caller {
    arn: Arn,
    canonical: Arn,
    key: String,
    session: String,
}

fn parse_caller(caller_arn: &str, session_name: Option<&str>) -> Result<Caller, MapMiss> {
    let arn = Arn::parse(caller_arn).map_err(|e| MapMiss {
        arn: caller_arn.into(),
        canonical_arn: None,
        reason: format!("the caller's ARN cannot be read: {e}"),
        closest: None,
        fix: None,
    })?;
    let canonical = canonicalize(&arn);
    let session = match arn.resource() {
        Resource::AssumedRole { session_name, .. } => session_name.clone(),
        _ => session_name.unwrap_or_default().to_string(),
    };
    Ok(Caller { key: canonical.to_string().to_lowercase(), arn, canonical, session })
}

fn refuse(caller: &Caller, entry: String, why: String) -> MapMiss {
    MapMiss {
        arn: caller.arn.to_string(),
        canonical_arn: Some(caller.canonical.to_string()),
        reason: format!("it matches {entry}, but {why}"),
        closest: None,
        fix: None,
    }
}

fn render_all(caller: &Caller, access_key_id: &str, label: &str, username: &str, groups: &[String]) -> Result<(String, Vec<String>), MapMiss> {
    let input = TemplateInput { account: caller.arn.account(), session_name: &caller.session, access_key_id };
    let username = render(username, &input).map_err(|e| refuse(caller, label.to_string(), format!("its username {e}")))?;
    if username.is_empty() {
        return Err(refuse(caller, label.to_string(), "its username renders empty".into()));
    }
    let groups = groups
        .iter()
        .map(|g| render(g, &input))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| refuse(caller, label.to_string(), format!("a group {e}")))?;
    Ok((username, groups))
}

fn map_parsed(auth: &AwsAuth, caller: &Caller, access_key_id: &str) -> Option<Result<Identity, MapMiss>> {
    let ident = |username, groups, matched| Identity {
        username,
        groups,
        matched,
        arn: caller.arn.to_string(),
        canonical_arn: caller.canonical.to_string(),
        permissions: Vec::new(),
    };
    // Upstream keeps the last entry of each ARN, and looks in mapRoles before mapUsers.
    if let Some((i, r)) = auth.map_roles.iter().enumerate().rev().find(|(_, r)| r.rolearn.to_lowercase() == caller.key) {
        let label = role_label(i, &r.rolearn);
        return Some(
            render_all(caller, access_key_id, &label, &r.username, &r.groups)
                .map(|(u, g)| ident(u, g, Matched::MapRole { index: i, rolearn: r.rolearn.clone() })),
        );
    }
    if let Some((i, u)) = auth.map_users.iter().enumerate().rev().find(|(_, u)| u.userarn.to_lowercase() == caller.key) {
        let label = user_label(i, &u.userarn);
        return Some(
            render_all(caller, access_key_id, &label, &u.username, &u.groups)
                .map(|(n, g)| ident(n, g, Matched::MapUser { index: i, userarn: u.userarn.clone() })),
        );
    }
    if auth.map_accounts.iter().any(|a| a == caller.arn.account()) {
        return Some(Ok(ident(caller.canonical.to_string(), Vec::new(), Matched::MapAccount { account: caller.arn.account().to_string() })));
    }
    None
}

fn aws_auth_candidates(auth: &AwsAuth) -> Vec<(String, &str, &'static str)> {
    let roles = auth.map_roles.iter().enumerate().map(|(i, r)| (role_label(i, &r.rolearn), r.rolearn.as_str(), "rolearn"));
    let users = auth.map_users.iter().enumerate().map(|(i, u)| (user_label(i, &u.userarn), u.userarn.as_str(), "userarn"));
    roles.chain(users).collect()
}

fn suggest_mapping(caller: &Caller) -> String {
    format!("eksctl create iamidentitymapping --arn {} --username <name> --group <group> (kite: create_mapping)", caller.canonical)
}

/// The authenticator's lookup: the caller's canonical ARN against `mapRoles`, then `mapUsers`
/// (case-insensitively, the last entry of an ARN winning), then its account against
/// `mapAccounts` (username = the canonical ARN, no groups). `session_name` is used only when the
/// ARN carries none (an assumed-role ARN's own session name wins, as STS is the authority).
pub fn map(auth: &AwsAuth, caller_arn: &str, access_key_id: &str, session_name: Option<&str>) -> Result<Identity, MapMiss> {
    let caller = parse_caller(caller_arn, session_name)?;
    if let Some(result) = map_parsed(auth, &caller, access_key_id) {
        return result;
    }
    Err(aws_auth_miss(auth, &caller))
}

fn aws_auth_miss(auth: &AwsAuth, caller: &Caller) -> MapMiss {
    let closest = closest_of(aws_auth_candidates(auth), &caller.canonical);
    let reason = if auth.map_roles.is_empty() && auth.map_users.is_empty() && auth.map_accounts.is_empty() {
        "aws-auth maps nobody".to_string()
    } else {
        format!("no mapRoles or mapUsers entry is {} and account {} is not in mapAccounts", caller.canonical, caller.arn.account())
    };
    MapMiss { arn: caller.arn.to_string(), canonical_arn: Some(caller.canonical.to_string()), reason, closest, fix: Some(suggest_mapping(caller)) }
}

// ---------------------------------------------------------------------------------------------
// eksctl iamidentitymapping

/// A row of `eksctl get iamidentitymapping`: `arn` empty and `account` set for a mapAccounts entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityMappingRow {
    pub arn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub account: Option<String>,
}

/// Every mapping, roles first, then users, then accounts, as eksctl lists them.
pub fn list(auth: &AwsAuth) -> Vec<IdentityMappingRow> {
    let roles =
        auth.map_roles.iter().map(|r| IdentityMappingRow { arn: r.rolearn.clone(), username: r.username.clone(), groups: r.groups.clone(), account: None });
    let users =
        auth.map_users.iter().map(|u| IdentityMappingRow { arn: u.userarn.clone(), username: u.username.clone(), groups: u.groups.clone(), account: None });
    let accounts =
        auth.map_accounts.iter().map(|a| IdentityMappingRow { arn: String::new(), username: String::new(), groups: Vec::new(), account: Some(a.clone()) });
    roles.chain(users).chain(accounts).collect()
}

/// `eksctl create iamidentitymapping`: a role ARN goes to mapRoles, anything else to mapUsers.
/// Refuses a duplicate and anything [`validate`] calls an error for the new entry; returns the
/// warnings about it (e.g. `system:masters`).
pub fn create_mapping(auth: &mut AwsAuth, arn: &str, username: &str, groups: &[String]) -> Result<Vec<Finding>> {
    let parsed = Arn::parse(arn).map_err(|e| Error::InvalidArgument(format!("--arn {arn}: {e}")))?;
    if let Some(existing) = entries(auth).iter().find(|e| Arn::parse(e.arn).is_ok_and(|a| same_identity(&a, &parsed)) || e.arn.eq_ignore_ascii_case(arn)) {
        return Err(Error::InvalidArgument(format!("{arn} is already mapped by {}: delete it first (delete_mapping) or edit that entry", existing.label)));
    }
    let mut candidate = auth.clone();
    let section = match parsed.resource() {
        Resource::Role { .. } | Resource::AssumedRole { .. } | Resource::OidcProvider { .. } => {
            candidate.map_roles.push(RoleMapping { rolearn: arn.into(), username: username.into(), groups: groups.to_vec() });
            Section::MapRoles(Some(candidate.map_roles.len() - 1))
        }
        _ => {
            candidate.map_users.push(UserMapping { userarn: arn.into(), username: username.into(), groups: groups.to_vec() });
            Section::MapUsers(Some(candidate.map_users.len() - 1))
        }
    };
    let report = validate(&candidate, None);
    let errors: Vec<String> = report.errors.iter().filter(|f| f.section == section).map(Finding::to_string).collect();
    if !errors.is_empty() {
        return Err(Error::InvalidArgument(format!("refusing to map {arn}: {}", errors.join("; "))));
    }
    *auth = candidate;
    Ok(report.warnings.into_iter().filter(|f| f.section == section).collect())
}

/// `eksctl delete iamidentitymapping`: removes the first mapping of `arn` (case-insensitive), or
/// every one with `all`; a 12-digit `arn` removes that mapAccounts entry. Returns how many went.
pub fn delete_mapping(auth: &mut AwsAuth, arn: &str, all: bool) -> Result<usize> {
    let mut removed = 0;
    let mut take = |matches: bool| {
        if matches && (all || removed == 0) {
            removed += 1;
            false
        } else {
            true
        }
    };
    if is_account_id(arn) {
        auth.map_accounts.retain(|a| take(a == arn));
    } else {
        auth.map_roles.retain(|r| take(r.rolearn.eq_ignore_ascii_case(arn)));
        auth.map_users.retain(|u| take(u.userarn.eq_ignore_ascii_case(arn)));
    }
    if removed == 0 {
        let hint = list(auth)
            .into_iter()
            .map(|r| r.account.unwrap_or(r.arn))
            .min_by_key(|c| strsim::levenshtein(&c.to_lowercase(), &arn.to_lowercase()))
            .map(|c| format!(" (closest mapping: {c})"))
            .unwrap_or_default();
        return Err(Error::InvalidArgument(format!("no iamidentitymapping with arn {arn} found{hint}")));
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------------------------
// EKS access entries

/// The cluster's `accessConfig.authenticationMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationMode {
    ConfigMap,
    ApiAndConfigMap,
    Api,
}

impl AuthenticationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationMode::ConfigMap => "CONFIG_MAP",
            AuthenticationMode::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            AuthenticationMode::Api => "API",
        }
    }

    pub fn uses_access_entries(self) -> bool {
        self != AuthenticationMode::ConfigMap
    }

    pub fn uses_config_map(self) -> bool {
        self != AuthenticationMode::Api
    }
}

impl fmt::Display for AuthenticationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthenticationMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [AuthenticationMode::ConfigMap, AuthenticationMode::ApiAndConfigMap, AuthenticationMode::Api]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown authentication mode '{s}': use CONFIG_MAP, API_AND_CONFIG_MAP or API")))
    }
}

/// Where an access policy applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessScope {
    Cluster,
    Namespaces(Vec<String>),
}

/// An access policy associated with an access entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicyAssociation {
    pub policy_arn: String,
    pub scope: AccessScope,
}

/// An EKS access entry (`aws eks create-access-entry` + `associate-access-policy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    /// `None` takes EKS's default: the user's ARN, or `arn:aws:sts::ACCT:assumed-role/ROLE/{{SessionName}}` for a role.
    pub username: Option<String>,
    pub policies: Vec<AccessPolicyAssociation>,
}

/// The access policies kite understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessPolicy {
    ClusterAdmin,
    Admin,
    Edit,
    View,
}

const ACCESS_POLICIES: [(AccessPolicy, &str, &str); 4] = [
    (AccessPolicy::ClusterAdmin, "AmazonEKSClusterAdminPolicy", "cluster-admin"),
    (AccessPolicy::Admin, "AmazonEKSAdminPolicy", "admin"),
    (AccessPolicy::Edit, "AmazonEKSEditPolicy", "edit"),
    (AccessPolicy::View, "AmazonEKSViewPolicy", "view"),
];

impl AccessPolicy {
    /// Reads `arn:<partition>:eks::aws:cluster-access-policy/<name>`.
    pub fn from_arn(arn: &str) -> Result<AccessPolicy> {
        let name = PARTITIONS.iter().find_map(|p| arn.strip_prefix(&format!("arn:{p}:eks::aws:cluster-access-policy/"))).ok_or_else(|| {
            Error::InvalidArgument(format!("'{arn}' is not an EKS access policy ARN: expected arn:aws:eks::aws:cluster-access-policy/<name>"))
        })?;
        ACCESS_POLICIES.iter().find(|(_, n, _)| *n == name).map(|(p, ..)| *p).ok_or_else(|| {
            let names: Vec<&str> = ACCESS_POLICIES.iter().map(|(_, n, _)| *n).collect();
            let near = kite_core::suggest::closest(name, names.iter().copied()).map(|n| format!(" (did you mean {n}?)")).unwrap_or_default();
            Error::InvalidArgument(format!("unsupported access policy '{name}'{near}: kite knows {}", names.join(", ")))
        })
    }

    pub fn name(self) -> &'static str {
        ACCESS_POLICIES.iter().find(|(p, ..)| *p == self).map(|(_, n, _)| *n).unwrap_or_default()
    }

    pub fn arn(self) -> String {
        format!("arn:aws:eks::aws:cluster-access-policy/{}", self.name())
    }

    /// The Kubernetes ClusterRole with the same permissions.
    pub fn cluster_role(self) -> &'static str {
        ACCESS_POLICIES.iter().find(|(p, ..)| *p == self).map(|(.., r)| *r).unwrap_or_default()
    }
}

/// An access policy as Kubernetes RBAC would write it: a ClusterRole bound cluster-wide
/// (ClusterRoleBinding) or, when scoped, in each namespace (RoleBindings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sPermission {
    pub policy_arn: String,
    pub cluster_role: String,
    pub scope: AccessScope,
}

/// The Kubernetes equivalent of an access policy association.
pub fn permission_of(assoc: &AccessPolicyAssociation) -> Result<K8sPermission> {
    let policy = AccessPolicy::from_arn(&assoc.policy_arn)?;
    if let AccessScope::Namespaces(ns) = &assoc.scope {
        if ns.is_empty() {
            return Err(Error::InvalidArgument(format!("{}: a namespace scope needs at least one namespace", policy.name())));
        }
    }
    Ok(K8sPermission { policy_arn: assoc.policy_arn.clone(), cluster_role: policy.cluster_role().to_string(), scope: assoc.scope.clone() })
}

/// EKS resolves a role's access entry by the role itself, so its path does not matter.
fn access_entry_key(principal: &Arn) -> String {
    strip_role_path(principal).unwrap_or_else(|| principal.to_string()).to_lowercase()
}

fn map_access_entry(entries: &[AccessEntry], caller: &Caller, access_key_id: &str) -> Option<Result<Identity, MapMiss>> {
    let (index, entry, principal) = entries.iter().enumerate().find_map(|(i, e)| {
        let p = Arn::parse(&e.principal_arn).ok()?;
        (access_entry_key(&p) == caller.key).then_some((i, e, p))
    })?;
    let label = format!("access entry {}", entry.principal_arn);
    let default_username = match principal.resource() {
        Resource::Role { name, .. } => format!("arn:{}:sts::{}:assumed-role/{name}/{{{{SessionName}}}}", principal.partition(), principal.account()),
        _ => principal.to_string(),
    };
    let username = entry.username.clone().unwrap_or(default_username);
    let result = render_all(caller, access_key_id, &label, &username, &entry.kubernetes_groups).and_then(|(username, groups)| {
        let permissions = entry.policies.iter().map(permission_of).collect::<Result<Vec<_>>>().map_err(|e| refuse(caller, label.clone(), e.to_string()))?;
        Ok(Identity {
            username,
            groups,
            matched: Matched::AccessEntry { index, principal_arn: entry.principal_arn.clone() },
            arn: caller.arn.to_string(),
            canonical_arn: caller.canonical.to_string(),
            permissions,
        })
    });
    Some(result)
}

/// Who the caller is under `mode`: access entries (`API`, and first in `API_AND_CONFIG_MAP`, as EKS
/// does), then `aws-auth` (`CONFIG_MAP`, and second in `API_AND_CONFIG_MAP`). A miss says when
/// the source the mode ignores would have matched.
pub fn resolve(
    mode: AuthenticationMode,
    entries: &[AccessEntry],
    aws_auth: &AwsAuth,
    caller_arn: &str,
    access_key_id: &str,
    session_name: Option<&str>,
) -> Result<Identity, MapMiss> {
    let caller = parse_caller(caller_arn, session_name)?;
    if mode.uses_access_entries() {
        if let Some(r) = map_access_entry(entries, &caller, access_key_id) {
            return r;
        }
    }
    if mode.uses_config_map() {
        if let Some(r) = map_parsed(aws_auth, &caller, access_key_id) {
            return r;
        }
    }
    let mut candidates: Vec<(String, &str, &'static str)> = Vec::new();
    if mode.uses_access_entries() {
        candidates.extend(entries.iter().map(|e| (format!("access entry {}", e.principal_arn), e.principal_arn.as_str(), "principalArn")));
    }
    if mode.uses_config_map() {
        candidates.extend(aws_auth_candidates(aws_auth));
    }
    let closest = closest_of(candidates, &caller.canonical);
    let ignored = if !mode.uses_config_map() && map_parsed(aws_auth, &caller, access_key_id).is_some() {
        Some(format!("aws-auth maps it, but authentication mode {mode} ignores aws-auth: create an access entry or switch to API_AND_CONFIG_MAP"))
    } else if !mode.uses_access_entries() && map_access_entry(entries, &caller, access_key_id).is_some() {
        Some(format!(
            "an access entry exists for it, but authentication mode {mode} ignores access entries: switch to API_AND_CONFIG_MAP or add it to aws-auth"
        ))
    } else {
        None
    };
    let consulted = match mode {
        AuthenticationMode::ConfigMap => "aws-auth",
        AuthenticationMode::ApiAndConfigMap => "access entries or aws-auth",
        AuthenticationMode::Api => "access entries",
    };
    let fix = match mode {
        AuthenticationMode::ConfigMap => suggest_mapping(&caller),
        _ => format!("aws eks create-access-entry --principal-arn {} --kubernetes-groups <group>", caller.canonical),
    };
    Err(MapMiss {
        arn: caller.arn.to_string(),
        canonical_arn: Some(caller.canonical.to_string()),
        reason: ignored.unwrap_or_else(|| format!("nothing in {consulted} (authentication mode {mode}) names {}", caller.canonical)),
        closest,
        fix: Some(fix),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_render_with_at_signs_replaced_and_raw_left_alone() {
        let input = TemplateInput { account: "111122223333", session_name: "jdoe@example.com", access_key_id: "ASIAEXAMPLE" };
        assert_eq!(
            render("a-{{AccountID}}-{{SessionName}}-{{SessionNameRaw}}-{{AccessKeyID}}", &input).as_deref(),
            Ok("a-111122223333-jdoe-example.com-jdoe@example.com-ASIAEXAMPLE")
        );
        assert!(render("system:node:{{EC2PrivateDNSName}}", &input).is_err());
        assert!(render("{{Nope}}", &input).is_err());
        assert!(render("x{{SessionName", &input).is_err());
    }

    #[test]
    fn block_lines_find_each_list_item_of_a_block_scalar() {
        let doc = "data:\n  mapRoles: |\n    - rolearn: a\n      username: x\n    - rolearn: b\nkind: ConfigMap\n";
        assert_eq!(block_lines(doc, "mapRoles"), Some((2, vec![3, 5])));
    }
}
