//! Output as az prints it: `-o json|jsonc|table|tsv|yaml|none`, after an optional JMESPath `--query`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Jsonc,
    Table,
    Tsv,
    Yaml,
    None,
}

/// Applies `--query`, the way az does, before formatting.
pub fn query(mut value: Value, expression: Option<&str>) -> Result<Value> {
    let Some(expression) = expression else {
        sort_keys(&mut value);
        return Ok(value);
    };
    let compiled = jmespath::compile(expression).map_err(|e| anyhow::anyhow!("invalid --query '{expression}': {e}"))?;
    let result = compiled.search(value).map_err(|e| anyhow::anyhow!("--query '{expression}' failed: {e}"))?;
    let mut value = serde_json::to_value(&*result).context("converting the query result")?;
    // az prints objects with sorted keys, except a projection's, which keep the order written
    // (`{Name:name, Id:id}` prints Name then Id in table and tsv): scripts read tsv by position.
    sort_keys(&mut value);
    let mut orders = Vec::new();
    multi_hash_keys(compiled.as_ast(), &mut orders);
    reorder(&mut value, &orders);
    Ok(value)
}

/// The key lists of every `{key: expr, …}` in the expression, as written.
fn multi_hash_keys(ast: &jmespath::ast::Ast, out: &mut Vec<Vec<String>>) {
    use jmespath::ast::Ast;
    match ast {
        Ast::MultiHash { elements, .. } => {
            out.push(elements.iter().map(|kv| kv.key.clone()).collect());
            elements.iter().for_each(|kv| multi_hash_keys(&kv.value, out));
        }
        Ast::MultiList { elements, .. } => elements.iter().for_each(|e| multi_hash_keys(e, out)),
        Ast::Function { args, .. } => args.iter().for_each(|a| multi_hash_keys(a, out)),
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => {
            multi_hash_keys(lhs, out);
            multi_hash_keys(rhs, out);
        }
        Ast::Condition { predicate, then, .. } => {
            multi_hash_keys(predicate, out);
            multi_hash_keys(then, out);
        }
        Ast::Expref { ast, .. } => multi_hash_keys(ast, out),
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => multi_hash_keys(node, out),
        Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Literal { .. } | Ast::Slice { .. } => {}
    }
}

/// Sorts every object's keys, as az's output does for objects that no projection ordered.
fn sort_keys(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        Value::Object(map) => {
            map.values_mut().for_each(sort_keys);
            map.sort_keys();
        }
        _ => {}
    }
}

/// Puts the keys of every object that one of `orders` produced back in that order.
fn reorder(value: &mut Value, orders: &[Vec<String>]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| reorder(v, orders)),
        Value::Object(map) => {
            map.values_mut().for_each(|v| reorder(v, orders));
            if let Some(order) = orders.iter().find(|o| o.len() == map.len() && o.iter().all(|k| map.contains_key(k))) {
                let mut sorted = serde_json::Map::new();
                for key in order {
                    if let Some(v) = map.remove(key) {
                        sorted.insert(key.clone(), v);
                    }
                }
                *map = sorted;
            }
        }
        _ => {}
    }
}

/// Prints `value` after `--query`, in `format`.
pub fn print(value: Value, format: Format, query: Option<&str>) -> Result<ExitCode> {
    print_as(value, format, query, None)
}

/// Like [`print`], with the columns az's table view shows for this kind of object when no --query is given.
pub fn print_as(value: Value, format: Format, query: Option<&str>, table_view: Option<&str>) -> Result<ExitCode> {
    let query = match (format, query) {
        (Format::Table, None) => table_view,
        (_, q) => q,
    };
    let value = self::query(value, query)?;
    print!("{}", render(&value, format)?);
    Ok(ExitCode::SUCCESS)
}

