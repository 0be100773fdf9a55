//! The audit trail's record: who did what to which object, how it ended, and from where. Events are
//! append-only; they are read back in Azure Activity Log's field names (`caller`, `operationName`,
//! `resourceId`, `status`, `eventTimestamp`, `correlationId`) or, for AWS-shaped operations, as
//! CloudTrail writes them (`eventName`, `userIdentity.arn`, `requestParameters`).
//!
//! Security: an event holds names, IDs, codes and addresses, never a secret, a token or a request
//! body; its builders take only those, so nothing secret can reach the trail by accident.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// How an event is read back: Activity Log (Azure-shaped operations) or CloudTrail (AWS-shaped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    ActivityLog,
    CloudTrail,
}

/// What kind of decision the event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Category {
    /// A write through the management API.
    Administrative,
    /// A token issued or refused (Entra endpoint, STS).
    Token,
    /// The node agent's decision for a pod.
    NodeAgent,
    /// A webhook's decision (TokenReview, SubjectAccessReview).
    Webhook,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Administrative => "Administrative",
            Category::Token => "Token",
            Category::NodeAgent => "NodeAgent",
            Category::Webhook => "Webhook",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Succeeded,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> crate::Result<Status> {
        match s.to_ascii_lowercase().as_str() {
            "succeeded" => Ok(Status::Succeeded),
            "failed" => Ok(Status::Failed),
            _ => Err(crate::Error::InvalidArgument(format!("status '{s}' is neither Succeeded nor Failed"))),
        }
    }
}

/// One record of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub event_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub event_timestamp: OffsetDateTime,
    pub shape: Shape,
    pub category: Category,
    /// Who acted: a principal's object ID, a client ID, an ARN, a pod (`namespace/name`), a Kubernetes user.
    pub caller: String,
    /// How the caller proved it: `Bearer`, `client_secret`, `client_assertion`, `SigV4`, `WebIdentity`, `PodIP`, ….
    pub authentication: String,
    /// ARM's `Microsoft.X/y/write|delete|action`, or an AWS event name (`CreateCluster`, `AssumeRoleWithWebIdentity`).
    pub operation_name: String,
    pub resource_id: String,
    pub status: Status,
    pub http_status: u16,
    pub correlation_id: String,
    pub source_ip: Option<String>,
    /// `AADSTS7000215`, an STS error code, a refusal reason.
    pub error_code: Option<String>,
    /// Named facts: client, grant, resource, pod, identity, decision reason, AWS request parameters.
    pub properties: BTreeMap<String, String>,
}

/// The fields every event starts from; the rest default to a success with no properties.
pub struct NewEvent<'a> {
    pub shape: Shape,
    pub category: Category,
    pub caller: &'a str,
    pub authentication: &'a str,
    pub operation_name: &'a str,
    pub resource_id: &'a str,
    pub correlation_id: &'a str,
}

/// Longest value a field keeps: callers choose some of these strings (a client ID, a role ARN).
const MAX_FIELD: usize = 512;

fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

impl AuditEvent {
    pub fn new(e: NewEvent<'_>, now: OffsetDateTime) -> AuditEvent {
        AuditEvent {
            event_id: Uuid::new_v4(),
            event_timestamp: now,
            shape: e.shape,
            category: e.category,
            caller: bounded(e.caller),
            authentication: bounded(e.authentication),
            operation_name: bounded(e.operation_name),
            resource_id: bounded(e.resource_id),
            status: Status::Succeeded,
            http_status: 200,
            correlation_id: bounded(e.correlation_id),
            source_ip: None,
            error_code: None,
            properties: BTreeMap::new(),
        }
    }

    /// Ended with `http_status`; 4xx and 5xx are failures.
    pub fn ended(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self.status = if http_status >= 400 { Status::Failed } else { Status::Succeeded };
        self
    }

