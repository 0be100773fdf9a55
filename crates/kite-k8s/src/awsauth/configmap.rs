//! Reading and writing the `aws-auth` ConfigMap: upstream's tolerant parsing, with every finding located in the YAML.

use super::*;

/// Upstream skips a list whose text is blank, "``" or `""`.
pub(super) fn is_skippable(data: &str) -> bool {
    matches!(data.trim(), "" | "``" | "\"\"")
}

/// The message of a serde_yaml_ng error without its " at line L column C" suffix.
pub(super) fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub(super) fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where `data.<key>` is written as a block scalar (`key: |`): the key's 1-based line and the
/// 1-based lines of its top-level list items.
pub(super) fn block_lines(yaml: &str, key: &str) -> Option<(usize, Vec<usize>)> {
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

pub(super) fn section_key(section: &Section) -> Option<(&'static str, Option<usize>)> {
    match section {
        Section::Document => None,
        Section::MapRoles(i) => Some(("mapRoles", *i)),
        Section::MapUsers(i) => Some(("mapUsers", *i)),
        Section::MapAccounts(i) => Some(("mapAccounts", *i)),
    }
}

/// Fills in the YAML line of findings about list entries, where the list is a block scalar.
pub(super) fn locate(yaml: &str, findings: &mut [Finding]) {
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

pub(super) fn field_name_fix(got: &str, known: &[&str]) -> String {
    let best = known.iter().map(|k| (k, strsim::levenshtein(&got.to_lowercase(), &k.to_lowercase()))).min_by_key(|(_, d)| *d);
    match best {
        Some((k, d)) if d <= 3 => format!("did you mean '{k}'? upstream ignores unknown fields, so the entry would silently lose its value"),
        _ => format!("use only {}", known.join(", ")),
    }
}

pub(super) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) struct Parsed {
    pub(super) arn: String,
    pub(super) username: String,
    pub(super) groups: Vec<String>,
}

/// One list entry with Go `encoding/json`'s case-insensitive field names, as upstream reads it.
pub(super) fn parse_entry(item: &Value, arn_key: &str, section: Section, label: &str, report: &mut Report) -> Option<Parsed> {
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

pub(super) fn kind_of(v: &Value) -> &'static str {
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
pub(super) fn parse_list(doc: &str, key: &str, text: &str, section: Section, report: &mut Report) -> Option<Vec<Value>> {
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

pub(super) fn parse_configmap(yaml: &str) -> (Option<AwsAuth>, Report) {
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
