//! ARM and Graph answers reshaped as az shows them.

use serde_json::{json, Value};

/// ARM's `properties` folded into the object, as az shows resources.
pub fn flatten(mut v: Value) -> Value {
    let Some(Value::Object(props)) = v.as_object_mut().and_then(|o| o.remove("properties")) else { return v };
    let Some(obj) = v.as_object_mut() else { return v };
    for (k, val) in props {
        let key = if k == "type" { "roleType".to_string() } else { k };
        obj.entry(key).or_insert(val);
    }
    v
}

/// A resource folded with [`flatten`], with the `resourceGroup` its id names, as az shows identities and clusters.
pub fn identity_view(v: Value) -> Value {
    let mut v = flatten(v);
    if let Some(id) = v["id"].as_str() {
        let rg = id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("resourcegroups")).nth(1).map(str::to_string);
        v["resourceGroup"] = json!(rg);
    }
    v
}

/// The items of an ARM/Graph list answer (`{"value": [...]}`), each reshaped by `f`.
pub fn list_of(v: Value, f: impl Fn(Value) -> Value) -> Value {
    Value::Array(match v.get("value") {
        Some(Value::Array(items)) => items.iter().cloned().map(f).collect(),
        _ => Vec::new(),
    })
}