    pub fn failed_with(mut self, code: impl AsRef<str>) -> Self {
        self.status = Status::Failed;
        self.error_code = Some(bounded(code.as_ref()));
        self
    }

    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }

    pub fn with(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.properties.insert(key.to_string(), bounded(value.as_ref()));
        self
    }

    /// The event as its reader expects it: Activity Log's or CloudTrail's field names.
    pub fn render(&self, aws_account: &str) -> Value {
        match self.shape {
            Shape::ActivityLog => self.activity_log(),
            Shape::CloudTrail => self.cloud_trail(aws_account),
        }
    }

    fn activity_log(&self) -> Value {
        let localized = |v: &str| json!({"value": v, "localizedValue": v});
        let mut properties: serde_json::Map<String, Value> = self.properties.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        properties.insert("statusCode".into(), json!(self.http_status.to_string()));
        if let Some(code) = &self.error_code {
            properties.insert("errorCode".into(), json!(code));
        }
        json!({
            "authorization": {"action": self.operation_name, "scope": self.resource_id},
            "caller": self.caller,
            "claims": {"authnmethodsreferences": self.authentication},
            "category": localized(self.category.as_str()),
            "correlationId": self.correlation_id,
            "eventDataId": self.event_id,
            "eventName": localized("EndRequest"),
            "eventTimestamp": rfc3339(self.event_timestamp),
            "httpRequest": {"clientIpAddress": self.source_ip},
            "id": format!("{}/events/{}", self.resource_id, self.event_id),
            "level": if self.status == Status::Succeeded { "Informational" } else { "Error" },
            "operationName": localized(&self.operation_name),
            "properties": properties,
            "resourceId": self.resource_id,
            "status": localized(self.status.as_str()),
            "subStatus": localized(&self.http_status.to_string()),
        })
    }

    fn cloud_trail(&self, aws_account: &str) -> Value {
        let source = self.properties.get("eventSource").cloned().unwrap_or_else(|| "sts.amazonaws.com".into());
        let parameters: serde_json::Map<String, Value> =
            self.properties.iter().filter(|(k, _)| *k != "eventSource").map(|(k, v)| (k.clone(), json!(v))).collect();
        let identity_type = match self.authentication.as_str() {
            "WebIdentity" => "WebIdentityUser",
            "Bearer" => "AzureADPrincipal",
            _ if self.caller.contains(":assumed-role/") => "AssumedRole",
            _ if self.caller.contains(":user/") => "IAMUser",
            _ => "Unknown",
        };
        json!({
            "eventVersion": "1.08",
            "eventID": self.event_id,
            "eventTime": rfc3339(self.event_timestamp),
            "eventSource": source,
            "eventName": self.operation_name,
            "eventType": "AwsApiCall",
            "eventCategory": self.category.as_str(),
            "awsRegion": "us-east-1",
            "recipientAccountId": aws_account,
            "sourceIPAddress": self.source_ip,
            "userIdentity": {"type": identity_type, "arn": self.caller, "accountId": aws_account, "authentication": self.authentication},
            "requestParameters": parameters,
            "resources": [{"ARN": self.resource_id}],
            "requestID": self.correlation_id,
            "errorCode": self.error_code,
            "status": self.status.as_str(),
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Which events a reader wants; all bounds are inclusive of `start` and exclusive of `end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFilter {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Case-insensitive, exact.
    pub caller: Option<String>,
    /// Case-insensitive, `*` any run of characters, `?` one.
    pub operation: Option<String>,
    /// Case-insensitive prefix.
    pub resource_id: Option<String>,
    pub status: Option<Status>,
    /// Paging: events strictly after this (timestamp, event ID) in the trail's order.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// Most events one page holds.
pub const MAX_PAGE: u32 = 1000;
/// The trail's default retention.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// A client's correlation ID kept when it is a plausible ID (letters, digits, `-`, at most 64
/// characters), so nothing a caller sends can forge other fields or flood the trail.
pub fn correlation_id(sent: Option<&str>) -> String {
    match sent.map(str::trim) {
        Some(s) if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => s.to_string(),
        _ => Uuid::new_v4().to_string(),
    }
}

/// Parses Activity Log's `$filter` (`eventTimestamp ge '…' and eventTimestamp le '…' and caller eq '…'`):
/// clauses joined by `and`; `eventTimestamp` with `ge`/`gt` (start) and `le`/`lt` (end), and `eq` on
/// `caller`, `status`, `operationName` (`*`/`?` wildcards) and `resourceId` (the resource and everything
/// below it); anything else is refused with what is supported. Without a start,
/// the window opens `retention_days` before `now`; without an end it closes a minute after `now`.
pub fn parse_filter(filter: &str, now: OffsetDateTime, retention_days: u32) -> crate::Result<AuditFilter> {
    let bad = |m: String| crate::Error::InvalidArgument(m);
    let mut f = AuditFilter {
        start: now - time::Duration::days(i64::from(retention_days)),
        end: now + time::Duration::minutes(1),
        caller: None,
        operation: None,
        resource_id: None,
        status: None,
        after: None,
        limit: MAX_PAGE,
    };
    if filter.len() > 4096 {
        return Err(bad("$filter is longer than 4096 characters".into()));
    }
    for clause in split_and(filter) {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        let mut words = clause.splitn(3, ' ');
        let (field, op, value) =
            (words.next().unwrap_or_default(), words.next().unwrap_or_default().to_ascii_lowercase(), words.next().unwrap_or_default().trim());
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(|| bad(format!("in $filter clause \"{clause}\": the value must be in single quotes")))?
            .replace("''", "'");
        match (field.to_ascii_lowercase().as_str(), op.as_str()) {
            ("eventtimestamp", "ge" | "gt" | "le" | "lt") => {
                let t = OffsetDateTime::parse(&value, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| bad(format!("in $filter clause \"{clause}\": '{value}' is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): {e}")))?;
                if op.starts_with('g') {
                    f.start = t;
                } else {
                    f.end = if op == "le" { t + time::Duration::microseconds(1) } else { t };
                }
            }
            ("caller", "eq") => f.caller = Some(value),
            ("status", "eq") => f.status = Some(Status::parse(&value)?),
            ("operationname", "eq") => f.operation = Some(value),
            ("resourceid" | "resourceuri", "eq") => f.resource_id = Some(value),
            _ => {
                return Err(bad(format!(
                    "$filter clause \"{clause}\" is not supported: use eventTimestamp ge|le '<time>', caller eq, status eq, operationName eq, resourceId eq '<value>'"
                )))
            }
        }
    }
    if f.end <= f.start {
        return Err(bad(format!("the $filter's end ({}) is not after its start ({})", rfc3339(f.end), rfc3339(f.start))));
    }
    Ok(f)
}

/// Splits on ` and ` outside quoted values (a caller's name may contain " and ").
fn split_and(filter: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted) = (Vec::new(), String::new(), false);
    let mut rest = filter;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted && rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(" and ") {
            out.push(std::mem::take(&mut current));
            rest = &rest[5..];
            continue;
        }
        current.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.push(current);
    out
}

/// The paging token after an event: its time in microseconds and its ID.
pub fn skip_token(e: &AuditEvent) -> String {
    format!("{}_{}", e.event_timestamp.unix_timestamp_nanos() / 1000, e.event_id)
}

pub fn parse_skip_token(token: &str) -> crate::Result<(OffsetDateTime, Uuid)> {
    let bad = || crate::Error::InvalidArgument(format!("$skipToken '{token}' is not one kite gave out"));
    let (micros, id) = token.split_once('_').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
    Ok((t, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// What a management request does, by its method and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub shape: Shape,
    pub name: String,
    pub resource_id: String,
    /// CloudTrail's `eventSource` for AWS-shaped operations.
    pub event_source: Option<&'static str>,
}

/// The operation a management write performs; `None` for reads and for paths that are not the
/// management API (token endpoints, webhooks, the node agent), which record their own decisions.
pub fn operation(method: &str, path: &str, aws_account: &str) -> Option<Operation> {
    let verb = match method {
        "PUT" | "PATCH" => "write",
        "DELETE" => "delete",
        "POST" => "action",
        _ => return None,
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.first().map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("subscriptions") | Some("providers") => Some(arm_operation(verb, path, &segments)),
        Some("v1.0") => Some(graph_operation(path, &segments)),
        Some("kite") => Some(kite_operation(method, path, &segments[1..], aws_account)),
        _ => None,
    }
}

fn arm_operation(verb: &str, path: &str, segments: &[&str]) -> Operation {
    let activity = |name: String| Operation { shape: Shape::ActivityLog, name, resource_id: path.to_string(), event_source: None };
    let Some(at) = segments.iter().rposition(|s| s.eq_ignore_ascii_case("providers")) else {
        // `/subscriptions/{s}/resourceGroups/{rg}` and the subscription itself.
        let kind = if segments.len() > 2 { "subscriptions/resourceGroups" } else { "subscriptions" };
        return activity(format!("Microsoft.Resources/{kind}/{}", if verb == "action" { "write" } else { verb }));
    };
    let rest = &segments[at + 1..];
    let Some(namespace) = rest.first() else {
        return activity(format!("Microsoft.Resources/providers/{verb}"));
    };
    let types: Vec<&str> = rest[1..].iter().step_by(2).copied().collect();
    // A POST to a path ending at a type is an action on the resource above it (ARM's
    // `…/managedClusters/{name}/resetServicePrincipalProfile`); on an item it writes it.
    let verb = if verb == "action" && rest[1..].len().is_multiple_of(2) { "write" } else { verb };
    activity(format!("{namespace}/{}/{verb}", types.join("/")))
}

fn graph_operation(path: &str, segments: &[&str]) -> Operation {
    let is = |i: usize, w: &str| segments.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    let name = if is(1, "servicePrincipals") && is(2, "createForRbac") {
        "microsoft.directory/applications/create"
    } else if is(1, "servicePrincipals") {
        "microsoft.directory/applications/delete"
    } else {
        "microsoft.directory/applications/credentials/update"
    };
    let resource_id = segments.iter().take(3).fold(String::new(), |acc, s| format!("{acc}/{s}"));
    Operation {
        shape: Shape::ActivityLog,
        name: name.to_string(),
        resource_id: if resource_id.is_empty() { path.into() } else { resource_id },
        event_source: None,
    }
}

fn kite_operation(method: &str, path: &str, rest: &[&str], account: &str) -> Operation {
    let name_at = |i: usize| rest.get(i).copied().unwrap_or_default();
    let (name, source, resource_id): (&str, &'static str, String) = match (method, rest) {
        ("POST", ["aws", "oidcProviders"]) => ("CreateOpenIDConnectProvider", "iam.amazonaws.com", format!("arn:aws:iam::{account}:oidc-provider")),
        ("DELETE", ["aws", "oidcProviders"]) => ("DeleteOpenIDConnectProvider", "iam.amazonaws.com", format!("arn:aws:iam::{account}:oidc-provider")),
        ("POST", ["aws", "roles"]) => ("CreateRole", "iam.amazonaws.com", format!("arn:aws:iam::{account}:role")),
        ("DELETE", ["aws", "roles", _]) => ("DeleteRole", "iam.amazonaws.com", format!("arn:aws:iam::{account}:role/{}", name_at(2))),
        ("POST", ["aws", "users"]) => ("CreateUser", "iam.amazonaws.com", format!("arn:aws:iam::{account}:user")),
        ("DELETE", ["aws", "users", _]) => ("DeleteUser", "iam.amazonaws.com", format!("arn:aws:iam::{account}:user/{}", name_at(2))),
        ("POST", ["aws", "users", _, "accessKeys"]) => ("CreateAccessKey", "iam.amazonaws.com", format!("arn:aws:iam::{account}:user/{}", name_at(2))),
        ("PATCH", ["aws", "accessKeys", _]) => ("UpdateAccessKey", "iam.amazonaws.com", format!("arn:aws:iam::{account}:access-key/{}", name_at(2))),
        ("DELETE", ["aws", "accessKeys", _]) => ("DeleteAccessKey", "iam.amazonaws.com", format!("arn:aws:iam::{account}:access-key/{}", name_at(2))),
        ("POST", ["eks", "clusters"]) => ("CreateCluster", "eks.amazonaws.com", format!("arn:aws:eks:us-east-1:{account}:cluster")),
        ("DELETE", ["eks", "clusters", _]) => ("DeleteCluster", "eks.amazonaws.com", format!("arn:aws:eks:us-east-1:{account}:cluster/{}", name_at(2))),
        ("POST", ["eks", "clusters", _, "pod-identity-associations"]) => {
            ("CreatePodIdentityAssociation", "eks.amazonaws.com", format!("arn:aws:eks:us-east-1:{account}:cluster/{}", name_at(2)))
        }
        ("DELETE", ["eks", "clusters", _, "pod-identity-associations", _]) => (
            "DeletePodIdentityAssociation",
            "eks.amazonaws.com",
            format!("arn:aws:eks:us-east-1:{account}:podidentityassociation/{}/{}", name_at(2), name_at(4)),
        ),
        _ => {
            let types: Vec<&str> = rest.iter().filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase())).copied().collect();
            let verb = match method {
                "DELETE" => "delete",
                "POST" => "action",
                _ => "write",
            };
            return Operation {
                shape: Shape::ActivityLog,
                name: format!("Kite/{}/{verb}", types.join("/")),
                resource_id: path.to_string(),
                event_source: None,
            };
        }
    };
    Operation { shape: Shape::CloudTrail, name: name.to_string(), resource_id, event_source: Some(source) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/3f2c1d1e-0000-4000-8000-000000000001";

    fn name(method: &str, path: &str) -> Option<String> {
        operation(method, path, "123456789012").map(|o| o.name)
    }

    #[test]
    fn arm_writes_are_named_as_activity_log_names_them() {
        assert_eq!(name("PUT", &format!("{SUB}/resourceGroups/rg")).as_deref(), Some("Microsoft.Resources/subscriptions/resourceGroups/write"));
        assert_eq!(name("DELETE", &format!("{SUB}/resourceGroups/rg")).as_deref(), Some("Microsoft.Resources/subscriptions/resourceGroups/delete"));
        let mi = format!("{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id");
        assert_eq!(name("PUT", &mi).as_deref(), Some("Microsoft.ManagedIdentity/userAssignedIdentities/write"));
        assert_eq!(
            name("PUT", &format!("{mi}/federatedIdentityCredentials/k8s")).as_deref(),
            Some("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write")
        );
        let aks = format!("{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c");
        assert_eq!(
            name("POST", &format!("{aks}/resetServicePrincipalProfile")).as_deref(),
            Some("Microsoft.ContainerService/managedClusters/resetServicePrincipalProfile/action")
        );
        assert_eq!(
            name("PUT", &format!("{mi}/providers/Microsoft.Authorization/roleAssignments/5b1f")).as_deref(),
            Some("Microsoft.Authorization/roleAssignments/write")
        );
        assert_eq!(
            name("DELETE", "/providers/Microsoft.Authorization/roleAssignments/5b1f").as_deref(),
            Some("Microsoft.Authorization/roleAssignments/delete")
        );
    }

    #[test]
    fn reads_and_other_surfaces_are_not_management_writes() {
        assert_eq!(name("GET", &format!("{SUB}/resourceGroups/rg")), None);
        assert_eq!(name("POST", "/tenant/oauth2/v2.0/token"), None);
        assert_eq!(name("POST", "/authenticate"), None);
        assert_eq!(name("POST", "/"), None);
    }

    #[test]
    fn aws_shaped_writes_carry_event_names() {
        let op = operation("POST", "/kite/eks/clusters", "123456789012").unwrap();
        assert_eq!((op.shape, op.name.as_str(), op.event_source), (Shape::CloudTrail, "CreateCluster", Some("eks.amazonaws.com")));
        assert_eq!(name("DELETE", "/kite/aws/roles/r").as_deref(), Some("DeleteRole"));
        assert_eq!(name("POST", "/kite/signingKeys/rotate").as_deref(), Some("Kite/signingKeys/rotate/action"));
        assert_eq!(name("POST", "/v1.0/servicePrincipals/createForRbac").as_deref(), Some("microsoft.directory/applications/create"));
        assert_eq!(name("POST", "/v1.0/applications/abc/resetCredentials").as_deref(), Some("microsoft.directory/applications/credentials/update"));
    }

    #[test]
    fn correlation_ids_from_clients_are_kept_only_when_plausible() {
        assert_eq!(correlation_id(Some("6f1c-AB")), "6f1c-AB");
        assert_ne!(correlation_id(Some("a\nb")), "a\nb");
        assert_ne!(correlation_id(Some(&"a".repeat(65))), "a".repeat(65));
        assert_eq!(correlation_id(None).len(), 36);
    }

    #[test]
    fn events_render_in_their_readers_field_names() {
        let now = time::macros::datetime!(2026-12-01 10:00 UTC);
        let new = |shape| NewEvent {
            shape,
            category: Category::Administrative,
            caller: "arn:aws:iam::123456789012:user/2049",
            authentication: "SigV4",
            operation_name: "CreateCluster",
            resource_id: "arn:aws:eks:us-east-1:123456789012:cluster/prod",
            correlation_id: "c1",
        };
        let trail = AuditEvent::new(new(Shape::CloudTrail), now).with("name", "prod").with("eventSource", "eks.amazonaws.com").render("123456789012");
        assert_eq!(trail["eventName"], "CreateCluster");
        assert_eq!(trail["userIdentity"]["arn"], "arn:aws:iam::123456789012:user/2049");
        assert_eq!(trail["userIdentity"]["type"], "IAMUser");
        assert_eq!(trail["requestParameters"], json!({"name": "prod"}));
        assert_eq!(trail["eventSource"], "eks.amazonaws.com");
        let log = AuditEvent::new(new(Shape::ActivityLog), now).ended(403).render("123456789012");
        assert_eq!(log["operationName"]["value"], "CreateCluster");
        assert_eq!(log["status"]["value"], "Failed");
        assert_eq!(log["eventTimestamp"], "2026-12-01T10:00:00Z");
        assert_eq!(log["correlationId"], "c1");
    }

    #[test]
    fn caller_chosen_fields_are_bounded() {
        let now = time::macros::datetime!(2026-12-01 10:00 UTC);
        let long = "x".repeat(10_000);
        let e = AuditEvent::new(
            NewEvent {
                shape: Shape::ActivityLog,
                category: Category::Token,
                caller: &long,
                authentication: "client_secret",
                operation_name: "op",
                resource_id: "r",
                correlation_id: "c",
            },
            now,
        )
        .with("client", &long);
        assert!(e.caller.chars().count() <= MAX_FIELD + 1);
        assert!(e.properties["client"].chars().count() <= MAX_FIELD + 1);
    }

    #[test]
    fn activity_log_filters_parse_and_bad_ones_say_why() {
        let now = time::macros::datetime!(2026-12-01 10:00 UTC);
        let f = parse_filter(
            "eventTimestamp ge '2026-11-30T00:00:00Z' and eventTimestamp le '2026-12-01T00:00:00Z' and caller eq 'O''Brien and co' and status eq 'Failed' and operationName eq 'Create*'",
            now,
            90,
        )
        .unwrap();
        assert_eq!(f.start, time::macros::datetime!(2026-11-30 0:00 UTC));
        assert_eq!(f.caller.as_deref(), Some("O'Brien and co"));
        assert_eq!(f.status, Some(Status::Failed));
        assert_eq!(f.operation.as_deref(), Some("Create*"));
        let open = parse_filter("", now, 90).unwrap();
        assert_eq!((open.start, open.end), (now - time::Duration::days(90), now + time::Duration::minutes(1)));
        for (filter, says) in [
            ("caller eq bob", "single quotes"),
            ("eventTimestamp ge 'yesterday'", "RFC 3339"),
            ("level eq 'Error'", "not supported"),
            ("eventTimestamp ge '2026-12-02T00:00:00Z' and eventTimestamp le '2026-12-01T00:00:00Z'", "not after"),
            ("status eq 'Maybe'", "neither"),
        ] {
            let err = parse_filter(filter, now, 90).unwrap_err().to_string();
            assert!(err.contains(says), "{filter}: {err}");
        }
    }

    #[test]
    fn skip_tokens_round_trip_and_forgeries_are_refused() {
        let now = time::macros::datetime!(2026-12-01 10:00:00.123456 UTC);
        let e = AuditEvent::new(
            NewEvent {
                shape: Shape::ActivityLog,
                category: Category::Token,
                caller: "c",
                authentication: "a",
                operation_name: "o",
                resource_id: "r",
                correlation_id: "x",
            },
            now,
        );
        assert_eq!(parse_skip_token(&skip_token(&e)).unwrap(), (now, e.event_id));
        assert!(parse_skip_token("12_notauuid").is_err());
        assert!(parse_skip_token("99999999999999999999999999_00000000-0000-0000-0000-000000000000").is_err());
    }
}