pub fn render(value: &Value, format: Format) -> Result<String> {
    // az's JSON and YAML always sort keys (json.dumps(sort_keys=True)); only table and tsv follow a projection.
    let sorted = || {
        let mut v = value.clone();
        sort_keys(&mut v);
        v
    };
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&sorted())? + "\n",
        Format::Jsonc => {
            let mut out = String::new();
            colorize(&sorted(), 0, &mut out);
            out + "\n"
        }
        Format::Yaml => serde_yaml_ng::to_string(&sorted())?,
        Format::Tsv => tsv(value),
        Format::Table => table(value)?,
        Format::None => String::new(),
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn rows(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// One line per object: its scalar values in key order, tab-separated (az drops nested values).
fn tsv(value: &Value) -> String {
    let mut out = String::new();
    for row in rows(value) {
        let cells: Vec<String> = match row {
            Value::Object(map) => map.values().filter_map(scalar).collect(),
            Value::Array(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

/// `resourceGroup` → `ResourceGroup`, as az titles its columns.
fn header(key: &str) -> String {
    let mut chars = key.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

fn table(value: &Value) -> Result<String> {
    let rows = rows(value);
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        match row {
            Value::Object(map) => {
                for (k, v) in map {
                    if scalar(v).is_some() && !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
            Value::Array(_) => bail!("table output needs objects; use --query to pick fields, e.g. --query \"[].{{Name:name}}\""),
            _ => {}
        }
    }
    if columns.is_empty() {
        // A list of scalars (e.g. --query "[].name"): one column titled "Result", as az does.
        let cells: Vec<String> = rows.iter().filter_map(|r| scalar(r)).collect();
        let width = cells.iter().map(|c| c.chars().count()).max().unwrap_or(0).max(6);
        let mut out = format!("Result\n{}\n", "-".repeat(width));
        for c in cells {
            let _ = writeln!(out, "{c}");
        }
        return Ok(out);
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| r.get(c).and_then(scalar).unwrap_or_default()).collect()).collect();
    let headers: Vec<String> = columns.iter().map(|c| header(c)).collect();
    let widths: Vec<usize> =
        (0..columns.len()).map(|i| cells.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| -> String {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&headers);
    out.push_str(&(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ") + "\n"));
    for r in &cells {
        out.push_str(&line(r));
    }
    Ok(out)
}

/// JSON with az's jsonc colours: keys blue, strings green, numbers and booleans yellow.
fn colorize(v: &Value, indent: usize, out: &mut String) {
    const KEY: &str = "\x1b[94m";
    const STR: &str = "\x1b[32m";
    const LIT: &str = "\x1b[33m";
    const END: &str = "\x1b[0m";
    let pad = "  ".repeat(indent + 1);
    match v {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (k, val)) in map.iter().enumerate() {
                let _ = write!(out, "{pad}{KEY}{}{END}: ", Value::String(k.clone()));
                colorize(val, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}}}", "  ".repeat(indent));
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, val) in items.iter().enumerate() {
                out.push_str(&pad);
                colorize(val, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}]", "  ".repeat(indent));
        }
        Value::String(_) => {
            let _ = write!(out, "{STR}{v}{END}");
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {
            let _ = write!(out, "{LIT}{v}{END}");
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identities() -> Value {
        json!([
            {"name": "myIdentity", "location": "westus2", "tags": {}, "clientId": "c1"},
            {"name": "kubelet", "location": "japaneast", "tags": {}, "clientId": "c2"}
        ])
    }

    #[test]
    fn seed_002_query_projects_into_a_table() {
        let v = query(identities(), Some("[].{Name:name, Location:location}")).unwrap();
        assert_eq!(
            render(&v, Format::Table).unwrap(),
            // Columns come out in the order the query wrote them, as az prints them.
            "Name        Location\n----------  ---------\nmyIdentity  westus2\nkubelet     japaneast\n"
        );
    }

    #[test]
    fn tsv_keeps_scalars_and_a_bad_query_is_an_error() {
        // Without a projection, keys are sorted (clientId, location, name), as az's tsv does.
        assert_eq!(render(&query(identities(), None).unwrap(), Format::Tsv).unwrap(), "c1\twestus2\tmyIdentity\nc2\tjapaneast\tkubelet\n");
        assert_eq!(render(&query(identities(), Some("[0].clientId")).unwrap(), Format::Tsv).unwrap(), "c1\n");
        assert!(query(identities(), Some("[?name==")).unwrap_err().to_string().contains("invalid --query"));
    }

    #[test]
    fn yaml_and_scalar_tables() {
        assert!(render(&identities(), Format::Yaml).unwrap().contains("- clientId: c1\n  location: westus2\n  name: myIdentity\n"));
        let names = query(identities(), Some("[].name")).unwrap();
        assert_eq!(render(&names, Format::Table).unwrap(), "Result\n----------\nmyIdentity\nkubelet\n");
        assert!(render(&json!({"a": "b"}), Format::Jsonc).unwrap().contains("\x1b[94m\"a\"\x1b[0m"));
    }
}
