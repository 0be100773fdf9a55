//! The audit trail's SQL: appends in one transaction per batch, filtered reads in the trail's
//! order (time, then event ID), and pruning by age. Nothing else changes a row.

use kite_core::audit::{AuditEvent, AuditFilter};
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::sql::{backend, rows, to_json};
use crate::Result;

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A lower-case LIKE pattern: with `glob`, `*`/`?` become `%`/`_`; LIKE's own wildcards are escaped.
fn like_pattern(text: &str, glob: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.to_lowercase().chars() {
        match c {
            '*' if glob => out.push('%'),
            '?' if glob => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

pub(crate) async fn append(pool: &AnyPool, events: &[AuditEvent]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    for e in events {
        sqlx::query(
            "INSERT INTO audit_events (event_id, event_time, caller_key, operation_key, resource_key, status, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.event_id.to_string())
        .bind(micros(e.event_timestamp))
        .bind(e.caller.to_lowercase())
        .bind(e.operation_name.to_lowercase())
        .bind(e.resource_id.to_lowercase())
        .bind(e.status.as_str())
        .bind(to_json(e)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(crate) async fn list(pool: &AnyPool, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let mut sql = String::from("SELECT body FROM audit_events WHERE event_time >= $1 AND event_time < $2");
    let mut text: Vec<String> = Vec::new();
    let mut param = |sql: &mut String, clause: &str, value: String| {
        text.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", text.len() + 2)));
    };
    if let Some(c) = &f.caller {
        param(&mut sql, " AND caller_key = ?", c.to_lowercase());
    }
    if let Some(op) = &f.operation {
        param(&mut sql, " AND operation_key LIKE ? ESCAPE '\\'", like_pattern(op, true));
    }
    if let Some(prefix) = &f.resource_id {
        param(&mut sql, " AND resource_key LIKE ? ESCAPE '\\'", format!("{}%", like_pattern(prefix, false)));
    }
    if let Some(s) = f.status {
        param(&mut sql, " AND status = ?", s.as_str().to_string());
    }
    let after = f.after.map(|(t, id)| (micros(t), id.to_string()));
    if after.is_some() {
        let n = text.len() + 3;
        sql.push_str(&format!(" AND (event_time > ${n} OR (event_time = ${n} AND event_id > ${}))", n + 1));
    }
    sql.push_str(&format!(" ORDER BY event_time, event_id LIMIT {}", f.limit.min(kite_core::audit::MAX_PAGE)));
    let mut q = sqlx::query(&sql).bind(micros(f.start)).bind(micros(f.end));
    for t in text {
        q = q.bind(t);
    }
    if let Some((t, id)) = after {
        q = q.bind(t).bind(id);
    }
    rows(&q.fetch_all(pool).await.map_err(backend)?)
}

pub(crate) async fn prune(pool: &AnyPool, before: OffsetDateTime) -> Result<u64> {
    let r = sqlx::query("DELETE FROM audit_events WHERE event_time < $1").bind(micros(before)).execute(pool).await.map_err(backend)?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_become_like_patterns_with_like_wildcards_escaped() {
        assert_eq!(super::like_pattern("Microsoft.*/write", true), "microsoft.%/write");
        assert_eq!(super::like_pattern("a_b%c?", true), "a\\_b\\%c_");
        assert_eq!(super::like_pattern("/subscriptions/*_", false), "/subscriptions/*\\_");
    }
}
